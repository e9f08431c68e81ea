/*
 * The one-pass JSON reader against its reference: for every text, it must
 * accept exactly what cg_json_parse() accepts (yajl with comments, then the
 * UTF-8, escape, NUL and depth checks), and on those texts make the same
 * callbacks with the same bytes as yajl_parse(), a string passed from the
 * text where yajl passes it from the text. The texts are edge cases
 * written here and generated documents with random damage.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "tap.h"
#include "json.h"
#include "json_scan.h"


/* The callbacks of one read, as a byte log. */
typedef struct {
    const char     *text;
    size_t          len;
    unsigned char   log[1 << 16];
    size_t          used;
    int             full;
    int             stop_after;   /* fail the callback after this many, or -1 */
    int             calls;

    /* yajl's read: where its document's value ends */
    yajl_handle     h;
    int             finishing;    /* in yajl_complete_parse() */
    size_t          depth;
    size_t          value_end;
} record_t;


static int
record(record_t *rec, unsigned char event, const unsigned char *s, size_t len,
    int locate)
{
    uintptr_t  p = (uintptr_t) s, start = (uintptr_t) rec->text;
    size_t     need = 2 + sizeof(len) + len;

    if (rec->stop_after >= 0 && rec->calls++ == rec->stop_after) {
        return 0;
    }

    if (event == '{' || event == '[') {
        rec->depth++;
    } else if (event == '}' || event == ']') {
        rec->depth--;
    }

    /* In a callback, yajl has consumed the bytes up to the token's end. */
    if (rec->depth == 0 && rec->h != NULL) {
        rec->value_end = rec->finishing ? rec->len
                                        : yajl_get_bytes_consumed(rec->h);
    }

    if (rec->used + need > sizeof(rec->log)) {
        rec->full = 1;
        return 1;
    }

    rec->log[rec->used++] = event;

    /* where the bytes are: in the text (1) or a decoded copy (0) */
    rec->log[rec->used++] = locate && s != NULL && p >= start
                            && p - start < rec->len;

    memcpy(rec->log + rec->used, &len, sizeof(len));
    rec->used += sizeof(len);
    if (len > 0) {
        memcpy(rec->log + rec->used, s, len);
        rec->used += len;
    }

    return 1;
}


static int
on_null(void *ctx)
{
    return record(ctx, 'n', NULL, 0, 0);
}


static int
on_boolean(void *ctx, int value)
{
    return record(ctx, value ? 't' : 'f', NULL, 0, 0);
}


static int
on_number(void *ctx, const char *s, size_t len)
{
    /* yajl copies a number that ends the text, so only its bytes count */
    return record(ctx, 'N', (const unsigned char *) s, len, 0);
}


static int
on_string(void *ctx, const unsigned char *s, size_t len)
{
    return record(ctx, 'S', s, len, 1);
}


static int
on_start_map(void *ctx)
{
    return record(ctx, '{', NULL, 0, 0);
}


static int
on_map_key(void *ctx, const unsigned char *s, size_t len)
{
    return record(ctx, 'K', s, len, 1);
}


static int
on_end_map(void *ctx)
{
    return record(ctx, '}', NULL, 0, 0);
}


static int
on_start_array(void *ctx)
{
    return record(ctx, '[', NULL, 0, 0);
}


static int
on_end_array(void *ctx)
{
    return record(ctx, ']', NULL, 0, 0);
}


static const yajl_callbacks  callbacks = {
    on_null, on_boolean, NULL, NULL, on_number, on_string,
    on_start_map, on_map_key, on_end_map, on_start_array, on_end_array
};


static void
record_init(record_t *rec, const char *text, size_t len, int stop_after)
{
    rec->text = text;
    rec->len = len;
    rec->used = 0;
    rec->full = 0;
    rec->stop_after = stop_after;
    rec->calls = 0;
    rec->h = NULL;
    rec->finishing = 0;
    rec->depth = 0;
    rec->value_end = 0;
}


/* Records yajl_parse()'s callbacks; returns 0 when yajl accepts the text. */
static int
reference_read(const char *text, size_t len, record_t *rec)
{
    yajl_handle  h;
    yajl_status  status;

    h = yajl_alloc(&callbacks, NULL, rec);
    if (h == NULL) {
        return -1;
    }

    yajl_config(h, yajl_allow_comments, 1);
    rec->h = h;

    status = yajl_parse(h, (const unsigned char *) text, len);
    if (status == yajl_status_ok) {
        rec->finishing = 1;
        status = yajl_complete_parse(h);
    }

    rec->h = NULL;
    yajl_free(h);

    return status == yajl_status_ok ? 0 : -1;
}


