/*
 * The HTTP server: the unix socket, routing, request identity and the
 * helpers that send JSON responses.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "chat.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "revoked.h"

/*
 * Connections nginx may open before the worker accepts them. A unix socket
 * whose queue is full fails connect() at once with EAGAIN, and nginx then
 * returns 502, so a burst of new streams needs room. Linux caps the value
 * at net.core.somaxconn.
 */
#define CG_HTTP_BACKLOG  4096

/* The shortest idle timeout of a connection from nginx, in seconds. */
#define CG_HTTP_IDLE_MIN_S  120

typedef enum {
    CG_ROUTE_COMPLETIONS,
    CG_ROUTE_FORM,
    CG_ROUTE_HEALTH,
    CG_ROUTE_ADMIN             /* any path under /admin/api/ */
} cg_route_id_t;

typedef struct {
    const char               *path;
    cg_http_method_t      method;
    const char               *allow;       /* the Allow header of a 405 */
    cg_route_id_t             id;
} cg_route_t;

static const cg_route_t  cg_routes[] = {
    { "/v1/chat/completions", CG_HTTP_POST, "POST", CG_ROUTE_COMPLETIONS },
    { "/chat", CG_HTTP_POST, "POST", CG_ROUTE_FORM },
    { "/healthz", CG_HTTP_GET, "GET, HEAD", CG_ROUTE_HEALTH },
};

/* The inode of the socket file we created, so that we unlink only ours. */
static ino_t  cg_http_socket_ino;

static int cg_http_listen(const cg_conf_t *conf);
static int cg_http_remove_stale(const char *path);
static void cg_http_route(cg_http_req_t *req, void *arg);
static void cg_http_first(const char **header, const char *value);
static void cg_http_request_info(cg_http_req_t *req,
    cg_request_info_t *info);
static void cg_http_new_request_id(char *id);
static int cg_http_copy_token(const char *value, char *dst, size_t size);
static int cg_http_token_revoked(cg_server_t *srv,
    cg_http_req_t *req, const cg_request_info_t *info,
    cg_route_id_t route_id);
static void cg_http_log_refused_chat(cg_server_t *srv,
    const cg_request_info_t *info, const cg_error_t *err,
    const char *error_class);


int
cg_http_method_matches(cg_http_method_t route, cg_http_method_t got)
{
    /* the server sends the headers of a HEAD response and drops its body */
    return got == route || (got == CG_HTTP_HEAD && route == CG_HTTP_GET);
}


int
cg_http_start(cg_server_t *srv)
{
    cg_http_limits_t  limits;
    int               fd;

    /*
     * The chat handler rejects bodies above max_body_size with its own 413.
     * The server's limit only stops a body that is far too large from being
     * read at all.
     */
    limits.max_head_size = 64 * 1024;
    limits.max_body_size = srv->conf->max_body_size * 2 + 65536;

    /*
     * Longer than any provider call, so that a slow response is not cut.
     * Also longer than nginx's keepalive_timeout (60 s in conf.d), so that
     * nginx closes an idle connection first and never sends a request on
     * one that the worker is closing.
     */
    limits.timeout_s = (int) (srv->conf->request_timeout_ms / 1000) + 30;
    if (limits.timeout_s < CG_HTTP_IDLE_MIN_S) {
        limits.timeout_s = CG_HTTP_IDLE_MIN_S;
    }

    fd = cg_http_listen(srv->conf);
    if (fd == -1) {
        return -1;
    }

    srv->http = cg_http_listener_new(srv->base, fd, &limits, cg_http_route,
                                     srv);
    if (srv->http == NULL) {
        close(fd);
        unlink(srv->conf->socket_path);
        return -1;
    }

    return 0;
}


void
cg_http_stop_accepting(cg_server_t *srv)
{
    struct stat  st;

    if (srv->http == NULL || srv->stopped_accepting) {
        return;
    }

    srv->stopped_accepting = 1;
    cg_http_listener_stop(srv->http);

    if (lstat(srv->conf->socket_path, &st) == 0
        && st.st_ino == cg_http_socket_ino)
    {
        unlink(srv->conf->socket_path);
    }
}


void
cg_http_free(cg_server_t *srv)
{
    cg_http_stop_accepting(srv);

    if (srv->http != NULL) {
        cg_http_listener_free(srv->http);
        srv->http = NULL;
    }
}


