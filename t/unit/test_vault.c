/* Unit tests for worker/vault.c and worker/secret.c. */

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "secret.h"
#include "tap.h"
#include "vault.h"

#define ID_A   "0f8fad5b-d9cb-469f-a165-70867728950e"
#define ID_B   "7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define ID_C   "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
#define HEX_1  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define HEX_2  "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define SECRET "sk-test-0123456789abcdefWXYZ"

static void
test_base64(void)
{
    static const struct {
        const char  *plain;
        const char  *std;
        const char  *nopad;
    } vectors[] = {
        { "", "", "" },
        { "f", "Zg==", "Zg" },
        { "fo", "Zm8=", "Zm8" },
        { "foo", "Zm9v", "Zm9v" },
        { "foob", "Zm9vYg==", "Zm9vYg" },
        { "fooba", "Zm9vYmE=", "Zm9vYmE" },
        { "foobar", "Zm9vYmFy", "Zm9vYmFy" },
    };
    static const char  *invalid_std[] = {
        "Zg=", "Zg", "Z===", "Zh==", "Zm8", "Zm9=", "Zm 9v", "Zm9v=", "=Zm9",
        "Zm9v\t", "Zg=A",
    };
    static const char  *invalid_url[] = {
        "Zg==", "Z", "Zh", "Zm9", "+/8", "Zm9v=", "ab\xc3\xa9",
    };
    unsigned char  buf[64];
    char           text[64];
    size_t         i;
    long           n;

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        size_t  len = strlen(vectors[i].plain);

        cg_base64_encode(text, (const unsigned char *) vectors[i].plain, len,
                         CG_BASE64_STD);
        is_str(text, vectors[i].std, "base64 encode \"%s\"", vectors[i].plain);

        cg_base64_encode(text, (const unsigned char *) vectors[i].plain, len,
                         CG_BASE64_URL_NOPAD);
        is_str(text, vectors[i].nopad, "base64url encode \"%s\"",
               vectors[i].plain);

        n = cg_base64_decode(buf, vectors[i].std, strlen(vectors[i].std),
                             CG_BASE64_STD);
        ok(n == (long) len && memcmp(buf, vectors[i].plain, len) == 0,
           "base64 decode \"%s\"", vectors[i].std);
    }

    cg_base64_encode(text, (const unsigned char *) "\xfb\xff", 2,
                     CG_BASE64_URL_NOPAD);
    is_str(text, "-_8", "base64url uses - and _");

    for (i = 0; i < sizeof(invalid_std) / sizeof(invalid_std[0]); i++) {
        n = cg_base64_decode(buf, invalid_std[i], strlen(invalid_std[i]),
                             CG_BASE64_STD);
        is_int(n, -1, "base64 rejects \"%s\"", invalid_std[i]);
    }

    for (i = 0; i < sizeof(invalid_url) / sizeof(invalid_url[0]); i++) {
        n = cg_base64_decode(buf, invalid_url[i], strlen(invalid_url[i]),
                             CG_BASE64_URL_NOPAD);
        is_int(n, -1, "base64url rejects \"%s\"", invalid_url[i]);
    }
}

