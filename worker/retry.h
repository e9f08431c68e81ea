#ifndef CG_RETRY_H
#define CG_RETRY_H

#include <time.h>

/*
 * Retries of a provider call that failed before any byte reached the
 * client: a connect failure, a 5xx or a 429. The delay before try n + 1 is
 * exponential backoff with full jitter, a uniform draw from
 * [0, min(CG_RETRY_CAP_MS, CG_RETRY_BASE_MS * 2^(n - 1))], raised to the
 * provider's Retry-After when it asks for longer. A retry is dropped when
 * it would start past the deadline.
 */

#define CG_RETRY_BASE_MS  200
#define CG_RETRY_CAP_MS   5000

typedef struct {
    int   attempts;        /* tries in all, the first one included; >= 1 */
    long  deadline_ms;     /* no try starts later than this after the request began */
} cg_retry_conf_t;

/*
 * Parses a Retry-After value: delay-seconds or an IMF-fixdate HTTP date
 * (RFC 9110, section 10.2.3), relative to now. Returns the delay in ms (0
 * for a date in the past), or -1 for a missing or invalid value.
 */
long cg_retry_after_ms(const char *value, time_t now);

/* Returns the jittered backoff in ms before try attempt + 1 (attempt >= 1). */
long cg_retry_backoff_ms(int attempt);

/*
 * Decides whether try attempt + 1 goes ahead. elapsed_ms is the time since
 * the request began; retry_after_ms is the provider's Retry-After, or -1.
 * Returns 1 with the delay in *delay_ms, or 0 when the tries are used up or
 * the retry would start past the deadline.
 */
int cg_retry_plan(const cg_retry_conf_t *conf, int attempt, long elapsed_ms,
    long retry_after_ms, long *delay_ms);

#endif
