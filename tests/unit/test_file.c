/* test_file.c — the file connector, the registry and the dead-letter writer: a temporary file
 * with good and bad lines decodes into rows with line origins, bad records reach the callback
 * with their reasons, and sinks and dead letters write exactly the expected text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vpq_codec.h"
#include "vpq_connector.h"

static vpq_column tele_cols[] = {
    {"device_id", VPQ_TYPE_STRING, true, false, false},
    {"ts", VPQ_TYPE_TIMESTAMP, false, false, false},
    {"soc", VPQ_TYPE_DOUBLE, false, false, false},
};
enum { DEVICE, TS, SOC, NCOLS };

typedef struct bad_record {
  char reason[256];
  int64_t line;
  char raw[256];
} bad_record;

typedef struct fx {
  char dir[64];
  vpq_arena arena;
  vpq_intern *intern;
  vpq_relation rel;
  vpq_plan_option option;
  vpq_batch *batch;
  vpq_origin origins[8];
  bad_record bad[8];
  int nbad;
  char err[512];
} fx;

static void on_bad(void *ctx, const char *reason, vpq_origin origin, const char *raw, size_t raw_len) {
  fx *f = ctx;
  assert_true(f->nbad < 8);
  bad_record *b = &f->bad[f->nbad++];
  snprintf(b->reason, sizeof b->reason, "%s", reason);
  snprintf(b->raw, sizeof b->raw, "%.*s", (int)raw_len, raw);
  b->line = origin.offset;
  assert_int_equal(origin.partition, -1);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/vpq_test_file_XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  vpq_arena_init(&f->arena);
  f->intern = vpq_intern_new();
  f->rel.name = "telemetry";
  f->rel.schema = (vpq_schema){tele_cols, NCOLS};
  f->rel.is_source = true;
  f->rel.source.connector = "file";
  f->rel.source.format = "json";
  f->rel.ts_col = TS;
  vpq_type types[NCOLS] = {VPQ_TYPE_STRING, VPQ_TYPE_TIMESTAMP, VPQ_TYPE_DOUBLE};
  f->batch = vpq_batch_new(&f->arena, NCOLS, types, 2);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  vpq_intern_free(f->intern);
  vpq_arena_free(&f->arena);
  free(f);
  return 0;
}

static char *path_in(fx *f, const char *name) {
  static char path[4][128];
  static int next;
  char *p = path[next++ % 4];
  snprintf(p, 128, "%s/%s", f->dir, name);
  return p;
}

static void write_file(const char *path, const char *text) {
  FILE *file = fopen(path, "w");
  assert_non_null(file);
  fputs(text, file);
  fclose(file);
}

/* Returns the file's text (malloc'ed). */
static char *read_file(const char *path) {
  FILE *file = fopen(path, "rb");
  assert_non_null(file);
  static char text[4096];
  size_t n = fread(text, 1, sizeof text - 1, file);
  text[n] = '\0';
  fclose(file);
  return strdup(text);
}

static const char *device_at(fx *f, int row) {
  return vpq_intern_text(f->intern, f->batch->cols[DEVICE].data[row].i, NULL);
}

/* ===== Sources ===== */

