/*
 * /admin/api/ for people and tokens: login and logout, admin users, client
 * tokens for stored keys, whoami, and the list of revoked token ids that
 * the nginx module needs.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin.h"
#include "json.h"
#include "jwt.h"
#include "keys.h"
#include "log.h"
#include "password.h"
#include "ratelimit.h"
#include "revoked.h"
#include "secret.h"
#include "users.h"

#define CG_USERS_BODY_MAX     16384
#define CG_USERS_COOKIE       "chatgate_session"
#define CG_USERS_LEEWAY_S     30
#define CG_TOKENS_TTL_MAX     (365L * 86400)

#define CG_USERS_COLUMNS                                                     \
    "id, email, role, " CG_SQL_TIME("created_at") ", disabled"

/* A login or user creation in progress; owns every pointer it holds. */
typedef struct {
    cg_admin_async_t  a;
    char              email[256];
    char              role[16];
    char             *password;        /* secret memory, password_len + 1 bytes */
    size_t            password_len;
    int               secure_cookie;
    char              user_id[CG_UUID_LEN + 1];
    int               disabled;
} cg_user_op_t;

/* A client token whose row is being stored; json contains the token. */
typedef struct {
    cg_admin_async_t  a;              /* first, so free(a) frees the op */
    char             *json;           /* the 201 body */
    size_t            json_size;
} cg_token_op_t;

/* A logout or token revocation in progress: the id, until its expiry. */
typedef struct {
    cg_admin_async_t  a;              /* first, so free(a) frees the op */
    char              jti[65];        /* the module takes up to 64 characters */
    long long         exp;
} cg_logout_op_t;

static void cg_users_login(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);
static void cg_users_logout(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);
static void cg_users_revoke_pushed(const char *error, void *arg);
static void cg_users_list(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);
static void cg_users_create(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);
static void cg_users_patch(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);
static void cg_tokens_create(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);
static void cg_tokens_revoked(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);
static void cg_tokens_revoke(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);
static void cg_tokens_store(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_jwt_claims_t *claims,
    const char *jti, char *json, size_t json_size);
static void cg_users_whoami(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);

const cg_admin_route_t  cg_admin_users_routes[] = {
    { CG_HTTP_POST,  "/login",          CG_ROLE_NONE,   cg_users_login },
    { CG_HTTP_POST,  "/logout",         CG_ROLE_NONE,   cg_users_logout },
    { CG_HTTP_GET,   "/users",          CG_ROLE_ADMIN,  cg_users_list },
    { CG_HTTP_POST,  "/users",          CG_ROLE_ADMIN,  cg_users_create },
    { CG_HTTP_PATCH, "/users/{}",       CG_ROLE_ADMIN,  cg_users_patch },
    { CG_HTTP_POST,  "/tokens",         CG_ROLE_ADMIN,  cg_tokens_create },
    { CG_HTTP_GET,   "/tokens",         CG_ROLE_ADMIN,  cg_tokens_list },
    { CG_HTTP_GET,   "/tokens/revoked", CG_ROLE_ADMIN,  cg_tokens_revoked },
    { CG_HTTP_POST,  "/tokens/{}/revoke", CG_ROLE_ADMIN, cg_tokens_revoke },
    { CG_HTTP_GET,   "/whoami",         CG_ROLE_VIEWER, cg_users_whoami },
    { 0, NULL, CG_ROLE_ADMIN, NULL }
};

/* The members that each body accepts. */
static const char *const  cg_users_login_members[] = {
    "email", "password", NULL
};
static const char *const  cg_users_create_members[] = {
    "email", "role", "password", NULL
};
static const char *const  cg_users_patch_members[] = {
    "role", "disabled", NULL
};
static const char *const  cg_tokens_create_members[] = {
    "key_id", "models", "ttl_s", NULL
};


static void
cg_user_op_free(cg_user_op_t *op)
{
    if (op->password != NULL) {
        cg_secret_free(op->password, op->password_len + 1);
    }
    free(op);
}


static void
cg_users_error(cg_http_req_t *req, const cg_request_info_t *info,
    int status, const char *type, const char *message)
{
    cg_error_t  err;

    cg_error_set(&err, status, type, "%s", message);
    cg_http_send_error(req, info->request_id, &err);
}


static void
cg_users_async_error(cg_admin_async_t *a, int status, const char *type,
    const char *message)
{
    cg_error_t  err;

    cg_error_set(&err, status, type, "%s", message);
    cg_admin_async_error(a, &err);
}


