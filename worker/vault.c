#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "secret.h"
#include "vault.h"

#define CG_VAULT_BUCKETS       256
#define CG_VAULT_PROVIDER_MAX  64
#define CG_VAULT_OVERHEAD      (1 + CG_VAULT_NONCE_SIZE + CG_VAULT_TAG_SIZE)
#define CG_VAULT_AAD_MAX       (1 + CG_UUID_LEN + 1 + CG_VAULT_PROVIDER_MAX + 1 + 4)

#define CG_VAULT_KMS_HINT                                                     \
    "set ADMIN_KMS_KEY to 32 random bytes as 64 hex characters, "            \
    "generated with: openssl rand -hex 32"

struct cg_vault_kms_key_s {
    unsigned char  bytes[CG_VAULT_KMS_KEY_SIZE];
};

struct cg_vault_s {
    cg_vault_entry_t  *buckets[CG_VAULT_BUCKETS];
    size_t             count;
};

static const char  cg_base64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char  cg_base64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


/* base64 */

size_t
cg_base64_encoded_len(size_t len, cg_base64_variant_t variant)
{
    if (variant == CG_BASE64_STD) {
        return (len + 2) / 3 * 4;
    }

    return len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
}

void
cg_base64_encode(char *dst, const unsigned char *src, size_t len,
    cg_base64_variant_t variant)
{
    const char  *alphabet;
    uint32_t     group;
    size_t       i, rest;

    alphabet = variant == CG_BASE64_URL_NOPAD ? cg_base64_url : cg_base64_std;

    for (i = 0; i + 3 <= len; i += 3) {
        group = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8 | src[i + 2];
        *dst++ = alphabet[group >> 18 & 0x3f];
        *dst++ = alphabet[group >> 12 & 0x3f];
        *dst++ = alphabet[group >> 6 & 0x3f];
        *dst++ = alphabet[group & 0x3f];
    }

    rest = len - i;

    if (rest > 0) {
        group = (uint32_t) src[i] << 16;
        if (rest == 2) {
            group |= (uint32_t) src[i + 1] << 8;
        }

        *dst++ = alphabet[group >> 18 & 0x3f];
        *dst++ = alphabet[group >> 12 & 0x3f];

        if (rest == 2) {
            *dst++ = alphabet[group >> 6 & 0x3f];
        }

        if (variant == CG_BASE64_STD) {
            *dst++ = '=';
            if (rest == 1) {
                *dst++ = '=';
            }
        }
    }

    *dst = '\0';
}

static int
cg_base64_value(unsigned char c, cg_base64_variant_t variant)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (variant == CG_BASE64_URL_NOPAD) {
        if (c == '-') {
            return 62;
        }
        return c == '_' ? 63 : -1;
    }

    if (c == '+') {
        return 62;
    }

    return c == '/' ? 63 : -1;
}

long
cg_base64_decode(unsigned char *dst, const char *src, size_t len,
    cg_base64_variant_t variant)
{
    uint32_t  group;
    size_t    i, n;
    int       v;

    if (variant == CG_BASE64_STD) {
        if (len % 4 != 0) {
            return -1;
        }

        /* At most two '=', and only as the last characters. */
        if (len > 0 && src[len - 1] == '=') {
            len--;
            if (src[len - 1] == '=') {
                len--;
            }
        }
    }

    if (len % 4 == 1 || len > (size_t) LONG_MAX) {
        return -1;
    }

    group = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        v = cg_base64_value((unsigned char) src[i], variant);
        if (v < 0) {
            return -1;
        }

        group = group << 6 | (uint32_t) v;

        if (i % 4 == 3) {
            dst[n++] = (unsigned char) (group >> 16);
            dst[n++] = (unsigned char) (group >> 8);
            dst[n++] = (unsigned char) group;
            group = 0;
        }
    }

    /* A canonical encoding leaves the unused low bits of the last character zero. */
    switch (len % 4) {
    case 2:
        if (group & 0x0f) {
            return -1;
        }
        dst[n++] = (unsigned char) (group >> 4);
        break;

    case 3:
        if (group & 0x03) {
            return -1;
        }
        dst[n++] = (unsigned char) (group >> 10);
        dst[n++] = (unsigned char) (group >> 2);
        break;
    }

    return (long) n;
}


