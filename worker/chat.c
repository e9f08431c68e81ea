/*
 * Chat requests: POST /v1/chat/completions and POST /chat. One cg_chat_t per
 * request carries it from the handler through the provider call to the
 * response and the request log row.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <strings.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <yajl/yajl_gen.h>

#include "chat.h"
#include "json.h"
#include "keys.h"
#include "log.h"
#include "retry.h"

/* max size of a provider's complete response, far above any chat completion */
#define CG_CHAT_MAX_ANSWER  (16 * 1024 * 1024)

static int cg_chat_read_body(cg_chat_t *c, const char **body, size_t *len,
    cg_error_t *err);
static int cg_chat_credential(cg_chat_t *c, const char *form_key_id,
    cg_error_t *err, const char **error_class);
static void cg_chat_drop_headers(cg_chat_t *c);
static void cg_chat_start_call(cg_chat_t *c);
static void cg_chat_attempt(cg_chat_t *c);
static void cg_chat_retry_timer(evutil_socket_t fd, short events, void *arg);
static void cg_chat_on_done(cg_upstream_call_t *call,
    cg_upstream_result_t result, const char *error, void *arg);
static void cg_chat_answer_ok(cg_chat_t *c, const char *body, size_t len);
static char *cg_chat_form_json(cg_chat_t *c, const cg_completion_t *out,
    size_t *len);
static void cg_chat_watch_client(cg_chat_t *c);
static void cg_chat_client_closed(cg_http_req_t *req, void *arg);
static int cg_chat_model_allowed(cg_chat_t *c, cg_error_t *err);
static void cg_chat_watch_send(cg_chat_t *c, cg_http_req_t *req);
static void cg_chat_sent(cg_http_req_t *req, void *arg);
static void cg_chat_leave(cg_server_t *srv);
static void cg_chat_copy(char *dst, size_t size, const char *src);


void
cg_chat_handle(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, cg_chat_kind_t kind)
{
    cg_chat_t    *c;
    cg_error_t    err;
    const char   *body, *error_class;
    size_t        len;
    char          form_key_id[48] = "";
    int           rc;
    struct timespec  now;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        cg_log_error(info->request_id, "out of memory for a chat request");
        cg_error_set(&err, 500, "server_error", "out of memory");
        cg_http_send_error(req, info->request_id, &err);
        return;
    }

    c->srv = srv;
    c->req = req;
    c->kind = kind;
    c->info = *info;
    clock_gettime(CLOCK_MONOTONIC, &c->start);
    clock_gettime(CLOCK_REALTIME, &now);
    c->start_us = (int64_t) now.tv_sec * 1000000 + now.tv_nsec / 1000;
    srv->in_flight++;

    if (cg_chat_read_body(c, &body, &len, &err) != 0) {
        cg_chat_fail(c, &err, err.status == 413 ? "too_large" : "invalid_request");
        return;
    }

    if (kind == CG_CHAT_FORM) {
        rc = cg_chat_form_parse(body, len, srv->conf->default_provider,
                                &c->chat, form_key_id, sizeof(form_key_id),
                                &err);
    } else {
        rc = cg_chat_request_parse(body, len, srv->conf->default_provider,
                                   &c->chat, &err);
    }

    if (rc != 0) {
        cg_chat_fail(c, &err, "invalid_request");
        return;
    }
    c->chat_parsed = 1;

    if (cg_chat_model_allowed(c, &err) != 0) {
        cg_chat_fail(c, &err, "auth");
        return;
    }

    if (cg_chat_credential(c, form_key_id, &err, &error_class) != 0) {
        cg_chat_fail(c, &err, error_class);
        return;
    }

    cg_chat_drop_headers(c);
    cg_chat_start_call(c);
}


/*
 * Checks the requested model, as the client named it, against the
 * comma-separated X-Chatgate-Models that the nginx module sets from a
 * client token's "models" claim (and removes when a client sends it). No
 * header allows every model; an empty one allows none. Returns 0, or -1
 * with a 403 in err.
 */
