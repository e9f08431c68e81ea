/*
 * Spool line encoding, PostgreSQL array literals and UTF-8 sanitizing.
 */

#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "spool.h"

static const char  *hostile[] = {
    "",
    "plain",
    "quote \" and 'single'",
    "back\\slash\\",
    "\\t is not a tab",
    "new\nline\r\n",
    "tab\there",
    "comma, {brace} [bracket]",
    "NULL",
    "\\N",
    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
    "  leading and trailing spaces  ",
};

#define NHOSTILE  (sizeof(hostile) / sizeof(hostile[0]))


static void
fill_row(cg_log_row_t *row, const char *s, int i)
{
    cg_log_row_init(row);

    row->time_us = 1767225600123456LL + i;
    snprintf(row->request_id, sizeof(row->request_id), "%s", s);
    snprintf(row->client_addr, sizeof(row->client_addr), "%s", s);
    snprintf(row->key_id, sizeof(row->key_id), "byok");
    snprintf(row->provider, sizeof(row->provider), "%s", s);
    snprintf(row->model, sizeof(row->model), "%s", s);
    row->ok = i % 2;
    row->status = 200 + i;
    row->latency_ms = 1000 * i;
    row->prompt_tokens = i ? 2147483647L : -1;
    row->total_tokens = 42;
    snprintf(row->error_class, sizeof(row->error_class), "%s", s);
    snprintf(row->error_message, sizeof(row->error_message), "%s", s);
    row->stream = 1;
    row->chunks = i;
}


static void
test_round_trip(void)
{
    cg_log_row_t  row, back;
    char          line[CG_SPOOL_LINE_MAX];
    size_t        len, i;

    for (i = 0; i < NHOSTILE; i++) {
        fill_row(&row, hostile[i], (int) i);

        len = cg_spool_encode(&row, line, sizeof(line));
        ok(len > 0, "spool encode string %zu", i);
        ok(line[len - 1] == '\n', "spool line %zu ends in newline", i);
        ok(memchr(line, '\n', len - 1) == NULL,
           "spool line %zu has one newline", i);

        ok(cg_spool_decode(line, len - 1, &back) == 0,
           "spool decode string %zu", i);
        /* Both rows start from cg_log_row_init(), so padding matches. */
        ok(memcmp(&row, &back, sizeof(row)) == 0,
           "spool round trip row %zu", i);
        is_str(back.model, hostile[i], "spool round trip model %zu", i);
    }
}


static void
test_full_fields(void)
{
    cg_log_row_t  row, back;
    char          line[CG_SPOOL_LINE_MAX];
    size_t        len;

    cg_log_row_init(&row);
    memset(row.error_message, '\\', sizeof(row.error_message) - 1);
    memset(row.model, '\n', sizeof(row.model) - 1);

    len = cg_spool_encode(&row, line, sizeof(line));
    ok(len > 0, "spool encode longest escapes");
    ok(cg_spool_decode(line, len - 1, &back) == 0,
       "spool decode longest escapes");
    is_str(back.error_message, row.error_message, "spool full message back");
    is_str(back.model, row.model, "spool full model back");

    ok(cg_spool_encode(&row, line, 100) == 0, "spool encode too small");
}


static void
test_decode_rejects(void)
{
    static const char  *bad[] = {
        "",
        "2\t1\ta\tb\tc\td\te\t1\t200\t5\t-1\t-1\t-1\t\t\t0\t-1\t-1\t-1",
        "1\t1\ta\tb\tc\td\te\t1\t200\t5\t-1\t-1\t-1\t\t\t0\t-1\t-1",
        "1\t1\ta\tb\tc\td\te\t1\t200\t5\t-1\t-1\t-1\t\t\t0\t-1\t-1\t-1\t9",
        "1\tx\ta\tb\tc\td\te\t1\t200\t5\t-1\t-1\t-1\t\t\t0\t-1\t-1\t-1",
        "1\t1\ta\\q\tb\tc\td\te\t1\t200\t5\t-1\t-1\t-1\t\t\t0\t-1\t-1\t-1",
        "1\t1\ta\\\tb\tc\td\te\t1\t200\t5\t-1\t-1\t-1\t\t\t0\t-1\t-1\t-1",
        "1\t1\ta\tb\tc\td\te\t1\t99999999999\t5\t-1\t-1\t-1\t\t\t0\t-1\t-1\t-1",
        "1\t1\ta\tb\tc\td\te\t1\t\t5\t-1\t-1\t-1\t\t\t0\t-1\t-1\t-1",
    };
    static const char  good[] =
        "1\t1\ta\tb\tc\td\te\t1\t200\t5\t-1\t-1\t-1\t\t\t0\t-1\t-1\t-1";
    char               toolong[512];
    cg_log_row_t       row;
    size_t             i;

    ok(cg_spool_decode(good, strlen(good), &row) == 0, "spool decode minimal");
    is_int(row.status, 200, "spool decode status");
    is_int(row.prompt_tokens, -1, "spool decode null tokens");

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok(cg_spool_decode(bad[i], strlen(bad[i]), &row) == -1,
           "spool decode rejects bad line %zu", i);
    }

    memset(toolong, 'x', sizeof(toolong));
    memcpy(toolong, "1\t1\t", 4);
    ok(cg_spool_decode(toolong, sizeof(toolong), &row) == -1,
       "spool decode rejects long string");
}


