/*
 * Load client for the streaming benchmarks, in two modes.
 *
 * Burst: opens STREAMS concurrent streamed chats against one HTTP server
 * (nginx or the emulator directly), one connection each, and prints the
 * time to the first content event, the total time per stream and the
 * errors, as one JSON line.
 *
 *   stream_load HOST PORT STREAMS CHUNKS KEY [TIMEOUT_S]
 *
 * Sustained: keeps CONNS keep-alive connections busy with one streamed chat
 * after another for SECONDS, then waits for the streams in flight, and
 * prints one "BENCH_RESULT name=value ..." line like bench/wrk/chat.lua's,
 * with the time to first token added. BODY_FILE is the request body and
 * every -H adds a request header.
 *
 *   stream_load -c CONNS -d SECONDS [-R RATE] [-H "Name: value"]... URL BODY_FILE
 *
 * That is a closed load: a faster server gets more streams, so two servers
 * are compared at different stream rates. With -R the load is open instead:
 * stream k is due k / RATE seconds after the start, on one of at most CONNS
 * connections, whatever the server does. A stream that finds every
 * connection busy waits for one, even past SECONDS, and its times count
 * from when it was due, so a server that falls behind shows it in the
 * times. The result line adds late=N, the streams sent more than a
 * millisecond after they were due, and unsent=N, the streams due before
 * SECONDS that were still waiting when the grace of BENCH_GRACE_S ended.
 * Unsent streams also count in err_timeout. The duration is at least
 * SECONDS, so that streams/s is the rate that was kept.
 *
 * Time to first token (TTFT) is the time from handing the request to
 * libevent (with -R, from when the stream was due) until the read that
 * completes the first "data:" event whose "content" is not empty. The
 * role-only first chunk of an OpenAI stream does not count.
 */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define BENCH_MAX_HEADERS  16
#define BENCH_GRACE_S      30    /* wait for the streams in flight */

typedef struct {
    struct evhttp_connection  *evcon;
    struct evbuffer           *pending;    /* bytes of an unfinished event */
    double                     start;
    double                     first;      /* first content event, -1 before */
    double                     total;      /* -1 until the stream ended well */
    unsigned long              events;     /* content events of this stream */
} bench_stream_t;

/* A growable array of samples, in seconds. */
typedef struct {
    double  *v;
    size_t   n;
    size_t   size;
} bench_samples_t;

static struct event_base  *bench_base;
static int                 bench_left;
static int                 bench_errors;

/* Sustained mode. */
static const char         *bench_host;
static const char         *bench_path;
static char               *bench_body;
static size_t              bench_body_len;
static const char         *bench_headers[BENCH_MAX_HEADERS];
static int                 bench_nheaders;
static double              bench_deadline;
static int                 bench_active;
static bench_samples_t     bench_ttft, bench_total;
static unsigned long       bench_requests, bench_events;
static unsigned long       bench_err_status, bench_err_read;

/* Open load (-R). */
static double              bench_rate;       /* streams/s, 0 for closed */
static double              bench_started;
static unsigned long       bench_due;        /* streams sent so far */
static unsigned long       bench_late;
static bench_stream_t    **bench_idle;       /* connections without a stream */
static int                 bench_nidle;
static struct event       *bench_tick;


static double
bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static int
bench_samples_add(bench_samples_t *s, double value)
{
    double  *v;

    if (s->n == s->size) {
        s->size = s->size ? s->size * 2 : 4096;
        v = realloc(s->v, s->size * sizeof(double));
        if (v == NULL) {
            return -1;
        }
        s->v = v;
    }

    s->v[s->n++] = value;
    return 0;
}


/*
 * Returns 1 when the event of len bytes at the start of buf is a "data:"
 * event whose "content" string is not empty.
 */
static int
bench_content_event(struct evbuffer *buf, size_t len)
{
    static const char    key[] = "\"content\":\"";
    struct evbuffer_ptr  start, end, p;
    unsigned char        next;

    if (len < 6 || evbuffer_search(buf, "data:", 5, NULL).pos != 0) {
        return 0;
    }

    evbuffer_ptr_set(buf, &start, 0, EVBUFFER_PTR_SET);
    evbuffer_ptr_set(buf, &end, len, EVBUFFER_PTR_SET);

    p = evbuffer_search_range(buf, key, sizeof(key) - 1, &start, &end);
    if (p.pos < 0) {
        return 0;
    }

    evbuffer_ptr_set(buf, &p, sizeof(key) - 1, EVBUFFER_PTR_ADD);
    if (p.pos >= (ssize_t) len
        || evbuffer_copyout_from(buf, &p, &next, 1) != 1)
    {
        return 0;
    }

    return next != '"';
}


