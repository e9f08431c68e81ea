/*
 * Load client for the streaming benchmark: opens N concurrent streamed
 * chats against one HTTP server (nginx or the emulator directly) and prints
 * the time to the first content event, the total time per stream and the
 * errors, as one JSON line.
 *
 *   stream_load HOST PORT STREAMS CHUNKS KEY [TIMEOUT_S]
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

typedef struct {
    struct evhttp_connection  *evcon;
    double                     start;
    double                     first;      /* first content event, -1 before */
    double                     total;      /* -1 until the stream ended well */
} bench_stream_t;

static struct event_base  *bench_base;
static int                 bench_left;
static int                 bench_errors;

static double
bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void
bench_chunk(struct evhttp_request *req, void *arg)
{
    bench_stream_t   *s = arg;
    struct evbuffer  *in = evhttp_request_get_input_buffer(req);
    struct evbuffer_ptr  p;

    if (s->first < 0) {
        p = evbuffer_search(in, "\"content\":\"", 11, NULL);
        if (p.pos >= 0) {
            s->first = bench_now() - s->start;
        }
    }
    evbuffer_drain(in, evbuffer_get_length(in));
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
           v[n / 2] * 1000, v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] * 1000,
           v[n - 1] * 1000);
}


int
main(int argc, char **argv)
{
    bench_stream_t         *streams;
    struct evhttp_request  *req;
    struct evkeyvalq       *h;
    struct timeval          tv;
    char                    body[256], auth[160], port_s[16];
    double                 *first, *total, started;
    int                     i, n, chunks, port, nf = 0, nt = 0;

    if (argc < 6) {
        fprintf(stderr, "usage: stream_load HOST PORT STREAMS CHUNKS KEY "
                "[TIMEOUT_S]\n");
        return 2;
    }

    port = atoi(argv[2]);
    n = atoi(argv[3]);
    chunks = atoi(argv[4]);
    tv.tv_sec = argc > 6 ? atoi(argv[6]) : 60;
    tv.tv_usec = 0;
    snprintf(port_s, sizeof(port_s), "%d", port);
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
        s->evcon = evhttp_connection_base_new(bench_base, NULL, argv[1],
                                              (unsigned short) port);
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
    }
    event_base_free(bench_base);
    free(streams);
    free(first);
    free(total);
    return bench_errors || bench_left ? 1 : 0;
}
