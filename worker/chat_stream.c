/*
 * Streamed chats: the provider's stream, translated by stream.c, goes to the
 * client as server-sent events in a chunked response. The reply
 * starts with the first translated frame; until then a failure is answered
 * with an error status (and may be retried), after it with an error event.
 *
 * A slow client cannot make the worker buffer the whole answer: while the
 * connection's output holds more than CHATGATE_STREAM_BUFFER bytes, the
 * provider transfer is paused, and it resumes once the server has written
 * the output out.
 *
 * A provider may also send many chunks in one read, and the first content
 * chunk does not wait for the rest of such a read to be translated. It is
 * sent, and the transfer pauses until the server has written it. When curl
 * delivers the piece again, the translation goes on after that chunk.
 *
 * After the first content chunk, a burst from the provider is kept as it
 * comes and translated at the loop's bulk priority (CG_LOOP_PRIORITY_BULK),
 * when no other event is ready. A stream's tail then waits for other
 * requests and their first chunks, instead of the other way round. The
 * worker also yields its CPU after the first content chunk and after each
 * bulk callback (a slice, or nothing while the client's backlog is full),
 * so that nginx does not wait for the tail either. A timer at the default
 * priority translates what waited longer than CG_CHAT_STREAM_BULK_WAIT_MS,
 * so a loop that is never idle slows the tail down but cannot stall it.
 */

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "log.h"
#include "stream.h"

/* bytes of a provider's error body kept for its message */
#define CG_CHAT_STREAM_ERROR_BODY  (64 * 1024)

/* Bytes per translator feed until the first content chunk has gone out. */
#define CG_CHAT_STREAM_FIRST_SLICE  512

/*
 * Untranslated bytes kept per stream after the first content chunk. More
 * pause the transfer until they are translated. curl hands over at most
 * its receive buffer at a time, about 2 KB (upstream.c).
 */
#define CG_CHAT_STREAM_PENDING_MAX  (16 * 1024)

/* The maximum wait of a stream's untranslated bytes for an idle loop. */
#define CG_CHAT_STREAM_BULK_WAIT_MS  10

/*
 * Bytes translated per bulk callback, about 20 OpenAI chunks. A new request
 * waits for at most one such slice of another stream's tail.
 */
#define CG_CHAT_STREAM_BULK_SLICE  4096

/*
 * A piece up to this size, with nothing pending before it, is translated
 * at once. A provider that sends each token as it comes hands over one or
 * two chunks at a time, and they cost less to translate than to schedule.
 */
#define CG_CHAT_STREAM_SMALL_PIECE  512

/*
 * Translated frames held back while more pending bytes follow, so that a
 * burst goes out in a few large writes instead of one per slice.
 */
#define CG_CHAT_STREAM_FLUSH_MIN  (16 * 1024)

/* chunk arrival times kept per stream for the timeline */
#define CG_CHAT_STREAM_TIMELINE_MAX  100000

/* The streaming state of one chat; owned by the cg_chat_t. */
struct cg_chat_stream_s {
    cg_stream_t       translator;
    cg_buf_t          frames;       /* translated frames not sent yet */
    cg_buf_t          form;         /* /chat: frames rewritten as form events */
    cg_buf_t          error_body;   /* a non-2xx answer's body, bounded */
    cg_buf_t          pending;      /* provider bytes after the first content chunk */
    size_t            pending_pos;  /* of pending, the bytes translated already */
    struct event     *bulk;         /* translates pending at the bulk priority */
    struct event     *bulk_timer;   /* translates pending that waited too long */
    long              status;       /* provider status of the current try */
    unsigned          started:1;    /* the reply's status line went out */
    unsigned          paused:1;     /* the provider transfer waits for the client */
    unsigned          held:1;       /* the provider transfer waits for pending to shrink */
    unsigned          bulk_waits:1; /* pending waits for the client's backlog to drain */
    size_t            skip;         /* bytes of the next piece already translated */
    int               ttft_ms;      /* -1 until the first content chunk is sent */
    int               last_ms;      /* when the last frame was sent */
    unsigned long     pauses;
    int              *offsets;      /* timeline: ms after the start, per content chunk */
    size_t            noffsets;
    size_t            offsets_cap;
};

