/*
 * chatgate-worker: command line, start-up, signals and shutdown.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>

#include "conf.h"
#include "db.h"
#include "http.h"
#include "keys.h"
#include "ratelimit.h"
#include "log.h"
#include "logwriter.h"
#include "revoked.h"
#include "secret.h"
#include "upstream.h"
#include "users.h"

#define CG_VERSION  "0.1.0"

/* maximum time a shutdown waits for the log writer to drain */
#define CG_DRAIN_MAX_MS  30000

#define CG_HASHER_THREADS  2
#define CG_ARGS_MAX        3

typedef struct {
    cg_conf_t        conf;
    struct event_base *base;
    cg_db_t         *db;
    cg_logwriter_t  *logwriter;
    cg_upstream_t   *upstream;
    cg_keys_t       *keys;
    cg_hasher_t     *hasher;
    cg_limits_t     *limits;
    cg_revoked_t    *revoked;
    cg_server_t      server;
    struct event    *sigterm;
    struct event    *sigint;
    struct event    *deadline;     /* bounds the wait for requests, then the drain */
    int              draining;
} cg_main_t;

static int cg_main_serve(cg_main_t *m);
static struct event_base *cg_main_event_base(void);
static int cg_main_setup(cg_main_t *m, cg_vault_kms_key_t *kms);
static void cg_main_teardown(cg_main_t *m);
static void cg_main_signal(evutil_socket_t sig, short events, void *arg);
static void cg_main_deadline(evutil_socket_t fd, short events, void *arg);
static void cg_main_idle(void *arg);
static void cg_main_drained(void *arg);
static void cg_main_arm_deadline(cg_main_t *m, long ms);
static void cg_main_usage(FILE *out);
static void cg_main_skip_gnutls_init(char **argv);
static int cg_main_rekey(cg_main_t *m, const char *new_kms_file);


int
main(int argc, char **argv)
{
    cg_main_t    m;
    const char  *command = NULL, *env_file = NULL, *new_kms_file = NULL;
    const char  *role = NULL;
    char        *args[CG_ARGS_MAX];
    char         err[512];
    int          i, rc, nargs = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cg_main_usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("chatgate-worker %s\n", CG_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "--env-file") == 0 && i + 1 < argc) {
            env_file = argv[++i];
        } else if (strncmp(argv[i], "--env-file=", 11) == 0) {
            env_file = argv[i] + 11;
        } else if (strcmp(argv[i], "--new-kms-key-file") == 0 && i + 1 < argc) {
            new_kms_file = argv[++i];
        } else if (strcmp(argv[i], "--role") == 0 && i + 1 < argc) {
            role = argv[++i];
        } else if (command == NULL && argv[i][0] != '-') {
            command = argv[i];
        } else if (argv[i][0] != '-' && nargs < CG_ARGS_MAX) {
            args[nargs++] = argv[i];
        } else {
            fprintf(stderr, "chatgate-worker: invalid argument \"%s\"\n\n",
                    argv[i]);
            cg_main_usage(stderr);
            return 2;
        }
    }

    if (command == NULL
        || (strcmp(command, "serve") != 0 && strcmp(command, "migrate") != 0
            && strcmp(command, "rekey") != 0 && strcmp(command, "user") != 0))
    {
        fprintf(stderr, "chatgate-worker: expected the command \"serve\", "
                "\"migrate\", \"rekey\" or \"user\"\n\n");
        cg_main_usage(stderr);
        return 2;
    }

    if (strcmp(command, "serve") == 0) {
        cg_main_skip_gnutls_init(argv);
    }

    memset(&m, 0, sizeof(m));

    if (cg_conf_load(&m.conf, env_file, err, sizeof(err)) != 0) {
        cg_log_error(NULL, "%s", err);
        return 1;
    }
    cg_log_level = m.conf.log_level;

    if (m.conf.database_url == NULL) {
        cg_log_error(NULL, "DATABASE_URL is not set: set it to a libpq "
                     "connection string, e.g. postgresql:///chatgate");
        cg_conf_free(&m.conf);
        return 1;
    }

    if (cg_db_conninfo_check(m.conf.database_url, err, sizeof(err)) != 0) {
        cg_log_error(NULL, "%s", err);
        cg_conf_free(&m.conf);
        return 1;
    }

    if (strcmp(command, "migrate") == 0) {
        rc = cg_db_migrate(m.conf.database_url, m.conf.sql_dir) == 0 ? 0 : 1;
    } else if (strcmp(command, "rekey") == 0) {
        rc = cg_main_rekey(&m, new_kms_file);
    } else if (strcmp(command, "user") == 0) {
        rc = cg_users_command(m.conf.database_url, nargs, args, role);
    } else {
        rc = cg_main_serve(&m);
    }

    cg_conf_free(&m.conf);
    return rc;
}


