/*
 * GET /admin/api/tokens: one page of client tokens, oldest first in
 * (created_at, jti) order, optionally only those in one state.
 *
 * Paging is by keyset. The cursor "after" is the unpadded base64url of
 * "<created_at in microseconds since the epoch>.<jti>" of the last row of
 * the previous page, and the next page starts right after that position,
 * so rows that are added or revoked meanwhile never shift a page. The body
 * stays a JSON array; the next page's address travels in the Link header
 * (rel="next") and its cursor in X-Next-Cursor, both absent on the last
 * page.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "keys.h"
#include "log.h"
#include "vault.h"

#define CG_TOKENS_LIMIT_DEFAULT  100
#define CG_TOKENS_LIMIT_MAX      1000
#define CG_TOKENS_JTI_MAX        64       /* as POST /tokens/{jti}/revoke takes */
#define CG_TOKENS_US_DIGITS_MAX  18
#define CG_TOKENS_US_MAX         253402300799999999LL   /* 9999-12-31T23:59:59.999999Z */
#define CG_TOKENS_CURSOR_RAW_MAX (CG_TOKENS_US_DIGITS_MAX + 1 + CG_TOKENS_JTI_MAX)
#define CG_TOKENS_CURSOR_MAX     112      /* base64url length of the above */

#define CG_TOKENS_SELECT                                                     \
    "SELECT jti, key_id, array_to_json(models) AS models, "                  \
    CG_SQL_TIME("created_at") ", "                                           \
    "extract(epoch FROM expires_at)::bigint AS expires_at, "                 \
    CG_SQL_TIME("revoked_at") ", "                                           \
    "(extract(epoch FROM created_at) * 1000000)::bigint AS _created_us "     \
    "FROM client_tokens"

/*
 * The row comparison matches the ORDER BY and the index of
 * sql/009_client_tokens_created_at.sql. The timestamp is rebuilt from whole
 * seconds plus microseconds, because to_timestamp() takes a float of
 * seconds, which is exact to the microsecond only until about the year 2242.
 */
#define CG_TOKENS_AFTER                                                      \
    " AND (created_at, jti) > (to_timestamp($2::bigint / 1000000) "          \
    "+ ($2::bigint % 1000000) * interval '1 microsecond', $3)"

/* A page request waiting for its rows. */
typedef struct {
    cg_admin_async_t   a;              /* first, so free(a) frees the page */
    long               limit;
    const char        *state;          /* a name of cg_tokens_states */
} cg_tokens_page_t;

/*
 * Each token is in exactly one state: revoked wins over expired, so a
 * revoked token stays "revoked" after its expiry.
 */
static const struct {
    const char  *name;
    const char  *where;
} cg_tokens_states[] = {
    { "all",     "true" },
    { "active",  "revoked_at IS NULL AND expires_at > now()" },
    { "revoked", "revoked_at IS NOT NULL" },
    { "expired", "revoked_at IS NULL AND expires_at <= now()" },
};

static int cg_tokens_limit_parse(const cg_admin_param_t *p, long *limit);
static int cg_tokens_state_parse(const cg_admin_param_t *p, size_t *state);
static int cg_tokens_cursor_parse(const char *text, char *us, char *jti);
static void cg_tokens_cursor_make(const char *us, const char *jti, char *out);
static void cg_tokens_listed(PGresult *res, const char *error, void *arg);
static void cg_tokens_next_headers(cg_tokens_page_t *page, PGresult *res);


