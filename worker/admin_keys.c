/*
 * /admin/api/keys: create, list, rotate and revoke stored provider keys.
 * The secret travels only inward: it is encrypted into provider_keys and
 * put into this worker's vault table, and no response or log line carries it.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "conf.h"
#include "json.h"
#include "keys.h"
#include "log.h"
#include "ratelimit.h"
#include "revoked.h"
#include "secret.h"

#define CG_KEYS_BODY_MAX     65536
#define CG_KEYS_LABEL_MAX    200
#define CG_KEYS_URL_MAX      2048

/*
 * The columns of a key in admin API responses. A base URL's user info may
 * contain a password, so responses show it as "***". Creates and rotates
 * also return the stored base URL for the vault, as a column that responses
 * leave out (see cg_admin_gen_fields()).
 */
#define CG_KEYS_COLUMNS                                                      \
    "id, provider, label, "                                                  \
    "regexp_replace(base_url, '^(https?://)[^/@]*@', '\\1***@')"            \
    " AS base_url, fingerprint, key_version, "                               \
    CG_SQL_TIME("created_at") ", " CG_SQL_TIME("rotated_at")

#define CG_KEYS_RETURNING  CG_KEYS_COLUMNS ", base_url AS _base_url"

/* One create or rotate in progress; owns every pointer it holds. */
typedef struct {
    cg_admin_async_t  a;
    char              id[CG_UUID_LEN + 1];
    char              provider[16];
    char             *label;
    char             *base_url;
    char             *secret;          /* secret memory, secret_len + 1 bytes */
    size_t            secret_len;
    char             *blob;
    uint32_t          version;
} cg_key_op_t;

static void cg_keys_create(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);
static void cg_keys_list(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);
static void cg_keys_revoke(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);
static void cg_keys_rotate(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);

const cg_admin_route_t  cg_admin_keys_routes[] = {
    { CG_HTTP_POST,   "/keys",             CG_ROLE_ADMIN, cg_keys_create },
    { CG_HTTP_GET,    "/keys",             CG_ROLE_ADMIN, cg_keys_list },
    { CG_HTTP_DELETE, "/keys/{}",          CG_ROLE_ADMIN, cg_keys_revoke },
    { CG_HTTP_POST,   "/keys/{}/rotate",   CG_ROLE_ADMIN, cg_keys_rotate },
    { 0, NULL, CG_ROLE_ADMIN, NULL }
};

/* The members that each body accepts. */
static const char *const  cg_keys_create_members[] = {
    "provider", "label", "secret", "base_url", NULL
};
static const char *const  cg_keys_rotate_members[] = { "secret", NULL };


static void
cg_key_op_free(cg_key_op_t *op)
{
    if (op->secret != NULL) {
        cg_secret_free(op->secret, op->secret_len + 1);
    }
    free(op->label);
    free(op->base_url);
    free(op->blob);
    free(op);
}


static void
cg_keys_reason(char *reasons, size_t size, const char *reason)
{
    size_t  len = strlen(reasons);

    snprintf(reasons + len, size - len, "%s%s", len ? "; " : "", reason);
}


/* Returns 1 if s has no byte below 0x21 or at 0x7f, so it fits an HTTP header. */
static int
cg_keys_header_safe(const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] <= 0x20 || (unsigned char) s[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}


/*
 * Parses the body and wipes it, and copies the secret member into op
 * (secret memory), wiping the parser's copy. Returns the tree, or NULL
 * after answering 400 or 413.
 */
