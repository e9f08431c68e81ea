/*
 * The field-picking JSON reader: picked values, validation, and agreement
 * with the yajl tree that cg_json_parse() builds.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "json.h"
#include "json_pick.h"


/* Picks one pointer from text; returns cg_json_pick()'s result. */
static int
pick_one(const char *text, size_t len, const char *pointer, unsigned flags,
    cg_json_pick_t *pick, char *errbuf, size_t errbuf_size)
{
    memset(pick, 0, sizeof(*pick));
    pick->pointer = pointer;
    pick->flags = flags;

    return cg_json_pick(text, len, pick, 1, NULL, errbuf, errbuf_size);
}


/* Returns the error cg_json_parse() gives for text, or "" when it accepts it. */
static const char *
tree_error(const char *text, size_t len)
{
    static char  cause[256];
    yajl_val     root;

    root = cg_json_parse(text, len, cause, sizeof(cause));
    if (root != NULL) {
        yajl_tree_free(root);
        return "";
    }

    return cause;
}


static void
test_pick_values(void)
{
    const char      *text;
    cg_json_pick_t   p[9];
    char             err[256];
    cg_json_findings_t  findings;

    text = "{\"id\":\"c-1\",\"n\":42,\"f\":1.5,\"t\":true,\"z\":null,"
           "\"a\":[10,{\"b\":\"x\"},[1,2,3]],\"o\":{\"k\":\"v\",\"k2\":false}}";

    memset(p, 0, sizeof(p));
    p[0].pointer = "";
    p[1].pointer = "/id";
    p[1].flags = CG_JSON_PICK_COPY;
    p[2].pointer = "/n";
    p[3].pointer = "/f";
    p[4].pointer = "/t";
    p[5].pointer = "/z";
    p[6].pointer = "/a/1/b";
    p[6].flags = CG_JSON_PICK_COPY;
    p[7].pointer = "/a/2";
    p[8].pointer = "/missing/x";

    is_int(cg_json_pick(text, strlen(text), p, 9, &findings, err, sizeof(err)),
           0, "pick values accepted");
    is_str(err, "", "pick values no error");
    is_int(findings.repeated, 0, "pick values no repeated member");

    is_int(p[0].type, CG_JSON_OBJECT, "pick root object");
    is_int(p[0].count, 7, "pick root member count");
    is_int(p[1].type, CG_JSON_STRING, "pick id string");
    is_str(p[1].string, "c-1", "pick id copied");
    is_int(p[1].len, 3, "pick id length");
    is_int(p[2].type, CG_JSON_NUMBER, "pick n number");
    is_int(p[2].is_integer, 1, "pick n integer");
    is_int(p[2].integer, 42, "pick n value");
    is_int(p[3].type, CG_JSON_NUMBER, "pick f number");
    is_int(p[3].is_integer, 0, "pick f not integer");
    is_int(p[4].type, CG_JSON_TRUE, "pick t true");
    is_int(p[5].type, CG_JSON_NULL, "pick z null");
    is_int(p[6].type, CG_JSON_STRING, "pick nested string");
    is_str(p[6].string, "x", "pick nested string copied");
    is_int(p[7].type, CG_JSON_ARRAY, "pick nested array");
    is_int(p[7].count, 3, "pick nested array count");
    is_int(p[8].type, CG_JSON_ABSENT, "pick missing absent");

    cg_json_pick_free(p, 9);
    ok(p[1].string == NULL && p[6].string == NULL, "pick free clears copies");

    /* A string that is not copied is still typed and measured. */
    is_int(pick_one(text, strlen(text), "/id", 0, p, err, sizeof(err)), 0,
           "pick without copy accepted");
    ok(p[0].string == NULL, "pick without copy no string");
    is_int(p[0].len, 3, "pick without copy length");

    /* A token is an index only where the container is an array. */
    text = "{\"0\":\"key\",\"list\":[\"a\",\"b\"]}";
    is_int(pick_one(text, strlen(text), "/0", CG_JSON_PICK_COPY, p, err,
                    sizeof(err)), 0, "pick digit member accepted");
    is_str(p[0].string, "key", "pick digit token names a member");
    cg_json_pick_free(p, 1);

    is_int(pick_one(text, strlen(text), "/list/1", CG_JSON_PICK_COPY, p, err,
                    sizeof(err)), 0, "pick index accepted");
    is_str(p[0].string, "b", "pick index names an element");
    cg_json_pick_free(p, 1);

    is_int(pick_one(text, strlen(text), "/list/01", 0, p, err, sizeof(err)),
           0, "pick leading zero accepted");
    is_int(p[0].type, CG_JSON_ABSENT, "pick leading zero is no index");

    is_int(pick_one(text, strlen(text), "/list/2", 0, p, err, sizeof(err)),
           0, "pick index past end accepted");
    is_int(p[0].type, CG_JSON_ABSENT, "pick index past end absent");

    /* A scalar on the way to the target ends the path. */
    is_int(pick_one(text, strlen(text), "/0/x", 0, p, err, sizeof(err)), 0,
           "pick through scalar accepted");
    is_int(p[0].type, CG_JSON_ABSENT, "pick through scalar absent");

    /* The document itself may be a scalar. */
    is_int(pick_one("\"top\"", 5, "", CG_JSON_PICK_COPY, p, err, sizeof(err)),
           0, "pick scalar document accepted");
    is_int(p[0].type, CG_JSON_STRING, "pick scalar document type");
    is_str(p[0].string, "top", "pick scalar document copied");
    cg_json_pick_free(p, 1);
}


