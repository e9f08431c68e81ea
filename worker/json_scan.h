#ifndef CG_JSON_SCAN_H
#define CG_JSON_SCAN_H

#include <stddef.h>
#include <yajl/yajl_parse.h>

/*
 * Reads the len bytes of text in one pass and calls the callbacks of cb
 * with ctx as yajl_parse() with yajl_allow_comments calls them. Numbers go
 * to yajl_number as their text, and strings are decoded. A string without
 * escapes is passed as a pointer into text, one with escapes as a pointer
 * into a buffer of the reader's. yajl_integer and yajl_double are never
 * called, and a NULL callback is skipped, as yajl skips it.
 *
 * Returns 0 for a valid text: one that yajl_parse() with comments accepts,
 * in strict UTF-8, without a lone surrogate escape or a NUL byte, nested at
 * most CG_JSON_MAX_DEPTH deep as cg_json_check_text() counts it. Unlike
 * yajl 2.1.0, it rejects a text that ends inside a token after its value.
 * Returns -1 at the first thing that is not valid. A callback that
 * returns 0 stops the read with -1.
 * Returns CG_JSON_SCAN_NOMEM when a decoded string finds no memory. The
 * callbacks may have run for the values before a failure. No cause is
 * given: callers that report one read the text with yajl again.
 */
#define CG_JSON_SCAN_NOMEM  (-2)

int cg_json_scan(const char *text, size_t len, const yajl_callbacks *cb,
    void *ctx);

#endif