static int
cg_chat_model_allowed(cg_chat_t *c, cg_error_t *err)
{
    const char  *list, *p, *end;
    const char  *model;
    size_t       len;

    list = c->info.models;
    if (list == NULL) {
        return 0;
    }

    model = c->chat.model_requested ? c->chat.model_requested : "";
    len = strlen(model);

    for (p = list; *p != '\0'; p = *end ? end + 1 : end) {
        end = strchr(p, ',');
        if (end == NULL) {
            end = p + strlen(p);
        }
        if ((size_t) (end - p) == len && memcmp(p, model, len) == 0) {
            return 0;
        }
    }

    cg_error_set(err, 403, "permission_error", "model \"%.200s\" is not "
                 "allowed for this client token", model);
    err->code = "model_not_allowed";
    return -1;
}


/*
 * Checks the body size against CHATGATE_MAX_BODY_SIZE and copies the body
 * into c->body, which the parsed request may point into after the response
 * has let the server's copy go.
 */
static int
cg_chat_read_body(cg_chat_t *c, const char **body, size_t *len,
    cg_error_t *err)
{
    const char  *in = cg_http_body(c->req, len);

    if (*len > c->srv->conf->max_body_size) {
        cg_error_set(err, 413, "invalid_request_error",
                     "request body of %zu bytes is larger than the limit of "
                     "%zu bytes", *len, c->srv->conf->max_body_size);
        err->code = "request_too_large";
        return -1;
    }

    if (*len == 0) {
        cg_error_set(err, 400, "invalid_request_error",
                     "request body is empty, expected a JSON object");
        return -1;
    }

    c->body = malloc(*len);
    if (c->body == NULL) {
        cg_error_set(err, 500, "server_error", "out of memory");
        return -1;
    }

    memcpy(c->body, in, *len);
    *body = c->body;
    return 0;
}


/*
 * Wipes every Authorization value in the request once the chat has read
 * the key, because the request's buffer stays until the response is out.
 * A client on the socket itself may send the key twice.
 */
static void
cg_chat_drop_headers(cg_chat_t *c)
{
    cg_http_header_t  *h;
    size_t             n, i;

    h = cg_http_headers(c->req, &n);

    for (i = 0; i < n; i++) {
        if (cg_http_header_is(&h[i], "Authorization")) {
            explicit_bzero(h[i].value, strlen(h[i].value));
        }
    }

    c->info.authorization = NULL;
}


/*
 * Picks the credential: a stored key id (from nginx or the /chat form), or
 * the client's own provider key in "Authorization: Bearer" (BYOK), copied
 * into c->api_key. Returns 0, or -1 with err and *error_class set.
 */
