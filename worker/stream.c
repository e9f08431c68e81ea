#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"


static int cg_stream_sse_event(void *ctx, const cg_sse_event_t *ev);
static int cg_stream_openai(cg_stream_t *s, const char *data, size_t len);
static int cg_stream_openai_read(cg_stream_t *s, const char *data,
    size_t len, yajl_val *rewrite);
static int cg_stream_openai_rewrite(cg_stream_t *s, yajl_val root);
static int cg_stream_keys_unique(yajl_val obj);
static int cg_stream_anthropic(cg_stream_t *s, const char *type,
    const char *data, size_t len);
static int cg_stream_ollama(void *ctx, const char *line, size_t len);
static yajl_val cg_stream_parse(cg_stream_t *s, const char *data, size_t len);
static int cg_stream_chunk(cg_stream_t *s, const char *content,
    const char *finish_reason);
static int cg_stream_end(cg_stream_t *s);
static int cg_stream_frame(cg_stream_t *s, yajl_gen g);
static int cg_stream_frame_data(cg_stream_t *s, const void *data, size_t len);
static int cg_stream_fail(cg_stream_t *s, const char *what, const char *cause);
static int cg_stream_provider_error(cg_stream_t *s, const char *data,
    size_t len);
static void cg_stream_total(cg_usage_t *usage);


int
cg_stream_init(cg_stream_t *s, const cg_chat_request_t *req,
    const char *completion_id, long created)
{
    yajl_val  options = cg_json_get(req->root, "stream_options");
    yajl_val  include = cg_json_get(options, "include_usage");

    memset(s, 0, sizeof(*s));
    s->usage.prompt_tokens = -1;
    s->usage.completion_tokens = -1;
    s->usage.total_tokens = -1;
    s->provider = req->provider;
    s->created = created;
    snprintf(s->id, sizeof(s->id), "%s", completion_id);

    /*
     * An OpenAI-compatible provider sends a usage chunk when asked; the
     * client sees it only if it set stream_options itself, since the adapter
     * adds include_usage otherwise.
     */
    if (req->provider == CG_PROVIDER_OPENAI
        || req->provider == CG_PROVIDER_OPENROUTER)
    {
        s->send_usage = options != NULL;
    } else {
        s->send_usage = YAJL_IS_TRUE(include);
    }

    s->model = strdup(req->model_requested);
    if (s->model == NULL) {
        return -1;
    }

    if (req->provider == CG_PROVIDER_OLLAMA) {
        cg_ndjson_init(&s->ndjson, CG_STREAM_MAX_LINE, cg_stream_ollama, s);
    } else {
        cg_sse_init(&s->sse, CG_STREAM_MAX_LINE, cg_stream_sse_event, s);
    }

    return 0;
}


void
cg_stream_free(cg_stream_t *s)
{
    free(s->model);
    s->model = NULL;
    cg_sse_free(&s->sse);
    cg_ndjson_free(&s->ndjson);
}


int
cg_stream_feed(cg_stream_t *s, const char *buf, size_t len, cg_buf_t *out)
{
    int  rc;

    if (s->failed) {
        return -1;
    }

    if (s->done) {
        return 0;
    }

    s->out = out;

    if (s->provider == CG_PROVIDER_OLLAMA) {
        rc = cg_ndjson_feed(&s->ndjson, buf, len);
    } else {
        rc = cg_sse_feed(&s->sse, buf, len);
    }

    /* The handlers fail the stream themselves; the parsers fail alone. */
    if (rc != 0 && !s->failed && !s->done) {
        cg_stream_fail(s, "sent an invalid stream",
                       s->sse.too_long || s->ndjson.lines.too_long
                       ? "a line is longer than the limit" : "out of memory");
    }

    s->out = NULL;
    return s->failed ? -1 : 0;
}


