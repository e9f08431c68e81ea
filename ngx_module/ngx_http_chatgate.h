
/*
 * Types and functions that the files of ngx_http_chatgate_module share:
 * the module (directives, identity, variables), the limiter and the
 * control location.
 */


#ifndef _NGX_HTTP_CHATGATE_H_INCLUDED_
#define _NGX_HTTP_CHATGATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_HTTP_CHATGATE_REQUEST_ID_LEN  32
#define NGX_HTTP_CHATGATE_UUID_LEN        36

/* the maximum scope length: "ip:" and an IPv6 CIDR of 43 characters */
#define NGX_HTTP_CHATGATE_SCOPE_LEN       64

#define NGX_HTTP_CHATGATE_ERR_LEN         160

/* roles of gateway JWTs, as bits of a location's allowed set */
#define NGX_HTTP_CHATGATE_ROLE_VIEWER     0x01
#define NGX_HTTP_CHATGATE_ROLE_OPERATOR   0x02
#define NGX_HTTP_CHATGATE_ROLE_ADMIN      0x04
#define NGX_HTTP_CHATGATE_ROLE_CLIENT     0x08

#define NGX_HTTP_CHATGATE_MAX_JTI_LEN     64
#define NGX_HTTP_CHATGATE_MAX_LEEWAY      300

/* a revoked jti stays this long past its exp, so any leeway is covered */
#define NGX_HTTP_CHATGATE_REVOKE_GRACE    NGX_HTTP_CHATGATE_MAX_LEEWAY


/* a rate, burst or quota that a rule leaves unset ("-" or null) */
#define NGX_HTTP_CHATGATE_UNLIMITED       ((ngx_uint_t) -1)


typedef enum {
    ngx_http_chatgate_scope_global = 0,
    ngx_http_chatgate_scope_ip_any,
    ngx_http_chatgate_scope_ip,           /* an address or a CIDR */
    ngx_http_chatgate_scope_key_any,
    ngx_http_chatgate_scope_key
} ngx_http_chatgate_scope_e;


/*
 * One limit rule.  A rule is plain data so that a rule set can be copied
 * into shared memory as one block.
 */

typedef struct {
    ngx_http_chatgate_scope_e     type;
    ngx_cidr_t                    cidr;         /* for scope_ip */
    ngx_uint_t                    prefix;       /* CIDR bits, for scope_ip */
    u_char                        key[NGX_HTTP_CHATGATE_UUID_LEN];

    ngx_uint_t                    per_minute;
    ngx_uint_t                    per_hour;
    ngx_uint_t                    burst;
    ngx_uint_t                    per_day;

    u_char                        scope[NGX_HTTP_CHATGATE_SCOPE_LEN];
    size_t                        scope_len;

    /* the counter's tree key (CRC-32 of scope), for the rules whose
     * counter scope is their own: global, ip:<CIDR> and key:<uuid> */
    uint32_t                      scope_hash;
} ngx_http_chatgate_rule_t;


typedef struct {
    ngx_flag_t                    enable;
    ngx_flag_t                    upstream_headers;
    ngx_flag_t                    control;

    ngx_shm_zone_t               *shm_zone;
    ngx_msec_t                    retry_jitter;

    ngx_flag_t                    admin;
    ngx_uint_t                    read_roles;   /* NGX_HTTP_CHATGATE_ROLE_* */
    ngx_uint_t                    write_roles;

    /* SHA-256 of the admin token; the token itself is not kept */
    u_char                       *admin_token_hash;
    ngx_str_t                    *jwt_secret;
    time_t                        jwt_leeway;

    ngx_uint_t                    login_rate;   /* per minute, 0: off */
    ngx_uint_t                    login_burst;
} ngx_http_chatgate_loc_conf_t;


typedef struct {
    ngx_array_t                   default_rules;  /* ngx_http_chatgate_rule_t */

    /* test only: seconds added to the clock the limiter reads */
    time_t                        clock_offset;
} ngx_http_chatgate_main_conf_t;


/* today's count of one counter, as the worker pushes it */

typedef struct {
    u_char                        scope[NGX_HTTP_CHATGATE_SCOPE_LEN];
    size_t                        scope_len;
    ngx_uint_t                    is_key;
    ngx_uint_t                    day;          /* days since the epoch */
    ngx_uint_t                    count;
} ngx_http_chatgate_usage_t;


/*
 * The state of one request.  It lives in the request pool and is found
 * through a pool cleanup entry as well as r->ctx, because an internal
 * redirect clears r->ctx and the request must keep its id and must not
 * be counted twice.
 */