static void json_file_rows_origins_and_bad_records(void **state) {
  fx *f = *state;
  f->rel.source.path = path_in(f, "t.jsonl");
  write_file(f->rel.source.path, "{\"device_id\":\"b1\",\"ts\":1000,\"soc\":0.5,\"fw\":\"1\"}\n"
                                 "\n"
                                 "{\"device_id\":\"b2\",\"ts\":\"oops\",\"soc\":0.5}\n"
                                 "not json\r\n"
                                 "{\"device_id\":\"b3\",\"ts\":3000,\"soc\":0.25}\r\n"
                                 "   \n"
                                 "{\"device_id\":\"b4\",\"ts\":\"2024-01-01\"}");
  vpq_source *src = vpq_connector_open_source(&f->rel, f->intern, on_bad, f, f->err, sizeof f->err);
  assert_non_null(src);
  assert_true(src->bounded);
  bool done = true;
  assert_true(src->vt->read(src, f->batch, f->origins, &done));
  assert_false(done);
  assert_int_equal(f->batch->n, 2);
  assert_string_equal(device_at(f, 0), "b1");
  assert_int_equal(f->batch->cols[TS].data[0].i, 1000);
  assert_true(f->batch->cols[SOC].data[0].d == 0.5);
  assert_string_equal(device_at(f, 1), "b3");
  assert_int_equal(f->origins[0].partition, -1);
  assert_int_equal(f->origins[0].offset, 1);
  assert_int_equal(f->origins[1].offset, 5);
  char where[64];
  src->vt->format_origin(src, f->origins[1], where, sizeof where);
  assert_string_equal(where, "t.jsonl:5");

  assert_int_equal(f->nbad, 2);
  assert_string_equal(f->bad[0].reason, "invalid timestamp: field `ts`: \"oops\" is not an ISO-8601 time");
  assert_int_equal(f->bad[0].line, 3);
  assert_string_equal(f->bad[0].raw, "{\"device_id\":\"b2\",\"ts\":\"oops\",\"soc\":0.5}");
  assert_string_equal(f->bad[1].reason, "invalid JSON: unexpected 'n' at byte 0");
  assert_int_equal(f->bad[1].line, 4);
  assert_string_equal(f->bad[1].raw, "not json");

  assert_true(src->vt->read(src, f->batch, f->origins, &done));
  assert_int_equal(f->batch->n, 1);
  assert_string_equal(device_at(f, 0), "b4");
  assert_int_equal(f->batch->cols[TS].data[0].i, 1704067200000);
  assert_true(f->batch->cols[SOC].null[0]);
  assert_int_equal(f->origins[0].offset, 7);
  assert_false(src->vt->read(src, f->batch, f->origins, &done));
  assert_true(done);
  assert_int_equal(f->batch->n, 0);
  src->vt->close(src);
}

static void csv_file_with_header_and_multiline_field(void **state) {
  fx *f = *state;
  f->rel.source.path = path_in(f, "t.csv");
  f->rel.source.format = "csv";
  write_file(f->rel.source.path, "soc,device_id,ts\r\n"
                                 "0.5,\"multi\nline\",1000\r\n"
                                 "0.25,b2\n"
                                 "\n"
                                 ",\"b,3\",2024-01-01T00:00:00Z\n");
  vpq_source *src = vpq_connector_open_source(&f->rel, f->intern, on_bad, f, f->err, sizeof f->err);
  assert_non_null(src);
  bool done;
  assert_true(src->vt->read(src, f->batch, f->origins, &done));
  assert_int_equal(f->batch->n, 2);
  assert_string_equal(device_at(f, 0), "multi\nline");
  assert_int_equal(f->origins[0].offset, 2);
  assert_string_equal(device_at(f, 1), "b,3");
  assert_true(f->batch->cols[SOC].null[1]);
  assert_int_equal(f->batch->cols[TS].data[1].i, 1704067200000);
  assert_int_equal(f->origins[1].offset, 6);
  assert_int_equal(f->nbad, 1);
  assert_string_equal(f->bad[0].reason, "wrong field count: expected 3 fields, got 2");
  assert_int_equal(f->bad[0].line, 4);
  assert_false(src->vt->read(src, f->batch, f->origins, &done));
  assert_true(done);
  src->vt->close(src);
}

/* Quotes frame CSV records as the decoder reads them: a quote inside an unquoted field (or
 * after a closing quote) is text, so it does not join the lines after it into one record. */
static void csv_stray_quotes_stay_in_their_record(void **state) {
  fx *f = *state;
  f->rel.source.path = path_in(f, "q.csv");
  f->rel.source.format = "csv";
  write_file(f->rel.source.path, "device_id,ts,soc\n"
                                 "b\"1,1000,0.5\n"
                                 "\"b\"\"2\",2000,\n"
                                 "\"b3\"x\"y,3000,0.25\n"
                                 "\"b4\nstill b4\",4000,0.75\n"
                                 "b5,5000,1\n");
  vpq_source *src = vpq_connector_open_source(&f->rel, f->intern, on_bad, f, f->err, sizeof f->err);
  assert_non_null(src);
  const char *devices[] = {"b\"1", "b\"2", "b3x\"y", "b4\nstill b4", "b5"};
  const int64_t lines[] = {2, 3, 4, 5, 7};
  int rows = 0;
  bool done = false;
  while (!done) {
    if (!src->vt->read(src, f->batch, f->origins, &done)) continue;
    for (int i = 0; i < f->batch->n; i++, rows++) {
      assert_true(rows < 5);
      assert_string_equal(device_at(f, i), devices[rows]);
      assert_int_equal(f->origins[i].offset, lines[rows]);
      assert_int_equal(f->batch->cols[TS].data[i].i, 1000 * (rows + 1));
    }
  }
  assert_int_equal(rows, 5);
  assert_int_equal(f->nbad, 0);
  src->vt->close(src);
}

