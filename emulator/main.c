/*
 * chatgate-emulator entry point: options, listening sockets, threads,
 * signals and the pid file.
 */

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/util.h>

#include "emu.h"

#define EMU_THREADS_MAX  64

typedef struct {
    emu_server_t  *server;
    pthread_t      thread;
    int            stop_pipe[2];
    bool           started;
} emu_thread_t;

typedef struct {
    const char    *listen;
    int            threads;
    const char    *pid_file;
} emu_options_t;

int emu_verbose;


/*
 * Writes one log line to stderr: "<UTC time> <level> <message>". Callers
 * never pass a credential or a request body.
 */
void
emu_log(const char *level, const char *fmt, ...)
{
    char             line[1024];
    char             stamp[32];
    struct timeval   tv;
    struct tm        tm;
    va_list          ap;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);

    fprintf(stderr, "%s.%03dZ %s %s\n", stamp, (int) (tv.tv_usec / 1000),
            level, line);
}


static void
emu_usage(FILE *out)
{
    fprintf(out,
        "usage: chatgate-emulator --listen ADDRESS:PORT [--threads N]"
        " [--pid-file FILE] [--verbose]\n"
        "  --listen     address and port to listen on, e.g. 127.0.0.1:8090"
        " or [::1]:8090\n"
        "  --threads    number of server threads sharing the port"
        " (default 1, max %d)\n"
        "  --pid-file   file to write the process id to, removed at exit\n"
        "  --verbose    log one line per request\n", EMU_THREADS_MAX);
}


static int
emu_parse_options(int argc, char **argv, emu_options_t *opts)
{
    int    i;
    char  *end;
    long   n;

    opts->listen = NULL;
    opts->threads = 1;
    opts->pid_file = NULL;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--verbose") == 0) {
            emu_verbose = 1;

        } else if (strcmp(argv[i], "--help") == 0) {
            emu_usage(stdout);
            exit(0);

        } else if (i + 1 >= argc) {
            fprintf(stderr, "chatgate-emulator: option \"%s\" is unknown or"
                    " missing its value\n", argv[i]);
            return -1;

        } else if (strcmp(argv[i], "--listen") == 0) {
            opts->listen = argv[++i];

        } else if (strcmp(argv[i], "--pid-file") == 0) {
            opts->pid_file = argv[++i];

        } else if (strcmp(argv[i], "--threads") == 0) {
            i++;
            errno = 0;
            n = strtol(argv[i], &end, 10);
            if (errno != 0 || *end != '\0' || n < 1 || n > EMU_THREADS_MAX) {
                fprintf(stderr, "chatgate-emulator: invalid --threads \"%s\":"
                        " expected 1 to %d\n", argv[i], EMU_THREADS_MAX);
                return -1;
            }
            opts->threads = (int) n;

        } else {
            fprintf(stderr, "chatgate-emulator: unknown option \"%s\"\n",
                    argv[i]);
            return -1;
        }
    }

    if (opts->listen == NULL) {
        fprintf(stderr, "chatgate-emulator: missing --listen\n");
        return -1;
    }

    return 0;
}


/*
 * Opens a non-blocking listening socket on the address with SO_REUSEPORT,
 * so every thread gets its own socket on the same port and the kernel
 * spreads connections over them. Returns the fd or -1 after logging.
 */
static int
emu_listen(const struct sockaddr *sa, socklen_t len)
{
    int  fd, on;

    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        emu_log("error", "socket() failed: %s", strerror(errno));
        return -1;
    }

    on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1
        || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == -1)
    {
        emu_log("error", "setsockopt() failed: %s", strerror(errno));
        goto fail;
    }

    if (sa->sa_family == AF_INET6
        && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1)
    {
        emu_log("error", "setsockopt(IPV6_V6ONLY) failed: %s", strerror(errno));
        goto fail;
    }

    if (bind(fd, sa, len) == -1) {
        emu_log("error", "bind() failed: %s", strerror(errno));
        goto fail;
    }

    if (listen(fd, 1024) == -1) {
        emu_log("error", "listen() failed: %s", strerror(errno));
        goto fail;
    }

    return fd;

fail:
    close(fd);
    return -1;
}


/*
 * Formats the bound address of fd as "127.0.0.1:PORT" or "[::1]:PORT", so
 * --listen with port 0 reports the port the kernel chose.
 */
static void
emu_format_bound(int fd, char *out, size_t size)
{
    struct sockaddr_storage  ss;
    socklen_t                len = sizeof(ss);
    char                     host[64];
    int                      port;

    if (getsockname(fd, (struct sockaddr *) &ss, &len) == -1) {
        snprintf(out, size, "?");
        return;
    }

    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;

        evutil_inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        port = ntohs(sin6->sin6_port);
        snprintf(out, size, "[%s]:%d", host, port);

    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *) &ss;

        evutil_inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        port = ntohs(sin->sin_port);
        snprintf(out, size, "%s:%d", host, port);
    }
}


static void *
emu_thread_main(void *arg)
{
    emu_thread_t *t = arg;

    emu_server_run(t->server);
    return NULL;
}


