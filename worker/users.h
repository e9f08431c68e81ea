#ifndef CG_USERS_H
#define CG_USERS_H

#include <stddef.h>
#include <event2/event.h>

/*
 * Admin users: the password hashing threads that keep scrypt (about 0.1 s
 * of CPU per hash) off the event loop, and the "user" commands.
 */

#define CG_USERS_PASSWORD_MIN  12      /* bytes */

typedef struct cg_hasher_s  cg_hasher_t;

/*
 * Called on the event loop when a job is done. For a verify, result is 1 on
 * a match and 0 otherwise (a malformed hash included); for a hash, result
 * is 0 and hash holds the encoded string, or -1 on failure.
 */
typedef void (*cg_hasher_done_pt)(int result, const char *hash, void *arg);

/* Starts threads threads. Returns NULL (logged) on failure. */
cg_hasher_t *cg_hasher_new(struct event_base *base, int threads);

/*
 * Stops the threads once their current job is done, and frees the queue.
 * Jobs not done by then are dropped without their callback.
 */
void cg_hasher_free(cg_hasher_t *h);

/*
 * Queues a check of password against encoded; encoded NULL spends the same
 * time and never matches (an unknown email). The password is copied into
 * secret memory and wiped after use. Returns 0, or -1 when the queue is full.
 */
int cg_hasher_verify(cg_hasher_t *h, const char *password, size_t len,
    const char *encoded, cg_hasher_done_pt done, void *arg);

/* Queues the hashing of password with a fresh salt. Returns 0 or -1. */
int cg_hasher_hash(cg_hasher_t *h, const char *password, size_t len,
    cg_hasher_done_pt done, void *arg);

/*
 * Checks an email address for the admin_users table and lowercases it into
 * out (size >= 255). Returns 0, or -1 if it is not a plausible address.
 */
int cg_users_email(const char *email, char *out, size_t size);

/*
 * The "user" command: argv is {"add", EMAIL} with role, or {"disable",
 * EMAIL}. "add" reads the password from the first line of stdin. Blocking
 * libpq. Returns the exit status.
 */
int cg_users_command(const char *conninfo, int argc, char **argv,
    const char *role);

#endif
