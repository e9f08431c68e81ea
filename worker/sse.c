#include <string.h>

#include "sse.h"


static int cg_sse_line(void *ctx, const char *line, size_t len);
static int cg_sse_field(cg_sse_t *p, const char *name, size_t name_len,
    const char *value, size_t value_len);
static int cg_sse_dispatch(cg_sse_t *p);
static int cg_ndjson_line(void *ctx, const char *line, size_t len);


void
cg_lines_init(cg_lines_t *l, size_t max_line)
{
    memset(l, 0, sizeof(*l));
    l->max_line = max_line;
}


void
cg_lines_free(cg_lines_t *l)
{
    cg_buf_free(&l->line);
}


int
cg_lines_feed(cg_lines_t *l, const char *buf, size_t len,
    cg_line_handler_pt handler, void *ctx)
{
    const char  *end = buf + len, *eol;
    int          rc;

    while (buf < end) {

        /* A CR ended the previous line; an LF right after it is its pair. */
        if (l->cr_seen) {
            l->cr_seen = 0;
            if (*buf == '\n') {
                buf++;
                continue;
            }
        }

        for (eol = buf; eol < end && *eol != '\n' && *eol != '\r'; eol++) {
            /* void */
        }

        if (l->line.len + (size_t) (eol - buf) > l->max_line) {
            l->too_long = 1;
            return -1;
        }

        if (cg_buf_append(&l->line, buf, (size_t) (eol - buf)) != 0) {
            return -1;
        }

        if (eol == end) {
            break;
        }

        l->cr_seen = (*eol == '\r');
        buf = eol + 1;

        rc = handler(ctx, l->line.data, l->line.len);
        cg_buf_reset(&l->line);

        if (rc != 0) {
            return rc;
        }
    }

    return 0;
}


void
cg_sse_init(cg_sse_t *p, size_t max_line, cg_sse_handler_pt handler,
    void *ctx)
{
    memset(p, 0, sizeof(*p));
    cg_lines_init(&p->lines, max_line);
    p->handler = handler;
    p->ctx = ctx;
}


void
cg_sse_free(cg_sse_t *p)
{
    cg_lines_free(&p->lines);
    cg_buf_free(&p->data);
    cg_buf_free(&p->type);
    cg_buf_free(&p->id);
}


int
cg_sse_feed(cg_sse_t *p, const char *buf, size_t len)
{
    int  rc;

    rc = cg_lines_feed(&p->lines, buf, len, cg_sse_line, p);

    if (p->lines.too_long) {
        p->too_long = 1;
    }

    return rc;
}


static int
cg_sse_line(void *ctx, const char *line, size_t len)
{
    cg_sse_t    *p = ctx;
    const char  *colon, *value;
    size_t       name_len, value_len;

    /* One UTF-8 byte order mark at the start of the stream is dropped. */
    if (!p->started) {
        p->started = 1;
        if (len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
            line += 3;
            len -= 3;
        }
    }

    if (len == 0) {
        return cg_sse_dispatch(p);
    }

    if (line[0] == ':') {
        p->comments++;
        return 0;
    }

    colon = memchr(line, ':', len);

    if (colon == NULL) {
        return cg_sse_field(p, line, len, "", 0);
    }

    name_len = (size_t) (colon - line);
    value = colon + 1;
    value_len = len - name_len - 1;

    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }

    return cg_sse_field(p, line, name_len, value, value_len);
}


static int
cg_sse_field(cg_sse_t *p, const char *name, size_t name_len,
    const char *value, size_t value_len)
{
    if (name_len == 4 && memcmp(name, "data", 4) == 0) {
        if (p->data.len + value_len + 1 > p->lines.max_line) {
            p->too_long = 1;
            return -1;
        }
        return cg_buf_append(&p->data, value, value_len) != 0
               || cg_buf_append(&p->data, "\n", 1) != 0 ? -1 : 0;
    }

    if (name_len == 5 && memcmp(name, "event", 5) == 0) {
        cg_buf_reset(&p->type);
        return cg_buf_append(&p->type, value, value_len) != 0 ? -1 : 0;
    }

    /* An id containing NUL is ignored, as the WHATWG specification requires. */
    if (name_len == 2 && memcmp(name, "id", 2) == 0
        && memchr(value, '\0', value_len) == NULL)
    {
        cg_buf_reset(&p->id);
        return cg_buf_append(&p->id, value, value_len) != 0 ? -1 : 0;
    }

    /* "retry" and unknown fields are ignored: the worker does not reconnect. */
    return 0;
}


static int
cg_sse_dispatch(cg_sse_t *p)
{
    cg_sse_event_t  ev;
    int             rc;

    /* An event without data lines is dropped together with its type. */
    if (p->data.len == 0) {
        cg_buf_reset(&p->type);
        return 0;
    }

    p->data.data[--p->data.len] = '\0';    /* the last "\n" */

    ev.type = p->type.len > 0 ? p->type.data : "message";
    ev.data = p->data.data;
    ev.data_len = p->data.len;
    ev.id = p->id.len > 0 ? p->id.data : "";

    p->events++;
    rc = p->handler(p->ctx, &ev);

    cg_buf_reset(&p->data);
    cg_buf_reset(&p->type);

    return rc;
}


void
cg_ndjson_init(cg_ndjson_t *p, size_t max_line, cg_line_handler_pt handler,
    void *ctx)
{
    cg_lines_init(&p->lines, max_line);
    p->handler = handler;
    p->ctx = ctx;
}


void
cg_ndjson_free(cg_ndjson_t *p)
{
    cg_lines_free(&p->lines);
}


int
cg_ndjson_feed(cg_ndjson_t *p, const char *buf, size_t len)
{
    return cg_lines_feed(&p->lines, buf, len, cg_ndjson_line, p);
}


int
cg_ndjson_finish(cg_ndjson_t *p)
{
    int  rc = 0;

    if (p->lines.line.len > 0) {
        rc = cg_ndjson_line(p, p->lines.line.data, p->lines.line.len);
        cg_buf_reset(&p->lines.line);
    }

    return rc;
}


static int
cg_ndjson_line(void *ctx, const char *line, size_t len)
{
    cg_ndjson_t  *p = ctx;
    size_t        i;

    for (i = 0; i < len; i++) {
        if (line[i] != ' ' && line[i] != '\t') {
            return p->handler(p->ctx, line, len);
        }
    }

    return 0;
}
