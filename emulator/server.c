/*
 * The HTTP server of one thread: routing by path suffix, authentication,
 * the journal record of each request and the immediate responses. Responses
 * that wait or stream go to deferred.c.
 */

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include <sys/queue.h>

#include <event2/keyvalq_struct.h>
#include <openssl/sha.h>

#include "emu.h"

#define EMU_BODY_MAX      (8 * 1024 * 1024)
#define EMU_TIMEOUT_SEC   120

typedef struct {
    emu_endpoint_t  endpoint;
    emu_format_t    format;
    int             methods;       /* EVHTTP_REQ_* accepted */
} emu_route_t;

typedef struct {
    const char     *suffix;
    emu_route_t     route;
} emu_suffix_route_t;

/* Checked in order, so "/api/chat" wins over nothing and the more specific
 * OpenRouter suffix comes before the OpenAI one. */
static const emu_suffix_route_t  emu_suffix_routes[] = {
    { "/api/chat",
      { EMU_ENDPOINT_OLLAMA_CHAT, EMU_FORMAT_OLLAMA, EVHTTP_REQ_POST } },
    { "/api/v1/chat/completions",
      { EMU_ENDPOINT_CHAT_COMPLETIONS, EMU_FORMAT_OPENROUTER,
        EVHTTP_REQ_POST } },
    { "/chat/completions",
      { EMU_ENDPOINT_CHAT_COMPLETIONS, EMU_FORMAT_OPENAI, EVHTTP_REQ_POST } },
    { "/messages",
      { EMU_ENDPOINT_MESSAGES, EMU_FORMAT_ANTHROPIC, EVHTTP_REQ_POST } },
    { "/api/tags",
      { EMU_ENDPOINT_OLLAMA_TAGS, EMU_FORMAT_OLLAMA, EVHTTP_REQ_GET } },
    { "/models",
      { EMU_ENDPOINT_MODELS, EMU_FORMAT_OPENAI, EVHTTP_REQ_GET } },
};

static void emu_handle(struct evhttp_request *req, void *arg);
static void emu_stop(evutil_socket_t fd, short events, void *arg);


emu_server_t *
emu_server_create(int listen_fd, int stop_fd)
{
    emu_server_t        *s;
    struct event_config *cfg;

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        emu_log("error", "out of memory for a server");
        close(listen_fd);
        return NULL;
    }
    s->listen_fd = listen_fd;
    s->stop_fd = stop_fd;

    /* NOTE: evhttp allocates several buffers per request and toggles epoll
     * interest per response; with yajl's tree parser that caps one thread
     * near 40 000 small requests/s on the 2-core build machine. */

    /* The changelist folds evhttp's read/write toggles within one loop
     * iteration into one epoll_ctl() call. */
    cfg = event_config_new();
    if (cfg != NULL) {
        event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK
                                   | EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        s->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    s->out = evbuffer_new();
    if (s->base == NULL || s->out == NULL) {
        emu_log("error", "cannot create an event base");
        goto fail;
    }

    s->http = evhttp_new(s->base);
    if (s->http == NULL
        || evhttp_accept_socket_with_handle(s->http, listen_fd) == NULL)
    {
        emu_log("error", "cannot start the HTTP server on fd %d", listen_fd);
        goto fail;
    }
    s->listen_fd = -1;

    evhttp_set_max_body_size(s->http, EMU_BODY_MAX);
    evhttp_set_timeout(s->http, EMU_TIMEOUT_SEC);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST
                               | EVHTTP_REQ_HEAD | EVHTTP_REQ_DELETE
                               | EVHTTP_REQ_PUT | EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(s->http, emu_handle, s);

    s->stop_event = event_new(s->base, stop_fd, EV_READ, emu_stop, s);
    if (s->stop_event == NULL || event_add(s->stop_event, NULL) != 0) {
        emu_log("error", "cannot watch the stop pipe");
        goto fail;
    }

    return s;

fail:
    emu_server_destroy(s);
    return NULL;
}


int
emu_server_run(emu_server_t *server)
{
    return event_base_dispatch(server->base);
}


void
emu_server_destroy(emu_server_t *s)
{
    /* Freeing the server closes connections, whose close callbacks return
     * the deferred responses to the free list. */
    if (s->http != NULL) {
        evhttp_free(s->http);
    }
    emu_deferred_free_all(s);

    if (s->stop_event != NULL) {
        event_free(s->stop_event);
    }
    if (s->out != NULL) {
        evbuffer_free(s->out);
    }
    if (s->base != NULL) {
        event_base_free(s->base);
    }
    if (s->listen_fd != -1) {
        close(s->listen_fd);
    }

    free(s->body);
    free(s);
}


