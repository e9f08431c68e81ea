
/*
 * Authentication at the edge.  Admin locations take X-Admin-Token or a
 * gateway JWT (Authorization: Bearer, or the console's session cookie)
 * whose role the location allows.  Chat locations verify a credential
 * that looks like a JWT as a client token, so it never reaches a
 * provider.  Secrets come from files read at configuration time.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "ngx_http_chatgate.h"
#include "ngx_http_chatgate_jwt.h"


#define NGX_HTTP_CHATGATE_MIN_ADMIN_TOKEN  16
#define NGX_HTTP_CHATGATE_MIN_JWT_SECRET   32
#define NGX_HTTP_CHATGATE_MAX_SECRET_FILE  4096

#define NGX_HTTP_CHATGATE_ROLES_ALL                                           \
    (NGX_HTTP_CHATGATE_ROLE_VIEWER|NGX_HTTP_CHATGATE_ROLE_OPERATOR            \
     |NGX_HTTP_CHATGATE_ROLE_ADMIN)


typedef enum {
    ngx_http_chatgate_via_bearer = 0,
    ngx_http_chatgate_via_cookie
} ngx_http_chatgate_via_e;


static ngx_int_t ngx_http_chatgate_auth_admin(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf);
static ngx_int_t ngx_http_chatgate_auth_admin_token(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf,
    ngx_uint_t allowed, ngx_str_t *token);
static ngx_int_t ngx_http_chatgate_auth_client(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf);
static ngx_int_t ngx_http_chatgate_auth_stored_key(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf);
static ngx_int_t ngx_http_chatgate_auth_jwt(ngx_http_request_t *r,
    ngx_http_chatgate_loc_conf_t *lcf, ngx_str_t *token,
    ngx_http_chatgate_jwt_t *claims);
static ngx_int_t ngx_http_chatgate_auth_models(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_jwt_t *claims);
static ngx_int_t ngx_http_chatgate_auth_bearer(ngx_http_request_t *r,
    ngx_str_t *token);
static ngx_table_elt_t *ngx_http_chatgate_auth_header(ngx_http_request_t *r,
    ngx_str_t *name);
static ngx_uint_t ngx_http_chatgate_role_bit(ngx_str_t *role);
static ngx_int_t ngx_http_chatgate_header_safe(ngx_str_t *value);
static ngx_int_t ngx_http_chatgate_unauthorized(ngx_http_request_t *r,
    const char *message);
static ngx_int_t ngx_http_chatgate_forbidden(ngx_http_request_t *r,
    ngx_str_t *message);
static ngx_int_t ngx_http_chatgate_read_secret(ngx_conf_t *cf,
    ngx_str_t *path, size_t min, ngx_str_t *secret);


static ngx_str_t  ngx_http_chatgate_admin_token_name =
    ngx_string("X-Admin-Token");
static ngx_str_t  ngx_http_chatgate_csrf_name = ngx_string("X-Chatgate-CSRF");
static ngx_str_t  ngx_http_chatgate_session_cookie =
    ngx_string("chatgate_session");
static ngx_str_t  ngx_http_chatgate_subject_token = ngx_string("admin-token");

static ngx_str_t  ngx_http_chatgate_authentication_error =
    ngx_string("authentication_error");
static ngx_str_t  ngx_http_chatgate_permission_error =
    ngx_string("permission_error");
static ngx_str_t  ngx_http_chatgate_invalid_token =
    ngx_string("invalid_token");
static ngx_str_t  ngx_http_chatgate_invalid_request_error =
    ngx_string("invalid_request_error");
static ngx_str_t  ngx_http_chatgate_invalid_request_code =
    ngx_string("invalid_request");


/*
 * Rejects a basic auth credential whose user name contains a C0 or C1
 * control character, DEL, U+2028 or U+2029, or is not valid UTF-8.
 * auth_basic logs the user name of a failed login at the error level as
 * it was sent, so such a name would forge or hide lines of the error log.
 * A preaccess phase handler, so it runs before auth_basic.
 */

