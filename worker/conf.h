#ifndef CG_CONF_H
#define CG_CONF_H

#include <sys/types.h>

#include "log.h"
#include "provider.h"

/*
 * The worker's settings. They come from an optional env file of KEY=VALUE
 * lines, and the process environment overrides the file. Strings are owned
 * by the conf and freed by cg_conf_free().
 */
typedef struct {
    char              *socket_path;
    mode_t             socket_mode;
    gid_t              socket_group;       /* (gid_t) -1: the worker's own */
    char              *database_url;
    cg_log_level_t     log_level;
    char              *base_url[CG_PROVIDER_COUNT];  /* no trailing slash */
    cg_provider_id_t   default_provider;
    char              *proxy;              /* NULL: no proxy, even if http_proxy and the like are set */
    long               connect_timeout_ms;
    long               request_timeout_ms;
    long               provider_connections;  /* provider connections kept open for reuse */
    size_t             max_body_size;      /* bytes */
    int                log_batch;
    int                log_flush_ms;
    int                log_queue_max;
    char              *spool_path;
    int                db_connections;
    char              *sql_dir;
    int                retry_attempts;     /* provider tries per chat, the first included */
    long               retry_deadline_ms;  /* no retry starts later; at most request_timeout_ms */
    size_t             stream_buffer;      /* bytes a stream may have unsent before the provider is paused */
    int                stream_timeline;    /* 1: store chunk arrival times of streams */

    /*
     * The nginx module's control location, from CHATGATE_CONTROL_URL:
     * control_url is what curl requests and control_socket the unix socket
     * it connects to (NULL for TCP). Both NULL when the setting is unset, and
     * then no rule is pushed.
     */
    char              *control_url;
    char              *control_url_log;    /* control_url with its user info
                                              masked, for logs and errors */
    char              *control_socket;
    int                limits_sync_ms;     /* CHATGATE_LIMITS_SYNC_MS */

    /*
     * Admin secrets, kept apart on purpose: a leaked ADMIN_TOKEN (it travels
     * in headers) unlocks the admin API but no stored key. NULL when unset.
     * cg_conf_free() wipes them.
     */
    char              *admin_token;        /* ADMIN_TOKEN, at least 16 bytes */
    char              *kms_key;            /* ADMIN_KMS_KEY, parsed by the vault */
    char              *jwt_secret;         /* JWT_SECRET, at least 32 bytes */
    long               jwt_ttl_s;          /* CHATGATE_JWT_TTL, seconds */
} cg_conf_t;

/*
 * Loads settings: reads env_file (may be NULL) into the environment without
 * overriding variables that are already set, then reads and validates every
 * setting. Returns 0, or -1 with a message naming the setting and the value
 * in err.
 */
int cg_conf_load(cg_conf_t *conf, const char *env_file, char *err,
    size_t err_size);

void cg_conf_free(cg_conf_t *conf);

/*
 * Returns 1 when url is an http:// or https:// URL that curl parses, with a
 * host and without a query or fragment: what a provider's base URL needs.
 */
int cg_conf_base_url_valid(const char *url);

/*
 * Copies url into out for a log line, with the user info of the authority
 * shown as "***", because it may carry a password. The admin API shows a
 * stored key's base URL the same way.
 */
void cg_conf_url_for_log(const char *url, char *out, size_t size);


#endif