void
cg_http_send_json(cg_http_req_t *req, const char *request_id,
    int status, const char *body, ssize_t len)
{
    cg_http_add_header(req, "Content-Type", "application/json");
    cg_http_add_header(req, "Cache-Control", "no-store");
    cg_http_add_header(req, "X-Request-Id", request_id);

    /* HTTP requires a challenge with every 401: the same as the module's */
    if (status == 401) {
        cg_http_add_header(req, "WWW-Authenticate",
                           "Bearer realm=\"chatgate\"");
    }

    cg_http_reply(req, status, body, len < 0 ? strlen(body) : (size_t) len);
}


void
cg_http_send_error(cg_http_req_t *req, const char *request_id,
    const cg_error_t *err)
{
    char    *body;
    size_t   len;

    body = cg_error_json(err, &len);
    if (body == NULL) {
        cg_http_send_json(req, request_id, 500, "{\"error\":{\"message\":"
            "\"out of memory\",\"type\":\"server_error\",\"param\":null,"
            "\"code\":null}}\n", -1);
        return;
    }

    cg_http_send_json(req, request_id, err->status, body, (ssize_t) len);
    free(body);
}


/* Creates, binds and listens on the unix socket. Returns the fd or -1. */
static int
cg_http_listen(const cg_conf_t *conf)
{
    struct sockaddr_un  sa;
    struct stat         st;
    mode_t              mask;
    int                 fd, rc;

    if (strlen(conf->socket_path) >= sizeof(sa.sun_path)) {
        cg_log_error(NULL, "socket path \"%s\" is longer than %zu bytes",
                     conf->socket_path, sizeof(sa.sun_path) - 1);
        return -1;
    }

    if (cg_http_remove_stale(conf->socket_path) != 0) {
        return -1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, conf->socket_path);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        cg_log_error(NULL, "socket() failed: %s", strerror(errno));
        return -1;
    }

    /* No other user may connect between bind() and chmod(). */
    mask = umask(0077);
    rc = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
    umask(mask);

    if (rc != 0) {
        cg_log_error(NULL, "cannot bind socket \"%s\": %s", conf->socket_path,
                     strerror(errno));
        goto fail;
    }

    if (conf->socket_group != (gid_t) -1
        && chown(conf->socket_path, (uid_t) -1, conf->socket_group) != 0)
    {
        cg_log_error(NULL, "cannot give socket \"%s\" to group %ld: %s",
                     conf->socket_path, (long) conf->socket_group,
                     strerror(errno));
        unlink(conf->socket_path);
        goto fail;
    }

    if (chmod(conf->socket_path, conf->socket_mode) != 0
        || lstat(conf->socket_path, &st) != 0
        || listen(fd, CG_HTTP_BACKLOG) != 0)
    {
        cg_log_error(NULL, "cannot set up socket \"%s\": %s",
                     conf->socket_path, strerror(errno));
        unlink(conf->socket_path);
        goto fail;
    }

    cg_http_socket_ino = st.st_ino;
    return fd;

fail:

    close(fd);
    return -1;
}


/*
 * Removes a socket file left by a worker that did not exit cleanly. Refuses
 * when the path is not a socket or a process still accepts on it.
 */
static int
cg_http_remove_stale(const char *path)
{
    struct sockaddr_un  sa;
    struct stat         st;
    int                 fd, rc;

    if (lstat(path, &st) != 0) {
        return 0;
    }

    if (!S_ISSOCK(st.st_mode)) {
        cg_log_error(NULL, "socket path \"%s\" exists and is not a socket",
                     path);
        return -1;
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        cg_log_error(NULL, "socket() failed: %s", strerror(errno));
        return -1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);

    rc = connect(fd, (struct sockaddr *) &sa, sizeof(sa));
    close(fd);

    if (rc == 0 || errno != ECONNREFUSED) {
        cg_log_error(NULL, "socket \"%s\" is in use by another process; stop "
                     "it or choose another CHATGATE_SOCKET", path);
        return -1;
    }

    if (unlink(path) != 0) {
        cg_log_error(NULL, "cannot remove stale socket \"%s\": %s", path,
                     strerror(errno));
        return -1;
    }

    cg_log_info(NULL, "removed stale socket \"%s\"", path);
    return 0;
}