int
cg_stream_finish(cg_stream_t *s, cg_buf_t *out)
{
    if (s->failed) {
        return -1;
    }

    s->out = out;

    if (!s->done && s->provider == CG_PROVIDER_OLLAMA) {
        cg_ndjson_finish(&s->ndjson);
    }

    /* Some OpenAI-compatible servers end with a finish_reason, no [DONE]. */
    if (!s->done && !s->failed && s->finish_reason != NULL
        && (s->provider == CG_PROVIDER_OPENAI
            || s->provider == CG_PROVIDER_OPENROUTER))
    {
        s->done = 1;
        cg_buf_append_str(out, "data: [DONE]\n\n");
    }

    if (!s->done && !s->failed) {
        cg_stream_fail(s, "ended the stream early",
                       "no end marker was received");
    }

    s->out = NULL;
    return s->failed ? -1 : 0;
}


static int
cg_stream_sse_event(void *ctx, const cg_sse_event_t *ev)
{
    cg_stream_t  *s = ctx;

    if (s->done || s->failed) {
        return 1;
    }

    if (s->provider == CG_PROVIDER_ANTHROPIC) {
        return cg_stream_anthropic(s, ev->type, ev->data, ev->data_len);
    }

    return cg_stream_openai(s, ev->data, ev->data_len);
}


/* The results of cg_stream_openai_read() for one chunk. */
#define CG_STREAM_CHUNK_DROP     0
#define CG_STREAM_CHUNK_AS_IS    1
#define CG_STREAM_CHUNK_REWRITE  2


/*
 * Passes an OpenAI-compatible chunk on: as it came when it already names
 * the requested model, otherwise rewritten with model set to that name.
 * The usage-only chunk is passed on only if the client asked for it.
 */
static int
cg_stream_openai(cg_stream_t *s, const char *data, size_t len)
{
    yajl_val  root;

    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        s->done = 1;
        return cg_buf_append_str(s->out, "data: [DONE]\n\n") ? -1 : 1;
    }

    switch (cg_stream_openai_read(s, data, len, &root)) {

    case CG_STREAM_CHUNK_DROP:
        return 0;

    case CG_STREAM_CHUNK_AS_IS:
        return cg_stream_frame_data(s, data, len);

    case CG_STREAM_CHUNK_REWRITE:
        return cg_stream_openai_rewrite(s, root);

    default:
        return -1;
    }
}


/*
 * Reads one OpenAI-compatible chunk: takes its usage, finish_reason and
 * content count into s, and decides how it goes on. A chunk goes on as it
 * came under the rule that non-streamed completions follow in
 * cg_openai_parse_completion(): "model" equals the requested name, an "id"
 * is there, and no top-level key repeats, so the client could not read
 * another "model" than the one checked here. The data must also be one
 * line, because a multi-line data field would need a "data:" per line.
 *
 * Returns CG_STREAM_CHUNK_DROP, CG_STREAM_CHUNK_AS_IS,
 * CG_STREAM_CHUNK_REWRITE with the parsed chunk in *rewrite for the caller
 * to free, or -1 once the stream has failed (an invalid chunk or a
 * provider error event).
 *
 * NOTE: only this function reads the chunk, so that its tree parse can
 * give way to a reader that does not allocate; the rewrite then needs a
 * parse of its own.
 */
