#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "provider.h"


#define CG_ERROR_MSG_MAX     300     /* bytes of a provider's error message kept */


static const char  *cg_provider_names[CG_PROVIDER_COUNT] = {
    "openai", "openrouter", "anthropic", "ollama"
};

static const char  *cg_provider_paths[CG_PROVIDER_COUNT] = {
    "/chat/completions", "/chat/completions", "/messages", "/api/chat"
};


static int cg_provider_write_body(const cg_chat_request_t *req,
    cg_provider_call_t *call, cg_error_t *err);
static char *cg_provider_url(const char *base_url, cg_provider_id_t id);
static int cg_provider_headers(cg_provider_call_t *call, cg_provider_id_t id,
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
cg_provider_build_call(const cg_chat_request_t *req, const char *base_url,
    const char *api_key, cg_provider_call_t *call, cg_error_t *err)
{
    const char  *name = cg_provider_name(req->provider);

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

    if (cg_provider_write_body(req, call, err) != 0) {
        return -1;
    }

headers:

    call->url = cg_provider_url(base_url, req->provider);

    if (call->body == NULL || call->url == NULL
        || cg_provider_headers(call, req->provider, api_key) != 0)
    {
        goto nomem;
    }

    return 0;

nomem:

    cg_provider_call_free(call);
    cg_error_set(err, 500, "server_error", "out of memory while building "
                 "the call to provider \"%s\"", name);
    return -1;
}


/*
 * Writes the provider's body for req with yajl_gen into call->body. A
 * request that cg_chat_request_parse() read without a tree gets one here
 * when a stored key moved it to Anthropic or Ollama afterwards.
 */
static int
cg_provider_write_body(const cg_chat_request_t *req, cg_provider_call_t *call,
    cg_error_t *err)
{
    cg_chat_request_t  parsed;
    yajl_val           tree = NULL;
    yajl_gen           g;
    char               cause[256];
    int                rc;

    if (req->root == NULL
        && (req->provider == CG_PROVIDER_ANTHROPIC
            || req->provider == CG_PROVIDER_OLLAMA))
    {
        tree = cg_json_parse(req->body, req->body_len, cause, sizeof(cause));
        if (tree == NULL) {
            cg_error_set(err, 500, "server_error", "parsing the checked "
                         "request body again failed: %s", cause);
            return -1;
        }

        parsed = *req;
        parsed.root = tree;
        req = &parsed;
    }

    g = cg_json_gen_new();
    if (g == NULL) {
        yajl_tree_free(tree);
        cg_error_set(err, 500, "server_error", "out of memory while building "
                     "the call to provider \"%s\"",
                     cg_provider_name(req->provider));
        return -1;
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

    yajl_tree_free(tree);

    if (rc != 0) {
        yajl_gen_free(g);
        return -1;
    }

    /* A NULL body is reported as lack of memory by the caller. */
    call->body = cg_json_gen_finish(g, &call->body_len);

    return 0;
}


void
cg_provider_call_free(cg_provider_call_t *call)
{
    free(call->url);

    /* One line carries the key. */
    if (call->headers != NULL) {
        explicit_bzero(call->headers, call->headers_size);
        free(call->headers);
    }

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


/*
 * Bodies up to this size never get curl's "Expect: 100-continue", so they
 * need no "Expect:" to cancel it. curl 7.88 (Debian 12) adds it above 1 MiB,
 * versions from before 2020 above 1024 bytes (EXPECT_100_THRESHOLD in curl's
 * lib/http.h).
 */
#define CG_PROVIDER_NO_EXPECT_MAX  1024

/* Maximum length of the key's header line. A longer one fails the call. */
#define CG_PROVIDER_KEY_LINE_MAX   (64 + 4096 - 1)


/*
 * Builds call->headers: the constant lines and the key line, as curl_slist
 * nodes followed by their strings in one allocation. curl only reads the
 * list. Returns 0, or -1 when out of memory or the key line is too long.
 */
static int
cg_provider_headers(cg_provider_call_t *call, cg_provider_id_t id,
    const char *api_key)
{
    const char          *lines[3], *key_prefix = NULL;
    struct curl_slist   *nodes;
    size_t               n = 0, i, size, len[3], prefix_len = 0, key_len = 0;
    char                *s;

    lines[n++] = "Content-Type: application/json";

    /* "Expect:" stops libcurl from waiting for 100 Continue on large bodies. */
    if (call->body_len > CG_PROVIDER_NO_EXPECT_MAX) {
        lines[n++] = "Expect:";
    }

    if (id == CG_PROVIDER_ANTHROPIC) {
        lines[n++] = "anthropic-version: 2023-06-01";
        key_prefix = "x-api-key: ";

    } else if (id != CG_PROVIDER_OLLAMA || api_key[0] != '\0') {
        key_prefix = "Authorization: Bearer ";
    }

    size = 0;
    for (i = 0; i < n; i++) {
        len[i] = strlen(lines[i]);
        size += len[i] + 1;
    }

    if (key_prefix != NULL) {
        prefix_len = strlen(key_prefix);
        key_len = strlen(api_key);
        if (prefix_len + key_len > CG_PROVIDER_KEY_LINE_MAX) {
            return -1;
        }
        size += prefix_len + key_len + 1;
    }

    size += (n + (key_prefix != NULL)) * sizeof(struct curl_slist);

    nodes = malloc(size);
    if (nodes == NULL) {
        return -1;
    }

    s = (char *) (nodes + n + (key_prefix != NULL));

    for (i = 0; i < n; i++) {
        nodes[i].data = s;
        nodes[i].next = &nodes[i + 1];
        memcpy(s, lines[i], len[i] + 1);
        s += len[i] + 1;
    }

    if (key_prefix != NULL) {
        nodes[n].data = s;
        memcpy(s, key_prefix, prefix_len);
        memcpy(s + prefix_len, api_key, key_len + 1);
        n++;
    }

    nodes[n - 1].next = NULL;

    call->headers = nodes;
    call->headers_size = size;

    return 0;
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

    /* The common case: an OpenAI-compatible response, read without a tree. */
    if (req->provider != CG_PROVIDER_ANTHROPIC
        && req->provider != CG_PROVIDER_OLLAMA
        && cg_openai_read_completion(req, body, len, completion_id, out))
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
    const char *body, size_t len, const char *secret, char *msg,
    size_t msg_size)
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

    cg_redact(text, text_size, secret);

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
