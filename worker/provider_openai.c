#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json_pick.h"
#include "provider.h"


static int cg_openai_gen_object(yajl_gen g, yajl_val root, const char *model,
    const char *missing_id);
static int cg_openai_keys_unique(yajl_val obj);
static char *cg_openai_copy(const char *body, size_t len, size_t *out_len);
static char *cg_openai_rewrite(const char *body, size_t len,
    const char *model, const char *missing_id, size_t *out_len);
static int cg_openai_pick_count(const cg_json_pick_t *pick, long *out);


/*
 * Writes the client's body as it came, with model set to the upstream name,
 * from the tree or, when there is none, from the client's JSON.
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

    /* The same members as from a tree, see cg_json_gen_members(). */
    if (!bad && root == NULL) {
        bad |= cg_json_gen_members(g, req->body, req->body_len, "model",
                                   req->model) != 0;
    }

    for (i = 0; !bad && root != NULL && i < root->u.object.len; i++) {
        const char  *key = root->u.object.keys[i];

        bad |= cg_json_gen_str(g, key);

        if (strcmp(key, "model") == 0) {
            bad |= cg_json_gen_str(g, req->model);
        } else {
            bad |= cg_json_gen_value(g, root->u.object.values[i]);
        }
    }

    if (req->stream && !req->stream_options) {
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

    if (req->stream && !req->stream_options) {
        return 0;
    }

    /* cg_chat_request_parse() builds no tree after it rejected repeats. */
    return req->root == NULL || cg_openai_keys_unique(req->root);
}


/*
 * The values that decide whether a response goes out as it came, read with
 * cg_json_pick(). The order is that of the CG_OPENAI_PICK_ indexes.
 */
enum {
    CG_OPENAI_PICK_ROOT = 0,
    CG_OPENAI_PICK_ID,
    CG_OPENAI_PICK_MODEL,
    CG_OPENAI_PICK_CHOICES,
    CG_OPENAI_PICK_CHOICE,
    CG_OPENAI_PICK_MESSAGE,
    CG_OPENAI_PICK_CONTENT,
    CG_OPENAI_PICK_PROMPT,
    CG_OPENAI_PICK_COMPLETION,
    CG_OPENAI_PICK_TOTAL,
    CG_OPENAI_PICK_N
};


/*
 * Reads a response without building a tree, as cg_openai_parse_completion()
 * reads it from one: an object with text or null in
 * choices[0].message.content. The body goes out byte for byte when it has
 * an "id", "model" equals the requested name and no top-level member
 * repeats. Otherwise it is written again with that name and an id, as from
 * the tree. Returns 1 with out filled, or 0 when the tree path must handle
 * the response: an invalid body or lack of memory. Members are matched as
 * cg_json_get() matches them, so both paths read the same values.
 */
