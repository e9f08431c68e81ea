#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "json.h"


#define CG_REDACTED      "[redacted]"
#define CG_KEY_MIN_TAIL  8      /* "sk-" needs this many key characters after it */


typedef struct {
    size_t  keep;       /* bytes of the match copied as they are */
    size_t  consumed;   /* bytes of the match in total */
} cg_redact_match_t;


static int cg_redact_secret(const char *p, const char *secret,
    cg_redact_match_t *m);
static int cg_redact_bearer(const char *text, const char *p,
    cg_redact_match_t *m);
static int cg_redact_api_key_header(const char *text, const char *p,
    cg_redact_match_t *m);
static int cg_redact_sk_key(const char *text, const char *p,
    cg_redact_match_t *m);
static size_t cg_redact_value_len(const char *p);
static int cg_is_key_char(int c);


void
cg_error_set(cg_error_t *err, int status, const char *type,
    const char *fmt, ...)
{
    va_list  ap;
    int      n;

    err->status = status;
    err->type = type;
    err->code = NULL;
    err->param = NULL;
    err->param_path[0] = '\0';

    va_start(ap, fmt);
    n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);

    if (n < 0) {
        err->message[0] = '\0';
        return;
    }

    /* Truncation may cut a UTF-8 sequence, and arguments may hold bad bytes. */
    if ((size_t) n >= sizeof(err->message)) {
        n = (int) cg_utf8_cut(err->message, sizeof(err->message) - 1,
                              sizeof(err->message) - 1);
        err->message[n] = '\0';
    }
    cg_utf8_sanitize(err->message, strlen(err->message));
}


void
cg_error_param(cg_error_t *err, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(err->param_path, sizeof(err->param_path), fmt, ap);
    va_end(ap);

    cg_utf8_sanitize(err->param_path, strlen(err->param_path));
    err->param = NULL;
}


char *
cg_error_json(const cg_error_t *err, size_t *len)
{
    yajl_gen     g;
    const char  *param;
    int          rc;

    g = cg_json_gen_new();
    if (g == NULL) {
        return NULL;
    }

    param = err->param ? err->param
                       : (err->param_path[0] ? err->param_path : NULL);

    rc = yajl_gen_map_open(g) != yajl_gen_status_ok
         || cg_json_gen_str(g, "error") != 0
         || yajl_gen_map_open(g) != yajl_gen_status_ok
         || cg_json_gen_str(g, "message") != 0
         || cg_json_gen_str(g, err->message) != 0
         || cg_json_gen_str(g, "type") != 0
         || cg_json_gen_str(g, err->type ? err->type : "server_error") != 0
         || cg_json_gen_str(g, "param") != 0
         || (param ? cg_json_gen_str(g, param)
                   : (int) yajl_gen_null(g)) != 0
         || cg_json_gen_str(g, "code") != 0
         || (err->code ? cg_json_gen_str(g, err->code)
                       : (int) yajl_gen_null(g)) != 0
         || yajl_gen_map_close(g) != yajl_gen_status_ok
         || yajl_gen_map_close(g) != yajl_gen_status_ok;

    if (rc) {
        yajl_gen_free(g);
        return NULL;
    }

    return cg_json_gen_finish(g, len);
}


/*
 * Redaction copies the text into a scratch buffer that may grow (a short
 * secret becomes the longer "[redacted]"), then copies back at most the
 * original length, so nothing of a secret survives a truncation.
 */
void
cg_redact(char *text, const char *secret)
{
    size_t              len, cap, o = 0, cut;
    char               *out;
    const char         *p;
    cg_redact_match_t   m;

    len = strlen(text);
    cap = len * (sizeof(CG_REDACTED) + 1) + 1;

    out = malloc(cap);
    if (out == NULL) {
        /* Without memory the only safe answer is to show nothing. */
        snprintf(text, len + 1, "%s", CG_REDACTED);
        return;
    }

    for (p = text; *p; ) {

        if (cg_redact_secret(p, secret, &m)
            || cg_redact_bearer(text, p, &m)
            || cg_redact_api_key_header(text, p, &m)
            || cg_redact_sk_key(text, p, &m))
        {
            memcpy(out + o, p, m.keep);
            o += m.keep;
            memcpy(out + o, CG_REDACTED, sizeof(CG_REDACTED) - 1);
            o += sizeof(CG_REDACTED) - 1;
            p += m.consumed;
            continue;
        }

        out[o++] = *p++;
    }

    cut = cg_utf8_cut(out, o, len);
    memcpy(text, out, cut);
    text[cut] = '\0';

    free(out);
}


static int
cg_redact_secret(const char *p, const char *secret, cg_redact_match_t *m)
{
    size_t  n;

    if (secret == NULL || secret[0] == '\0') {
        return 0;
    }

    n = strlen(secret);
    if (strncmp(p, secret, n) != 0) {
        return 0;
    }

    m->keep = 0;
    m->consumed = n;
    return 1;
}


/* "Bearer <token>", any case, at a word start: the token is replaced. */
static int
cg_redact_bearer(const char *text, const char *p, cg_redact_match_t *m)
{
    size_t  n, v;

    if (p > text && isalnum((unsigned char) p[-1])) {
        return 0;
    }

    if (strncasecmp(p, "bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t')) {
        return 0;
    }

    for (n = 6; p[n] == ' ' || p[n] == '\t'; n++) { /* void */ }

    v = cg_redact_value_len(p + n);
    if (v == 0) {
        return 0;
    }

    m->keep = n;
    m->consumed = n + v;
    return 1;
}


/*
 * "x-api-key: v", "x-api-key=v" and the JSON form "\"x-api-key\": \"v\"",
 * any case: the value is replaced.
 */
static int
cg_redact_api_key_header(const char *text, const char *p, cg_redact_match_t *m)
{
    size_t  n = 9, v;

    if (p > text && (isalnum((unsigned char) p[-1]) || p[-1] == '-')) {
        return 0;
    }

    if (strncasecmp(p, "x-api-key", 9) != 0) {
        return 0;
    }

    if (p[n] == '"') {
        n++;
    }
    for ( /* void */ ; p[n] == ' ' || p[n] == '\t'; n++) { /* void */ }

    if (p[n] != ':' && p[n] != '=') {
        return 0;
    }
    n++;

    for ( /* void */ ; p[n] == ' ' || p[n] == '\t'; n++) { /* void */ }
    if (p[n] == '"') {
        n++;
    }

    v = cg_redact_value_len(p + n);
    if (v == 0) {
        return 0;
    }

    m->keep = n;
    m->consumed = n + v;
    return 1;
}


/* "sk-" and at least CG_KEY_MIN_TAIL key characters, at a word start. */
static int
cg_redact_sk_key(const char *text, const char *p, cg_redact_match_t *m)
{
    size_t  n;

    if (p > text && isalnum((unsigned char) p[-1])) {
        return 0;
    }

    if (strncmp(p, "sk-", 3) != 0) {
        return 0;
    }

    for (n = 3; cg_is_key_char((unsigned char) p[n]); n++) { /* void */ }

    if (n - 3 < CG_KEY_MIN_TAIL) {
        return 0;
    }

    m->keep = 0;
    m->consumed = n;
    return 1;
}


/* A credential value runs up to white space, a quote or a separator. */
static size_t
cg_redact_value_len(const char *p)
{
    size_t  n;

    for (n = 0; p[n] != '\0'; n++) {
        if (isspace((unsigned char) p[n]) || strchr("\"',;}", p[n]) != NULL) {
            break;
        }
    }

    return n;
}


static int
cg_is_key_char(int c)
{
    return isalnum(c) || c == '_' || c == '-';
}