/*
 * Runs the worker again with GNUTLS_NO_IMPLICIT_INIT=1, unless that variable
 * is set already. libcurl links librtmp, which links GnuTLS 3.7, and GnuTLS
 * initializes itself from a library constructor unless the variable is 1.
 * That initialization cost the worker about 0.9 MB of resident memory
 * (VmRSS at idle, with and without the variable) for a library that it
 * never uses. The TLS of the worker, curl and libpq is OpenSSL's, and curl
 * may only speak http and https. The constructor runs before main(), so only
 * a new program image sees the variable. The PID and the arguments stay the
 * same. Code that does use GnuTLS, such as OpenLDAP's TLS, calls
 * gnutls_global_init() itself.
 *
 * NOTE: under valgrind the new image runs outside valgrind unless
 * GNUTLS_NO_IMPLICIT_INIT is set before the start or valgrind is given
 * --trace-children=yes.
 */
static void
cg_main_skip_gnutls_init(char **argv)
{
    if (getenv("GNUTLS_NO_IMPLICIT_INIT") != NULL) {
        return;
    }

    if (setenv("GNUTLS_NO_IMPLICIT_INIT", "1", 1) != 0) {
        return;
    }

    execv("/proc/self/exe", argv);

    cg_log_warn(NULL, "execv() of /proc/self/exe with "
                "GNUTLS_NO_IMPLICIT_INIT=1 failed (%s), so GnuTLS stays "
                "initialized", strerror(errno));
}


static int
cg_main_serve(cg_main_t *m)
{
    cg_vault_kms_key_t  *kms;
    char                 err[256], url[1024];
    int                  rc = 1;
    int                  i;

    signal(SIGPIPE, SIG_IGN);

    /*
     * Stored keys are encrypted under ADMIN_KMS_KEY, so the worker does not
     * start without a valid one, whether or not any key is stored yet.
     */
    if (m->conf.kms_key == NULL) {
        cg_log_error(NULL, "ADMIN_KMS_KEY is not set: set it to 32 random "
                     "bytes as 64 hex characters, e.g. the output of "
                     "\"openssl rand -hex 32\"");
        return 1;
    }
    if (cg_vault_kms_key_parse(m->conf.kms_key, &kms, err, sizeof(err)) != 0) {
        cg_log_error(NULL, "invalid ADMIN_KMS_KEY: %s; set it to 32 random "
                     "bytes as 64 hex characters (openssl rand -hex 32)", err);
        return 1;
    }

    if (cg_secret_disable_core_dumps() != 0) {
        cg_log_warn(NULL, "cannot mark the process not dumpable: %s",
                    strerror(errno));
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cg_log_error(NULL, "curl_global_init() failed");
        return 1;
    }

    if (cg_main_setup(m, kms) != 0) {
        cg_main_teardown(m);
        curl_global_cleanup();
        return 1;
    }

    cg_log_info(NULL, "chatgate-worker %s started: socket \"%s\", pid %d, "
                "default provider \"%s\"", CG_VERSION, m->conf.socket_path,
                (int) getpid(), cg_provider_name(m->conf.default_provider));
    for (i = 0; i < CG_PROVIDER_COUNT; i++) {
        cg_conf_url_for_log(m->conf.base_url[i], url, sizeof(url));
        cg_log_info(NULL, "provider \"%s\" at %s",
                    cg_provider_name((cg_provider_id_t) i), url);
    }

    if (event_base_dispatch(m->base) == -1) {
        cg_log_error(NULL, "event loop failed");
        goto done;
    }

    rc = 0;

done:

    cg_main_teardown(m);
    curl_global_cleanup();

    cg_log_info(NULL, "chatgate-worker stopped, exit status %d", rc);
    return rc;
}


/*
 * Creates the event loop. With epoll, changes to one descriptor within a
 * loop pass are merged into one epoll_ctl(): a request turns its
 * connection's watches off and on several times per pass. After each
 * callback of the bulk priority the loop polls again, so a new request
 * waits for one stream's bulk translation at most.
 */
static struct event_base *
cg_main_event_base(void)
{
    struct event_config  *cfg;
    struct event_base    *base;

    cfg = event_config_new();
    if (cfg == NULL) {
        return NULL;
    }

    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    event_config_set_max_dispatch_interval(cfg, NULL, 1,
                                           CG_LOOP_PRIORITY_BULK);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);

    if (base != NULL
        && event_base_priority_init(base, CG_LOOP_PRIORITIES) != 0)
    {
        event_base_free(base);
        return NULL;
    }

    return base;
}


