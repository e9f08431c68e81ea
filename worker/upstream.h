#ifndef CG_UPSTREAM_H
#define CG_UPSTREAM_H

#include <stddef.h>
#include <curl/curl.h>
#include <event2/event.h>

/*
 * Provider calls: libcurl's multi interface driven by the worker's event
 * loop, so any number of calls run at once without threads. The multi handle
 * keeps finished connections open for reuse by later calls to the same host.
 */

typedef struct cg_upstream_s       cg_upstream_t;
typedef struct cg_upstream_call_s  cg_upstream_call_t;

typedef struct {
    long         connect_timeout_ms;
    long         request_timeout_ms;   /* whole call, connect included */
    const char  *proxy;                /* NULL: none, even if the environment names one */
    long         max_connections;      /* kept open for reuse, busy ones included */
} cg_upstream_conf_t;

/* How a call ended, from the transport's point of view. */
typedef enum {
    CG_UPSTREAM_OK = 0,        /* a complete response arrived, any HTTP status */
    CG_UPSTREAM_CONNECT,       /* name lookup, connect or TLS handshake failed */
    CG_UPSTREAM_TIMEOUT,       /* connect or request timeout elapsed */
    CG_UPSTREAM_ABORTED,       /* a callback returned CG_UPSTREAM_ABORT */
    CG_UPSTREAM_FAILED         /* any other transport error */
} cg_upstream_result_t;

/* Return values of on_headers and on_data. */
#define CG_UPSTREAM_CONTINUE  0
#define CG_UPSTREAM_PAUSE     1   /* on_data only: keep the piece, stop reading */
#define CG_UPSTREAM_ABORT    -1

/*
 * Callbacks of one call; arg is the one given to cg_upstream_start(). Each
 * runs from the event loop; none may call cg_upstream_cancel() on its own
 * call (return CG_UPSTREAM_ABORT instead).
 *
 * on_headers: once, when the final status line and headers have arrived
 *   (1xx interim responses are skipped). May be NULL.
 * on_data: each body piece. CG_UPSTREAM_PAUSE leaves the piece unconsumed and
 *   pauses the transfer; after cg_upstream_resume() the same bytes come again.
 *   NULL: the body is collected, up to max_body bytes, for cg_upstream_body().
 * on_done: exactly once, unless the call is cancelled. error is a short text
 *   for logs (NULL when result is CG_UPSTREAM_OK). After on_done returns, the
 *   call is freed: the caller must drop its pointer.
 */
typedef struct {
    int   (*on_headers)(cg_upstream_call_t *call, long status, void *arg);
    int   (*on_data)(cg_upstream_call_t *call, const char *data, size_t len,
              void *arg);
    void  (*on_done)(cg_upstream_call_t *call, cg_upstream_result_t result,
              const char *error, void *arg);
} cg_upstream_handler_t;

cg_upstream_t *cg_upstream_new(struct event_base *base,
    const cg_upstream_conf_t *conf);

/* Cancels every running call, without calling their on_done. */
void cg_upstream_free(cg_upstream_t *up);

/*
 * Starts a POST of body to url with headers. url, headers and body must stay
 * valid until on_done or cg_upstream_cancel(): curl reads them during the
 * call. max_body bounds the collected body when on_data is NULL. Returns the
 * call, or NULL when curl could not set it up (nothing is called then).
 */
cg_upstream_call_t *cg_upstream_start(cg_upstream_t *up, const char *url,
    const struct curl_slist *headers, const char *body, size_t body_len,
    size_t max_body, const cg_upstream_handler_t *handler, void *arg);

/*
 * Starts a call like cg_upstream_start() with another method: "GET" sends
 * no body, any other method sends body like a POST does. When unix_path is
 * not NULL, the call connects to that unix socket instead of the url's
 * host. method and unix_path are copied.
 */
cg_upstream_call_t *cg_upstream_start_method(cg_upstream_t *up,
    const char *method, const char *unix_path, const char *url,
    const struct curl_slist *headers, const char *body, size_t body_len,
    size_t max_body, const cg_upstream_handler_t *handler, void *arg);

/* Stops and frees a running call; its on_done is not called. */
void cg_upstream_cancel(cg_upstream_call_t *call);

/* Resumes a call that on_data paused. */
void cg_upstream_resume(cg_upstream_call_t *call);

/* The HTTP status, or 0 before the headers arrived. */
long cg_upstream_status(cg_upstream_call_t *call);

/*
 * Returns the value of the answer's header name (case-insensitive), or NULL.
 * Valid until the callback returns.
 */
const char *cg_upstream_header(cg_upstream_call_t *call, const char *name);

/* Returns the collected body (not NUL-terminated) and its length in *len. */
const char *cg_upstream_body(cg_upstream_call_t *call, size_t *len);

#endif
