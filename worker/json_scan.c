#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json_scan.h"


/*
 * A reader of whole texts for the request path. yajl 2.1.0 lexes a token at
 * a time through a state machine built for texts that arrive in pieces,
 * and cg_json_parse() then reads the whole text twice more, for UTF-8 and
 * for surrogate escapes. Here one pass does all of it. yajl stays the
 * reference: what this reader accepts, and the callbacks it makes, must
 * be exactly those of yajl with json.c's checks, which
 * t/unit/test_json_scan.c compares on generated texts.
 */


/* The classes of bytes inside a string. */
#define CG_SCAN_PLAIN    0
#define CG_SCAN_QUOTE    1
#define CG_SCAN_ESCAPE   2
#define CG_SCAN_CONTROL  3
#define CG_SCAN_HIGH     4

static const unsigned char  cg_scan_class[256] = {
    [0x00 ... 0x1f] = CG_SCAN_CONTROL,
    ['"'] = CG_SCAN_QUOTE,
    ['\\'] = CG_SCAN_ESCAPE,
    [0x80 ... 0xff] = CG_SCAN_HIGH
};

/* yajl's white space (JSON's four bytes, and \v and \f) and comments */
#define CG_SCAN_SPACE    1
#define CG_SCAN_COMMENT  2

static const unsigned char  cg_scan_skip[256] = {
    [' '] = CG_SCAN_SPACE, ['\t'] = CG_SCAN_SPACE, ['\n'] = CG_SCAN_SPACE,
    ['\r'] = CG_SCAN_SPACE, ['\v'] = CG_SCAN_SPACE, ['\f'] = CG_SCAN_SPACE,
    ['/'] = CG_SCAN_COMMENT
};

/* What the reader expects next. */
typedef enum {
    CG_SCAN_VALUE = 0,
    CG_SCAN_NAME,           /* a member name, after '{' or ',' */
    CG_SCAN_AFTER_VALUE     /* ',', the container's end, or the text's */
} cg_scan_state_t;

typedef struct {
    const unsigned char   *p;
    const unsigned char   *end;
    const yajl_callbacks  *cb;
    void                  *ctx;

    int                    comments;     /* a comment was skipped */
    int                    nomem;        /* a decoded string found no memory */

    /* Decoded strings go here, in buf_inline until one does not fit. */
    unsigned char         *buf;
    size_t                 buf_size;
    unsigned char          buf_inline[512];

    /* open[d] is '{' or '[' for the container at depth d */
    unsigned char          open[CG_JSON_MAX_DEPTH];
    size_t                 depth;
} cg_scan_t;


static int cg_scan_value(cg_scan_t *sc);
static int cg_scan_open(cg_scan_t *sc);
static int cg_scan_close(cg_scan_t *sc);
static unsigned char cg_scan_closer(const cg_scan_t *sc);
static int cg_scan_literal(cg_scan_t *sc);
static int cg_scan_number(cg_scan_t *sc);
static const unsigned char *cg_scan_digits(const unsigned char *p,
    const unsigned char *end);
static int cg_scan_string(cg_scan_t *sc, const unsigned char **s,
    size_t *len);
static const unsigned char *cg_scan_plain(const unsigned char *p,
    const unsigned char *end);
static const unsigned char *cg_scan_escapes(const unsigned char *p,
    const unsigned char *end);
static int cg_scan_unescape(cg_scan_t *sc, const unsigned char *start,
    const unsigned char *quote, size_t *len);
static unsigned cg_scan_hex4(const unsigned char *p);
static inline int cg_scan_space(cg_scan_t *sc);
static int cg_scan_comment(cg_scan_t *sc);


