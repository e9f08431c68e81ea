#ifndef CG_JSON_H
#define CG_JSON_H

#include <stddef.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

/*
 * JSON helpers over yajl shared by the provider adapters and the stream
 * translators, plus a growable byte buffer.
 */

/*
 * Deepest nesting of arrays and objects a parsed document may have. The
 * worker writes some documents again with yajl_gen, which refuses the
 * level that reaches YAJL_MAX_DEPTH (128 in yajl 2.1.0), so a document it
 * accepts must stay below that.
 */
#define CG_JSON_MAX_DEPTH  (YAJL_MAX_DEPTH - 1)

/*
 * A growable byte buffer. data is NUL-terminated after every successful
 * append (the NUL is not counted in len); a zeroed cg_buf_t is empty.
 */
typedef struct {
    char    *data;
    size_t   len;
    size_t   cap;
} cg_buf_t;

int cg_buf_grow(cg_buf_t *b, size_t n);
int cg_buf_append(cg_buf_t *b, const void *p, size_t n);

/*
 * Makes room for n more bytes and the NUL after them, so that the caller may
 * write them at data + len. Returns 0, or -1 when out of memory. Inline, as
 * the encoders of log rows call it for each field.
 */
static inline int
cg_buf_reserve(cg_buf_t *b, size_t n)
{
    return n < b->cap - b->len ? 0 : cg_buf_grow(b, n);
}
int cg_buf_append_str(cg_buf_t *b, const char *s);
void cg_buf_reset(cg_buf_t *b);
void cg_buf_free(cg_buf_t *b);

/*
 * Runs the checks that cg_json_parse() makes before yajl reads the text: no
 * NUL byte, nesting no deeper than CG_JSON_MAX_DEPTH. Brackets in comments
 * count too, and the nesting with comments skipped is checked as well, so
 * a comment cannot hide nesting. Returns 0, or -1 with the cause in errbuf.
 */
int cg_json_check_text(const char *text, size_t len, char *errbuf,
    size_t errbuf_size);

/*
 * Parses len bytes of JSON (no NUL needed) into a tree the caller frees with
 * yajl_tree_free(). Strings must be valid UTF-8. Returns NULL with a one-line
 * cause in errbuf on a syntax error, a NUL byte, nesting deeper than
 * CG_JSON_MAX_DEPTH or lack of memory.
 */
yajl_val cg_json_parse(const char *text, size_t len, char *errbuf,
    size_t errbuf_size);

/* Flags of cg_json_parse_request(): checks beyond those of cg_json_parse(). */
#define CG_JSON_NO_NUL         0x01   /* a string with \u0000 in it */
#define CG_JSON_NO_DUPLICATES  0x02   /* a repeated top-level member */

/*
 * Parses a client's request body like cg_json_parse(), and also rejects
 * what flags name. yajl's tree keeps strings NUL-terminated, so
 * "sk-a\u0000b" would read as "sk-a". It also keeps every repeated member,
 * so a reader that takes the first copy and one that takes the last would
 * disagree. The cause in errbuf names the member involved.
 */
yajl_val cg_json_parse_request(const char *text, size_t len, unsigned flags,
    char *errbuf, size_t errbuf_size);

/*
 * Checks the strings of valid JSON text for the escape \u0000, which
 * CG_JSON_NO_NUL rejects. Returns 0, or -1 with a cause that names the
 * member in errbuf.
 */
int cg_json_check_nul(const char *text, size_t len, char *errbuf,
    size_t errbuf_size);

/* Writes the cause for CG_JSON_NO_DUPLICATES about member name to errbuf. */
void cg_json_repeated_error(char *errbuf, size_t errbuf_size,
    const char *name);

/* Returns the first top-level member name of obj that repeats, or NULL. */
const char *cg_json_duplicate_member(yajl_val obj);

/* Returns the member key of object obj, or NULL when obj is no object. */
yajl_val cg_json_get(yajl_val obj, const char *key);

/* Returns the member key of obj when it is a string, else NULL. */
const char *cg_json_get_string(yajl_val obj, const char *key);

/*
 * Stores the member key of obj in *out when it is an integer that fits a
 * long. Returns 0, or -1 (and leaves *out alone) otherwise.
 */
