/*
 * libcurl's multi interface on libevent. curl requests which sockets to
 * watch (cg_upstream_socket_cb) and when to run its timeouts
 * (cg_upstream_timer_cb). The loop reports socket events and expired timers
 * back through curl_multi_socket_action().
 */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heap.h"
#include "log.h"
#include "upstream.h"

/*
 * Idle easy handles kept for the next calls. A pooled handle keeps its
 * allocations and the options that are the same for every call, so a call
 * skips curl_easy_init()'s buffers and set-up, and curl_easy_reset()'s
 * walk over every option (about 2 500 instructions in curl 7.88).
 */
#define CG_UPSTREAM_POOL_SIZE  64

/*
 * Parsed URLs (CURLOPT_CURLU). Given a URL string, curl 7.88 parses it for
 * every call and prints it back in normal form: about 15 000 instructions,
 * more than a tenth of a chat in the worker. A worker calls a few URLs, one
 * per provider and path, and one per stored key with its own base URL. Past
 * this many, a new URL takes the slot of the least recently called URL that
 * no running call uses. While every slot is in use, curl gets the string.
 */
#define CG_UPSTREAM_URLS  32

/*
 * curl's receive buffer (CURLOPT_BUFFERSIZE), allocated once per easy handle
 * and held while the handle lives. curl 7.88's default of 16 KB made it the
 * largest cost of a call in flight, 16 KB of about 36 KB (massif, 256 calls).
 * A chat response is a few KB and a stream chunk a few hundred bytes.
 *
 * 2 KB costs one more read per 2 KB of a larger response. Over plain HTTP
 * that is a recv() each. Over TLS, OpenSSL decrypts a whole record of up to
 * 16 KB into its own buffer, so curl's further reads of the same record
 * make no system call.
 *
 * curl allocates one byte more than this size (Curl_preconnect() in curl
 * 7.88). 2047 makes that exactly 2048 bytes, where mimalloc 2.0 has a size
 * class: a 2049-byte block would take 2560.
 */
#define CG_UPSTREAM_RECV_BUFFER  2047L

/*
 * Calls in flight past which cg_heap_trim() runs CG_UPSTREAM_TRIM_DELAY_MS
 * after the last call ended. glibc keeps freed heap below the top of the
 * heap: after 1024 concurrent calls, 23 MB of heap stayed resident without
 * the trim and 12 MB with it. The delay lets the client connections of the
 * burst close first.
 */
#define CG_UPSTREAM_TRIM_CALLS     256
#define CG_UPSTREAM_TRIM_DELAY_MS  1000

typedef struct cg_upstream_sock_s  cg_upstream_sock_t;

/*
 * An easy handle with what its callbacks need. curl's data pointers
 * (CURLOPT_PRIVATE, _HEADERDATA, _WRITEDATA) and error buffer point here
 * for the handle's life, so a call sets none of them, and a pooled handle
 * points at no freed call.
 */
typedef struct {
    CURL                *easy;
    cg_upstream_call_t  *call;        /* the running call, NULL while pooled */
    char                 error[CURL_ERROR_SIZE];
} cg_upstream_easy_t;

/*
 * A socket that curl watches through the loop.
 *
 * curl stops watching a connection's socket (CURL_POLL_REMOVE) at the end
 * of each call and watches it again when the next call takes the connection
 * from its cache: an epoll_ctl() to delete it and one to add it again, per
 * call. So the socket of a connection that curl keeps stays in the loop
 * between calls, parked, and a parked socket that turns readable (the
 * provider closed an idle connection) leaves the loop until curl wants it
 * again. curl closes a kept connection through CURLOPT_CLOSESOCKETFUNCTION,
 * which frees its socket here. Other sockets, such as a resolver's or a
 * connection attempt that lost, are freed on CURL_POLL_REMOVE, because curl
 * closes them without a callback. Left in the loop after its close, such a
 * descriptor would hide the next socket with its number from epoll, since
 * libevent would take that socket as registered already.
 */
