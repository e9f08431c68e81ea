/*
 * The limits area of the admin API:
 *
 *   GET    /admin/api/limits           rules and today's usage per counter
 *   PUT    /admin/api/limits/{scope}   create or replace one rule
 *   DELETE /admin/api/limits/{scope}   remove one rule
 *
 * A change is written to rate_limits, then the answer waits until nginx
 * acknowledged a push that carries it. When the push fails the change
 * stays stored, the answer says so in "pushed" and "warning", and the sync
 * retries on its own.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "json.h"
#include "ratelimit.h"
#include "log.h"

/* a rule body is a handful of numbers */
#define CG_ADMIN_LIMITS_BODY_MAX  4096

/* One PUT or DELETE, from its database write until the answer. */
typedef struct {
    cg_server_t             *srv;
    cg_http_req_t   *req;
    char                     request_id[48];
    char                     subject[128];
    cg_limits_rule_t         rule;       /* scope only, for a DELETE */
    int                      is_delete;
    int                      created;
} cg_admin_limits_op_t;

static void cg_admin_limits_list(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);
static void cg_admin_limits_list_done(PGresult *res, const char *error,
    void *arg);
static void cg_admin_limits_put(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match);
static void cg_admin_limits_delete(cg_server_t *srv,
    cg_http_req_t *req, const cg_request_info_t *info,
    const cg_admin_match_t *match);
static cg_admin_limits_op_t *cg_admin_limits_op_new(cg_server_t *srv,
    cg_http_req_t *req, const cg_request_info_t *info,
    const cg_admin_match_t *match);
static void cg_admin_limits_written(PGresult *res, const char *error,
    void *arg);
static void cg_admin_limits_pushed(const char *error, void *arg);
static void cg_admin_limits_answer(cg_admin_limits_op_t *op,
    const char *push_error);
static void cg_admin_limits_gen_rule(yajl_gen g, const cg_limits_rule_t *rule);
static long cg_admin_limits_value(PGresult *res, int row, int col);
static void cg_admin_limits_fail(cg_http_req_t *req,
    const char *request_id, int status, const char *type, const char *message);
static void cg_admin_limits_number_text(long value, char *buf, size_t size,
    const char **out);


const cg_admin_route_t  cg_admin_limits_routes[] = {
    { CG_HTTP_GET, "/limits", CG_ROLE_VIEWER, cg_admin_limits_list },
    { CG_HTTP_PUT, "/limits/{}", CG_ROLE_OPERATOR, cg_admin_limits_put },
    { CG_HTTP_DELETE, "/limits/{}", CG_ROLE_OPERATOR,
      cg_admin_limits_delete },
    { 0, NULL, CG_ROLE_ADMIN, NULL }
};


/* The list request; arg of its query. */
typedef struct {
    cg_http_req_t   *req;
    char                     request_id[48];
    char                     day[11];
} cg_admin_limits_list_t;


static void
cg_admin_limits_list(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    static const char  *sql =
        "SELECT 'rule', scope, per_minute, per_hour, burst, per_day, "
        "       to_char(updated_at AT TIME ZONE 'UTC', "
        "               'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
        "  FROM rate_limits "
        "UNION ALL "
        "SELECT 'usage', scope, requests, denied, NULL, NULL, NULL "
        "  FROM chat_usage_counters WHERE day = $1::date "
        "ORDER BY 1, 2";

    cg_admin_limits_list_t  *list;
    const char              *values[1];
    time_t                   now;
    struct tm                tm;

    (void) match;

    list = calloc(1, sizeof(*list));
    if (list == NULL) {
        cg_admin_limits_fail(req, info->request_id, 500, "server_error",
                             "out of memory");
        return;
    }

    list->req = req;
    snprintf(list->request_id, sizeof(list->request_id), "%s",
             info->request_id);

    now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(list->day, sizeof(list->day), "%Y-%m-%d", &tm);
    values[0] = list->day;

    if (cg_db_query(srv->db, sql, 1, values, cg_admin_limits_list_done, list)
        != 0)
    {
        cg_log_error(info->request_id, "listing rate limits failed: the "
                     "database queue is full");
        cg_admin_limits_fail(req, info->request_id, 503, "server_error",
                             "the database is busy, try again");
        free(list);
    }
}


