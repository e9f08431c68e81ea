#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "provider.h"


#define CG_ANTHROPIC_MAX_TOKENS  4096   /* Anthropic requires max_tokens */


static int cg_anthropic_system(const cg_chat_request_t *req, cg_buf_t *system,
    cg_error_t *err);
static int cg_anthropic_messages(const cg_chat_request_t *req, yajl_gen g,
    cg_error_t *err);
static int cg_anthropic_content(yajl_gen g, yajl_val content, size_t i,
    cg_error_t *err);
static int cg_anthropic_options(const cg_chat_request_t *req, yajl_gen g,
    cg_error_t *err);
static int cg_anthropic_text(yajl_val content, cg_buf_t *text);


/*
 * Writes a Messages API body. System and developer messages become the
 * top-level "system" text, joined by blank lines.
 */
int
cg_anthropic_build_body(const cg_chat_request_t *req, yajl_gen g,
    cg_error_t *err)
{
    cg_buf_t  system = { 0 };
    int       bad;

    if (cg_anthropic_system(req, &system, err) != 0) {
        goto fail;
    }

    bad = yajl_gen_map_open(g)
          || cg_json_gen_str(g, "model") || cg_json_gen_str(g, req->model);

    if (!bad && system.len > 0) {
        bad = cg_json_gen_str(g, "system") || cg_json_gen_str(g, system.data);
    }

    if (bad) {
        goto nomem;
    }

    if (cg_anthropic_options(req, g, err) != 0
        || cg_anthropic_messages(req, g, err) != 0)
    {
        goto fail;
    }

    if (req->stream
        && (cg_json_gen_str(g, "stream") || yajl_gen_bool(g, 1)))
    {
        goto nomem;
    }

    if (yajl_gen_map_close(g) != yajl_gen_status_ok) {
        goto nomem;
    }

    cg_buf_free(&system);
    return 0;

nomem:

    cg_error_set(err, 500, "server_error", "cannot write the request body "
                 "for provider \"anthropic\"");

fail:

    cg_buf_free(&system);
    return -1;
}


static int
cg_anthropic_system(const cg_chat_request_t *req, cg_buf_t *system,
    cg_error_t *err)
{
    yajl_val     messages = cg_json_get(req->root, "messages");
    yajl_val     msg;
    const char  *role;
    size_t       i;

    for (i = 0; i < messages->u.array.len; i++) {
        msg = messages->u.array.values[i];
        role = cg_json_get_string(msg, "role");

        if (strcmp(role, "system") != 0 && strcmp(role, "developer") != 0) {
            continue;
        }

        if ((system->len > 0 && cg_buf_append_str(system, "\n\n") != 0)
            || cg_anthropic_text(cg_json_get(msg, "content"), system) != 0)
        {
            cg_error_set(err, 400, "invalid_request_error",
                         "invalid messages[%zu].content: a system message "
                         "for provider \"anthropic\" must be text", i);
            cg_error_param(err, "messages[%zu].content", i);
            return -1;
        }
    }

    return 0;
}


static int
cg_anthropic_messages(const cg_chat_request_t *req, yajl_gen g,
    cg_error_t *err)
{
    yajl_val     messages = cg_json_get(req->root, "messages");
    yajl_val     msg;
    const char  *role;
    size_t       i, written = 0;

    if (cg_json_gen_str(g, "messages") || yajl_gen_array_open(g)) {
        return -1;
    }

    for (i = 0; i < messages->u.array.len; i++) {
        msg = messages->u.array.values[i];
        role = cg_json_get_string(msg, "role");

        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            continue;
        }

        /* NOTE: tool calls and tool results are not translated yet. */
        if (strcmp(role, "tool") == 0 || cg_json_get(msg, "tool_calls")) {
            cg_error_set(err, 400, "invalid_request_error",
                         "invalid messages[%zu]: tool calls and tool "
                         "messages are not supported for provider "
                         "\"anthropic\"", i);
            cg_error_param(err, "messages[%zu]", i);
            return -1;
        }

        if (yajl_gen_map_open(g)
            || cg_json_gen_str(g, "role") || cg_json_gen_str(g, role)
            || cg_json_gen_str(g, "content")
            || cg_anthropic_content(g, cg_json_get(msg, "content"), i, err)
            || yajl_gen_map_close(g))
        {
            return -1;
        }

        written++;
    }

    if (written == 0) {
        cg_error_set(err, 400, "invalid_request_error", "invalid messages: "
                     "provider \"anthropic\" needs at least one user or "
                     "assistant message");
        err->param = "messages";
        return -1;
    }

    return yajl_gen_array_close(g) ? -1 : 0;
}


/* Writes a string as it is and an array of parts as text blocks. */
static int
cg_anthropic_content(yajl_gen g, yajl_val content, size_t i, cg_error_t *err)
{
    yajl_val     part;
    const char  *type, *text;
    size_t       p;

    if (YAJL_IS_STRING(content)) {
        return cg_json_gen_str(g, content->u.string);
    }

    if (yajl_gen_array_open(g)) {
        return -1;
    }

    for (p = 0; p < content->u.array.len; p++) {
        part = content->u.array.values[p];
        type = cg_json_get_string(part, "type");
        text = cg_json_get_string(part, "text");

        /* NOTE: image parts are not translated to Anthropic image blocks. */
        if (strcmp(type, "text") != 0 || text == NULL) {
            cg_error_set(err, 400, "invalid_request_error",
                         "invalid messages[%zu].content[%zu]: only text parts "
                         "are supported for provider \"anthropic\"", i, p);
            cg_error_param(err, "messages[%zu].content[%zu]", i, p);
            return -1;
        }

        if (yajl_gen_map_open(g)
            || cg_json_gen_str(g, "type") || cg_json_gen_str(g, "text")
            || cg_json_gen_str(g, "text") || cg_json_gen_str(g, text)
            || yajl_gen_map_close(g))
        {
            return -1;
        }
    }

    return yajl_gen_array_close(g) ? -1 : 0;
}