int
cg_openai_read_completion(const cg_chat_request_t *req, const char *body,
    size_t len, const char *completion_id, cg_completion_t *out)
{
    cg_json_pick_t   picks[CG_OPENAI_PICK_N] = {
        [CG_OPENAI_PICK_ROOT]       = { .pointer = "" },
        [CG_OPENAI_PICK_ID]         = { .pointer = "/id" },
        [CG_OPENAI_PICK_MODEL]      = { .pointer = "/model",
                                        .flags = CG_JSON_PICK_COPY },
        [CG_OPENAI_PICK_CHOICES]    = { .pointer = "/choices" },
        [CG_OPENAI_PICK_CHOICE]     = { .pointer = "/choices/0" },
        [CG_OPENAI_PICK_MESSAGE]    = { .pointer = "/choices/0/message" },
        [CG_OPENAI_PICK_CONTENT]    = { .pointer = "/choices/0/message/content",
                                        .flags = CG_JSON_PICK_COPY },
        [CG_OPENAI_PICK_PROMPT]     = { .pointer = "/usage/prompt_tokens" },
        [CG_OPENAI_PICK_COMPLETION] = { .pointer = "/usage/completion_tokens" },
        [CG_OPENAI_PICK_TOTAL]      = { .pointer = "/usage/total_tokens" },
    };
    cg_json_pick_t  *content = &picks[CG_OPENAI_PICK_CONTENT];
    cg_json_pick_t  *model = &picks[CG_OPENAI_PICK_MODEL];
    /* the loop's thread is the only reader, and the pointers are constants */
    static cg_json_plan_t  plan;
    cg_json_findings_t  findings;
    char             cause[256];
    int              valid, pass;

    if (cg_json_pick_planned(body, len, picks, CG_OPENAI_PICK_N, &plan,
                             &findings, cause, sizeof(cause)) != 0)
    {
        return 0;
    }

    valid = picks[CG_OPENAI_PICK_ROOT].type == CG_JSON_OBJECT
            && picks[CG_OPENAI_PICK_CHOICES].type == CG_JSON_ARRAY
            && picks[CG_OPENAI_PICK_CHOICE].type == CG_JSON_OBJECT
            && picks[CG_OPENAI_PICK_MESSAGE].type == CG_JSON_OBJECT
            && (content->type == CG_JSON_ABSENT
                || content->type == CG_JSON_NULL
                || content->type == CG_JSON_STRING);

    if (!valid) {
        cg_json_pick_free(picks, CG_OPENAI_PICK_N);
        return 0;
    }

    /* strcmp() stops at a U+0000 in the name, as the tree path's does. */
    pass = !findings.repeated
           && picks[CG_OPENAI_PICK_ID].type != CG_JSON_ABSENT
           && model->type == CG_JSON_STRING
           && strcmp(model->string, req->model_requested) == 0;

    if (pass) {
        out->body = cg_openai_copy(body, len, &out->body_len);

    } else {
        out->body = cg_openai_rewrite(body, len, req->model_requested,
                        picks[CG_OPENAI_PICK_ID].type == CG_JSON_ABSENT
                        ? completion_id : NULL,
                        &out->body_len);
    }

    /* The reply is read as a C string, so it ends at a U+0000 as well. */
    if (content->type == CG_JSON_STRING) {
        out->reply = content->string;
        content->string = NULL;
    } else {
        out->reply = strdup("");
    }

    cg_json_pick_free(picks, CG_OPENAI_PICK_N);

    if (out->body == NULL || out->reply == NULL) {
        cg_completion_free(out);
        return 0;
    }

    cg_openai_usage_picked(&picks[CG_OPENAI_PICK_PROMPT],
                           &picks[CG_OPENAI_PICK_COMPLETION],
                           &picks[CG_OPENAI_PICK_TOTAL], &out->usage);

    return 1;
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


void
cg_openai_usage_picked(const cg_json_pick_t *prompt,
    const cg_json_pick_t *completion, const cg_json_pick_t *total,
    cg_usage_t *out)
{
    out->prompt_tokens = -1;
    out->completion_tokens = -1;
    out->total_tokens = -1;

    cg_openai_pick_count(prompt, &out->prompt_tokens);
    cg_openai_pick_count(completion, &out->completion_tokens);

    if (cg_openai_pick_count(total, &out->total_tokens) != 0
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


/*
 * Writes the object in body again, as cg_openai_gen_object() writes it
 * from a tree: with model in place of each top-level "model" value, and
 * with "id" first when missing_id is not NULL. Returns the malloc'ed text,
 * or NULL when out of memory.
 */
static char *
cg_openai_rewrite(const char *body, size_t len, const char *model,
    const char *missing_id, size_t *out_len)
{
    yajl_gen  g;
    int       bad;

    g = cg_json_gen_new();
    if (g == NULL) {
        return NULL;
    }

    bad = yajl_gen_map_open(g) != yajl_gen_status_ok;

    if (!bad && missing_id != NULL) {
        bad = cg_json_gen_str(g, "id") || cg_json_gen_str(g, missing_id);
    }

    bad = bad
          || cg_json_gen_members(g, body, len, "model", model) != 0
          || yajl_gen_map_close(g) != yajl_gen_status_ok;

    if (bad) {
        yajl_gen_free(g);
        return NULL;
    }

    return cg_json_gen_finish(g, out_len);
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


/*
 * Stores a picked token count in *out as cg_json_get_long() reads it from
 * the tree: an integer that fits a long. Returns 0, or -1 (and leaves *out
 * alone) otherwise.
 */
static int
cg_openai_pick_count(const cg_json_pick_t *pick, long *out)
{
    if (pick->type != CG_JSON_NUMBER || !pick->is_integer
        || pick->integer < LONG_MIN || pick->integer > LONG_MAX)
    {
        return -1;
    }

    *out = (long) pick->integer;
    return 0;
}
