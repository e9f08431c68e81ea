#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "json.h"
#include "json_pick.h"
#include "json_scan.h"


/*
 * A set of pointers, bit i for picks[i]. The reader keeps one per open
 * container, so an event costs work only for the pointers that reach it.
 */
typedef uint32_t  cg_pick_set_t;

_Static_assert(CG_JSON_PICK_MAX <= sizeof(cg_pick_set_t) * CHAR_BIT,
               "CG_JSON_PICK_MAX must fit the bits of cg_pick_set_t");
_Static_assert(sizeof(cg_pick_set_t) == sizeof(unsigned),
               "cg_pick_set_t must be the unsigned int of __builtin_ctz()");
_Static_assert(sizeof(cg_pick_set_t) == sizeof(uint32_t),
               "cg_json_plan_t keeps sets as uint32_t");

/*
 * An open array or object. stack[l] is the one whose value starts at level
 * l, where level 0 is the document itself.
 */
typedef struct {
    size_t         count;    /* values read in it so far */
    int            is_object;

    /*
     * The pointers whose path leads through this container or names it.
     * Only they can match its member names and values.
     */
    cg_pick_set_t  inside;

    /*
     * Of those, the ones whose next token matched one of its member names
     * already, so that a repeated name matches only its first member.
     */
    cg_pick_set_t  matched;
} cg_pick_level_t;

typedef struct {
    cg_json_pick_t   *picks;
    size_t            npicks;

    /* the document, which contains no NUL byte */
    const char       *text;
    size_t            len;

    /*
     * The parsed pointers. Its target[n] are the pointers of n tokens,
     * which name a value at level n.
     */
    const cg_json_plan_t  *plan;

    /* the pointers whose next token equals the last member name read */
    cg_pick_set_t     key_match;

    cg_pick_level_t   stack[CG_JSON_MAX_DEPTH];
    size_t            depth;

    /*
     * Top-level member names, each a size_t length and the bytes, in
     * names_inline until it is full, then in a malloc'ed copy.
     */
    cg_json_findings_t  *findings;
    char             *names;
    size_t            names_len;
    size_t            names_size;
    char              names_inline[256];

    int               nomem;
    /* yajl decoded a string or name, so the text may hold a lone surrogate */
    int               decoded;
} cg_pick_reader_t;


/* The index of the token "*", which matches every element of an array. */
#define CG_PICK_ANY  (-2L)


/*
 * Memory for yajl's handle, lexer, buffers and state stack, on the stack
 * of cg_json_pick(). Under callgrind, yajl 2.1.0 took 5 blocks for a
 * document, among them a 2 KiB buffer (YAJL_BUF_INIT_SIZE), and their
 * malloc() and free() cost about 2 000 instructions. A block that does not
 * fit goes to malloc(). Each block has its size in a header in front.
 */
#define CG_PICK_ARENA_SIZE  8192
#define CG_PICK_BLOCK_ALIGN 16

typedef struct {
    size_t  used;
    _Alignas(CG_PICK_BLOCK_ALIGN) unsigned char  data[CG_PICK_ARENA_SIZE];
} cg_pick_arena_t;


static void cg_pick_start(cg_pick_reader_t *r);
static int cg_pick_yajl(cg_pick_reader_t *r, char *errbuf,
    size_t errbuf_size);
static void *cg_pick_malloc(void *ctx, size_t size);
static void *cg_pick_realloc(void *ctx, void *ptr, size_t size);
static void cg_pick_free(void *ctx, void *ptr);
static int cg_pick_in_arena(const cg_pick_arena_t *arena, const void *ptr);
static int cg_pick_plan(cg_json_pick_t *picks, size_t npicks,
    cg_json_plan_t *plan, char *errbuf, size_t errbuf_size);
static void cg_pick_plan_token(cg_json_plan_t *plan, size_t i, size_t t);
static int cg_pick_parse_pointer(const char *pointer, cg_json_path_t *path);
static int cg_pick_value(cg_pick_reader_t *r, cg_json_type_t type,
    const char *s, size_t len);
static cg_pick_set_t cg_pick_follow(cg_pick_reader_t *r,
    cg_pick_level_t *parent, cg_pick_set_t alive, size_t t);
static int cg_pick_visit(cg_pick_reader_t *r, cg_pick_set_t children,
    cg_pick_set_t targets, cg_json_type_t type, const char *s, size_t len);
static cg_pick_set_t cg_pick_match_name(cg_pick_reader_t *r,
    cg_pick_set_t alive, size_t t, const unsigned char *name, size_t len);
