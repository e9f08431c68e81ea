#ifndef CG_REVOKED_H
#define CG_REVOKED_H

#include <event2/event.h>

#include "db.h"

/*
 * The worker's own set of revoked token ids (JWT jti claims) that have not
 * expired yet. nginx keeps the same list but loses it on a restart until the
 * next limits sync. The worker checks X-Chatgate-Jti against this set, so a
 * revoked token fails in that window too. The set is loaded from
 * revoked_tokens at start and merged with it every refresh_ms, which brings
 * in revocations made through other workers. Revocations are never undone,
 * so a refresh only adds ids and drops expired ones.
 */

typedef struct cg_revoked_s  cg_revoked_t;

/* Borrows base and db. Returns NULL when out of memory. */
cg_revoked_t *cg_revoked_new(struct event_base *base, cg_db_t *db,
    int refresh_ms);

/* Starts the first load; later refreshes follow every refresh_ms. */
void cg_revoked_start(cg_revoked_t *r);

/* 1 once the first load from the database has finished. */
int cg_revoked_loaded(const cg_revoked_t *r);

/* Adds jti until exp (seconds since the epoch). Returns 0, or -1 on ENOMEM. */
int cg_revoked_add(cg_revoked_t *r, const char *jti, long long exp);

/* Returns 1 when jti is in the set and its exp has not passed. */
int cg_revoked_contains(const cg_revoked_t *r, const char *jti);

/* Stops the refresh. A query in flight frees the set from its callback. */
void cg_revoked_free(cg_revoked_t *r);

#endif
