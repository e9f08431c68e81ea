/*
 * Settings: the env file, the environment, and validation of every value.
 */

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "conf.h"

#ifndef CG_SQL_DIR
#define CG_SQL_DIR  "/usr/share/chatgate/sql"
#endif

typedef enum {
    CG_CONF_COUNT = 0,
    CG_CONF_MS,
    CG_CONF_BYTES
} cg_conf_unit_t;

typedef struct {
    const char     *name;
    long long       def;
    long long       min;
    long long       max;
    cg_conf_unit_t  unit;
} cg_conf_number_t;

static int cg_conf_read_file(const char *path, char *err, size_t err_size);
static int cg_conf_parse_line(char *line, char **key, char **value);
static int cg_conf_number(const cg_conf_number_t *spec, long long *out,
    char *err, size_t err_size);
static int cg_conf_base_url(const char *name, const char *def, char **out,
    char *err, size_t err_size);
static char *cg_conf_string(const char *name, const char *def);
static int cg_conf_secret(const char *name, size_t min_len, char **out,
    char *err, size_t err_size);
static void cg_conf_wipe_env(const char *name, char *value, size_t len);
static int cg_conf_group(const char *name, gid_t *gid, char *err,
    size_t err_size);
static int cg_conf_secret_file(const char *name, size_t min_len, char **out,
    char *err, size_t err_size);
static int cg_conf_secret_check(const char *name, const char *path,
    const char *value, size_t len, size_t min_len, char *err,
    size_t err_size);
static void cg_conf_free_secret(char *secret);
static int cg_conf_control_url(cg_conf_t *conf, char *err, size_t err_size);


