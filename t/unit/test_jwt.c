/*
 * Unit tests for worker/jwt.c and ngx_module/ngx_http_chatgate_jwt.c.
 *
 * The module verifier is compiled here with small stand-ins for the nginx
 * types and functions it uses, so that the same tokens run through both
 * verifiers: valid tokens signed by the worker must pass both, and each
 * forged token must fail both for the same reason.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "jwt.h"
#include "tap.h"
#include "vault.h"


/* nginx stand-ins, just enough for ngx_http_chatgate_jwt.c */

typedef unsigned char  u_char;
typedef intptr_t       ngx_int_t;
typedef uintptr_t      ngx_uint_t;

typedef struct {
    size_t   len;
    u_char  *data;
} ngx_str_t;

#define TEST_POOL_MAX  256

typedef struct {
    void    *blocks[TEST_POOL_MAX];
    size_t   n;
} ngx_pool_t;

typedef struct {
    char  last[256];
} ngx_log_t;

#define NGX_OK        0
#define NGX_ERROR    -1
#define NGX_DECLINED -5
#define NGX_LOG_ERR   4
#define NGX_LOG_INFO  7

#define ngx_string(str)          { sizeof(str) - 1, (u_char *) str }
#define ngx_memzero(buf, n)      (void) memset(buf, 0, n)
#define ngx_memcpy(dst, src, n)  (void) memcpy(dst, src, n)
#define ngx_cpymem(dst, src, n)  (((u_char *) memcpy(dst, src, n)) + (n))
#define ngx_memcmp               memcmp
#define ngx_strncmp(s1, s2, n)   strncmp((const char *) s1, (const char *) s2, n)

static u_char *
ngx_strlchr(u_char *p, u_char *last, u_char c)
{
    for ( ; p < last; p++) {
        if (*p == c) {
            return p;
        }
    }

    return NULL;
}

static void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    if (pool->n == TEST_POOL_MAX) {
        return NULL;
    }

    pool->blocks[pool->n] = malloc(size);

    return pool->blocks[pool->n++];
}

#define ngx_pnalloc  ngx_palloc

static void
test_pool_reset(ngx_pool_t *pool)
{
    while (pool->n > 0) {
        free(pool->blocks[--pool->n]);
    }
}

static void __attribute__((format(printf, 4, 5)))
ngx_log_error(ngx_uint_t level, ngx_log_t *log, int err, const char *fmt, ...)
{
    va_list  ap;

    (void) level;
    (void) err;
    va_start(ap, fmt);
    vsnprintf(log->last, sizeof(log->last), fmt, ap);
    va_end(ap);
}

#define NGX_HTTP_CHATGATE_JWT_UNIT_TEST 1
#include "../../ngx_module/ngx_http_chatgate_jwt.c"


#define SECRET      "0123456789abcdef0123456789abcdef-test-secret"
#define NOW         1800000000
#define LEEWAY      30
#define HEADER_HS256  "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define CLAIMS_OK   "{\"sub\":\"u1\",\"role\":\"admin\",\"exp\":1800003600}"

static ngx_pool_t  pool;

/* Returns b64url(header).b64url(payload).b64url(HMAC-SHA256(secret)), malloc'ed. */
static char *
make_token(const char *header, const char *payload, const char *secret)
{
    unsigned char  md[32];
    unsigned int   md_len;
    size_t         hlen, plen, len;
    char          *token;

    hlen = cg_base64_encoded_len(strlen(header), CG_BASE64_URL_NOPAD);
    plen = cg_base64_encoded_len(strlen(payload), CG_BASE64_URL_NOPAD);
    token = malloc(hlen + plen + 48);

    cg_base64_encode(token, (const unsigned char *) header, strlen(header),
                     CG_BASE64_URL_NOPAD);
    token[hlen] = '.';
    cg_base64_encode(token + hlen + 1, (const unsigned char *) payload,
                     strlen(payload), CG_BASE64_URL_NOPAD);
    len = hlen + 1 + plen;

    HMAC(EVP_sha256(), secret, (int) strlen(secret), (unsigned char *) token,
         len, md, &md_len);
    token[len] = '.';
    cg_base64_encode(token + len + 1, md, md_len, CG_BASE64_URL_NOPAD);

    return token;
}

