#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "provider.h"


static int cg_openai_gen_object(yajl_gen g, yajl_val root, const char *model,
    const char *missing_id);
static int cg_openai_keys_unique(yajl_val obj);
static char *cg_openai_copy(const char *body, size_t len, size_t *out_len);


/*
 * Writes the client's body as it came, with model set to the upstream name.
 * A stream gets stream_options.include_usage so that the last chunk carries
 * the token counts, unless the client chose stream_options itself.
 */
int
cg_openai_build_body(const cg_chat_request_t *req, yajl_gen g,
    cg_error_t *err)
{
    yajl_val  root = req->root;
    size_t    i;
    int       bad = 0;

    bad |= yajl_gen_map_open(g) != yajl_gen_status_ok;

    for (i = 0; !bad && i < root->u.object.len; i++) {
        const char  *key = root->u.object.keys[i];

        bad |= cg_json_gen_str(g, key);

        if (strcmp(key, "model") == 0) {
            bad |= cg_json_gen_str(g, req->model);
        } else {
            bad |= cg_json_gen_value(g, root->u.object.values[i]);
        }
    }

    if (req->stream && cg_json_get(root, "stream_options") == NULL) {
        bad |= cg_json_gen_str(g, "stream_options")
               || yajl_gen_map_open(g)
               || cg_json_gen_str(g, "include_usage")
               || yajl_gen_bool(g, 1)
               || yajl_gen_map_close(g);
    }

    bad |= yajl_gen_map_close(g) != yajl_gen_status_ok;

    if (bad) {
        cg_error_set(err, 500, "server_error", "cannot write the request "
                     "body for provider \"%s\"", cg_provider_name(req->provider));
        return -1;
    }

    return 0;
}


/*
 * Returns 1 when cg_openai_build_body() would write the client's JSON with
 * the same meaning, so the body can be sent as it came: same model name, no
 * stream_options to add, and no repeated top-level key. With a repeated key
 * the provider might read another "model" than the one checked here.
 */
int
cg_openai_body_unchanged(const cg_chat_request_t *req)
{
    if (req->body == NULL
        || req->provider == CG_PROVIDER_ANTHROPIC
        || req->provider == CG_PROVIDER_OLLAMA
        || strcmp(req->model, req->model_requested) != 0)
    {
        return 0;
    }

    if (req->stream && cg_json_get(req->root, "stream_options") == NULL) {
        return 0;
    }

    return cg_openai_keys_unique(req->root);
}


/*
 * Keeps the provider's chat.completion as it is, with model set to the name
 * the client requested; reads the first choice's text and the usage.
 */
int
cg_openai_parse_completion(const cg_chat_request_t *req, const char *body,
    size_t len, yajl_val root, const char *completion_id,
    cg_completion_t *out, cg_error_t *err)
{
    yajl_val     choices, message, content;
    yajl_gen     g;
    const char  *text = "";

    choices = cg_json_get(root, "choices");
    if (!YAJL_IS_ARRAY(choices) || choices->u.array.len == 0) {
        cg_provider_invalid_answer(err, req->provider, "no choices");
        return -1;
    }

    message = cg_json_get(choices->u.array.values[0], "message");
    content = cg_json_get(message, "content");

    if (!YAJL_IS_OBJECT(message)
        || (content != NULL && !YAJL_IS_STRING(content)
            && !YAJL_IS_NULL(content)))
    {
        cg_provider_invalid_answer(err, req->provider,
                                   "choices[0].message.content is not text");
        return -1;
    }

    if (YAJL_IS_STRING(content)) {
        text = content->u.string;
    }

    cg_openai_usage(cg_json_get(root, "usage"), &out->usage);

    /*
     * Nothing to rewrite: the answer goes out byte for byte.
     * NOTE: OpenAI returns a dated model name for an alias such as
     * "gpt-4o-mini", so its completions still take the re-serializing branch.
     */
    g = NULL;
    if (cg_json_get(root, "id") != NULL
        && (content = cg_json_get(root, "model")) != NULL
        && YAJL_IS_STRING(content)
        && strcmp(content->u.string, req->model_requested) == 0
        && cg_openai_keys_unique(root))
    {
        out->body = cg_openai_copy(body, len, &out->body_len);

    } else {
        g = cg_json_gen_new();
        if (g == NULL
            || cg_openai_gen_object(g, root, req->model_requested,
                                    completion_id) != 0)
        {
            goto nomem;
        }

        out->body = cg_json_gen_finish(g, &out->body_len);
        g = NULL;
    }

    out->reply = strdup(text);

    if (out->body == NULL || out->reply == NULL) {
        goto nomem;
    }

    return 0;

nomem:

    if (g) {
        yajl_gen_free(g);
    }
    cg_error_set(err, 500, "server_error", "out of memory while translating "
                 "the answer of provider \"%s\"",
                 cg_provider_name(req->provider));
    return -1;
}


/* Writes root with model replaced; adds "id" when the provider sent none. */
static int
cg_openai_gen_object(yajl_gen g, yajl_val root, const char *model,
    const char *missing_id)
{
    size_t  i;
    int     bad = 0;

    bad |= yajl_gen_map_open(g) != yajl_gen_status_ok;

    if (cg_json_get(root, "id") == NULL) {
        bad |= cg_json_gen_str(g, "id") || cg_json_gen_str(g, missing_id);
    }

    for (i = 0; !bad && i < root->u.object.len; i++) {
        const char  *key = root->u.object.keys[i];

        bad |= cg_json_gen_str(g, key);

        if (strcmp(key, "model") == 0) {
            bad |= cg_json_gen_str(g, model);
        } else {
            bad |= cg_json_gen_value(g, root->u.object.values[i]);
        }
    }

    bad |= yajl_gen_map_close(g) != yajl_gen_status_ok;

    return bad ? -1 : 0;
}


void
cg_openai_usage(yajl_val usage, cg_usage_t *out)
{
    out->prompt_tokens = -1;
    out->completion_tokens = -1;
    out->total_tokens = -1;

    cg_json_get_long(usage, "prompt_tokens", &out->prompt_tokens);
    cg_json_get_long(usage, "completion_tokens", &out->completion_tokens);

    if (cg_json_get_long(usage, "total_tokens", &out->total_tokens) != 0
        && out->prompt_tokens >= 0 && out->completion_tokens >= 0)
    {
        out->total_tokens = out->prompt_tokens + out->completion_tokens;
    }
}


/* Returns 1 when no key of the object obj appears twice, 0 otherwise. */
static int
cg_openai_keys_unique(yajl_val obj)
{
    size_t  i, j;

    for (i = 0; i < obj->u.object.len; i++) {
        for (j = i + 1; j < obj->u.object.len; j++) {
            if (strcmp(obj->u.object.keys[i], obj->u.object.keys[j]) == 0) {
                return 0;
            }
        }
    }

    return 1;
}


/* Copies body with a NUL after it; malloc'ed, NULL when out of memory. */
static char *
cg_openai_copy(const char *body, size_t len, size_t *out_len)
{
    char  *copy;

    copy = malloc(len + 1);
    if (copy == NULL) {
        return NULL;
    }

    memcpy(copy, body, len);
    copy[len] = '\0';
    *out_len = len;

    return copy;
}
