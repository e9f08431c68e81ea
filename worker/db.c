/*
 * Asynchronous PostgreSQL access: a small pool of nonblocking libpq
 * connections driven by libevent, fed from one FIFO of queries.
 */

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "db.h"
#include "log.h"

#define CG_DB_QUEUE_MAX          1024
#define CG_DB_QUEUE_TIMEOUT_MS   5000
#define CG_DB_CONNECT_TIMEOUT_MS 5000
#define CG_DB_QUERY_TIMEOUT_MS   30000
#define CG_DB_BACKOFF_MIN_MS     100
#define CG_DB_BACKOFF_MAX_MS     5000
#define CG_DB_SWEEP_MS           250
#define CG_DB_REASON_MAX         256
#define CG_DB_PARTITION_DAYS     7     /* daily partitions made ahead */

#define CG_DB_XSTR(x)            #x
#define CG_DB_STR(x)             CG_DB_XSTR(x)

typedef struct cg_db_query_s  cg_db_query_t;

/*
 * A queued or running query. It owns its copies of the SQL, the values and
 * the rows of a COPY ... FROM STDIN.
 */
struct cg_db_query_s {
    cg_db_query_t    *next;
    char             *sql;
    char            **values;
    int               nparams;
    char             *copy;        /* NULL unless the query is a COPY */
    size_t            copy_len;
    int64_t           queued_ms;
    cg_db_result_pt   cb;
    void             *arg;
};

typedef enum {
    CG_DB_CONN_IDLE = 0,        /* not started yet */
    CG_DB_CONN_BACKOFF,         /* waiting to reconnect */
    CG_DB_CONN_CONNECTING,
    CG_DB_CONN_READY,
    CG_DB_CONN_BUSY             /* one query in flight */
} cg_db_conn_state_t;

typedef struct {
    cg_db_t             *db;
    int                  index;
    cg_db_conn_state_t   state;
    PGconn              *pg;
    cg_db_query_t       *query;        /* in flight, while BUSY */
    PGresult            *result;       /* the result to hand to query->cb */

    struct event        *io;
    int                  io_fd;
    short                io_what;
    struct event        *timer;        /* backoff, connect or query timeout */

    int                  backoff_ms;
    int                  failures;     /* attempts failed since last up */
    char                 reason[CG_DB_REASON_MAX];  /* last logged failure */
} cg_db_conn_t;

struct cg_db_s {
    struct event_base   *base;
    char                *conninfo;
    cg_db_conn_t        *conns;
    int                  nconns;
    int                  up;           /* connections READY or BUSY */
    int                  closing;

    cg_db_query_t       *head;
    cg_db_query_t       *tail;
    int                  queued;
    struct event        *sweep;        /* fails queries queued too long */
    struct event        *kick;         /* sends queued queries from the loop */
};

static void cg_db_conn_start(cg_db_conn_t *c);
static void cg_db_conn_fail(cg_db_conn_t *c, const char *reason);
static void cg_db_dispatch(cg_db_t *db);
static void cg_db_conn_io(evutil_socket_t fd, short what, void *arg);


