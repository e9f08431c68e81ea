#ifndef CG_ADMIN_H
#define CG_ADMIN_H

#include "http.h"

/*
 * The admin API under /admin/api/. Each area (limits, keys, users, tokens)
 * keeps its routes in its own file, in a table that ends with a NULL
 * pattern; admin.c matches the path, checks the caller's role and calls the
 * handler.
 *
 * The caller's role comes from X-Admin-Token (compared in constant time
 * against ADMIN_TOKEN; it grants admin) or from X-Chatgate-Role, which the
 * nginx module sets after it verified a JWT and strips when a client sends
 * it. Whoever can reach the worker's socket directly is trusted like nginx.
 */

typedef enum {
    CG_ROLE_NONE = 0,          /* no credential: only for login */
    CG_ROLE_VIEWER,            /* may read */
    CG_ROLE_OPERATOR,          /* may also change limits */
    CG_ROLE_ADMIN              /* may do everything, keys and users included */
} cg_role_t;

#define CG_ADMIN_MAX_PARAMS  2

/* What the router found: the caller's role and the {} segments, decoded. */
typedef struct {
    cg_role_t   role;
    char        subject[128];  /* "admin-token", or the JWT's sub claim */
    int         nparams;
    char        param[CG_ADMIN_MAX_PARAMS][256];
} cg_admin_match_t;

typedef void (*cg_admin_handler_pt)(cg_server_t *srv,
    cg_http_req_t *req, const cg_request_info_t *info,
    const cg_admin_match_t *match);

/*
 * One route. pattern is a path under /admin/api such as "/limits/{}": each
 * {} matches one percent-decoded path segment (so a scope "ip:10.0.0.0/8"
 * arrives as ip:10.0.0.0%2F8).
 */
typedef struct {
    cg_http_method_t   method;
    const char            *pattern;
    cg_role_t              role;      /* minimum role allowed */
    cg_admin_handler_pt    handler;
} cg_admin_route_t;

extern const cg_admin_route_t  cg_admin_limits_routes[];
extern const cg_admin_route_t  cg_admin_keys_routes[];
extern const cg_admin_route_t  cg_admin_users_routes[];

/* Routes a request whose path starts with /admin/api/. */
void cg_admin_handle(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const char *path);

/*
 * Returns the request body as a NUL-terminated string (valid until the
 * request ends) and its length, or NULL after sending 413 when it is over
 * max bytes.
 */
const char *cg_admin_body(cg_http_req_t *req,
    const cg_request_info_t *info, size_t max, size_t *len);

/*
 * A query parameter that a route accepts: its name, and after
 * cg_admin_query() whether the request contains it and its decoded value.
 */
#define CG_ADMIN_PARAM_MAX  256

typedef struct {
    const char  *name;
    int          present;
    char         value[CG_ADMIN_PARAM_MAX];
} cg_admin_param_t;

/*
 * Parses the request's query into params, the n parameters the route
 * accepts, percent-decoding names and values ("+" is a space). A parameter
 * without "=" has the value "". Returns 0, or -1 after sending a 400 for an
 * unknown or repeated parameter, a malformed escape, an escaped NUL, or a
 * name or value of CG_ADMIN_PARAM_MAX bytes or more (admin_query.c).
 */
int cg_admin_query(cg_http_req_t *req, const cg_request_info_t *info,
    cg_admin_param_t *params, size_t n);

/* GET /admin/api/tokens, one page of client tokens (admin_tokens_list.c). */
void cg_tokens_list(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);

const char *cg_role_name(cg_role_t role);
int cg_role_by_name(const char *name, cg_role_t *role);

#endif