static int cg_chat_stream_init(cg_chat_t *c);
static int cg_chat_stream_on_headers(cg_upstream_call_t *call, long status,
    void *arg);
static int cg_chat_stream_on_data(cg_upstream_call_t *call, const char *data,
    size_t len, void *arg);
static void cg_chat_stream_on_done(cg_upstream_call_t *call,
    cg_upstream_result_t result, const char *error, void *arg);
static int cg_chat_stream_retryable(cg_chat_t *c, cg_upstream_call_t *call,
    cg_upstream_result_t result, const char *error);
static void cg_chat_stream_record(cg_chat_t *c, unsigned long before);
static size_t cg_chat_stream_feed(cg_chat_t *c, const char *data, size_t len);
static int cg_chat_stream_defer(cg_chat_t *c, const char *data, size_t len);
static void cg_chat_stream_schedule(cg_chat_stream_t *s);
static void cg_chat_stream_bulk_cb(evutil_socket_t fd, short events, void *arg);
static int cg_chat_stream_translate_pending(cg_chat_t *c);
static int cg_chat_stream_flush(cg_chat_t *c);
static void cg_chat_stream_yield(void);
static int cg_chat_stream_start_reply(cg_chat_t *c);
static int cg_chat_stream_form(cg_chat_t *c, const cg_buf_t *frames,
    cg_buf_t *out);
static int cg_chat_stream_form_event(cg_chat_t *c, const char *data,
    size_t len, cg_buf_t *out);
static size_t cg_chat_stream_backlog(cg_chat_t *c);
static void cg_chat_stream_drained(cg_http_req_t *req, void *arg);
static void cg_chat_stream_error_frame(cg_chat_t *c, const cg_error_t *err);
static void cg_chat_stream_end(cg_chat_t *c, int status,
    const cg_error_t *err, const char *error_class);
static void cg_chat_stream_save_timeline(cg_chat_t *c);
static void cg_chat_stream_timeline_saved(PGresult *res, const char *error,
    void *arg);


cg_upstream_call_t *
cg_chat_stream_call(cg_chat_t *c)
{
    static const cg_upstream_handler_t  handler = {
        cg_chat_stream_on_headers, cg_chat_stream_on_data,
        cg_chat_stream_on_done
    };

    if (c->stream == NULL && cg_chat_stream_init(c) != 0) {
        return NULL;
    }

    c->stream->status = 0;
    c->stream->skip = 0;
    cg_buf_reset(&c->stream->error_body);

    /* a retry starts before any content chunk, so nothing is pending */
    cg_buf_free(&c->stream->pending);
    c->stream->pending_pos = 0;
    c->stream->held = 0;
    c->stream->bulk_waits = 0;
    event_del(c->stream->bulk);
    event_del(c->stream->bulk_timer);

    return cg_upstream_start(c->srv->upstream, c->call.url, c->call.headers,
                             c->call.body, c->call.body_len, 0, &handler, c);
}


static int
cg_chat_stream_init(cg_chat_t *c)
{
    cg_chat_stream_t  *s;
    char               id[64];

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -1;
    }

    snprintf(id, sizeof(id), "chatcmpl-%s", c->info.request_id);
    if (cg_stream_init(&s->translator, &c->chat, id,
                       (long) (c->start_us / 1000000)) != 0)
    {
        cg_stream_free(&s->translator);
        free(s);
        return -1;
    }
    s->translator.secret = c->api_key;

    s->bulk = event_new(c->srv->base, -1, 0, cg_chat_stream_bulk_cb, c);
    s->bulk_timer = evtimer_new(c->srv->base, cg_chat_stream_bulk_cb, c);
    if (s->bulk == NULL || s->bulk_timer == NULL) {
        goto fail;
    }

    /* a loop created without priorities runs it at the default */
    if (event_base_get_npriorities(c->srv->base) > CG_LOOP_PRIORITY_BULK) {
        event_priority_set(s->bulk, CG_LOOP_PRIORITY_BULK);
    }

    s->ttft_ms = -1;
    s->last_ms = -1;
    c->stream = s;
    return 0;

