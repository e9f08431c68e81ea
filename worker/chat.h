#ifndef CG_CHAT_H
#define CG_CHAT_H

#include <time.h>

#include "http.h"
#include "logwriter.h"
#include "provider.h"
#include "upstream.h"

/* The two shapes of a chat: the OpenAI API and the chat page's simple form. */
typedef enum {
    CG_CHAT_COMPLETIONS = 0,   /* POST /v1/chat/completions */
    CG_CHAT_FORM               /* POST /chat */
} cg_chat_kind_t;

/*
 * Handles a chat request: validates it, calls the provider and responds,
 * streamed as server-sent events when the body has "stream": true. Every
 * outcome, error or not, is written to the request log when the response
 * ends. The handler counts itself in srv->in_flight until then.
 */
void cg_chat_handle(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, cg_chat_kind_t kind);


/*
 * Internals shared by chat.c (requests, retries, complete answers, the
 * request log) and chat_stream.c (streamed answers).
 */

typedef struct cg_chat_stream_s  cg_chat_stream_t;

/*
 * One chat request. It owns everything it points to except srv and req;
 * req is set to NULL once the response is handed to the server, which
 * frees it.
 */
typedef struct {
    cg_server_t             *srv;
    cg_http_req_t           *req;
    cg_chat_kind_t           kind;
    cg_request_info_t        info;
    char                    *body;          /* the request body, owned */
    char                    *api_key;       /* BYOK or stored key: wiped before free */
    size_t                   api_key_len;
    char                    *base_url;      /* a stored key's own base URL, or NULL */
    cg_chat_request_t        chat;
    unsigned                 chat_parsed:1;
    unsigned                 call_built:1;
    unsigned                 writing:1;     /* the done callback will count the request out */
    cg_provider_call_t       call;
    cg_upstream_call_t      *upstream;
    int                      attempt;       /* provider calls started, 1 for the first */
    struct event            *retry_timer;   /* pending retry, see cg_chat_retry */
    cg_chat_stream_t        *stream;        /* streams only, owned */
    int64_t                  start_us;      /* wall clock, for the log row */
    struct timespec          start;         /* monotonic, for latency */
    char                     retry_after[64];
} cg_chat_t;

/* chat.c */
void cg_chat_fail(cg_chat_t *c, const cg_error_t *err,
    const char *error_class);
void cg_chat_finish(cg_chat_t *c, int status, const cg_usage_t *usage,
    const cg_error_t *err, const char *error_class);
cg_http_req_t *cg_chat_detach(cg_chat_t *c);
int cg_chat_latency_ms(const cg_chat_t *c);

/*
 * Schedules the next provider call after a failure that left the client
 * without a byte: call is the failed call (for its Retry-After; NULL after
 * a connect failure) and cause a short text for the log. Returns 1 when a
 * retry is scheduled, 0 when the tries or the deadline are used up.
 */
int cg_chat_retry(cg_chat_t *c, cg_upstream_call_t *call, const char *cause);

/* Responds from a provider's non-2xx status and error body. */
void cg_chat_answer_status(cg_chat_t *c, cg_upstream_call_t *call,
    const char *body, size_t len);

/* Fails the request after a transport failure (not CG_UPSTREAM_OK). */
void cg_chat_transport_failed(cg_chat_t *c, cg_upstream_result_t result,
    const char *error);

/* chat_stream.c */

/* Starts one streamed provider call for c. Returns it, or NULL. */
cg_upstream_call_t *cg_chat_stream_call(cg_chat_t *c);

/* Returns 1 once the streamed response has started, so no error status can follow. */
int cg_chat_stream_started(const cg_chat_t *c);

/* Ends a started stream whose client went away: logged as 499. */
void cg_chat_stream_client_closed(cg_chat_t *c);

/* Copies ttft, stream time and chunk count into row; writes the timeline. */
void cg_chat_stream_log(cg_chat_t *c, cg_log_row_t *row);

void cg_chat_stream_free(cg_chat_t *c);

#endif