static void
test_pick_pointers(void)
{
    cg_json_pick_t  p[CG_JSON_PICK_MAX + 1];
    char            err[256];
    size_t          i;

    is_int(pick_one("{}", 2, "id", 0, p, err, sizeof(err)), -1,
           "pointer without slash rejected");
    ok(strstr(err, "invalid JSON Pointer \"id\"") != NULL,
       "pointer without slash message");

    is_int(pick_one("{}", 2, "/a~1b", 0, p, err, sizeof(err)), -1,
           "pointer with tilde rejected");
    is_int(pick_one("{}", 2, "/1/2/3/4/5/6/7/8/9", 0, p, err, sizeof(err)),
           -1, "pointer too long rejected");
    is_int(pick_one("{}", 2, "/1/2/3/4/5/6/7/8", 0, p, err, sizeof(err)), 0,
           "pointer of max length accepted");

    /* index tokens: digits without a leading zero, nine at most */
    is_int(pick_one("[5,6]", 5, "/1", 0, p, err, sizeof(err)), 0,
           "index token read");
    is_int(p[0].type, CG_JSON_NUMBER, "index token names the element");
    is_int(p[0].integer, 6, "index token element value");
    pick_one("[5,6]", 5, "/01", 0, p, err, sizeof(err));
    is_int(p[0].type, CG_JSON_ABSENT, "leading zero is no index");
    pick_one("{\"01\":7}", 8, "/01", 0, p, err, sizeof(err));
    is_int(p[0].integer, 7, "leading zero token names a member");
    pick_one("{\"1234567890\":8}", 16, "/1234567890", 0, p, err,
             sizeof(err));
    is_int(p[0].integer, 8, "ten-digit token names a member");
    pick_one("[1]", 3, "/1234567890", 0, p, err, sizeof(err));
    is_int(p[0].type, CG_JSON_ABSENT, "ten-digit token is no index");
    pick_one("{\"\":9}", 6, "/", 0, p, err, sizeof(err));
    is_int(p[0].integer, 9, "empty token names the empty member");
    pick_one("[3,4]", 5, "/*", 0, p, err, sizeof(err));
    is_int(p[0].integer, 4, "star token names every element");

    memset(p, 0, sizeof(p));
    for (i = 0; i < CG_JSON_PICK_MAX + 1; i++) {
        p[i].pointer = "";
    }
    is_int(cg_json_pick("{}", 2, p, CG_JSON_PICK_MAX + 1, NULL, err,
                        sizeof(err)), -1, "too many pointers rejected");
    is_int(cg_json_pick("{}", 2, p, CG_JSON_PICK_MAX, NULL, err, sizeof(err)),
           0, "max pointers accepted");
    is_int(p[CG_JSON_PICK_MAX - 1].type, CG_JSON_OBJECT,
           "max pointers last filled");
}


/* Escapes are decoded, and the copy keeps every byte. */
static void
test_pick_escapes(void)
{
    const char      *text;
    cg_json_pick_t   p;
    char             err[256];

    text = "{\"s\":\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00\"}";
    is_int(pick_one(text, strlen(text), "/s", CG_JSON_PICK_COPY, &p, err,
                    sizeof(err)), 0, "escapes accepted");
    is_str(p.string, "a\"b\\c/d\n\t\xc3\xa9\xf0\x9f\x98\x80",
           "escapes decoded");
    cg_json_pick_free(&p, 1);

    /* An escaped member name matches its decoded token. */
    text = "{\"m\\u006fdel\":\"gpt\"}";
    is_int(pick_one(text, strlen(text), "/model", CG_JSON_PICK_COPY, &p, err,
                    sizeof(err)), 0, "escaped name accepted");
    is_str(p.string, "gpt", "escaped name matched");
    cg_json_pick_free(&p, 1);

    /* A lone surrogate is rejected by both readers alike. */
    text = "{\"s\":\"\\ud800\"}";
    is_int(pick_one(text, strlen(text), "/s", 0, &p, err, sizeof(err)), -1,
           "lone surrogate rejected");
    is_str(err, tree_error(text, strlen(text)), "lone surrogate tree message");

    text = "{\"s\":\"\\x41\"}";
    is_int(pick_one(text, strlen(text), "/s", 0, &p, err, sizeof(err)), -1,
           "unknown escape rejected");
    is_str(err, tree_error(text, strlen(text)), "unknown escape tree message");
}


/* A long escaped string outgrows the reader's stack memory for yajl. */
static void
test_pick_long_string(void)
{
    cg_buf_t        text;
    cg_json_pick_t  p;
    char            err[256];
    size_t          i, n = 20000;
    int             same = 1;

    memset(&text, 0, sizeof(text));
    cg_buf_append_str(&text, "{\"s\":\"");
    for (i = 0; i < n; i++) {
        cg_buf_append_str(&text, i % 2 ? "\\n" : "\\u00e9");
    }
    cg_buf_append_str(&text, "\"}");

    is_int(pick_one(text.data, text.len, "/s", CG_JSON_PICK_COPY, &p, err,
                    sizeof(err)), 0, "long string accepted");
    is_int(p.len, n / 2 * 3, "long string length");

    for (i = 0; p.string != NULL && i + 3 <= p.len; i += 3) {
        if (memcmp(p.string + i, "\xc3\xa9\n", 3) != 0) {
            same = 0;
        }
    }
    ok(p.string != NULL && same, "long string decoded");

    cg_json_pick_free(&p, 1);
    cg_buf_free(&text);
}


/* U+0000 from \u0000: kept in a copy, but it ends a member name. */
static void
test_pick_nul(void)
{
    const char      *text;
    cg_json_pick_t   p[2];
    char             err[256];
    cg_json_findings_t  findings;

    text = "{\"s\":\"a\\u0000b\"}";
    is_int(pick_one(text, strlen(text), "/s", CG_JSON_PICK_COPY, p, err,
                    sizeof(err)), 0, "nul escape accepted");
    is_int(p[0].len, 3, "nul escape length counts it");
    ok(p[0].string != NULL && memcmp(p[0].string, "a\0b", 4) == 0,
       "nul escape copied with every byte");
    cg_json_pick_free(p, 1);

    text = "{\"model\\u0000x\":\"m1\",\"model\":\"m2\"}";
    memset(p, 0, sizeof(p));
    p[0].pointer = "/model";
    p[0].flags = CG_JSON_PICK_COPY;
    is_int(cg_json_pick(text, strlen(text), p, 1, &findings, err, sizeof(err)),
           0, "nul in name accepted");
    is_str(p[0].string, "m1", "nul in name matches the cut name");
    is_int(findings.repeated, 1, "nul in name repeats the cut name");
    is_str(findings.repeated_name, "model", "nul in name repeat cut");
    is_int(findings.nul, 1, "nul in name found");
    cg_json_pick_free(p, 1);

    /* Deep in the document, and in a value that no pointer names. */
    text = "{\"a\":[{\"b\":\"x\\u0000\"}]}";
    is_int(cg_json_pick(text, strlen(text), p, 0, &findings, err, sizeof(err)),
           0, "nul in value accepted");
    is_int(findings.nul, 1, "nul in value found");

    /* An escaped backslash before "u0000" is no U+0000. */
    text = "{\"a\":\"\\\\u0000\"}";
    is_int(cg_json_pick(text, strlen(text), p, 0, &findings, err, sizeof(err)),
           0, "escaped backslash accepted");
    is_int(findings.nul, 0, "escaped backslash no nul");

    /* A raw NUL byte is invalid JSON, as for cg_json_parse(). */
    is_int(pick_one("{\"s\":\"a\0\"}", 9, "/s", 0, p, err, sizeof(err)), -1,
           "raw nul rejected");
    is_str(err, tree_error("{\"s\":\"a\0\"}", 9), "raw nul tree message");
}