fail:

    if (s->bulk_timer != NULL) {
        event_free(s->bulk_timer);
    }
    if (s->bulk != NULL) {
        event_free(s->bulk);
    }
    cg_stream_free(&s->translator);
    free(s);
    return -1;
}


int
cg_chat_stream_started(const cg_chat_t *c)
{
    return c->stream != NULL && c->stream->started;
}


static int
cg_chat_stream_on_headers(cg_upstream_call_t *call, long status, void *arg)
{
    cg_chat_t  *c = arg;

    (void) call;

    c->stream->status = status;
    return CG_UPSTREAM_CONTINUE;
}


/*
 * Translates one piece of a 2xx stream and sends the frames it completes,
 * or keeps a piece of an error body. A piece that arrives while the
 * client's backlog is over the bound is left to curl, which pauses. So is
 * the rest of a piece after the first content chunk (see the file header).
 */
static int
cg_chat_stream_on_data(cg_upstream_call_t *call, const char *data, size_t len,
    void *arg)
{
    cg_chat_t         *c = arg;
    cg_chat_stream_t  *s = c->stream;
    unsigned long      before = s->translator.chunks;
    size_t             keep, fed;

    (void) call;

    if (s->status < 200 || s->status >= 300) {
        keep = CG_CHAT_STREAM_ERROR_BODY - s->error_body.len;
        if (keep > len) {
            keep = len;
        }
        if (keep > 0 && cg_buf_append(&s->error_body, data, keep) != 0) {
            return CG_UPSTREAM_ABORT;
        }
        return CG_UPSTREAM_CONTINUE;
    }

    if (s->started && cg_chat_stream_backlog(c) >= c->srv->conf->stream_buffer) {
        if (!s->paused) {
            s->paused = 1;
            s->pauses++;
        }
        return CG_UPSTREAM_PAUSE;
    }

    /* curl delivers a paused piece again from its start. */
    keep = s->skip < len ? s->skip : len;
    s->skip -= keep;
    data += keep;
    len -= keep;

    if (len == 0) {
        return CG_UPSTREAM_CONTINUE;
    }

    if (s->translator.chunks > 0
        && (len > CG_CHAT_STREAM_SMALL_PIECE || s->pending.len > 0))
    {
        return cg_chat_stream_defer(c, data, len);
    }

    fed = cg_chat_stream_feed(c, data, len);
    cg_chat_stream_record(c, before);

    if (fed == (size_t) -1) {
        return CG_UPSTREAM_ABORT;
    }

    /*
     * Nothing reached the client yet, so the done callback sends
     * the error with its status instead of a 200 and an error event.
     */
    if (s->translator.failed && !s->started) {
        cg_buf_reset(&s->frames);
        return CG_UPSTREAM_ABORT;
    }

    if (fed < len) {
        s->skip = keep + fed;
        s->paused = 1;
        return CG_UPSTREAM_PAUSE;
    }

    if (cg_chat_stream_flush(c) != 0 || s->translator.failed) {
        return CG_UPSTREAM_ABORT;
    }

    return CG_UPSTREAM_CONTINUE;
}


/*
 * Feeds the translator len bytes of the provider's body, or fewer when the
 * first content chunk is among them. Until that chunk, the bytes go in
 * slices. The slice that completes it is flushed at once, and when the
 * socket did not take all of it, the feed stops there, so that the caller can
 * pause the transfer until that output is written. Returns the bytes fed,
 * or (size_t) -1 when the flush failed.
 */
static size_t
cg_chat_stream_feed(cg_chat_t *c, const char *data, size_t len)
{
    cg_chat_stream_t  *s = c->stream;
    size_t             n, fed = 0;

    while (fed < len && s->translator.chunks == 0 && !s->translator.failed) {
        n = len - fed;
        if (n > CG_CHAT_STREAM_FIRST_SLICE) {
            n = CG_CHAT_STREAM_FIRST_SLICE;
        }

        cg_stream_feed(&s->translator, data + fed, n, &s->frames);
        fed += n;

        if (s->translator.chunks == 0) {
            continue;
        }

        if (cg_chat_stream_flush(c) != 0) {
            return (size_t) -1;
        }

        if (fed < len && cg_chat_stream_backlog(c) > 0) {
            return fed;
        }
    }

    if (fed < len) {
        cg_stream_feed(&s->translator, data + fed, len - fed, &s->frames);
    }

    return len;
}


