/*
 * The spool file of the log writer, its line format, and the PostgreSQL
 * array literals that batches are sent as.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"

#define CG_SPOOL_VERSION     "1"
#define CG_SPOOL_READ_SIZE   (64 * 1024)
#define CG_SPOOL_PATH_MAX    PATH_MAX
#define CG_SPOOL_LINE_HASH_MAX  4096

typedef enum {
    CG_FIELD_I64,
    CG_FIELD_INT,
    CG_FIELD_LONG,
    CG_FIELD_STR
} cg_field_type_t;

typedef struct {
    cg_field_type_t  type;
    size_t           offset;
    size_t           size;
} cg_field_t;

#define CG_FIELD(type, name)                                                 \
    { type, offsetof(cg_log_row_t, name), sizeof(((cg_log_row_t *) 0)->name) }

/* The columns of a spool line after the version, in order. */
static const cg_field_t  cg_spool_fields[] = {
    CG_FIELD(CG_FIELD_I64, time_us),
    CG_FIELD(CG_FIELD_STR, request_id),
    CG_FIELD(CG_FIELD_STR, client_addr),
    CG_FIELD(CG_FIELD_STR, key_id),
    CG_FIELD(CG_FIELD_STR, provider),
    CG_FIELD(CG_FIELD_STR, model),
    CG_FIELD(CG_FIELD_INT, ok),
    CG_FIELD(CG_FIELD_INT, status),
    CG_FIELD(CG_FIELD_INT, latency_ms),
    CG_FIELD(CG_FIELD_LONG, prompt_tokens),
    CG_FIELD(CG_FIELD_LONG, completion_tokens),
    CG_FIELD(CG_FIELD_LONG, total_tokens),
    CG_FIELD(CG_FIELD_STR, error_class),
    CG_FIELD(CG_FIELD_STR, error_message),
    CG_FIELD(CG_FIELD_INT, stream),
    CG_FIELD(CG_FIELD_INT, ttft_ms),
    CG_FIELD(CG_FIELD_INT, stream_ms),
    CG_FIELD(CG_FIELD_INT, chunks),
};

#define CG_SPOOL_NFIELDS  (sizeof(cg_spool_fields) / sizeof(cg_spool_fields[0]))

static int cg_spool_offset_path(cg_spool_t *spool, char *path, size_t size);

struct cg_spool_s {
    int    fd;
    char  *path;
    char  *read_buf;            /* CG_SPOOL_READ_SIZE bytes */
    long   offset_failures;     /* failed offset writes since the last success */
};


int
cg_pg_array_begin(cg_buf_t *buf)
{
    buf->len = 0;
    return cg_buf_append(buf, "{", 1);
}


static int
cg_pg_array_separate(cg_buf_t *buf)
{
    if (buf->len > 1) {
        return cg_buf_append(buf, ",", 1);
    }

    return 0;
}


/*
 * A text element is always double-quoted, with backslash and double quote
 * escaped by a backslash: inside quotes PostgreSQL's array parser takes
 * everything else literally, including braces, commas, spaces and "NULL".
 */
int
cg_pg_array_add_text(cg_buf_t *buf, const char *text)
{
    const char  *p, *run;

    if (cg_pg_array_separate(buf) != 0) {
        return -1;
    }

    if (text == NULL) {
        return cg_buf_append(buf, "NULL", 4);
    }

    if (cg_buf_append(buf, "\"", 1) != 0) {
        return -1;
    }

    for (p = run = text; *p; p++) {
        if (*p != '"' && *p != '\\') {
            continue;
        }

        if (cg_buf_append(buf, run, p - run) != 0
            || cg_buf_append(buf, "\\", 1) != 0)
        {
            return -1;
        }

        run = p;
    }

    if (cg_buf_append(buf, run, p - run) != 0) {
        return -1;
    }

    return cg_buf_append(buf, "\"", 1);
}


/*
 * Writes the decimal digits of v backward, ending before end, and returns
 * the first. Under callgrind, glibc 2.36's snprintf() cost about 700
 * instructions per number, and each log row has nine numbers.
 */
static char *
cg_pg_digits(char *end, unsigned long long v)
{
    do {
        *--end = (char) ('0' + v % 10);
        v /= 10;
    } while (v != 0);

    return end;
}


