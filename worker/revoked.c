/*
 * The set of revoked token ids: a chained hash table refreshed from
 * revoked_tokens (see revoked.h).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "revoked.h"

#define CG_REVOKED_BUCKETS  1024
#define CG_REVOKED_JTI_MAX  64      /* maximum jti length nginx accepts */

#define CG_REVOKED_SQL                                                       \
    "SELECT jti, extract(epoch FROM expires_at)::bigint FROM revoked_tokens " \
    "WHERE expires_at > now()"

typedef struct cg_revoked_entry_s  cg_revoked_entry_t;

struct cg_revoked_entry_s {
    cg_revoked_entry_t  *next;
    long long            exp;
    char                 jti[CG_REVOKED_JTI_MAX + 1];
};

struct cg_revoked_s {
    cg_db_t              *db;
    struct event         *timer;
    int                   refresh_ms;
    int                   loaded;
    int                   query_pending;
    int                   stopping;
    size_t                count;
    cg_revoked_entry_t   *buckets[CG_REVOKED_BUCKETS];
};

static void cg_revoked_refresh(evutil_socket_t fd, short events, void *arg);
static void cg_revoked_rows(PGresult *res, const char *error, void *arg);
static void cg_revoked_schedule(cg_revoked_t *r);
static void cg_revoked_prune(cg_revoked_t *r, long long now);
static void cg_revoked_destroy(cg_revoked_t *r);
static uint32_t cg_revoked_hash(const char *jti);


cg_revoked_t *
cg_revoked_new(struct event_base *base, cg_db_t *db, int refresh_ms)
{
    cg_revoked_t  *r;

    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }

    r->db = db;
    r->refresh_ms = refresh_ms;
    r->timer = evtimer_new(base, cg_revoked_refresh, r);
    if (r->timer == NULL) {
        free(r);
        return NULL;
    }

    return r;
}


void
cg_revoked_start(cg_revoked_t *r)
{
    cg_revoked_refresh(-1, 0, r);
}


int
cg_revoked_loaded(const cg_revoked_t *r)
{
    return r->loaded;
}


int
cg_revoked_add(cg_revoked_t *r, const char *jti, long long exp)
{
    cg_revoked_entry_t  *e;
    uint32_t             h;
    size_t               len = strlen(jti);

    if (len == 0 || len > CG_REVOKED_JTI_MAX) {
        /* nginx rejects such tokens before they reach the worker */
        return 0;
    }

    h = cg_revoked_hash(jti) % CG_REVOKED_BUCKETS;

    for (e = r->buckets[h]; e != NULL; e = e->next) {
        if (strcmp(e->jti, jti) == 0) {
            if (exp > e->exp) {
                e->exp = exp;
            }
            return 0;
        }
    }

    e = malloc(sizeof(*e));
    if (e == NULL) {
        return -1;
    }

    memcpy(e->jti, jti, len + 1);
    e->exp = exp;
    e->next = r->buckets[h];
    r->buckets[h] = e;
    r->count++;

    return 0;
}


int
cg_revoked_contains(const cg_revoked_t *r, const char *jti)
{
    const cg_revoked_entry_t  *e;
    uint32_t                   h;

    h = cg_revoked_hash(jti) % CG_REVOKED_BUCKETS;

    for (e = r->buckets[h]; e != NULL; e = e->next) {
        if (strcmp(e->jti, jti) == 0) {
            return e->exp > (long long) time(NULL);
        }
    }

    return 0;
}


void
cg_revoked_free(cg_revoked_t *r)
{
    if (r == NULL) {
        return;
    }

    r->stopping = 1;
    evtimer_del(r->timer);

    /* cg_db_free() calls the pending callback, which then frees r */
    if (!r->query_pending) {
        cg_revoked_destroy(r);
    }
}


static void
cg_revoked_destroy(cg_revoked_t *r)
{
    cg_revoked_entry_t  *e, *next;
    size_t               i;

    for (i = 0; i < CG_REVOKED_BUCKETS; i++) {
        for (e = r->buckets[i]; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    }

    event_free(r->timer);
    free(r);
}


static void
cg_revoked_refresh(evutil_socket_t fd, short events, void *arg)
{
    cg_revoked_t  *r = arg;

    (void) fd;
    (void) events;

    if (r->stopping || r->query_pending) {
        return;
    }

    if (cg_db_query(r->db, CG_REVOKED_SQL, 0, NULL, cg_revoked_rows, r) != 0) {
        cg_log_warn(NULL, "refreshing the revoked token ids failed: the "
                    "database queue is full; retrying in %d ms",
                    r->refresh_ms);
        cg_revoked_schedule(r);
        return;
    }

    r->query_pending = 1;
}


static void
cg_revoked_rows(PGresult *res, const char *error, void *arg)
{
    cg_revoked_t  *r = arg;
    int            i, n;

    r->query_pending = 0;

    if (r->stopping) {
        cg_revoked_destroy(r);
        return;
    }

    if (error != NULL) {
        cg_log_warn(NULL, "refreshing the revoked token ids failed: %s; "
                    "retrying in %d ms", error, r->refresh_ms);
        cg_revoked_schedule(r);
        return;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        if (cg_revoked_add(r, PQgetvalue(res, i, 0),
                           strtoll(PQgetvalue(res, i, 1), NULL, 10)) != 0)
        {
            cg_log_error(NULL, "refreshing the revoked token ids failed: "
                         "out of memory after %d of %d ids", i, n);
            break;
        }
    }

    cg_revoked_prune(r, (long long) time(NULL));

    if (!r->loaded) {
        r->loaded = 1;
        cg_log_info(NULL, "revoked token ids loaded: %zu", r->count);
    }

    cg_revoked_schedule(r);
}


static void
cg_revoked_schedule(cg_revoked_t *r)
{
    struct timeval  tv;

    tv.tv_sec = r->refresh_ms / 1000;
    tv.tv_usec = (r->refresh_ms % 1000) * 1000;
    evtimer_add(r->timer, &tv);
}


/* Drops the ids whose tokens expired, which no check can match anyway. */
static void
cg_revoked_prune(cg_revoked_t *r, long long now)
{
    cg_revoked_entry_t  **link, *e;
    size_t                i;

    for (i = 0; i < CG_REVOKED_BUCKETS; i++) {
        link = &r->buckets[i];

        while ((e = *link) != NULL) {
            if (e->exp <= now) {
                *link = e->next;
                free(e);
                r->count--;
            } else {
                link = &e->next;
            }
        }
    }
}


/* FNV-1a: jtis are random, so any spreading hash does. */
static uint32_t
cg_revoked_hash(const char *jti)
{
    uint32_t  h = 2166136261u;

    while (*jti != '\0') {
        h ^= (unsigned char) *jti++;
        h *= 16777619u;
    }

    return h;
}