static void open_errors(void **state) {
  fx *f = *state;
  f->rel.source.path = path_in(f, "nope.jsonl");
  assert_null(vpq_connector_open_source(&f->rel, f->intern, on_bad, f, f->err, sizeof f->err));
  char want[256];
  snprintf(want, sizeof want, "cannot open `%s`: No such file or directory", f->rel.source.path);
  assert_string_equal(f->err, want);

  f->rel.source.path = path_in(f, "bad.csv");
  f->rel.source.format = "csv";
  write_file(f->rel.source.path, "a,b\n1,2\n");
  assert_null(vpq_connector_open_source(&f->rel, f->intern, on_bad, f, f->err, sizeof f->err));
  snprintf(want, sizeof want, "bad CSV header in `%s`: the header `a,b` names none of the columns",
           f->rel.source.path);
  assert_string_equal(f->err, want);
  write_file(f->rel.source.path, "device_id,time,soc\nb1,1000,0.5\n");
  assert_null(vpq_connector_open_source(&f->rel, f->intern, on_bad, f, f->err, sizeof f->err));
  snprintf(want, sizeof want, "bad CSV header in `%s`: the header has no column `ts` (the `timestamp` column)",
           f->rel.source.path);
  assert_string_equal(f->err, want);
  write_file(f->rel.source.path, "ts,device_id\n1000,b1\n");
  assert_null(vpq_connector_open_source(&f->rel, f->intern, on_bad, f, f->err, sizeof f->err));
  snprintf(want, sizeof want, "bad CSV header in `%s`: the header has no column `soc` (a declared column)",
           f->rel.source.path);
  assert_string_equal(f->err, want);

  f->rel.source.connector = "xyz";
  assert_null(vpq_connector_open_source(&f->rel, f->intern, on_bad, f, f->err, sizeof f->err));
  assert_string_equal(f->err, "connector `xyz` is not available (known: file, kafka, sim)");
  vpq_plan_connector conn = {.connector = "xyz", .format = "json", .path = "x"};
  assert_null(vpq_connector_open_sink(&conn, &f->rel.schema, f->intern, f->err, sizeof f->err));
  assert_string_equal(f->err, "connector `xyz` is not available (known: file, kafka, sim)");
  conn = (vpq_plan_connector){.connector = "file", .format = "xml", .path = "x"};
  assert_null(vpq_connector_open_sink(&conn, &f->rel.schema, f->intern, f->err, sizeof f->err));
  assert_string_equal(f->err, "format `xml` is not supported (known: json, csv)");
}

static void max_row_bytes_rejects_long_records(void **state) {
  fx *f = *state;
  f->rel.source.path = path_in(f, "big.jsonl");
  write_file(f->rel.source.path, "{\"device_id\":\"b1\"}\n{\"device_id\":\"a-much-longer-device-id\"}\n");
  f->option = (vpq_plan_option){.key = "max_row_bytes", .type = VPQ_TYPE_BIGINT, .value.i = 30};
  f->rel.source.options = (vpq_plan_options){&f->option, 1};
  vpq_source *src = vpq_connector_open_source(&f->rel, f->intern, on_bad, f, f->err, sizeof f->err);
  assert_non_null(src);
  bool done;
  assert_true(src->vt->read(src, f->batch, f->origins, &done));
  assert_int_equal(f->batch->n, 1);
  assert_int_equal(f->nbad, 1);
  assert_string_equal(f->bad[0].reason, "record too large: 39 bytes, the limit is 30");
  assert_int_equal(f->bad[0].line, 2);
  src->vt->close(src);
}

/* ===== Sinks and dead letters ===== */

/* Decodes two rows (one with NULLs) into f->batch. */
static void two_rows(fx *f) {
  vpq_decoder *dec = vpq_decoder_new(VPQ_FORMAT_JSON, &f->rel.schema, f->intern);
  const char *rows[] = {"{\"device_id\":\"b,1\",\"ts\":1000,\"soc\":0.1}", "{\"device_id\":\"b\\\"2\"}"};
  for (int i = 0; i < 2; i++) assert_true(vpq_decoder_row(dec, rows[i], strlen(rows[i]), f->batch, i, f->err, sizeof f->err));
  f->batch->n = 2;
  vpq_decoder_free(dec);
}