/* UUID */

int
cg_uuid_v4(char out[CG_UUID_LEN + 1])
{
    unsigned char  b[16];

    if (RAND_bytes(b, sizeof(b)) != 1) {
        return -1;
    }

    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;

    snprintf(out, CG_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
             b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);

    return 0;
}

int
cg_uuid_valid(const char *s)
{
    size_t  i;

    if (s == NULL) {
        return 0;
    }

    for (i = 0; i < CG_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return 0;
            }
            continue;
        }

        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }

    return s[CG_UUID_LEN] == '\0';
}


/* ADMIN_KMS_KEY */

static int
cg_vault_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}

static int
cg_vault_hex_decode(unsigned char *dst, const char *src, size_t len)
{
    size_t  i;
    int     hi, lo;

    for (i = 0; i < len / 2; i++) {
        hi = cg_vault_hex_value(src[2 * i]);
        lo = cg_vault_hex_value(src[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        dst[i] = (unsigned char) (hi << 4 | lo);
    }

    return 0;
}

/* Decodes the 44- or 43-character base64 or base64url form into 32 bytes. */
static int
cg_vault_kms_base64_decode(unsigned char *dst, const char *text, size_t len)
{
    unsigned char        buf[48];
    cg_base64_variant_t  variant;
    long                 n;

    if (len == 44) {
        if (text[43] != '=') {
            return -1;
        }
        len = 43;
    }

    variant = strpbrk(text, "-_") != NULL ? CG_BASE64_URL_NOPAD
                                          : CG_BASE64_STD_NOPAD;

    n = cg_base64_decode(buf, text, len, variant);
    if (n == CG_VAULT_KMS_KEY_SIZE) {
        memcpy(dst, buf, CG_VAULT_KMS_KEY_SIZE);
    }

    OPENSSL_cleanse(buf, sizeof(buf));

    return n == CG_VAULT_KMS_KEY_SIZE ? 0 : -1;
}

int
cg_vault_kms_key_parse(const char *text, cg_vault_kms_key_t **key, char *err,
    size_t errlen)
{
    cg_vault_kms_key_t  *k;
    size_t               len;
    int                  rc;

    *key = NULL;

    if (text == NULL || text[0] == '\0') {
        snprintf(err, errlen, "ADMIN_KMS_KEY is not set: " CG_VAULT_KMS_HINT);
        return -1;
    }

    len = strlen(text);

    k = cg_secret_alloc(sizeof(cg_vault_kms_key_t));
    if (k == NULL) {
        snprintf(err, errlen, "ADMIN_KMS_KEY: out of memory");
        return -1;
    }

    if (len == 2 * CG_VAULT_KMS_KEY_SIZE) {
        rc = cg_vault_hex_decode(k->bytes, text, len);

    } else if (len == 43 || len == 44) {
        rc = cg_vault_kms_base64_decode(k->bytes, text, len);

    } else {
        rc = -1;
    }

    if (rc != 0) {
        cg_secret_free(k, sizeof(cg_vault_kms_key_t));
        snprintf(err, errlen, "invalid ADMIN_KMS_KEY (%zu characters): expected "
                 "32 bytes as 64 hex characters, or as 44 base64 or base64url "
                 "characters; " CG_VAULT_KMS_HINT, len);
        return -1;
    }

    *key = k;

    return 0;
}

void
cg_vault_kms_key_free(cg_vault_kms_key_t *key)
{
    cg_secret_free(key, sizeof(cg_vault_kms_key_t));
}


/* AES-256-GCM */

/* Builds the associated data; returns its length, or 0 if a field is invalid. */
static size_t
cg_vault_aad(unsigned char *aad, const char *id, const char *provider,
    uint32_t version)
{
    size_t  provider_len, n;

    if (!cg_uuid_valid(id) || provider == NULL) {
        return 0;
    }

    provider_len = strlen(provider);
    if (provider_len == 0 || provider_len > CG_VAULT_PROVIDER_MAX) {
        return 0;
    }

    n = 0;
    aad[n++] = CG_VAULT_BLOB_VERSION;
    memcpy(aad + n, id, CG_UUID_LEN);
    n += CG_UUID_LEN;
    aad[n++] = '\0';
    memcpy(aad + n, provider, provider_len);
    n += provider_len;
    aad[n++] = '\0';
    aad[n++] = (unsigned char) (version >> 24);
    aad[n++] = (unsigned char) (version >> 16);
    aad[n++] = (unsigned char) (version >> 8);
    aad[n++] = (unsigned char) version;

    return n;
}

/*
 * Seals in (in_len bytes) into out, which has room for in_len + CG_VAULT_OVERHEAD
 * bytes laid out as version | nonce | ciphertext | tag. Returns 0 or -1.
 */
static int
cg_vault_seal(const cg_vault_kms_key_t *kms, const unsigned char *aad,
    size_t aad_len, const unsigned char *in, size_t in_len, unsigned char *out)
{
    EVP_CIPHER_CTX  *ctx;
    unsigned char   *nonce, *ct;
    int              n, rc;

    nonce = out + 1;
    ct = nonce + CG_VAULT_NONCE_SIZE;
    out[0] = CG_VAULT_BLOB_VERSION;
    rc = -1;

    if (RAND_bytes(nonce, CG_VAULT_NONCE_SIZE) != 1) {
        return -1;
    }

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, kms->bytes, nonce) != 1
        || EVP_EncryptUpdate(ctx, NULL, &n, aad, (int) aad_len) != 1
        || EVP_EncryptUpdate(ctx, ct, &n, in, (int) in_len) != 1
        || EVP_EncryptFinal_ex(ctx, ct + n, &n) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CG_VAULT_TAG_SIZE,
                               ct + in_len) != 1)
    {
        goto done;
    }

    rc = 0;

