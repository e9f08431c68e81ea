#ifndef CG_RATELIMIT_H
#define CG_RATELIMIT_H

#include <stddef.h>
#include <event2/event.h>

#include "conf.h"
#include "db.h"

/*
 * (Not named limits.h: the unit tests compile with -Iworker, where that
 * name would hide the C library's <limits.h>.)
 *
 * Rate limit rules: validation of scopes and rules, and the sync with the
 * nginx module. The rate_limits table is the source of truth. The sync
 * pushes the whole rule set and today's usage per counter to the module's
 * control location (at start, after every change and every
 * CHATGATE_LIMITS_SYNC_MS), and reads the module's counters back into
 * chat_usage_counters.
 */

/* maximum length of a canonical scope, NUL included: "ip:" and an IPv6 CIDR */
#define CG_LIMITS_SCOPE_LEN  64

/* a limit that a rule leaves unset (JSON null, SQL NULL, "-" to nginx) */
#define CG_LIMITS_NONE       (-1L)

typedef struct {
    char   scope[CG_LIMITS_SCOPE_LEN];     /* canonical form */
    long   per_minute;
    long   per_hour;
    long   burst;
    long   per_day;
} cg_limits_rule_t;

/*
 * Checks a rule scope and writes its canonical form into out. Accepted:
 * "global", "ip:*", "key:*", "ip:<address>", "ip:<address>/<prefix>" and
 * "key:<uuid>". A CIDR must have its host bits zero, a full-length prefix
 * is dropped and a key id is lowercased. Returns 0, or -1 with the reason
 * in err.
 */
int cg_limits_scope_parse(const char *scope, char out[CG_LIMITS_SCOPE_LEN],
    char *err, size_t err_size);

/*
 * Returns 1 if scope names one counter of the module, the form its usage
 * lines take: "global", "ip:<address or CIDR>", "key:<uuid>" or
 * "key:byok-<32 hex digits>".
 */
int cg_limits_counter_valid(const char *scope);

/*
 * Parses a rule from a JSON object of per_minute, per_hour, burst and
 * per_day (integers or null; a missing field is null) and an optional
 * "scope" that must equal rule->scope, which the caller sets first.
 * Returns 0, or -1 with the reason in err.
 */
int cg_limits_rule_parse_json(const char *body, size_t len,
    cg_limits_rule_t *rule, char *err, size_t err_size);

/* Checks the ranges and combinations of a rule's numbers, as above. */
int cg_limits_rule_check(const cg_limits_rule_t *rule, char *err,
    size_t err_size);


typedef struct cg_limits_s  cg_limits_t;

/*
 * Called once when a push that started after cg_limits_push() was
 * acknowledged by nginx (error NULL) or failed (error describes the cause).
 */
typedef void (*cg_limits_pushed_pt)(const char *error, void *arg);

/* Creates the sync; it borrows base, db and conf. NULL on lack of memory. */
cg_limits_t *cg_limits_new(struct event_base *base, cg_db_t *db,
    const cg_conf_t *conf);

/* Starts the first sync cycle; does nothing without CHATGATE_CONTROL_URL. */
void cg_limits_start(cg_limits_t *limits);

/*
 * Requests a push of the rule set as the database contains it now. done is
 * called from the loop, never inside this call. Returns 0, or -1 when no
 * control URL is set or memory ran out (done is then not called).
 */
int cg_limits_push(cg_limits_t *limits, cg_limits_pushed_pt done, void *arg);

/*
 * Sends "revoke <jti> <exp>" to the control location with PATCH at once,
 * without waiting for a sync cycle. Every full push carries the ids of
 * revoked_tokens as well. done is called from the loop, never inside this
 * call. Returns 0, or -1 when no control URL is set, jti is not 1 to 64
 * base64url characters or memory ran out (done is then not called).
 */
int cg_limits_revoke(cg_limits_t *limits, const char *jti, long long exp,
    cg_limits_pushed_pt done, void *arg);

/* Stops the sync; pending done callbacks get error "shutting down". */
void cg_limits_free(cg_limits_t *limits);

#endif