struct cg_upstream_sock_s {
    cg_upstream_t       *up;
    curl_socket_t        fd;
    struct event        *ev;
    short                events;      /* what ev watches, 0 when not added */
    unsigned             kept:1;      /* a kept connection's, closed by curl */
    unsigned             parked:1;
    cg_upstream_sock_t  *prev, *next;
};

typedef struct {
    char                *url;
    CURLU               *parsed;
    int                  calls;       /* running calls that use it */
    uint64_t             used;        /* up->url_clock at its last call */
} cg_upstream_url_t;

struct cg_upstream_s {
    struct event_base   *base;
    CURLM               *multi;
    struct event        *timer;
    long                 connect_timeout_ms;
    long                 request_timeout_ms;
    char                *proxy;
    cg_upstream_call_t  *calls;       /* running calls, for cg_upstream_free() */
    int                  ncalls;      /* number of running calls */
    int                  trim;        /* set when ncalls exceeded CG_UPSTREAM_TRIM_CALLS */
    struct event        *trim_timer;
    cg_upstream_sock_t  *socks;
    cg_upstream_sock_t **by_fd;       /* socks indexed by descriptor */
    size_t               nby_fd;
    cg_upstream_easy_t  *pool[CG_UPSTREAM_POOL_SIZE];
    size_t               pooled;
    cg_upstream_url_t    urls[CG_UPSTREAM_URLS];
    size_t               nurls;
    uint64_t             url_clock;   /* counts lookups, for the LRU slot */
};

/* One call, from cg_upstream_start() until on_done returns or it is cancelled. */
struct cg_upstream_call_s {
    cg_upstream_t          *up;
    cg_upstream_easy_t     *handle;
    CURL                   *easy;         /* handle->easy */
    cg_upstream_url_t      *url;          /* parsed URL, NULL if not cached */
    cg_upstream_handler_t   handler;
    void                   *arg;
    long                    status;
    /*
     * The body collected when on_data is NULL, in one block. A complete
     * response mostly arrives in one write, which the block takes exactly,
     * without an evbuffer's chain and the copy of evbuffer_pullup().
     */
    char                   *body;
    size_t                  body_len;
    size_t                  body_cap;
    size_t                  max_body;
    unsigned                headers_done:1;
    unsigned                aborted:1;
    unsigned                too_large:1;
    cg_upstream_call_t     *prev, *next;
};

static int cg_upstream_socket_cb(CURL *easy, curl_socket_t fd, int what,
    void *userp, void *socketp);
static cg_upstream_sock_t *cg_upstream_sock_new(cg_upstream_t *up,
    curl_socket_t fd);
static void cg_upstream_sock_free(cg_upstream_t *up, cg_upstream_sock_t *sock);
static int cg_upstream_sock_kept(CURL *easy, curl_socket_t fd);
static int cg_upstream_sock_watch(cg_upstream_sock_t *sock, short events);
static int cg_upstream_close_cb(void *arg, curl_socket_t fd);
static int cg_upstream_timer_cb(CURLM *multi, long timeout_ms, void *userp);
static void cg_upstream_event_cb(evutil_socket_t fd, short events, void *arg);
static void cg_upstream_timeout_cb(evutil_socket_t fd, short events, void *arg);
static void cg_upstream_trim_cb(evutil_socket_t fd, short events, void *arg);
static void cg_upstream_check_done(cg_upstream_t *up);
static void cg_upstream_finish(cg_upstream_call_t *call, CURLcode code);
static cg_upstream_result_t cg_upstream_classify(cg_upstream_call_t *call,
    CURLcode code, const char **error);
static size_t cg_upstream_header_cb(char *line, size_t size, size_t n,
    void *arg);
static size_t cg_upstream_write_cb(char *data, size_t size, size_t n,
    void *arg);