/*
 * Parses and wipes the body, copying the password member (if any) into
 * op's secret memory and wiping the parser's copy. Every member must be one
 * of names. Returns the tree, or NULL after sending the error response.
 */
static yajl_val
cg_users_parse_body(cg_http_req_t *req, const cg_request_info_t *info,
    cg_user_op_t *op, const char *const *names)
{
    yajl_val     root, v;
    const char  *body;
    char         errbuf[200], msg[256];
    size_t       len;

    body = cg_admin_body(req, info, CG_USERS_BODY_MAX, &len);
    if (body == NULL) {
        return NULL;
    }

    root = cg_json_parse_request(body, len,
                                 CG_JSON_NO_NUL | CG_JSON_NO_DUPLICATES,
                                 errbuf, sizeof(errbuf));
    explicit_bzero((char *) body, len);

    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        snprintf(msg, sizeof(msg), "invalid JSON body: %s",
                 root ? "expected an object" : errbuf);
        yajl_tree_free(root);
        cg_admin_bad_request(req, info, msg);
        return NULL;
    }

    v = cg_json_get(root, "password");
    if (v != NULL && YAJL_IS_STRING(v)) {
        if (op != NULL) {
            op->password_len = strlen(v->u.string);
            op->password = cg_secret_strndup(v->u.string, op->password_len);
        }
        explicit_bzero(v->u.string, strlen(v->u.string));
    }

    if (cg_admin_check_members(req, info, root, names) != 0) {
        yajl_tree_free(root);
        return NULL;
    }

    return root;
}


/* The JWT secret, or NULL after sending 503 when JWT_SECRET is unset. */
static const char *
cg_users_jwt_secret(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info)
{
    if (srv->conf->jwt_secret == NULL) {
        cg_users_error(req, info, 503, "server_error", "JWT_SECRET is not "
                       "set: set it to at least 32 random bytes to issue "
                       "tokens");
    }

    return srv->conf->jwt_secret;
}


/* Login. */

static void
cg_users_login_fail(cg_user_op_t *op)
{
    cg_log_info(op->a.info.request_id, "login failed from %s",
                op->a.info.client_addr);
    cg_users_async_error(&op->a, 401, "authentication_error",
                         "invalid email or password");
    cg_user_op_free(op);
}


/* Signs the session token and sends it in the JSON body and the console cookie. */
static void
cg_users_login_ok(cg_user_op_t *op)
{
    cg_server_t      *srv = op->a.srv;
    cg_jwt_claims_t   claims;
    char              jti[CG_JWT_ID_LEN + 1], err[200], *token, *cookie;
    char             *json;
    size_t            n;

    memset(&claims, 0, sizeof(claims));
    claims.sub = op->user_id;
    claims.email = op->email;
    claims.role = op->role;
    claims.iat = (int64_t) time(NULL);
    claims.exp = claims.iat + srv->conf->jwt_ttl_s;

    token = cg_jwt_sign((const unsigned char *) srv->conf->jwt_secret,
                        strlen(srv->conf->jwt_secret), &claims, jti, err,
                        sizeof(err));
    if (token == NULL) {
        cg_log_error(op->a.info.request_id, "signing a session token failed: "
                     "%s", err);
        cg_users_async_error(&op->a, 500, "server_error", "cannot sign the "
                             "session token");
        cg_user_op_free(op);
        return;
    }

    n = strlen(token) + 256;
    json = malloc(n);
    cookie = malloc(n);

    if (json != NULL && cookie != NULL && op->a.srv->http != NULL) {
        snprintf(json, n, "{\"token\":\"%s\",\"expires_at\":%lld,"
                 "\"role\":\"%s\"}", token, (long long) claims.exp, op->role);
        snprintf(cookie, n, CG_USERS_COOKIE "=%s; HttpOnly; SameSite=Strict; "
                 "Path=/admin; Max-Age=%ld%s", token, srv->conf->jwt_ttl_s,
                 op->secure_cookie ? "; Secure" : "");
        cg_http_add_header(op->a.req, "Set-Cookie", cookie);
        cg_log_info(op->a.info.request_id, "user %s logged in as %s, token "
                    "id %s", op->user_id, op->role, jti);
        cg_admin_async_json(&op->a, 200, json);
    } else {
        cg_users_async_error(&op->a, 500, "server_error", "out of memory");
    }

    explicit_bzero(token, strlen(token));
    if (json != NULL) {
        explicit_bzero(json, n);
    }
    if (cookie != NULL) {
        explicit_bzero(cookie, n);
    }
    free(token);
    free(json);
    free(cookie);
    cg_user_op_free(op);
}


