/*
 * Deferred responses: those that wait for delay_ms and those that stream.
 *
 * A deferred response owns its request until it ends, and learns about a
 * closed connection through the connection's close callback: evhttp then
 * either frees the request itself or, when the request was detached from
 * the connection, leaves it to us. Every path ends in emu_deferred_release(),
 * which puts the struct on the thread's free list for reuse.
 */

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event_struct.h>

#include "emu.h"

typedef enum {
    EMU_AFTER_END = 0,      /* end the chunked reply */
    EMU_AFTER_DELAY,        /* wait chunk_delay_ms, then continue */
    EMU_AFTER_DROP          /* reset the connection */
} emu_after_t;

struct emu_deferred_s {
    emu_server_t              *server;
    struct evhttp_request     *req;
    struct evhttp_connection  *evcon;
    struct event               timer;
    struct evbuffer           *pending;   /* stream bytes not yet written */
    emu_call_t                 call;
    emu_stream_state_t         stream;
    int                        status;    /* not 200: respond with this error */
    bool                       started;   /* the first delay is over */
    emu_after_t                after;     /* what follows the pending bytes */
    emu_deferred_t            *next;      /* free list link */
};

static void emu_deferred_timer(evutil_socket_t fd, short events, void *arg);
static void emu_deferred_pump(emu_deferred_t *d);
static void emu_deferred_flush(emu_deferred_t *d);


static emu_deferred_t *
emu_deferred_alloc(emu_server_t *s)
{
    emu_deferred_t  *d = s->free_list;

    if (d != NULL) {
        s->free_list = d->next;
        return d;
    }

    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return NULL;
    }

    d->pending = evbuffer_new();
    if (d->pending == NULL) {
        free(d);
        return NULL;
    }

    d->server = s;
    return d;
}


static void
emu_deferred_release(emu_deferred_t *d)
{
    emu_server_t  *s = d->server;

    if (event_initialized(&d->timer)) {
        event_del(&d->timer);
    }
    emu_call_release(&d->call);
    evbuffer_drain(d->pending, evbuffer_get_length(d->pending));

    d->req = NULL;
    d->evcon = NULL;
    d->next = s->free_list;
    s->free_list = d;
}


void
emu_deferred_free_all(emu_server_t *s)
{
    emu_deferred_t  *d;

    while ((d = s->free_list) != NULL) {
        s->free_list = d->next;
        evbuffer_free(d->pending);
        free(d);
    }
}


/*
 * Releases the deferred response when evhttp frees its connection. When the
 * peer went away mid-response, evhttp detached the request and we free it.
 * A request still on the connection is freed by evhttp after this callback.
 */
static void
emu_deferred_closed(struct evhttp_connection *evcon, void *arg)
{
    emu_deferred_t  *d = arg;

    (void) evcon;

    if (d->call.stream && d->stream.chunk_index < d->stream.chunk_count) {
        emu_log("info", "stream closed by the client after %u of %u content "
                "chunks", d->stream.chunk_index, d->stream.chunk_count);
    }

    if (evhttp_request_get_connection(d->req) == NULL) {
        evhttp_request_free(d->req);
    }
    emu_deferred_release(d);
}


/* Stops watching the connection: the next reply call may free it. */
static void
emu_deferred_detach(emu_deferred_t *d)
{
    evhttp_connection_set_closecb(d->evcon, NULL, NULL);
}


static void
emu_deferred_arm(emu_deferred_t *d, int ms)
{
    struct timeval  tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_assign(&d->timer, d->server->base, emu_deferred_timer, d);
    evtimer_add(&d->timer, &tv);
}


/* Resets the connection once what was sent has been written. */
static void
emu_deferred_drop(emu_deferred_t *d)
{
    struct bufferevent  *bev = evhttp_connection_get_bufferevent(d->evcon);
    struct linger        lg = { 1, 0 };
    evutil_socket_t      fd = bufferevent_getfd(bev);

    /* Linger 0 makes evhttp's close() send a reset instead of a FIN, and
     * shutdown() makes evhttp see the end of the connection now. */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    shutdown(fd, SHUT_RDWR);
}


static void
emu_deferred_after_flush(emu_deferred_t *d)
{
    switch (d->after) {
    case EMU_AFTER_DELAY:
        emu_deferred_arm(d, d->call.knobs.chunk_delay_ms);
        break;

    case EMU_AFTER_DROP:
        emu_deferred_drop(d);
        break;

    default:
        emu_deferred_detach(d);
        evhttp_send_reply_end(d->req);
        emu_deferred_release(d);
        break;
    }
}


