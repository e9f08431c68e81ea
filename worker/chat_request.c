/*
 * Parsing and checks of the chat request bodies: POST /v1/chat/completions
 * in OpenAI's schema and the /chat form.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json_pick.h"
#include "provider.h"


#define CG_MODEL_MAX_LEN     256
#define CG_MESSAGES_MAX      10000


/* The roles a message may have. */
static const char  *cg_request_roles[] = {
    "system", "developer", "user", "assistant", "tool"
};

#define CG_REQUEST_ROLE_ASSISTANT  3
#define CG_REQUEST_NO_PART         ((size_t) -1)

/*
 * The facts that the checks of one message look at, read from a tree or by
 * the reader's handlers.
 */
typedef struct {
    int              is_object;
    int              role;        /* index in cg_request_roles, or -1 */
    cg_json_type_t   content;     /* type of the first "content" */
    int              tool_calls;  /* 1: the first "tool_calls" is a non-empty array */
    size_t           bad_part;    /* first part without a string "type" */
} cg_request_message_t;

/* The values cg_request_read() picks from a chat body. */
enum {
    CG_REQUEST_PICK_ROOT = 0,
    CG_REQUEST_PICK_MODEL,
    CG_REQUEST_PICK_MESSAGES,
    CG_REQUEST_PICK_STREAM,
    CG_REQUEST_PICK_STREAM_OPTIONS,
    CG_REQUEST_PICK_INCLUDE_USAGE,
    CG_REQUEST_PICK_MESSAGE,
    CG_REQUEST_PICK_ROLE,
    CG_REQUEST_PICK_CONTENT,
    CG_REQUEST_PICK_PART,
    CG_REQUEST_PICK_PART_TYPE,
    CG_REQUEST_PICK_TOOL_CALLS,
    CG_REQUEST_PICK_TOOL_CALL,
    CG_REQUEST_PICK_N
};

/* The state of the reader's handlers across the messages of a body. */
typedef struct {
    cg_request_message_t  message;     /* the message being read */
    size_t                messages;    /* messages met so far */
    size_t                parts;       /* its content parts met so far */
    int                   part_typed;  /* the last part has a string "type" */
    int                   tool_calls_array;
    int                   failed;      /* a message failed its check */
    cg_error_t            error;       /* the first such failure */
} cg_request_reader_t;


static yajl_val cg_request_root(const char *body, size_t len, cg_error_t *err);
static int cg_request_needs_tree(const cg_chat_request_t *req);
static int cg_request_check_model(cg_json_type_t type, const char *model,
    cg_error_t *err);
static int cg_request_model(yajl_val root, cg_error_t *err, const char **model);
static int cg_request_split_model(cg_chat_request_t *req, const char *model,
    cg_provider_id_t default_provider, cg_error_t *err);
static int cg_request_check_messages(cg_json_type_t type, size_t count,
    cg_error_t *err);
static int cg_request_messages(yajl_val root, cg_error_t *err);
static void cg_request_message(yajl_val msg, cg_request_message_t *m);
static int cg_request_check_message(const cg_request_message_t *m, size_t i,
    cg_error_t *err);
static int cg_request_role(const char *role, size_t len);
static int cg_request_check_stream(cg_json_type_t type, int *stream,
    cg_error_t *err);
static int cg_request_stream(yajl_val root, int *stream, cg_error_t *err);
static cg_json_type_t cg_request_type(yajl_val v);
static int cg_request_read(const char *body, size_t len,
    cg_json_pick_t *picks, cg_request_reader_t *rd, cg_error_t *err);
static void cg_request_on_message(void *data, const cg_json_pick_t *pick,
    const char *s, size_t len);
static void cg_request_on_role(void *data, const cg_json_pick_t *pick,
    const char *s, size_t len);
static void cg_request_on_content(void *data, const cg_json_pick_t *pick,
    const char *s, size_t len);
static void cg_request_on_part(void *data, const cg_json_pick_t *pick,
    const char *s, size_t len);
