/*
 * The request log writer: a queue of rows in blocks, batched INSERTs
 * through unnest() with one array parameter per column, and the spool file
 * for whatever the database does not take.
 */

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "heap.h"
#include "log.h"
#include "logwriter.h"
#include "spool.h"

#define CG_LW_COLUMNS        18
#define CG_LW_TICK_MS        1000            /* replay and retry check */
#define CG_LW_MAINTAIN_MS    (3600 * 1000)   /* partition upkeep */
#define CG_LW_PARTITION_DAYS "7"

/*
 * Bytes per queue block. The queue allocates a block when its last one is
 * full and frees a block once all its rows are taken. Rows are packed
 * (cg_lw_packed_t), so a successful chat with nginx's 32-character request
 * id and model "gpt-4o-mini" takes 144 bytes in place of the 664 of
 * cg_log_row_t. The largest possible row takes 672, so a block holds at
 * least 24 rows.
 */
#define CG_LW_BLOCK_SIZE     (16 * 1024)

/*
 * Blocks in use (1 MB) past which an emptied queue calls cg_heap_trim(), so
 * that the memory of a backlog (2.9 MB at 20000 rows of 144 bytes) goes
 * back to the system once PostgreSQL has caught up. Without it, glibc
 * returns only free memory at the top of the heap, and mimalloc returns
 * free pages only after a delay.
 */
#define CG_LW_TRIM_BLOCKS    64

/*
 * NULLIF turns the empty strings of cg_log_row_t into NULL where the column
 * allows it. status and latency_ms are NOT NULL, so an unknown (-1) one is
 * stored as 0.
 */
#define CG_LW_INSERT_SQL                                                     \
    "INSERT INTO chat_logs (created_at, request_id, client_addr, key_id,"    \
    " provider, model, ok, status, latency_ms, prompt_tokens,"              \
    " completion_tokens, total_tokens, error_class, error_message, stream," \
    " ttft_ms, stream_ms, chunks) "                                         \
    "SELECT timestamptz 'epoch' + t * interval '1 microsecond',"            \
    " NULLIF(rid, ''), ca, kid, prov, mdl, ok, COALESCE(st, 0),"            \
    " COALESCE(lat, 0), pt, ct, tt, NULLIF(ec, ''), NULLIF(em, ''), strm,"  \
    " ttft, sms, chk "                                                      \
    "FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],"         \
    " $5::text[], $6::text[], $7::boolean[], $8::integer[], $9::integer[]," \
    " $10::integer[], $11::integer[], $12::integer[], $13::text[],"         \
    " $14::text[], $15::boolean[], $16::integer[], $17::integer[],"         \
    " $18::integer[])"                                                      \
    " AS u(t, rid, ca, kid, prov, mdl, ok, st, lat, pt, ct, tt, ec, em,"    \
    " strm, ttft, sms, chk)"

/*
 * Rows from the queue are sent once, because a batch that fails goes to the
 * spool. So only a replayed batch can contain rows already stored, when its
 * first INSERT committed but the result was lost. ON CONFLICT DO NOTHING
 * skips those (same created_at and request_id), and a replay inserts with
 * it. A batch from the queue is sent with COPY, which cannot skip rows.
 * COPY spares PostgreSQL the clause (an index probe and a second WAL record
 * per row), the parse of 18 text arrays and unnest()'s tuplestore, and it
 * stores the rows in bulk. See "The request log in PostgreSQL" in
 * docs/performance.md for the measurements.
 * NOTE: rows with an empty request_id (stored as NULL) are not protected.
 */
static const char  cg_lw_replay_sql[] = CG_LW_INSERT_SQL
                                        " ON CONFLICT DO NOTHING";

static const char  cg_lw_copy_sql[] =
    "COPY chat_logs (created_at, request_id, client_addr, key_id, provider,"
    " model, ok, status, latency_ms, prompt_tokens, completion_tokens,"
    " total_tokens, error_class, error_message, stream, ttft_ms, stream_ms,"
    " chunks) FROM STDIN";

/*
 * The argument of an INSERT in flight. It outlives the writer when the
 * writer is freed first: lw is then NULL and the callback only frees it.
 */
typedef struct {
    struct cg_logwriter_s  *lw;
} cg_lw_ticket_t;

/*
 * A queued row: its numbers, then its seven strings as in cg_lw_strings,
 * each terminated by a NUL and without the unused rest of its array.
 */