done:

    EVP_CIPHER_CTX_free(ctx);

    return rc;
}

/*
 * Opens a raw blob of raw_len bytes into out (raw_len - CG_VAULT_OVERHEAD
 * bytes). Returns 0, or -1 if the tag does not match; out is wiped on failure.
 */
static int
cg_vault_open(const cg_vault_kms_key_t *kms, const unsigned char *aad,
    size_t aad_len, unsigned char *raw, size_t raw_len, unsigned char *out)
{
    EVP_CIPHER_CTX  *ctx;
    unsigned char   *nonce, *ct, *tag;
    size_t           ct_len;
    int              n, rc;

    nonce = raw + 1;
    ct = nonce + CG_VAULT_NONCE_SIZE;
    ct_len = raw_len - CG_VAULT_OVERHEAD;
    tag = ct + ct_len;
    rc = -1;

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, kms->bytes, nonce) != 1
        || EVP_DecryptUpdate(ctx, NULL, &n, aad, (int) aad_len) != 1
        || EVP_DecryptUpdate(ctx, out, &n, ct, (int) ct_len) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CG_VAULT_TAG_SIZE,
                               tag) != 1
        || EVP_DecryptFinal_ex(ctx, out + n, &n) != 1)
    {
        OPENSSL_cleanse(out, ct_len);
        goto done;
    }

    rc = 0;

done:

    EVP_CIPHER_CTX_free(ctx);

    return rc;
}