int cg_json_get_long(yajl_val obj, const char *key, long *out);

/* Creates a generator for compact output with '/' left unescaped. */
yajl_gen cg_json_gen_new(void);

/*
 * Writes v with g. Numbers are written with the text they were parsed from,
 * so 1.10 stays 1.10 and large integers keep every digit. Returns 0 or -1.
 */
int cg_json_gen_value(yajl_gen g, yajl_val v);

/* Writes a NUL-terminated string (an object key or a value). */
int cg_json_gen_str(yajl_gen g, const char *s);

/* Writes a long, or null when value is negative (an unknown count). */
int cg_json_gen_count(yajl_gen g, long value);

/*
 * Copies what g produced into a malloc'ed NUL-terminated string and frees g.
 * Returns NULL on lack of memory; *len receives the length.
 */
char *cg_json_gen_finish(yajl_gen g, size_t *len);

/*
 * Replaces every byte that is not part of a valid UTF-8 sequence with '?',
 * in place, so the text can be written as a JSON string or sent to
 * PostgreSQL, which rejects a whole batch for one such byte. Returns how
 * many bytes it replaced.
 */
size_t cg_utf8_sanitize(char *s, size_t len);

/* Returns the largest length <= max that does not cut a UTF-8 sequence. */
size_t cg_utf8_cut(const char *s, size_t len, size_t max);

/*
 * Returns the length of the control character at the start of the UTF-8
 * text s, or 0 when s starts with printable text. The control characters
 * are those a terminal obeys or a log shipper splits lines at: C0 controls,
 * DEL, C1 controls (U+0080 to U+009F), U+2028 and U+2029.
 */
size_t cg_utf8_control_len(const char *s, size_t len);

/*
 * Tests whether the UTF-8 text s is one line of printable text: 1 when it
 * contains no control character of cg_utf8_control_len(). Expects valid
 * UTF-8, as every string from cg_json_parse() is.
 */
int cg_utf8_printable_line(const char *s, size_t len);

/*
 * Returns the length of the valid UTF-8 sequence at the start of s, 1 to
 * 4, or 0 when s starts with an invalid one. len must be at least 1.
 */
size_t cg_utf8_seq_len(const unsigned char *s, size_t len);

/*
 * Returns the length of the longest prefix of s that is valid UTF-8 (RFC
 * 3629), so len when all of s is. Overlong forms, UTF-16 surrogates and
 * code points past U+10FFFF are invalid. yajl 2.1.0 checks only the byte
 * structure of a sequence and lets those through.
 */
size_t cg_utf8_valid_len(const char *s, size_t len);

/*
 * Checks that text is valid UTF-8, as RFC 8259 requires of JSON text.
 * Returns 0, or -1 with the offset of the first invalid byte in errbuf.
 */
int cg_json_check_utf8(const char *text, size_t len, char *errbuf,
    size_t errbuf_size);

/*
 * The cause that cg_json_parse() and cg_json_pick() give for bytes after the
 * document's value that are neither white space nor a comment, where yajl
 * 2.1.0 gives none: it takes a token that the text ends in the middle of,
 * such as the string in {} "abc, for one that a next chunk would finish.
 */
#define CG_JSON_TRAILING_ERROR  "parse error: trailing garbage"

/*
 * The cause that cg_json_parse() and cg_json_pick() give for a \u escape of
 * a UTF-16 surrogate without its partner: a high one (U+D800 to U+DBFF)
 * not followed by a low one, or a low one (U+DC00 to U+DFFF) on its own.
 * JSON's grammar allows them (RFC 8259), but they name no character, and
 * yajl 2.1.0 turns them into an encoded surrogate, a "?" or a wrong code
 * point, so the text is rejected as written.
 */
#define CG_JSON_SURROGATE_ERROR \
    "invalid \\u escape: a lone UTF-16 surrogate"

/*
 * Checks the \u escapes in the strings of text, which yajl has accepted, for
 * lone surrogates. Comments, which yajl allows, are skipped. Returns 0, or
 * -1 with CG_JSON_SURROGATE_ERROR in errbuf.
 */
int cg_json_check_escapes(const char *text, size_t len, char *errbuf,
    size_t errbuf_size);

#endif
