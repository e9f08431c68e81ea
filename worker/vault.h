#ifndef CG_VAULT_H
#define CG_VAULT_H

#include <stddef.h>
#include <stdint.h>

/*
 * The key vault: provider keys encrypted at rest under ADMIN_KMS_KEY, and the
 * table of decrypted keys the worker keeps in secret memory.
 *
 * A stored key is a text blob, the standard base64 (with padding) of
 *
 *   version (1 byte, 0x01) | nonce (12 bytes) | ciphertext | tag (16 bytes)
 *
 * sealed with AES-256-GCM. The associated data binds the blob to its row:
 *
 *   version byte | key id (36 chars) | 0x00 | provider | 0x00 | key version (4 bytes, big-endian)
 *
 * so a blob copied to another id, provider or key version fails to decrypt.
 *
 * None of these functions is thread-safe; the worker calls them from its
 * event loop only.
 */

#define CG_VAULT_KMS_KEY_SIZE     32
#define CG_VAULT_BLOB_VERSION     0x01
#define CG_VAULT_NONCE_SIZE       12
#define CG_VAULT_TAG_SIZE         16
#define CG_VAULT_SECRET_MAX       4096
#define CG_VAULT_FINGERPRINT_SIZE 5      /* at most 4 characters and a NUL */
#define CG_UUID_LEN               36

/* ADMIN_KMS_KEY, decoded, in secret memory. */
typedef struct cg_vault_kms_key_s  cg_vault_kms_key_t;

/* A decrypted provider key, owned by the vault table. */
typedef struct cg_vault_entry_s  cg_vault_entry_t;

struct cg_vault_entry_s {
    char               id[CG_UUID_LEN + 1];
    char              *provider;
    char              *label;
    char              *base_url;       /* NULL: the provider's default */
    uint32_t           version;
    char               fingerprint[CG_VAULT_FINGERPRINT_SIZE];
    char              *secret;         /* secret memory, NUL-terminated */
    size_t             secret_len;
    unsigned           revoked:1;      /* a tombstone: id only, no key */
    cg_vault_entry_t  *next;
};

typedef struct cg_vault_s  cg_vault_t;

/*
 * Parses ADMIN_KMS_KEY: 32 bytes as 64 hex characters, or as base64 or
 * base64url (44 characters with padding, 43 without). On success stores a new
 * key in *key (free with cg_vault_kms_key_free) and returns 0. On failure
 * returns -1 and writes a message to err that never contains the value.
 */
int cg_vault_kms_key_parse(const char *text, cg_vault_kms_key_t **key,
    char *err, size_t errlen);
void cg_vault_kms_key_free(cg_vault_kms_key_t *key);

/*
 * Encrypts a provider key for the row (id, provider, version). Returns the
 * malloc'ed, NUL-terminated base64 blob, or NULL with err set.
 */
char *cg_vault_encrypt(const cg_vault_kms_key_t *kms, const char *id,
    const char *provider, uint32_t version, const char *secret,
    size_t secret_len, char *err, size_t errlen);

/*
 * Decrypts a blob of the row (id, provider, version). On success stores the
 * plaintext in new secret memory (*secret, NUL-terminated, free with
 * cg_secret_free(*secret, *secret_len + 1)) and returns 0. Any change to the
 * blob, id, provider or version returns -1 with err set, and nothing of the
 * plaintext stays in memory.
 */
int cg_vault_decrypt(const cg_vault_kms_key_t *kms, const char *blob,
    const char *id, const char *provider, uint32_t version, char **secret,
    size_t *secret_len, char *err, size_t errlen);

/*
 * Re-encrypts one row under a new KMS key: decrypts blob with old_kms at
 * version, encrypts with new_kms at version + 1. On success stores the new
 * malloc'ed blob in *new_blob, the new version in *new_version, and returns 0.
 */
int cg_vault_rekey(const cg_vault_kms_key_t *old_kms,
    const cg_vault_kms_key_t *new_kms, const char *id, const char *provider,
    uint32_t version, const char *blob, char **new_blob,
    uint32_t *new_version, char *err, size_t errlen);

/*
 * Writes the fingerprint shown for a key: its last 4 characters, fewer for
 * short keys (a quarter of the length, rounded down) so a fingerprint never
 * gives away most of a key. Non-printable bytes show as '?'.
 */
void cg_vault_fingerprint(const char *secret, size_t len,
    char out[CG_VAULT_FINGERPRINT_SIZE]);

/* Creates an empty table, or returns NULL when out of memory. */
cg_vault_t *cg_vault_create(void);

/* Wipes every key and frees the table. NULL is a no-op. */
void cg_vault_destroy(cg_vault_t *vault);

/*
 * Adds a key given in plaintext, copying every string; secret goes into
 * secret memory. An entry with the same id is replaced and wiped. Returns 0,
 * or -1 with err set (invalid id, empty or oversized secret, out of memory).
 * Returns 1 with err set, and adds nothing, when the id was revoked in this
 * table, because a rotation whose result arrives after a revoke of the same
 * key must not bring the key back.
 */
int cg_vault_put(cg_vault_t *vault, const char *id, const char *provider,
    const char *label, const char *base_url, uint32_t version,
    const char *secret, size_t secret_len, char *err, size_t errlen);

/* Decrypts a stored row and adds it with cg_vault_put(). */
int cg_vault_load(cg_vault_t *vault, const cg_vault_kms_key_t *kms,
    const char *id, const char *provider, const char *label,
    const char *base_url, uint32_t version, const char *blob, char *err,
    size_t errlen);

/*
 * Returns the entry for id, or NULL when id is unknown or revoked. The entry
 * stays valid until the id is revoked or replaced, or the table is destroyed.
 */
const cg_vault_entry_t *cg_vault_lookup(const cg_vault_t *vault,
    const char *id);

/*
 * Wipes the key of id and keeps the id as revoked, so that cg_vault_put()
 * rejects it until the table is destroyed. Returns 0, or -1 when the table
 * had no usable key for id.
 */
int cg_vault_revoke(cg_vault_t *vault, const char *id);

/* Returns the number of keys in the table. */
size_t cg_vault_count(const cg_vault_t *vault);

/* Writes a random (version 4) UUID in canonical form. Returns 0 or -1. */
int cg_uuid_v4(char out[CG_UUID_LEN + 1]);

/* Returns 1 if s is a UUID in canonical form (lowercase 8-4-4-4-12 hex). */
int cg_uuid_valid(const char *s);

/*
 * Base64 in the alphabets the vault, the password hashes and JWTs use.
 * Decoding is strict: only the variant's alphabet, padding exactly as the
 * variant requires, and no stray bits in the last character.
 */
typedef enum {
    CG_BASE64_STD = 0,        /* RFC 4648 section 4, padded */
    CG_BASE64_STD_NOPAD,      /* RFC 4648 section 4, unpadded (PHC strings) */
    CG_BASE64_URL_NOPAD       /* RFC 4648 section 5, unpadded (JWT) */
} cg_base64_variant_t;

/* Returns the encoded length of len bytes, without the NUL. */
size_t cg_base64_encoded_len(size_t len, cg_base64_variant_t variant);

/* Encodes len bytes into dst, which has room for encoded_len + 1; NUL-terminates. */
void cg_base64_encode(char *dst, const unsigned char *src, size_t len,
    cg_base64_variant_t variant);

/*
 * Decodes len characters into dst, which has room for at least len * 3 / 4 bytes.
 * Returns the decoded length, or -1 if the text is not strictly valid.
 */
long cg_base64_decode(unsigned char *dst, const char *src, size_t len,
    cg_base64_variant_t variant);

#endif
