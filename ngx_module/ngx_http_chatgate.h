
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

/* the longest scope: "ip:" and an IPv6 CIDR such as "ffff:...:ffff/128" */
#define NGX_HTTP_CHATGATE_SCOPE_LEN       64


typedef struct ngx_http_chatgate_limit_s  ngx_http_chatgate_limit_t;


typedef struct {
    ngx_flag_t                    enable;
    ngx_flag_t                    control;

    ngx_shm_zone_t               *shm_zone;
    ngx_msec_t                    retry_jitter;
} ngx_http_chatgate_loc_conf_t;


typedef struct {
    ngx_array_t                   zones;        /* of ngx_shm_zone_t * */

    /* test only: seconds added to the clock the limiter reads */
    time_t                        clock_offset;
} ngx_http_chatgate_main_conf_t;


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
     * "byok-" and a hash of a provider key */
    ngx_str_t                     limit_key;

    /* the tightest rule that matched, for the RateLimit headers */
    u_char                        scope[NGX_HTTP_CHATGATE_SCOPE_LEN];
    size_t                        scope_len;
    ngx_uint_t                    limit;
    ngx_uint_t                    remaining;
    time_t                        reset;

    unsigned                      handled:1;
    unsigned                      limited:1;
} ngx_http_chatgate_ctx_t;


ngx_http_chatgate_ctx_t *ngx_http_chatgate_get_ctx(ngx_http_request_t *r);
ngx_int_t ngx_http_chatgate_send_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, ngx_str_t *message,
    ngx_str_t *param, ngx_str_t *code);


extern ngx_module_t  ngx_http_chatgate_module;


#endif /* _NGX_HTTP_CHATGATE_H_INCLUDED_ */