/* Strings are UTF-8 validated, including sequences cut short. */
static void
test_pick_utf8(void)
{
    static const char  *bad[] = {
        "{\"s\":\"\xc3\"}",                 /* cut two-byte sequence */
        "{\"s\":\"\xe2\x82\"}",             /* cut three-byte sequence */
        "{\"s\":\"\xf0\x9f\x98\"}",         /* cut four-byte sequence */
        "{\"s\":\"\xff\"}",                 /* never valid */
        "{\"\xe2\x82\":1}",                 /* cut sequence in a name */
    };
    cg_json_pick_t  p;
    char            err[256];
    const char     *text;
    size_t          i;

    text = "{\"s\":\"\xe2\x82\xac \xf0\x9f\x98\x80 \xc3\xa9\"}";
    is_int(pick_one(text, strlen(text), "/s", CG_JSON_PICK_COPY, &p, err,
                    sizeof(err)), 0, "utf8 accepted");
    is_str(p.string, "\xe2\x82\xac \xf0\x9f\x98\x80 \xc3\xa9", "utf8 copied");
    is_int(p.len, 11, "utf8 length in bytes");
    cg_json_pick_free(&p, 1);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_int(pick_one(bad[i], strlen(bad[i]), "/s", 0, &p, err,
                        sizeof(err)), -1, "bad utf8 %zu rejected", i);
        ok(err[0] != '\0', "bad utf8 %zu has a cause", i);
        is_str(err, tree_error(bad[i], strlen(bad[i])),
               "bad utf8 %zu tree message", i);
    }
}


/*
 * Sequences with a valid byte structure that RFC 3629 forbids, which yajl
 * 2.1.0 accepts: both readers must reject them, at the right offset.
 */
static void
test_pick_utf8_strict(void)
{
    static const struct {
        const char  *text;
        const char  *cause;
    } bad[] = {
        { "{\"s\":\"\xc0\xaf\"}",         "invalid UTF-8 at byte 6" },  /* overlong '/' */
        { "{\"s\":\"\xc1\xbf\"}",         "invalid UTF-8 at byte 6" },  /* overlong 0x7f */
        { "{\"s\":\"\xe0\x80\xaf\"}",     "invalid UTF-8 at byte 6" },  /* overlong three bytes */
        { "{\"s\":\"\xf0\x80\x80\xaf\"}", "invalid UTF-8 at byte 6" }, /* overlong four bytes */
        { "{\"s\":\"\xed\xa0\x80\"}",     "invalid UTF-8 at byte 6" },  /* surrogate U+D800 */
        { "{\"s\":\"\xed\xbf\xbf\"}",     "invalid UTF-8 at byte 6" },  /* surrogate U+DFFF */
        { "{\"s\":\"\xf4\x90\x80\x80\"}", "invalid UTF-8 at byte 6" }, /* past U+10FFFF */
        { "{\"\xc0\xaf\":1}",              "invalid UTF-8 at byte 2" },  /* in a name */
        { "{\"long\":\"abcdefghijklmnop\xe0\x80\xaf\"}",
                                         "invalid UTF-8 at byte 25" }, /* after ASCII words */
    };
    static const char  *good[] = {
        "{\"s\":\"\xc2\x80 \xdf\xbf\"}",                 /* U+0080, U+07FF */
        "{\"s\":\"\xe0\xa0\x80 \xed\x9f\xbf \xee\x80\x80\"}",  /* U+0800, U+D7FF, U+E000 */
        "{\"s\":\"\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf\"}",     /* U+10000, U+10FFFF */
    };
    cg_json_pick_t  p;
    char            err[256];
    size_t          i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_int(pick_one(bad[i].text, strlen(bad[i].text), "/s", CG_JSON_PICK_COPY,
                        &p, err, sizeof(err)), -1, "strict utf8 %zu rejected", i);
        is_str(err, bad[i].cause, "strict utf8 %zu cause", i);
        ok(p.string == NULL, "strict utf8 %zu no copy left", i);
        is_str(tree_error(bad[i].text, strlen(bad[i].text)), bad[i].cause,
               "strict utf8 %zu tree cause", i);
    }

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        is_int(pick_one(good[i], strlen(good[i]), "/s", 0, &p, err, sizeof(err)),
               0, "boundary utf8 %zu accepted", i);
        is_str(tree_error(good[i], strlen(good[i])), "",
               "boundary utf8 %zu tree accepts", i);
    }

    is_int(cg_utf8_valid_len("abc", 3), 3, "valid len ascii");
    is_int(cg_utf8_valid_len("abcdefgh\xc3\xa9", 10), 10, "valid len two-byte after word");
    is_int(cg_utf8_valid_len("abcdefghij\xc3", 11), 10, "valid len cut at end");
    is_int(cg_utf8_valid_len("", 0), 0, "valid len empty");
}


/*
 * yajl 2.1.0 decodes the escape of a lone low surrogate into an encoded
 * surrogate, so both readers check the strings that yajl decoded.
 */
static void
test_pick_surrogate_escape(void)
{
    static const char  *bad[] = {
        "{\"s\":\"\\udc00\"}",
        "{\"s\":\"a\\udfffb\"}",
        "{\"s\":\"\\udc00\\ud800\"}",
        "{\"\\udc00\":1}",
        "{\"a\":[{\"b\":\"\\ude00\"}]}",
    };
    static const char  *good[] = {
        "{\"s\":\"\\ud83d\\ude00\"}",                  /* a pair: U+1F600 */
        "{\"s\":\"\\u00e9\\u07ff\\u0800\\uffff\"}",
        "{\"s\":\"\\\\udc00\"}",                     /* an escaped backslash */
    };
    cg_json_pick_t  p;
    char            err[256];
    size_t          i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_int(pick_one(bad[i], strlen(bad[i]), "/s", CG_JSON_PICK_COPY,
                        &p, err, sizeof(err)), -1, "surrogate escape %zu rejected", i);
        is_str(err, CG_JSON_SURROGATE_ERROR, "surrogate escape %zu cause", i);
        ok(p.string == NULL, "surrogate escape %zu no copy left", i);
        is_str(tree_error(bad[i], strlen(bad[i])), CG_JSON_SURROGATE_ERROR,
               "surrogate escape %zu tree cause", i);
    }

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        is_int(pick_one(good[i], strlen(good[i]), "/s", 0, &p, err, sizeof(err)),
               0, "escape %zu accepted", i);
        is_str(tree_error(good[i], strlen(good[i])), "",
               "escape %zu tree accepts", i);
    }
}


