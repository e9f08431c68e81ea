/*
 * The limits sync: one cycle at a time, each in three steps.
 *
 *   pull   GET the control location: today's count and the denials of
 *          every counter, upserted into chat_usage_counters.
 *   load   read rate_limits and today's chat_usage_counters.
 *   push   PUT the rule set, the usage and every unexpired revoked
 *          token id to the control location.
 *
 * A cycle runs every CHATGATE_LIMITS_SYNC_MS, at once when an admin change
 * asks for a push, and with backoff after a failure. The module keeps the
 * larger of its own and the pushed day count, so a restarted nginx resumes
 * the day quotas from the database, and the revoked ids within one cycle.
 *
 * A logout does not wait for a cycle: cg_limits_revoke() sends its one
 * "revoke" line with PATCH at once, next to any running cycle.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "ratelimit.h"
#include "log.h"
#include "upstream.h"

#define CG_LIMITS_CONNECT_MS     1000
#define CG_LIMITS_REQUEST_MS     5000
#define CG_LIMITS_REPORT_MAX     (16 << 20)
#define CG_LIMITS_BACKOFF_MIN_MS 100
#define CG_LIMITS_BACKOFF_MAX_MS 5000

/* a failure is logged the first time and then every this many times */
#define CG_LIMITS_LOG_EVERY      30

typedef struct cg_limits_waiter_s  cg_limits_waiter_t;
typedef struct cg_limits_revoke_s  cg_limits_revoke_t;

struct cg_limits_waiter_s {
    cg_limits_pushed_pt   done;
    void                 *arg;
    unsigned long         gen;        /* satisfied by a cycle of this or a later generation */
    cg_limits_waiter_t   *next;
};

/*
 * One PATCH of a revoked token id. It owns its body, which curl reads until
 * the call ends, and sits in the sync's list until then.
 */
struct cg_limits_revoke_s {
    cg_limits_t          *limits;
    cg_limits_pushed_pt   done;
    void                 *arg;
    char                  body[128];
    cg_limits_revoke_t   *prev;
    cg_limits_revoke_t   *next;
};

/* What the worker last stored for one counter of the module. */
typedef struct {
    char            scope[CG_LIMITS_SCOPE_LEN];
    char            day[11];
    unsigned long   requests;
    unsigned long   denied;           /* the module's running total, not today's */
} cg_limits_counter_t;

typedef struct {
    cg_limits_counter_t  *items;
    size_t                n;
    size_t                cap;
} cg_limits_counters_t;

struct cg_limits_s {
    struct event_base     *base;
    cg_db_t               *db;
    const cg_conf_t       *conf;
    cg_upstream_t         *upstream;
    struct event          *timer;

    unsigned               running:1;
    unsigned               stopping:1;
    unsigned               db_pending:1;   /* a query callback will still come */
    unsigned               have_baseline:1;

    unsigned long          gen_requested;
    unsigned long          gen_running;
    cg_limits_waiter_t    *waiters;
    cg_limits_revoke_t    *revokes;        /* PATCH calls that run */

    char                   today[11];      /* UTC day of the running cycle */
    cg_buf_t               push_body;      /* curl reads it until the PUT ends */
    char                   error[256];     /* why the running cycle failed */

    cg_limits_counters_t   seen;           /* as stored by the last cycle */
    cg_limits_counters_t   pending;        /* stored once the upsert succeeds */

    unsigned long          failures;       /* cycles in a row that failed */
    size_t                 skipped_rules;
};

static void cg_limits_timer_cb(evutil_socket_t fd, short events, void *arg);
static void cg_limits_pull_done(cg_upstream_call_t *call,
    cg_upstream_result_t result, const char *error, void *arg);
static int cg_limits_parse_report(cg_limits_t *l, const char *body,
    size_t len);
