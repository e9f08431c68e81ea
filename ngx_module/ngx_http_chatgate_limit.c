
/*
 * The edge rate limiter: rules and counters in one shared memory zone.
 *
 * Each counter belongs to one concrete scope ("global", "ip:192.0.2.1",
 * "ip:10.0.0.0/8", "key:<uuid>", "key:byok-<hash>") and keeps a GCRA
 * theoretical arrival time per rate window and a count for the current
 * UTC day.  Counters sit in a red-black tree keyed by the CRC32 of the
 * scope and in one of two LRU queues.  Key counters have their own queue
 * and a cap, so a flood of key ids evicts only other key counters.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_chatgate.h"


#define NGX_HTTP_CHATGATE_MIN_ZONE_SIZE   (32 * 1024)
#define NGX_HTTP_CHATGATE_EVICT_BATCH     8
#define NGX_HTTP_CHATGATE_EVICT_LOG_SEC   10
#define NGX_HTTP_CHATGATE_MAX_MATCHES     3

#define NGX_HTTP_CHATGATE_MINUTE_USEC     60000000ULL
#define NGX_HTTP_CHATGATE_HOUR_USEC       3600000000ULL
#define NGX_HTTP_CHATGATE_DAY_SEC         86400


typedef struct {
    u_char                        color;
    u_char                        is_key;
    u_char                        busy;
    u_char                        len;
    ngx_queue_t                   queue;

    /* GCRA theoretical arrival times, in microseconds since the epoch */
    uint64_t                      tat_minute;
    uint64_t                      tat_hour;
    uint64_t                      tat_new_keys;

    /* the cost of one request when the times above were set, so that a
     * new rule carries over the requests made, not the microseconds */
    uint64_t                      cost_minute;
    uint64_t                      cost_hour;

    ngx_uint_t                    day;          /* days since the epoch */
    ngx_uint_t                    day_count;
    ngx_uint_t                    denied;

    u_char                        scope[1];
} ngx_http_chatgate_node_t;


typedef struct {
    ngx_uint_t                    nrules;
    ngx_flag_t                    pushed;
    ngx_flag_t                    key_any;      /* has a "key:*" rule */
    ngx_http_chatgate_rule_t      rules[1];
} ngx_http_chatgate_rules_t;


typedef struct {
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;

    ngx_queue_t                   queue;        /* LRU of ip and global */
    ngx_queue_t                   key_queue;    /* LRU of key counters */
    ngx_uint_t                    key_counters;

    ngx_http_chatgate_rules_t    *rules;
    ngx_http_chatgate_revoked_sh_t  revoked;

    ngx_uint_t                    evicted;
    ngx_uint_t                    evicted_logged;
    time_t                        evict_log_time;
} ngx_http_chatgate_shctx_t;


typedef struct {
    ngx_http_chatgate_shctx_t    *sh;
    ngx_slab_pool_t              *shpool;
    ngx_http_chatgate_main_conf_t *cmcf;

    ngx_uint_t                    new_keys;     /* per minute per address */
    ngx_uint_t                    max_key_counters;
    ngx_str_t                     name;
} ngx_http_chatgate_zone_t;


/*
 * The outcome of one window of one rule, or of the new key budget.  The
 * scope may point at a rule in the zone, so in the limiter it is valid
 * only while the zone's mutex is held.
 */

typedef struct {
    ngx_str_t                     scope;
    ngx_uint_t                    limit;
    ngx_uint_t                    remaining;
    uint64_t                      reset;        /* microseconds */
    uint64_t                      retry;        /* microseconds, if denied */
    const char                   *window;
    unsigned                      denied:1;
} ngx_http_chatgate_window_t;


typedef struct {
    ngx_http_chatgate_rule_t     *rule;
    ngx_http_chatgate_node_t     *node;
    ngx_str_t                     scope;        /* the rule's or built in buf */
    uint32_t                      hash;         /* of scope */
    u_char                        buf[NGX_HTTP_CHATGATE_SCOPE_LEN];
    uint64_t                      tat_minute;
    uint64_t                      tat_hour;
    uint64_t                      cost_minute;
    uint64_t                      cost_hour;
    ngx_uint_t                    denied;
} ngx_http_chatgate_match_t;


static uint64_t ngx_http_chatgate_now(ngx_http_chatgate_main_conf_t *cmcf);
static ngx_uint_t ngx_http_chatgate_popcount(uint32_t bits);
static ngx_int_t ngx_http_chatgate_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_chatgate_set_rules(ngx_http_chatgate_zone_t *zone,
    ngx_http_chatgate_rule_t *rules, ngx_uint_t n, ngx_flag_t pushed);
static ngx_uint_t ngx_http_chatgate_rules_equal(ngx_http_chatgate_rules_t *set,
    ngx_http_chatgate_rule_t *rules, ngx_uint_t n);
static ngx_uint_t ngx_http_chatgate_match_rules(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_rules_t *rules,
    ngx_http_chatgate_match_t *matches);
static ngx_int_t ngx_http_chatgate_ip_matches(ngx_http_chatgate_rule_t *rule,
    struct sockaddr *sa);
static uint32_t ngx_http_chatgate_build_scope(u_char *buf, u_char *prefix,
    size_t prefix_len, ngx_str_t *value, ngx_str_t *scope);
static void ngx_http_chatgate_crc32_init(void);
static uint32_t ngx_http_chatgate_crc32(u_char *p, size_t len);
static ngx_int_t ngx_http_chatgate_find_counters(ngx_http_request_t *r,
    ngx_http_chatgate_zone_t *zone, ngx_http_chatgate_match_t *matches,
    ngx_uint_t n, uint64_t now, ngx_http_chatgate_window_t *denial,
    u_char *buf);
static ngx_int_t ngx_http_chatgate_charge_new_key(ngx_http_request_t *r,
    ngx_http_chatgate_zone_t *zone, uint64_t now,
    ngx_http_chatgate_window_t *denial, u_char *buf);
static void ngx_http_chatgate_check(ngx_http_chatgate_match_t *m,
    uint64_t now, ngx_http_chatgate_window_t *tightest,
    ngx_http_chatgate_window_t *denial);
static void ngx_http_chatgate_consider(ngx_http_chatgate_match_t *m,
    ngx_http_chatgate_window_t *w, ngx_http_chatgate_window_t *tightest,
    ngx_http_chatgate_window_t *denial);
static void ngx_http_chatgate_commit(ngx_http_chatgate_match_t *m,
    uint64_t now);
static void ngx_http_chatgate_gcra(uint64_t tat, uint64_t old_cost,
    uint64_t now, ngx_uint_t rate, uint64_t period, ngx_uint_t burst,
    ngx_http_chatgate_window_t *w, uint64_t *new_tat, uint64_t *cost);
static void ngx_http_chatgate_day_window(ngx_http_chatgate_node_t *node,
    ngx_uint_t per_day, uint64_t now, ngx_http_chatgate_window_t *w);
static ngx_http_chatgate_node_t *ngx_http_chatgate_lookup(
    ngx_http_chatgate_zone_t *zone, u_char *scope, size_t len,
    uint32_t hash);
static ngx_http_chatgate_node_t *ngx_http_chatgate_create(
    ngx_http_chatgate_zone_t *zone, u_char *scope, size_t len,
    uint32_t hash, ngx_uint_t is_key);
static void ngx_http_chatgate_touch(ngx_http_chatgate_zone_t *zone,
    ngx_http_chatgate_node_t *node);
static ngx_uint_t ngx_http_chatgate_evict(ngx_http_chatgate_zone_t *zone,
    ngx_queue_t *queue, ngx_uint_t n);