static int64_t
cg_db_now_ms(void)
{
    struct timeval  tv;

    gettimeofday(&tv, NULL);

    return (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;
}


static void
cg_db_query_free(cg_db_query_t *q)
{
    int  i;

    if (q == NULL) {
        return;
    }

    for (i = 0; i < q->nparams; i++) {
        free(q->values[i]);
    }

    free(q->values);
    free(q->copy);
    free(q->sql);
    free(q);
}


/* Calls the query's callback with an error, then frees the query. */
static void
cg_db_query_abort(cg_db_query_t *q, const char *error)
{
    q->cb(NULL, error, q->arg);
    cg_db_query_free(q);
}


/* Copies a libpq message without its trailing newline. */
static void
cg_db_copy_reason(char *dst, size_t size, const char *msg)
{
    size_t  len;

    if (msg == NULL || *msg == '\0') {
        msg = "unknown error";
    }

    len = strcspn(msg, "\n");
    if (len >= size) {
        len = size - 1;
    }

    memcpy(dst, msg, len);
    dst[len] = '\0';
}


/* Watches the connection's socket for what (EV_READ and/or EV_WRITE). */
static int
cg_db_conn_watch(cg_db_conn_t *c, short what, event_callback_fn handler)
{
    int  fd = PQsocket(c->pg);

    if (fd < 0) {
        return -1;
    }

    if (c->io_fd == fd && c->io_what == what) {
        return 0;
    }

    event_del(c->io);

    if (event_assign(c->io, c->db->base, fd, what | EV_PERSIST, handler, c)
        != 0
        || event_add(c->io, NULL) != 0)
    {
        c->io_fd = -1;
        return -1;
    }

    c->io_fd = fd;
    c->io_what = what;

    return 0;
}


static void
cg_db_conn_unwatch(cg_db_conn_t *c)
{
    event_del(c->io);
    c->io_fd = -1;
    c->io_what = 0;
}


static void
cg_db_conn_set_timer(cg_db_conn_t *c, int ms)
{
    struct timeval  tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;

    evtimer_del(c->timer);
    evtimer_add(c->timer, &tv);
}


static void
cg_db_notice(void *arg, const char *message)
{
    (void) arg;

    cg_log_debug(NULL, "database notice: %.*s",
                 (int) strcspn(message, "\n"), message);
}


/* Waits backoff_ms, doubled after each failure, with up to half as jitter. */
static int
cg_db_conn_next_delay(cg_db_conn_t *c)
{
    if (c->backoff_ms == 0) {
        c->backoff_ms = CG_DB_BACKOFF_MIN_MS;

    } else if (c->backoff_ms < CG_DB_BACKOFF_MAX_MS) {
        c->backoff_ms *= 2;
        if (c->backoff_ms > CG_DB_BACKOFF_MAX_MS) {
            c->backoff_ms = CG_DB_BACKOFF_MAX_MS;
        }
    }

    return c->backoff_ms / 2 + random() % (c->backoff_ms / 2 + 1);
}


/*
 * Closes the connection after a failure and schedules a reconnect. The
 * query in flight, if any, gets the error. A failure is logged at error
 * level when the connection was up or the reason changed, else at debug,
 * so a long outage logs once per cause instead of once per attempt.
 */
static void
cg_db_conn_fail(cg_db_conn_t *c, const char *reason)
{
    cg_db_query_t  *q;
    char            msg[CG_DB_REASON_MAX], error[CG_DB_REASON_MAX + 32];
    int             was_up, delay;

    cg_db_copy_reason(msg, sizeof(msg), reason);

    was_up = c->state == CG_DB_CONN_READY || c->state == CG_DB_CONN_BUSY;
    if (was_up) {
        c->db->up--;
    }

    q = c->query;
    c->query = NULL;
    if (c->result != NULL) {
        PQclear(c->result);
        c->result = NULL;
    }

    cg_db_conn_unwatch(c);
    PQfinish(c->pg);
    c->pg = NULL;
    c->failures++;
    c->state = CG_DB_CONN_BACKOFF;

    delay = cg_db_conn_next_delay(c);
    cg_db_conn_set_timer(c, delay);

    if (was_up || strcmp(c->reason, msg) != 0) {
        cg_log_error(NULL, "database connection %d %s: %s, retrying in %d ms",
                     c->index, was_up ? "lost" : "failed", msg, delay);
        memcpy(c->reason, msg, sizeof(msg));

    } else {
        cg_log_debug(NULL, "database connection %d failed again "
                     "(attempt %d): %s, retrying in %d ms",
                     c->index, c->failures, msg, delay);
    }

    if (q != NULL) {
        snprintf(error, sizeof(error), "database connection lost: %s", msg);
        cg_db_query_abort(q, error);
    }
}


static void
cg_db_conn_up(cg_db_conn_t *c)
{
    if (PQsetnonblocking(c->pg, 1) != 0) {
        cg_db_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }

    evtimer_del(c->timer);
    c->state = CG_DB_CONN_READY;
    c->db->up++;

    if (c->failures > 0) {
        cg_log_info(NULL, "database connection %d is back after %d failed "
                    "attempts", c->index, c->failures);
    } else {
        cg_log_info(NULL, "database connection %d is up", c->index);
    }

    c->failures = 0;
    c->backoff_ms = 0;
    c->reason[0] = '\0';

    c->io_fd = -1;
    if (cg_db_conn_watch(c, EV_READ, cg_db_conn_io) != 0) {
        cg_db_conn_fail(c, "cannot watch the connection's socket");
        return;
    }

    cg_db_dispatch(c->db);
}


static void
cg_db_conn_connecting(evutil_socket_t fd, short what, void *arg)
{
    cg_db_conn_t  *c = arg;
    short          next;

    (void) fd;
    (void) what;

    switch (PQconnectPoll(c->pg)) {

    case PGRES_POLLING_OK:
        cg_db_conn_up(c);
        return;

    case PGRES_POLLING_READING:
        next = EV_READ;
        break;

    case PGRES_POLLING_WRITING:
        next = EV_WRITE;
        break;

    default:
        cg_db_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }

    /* libpq may have moved to a new socket, even one with the same number. */
    c->io_fd = -1;
    if (cg_db_conn_watch(c, next, cg_db_conn_connecting) != 0) {
        cg_db_conn_fail(c, "cannot watch the connection's socket");
    }
}


/*
 * The connection string is expanded in place of dbname, and client_encoding
 * comes after it, so it overrides a client_encoding in the string.
 */
static const char *const  cg_db_connect_keywords[] = {
    "dbname", "client_encoding", NULL
};


PGconn *
cg_db_connect_start(const char *conninfo)
{
    const char  *values[] = { conninfo, "UTF8", NULL };

    return PQconnectStartParams(cg_db_connect_keywords, values, 1);
}


PGconn *
cg_db_connect(const char *conninfo)
{
    const char  *values[] = { conninfo, "UTF8", NULL };

    return PQconnectdbParams(cg_db_connect_keywords, values, 1);
}


int
cg_db_conninfo_check(const char *conninfo, char *err, size_t err_size)
{
    PQconninfoOption  *options, *o;
    char              *message = NULL;

    /*
     * libpq expands a dbname into a connection string only when it contains
     * "=" or starts with a URI prefix (libpq docs, "dbname"). Any other
     * value is a database name.
     */
    if (strncmp(conninfo, "postgresql://", 13) != 0
        && strncmp(conninfo, "postgres://", 11) != 0
        && strchr(conninfo, '=') == NULL)
    {
        return 0;
    }

    options = PQconninfoParse(conninfo, &message);

    if (options != NULL) {
        for (o = options; o->keyword != NULL; o++) {
            if (o->val != NULL) {
                OPENSSL_cleanse(o->val, strlen(o->val));
            }
        }
        PQconninfoFree(options);
        return 0;
    }

    if (message == NULL) {
        snprintf(err, err_size, "out of memory while parsing DATABASE_URL");
        return -1;
    }

    OPENSSL_cleanse(message, strlen(message));
    PQfreemem(message);

    snprintf(err, err_size, "invalid DATABASE_URL: libpq cannot parse it. "
             "In a postgresql:// URI, write each '%%' of the password as "
             "%%25, and in the keyword=value form, put a value with spaces "
             "in single quotes. libpq's message is not shown because it "
             "may quote the password");
    return -1;
}


static void
cg_db_conn_start(cg_db_conn_t *c)
{
    /* NOTE: libpq resolves a host name here, blocking; hostaddr avoids it. */
    c->pg = cg_db_connect_start(c->db->conninfo);
    if (c->pg == NULL) {
        cg_db_conn_fail(c, "out of memory");
        return;
    }

    if (PQstatus(c->pg) == CONNECTION_BAD) {
        cg_db_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }

    PQsetNoticeProcessor(c->pg, cg_db_notice, NULL);

    /* libpq applies connect_timeout only to blocking connects. */
    c->state = CG_DB_CONN_CONNECTING;
    cg_db_conn_set_timer(c, CG_DB_CONNECT_TIMEOUT_MS);

    c->io_fd = -1;
    if (cg_db_conn_watch(c, EV_WRITE, cg_db_conn_connecting) != 0) {
        cg_db_conn_fail(c, "cannot watch the connection's socket");
    }
}


static void
cg_db_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    cg_db_conn_t  *c = arg;

    (void) fd;
    (void) what;

    switch (c->state) {

    case CG_DB_CONN_IDLE:
    case CG_DB_CONN_BACKOFF:
        cg_db_conn_start(c);
        break;

    case CG_DB_CONN_CONNECTING:
        cg_db_conn_fail(c, "connect timed out after "
                        CG_DB_STR(CG_DB_CONNECT_TIMEOUT_MS) " ms");
        break;

    case CG_DB_CONN_BUSY:
        cg_db_conn_fail(c, "query timed out after "
                        CG_DB_STR(CG_DB_QUERY_TIMEOUT_MS) " ms");
        break;

    default:
        break;
    }
}