/*
 * Returns 1 when only white space and comments follow the document's value,
 * from value_end on. yajl 2.1.0 also accepts a token there that the text
 * ends in the middle of, such as the string in {} "abc, because it takes
 * the end of the text for the end of a chunk. cg_json_parse() rejects that.
 */
static int
only_space_after(const char *text, size_t len, size_t value_end)
{
    size_t       i = value_end;
    const char  *stop;

    while (i < len) {
        if (strchr(" \t\n\r\v\f", text[i]) != NULL && text[i] != '\0') {
            i++;
            continue;
        }

        if (text[i] != '/' || i + 1 == len) {
            return 0;
        }

        if (text[i + 1] == '/') {
            stop = memchr(text + i + 2, '\n', len - i - 2);
            i = stop != NULL ? (size_t) (stop - text) + 1 : len;

        } else if (text[i + 1] == '*') {
            stop = memmem(text + i + 2, len - i - 2, "*/", 2);
            i = stop != NULL ? (size_t) (stop - text) + 2 : len;

        } else {
            return 0;
        }
    }

    return 1;
}


/*
 * The reference verdict: 1 when yajl accepts the text, the checks of
 * json.c pass, and only white space and comments follow the value.
 */
static int
reference_accepts(const char *text, size_t len, record_t *rec)
{
    char  cause[256];

    if (cg_json_check_text(text, len, cause, sizeof(cause)) != 0
        || reference_read(text, len, rec) != 0
        || cg_json_check_utf8(text, len, cause, sizeof(cause)) != 0
        || cg_json_check_escapes(text, len, cause, sizeof(cause)) != 0)
    {
        return 0;
    }

    return only_space_after(text, len, rec->value_end);
}




static record_t  scanned, expected;


/*
 * Compares the reader with the reference on one text. Returns 1 when they
 * agree, and prints the text as hex when they do not.
 */
static int
agrees(const char *text, size_t len, int *accepted)
{
    int     verdict, rc;
    size_t  i;

    record_init(&expected, text, len, -1);
    verdict = reference_accepts(text, len, &expected);

    record_init(&scanned, text, len, -1);
    rc = cg_json_scan(text, len, &callbacks, &scanned);

    *accepted = verdict;

    if ((rc == 0) != verdict) {
        goto differ;
    }

    if (!verdict) {
        return 1;
    }

    if (scanned.full || expected.full
        || scanned.used != expected.used
        || memcmp(scanned.log, expected.log, scanned.used) != 0)
    {
        goto differ;
    }

    return 1;

differ:

    printf("# reader %s, reference %s, callbacks %s: ",
           rc == 0 ? "accepts" : "rejects", verdict ? "accepts" : "rejects",
           verdict && rc == 0 ? "differ" : "-");
    for (i = 0; i < len && i < 200; i++) {
        printf("%02x", (unsigned char) text[i]);
    }
    printf("\n");

    return 0;
}


