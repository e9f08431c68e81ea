
/*
 * ngx_http_chatgate_module: the directives, the access phase handler that
 * identifies the caller and hands the identity to the worker in internal
 * request headers, and the module's variables.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "ngx_http_chatgate.h"


#define NGX_HTTP_CHATGATE_HEADER_PREFIX  "x-chatgate-"
#define NGX_HTTP_CHATGATE_BYOK_PREFIX    "byok-"
#define NGX_HTTP_CHATGATE_BYOK_HASH_LEN  16

/* indexes into ngx_http_chatgate_headers[] */
#define NGX_HTTP_CHATGATE_HEADER_REQUEST_ID   0
#define NGX_HTTP_CHATGATE_HEADER_CLIENT_ADDR  1
#define NGX_HTTP_CHATGATE_HEADER_KEY_ID       2
#define NGX_HTTP_CHATGATE_HEADER_ROLE         3
#define NGX_HTTP_CHATGATE_HEADER_SUBJECT      4
#define NGX_HTTP_CHATGATE_HEADER_JTI          5
#define NGX_HTTP_CHATGATE_HEADER_MODELS       6

#define NGX_HTTP_CHATGATE_HEADER_NAME_LEN     32


typedef struct {
    ngx_str_t                     name;
    u_char                        lowcase_name[NGX_HTTP_CHATGATE_HEADER_NAME_LEN];
    ngx_uint_t                    hash;
} ngx_http_chatgate_header_t;


/* CSPRNG bytes drawn at once for request ids: 256 ids */
#define NGX_HTTP_CHATGATE_RANDOM_SIZE    4096


static ngx_int_t ngx_http_chatgate_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_chatgate_identify(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf);
static ngx_int_t ngx_http_chatgate_rebuild_headers(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf,
    ngx_uint_t own_headers);
static ngx_int_t ngx_http_chatgate_add_upstream_headers(
    ngx_http_request_t *r, ngx_http_chatgate_ctx_t *ctx);
static ngx_int_t ngx_http_chatgate_headers_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_chatgate_pass_headers(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf);
static ngx_uint_t ngx_http_chatgate_find_own_header(ngx_http_request_t *r);
static ngx_int_t ngx_http_chatgate_strip_headers(ngx_http_request_t *r,
    ngx_uint_t drop_authorization);
static ngx_uint_t ngx_http_chatgate_is_own_header(ngx_table_elt_t *h);
static ngx_int_t ngx_http_chatgate_add_header(ngx_http_request_t *r,
    ngx_uint_t id, ngx_str_t *value);
static ngx_int_t ngx_http_chatgate_read_key_id(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_uint_t *own_headers);
static ngx_int_t ngx_http_chatgate_make_request_id(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx);
static void ngx_http_chatgate_cleanup_ctx(void *data);

static ngx_int_t ngx_http_chatgate_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_chatgate_client_addr_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);

static ngx_int_t ngx_http_chatgate_limit_scope_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_chatgate_limit_remaining_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static void ngx_http_chatgate_quiet_upstream(ngx_http_request_t *r);
static ngx_int_t ngx_http_chatgate_header_filter(ngx_http_request_t *r);

static ngx_int_t ngx_http_chatgate_add_variables(ngx_conf_t *cf);
static void *ngx_http_chatgate_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_chatgate_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_chatgate_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_chatgate_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_chatgate_init(ngx_conf_t *cf);


