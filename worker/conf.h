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
    char              *database_url;
    cg_log_level_t     log_level;
    char              *base_url[CG_PROVIDER_COUNT];  /* no trailing slash */
    cg_provider_id_t   default_provider;
    char              *proxy;              /* NULL: no proxy, even if http_proxy and the like are set */
    long               connect_timeout_ms;
    long               request_timeout_ms;
    size_t             max_body_size;      /* bytes */
    int                log_batch;
    int                log_flush_ms;
    int                log_queue_max;
    char              *spool_path;
    int                db_connections;
    char              *sql_dir;

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

#endif