int
cg_json_scan(const char *text, size_t len, const yajl_callbacks *cb,
    void *ctx)
{
    cg_scan_t         sc;
    cg_scan_state_t   state = CG_SCAN_VALUE;
    const unsigned char  *name;
    size_t            name_len, depth;
    char              cause[64];
    int               rc = -1;

    sc.p = (const unsigned char *) text;
    sc.end = sc.p + len;
    sc.cb = cb;
    sc.ctx = ctx;
    sc.comments = 0;
    sc.nomem = 0;
    sc.buf = sc.buf_inline;
    sc.buf_size = sizeof(sc.buf_inline);
    sc.depth = 0;

    for ( ;; ) {

        if (cg_scan_space(&sc) != 0) {
            break;
        }

        if (state == CG_SCAN_VALUE) {
            depth = sc.depth;

            if (cg_scan_value(&sc) != 0) {
                break;
            }

            state = CG_SCAN_AFTER_VALUE;

            if (sc.depth == depth) {
                continue;
            }

            /* A container opened. An empty one closes at once. */
            if (cg_scan_space(&sc) != 0 || sc.p == sc.end) {
                break;
            }

            if (*sc.p == cg_scan_closer(&sc)) {
                if (cg_scan_close(&sc) != 0) {
                    break;
                }
                continue;
            }

            state = sc.open[sc.depth - 1] == '{' ? CG_SCAN_NAME
                                                 : CG_SCAN_VALUE;
            continue;
        }

        if (state == CG_SCAN_NAME) {
            if (sc.p == sc.end || *sc.p != '"'
                || cg_scan_string(&sc, &name, &name_len) != 0
                || (cb->yajl_map_key != NULL
                    && !cb->yajl_map_key(ctx, name, name_len))
                || cg_scan_space(&sc) != 0
                || sc.p == sc.end || *sc.p != ':')
            {
                break;
            }

            sc.p++;
            state = CG_SCAN_VALUE;
            continue;
        }

        /* CG_SCAN_AFTER_VALUE */

        if (sc.depth == 0) {
            /*
             * cg_json_check_text() counts the brackets in comments as
             * nesting too, so a text with comments needs its check.
             */
            if (sc.p == sc.end
                && (!sc.comments
                    || cg_json_check_text(text, len, cause, sizeof(cause)) == 0))
            {
                rc = 0;
            }

            break;
        }

        if (sc.p == sc.end) {
            break;
        }

        if (*sc.p == ',') {
            sc.p++;
            state = sc.open[sc.depth - 1] == '{' ? CG_SCAN_NAME
                                                 : CG_SCAN_VALUE;
            continue;
        }

        if (*sc.p != cg_scan_closer(&sc) || cg_scan_close(&sc) != 0) {
            break;
        }
    }

    if (sc.buf != sc.buf_inline) {
        free(sc.buf);
    }

    return sc.nomem ? CG_JSON_SCAN_NOMEM : rc;
}


/*
 * Reads the value at sc->p, or opens the container that starts there.
 * Returns 0, or -1 when the text has no valid value there or a callback
 * stopped the read.
 */
static int
cg_scan_value(cg_scan_t *sc)
{
    const unsigned char  *s;
    size_t                len;

    if (sc->p == sc->end) {
        return -1;
    }

    switch (*sc->p) {

    case '{':
    case '[':
        return cg_scan_open(sc);

    case '"':
        if (cg_scan_string(sc, &s, &len) != 0) {
            return -1;
        }

        return sc->cb->yajl_string == NULL
               || sc->cb->yajl_string(sc->ctx, s, len) ? 0 : -1;

    case 't':
    case 'f':
    case 'n':
        return cg_scan_literal(sc);

    default:
        return cg_scan_number(sc);
    }
}


static int
cg_scan_open(cg_scan_t *sc)
{
    int  go_on;

    if (sc->depth == CG_JSON_MAX_DEPTH) {
        return -1;
    }

    sc->open[sc->depth++] = *sc->p;

    if (*sc->p == '{') {
        go_on = sc->cb->yajl_start_map == NULL
                || sc->cb->yajl_start_map(sc->ctx);
    } else {
        go_on = sc->cb->yajl_start_array == NULL
                || sc->cb->yajl_start_array(sc->ctx);
    }

    sc->p++;

    return go_on ? 0 : -1;
}