static void file_sinks_write_exact_text(void **state) {
  fx *f = *state;
  two_rows(f);
  int rows[] = {0, 1, 0};
  vpq_plan_connector conn = {.connector = "file", .format = "json", .path = path_in(f, "out/sub/o.jsonl")};
  vpq_sink *sink = vpq_connector_open_sink(&conn, &f->rel.schema, f->intern, f->err, sizeof f->err);
  assert_non_null(sink);
  assert_true(sink->vt->write(sink, f->batch, rows, 3, f->err, sizeof f->err));
  assert_true(sink->vt->flush(sink, f->err, sizeof f->err));
  sink->vt->close(sink);
  char *text = read_file(conn.path);
  assert_string_equal(text, "{\"device_id\":\"b,1\",\"ts\":1000,\"soc\":0.1}\n"
                            "{\"device_id\":\"b\\\"2\",\"ts\":null,\"soc\":null}\n"
                            "{\"device_id\":\"b,1\",\"ts\":1000,\"soc\":0.1}\n");
  free(text);

  conn = (vpq_plan_connector){.connector = "file", .format = "csv", .path = path_in(f, "o.csv")};
  sink = vpq_connector_open_sink(&conn, &f->rel.schema, f->intern, f->err, sizeof f->err);
  assert_non_null(sink);
  assert_true(sink->vt->write(sink, f->batch, rows, 2, f->err, sizeof f->err));
  sink->vt->close(sink);
  text = read_file(conn.path);
  assert_string_equal(text, "device_id,ts,soc\n\"b,1\",1000,0.1\n\"b\"\"2\",,\n");
  free(text);
}

static void stdout_sink_writes_json_lines(void **state) {
  fx *f = *state;
  two_rows(f);
  char *path = path_in(f, "stdout.txt");
  fflush(stdout);
  int saved = dup(STDOUT_FILENO);
  FILE *capture = fopen(path, "w");
  assert_non_null(capture);
  dup2(fileno(capture), STDOUT_FILENO);
  vpq_sink *sink = vpq_connector_open_stdout(&f->rel.schema, f->intern);
  int rows[] = {1};
  bool ok = sink->vt->write(sink, f->batch, rows, 1, f->err, sizeof f->err);
  fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  fclose(capture);
  sink->vt->close(sink);
  assert_true(ok);
  char *text = read_file(path);
  assert_string_equal(text, "{\"device_id\":\"b\\\"2\",\"ts\":null,\"soc\":null}\n");
  free(text);
}

static void dead_letters_write_exact_text(void **state) {
  fx *f = *state;
  two_rows(f);
  char *path = path_in(f, "dl/dead.jsonl");
  vpq_dead_letter *dl = vpq_dead_letter_open(path, false, f->err, sizeof f->err);
  assert_non_null(dl);
  vpq_dead_letter_raw(dl, (vpq_origin){-1, 4}, "invalid JSON: unexpected end of input", "t.jsonl:4", "{\"a\":", 5);
  vpq_dead_letter_raw(dl, (vpq_origin){-1, 5}, "type mismatch: field `soc`: expected DOUBLE, got string \"x\"", "t.jsonl:5",
                      "{\"soc\":\"x\"}\xff", 12);
  vpq_dead_letter_raw(dl, (vpq_origin){-1, 6}, "unreadable", "vpp.telemetry/3/1041", "", 0);
  vpq_dead_letter_row(dl, (vpq_origin){-1, 9}, "late", "t.jsonl:9", &f->rel.schema, f->batch, 0, f->intern);
  vpq_dead_letter_close(dl);
  char *text = read_file(path);
  assert_string_equal(text,
                      "{\"reason\":\"invalid JSON\",\"detail\":\"unexpected end of input\",\"origin\":\"t.jsonl:4\","
                      "\"raw\":\"{\\\"a\\\":\"}\n"
                      "{\"reason\":\"type mismatch\",\"detail\":\"field `soc`: expected DOUBLE, got string \\\"x\\\"\","
                      "\"origin\":\"t.jsonl:5\",\"raw\":\"{\\\"soc\\\":\\\"x\\\"}\\u00ff\"}\n"
                      "{\"reason\":\"unreadable\",\"origin\":\"vpp.telemetry/3/1041\",\"raw\":\"\"}\n"
                      "{\"reason\":\"late\",\"origin\":\"t.jsonl:9\",\"row\":{\"device_id\":\"b,1\",\"ts\":1000,\"soc\":0.1}}\n");
  free(text);
  assert_null(vpq_dead_letter_open("/proc/vpq-no/such/dir/x", false, f->err, sizeof f->err));
}

