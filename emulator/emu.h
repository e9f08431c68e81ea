#ifndef EMU_H
#define EMU_H

/*
 * chatgate-emulator: a provider emulator that speaks the OpenAI (and
 * OpenRouter), Anthropic and Ollama wire formats, so tests, the demo and
 * benchmarks run without reaching a real provider. docs/emulator.md states
 * the response rules and the knobs.
 *
 * Each thread owns one event base and one evhttp server on its own socket
 * bound with SO_REUSEPORT. State shared between threads (request journal,
 * statistics, fail_first counters) lives in journal.c behind one mutex.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#define EMU_MODEL_MAX        128
#define EMU_TAG_MAX          64
#define EMU_USER_TEXT_MAX    200     /* bytes of the last user message echoed */
#define EMU_WORDS_MAX        100000  /* upper bound of the words knob */
#define EMU_KNOBS_JSON_MAX   512
#define EMU_SHA256_HEX_LEN   64

typedef enum {
    EMU_FORMAT_NONE = 0,
    EMU_FORMAT_OPENAI,
    EMU_FORMAT_OPENROUTER,
    EMU_FORMAT_ANTHROPIC,
    EMU_FORMAT_OLLAMA
} emu_format_t;

typedef enum {
    EMU_ENDPOINT_CHAT_COMPLETIONS = 0,
    EMU_ENDPOINT_MESSAGES,
    EMU_ENDPOINT_OLLAMA_CHAT,
    EMU_ENDPOINT_MODELS,
    EMU_ENDPOINT_OLLAMA_TAGS,
    EMU_ENDPOINT_CONTROL,
    EMU_ENDPOINT_OTHER,
    EMU_ENDPOINT_COUNT
} emu_endpoint_t;

typedef enum {
    EMU_USAGE_DEFAULT = 0,  /* OpenAI: usage chunk only when include_usage */
    EMU_USAGE_FINAL,        /* usage chunk with empty choices, always */
    EMU_USAGE_NONE          /* no usage chunk, even when asked */
} emu_usage_mode_t;

/*
 * Per-request knobs. An integer knob that is not set is -1, so 0 stays a
 * valid value (error_at=0 fails before the first content chunk).
 */
typedef struct {
    int               delay_ms;
    int               status;
    int               retry_after;
    int               fail_first;
    char              tag[EMU_TAG_MAX];
    int               chunks;
    int               chunk_delay_ms;
    int               split_bytes;
    int               words;
    int               error_at;
    int               drop_at;
    int               bad_at;
    bool              crlf;
    bool              comments;
    emu_usage_mode_t  usage;

    /* The knobs as seen, rendered as a JSON object for the journal. */
    char              seen_json[EMU_KNOBS_JSON_MAX];
    size_t            seen_len;
} emu_knobs_t;

/*
 * One chat request, parsed. The reply is either the inline echo or, with the
 * words knob, a heap buffer that emu_call_release() frees.
 */
typedef struct {
    emu_format_t      format;
    char              model[EMU_MODEL_MAX];
    bool              stream;
    bool              include_usage;    /* OpenAI stream_options.include_usage */
    unsigned          prompt_tokens;
    unsigned          completion_tokens;
    uint64_t          id;               /* sequence number used in response ids */
    emu_knobs_t       knobs;

    char             *reply;
    size_t            reply_len;
    char              reply_inline[sizeof("emulator reply to: ") + EMU_USER_TEXT_MAX];
} emu_call_t;

/* A journal record, kept in a ring of EMU_JOURNAL_SIZE in journal.c. */
#define EMU_JOURNAL_SIZE     200
#define EMU_PATH_MAX         256

typedef struct {
    uint64_t          seq;
    double            time;
    char              method[8];
    char              path[EMU_PATH_MAX];
    emu_format_t      format;
    char              model[EMU_MODEL_MAX];
    bool              stream;
    bool              has_credential;
    char              credential_sha256[EMU_SHA256_HEX_LEN + 1];
    int               status;
    char              knobs_json[EMU_KNOBS_JSON_MAX];
} emu_record_t;


/* main.c */
extern int emu_verbose;

void emu_log(const char *level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));


/* server.c: one server per thread. */
typedef struct emu_deferred_s  emu_deferred_t;

