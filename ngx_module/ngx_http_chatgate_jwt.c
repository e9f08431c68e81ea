/*
 * HS256 JWT verification at the edge.
 *
 * The module has no JSON library, so this file carries a small strict reader
 * for the flat JSON objects of a JWT header and payload: strings (with every
 * escape, \uXXXX included), numbers, true, false, null, and arrays of
 * strings. Nested objects, nested arrays, duplicate members, invalid UTF-8,
 * lone surrogates and \u0000 are rejected.
 */

#ifndef NGX_HTTP_CHATGATE_JWT_UNIT_TEST
#include <ngx_config.h>
#include <ngx_core.h>
#endif

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_chatgate_jwt.h"


#define NGX_HTTP_CHATGATE_JWT_SIG_LEN      32
#define NGX_HTTP_CHATGATE_JWT_TIME_DIGITS  15

#define NGX_HTTP_CHATGATE_JSON_STRING      1
#define NGX_HTTP_CHATGATE_JSON_NUMBER      2
#define NGX_HTTP_CHATGATE_JSON_LITERAL     3
#define NGX_HTTP_CHATGATE_JSON_ARRAY       4


typedef struct {
    u_char      *pos;
    u_char      *last;
    ngx_pool_t  *pool;
    const char  *error;
} ngx_http_chatgate_json_t;


/* A member value: str is a decoded string or the raw text of a number. */
typedef struct {
    ngx_uint_t   type;
    ngx_str_t    str;
    ngx_str_t   *items;
    ngx_uint_t   nitems;
} ngx_http_chatgate_json_value_t;


typedef ngx_int_t (*ngx_http_chatgate_json_member_pt)(void *data,
    ngx_str_t *name, ngx_http_chatgate_json_value_t *value,
    const char **error);


typedef struct {
    ngx_uint_t   alg;
} ngx_http_chatgate_jwt_header_t;


static ngx_int_t ngx_http_chatgate_jwt_base64url_decode(ngx_pool_t *pool,
    u_char *src, size_t len, ngx_str_t *dst);
static ngx_int_t ngx_http_chatgate_jwt_check_signature(u_char *signed_part,
    size_t signed_len, ngx_str_t *signature, ngx_str_t *secret,
    const char **error);
static ngx_int_t ngx_http_chatgate_jwt_header_member(void *data,
    ngx_str_t *name, ngx_http_chatgate_json_value_t *value,
    const char **error);
static ngx_int_t ngx_http_chatgate_jwt_claim_member(void *data,
    ngx_str_t *name, ngx_http_chatgate_json_value_t *value,
    const char **error);
static ngx_int_t ngx_http_chatgate_jwt_parse_time(ngx_str_t *number,
    time_t *t);
static ngx_int_t ngx_http_chatgate_jwt_check_claims(
    ngx_http_chatgate_jwt_t *claims, time_t now, time_t leeway,
    const char **error);
static ngx_int_t ngx_http_chatgate_json_object(ngx_pool_t *pool,
    ngx_str_t *text, ngx_http_chatgate_json_member_pt handler, void *data,
    const char **error);
static ngx_int_t ngx_http_chatgate_json_value(ngx_http_chatgate_json_t *json,
    ngx_http_chatgate_json_value_t *value);
static ngx_int_t ngx_http_chatgate_json_array(ngx_http_chatgate_json_t *json,
    ngx_http_chatgate_json_value_t *value);
static ngx_int_t ngx_http_chatgate_json_string(ngx_http_chatgate_json_t *json,
    ngx_str_t *str);
static ngx_int_t ngx_http_chatgate_json_escape(ngx_http_chatgate_json_t *json,
    u_char **dst);
static ngx_int_t ngx_http_chatgate_json_hex4(ngx_http_chatgate_json_t *json,
    uint32_t *code);
static ngx_int_t ngx_http_chatgate_json_number(ngx_http_chatgate_json_t *json,
    ngx_str_t *str);
static size_t ngx_http_chatgate_utf8_len(u_char *p, u_char *last);
static void ngx_http_chatgate_json_space(ngx_http_chatgate_json_t *json);


