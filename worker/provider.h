#ifndef CG_PROVIDER_H
#define CG_PROVIDER_H

#include <stddef.h>
#include <curl/curl.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "error.h"
#include "json_pick.h"

/*
 * Provider adapters: each translates the OpenAI chat-completions schema to
 * the provider's wire format and back. OpenAI and OpenRouter share the
 * OpenAI-compatible adapter and differ in base URL and name only.
 */

typedef enum {
    CG_PROVIDER_OPENAI = 0,
    CG_PROVIDER_OPENROUTER,
    CG_PROVIDER_ANTHROPIC,
    CG_PROVIDER_OLLAMA,
    CG_PROVIDER_COUNT
} cg_provider_id_t;

/* Token counts; -1 in a field means the provider did not report it. */
typedef struct {
    long  prompt_tokens;
    long  completion_tokens;
    long  total_tokens;
} cg_usage_t;

/*
 * A validated chat request in OpenAI terms. root is the parsed body and
 * model points into a string the request owns; both are freed by
 * cg_chat_request_free(). body points into the caller's buffer, which must
 * outlive the request; it is NULL when root differs from the client's JSON.
 * cg_chat_request_parse() leaves root NULL for a request to an
 * OpenAI-compatible provider, whose body is written from the client's JSON.
 */
typedef struct {
    yajl_val          root;
    cg_provider_id_t  provider;
    char             *model;          /* the provider's name for it: prefix removed */
    char             *model_requested; /* as the client sent it */
    int               stream;
    int               stream_options; /* the body has a "stream_options" member */
    int               include_usage;  /* stream_options.include_usage is true */
    const char       *body;           /* the client's JSON as sent, or NULL */
    size_t            body_len;
} cg_chat_request_t;

/*
 * The HTTP call to a provider. Everything is owned by the call and freed by
 * cg_provider_call_free(). headers carry the credential, so the call is never
 * logged as a whole. The list, its nodes and lines, is one allocation of
 * headers_size bytes, which cg_provider_call_free() wipes.
 */
typedef struct {
    char               *url;
    struct curl_slist  *headers;
    size_t              headers_size;
    char               *body;
    size_t              body_len;
} cg_provider_call_t;

/* A complete answer translated to an OpenAI chat.completion object. */
typedef struct {
    char        *body;        /* JSON, malloc'ed */
    size_t       body_len;
    char        *reply;       /* the first choice's text, malloc'ed, for /chat */
    cg_usage_t   usage;
} cg_completion_t;

const char *cg_provider_name(cg_provider_id_t id);
int cg_provider_by_name(const char *name, size_t len, cg_provider_id_t *id);

/*
 * Parses the body of POST /v1/chat/completions. The provider comes from a
 * model prefix ("openai/", "openrouter/", "anthropic/", "ollama/") or is
 * default_provider. Returns 0, or -1 with err set to a 400.
 */
int cg_chat_request_parse(const char *body, size_t len,
    cg_provider_id_t default_provider, cg_chat_request_t *req, cg_error_t *err);

/*
 * Parses the body of POST /chat: {provider, model, messages, key_id?}.
 * key_id, when present, is copied into key_id (at most key_id_size - 1 bytes,
 * else 400). Returns 0, or -1 with err set to a 400.
 */
int cg_chat_form_parse(const char *body, size_t len,
    cg_provider_id_t default_provider, cg_chat_request_t *req,
    char *key_id, size_t key_id_size, cg_error_t *err);

void cg_chat_request_free(cg_chat_request_t *req);

/*
 * Builds the provider call for req against base_url (no trailing slash
 * needed) with api_key as the credential. Returns 0, or -1 with err set.
 */
int cg_provider_build_call(const cg_chat_request_t *req, const char *base_url,
    const char *api_key, cg_provider_call_t *call, cg_error_t *err);

void cg_provider_call_free(cg_provider_call_t *call);

/*
 * Translates a provider's 2xx body into an OpenAI chat.completion with the
 * given id, creation time and model name. Returns 0, or -1 with err set to
 * a 502 when the body is not what the provider's format promises.
 */