/* Hands the finished query its result, then takes the next one. */
static void
cg_db_conn_complete(cg_db_conn_t *c)
{
    cg_db_query_t   *q = c->query;
    PGresult        *res = c->result;
    const char      *error = NULL;
    char             msg[CG_DB_REASON_MAX];
    ExecStatusType   status;

    c->query = NULL;
    c->result = NULL;
    c->state = CG_DB_CONN_READY;
    evtimer_del(c->timer);

    if (res == NULL) {
        error = "query returned no result";

    } else {
        status = PQresultStatus(res);
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
            cg_db_copy_reason(msg, sizeof(msg), PQresultErrorMessage(res));
            error = msg;
        }
    }

    q->cb(res, error, q->arg);
    PQclear(res);
    cg_db_query_free(q);

    if (PQstatus(c->pg) == CONNECTION_BAD) {
        cg_db_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }

    cg_db_dispatch(c->db);
}


/*
 * Sends the rows of a COPY ... FROM STDIN once the server is ready for them.
 * libpq grows its output buffer for the whole payload, so only a lack of
 * memory stops PQputCopyData(). What the socket does not take at once is
 * flushed from the loop.
 */
static int
cg_db_conn_put_copy(cg_db_conn_t *c)
{
    cg_db_query_t  *q = c->query;
    int             rc;

    if (q->copy_len > 0
        && PQputCopyData(c->pg, q->copy, (int) q->copy_len) != 1)
    {
        return -1;
    }

    if (PQputCopyEnd(c->pg, NULL) != 1) {
        return -1;
    }

    rc = PQflush(c->pg);
    if (rc == -1) {
        return -1;
    }

    return cg_db_conn_watch(c, rc ? EV_READ | EV_WRITE : EV_READ,
                            cg_db_conn_io);
}


