/*
 * Knobs: per-request directives that change how the emulator responds. They
 * come from "[emu key=value ...]" in message text or from X-Emu-Key request
 * headers (X-Emu-Delay-Ms: 100 sets delay_ms). Unknown keys and values that
 * are not valid numbers are ignored.
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include "emu.h"

#define EMU_DIRECTIVE      "[emu"
#define EMU_DIRECTIVE_LEN  (sizeof(EMU_DIRECTIVE) - 1)
#define EMU_HEADER_PREFIX  "x-emu-"
#define EMU_INT_MAX        1000000000


void
emu_knobs_init(emu_knobs_t *knobs)
{
    memset(knobs, 0, sizeof(*knobs));

    knobs->delay_ms = -1;
    knobs->status = -1;
    knobs->retry_after = -1;
    knobs->fail_first = -1;
    knobs->chunks = -1;
    knobs->chunk_delay_ms = -1;
    knobs->split_bytes = -1;
    knobs->words = -1;
    knobs->error_at = -1;
    knobs->drop_at = -1;
    knobs->bad_at = -1;
    knobs->usage = EMU_USAGE_DEFAULT;
}


/* Parses a decimal integer in [min, max]. Returns -1 when it is not one. */
static int
emu_knob_int(const char *value, size_t len, int min, int max)
{
    long    n = 0;
    size_t  i;

    if (len == 0 || len > 10) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (!isdigit((unsigned char) value[i])) {
            return -1;
        }
        n = n * 10 + (value[i] - '0');
    }

    return (n < min || n > max) ? -1 : (int) n;
}


static void
emu_knob_set_int(int *field, const char *value, size_t len, int min, int max)
{
    int  n = emu_knob_int(value, len, min, max);

    if (n != -1) {
        *field = n;
    }
}


static bool
emu_key_is(const char *key, size_t klen, const char *name)
{
    return strlen(name) == klen && strncasecmp(key, name, klen) == 0;
}


/* Sets one knob from its key and value; an unknown key is ignored. */
static void
emu_knobs_set(emu_knobs_t *k, const char *key, size_t klen, const char *value,
    size_t vlen)
{
    if (emu_key_is(key, klen, "delay_ms")) {
        emu_knob_set_int(&k->delay_ms, value, vlen, 0, 600000);
    } else if (emu_key_is(key, klen, "status")) {
        emu_knob_set_int(&k->status, value, vlen, 100, 599);
    } else if (emu_key_is(key, klen, "retry_after")) {
        emu_knob_set_int(&k->retry_after, value, vlen, 0, 86400);
    } else if (emu_key_is(key, klen, "fail_first")) {
        emu_knob_set_int(&k->fail_first, value, vlen, 0, EMU_INT_MAX);
    } else if (emu_key_is(key, klen, "tag")) {
        snprintf(k->tag, sizeof(k->tag), "%.*s", (int) vlen, value);
    } else if (emu_key_is(key, klen, "chunks")) {
        emu_knob_set_int(&k->chunks, value, vlen, 1, EMU_WORDS_MAX);
    } else if (emu_key_is(key, klen, "chunk_delay_ms")) {
        emu_knob_set_int(&k->chunk_delay_ms, value, vlen, 0, 600000);
    } else if (emu_key_is(key, klen, "split_bytes")) {
        emu_knob_set_int(&k->split_bytes, value, vlen, 1, EMU_INT_MAX);
    } else if (emu_key_is(key, klen, "words")) {
        emu_knob_set_int(&k->words, value, vlen, 1, EMU_WORDS_MAX);
    } else if (emu_key_is(key, klen, "error_at")) {
        emu_knob_set_int(&k->error_at, value, vlen, 0, EMU_INT_MAX);
    } else if (emu_key_is(key, klen, "drop_at")) {
        emu_knob_set_int(&k->drop_at, value, vlen, 0, EMU_INT_MAX);
    } else if (emu_key_is(key, klen, "bad_at")) {
        emu_knob_set_int(&k->bad_at, value, vlen, 0, EMU_INT_MAX);
    } else if (emu_key_is(key, klen, "crlf")) {
        k->crlf = (vlen == 1 && value[0] == '1');
    } else if (emu_key_is(key, klen, "comments")) {
        k->comments = (vlen == 1 && value[0] == '1');
    } else if (emu_key_is(key, klen, "usage")) {
        if (vlen == 5 && strncmp(value, "final", 5) == 0) {
            k->usage = EMU_USAGE_FINAL;
        } else if (vlen == 4 && strncmp(value, "none", 4) == 0) {
            k->usage = EMU_USAGE_NONE;
        }
    }
}