int
cg_conf_load(cg_conf_t *conf, const char *env_file, char *err,
    size_t err_size)
{
    static const cg_conf_number_t  numbers[] = {
        { "CHATGATE_CONNECT_TIMEOUT_MS", 5000, 1, 600000, CG_CONF_MS },
        { "CHATGATE_REQUEST_TIMEOUT_MS", 120000, 1, 3600000, CG_CONF_MS },
        { "CHATGATE_MAX_BODY_SIZE", 1048576, 1024, 64 << 20, CG_CONF_BYTES },
        { "CHATGATE_LOG_BATCH", 500, 1, 10000, CG_CONF_COUNT },
        { "CHATGATE_LOG_FLUSH_MS", 200, 1, 60000, CG_CONF_MS },
        { "CHATGATE_LOG_QUEUE_MAX", 20000, 1, 10000000, CG_CONF_COUNT },
        { "CHATGATE_DB_CONNECTIONS", 2, 1, 64, CG_CONF_COUNT },
        { "CHATGATE_JWT_TTL", 3600, 60, 30 * 86400, CG_CONF_COUNT },
        { "CHATGATE_RETRY_ATTEMPTS", 3, 1, 10, CG_CONF_COUNT },
        { "CHATGATE_RETRY_DEADLINE_MS", 10000, 0, 3600000, CG_CONF_MS },
        { "CHATGATE_STREAM_BUFFER", 256 << 10, 16 << 10, 64 << 20, CG_CONF_BYTES },
        { "CHATGATE_STREAM_TIMELINE", 0, 0, 1, CG_CONF_COUNT },
        { "CHATGATE_LIMITS_SYNC_MS", 1000, 50, 3600000, CG_CONF_MS },
        { "CHATGATE_PROVIDER_CONNECTIONS", 256, 1, 65536, CG_CONF_COUNT },
    };
    static const char  *url_names[CG_PROVIDER_COUNT] = {
        "OPENAI_BASE_URL", "OPENROUTER_BASE_URL", "ANTHROPIC_BASE_URL",
        "OLLAMA_BASE_URL"
    };
    static const char  *url_defaults[CG_PROVIDER_COUNT] = {
        "https://api.openai.com/v1", "https://openrouter.ai/api/v1",
        "https://api.anthropic.com/v1", "http://127.0.0.1:11434"
    };
    long long    value[sizeof(numbers) / sizeof(numbers[0])];
    const char  *s;
    char        *end, *url;
    size_t       i;

    memset(conf, 0, sizeof(*conf));

    if (env_file != NULL && cg_conf_read_file(env_file, err, err_size) != 0) {
        return -1;
    }

    for (i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        if (cg_conf_number(&numbers[i], &value[i], err, err_size) != 0) {
            goto fail;
        }
    }

    conf->connect_timeout_ms = (long) value[0];
    conf->request_timeout_ms = (long) value[1];
    conf->max_body_size = (size_t) value[2];
    conf->log_batch = (int) value[3];
    conf->log_flush_ms = (int) value[4];
    conf->log_queue_max = (int) value[5];
    conf->db_connections = (int) value[6];
    conf->jwt_ttl_s = (long) value[7];
    conf->retry_attempts = (int) value[8];
    conf->retry_deadline_ms = (long) value[9];
    conf->stream_buffer = (size_t) value[10];
    conf->stream_timeline = (int) value[11];

    /* a retry never starts after the provider call could have timed out */
    if (conf->retry_deadline_ms > conf->request_timeout_ms) {
        conf->retry_deadline_ms = conf->request_timeout_ms;
    }
    conf->limits_sync_ms = (int) value[12];
    conf->provider_connections = (long) value[13];

    s = getenv("CHATGATE_LOG_LEVEL");
    if (s != NULL && *s != '\0' && cg_log_level_parse(s, &conf->log_level) != 0) {
        snprintf(err, err_size, "invalid CHATGATE_LOG_LEVEL \"%s\": expected "
                 "error, warn, info or debug", s);
        goto fail;
    }
    if (s == NULL || *s == '\0') {
        conf->log_level = CG_LOG_INFO;
    }

    s = getenv("CHATGATE_SOCKET_GROUP");
    conf->socket_group = (gid_t) -1;
    if (s != NULL && *s != '\0'
        && cg_conf_group(s, &conf->socket_group, err, err_size) != 0)
    {
        goto fail;
    }

    /*
     * Whoever can connect to the socket is trusted like nginx (it may send
     * X-Chatgate-* identity headers), so only the owner and the group may.
     */
    s = getenv("CHATGATE_SOCKET_MODE");
    conf->socket_mode = 0660;
    if (s != NULL && *s != '\0') {
        errno = 0;
        unsigned long mode = strtoul(s, &end, 8);
        if (errno != 0 || *end != '\0' || mode > 0777) {
            snprintf(err, err_size, "invalid CHATGATE_SOCKET_MODE \"%s\": "
                     "expected an octal file mode from 0 to 0777", s);
            goto fail;
        }
        conf->socket_mode = (mode_t) mode;
    }

    s = getenv("CHATGATE_DEFAULT_PROVIDER");
    conf->default_provider = CG_PROVIDER_OPENAI;
    if (s != NULL && *s != '\0'
        && cg_provider_by_name(s, strlen(s), &conf->default_provider) != 0)
    {
        snprintf(err, err_size, "invalid CHATGATE_DEFAULT_PROVIDER \"%s\": "
                 "expected openai, openrouter, anthropic or ollama", s);
        goto fail;
    }

    for (i = 0; i < CG_PROVIDER_COUNT; i++) {
        if (cg_conf_base_url(url_names[i], url_defaults[i], &conf->base_url[i],
                             err, err_size) != 0)
        {
            goto fail;
        }
    }

    s = getenv("CHATGATE_PROXY");
    if (s != NULL && *s != '\0'
        && cg_conf_base_url("CHATGATE_PROXY", NULL, &conf->proxy, err,
                            err_size) != 0)
    {
        goto fail;
    }

    conf->socket_path = cg_conf_string("CHATGATE_SOCKET",
                                       "/run/chatgate/worker.sock");
    conf->database_url = cg_conf_string("DATABASE_URL", NULL);
    conf->spool_path = cg_conf_string("CHATGATE_SPOOL_PATH",
                                      "/var/lib/chatgate/chat_logs.spool");
    conf->sql_dir = cg_conf_string("CHATGATE_SQL_DIR", CG_SQL_DIR);

    if (conf->socket_path == NULL || conf->spool_path == NULL
        || conf->sql_dir == NULL)
    {
        snprintf(err, err_size, "out of memory while reading settings");
        goto fail;
    }

    /* A libpq URL may carry the database password, so keep only the copy. */
    url = getenv("DATABASE_URL");
    if (conf->database_url != NULL && url != NULL) {
        cg_conf_wipe_env("DATABASE_URL", url, strlen(url));
    }

    if (cg_conf_control_url(conf, err, err_size) != 0) {
        goto fail;
    }

    if (cg_conf_secret("ADMIN_TOKEN", 16, &conf->admin_token, err, err_size)
        != 0
        || cg_conf_secret("ADMIN_KMS_KEY", 1, &conf->kms_key, err, err_size)
           != 0
        || cg_conf_secret("JWT_SECRET", 32, &conf->jwt_secret, err, err_size)
           != 0)
    {
        goto fail;
    }

    return 0;

fail:

    cg_conf_free(conf);
    return -1;
}


