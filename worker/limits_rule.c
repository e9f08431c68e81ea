/*
 * Rate limit rules: scope syntax, the JSON form the admin API accepts and
 * the ranges of their numbers.
 */

#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "ratelimit.h"
#include "vault.h"


/* a field of the JSON form, and the range the admin API accepts for it */
typedef struct {
    const char  *name;
    size_t       offset;
    long         min;
    long         max;
} cg_limits_field_t;

static const cg_limits_field_t  cg_limits_fields[] = {
    { "per_minute", offsetof(cg_limits_rule_t, per_minute), 1, 1000000 },
    { "per_hour", offsetof(cg_limits_rule_t, per_hour), 1, 100000000 },
    { "burst", offsetof(cg_limits_rule_t, burst), 0, 1000000 },
    { "per_day", offsetof(cg_limits_rule_t, per_day), 1, 1000000000 },
};

#define CG_LIMITS_NFIELDS  (sizeof(cg_limits_fields) / sizeof(cg_limits_fields[0]))

static int cg_limits_ip_parse(const char *text, char *out, size_t out_size,
    char *err, size_t err_size);
static int cg_limits_prefix_parse(const char *text, int max);
static int cg_limits_host_bits_zero(const unsigned char *addr, int bytes,
    int prefix);
static int cg_limits_field_parse(const cg_limits_field_t *field, yajl_val v,
    cg_limits_rule_t *rule, char *err, size_t err_size);


int
cg_limits_scope_parse(const char *scope, char out[CG_LIMITS_SCOPE_LEN],
    char *err, size_t err_size)
{
    char    key[CG_LIMITS_SCOPE_LEN];
    size_t  i, len;

    len = strlen(scope);

    if (strcmp(scope, "global") == 0 || strcmp(scope, "ip:*") == 0
        || strcmp(scope, "key:*") == 0)
    {
        memcpy(out, scope, len + 1);
        return 0;
    }

    if (strncmp(scope, "ip:", 3) == 0) {
        memcpy(out, "ip:", 3);
        return cg_limits_ip_parse(scope + 3, out + 3, CG_LIMITS_SCOPE_LEN - 3,
                                  err, err_size);
    }

    if (strncmp(scope, "key:", 4) == 0 && len - 4 == CG_UUID_LEN) {
        for (i = 0; i <= CG_UUID_LEN; i++) {
            key[i] = (char) tolower((unsigned char) scope[4 + i]);
        }

        if (cg_uuid_valid(key)) {
            memcpy(out, "key:", 4);
            memcpy(out + 4, key, CG_UUID_LEN + 1);
            return 0;
        }

        snprintf(err, err_size, "invalid key id in scope \"%.60s\": expected "
                 "a UUID such as key:0b9a6e1c-3f0e-4a5b-9c1d-2e3f4a5b6c7d",
                 scope);
        return -1;
    }

    snprintf(err, err_size, "invalid scope \"%.60s\": expected global, ip:*, "
             "key:*, ip:<address>, ip:<address>/<prefix> or key:<uuid>",
             scope);
    return -1;
}


/* The first 96 bits of an IPv4-mapped IPv6 address, ::ffff:0:0/96. */
static const unsigned char  cg_limits_v4mapped_prefix[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};


