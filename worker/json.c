#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json_scan.h"


/* A scan for the verdict alone. */
static const yajl_callbacks  cg_json_no_callbacks;

static void cg_json_reject_cause(const char *text, size_t len, char *errbuf,
    size_t errbuf_size);
static yajl_val cg_json_tree(const char *text, size_t len, char *errbuf,
    size_t errbuf_size);
static int cg_json_depth_ok(const char *text, size_t len);
static int cg_json_nesting_ok(const char *text, size_t len);
static int cg_json_find_nul(const char *text, size_t len, char *member,
    size_t member_size);
static unsigned cg_json_hex4(const char *p);
static size_t cg_json_skip_string(const char *text, size_t len, size_t i,
    int *lone);


/* The slow path of cg_buf_reserve(). */
int
cg_buf_grow(cg_buf_t *b, size_t n)
{
    size_t   cap;
    char    *data;

    if (b->len + n + 1 <= b->cap) {
        return 0;
    }

    cap = b->cap ? b->cap : 256;

    while (cap < b->len + n + 1) {
        if (cap > SIZE_MAX / 2) {
            return -1;
        }
        cap *= 2;
    }

    data = realloc(b->data, cap);
    if (data == NULL) {
        return -1;
    }

    b->data = data;
    b->cap = cap;

    return 0;
}


int
cg_buf_append(cg_buf_t *b, const void *p, size_t n)
{
    if (cg_buf_reserve(b, n) != 0) {
        return -1;
    }

    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';

    return 0;
}


int
cg_buf_append_str(cg_buf_t *b, const char *s)
{
    return cg_buf_append(b, s, strlen(s));
}


void
cg_buf_reset(cg_buf_t *b)
{
    b->len = 0;
    if (b->data) {
        b->data[0] = '\0';
    }
}


void
cg_buf_free(cg_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}


int
cg_json_check_text(const char *text, size_t len, char *errbuf,
    size_t errbuf_size)
{
    errbuf[0] = '\0';

    if (memchr(text, '\0', len) != NULL) {
        snprintf(errbuf, errbuf_size, "NUL byte in the body");
        return -1;
    }

    /* Without a '/', the text has no comment to skip. */
    if (!cg_json_depth_ok(text, len)
        || (memchr(text, '/', len) != NULL && !cg_json_nesting_ok(text, len)))
    {
        snprintf(errbuf, errbuf_size, "nested deeper than %d levels",
                 CG_JSON_MAX_DEPTH);
        return -1;
    }

    return 0;
}


yajl_val
cg_json_parse(const char *text, size_t len, char *errbuf, size_t errbuf_size)
{
    int  rc;

    errbuf[0] = '\0';

    /*
     * The scanner decides, in one pass. yajl and the slower checks read a
     * rejected text again only to name its cause.
     */
    rc = cg_json_scan(text, len, &cg_json_no_callbacks, NULL);

    if (rc == CG_JSON_SCAN_NOMEM) {
        snprintf(errbuf, errbuf_size, "out of memory");
        return NULL;
    }

    if (rc != 0) {
        cg_json_reject_cause(text, len, errbuf, errbuf_size);
        return NULL;
    }

    return cg_json_tree(text, len, errbuf, errbuf_size);
}


/*
 * Puts into errbuf the cause of a text that cg_json_scan() rejected, from
 * the checks in the order they ran before the scanner: the text checks,
 * yajl, strict UTF-8, surrogate escapes. A text that passes them all ends
 * inside a token after its value, which only yajl accepts.
 */
static void
cg_json_reject_cause(const char *text, size_t len, char *errbuf,
    size_t errbuf_size)
{
    yajl_val  root;

    if (cg_json_check_text(text, len, errbuf, errbuf_size) != 0) {
        return;
    }

    root = cg_json_tree(text, len, errbuf, errbuf_size);
    if (root == NULL) {
        return;
    }

    yajl_tree_free(root);

    if (cg_json_check_utf8(text, len, errbuf, errbuf_size) != 0
        || cg_json_check_escapes(text, len, errbuf, errbuf_size) != 0)
    {
        return;
    }

    snprintf(errbuf, errbuf_size, "%s", CG_JSON_TRAILING_ERROR);
}