/* Collects results; keeps the first error, or else the last result. */
static void
cg_db_conn_read_results(cg_db_conn_t *c)
{
    PGresult        *res;
    ExecStatusType   status;

    while (!PQisBusy(c->pg)) {
        res = PQgetResult(c->pg);
        if (res == NULL) {
            cg_db_conn_complete(c);
            return;
        }

        if (PQresultStatus(res) == PGRES_COPY_IN) {
            PQclear(res);

            if (c->query->copy == NULL || cg_db_conn_put_copy(c) != 0) {
                cg_db_conn_fail(c, c->query->copy == NULL
                                   ? "unexpected COPY FROM STDIN"
                                   : PQerrorMessage(c->pg));
                return;
            }
            continue;
        }

        if (c->result != NULL) {
            status = PQresultStatus(c->result);
            if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
                PQclear(res);
                continue;
            }
            PQclear(c->result);
        }

        c->result = res;
    }
}


static void
cg_db_conn_io(evutil_socket_t fd, short what, void *arg)
{
    cg_db_conn_t  *c = arg;
    PGnotify      *notify;
    int            rc;

    (void) fd;

    if (what & EV_WRITE) {
        rc = PQflush(c->pg);
        if (rc == -1) {
            cg_db_conn_fail(c, PQerrorMessage(c->pg));
            return;
        }

        if (rc == 0 && cg_db_conn_watch(c, EV_READ, cg_db_conn_io) != 0) {
            cg_db_conn_fail(c, "cannot watch the connection's socket");
            return;
        }
    }

    if (!(what & EV_READ)) {
        return;
    }

    if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
        cg_db_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }

    while ((notify = PQnotifies(c->pg)) != NULL) {
        PQfreemem(notify);
    }

    if (c->state == CG_DB_CONN_BUSY) {
        cg_db_conn_read_results(c);
    }
}


/* Sends q on the idle connection c; a send that fails puts q back. */
static void
cg_db_conn_send(cg_db_conn_t *c, cg_db_query_t *q)
{
    cg_db_t  *db = c->db;
    int       rc;

    if (q->copy != NULL ? !PQsendQuery(c->pg, q->sql)
                        : !PQsendQueryParams(c->pg, q->sql, q->nparams, NULL,
                              (const char *const *) q->values, NULL, NULL, 0))
    {
        q->next = db->head;
        db->head = q;
        if (db->tail == NULL) {
            db->tail = q;
        }
        db->queued++;

        cg_db_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }

    c->query = q;
    c->state = CG_DB_CONN_BUSY;
    cg_db_conn_set_timer(c, CG_DB_QUERY_TIMEOUT_MS);

    rc = PQflush(c->pg);
    if (rc == -1) {
        cg_db_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }

    if (cg_db_conn_watch(c, rc ? EV_READ | EV_WRITE : EV_READ, cg_db_conn_io)
        != 0)
    {
        cg_db_conn_fail(c, "cannot watch the connection's socket");
    }
}