static int cg_pick_store(cg_pick_reader_t *r, cg_json_pick_t *pick,
    cg_json_type_t type, const char *s, size_t len);
static int cg_pick_integer(const char *s, size_t len, long long *value);
static size_t cg_pick_name_len(const unsigned char *name, size_t len);
static int cg_pick_decoded(const cg_pick_reader_t *r, const unsigned char *s);
static int cg_pick_top_name(cg_pick_reader_t *r, const char *name,
    size_t len);
static int cg_pick_add_name(cg_pick_reader_t *r, const char *name,
    size_t len);
static void cg_pick_error(yajl_handle h, char *errbuf, size_t errbuf_size);

static int cg_copy_value(void *ctx, cg_json_type_t type, const char *s,
    size_t len);
static int cg_copy_null(void *ctx);
static int cg_copy_boolean(void *ctx, int value);
static int cg_copy_number(void *ctx, const char *s, size_t len);
static int cg_copy_string(void *ctx, const unsigned char *s, size_t len);
static int cg_copy_start_map(void *ctx);
static int cg_copy_map_key(void *ctx, const unsigned char *key, size_t len);
static int cg_copy_start_array(void *ctx);
static int cg_copy_end(void *ctx);

static int cg_pick_null(void *ctx);
static int cg_pick_boolean(void *ctx, int value);
static int cg_pick_number(void *ctx, const char *s, size_t len);
static int cg_pick_string(void *ctx, const unsigned char *s, size_t len);
static int cg_pick_start_map(void *ctx);
static int cg_pick_map_key(void *ctx, const unsigned char *key, size_t len);
static int cg_pick_start_array(void *ctx);
static int cg_pick_end(void *ctx);


/*
 * With a number callback, yajl hands over the number's text and leaves the
 * conversion to the caller, as yajl_tree_parse() does. The integer and
 * double callbacks would reject an integer that does not fit a long long.
 */
static const yajl_callbacks  cg_pick_callbacks = {
    cg_pick_null,
    cg_pick_boolean,
    NULL,
    NULL,
    cg_pick_number,
    cg_pick_string,
    cg_pick_start_map,
    cg_pick_map_key,
    cg_pick_end,
    cg_pick_start_array,
    cg_pick_end
};


/* The state of cg_json_gen_members(). */
typedef struct {
    yajl_gen     g;
    const char  *name;
    const char  *value;
    size_t       depth;      /* open containers, the document's object first */
    size_t       skip;       /* open containers of a replaced value */
    int          replace;    /* the next value is one of name's */

    /* is_object[d]: the container at depth d is an object, not an array */
    unsigned char  is_object[CG_JSON_MAX_DEPTH];
} cg_copy_t;

static const yajl_callbacks  cg_copy_callbacks = {
    cg_copy_null,
    cg_copy_boolean,
    NULL,
    NULL,
    cg_copy_number,
    cg_copy_string,
    cg_copy_start_map,
    cg_copy_map_key,
    cg_copy_end,
    cg_copy_start_array,
    cg_copy_end
};


int
cg_json_pick(const char *text, size_t len, cg_json_pick_t *picks,
    size_t npicks, cg_json_findings_t *findings, char *errbuf,
    size_t errbuf_size)
{
    cg_json_plan_t  plan;

    plan.npicks = 0;

    return cg_json_pick_planned(text, len, picks, npicks, &plan, findings,
                                errbuf, errbuf_size);
}


int
cg_json_pick_planned(const char *text, size_t len, cg_json_pick_t *picks,
    size_t npicks, cg_json_plan_t *plan, cg_json_findings_t *findings,
    char *errbuf, size_t errbuf_size)
{
    cg_pick_reader_t  r;
    int               rc;

    errbuf[0] = '\0';

    if (cg_pick_plan(picks, npicks, plan, errbuf, errbuf_size) != 0) {
        return -1;
    }

    r.picks = picks;
    r.npicks = npicks;
    r.plan = plan;
    r.text = text;
    r.len = len;
    r.findings = findings;
    r.names = r.names_inline;
    r.names_size = sizeof(r.names_inline);

    cg_pick_start(&r);

    /* A callback that runs out of memory stops the scan, so rc is -1 then. */
    rc = cg_json_scan(text, len, &cg_pick_callbacks, &r);

    if (rc != 0) {
        cg_json_pick_free(picks, npicks);

        if (r.nomem || rc == CG_JSON_SCAN_NOMEM) {
            snprintf(errbuf, errbuf_size, "out of memory");

        } else {
            /*
             * The scanner gives no cause, so yajl reads the text again for
             * the one cg_json_parse() gives. Handlers see the values before
             * the error twice.
             */
            cg_pick_start(&r);

            if (cg_pick_yajl(&r, errbuf, errbuf_size) == 0) {
                cg_json_pick_free(picks, npicks);
                snprintf(errbuf, errbuf_size, "%s", CG_JSON_TRAILING_ERROR);
            }
        }

        rc = -1;
    }

    if (r.names != r.names_inline) {
        free(r.names);
    }

    return rc;
}