static ngx_uint_t ngx_http_chatgate_take_evictions(
    ngx_http_chatgate_zone_t *zone);
static void ngx_http_chatgate_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static void ngx_http_chatgate_set_result(ngx_http_chatgate_ctx_t *ctx,
    ngx_http_chatgate_window_t *w);
static ngx_int_t ngx_http_chatgate_deny(ngx_http_request_t *r,
    ngx_http_chatgate_loc_conf_t *lcf, ngx_http_chatgate_window_t *denial);
static ngx_int_t ngx_http_chatgate_zone_full(ngx_http_request_t *r,
    ngx_http_chatgate_zone_t *zone);
static u_char *ngx_http_chatgate_print_value(u_char *p, ngx_uint_t value);
static u_char *ngx_http_chatgate_print_uint(u_char *end, uint64_t n);


static ngx_str_t  ngx_http_chatgate_rate_limited =
    ngx_string("rate_limit_exceeded");

#if (NGX_HAVE_LITTLE_ENDIAN)

/*
 * Per-process tables, not configuration: ngx_crc32_table256[] for a byte
 * followed by 1, 2 and 3 zero bytes, set when a zone is configured.
 */
static uint32_t  ngx_http_chatgate_crc32_table[3][256];

#endif



static uint64_t
ngx_http_chatgate_now(ngx_http_chatgate_main_conf_t *cmcf)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return ((uint64_t) (tp->sec + cmcf->clock_offset) * 1000 + tp->msec)
           * 1000;
}


char *
ngx_http_chatgate_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ssize_t                    size;
    ngx_str_t                 *value, s;
    ngx_int_t                  n;
    ngx_uint_t                 i;
    ngx_shm_zone_t            *shm_zone;
    ngx_http_chatgate_zone_t  *zone;

    value = cf->args->elts;

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_chatgate_zone_t));
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    zone->cmcf = conf;
    zone->new_keys = 10;
    zone->name = value[1];

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (size < NGX_HTTP_CHATGATE_MIN_ZONE_SIZE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small: \"%V\", the minimum "
                           "is 32k", &value[1], &value[2]);
        return NGX_CONF_ERROR;
    }

    for (i = 3; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "new_keys=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            n = ngx_atoi(s.data, s.len);
            if (n <= 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid new_keys \"%V\", expected a "
                                   "positive number", &s);
                return NGX_CONF_ERROR;
            }

            zone->new_keys = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    /* about 256 bytes per counter: key counters may fill half the zone */

    zone->max_key_counters = size / 256 / 2;

    shm_zone = ngx_shared_memory_add(cf, &value[1], size,
                                     &ngx_http_chatgate_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_chatgate_init_zone;
    shm_zone->data = zone;

    ngx_http_chatgate_crc32_init();

    return NGX_CONF_OK;
}