/* Parses "<IPv4 or IPv6 address>[/<prefix>]" into its canonical text. */
static int
cg_limits_ip_parse(const char *text, char *out, size_t out_size, char *err,
    size_t err_size)
{
    unsigned char  addr[16];
    char           host[INET6_ADDRSTRLEN];
    const char    *slash;
    size_t         len;
    int            family, bits, prefix;

    slash = strchr(text, '/');
    len = slash ? (size_t) (slash - text) : strlen(text);

    if (len == 0 || len >= sizeof(host)) {
        goto invalid;
    }

    memcpy(host, text, len);
    host[len] = '\0';

    if (inet_pton(AF_INET, host, addr) == 1) {
        family = AF_INET;
        bits = 32;
    } else if (inet_pton(AF_INET6, host, addr) == 1) {
        family = AF_INET6;
        bits = 128;
    } else {
        goto invalid;
    }

    prefix = slash ? cg_limits_prefix_parse(slash + 1, bits) : bits;
    if (prefix < 0) {
        snprintf(err, err_size, "invalid prefix length in scope \"ip:%.60s\":"
                 " expected a number from 0 to %d", text, bits);
        return -1;
    }

    if (!cg_limits_host_bits_zero(addr, bits / 8, prefix)) {
        snprintf(err, err_size, "invalid CIDR in scope \"ip:%.60s\": the "
                 "address has bits set after the first %d", text, prefix);
        return -1;
    }

    /* nginx sees IPv4 clients as IPv4, so a rule inside ::ffff:0:0/96
     * would never match */
    if (family == AF_INET6 && prefix >= 96
        && memcmp(addr, cg_limits_v4mapped_prefix, 12) == 0)
    {
        snprintf(err, err_size, "invalid scope \"ip:%.60s\": an IPv4-mapped "
                 "IPv6 address never matches, write the IPv4 address or "
                 "CIDR instead", text);
        return -1;
    }

    inet_ntop(family, addr, host, sizeof(host));

    if (prefix == bits) {
        snprintf(out, out_size, "%s", host);
    } else {
        snprintf(out, out_size, "%s/%d", host, prefix);
    }

    return 0;

invalid:

    snprintf(err, err_size, "invalid address in scope \"ip:%.60s\": expected "
             "an IPv4 or IPv6 address, optionally with /<prefix>", text);
    return -1;
}


/* Returns the prefix length in text (1 to 3 digits, at most max), or -1. */
static int
cg_limits_prefix_parse(const char *text, int max)
{
    int  n = 0;
    int  digits = 0;

    for ( ; *text != '\0'; text++) {
        if (!isdigit((unsigned char) *text) || ++digits > 3) {
            return -1;
        }
        n = n * 10 + (*text - '0');
    }

    return (digits > 0 && n <= max) ? n : -1;
}


static int
cg_limits_host_bits_zero(const unsigned char *addr, int bytes, int prefix)
{
    int  i, keep;

    for (i = 0; i < bytes; i++) {
        keep = prefix - i * 8;

        if (keep >= 8) {
            continue;
        }

        if (keep <= 0 ? addr[i] != 0 : (addr[i] & (0xff >> keep)) != 0) {
            return 0;
        }
    }

    return 1;
}


int
cg_limits_counter_valid(const char *scope)
{
    char    canonical[CG_LIMITS_SCOPE_LEN], err[160];
    size_t  i;

    if (strncmp(scope, "key:byok-", 9) == 0) {
        if (strlen(scope) != 9 + 32) {
            return 0;
        }

        for (i = 9; i < 9 + 32; i++) {
            if (!isdigit((unsigned char) scope[i])
                && !(scope[i] >= 'a' && scope[i] <= 'f'))
            {
                return 0;
            }
        }

        return 1;
    }

    if (strcmp(scope, "ip:*") == 0 || strcmp(scope, "key:*") == 0) {
        return 0;
    }

    return cg_limits_scope_parse(scope, canonical, err, sizeof(err)) == 0;
}