/*
 * Parses the pointers of picks into plan, unless plan contains these very
 * strings already. Returns 0, or -1 with the cause in errbuf.
 */
static int
cg_pick_plan(cg_json_pick_t *picks, size_t npicks, cg_json_plan_t *plan,
    char *errbuf, size_t errbuf_size)
{
    size_t  i, t;

    if (npicks > CG_JSON_PICK_MAX) {
        snprintf(errbuf, errbuf_size, "too many pointers: %zu, at most %d",
                 npicks, CG_JSON_PICK_MAX);
        return -1;
    }

    if (plan->npicks == npicks && npicks > 0) {
        for (i = 0; i < npicks && plan->pointer[i] == picks[i].pointer; i++) {
            /* void */
        }

        if (i == npicks) {
            return 0;
        }
    }

    plan->npicks = 0;
    plan->all = 0;
    memset(plan->target, 0, sizeof(plan->target));
    memset(plan->ntokens, 0, sizeof(plan->ntokens));

    for (i = 0; i < npicks; i++) {
        if (cg_pick_parse_pointer(picks[i].pointer, &plan->paths[i]) != 0) {
            snprintf(errbuf, errbuf_size, "invalid JSON Pointer \"%s\": "
                     "expected \"\" or \"/\" tokens, at most %d, without "
                     "\"~\"", picks[i].pointer, CG_JSON_POINTER_MAX_LEN);
            return -1;
        }

        plan->pointer[i] = picks[i].pointer;
        plan->all |= (cg_pick_set_t) 1 << i;
        plan->target[plan->paths[i].ntokens] |= (cg_pick_set_t) 1 << i;

        for (t = 0; t < plan->paths[i].ntokens; t++) {
            cg_pick_plan_token(plan, i, t);
        }
    }

    plan->npicks = npicks;

    return 0;
}


/* Adds pointer i to the set of its token t, a new one or one it shares. */
static void
cg_pick_plan_token(cg_json_plan_t *plan, size_t i, size_t t)
{
    const cg_json_path_t  *path = &plan->paths[i];
    cg_json_token_t       *token;
    size_t                 k;

    for (k = 0; k < plan->ntokens[t]; k++) {
        token = &plan->tokens[t][k];

        if (token->len == path->token_len[t]
            && memcmp(token->token, path->token[t], token->len) == 0)
        {
            token->set |= (cg_pick_set_t) 1 << i;
            return;
        }
    }

    token = &plan->tokens[t][plan->ntokens[t]++];
    token->token = path->token[t];
    token->len = path->token_len[t];
    token->set = (cg_pick_set_t) 1 << i;
}


/* Clears the picks, the findings and the reader's state for a new read. */
static void
cg_pick_start(cg_pick_reader_t *r)
{
    size_t  i;

    for (i = 0; i < r->npicks; i++) {
        r->picks[i].type = CG_JSON_ABSENT;
        r->picks[i].count = 0;
        r->picks[i].string = NULL;
        r->picks[i].len = 0;
        r->picks[i].integer = 0;
        r->picks[i].is_integer = 0;
    }

    if (r->findings != NULL) {
        r->findings->repeated = 0;
        r->findings->repeated_name[0] = '\0';
        r->findings->nul = 0;
    }

    r->key_match = 0;
    r->depth = 0;
    r->names_len = 0;
    r->nomem = 0;
    r->decoded = 0;
}


/*
 * Reads the text with yajl and the checks of json.c, in the order in which
 * cg_json_parse() looks for a cause, so a text that fails gets the same
 * one. Returns 0, or -1 with the cause in errbuf and the picks freed.
 */