static void cg_request_on_part_type(void *data, const cg_json_pick_t *pick,
    const char *s, size_t len);
static void cg_request_on_tool_calls(void *data, const cg_json_pick_t *pick,
    const char *s, size_t len);
static void cg_request_on_tool_call(void *data, const cg_json_pick_t *pick,
    const char *s, size_t len);
static void cg_request_end_part(cg_request_reader_t *rd);
static void cg_request_end_message(cg_request_reader_t *rd);
static void cg_request_remove(yajl_val obj, const char *key);
static void cg_bad_request(cg_error_t *err, const char *param,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Reads the body once without a tree for the checks. A tree is built only
 * when cg_request_needs_tree() returns 1 because a later step reads one.
 */
int
cg_chat_request_parse(const char *body, size_t len,
    cg_provider_id_t default_provider, cg_chat_request_t *req, cg_error_t *err)
{
    cg_json_pick_t       picks[CG_REQUEST_PICK_N], *model, *messages;
    cg_request_reader_t  rd;
    char                 cause[256];
    int                  rc = -1;

    memset(req, 0, sizeof(*req));

    if (cg_request_read(body, len, picks, &rd, err) != 0) {
        return -1;
    }

    model = &picks[CG_REQUEST_PICK_MODEL];
    messages = &picks[CG_REQUEST_PICK_MESSAGES];

    if (cg_request_check_model(model->type, model->string, err) != 0
        || cg_request_split_model(req, model->string, default_provider, err)
           != 0
        || cg_request_check_messages(messages->type, messages->count, err)
           != 0)
    {
        goto done;
    }

    if (rd.failed) {
        *err = rd.error;
        goto done;
    }

    if (cg_request_check_stream(picks[CG_REQUEST_PICK_STREAM].type,
                                &req->stream, err) != 0)
    {
        goto done;
    }

    req->stream_options =
        picks[CG_REQUEST_PICK_STREAM_OPTIONS].type != CG_JSON_ABSENT;
    req->include_usage =
        picks[CG_REQUEST_PICK_STREAM_OPTIONS].type == CG_JSON_OBJECT
        && picks[CG_REQUEST_PICK_INCLUDE_USAGE].type == CG_JSON_TRUE;

    /* The text passed every check above, so only memory can run out. */
    if (cg_request_needs_tree(req)) {
        req->root = cg_json_parse(body, len, cause, sizeof(cause));
        if (req->root == NULL) {
            cg_error_set(err, 500, "server_error", "parsing the checked "
                         "request body again failed: %s", cause);
            goto done;
        }
    }

    req->body = body;
    req->body_len = len;
    rc = 0;

done:

    cg_json_pick_free(picks, CG_REQUEST_PICK_N);

    if (rc != 0) {
        cg_chat_request_free(req);
    }

    return rc;
}


/*
 * Returns 1 for the providers whose body is built from a tree. The body
 * for an OpenAI-compatible provider is written from the client's JSON.
 */
static int
cg_request_needs_tree(const cg_chat_request_t *req)
{
    return req->provider == CG_PROVIDER_ANTHROPIC
           || req->provider == CG_PROVIDER_OLLAMA;
}


int
cg_chat_form_parse(const char *body, size_t len,
    cg_provider_id_t default_provider, cg_chat_request_t *req,
    char *key_id, size_t key_id_size, cg_error_t *err)
{
    yajl_val     v, options;
    const char  *model, *prefix_end;
    size_t       n;

    memset(req, 0, sizeof(*req));
    req->provider = default_provider;
    if (key_id_size) {
        key_id[0] = '\0';
    }

    req->root = cg_request_root(body, len, err);
    if (req->root == NULL) {
        return -1;
    }

    v = cg_json_get(req->root, "provider");
    if (v != NULL) {
        if (!YAJL_IS_STRING(v)
            || cg_provider_by_name(v->u.string, strlen(v->u.string),
                                   &req->provider) != 0)
        {
            cg_bad_request(err, "provider", "invalid provider: expected one "
                           "of \"openai\", \"openrouter\", \"anthropic\", "
                           "\"ollama\"");
            goto fail;
        }
    }

    v = cg_json_get(req->root, "key_id");
    if (v != NULL) {
        if (!YAJL_IS_STRING(v) || strlen(v->u.string) >= key_id_size) {
            cg_bad_request(err, "key_id", "invalid key_id: expected a string "
                           "of at most %zu bytes",
                           key_id_size ? key_id_size - 1 : 0);
            goto fail;
        }
        memcpy(key_id, v->u.string, strlen(v->u.string) + 1);
    }

    if (cg_request_model(req->root, err, &model) != 0) {
        goto fail;
    }

    /*
     * A prefix naming the chosen provider is dropped; any other slash is part
     * of the model name, as in OpenRouter's "meta-llama/llama-3".
     */
    prefix_end = strchr(model, '/');
    n = strlen(cg_provider_name(req->provider));
    if (prefix_end != NULL && (size_t) (prefix_end - model) == n
        && memcmp(model, cg_provider_name(req->provider), n) == 0)
    {
        model = prefix_end + 1;
    }

    if (*model == '\0') {
        cg_bad_request(err, "model", "invalid model: no model name after the "
                       "provider prefix");
        goto fail;
    }

    req->model = strdup(model);
    req->model_requested = strdup(cg_json_get_string(req->root, "model"));
    if (req->model == NULL || req->model_requested == NULL) {
        cg_error_set(err, 500, "server_error", "out of memory");
        goto fail;
    }

    if (cg_request_messages(req->root, err) != 0
        || cg_request_stream(req->root, &req->stream, err) != 0)
    {
        goto fail;
    }

    options = cg_json_get(req->root, "stream_options");
    req->stream_options = options != NULL;
    req->include_usage = YAJL_IS_TRUE(cg_json_get(options, "include_usage"));

    /* The form's own fields must not reach the provider; "stream" may. */
    cg_request_remove(req->root, "provider");
    cg_request_remove(req->root, "key_id");

    return 0;

fail:

    cg_chat_request_free(req);
    return -1;
}


void
cg_chat_request_free(cg_chat_request_t *req)
{
    yajl_tree_free(req->root);
    free(req->model);
    free(req->model_requested);

    req->root = NULL;
    req->model = NULL;
    req->model_requested = NULL;
}


static yajl_val
cg_request_root(const char *body, size_t len, cg_error_t *err)
{
    char      cause[256];
    yajl_val  root;

    /*
     * A repeated top-level member is rejected: only one copy would be
     * checked (the model against a client token's allow-list, say), and a
     * provider may read another.
     */
    root = cg_json_parse_request(body, len,
                                 CG_JSON_NO_NUL | CG_JSON_NO_DUPLICATES,
                                 cause, sizeof(cause));
    if (root == NULL) {
        cg_bad_request(err, NULL, "invalid JSON: %s", cause);
        return NULL;
    }

    if (!YAJL_IS_OBJECT(root)) {
        cg_bad_request(err, NULL, "invalid request body: expected a JSON "
                       "object");
        yajl_tree_free(root);
        return NULL;
    }

    return root;
}


/*
 * The checks of model, messages and stream work on facts: the type of a
 * member and a few values. cg_request_model() and its neighbours read the
 * facts from a tree for the /chat form. The reader's handlers read them
 * from the text for cg_chat_request_parse(). Both paths give the same 400s.
 */

static int
cg_request_check_model(cg_json_type_t type, const char *model,
    cg_error_t *err)
{
    if (type == CG_JSON_ABSENT) {
        cg_bad_request(err, "model", "missing model");
        return -1;
    }

    if (type != CG_JSON_STRING || model[0] == '\0') {
        cg_bad_request(err, "model", "invalid model: expected a non-empty "
                       "string");
        return -1;
    }

    if (strlen(model) > CG_MODEL_MAX_LEN) {
        cg_bad_request(err, "model", "invalid model: longer than %d bytes",
                       CG_MODEL_MAX_LEN);
        return -1;
    }

    return 0;
}


static int
cg_request_model(yajl_val root, cg_error_t *err, const char **model)
{
    yajl_val  v = cg_json_get(root, "model");

    *model = YAJL_IS_STRING(v) ? v->u.string : NULL;

    return cg_request_check_model(cg_request_type(v), *model, err);
}


/*
 * Takes the provider from a known prefix of model ("anthropic/claude-...");
 * an unknown prefix belongs to the model name and selects default_provider.
 */
static int
cg_request_split_model(cg_chat_request_t *req, const char *model,
    cg_provider_id_t default_provider, cg_error_t *err)
{
    const char        *slash, *upstream = model;
    cg_provider_id_t   id;

    req->provider = default_provider;

    slash = strchr(model, '/');
    if (slash != NULL
        && cg_provider_by_name(model, (size_t) (slash - model), &id) == 0)
    {
        req->provider = id;
        upstream = slash + 1;
    }

    if (*upstream == '\0') {
        cg_bad_request(err, "model", "invalid model \"%s\": no model name "
                       "after the provider prefix", model);
        return -1;
    }

    req->model = strdup(upstream);
    req->model_requested = strdup(model);
    if (req->model == NULL || req->model_requested == NULL) {
        cg_error_set(err, 500, "server_error", "out of memory");
        return -1;
    }

    return 0;
}


/* Checks the messages member itself; count is its length as an array. */
static int
cg_request_check_messages(cg_json_type_t type, size_t count, cg_error_t *err)
{
    if (type == CG_JSON_ABSENT) {
        cg_bad_request(err, "messages", "missing messages");
        return -1;
    }

    if (type != CG_JSON_ARRAY || count == 0) {
        cg_bad_request(err, "messages", "invalid messages: expected a "
                       "non-empty array");
        return -1;
    }

    if (count > CG_MESSAGES_MAX) {
        cg_bad_request(err, "messages", "invalid messages: %zu entries, at "
                       "most %d allowed", count, CG_MESSAGES_MAX);
        return -1;
    }

    return 0;
}


static int
cg_request_messages(yajl_val root, cg_error_t *err)
{
    yajl_val              v = cg_json_get(root, "messages");
    cg_request_message_t  m;
    size_t                i, count;

    count = YAJL_IS_ARRAY(v) ? v->u.array.len : 0;

    if (cg_request_check_messages(cg_request_type(v), count, err) != 0) {
        return -1;
    }

    for (i = 0; i < count; i++) {
        cg_request_message(v->u.array.values[i], &m);

        if (cg_request_check_message(&m, i, err) != 0) {
            return -1;
        }
    }

    return 0;
}


/* Reads the facts of the message msg from a tree. */
static void
cg_request_message(yajl_val msg, cg_request_message_t *m)
{
    yajl_val     content, calls;
    const char  *role;
    size_t       p;

    m->is_object = YAJL_IS_OBJECT(msg);

    role = cg_json_get_string(msg, "role");
    m->role = role != NULL ? cg_request_role(role, strlen(role)) : -1;

    content = cg_json_get(msg, "content");
    m->content = cg_request_type(content);

    calls = cg_json_get(msg, "tool_calls");
    m->tool_calls = YAJL_IS_ARRAY(calls) && calls->u.array.len > 0;

    m->bad_part = CG_REQUEST_NO_PART;

    for (p = 0; YAJL_IS_ARRAY(content) && p < content->u.array.len; p++) {
        if (cg_json_get_string(content->u.array.values[p], "type") == NULL) {
            m->bad_part = p;
            break;
        }
    }
}


/*
 * content is a string, an array of parts (objects with a string "type"), or
 * null (or absent) for an assistant message that carries tool_calls.
 */
static int
cg_request_check_message(const cg_request_message_t *m, size_t i,
    cg_error_t *err)
{
    if (!m->is_object) {
        cg_bad_request(err, NULL, "invalid messages[%zu]: expected an object",
                       i);
        cg_error_param(err, "messages[%zu]", i);
        return -1;
    }

    if (m->role < 0) {
        cg_bad_request(err, NULL, "invalid messages[%zu].role: expected one "
                       "of system, developer, user, assistant, tool", i);
        cg_error_param(err, "messages[%zu].role", i);
        return -1;
    }

    if (m->content == CG_JSON_STRING) {
        return 0;
    }

    if (m->content == CG_JSON_ABSENT || m->content == CG_JSON_NULL) {
        if (m->role == CG_REQUEST_ROLE_ASSISTANT && m->tool_calls) {
            return 0;
        }

        cg_bad_request(err, NULL, "invalid messages[%zu].content: null or "
                       "missing, which only an assistant message with "
                       "tool_calls may have", i);
        cg_error_param(err, "messages[%zu].content", i);
        return -1;
    }

    if (m->content != CG_JSON_ARRAY) {
        cg_bad_request(err, NULL, "invalid messages[%zu].content: expected a "
                       "string, an array of parts or null", i);
        cg_error_param(err, "messages[%zu].content", i);
        return -1;
    }

    if (m->bad_part != CG_REQUEST_NO_PART) {
        cg_bad_request(err, NULL, "invalid messages[%zu].content[%zu]: "
                       "expected an object with a string \"type\"", i,
                       m->bad_part);
        cg_error_param(err, "messages[%zu].content[%zu]", i, m->bad_part);
        return -1;
    }

    return 0;
}


/* Returns the index of role (len bytes) in cg_request_roles, or -1. */
static int
cg_request_role(const char *role, size_t len)
{
    size_t  r;

    for (r = 0; r < sizeof(cg_request_roles) / sizeof(cg_request_roles[0]);
         r++)
    {
        if (strlen(cg_request_roles[r]) == len
            && memcmp(cg_request_roles[r], role, len) == 0)
        {
            return (int) r;
        }
    }

    return -1;
}


static int
cg_request_check_stream(cg_json_type_t type, int *stream, cg_error_t *err)
{
    *stream = 0;

    if (type == CG_JSON_ABSENT || type == CG_JSON_NULL) {
        return 0;
    }

    if (type != CG_JSON_TRUE && type != CG_JSON_FALSE) {
        cg_bad_request(err, "stream", "invalid stream: expected a boolean");
        return -1;
    }

    *stream = type == CG_JSON_TRUE;
    return 0;
}


static int
cg_request_stream(yajl_val root, int *stream, cg_error_t *err)
{
    return cg_request_check_stream(cg_request_type(cg_json_get(root, "stream")),
                                   stream, err);
}


/* Returns the type of a tree value, CG_JSON_ABSENT for NULL. */
static cg_json_type_t
cg_request_type(yajl_val v)
{
    if (v == NULL) {
        return CG_JSON_ABSENT;
    }

    switch (v->type) {
    case yajl_t_string:
        return CG_JSON_STRING;
    case yajl_t_number:
        return CG_JSON_NUMBER;
    case yajl_t_object:
        return CG_JSON_OBJECT;
    case yajl_t_array:
        return CG_JSON_ARRAY;
    case yajl_t_true:
        return CG_JSON_TRUE;
    case yajl_t_false:
        return CG_JSON_FALSE;
    default:
        return CG_JSON_NULL;
    }
}


/*
 * Reads a chat body once without a tree: runs the checks of
 * cg_request_root() and fills picks and the message facts in rd. Returns
 * 0, or -1 with err set to the 400 that cg_request_root() would give.
 * The caller frees picks with cg_json_pick_free() after a success.
 */
static int
cg_request_read(const char *body, size_t len, cg_json_pick_t *picks,
    cg_request_reader_t *rd, cg_error_t *err)
{
    static const struct {
        const char               *pointer;
        unsigned                  flags;
        cg_json_pick_handler_pt   handler;
    } fields[CG_REQUEST_PICK_N] = {
        [CG_REQUEST_PICK_ROOT]       = { "", 0, NULL },
        [CG_REQUEST_PICK_MODEL]      = { "/model", CG_JSON_PICK_COPY, NULL },
        [CG_REQUEST_PICK_MESSAGES]   = { "/messages", 0, NULL },
        [CG_REQUEST_PICK_STREAM]     = { "/stream", 0, NULL },
        [CG_REQUEST_PICK_STREAM_OPTIONS] = { "/stream_options", 0, NULL },
        [CG_REQUEST_PICK_INCLUDE_USAGE]  = { "/stream_options/include_usage",
                                             0, NULL },
        [CG_REQUEST_PICK_MESSAGE]    = { "/messages/*", 0,
                                         cg_request_on_message },
        [CG_REQUEST_PICK_ROLE]       = { "/messages/*/role", 0,
                                         cg_request_on_role },
        [CG_REQUEST_PICK_CONTENT]    = { "/messages/*/content", 0,
                                         cg_request_on_content },
        [CG_REQUEST_PICK_PART]       = { "/messages/*/content/*", 0,
                                         cg_request_on_part },
        [CG_REQUEST_PICK_PART_TYPE]  = { "/messages/*/content/*/type", 0,
                                         cg_request_on_part_type },
        [CG_REQUEST_PICK_TOOL_CALLS] = { "/messages/*/tool_calls", 0,
                                         cg_request_on_tool_calls },
        [CG_REQUEST_PICK_TOOL_CALL]  = { "/messages/*/tool_calls/0", 0,
                                         cg_request_on_tool_call },
    };

    /* the loop's thread is the only reader, and the pointers are constants */
    static cg_json_plan_t  plan;
    cg_json_findings_t  findings;
    char                cause[256];
    size_t              i;

    memset(picks, 0, CG_REQUEST_PICK_N * sizeof(cg_json_pick_t));
    memset(rd, 0, offsetof(cg_request_reader_t, error));

    for (i = 0; i < CG_REQUEST_PICK_N; i++) {
        picks[i].pointer = fields[i].pointer;
        picks[i].flags = fields[i].flags;
        picks[i].handler = fields[i].handler;
        picks[i].data = rd;
    }

    /*
     * The order of the causes is that of cg_json_parse_request(). A U+0000
     * in a string comes from the escape \u0000 that cg_json_check_nul()
     * looks for, so its scan runs only to name the member.
     */
    if (cg_json_pick_planned(body, len, picks, CG_REQUEST_PICK_N, &plan,
                             &findings, cause, sizeof(cause)) != 0
        || (findings.nul
            && cg_json_check_nul(body, len, cause, sizeof(cause)) != 0)
        || (findings.repeated
            && (cg_json_repeated_error(cause, sizeof(cause),
                                       findings.repeated_name), 1)))
    {
        cg_json_pick_free(picks, CG_REQUEST_PICK_N);
        cg_bad_request(err, NULL, "invalid JSON: %s", cause);
        return -1;
    }

    if (picks[CG_REQUEST_PICK_ROOT].type != CG_JSON_OBJECT) {
        cg_json_pick_free(picks, CG_REQUEST_PICK_N);
        cg_bad_request(err, NULL, "invalid request body: expected a JSON "
                       "object");
        return -1;
    }

    cg_request_end_message(rd);

    return 0;
}


/* Checks the message read last and starts the one that begins here. */
static void
cg_request_on_message(void *data, const cg_json_pick_t *pick, const char *s,
    size_t len)
{
    cg_request_reader_t  *rd = data;

    (void) s;
    (void) len;

    cg_request_end_message(rd);

    rd->message.is_object = pick->type == CG_JSON_OBJECT;
    rd->message.role = -1;
    rd->message.content = CG_JSON_ABSENT;
    rd->message.tool_calls = 0;
    rd->message.bad_part = CG_REQUEST_NO_PART;
    rd->tool_calls_array = 0;
    rd->parts = 0;
    rd->part_typed = 0;
    rd->messages++;
}


static void
cg_request_on_role(void *data, const cg_json_pick_t *pick, const char *s,
    size_t len)
{
    cg_request_reader_t  *rd = data;

    rd->message.role = pick->type == CG_JSON_STRING ? cg_request_role(s, len)
                                                    : -1;
}


static void
cg_request_on_content(void *data, const cg_json_pick_t *pick, const char *s,
    size_t len)
{
    cg_request_reader_t  *rd = data;

    (void) s;
    (void) len;

    rd->message.content = pick->type;
}


static void
cg_request_on_part(void *data, const cg_json_pick_t *pick, const char *s,
    size_t len)
{
    cg_request_reader_t  *rd = data;

    (void) pick;
    (void) s;
    (void) len;

    cg_request_end_part(rd);

    rd->part_typed = 0;
    rd->parts++;
}


/* Only an object part has members, so this match implies an object. */
static void
cg_request_on_part_type(void *data, const cg_json_pick_t *pick,
    const char *s, size_t len)
{
    cg_request_reader_t  *rd = data;

    (void) s;
    (void) len;

    rd->part_typed = pick->type == CG_JSON_STRING;
}


static void
cg_request_on_tool_calls(void *data, const cg_json_pick_t *pick,
    const char *s, size_t len)
{
    cg_request_reader_t  *rd = data;

    (void) s;
    (void) len;

    rd->tool_calls_array = pick->type == CG_JSON_ARRAY;
}


/* "/0" also names a member "0" of an object, so the type matters. */
static void
cg_request_on_tool_call(void *data, const cg_json_pick_t *pick,
    const char *s, size_t len)
{
    cg_request_reader_t  *rd = data;

    (void) pick;
    (void) s;
    (void) len;

    rd->message.tool_calls = rd->tool_calls_array;
}


/* Records the part read last when it lacks a string "type". */
static void
cg_request_end_part(cg_request_reader_t *rd)
{
    if (rd->parts > 0 && !rd->part_typed
        && rd->message.bad_part == CG_REQUEST_NO_PART)
    {
        rd->message.bad_part = rd->parts - 1;
    }
}


/*
 * Checks the message read last, if any. Messages are met in order, so the
 * first one that fails is the one that cg_request_messages() would name.
 */
static void
cg_request_end_message(cg_request_reader_t *rd)
{
    if (rd->messages == 0 || rd->failed) {
        return;
    }

    cg_request_end_part(rd);

    if (cg_request_check_message(&rd->message, rd->messages - 1, &rd->error)
        != 0)
    {
        rd->failed = 1;
    }
}


/* Removes every member key from obj. */
static void
cg_request_remove(yajl_val obj, const char *key)
{
    size_t  i = 0, rest;

    while (i < obj->u.object.len) {
        if (strcmp(obj->u.object.keys[i], key) != 0) {
            i++;
            continue;
        }

        free((char *) obj->u.object.keys[i]);
        yajl_tree_free(obj->u.object.values[i]);

        rest = obj->u.object.len - i - 1;
        memmove(&obj->u.object.keys[i], &obj->u.object.keys[i + 1],
                rest * sizeof(obj->u.object.keys[0]));
        memmove(&obj->u.object.values[i], &obj->u.object.values[i + 1],
                rest * sizeof(obj->u.object.values[0]));
        obj->u.object.len--;
    }
}


static void
cg_bad_request(cg_error_t *err, const char *param, const char *fmt, ...)
{
    va_list  ap;
    char     msg[sizeof(err->message)];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    cg_error_set(err, 400, "invalid_request_error", "%s", msg);
    err->param = param;
}