int
cg_pg_array_add_int(cg_buf_t *buf, long long value)
{
    char  num[20], *p;   /* LLONG_MAX has 19 digits */

    if (cg_pg_array_separate(buf) != 0) {
        return -1;
    }

    if (value < 0) {
        return cg_buf_append(buf, "NULL", 4);
    }

    p = cg_pg_digits(num + sizeof(num), (unsigned long long) value);

    return cg_buf_append(buf, p, (size_t) (num + sizeof(num) - p));
}


int
cg_pg_array_add_bool(cg_buf_t *buf, int value)
{
    if (cg_pg_array_separate(buf) != 0) {
        return -1;
    }

    return cg_buf_append(buf, value ? "t" : "f", 1);
}


int
cg_pg_array_end(cg_buf_t *buf)
{
    return cg_buf_append(buf, "}", 1);
}


/*
 * Returns the letter that follows a backslash in the escape of c, or 0 when
 * c needs none. Spool lines and COPY's text format escape the same bytes.
 */
static char
cg_spool_escape_letter(char c)
{
    switch (c) {
    case '\\': return '\\';
    case '\t': return 't';
    case '\n': return 'n';
    case '\r': return 'r';
    default:   return 0;
    }
}


/*
 * Appends text with COPY's escapes for the bytes that end a field or a row.
 * strcspn() finds the runs between those bytes faster than a test of each
 * byte. The room for the worst case, every byte escaped, is reserved first,
 * so the runs are copied without a cg_buf_append() each: a log row has
 * seven texts.
 */
int
cg_pg_copy_add_text(cg_buf_t *buf, const char *text)
{
    const char  *p;
    char        *out;
    size_t       n, len;

    if (text == NULL) {
        return cg_buf_append(buf, "\\N\t", 3);
    }

    len = strlen(text);
    if (len > (SIZE_MAX - 1) / 2 || cg_buf_reserve(buf, 2 * len + 1) != 0) {
        return -1;
    }

    out = buf->data + buf->len;

    for (p = text; ; p += n + 1) {
        n = strcspn(p, "\\\t\n\r");

        memcpy(out, p, n);
        out += n;

        if (p[n] == '\0') {
            break;
        }

        *out++ = '\\';
        *out++ = cg_spool_escape_letter(p[n]);
    }

    *out++ = '\t';
    *out = '\0';
    buf->len = (size_t) (out - buf->data);

    return 0;
}


int
cg_pg_copy_add_int(cg_buf_t *buf, long long value)
{
    char  num[21], *p, *out;   /* LLONG_MAX has 19 digits, then a tab */

    if (value < 0) {
        return cg_buf_append(buf, "\\N\t", 3);
    }

    num[sizeof(num) - 1] = '\t';
    p = cg_pg_digits(num + sizeof(num) - 1, (unsigned long long) value);

    if (cg_buf_reserve(buf, sizeof(num)) != 0) {
        return -1;
    }

    /* a few bytes: a loop costs less than a call of memcpy() */
    out = buf->data + buf->len;
    while (p < num + sizeof(num)) {
        *out++ = *p++;
    }
    *out = '\0';
    buf->len = (size_t) (out - buf->data);

    return 0;
}


int
cg_pg_copy_add_bool(cg_buf_t *buf, int value)
{
    return cg_buf_append(buf, value ? "t\t" : "f\t", 2);
}


/*
 * Appends "YYYY-MM-DD HH:MM:SS.ffffff+00". The part up to the seconds comes
 * from gmtime_r() and snprintf() and is kept for the next row of the same
 * second, because the rows of a batch span a few seconds at most.
 */
