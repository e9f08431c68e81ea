#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <yajl_gen.h>
#include <yajl_parse.h>

#include "jwt.h"
#include "vault.h"

#define CG_JWT_SIG_LEN      32
#define CG_JWT_TIME_DIGITS  15

/* The header of every token the worker signs: base64url of {"alg":"HS256","typ":"JWT"}. */
static const char  cg_jwt_header[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/* State of one strict parse of a header or payload object. */
typedef struct {
    int               depth;       /* 0 outside, 1 in the object, 2 in an array */
    int               header;      /* parsing the header, not the payload */
    int               alg;         /* the header had alg "HS256" */
    const char       *error;
    char             *names[CG_JWT_MAX_MEMBERS];
    size_t            name_lens[CG_JWT_MAX_MEMBERS];
    size_t            nnames;
    size_t            nitems;      /* items of the current array */
    cg_jwt_claims_t  *claims;
} cg_jwt_parse_t;


/* Signing */

int
cg_jwt_new_id(char out[CG_JWT_ID_LEN + 1])
{
    unsigned char  id[16];

    if (RAND_bytes(id, sizeof(id)) != 1) {
        return -1;
    }

    cg_base64_encode(out, id, sizeof(id), CG_BASE64_URL_NOPAD);

    return 0;
}

static int
cg_jwt_gen_string(yajl_gen gen, const char *name, const char *value)
{
    return yajl_gen_string(gen, (const unsigned char *) name, strlen(name))
               == yajl_gen_status_ok
           && yajl_gen_string(gen, (const unsigned char *) value, strlen(value))
               == yajl_gen_status_ok;
}

static int
cg_jwt_gen_number(yajl_gen gen, const char *name, int64_t value)
{
    return yajl_gen_string(gen, (const unsigned char *) name, strlen(name))
               == yajl_gen_status_ok
           && yajl_gen_integer(gen, value) == yajl_gen_status_ok;
}

/* Generates the payload JSON of claims with jti into gen. Returns 1 or 0. */
static int
cg_jwt_gen_payload(yajl_gen gen, const cg_jwt_claims_t *claims,
    const char *jti)
{
    size_t  i;
    int     good;

    good = yajl_gen_map_open(gen) == yajl_gen_status_ok
           && cg_jwt_gen_string(gen, "sub", claims->sub)
           && (claims->email == NULL
               || cg_jwt_gen_string(gen, "email", claims->email))
           && cg_jwt_gen_string(gen, "role", claims->role)
           && cg_jwt_gen_number(gen, "iat", claims->iat)
           && cg_jwt_gen_number(gen, "exp", claims->exp)
           && (claims->nbf == 0 || cg_jwt_gen_number(gen, "nbf", claims->nbf))
           && cg_jwt_gen_string(gen, "jti", jti)
           && (claims->key == NULL || cg_jwt_gen_string(gen, "key", claims->key));

    if (good && claims->models != NULL) {
        good = yajl_gen_string(gen, (const unsigned char *) "models", 6)
                   == yajl_gen_status_ok
               && yajl_gen_array_open(gen) == yajl_gen_status_ok;

        for (i = 0; good && i < claims->nmodels; i++) {
            good = yajl_gen_string(gen, (const unsigned char *) claims->models[i],
                                   strlen(claims->models[i]))
                   == yajl_gen_status_ok;
        }

        good = good && yajl_gen_array_close(gen) == yajl_gen_status_ok;
    }

    return good && yajl_gen_map_close(gen) == yajl_gen_status_ok;
}

char *
cg_jwt_sign(const unsigned char *secret, size_t secret_len,
    const cg_jwt_claims_t *claims, char jti_out[CG_JWT_ID_LEN + 1],
    char *err, size_t errlen)
{
    const unsigned char  *json;
    unsigned char         md[EVP_MAX_MD_SIZE];
    unsigned int          md_len;
    size_t                json_len, header_len, payload_len, total;
    yajl_gen              gen;
    char                 *token, jti[CG_JWT_ID_LEN + 1];

    token = NULL;
    gen = NULL;

    if (secret_len < CG_JWT_SECRET_MIN) {
        snprintf(err, errlen, "sign token: JWT_SECRET is %zu bytes, at least "
                 "%d are required; generate one with: openssl rand -hex 32",
                 secret_len, CG_JWT_SECRET_MIN);
        return NULL;
    }

    if (claims->sub == NULL || claims->role == NULL || claims->exp <= 0
        || (claims->models == NULL && claims->nmodels != 0)
        || claims->nmodels > CG_JWT_MAX_MODELS)
    {
        snprintf(err, errlen, "sign token: sub, role and a positive exp are "
                 "required, and at most %d models", CG_JWT_MAX_MODELS);
        return NULL;
    }

    gen = yajl_gen_alloc(NULL);
    if (gen == NULL || cg_jwt_new_id(jti) != 0) {
        snprintf(err, errlen, "sign token: out of memory or no random bytes");
        goto done;
    }

    yajl_gen_config(gen, yajl_gen_validate_utf8, 1);

    if (!cg_jwt_gen_payload(gen, claims, jti)) {
        snprintf(err, errlen, "sign token for \"%s\": a claim is not valid "
                 "UTF-8", claims->sub);
        goto done;
    }

    yajl_gen_get_buf(gen, &json, &json_len);

    header_len = sizeof(cg_jwt_header) - 1;
    payload_len = cg_base64_encoded_len(json_len, CG_BASE64_URL_NOPAD);
    total = header_len + 1 + payload_len + 1
            + cg_base64_encoded_len(CG_JWT_SIG_LEN, CG_BASE64_URL_NOPAD);

    if (total > CG_JWT_MAX_LEN) {
        snprintf(err, errlen, "sign token for \"%s\": %zu bytes exceed the "
                 "limit of %d", claims->sub, total, CG_JWT_MAX_LEN);
        goto done;
    }

    token = malloc(total + 1);
    if (token == NULL) {
        snprintf(err, errlen, "sign token: out of memory");
        goto done;
    }

    memcpy(token, cg_jwt_header, header_len);
    token[header_len] = '.';
    cg_base64_encode(token + header_len + 1, json, json_len, CG_BASE64_URL_NOPAD);

    if (HMAC(EVP_sha256(), secret, (int) secret_len, (unsigned char *) token,
             header_len + 1 + payload_len, md, &md_len) == NULL)
    {
        snprintf(err, errlen, "sign token: HMAC-SHA256 failed");
        free(token);
        token = NULL;
        goto done;
    }

    token[header_len + 1 + payload_len] = '.';
    cg_base64_encode(token + header_len + 1 + payload_len + 1, md, md_len,
                     CG_BASE64_URL_NOPAD);

    if (jti_out != NULL) {
        memcpy(jti_out, jti, sizeof(jti));
    }

done:

    if (gen != NULL) {
        yajl_gen_free(gen);
    }

    return token;
}


/* Strict parsing with yajl callbacks */

static int
cg_jwt_fail(cg_jwt_parse_t *parse, const char *error)
{
    parse->error = error;
    return 0;
}

static int
cg_jwt_name_is(cg_jwt_parse_t *parse, const char *name)
{
    size_t  len;

    len = strlen(name);

    return parse->nnames > 0
           && parse->name_lens[parse->nnames - 1] == len
           && memcmp(parse->names[parse->nnames - 1], name, len) == 0;
}

static char *
cg_jwt_strndup(const unsigned char *s, size_t len)
{
    char  *copy;

    copy = malloc(len + 1);
    if (copy != NULL) {
        memcpy(copy, s, len);
        copy[len] = '\0';
    }

    return copy;
}

/* Reads a NumericDate: digits, an optional fraction (dropped), no sign or exponent. */
static int
cg_jwt_parse_time(const char *s, size_t len, int64_t *t)
{
    size_t   i;
    int64_t  v;

    v = 0;

    for (i = 0; i < len && s[i] != '.'; i++) {
        if (s[i] < '0' || s[i] > '9' || i == CG_JWT_TIME_DIGITS) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }

    for (i++; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
    }

    *t = v;

    return 0;
}

static int
cg_jwt_on_scalar(cg_jwt_parse_t *parse)
{
    if (parse->depth != 1) {
        return cg_jwt_fail(parse, parse->depth == 0 ? "segment is not a JSON object"
                                                    : "JSON arrays may hold only strings");
    }

    if (parse->header) {
        if (cg_jwt_name_is(parse, "alg")) {
            return cg_jwt_fail(parse, "alg is not HS256");
        }
        if (cg_jwt_name_is(parse, "typ")) {
            return cg_jwt_fail(parse, "typ is not JWT");
        }
        return 1;
    }

    if (cg_jwt_name_is(parse, "sub") || cg_jwt_name_is(parse, "email")
        || cg_jwt_name_is(parse, "role") || cg_jwt_name_is(parse, "jti")
        || cg_jwt_name_is(parse, "key"))
    {
        return cg_jwt_fail(parse, "a string claim (sub, email, role, jti, key) is not a string");
    }

    if (cg_jwt_name_is(parse, "models")) {
        return cg_jwt_fail(parse, "models is not an array of strings");
    }

    return 1;
}

static int
cg_jwt_on_null(void *ctx)
{
    cg_jwt_parse_t  *parse = ctx;

    if (!cg_jwt_on_scalar(parse)) {
        return 0;
    }

    if (!parse->header
        && (cg_jwt_name_is(parse, "exp") || cg_jwt_name_is(parse, "nbf")
            || cg_jwt_name_is(parse, "iat")))
    {
        return cg_jwt_fail(parse, "a time claim (exp, nbf, iat) is not a non-negative number");
    }

    return 1;
}

static int
cg_jwt_on_boolean(void *ctx, int value)
{
    (void) value;

    return cg_jwt_on_null(ctx);
}

static int
cg_jwt_on_number(void *ctx, const char *s, size_t len)
{
    cg_jwt_parse_t  *parse = ctx;
    int64_t         *t;

    if (!cg_jwt_on_scalar(parse)) {
        return 0;
    }

    if (parse->header) {
        return 1;
    }

    t = cg_jwt_name_is(parse, "exp") ? &parse->claims->exp
        : cg_jwt_name_is(parse, "nbf") ? &parse->claims->nbf
        : cg_jwt_name_is(parse, "iat") ? &parse->claims->iat : NULL;

    if (t != NULL && cg_jwt_parse_time(s, len, t) != 0) {
        return cg_jwt_fail(parse, "a time claim (exp, nbf, iat) is not a non-negative number");
    }

    return 1;
}

static int
cg_jwt_on_array_string(cg_jwt_parse_t *parse, const unsigned char *s,
    size_t len)
{
    cg_jwt_claims_t  *claims = parse->claims;

    if (parse->nitems++ == CG_JWT_MAX_MODELS) {
        return cg_jwt_fail(parse, "JSON array has more than 64 items");
    }

    if (parse->header || !cg_jwt_name_is(parse, "models")) {
        return 1;
    }

    claims->models[claims->nmodels] = cg_jwt_strndup(s, len);
    if (claims->models[claims->nmodels] == NULL) {
        return cg_jwt_fail(parse, "out of memory");
    }

    claims->nmodels++;

    return 1;
}

static int
cg_jwt_on_string(void *ctx, const unsigned char *s, size_t len)
{
    cg_jwt_parse_t   *parse = ctx;
    char            **field;

    /*
     * NOTE: yajl 2 decodes a lone UTF-16 surrogate (\ud800) to '?', so this
     * verifier accepts what the module's reader rejects.
     */
    if (memchr(s, '\0', len) != NULL) {
        return cg_jwt_fail(parse, "\\u0000 in a JSON string");
    }

    if (parse->depth == 2) {
        return cg_jwt_on_array_string(parse, s, len);
    }

    if (parse->depth != 1) {
        return cg_jwt_fail(parse, "segment is not a JSON object");
    }

    if (parse->header) {
        if (cg_jwt_name_is(parse, "alg")) {
            if (len != 5 || memcmp(s, "HS256", 5) != 0) {
                return cg_jwt_fail(parse, "alg is not HS256");
            }
            parse->alg = 1;
        }

        if (cg_jwt_name_is(parse, "typ") && (len != 3 || memcmp(s, "JWT", 3) != 0)) {
            return cg_jwt_fail(parse, "typ is not JWT");
        }

        return 1;
    }

    field = cg_jwt_name_is(parse, "sub") ? &parse->claims->sub
            : cg_jwt_name_is(parse, "email") ? &parse->claims->email
            : cg_jwt_name_is(parse, "role") ? &parse->claims->role
            : cg_jwt_name_is(parse, "jti") ? &parse->claims->jti
            : cg_jwt_name_is(parse, "key") ? &parse->claims->key : NULL;

    if (cg_jwt_name_is(parse, "exp") || cg_jwt_name_is(parse, "nbf")
        || cg_jwt_name_is(parse, "iat"))
    {
        return cg_jwt_fail(parse, "a time claim (exp, nbf, iat) is not a non-negative number");
    }

    if (cg_jwt_name_is(parse, "models")) {
        return cg_jwt_fail(parse, "models is not an array of strings");
    }

    if (field != NULL) {
        *field = cg_jwt_strndup(s, len);
        if (*field == NULL) {
            return cg_jwt_fail(parse, "out of memory");
        }
    }

    return 1;
}

static int
cg_jwt_on_start_map(void *ctx)
{
    cg_jwt_parse_t  *parse = ctx;

    if (parse->depth != 0) {
        return cg_jwt_fail(parse, "nested JSON objects are not accepted");
    }

    parse->depth = 1;

    return 1;
}

static int
cg_jwt_on_map_key(void *ctx, const unsigned char *s, size_t len)
{
    cg_jwt_parse_t  *parse = ctx;
    size_t           i;

    if (memchr(s, '\0', len) != NULL) {
        return cg_jwt_fail(parse, "\\u0000 in a JSON string");
    }

    if (parse->nnames == CG_JWT_MAX_MEMBERS) {
        return cg_jwt_fail(parse, "JSON object has more than 32 members");
    }

    for (i = 0; i < parse->nnames; i++) {
        if (parse->name_lens[i] == len && memcmp(parse->names[i], s, len) == 0) {
            return cg_jwt_fail(parse, "JSON object has a duplicate member");
        }
    }

    parse->names[parse->nnames] = cg_jwt_strndup(s, len);
    if (parse->names[parse->nnames] == NULL) {
        return cg_jwt_fail(parse, "out of memory");
    }

    parse->name_lens[parse->nnames++] = len;

    if (parse->header && len == 4 && memcmp(s, "crit", 4) == 0) {
        return cg_jwt_fail(parse, "header has crit");
    }

    return 1;
}

static int
cg_jwt_on_end_map(void *ctx)
{
    ((cg_jwt_parse_t *) ctx)->depth = 3;     /* nothing may follow */

    return 1;
}

static int
cg_jwt_on_start_array(void *ctx)
{
    cg_jwt_parse_t  *parse = ctx;

    if (parse->depth != 1) {
        return cg_jwt_fail(parse, parse->depth == 0 ? "segment is not a JSON object"
                                                    : "JSON arrays may hold only strings");
    }

    if (parse->header && (cg_jwt_name_is(parse, "alg") || cg_jwt_name_is(parse, "typ"))) {
        return cg_jwt_fail(parse, cg_jwt_name_is(parse, "alg") ? "alg is not HS256"
                                                                : "typ is not JWT");
    }

    if (!parse->header) {
        if (cg_jwt_name_is(parse, "models")) {
            parse->claims->models = calloc(CG_JWT_MAX_MODELS, sizeof(char *));
            if (parse->claims->models == NULL) {
                return cg_jwt_fail(parse, "out of memory");
            }

        } else if (!cg_jwt_on_scalar(parse)) {
            return 0;
        }
    }

    parse->depth = 2;
    parse->nitems = 0;

    return 1;
}

static int
cg_jwt_on_end_array(void *ctx)
{
    ((cg_jwt_parse_t *) ctx)->depth = 1;

    return 1;
}

static const yajl_callbacks  cg_jwt_callbacks = {
    cg_jwt_on_null,
    cg_jwt_on_boolean,
    NULL,
    NULL,
    cg_jwt_on_number,
    cg_jwt_on_string,
    cg_jwt_on_start_map,
    cg_jwt_on_map_key,
    cg_jwt_on_end_map,
    cg_jwt_on_start_array,
    cg_jwt_on_end_array
};

/* Parses one decoded segment as a strict flat JSON object. Returns 0 or -1. */
static int
cg_jwt_parse_object(cg_jwt_parse_t *parse, const unsigned char *json,
    size_t len)
{
    yajl_handle  handle;
    yajl_status  status;
    size_t       i;

    handle = yajl_alloc(&cg_jwt_callbacks, NULL, parse);
    if (handle == NULL) {
        parse->error = "out of memory";
        return -1;
    }

    status = yajl_parse(handle, json, len);
    if (status == yajl_status_ok) {
        status = yajl_complete_parse(handle);
    }

    yajl_free(handle);

    for (i = 0; i < parse->nnames; i++) {
        free(parse->names[i]);
    }

    if (status != yajl_status_ok || parse->depth != 3) {
        if (parse->error == NULL) {
            parse->error = "segment is not a JSON object";
        }
        return -1;
    }

    return 0;
}


/* Verification */

/* Decodes one base64url segment into a malloc'ed buffer. */
static unsigned char *
cg_jwt_decode_segment(const char *s, size_t len, size_t *out_len)
{
    unsigned char  *buf;
    long            n;

    if (len == 0) {
        return NULL;
    }

    buf = malloc(len / 4 * 3 + 3);
    if (buf == NULL) {
        return NULL;
    }

    n = cg_base64_decode(buf, s, len, CG_BASE64_URL_NOPAD);
    if (n < 0) {
        free(buf);
        return NULL;
    }

    *out_len = (size_t) n;

    return buf;
}

static const char *
cg_jwt_check_header(const char *s, size_t len)
{
    cg_jwt_parse_t   parse;
    unsigned char   *json;
    size_t           json_len;
    int              rc;

    json = cg_jwt_decode_segment(s, len, &json_len);
    if (json == NULL) {
        return "header is not valid base64url";
    }

    memset(&parse, 0, sizeof(parse));
    parse.header = 1;
    rc = cg_jwt_parse_object(&parse, json, json_len);
    free(json);

    if (rc != 0) {
        return parse.error;
    }

    return parse.alg ? NULL : "header has no alg";
}

static const char *
cg_jwt_check_signature(const unsigned char *secret, size_t secret_len,
    const char *token, size_t signed_len, const char *sig, size_t sig_len)
{
    unsigned char  md[EVP_MAX_MD_SIZE], *decoded;
    unsigned int   md_len;
    size_t         decoded_len;
    int            same;

    if (secret_len == 0) {
        return "JWT secret is empty";
    }

    decoded = cg_jwt_decode_segment(sig, sig_len, &decoded_len);
    if (decoded == NULL) {
        return "signature is not valid base64url";
    }

    if (decoded_len != CG_JWT_SIG_LEN) {
        free(decoded);
        return "signature is not 32 bytes";
    }

    if (HMAC(EVP_sha256(), secret, (int) secret_len, (const unsigned char *) token,
             signed_len, md, &md_len) == NULL)
    {
        free(decoded);
        return "HMAC-SHA256 failed";
    }

    same = md_len == CG_JWT_SIG_LEN && CRYPTO_memcmp(md, decoded, CG_JWT_SIG_LEN) == 0;
    free(decoded);

    return same ? NULL : "signature mismatch";
}

static const char *
cg_jwt_read_claims(const char *s, size_t len, cg_jwt_claims_t *claims)
{
    cg_jwt_parse_t   parse;
    unsigned char   *json;
    size_t           json_len;
    int              rc;

    json = cg_jwt_decode_segment(s, len, &json_len);
    if (json == NULL) {
        return "payload is not valid base64url";
    }

    memset(&parse, 0, sizeof(parse));
    parse.claims = claims;
    rc = cg_jwt_parse_object(&parse, json, json_len);
    free(json);

    return rc == 0 ? NULL : parse.error;
}

int
cg_jwt_verify(const unsigned char *secret, size_t secret_len,
    const char *token, size_t len, int64_t now, int64_t leeway,
    cg_jwt_claims_t *claims, char *err, size_t errlen)
{
    const char  *dot1, *dot2, *end, *error;

    memset(claims, 0, sizeof(cg_jwt_claims_t));
    end = token + len;

    if (len > CG_JWT_MAX_LEN) {
        error = "token longer than 8192 bytes";
        goto fail;
    }

    dot1 = memchr(token, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t) (end - dot1 - 1)) : NULL;

    if (dot2 == NULL || memchr(dot2 + 1, '.', (size_t) (end - dot2 - 1)) != NULL) {
        error = "token does not have exactly three segments";
        goto fail;
    }

    /* The algorithm is pinned before any HMAC is computed. */
    error = cg_jwt_check_header(token, (size_t) (dot1 - token));

    if (error == NULL) {
        error = cg_jwt_check_signature(secret, secret_len, token,
                                       (size_t) (dot2 - token), dot2 + 1,
                                       (size_t) (end - dot2 - 1));
    }

    if (error == NULL) {
        error = cg_jwt_read_claims(dot1 + 1, (size_t) (dot2 - dot1 - 1), claims);
    }

    if (error == NULL) {
        error = claims->exp == 0 ? "exp is missing"
                : claims->exp + leeway <= now ? "token expired"
                : claims->nbf != 0 && claims->nbf - leeway > now
                  ? "token not yet valid (nbf)" : NULL;
    }

    if (error == NULL) {
        return 0;
    }

fail:

    cg_jwt_claims_free(claims);
    snprintf(err, errlen, "jwt rejected: %s", error);

    return -1;
}

void
cg_jwt_claims_free(cg_jwt_claims_t *claims)
{
    size_t  i;

    free(claims->sub);
    free(claims->email);
    free(claims->role);
    free(claims->jti);
    free(claims->key);

    for (i = 0; claims->models != NULL && i < claims->nmodels; i++) {
        free(claims->models[i]);
    }

    free(claims->models);
    memset(claims, 0, sizeof(cg_jwt_claims_t));
}