/*
 * \u escapes of surrogates: pairs pass, a high one without its low one, a
 * low one alone, and a high one before another escape are rejected, in
 * values and names, while comments and escaped backslashes are no escapes.
 */
static void
test_pick_surrogate_pairs(void)
{
    static const char  *bad[] = {
        "{\"s\":\"\\ud800\"}",                  /* high at the end */
        "{\"s\":\"\\ud800x\"}",                 /* high, then a letter */
        "{\"s\":\"\\udbff\\u0041\"}",           /* high, then no low */
        "{\"s\":\"\\ud800\\ud800\"}",           /* two highs */
        "{\"s\":\"\\udc00\\ud800\"}",           /* low before high */
        "{\"s\":\"\\uDFFF\"}",                  /* low, upper case hex */
        "{\"\\ud800\":1}",                       /* in a name */
        "{\"s\":\"\\\\\\ud800\"}",              /* after an escaped backslash */
        "[\"ok\", /* \\ud800 */ \"\\ud801\"]",    /* after a comment */
    };
    static const char  *good[] = {
        "{\"s\":\"\\ud83d\\ude00\"}",           /* U+1F600 */
        "{\"s\":\"\\udbff\\udfff\"}",           /* U+10FFFF */
        "{\"s\":\"\\uD800\\uDC00\"}",           /* U+10000, upper case */
        "{\"s\":\"\\\\ud800\"}",                /* a backslash, then text */
        "{\"s\":\"\\u00e9 \\ud7ff \\ue000\"}",  /* around the surrogates */
        "/* \\ud800 */ {\"s\":1}",                /* in a comment */
        "// \\udc00\n{\"s\":\"\\\"\\u0041\"}",     /* in a line comment */
    };
    cg_json_pick_t  p;
    char            err[256];
    size_t          i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_int(pick_one(bad[i], strlen(bad[i]), "/s", 0, &p, err, sizeof(err)),
               -1, "surrogate pair %zu rejected", i);
        is_str(err, CG_JSON_SURROGATE_ERROR, "surrogate pair %zu cause", i);
        is_str(tree_error(bad[i], strlen(bad[i])), CG_JSON_SURROGATE_ERROR,
               "surrogate pair %zu tree cause", i);
    }

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        is_int(pick_one(good[i], strlen(good[i]), "/s", 0, &p, err,
                        sizeof(err)), 0, "surrogate pair %zu accepted", i);
        is_str(err, "", "surrogate pair %zu no error", i);
        is_str(tree_error(good[i], strlen(good[i])), "",
               "surrogate pair %zu tree accepts", i);
    }
}


/* The first member of a repeated name wins below the top level. */
static void
test_pick_repeated(void)
{
    const char      *text;
    cg_json_pick_t   p[3];
    char             err[256];
    cg_json_findings_t  findings;

    text = "{\"u\":{\"a\":1,\"a\":2},\"v\":{\"x\":{\"y\":1},\"x\":{\"y\":2,"
           "\"z\":3}}}";
    memset(p, 0, sizeof(p));
    p[0].pointer = "/u/a";
    p[1].pointer = "/v/x/y";
    p[2].pointer = "/v/x/z";
    is_int(cg_json_pick(text, strlen(text), p, 3, &findings, err, sizeof(err)),
           0, "nested repeats accepted");
    is_int(p[0].integer, 1, "nested repeat first member wins");
    is_int(p[1].integer, 1, "repeated object first wins");
    is_int(p[2].type, CG_JSON_ABSENT, "repeated object second ignored");
    is_int(findings.repeated, 0, "nested repeats are not top-level repeats");

    text = "{\"a\":1,\"b\":2,\"a\":3}";
    is_int(cg_json_pick(text, strlen(text), p, 1, &findings, err, sizeof(err)),
           0, "top-level repeat accepted");
    is_int(findings.repeated, 1, "top-level repeat found");
    is_str(findings.repeated_name, "a", "top-level repeat name");

    text = "{\"a\":1,\"ab\":2,\"b\":3,\"\":4}";
    is_int(cg_json_pick(text, strlen(text), p, 1, &findings, err, sizeof(err)),
           0, "top-level distinct accepted");
    is_int(findings.repeated, 0, "top-level prefixes are distinct");

    text = "{\"\":1,\"\":2}";
    is_int(cg_json_pick(text, strlen(text), p, 1, &findings, err, sizeof(err)),
           0, "empty names accepted");
    is_int(findings.repeated, 1, "empty name repeat found");
    is_str(findings.repeated_name, "", "empty name repeat name");
}


/* The values a handler receives: each match of a "*" pointer, in order. */
typedef struct {
    char    seen[256];
    size_t  calls;
} handler_log_t;


static void
log_value(void *data, const cg_json_pick_t *pick, const char *s, size_t len)
{
    handler_log_t  *log = data;
    size_t          n = strlen(log->seen);

    log->calls++;

    if (pick->type == CG_JSON_STRING) {
        snprintf(log->seen + n, sizeof(log->seen) - n, "%.*s;", (int) len, s);
    } else {
        snprintf(log->seen + n, sizeof(log->seen) - n, "<%d>;",
                 (int) pick->type);
    }
}