static int
cg_pick_yajl(cg_pick_reader_t *r, char *errbuf, size_t errbuf_size)
{
    cg_pick_arena_t   arena;
    yajl_alloc_funcs  funcs;
    yajl_handle       h;
    yajl_status       status;
    const char       *text = r->text;
    size_t            len = r->len;

    /*
     * Outside strings, a '/' can only start a comment, and brackets in a
     * comment count in cg_json_check_text() too. Without a '/', its bracket
     * count is the nesting that cg_pick_value() tracks, so its scan is only
     * needed to find a NUL byte, and memchr() does that faster.
     */
    if ((memchr(text, '/', len) != NULL || memchr(text, '\0', len) != NULL)
        && cg_json_check_text(text, len, errbuf, errbuf_size) != 0)
    {
        return -1;
    }

    arena.used = 0;
    funcs.malloc = cg_pick_malloc;
    funcs.realloc = cg_pick_realloc;
    funcs.free = cg_pick_free;
    funcs.ctx = &arena;

    h = yajl_alloc(&cg_pick_callbacks, &funcs, r);
    if (h == NULL) {
        snprintf(errbuf, errbuf_size, "out of memory");
        return -1;
    }

    /* The options of yajl_tree_parse(), so both accept the same texts. */
    yajl_config(h, yajl_allow_comments, 1);

    status = yajl_parse(h, (const unsigned char *) text, len);
    if (status == yajl_status_ok) {
        status = yajl_complete_parse(h);
    }

    /* After yajl, so that its syntax errors keep coming first. */
    if (status == yajl_status_ok
        && (cg_json_check_utf8(text, len, errbuf, errbuf_size) != 0
            || (r->decoded
                && cg_json_check_escapes(text, len, errbuf, errbuf_size) != 0)))
    {
        yajl_free(h);
        cg_json_pick_free(r->picks, r->npicks);
        return -1;
    }

    /*
     * cg_json_parse() runs the text checks before yajl, so their cause
     * comes first, and nesting past CG_JSON_MAX_DEPTH fails them as well.
     */
    if (status != yajl_status_ok) {
        if (r->nomem) {
            snprintf(errbuf, errbuf_size, "out of memory");
        } else if (cg_json_check_text(text, len, errbuf, errbuf_size) == 0) {
            cg_pick_error(h, errbuf, errbuf_size);
        }
    }

    yajl_free(h);

    if (status != yajl_status_ok) {
        cg_json_pick_free(r->picks, r->npicks);
        return -1;
    }

    return 0;
}


int
cg_json_gen_members(yajl_gen g, const char *text, size_t len,
    const char *name, const char *value)
{
    cg_copy_t         copy;
    cg_pick_arena_t   arena;
    yajl_alloc_funcs  funcs;
    yajl_handle       h;
    yajl_status       status;

    copy.g = g;
    copy.name = name;
    copy.value = value;
    copy.depth = 0;
    copy.skip = 0;
    copy.replace = 0;

    arena.used = 0;
    funcs.malloc = cg_pick_malloc;
    funcs.realloc = cg_pick_realloc;
    funcs.free = cg_pick_free;
    funcs.ctx = &arena;

    h = yajl_alloc(&cg_copy_callbacks, &funcs, &copy);
    if (h == NULL) {
        return -1;
    }

    yajl_config(h, yajl_allow_comments, 1);

    status = yajl_parse(h, (const unsigned char *) text, len);
    if (status == yajl_status_ok) {
        status = yajl_complete_parse(h);
    }

    yajl_free(h);

    return status == yajl_status_ok ? 0 : -1;
}


void
cg_json_pick_free(cg_json_pick_t *picks, size_t npicks)
{
    size_t  i;

    for (i = 0; i < npicks; i++) {
        free(picks[i].string);
        picks[i].string = NULL;
    }
}


static void *
cg_pick_malloc(void *ctx, size_t size)
{
    cg_pick_arena_t  *arena = ctx;
    unsigned char    *block;
    size_t            need;

    if (size > CG_PICK_ARENA_SIZE) {
        return malloc(size);
    }

    need = CG_PICK_BLOCK_ALIGN
           + (size + CG_PICK_BLOCK_ALIGN - 1) / CG_PICK_BLOCK_ALIGN
             * CG_PICK_BLOCK_ALIGN;

    if (need > CG_PICK_ARENA_SIZE - arena->used) {
        return malloc(size);
    }

    block = arena->data + arena->used;
    memcpy(block, &size, sizeof(size));
    arena->used += need;

    return block + CG_PICK_BLOCK_ALIGN;
}


static int
cg_pick_in_arena(const cg_pick_arena_t *arena, const void *ptr)
{
    uintptr_t  p = (uintptr_t) ptr, start = (uintptr_t) arena->data;

    return p >= start && p < start + CG_PICK_ARENA_SIZE;
}