void
cg_conf_free(cg_conf_t *conf)
{
    size_t  i;

    free(conf->socket_path);
    cg_conf_free_secret(conf->database_url);
    free(conf->proxy);
    free(conf->spool_path);
    free(conf->sql_dir);
    free(conf->control_url);
    free(conf->control_url_log);
    free(conf->control_socket);

    for (i = 0; i < CG_PROVIDER_COUNT; i++) {
        free(conf->base_url[i]);
    }

    cg_conf_free_secret(conf->admin_token);
    cg_conf_free_secret(conf->kms_key);
    cg_conf_free_secret(conf->jwt_secret);

    memset(conf, 0, sizeof(*conf));
}


/*
 * Copies the secret setting name into *out, or leaves *out NULL when it is
 * unset. The value comes from the variable name or from the file that
 * name_FILE points to (the files nginx reads too), never both. A value
 * shorter than min_len bytes is an error; the message names the setting
 * and its length, never the value.
 */
static int
cg_conf_secret(const char *name, size_t min_len, char **out, char *err,
    size_t err_size)
{
    char        *s, file_name[64];
    const char  *path;
    size_t       len;

    snprintf(file_name, sizeof(file_name), "%s_FILE", name);
    s = getenv(name);
    path = getenv(file_name);

    if (path != NULL && *path != '\0') {
        if (s != NULL && *s != '\0') {
            snprintf(err, err_size, "both %s and %s are set: keep one of "
                     "them", name, file_name);
            return -1;
        }
        return cg_conf_secret_file(name, min_len, out, err, err_size);
    }

    if (s == NULL || *s == '\0') {
        return 0;
    }

    len = strlen(s);
    if (cg_conf_secret_check(name, NULL, s, len, min_len, err, err_size)
        != 0)
    {
        return -1;
    }

    *out = strdup(s);
    if (*out == NULL) {
        snprintf(err, err_size, "out of memory while reading %s", name);
        return -1;
    }

    cg_conf_wipe_env(name, s, len);
    return 0;
}


/*
 * Removes the variable name from the environment and overwrites its bytes,
 * once the caller has copied its value. /proc/PID/environ shows the
 * bytes of the environment the process started with, whatever unsetenv()
 * does to the environ array, so only overwriting hides the secret there.
 * glibc's getenv() returns the value inside its "NAME=value" entry, so the
 * name goes too where the bytes before the value read "NAME=".
 */
static void
cg_conf_wipe_env(const char *name, char *value, size_t len)
{
    size_t   name_len;
    char    *entry;

    name_len = strlen(name);
    entry = value - name_len - 1;

    unsetenv(name);

    if (memcmp(entry, name, name_len) == 0 && entry[name_len] == '=') {
        explicit_bzero(entry, name_len + 1 + len);
    } else {
        explicit_bzero(value, len);
    }
}


/* Sets *gid from a group name or number. */
static int
cg_conf_group(const char *name, gid_t *gid, char *err, size_t err_size)
{
    struct group  *gr;
    char          *end;
    unsigned long  n;

    errno = 0;
    n = strtoul(name, &end, 10);
    if (errno == 0 && *end == '\0' && n < (unsigned long) (gid_t) -1) {
        *gid = (gid_t) n;
        return 0;
    }

    gr = getgrnam(name);
    if (gr == NULL) {
        snprintf(err, err_size, "invalid CHATGATE_SOCKET_GROUP \"%s\": no "
                 "such group; name the group nginx's worker processes run "
                 "in, for example www-data", name);
        return -1;
    }

    *gid = gr->gr_gid;
    return 0;
}