static void
cg_users_login_checked(int result, const char *hash, void *arg)
{
    cg_user_op_t  *op = arg;

    (void) hash;

    if (result == 1 && !op->disabled && op->user_id[0] != '\0') {
        cg_users_login_ok(op);
    } else {
        cg_users_login_fail(op);
    }
}


/*
 * Runs the password check on the hasher for every outcome of the lookup,
 * an unknown email included, so that all failures take the same time.
 */
static void
cg_users_login_found(PGresult *res, const char *error, void *arg)
{
    cg_user_op_t  *op = arg;
    const char    *hash = NULL;

    if (error != NULL) {
        cg_log_error(op->a.info.request_id, "login lookup failed: %s", error);
        cg_users_async_error(&op->a, 503, "server_error", "the user database "
                             "is not available, retry later");
        cg_user_op_free(op);
        return;
    }

    if (PQntuples(res) == 1) {
        snprintf(op->user_id, sizeof(op->user_id), "%s", PQgetvalue(res, 0, 0));
        snprintf(op->role, sizeof(op->role), "%s", PQgetvalue(res, 0, 1));
        op->disabled = PQgetvalue(res, 0, 3)[0] == 't';
        hash = PQgetvalue(res, 0, 2);
    }

    if (cg_hasher_verify(op->a.srv->hasher, op->password, op->password_len,
                         hash, cg_users_login_checked, op) != 0)
    {
        cg_users_async_error(&op->a, 503, "server_error", "too many logins "
                             "at once, retry in a second");
        cg_user_op_free(op);
    }
}


static void
cg_users_login(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    cg_user_op_t  *op;
    yajl_val       root;
    const char    *email, *proto, *secure, *values[1];

    (void) match;

    if (cg_users_jwt_secret(srv, req, info) == NULL) {
        return;
    }

    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        cg_users_error(req, info, 500, "server_error", "out of memory");
        return;
    }

    root = cg_users_parse_body(req, info, op, cg_users_login_members);
    if (root == NULL) {
        cg_user_op_free(op);
        return;
    }

    email = cg_json_get_string(root, "email");
    if (email == NULL || op->password == NULL) {
        yajl_tree_free(root);
        cg_user_op_free(op);
        cg_admin_bad_request(req, info, "expected {\"email\": string, "
                             "\"password\": string}");
        return;
    }

    /* An implausible address is just an unknown user: no lookup matches it. */
    if (cg_users_email(email, op->email, sizeof(op->email)) != 0) {
        op->email[0] = '\0';
    }
    yajl_tree_free(root);

    proto = cg_http_header(req, "X-Forwarded-Proto");
    secure = getenv("CHATGATE_COOKIE_SECURE");
    op->secure_cookie = (proto != NULL && strcasecmp(proto, "https") == 0)
                        || (secure != NULL && strcmp(secure, "1") == 0);

    cg_admin_async_begin(&op->a, srv, req, info);

    values[0] = op->email;
    if (cg_db_query(srv->db, "SELECT id, role, password_hash, disabled FROM "
                    "admin_users WHERE email = $1", 1, values,
                    cg_users_login_found, op) != 0)
    {
        cg_users_async_error(&op->a, 503, "server_error", "the database queue "
                             "is full, retry later");
        cg_user_op_free(op);
    }
}


/* Logout. */

/* Finds the caller's session token: Authorization: Bearer, else the cookie. */
static const char *
cg_users_session_token(cg_http_req_t *req, size_t *len)
{
    const char  *v, *p;

    v = cg_http_header(req, "Authorization");
    if (v != NULL && strncasecmp(v, "Bearer ", 7) == 0) {
        *len = strlen(v + 7);
        return v + 7;
    }

    v = cg_http_header(req, "Cookie");
    for (p = v; p != NULL && (p = strstr(p, CG_USERS_COOKIE "=")) != NULL; p++) {
        if (p == v || p[-1] == ' ' || p[-1] == ';') {
            p += sizeof(CG_USERS_COOKIE);
            *len = strcspn(p, "; ");
            return p;
        }
    }

    return NULL;
}


/*
 * Stores the revocation, then pushes the id to nginx at once. A failed push
 * still ends the session: the next full push of the limits sync carries
 * every id of revoked_tokens.
 */