static void *
cg_pick_realloc(void *ctx, void *ptr, size_t size)
{
    cg_pick_arena_t  *arena = ctx;
    void             *copy;
    size_t            old;

    if (ptr == NULL) {
        return cg_pick_malloc(ctx, size);
    }

    if (!cg_pick_in_arena(arena, ptr)) {
        return realloc(ptr, size);
    }

    memcpy(&old, (unsigned char *) ptr - CG_PICK_BLOCK_ALIGN, sizeof(old));

    copy = cg_pick_malloc(ctx, size);
    if (copy != NULL) {
        memcpy(copy, ptr, old < size ? old : size);
    }

    return copy;
}


/* A block in the arena is released with the whole arena. */
static void
cg_pick_free(void *ctx, void *ptr)
{
    if (!cg_pick_in_arena(ctx, ptr)) {
        free(ptr);
    }
}


/*
 * Splits "/a/0/b" into reference tokens. A token of digits without a
 * leading zero, or "*", can also name array elements. The escapes "~0" and
 * "~1" are not supported, so "~" is rejected.
 */
static int
cg_pick_parse_pointer(const char *pointer, cg_json_path_t *path)
{
    const char  *p, *end;
    size_t       n, i;
    long         index;

    path->ntokens = 0;

    if (pointer == NULL || strchr(pointer, '~') != NULL) {
        return -1;
    }

    for (p = pointer; *p != '\0'; p = end) {
        if (*p != '/' || path->ntokens == CG_JSON_POINTER_MAX_LEN) {
            return -1;
        }

        p++;
        end = strchrnul(p, '/');
        n = (size_t) (end - p);

        /* most tokens are names, so the first byte skips the digit loop */
        index = -1;
        if (p[0] >= '0' && p[0] <= '9' && n < 10 && (p[0] != '0' || n == 1)) {
            index = 0;
            for (i = 0; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
                index = index * 10 + (p[i] - '0');
            }
            if (i < n) {
                index = -1;
            }
        }

        if (n == 1 && p[0] == '*') {
            index = CG_PICK_ANY;
        }

        path->token[path->ntokens] = p;
        path->token_len[path->ntokens] = n;
        path->index[path->ntokens] = index;
        path->ntokens++;
    }

    return 0;
}


/*
 * Handles the start of a value of any type. It counts the value for the
 * pointers that name its container, stores it where a pointer names it,
 * and opens it if it is a container. Returns 1 to go on or 0 to stop yajl.
 */
static int
cg_pick_value(cg_pick_reader_t *r, cg_json_type_t type, const char *s,
    size_t len)
{
    size_t            level = r->depth;
    cg_pick_level_t  *parent, *opened;
    cg_pick_set_t     alive, children, on_path, targets;

    children = 0;
    on_path = level == 0 ? r->plan->all : 0;

    /*
     * A pointer of level - 1 tokens that reaches the parent names the
     * parent itself, so it only counts this value as one of its children.
     */
    if (level > 0) {
        parent = &r->stack[level - 1];
        alive = parent->inside;

        if (alive != 0) {
            children = alive & r->plan->target[level - 1];
            on_path = cg_pick_follow(r, parent, alive & ~children, level - 1);
        }

        parent->count++;
    }

    targets = on_path != 0 ? on_path & r->plan->target[level] : 0;

    if ((children | targets) != 0
        && cg_pick_visit(r, children, targets, type, s, len) != 0)
    {
        return 0;
    }

    if (type != CG_JSON_ARRAY && type != CG_JSON_OBJECT) {
        return 1;
    }

    if (r->depth == CG_JSON_MAX_DEPTH) {
        return 0;
    }

    /* The path, or the counting of a target's children, goes on inside. */
    opened = &r->stack[r->depth];
    opened->count = 0;
    opened->is_object = type == CG_JSON_OBJECT;
    opened->inside = on_path;
    opened->matched = 0;
    r->depth++;

    return 1;
}


/*
 * Returns the pointers of alive whose token t names the value that starts
 * now in parent. In an object, that is the member of the name just read.
 * In an array, it is the element at the index, or any element for "*",
 * and parent->count is the element's index because it counts the values
 * read before it.
 */
static cg_pick_set_t
cg_pick_follow(cg_pick_reader_t *r, cg_pick_level_t *parent,
    cg_pick_set_t alive, size_t t)
{
    cg_pick_set_t  next = 0;
    unsigned       i;
    long           index;

    if (parent->is_object) {
        return alive & r->key_match;
    }

    while (alive != 0) {
        i = (unsigned) __builtin_ctz(alive);
        alive &= alive - 1;

        index = r->plan->paths[i].index[t];
        if (index == CG_PICK_ANY || index == (long) parent->count) {
            next |= (cg_pick_set_t) 1 << i;
        }
    }

    return next;
}