/*
 * Parses "127.0.0.1:PORT" or "[::1]:PORT" (port 0 lets the kernel choose)
 * into ss. Returns the address length, or 0 when the text is invalid.
 */
static socklen_t
emu_parse_listen(const char *text, struct sockaddr_storage *ss)
{
    struct sockaddr_in   *sin = (struct sockaddr_in *) ss;
    struct sockaddr_in6  *sin6 = (struct sockaddr_in6 *) ss;
    const char           *colon;
    char                  host[64], *end;
    size_t                hlen;
    long                  port;

    colon = strrchr(text, ':');
    if (colon == NULL) {
        return 0;
    }

    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 0
        || port > 65535)
    {
        return 0;
    }

    hlen = colon - text;
    if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
        text++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        return 0;
    }
    memcpy(host, text, hlen);
    host[hlen] = '\0';

    memset(ss, 0, sizeof(*ss));

    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t) port);
        return sizeof(*sin);
    }

    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t) port);
        return sizeof(*sin6);
    }

    return 0;
}


/*
 * Opens one socket and one server per thread. The first socket fixes the
 * port, so port 0 works: later sockets bind to the port it got.
 */
static int
emu_start_threads(const emu_options_t *opts, emu_thread_t *threads,
    char *bound, size_t bound_size)
{
    struct sockaddr_storage  ss;
    socklen_t                len;
    int                      i, fd;

    len = emu_parse_listen(opts->listen, &ss);
    if (len == 0) {
        emu_log("error", "invalid --listen \"%s\": expected ADDRESS:PORT such"
                " as 127.0.0.1:8090 or [::1]:8090", opts->listen);
        return -1;
    }

    for (i = 0; i < opts->threads; i++) {
        fd = emu_listen((struct sockaddr *) &ss, len);
        if (fd == -1) {
            emu_log("error", "cannot listen on \"%s\"", opts->listen);
            return -1;
        }

        if (i == 0) {
            len = sizeof(ss);
            getsockname(fd, (struct sockaddr *) &ss, &len);
            emu_format_bound(fd, bound, bound_size);
        }

        if (pipe2(threads[i].stop_pipe, O_CLOEXEC) == -1) {
            emu_log("error", "pipe2() failed: %s", strerror(errno));
            close(fd);
            return -1;
        }

        threads[i].server = emu_server_create(fd, threads[i].stop_pipe[0]);
        if (threads[i].server == NULL) {
            return -1;
        }

        if (pthread_create(&threads[i].thread, NULL, emu_thread_main,
                           &threads[i]) != 0)
        {
            emu_log("error", "pthread_create() failed");
            return -1;
        }
        threads[i].started = true;
    }

    return 0;
}


static void
emu_stop_threads(emu_thread_t *threads, int count)
{
    int  i;

    for (i = 0; i < count; i++) {
        if (threads[i].started) {
            if (write(threads[i].stop_pipe[1], "x", 1) != 1) {
                emu_log("error", "cannot signal thread %d to stop: %s", i,
                        strerror(errno));
            }
            pthread_join(threads[i].thread, NULL);
        }

        if (threads[i].server != NULL) {
            emu_server_destroy(threads[i].server);
        }
        if (threads[i].stop_pipe[0] != -1) {
            close(threads[i].stop_pipe[0]);
            close(threads[i].stop_pipe[1]);
        }
    }
}


static int
emu_write_pid_file(const char *path)
{
    FILE  *f;

    f = fopen(path, "w");
    if (f == NULL) {
        emu_log("error", "cannot write pid file \"%s\": %s", path,
                strerror(errno));
        return -1;
    }

    fprintf(f, "%ld\n", (long) getpid());
    fclose(f);
    return 0;
}


int
main(int argc, char **argv)
{
    emu_options_t   opts;
    emu_thread_t    threads[EMU_THREADS_MAX];
    char            bound[96];
    sigset_t        set;
    int             i, sig, rc = 1;

    if (emu_parse_options(argc, argv, &opts) != 0) {
        emu_usage(stderr);
        return 2;
    }

    memset(threads, 0, sizeof(threads));
    for (i = 0; i < EMU_THREADS_MAX; i++) {
        threads[i].stop_pipe[0] = -1;
        threads[i].stop_pipe[1] = -1;
    }

    /* Threads inherit this mask, so the signals reach only sigwait() below. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (emu_journal_init() != 0) {
        return 1;
    }

    if (emu_start_threads(&opts, threads, bound, sizeof(bound)) != 0) {
        goto done;
    }

    if (opts.pid_file != NULL && emu_write_pid_file(opts.pid_file) != 0) {
        goto done;
    }

    emu_log("info", "started, pid %ld, %d thread(s)", (long) getpid(),
            opts.threads);
    fprintf(stderr, "chatgate-emulator listening on %s\n", bound);
    fflush(stderr);

    if (sigwait(&set, &sig) == 0) {
        emu_log("info", "stopping on signal %d", sig);
    }
    rc = 0;

done:
    emu_stop_threads(threads, opts.threads);

    if (opts.pid_file != NULL && rc == 0) {
        unlink(opts.pid_file);
    }

    emu_log("info", "stopped");
    return rc;
}
