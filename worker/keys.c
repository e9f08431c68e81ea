/*
 * Stored provider keys in the running worker: loading them from
 * provider_keys, resolving a chat's key id, the "rekey" command, and the
 * helpers that let admin handlers respond from a callback.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

#include "db.h"
#include "json.h"
#include "keys.h"
#include "log.h"
#include "secret.h"

#define CG_KEYS_RETRY_MS  1000

/* PostgreSQL type OIDs, from the server's pg_type.h */
#define CG_PG_BOOLOID     16
#define CG_PG_INT8OID     20
#define CG_PG_INT4OID     23
#define CG_PG_JSONOID     114

#define CG_KEYS_LOAD_SQL                                                     \
    "SELECT id, provider, label, base_url, ciphertext, key_version "         \
    "FROM provider_keys WHERE revoked_at IS NULL"

struct cg_keys_s {
    struct event_base    *base;
    cg_db_t              *db;
    cg_vault_kms_key_t   *kms;
    cg_vault_t           *vault;
    struct event         *retry;
    int                   loaded;
    int                   loading;

    /* ids of unrevoked keys whose ciphertext failed to decrypt at start */
    char                (*undecryptable)[CG_UUID_LEN + 1];
    size_t                nundecryptable;
};

static void cg_keys_load_query(evutil_socket_t fd, short events, void *arg);
static void cg_keys_loaded_rows(PGresult *res, const char *error, void *arg);
static int cg_keys_rekey_row(PGconn *pg, const cg_vault_kms_key_t *old_kms,
    const cg_vault_kms_key_t *new_kms, const char *id);
static int cg_keys_exec_ok(PGconn *pg, const char *sql);
static void cg_keys_mark_undecryptable(cg_keys_t *keys, const char *id);
static int cg_keys_undecryptable(const cg_keys_t *keys, const char *id);


cg_keys_t *
cg_keys_new(struct event_base *base, cg_db_t *db, cg_vault_kms_key_t *kms)
{
    cg_keys_t  *keys;

    keys = calloc(1, sizeof(*keys));
    if (keys == NULL) {
        return NULL;
    }

    keys->base = base;
    keys->db = db;
    keys->kms = kms;
    keys->vault = cg_vault_create();
    keys->retry = evtimer_new(base, cg_keys_load_query, keys);

    if (keys->vault == NULL || keys->retry == NULL) {
        cg_keys_free(keys);
        return NULL;
    }

    return keys;
}


void
cg_keys_free(cg_keys_t *keys)
{
    if (keys == NULL) {
        return;
    }

    if (keys->retry != NULL) {
        event_free(keys->retry);
    }

    cg_vault_destroy(keys->vault);
    cg_vault_kms_key_free(keys->kms);
    free(keys->undecryptable);
    free(keys);
}


void
cg_keys_load(cg_keys_t *keys)
{
    cg_keys_load_query(-1, 0, keys);
}


int
cg_keys_loaded(const cg_keys_t *keys)
{
    return keys->loaded;
}


const cg_vault_kms_key_t *
cg_keys_kms(const cg_keys_t *keys)
{
    return keys->kms;
}


cg_vault_t *
cg_keys_vault(cg_keys_t *keys)
{
    return keys->vault;
}


static void
cg_keys_load_query(evutil_socket_t fd, short events, void *arg)
{
    cg_keys_t       *keys = arg;
    struct timeval   tv = { CG_KEYS_RETRY_MS / 1000, 0 };

    (void) fd;
    (void) events;

    if (cg_db_query(keys->db, CG_KEYS_LOAD_SQL, 0, NULL, cg_keys_loaded_rows,
                    keys) != 0)
    {
        cg_log_warn(NULL, "cannot queue the provider keys query, retrying "
                    "in %d ms", CG_KEYS_RETRY_MS);
        evtimer_add(keys->retry, &tv);
        return;
    }

    keys->loading = 1;
}


/*
 * Decrypts each row into the vault. A row that fails to decrypt (a changed
 * ciphertext, id, provider or version, or another KMS key) is logged and
 * skipped, so the other keys stay usable.
 */