static cg_db_query_t *
cg_db_pop(cg_db_t *db)
{
    cg_db_query_t  *q = db->head;

    if (q != NULL) {
        db->head = q->next;
        if (db->head == NULL) {
            db->tail = NULL;
        }
        db->queued--;
        q->next = NULL;
    }

    return q;
}


static void
cg_db_dispatch(cg_db_t *db)
{
    cg_db_conn_t  *c;
    int            i;

    for (i = 0; i < db->nconns && db->head != NULL && !db->closing; i++) {
        c = &db->conns[i];

        if (c->state == CG_DB_CONN_READY) {
            cg_db_conn_send(c, cg_db_pop(db));
        }
    }
}


static void
cg_db_kick(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;

    cg_db_dispatch(arg);
}


/* Fails the queries that waited in the queue longer than the timeout. */
static void
cg_db_sweep(evutil_socket_t fd, short what, void *arg)
{
    cg_db_t        *db = arg;
    cg_db_query_t  *q, **link, *expired = NULL, **expired_tail = &expired;
    int64_t         deadline = cg_db_now_ms() - CG_DB_QUEUE_TIMEOUT_MS;
    const char     *error;

    (void) fd;
    (void) what;

    db->tail = NULL;

    for (link = &db->head; (q = *link) != NULL; /* void */) {
        if (q->queued_ms > deadline) {
            db->tail = q;
            link = &q->next;
            continue;
        }

        *link = q->next;
        q->next = NULL;
        *expired_tail = q;
        expired_tail = &q->next;
        db->queued--;
    }

    error = db->up ? "database query waited in the queue for more than "
                     CG_DB_STR(CG_DB_QUEUE_TIMEOUT_MS) " ms"
                   : "database unavailable";

    while ((q = expired) != NULL) {
        expired = q->next;
        cg_db_query_abort(q, error);
    }
}


cg_db_t *
cg_db_new(struct event_base *base, const char *conninfo, int connections)
{
    cg_db_t         *db;
    cg_db_conn_t    *c;
    struct timeval   sweep;
    int              i;

    db = calloc(1, sizeof(cg_db_t));
    if (db == NULL) {
        return NULL;
    }

    db->base = base;
    db->nconns = connections > 0 ? connections : 1;
    db->conninfo = strdup(conninfo);
    db->conns = calloc(db->nconns, sizeof(cg_db_conn_t));
    db->sweep = event_new(base, -1, EV_PERSIST, cg_db_sweep, db);
    db->kick = event_new(base, -1, 0, cg_db_kick, db);
    if (db->conninfo == NULL || db->conns == NULL || db->sweep == NULL
        || db->kick == NULL)
    {
        goto fail;
    }

    for (i = 0; i < db->nconns; i++) {
        c = &db->conns[i];
        c->db = db;
        c->index = i;
        c->io_fd = -1;
        c->io = event_new(base, -1, 0, cg_db_conn_io, c);
        c->timer = evtimer_new(base, cg_db_conn_timer, c);
        if (c->io == NULL || c->timer == NULL) {
            goto fail;
        }

        /* The first connect starts from the loop, not from this call. */
        cg_db_conn_set_timer(c, 0);
    }

    sweep.tv_sec = 0;
    sweep.tv_usec = CG_DB_SWEEP_MS * 1000;
    evtimer_add(db->sweep, &sweep);

    return db;

fail:

    cg_db_free(db);
    return NULL;
}


/* Appends q to the queue, to be sent from the loop. */
static void
cg_db_enqueue(cg_db_t *db, cg_db_query_t *q)
{
    q->queued_ms = cg_db_now_ms();

    if (db->tail != NULL) {
        db->tail->next = q;
    } else {
        db->head = q;
    }
    db->tail = q;
    db->queued++;

    /* Sending from the loop keeps callbacks from running inside this call. */
    event_active(db->kick, EV_TIMEOUT, 1);
}


