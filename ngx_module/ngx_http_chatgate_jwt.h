#ifndef _NGX_HTTP_CHATGATE_JWT_H_INCLUDED_
#define _NGX_HTTP_CHATGATE_JWT_H_INCLUDED_

/* The unit test compiles this file with its own stand-ins for nginx's types. */
#ifndef NGX_HTTP_CHATGATE_JWT_UNIT_TEST
#include <ngx_config.h>
#include <ngx_core.h>
#endif


#define NGX_HTTP_CHATGATE_JWT_MAX_LEN      8192
#define NGX_HTTP_CHATGATE_JWT_MAX_MEMBERS  32
#define NGX_HTTP_CHATGATE_JWT_MAX_MODELS   64


/*
 * Claims of a verified gateway JWT. Strings are decoded from JSON into pool
 * memory and are not NUL-terminated; an absent claim has len 0. iat and nbf
 * are 0 when absent.
 */
typedef struct {
    ngx_str_t    sub;
    ngx_str_t    email;
    ngx_str_t    role;
    ngx_str_t    jti;
    ngx_str_t    key;
    ngx_str_t   *models;
    ngx_uint_t   nmodels;
    time_t       exp;
    time_t       nbf;
    time_t       iat;
} ngx_http_chatgate_jwt_t;


/*
 * Verifies an HS256 token (the text after "Bearer ") against secret and fills
 * claims. Returns NGX_OK, or NGX_DECLINED with the reason logged at info
 * (never the token): malformed token, an alg other than HS256, bad signature,
 * missing or past exp (exp + leeway <= now), nbf in the future
 * (nbf - leeway > now), or a claim of the wrong type. Returns NGX_ERROR if
 * memory or HMAC fails.
 */
ngx_int_t ngx_http_chatgate_jwt_verify(ngx_pool_t *pool, ngx_str_t *token,
    ngx_str_t *secret, time_t now, time_t leeway,
    ngx_http_chatgate_jwt_t *claims, ngx_log_t *log);


#endif /* _NGX_HTTP_CHATGATE_JWT_H_INCLUDED_ */