static void
cg_http_route(cg_http_req_t *req, void *arg)
{
    cg_server_t        *srv = arg;
    cg_request_info_t   info;
    cg_error_t          err;
    const cg_route_t   *route = NULL;
    const char         *path;
    size_t              i;

    cg_http_request_info(req, &info);

    path = cg_http_path(req);

    for (i = 0; i < sizeof(cg_routes) / sizeof(cg_routes[0]); i++) {
        if (strcmp(path, cg_routes[i].path) == 0) {
            route = &cg_routes[i];
            break;
        }
    }

    if ((route == NULL || route->id != CG_ROUTE_HEALTH)
        && cg_http_token_revoked(srv, req, &info,
                                 route ? route->id : CG_ROUTE_ADMIN))
    {
        return;
    }

    if (route == NULL && strncmp(path, "/admin/api/", 11) == 0) {
        if (srv->stopping) {
            cg_error_set(&err, 503, "server_error",
                         "the worker is shutting down");
            cg_http_send_error(req, info.request_id, &err);
            return;
        }

        cg_admin_handle(srv, req, &info, path);
        return;
    }

    if (route == NULL) {
        cg_error_set(&err, 404, "invalid_request_error", "unknown path");
        cg_http_send_error(req, info.request_id, &err);
        return;
    }

    if (!cg_http_method_matches(route->method,
                                cg_http_method(req)))
    {
        cg_http_add_header(req, "Allow",
                          route->allow);
        cg_error_set(&err, 405, "invalid_request_error",
                     "method not allowed on %s, use %s", route->path,
                     route->allow);
        cg_http_send_error(req, info.request_id, &err);
        return;
    }

    if (srv->stopping) {
        cg_http_add_header(req, "Connection", "close");
        cg_error_set(&err, 503, "server_error", "the worker is shutting down");
        cg_http_send_error(req, info.request_id, &err);

        if (route->id != CG_ROUTE_HEALTH) {
            cg_http_log_refused_chat(srv, &info, &err, "shutting_down");
        }
        return;
    }

    switch (route->id) {
    case CG_ROUTE_COMPLETIONS:
        cg_chat_handle(srv, req, &info, CG_CHAT_COMPLETIONS);
        break;
    case CG_ROUTE_FORM:
        cg_chat_handle(srv, req, &info, CG_CHAT_FORM);
        break;
    case CG_ROUTE_HEALTH:
        cg_health_handle(srv, req, &info);
        break;
    case CG_ROUTE_ADMIN:
        /* no table entry has it: admin paths are routed above */
        break;
    }
}


/*
 * Answers 401 and returns 1 when nginx vouched for a JWT whose id is
 * revoked. nginx checks its own copy of the list, which is empty after an
 * nginx restart until the next limits sync; this check covers that window.
 */
static int
cg_http_token_revoked(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, cg_route_id_t route_id)
{
    const char  *jti;
    cg_error_t   err;

    if (srv->revoked == NULL) {
        return 0;
    }

    jti = info->jti;
    if (jti == NULL || !cg_revoked_contains(srv->revoked, jti)) {
        return 0;
    }

    cg_log_info(info->request_id, "token id %.64s is revoked, request from "
                "%s rejected", jti, info->client_addr);
    cg_error_set(&err, 401, "authentication_error", "the token is revoked: "
                 "log in again or ask an admin for a new token");
    cg_http_send_error(req, info->request_id, &err);

    if (route_id != CG_ROUTE_ADMIN) {
        cg_http_log_refused_chat(srv, info, &err, "auth");
    }
    return 1;
}


/*
 * Writes the chat_logs row of a chat refused with err before the chat
 * handler saw it, so that every chat that reached the worker has a row.
 * NOTE: a row added after the shutdown drained the log writer is lost. The
 * drain starts only once no request is in flight, so only a request that
 * arrives in that last moment loses its row.
 */