/* Returns signed_part followed by "." and its HMAC-SHA256 signature, malloc'ed. */
static char *
resign(const char *signed_part, const char *secret)
{
    unsigned char  md[32];
    unsigned int   md_len;
    size_t         len;
    char          *token;

    len = strlen(signed_part);
    token = malloc(len + 48);
    memcpy(token, signed_part, len);
    HMAC(EVP_sha256(), secret, (int) strlen(secret), (unsigned char *) token,
         len, md, &md_len);
    token[len] = '.';
    cg_base64_encode(token + len + 1, md, md_len, CG_BASE64_URL_NOPAD);

    return token;
}

static ngx_int_t
module_verify(const char *token, size_t len, const char *secret,
    ngx_http_chatgate_jwt_t *claims, ngx_log_t *log)
{
    ngx_str_t  t, s;

    t.data = (u_char *) token;
    t.len = len;
    s.data = (u_char *) secret;
    s.len = strlen(secret);
    log->last[0] = '\0';

    return ngx_http_chatgate_jwt_verify(&pool, &t, &s, NOW, LEEWAY, claims, log);
}

/*
 * Checks that both verifiers reject token, each naming reason (a substring of
 * the logged message); worker_reason NULL means the worker's own wording.
 */
static void
expect_rejected(const char *name, const char *token, size_t len,
    const char *secret, const char *reason, const char *worker_reason)
{
    ngx_http_chatgate_jwt_t  mclaims;
    cg_jwt_claims_t          wclaims;
    ngx_log_t                log;
    ngx_int_t                rc;
    char                     err[256];

    rc = module_verify(token, len, secret, &mclaims, &log);
    is_int(rc, NGX_DECLINED, "module: %s", name);
    ok(strstr(log.last, reason) != NULL, "module reason: %s", name);
    if (strstr(log.last, reason) == NULL) {
        printf("#   logged \"%s\", expected \"%s\"\n", log.last, reason);
    }
    ok(len < 16 || strstr(log.last, token + len - 16) == NULL,
       "module log has no token: %s", name);

    is_int(cg_jwt_verify((const unsigned char *) secret, strlen(secret), token,
                         len, NOW, LEEWAY, &wclaims, err, sizeof(err)), -1,
           "worker: %s", name);
    if (worker_reason != NULL) {
        ok(strstr(err, worker_reason) != NULL, "worker reason: %s", name);
        if (strstr(err, worker_reason) == NULL) {
            printf("#   error \"%s\", expected \"%s\"\n", err, worker_reason);
        }
    }
    ok(wclaims.sub == NULL && wclaims.models == NULL, "worker claims empty: %s", name);

    test_pool_reset(&pool);
}

static void
expect_forged(const char *name, const char *header, const char *payload,
    const char *secret, const char *reason)
{
    char  *token;

    token = make_token(header, payload, secret);
    expect_rejected(name, token, strlen(token), SECRET, reason, reason);
    free(token);
}

static void
expect_accepted(const char *name, const char *payload)
{
    ngx_http_chatgate_jwt_t  mclaims;
    cg_jwt_claims_t          wclaims;
    ngx_log_t                log;
    char                     err[256];
    char                    *token;

    token = make_token(HEADER_HS256, payload, SECRET);

    is_int(module_verify(token, strlen(token), SECRET, &mclaims, &log), NGX_OK,
           "module accepts: %s", name);
    is_int(cg_jwt_verify((const unsigned char *) SECRET, strlen(SECRET), token,
                         strlen(token), NOW, LEEWAY, &wclaims, err, sizeof(err)),
           0, "worker accepts: %s", name);

    cg_jwt_claims_free(&wclaims);
    test_pool_reset(&pool);
    free(token);
}