typedef struct {
    int64_t   queued_ms;      /* when the row was added */
    int64_t   time_us;
    long      prompt_tokens;
    long      completion_tokens;
    long      total_tokens;
    int       ok;
    int       status;
    int       latency_ms;
    int       stream;
    int       ttft_ms;
    int       stream_ms;
    int       chunks;
    int       size;           /* bytes with the strings, a multiple of 8 */
} cg_lw_packed_t;

/* Offsets of the string fields of cg_log_row_t, in their packed order. */
static const size_t  cg_lw_strings[] = {
    offsetof(cg_log_row_t, request_id),
    offsetof(cg_log_row_t, client_addr),
    offsetof(cg_log_row_t, key_id),
    offsetof(cg_log_row_t, provider),
    offsetof(cg_log_row_t, model),
    offsetof(cg_log_row_t, error_class),
    offsetof(cg_log_row_t, error_message),
};

#define CG_LW_STRINGS  (sizeof(cg_lw_strings) / sizeof(cg_lw_strings[0]))

/* Array sizes of the same fields, in the same order. */
static const size_t  cg_lw_string_sizes[CG_LW_STRINGS] = {
    sizeof(((cg_log_row_t *) 0)->request_id),
    sizeof(((cg_log_row_t *) 0)->client_addr),
    sizeof(((cg_log_row_t *) 0)->key_id),
    sizeof(((cg_log_row_t *) 0)->provider),
    sizeof(((cg_log_row_t *) 0)->model),
    sizeof(((cg_log_row_t *) 0)->error_class),
    sizeof(((cg_log_row_t *) 0)->error_message),
};

/* Packed rows from byte offset first up to last, in the order they were added. */
typedef struct cg_lw_block_s  cg_lw_block_t;

struct cg_lw_block_s {
    cg_lw_block_t  *next;
    size_t          first;
    size_t          last;
    int64_t         data[CG_LW_BLOCK_SIZE / sizeof(int64_t)];
};

struct cg_logwriter_s {
    struct event_base   *base;
    cg_db_t             *db;
    int                  batch_max;
    int                  flush_ms;
    int                  queue_max;
    cg_spool_t          *spool;        /* NULL when it could not be opened */
    char                *spool_path;

    cg_lw_block_t       *head;         /* the oldest queued rows */
    cg_lw_block_t       *tail;         /* where the next row goes */
    cg_lw_block_t       *spare;        /* an empty block kept for reuse */
    int                  blocks;       /* allocated, the spare included */
    int                  trim;         /* set when blocks exceeded CG_LW_TRIM_BLOCKS */
    int                  count;        /* rows queued, at most queue_max */

    cg_log_row_t        *batch;        /* batch_max rows: the one in flight */
    int                  batch_n;
    int                  batch_from_spool;
    off_t                batch_next;   /* spool offset after the batch */
    cg_lw_ticket_t      *ticket;       /* non-NULL while a batch is in flight */
    cg_buf_t             arrays[CG_LW_COLUMNS];  /* a replayed batch */
    cg_buf_t             copy;         /* a batch from the queue, COPY rows */

    int                  spooling;     /* rows were spooled since it was empty */
    long                 spooled;      /* rows spooled since it was empty */
    off_t                replay_offset;
    long                 replayed;     /* rows replayed since the spool was empty */
    int64_t              replay_after_ms;
    int                  replay_failing;
    int                  split_rows;   /* replay batch size below split_end */
    off_t                split_end;    /* end of a rejected batch being split */

    struct event        *flush_timer;
    struct event        *tick;
    struct event        *maintain;
    struct event        *drained;

    int                  draining;
    void               (*drain_done)(void *arg);
    void                *drain_arg;
};

static void cg_lw_pump(cg_logwriter_t *lw);