static void
test_uuid(void)
{
    char  a[CG_UUID_LEN + 1], b[CG_UUID_LEN + 1];

    is_int(cg_uuid_v4(a), 0, "uuid v4 generated");
    is_int(cg_uuid_v4(b), 0, "uuid v4 generated again");
    ok(cg_uuid_valid(a), "uuid v4 is canonical");
    ok(a[14] == '4', "uuid v4 version nibble");
    ok(strchr("89ab", a[19]) != NULL, "uuid v4 variant bits");
    ok(strcmp(a, b) != 0, "uuid v4 values differ");

    ok(cg_uuid_valid(ID_A), "uuid valid lowercase");
    ok(!cg_uuid_valid("0F8FAD5B-D9CB-469F-A165-70867728950E"), "uuid uppercase rejected");
    ok(!cg_uuid_valid("0f8fad5bd9cb469fa16570867728950e"), "uuid without dashes rejected");
    ok(!cg_uuid_valid(ID_A "0"), "uuid too long rejected");
    ok(!cg_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950"), "uuid too short rejected");
    ok(!cg_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950g"), "uuid non-hex rejected");
    ok(!cg_uuid_valid("{0f8fad5b-d9cb-469f-a165-70867728950e}"), "uuid braces rejected");
    ok(!cg_uuid_valid(NULL), "uuid null rejected");
}

static void
test_kms_parse(void)
{
    static const char  *invalid[] = {
        "", "00", HEX_1 "0", "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9",          /* stray bits */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==",        /* 45 chars */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+x",         /* no padding */
        "correct horse battery staple",
    };
    cg_vault_kms_key_t  *hex, *b64, *b64url, *key;
    char                 err[512];
    char                *blob, *plain;
    size_t               i, plain_len;

    is_int(cg_vault_kms_key_parse(HEX_1, &hex, err, sizeof(err)), 0, "kms key hex");
    is_int(cg_vault_kms_key_parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                                  &b64, err, sizeof(err)), 0, "kms key base64");
    is_int(cg_vault_kms_key_parse("__79_Pv6-fj39vX08_Lx8O_u7ezr6uno5-bl5OPi4eA",
                                  &b64url, err, sizeof(err)), 0,
           "kms key base64url unpadded");

    /* The three spell the same bytes (b64url is 0xff..0xe0): cross-decrypt. */
    blob = cg_vault_encrypt(hex, ID_A, "openai", 1, SECRET, strlen(SECRET),
                            err, sizeof(err));
    is_int(cg_vault_decrypt(b64, blob, ID_A, "openai", 1, &plain, &plain_len,
                            err, sizeof(err)), 0, "kms hex and base64 agree");
    cg_secret_free(plain, plain_len + 1);
    is_int(cg_vault_decrypt(b64url, blob, ID_A, "openai", 1, &plain, &plain_len,
                            err, sizeof(err)), -1, "kms other key fails");
    free(blob);

    for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        err[0] = '\0';
        is_int(cg_vault_kms_key_parse(invalid[i], &key, err, sizeof(err)), -1,
               "kms key rejected: \"%.20s\"", invalid[i]);
        ok(key == NULL, "kms key left null");
        ok(strstr(err, "openssl rand -hex 32") != NULL, "kms error says how to make one");
        ok(invalid[i][0] == '\0' || strstr(err, invalid[i]) == NULL,
           "kms error does not echo the value");
    }

    is_int(cg_vault_kms_key_parse(NULL, &key, err, sizeof(err)), -1, "kms key unset");
    ok(strstr(err, "not set") != NULL, "kms unset error says not set");

    cg_vault_kms_key_free(hex);
    cg_vault_kms_key_free(b64);
    cg_vault_kms_key_free(b64url);
}

