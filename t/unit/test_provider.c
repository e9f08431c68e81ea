/* Request parsing, call building, answer translation and errors. */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "json.h"
#include "provider.h"


static int same_bytes(const char *got, size_t got_len, const char *expected);


static int
parse(const char *body, cg_chat_request_t *req, cg_error_t *err)
{
    return cg_chat_request_parse(body, strlen(body), CG_PROVIDER_OPENROUTER,
                                 req, err);
}


static void
expect_400(const char *name, const char *body, const char *param)
{
    cg_chat_request_t  req;
    cg_error_t         err;
    const char        *got;

    memset(&err, 0, sizeof(err));
    is_int(parse(body, &req, &err), -1, "%s rejected", name);
    is_int(err.status, 400, "%s status 400", name);
    is_str(err.type, "invalid_request_error", "%s type", name);

    got = err.param ? err.param : (err.param_path[0] ? err.param_path : NULL);
    is_str(got, param, "%s param", name);
}


static void
test_request_valid(void)
{
    cg_chat_request_t  req;
    cg_error_t         err;

    is_int(parse("{\"model\":\"anthropic/claude-3-5-haiku\",\"stream\":true,"
                 "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                 &req, &err), 0, "request anthropic prefix parsed");
    is_int(req.provider, CG_PROVIDER_ANTHROPIC, "request provider anthropic");
    is_str(req.model, "claude-3-5-haiku", "request upstream model");
    is_str(req.model_requested, "anthropic/claude-3-5-haiku",
           "request requested model");
    is_int(req.stream, 1, "request stream true");
    cg_chat_request_free(&req);

    is_int(parse("{\"model\":\"meta-llama/llama-3\",\"messages\":"
                 "[{\"role\":\"user\",\"content\":\"hi\"}]}", &req, &err), 0,
           "request unknown prefix parsed");
    is_int(req.provider, CG_PROVIDER_OPENROUTER,
           "request unknown prefix default provider");
    is_str(req.model, "meta-llama/llama-3", "request unknown prefix kept");
    cg_chat_request_free(&req);

    is_int(parse("{\"model\":\"openrouter/openai/gpt-4o\",\"messages\":"
                 "[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
                 "[{\"id\":\"c\"}]},{\"role\":\"tool\",\"content\":[{\"type\":"
                 "\"text\",\"text\":\"x\"}]}]}", &req, &err), 0,
           "request tool_calls null content parsed");
    is_int(req.provider, CG_PROVIDER_OPENROUTER, "request openrouter prefix");
    is_str(req.model, "openai/gpt-4o", "request model keeps inner slash");
    is_int(req.stream, 0, "request stream default false");
    cg_chat_request_free(&req);
}


static void
test_request_invalid(void)
{
    char    *big;
    size_t   i, n, len;

    expect_400("not json", "{\"model\":", NULL);
    expect_400("not object", "[1,2]", NULL);
    expect_400("model missing", "{\"messages\":[{\"role\":\"user\","
               "\"content\":\"a\"}]}", "model");
    expect_400("model empty", "{\"model\":\"\",\"messages\":[]}", "model");
    expect_400("model number", "{\"model\":5,\"messages\":[]}", "model");
    expect_400("model prefix only", "{\"model\":\"ollama/\",\"messages\":"
               "[{\"role\":\"user\",\"content\":\"a\"}]}", "model");
    expect_400("messages missing", "{\"model\":\"m\"}", "messages");
    expect_400("messages empty", "{\"model\":\"m\",\"messages\":[]}",
               "messages");
    expect_400("messages object", "{\"model\":\"m\",\"messages\":{}}",
               "messages");
    expect_400("message not object", "{\"model\":\"m\",\"messages\":[1]}",
               "messages[0]");
    expect_400("role unknown", "{\"model\":\"m\",\"messages\":[{\"role\":"
               "\"user\",\"content\":\"a\"},{\"role\":\"bot\",\"content\":"
               "\"a\"}]}", "messages[1].role");
    expect_400("content number", "{\"model\":\"m\",\"messages\":[{\"role\":"
               "\"user\",\"content\":1}]}", "messages[0].content");
    expect_400("content null user", "{\"model\":\"m\",\"messages\":[{\"role\":"
               "\"user\",\"content\":null}]}", "messages[0].content");
    expect_400("content part untyped", "{\"model\":\"m\",\"messages\":"
               "[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}]}",
               "messages[0].content[0]");
    expect_400("stream string", "{\"model\":\"m\",\"stream\":\"yes\","
               "\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}",
               "stream");
    expect_400("bad utf8", "{\"model\":\"m\xff\",\"messages\":[{\"role\":"
               "\"user\",\"content\":\"a\"}]}", NULL);

    big = malloc(400);
    memset(big, 'a', 399);
    big[399] = '\0';
    {
        char  body[600];

        snprintf(body, sizeof(body), "{\"model\":\"%s\",\"messages\":[]}",
                 big);
        expect_400("model too long", body, "model");
    }
    free(big);

    /* 10 001 messages, and nesting far past the depth limit. */
    n = 10001;
    big = malloc(64 + n * 32);
    strcpy(big, "{\"model\":\"m\",\"messages\":[");
    for (i = 0; i < n; i++) {
        strcat(big, i ? ",{\"role\":\"user\",\"content\":\"a\"}"
                      : "{\"role\":\"user\",\"content\":\"a\"}");
    }
    strcat(big, "]}");
    expect_400("messages too many", big, "messages");
    free(big);

    n = 100000;
    big = malloc(n * 2 + 64);
    strcpy(big, "{\"model\":\"m\",\"x\":");
    len = strlen(big);
    memset(big + len, '[', n);
    big[len + n] = '\0';
    expect_400("deep nesting", big, NULL);
    free(big);
}


/*
 * cg_chat_request_parse() reads the body without a tree, and the /chat
 * form checks the same members on a tree. For bodies without a provider
 * prefix or form fields, both must give the same result and the same 400.
 */
static void
test_request_same_as_tree(void)
{
    static const char  *bodies[] = {
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"system\","
        "\"content\":\"s\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"a\"},{\"type\":\"image_url\"}]}]}",
        "{\"messages\":[{\"role\":\"assistant\",\"content\":null,"
        "\"tool_calls\":[{\"id\":\"c\"}]}],\"model\":\"m\",\"stream\":null}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\","
        "\"tool_calls\":[1]},{\"role\":\"tool\",\"content\":\"r\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"role\":\"bad\","
        "\"content\":\"x\"}],\"stream\":false}",
        "/* c */ {\"model\":\"m\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"x\",\"content\":7}]}",

        "{\"model\":\"m\",\"messages\":[{\"role\":\"bad\",\"role\":\"user\","
        "\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":7,\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"messages\":[\"hi\"]}",
        "{\"model\":\"m\",\"messages\":[[{\"role\":\"user\"}]]}",
        "{\"model\":\"m\",\"messages\":[null]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
        "{\"role\":\"user\"},{\"role\":\"x\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":null}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":null,"
        "\"tool_calls\":[1]}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\","
        "\"content\":null,\"tool_calls\":[]}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\","
        "\"tool_calls\":{\"0\":1}}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\","
        "\"tool_calls\":[],\"tool_calls\":[1]}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\","
        "\"tool_calls\":[1],\"tool_calls\":[]}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":7}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "{\"*\":{\"type\":\"t\"}}}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "[{\"type\":\"t\"},{\"text\":\"x\"},{\"type\":1}]}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "[{\"type\":1,\"type\":\"t\"}]}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "[{\"type\":\"t\"},[\"type\"]]}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "[{\"type\":\"t\",\"type\":2}]}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "[\"t\"]},{\"role\":\"x\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[]}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\","
        "\"nested\":{\"content\":7,\"role\":1}}]}",
        "{\"model\":\"m\",\"messages\":[]}",
        "{\"model\":\"m\",\"messages\":{\"*\":{\"role\":\"user\"}}}",
        "{\"model\":\"m\",\"messages\":\"hi\"}",
        "{\"model\":\"m\"}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        "{\"model\":7,\"messages\":[]}",
        "{\"model\":\"\",\"messages\":[]}",
        "{\"model\":null}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
        "\"stream\":\"yes\"}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
        "\"stream\":1}",
        "{\"model\":\"m\",\"messages\":[7],\"stream\":\"yes\"}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
        "\"model\":\"m\"}",
        "{\"model\":\"m\",\"model\\u0000x\":1}",
        "{\"model\":\"m\",\"x\\u0000\":1,\"messages\":[]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"\\\\u0000\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"a\\u0000\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"a\\u0000\"}],\"model\":\"m\"}",
        "[{\"model\":\"m\"}]",
        "\"text\"",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]",
        "{\"model\":\"m\" \"messages\":[]}",
        "",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\"}]}",
    };
    cg_chat_request_t  got, want;
    cg_error_t         got_err, want_err;
    cg_buf_t           many;
    char               key_id[64], model[300];
    size_t             i, n;
    int                got_rc, want_rc;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]) + 3; i++) {
        const char  *body = i < sizeof(bodies) / sizeof(bodies[0])
                            ? bodies[i] : NULL;

        memset(&many, 0, sizeof(many));

        if (body == NULL) {
            /* Past the maximum message count, the count is the cause. */
            n = i - sizeof(bodies) / sizeof(bodies[0]);
            memset(model, 'm', sizeof(model));
            model[n == 2 ? 257 : 256] = '\0';
            cg_buf_append_str(&many, "{\"model\":\"");
            cg_buf_append_str(&many, n == 0 ? "m" : model);
            cg_buf_append_str(&many, "\",\"messages\":[7");
            for (n = 0; n < 10000; n++) {
                cg_buf_append_str(&many, ",{}");
            }
            cg_buf_append_str(&many, "]}");
            body = many.data;
        }

        memset(&got_err, 0, sizeof(got_err));
        memset(&want_err, 0, sizeof(want_err));

        got_rc = cg_chat_request_parse(body, strlen(body),
                                       CG_PROVIDER_OPENROUTER, &got,
                                       &got_err);
        want_rc = cg_chat_form_parse(body, strlen(body),
                                     CG_PROVIDER_OPENROUTER, &want, key_id,
                                     sizeof(key_id), &want_err);

        is_int(got_rc, want_rc, "request same as tree %zu result", i);

        if (got_rc != 0 || want_rc != 0) {
            is_int(got_err.status, want_err.status,
                   "request same as tree %zu status", i);
            is_str(got_err.message, want_err.message,
                   "request same as tree %zu message", i);
            is_str(got_err.param, want_err.param,
                   "request same as tree %zu param", i);
            is_str(got_err.param_path, want_err.param_path,
                   "request same as tree %zu param path", i);
        } else {
            is_str(got.model, want.model, "request same as tree %zu model", i);
            is_int(got.stream, want.stream,
                   "request same as tree %zu stream", i);
            is_int(got.provider, want.provider,
                   "request same as tree %zu provider", i);
            cg_chat_request_free(&got);
            cg_chat_request_free(&want);
        }

        cg_buf_free(&many);
    }
}


/* Only a request to Anthropic or Ollama has a tree. */
static void
test_request_tree(void)
{
    cg_chat_request_t  req;
    cg_provider_call_t call;
    cg_error_t         err;
    const char        *body;

    body = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
           "\"content\":\"hi\"}]}";
    is_int(parse(body, &req, &err), 0, "request pass parsed");
    ok(req.root == NULL, "request pass without tree");
    is_int(cg_provider_build_call(&req, "http://127.0.0.1:1/v1", "k", &call,
                                  &err), 0, "request pass call built");
    ok(same_bytes(call.body, call.body_len, body), "request pass body as sent");
    cg_provider_call_free(&call);
    cg_chat_request_free(&req);

    is_int(parse("{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":"
                 "[{\"role\":\"user\",\"content\":\"hi\"}]}", &req, &err), 0,
           "request stream parsed");
    ok(req.root == NULL, "request stream without tree");
    cg_chat_request_free(&req);

    is_int(parse("{\"model\":\"openai/gpt-4o\",\"messages\":"
                 "[{\"role\":\"user\",\"content\":\"hi\"}]}", &req, &err), 0,
           "request prefix parsed");
    ok(req.root == NULL, "request prefix without tree");
    cg_chat_request_free(&req);

    is_int(parse("{\"model\":\"ollama/llama3\",\"messages\":"
                 "[{\"role\":\"user\",\"content\":\"hi\"}]}", &req, &err), 0,
           "request ollama parsed");
    ok(req.root != NULL, "request ollama has tree");
    cg_chat_request_free(&req);
}


/*
 * A stored key can move a request parsed without a tree to another
 * provider. Its body must come out as from a request parsed with one.
 */
static void
test_request_tree_later(void)
{
    static const cg_provider_id_t  providers[] = {
        CG_PROVIDER_ANTHROPIC, CG_PROVIDER_OLLAMA
    };
    cg_chat_request_t   req, want;
    cg_provider_call_t  call, want_call;
    cg_error_t          err;
    const char         *body;
    char                key_id[64];
    size_t              i;

    body = "{\"model\":\"m-1\",\"max_tokens\":5,\"temperature\":0.5,"
           "\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
           "{\"role\":\"user\",\"content\":\"hi\"}]}";

    for (i = 0; i < sizeof(providers) / sizeof(providers[0]); i++) {
        is_int(parse(body, &req, &err), 0, "tree later %zu parsed", i);
        ok(req.root == NULL, "tree later %zu without tree", i);
        req.provider = providers[i];

        is_int(cg_chat_form_parse(body, strlen(body), providers[i], &want,
                                  key_id, sizeof(key_id), &err), 0,
               "tree later %zu form parsed", i);

        is_int(cg_provider_build_call(&req, "http://127.0.0.1:1", "k", &call,
                                      &err), 0, "tree later %zu call built", i);
        is_int(cg_provider_build_call(&want, "http://127.0.0.1:1", "k",
                                      &want_call, &err), 0,
               "tree later %zu form call built", i);
        ok(call.body != NULL && want_call.body != NULL
           && same_bytes(call.body, call.body_len, want_call.body),
           "tree later %zu body as with a tree", i);
        ok(req.root == NULL, "tree later %zu request left alone", i);

        cg_provider_call_free(&call);
        cg_provider_call_free(&want_call);
        cg_chat_request_free(&req);
        cg_chat_request_free(&want);
    }
}


/*
 * A request to an OpenAI-compatible provider has no tree. Its body must
 * come out as from the same request read with a tree (the /chat form's
 * parser), also where the body is written again, and stream_options must
 * read the same.
 */
static void
test_request_no_tree_body(void)
{
    static const struct {
        const char  *name;
        const char  *body;
        int          stream_options;
        int          include_usage;
    } cases[] = {
        { "stream", "{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":"
          "[{\"role\":\"user\",\"content\":\"hi\"}]}", 0, 0 },
        { "stream options", "{\"model\":\"gpt-4o\",\"stream\":true,"
          "\"stream_options\":{\"include_usage\":true},\"messages\":"
          "[{\"role\":\"user\",\"content\":\"hi\"}]}", 1, 1 },
        { "stream options null", "{\"model\":\"gpt-4o\",\"stream\":true,"
          "\"stream_options\":null,\"messages\":"
          "[{\"role\":\"user\",\"content\":\"hi\"}]}", 1, 0 },
        { "include_usage false", "{\"model\":\"gpt-4o\",\"stream\":true,"
          "\"stream_options\":{\"include_usage\":false},\"messages\":"
          "[{\"role\":\"user\",\"content\":\"hi\"}]}", 1, 0 },
        { "include_usage in array", "{\"model\":\"gpt-4o\",\"stream\":true,"
          "\"stream_options\":[{\"include_usage\":true}],\"messages\":"
          "[{\"role\":\"user\",\"content\":\"hi\"}]}", 1, 0 },
        { "prefix", "{\"model\":\"openai/gpt-4o\",\"temperature\":0.50,"
          "\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9\"}]}",
          0, 0 },
        { "prefix stream", "{ \"stream\" : true, \"model\":\"openai/x\","
          "\"n\":1e2,\"messages\":[{\"role\":\"user\",\"content\":"
          "[{\"type\":\"text\",\"text\":\"a\\/b\"}]}]}", 0, 0 },
    };
    cg_chat_request_t   req, want;
    cg_provider_call_t  call, want_call;
    cg_error_t          err;
    const char         *body;
    char                key_id[64];
    size_t              i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        body = cases[i].body;

        is_int(parse(body, &req, &err), 0, "no tree %s parsed", cases[i].name);
        ok(req.root == NULL, "no tree %s without tree", cases[i].name);
        is_int(req.stream_options, cases[i].stream_options,
               "no tree %s stream_options", cases[i].name);
        is_int(req.include_usage, cases[i].include_usage,
               "no tree %s include_usage", cases[i].name);

        is_int(cg_chat_form_parse(body, strlen(body), CG_PROVIDER_OPENAI,
                                  &want, key_id, sizeof(key_id), &err), 0,
               "no tree %s form parsed", cases[i].name);
        ok(want.root != NULL, "no tree %s form has tree", cases[i].name);
        is_int(want.stream_options, cases[i].stream_options,
               "no tree %s form stream_options", cases[i].name);
        is_int(want.include_usage, cases[i].include_usage,
               "no tree %s form include_usage", cases[i].name);

        /* The form's request has no body, so it is always written again. */
        is_int(cg_provider_build_call(&req, "http://127.0.0.1:1/v1", "k",
                                      &call, &err), 0,
               "no tree %s call built", cases[i].name);
        is_int(cg_provider_build_call(&want, "http://127.0.0.1:1/v1", "k",
                                      &want_call, &err), 0,
               "no tree %s form call built", cases[i].name);

        if (cg_openai_body_unchanged(&req)) {
            ok(same_bytes(call.body, call.body_len, body),
               "no tree %s body as sent", cases[i].name);
        } else {
            ok(call.body != NULL && want_call.body != NULL
               && same_bytes(call.body, call.body_len, want_call.body),
               "no tree %s body as with a tree", cases[i].name);
        }

        cg_provider_call_free(&call);
        cg_provider_call_free(&want_call);
        cg_chat_request_free(&req);
        cg_chat_request_free(&want);
    }
}


static void
test_form(void)
{
    cg_chat_request_t  req;
    cg_error_t         err;
    char               key_id[40];
    const char        *body;

    body = "{\"provider\":\"anthropic\",\"model\":\"anthropic/claude\","
           "\"key_id\":\"k1\",\"messages\":[{\"role\":\"user\",\"content\":"
           "\"hi\"}]}";
    is_int(cg_chat_form_parse(body, strlen(body), CG_PROVIDER_OPENAI, &req,
                              key_id, sizeof(key_id), &err), 0,
           "form parsed");
    is_int(req.provider, CG_PROVIDER_ANTHROPIC, "form provider");
    is_str(req.model, "claude", "form matching prefix dropped");
    is_str(key_id, "k1", "form key_id copied");
    ok(cg_json_get(req.root, "provider") == NULL, "form provider removed");
    ok(cg_json_get(req.root, "key_id") == NULL, "form key_id removed");
    cg_chat_request_free(&req);

    body = "{\"provider\":\"openrouter\",\"model\":\"openai/gpt-4o\","
           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    is_int(cg_chat_form_parse(body, strlen(body), CG_PROVIDER_OPENAI, &req,
                              key_id, sizeof(key_id), &err), 0,
           "form other prefix parsed");
    is_str(req.model, "openai/gpt-4o", "form other prefix kept");
    cg_chat_request_free(&req);

    body = "{\"provider\":\"azure\",\"model\":\"m\",\"messages\":"
           "[{\"role\":\"user\",\"content\":\"hi\"}]}";
    is_int(cg_chat_form_parse(body, strlen(body), CG_PROVIDER_OPENAI, &req,
                              key_id, sizeof(key_id), &err), -1,
           "form unknown provider rejected");
    is_str(err.param, "provider", "form unknown provider param");

    body = "{\"provider\":\"ollama\",\"model\":\"m\",\"key_id\":"
           "\"0123456789012345678901234567890123456789\",\"messages\":"
           "[{\"role\":\"user\",\"content\":\"hi\"}]}";
    is_int(cg_chat_form_parse(body, strlen(body), CG_PROVIDER_OPENAI, &req,
                              key_id, sizeof(key_id), &err), -1,
           "form long key_id rejected");
    is_str(err.param, "key_id", "form long key_id param");
}


static int
has_header(struct curl_slist *h, const char *line)
{
    for ( /* void */ ; h; h = h->next) {
        if (strcmp(h->data, line) == 0) {
            return 1;
        }
    }
    return 0;
}


static int
header_prefix(struct curl_slist *h, const char *prefix)
{
    for ( /* void */ ; h; h = h->next) {
        if (strncmp(h->data, prefix, strlen(prefix)) == 0) {
            return 1;
        }
    }
    return 0;
}


static void
test_build_openai(void)
{
    cg_chat_request_t   req;
    cg_provider_call_t  call;
    cg_error_t          err;

    parse("{\"model\":\"openai/gpt-4o\",\"temperature\":0.70,\"seed\":"
          "12345678901234567890,\"stream\":true,\"messages\":[{\"role\":"
          "\"user\",\"content\":\"h\\u00e9 \\\"q\\\"\"}]}", &req, &err);

    is_int(cg_provider_build_call(&req, "https://api.openai.com/v1/", "sk-x",
                                  &call, &err), 0, "openai call built");
    is_str(call.url, "https://api.openai.com/v1/chat/completions",
           "openai url no double slash");
    ok(has_header(call.headers, "Authorization: Bearer sk-x"),
       "openai bearer header");
    ok(has_header(call.headers, "Content-Type: application/json"),
       "openai content type");
    ok(strstr(call.body, "\"model\":\"gpt-4o\"") != NULL, "openai model "
       "replaced");
    ok(strstr(call.body, "\"temperature\":0.70") != NULL,
       "openai number text kept");
    ok(strstr(call.body, "12345678901234567890") != NULL,
       "openai big integer kept");
    ok(strstr(call.body, "\"stream_options\":{\"include_usage\":true}")
       != NULL, "openai include_usage added");
    ok(strstr(call.body, "h\xc3\xa9 \\\"q\\\"") != NULL,
       "openai string escaped");
    cg_provider_call_free(&call);

    is_int(cg_provider_build_call(&req, "http://x", "bad\r\nX: y", &call,
                                  &err), -1, "key with line break rejected");
    ok(strstr(err.message, "bad") == NULL, "key absent from error");
    cg_chat_request_free(&req);

    parse("{\"model\":\"m\",\"stream\":true,\"stream_options\":{},"
          "\"messages\":[{\"role\":\"user\",\"content\":\"h\"}]}", &req, &err);
    cg_provider_build_call(&req, "http://x", "k", &call, &err);
    ok(strstr(call.body, "include_usage") == NULL,
       "openai client stream_options kept");
    cg_provider_call_free(&call);
    cg_chat_request_free(&req);
}


/*
 * curl adds "Expect: 100-continue" only to bodies over 1024 bytes (over
 * 1 MiB in curl 7.88), so the call cancels it with "Expect:" only there.
 */
static void
test_build_expect(void)
{
    cg_chat_request_t   req;
    cg_provider_call_t  call;
    cg_error_t          err;
    char                body[1200];
    int                 n;

    parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
          "\"content\":\"h\"}]}", &req, &err);
    is_int(cg_provider_build_call(&req, "http://x", "k", &call, &err), 0,
           "small body call built");
    ok(!header_prefix(call.headers, "Expect"), "small body without Expect");
    ok(has_header(call.headers, "Authorization: Bearer k"),
       "small body bearer header");
    cg_provider_call_free(&call);
    cg_chat_request_free(&req);

    n = snprintf(body, sizeof(body), "{\"model\":\"m\",\"messages\":[{"
                 "\"role\":\"user\",\"content\":\"%01100d\"}]}", 0);
    ok(n > 1024 && (size_t) n < sizeof(body), "large body of %d bytes", n);
    parse(body, &req, &err);
    is_int(cg_provider_build_call(&req, "http://x", "k", &call, &err), 0,
           "large body call built");
    ok(call.body_len > 1024, "large body sent with %zu bytes", call.body_len);
    ok(has_header(call.headers, "Expect:"), "large body with Expect");
    ok(has_header(call.headers, "Authorization: Bearer k"),
       "large body bearer header");
    ok(has_header(call.headers, "Content-Type: application/json"),
       "large body content type");
    cg_provider_call_free(&call);
    cg_chat_request_free(&req);
}


/*
 * Builds the call for body against a fixed URL and key. Returns the result
 * of cg_provider_build_call(), or -1 when body is rejected.
 */
static int
build(const char *body, cg_chat_request_t *req, cg_provider_call_t *call)
{
    cg_error_t  err;

    memset(call, 0, sizeof(*call));

    if (parse(body, req, &err) != 0) {
        return -1;
    }

    return cg_provider_build_call(req, "http://127.0.0.1:1/v1", "k", call,
                                  &err);
}


static int
same_bytes(const char *got, size_t got_len, const char *expected)
{
    return got != NULL && got_len == strlen(expected)
           && memcmp(got, expected, got_len) == 0;
}


/* Counts the occurrences of needle in the NUL-terminated text. */
static int
count_substr(const char *text, const char *needle)
{
    const char  *p;
    int          n = 0;

    for (p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }

    return n;
}


/*
 * The request bodies below contain spaces and a \u escape, which the rewrite
 * drops, so a byte comparison separates a body sent as it came from a
 * rewritten one.
 */
static void
test_build_openai_pass(void)
{
    cg_chat_request_t   req;
    cg_provider_call_t  call;
    cg_error_t          err;
    const char         *body;

    body = "{ \"model\": \"gpt-4o\", \"temperature\": 0.70, \"stream\": false,"
           " \"messages\": [{\"role\": \"user\","
           " \"content\": \"h\\u00e9\"}] }";
    is_int(build(body, &req, &call), 0, "openai plain call built");
    ok(same_bytes(call.body, call.body_len, body),
       "openai plain body passed through");
    cg_provider_call_free(&call);
    cg_chat_request_free(&req);

    body = "{ \"model\": \"gpt-4o\", \"stream\": true, \"stream_options\":"
           " {\"include_usage\": false}, \"messages\": [{\"role\": \"user\","
           " \"content\": \"h\\u00e9\"}] }";
    is_int(build(body, &req, &call), 0, "openai own stream_options built");
    ok(same_bytes(call.body, call.body_len, body),
       "openai own stream_options passed through");
    cg_provider_call_free(&call);
    cg_chat_request_free(&req);

    body = "{ \"model\": \"openai/gpt-4o\", \"messages\": [{\"role\":"
           " \"user\", \"content\": \"h\\u00e9\"}] }";
    is_int(build(body, &req, &call), 0, "openai prefix call built");
    ok(!same_bytes(call.body, call.body_len, body),
       "openai prefix body rewritten");
    is_int(count_substr(call.body, "\"model\":\"gpt-4o\""), 1,
           "openai prefix stripped");
    ok(strstr(call.body, "openai/") == NULL, "openai prefix not sent");
    cg_provider_call_free(&call);
    cg_chat_request_free(&req);

    body = "{ \"model\": \"gpt-4o\", \"stream\": true, \"messages\":"
           " [{\"role\": \"user\", \"content\": \"h\\u00e9\"}] }";
    is_int(build(body, &req, &call), 0, "openai stream call built");
    ok(!same_bytes(call.body, call.body_len, body),
       "openai stream body rewritten");
    is_int(count_substr(call.body,
                        "\"stream_options\":{\"include_usage\":true}"), 1,
           "openai stream include_usage added");
    cg_provider_call_free(&call);
    cg_chat_request_free(&req);

    /*
     * Only one copy of a repeated member would be validated, and a provider
     * may read another (Python's json module keeps the last), so the
     * request is rejected before any call is built.
     */
    body = "{ \"model\": \"gpt-4o\", \"messages\": [{\"role\": \"user\","
           " \"content\": \"h\\u00e9\"}], \"model\": \"o1-pro\" }";
    is_int(parse(body, &req, &err), -1, "openai repeated model rejected");
    is_int(err.status, 400, "openai repeated model status");
    ok(strstr(err.message, "model") != NULL,
       "openai repeated model named");

    body = "{ \"model\": \"gpt-4o\", \"seed\": 1, \"messages\": [{\"role\":"
           " \"user\", \"content\": \"h\\u00e9\"}], \"seed\": 2 }";
    is_int(parse(body, &req, &err), -1, "openai repeated member rejected");
    is_int(err.status, 400, "openai repeated member status");
}


static void
test_build_anthropic(void)
{
    cg_chat_request_t   req;
    cg_provider_call_t  call;
    cg_error_t          err;

    parse("{\"model\":\"anthropic/claude\",\"max_completion_tokens\":100,"
          "\"temperature\":0.5,\"top_p\":1,\"stop\":\"END\",\"messages\":["
          "{\"role\":\"system\",\"content\":\"be brief\"},"
          "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":"
          "\"be kind\"}]},"
          "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
          "\"hi\"}]}]}", &req, &err);

    is_int(cg_provider_build_call(&req, "https://api.anthropic.com/v1",
                                  "sk-ant-x", &call, &err), 0,
           "anthropic call built");
    is_str(call.url, "https://api.anthropic.com/v1/messages", "anthropic url");
    ok(has_header(call.headers, "x-api-key: sk-ant-x"), "anthropic key header");
    ok(has_header(call.headers, "anthropic-version: 2023-06-01"),
       "anthropic version header");
    ok(!header_prefix(call.headers, "Authorization"),
       "anthropic no authorization");
    ok(strstr(call.body, "\"system\":\"be brief\\n\\nbe kind\"") != NULL,
       "anthropic system joined");
    ok(strstr(call.body, "\"max_tokens\":100") != NULL,
       "anthropic max_completion_tokens");
    ok(strstr(call.body, "\"stop_sequences\":[\"END\"]") != NULL,
       "anthropic stop string");
    ok(strstr(call.body, "\"temperature\":0.5") != NULL,
       "anthropic temperature");
    ok(strstr(call.body, "\"messages\":[{\"role\":\"user\",\"content\":"
              "[{\"type\":\"text\",\"text\":\"hi\"}]}]") != NULL,
       "anthropic messages without system");
    ok(strstr(call.body, "\"stream\"") == NULL, "anthropic no stream");
    cg_provider_call_free(&call);
    cg_chat_request_free(&req);

    parse("{\"model\":\"anthropic/claude\",\"stream\":true,\"messages\":"
          "[{\"role\":\"user\",\"content\":\"hi\"}]}", &req, &err);
    cg_provider_build_call(&req, "http://h/", "k", &call, &err);
    ok(strstr(call.body, "\"max_tokens\":4096") != NULL,
       "anthropic default max_tokens");
    ok(strstr(call.body, "\"stream\":true") != NULL, "anthropic stream");
    cg_provider_call_free(&call);
    cg_chat_request_free(&req);

    parse("{\"model\":\"anthropic/claude\",\"max_tokens\":\"9\",\"messages\":"
          "[{\"role\":\"user\",\"content\":\"hi\"}]}", &req, &err);
    is_int(cg_provider_build_call(&req, "http://h", "k", &call, &err), -1,
           "anthropic bad max_tokens rejected");
    is_str(err.param, "max_tokens", "anthropic bad max_tokens param");
    cg_chat_request_free(&req);

    parse("{\"model\":\"anthropic/claude\",\"messages\":"
          "[{\"role\":\"system\",\"content\":\"s\"}]}", &req, &err);
    is_int(cg_provider_build_call(&req, "http://h", "k", &call, &err), -1,
           "anthropic system only rejected");
    cg_chat_request_free(&req);
}


static void
test_build_ollama(void)
{
    cg_chat_request_t   req;
    cg_provider_call_t  call;
    cg_error_t          err;

    parse("{\"model\":\"ollama/llama3:8b\",\"max_tokens\":50,\"seed\":7,"
          "\"stop\":[\"a\",\"b\"],\"temperature\":0.2,\"messages\":["
          "{\"role\":\"developer\",\"content\":\"d\"},"
          "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"},"
          "{\"type\":\"text\",\"text\":\"y\"}]}]}", &req, &err);

    is_int(cg_provider_build_call(&req, "http://127.0.0.1:11434//", "",
                                  &call, &err), 0, "ollama call built");
    is_str(call.url, "http://127.0.0.1:11434/api/chat", "ollama url");
    ok(!header_prefix(call.headers, "Authorization"),
       "ollama no authorization without key");
    ok(strstr(call.body, "\"stream\":false") != NULL, "ollama stream false");
    ok(strstr(call.body, "\"options\":{\"temperature\":0.2,\"seed\":7,"
              "\"num_predict\":50,\"stop\":[\"a\",\"b\"]}") != NULL,
       "ollama options");
    ok(strstr(call.body, "{\"role\":\"system\",\"content\":\"d\"}") != NULL,
       "ollama developer as system");
    ok(strstr(call.body, "{\"role\":\"user\",\"content\":\"x\\ny\"}") != NULL,
       "ollama parts joined");
    cg_provider_call_free(&call);

    cg_provider_build_call(&req, "http://h", "tok", &call, &err);
    ok(has_header(call.headers, "Authorization: Bearer tok"),
       "ollama bearer with key");
    cg_provider_call_free(&call);
    cg_chat_request_free(&req);
}


static void
completion(const char *model, const char *body, cg_completion_t *out,
    cg_error_t *err, int *rc)
{
    cg_chat_request_t  req;
    char               text[256];

    snprintf(text, sizeof(text), "{\"model\":\"%s\",\"messages\":[{\"role\":"
             "\"user\",\"content\":\"q\"}]}", model);
    parse(text, &req, err);
    *rc = cg_provider_parse_completion(&req, body, strlen(body), "chatcmpl-1",
                                       1700000000, out, err);
    cg_chat_request_free(&req);
}


static void
test_completion(void)
{
    cg_completion_t  c;
    cg_error_t       err;
    int              rc;

    completion("openai/gpt-4o", "{\"id\":\"up-1\",\"object\":"
               "\"chat.completion\",\"model\":\"gpt-4o-2024\",\"choices\":"
               "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
               "\"hello\"},\"finish_reason\":\"stop\"}],\"usage\":"
               "{\"prompt_tokens\":3,\"completion_tokens\":2,"
               "\"total_tokens\":5}}", &c, &err, &rc);
    is_int(rc, 0, "openai answer parsed");
    is_str(c.reply, "hello", "openai reply");
    is_int(c.usage.total_tokens, 5, "openai usage total");
    ok(strstr(c.body, "\"id\":\"up-1\"") != NULL, "openai id kept");
    ok(strstr(c.body, "\"model\":\"openai/gpt-4o\"") != NULL,
       "openai model as requested");
    cg_completion_free(&c);

    completion("anthropic/claude", "{\"id\":\"msg_1\",\"type\":\"message\","
               "\"content\":[{\"type\":\"text\",\"text\":\"he\"},{\"type\":"
               "\"text\",\"text\":\"llo\"}],\"stop_reason\":\"max_tokens\","
               "\"usage\":{\"input_tokens\":10,\"output_tokens\":4}}",
               &c, &err, &rc);
    is_int(rc, 0, "anthropic answer parsed");
    is_str(c.reply, "hello", "anthropic reply joined");
    is_int(c.usage.prompt_tokens, 10, "anthropic prompt tokens");
    is_int(c.usage.completion_tokens, 4, "anthropic completion tokens");
    is_int(c.usage.total_tokens, 14, "anthropic total tokens");
    is_str(c.body, "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\","
           "\"created\":1700000000,\"model\":\"anthropic/claude\",\"choices\":"
           "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
           "\"hello\"},\"finish_reason\":\"length\"}],\"usage\":"
           "{\"prompt_tokens\":10,\"completion_tokens\":4,\"total_tokens\":14}}",
           "anthropic body");
    cg_completion_free(&c);

    completion("ollama/llama3", "{\"model\":\"llama3\",\"message\":{\"role\":"
               "\"assistant\",\"content\":\"hey\"},\"done\":true,"
               "\"done_reason\":\"stop\",\"eval_count\":6}", &c, &err, &rc);
    is_int(rc, 0, "ollama answer parsed");
    is_str(c.reply, "hey", "ollama reply");
    is_int(c.usage.prompt_tokens, -1, "ollama missing prompt count");
    is_int(c.usage.completion_tokens, 6, "ollama eval count");
    is_int(c.usage.total_tokens, -1, "ollama total unknown");
    ok(strstr(c.body, "\"prompt_tokens\":null") != NULL,
       "ollama missing count null");
    ok(strstr(c.body, "\"finish_reason\":\"stop\"") != NULL,
       "ollama finish reason");
    cg_completion_free(&c);

    completion("anthropic/claude", "<html>bad gateway</html>", &c, &err, &rc);
    is_int(rc, -1, "anthropic html rejected");
    is_int(err.status, 502, "invalid answer status 502");
    is_str(err.type, "upstream_error", "invalid answer type");
    ok(strncmp(err.message, "provider \"anthropic\" sent an invalid answer: ",
               44) == 0, "invalid answer message");

    completion("ollama/x", "{\"done\":true}", &c, &err, &rc);
    is_int(rc, -1, "ollama answer without message rejected");
    completion("gpt", "{\"choices\":[]}", &c, &err, &rc);
    is_int(rc, -1, "openai answer without choices rejected");
}


/*
 * A completion whose model equals the requested name is returned as it came.
 * Otherwise it is written again with that name, which drops the spaces.
 */
static void
test_completion_pass(void)
{
    cg_completion_t  c;
    cg_error_t       err;
    const char      *body;
    int              rc;

    body = "{ \"id\": \"up-1\", \"object\": \"chat.completion\", \"model\":"
           " \"gpt-4o\", \"choices\": [{\"index\": 0, \"message\": {\"role\":"
           " \"assistant\", \"content\": \"h\\u00e9\"}, \"finish_reason\":"
           " \"stop\"}], \"usage\": {\"prompt_tokens\": 3,"
           " \"completion_tokens\": 2, \"total_tokens\": 5} }";

    completion("gpt-4o", body, &c, &err, &rc);
    is_int(rc, 0, "completion same model parsed");
    ok(same_bytes(c.body, c.body_len, body),
       "completion same model passed through");
    is_str(c.reply, "h\xc3\xa9", "completion same model reply");
    is_int(c.usage.prompt_tokens, 3, "completion same model prompt tokens");
    is_int(c.usage.completion_tokens, 2,
           "completion same model completion tokens");
    is_int(c.usage.total_tokens, 5, "completion same model total tokens");
    cg_completion_free(&c);

    /* The provider echoes the name without the prefix the client sent. */
    completion("openai/gpt-4o", body, &c, &err, &rc);
    is_int(rc, 0, "completion prefixed model parsed");
    ok(!same_bytes(c.body, c.body_len, body),
       "completion prefixed model rewritten");
    is_int(count_substr(c.body, "\"model\":\"openai/gpt-4o\""), 1,
           "completion prefixed model as requested");
    ok(strstr(c.body, "\"id\":\"up-1\"") != NULL,
       "completion prefixed model id");
    is_str(c.reply, "h\xc3\xa9", "completion prefixed model reply");
    is_int(c.usage.prompt_tokens, 3,
           "completion prefixed model prompt tokens");
    is_int(c.usage.completion_tokens, 2,
           "completion prefixed model completion tokens");
    is_int(c.usage.total_tokens, 5, "completion prefixed model total tokens");
    cg_completion_free(&c);

    completion("gpt-4o", "{ \"id\": \"up-1\","
               " \"model\": \"gpt-4o-2024-08-06\","
               " \"choices\": [{\"message\": {\"content\": \"x\"}}],"
               " \"usage\": {\"total_tokens\": 7} }", &c, &err, &rc);
    is_int(rc, 0, "completion dated model parsed");
    ok(strstr(c.body, "\"model\":\"gpt-4o\"") != NULL,
       "completion dated model as requested");
    ok(strstr(c.body, "2024-08-06") == NULL,
       "completion dated model replaced");
    is_int(c.usage.total_tokens, 7, "completion dated model total tokens");
    cg_completion_free(&c);

    completion("gpt-4o", "{ \"id\": \"up-1\", \"model\": \"gpt-4o\","
               " \"choices\": [{\"message\": {\"content\": \"x\"}}],"
               " \"model\": \"o1-pro\" }", &c, &err, &rc);
    is_int(rc, 0, "completion repeated model parsed");
    ok(strstr(c.body, "o1-pro") == NULL,
       "completion repeated model rewritten");
    cg_completion_free(&c);
}


/*
 * Translates body the way cg_provider_parse_completion() did before it had
 * a path without a tree: always through cg_json_parse().
 */
static int
completion_by_tree(const cg_chat_request_t *req, const char *body,
    cg_completion_t *out, cg_error_t *err)
{
    char      cause[256], what[300];
    yajl_val  root;
    int       rc;

    memset(out, 0, sizeof(*out));
    out->usage.prompt_tokens = -1;
    out->usage.completion_tokens = -1;
    out->usage.total_tokens = -1;

    root = cg_json_parse(body, strlen(body), cause, sizeof(cause));
    if (root == NULL) {
        snprintf(what, sizeof(what), "invalid JSON: %s", cause);
        cg_provider_invalid_answer(err, req->provider, what);
        return -1;
    }

    rc = cg_openai_parse_completion(req, body, strlen(body), root,
                                    "chatcmpl-1", out, err);
    yajl_tree_free(root);

    if (rc != 0) {
        cg_completion_free(out);
    }

    return rc;
}


/*
 * Checks that OpenAI-compatible responses translate to the same bytes with
 * or without the tree: pass-through cases, rewrites and invalid responses.
 */
static void
test_completion_same_as_tree(void)
{
    static const char  *bodies[] = {
        /* kept as it came */
        "{\"id\":\"a\",\"model\":\"gpt-4o\",\"choices\":[{\"message\":"
        "{\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":1,"
        "\"completion_tokens\":2,\"total_tokens\":3}}",
        "{\"id\":null,\"model\":\"gpt-4o\",\"choices\":[{\"message\":"
        "{\"content\":null}}]}",
        "{\"id\":1,\"model\":\"gpt-4o\",\"choices\":[{\"message\":{}}],"
        "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":5}}",
        "{\"id\":\"a\",\"model\":\"gpt-4o\",\"choices\":[{\"message\":"
        "{\"content\":\"a\\u0000b\"}}]}",
        "{\"id\":\"a\",\"model\":\"gpt-4o\\u0000x\",\"choices\":[{\"message\":"
        "{\"content\":\"x\"}}]}",
        "{\"id\":\"a\",\"model\":\"gpt-4o\",\"choices\":[{\"message\":"
        "{\"content\":\"first\",\"content\":\"second\"},\"message\":"
        "{\"content\":7}}]}",
        "{\"id\":\"a\",\"model\":\"gpt-4o\",\"choices\":[{\"message\":"
        "{\"content\":\"x\"}}],\"usage\":{\"prompt_tokens\":-1,"
        "\"completion_tokens\":1,\"total_tokens\":-1}}",
        "{\"id\":\"a\",\"model\":\"gpt-4o\",\"choices\":[{\"message\":"
        "{\"content\":\"x\"}}],\"usage\":{\"prompt_tokens\":"
        "99999999999999999999,\"completion_tokens\":1.0,"
        "\"total_tokens\":9223372036854775807}}",
        "{\"id\":\"a\",\"model\":\"gpt-4o\",\"choices\":[{\"message\":"
        "{\"content\":\"x\"}}],\"usage\":[1,2,3]}",
        "/* c */ {\"id\":\"a\",\"model\":\"gpt-4o\",\"choices\":"
        "[{\"message\":{\"content\":\"\\ud83d\\ude00\"}},{}]}",

        /* written again */
        "{\"model\":\"gpt-4o\",\"choices\":[{\"message\":{\"content\":\"x\"}}]}",
        "{\"id\":\"a\",\"model\":\"gpt-4o-2024\",\"choices\":[{\"message\":"
        "{\"content\":\"x\"}}]}",
        "{\"id\":\"a\",\"model\":7,\"choices\":[{\"message\":"
        "{\"content\":\"x\"}}]}",
        "{\"id\":\"a\",\"model\":\"gpt-4o\",\"choices\":[{\"message\":"
        "{\"content\":\"x\"}}],\"id\":\"b\"}",
        "{\"id\":\"a\",\"id\\u0000\":\"b\",\"model\":\"gpt-4o\",\"choices\":"
        "[{\"message\":{\"content\":\"x\\u0000y\"}}],\"n\":1.50}",
        "{\"id\":\"a\",\"model\":{\"x\":[1,{\"model\":2}]},\"choices\":"
        "[{\"message\":{\"content\":\"x\"}}],\"usage\":{\"model\":\"keep\","
        "\"total_tokens\":4}}",
        "{\"model\":[1,[2]],\"choices\":[{\"message\":{\"content\":null}}]}",
        "{\"model\":\"o\",\"n\":[-0,1.50,1e400,99999999999999999999,-1E-2,"
        "0.0],\"choices\":[{\"message\":{\"content\":\"x\"}}]}",
        "{\"model\":\"o\",\"e\":{},\"a\":[],\"aa\":[[],[{}]],\"b\":true,"
        "\"f\":false,\"z\":null,\"choices\":[{\"message\":{}}]}",
        "{\"model\":\"o\",\"s\":\"a\\/b \\u00e9 \\ud83d\\ude00 \\\"q\\\" "
        "\\\\ \\n \\u001f \\u2028\",\"choices\":[{\"message\":"
        "{\"content\":\"x\"}}]}",
        "{\"model\":\"o\",\"o\":{\"k\\u0000x\":\"v\\u0000w\"},\"choices\":"
        "[{\"message\":{\"content\":\"x\"}}]}",
        "/* c */ { \"model\" : \"o\" , \"choices\" : [ { \"message\" :"
        " { \"content\" : \"x\" } } ] } // end",
        "{\"model\":\"a\",\"choices\":[{\"message\":{\"content\":\"x\"}}],"
        "\"model\":\"b\",\"model\\u0000\":{\"c\":1}}",

        /* invalid */
        "{\"id\":\"a\",\"model\":\"gpt-4o\",\"choices\":[]}",
        "{\"id\":\"a\",\"model\":\"gpt-4o\",\"choices\":{}}",
        "{\"id\":\"a\",\"model\":\"gpt-4o\",\"choices\":[1]}",
        "{\"id\":\"a\",\"model\":\"gpt-4o\",\"choices\":[{\"message\":\"m\"}]}",
        "{\"id\":\"a\",\"model\":\"gpt-4o\",\"choices\":[{\"message\":"
        "{\"content\":[\"x\"]}}]}",
        "[{\"id\":\"a\"}]",
        "{\"id\":\"a\",\"model\":\"gpt-4o\",\"choices\":[{\"message\":"
        "{\"content\":\"\xc3\"}}]}",
        "{\"id\":\"a\",\"model\":\"gpt-4o\"",
        "",
    };
    const size_t       npass = 10;    /* the bodies kept as they came */
    const size_t       nvalid = 23;   /* those and the ones written again */
    cg_chat_request_t  req;
    cg_completion_t    got, want;
    cg_error_t         got_err, want_err;
    size_t             i;
    int                got_rc, want_rc;

    is_int(parse("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
                 "\"content\":\"q\"}]}", &req, &got_err), 0,
           "same as tree request parsed");

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        memset(&got_err, 0, sizeof(got_err));
        memset(&want_err, 0, sizeof(want_err));

        got_rc = cg_provider_parse_completion(&req, bodies[i],
                                              strlen(bodies[i]), "chatcmpl-1",
                                              1700000000, &got, &got_err);

        /* Only invalid bodies go to the tree path. */
        memset(&want, 0, sizeof(want));
        is_int(cg_openai_read_completion(&req, bodies[i], strlen(bodies[i]),
                                         "chatcmpl-1", &want), i < nvalid,
               "same as tree %zu %s", i, i < nvalid ? "without tree" : "tree");
        if (i < npass) {
            ok(same_bytes(want.body, want.body_len, bodies[i]),
               "same as tree %zu kept", i);
        }
        cg_completion_free(&want);
        want_rc = completion_by_tree(&req, bodies[i], &want, &want_err);

        is_int(got_rc, want_rc, "same as tree %zu result", i);

        if (got_rc != 0 || want_rc != 0) {
            is_int(got_err.status, want_err.status, "same as tree %zu status",
                   i);
            is_str(got_err.message, want_err.message,
                   "same as tree %zu message", i);
            continue;
        }

        ok(got.body_len == want.body_len
           && memcmp(got.body, want.body, got.body_len) == 0,
           "same as tree %zu body", i);
        is_str(got.reply, want.reply, "same as tree %zu reply", i);
        is_int(got.usage.prompt_tokens, want.usage.prompt_tokens,
               "same as tree %zu prompt tokens", i);
        is_int(got.usage.completion_tokens, want.usage.completion_tokens,
               "same as tree %zu completion tokens", i);
        is_int(got.usage.total_tokens, want.usage.total_tokens,
               "same as tree %zu total tokens", i);

        cg_completion_free(&got);
        cg_completion_free(&want);
    }

    cg_chat_request_free(&req);
}


