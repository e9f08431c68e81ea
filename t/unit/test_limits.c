/* Unit tests for worker/limits_rule.c: scopes, counters and rule bodies. */

#include <string.h>

#include "ratelimit.h"
#include "tap.h"

static void
test_scope_valid(void)
{
    static const struct {
        const char  *in;
        const char  *canonical;
    } cases[] = {
        { "global", "global" },
        { "ip:*", "ip:*" },
        { "key:*", "key:*" },
        { "ip:192.0.2.1", "ip:192.0.2.1" },
        { "ip:192.0.2.1/32", "ip:192.0.2.1" },
        { "ip:10.0.0.0/8", "ip:10.0.0.0/8" },
        { "ip:0.0.0.0/0", "ip:0.0.0.0/0" },
        { "ip:10.1.2.0/23", "ip:10.1.2.0/23" },
        { "ip:2001:DB8:0:0::1", "ip:2001:db8::1" },
        { "ip:2001:db8::/32", "ip:2001:db8::/32" },
        { "ip:::1/128", "ip:::1" },
        { "key:0B9A6E1C-3F0E-4A5B-9C1D-2E3F4A5B6C7D",
          "key:0b9a6e1c-3f0e-4a5b-9c1d-2e3f4a5b6c7d" },
    };
    char    out[CG_LIMITS_SCOPE_LEN], err[256];
    size_t  i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        ok(cg_limits_scope_parse(cases[i].in, out, err, sizeof(err)) == 0,
           "scope %s accepted", cases[i].in);
        is_str(out, cases[i].canonical, "scope %s canonical", cases[i].in);
    }
}

static void
test_scope_invalid(void)
{
    static const char  *cases[] = {
        "", "ip:", "ip:**", "ip:300.1.1.1", "ip:10.0.0.1/8", "ip:10.0.0.0/33",
        "ip:10.0.0.0/", "ip:10.0.0.0/8a", "ip:10.0.0.0/0008", "ip:2001:db8::/129",
        "ip:2001:db8::1/64", "ip:fe80::1%eth0", "key:", "key:not-a-uuid",
        "key:0b9a6e1c-3f0e-4a5b-9c1d-2e3f4a5b6c7", "GLOBAL", "global ",
        "ip:192.0.2.1 ", "user:1", "ip:::ffff:192.0.2.7",
        "ip:::ffff:192.0.2.0/120", "ip:::ffff:0:0/96",
    };
    char    out[CG_LIMITS_SCOPE_LEN], err[256];
    size_t  i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        ok(cg_limits_scope_parse(cases[i], out, err, sizeof(err)) == -1,
           "scope \"%s\" rejected", cases[i]);
        ok(err[0] != '\0', "scope \"%s\" rejection has a reason", cases[i]);
    }
}

static void
test_counter(void)
{
    ok(cg_limits_counter_valid("global"), "counter global");
    ok(cg_limits_counter_valid("ip:192.0.2.7"), "counter address");
    ok(cg_limits_counter_valid("ip:10.0.0.0/8"), "counter cidr");
    ok(cg_limits_counter_valid("key:byok-9f86d081884c7d659a2feaa0c55ad015"),
       "counter byok hash");
    ok(!cg_limits_counter_valid("ip:*"), "counter ip any rejected");
    ok(!cg_limits_counter_valid("key:*"), "counter key any rejected");
    ok(!cg_limits_counter_valid("key:byok-9F86"), "counter short hash rejected");
    ok(!cg_limits_counter_valid("ip:10.0.0.1/8"), "counter host bits rejected");
}

static void
test_rule_json(void)
{
    cg_limits_rule_t  rule;
    char              err[256];
    const char       *body;

    memset(&rule, 0, sizeof(rule));
    strcpy(rule.scope, "ip:*");

    body = "{\"scope\": \"ip:*\", \"per_minute\": 60, \"per_hour\": null, "
           "\"burst\": 10, \"per_day\": 5000}";
    ok(cg_limits_rule_parse_json(body, strlen(body), &rule, err, sizeof(err))
       == 0, "rule json accepted");
    is_int(rule.per_minute, 60, "rule json per_minute");
    is_int(rule.per_hour, CG_LIMITS_NONE, "rule json per_hour null");
    is_int(rule.burst, 10, "rule json burst");
    is_int(rule.per_day, 5000, "rule json per_day");

    body = "{\"per_day\": 1000000000}";
    ok(cg_limits_rule_parse_json(body, strlen(body), &rule, err, sizeof(err))
       == 0, "rule json max per_day accepted");
    is_int(rule.per_minute, CG_LIMITS_NONE, "rule json missing is null");

    body = "{\"per_minute\": -1}";
    ok(cg_limits_rule_parse_json(body, strlen(body), &rule, err, sizeof(err))
       == -1, "rule json -1 rejected");
    ok(strstr(err, "per_minute") != NULL, "rule json -1 names field");

    body = "{\"per_minute\": 99999999999999999999999}";
    ok(cg_limits_rule_parse_json(body, strlen(body), &rule, err, sizeof(err))
       == -1, "rule json overflow rejected");

    body = "{\"per_minute\": 5, \"per_minute \": 5}";
    ok(cg_limits_rule_parse_json(body, strlen(body), &rule, err, sizeof(err))
       == -1, "rule json unknown field rejected");
}

int
main(void)
{
    test_scope_valid();
    test_scope_invalid();
    test_counter();
    test_rule_json();

    return done();
}
