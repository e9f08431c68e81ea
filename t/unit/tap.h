#ifndef CG_TAP_H
#define CG_TAP_H

/*
 * A minimal TAP producer for the C unit tests, so that prove runs them next
 * to the integration tests: ok(cond, name), is_int(), is_str(), done().
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int  tap_count;
static int  tap_failed;

#define ok(cond, ...)                                                        \
    tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

static void __attribute__((format(printf, 4, 5)))
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
    va_list  ap;

    tap_count++;
    printf("%sok %d - ", pass ? "" : "not ", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");

    if (!pass) {
        tap_failed++;
        printf("#   failed at %s line %d\n", file, line);
    }
}

#define is_int(got, expected, ...) do {                                      \
    long long  g_ = (got), e_ = (expected);                                  \
    ok(g_ == e_, __VA_ARGS__);                                               \
    if (g_ != e_) printf("#   got %lld, expected %lld\n", g_, e_);          \
} while (0)

#define is_str(got, expected, ...) do {                                      \
    const char  *g_ = (got), *e_ = (expected);                               \
    int  same_ = g_ != NULL && e_ != NULL ? strcmp(g_, e_) == 0 : g_ == e_;  \
    ok(same_, __VA_ARGS__);                                                  \
    if (!same_) printf("#   got \"%s\", expected \"%s\"\n",                 \
                       g_ ? g_ : "(null)", e_ ? e_ : "(null)");            \
} while (0)

static int
done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

#endif