static int
cg_chat_credential(cg_chat_t *c, const char *form_key_id, cg_error_t *err,
    const char **error_class)
{
    const char  *auth, *key;
    size_t       len, i;

    *error_class = "auth";

    /*
     * Only nginx decides that a caller may use a stored key: it sets
     * X-Chatgate-Key-Id after checking a client token or the admin token.
     * The form's key_id, which nginx never reads, may only repeat that key.
     */
    if (form_key_id[0] != '\0') {
        if (!c->info.key_id_given || c->info.key_id[0] == '\0') {
            cg_error_set(err, 401, "authentication_error",
                         "key_id alone does not authorize a stored key: send "
                         "a client token from POST /admin/api/tokens as "
                         "\"Authorization: Bearer <token>\"");
            return -1;
        }

        if (strcmp(form_key_id, c->info.key_id) != 0) {
            cg_error_set(err, 403, "permission_error",
                         "key_id \"%s\" is not the key your credential "
                         "authorizes", form_key_id);
            return -1;
        }
    }

    if (c->info.key_id_given) {
        if (cg_keys_chat_credential(c->srv->keys, c->info.key_id, &c->chat,
                                    &c->api_key, &c->api_key_len,
                                    &c->base_url, err) != 0)
        {
            *error_class = err->status == 400 ? "invalid_request"
                           : err->status >= 500 ? "internal" : "auth";
            return -1;
        }
        return 0;
    }

    auth = c->info.authorization;
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
        cg_error_set(err, 401, "authentication_error",
                     "missing provider key: send it in the Authorization "
                     "header, with the scheme \"Bearer\"");
        return -1;
    }

    key = auth + 7;
    while (*key == ' ') {
        key++;
    }
    len = strlen(key);
    while (len > 0 && key[len - 1] == ' ') {
        len--;
    }

    /* the key goes into a header of the provider call, so no control bytes */
    for (i = 0; i < len; i++) {
        if ((unsigned char) key[i] <= 0x20 || (unsigned char) key[i] >= 0x7f) {
            break;
        }
    }

    if (len == 0 || len > 1024 || i < len) {
        cg_error_set(err, 401, "authentication_error",
                     "invalid provider key in the Authorization header: "
                     "expected 1 to 1024 printable characters");
        return -1;
    }

    c->api_key = strndup(key, len);
    if (c->api_key == NULL) {
        *error_class = "internal";
        cg_error_set(err, 500, "server_error", "out of memory");
        return -1;
    }
    c->api_key_len = len;
    snprintf(c->info.key_id, sizeof(c->info.key_id), "byok");

    return 0;
}


/* Builds the provider call once; each try sends the same one. */
static void
cg_chat_start_call(cg_chat_t *c)
{
    cg_error_t  err;

    if (cg_provider_build_call(&c->chat,
                               c->base_url ? c->base_url
                                           : c->srv->conf->base_url[c->chat.provider],
                               c->api_key, &c->call, &err) != 0)
    {
        cg_chat_fail(c, &err,
                     err.status < 500 ? "invalid_request" : "internal");
        return;
    }
    c->call_built = 1;

    cg_chat_watch_client(c);
    cg_chat_attempt(c);
}


/* Starts one try of the provider call, streamed or complete. */
static void
cg_chat_attempt(cg_chat_t *c)
{
    static const cg_upstream_handler_t  handler = {
        NULL, NULL, cg_chat_on_done
    };
    cg_error_t  err;

    c->attempt++;

    if (c->chat.stream) {
        c->upstream = cg_chat_stream_call(c);
    } else {
        c->upstream = cg_upstream_start(c->srv->upstream, c->call.url,
                                        c->call.headers, c->call.body,
                                        c->call.body_len, CG_CHAT_MAX_ANSWER,
                                        &handler, c);
    }

    if (c->upstream == NULL) {
        cg_error_set(&err, 500, "server_error",
                     "cannot start the call to provider \"%s\"",
                     cg_provider_name(c->chat.provider));
        cg_chat_fail(c, &err, "internal");
        return;
    }

    cg_log_debug(c->info.request_id, "calling provider \"%s\" model \"%s\"%s "
                 "(attempt %d)", cg_provider_name(c->chat.provider),
                 c->chat.model, c->chat.stream ? " streamed" : "", c->attempt);
}


