/*
 * HTTP/1.1 connections of the worker's server: accept, read and parse a
 * request in place, hand it to the handler, write the response.
 *
 * Each connection keeps its read event registered for its whole life, and
 * a response is written as soon as it is complete. The write event is added
 * only when the socket is full. A chat then costs one read and one write on
 * nginx's connection and no epoll_ctl, and the read event also reports a
 * client that hangs up while its request is with a handler.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "http_conn.h"
#include "log.h"

/*
 * Read buffer of a new connection. nginx's head of a chat request is about
 * 500 bytes, and a larger request doubles the buffer as it comes in.
 */
#define CG_HTTP_IN_SIZE        1024

/* A read buffer above this size is freed once its request is done. */
#define CG_HTTP_KEEP_SIZE      (64 * 1024)

/* Header lines per request. */
#define CG_HTTP_MAX_HEADERS    100

/* A chunk-size line with its extensions, without the CRLF. */
#define CG_HTTP_MAX_CHUNK_LINE  64

/* Connections accepted per accept event, so a burst cannot starve the loop. */
#define CG_HTTP_ACCEPT_BATCH   64

/* Pause of accepting after the process ran out of descriptors. */
#define CG_HTTP_ACCEPT_PAUSE_MS  100

typedef struct cg_http_conn_s  cg_http_conn_t;

struct cg_http_listener_s {
    struct event_base   *base;
    int                  fd;
    struct event        *accept;
    struct event        *accept_pause;
    struct event        *sweep;       /* once a second: timeouts */
    struct event        *release;     /* deferred done callbacks */
    cg_http_limits_t     limits;
    cg_http_handler_pt   handler;
    void                *arg;
    cg_http_conn_t      *conns;
    cg_http_req_t       *released;    /* requests waiting for their done callback */
};

struct cg_http_conn_s {
    cg_http_listener_t  *ls;
    cg_http_conn_t      *prev;
    cg_http_conn_t      *next;
    int                  fd;
    struct event        *read;
    struct event        *write;
    char                *in;
    size_t               in_len;
    size_t               in_cap;
    size_t               scanned;     /* of in, bytes searched for the head's end */
    char                *out;
    size_t               out_pos;
    size_t               out_len;
    size_t               out_cap;
    cg_http_req_t       *parsed;      /* a request whose body is still coming */
    cg_http_req_t       *req;         /* the request being served */
    size_t               req_len;     /* bytes of in that belong to req */
    time_t               active;      /* last read or write progress */
    unsigned             busy;        /* callbacks of this connection on the stack */
    unsigned             writing:1;   /* the write event is added */
    unsigned             flush_soon:1; /* the write event is activated */
    unsigned             read_off:1;  /* the read event is removed */
    unsigned             closed:1;
    unsigned             close_soon:1;
    unsigned             closing_after_write:1;
    unsigned             continued:1; /* 100 Continue sent for req's body */
    unsigned             saved:1;     /* saved_byte replaced by the body's NUL */
    char                 saved_byte;
};

struct cg_http_req_s {
    cg_http_conn_t      *conn;        /* NULL once the connection is gone */
    cg_http_listener_t  *ls;
    cg_http_req_t       *next_released;
    cg_http_method_t     method;
    unsigned             http10:1;
    unsigned             keepalive:1;
    unsigned             expect_continue:1;
    unsigned             chunked_in:1;
    unsigned             started:1;
    unsigned             replied:1;
    unsigned             has_length:1;        /* the request's Content-Length */
    unsigned             keepalive_token:1;   /* the request's "Connection: keep-alive" */
    unsigned             has_type_out:1;      /* headers the handler added */
    unsigned             has_length_out:1;
    unsigned             has_connection_out:1;
    char                *path;
    char                *query;       /* after "?", without the fragment; NULL without "?" */
    char                *body;
    size_t               body_len;
    size_t               head_len;
    size_t               content_length;
    char                *in;          /* the connection's buffer, once it is gone */
    char                *head_out;    /* added response header lines */
    size_t               head_out_len;
    size_t               head_out_cap;
    cg_http_req_cb_pt    on_close;
    void                *close_arg;
    cg_http_req_cb_pt    on_drain;
    void                *drain_arg;
    cg_http_req_cb_pt    on_done;
    void                *done_arg;
    size_t               nheaders;
    cg_http_header_t     headers[];
};

static void cg_http_accept_cb(evutil_socket_t fd, short events, void *arg);
static void cg_http_accept_resume(evutil_socket_t fd, short events, void *arg);
static void cg_http_sweep_cb(evutil_socket_t fd, short events, void *arg);
static void cg_http_release_cb(evutil_socket_t fd, short events, void *arg);
static cg_http_conn_t *cg_http_conn_new(cg_http_listener_t *ls, int fd);
static void cg_http_read_cb(evutil_socket_t fd, short events, void *arg);
static void cg_http_write_cb(evutil_socket_t fd, short events, void *arg);
static void cg_http_conn_leave(cg_http_conn_t *c);
static int cg_http_conn_read(cg_http_conn_t *c);
static void cg_http_req_rebase(cg_http_req_t *req, char *from, char *to);
static void cg_http_conn_process(cg_http_conn_t *c);
static const char *cg_http_find_head_end(const char *p, const char *last);
static int cg_http_conn_body(cg_http_conn_t *c, cg_http_req_t *req);
static ssize_t cg_http_chunked(char *p, size_t avail, size_t max,
    size_t *body_len, int decode);
static cg_http_req_t *cg_http_parse_head(cg_http_conn_t *c, size_t head_len,
    int *status, const char **error);
static int cg_http_parse_request_line(cg_http_req_t *req, char *line,
    int *status, const char **error);
static int cg_http_parse_header(cg_http_req_t *req, char *line,
    const char **error);
static int cg_http_has_token(const char *value, const char *token);
static void cg_http_conn_fail(cg_http_conn_t *c, int status,
    const char *message);
static int cg_http_out_reserve(cg_http_conn_t *c, size_t n);
static void cg_http_out_add(cg_http_conn_t *c, const void *p, size_t n);
static void cg_http_out_status(cg_http_conn_t *c, int status);
static int cg_http_out_head(cg_http_req_t *req, int status, int chunked,
    size_t length);