/* Builds yajl's tree of text, or returns NULL with yajl's cause in errbuf. */
static yajl_val
cg_json_tree(const char *text, size_t len, char *errbuf, size_t errbuf_size)
{
    char      *copy, *nl;
    yajl_val   root;

    /* yajl_tree_parse() reads up to a NUL, so the text needs a copy. */
    copy = malloc(len + 1);
    if (copy == NULL) {
        snprintf(errbuf, errbuf_size, "out of memory");
        return NULL;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';

    root = yajl_tree_parse(copy, errbuf, errbuf_size);
    free(copy);

    if (root == NULL) {
        /* yajl's later lines quote the input around the error: drop them. */
        nl = strchr(errbuf, '\n');
        if (nl) {
            *nl = '\0';
        }
        if (errbuf[0] == '\0') {
            snprintf(errbuf, errbuf_size, "parse error");
        }
    }

    return root;
}


yajl_val
cg_json_parse_request(const char *text, size_t len, unsigned flags,
    char *errbuf, size_t errbuf_size)
{
    yajl_val     root;
    const char  *dup;

    root = cg_json_parse(text, len, errbuf, errbuf_size);
    if (root == NULL) {
        return NULL;
    }

    if ((flags & CG_JSON_NO_NUL)
        && cg_json_check_nul(text, len, errbuf, errbuf_size) != 0)
    {
        yajl_tree_free(root);
        return NULL;
    }

    if (flags & CG_JSON_NO_DUPLICATES) {
        dup = cg_json_duplicate_member(root);
        if (dup != NULL) {
            cg_json_repeated_error(errbuf, errbuf_size, dup);
            yajl_tree_free(root);
            return NULL;
        }
    }

    return root;
}


int
cg_json_check_nul(const char *text, size_t len, char *errbuf,
    size_t errbuf_size)
{
    char  member[64];

    if (!cg_json_find_nul(text, len, member, sizeof(member))) {
        return 0;
    }

    snprintf(errbuf, errbuf_size, "%s%s%s contains the character U+0000 "
             "(\\u0000), which is not allowed in a string",
             member[0] ? "member \"" : "a member name",
             member, member[0] ? "\"" : "");
    return -1;
}


void
cg_json_repeated_error(char *errbuf, size_t errbuf_size, const char *name)
{
    snprintf(errbuf, errbuf_size, "member \"%.64s\" appears more than once, "
             "send it once", name);
}


const char *
cg_json_duplicate_member(yajl_val obj)
{
    size_t  i, j;

    if (!YAJL_IS_OBJECT(obj)) {
        return NULL;
    }

    /* Quadratic, but request bodies that reach here are at most 64 KiB. */
    for (i = 1; i < obj->u.object.len; i++) {
        for (j = 0; j < i; j++) {
            if (strcmp(obj->u.object.keys[i], obj->u.object.keys[j]) == 0) {
                return obj->u.object.keys[i];
            }
        }
    }

    return NULL;
}


/*
 * Looks for the escape \u0000 in the strings of valid JSON text. On a find,
 * copies the member name whose value holds it into member (empty when the
 * escape is in a member name itself) and returns 1.
 */
static int
cg_json_find_nul(const char *text, size_t len, char *member,
    size_t member_size)
{
    size_t       i, start = 0, n;
    const char  *key = NULL;
    size_t       key_len = 0;
    int          in_string = 0, is_key;

    for (i = 0; i < len; i++) {
        char  c = text[i];

        if (!in_string) {
            if (c == '"') {
                in_string = 1;
                start = i + 1;
            }
            continue;
        }

        if (c == '\\') {
            if (i + 5 < len && text[i + 1] == 'u'
                && memcmp(text + i + 2, "0000", 4) == 0)
            {
                /* A member name is a string followed by a colon. */
                for (n = i + 6; n < len && text[n] != '"'; n++) {
                    if (text[n] == '\\') {
                        n++;
                    }
                }
                for (n++; n < len && strchr(" \t\r\n", text[n]); n++) {
                    /* skip white space */
                }
                is_key = n < len && text[n] == ':';

                member[0] = '\0';
                if (!is_key && key != NULL) {
                    n = key_len < member_size - 1 ? key_len : member_size - 1;
                    memcpy(member, key, n);
                    member[n] = '\0';
                }
                return 1;
            }
            i++;
            continue;
        }

        if (c == '"') {
            in_string = 0;

            for (n = i + 1; n < len && strchr(" \t\r\n", text[n]); n++) {
                /* skip white space */
            }
            if (n < len && text[n] == ':') {
                key = text + start;
                key_len = i - start;
            }
        }
    }

    return 0;
}


/*
 * Checks the nesting depth before yajl builds a tree, because yajl_tree_free()
 * and cg_json_gen_value() recurse once per level.
 */
static int
cg_json_depth_ok(const char *text, size_t len)
{
    size_t  i;
    int     depth = 0, in_string = 0, escaped = 0;

    for (i = 0; i < len; i++) {
        char  c = text[i];

        if (in_string) {
            if (escaped) {
                escaped = 0;
            } else if (c == '\\') {
                escaped = 1;
            } else if (c == '"') {
                in_string = 0;
            }
            continue;
        }

        if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > CG_JSON_MAX_DEPTH) {
                return 0;
            }
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }

    return 1;
}