/*
 * Reads the secret name from the file that name_FILE names, as the nginx
 * module's chatgate_*_file directives do: at most 4096 bytes, whitespace
 * around the value dropped, no control characters inside.
 */
static int
cg_conf_secret_file(const char *name, size_t min_len, char **out, char *err,
    size_t err_size)
{
    FILE        *f;
    char         buf[4098], file_name[64];
    const char  *path;
    size_t       n, start, end;
    int          rc = -1;

    snprintf(file_name, sizeof(file_name), "%s_FILE", name);
    path = getenv(file_name);

    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, err_size, "cannot open %s \"%s\": %s", file_name, path,
                 strerror(errno));
        return -1;
    }

    n = fread(buf, 1, sizeof(buf) - 1, f);
    if (ferror(f) || n > 4096) {
        snprintf(err, err_size, "cannot read %s \"%s\": %s", file_name, path,
                 ferror(f) ? strerror(errno) : "larger than 4096 bytes");
        goto done;
    }

    for (start = 0; start < n && isspace((unsigned char) buf[start]); start++) {
        /* void */
    }
    for (end = n; end > start && isspace((unsigned char) buf[end - 1]); end--) {
        /* void */
    }

    if (cg_conf_secret_check(file_name, path, buf + start, end - start,
                             min_len, err, err_size) != 0)
    {
        goto done;
    }

    *out = strndup(buf + start, end - start);
    if (*out == NULL) {
        snprintf(err, err_size, "out of memory while reading %s", file_name);
        goto done;
    }

    rc = 0;

done:

    explicit_bzero(buf, sizeof(buf));
    fclose(f);
    return rc;
}


/*
 * Checks a secret's length and bytes. The message names the setting, the
 * file (path, may be NULL) and the length, never the value.
 */
static int
cg_conf_secret_check(const char *name, const char *path, const char *value,
    size_t len, size_t min_len, char *err, size_t err_size)
{
    size_t  i;

    if (len < min_len) {
        snprintf(err, err_size, "%s%s%s%s is too short (%zu bytes): use at "
                 "least %zu random bytes, for example \"openssl rand -hex "
                 "32\"", name, path ? " \"" : "", path ? path : "",
                 path ? "\"" : "", len, min_len);
        return -1;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) value[i] < 0x20 || value[i] == 0x7f) {
            snprintf(err, err_size, "%s%s%s%s has a control character at "
                     "byte %zu: use printable characters only", name,
                     path ? " \"" : "", path ? path : "", path ? "\"" : "",
                     i + 1);
            return -1;
        }
    }

    return 0;
}


static void
cg_conf_free_secret(char *secret)
{
    if (secret != NULL) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}


/*
 * Reads KEY=VALUE lines into the environment; a variable that is already set
 * keeps its value. Blank lines and lines starting with '#' are skipped.
 */
static int
cg_conf_read_file(const char *path, char *err, size_t err_size)
{
    FILE    *f;
    char    *line = NULL, *key, *value;
    size_t   cap = 0;
    int      lineno = 0, rc = -1;

    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, err_size, "cannot open env file \"%s\": %s", path,
                 strerror(errno));
        return -1;
    }

    while (getline(&line, &cap, f) != -1) {
        lineno++;

        switch (cg_conf_parse_line(line, &key, &value)) {
        case 0:
            continue;
        case -1:
            snprintf(err, err_size, "invalid line %d in env file \"%s\": "
                     "expected KEY=VALUE", lineno, path);
            goto done;
        }

        if (setenv(key, value, 0) != 0) {
            snprintf(err, err_size, "cannot set \"%s\" from env file \"%s\": "
                     "%s", key, path, strerror(errno));
            goto done;
        }
    }

    rc = 0;

done:

    /* the file may hold secrets such as DATABASE_URL's password */
    if (line != NULL) {
        explicit_bzero(line, cap);
    }
    free(line);
    fclose(f);
    return rc;
}


/*
 * Splits one env file line in place. Accepts an optional "export " prefix,
 * a value in single or double quotes (taken as is), and an unquoted value
 * that ends at " #". Returns 1 for a setting, 0 for a blank or comment line,
 * -1 for anything else.
 */