static void
cg_keys_loaded_rows(PGresult *res, const char *error, void *arg)
{
    cg_keys_t       *keys = arg;
    struct timeval   tv = { CG_KEYS_RETRY_MS / 1000, 0 };
    char             err[256];
    const char      *id, *base_url;
    int              i, n, ok = 0;
    long             version;

    keys->loading = 0;

    if (error != NULL) {
        if (strcmp(error, "shutting down") != 0) {
            cg_log_warn(NULL, "loading provider keys failed: %s; retrying in "
                        "%d ms", error, CG_KEYS_RETRY_MS);
            evtimer_add(keys->retry, &tv);
        }
        return;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        id = PQgetvalue(res, i, 0);
        base_url = PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3);
        version = strtol(PQgetvalue(res, i, 5), NULL, 10);

        if (cg_vault_load(keys->vault, keys->kms, id, PQgetvalue(res, i, 1),
                          PQgetvalue(res, i, 2), base_url, (uint32_t) version,
                          PQgetvalue(res, i, 4), err, sizeof(err)) != 0)
        {
            cg_log_error(NULL, "provider key %s is unusable: %s; rotate it "
                         "or check ADMIN_KMS_KEY", id, err);
            cg_keys_mark_undecryptable(keys, id);
            continue;
        }

        ok++;
    }

    keys->loaded = 1;
    cg_log_info(NULL, "provider keys loaded: %d of %d usable", ok, n);
}


static void
cg_keys_mark_undecryptable(cg_keys_t *keys, const char *id)
{
    char  (*ids)[CG_UUID_LEN + 1];

    if (!cg_uuid_valid(id) || cg_keys_undecryptable(keys, id)) {
        return;
    }

    ids = realloc(keys->undecryptable,
                  (keys->nundecryptable + 1) * sizeof(*ids));
    if (ids == NULL) {
        /* Chats with this id then get the generic "unknown" message. */
        return;
    }

    memcpy(ids[keys->nundecryptable++], id, CG_UUID_LEN + 1);
    keys->undecryptable = ids;
}


static int
cg_keys_undecryptable(const cg_keys_t *keys, const char *id)
{
    size_t  i;

    for (i = 0; i < keys->nundecryptable; i++) {
        if (strcmp(keys->undecryptable[i], id) == 0) {
            return 1;
        }
    }

    return 0;
}


void
cg_keys_forget_undecryptable(cg_keys_t *keys, const char *id)
{
    size_t  i;

    for (i = 0; i < keys->nundecryptable; i++) {
        if (strcmp(keys->undecryptable[i], id) == 0) {
            keys->nundecryptable--;
            memcpy(keys->undecryptable[i],
                   keys->undecryptable[keys->nundecryptable], CG_UUID_LEN + 1);
            return;
        }
    }
}


/* Returns 1 if model_requested carries a provider prefix that chose req->provider. */
static int
cg_keys_model_has_prefix(const cg_chat_request_t *req)
{
    return req->model_requested != NULL && req->model != NULL
           && strcmp(req->model_requested, req->model) != 0;
}