/*
 * Keeps a piece that arrived after the first content chunk for the bulk
 * translation, and schedules it. Pauses the transfer instead while
 * CG_CHAT_STREAM_PENDING_MAX bytes wait already.
 */
static int
cg_chat_stream_defer(cg_chat_t *c, const char *data, size_t len)
{
    cg_chat_stream_t  *s = c->stream;

    if (s->pending.len - s->pending_pos >= CG_CHAT_STREAM_PENDING_MAX) {
        s->held = 1;
        return CG_UPSTREAM_PAUSE;
    }

    /* the translated front goes, so pending stays within its bound */
    if (s->pending_pos > 0) {
        memmove(s->pending.data, s->pending.data + s->pending_pos,
                s->pending.len - s->pending_pos);
        s->pending.len -= s->pending_pos;
        s->pending_pos = 0;
    }

    if (cg_buf_append(&s->pending, data, len) != 0) {
        return CG_UPSTREAM_ABORT;
    }

    if (!s->bulk_waits) {
        cg_chat_stream_schedule(s);
    }

    return CG_UPSTREAM_CONTINUE;
}


/* Makes the bulk event ready, and starts the timer that bounds its wait. */
static void
cg_chat_stream_schedule(cg_chat_stream_t *s)
{
    struct timeval  tv;

    if (evtimer_pending(s->bulk_timer, NULL)) {
        return;
    }

    tv.tv_sec = 0;
    tv.tv_usec = CG_CHAT_STREAM_BULK_WAIT_MS * 1000;
    evtimer_add(s->bulk_timer, &tv);
    event_active(s->bulk, EV_TIMEOUT, 0);
}


/*
 * Runs from the bulk event when the loop is idle, or from the timer when
 * the pending bytes waited too long, whichever comes first. A translation
 * that fails ends the stream as an aborted transfer would.
 */
static void
cg_chat_stream_bulk_cb(evutil_socket_t fd, short events, void *arg)
{
    cg_chat_t           *c = arg;
    cg_chat_stream_t    *s = c->stream;
    cg_upstream_call_t  *call;

    (void) fd;
    (void) events;

    event_del(s->bulk);
    event_del(s->bulk_timer);

    if (cg_chat_stream_translate_pending(c) == 0) {
        cg_chat_stream_yield();
        return;
    }

    call = c->upstream;
    if (call != NULL) {
        c->upstream = NULL;
        cg_upstream_cancel(call);
    }
    cg_chat_stream_on_done(NULL, CG_UPSTREAM_ABORTED, "aborted", c);
}


/*
 * Translates and sends up to CG_CHAT_STREAM_BULK_SLICE pending bytes and
 * schedules the rest. While the client's backlog is over the bound it
 * translates nothing, and the drained callback schedules the bytes again.
 * Once all are translated, a transfer held for room in pending resumes. Returns 0, or -1 when the
 * stream cannot go on.
 */
static int
cg_chat_stream_translate_pending(cg_chat_t *c)
{
    cg_chat_stream_t  *s = c->stream;
    unsigned long      before = s->translator.chunks;
    size_t             n;

    if (s->pending.len == 0) {
        return 0;
    }

    if (cg_chat_stream_backlog(c) >= c->srv->conf->stream_buffer) {
        if (!s->bulk_waits) {
            s->bulk_waits = 1;
            s->pauses++;
        }
        return 0;
    }
    s->bulk_waits = 0;

    n = s->pending.len - s->pending_pos;
    if (n > CG_CHAT_STREAM_BULK_SLICE) {
        n = CG_CHAT_STREAM_BULK_SLICE;
    }

    cg_stream_feed(&s->translator, s->pending.data + s->pending_pos, n,
                   &s->frames);
    cg_chat_stream_record(c, before);
    s->pending_pos += n;

    if (s->translator.failed) {
        return -1;
    }

    if (s->pending_pos < s->pending.len) {
        if (s->frames.len >= CG_CHAT_STREAM_FLUSH_MIN
            && cg_chat_stream_flush(c) != 0)
        {
            return -1;
        }
        cg_chat_stream_schedule(s);
        return 0;
    }

    if (cg_chat_stream_flush(c) != 0) {
        return -1;
    }

    cg_buf_free(&s->pending);
    s->pending_pos = 0;

    if (s->held && c->upstream != NULL) {
        s->held = 0;
        cg_upstream_resume(c->upstream);
    }

    return 0;
}


