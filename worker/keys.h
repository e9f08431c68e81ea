#ifndef CG_KEYS_H
#define CG_KEYS_H

#include <event2/event.h>
#include <event2/http.h>
#include <libpq-fe.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "db.h"
#include "http.h"
#include "provider.h"
#include "vault.h"

/*
 * Stored provider keys in the running worker: the vault table of decrypted
 * keys, filled from provider_keys at start and kept in step by the keys API,
 * and the lookup a chat with X-Chatgate-Key-Id makes. The table lives in
 * this process only: a key created, rotated or revoked through another
 * worker reaches this one at its next start.
 */

typedef struct cg_keys_s  cg_keys_t;

/*
 * Creates the key store. It takes ownership of kms (ADMIN_KMS_KEY, parsed)
 * and borrows base and db. Returns NULL when out of memory.
 */
cg_keys_t *cg_keys_new(struct event_base *base, cg_db_t *db,
    cg_vault_kms_key_t *kms);

/* Wipes every key and the KMS key. NULL is a no-op. */
void cg_keys_free(cg_keys_t *keys);

/*
 * Loads every key that is not revoked, in the background; a failed query is
 * retried every second. A key that does not decrypt is left out and logged
 * with its id.
 */
void cg_keys_load(cg_keys_t *keys);

/* 1 once the first load has finished. */
int cg_keys_loaded(const cg_keys_t *keys);

const cg_vault_kms_key_t *cg_keys_kms(const cg_keys_t *keys);
cg_vault_t *cg_keys_vault(cg_keys_t *keys);

/*
 * Resolves the stored key id for a chat and switches req to the key's
 * provider; a model prefix naming another provider is a 400. The secret is
 * copied into *secret (malloc'ed; the caller wipes and frees it), and the
 * key's base URL into *base_url (malloc'ed, or NULL when it has none).
 * Returns 0, or -1 with err set: 403 for an unknown, revoked or
 * undecryptable id, 503 while the keys are still loading.
 */
int cg_keys_chat_credential(cg_keys_t *keys, const char *id,
    cg_chat_request_t *req, char **secret, size_t *secret_len,
    char **base_url, cg_error_t *err);

/*
 * Drops id from the keys that failed to decrypt at start, once it is
 * revoked, so chats with it get the "unknown or revoked" 403 again.
 */
void cg_keys_forget_undecryptable(cg_keys_t *keys, const char *id);

/*
 * Re-encrypts every stored key under new_kms_text, one row per transaction
 * (the "rekey" command; blocking libpq). Returns 0 when every key is under
 * the new KMS key, 1 otherwise (each failure is logged with its key id).
 */
int cg_keys_rekey(const char *conninfo, const char *old_kms_text,
    const char *new_kms_text);

/*
 * An admin request that responds from a database or thread callback. While
 * it runs, it counts in srv->in_flight, so a shutdown waits for its response.
 */
typedef struct {
    cg_server_t             *srv;
    cg_http_req_t   *req;
    cg_request_info_t        info;
} cg_admin_async_t;

void cg_admin_async_begin(cg_admin_async_t *a, cg_server_t *srv,
    cg_http_req_t *req, const cg_request_info_t *info);

/* Sends body (NUL-terminated JSON) with status and ends the request. */
void cg_admin_async_json(cg_admin_async_t *a, int status, const char *body);

/* Sends err and ends the request. */
void cg_admin_async_error(cg_admin_async_t *a, const cg_error_t *err);

/*
 * Sends a 400 whose message is reasons (every invalid field, joined by
 * "; "). Returns -1.
 */
int cg_admin_bad_request(cg_http_req_t *req,
    const cg_request_info_t *info, const char *reasons);

/*
 * Checks that every member of the object root is one of names (a NULL-ended
 * list). Returns 0, or -1 after sending a 400 that names the first unknown
 * member and lists names, because a misspelled optional field would
 * otherwise be ignored and its default used.
 */
int cg_admin_check_members(cg_http_req_t *req,
    const cg_request_info_t *info, yajl_val root, const char *const *names);

/*
 * Writes row of res as a JSON object named by the columns: SQL NULL as null,
 * booleans and integers as such, everything else as a string. A column whose
 * name starts with "_" is for the worker only and is left out. Returns 0 or
 * -1.
 */
int cg_admin_gen_row(yajl_gen g, const PGresult *res, int row);

/* Writes the members of cg_admin_gen_row() without the braces. */
int cg_admin_gen_fields(yajl_gen g, const PGresult *res, int row);

/* Writes every row of res as a JSON array. Returns the malloc'ed text, or NULL. */
char *cg_admin_rows_json(const PGresult *res);

/* Writes the first n rows of res (all, if it has fewer) as a JSON array. */
char *cg_admin_rows_json_first(const PGresult *res, int n);

/* SQL for a timestamptz column as ISO 8601 text, e.g. "2026-05-01T10:00:00.5+00:00". */
/*
 * Revokes the unrevoked client tokens whose column col equals $1 (jti for
 * one token, key_id for every token of a key) and records their ids in
 * revoked_tokens. Returns one row (exp, jti) per token revoked.
 */
#define CG_TOKENS_REVOKE_SQL(col)                                            \
    "WITH t AS (UPDATE client_tokens SET revoked_at = now() WHERE " col     \
    " = $1 AND revoked_at IS NULL RETURNING jti, expires_at), "             \
    "r AS (INSERT INTO revoked_tokens (jti, expires_at) SELECT jti, "       \
    "expires_at FROM t ON CONFLICT (jti) DO NOTHING) "                      \
    "SELECT extract(epoch FROM expires_at)::bigint AS exp, jti FROM t"

#define CG_SQL_TIME(col)  "to_json(" col ")#>>'{}' AS " col

#endif
