/*
 * Request parsing: turns a chat request body into an emu_call_t with the
 * model, the stream flags, the knobs, the token counts and the reply text.
 */

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "emu.h"

#define EMU_REPLY_PREFIX      "emulator reply to: "
#define EMU_REPLY_PREFIX_LEN  (sizeof(EMU_REPLY_PREFIX) - 1)
#define EMU_JOIN_MAX          8192   /* bytes of the last user text joined */

typedef struct {
    char    text[EMU_JOIN_MAX];
    size_t  len;
} emu_join_t;


/* Counts whitespace-separated words. */
unsigned
emu_count_words(const char *text, size_t len)
{
    unsigned  words = 0;
    bool      in_word = false;
    size_t    i;

    for (i = 0; i < len; i++) {
        if (isspace((unsigned char) text[i])) {
            in_word = false;
        } else if (!in_word) {
            in_word = true;
            words++;
        }
    }

    return words;
}


static yajl_val
emu_json_get(yajl_val parent, const char *key, yajl_type type)
{
    const char  *path[] = { key, NULL };

    return yajl_tree_get(parent, path, type);
}


/*
 * Returns the length of text cut to at most max bytes at a UTF-8 character
 * boundary, because a text cut inside a character makes every response
 * that echoes it invalid JSON.
 */
static size_t
emu_utf8_cut(const char *text, size_t len, size_t max)
{
    if (len <= max) {
        return len;
    }

    while (max > 0 && ((unsigned char) text[max] & 0xc0) == 0x80) {
        max--;
    }

    return max;
}


static void
emu_join_add(emu_join_t *join, const char *text, size_t len)
{
    if (join == NULL) {
        return;
    }

    if (join->len > 0 && join->len < EMU_JOIN_MAX) {
        join->text[join->len++] = ' ';
    }

    len = emu_utf8_cut(text, len, EMU_JOIN_MAX - join->len);
    memcpy(join->text + join->len, text, len);
    join->len += len;
}


/*
 * Visits the text of one content value: a string, or an array of parts of
 * which only {"type":"text","text":...} count. Adds the words to the prompt
 * count, applies directives to the knobs and, when join is not NULL, appends
 * the text parts to it separated by a space.
 */
static void
emu_visit_content(emu_call_t *call, yajl_val content, emu_join_t *join)
{
    const char  *text;
    yajl_val     part, type;
    size_t       i, len;

    if (YAJL_IS_STRING(content)) {
        text = YAJL_GET_STRING(content);
        len = strlen(text);
        call->prompt_tokens += emu_count_words(text, len);
        emu_knobs_scan_text(&call->knobs, text, len);
        emu_join_add(join, text, len);
        return;
    }

    if (!YAJL_IS_ARRAY(content)) {
        return;
    }

    for (i = 0; i < content->u.array.len; i++) {
        part = content->u.array.values[i];
        type = emu_json_get(part, "type", yajl_t_string);
        text = YAJL_GET_STRING(emu_json_get(part, "text", yajl_t_string));

        if (text == NULL || type == NULL
            || strcmp(type->u.string, "text") != 0)
        {
            continue;
        }

        len = strlen(text);
        call->prompt_tokens += emu_count_words(text, len);
        emu_knobs_scan_text(&call->knobs, text, len);
        emu_join_add(join, text, len);
    }
}


/* Fills call->reply with "w1 w2 ... wN" in a heap buffer. */
static int
emu_reply_words(emu_call_t *call, int words, char *err, size_t err_size)
{
    char    *p;
    size_t   size;
    int      i;

    size = (size_t) words * 8 + 1;
    call->reply = malloc(size);
    if (call->reply == NULL) {
        snprintf(err, err_size, "out of memory for a reply of %d words", words);
        return -1;
    }

    p = call->reply;
    for (i = 1; i <= words; i++) {
        p += sprintf(p, i == 1 ? "w%d" : " w%d", i);
    }
    call->reply_len = p - call->reply;
    return 0;
}


static void
emu_reply_echo(emu_call_t *call, const emu_join_t *last_user)
{
    size_t  n;

    memcpy(call->reply_inline, EMU_REPLY_PREFIX, EMU_REPLY_PREFIX_LEN);
    n = emu_knobs_strip(call->reply_inline + EMU_REPLY_PREFIX_LEN,
                        EMU_USER_TEXT_MAX + 1, last_user->text,
                        last_user->len);

    call->reply = call->reply_inline;
    call->reply_len = EMU_REPLY_PREFIX_LEN + n;
}