static int64_t
cg_lw_now_ms(void)
{
    struct timeval  tv;

    gettimeofday(&tv, NULL);

    return (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;
}


void
cg_log_row_init(cg_log_row_t *row)
{
    memset(row, 0, sizeof(cg_log_row_t));

    row->time_us = -1;
    row->ok = -1;
    row->status = -1;
    row->latency_ms = -1;
    row->prompt_tokens = -1;
    row->completion_tokens = -1;
    row->total_tokens = -1;
    row->stream = -1;
    row->ttft_ms = -1;
    row->stream_ms = -1;
    row->chunks = -1;
}


/*
 * Terminates and UTF-8-sanitizes the string fields in place, and stores
 * their lengths in len, in the order of cg_lw_strings. Sanitizing replaces
 * bytes one for one, so the lengths stay.
 */
static void
cg_lw_clean_row(cg_log_row_t *row, size_t *len)
{
    struct timeval   tv;
    char            *field;
    size_t           i;

    if (row->time_us <= 0) {
        gettimeofday(&tv, NULL);
        row->time_us = (int64_t) tv.tv_sec * 1000000 + tv.tv_usec;
    }

    for (i = 0; i < CG_LW_STRINGS; i++) {
        field = (char *) row + cg_lw_strings[i];
        field[cg_lw_string_sizes[i] - 1] = '\0';
        len[i] = strlen(field);
        cg_utf8_sanitize(field, len[i]);
    }
}


/* Appends rows to the spool file; a failure loses them, loudly. */
static void
cg_lw_spool(cg_logwriter_t *lw, const cg_log_row_t *rows, int n)
{
    if (n == 0) {
        return;
    }

    if (lw->spool != NULL && cg_spool_append(lw->spool, rows, n) == 0) {
        lw->spooled += n;

        if (!lw->spooling) {
            lw->spooling = 1;
            cg_log_warn(NULL, "spooling log rows to \"%s\" until the "
                        "database takes them", lw->spool_path);
        }

        cg_log_debug(NULL, "spooled %d log rows, %ld in all", n, lw->spooled);
        return;
    }

    cg_log_error(NULL, "%d log rows lost: the spool file \"%s\" is not "
                 "writable", n, lw->spool_path);
}


static cg_lw_packed_t *
cg_lw_packed_at(cg_lw_block_t *b, size_t offset)
{
    return (cg_lw_packed_t *) ((char *) b->data + offset);
}


/* Returns the bytes that a row with strings of lengths len takes packed. */
static size_t
cg_lw_packed_size(const size_t *len)
{
    size_t  i, size = sizeof(cg_lw_packed_t);

    for (i = 0; i < CG_LW_STRINGS; i++) {
        size += len[i] + 1;
    }

    return (size + 7) & ~(size_t) 7;
}


/*
 * Appends row, already cleaned, to b, which has room for size bytes. len
 * contains the lengths of its strings.
 */
static void
cg_lw_pack(cg_lw_block_t *b, const cg_log_row_t *row, const size_t *len,
    size_t size)
{
    cg_lw_packed_t  *p = cg_lw_packed_at(b, b->last);
    const char      *field;
    char            *s;
    size_t           i;

    p->queued_ms = cg_lw_now_ms();
    p->time_us = row->time_us;
    p->prompt_tokens = row->prompt_tokens;
    p->completion_tokens = row->completion_tokens;
    p->total_tokens = row->total_tokens;
    p->ok = row->ok;
    p->status = row->status;
    p->latency_ms = row->latency_ms;
    p->stream = row->stream;
    p->ttft_ms = row->ttft_ms;
    p->stream_ms = row->stream_ms;
    p->chunks = row->chunks;
    p->size = (int) size;

    s = (char *) (p + 1);
    for (i = 0; i < CG_LW_STRINGS; i++) {
        field = (const char *) row + cg_lw_strings[i];
        memcpy(s, field, len[i] + 1);
        s += len[i] + 1;
    }

    b->last += size;
}


/* Copies the packed row p into row. */
static void
cg_lw_unpack(const cg_lw_packed_t *p, cg_log_row_t *row)
{
    const char  *s;
    size_t       i, len;

    memset(row, 0, sizeof(cg_log_row_t));

    row->time_us = p->time_us;
    row->prompt_tokens = p->prompt_tokens;
    row->completion_tokens = p->completion_tokens;
    row->total_tokens = p->total_tokens;
    row->ok = p->ok;
    row->status = p->status;
    row->latency_ms = p->latency_ms;
    row->stream = p->stream;
    row->ttft_ms = p->ttft_ms;
    row->stream_ms = p->stream_ms;
    row->chunks = p->chunks;

    s = (const char *) (p + 1);
    for (i = 0; i < CG_LW_STRINGS; i++) {
        len = strlen(s) + 1;
        memcpy((char *) row + cg_lw_strings[i], s, len);
        s += len;
    }
}


/* Returns when the oldest queued row was added, in ms. count must be > 0. */
static int64_t
cg_lw_oldest_ms(cg_logwriter_t *lw)
{
    return cg_lw_packed_at(lw->head, lw->head->first)->queued_ms;
}


/* Returns a block with room for size bytes at the tail, or NULL when out of memory. */
static cg_lw_block_t *
cg_lw_tail_block(cg_logwriter_t *lw, size_t size)
{
    cg_lw_block_t  *b;

    if (lw->tail != NULL && CG_LW_BLOCK_SIZE - lw->tail->last >= size) {
        return lw->tail;
    }

    if (lw->spare != NULL) {
        b = lw->spare;
        lw->spare = NULL;

    } else {
        b = malloc(sizeof(cg_lw_block_t));
        if (b == NULL) {
            return NULL;
        }

        if (++lw->blocks > CG_LW_TRIM_BLOCKS) {
            lw->trim = 1;
        }
    }

    b->next = NULL;
    b->first = 0;
    b->last = 0;

    if (lw->tail != NULL) {
        lw->tail->next = b;
    } else {
        lw->head = b;
    }
    lw->tail = b;

    return b;
}


/* Unlinks the empty head block and keeps it as the spare, or frees it. */
static void
cg_lw_release_head(cg_logwriter_t *lw)
{
    cg_lw_block_t  *b = lw->head;

    lw->head = b->next;
    if (lw->head == NULL) {
        lw->tail = NULL;
    }

    if (lw->spare == NULL) {
        lw->spare = b;
    } else {
        free(b);
        lw->blocks--;
    }

    if (lw->head == NULL && lw->trim) {
        lw->trim = 0;
        cg_heap_trim();
    }
}


/* Moves up to max of the oldest queued rows into rows; returns how many. */
static int
cg_lw_take(cg_logwriter_t *lw, cg_log_row_t *rows, int max)
{
    cg_lw_block_t   *b;
    cg_lw_packed_t  *p;
    int              n = 0;

    while (n < max && lw->count > 0) {
        b = lw->head;
        p = cg_lw_packed_at(b, b->first);
        cg_lw_unpack(p, &rows[n++]);
        b->first += p->size;
        lw->count--;

        if (b->first == b->last) {
            cg_lw_release_head(lw);
        }
    }

    return n;
}


/* Spools every queued row, one batch_max chunk per write. */
static void
cg_lw_spool_queue(cg_logwriter_t *lw, cg_log_row_t *scratch)
{
    int  n;

    while ((n = cg_lw_take(lw, scratch, lw->batch_max)) > 0) {
        cg_lw_spool(lw, scratch, n);
    }
}


void
cg_logwriter_add(cg_logwriter_t *lw, const cg_log_row_t *row)
{
    cg_log_row_t   *scratch, clean;
    cg_lw_block_t  *b;
    size_t          size, len[CG_LW_STRINGS];
    int             n;

    if (lw->count == lw->queue_max) {
        /* The database is slower than the traffic: spill the oldest rows. */
        scratch = malloc(sizeof(cg_log_row_t) * lw->batch_max);
        if (scratch == NULL) {
            cg_log_error(row->request_id, "log row lost: out of memory");
            return;
        }

        n = cg_lw_take(lw, scratch, lw->batch_max);
        cg_log_warn(NULL, "log queue full (%d rows), spooling %d",
                    lw->queue_max, n);
        cg_lw_spool(lw, scratch, n);
        free(scratch);
    }

    clean = *row;
    cg_lw_clean_row(&clean, len);
    size = cg_lw_packed_size(len);

    b = cg_lw_tail_block(lw, size);
    if (b == NULL) {
        cg_log_error(row->request_id, "log row lost: out of memory");
        return;
    }

    cg_lw_pack(b, &clean, len, size);
    lw->count++;

    if (lw->count >= lw->batch_max || lw->count == 1) {
        cg_lw_pump(lw);
    }
}


static const char *
cg_lw_null_if_empty(const char *s)
{
    return s[0] != '\0' ? s : NULL;
}


static long
cg_lw_clamp(long value)
{
    return value > INT_MAX ? INT_MAX : value;
}


/* Encodes lw->batch as one array literal per column. Returns 0 or -1. */
static int
cg_lw_encode_batch(cg_logwriter_t *lw)
{
    const cg_log_row_t  *r;
    cg_buf_t            *a = lw->arrays;
    int                  i, c, rc = 0;

    for (c = 0; c < CG_LW_COLUMNS; c++) {
        rc |= cg_pg_array_begin(&a[c]);
    }

    for (i = 0; i < lw->batch_n; i++) {
        r = &lw->batch[i];

        rc |= cg_pg_array_add_int(&a[0], r->time_us);
        rc |= cg_pg_array_add_text(&a[1], r->request_id);
        rc |= cg_pg_array_add_text(&a[2], r->client_addr);
        rc |= cg_pg_array_add_text(&a[3], r->key_id);
        rc |= cg_pg_array_add_text(&a[4], r->provider);
        rc |= cg_pg_array_add_text(&a[5], r->model);
        rc |= cg_pg_array_add_bool(&a[6], r->ok > 0);
        rc |= cg_pg_array_add_int(&a[7], r->status);
        rc |= cg_pg_array_add_int(&a[8], r->latency_ms);
        rc |= cg_pg_array_add_int(&a[9], cg_lw_clamp(r->prompt_tokens));
        rc |= cg_pg_array_add_int(&a[10], cg_lw_clamp(r->completion_tokens));
        rc |= cg_pg_array_add_int(&a[11], cg_lw_clamp(r->total_tokens));
        rc |= cg_pg_array_add_text(&a[12], r->error_class);
        rc |= cg_pg_array_add_text(&a[13], r->error_message);
        rc |= cg_pg_array_add_bool(&a[14], r->stream > 0);
        rc |= cg_pg_array_add_int(&a[15], r->ttft_ms);
        rc |= cg_pg_array_add_int(&a[16], r->stream_ms);
        rc |= cg_pg_array_add_int(&a[17], r->chunks);
    }

    for (c = 0; c < CG_LW_COLUMNS; c++) {
        rc |= cg_pg_array_end(&a[c]);
    }

    return rc ? -1 : 0;
}


/*
 * Encodes lw->batch as COPY rows and applies the INSERT's NULLIF and
 * COALESCE here. An empty request_id, error_class or error_message becomes
 * NULL, and an unknown (-1) status or latency_ms becomes 0. Returns 0 or -1.
 */
static int
cg_lw_encode_copy(cg_logwriter_t *lw)
{
    const cg_log_row_t  *r;
    cg_buf_t            *b = &lw->copy;
    int                  i, rc = 0;

    b->len = 0;

    for (i = 0; i < lw->batch_n; i++) {
        r = &lw->batch[i];

        rc |= cg_pg_copy_add_time(b, r->time_us);
        rc |= cg_pg_copy_add_text(b, cg_lw_null_if_empty(r->request_id));
        rc |= cg_pg_copy_add_text(b, r->client_addr);
        rc |= cg_pg_copy_add_text(b, r->key_id);
        rc |= cg_pg_copy_add_text(b, r->provider);
        rc |= cg_pg_copy_add_text(b, r->model);
        rc |= cg_pg_copy_add_bool(b, r->ok > 0);
        rc |= cg_pg_copy_add_int(b, r->status < 0 ? 0 : r->status);
        rc |= cg_pg_copy_add_int(b, r->latency_ms < 0 ? 0 : r->latency_ms);
        rc |= cg_pg_copy_add_int(b, cg_lw_clamp(r->prompt_tokens));
        rc |= cg_pg_copy_add_int(b, cg_lw_clamp(r->completion_tokens));
        rc |= cg_pg_copy_add_int(b, cg_lw_clamp(r->total_tokens));
        rc |= cg_pg_copy_add_text(b, cg_lw_null_if_empty(r->error_class));
        rc |= cg_pg_copy_add_text(b, cg_lw_null_if_empty(r->error_message));
        rc |= cg_pg_copy_add_bool(b, r->stream > 0);
        rc |= cg_pg_copy_add_int(b, r->ttft_ms);
        rc |= cg_pg_copy_add_int(b, r->stream_ms);
        rc |= cg_pg_copy_add_int(b, r->chunks);

        cg_pg_copy_end_row(b);
    }

    return rc ? -1 : 0;
}


/* Class 22 (data exception) and 23 (integrity): retrying cannot help. */
static int
cg_lw_is_rejection(PGresult *res)
{
    const char  *state;

    if (res == NULL) {
        return 0;
    }

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    return state != NULL
           && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0);
}