int
cg_limits_rule_parse_json(const char *body, size_t len, cg_limits_rule_t *rule,
    char *err, size_t err_size)
{
    yajl_val     root, v;
    const char  *name, *scope;
    size_t       i, f;
    char         canonical[CG_LIMITS_SCOPE_LEN], cause[200];
    int          rc = -1;

    rule->per_minute = rule->per_hour = CG_LIMITS_NONE;
    rule->burst = rule->per_day = CG_LIMITS_NONE;

    root = cg_json_parse_request(body, len,
                                 CG_JSON_NO_NUL | CG_JSON_NO_DUPLICATES,
                                 cause, sizeof(cause));
    if (root == NULL) {
        snprintf(err, err_size, "the body is not valid JSON: %s", cause);
        return -1;
    }

    if (!YAJL_IS_OBJECT(root)) {
        snprintf(err, err_size, "the body must be a JSON object such as "
                 "{\"per_minute\": 60, \"per_hour\": null, \"burst\": 10, "
                 "\"per_day\": 5000}");
        goto done;
    }

    for (i = 0; i < root->u.object.len; i++) {
        name = root->u.object.keys[i];
        v = root->u.object.values[i];

        if (strcmp(name, "scope") == 0) {
            scope = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;

            if (scope == NULL
                || cg_limits_scope_parse(scope, canonical, cause,
                                         sizeof(cause)) != 0
                || strcmp(canonical, rule->scope) != 0)
            {
                snprintf(err, err_size, "field \"scope\" must be the scope "
                         "in the path, \"%s\", or be left out", rule->scope);
                goto done;
            }
            continue;
        }

        for (f = 0; f < CG_LIMITS_NFIELDS; f++) {
            if (strcmp(name, cg_limits_fields[f].name) == 0) {
                break;
            }
        }

        if (f == CG_LIMITS_NFIELDS) {
            snprintf(err, err_size, "unknown field \"%.40s\": expected scope,"
                     " per_minute, per_hour, burst and per_day", name);
            goto done;
        }

        if (cg_limits_field_parse(&cg_limits_fields[f], v, rule, err,
                                  err_size) != 0)
        {
            goto done;
        }
    }

    rc = cg_limits_rule_check(rule, err, err_size);

done:

    yajl_tree_free(root);
    return rc;
}


/* Stores the integer or null v into the rule's field. */
static int
cg_limits_field_parse(const cg_limits_field_t *field, yajl_val v,
    cg_limits_rule_t *rule, char *err, size_t err_size)
{
    long  *out = (long *) ((char *) rule + field->offset);

    if (YAJL_IS_NULL(v)) {
        *out = CG_LIMITS_NONE;
        return 0;
    }

    /* checked here, because -1 would read as CG_LIMITS_NONE later */
    if (YAJL_IS_INTEGER(v) && YAJL_GET_INTEGER(v) >= field->min
        && YAJL_GET_INTEGER(v) <= field->max)
    {
        *out = (long) YAJL_GET_INTEGER(v);
        return 0;
    }

    if (YAJL_IS_NUMBER(v)) {
        snprintf(err, err_size, "invalid %s %.30s: expected an integer from "
                 "%ld to %ld, or null", field->name, v->u.number.r,
                 field->min, field->max);
    } else {
        snprintf(err, err_size, "invalid %s: expected an integer from %ld to "
                 "%ld, or null, not a JSON %s", field->name, field->min,
                 field->max, YAJL_IS_STRING(v) ? "string"
                             : YAJL_IS_OBJECT(v) ? "object"
                             : YAJL_IS_ARRAY(v) ? "array" : "boolean");
    }

    return -1;
}


int
cg_limits_rule_check(const cg_limits_rule_t *rule, char *err, size_t err_size)
{
    const cg_limits_field_t  *field;
    long                      value;
    size_t                    f;

    for (f = 0; f < CG_LIMITS_NFIELDS; f++) {
        field = &cg_limits_fields[f];
        value = *(const long *) ((const char *) rule + field->offset);

        if (value != CG_LIMITS_NONE
            && (value < field->min || value > field->max))
        {
            snprintf(err, err_size, "invalid %s %ld: expected an integer from "
                     "%ld to %ld, or null", field->name, value, field->min,
                     field->max);
            return -1;
        }
    }

    if (rule->per_minute == CG_LIMITS_NONE && rule->per_hour == CG_LIMITS_NONE
        && rule->per_day == CG_LIMITS_NONE)
    {
        snprintf(err, err_size, "the rule for \"%s\" sets no limit: set at "
                 "least one of per_minute, per_hour and per_day", rule->scope);
        return -1;
    }

    if (rule->burst != CG_LIMITS_NONE && rule->per_minute == CG_LIMITS_NONE
        && rule->per_hour == CG_LIMITS_NONE)
    {
        snprintf(err, err_size, "burst applies to per_minute and per_hour, "
                 "and the rule for \"%s\" sets neither", rule->scope);
        return -1;
    }

    return 0;
}