/*
 * Checks the nesting depth that yajl reads, with comments skipped as yajl
 * skips them. cg_json_depth_ok() counts the brackets in comments, so a ']'
 * in a comment lowers its count and a '"' in one hides the brackets up to
 * the next '"' from it. Without this check, such a comment let a text of
 * 600 KB nest 300 000 levels deep, and yajl_tree_free() overflowed an
 * 8 MiB stack on its tree.
 */
static int
cg_json_nesting_ok(const char *text, size_t len)
{
    size_t       i = 0;
    int          depth = 0;
    const char  *stop;

    while (i < len) {

        switch (text[i]) {

        case '"':
            for (i++; i < len && text[i] != '"'; i++) {
                if (text[i] == '\\') {
                    i++;
                }
            }
            i++;
            break;

        case '/':
            if (i + 1 < len && text[i + 1] == '/') {
                stop = memchr(text + i + 2, '\n', len - i - 2);
                i = stop != NULL ? (size_t) (stop - text) + 1 : len;

            } else if (i + 1 < len && text[i + 1] == '*') {
                stop = memmem(text + i + 2, len - i - 2, "*/", 2);
                i = stop != NULL ? (size_t) (stop - text) + 2 : len;

            } else {
                i++;
            }
            break;

        case '[':
        case '{':
            if (++depth > CG_JSON_MAX_DEPTH) {
                return 0;
            }
            i++;
            break;

        case ']':
        case '}':
            depth--;
            i++;
            break;

        default:
            i++;
        }
    }

    return 1;
}


yajl_val
cg_json_get(yajl_val obj, const char *key)
{
    size_t  i;

    if (!YAJL_IS_OBJECT(obj)) {
        return NULL;
    }

    for (i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], key) == 0) {
            return obj->u.object.values[i];
        }
    }

    return NULL;
}


const char *
cg_json_get_string(yajl_val obj, const char *key)
{
    yajl_val  v = cg_json_get(obj, key);

    return YAJL_IS_STRING(v) ? v->u.string : NULL;
}


int
cg_json_get_long(yajl_val obj, const char *key, long *out)
{
    yajl_val  v = cg_json_get(obj, key);

    if (!YAJL_IS_INTEGER(v)) {
        return -1;
    }

    if (v->u.number.i < LONG_MIN || v->u.number.i > LONG_MAX) {
        return -1;
    }

    *out = (long) v->u.number.i;
    return 0;
}


yajl_gen
cg_json_gen_new(void)
{
    yajl_gen  g = yajl_gen_alloc(NULL);

    if (g) {
        yajl_gen_config(g, yajl_gen_beautify, 0);
    }

    return g;
}