/*
 * Sets aside, for an operator, the one spooled row that the database
 * rejected. cg_lw_split() has cut its batch down to that row.
 */
static void
cg_lw_reject(cg_logwriter_t *lw, const char *error)
{
    char         path[4096];
    const char  *id;
    cg_spool_t  *rejected;

    snprintf(path, sizeof(path), "%s.rejected", lw->spool_path);
    id = lw->batch[0].request_id[0] != '\0' ? lw->batch[0].request_id : "-";

    rejected = cg_spool_open(path);
    if (rejected == NULL || cg_spool_append(rejected, lw->batch, lw->batch_n)) {
        cg_log_error(NULL, "spooled log row of request %s lost: rejected by "
                     "the database (%s) and \"%s\" is not writable", id,
                     error, path);
    } else {
        cg_log_error(NULL, "spooled log row of request %s rejected by the "
                     "database, set aside in \"%s\": %s", id, path, error);
    }

    cg_spool_close(rejected);
}


/*
 * Replays a rejected batch again in halves from the same offset, down to
 * single rows, so that the database stores the rows it accepts and only
 * the rejected ones go to the .rejected file.  Each accepted batch doubles
 * the next one, so one bad row in N costs about 2 log2(N) statements.
 * ON CONFLICT DO NOTHING skips a replayed row that was stored before.
 */