static void
emu_stop(evutil_socket_t fd, short events, void *arg)
{
    emu_server_t  *s = arg;

    (void) fd;
    (void) events;
    event_base_loopbreak(s->base);
}


static bool
emu_has_suffix(const char *path, size_t len, const char *suffix)
{
    size_t  slen = strlen(suffix);

    return len >= slen && memcmp(path + len - slen, suffix, slen) == 0;
}


static bool
emu_route(const char *path, emu_route_t *route)
{
    size_t  i, len = strlen(path);

    for (i = 0; i < sizeof(emu_suffix_routes) / sizeof(emu_suffix_routes[0]);
         i++)
    {
        if (emu_has_suffix(path, len, emu_suffix_routes[i].suffix)) {
            *route = emu_suffix_routes[i].route;
            return true;
        }
    }

    return false;
}


static void
emu_sha256_hex(const char *data, size_t len, char *hex)
{
    static const char  digits[] = "0123456789abcdef";
    unsigned char      md[SHA256_DIGEST_LENGTH];
    int                i;

    SHA256((const unsigned char *) data, len, md);

    for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        hex[i * 2] = digits[md[i] >> 4];
        hex[i * 2 + 1] = digits[md[i] & 0xf];
    }
    hex[EMU_SHA256_HEX_LEN] = '\0';
}


/*
 * Finds the credential: the token of "Authorization: Bearer <token>", else
 * the x-api-key value. Returns NULL when neither is present and non-empty.
 */
static const char *
emu_find_credential(struct evkeyvalq *headers, bool *is_bearer)
{
    const char  *v;

    v = evhttp_find_header(headers, "Authorization");
    if (v != NULL && strncasecmp(v, "Bearer ", 7) == 0) {
        v += 7;
        while (*v == ' ') {
            v++;
        }
        if (*v != '\0') {
            *is_bearer = true;
            return v;
        }
    }

    v = evhttp_find_header(headers, "x-api-key");
    if (v != NULL && *v != '\0') {
        *is_bearer = false;
        return v;
    }

    return NULL;
}


/* Returns NULL when the request may pass, else the 401 message. */
static const char *
emu_check_auth(emu_format_t format, struct evkeyvalq *headers,
    const char *credential, bool is_bearer)
{
    switch (format) {
    case EMU_FORMAT_OPENAI:
    case EMU_FORMAT_OPENROUTER:
        if (credential == NULL || !is_bearer) {
            return "missing or empty \"Authorization: Bearer\" header";
        }
        return NULL;

    case EMU_FORMAT_ANTHROPIC:
        if (evhttp_find_header(headers, "x-api-key") == NULL
            || credential == NULL || is_bearer)
        {
            return "x-api-key header is required";
        }
        if (evhttp_find_header(headers, "anthropic-version") == NULL) {
            return "anthropic-version header is required";
        }
        return NULL;

    default:
        return NULL;
    }
}


/*
 * Copies the request body into the thread's scratch buffer with a NUL after
 * it. Returns the body or NULL when memory ran out.
 */
static const char *
emu_read_body(emu_server_t *s, struct evhttp_request *req, size_t *len)
{
    struct evbuffer  *in = evhttp_request_get_input_buffer(req);
    size_t            n = evbuffer_get_length(in);
    char             *p;

    if (n + 1 > s->body_size) {
        p = realloc(s->body, n + 1);
        if (p == NULL) {
            return NULL;
        }
        s->body = p;
        s->body_size = n + 1;
    }

    evbuffer_copyout(in, s->body, n);
    s->body[n] = '\0';
    *len = n;
    return s->body;
}


/* Copies src into dst with bytes outside printable ASCII replaced by '?'. */
static void
emu_copy_printable(char *dst, size_t size, const char *src)
{
    size_t  i;

    for (i = 0; src[i] != '\0' && i < size - 1; i++) {
        unsigned char c = (unsigned char) src[i];

        dst[i] = (c >= 0x20 && c < 0x7f) ? (char) c : '?';
    }
    dst[i] = '\0';
}