int
cg_db_query(cg_db_t *db, const char *sql, int nparams,
    const char *const *values, cg_db_result_pt cb, void *arg)
{
    cg_db_query_t  *q;
    int             i;

    if (db->closing || db->queued >= CG_DB_QUEUE_MAX) {
        return -1;
    }

    q = calloc(1, sizeof(cg_db_query_t));
    if (q == NULL) {
        return -1;
    }

    q->sql = strdup(sql);
    q->values = calloc(nparams > 0 ? nparams : 1, sizeof(char *));
    if (q->sql == NULL || q->values == NULL) {
        goto fail;
    }

    for (q->nparams = 0; q->nparams < nparams; q->nparams++) {
        i = q->nparams;
        if (values[i] != NULL && (q->values[i] = strdup(values[i])) == NULL) {
            goto fail;
        }
    }

    q->cb = cb;
    q->arg = arg;
    cg_db_enqueue(db, q);

    return 0;

fail:

    cg_db_query_free(q);
    return -1;
}


int
cg_db_copy(cg_db_t *db, const char *sql, const char *rows, size_t len,
    cg_db_result_pt cb, void *arg)
{
    cg_db_query_t  *q;

    if (db->closing || db->queued >= CG_DB_QUEUE_MAX || len > INT_MAX) {
        return -1;
    }

    q = calloc(1, sizeof(cg_db_query_t));
    if (q == NULL) {
        return -1;
    }

    q->sql = strdup(sql);
    q->copy = malloc(len > 0 ? len : 1);
    if (q->sql == NULL || q->copy == NULL) {
        cg_db_query_free(q);
        return -1;
    }

    if (len > 0) {
        memcpy(q->copy, rows, len);
    }
    q->copy_len = len;
    q->cb = cb;
    q->arg = arg;
    cg_db_enqueue(db, q);

    return 0;
}


int
cg_db_is_up(cg_db_t *db)
{
    return db->up > 0;
}


void
cg_db_free(cg_db_t *db)
{
    cg_db_conn_t   *c;
    cg_db_query_t  *q;
    int             i;

    if (db == NULL) {
        return;
    }

    db->closing = 1;

    for (i = 0; db->conns != NULL && i < db->nconns; i++) {
        c = &db->conns[i];

        q = c->query;
        c->query = NULL;
        PQclear(c->result);
        PQfinish(c->pg);

        if (c->io != NULL) {
            event_free(c->io);
        }
        if (c->timer != NULL) {
            event_free(c->timer);
        }

        if (q != NULL) {
            cg_db_query_abort(q, "shutting down");
        }
    }

    while ((q = cg_db_pop(db)) != NULL) {
        cg_db_query_abort(q, "shutting down");
    }

    if (db->sweep != NULL) {
        event_free(db->sweep);
    }
    if (db->kick != NULL) {
        event_free(db->kick);
    }

    free(db->conns);
    free(db->conninfo);
    free(db);
}



/*
 * Runs sql with at most one parameter and clears the result unless out is
 * given. Returns 0, or -1 with the server's message in error.
 */
static int
cg_db_exec(PGconn *pg, const char *sql, const char *param, PGresult **out,
    char *error, size_t size)
{
    PGresult        *res;
    ExecStatusType   status;

    if (param != NULL) {
        res = PQexecParams(pg, sql, 1, NULL, &param, NULL, NULL, 0);
    } else {
        res = PQexec(pg, sql);
    }

    status = PQresultStatus(res);

    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        cg_db_copy_reason(error, size,
                          res ? PQresultErrorMessage(res) : PQerrorMessage(pg));
        PQclear(res);
        return -1;
    }

    if (out != NULL) {
        *out = res;
    } else {
        PQclear(res);
    }

    return 0;
}


/* Reads a whole file into a NUL-terminated malloc'ed string. */
static char *
cg_db_read_file(const char *path)
{
    FILE    *f;
    char    *text = NULL;
    long     size;

    f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }

    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        goto done;
    }

    text = malloc(size + 1);
    if (text == NULL) {
        goto done;
    }

    if (fread(text, 1, size, f) != (size_t) size) {
        free(text);
        text = NULL;
        goto done;
    }

    text[size] = '\0';

done:

    fclose(f);
    return text;
}


