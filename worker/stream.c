#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_pick.h"
#include "stream.h"


static int cg_stream_sse_event(void *ctx, const cg_sse_event_t *ev);
static int cg_stream_openai(cg_stream_t *s, const char *data, size_t len);
static int cg_stream_openai_read(cg_stream_t *s, const char *data,
    size_t len);
static void cg_stream_on_model(void *data, const cg_json_pick_t *pick,
    const char *str, size_t len);
static void cg_stream_on_content(void *data, const cg_json_pick_t *pick,
    const char *str, size_t len);
static int cg_stream_openai_rewrite(cg_stream_t *s, const char *data,
    size_t len);
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
        s->send_usage = req->stream_options;
    } else {
        s->send_usage = req->include_usage;
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
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        s->done = 1;
        return cg_buf_append_str(s->out, "data: [DONE]\n\n") ? -1 : 1;
    }

    switch (cg_stream_openai_read(s, data, len)) {

    case CG_STREAM_CHUNK_DROP:
        return 0;

    case CG_STREAM_CHUNK_AS_IS:
        return cg_stream_frame_data(s, data, len);

    case CG_STREAM_CHUNK_REWRITE:
        return cg_stream_openai_rewrite(s, data, len);

    default:
        return -1;
    }
}


/*
 * The values of an OpenAI-compatible chunk that cg_stream_openai_read()
 * reads with cg_json_pick(). The order is that of the CG_STREAM_PICK_
 * indexes.
 */
enum {
    CG_STREAM_PICK_ROOT = 0,
    CG_STREAM_PICK_ERROR,
    CG_STREAM_PICK_ID,
    CG_STREAM_PICK_MODEL,
    CG_STREAM_PICK_CHOICES,
    CG_STREAM_PICK_CHOICE,
    CG_STREAM_PICK_CONTENT,
    CG_STREAM_PICK_FINISH,
    CG_STREAM_PICK_USAGE,
    CG_STREAM_PICK_PROMPT,
    CG_STREAM_PICK_COMPLETION,
    CG_STREAM_PICK_TOTAL,
    CG_STREAM_PICK_N
};

/* What the handlers of cg_stream_openai_read() find in one chunk. */
typedef struct {
    const char  *model;          /* the requested name */
    int          model_equal;    /* "model" equals it */
    int          content;        /* delta.content is a non-empty C string */
} cg_stream_chunk_facts_t;


/*
 * Reads one OpenAI-compatible chunk without a tree: takes its usage,
 * finish_reason and content count into s, and decides how it goes on. A
 * chunk goes on as it came under the rule of cg_openai_read_completion():
 * "model" equals the requested name, an "id" is there, and no top-level
 * member name repeats. A repeated name could give the client another
 * "model" than the one checked here. The data must also be one line,
 * because a multi-line data field would need a "data:" per line. Members
 * are matched as cg_json_get() matches them in a tree: the first of a
 * repeated name wins, and names and strings end at a U+0000.
 *
 * Returns CG_STREAM_CHUNK_DROP, CG_STREAM_CHUNK_AS_IS,
 * CG_STREAM_CHUNK_REWRITE, or -1 once the stream has failed (an invalid
 * chunk or a provider error event).
 */