static void
cg_chat_stream_on_done(cg_upstream_call_t *call, cg_upstream_result_t result,
    const char *error, void *arg)
{
    cg_chat_t         *c = arg;
    cg_chat_stream_t  *s = c->stream;
    cg_stream_t       *tr = &s->translator;
    cg_error_t         err;
    unsigned long      before = tr->chunks;

    c->upstream = NULL;
    s->paused = 0;
    s->held = 0;

    /* what arrived goes out before the end or the error event */
    if (s->pending.len > 0) {
        event_del(s->bulk);
        event_del(s->bulk_timer);
        s->bulk_waits = 0;
        before = tr->chunks;
        cg_stream_feed(tr, s->pending.data + s->pending_pos,
                       s->pending.len - s->pending_pos, &s->frames);
        cg_chat_stream_record(c, before);
        cg_buf_free(&s->pending);
        s->pending_pos = 0;
    }

    if (!s->started && cg_chat_stream_retryable(c, call, result, error)) {
        return;
    }

    if (result == CG_UPSTREAM_OK && (s->status < 200 || s->status >= 300)) {
        cg_chat_answer_status(c, call, s->error_body.data ? s->error_body.data
                              : "", s->error_body.len);
        return;
    }

    if (result == CG_UPSTREAM_OK) {
        cg_stream_finish(tr, &s->frames);
        cg_chat_stream_record(c, before);

    } else if (!tr->failed) {
        if (!s->started) {
            cg_chat_transport_failed(c, result, error);
            return;
        }

        if (result == CG_UPSTREAM_TIMEOUT) {
            cg_error_set(&err, 504, "timeout", "provider \"%s\" did not end "
                         "the stream within %ld ms",
                         cg_provider_name(c->chat.provider),
                         c->srv->conf->request_timeout_ms);
            cg_chat_stream_error_frame(c, &err);
            cg_chat_stream_end(c, 200, &err, "timeout");
            return;
        }

        cg_error_set(&err, 502, "upstream_error", "provider \"%s\" stream "
                     "broke off: %s", cg_provider_name(c->chat.provider),
                     error ? error : "aborted");
        cg_chat_stream_error_frame(c, &err);
        cg_chat_stream_end(c, 200, &err, "upstream_stream");
        return;
    }

    if (tr->failed && !s->started) {
        /* nothing reached the client yet, so the error can have its status */
        cg_chat_fail(c, &tr->err, "upstream_stream");
        return;
    }

    cg_chat_stream_end(c, 200, tr->failed ? &tr->err : NULL,
                       tr->failed ? "upstream_stream" : NULL);
}


/*
 * Schedules a retry for a connect failure, a 5xx or a 429. Returns 1 when
 * one is scheduled.
 */
static int
cg_chat_stream_retryable(cg_chat_t *c, cg_upstream_call_t *call,
    cg_upstream_result_t result, const char *error)
{
    char  cause[300];
    long  status = c->stream->status;

    if (result == CG_UPSTREAM_CONNECT) {
        snprintf(cause, sizeof(cause), "connect failed: %s", error);
        return cg_chat_retry(c, NULL, cause);
    }

    if (result == CG_UPSTREAM_OK && (status == 429 || status >= 500)) {
        snprintf(cause, sizeof(cause), "provider answered %ld", status);
        return cg_chat_retry(c, call, cause);
    }

    return 0;
}