static int cg_http_conn_flush(cg_http_conn_t *c);
static void cg_http_conn_flush_soon(cg_http_conn_t *c);
static void cg_http_conn_written(cg_http_conn_t *c);
static void cg_http_req_finish(cg_http_req_t *req);
static void cg_http_req_release(cg_http_req_t *req);
static void cg_http_req_free(cg_http_req_t *req);
static void cg_http_conn_close(cg_http_conn_t *c);
static void cg_http_conn_close_soon(cg_http_conn_t *c);
static void cg_http_conn_free(cg_http_conn_t *c);
static time_t cg_http_now(cg_http_listener_t *ls);
static const char *cg_http_date_line(size_t *len);
static size_t cg_http_format_size(char *dst, size_t n, int base);


cg_http_listener_t *
cg_http_listener_new(struct event_base *base, int fd,
    const cg_http_limits_t *limits, cg_http_handler_pt handler, void *arg)
{
    cg_http_listener_t  *ls;
    struct timeval       second = { 1, 0 };

    ls = calloc(1, sizeof(*ls));
    if (ls == NULL) {
        cg_log_error(NULL, "cannot create the HTTP server: out of memory");
        return NULL;
    }

    ls->base = base;
    ls->fd = fd;
    ls->limits = *limits;
    ls->handler = handler;
    ls->arg = arg;

    ls->accept = event_new(base, fd, EV_READ | EV_PERSIST, cg_http_accept_cb,
                           ls);
    ls->accept_pause = evtimer_new(base, cg_http_accept_resume, ls);
    ls->sweep = event_new(base, -1, EV_PERSIST, cg_http_sweep_cb, ls);
    ls->release = event_new(base, -1, 0, cg_http_release_cb, ls);

    if (ls->accept == NULL || ls->accept_pause == NULL || ls->sweep == NULL
        || ls->release == NULL || event_add(ls->accept, NULL) != 0
        || event_add(ls->sweep, &second) != 0)
    {
        cg_log_error(NULL, "cannot create the HTTP server's events");
        ls->fd = -1;
        cg_http_listener_free(ls);
        return NULL;
    }

    return ls;
}


void
cg_http_listener_stop(cg_http_listener_t *ls)
{
    if (ls->fd == -1) {
        return;
    }

    event_del(ls->accept);
    event_del(ls->accept_pause);
    close(ls->fd);
    ls->fd = -1;
}


void
cg_http_listener_free(cg_http_listener_t *ls)
{
    cg_http_req_t  *req;

    cg_http_listener_stop(ls);

    while (ls->conns != NULL) {
        req = ls->conns->req;
        if (req != NULL) {
            ls->conns->req = NULL;
            cg_http_req_free(req);
        }
        ls->conns->busy = 0;
        cg_http_conn_close(ls->conns);
    }

    while ((req = ls->released) != NULL) {
        ls->released = req->next_released;
        cg_http_req_free(req);
    }

    if (ls->accept != NULL) {
        event_free(ls->accept);
    }
    if (ls->accept_pause != NULL) {
        event_free(ls->accept_pause);
    }
    if (ls->sweep != NULL) {
        event_free(ls->sweep);
    }
    if (ls->release != NULL) {
        event_free(ls->release);
    }
    free(ls);
}


static void
cg_http_accept_cb(evutil_socket_t fd, short events, void *arg)
{
    cg_http_listener_t  *ls = arg;
    struct timeval       pause = { 0, CG_HTTP_ACCEPT_PAUSE_MS * 1000 };
    int                  s, i;

    (void) events;

    for (i = 0; i < CG_HTTP_ACCEPT_BATCH; i++) {
        s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (s == -1) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }

            /* EMFILE and the like: the backlog keeps the clients meanwhile */
            cg_log_error(NULL, "accept() failed: %s, pausing for %d ms",
                         strerror(errno), CG_HTTP_ACCEPT_PAUSE_MS);
            event_del(ls->accept);
            evtimer_add(ls->accept_pause, &pause);
            return;
        }

        if (cg_http_conn_new(ls, s) == NULL) {
            cg_log_error(NULL, "out of memory for a new connection, closed it");
            close(s);
        }
    }
}


static void
cg_http_accept_resume(evutil_socket_t fd, short events, void *arg)
{
    cg_http_listener_t  *ls = arg;

    (void) fd;
    (void) events;

    if (ls->fd != -1) {
        event_add(ls->accept, NULL);
    }
}


/*
 * Closes connections that made no progress for the timeout: idle ones, ones
 * whose request is still coming in, and ones whose client reads nothing of
 * the response. A request that waits for its handler has no timeout here,
 * because the provider call and the database each bound their own waits.
 */
static void
cg_http_sweep_cb(evutil_socket_t fd, short events, void *arg)
{
    cg_http_listener_t  *ls = arg;
    cg_http_conn_t      *c, *next;
    time_t               now;

    (void) fd;
    (void) events;

    now = cg_http_now(ls);

    for (c = ls->conns; c != NULL; c = next) {
        next = c->next;

        if (now - c->active < ls->limits.timeout_s) {
            continue;
        }

        if (c->out_len > c->out_pos) {
            cg_log_info(NULL, "closing a connection whose client read no "
                        "response bytes for %d s", ls->limits.timeout_s);
            cg_http_conn_close(c);

        } else if (c->req == NULL) {
            if (c->in_len > 0) {
                cg_log_info(NULL, "closing a connection that sent part of a "
                            "request and nothing more for %d s",
                            ls->limits.timeout_s);
            }
            cg_http_conn_close(c);
        }
    }
}


/* Runs the done callbacks of the requests released since the last run. */
static void
cg_http_release_cb(evutil_socket_t fd, short events, void *arg)
{
    cg_http_listener_t  *ls = arg;
    cg_http_req_t       *req;

    (void) fd;
    (void) events;

    while ((req = ls->released) != NULL) {
        ls->released = req->next_released;
        req->on_done(req, req->done_arg);
        cg_http_req_free(req);
    }
}


static cg_http_conn_t *
cg_http_conn_new(cg_http_listener_t *ls, int fd)
{
    cg_http_conn_t  *c;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }

    c->ls = ls;
    c->fd = fd;
    c->active = cg_http_now(ls);
    c->read = event_new(ls->base, fd, EV_READ | EV_PERSIST, cg_http_read_cb, c);
    c->write = event_new(ls->base, fd, EV_WRITE | EV_PERSIST,
                         cg_http_write_cb, c);

    if (c->read == NULL || c->write == NULL || event_add(c->read, NULL) != 0) {
        if (c->read != NULL) {
            event_free(c->read);
        }
        if (c->write != NULL) {
            event_free(c->write);
        }
        free(c);
        return NULL;
    }

    c->next = ls->conns;
    if (ls->conns != NULL) {
        ls->conns->prev = c;
    }
    ls->conns = c;

    return c;
}


