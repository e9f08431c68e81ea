#ifndef CG_LOGWRITER_H
#define CG_LOGWRITER_H

#include <stdint.h>
#include <event2/event.h>

#include "db.h"

/*
 * The request log: one chat_logs row per request that reaches the worker.
 * Rows are copied into a bounded queue and inserted in batches, off the
 * request path. While PostgreSQL is unreachable, batches are appended to a
 * spool file and replayed once it is back, so an outage loses no row.
 */

/* One chat_logs row. Numbers set to -1 are stored as NULL. */
typedef struct {
    int64_t   time_us;             /* request start, microseconds since the epoch */
    char      request_id[48];
    char      client_addr[64];
    char      key_id[48];          /* stored key uuid, or "byok" */
    char      provider[24];
    char      model[128];
    int       ok;
    int       status;              /* HTTP status sent to the client */
    int       latency_ms;
    long      prompt_tokens;
    long      completion_tokens;
    long      total_tokens;
    char      error_class[32];     /* "" when ok */
    char      error_message[256];  /* credentials already removed */
    int       stream;
    int       ttft_ms;             /* streams only: time to first token */
    int       stream_ms;           /* streams only: first to last chunk */
    int       chunks;              /* streams only */
} cg_log_row_t;

typedef struct {
    int          batch_max;        /* rows per INSERT */
    int          flush_ms;         /* maximum wait of a row for its batch, ms */
    int          queue_max;        /* rows held in memory; past it, rows spool */
    const char  *spool_path;
} cg_logwriter_conf_t;

typedef struct cg_logwriter_s  cg_logwriter_t;

cg_logwriter_t *cg_logwriter_new(struct event_base *base, cg_db_t *db,
    const cg_logwriter_conf_t *conf);

/* Sets every number field to -1 and every string to "". */
void cg_log_row_init(cg_log_row_t *row);

/*
 * Copies row into the queue; the request never fails on account of its row.
 * When the queue is full, the oldest rows are appended to the spool file
 * first, a synchronous write with fsync.
 */
void cg_logwriter_add(cg_logwriter_t *lw, const cg_log_row_t *row);

/*
 * Writes out what is queued (to the database, or the spool file), then calls
 * done(arg) from the event loop. For shutdown.
 */
void cg_logwriter_drain(cg_logwriter_t *lw, void (*done)(void *arg),
    void *arg);

void cg_logwriter_free(cg_logwriter_t *lw);

#endif