static void
cg_admin_limits_list_done(PGresult *res, const char *error, void *arg)
{
    cg_admin_limits_list_t  *list = arg;
    cg_limits_rule_t         rule;
    yajl_gen                 g;
    char                    *body;
    size_t                   len;
    int                      row, in_usage = 0;

    if (error != NULL) {
        cg_log_error(list->request_id, "listing rate limits failed: %s",
                     error);
        cg_admin_limits_fail(list->req, list->request_id, 503, "server_error",
                             "reading the rate limits failed, try again");
        free(list);
        return;
    }

    g = cg_json_gen_new();
    yajl_gen_map_open(g);
    cg_json_gen_str(g, "rules");
    yajl_gen_array_open(g);

    for (row = 0; row < PQntuples(res); row++) {
        if (!in_usage && strcmp(PQgetvalue(res, row, 0), "usage") == 0) {
            yajl_gen_array_close(g);
            cg_json_gen_str(g, "usage");
            yajl_gen_map_open(g);
            cg_json_gen_str(g, "day");
            cg_json_gen_str(g, list->day);
            cg_json_gen_str(g, "counters");
            yajl_gen_array_open(g);
            in_usage = 1;
        }

        yajl_gen_map_open(g);

        if (in_usage) {
            cg_json_gen_str(g, "scope");
            cg_json_gen_str(g, PQgetvalue(res, row, 1));
            cg_json_gen_str(g, "requests");
            cg_json_gen_count(g, cg_admin_limits_value(res, row, 2));
            cg_json_gen_str(g, "denied");
            cg_json_gen_count(g, cg_admin_limits_value(res, row, 3));
        } else {
            snprintf(rule.scope, sizeof(rule.scope), "%s",
                     PQgetvalue(res, row, 1));
            rule.per_minute = cg_admin_limits_value(res, row, 2);
            rule.per_hour = cg_admin_limits_value(res, row, 3);
            rule.burst = cg_admin_limits_value(res, row, 4);
            rule.per_day = cg_admin_limits_value(res, row, 5);
            cg_admin_limits_gen_rule(g, &rule);
            cg_json_gen_str(g, "updated_at");
            cg_json_gen_str(g, PQgetvalue(res, row, 6));
        }

        yajl_gen_map_close(g);
    }

    if (!in_usage) {
        yajl_gen_array_close(g);
        cg_json_gen_str(g, "usage");
        yajl_gen_map_open(g);
        cg_json_gen_str(g, "day");
        cg_json_gen_str(g, list->day);
        cg_json_gen_str(g, "counters");
        yajl_gen_array_open(g);
    }

    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);

    body = cg_json_gen_finish(g, &len);
    if (body == NULL) {
        cg_admin_limits_fail(list->req, list->request_id, 500, "server_error",
                             "out of memory");
    } else {
        cg_http_send_json(list->req, list->request_id, 200, body,
                          (ssize_t) len);
    }

    free(body);
    free(list);
}