static void
test_encrypt_decrypt(void)
{
    cg_vault_kms_key_t  *kms, *other;
    unsigned char        raw[256];
    char                 err[512];
    char                *blob, *blob2, *plain, *tampered;
    size_t               plain_len, blob_len, i;
    long                 raw_len;
    int                  failures;

    cg_vault_kms_key_parse(HEX_1, &kms, err, sizeof(err));
    cg_vault_kms_key_parse(HEX_2, &other, err, sizeof(err));

    blob = cg_vault_encrypt(kms, ID_A, "openai", 3, SECRET, strlen(SECRET),
                            err, sizeof(err));
    ok(blob != NULL, "encrypt returns a blob");
    ok(strstr(blob, "sk-test") == NULL, "blob does not contain the plaintext");

    blob_len = strlen(blob);
    raw_len = cg_base64_decode(raw, blob, blob_len, CG_BASE64_STD);
    is_int(raw_len, (long) strlen(SECRET) + 1 + 12 + 16, "blob length is version+nonce+ct+tag");
    is_int(raw[0], CG_VAULT_BLOB_VERSION, "blob starts with the version byte");

    blob2 = cg_vault_encrypt(kms, ID_A, "openai", 3, SECRET, strlen(SECRET),
                             err, sizeof(err));
    ok(strcmp(blob, blob2) != 0, "encrypt uses a fresh nonce");
    free(blob2);

    is_int(cg_vault_decrypt(kms, blob, ID_A, "openai", 3, &plain, &plain_len,
                            err, sizeof(err)), 0, "decrypt round trip");
    is_str(plain, SECRET, "decrypt returns the plaintext");
    is_int(plain_len, strlen(SECRET), "decrypt returns the length");
    ok(((uintptr_t) plain % (uintptr_t) sysconf(_SC_PAGESIZE)) == 0,
       "plaintext is page-aligned secret memory");
    cg_secret_free(plain, plain_len + 1);

    plain = (char *) 1;
    is_int(cg_vault_decrypt(kms, blob, ID_B, "openai", 3, &plain, &plain_len,
                            err, sizeof(err)), -1, "decrypt other id fails");
    ok(plain == NULL, "failed decrypt returns no plaintext");
    ok(strstr(err, ID_B) != NULL, "decrypt error names the key id");
    is_int(cg_vault_decrypt(kms, blob, ID_A, "openrouter", 3, &plain, &plain_len,
                            err, sizeof(err)), -1, "decrypt other provider fails");
    is_int(cg_vault_decrypt(kms, blob, ID_A, "openai", 4, &plain, &plain_len,
                            err, sizeof(err)), -1, "decrypt other version fails");
    is_int(cg_vault_decrypt(other, blob, ID_A, "openai", 3, &plain, &plain_len,
                            err, sizeof(err)), -1, "decrypt other kms key fails");
    ok(strstr(err, SECRET) == NULL, "decrypt error has no plaintext");

    /* Flip each bit of each raw byte: every change must fail. */
    failures = 0;
    tampered = malloc(blob_len + 1);
    for (i = 0; i < (size_t) raw_len * 8; i++) {
        raw[i / 8] ^= (unsigned char) (1 << (i % 8));
        cg_base64_encode(tampered, raw, (size_t) raw_len, CG_BASE64_STD);
        raw[i / 8] ^= (unsigned char) (1 << (i % 8));

        if (cg_vault_decrypt(kms, tampered, ID_A, "openai", 3, &plain,
                             &plain_len, err, sizeof(err)) == 0)
        {
            failures++;
            cg_secret_free(plain, plain_len + 1);
        }
    }
    is_int(failures, 0, "every flipped bit fails to decrypt");

    cg_base64_encode(tampered, raw, (size_t) raw_len - 1, CG_BASE64_STD);
    is_int(cg_vault_decrypt(kms, tampered, ID_A, "openai", 3, &plain, &plain_len,
                            err, sizeof(err)), -1, "truncated blob fails");
    is_int(cg_vault_decrypt(kms, "AQID", ID_A, "openai", 3, &plain, &plain_len,
                            err, sizeof(err)), -1, "short blob fails");
    is_int(cg_vault_decrypt(kms, "not base64!", ID_A, "openai", 3, &plain,
                            &plain_len, err, sizeof(err)), -1, "garbage blob fails");
    free(tampered);

    ok(cg_vault_encrypt(kms, "not-a-uuid", "openai", 1, SECRET, strlen(SECRET),
                        err, sizeof(err)) == NULL, "encrypt rejects invalid id");
    ok(cg_vault_encrypt(kms, ID_A, "", 1, SECRET, strlen(SECRET),
                        err, sizeof(err)) == NULL, "encrypt rejects empty provider");
    ok(cg_vault_encrypt(kms, ID_A, "openai", 1, SECRET, 0,
                        err, sizeof(err)) == NULL, "encrypt rejects empty secret");

    free(blob);
    cg_vault_kms_key_free(kms);
    cg_vault_kms_key_free(other);
}