/* Notes the time of the content chunks translated since before. */
static void
cg_chat_stream_record(cg_chat_t *c, unsigned long before)
{
    cg_chat_stream_t  *s = c->stream;
    unsigned long      n = s->translator.chunks - before;
    size_t             cap;
    int               *grown, now;

    if (n == 0 || !c->srv->conf->stream_timeline) {
        return;
    }

    now = cg_chat_latency_ms(c);

    while (n-- > 0 && s->noffsets < CG_CHAT_STREAM_TIMELINE_MAX) {
        if (s->noffsets == s->offsets_cap) {
            cap = s->offsets_cap ? s->offsets_cap * 2 : 256;
            grown = realloc(s->offsets, cap * sizeof(int));
            if (grown == NULL) {
                return;
            }
            s->offsets = grown;
            s->offsets_cap = cap;
        }
        s->offsets[s->noffsets++] = now;
    }
}


/*
 * Sends the translated frames, starting the reply first if needed.
 * Returns 0, or -1 when the reply cannot be started or memory runs out.
 */
static int
cg_chat_stream_flush(cg_chat_t *c)
{
    cg_chat_stream_t  *s = c->stream;
    const cg_buf_t    *out = &s->frames;
    int                rc = 0;

    if (s->frames.len == 0 || c->req == NULL) {
        cg_buf_reset(&s->frames);
        return 0;
    }

    if (c->kind == CG_CHAT_FORM) {
        cg_buf_reset(&s->form);
        if (cg_chat_stream_form(c, &s->frames, &s->form) != 0) {
            rc = -1;
            goto done;
        }
        out = &s->form;
        if (out->len == 0) {
            goto done;
        }
    }

    if (!s->started && cg_chat_stream_start_reply(c) != 0) {
        rc = -1;
        goto done;
    }

    /* a client that is gone shows in the close callback */
    cg_http_reply_chunk(c->req, out->data, out->len);

    s->last_ms = cg_chat_latency_ms(c);
    if (s->ttft_ms < 0 && s->translator.chunks > 0) {
        /* the first content chunk does not wait for the rest of the pass */
        cg_http_flush(c->req);
        s->ttft_ms = s->last_ms;
        cg_chat_stream_yield();
    }

done:

    cg_buf_reset(&s->frames);
    return rc;
}


/*
 * Lets another process that waits for this CPU run, such as the nginx
 * worker that the last send woke. Linux wakes a socket's reader with a
 * "sync" wakeup (sock_def_readable() in net/core/sock.c), a hint that the
 * writer will sleep soon, so the scheduler may queue the reader on the
 * writer's CPU. A worker busy with stream tails does not sleep. Without the
 * yield, nginx often passed a first token on only once the worker had
 * translated every burst in hand (bench/stream_load, docs/benchmarks.md).
 */
static void
cg_chat_stream_yield(void)
{
    (void) sched_yield();
}


/* Sends the status line and the event-stream headers. */
static int
cg_chat_stream_start_reply(cg_chat_t *c)
{
    cg_http_req_t  *req = c->req;

    if (!cg_http_connected(req)) {
        return -1;
    }

    cg_http_add_header(req, "Content-Type", "text/event-stream; charset=utf-8");
    cg_http_add_header(req, "Cache-Control", "no-cache");
    /* tells nginx to pass each chunk on at once, whatever proxy_buffering says */
    cg_http_add_header(req, "X-Accel-Buffering", "no");
    cg_http_add_header(req, "X-Request-Id", c->info.request_id);

    cg_http_on_drain(req, cg_chat_stream_drained, c);
    if (cg_http_reply_start(req, 200) != 0) {
        return -1;
    }
    c->stream->started = 1;

    return 0;
}


/*
 * Rewrites OpenAI chunk frames for the chat page: {"delta":"text"} per
 * content piece, {"error":{...}} as it came, and at [DONE] a final
 * {"done":true,"usage":{...},"latency_ms":N}.
 */
static int
cg_chat_stream_form(cg_chat_t *c, const cg_buf_t *frames, cg_buf_t *out)
{
    const char  *p = frames->data, *end = frames->data + frames->len;
    const char  *next;

    while (p < end) {
        next = memmem(p, (size_t) (end - p), "\n\n", 2);
        if (next == NULL) {
            next = end;
        }

        if ((size_t) (next - p) > 6 && memcmp(p, "data: ", 6) == 0
            && cg_chat_stream_form_event(c, p + 6, (size_t) (next - p - 6), out)
               != 0)
        {
            return -1;
        }

        p = next + 2;
    }

    return 0;
}