char *
cg_vault_encrypt(const cg_vault_kms_key_t *kms, const char *id,
    const char *provider, uint32_t version, const char *secret,
    size_t secret_len, char *err, size_t errlen)
{
    unsigned char  aad[CG_VAULT_AAD_MAX];
    unsigned char *raw;
    size_t         aad_len, raw_len;
    char          *blob;

    aad_len = cg_vault_aad(aad, id, provider, version);
    if (aad_len == 0) {
        snprintf(err, errlen, "encrypt key: invalid key id or provider name "
                 "(id must be a canonical UUID, provider 1 to %d characters)",
                 CG_VAULT_PROVIDER_MAX);
        return NULL;
    }

    if (secret_len == 0 || secret_len > CG_VAULT_SECRET_MAX) {
        snprintf(err, errlen, "encrypt key \"%s\": invalid length %zu bytes, "
                 "expected 1 to %d", id, secret_len, CG_VAULT_SECRET_MAX);
        return NULL;
    }

    raw_len = secret_len + CG_VAULT_OVERHEAD;
    raw = malloc(raw_len);
    blob = malloc(cg_base64_encoded_len(raw_len, CG_BASE64_STD) + 1);

    if (raw == NULL || blob == NULL) {
        snprintf(err, errlen, "encrypt key \"%s\": out of memory", id);
        goto fail;
    }

    if (cg_vault_seal(kms, aad, aad_len, (const unsigned char *) secret,
                      secret_len, raw) != 0)
    {
        snprintf(err, errlen, "encrypt key \"%s\": AES-256-GCM failed", id);
        goto fail;
    }

    cg_base64_encode(blob, raw, raw_len, CG_BASE64_STD);
    free(raw);

    return blob;

fail:

    free(raw);
    free(blob);

    return NULL;
}

int
cg_vault_decrypt(const cg_vault_kms_key_t *kms, const char *blob,
    const char *id, const char *provider, uint32_t version, char **secret,
    size_t *secret_len, char *err, size_t errlen)
{
    unsigned char  aad[CG_VAULT_AAD_MAX];
    unsigned char *raw;
    size_t         aad_len, blob_len, plain_len;
    long           raw_len;
    char          *plain;

    *secret = NULL;
    *secret_len = 0;
    raw = NULL;
    plain = NULL;
    plain_len = 0;

    aad_len = cg_vault_aad(aad, id, provider, version);
    if (aad_len == 0) {
        snprintf(err, errlen, "decrypt key: invalid key id or provider name");
        return -1;
    }

    blob_len = strlen(blob);
    raw = malloc(blob_len / 4 * 3 + 3);
    if (raw == NULL) {
        snprintf(err, errlen, "decrypt key \"%s\": out of memory", id);
        return -1;
    }

    raw_len = cg_base64_decode(raw, blob, blob_len, CG_BASE64_STD);

    if (raw_len < 0 || raw_len <= CG_VAULT_OVERHEAD
        || raw_len > CG_VAULT_SECRET_MAX + CG_VAULT_OVERHEAD
        || raw[0] != CG_VAULT_BLOB_VERSION)
    {
        snprintf(err, errlen, "decrypt key \"%s\" (provider \"%s\", version "
                 "%u) failed: the stored blob is not valid base64 of a "
                 "version %d vault blob", id, provider, version,
                 CG_VAULT_BLOB_VERSION);
        goto fail;
    }

    plain_len = (size_t) raw_len - CG_VAULT_OVERHEAD;
    plain = cg_secret_alloc(plain_len + 1);
    if (plain == NULL) {
        snprintf(err, errlen, "decrypt key \"%s\": out of memory", id);
        goto fail;
    }

    if (cg_vault_open(kms, aad, aad_len, raw, (size_t) raw_len,
                      (unsigned char *) plain) != 0)
    {
        snprintf(err, errlen, "decrypt key \"%s\" (provider \"%s\", version "
                 "%u) failed: authentication failed, so ADMIN_KMS_KEY is not "
                 "the key it was stored with, or the row was changed", id,
                 provider, version);
        goto fail;
    }

    free(raw);
    *secret = plain;
    *secret_len = plain_len;

    return 0;

fail:

    free(raw);
    cg_secret_free(plain, plain_len + 1);

    return -1;
}