static yajl_val
cg_keys_parse_body(cg_http_req_t *req, const cg_request_info_t *info,
    cg_key_op_t *op, char *reasons, size_t size)
{
    yajl_val     root, v;
    const char  *body;
    char         errbuf[200], msg[256];
    size_t       len, n;

    body = cg_admin_body(req, info, CG_KEYS_BODY_MAX, &len);
    if (body == NULL) {
        return NULL;
    }

    root = cg_json_parse_request(body, len,
                                 CG_JSON_NO_NUL | CG_JSON_NO_DUPLICATES,
                                 errbuf, sizeof(errbuf));
    explicit_bzero((char *) body, len);

    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        snprintf(msg, sizeof(msg), "invalid JSON body: %s",
                 root ? "expected an object" : errbuf);
        cg_admin_bad_request(req, info, msg);
        return NULL;
    }

    v = cg_json_get(root, "secret");
    if (v == NULL || !YAJL_IS_STRING(v)) {
        cg_keys_reason(reasons, size, "secret: missing, expected a string");
        return root;
    }

    n = strlen(v->u.string);
    if (n == 0 || n > CG_VAULT_SECRET_MAX
        || !cg_keys_header_safe(v->u.string, n))
    {
        cg_keys_reason(reasons, size, "secret: expected 1 to 4096 printable "
                       "characters without spaces");
    } else {
        op->secret = cg_secret_strndup(v->u.string, n);
        op->secret_len = n;
        if (op->secret == NULL) {
            cg_keys_reason(reasons, size, "secret: out of memory");
        }
    }

    explicit_bzero(v->u.string, n);
    return root;
}




/* Validates provider, label and base_url of a new key into op. */
static void
cg_keys_check_fields(yajl_val root, cg_key_op_t *op, char *reasons,
    size_t size)
{
    const char        *provider, *label, *url;
    cg_provider_id_t   id;
    size_t             n;

    provider = cg_json_get_string(root, "provider");
    if (provider == NULL
        || cg_provider_by_name(provider, strlen(provider), &id) != 0)
    {
        cg_keys_reason(reasons, size, "provider: expected one of \"openai\", "
                       "\"openrouter\", \"anthropic\", \"ollama\"");
    } else {
        snprintf(op->provider, sizeof(op->provider), "%s", provider);
    }

    label = cg_json_get_string(root, "label");
    n = label ? strlen(label) : 0;
    if (n == 0 || n > CG_KEYS_LABEL_MAX || !cg_utf8_printable_line(label, n)) {
        cg_keys_reason(reasons, size, "label: expected 1 to 200 bytes of "
                       "printable text on one line");
    } else {
        op->label = strdup(label);
    }

    if (cg_json_get(root, "base_url") == NULL
        || YAJL_IS_NULL(cg_json_get(root, "base_url")))
    {
        return;
    }

    url = cg_json_get_string(root, "base_url");
    n = url ? strlen(url) : 0;
    if (url == NULL || n > CG_KEYS_URL_MAX || !cg_keys_header_safe(url, n)
        || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        || !cg_conf_base_url_valid(url))
    {
        cg_keys_reason(reasons, size, "base_url: expected an http:// or "
                       "https:// URL of at most 2048 bytes without spaces, "
                       "with a host and without a query or fragment");
        return;
    }

    while (n > 0 && url[n - 1] == '/') {
        n--;
    }
    op->base_url = strndup(url, n);
}


/* Seals op->secret for (op->id, op->provider, op->version) into op->blob. */
static int
cg_keys_seal(cg_server_t *srv, cg_key_op_t *op, cg_error_t *err)
{
    char  msg[256];

    op->blob = cg_vault_encrypt(cg_keys_kms(srv->keys), op->id, op->provider,
                                op->version, op->secret, op->secret_len, msg,
                                sizeof(msg));
    if (op->blob == NULL) {
        cg_log_error(op->a.info.request_id, "encrypting key %s failed: %s",
                     op->id, msg);
        cg_error_set(err, 500, "server_error", "encrypting the key failed");
        return -1;
    }

    return 0;
}


/*
 * Puts the key of a created or rotated row into the vault and answers with
 * the row. A failure to put it is logged: the key is stored, and the next
 * start loads it. A key revoked while its rotation was being written stays
 * out of the vault (cg_vault_put() returns 1), because the revoke wiped it
 * first and its UPDATE committed after the rotation's.
 */