static void
test_error_message(void)
{
    char        msg[400], body[1200];
    size_t      i;
    const char *b;

    b = "{\"error\":{\"message\":\"Incorrect API key provided: "
        "sk-proj-abcdefghijklmnop.\",\"type\":\"invalid_request_error\"}}";
    cg_provider_error_message(CG_PROVIDER_OPENAI, 401, b, strlen(b), NULL,
                              msg, sizeof(msg));
    is_str(msg, "Incorrect API key provided: [redacted].",
           "openai error message redacted");

    b = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
        "\"message\":\"Overloaded\"}}";
    cg_provider_error_message(CG_PROVIDER_ANTHROPIC, 529, b, strlen(b), NULL,
                              msg, sizeof(msg));
    is_str(msg, "Overloaded", "anthropic error message");

    b = "{\"error\":\"model \\\"x\\\" not found\"}";
    cg_provider_error_message(CG_PROVIDER_OLLAMA, 404, b, strlen(b), NULL,
                              msg, sizeof(msg));
    is_str(msg, "model \"x\" not found", "ollama error message");

    cg_provider_error_message(CG_PROVIDER_OLLAMA, 503, "oops", 4, NULL,
                              msg, sizeof(msg));
    is_str(msg, "HTTP 503", "error fallback status");

    strcpy(body, "{\"error\":{\"message\":\"");
    for (i = 0; i < 400; i++) {
        strcat(body, "\xc3\xa9");
    }
    strcat(body, "\"}}");
    cg_provider_error_message(CG_PROVIDER_OPENAI, 500, body, strlen(body),
                              NULL, msg, sizeof(msg));
    is_int(strlen(msg), 300, "error message cut at 300 bytes");

    /* The key of the call starts at byte 280, so the cut at 300 splits it. */
    strcpy(body, "{\"error\":{\"message\":\"");
    for (i = 0; i < 280; i++) {
        strcat(body, "x");
    }
    strcat(body, "gsk_0123456789abcdefghij0123456789\"}}");
    cg_provider_error_message(CG_PROVIDER_OPENAI, 401, body, strlen(body),
                              "gsk_0123456789abcdefghij0123456789", msg,
                              sizeof(msg));
    ok(strstr(msg, "gsk_") == NULL, "error message key removed before cut");
    ok(strstr(msg, "[redacted]") != NULL, "error message key redacted");
}


