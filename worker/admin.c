#include <string.h>
#include <openssl/crypto.h>
#include <event2/http.h>

#include "admin.h"
#include "log.h"


#define CG_ADMIN_PREFIX  "/admin/api"

static const cg_admin_route_t *const  cg_admin_tables[] = {
    cg_admin_limits_routes,
    cg_admin_keys_routes,
    cg_admin_users_routes,
};

static const char  *cg_role_names[] = { "none", "viewer", "operator", "admin" };

static cg_role_t cg_admin_caller(const cg_server_t *srv,
    cg_http_req_t *req, cg_admin_match_t *match);
static int cg_admin_match(const char *pattern, const char *path,
    cg_admin_match_t *match);


void
cg_admin_handle(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const char *path)
{
    const cg_admin_route_t  *route, *found = NULL;
    cg_admin_match_t         match;
    cg_error_t               err;
    int                      path_known = 0;
    size_t                   t;

    memset(&match, 0, sizeof(match));
    path += sizeof(CG_ADMIN_PREFIX) - 1;

    for (t = 0; t < sizeof(cg_admin_tables) / sizeof(cg_admin_tables[0]); t++) {
        for (route = cg_admin_tables[t]; route->pattern != NULL; route++) {
            if (cg_admin_match(route->pattern, path, &match) != 0) {
                continue;
            }

            path_known = 1;

            if (cg_http_method_matches(route->method,
                                       cg_http_method(req)))
            {
                found = route;
                goto matched;
            }
        }
    }

matched:

    if (found == NULL) {
        cg_error_set(&err, path_known ? 405 : 404, "invalid_request_error",
                     path_known ? "method not allowed on this admin path"
                                : "unknown admin path");
        cg_http_send_error(req, info->request_id, &err);
        return;
    }

    match.role = cg_admin_caller(srv, req, &match);

    if (match.role < found->role) {
        if (match.role == CG_ROLE_NONE) {
            cg_log_info(info->request_id, "admin request without a valid "
                        "credential from %s", info->client_addr);
            cg_error_set(&err, 401, "authentication_error",
                         "send X-Admin-Token or an admin JWT");
        } else {
            cg_log_info(info->request_id, "role \"%s\" of \"%s\" may not use "
                        "this admin endpoint, it needs \"%s\"",
                        cg_role_name(match.role), match.subject,
                        cg_role_name(found->role));
            cg_error_set(&err, 403, "permission_error",
                         "role \"%s\" may not do this, it needs \"%s\"",
                         cg_role_name(match.role), cg_role_name(found->role));
        }

        cg_http_send_error(req, info->request_id, &err);
        return;
    }

    found->handler(srv, req, info, &match);
}


const char *
cg_admin_body(cg_http_req_t *req, const cg_request_info_t *info,
    size_t max, size_t *len)
{
    const char  *body;
    cg_error_t   err;
    size_t       n;

    body = cg_http_body(req, &n);

    if (n > max) {
        cg_error_set(&err, 413, "invalid_request_error",
                     "request body of %zu bytes is over the limit of %zu",
                     n, max);
        cg_http_send_error(req, info->request_id, &err);
        return NULL;
    }

    /* The server ends the body with a NUL, so handlers may treat it as text. */
    *len = n;

    return body;
}


const char *
cg_role_name(cg_role_t role)
{
    return role <= CG_ROLE_ADMIN ? cg_role_names[role] : "none";
}


int
cg_role_by_name(const char *name, cg_role_t *role)
{
    int  r;

    for (r = CG_ROLE_VIEWER; r <= CG_ROLE_ADMIN; r++) {
        if (strcmp(name, cg_role_names[r]) == 0) {
            *role = (cg_role_t) r;
            return 0;
        }
    }

    return -1;
}


/*
 * Returns the caller's role: admin for a correct X-Admin-Token, the role
 * nginx vouched for in X-Chatgate-Role, else none.
 */
static cg_role_t
cg_admin_caller(const cg_server_t *srv, cg_http_req_t *req,
    cg_admin_match_t *match)
{
    const char  *token, *role_name, *subject;
    cg_role_t    role;
    size_t       len;

    token = cg_http_header(req, "X-Admin-Token");
    if (token != NULL && srv->conf->admin_token != NULL) {
        len = strlen(srv->conf->admin_token);

        if (strlen(token) == len
            && CRYPTO_memcmp(token, srv->conf->admin_token, len) == 0)
        {
            strcpy(match->subject, "admin-token");
            return CG_ROLE_ADMIN;
        }
    }

    role_name = cg_http_header(req, "X-Chatgate-Role");
    if (role_name == NULL || cg_role_by_name(role_name, &role) != 0) {
        return CG_ROLE_NONE;
    }

    subject = cg_http_header(req, "X-Chatgate-Subject");
    snprintf(match->subject, sizeof(match->subject), "%s",
             subject ? subject : "jwt");

    return role;
}


/* Matches path against pattern; returns 0 and fills match->param on a match. */
static int
cg_admin_match(const char *pattern, const char *path, cg_admin_match_t *match)
{
    const char  *slash;
    char        *decoded;
    size_t       seg;

    match->nparams = 0;

    while (*pattern != '\0') {
        if (pattern[0] == '{' && pattern[1] == '}') {
            slash = strchr(path, '/');
            seg = slash ? (size_t) (slash - path) : strlen(path);

            if (seg == 0 || seg >= sizeof(match->param[0])
                || match->nparams == CG_ADMIN_MAX_PARAMS)
            {
                return -1;
            }

            memcpy(match->param[match->nparams], path, seg);
            match->param[match->nparams][seg] = '\0';

            decoded = evhttp_uridecode(match->param[match->nparams], 0, NULL);
            if (decoded == NULL || strlen(decoded) >= sizeof(match->param[0])) {
                free(decoded);
                return -1;
            }

            strcpy(match->param[match->nparams++], decoded);
            free(decoded);

            path += seg;
            pattern += 2;
            continue;
        }

        if (*pattern++ != *path++) {
            return -1;
        }
    }

    return *path == '\0' ? 0 : -1;
}