static int
cg_anthropic_options(const cg_chat_request_t *req, yajl_gen g,
    cg_error_t *err)
{
    const char  *key = "max_tokens";
    yajl_val     v;
    long         max_tokens = CG_ANTHROPIC_MAX_TOKENS;

    v = cg_json_get(req->root, key);
    if (v == NULL || YAJL_IS_NULL(v)) {
        key = "max_completion_tokens";
        v = cg_json_get(req->root, key);
    }

    if (v != NULL && !YAJL_IS_NULL(v)) {
        if (cg_json_get_long(req->root, key, &max_tokens) != 0
            || max_tokens <= 0)
        {
            cg_error_set(err, 400, "invalid_request_error", "invalid %s: "
                         "expected a positive integer", key);
            err->param = key;
            return -1;
        }
    }

    if (cg_json_gen_str(g, "max_tokens") || yajl_gen_integer(g, max_tokens)) {
        return -1;
    }

    if (cg_provider_gen_number(g, req->root, "temperature", "temperature", err)
        || cg_provider_gen_number(g, req->root, "top_p", "top_p", err)
        || cg_provider_gen_stop(g, req->root, "stop_sequences", err))
    {
        return -1;
    }

    return 0;
}


/*
 * Appends the text of content (a string, or the text parts of an array,
 * joined by newlines) to text. Returns -1 for other parts or lack of memory.
 */
static int
cg_anthropic_text(yajl_val content, cg_buf_t *text)
{
    const char  *s;
    size_t       p;

    if (YAJL_IS_STRING(content)) {
        return cg_buf_append_str(text, content->u.string);
    }

    for (p = 0; YAJL_IS_ARRAY(content) && p < content->u.array.len; p++) {
        s = cg_json_get_string(content->u.array.values[p], "text");

        if (s == NULL
            || (p > 0 && cg_buf_append_str(text, "\n") != 0)
            || cg_buf_append_str(text, s) != 0)
        {
            return -1;
        }
    }

    return YAJL_IS_ARRAY(content) ? 0 : -1;
}


int
cg_anthropic_parse_completion(const cg_chat_request_t *req, yajl_val root,
    const char *completion_id, long created, cg_completion_t *out,
    cg_error_t *err)
{
    yajl_val     content, block;
    const char  *type, *s, *finish;
    cg_buf_t     text = { 0 };
    yajl_gen     g;
    size_t       i;

    content = cg_json_get(root, "content");
    if (!YAJL_IS_ARRAY(content)) {
        cg_provider_invalid_answer(err, req->provider, "no content array");
        return -1;
    }

    /* The reply is the text blocks joined; other blocks carry no text. */
    for (i = 0; i < content->u.array.len; i++) {
        block = content->u.array.values[i];
        type = cg_json_get_string(block, "type");
        s = cg_json_get_string(block, "text");

        if (type != NULL && strcmp(type, "text") == 0 && s != NULL
            && cg_buf_append_str(&text, s) != 0)
        {
            goto nomem;
        }
    }

    if (cg_buf_append(&text, "", 0) != 0) {
        goto nomem;
    }

    out->usage.prompt_tokens = -1;
    out->usage.completion_tokens = -1;
    cg_json_get_long(cg_json_get(root, "usage"), "input_tokens",
                     &out->usage.prompt_tokens);
    cg_json_get_long(cg_json_get(root, "usage"), "output_tokens",
                     &out->usage.completion_tokens);
    out->usage.total_tokens =
        out->usage.prompt_tokens >= 0 && out->usage.completion_tokens >= 0
        ? out->usage.prompt_tokens + out->usage.completion_tokens : -1;

    finish = cg_anthropic_finish_reason(cg_json_get_string(root,
                                                           "stop_reason"));

    g = cg_json_gen_new();
    if (g == NULL) {
        goto nomem;
    }

    if (cg_completion_gen(g, completion_id, created, req->model_requested,
                          text.data, finish, &out->usage) != 0)
    {
        yajl_gen_free(g);
        goto nomem;
    }

    out->body = cg_json_gen_finish(g, &out->body_len);
    out->reply = text.data;

    if (out->body == NULL) {
        cg_error_set(err, 500, "server_error", "out of memory while "
                     "translating the answer of provider \"anthropic\"");
        return -1;
    }

    return 0;

nomem:

    cg_buf_free(&text);
    cg_error_set(err, 500, "server_error", "out of memory while translating "
                 "the answer of provider \"anthropic\"");
    return -1;
}


const char *
cg_anthropic_finish_reason(const char *stop_reason)
{
    if (stop_reason == NULL) {
        return NULL;
    }

    if (strcmp(stop_reason, "max_tokens") == 0) {
        return "length";
    }

    if (strcmp(stop_reason, "tool_use") == 0) {
        return "tool_calls";
    }

    if (strcmp(stop_reason, "refusal") == 0) {
        return "content_filter";
    }

    /* end_turn, stop_sequence, pause_turn and reasons added later. */
    return "stop";
}