/* Closes the innermost container, whose closing bracket is at sc->p. */
static int
cg_scan_close(cg_scan_t *sc)
{
    int  go_on;

    sc->p++;
    sc->depth--;

    if (sc->open[sc->depth] == '{') {
        go_on = sc->cb->yajl_end_map == NULL || sc->cb->yajl_end_map(sc->ctx);
    } else {
        go_on = sc->cb->yajl_end_array == NULL
                || sc->cb->yajl_end_array(sc->ctx);
    }

    return go_on ? 0 : -1;
}


/* Returns the byte that closes the innermost container. */
static unsigned char
cg_scan_closer(const cg_scan_t *sc)
{
    return sc->open[sc->depth - 1] == '{' ? '}' : ']';
}


static int
cg_scan_literal(cg_scan_t *sc)
{
    size_t  left = (size_t) (sc->end - sc->p);
    int     go_on;

    if (left >= 4 && memcmp(sc->p, "true", 4) == 0) {
        sc->p += 4;
        go_on = sc->cb->yajl_boolean == NULL
                || sc->cb->yajl_boolean(sc->ctx, 1);

    } else if (left >= 5 && memcmp(sc->p, "false", 5) == 0) {
        sc->p += 5;
        go_on = sc->cb->yajl_boolean == NULL
                || sc->cb->yajl_boolean(sc->ctx, 0);

    } else if (left >= 4 && memcmp(sc->p, "null", 4) == 0) {
        sc->p += 4;
        go_on = sc->cb->yajl_null == NULL || sc->cb->yajl_null(sc->ctx);

    } else {
        return -1;
    }

    return go_on ? 0 : -1;
}


/*
 * Reads a number in JSON's grammar, which is yajl's: no leading zero
 * before other digits, at least one digit after '.' and after the exponent
 * mark. A byte that cannot follow a value, such as the '1' of "01", fails
 * later in the caller, as the extra token fails in yajl's parser.
 */