ngx_int_t
ngx_http_chatgate_jwt_verify(ngx_pool_t *pool, ngx_str_t *token,
    ngx_str_t *secret, time_t now, time_t leeway,
    ngx_http_chatgate_jwt_t *claims, ngx_log_t *log)
{
    u_char                          *dot1, *dot2, *end;
    ngx_int_t                        rc;
    ngx_str_t                        header, payload, signature;
    const char                      *error;
    ngx_http_chatgate_jwt_header_t   hdr;

    ngx_memzero(claims, sizeof(ngx_http_chatgate_jwt_t));
    error = NULL;

    if (token->len > NGX_HTTP_CHATGATE_JWT_MAX_LEN) {
        error = "token longer than 8192 bytes";
        goto declined;
    }

    end = token->data + token->len;
    dot1 = ngx_strlchr(token->data, end, '.');
    dot2 = dot1 ? ngx_strlchr(dot1 + 1, end, '.') : NULL;

    if (dot2 == NULL || ngx_strlchr(dot2 + 1, end, '.') != NULL) {
        error = "token does not have exactly three segments";
        goto declined;
    }

    /* The algorithm is pinned before any HMAC is computed. */

    rc = ngx_http_chatgate_jwt_base64url_decode(pool, token->data,
                                                dot1 - token->data, &header);
    if (rc != NGX_OK) {
        error = rc == NGX_ERROR ? NULL : "header is not valid base64url";
        goto failed;
    }

    hdr.alg = 0;

    rc = ngx_http_chatgate_json_object(pool, &header,
                                       ngx_http_chatgate_jwt_header_member,
                                       &hdr, &error);
    if (rc != NGX_OK) {
        goto failed;
    }

    if (!hdr.alg) {
        error = "header has no alg";
        goto declined;
    }

    rc = ngx_http_chatgate_jwt_base64url_decode(pool, dot2 + 1,
                                                end - (dot2 + 1), &signature);
    if (rc != NGX_OK) {
        error = rc == NGX_ERROR ? NULL : "signature is not valid base64url";
        goto failed;
    }

    rc = ngx_http_chatgate_jwt_check_signature(token->data,
                                               dot2 - token->data,
                                               &signature, secret, &error);
    if (rc != NGX_OK) {
        goto failed;
    }

    rc = ngx_http_chatgate_jwt_base64url_decode(pool, dot1 + 1,
                                                dot2 - (dot1 + 1), &payload);
    if (rc != NGX_OK) {
        error = rc == NGX_ERROR ? NULL : "payload is not valid base64url";
        goto failed;
    }

    rc = ngx_http_chatgate_json_object(pool, &payload,
                                       ngx_http_chatgate_jwt_claim_member,
                                       claims, &error);
    if (rc != NGX_OK) {
        goto failed;
    }

    if (ngx_http_chatgate_jwt_check_claims(claims, now, leeway, &error)
        != NGX_OK)
    {
        goto declined;
    }

    return NGX_OK;

failed:

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "chatgate jwt verification failed: %s",
                      error ? error : "out of memory");
        return NGX_ERROR;
    }

declined:

    ngx_log_error(NGX_LOG_INFO, log, 0, "chatgate jwt rejected: %s", error);

    return NGX_DECLINED;
}


/*
 * Decodes base64url without padding (RFC 7515, section 2) into pool memory.
 * Only the 64 characters of the alphabet are accepted, and the unused bits of
 * the last character must be zero, so each byte string has one encoding.
 */