static int
cg_stream_openai_read(cg_stream_t *s, const char *data, size_t len,
    yajl_val *rewrite)
{
    yajl_val     root, choices, choice, usage, model;
    const char  *content;

    *rewrite = NULL;

    root = cg_stream_parse(s, data, len);
    if (root == NULL) {
        return -1;
    }

    usage = cg_json_get(root, "usage");
    if (YAJL_IS_OBJECT(usage)) {
        cg_openai_usage(usage, &s->usage);
    }

    choices = cg_json_get(root, "choices");
    choice = YAJL_IS_ARRAY(choices) && choices->u.array.len > 0
             ? choices->u.array.values[0] : NULL;

    content = cg_json_get_string(cg_json_get(choice, "delta"), "content");
    if (content != NULL && content[0] != '\0') {
        s->chunks++;
    }

    if (cg_json_get_string(choice, "finish_reason") != NULL) {
        s->finish_reason = "stop";   /* only "seen" matters for the end */
    }

    if (choice == NULL && !s->send_usage) {
        yajl_tree_free(root);
        return CG_STREAM_CHUNK_DROP;
    }

    model = cg_json_get(root, "model");

    if (YAJL_IS_STRING(model)
        && strcmp(model->u.string, s->model) == 0
        && cg_json_get(root, "id") != NULL
        && memchr(data, '\n', len) == NULL
        && cg_stream_keys_unique(root))
    {
        yajl_tree_free(root);
        return CG_STREAM_CHUNK_AS_IS;
    }

    *rewrite = root;
    return CG_STREAM_CHUNK_REWRITE;
}


/* Writes root with model set to the requested name, and frees root. */
static int
cg_stream_openai_rewrite(cg_stream_t *s, yajl_val root)
{
    yajl_gen  g;
    size_t    i;
    int       bad;

    g = cg_json_gen_new();
    bad = g == NULL || yajl_gen_map_open(g);

    for (i = 0; !bad && i < root->u.object.len; i++) {
        bad = cg_json_gen_str(g, root->u.object.keys[i])
              || (strcmp(root->u.object.keys[i], "model") == 0
                  ? cg_json_gen_str(g, s->model)
                  : cg_json_gen_value(g, root->u.object.values[i]));
    }

    yajl_tree_free(root);

    if (bad || yajl_gen_map_close(g)) {
        if (g) {
            yajl_gen_free(g);
        }
        return -1;
    }

    return cg_stream_frame(s, g);
}


/*
 * Returns 1 when no key of the object obj appears twice, 0 otherwise: the
 * check of cg_openai_keys_unique() in provider_openai.c.
 */
static int
cg_stream_keys_unique(yajl_val obj)
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


static int
cg_stream_anthropic(cg_stream_t *s, const char *type, const char *data,
    size_t len)
{
    yajl_val     root, delta, usage;
    const char  *t, *text;
    int          rc = 0;

    root = cg_stream_parse(s, data, len);
    if (root == NULL) {
        return -1;
    }

    t = cg_json_get_string(root, "type");
    if (t == NULL) {
        t = type;
    }

    if (strcmp(t, "error") == 0) {
        yajl_tree_free(root);
        return cg_stream_provider_error(s, data, len);
    }

    if (strcmp(t, "message_start") == 0) {
        usage = cg_json_get(cg_json_get(root, "message"), "usage");
        cg_json_get_long(usage, "input_tokens", &s->usage.prompt_tokens);
        cg_json_get_long(usage, "output_tokens", &s->usage.completion_tokens);
        rc = cg_stream_chunk(s, "", NULL);

    } else if (strcmp(t, "content_block_delta") == 0) {
        /* NOTE: tool_use (input_json_delta) and thinking deltas are dropped. */
        delta = cg_json_get(root, "delta");
        text = cg_json_get_string(delta, "text");
        if (text != NULL && text[0] != '\0') {
            s->chunks++;
            rc = cg_stream_chunk(s, text, NULL);
        }

    } else if (strcmp(t, "message_delta") == 0) {
        s->finish_reason = cg_anthropic_finish_reason(
            cg_json_get_string(cg_json_get(root, "delta"), "stop_reason"));
        usage = cg_json_get(root, "usage");
        cg_json_get_long(usage, "input_tokens", &s->usage.prompt_tokens);
        cg_json_get_long(usage, "output_tokens", &s->usage.completion_tokens);

    } else if (strcmp(t, "message_stop") == 0) {
        rc = cg_stream_end(s);
    }

    /* ping, content_block_start and content_block_stop carry nothing. */

    yajl_tree_free(root);
    return rc;
}