int
cg_keys_chat_credential(cg_keys_t *keys, const char *id,
    cg_chat_request_t *req, char **secret, size_t *secret_len,
    char **base_url, cg_error_t *err)
{
    const cg_vault_entry_t  *e = NULL;
    cg_provider_id_t         provider;

    if (cg_uuid_valid(id)) {
        e = cg_vault_lookup(keys->vault, id);
    }

    if (e == NULL && !keys->loaded && cg_uuid_valid(id)) {
        cg_error_set(err, 503, "server_error", "stored provider keys are "
                     "still loading, retry in a second");
        return -1;
    }

    if (e == NULL && cg_keys_undecryptable(keys, id)) {
        cg_error_set(err, 403, "permission_error", "key %s cannot be used: "
                     "it failed to decrypt at start; rotate it", id);
        return -1;
    }

    if (e == NULL
        || cg_provider_by_name(e->provider, strlen(e->provider), &provider)
           != 0)
    {
        cg_error_set(err, 403, "permission_error", "key \"%.40s\" is unknown "
                     "or revoked", id);
        return -1;
    }

    if (cg_keys_model_has_prefix(req) && req->provider != provider) {
        cg_error_set(err, 400, "invalid_request_error", "model \"%.100s\" "
                     "names provider \"%s\", but key %s belongs to \"%s\"",
                     req->model_requested, cg_provider_name(req->provider),
                     e->id, e->provider);
        err->param = "model";
        return -1;
    }

    req->provider = provider;

    *secret = strndup(e->secret, e->secret_len);
    *base_url = e->base_url ? strdup(e->base_url) : NULL;

    if (*secret == NULL || (e->base_url != NULL && *base_url == NULL)) {
        free(*secret);
        free(*base_url);
        *secret = NULL;
        *base_url = NULL;
        cg_error_set(err, 500, "server_error", "out of memory");
        return -1;
    }

    *secret_len = e->secret_len;
    return 0;
}


/* The rekey command. */

int
cg_keys_rekey(const char *conninfo, const char *old_kms_text,
    const char *new_kms_text)
{
    cg_vault_kms_key_t  *old_kms = NULL, *new_kms = NULL;
    PGconn              *pg = NULL;
    PGresult            *res = NULL;
    char                 err[256];
    int                  i, n, rc, done = 0, skipped = 0, failed = 0;

    if (cg_vault_kms_key_parse(old_kms_text, &old_kms, err, sizeof(err)) != 0) {
        cg_log_error(NULL, "invalid ADMIN_KMS_KEY: %s", err);
        goto fail;
    }
    if (cg_vault_kms_key_parse(new_kms_text, &new_kms, err, sizeof(err)) != 0) {
        cg_log_error(NULL, "invalid new KMS key: %s", err);
        goto fail;
    }

    pg = cg_db_connect(conninfo);
    if (PQstatus(pg) != CONNECTION_OK) {
        cg_log_error(NULL, "connect to the database failed: %s",
                     PQerrorMessage(pg));
        goto fail;
    }

    res = PQexec(pg, "SELECT id FROM provider_keys WHERE revoked_at IS NULL "
                 "ORDER BY created_at");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cg_log_error(NULL, "reading provider_keys failed: %s",
                     PQresultErrorMessage(res));
        goto fail;
    }

    n = PQntuples(res);
    for (i = 0; i < n; i++) {
        rc = cg_keys_rekey_row(pg, old_kms, new_kms, PQgetvalue(res, i, 0));
        done += rc == 0;
        skipped += rc == 1;
        failed += rc < 0;
    }

    cg_log_info(NULL, "rekey finished: %d keys re-encrypted, %d already under "
                "the new KMS key, %d failed", done, skipped, failed);

    PQclear(res);
    PQfinish(pg);
    cg_vault_kms_key_free(old_kms);
    cg_vault_kms_key_free(new_kms);
    return failed ? 1 : 0;

fail:

    PQclear(res);
    PQfinish(pg);
    cg_vault_kms_key_free(old_kms);
    cg_vault_kms_key_free(new_kms);
    return 1;
}


/*
 * Re-encrypts one row in its own transaction, with the row locked so a
 * rotation through the API cannot interleave. Returns 0 when re-encrypted,
 * 1 when the row already decrypts under the new KMS key (a rerun after an
 * interrupted rekey), -1 on failure (logged, rolled back).
 */
