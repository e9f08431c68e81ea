#ifndef CG_HTTP_H
#define CG_HTTP_H

#include <stddef.h>
#include <event2/event.h>

#include "conf.h"
#include "db.h"
#include "error.h"
#include "http_conn.h"
#include "logwriter.h"
#include "upstream.h"

/*
 * The HTTP server on the unix socket that nginx proxies to, and the state
 * every request handler shares. One per process; it borrows conf, db,
 * logwriter and upstream from main and owns the listening socket.
 */
typedef struct {
    struct event_base          *base;
    const cg_conf_t            *conf;
    cg_db_t                    *db;
    cg_logwriter_t             *logwriter;
    cg_upstream_t              *upstream;
    struct cg_keys_s           *keys;         /* stored provider keys (keys.h) */
    struct cg_hasher_s         *hasher;       /* password hashing threads (users.h) */
    struct cg_limits_s         *limits;       /* the rule sync (ratelimit.h) */
    struct cg_revoked_s        *revoked;      /* revoked token ids (revoked.h) */
    cg_http_listener_t         *http;         /* NULL once freed */
    int                         stopped_accepting;
    unsigned                    in_flight;    /* chat and async admin requests without a response yet */
    int                         stopping;
    void                      (*idle)(void *arg);  /* called when stopping and in_flight drops to 0 */
    void                       *idle_arg;
} cg_server_t;

/*
 * Event priorities of the worker's loop. Every event runs at libevent's
 * default, the middle one, except the translation of a stream after its
 * first content chunk. That runs at CG_LOOP_PRIORITY_BULK, only when no
 * other event is ready, so a stream's long tail does not delay other
 * requests or their first chunks.
 */
#define CG_LOOP_PRIORITIES     3
#define CG_LOOP_PRIORITY_BULK  2

/*
 * Identity of one request, from the headers nginx sets, and the headers
 * that the handlers read, found in one pass over the list. The pointers
 * point into the request's header list: a handler that outlives its
 * request must drop them when it lets the request go.
 */
typedef struct {
    char         request_id[48];
    char         client_addr[64];
    char         key_id[48];        /* "" when absent or malformed */
    int          key_id_given;      /* X-Chatgate-Key-Id was present, valid or not */
    const char  *jti;               /* X-Chatgate-Jti, or NULL */
    const char  *models;            /* X-Chatgate-Models, or NULL */
    const char  *authorization;     /* Authorization, or NULL */
} cg_request_info_t;

/*
 * Creates the socket at conf->socket_path (removing a stale file that
 * nothing listens on), and starts serving. Returns 0, or -1 (logged).
 */
int cg_http_start(cg_server_t *srv);

/* Closes the listening socket and removes its file. Idempotent. */
void cg_http_stop_accepting(cg_server_t *srv);

/* Closes every connection and frees the server's requests. */
void cg_http_free(cg_server_t *srv);

/*
 * Sends a JSON response with X-Request-Id. body is copied; len may be -1 for
 * a NUL-terminated body.
 */
void cg_http_send_json(cg_http_req_t *req, const char *request_id,
    int status, const char *body, ssize_t len);

/*
 * Returns 1 when a request with method got may use a route for method
 * route: the same method, or HEAD on a GET route.
 */
int cg_http_method_matches(cg_http_method_t route,
    cg_http_method_t got);

/* Sends err as an OpenAI-style error body. */
void cg_http_send_error(cg_http_req_t *req, const char *request_id,
    const cg_error_t *err);

/* Handles GET /healthz (health.c). */
void cg_health_handle(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info);

#endif
