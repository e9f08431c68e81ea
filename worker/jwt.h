#ifndef CG_JWT_H
#define CG_JWT_H

#include <stddef.h>
#include <stdint.h>

/*
 * HS256 JSON Web Tokens for admin sessions and client tokens. The worker
 * issues them; the nginx module (ngx_http_chatgate_jwt.c) verifies them on
 * every request with the same rules as cg_jwt_verify():
 *
 *   - at most CG_JWT_MAX_LEN bytes, exactly three base64url segments without
 *     padding, each canonical (no stray bits);
 *   - the header is a JSON object whose alg is exactly "HS256", checked
 *     before any HMAC; typ, if present, is "JWT"; crit is rejected;
 *   - the signature is HMAC-SHA256 over "header.payload", compared in
 *     constant time;
 *   - the payload is a flat JSON object (arrays of strings allowed, no
 *     nested objects, no duplicate members, at most 32 members);
 *   - exp is required and exp + leeway > now; nbf, if present,
 *     nbf - leeway <= now; exp, nbf and iat are non-negative NumericDates
 *     without exponent.
 */

#define CG_JWT_MAX_LEN      8192
#define CG_JWT_SECRET_MIN   32       /* bytes of JWT_SECRET required to sign */
#define CG_JWT_ID_LEN       22       /* 128 random bits in base64url */
#define CG_JWT_MAX_MEMBERS  32
#define CG_JWT_MAX_MODELS   64

/*
 * Claims of a token. Strings are NUL-terminated; NULL means absent. iat and
 * nbf are 0 when absent. After cg_jwt_verify() the struct owns its strings:
 * free them with cg_jwt_claims_free(). cg_jwt_sign() only reads it.
 */
typedef struct {
    char     *sub;
    char     *email;
    char     *role;
    char     *jti;
    char     *key;         /* stored provider key id, client tokens only */
    char    **models;      /* allowed models, client tokens only */
    size_t    nmodels;
    int64_t   iat;
    int64_t   exp;
    int64_t   nbf;
} cg_jwt_claims_t;

/* Writes a random 128-bit token id in base64url. Returns 0 or -1. */
int cg_jwt_new_id(char out[CG_JWT_ID_LEN + 1]);

/*
 * Signs claims into a malloc'ed, NUL-terminated token. claims->jti is
 * ignored: a fresh id is generated and, if jti_out is not NULL, copied
 * there. sub, role and exp are required; nbf is written only when not 0.
 * Returns NULL with err set if the secret is shorter than CG_JWT_SECRET_MIN,
 * a claim is missing or not valid UTF-8, or the token would exceed
 * CG_JWT_MAX_LEN.
 */
char *cg_jwt_sign(const unsigned char *secret, size_t secret_len,
    const cg_jwt_claims_t *claims, char jti_out[CG_JWT_ID_LEN + 1],
    char *err, size_t errlen);

/*
 * Verifies token (len bytes) with the rules above and fills claims. Returns 0,
 * or -1 with the reason in err (never the token) and claims left empty.
 */
int cg_jwt_verify(const unsigned char *secret, size_t secret_len,
    const char *token, size_t len, int64_t now, int64_t leeway,
    cg_jwt_claims_t *claims, char *err, size_t errlen);

/* Frees the strings of claims filled by cg_jwt_verify() and zeroes it. */
void cg_jwt_claims_free(cg_jwt_claims_t *claims);

#endif