static void
test_arrays(void)
{
    cg_buf_t  buf = { 0 };

    cg_pg_array_begin(&buf);
    cg_pg_array_end(&buf);
    is_str(buf.data, "{}", "array empty");

    cg_pg_array_begin(&buf);
    cg_pg_array_add_text(&buf, "a");
    cg_pg_array_add_text(&buf, NULL);
    cg_pg_array_add_text(&buf, "NULL");
    cg_pg_array_add_text(&buf, "");
    cg_pg_array_end(&buf);
    is_str(buf.data, "{\"a\",NULL,\"NULL\",\"\"}", "array text and null");

    cg_pg_array_begin(&buf);
    cg_pg_array_add_text(&buf, "say \"hi\", {x} \\ y\nz");
    cg_pg_array_end(&buf);
    is_str(buf.data, "{\"say \\\"hi\\\", {x} \\\\ y\nz\"}",
           "array text escapes");

    cg_pg_array_begin(&buf);
    cg_pg_array_add_int(&buf, 0);
    cg_pg_array_add_int(&buf, -1);
    cg_pg_array_add_int(&buf, 9223372036854775807LL);
    cg_pg_array_end(&buf);
    is_str(buf.data, "{0,NULL,9223372036854775807}", "array int and null");

    cg_pg_array_begin(&buf);
    cg_pg_array_add_bool(&buf, 1);
    cg_pg_array_add_bool(&buf, 0);
    cg_pg_array_end(&buf);
    is_str(buf.data, "{t,f}", "array bool");

    cg_buf_free(&buf);
}


static void
test_copy_rows(void)
{
    cg_buf_t  buf = { 0 };

    cg_pg_copy_add_text(&buf, "a");
    cg_pg_copy_add_text(&buf, NULL);
    cg_pg_copy_add_text(&buf, "");
    cg_pg_copy_add_text(&buf, "\\N");
    cg_pg_copy_end_row(&buf);
    is_str(buf.data, "a\t\\N\t\t\\\\N\n", "copy text, null and empty");

    buf.len = 0;
    cg_pg_copy_add_text(&buf, "tab\there\nnew \\ back\rcr \"q\" {x},y");
    cg_pg_copy_end_row(&buf);
    is_str(buf.data, "tab\\there\\nnew \\\\ back\\rcr \"q\" {x},y\n",
           "copy text escapes");

    buf.len = 0;
    cg_pg_copy_add_int(&buf, 0);
    cg_pg_copy_add_int(&buf, -1);
    cg_pg_copy_add_int(&buf, 9223372036854775807LL);
    cg_pg_copy_add_bool(&buf, 1);
    cg_pg_copy_add_bool(&buf, 0);
    cg_pg_copy_end_row(&buf);
    is_str(buf.data, "0\t\\N\t9223372036854775807\tt\tf\n",
           "copy int, null and bool");

    buf.len = 0;
    cg_pg_copy_add_time(&buf, 0);
    cg_pg_copy_add_time(&buf, 1796443200000007LL);
    cg_pg_copy_add_time(&buf, 1796443200999999LL);
    cg_pg_copy_add_time(&buf, 951782400123456LL);
    cg_pg_copy_add_time(&buf, -1);
    cg_pg_copy_end_row(&buf);
    is_str(buf.data, "1970-01-01 00:00:00.000000+00\t"
           "2026-12-05 04:00:00.000007+00\t"
           "2026-12-05 04:00:00.999999+00\t"
           "2000-02-29 00:00:00.123456+00\t\\N\n", "copy time");

    cg_buf_free(&buf);
}


/* Numbers in arrays read as snprintf("%lld") writes them. */
static void
test_arrays_int(void)
{
    static const long long  values[] = {
        0, 1, 9, 10, 99, 100, 101, 1000000, 1234567890, 4294967296LL,
        999999999999999999LL, 1000000000000000000LL, 9223372036854775806LL,
        9223372036854775807LL,
    };
    cg_buf_t  buf = { 0 };
    char      expected[32];
    size_t    i;

    for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        cg_buf_reset(&buf);
        cg_pg_array_begin(&buf);
        cg_pg_array_add_int(&buf, values[i]);
        cg_pg_array_end(&buf);

        snprintf(expected, sizeof(expected), "{%lld}", values[i]);
        is_str(buf.data, expected, "array int %lld", values[i]);
    }

    cg_buf_reset(&buf);
    cg_pg_array_begin(&buf);
    cg_pg_array_add_int(&buf, -9223372036854775807LL - 1);
    cg_pg_array_add_int(&buf, 7);
    cg_pg_array_end(&buf);
    is_str(buf.data, "{NULL,7}", "array int min is null");

    cg_buf_free(&buf);
}


