/*
 * Streamed responses: a generator that writes one event at a time, in the
 * provider's format, so the server can put timers, split writes or a
 * dropped connection between any two events.
 *
 *   OpenAI, OpenRouter  SSE "data: {chat.completion.chunk}", then "data: [DONE]"
 *   Anthropic           SSE message_start ... message_stop, with a ping
 *   Ollama              NDJSON lines, the last with "done":true
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <ctype.h>

#include "emu.h"

enum {
    EMU_PHASE_PREAMBLE = 0,
    EMU_PHASE_CHECK,        /* after the preamble and after every chunk */
    EMU_PHASE_CONTENT,
    EMU_PHASE_FINISH,
    EMU_PHASE_END
};


void
emu_stream_init(emu_stream_state_t *st, const emu_call_t *call)
{
    unsigned  chunks;

    memset(st, 0, sizeof(*st));
    st->call = call;
    st->created = (long) time(NULL);
    st->word_count = emu_count_words(call->reply, call->reply_len);

    chunks = st->word_count;
    if (call->knobs.chunks > 0 && (unsigned) call->knobs.chunks < chunks) {
        chunks = (unsigned) call->knobs.chunks;
    }
    if (chunks == 0 && call->reply_len > 0) {
        chunks = 1;
    }
    st->chunk_count = chunks;
}


const char *
emu_stream_content_type(emu_format_t format)
{
    return format == EMU_FORMAT_OLLAMA ? "application/x-ndjson"
                                       : "text/event-stream";
}


static void
emu_eol(const emu_stream_state_t *st, struct evbuffer *out)
{
    if (st->call->knobs.crlf) {
        evbuffer_add(out, "\r\n", 2);
    } else {
        evbuffer_add(out, "\n", 1);
    }
}


/* Ends an SSE event: the end of its last line, then a blank line. */
static void
emu_sse_end(const emu_stream_state_t *st, struct evbuffer *out)
{
    emu_eol(st, out);
    emu_eol(st, out);
}


static void
emu_sse_comment(const emu_stream_state_t *st, struct evbuffer *out,
    const char *text)
{
    evbuffer_add_printf(out, ": %s", text);
    emu_sse_end(st, out);
}


static void
emu_anthropic_event(const emu_stream_state_t *st, struct evbuffer *out,
    const char *type)
{
    evbuffer_add_printf(out, "event: %s", type);
    emu_eol(st, out);
    evbuffer_add(out, "data: ", 6);
}


/* Writes the start of an OpenAI chunk, up to and including "choices":. */
static void
emu_openai_chunk_head(const emu_stream_state_t *st, struct evbuffer *out)
{
    const emu_call_t *call = st->call;

    evbuffer_add_printf(out, "data: {\"id\":\"chatcmpl-emu-%" PRIu64 "\","
                        "\"object\":\"chat.completion.chunk\",\"created\":%ld,"
                        "\"model\":", call->id, st->created);
    emu_json_string(out, call->model, strlen(call->model));
    evbuffer_add(out, ",\"choices\":", 11);
}


/* Closes an OpenAI chunk; like OpenAI, "usage":null when usage was asked. */
static void
emu_openai_chunk_tail(const emu_stream_state_t *st, struct evbuffer *out)
{
    const emu_call_t *call = st->call;

    if (call->include_usage && call->knobs.usage == EMU_USAGE_DEFAULT) {
        evbuffer_add(out, ",\"usage\":null}", 14);
    } else {
        evbuffer_add(out, "}", 1);
    }
    emu_sse_end(st, out);
}