static void
test_signed_round_trip(void)
{
    char                     *models[] = { "gpt-4o-mini", "llama3:8b" };
    cg_jwt_claims_t           in, out;
    ngx_http_chatgate_jwt_t   mclaims;
    ngx_log_t                 log;
    char                      jti[CG_JWT_ID_LEN + 1], err[256];
    char                     *token;

    memset(&in, 0, sizeof(in));
    in.sub = "42";
    in.email = "ops@example.com";
    in.role = "client";
    in.key = "0f8fad5b-d9cb-469f-a165-70867728950e";
    in.models = models;
    in.nmodels = 2;
    in.iat = NOW;
    in.exp = NOW + 3600;

    token = cg_jwt_sign((const unsigned char *) SECRET, strlen(SECRET), &in,
                        jti, err, sizeof(err));
    ok(token != NULL, "sign client token");
    is_int(strlen(jti), CG_JWT_ID_LEN, "jti is 22 base64url characters");

    is_int(cg_jwt_verify((const unsigned char *) SECRET, strlen(SECRET), token,
                         strlen(token), NOW, LEEWAY, &out, err, sizeof(err)), 0,
           "worker verifies its token");
    is_str(out.sub, "42", "worker claim sub");
    is_str(out.email, "ops@example.com", "worker claim email");
    is_str(out.role, "client", "worker claim role");
    is_str(out.jti, jti, "worker claim jti");
    is_str(out.key, in.key, "worker claim key");
    is_int(out.nmodels, 2, "worker claim models count");
    is_str(out.models[1], "llama3:8b", "worker claim models item");
    is_int(out.exp, NOW + 3600, "worker claim exp");
    is_int(out.iat, NOW, "worker claim iat");
    cg_jwt_claims_free(&out);

    is_int(module_verify(token, strlen(token), SECRET, &mclaims, &log), NGX_OK,
           "module verifies a worker token");
    ok(mclaims.sub.len == 2 && memcmp(mclaims.sub.data, "42", 2) == 0, "module claim sub");
    ok(mclaims.role.len == 6 && memcmp(mclaims.role.data, "client", 6) == 0,
       "module claim role");
    ok(mclaims.jti.len == CG_JWT_ID_LEN && memcmp(mclaims.jti.data, jti, CG_JWT_ID_LEN) == 0,
       "module claim jti");
    ok(mclaims.key.len == 36 && memcmp(mclaims.key.data, in.key, 36) == 0, "module claim key");
    is_int(mclaims.nmodels, 2, "module claim models count");
    ok(mclaims.models[0].len == 11 && memcmp(mclaims.models[0].data, "gpt-4o-mini", 11) == 0,
       "module claim models item");
    is_int(mclaims.exp, NOW + 3600, "module claim exp");
    is_int(mclaims.nbf, 0, "module claim nbf absent");
    test_pool_reset(&pool);

    expect_rejected("worker token with other secret", token, strlen(token),
                    "another-secret-of-32-bytes-or-more!!", "signature mismatch",
                    "signature mismatch");
    free(token);

    in.models = NULL;
    in.nmodels = 0;
    in.key = NULL;
    in.email = NULL;
    in.role = "admin";
    token = cg_jwt_sign((const unsigned char *) SECRET, strlen(SECRET), &in,
                        NULL, err, sizeof(err));
    is_int(module_verify(token, strlen(token), SECRET, &mclaims, &log), NGX_OK,
           "module verifies an admin token");
    ok(mclaims.models == NULL && mclaims.key.len == 0, "admin token has no models or key");
    test_pool_reset(&pool);
    free(token);

    ok(cg_jwt_sign((const unsigned char *) "short", 5, &in, NULL, err, sizeof(err)) == NULL,
       "sign rejects a short secret");
    ok(strstr(err, "openssl rand") != NULL, "short secret error says how to make one");
    in.exp = 0;
    ok(cg_jwt_sign((const unsigned char *) SECRET, strlen(SECRET), &in, NULL, err,
                   sizeof(err)) == NULL, "sign rejects a missing exp");
    in.exp = NOW + 60;
    in.sub = "\xff";
    ok(cg_jwt_sign((const unsigned char *) SECRET, strlen(SECRET), &in, NULL, err,
                   sizeof(err)) == NULL, "sign rejects invalid UTF-8");
}

