#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "provider.h"


#define CG_MODEL_MAX_LEN     256
#define CG_MESSAGES_MAX      10000
#define CG_ERROR_MSG_MAX     300     /* bytes of a provider's error message kept */


static const char  *cg_provider_names[CG_PROVIDER_COUNT] = {
    "openai", "openrouter", "anthropic", "ollama"
};

static const char  *cg_provider_paths[CG_PROVIDER_COUNT] = {
    "/chat/completions", "/chat/completions", "/messages", "/api/chat"
};


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
static char *cg_provider_url(const char *base_url, cg_provider_id_t id);
static struct curl_slist *cg_provider_headers(cg_provider_id_t id,
    const char *api_key);
static int cg_header_value_ok(const char *value);
static const char *cg_error_body_message(yajl_val root);


const char *
cg_provider_name(cg_provider_id_t id)
{
    return (unsigned) id < CG_PROVIDER_COUNT ? cg_provider_names[id] : "unknown";
}


int
cg_provider_by_name(const char *name, size_t len, cg_provider_id_t *id)
{
    int  i;

    for (i = 0; i < CG_PROVIDER_COUNT; i++) {
        if (strlen(cg_provider_names[i]) == len
            && memcmp(cg_provider_names[i], name, len) == 0)
        {
            *id = (cg_provider_id_t) i;
            return 0;
        }
    }

    return -1;
}


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


int
cg_provider_build_call(const cg_chat_request_t *req, const char *base_url,
    const char *api_key, cg_provider_call_t *call, cg_error_t *err)
{
    const char  *name = cg_provider_name(req->provider);
    yajl_gen     g = NULL;
    int          rc;

    memset(call, 0, sizeof(*call));

    if ((unsigned) req->provider >= CG_PROVIDER_COUNT) {
        cg_error_set(err, 500, "server_error", "unknown provider %d",
                     (int) req->provider);
        return -1;
    }

    if (base_url == NULL || base_url[0] == '\0') {
        cg_error_set(err, 500, "server_error", "no base URL configured for "
                     "provider \"%s\"", name);
        return -1;
    }

    /* A line break in the key would start a header of its own. */
    if (api_key == NULL || !cg_header_value_ok(api_key)) {
        cg_error_set(err, 500, "server_error", "the key for provider \"%s\" "
                     "is missing or contains control characters", name);
        return -1;
    }

    if (cg_openai_body_unchanged(req)) {
        call->body = malloc(req->body_len + 1);
        if (call->body == NULL) {
            goto nomem;
        }
        memcpy(call->body, req->body, req->body_len);
        call->body[req->body_len] = '\0';
        call->body_len = req->body_len;
        goto headers;
    }

    g = cg_json_gen_new();
    if (g == NULL) {
        goto nomem;
    }

    switch (req->provider) {
    case CG_PROVIDER_ANTHROPIC:
        rc = cg_anthropic_build_body(req, g, err);
        break;
    case CG_PROVIDER_OLLAMA:
        rc = cg_ollama_build_body(req, g, err);
        break;
    default:
        rc = cg_openai_build_body(req, g, err);
        break;
    }

    if (rc != 0) {
        yajl_gen_free(g);
        return -1;
    }

    call->body = cg_json_gen_finish(g, &call->body_len);

headers:

    call->url = cg_provider_url(base_url, req->provider);
    call->headers = cg_provider_headers(req->provider, api_key);

    if (call->body == NULL || call->url == NULL || call->headers == NULL) {
        goto nomem;
    }

    return 0;

nomem:

    cg_provider_call_free(call);
    cg_error_set(err, 500, "server_error", "out of memory while building "
                 "the call to provider \"%s\"", name);
    return -1;
}


void
cg_provider_call_free(cg_provider_call_t *call)
{
    free(call->url);
    curl_slist_free_all(call->headers);

    /* The body contains the conversation: wipe it before it returns to malloc. */
    if (call->body) {
        explicit_bzero(call->body, call->body_len);
        free(call->body);
    }

    memset(call, 0, sizeof(*call));
}


/* Joins base_url and the provider's path with exactly one slash between. */
static char *
cg_provider_url(const char *base_url, cg_provider_id_t id)
{
    const char  *path = cg_provider_paths[id];
    size_t       n = strlen(base_url);
    char        *url;

    while (n > 0 && base_url[n - 1] == '/') {
        n--;
    }

    url = malloc(n + strlen(path) + 1);
    if (url == NULL) {
        return NULL;
    }

    memcpy(url, base_url, n);
    strcpy(url + n, path);

    return url;
}