static int
cg_db_is_migration(const struct dirent *entry)
{
    const char  *name = entry->d_name;
    size_t       len = strlen(name);

    return name[0] >= '0' && name[0] <= '9'
           && len > 4 && strcmp(name + len - 4, ".sql") == 0;
}


/*
 * Applies one migration file in its own transaction, unless
 * schema_migrations already records its version (the name without ".sql").
 * Returns 0 or -1 (logged with the file name and the server's message).
 */
static int
cg_db_apply(PGconn *pg, const char *dir, const char *name)
{
    char       version[256], path[4096], error[CG_DB_REASON_MAX];
    char      *sql = NULL;
    PGresult  *res;
    int        seen;

    snprintf(version, sizeof(version), "%.*s", (int) strlen(name) - 4, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);

    if (cg_db_exec(pg, "SELECT 1 FROM schema_migrations WHERE version = $1",
                   version, &res, error, sizeof(error)) != 0)
    {
        goto fail;
    }

    seen = PQntuples(res) > 0;
    PQclear(res);

    if (seen) {
        cg_log_debug(NULL, "migration \"%s\" already applied", version);
        return 0;
    }

    sql = cg_db_read_file(path);
    if (sql == NULL) {
        cg_log_error(NULL, "migration \"%s\" failed: cannot read \"%s\": %s",
                     name, path, strerror(errno));
        return -1;
    }

    if (cg_db_exec(pg, "BEGIN", NULL, NULL, error, sizeof(error)) != 0
        || cg_db_exec(pg, sql, NULL, NULL, error, sizeof(error)) != 0
        || cg_db_exec(pg, "INSERT INTO schema_migrations (version, applied_at)"
                      " VALUES ($1, now())", version, NULL,
                      error, sizeof(error)) != 0
        || cg_db_exec(pg, "COMMIT", NULL, NULL, error, sizeof(error)) != 0)
    {
        PQclear(PQexec(pg, "ROLLBACK"));
        goto fail;
    }

    cg_log_info(NULL, "applied migration \"%s\"", version);
    free(sql);

    return 0;

fail:

    cg_log_error(NULL, "migration \"%s\" failed: %s", name, error);
    free(sql);

    return -1;
}


/*
 * The advisory lock key that serializes migrations across workers: any
 * constant works, as long as every worker uses the same one.
 */
#define CG_DB_MIGRATE_LOCK  "7306313227310221139"

int
cg_db_migrate(const char *conninfo, const char *sql_dir)
{
    struct dirent  **names = NULL;
    PGconn          *pg;
    char             error[CG_DB_REASON_MAX];
    int              n = 0, i, rc = -1;

    pg = cg_db_connect(conninfo);
    if (PQstatus(pg) != CONNECTION_OK) {
        cg_db_copy_reason(error, sizeof(error), PQerrorMessage(pg));
        cg_log_error(NULL, "connect to database for migrations failed: %s",
                     error);
        goto done;
    }

    PQsetNoticeProcessor(pg, cg_db_notice, NULL);

    if (cg_db_exec(pg, "SELECT pg_advisory_lock(" CG_DB_MIGRATE_LOCK ")",
                   NULL, NULL, error, sizeof(error)) != 0
        || cg_db_exec(pg, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                      " version text PRIMARY KEY,"
                      " applied_at timestamptz NOT NULL DEFAULT now())",
                      NULL, NULL, error, sizeof(error)) != 0)
    {
        cg_log_error(NULL, "prepare migrations failed: %s", error);
        goto done;
    }

    n = scandir(sql_dir, &names, cg_db_is_migration, alphasort);
    if (n < 0) {
        cg_log_error(NULL, "read migrations folder \"%s\" failed: %s",
                     sql_dir, strerror(errno));
        goto done;
    }

    for (i = 0; i < n; i++) {
        if (cg_db_apply(pg, sql_dir, names[i]->d_name) != 0) {
            goto done;
        }
    }

    if (cg_db_exec(pg, "SELECT chatgate_ensure_log_partitions("
                   CG_DB_STR(CG_DB_PARTITION_DAYS) ")",
                   NULL, NULL, error, sizeof(error)) != 0)
    {
        cg_log_error(NULL, "create log partitions failed: %s", error);
        goto done;
    }

    cg_log_info(NULL, "database schema is up to date (%d migration files)", n);
    rc = 0;

done:

    for (i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);

    /* Closing the session releases the advisory lock. */
    PQfinish(pg);

    return rc;
}