static int cg_limits_store(cg_limits_t *l);
static void cg_limits_store_done(PGresult *res, const char *error, void *arg);
static void cg_limits_commit_counters(cg_limits_t *l);
static void cg_limits_load(cg_limits_t *l);
static void cg_limits_load_done(PGresult *res, const char *error, void *arg);
static int cg_limits_build_push(cg_limits_t *l, PGresult *res);
static void cg_limits_push_done(cg_upstream_call_t *call,
    cg_upstream_result_t result, const char *error, void *arg);
static void cg_limits_finish(cg_limits_t *l, const char *error);
static void cg_limits_revoke_done(cg_upstream_call_t *call,
    cg_upstream_result_t result, const char *error, void *arg);
static void cg_limits_revoke_unlink(cg_limits_revoke_t *r);
static int cg_limits_jti_valid(const char *jti);
static void cg_limits_schedule(cg_limits_t *l, long ms);
static void cg_limits_destroy(cg_limits_t *l);
static cg_limits_counter_t *cg_limits_counter_add(cg_limits_counters_t *c,
    const char *day, const char *scope);
static cg_limits_counter_t *cg_limits_counter_find(cg_limits_counters_t *c,
    const char *scope);
static int cg_limits_counter_cmp(const void *a, const void *b);
static void cg_limits_counters_merge(cg_limits_counters_t *c);
static int cg_limits_appendf(cg_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *cg_limits_field(PGresult *res, int row, int col);


cg_limits_t *
cg_limits_new(struct event_base *base, cg_db_t *db, const cg_conf_t *conf)
{
    cg_limits_t         *l;
    cg_upstream_conf_t   uc;

    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return NULL;
    }

    l->base = base;
    l->db = db;
    l->conf = conf;

    /* its own multi handle, so provider calls never share the control's */
    uc.connect_timeout_ms = CG_LIMITS_CONNECT_MS;
    uc.request_timeout_ms = CG_LIMITS_REQUEST_MS;
    uc.proxy = NULL;
    uc.max_connections = 1;

    l->upstream = cg_upstream_new(base, &uc);
    l->timer = evtimer_new(base, cg_limits_timer_cb, l);

    if (l->upstream == NULL || l->timer == NULL) {
        cg_limits_destroy(l);
        return NULL;
    }

    return l;
}


void
cg_limits_start(cg_limits_t *l)
{
    if (l->conf->control_url == NULL) {
        cg_log_warn(NULL, "CHATGATE_CONTROL_URL is not set: rate limit rules "
                    "are not pushed to nginx, which keeps its fallback rule");
        return;
    }

    cg_log_info(NULL, "limits sync to %s%s%s every %d ms",
                l->conf->control_url_log,
                l->conf->control_socket ? " over unix socket " : "",
                l->conf->control_socket ? l->conf->control_socket : "",
                l->conf->limits_sync_ms);

    cg_limits_schedule(l, 0);
}


int
cg_limits_push(cg_limits_t *l, cg_limits_pushed_pt done, void *arg)
{
    cg_limits_waiter_t  *w;

    if (l->conf->control_url == NULL || l->stopping) {
        return -1;
    }

    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return -1;
    }

    w->done = done;
    w->arg = arg;
    w->gen = ++l->gen_requested;
    w->next = l->waiters;
    l->waiters = w;

    if (!l->running) {
        cg_limits_schedule(l, 0);
    }

    return 0;
}


int
cg_limits_revoke(cg_limits_t *l, const char *jti, long long exp,
    cg_limits_pushed_pt done, void *arg)
{
    cg_limits_revoke_t  *r;
    static const cg_upstream_handler_t  handler = {
        NULL, NULL, cg_limits_revoke_done
    };

    if (l->conf->control_url == NULL || l->stopping
        || !cg_limits_jti_valid(jti))
    {
        return -1;
    }

    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return -1;
    }

    r->limits = l;
    r->done = done;
    r->arg = arg;
    snprintf(r->body, sizeof(r->body), "revoke %s %lld\n", jti, exp);

    if (cg_upstream_start_method(l->upstream, "PATCH", l->conf->control_socket,
                                 l->conf->control_url, NULL, r->body,
                                 strlen(r->body), 4096, &handler, r)
        == NULL)
    {
        free(r);
        return -1;
    }

    r->next = l->revokes;
    if (r->next != NULL) {
        r->next->prev = r;
    }
    l->revokes = r;

    return 0;
}