static void
cg_http_read_cb(evutil_socket_t fd, short events, void *arg)
{
    cg_http_conn_t  *c = arg;
    char             byte;
    ssize_t          n;

    (void) events;

    c->busy++;

    if (c->close_soon) {
        cg_http_conn_close(c);
        goto done;
    }

    if (c->req != NULL || c->closing_after_write) {
        /*
         * Only a hang-up matters now. Bytes of a next request stay in the
         * socket, and the read event rests until this response is out.
         */
        n = recv(fd, &byte, 1, MSG_PEEK);
        if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
            cg_http_conn_close(c);
        } else if (n == 1) {
            event_del(c->read);
            c->read_off = 1;
        }
        goto done;
    }

    switch (cg_http_conn_read(c)) {
    case 0:
        break;
    case -2:
        cg_http_conn_fail(c, 413, "the chunked request body takes more "
                          "bytes with its chunk framing than the server's "
                          "limit; send it with a Content-Length");
        goto done;
    default:
        cg_http_conn_close(c);
        goto done;
    }

    cg_http_conn_process(c);

done:

    cg_http_conn_leave(c);
}


static void
cg_http_write_cb(evutil_socket_t fd, short events, void *arg)
{
    cg_http_conn_t  *c = arg;
    cg_http_req_t   *req;
    int              rc;

    (void) fd;
    (void) events;

    c->busy++;
    c->flush_soon = 0;

    rc = cg_http_conn_flush(c);

    if (rc == -1) {
        cg_http_conn_close(c);

    } else if (rc == 1) {
        req = c->req;
        if (req != NULL && req->replied) {
            cg_http_conn_written(c);
        } else if (req != NULL && req->on_drain != NULL) {
            req->on_drain(req, req->drain_arg);
        } else if (req == NULL && c->closing_after_write) {
            cg_http_conn_close(c);
        }
    }

    cg_http_conn_leave(c);
}


/* Frees a connection closed under its own callbacks once they return. */
static void
cg_http_conn_leave(cg_http_conn_t *c)
{
    c->busy--;

    if (c->closed && c->busy == 0) {
        cg_http_conn_free(c);
    }
}


/*
 * Reads what the socket has. Returns 0, -1 when the client is gone, or -2
 * when the request outgrows the largest read buffer.
 */
static int
cg_http_conn_read(cg_http_conn_t *c)
{
    size_t   max = c->ls->limits.max_head_size + c->ls->limits.max_body_size;
    size_t   cap;
    char    *in;
    ssize_t  n;

    /* one byte stays free for the NUL after a body */
    if (c->in_cap - c->in_len < 2) {
        cap = c->in_cap ? c->in_cap * 2 : CG_HTTP_IN_SIZE;
        if (c->in_cap > max + 64 * 1024) {
            /*
             * The parser rejects a head or a Content-Length over the limits
             * before this. A chunked body gets here when its framing is
             * large, as with one-byte chunks, although its data is not.
             */
            return -2;
        }
        if (c->parsed != NULL) {
            cg_http_req_rebase(c->parsed, c->in, NULL);
        }

        in = realloc(c->in, cap);
        if (in != NULL) {
            c->in = in;
            c->in_cap = cap;
        }

        if (c->parsed != NULL) {
            cg_http_req_rebase(c->parsed, NULL, c->in);
        }

        if (in == NULL) {
            cg_log_error(NULL, "out of memory reading a request of %zu bytes",
                         c->in_len);
            return -1;
        }
    }

    n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1);

    if (n > 0) {
        c->in_len += (size_t) n;
        c->active = cg_http_now(c->ls);
        return 0;
    }

    if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
        return 0;
    }

    return -1;
}


/*
 * Turns the pointers of a parsed head that waits for its body into offsets
 * from the input buffer (to NULL), and back (from NULL), around a
 * realloc() of the buffer.
 */
static void
cg_http_req_rebase(cg_http_req_t *req, char *from, char *to)
{
    size_t  i;

    if (to == NULL) {
        req->path = (char *) (uintptr_t) (req->path - from);
        if (req->query != NULL) {
            req->query = (char *) (uintptr_t) (req->query - from);
        }
        for (i = 0; i < req->nheaders; i++) {
            req->headers[i].name = (const char *) (uintptr_t)
                                   (req->headers[i].name - from);
            req->headers[i].value = (char *) (uintptr_t)
                                    (req->headers[i].value - from);
        }
        return;
    }

    req->path = to + (uintptr_t) req->path;
    if (req->query != NULL) {
        req->query = to + (uintptr_t) req->query;
    }
    for (i = 0; i < req->nheaders; i++) {
        req->headers[i].name = to + (uintptr_t) req->headers[i].name;
        req->headers[i].value = to + (uintptr_t) req->headers[i].value;
    }
}


/*
 * Parses the request at the start of the input once its head and body are
 * in, and hands it to the handler. A request with an error gets a JSON
 * error response from here, and the connection closes after it.
 */
static void
cg_http_conn_process(cg_http_conn_t *c)
{
    cg_http_listener_t  *ls = c->ls;
    cg_http_req_t       *req = c->parsed;
    const char          *end, *error = NULL;
    size_t               head_len, from;
    int                  status = 400;

    if (c->req != NULL || c->closed || c->in_len == 0) {
        return;
    }

    if (req == NULL) {
        from = c->scanned > 3 ? c->scanned - 3 : 0;
        end = cg_http_find_head_end(c->in + from, c->in + c->in_len);

        if (end == NULL) {
            c->scanned = c->in_len;
            if (c->in_len > ls->limits.max_head_size) {
                cg_http_conn_fail(c, 431, "the request headers are larger "
                                  "than the limit");
            }
            return;
        }

        head_len = (size_t) (end - c->in) + 4;
        if (head_len > ls->limits.max_head_size) {
            cg_http_conn_fail(c, 431, "the request headers are larger than "
                              "the limit");
            return;
        }

        req = cg_http_parse_head(c, head_len, &status, &error);
        if (req == NULL) {
            cg_http_conn_fail(c, status, error);
            return;
        }

        c->scanned = 0;
        c->parsed = req;
    }

    if (cg_http_conn_body(c, req) != 0) {
        return;
    }

    c->parsed = NULL;
    c->req = req;
    ls->handler(req, ls->arg);
}