int
cg_chat_retry(cg_chat_t *c, cg_upstream_call_t *call, const char *cause)
{
    const cg_conf_t  *conf = c->srv->conf;
    cg_retry_conf_t   rc;
    struct timeval    tv;
    long              retry_after_ms = -1, delay_ms;

    if (call != NULL) {
        retry_after_ms = cg_retry_after_ms(cg_upstream_header(call,
                                                              "Retry-After"),
                                           time(NULL));
    }

    rc.attempts = conf->retry_attempts;
    rc.deadline_ms = conf->retry_deadline_ms;

    if (!cg_retry_plan(&rc, c->attempt, cg_chat_latency_ms(c), retry_after_ms,
                       &delay_ms))
    {
        if (c->attempt > 1 || conf->retry_attempts > 1) {
            cg_log_info(c->info.request_id, "not retrying provider \"%s\" "
                        "after attempt %d of %d: %s", cg_provider_name(
                        c->chat.provider), c->attempt, conf->retry_attempts,
                        cause);
        }
        return 0;
    }

    if (c->retry_timer == NULL) {
        c->retry_timer = evtimer_new(c->srv->base, cg_chat_retry_timer, c);
        if (c->retry_timer == NULL) {
            return 0;
        }
    }

    tv.tv_sec = delay_ms / 1000;
    tv.tv_usec = (delay_ms % 1000) * 1000;
    if (evtimer_add(c->retry_timer, &tv) != 0) {
        return 0;
    }

    cg_log_info(c->info.request_id, "retrying provider \"%s\" in %ld ms, "
                "attempt %d of %d: %s", cg_provider_name(c->chat.provider),
                delay_ms, c->attempt + 1, conf->retry_attempts, cause);
    return 1;
}


static void
cg_chat_retry_timer(evutil_socket_t fd, short events, void *arg)
{
    (void) fd;
    (void) events;

    cg_chat_attempt(arg);
}


static void
cg_chat_on_done(cg_upstream_call_t *call, cg_upstream_result_t result,
    const char *error, void *arg)
{
    cg_chat_t  *c = arg;
    char        cause[300];
    long        status = cg_upstream_status(call);
    const char *body;
    size_t      len;

    c->upstream = NULL;

    if (result == CG_UPSTREAM_CONNECT) {
        snprintf(cause, sizeof(cause), "connect failed: %s", error);
        if (cg_chat_retry(c, NULL, cause)) {
            return;
        }
    }

    if (result != CG_UPSTREAM_OK) {
        cg_chat_transport_failed(c, result, error);
        return;
    }

    if (status == 429 || status >= 500) {
        snprintf(cause, sizeof(cause), "provider answered %ld", status);
        if (cg_chat_retry(c, call, cause)) {
            return;
        }
    }

    body = cg_upstream_body(call, &len);

    if (status >= 200 && status < 300) {
        cg_chat_answer_ok(c, body, len);
        return;
    }

    cg_chat_answer_status(c, call, body, len);
}


void
cg_chat_transport_failed(cg_chat_t *c, cg_upstream_result_t result,
    const char *error)
{
    cg_error_t   err;
    const char  *name = cg_provider_name(c->chat.provider);
    long         timeout_ms = c->srv->conf->request_timeout_ms;

    switch (result) {

    case CG_UPSTREAM_TIMEOUT:
        cg_error_set(&err, 504, "timeout", "provider \"%s\" did not answer "
                     "within %ld ms", name, timeout_ms);
        cg_chat_fail(c, &err, "timeout");
        return;

    case CG_UPSTREAM_CONNECT:
        cg_error_set(&err, 502, "upstream_error", "connect to provider \"%s\" "
                     "failed: %s", name, error);
        cg_chat_fail(c, &err, "upstream_connect");
        return;

    default:
        cg_error_set(&err, 502, "upstream_error", "call to provider \"%s\" "
                     "failed: %s", name, error ? error : "aborted");
        cg_chat_fail(c, &err, "upstream_error");
        return;
    }
}


/*
 * Responds from the provider's status: 4xx passes through with the
 * provider's message (429 keeps its Retry-After), the rest is 502.
 */