/*
 * Counts the value in the picks of children and stores it in the picks of
 * targets, in the order of picks, so handlers run in that order. Returns
 * 0, or -1 when out of memory.
 */
static int
cg_pick_visit(cg_pick_reader_t *r, cg_pick_set_t children,
    cg_pick_set_t targets, cg_json_type_t type, const char *s, size_t len)
{
    cg_pick_set_t  visit = children | targets;
    unsigned       i;

    while (visit != 0) {
        i = (unsigned) __builtin_ctz(visit);
        visit &= visit - 1;

        if (children & ((cg_pick_set_t) 1 << i)) {
            r->picks[i].count++;

        } else if (cg_pick_store(r, &r->picks[i], type, s, len) != 0) {
            return -1;
        }
    }

    return 0;
}


static int
cg_pick_store(cg_pick_reader_t *r, cg_json_pick_t *pick, cg_json_type_t type,
    const char *s, size_t len)
{
    pick->type = type;
    pick->count = 0;
    pick->len = 0;
    pick->integer = 0;
    pick->is_integer = 0;

    /* A pointer with "*" may match again, and its last copy is kept. */
    free(pick->string);
    pick->string = NULL;

    if (type == CG_JSON_NUMBER) {
        pick->is_integer = cg_pick_integer(s, len, &pick->integer) == 0;

    } else if (type == CG_JSON_STRING) {
        pick->len = len;

        if (pick->flags & CG_JSON_PICK_COPY) {
            pick->string = malloc(len + 1);
            if (pick->string == NULL) {
                r->nomem = 1;
                return -1;
            }

            memcpy(pick->string, s, len);
            pick->string[len] = '\0';
        }
    }

    if (pick->handler != NULL) {
        pick->handler(pick->data, pick, s, len);
    }

    return 0;
}


/*
 * Converts a number's text the way yajl 2.1.0 does for yajl_tree_parse():
 * an integer has no fraction or exponent and a magnitude of at most
 * LLONG_MAX, so LLONG_MIN itself is no integer there either.
 * Returns 0, or -1 for any other number.
 */
static int
cg_pick_integer(const char *s, size_t len, long long *value)
{
    size_t     i = 0;
    long long  v = 0;
    int        digit, negative = 0;

    if (len > 0 && s[0] == '-') {
        negative = 1;
        i = 1;
    }

    if (i == len) {
        return -1;
    }

    for ( /* void */ ; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        digit = s[i] - '0';
        if (v > (LLONG_MAX - digit) / 10) {
            return -1;
        }
        v = v * 10 + digit;
    }

    *value = negative ? -v : v;
    return 0;
}


/* Returns the length of a member name up to its first U+0000. */
static size_t
cg_pick_name_len(const unsigned char *name, size_t len)
{
    const unsigned char  *nul = memchr(name, '\0', len);

    return nul != NULL ? (size_t) (nul - name) : len;
}


/*
 * Returns 1 when the string s that yajl passed to a callback may contain
 * U+0000. yajl 2.1.0 passes a string without escapes as a pointer into
 * the document, which contains no NUL byte, and decodes one with escapes
 * into a buffer of its own. Only such a decoded string can hold a U+0000
 * (from "\u0000"), so only a string outside the document needs a search.
 * A yajl that copied every string would only make each one searched.
 */
static int
cg_pick_decoded(const cg_pick_reader_t *r, const unsigned char *s)
{
    uintptr_t  p = (uintptr_t) s, start = (uintptr_t) r->text;

    return p < start || p - start >= r->len;
}


/*
 * Records a top-level member name, or stores it in r->findings when an
 * earlier one equals it. Returns 0, or -1 when out of memory.
 */
static int
cg_pick_top_name(cg_pick_reader_t *r, const char *name, size_t len)
{
    const char  *p, *end;
    size_t       n;

    if (r->findings->repeated) {
        return 0;
    }

    end = r->names + r->names_len;

    for (p = r->names; p < end; p += sizeof(size_t) + n) {
        memcpy(&n, p, sizeof(size_t));

        if (n == len && memcmp(p + sizeof(size_t), name, len) == 0) {
            n = len < sizeof(r->findings->repeated_name)
                ? len : sizeof(r->findings->repeated_name) - 1;
            memcpy(r->findings->repeated_name, name, n);
            r->findings->repeated_name[n] = '\0';
            r->findings->repeated = 1;
            return 0;
        }
    }

    return cg_pick_add_name(r, name, len);
}


