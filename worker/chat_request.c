/*
 * Parsing and checks of the chat request bodies: POST /v1/chat/completions
 * in OpenAI's schema and the /chat form.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "provider.h"


#define CG_MODEL_MAX_LEN     256
#define CG_MESSAGES_MAX      10000


static yajl_val cg_request_root(const char *body, size_t len, cg_error_t *err);
static int cg_request_model(yajl_val root, cg_error_t *err, const char **model);
static int cg_request_split_model(cg_chat_request_t *req, const char *model,
    cg_provider_id_t default_provider, cg_error_t *err);
static int cg_request_messages(yajl_val root, cg_error_t *err);
static int cg_request_message(yajl_val msg, size_t i, cg_error_t *err);
static int cg_request_content(yajl_val msg, size_t i, const char *role,
    cg_error_t *err);
static int cg_request_stream(yajl_val root, int *stream, cg_error_t *err);
static void cg_request_remove(yajl_val obj, const char *key);
static void cg_bad_request(cg_error_t *err, const char *param,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));


int
cg_chat_request_parse(const char *body, size_t len,
    cg_provider_id_t default_provider, cg_chat_request_t *req, cg_error_t *err)
{
    const char  *model;

    memset(req, 0, sizeof(*req));

    req->root = cg_request_root(body, len, err);
    if (req->root == NULL) {
        return -1;
    }

    if (cg_request_model(req->root, err, &model) != 0
        || cg_request_split_model(req, model, default_provider, err) != 0
        || cg_request_messages(req->root, err) != 0
        || cg_request_stream(req->root, &req->stream, err) != 0)
    {
        goto fail;
    }

    req->body = body;
    req->body_len = len;

    return 0;

fail:

    cg_chat_request_free(req);
    return -1;
}


int
cg_chat_form_parse(const char *body, size_t len,
    cg_provider_id_t default_provider, cg_chat_request_t *req,
    char *key_id, size_t key_id_size, cg_error_t *err)
{
    yajl_val     v;
    const char  *model, *prefix_end;
    size_t       n;

    memset(req, 0, sizeof(*req));
    req->provider = default_provider;
    if (key_id_size) {
        key_id[0] = '\0';
    }

    req->root = cg_request_root(body, len, err);
    if (req->root == NULL) {
        return -1;
    }

    v = cg_json_get(req->root, "provider");
    if (v != NULL) {
        if (!YAJL_IS_STRING(v)
            || cg_provider_by_name(v->u.string, strlen(v->u.string),
                                   &req->provider) != 0)
        {
            cg_bad_request(err, "provider", "invalid provider: expected one "
                           "of \"openai\", \"openrouter\", \"anthropic\", "
                           "\"ollama\"");
            goto fail;
        }
    }

    v = cg_json_get(req->root, "key_id");
    if (v != NULL) {
        if (!YAJL_IS_STRING(v) || strlen(v->u.string) >= key_id_size) {
            cg_bad_request(err, "key_id", "invalid key_id: expected a string "
                           "of at most %zu bytes",
                           key_id_size ? key_id_size - 1 : 0);
            goto fail;
        }
        memcpy(key_id, v->u.string, strlen(v->u.string) + 1);
    }

    if (cg_request_model(req->root, err, &model) != 0) {
        goto fail;
    }

    /*
     * A prefix naming the chosen provider is dropped; any other slash is part
     * of the model name, as in OpenRouter's "meta-llama/llama-3".
     */
    prefix_end = strchr(model, '/');
    n = strlen(cg_provider_name(req->provider));
    if (prefix_end != NULL && (size_t) (prefix_end - model) == n
        && memcmp(model, cg_provider_name(req->provider), n) == 0)
    {
        model = prefix_end + 1;
    }

    if (*model == '\0') {
        cg_bad_request(err, "model", "invalid model: no model name after the "
                       "provider prefix");
        goto fail;
    }

    req->model = strdup(model);
    req->model_requested = strdup(cg_json_get_string(req->root, "model"));
    if (req->model == NULL || req->model_requested == NULL) {
        cg_error_set(err, 500, "server_error", "out of memory");
        goto fail;
    }

    if (cg_request_messages(req->root, err) != 0
        || cg_request_stream(req->root, &req->stream, err) != 0)
    {
        goto fail;
    }

    /* The form's own fields must not reach the provider; "stream" may. */
    cg_request_remove(req->root, "provider");
    cg_request_remove(req->root, "key_id");

    return 0;

