/* Retry-After parsing, jittered backoff and the retry decision. */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "retry.h"


static void
test_retry_after(void)
{
    /* 1994-11-06 08:49:37 UTC */
    time_t  now = 784111777;

    is_int(cg_retry_after_ms("2", now), 2000, "retry-after seconds");
    is_int(cg_retry_after_ms(" 0 ", now), 0, "retry-after zero with spaces");
    is_int(cg_retry_after_ms("999999999999", now), 86400000,
           "retry-after seconds capped at a day");
    is_int(cg_retry_after_ms("Sun, 06 Nov 1994 08:49:47 GMT", now), 10000,
           "retry-after http date");
    is_int(cg_retry_after_ms("Sun, 06 Nov 1994 08:40:00 GMT", now), 0,
           "retry-after http date in the past");
    is_int(cg_retry_after_ms(NULL, now), -1, "retry-after missing");
    is_int(cg_retry_after_ms("", now), -1, "retry-after empty");
    is_int(cg_retry_after_ms("-1", now), -1, "retry-after negative");
    is_int(cg_retry_after_ms("1.5", now), -1, "retry-after fraction");
    is_int(cg_retry_after_ms("soon", now), -1, "retry-after word");
    is_int(cg_retry_after_ms("Sun, 06 Nov 1994 08:49:47 PST", now), -1,
           "retry-after date not in GMT");
}


static void
test_backoff(void)
{
    int   attempt, i, over = 0, spread = 0;
    long  d, first = -1;

    for (attempt = 1; attempt <= 8; attempt++) {
        long  ceiling = CG_RETRY_BASE_MS << (attempt - 1);

        if (ceiling > CG_RETRY_CAP_MS) {
            ceiling = CG_RETRY_CAP_MS;
        }
        for (i = 0; i < 200; i++) {
            d = cg_retry_backoff_ms(attempt);
            over += d < 0 || d > ceiling;
            if (first == -1) {
                first = d;
            }
            spread += d != first;
        }
    }

    is_int(over, 0, "backoff within [0, min(cap, base * 2^(n-1))]");
    ok(spread > 0, "backoff jittered");
}


static void
test_plan(void)
{
    cg_retry_conf_t  conf = { 3, 10000 };
    long             delay = -1;

    ok(cg_retry_plan(&conf, 1, 0, -1, &delay), "plan first retry");
    ok(delay >= 0 && delay <= CG_RETRY_BASE_MS, "plan first delay");

    ok(cg_retry_plan(&conf, 2, 0, 1000, &delay), "plan retry-after");
    is_int(delay, 1000, "plan retry-after delay");

    ok(!cg_retry_plan(&conf, 3, 0, -1, &delay), "plan tries used up");
    ok(!cg_retry_plan(&conf, 1, 9500, 1000, &delay),
       "plan retry-after past the deadline");
    ok(!cg_retry_plan(&conf, 1, 0, 30000, &delay),
       "plan long retry-after past the deadline");

    conf.attempts = 1;
    ok(!cg_retry_plan(&conf, 1, 0, -1, &delay), "plan retries off");
}


int
main(void)
{
    test_retry_after();
    test_backoff();
    test_plan();

    return done();
}