int
cg_pg_copy_add_time(cg_buf_t *buf, int64_t us)
{
    static __thread time_t  last = -1;
    static __thread char    prefix[32];
    static __thread size_t  prefix_len;
    char                    frac[12];
    time_t                  sec;
    struct tm               tm;
    int                     i, n;
    int64_t                 f;

    if (us < 0) {
        return cg_buf_append(buf, "\\N\t", 3);
    }

    sec = (time_t) (us / 1000000);

    if (sec != last) {
        if (gmtime_r(&sec, &tm) == NULL) {
            return -1;
        }

        n = snprintf(prefix, sizeof(prefix), "%04d-%02d-%02d %02d:%02d:%02d",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
        if (n < 0 || (size_t) n >= sizeof(prefix)) {
            return -1;
        }
        prefix_len = (size_t) n;
        last = sec;
    }

    frac[0] = '.';
    for (i = 6, f = us % 1000000; i >= 1; i--, f /= 10) {
        frac[i] = (char) ('0' + f % 10);
    }
    memcpy(frac + 7, "+00\t", 4);

    if (cg_buf_reserve(buf, prefix_len + 11) != 0) {
        return -1;
    }

    memcpy(buf->data + buf->len, prefix, prefix_len);
    memcpy(buf->data + buf->len + prefix_len, frac, 11);
    buf->len += prefix_len + 11;
    buf->data[buf->len] = '\0';

    return 0;
}


void
cg_pg_copy_end_row(cg_buf_t *buf)
{
    if (buf->len > 0 && buf->data[buf->len - 1] == '\t') {
        buf->data[buf->len - 1] = '\n';
    }
}


/* Appends s escaped at out; returns the new end, or NULL past end. */
static char *
cg_spool_escape(char *out, char *end, const char *s)
{
    char  c;

    for ( /* void */ ; *s; s++) {
        if (end - out < 2) {
            return NULL;
        }

        c = cg_spool_escape_letter(*s);
        if (c == 0) {
            *out++ = *s;
            continue;
        }

        *out++ = '\\';
        *out++ = c;
    }

    return out;
}


size_t
cg_spool_encode(const cg_log_row_t *row, char *buf, size_t size)
{
    const cg_field_t  *f;
    const char        *base = (const char *) row;
    char              *out = buf, *end = buf + size;
    long long          value;
    size_t             i;
    int                n;

    if (size < sizeof(CG_SPOOL_VERSION)) {
        return 0;
    }

    memcpy(out, CG_SPOOL_VERSION, sizeof(CG_SPOOL_VERSION) - 1);
    out += sizeof(CG_SPOOL_VERSION) - 1;

    for (i = 0; i < CG_SPOOL_NFIELDS; i++) {
        f = &cg_spool_fields[i];

        if (end - out < 2) {
            return 0;
        }
        *out++ = '\t';

        switch (f->type) {
        case CG_FIELD_STR:
            out = cg_spool_escape(out, end, base + f->offset);
            if (out == NULL) {
                return 0;
            }
            continue;

        case CG_FIELD_I64:
            value = *(const int64_t *) (base + f->offset);
            break;

        case CG_FIELD_INT:
            value = *(const int *) (base + f->offset);
            break;

        default:
            value = *(const long *) (base + f->offset);
            break;
        }

        n = snprintf(out, end - out, "%lld", value);
        if (n < 0 || n >= end - out) {
            return 0;
        }
        out += n;
    }

    if (end - out < 2) {
        return 0;
    }

    *out++ = '\n';
    *out = '\0';

    return out - buf;
}


/* Unescapes the field [p, end) into dst of size bytes, NUL-terminated. */
static int
cg_spool_unescape(const char *p, const char *end, char *dst, size_t size)
{
    char  c;

    for ( /* void */ ; p < end; p++) {
        if (size < 2) {
            return -1;
        }

        c = *p;

        if (c == '\\') {
            if (++p == end) {
                return -1;
            }

            switch (*p) {
            case '\\': c = '\\'; break;
            case 't': c = '\t'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            default: return -1;
            }

        } else if (c == '\0' || c == '\n') {
            return -1;
        }

        *dst++ = c;
        size--;
    }

    *dst = '\0';

    return 0;
}


static int
cg_spool_parse_number(const char *p, const char *end, long long min,
    long long max, long long *value)
{
    char        num[24], *last;
    size_t      len = end - p;
    long long   v;

    if (len == 0 || len >= sizeof(num)) {
        return -1;
    }

    memcpy(num, p, len);
    num[len] = '\0';

    errno = 0;
    v = strtoll(num, &last, 10);

    if (errno != 0 || *last != '\0' || v < min || v > max) {
        return -1;
    }

    *value = v;

    return 0;
}


static int
cg_spool_decode_field(const cg_field_t *f, const char *p, const char *end,
    cg_log_row_t *row)
{
    char       *base = (char *) row;
    long long   value;

    switch (f->type) {
    case CG_FIELD_STR:
        return cg_spool_unescape(p, end, base + f->offset, f->size);

    case CG_FIELD_I64:
        if (cg_spool_parse_number(p, end, INT64_MIN, INT64_MAX, &value) != 0) {
            return -1;
        }
        *(int64_t *) (base + f->offset) = value;
        return 0;

    case CG_FIELD_INT:
        if (cg_spool_parse_number(p, end, INT_MIN, INT_MAX, &value) != 0) {
            return -1;
        }
        *(int *) (base + f->offset) = (int) value;
        return 0;

    default:
        if (cg_spool_parse_number(p, end, LONG_MIN, LONG_MAX, &value) != 0) {
            return -1;
        }
        *(long *) (base + f->offset) = (long) value;
        return 0;
    }
}


int
cg_spool_decode(const char *line, size_t len, cg_log_row_t *row)
{
    const char  *p = line, *end = line + len, *tab;
    size_t       i;

    cg_log_row_init(row);

    tab = memchr(p, '\t', end - p);
    if (tab == NULL
        || (size_t) (tab - p) != sizeof(CG_SPOOL_VERSION) - 1
        || memcmp(p, CG_SPOOL_VERSION, tab - p) != 0)
    {
        return -1;
    }

    p = tab + 1;

    for (i = 0; i < CG_SPOOL_NFIELDS; i++) {
        tab = memchr(p, '\t', end - p);

        if ((tab == NULL) != (i == CG_SPOOL_NFIELDS - 1)) {
            return -1;
        }

        if (tab == NULL) {
            tab = end;
        }

        if (cg_spool_decode_field(&cg_spool_fields[i], p, tab, row) != 0) {
            return -1;
        }

        p = tab + 1;
    }

    return 0;
}


/* Cuts off a last line that lacks its newline. Returns 0 or -1. */
static int
cg_spool_repair(cg_spool_t *spool)
{
    char   c;
    off_t  size, end;

    size = lseek(spool->fd, 0, SEEK_END);
    if (size <= 0) {
        return size < 0 ? -1 : 0;
    }

    for (end = size; end > 0; end--) {
        if (pread(spool->fd, &c, 1, end - 1) != 1) {
            return -1;
        }

        if (c == '\n') {
            break;
        }
    }

    if (end == size) {
        return 0;
    }

    cg_log_warn(NULL, "spool file \"%s\" ends in an incomplete line, "
                "cutting off its last %lld bytes",
                spool->path, (long long) (size - end));

    return ftruncate(spool->fd, end);
}


cg_spool_t *
cg_spool_open(const char *path)
{
    cg_spool_t  *spool;
    int          err;

    spool = calloc(1, sizeof(cg_spool_t));
    if (spool == NULL) {
        return NULL;
    }

    spool->fd = -1;
    spool->path = strdup(path);
    spool->read_buf = malloc(CG_SPOOL_READ_SIZE);
    if (spool->path == NULL || spool->read_buf == NULL) {
        errno = ENOMEM;
        goto fail;
    }

    spool->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (spool->fd == -1) {
        goto fail;
    }

    if (cg_spool_repair(spool) != 0) {
        goto fail;
    }

    return spool;

fail:

    err = errno;
    cg_log_error(NULL, "open spool file \"%s\" failed: %s", path,
                 strerror(err));
    cg_spool_close(spool);
    errno = err;

    return NULL;
}


/* Writes all of len bytes; returns 0 or -1 with errno set. */
static int
cg_spool_write_all(int fd, const char *data, size_t len)
{
    ssize_t  n;

    while (len > 0) {
        n = write(fd, data, len);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }

        data += n;
        len -= n;
    }

    return 0;
}