static int
cg_conf_parse_line(char *line, char **key, char **value)
{
    char    *p, *eq, *end, *hash;
    size_t   len;

    p = line;
    while (isspace((unsigned char) *p)) {
        p++;
    }

    if (*p == '\0' || *p == '#') {
        return 0;
    }

    if (strncmp(p, "export ", 7) == 0) {
        p += 7;
        while (*p == ' ') {
            p++;
        }
    }

    eq = strchr(p, '=');
    if (eq == NULL || eq == p) {
        return -1;
    }

    for (end = p; end < eq; end++) {
        if (!(isalnum((unsigned char) *end) || *end == '_')) {
            return -1;
        }
    }

    *eq = '\0';
    *key = p;

    p = eq + 1;
    len = strlen(p);
    while (len > 0 && isspace((unsigned char) p[len - 1])) {
        p[--len] = '\0';
    }

    if (len >= 2 && (p[0] == '"' || p[0] == '\'') && p[len - 1] == p[0]) {
        p[len - 1] = '\0';
        *value = p + 1;
        return 1;
    }

    hash = strstr(p, " #");
    if (hash != NULL) {
        *hash = '\0';
        len = strlen(p);
        while (len > 0 && isspace((unsigned char) p[len - 1])) {
            p[--len] = '\0';
        }
    }

    *value = p;
    return 1;
}


/*
 * Reads one number setting. Durations accept an "ms" or "s" suffix and sizes
 * a "k" or "m" suffix (KiB, MiB); a bare number is in the setting's unit.
 */
static int
cg_conf_number(const cg_conf_number_t *spec, long long *out, char *err,
    size_t err_size)
{
    const char  *s;
    char        *end;
    long long    n, scale = 1;

    s = getenv(spec->name);
    if (s == NULL || *s == '\0') {
        *out = spec->def;
        return 0;
    }

    errno = 0;
    n = strtoll(s, &end, 10);
    if (errno != 0 || end == s || n < 0) {
        goto invalid;
    }

    if (*end != '\0') {
        if (spec->unit == CG_CONF_MS && strcmp(end, "ms") == 0) {
            scale = 1;
        } else if (spec->unit == CG_CONF_MS && strcmp(end, "s") == 0) {
            scale = 1000;
        } else if (spec->unit == CG_CONF_BYTES
                   && (strcmp(end, "k") == 0 || strcmp(end, "K") == 0))
        {
            scale = 1024;
        } else if (spec->unit == CG_CONF_BYTES
                   && (strcmp(end, "m") == 0 || strcmp(end, "M") == 0))
        {
            scale = 1024 * 1024;
        } else {
            goto invalid;
        }
    }

    if (n > spec->max / scale || n * scale < spec->min) {
        goto invalid;
    }

    *out = n * scale;
    return 0;

invalid:

    snprintf(err, err_size, "invalid %s \"%s\": expected a whole number from "
             "%lld to %lld%s", spec->name, s, spec->min, spec->max,
             spec->unit == CG_CONF_MS ? " ms (or with an \"s\" suffix)"
             : spec->unit == CG_CONF_BYTES ? " bytes (or with a \"k\" or "
             "\"m\" suffix)" : "");
    return -1;
}


/*
 * Reads an http:// or https:// URL setting into a malloc'ed copy without
 * its trailing slashes. def NULL means the setting is optional.
 */
static int
cg_conf_base_url(const char *name, const char *def, char **out, char *err,
    size_t err_size)
{
    const char  *s, *p;
    size_t       len;

    s = getenv(name);
    if (s == NULL || *s == '\0') {
        s = def;
    }
    if (s == NULL) {
        *out = NULL;
        return 0;
    }

    if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
        /* a URL with user info may carry a password, so it is not quoted */
        snprintf(err, err_size, "invalid %s \"%s\": expected an http:// or "
                 "https:// URL", name, strchr(s, '@') ? "..." : s);
        return -1;
    }

    for (p = s; *p != '\0'; p++) {
        if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f) {
            snprintf(err, err_size, "invalid %s: the URL contains a space or "
                     "a control character", name);
            return -1;
        }
    }

    if (!cg_conf_base_url_valid(s)) {
        snprintf(err, err_size, "invalid %s \"%s\": expected a URL with a "
                 "host and without a query or fragment", name,
                 strchr(s, '@') ? "..." : s);
        return -1;
    }

    len = strlen(s);
    while (len > 8 && s[len - 1] == '/') {
        len--;
    }

    *out = strndup(s, len);
    if (*out == NULL) {
        snprintf(err, err_size, "out of memory while reading %s", name);
        return -1;
    }

    return 0;
}