/* Copies the model name, cut to the field's size between characters. */
static void
emu_copy_model(emu_call_t *call, const char *model)
{
    size_t  len;

    len = emu_utf8_cut(model, strlen(model), sizeof(call->model) - 1);

    memcpy(call->model, model, len);
    call->model[len] = '\0';
}


/*
 * Walks the messages: counts the prompt words, applies directives and keeps
 * the text of the last user message in last_user. Returns -1 with err set
 * when messages is not an array of objects.
 */
static int
emu_visit_messages(emu_call_t *call, yajl_val root, emu_join_t *last_user,
    char *err, size_t err_size)
{
    yajl_val     messages, msg;
    const char  *role;
    size_t       i;

    messages = emu_json_get(root, "messages", yajl_t_array);
    if (messages == NULL) {
        snprintf(err, err_size, "\"messages\" is missing or not an array");
        return -1;
    }

    for (i = 0; i < messages->u.array.len; i++) {
        msg = messages->u.array.values[i];
        if (!YAJL_IS_OBJECT(msg)) {
            snprintf(err, err_size, "messages[%zu] is not an object", i);
            return -1;
        }

        role = YAJL_GET_STRING(emu_json_get(msg, "role", yajl_t_string));

        if (role != NULL && strcmp(role, "user") == 0) {
            last_user->len = 0;
            emu_visit_content(call, emu_json_get(msg, "content", yajl_t_any),
                              last_user);

        } else {
            emu_visit_content(call, emu_json_get(msg, "content", yajl_t_any),
                              NULL);
        }
    }

    return 0;
}


/*
 * Parses a NUL-terminated JSON body of the given format into call, then
 * applies the X-Emu-* headers over the directives. Returns 0, or -1 with a
 * message for a 400 response in err. On success the caller releases the call
 * with emu_call_release().
 */
int
emu_call_parse(emu_call_t *call, emu_format_t format,
    struct evkeyvalq *headers, const char *body, size_t len, char *err,
    size_t err_size)
{
    static __thread emu_join_t  last_user;
    char                        yerr[128];
    const char                 *model, *ypath[3];
    yajl_val                    root, v;
    int                         rc = -1;

    (void) len;
    memset(call, 0, offsetof(emu_call_t, reply_inline));
    emu_knobs_init(&call->knobs);
    call->format = format;
    last_user.len = 0;

    root = yajl_tree_parse(body, yerr, sizeof(yerr));
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        snprintf(err, err_size, "invalid JSON body: %s",
                 root == NULL ? strtok(yerr, "\n") : "not an object");
        goto done;
    }

    model = YAJL_GET_STRING(emu_json_get(root, "model", yajl_t_string));
    if (model == NULL || model[0] == '\0') {
        snprintf(err, err_size, "\"model\" is missing or not a string");
        goto done;
    }
    emu_copy_model(call, model);

    v = emu_json_get(root, "stream", yajl_t_any);
    call->stream = (format == EMU_FORMAT_OLLAMA) ? !YAJL_IS_FALSE(v)
                                                 : YAJL_IS_TRUE(v);

    ypath[0] = "stream_options";
    ypath[1] = "include_usage";
    ypath[2] = NULL;
    call->include_usage = YAJL_IS_TRUE(yajl_tree_get(root, ypath, yajl_t_any));

    if (format == EMU_FORMAT_ANTHROPIC) {
        emu_visit_content(call, emu_json_get(root, "system", yajl_t_any), NULL);
    }

    if (emu_visit_messages(call, root, &last_user, err, err_size) != 0) {
        goto done;
    }

    emu_knobs_scan_headers(&call->knobs, headers);

    if (call->knobs.words > 0) {
        if (emu_reply_words(call, call->knobs.words, err, err_size) != 0) {
            goto done;
        }
    } else {
        emu_reply_echo(call, &last_user);
    }

    call->completion_tokens = emu_count_words(call->reply, call->reply_len);
    rc = 0;

done:
    if (root != NULL) {
        yajl_tree_free(root);
    }
    return rc;
}


void
emu_call_release(emu_call_t *call)
{
    if (call->reply != NULL && call->reply != call->reply_inline) {
        free(call->reply);
    }
    call->reply = NULL;
}