static int
cg_pick_add_name(cg_pick_reader_t *r, const char *name, size_t len)
{
    size_t   need, size;
    char    *names;

    need = r->names_len + sizeof(size_t) + len;

    if (need > r->names_size) {
        for (size = r->names_size * 2; size < need; size *= 2) {
            /* void */
        }

        if (r->names == r->names_inline) {
            names = malloc(size);
            if (names != NULL) {
                memcpy(names, r->names, r->names_len);
            }
        } else {
            names = realloc(r->names, size);
        }

        if (names == NULL) {
            return -1;
        }

        r->names = names;
        r->names_size = size;
    }

    memcpy(r->names + r->names_len, &len, sizeof(size_t));
    memcpy(r->names + r->names_len + sizeof(size_t), name, len);
    r->names_len = need;

    return 0;
}


/* Copies the first line of yajl's error message into errbuf. */
static void
cg_pick_error(yajl_handle h, char *errbuf, size_t errbuf_size)
{
    unsigned char  *msg;
    size_t          n;

    msg = yajl_get_error(h, 0, NULL, 0);
    if (msg == NULL) {
        snprintf(errbuf, errbuf_size, "parse error");
        return;
    }

    n = strcspn((char *) msg, "\n");
    snprintf(errbuf, errbuf_size, "%.*s", (int) n, (char *) msg);
    yajl_free_error(h, msg);

    if (errbuf[0] == '\0') {
        snprintf(errbuf, errbuf_size, "parse error");
    }
}


/*
 * Writes one value, or the replacement of one, unless it is inside a
 * replaced value or is the document's own object. Returns 1 to go on or
 * 0 to stop yajl.
 */
static int
cg_copy_value(void *ctx, cg_json_type_t type, const char *s, size_t len)
{
    cg_copy_t        *copy = ctx;
    yajl_gen_status   rc;
    int               container;

    container = type == CG_JSON_ARRAY || type == CG_JSON_OBJECT;

    if (copy->skip > 0) {
        copy->skip += container;
        return 1;
    }

    if (copy->depth == 0) {
        copy->is_object[0] = 1;
        copy->depth = 1;
        return type == CG_JSON_OBJECT;
    }

    if (copy->replace) {
        copy->replace = 0;
        copy->skip = container;

        return yajl_gen_string(copy->g, (const unsigned char *) copy->value,
                               strlen(copy->value)) == yajl_gen_status_ok;
    }

    if (container && copy->depth == CG_JSON_MAX_DEPTH) {
        return 0;
    }

    switch (type) {
    case CG_JSON_NULL:
        rc = yajl_gen_null(copy->g);
        break;
    case CG_JSON_FALSE:
    case CG_JSON_TRUE:
        rc = yajl_gen_bool(copy->g, type == CG_JSON_TRUE);
        break;
    case CG_JSON_NUMBER:
        rc = yajl_gen_number(copy->g, s, len);
        break;
    case CG_JSON_STRING:
        rc = yajl_gen_string(copy->g, (const unsigned char *) s,
                             cg_pick_name_len((const unsigned char *) s, len));
        break;
    case CG_JSON_ARRAY:
        rc = yajl_gen_array_open(copy->g);
        break;
    default:
        rc = yajl_gen_map_open(copy->g);
        break;
    }

    if (container) {
        copy->is_object[copy->depth++] = type == CG_JSON_OBJECT;
    }

    return rc == yajl_gen_status_ok;
}


static int
cg_copy_null(void *ctx)
{
    return cg_copy_value(ctx, CG_JSON_NULL, NULL, 0);
}


static int
cg_copy_boolean(void *ctx, int value)
{
    return cg_copy_value(ctx, value ? CG_JSON_TRUE : CG_JSON_FALSE, NULL, 0);
}


static int
cg_copy_number(void *ctx, const char *s, size_t len)
{
    return cg_copy_value(ctx, CG_JSON_NUMBER, s, len);
}


static int
cg_copy_string(void *ctx, const unsigned char *s, size_t len)
{
    return cg_copy_value(ctx, CG_JSON_STRING, (const char *) s, len);
}


static int
cg_copy_start_map(void *ctx)
{
    return cg_copy_value(ctx, CG_JSON_OBJECT, NULL, 0);
}


static int
cg_copy_start_array(void *ctx)
{
    return cg_copy_value(ctx, CG_JSON_ARRAY, NULL, 0);
}