static void
test_redact(void)
{
    char  text[256];

    strcpy(text, "key sk-ant-api03-AAAAbbbbCCCC and sk-or-v1-12345678 end");
    cg_redact(text, sizeof(text), NULL);
    is_str(text, "key [redacted] and [redacted] end", "redact sk keys");

    strcpy(text, "sk-short ok, task-abcdefghijkl ok");
    cg_redact(text, sizeof(text), NULL);
    is_str(text, "sk-short ok, task-abcdefghijkl ok", "redact leaves non keys");

    strcpy(text, "Authorization: Bearer eyJhbGciOi.x.y, next");
    cg_redact(text, sizeof(text), NULL);
    is_str(text, "Authorization: Bearer [redacted], next", "redact bearer");

    strcpy(text, "x-api-key: abc123456789 {\"x-api-key\": \"zz3456789012\"}");
    cg_redact(text, sizeof(text), NULL);
    is_str(text, "x-api-key: [redacted] {\"x-api-key\": \"[redacted]\"}",
           "redact x-api-key forms");

    strcpy(text, "your key XYZ is bad");
    cg_redact(text, sizeof(text), "XYZ");
    is_str(text, "your key [redacted] is bad", "redact short secret, text kept");

    strcpy(text, "your key XYZ is bad");
    cg_redact(text, 16, "XYZ");
    is_str(text, "your key [redac", "redact cut to the buffer size");
}