/*
 * Returns the "\r\n\r\n" that ends a request head in [p, last), or NULL.
 * memchr() for the line feeds costs less than memmem() for the whole
 * sequence, because a head has only a dozen lines.
 */
static const char *
cg_http_find_head_end(const char *p, const char *last)
{
    const char  *lf;

    while ((lf = memchr(p, '\n', (size_t) (last - p))) != NULL) {
        if (last - lf >= 3 && lf[1] == '\r' && lf[2] == '\n'
            && lf > p && lf[-1] == '\r')
        {
            return lf - 1;
        }
        p = lf + 1;
    }

    return NULL;
}


/*
 * Finds the body of req in the input. Returns 0 when it is complete (set in
 * req), 1 when more must be read, -1 after the error response to an invalid
 * body.
 */
static int
cg_http_conn_body(cg_http_conn_t *c, cg_http_req_t *req)
{
    size_t   avail = c->in_len - req->head_len;
    size_t   max = c->ls->limits.max_body_size;
    size_t   end;
    ssize_t  raw;

    if (!req->chunked_in && req->content_length > max) {
        cg_http_conn_fail(c, 413, "the request body is larger than the "
                          "server's limit");
        return -1;
    }

    if (req->chunked_in) {
        raw = cg_http_chunked(c->in + req->head_len, avail, max, &req->body_len, 0);
        if (raw == -1 || raw == -2) {
            cg_http_conn_fail(c, raw == -1 ? 400 : 413, raw == -1
                              ? "the chunked request body is malformed"
                              : "the request body is larger than the "
                                "server's limit");
            return -1;
        }
        if (raw > 0) {
            cg_http_chunked(c->in + req->head_len, avail, max, &req->body_len, 1);
            req->body = c->in + req->head_len;
            req->body[req->body_len] = '\0';
            c->req_len = req->head_len + (size_t) raw;
            return 0;
        }

    } else if (avail >= req->content_length) {
        end = req->head_len + req->content_length;
        req->body = c->in + req->head_len;
        req->body_len = req->content_length;

        /* a pipelined request may start right after the body */
        c->saved = c->in_len > end;
        c->saved_byte = c->in[end];
        c->in[end] = '\0';
        c->req_len = end;
        return 0;
    }

    if (req->expect_continue && !c->continued) {
        c->continued = 1;
        cg_http_out_add(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        if (cg_http_conn_flush(c) == -1) {
            cg_http_conn_close_soon(c);
        }
    }

    return 1;
}


/*
 * Scans a chunked body of avail bytes at p. Returns the bytes it takes up
 * with its trailer, 0 when incomplete, -1 when malformed, -2 when the data
 * would exceed max. With decode set, moves the data of every chunk together
 * at p, where it takes *body_len bytes.
 */
static ssize_t
cg_http_chunked(char *p, size_t avail, size_t max, size_t *body_len,
    int decode)
{
    size_t  pos = 0, total = 0, size, digits;
    char   *eol;
    int     d;

    for ( ;; ) {
        /*
         * The same bound on a complete and an incomplete line, so that the
         * verdict does not depend on where the reads cut the body. The
         * incomplete line may end in the CR of its CRLF.
         */
        eol = memmem(p + pos, avail - pos, "\r\n", 2);
        if (eol == NULL) {
            return avail - pos > CG_HTTP_MAX_CHUNK_LINE + 1 ? -1 : 0;
        }
        if ((size_t) (eol - (p + pos)) > CG_HTTP_MAX_CHUNK_LINE) {
            return -1;
        }

        size = 0;
        for (digits = 0; p + pos + digits < eol; digits++) {
            char  ch = p[pos + digits];

            if (ch >= '0' && ch <= '9') {
                d = ch - '0';
            } else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f') {
                d = (ch | 0x20) - 'a' + 10;
            } else if (ch == ';' && digits > 0) {
                break;                          /* a chunk extension */
            } else {
                return -1;
            }
            if (size > (max >> 4)) {
                return -2;
            }
            size = size * 16 + (size_t) d;
        }

        if (digits == 0) {
            return -1;
        }

        pos = (size_t) (eol - p) + 2;

        if (size == 0) {
            /* trailer fields, if any, end with an empty line */
            for ( ;; ) {
                eol = memmem(p + pos, avail - pos, "\r\n", 2);
                if (eol == NULL) {
                    return 0;
                }
                if (eol == p + pos) {
                    *body_len = total;
                    return (ssize_t) (pos + 2);
                }
                pos = (size_t) (eol - p) + 2;
            }
        }

        if (total + size > max) {
            return -2;
        }
        if (avail - pos < size + 2) {
            return 0;
        }
        if (p[pos + size] != '\r' || p[pos + size + 1] != '\n') {
            return -1;
        }

        if (decode) {
            memmove(p + total, p + pos, size);
        }
        total += size;
        pos += size + 2;
    }
}


/*
 * Parses the request line and headers, NUL-terminating their parts in
 * place. Returns the request, or NULL with the status and message to send.
 */
static cg_http_req_t *
cg_http_parse_head(cg_http_conn_t *c, size_t head_len, int *status,
    const char **error)
{
    cg_http_req_t  *req;
    char           *p, *end, *eol;
    size_t          lines = 0;

    if (memchr(c->in, '\0', head_len) != NULL) {
        *error = "the request head contains a NUL byte";
        return NULL;
    }

    for (p = c->in; (p = memchr(p, '\n', (size_t) (c->in + head_len - p)))
                    != NULL; p++)
    {
        lines++;
    }

    if (lines > CG_HTTP_MAX_HEADERS + 2) {
        *status = 431;
        *error = "the request has more header lines than the limit";
        return NULL;
    }

    req = calloc(1, sizeof(*req) + lines * sizeof(cg_http_header_t));
    if (req == NULL) {
        *status = 500;
        *error = "out of memory";
        return NULL;
    }

    req->conn = c;
    req->ls = c->ls;
    req->head_len = head_len;
    req->keepalive = 1;

    end = c->in + head_len - 2;        /* the empty line */

    for (p = c->in; p < end; p = eol + 2) {
        eol = (char *) memchr(p, '\n', (size_t) (end + 1 - p)) - 1;
        if (eol < p || *eol != '\r') {
            *error = "a line of the request head ends without CR";
            goto fail;
        }
        *eol = '\0';

        if (p == c->in) {
            if (cg_http_parse_request_line(req, p, status, error) != 0) {
                goto fail;
            }
        } else if (cg_http_parse_header(req, p, error) != 0) {
            goto fail;
        }
    }

    if (req->http10) {
        req->keepalive = req->keepalive && req->keepalive_token;
    }

    return req;

fail:

    free(req);
    return NULL;
}


