#ifndef CG_JSON_SCAN_REFERENCE_H
#define CG_JSON_SCAN_REFERENCE_H

/*
 * The reference for cg_json_scan(): yajl_parse() with comments, then the
 * checks of json.c, and a log of the callbacks of both readers. Shared by
 * t/unit/test_json_scan.c and the fuzzer in t/fuzz/, so that both compare
 * against the same reference.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "json.h"
#include "json_scan.h"


/* The callbacks of one read, as a byte log. */
typedef struct {
    const char     *text;
    size_t          len;
    unsigned char   log[1 << 20];   /* texts up to 100 KiB: 10 bytes per byte */
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


#endif