static void
cg_lw_split(cg_logwriter_t *lw, const char *error)
{
    if (lw->split_rows == 0) {
        cg_log_warn(NULL, "replay of %d spooled log rows rejected by the "
                    "database, replaying them in smaller batches to set "
                    "aside only the rejected rows: %s", lw->batch_n, error);
    }

    lw->split_rows = lw->batch_n / 2;

    if (lw->split_end < lw->batch_next) {
        lw->split_end = lw->batch_next;
    }
}


/* Called when the spool has been read up to batch_next. */
static void
cg_lw_replay_advance(cg_logwriter_t *lw)
{
    lw->replay_offset = lw->batch_next;

    if (lw->replay_offset >= lw->split_end) {
        lw->split_rows = 0;
        lw->split_end = 0;
    }

    if (lw->replay_offset < cg_spool_size(lw->spool)) {
        cg_log_debug(NULL, "replayed %ld spooled log rows so far",
                     lw->replayed);
        cg_spool_save_offset(lw->spool, lw->replay_offset);
        return;
    }

    if (cg_spool_truncate(lw->spool) == 0) {
        cg_log_info(NULL, "replayed %ld spooled log rows, \"%s\" emptied",
                    lw->replayed, lw->spool_path);
        lw->replay_offset = 0;
        lw->replayed = 0;
        lw->spooled = 0;
        lw->spooling = 0;
    }
}


