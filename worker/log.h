#ifndef CG_LOG_H
#define CG_LOG_H

/*
 * Log lines go to stderr, one per event:
 *
 *   2026-12-04T20:10:01.123Z info [4f2a...] provider "openai" answered 200 in 312 ms
 *
 * The bracket holds the request id, or "-" outside a request. Callers never
 * pass a secret or a whole request body: the log is read by more people than
 * the keys are.
 */

typedef enum {
    CG_LOG_ERROR = 0,
    CG_LOG_WARN,
    CG_LOG_INFO,
    CG_LOG_DEBUG
} cg_log_level_t;

extern cg_log_level_t  cg_log_level;

int cg_log_level_parse(const char *name, cg_log_level_t *level);

void cg_log(cg_log_level_t level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define cg_log_error(id, ...)  cg_log(CG_LOG_ERROR, id, __VA_ARGS__)
#define cg_log_warn(id, ...)   cg_log(CG_LOG_WARN, id, __VA_ARGS__)
#define cg_log_info(id, ...)                                                 \
    do { if (cg_log_level >= CG_LOG_INFO) cg_log(CG_LOG_INFO, id, __VA_ARGS__); } while (0)
#define cg_log_debug(id, ...)                                                \
    do { if (cg_log_level >= CG_LOG_DEBUG) cg_log(CG_LOG_DEBUG, id, __VA_ARGS__); } while (0)

#endif