static int
cg_chat_stream_form_event(cg_chat_t *c, const char *data, size_t len,
    cg_buf_t *out)
{
    const cg_usage_t     *u = &c->stream->translator.usage;
    yajl_val              root, choices, choice;
    yajl_gen              g;
    const unsigned char  *json;
    const char           *content;
    size_t                n;
    char                  errbuf[128];
    int                   bad = 0;

    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        g = cg_json_gen_new();
        bad = g == NULL || yajl_gen_map_open(g)
              || cg_json_gen_str(g, "done") || yajl_gen_bool(g, 1)
              || cg_json_gen_str(g, "usage") || yajl_gen_map_open(g)
              || cg_json_gen_str(g, "prompt_tokens")
              || cg_json_gen_count(g, u->prompt_tokens)
              || cg_json_gen_str(g, "completion_tokens")
              || cg_json_gen_count(g, u->completion_tokens)
              || cg_json_gen_str(g, "total_tokens")
              || cg_json_gen_count(g, u->total_tokens)
              || yajl_gen_map_close(g)
              || cg_json_gen_str(g, "latency_ms")
              || yajl_gen_integer(g, cg_chat_latency_ms(c))
              || yajl_gen_map_close(g);
        goto frame;
    }

    root = cg_json_parse(data, len, errbuf, sizeof(errbuf));
    if (root == NULL) {
        return -1;
    }

    if (cg_json_get(root, "error") != NULL) {
        yajl_tree_free(root);
        return cg_buf_append_str(out, "data: ") || cg_buf_append(out, data, len)
               || cg_buf_append_str(out, "\n\n");
    }

    choices = cg_json_get(root, "choices");
    choice = YAJL_IS_ARRAY(choices) && choices->u.array.len > 0
             ? choices->u.array.values[0] : NULL;
    content = cg_json_get_string(cg_json_get(choice, "delta"), "content");

    if (content == NULL || content[0] == '\0') {
        yajl_tree_free(root);
        return 0;
    }

    g = cg_json_gen_new();
    bad = g == NULL || yajl_gen_map_open(g) || cg_json_gen_str(g, "delta")
          || cg_json_gen_str(g, content) || yajl_gen_map_close(g);
    yajl_tree_free(root);

frame:

    bad = bad || yajl_gen_get_buf(g, &json, &n) != yajl_gen_status_ok
          || cg_buf_append_str(out, "data: ") || cg_buf_append(out, json, n)
          || cg_buf_append_str(out, "\n\n");

    if (g != NULL) {
        yajl_gen_free(g);
    }

    return bad ? -1 : 0;
}


/* Returns the bytes in the client connection's output, not yet written. */
static size_t
cg_chat_stream_backlog(cg_chat_t *c)
{
    return c->req != NULL ? cg_http_backlog(c->req) : 0;
}


/* Runs when the server has written all output; resumes a paused provider. */
static void
cg_chat_stream_drained(cg_http_req_t *req, void *arg)
{
    cg_chat_t         *c = arg;
    cg_chat_stream_t  *s = c->stream;

    (void) req;

    if (s->paused && c->upstream != NULL) {
        s->paused = 0;
        cg_upstream_resume(c->upstream);
    }

    if (s->bulk_waits) {
        s->bulk_waits = 0;
        cg_chat_stream_schedule(s);
    }
}


void
cg_chat_stream_client_closed(cg_chat_t *c)
{
    cg_error_t  err;

    if (c->upstream != NULL) {
        cg_upstream_cancel(c->upstream);
        c->upstream = NULL;
    }

    cg_error_set(&err, 499, "invalid_request_error",
                 "client closed the connection during the stream");
    cg_chat_stream_end(c, 499, &err, "client_closed");
}


