#ifndef CG_PASSWORD_H
#define CG_PASSWORD_H

#include <stddef.h>

/*
 * Admin passwords, hashed with scrypt (OpenSSL 3) into a PHC-style string:
 *
 *   $scrypt$ln=15,r=8,p=1$<salt>$<hash>
 *
 * salt is 16 random bytes per user, hash is 32 bytes, both in standard base64
 * without padding. N = 2^15, r = 8, p = 1 costs 128 * r * N = 32 MiB of memory
 * per hash, and about 0.1 s of CPU on one core (an estimate, it varies by machine).
 */

#define CG_PASSWORD_LN          15
#define CG_PASSWORD_R           8
#define CG_PASSWORD_P           1
#define CG_PASSWORD_SALT_SIZE   16
#define CG_PASSWORD_HASH_SIZE   32
#define CG_PASSWORD_MAX         1024      /* bytes of password accepted */
#define CG_PASSWORD_ENCODED_MAX 128       /* room for an encoded hash and NUL */

/*
 * Hashes password (len bytes, 1 to CG_PASSWORD_MAX) with a fresh salt into
 * out (outlen >= CG_PASSWORD_ENCODED_MAX). Returns 0, or -1 if the length
 * is out of range or OpenSSL fails.
 */
int cg_password_hash(const char *password, size_t len, char *out,
    size_t outlen);

/*
 * Checks password against an encoded hash in constant time for the hash's
 * parameters. Returns 1 on match, 0 on mismatch, -1 if the encoded string is
 * malformed or its parameters are out of the accepted range. A password
 * longer than CG_PASSWORD_MAX never matches.
 */
int cg_password_verify(const char *password, size_t len, const char *encoded);

/*
 * Spends the time of a cg_password_verify() at the default parameters and
 * returns 0. Call it for an unknown user, so that a wrong email and a wrong
 * password take the same time.
 */
int cg_password_verify_dummy(const char *password, size_t len);

#endif