ngx_int_t
ngx_http_chatgate_basic_user_handler(ngx_http_request_t *r)
{
    u_char                        *p, *last;
    uint32_t                       c;
    ngx_int_t                      rc;
    ngx_str_t                      message, *value;
    ngx_http_chatgate_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_chatgate_module);

    if ((!lcf->enable && !lcf->admin && !lcf->login_rate)
        || r->headers_in.authorization == NULL)
    {
        return NGX_DECLINED;
    }

    /*
     * Chats carry bearer credentials, so this runs on every chat: the
     * scheme is compared here, without the call that decodes a user name.
     */

    value = &r->headers_in.authorization->value;

    if (value->len < sizeof("Basic ") - 1
        || ngx_strncasecmp(value->data, (u_char *) "Basic ",
                           sizeof("Basic ") - 1)
           != 0)
    {
        return NGX_DECLINED;
    }

    /* sets r->headers_in.user, which auth_basic reads again */

    rc = ngx_http_auth_basic_user(r);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        return NGX_DECLINED;
    }

    p = r->headers_in.user.data;
    last = p + r->headers_in.user.len;

    while (p < last) {

        if (*p < 0x80) {
            if (*p < 0x20 || *p == 0x7f) {
                goto invalid;
            }

            p++;
            continue;
        }

        c = ngx_utf8_decode(&p, last - p);

        if (c > 0x10ffff || c <= 0x9f || c == 0x2028 || c == 0x2029) {
            goto invalid;
        }
    }

    return NGX_DECLINED;

invalid:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "chatgate rejected a basic auth user name with a control "
                  "character or invalid UTF-8");

    ngx_str_set(&message, "the user name of the basic auth credential "
                          "contains a control character or invalid UTF-8");

    return ngx_http_chatgate_send_error(r, NGX_HTTP_BAD_REQUEST,
                                        &ngx_http_chatgate_invalid_request_error,
                                        &message, NULL,
                                        &ngx_http_chatgate_invalid_request_code);
}


/*
 * Checks the request's credential on an admin location, or on a chat
 * location a credential that looks like a JWT.  Returns NGX_OK, or what
 * sending 401 or 403 returns.
 */

ngx_int_t
ngx_http_chatgate_auth(ngx_http_request_t *r, ngx_http_chatgate_ctx_t *ctx,
    ngx_http_chatgate_loc_conf_t *lcf)
{
    if (lcf->admin) {
        return ngx_http_chatgate_auth_admin(r, ctx, lcf);
    }

    if (lcf->enable) {
        return ngx_http_chatgate_auth_client(r, ctx, lcf);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_chatgate_auth_admin(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf)
{
    u_char                   *p;
    ngx_int_t                 rc;
    ngx_str_t                 token, message;
    ngx_uint_t                allowed, bit;
    ngx_table_elt_t          *h;
    ngx_http_chatgate_via_e   via;
    ngx_http_chatgate_jwt_t   claims;

    allowed = (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))
              ? lcf->read_roles : lcf->write_roles;

    h = ngx_http_chatgate_auth_header(r, &ngx_http_chatgate_admin_token_name);
    if (h) {
        return ngx_http_chatgate_auth_admin_token(r, ctx, lcf, allowed,
                                                  &h->value);
    }

    if (ngx_http_chatgate_auth_bearer(r, &token) == NGX_OK) {
        via = ngx_http_chatgate_via_bearer;

    } else if (ngx_http_parse_multi_header_lines(&r->headers_in.cookies,
                   &ngx_http_chatgate_session_cookie, &token)
               != NGX_DECLINED)
    {
        via = ngx_http_chatgate_via_cookie;

    } else {
        return ngx_http_chatgate_unauthorized(r, "missing credential: send "
                   "X-Admin-Token, \"Authorization: Bearer <JWT>\" or the "
                   "chatgate_session cookie");
    }

    rc = ngx_http_chatgate_auth_jwt(r, lcf, &token, &claims);
    if (rc != NGX_OK) {
        return rc;
    }

    bit = ngx_http_chatgate_role_bit(&claims.role);

    if (!(bit & allowed)) {
        p = ngx_pnalloc(r->pool, 100 + NGX_HTTP_CHATGATE_MAX_JTI_LEN);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        message.data = p;
        message.len = ngx_sprintf(p, "role \"%*s\" may not use %V on this "
                                  "location",
                                  ngx_min(claims.role.len, 32),
                                  claims.role.data, &r->method_name)
                      - p;

        return ngx_http_chatgate_forbidden(r, &message);
    }

    /* a browser sends the cookie on cross-site requests too, but a form
     * or a simple request cannot add a custom header */

    if (via == ngx_http_chatgate_via_cookie
        && !(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_OPTIONS)))
    {
        h = ngx_http_chatgate_auth_header(r, &ngx_http_chatgate_csrf_name);

        if (h == NULL || h->value.len != 1 || h->value.data[0] != '1') {
            ngx_str_set(&message, "a request with the session cookie that "
                                  "changes state needs \"X-Chatgate-CSRF: 1\"");
            return ngx_http_chatgate_forbidden(r, &message);
        }
    }

    ctx->role = claims.role;
    ctx->subject = claims.sub;
    ctx->jti = claims.jti;

    return NGX_OK;
}