static void
test_utf8(void)
{
    char  s[64];

    strcpy(s, "caf\xc3\xa9 \xf0\x9f\x98\x80");
    is_int(cg_utf8_sanitize(s, strlen(s)), 0, "utf8 valid kept");
    is_str(s, "caf\xc3\xa9 \xf0\x9f\x98\x80", "utf8 valid unchanged");

    strcpy(s, "a\xff" "b\xc3");
    is_int(cg_utf8_sanitize(s, strlen(s)), 2, "utf8 stray bytes counted");
    is_str(s, "a?b?", "utf8 stray bytes replaced");

    strcpy(s, "\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80");
    cg_utf8_sanitize(s, strlen(s));
    is_str(s, "??|???|????", "utf8 overlong surrogate and too high");
}


static void
test_printable_line(void)
{
    static const struct {
        const char  *text;
        int          printable;
        const char  *name;
    } cases[] = {
        { "team a", 1, "printable ascii" },
        { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 1, "printable non-ascii" },
        { "\xc2\xa0nbsp", 1, "printable U+00A0" },
        { "\xe2\x80\xa7", 1, "printable U+2027" },
        { "a\tb", 0, "printable tab" },
        { "a\nb", 0, "printable line feed" },
        { "a\x1b[2Jb", 0, "printable escape" },
        { "a\x7f", 0, "printable del" },
        { "a\xc2\x85" "b", 0, "printable U+0085" },
        { "a\xc2\x9b" "2J", 0, "printable U+009B" },
        { "a\xe2\x80\xa8" "b", 0, "printable U+2028" },
        { "a\xe2\x80\xa9", 0, "printable U+2029 at the end" },
    };
    size_t  i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        is_int(cg_utf8_printable_line(cases[i].text, strlen(cases[i].text)),
               cases[i].printable, "%s", cases[i].name);
    }

    is_int(cg_utf8_control_len("\n", 1), 1, "control length C0");
    is_int(cg_utf8_control_len("\xc2\x9b" "2J", 4), 2, "control length C1");
    is_int(cg_utf8_control_len("\xe2\x80\xa8", 3), 3, "control length U+2028");
    is_int(cg_utf8_control_len("\xe2\x80", 2), 0, "control length cut sequence");
    is_int(cg_utf8_control_len("a\n", 2), 0, "control length printable first");
}


static void
test_file(void)
{
    char           path[] = "/tmp/cg-spool-test-XXXXXX";
    cg_log_row_t   rows[3], back[8];
    cg_spool_t    *spool;
    off_t          next;
    int            fd, bad, n, i;

    fd = mkstemp(path);
    ok(fd != -1, "spool temp file");
    close(fd);

    spool = cg_spool_open(path);
    ok(spool != NULL, "spool open");

    for (i = 0; i < 3; i++) {
        fill_row(&rows[i], hostile[i + 4], i);
    }

    is_int(cg_spool_append(spool, rows, 3), 0, "spool append");
    n = cg_spool_read(spool, 0, back, 2, &next, &bad);
    is_int(n, 2, "spool read first two");
    is_str(back[1].model, hostile[5], "spool read second row");

    n = cg_spool_read(spool, next, back, 8, &next, &bad);
    is_int(n, 1, "spool read the rest");
    is_int(next, cg_spool_size(spool), "spool read reaches end");
    is_int(cg_spool_read(spool, next, back, 8, &next, &bad), 0,
           "spool read at end");
    cg_spool_close(spool);

    /* A torn last line, as a crash mid-append leaves it. */
    fd = open(path, O_WRONLY | O_APPEND);
    ok(write(fd, "1\t12\tpartial", 12) == 12, "spool write torn line");
    close(fd);

    spool = cg_spool_open(path);
    ok(spool != NULL, "spool reopen torn file");
    n = cg_spool_read(spool, 0, back, 8, &next, &bad);
    is_int(n, 3, "spool torn line cut off");
    is_int(bad, 0, "spool torn line not counted bad");

    /* A malformed line in the middle is skipped and counted. */
    fd = open(path, O_WRONLY | O_APPEND);
    ok(write(fd, "garbage\n", 8) == 8, "spool write garbage line");
    close(fd);
    cg_spool_append(spool, rows, 1);
    n = cg_spool_read(spool, 0, back, 8, &next, &bad);
    is_int(n, 4, "spool rows around garbage");
    is_int(bad, 1, "spool garbage counted");

    is_int(cg_spool_truncate(spool), 0, "spool truncate");
    is_int(cg_spool_size(spool), 0, "spool empty after truncate");

    cg_spool_close(spool);
    unlink(path);
}