int
cg_vault_rekey(const cg_vault_kms_key_t *old_kms,
    const cg_vault_kms_key_t *new_kms, const char *id, const char *provider,
    uint32_t version, const char *blob, char **new_blob,
    uint32_t *new_version, char *err, size_t errlen)
{
    char    *secret;
    size_t   secret_len;

    *new_blob = NULL;

    if (version == UINT32_MAX) {
        snprintf(err, errlen, "rekey key \"%s\": version %u cannot be "
                 "incremented", id, version);
        return -1;
    }

    if (cg_vault_decrypt(old_kms, blob, id, provider, version, &secret,
                         &secret_len, err, errlen) != 0)
    {
        return -1;
    }

    *new_blob = cg_vault_encrypt(new_kms, id, provider, version + 1, secret,
                                 secret_len, err, errlen);
    cg_secret_free(secret, secret_len + 1);

    if (*new_blob == NULL) {
        return -1;
    }

    *new_version = version + 1;

    return 0;
}


/* The table of decrypted keys */

void
cg_vault_fingerprint(const char *secret, size_t len,
    char out[CG_VAULT_FINGERPRINT_SIZE])
{
    size_t         n, i;
    unsigned char  c;

    n = len >= 16 ? 4 : len / 4;

    for (i = 0; i < n; i++) {
        c = (unsigned char) secret[len - n + i];
        out[i] = (c >= 0x21 && c < 0x7f) ? (char) c : '?';
    }

    out[n] = '\0';
}

static size_t
cg_vault_bucket(const char *id)
{
    uint32_t  hash;

    /* FNV-1a; ids are random UUIDs, so any mixing function spreads them. */
    hash = 2166136261u;

    while (*id) {
        hash ^= (unsigned char) *id++;
        hash *= 16777619u;
    }

    return hash % CG_VAULT_BUCKETS;
}

static void
cg_vault_entry_free(cg_vault_entry_t *entry)
{
    cg_secret_free(entry->secret, entry->secret_len + 1);
    free(entry->provider);
    free(entry->label);
    free(entry->base_url);
    free(entry);
}

cg_vault_t *
cg_vault_create(void)
{
    return calloc(1, sizeof(cg_vault_t));
}

void
cg_vault_destroy(cg_vault_t *vault)
{
    cg_vault_entry_t  *entry, *next;
    size_t             i;

    if (vault == NULL) {
        return;
    }

    for (i = 0; i < CG_VAULT_BUCKETS; i++) {
        for (entry = vault->buckets[i]; entry != NULL; entry = next) {
            next = entry->next;
            cg_vault_entry_free(entry);
        }
    }

    free(vault);
}