static void
cg_limits_revoke_done(cg_upstream_call_t *call, cg_upstream_result_t result,
    const char *error, void *arg)
{
    cg_limits_revoke_t  *r = arg;
    char                 msg[256];
    long                 status;

    status = cg_upstream_status(call);
    cg_limits_revoke_unlink(r);

    if (result != CG_UPSTREAM_OK) {
        snprintf(msg, sizeof(msg), "pushing a revoked token id to %s "
                 "failed: %s", r->limits->conf->control_url_log,
                 error ? error : "no answer");
        r->done(msg, r->arg);

    } else if (status != 200) {
        snprintf(msg, sizeof(msg), "nginx rejected a revoked token id with "
                 "HTTP status %ld", status);
        r->done(msg, r->arg);

    } else {
        r->done(NULL, r->arg);
    }

    free(r);
}


static void
cg_limits_revoke_unlink(cg_limits_revoke_t *r)
{
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        r->limits->revokes = r->next;
    }

    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
}


/* Returns 1 for an id the module accepts: 1 to 64 base64url characters. */
static int
cg_limits_jti_valid(const char *jti)
{
    size_t  n;

    n = strspn(jti, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    "0123456789-_");

    return n > 0 && n <= 64 && jti[n] == '\0';
}


void
cg_limits_free(cg_limits_t *l)
{
    cg_limits_waiter_t  *w;
    cg_limits_revoke_t  *r;

    if (l == NULL) {
        return;
    }

    l->stopping = 1;

    while ((w = l->waiters) != NULL) {
        l->waiters = w->next;
        w->done("shutting down", w->arg);
        free(w);
    }

    /* cg_upstream_free() below cancels their calls without on_done */
    while ((r = l->revokes) != NULL) {
        l->revokes = r->next;
        r->done("shutting down", r->arg);
        free(r);
    }

    /* cancels a running GET or PUT without calling its on_done */
    cg_upstream_free(l->upstream);
    l->upstream = NULL;

    /* the query callback frees l when cg_db_free() calls it */
    if (!l->db_pending) {
        cg_limits_destroy(l);
    }
}


static void
cg_limits_destroy(cg_limits_t *l)
{
    cg_upstream_free(l->upstream);

    if (l->timer != NULL) {
        event_free(l->timer);
    }

    cg_buf_free(&l->push_body);
    free(l->seen.items);
    free(l->pending.items);
    free(l);
}


/* Starts a cycle with the pull step. */
static void
cg_limits_timer_cb(evutil_socket_t fd, short events, void *arg)
{
    cg_limits_t            *l = arg;
    time_t                  now;
    struct tm               tm;
    static const cg_upstream_handler_t  handler = {
        NULL, NULL, cg_limits_pull_done
    };

    (void) fd;
    (void) events;

    if (l->running || l->stopping) {
        return;
    }

    l->running = 1;
    l->gen_running = l->gen_requested;
    l->error[0] = '\0';

    now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(l->today, sizeof(l->today), "%Y-%m-%d", &tm);

    if (cg_upstream_start_method(l->upstream, "GET", l->conf->control_socket,
                                 l->conf->control_url, NULL, NULL, 0,
                                 CG_LIMITS_REPORT_MAX, &handler, l)
        == NULL)
    {
        snprintf(l->error, sizeof(l->error), "cannot set up the request "
                 "to the control location");
        cg_limits_load(l);
    }
}