static int
cg_keys_rekey_row(PGconn *pg, const cg_vault_kms_key_t *old_kms,
    const cg_vault_kms_key_t *new_kms, const char *id)
{
    PGresult      *res = NULL, *upd = NULL;
    const char    *values[3], *provider, *blob;
    char          *new_blob = NULL, *plain = NULL, version_text[16], err[256];
    uint32_t       version, new_version;
    size_t         plain_len;
    int            rc = -1;

    if (!cg_keys_exec_ok(pg, "BEGIN")) {
        return -1;
    }

    values[0] = id;
    res = PQexecParams(pg, "SELECT provider, key_version, ciphertext "
                       "FROM provider_keys WHERE id = $1 AND revoked_at IS NULL "
                       "FOR UPDATE", 1, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        cg_log_error(NULL, "rekey of key %s: the row is gone or cannot be "
                     "read: %s", id, PQresultErrorMessage(res));
        goto done;
    }

    provider = PQgetvalue(res, 0, 0);
    version = (uint32_t) strtoul(PQgetvalue(res, 0, 1), NULL, 10);
    blob = PQgetvalue(res, 0, 2);

    if (cg_vault_rekey(old_kms, new_kms, id, provider, version, blob,
                       &new_blob, &new_version, err, sizeof(err)) != 0)
    {
        if (cg_vault_decrypt(new_kms, blob, id, provider, version, &plain,
                             &plain_len, err, sizeof(err)) == 0)
        {
            cg_secret_free(plain, plain_len + 1);
            rc = 1;
            goto done;
        }

        cg_log_error(NULL, "rekey of key %s failed: it does not decrypt "
                     "under ADMIN_KMS_KEY: %s", id, err);
        goto done;
    }

    snprintf(version_text, sizeof(version_text), "%u", new_version);
    values[1] = new_blob;
    values[2] = version_text;

    upd = PQexecParams(pg, "UPDATE provider_keys SET ciphertext = $2, "
                       "key_version = $3 WHERE id = $1", 3, NULL, values,
                       NULL, NULL, 0);
    if (PQresultStatus(upd) != PGRES_COMMAND_OK) {
        cg_log_error(NULL, "rekey of key %s: update failed: %s", id,
                     PQresultErrorMessage(upd));
        goto done;
    }

    rc = 0;

done:

    PQclear(res);
    PQclear(upd);
    free(new_blob);

    if (!cg_keys_exec_ok(pg, rc == 0 ? "COMMIT" : "ROLLBACK") && rc == 0) {
        cg_log_error(NULL, "rekey of key %s: commit failed", id);
        rc = -1;
    }

    return rc;
}


static int
cg_keys_exec_ok(PGconn *pg, const char *sql)
{
    PGresult  *res = PQexec(pg, sql);
    int        ok = PQresultStatus(res) == PGRES_COMMAND_OK;

    if (!ok) {
        cg_log_error(NULL, "%s failed: %s", sql, PQresultErrorMessage(res));
    }

    PQclear(res);
    return ok;
}


/* Admin requests that respond from a callback. */

void
cg_admin_async_begin(cg_admin_async_t *a, cg_server_t *srv,
    cg_http_req_t *req, const cg_request_info_t *info)
{
    a->srv = srv;
    a->req = req;
    a->info = *info;
    srv->in_flight++;

    /* The handler may outlive the request's headers and reads none of them. */
    a->info.jti = NULL;
    a->info.models = NULL;
    a->info.authorization = NULL;
}


static void
cg_admin_async_end(cg_admin_async_t *a)
{
    cg_server_t  *srv = a->srv;

    a->req = NULL;
    srv->in_flight--;

    if (srv->stopping && srv->in_flight == 0 && srv->idle != NULL) {
        srv->idle(srv->idle_arg);
    }
}


void
cg_admin_async_json(cg_admin_async_t *a, int status, const char *body)
{
    /* After cg_http_free() the request is gone with its connection. */
    if (a->req != NULL && a->srv->http != NULL) {
        cg_http_send_json(a->req, a->info.request_id, status, body, -1);
    }

    cg_admin_async_end(a);
}


void
cg_admin_async_error(cg_admin_async_t *a, const cg_error_t *err)
{
    if (a->req != NULL && a->srv->http != NULL) {
        cg_http_send_error(a->req, a->info.request_id, err);
    }

    cg_admin_async_end(a);
}


int
cg_admin_bad_request(cg_http_req_t *req,
    const cg_request_info_t *info, const char *reasons)
{
    cg_error_t  err;

    cg_error_set(&err, 400, "invalid_request_error", "%s", reasons);
    cg_http_send_error(req, info->request_id, &err);

    return -1;
}