typedef struct {
    ngx_str_t                     request_id;
    ngx_str_t                     key_id;       /* canonical lowercase UUID */

    /* the value the limiter counts for "key:" rules: the key id, or
     * "byok-" and a hash of a provider key, which the limiter sets only
     * when the rule set has a "key:*" rule */
    ngx_str_t                     limit_key;

    /* the tightest rule that matched, for the RateLimit headers */
    size_t                        limit_scope_len;
    ngx_uint_t                    limit;
    ngx_uint_t                    remaining;
    time_t                        reset;

    /* set by a verified credential */
    ngx_str_t                     role;
    ngx_str_t                     subject;
    ngx_str_t                     jti;
    ngx_str_t                     models;       /* comma-separated */

    unsigned                      handled:1;
    unsigned                      drop_authorization:1;
    unsigned                      client_token:1;
    unsigned                      limited:1;
    unsigned                      headers_added:1;

    /* set when the checks of the first chatgate location passed */
    unsigned                      identified:1;

    /* set while the main request carries the module's X-Chatgate-* headers */
    unsigned                      upstream_headers_added:1;

    /* last, because the context is zeroed only up to here, and read only
     * up to limit_scope_len */
    u_char                        limit_scope[NGX_HTTP_CHATGATE_SCOPE_LEN];
} ngx_http_chatgate_ctx_t;


ngx_http_chatgate_ctx_t *ngx_http_chatgate_get_ctx(ngx_http_request_t *r,
    ngx_uint_t create);
ngx_int_t ngx_http_chatgate_parse_uuid(ngx_str_t *value, u_char *canonical);
ngx_int_t ngx_http_chatgate_read_provider_key(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx);
ngx_int_t ngx_http_chatgate_send_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, ngx_str_t *message,
    ngx_str_t *param, ngx_str_t *code);

char *ngx_http_chatgate_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_chatgate_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_chatgate_default_rule(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_chatgate_parse_rule(ngx_str_t *scope, ngx_str_t *values,
    ngx_http_chatgate_rule_t *rule, ngx_str_t *err);
ngx_int_t ngx_http_chatgate_limit(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf);
ngx_int_t ngx_http_chatgate_limit_headers(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx);
ngx_int_t ngx_http_chatgate_limit_push(ngx_shm_zone_t *shm_zone,
    ngx_array_t *rules, ngx_array_t *usage, ngx_uint_t *changed,
    ngx_log_t *log);
ngx_buf_t *ngx_http_chatgate_limit_report(ngx_http_request_t *r,
    ngx_shm_zone_t *shm_zone);

ngx_int_t ngx_http_chatgate_limit_login(ngx_http_request_t *r,
    ngx_http_chatgate_loc_conf_t *lcf);

/* the revoked token ids, kept in the limiter's zone */

typedef struct {
    ngx_rbtree_t                  by_jti;
    ngx_rbtree_node_t             jti_sentinel;
    ngx_rbtree_t                  by_exp;
    ngx_rbtree_node_t             exp_sentinel;
    ngx_uint_t                    count;
    ngx_uint_t                    max;
} ngx_http_chatgate_revoked_sh_t;

typedef struct {
    ngx_str_t                     jti;
    time_t                        exp;
} ngx_http_chatgate_revoke_t;

ngx_http_chatgate_revoked_sh_t *ngx_http_chatgate_limit_revoked(
    ngx_shm_zone_t *shm_zone, ngx_slab_pool_t **shpool);
void ngx_http_chatgate_revoke_init(ngx_http_chatgate_revoked_sh_t *rv,
    ngx_uint_t max);
ngx_int_t ngx_http_chatgate_revoke_add(ngx_shm_zone_t *shm_zone,
    ngx_array_t *revoked, ngx_log_t *log);
ngx_int_t ngx_http_chatgate_revoke_check(ngx_shm_zone_t *shm_zone,
    ngx_str_t *jti);
ngx_int_t ngx_http_chatgate_revoke_parse(ngx_str_t *jti, ngx_str_t *exp,
    ngx_http_chatgate_revoke_t *rv, ngx_str_t *err);

ngx_int_t ngx_http_chatgate_auth(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_loc_conf_t *lcf);
ngx_int_t ngx_http_chatgate_basic_user_handler(ngx_http_request_t *r);
char *ngx_http_chatgate_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_chatgate_roles(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_chatgate_login_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_chatgate_auth_merge(ngx_conf_t *cf,
    ngx_http_chatgate_loc_conf_t *prev, ngx_http_chatgate_loc_conf_t *conf);

char *ngx_http_chatgate_control(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_chatgate_control_check_listen(ngx_conf_t *cf);


extern ngx_module_t  ngx_http_chatgate_module;


#endif /* _NGX_HTTP_CHATGATE_H_INCLUDED_ */