static int cg_upstream_body_grow(cg_upstream_call_t *call, size_t need);
static cg_upstream_url_t *cg_upstream_url(cg_upstream_t *up, const char *url);
static cg_upstream_url_t *cg_upstream_url_slot(cg_upstream_t *up);
static cg_upstream_easy_t *cg_upstream_easy_get(cg_upstream_t *up);
static void cg_upstream_easy_put(cg_upstream_t *up, cg_upstream_easy_t *h);
static void cg_upstream_easy_free(cg_upstream_easy_t *h);
static void cg_upstream_call_free(cg_upstream_call_t *call);


cg_upstream_t *
cg_upstream_new(struct event_base *base, const cg_upstream_conf_t *conf)
{
    cg_upstream_t  *up;

    up = calloc(1, sizeof(*up));
    if (up == NULL) {
        return NULL;
    }

    up->base = base;
    up->connect_timeout_ms = conf->connect_timeout_ms;
    up->request_timeout_ms = conf->request_timeout_ms;

    if (conf->proxy != NULL && (up->proxy = strdup(conf->proxy)) == NULL) {
        goto fail;
    }

    up->multi = curl_multi_init();
    up->timer = evtimer_new(base, cg_upstream_timeout_cb, up);
    up->trim_timer = evtimer_new(base, cg_upstream_trim_cb, up);
    if (up->multi == NULL || up->timer == NULL || up->trim_timer == NULL) {
        goto fail;
    }

    curl_multi_setopt(up->multi, CURLMOPT_SOCKETFUNCTION, cg_upstream_socket_cb);
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETDATA, up);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERFUNCTION, cg_upstream_timer_cb);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERDATA, up);
    curl_multi_setopt(up->multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);

    /*
     * Without a cap of its own, curl 7.88 (conncache.c) keeps at most four
     * connections per call in flight at the moment a call ends, and closes
     * the oldest above that. Each time the load dips, it would close
     * connections that the next burst has to open again, with a TLS
     * handshake at a real provider.
     */
    curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, conf->max_connections);

    return up;

fail:

    cg_upstream_free(up);
    return NULL;
}


void
cg_upstream_free(cg_upstream_t *up)
{
    if (up == NULL) {
        return;
    }

    while (up->calls != NULL) {
        cg_upstream_cancel(up->calls);
    }

    while (up->pooled > 0) {
        cg_upstream_easy_free(up->pool[--up->pooled]);
    }

    while (up->nurls > 0) {
        up->nurls--;
        curl_url_cleanup(up->urls[up->nurls].parsed);
        free(up->urls[up->nurls].url);
    }

    if (up->multi != NULL) {
        curl_multi_cleanup(up->multi);
    }

    /* curl closed its cached connections through cg_upstream_close_cb() */
    while (up->socks != NULL) {
        cg_upstream_sock_free(up, up->socks);
    }
    free(up->by_fd);

    if (up->timer != NULL) {
        event_free(up->timer);
    }
    if (up->trim_timer != NULL) {
        event_free(up->trim_timer);
    }

    free(up->proxy);
    free(up);
}


cg_upstream_call_t *
cg_upstream_start(cg_upstream_t *up, const char *url,
    const struct curl_slist *headers, const char *body, size_t body_len,
    size_t max_body, const cg_upstream_handler_t *handler, void *arg)
{
    return cg_upstream_start_method(up, "POST", NULL, url, headers, body,
                                    body_len, max_body, handler, arg);
}