static int
cg_stream_openai_read(cg_stream_t *s, const char *data, size_t len)
{
    cg_stream_chunk_facts_t  facts = { s->model, 0, 0 };
    cg_json_pick_t           picks[CG_STREAM_PICK_N] = {
        [CG_STREAM_PICK_ROOT]       = { .pointer = "" },
        [CG_STREAM_PICK_ERROR]      = { .pointer = "/error" },
        [CG_STREAM_PICK_ID]         = { .pointer = "/id" },
        [CG_STREAM_PICK_MODEL]      = { .pointer = "/model",
                                        .handler = cg_stream_on_model,
                                        .data = &facts },
        [CG_STREAM_PICK_CHOICES]    = { .pointer = "/choices" },
        [CG_STREAM_PICK_CHOICE]     = { .pointer = "/choices/0" },
        [CG_STREAM_PICK_CONTENT]    = { .pointer = "/choices/0/delta/content",
                                        .handler = cg_stream_on_content,
                                        .data = &facts },
        [CG_STREAM_PICK_FINISH]     = { .pointer = "/choices/0/finish_reason" },
        [CG_STREAM_PICK_USAGE]      = { .pointer = "/usage" },
        [CG_STREAM_PICK_PROMPT]     = { .pointer = "/usage/prompt_tokens" },
        [CG_STREAM_PICK_COMPLETION] = { .pointer = "/usage/completion_tokens" },
        [CG_STREAM_PICK_TOTAL]      = { .pointer = "/usage/total_tokens" },
    };
    /* the loop's thread is the only reader, and the pointers are constants */
    static cg_json_plan_t  plan;
    cg_json_findings_t  findings;
    char                cause[200];
    int                 has_choice;

    if (cg_json_pick_planned(data, len, picks, CG_STREAM_PICK_N, &plan,
                             &findings, cause, sizeof(cause)) != 0)
    {
        cg_stream_fail(s, "sent an invalid stream event", cause);
        return -1;
    }

    if (picks[CG_STREAM_PICK_ROOT].type != CG_JSON_OBJECT) {
        cg_stream_fail(s, "sent an invalid stream event", "not an object");
        return -1;
    }

    /* OpenAI-compatible servers report failures as {"error":{...}}. */
    if (picks[CG_STREAM_PICK_ERROR].type != CG_JSON_ABSENT) {
        cg_stream_provider_error(s, data, len);
        return -1;
    }

    if (picks[CG_STREAM_PICK_USAGE].type == CG_JSON_OBJECT) {
        cg_openai_usage_picked(&picks[CG_STREAM_PICK_PROMPT],
                               &picks[CG_STREAM_PICK_COMPLETION],
                               &picks[CG_STREAM_PICK_TOTAL], &s->usage);
    }

    /* "/choices/0" also names the member "0" of an object. */
    has_choice = picks[CG_STREAM_PICK_CHOICES].type == CG_JSON_ARRAY
                 && picks[CG_STREAM_PICK_CHOICE].type != CG_JSON_ABSENT;

    if (has_choice && facts.content) {
        s->chunks++;
    }

    if (has_choice && picks[CG_STREAM_PICK_FINISH].type == CG_JSON_STRING) {
        s->finish_reason = "stop";   /* only "seen" matters for the end */
    }

    if (!has_choice && !s->send_usage) {
        return CG_STREAM_CHUNK_DROP;
    }

    if (facts.model_equal
        && picks[CG_STREAM_PICK_ID].type != CG_JSON_ABSENT
        && !findings.repeated
        && memchr(data, '\n', len) == NULL)
    {
        return CG_STREAM_CHUNK_AS_IS;
    }

    return CG_STREAM_CHUNK_REWRITE;
}


/*
 * Notes whether "model" equals the requested name, compared as strcmp()
 * compares the C string of a tree: up to the value's first U+0000.
 */
static void
cg_stream_on_model(void *data, const cg_json_pick_t *pick, const char *str,
    size_t len)
{
    cg_stream_chunk_facts_t  *facts = data;
    const char               *nul;

    if (pick->type != CG_JSON_STRING) {
        return;
    }

    nul = memchr(str, '\0', len);
    if (nul != NULL) {
        len = (size_t) (nul - str);
    }

    facts->model_equal = strlen(facts->model) == len
                         && memcmp(facts->model, str, len) == 0;
}


/*
 * Notes whether delta.content counts as content: a string whose first byte
 * is not U+0000, as the tree's C string reads.
 */
static void
cg_stream_on_content(void *data, const cg_json_pick_t *pick, const char *str,
    size_t len)
{
    cg_stream_chunk_facts_t  *facts = data;

    facts->content = pick->type == CG_JSON_STRING && len > 0
                     && str[0] != '\0';
}


/*
 * Writes the chunk in data again with model set to the requested name,
 * without a tree. The bytes are those that yajl_gen wrote from a tree.
 */
static int
cg_stream_openai_rewrite(cg_stream_t *s, const char *data, size_t len)
{
    yajl_gen  g;
    int       bad;

    g = cg_json_gen_new();
    if (g == NULL) {
        return -1;
    }

    bad = yajl_gen_map_open(g) != yajl_gen_status_ok
          || cg_json_gen_members(g, data, len, "model", s->model) != 0
          || yajl_gen_map_close(g) != yajl_gen_status_ok;

    if (bad) {
        yajl_gen_free(g);
        return -1;
    }

    return cg_stream_frame(s, g);
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

    /* a provider's error event may quote the key it was called with */
    cg_redact(s->err.message, sizeof(s->err.message), s->secret);

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

    cg_provider_error_message(s->provider, 200, data, len, s->secret, msg,
                              sizeof(msg));

    return cg_stream_fail(s, "reported an error mid-stream", msg);
}


static void
cg_stream_total(cg_usage_t *usage)
{
    if (usage->prompt_tokens >= 0 && usage->completion_tokens >= 0) {
        usage->total_tokens = usage->prompt_tokens + usage->completion_tokens;
    }
}