/* A row late for two queries is one dead letter, also when the second finds it after the first's
 * line was written (a query that reads the row back from a repartition topic); the same row late
 * at another record, or seen differently (other columns), is another. */
static void dead_letters_write_a_row_once(void **state) {
  fx *f = *state;
  two_rows(f);
  char *path = path_in(f, "once.jsonl");
  vpq_dead_letter *dl = vpq_dead_letter_open(path, false, f->err, sizeof f->err);
  assert_non_null(dl);
  assert_true(vpq_dead_letter_row(dl, (vpq_origin){1, 9}, "late", "t/1/9", &f->rel.schema, f->batch, 0, f->intern));
  assert_false(vpq_dead_letter_row(dl, (vpq_origin){1, 9}, "late", "t/1/9", &f->rel.schema, f->batch, 0, f->intern));
  vpq_dead_letter_flush(dl);
  assert_false(vpq_dead_letter_row(dl, (vpq_origin){1, 9}, "late", "t/1/9", &f->rel.schema, f->batch, 0, f->intern));
  assert_true(vpq_dead_letter_row(dl, (vpq_origin){1, 10}, "late", "t/1/10", &f->rel.schema, f->batch, 0, f->intern));
  assert_true(vpq_dead_letter_row(dl, (vpq_origin){1, 9}, "late", "t/1/9", &f->rel.schema, f->batch, 1, f->intern));
  vpq_dead_letter_close(dl);
  char *text = read_file(path);
  assert_string_equal(text,
                      "{\"reason\":\"late\",\"origin\":\"t/1/9\",\"row\":{\"device_id\":\"b,1\",\"ts\":1000,\"soc\":0.1}}\n"
                      "{\"reason\":\"late\",\"origin\":\"t/1/9\",\"row\":{\"device_id\":\"b\\\"2\",\"ts\":null,\"soc\":null}}\n"
                      "{\"reason\":\"late\",\"origin\":\"t/1/10\",\"row\":{\"device_id\":\"b,1\",\"ts\":1000,\"soc\":0.1}}\n");
  free(text);
}

/* At a checkpoint, the dead letters of records read but not processed yet (at or after the
 * first unread row of their partition) stay held, as a restore reads those again; the others
 * are written in offset order. */
static void dead_letters_hold_unread_at_checkpoint(void **state) {
  fx *f = *state;
  char *path = path_in(f, "ck.jsonl");
  vpq_dead_letter *dl = vpq_dead_letter_open(path, false, f->err, sizeof f->err);
  assert_non_null(dl);
  vpq_dead_letter_raw(dl, (vpq_origin){0, 9}, "unreadable", "t/0/9", "c", 1);
  vpq_dead_letter_raw(dl, (vpq_origin){1, 3}, "unreadable", "t/1/3", "b", 1);
  vpq_dead_letter_raw(dl, (vpq_origin){0, 5}, "unreadable", "t/0/5", "a", 1);
  vpq_dead_letter_raw(dl, (vpq_origin){2, 7}, "unreadable", "t/2/7", "d", 1);
  const vpq_origin unread[] = {{1, 4}, {0, 8}, {1, 2}, {0, 11}};
  vpq_dead_letter_flush_read(dl, unread, 4);
  char *text = read_file(path);
  assert_string_equal(text, "{\"reason\":\"unreadable\",\"origin\":\"t/0/5\",\"raw\":\"a\"}\n"
                            "{\"reason\":\"unreadable\",\"origin\":\"t/2/7\",\"raw\":\"d\"}\n");
  free(text);
  vpq_dead_letter_close(dl);
  text = read_file(path);
  assert_string_equal(text, "{\"reason\":\"unreadable\",\"origin\":\"t/0/5\",\"raw\":\"a\"}\n"
                            "{\"reason\":\"unreadable\",\"origin\":\"t/2/7\",\"raw\":\"d\"}\n"
                            "{\"reason\":\"unreadable\",\"origin\":\"t/1/3\",\"raw\":\"b\"}\n"
                            "{\"reason\":\"unreadable\",\"origin\":\"t/0/9\",\"raw\":\"c\"}\n");
  free(text);
}