static int
cg_http_parse_request_line(cg_http_req_t *req, char *line, int *status,
    const char **error)
{
    static const struct {
        const char        *name;
        size_t             len;
        cg_http_method_t   method;
    } methods[] = {
        { "GET", 3, CG_HTTP_GET }, { "POST", 4, CG_HTTP_POST },
        { "HEAD", 4, CG_HTTP_HEAD }, { "PUT", 3, CG_HTTP_PUT },
        { "DELETE", 6, CG_HTTP_DELETE }, { "PATCH", 5, CG_HTTP_PATCH },
        { "OPTIONS", 7, CG_HTTP_OPTIONS },
    };
    char    *target, *version, *p;
    size_t   i, len;

    target = strchr(line, ' ');
    if (target == NULL) {
        *error = "the request line is malformed";
        return -1;
    }

    len = (size_t) (target - line);
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (len == methods[i].len && memcmp(line, methods[i].name, len) == 0) {
            req->method = methods[i].method;
            break;
        }
    }

    if (req->method == 0) {
        *status = 501;
        *error = "the method is not supported";
        return -1;
    }

    target++;
    version = strchr(target, ' ');
    if (version == NULL || target[0] != '/') {
        *error = "the request line is malformed";
        return -1;
    }
    *version++ = '\0';

    if (strcmp(version, "HTTP/1.1") == 0) {
        req->http10 = 0;
    } else if (strcmp(version, "HTTP/1.0") == 0) {
        req->http10 = 1;
    } else if (strlen(version) != 8 || strncmp(version, "HTTP/", 5) != 0
               || version[5] < '0' || version[5] > '9' || version[6] != '.'
               || version[7] < '0' || version[7] > '9')
    {
        *error = "the request line is malformed";
        return -1;
    } else {
        *status = 505;
        *error = "the HTTP version is not supported, use HTTP/1.1";
        return -1;
    }

    req->query = NULL;

    for (p = target; *p != '\0'; p++) {
        if ((unsigned char) *p <= 0x20 || *p == 0x7f) {
            *error = "the request target contains a control character";
            return -1;
        }
        if (*p == '#') {
            *p = '\0';
            break;
        }
        if (*p == '?' && req->query == NULL) {
            *p = '\0';
            req->query = p + 1;
        }
    }

    req->path = target;
    return 0;
}


static int
cg_http_parse_header(cg_http_req_t *req, char *line, const char **error)
{
    /*
     * One byte per character, because a table lookup per byte costs fewer
     * instructions than a bit test. RFC 9110 tchar: letters, digits and
     * !#$%&'*+-.^_`|~.
     */
    static const unsigned char  tchar[256] = {
        ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
        ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
        ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
        ['`'] = 1, ['|'] = 1, ['~'] = 1
    };
    /* bytes of a field value: HTAB, SP, VCHAR and obs-text, not DEL */
    static const unsigned char  vchar[256] = {
        ['\t'] = 1, [' ' ... '~'] = 1, [0x80 ... 0xff] = 1
    };
    cg_http_header_t      *h;
    char                  *value, *end, *p;
    size_t                 name_len;
    unsigned long long     n;

    for (p = line; tchar[(unsigned char) *p]; p++) {
        /* void */
    }

    if (*p != ':') {
        *error = *p == '\0' ? "a header line has no colon"
                            : "a header name contains an invalid character";
        return -1;
    }

    name_len = (size_t) (p - line);
    if (name_len == 0) {
        *error = "a header line has no name";
        return -1;
    }
    *p = '\0';

    value = p + 1;
    while (*value == ' ' || *value == '\t') {
        value++;
    }

    for (p = value; vchar[(unsigned char) *p]; p++) {
        /* void */
    }

    if (*p != '\0') {
        *error = "a header value contains a control character";
        return -1;
    }

    for (end = p; end > value && (end[-1] == ' ' || end[-1] == '\t'); end--) {
        /* void */
    }
    *end = '\0';

    h = &req->headers[req->nheaders++];
    h->name = line;
    h->name_len = name_len;
    h->value = value;

    switch (name_len) {

    case 14:
        if (strcasecmp(line, "Content-Length") != 0) {
            break;
        }
        if (*value == '\0' || strspn(value, "0123456789") != strlen(value)
            || strlen(value) > 18)
        {
            *error = "the Content-Length header is invalid";
            return -1;
        }
        n = strtoull(value, NULL, 10);
        if (req->has_length && n != req->content_length) {
            *error = "the request has two different Content-Length headers";
            return -1;
        }
        req->has_length = 1;
        req->content_length = (size_t) n;
        break;

    case 17:
        if (strcasecmp(line, "Transfer-Encoding") != 0) {
            break;
        }
        if (strcasecmp(value, "chunked") != 0 || req->http10) {
            *error = "the Transfer-Encoding is not supported, send chunked "
                     "or a Content-Length";
            return -1;
        }
        req->chunked_in = 1;
        break;

    case 10:
        if (strcasecmp(line, "Connection") != 0) {
            break;
        }
        if (cg_http_has_token(value, "close")) {
            req->keepalive = 0;
        }
        if (cg_http_has_token(value, "keep-alive")) {
            req->keepalive_token = 1;
        }
        break;

    case 6:
        if (strcasecmp(line, "Expect") == 0) {
            req->expect_continue = strcasecmp(value, "100-continue") == 0;
        }
        break;

    default:
        break;
    }

    if (req->chunked_in && req->has_length) {
        /* which one frames the body is the classic request smuggling trick */
        *error = "the request has both Transfer-Encoding and Content-Length";
        return -1;
    }

    return 0;
}