static void
emu_write_preamble(const emu_stream_state_t *st, struct evbuffer *out)
{
    const emu_call_t *call = st->call;

    switch (call->format) {
    case EMU_FORMAT_OPENROUTER:
    case EMU_FORMAT_OPENAI:
        if (call->format == EMU_FORMAT_OPENROUTER && call->knobs.comments) {
            emu_sse_comment(st, out, "OPENROUTER PROCESSING");
        }
        emu_openai_chunk_head(st, out);
        evbuffer_add_printf(out, "[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                            "\"content\":\"\"},\"logprobs\":null,"
                            "\"finish_reason\":null}]");
        emu_openai_chunk_tail(st, out);
        break;

    case EMU_FORMAT_ANTHROPIC:
        emu_anthropic_event(st, out, "message_start");
        evbuffer_add_printf(out, "{\"type\":\"message_start\",\"message\":"
                            "{\"id\":\"msg_emu_%" PRIu64 "\",\"type\":\"message\","
                            "\"role\":\"assistant\",\"model\":", call->id);
        emu_json_string(out, call->model, strlen(call->model));
        evbuffer_add_printf(out, ",\"content\":[],\"stop_reason\":null,"
                            "\"stop_sequence\":null,\"usage\":"
                            "{\"input_tokens\":%u,\"output_tokens\":1}}}",
                            call->prompt_tokens);
        emu_sse_end(st, out);

        emu_anthropic_event(st, out, "content_block_start");
        evbuffer_add_printf(out, "{\"type\":\"content_block_start\",\"index\":0,"
                            "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
        emu_sse_end(st, out);

        emu_anthropic_event(st, out, "ping");
        evbuffer_add_printf(out, "{\"type\": \"ping\"}");
        emu_sse_end(st, out);
        break;

    default:
        break;
    }
}


/*
 * Takes the next content chunk from the reply: chunk k of C gets the words
 * [k*W/C, (k+1)*W/C) with the whitespace before them, and the last chunk
 * runs to the end of the reply, so the chunks joined equal the reply.
 */
static void
emu_next_chunk(emu_stream_state_t *st, const char **text, size_t *len)
{
    const char  *reply = st->call->reply;
    size_t       pos = st->reply_pos, end_len = st->call->reply_len;
    unsigned     end_word;

    end_word = (unsigned) ((uint64_t) (st->chunk_index + 1) * st->word_count
                           / st->chunk_count);

    if (st->chunk_index + 1 == st->chunk_count) {
        pos = end_len;

    } else {
        while (st->word_index < end_word) {
            while (pos < end_len && isspace((unsigned char) reply[pos])) {
                pos++;
            }
            while (pos < end_len && !isspace((unsigned char) reply[pos])) {
                pos++;
            }
            st->word_index++;
        }
    }

    *text = reply + st->reply_pos;
    *len = pos - st->reply_pos;
    st->reply_pos = pos;
    st->chunk_index++;
}


static void
emu_write_content(emu_stream_state_t *st, struct evbuffer *out)
{
    const emu_call_t *call = st->call;
    const char       *text;
    size_t            len;

    emu_next_chunk(st, &text, &len);

    if (call->knobs.comments && call->format != EMU_FORMAT_OLLAMA) {
        emu_sse_comment(st, out, "keep-alive");
    }

    switch (call->format) {
    case EMU_FORMAT_ANTHROPIC:
        emu_anthropic_event(st, out, "content_block_delta");
        evbuffer_add_printf(out, "{\"type\":\"content_block_delta\",\"index\":0,"
                            "\"delta\":{\"type\":\"text_delta\",\"text\":");
        emu_json_string(out, text, len);
        evbuffer_add(out, "}}", 2);
        emu_sse_end(st, out);
        break;

    case EMU_FORMAT_OLLAMA:
        emu_write_ollama_head(out, call);
        emu_json_string(out, text, len);
        evbuffer_add(out, "},\"done\":false}\n", 16);
        break;

    default:
        emu_openai_chunk_head(st, out);
        evbuffer_add(out, "[{\"index\":0,\"delta\":{\"content\":", 31);
        emu_json_string(out, text, len);
        evbuffer_add_printf(out, "},\"logprobs\":null,\"finish_reason\":null}]");
        emu_openai_chunk_tail(st, out);
        break;
    }
}


static void
emu_write_finish_openai(const emu_stream_state_t *st, struct evbuffer *out)
{
    const emu_call_t  *call = st->call;
    bool               usage;

    emu_openai_chunk_head(st, out);
    evbuffer_add_printf(out, "[{\"index\":0,\"delta\":{},\"logprobs\":null,"
                        "\"finish_reason\":\"stop\"}]");
    emu_openai_chunk_tail(st, out);

    usage = (call->knobs.usage == EMU_USAGE_FINAL)
            || (call->knobs.usage == EMU_USAGE_DEFAULT && call->include_usage);

    if (usage) {
        emu_openai_chunk_head(st, out);
        evbuffer_add_printf(out, "[],\"usage\":{\"prompt_tokens\":%u,"
                            "\"completion_tokens\":%u,\"total_tokens\":%u}}",
                            call->prompt_tokens, call->completion_tokens,
                            call->prompt_tokens + call->completion_tokens);
        emu_sse_end(st, out);
    }

    evbuffer_add(out, "data: [DONE]", 12);
    emu_sse_end(st, out);
}


static void
emu_write_finish(const emu_stream_state_t *st, struct evbuffer *out)
{
    const emu_call_t *call = st->call;

    switch (call->format) {
    case EMU_FORMAT_ANTHROPIC:
        emu_anthropic_event(st, out, "content_block_stop");
        evbuffer_add_printf(out, "{\"type\":\"content_block_stop\",\"index\":0}");
        emu_sse_end(st, out);

        emu_anthropic_event(st, out, "message_delta");
        evbuffer_add_printf(out, "{\"type\":\"message_delta\",\"delta\":"
                            "{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},"
                            "\"usage\":{\"output_tokens\":%u}}",
                            call->completion_tokens);
        emu_sse_end(st, out);

        emu_anthropic_event(st, out, "message_stop");
        evbuffer_add_printf(out, "{\"type\":\"message_stop\"}");
        emu_sse_end(st, out);
        break;

    case EMU_FORMAT_OLLAMA:
        emu_write_ollama_head(out, call);
        evbuffer_add(out, "\"\"},", 4);
        emu_write_ollama_done(out, call);
        break;

    default:
        emu_write_finish_openai(st, out);
        break;
    }
}


/* Writes the provider's in-stream error event for error_at. */
static void
emu_write_stream_error(const emu_stream_state_t *st, struct evbuffer *out)
{
    const emu_call_t  *call = st->call;
    char               message[96];

    snprintf(message, sizeof(message), "emulated stream error after chunk %u",
             st->chunk_index);

    switch (call->format) {
    case EMU_FORMAT_ANTHROPIC:
        emu_anthropic_event(st, out, "error");
        emu_write_error(out, call->format, 529, message);
        emu_sse_end(st, out);
        break;

    case EMU_FORMAT_OLLAMA:
        emu_write_error(out, call->format, 500, message);
        evbuffer_add(out, "\n", 1);
        break;

    default:
        evbuffer_add(out, "data: ", 6);
        emu_write_error(out, call->format, 500, message);
        emu_sse_end(st, out);
        break;
    }
}


/*
 * Writes an event for bad_at whose data is cut off in the middle of a JSON
 * object, so that a client's parser fails on it. The stream goes on after
 * it as if nothing happened.
 */
static void
emu_write_bad_event(const emu_stream_state_t *st, struct evbuffer *out)
{
    switch (st->call->format) {
    case EMU_FORMAT_ANTHROPIC:
        emu_anthropic_event(st, out, "content_block_delta");
        evbuffer_add_printf(out, "{\"type\":\"content_block_delta\",\"delta\":");
        emu_sse_end(st, out);
        break;

    case EMU_FORMAT_OLLAMA:
        evbuffer_add_printf(out, "{\"message\":{\"content\":");
        emu_eol(st, out);
        break;

    default:
        evbuffer_add_printf(out, "data: {\"choices\":[{\"delta\":");
        emu_sse_end(st, out);
        break;
    }
}


/*
 * Decides what follows the preamble or a chunk. error_at, drop_at and
 * bad_at count content chunks already sent; a value past the last chunk
 * acts after it.
 */
static int
emu_check(const emu_stream_state_t *st, bool *error, bool *drop, bool *bad)
{
    const emu_knobs_t *k = &st->call->knobs;
    unsigned           error_at, drop_at, bad_at;

    error_at = (unsigned) k->error_at;
    drop_at = (unsigned) k->drop_at;
    bad_at = (unsigned) k->bad_at;
    if (error_at > st->chunk_count) {
        error_at = st->chunk_count;
    }
    if (drop_at > st->chunk_count) {
        drop_at = st->chunk_count;
    }
    if (bad_at > st->chunk_count) {
        bad_at = st->chunk_count;
    }

    *error = k->error_at >= 0 && error_at == st->chunk_index;
    *drop = k->drop_at >= 0 && drop_at == st->chunk_index;
    *bad = k->bad_at >= 0 && bad_at == st->chunk_index;

    return st->chunk_index < st->chunk_count ? EMU_PHASE_CONTENT
                                             : EMU_PHASE_FINISH;
}


/* Appends the next event to out and returns its kind. */
emu_event_t
emu_stream_next(emu_stream_state_t *st, struct evbuffer *out)
{
    bool  error, drop, bad;

    switch (st->phase) {
    case EMU_PHASE_PREAMBLE:
        emu_write_preamble(st, out);
        st->phase = EMU_PHASE_CHECK;
        return EMU_EVENT_OTHER;

    case EMU_PHASE_CHECK:
        st->phase = emu_check(st, &error, &drop, &bad);
        if (error) {
            emu_write_stream_error(st, out);
            st->phase = EMU_PHASE_END;
            return EMU_EVENT_OTHER;
        }
        if (drop) {
            st->phase = EMU_PHASE_END;
            return EMU_EVENT_DROP;
        }
        if (bad) {
            emu_write_bad_event(st, out);
            return EMU_EVENT_OTHER;
        }
        return emu_stream_next(st, out);

    case EMU_PHASE_CONTENT:
        emu_write_content(st, out);
        st->phase = EMU_PHASE_CHECK;
        return EMU_EVENT_CONTENT;

    case EMU_PHASE_FINISH:
        emu_write_finish(st, out);
        st->phase = EMU_PHASE_END;
        return EMU_EVENT_OTHER;

    default:
        return EMU_EVENT_END;
    }
}