int cg_provider_parse_completion(const cg_chat_request_t *req,
    const char *body, size_t len, const char *completion_id, long created,
    cg_completion_t *out, cg_error_t *err);

void cg_completion_free(cg_completion_t *c);

/*
 * Extracts a readable message from a provider's error body (any status),
 * with credentials removed, into msg. Falls back to "HTTP <status>".
 * secret, the key of the call or NULL, is removed before the message is
 * cut to its size, so a cut cannot leave a prefix of the key.
 */
void cg_provider_error_message(cg_provider_id_t id, long status,
    const char *body, size_t len, const char *secret, char *msg,
    size_t msg_size);


/*
 * Adapter internals, shared by provider*.c and stream.c. A body builder
 * writes the provider's request body with g; a completion parser translates
 * a parsed 2xx body. Both return 0, or -1 with err set.
 */
int cg_openai_build_body(const cg_chat_request_t *req, yajl_gen g,
    cg_error_t *err);
int cg_anthropic_build_body(const cg_chat_request_t *req, yajl_gen g,
    cg_error_t *err);
int cg_ollama_build_body(const cg_chat_request_t *req, yajl_gen g,
    cg_error_t *err);

int cg_openai_body_unchanged(const cg_chat_request_t *req);

/*
 * Fills out from an OpenAI-compatible response body without a tree, with
 * the result of cg_openai_parse_completion(). Returns 1, or 0 when that
 * function must translate the body from a tree.
 */
int cg_openai_read_completion(const cg_chat_request_t *req,
    const char *body, size_t len, const char *completion_id,
    cg_completion_t *out);

int cg_openai_parse_completion(const cg_chat_request_t *req,
    const char *body, size_t len, yajl_val root,
    const char *completion_id, cg_completion_t *out, cg_error_t *err);
int cg_anthropic_parse_completion(const cg_chat_request_t *req, yajl_val root,
    const char *completion_id, long created, cg_completion_t *out,
    cg_error_t *err);
int cg_ollama_parse_completion(const cg_chat_request_t *req, yajl_val root,
    const char *completion_id, long created, cg_completion_t *out,
    cg_error_t *err);

/* Maps a provider's stop reason to OpenAI's finish_reason (NULL: unknown). */
const char *cg_anthropic_finish_reason(const char *stop_reason);
const char *cg_ollama_finish_reason(const char *done_reason, int done);

/*
 * Writes a chat.completion object with one choice holding text. A NULL
 * finish_reason is written as null; usage fields below 0 as null.
 */
int cg_completion_gen(yajl_gen g, const char *completion_id, long created,
    const char *model, const char *text, const char *finish_reason,
    const cg_usage_t *usage);

/*
 * Copy request options into the provider body being written: the number
 * root[key] as member "as", and "stop" (a string or an array of strings) as
 * an array named "as". Absent or null options are skipped; a wrong type is a
 * 400. Return 0 or -1.
 */
int cg_provider_gen_number(yajl_gen g, yajl_val root, const char *key,
    const char *as, cg_error_t *err);
int cg_provider_gen_stop(yajl_gen g, yajl_val root, const char *as,
    cg_error_t *err);

/* Reads an OpenAI usage object into out; absent figures become -1. */
void cg_openai_usage(yajl_val usage, cg_usage_t *out);

/*
 * Stores the token counts that cg_json_pick() read from an OpenAI usage
 * object, as cg_openai_usage() reads them from a tree. A count that is
 * absent or no integer that fits a long becomes -1. Without total_tokens,
 * the total is the sum of the other two.
 */
void cg_openai_usage_picked(const cg_json_pick_t *prompt,
    const cg_json_pick_t *completion, const cg_json_pick_t *total,
    cg_usage_t *out);

/* Sets err to the 502 for a 2xx body that breaks the provider's format. */
void cg_provider_invalid_answer(cg_error_t *err, cg_provider_id_t id,
    const char *cause);

#endif