/*
 * Moves what arrived into the stream's pending bytes and consumes every
 * event they complete; an event ends with an empty line.
 */
static void
bench_chunk(struct evhttp_request *req, void *arg)
{
    bench_stream_t       *s = arg;
    struct evbuffer_ptr   p;
    double                now = bench_now();
    size_t                len;

    evbuffer_add_buffer(s->pending, evhttp_request_get_input_buffer(req));

    for ( ;; ) {
        p = evbuffer_search(s->pending, "\n\n", 2, NULL);
        if (p.pos < 0) {
            break;
        }

        len = (size_t) p.pos + 2;
        if (bench_content_event(s->pending, len)) {
            s->events++;
            if (s->first < 0) {
                s->first = now - s->start;
            }
        }

        evbuffer_drain(s->pending, len);
    }
}


static void
bench_done(struct evhttp_request *req, void *arg)
{
    bench_stream_t  *s = arg;

    if (req == NULL || evhttp_request_get_response_code(req) != 200
        || s->first < 0)
    {
        bench_errors++;
    } else {
        s->total = bench_now() - s->start;
    }

    if (--bench_left == 0) {
        event_base_loopexit(bench_base, NULL);
    }
}


static int
bench_cmp(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


/* Returns the p-th percentile (0-100) of n sorted values. */
static double
bench_percentile(const double *v, size_t n, int p)
{
    size_t  i = (n * (size_t) p) / 100;

    return v[i < n ? i : n - 1];
}


/* Prints "name":{"p50":..,"p99":..,"max":..} in ms over n values. */
static void
bench_print(const char *name, double *v, int n)
{
    if (n == 0) {
        printf("\"%s\":null", name);
        return;
    }
    qsort(v, (size_t) n, sizeof(double), bench_cmp);
    printf("\"%s\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f}", name,
           bench_percentile(v, (size_t) n, 50) * 1000,
           bench_percentile(v, (size_t) n, 99) * 1000, v[n - 1] * 1000);
}


static int
bench_burst(int argc, char **argv)
{
    bench_stream_t         *streams;
    struct evhttp_request  *req;
    struct evkeyvalq       *h;
    struct timeval          tv;
    char                    body[256], auth[160];
    double                 *first, *total, started;
    int                     i, n, chunks, port, nf = 0, nt = 0;

    if (argc < 6) {
        fprintf(stderr, "usage: stream_load HOST PORT STREAMS CHUNKS KEY "
                "[TIMEOUT_S]\n"
                "       stream_load -c CONNS -d SECONDS [-R RATE] "
                "[-H \"Name: value\"]... URL BODY_FILE\n");
        return 2;
    }

    port = atoi(argv[2]);
    n = atoi(argv[3]);
    chunks = atoi(argv[4]);
    tv.tv_sec = argc > 6 ? atoi(argv[6]) : 60;
    tv.tv_usec = 0;
    snprintf(auth, sizeof(auth), "Bearer %s", argv[5]);
    snprintf(body, sizeof(body), "{\"model\":\"openai/gpt-4o-mini\","
             "\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"[emu words=%d] benchmark\"}]}", chunks);

    bench_base = event_base_new();
    streams = calloc((size_t) n, sizeof(*streams));
    first = calloc((size_t) n, sizeof(double));
    total = calloc((size_t) n, sizeof(double));
    if (bench_base == NULL || streams == NULL || first == NULL || total == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    started = bench_now();
    bench_left = n;

    for (i = 0; i < n; i++) {
        bench_stream_t  *s = &streams[i];

        s->first = -1;
        s->total = -1;
        s->pending = evbuffer_new();
        s->evcon = evhttp_connection_base_new(bench_base, NULL, argv[1],
                                              (unsigned short) port);
        if (s->pending == NULL || s->evcon == NULL) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        evhttp_connection_set_timeout(s->evcon, (int) tv.tv_sec);
        req = evhttp_request_new(bench_done, s);
        evhttp_request_set_chunked_cb(req, bench_chunk);
        h = evhttp_request_get_output_headers(req);
        evhttp_add_header(h, "Host", argv[1]);
        evhttp_add_header(h, "Content-Type", "application/json");
        evhttp_add_header(h, "Authorization", auth);
        evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
        s->start = bench_now();
        if (evhttp_make_request(s->evcon, req, EVHTTP_REQ_POST,
                                "/v1/chat/completions") != 0)
        {
            bench_errors++;
            bench_left--;
        }
    }

    event_base_loopexit(bench_base, &tv);
    event_base_dispatch(bench_base);

    for (i = 0; i < n; i++) {
        if (streams[i].first >= 0) {
            first[nf++] = streams[i].first;
        }
        if (streams[i].total >= 0) {
            total[nt++] = streams[i].total;
        }
    }

    printf("{\"streams\":%d,\"chunks\":%d,\"completed\":%d,\"errors\":%d,"
           "\"unfinished\":%d,\"wall_ms\":%.0f,", n, chunks, nt, bench_errors,
           bench_left, (bench_now() - started) * 1000);
    bench_print("ttft_ms", first, nf);
    printf(",");
    bench_print("total_ms", total, nt);
    printf("}\n");

    for (i = 0; i < n; i++) {
        evhttp_connection_free(streams[i].evcon);
        evbuffer_free(streams[i].pending);
    }
    event_base_free(bench_base);
    free(streams);
    free(first);
    free(total);
    return bench_errors || bench_left ? 1 : 0;
}


static void bench_sustain_done(struct evhttp_request *req, void *arg);


/*
 * Starts the next stream on s's connection. Its times count from start.
 * Returns 0 or -1.
 */
static int
bench_sustain_request(bench_stream_t *s, double start)
{
    struct evhttp_request  *req;
    struct evkeyvalq       *h;
    char                    name[128];
    const char             *colon, *value;
    size_t                  len;
    int                     i;

    req = evhttp_request_new(bench_sustain_done, s);
    if (req == NULL) {
        return -1;
    }
    evhttp_request_set_chunked_cb(req, bench_chunk);

    h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", bench_host);
    evhttp_add_header(h, "Content-Type", "application/json");

    for (i = 0; i < bench_nheaders; i++) {
        colon = strchr(bench_headers[i], ':');
        len = (size_t) (colon - bench_headers[i]);
        if (len >= sizeof(name)) {
            len = sizeof(name) - 1;
        }
        memcpy(name, bench_headers[i], len);
        name[len] = '\0';
        for (value = colon + 1; *value == ' '; value++) { /* void */ }
        evhttp_add_header(h, name, value);
    }

    evbuffer_add(evhttp_request_get_output_buffer(req), bench_body,
                 bench_body_len);

    s->first = -1;
    s->events = 0;
    evbuffer_drain(s->pending, evbuffer_get_length(s->pending));
    s->start = start;

    return evhttp_make_request(s->evcon, req, EVHTTP_REQ_POST, bench_path);
}


/* When stream k of the open load is due. */
static double
bench_due_time(unsigned long k)
{
    return bench_started + k / bench_rate;
}


/*
 * Sends every stream of the open load that is due, while connections are
 * idle, and sets the timer for the next one. A due stream that finds no
 * idle connection is sent by bench_sustain_done() when one frees up.
 */
static void
bench_open_send(void)
{
    bench_stream_t  *s;
    struct timeval   tv;
    double           now, due, wait;

    now = bench_now();

    for ( ;; ) {
        due = bench_due_time(bench_due);
        if (due >= bench_deadline || due > now || bench_nidle == 0) {
            break;
        }

        s = bench_idle[--bench_nidle];
        bench_due++;
        if (now - due > 0.001) {
            bench_late++;
        }

        if (bench_sustain_request(s, due) == 0) {
            bench_active++;
        } else {
            bench_err_read++;
            bench_idle[bench_nidle++] = s;
        }
    }

    if (due >= bench_deadline) {
        if (bench_active == 0) {
            event_base_loopexit(bench_base, NULL);
        }
        return;
    }

    if (bench_nidle > 0) {
        wait = due - now;
        tv.tv_sec = (long) wait;
        tv.tv_usec = (long) ((wait - (double) tv.tv_sec) * 1e6);
        evtimer_add(bench_tick, &tv);
    }
}


static void
bench_tick_cb(evutil_socket_t fd, short events, void *arg)
{
    (void) fd;
    (void) events;
    (void) arg;

    bench_open_send();
}


/* Records the stream that ended and starts another one until the deadline. */
static void
bench_sustain_done(struct evhttp_request *req, void *arg)
{
    bench_stream_t  *s = arg;
    double           now = bench_now();

    if (req == NULL || evhttp_request_get_response_code(req) == 0) {
        bench_err_read++;

    } else if (evhttp_request_get_response_code(req) != 200) {
        bench_err_status++;

    } else if (s->first < 0) {
        /* A 200 without any content event, or cut short before one. */
        bench_err_read++;

    } else {
        bench_requests++;
        bench_events += s->events;
        if (bench_samples_add(&bench_ttft, s->first) != 0
            || bench_samples_add(&bench_total, now - s->start) != 0)
        {
            fprintf(stderr, "stream_load: out of memory\n");
            event_base_loopbreak(bench_base);
            return;
        }
    }

    if (bench_rate > 0) {
        bench_active--;
        bench_idle[bench_nidle++] = s;
        bench_open_send();
        return;
    }

    if (now < bench_deadline && bench_sustain_request(s, now) == 0) {
        return;
    }

    if (--bench_active == 0) {
        event_base_loopexit(bench_base, NULL);
    }
}


/* Reads the whole file path into bench_body. Returns 0 or -1. */
static int
bench_read_body(const char *path)
{
    FILE    *f;
    long     size;

    f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }

    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        perror(path);
        fclose(f);
        return -1;
    }

    bench_body = malloc((size_t) size + 1);
    if (bench_body == NULL
        || fread(bench_body, 1, (size_t) size, f) != (size_t) size)
    {
        fprintf(stderr, "stream_load: reading %s failed\n", path);
        fclose(f);
        return -1;
    }

    bench_body_len = (size_t) size;
    fclose(f);
    return 0;
}