cg_upstream_call_t *
cg_upstream_start_method(cg_upstream_t *up, const char *method,
    const char *unix_path, const char *url, const struct curl_slist *headers,
    const char *body, size_t body_len, size_t max_body,
    const cg_upstream_handler_t *handler, void *arg)
{
    cg_upstream_call_t  *call;
    CURL                *e;

    call = calloc(1, sizeof(*call));
    if (call == NULL) {
        return NULL;
    }

    call->up = up;
    call->handler = *handler;
    call->arg = arg;
    call->max_body = max_body;

    call->handle = cg_upstream_easy_get(up);
    if (call->handle == NULL) {
        goto fail;
    }

    call->handle->call = call;
    call->handle->error[0] = '\0';
    e = call->easy = call->handle->easy;

    /*
     * Both are set: curl connects by the parsed URL, and keeps the string
     * for its messages and CURLINFO_EFFECTIVE_URL without printing it again.
     */
    call->url = cg_upstream_url(up, url);
    if (call->url != NULL) {
        call->url->calls++;
    }

    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CURLU,
                     call->url != NULL ? call->url->parsed : NULL);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, (struct curl_slist *) headers);

    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);

    } else {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                         strcmp(method, "POST") != 0 ? method : NULL);
    }

    /* NULL clears the path a pooled handle may have kept */
    curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, unix_path);

    if (curl_multi_add_handle(up->multi, e) != CURLM_OK) {
        goto fail;
    }

    call->next = up->calls;
    if (up->calls != NULL) {
        up->calls->prev = call;
    }
    up->calls = call;

    if (++up->ncalls > CG_UPSTREAM_TRIM_CALLS) {
        up->trim = 1;
    }

    return call;

fail:

    cg_upstream_call_free(call);
    return NULL;
}


void
cg_upstream_cancel(cg_upstream_call_t *call)
{
    curl_multi_remove_handle(call->up->multi, call->easy);
    cg_upstream_call_free(call);
}


/* May run on_data for bytes curl held back, before it returns. */
void
cg_upstream_resume(cg_upstream_call_t *call)
{
    curl_easy_pause(call->easy, CURLPAUSE_CONT);
}


long
cg_upstream_status(cg_upstream_call_t *call)
{
    return call->status;
}


const char *
cg_upstream_header(cg_upstream_call_t *call, const char *name)
{
    struct curl_header  *h;

    if (curl_easy_header(call->easy, name, 0, CURLH_HEADER, -1, &h)
        != CURLHE_OK)
    {
        return NULL;
    }

    return h->value;
}


const char *
cg_upstream_body(cg_upstream_call_t *call, size_t *len)
{
    *len = call->body_len;
    return call->body != NULL ? call->body : "";
}


/* Watches fd for the events curl requests (CURL_POLL_IN/OUT/INOUT), or stops on REMOVE. */
static int
cg_upstream_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
    void *socketp)
{
    cg_upstream_t       *up = userp;
    cg_upstream_sock_t  *sock = socketp;
    short                events;

    if (sock == NULL && fd >= 0 && (size_t) fd < up->nby_fd) {
        sock = up->by_fd[fd];
    }

    if (what == CURL_POLL_REMOVE) {
        if (sock == NULL) {
            return 0;
        }

        if (!sock->kept && cg_upstream_sock_kept(easy, fd)) {
            sock->kept = 1;
        }

        if (sock->kept) {
            sock->parked = 1;
            return 0;
        }

        cg_upstream_sock_free(up, sock);
        return 0;
    }

    if (sock == NULL) {
        sock = cg_upstream_sock_new(up, fd);
        if (sock == NULL) {
            return -1;
        }
    }

    if (sock->parked || socketp == NULL) {
        sock->parked = 0;
        curl_multi_assign(up->multi, fd, sock);
    }

    events = 0;
    if (what & CURL_POLL_IN) {
        events |= EV_READ;
    }
    if (what & CURL_POLL_OUT) {
        events |= EV_WRITE;
    }

    return cg_upstream_sock_watch(sock, events);
}


/* Registers sock's event for events, unless it is registered for them. */
static int
cg_upstream_sock_watch(cg_upstream_sock_t *sock, short events)
{
    cg_upstream_t  *up = sock->up;

    if (sock->events == events) {
        return 0;
    }

    /* one event per socket for its lifetime: a change costs no allocation */
    if (sock->ev == NULL) {
        sock->ev = event_new(up->base, sock->fd, events | EV_PERSIST,
                             cg_upstream_event_cb, up);
    } else {
        event_del(sock->ev);
        event_assign(sock->ev, up->base, sock->fd, events | EV_PERSIST,
                     cg_upstream_event_cb, up);
    }

    sock->events = 0;

    if (sock->ev == NULL || event_add(sock->ev, NULL) != 0) {
        cg_log_error(NULL, "cannot watch a provider socket");
        return -1;
    }
    sock->events = events;

    return 0;
}