static void
cg_users_logged_out(PGresult *res, const char *error, void *arg)
{
    cg_logout_op_t  *op = arg;

    (void) res;

    if (error != NULL) {
        cg_log_error(op->a.info.request_id, "storing a revoked token failed: "
                     "%s", error);
        cg_users_async_error(&op->a, 503, "server_error", "logout failed: "
                             "the database is not available, retry later");
        free(op);
        return;
    }

    if (op->a.srv->revoked != NULL) {
        cg_revoked_add(op->a.srv->revoked, op->jti, op->exp);
    }

    if (op->a.srv->limits == NULL
        || cg_limits_revoke(op->a.srv->limits, op->jti, op->exp,
                            cg_users_revoke_pushed, op) != 0)
    {
        cg_users_revoke_pushed("the control location is not set or the "
                               "push could not start", op);
    }
}


static void
cg_users_revoke_pushed(const char *error, void *arg)
{
    cg_logout_op_t    *op = arg;
    cg_admin_async_t  *a = &op->a;

    if (error != NULL) {
        cg_log_warn(a->info.request_id, "token id %s is revoked but not yet "
                    "in nginx, the next limits sync pushes it: %s", op->jti,
                    error);
    }

    if (a->srv->http != NULL) {
        cg_http_add_header(a->req, "Set-Cookie", CG_USERS_COOKIE "=; HttpOnly; "
                          "SameSite=Strict; Path=/admin; Max-Age=0");
    }
    cg_admin_async_json(a, 200, "{\"logged_out\":true}");
    free(op);
}


/*
 * Revokes the caller's own session token by its jti, until its expiry, in
 * revoked_tokens and in the nginx module (see cg_users_logged_out).
 */
static void
cg_users_logout(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    cg_logout_op_t    *op;
    cg_jwt_claims_t    claims;
    const char        *secret, *token, *values[2];
    char               err[200], exp[24];
    size_t             len = 0;

    (void) match;

    secret = cg_users_jwt_secret(srv, req, info);
    if (secret == NULL) {
        return;
    }

    token = cg_users_session_token(req, &len);
    if (token == NULL
        || cg_jwt_verify((const unsigned char *) secret, strlen(secret), token,
                         len, (int64_t) time(NULL), CG_USERS_LEEWAY_S, &claims,
                         err, sizeof(err)) != 0)
    {
        cg_users_error(req, info, 401, "authentication_error", "logout needs "
                       "a valid session token in Authorization or the "
                       CG_USERS_COOKIE " cookie");
        return;
    }

    op = calloc(1, sizeof(*op));
    if (op == NULL || claims.jti == NULL
        || strlen(claims.jti) >= sizeof(op->jti))
    {
        cg_users_error(req, info, op ? 400 : 500, "invalid_request_error",
                       op ? "the token has no jti to revoke, or one longer "
                       "than 64 characters" : "out of memory");
        free(op);
        cg_jwt_claims_free(&claims);
        return;
    }

    memcpy(op->jti, claims.jti, strlen(claims.jti) + 1);
    op->exp = (long long) claims.exp;
    snprintf(exp, sizeof(exp), "%lld", op->exp);
    values[0] = claims.jti;
    values[1] = exp;

    cg_log_info(info->request_id, "token id %s of \"%s\" revoked by logout",
                claims.jti, claims.sub ? claims.sub : "-");
    cg_admin_async_begin(&op->a, srv, req, info);

    if (cg_db_query(srv->db, "INSERT INTO revoked_tokens (jti, expires_at) "
                    "VALUES ($1, to_timestamp($2)) ON CONFLICT (jti) DO "
                    "NOTHING", 2, values, cg_users_logged_out, op) != 0)
    {
        cg_users_async_error(&op->a, 503, "server_error", "the database "
                             "queue is full, retry later");
        free(op);
    }

    cg_jwt_claims_free(&claims);
}


/* Users. */

/* Sends a query's rows as a JSON array. */
static void
cg_users_answer_rows(PGresult *res, const char *error, void *arg)
{
    cg_admin_async_t  *a = arg;
    char              *json;

    if (error != NULL) {
        cg_log_error(a->info.request_id, "admin query failed: %s", error);
        cg_users_async_error(a, 503, "server_error", "the database is not "
                             "available, retry later");
        free(a);
        return;
    }

    json = cg_admin_rows_json(res);
    if (json == NULL) {
        cg_users_async_error(a, 500, "server_error", "out of memory");
    } else {
        cg_admin_async_json(a, 200, json);
    }

    free(json);
    free(a);
}


/* Starts a query whose rows are the response body. */
static void
cg_users_query_rows(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const char *sql)
{
    cg_admin_async_t  *a;

    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        cg_users_error(req, info, 500, "server_error", "out of memory");
        return;
    }

    cg_admin_async_begin(a, srv, req, info);

    if (cg_db_query(srv->db, sql, 0, NULL, cg_users_answer_rows, a) != 0) {
        cg_users_async_error(a, 503, "server_error", "the database queue is "
                             "full, retry later");
        free(a);
    }
}