int
cg_json_gen_value(yajl_gen g, yajl_val v)
{
    size_t  i;

    if (v == NULL) {
        return yajl_gen_null(g) == yajl_gen_status_ok ? 0 : -1;
    }

    switch (v->type) {

    case yajl_t_string:
        return cg_json_gen_str(g, v->u.string);

    case yajl_t_number:
        return yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r))
               == yajl_gen_status_ok ? 0 : -1;

    case yajl_t_true:
    case yajl_t_false:
        return yajl_gen_bool(g, v->type == yajl_t_true)
               == yajl_gen_status_ok ? 0 : -1;

    case yajl_t_null:
        return yajl_gen_null(g) == yajl_gen_status_ok ? 0 : -1;

    case yajl_t_array:
        if (yajl_gen_array_open(g) != yajl_gen_status_ok) {
            return -1;
        }
        for (i = 0; i < v->u.array.len; i++) {
            if (cg_json_gen_value(g, v->u.array.values[i]) != 0) {
                return -1;
            }
        }
        return yajl_gen_array_close(g) == yajl_gen_status_ok ? 0 : -1;

    case yajl_t_object:
        if (yajl_gen_map_open(g) != yajl_gen_status_ok) {
            return -1;
        }
        for (i = 0; i < v->u.object.len; i++) {
            if (cg_json_gen_str(g, v->u.object.keys[i]) != 0
                || cg_json_gen_value(g, v->u.object.values[i]) != 0)
            {
                return -1;
            }
        }
        return yajl_gen_map_close(g) == yajl_gen_status_ok ? 0 : -1;

    default:
        return -1;
    }
}


int
cg_json_gen_str(yajl_gen g, const char *s)
{
    return yajl_gen_string(g, (const unsigned char *) s, strlen(s))
           == yajl_gen_status_ok ? 0 : -1;
}


int
cg_json_gen_count(yajl_gen g, long value)
{
    yajl_gen_status  rc;

    rc = value < 0 ? yajl_gen_null(g) : yajl_gen_integer(g, value);

    return rc == yajl_gen_status_ok ? 0 : -1;
}


char *
cg_json_gen_finish(yajl_gen g, size_t *len)
{
    const unsigned char  *text;
    size_t                n;
    char                 *copy = NULL;

    if (yajl_gen_get_buf(g, &text, &n) == yajl_gen_status_ok) {
        copy = malloc(n + 1);
        if (copy) {
            memcpy(copy, text, n);
            copy[n] = '\0';
            *len = n;
        }
    }

    yajl_gen_free(g);
    return copy;
}


size_t
cg_utf8_seq_len(const unsigned char *s, size_t len)
{
    size_t    n, i;
    uint32_t  cp;

    if (s[0] < 0x80) {
        return 1;
    } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }

    if (n > len) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }

    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)
        || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
    {
        return 0;
    }

    return n;
}


size_t
cg_utf8_sanitize(char *s, size_t len)
{
    size_t  i = 0, replaced = 0;

    /* cg_utf8_valid_len() passes ASCII runs eight bytes at a time */
    for ( ;; ) {
        i += cg_utf8_valid_len(s + i, len - i);
        if (i == len) {
            return replaced;
        }

        s[i++] = '?';
        replaced++;
    }
}


size_t
cg_utf8_control_len(const char *s, size_t len)
{
    const unsigned char  *p = (const unsigned char *) s;

    if (len == 0) {
        return 0;
    }

    if (p[0] < 0x20 || p[0] == 0x7f) {
        return 1;
    }

    /* U+0080 to U+009F are 0xc2 0x80 to 0xc2 0x9f */
    if (p[0] == 0xc2 && len >= 2 && p[1] <= 0x9f) {
        return 2;
    }

    /* U+2028 and U+2029 are 0xe2 0x80 0xa8 and 0xe2 0x80 0xa9 */
    if (p[0] == 0xe2 && len >= 3 && p[1] == 0x80
        && (p[2] == 0xa8 || p[2] == 0xa9))
    {
        return 3;
    }

    return 0;
}