/* Creates the loop and every component, in dependency order. Takes kms. */
static int
cg_main_setup(cg_main_t *m, cg_vault_kms_key_t *kms)
{
    cg_upstream_conf_t   uc;
    cg_logwriter_conf_t  lc;

    m->base = cg_main_event_base();
    if (m->base == NULL) {
        cg_vault_kms_key_free(kms);
        cg_log_error(NULL, "cannot create the event loop");
        return -1;
    }

    m->db = cg_db_new(m->base, m->conf.database_url, m->conf.db_connections);
    if (m->db == NULL) {
        cg_vault_kms_key_free(kms);
        cg_log_error(NULL, "cannot set up the database connections");
        return -1;
    }

    m->keys = cg_keys_new(m->base, m->db, kms);
    if (m->keys == NULL) {
        cg_vault_kms_key_free(kms);
        cg_log_error(NULL, "cannot set up the key vault");
        return -1;
    }
    cg_keys_load(m->keys);

    m->hasher = cg_hasher_new(m->base, CG_HASHER_THREADS);
    if (m->hasher == NULL) {
        return -1;
    }

    lc.batch_max = m->conf.log_batch;
    lc.flush_ms = m->conf.log_flush_ms;
    lc.queue_max = m->conf.log_queue_max;
    lc.spool_path = m->conf.spool_path;

    m->logwriter = cg_logwriter_new(m->base, m->db, &lc);
    if (m->logwriter == NULL) {
        cg_log_error(NULL, "cannot set up the request log writer");
        return -1;
    }

    uc.connect_timeout_ms = m->conf.connect_timeout_ms;
    uc.request_timeout_ms = m->conf.request_timeout_ms;
    uc.proxy = m->conf.proxy;
    uc.max_connections = m->conf.provider_connections;

    m->upstream = cg_upstream_new(m->base, &uc);
    if (m->upstream == NULL) {
        cg_log_error(NULL, "cannot set up libcurl's multi handle");
        return -1;
    }

    m->limits = cg_limits_new(m->base, m->db, &m->conf);
    if (m->limits == NULL) {
        cg_log_error(NULL, "cannot set up the rate limit sync");
        return -1;
    }

    m->revoked = cg_revoked_new(m->base, m->db, m->conf.limits_sync_ms);
    if (m->revoked == NULL) {
        cg_log_error(NULL, "cannot set up the revoked token ids: out of "
                     "memory");
        return -1;
    }

    m->server.base = m->base;
    m->server.conf = &m->conf;
    m->server.db = m->db;
    m->server.logwriter = m->logwriter;
    m->server.upstream = m->upstream;
    m->server.keys = m->keys;
    m->server.hasher = m->hasher;
    m->server.limits = m->limits;
    m->server.revoked = m->revoked;
    m->server.idle = cg_main_idle;
    m->server.idle_arg = m;

    m->sigterm = evsignal_new(m->base, SIGTERM, cg_main_signal, m);
    m->sigint = evsignal_new(m->base, SIGINT, cg_main_signal, m);
    m->deadline = evtimer_new(m->base, cg_main_deadline, m);
    if (m->sigterm == NULL || m->sigint == NULL || m->deadline == NULL
        || evsignal_add(m->sigterm, NULL) != 0
        || evsignal_add(m->sigint, NULL) != 0)
    {
        cg_log_error(NULL, "cannot install the signal handlers");
        return -1;
    }

    if (cg_http_start(&m->server) != 0) {
        return -1;
    }

    cg_revoked_start(m->revoked);
    cg_limits_start(m->limits);
    return 0;
}


static void
cg_main_teardown(cg_main_t *m)
{
    /* before the server: waiting admin requests get their answer */
    cg_limits_free(m->limits);
    cg_revoked_free(m->revoked);
    cg_http_free(&m->server);
    cg_hasher_free(m->hasher);

    /* NOTE: chats still running after the deadline are dropped unlogged */
    cg_upstream_free(m->upstream);
    cg_logwriter_free(m->logwriter);
    cg_db_free(m->db);
    cg_keys_free(m->keys);

    if (m->sigterm != NULL) {
        event_free(m->sigterm);
    }
    if (m->sigint != NULL) {
        event_free(m->sigint);
    }
    if (m->deadline != NULL) {
        event_free(m->deadline);
    }
    if (m->base != NULL) {
        event_base_free(m->base);
    }
}


/*
 * SIGTERM or SIGINT: stop accepting, let running chats finish (bounded by
 * the request timeout), then drain the log writer. A second signal stops
 * at once.
 */