static void
cg_lw_inserted(PGresult *res, const char *error, void *arg)
{
    cg_lw_ticket_t  *ticket = arg;
    cg_logwriter_t  *lw = ticket->lw;

    free(ticket);
    if (lw == NULL) {
        return;
    }

    lw->ticket = NULL;

    if (error == NULL) {
        if (lw->batch_from_spool) {
            lw->replay_failing = 0;
            lw->replayed += lw->batch_n;

            /* after a rejected row, the batches grow back */
            if (lw->split_rows > 0 && lw->split_rows < lw->batch_max / 2) {
                lw->split_rows *= 2;
            }

            cg_lw_replay_advance(lw);
        }

    } else if (!lw->batch_from_spool) {
        cg_log_error(NULL, "COPY of %d log rows failed, spooling them: %s",
                     lw->batch_n, error);
        cg_lw_spool(lw, lw->batch, lw->batch_n);

    } else if (cg_lw_is_rejection(res) && lw->batch_n > 1) {
        cg_lw_split(lw, error);

    } else if (cg_lw_is_rejection(res)) {
        cg_lw_reject(lw, error);
        cg_lw_replay_advance(lw);

    } else {
        /* Logged once per run of failures: it retries every tick. */
        if (!lw->replay_failing) {
            cg_log_warn(NULL, "replay of %d spooled log rows failed, "
                        "retrying every %d ms: %s",
                        lw->batch_n, CG_LW_TICK_MS, error);
        }
        lw->replay_failing = 1;
        lw->replay_after_ms = cg_lw_now_ms() + CG_LW_TICK_MS;
    }

    lw->batch_n = 0;
    cg_lw_pump(lw);
}


/* Sends lw->batch; returns 0, or -1 when the database did not take it. */
static int
cg_lw_send(cg_logwriter_t *lw)
{
    const char  *values[CG_LW_COLUMNS];
    int          c, rc;

    if (lw->batch_from_spool) {
        rc = cg_lw_encode_batch(lw);
    } else {
        rc = cg_lw_encode_copy(lw);
    }

    if (rc != 0) {
        cg_log_error(NULL, "encode of %d log rows failed: out of memory",
                     lw->batch_n);
        return -1;
    }

    lw->ticket = malloc(sizeof(cg_lw_ticket_t));
    if (lw->ticket == NULL) {
        return -1;
    }
    lw->ticket->lw = lw;

    if (lw->batch_from_spool) {
        for (c = 0; c < CG_LW_COLUMNS; c++) {
            values[c] = lw->arrays[c].data;
        }

        rc = cg_db_query(lw->db, cg_lw_replay_sql, CG_LW_COLUMNS, values,
                         cg_lw_inserted, lw->ticket);

    } else {
        rc = cg_db_copy(lw->db, cg_lw_copy_sql, lw->copy.data, lw->copy.len,
                        cg_lw_inserted, lw->ticket);
    }

    if (rc != 0) {
        free(lw->ticket);
        lw->ticket = NULL;
        return -1;
    }

    return 0;
}