static void
cg_keys_answer_row(cg_key_op_t *op, PGresult *res, int status)
{
    cg_server_t  *srv = op->a.srv;
    yajl_gen      g;
    char         *json;
    char          msg[256];
    size_t        len;
    int           url, rc;

    url = PQfnumber(res, "_base_url");

    rc = cg_vault_put(cg_keys_vault(srv->keys), op->id, op->provider,
                      PQgetvalue(res, 0, 2),
                      PQgetisnull(res, 0, url) ? NULL
                                               : PQgetvalue(res, 0, url),
                      op->version, op->secret, op->secret_len, msg,
                      sizeof(msg));
    if (rc < 0) {
        cg_log_error(op->a.info.request_id, "key %s is stored but not usable "
                     "until restart: %s", op->id, msg);
    } else if (rc > 0) {
        cg_log_info(op->a.info.request_id, "key %s version %u is stored, "
                    "but the key was revoked meanwhile: %s", op->id,
                    op->version, msg);
    }

    g = cg_json_gen_new();
    json = NULL;
    if (g != NULL && cg_admin_gen_row(g, res, 0) == 0) {
        json = cg_json_gen_finish(g, &len);
    } else if (g != NULL) {
        yajl_gen_free(g);
    }

    cg_admin_async_json(&op->a, json ? status : 500,
                        json ? json : "{\"error\":{\"message\":\"out of memory\","
                                      "\"type\":\"server_error\"}}");
    free(json);
}


/* Logs a failed query and sends 503, so the caller retries later. */
static void
cg_keys_db_failed(cg_admin_async_t *a, const char *what, const char *error)
{
    cg_error_t  err;

    cg_log_error(a->info.request_id, "%s failed: %s", what, error);
    cg_error_set(&err, 503, "server_error", "%s failed: the database is not "
                 "available, retry later", what);
    cg_admin_async_error(a, &err);
}


static void
cg_keys_created(PGresult *res, const char *error, void *arg)
{
    cg_key_op_t  *op = arg;

    if (error != NULL) {
        cg_keys_db_failed(&op->a, "storing the key", error);
        cg_key_op_free(op);
        return;
    }

    cg_log_info(op->a.info.request_id, "provider key %s for \"%s\" created",
                op->id, op->provider);
    cg_keys_answer_row(op, res, 201);
    cg_key_op_free(op);
}


static void
cg_keys_create(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    cg_key_op_t  *op;
    cg_error_t    err;
    yajl_val      root;
    char          reasons[1024] = "", version[16], fingerprint[8];
    const char   *values[7];

    (void) match;

    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        cg_error_set(&err, 500, "server_error", "out of memory");
        cg_http_send_error(req, info->request_id, &err);
        return;
    }

    root = cg_keys_parse_body(req, info, op, reasons, sizeof(reasons));
    if (root == NULL) {
        cg_key_op_free(op);
        return;
    }

    if (cg_admin_check_members(req, info, root, cg_keys_create_members)
        != 0)
    {
        yajl_tree_free(root);
        cg_key_op_free(op);
        return;
    }

    cg_keys_check_fields(root, op, reasons, sizeof(reasons));
    yajl_tree_free(root);

    if (reasons[0] != '\0') {
        cg_admin_bad_request(req, info, reasons);
        cg_key_op_free(op);
        return;
    }

    cg_admin_async_begin(&op->a, srv, req, info);
    op->version = 1;

    if (cg_uuid_v4(op->id) != 0 || cg_keys_seal(srv, op, &err) != 0) {
        cg_error_set(&err, 500, "server_error", "cannot create the key");
        cg_admin_async_error(&op->a, &err);
        cg_key_op_free(op);
        return;
    }

    cg_vault_fingerprint(op->secret, op->secret_len, fingerprint);
    snprintf(version, sizeof(version), "%u", op->version);

    values[0] = op->id;
    values[1] = op->provider;
    values[2] = op->label;
    values[3] = op->base_url;
    values[4] = op->blob;
    values[5] = version;
    values[6] = fingerprint;

    if (cg_db_query(srv->db, "INSERT INTO provider_keys (id, provider, label, "
                    "base_url, ciphertext, key_version, fingerprint) VALUES "
                    "($1, $2, $3, $4, $5, $6, $7) RETURNING " CG_KEYS_RETURNING,
                    7, values, cg_keys_created, op) != 0)
    {
        cg_keys_db_failed(&op->a, "storing the key", "the query queue is full");
        cg_key_op_free(op);
    }
}


