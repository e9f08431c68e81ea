/*
 * Query parameters of admin GET routes: a strict parser that fills the
 * parameters a route accepts and rejects everything else with a 400.
 */

#include <stdio.h>
#include <string.h>

#include "admin.h"


static int cg_admin_query_decode(const char *src, size_t len, char *dst,
    size_t size);
static int cg_admin_query_fail(cg_http_req_t *req,
    const cg_request_info_t *info, const cg_admin_param_t *params, size_t n,
    const char *name, const char *problem);


int
cg_admin_query(cg_http_req_t *req, const cg_request_info_t *info,
    cg_admin_param_t *params, size_t n)
{
    const char  *p, *end, *eq;
    char         name[CG_ADMIN_PARAM_MAX];
    size_t       i, len;

    for (i = 0; i < n; i++) {
        params[i].present = 0;
        params[i].value[0] = '\0';
    }

    for (p = cg_http_query(req); *p != '\0'; p = *end ? end + 1 : end) {
        end = p + strcspn(p, "&");
        len = (size_t) (end - p);
        if (len == 0) {
            continue;
        }

        eq = memchr(p, '=', len);
        if (cg_admin_query_decode(p, eq ? (size_t) (eq - p) : len, name,
                                  sizeof(name)) != 0)
        {
            return cg_admin_query_fail(req, info, params, n, NULL,
                                       "a parameter name has a malformed "
                                       "percent escape, an escaped NUL (%00) "
                                       "or 256 bytes or more");
        }

        for (i = 0; i < n && strcmp(name, params[i].name) != 0; i++) {
            /* void */
        }

        if (i == n) {
            return cg_admin_query_fail(req, info, params, n, name,
                                       "is not a parameter of this endpoint");
        }
        if (params[i].present) {
            return cg_admin_query_fail(req, info, params, n, name,
                                       "appears more than once");
        }

        params[i].present = 1;

        if (eq != NULL
            && cg_admin_query_decode(eq + 1, (size_t) (end - eq - 1),
                                     params[i].value,
                                     sizeof(params[i].value)) != 0)
        {
            return cg_admin_query_fail(req, info, params, n, name,
                                       "has a malformed percent escape, an "
                                       "escaped NUL (%00) or 256 bytes or "
                                       "more");
        }
    }

    return 0;
}


/*
 * Percent-decodes len bytes of src into dst, "+" as a space. Returns 0, or
 * -1 for a malformed escape, an escaped NUL, or a result of size bytes or
 * more.
 */
static int
cg_admin_query_decode(const char *src, size_t len, char *dst, size_t size)
{
    static const char  hex[] = "0123456789abcdef0123456789ABCDEF";
    const char        *hi, *lo;
    size_t             i, n = 0;
    int                c;

    for (i = 0; i < len; i++) {
        c = (unsigned char) src[i];

        if (c == '%') {
            if (len - i < 3
                || (hi = memchr(hex, src[i + 1], sizeof(hex) - 1)) == NULL
                || (lo = memchr(hex, src[i + 2], sizeof(hex) - 1)) == NULL)
            {
                return -1;
            }
            c = (int) ((hi - hex) % 16 * 16 + (lo - hex) % 16);
            if (c == 0) {
                return -1;
            }
            i += 2;

        } else if (c == '+') {
            c = ' ';
        }

        if (n + 1 >= size) {
            return -1;
        }
        dst[n++] = (char) c;
    }

    dst[n] = '\0';
    return 0;
}


/* Sends a 400 naming the parameter (if any) and the ones the route takes. */
static int
cg_admin_query_fail(cg_http_req_t *req, const cg_request_info_t *info,
    const cg_admin_param_t *params, size_t n, const char *name,
    const char *problem)
{
    cg_error_t   err;
    const char  *separator;
    char         names[128] = "";
    size_t       i, len;

    for (i = 0; i < n; i++) {
        if (i == 0) {
            separator = "";
        } else if (i + 1 == n) {
            separator = " and ";
        } else {
            separator = ", ";
        }

        len = strlen(names);
        snprintf(names + len, sizeof(names) - len, "%s%s", separator,
                 params[i].name);
    }

    if (name != NULL) {
        cg_error_set(&err, 400, "invalid_request_error", "query parameter "
                     "\"%.64s\" %s; this endpoint takes %s", name, problem,
                     names);
        cg_error_param(&err, "%.63s", name);
    } else {
        cg_error_set(&err, 400, "invalid_request_error", "invalid query: %s; "
                     "this endpoint takes %s", problem, names);
    }

    cg_http_send_error(req, info->request_id, &err);
    return -1;
}