static void
cg_users_list(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    (void) match;

    cg_users_query_rows(srv, req, info, "SELECT " CG_USERS_COLUMNS
                        " FROM admin_users ORDER BY email");
}


static void
cg_tokens_revoked(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    (void) match;

    cg_users_query_rows(srv, req, info, "SELECT jti, extract(epoch FROM "
                        "expires_at)::bigint AS exp FROM revoked_tokens "
                        "WHERE expires_at > now() ORDER BY expires_at");
}


/*
 * Sends the single row of an INSERT or UPDATE ... RETURNING as an object.
 * No row sends notfound_status with notfound_status_msg.
 */
static void
cg_users_answer_row(PGresult *res, const char *error, void *arg,
    int status, const char *notfound_status_msg, int notfound_status)
{
    cg_admin_async_t  *a = arg;
    char              *json;

    if (error != NULL || PQntuples(res) == 0) {
        if (error != NULL) {
            cg_log_error(a->info.request_id, "admin users query failed: %s",
                         error);
        }
        cg_users_async_error(a, error ? 503 : notfound_status,
                             "invalid_request_error",
                             error ? "the database is not available, retry "
                                     "later" : notfound_status_msg);
        return;
    }

    json = cg_admin_rows_json(res);
    if (json == NULL) {
        cg_users_async_error(a, 500, "server_error", "out of memory");
        return;
    }

    /* one row: answer the object, not the array */
    json[strlen(json) - 1] = '\0';
    cg_admin_async_json(a, status, json + 1);
    free(json);
}


static void
cg_users_inserted(PGresult *res, const char *error, void *arg)
{
    cg_user_op_t  *op = arg;

    if (error == NULL && PQntuples(res) == 1) {
        cg_log_info(op->a.info.request_id, "admin user %s created with role "
                    "%s", PQgetvalue(res, 0, 0), op->role);
    }

    cg_users_answer_row(res, error, &op->a, 201, "a user with this email "
                        "exists already", 409);
    cg_user_op_free(op);
}


static void
cg_users_hashed(int result, const char *hash, void *arg)
{
    cg_user_op_t  *op = arg;
    const char    *values[4];

    if (result != 0 || cg_uuid_v4(op->user_id) != 0) {
        cg_users_async_error(&op->a, 500, "server_error", "hashing the "
                             "password failed");
        cg_user_op_free(op);
        return;
    }

    values[0] = op->user_id;
    values[1] = op->email;
    values[2] = op->role;
    values[3] = hash;

    if (cg_db_query(op->a.srv->db, "INSERT INTO admin_users (id, email, role, "
                    "password_hash) VALUES ($1, $2, $3, $4) ON CONFLICT "
                    "(email) DO NOTHING RETURNING " CG_USERS_COLUMNS, 4,
                    values, cg_users_inserted, op) != 0)
    {
        cg_users_async_error(&op->a, 503, "server_error", "the database queue "
                             "is full, retry later");
        cg_user_op_free(op);
    }
}


static void
cg_users_create(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    cg_user_op_t  *op;
    yajl_val       root;
    cg_role_t      role;
    const char    *email, *role_name;
    char           reasons[512] = "";

    (void) match;

    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        cg_users_error(req, info, 500, "server_error", "out of memory");
        return;
    }

    root = cg_users_parse_body(req, info, op, cg_users_create_members);
    if (root == NULL) {
        cg_user_op_free(op);
        return;
    }

    email = cg_json_get_string(root, "email");
    role_name = cg_json_get_string(root, "role");

    if (email == NULL || cg_users_email(email, op->email, sizeof(op->email)) != 0) {
        strcat(reasons, "email: expected an address such as ops@example.com; ");
    }
    if (role_name == NULL || cg_role_by_name(role_name, &role) != 0) {
        strcat(reasons, "role: expected \"admin\", \"operator\" or \"viewer\"; ");
    } else {
        snprintf(op->role, sizeof(op->role), "%s", role_name);
    }
    if (op->password == NULL || op->password_len < CG_USERS_PASSWORD_MIN
        || op->password_len > CG_PASSWORD_MAX)
    {
        strcat(reasons, "password: expected 12 to 1024 bytes; ");
    }
    yajl_tree_free(root);

    if (reasons[0] != '\0') {
        reasons[strlen(reasons) - 2] = '\0';
        cg_admin_bad_request(req, info, reasons);
        cg_user_op_free(op);
        return;
    }

    cg_admin_async_begin(&op->a, srv, req, info);

    if (cg_hasher_hash(srv->hasher, op->password, op->password_len,
                       cg_users_hashed, op) != 0)
    {
        cg_users_async_error(&op->a, 503, "server_error", "too many password "
                             "operations at once, retry in a second");
        cg_user_op_free(op);
    }
}