/* Compares SHA-256 digests, so the time taken does not depend on where
 * or whether the lengths differ. */

static ngx_int_t
ngx_http_chatgate_auth_admin_token(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf,
    ngx_uint_t allowed, ngx_str_t *token)
{
    u_char     digest[SHA256_DIGEST_LENGTH];
    ngx_str_t  message;

    if (lcf->admin_token_hash == NULL) {
        return ngx_http_chatgate_unauthorized(r, "X-Admin-Token is not "
                   "accepted on this location");
    }

    SHA256(token->data, token->len, digest);

    if (CRYPTO_memcmp(digest, lcf->admin_token_hash, SHA256_DIGEST_LENGTH)
        != 0)
    {
        return ngx_http_chatgate_unauthorized(r, "invalid X-Admin-Token");
    }

    if (!(allowed & NGX_HTTP_CHATGATE_ROLE_ADMIN)) {
        ngx_str_set(&message, "the admin token may not use this location");
        return ngx_http_chatgate_forbidden(r, &message);
    }

    ngx_str_set(&ctx->role, "admin");
    ctx->subject = ngx_http_chatgate_subject_token;

    return NGX_OK;
}


/*
 * A chat credential with a "." is a JWT, because provider keys have none:
 * it must be a valid client token, and it is removed from the request
 * whatever the outcome.  Any other credential is left to BYOK, unless
 * X-Key-Id names a stored key.
 */

static ngx_int_t
ngx_http_chatgate_auth_client(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf)
{
    u_char                   *canonical;
    ngx_int_t                 rc;
    ngx_str_t                 token, *value, message;
    ngx_http_chatgate_jwt_t   claims;

    if (r->headers_in.authorization == NULL) {
        return ngx_http_chatgate_auth_stored_key(r, ctx, lcf);
    }

    value = &r->headers_in.authorization->value;

    /* memchr(), not ngx_strlchr(): it runs on every provider key, which
     * may be 200 bytes long */
    if (memchr(value->data, '.', value->len) == NULL) {
        return ngx_http_chatgate_auth_stored_key(r, ctx, lcf);
    }

    ctx->drop_authorization = 1;

    if (ngx_http_chatgate_auth_bearer(r, &token) != NGX_OK) {
        return ngx_http_chatgate_unauthorized(r, "send the client token as "
                                              "\"Authorization: Bearer\"");
    }

    rc = ngx_http_chatgate_auth_jwt(r, lcf, &token, &claims);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_chatgate_role_bit(&claims.role)
        != NGX_HTTP_CHATGATE_ROLE_CLIENT)
    {
        ngx_str_set(&message, "only a token with role \"client\" may be "
                              "used on a chat location");
        return ngx_http_chatgate_forbidden(r, &message);
    }

    canonical = ngx_pnalloc(r->pool, NGX_HTTP_CHATGATE_UUID_LEN);
    if (canonical == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_chatgate_parse_uuid(&claims.key, canonical) != NGX_OK) {
        return ngx_http_chatgate_unauthorized(r, "client token has no key "
                                              "claim with a key id");
    }

    /* a client that names another key than its token's would otherwise
     * chat with a key it did not choose */

    if (ctx->key_id.len
        && ngx_memcmp(ctx->key_id.data, canonical, NGX_HTTP_CHATGATE_UUID_LEN)
           != 0)
    {
        ngx_str_set(&message, "X-Key-Id does not match the key claim of the "
                              "client token: send the token's key id or "
                              "no X-Key-Id");
        return ngx_http_chatgate_forbidden(r, &message);
    }

    rc = ngx_http_chatgate_auth_models(r, ctx, &claims);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx->key_id.data = canonical;
    ctx->key_id.len = NGX_HTTP_CHATGATE_UUID_LEN;
    ctx->limit_key = ctx->key_id;

    ngx_str_set(&ctx->role, "client");
    ctx->subject = claims.sub;
    ctx->jti = claims.jti;
    ctx->client_token = 1;

    return NGX_OK;
}


