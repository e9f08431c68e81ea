
/*
 * The control location: the worker PUTs the whole rule set, today's
 * usage per scope and revoked token ids, PATCHes revoked token ids alone,
 * and GETs the counters back.  The line format is described in
 * docs/control.md.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_chatgate.h"


#define NGX_HTTP_CHATGATE_MAX_FIELDS  7


static ngx_int_t ngx_http_chatgate_control_handler(ngx_http_request_t *r);
static void ngx_http_chatgate_control_put(ngx_http_request_t *r);
static ngx_int_t ngx_http_chatgate_control_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_chatgate_control_parse(ngx_str_t *body,
    ngx_array_t *rules, ngx_array_t *usage, ngx_array_t *revoked,
    ngx_str_t *err);
static ngx_int_t ngx_http_chatgate_control_line(ngx_str_t *fields,
    ngx_uint_t n, ngx_array_t *rules, ngx_array_t *usage,
    ngx_array_t *revoked, ngx_str_t *err);
static ngx_int_t ngx_http_chatgate_control_usage(ngx_str_t *fields,
    ngx_http_chatgate_usage_t *u, ngx_str_t *err);
static ngx_int_t ngx_http_chatgate_parse_day(ngx_str_t *text,
    ngx_uint_t *day);
static ngx_int_t ngx_http_chatgate_control_send(ngx_http_request_t *r,
    ngx_buf_t *b);
static ngx_int_t ngx_http_chatgate_control_loopback(struct sockaddr *sa);


static ngx_str_t  ngx_http_chatgate_control_invalid =
    ngx_string("invalid_request_error");


char *
ngx_http_chatgate_control(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_chatgate_loc_conf_t  *lcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->control != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "on") == 0) {
        lcf->control = 1;

    } else if (ngx_strcmp(value[1].data, "off") == 0) {
        lcf->control = 0;
        return NGX_CONF_OK;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", expected \"on\" or \"off\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_chatgate_control_handler;

    return NGX_CONF_OK;
}


/*
 * Rejects a control location in a server that listens anywhere but on a
 * unix socket, 127.0.0.1 or [::1]: a rule push must not come from the
 * network.  Runs while locations merge, when every listen is known.
 */

char *
ngx_http_chatgate_control_check_listen(ngx_conf_t *cf)
{
    u_char                      text[NGX_SOCKADDR_STRLEN];
    size_t                      len;
    ngx_uint_t                  p, a, s, found;
    ngx_http_conf_port_t       *port;
    ngx_http_conf_addr_t       *addr;
    ngx_http_core_srv_conf_t   *cscf, **servers;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);

    if (cmcf->ports == NULL) {
        return NGX_CONF_OK;
    }

    port = cmcf->ports->elts;
    found = 0;

    for (p = 0; p < cmcf->ports->nelts; p++) {
        addr = port[p].addrs.elts;

        for (a = 0; a < port[p].addrs.nelts; a++) {
            servers = addr[a].servers.elts;

            for (s = 0; s < addr[a].servers.nelts; s++) {
                if (servers[s] != cscf) {
                    continue;
                }

                found = 1;

                if (ngx_http_chatgate_control_loopback(addr[a].opt.sockaddr)
                    == NGX_OK)
                {
                    continue;
                }

                len = ngx_sock_ntop(addr[a].opt.sockaddr, addr[a].opt.socklen,
                                    text, NGX_SOCKADDR_STRLEN, 1);

                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"chatgate_control\" is in a server that "
                                   "listens on \"%*s\": listen only on "
                                   "unix:, 127.0.0.1 or [::1]", len, text);
                return NGX_CONF_ERROR;
            }
        }
    }

    if (!found) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chatgate_control\" is in a server without a "
                           "listen on unix:, 127.0.0.1 or [::1]");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_chatgate_control_loopback(struct sockaddr *sa)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    switch (sa->sa_family) {

#if (NGX_HAVE_UNIX_DOMAIN)
    case AF_UNIX:
        return NGX_OK;
#endif

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ? NGX_OK : NGX_DECLINED;
#endif

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        return (sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
               ? NGX_OK : NGX_DECLINED;

    default:
        return NGX_DECLINED;
    }
}


