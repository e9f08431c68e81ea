#ifndef CG_SSE_H
#define CG_SSE_H

#include <stddef.h>

#include "json.h"

/*
 * Byte-fed parsers for streamed provider responses: a line splitter, a
 * server-sent events parser on top of it (WHATWG HTML, "event stream
 * interpretation") and an NDJSON reader for Ollama. Input may be cut at any
 * byte, including inside a CRLF pair or a UTF-8 sequence: lines are
 * buffered until their end, so the output does not depend on the cuts.
 */

/*
 * Splits bytes into lines ended by LF, CRLF or a lone CR. A line longer
 * than max_line bytes is an error, so a peer cannot make the buffer grow
 * without bound.
 */
typedef struct {
    cg_buf_t  line;
    size_t    max_line;
    int       cr_seen;      /* the last byte fed was a CR */
    int       too_long;     /* a line passed max_line */
} cg_lines_t;

/* Called with each line, without its end; a non-zero return stops the feed. */
typedef int (*cg_line_handler_pt)(void *ctx, const char *line, size_t len);

void cg_lines_init(cg_lines_t *l, size_t max_line);
void cg_lines_free(cg_lines_t *l);

/*
 * Feeds len bytes. Returns 0, the handler's non-zero value, or -1 when a
 * line is longer than max_line or memory runs out.
 */
int cg_lines_feed(cg_lines_t *l, const char *buf, size_t len,
    cg_line_handler_pt handler, void *ctx);


/* One dispatched event. Pointers are valid during the handler call only. */
typedef struct {
    const char  *type;      /* the "event" field, "message" when absent */
    const char  *data;      /* "data" lines joined by "\n", NUL-terminated */
    size_t       data_len;
    const char  *id;        /* the last event ID, "" when none was sent */
} cg_sse_event_t;

typedef int (*cg_sse_handler_pt)(void *ctx, const cg_sse_event_t *ev);

typedef struct {
    cg_lines_t          lines;
    cg_buf_t            data;
    cg_buf_t            type;
    cg_buf_t            id;
    cg_sse_handler_pt   handler;
    void               *ctx;
    unsigned long       events;     /* events dispatched */
    unsigned long       comments;   /* ":" lines, such as keep-alives */
    int                 started;    /* the first line was seen (BOM check) */
    int                 too_long;   /* a line or an event passed max_line */
} cg_sse_t;

/*
 * Prepares p. max_line bounds one line and also the joined data of one
 * event.
 */
void cg_sse_init(cg_sse_t *p, size_t max_line, cg_sse_handler_pt handler,
    void *ctx);
void cg_sse_free(cg_sse_t *p);

/*
 * Feeds len bytes and dispatches every event that a blank line completes.
 * Returns 0, the handler's non-zero value, or -1 when a line or an event is
 * longer than max_line (too_long is set) or memory runs out.
 */
int cg_sse_feed(cg_sse_t *p, const char *buf, size_t len);


/*
 * NDJSON: one JSON text per line, blank lines skipped. The last line needs
 * no line end: cg_ndjson_finish() passes it on at the end of the stream.
 */
typedef struct {
    cg_lines_t           lines;
    cg_line_handler_pt   handler;
    void                *ctx;
} cg_ndjson_t;

void cg_ndjson_init(cg_ndjson_t *p, size_t max_line,
    cg_line_handler_pt handler, void *ctx);
void cg_ndjson_free(cg_ndjson_t *p);
int cg_ndjson_feed(cg_ndjson_t *p, const char *buf, size_t len);
int cg_ndjson_finish(cg_ndjson_t *p);

#endif
