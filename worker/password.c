#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "password.h"
#include "vault.h"

/*
 * Bounds on the parameters a stored hash may carry. scrypt also fails when
 * 128 * r * N exceeds CG_PASSWORD_MAXMEM, so verify returns -1 for such a hash.
 */
#define CG_PASSWORD_LN_MAX      20
#define CG_PASSWORD_R_MAX       32
#define CG_PASSWORD_P_MAX       16
#define CG_PASSWORD_SALT_MAX    64
#define CG_PASSWORD_HASH_MAX    64

/* 128 * r * N is 32 MiB at the defaults; scrypt also needs 128 * r * p more. */
#define CG_PASSWORD_MAXMEM      (64u * 1024 * 1024)

typedef struct {
    unsigned       ln;
    unsigned       r;
    unsigned       p;
    unsigned char  salt[CG_PASSWORD_SALT_MAX];
    size_t         salt_len;
    unsigned char  hash[CG_PASSWORD_HASH_MAX];
    size_t         hash_len;
} cg_password_phc_t;

static int
cg_password_scrypt(const char *password, size_t len, const unsigned char *salt,
    size_t salt_len, unsigned ln, unsigned r, unsigned p, unsigned char *out,
    size_t out_len)
{
    if (EVP_PBE_scrypt(password, len, salt, salt_len, (uint64_t) 1 << ln, r, p,
                       CG_PASSWORD_MAXMEM, out, out_len) != 1)
    {
        return -1;
    }

    return 0;
}

int
cg_password_hash(const char *password, size_t len, char *out, size_t outlen)
{
    unsigned char  salt[CG_PASSWORD_SALT_SIZE];
    unsigned char  hash[CG_PASSWORD_HASH_SIZE];
    char           salt_text[32], hash_text[48];
    int            n;

    if (len == 0 || len > CG_PASSWORD_MAX || outlen < CG_PASSWORD_ENCODED_MAX) {
        return -1;
    }

    if (RAND_bytes(salt, sizeof(salt)) != 1
        || cg_password_scrypt(password, len, salt, sizeof(salt), CG_PASSWORD_LN,
                              CG_PASSWORD_R, CG_PASSWORD_P, hash,
                              sizeof(hash)) != 0)
    {
        return -1;
    }

    cg_base64_encode(salt_text, salt, sizeof(salt), CG_BASE64_STD_NOPAD);
    cg_base64_encode(hash_text, hash, sizeof(hash), CG_BASE64_STD_NOPAD);
    OPENSSL_cleanse(hash, sizeof(hash));

    n = snprintf(out, outlen, "$scrypt$ln=%d,r=%d,p=%d$%s$%s", CG_PASSWORD_LN,
                 CG_PASSWORD_R, CG_PASSWORD_P, salt_text, hash_text);

    return n > 0 && (size_t) n < outlen ? 0 : -1;
}

/*
 * Reads "<name>=<decimal>" followed by the separator sep from *pos. The
 * number has no sign and no leading zero and lies in 1..max.
 */
static int
cg_password_parse_param(const char **pos, const char *name, char sep,
    unsigned max, unsigned *value)
{
    const char  *p;
    size_t       name_len;
    unsigned     v;

    p = *pos;
    name_len = strlen(name);

    if (strncmp(p, name, name_len) != 0 || p[name_len] != '=') {
        return -1;
    }

    p += name_len + 1;

    if (*p < '1' || *p > '9') {
        return -1;
    }

    for (v = 0; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (unsigned) (*p - '0');
        if (v > max) {
            return -1;
        }
    }

    if (*p != sep) {
        return -1;
    }

    *pos = p + 1;
    *value = v;

    return 0;
}

/* Decodes one base64 field that ends at '$' or at the end of the string. */
static int
cg_password_parse_bytes(const char **pos, char end, unsigned char *dst,
    size_t max, size_t *len)
{
    unsigned char  buf[CG_PASSWORD_HASH_MAX + 3];
    const char    *stop;
    size_t         text_len;
    long           n;

    stop = end == '\0' ? *pos + strlen(*pos) : strchr(*pos, end);
    if (stop == NULL) {
        return -1;
    }

    text_len = (size_t) (stop - *pos);
    if (text_len > (max * 4 + 2) / 3) {
        return -1;
    }

    n = cg_base64_decode(buf, *pos, text_len, CG_BASE64_STD_NOPAD);
    if (n < 16 || (size_t) n > max) {
        return -1;
    }

    memcpy(dst, buf, (size_t) n);
    *len = (size_t) n;
    *pos = end == '\0' ? stop : stop + 1;

    return 0;
}

static int
cg_password_parse(const char *encoded, cg_password_phc_t *phc)
{
    const char  *p;

    p = encoded;

    if (strncmp(p, "$scrypt$", 8) != 0) {
        return -1;
    }

    p += 8;

    if (cg_password_parse_param(&p, "ln", ',', CG_PASSWORD_LN_MAX, &phc->ln) != 0
        || cg_password_parse_param(&p, "r", ',', CG_PASSWORD_R_MAX, &phc->r) != 0
        || cg_password_parse_param(&p, "p", '$', CG_PASSWORD_P_MAX, &phc->p) != 0
        || cg_password_parse_bytes(&p, '$', phc->salt, CG_PASSWORD_SALT_MAX,
                                   &phc->salt_len) != 0
        || cg_password_parse_bytes(&p, '\0', phc->hash, CG_PASSWORD_HASH_MAX,
                                   &phc->hash_len) != 0)
    {
        return -1;
    }

    return 0;
}

int
cg_password_verify(const char *password, size_t len, const char *encoded)
{
    cg_password_phc_t  phc;
    unsigned char      hash[CG_PASSWORD_HASH_MAX];
    int                rc;

    if (encoded == NULL || cg_password_parse(encoded, &phc) != 0) {
        return -1;
    }

    if (len > CG_PASSWORD_MAX) {
        return cg_password_verify_dummy(password, 0);
    }

    if (cg_password_scrypt(password, len, phc.salt, phc.salt_len, phc.ln,
                           phc.r, phc.p, hash, phc.hash_len) != 0)
    {
        return -1;
    }

    rc = CRYPTO_memcmp(hash, phc.hash, phc.hash_len) == 0;
    OPENSSL_cleanse(hash, sizeof(hash));

    return rc;
}

int
cg_password_verify_dummy(const char *password, size_t len)
{
    static const unsigned char  salt[CG_PASSWORD_SALT_SIZE];
    static const unsigned char  expected[CG_PASSWORD_HASH_SIZE];
    unsigned char               hash[CG_PASSWORD_HASH_SIZE];
    volatile int                same;

    if (len > CG_PASSWORD_MAX) {
        len = 0;
    }

    (void) cg_password_scrypt(password, len, salt, sizeof(salt), CG_PASSWORD_LN,
                              CG_PASSWORD_R, CG_PASSWORD_P, hash, sizeof(hash));

    /* Compare as a real verify does, so the two paths do the same work. */
    same = CRYPTO_memcmp(hash, expected, sizeof(hash)) == 0;
    (void) same;
    OPENSSL_cleanse(hash, sizeof(hash));

    return 0;
}