/* Sends the next batch of the queue; spools it when it cannot be sent. */
static void
cg_lw_flush(cg_logwriter_t *lw)
{
    if (!cg_db_is_up(lw->db)) {
        cg_lw_spool_queue(lw, lw->batch);
        return;
    }

    lw->batch_n = cg_lw_take(lw, lw->batch, lw->batch_max);
    lw->batch_from_spool = 0;

    if (cg_lw_send(lw) != 0) {
        cg_lw_spool(lw, lw->batch, lw->batch_n);
        lw->batch_n = 0;
    }
}


/* Sends the next batch of the spool file; returns 1 if one went out. */
static int
cg_lw_replay(cg_logwriter_t *lw)
{
    int  n, max, bad;

    if (lw->spool == NULL || !cg_db_is_up(lw->db)
        || cg_lw_now_ms() < lw->replay_after_ms
        || lw->replay_offset >= cg_spool_size(lw->spool))
    {
        return 0;
    }

    if (lw->replay_offset == 0 && lw->replayed == 0) {
        cg_log_info(NULL, "replaying %lld bytes of spooled log rows from "
                    "\"%s\"", (long long) cg_spool_size(lw->spool),
                    lw->spool_path);
    }

    max = lw->split_rows > 0 ? lw->split_rows : lw->batch_max;

    n = cg_spool_read(lw->spool, lw->replay_offset, lw->batch, max,
                      &lw->batch_next, &bad);
    if (bad > 0) {
        cg_log_error(NULL, "skipped %d malformed lines in \"%s\" before "
                     "offset %lld", bad, lw->spool_path,
                     (long long) lw->batch_next);
    }

    if (n <= 0) {
        if (n == 0) {
            cg_lw_replay_advance(lw);
        }
        return 0;
    }

    lw->batch_n = n;
    lw->batch_from_spool = 1;

    if (cg_lw_send(lw) != 0) {
        lw->batch_n = 0;
        lw->replay_after_ms = cg_lw_now_ms() + CG_LW_TICK_MS;
        return 0;
    }

    return 1;
}


static void
cg_lw_arm_flush(cg_logwriter_t *lw)
{
    struct timeval  tv;
    int64_t         wait;

    wait = cg_lw_oldest_ms(lw) + lw->flush_ms - cg_lw_now_ms();
    if (wait < 0) {
        wait = 0;
    }

    tv.tv_sec = wait / 1000;
    tv.tv_usec = (wait % 1000) * 1000;
    evtimer_add(lw->flush_timer, &tv);
}


/*
 * Decides the next step, with at most one batch in flight: a due batch of
 * the queue first, then the spool, then a timer for the oldest queued row.
 */
static void
cg_lw_pump(cg_logwriter_t *lw)
{
    int  due;

    if (lw->ticket != NULL) {
        return;
    }

    due = lw->count > 0
          && (lw->draining || lw->count >= lw->batch_max
              || cg_lw_now_ms() - cg_lw_oldest_ms(lw) >= lw->flush_ms);

    if (due) {
        cg_lw_flush(lw);
        if (lw->ticket != NULL) {
            return;
        }
    }

    if (lw->draining) {
        if (lw->count == 0) {
            event_active(lw->drained, EV_TIMEOUT, 1);
        }
        return;
    }

    if (cg_lw_replay(lw)) {
        return;
    }

    if (lw->count > 0) {
        cg_lw_arm_flush(lw);
    }
}


static void
cg_lw_timer(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;

    cg_lw_pump(arg);
}


static void
cg_lw_maintained(PGresult *res, const char *error, void *arg)
{
    (void) arg;

    if (error != NULL) {
        cg_log_error(NULL, "create log partitions failed: %s", error);
    } else {
        cg_log_debug(NULL, "log partitions created: %s",
                     PQgetisnull(res, 0, 0) ? "0" : PQgetvalue(res, 0, 0));
    }
}


/*
 * Creates tomorrow's partitions before rows for them arrive.
 * TODO: retention (chatgate_drop_log_partitions) is left to the operator.
 */