/* A record longer than VPQ_DEAD_LETTER_RAW_MAX keeps only its first bytes (never cut inside a
 * UTF-8 character, nor more than 3 bytes short in a run of continuation bytes) and its length. */
static void dead_letters_cut_huge_records(void **state) {
  fx *f = *state;
  enum { MAX = VPQ_DEAD_LETTER_RAW_MAX, LEN = MAX + 100 };
  char *raw = malloc(LEN);
  assert_non_null(raw);
  memset(raw, 'a', LEN);
  memcpy(raw + MAX - 1, "\xc3\xa9", 2); /* é across the cut */
  char *path = path_in(f, "huge.jsonl");
  vpq_dead_letter *dl = vpq_dead_letter_open(path, false, f->err, sizeof f->err);
  assert_non_null(dl);
  vpq_dead_letter_raw(dl, (vpq_origin){-1, 1}, "record too large: 65636 bytes, the limit is 100", "t.jsonl:1", raw, LEN);
  memset(raw, 0x80, LEN);
  vpq_dead_letter_raw(dl, (vpq_origin){-1, 2}, "invalid UTF-8: byte 0x80 at byte 0", "t.jsonl:2", raw, LEN);
  vpq_dead_letter_raw(dl, (vpq_origin){-1, 3}, "invalid JSON: unexpected byte 0x80 at byte 0", "t.jsonl:3", raw, MAX);
  vpq_dead_letter_close(dl);
  FILE *file = fopen(path, "r");
  assert_non_null(file);
  char *line = NULL;
  size_t cap = 0;
  const char *heads[] = {"{\"reason\":\"record too large\",\"detail\":\"65636 bytes, the limit is 100\","
                         "\"origin\":\"t.jsonl:1\",\"raw\":\"",
                         "{\"reason\":\"invalid UTF-8\",\"detail\":\"byte 0x80 at byte 0\",\"origin\":\"t.jsonl:2\",\"raw\":\"",
                         "{\"reason\":\"invalid JSON\",\"detail\":\"unexpected byte 0x80 at byte 0\",\"origin\":\"t.jsonl:3\","
                         "\"raw\":\""};
  const char *units[] = {"a", "\\u0080", "\\u0080"};
  const int kept[] = {MAX - 1, MAX - 3, MAX};
  const char *tails[] = {"\",\"raw_bytes\":65636}\n", "\",\"raw_bytes\":65636}\n", "\"}\n"};
  for (int i = 0; i < 3; i++) {
    assert_true(getline(&line, &cap, file) > 0);
    size_t head = strlen(heads[i]), unit = strlen(units[i]), tail = strlen(tails[i]);
    assert_int_equal(strlen(line), head + (size_t)kept[i] * unit + tail);
    assert_memory_equal(line, heads[i], head);
    for (int k = 0; k < kept[i]; k++) assert_memory_equal(line + head + (size_t)k * unit, units[i], unit);
    assert_string_equal(line + head + (size_t)kept[i] * unit, tails[i]);
  }
  assert_int_equal(getline(&line, &cap, file), -1);
  free(line);
  fclose(file);
  free(raw);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(json_file_rows_origins_and_bad_records, setup, teardown),
      cmocka_unit_test_setup_teardown(csv_file_with_header_and_multiline_field, setup, teardown),
      cmocka_unit_test_setup_teardown(csv_stray_quotes_stay_in_their_record, setup, teardown),
      cmocka_unit_test_setup_teardown(open_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(max_row_bytes_rejects_long_records, setup, teardown),
      cmocka_unit_test_setup_teardown(file_sinks_write_exact_text, setup, teardown),
      cmocka_unit_test_setup_teardown(stdout_sink_writes_json_lines, setup, teardown),
      cmocka_unit_test_setup_teardown(dead_letters_write_exact_text, setup, teardown),
      cmocka_unit_test_setup_teardown(dead_letters_cut_huge_records, setup, teardown),
      cmocka_unit_test_setup_teardown(dead_letters_write_a_row_once, setup, teardown),
      cmocka_unit_test_setup_teardown(dead_letters_hold_unread_at_checkpoint, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