static void
cg_limits_pull_done(cg_upstream_call_t *call, cg_upstream_result_t result,
    const char *error, void *arg)
{
    cg_limits_t  *l = arg;
    const char   *body;
    size_t        len;
    long          status;

    status = cg_upstream_status(call);

    if (result != CG_UPSTREAM_OK || status != 200) {
        snprintf(l->error, sizeof(l->error), "reading counters from %s "
                 "failed: %s", l->conf->control_url_log,
                 error ? error : "unexpected HTTP status");
        if (result == CG_UPSTREAM_OK) {
            snprintf(l->error, sizeof(l->error), "reading counters from %s "
                     "failed: HTTP status %ld", l->conf->control_url_log,
                     status);
        }

        cg_limits_load(l);
        return;
    }

    body = cg_upstream_body(call, &len);

    if (cg_limits_parse_report(l, body, len) != 0 || cg_limits_store(l) != 0) {
        cg_log_error(NULL, "storing today's usage failed: out of memory or "
                     "the database queue is full");
        cg_limits_load(l);
    }
}


/*
 * Reads the module's report into l->pending: for each counter with a
 * "usage <day> <scope> <count>" or "denied <scope> <count>" line, what the
 * database should hold after this cycle. Other lines are skipped.
 */
static int
cg_limits_parse_report(cg_limits_t *l, const char *body, size_t len)
{
    const char           *p, *end, *eol;
    char                  line[160], day[11], scope[CG_LIMITS_SCOPE_LEN + 16];
    unsigned long         count;
    cg_limits_counter_t  *c;

    l->pending.n = 0;

    for (p = body, end = body + len; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t) (end - p));
        if (eol == NULL) {
            eol = end;
        }

        if ((size_t) (eol - p) >= sizeof(line)) {
            continue;
        }

        memcpy(line, p, (size_t) (eol - p));
        line[eol - p] = '\0';

        if (sscanf(line, "usage %10s %79s %lu", day, scope, &count) == 3
            && cg_limits_counter_valid(scope))
        {
            c = cg_limits_counter_add(&l->pending, day, scope);
            if (c == NULL) {
                return -1;
            }
            c->requests = count;

        } else if (sscanf(line, "denied %79s %lu", scope, &count) == 2
                   && cg_limits_counter_valid(scope))
        {
            c = cg_limits_counter_add(&l->pending, l->today, scope);
            if (c == NULL) {
                return -1;
            }
            c->denied = count;
        }
    }

    cg_limits_counters_merge(&l->pending);
    return 0;
}


/*
 * Upserts what changed since the last cycle: the day count as an absolute
 * value (the larger one wins), the denials as the growth of the module's
 * running total since the last cycle stored it.
 */
static int
cg_limits_store(cg_limits_t *l)
{
    static const char  *sql =
        "INSERT INTO chat_usage_counters AS c (day, scope, requests, denied) "
        "SELECT day, scope, requests, denied "
        "  FROM unnest($1::date[], $2::text[], $3::bigint[], $4::bigint[]) "
        "       AS u(day, scope, requests, denied) "
        "ON CONFLICT (day, scope) DO UPDATE "
        "   SET requests = GREATEST(c.requests, EXCLUDED.requests), "
        "       denied = c.denied + EXCLUDED.denied, updated_at = now()";

    cg_buf_t              cols[4];
    const char           *values[4];
    cg_limits_counter_t  *c, *old;
    unsigned long         delta;
    size_t                i, rows = 0;
    int                   rc = -1;

    memset(cols, 0, sizeof(cols));

    for (c = l->pending.items; c < l->pending.items + l->pending.n; c++) {
        old = cg_limits_counter_find(&l->seen, c->scope);

        /* NOTE: denials from before the worker's first pull are not
         * counted, and a restarted nginx loses those since the last pull */
        if (!l->have_baseline) {
            delta = 0;
        } else if (old == NULL || c->denied < old->denied) {
            delta = c->denied;
        } else {
            delta = c->denied - old->denied;
        }

        if (delta == 0 && old != NULL && strcmp(old->day, c->day) == 0
            && old->requests == c->requests)
        {
            continue;
        }

        if (delta == 0 && c->requests == 0) {
            continue;
        }

        if (cg_limits_appendf(&cols[0], "%s%s", rows ? "," : "{", c->day) != 0
            || cg_limits_appendf(&cols[1], "%s\"%s\"", rows ? "," : "{",
                                 c->scope) != 0
            || cg_limits_appendf(&cols[2], "%s%lu", rows ? "," : "{",
                                 c->requests) != 0
            || cg_limits_appendf(&cols[3], "%s%lu", rows ? "," : "{", delta)
               != 0)
        {
            goto done;
        }

        rows++;
    }

    if (rows == 0) {
        rc = 0;
        goto commit;
    }

    for (i = 0; i < 4; i++) {
        if (cg_buf_append_str(&cols[i], "}") != 0) {
            goto done;
        }
        values[i] = cols[i].data;
    }

    if (cg_db_query(l->db, sql, 4, values, cg_limits_store_done, l) != 0) {
        goto done;
    }

    l->db_pending = 1;
    rc = 0;
    goto done;

commit:

    cg_limits_commit_counters(l);
    cg_limits_load(l);

done:

    for (i = 0; i < 4; i++) {
        cg_buf_free(&cols[i]);
    }

    return rc;
}