static void
test_pick_wildcard(void)
{
    const char      *text;
    cg_json_pick_t   p[3];
    handler_log_t    names, items, parts;
    char             err[256];

    text = "{\"list\":[{\"name\":\"a\",\"name\":\"b\"},{\"x\":1},7,"
           "{\"name\":\"c\",\"sub\":[{\"t\":\"p\",\"t\":\"q\"},{},"
           "{\"t\":\"r\"}]}],\"*\":{\"name\":\"star\"}}";

    memset(p, 0, sizeof(p));
    memset(&names, 0, sizeof(names));
    memset(&items, 0, sizeof(items));
    memset(&parts, 0, sizeof(parts));

    p[0].pointer = "/list/*/name";
    p[0].handler = log_value;
    p[0].data = &names;
    p[1].pointer = "/list/*";
    p[1].handler = log_value;
    p[1].data = &items;
    p[2].pointer = "/list/*/sub/*/t";
    p[2].handler = log_value;
    p[2].data = &parts;

    is_int(cg_json_pick(text, strlen(text), p, 3, NULL, err, sizeof(err)), 0,
           "wildcard accepted");
    is_str(names.seen, "a;c;", "wildcard first name per element");
    is_int(names.calls, 2, "wildcard name calls");
    is_int(items.calls, 4, "wildcard element calls");
    is_str(items.seen, "<7>;<7>;<4>;<7>;", "wildcard element types");
    is_str(parts.seen, "p;r;", "nested wildcard first per element");
    is_int(p[1].type, CG_JSON_OBJECT, "wildcard keeps last match");

    /* In an object, "*" is a member name. */
    memset(&names, 0, sizeof(names));
    p[0].pointer = "/*/name";
    is_int(cg_json_pick(text, strlen(text), p, 1, NULL, err, sizeof(err)), 0,
           "star member accepted");
    is_str(names.seen, "star;", "star member matched by name");
}


/* Pointers that share leading tokens each find their own value. */
static void
test_pick_shared_prefix(void)
{
    const char      *text;
    cg_json_pick_t   p[6];
    char             err[256];

    text = "{\"usage\":{\"prompt\":3,\"completion\":5,\"total\":8},"
           "\"user\":\"u\",\"use\":{\"prompt\":9}}";

    memset(p, 0, sizeof(p));
    p[0].pointer = "/usage/prompt";
    p[1].pointer = "/usage/completion";
    p[2].pointer = "/use/prompt";
    p[3].pointer = "/usage/total";
    p[4].pointer = "/user";
    p[5].pointer = "/usage/prompt";

    is_int(cg_json_pick(text, strlen(text), p, 6, NULL, err, sizeof(err)), 0,
           "shared prefix accepted");
    is_int(p[0].integer, 3, "shared prefix first member");
    is_int(p[1].integer, 5, "shared prefix second member");
    is_int(p[2].integer, 9, "shared prefix other object");
    is_int(p[3].integer, 8, "shared prefix after another pointer");
    is_int(p[4].type, CG_JSON_STRING, "shared prefix name prefix");
    is_int(p[4].len, 1, "shared prefix name prefix length");
    is_int(p[5].integer, 3, "shared prefix same pointer twice");
}


/* A pointer to a container counts its children while others go inside. */
static void
test_pick_prefix_pointer(void)
{
    const char      *text;
    cg_json_pick_t   p[5];
    char             err[256];

    text = "{\"a\":{\"b\":{\"c\":[1,2,{\"d\":\"x\"}]},\"e\":[]},\"f\":0}";

    memset(p, 0, sizeof(p));
    p[0].pointer = "/a/b/c/2/d";
    p[1].pointer = "/a/b/c";
    p[2].pointer = "/a";
    p[3].pointer = "/a/b";
    p[4].pointer = "/a/b/c/2";

    is_int(cg_json_pick(text, strlen(text), p, 5, NULL, err, sizeof(err)), 0,
           "prefix pointer accepted");
    is_int(p[0].type, CG_JSON_STRING, "prefix pointer deepest found");
    is_int(p[1].type, CG_JSON_ARRAY, "prefix pointer array type");
    is_int(p[1].count, 3, "prefix pointer array count");
    is_int(p[2].type, CG_JSON_OBJECT, "prefix pointer outer type");
    is_int(p[2].count, 2, "prefix pointer outer count");
    is_int(p[3].count, 1, "prefix pointer middle count");
    is_int(p[4].type, CG_JSON_OBJECT, "prefix pointer element type");
    is_int(p[4].count, 1, "prefix pointer element count");

    /* A scalar where the deeper pointers expect an object ends their paths. */
    text = "{\"a\":{\"b\":1}}";
    is_int(cg_json_pick(text, strlen(text), p, 5, NULL, err, sizeof(err)), 0,
           "prefix pointer scalar accepted");
    is_int(p[3].type, CG_JSON_NUMBER, "prefix pointer scalar found");
    is_int(p[3].count, 0, "prefix pointer scalar no count");
    is_int(p[1].type, CG_JSON_ABSENT, "prefix pointer past scalar absent");
    is_int(p[0].type, CG_JSON_ABSENT, "prefix pointer deepest absent");
    is_int(p[2].count, 1, "prefix pointer outer count again");
}


/* "*" and an index or a member name of the same array or object. */
static void
test_pick_wildcard_beside_name(void)
{
    const char      *text;
    cg_json_pick_t   p[6];
    handler_log_t    any, star_member;
    char             err[256];

    text = "{\"list\":[{\"x\":\"a\"},{\"x\":\"b\",\"y\":1},{\"x\":\"c\"}],"
           "\"obj\":{\"x\":\"d\",\"*\":\"e\"}}";

    memset(p, 0, sizeof(p));
    memset(&any, 0, sizeof(any));
    memset(&star_member, 0, sizeof(star_member));

    p[0].pointer = "/list/*/x";
    p[0].handler = log_value;
    p[0].data = &any;
    p[1].pointer = "/list/1/x";
    p[1].flags = CG_JSON_PICK_COPY;
    p[2].pointer = "/list/1/y";
    p[3].pointer = "/obj/*";
    p[3].handler = log_value;
    p[3].data = &star_member;
    p[4].pointer = "/obj/x";
    p[4].flags = CG_JSON_PICK_COPY;
    p[5].pointer = "/list/*";

    is_int(cg_json_pick(text, strlen(text), p, 6, NULL, err, sizeof(err)), 0,
           "wildcard beside name accepted");
    is_str(any.seen, "a;b;c;", "wildcard beside index every element");
    is_str(p[1].string, "b", "index beside wildcard one element");
    is_int(p[2].integer, 1, "index beside wildcard other member");
    is_str(star_member.seen, "e;", "star member beside a name");
    is_str(p[4].string, "d", "name beside star member");
    is_int(p[5].count, 1, "wildcard element last count");

    cg_json_pick_free(p, 6);
}