int
cg_spool_append(cg_spool_t *spool, const cg_log_row_t *rows, int n)
{
    char      line[CG_SPOOL_LINE_MAX];
    cg_buf_t  buf = { 0 };
    size_t    len;
    off_t     size;
    int       i, err;

    for (i = 0; i < n; i++) {
        len = cg_spool_encode(&rows[i], line, sizeof(line));

        /* Cannot happen while the fields of cg_log_row_t fit the line. */
        if (len == 0) {
            cg_log_error(rows[i].request_id, "spool line too long, row dropped");
            continue;
        }

        if (cg_buf_append(&buf, line, len) != 0) {
            errno = ENOMEM;
            goto fail;
        }
    }

    if (buf.len == 0) {
        return 0;
    }

    size = lseek(spool->fd, 0, SEEK_END);
    if (size == -1) {
        goto fail;
    }

    if (cg_spool_write_all(spool->fd, buf.data, buf.len) != 0
        || fsync(spool->fd) != 0)
    {
        err = errno;
        if (ftruncate(spool->fd, size) != 0) {
            cg_log_error(NULL, "cut back spool file \"%s\" failed: %s",
                         spool->path, strerror(errno));
        }
        errno = err;
        goto fail;
    }

    cg_buf_free(&buf);

    return 0;

fail:

    cg_log_error(NULL, "append of %d rows to spool file \"%s\" failed: %s",
                 n, spool->path, strerror(errno));
    cg_buf_free(&buf);

    return -1;
}