fail:

    cg_chat_request_free(req);
    return -1;
}


void
cg_chat_request_free(cg_chat_request_t *req)
{
    yajl_tree_free(req->root);
    free(req->model);
    free(req->model_requested);

    req->root = NULL;
    req->model = NULL;
    req->model_requested = NULL;
}


static yajl_val
cg_request_root(const char *body, size_t len, cg_error_t *err)
{
    char      cause[256];
    yajl_val  root;

    /*
     * A repeated top-level member is rejected: only one copy would be
     * checked (the model against a client token's allow-list, say), and a
     * provider may read another.
     */
    root = cg_json_parse_request(body, len,
                                 CG_JSON_NO_NUL | CG_JSON_NO_DUPLICATES,
                                 cause, sizeof(cause));
    if (root == NULL) {
        cg_bad_request(err, NULL, "invalid JSON: %s", cause);
        return NULL;
    }

    if (!YAJL_IS_OBJECT(root)) {
        cg_bad_request(err, NULL, "invalid request body: expected a JSON "
                       "object");
        yajl_tree_free(root);
        return NULL;
    }

    return root;
}


static int
cg_request_model(yajl_val root, cg_error_t *err, const char **model)
{
    yajl_val  v = cg_json_get(root, "model");

    if (v == NULL) {
        cg_bad_request(err, "model", "missing model");
        return -1;
    }

    if (!YAJL_IS_STRING(v) || v->u.string[0] == '\0') {
        cg_bad_request(err, "model", "invalid model: expected a non-empty "
                       "string");
        return -1;
    }

    if (strlen(v->u.string) > CG_MODEL_MAX_LEN) {
        cg_bad_request(err, "model", "invalid model: longer than %d bytes",
                       CG_MODEL_MAX_LEN);
        return -1;
    }

    *model = v->u.string;
    return 0;
}


/*
 * Takes the provider from a known prefix of model ("anthropic/claude-...");
 * an unknown prefix belongs to the model name and selects default_provider.
 */
static int
cg_request_split_model(cg_chat_request_t *req, const char *model,
    cg_provider_id_t default_provider, cg_error_t *err)
{
    const char        *slash, *upstream = model;
    cg_provider_id_t   id;

    req->provider = default_provider;

    slash = strchr(model, '/');
    if (slash != NULL
        && cg_provider_by_name(model, (size_t) (slash - model), &id) == 0)
    {
        req->provider = id;
        upstream = slash + 1;
    }

    if (*upstream == '\0') {
        cg_bad_request(err, "model", "invalid model \"%s\": no model name "
                       "after the provider prefix", model);
        return -1;
    }

    req->model = strdup(upstream);
    req->model_requested = strdup(model);
    if (req->model == NULL || req->model_requested == NULL) {
        cg_error_set(err, 500, "server_error", "out of memory");
        return -1;
    }

    return 0;
}


static int
cg_request_messages(yajl_val root, cg_error_t *err)
{
    yajl_val  v = cg_json_get(root, "messages");
    size_t    i;

    if (v == NULL) {
        cg_bad_request(err, "messages", "missing messages");
        return -1;
    }

    if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0) {
        cg_bad_request(err, "messages", "invalid messages: expected a "
                       "non-empty array");
        return -1;
    }

    if (v->u.array.len > CG_MESSAGES_MAX) {
        cg_bad_request(err, "messages", "invalid messages: %zu entries, at "
                       "most %d allowed", v->u.array.len, CG_MESSAGES_MAX);
        return -1;
    }

    for (i = 0; i < v->u.array.len; i++) {
        if (cg_request_message(v->u.array.values[i], i, err) != 0) {
            return -1;
        }
    }

    return 0;
}