static int
cg_stream_ollama(void *ctx, const char *line, size_t len)
{
    cg_stream_t  *s = ctx;
    yajl_val      root;
    const char   *text;
    int           rc = 0;

    if (s->done || s->failed) {
        return 1;
    }

    root = cg_stream_parse(s, line, len);
    if (root == NULL) {
        return -1;
    }

    if (cg_json_get(root, "error") != NULL) {
        yajl_tree_free(root);
        return cg_stream_provider_error(s, line, len);
    }

    text = cg_json_get_string(cg_json_get(root, "message"), "content");
    if (text != NULL && text[0] != '\0') {
        s->chunks++;
        rc = cg_stream_chunk(s, text, NULL);
    }

    if (rc == 0 && YAJL_IS_TRUE(cg_json_get(root, "done"))) {
        cg_json_get_long(root, "prompt_eval_count", &s->usage.prompt_tokens);
        cg_json_get_long(root, "eval_count", &s->usage.completion_tokens);
        s->finish_reason = cg_ollama_finish_reason(
            cg_json_get_string(root, "done_reason"), 1);
        rc = cg_stream_end(s);
    }

    yajl_tree_free(root);
    return rc;
}


static yajl_val
cg_stream_parse(cg_stream_t *s, const char *data, size_t len)
{
    char      cause[200];
    yajl_val  root;

    root = cg_json_parse(data, len, cause, sizeof(cause));

    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        cg_stream_fail(s, "sent an invalid stream event",
                       root ? "not an object" : cause);
        return NULL;
    }

    /* OpenAI-compatible servers report failures as {"error":{...}}. */
    if (cg_json_get(root, "error") != NULL
        && s->provider != CG_PROVIDER_ANTHROPIC
        && s->provider != CG_PROVIDER_OLLAMA)
    {
        yajl_tree_free(root);
        cg_stream_provider_error(s, data, len);
        return NULL;
    }

    return root;
}


/*
 * Writes one chunk of the translator's own: content as the delta (with the
 * role on the first chunk), or an empty delta with finish_reason.
 */
static int
cg_stream_chunk(cg_stream_t *s, const char *content, const char *finish_reason)
{
    yajl_gen  g = cg_json_gen_new();
    int       bad;

    bad = g == NULL
          || yajl_gen_map_open(g)
          || cg_json_gen_str(g, "id") || cg_json_gen_str(g, s->id)
          || cg_json_gen_str(g, "object")
          || cg_json_gen_str(g, "chat.completion.chunk")
          || cg_json_gen_str(g, "created") || yajl_gen_integer(g, s->created)
          || cg_json_gen_str(g, "model") || cg_json_gen_str(g, s->model)
          || cg_json_gen_str(g, "choices") || yajl_gen_array_open(g)
          || yajl_gen_map_open(g)
          || cg_json_gen_str(g, "index") || yajl_gen_integer(g, 0)
          || cg_json_gen_str(g, "delta") || yajl_gen_map_open(g);

    if (!bad && !s->role_sent && content != NULL) {
        s->role_sent = 1;
        bad = cg_json_gen_str(g, "role") || cg_json_gen_str(g, "assistant");
    }

    if (!bad && content != NULL) {
        bad = cg_json_gen_str(g, "content") || cg_json_gen_str(g, content);
    }

    bad = bad
          || yajl_gen_map_close(g)
          || cg_json_gen_str(g, "finish_reason")
          || (finish_reason ? cg_json_gen_str(g, finish_reason)
                            : (int) yajl_gen_null(g))
          || yajl_gen_map_close(g) || yajl_gen_array_close(g)
          || yajl_gen_map_close(g);

    if (bad) {
        if (g) {
            yajl_gen_free(g);
        }
        return -1;
    }

    return cg_stream_frame(s, g);
}