static void
cg_users_patched(PGresult *res, const char *error, void *arg)
{
    cg_admin_async_t  *a = arg;

    cg_users_answer_row(res, error, a, 200, "no such user", 404);
    free(a);
}


/* Changes role and/or disabled. NOTE: tokens issued before stay valid until they expire. */
static void
cg_users_patch(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    cg_admin_async_t  *a;
    yajl_val           root, v;
    cg_role_t          role;
    const char        *role_name = NULL, *disabled = NULL, *values[3];
    char               reasons[256] = "";

    if (!cg_uuid_valid(match->param[0])) {
        cg_users_error(req, info, 404, "invalid_request_error", "no such user");
        return;
    }

    root = cg_users_parse_body(req, info, NULL, cg_users_patch_members);
    if (root == NULL) {
        return;
    }

    v = cg_json_get(root, "role");
    if (v != NULL) {
        role_name = YAJL_IS_STRING(v) ? v->u.string : NULL;
        if (role_name == NULL || cg_role_by_name(role_name, &role) != 0) {
            strcat(reasons, "role: expected \"admin\", \"operator\" or "
                   "\"viewer\"; ");
        }
    }

    v = cg_json_get(root, "disabled");
    if (v != NULL) {
        if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
            disabled = YAJL_IS_TRUE(v) ? "true" : "false";
        } else {
            strcat(reasons, "disabled: expected true or false; ");
        }
    }

    if (reasons[0] == '\0' && role_name == NULL && disabled == NULL) {
        strcat(reasons, "expected \"role\", \"disabled\" or both; ");
    }

    if (reasons[0] != '\0') {
        yajl_tree_free(root);
        reasons[strlen(reasons) - 2] = '\0';
        cg_admin_bad_request(req, info, reasons);
        return;
    }

    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        yajl_tree_free(root);
        cg_users_error(req, info, 500, "server_error", "out of memory");
        return;
    }

    cg_admin_async_begin(a, srv, req, info);

    values[0] = match->param[0];
    values[1] = role_name;
    values[2] = disabled;

    if (cg_db_query(srv->db, "UPDATE admin_users SET role = coalesce($2, role), "
                    "disabled = coalesce($3::boolean, disabled) WHERE id = $1 "
                    "RETURNING " CG_USERS_COLUMNS, 3, values,
                    cg_users_patched, a) != 0)
    {
        cg_users_async_error(a, 503, "server_error", "the database queue is "
                             "full, retry later");
        free(a);
    }

    yajl_tree_free(root);
}


/* Client tokens. */

/*
 * Checks models (absent, or 1 to CG_JWT_MAX_MODELS non-empty strings) into
 * claims. nginx passes the names on joined with commas in one header, and
 * rejects a token whose names contain a comma or a control character. A
 * space at either end of a name is rejected too, because the header's
 * parser drops the spaces around the whole value. The first and last
 * names would then match without their spaces, the others only with them.
 */
static int
cg_tokens_models(yajl_val v, cg_jwt_claims_t *claims, char **list)
{
    const char  *name, *p;
    size_t       i, len;

    if (v == NULL) {
        return 0;
    }

    if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0
        || v->u.array.len > CG_JWT_MAX_MODELS)
    {
        return -1;
    }

    for (i = 0; i < v->u.array.len; i++) {
        if (!YAJL_IS_STRING(v->u.array.values[i])) {
            return -1;
        }

        name = v->u.array.values[i]->u.string;
        len = strlen(name);
        if (len == 0 || len > 256 || name[0] == ' ' || name[len - 1] == ' ') {
            return -1;
        }

        for (p = name; *p != '\0'; p++) {
            if (*p == ',' || (unsigned char) *p < 0x20 || *p == 0x7f) {
                return -1;
            }
        }

        list[i] = v->u.array.values[i]->u.string;
    }

    claims->models = list;
    claims->nmodels = v->u.array.len;
    return 0;
}