static void
test_forged(void)
{
    char  *token, *part, *big;
    size_t len;

    expect_forged("alg none", "{\"alg\":\"none\"}", CLAIMS_OK, SECRET, "alg is not HS256");
    expect_forged("alg HS512 signed HS256", "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
                  CLAIMS_OK, SECRET, "alg is not HS256");
    expect_forged("alg RS256 signed HS256", "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
                  CLAIMS_OK, SECRET, "alg is not HS256");
    expect_forged("alg lowercase", "{\"alg\":\"hs256\"}", CLAIMS_OK, SECRET, "alg is not HS256");
    expect_forged("alg not a string", "{\"alg\":256}", CLAIMS_OK, SECRET, "alg is not HS256");
    expect_forged("alg null", "{\"alg\":null}", CLAIMS_OK, SECRET, "alg is not HS256");
    expect_forged("alg array", "{\"alg\":[\"HS256\"]}", CLAIMS_OK, SECRET, "alg is not HS256");
    expect_forged("alg missing", "{\"typ\":\"JWT\"}", CLAIMS_OK, SECRET, "header has no alg");
    expect_forged("alg duplicated", "{\"alg\":\"HS256\",\"alg\":\"none\"}", CLAIMS_OK,
                  SECRET, "duplicate member");
    expect_forged("typ not JWT", "{\"alg\":\"HS256\",\"typ\":\"JWS\"}", CLAIMS_OK,
                  SECRET, "typ is not JWT");
    expect_forged("header crit", "{\"alg\":\"HS256\",\"crit\":[\"b64\"]}", CLAIMS_OK,
                  SECRET, "header has crit");
    expect_forged("header not an object", "[\"HS256\"]", CLAIMS_OK, SECRET,
                  "segment is not a JSON object");
    expect_forged("other secret", HEADER_HS256, CLAIMS_OK,
                  "not-the-secret-0123456789abcdef0123", "signature mismatch");
    expect_forged("expired", HEADER_HS256,
                  "{\"sub\":\"u1\",\"exp\":1799999970}", SECRET, "token expired");
    expect_forged("nbf in the future", HEADER_HS256,
                  "{\"sub\":\"u1\",\"exp\":1800003600,\"nbf\":1800000031}", SECRET,
                  "not yet valid");
    expect_forged("no exp", HEADER_HS256, "{\"sub\":\"u1\",\"role\":\"admin\"}", SECRET,
                  "exp is missing");
    expect_forged("exp string", HEADER_HS256, "{\"exp\":\"1800003600\"}", SECRET,
                  "time claim");
    expect_forged("exp negative", HEADER_HS256, "{\"exp\":-1}", SECRET, "time claim");
    expect_forged("exp exponent", HEADER_HS256, "{\"exp\":1.8e9}", SECRET, "time claim");
    expect_forged("exp null", HEADER_HS256, "{\"exp\":null}", SECRET, "time claim");
    expect_forged("exp too many digits", HEADER_HS256, "{\"exp\":1000000000000000}",
                  SECRET, "time claim");
    expect_forged("sub number", HEADER_HS256, "{\"sub\":1,\"exp\":1800003600}", SECRET,
                  "string claim");
    expect_forged("models string", HEADER_HS256,
                  "{\"models\":\"gpt-4o\",\"exp\":1800003600}", SECRET, "models is not");
    expect_forged("models with a number", HEADER_HS256,
                  "{\"models\":[\"a\",1],\"exp\":1800003600}", SECRET, "only strings");
    expect_forged("nested array", HEADER_HS256,
                  "{\"aud\":[[\"a\"]],\"exp\":1800003600}", SECRET, "only strings");
    expect_forged("nested object", HEADER_HS256,
                  "{\"ctx\":{\"a\":1},\"exp\":1800003600}", SECRET, "nested JSON objects");
    expect_forged("duplicate exp", HEADER_HS256,
                  "{\"exp\":1,\"exp\":1800003600}", SECRET, "duplicate member");
    expect_forged("escaped NUL", HEADER_HS256,
                  "{\"sub\":\"a\\u0000b\",\"exp\":1800003600}", SECRET, "\\u0000");
    expect_forged("payload array", HEADER_HS256, "[1800003600]", SECRET,
                  "segment is not a JSON object");

    /* Cases where yajl words the reason its own way. */
    token = make_token(HEADER_HS256, "{\"exp\":1800003600} x", SECRET);
    expect_rejected("trailing bytes", token, strlen(token), SECRET, "trailing bytes", NULL);
    free(token);
    token = make_token(HEADER_HS256, "{\"sub\":\"\xc3\x28\",\"exp\":1800003600}", SECRET);
    expect_rejected("invalid UTF-8 in a claim", token, strlen(token), SECRET,
                    "invalid UTF-8", NULL);
    free(token);
    token = make_token(HEADER_HS256, "{\"sub\":\"a\tb\",\"exp\":1800003600}", SECRET);
    expect_rejected("raw control character", token, strlen(token), SECRET,
                    "control character", NULL);
    free(token);
    token = make_token(HEADER_HS256, "{\"exp\":1800003600,}", SECRET);
    expect_rejected("trailing comma", token, strlen(token), SECRET, "JSON member name", NULL);
    free(token);
    token = make_token(HEADER_HS256, "{\"exp\":01800003600}", SECRET);
    expect_rejected("leading zero", token, strlen(token), SECRET, "not separated", NULL);
    free(token);

    /* Segment structure and encoding. */
    token = make_token(HEADER_HS256, CLAIMS_OK, SECRET);
    len = strlen(token);

    expect_rejected("missing segment", token, (size_t) (strrchr(token, '.') - token),
                    SECRET, "three segments", "three segments");

    part = malloc(len + 8);
    memcpy(part, token, len);
    memcpy(part + len, ".AAAA", 6);
    expect_rejected("fourth segment", part, len + 5, SECRET, "three segments",
                    "three segments");

    memcpy(part, token, len + 1);
    part[3] = (char) 0xc3;
    expect_rejected("byte >= 0x80 in header", part, len, SECRET,
                    "header is not valid base64url", "header is not valid base64url");

    memcpy(part, token, len + 1);
    part[len - 2] = (char) 0x80;
    expect_rejected("byte >= 0x80 in signature", part, len, SECRET,
                    "signature is not valid base64url", "signature is not valid base64url");

    memcpy(part, token, len);
    memcpy(part + len, "=", 2);
    expect_rejected("padded signature", part, len + 1, SECRET,
                    "signature is not valid base64url", "signature is not valid base64url");

    memcpy(part, token, len + 1);
    part[len - 1] = '+';
    expect_rejected("standard base64 character", part, len, SECRET,
                    "signature is not valid base64url", "signature is not valid base64url");

    /* 43 characters carry 258 bits: a changed stray bit must not verify. */
    memcpy(part, token, len + 1);
    part[len - 1] = (char) (part[len - 1] + 1);
    expect_rejected("stray bits in signature", part, len, SECRET, "signature",
                    "signature");

    memcpy(part, token, len + 1);
    part[len - 3] = '\0';
    expect_rejected("short signature", part, len - 3, SECRET,
                    "signature is not 32 bytes", "signature is not 32 bytes");

    expect_rejected("empty token", "", 0, SECRET, "three segments", "three segments");
    expect_rejected("dots only", "..", 2, SECRET, "header is not valid base64url",
                    "header is not valid base64url");
    free(part);

    /* Padding in the payload, with a valid signature over the padded text. */
    part = make_token(HEADER_HS256, "{\"exp\":1800003600}x", SECRET);   /* 19 bytes, so base64url needs padding */
    *strrchr(part, '.') = '\0';
    big = malloc(strlen(part) + 4);
    sprintf(big, "%s==", part);
    free(part);
    part = resign(big, SECRET);
    expect_rejected("padded payload", part, strlen(part), SECRET,
                    "payload is not valid base64url", "payload is not valid base64url");
    free(part);
    free(big);

    /* 16 KB of valid characters. */
    big = malloc(16384 + 1);
    memset(big, 'A', 16384);
    memcpy(big, token, len);
    big[16384] = '\0';
    expect_rejected("16 KB token", big, 16384, SECRET, "longer than 8192",
                    "longer than 8192");
    free(big);
    free(token);
}