static void
cg_admin_limits_put(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    static const char  *sql =
        "INSERT INTO rate_limits (scope, per_minute, per_hour, burst, per_day) "
        "VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (scope) DO UPDATE "
        "   SET per_minute = EXCLUDED.per_minute, "
        "       per_hour = EXCLUDED.per_hour, burst = EXCLUDED.burst, "
        "       per_day = EXCLUDED.per_day, updated_at = now() "
        "RETURNING (xmax = 0)";

    cg_admin_limits_op_t  *op;
    const char            *body, *values[5];
    char                   err[256], numbers[4][24];
    size_t                 len;

    op = cg_admin_limits_op_new(srv, req, info, match);
    if (op == NULL) {
        return;
    }

    body = cg_admin_body(req, info, CG_ADMIN_LIMITS_BODY_MAX, &len);
    if (body == NULL) {
        free(op);
        return;
    }

    if (cg_limits_rule_parse_json(body, len, &op->rule, err, sizeof(err))
        != 0)
    {
        cg_log_info(info->request_id, "rate limit \"%s\" not set: %s",
                    op->rule.scope, err);
        cg_admin_limits_fail(req, info->request_id, 400,
                             "invalid_request_error", err);
        free(op);
        return;
    }

    /* the module counts burst as the requests allowed at once, so burst 0
     * (nothing beyond the steady rate) is one request at a time */
    if (op->rule.burst == 0) {
        op->rule.burst = 1;
    }

    values[0] = op->rule.scope;
    cg_admin_limits_number_text(op->rule.per_minute, numbers[0], 24,
                                &values[1]);
    cg_admin_limits_number_text(op->rule.per_hour, numbers[1], 24, &values[2]);
    cg_admin_limits_number_text(op->rule.burst, numbers[2], 24, &values[3]);
    cg_admin_limits_number_text(op->rule.per_day, numbers[3], 24, &values[4]);

    if (cg_db_query(srv->db, sql, 5, values, cg_admin_limits_written, op)
        != 0)
    {
        cg_log_error(info->request_id, "storing rate limit \"%s\" failed: "
                     "the database queue is full", op->rule.scope);
        cg_admin_limits_fail(req, info->request_id, 503, "server_error",
                             "the database is busy, try again");
        free(op);
    }
}


static void
cg_admin_limits_delete(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    static const char  *sql =
        "DELETE FROM rate_limits WHERE scope = $1 RETURNING scope";

    cg_admin_limits_op_t  *op;
    const char            *values[1];

    op = cg_admin_limits_op_new(srv, req, info, match);
    if (op == NULL) {
        return;
    }

    op->is_delete = 1;
    values[0] = op->rule.scope;

    if (cg_db_query(srv->db, sql, 1, values, cg_admin_limits_written, op)
        != 0)
    {
        cg_log_error(info->request_id, "deleting rate limit \"%s\" failed: "
                     "the database queue is full", op->rule.scope);
        cg_admin_limits_fail(req, info->request_id, 503, "server_error",
                             "the database is busy, try again");
        free(op);
    }
}


/*
 * Creates the state of a PUT or DELETE with the path's scope in canonical
 * form. Returns NULL after sending 400 or 500.
 */
static cg_admin_limits_op_t *
cg_admin_limits_op_new(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    cg_admin_limits_op_t  *op;
    char                   err[256];

    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        cg_admin_limits_fail(req, info->request_id, 500, "server_error",
                             "out of memory");
        return NULL;
    }

    op->srv = srv;
    op->req = req;
    snprintf(op->request_id, sizeof(op->request_id), "%s", info->request_id);
    snprintf(op->subject, sizeof(op->subject), "%s", match->subject);

    if (cg_limits_scope_parse(match->param[0], op->rule.scope, err,
                              sizeof(err)) != 0)
    {
        cg_log_info(info->request_id, "rate limit request rejected: %s", err);
        cg_admin_limits_fail(req, info->request_id, 400,
                             "invalid_request_error", err);
        free(op);
        return NULL;
    }

    return op;
}


static void
cg_admin_limits_written(PGresult *res, const char *error, void *arg)
{
    cg_admin_limits_op_t  *op = arg;
    const char            *action;

    if (error != NULL) {
        cg_log_error(op->request_id, "%s rate limit \"%s\" failed: %s",
                     op->is_delete ? "deleting" : "storing", op->rule.scope,
                     error);
        cg_admin_limits_fail(op->req, op->request_id, 503, "server_error",
                             "writing the rule to the database failed, "
                             "try again");
        free(op);
        return;
    }

    if (op->is_delete && PQntuples(res) == 0) {
        cg_admin_limits_fail(op->req, op->request_id, 404,
                             "invalid_request_error",
                             "no rate limit rule for this scope");
        free(op);
        return;
    }

    op->created = !op->is_delete && PQntuples(res) == 1
                  && strcmp(PQgetvalue(res, 0, 0), "t") == 0;

    action = "updated";
    if (op->is_delete) {
        action = "deleted";
    } else if (op->created) {
        action = "created";
    }

    cg_log_info(op->request_id, "rate limit \"%s\" %s by \"%s\"",
                op->rule.scope, action, op->subject);

    if (op->srv->limits == NULL
        || cg_limits_push(op->srv->limits, cg_admin_limits_pushed, op) != 0)
    {
        cg_admin_limits_answer(op, "no CHATGATE_CONTROL_URL is set, so "
                               "nothing is pushed to nginx");
        free(op);
    }
}