/*
 * Returns the whole number in option value arg, or -1 with a message when
 * it has other characters or lies outside min to max.
 */
static int
bench_parse_int(const char *option, const char *arg, long min, long max)
{
    char  *end;
    long   n;

    errno = 0;
    n = strtol(arg, &end, 10);

    if (end == arg || *end != '\0' || errno != 0 || n < min || n > max) {
        fprintf(stderr, "stream_load: invalid %s \"%s\": expected a whole"
                " number from %ld to %ld\n", option, arg, min, max);
        return -1;
    }

    return (int) n;
}


/* Prints the sustained run's result line; times in microseconds. */
static void
bench_sustain_print(double duration)
{
    double         mean = 0, ttft_mean = 0;
    size_t         i, n = bench_total.n;
    unsigned long  k, unsent = 0;

    qsort(bench_ttft.v, n, sizeof(double), bench_cmp);
    qsort(bench_total.v, n, sizeof(double), bench_cmp);

    for (i = 0; i < n; i++) {
        mean += bench_total.v[i] / n;
        ttft_mean += bench_ttft.v[i] / n;
    }

    printf("BENCH_RESULT requests=%lu duration_us=%.0f", bench_requests,
           duration * 1e6);

    if (n > 0) {
        printf(" p50_us=%.0f p99_us=%.0f mean_us=%.0f max_us=%.0f"
               " ttft_p50_us=%.0f ttft_p99_us=%.0f ttft_mean_us=%.0f"
               " ttft_max_us=%.0f",
               bench_percentile(bench_total.v, n, 50) * 1e6,
               bench_percentile(bench_total.v, n, 99) * 1e6, mean * 1e6,
               bench_total.v[n - 1] * 1e6,
               bench_percentile(bench_ttft.v, n, 50) * 1e6,
               bench_percentile(bench_ttft.v, n, 99) * 1e6, ttft_mean * 1e6,
               bench_ttft.v[n - 1] * 1e6);
    }

    if (bench_rate > 0) {
        /* the same test as bench_open_send()'s, so rounding cannot differ */
        for (k = bench_due; bench_due_time(k) < bench_deadline; k++) {
            unsent++;
        }
        printf(" late=%lu unsent=%lu", bench_late, unsent);
    }

    printf(" events=%lu err_connect=0 err_read=%lu err_write=0"
           " err_status=%lu err_timeout=%lu\n",
           bench_events, bench_err_read, bench_err_status, unsent);
}