/* Returns 1 when the comma-separated value lists token (any case). */
static int
cg_http_has_token(const char *value, const char *token)
{
    size_t       len = strlen(token);
    const char  *p = value;

    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        if (strncasecmp(p, token, len) == 0
            && (p[len] == '\0' || p[len] == ',' || p[len] == ' '
                || p[len] == '\t'))
        {
            return 1;
        }
        while (*p != '\0' && *p != ',') {
            p++;
        }
    }

    return 0;
}


/*
 * Sends a JSON error in the OpenAI format for a request the server cannot
 * parse or accept, and closes the connection after it, because the rest of
 * the input cannot be framed.  Every status but 500 rejects what the client
 * sent, 501 (unknown method) and 505 (HTTP version) included.
 */
static void
cg_http_conn_fail(cg_http_conn_t *c, int status, const char *message)
{
    char    body[256];
    char    head[128];
    size_t  date_len;
    const char  *date;
    int     n, m;

    cg_log_info(NULL, "rejected a request on the worker's socket: %d %s",
                status, message);

    n = snprintf(body, sizeof(body), "{\"error\":{\"message\":\"%s\","
                 "\"type\":\"%s\",\"param\":null,\"code\":null}}\n", message,
                 status == 500 ? "server_error" : "invalid_request_error");
    m = snprintf(head, sizeof(head), "Content-Type: application/json\r\n"
                 "Content-Length: %d\r\nConnection: close\r\n\r\n", n);

    date = cg_http_date_line(&date_len);

    cg_http_out_status(c, status);
    cg_http_out_add(c, date, date_len);
    cg_http_out_add(c, head, (size_t) m);
    cg_http_out_add(c, body, (size_t) n);

    if (c->parsed != NULL) {
        cg_http_req_free(c->parsed);
        c->parsed = NULL;
    }

    c->closing_after_write = 1;
    c->in_len = 0;

    if (cg_http_conn_flush(c) != 0) {
        cg_http_conn_close_soon(c);
    }
}


cg_http_method_t
cg_http_method(const cg_http_req_t *req)
{
    return req->method;
}


const char *
cg_http_path(const cg_http_req_t *req)
{
    return req->path;
}


const char *
cg_http_query(const cg_http_req_t *req)
{
    return req->query != NULL ? req->query : "";
}


const char *
cg_http_header(const cg_http_req_t *req, const char *name)
{
    size_t  i, len = strlen(name);

    for (i = 0; i < req->nheaders; i++) {
        if (req->headers[i].name_len == len
            && strcasecmp(req->headers[i].name, name) == 0)
        {
            return req->headers[i].value;
        }
    }

    return NULL;
}


cg_http_header_t *
cg_http_headers(cg_http_req_t *req, size_t *n)
{
    *n = req->nheaders;
    return req->headers;
}


const char *
cg_http_body(const cg_http_req_t *req, size_t *len)
{
    *len = req->body_len;
    return req->body != NULL ? req->body : "";
}


int
cg_http_connected(const cg_http_req_t *req)
{
    return req->conn != NULL && !req->conn->close_soon;
}


void
cg_http_on_close(cg_http_req_t *req, cg_http_req_cb_pt cb, void *arg)
{
    req->on_close = cb;
    req->close_arg = arg;
}


void
cg_http_on_drain(cg_http_req_t *req, cg_http_req_cb_pt cb, void *arg)
{
    req->on_drain = cb;
    req->drain_arg = arg;
}


void
cg_http_on_done(cg_http_req_t *req, cg_http_req_cb_pt cb, void *arg)
{
    req->on_done = cb;
    req->done_arg = arg;
}


int
cg_http_add_header(cg_http_req_t *req, const char *name, const char *value)
{
    size_t   nlen, vlen, need, cap;
    char    *p;

    /* a line break in either would let the value forge more headers */
    nlen = strcspn(name, "\r\n:");
    vlen = strcspn(value, "\r\n");
    if (name[nlen] != '\0' || value[vlen] != '\0') {
        cg_log_error(NULL, "response header \"%.64s\" dropped: it contains "
                     "a line break", name);
        return -1;
    }

    need = req->head_out_len + nlen + vlen + 4;
    if (need > req->head_out_cap) {
        cap = need < 256 ? 256 : need * 2;
        p = realloc(req->head_out, cap);
        if (p == NULL) {
            return -1;
        }
        req->head_out = p;
        req->head_out_cap = cap;
    }

    p = req->head_out + req->head_out_len;
    memcpy(p, name, nlen);
    p += nlen;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value, vlen);
    p += vlen;
    *p++ = '\r';
    *p++ = '\n';
    req->head_out_len = need;

    /* only a name of the right length can be one of the three */
    switch (nlen) {

    case sizeof("Content-Type") - 1:
        if (strcasecmp(name, "Content-Type") == 0) {
            req->has_type_out = 1;
        }
        break;

    case sizeof("Content-Length") - 1:
        if (strcasecmp(name, "Content-Length") == 0) {
            req->has_length_out = 1;
        }
        break;

    case sizeof("Connection") - 1:
        if (strcasecmp(name, "Connection") == 0) {
            req->has_connection_out = 1;
            if (cg_http_has_token(value, "close")) {
                req->keepalive = 0;
            }
        }
        break;

    default:
        break;
    }

    return 0;
}


void
cg_http_reply(cg_http_req_t *req, int status, const char *body, size_t len)
{
    cg_http_conn_t  *c = req->conn;

    req->replied = 1;

    if (c == NULL) {
        cg_http_req_release(req);
        return;
    }

    /* one allocation for the head and the body */
    if (cg_http_out_reserve(c, req->head_out_len + 256
                               + (req->method != CG_HTTP_HEAD ? len : 0)) != 0
        || cg_http_out_head(req, status, 0, len) != 0)
    {
        cg_log_error(NULL, "out of memory for a response of %zu bytes", len);
        cg_http_conn_close_soon(c);
        return;
    }

    if (req->method != CG_HTTP_HEAD) {
        cg_http_out_add(c, body, len);
    }

    switch (c->writing ? 0 : cg_http_conn_flush(c)) {
    case 1:
        cg_http_conn_written(c);
        break;
    case -1:
        cg_http_conn_close_soon(c);
        break;
    default:
        break;
    }
}