static void
cg_keys_listed(PGresult *res, const char *error, void *arg)
{
    cg_admin_async_t  *a = arg;
    cg_vault_t        *vault = cg_keys_vault(a->srv->keys);
    yajl_gen           g;
    char              *json = NULL;
    size_t             len;
    int                i, rc = 0;

    if (error != NULL) {
        cg_keys_db_failed(a, "listing the keys", error);
        free(a);
        return;
    }

    g = cg_json_gen_new();
    if (g != NULL) {
        rc |= yajl_gen_array_open(g) != yajl_gen_status_ok;
        for (i = 0; i < PQntuples(res); i++) {
            rc |= yajl_gen_map_open(g) != yajl_gen_status_ok;
            rc |= cg_admin_gen_fields(g, res, i);
            rc |= cg_json_gen_str(g, "usable");
            rc |= yajl_gen_bool(g, cg_vault_lookup(vault, PQgetvalue(res, i, 0))
                                   != NULL) != yajl_gen_status_ok;
            rc |= yajl_gen_map_close(g) != yajl_gen_status_ok;
        }
        rc |= yajl_gen_array_close(g) != yajl_gen_status_ok;
        json = rc ? NULL : cg_json_gen_finish(g, &len);
        if (rc) {
            yajl_gen_free(g);
        }
    }

    if (json == NULL) {
        cg_keys_db_failed(a, "listing the keys", "out of memory");
    } else {
        cg_admin_async_json(a, 200, json);
    }

    free(json);
    free(a);
}


static void
cg_keys_list(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    cg_admin_async_t  *a;
    cg_error_t         err;

    (void) match;

    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        cg_error_set(&err, 500, "server_error", "out of memory");
        cg_http_send_error(req, info->request_id, &err);
        return;
    }

    cg_admin_async_begin(a, srv, req, info);

    if (cg_db_query(srv->db, "SELECT " CG_KEYS_COLUMNS " FROM provider_keys "
                    "WHERE revoked_at IS NULL ORDER BY created_at, id", 0,
                    NULL, cg_keys_listed, a) != 0)
    {
        cg_keys_db_failed(a, "listing the keys", "the query queue is full");
        free(a);
    }
}


static void
cg_keys_answer_not_found(cg_http_req_t *req,
    const cg_request_info_t *info, const char *id)
{
    cg_error_t  err;

    cg_error_set(&err, 404, "invalid_request_error", "key \"%.40s\" is "
                 "unknown or revoked", id);
    cg_http_send_error(req, info->request_id, &err);
}


/*
 * Allocates the state of an operation on the key the path names. Returns
 * NULL after sending 404 for an id that is no UUID, or 500 without memory.
 */
static cg_key_op_t *
cg_key_op_for_path(cg_http_req_t *req, const cg_request_info_t *info,
    const cg_admin_match_t *match)
{
    cg_key_op_t  *op;
    cg_error_t    err;

    if (!cg_uuid_valid(match->param[0])) {
        cg_keys_answer_not_found(req, info, match->param[0]);
        return NULL;
    }

    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        cg_log_error(info->request_id, "out of memory for a key operation");
        cg_error_set(&err, 500, "server_error", "out of memory");
        cg_http_send_error(req, info->request_id, &err);
        return NULL;
    }

    memcpy(op->id, match->param[0], CG_UUID_LEN + 1);
    return op;
}