/*
 * Checks the credential for a stored key named by X-Key-Id without a
 * client token.  Key ids are not secrets: they appear in the readable
 * payload of every client token, in admin listings and in chat logs.  So
 * X-Key-Id alone unlocks nothing, and only the admin token may test a
 * stored key without a client token.
 */

static ngx_int_t
ngx_http_chatgate_auth_stored_key(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf)
{
    ngx_table_elt_t  *h;

    if (ctx->key_id.len == 0) {
        return NGX_OK;
    }

    h = ngx_http_chatgate_auth_header(r, &ngx_http_chatgate_admin_token_name);

    if (h == NULL) {
        return ngx_http_chatgate_unauthorized(r, "X-Key-Id alone does not "
                   "authorize a stored key: send a client token from "
                   "POST /admin/api/tokens as \"Authorization: Bearer "
                   "<token>\"");
    }

    return ngx_http_chatgate_auth_admin_token(r, ctx, lcf,
                                              NGX_HTTP_CHATGATE_ROLE_ADMIN,
                                              &h->value);
}


/*
 * Verifies a token and checks it is not revoked and that its claims are
 * safe to copy into request headers.  Returns NGX_OK or what sending 401
 * returns.
 */

static ngx_int_t
ngx_http_chatgate_auth_jwt(ngx_http_request_t *r,
    ngx_http_chatgate_loc_conf_t *lcf, ngx_str_t *token,
    ngx_http_chatgate_jwt_t *claims)
{
    ngx_int_t  rc;

    if (lcf->jwt_secret == NULL) {
        return ngx_http_chatgate_unauthorized(r, "tokens are not accepted on "
                                              "this location");
    }

    rc = ngx_http_chatgate_jwt_verify(r->pool, token, lcf->jwt_secret,
                                      ngx_time(), lcf->jwt_leeway, claims,
                                      r->connection->log);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        return ngx_http_chatgate_unauthorized(r, "invalid or expired token");
    }

    /* the worker sets jti on every token it issues, and a token without
     * one could never be revoked */

    if (claims->jti.len == 0) {
        return ngx_http_chatgate_unauthorized(r, "token has no jti claim, "
                                              "so it cannot be revoked");
    }

    if (ngx_http_chatgate_revoke_check(lcf->shm_zone, &claims->jti)
        != NGX_OK)
    {
        return ngx_http_chatgate_unauthorized(r, "token has been revoked");
    }

    if (ngx_http_chatgate_header_safe(&claims->sub) != NGX_OK
        || ngx_http_chatgate_header_safe(&claims->jti) != NGX_OK)
    {
        return ngx_http_chatgate_unauthorized(r, "token has a sub or jti "
                                              "with control characters");
    }

    return NGX_OK;
}