static cg_upstream_sock_t *
cg_upstream_sock_new(cg_upstream_t *up, curl_socket_t fd)
{
    size_t               n;
    cg_upstream_sock_t  *sock, **by_fd;

    if (fd < 0) {
        return NULL;
    }

    if ((size_t) fd >= up->nby_fd) {
        n = up->nby_fd ? up->nby_fd : 64;
        while (n <= (size_t) fd) {
            n *= 2;
        }

        by_fd = realloc(up->by_fd, n * sizeof(*by_fd));
        if (by_fd == NULL) {
            cg_log_error(NULL, "out of memory watching provider socket %d",
                         (int) fd);
            return NULL;
        }
        memset(by_fd + up->nby_fd, 0, (n - up->nby_fd) * sizeof(*by_fd));
        up->by_fd = by_fd;
        up->nby_fd = n;
    }

    sock = calloc(1, sizeof(*sock));
    if (sock == NULL) {
        cg_log_error(NULL, "out of memory watching provider socket %d",
                     (int) fd);
        return NULL;
    }

    sock->up = up;
    sock->fd = fd;
    sock->next = up->socks;
    if (up->socks != NULL) {
        up->socks->prev = sock;
    }
    up->socks = sock;
    up->by_fd[fd] = sock;

    return sock;
}


static void
cg_upstream_sock_free(cg_upstream_t *up, cg_upstream_sock_t *sock)
{
    if (sock->prev != NULL) {
        sock->prev->next = sock->next;
    } else {
        up->socks = sock->next;
    }
    if (sock->next != NULL) {
        sock->next->prev = sock->prev;
    }

    if ((size_t) sock->fd < up->nby_fd && up->by_fd[sock->fd] == sock) {
        up->by_fd[sock->fd] = NULL;
    }

    if (sock->ev != NULL) {
        event_free(sock->ev);
    }
    free(sock);
}


/*
 * Tells whether fd is the socket of the connection that curl kept after
 * easy's call. From the call's end on, curl 7.88 reports that socket as the
 * handle's active socket, found by a walk over its connection cache. So the
 * check runs once per connection, at the end of its first call.
 */
static int
cg_upstream_sock_kept(CURL *easy, curl_socket_t fd)
{
    curl_socket_t  active;

    if (easy == NULL
        || curl_easy_getinfo(easy, CURLINFO_ACTIVESOCKET, &active) != CURLE_OK)
    {
        return 0;
    }

    return active == fd;
}


/* curl closes a connection: its socket leaves the loop first. */
static int
cg_upstream_close_cb(void *arg, curl_socket_t fd)
{
    cg_upstream_t       *up = arg;
    cg_upstream_sock_t  *sock;

    sock = (fd >= 0 && (size_t) fd < up->nby_fd) ? up->by_fd[fd] : NULL;

    if (sock != NULL) {
        cg_upstream_sock_free(up, sock);
    }

    return close(fd);
}


static int
cg_upstream_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    cg_upstream_t   *up = userp;
    struct timeval   tv;

    (void) multi;

    if (timeout_ms < 0) {
        evtimer_del(up->timer);
        return 0;
    }

    /*
     * curl requests 0 after a call is added. Making the timer active runs it
     * later in the same loop pass, without another epoll_wait().
     */
    if (timeout_ms == 0) {
        evtimer_del(up->timer);
        event_active(up->timer, EV_TIMEOUT, 0);
        return 0;
    }

    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(up->timer, &tv);

    return 0;
}