void
cg_tokens_list(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_match_t *match)
{
    cg_admin_param_t   params[] = {
        { .name = "limit" }, { .name = "after" }, { .name = "state" }
    };
    cg_tokens_page_t  *page;
    cg_error_t         err;
    const char        *values[3], *bad = NULL;
    char               sql[1024], limit_text[24], reasons[400] = "";
    char               us[CG_TOKENS_US_DIGITS_MAX + 1];
    char               jti[CG_TOKENS_JTI_MAX + 1];
    size_t             state = 0;
    long               limit = CG_TOKENS_LIMIT_DEFAULT;

    (void) match;

    if (cg_admin_query(req, info, params, 3) != 0) {
        return;
    }

    if (cg_tokens_limit_parse(&params[0], &limit) != 0) {
        bad = "limit";
        snprintf(reasons, sizeof(reasons), "limit: expected an integer from "
                 "1 to %d, got \"%.20s\"; ", CG_TOKENS_LIMIT_MAX,
                 params[0].value);
    }
    if (params[1].present
        && cg_tokens_cursor_parse(params[1].value, us, jti) != 0)
    {
        bad = bad ? bad : "after";
        strcat(reasons, "after: invalid cursor, expected the value of "
               "X-Next-Cursor (or the after of the Link header) of the "
               "previous page; ");
    }
    if (cg_tokens_state_parse(&params[2], &state) != 0) {
        bad = bad ? bad : "state";
        snprintf(reasons + strlen(reasons), sizeof(reasons) - strlen(reasons),
                 "state: expected active, revoked, expired or all, got "
                 "\"%.20s\"; ", params[2].value);
    }

    if (bad != NULL) {
        reasons[strlen(reasons) - 2] = '\0';
        cg_error_set(&err, 400, "invalid_request_error", "%s", reasons);
        err.param = bad;
        cg_http_send_error(req, info->request_id, &err);
        return;
    }

    page = calloc(1, sizeof(*page));
    if (page == NULL) {
        cg_error_set(&err, 500, "server_error", "out of memory");
        cg_http_send_error(req, info->request_id, &err);
        return;
    }

    page->limit = limit;
    page->state = cg_tokens_states[state].name;

    /* The query reads one row past the page: if it exists, so does a next page. */
    snprintf(limit_text, sizeof(limit_text), "%ld", limit + 1);
    values[0] = limit_text;
    values[1] = us;
    values[2] = jti;

    /* The SQL text has constant fragments only. Every value is a parameter. */
    snprintf(sql, sizeof(sql), CG_TOKENS_SELECT " WHERE %s%s ORDER BY "
             "created_at, jti LIMIT $1", cg_tokens_states[state].where,
             params[1].present ? CG_TOKENS_AFTER : "");

    cg_admin_async_begin(&page->a, srv, req, info);

    if (cg_db_query(srv->db, sql, params[1].present ? 3 : 1, values,
                    cg_tokens_listed, page) != 0)
    {
        cg_error_set(&err, 503, "server_error", "the database queue is "
                     "full, retry later");
        cg_admin_async_error(&page->a, &err);
        free(page);
    }
}


/* Reads limit: absent is the default, else 1 to CG_TOKENS_LIMIT_MAX in decimal digits. */
static int
cg_tokens_limit_parse(const cg_admin_param_t *p, long *limit)
{
    size_t  len;

    if (!p->present) {
        return 0;
    }

    len = strlen(p->value);
    if (len == 0 || len > 9 || strspn(p->value, "0123456789") != len) {
        return -1;
    }

    *limit = strtol(p->value, NULL, 10);

    return (*limit >= 1 && *limit <= CG_TOKENS_LIMIT_MAX) ? 0 : -1;
}


static int
cg_tokens_state_parse(const cg_admin_param_t *p, size_t *state)
{
    size_t  i;

    if (!p->present) {
        return 0;
    }

    for (i = 0; i < sizeof(cg_tokens_states) / sizeof(cg_tokens_states[0]);
         i++)
    {
        if (strcmp(p->value, cg_tokens_states[i].name) == 0) {
            *state = i;
            return 0;
        }
    }

    return -1;
}


/*
 * Decodes a cursor into us (decimal microseconds, at most
 * CG_TOKENS_US_DIGITS_MAX digits, no leading zero) and jti (1 to
 * CG_TOKENS_JTI_MAX printable ASCII characters without spaces). Returns 0,
 * or -1 for anything else.
 */