static ngx_int_t
ngx_http_chatgate_control_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_buf_t                     *b;
    ngx_str_t                      message;
    ngx_http_chatgate_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_chatgate_module);

    if (r->method == NGX_HTTP_PUT || r->method == NGX_HTTP_PATCH) {
        rc = ngx_http_read_client_request_body(r,
                                               ngx_http_chatgate_control_put);
        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    if (r->method == NGX_HTTP_GET || r->method == NGX_HTTP_HEAD) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b = ngx_http_chatgate_limit_report(r, lcf->shm_zone);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_chatgate_control_send(r, b);
    }

    ngx_str_set(&message, "the control location accepts GET, PUT and PATCH");

    /* send_error finalizes the request, and the content phase does again */
    r->main->count++;

    ngx_http_chatgate_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                 &ngx_http_chatgate_control_invalid,
                                 &message, NULL, NULL);

    return NGX_DONE;
}


static void
ngx_http_chatgate_control_put(ngx_http_request_t *r)
{
    u_char                         buf[NGX_HTTP_CHATGATE_ERR_LEN];
    ngx_buf_t                     *b;
    ngx_str_t                      body, err;
    ngx_uint_t                     changed, level;
    ngx_array_t                    rules, usage, revoked;
    ngx_http_chatgate_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_chatgate_module);

    err.data = buf;
    err.len = 0;

    if (ngx_http_chatgate_control_body(r, &body) != NGX_OK) {
        ngx_str_set(&err, "the rule push is not in memory: set "
                          "client_body_buffer_size to client_max_body_size");
        goto invalid;
    }

    if (ngx_array_init(&rules, r->pool, 16, sizeof(ngx_http_chatgate_rule_t))
        != NGX_OK
        || ngx_array_init(&usage, r->pool, 16,
                          sizeof(ngx_http_chatgate_usage_t))
           != NGX_OK
        || ngx_array_init(&revoked, r->pool, 16,
                          sizeof(ngx_http_chatgate_revoke_t))
           != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_http_chatgate_control_parse(&body, &rules, &usage, &revoked,
                                        &err)
        != NGX_OK)
    {
        goto invalid;
    }

    /* a PATCH adds revoked token ids and leaves the rules alone */

    if (r->method == NGX_HTTP_PATCH && (rules.nelts || usage.nelts)) {
        ngx_str_set(&err, "a PATCH takes only \"revoke\" lines, "
                          "use PUT for rules and usage");
        goto invalid;
    }

    /* a PATCH is a logout or a revocation, which is rare */
    changed = 1;

    if (r->method == NGX_HTTP_PUT
        && ngx_http_chatgate_limit_push(lcf->shm_zone, &rules, &usage,
                                        &changed, r->connection->log)
           != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (revoked.nelts
        && ngx_http_chatgate_revoke_add(lcf->shm_zone, &revoked,
                                        r->connection->log)
           != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* the worker pushes every CHATGATE_LIMITS_SYNC_MS (1 s by default), so
     * a push that changes no rule logs at info only */

    level = changed ? NGX_LOG_NOTICE : NGX_LOG_INFO;

    ngx_log_error(level, r->connection->log, 0,
                  "chatgate rule push applied: %ui rules (%s), %ui usage "
                  "lines, %ui revoked token ids",
                  rules.nelts, changed ? "changed" : "unchanged",
                  usage.nelts, revoked.nelts);

    b = ngx_create_temp_buf(r->pool, 3 * NGX_ATOMIC_T_LEN + 40);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (r->method == NGX_HTTP_PUT) {
        b->last = ngx_sprintf(b->last, "ok %ui rules %ui usage",
                              rules.nelts, usage.nelts);
        b->last = revoked.nelts
                  ? ngx_sprintf(b->last, " %ui revoked\n", revoked.nelts)
                  : ngx_sprintf(b->last, "\n");

    } else {
        b->last = ngx_sprintf(b->last, "ok %ui revoked\n", revoked.nelts);
    }

    ngx_http_finalize_request(r, ngx_http_chatgate_control_send(r, b));
    return;

invalid:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "chatgate rule push rejected: %V", &err);

    ngx_http_chatgate_send_error(r, NGX_HTTP_BAD_REQUEST,
                                 &ngx_http_chatgate_control_invalid, &err,
                                 NULL, NULL);
}


/* Points body at the request body, which must be in one memory buffer
 * or in several that are copied into one. */

static ngx_int_t
ngx_http_chatgate_control_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ngx_chain_t  *cl;

    body->len = 0;
    body->data = NULL;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (cl->buf->in_file || cl->buf->temp_file) {
            return NGX_ERROR;
        }

        len += cl->buf->last - cl->buf->pos;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    return NGX_OK;
}