/* Appends an error event for err to the frames and sends them. */
static void
cg_chat_stream_error_frame(cg_chat_t *c, const cg_error_t *err)
{
    cg_chat_stream_t  *s = c->stream;
    cg_error_t         redacted = *err;
    char              *json;
    size_t             len;

    cg_redact(redacted.message, sizeof(redacted.message), c->api_key);

    json = cg_error_json(&redacted, &len);
    if (json == NULL) {
        return;
    }

    cg_buf_append_str(&s->frames, "data: ");
    cg_buf_append(&s->frames, json, len);
    cg_buf_append_str(&s->frames, "\n\n");
    free(json);
}


/*
 * Sends what is left, ends the chunked reply and finishes the request with
 * status (200 as sent, or 499 when the client left) and the stream's usage.
 */
static void
cg_chat_stream_end(cg_chat_t *c, int status, const cg_error_t *err,
    const char *error_class)
{
    cg_chat_stream_t  *s = c->stream;
    cg_usage_t         usage = s->translator.usage;
    cg_http_req_t     *req;

    if (status == 200) {
        cg_chat_stream_flush(c);
    }

    req = cg_chat_detach(c);
    if (req != NULL) {
        cg_http_reply_end(req);
    }

    cg_chat_finish(c, status, &usage, err, error_class);
}


void
cg_chat_stream_log(cg_chat_t *c, cg_log_row_t *row)
{
    cg_chat_stream_t  *s = c->stream;

    row->chunks = (int) s->translator.chunks;
    row->ttft_ms = s->ttft_ms;
    if (s->ttft_ms >= 0 && s->last_ms >= s->ttft_ms) {
        row->stream_ms = s->last_ms - s->ttft_ms;
    }

    if (s->pauses > 0) {
        cg_log_debug(c->info.request_id, "stream paused %lu times for a slow "
                     "client", s->pauses);
    }

    if (c->srv->conf->stream_timeline && s->noffsets > 0) {
        cg_chat_stream_save_timeline(c);
    }
}


/* Queues the INSERT of the chunk times; a failure is logged, nothing more. */
static void
cg_chat_stream_save_timeline(cg_chat_t *c)
{
    static const char  *sql =
        "INSERT INTO chat_stream_timelines (request_id, created_at, offsets) "
        "VALUES ($1, to_timestamp($2::bigint / 1000000.0), $3::int[])";
    cg_chat_stream_t  *s = c->stream;
    cg_buf_t           list = { NULL, 0, 0 };
    const char        *values[3];
    char               start[24], n[16], *id;
    size_t             i;

    cg_buf_append_str(&list, "{");
    for (i = 0; i < s->noffsets; i++) {
        snprintf(n, sizeof(n), "%s%d", i ? "," : "", s->offsets[i]);
        cg_buf_append_str(&list, n);
    }
    if (cg_buf_append_str(&list, "}") != 0) {
        cg_buf_free(&list);
        return;
    }

    snprintf(start, sizeof(start), "%lld", (long long) c->start_us);
    id = strdup(c->info.request_id);
    values[0] = c->info.request_id;
    values[1] = start;
    values[2] = list.data;

    if (id == NULL
        || cg_db_query(c->srv->db, sql, 3, values,
                       cg_chat_stream_timeline_saved, id) != 0)
    {
        cg_log_warn(c->info.request_id, "stream timeline not stored: the "
                    "database queue is full");
        free(id);
    }

    cg_buf_free(&list);
}


static void
cg_chat_stream_timeline_saved(PGresult *res, const char *error, void *arg)
{
    char  *request_id = arg;

    (void) res;

    if (error != NULL) {
        cg_log_warn(request_id, "insert into chat_stream_timelines failed: %s",
                    error);
    }
    free(request_id);
}


void
cg_chat_stream_free(cg_chat_t *c)
{
    cg_chat_stream_t  *s = c->stream;

    cg_stream_free(&s->translator);
    cg_buf_free(&s->frames);
    cg_buf_free(&s->form);
    cg_buf_free(&s->error_body);
    cg_buf_free(&s->pending);
    event_free(s->bulk);
    event_free(s->bulk_timer);
    free(s->offsets);
    free(s);
    c->stream = NULL;
}