static struct curl_slist *
cg_provider_headers(cg_provider_id_t id, const char *api_key)
{
    struct curl_slist  *list = NULL, *next;
    char                line[64 + 4096];
    int                 n;

    /* "Expect:" stops libcurl from waiting for 100 Continue on large bodies. */
    list = curl_slist_append(list, "Content-Type: application/json");
    if (list == NULL || (next = curl_slist_append(list, "Expect:")) == NULL) {
        goto fail;
    }

    if (id == CG_PROVIDER_ANTHROPIC) {
        n = snprintf(line, sizeof(line), "x-api-key: %s", api_key);
        if ((next = curl_slist_append(list, "anthropic-version: 2023-06-01"))
            == NULL)
        {
            goto fail;
        }

    } else if (id == CG_PROVIDER_OLLAMA && api_key[0] == '\0') {
        n = 0;

    } else {
        n = snprintf(line, sizeof(line), "Authorization: Bearer %s", api_key);
    }

    if (n < 0 || (size_t) n >= sizeof(line)) {
        goto fail;
    }

    if (n > 0) {
        next = curl_slist_append(list, line);
        explicit_bzero(line, sizeof(line));
        if (next == NULL) {
            goto fail;
        }
    }

    return list;

fail:

    explicit_bzero(line, sizeof(line));
    curl_slist_free_all(list);
    return NULL;
}


static int
cg_header_value_ok(const char *value)
{
    const unsigned char  *p;

    for (p = (const unsigned char *) value; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return 0;
        }
    }

    return 1;
}


int
cg_provider_parse_completion(const cg_chat_request_t *req,
    const char *body, size_t len, const char *completion_id, long created,
    cg_completion_t *out, cg_error_t *err)
{
    char      cause[256];
    yajl_val  root;
    int       rc;

    memset(out, 0, sizeof(*out));
    out->usage.prompt_tokens = -1;
    out->usage.completion_tokens = -1;
    out->usage.total_tokens = -1;

    /* The common case: an OpenAI-compatible response kept as it came. */
    if (req->provider != CG_PROVIDER_ANTHROPIC
        && req->provider != CG_PROVIDER_OLLAMA
        && cg_openai_pass_completion(req, body, len, out))
    {
        return 0;
    }

    root = cg_json_parse(body, len, cause, sizeof(cause));
    if (root == NULL) {
        char  what[300];

        snprintf(what, sizeof(what), "invalid JSON: %s", cause);
        cg_provider_invalid_answer(err, req->provider, what);
        return -1;
    }

    switch (req->provider) {
    case CG_PROVIDER_ANTHROPIC:
        rc = cg_anthropic_parse_completion(req, root, completion_id, created,
                                           out, err);
        break;
    case CG_PROVIDER_OLLAMA:
        rc = cg_ollama_parse_completion(req, root, completion_id, created,
                                        out, err);
        break;
    default:
        rc = cg_openai_parse_completion(req, body, len, root, completion_id,
                                        out, err);
        break;
    }

    yajl_tree_free(root);

    if (rc != 0) {
        cg_completion_free(out);
    }

    return rc;
}


void
cg_completion_free(cg_completion_t *c)
{
    free(c->body);
    free(c->reply);
    c->body = NULL;
    c->reply = NULL;
    c->body_len = 0;
}


void
cg_provider_invalid_answer(cg_error_t *err, cg_provider_id_t id,
    const char *cause)
{
    cg_error_set(err, 502, "upstream_error",
                 "provider \"%s\" sent an invalid answer: %s",
                 cg_provider_name(id), cause);
}


int
cg_completion_gen(yajl_gen g, const char *completion_id, long created,
    const char *model, const char *text, const char *finish_reason,
    const cg_usage_t *usage)
{
    int  bad;

    bad = yajl_gen_map_open(g)
          || cg_json_gen_str(g, "id") || cg_json_gen_str(g, completion_id)
          || cg_json_gen_str(g, "object")
          || cg_json_gen_str(g, "chat.completion")
          || cg_json_gen_str(g, "created") || yajl_gen_integer(g, created)
          || cg_json_gen_str(g, "model") || cg_json_gen_str(g, model)
          || cg_json_gen_str(g, "choices") || yajl_gen_array_open(g)
          || yajl_gen_map_open(g)
          || cg_json_gen_str(g, "index") || yajl_gen_integer(g, 0)
          || cg_json_gen_str(g, "message") || yajl_gen_map_open(g)
          || cg_json_gen_str(g, "role") || cg_json_gen_str(g, "assistant")
          || cg_json_gen_str(g, "content") || cg_json_gen_str(g, text)
          || yajl_gen_map_close(g)
          || cg_json_gen_str(g, "finish_reason")
          || (finish_reason ? cg_json_gen_str(g, finish_reason)
                            : (int) yajl_gen_null(g))
          || yajl_gen_map_close(g) || yajl_gen_array_close(g)
          || cg_json_gen_str(g, "usage") || yajl_gen_map_open(g)
          || cg_json_gen_str(g, "prompt_tokens")
          || cg_json_gen_count(g, usage->prompt_tokens)
          || cg_json_gen_str(g, "completion_tokens")
          || cg_json_gen_count(g, usage->completion_tokens)
          || cg_json_gen_str(g, "total_tokens")
          || cg_json_gen_count(g, usage->total_tokens)
          || yajl_gen_map_close(g) || yajl_gen_map_close(g);

    return bad ? -1 : 0;
}


