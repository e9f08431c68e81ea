/*
 * Retry timing: Retry-After parsing, jittered exponential backoff and the
 * decision against the tries and the deadline.
 */

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "retry.h"

/* Retry-After values above a day are taken as a day. */
#define CG_RETRY_AFTER_MAX_S  86400


long
cg_retry_after_ms(const char *value, time_t now)
{
    struct tm    tm;
    const char  *end;
    time_t       when;
    long         seconds = 0;

    if (value == NULL) {
        return -1;
    }

    while (*value == ' ' || *value == '\t') {
        value++;
    }

    if (isdigit((unsigned char) *value)) {
        for (end = value; isdigit((unsigned char) *end); end++) {
            if (seconds < CG_RETRY_AFTER_MAX_S) {
                seconds = seconds * 10 + (*end - '0');
            }
        }
        while (*end == ' ' || *end == '\t') {
            end++;
        }
        if (*end != '\0') {
            return -1;
        }
        if (seconds > CG_RETRY_AFTER_MAX_S) {
            seconds = CG_RETRY_AFTER_MAX_S;
        }
        return seconds * 1000;
    }

    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
    memset(&tm, 0, sizeof(tm));
    end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || strspn(end, " \t") != strlen(end)) {
        return -1;
    }

    when = timegm(&tm);
    if (when == (time_t) -1) {
        return -1;
    }
    if (when <= now) {
        return 0;
    }
    if (when - now > CG_RETRY_AFTER_MAX_S) {
        return (long) CG_RETRY_AFTER_MAX_S * 1000;
    }

    return (long) (when - now) * 1000;
}


long
cg_retry_backoff_ms(int attempt)
{
    long  ceiling = CG_RETRY_BASE_MS;
    int   i;

    for (i = 1; i < attempt && ceiling < CG_RETRY_CAP_MS; i++) {
        ceiling *= 2;
    }
    if (ceiling > CG_RETRY_CAP_MS) {
        ceiling = CG_RETRY_CAP_MS;
    }

    return (long) arc4random_uniform((uint32_t) ceiling + 1);
}


int
cg_retry_plan(const cg_retry_conf_t *conf, int attempt, long elapsed_ms,
    long retry_after_ms, long *delay_ms)
{
    long  delay;

    if (attempt >= conf->attempts) {
        return 0;
    }

    delay = cg_retry_backoff_ms(attempt);
    if (retry_after_ms > delay) {
        delay = retry_after_ms;
    }

    if (elapsed_ms + delay > conf->deadline_ms) {
        return 0;
    }

    *delay_ms = delay;
    return 1;
}
