/*
 * The one-pass JSON reader against its reference. For every text it must
 * accept exactly what cg_json_parse() accepts: yajl with comments, then the
 * UTF-8, escape, NUL and depth checks. On those texts it must make the
 * same callbacks with the same bytes as yajl_parse(), and pass a string
 * from the text where yajl does. The texts are edge cases written here and
 * generated documents with random damage.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "json_scan_reference.h"


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

    /* A ']' or a '"' in a comment hides nesting from that count alone. */
    memcpy(text, "/*]*/", 5);
    memset(text + 5, '[', CG_JSON_MAX_DEPTH + 1);
    memset(text + 5 + CG_JSON_MAX_DEPTH + 1, ']', CG_JSON_MAX_DEPTH + 1);
    len = 2 * CG_JSON_MAX_DEPTH + 7;

    ok(agrees(text, len, &accepted), "depth past a comment bracket agrees");
    ok(!accepted, "depth past a comment bracket is rejected");

    memcpy(text, "/*\"*/", 5);
    memcpy(text + len, "/*\"*/", 5);
    len += 5;

    ok(agrees(text, len, &accepted), "depth between comment quotes agrees");
    ok(!accepted, "depth between comment quotes is rejected");
}


/* A callback that returns 0 stops the read, at every point. */
static void
test_scan_stop(void)
{
    const char       *text = "{\"a\":[1,true,null,\"s\\n\"],\"b\":{}}";
    static record_t   rec;
    int               n, rc, stopped = 0;

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