void
cg_chat_answer_status(cg_chat_t *c, cg_upstream_call_t *call,
    const char *body, size_t len)
{
    cg_error_t    err;
    const char   *retry_after, *type;
    char          msg[400];
    size_t        i, n;
    long          status = cg_upstream_status(call);

    cg_provider_error_message(c->chat.provider, status, body, len,
                              c->api_key, msg, sizeof(msg));

    if (status >= 400 && status < 500) {
        type = "invalid_request_error";
        if (status == 401 || status == 403) {
            type = "authentication_error";
        } else if (status == 429) {
            type = "rate_limit_exceeded";

            /* seconds or an HTTP date, passed on as the provider sent it */
            retry_after = cg_upstream_header(call, "Retry-After");
            n = retry_after ? strlen(retry_after) : 0;
            for (i = 0; i < n; i++) {
                if (retry_after[i] < 0x20 || retry_after[i] > 0x7e) {
                    break;
                }
            }
            if (n > 0 && i == n && n < sizeof(c->retry_after)) {
                memcpy(c->retry_after, retry_after, n + 1);
            }
        }
        cg_error_set(&err, (int) status, type, "%s", msg);
        cg_chat_fail(c, &err, "upstream_status");
        return;
    }

    cg_error_set(&err, 502, "upstream_error", "provider \"%s\" answered "
                 "%ld: %s", cg_provider_name(c->chat.provider), status, msg);
    cg_chat_fail(c, &err, "upstream_status");
}


static void
cg_chat_answer_ok(cg_chat_t *c, const char *body, size_t len)
{
    cg_completion_t         out;
    cg_error_t              err;
    cg_http_req_t  *req;
    char                    id[64], *form = NULL;
    const char       *answer;
    size_t            answer_len;

    _Static_assert(sizeof(id) >= sizeof("chatcmpl-")
                   + sizeof(c->info.request_id) - 1,
                   "id must hold the prefix and any request id");

    memset(&out, 0, sizeof(out));
    stpcpy(stpcpy(id, "chatcmpl-"), c->info.request_id);

    if (cg_provider_parse_completion(&c->chat, body, len, id,
                                     (long) (c->start_us / 1000000), &out,
                                     &err) != 0)
    {
        cg_chat_fail(c, &err, "upstream_response");
        return;
    }

    answer = out.body;
    answer_len = out.body_len;

    if (c->kind == CG_CHAT_FORM) {
        form = cg_chat_form_json(c, &out, &answer_len);
        if (form == NULL) {
            cg_completion_free(&out);
            cg_error_set(&err, 500, "server_error", "cannot build the answer");
            cg_chat_fail(c, &err, "internal");
            return;
        }
        answer = form;
    }

    req = cg_chat_detach(c);
    if (req != NULL) {
        cg_http_send_json(req, c->info.request_id, 200, answer,
                          (ssize_t) answer_len);
    }

    cg_chat_finish(c, 200, &out.usage, NULL, NULL);

    free(form);
    cg_completion_free(&out);
}


/* Builds {"reply","usage","provider","model","latency_ms"}; malloc'ed. */
static char *
cg_chat_form_json(cg_chat_t *c, const cg_completion_t *out, size_t *len)
{
    static const char  *names[] = {
        "prompt_tokens", "completion_tokens", "total_tokens"
    };
    const long          counts[] = {
        out->usage.prompt_tokens, out->usage.completion_tokens,
        out->usage.total_tokens
    };
    yajl_gen             g;
    const unsigned char *buf;
    const char          *s;
    char                *json = NULL;
    size_t               i, n;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NULL;
    }

#define CG_GEN_STR(str)                                                      \
    (s = (str), yajl_gen_string(g, (const unsigned char *) s, strlen(s)))

    yajl_gen_map_open(g);
    CG_GEN_STR("reply");
    CG_GEN_STR(out->reply ? out->reply : "");
    CG_GEN_STR("usage");
    yajl_gen_map_open(g);
    for (i = 0; i < 3; i++) {
        CG_GEN_STR(names[i]);
        if (counts[i] < 0) {
            yajl_gen_null(g);
        } else {
            yajl_gen_integer(g, counts[i]);
        }
    }
    yajl_gen_map_close(g);
    CG_GEN_STR("provider");
    CG_GEN_STR(cg_provider_name(c->chat.provider));
    CG_GEN_STR("model");
    CG_GEN_STR(c->chat.model);
    CG_GEN_STR("latency_ms");
    yajl_gen_integer(g, cg_chat_latency_ms(c));
    yajl_gen_map_close(g);