/* Joins the models claim with commas for X-Chatgate-Models. */

static ngx_int_t
ngx_http_chatgate_auth_models(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_jwt_t *claims)
{
    u_char      *p;
    size_t       len;
    ngx_str_t   *model;
    ngx_uint_t   i;

    if (claims->models == NULL) {
        return NGX_OK;
    }

    len = 0;

    /*
     * The worker drops the spaces around the whole header value, so a name
     * with a space at either end would match without it when it comes
     * first or last in the list, and only with it elsewhere.
     */

    for (i = 0; i < claims->nmodels; i++) {
        model = &claims->models[i];

        if (model->len == 0
            || model->data[0] == ' '
            || model->data[model->len - 1] == ' '
            || ngx_http_chatgate_header_safe(model) != NGX_OK
            || ngx_strlchr(model->data, model->data + model->len, ',')
               != NULL)
        {
            return ngx_http_chatgate_unauthorized(r, "token has a model name "
                       "that is empty, has a comma or control characters, "
                       "or has a space at either end");
        }

        len += claims->models[i].len + 1;
    }

    /* an empty list allows no model, and the worker enforces the list */

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->models.data = p;

    for (i = 0; i < claims->nmodels; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, claims->models[i].data, claims->models[i].len);
    }

    ctx->models.len = p - ctx->models.data;

    return NGX_OK;
}


/* Finds "Authorization: Bearer <token>", with the scheme in any case. */

static ngx_int_t
ngx_http_chatgate_auth_bearer(ngx_http_request_t *r, ngx_str_t *token)
{
    ngx_str_t  *value;

    if (r->headers_in.authorization == NULL) {
        return NGX_DECLINED;
    }

    value = &r->headers_in.authorization->value;

    if (value->len < sizeof("Bearer ") - 1
        || ngx_strncasecmp(value->data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1)
           != 0)
    {
        return NGX_DECLINED;
    }

    token->data = value->data + sizeof("Bearer ") - 1;
    token->len = value->len - (sizeof("Bearer ") - 1);

    while (token->len && token->data[0] == ' ') {
        token->data++;
        token->len--;
    }

    return NGX_OK;
}


static ngx_table_elt_t *
ngx_http_chatgate_auth_header(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            return &h[i];
        }
    }
}


static ngx_uint_t
ngx_http_chatgate_role_bit(ngx_str_t *role)
{
    ngx_uint_t  i;

    static const struct {
        ngx_str_t   name;
        ngx_uint_t  bit;
    } roles[] = {
        { ngx_string("viewer"), NGX_HTTP_CHATGATE_ROLE_VIEWER },
        { ngx_string("operator"), NGX_HTTP_CHATGATE_ROLE_OPERATOR },
        { ngx_string("admin"), NGX_HTTP_CHATGATE_ROLE_ADMIN },
        { ngx_string("client"), NGX_HTTP_CHATGATE_ROLE_CLIENT },
    };

    for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (role->len == roles[i].name.len
            && ngx_strncmp(role->data, roles[i].name.data, role->len) == 0)
        {
            return roles[i].bit;
        }
    }

    return 0;
}


/* A claim copied into a request header must not carry CR, LF or NUL. */

static ngx_int_t
ngx_http_chatgate_header_safe(ngx_str_t *value)
{
    ngx_uint_t  i;

    for (i = 0; i < value->len; i++) {
        if (value->data[i] < 0x20 || value->data[i] == 0x7f) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_chatgate_unauthorized(ngx_http_request_t *r, const char *message)
{
    ngx_str_t         text;
    ngx_table_elt_t  *h;

    text.data = (u_char *) message;
    text.len = ngx_strlen(message);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "chatgate rejected credential: %V", &text);

    /*
     * A 401 must carry a challenge (RFC 9110).  Bearer is what clients
     * send here, and a browser does not prompt for it, so the basic auth
     * in front of the admin console does not ask again.
     */

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "WWW-Authenticate");
    ngx_str_set(&h->value, "Bearer realm=\"chatgate\"");
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    r->headers_out.www_authenticate = h;

    return ngx_http_chatgate_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                        &ngx_http_chatgate_authentication_error,
                                        &text, NULL,
                                        &ngx_http_chatgate_invalid_token);
}