static ngx_command_t  ngx_http_chatgate_commands[] = {

    { ngx_string("chatgate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_chatgate_loc_conf_t, enable),
      NULL },

    { ngx_string("chatgate_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE23,
      ngx_http_chatgate_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chatgate_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_chatgate_limit_zone,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chatgate_default_rule"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_chatgate_default_rule,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chatgate_upstream_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_chatgate_loc_conf_t, upstream_headers),
      NULL },

    { ngx_string("chatgate_retry_jitter"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_chatgate_loc_conf_t, retry_jitter),
      NULL },

    { ngx_string("chatgate_control"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_chatgate_control,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chatgate_admin"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_chatgate_loc_conf_t, admin),
      NULL },

    { ngx_string("chatgate_roles"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_chatgate_roles,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_chatgate_loc_conf_t, read_roles),
      NULL },

    { ngx_string("chatgate_roles_write"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_chatgate_roles,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_chatgate_loc_conf_t, write_roles),
      NULL },

    { ngx_string("chatgate_admin_token_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_chatgate_secret_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_chatgate_loc_conf_t, admin_token_hash),
      NULL },

    { ngx_string("chatgate_jwt_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_chatgate_secret_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_chatgate_loc_conf_t, jwt_secret),
      NULL },

    { ngx_string("chatgate_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_chatgate_loc_conf_t, jwt_leeway),
      NULL },

    { ngx_string("chatgate_login_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_chatgate_login_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* test only: moves the limiter's clock forward, e.g. past midnight */

    { ngx_string("chatgate_clock_offset"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_chatgate_main_conf_t, clock_offset),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_chatgate_module_ctx = {
    ngx_http_chatgate_add_variables,       /* preconfiguration */
    ngx_http_chatgate_init,                /* postconfiguration */

    ngx_http_chatgate_create_main_conf,    /* create main configuration */
    ngx_http_chatgate_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_chatgate_create_loc_conf,     /* create location configuration */
    ngx_http_chatgate_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_chatgate_module = {
    NGX_MODULE_V1,
    &ngx_http_chatgate_module_ctx,         /* module context */
    ngx_http_chatgate_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_chatgate_vars[] = {

    { ngx_string("chatgate_request_id"), NULL,
      ngx_http_chatgate_request_id_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("chatgate_client_addr"), NULL,
      ngx_http_chatgate_client_addr_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("chatgate_limit_scope"), NULL,
      ngx_http_chatgate_limit_scope_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("chatgate_limit_remaining"), NULL,
      ngx_http_chatgate_limit_remaining_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


/*
 * The headers the module adds for the worker.  lowcase_name and hash are
 * set in postconfiguration, so adding a header costs no hashing.
 */
static ngx_http_chatgate_header_t  ngx_http_chatgate_headers[] = {
    { ngx_string("X-Chatgate-Request-Id"), { 0 }, 0 },
    { ngx_string("X-Chatgate-Client-Addr"), { 0 }, 0 },
    { ngx_string("X-Chatgate-Key-Id"), { 0 }, 0 },
    { ngx_string("X-Chatgate-Role"), { 0 }, 0 },
    { ngx_string("X-Chatgate-Subject"), { 0 }, 0 },
    { ngx_string("X-Chatgate-Jti"), { 0 }, 0 },
    { ngx_string("X-Chatgate-Models"), { 0 }, 0 }
};

/*
 * Per-process state, not configuration: the CSPRNG bytes not yet handed
 * out as request ids, at the start of the buffer, and the pid of the
 * process that drew them.
 */
static u_char      ngx_http_chatgate_random[NGX_HTTP_CHATGATE_RANDOM_SIZE];
static size_t      ngx_http_chatgate_random_left;
static ngx_pid_t   ngx_http_chatgate_random_pid;

/* "000102...feff": the two lowercase hex digits of each byte value, set
 * in postconfiguration */
static u_char      ngx_http_chatgate_hex_pairs[2 * 256];

static ngx_str_t  ngx_http_chatgate_invalid_request =
    ngx_string("invalid_request_error");
static ngx_str_t  ngx_http_chatgate_key_id_param = ngx_string("X-Key-Id");


static ngx_int_t
ngx_http_chatgate_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_chatgate_ctx_t       *ctx;
    ngx_http_chatgate_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_chatgate_module);

    /*
     * ngx_http_chatgate_headers_handler() has set the X-Chatgate-* headers
     * in the preaccess phase for a location without the module's checks,
     * and for a request identified before an internal redirect.
     */

    if (!clcf->enable && !clcf->admin && !clcf->login_rate) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_chatgate_get_ctx(r, 1);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->handled) {
        return NGX_DECLINED;
    }

    ctx->handled = 1;

    rc = ngx_http_chatgate_identify(r, ctx, clcf);
    if (rc != NGX_OK) {
        return rc;
    }

    if (clcf->login_rate) {
        rc = ngx_http_chatgate_limit_login(r, clcf);
        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    if (!clcf->enable) {
        return NGX_DECLINED;
    }

    return ngx_http_chatgate_limit(r, ctx, clcf);
}


static ngx_int_t
ngx_http_chatgate_identify(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf)
{
    ngx_int_t   rc;
    ngx_uint_t  own_headers;

    if (ctx->request_id.len == 0
        && ngx_http_chatgate_make_request_id(r, ctx) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_chatgate_read_key_id(r, ctx, &own_headers);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_chatgate_auth(r, ctx, lcf);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_chatgate_rebuild_headers(r, ctx, lcf, own_headers)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->identified = 1;

    return NGX_OK;
}


/*
 * Removes the X-Chatgate-* headers that the client sent, when own_headers
 * is set, and Authorization when it carried a client token.  Then, with
 * chatgate_upstream_headers on, appends the module's own headers.
 */

static ngx_int_t
ngx_http_chatgate_rebuild_headers(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf,
    ngx_uint_t own_headers)
{
    if ((own_headers || ctx->drop_authorization)
        && ngx_http_chatgate_strip_headers(r, ctx->drop_authorization)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->drop_authorization) {
        r->headers_in.authorization = NULL;
    }

    /*
     * The headers tell the worker who the client is.  Any other upstream,
     * such as a provider's API, has no use for the client's address or the
     * claims of its token, so it gets none of them.
     */

    if (!lcf->upstream_headers) {
        return NGX_OK;
    }

    return ngx_http_chatgate_add_upstream_headers(r, ctx);
}


/* Appends the module's X-Chatgate-* headers, from what ctx holds. */

static ngx_int_t
ngx_http_chatgate_add_upstream_headers(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx)
{
    /*
     * nginx reads no headers for an HTTP/0.9 request and leaves its header
     * list zeroed, which is safe to walk, but ngx_list_push() on it would
     * crash.
     */

    if (r->headers_in.headers.last == NULL
        && ngx_list_init(&r->headers_in.headers, r->pool, 8,
                         sizeof(ngx_table_elt_t))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_chatgate_add_header(r, NGX_HTTP_CHATGATE_HEADER_REQUEST_ID,
                                     &ctx->request_id)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_chatgate_add_header(r, NGX_HTTP_CHATGATE_HEADER_CLIENT_ADDR,
                                     &r->connection->addr_text)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->key_id.len
        && ngx_http_chatgate_add_header(r, NGX_HTTP_CHATGATE_HEADER_KEY_ID,
                                        &ctx->key_id)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->role.len
        && (ngx_http_chatgate_add_header(r, NGX_HTTP_CHATGATE_HEADER_ROLE,
                                         &ctx->role)
            != NGX_OK
            || ngx_http_chatgate_add_header(r,
                                            NGX_HTTP_CHATGATE_HEADER_SUBJECT,
                                            &ctx->subject)
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    if (ctx->jti.len
        && ngx_http_chatgate_add_header(r, NGX_HTTP_CHATGATE_HEADER_JTI,
                                        &ctx->jti)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->models.data
        && ngx_http_chatgate_add_header(r, NGX_HTTP_CHATGATE_HEADER_MODELS,
                                        &ctx->models)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (r == r->main) {
        ctx->upstream_headers_added = 1;
    }

    return NGX_OK;
}


/*
 * Copies the request headers into a new list without the ones to remove.
 * The caller calls it only when there are any, so most requests keep
 * their list.  The old entries stay in the pool untouched, so pointers
 * such as r->headers_in.host keep pointing at valid headers.
 */

static ngx_int_t
ngx_http_chatgate_strip_headers(ngx_http_request_t *r,
    ngx_uint_t drop_authorization)
{
    ngx_uint_t        i;
    ngx_list_t        old;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *copy;

    old = r->headers_in.headers;

    if (ngx_list_init(&r->headers_in.headers, r->pool, 20,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &old.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (ngx_http_chatgate_is_own_header(&h[i])) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "chatgate removed client header \"%V\"",
                           &h[i].key);
            continue;
        }

        if (drop_authorization && &h[i] == r->headers_in.authorization) {
            continue;
        }

        copy = ngx_list_push(&r->headers_in.headers);
        if (copy == NULL) {
            return NGX_ERROR;
        }

        *copy = h[i];
    }

    return NGX_OK;
}


/*
 * Sets the X-Chatgate-* headers where the access handler does not, in the
 * preaccess phase, which runs for every request:
 *
 * - in a location with chatgate_upstream_headers on but none of the
 *   module's checks, which an allowed address under "satisfy any" would
 *   skip together with the access phase;
 * - after an internal redirect (error_page, try_files), in every location
 *   of a request that the module identified before, because the earlier
 *   location's choice of headers need not be this one's;
 * - in subrequests (auth_request, mirror, SSI), which nginx runs without
 *   the access phase, and so without the module's checks.  There it only
 *   removes them.
 */

static ngx_int_t
ngx_http_chatgate_headers_handler(ngx_http_request_t *r)
{
    ngx_uint_t                     checks;
    ngx_http_chatgate_ctx_t       *ctx;
    ngx_http_chatgate_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_chatgate_module);

    checks = lcf->enable || lcf->admin || lcf->login_rate;

    /* r->internal is set after an internal redirect and in subrequests */

    if (!r->internal && (checks || !lcf->upstream_headers)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_chatgate_get_ctx(r, 0);

    /* a main request that the access handler has yet to identify */

    if (checks && r == r->main && (ctx == NULL || !ctx->handled)) {
        return NGX_DECLINED;
    }

    return ngx_http_chatgate_pass_headers(r, ctx, lcf);
}


/*
 * Removes every X-Chatgate-* header, the client's and any that the module
 * added for an earlier location, and adds the module's headers again when
 * this location has chatgate_upstream_headers on and the module identified
 * the request.  An unidentified request gets none, so the worker receives
 * no credential and returns 401 where one is required.
 *
 * A subrequest gets none either: the main request's credential passed the
 * checks of the main request's location, not those of the subrequest's,
 * chatgate_roles among them.
 */

static ngx_int_t
ngx_http_chatgate_pass_headers(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf)
{
    ngx_uint_t  add;

    add = lcf->upstream_headers && r == r->main
          && ctx != NULL && ctx->identified;

    if (!add && !lcf->enable && !lcf->admin && !lcf->login_rate
        && !lcf->upstream_headers
        && (ctx == NULL || !ctx->upstream_headers_added))
    {
        return NGX_DECLINED;
    }

    /*
     * A subrequest's header list is a copy of its parent's ngx_list_t that
     * shares the parent's parts.  ngx_http_chatgate_strip_headers() gives
     * it parts of its own, so the parent's list stays as it is.
     */

    if (ngx_http_chatgate_find_own_header(r)
        && ngx_http_chatgate_strip_headers(r, 0) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r == r->main && ctx != NULL) {
        ctx->upstream_headers_added = 0;
    }

    if (add && ngx_http_chatgate_add_upstream_headers(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


/* Tests whether any request header starts with X-Chatgate-. */

static ngx_uint_t
ngx_http_chatgate_find_own_header(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 0;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (ngx_http_chatgate_is_own_header(&h[i])) {
            return 1;
        }
    }
}


/* Tests for the X-Chatgate- prefix, in any case. */

static ngx_uint_t
ngx_http_chatgate_is_own_header(ngx_table_elt_t *h)
{
    size_t  len;

    len = sizeof(NGX_HTTP_CHATGATE_HEADER_PREFIX) - 1;

    /* the first byte filters out almost every header cheaply */

    return h->key.len >= len
           && (h->key.data[0] | 0x20) == 'x'
           && ngx_strncasecmp(h->key.data,
                              (u_char *) NGX_HTTP_CHATGATE_HEADER_PREFIX, len)
              == 0;
}


/* Appends one of the module's headers, whose hash is set at startup. */

static ngx_int_t
ngx_http_chatgate_add_header(ngx_http_request_t *r, ngx_uint_t id,
    ngx_str_t *value)
{
    ngx_table_elt_t             *h;
    ngx_http_chatgate_header_t  *header;

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    header = &ngx_http_chatgate_headers[id];

    h->hash = header->hash;
    h->key = header->name;
    h->lowcase_key = header->lowcase_name;
    h->value = *value;

    return NGX_OK;
}


/*
 * Reads X-Key-Id.  Returns NGX_OK when it is absent or one canonical
 * 8-4-4-4-12 hex UUID, which is stored in lowercase; otherwise sends 400.
 * The same pass over the headers sets *own_headers when the client sent
 * any X-Chatgate-* header.
 */

static ngx_int_t
ngx_http_chatgate_read_key_id(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_uint_t *own_headers)
{
    u_char           *canonical;
    ngx_str_t         message, *value;
    ngx_uint_t        i, found;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    value = NULL;
    found = 0;
    *own_headers = 0;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        /* both names start with "X", which few other headers do */

        if (h[i].key.len == 0 || (h[i].key.data[0] | 0x20) != 'x') {
            continue;
        }

        if (h[i].key.len == sizeof("X-Key-Id") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "X-Key-Id",
                               sizeof("X-Key-Id") - 1)
               == 0)
        {
            value = &h[i].value;
            found++;
            continue;
        }

        if (ngx_http_chatgate_is_own_header(&h[i])) {
            *own_headers = 1;
        }
    }

    if (found == 0) {
        return NGX_OK;
    }

    if (found > 1) {
        ngx_str_set(&message, "more than one X-Key-Id header was sent");
        goto invalid;
    }

    canonical = ngx_pnalloc(r->pool, NGX_HTTP_CHATGATE_UUID_LEN);
    if (canonical == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_chatgate_parse_uuid(value, canonical) != NGX_OK) {
        ngx_str_set(&message, "X-Key-Id must be a UUID in the form "
                              "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
        goto invalid;
    }

    ctx->key_id.data = canonical;
    ctx->key_id.len = NGX_HTTP_CHATGATE_UUID_LEN;
    ctx->limit_key = ctx->key_id;

    return NGX_OK;

invalid:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "chatgate rejected request: %V", &message);

    return ngx_http_chatgate_send_error(r, NGX_HTTP_BAD_REQUEST,
                                        &ngx_http_chatgate_invalid_request,
                                        &message,
                                        &ngx_http_chatgate_key_id_param,
                                        NULL);
}


/*
 * Sets the limit key of a BYOK caller, who sends a provider key in
 * "Authorization: Bearer" and no key id, to "byok-" and the hex of the
 * first 16 bytes of its SHA-256: counters and logs never see the key.
 * The limiter calls it only when a rule can count the key, because
 * SHA-256 of a short key costs about 5 800 instructions (OpenSSL 3.0,
 * callgrind).
 */

ngx_int_t
ngx_http_chatgate_read_provider_key(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx)
{
    u_char     *p, digest[SHA256_DIGEST_LENGTH];
    ngx_str_t   token;

    if (r->headers_in.authorization == NULL) {
        return NGX_OK;
    }

    token = r->headers_in.authorization->value;

    if (token.len <= sizeof("Bearer ") - 1
        || ngx_strncasecmp(token.data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1)
           != 0)
    {
        return NGX_OK;
    }

    token.data += sizeof("Bearer ") - 1;
    token.len -= sizeof("Bearer ") - 1;

    SHA256(token.data, token.len, digest);

    p = ngx_pnalloc(r->pool, sizeof(NGX_HTTP_CHATGATE_BYOK_PREFIX) - 1
                             + 2 * NGX_HTTP_CHATGATE_BYOK_HASH_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->limit_key.data = p;
    p = ngx_cpymem(p, NGX_HTTP_CHATGATE_BYOK_PREFIX,
                   sizeof(NGX_HTTP_CHATGATE_BYOK_PREFIX) - 1);
    p = ngx_hex_dump(p, digest, NGX_HTTP_CHATGATE_BYOK_HASH_LEN);
    ctx->limit_key.len = p - ctx->limit_key.data;

    ngx_explicit_memzero(digest, sizeof(digest));

    return NGX_OK;
}


ngx_int_t
ngx_http_chatgate_parse_uuid(ngx_str_t *value, u_char *canonical)
{
    u_char      c;
    ngx_uint_t  i;

    if (value->len != NGX_HTTP_CHATGATE_UUID_LEN) {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_CHATGATE_UUID_LEN; i++) {
        c = value->data[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return NGX_ERROR;
            }

            canonical[i] = c;
            continue;
        }

        c = ngx_tolower(c);

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return NGX_ERROR;
        }

        canonical[i] = c;
    }

    return NGX_OK;
}


/*
 * Request ids are 16 bytes of OpenSSL's CSPRNG (RAND_bytes), in hex.  A
 * RAND_bytes() call costs about 6 600 instructions for 16 bytes and
 * 17 500 for 4 096 (OpenSSL 3.0, callgrind), so a process draws
 * NGX_HTTP_CHATGATE_RANDOM_SIZE bytes at once and hands out 16 per id.
 * The ids stay as unguessable as the generator's output: no id says
 * anything about another, because each takes bytes of its own.  After
 * fork() a worker holds a copy of its parent's buffer, so the buffer is
 * refilled whenever ngx_pid is not the pid that filled it, and two
 * processes never hand out the same bytes.  Bytes are wiped once handed
 * out, so the buffer only holds ids that no request has been given.
 * NOTE: those up to 255 future ids sit in the worker's memory (and in a
 * core dump of it), as the state of OpenSSL's generator does.
 */

static ngx_int_t
ngx_http_chatgate_make_request_id(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx)
{
    u_char      *bytes, *hex;
    ngx_uint_t   i;

    if (ngx_http_chatgate_random_pid != ngx_pid
        || ngx_http_chatgate_random_left < NGX_HTTP_CHATGATE_REQUEST_ID_LEN / 2)
    {
        /* nothing may be handed out of a buffer that failed to fill */
        ngx_http_chatgate_random_left = 0;

        if (RAND_bytes(ngx_http_chatgate_random,
                       NGX_HTTP_CHATGATE_RANDOM_SIZE)
            != 1)
        {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "chatgate: RAND_bytes() failed to make "
                          "request ids");
            return NGX_ERROR;
        }

        ngx_http_chatgate_random_pid = ngx_pid;
        ngx_http_chatgate_random_left = NGX_HTTP_CHATGATE_RANDOM_SIZE;
    }

    ctx->request_id.data = ngx_pnalloc(r->pool,
                                       NGX_HTTP_CHATGATE_REQUEST_ID_LEN);
    if (ctx->request_id.data == NULL) {
        return NGX_ERROR;
    }

    ngx_http_chatgate_random_left -= NGX_HTTP_CHATGATE_REQUEST_ID_LEN / 2;
    bytes = ngx_http_chatgate_random + ngx_http_chatgate_random_left;

    /* two hex digits per table load and four bytes per iteration: about
     * 100 instructions per id, where ngx_hex_dump() took 216 (callgrind) */

    hex = ctx->request_id.data;

    for (i = 0; i < NGX_HTTP_CHATGATE_REQUEST_ID_LEN / 2; i += 4) {
        ngx_memcpy(hex, &ngx_http_chatgate_hex_pairs[2 * bytes[i]], 2);
        ngx_memcpy(hex + 2, &ngx_http_chatgate_hex_pairs[2 * bytes[i + 1]], 2);
        ngx_memcpy(hex + 4, &ngx_http_chatgate_hex_pairs[2 * bytes[i + 2]], 2);
        ngx_memcpy(hex + 6, &ngx_http_chatgate_hex_pairs[2 * bytes[i + 3]], 2);
        hex += 8;
    }

    ngx_explicit_memzero(bytes, NGX_HTTP_CHATGATE_REQUEST_ID_LEN / 2);

    ctx->request_id.len = NGX_HTTP_CHATGATE_REQUEST_ID_LEN;

    return NGX_OK;
}


/* Finds the request's context, and creates it when create is set. */

ngx_http_chatgate_ctx_t *
ngx_http_chatgate_get_ctx(ngx_http_request_t *r, ngx_uint_t create)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_chatgate_ctx_t  *ctx;

    r = r->main;

    ctx = ngx_http_get_module_ctx(r, ngx_http_chatgate_module);
    if (ctx) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_chatgate_cleanup_ctx) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_chatgate_module);
            return ctx;
        }
    }

    if (!create) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_chatgate_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = cln->data;
    ngx_memzero(ctx, offsetof(ngx_http_chatgate_ctx_t, limit_scope));

    cln->handler = ngx_http_chatgate_cleanup_ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_chatgate_module);

    return ctx;
}


/* Marks the pool cleanup entry that contains the context: nothing to free. */

static void
ngx_http_chatgate_cleanup_ctx(void *data)
{
}


/*
 * Sends an OpenAI-style error: {"error":{"message":...,"type":...,
 * "param":...,"code":...}}.  A NULL param or code is sent as null; type
 * and code must be JSON-safe constants.
 * Returns NGX_DONE once the request is finalized, or an HTTP status for
 * nginx to send with its own page when the body cannot be built.
 */

ngx_int_t
ngx_http_chatgate_send_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *message, ngx_str_t *param, ngx_str_t *code)
{
    size_t        len;
    u_char       *p;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("{\"error\":{\"message\":\"\",\"type\":\"\",\"param\":,"
                 "\"code\":}}\n") - 1
          + message->len + ngx_escape_json(NULL, message->data, message->len)
          + type->len
          + (param ? param->len + 2
                     + ngx_escape_json(NULL, param->data, param->len)
                   : sizeof("null") - 1)
          + (code ? code->len + 2 : sizeof("null") - 1);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(b->last, "{\"error\":{\"message\":\"",
                   sizeof("{\"error\":{\"message\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, message->data, message->len);
    p = ngx_sprintf(p, "\",\"type\":\"%V\",\"param\":", type);

    if (param) {
        *p++ = '"';
        p = (u_char *) ngx_escape_json(p, param->data, param->len);
        *p++ = '"';

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    p = ngx_cpymem(p, ",\"code\":", sizeof(",\"code\":") - 1);
    p = code ? ngx_sprintf(p, "\"%V\"", code) : ngx_cpymem(p, "null", 4);
    p = ngx_cpymem(p, "}}\n", 3);

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    out.buf = b;
    out.next = NULL;

    ngx_http_finalize_request(r, ngx_http_output_filter(r, &out));

    return NGX_DONE;
}


static ngx_int_t
ngx_http_chatgate_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_chatgate_ctx_t  *ctx;

    ctx = ngx_http_chatgate_get_ctx(r, 1);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (ctx->request_id.len == 0
        && ngx_http_chatgate_make_request_id(r->main, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    v->len = ctx->request_id.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ctx->request_id.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_chatgate_client_addr_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    v->len = r->connection->addr_text.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = r->connection->addr_text.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_chatgate_limit_scope_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_chatgate_ctx_t  *ctx;

    ctx = ngx_http_chatgate_get_ctx(r, 0);

    if (ctx == NULL || !ctx->limited) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->limit_scope_len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ctx->limit_scope;

    return NGX_OK;
}


static ngx_int_t
ngx_http_chatgate_limit_remaining_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    ngx_http_chatgate_ctx_t  *ctx;

    ctx = ngx_http_chatgate_get_ctx(r, 0);

    if (ctx == NULL || !ctx->limited) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_ATOMIC_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%ui", ctx->remaining) - p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


/*
 * A unix stream socket wakes its writer each time the reader takes data
 * off it, writable or not, and epoll connections of nginx wait for
 * EPOLLOUT for their whole life.  So each request sent to the worker over
 * its unix socket would wake nginx once for nothing, when the worker reads
 * it.
 * Once the response header arrives the request has been sent, so the write
 * event is dropped until a send blocks.  nginx adds it back itself then,
 * as it does for any edge-triggered event that is neither active nor
 * ready.  The read event stays edge-triggered.
 */

static void
ngx_http_chatgate_quiet_upstream(ngx_http_request_t *r)
{
#if (NGX_HAVE_EPOLL && NGX_HAVE_UNIX_DOMAIN)
    ngx_connection_t       *c;
    ngx_peer_connection_t  *pc;

    if (!(ngx_event_flags & NGX_USE_EPOLL_EVENT) || r->upstream == NULL) {
        return;
    }

    /* an upstream connection leaves its c->sockaddr unset */

    pc = &r->upstream->peer;
    c = pc->connection;

    if (c == NULL
        || pc->sockaddr == NULL
        || pc->sockaddr->sa_family != AF_UNIX
        || !c->read->active
        || !c->write->active
        || !c->write->ready)
    {
        return;
    }

    if (ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLEAR_EVENT) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "chatgate: removing the write event of upstream "
                      "connection fd:%d failed", c->fd);
    }
#endif
}


static ngx_int_t
ngx_http_chatgate_header_filter(ngx_http_request_t *r)
{
    ngx_http_chatgate_ctx_t       *ctx;
    ngx_http_chatgate_loc_conf_t  *clcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_chatgate_module);

    if (clcf->enable || clcf->admin || clcf->login_rate) {
        ngx_http_chatgate_quiet_upstream(r);
    }

    ctx = ngx_http_chatgate_get_ctx(r, 0);

    if (ctx && ctx->limited && !ctx->headers_added) {
        ctx->headers_added = 1;

        if (ngx_http_chatgate_limit_headers(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_chatgate_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_chatgate_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void *
ngx_http_chatgate_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_chatgate_main_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_chatgate_main_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&conf->default_rules, cf->pool, 4,
                       sizeof(ngx_http_chatgate_rule_t))
        != NGX_OK)
    {
        return NULL;
    }

    conf->clock_offset = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_chatgate_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_chatgate_main_conf_t  *cmcf = conf;

    ngx_conf_init_value(cmcf->clock_offset, 0);

    return NGX_CONF_OK;
}


static void *
ngx_http_chatgate_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_chatgate_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_chatgate_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->shm_zone = NULL;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->upstream_headers = NGX_CONF_UNSET;
    conf->control = NGX_CONF_UNSET;
    conf->retry_jitter = NGX_CONF_UNSET_MSEC;

    conf->admin = NGX_CONF_UNSET;
    conf->read_roles = NGX_CONF_UNSET_UINT;
    conf->write_roles = NGX_CONF_UNSET_UINT;
    conf->jwt_secret = NGX_CONF_UNSET_PTR;
    conf->jwt_leeway = NGX_CONF_UNSET;
    conf->login_rate = NGX_CONF_UNSET_UINT;
    conf->login_burst = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_chatgate_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_chatgate_loc_conf_t  *prev = parent;
    ngx_http_chatgate_loc_conf_t  *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->upstream_headers, prev->upstream_headers, 0);
    ngx_conf_merge_msec_value(conf->retry_jitter, prev->retry_jitter, 500);

    if (conf->shm_zone == NULL) {
        conf->shm_zone = prev->shm_zone;
    }

    if (ngx_http_chatgate_auth_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    /* chatgate_control is not inherited: it applies to its own location */

    if (conf->control == NGX_CONF_UNSET) {
        conf->control = 0;
        return NGX_CONF_OK;
    }

    if (conf->control && conf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chatgate_control\" needs "
                           "\"chatgate_limit_zone\" in its location or above");
        return NGX_CONF_ERROR;
    }

    if (conf->control) {
        return ngx_http_chatgate_control_check_listen(cf);
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_chatgate_init(ngx_conf_t *cf)
{
    ngx_uint_t                   i;
    ngx_array_t                 *handlers;
    ngx_http_handler_pt         *h;
    ngx_http_core_main_conf_t   *cmcf;
    ngx_http_chatgate_header_t  *header;

    static u_char  hex[] = "0123456789abcdef";

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /*
     * Access handlers run from the last registered to the first, so the
     * handler goes to the front: nginx's allow, deny and auth_basic then
     * answer before the module verifies a token or counts a login.
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    handlers = &cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers;
    h = handlers->elts;
    ngx_memmove(h + 1, h, (handlers->nelts - 1) * sizeof(ngx_http_handler_pt));

    *h = ngx_http_chatgate_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_chatgate_basic_user_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_chatgate_headers_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_chatgate_header_filter;

    for (i = 0; i < sizeof(ngx_http_chatgate_headers)
                    / sizeof(ngx_http_chatgate_header_t); i++)
    {
        header = &ngx_http_chatgate_headers[i];
        header->hash = ngx_hash_strlow(header->lowcase_name, header->name.data,
                                       header->name.len);
    }

    for (i = 0; i < 256; i++) {
        ngx_http_chatgate_hex_pairs[2 * i] = hex[i >> 4];
        ngx_http_chatgate_hex_pairs[2 * i + 1] = hex[i & 0xf];
    }

    return NGX_OK;
}