static void
cg_limits_store_done(PGresult *res, const char *error, void *arg)
{
    cg_limits_t  *l = arg;

    (void) res;

    l->db_pending = 0;

    if (l->stopping) {
        cg_limits_destroy(l);
        return;
    }

    if (error != NULL) {
        cg_log_error(NULL, "storing today's usage in chat_usage_counters "
                     "failed: %s", error);
        cg_limits_load(l);
        return;
    }

    cg_limits_commit_counters(l);
    cg_limits_load(l);
}


/* Makes the counters just stored the base of the next cycle's deltas. */
static void
cg_limits_commit_counters(cg_limits_t *l)
{
    cg_limits_counters_t  tmp;

    tmp = l->seen;
    l->seen = l->pending;
    l->pending = tmp;
    l->pending.n = 0;
    l->have_baseline = 1;
}


/* Reads the rule set, today's usage and the unexpired revoked ids, then
 * pushes them. */
static void
cg_limits_load(cg_limits_t *l)
{
    static const char  *sql =
        "SELECT 'rule', scope, per_minute, per_hour, burst, per_day "
        "  FROM rate_limits "
        "UNION ALL "
        "SELECT 'usage', scope, requests, NULL, NULL, NULL "
        "  FROM chat_usage_counters WHERE day = $1::date AND requests > 0 "
        "UNION ALL "
        "SELECT 'revoke', jti, extract(epoch FROM expires_at)::bigint, "
        "       NULL, NULL, NULL "
        "  FROM revoked_tokens WHERE expires_at > now()";

    const char  *values[1];

    values[0] = l->today;

    if (cg_db_query(l->db, sql, 1, values, cg_limits_load_done, l) != 0) {
        cg_limits_finish(l, "loading the rules failed: the database queue "
                         "is full");
        return;
    }

    l->db_pending = 1;
}


static void
cg_limits_load_done(PGresult *res, const char *error, void *arg)
{
    cg_limits_t  *l = arg;
    char          msg[256];
    static const cg_upstream_handler_t  handler = {
        NULL, NULL, cg_limits_push_done
    };

    l->db_pending = 0;

    if (l->stopping) {
        cg_limits_destroy(l);
        return;
    }

    /* without the rule set nothing is pushed: an empty push lifts every
     * limit */
    if (error != NULL) {
        snprintf(msg, sizeof(msg), "loading the rules failed: %s", error);
        cg_limits_finish(l, msg);
        return;
    }

    if (cg_limits_build_push(l, res) != 0) {
        cg_limits_finish(l, "building the rule push failed: out of memory");
        return;
    }

    if (cg_upstream_start_method(l->upstream, "PUT", l->conf->control_socket,
                                 l->conf->control_url, NULL,
                                 l->push_body.data, l->push_body.len, 4096,
                                 &handler, l)
        == NULL)
    {
        cg_limits_finish(l, "cannot set up the request to the control "
                         "location");
    }
}