static void
write_offset_file(const char *path, const char *text)
{
    FILE  *f;

    f = fopen(path, "w");
    ok(f != NULL && fputs(text, f) >= 0 && fclose(f) == 0,
       "offset file written");
}


/* The replay offset file: saved, loaded only after the same line. */
static void
test_offset(void)
{
    char           path[] = "/tmp/cg-spool-offset-XXXXXX", offset_path[64];
    char           victim[64], tmp_path[80], victim_text[8], text[32];
    cg_log_row_t   rows[3];
    cg_spool_t    *spool;
    off_t          next;
    cg_log_row_t   back[1];
    int            fd, bad, i;

    fd = mkstemp(path);
    ok(fd != -1, "offset temp file");
    close(fd);
    snprintf(offset_path, sizeof(offset_path), "%s.offset", path);

    spool = cg_spool_open(path);
    ok(spool != NULL, "offset spool open");
    is_int(cg_spool_load_offset(spool), 0, "offset none");

    for (i = 0; i < 3; i++) {
        fill_row(&rows[i], hostile[i], i);
    }
    cg_spool_append(spool, rows, 3);
    is_int(cg_spool_read(spool, 0, back, 1, &next, &bad), 1,
           "offset read one row");

    is_int(cg_spool_save_offset(spool, next), 0, "offset save");
    is_int(cg_spool_load_offset(spool), next, "offset load");

    is_int(cg_spool_save_offset(spool, next - 1), -1, "offset save mid-line");
    is_int(cg_spool_save_offset(spool, cg_spool_size(spool) + 1), -1,
           "offset save past the end");
    is_int(cg_spool_load_offset(spool), next, "offset kept after bad saves");

    write_offset_file(offset_path, "12x\n");
    is_int(cg_spool_load_offset(spool), 0, "offset garbage ignored");
    ok(access(offset_path, F_OK) != 0, "offset garbage removed");

    /* the offset alone, without the hash of its line */
    snprintf(text, sizeof(text), "%lld\n", (long long) next);
    write_offset_file(offset_path, text);
    is_int(cg_spool_load_offset(spool), 0, "offset without hash ignored");

    /* another file whose first line has the same length */
    is_int(cg_spool_save_offset(spool, next), 0, "offset save again");
    fd = open(path, O_WRONLY);
    ok(fd != -1 && pwrite(fd, "1\t9", 3, 0) == 3, "offset first line changed");
    close(fd);
    is_int(cg_spool_load_offset(spool), 0, "offset of another file ignored");
    ok(access(offset_path, F_OK) != 0, "offset of another file removed");

    /* a link at the temporary path is replaced, not written through */
    snprintf(victim, sizeof(victim), "%s.victim", path);
    snprintf(tmp_path, sizeof(tmp_path), "%s.tmp", offset_path);
    fd = open(victim, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ok(fd != -1 && write(fd, "keep\n", 5) == 5, "offset victim written");
    close(fd);
    ok(symlink(victim, tmp_path) == 0, "offset link at the temporary path");
    is_int(cg_spool_save_offset(spool, next), 0, "offset save over a link");
    is_int(cg_spool_load_offset(spool), next, "offset load after a link");
    fd = open(victim, O_RDONLY);
    ok(fd != -1 && read(fd, victim_text, sizeof(victim_text)) == 5
       && memcmp(victim_text, "keep\n", 5) == 0, "offset victim untouched");
    close(fd);
    unlink(victim);

    /* a folder at the temporary path fails every write, until it goes */
    ok(mkdir(tmp_path, 0700) == 0, "offset folder at the temporary path");
    is_int(cg_spool_save_offset(spool, next), -1, "offset save fails");
    is_int(cg_spool_save_offset(spool, next), -1, "offset save fails again");
    ok(rmdir(tmp_path) == 0, "offset folder removed");
    is_int(cg_spool_save_offset(spool, next), 0, "offset save works again");
    is_int(cg_spool_load_offset(spool), next, "offset load after failures");

    cg_spool_save_offset(spool, next);
    is_int(cg_spool_truncate(spool), 0, "offset spool truncate");
    ok(access(offset_path, F_OK) != 0, "offset file removed by truncate");
    is_int(cg_spool_load_offset(spool), 0, "offset none after truncate");

    cg_spool_close(spool);
    unlink(path);
}


int
main(void)
{
    test_round_trip();
    test_full_fields();
    test_decode_rejects();
    test_arrays();
    test_copy_rows();
    test_arrays_int();
    test_utf8();
    test_printable_line();
    test_file();
    test_offset();

    return done();
}