int
cg_utf8_printable_line(const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (cg_utf8_control_len(s + i, len - i) != 0) {
            return 0;
        }
    }

    return 1;
}


size_t
cg_utf8_valid_len(const char *s, size_t len)
{
    const unsigned char  *p = (const unsigned char *) s;
    size_t                i = 0, n;
    uint64_t              word;

    while (i < len) {

        /* Most JSON is ASCII: skip eight such bytes at a time. */
        if (len - i >= sizeof(word)) {
            memcpy(&word, p + i, sizeof(word));
            if ((word & 0x8080808080808080ULL) == 0) {
                i += sizeof(word);
                continue;
            }
        }

        if (p[i] < 0x80) {
            i++;
            continue;
        }

        n = cg_utf8_seq_len(p + i, len - i);
        if (n == 0) {
            return i;
        }
        i += n;
    }

    return len;
}


int
cg_json_check_utf8(const char *text, size_t len, char *errbuf,
    size_t errbuf_size)
{
    size_t  valid;

    valid = cg_utf8_valid_len(text, len);
    if (valid == len) {
        return 0;
    }

    snprintf(errbuf, errbuf_size, "invalid UTF-8 at byte %zu", valid);
    return -1;
}


int
cg_json_check_escapes(const char *text, size_t len, char *errbuf,
    size_t errbuf_size)
{
    size_t  i;
    int     lone;

    /* Most texts have no \u escape at all. */
    if (memmem(text, len, "\\u", 2) == NULL) {
        return 0;
    }

    i = 0;
    lone = 0;

    while (i < len && !lone) {

        if (text[i] == '"') {
            i = cg_json_skip_string(text, len, i + 1, &lone);
            continue;
        }

        /* Comments may quote escapes that name nothing. */
        if (text[i] == '/' && i + 1 < len && text[i + 1] == '/') {
            while (i < len && text[i] != '\n') {
                i++;
            }
            continue;
        }

        if (text[i] == '/' && i + 1 < len && text[i + 1] == '*') {
            i += 2;
            while (i + 1 < len && !(text[i] == '*' && text[i + 1] == '/')) {
                i++;
            }
            i += 2;
            continue;
        }

        i++;
    }

    if (lone) {
        snprintf(errbuf, errbuf_size, "%s", CG_JSON_SURROGATE_ERROR);
        return -1;
    }

    return 0;
}


/*
 * Returns the offset after the closing quote of the string whose contents
 * start at i, and sets *lone at the first \u escape of a lone surrogate.
 * yajl has checked the text, so every escape is complete.
 */
static size_t
cg_json_skip_string(const char *text, size_t len, size_t i, int *lone)
{
    unsigned  cp;

    while (i < len && text[i] != '"') {

        if (text[i] != '\\') {
            i++;
            continue;
        }

        if (i + 6 > len || text[i + 1] != 'u') {
            i += 2;
            continue;
        }

        cp = cg_json_hex4(text + i + 2);

        if (cp >= 0xdc00 && cp <= 0xdfff) {
            *lone = 1;
            return len;
        }

        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (i + 12 > len || text[i + 6] != '\\' || text[i + 7] != 'u') {
                *lone = 1;
                return len;
            }

            cp = cg_json_hex4(text + i + 8);
            if (cp < 0xdc00 || cp > 0xdfff) {
                *lone = 1;
                return len;
            }

            i += 12;
            continue;
        }

        i += 6;
    }

    return i + 1;
}


/* Returns the value of four hex digits, which yajl has checked. */
static unsigned
cg_json_hex4(const char *p)
{
    unsigned  v = 0;
    int       i;
    char      c;

    for (i = 0; i < 4; i++) {
        c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (unsigned) (c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (unsigned) (c - 'a' + 10);
        } else {
            v |= (unsigned) (c - 'A' + 10);
        }
    }

    return v;
}


size_t
cg_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max) {
        return len;
    }

    /* Step back over continuation bytes to the start of a sequence. */
    while (max > 0 && ((unsigned char) s[max] & 0xc0) == 0x80) {
        max--;
    }

    return max;
}