/* Each of the maximum number of pointers gets its own value. */
static void
test_pick_max_distinct(void)
{
    cg_buf_t        text;
    cg_json_pick_t  p[CG_JSON_PICK_MAX + 1];
    char            pointers[CG_JSON_PICK_MAX + 1][16], member[32];
    char            err[256], expected[64];
    size_t          i;

    memset(&text, 0, sizeof(text));
    memset(p, 0, sizeof(p));

    cg_buf_append_str(&text, "{");
    for (i = 0; i < CG_JSON_PICK_MAX + 1; i++) {
        snprintf(member, sizeof(member), "%s\"m%zu\":%zu", i ? "," : "", i,
                 i * 10);
        cg_buf_append_str(&text, member);

        snprintf(pointers[i], sizeof(pointers[i]), "/m%zu", i);
        p[i].pointer = pointers[i];
    }
    cg_buf_append_str(&text, "}");

    is_int(cg_json_pick(text.data, text.len, p, CG_JSON_PICK_MAX, NULL, err,
                        sizeof(err)), 0, "max distinct pointers accepted");
    for (i = 0; i < CG_JSON_PICK_MAX; i++) {
        is_int(p[i].integer, (long long) (i * 10),
               "max distinct pointer %zu value", i);
    }

    is_int(cg_json_pick(text.data, text.len, p, CG_JSON_PICK_MAX + 1, NULL,
                        err, sizeof(err)), -1,
           "max distinct pointers plus one rejected");
    snprintf(expected, sizeof(expected), "too many pointers: %d, at most %d",
             CG_JSON_PICK_MAX + 1, CG_JSON_PICK_MAX);
    is_str(err, expected, "max distinct pointers plus one message");

    cg_buf_free(&text);
}


/* Values that no pointer enters still count, nest and are validated. */
static void
test_pick_skipped_subtree(void)
{
    const char      *text;
    cg_json_pick_t   p[3];
    char             err[256];
    cg_json_findings_t  findings;

    text = "{\"skip\":{\"a\":[1,{\"b\":[[],{}]}],\"c\":\"\\u0000\"},"
           "\"list\":[[{\"x\":1}],{\"x\":2}],\"skip\":0}";

    memset(p, 0, sizeof(p));
    p[0].pointer = "/list/1/x";
    p[1].pointer = "/list";
    p[2].pointer = "/skip/a/1/b/1/z";

    is_int(cg_json_pick(text, strlen(text), p, 3, &findings, err,
                        sizeof(err)), 0, "skipped subtree accepted");
    is_int(p[0].integer, 2, "skipped element index counted");
    is_int(p[1].count, 2, "skipped element still a child");
    is_int(p[2].type, CG_JSON_ABSENT, "skipped subtree pointer absent");
    is_int(findings.nul, 1, "skipped subtree nul found");
    is_int(findings.repeated, 1, "skipped subtree repeat found");
    is_str(findings.repeated_name, "skip", "skipped subtree repeat name");

    /* A pointer of the maximum length below the depth it names. */
    text = "[[[[[[[[[[[\"deep\"]]]]]]]]]]]";
    memset(p, 0, sizeof(p));
    p[0].pointer = "/0/0/0/0/0/0/0/0";
    is_int(cg_json_pick(text, strlen(text), p, 1, NULL, err, sizeof(err)), 0,
           "max length pointer deep accepted");
    is_int(p[0].type, CG_JSON_ARRAY, "max length pointer deep type");
    is_int(p[0].count, 1, "max length pointer deep count");
}


/* Many top-level names outgrow the reader's inline list. */
static void
test_pick_many_names(void)
{
    cg_buf_t        text;
    cg_json_pick_t  p;
    char            member[64], err[256];
    cg_json_findings_t  findings;
    int             i;

    memset(&text, 0, sizeof(text));
    memset(&p, 0, sizeof(p));
    p.pointer = "/member_199";

    cg_buf_append_str(&text, "{");
    for (i = 0; i < 200; i++) {
        snprintf(member, sizeof(member), "%s\"member_%d\":%d", i ? "," : "",
                 i, i);
        cg_buf_append_str(&text, member);
    }
    cg_buf_append_str(&text, "}");

    is_int(cg_json_pick(text.data, text.len, &p, 1, &findings, err,
                        sizeof(err)), 0, "many names accepted");
    is_int(findings.repeated, 0, "many names distinct");
    is_int(p.integer, 199, "many names last picked");

    text.len--;
    cg_buf_append_str(&text, ",\"member_3\":0}");
    is_int(cg_json_pick(text.data, text.len, &p, 1, &findings, err,
                        sizeof(err)), 0, "many names repeat accepted");
    is_int(findings.repeated, 1, "many names repeat found");
    is_str(findings.repeated_name, "member_3", "many names repeat name");

    cg_buf_free(&text);
}


/* Nesting up to CG_JSON_MAX_DEPTH passes, one level more fails. */
static void
test_pick_depth(void)
{
    char            text[2 * (CG_JSON_MAX_DEPTH + 1) + 1], err[256];
    cg_json_pick_t  p;
    size_t          n;

    n = CG_JSON_MAX_DEPTH;
    memset(text, '[', n);
    memset(text + n, ']', n);
    is_int(pick_one(text, 2 * n, "/0/0/0", 0, &p, err, sizeof(err)), 0,
           "max depth accepted");
    is_int(p.type, CG_JSON_ARRAY, "max depth picked");
    is_int(p.count, 1, "max depth count");

    n = CG_JSON_MAX_DEPTH + 1;
    memset(text, '[', n);
    memset(text + n, ']', n);
    is_int(pick_one(text, 2 * n, "", 0, &p, err, sizeof(err)), -1,
           "past max depth rejected");
    is_str(err, tree_error(text, 2 * n), "past max depth tree message");

    /* Unclosed: the depth is the cause, not the early end. */
    is_int(pick_one(text, n, "", 0, &p, err, sizeof(err)), -1,
           "past max depth unclosed rejected");
    is_str(err, tree_error(text, n), "past max depth unclosed tree message");
}