static ngx_int_t
ngx_http_chatgate_forbidden(ngx_http_request_t *r, ngx_str_t *message)
{
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "chatgate denied access: %V", message);

    return ngx_http_chatgate_send_error(r, NGX_HTTP_FORBIDDEN,
                                        &ngx_http_chatgate_permission_error,
                                        message, NULL, NULL);
}


/* chatgate_admin_token_file path; and chatgate_jwt_secret_file path; */

char *
ngx_http_chatgate_secret_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_chatgate_loc_conf_t  *lcf = conf;

    ngx_str_t  *value, secret;

    value = cf->args->elts;

    if (cmd->offset == offsetof(ngx_http_chatgate_loc_conf_t, jwt_secret)) {
        if (lcf->jwt_secret != NGX_CONF_UNSET_PTR) {
            return "is duplicate";
        }

        lcf->jwt_secret = ngx_palloc(cf->pool, sizeof(ngx_str_t));
        if (lcf->jwt_secret == NULL) {
            return NGX_CONF_ERROR;
        }

        if (ngx_http_chatgate_read_secret(cf, &value[1],
                                          NGX_HTTP_CHATGATE_MIN_JWT_SECRET,
                                          lcf->jwt_secret)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (lcf->admin_token_hash) {
        return "is duplicate";
    }

    if (ngx_http_chatgate_read_secret(cf, &value[1],
                                      NGX_HTTP_CHATGATE_MIN_ADMIN_TOKEN,
                                      &secret)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    lcf->admin_token_hash = ngx_palloc(cf->pool, SHA256_DIGEST_LENGTH);
    if (lcf->admin_token_hash == NULL) {
        return NGX_CONF_ERROR;
    }

    SHA256(secret.data, secret.len, lcf->admin_token_hash);
    OPENSSL_cleanse(secret.data, secret.len);

    return NGX_CONF_OK;
}


/*
 * Reads a secret from a file into configuration memory, without the
 * surrounding whitespace.  Errors name the file, never its contents.
 */

static ngx_int_t
ngx_http_chatgate_read_secret(ngx_conf_t *cf, ngx_str_t *path, size_t min,
    ngx_str_t *secret)
{
    u_char           *p, *last;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t         name;
    ngx_uint_t        i;
    ngx_file_info_t   fi;

    name = *path;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &name);
        return NGX_ERROR;
    }

    p = NULL;
    n = -1;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &name);
        goto done;
    }

    if (ngx_file_size(&fi) > NGX_HTTP_CHATGATE_MAX_SECRET_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "secret file \"%V\" is larger than 4096 bytes",
                           &name);
        goto done;
    }

    p = ngx_pnalloc(cf->pool, NGX_HTTP_CHATGATE_MAX_SECRET_FILE);
    if (p == NULL) {
        goto done;
    }

    n = ngx_read_fd(fd, p, NGX_HTTP_CHATGATE_MAX_SECRET_FILE);
    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_read_fd_n " \"%V\" failed", &name);
    }

done:

    ngx_close_file(fd);

    if (n == -1) {
        return NGX_ERROR;
    }

    last = p + n;

    while (p < last && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
    {
        p++;
    }

    while (last > p
           && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == '\r'
               || last[-1] == '\n'))
    {
        last--;
    }

    for (i = 0; p + i < last; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "secret in \"%V\" contains a control "
                               "character", &name);
            return NGX_ERROR;
        }
    }

    if ((size_t) (last - p) < min) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "secret in \"%V\" is %uz bytes, the minimum is %uz",
                           &name, (size_t) (last - p), min);
        return NGX_ERROR;
    }

    secret->data = p;
    secret->len = last - p;

    return NGX_OK;
}


/* chatgate_roles role ...; and chatgate_roles_write role ...; */

