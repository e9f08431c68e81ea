/*
 * Log lines on stderr, one write(2) per line so that lines from concurrent
 * writers (the worker and a test harness sharing the terminal) do not mix.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "log.h"

cg_log_level_t  cg_log_level = CG_LOG_INFO;

static const char  *cg_log_level_names[] = { "error", "warn", "info", "debug" };


/* Sets *level from its name ("error", "warn", "info", "debug"). Returns 0, or -1 for an unknown name. */
int
cg_log_level_parse(const char *name, cg_log_level_t *level)
{
    size_t  i;

    for (i = 0; i < sizeof(cg_log_level_names) / sizeof(cg_log_level_names[0]); i++) {
        if (strcasecmp(name, cg_log_level_names[i]) == 0) {
            *level = (cg_log_level_t) i;
            return 0;
        }
    }

    return -1;
}


/*
 * Replaces with '?', in place, the bytes that a terminal or a log shipper
 * would act on: bytes that are not valid UTF-8 (the 8-bit C1 controls 0x80
 * to 0x9F among them), and each control character of cg_utf8_control_len(),
 * such as U+009B (a CSI) or U+0085 (a line break).
 */
static void
cg_log_neutralize(char *text, size_t len)
{
    size_t  i, n;

    cg_utf8_sanitize(text, len);

    for (i = 0; i < len; i += n ? n : 1) {
        n = cg_utf8_control_len(text + i, len - i);
        memset(text + i, '?', n);
    }
}


void
cg_log(cg_log_level_t level, const char *request_id, const char *fmt, ...)
{
    char             line[2048];
    size_t           len;
    int              n;
    va_list          ap;
    struct tm        tm;
    struct timespec  ts;

    if (level > cg_log_level) {
        return;
    }

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    len = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line + len, sizeof(line) - len, ".%03ldZ %s [%s] ",
                 ts.tv_nsec / 1000000, cg_log_level_names[level],
                 request_id ? request_id : "-");
    len += (size_t) n;

    va_start(ap, fmt);
    n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    va_end(ap);

    /* A message longer than the buffer is cut, and the line still ends. */
    if (n < 0 || len + (size_t) n >= sizeof(line) - 1) {
        n = (int) (sizeof(line) - 2 - len);
    }

    /*
     * Messages quote client-chosen values such as model names: a CR or LF
     * among them would start a forged log line, and an escape sequence
     * would act on the terminal that shows the log.
     */
    cg_log_neutralize(line + len, (size_t) n);
    len += (size_t) n;

    line[len++] = '\n';

    if (write(STDERR_FILENO, line, len) < 0) {
        /* nowhere left to report it */
    }
}