int
cg_admin_check_members(cg_http_req_t *req, const cg_request_info_t *info,
    yajl_val root, const char *const *names)
{
    const char  *name, *separator;
    char         expected[256] = "", message[400];
    size_t       i, j, len;

    for (i = 0; i < root->u.object.len; i++) {
        name = root->u.object.keys[i];

        for (j = 0; names[j] != NULL && strcmp(name, names[j]) != 0; j++) {
            /* void */
        }

        if (names[j] == NULL) {
            break;
        }
    }

    if (i == root->u.object.len) {
        return 0;
    }

    for (j = 0; names[j] != NULL; j++) {
        if (j == 0) {
            separator = "";
        } else if (names[j + 1] == NULL) {
            separator = " and ";
        } else {
            separator = ", ";
        }

        len = strlen(expected);
        snprintf(expected + len, sizeof(expected) - len, "%s%s", separator,
                 names[j]);
    }

    snprintf(message, sizeof(message), "unknown field \"%.40s\": expected "
             "%s", root->u.object.keys[i], expected);

    return cg_admin_bad_request(req, info, message);
}


int
cg_admin_gen_row(yajl_gen g, const PGresult *res, int row)
{
    int  rc = 0;

    rc |= yajl_gen_map_open(g) != yajl_gen_status_ok;
    rc |= cg_admin_gen_fields(g, res, row);
    rc |= yajl_gen_map_close(g) != yajl_gen_status_ok;

    return rc ? -1 : 0;
}


/* Writes a json column's text as the value it encodes. */
static int
cg_admin_gen_json_text(yajl_gen g, const char *text)
{
    yajl_val  v;
    char      cause[128];
    int       rc;

    v = cg_json_parse(text, strlen(text), cause, sizeof(cause));
    if (v == NULL) {
        return -1;
    }

    rc = cg_json_gen_value(g, v);
    yajl_tree_free(v);
    return rc;
}


int
cg_admin_gen_fields(yajl_gen g, const PGresult *res, int row)
{
    const char  *value;
    int          col, rc = 0;
    Oid          type;

    for (col = 0; col < PQnfields(res); col++) {
        if (PQfname(res, col)[0] == '_') {
            continue;
        }

        rc |= cg_json_gen_str(g, PQfname(res, col));
        value = PQgetvalue(res, row, col);
        type = PQftype(res, col);

        if (PQgetisnull(res, row, col)) {
            rc |= yajl_gen_null(g) != yajl_gen_status_ok;
        } else if (type == CG_PG_BOOLOID) {
            rc |= yajl_gen_bool(g, value[0] == 't') != yajl_gen_status_ok;
        } else if (type == CG_PG_INT4OID || type == CG_PG_INT8OID) {
            rc |= yajl_gen_number(g, value, strlen(value))
                  != yajl_gen_status_ok;
        } else if (type == CG_PG_JSONOID) {
            rc |= cg_admin_gen_json_text(g, value);
        } else {
            rc |= cg_json_gen_str(g, value);
        }
    }

    return rc ? -1 : 0;
}


char *
cg_admin_rows_json(const PGresult *res)
{
    return cg_admin_rows_json_first(res, PQntuples(res));
}


char *
cg_admin_rows_json_first(const PGresult *res, int n)
{
    yajl_gen  g = cg_json_gen_new();
    size_t    len;
    int       i, rc = 0;

    if (g == NULL) {
        return NULL;
    }

    if (n > PQntuples(res)) {
        n = PQntuples(res);
    }

    rc |= yajl_gen_array_open(g) != yajl_gen_status_ok;
    for (i = 0; i < n; i++) {
        rc |= cg_admin_gen_row(g, res, i);
    }
    rc |= yajl_gen_array_close(g) != yajl_gen_status_ok;

    if (rc) {
        yajl_gen_free(g);
        return NULL;
    }

    return cg_json_gen_finish(g, &len);
}