static void
test_rekey(void)
{
    cg_vault_kms_key_t  *old_kms, *new_kms;
    char                 err[512];
    char                *blob, *new_blob, *plain;
    size_t               plain_len;
    uint32_t             version;

    cg_vault_kms_key_parse(HEX_1, &old_kms, err, sizeof(err));
    cg_vault_kms_key_parse(HEX_2, &new_kms, err, sizeof(err));

    blob = cg_vault_encrypt(old_kms, ID_A, "anthropic", 7, SECRET,
                            strlen(SECRET), err, sizeof(err));

    is_int(cg_vault_rekey(old_kms, new_kms, ID_A, "anthropic", 7, blob,
                          &new_blob, &version, err, sizeof(err)), 0, "rekey succeeds");
    is_int(version, 8, "rekey increments the version");
    is_int(cg_vault_decrypt(new_kms, new_blob, ID_A, "anthropic", 8, &plain,
                            &plain_len, err, sizeof(err)), 0,
           "rekeyed blob decrypts under the new key");
    is_str(plain, SECRET, "rekeyed plaintext is unchanged");
    cg_secret_free(plain, plain_len + 1);
    is_int(cg_vault_decrypt(old_kms, new_blob, ID_A, "anthropic", 8, &plain,
                            &plain_len, err, sizeof(err)), -1,
           "rekeyed blob fails under the old key");
    is_int(cg_vault_decrypt(new_kms, new_blob, ID_A, "anthropic", 7, &plain,
                            &plain_len, err, sizeof(err)), -1,
           "rekeyed blob fails at the old version");
    free(new_blob);

    is_int(cg_vault_rekey(new_kms, old_kms, ID_A, "anthropic", 7, blob,
                          &new_blob, &version, err, sizeof(err)), -1,
           "rekey with the wrong old key fails");
    ok(new_blob == NULL, "failed rekey returns no blob");
    is_int(cg_vault_rekey(old_kms, new_kms, ID_A, "anthropic", UINT32_MAX, blob,
                          &new_blob, &version, err, sizeof(err)), -1,
           "rekey at the last version fails");

    free(blob);
    cg_vault_kms_key_free(old_kms);
    cg_vault_kms_key_free(new_kms);
}

static void
test_fingerprint(void)
{
    char  fp[CG_VAULT_FINGERPRINT_SIZE];

    cg_vault_fingerprint(SECRET, strlen(SECRET), fp);
    is_str(fp, "WXYZ", "fingerprint is the last four characters");
    cg_vault_fingerprint("abcdefgh", 8, fp);
    is_str(fp, "gh", "fingerprint of a short key is a quarter of it");
    cg_vault_fingerprint("abc", 3, fp);
    is_str(fp, "", "fingerprint of a tiny key is empty");
    cg_vault_fingerprint("0123456789abcd\n\x01", 16, fp);
    is_str(fp, "cd??", "fingerprint masks non-printable bytes");
}