/* Writes the finish chunk, the usage chunk if asked for, and [DONE]. */
static int
cg_stream_end(cg_stream_t *s)
{
    yajl_gen  g;
    int       bad;

    cg_stream_total(&s->usage);

    if (cg_stream_chunk(s, NULL, s->finish_reason ? s->finish_reason : "stop")
        != 0)
    {
        return -1;
    }

    if (s->send_usage) {
        g = cg_json_gen_new();
        bad = g == NULL
              || yajl_gen_map_open(g)
              || cg_json_gen_str(g, "id") || cg_json_gen_str(g, s->id)
              || cg_json_gen_str(g, "object")
              || cg_json_gen_str(g, "chat.completion.chunk")
              || cg_json_gen_str(g, "created")
              || yajl_gen_integer(g, s->created)
              || cg_json_gen_str(g, "model") || cg_json_gen_str(g, s->model)
              || cg_json_gen_str(g, "choices") || yajl_gen_array_open(g)
              || yajl_gen_array_close(g)
              || cg_json_gen_str(g, "usage") || yajl_gen_map_open(g)
              || cg_json_gen_str(g, "prompt_tokens")
              || cg_json_gen_count(g, s->usage.prompt_tokens)
              || cg_json_gen_str(g, "completion_tokens")
              || cg_json_gen_count(g, s->usage.completion_tokens)
              || cg_json_gen_str(g, "total_tokens")
              || cg_json_gen_count(g, s->usage.total_tokens)
              || yajl_gen_map_close(g) || yajl_gen_map_close(g);

        if (bad) {
            if (g) {
                yajl_gen_free(g);
            }
            return -1;
        }

        if (cg_stream_frame(s, g) != 0) {
            return -1;
        }
    }

    s->done = 1;
    return cg_buf_append_str(s->out, "data: [DONE]\n\n") ? -1 : 1;
}


/* Appends what g wrote as one "data:" frame and frees g. */
static int
cg_stream_frame(cg_stream_t *s, yajl_gen g)
{
    const unsigned char  *json;
    size_t                n;
    int                   bad;

    bad = yajl_gen_get_buf(g, &json, &n) != yajl_gen_status_ok
          || cg_stream_frame_data(s, json, n) != 0;

    yajl_gen_free(g);
    return bad ? -1 : 0;
}


/* Appends len bytes of one-line data as one "data:" frame. */
static int
cg_stream_frame_data(cg_stream_t *s, const void *data, size_t len)
{
    if (cg_buf_append_str(s->out, "data: ") != 0
        || cg_buf_append(s->out, data, len) != 0
        || cg_buf_append_str(s->out, "\n\n") != 0)
    {
        return -1;
    }

    return 0;
}


/*
 * Fails the stream with err "provider \"<name>\" <what>: <cause>" and
 * appends the error frame. Returns -1.
 */
static int
cg_stream_fail(cg_stream_t *s, const char *what, const char *cause)
{
    char    *json;
    size_t   len;

    cg_error_set(&s->err, 502, "upstream_error", "provider \"%s\" %s: %s",
                 cg_provider_name(s->provider), what, cause);
    s->failed = 1;

    json = cg_error_json(&s->err, &len);
    if (json != NULL && s->out != NULL) {
        cg_buf_append_str(s->out, "data: ");
        cg_buf_append(s->out, json, len);
        cg_buf_append_str(s->out, "\n\n");
    }

    free(json);
    return -1;
}


static int
cg_stream_provider_error(cg_stream_t *s, const char *data, size_t len)
{
    char  msg[320];

    cg_provider_error_message(s->provider, 200, data, len, msg, sizeof(msg));

    return cg_stream_fail(s, "reported an error mid-stream", msg);
}


static void
cg_stream_total(cg_usage_t *usage)
{
    if (usage->prompt_tokens >= 0 && usage->completion_tokens >= 0) {
        usage->total_tokens = usage->prompt_tokens + usage->completion_tokens;
    }
}