/*
 * Finds the next directive in text[0, len): sets *start to its "[" and
 * returns its length including the "]", or 0 when there is none. A "[emu"
 * without a closing "]" is not a directive.
 */
static size_t
emu_directive_find(const char *text, size_t len, size_t *start)
{
    const char  *p, *end = text + len, *close;

    for (p = text; (size_t) (end - p) > EMU_DIRECTIVE_LEN; p++) {
        p = memchr(p, '[', end - p);
        if (p == NULL || (size_t) (end - p) <= EMU_DIRECTIVE_LEN) {
            return 0;
        }

        if (memcmp(p, EMU_DIRECTIVE, EMU_DIRECTIVE_LEN) != 0
            || !(isspace((unsigned char) p[EMU_DIRECTIVE_LEN])
                 || p[EMU_DIRECTIVE_LEN] == ']'))
        {
            continue;
        }

        close = memchr(p, ']', end - p);
        if (close == NULL) {
            return 0;
        }

        *start = p - text;
        return close - p + 1;
    }

    return 0;
}


/* Applies every "key=value" pair of one directive body. */
static void
emu_directive_apply(emu_knobs_t *knobs, const char *p, const char *end)
{
    const char  *key, *eq, *value;

    while (p < end) {
        while (p < end && isspace((unsigned char) *p)) {
            p++;
        }

        key = p;
        while (p < end && !isspace((unsigned char) *p)) {
            p++;
        }

        eq = memchr(key, '=', p - key);
        if (eq != NULL) {
            value = eq + 1;
            emu_knobs_set(knobs, key, eq - key, value, p - value);
        }
    }
}


void
emu_knobs_scan_text(emu_knobs_t *knobs, const char *text, size_t len)
{
    size_t  pos = 0, start, dlen;

    while ((dlen = emu_directive_find(text + pos, len - pos, &start)) != 0) {
        const char *body = text + pos + start + EMU_DIRECTIVE_LEN;

        emu_directive_apply(knobs, body, text + pos + start + dlen - 1);
        pos += start + dlen;
    }
}


/* Applies X-Emu-* headers: "X-Emu-Chunk-Delay-Ms" sets chunk_delay_ms. */
void
emu_knobs_scan_headers(emu_knobs_t *knobs, struct evkeyvalq *headers)
{
    struct evkeyval  *h;
    char              key[32];
    size_t            i, klen;
    const size_t      plen = sizeof(EMU_HEADER_PREFIX) - 1;

    TAILQ_FOREACH(h, headers, next) {
        if (strncasecmp(h->key, EMU_HEADER_PREFIX, plen) != 0) {
            continue;
        }

        klen = strlen(h->key + plen);
        if (klen == 0 || klen >= sizeof(key)) {
            continue;
        }

        for (i = 0; i < klen; i++) {
            char c = h->key[plen + i];
            key[i] = (c == '-') ? '_' : (char) tolower((unsigned char) c);
        }

        emu_knobs_set(knobs, key, klen, h->value, strlen(h->value));
    }
}


/*
 * Copies text to dst without its directives, with the whitespace at both
 * ends trimmed, and cut to at most dst_size - 1 bytes on a UTF-8 character
 * boundary. Returns the length copied; dst is NUL-terminated.
 */