static void
cg_lw_maintain(evutil_socket_t fd, short what, void *arg)
{
    cg_logwriter_t  *lw = arg;

    (void) fd;
    (void) what;

    if (cg_db_query(lw->db, "SELECT chatgate_ensure_log_partitions("
                    CG_LW_PARTITION_DAYS ")", 0, NULL, cg_lw_maintained, NULL)
        != 0)
    {
        cg_log_warn(NULL, "create log partitions skipped: database queue "
                    "full");
    }
}


static void
cg_lw_drained(evutil_socket_t fd, short what, void *arg)
{
    cg_logwriter_t  *lw = arg;
    void           (*done)(void *arg) = lw->drain_done;

    (void) fd;
    (void) what;

    lw->drain_done = NULL;
    if (done != NULL) {
        done(lw->drain_arg);
    }
}


cg_logwriter_t *
cg_logwriter_new(struct event_base *base, cg_db_t *db,
    const cg_logwriter_conf_t *conf)
{
    cg_logwriter_t  *lw;
    struct timeval   tick = { CG_LW_TICK_MS / 1000, 0 };
    struct timeval   maintain = { CG_LW_MAINTAIN_MS / 1000, 0 };

    lw = calloc(1, sizeof(cg_logwriter_t));
    if (lw == NULL) {
        return NULL;
    }

    lw->base = base;
    lw->db = db;
    lw->batch_max = conf->batch_max > 0 ? conf->batch_max : 100;
    lw->flush_ms = conf->flush_ms > 0 ? conf->flush_ms : 1000;
    lw->queue_max = conf->queue_max > lw->batch_max ? conf->queue_max
                                                    : lw->batch_max;

    lw->spool_path = strdup(conf->spool_path ? conf->spool_path : "");
    lw->batch = calloc(lw->batch_max, sizeof(cg_log_row_t));
    lw->flush_timer = evtimer_new(base, cg_lw_timer, lw);
    lw->tick = event_new(base, -1, EV_PERSIST, cg_lw_timer, lw);
    lw->maintain = event_new(base, -1, EV_PERSIST, cg_lw_maintain, lw);
    lw->drained = event_new(base, -1, 0, cg_lw_drained, lw);

    if (lw->spool_path == NULL || lw->batch == NULL || lw->flush_timer == NULL || lw->tick == NULL
        || lw->maintain == NULL || lw->drained == NULL)
    {
        cg_logwriter_free(lw);
        return NULL;
    }

    /* NOTE: without a spool file, rows are lost while the database is down. */
    if (lw->spool_path[0] != '\0') {
        lw->spool = cg_spool_open(lw->spool_path);
    }

    if (lw->spool != NULL) {
        lw->replay_offset = cg_spool_load_offset(lw->spool);

        if (lw->replay_offset > 0) {
            cg_log_info(NULL, "resuming the replay of \"%s\" at byte %lld "
                        "of %lld", lw->spool_path,
                        (long long) lw->replay_offset,
                        (long long) cg_spool_size(lw->spool));
        }
    }

    evtimer_add(lw->tick, &tick);
    evtimer_add(lw->maintain, &maintain);

    return lw;
}


void
cg_logwriter_drain(cg_logwriter_t *lw, void (*done)(void *arg), void *arg)
{
    lw->draining = 1;
    lw->drain_done = done;
    lw->drain_arg = arg;

    cg_lw_pump(lw);
}


/*
 * Spools what is still in memory, including a batch in flight: if that
 * INSERT commits after all, ON CONFLICT skips the replayed copy.
 */
void
cg_logwriter_free(cg_logwriter_t *lw)
{
    int  c;

    if (lw == NULL) {
        return;
    }

    if (lw->ticket != NULL) {
        lw->ticket->lw = NULL;
        if (!lw->batch_from_spool) {
            cg_lw_spool(lw, lw->batch, lw->batch_n);
        }
    }

    if (lw->batch != NULL) {
        cg_lw_spool_queue(lw, lw->batch);
    }

    if (lw->flush_timer != NULL) {
        event_free(lw->flush_timer);
    }
    if (lw->tick != NULL) {
        event_free(lw->tick);
    }
    if (lw->maintain != NULL) {
        event_free(lw->maintain);
    }
    if (lw->drained != NULL) {
        event_free(lw->drained);
    }

    for (c = 0; c < CG_LW_COLUMNS; c++) {
        cg_buf_free(&lw->arrays[c]);
    }
    cg_buf_free(&lw->copy);

    cg_spool_close(lw->spool);
    free(lw->spare);
    free(lw->batch);
    free(lw->spool_path);
    free(lw);
}