void
cg_provider_error_message(cg_provider_id_t id, long status,
    const char *body, size_t len, char *msg, size_t msg_size)
{
    char         cause[128], *text;
    const char  *found = NULL;
    yajl_val     root = NULL;
    size_t       n, text_size;

    (void) id;

    if (msg_size == 0) {
        return;
    }

    if (body != NULL && len > 0) {
        root = cg_json_parse(body, len, cause, sizeof(cause));
        found = cg_error_body_message(root);
    }

    if (found == NULL || found[0] == '\0') {
        snprintf(msg, msg_size, "HTTP %ld", status);
        yajl_tree_free(root);
        return;
    }

    /*
     * Redact the whole message first, so a cut cannot split a key; the spare
     * room lets short keys become the longer "[redacted]" without cutting.
     */
    text_size = strlen(found) + 256;
    text = malloc(text_size);

    if (text == NULL) {
        yajl_tree_free(root);
        snprintf(msg, msg_size, "HTTP %ld", status);
        return;
    }

    memcpy(text, found, strlen(found) + 1);
    yajl_tree_free(root);

    cg_redact(text, text_size, NULL);

    n = strlen(text);
    n = cg_utf8_cut(text, n, CG_ERROR_MSG_MAX);
    n = cg_utf8_cut(text, n, msg_size - 1);
    memcpy(msg, text, n);
    msg[n] = '\0';

    free(text);
}


/*
 * Finds the message in the error bodies the adapters meet: OpenAI and
 * Anthropic {"error":{"message":...}}, Ollama {"error":"..."}, and a bare
 * {"message":"..."} that some OpenAI-compatible servers send.
 */
static const char *
cg_error_body_message(yajl_val root)
{
    yajl_val     error = cg_json_get(root, "error");
    const char  *s;

    s = cg_json_get_string(error, "message");
    if (s != NULL) {
        return s;
    }

    if (YAJL_IS_STRING(error)) {
        return error->u.string;
    }

    return cg_json_get_string(root, "message");
}


/*
 * Copies the number root[key] into the object being written, as member "as".
 * Absent and null are skipped; any other type is a 400.
 */
int
cg_provider_gen_number(yajl_gen g, yajl_val root, const char *key,
    const char *as, cg_error_t *err)
{
    yajl_val  v = cg_json_get(root, key);

    if (v == NULL || YAJL_IS_NULL(v)) {
        return 0;
    }

    if (!YAJL_IS_NUMBER(v)) {
        cg_error_set(err, 400, "invalid_request_error", "invalid %s: "
                     "expected a number", key);
        err->param = key;
        return -1;
    }

    return cg_json_gen_str(g, as) || cg_json_gen_value(g, v) ? -1 : 0;
}


/* Writes "stop" (a string or an array of strings) as an array named "as". */
int
cg_provider_gen_stop(yajl_gen g, yajl_val root, const char *as, cg_error_t *err)
{
    yajl_val  v = cg_json_get(root, "stop");
    size_t    i;

    if (v == NULL || YAJL_IS_NULL(v)) {
        return 0;
    }

    if (YAJL_IS_STRING(v)) {
        return cg_json_gen_str(g, as) || yajl_gen_array_open(g)
               || cg_json_gen_str(g, v->u.string) || yajl_gen_array_close(g)
               ? -1 : 0;
    }

    for (i = 0; YAJL_IS_ARRAY(v) && i < v->u.array.len; i++) {
        if (!YAJL_IS_STRING(v->u.array.values[i])) {
            break;
        }
    }

    if (!YAJL_IS_ARRAY(v) || i < v->u.array.len) {
        cg_error_set(err, 400, "invalid_request_error", "invalid stop: "
                     "expected a string or an array of strings");
        err->param = "stop";
        return -1;
    }

    return cg_json_gen_str(g, as) || cg_json_gen_value(g, v) ? -1 : 0;
}