static void
cg_tokens_create(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    cg_jwt_claims_t   claims;
    yajl_val          root;
    const char       *secret, *key_id;
    char             *models[CG_JWT_MAX_MODELS], *token, *json;
    char              reasons[512] = "", jti[CG_JWT_ID_LEN + 1], err[200];
    char              sub[64];
    long              ttl = srv->conf->jwt_ttl_s;
    size_t            n;

    if ((secret = cg_users_jwt_secret(srv, req, info)) == NULL
        || (root = cg_users_parse_body(req, info, NULL,
                                       cg_tokens_create_members)) == NULL)
    {
        return;
    }

    memset(&claims, 0, sizeof(claims));

    key_id = cg_json_get_string(root, "key_id");
    if (key_id == NULL || !cg_uuid_valid(key_id)
        || cg_vault_lookup(cg_keys_vault(srv->keys), key_id) == NULL)
    {
        strcat(reasons, "key_id: expected the id of a stored key that is "
               "usable, this one is unknown or revoked; ");
    }
    if (cg_tokens_models(cg_json_get(root, "models"), &claims, models) != 0) {
        strcat(reasons, "models: expected 1 to 64 model names without "
               "commas or control characters and without a space at "
               "either end; ");
    }
    if (cg_json_get(root, "ttl_s") != NULL
        && (cg_json_get_long(root, "ttl_s", &ttl) != 0 || ttl < 60
            || ttl > CG_TOKENS_TTL_MAX))
    {
        strcat(reasons, "ttl_s: expected 60 to 31536000 seconds; ");
    }

    if (reasons[0] != '\0') {
        yajl_tree_free(root);
        reasons[strlen(reasons) - 2] = '\0';
        cg_admin_bad_request(req, info, reasons);
        return;
    }

    snprintf(sub, sizeof(sub), "key:%s", key_id);
    claims.sub = sub;
    claims.role = "client";
    claims.key = (char *) key_id;
    claims.iat = (int64_t) time(NULL);
    claims.exp = claims.iat + ttl;

    token = cg_jwt_sign((const unsigned char *) secret, strlen(secret),
                        &claims, jti, err, sizeof(err));
    n = token ? strlen(token) + 256 : 0;
    json = token ? malloc(n) : NULL;

    if (json == NULL) {
        cg_log_error(info->request_id, "signing a client token failed: %s",
                     token ? "out of memory" : err);
        cg_users_error(req, info, 500, "server_error", "cannot sign the token");
    } else {
        snprintf(json, n, "{\"token\":\"%s\",\"jti\":\"%s\",\"key_id\":\"%s\","
                 "\"expires_at\":%lld}", token, jti, key_id,
                 (long long) claims.exp);
        cg_log_info(info->request_id, "client token %s issued for key %s by "
                    "\"%s\"", jti, key_id, match->subject);
        cg_tokens_store(srv, req, info, &claims, jti, json, n);
        json = NULL;
    }

    if (token != NULL) {
        explicit_bzero(token, strlen(token));
    }
    free(token);
    free(json);
    yajl_tree_free(root);
}


static void
cg_token_op_free(cg_token_op_t *op)
{
    explicit_bzero(op->json, op->json_size);
    free(op->json);
    free(op);
}


static void
cg_tokens_stored(PGresult *res, const char *error, void *arg)
{
    cg_token_op_t  *op = arg;

    (void) res;

    if (error != NULL) {
        cg_log_error(op->a.info.request_id, "storing a client token failed: "
                     "%s", error);
        cg_users_async_error(&op->a, 503, "server_error", "the token was not "
                             "issued: the database is not available, retry "
                             "later");
    } else {
        cg_admin_async_json(&op->a, 201, op->json);
    }

    cg_token_op_free(op);
}


/*
 * Records the token's id, key, models and expiry in client_tokens, then
 * answers 201 with json (owned, json_size bytes, wiped when done). A token
 * is handed out only once its row exists, so every token can be revoked.
 */