#undef CG_GEN_STR

    if (yajl_gen_get_buf(g, &buf, &n) == yajl_gen_status_ok
        && (json = malloc(n + 1)) != NULL)
    {
        memcpy(json, buf, n);
        json[n] = '\n';
        *len = n + 1;
    }

    yajl_gen_free(g);
    return json;
}


/*
 * Watches the client's connection while the provider works, so that a
 * client that hangs up stops the provider call.
 */
static void
cg_chat_watch_client(cg_chat_t *c)
{
    cg_http_on_close(c->req, cg_chat_client_closed, c);
}


/*
 * Runs when the client closed its connection before the response was
 * complete. The provider call stops and the request is logged as 499,
 * nginx's status for a client that closed first.
 */
static void
cg_chat_client_closed(cg_http_req_t *req, void *arg)
{
    cg_chat_t   *c = arg;
    cg_error_t   err;

    (void) req;

    if (cg_chat_stream_started(c)) {
        cg_chat_stream_client_closed(c);
        return;
    }

    if (c->upstream != NULL) {
        cg_upstream_cancel(c->upstream);
        c->upstream = NULL;
    }

    /* the server drops the response and releases the request */
    cg_error_set(&err, 499, "invalid_request_error",
                 "client closed the connection before the response");
    req = cg_chat_detach(c);
    cg_http_send_error(req, c->info.request_id, &err);
    cg_chat_finish(c, err.status, NULL, &err, "client_closed");
}


/*
 * Takes the request out of c for sending; NULL when it was sent already.
 * The client's key in the Authorization header is wiped first, because
 * the server frees the request's buffer without clearing it.
 */
cg_http_req_t *
cg_chat_detach(cg_chat_t *c)
{
    cg_http_req_t  *req = c->req;
    char           *auth;

    if (req != NULL) {
        auth = (char *) c->info.authorization;
        if (auth != NULL) {
            explicit_bzero(auth, strlen(auth));
        }

        cg_http_on_close(req, NULL, NULL);
        cg_http_on_drain(req, NULL, NULL);
        cg_chat_watch_send(c, req);
    }

    /* These point into the request's buffer, which goes with the request. */
    c->info.jti = NULL;
    c->info.models = NULL;
    c->info.authorization = NULL;
    c->req = NULL;
    return req;
}


/*
 * Keeps the request in flight until its response is written or the client
 * is gone, so that a shutdown waits for it. The server runs the done
 * callback in either case, from the loop after the chat has finished. The
 * callback gets the server itself, not an allocation of the chat's, so a
 * forced stop that frees the request without the callback leaks nothing.
 */
static void
cg_chat_watch_send(cg_chat_t *c, cg_http_req_t *req)
{
    c->writing = 1;
    cg_http_on_done(req, cg_chat_sent, c->srv);
}


/* Runs when the server has written a response, or the client has gone. */
static void
cg_chat_sent(cg_http_req_t *req, void *arg)
{
    (void) req;

    cg_chat_leave(arg);
}


/* Counts a chat out of srv->in_flight; the last one out during a shutdown calls idle. */
static void
cg_chat_leave(cg_server_t *srv)
{
    srv->in_flight--;
    if (srv->stopping && srv->in_flight == 0 && srv->idle != NULL) {
        srv->idle(srv->idle_arg);
    }
}


/* Sends err to the client, then finishes the request. */
void
cg_chat_fail(cg_chat_t *c, const cg_error_t *err, const char *error_class)
{
    cg_http_req_t  *req = cg_chat_detach(c);

    if (req != NULL) {
        if (c->retry_after[0] != '\0') {
            cg_http_add_header(req, "Retry-After", c->retry_after);
        }
        cg_http_send_error(req, c->info.request_id, err);
    }

    cg_chat_finish(c, err->status, NULL, err, error_class);
}