static void
emu_deferred_written(struct evhttp_connection *evcon, void *arg)
{
    (void) evcon;
    emu_deferred_flush(arg);
}


/*
 * Hands the pending bytes to evhttp: all at once, or split_bytes at a time
 * with a wait for each piece to reach the socket, so the client receives
 * the stream cut at those points.
 */
static void
emu_deferred_flush(emu_deferred_t *d)
{
    struct evbuffer  *piece = d->server->out;
    size_t            len = evbuffer_get_length(d->pending);
    int               split = d->call.knobs.split_bytes;

    if (len == 0) {
        emu_deferred_after_flush(d);
        return;
    }

    if (d->after == EMU_AFTER_END && split <= 0) {
        evhttp_send_reply_chunk(d->req, d->pending);
        emu_deferred_after_flush(d);
        return;
    }

    if (split > 0 && len > (size_t) split) {
        evbuffer_remove_buffer(d->pending, piece, split);
        evhttp_send_reply_chunk_with_cb(d->req, piece, emu_deferred_written, d);
        return;
    }

    evhttp_send_reply_chunk_with_cb(d->req, d->pending, emu_deferred_written, d);
}


/* Generates events until the stream ends, drops or waits between chunks. */
static void
emu_deferred_pump(emu_deferred_t *d)
{
    emu_event_t  ev;

    for ( ;; ) {
        ev = emu_stream_next(&d->stream, d->pending);

        if (ev == EMU_EVENT_END) {
            d->after = EMU_AFTER_END;
            break;
        }
        if (ev == EMU_EVENT_DROP) {
            d->after = EMU_AFTER_DROP;
            break;
        }
        if (ev == EMU_EVENT_CONTENT && d->call.knobs.chunk_delay_ms > 0) {
            d->after = EMU_AFTER_DELAY;
            break;
        }
    }

    emu_deferred_flush(d);
}


static void
emu_deferred_begin_stream(emu_deferred_t *d)
{
    struct evkeyvalq  *headers = evhttp_request_get_output_headers(d->req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(d->evcon);
    int                on = 1;

    setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &on,
               sizeof(on));

    evhttp_add_header(headers, "Content-Type",
                      emu_stream_content_type(d->call.format));
    evhttp_add_header(headers, "Cache-Control", "no-cache");

    /*
     * With this header an nginx proxy in front (bench/run.sh's nginx_stream
     * case) passes the events as they come, while complete responses stay
     * buffered.
     */
    evhttp_add_header(headers, "X-Accel-Buffering", "no");
    evhttp_send_reply_start(d->req, 200, "OK");

    emu_stream_init(&d->stream, &d->call);
    emu_deferred_pump(d);
}


/* Starts the response once delay_ms is over (or at once without a delay). */
static void
emu_deferred_begin(emu_deferred_t *d)
{
    emu_server_t  *s = d->server;

    d->started = true;

    if (d->status != 200) {
        emu_deferred_detach(d);
        emu_send_error(d->req, s->out, d->call.format, d->status,
                       d->call.knobs.retry_after, NULL);
        emu_deferred_release(d);
        return;
    }

    if (!d->call.stream) {
        emu_deferred_detach(d);
        emu_send_complete(d->req, s->out, &d->call);
        emu_deferred_release(d);
        return;
    }

    emu_deferred_begin_stream(d);
}


static void
emu_deferred_timer(evutil_socket_t fd, short events, void *arg)
{
    emu_deferred_t  *d = arg;

    (void) fd;
    (void) events;

    if (!d->started) {
        emu_deferred_begin(d);
    } else {
        emu_deferred_pump(d);
    }
}


/*
 * Takes over the request and the call (its reply buffer included; the
 * caller's copy is left empty). Returns -1, with nothing taken, when memory
 * ran out.
 */
int
emu_deferred_start(emu_server_t *s, struct evhttp_request *req,
    emu_call_t *call, int status)
{
    emu_deferred_t  *d;

    d = emu_deferred_alloc(s);
    if (d == NULL) {
        return -1;
    }

    d->call = *call;
    if (call->reply == call->reply_inline) {
        d->call.reply = d->call.reply_inline;
    }
    call->reply = NULL;

    d->req = req;
    d->evcon = evhttp_request_get_connection(req);
    d->status = status;
    d->started = false;
    d->after = EMU_AFTER_END;
    evhttp_connection_set_closecb(d->evcon, emu_deferred_closed, d);

    if (d->call.knobs.delay_ms > 0) {
        emu_deferred_arm(d, d->call.knobs.delay_ms);
    } else {
        emu_deferred_begin(d);
    }

    return 0;
}