static void
test_error_json(void)
{
    cg_error_t   err;
    char        *json;
    size_t       len;

    cg_error_set(&err, 400, "invalid_request_error", "bad \"%s\"\n\x01 \xff",
                 "q</");
    cg_error_param(&err, "messages[%d].role", 2);
    json = cg_error_json(&err, &len);
    is_str(json, "{\"error\":{\"message\":\"bad \\\"q</\\\"\\n\\u0001 ?\","
           "\"type\":\"invalid_request_error\",\"param\":"
           "\"messages[2].role\",\"code\":null}}", "error json escaped");
    is_int(len, strlen(json), "error json length");
    free(json);

    cg_error_set(&err, 502, "upstream_error", "x");
    json = cg_error_json(&err, &len);
    ok(strstr(json, "\"param\":null") != NULL, "error json null param");
    free(json);
}


int
main(void)
{
    test_request_valid();
    test_request_invalid();
    test_request_same_as_tree();
    test_request_tree();
    test_request_tree_later();
    test_request_no_tree_body();
    test_form();
    test_build_openai();
    test_build_expect();
    test_build_openai_pass();
    test_build_anthropic();
    test_build_ollama();
    test_completion();
    test_completion_pass();
    test_completion_same_as_tree();
    test_error_message();
    test_redact();
    test_error_json();

    return done();
}