/* Brackets in a comment count toward the depth, as in cg_json_parse(). */
static void
test_pick_depth_comment(void)
{
    cg_buf_t        text;
    cg_json_pick_t  p;
    char            err[256];
    int             i;

    memset(&text, 0, sizeof(text));
    cg_buf_append_str(&text, "/* ");
    for (i = 0; i < CG_JSON_MAX_DEPTH + 1; i++) {
        cg_buf_append_str(&text, "[");
    }
    cg_buf_append_str(&text, " */ {\"a\":1}");

    is_int(pick_one(text.data, text.len, "/a", 0, &p, err, sizeof(err)), -1,
           "comment brackets rejected");
    is_str(err, tree_error(text.data, text.len),
           "comment brackets tree message");

    /* A '/' in a string sends the text through the same scan. */
    cg_buf_reset(&text);
    cg_buf_append_str(&text, "{\"url\":\"a/b\",\"a\":[[[1]]]}");
    is_int(pick_one(text.data, text.len, "/a/0/0/0", 0, &p, err,
                    sizeof(err)), 0, "slash in string accepted");
    is_int(p.integer, 1, "slash in string picked");

    cg_buf_free(&text);
}


/*
 * A ']' or a '"' in a comment must not hide nesting from the depth check:
 * cg_json_parse() built such trees, and yajl_tree_free() overflowed the
 * stack on one 300 000 levels deep.
 */
static void
test_pick_depth_hidden(void)
{
    static const struct {
        const char  *before;
        const char  *after;
        size_t       depth;
    } cases[] = {
        { "/*]*/", "", CG_JSON_MAX_DEPTH + 1 },
        { "// ]]\n", "", CG_JSON_MAX_DEPTH + 1 },
        { "/*\"*/", "/*\"*/", CG_JSON_MAX_DEPTH + 1 },
        { "/*\"*/", "/*\"*/", 300000 },
    };
    cg_buf_t        text;
    cg_json_pick_t  p;
    char            err[256], expected[64];
    size_t          i, n;

    snprintf(expected, sizeof(expected), "nested deeper than %d levels",
             CG_JSON_MAX_DEPTH);
    memset(&text, 0, sizeof(text));

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cg_buf_reset(&text);
        cg_buf_append_str(&text, cases[i].before);
        for (n = 0; n < cases[i].depth; n++) {
            cg_buf_append(&text, "[", 1);
        }
        for (n = 0; n < cases[i].depth; n++) {
            cg_buf_append(&text, "]", 1);
        }
        cg_buf_append_str(&text, cases[i].after);

        is_int(pick_one(text.data, text.len, "", 0, &p, err, sizeof(err)),
               -1, "hidden depth %zu rejected", i);
        is_str(err, expected, "hidden depth %zu message", i);
        is_str(tree_error(text.data, text.len), expected,
               "hidden depth %zu tree message", i);
    }

    /* The same comments around nesting at the maximum pass. */
    cg_buf_reset(&text);
    cg_buf_append_str(&text, "/*]*/ /*\"*/");
    for (n = 0; n < CG_JSON_MAX_DEPTH; n++) {
        cg_buf_append(&text, "[", 1);
    }
    for (n = 0; n < CG_JSON_MAX_DEPTH; n++) {
        cg_buf_append(&text, "]", 1);
    }
    cg_buf_append_str(&text, "/*\"*/");

    is_int(pick_one(text.data, text.len, "", 0, &p, err, sizeof(err)), 0,
           "max depth between comments accepted");
    is_str(tree_error(text.data, text.len), "",
           "max depth between comments tree accepted");

    cg_buf_free(&text);
}


/* Integer or not, as the tree's YAJL_IS_INTEGER() decides. */
static void
test_pick_numbers(void)
{
    static const char  *numbers[] = {
        "0", "-0", "7", "-7", "1.0", "1e3", "-1E-2", "1.5e+300", "1e400",
        "9223372036854775806", "9223372036854775807", "9223372036854775808",
        "9223372036854775810", "9223372036854775817", "9223372036854775870",
        "-9223372036854775807", "-9223372036854775808",
        "-9223372036854775809", "99999999999999999999",
        "123456789012345678901234567890",
    };
    cg_json_pick_t  p;
    char            text[64], err[256], cause[256];
    yajl_val        root, v;
    size_t          i;

    for (i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        snprintf(text, sizeof(text), "{\"n\":%s}", numbers[i]);

        is_int(pick_one(text, strlen(text), "/n", 0, &p, err, sizeof(err)), 0,
               "number %s accepted", numbers[i]);
        is_int(p.type, CG_JSON_NUMBER, "number %s type", numbers[i]);

        root = cg_json_parse(text, strlen(text), cause, sizeof(cause));
        v = cg_json_get(root, "n");
        ok(v != NULL, "number %s tree parsed", numbers[i]);
        if (v == NULL) {
            continue;
        }

        is_int(p.is_integer, YAJL_IS_INTEGER(v) ? 1 : 0,
               "number %s integer as in the tree", numbers[i]);
        if (p.is_integer && YAJL_IS_INTEGER(v)) {
            is_int(p.integer, YAJL_GET_INTEGER(v),
                   "number %s value as in the tree", numbers[i]);
        }
        yajl_tree_free(root);
    }
}


/* Writes members as cg_json_gen_value() writes them from a tree. */
static void
test_gen_members(void)
{
    static const char  *texts[] = {
        "{}",
        "{\"a\":1,\"name\":\"old\",\"b\":[true,false,null,{\"name\":2}]}",
        "{\"name\":{\"deep\":[1,2]},\"x\":-1.50e+3,\"name\":[]}",
        "{\"s\":\"\\u00e9\\/\\u0000cut\",\"k\\u0000cut\":0}",
        "{ \"spaced\" : [ 1 , { } ] } /* comment */",
    };
    char         cause[256];
    const char  *got, *want;
    size_t       i, m, got_len, want_len;
    yajl_val     root;
    yajl_gen     g, tree_g;

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        g = cg_json_gen_new();
        yajl_gen_map_open(g);
        is_int(cg_json_gen_members(g, texts[i], strlen(texts[i]), "name",
                                   "new"), 0, "gen members %zu written", i);
        yajl_gen_map_close(g);
        yajl_gen_get_buf(g, (const unsigned char **) &got, &got_len);

        /* The same object through a tree, with each "name" replaced. */
        root = cg_json_parse(texts[i], strlen(texts[i]), cause, sizeof(cause));
        tree_g = cg_json_gen_new();
        yajl_gen_map_open(tree_g);
        for (m = 0; root != NULL && m < root->u.object.len; m++) {
            cg_json_gen_str(tree_g, root->u.object.keys[m]);
            if (strcmp(root->u.object.keys[m], "name") == 0) {
                cg_json_gen_str(tree_g, "new");
            } else {
                cg_json_gen_value(tree_g, root->u.object.values[m]);
            }
        }
        yajl_gen_map_close(tree_g);
        yajl_gen_get_buf(tree_g, (const unsigned char **) &want, &want_len);

        ok(got_len == want_len && memcmp(got, want, got_len) == 0,
           "gen members %zu as from a tree", i);
        if (got_len != want_len || memcmp(got, want, got_len) != 0) {
            printf("#   got %.*s\n#   expected %.*s\n", (int) got_len, got,
                   (int) want_len, want);
        }

        yajl_tree_free(root);
        yajl_gen_free(tree_g);
        yajl_gen_free(g);
    }

    g = cg_json_gen_new();
    yajl_gen_map_open(g);
    is_int(cg_json_gen_members(g, "[1]", 3, "name", "new"), -1,
           "gen members array rejected");
    yajl_gen_free(g);

    g = cg_json_gen_new();
    yajl_gen_map_open(g);
    is_int(cg_json_gen_members(g, "{\"a\":", 5, "name", "new"), -1,
           "gen members cut text rejected");
    yajl_gen_free(g);
}