static char *
cg_vault_strdup(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

/* Returns the link that points to the entry for id, or NULL. */
static cg_vault_entry_t **
cg_vault_find(cg_vault_t *vault, const char *id)
{
    cg_vault_entry_t  **link;

    for (link = &vault->buckets[cg_vault_bucket(id)]; *link;
         link = &(*link)->next)
    {
        if (memcmp((*link)->id, id, CG_UUID_LEN) == 0) {
            return link;
        }
    }

    return NULL;
}

/* Unlinks the entry that link points to, wipes its key and frees it. */
static void
cg_vault_remove(cg_vault_t *vault, cg_vault_entry_t **link)
{
    cg_vault_entry_t  *entry = *link;

    *link = entry->next;
    if (!entry->revoked) {
        vault->count--;
    }
    cg_vault_entry_free(entry);
}


int
cg_vault_put(cg_vault_t *vault, const char *id, const char *provider,
    const char *label, const char *base_url, uint32_t version,
    const char *secret, size_t secret_len, char *err, size_t errlen)
{
    cg_vault_entry_t  *entry, **link;

    if (!cg_uuid_valid(id) || provider == NULL) {
        snprintf(err, errlen, "add key: invalid key id or missing provider");
        return -1;
    }

    if (secret_len == 0 || secret_len > CG_VAULT_SECRET_MAX) {
        snprintf(err, errlen, "add key \"%s\": invalid length %zu bytes, "
                 "expected 1 to %d", id, secret_len, CG_VAULT_SECRET_MAX);
        return -1;
    }

    link = cg_vault_find(vault, id);
    if (link != NULL && (*link)->revoked) {
        snprintf(err, errlen, "add key \"%s\": the key was revoked", id);
        return 1;
    }

    entry = calloc(1, sizeof(cg_vault_entry_t));
    if (entry == NULL) {
        goto nomem;
    }

    memcpy(entry->id, id, CG_UUID_LEN + 1);
    entry->version = version;
    entry->secret_len = secret_len;
    entry->provider = cg_vault_strdup(provider);
    entry->label = cg_vault_strdup(label != NULL ? label : "");
    entry->base_url = cg_vault_strdup(base_url);
    entry->secret = cg_secret_strndup(secret, secret_len);

    if (entry->provider == NULL || entry->label == NULL || entry->secret == NULL
        || (base_url != NULL && entry->base_url == NULL))
    {
        cg_vault_entry_free(entry);
        goto nomem;
    }

    cg_vault_fingerprint(secret, secret_len, entry->fingerprint);

    if (link != NULL) {
        cg_vault_remove(vault, link);
    }

    entry->next = vault->buckets[cg_vault_bucket(id)];
    vault->buckets[cg_vault_bucket(id)] = entry;
    vault->count++;

    return 0;

nomem:

    snprintf(err, errlen, "add key \"%s\": out of memory", id);

    return -1;
}

int
cg_vault_load(cg_vault_t *vault, const cg_vault_kms_key_t *kms,
    const char *id, const char *provider, const char *label,
    const char *base_url, uint32_t version, const char *blob, char *err,
    size_t errlen)
{
    char    *secret;
    size_t   secret_len;
    int      rc;

    if (cg_vault_decrypt(kms, blob, id, provider, version, &secret,
                         &secret_len, err, errlen) != 0)
    {
        return -1;
    }

    rc = cg_vault_put(vault, id, provider, label, base_url, version, secret,
                      secret_len, err, errlen);
    cg_secret_free(secret, secret_len + 1);

    return rc;
}

const cg_vault_entry_t *
cg_vault_lookup(const cg_vault_t *vault, const char *id)
{
    const cg_vault_entry_t  *entry;

    if (!cg_uuid_valid(id)) {
        return NULL;
    }

    for (entry = vault->buckets[cg_vault_bucket(id)]; entry; entry = entry->next) {
        if (memcmp(entry->id, id, CG_UUID_LEN) == 0) {
            return entry->revoked ? NULL : entry;
        }
    }

    return NULL;
}

int
cg_vault_revoke(cg_vault_t *vault, const char *id)
{
    cg_vault_entry_t  **link, *tombstone;

    if (!cg_uuid_valid(id)) {
        return -1;
    }

    link = cg_vault_find(vault, id);
    if (link != NULL && (*link)->revoked) {
        return -1;
    }

    /*
     * NOTE: without memory for the tombstone, the key is still wiped, but
     * a rotation that finishes later can put it back.
     */
    tombstone = calloc(1, sizeof(cg_vault_entry_t));

    if (link != NULL) {
        cg_vault_remove(vault, link);
    }

    if (tombstone != NULL) {
        memcpy(tombstone->id, id, CG_UUID_LEN + 1);
        tombstone->revoked = 1;
        tombstone->next = vault->buckets[cg_vault_bucket(id)];
        vault->buckets[cg_vault_bucket(id)] = tombstone;
    }

    return link != NULL ? 0 : -1;
}


size_t
cg_vault_count(const cg_vault_t *vault)
{
    return vault->count;
}