static void
test_accepted(void)
{
    ngx_http_chatgate_jwt_t  mclaims;
    cg_jwt_claims_t          wclaims;
    ngx_log_t                log;
    char                     err[256];
    char                    *token;
    ngx_str_t                secret = ngx_string("");
    ngx_str_t                t;

    expect_accepted("exp within leeway", "{\"exp\":1799999971}");
    expect_accepted("nbf within leeway", "{\"exp\":1800003600,\"nbf\":1800000030}");
    expect_accepted("fractional exp", "{\"exp\":1800003600.5}");
    expect_accepted("unknown flat claims", "{\"exp\":1800003600,\"aud\":[\"x\",\"y\"],"
                    "\"admin\":false,\"n\":-1.5e3,\"z\":null}");
    expect_accepted("whitespace", " {\n\t\"exp\" : 1800003600 ,\r\"sub\":\"x\" } ");
    expect_accepted("empty models", "{\"exp\":1800003600,\"models\":[]}");

    token = make_token("{\"typ\":\"JWT\",\"alg\":\"HS256\",\"kid\":\"k1\"}",
                       "{\"sub\":\"a\\\"b\\u00e9\\ud83d\\ude00\\/\\n\",\"exp\":1800003600}",
                       SECRET);
    is_int(module_verify(token, strlen(token), SECRET, &mclaims, &log), NGX_OK,
           "module accepts escapes");
    ok(mclaims.sub.len == 11
       && memcmp(mclaims.sub.data, "a\"b\xc3\xa9\xf0\x9f\x98\x80/\n", 11) == 0,
       "module decodes escapes to UTF-8");
    is_int(cg_jwt_verify((const unsigned char *) SECRET, strlen(SECRET), token,
                         strlen(token), NOW, LEEWAY, &wclaims, err, sizeof(err)), 0,
           "worker accepts escapes");
    is_str(wclaims.sub, "a\"b\xc3\xa9\xf0\x9f\x98\x80/\n", "worker decodes escapes to UTF-8");
    cg_jwt_claims_free(&wclaims);
    test_pool_reset(&pool);
    free(token);

    /* NOTE: yajl turns a lone surrogate into '?', so only the module rejects it. */
    token = make_token(HEADER_HS256, "{\"sub\":\"\\ud800x\",\"exp\":1800003600}", SECRET);
    is_int(module_verify(token, strlen(token), SECRET, &mclaims, &log), NGX_DECLINED,
           "module rejects a lone surrogate");
    test_pool_reset(&pool);

    t.data = (u_char *) token;
    t.len = strlen(token);
    is_int(ngx_http_chatgate_jwt_verify(&pool, &t, &secret, NOW, LEEWAY, &mclaims, &log),
           NGX_ERROR, "module empty secret is an error");
    ok(strstr(log.last, "secret is empty") != NULL, "module empty secret logged");
    test_pool_reset(&pool);
    free(token);
}

int
main(void)
{
    test_signed_round_trip();
    test_forged();
    test_accepted();

    return done();
}