/*
 * Ends the request after its response went out: logs it, writes its row to the
 * request log, wipes the client's key and frees everything.
 */
void
cg_chat_finish(cg_chat_t *c, int status, const cg_usage_t *usage,
    const cg_error_t *err, const char *error_class)
{
    cg_server_t   *srv = c->srv;
    cg_log_row_t   row;
    int            writing;
    const char    *provider = "-", *model = "-";

    cg_log_row_init(&row);
    row.time_us = c->start_us;
    row.status = status;
    row.ok = (status == 200 && err == NULL);
    row.latency_ms = cg_chat_latency_ms(c);
    cg_chat_copy(row.request_id, sizeof(row.request_id), c->info.request_id);
    cg_chat_copy(row.client_addr, sizeof(row.client_addr), c->info.client_addr);
    cg_chat_copy(row.key_id, sizeof(row.key_id), c->info.key_id);

    if (c->chat_parsed) {
        provider = cg_provider_name(c->chat.provider);
        model = c->chat.model;
        cg_chat_copy(row.provider, sizeof(row.provider), provider);
        cg_chat_copy(row.model, sizeof(row.model), model);
        row.stream = c->chat.stream;
    }

    if (c->stream != NULL) {
        cg_chat_stream_log(c, &row);
    }

    if (usage != NULL) {
        row.prompt_tokens = usage->prompt_tokens;
        row.completion_tokens = usage->completion_tokens;
        row.total_tokens = usage->total_tokens;
    }

    if (err != NULL) {
        cg_chat_copy(row.error_class, sizeof(row.error_class), error_class);
        cg_chat_copy(row.error_message, sizeof(row.error_message), err->message);
        cg_redact(row.error_message, sizeof(row.error_message), c->api_key);
    }

    if (status >= 500) {
        cg_log_warn(c->info.request_id, "provider \"%s\" model \"%s\": %d %s: "
                    "%s", provider, model, status, row.error_class,
                    row.error_message);
    } else if (err != NULL) {
        cg_log_info(c->info.request_id, "provider \"%s\" model \"%s\": %d %s: "
                    "%s", provider, model, status, row.error_class,
                    row.error_message);
    } else {
        /* the request log row records every success; a line each costs a write(2) */
        cg_log_debug(c->info.request_id, "provider \"%s\" model \"%s\": %d "
                     "in %d ms", provider, model, status, row.latency_ms);
    }

    cg_logwriter_add(srv->logwriter, &row);

    cg_chat_detach(c);
    if (c->upstream != NULL) {
        cg_upstream_cancel(c->upstream);
    }
    if (c->retry_timer != NULL) {
        event_free(c->retry_timer);
    }
    if (c->stream != NULL) {
        cg_chat_stream_free(c);
    }
    if (c->call_built) {
        cg_provider_call_free(&c->call);
    }
    if (c->chat_parsed) {
        cg_chat_request_free(&c->chat);
    }
    free(c->body);
    if (c->api_key != NULL) {
        explicit_bzero(c->api_key, c->api_key_len);
        free(c->api_key);
    }
    free(c->base_url);
    writing = c->writing;
    free(c);

    if (!writing) {
        cg_chat_leave(srv);
    }
}


int
cg_chat_latency_ms(const cg_chat_t *c)
{
    struct timespec  now;

    clock_gettime(CLOCK_MONOTONIC, &now);

    return (int) ((now.tv_sec - c->start.tv_sec) * 1000
                  + (now.tv_nsec - c->start.tv_nsec) / 1000000);
}


/*
 * Copies src into dst, cut to size - 1 bytes at a UTF-8 character boundary:
 * the log writer would turn a split character into '?'.
 */
static void
cg_chat_copy(char *dst, size_t size, const char *src)
{
    size_t  len = cg_utf8_cut(src, strnlen(src, size), size - 1);

    memcpy(dst, src, len);
    dst[len] = '\0';
}
