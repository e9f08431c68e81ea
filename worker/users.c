/*
 * Password hashing threads and the "user" commands.
 *
 * The hasher runs scrypt on a few threads so the event loop never waits
 * for it. Jobs go to the threads through a mutex-guarded queue; a finished
 * job's pointer comes back through a pipe that the loop watches, so every
 * callback runs on the loop thread.
 */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libpq-fe.h>

#include "db.h"
#include "log.h"
#include "password.h"
#include "secret.h"
#include "users.h"
#include "vault.h"

#define CG_HASHER_THREADS_MAX  8
#define CG_HASHER_QUEUE_MAX    64      /* waiting jobs; more is a 503 */

typedef struct cg_hasher_job_s  cg_hasher_job_t;

/* One job; owned by the queue, then a thread, then the pipe, then the loop. */
struct cg_hasher_job_s {
    cg_hasher_job_t    *next;
    int                 verify;
    char               *password;      /* secret memory, len + 1 bytes */
    size_t              len;
    char                encoded[CG_PASSWORD_ENCODED_MAX];   /* in or out */
    int                 has_encoded;
    int                 result;
    cg_hasher_done_pt   done;
    void               *arg;
};

struct cg_hasher_s {
    pthread_mutex_t     lock;
    pthread_cond_t      ready;
    cg_hasher_job_t    *head;
    cg_hasher_job_t    *tail;
    int                 queued;
    int                 stop;
    pthread_t           threads[CG_HASHER_THREADS_MAX];
    int                 nthreads;
    int                 pipe[2];
    struct event       *done_event;
};

static void *cg_hasher_thread(void *arg);
static void cg_hasher_done(evutil_socket_t fd, short events, void *arg);
static void cg_hasher_job_free(cg_hasher_job_t *job);


cg_hasher_t *
cg_hasher_new(struct event_base *base, int threads)
{
    cg_hasher_t  *h;

    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }

    h->pipe[0] = h->pipe[1] = -1;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->ready, NULL);

    if (pipe2(h->pipe, O_CLOEXEC) != 0) {
        cg_log_error(NULL, "cannot create the password hashing pipe: %s",
                     strerror(errno));
        goto fail;
    }
    evutil_make_socket_nonblocking(h->pipe[0]);

    h->done_event = event_new(base, h->pipe[0], EV_READ | EV_PERSIST,
                              cg_hasher_done, h);
    if (h->done_event == NULL || event_add(h->done_event, NULL) != 0) {
        cg_log_error(NULL, "cannot watch the password hashing pipe");
        goto fail;
    }

    if (threads > CG_HASHER_THREADS_MAX) {
        threads = CG_HASHER_THREADS_MAX;
    }

    for (h->nthreads = 0; h->nthreads < threads; h->nthreads++) {
        if (pthread_create(&h->threads[h->nthreads], NULL, cg_hasher_thread,
                           h) != 0)
        {
            cg_log_error(NULL, "cannot start a password hashing thread");
            goto fail;
        }
    }

    return h;

fail:

    cg_hasher_free(h);
    return NULL;
}


void
cg_hasher_free(cg_hasher_t *h)
{
    cg_hasher_job_t  *job;
    int               i;
    ssize_t           n;

    if (h == NULL) {
        return;
    }

    pthread_mutex_lock(&h->lock);
    h->stop = 1;
    pthread_cond_broadcast(&h->ready);
    pthread_mutex_unlock(&h->lock);

    for (i = 0; i < h->nthreads; i++) {
        pthread_join(h->threads[i], NULL);
    }

    while ((job = h->head) != NULL) {
        h->head = job->next;
        cg_hasher_job_free(job);
    }

    /*
     * NOTE: a finished job's callback argument (an admin request context)
     * is not freed here, because the request it points to is gone already.
     */
    if (h->pipe[0] != -1) {
        while ((n = read(h->pipe[0], &job, sizeof(job))) == sizeof(job)) {
            cg_hasher_job_free(job);
        }
        close(h->pipe[0]);
        close(h->pipe[1]);
    }

    if (h->done_event != NULL) {
        event_free(h->done_event);
    }

    pthread_cond_destroy(&h->ready);
    pthread_mutex_destroy(&h->lock);
    free(h);
}