/*
 * Writes the control location's line format into l->push_body:
 * "rule <scope> <per_minute> <per_hour> <burst> <per_day>" ("-" for none),
 * "usage <day> <scope> <count>" and "revoke <jti> <exp>". A row the module
 * would reject, which would reject the whole push, is left out; a rule is
 * also logged.
 */
static int
cg_limits_build_push(cg_limits_t *l, PGresult *res)
{
    char         canonical[CG_LIMITS_SCOPE_LEN], err[160];
    const char  *scope, *v;
    size_t       skipped = 0;
    int          row, col;

    cg_buf_reset(&l->push_body);
    if (cg_buf_append_str(&l->push_body, "# chatgate-worker rule push\n") != 0) {
        return -1;
    }

    for (row = 0; row < PQntuples(res); row++) {
        scope = PQgetvalue(res, row, 1);

        if (strcmp(PQgetvalue(res, row, 0), "usage") == 0) {
            if (cg_limits_counter_valid(scope)
                && cg_limits_appendf(&l->push_body, "usage %s %s %s\n",
                                     l->today, scope,
                                     PQgetvalue(res, row, 2)) != 0)
            {
                return -1;
            }
            continue;
        }

        if (strcmp(PQgetvalue(res, row, 0), "revoke") == 0) {
            if (cg_limits_jti_valid(scope)
                && cg_limits_appendf(&l->push_body, "revoke %s %s\n", scope,
                                     PQgetvalue(res, row, 2)) != 0)
            {
                return -1;
            }
            continue;
        }

        if (cg_limits_scope_parse(scope, canonical, err, sizeof(err)) != 0) {
            if (skipped++ == 0 && l->skipped_rules == 0) {
                cg_log_error(NULL, "rate_limits row \"%.60s\" is not pushed: "
                             "%s", scope, err);
            }
            continue;
        }

        if (cg_limits_appendf(&l->push_body, "rule %s", canonical) != 0) {
            return -1;
        }

        for (col = 2; col < 6; col++) {
            v = cg_limits_field(res, row, col);
            if (cg_limits_appendf(&l->push_body, " %s", v) != 0) {
                return -1;
            }
        }

        if (cg_buf_append_str(&l->push_body, "\n") != 0) {
            return -1;
        }
    }

    l->skipped_rules = skipped;
    return 0;
}


static void
cg_limits_push_done(cg_upstream_call_t *call, cg_upstream_result_t result,
    const char *error, void *arg)
{
    cg_limits_t  *l = arg;
    char          msg[256], answer[160];
    const char   *body;
    size_t        len;
    long          status;

    status = cg_upstream_status(call);

    if (result != CG_UPSTREAM_OK) {
        /* curl names "localhost port 80" for a unix socket: add the socket */
        snprintf(msg, sizeof(msg), "pushing the rules to %s%s%s failed: %s",
                 l->conf->control_url_log,
                 l->conf->control_socket ? " over unix socket " : "",
                 l->conf->control_socket ? l->conf->control_socket : "",
                 error ? error : "no answer");
        cg_limits_finish(l, msg);
        return;
    }

    if (status != 200) {
        body = cg_upstream_body(call, &len);
        if (body == NULL) {
            len = 0;
        }

        len = cg_utf8_cut(body, len, sizeof(answer) - 1);
        memcpy(answer, body ? body : "", len);
        answer[len] = '\0';
        cg_utf8_sanitize(answer, len);

        snprintf(msg, sizeof(msg), "nginx rejected the rule push with HTTP "
                 "status %ld: %s", status, answer);
        cg_limits_finish(l, msg);
        return;
    }

    cg_limits_finish(l, NULL);
}


/*
 * Ends the running cycle: answers the waiters whose change it carried,
 * logs a failure (the first and then every CG_LIMITS_LOG_EVERY-th) and
 * schedules the next cycle.
 */