typedef struct emu_server_s {
    struct event_base  *base;
    struct evhttp      *http;
    struct event       *stop_event;
    int                 listen_fd;     /* owned by http once accepted */
    int                 stop_fd;       /* read end of the stop pipe */
    struct evbuffer    *out;           /* scratch body of immediate replies */
    char               *body;          /* scratch NUL-terminated request body */
    size_t              body_size;
    emu_deferred_t     *free_list;     /* deferred responses kept for reuse */
} emu_server_t;

emu_server_t *emu_server_create(int listen_fd, int stop_fd);
int emu_server_run(emu_server_t *server);
void emu_server_destroy(emu_server_t *server);
void emu_send_error(struct evhttp_request *req, struct evbuffer *out,
    emu_format_t format, int status, int retry_after, const char *message);
void emu_send_complete(struct evhttp_request *req, struct evbuffer *out,
    const emu_call_t *call);


/*
 * deferred.c: responses that wait for a timer (delay_ms) or are streamed.
 * emu_deferred_start() takes over the call (and its reply buffer) and the
 * request until the response ends or the connection closes.
 */
int emu_deferred_start(emu_server_t *server, struct evhttp_request *req,
    emu_call_t *call, int status);
void emu_deferred_free_all(emu_server_t *server);


/* parse.c */
int emu_call_parse(emu_call_t *call, emu_format_t format,
    struct evkeyvalq *headers, const char *body,
    size_t len, char *err, size_t err_size);
void emu_call_release(emu_call_t *call);
unsigned emu_count_words(const char *text, size_t len);


/* knobs.c */
void emu_knobs_init(emu_knobs_t *knobs);
void emu_knobs_scan_text(emu_knobs_t *knobs, const char *text, size_t len);
void emu_knobs_scan_headers(emu_knobs_t *knobs, struct evkeyvalq *headers);
size_t emu_knobs_strip(char *dst, size_t dst_size, const char *text, size_t len);
void emu_knobs_render(emu_knobs_t *knobs);


/* format.c: JSON and wire-format writers */
void emu_json_string(struct evbuffer *out, const char *s, size_t len);
const char *emu_format_name(emu_format_t format);
void emu_write_error(struct evbuffer *out, emu_format_t format, int status,
    const char *message);
void emu_write_complete(struct evbuffer *out, const emu_call_t *call);
void emu_write_ollama_head(struct evbuffer *out, const emu_call_t *call);
void emu_write_ollama_done(struct evbuffer *out, const emu_call_t *call);
void emu_write_models(struct evbuffer *out);
void emu_write_tags(struct evbuffer *out);
const char *emu_status_reason(int status);


/* stream.c */
/* Events a stream writer produces, one per call to emu_stream_next(). */
typedef enum {
    EMU_EVENT_CONTENT = 0,  /* a content chunk; chunk_delay_ms applies after */
    EMU_EVENT_OTHER,        /* preamble, finish or error event */
    EMU_EVENT_DROP,         /* close the connection now */
    EMU_EVENT_END           /* the stream is complete */
} emu_event_t;

typedef struct {
    const emu_call_t *call;
    unsigned          word_count;      /* words in the reply */
    unsigned          chunk_count;     /* content chunks in total */
    unsigned          chunk_index;     /* content chunks written so far */
    unsigned          word_index;      /* words of the reply consumed */
    size_t            reply_pos;       /* bytes of the reply consumed */
    long              created;         /* Unix time of the response */
    int               phase;
} emu_stream_state_t;

void emu_stream_init(emu_stream_state_t *st, const emu_call_t *call);
emu_event_t emu_stream_next(emu_stream_state_t *st, struct evbuffer *out);
const char *emu_stream_content_type(emu_format_t format);


/* journal.c: shared between threads, guarded by one mutex */
int emu_journal_init(void);
void emu_journal_add(const emu_record_t *record);
void emu_journal_clear(void);
void emu_journal_write(struct evbuffer *out);
void emu_stats_count(emu_endpoint_t endpoint, int status);
void emu_stats_write(struct evbuffer *out);
bool emu_fail_first_hit(const char *tag, int fail_first);
uint64_t emu_next_id(void);

#endif