static int
cg_scan_number(cg_scan_t *sc)
{
    const unsigned char  *p = sc->p, *end = sc->end, *start = sc->p;

    if (p < end && *p == '-') {
        p++;
    }

    if (p < end && *p == '0') {
        p++;

    } else if ((p = cg_scan_digits(p, end)) == NULL) {
        return -1;
    }

    if (p < end && *p == '.') {
        p = cg_scan_digits(p + 1, end);
        if (p == NULL) {
            return -1;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        p = cg_scan_digits(p, end);
        if (p == NULL) {
            return -1;
        }
    }

    sc->p = p;

    if (sc->cb->yajl_number == NULL) {
        return 0;
    }

    return sc->cb->yajl_number(sc->ctx, (const char *) start,
                               (size_t) (p - start)) ? 0 : -1;
}


/* Skips one or more digits, or returns NULL when p has none. */
static const unsigned char *
cg_scan_digits(const unsigned char *p, const unsigned char *end)
{
    if (p == end || *p < '0' || *p > '9') {
        return NULL;
    }

    do {
        p++;
    } while (p < end && *p >= '0' && *p <= '9');

    return p;
}


/*
 * Reads the string whose opening quote is at sc->p and points *s at its
 * contents: in the text when it has no escape, decoded in sc->buf when it
 * has one. Control bytes, invalid UTF-8 and lone surrogate escapes fail.
 */
static int
cg_scan_string(cg_scan_t *sc, const unsigned char **s, size_t *len)
{
    const unsigned char  *start = sc->p + 1, *p = start, *end = sc->end;
    size_t                n;

    for ( ;; ) {
        p = cg_scan_plain(p, end);

        if (p == end) {
            return -1;
        }

        switch (cg_scan_class[*p]) {

        case CG_SCAN_QUOTE:
            *s = start;
            *len = (size_t) (p - start);
            sc->p = p + 1;
            return 0;

        case CG_SCAN_ESCAPE:
            p = cg_scan_escapes(p, end);
            if (p == NULL || cg_scan_unescape(sc, start, p, len) != 0) {
                return -1;
            }

            *s = sc->buf;
            sc->p = p + 1;
            return 0;

        case CG_SCAN_HIGH:
            n = cg_utf8_seq_len(p, (size_t) (end - p));
            if (n == 0) {
                return -1;
            }
            p += n;
            break;

        default:
            return -1;
        }
    }
}


/*
 * Returns the first byte from p on that is not plain string text: a quote,
 * a backslash, a control byte or a byte of a multi-byte character. Eight
 * bytes at a time, because the text of a chat is mostly plain.
 */
static const unsigned char *
cg_scan_plain(const unsigned char *p, const unsigned char *end)
{
    const uint64_t  ones = 0x0101010101010101ULL;
    const uint64_t  highs = 0x8080808080808080ULL;
    uint64_t        w, quote, backslash, special;

    while (end - p >= 8) {
        memcpy(&w, p, sizeof(w));

        /* (x - ones) & ~x has a high bit set where x has a zero byte */
        quote = w ^ (ones * '"');
        backslash = w ^ (ones * '\\');
        special = w
                  | ((w - ones * 0x20) & ~w)
                  | ((quote - ones) & ~quote)
                  | ((backslash - ones) & ~backslash);

        if ((special & highs) != 0) {
            break;
        }

        p += sizeof(w);
    }

    while (p < end && cg_scan_class[*p] == CG_SCAN_PLAIN) {
        p++;
    }

    return p;
}


/*
 * Checks the rest of a string from its first escape at p, and returns its
 * closing quote, or NULL. An escape is one of yajl's: \" \\ \/ \b \f \n \r
 * \t, or \u and four hex digits. A high surrogate must be followed by a
 * low one, and a low one must follow a high one, as cg_json_check_escapes()
 * requires.
 */
static const unsigned char *
cg_scan_escapes(const unsigned char *p, const unsigned char *end)
{
    unsigned  cp;
    size_t    n;

    for ( ;; ) {
        p = cg_scan_plain(p, end);

        if (p == end) {
            return NULL;
        }

        switch (cg_scan_class[*p]) {

        case CG_SCAN_QUOTE:
            return p;

        case CG_SCAN_HIGH:
            n = cg_utf8_seq_len(p, (size_t) (end - p));
            if (n == 0) {
                return NULL;
            }
            p += n;
            continue;

        case CG_SCAN_CONTROL:
            return NULL;
        }

        /* a backslash */

        if (end - p < 2) {
            return NULL;
        }

        switch (p[1]) {
        case '"': case '\\': case '/':
        case 'b': case 'f': case 'n': case 'r': case 't':
            p += 2;
            continue;
        }

        if (p[1] != 'u' || end - p < 6) {
            return NULL;
        }

        cp = cg_scan_hex4(p + 2);

        if (cp > 0xffff || (cp >= 0xdc00 && cp <= 0xdfff)) {
            return NULL;
        }

        p += 6;

        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u') {
                return NULL;
            }

            cp = cg_scan_hex4(p + 2);
            if (cp < 0xdc00 || cp > 0xdfff) {
                return NULL;
            }

            p += 6;
        }
    }
}


/*
 * Decodes the contents of a checked string, from start to its closing
 * quote, into sc->buf. Decoding never lengthens a string: an escape of two
 * bytes becomes one, one of six at most three, a pair of twelve four.
 */