int
cg_spool_read(cg_spool_t *spool, off_t offset, cg_log_row_t *rows, int max,
    off_t *next, int *bad)
{
    ssize_t      got;
    const char  *p, *end, *nl;
    int          n = 0, skipping = 0;

    *bad = 0;

    while (n == 0) {
        got = pread(spool->fd, spool->read_buf, CG_SPOOL_READ_SIZE, offset);
        if (got == -1) {
            if (errno == EINTR) {
                continue;
            }
            cg_log_error(NULL, "read spool file \"%s\" at offset %lld "
                         "failed: %s", spool->path, (long long) offset,
                         strerror(errno));
            return -1;
        }

        if (got == 0) {
            break;
        }

        p = spool->read_buf;
        end = p + got;

        while (n < max && (nl = memchr(p, '\n', end - p)) != NULL) {
            if (skipping) {
                skipping = 0;

            } else if (cg_spool_decode(p, nl - p, &rows[n]) == 0) {
                n++;

            } else {
                (*bad)++;
            }

            offset += nl + 1 - p;
            p = nl + 1;
        }

        if (p == spool->read_buf && n < max) {
            if (got < CG_SPOOL_READ_SIZE) {
                /* The end of the file, without a newline: not ours yet. */
                break;
            }

            /* A whole buffer without a newline cannot be a line we wrote. */
            if (!skipping) {
                (*bad)++;
            }
            skipping = 1;
            offset += got;
        }
    }

    *next = offset;

    return n;
}


off_t
cg_spool_size(cg_spool_t *spool)
{
    return lseek(spool->fd, 0, SEEK_END);
}


int
cg_spool_truncate(cg_spool_t *spool)
{
    char  path[CG_SPOOL_PATH_MAX];

    if (ftruncate(spool->fd, 0) != 0 || fsync(spool->fd) != 0) {
        cg_log_error(NULL, "truncate spool file \"%s\" failed: %s",
                     spool->path, strerror(errno));
        return -1;
    }

    /* if this unlink fails, the offset no longer matches, and the next load
     * removes it */
    if (cg_spool_offset_path(spool, path, sizeof(path)) == 0
        && unlink(path) != 0 && errno != ENOENT)
    {
        cg_log_warn(NULL, "remove replay offset file \"%s\" failed: %s",
                    path, strerror(errno));
    }

    return 0;
}


static int
cg_spool_offset_path(cg_spool_t *spool, char *path, size_t size)
{
    int  n;

    n = snprintf(path, size, "%s.offset", spool->path);

    return (n < 0 || (size_t) n >= size) ? -1 : 0;
}


/*
 * Hashes (FNV-1a, 64 bits) the spool line that ends at offset, or its last
 * CG_SPOOL_LINE_HASH_MAX bytes. The hash ties a saved offset to the row
 * before it, so that an offset left by another spool file is not applied
 * to this one. Returns 0, or -1 when offset is not the end of a line.
 */