static void
test_scan_cases(void)
{
    static const char  *texts[] = {
        "{}", "[]", "1", "-0", "0.5e+3", "1E-2", "\"s\"", "true", "false",
        "null", " {\"a\" : [ 1 , 2 ] } ", "\v{}\f", "{\"a\":\v1}",
        "/* note */ {\"a\":1} // end\n", "{\"a\":1 /* [[[ */}",
        "{\"a\":1} /* open", "{\"a\":1} //", "{\"a\":1} /", "{\"a\":1} /*",
        "{\"a\":1} /**", "/**/1", "/*/ 1", "1/**/", "// x\n1", "// x", "/* x",
        "[1 /* x", "{} /x", "/", "", " ", "{", "}", "{\"a\"}", "{\"a\":}",
        "{\"a\":1,}", "[1,]", "[,1]", "{,}", "{a:1}", "{'a':1}", "[01]",
        "[1.]", "[.5]", "[+1]", "[-]", "[1e]", "[1e+]", "[NaN]", "[tru]",
        "[true1]", "[truex]", "1 2", "{\"a\":1}{\"b\":2}", "{\"a\":1} x",
        "[\"\t\"]", "[\"\x7f\"]", "[\"\\u12\"]", "[\"\\u12g4\"]", "[\"\\x\"]",
        "\"unterminated", "\"a\\", "[\"\\u0000\"]", "[\"\\u00e9\\n\\/\"]",
        "[\"\\ud83d\\ude00\"]", "[\"\\ud800\"]", "[\"\\udc00\"]",
        "[\"\\ud800\\u0041\"]", "[\"\\ud800x\"]", "[\"\\uDBFF\\uDFFF\"]",
        "[\"\xc3\xa9\"]", "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]",
        "[\"\xf4\x90\x80\x80\"]", "[\"\xe2\x82\"]", "\xef\xbb\xbf{}",
        "{} /* \xc3\xa9 */", "{} /* \xff */", "{} // \xc0\n",
        "{\"k\\\"ey\":\"v\"}", "{\"a\":{\"b\":[{},[],\"\"]}}",
        "<html>bad</html>", "{\"a\":\"b\"\"c\"}", "{\"a\" 1}", "[1:2]",
        "{\"a\":1 \"b\":2}",
    };
    size_t  i;
    int     accepted;

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        ok(agrees(texts[i], strlen(texts[i]), &accepted), "case %zu agrees",
           i);
    }
}


/* Texts with NUL bytes, which strlen() cannot measure. */
static void
test_scan_nul(void)
{
    static const struct {
        const char  *text;
        size_t       len;
    } texts[] = {
        { "[\"a\0b\"]", 7 }, { "[1]\0", 4 }, { "\0[1]", 4 },
        { "{} /* \0 */", 10 }, { "{} // \0\n", 8 },
    };
    size_t  i;
    int     accepted;

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        ok(agrees(texts[i].text, texts[i].len, &accepted),
           "NUL case %zu agrees", i);
        ok(!accepted, "NUL case %zu is rejected", i);
    }
}


/* Nesting up to CG_JSON_MAX_DEPTH passes, one more fails, also in comments. */
static void
test_scan_depth(void)
{
    char    text[2 * CG_JSON_MAX_DEPTH + 64];
    size_t  n, len;
    int     accepted;

    for (n = CG_JSON_MAX_DEPTH - 1; n <= CG_JSON_MAX_DEPTH + 1; n++) {
        memset(text, '[', n);
        memset(text + n, ']', n);
        len = 2 * n;

        ok(agrees(text, len, &accepted), "depth %zu agrees", n);
        is_int(accepted, n <= CG_JSON_MAX_DEPTH, "depth %zu verdict", n);
    }

    /* cg_json_check_text() counts the brackets of a comment as well */
    memset(text, '[', CG_JSON_MAX_DEPTH);
    memcpy(text + CG_JSON_MAX_DEPTH, "/*[*/", 5);
    memset(text + CG_JSON_MAX_DEPTH + 5, ']', CG_JSON_MAX_DEPTH);
    len = 2 * CG_JSON_MAX_DEPTH + 5;

    ok(agrees(text, len, &accepted), "depth with a comment agrees");
    ok(!accepted, "depth with a comment is rejected");
}


/* A callback that returns 0 stops the read, at every point. */
static void
test_scan_stop(void)
{
    const char  *text = "{\"a\":[1,true,null,\"s\\n\"],\"b\":{}}";
    record_t     rec;
    int          n, rc, stopped = 0;

    for (n = 0; n < 12; n++) {
        record_init(&rec, text, strlen(text), n);
        rc = cg_json_scan(text, strlen(text), &callbacks, &rec);
        stopped += rc == -1 && rec.calls == n + 1;
    }

    is_int(stopped, 12, "a callback stops the read at each of 12 events");
}


/* A small deterministic generator, so a failure repeats. */
static uint64_t  seed = 0x9e3779b97f4a7c15ULL;

static unsigned
rnd(unsigned n)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return (unsigned) (seed % n);
}


typedef struct {
    char    data[4096];
    size_t  len;
} text_t;


static void
put(text_t *t, const char *s, size_t n)
{
    if (t->len + n <= sizeof(t->data)) {
        memcpy(t->data + t->len, s, n);
        t->len += n;
    }
}


