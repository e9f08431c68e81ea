/*
 * Wire formats of complete responses, errors and catalogs for OpenAI (and
 * OpenRouter, which uses the same schema), Anthropic and Ollama.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "emu.h"

typedef struct {
    int          status;
    const char  *openai_type;
    const char  *openai_code;       /* NULL is written as null */
    const char  *anthropic_type;
    const char  *reason;
} emu_error_kind_t;

static const emu_error_kind_t  emu_error_kinds[] = {
    { 400, "invalid_request_error", NULL, "invalid_request_error",
      "Bad Request" },
    { 401, "invalid_request_error", "invalid_api_key",
      "authentication_error", "Unauthorized" },
    { 403, "invalid_request_error", "permission_denied", "permission_error",
      "Forbidden" },
    { 404, "invalid_request_error", "not_found", "not_found_error",
      "Not Found" },
    { 405, "invalid_request_error", NULL, "invalid_request_error",
      "Method Not Allowed" },
    { 408, "timeout", NULL, "timeout_error", "Request Timeout" },
    { 413, "invalid_request_error", NULL, "request_too_large",
      "Payload Too Large" },
    { 429, "rate_limit_error", "rate_limit_exceeded", "rate_limit_error",
      "Too Many Requests" },
    { 500, "server_error", NULL, "api_error", "Internal Server Error" },
    { 502, "server_error", NULL, "api_error", "Bad Gateway" },
    { 503, "server_error", NULL, "overloaded_error", "Service Unavailable" },
    { 504, "server_error", NULL, "api_error", "Gateway Timeout" },
    { 529, "server_error", NULL, "overloaded_error", "Overloaded" },
};

static const emu_error_kind_t  emu_error_client = {
    0, "invalid_request_error", NULL, "invalid_request_error", "Client Error"
};
static const emu_error_kind_t  emu_error_server = {
    0, "server_error", NULL, "api_error", "Server Error"
};

static const char  emu_hex[] = "0123456789abcdef";


/* Writes s[0, len) as a JSON string with its quotes. */
void
emu_json_string(struct evbuffer *out, const char *s, size_t len)
{
    char    esc[6] = { '\\', 'u', '0', '0', 0, 0 };
    size_t  i, run = 0;

    evbuffer_add(out, "\"", 1);

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }

        evbuffer_add(out, s + run, i - run);
        run = i + 1;

        switch (c) {
        case '"':  evbuffer_add(out, "\\\"", 2); break;
        case '\\': evbuffer_add(out, "\\\\", 2); break;
        case '\n': evbuffer_add(out, "\\n", 2); break;
        case '\r': evbuffer_add(out, "\\r", 2); break;
        case '\t': evbuffer_add(out, "\\t", 2); break;
        default:
            esc[4] = emu_hex[c >> 4];
            esc[5] = emu_hex[c & 0xf];
            evbuffer_add(out, esc, 6);
        }
    }

    evbuffer_add(out, s + run, len - run);
    evbuffer_add(out, "\"", 1);
}


const char *
emu_format_name(emu_format_t format)
{
    switch (format) {
    case EMU_FORMAT_OPENAI:      return "openai";
    case EMU_FORMAT_OPENROUTER:  return "openrouter";
    case EMU_FORMAT_ANTHROPIC:   return "anthropic";
    case EMU_FORMAT_OLLAMA:      return "ollama";
    default:                     return "none";
    }
}


static const emu_error_kind_t *
emu_error_kind(int status)
{
    size_t  i;

    for (i = 0; i < sizeof(emu_error_kinds) / sizeof(emu_error_kinds[0]); i++) {
        if (emu_error_kinds[i].status == status) {
            return &emu_error_kinds[i];
        }
    }

    return status < 500 ? &emu_error_client : &emu_error_server;
}


const char *
emu_status_reason(int status)
{
    if (status == 200) {
        return "OK";
    }
    return emu_error_kind(status)->reason;
}


/*
 * Writes an error body in the format's schema. message NULL writes
 * "emulated error: status N (Reason)".
 */
void
emu_write_error(struct evbuffer *out, emu_format_t format, int status,
    const char *message)
{
    const emu_error_kind_t  *kind = emu_error_kind(status);
    char                     fallback[96];

    if (message == NULL) {
        snprintf(fallback, sizeof(fallback), "emulated error: status %d (%s)",
                 status, kind->reason);
        message = fallback;
    }

    switch (format) {
    case EMU_FORMAT_ANTHROPIC:
        evbuffer_add_printf(out, "{\"type\":\"error\",\"error\":{\"type\":\"%s\","
                            "\"message\":", kind->anthropic_type);
        emu_json_string(out, message, strlen(message));
        evbuffer_add(out, "}}", 2);
        break;

    case EMU_FORMAT_OLLAMA:
        evbuffer_add(out, "{\"error\":", 9);
        emu_json_string(out, message, strlen(message));
        evbuffer_add(out, "}", 1);
        break;

    default:
        evbuffer_add(out, "{\"error\":{\"message\":", 20);
        emu_json_string(out, message, strlen(message));
        evbuffer_add_printf(out, ",\"type\":\"%s\",\"param\":null,\"code\":",
                            kind->openai_type);
        if (kind->openai_code != NULL) {
            evbuffer_add_printf(out, "\"%s\"}}", kind->openai_code);
        } else {
            evbuffer_add(out, "null}}", 6);
        }
        break;
    }
}


