/* SSE and NDJSON parsing and the stream translators, at every cut. */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "json.h"
#include "provider.h"
#include "sse.h"
#include "stream.h"


/* Recorded streams, shortened; "\xc3\xa9" is one two-byte character. */

static const char  openai_stream[] =
    ": keep-alive\r\n\r\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
    "\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\r\n\r\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
    "\"caf\xc3\xa9\"},\"finish_reason\":null}]}\r\n\r\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
    "\"!\"},\"finish_reason\":\"stop\"}]}\r\n\r\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
    "\"completion_tokens\":2,\"total_tokens\":11}}\r\n\r\n"
    "data: [DONE]\r\n\r\n";

static const char  anthropic_stream[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\","
    "\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,"
    "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: ping\ndata: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
    "{\"type\":\"text_delta\",\"text\":\"Hell\xc3\xa9\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
    "{\"type\":\"text_delta\",\"text\":\" there\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
    "\"index\":0}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
    "\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

static const char  ollama_stream[] =
    "{\"model\":\"llama3\",\"message\":{\"role\":\"assistant\",\"content\":"
    "\"Hi\"},\"done\":false}\n"
    "{\"model\":\"llama3\",\"message\":{\"role\":\"assistant\",\"content\":"
    "\" \xc3\xa9t\xc3\xa9\"},\"done\":false}\r\n"
    "{\"model\":\"llama3\",\"message\":{\"role\":\"assistant\",\"content\":"
    "\"\"},\"done\":true,\"done_reason\":\"length\",\"prompt_eval_count\":7,"
    "\"eval_count\":3}\n";


typedef struct {
    cg_buf_t     out;
    cg_usage_t   usage;
    unsigned     chunks;
    int          done;
    int          failed;
    int          rc;
} result_t;


static void
request(const char *model, const char *extra, cg_chat_request_t *req)
{
    char        body[512];
    cg_error_t  err;

    snprintf(body, sizeof(body), "{\"model\":\"%s\",\"stream\":true,%s"
             "\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
             model, extra);
    if (cg_chat_request_parse(body, strlen(body), CG_PROVIDER_OPENAI, req,
                              &err) != 0)
    {
        printf("# request failed: %s\n", err.message);
        exit(1);
    }
}


/* Feeds text in pieces: cut_a and cut_b split it in three; step > 0 feeds
 * step bytes at a time instead. */
static void
run(const char *model, const char *extra, const char *text, size_t len,
    size_t cut_a, size_t cut_b, size_t step, result_t *r)
{
    cg_chat_request_t  req;
    cg_stream_t        s;
    size_t             i;

    memset(r, 0, sizeof(*r));
    request(model, extra, &req);
    cg_stream_init(&s, &req, "chatcmpl-9", 1700000000);

    if (step > 0) {
        for (i = 0; i < len; i += step) {
            cg_stream_feed(&s, text + i, len - i < step ? len - i : step,
                           &r->out);
        }
    } else {
        cg_stream_feed(&s, text, cut_a, &r->out);
        cg_stream_feed(&s, text + cut_a, cut_b - cut_a, &r->out);
        cg_stream_feed(&s, text + cut_b, len - cut_b, &r->out);
    }

    r->rc = cg_stream_finish(&s, &r->out);
    cg_buf_append(&r->out, "", 0);
    r->usage = s.usage;
    r->chunks = s.chunks;
    r->done = s.done;
    r->failed = s.failed;

    cg_stream_free(&s);
    cg_chat_request_free(&req);
}


/* Every split into two feeds, and byte by byte, gives the one-feed output. */
static void
check_cuts(const char *name, const char *model, const char *extra,
    const char *text, result_t *whole)
{
    size_t    len = strlen(text), cut, bad = 0;
    result_t  r;

    run(model, extra, text, len, len, len, 0, whole);

    for (cut = 0; cut <= len; cut++) {
        run(model, extra, text, len, cut, cut, 0, &r);
        if (strcmp(r.out.data, whole->out.data) != 0
            || r.usage.total_tokens != whole->usage.total_tokens
            || r.chunks != whole->chunks || r.done != whole->done)
        {
            if (bad++ == 0) {
                printf("# first difference at cut %zu:\n# %s\n", cut,
                       r.out.data);
            }
        }
        cg_buf_free(&r.out);
    }
    is_int(bad, 0, "%s same at every cut", name);

    run(model, extra, text, len, 0, 0, 1, &r);
    is_str(r.out.data, whole->out.data, "%s same byte by byte", name);
    cg_buf_free(&r.out);
}


static void
test_openai_stream(void)
{
    result_t  r;

    check_cuts("openai stream", "openai/gpt-4o", "", openai_stream, &r);
    is_int(r.rc, 0, "openai stream ok");
    is_int(r.done, 1, "openai stream done");
    is_int(r.chunks, 2, "openai content chunks");
    is_int(r.usage.prompt_tokens, 9, "openai usage from final chunk");
    is_int(r.usage.total_tokens, 11, "openai usage total");
    ok(strstr(r.out.data, "\"content\":\"caf\xc3\xa9\"") != NULL,
       "openai utf8 intact");
    ok(strstr(r.out.data, "\"model\":\"openai/gpt-4o\"") != NULL,
       "openai model as requested");
    ok(strstr(r.out.data, "\"usage\"") == NULL,
       "openai usage chunk not forwarded unasked");
    ok(strstr(r.out.data, "data: [DONE]\n\n") != NULL, "openai done frame");
    cg_buf_free(&r.out);

    check_cuts("openai stream usage asked", "openai/gpt-4o",
               "\"stream_options\":{\"include_usage\":true},", openai_stream,
               &r);
    ok(strstr(r.out.data, "\"total_tokens\":11") != NULL,
       "openai usage chunk forwarded when asked");
    cg_buf_free(&r.out);
}


/*
 * A chunk that names the requested model, has an id and no repeated key
 * goes on byte for byte. Its spaces, member order, "\/" and 1.50 show that
 * yajl_gen did not write it again.
 */
#define PASS_CHUNK                                                          \
    "{\"model\":\"gpt-4o\", \"choices\":[{\"delta\":{\"content\":\"a\\/b\"},"  \
    "\"index\":0}], \"id\":\"c1\", \"extra\":1.50}"

/* Feeds text byte by byte. */
static void
run_text(const char *model, const char *text, result_t *r)
{
    run(model, "", text, strlen(text), 0, 0, 1, r);
}


static void
test_openai_pass_through(void)
{
    result_t     r;
    const char  *frame = "data: " PASS_CHUNK "\n\n";

    check_cuts("pass-through", "gpt-4o", "",
               "data: " PASS_CHUNK "\n\ndata: [DONE]\n\n", &r);
    is_str(r.out.data, "data: " PASS_CHUNK "\n\ndata: [DONE]\n\n",
           "pass-through frame as it came");
    is_int(r.chunks, 1, "pass-through content counted");
    cg_buf_free(&r.out);

    /* A rewrite makes the chunk compact, so the frame differs. */
    check_cuts("pass-through other model", "openai/gpt-4o", "",
               "data: " PASS_CHUNK "\n\ndata: [DONE]\n\n", &r);
    ok(strstr(r.out.data, frame) == NULL, "other model rewritten");
    ok(strstr(r.out.data, "\"model\":\"openai/gpt-4o\"") != NULL,
       "other model as requested");
    cg_buf_free(&r.out);

    run_text("gpt-4o", "data: {\"model\":\"gpt-4o\", \"model\":\"x\", "
        "\"id\":\"c1\", \"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
        "data: [DONE]\n\n", &r);
    is_str(r.out.data, "data: {\"model\":\"gpt-4o\",\"model\":\"gpt-4o\","
           "\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
           "data: [DONE]\n\n", "repeated model rewritten");
    cg_buf_free(&r.out);

    run_text("gpt-4o", "data: {\"model\":\"gpt-4o\", "
        "\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
        "data: [DONE]\n\n", &r);
    is_str(r.out.data, "data: {\"model\":\"gpt-4o\","
           "\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
           "data: [DONE]\n\n", "chunk without id rewritten");
    cg_buf_free(&r.out);

    /* Two data lines join with "\n", which one frame cannot carry. */
    run_text("gpt-4o", "data: {\"model\":\"gpt-4o\", \"id\":\"c1\",\n"
        "data: \"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
        "data: [DONE]\n\n", &r);
    is_str(r.out.data, "data: {\"model\":\"gpt-4o\",\"id\":\"c1\","
           "\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
           "data: [DONE]\n\n", "multi-line data rewritten");
    cg_buf_free(&r.out);
}


/*
 * The chunk reader matches members as cg_json_get() does in a tree: the
 * first of a repeated name, names and strings up to a U+0000, and an index
 * only in an array.
 */
static void
test_openai_chunk_matching(void)
{
    result_t     r;
    const char  *text;

    /* "0" of an object is no first choice, so the chunk is dropped. */
    run_text("gpt-4o", "data: {\"model\":\"gpt-4o\",\"id\":\"c1\","
        "\"choices\":{\"0\":{\"delta\":{\"content\":\"a\"},"
        "\"finish_reason\":\"stop\"}}}\n\ndata: [DONE]\n\n", &r);
    is_int(r.chunks, 0, "choices object not counted");
    is_str(r.out.data, "data: [DONE]\n\n", "choices object dropped");
    cg_buf_free(&r.out);

    /* A model that ends at U+0000 reads as "gpt-4o", so it passes as is. */
    run_text("gpt-4o", "data: {\"model\":\"gpt-4o\\u0000x\",\"id\":\"c1\","
        "\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
        "data: [DONE]\n\n", &r);
    is_str(r.out.data, "data: {\"model\":\"gpt-4o\\u0000x\",\"id\":\"c1\","
           "\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
           "data: [DONE]\n\n", "model with U+0000 as it came");
    cg_buf_free(&r.out);

    /* Content that starts with U+0000 is empty as a C string. */
    run_text("gpt-4o", "data: {\"model\":\"gpt-4o\",\"id\":\"c1\","
        "\"choices\":[{\"delta\":{\"content\":\"\\u0000a\"}}]}\n\n"
        "data: [DONE]\n\n", &r);
    is_int(r.chunks, 0, "content with leading U+0000 not counted");
    cg_buf_free(&r.out);

    /* The first "delta" counts, and a second content chunk is counted. */
    run_text("gpt-4o", "data: {\"model\":\"gpt-4o\",\"id\":\"c1\","
        "\"choices\":[{\"delta\":{\"content\":\"\"},"
        "\"delta\":{\"content\":\"a\"}}]}\n\n"
        "data: {\"model\":\"gpt-4o\",\"id\":\"c1\","
        "\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n"
        "data: [DONE]\n\n", &r);
    is_int(r.chunks, 1, "first delta counted");
    cg_buf_free(&r.out);

    /* A model of another type is rewritten to the requested name. */
    run_text("gpt-4o", "data: {\"model\":1,\"id\":\"c1\","
        "\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
        "data: [DONE]\n\n", &r);
    is_str(r.out.data, "data: {\"model\":\"gpt-4o\",\"id\":\"c1\","
           "\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
           "data: [DONE]\n\n", "number model rewritten");
    cg_buf_free(&r.out);

    /* "error":null is an error event as well. */
    run_text("gpt-4o", "data: {\"error\":null}\n\n", &r);
    is_int(r.failed, 1, "error null fails the stream");
    ok(strstr(r.out.data, "reported an error mid-stream") != NULL,
       "error null reported");
    cg_buf_free(&r.out);

    /* An array is not a chunk. */
    run_text("gpt-4o", "data: [1]\n\n", &r);
    is_int(r.failed, 1, "array chunk fails the stream");
    ok(strstr(r.out.data, "not an object") != NULL, "array chunk cause");
    cg_buf_free(&r.out);

    /* A usage object that is no object leaves the counts alone. */
    text = "data: {\"model\":\"gpt-4o\",\"id\":\"c1\",\"choices\":[],"
           "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n"
           "data: {\"model\":\"gpt-4o\",\"id\":\"c1\",\"choices\":[],"
           "\"usage\":[5]}\n\ndata: [DONE]\n\n";
    run("gpt-4o", "\"stream_options\":{\"include_usage\":true},", text,
        strlen(text), 0, 0, 1, &r);
    is_int((int) r.usage.prompt_tokens, 3, "usage prompt tokens");
    is_int((int) r.usage.total_tokens, 7, "usage total as sum");
    cg_buf_free(&r.out);
}


static void
test_anthropic_stream(void)
{
    result_t  r;

    check_cuts("anthropic stream", "anthropic/claude",
               "\"stream_options\":{\"include_usage\":true},",
               anthropic_stream, &r);
    is_int(r.rc, 0, "anthropic stream ok");
    is_int(r.done, 1, "anthropic stream done");
    is_int(r.chunks, 2, "anthropic content chunks");
    is_int(r.usage.prompt_tokens, 25, "anthropic input from message_start");
    is_int(r.usage.completion_tokens, 15,
           "anthropic output from message_delta");
    is_int(r.usage.total_tokens, 40, "anthropic usage merged");
    ok(strstr(r.out.data, "{\"id\":\"chatcmpl-9\",\"object\":"
              "\"chat.completion.chunk\",\"created\":1700000000,\"model\":"
              "\"anthropic/claude\",\"choices\":[{\"index\":0,\"delta\":"
              "{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":"
              "null}]}") != NULL, "anthropic role chunk");
    ok(strstr(r.out.data, "\"delta\":{\"content\":\"Hell\xc3\xa9\"}")
       != NULL, "anthropic text chunk");
    ok(strstr(r.out.data, "\"delta\":{},\"finish_reason\":\"stop\"") != NULL,
       "anthropic finish chunk");
    ok(strstr(r.out.data, "\"choices\":[],\"usage\":{\"prompt_tokens\":25,"
              "\"completion_tokens\":15,\"total_tokens\":40}") != NULL,
       "anthropic usage chunk");
    cg_buf_free(&r.out);
}


static void
test_ollama_stream(void)
{
    result_t  r;

    check_cuts("ollama stream", "ollama/llama3", "", ollama_stream, &r);
    is_int(r.rc, 0, "ollama stream ok");
    is_int(r.done, 1, "ollama stream done");
    is_int(r.chunks, 2, "ollama content chunks");
    is_int(r.usage.total_tokens, 10, "ollama usage from done line");
    ok(strstr(r.out.data, "\" \xc3\xa9t\xc3\xa9\"") != NULL,
       "ollama utf8 intact");
    ok(strstr(r.out.data, "\"finish_reason\":\"length\"") != NULL,
       "ollama done_reason length");
    ok(strstr(r.out.data, "\"usage\"") == NULL, "ollama no usage unasked");
    cg_buf_free(&r.out);
}


static void
test_stream_errors(void)
{
    result_t     r;
    const char  *text;

    text = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
           "\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}\n\n"
           "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
           "\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    run("anthropic/c", "", text, strlen(text), 0, 0, 7, &r);
    is_int(r.rc, -1, "anthropic error event fails");
    is_int(r.failed, 1, "anthropic error event failed flag");
    ok(strstr(r.out.data, "data: {\"error\":{\"message\":\"provider "
              "\\\"anthropic\\\" reported an error mid-stream: Overloaded\","
              "\"type\":\"upstream_error\"") != NULL,
       "anthropic error frame");
    ok(strstr(r.out.data, "[DONE]") == NULL, "error frame without done");
    cg_buf_free(&r.out);

    text = "data: {\"error\":{\"message\":\"bad key sk-abcdefghijkl\"}}\n\n";
    run("openai/g", "", text, strlen(text), 5, 9, 0, &r);
    is_int(r.failed, 1, "openai error event fails");
    ok(strstr(r.out.data, "bad key [redacted]") != NULL,
       "openai error event redacted");
    cg_buf_free(&r.out);

    text = "{\"message\":{\"content\":\"a\"},\"done\":false}\n"
           "{\"error\":\"model runner crashed\"}\n";
    run("ollama/m", "", text, strlen(text), 3, 50, 0, &r);
    is_int(r.failed, 1, "ollama error line fails");
    ok(strstr(r.out.data, "model runner crashed") != NULL,
       "ollama error frame");
    cg_buf_free(&r.out);

    text = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n";
    run("openai/g", "", text, strlen(text), 1, 2, 0, &r);
    is_int(r.rc, -1, "stream without end fails");
    ok(strstr(r.out.data, "ended the stream early") != NULL,
       "stream without end error frame");
    cg_buf_free(&r.out);

    text = "data: not json\n\n";
    run("openai/g", "", text, strlen(text), 0, 0, 0, &r);
    is_int(r.failed, 1, "stream invalid json fails");
    cg_buf_free(&r.out);
}


typedef struct {
    cg_buf_t  log;
} sse_log_t;


static int
log_event(void *ctx, const cg_sse_event_t *ev)
{
    sse_log_t  *l = ctx;

    cg_buf_append_str(&l->log, "[");
    cg_buf_append_str(&l->log, ev->type);
    cg_buf_append_str(&l->log, "|");
    cg_buf_append(&l->log, ev->data, ev->data_len);
    cg_buf_append_str(&l->log, "|");
    cg_buf_append_str(&l->log, ev->id);
    cg_buf_append_str(&l->log, "]");
    return 0;
}


static void
test_sse_parser(void)
{
    cg_sse_t     p;
    sse_log_t    l = { { 0 } };
    const char  *text;
    size_t       i;
    char         big[200];

    text = "\xef\xbb\xbf: c1\r:c2\n"
           "data: a\rdata:b\r\ndata\nevent: e\nid: 7\n\n"
           "data: x\n\n"
           "event: nodata\n\n"
           "retry: 5\nfoo: bar\ndata:  two spaces\n\n"
           "data: unfinished";

    cg_sse_init(&p, 100, log_event, &l);
    for (i = 0; text[i]; i++) {
        is_int(cg_sse_feed(&p, text + i, 1), 0, "sse byte %zu fed", i);
    }
    is_str(l.log.data, "[e|a\nb\n|7][message|x|7][message| two spaces|7]",
           "sse events, multi-line data, CR and CRLF");
    is_int(p.comments, 2, "sse comments counted");
    is_int(p.events, 3, "sse events counted");
    cg_sse_free(&p);
    cg_buf_free(&l.log);

    memset(big, 'x', sizeof(big));
    cg_sse_init(&p, 100, log_event, &l);
    is_int(cg_sse_feed(&p, "data: ", 6), 0, "sse short line fed");
    is_int(cg_sse_feed(&p, big, sizeof(big)), -1, "sse long line rejected");
    is_int(p.too_long, 1, "sse too long flag");
    cg_sse_free(&p);
    cg_buf_free(&l.log);
}


int
main(void)
{
    test_openai_stream();
    test_openai_pass_through();
    test_openai_chunk_matching();
    test_anthropic_stream();
    test_ollama_stream();
    test_stream_errors();
    test_sse_parser();

    return done();
}