char *
ngx_http_chatgate_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_chatgate_loc_conf_t  *lcf = conf;

    ngx_str_t  *value;

    if (lcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lcf->shm_zone = ngx_shared_memory_add(cf, &value[1], 0,
                                          &ngx_http_chatgate_module);
    if (lcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* chatgate_default_rule scope [per_minute=N] [per_hour=N] [burst=N]
 *     [per_day=N]; */

char *
ngx_http_chatgate_default_rule(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_chatgate_main_conf_t  *cmcf = conf;

    size_t                     len;
    u_char                     buf[NGX_HTTP_CHATGATE_ERR_LEN];
    ngx_str_t                 *value, values[4], err;
    ngx_uint_t                 i, k;
    ngx_http_chatgate_rule_t  *rule;

    static const char  *names[] = { "per_minute=", "per_hour=", "burst=",
                                    "per_day=" };

    value = cf->args->elts;

    for (k = 0; k < 4; k++) {
        ngx_str_set(&values[k], "-");
    }

    for (i = 2; i < cf->args->nelts; i++) {

        for (k = 0; k < 4; k++) {
            len = ngx_strlen(names[k]);

            if (value[i].len > len
                && ngx_strncmp(value[i].data, names[k], len) == 0)
            {
                values[k].data = value[i].data + len;
                values[k].len = value[i].len - len;
                break;
            }
        }

        if (k == 4) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    err.data = buf;

    rule = ngx_array_push(&cmcf->default_rules);
    if (rule == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_chatgate_parse_rule(&value[1], values, rule, &err)
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V", &err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Parses a scope and its four values (per_minute, per_hour, burst,
 * per_day; "-" for none) into a rule.  On error, writes a message into
 * err->data, a buffer of NGX_HTTP_CHATGATE_ERR_LEN bytes.
 */

ngx_int_t
ngx_http_chatgate_parse_rule(ngx_str_t *scope, ngx_str_t *values,
    ngx_http_chatgate_rule_t *rule, ngx_str_t *err)
{
    u_char     *p;
    ngx_int_t   rc, n;
    ngx_str_t   text;
    ngx_uint_t  i, *fields[4];

    ngx_memzero(rule, sizeof(ngx_http_chatgate_rule_t));

    if (scope->len == 6 && ngx_strncmp(scope->data, "global", 6) == 0) {
        rule->type = ngx_http_chatgate_scope_global;

    } else if (scope->len == 4 && ngx_strncmp(scope->data, "ip:*", 4) == 0) {
        rule->type = ngx_http_chatgate_scope_ip_any;

    } else if (scope->len == 5 && ngx_strncmp(scope->data, "key:*", 5) == 0)
    {
        rule->type = ngx_http_chatgate_scope_key_any;

    } else if (scope->len > 4 && ngx_strncmp(scope->data, "key:", 4) == 0) {
        text.data = scope->data + 4;
        text.len = scope->len - 4;

        if (ngx_http_chatgate_parse_uuid(&text, rule->key) != NGX_OK) {
            goto invalid_scope;
        }

        rule->type = ngx_http_chatgate_scope_key;

    } else if (scope->len > 3 && ngx_strncmp(scope->data, "ip:", 3) == 0) {
        text.data = scope->data + 3;
        text.len = scope->len - 3;

        rc = ngx_ptocidr(&text, &rule->cidr);
        if (rc == NGX_ERROR) {
            goto invalid_scope;
        }

#if (NGX_HAVE_INET6)
        /* an IPv4 client's address is AF_INET, so a rule inside
         * ::ffff:0:0/96 would never match.  The masked address keeps the
         * mapped prefix only when the rule has 96 bits or more.
         * NOTE: a listener with ipv6only=off sees IPv4 clients as mapped
         * AF_INET6 addresses, which IPv4 rules do not match */

        if (rule->cidr.family == AF_INET6
            && IN6_IS_ADDR_V4MAPPED(&rule->cidr.u.in6.addr))
        {
            err->len = ngx_snprintf(err->data, NGX_HTTP_CHATGATE_ERR_LEN,
                                    "invalid scope \"%*s\": an IPv4-mapped "
                                    "IPv6 address never matches, write the "
                                    "IPv4 address or CIDR instead",
                                    ngx_min(scope->len, 60), scope->data)
                       - err->data;
            return NGX_ERROR;
        }
#endif

        rule->type = ngx_http_chatgate_scope_ip;

    } else {
        goto invalid_scope;
    }

    fields[0] = &rule->per_minute;
    fields[1] = &rule->per_hour;
    fields[2] = &rule->burst;
    fields[3] = &rule->per_day;

    for (i = 0; i < 4; i++) {
        if (values[i].len == 1 && values[i].data[0] == '-') {
            *fields[i] = NGX_HTTP_CHATGATE_UNLIMITED;
            continue;
        }

        n = ngx_atoi(values[i].data, values[i].len);

        /* a day quota of 0 blocks the scope, but a rate of 0 has no GCRA cost */

        if (n == NGX_ERROR || (n == 0 && i != 3)) {
            err->len = ngx_snprintf(err->data, NGX_HTTP_CHATGATE_ERR_LEN,
                                    "invalid value \"%*s\" in scope \"%*s\","
                                    " expected a positive number or \"-\"",
                                    ngx_min(values[i].len, 20),
                                    values[i].data,
                                    ngx_min(scope->len, 50), scope->data)
                       - err->data;
            return NGX_ERROR;
        }

        *fields[i] = n;
    }

    /* a canonical scope, so "ip:2001:DB8::1" and "ip:2001:db8:0::1" share
     * one counter */

    p = rule->scope;

    switch (rule->type) {

    case ngx_http_chatgate_scope_key:
        p = ngx_cpymem(p, "key:", 4);
        p = ngx_cpymem(p, rule->key, NGX_HTTP_CHATGATE_UUID_LEN);
        break;

    case ngx_http_chatgate_scope_ip:
        p = ngx_cpymem(p, "ip:", 3);

        if (rule->cidr.family == AF_INET) {
            p += ngx_inet_ntop(AF_INET, &rule->cidr.u.in.addr, p,
                               NGX_INET_ADDRSTRLEN);
            rule->prefix = ngx_http_chatgate_popcount(rule->cidr.u.in.mask);
            if (rule->prefix < 32) {
                p = ngx_sprintf(p, "/%ui", rule->prefix);
            }

#if (NGX_HAVE_INET6)
        } else {
            p += ngx_inet_ntop(AF_INET6, &rule->cidr.u.in6.addr, p,
                               NGX_INET6_ADDRSTRLEN);
            rule->prefix = 0;
            for (i = 0; i < 16; i++) {
                rule->prefix += ngx_http_chatgate_popcount(
                                    rule->cidr.u.in6.mask.s6_addr[i]);
            }
            if (rule->prefix < 128) {
                p = ngx_sprintf(p, "/%ui", rule->prefix);
            }
#endif
        }

        break;

    default:
        p = ngx_cpymem(p, scope->data, scope->len);
    }

    rule->scope_len = p - rule->scope;
    rule->scope_hash = ngx_crc32_long(rule->scope, rule->scope_len);

    return NGX_OK;

invalid_scope:

    err->len = ngx_snprintf(err->data, NGX_HTTP_CHATGATE_ERR_LEN,
                            "invalid scope \"%*s\", expected \"global\", "
                            "\"ip:*\", \"ip:<address or CIDR>\", \"key:*\""
                            " or \"key:<uuid>\"",
                            ngx_min(scope->len, 50), scope->data)
               - err->data;

    return NGX_ERROR;
}


static ngx_uint_t
ngx_http_chatgate_popcount(uint32_t bits)
{
    ngx_uint_t  n;

    for (n = 0; bits; bits &= bits - 1) {
        n++;
    }

    return n;
}


static ngx_int_t
ngx_http_chatgate_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_chatgate_zone_t  *ozone = data;

    size_t                     len;
    ngx_int_t                  rc;
    ngx_str_t                  scope, values[4], err;
    ngx_http_chatgate_rule_t   seed;
    ngx_http_chatgate_zone_t  *zone;
    u_char                     buf[NGX_HTTP_CHATGATE_ERR_LEN];

    zone = shm_zone->data;

    if (ozone) {
        /* a reload: keep the counters and any rule set the worker pushed */
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;

    } else {
        zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

        if (shm_zone->shm.exists) {
            zone->sh = zone->shpool->data;
            return NGX_OK;
        }

        zone->sh = ngx_slab_alloc(zone->shpool,
                                  sizeof(ngx_http_chatgate_shctx_t));
        if (zone->sh == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(zone->sh, sizeof(ngx_http_chatgate_shctx_t));

        zone->shpool->data = zone->sh;

        ngx_rbtree_init(&zone->sh->rbtree, &zone->sh->sentinel,
                        ngx_http_chatgate_rbtree_insert_value);
        ngx_queue_init(&zone->sh->queue);
        ngx_queue_init(&zone->sh->key_queue);

        /* revoked token ids may take about a quarter of the zone */
        ngx_http_chatgate_revoke_init(&zone->sh->revoked,
                                      shm_zone->shm.size / 256 / 4);

        len = sizeof(" in chatgate zone \"\"") + shm_zone->shm.name.len;

        zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
        if (zone->shpool->log_ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(zone->shpool->log_ctx, " in chatgate zone \"%V\"%Z",
                    &shm_zone->shm.name);

        /* a full zone is normal: counters are evicted and that is logged */
        zone->shpool->log_nomem = 0;
    }

    if (zone->sh->rules && zone->sh->rules->pushed) {
        return NGX_OK;
    }

    if (zone->cmcf->default_rules.nelts) {
        ngx_shmtx_lock(&zone->shpool->mutex);
        rc = ngx_http_chatgate_set_rules(zone, zone->cmcf->default_rules.elts,
                                         zone->cmcf->default_rules.nelts, 0);
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return rc;
    }

    /* without chatgate_default_rule: global, 60 per minute, 5000 per day */

    ngx_str_set(&scope, "global");
    ngx_str_set(&values[0], "60");
    ngx_str_set(&values[1], "-");
    ngx_str_set(&values[2], "-");
    ngx_str_set(&values[3], "5000");
    err.data = buf;

    if (ngx_http_chatgate_parse_rule(&scope, values, &seed, &err) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);
    rc = ngx_http_chatgate_set_rules(zone, &seed, 1, 0);
    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


/* Replaces the zone's rule set.  The caller holds the zone's mutex. */

static ngx_int_t
ngx_http_chatgate_set_rules(ngx_http_chatgate_zone_t *zone,
    ngx_http_chatgate_rule_t *rules, ngx_uint_t n, ngx_flag_t pushed)
{
    size_t                      size;
    ngx_uint_t                  i;
    ngx_http_chatgate_rules_t  *set;

    size = offsetof(ngx_http_chatgate_rules_t, rules)
           + (n ? n : 1) * sizeof(ngx_http_chatgate_rule_t);

    for ( ;; ) {
        set = ngx_slab_alloc_locked(zone->shpool, size);
        if (set) {
            break;
        }

        if (ngx_http_chatgate_evict(zone, &zone->sh->queue,
                                    NGX_HTTP_CHATGATE_EVICT_BATCH)
            + ngx_http_chatgate_evict(zone, &zone->sh->key_queue,
                                      NGX_HTTP_CHATGATE_EVICT_BATCH)
            == 0)
        {
            return NGX_ERROR;
        }
    }

    ngx_memcpy(set->rules, rules, n * sizeof(ngx_http_chatgate_rule_t));
    set->nrules = n;
    set->pushed = pushed;
    set->key_any = 0;

    for (i = 0; i < n; i++) {
        if (rules[i].type == ngx_http_chatgate_scope_key_any) {
            set->key_any = 1;
        }
    }

    if (zone->sh->rules) {
        ngx_slab_free_locked(zone->shpool, zone->sh->rules);
    }

    zone->sh->rules = set;

    return NGX_OK;
}


/*
 * Tests whether a pushed rule set equals the one in force, rule by rule
 * and in order, so that the periodic push of an unchanged set can log
 * quietly.  The default rules of nginx.conf never equal a push.
 */

static ngx_uint_t
ngx_http_chatgate_rules_equal(ngx_http_chatgate_rules_t *set,
    ngx_http_chatgate_rule_t *rules, ngx_uint_t n)
{
    ngx_uint_t                 i;
    ngx_http_chatgate_rule_t  *old;

    if (set == NULL || !set->pushed || set->nrules != n) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        old = &set->rules[i];

        if (old->scope_len != rules[i].scope_len
            || ngx_memcmp(old->scope, rules[i].scope, old->scope_len) != 0
            || old->per_minute != rules[i].per_minute
            || old->per_hour != rules[i].per_hour
            || old->burst != rules[i].burst
            || old->per_day != rules[i].per_day)
        {
            return 0;
        }
    }

    return 1;
}


/*
 * Checks the request against every rule that matches it and counts it
 * when all of them admit it.  Returns NGX_DECLINED when the request may
 * pass, or what sending 429 (or 503 when no counter fits) returns.
 */

ngx_int_t
ngx_http_chatgate_limit(ngx_http_request_t *r, ngx_http_chatgate_ctx_t *ctx,
    ngx_http_chatgate_loc_conf_t *lcf)
{
    u_char                       buf[NGX_HTTP_CHATGATE_SCOPE_LEN];
    uint64_t                     now;
    ngx_int_t                    rc;
    ngx_uint_t                   i, n, evicted;
    ngx_http_chatgate_zone_t    *zone;
    ngx_http_chatgate_match_t    matches[NGX_HTTP_CHATGATE_MAX_MATCHES];
    ngx_http_chatgate_window_t   tightest, denial;

    if (lcf->shm_zone == NULL) {
        return NGX_DECLINED;
    }

    zone = lcf->shm_zone->data;
    now = ngx_http_chatgate_now(zone->cmcf);

    /* the fields read before they are written; match_rules() sets up
     * the matches it returns */
    tightest.scope.len = 0;
    denial.denied = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    /*
     * Without a key id, only a "key:*" rule can count the caller (a
     * "key:<uuid>" rule never matches "byok-<hash>"), so the provider key
     * is read and hashed only then, outside the mutex.  The rules read
     * after locking again are the ones the request is matched against,
     * whatever changed in between.
     */

    if (ctx->limit_key.len == 0
        && r->headers_in.authorization
        && zone->sh->rules
        && zone->sh->rules->key_any)
    {
        ngx_shmtx_unlock(&zone->shpool->mutex);

        if (ngx_http_chatgate_read_provider_key(r, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_shmtx_lock(&zone->shpool->mutex);
    }

    n = ngx_http_chatgate_match_rules(r, ctx, zone->sh->rules, matches);

    rc = ngx_http_chatgate_find_counters(r, zone, matches, n, now, &denial,
                                         buf);

    if (rc == NGX_OK) {
        for (i = 0; i < n; i++) {
            ngx_http_chatgate_check(&matches[i], now, &tightest, &denial);
        }

        for (i = 0; i < n; i++) {
            if (!denial.denied) {
                ngx_http_chatgate_commit(&matches[i], now);
            }

            matches[i].node->busy = 0;
        }
    }

    /* the scope may be a rule's string in the zone, so the context gets a
     * copy of it before unlocking */

    if (denial.denied) {
        ngx_http_chatgate_set_result(ctx, &denial);
        denial.scope.data = ctx->limit_scope;

    } else if (tightest.scope.len) {
        ngx_http_chatgate_set_result(ctx, &tightest);
    }

    evicted = ngx_http_chatgate_take_evictions(zone);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (evicted) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "chatgate zone \"%V\" is full, evicted %ui least "
                      "recently used counters", &zone->name, evicted);
    }

    if (rc == NGX_ERROR) {
        return ngx_http_chatgate_zone_full(r, zone);
    }

    if (denial.denied) {
        return ngx_http_chatgate_deny(r, lcf, &denial);
    }

    return NGX_DECLINED;
}


/*
 * Picks at most one rule of each kind: the global rule, the ip rule with
 * the longest prefix that contains the client address (else "ip:*"), and
 * the rule for the request's key (else "key:*").  The caller holds the
 * mutex because the rules live in the zone.
 */

static ngx_uint_t
ngx_http_chatgate_match_rules(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx, ngx_http_chatgate_rules_t *rules,
    ngx_http_chatgate_match_t *matches)
{
    ngx_uint_t                 i, n;
    ngx_http_chatgate_rule_t  *rule, *global, *ip, *ip_any, *key, *key_any;

    global = NULL;
    ip = NULL;
    ip_any = NULL;
    key = NULL;
    key_any = NULL;

    /* NOTE: a linear scan, meant for up to a few thousand rules */

    for (i = 0; rules && i < rules->nrules; i++) {
        rule = &rules->rules[i];

        switch (rule->type) {

        case ngx_http_chatgate_scope_global:
            global = rule;
            break;

        case ngx_http_chatgate_scope_ip_any:
            ip_any = rule;
            break;

        case ngx_http_chatgate_scope_ip:
            if ((ip == NULL || rule->prefix > ip->prefix)
                && ngx_http_chatgate_ip_matches(rule, r->connection->sockaddr)
                   == NGX_OK)
            {
                ip = rule;
            }
            break;

        case ngx_http_chatgate_scope_key_any:
            key_any = rule;
            break;

        case ngx_http_chatgate_scope_key:
            if (ctx->limit_key.len == NGX_HTTP_CHATGATE_UUID_LEN
                && ngx_memcmp(rule->key, ctx->limit_key.data,
                              NGX_HTTP_CHATGATE_UUID_LEN)
                   == 0)
            {
                key = rule;
            }
            break;
        }
    }

    /* global, ip:<CIDR> and key:<uuid> rules count in their own scope */

    n = 0;

    if (global) {
        matches[n].rule = global;
        matches[n].scope.data = global->scope;
        matches[n].scope.len = global->scope_len;
        matches[n].hash = global->scope_hash;
        n++;
    }

    if (ip) {
        matches[n].rule = ip;
        matches[n].scope.data = ip->scope;
        matches[n].scope.len = ip->scope_len;
        matches[n].hash = ip->scope_hash;
        n++;

    } else if (ip_any) {
        matches[n].rule = ip_any;
        matches[n].hash = ngx_http_chatgate_build_scope(matches[n].buf,
                              (u_char *) "ip:", 3, &r->connection->addr_text,
                              &matches[n].scope);
        n++;
    }

    if (ctx->limit_key.len && key) {
        matches[n].rule = key;
        matches[n].scope.data = key->scope;
        matches[n].scope.len = key->scope_len;
        matches[n].hash = key->scope_hash;
        n++;

    } else if (ctx->limit_key.len && key_any) {
        matches[n].rule = key_any;
        matches[n].hash = ngx_http_chatgate_build_scope(matches[n].buf,
                              (u_char *) "key:", 4, &ctx->limit_key,
                              &matches[n].scope);
        n++;
    }

    return n;
}


/* NOTE: an IPv4-mapped IPv6 client (::ffff:192.0.2.1 on a dual-stack
 * listen) matches only IPv6 rules */

static ngx_int_t
ngx_http_chatgate_ip_matches(ngx_http_chatgate_rule_t *rule,
    struct sockaddr *sa)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    ngx_uint_t            i;
    struct sockaddr_in6  *sin6;
#endif

    if (sa->sa_family != (sa_family_t) rule->cidr.family) {
        return NGX_DECLINED;
    }

    switch (sa->sa_family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;

        for (i = 0; i < 16; i++) {
            if ((sin6->sin6_addr.s6_addr[i]
                 & rule->cidr.u.in6.mask.s6_addr[i])
                != rule->cidr.u.in6.addr.s6_addr[i])
            {
                return NGX_DECLINED;
            }
        }

        return NGX_OK;
#endif

    case AF_INET:
        sin = (struct sockaddr_in *) sa;

        if ((sin->sin_addr.s_addr & rule->cidr.u.in.mask)
            != rule->cidr.u.in.addr)
        {
            return NGX_DECLINED;
        }

        return NGX_OK;

    default:
        return NGX_DECLINED;
    }
}


/*
 * Writes prefix and value, cut to NGX_HTTP_CHATGATE_SCOPE_LEN bytes, into
 * buf, points scope at them and returns their CRC-32.
 */

static uint32_t
ngx_http_chatgate_build_scope(u_char *buf, u_char *prefix, size_t prefix_len,
    ngx_str_t *value, ngx_str_t *scope)
{
    u_char  *p;
    size_t   len;

    len = ngx_min(value->len, NGX_HTTP_CHATGATE_SCOPE_LEN - prefix_len);

    p = ngx_cpymem(buf, prefix, prefix_len);
    p = ngx_cpymem(p, value->data, len);

    scope->data = buf;
    scope->len = p - buf;

    return ngx_http_chatgate_crc32(buf, scope->len);
}


static void
ngx_http_chatgate_crc32_init(void)
{
#if (NGX_HAVE_LITTLE_ENDIAN)
    uint32_t    crc;
    ngx_uint_t  i, k;

    for (i = 0; i < 256; i++) {
        crc = ngx_crc32_table256[i];

        for (k = 0; k < 3; k++) {
            crc = ngx_crc32_table256[crc & 0xff] ^ (crc >> 8);
            ngx_http_chatgate_crc32_table[k][i] = crc;
        }
    }
#endif
}


/*
 * Returns the CRC-32 that ngx_crc32_long() returns, for the scopes built
 * on every request.  On little-endian machines it takes four bytes per
 * step ("slicing-by-4"): about 70 instructions for "ip:127.0.0.1", where
 * ngx_crc32_long() took 100 (callgrind).
 */

static uint32_t
ngx_http_chatgate_crc32(u_char *p, size_t len)
{
    uint32_t  crc;
#if (NGX_HAVE_LITTLE_ENDIAN)
    uint32_t  word;
#endif

    crc = 0xffffffff;

#if (NGX_HAVE_LITTLE_ENDIAN)

    while (len >= 4) {
        ngx_memcpy(&word, p, 4);
        crc ^= word;

        crc = ngx_http_chatgate_crc32_table[2][crc & 0xff]
              ^ ngx_http_chatgate_crc32_table[1][(crc >> 8) & 0xff]
              ^ ngx_http_chatgate_crc32_table[0][(crc >> 16) & 0xff]
              ^ ngx_crc32_table256[crc >> 24];

        p += 4;
        len -= 4;
    }

#endif

    while (len--) {
        crc = ngx_crc32_table256[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }

    return crc ^ 0xffffffff;
}


/*
 * Finds or creates the counter of every match and marks it busy, so that
 * eviction leaves it alone until the caller has counted the request.  A
 * new key counter is charged to the client address, which may create
 * new_keys of them per minute: past that the request is denied, so one
 * client cannot flush other clients' keys.  Returns NGX_OK, NGX_DECLINED
 * when denied, or NGX_ERROR when the zone has no room even after
 * eviction.  After NGX_DECLINED or NGX_ERROR no counter stays busy.
 */

static ngx_int_t
ngx_http_chatgate_find_counters(ngx_http_request_t *r,
    ngx_http_chatgate_zone_t *zone, ngx_http_chatgate_match_t *matches,
    ngx_uint_t n, uint64_t now, ngx_http_chatgate_window_t *denial,
    u_char *buf)
{
    ngx_int_t                  rc;
    ngx_uint_t                 i, is_key;
    ngx_http_chatgate_node_t  *node;

    for (i = 0; i < n; i++) {
        is_key = (matches[i].rule->type == ngx_http_chatgate_scope_key
                  || matches[i].rule->type == ngx_http_chatgate_scope_key_any);

        node = ngx_http_chatgate_lookup(zone, matches[i].scope.data,
                                        matches[i].scope.len,
                                        matches[i].hash);

        if (node == NULL && is_key
            && ngx_http_chatgate_charge_new_key(r, zone, now, denial, buf)
               != NGX_OK)
        {
            rc = denial->denied ? NGX_DECLINED : NGX_ERROR;
            goto failed;
        }

        if (node == NULL) {
            node = ngx_http_chatgate_create(zone, matches[i].scope.data,
                                            matches[i].scope.len,
                                            matches[i].hash, is_key);
            if (node == NULL) {
                rc = NGX_ERROR;
                goto failed;
            }
        }

        ngx_http_chatgate_touch(zone, node);
        node->busy = 1;
        matches[i].node = node;
        matches[i].denied = 0;
    }

    return NGX_OK;

failed:

    while (i--) {
        matches[i].node->busy = 0;
    }

    return rc;
}


/* The address counter's scope is built in buf, which the denial points at. */

static ngx_int_t
ngx_http_chatgate_charge_new_key(ngx_http_request_t *r,
    ngx_http_chatgate_zone_t *zone, uint64_t now,
    ngx_http_chatgate_window_t *denial, u_char *buf)
{
    uint32_t                    hash;
    uint64_t                    tat, cost;
    ngx_http_chatgate_node_t   *node;
    ngx_http_chatgate_window_t  w;

    hash = ngx_http_chatgate_build_scope(buf, (u_char *) "ip:", 3,
                                         &r->connection->addr_text, &w.scope);

    node = ngx_http_chatgate_lookup(zone, w.scope.data, w.scope.len, hash);

    if (node == NULL) {
        node = ngx_http_chatgate_create(zone, w.scope.data, w.scope.len, hash,
                                        0);
        if (node == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_http_chatgate_touch(zone, node);

    ngx_http_chatgate_gcra(node->tat_new_keys, 0, now, zone->new_keys,
                           NGX_HTTP_CHATGATE_MINUTE_USEC,
                           NGX_HTTP_CHATGATE_UNLIMITED, &w, &tat, &cost);

    if (w.denied) {
        node->denied++;
        w.window = "new_keys";
        *denial = w;
        return NGX_DECLINED;
    }

    node->tat_new_keys = tat;

    return NGX_OK;
}


static void
ngx_http_chatgate_check(ngx_http_chatgate_match_t *m, uint64_t now,
    ngx_http_chatgate_window_t *tightest, ngx_http_chatgate_window_t *denial)
{
    ngx_http_chatgate_rule_t    *rule;
    ngx_http_chatgate_window_t   w;

    rule = m->rule;

    if (rule->per_minute != NGX_HTTP_CHATGATE_UNLIMITED) {
        ngx_http_chatgate_gcra(m->node->tat_minute, m->node->cost_minute,
                               now, rule->per_minute,
                               NGX_HTTP_CHATGATE_MINUTE_USEC, rule->burst,
                               &w, &m->tat_minute, &m->cost_minute);
        w.window = "per_minute";
        ngx_http_chatgate_consider(m, &w, tightest, denial);
    }

    if (rule->per_hour != NGX_HTTP_CHATGATE_UNLIMITED) {
        ngx_http_chatgate_gcra(m->node->tat_hour, m->node->cost_hour,
                               now, rule->per_hour,
                               NGX_HTTP_CHATGATE_HOUR_USEC, rule->burst,
                               &w, &m->tat_hour, &m->cost_hour);
        w.window = "per_hour";
        ngx_http_chatgate_consider(m, &w, tightest, denial);
    }

    if (rule->per_day != NGX_HTTP_CHATGATE_UNLIMITED) {
        ngx_http_chatgate_day_window(m->node, rule->per_day, now, &w);
        w.window = "per_day";
        ngx_http_chatgate_consider(m, &w, tightest, denial);
    }
}


/*
 * Keeps the denial with the longest wait, and among admitting windows the
 * one with the fewest requests left (then the latest reset), which is the
 * rule the RateLimit headers describe.
 */

static void
ngx_http_chatgate_consider(ngx_http_chatgate_match_t *m,
    ngx_http_chatgate_window_t *w, ngx_http_chatgate_window_t *tightest,
    ngx_http_chatgate_window_t *denial)
{
    w->scope = m->scope;

    if (w->denied) {
        if (!m->denied) {
            m->node->denied++;
            m->denied = 1;
        }

        if (!denial->denied || w->retry > denial->retry) {
            *denial = *w;
        }

        return;
    }

    if (tightest->scope.len == 0
        || w->remaining < tightest->remaining
        || (w->remaining == tightest->remaining && w->reset > tightest->reset))
    {
        *tightest = *w;
    }
}


static void
ngx_http_chatgate_commit(ngx_http_chatgate_match_t *m, uint64_t now)
{
    ngx_uint_t                 today;
    ngx_http_chatgate_node_t  *node;

    node = m->node;

    if (m->rule->per_minute != NGX_HTTP_CHATGATE_UNLIMITED) {
        node->tat_minute = m->tat_minute;
        node->cost_minute = m->cost_minute;
    }

    if (m->rule->per_hour != NGX_HTTP_CHATGATE_UNLIMITED) {
        node->tat_hour = m->tat_hour;
        node->cost_hour = m->cost_hour;
    }

    /* the day count is kept for every counter, for the control location */

    today = now / 1000000 / NGX_HTTP_CHATGATE_DAY_SEC;

    if (node->day != today) {
        node->day = today;
        node->day_count = 0;
    }

    node->day_count++;
}


/*
 * GCRA for "rate requests per period": one request costs period / rate
 * microseconds, and up to burst requests (the rate itself when burst is
 * unset) may arrive at once.  So any interval of t microseconds admits at
 * most burst + t * rate / period requests, whatever the window edges.
 */

static void
ngx_http_chatgate_gcra(uint64_t tat, uint64_t old_cost, uint64_t now,
    ngx_uint_t rate, uint64_t period, ngx_uint_t burst,
    ngx_http_chatgate_window_t *w, uint64_t *new_tat, uint64_t *new_cost)
{
    uint64_t  cost, capacity, base, next, debt;

    cost = period / rate;
    if (cost == 0) {
        cost = 1;
    }

    *new_cost = cost;

    /* after a rule change, convert the debt into the new cost */

    if (old_cost && old_cost != cost && tat > now) {
        debt = tat - now;
        tat = now + debt / old_cost * cost + debt % old_cost * cost / old_cost;
    }

    capacity = (burst == NGX_HTTP_CHATGATE_UNLIMITED) ? rate : burst;

    base = ngx_max(tat, now);
    next = base + cost;

    w->limit = capacity;

    if (next - now <= capacity * cost) {
        w->denied = 0;
        w->remaining = (capacity * cost - (next - now)) / cost;
        w->reset = next - now;
        w->retry = 0;
        *new_tat = next;
        return;
    }

    w->denied = 1;
    w->remaining = 0;
    w->reset = base - now;
    w->retry = next - now - capacity * cost;
    *new_tat = tat;
}


/* The day quota counts admitted requests of the current UTC day. */

static void
ngx_http_chatgate_day_window(ngx_http_chatgate_node_t *node,
    ngx_uint_t per_day, uint64_t now, ngx_http_chatgate_window_t *w)
{
    uint64_t    midnight;
    ngx_uint_t  today, count;

    today = now / 1000000 / NGX_HTTP_CHATGATE_DAY_SEC;
    count = (node->day == today) ? node->day_count : 0;
    midnight = (uint64_t) (today + 1) * NGX_HTTP_CHATGATE_DAY_SEC * 1000000;

    w->limit = per_day;
    w->reset = midnight - now;

    if (count >= per_day) {
        w->denied = 1;
        w->remaining = 0;
        w->retry = midnight - now;
        return;
    }

    w->denied = 0;
    w->remaining = per_day - count - 1;
    w->retry = 0;
}


static ngx_http_chatgate_node_t *
ngx_http_chatgate_lookup(ngx_http_chatgate_zone_t *zone, u_char *scope,
    size_t len, uint32_t hash)
{
    ngx_int_t                  rc;
    ngx_rbtree_node_t         *node, *sentinel;
    ngx_http_chatgate_node_t  *cn;

    node = zone->sh->rbtree.root;
    sentinel = zone->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        cn = (ngx_http_chatgate_node_t *) &node->color;

        /* the order of ngx_memn2cmp(), without a call for the usual match */

        rc = ngx_memcmp(scope, cn->scope, ngx_min(len, (size_t) cn->len));

        if (rc == 0) {
            if (len == cn->len) {
                return cn;
            }

            rc = (len < cn->len) ? -1 : 1;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * Allocates a counter, evicting the least recently used counters of its
 * own queue first when the zone is full.  Key counters are also capped at
 * max_key_counters.  Returns NULL only when nothing more can be evicted.
 */

static ngx_http_chatgate_node_t *
ngx_http_chatgate_create(ngx_http_chatgate_zone_t *zone, u_char *scope,
    size_t len, uint32_t hash, ngx_uint_t is_key)
{
    size_t                      size;
    ngx_queue_t                *own, *other;
    ngx_rbtree_node_t          *node;
    ngx_http_chatgate_node_t   *cn;
    ngx_http_chatgate_shctx_t  *sh;

    sh = zone->sh;
    own = is_key ? &sh->key_queue : &sh->queue;
    other = is_key ? &sh->queue : &sh->key_queue;

    if (is_key && sh->key_counters >= zone->max_key_counters) {
        ngx_http_chatgate_evict(zone, own, 1);
    }

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_chatgate_node_t, scope)
           + len;

    for ( ;; ) {
        node = ngx_slab_alloc_locked(zone->shpool, size);
        if (node) {
            break;
        }

        /* a key counter takes room from ip counters only when no key
         * counter is left to evict */

        if (ngx_http_chatgate_evict(zone, own, NGX_HTTP_CHATGATE_EVICT_BATCH)
            == 0
            && ngx_http_chatgate_evict(zone, other,
                                       NGX_HTTP_CHATGATE_EVICT_BATCH)
               == 0)
        {
            return NULL;
        }
    }

    node->key = hash;

    cn = (ngx_http_chatgate_node_t *) &node->color;
    ngx_memzero(cn, offsetof(ngx_http_chatgate_node_t, scope));

    cn->len = (u_char) len;
    cn->is_key = is_key ? 1 : 0;
    ngx_memcpy(cn->scope, scope, len);

    ngx_rbtree_insert(&sh->rbtree, node);
    ngx_queue_insert_head(own, &cn->queue);

    if (is_key) {
        sh->key_counters++;
    }

    return cn;
}


static void
ngx_http_chatgate_touch(ngx_http_chatgate_zone_t *zone,
    ngx_http_chatgate_node_t *node)
{
    ngx_queue_remove(&node->queue);
    ngx_queue_insert_head(node->is_key ? &zone->sh->key_queue
                                       : &zone->sh->queue,
                          &node->queue);
}


/* Frees up to n least recently used counters that no request holds. */

static ngx_uint_t
ngx_http_chatgate_evict(ngx_http_chatgate_zone_t *zone, ngx_queue_t *queue,
    ngx_uint_t n)
{
    ngx_uint_t                 evicted;
    ngx_queue_t               *q, *prev;
    ngx_rbtree_node_t         *node;
    ngx_http_chatgate_node_t  *cn;

    evicted = 0;

    for (q = ngx_queue_last(queue);
         q != ngx_queue_sentinel(queue) && evicted < n;
         q = prev)
    {
        prev = ngx_queue_prev(q);
        cn = ngx_queue_data(q, ngx_http_chatgate_node_t, queue);

        if (cn->busy) {
            continue;
        }

        ngx_queue_remove(q);

        if (cn->is_key) {
            zone->sh->key_counters--;
        }

        node = (ngx_rbtree_node_t *)
                   ((u_char *) cn - offsetof(ngx_rbtree_node_t, color));

        ngx_rbtree_delete(&zone->sh->rbtree, node);
        ngx_slab_free_locked(zone->shpool, node);

        evicted++;
    }

    zone->sh->evicted += evicted;

    return evicted;
}


/*
 * Returns how many counters were evicted since the last report, at most
 * once per NGX_HTTP_CHATGATE_EVICT_LOG_SEC so a full zone does not flood
 * the log.  The caller holds the mutex.
 */

static ngx_uint_t
ngx_http_chatgate_take_evictions(ngx_http_chatgate_zone_t *zone)
{
    ngx_uint_t                  n;
    ngx_http_chatgate_shctx_t  *sh;

    sh = zone->sh;

    if (sh->evicted == sh->evicted_logged
        || ngx_time() - sh->evict_log_time < NGX_HTTP_CHATGATE_EVICT_LOG_SEC)
    {
        return 0;
    }

    n = sh->evicted - sh->evicted_logged;
    sh->evicted_logged = sh->evicted;
    sh->evict_log_time = ngx_time();

    return n;
}


static void
ngx_http_chatgate_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t         **p;
    ngx_http_chatgate_node_t   *cn, *cnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            cn = (ngx_http_chatgate_node_t *) &node->color;
            cnt = (ngx_http_chatgate_node_t *) &temp->color;

            p = (ngx_memn2cmp(cn->scope, cnt->scope, cn->len, cnt->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static void
ngx_http_chatgate_set_result(ngx_http_chatgate_ctx_t *ctx,
    ngx_http_chatgate_window_t *w)
{
    ctx->limit_scope_len = ngx_min(w->scope.len, NGX_HTTP_CHATGATE_SCOPE_LEN);
    ngx_memcpy(ctx->limit_scope, w->scope.data, ctx->limit_scope_len);
    ctx->limit = w->limit;
    ctx->remaining = w->remaining;
    ctx->reset = ((w->denied ? w->retry : w->reset) + 999999) / 1000000;
    ctx->limited = 1;
}


static ngx_int_t
ngx_http_chatgate_deny(ngx_http_request_t *r,
    ngx_http_chatgate_loc_conf_t *lcf, ngx_http_chatgate_window_t *denial)
{
    u_char            *p;
    uint64_t           wait;
    ngx_str_t          scope, window, message;
    ngx_table_elt_t   *h;

    wait = (denial->retry + 999999) / 1000000;

    if (wait == 0) {
        wait = 1;
    }

    /*
     * The jitter spreads clients that were denied together. Retry-After
     * counts whole seconds, so the jitter is drawn in whole seconds. A
     * jitter under a second, added before the rounding, would often
     * vanish in it.
     */

    if (lcf->retry_jitter) {
        wait += ngx_random() % ((lcf->retry_jitter + 999) / 1000 + 1);
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN + 200 + denial->scope.len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%uL", wait) - p;
    p += h->value.len;

    scope = denial->scope;
    window.data = (u_char *) denial->window;
    window.len = ngx_strlen(denial->window);

    message.data = p;
    message.len = ngx_sprintf(p, "rate limit exceeded for scope \"%V\" "
                              "(%V, limit %ui), retry after %uL s",
                              &scope, &window, denial->limit, wait)
                  - p;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "chatgate limiting request by scope \"%V\", window \"%V\"",
                  &scope, &window);

    return ngx_http_chatgate_send_error(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                        &ngx_http_chatgate_rate_limited,
                                        &message, &scope, &window);
}


static ngx_int_t
ngx_http_chatgate_zone_full(ngx_http_request_t *r,
    ngx_http_chatgate_zone_t *zone)
{
    ngx_str_t  type, message;

    ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                  "chatgate zone \"%V\" has no room for a counter even "
                  "after eviction, increase its size", &zone->name);

    ngx_str_set(&type, "server_error");
    ngx_str_set(&message, "the rate limiter has no room for this client");

    return ngx_http_chatgate_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        &type, &message, NULL, NULL);
}


/*
 * Adds RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset.  Each
 * value is printed at the end of its own NGX_INT64_LEN bytes of one
 * allocation and used where it starts, so no digits are copied.
 */

ngx_int_t
ngx_http_chatgate_limit_headers(ngx_http_request_t *r,
    ngx_http_chatgate_ctx_t *ctx)
{
    u_char           *p;
    uint64_t          values[3];
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    static ngx_str_t  names[] = { ngx_string("RateLimit-Limit"),
                                  ngx_string("RateLimit-Remaining"),
                                  ngx_string("RateLimit-Reset") };

    values[0] = ctx->limit;
    values[1] = ctx->remaining;
    values[2] = (uint64_t) ctx->reset;

    p = ngx_pnalloc(r->pool, 3 * NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < 3; i++) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        p += NGX_INT64_LEN;

        h->hash = 1;
        h->key = names[i];
        h->value.data = ngx_http_chatgate_print_uint(p, values[i]);
        h->value.len = p - h->value.data;
    }

    return NGX_OK;
}


/*
 * Writes n in decimal so that it ends before end, two digits per
 * division, and returns where it starts, at most NGX_INT64_LEN bytes
 * before end.  It runs on every response, where ngx_sprintf() cost about
 * 280 instructions a number (callgrind).  The digits below 2^32 are
 * divided in 32 bits, which takes fewer instructions.
 */

static u_char *
ngx_http_chatgate_print_uint(u_char *end, uint64_t n)
{
    u_char    *d;
    uint32_t   m;

    static const u_char  pairs[] =
        "00010203040506070809" "10111213141516171819"
        "20212223242526272829" "30313233343536373839"
        "40414243444546474849" "50515253545556575859"
        "60616263646566676869" "70717273747576777879"
        "80818283848586878889" "90919293949596979899";

    d = end;

    while (n > 0xffffffff) {
        d -= 2;
        ngx_memcpy(d, &pairs[2 * (n % 100)], 2);
        n /= 100;
    }

    m = (uint32_t) n;

    while (m >= 100) {
        d -= 2;
        ngx_memcpy(d, &pairs[2 * (m % 100)], 2);
        m /= 100;
    }

    if (m >= 10) {
        d -= 2;
        ngx_memcpy(d, &pairs[2 * m], 2);

    } else {
        *--d = (u_char) ('0' + m);
    }

    return d;
}


/*
 * Checks a login attempt against the location's per-address login rate,
 * in a counter "login:<address>" of the zone.  Returns NGX_DECLINED when
 * the attempt may go on, or what sending 429 returns.
 */

ngx_int_t
ngx_http_chatgate_limit_login(ngx_http_request_t *r,
    ngx_http_chatgate_loc_conf_t *lcf)
{
    u_char                       buf[NGX_HTTP_CHATGATE_SCOPE_LEN];
    uint32_t                     hash;
    uint64_t                     now, tat, cost;
    ngx_http_chatgate_node_t    *node;
    ngx_http_chatgate_zone_t    *zone;
    ngx_http_chatgate_window_t   w;

    zone = lcf->shm_zone->data;
    now = ngx_http_chatgate_now(zone->cmcf);

    ngx_memzero(&w, sizeof(ngx_http_chatgate_window_t));

    hash = ngx_http_chatgate_build_scope(buf, (u_char *) "login:", 6,
                                         &r->connection->addr_text, &w.scope);

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_chatgate_lookup(zone, w.scope.data, w.scope.len, hash);

    if (node == NULL) {
        node = ngx_http_chatgate_create(zone, w.scope.data, w.scope.len, hash,
                                        0);
        if (node == NULL) {
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return ngx_http_chatgate_zone_full(r, zone);
        }
    }

    ngx_http_chatgate_touch(zone, node);

    ngx_http_chatgate_gcra(node->tat_minute, node->cost_minute, now,
                           lcf->login_rate, NGX_HTTP_CHATGATE_MINUTE_USEC,
                           lcf->login_burst, &w, &tat, &cost);

    if (w.denied) {
        node->denied++;

    } else {
        node->tat_minute = tat;
        node->cost_minute = cost;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (w.denied) {
        w.window = "login";
        return ngx_http_chatgate_deny(r, lcf, &w);
    }

    return NGX_DECLINED;
}


/* Returns the zone's revoked token ids and its slab pool. */

ngx_http_chatgate_revoked_sh_t *
ngx_http_chatgate_limit_revoked(ngx_shm_zone_t *shm_zone,
    ngx_slab_pool_t **shpool)
{
    ngx_http_chatgate_zone_t  *zone;

    zone = shm_zone->data;
    *shpool = zone->shpool;

    return &zone->sh->revoked;
}


/*
 * Replaces the rule set with a pushed one and raises each counter's day
 * count to the pushed usage of today, under the zone's mutex.  Usage of
 * another day is ignored.
 */

ngx_int_t
ngx_http_chatgate_limit_push(ngx_shm_zone_t *shm_zone, ngx_array_t *rules,
    ngx_array_t *usage, ngx_uint_t *changed, ngx_log_t *log)
{
    uint32_t                    hash;
    uint64_t                    now;
    ngx_int_t                   rc;
    ngx_uint_t                  i, today, evicted;
    ngx_http_chatgate_node_t   *node;
    ngx_http_chatgate_zone_t   *zone;
    ngx_http_chatgate_usage_t  *u;

    zone = shm_zone->data;
    now = ngx_http_chatgate_now(zone->cmcf);
    today = now / 1000000 / NGX_HTTP_CHATGATE_DAY_SEC;
    u = usage->elts;

    ngx_shmtx_lock(&zone->shpool->mutex);

    *changed = !ngx_http_chatgate_rules_equal(zone->sh->rules, rules->elts,
                                              rules->nelts);

    rc = ngx_http_chatgate_set_rules(zone, rules->elts, rules->nelts, 1);

    for (i = 0; rc == NGX_OK && i < usage->nelts; i++) {
        if (u[i].day != today) {
            continue;
        }

        hash = ngx_crc32_long(u[i].scope, u[i].scope_len);
        node = ngx_http_chatgate_lookup(zone, u[i].scope, u[i].scope_len,
                                        hash);

        if (node == NULL) {
            node = ngx_http_chatgate_create(zone, u[i].scope, u[i].scope_len,
                                            hash, u[i].is_key);
            if (node == NULL) {
                rc = NGX_ERROR;
                break;
            }
        }

        if (node->day != today) {
            node->day = today;
            node->day_count = 0;
        }

        /* the larger count wins: requests admitted here may not have
         * reached the worker's log yet */

        node->day_count = ngx_max(node->day_count, u[i].count);
    }

    evicted = ngx_http_chatgate_take_evictions(zone);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (evicted) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "chatgate zone \"%V\" is full, evicted %ui least "
                      "recently used counters", &zone->name, evicted);
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "chatgate zone \"%V\" has no room for the pushed rules "
                      "and usage, increase its size", &zone->name);
    }

    return rc;
}


/*
 * Writes the zone's rules, today's count of every counter and every
 * counter's denials in the control location's line format.
 */

ngx_buf_t *
ngx_http_chatgate_limit_report(ngx_http_request_t *r,
    ngx_shm_zone_t *shm_zone)
{
    size_t                      size;
    uint64_t                    now;
    ngx_tm_t                    tm;
    ngx_buf_t                  *b;
    ngx_uint_t                  i, n, today;
    ngx_queue_t                *queues[2], *q;
    ngx_http_chatgate_rule_t   *rule;
    ngx_http_chatgate_node_t   *cn;
    ngx_http_chatgate_zone_t   *zone;
    ngx_http_chatgate_rules_t  *rules;

    zone = shm_zone->data;
    now = ngx_http_chatgate_now(zone->cmcf);
    today = now / 1000000 / NGX_HTTP_CHATGATE_DAY_SEC;
    ngx_gmtime(today * NGX_HTTP_CHATGATE_DAY_SEC, &tm);

    queues[0] = &zone->sh->queue;
    queues[1] = &zone->sh->key_queue;

    ngx_shmtx_lock(&zone->shpool->mutex);

    rules = zone->sh->rules;
    n = 0;

    for (i = 0; i < 2; i++) {
        for (q = ngx_queue_head(queues[i]);
             q != ngx_queue_sentinel(queues[i]);
             q = ngx_queue_next(q))
        {
            n++;
        }
    }

    size = (rules ? rules->nrules : 0)
           * (sizeof("rule    \n") + NGX_HTTP_CHATGATE_SCOPE_LEN
              + 4 * NGX_ATOMIC_T_LEN)
           + n * (sizeof("usage YYYY-MM-DD  \ndenied  \n")
                  + 2 * NGX_HTTP_CHATGATE_SCOPE_LEN + 2 * NGX_ATOMIC_T_LEN)
           + sizeof("evicted \n") + NGX_ATOMIC_T_LEN;

    /* NOTE: the report is built under the mutex, so a zone with very many
     * counters holds other workers for the time it takes */

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NULL;
    }

    for (i = 0; rules && i < rules->nrules; i++) {
        rule = &rules->rules[i];
        b->last = ngx_sprintf(b->last, "rule %*s", rule->scope_len,
                              rule->scope);
        b->last = ngx_http_chatgate_print_value(b->last, rule->per_minute);
        b->last = ngx_http_chatgate_print_value(b->last, rule->per_hour);
        b->last = ngx_http_chatgate_print_value(b->last, rule->burst);
        b->last = ngx_http_chatgate_print_value(b->last, rule->per_day);
        *b->last++ = '\n';
    }

    for (i = 0; i < 2; i++) {
        for (q = ngx_queue_head(queues[i]);
             q != ngx_queue_sentinel(queues[i]);
             q = ngx_queue_next(q))
        {
            cn = ngx_queue_data(q, ngx_http_chatgate_node_t, queue);

            if (cn->day == today && cn->day_count) {
                b->last = ngx_sprintf(b->last,
                                      "usage %4d-%02d-%02d %*s %ui\n",
                                      tm.ngx_tm_year, tm.ngx_tm_mon,
                                      tm.ngx_tm_mday, (size_t) cn->len,
                                      cn->scope, cn->day_count);
            }

            if (cn->denied) {
                b->last = ngx_sprintf(b->last, "denied %*s %ui\n",
                                      (size_t) cn->len, cn->scope,
                                      cn->denied);
            }
        }
    }

    b->last = ngx_sprintf(b->last, "evicted %ui\n", zone->sh->evicted);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return b;
}


static u_char *
ngx_http_chatgate_print_value(u_char *p, ngx_uint_t value)
{
    if (value == NGX_HTTP_CHATGATE_UNLIMITED) {
        return ngx_cpymem(p, " -", 2);
    }

    return ngx_sprintf(p, " %ui", value);
}