static void
emu_write_openai(struct evbuffer *out, const emu_call_t *call)
{
    evbuffer_add_printf(out, "{\"id\":\"chatcmpl-emu-%" PRIu64 "\","
                        "\"object\":\"chat.completion\",\"created\":%ld,"
                        "\"model\":", call->id, (long) time(NULL));
    emu_json_string(out, call->model, strlen(call->model));
    evbuffer_add_printf(out, ",\"choices\":[{\"index\":0,\"message\":"
                        "{\"role\":\"assistant\",\"content\":");
    emu_json_string(out, call->reply, call->reply_len);
    evbuffer_add_printf(out, "},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                        "\"usage\":{\"prompt_tokens\":%u,"
                        "\"completion_tokens\":%u,\"total_tokens\":%u}}\n",
                        call->prompt_tokens, call->completion_tokens,
                        call->prompt_tokens + call->completion_tokens);
}


static void
emu_write_anthropic(struct evbuffer *out, const emu_call_t *call)
{
    evbuffer_add_printf(out, "{\"id\":\"msg_emu_%" PRIu64 "\",\"type\":\"message\","
                        "\"role\":\"assistant\",\"model\":", call->id);
    emu_json_string(out, call->model, strlen(call->model));
    evbuffer_add(out, ",\"content\":[{\"type\":\"text\",\"text\":", 34);
    emu_json_string(out, call->reply, call->reply_len);
    evbuffer_add_printf(out, "}],\"stop_reason\":\"end_turn\","
                        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":%u,"
                        "\"output_tokens\":%u}}\n",
                        call->prompt_tokens, call->completion_tokens);
}


/*
 * Writes the fields that close an Ollama response. Durations are in
 * nanoseconds and synthetic: 1 ms load, 0.1 ms per prompt token and 1 ms
 * per reply token.
 */
void
emu_write_ollama_done(struct evbuffer *out, const emu_call_t *call)
{
    uint64_t  load = 1000000;
    uint64_t  prompt = (uint64_t) call->prompt_tokens * 100000;
    uint64_t  eval = (uint64_t) call->completion_tokens * 1000000;

    evbuffer_add_printf(out, "\"done\":true,\"done_reason\":\"stop\","
                        "\"total_duration\":%" PRIu64 ","
                        "\"load_duration\":%" PRIu64 ","
                        "\"prompt_eval_count\":%u,"
                        "\"prompt_eval_duration\":%" PRIu64 ","
                        "\"eval_count\":%u,\"eval_duration\":%" PRIu64 "}\n",
                        load + prompt + eval, load, call->prompt_tokens,
                        prompt, call->completion_tokens, eval);
}


/* Writes {"model":...,"created_at":...,"message":{...content. */
void
emu_write_ollama_head(struct evbuffer *out, const emu_call_t *call)
{
    char       stamp[32];
    time_t     now = time(NULL);
    struct tm  tm;

    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);

    evbuffer_add(out, "{\"model\":", 9);
    emu_json_string(out, call->model, strlen(call->model));
    evbuffer_add_printf(out, ",\"created_at\":\"%s\",\"message\":"
                        "{\"role\":\"assistant\",\"content\":", stamp);
}


static void
emu_write_ollama(struct evbuffer *out, const emu_call_t *call)
{
    emu_write_ollama_head(out, call);
    emu_json_string(out, call->reply, call->reply_len);
    evbuffer_add(out, "},", 2);
    emu_write_ollama_done(out, call);
}


void
emu_write_complete(struct evbuffer *out, const emu_call_t *call)
{
    switch (call->format) {
    case EMU_FORMAT_ANTHROPIC:
        emu_write_anthropic(out, call);
        break;
    case EMU_FORMAT_OLLAMA:
        emu_write_ollama(out, call);
        break;
    default:
        emu_write_openai(out, call);
        break;
    }
}


/*
 * The model list carries the fields of both OpenAI's list ("object",
 * "owned_by", "created") and Anthropic's ("type", "display_name",
 * "created_at", "has_more"), because both providers serve GET /v1/models.
 */
void
emu_write_models(struct evbuffer *out)
{
    static const char  *ids[] = {
        "gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-latest",
        "claude-3-5-haiku-latest", "llama3.2"
    };
    size_t  i, n = sizeof(ids) / sizeof(ids[0]);

    evbuffer_add_printf(out, "{\"object\":\"list\",\"data\":[");
    for (i = 0; i < n; i++) {
        evbuffer_add_printf(out, "%s{\"id\":\"%s\",\"object\":\"model\","
                            "\"type\":\"model\",\"display_name\":\"%s\","
                            "\"created\":1700000000,"
                            "\"created_at\":\"2023-11-14T22:13:20Z\","
                            "\"owned_by\":\"chatgate-emulator\"}",
                            i ? "," : "", ids[i], ids[i]);
    }
    evbuffer_add_printf(out, "],\"has_more\":false,\"first_id\":\"%s\","
                        "\"last_id\":\"%s\"}\n", ids[0], ids[n - 1]);
}


void
emu_write_tags(struct evbuffer *out)
{
    static const char  *names[] = { "llama3.2:latest", "qwen2.5:0.5b" };
    static const char  *sizes[] = { "3.2B", "494M" };
    size_t  i;

    evbuffer_add(out, "{\"models\":[", 11);
    for (i = 0; i < 2; i++) {
        evbuffer_add_printf(out, "%s{\"name\":\"%s\",\"model\":\"%s\","
                            "\"modified_at\":\"2024-09-25T00:00:00Z\","
                            "\"size\":%d,\"digest\":\"%064x\","
                            "\"details\":{\"format\":\"gguf\","
                            "\"family\":\"emulated\",\"parameter_size\":\"%s\","
                            "\"quantization_level\":\"Q4_K_M\"}}",
                            i ? "," : "", names[i], names[i],
                            (int) (i + 1) * 1000000, (unsigned) i + 1,
                            sizes[i]);
    }
    evbuffer_add(out, "]}\n", 3);
}