static ngx_int_t
ngx_http_chatgate_jwt_base64url_decode(ngx_pool_t *pool, u_char *src,
    size_t len, ngx_str_t *dst)
{
    u_char    c, *d;
    size_t    i;
    uint32_t  group, v;

    if (len == 0 || len % 4 == 1) {
        return NGX_DECLINED;
    }

    d = ngx_pnalloc(pool, len / 4 * 3 + 2);
    if (d == NULL) {
        return NGX_ERROR;
    }

    dst->data = d;
    group = 0;

    for (i = 0; i < len; i++) {
        c = src[i];

        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;
        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;
        } else if (c == '-') {
            v = 62;
        } else if (c == '_') {
            v = 63;
        } else {
            return NGX_DECLINED;
        }

        group = group << 6 | v;

        if (i % 4 == 3) {
            *d++ = (u_char) (group >> 16);
            *d++ = (u_char) (group >> 8);
            *d++ = (u_char) group;
            group = 0;
        }
    }

    if (len % 4 == 2) {
        if (group & 0x0f) {
            return NGX_DECLINED;
        }
        *d++ = (u_char) (group >> 4);

    } else if (len % 4 == 3) {
        if (group & 0x03) {
            return NGX_DECLINED;
        }
        *d++ = (u_char) (group >> 10);
        *d++ = (u_char) (group >> 2);
    }

    dst->len = d - dst->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_chatgate_jwt_check_signature(u_char *signed_part, size_t signed_len,
    ngx_str_t *signature, ngx_str_t *secret, const char **error)
{
    u_char        md[EVP_MAX_MD_SIZE];
    unsigned int  md_len;

    if (secret->len == 0) {
        *error = "JWT secret is empty";
        return NGX_ERROR;
    }

    if (signature->len != NGX_HTTP_CHATGATE_JWT_SIG_LEN) {
        *error = "signature is not 32 bytes";
        return NGX_DECLINED;
    }

    if (HMAC(EVP_sha256(), secret->data, (int) secret->len, signed_part,
             signed_len, md, &md_len)
        == NULL)
    {
        *error = "HMAC-SHA256 failed";
        return NGX_ERROR;
    }

    if (md_len != NGX_HTTP_CHATGATE_JWT_SIG_LEN
        || CRYPTO_memcmp(md, signature->data, NGX_HTTP_CHATGATE_JWT_SIG_LEN)
           != 0)
    {
        *error = "signature mismatch";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_chatgate_jwt_header_member(void *data, ngx_str_t *name,
    ngx_http_chatgate_json_value_t *value, const char **error)
{
    ngx_http_chatgate_jwt_header_t  *hdr = data;

    if (name->len == 3 && ngx_strncmp(name->data, "alg", 3) == 0) {
        if (value->type != NGX_HTTP_CHATGATE_JSON_STRING
            || value->str.len != 5
            || ngx_strncmp(value->str.data, "HS256", 5) != 0)
        {
            *error = "alg is not HS256";
            return NGX_DECLINED;
        }

        hdr->alg = 1;
        return NGX_OK;
    }

    if (name->len == 3 && ngx_strncmp(name->data, "typ", 3) == 0) {
        if (value->type != NGX_HTTP_CHATGATE_JSON_STRING
            || value->str.len != 3
            || ngx_strncmp(value->str.data, "JWT", 3) != 0)
        {
            *error = "typ is not JWT";
            return NGX_DECLINED;
        }

        return NGX_OK;
    }

    /* RFC 7515: a recipient must reject extensions it does not understand. */
    if (name->len == 4 && ngx_strncmp(name->data, "crit", 4) == 0) {
        *error = "header has crit";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_chatgate_jwt_claim_member(void *data, ngx_str_t *name,
    ngx_http_chatgate_json_value_t *value, const char **error)
{
    ngx_uint_t                i;
    ngx_str_t                *str;
    time_t                   *t;
    ngx_http_chatgate_jwt_t  *claims = data;

    static const struct {
        ngx_str_t  name;
        size_t     offset;
    } strings[] = {
        { ngx_string("sub"), offsetof(ngx_http_chatgate_jwt_t, sub) },
        { ngx_string("email"), offsetof(ngx_http_chatgate_jwt_t, email) },
        { ngx_string("role"), offsetof(ngx_http_chatgate_jwt_t, role) },
        { ngx_string("jti"), offsetof(ngx_http_chatgate_jwt_t, jti) },
        { ngx_string("key"), offsetof(ngx_http_chatgate_jwt_t, key) },
    }, times[] = {
        { ngx_string("exp"), offsetof(ngx_http_chatgate_jwt_t, exp) },
        { ngx_string("nbf"), offsetof(ngx_http_chatgate_jwt_t, nbf) },
        { ngx_string("iat"), offsetof(ngx_http_chatgate_jwt_t, iat) },
    };

    for (i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        if (name->len == strings[i].name.len
            && ngx_strncmp(name->data, strings[i].name.data, name->len) == 0)
        {
            if (value->type != NGX_HTTP_CHATGATE_JSON_STRING) {
                *error = "a string claim (sub, email, role, jti, key) is not a string";
                return NGX_DECLINED;
            }

            str = (ngx_str_t *) ((u_char *) claims + strings[i].offset);
            *str = value->str;
            return NGX_OK;
        }
    }

    for (i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        if (name->len == times[i].name.len
            && ngx_strncmp(name->data, times[i].name.data, name->len) == 0)
        {
            t = (time_t *) ((u_char *) claims + times[i].offset);

            if (value->type != NGX_HTTP_CHATGATE_JSON_NUMBER
                || ngx_http_chatgate_jwt_parse_time(&value->str, t) != NGX_OK)
            {
                *error = "a time claim (exp, nbf, iat) is not a non-negative number";
                return NGX_DECLINED;
            }

            return NGX_OK;
        }
    }

    if (name->len == 6 && ngx_strncmp(name->data, "models", 6) == 0) {
        if (value->type != NGX_HTTP_CHATGATE_JSON_ARRAY) {
            *error = "models is not an array of strings";
            return NGX_DECLINED;
        }

        claims->models = value->items;
        claims->nmodels = value->nitems;
    }

    return NGX_OK;
}


/*
 * Reads a NumericDate (RFC 7519): whole seconds, with an optional fraction
 * that is dropped. A sign, an exponent or more than 15 integer digits is
 * rejected, which keeps the value far from time_t overflow.
 */
static ngx_int_t
ngx_http_chatgate_jwt_parse_time(ngx_str_t *number, time_t *t)
{
    size_t  i;
    time_t  v;

    v = 0;

    for (i = 0; i < number->len && number->data[i] != '.'; i++) {
        if (number->data[i] < '0' || number->data[i] > '9'
            || i == NGX_HTTP_CHATGATE_JWT_TIME_DIGITS)
        {
            return NGX_DECLINED;
        }

        v = v * 10 + (number->data[i] - '0');
    }

    for (i++; i < number->len; i++) {
        if (number->data[i] < '0' || number->data[i] > '9') {
            return NGX_DECLINED;
        }
    }

    *t = v;

    return NGX_OK;
}


static ngx_int_t
ngx_http_chatgate_jwt_check_claims(ngx_http_chatgate_jwt_t *claims,
    time_t now, time_t leeway, const char **error)
{
    /* exp 0 is in 1970, so 0 also marks a missing exp. */
    if (claims->exp == 0) {
        *error = "exp is missing";
        return NGX_DECLINED;
    }

    if (claims->exp + leeway <= now) {
        *error = "token expired";
        return NGX_DECLINED;
    }

    if (claims->nbf != 0 && claims->nbf - leeway > now) {
        *error = "token not yet valid (nbf)";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * Reads text as one JSON object and calls handler for each member in order.
 * Returns NGX_OK, NGX_DECLINED with *error set, or NGX_ERROR when out of
 * memory.
 */
static ngx_int_t
ngx_http_chatgate_json_object(ngx_pool_t *pool, ngx_str_t *text,
    ngx_http_chatgate_json_member_pt handler, void *data, const char **error)
{
    ngx_int_t                        rc;
    ngx_str_t                        names[NGX_HTTP_CHATGATE_JWT_MAX_MEMBERS];
    ngx_uint_t                       n, i;
    ngx_http_chatgate_json_t         json;
    ngx_http_chatgate_json_value_t   value;

    json.pos = text->data;
    json.last = text->data + text->len;
    json.pool = pool;
    json.error = "segment is not a JSON object";

    ngx_http_chatgate_json_space(&json);

    if (json.pos == json.last || *json.pos++ != '{') {
        goto declined;
    }

    ngx_http_chatgate_json_space(&json);

    if (json.pos < json.last && *json.pos == '}') {
        json.pos++;
        goto done;
    }

    for (n = 0; /* void */; n++) {

        if (n == NGX_HTTP_CHATGATE_JWT_MAX_MEMBERS) {
            json.error = "JSON object has more than 32 members";
            goto declined;
        }

        rc = ngx_http_chatgate_json_string(&json, &names[n]);
        if (rc != NGX_OK) {
            goto failed;
        }

        for (i = 0; i < n; i++) {
            if (names[i].len == names[n].len
                && ngx_memcmp(names[i].data, names[n].data, names[n].len) == 0)
            {
                json.error = "JSON object has a duplicate member";
                goto declined;
            }
        }

        ngx_http_chatgate_json_space(&json);

        if (json.pos == json.last || *json.pos++ != ':') {
            json.error = "JSON member has no ':'";
            goto declined;
        }

        rc = ngx_http_chatgate_json_value(&json, &value);
        if (rc != NGX_OK) {
            goto failed;
        }

        rc = handler(data, &names[n], &value, error);
        if (rc != NGX_OK) {
            return rc;
        }

        ngx_http_chatgate_json_space(&json);

        if (json.pos == json.last) {
            json.error = "JSON object is not closed";
            goto declined;
        }

        if (*json.pos == '}') {
            json.pos++;
            break;
        }

        if (*json.pos++ != ',') {
            json.error = "JSON members are not separated by ','";
            goto declined;
        }

        ngx_http_chatgate_json_space(&json);
    }

done:

    ngx_http_chatgate_json_space(&json);

    if (json.pos != json.last) {
        json.error = "trailing bytes after the JSON object";
        goto declined;
    }

    return NGX_OK;

failed:

    if (rc == NGX_ERROR) {
        *error = NULL;
        return NGX_ERROR;
    }

declined:

    *error = json.error;

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_chatgate_json_value(ngx_http_chatgate_json_t *json,
    ngx_http_chatgate_json_value_t *value)
{
    size_t  n;

    ngx_memzero(value, sizeof(ngx_http_chatgate_json_value_t));
    ngx_http_chatgate_json_space(json);

    if (json->pos == json->last) {
        json->error = "JSON member has no value";
        return NGX_DECLINED;
    }

    switch (*json->pos) {

    case '"':
        value->type = NGX_HTTP_CHATGATE_JSON_STRING;
        return ngx_http_chatgate_json_string(json, &value->str);

    case '[':
        value->type = NGX_HTTP_CHATGATE_JSON_ARRAY;
        return ngx_http_chatgate_json_array(json, value);

    case '{':
        json->error = "nested JSON objects are not accepted";
        return NGX_DECLINED;

    case 't':
    case 'f':
    case 'n':
        n = (size_t) (json->last - json->pos);

        if ((n >= 4 && ngx_strncmp(json->pos, "true", 4) == 0)
            || (n >= 4 && ngx_strncmp(json->pos, "null", 4) == 0))
        {
            json->pos += 4;

        } else if (n >= 5 && ngx_strncmp(json->pos, "false", 5) == 0) {
            json->pos += 5;

        } else {
            json->error = "invalid JSON literal";
            return NGX_DECLINED;
        }

        value->type = NGX_HTTP_CHATGATE_JSON_LITERAL;
        return NGX_OK;

    default:
        value->type = NGX_HTTP_CHATGATE_JSON_NUMBER;
        return ngx_http_chatgate_json_number(json, &value->str);
    }
}


/* Reads an array of strings, at most NGX_HTTP_CHATGATE_JWT_MAX_MODELS long. */
static ngx_int_t
ngx_http_chatgate_json_array(ngx_http_chatgate_json_t *json,
    ngx_http_chatgate_json_value_t *value)
{
    ngx_int_t   rc;
    ngx_str_t   items[NGX_HTTP_CHATGATE_JWT_MAX_MODELS];
    ngx_uint_t  n;

    json->pos++;
    ngx_http_chatgate_json_space(json);
    n = 0;

    if (json->pos < json->last && *json->pos == ']') {
        json->pos++;
        goto done;
    }

    for ( ;; ) {
        if (n == NGX_HTTP_CHATGATE_JWT_MAX_MODELS) {
            json->error = "JSON array has more than 64 items";
            return NGX_DECLINED;
        }

        if (json->pos == json->last || *json->pos != '"') {
            json->error = "JSON arrays may hold only strings";
            return NGX_DECLINED;
        }

        rc = ngx_http_chatgate_json_string(json, &items[n++]);
        if (rc != NGX_OK) {
            return rc;
        }

        ngx_http_chatgate_json_space(json);

        if (json->pos == json->last) {
            json->error = "JSON array is not closed";
            return NGX_DECLINED;
        }

        if (*json->pos == ']') {
            json->pos++;
            break;
        }

        if (*json->pos++ != ',') {
            json->error = "JSON array items are not separated by ','";
            return NGX_DECLINED;
        }

        ngx_http_chatgate_json_space(json);
    }

done:

    if (n > 0) {
        value->items = ngx_palloc(json->pool, n * sizeof(ngx_str_t));
        if (value->items == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(value->items, items, n * sizeof(ngx_str_t));
    }

    value->nitems = n;

    return NGX_OK;
}


/*
 * Reads a JSON string at json->pos into pool memory, decoding escapes to
 * UTF-8. The decoded string is never longer than its raw text.
 */
static ngx_int_t
ngx_http_chatgate_json_string(ngx_http_chatgate_json_t *json, ngx_str_t *str)
{
    u_char  *p, *d;
    size_t   n;

    if (json->pos == json->last || *json->pos != '"') {
        json->error = "JSON member name is not a string";
        return NGX_DECLINED;
    }

    json->pos++;

    for (p = json->pos; p < json->last && *p != '"'; p++) {
        if (*p == '\\') {
            p++;
        }
    }

    if (p >= json->last) {
        json->error = "JSON string is not closed";
        return NGX_DECLINED;
    }

    d = ngx_pnalloc(json->pool, (p - json->pos) + 1);
    if (d == NULL) {
        return NGX_ERROR;
    }

    str->data = d;

    while (*json->pos != '"') {

        if (*json->pos < 0x20) {
            json->error = "control character in a JSON string";
            return NGX_DECLINED;
        }

        if (*json->pos == '\\') {
            if (ngx_http_chatgate_json_escape(json, &d) != NGX_OK) {
                return NGX_DECLINED;
            }
            continue;
        }

        n = 1;

        if (*json->pos >= 0x80) {
            n = ngx_http_chatgate_utf8_len(json->pos, json->last);
            if (n == 0) {
                json->error = "invalid UTF-8 in a JSON string";
                return NGX_DECLINED;
            }
        }

        d = ngx_cpymem(d, json->pos, n);
        json->pos += n;
    }

    json->pos++;
    str->len = d - str->data;

    return NGX_OK;
}


/* Decodes the escape at json->pos (a backslash) and appends it to *dst. */
static ngx_int_t
ngx_http_chatgate_json_escape(ngx_http_chatgate_json_t *json, u_char **dst)
{
    u_char    *d, c;
    uint32_t   code, low;

    d = *dst;
    json->pos++;
    c = *json->pos++;

    switch (c) {
    case '"': case '\\': case '/':
        *d++ = c;
        break;
    case 'b': *d++ = '\b'; break;
    case 'f': *d++ = '\f'; break;
    case 'n': *d++ = '\n'; break;
    case 'r': *d++ = '\r'; break;
    case 't': *d++ = '\t'; break;

    case 'u':
        if (ngx_http_chatgate_json_hex4(json, &code) != NGX_OK) {
            return NGX_DECLINED;
        }

        if (code >= 0xd800 && code <= 0xdbff) {
            if (json->last - json->pos < 6
                || json->pos[0] != '\\' || json->pos[1] != 'u')
            {
                json->error = "lone UTF-16 surrogate in a JSON string";
                return NGX_DECLINED;
            }

            json->pos += 2;

            if (ngx_http_chatgate_json_hex4(json, &low) != NGX_OK) {
                return NGX_DECLINED;
            }

            if (low < 0xdc00 || low > 0xdfff) {
                json->error = "lone UTF-16 surrogate in a JSON string";
                return NGX_DECLINED;
            }

            code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);

        } else if (code >= 0xdc00 && code <= 0xdfff) {
            json->error = "lone UTF-16 surrogate in a JSON string";
            return NGX_DECLINED;

        } else if (code == 0) {
            json->error = "\\u0000 in a JSON string";
            return NGX_DECLINED;
        }

        if (code < 0x80) {
            *d++ = (u_char) code;

        } else if (code < 0x800) {
            *d++ = (u_char) (0xc0 | code >> 6);
            *d++ = (u_char) (0x80 | (code & 0x3f));

        } else if (code < 0x10000) {
            *d++ = (u_char) (0xe0 | code >> 12);
            *d++ = (u_char) (0x80 | (code >> 6 & 0x3f));
            *d++ = (u_char) (0x80 | (code & 0x3f));

        } else {
            *d++ = (u_char) (0xf0 | code >> 18);
            *d++ = (u_char) (0x80 | (code >> 12 & 0x3f));
            *d++ = (u_char) (0x80 | (code >> 6 & 0x3f));
            *d++ = (u_char) (0x80 | (code & 0x3f));
        }

        break;

    default:
        json->error = "invalid escape in a JSON string";
        return NGX_DECLINED;
    }

    *dst = d;

    return NGX_OK;
}


static ngx_int_t
ngx_http_chatgate_json_hex4(ngx_http_chatgate_json_t *json, uint32_t *code)
{
    u_char      c;
    ngx_uint_t  i;

    if (json->last - json->pos < 4) {
        json->error = "truncated \\u escape in a JSON string";
        return NGX_DECLINED;
    }

    *code = 0;

    for (i = 0; i < 4; i++) {
        c = *json->pos++;

        if (c >= '0' && c <= '9') {
            *code = *code << 4 | (c - '0');
        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            *code = *code << 4 | ((c | 0x20) - 'a' + 10);
        } else {
            json->error = "invalid \\u escape in a JSON string";
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* Reads a number in the JSON grammar (RFC 8259, section 6) and keeps its text. */
static ngx_int_t
ngx_http_chatgate_json_number(ngx_http_chatgate_json_t *json, ngx_str_t *str)
{
    u_char  *p, *start;

    p = json->pos;
    start = p;

    if (p < json->last && *p == '-') {
        p++;
    }

    if (p < json->last && *p == '0') {
        p++;

    } else if (p < json->last && *p >= '1' && *p <= '9') {
        while (p < json->last && *p >= '0' && *p <= '9') { p++; }

    } else {
        goto invalid;
    }

    if (p < json->last && *p == '.') {
        p++;
        if (p == json->last || *p < '0' || *p > '9') {
            goto invalid;
        }
        while (p < json->last && *p >= '0' && *p <= '9') { p++; }
    }

    if (p < json->last && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < json->last && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p == json->last || *p < '0' || *p > '9') {
            goto invalid;
        }
        while (p < json->last && *p >= '0' && *p <= '9') { p++; }
    }

    str->data = start;
    str->len = p - start;
    json->pos = p;

    return NGX_OK;

invalid:

    json->error = "invalid JSON value";

    return NGX_DECLINED;
}


/* Returns the length of the valid UTF-8 sequence at p, or 0 (RFC 3629). */
static size_t
ngx_http_chatgate_utf8_len(u_char *p, u_char *last)
{
    u_char  lo, hi;
    size_t  n, i;

    if (*p >= 0xc2 && *p <= 0xdf) {
        n = 2; lo = 0x80; hi = 0xbf;
    } else if (*p == 0xe0) {
        n = 3; lo = 0xa0; hi = 0xbf;
    } else if (*p == 0xed) {
        n = 3; lo = 0x80; hi = 0x9f;
    } else if (*p >= 0xe1 && *p <= 0xef) {
        n = 3; lo = 0x80; hi = 0xbf;
    } else if (*p == 0xf0) {
        n = 4; lo = 0x90; hi = 0xbf;
    } else if (*p >= 0xf1 && *p <= 0xf3) {
        n = 4; lo = 0x80; hi = 0xbf;
    } else if (*p == 0xf4) {
        n = 4; lo = 0x80; hi = 0x8f;
    } else {
        return 0;
    }

    if ((size_t) (last - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }

    return n;
}


static void
ngx_http_chatgate_json_space(ngx_http_chatgate_json_t *json)
{
    while (json->pos < json->last
           && (*json->pos == ' ' || *json->pos == '\t'
               || *json->pos == '\n' || *json->pos == '\r'))
    {
        json->pos++;
    }
}