char *
ngx_http_chatgate_roles(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t   *value;
    ngx_uint_t   i, bit, *roles;

    roles = (ngx_uint_t *) (p + cmd->offset);

    if (*roles != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    *roles = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        bit = ngx_http_chatgate_role_bit(&value[i]);

        if (bit == 0 || bit == NGX_HTTP_CHATGATE_ROLE_CLIENT) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid role \"%V\", expected \"viewer\", "
                               "\"operator\" or \"admin\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        *roles |= bit;
    }

    return NGX_CONF_OK;
}


/* chatgate_login_limit rate/m [burst=number]; */

char *
ngx_http_chatgate_login_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_chatgate_loc_conf_t  *lcf = conf;

    ngx_int_t   rate, burst;
    ngx_str_t  *value;

    if (lcf->login_rate != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        lcf->login_rate = 0;
        return NGX_CONF_OK;
    }

    rate = NGX_ERROR;

    if (value[1].len > 2
        && ngx_strcmp(value[1].data + value[1].len - 2, "/m") == 0)
    {
        rate = ngx_atoi(value[1].data, value[1].len - 2);
    }

    if (rate <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid rate \"%V\", expected a number of "
                           "attempts per minute such as \"10/m\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    burst = rate;

    if (cf->args->nelts == 3) {
        burst = NGX_ERROR;

        if (ngx_strncmp(value[2].data, "burst=", 6) == 0) {
            burst = ngx_atoi(value[2].data + 6, value[2].len - 6);
        }

        if (burst <= 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\", expected "
                               "\"burst=number\"", &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    lcf->login_rate = rate;
    lcf->login_burst = burst;

    return NGX_CONF_OK;
}


char *
ngx_http_chatgate_auth_merge(ngx_conf_t *cf,
    ngx_http_chatgate_loc_conf_t *prev, ngx_http_chatgate_loc_conf_t *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    ngx_conf_merge_value(conf->admin, prev->admin, 0);
    ngx_conf_merge_uint_value(conf->read_roles, prev->read_roles,
                              NGX_HTTP_CHATGATE_ROLES_ALL);
    ngx_conf_merge_uint_value(conf->write_roles, prev->write_roles,
                              NGX_HTTP_CHATGATE_ROLE_ADMIN);
    ngx_conf_merge_ptr_value(conf->jwt_secret, prev->jwt_secret, NULL);
    ngx_conf_merge_sec_value(conf->jwt_leeway, prev->jwt_leeway, 30);
    ngx_conf_merge_uint_value(conf->login_rate, prev->login_rate, 0);
    ngx_conf_merge_uint_value(conf->login_burst, prev->login_burst, 0);

    if (conf->admin_token_hash == NULL) {
        conf->admin_token_hash = prev->admin_token_hash;
    }

    if (conf->jwt_leeway > NGX_HTTP_CHATGATE_MAX_LEEWAY) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chatgate_jwt_leeway\" of %T s is over the "
                           "maximum of 300 s", conf->jwt_leeway);
        return NGX_CONF_ERROR;
    }

    if (conf->admin && conf->admin_token_hash == NULL
        && conf->jwt_secret == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chatgate_admin\" needs "
                           "\"chatgate_admin_token_file\" or "
                           "\"chatgate_jwt_secret_file\"");
        return NGX_CONF_ERROR;
    }

    if (conf->shm_zone == NULL
        && (conf->login_rate
            || (conf->jwt_secret && (conf->admin || conf->enable))))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chatgate_login_limit\" and JWT checks need "
                           "\"chatgate_limit_zone\" in their location or "
                           "above, for login counters and revoked tokens");
        return NGX_CONF_ERROR;
    }

    /* with "satisfy any", an allowed address or basic auth would skip the
     * module's handler, and with it the removal of X-Chatgate-Role */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if ((conf->admin || conf->enable || conf->login_rate)
        && clcf->satisfy != NGX_HTTP_SATISFY_ALL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chatgate locations need \"satisfy all\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