static void
cg_admin_limits_pushed(const char *error, void *arg)
{
    cg_admin_limits_op_t  *op = arg;

    if (error != NULL) {
        cg_log_error(op->request_id, "rate limit \"%s\" is stored but not "
                     "yet in effect at nginx: %s", op->rule.scope, error);
    }

    cg_admin_limits_answer(op, error);
    free(op);
}


/* Answers a stored change: 201 for a new rule, else 200. */
static void
cg_admin_limits_answer(cg_admin_limits_op_t *op, const char *push_error)
{
    yajl_gen  g;
    char     *body, warning[400];
    size_t    len;

    g = cg_json_gen_new();
    yajl_gen_map_open(g);

    if (op->is_delete) {
        cg_json_gen_str(g, "deleted");
        cg_json_gen_str(g, op->rule.scope);
    } else {
        cg_json_gen_str(g, "rule");
        yajl_gen_map_open(g);
        cg_admin_limits_gen_rule(g, &op->rule);
        yajl_gen_map_close(g);
        cg_json_gen_str(g, "created");
        yajl_gen_bool(g, op->created);
    }

    cg_json_gen_str(g, "pushed");
    yajl_gen_bool(g, push_error == NULL);

    if (push_error != NULL) {
        snprintf(warning, sizeof(warning), "the change is stored but not yet "
                 "in effect at nginx (%s); the worker keeps retrying",
                 push_error);
        cg_json_gen_str(g, "warning");
        cg_json_gen_str(g, warning);
    }

    yajl_gen_map_close(g);

    body = cg_json_gen_finish(g, &len);
    if (body == NULL) {
        cg_admin_limits_fail(op->req, op->request_id, 500, "server_error",
                             "out of memory");
        return;
    }

    cg_http_send_json(op->req, op->request_id, op->created ? 201 : 200, body,
                      (ssize_t) len);
    free(body);
}


/* Writes the members of one rule; CG_LIMITS_NONE becomes null. */
static void
cg_admin_limits_gen_rule(yajl_gen g, const cg_limits_rule_t *rule)
{
    cg_json_gen_str(g, "scope");
    cg_json_gen_str(g, rule->scope);
    cg_json_gen_str(g, "per_minute");
    cg_json_gen_count(g, rule->per_minute);
    cg_json_gen_str(g, "per_hour");
    cg_json_gen_count(g, rule->per_hour);
    cg_json_gen_str(g, "burst");
    cg_json_gen_count(g, rule->burst);
    cg_json_gen_str(g, "per_day");
    cg_json_gen_count(g, rule->per_day);
}


/* Returns the integer at row, col, or CG_LIMITS_NONE for NULL. */
static long
cg_admin_limits_value(PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) {
        return CG_LIMITS_NONE;
    }

    return strtol(PQgetvalue(res, row, col), NULL, 10);
}


/* Writes value as a query parameter; NULL for CG_LIMITS_NONE. */
static void
cg_admin_limits_number_text(long value, char *buf, size_t size,
    const char **out)
{
    if (value == CG_LIMITS_NONE) {
        *out = NULL;
        return;
    }

    snprintf(buf, size, "%ld", value);
    *out = buf;
}


static void
cg_admin_limits_fail(cg_http_req_t *req, const char *request_id,
    int status, const char *type, const char *message)
{
    cg_error_t  err;

    cg_error_set(&err, status, type, "%s", message);
    cg_http_send_error(req, request_id, &err);
}