static int
cg_scan_unescape(cg_scan_t *sc, const unsigned char *start,
    const unsigned char *quote, size_t *len)
{
    const unsigned char  *p;
    unsigned char        *out, *buf;
    size_t                need = (size_t) (quote - start);
    unsigned              cp;

    if (need > sc->buf_size) {
        buf = malloc(need);
        if (buf == NULL) {
            sc->nomem = 1;
            return -1;
        }

        if (sc->buf != sc->buf_inline) {
            free(sc->buf);
        }

        sc->buf = buf;
        sc->buf_size = need;
    }

    out = sc->buf;

    for (p = start; p < quote; /* void */) {

        if (*p != '\\') {
            *out++ = *p++;
            continue;
        }

        switch (p[1]) {
        case 'b':  *out++ = '\b'; p += 2; continue;
        case 'f':  *out++ = '\f'; p += 2; continue;
        case 'n':  *out++ = '\n'; p += 2; continue;
        case 'r':  *out++ = '\r'; p += 2; continue;
        case 't':  *out++ = '\t'; p += 2; continue;
        case 'u':  break;
        default:   *out++ = p[1]; p += 2; continue;
        }

        cp = cg_scan_hex4(p + 2);
        p += 6;

        if (cp >= 0xd800 && cp <= 0xdbff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (cg_scan_hex4(p + 2) - 0xdc00);
            p += 6;
        }

        if (cp < 0x80) {
            *out++ = (unsigned char) cp;

        } else if (cp < 0x800) {
            *out++ = (unsigned char) (0xc0 | (cp >> 6));
            *out++ = (unsigned char) (0x80 | (cp & 0x3f));

        } else if (cp < 0x10000) {
            *out++ = (unsigned char) (0xe0 | (cp >> 12));
            *out++ = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
            *out++ = (unsigned char) (0x80 | (cp & 0x3f));

        } else {
            *out++ = (unsigned char) (0xf0 | (cp >> 18));
            *out++ = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
            *out++ = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
            *out++ = (unsigned char) (0x80 | (cp & 0x3f));
        }
    }

    *len = (size_t) (out - sc->buf);

    return 0;
}


/* Returns the value of four hex digits, or a value past 0xffff for others. */
static unsigned
cg_scan_hex4(const unsigned char *p)
{
    unsigned  v = 0;
    int       i;

    for (i = 0; i < 4; i++) {
        v <<= 4;

        if (p[i] >= '0' && p[i] <= '9') {
            v |= (unsigned) (p[i] - '0');
        } else if (p[i] >= 'a' && p[i] <= 'f') {
            v |= (unsigned) (p[i] - 'a' + 10);
        } else if (p[i] >= 'A' && p[i] <= 'F') {
            v |= (unsigned) (p[i] - 'A' + 10);
        } else {
            return 0x10000;
        }
    }

    return v;
}


/* Skips white space and comments. */
static inline int
cg_scan_space(cg_scan_t *sc)
{
    while (sc->p < sc->end) {

        switch (cg_scan_skip[*sc->p]) {

        case 0:
            return 0;

        case CG_SCAN_SPACE:
            sc->p++;
            break;

        default:
            if (cg_scan_comment(sc) != 0) {
                return -1;
            }
        }
    }

    return 0;
}


/*
 * Skips the comment at sc->p as yajl does. "//" runs to a line feed, and a
 * block comment to the first '*' followed by '/'. A comment that the text
 * ends in runs to the end, and yajl accepts that after the document's
 * value, but a lone '/' at the end fails. The bytes of a comment pass the
 * checks that json.c runs on the whole text: no NUL, valid UTF-8.
 */
static int
cg_scan_comment(cg_scan_t *sc)
{
    const unsigned char  *start, *stop, *next;
    size_t                left = (size_t) (sc->end - sc->p);

    if (left < 2 || (sc->p[1] != '/' && sc->p[1] != '*')) {
        return -1;
    }

    start = sc->p + 2;

    if (sc->p[1] == '/') {
        stop = memchr(start, '\n', (size_t) (sc->end - start));
        next = stop != NULL ? stop + 1 : sc->end;

    } else {
        stop = memmem(start, (size_t) (sc->end - start), "*/", 2);
        next = stop != NULL ? stop + 2 : sc->end;
    }

    if (stop == NULL) {
        stop = sc->end;
    }

    if (memchr(start, '\0', (size_t) (stop - start)) != NULL
        || cg_utf8_valid_len((const char *) start, (size_t) (stop - start))
           != (size_t) (stop - start))
    {
        return -1;
    }

    sc->comments = 1;
    sc->p = next;

    return 0;
}
