#ifndef CG_JSON_PICK_H
#define CG_JSON_PICK_H

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>

/*
 * A one-pass JSON reader over yajl's callback API. It validates a document
 * as strictly as cg_json_parse() and stores only the values that the caller
 * names with JSON Pointers (RFC 6901). It builds no tree. Besides yajl's
 * own buffers, it allocates only the string copies a caller requests, and
 * a list of top-level member names when they pass 256 bytes.
 *
 * Members are matched the way cg_json_get() matches them in a yajl tree,
 * so that a caller can switch between the two without a change of meaning:
 * - a member name is compared up to its first U+0000, because the tree keeps
 *   names as C strings;
 * - when a name repeats in an object, the first member wins.
 *
 * NOTE: beyond RFC 6901, the token "*" matches every element of an array,
 * so one pointer can name a value in each element. In an object, "*" is
 * the member of that name, as the RFC has it.
 */

/*
 * Maximum pointers per call, and maximum reference tokens per pointer. The
 * reader keeps sets of pointers as 32-bit masks, so CG_JSON_PICK_MAX can
 * grow to 32 at most.
 */
#define CG_JSON_PICK_MAX         16
#define CG_JSON_POINTER_MAX_LEN  8

typedef enum {
    CG_JSON_ABSENT = 0,
    CG_JSON_NULL,
    CG_JSON_FALSE,
    CG_JSON_TRUE,
    CG_JSON_NUMBER,
    CG_JSON_STRING,
    CG_JSON_ARRAY,
    CG_JSON_OBJECT
} cg_json_type_t;

/* Flag of cg_json_pick_t: keep a copy of a string value. */
#define CG_JSON_PICK_COPY  0x01

typedef struct cg_json_pick_s  cg_json_pick_t;

/*
 * A function that cg_json_pick() calls at each value a pointer names, once
 * its type and number are stored. s and len are the bytes of a string or
 * the text of a number, valid only during the call. A container is met at
 * its start, so its count is 0 there. When the text turns out invalid, the
 * values before the error may each have been met twice, because the text
 * is read again for the cause.
 */
typedef void (*cg_json_pick_handler_pt)(void *data, const cg_json_pick_t *pick,
    const char *s, size_t len);

/*
 * One value to pick. The caller sets pointer, flags and an optional
 * handler with its data, and cg_json_pick() sets the other fields. With
 * "*" in the pointer, they describe the last value that matched.
 */
struct cg_json_pick_s {
    const char      *pointer;    /* "" for the whole document, "/a/0/b" */
    unsigned         flags;
    cg_json_pick_handler_pt  handler;
    void            *data;

    cg_json_type_t   type;       /* CG_JSON_ABSENT when nothing matched */
    size_t           count;      /* members of an object, elements of an array */
    char            *string;     /* with CG_JSON_PICK_COPY: malloc'ed copy */
    size_t           len;        /* bytes of a string value */
    long long        integer;    /* the value of a number when is_integer */
    int              is_integer; /* 1 where YAJL_IS_INTEGER() is true in a tree */
};

/*
 * What cg_json_pick() finds about the whole document, for the checks of
 * cg_json_parse_request().
 */
typedef struct {
    int   repeated;           /* a top-level member name appears twice */
    char  repeated_name[65];  /* the first such name, cut to 64 bytes */
    int   nul;                /* a string or member name contains U+0000 */
} cg_json_findings_t;

/*
 * Reads len bytes of JSON (no NUL needed) and fills each of the npicks
 * entries of picks. Strings must be valid UTF-8, and comments are allowed,
 * as in yajl_tree_parse(). A copied string is NUL-terminated and may
 * contain U+0000 from a \u0000 escape, so len counts every byte. With
 * findings not NULL, it receives whether a string contains U+0000 and the
 * first top-level member name that repeats, up to its first U+0000.
 *
 * Returns 0, or -1 with a one-line cause in errbuf and no copies left to
 * free. A syntax error, a NUL byte or nesting deeper than CG_JSON_MAX_DEPTH
 * gets the cause that cg_json_parse() gives. Free the copies of a
 * successful call with cg_json_pick_free().
 */
int cg_json_pick(const char *text, size_t len, cg_json_pick_t *picks,
    size_t npicks, cg_json_findings_t *findings, char *errbuf,
    size_t errbuf_size);

/* A JSON Pointer split into its reference tokens. */
typedef struct {
    const char  *token[CG_JSON_POINTER_MAX_LEN];
    size_t       token_len[CG_JSON_POINTER_MAX_LEN];
    long         index[CG_JSON_POINTER_MAX_LEN];  /* array index, -1 or ANY */
    size_t       ntokens;
} cg_json_path_t;

/* A token that pointers share at one position, and the set of them. */
typedef struct {
    const char  *token;
    size_t       len;
    uint32_t     set;
} cg_json_token_t;

/*
 * The parsed pointers of a list of picks, for a caller that reads many
 * texts with one constant list. A zeroed plan is empty.
 */
typedef struct {
    const char      *pointer[CG_JSON_PICK_MAX];  /* the strings parsed */
    size_t           npicks;
    cg_json_path_t   paths[CG_JSON_PICK_MAX];

    /* bit i for picks[i]: all of them, and those of n tokens */
    uint32_t         all;
    uint32_t         target[CG_JSON_POINTER_MAX_LEN + 1];

    /*
     * The distinct tokens at each position, so a member name is compared
     * with each token once, not once per pointer that has it.
     */
    cg_json_token_t  tokens[CG_JSON_POINTER_MAX_LEN][CG_JSON_PICK_MAX];
    size_t           ntokens[CG_JSON_POINTER_MAX_LEN];
} cg_json_plan_t;

/*
 * Works as cg_json_pick(), but parses the pointers into plan only when
 * they are not the ones plan contains, compared by the address of each
 * string. The strings must not change while plan is in use, and a plan
 * must not be shared between threads.
 */
int cg_json_pick_planned(const char *text, size_t len, cg_json_pick_t *picks,
    size_t npicks, cg_json_plan_t *plan, cg_json_findings_t *findings,
    char *errbuf, size_t errbuf_size);

/* Frees the string copies of picks and sets them to NULL. */
void cg_json_pick_free(cg_json_pick_t *picks, size_t npicks);

/*
 * Writes the members of the JSON object in text to g, which must be inside
 * an object, without a tree. The value of each top-level member called
 * name becomes the string value. The output is what cg_json_gen_value()
 * writes for the same members of a yajl tree: numbers keep their text, and
 * strings and member names end at a U+0000. Returns 0, or -1 when text is
 * no valid JSON object or g fails.
 */
int cg_json_gen_members(yajl_gen g, const char *text, size_t len,
    const char *name, const char *value);

#endif
