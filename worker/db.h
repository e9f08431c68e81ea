#ifndef CG_DB_H
#define CG_DB_H

#include <event2/event.h>
#include <libpq-fe.h>

/*
 * PostgreSQL from inside the event loop: nonblocking libpq connections
 * watched by libevent, so a slow or absent database never stalls a chat.
 * Connections are opened from the loop once cg_db_new() returns, and reopened
 * with backoff after a failure.
 */

typedef struct cg_db_s  cg_db_t;

/*
 * Called once per query. On success res is the query's result (owned by the
 * db, valid only during the call) and error is NULL; on failure res may be
 * NULL and error says why, with no connection string in it. A server error
 * comes with its result, so PQresultErrorField() can read the SQLSTATE.
 * Callbacks run from the loop or from cg_db_free(), never inside
 * cg_db_query(), and must not call cg_db_free().
 */
typedef void (*cg_db_result_pt)(PGresult *res, const char *error, void *arg);

cg_db_t *cg_db_new(struct event_base *base, const char *conninfo,
    int connections);

/*
 * Opens a connection to conninfo with client_encoding UTF8, overriding the
 * connection string, PGCLIENTENCODING and the database's default. The
 * worker's text is UTF-8, and the server would convert it from another
 * client encoding into mojibake, or reject it. cg_db_connect_start() starts
 * a nonblocking connect to poll with PQconnectPoll(). cg_db_connect()
 * blocks, for the commands that run outside the event loop.
 */
PGconn *cg_db_connect_start(const char *conninfo);
PGconn *cg_db_connect(const char *conninfo);

/*
 * Checks that libpq can parse conninfo as cg_db_connect() reads it, which is
 * a postgresql:// URI, a keyword/value string or a database name. Returns 0,
 * or -1 with a message in err. libpq's own message quotes the part that it
 * rejected, which may be the password, so err never includes it.
 */
int cg_db_conninfo_check(const char *conninfo, char *err, size_t err_size);

/*
 * Queues a parameterized query. sql and the values are copied; a NULL value
 * is SQL NULL. Returns 0, or -1 when the queue is full (the callback is then
 * not called).
 */
int cg_db_query(cg_db_t *db, const char *sql, int nparams,
    const char *const *values, cg_db_result_pt cb, void *arg);

/*
 * Queues sql, a COPY ... FROM STDIN, with len bytes of rows in COPY's text
 * format to send once the server is ready for them. The rows are copied.
 * Returns 0, or -1 when the queue is full or memory is short (the callback
 * is then not called).
 */
int cg_db_copy(cg_db_t *db, const char *sql, const char *rows, size_t len,
    cg_db_result_pt cb, void *arg);

/* 1 while at least one connection is up, 0 after the last attempt failed. */
int cg_db_is_up(cg_db_t *db);

/* Closes connections; queued callbacks get error "shutting down". */
void cg_db_free(cg_db_t *db);

/*
 * Applies the numbered migrations in sql_dir that the database has not seen,
 * each in a transaction, recorded in schema_migrations. Blocking: for the
 * "migrate" command, not the event loop. Returns 0 or -1 (logged).
 */
int cg_db_migrate(const char *conninfo, const char *sql_dir);

#endif
