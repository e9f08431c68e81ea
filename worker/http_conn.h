#ifndef CG_HTTP_CONN_H
#define CG_HTTP_CONN_H

#include <stddef.h>
#include <string.h>
#include <event2/event.h>

/*
 * The worker's HTTP/1.1 server connections: accepting on the listening
 * socket, reading and parsing requests, and writing responses, on the
 * worker's libevent loop. Its only client is nginx over a unix socket, so it
 * serves one request at a time per connection and keeps no per-request
 * state beyond what the handlers read.
 *
 * A request is handed to the handler once its head and body are in. It
 * stays valid until the handler has sent the complete response, even when
 * the connection goes away first: the handler learns that from the close
 * callback and still ends the response, which then frees the request.
 */

typedef enum {
    CG_HTTP_GET = 1,
    CG_HTTP_HEAD,
    CG_HTTP_POST,
    CG_HTTP_PUT,
    CG_HTTP_DELETE,
    CG_HTTP_PATCH,
    CG_HTTP_OPTIONS
} cg_http_method_t;

typedef struct {
    const char  *name;
    size_t       name_len;
    char        *value;      /* writable, so a handler can wipe a secret */
} cg_http_header_t;

/*
 * Tells whether header h is named literal, a string literal, in any case.
 * The length check spares a strcasecmp() for almost every other header.
 */
#define cg_http_header_is(h, literal)                                        \
    ((h)->name_len == sizeof(literal) - 1                                    \
     && strcasecmp((h)->name, literal) == 0)

typedef struct cg_http_listener_s  cg_http_listener_t;
typedef struct cg_http_req_s       cg_http_req_t;

typedef void (*cg_http_handler_pt)(cg_http_req_t *req, void *arg);
typedef void (*cg_http_req_cb_pt)(cg_http_req_t *req, void *arg);

typedef struct {
    size_t  max_head_size;      /* request line and headers */
    size_t  max_body_size;      /* larger bodies get 413 without being read */
    int     timeout_s;          /* idle, reading or writing without progress */
} cg_http_limits_t;

/*
 * Serves the listening socket fd (non-blocking) on base and calls handler
 * for every complete request. Returns NULL (logged) on failure, and fd then
 * stays the caller's.
 */
cg_http_listener_t *cg_http_listener_new(struct event_base *base, int fd,
    const cg_http_limits_t *limits, cg_http_handler_pt handler, void *arg);

/* Closes the listening socket. Open connections go on. Idempotent. */
void cg_http_listener_stop(cg_http_listener_t *ls);

/*
 * Closes every connection and frees every request, also those a handler
 * still holds, without calling any callback. For the end of the process.
 */
void cg_http_listener_free(cg_http_listener_t *ls);

/* The request. */
cg_http_method_t cg_http_method(const cg_http_req_t *req);

/* The path of the request target, without the query, as sent (not decoded). */
const char *cg_http_path(const cg_http_req_t *req);

/*
 * The query of the request target, after "?" and without a fragment, as
 * sent (not decoded); "" when there is none.
 */
const char *cg_http_query(const cg_http_req_t *req);

/* The first header of that name (case-insensitive), or NULL. */
const char *cg_http_header(const cg_http_req_t *req, const char *name);

/* Returns all headers in the order sent, and their count in *n. */
cg_http_header_t *cg_http_headers(cg_http_req_t *req, size_t *n);

/* The body, NUL-terminated (the NUL is not counted in len). */
const char *cg_http_body(const cg_http_req_t *req, size_t *len);

/* 1 while the client's connection is open. */
int cg_http_connected(const cg_http_req_t *req);

/*
 * Callbacks. close runs once when the connection goes away before the
 * response is complete. drain runs when output that had to wait for the
 * socket is all written. done runs once the response is written out, or
 * the connection is gone, never from inside the call that ends the
 * response. Each replaces the previous one, and cb NULL removes it.
 */
void cg_http_on_close(cg_http_req_t *req, cg_http_req_cb_pt cb, void *arg);
void cg_http_on_drain(cg_http_req_t *req, cg_http_req_cb_pt cb, void *arg);
void cg_http_on_done(cg_http_req_t *req, cg_http_req_cb_pt cb, void *arg);

/*
 * Adds a response header. The server adds Date and Content-Length itself,
 * and "Connection: close" closes the connection after the response.
 * Returns 0, or -1 when out of memory or when the name or value contains a
 * line break (logged).
 */
int cg_http_add_header(cg_http_req_t *req, const char *name,
    const char *value);

/*
 * Sends the complete response and lets the request go. A HEAD request gets
 * the headers, with the Content-Length of body, and no body.
 */
void cg_http_reply(cg_http_req_t *req, int status, const char *body,
    size_t len);

/* Starts a chunked response (HTTP/1.0: a body up to the close). */
int cg_http_reply_start(cg_http_req_t *req, int status);

/*
 * Adds len bytes as one chunk. The chunks added in one loop pass are
 * written together once the pass's ready callbacks have run. Returns 0, or
 * -1 when the client is gone.
 */
int cg_http_reply_chunk(cg_http_req_t *req, const char *data, size_t len);

/* Writes what the response has so far now, for a chunk that must not wait. */
void cg_http_flush(cg_http_req_t *req);

/* Ends the chunked response and lets the request go. */
void cg_http_reply_end(cg_http_req_t *req);

/* Bytes of the response that wait for the client to read them. */
size_t cg_http_backlog(const cg_http_req_t *req);

/* The reason phrase of an HTTP status code. */
const char *cg_http_reason(int status);

#endif