static int
cg_tokens_cursor_parse(const char *text, char *us, char *jti)
{
    unsigned char  raw[CG_TOKENS_CURSOR_MAX];
    size_t         len, digits, i;
    long           n;

    len = strlen(text);
    if (len == 0 || len > CG_TOKENS_CURSOR_MAX) {
        return -1;
    }

    n = cg_base64_decode(raw, text, len, CG_BASE64_URL_NOPAD);
    if (n < 3) {
        return -1;
    }

    for (digits = 0; digits < (size_t) n && raw[digits] >= '0'
         && raw[digits] <= '9'; digits++)
    {
        /* void */
    }

    if (digits == 0 || digits > CG_TOKENS_US_DIGITS_MAX
        || (raw[0] == '0' && digits > 1) || digits + 1 >= (size_t) n
        || raw[digits] != '.' || (size_t) n - digits - 1 > CG_TOKENS_JTI_MAX)
    {
        return -1;
    }

    memcpy(us, raw, digits);
    us[digits] = '\0';
    if (strtoll(us, NULL, 10) > CG_TOKENS_US_MAX) {
        return -1;
    }

    for (i = digits + 1; i < (size_t) n; i++) {
        if (raw[i] <= 0x20 || raw[i] >= 0x7f) {
            return -1;
        }
        jti[i - digits - 1] = (char) raw[i];
    }
    jti[i - digits - 1] = '\0';

    return 0;
}


/*
 * Writes the cursor of a row into out (CG_TOKENS_CURSOR_MAX + 1 bytes).
 * NOTE: the API issues 22-character token ids. A jti written into the table
 * by hand that is longer than CG_TOKENS_JTI_MAX or contains a space gets a
 * cursor that the next request rejects, or one cut short that repeats rows.
 */
static void
cg_tokens_cursor_make(const char *us, const char *jti, char *out)
{
    char  raw[CG_TOKENS_CURSOR_RAW_MAX + 1];
    int   n;

    n = snprintf(raw, sizeof(raw), "%s.%s", us, jti);
    if (n < 0 || (size_t) n >= sizeof(raw)) {
        n = sizeof(raw) - 1;
    }

    cg_base64_encode(out, (const unsigned char *) raw, (size_t) n,
                     CG_BASE64_URL_NOPAD);
}


static void
cg_tokens_listed(PGresult *res, const char *error, void *arg)
{
    cg_tokens_page_t  *page = arg;
    cg_error_t         err;
    char              *json;

    if (error != NULL) {
        cg_log_error(page->a.info.request_id, "listing client tokens failed: "
                     "%s", error);
        cg_error_set(&err, 503, "server_error", "the database is not "
                     "available, retry later");
        cg_admin_async_error(&page->a, &err);
        free(page);
        return;
    }

    json = cg_admin_rows_json_first(res, (int) page->limit);
    if (json == NULL) {
        cg_error_set(&err, 500, "server_error", "out of memory");
        cg_admin_async_error(&page->a, &err);
        free(page);
        return;
    }

    if (PQntuples(res) > page->limit) {
        cg_tokens_next_headers(page, res);
    }

    cg_admin_async_json(&page->a, 200, json);
    free(json);
    free(page);
}


/*
 * Adds Link (a reference relative to the request's URL, so it stays valid
 * behind a path rewrite) and X-Next-Cursor for the page after the last row
 * shown.
 */
static void
cg_tokens_next_headers(cg_tokens_page_t *page, PGresult *res)
{
    char  cursor[CG_TOKENS_CURSOR_MAX + 1], link[CG_TOKENS_CURSOR_MAX + 80];
    int   row = (int) page->limit - 1;

    /* After cg_http_free() the request is gone with its connection. */
    if (page->a.req == NULL || page->a.srv->http == NULL) {
        return;
    }

    cg_tokens_cursor_make(PQgetvalue(res, row, PQfnumber(res, "_created_us")),
                          PQgetvalue(res, row, PQfnumber(res, "jti")),
                          cursor);

    snprintf(link, sizeof(link), "<?limit=%ld&state=%s&after=%s>; "
             "rel=\"next\"", page->limit, page->state, cursor);

    cg_http_add_header(page->a.req, "Link", link);
    cg_http_add_header(page->a.req, "X-Next-Cursor", cursor);
}