static void
cg_keys_token_pushed(const char *error, void *arg)
{
    (void) arg;

    if (error != NULL) {
        cg_log_warn(NULL, "a revoked client token is not yet in nginx, the "
                    "next limits sync pushes it: %s", error);
    }
}


static void
cg_keys_tokens_revoked(PGresult *res, const char *error, void *arg)
{
    cg_server_t  *srv = arg;
    const char   *jti;
    long long     exp;
    int           i, n;

    if (error != NULL) {
        /* NOTE: the tokens stay listed as unrevoked, but they cannot chat:
         * the key they name is gone from the vault. */
        cg_log_error(NULL, "revoking the client tokens of a revoked key "
                     "failed: %s", error);
        return;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        exp = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        jti = PQgetvalue(res, i, 1);

        if (srv->revoked != NULL) {
            cg_revoked_add(srv->revoked, jti, exp);
        }
        if (srv->limits == NULL
            || cg_limits_revoke(srv->limits, jti, exp, cg_keys_token_pushed,
                                NULL) != 0)
        {
            cg_keys_token_pushed("the control location is not set or the "
                                 "push could not start", NULL);
        }
    }

    if (n > 0) {
        cg_log_info(NULL, "%d client tokens revoked with their key", n);
    }
}


/* Revokes every client token of key id, in the background. */
static void
cg_keys_revoke_tokens(cg_server_t *srv, const char *id)
{
    const char  *values[1];

    values[0] = id;

    if (cg_db_query(srv->db, CG_TOKENS_REVOKE_SQL("key_id"), 1, values,
                    cg_keys_tokens_revoked, srv) != 0)
    {
        cg_log_error(NULL, "revoking the client tokens of key %s failed: the "
                     "database queue is full", id);
    }
}


static void
cg_keys_revoked(PGresult *res, const char *error, void *arg)
{
    cg_key_op_t  *op = arg;
    cg_error_t    err;
    char         *json;

    if (error != NULL) {
        cg_keys_db_failed(&op->a, "revoking the key", error);
    } else if (PQntuples(res) == 0) {
        cg_error_set(&err, 404, "invalid_request_error", "key \"%s\" is "
                     "unknown or revoked", op->id);
        cg_admin_async_error(&op->a, &err);
    } else {
        cg_log_info(op->a.info.request_id, "provider key %s revoked", op->id);
        cg_keys_revoke_tokens(op->a.srv, op->id);
        json = cg_admin_rows_json(res);
        if (json != NULL) {
            /* one row: answer the object, not the array */
            json[strlen(json) - 1] = '\0';
        }
        cg_admin_async_json(&op->a, 200, json ? json + 1 : "{}");
        free(json);
    }

    cg_key_op_free(op);
}


/* Wipes the key from memory at once, then marks it revoked in the database. */
static void
cg_keys_revoke(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    cg_key_op_t  *op;
    const char   *values[1];

    op = cg_key_op_for_path(req, info, match);
    if (op == NULL) {
        return;
    }
    cg_vault_revoke(cg_keys_vault(srv->keys), op->id);
    cg_keys_forget_undecryptable(srv->keys, op->id);
    cg_admin_async_begin(&op->a, srv, req, info);

    values[0] = op->id;
    if (cg_db_query(srv->db, "UPDATE provider_keys SET revoked_at = now(), "
                    "ciphertext = NULL WHERE id = $1 AND revoked_at IS NULL "
                    "RETURNING id, " CG_SQL_TIME("revoked_at"), 1, values,
                    cg_keys_revoked, op) != 0)
    {
        cg_keys_db_failed(&op->a, "revoking the key", "the query queue is full");
        cg_key_op_free(op);
    }
}