int
cg_http_reply_start(cg_http_req_t *req, int status)
{
    cg_http_conn_t  *c = req->conn;

    if (c == NULL || c->close_soon) {
        return -1;
    }

    if (req->http10) {
        req->keepalive = 0;
    }

    if (cg_http_out_head(req, status, !req->http10, 0) != 0) {
        cg_http_conn_close_soon(c);
        return -1;
    }

    req->started = 1;
    cg_http_conn_flush_soon(c);

    return 0;
}


int
cg_http_reply_chunk(cg_http_req_t *req, const char *data, size_t len)
{
    cg_http_conn_t  *c = req->conn;
    char             size[24];
    size_t           n;

    if (c == NULL || c->close_soon) {
        return -1;
    }

    if (len == 0) {
        /* an empty chunk would end the body */
        return 0;
    }

    if (cg_http_out_reserve(c, len + 32) != 0) {
        cg_http_conn_close_soon(c);
        return -1;
    }

    if (!req->http10) {
        n = cg_http_format_size(size, len, 16);
        size[n++] = '\r';
        size[n++] = '\n';
        cg_http_out_add(c, size, n);
    }

    cg_http_out_add(c, data, len);

    if (!req->http10) {
        cg_http_out_add(c, "\r\n", 2);
    }

    cg_http_conn_flush_soon(c);

    return 0;
}


void
cg_http_flush(cg_http_req_t *req)
{
    cg_http_conn_t  *c = req->conn;

    if (c == NULL || c->close_soon || c->writing) {
        return;
    }

    if (cg_http_conn_flush(c) == -1) {
        cg_http_conn_close_soon(c);
    }
}


void
cg_http_reply_end(cg_http_req_t *req)
{
    cg_http_conn_t  *c = req->conn;

    req->replied = 1;

    if (c == NULL || c->close_soon || !req->started) {
        if (c != NULL && !req->started) {
            cg_http_conn_close_soon(c);
        }
        if (c == NULL) {
            cg_http_req_release(req);
        }
        return;
    }

    if (!req->http10) {
        if (cg_http_out_reserve(c, 5) != 0) {
            cg_http_conn_close_soon(c);
            return;
        }
        cg_http_out_add(c, "0\r\n\r\n", 5);
    }

    if (c->out_len > c->out_pos || c->writing) {
        cg_http_conn_flush_soon(c);
    } else {
        cg_http_conn_written(c);
    }
}


size_t
cg_http_backlog(const cg_http_req_t *req)
{
    cg_http_conn_t  *c = req->conn;

    return c != NULL ? c->out_len - c->out_pos : 0;
}


/* Makes room for n more output bytes. Returns 0, or -1 when out of memory. */
static int
cg_http_out_reserve(cg_http_conn_t *c, size_t n)
{
    size_t   cap;
    char    *out;

    if (c->out_pos == c->out_len) {
        c->out_pos = 0;
        c->out_len = 0;
    }

    if (c->out_cap - c->out_len >= n) {
        return 0;
    }

    if (c->out_pos > 0) {
        memmove(c->out, c->out + c->out_pos, c->out_len - c->out_pos);
        c->out_len -= c->out_pos;
        c->out_pos = 0;
        if (c->out_cap - c->out_len >= n) {
            return 0;
        }
    }

    cap = c->out_cap ? c->out_cap : 1024;
    while (cap - c->out_len < n) {
        cap *= 2;
    }

    out = realloc(c->out, cap);
    if (out == NULL) {
        return -1;
    }

    c->out = out;
    c->out_cap = cap;
    return 0;
}


/* Appends n bytes after a successful cg_http_out_reserve(), or reserves them. */
static void
cg_http_out_add(cg_http_conn_t *c, const void *p, size_t n)
{
    if (c->out_cap - c->out_len < n && cg_http_out_reserve(c, n) != 0) {
        return;
    }

    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}


static void
cg_http_out_status(cg_http_conn_t *c, int status)
{
    const char  *reason = cg_http_reason(status);
    char         line[64];
    size_t       n, rlen = strlen(reason);

    memcpy(line, "HTTP/1.1 ", 9);
    n = 9 + cg_http_format_size(line + 9, (size_t) status, 10);
    line[n++] = ' ';
    memcpy(line + n, reason, rlen);
    n += rlen;
    line[n++] = '\r';
    line[n++] = '\n';

    cg_http_out_add(c, line, n);
}


/*
 * Writes the status line and headers of req's response to the output:
 * Date, the handler's headers, Content-Type and Content-Length or
 * Transfer-Encoding where the handler set none, and Connection.
 */
static int
cg_http_out_head(cg_http_req_t *req, int status, int chunked, size_t length)
{
    cg_http_conn_t  *c = req->conn;
    const char      *date;
    size_t           date_len, n;
    char             line[48];

    if (cg_http_out_reserve(c, req->head_out_len + 256) != 0) {
        return -1;
    }

    date = cg_http_date_line(&date_len);

    cg_http_out_status(c, status);
    cg_http_out_add(c, date, date_len);
    cg_http_out_add(c, req->head_out, req->head_out_len);

    if (!req->has_type_out && (length > 0 || chunked)) {
        cg_http_out_add(c, "Content-Type: application/json\r\n", 32);
    }

    if (chunked) {
        cg_http_out_add(c, "Transfer-Encoding: chunked\r\n", 28);
    } else if (!req->started && !req->has_length_out && status != 204) {
        memcpy(line, "Content-Length: ", 16);
        n = 16 + cg_http_format_size(line + 16, length, 10);
        line[n++] = '\r';
        line[n++] = '\n';
        cg_http_out_add(c, line, n);
    }

    if (!req->keepalive) {
        if (!req->has_connection_out) {
            cg_http_out_add(c, "Connection: close\r\n", 19);
        }
    } else if (req->http10 && !req->has_connection_out) {
        cg_http_out_add(c, "Connection: keep-alive\r\n", 24);
    }

    cg_http_out_add(c, "\r\n", 2);
    return 0;
}


/*
 * Writes pending output. Returns 1 when all of it is written, 0 when the
 * socket is full (the write event then waits for room), -1 on an error.
 */