static int
cg_hasher_push(cg_hasher_t *h, int verify, const char *password, size_t len,
    const char *encoded, cg_hasher_done_pt done, void *arg)
{
    cg_hasher_job_t  *job;

    job = calloc(1, sizeof(*job));
    if (job == NULL) {
        return -1;
    }

    job->verify = verify;
    job->len = len;
    job->done = done;
    job->arg = arg;
    job->password = cg_secret_strndup(password, len);

    if (encoded != NULL) {
        snprintf(job->encoded, sizeof(job->encoded), "%s", encoded);
        job->has_encoded = strlen(encoded) < sizeof(job->encoded);
    }

    pthread_mutex_lock(&h->lock);

    if (job->password == NULL || h->queued >= CG_HASHER_QUEUE_MAX) {
        pthread_mutex_unlock(&h->lock);
        cg_hasher_job_free(job);
        return -1;
    }

    if (h->tail != NULL) {
        h->tail->next = job;
    } else {
        h->head = job;
    }
    h->tail = job;
    h->queued++;

    pthread_cond_signal(&h->ready);
    pthread_mutex_unlock(&h->lock);

    return 0;
}


int
cg_hasher_verify(cg_hasher_t *h, const char *password, size_t len,
    const char *encoded, cg_hasher_done_pt done, void *arg)
{
    return cg_hasher_push(h, 1, password, len, encoded, done, arg);
}


int
cg_hasher_hash(cg_hasher_t *h, const char *password, size_t len,
    cg_hasher_done_pt done, void *arg)
{
    return cg_hasher_push(h, 0, password, len, NULL, done, arg);
}


/* Runs one job: a wrong or malformed hash and an unknown user all cost one scrypt. */
static void
cg_hasher_run(cg_hasher_job_t *job)
{
    if (!job->verify) {
        job->result = cg_password_hash(job->password, job->len, job->encoded,
                                       sizeof(job->encoded));
    } else if (!job->has_encoded) {
        job->result = cg_password_verify_dummy(job->password, job->len);
        job->result = 0;
    } else {
        job->result = cg_password_verify(job->password, job->len,
                                         job->encoded);
        if (job->result < 0) {
            cg_password_verify_dummy(job->password, job->len);
            job->result = 0;
        }
    }

    cg_secret_free(job->password, job->len + 1);
    job->password = NULL;
}


static void *
cg_hasher_thread(void *arg)
{
    cg_hasher_t      *h = arg;
    cg_hasher_job_t  *job;

    for ( ;; ) {
        pthread_mutex_lock(&h->lock);
        while (h->head == NULL && !h->stop) {
            pthread_cond_wait(&h->ready, &h->lock);
        }
        if (h->stop) {
            pthread_mutex_unlock(&h->lock);
            return NULL;
        }

        job = h->head;
        h->head = job->next;
        if (h->head == NULL) {
            h->tail = NULL;
        }
        h->queued--;
        pthread_mutex_unlock(&h->lock);

        cg_hasher_run(job);

        /* A pointer is far below PIPE_BUF, so the write is atomic. */
        if (write(h->pipe[1], &job, sizeof(job)) != sizeof(job)) {
            cg_log_error(NULL, "password hashing pipe write failed: %s",
                         strerror(errno));
            cg_hasher_job_free(job);
        }
    }
}


static void
cg_hasher_done(evutil_socket_t fd, short events, void *arg)
{
    cg_hasher_job_t  *job;

    (void) events;
    (void) arg;

    while (read(fd, &job, sizeof(job)) == sizeof(job)) {
        if (job->verify) {
            job->done(job->result, NULL, job->arg);
        } else {
            job->done(job->result, job->result == 0 ? job->encoded : NULL,
                      job->arg);
        }
        cg_hasher_job_free(job);
    }
}


static void
cg_hasher_job_free(cg_hasher_job_t *job)
{
    if (job->password != NULL) {
        cg_secret_free(job->password, job->len + 1);
    }
    explicit_bzero(job->encoded, sizeof(job->encoded));
    free(job);
}


int
cg_users_email(const char *email, char *out, size_t size)
{
    const char  *at;
    size_t       len, i;

    len = strlen(email);
    at = strchr(email, '@');

    if (len < 3 || len > 254 || len >= size || at == NULL || at == email
        || at[1] == '\0' || strchr(at + 1, '@') != NULL)
    {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) email[i] <= 0x20 || (unsigned char) email[i] >= 0x7f) {
            return -1;
        }
        out[i] = (char) tolower((unsigned char) email[i]);
    }
    out[len] = '\0';

    return 0;
}


/* The "user" commands. */