static void
cg_main_signal(evutil_socket_t sig, short events, void *arg)
{
    cg_main_t  *m = arg;

    (void) events;

    if (m->server.stopping) {
        cg_log_warn(NULL, "received %s again, stopping now with %u requests "
                    "in flight", sig == SIGTERM ? "SIGTERM" : "SIGINT", m->server.in_flight);
        event_base_loopbreak(m->base);
        return;
    }

    cg_log_info(NULL, "received %s, stopping: %u requests in flight",
                sig == SIGTERM ? "SIGTERM" : "SIGINT", m->server.in_flight);

    m->server.stopping = 1;
    cg_http_stop_accepting(&m->server);

    if (m->server.in_flight == 0) {
        cg_main_idle(m);
        return;
    }

    cg_main_arm_deadline(m, m->conf.request_timeout_ms + 5000);
}


static void
cg_main_deadline(evutil_socket_t fd, short events, void *arg)
{
    cg_main_t  *m = arg;

    (void) fd;
    (void) events;

    if (!m->draining) {
        cg_log_warn(NULL, "%u requests still in flight %ld ms after the stop "
                    "signal, stopping anyway", m->server.in_flight,
                    m->conf.request_timeout_ms + 5000);
        cg_main_idle(m);
        return;
    }

    cg_log_error(NULL, "the request log did not drain within %d ms, stopping "
                 "anyway; rows still queued are lost", CG_DRAIN_MAX_MS);
    event_base_loopbreak(m->base);
}


/* No request is running any more: drain the log writer, then leave the loop. */
static void
cg_main_idle(void *arg)
{
    cg_main_t  *m = arg;

    if (m->draining) {
        return;
    }

    m->draining = 1;
    cg_main_arm_deadline(m, CG_DRAIN_MAX_MS);
    cg_logwriter_drain(m->logwriter, cg_main_drained, m);
}


static void
cg_main_drained(void *arg)
{
    cg_main_t  *m = arg;

    cg_log_info(NULL, "request log drained");
    event_base_loopbreak(m->base);
}


static void
cg_main_arm_deadline(cg_main_t *m, long ms)
{
    struct timeval  tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(m->deadline, &tv);
}


static void
cg_main_usage(FILE *out)
{
    fprintf(out,
        "usage: chatgate-worker serve [--env-file FILE]\n"
        "       chatgate-worker migrate [--env-file FILE]\n"
        "       chatgate-worker rekey [--new-kms-key-file FILE] [--env-file FILE]\n"
        "       chatgate-worker user add EMAIL --role ROLE [--env-file FILE]\n"
        "       chatgate-worker user disable EMAIL [--env-file FILE]\n"
        "       chatgate-worker --help | --version\n"
        "\n"
        "serve    answer chat requests on the unix socket CHATGATE_SOCKET\n"
        "migrate  apply the SQL migrations in CHATGATE_SQL_DIR to DATABASE_URL\n"
        "rekey    re-encrypt every stored provider key from ADMIN_KMS_KEY to the\n"
        "         key in FILE (or ADMIN_KMS_KEY_NEW); restart workers afterwards\n"
        "         with the new key as ADMIN_KMS_KEY\n"
        "user     add an admin user (role admin, operator or viewer; the\n"
        "         password, 12 bytes or more, is the first line of stdin), or\n"
        "         disable one\n"
        "\n"
        "--env-file FILE  read KEY=VALUE settings from FILE; variables already\n"
        "                 in the environment take precedence\n"
        "\n"
        "Settings are described in docs/worker.md.\n");
}


/* Reads the new KMS key from new_kms_file or ADMIN_KMS_KEY_NEW and rekeys. */
static int
cg_main_rekey(cg_main_t *m, const char *new_kms_file)
{
    char        *text = NULL;
    const char  *env;
    FILE        *f;
    size_t       n = 0;
    int          rc;

    if (m->conf.kms_key == NULL) {
        cg_log_error(NULL, "ADMIN_KMS_KEY is not set: rekey needs the current "
                     "KMS key in ADMIN_KMS_KEY");
        return 1;
    }

    if (new_kms_file != NULL) {
        f = fopen(new_kms_file, "r");
        text = cg_secret_alloc(256);
        if (f == NULL || text == NULL) {
            cg_log_error(NULL, "cannot read the new KMS key from \"%s\": %s",
                         new_kms_file, f ? "out of memory" : strerror(errno));
            goto done;
        }
        n = fread(text, 1, 255, f);
        fclose(f);
        text[n] = '\0';
        text[strcspn(text, " \t\r\n")] = '\0';
        env = text;
    } else {
        env = getenv("ADMIN_KMS_KEY_NEW");
        if (env == NULL) {
            cg_log_error(NULL, "rekey needs the new KMS key: pass "
                         "--new-kms-key-file FILE or set ADMIN_KMS_KEY_NEW");
            return 2;
        }
    }

    rc = cg_keys_rekey(m->conf.database_url, m->conf.kms_key, env);
    cg_secret_free(text, 256);
    return rc;

done:

    cg_secret_free(text, 256);
    return 1;
}