static void
cg_upstream_event_cb(evutil_socket_t fd, short events, void *arg)
{
    cg_upstream_t       *up = arg;
    cg_upstream_sock_t  *sock;
    int                  action = 0, running;

    /* A parked socket that turns readable (the provider closed the
     * connection) leaves the loop. curl finds the connection dead when a
     * call takes it again, and closes it. */

    sock = ((size_t) fd < up->nby_fd) ? up->by_fd[fd] : NULL;

    if (sock != NULL && sock->parked) {
        event_del(sock->ev);
        sock->events = 0;
        return;
    }

    if (events & EV_READ) {
        action |= CURL_CSELECT_IN;
    }
    if (events & EV_WRITE) {
        action |= CURL_CSELECT_OUT;
    }

    curl_multi_socket_action(up->multi, fd, action, &running);
    cg_upstream_check_done(up);
}


static void
cg_upstream_timeout_cb(evutil_socket_t fd, short events, void *arg)
{
    cg_upstream_t  *up = arg;
    int             running;

    (void) fd;
    (void) events;

    curl_multi_socket_action(up->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    cg_upstream_check_done(up);
}


static void
cg_upstream_check_done(cg_upstream_t *up)
{
    CURLMsg             *msg;
    CURLcode             code;
    cg_upstream_easy_t  *h;
    int                  left;

    while ((msg = curl_multi_info_read(up->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        code = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &h);
        cg_upstream_finish(h->call, code);
    }
}


static void
cg_upstream_finish(cg_upstream_call_t *call, CURLcode code)
{
    cg_upstream_result_t   result;
    const char            *error;

    curl_multi_remove_handle(call->up->multi, call->easy);
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &call->status);

    result = cg_upstream_classify(call, code, &error);
    call->handler.on_done(call, result, error, call->arg);

    cg_upstream_call_free(call);
}


/* Maps a CURLcode to a result; *error gets curl's own text for the log. */
static cg_upstream_result_t
cg_upstream_classify(cg_upstream_call_t *call, CURLcode code,
    const char **error)
{
    curl_off_t   connect_us = 0, total_us = 0;
    char        *buf = call->handle->error;

    *error = buf[0] ? buf : curl_easy_strerror(code);

    if (code == CURLE_OK) {
        *error = NULL;
        return CG_UPSTREAM_OK;
    }

    if (call->aborted) {
        return CG_UPSTREAM_ABORTED;
    }

    if (call->too_large) {
        snprintf(buf, CURL_ERROR_SIZE, "answer is larger than %zu bytes",
                 call->max_body);
        *error = buf;
        return CG_UPSTREAM_FAILED;
    }

    switch (code) {

    case CURLE_OPERATION_TIMEDOUT:
        curl_easy_getinfo(call->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
        curl_easy_getinfo(call->easy, CURLINFO_TOTAL_TIME_T, &total_us);

        /* the connect timeout, not the request timeout, ran out */
        if (connect_us == 0 && total_us / 1000 < call->up->request_timeout_ms) {
            return CG_UPSTREAM_CONNECT;
        }
        return CG_UPSTREAM_TIMEOUT;

    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return CG_UPSTREAM_CONNECT;

    default:
        return CG_UPSTREAM_FAILED;
    }
}


static size_t
cg_upstream_header_cb(char *line, size_t size, size_t n, void *arg)
{
    cg_upstream_easy_t  *h = arg;
    cg_upstream_call_t  *call = h->call;
    size_t               len = size * n;
    long                 status = 0;

    if (call->headers_done || !(len <= 2 && (line[0] == '\r' || line[0] == '\n'))) {
        return len;
    }

    /* the blank line after a block of headers; 1xx blocks are interim */
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200) {
        return len;
    }

    call->status = status;
    call->headers_done = 1;

    if (call->handler.on_headers != NULL
        && call->handler.on_headers(call, status, call->arg) == CG_UPSTREAM_ABORT)
    {
        call->aborted = 1;
        return 0;
    }

    return len;
}


static size_t
cg_upstream_write_cb(char *data, size_t size, size_t n, void *arg)
{
    cg_upstream_easy_t  *h = arg;
    cg_upstream_call_t  *call = h->call;
    size_t               len = size * n;

    if (call->handler.on_data != NULL) {
        switch (call->handler.on_data(call, data, len, call->arg)) {
        case CG_UPSTREAM_PAUSE:
            return CURL_WRITEFUNC_PAUSE;
        case CG_UPSTREAM_ABORT:
            call->aborted = 1;
            return 0;
        default:
            return len;
        }
    }

    if (call->body_len + len > call->max_body) {
        call->too_large = 1;
        return 0;
    }

    if (len > call->body_cap - call->body_len
        && cg_upstream_body_grow(call, call->body_len + len) != 0)
    {
        return 0;
    }

    memcpy(call->body + call->body_len, data, len);
    call->body_len += len;

    return len;
}


/*
 * Makes room for need bytes of body: the first block exactly, then doubled.
 * A bigger block is a copy, not a realloc(), so that the old one can be
 * wiped: the body carries the conversation, as the request's does.
 */
static int
cg_upstream_body_grow(cg_upstream_call_t *call, size_t need)
{
    size_t   cap;
    char    *body;

    if (call->body == NULL) {
        cap = need;

    } else {
        for (cap = call->body_cap * 2; cap < need; cap *= 2) {
            /* void */
        }
    }

    body = malloc(cap);
    if (body == NULL) {
        return -1;
    }

    if (call->body != NULL) {
        memcpy(body, call->body, call->body_len);
        explicit_bzero(call->body, call->body_len);
        free(call->body);
    }

    call->body = body;
    call->body_cap = cap;

    return 0;
}


static void
cg_upstream_call_free(cg_upstream_call_t *call)
{
    cg_upstream_t   *up = call->up;
    struct timeval   tv;
    int              linked;

    linked = call->prev != NULL || up->calls == call;

    if (call->prev != NULL) {
        call->prev->next = call->next;
    } else if (up->calls == call) {
        up->calls = call->next;
    }
    if (call->next != NULL) {
        call->next->prev = call->prev;
    }

    if (call->handle != NULL) {
        cg_upstream_easy_put(up, call->handle);
    }
    if (call->url != NULL) {
        call->url->calls--;
    }
    if (call->body != NULL) {
        explicit_bzero(call->body, call->body_len);
        free(call->body);
    }

    free(call);

    if (linked && --up->ncalls == 0 && up->trim) {
        tv.tv_sec = CG_UPSTREAM_TRIM_DELAY_MS / 1000;
        tv.tv_usec = (CG_UPSTREAM_TRIM_DELAY_MS % 1000) * 1000;
        evtimer_add(up->trim_timer, &tv);
    }
}


/* Releases the heap that a burst of calls freed, unless calls are running again. */
static void
cg_upstream_trim_cb(evutil_socket_t fd, short events, void *arg)
{
    cg_upstream_t  *up = arg;

    (void) fd;
    (void) events;

    if (up->ncalls > 0) {
        return;
    }

    up->trim = 0;
    cg_heap_trim();
}


/*
 * Returns the slot with the parsed form of url, parsed on its first call.
 * Returns NULL when url does not parse, every slot is in use by a running
 * call, or memory is short. curl then parses the string itself and reports
 * a bad URL in its own words. The URL is parsed before a slot is emptied
 * for it, so every slot below nurls contains a URL.
 */
static cg_upstream_url_t *
cg_upstream_url(cg_upstream_t *up, const char *url)
{
    cg_upstream_url_t  *u;
    CURLU              *parsed;
    char               *copy;
    size_t              i;

    up->url_clock++;

    for (i = 0; i < up->nurls; i++) {
        if (strcmp(up->urls[i].url, url) == 0) {
            up->urls[i].used = up->url_clock;
            return &up->urls[i];
        }
    }

    parsed = curl_url();
    copy = strdup(url);

    /* the flags curl 7.88 parses a CURLOPT_URL string with */
    if (parsed == NULL || copy == NULL
        || curl_url_set(parsed, CURLUPART_URL, url,
                        CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME)
           != CURLUE_OK)
    {
        goto fail;
    }

    u = cg_upstream_url_slot(up);
    if (u == NULL) {
        goto fail;
    }

    u->parsed = parsed;
    u->url = copy;
    u->used = up->url_clock;

    if (u == &up->urls[up->nurls]) {
        up->nurls++;
    }

    return u;

fail:

    curl_url_cleanup(parsed);
    free(copy);
    return NULL;
}


/*
 * Returns an empty slot for a new URL: the next unused one, or the least
 * recently called URL that no running call uses, emptied. NULL when every
 * slot is in use.
 */
static cg_upstream_url_t *
cg_upstream_url_slot(cg_upstream_t *up)
{
    cg_upstream_url_t  *u, *lru;
    size_t              i;

    if (up->nurls < CG_UPSTREAM_URLS) {
        return &up->urls[up->nurls];
    }

    lru = NULL;

    for (i = 0; i < up->nurls; i++) {
        u = &up->urls[i];

        if (u->calls == 0 && (lru == NULL || u->used < lru->used)) {
            lru = u;
        }
    }

    if (lru == NULL) {
        return NULL;
    }

    /* pooled easy handles drop their CURLOPT_CURLU in cg_upstream_easy_put() */
    curl_url_cleanup(lru->parsed);
    free(lru->url);
    lru->parsed = NULL;
    lru->url = NULL;

    return lru;
}


/*
 * Takes an idle easy handle from the pool, or makes one with the options
 * that every call shares. NULL when out of memory.
 */
static cg_upstream_easy_t *
cg_upstream_easy_get(cg_upstream_t *up)
{
    cg_upstream_easy_t  *h;
    CURL                *e;

    if (up->pooled > 0) {
        return up->pool[--up->pooled];
    }

    h = malloc(sizeof(*h));
    if (h == NULL) {
        return NULL;
    }

    e = curl_easy_init();
    if (e == NULL) {
        free(h);
        return NULL;
    }

    h->easy = e;
    h->call = NULL;
    h->error[0] = '\0';

    curl_easy_setopt(e, CURLOPT_PRIVATE, h);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->error);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, cg_upstream_header_cb);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, cg_upstream_write_cb);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, CG_UPSTREAM_RECV_BUFFER);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, up->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, up->request_timeout_ms);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS);
    /* no CURLOPT_PIPEWAIT: it makes a call wait for another call's connection */
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, cg_upstream_close_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, up);

    /*
     * No Accept-Encoding, because chat responses are a few kilobytes and
     * streams are sent as they come, so compression saves little on the
     * wire. It would cost curl a header line to format and the worker an
     * inflate, per call.
     */

    /*
     * "" for both turns off curl's reading of http_proxy, no_proxy and
     * friends. Unset, curl reads no_proxy with getenv() on every call.
     */
    curl_easy_setopt(e, CURLOPT_PROXY, up->proxy ? up->proxy : "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "");

    return h;
}


/*
 * Keeps h, whose handle has left the multi handle, for a later call, or
 * frees it when the pool is full. It clears the options that point into the
 * finished call, because the header list (with the provider key) and the
 * body are freed after this, and the parsed URL may be.
 */
static void
cg_upstream_easy_put(cg_upstream_t *up, cg_upstream_easy_t *h)
{
    h->call = NULL;

    if (up->pooled == CG_UPSTREAM_POOL_SIZE) {
        cg_upstream_easy_free(h);
        return;
    }

    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h->easy, CURLOPT_CURLU, NULL);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, NULL);

    up->pool[up->pooled++] = h;
}


static void
cg_upstream_easy_free(cg_upstream_easy_t *h)
{
    curl_easy_cleanup(h->easy);
    free(h);
}