static int
cg_users_exec(PGconn *pg, const char *sql, int n, const char *const *values,
    const char *what)
{
    PGresult  *res;
    int        rows;

    res = PQexecParams(pg, sql, n, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        cg_log_error(NULL, "%s failed: %s", what, PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }

    rows = atoi(PQcmdTuples(res));
    PQclear(res);
    return rows;
}


/* Reads the first line of stdin into secret memory. Returns its length or -1. */
static long
cg_users_read_password(char **password)
{
    size_t   cap = CG_PASSWORD_MAX + 2, len = 0;
    ssize_t  n;
    char    *buf;

    buf = cg_secret_alloc(cap);
    if (buf == NULL) {
        return -1;
    }

    while (len < cap - 1 && (n = read(0, buf + len, cap - 1 - len)) > 0) {
        len += (size_t) n;
        if (memchr(buf, '\n', len) != NULL) {
            break;
        }
    }

    len = strcspn(buf, "\r\n");
    buf[len] = '\0';
    *password = buf;

    return (long) len;
}


static int
cg_users_add(PGconn *pg, const char *email, const char *role)
{
    const char  *values[4];
    char        *password = NULL, hash[CG_PASSWORD_ENCODED_MAX];
    char         id[CG_UUID_LEN + 1];
    long         len;
    int          rc;

    len = cg_users_read_password(&password);
    if (len < CG_USERS_PASSWORD_MIN || len > CG_PASSWORD_MAX) {
        fprintf(stderr, "chatgate-worker: the password on stdin must be %d to "
                "%d bytes long, got %ld\n", CG_USERS_PASSWORD_MIN,
                CG_PASSWORD_MAX, len < 0 ? 0 : len);
        if (password != NULL) {
            cg_secret_free(password, CG_PASSWORD_MAX + 2);
        }
        return 2;
    }

    rc = cg_password_hash(password, (size_t) len, hash, sizeof(hash));
    cg_secret_free(password, CG_PASSWORD_MAX + 2);

    if (rc != 0 || cg_uuid_v4(id) != 0) {
        cg_log_error(NULL, "hashing the password failed");
        return 1;
    }

    values[0] = id;
    values[1] = email;
    values[2] = role;
    values[3] = hash;

    rc = cg_users_exec(pg, "INSERT INTO admin_users (id, email, role, "
                       "password_hash) VALUES ($1, $2, $3, $4) "
                       "ON CONFLICT (email) DO NOTHING", 4, values,
                       "adding the user");
    if (rc == 0) {
        fprintf(stderr, "chatgate-worker: user \"%s\" exists already\n", email);
        return 1;
    }
    if (rc < 0) {
        return 1;
    }

    printf("user %s added: id %s, role %s\n", email, id, role);
    return 0;
}


int
cg_users_command(const char *conninfo, int argc, char **argv,
    const char *role)
{
    PGconn      *pg;
    const char  *values[1];
    char         email[256];
    int          rc;

    if (argc != 2 || (strcmp(argv[0], "add") != 0
                      && strcmp(argv[0], "disable") != 0))
    {
        fprintf(stderr, "chatgate-worker: expected \"user add EMAIL --role "
                "ROLE\" or \"user disable EMAIL\"\n");
        return 2;
    }

    if (cg_users_email(argv[1], email, sizeof(email)) != 0) {
        fprintf(stderr, "chatgate-worker: invalid email \"%s\"\n", argv[1]);
        return 2;
    }

    if (strcmp(argv[0], "add") == 0 && (role == NULL
        || (strcmp(role, "admin") != 0 && strcmp(role, "operator") != 0
            && strcmp(role, "viewer") != 0)))
    {
        fprintf(stderr, "chatgate-worker: \"user add\" needs --role admin, "
                "operator or viewer\n");
        return 2;
    }

    pg = cg_db_connect(conninfo);
    if (PQstatus(pg) != CONNECTION_OK) {
        cg_log_error(NULL, "connect to the database failed: %s",
                     PQerrorMessage(pg));
        PQfinish(pg);
        return 1;
    }

    if (strcmp(argv[0], "add") == 0) {
        rc = cg_users_add(pg, email, role);
    } else {
        values[0] = email;
        rc = cg_users_exec(pg, "UPDATE admin_users SET disabled = true "
                           "WHERE email = $1", 1, values, "disabling the user");
        if (rc == 0) {
            fprintf(stderr, "chatgate-worker: no user \"%s\"\n", email);
        } else if (rc > 0) {
            printf("user %s disabled\n", email);
        }
        rc = rc > 0 ? 0 : 1;
    }

    PQfinish(pg);
    return rc;
}
