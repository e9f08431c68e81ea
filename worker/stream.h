#ifndef CG_STREAM_H
#define CG_STREAM_H

#include <stddef.h>

#include "json.h"
#include "provider.h"
#include "sse.h"

/*
 * Translates a provider's streamed response into OpenAI chat.completion.chunk
 * events. The caller feeds the provider's bytes as they arrive and sends
 * what lands in out to the client unchanged: out receives whole SSE frames,
 * "data: {...}\n\n", and "data: [DONE]\n\n" at the end, so framing is done
 * here and never by the caller.
 *
 * On the way it accumulates usage, counts content chunks and notices the
 * end marker ("[DONE]", Anthropic's message_stop, Ollama's "done":true).
 * A provider error event, a malformed event or a stream cut short ends the
 * translation: err is set (a 502 upstream_error, credentials removed) and
 * out receives a final frame "data: {"error":{...}}\n\n" without [DONE].
 */

#define CG_STREAM_MAX_LINE  (1024 * 1024)   /* bytes per line and per event */

typedef struct {
    /* Read by the caller. */
    cg_usage_t         usage;          /* -1: not reported (yet) */
    unsigned long      chunks;         /* chunks that carried content */
    int                done;           /* the end marker was seen */
    int                failed;         /* err contains the cause */
    cg_error_t         err;

    /* The provider key of the call, set by the caller and removed from err. */
    const char        *secret;

    /* Private. */
    cg_provider_id_t   provider;
    char               id[64];
    long               created;
    char              *model;          /* as the client requested it */
    int                send_usage;     /* the client asked for a usage chunk */
    int                role_sent;
    const char        *finish_reason;
    cg_buf_t          *out;            /* set during a feed */
    cg_sse_t           sse;
    cg_ndjson_t        ndjson;
} cg_stream_t;

/*
 * Prepares s for req's provider. completion_id (at most 63 bytes kept) and
 * created go into chunks the translator writes itself; OpenAI-compatible
 * chunks keep the provider's id. Returns 0, or -1 on lack of memory.
 */
int cg_stream_init(cg_stream_t *s, const cg_chat_request_t *req,
    const char *completion_id, long created);

/*
 * Feeds len bytes of the provider's body and appends the frames they
 * complete to out. Returns 0, or -1 once the stream has failed (s->err).
 * Bytes after the end or a failure are ignored.
 */
int cg_stream_feed(cg_stream_t *s, const char *buf, size_t len,
    cg_buf_t *out);

/*
 * Ends the translation when the provider's body is complete. A stream
 * without its end marker fails here. Returns 0 or -1 as cg_stream_feed().
 */
int cg_stream_finish(cg_stream_t *s, cg_buf_t *out);

void cg_stream_free(cg_stream_t *s);

#endif