static int
bench_sustain(int argc, char **argv)
{
    bench_stream_t     *streams;
    struct evhttp_uri  *uri;
    struct event_config *cfg;
    struct timeval      grace;
    double              started, duration;
    char               *end;
    int                 i, opt, conns = 0, seconds = 0, port;

    while ((opt = getopt(argc, argv, "c:d:R:H:")) != -1) {
        switch (opt) {
        case 'R':
            /* strtod() also takes "nan", which no range check rejects */
            bench_rate = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !isfinite(bench_rate)
                || bench_rate < 1 || bench_rate > 1e6)
            {
                fprintf(stderr, "stream_load: invalid -R \"%s\": expected"
                        " 1 to 1000000 streams per second\n", optarg);
                return 2;
            }
            break;
        case 'c':
            conns = bench_parse_int("-c", optarg, 1, 100000);
            if (conns < 0) {
                return 2;
            }
            break;
        case 'd':
            seconds = bench_parse_int("-d", optarg, 1, 86400);
            if (seconds < 0) {
                return 2;
            }
            break;
        case 'H':
            if (bench_nheaders == BENCH_MAX_HEADERS
                || strchr(optarg, ':') == NULL)
            {
                fprintf(stderr, "stream_load: invalid or too many -H "
                        "\"%s\": at most %d \"Name: value\" headers\n",
                        optarg, BENCH_MAX_HEADERS);
                return 2;
            }
            bench_headers[bench_nheaders++] = optarg;
            break;
        default:
            return 2;
        }
    }

    if (conns <= 0 || seconds <= 0 || argc - optind != 2) {
        fprintf(stderr, "usage: stream_load -c CONNS -d SECONDS [-R RATE] "
                "[-H \"Name: value\"]... URL BODY_FILE\n");
        return 2;
    }

    uri = evhttp_uri_parse(argv[optind]);
    if (uri == NULL || evhttp_uri_get_host(uri) == NULL) {
        fprintf(stderr, "stream_load: invalid URL \"%s\"\n", argv[optind]);
        return 2;
    }
    bench_host = evhttp_uri_get_host(uri);
    bench_path = evhttp_uri_get_path(uri);
    if (bench_path == NULL || bench_path[0] == '\0') {
        bench_path = "/";
    }
    port = evhttp_uri_get_port(uri);
    if (port < 0) {
        port = 80;
    }

    if (bench_read_body(argv[optind + 1]) != 0) {
        return 1;
    }

    /* the open load's due times need a timer finer than epoll's 1 ms */
    cfg = event_config_new();
    if (cfg == NULL) {
        fprintf(stderr, "stream_load: out of memory\n");
        return 1;
    }
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    bench_base = event_base_new_with_config(cfg);
    event_config_free(cfg);

    streams = calloc((size_t) conns, sizeof(*streams));
    bench_idle = calloc((size_t) conns, sizeof(*bench_idle));
    if (bench_base == NULL || streams == NULL || bench_idle == NULL) {
        fprintf(stderr, "stream_load: out of memory\n");
        return 1;
    }

    bench_tick = evtimer_new(bench_base, bench_tick_cb, NULL);
    if (bench_tick == NULL) {
        fprintf(stderr, "stream_load: out of memory\n");
        return 1;
    }

    started = bench_now();
    bench_started = started;
    bench_deadline = started + seconds;

    for (i = 0; i < conns; i++) {
        bench_stream_t  *s = &streams[i];

        s->pending = evbuffer_new();
        s->evcon = evhttp_connection_base_new(bench_base, NULL, bench_host,
                                              (unsigned short) port);
        if (s->pending == NULL || s->evcon == NULL) {
            fprintf(stderr, "stream_load: out of memory\n");
            return 1;
        }
        evhttp_connection_set_timeout(s->evcon, 10);

        if (bench_rate > 0) {
            bench_idle[bench_nidle++] = s;

        } else if (bench_sustain_request(s, bench_now()) == 0) {
            bench_active++;

        } else {
            bench_err_read++;
        }
    }

    if (bench_rate > 0) {
        bench_open_send();
    }

    /* The run ends when the last stream in flight has ended, or at the grace. */
    grace.tv_sec = seconds + BENCH_GRACE_S;
    grace.tv_usec = 0;
    if (bench_active > 0 || bench_rate > 0) {
        event_base_loopexit(bench_base, &grace);
        event_base_dispatch(bench_base);
    }

    bench_err_read += (unsigned long) bench_active;

    /* An open load's last stream is due up to 1 / RATE before the deadline. */
    duration = bench_now() - started;
    if (bench_rate > 0 && duration < seconds) {
        duration = seconds;
    }
    bench_sustain_print(duration);

    for (i = 0; i < conns; i++) {
        evhttp_connection_free(streams[i].evcon);
        evbuffer_free(streams[i].pending);
    }
    event_free(bench_tick);
    event_base_free(bench_base);
    evhttp_uri_free(uri);
    free(streams);
    free(bench_idle);
    free(bench_body);
    free(bench_ttft.v);
    free(bench_total.v);
    return 0;
}


int
main(int argc, char **argv)
{
    if (argc > 1 && argv[1][0] == '-') {
        return bench_sustain(argc, argv);
    }

    return bench_burst(argc, argv);
}