static void
cg_tokens_store(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_jwt_claims_t *claims,
    const char *jti, char *json, size_t json_size)
{
    cg_token_op_t  *op;
    const char     *values[4];
    char            exp[24], *models = NULL;
    yajl_gen        g;
    size_t          i, len;

    op = calloc(1, sizeof(*op));
    g = cg_json_gen_new();

    if (op != NULL && g != NULL && claims->nmodels > 0) {
        yajl_gen_array_open(g);
        for (i = 0; i < claims->nmodels; i++) {
            cg_json_gen_str(g, claims->models[i]);
        }
        yajl_gen_array_close(g);
        models = cg_json_gen_finish(g, &len);
        g = NULL;
    }
    if (g != NULL) {
        yajl_gen_free(g);
    }

    if (op == NULL || (claims->nmodels > 0 && models == NULL)) {
        explicit_bzero(json, json_size);
        free(json);
        free(op);
        free(models);
        cg_users_error(req, info, 500, "server_error", "out of memory");
        return;
    }

    op->json = json;
    op->json_size = json_size;
    snprintf(exp, sizeof(exp), "%lld", (long long) claims->exp);
    values[0] = jti;
    values[1] = claims->key;
    values[2] = models;
    values[3] = exp;

    cg_admin_async_begin(&op->a, srv, req, info);

    if (cg_db_query(srv->db, "INSERT INTO client_tokens (jti, key_id, models, "
                    "expires_at) VALUES ($1, $2, ARRAY(SELECT "
                    "json_array_elements_text($3::json)), to_timestamp($4))",
                    4, values, cg_tokens_stored, op) != 0)
    {
        cg_users_async_error(&op->a, 503, "server_error", "the database "
                             "queue is full, retry later");
        cg_token_op_free(op);
    }

    free(models);
}


static void
cg_tokens_revoke_pushed(const char *error, void *arg)
{
    cg_logout_op_t  *op = arg;
    char             json[160];

    if (error != NULL) {
        cg_log_warn(op->a.info.request_id, "client token %s is revoked but "
                    "not yet in nginx, the next limits sync pushes it: %s",
                    op->jti, error);
    }

    snprintf(json, sizeof(json), "{\"jti\":\"%s\",\"revoked\":true,"
             "\"expires_at\":%lld}", op->jti, op->exp);
    cg_admin_async_json(&op->a, 200, json);
    free(op);
}


static void
cg_tokens_revoked_row(PGresult *res, const char *error, void *arg)
{
    cg_logout_op_t  *op = arg;
    char             msg[160];

    if (error != NULL || PQntuples(res) == 0) {
        if (error != NULL) {
            cg_log_error(op->a.info.request_id, "revoking client token %s "
                         "failed: %s", op->jti, error);
        }
        snprintf(msg, sizeof(msg), "client token %s is unknown or already "
                 "revoked", op->jti);
        cg_users_async_error(&op->a, error ? 503 : 404, error
                             ? "server_error" : "invalid_request_error",
                             error ? "the database is not available, retry "
                             "later" : msg);
        free(op);
        return;
    }

    op->exp = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    cg_log_info(op->a.info.request_id, "client token %s revoked", op->jti);

    if (op->a.srv->revoked != NULL) {
        cg_revoked_add(op->a.srv->revoked, op->jti, op->exp);
    }

    if (op->a.srv->limits == NULL
        || cg_limits_revoke(op->a.srv->limits, op->jti, op->exp,
                            cg_tokens_revoke_pushed, op) != 0)
    {
        cg_tokens_revoke_pushed("the control location is not set or the "
                                "push could not start", op);
    }
}


/*
 * POST /tokens/{jti}/revoke: marks the client token revoked, adds its id to
 * revoked_tokens until its expiry and pushes it to nginx at once. A body,
 * if any, is ignored.
 */
static void
cg_tokens_revoke(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    cg_logout_op_t  *op;
    const char      *values[1];

    if (strlen(match->param[0]) >= sizeof(op->jti)) {
        cg_users_error(req, info, 404, "invalid_request_error", "unknown "
                       "client token: a token id has at most 64 characters");
        return;
    }

    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        cg_users_error(req, info, 500, "server_error", "out of memory");
        return;
    }

    strcpy(op->jti, match->param[0]);
    values[0] = op->jti;
    cg_admin_async_begin(&op->a, srv, req, info);

    if (cg_db_query(srv->db, CG_TOKENS_REVOKE_SQL("jti"), 1, values,
                    cg_tokens_revoked_row, op) != 0)
    {
        cg_users_async_error(&op->a, 503, "server_error", "the database "
                             "queue is full, retry later");
        free(op);
    }
}


static void
cg_users_whoami(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    yajl_gen   g;
    char      *json = NULL;
    size_t     len;

    (void) srv;

    g = cg_json_gen_new();
    if (g != NULL) {
        yajl_gen_map_open(g);
        cg_json_gen_str(g, "subject");
        cg_json_gen_str(g, match->subject);
        cg_json_gen_str(g, "role");
        cg_json_gen_str(g, cg_role_name(match->role));
        yajl_gen_map_close(g);
        json = cg_json_gen_finish(g, &len);
    }

    if (json == NULL) {
        cg_users_error(req, info, 500, "server_error", "out of memory");
        return;
    }

    cg_http_send_json(req, info->request_id, 200, json, -1);
    free(json);
}