static int
cg_request_message(yajl_val msg, size_t i, cg_error_t *err)
{
    static const char  *roles[] = {
        "system", "developer", "user", "assistant", "tool"
    };

    const char  *role;
    size_t       r;

    if (!YAJL_IS_OBJECT(msg)) {
        cg_bad_request(err, NULL, "invalid messages[%zu]: expected an object",
                       i);
        cg_error_param(err, "messages[%zu]", i);
        return -1;
    }

    role = cg_json_get_string(msg, "role");

    for (r = 0; role != NULL && r < sizeof(roles) / sizeof(roles[0]); r++) {
        if (strcmp(role, roles[r]) == 0) {
            return cg_request_content(msg, i, role, err);
        }
    }

    cg_bad_request(err, NULL, "invalid messages[%zu].role: expected one of "
                   "system, developer, user, assistant, tool", i);
    cg_error_param(err, "messages[%zu].role", i);
    return -1;
}


/*
 * content is a string, an array of parts (objects with a string "type"), or
 * null (or absent) for an assistant message that carries tool_calls.
 */
static int
cg_request_content(yajl_val msg, size_t i, const char *role, cg_error_t *err)
{
    yajl_val  content = cg_json_get(msg, "content");
    yajl_val  calls, part;
    size_t    p;

    if (YAJL_IS_STRING(content)) {
        return 0;
    }

    if (content == NULL || YAJL_IS_NULL(content)) {
        calls = cg_json_get(msg, "tool_calls");

        if (strcmp(role, "assistant") == 0 && YAJL_IS_ARRAY(calls)
            && calls->u.array.len > 0)
        {
            return 0;
        }

        cg_bad_request(err, NULL, "invalid messages[%zu].content: null or "
                       "missing, which only an assistant message with "
                       "tool_calls may have", i);
        cg_error_param(err, "messages[%zu].content", i);
        return -1;
    }

    if (!YAJL_IS_ARRAY(content)) {
        cg_bad_request(err, NULL, "invalid messages[%zu].content: expected a "
                       "string, an array of parts or null", i);
        cg_error_param(err, "messages[%zu].content", i);
        return -1;
    }

    for (p = 0; p < content->u.array.len; p++) {
        part = content->u.array.values[p];

        if (cg_json_get_string(part, "type") == NULL) {
            cg_bad_request(err, NULL, "invalid messages[%zu].content[%zu]: "
                           "expected an object with a string \"type\"", i, p);
            cg_error_param(err, "messages[%zu].content[%zu]", i, p);
            return -1;
        }
    }

    return 0;
}


static int
cg_request_stream(yajl_val root, int *stream, cg_error_t *err)
{
    yajl_val  v = cg_json_get(root, "stream");

    *stream = 0;

    if (v == NULL || YAJL_IS_NULL(v)) {
        return 0;
    }

    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
        cg_bad_request(err, "stream", "invalid stream: expected a boolean");
        return -1;
    }

    *stream = YAJL_IS_TRUE(v);
    return 0;
}


/* Removes every member key from obj. */
static void
cg_request_remove(yajl_val obj, const char *key)
{
    size_t  i = 0, rest;

    while (i < obj->u.object.len) {
        if (strcmp(obj->u.object.keys[i], key) != 0) {
            i++;
            continue;
        }

        free((char *) obj->u.object.keys[i]);
        yajl_tree_free(obj->u.object.values[i]);

        rest = obj->u.object.len - i - 1;
        memmove(&obj->u.object.keys[i], &obj->u.object.keys[i + 1],
                rest * sizeof(obj->u.object.keys[0]));
        memmove(&obj->u.object.values[i], &obj->u.object.values[i + 1],
                rest * sizeof(obj->u.object.values[0]));
        obj->u.object.len--;
    }
}


static void
cg_bad_request(cg_error_t *err, const char *param, const char *fmt, ...)
{
    va_list  ap;
    char     msg[sizeof(err->message)];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    cg_error_set(err, 400, "invalid_request_error", "%s", msg);
    err->param = param;
}