static int
cg_spool_line_hash(cg_spool_t *spool, off_t offset, uint64_t *hash)
{
    char     buf[CG_SPOOL_LINE_HASH_MAX];
    size_t   n, start;
    ssize_t  got;

    if (offset <= 0 || offset > cg_spool_size(spool)) {
        return -1;
    }

    n = offset < (off_t) sizeof(buf) ? (size_t) offset : sizeof(buf);
    got = pread(spool->fd, buf, n, offset - (off_t) n);
    if (got != (ssize_t) n || buf[n - 1] != '\n') {
        return -1;
    }

    start = n - 1;
    while (start > 0 && buf[start - 1] != '\n') {
        start--;
    }

    *hash = 14695981039346656037ULL;
    for (; start < n; start++) {
        *hash ^= (unsigned char) buf[start];
        *hash *= 1099511628211ULL;
    }

    return 0;
}


off_t
cg_spool_load_offset(cg_spool_t *spool)
{
    char                path[CG_SPOOL_PATH_MAX], text[64], *end;
    int                 fd;
    ssize_t             n;
    long long           offset;
    unsigned long long  saved_hash;
    uint64_t            hash;

    if (cg_spool_offset_path(spool, path, sizeof(path)) != 0) {
        return 0;
    }

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        if (errno != ENOENT) {
            cg_log_warn(NULL, "open replay offset file \"%s\" failed, "
                        "replaying from the start: %s", path,
                        strerror(errno));
        }
        return 0;
    }

    n = read(fd, text, sizeof(text) - 1);
    close(fd);

    text[n > 0 ? n : 0] = '\0';
    errno = 0;
    offset = strtoll(text, &end, 10);
    if (errno == 0 && end != text && *end == ' ') {
        saved_hash = strtoull(end + 1, &end, 16);
    } else {
        end = text;
        saved_hash = 0;
    }

    /*
     * The offset must end the same line as when it was saved. One that does
     * not match is removed, so that it cannot match rows spooled later.
     */
    if (errno != 0 || end == text || (*end != '\n' && *end != '\0')
        || cg_spool_line_hash(spool, (off_t) offset, &hash) != 0
        || hash != saved_hash)
    {
        cg_log_warn(NULL, "replay offset file \"%s\" does not match "
                    "\"%s\", replaying from the start", path, spool->path);

        if (unlink(path) != 0 && errno != ENOENT) {
            cg_log_warn(NULL, "remove replay offset file \"%s\" failed: %s",
                        path, strerror(errno));
        }
        return 0;
    }

    return (off_t) offset;
}


int
cg_spool_save_offset(cg_spool_t *spool, off_t offset)
{
    char      path[CG_SPOOL_PATH_MAX], tmp[CG_SPOOL_PATH_MAX], text[64];
    int       fd, len, rc;
    uint64_t  hash;

    if (cg_spool_offset_path(spool, path, sizeof(path)) != 0
        || snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int) sizeof(tmp))
    {
        return -1;
    }

    if (cg_spool_line_hash(spool, offset, &hash) != 0) {
        cg_log_warn(NULL, "replay offset %lld is not the end of a line of "
                    "\"%s\", not saved", (long long) offset, spool->path);
        return -1;
    }

    len = snprintf(text, sizeof(text), "%lld %016" PRIx64 "\n",
                   (long long) offset, hash);

    /* a new file, so that a link placed at tmp is never written through */
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

    rc = (fd == -1) ? -1 : cg_spool_write_all(fd, text, (size_t) len);
    if (fd != -1 && close(fd) != 0) {
        rc = -1;
    }

    if (rc != 0 || rename(tmp, path) != 0) {
        /* a replay saves its offset after every batch, so this is logged
         * once per run of failures */
        if (spool->offset_failures++ == 0) {
            cg_log_warn(NULL, "write replay offset file \"%s\" failed, "
                        "a restart may replay rows of \"%s\" again: %s",
                        path, spool->path, strerror(errno));
        }

        if (fd != -1) {
            unlink(tmp);
        }
        return -1;
    }

    if (spool->offset_failures > 0) {
        cg_log_info(NULL, "wrote replay offset file \"%s\" after %ld failed "
                    "writes", path, spool->offset_failures);
        spool->offset_failures = 0;
    }

    return 0;
}


const char *
cg_spool_path(cg_spool_t *spool)
{
    return spool->path;
}


void
cg_spool_close(cg_spool_t *spool)
{
    if (spool == NULL) {
        return;
    }

    if (spool->fd != -1) {
        close(spool->fd);
    }

    free(spool->read_buf);
    free(spool->path);
    free(spool);
}