static void
put_space(text_t *t)
{
    static const char  *spaces[] = {
        "", "", "", " ", "\n", "\t", "\r\n", "\v", "\f", "/**/", "/* [ \" */",
        "// c\n", " /* \xc3\xa9 */ ",
    };

    const char  *s = spaces[rnd(sizeof(spaces) / sizeof(spaces[0]))];

    put(t, s, strlen(s));
}


static void
put_string(text_t *t)
{
    static const char  *pieces[] = {
        "a", "hello", " ", "/", "\\n", "\\\"", "\\\\", "\\/", "\\b", "\\f",
        "\\r", "\\t", "\\u0041", "\\u00e9", "\\u20AC", "\\u0000",
        "\\ud83d\\ude00", "\\uD800", "\\uDC00", "\xc3\xa9", "\xe2\x82\xac",
        "\xf0\x9f\x98\x80", "\xed\xa0\x80", "\xc0\x80", "\x7f", "\x01",
    };
    unsigned  i, n = rnd(5);

    put(t, "\"", 1);
    for (i = 0; i < n; i++) {
        const char  *s = pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))];
        put(t, s, strlen(s));
    }
    put(t, "\"", 1);
}


static void
put_value(text_t *t, unsigned depth)
{
    static const char  *scalars[] = {
        "0", "-1", "42", "3.25", "-0.5e10", "1E+2", "1e-7", "true", "false",
        "null", "123456789012345678901234567890",
    };
    unsigned  kind = depth >= 5 ? rnd(2) : rnd(4), i, n;

    put_space(t);

    if (kind == 0) {
        const char  *s = scalars[rnd(sizeof(scalars) / sizeof(scalars[0]))];
        put(t, s, strlen(s));

    } else if (kind == 1) {
        put_string(t);

    } else {
        n = rnd(4);
        put(t, kind == 2 ? "[" : "{", 1);

        for (i = 0; i < n; i++) {
            if (i > 0) {
                put_space(t);
                put(t, ",", 1);
            }

            if (kind == 3) {
                put_space(t);
                put_string(t);
                put_space(t);
                put(t, ":", 1);
            }

            put_value(t, depth + 1);
        }

        put_space(t);
        put(t, kind == 2 ? "]" : "}", 1);
    }

    put_space(t);
}


/* Inserts, removes or replaces a byte, from those that matter to JSON. */
static void
damage(text_t *t)
{
    static const char  bytes[] = "{}[]\":,\\/*u0123456789-+.eEtrufalsn "
                                 "\n\v\f\t\x7f\x80\xbf\xc3\xed\xff";
    size_t  at;
    char    c = bytes[rnd(sizeof(bytes))];   /* the NUL at the end counts */

    if (t->len == 0) {
        put(t, &c, 1);
        return;
    }

    at = rnd((unsigned) t->len);

    switch (rnd(3)) {
    case 0:
        if (t->len < sizeof(t->data)) {
            memmove(t->data + at + 1, t->data + at, t->len - at);
            t->data[at] = c;
            t->len++;
        }
        break;

    case 1:
        memmove(t->data + at, t->data + at + 1, t->len - at - 1);
        t->len--;
        break;

    default:
        t->data[at] = c;
    }
}


static void
test_scan_generated(void)
{
    static text_t  t;
    unsigned       i, d, failed = 0, accepted_n = 0, rejected_n = 0;
    const unsigned runs = 200000;
    int            accepted;

    for (i = 0; i < runs; i++) {
        t.len = 0;
        put_value(&t, 0);

        /* half of the texts stay whole, the others get up to three hits */
        if (rnd(2)) {
            for (d = 1 + rnd(3); d > 0; d--) {
                damage(&t);
            }
        }

        if (!agrees(t.data, t.len, &accepted)) {
            failed++;
            if (failed >= 10) {
                break;
            }
        }

        accepted_n += accepted;
        rejected_n += !accepted;
    }

    is_int(failed, 0, "generated texts agree (%u accepted, %u rejected)",
           accepted_n, rejected_n);
    ok(accepted_n > runs / 10, "many generated texts are accepted");
    ok(rejected_n > runs / 10, "many generated texts are rejected");
}


int
main(void)
{
    test_scan_cases();
    test_scan_nul();
    test_scan_depth();
    test_scan_stop();
    test_scan_generated();

    return done();
}