static void
cg_http_log_refused_chat(cg_server_t *srv, const cg_request_info_t *info,
    const cg_error_t *err, const char *error_class)
{
    cg_log_row_t     row;
    struct timespec  now;

    if (srv->logwriter == NULL) {
        return;
    }

    clock_gettime(CLOCK_REALTIME, &now);

    cg_log_row_init(&row);
    row.time_us = (int64_t) now.tv_sec * 1000000 + now.tv_nsec / 1000;
    row.status = err->status;
    row.ok = 0;
    row.latency_ms = 0;
    snprintf(row.request_id, sizeof(row.request_id), "%s", info->request_id);
    snprintf(row.client_addr, sizeof(row.client_addr), "%s",
             info->client_addr);
    snprintf(row.key_id, sizeof(row.key_id), "%s",
             info->key_id_given ? info->key_id : "byok");
    snprintf(row.error_class, sizeof(row.error_class), "%s", error_class);
    /* 200 bytes, cut at a UTF-8 character boundary */
    snprintf(row.error_message, sizeof(row.error_message), "%.*s",
             (int) cg_utf8_cut(err->message, strlen(err->message), 200),
             err->message);

    cg_logwriter_add(srv->logwriter, &row);
}


/*
 * Fills info from the X-Chatgate-* headers that nginx sets, in one pass
 * over the header list. Of a repeated header the first counts, as with
 * cg_http_header(). A missing or malformed request id is replaced by a
 * fresh random one, so that direct use of the socket still yields
 * traceable responses.
 */
static void
cg_http_request_info(cg_http_req_t *req, cg_request_info_t *info)
{
    cg_http_header_t  *headers, *h;
    const char        *request_id = NULL, *client_addr = NULL;
    const char        *key_id = NULL;
    size_t             n, i;

    memset(info, 0, sizeof(*info));

    headers = cg_http_headers(req, &n);

    for (i = 0; i < n; i++) {
        h = &headers[i];

        if (cg_http_header_is(h, "Authorization")) {
            cg_http_first(&info->authorization, h->value);
        } else if (cg_http_header_is(h, "X-Chatgate-Request-Id")) {
            cg_http_first(&request_id, h->value);
        } else if (cg_http_header_is(h, "X-Chatgate-Client-Addr")) {
            cg_http_first(&client_addr, h->value);
        } else if (cg_http_header_is(h, "X-Chatgate-Key-Id")) {
            cg_http_first(&key_id, h->value);
        } else if (cg_http_header_is(h, "X-Chatgate-Jti")) {
            cg_http_first(&info->jti, h->value);
        } else if (cg_http_header_is(h, "X-Chatgate-Models")) {
            cg_http_first(&info->models, h->value);
        }
    }

    if (cg_http_copy_token(request_id, info->request_id,
                           sizeof(info->request_id)) != 0)
    {
        cg_http_new_request_id(info->request_id);
    }

    if (cg_http_copy_token(client_addr, info->client_addr,
                           sizeof(info->client_addr)) != 0)
    {
        strcpy(info->client_addr, "unix");
    }

    cg_http_copy_token(key_id, info->key_id, sizeof(info->key_id));
    info->key_id_given = key_id != NULL;
}


static void
cg_http_first(const char **header, const char *value)
{
    if (*header == NULL) {
        *header = value;
    }
}


/* Writes 32 random hex digits and a NUL into id. */
static void
cg_http_new_request_id(char *id)
{
    static uint64_t  seq;
    unsigned char    rnd[16];
    struct timespec  now;
    size_t           i;

    /*
     * With GRND_NONBLOCK, getrandom() fails with EAGAIN while the kernel's
     * pool is not yet initialized (getrandom(2)). Time and a counter then
     * still keep ids unique within this process.
     */
    if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t) sizeof(rnd)) {
        clock_gettime(CLOCK_REALTIME, &now);
        seq++;
        memcpy(rnd, &now, 8);
        memcpy(rnd + 8, &seq, 8);
    }

    for (i = 0; i < sizeof(rnd); i++) {
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    }
}


/*
 * Copies value into dst when it is 1 to size - 1 characters of letters,
 * digits and ".:-_". Returns 0, or -1 (dst left "") otherwise.
 */
static int
cg_http_copy_token(const char *value, char *dst, size_t size)
{
    static const unsigned char  token_char[256] = {
        ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
        ['.'] = 1, [':'] = 1, ['-'] = 1, ['_'] = 1
    };
    size_t  len;

    dst[0] = '\0';

    if (value == NULL) {
        return -1;
    }

    for (len = 0; token_char[(unsigned char) value[len]]; len++) {
        /* void */
    }

    if (value[len] != '\0' || len == 0 || len >= size) {
        return -1;
    }

    memcpy(dst, value, len + 1);
    return 0;
}