static const char *
emu_method_name(enum evhttp_cmd_type method)
{
    switch (method) {
    case EVHTTP_REQ_GET:     return "GET";
    case EVHTTP_REQ_POST:    return "POST";
    case EVHTTP_REQ_HEAD:    return "HEAD";
    case EVHTTP_REQ_PUT:     return "PUT";
    case EVHTTP_REQ_DELETE:  return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    default:                 return "OTHER";
    }
}


void
emu_send_error(struct evhttp_request *req, struct evbuffer *out,
    emu_format_t format, int status, int retry_after, const char *message)
{
    struct evkeyvalq  *headers = evhttp_request_get_output_headers(req);
    char               value[16];

    emu_write_error(out, format, status, message);
    evbuffer_add(out, "\n", 1);

    evhttp_add_header(headers, "Content-Type", "application/json");
    if (retry_after >= 0 && (status == 429 || status == 503)) {
        snprintf(value, sizeof(value), "%d", retry_after);
        evhttp_add_header(headers, "Retry-After", value);
    }

    evhttp_send_reply(req, status, emu_status_reason(status), out);
}


void
emu_send_complete(struct evhttp_request *req, struct evbuffer *out,
    const emu_call_t *call)
{
    emu_write_complete(out, call);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evhttp_send_reply(req, 200, "OK", out);
}


static void
emu_send_json(struct evhttp_request *req, struct evbuffer *out, int status)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evhttp_send_reply(req, status, emu_status_reason(status), out);
}


/*
 * Decides the status of a parsed chat request from its knobs: fail_first
 * counts the tag and fails with status (default 503) while the count is at
 * most N, and status alone fails every request. Returns 200 otherwise.
 */
static int
emu_knob_status(const emu_knobs_t *k)
{
    int  fail_status = (k->status >= 400) ? k->status : 503;

    if (k->fail_first >= 0) {
        return emu_fail_first_hit(k->tag, k->fail_first) ? fail_status : 200;
    }

    return (k->status >= 400) ? k->status : 200;
}


static void
emu_log_request(const emu_record_t *r)
{
    char  path[96], model[64];

    if (!emu_verbose) {
        return;
    }

    emu_copy_printable(path, sizeof(path), r->path);
    emu_copy_printable(model, sizeof(model), r->model);

    emu_log("info", "%s \"%s\" %d format %s model \"%s\" stream %s knobs %s",
            r->method, path, r->status, emu_format_name(r->format), model,
            r->stream ? "true" : "false",
            r->knobs_json[0] ? r->knobs_json : "{}");
}


static void
emu_record_finish(emu_record_t *r, emu_endpoint_t endpoint, int status)
{
    r->status = status;
    emu_journal_add(r);
    emu_stats_count(endpoint, status);
    emu_log_request(r);
}


/*
 * Handles a chat request of any format: auth, parse, knobs, then an
 * immediate response or a deferred one.
 */
static void
emu_handle_chat(emu_server_t *s, struct evhttp_request *req,
    const emu_route_t *route, emu_record_t *r, const char *credential,
    bool is_bearer)
{
    struct evkeyvalq  *headers = evhttp_request_get_input_headers(req);
    static __thread emu_call_t  call;
    const char        *body, *auth_error;
    char               err[256];
    size_t             len;
    int                status;

    auth_error = emu_check_auth(route->format, headers, credential, is_bearer);
    if (auth_error != NULL) {
        emu_record_finish(r, route->endpoint, 401);
        emu_send_error(req, s->out, route->format, 401, -1, auth_error);
        return;
    }

    body = emu_read_body(s, req, &len);
    if (body == NULL) {
        emu_log("error", "out of memory for a request body of %zu bytes",
                evbuffer_get_length(evhttp_request_get_input_buffer(req)));
        emu_record_finish(r, route->endpoint, 500);
        emu_send_error(req, s->out, route->format, 500, -1,
                       "out of memory for the request body");
        return;
    }

    if (emu_call_parse(&call, route->format, headers, body, len, err,
                       sizeof(err)) != 0)
    {
        snprintf(r->model, sizeof(r->model), "%s", call.model);
        emu_record_finish(r, route->endpoint, 400);
        emu_send_error(req, s->out, route->format, 400, -1, err);
        return;
    }

    call.id = emu_next_id();
    emu_knobs_render(&call.knobs);
    status = emu_knob_status(&call.knobs);

    snprintf(r->model, sizeof(r->model), "%s", call.model);
    r->stream = call.stream;
    memcpy(r->knobs_json, call.knobs.seen_json, call.knobs.seen_len + 1);
    emu_record_finish(r, route->endpoint, status);

    if (call.knobs.delay_ms > 0 || (call.stream && status == 200)) {
        if (emu_deferred_start(s, req, &call, status) != 0) {
            emu_log("error", "out of memory for deferred response %" PRIu64,
                    call.id);
            emu_call_release(&call);
            emu_send_error(req, s->out, route->format, 500, -1,
                           "out of memory for a deferred response");
        }
        return;
    }

    if (status != 200) {
        emu_send_error(req, s->out, route->format, status,
                       call.knobs.retry_after, NULL);
    } else {
        emu_send_complete(req, s->out, &call);
    }
    emu_call_release(&call);
}