static void
cg_keys_rotated(PGresult *res, const char *error, void *arg)
{
    cg_key_op_t  *op = arg;
    cg_error_t    err;

    if (error != NULL) {
        cg_keys_db_failed(&op->a, "storing the rotated key", error);
    } else if (PQntuples(res) == 0) {
        /* the row changed between the read and the write: rekey or revoke */
        cg_error_set(&err, 409, "invalid_request_error", "key %s changed "
                     "while it was rotated, retry", op->id);
        cg_admin_async_error(&op->a, &err);
    } else {
        cg_log_info(op->a.info.request_id, "provider key %s rotated to "
                    "version %u", op->id, op->version);
        cg_keys_answer_row(op, res, 200);
    }

    cg_key_op_free(op);
}


/* Seals the new secret for the row's next version and writes it. */
static void
cg_keys_rotate_read(PGresult *res, const char *error, void *arg)
{
    cg_key_op_t  *op = arg;
    cg_server_t  *srv = op->a.srv;
    cg_error_t    err;
    const char   *values[5];
    char          version[16], old_version[16], fingerprint[8];

    if (error != NULL || PQntuples(res) == 0) {
        if (error != NULL) {
            cg_keys_db_failed(&op->a, "reading the key", error);
        } else {
            cg_error_set(&err, 404, "invalid_request_error", "key \"%s\" is "
                         "unknown or revoked", op->id);
            cg_admin_async_error(&op->a, &err);
        }
        cg_key_op_free(op);
        return;
    }

    snprintf(op->provider, sizeof(op->provider), "%s", PQgetvalue(res, 0, 0));
    snprintf(old_version, sizeof(old_version), "%s", PQgetvalue(res, 0, 1));
    op->version = (uint32_t) strtoul(old_version, NULL, 10) + 1;

    if (cg_keys_seal(srv, op, &err) != 0) {
        cg_admin_async_error(&op->a, &err);
        cg_key_op_free(op);
        return;
    }

    cg_vault_fingerprint(op->secret, op->secret_len, fingerprint);
    snprintf(version, sizeof(version), "%u", op->version);

    values[0] = op->id;
    values[1] = op->blob;
    values[2] = version;
    values[3] = fingerprint;
    values[4] = old_version;

    if (cg_db_query(srv->db, "UPDATE provider_keys SET ciphertext = $2, "
                    "key_version = $3, fingerprint = $4, rotated_at = now() "
                    "WHERE id = $1 AND key_version = $5 AND revoked_at IS NULL "
                    "RETURNING " CG_KEYS_RETURNING, 5, values, cg_keys_rotated,
                    op) != 0)
    {
        cg_keys_db_failed(&op->a, "storing the rotated key",
                          "the query queue is full");
        cg_key_op_free(op);
    }
}


static void
cg_keys_rotate(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    cg_key_op_t  *op;
    yajl_val      root;
    char          reasons[512] = "";
    const char   *values[1];

    op = cg_key_op_for_path(req, info, match);
    if (op == NULL) {
        return;
    }

    root = cg_keys_parse_body(req, info, op, reasons, sizeof(reasons));
    if (root == NULL) {
        cg_key_op_free(op);
        return;
    }

    if (cg_admin_check_members(req, info, root, cg_keys_rotate_members)
        != 0)
    {
        yajl_tree_free(root);
        cg_key_op_free(op);
        return;
    }
    yajl_tree_free(root);

    if (reasons[0] != '\0') {
        cg_admin_bad_request(req, info, reasons);
        cg_key_op_free(op);
        return;
    }

    cg_admin_async_begin(&op->a, srv, req, info);

    values[0] = op->id;
    if (cg_db_query(srv->db, "SELECT provider, key_version FROM provider_keys "
                    "WHERE id = $1 AND revoked_at IS NULL", 1, values,
                    cg_keys_rotate_read, op) != 0)
    {
        cg_keys_db_failed(&op->a, "reading the key", "the query queue is full");
        cg_key_op_free(op);
    }
}