static void
test_table(void)
{
    cg_vault_kms_key_t      *kms;
    const cg_vault_entry_t  *entry;
    cg_vault_t              *vault;
    char                     err[512];
    char                    *blob;

    cg_vault_kms_key_parse(HEX_1, &kms, err, sizeof(err));
    vault = cg_vault_create();
    blob = cg_vault_encrypt(kms, ID_A, "openai", 2, SECRET, strlen(SECRET),
                            err, sizeof(err));

    is_int(cg_vault_load(vault, kms, ID_A, "openai", "prod", NULL, 2, blob,
                         err, sizeof(err)), 0, "table load decrypts a row");
    is_int(cg_vault_load(vault, kms, ID_B, "openai", "moved", NULL, 2, blob,
                         err, sizeof(err)), -1, "table load rejects a moved row");
    is_int(cg_vault_count(vault), 1, "table holds one key");

    entry = cg_vault_lookup(vault, ID_A);
    ok(entry != NULL, "table lookup finds the key");
    is_str(entry->secret, SECRET, "table entry holds the plaintext");
    is_str(entry->provider, "openai", "table entry provider");
    is_str(entry->label, "prod", "table entry label");
    ok(entry->base_url == NULL, "table entry default base_url");
    is_str(entry->fingerprint, "WXYZ", "table entry fingerprint");
    is_int(entry->version, 2, "table entry version");
    ok(cg_vault_lookup(vault, ID_B) == NULL, "table lookup misses other id");
    ok(cg_vault_lookup(vault, "junk") == NULL, "table lookup rejects junk id");

    is_int(cg_vault_put(vault, ID_B, "ollama", "local", "http://127.0.0.1:11434",
                        1, "ollama-key-1234", 15, err, sizeof(err)), 0, "table put");
    is_str(cg_vault_lookup(vault, ID_B)->base_url, "http://127.0.0.1:11434",
           "table entry base_url");
    is_int(cg_vault_put(vault, ID_B, "ollama", "local", NULL, 2,
                        "ollama-key-5678", 15, err, sizeof(err)), 0, "table put replaces");
    is_int(cg_vault_count(vault), 2, "table replace keeps the count");
    is_str(cg_vault_lookup(vault, ID_B)->secret, "ollama-key-5678",
           "table replace stores the new key");

    is_int(cg_vault_put(vault, "nope", "openai", NULL, NULL, 1, "k", 1,
                        err, sizeof(err)), -1, "table put rejects invalid id");
    is_int(cg_vault_put(vault, ID_A, "openai", NULL, NULL, 1, "k", 0,
                        err, sizeof(err)), -1, "table put rejects empty key");

    is_int(cg_vault_revoke(vault, ID_A), 0, "table revoke");
    ok(cg_vault_lookup(vault, ID_A) == NULL, "revoked key is gone");
    is_int(cg_vault_revoke(vault, ID_A), -1, "table revoke twice fails");
    is_int(cg_vault_count(vault), 1, "table count after revoke");

    /* a rotation that finishes after the revoke must not bring it back */
    is_int(cg_vault_put(vault, ID_A, "openai", "prod", NULL, 3, "k-new", 5,
                        err, sizeof(err)), 1, "table put after revoke rejected");
    ok(cg_vault_lookup(vault, ID_A) == NULL, "revoked key stays gone");
    is_int(cg_vault_count(vault), 1, "table count after rejected put");

    is_int(cg_vault_revoke(vault, ID_C), -1, "table revoke of unknown id");
    is_int(cg_vault_put(vault, ID_C, "openai", NULL, NULL, 1, "k", 1,
                        err, sizeof(err)), 1, "table put after unknown revoke");
    ok(cg_vault_lookup(vault, ID_C) == NULL, "unknown revoked key stays gone");
    is_int(cg_vault_count(vault), 1, "table count after unknown revoke");

    free(blob);
    cg_vault_destroy(vault);
    cg_vault_destroy(NULL);
    cg_vault_kms_key_free(kms);
}

static void
test_secret_memory(void)
{
    unsigned char  *p;
    char           *copy;
    size_t          i;
    int             zero;

    p = cg_secret_alloc(100);
    ok(p != NULL, "secret alloc");
    ok(((uintptr_t) p % (uintptr_t) sysconf(_SC_PAGESIZE)) == 0,
       "secret memory is page-aligned");

    zero = 1;
    for (i = 0; i < 100; i++) {
        zero &= p[i] == 0;
    }
    ok(zero, "secret memory starts zeroed");
    cg_secret_free(p, 100);
    cg_secret_free(NULL, 0);

    copy = cg_secret_strndup("abc\0def", 7);
    ok(copy != NULL && memcmp(copy, "abc\0def", 8) == 0, "secret strndup copies and terminates");
    cg_secret_free(copy, 8);
}

int
main(void)
{
    test_base64();
    test_uuid();
    test_kms_parse();
    test_encrypt_decrypt();
    test_rekey();
    test_fingerprint();
    test_table();
    test_secret_memory();

    return done();
}
