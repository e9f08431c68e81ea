#ifndef CG_ERROR_H
#define CG_ERROR_H

#include <stddef.h>

/*
 * An error on its way to the client, in the OpenAI format:
 *
 *   {"error":{"message":"...","type":"invalid_request_error","param":null,"code":null}}
 *
 * status is the HTTP status; type is OpenAI's error type
 * ("invalid_request_error", "authentication_error", "rate_limit_exceeded",
 * "upstream_error", "timeout", "server_error"); code and param are optional.
 * message never contains a credential: cg_redact() runs over anything that
 * came from a provider before it lands here.
 */
typedef struct {
    int          status;
    const char  *type;
    const char  *code;
    const char  *param;
    char         param_path[64];   /* param when built at run time, e.g.
                                      "messages[2].role"; used if param is NULL */
    char         message[512];
} cg_error_t;

/* Sets every field of err; code, param and param_path are cleared. */
void cg_error_set(cg_error_t *err, int status, const char *type,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Formats param_path, the parameter an error is about, and clears param. */
void cg_error_param(cg_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Returns a malloc'ed JSON body for err; *len receives its length. */
char *cg_error_json(const cg_error_t *err, size_t *len);

/*
 * Removes credentials from the NUL-terminated text in place: the given secret
 * (the request's own provider key, may be NULL), bearer tokens, "sk-..." style
 * keys and x-api-key values. Each becomes "[redacted]"; text is truncated
 * rather than grown past its original length.
 */
void cg_redact(char *text, const char *secret);

#endif