static void
cg_limits_finish(cg_limits_t *l, const char *error)
{
    cg_limits_waiter_t  **link, *w;
    long                  ms;

    l->running = 0;

    for (link = &l->waiters; (w = *link) != NULL; ) {
        if (w->gen > l->gen_running) {
            link = &w->next;
            continue;
        }

        *link = w->next;
        w->done(error, w->arg);
        free(w);
    }

    if (error == NULL) {
        if (l->failures > 0) {
            cg_log_info(NULL, "limits sync works again after %lu failed "
                        "attempts", l->failures);
        }

        if (l->error[0] != '\0') {
            cg_log_debug(NULL, "limits sync: %s", l->error);
        }

        l->failures = 0;
        ms = l->conf->limits_sync_ms;

    } else {
        l->failures++;
        ms = CG_LIMITS_BACKOFF_MIN_MS << (l->failures < 10 ? l->failures : 10);
        if (ms > CG_LIMITS_BACKOFF_MAX_MS) {
            ms = CG_LIMITS_BACKOFF_MAX_MS;
        }
        if (ms < l->conf->limits_sync_ms) {
            ms = l->conf->limits_sync_ms;
        }

        if (l->failures % CG_LIMITS_LOG_EVERY == 1) {
            cg_log_error(NULL, "limits sync failed (attempt %lu), retrying in "
                         "%ld ms: %s", l->failures, ms, error);
        }
    }

    if (l->gen_requested > l->gen_running) {
        ms = 0;
    }

    cg_limits_schedule(l, ms);
}


static void
cg_limits_schedule(cg_limits_t *l, long ms)
{
    struct timeval  tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(l->timer, &tv);
}


/* Appends an entry for scope; NULL on lack of memory. */
static cg_limits_counter_t *
cg_limits_counter_add(cg_limits_counters_t *c, const char *day,
    const char *scope)
{
    cg_limits_counter_t  *items;
    size_t                cap;

    if (c->n == c->cap) {
        cap = c->cap ? c->cap * 2 : 64;
        items = realloc(c->items, cap * sizeof(*items));
        if (items == NULL) {
            return NULL;
        }
        c->items = items;
        c->cap = cap;
    }

    items = &c->items[c->n++];
    memset(items, 0, sizeof(*items));
    snprintf(items->scope, sizeof(items->scope), "%s", scope);
    snprintf(items->day, sizeof(items->day), "%s", day);

    return items;
}


/* Sorts by scope and folds the usage and denied lines of one counter. */
static void
cg_limits_counters_merge(cg_limits_counters_t *c)
{
    cg_limits_counter_t  *in, *out;

    if (c->n == 0) {
        return;
    }

    qsort(c->items, c->n, sizeof(cg_limits_counter_t), cg_limits_counter_cmp);

    out = c->items;

    for (in = c->items + 1; in < c->items + c->n; in++) {
        if (strcmp(in->scope, out->scope) != 0) {
            *++out = *in;
            continue;
        }

        if (in->requests > out->requests) {
            out->requests = in->requests;
            memcpy(out->day, in->day, sizeof(out->day));
        }
        if (in->denied > out->denied) {
            out->denied = in->denied;
        }
    }

    c->n = (size_t) (out - c->items) + 1;
}


static cg_limits_counter_t *
cg_limits_counter_find(cg_limits_counters_t *c, const char *scope)
{
    cg_limits_counter_t  key;

    if (c->n == 0) {
        return NULL;
    }

    snprintf(key.scope, sizeof(key.scope), "%s", scope);

    return bsearch(&key, c->items, c->n, sizeof(cg_limits_counter_t),
                   cg_limits_counter_cmp);
}


static int
cg_limits_counter_cmp(const void *a, const void *b)
{
    return strcmp(((const cg_limits_counter_t *) a)->scope,
                  ((const cg_limits_counter_t *) b)->scope);
}


static int
cg_limits_appendf(cg_buf_t *b, const char *fmt, ...)
{
    char     line[256];
    va_list  ap;
    int      n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);

    if (n < 0 || (size_t) n >= sizeof(line)) {
        return -1;
    }

    return cg_buf_append(b, line, (size_t) n);
}


/* Returns the value at row, col, or "-" for NULL. */
static const char *
cg_limits_field(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? "-" : PQgetvalue(res, row, col);
}