/* Names end at a U+0000, as cg_json_gen_str() writes the names of a tree. */
static int
cg_copy_map_key(void *ctx, const unsigned char *key, size_t len)
{
    cg_copy_t  *copy = ctx;
    size_t      n;

    if (copy->skip > 0) {
        return 1;
    }

    n = cg_pick_name_len(key, len);

    if (copy->depth == 1 && strlen(copy->name) == n
        && memcmp(copy->name, key, n) == 0)
    {
        copy->replace = 1;
    }

    return yajl_gen_string(copy->g, key, n) == yajl_gen_status_ok;
}


static int
cg_copy_end(void *ctx)
{
    cg_copy_t        *copy = ctx;
    yajl_gen_status   rc;

    if (copy->skip > 0) {
        copy->skip--;
        return 1;
    }

    copy->depth--;

    /* The caller closes the object that the members go into. */
    if (copy->depth == 0) {
        return 1;
    }

    rc = copy->is_object[copy->depth] ? yajl_gen_map_close(copy->g)
                                      : yajl_gen_array_close(copy->g);

    return rc == yajl_gen_status_ok;
}


static int
cg_pick_null(void *ctx)
{
    return cg_pick_value(ctx, CG_JSON_NULL, NULL, 0);
}


static int
cg_pick_boolean(void *ctx, int value)
{
    return cg_pick_value(ctx, value ? CG_JSON_TRUE : CG_JSON_FALSE, NULL, 0);
}


static int
cg_pick_number(void *ctx, const char *s, size_t len)
{
    return cg_pick_value(ctx, CG_JSON_NUMBER, s, len);
}


static int
cg_pick_string(void *ctx, const unsigned char *s, size_t len)
{
    cg_pick_reader_t  *r = ctx;

    if (cg_pick_decoded(r, s)) {
        r->decoded = 1;
        if (r->findings != NULL && memchr(s, '\0', len) != NULL) {
            r->findings->nul = 1;
        }
    }

    return cg_pick_value(ctx, CG_JSON_STRING, (const char *) s, len);
}


static int
cg_pick_start_map(void *ctx)
{
    return cg_pick_value(ctx, CG_JSON_OBJECT, NULL, 0);
}


static int
cg_pick_start_array(void *ctx)
{
    return cg_pick_value(ctx, CG_JSON_ARRAY, NULL, 0);
}


/*
 * Matches a member name against the next token of the pointers that reach
 * this object and have not matched that token yet, so only the first
 * member of a name can be on a path. Names are compared up to a U+0000, as
 * strcmp() compares the names in a yajl tree.
 */
static int
cg_pick_map_key(void *ctx, const unsigned char *key, size_t len)
{
    cg_pick_reader_t  *r = ctx;
    cg_pick_level_t   *object;
    cg_pick_set_t      alive;
    size_t             n, level = r->depth;

    n = len;
    if (cg_pick_decoded(r, key)) {
        r->decoded = 1;
        n = cg_pick_name_len(key, len);
    }

    if (n < len && r->findings != NULL) {
        r->findings->nul = 1;
    }

    /* The pointers that end at the object only count its members. */
    object = &r->stack[level - 1];
    r->key_match = 0;

    if (object->inside != 0) {
        alive = object->inside & ~(r->plan->target[level - 1]
                                  | object->matched);
        r->key_match = cg_pick_match_name(r, alive, level - 1, key, n);
        object->matched |= r->key_match;
    }

    if (level == 1 && r->findings != NULL
        && cg_pick_top_name(r, (const char *) key, n) != 0)
    {
        r->nomem = 1;
        return 0;
    }

    return 1;
}


/*
 * Returns the pointers of alive whose token t equals the member name. The
 * plan's tokens at t are distinct, so at most one of them matches.
 * Comparing the first byte before the rest skips memcmp() for most names.
 */
static cg_pick_set_t
cg_pick_match_name(cg_pick_reader_t *r, cg_pick_set_t alive, size_t t,
    const unsigned char *name, size_t len)
{
    const cg_json_token_t  *token, *end;

    token = r->plan->tokens[t];
    end = token + r->plan->ntokens[t];

    for ( /* void */ ; token < end; token++) {
        if ((token->set & alive) == 0 || token->len != len) {
            continue;
        }

        if (len == 0
            || (token->token[0] == (char) name[0]
                && memcmp(token->token + 1, name + 1, len - 1) == 0))
        {
            return token->set & alive;
        }
    }

    return 0;
}


/*
 * The parent's set already contains every pointer of the closed
 * container's set, so nothing moves back.
 */
static int
cg_pick_end(void *ctx)
{
    cg_pick_reader_t  *r = ctx;

    r->depth--;

    return 1;
}
