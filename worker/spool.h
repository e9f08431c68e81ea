#ifndef CG_SPOOL_H
#define CG_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "json.h"
#include "logwriter.h"

/*
 * The log writer's spool file and the text encodings it needs.
 *
 * A spool line is one chat_logs row: the format version "1", then the 18
 * fields of cg_log_row_t in declaration order, separated by tabs and ended
 * by a newline. Numbers are decimal (-1 for NULL). In strings a backslash,
 * tab, newline and carriage return are written as \\, \t, \n and \r, so a
 * line never contains a raw tab or newline of its own.
 */

#define CG_SPOOL_LINE_MAX  4096

/*
 * PostgreSQL array literals for unnest(): cg_pg_array_begin() starts one,
 * the _add_ calls append one element each, cg_pg_array_end() closes it.
 * A NULL text or a negative number becomes an SQL NULL element. Return 0,
 * or -1 when out of memory.
 */
int cg_pg_array_begin(cg_buf_t *buf);
int cg_pg_array_add_text(cg_buf_t *buf, const char *text);
int cg_pg_array_add_int(cg_buf_t *buf, long long value);
int cg_pg_array_add_bool(cg_buf_t *buf, int value);
int cg_pg_array_end(cg_buf_t *buf);

/*
 * Rows for COPY ... FROM STDIN in its text format: each _add_ call appends
 * one field and a tab, and cg_pg_copy_end_row() turns the last tab into the
 * row's newline. A NULL text or a negative number becomes \N (SQL NULL).
 * cg_pg_copy_add_time() writes microseconds since the epoch as a UTC
 * timestamp. Return 0, or -1 when out of memory.
 */
int cg_pg_copy_add_text(cg_buf_t *buf, const char *text);
int cg_pg_copy_add_int(cg_buf_t *buf, long long value);
int cg_pg_copy_add_bool(cg_buf_t *buf, int value);
int cg_pg_copy_add_time(cg_buf_t *buf, int64_t us);
void cg_pg_copy_end_row(cg_buf_t *buf);

/*
 * Encodes row as one spool line, newline included, into buf of size bytes.
 * Returns the line's length, or 0 when it does not fit.
 */
size_t cg_spool_encode(const cg_log_row_t *row, char *buf, size_t size);

/*
 * Decodes one spool line of len bytes (without its newline) into row.
 * Returns 0, or -1 when the line is malformed: wrong version or field
 * count, a bad escape, a number out of range or a string too long.
 */
int cg_spool_decode(const char *line, size_t len, cg_log_row_t *row);

/* An open spool file; the writer appends, the replay reads from an offset. */
typedef struct cg_spool_s  cg_spool_t;

/*
 * Opens or creates the spool file at path. A last line without its newline
 * (a write cut short by a crash) is cut off. Returns NULL on failure, with
 * errno set and the failure logged.
 */
cg_spool_t *cg_spool_open(const char *path);

/*
 * Appends n rows and fsyncs the file. On failure the file is cut back to
 * its former size, so it never contains half a batch. Returns 0 or -1
 * (logged).
 */
int cg_spool_append(cg_spool_t *spool, const cg_log_row_t *rows, int n);

/*
 * Reads up to max whole rows starting at byte offset. *next receives the
 * offset after the last line read and *bad the number of malformed lines
 * skipped. Returns the number of rows, 0 at the end, or -1 (logged).
 */
int cg_spool_read(cg_spool_t *spool, off_t offset, cg_log_row_t *rows,
    int max, off_t *next, int *bad);

off_t cg_spool_size(cg_spool_t *spool);

/*
 * Empties the file after a replay, and removes its replay offset file.
 * Returns 0 or -1 (logged).
 */
int cg_spool_truncate(cg_spool_t *spool);

/*
 * The replay offset, kept in "<path>.offset" so that a worker restarted in
 * the middle of a replay goes on where it stopped, and the rows it set
 * aside are not set aside again. The file contains the offset and a hash of
 * the line that ends there, so an offset left by a spool file that was
 * replaced or emptied meanwhile is not applied to the new rows. It is
 * written without fsync: after a power loss the replay may start earlier,
 * where ON CONFLICT DO NOTHING skips the rows stored already.
 *
 * cg_spool_load_offset() returns the saved offset, or 0 when there is none
 * or it does not match the line that ends there. It removes an offset file
 * that does not match (logged).
 * cg_spool_save_offset() returns 0, or -1 when offset is not the end of a
 * line of the file or the write failed (logged).
 */
off_t cg_spool_load_offset(cg_spool_t *spool);
int cg_spool_save_offset(cg_spool_t *spool, off_t offset);

const char *cg_spool_path(cg_spool_t *spool);

void cg_spool_close(cg_spool_t *spool);

#endif