/* Serves GET and DELETE on /_emulator/requests and GET /_emulator/stats. */
static void
emu_handle_control(emu_server_t *s, struct evhttp_request *req,
    const char *path, enum evhttp_cmd_type method)
{
    emu_stats_count(EMU_ENDPOINT_CONTROL, 200);

    if (strcmp(path, "/_emulator/requests") == 0) {
        if (method == EVHTTP_REQ_DELETE) {
            emu_journal_clear();
            evbuffer_add(s->out, "{\"cleared\":true}\n", 17);
            emu_send_json(req, s->out, 200);
            return;
        }
        if (method == EVHTTP_REQ_GET) {
            emu_journal_write(s->out);
            emu_send_json(req, s->out, 200);
            return;
        }

    } else if (strcmp(path, "/_emulator/stats") == 0) {
        if (method == EVHTTP_REQ_GET) {
            emu_stats_write(s->out);
            emu_send_json(req, s->out, 200);
            return;
        }

    } else {
        emu_send_error(req, s->out, EMU_FORMAT_OPENAI, 404, -1,
                       "unknown control path");
        return;
    }

    emu_send_error(req, s->out, EMU_FORMAT_OPENAI, 405, -1,
                   "method not allowed on this control path");
}


static void
emu_handle(struct evhttp_request *req, void *arg)
{
    emu_server_t          *s = arg;
    enum evhttp_cmd_type   method = evhttp_request_get_command(req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char            *path, *credential;
    emu_route_t            route;
    emu_record_t           r;
    struct timeval         tv;
    bool                   is_bearer = false;

    path = (uri != NULL) ? evhttp_uri_get_path(uri) : NULL;
    if (path == NULL || path[0] == '\0') {
        path = "/";
    }

    if (strncmp(path, "/_emulator/", 11) == 0) {
        emu_handle_control(s, req, path, method);
        return;
    }

    memset(&r, 0, sizeof(r));
    gettimeofday(&tv, NULL);
    r.time = tv.tv_sec + tv.tv_usec / 1e6;
    snprintf(r.method, sizeof(r.method), "%s", emu_method_name(method));
    snprintf(r.path, sizeof(r.path), "%s", path);

    credential = emu_find_credential(evhttp_request_get_input_headers(req),
                                     &is_bearer);
    r.has_credential = (credential != NULL);
    if (credential != NULL) {
        emu_sha256_hex(credential, strlen(credential), r.credential_sha256);
    }

    if (!emu_route(path, &route)) {
        emu_record_finish(&r, EMU_ENDPOINT_OTHER, 404);
        emu_send_error(req, s->out, EMU_FORMAT_OPENAI, 404, -1,
                       "unknown path: the emulator serves .../chat/completions,"
                       " .../messages, .../api/chat, .../models, .../api/tags");
        return;
    }
    r.format = route.format;

    if (!(method & route.methods)) {
        emu_record_finish(&r, route.endpoint, 405);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          route.methods == EVHTTP_REQ_POST ? "POST" : "GET");
        emu_send_error(req, s->out, route.format, 405, -1,
                       "method not allowed on this path");
        return;
    }

    switch (route.endpoint) {
    case EMU_ENDPOINT_MODELS:
        emu_record_finish(&r, route.endpoint, 200);
        emu_write_models(s->out);
        emu_send_json(req, s->out, 200);
        break;

    case EMU_ENDPOINT_OLLAMA_TAGS:
        emu_record_finish(&r, route.endpoint, 200);
        emu_write_tags(s->out);
        emu_send_json(req, s->out, 200);
        break;

    default:
        emu_handle_chat(s, req, &route, &r, credential, is_bearer);
        break;
    }
}
