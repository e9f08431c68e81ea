#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "provider.h"


static int cg_ollama_messages(const cg_chat_request_t *req, yajl_gen g,
    cg_error_t *err);
static int cg_ollama_message(yajl_gen g, yajl_val msg, size_t i,
    cg_error_t *err);
static int cg_ollama_options(const cg_chat_request_t *req, yajl_gen g,
    cg_error_t *err);


/*
 * Writes an /api/chat body: stream is always explicit because Ollama
 * streams by default, and the sampling parameters go into "options".
 */
int
cg_ollama_build_body(const cg_chat_request_t *req, yajl_gen g,
    cg_error_t *err)
{
    if (yajl_gen_map_open(g)
        || cg_json_gen_str(g, "model") || cg_json_gen_str(g, req->model)
        || cg_json_gen_str(g, "stream") || yajl_gen_bool(g, req->stream))
    {
        goto nomem;
    }

    if (cg_ollama_messages(req, g, err) != 0
        || cg_ollama_options(req, g, err) != 0)
    {
        return -1;
    }

    if (yajl_gen_map_close(g)) {
        goto nomem;
    }

    return 0;

nomem:

    cg_error_set(err, 500, "server_error", "cannot write the request body "
                 "for provider \"ollama\"");
    return -1;
}


static int
cg_ollama_messages(const cg_chat_request_t *req, yajl_gen g, cg_error_t *err)
{
    yajl_val  messages = cg_json_get(req->root, "messages");
    size_t    i;

    if (cg_json_gen_str(g, "messages") || yajl_gen_array_open(g)) {
        return -1;
    }

    for (i = 0; i < messages->u.array.len; i++) {
        if (cg_ollama_message(g, messages->u.array.values[i], i, err) != 0) {
            return -1;
        }
    }

    return yajl_gen_array_close(g) ? -1 : 0;
}


/* Writes one message; an array of text parts becomes one string. */
static int
cg_ollama_message(yajl_gen g, yajl_val msg, size_t i, cg_error_t *err)
{
    const char  *role = cg_json_get_string(msg, "role");
    const char  *type, *s;
    yajl_val     content = cg_json_get(msg, "content");
    cg_buf_t     text = { 0 };
    size_t       p;
    int          rc;

    /* NOTE: assistant tool_calls are not translated to Ollama's form yet. */
    if (cg_json_get(msg, "tool_calls") != NULL) {
        cg_error_set(err, 400, "invalid_request_error",
                     "invalid messages[%zu]: tool calls are not supported "
                     "for provider \"ollama\"", i);
        cg_error_param(err, "messages[%zu].tool_calls", i);
        return -1;
    }

    if (strcmp(role, "developer") == 0) {
        role = "system";
    }

    for (p = 0; YAJL_IS_ARRAY(content) && p < content->u.array.len; p++) {
        type = cg_json_get_string(content->u.array.values[p], "type");
        s = cg_json_get_string(content->u.array.values[p], "text");

        /* NOTE: image parts are not translated to Ollama's "images". */
        if (strcmp(type, "text") != 0 || s == NULL) {
            cg_error_set(err, 400, "invalid_request_error",
                         "invalid messages[%zu].content[%zu]: only text parts "
                         "are supported for provider \"ollama\"", i, p);
            cg_error_param(err, "messages[%zu].content[%zu]", i, p);
            cg_buf_free(&text);
            return -1;
        }

        if ((p > 0 && cg_buf_append_str(&text, "\n") != 0)
            || cg_buf_append_str(&text, s) != 0)
        {
            cg_buf_free(&text);
            return -1;
        }
    }

    if (YAJL_IS_STRING(content)) {
        s = content->u.string;
    } else {
        s = text.data ? text.data : "";
    }

    rc = yajl_gen_map_open(g)
         || cg_json_gen_str(g, "role") || cg_json_gen_str(g, role)
         || cg_json_gen_str(g, "content") || cg_json_gen_str(g, s)
         || yajl_gen_map_close(g);

    cg_buf_free(&text);
    return rc ? -1 : 0;
}


static int
cg_ollama_options(const cg_chat_request_t *req, yajl_gen g, cg_error_t *err)
{
    const char  *key = "max_tokens";
    yajl_val     v;

    v = cg_json_get(req->root, key);
    if (v == NULL || YAJL_IS_NULL(v)) {
        key = "max_completion_tokens";
        v = cg_json_get(req->root, key);
    }

    if (v != NULL && !YAJL_IS_NULL(v) && !YAJL_IS_INTEGER(v)) {
        cg_error_set(err, 400, "invalid_request_error", "invalid %s: "
                     "expected an integer", key);
        err->param = key;
        return -1;
    }

    if (cg_json_gen_str(g, "options") || yajl_gen_map_open(g)) {
        return -1;
    }

    if (cg_provider_gen_number(g, req->root, "temperature", "temperature", err)
        || cg_provider_gen_number(g, req->root, "top_p", "top_p", err)
        || cg_provider_gen_number(g, req->root, "seed", "seed", err)
        || cg_provider_gen_number(g, req->root, key, "num_predict", err)
        || cg_provider_gen_stop(g, req->root, "stop", err))
    {
        return -1;
    }

    return yajl_gen_map_close(g) ? -1 : 0;
}


int
cg_ollama_parse_completion(const cg_chat_request_t *req, yajl_val root,
    const char *completion_id, long created, cg_completion_t *out,
    cg_error_t *err)
{
    const char  *text, *finish;
    yajl_val     done;
    yajl_gen     g;

    text = cg_json_get_string(cg_json_get(root, "message"), "content");
    if (text == NULL) {
        cg_provider_invalid_answer(err, req->provider,
                                   "no message.content string");
        return -1;
    }

    done = cg_json_get(root, "done");
    finish = cg_ollama_finish_reason(cg_json_get_string(root, "done_reason"),
                                     done == NULL || YAJL_IS_TRUE(done));

    out->usage.prompt_tokens = -1;
    out->usage.completion_tokens = -1;
    cg_json_get_long(root, "prompt_eval_count", &out->usage.prompt_tokens);
    cg_json_get_long(root, "eval_count", &out->usage.completion_tokens);
    out->usage.total_tokens =
        out->usage.prompt_tokens >= 0 && out->usage.completion_tokens >= 0
        ? out->usage.prompt_tokens + out->usage.completion_tokens : -1;

    g = cg_json_gen_new();
    if (g == NULL) {
        goto nomem;
    }

    if (cg_completion_gen(g, completion_id, created, req->model_requested,
                          text, finish, &out->usage) != 0)
    {
        yajl_gen_free(g);
        goto nomem;
    }

    out->body = cg_json_gen_finish(g, &out->body_len);
    out->reply = strdup(text);

    if (out->body == NULL || out->reply == NULL) {
        goto nomem;
    }

    return 0;

nomem:

    cg_error_set(err, 500, "server_error", "out of memory while translating "
                 "the answer of provider \"ollama\"");
    return -1;
}


/* done_reason "stop" and "length" match OpenAI; "load" and others end as stop. */
const char *
cg_ollama_finish_reason(const char *done_reason, int done)
{
    if (done_reason != NULL && strcmp(done_reason, "length") == 0) {
        return "length";
    }

    return done ? "stop" : NULL;
}