static char *
cg_conf_string(const char *name, const char *def)
{
    const char  *s;

    s = getenv(name);
    if (s == NULL || *s == '\0') {
        s = def;
    }

    return s ? strdup(s) : NULL;
}


/*
 * Reads CHATGATE_CONTROL_URL: "http://127.0.0.1:PORT/PATH" (or another
 * http:// URL) or "unix:/SOCKET/PATH:/PATH", the form nginx uses for unix
 * sockets. Leaves both fields NULL when the setting is unset or empty.
 */
static int
cg_conf_control_url(cg_conf_t *conf, char *err, size_t err_size)
{
    char         masked[1024];
    const char  *s, *sep;
    size_t       path_len;

    s = getenv("CHATGATE_CONTROL_URL");
    if (s == NULL || *s == '\0') {
        return 0;
    }

    /* The URL may carry a password in its user info, as a base URL may. */
    cg_conf_url_for_log(s, masked, sizeof(masked));

    if (strncmp(s, "http://", 7) == 0 && s[7] != '\0' && s[7] != '/') {
        conf->control_url = strdup(s);
        conf->control_url_log = strdup(masked);
        if (conf->control_url == NULL || conf->control_url_log == NULL) {
            snprintf(err, err_size, "out of memory while reading settings");
            return -1;
        }
        return 0;
    }

    sep = strncmp(s, "unix:/", 6) == 0 ? strstr(s + 5, ":/") : NULL;
    if (sep == NULL) {
        snprintf(err, err_size, "invalid CHATGATE_CONTROL_URL \"%s\": "
                 "expected http://127.0.0.1:PORT/PATH or "
                 "unix:/SOCKET/PATH:/PATH", masked);
        return -1;
    }

    path_len = (size_t) (sep - (s + 5));

    conf->control_socket = strndup(s + 5, path_len);
    if (conf->control_socket == NULL
        || asprintf(&conf->control_url, "http://localhost%s", sep + 1) < 0)
    {
        conf->control_url = NULL;
        snprintf(err, err_size, "out of memory while reading settings");
        return -1;
    }

    conf->control_url_log = strdup(conf->control_url);
    if (conf->control_url_log == NULL) {
        snprintf(err, err_size, "out of memory while reading settings");
        return -1;
    }

    return 0;
}


/*
 * Checks url as a provider's base URL. The API path is appended to it, so a
 * query or fragment would swallow the path. curl 7.88 reads "http:///v1" as
 * host "v1", so an empty authority is rejected before curl parses the rest.
 */
int
cg_conf_base_url_valid(const char *url)
{
    const char  *rest;
    CURLU       *u;
    char        *host = NULL;
    int          ok;

    if (strncmp(url, "http://", 7) == 0) {
        rest = url + 7;

    } else if (strncmp(url, "https://", 8) == 0) {
        rest = url + 8;

    } else {
        return 0;
    }

    if (*rest == '\0' || *rest == '/' || strpbrk(rest, "?#") != NULL) {
        return 0;
    }

    u = curl_url();
    if (u == NULL) {
        return 0;
    }

    ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK
         && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK
         && host[0] != '\0';

    curl_free(host);
    curl_url_cleanup(u);

    return ok;
}


void
cg_conf_url_for_log(const char *url, char *out, size_t size)
{
    const char  *authority, *end, *at, *p;

    authority = strstr(url, "://");
    if (authority == NULL) {
        snprintf(out, size, "%s", url);
        return;
    }

    authority += 3;
    end = authority + strcspn(authority, "/");

    /* up to the last '@', in case the password contains an unescaped one */
    at = NULL;
    for (p = authority; p < end; p++) {
        if (*p == '@') {
            at = p;
        }
    }

    if (at == NULL) {
        snprintf(out, size, "%s", url);
        return;
    }

    snprintf(out, size, "%.*s***%s", (int) (authority - url), url, at);
}