static int
cg_http_conn_flush(cg_http_conn_t *c)
{
    ssize_t  n;

    while (c->out_pos < c->out_len) {
        n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos,
                 MSG_NOSIGNAL);

        if (n > 0) {
            c->out_pos += (size_t) n;
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->active = cg_http_now(c->ls);
            if (!c->writing) {
                c->writing = 1;

                /*
                 * event_add() of libevent 2.1 does not register the socket of
                 * an event that event_active() queued and that has not run
                 * yet. Once that run ends, nothing would watch the socket.
                 */
                if (c->flush_soon) {
                    c->flush_soon = 0;
                    event_del(c->write);
                }

                event_add(c->write, NULL);
            }
            return 0;
        }

        return -1;
    }

    c->out_pos = 0;
    c->out_len = 0;
    c->active = cg_http_now(c->ls);

    if (c->writing) {
        c->writing = 0;
        event_del(c->write);
    }

    /*
     * Between responses a connection keeps no write buffer. With a thousand
     * connections that wait for the provider, the buffers would cost a
     * megabyte or two.
     */
    if (c->req == NULL || c->req->replied) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }

    return 1;
}


/*
 * Writes the output from the loop, once the callbacks now ready have run.
 * The chunks that a stream adds in one loop pass then go out in one
 * send(), and nginx reads them in one pass as well.
 */
static void
cg_http_conn_flush_soon(cg_http_conn_t *c)
{
    if (c->writing || c->flush_soon) {
        return;
    }

    c->flush_soon = 1;
    event_active(c->write, EV_WRITE, 0);
}


/*
 * The whole response of c->req is written: the request goes, and the
 * connection either closes or turns to the next request.
 */
static void
cg_http_conn_written(cg_http_conn_t *c)
{
    cg_http_req_t  *req = c->req;
    int             keepalive = req->keepalive;

    cg_http_req_finish(req);

    if (!keepalive) {
        cg_http_conn_close_soon(c);
        return;
    }

    if (c->read_off) {
        c->read_off = 0;
        event_add(c->read, NULL);
    }

    if (c->in_len > 0) {
        /* a pipelined request: served from the read event, not from here */
        event_active(c->read, EV_READ, 0);
    }
}


/* Takes req off its connection and drops its bytes from the input. */
static void
cg_http_req_finish(cg_http_req_t *req)
{
    cg_http_conn_t  *c = req->conn;

    if (c->saved) {
        c->in[c->req_len] = c->saved_byte;
        c->saved = 0;
    }

    c->in_len -= c->req_len;
    if (c->in_len > 0) {
        memmove(c->in, c->in + c->req_len, c->in_len);
    } else if (c->in_cap > CG_HTTP_KEEP_SIZE) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }

    c->req = NULL;
    c->req_len = 0;
    c->continued = 0;
    req->conn = NULL;

    cg_http_req_release(req);
}


/*
 * Lets a replied request go: at once when nothing waits for it, else after
 * its done callback, which runs from the loop so that it never runs inside
 * the handler's own call.
 */
static void
cg_http_req_release(cg_http_req_t *req)
{
    cg_http_listener_t  *ls = req->ls;

    if (req->on_done == NULL) {
        cg_http_req_free(req);
        return;
    }

    req->next_released = ls->released;
    ls->released = req;
    event_active(ls->release, 0, 0);
}


static void
cg_http_req_free(cg_http_req_t *req)
{
    free(req->in);
    free(req->head_out);
    free(req);
}


/*
 * Closes the connection now. A request still with its handler learns it
 * from its close callback, and keeps the input buffer that its headers and
 * body point into.
 */
static void
cg_http_conn_close(cg_http_conn_t *c)
{
    cg_http_listener_t  *ls = c->ls;
    cg_http_req_t       *req;

    if (c->closed) {
        return;
    }

    c->closed = 1;
    event_del(c->read);
    event_del(c->write);
    close(c->fd);
    c->fd = -1;

    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        ls->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }

    if (c->parsed != NULL) {
        cg_http_req_free(c->parsed);
        c->parsed = NULL;
    }

    req = c->req;
    c->req = NULL;

    if (req != NULL) {
        req->conn = NULL;

        if (c->saved) {
            c->in[c->req_len] = c->saved_byte;
            c->saved = 0;
        }
        req->in = c->in;
        c->in = NULL;

        if (req->replied) {
            cg_http_req_release(req);
        } else if (req->on_close != NULL) {
            req->on_close(req, req->close_arg);
        }
    }

    if (c->busy == 0) {
        cg_http_conn_free(c);
    }
}


/*
 * Closes the connection from the loop, for calls made by a handler: the
 * close callback then never runs inside the handler's own call.
 */
static void
cg_http_conn_close_soon(cg_http_conn_t *c)
{
    if (c->close_soon || c->closed) {
        return;
    }

    c->close_soon = 1;
    if (c->read_off) {
        c->read_off = 0;
        event_add(c->read, NULL);
    }
    event_active(c->read, EV_READ, 0);
}


static void
cg_http_conn_free(cg_http_conn_t *c)
{
    event_free(c->read);
    event_free(c->write);
    free(c->in);
    free(c->out);
    free(c);
}


static time_t
cg_http_now(cg_http_listener_t *ls)
{
    struct timeval  tv;

    event_base_gettimeofday_cached(ls->base, &tv);
    return tv.tv_sec;
}


/*
 * Returns the Date header line, formatted once a second. The day and month
 * names are spelled out because strftime() would follow the locale.
 */
static const char *
cg_http_date_line(size_t *len)
{
    static const char  *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
                                   "Sat" };
    static const char  *months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov",
                                     "Dec" };
    static time_t       cached = (time_t) -1;
    static char         line[48];
    static size_t       line_len;
    struct tm           tm;
    time_t              now;

    now = time(NULL);

    if (now != cached && gmtime_r(&now, &tm) != NULL) {
        line_len = (size_t) snprintf(line, sizeof(line),
                                     "Date: %s, %02d %s %04d %02d:%02d:%02d "
                                     "GMT\r\n", days[tm.tm_wday], tm.tm_mday,
                                     months[tm.tm_mon], tm.tm_year + 1900,
                                     tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached = now;
    }

    *len = line_len;
    return line;
}


/* Writes n in base 10 or 16 without a NUL and returns the digits written. */
static size_t
cg_http_format_size(char *dst, size_t n, int base)
{
    static const char  digits[] = "0123456789abcdef";
    char               tmp[24];
    size_t             len = 0, i;

    do {
        tmp[len++] = digits[n % (size_t) base];
        n /= (size_t) base;
    } while (n > 0);

    for (i = 0; i < len; i++) {
        dst[i] = tmp[len - 1 - i];
    }

    return len;
}


const char *
cg_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:  return status < 400 ? "OK" : "Error";
    }
}