/* Accepted and rejected texts, with cg_json_parse()'s message. */
static void
test_pick_agrees_with_tree(void)
{
    static const char  *texts[] = {
        "{}", "[]", "1", "\"s\"", "null", " {\"a\" : [ 1 , 2 ] } ",
        "/* note */ {\"a\":1} // end\n", "{\"a\":1 /* [[[ */}",
        "", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]",
        "{a:1}", "{'a':1}", "[01]", "[1.]", "[.5]", "[+1]", "[-]", "[1e]",
        "[NaN]", "[Infinity]", "[tru]", "{\"a\":1}{\"b\":2}", "{\"a\":1} x",
        "[\"\t\"]", "[\"\\u12\"]", "\"unterminated", "<html>bad</html>",
        "{\"a\":1} /* open", "{\"a\":\"b\"\"c\"}", "{\"a\":1} \"open",
        "4\"\\\"", "[1] -", "{} /", "{} //", "\v{}\f",
    };
    cg_json_pick_t  p;
    char            err[256];
    const char     *expected;
    size_t          i;
    int             rc;

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        rc = pick_one(texts[i], strlen(texts[i]), "", 0, &p, err, sizeof(err));
        expected = tree_error(texts[i], strlen(texts[i]));

        is_int(rc, expected[0] == '\0' ? 0 : -1, "text %zu (%s) verdict", i,
               texts[i]);
        is_str(err, expected, "text %zu message", i);
    }
}


/* Picks with a plan, over texts of a NUL-terminated C string. */
static int
pick_planned(const char *text, cg_json_pick_t *p, size_t n,
    cg_json_plan_t *plan)
{
    char  err[256];

    return cg_json_pick_planned(text, strlen(text), p, n, plan, NULL, err,
                                sizeof(err));
}


/* A plan parses its pointers once and follows a change of list. */
static void
test_pick_planned(void)
{
    static const char  *pointers[] = { "/a", "/b/0", "/c" };
    cg_json_plan_t      plan;
    cg_json_pick_t      p[3];
    char                other[8], invalid[8];
    size_t              i;

    memset(&plan, 0, sizeof(plan));
    memset(p, 0, sizeof(p));
    for (i = 0; i < 3; i++) {
        p[i].pointer = pointers[i];
    }

    is_int(pick_planned("{\"a\":1,\"b\":[2],\"c\":3}", p, 3, &plan), 0,
           "planned pick read");
    is_int(plan.npicks, 3, "plan holds the pointers");
    is_int(p[1].integer, 2, "planned pick value");

    /* the plan serves the same list again, on another text */
    is_int(pick_planned("{\"b\":[5]}", p, 3, &plan), 0,
           "planned pick reused");
    is_int(p[1].integer, 5, "reused plan value");
    is_int(p[0].type, CG_JSON_ABSENT, "reused plan absent member");

    /* another string in the list is parsed */
    memcpy(other, "/c", 3);
    p[1].pointer = other;
    is_int(pick_planned("{\"b\":[5],\"c\":7}", p, 3, &plan), 0,
           "changed list read");
    ok(plan.pointer[1] == other, "plan holds the new string");
    is_int(p[1].integer, 7, "changed list value");

    /* an invalid pointer empties the plan */
    memcpy(invalid, "c", 2);
    p[1].pointer = invalid;
    is_int(pick_planned("{}", p, 3, &plan), -1,
           "invalid pointer in plan rejected");
    is_int(plan.npicks, 0, "invalid pointer empties plan");

    p[1].pointer = pointers[0];
    is_int(pick_planned("{\"a\":9}", p, 3, &plan), 0,
           "plan after invalid read");
    is_int(p[1].integer, 9, "plan after invalid value");
}


/* yajl 2.1.0 accepts these, because the text ends inside a token. */
static void
test_pick_trailing_token(void)
{
    static const char  *texts[] = {
        "{\"a\":1} \"open", "{\"a\":1} \"\\", "1 -", "[] tru", "null \"\\u12",
    };
    cg_json_pick_t  p;
    char            err[256];
    size_t          i;

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        is_int(pick_one(texts[i], strlen(texts[i]), "", 0, &p, err,
                        sizeof(err)), -1, "trailing token %zu rejected", i);
        is_str(err, CG_JSON_TRAILING_ERROR, "trailing token %zu message", i);
        is_str(tree_error(texts[i], strlen(texts[i])), CG_JSON_TRAILING_ERROR,
               "trailing token %zu tree message", i);
    }
}


int
main(void)
{
    test_pick_values();
    test_pick_pointers();
    test_pick_escapes();
    test_pick_long_string();
    test_pick_nul();
    test_pick_utf8();
    test_pick_utf8_strict();
    test_pick_surrogate_pairs();
    test_pick_surrogate_escape();
    test_pick_repeated();
    test_pick_wildcard();
    test_pick_shared_prefix();
    test_pick_prefix_pointer();
    test_pick_wildcard_beside_name();
    test_pick_max_distinct();
    test_pick_skipped_subtree();
    test_pick_many_names();
    test_pick_depth();
    test_pick_depth_comment();
    test_pick_depth_hidden();
    test_pick_numbers();
    test_pick_agrees_with_tree();
    test_pick_trailing_token();
    test_pick_planned();
    test_gen_members();

    return done();
}