size_t
emu_knobs_strip(char *dst, size_t dst_size, const char *text, size_t len)
{
    size_t  pos = 0, out = 0, start, dlen, n;

    while (pos < len && out < dst_size - 1) {
        dlen = emu_directive_find(text + pos, len - pos, &start);
        n = (dlen != 0) ? start : len - pos;

        if (n > dst_size - 1 - out) {
            n = dst_size - 1 - out;
        }
        memcpy(dst + out, text + pos, n);
        out += n;

        if (dlen == 0) {
            break;
        }
        pos += start + dlen;
    }

    while (out > 0 && isspace((unsigned char) dst[out - 1])) {
        out--;
    }

    /* Drop a multi-byte character that the cut left incomplete. */
    if (out == dst_size - 1) {
        size_t back = out;

        while (back > 0 && ((unsigned char) dst[back - 1] & 0xc0) == 0x80) {
            back--;
        }
        if (back > 0 && ((unsigned char) dst[back - 1] & 0x80) != 0) {
            unsigned char lead = (unsigned char) dst[back - 1];
            size_t need = (lead >= 0xf0) ? 4 : (lead >= 0xe0) ? 3 : 2;

            if (out - (back - 1) < need) {
                out = back - 1;
            }
        }
    }

    start = 0;
    while (start < out && isspace((unsigned char) dst[start])) {
        start++;
    }
    memmove(dst, dst + start, out - start);
    out -= start;
    dst[out] = '\0';

    return out;
}


static void
emu_render_int(char *buf, size_t size, size_t *len, const char *key, int value)
{
    if (value >= 0 && *len < size) {
        *len += snprintf(buf + *len, size - *len, "%s\"%s\":%d",
                         *len > 1 ? "," : "", key, value);
    }
}


/*
 * Renders the knobs that are set as a JSON object into knobs->seen_json,
 * for the request journal. Tag bytes that would need escaping are dropped.
 */
void
emu_knobs_render(emu_knobs_t *k)
{
    static const char  *usage_names[] = { NULL, "final", "none" };
    char               *buf = k->seen_json;
    size_t              size = sizeof(k->seen_json) - 2, len = 1, i;

    buf[0] = '{';

    emu_render_int(buf, size, &len, "delay_ms", k->delay_ms);
    emu_render_int(buf, size, &len, "status", k->status);
    emu_render_int(buf, size, &len, "retry_after", k->retry_after);
    emu_render_int(buf, size, &len, "fail_first", k->fail_first);
    emu_render_int(buf, size, &len, "chunks", k->chunks);
    emu_render_int(buf, size, &len, "chunk_delay_ms", k->chunk_delay_ms);
    emu_render_int(buf, size, &len, "split_bytes", k->split_bytes);
    emu_render_int(buf, size, &len, "words", k->words);
    emu_render_int(buf, size, &len, "error_at", k->error_at);
    emu_render_int(buf, size, &len, "drop_at", k->drop_at);
    emu_render_int(buf, size, &len, "bad_at", k->bad_at);
    emu_render_int(buf, size, &len, "crlf", k->crlf ? 1 : -1);
    emu_render_int(buf, size, &len, "comments", k->comments ? 1 : -1);

    if (usage_names[k->usage] != NULL && len < size) {
        len += snprintf(buf + len, size - len, "%s\"usage\":\"%s\"",
                        len > 1 ? "," : "", usage_names[k->usage]);
    }

    if (k->tag[0] != '\0' && len < size) {
        len += snprintf(buf + len, size - len, "%s\"tag\":\"",
                        len > 1 ? "," : "");
        for (i = 0; k->tag[i] != '\0' && len < size - 1; i++) {
            unsigned char c = (unsigned char) k->tag[i];

            if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
                buf[len++] = (char) c;
            }
        }
        if (len < size) {
            buf[len++] = '"';
        }
    }

    if (len > size) {
        len = size;
    }
    buf[len++] = '}';
    buf[len] = '\0';
    k->seen_len = len;
}