/*
 * Parses the whole push before anything changes, so one bad line rejects
 * the push.  Blank lines and lines starting with "#" are skipped.
 */

static ngx_int_t
ngx_http_chatgate_control_parse(ngx_str_t *body, ngx_array_t *rules,
    ngx_array_t *usage, ngx_array_t *revoked, ngx_str_t *err)
{
    u_char      *p, *end, *eol, *start;
    ngx_str_t    fields[NGX_HTTP_CHATGATE_MAX_FIELDS];
    ngx_uint_t   line, n;
    u_char       msg[NGX_HTTP_CHATGATE_ERR_LEN];
    ngx_str_t    cause;

    p = body->data;
    end = body->data + body->len;

    for (line = 1; p < end; line++, p = eol + 1) {
        eol = ngx_strlchr(p, end, '\n');
        if (eol == NULL) {
            eol = end;
        }

        n = 0;

        while (p < eol) {
            while (p < eol && (*p == ' ' || *p == '\t' || *p == '\r')) {
                p++;
            }

            if (p == eol) {
                break;
            }

            start = p;

            while (p < eol && *p != ' ' && *p != '\t' && *p != '\r') {
                p++;
            }

            if (n == NGX_HTTP_CHATGATE_MAX_FIELDS) {
                n++;
                break;
            }

            fields[n].data = start;
            fields[n].len = p - start;
            n++;
        }

        if (n == 0 || fields[0].data[0] == '#') {
            continue;
        }

        cause.data = msg;
        cause.len = 0;

        if (ngx_http_chatgate_control_line(fields, n, rules, usage, revoked,
                                           &cause)
            != NGX_OK)
        {
            err->len = ngx_snprintf(err->data, NGX_HTTP_CHATGATE_ERR_LEN,
                                    "line %ui: %V", line, &cause)
                       - err->data;
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_chatgate_control_line(ngx_str_t *fields, ngx_uint_t n,
    ngx_array_t *rules, ngx_array_t *usage, ngx_array_t *revoked,
    ngx_str_t *err)
{
    ngx_uint_t                   i;
    ngx_http_chatgate_rule_t    *rule, *r;
    ngx_http_chatgate_usage_t   *u;
    ngx_http_chatgate_revoke_t  *rv;

    if (fields[0].len == 6 && ngx_strncmp(fields[0].data, "revoke", 6) == 0)
    {
        if (n != 3) {
            ngx_str_set(err, "expected \"revoke <jti> <exp>\"");
            return NGX_ERROR;
        }

        rv = ngx_array_push(revoked);
        if (rv == NULL) {
            ngx_str_set(err, "out of memory");
            return NGX_ERROR;
        }

        return ngx_http_chatgate_revoke_parse(&fields[1], &fields[2], rv, err);
    }

    if (fields[0].len == 4 && ngx_strncmp(fields[0].data, "rule", 4) == 0) {
        if (n != 6) {
            ngx_str_set(err, "expected \"rule <scope> <per_minute> "
                             "<per_hour> <burst> <per_day>\"");
            return NGX_ERROR;
        }

        rule = ngx_array_push(rules);
        if (rule == NULL) {
            ngx_str_set(err, "out of memory");
            return NGX_ERROR;
        }

        if (ngx_http_chatgate_parse_rule(&fields[1], &fields[2], rule, err)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        /* NOTE: quadratic in the number of rules, meant for thousands */

        r = rules->elts;

        for (i = 0; i + 1 < rules->nelts; i++) {
            if (r[i].scope_len == rule->scope_len
                && ngx_memcmp(r[i].scope, rule->scope, rule->scope_len) == 0)
            {
                err->len = ngx_snprintf(err->data, NGX_HTTP_CHATGATE_ERR_LEN,
                                        "duplicate rule for scope \"%*s\"",
                                        rule->scope_len, rule->scope)
                           - err->data;
                return NGX_ERROR;
            }
        }

        return NGX_OK;
    }

    if (fields[0].len == 5 && ngx_strncmp(fields[0].data, "usage", 5) == 0) {
        if (n != 4) {
            ngx_str_set(err, "expected \"usage <YYYY-MM-DD> <scope> "
                             "<count>\"");
            return NGX_ERROR;
        }

        u = ngx_array_push(usage);
        if (u == NULL) {
            ngx_str_set(err, "out of memory");
            return NGX_ERROR;
        }

        return ngx_http_chatgate_control_usage(fields, u, err);
    }

    err->len = ngx_snprintf(err->data, NGX_HTTP_CHATGATE_ERR_LEN,
                            "unknown line type \"%*s\", expected \"rule\", "
                            "\"usage\" or \"revoke\"", ngx_min(fields[0].len, 32),
                            fields[0].data)
               - err->data;

    return NGX_ERROR;
}


/*
 * Parses "usage <YYYY-MM-DD> <scope> <count>".  The scope is a counter:
 * "global", "ip:<address or CIDR>", "key:<uuid>" or "key:byok-<32 hex>".
 */

static ngx_int_t
ngx_http_chatgate_control_usage(ngx_str_t *fields,
    ngx_http_chatgate_usage_t *u, ngx_str_t *err)
{
    u_char                    *p;
    ngx_int_t                  count;
    ngx_str_t                  values[4], *scope, hash;
    ngx_uint_t                 i;
    ngx_http_chatgate_rule_t   rule;

    scope = &fields[2];

    if (ngx_http_chatgate_parse_day(&fields[1], &u->day) != NGX_OK) {
        err->len = ngx_snprintf(err->data, NGX_HTTP_CHATGATE_ERR_LEN,
                                "invalid day \"%*s\", expected YYYY-MM-DD",
                                ngx_min(fields[1].len, 32), fields[1].data)
                   - err->data;
        return NGX_ERROR;
    }

    count = ngx_atoi(fields[3].data, fields[3].len);
    if (count == NGX_ERROR) {
        err->len = ngx_snprintf(err->data, NGX_HTTP_CHATGATE_ERR_LEN,
                                "invalid count \"%*s\", expected a number",
                                ngx_min(fields[3].len, 32), fields[3].data)
                   - err->data;
        return NGX_ERROR;
    }

    u->count = count;
    u->is_key = 0;

    if (scope->len == sizeof("key:byok-") - 1 + 32
        && ngx_strncmp(scope->data, "key:byok-", sizeof("key:byok-") - 1)
           == 0)
    {
        hash.data = scope->data + sizeof("key:byok-") - 1;
        hash.len = 32;

        for (i = 0; i < hash.len; i++) {
            if (!((hash.data[i] >= '0' && hash.data[i] <= '9')
                  || (hash.data[i] >= 'a' && hash.data[i] <= 'f')))
            {
                goto invalid;
            }
        }

        ngx_memcpy(u->scope, scope->data, scope->len);
        u->scope_len = scope->len;
        u->is_key = 1;

        return NGX_OK;
    }

    for (i = 0; i < 4; i++) {
        ngx_str_set(&values[i], "-");
    }

    if (ngx_http_chatgate_parse_rule(scope, values, &rule, err) != NGX_OK) {
        return NGX_ERROR;
    }

    if (rule.type == ngx_http_chatgate_scope_ip_any
        || rule.type == ngx_http_chatgate_scope_key_any)
    {
        goto invalid;
    }

    p = ngx_cpymem(u->scope, rule.scope, rule.scope_len);
    u->scope_len = p - u->scope;
    u->is_key = (rule.type == ngx_http_chatgate_scope_key);

    return NGX_OK;

invalid:

    err->len = ngx_snprintf(err->data, NGX_HTTP_CHATGATE_ERR_LEN,
                            "invalid usage scope \"%*s\", expected one "
                            "counter such as \"ip:192.0.2.1\"",
                            ngx_min(scope->len, 50), scope->data)
               - err->data;

    return NGX_ERROR;
}


/* Converts YYYY-MM-DD to days since 1970-01-01 (proleptic Gregorian). */

static ngx_int_t
ngx_http_chatgate_parse_day(ngx_str_t *text, ngx_uint_t *day)
{
    ngx_int_t  y, m, d, era, yoe, doy, doe;

    static const ngx_int_t  mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30,
                                        31, 30, 31 };

    if (text->len != 10 || text->data[4] != '-' || text->data[7] != '-') {
        return NGX_ERROR;
    }

    y = ngx_atoi(text->data, 4);
    m = ngx_atoi(text->data + 5, 2);
    d = ngx_atoi(text->data + 8, 2);

    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) {
        return NGX_ERROR;
    }

    if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
    {
        return NGX_ERROR;
    }

    y -= (m <= 2);
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    *day = era * 146097 + doe - 719468;

    return NGX_OK;
}


static ngx_int_t
ngx_http_chatgate_control_send(ngx_http_request_t *r, ngx_buf_t *b)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "text/plain");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    if (b->last == b->pos) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
