/* test_engine.c — the engine end to end through its public API (vpq.h): rows pushed into an
 * in-process stream, results collected from subscriptions. Covers per-row watermarks (late
 * rows judged row by row), EMIT FINAL ordering, EMIT CHANGES, tables with retractions, and
 * SCHEDULE's plan and its log of plans. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vpq.h"

typedef struct collected {
  char text[8192];
} collected;

static void collect(void *ctx, const char *relation, const char *json, int diff) {
  collected *c = ctx;
  size_t len = strlen(c->text);
  snprintf(c->text + len, sizeof c->text - len, "%s%s %s\n", diff < 0 ? "-" : "+", relation, json);
}

static vpq_engine *load(const char *text) {
  vpq_engine *e = vpq_engine_new();
  assert_int_equal(vpq_engine_load(e, "test.vpq", text, stderr), 0);
  return e;
}

static void push(vpq_engine *e, const char *relation, const char *json) {
  char err[256];
  int rc = vpq_engine_push_json(e, relation, json, err, sizeof err);
  if (rc != 0) fail_msg("push %s: %s", json, err);
}

static const char readings[] =
    "CREATE STREAM s (k STRING KEY, ts TIMESTAMP, v DOUBLE) WITH (timestamp = 'ts');\n";

static void tumbling_final_closes_windows_in_order(void **state) {
  (void)state;
  vpq_engine *e = load("CREATE STREAM s (k STRING KEY, ts TIMESTAMP, v DOUBLE) WITH (timestamp = 'ts');\n"
                       "CREATE STREAM w AS SELECT k, WINDOW_START AS ws, sum(v) AS total, count(*) AS n\n"
                       "  FROM s WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY k EMIT FINAL;\n");
  collected out = {0};
  assert_int_equal(vpq_engine_subscribe(e, "w", collect, &out), 0);
  push(e, "s", "{\"k\":\"b\",\"ts\":1000,\"v\":1}");
  push(e, "s", "{\"k\":\"a\",\"ts\":2000,\"v\":2}");
  push(e, "s", "{\"k\":\"b\",\"ts\":59999,\"v\":3}");
  assert_string_equal(out.text, "");
  push(e, "s", "{\"k\":\"a\",\"ts\":60000,\"v\":4}"); /* closes [0, 60000) */
  assert_string_equal(out.text,
                      "+w {\"k\":\"b\",\"ws\":0,\"total\":4.0,\"n\":2}\n"
                      "+w {\"k\":\"a\",\"ws\":0,\"total\":2.0,\"n\":1}\n");
  vpq_engine_finish(e);
  assert_string_equal(out.text,
                      "+w {\"k\":\"b\",\"ws\":0,\"total\":4.0,\"n\":2}\n"
                      "+w {\"k\":\"a\",\"ws\":0,\"total\":2.0,\"n\":1}\n"
                      "+w {\"k\":\"a\",\"ws\":60000,\"total\":4.0,\"n\":1}\n");
  vpq_engine_free(e);
}

static void late_rows_are_counted_row_by_row(void **state) {
  (void)state;
  vpq_engine *e = load("CREATE STREAM s (k STRING KEY, ts TIMESTAMP, v DOUBLE) WITH (timestamp = 'ts');\n"
                       "CREATE STREAM w AS SELECT k, count(*) AS n FROM s\n"
                       "  WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS) GROUP BY k EMIT FINAL;\n");
  collected out = {0};
  vpq_engine_subscribe(e, "w", collect, &out);
  push(e, "s", "{\"k\":\"a\",\"ts\":1000,\"v\":1}");
  push(e, "s", "{\"k\":\"a\",\"ts\":65000,\"v\":1}");
  push(e, "s", "{\"k\":\"a\",\"ts\":30000,\"v\":1}"); /* within grace: counted in [0, 60000) */
  push(e, "s", "{\"k\":\"a\",\"ts\":70000,\"v\":1}"); /* closes [0, 60000) */
  push(e, "s", "{\"k\":\"a\",\"ts\":59000,\"v\":1}"); /* late */
  assert_int_equal(vpq_engine_stats(e).late, 1);
  vpq_engine_finish(e);
  assert_string_equal(out.text, "+w {\"k\":\"a\",\"n\":2}\n+w {\"k\":\"a\",\"n\":2}\n");
  vpq_engine_free(e);
}

static void emit_changes_writes_each_change_once(void **state) {
  (void)state;
  vpq_engine *e = load("CREATE STREAM s (k STRING KEY, ts TIMESTAMP, v DOUBLE) WITH (timestamp = 'ts');\n"
                       "CREATE STREAM w AS SELECT k, max(v) AS top FROM s\n"
                       "  WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY k EMIT CHANGES;\n");
  collected out = {0};
  vpq_engine_subscribe(e, "w", collect, &out);
  push(e, "s", "{\"k\":\"a\",\"ts\":1000,\"v\":5}");
  push(e, "s", "{\"k\":\"a\",\"ts\":2000,\"v\":3}"); /* max unchanged: nothing written */
  push(e, "s", "{\"k\":\"a\",\"ts\":3000,\"v\":7}");
  vpq_engine_finish(e);
  assert_string_equal(out.text, "+w {\"k\":\"a\",\"top\":5.0}\n+w {\"k\":\"a\",\"top\":7.0}\n");
  vpq_engine_free(e);
}

static void table_over_table_retracts_old_rows(void **state) {
  (void)state;
  vpq_engine *e = load("CREATE STREAM t (d STRING KEY, site STRING, ts TIMESTAMP, kwh DOUBLE) WITH (timestamp = 'ts');\n"
                       "CREATE TABLE devices AS SELECT d, last(site) AS site, last(kwh) AS kwh FROM t GROUP BY d;\n"
                       "CREATE TABLE sites AS SELECT site, count(*) AS n, sum(kwh) AS kwh FROM devices GROUP BY site;\n");
  collected out = {0};
  vpq_engine_subscribe(e, "sites", collect, &out);
  push(e, "t", "{\"d\":\"x\",\"site\":\"s1\",\"ts\":1,\"kwh\":10}");
  push(e, "t", "{\"d\":\"y\",\"site\":\"s1\",\"ts\":2,\"kwh\":5}");
  push(e, "t", "{\"d\":\"x\",\"site\":\"s2\",\"ts\":3,\"kwh\":8}"); /* x moves from s1 to s2 */
  vpq_engine_finish(e);
  assert_string_equal(out.text,
                      "+sites {\"site\":\"s1\",\"n\":1,\"kwh\":10.0}\n"
                      "-sites {\"site\":\"s1\",\"n\":1,\"kwh\":10.0}\n"
                      "+sites {\"site\":\"s1\",\"n\":2,\"kwh\":15.0}\n"
                      "-sites {\"site\":\"s1\",\"n\":2,\"kwh\":15.0}\n"
                      "+sites {\"site\":\"s1\",\"n\":1,\"kwh\":5.0}\n"
                      "+sites {\"site\":\"s2\",\"n\":1,\"kwh\":8.0}\n");
  vpq_engine_free(e);
}

static void push_rejects_malformed_rows_and_goes_on(void **state) {
  (void)state;
  vpq_engine *e = load(readings);
  char err[256];
  assert_int_equal(vpq_engine_push_json(e, "s", "{\"k\":\"a\",\"ts\":1,\"v\":\"high\"}", err, sizeof err), -1);
  assert_non_null(strstr(err, "type mismatch"));
  assert_int_equal(vpq_engine_push_json(e, "nope", "{}", err, sizeof err), -1);
  push(e, "s", "{\"k\":\"a\",\"ts\":2,\"v\":1}");
  vpq_stats stats = vpq_engine_stats(e);
  assert_int_equal(stats.malformed, 1);
  assert_int_equal(stats.rows_in, 1);
  vpq_engine_free(e);
}

static void idle_sources_let_windows_close(void **state) {
  (void)state;
  vpq_engine *e = load("CREATE STREAM s (k STRING KEY, ts TIMESTAMP, v DOUBLE)\n"
                       "  WITH (timestamp = 'ts', watermark_delay = 5 SECONDS, idle_timeout = 10 SECONDS);\n"
                       "CREATE STREAM w AS SELECT k, count(*) AS n FROM s\n"
                       "  WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY k EMIT FINAL;\n");
  collected out = {0};
  vpq_engine_subscribe(e, "w", collect, &out);
  int64_t clock = 1700000000000; /* a virtual processing-time clock */
  vpq_engine_tick(e, clock);
  push(e, "s", "{\"k\":\"a\",\"ts\":30000,\"v\":1}");
  push(e, "s", "{\"k\":\"a\",\"ts\":50000,\"v\":1}");
  vpq_engine_tick(e, clock + 9999); /* not idle yet: the window [0, 60 s) stays open */
  assert_string_equal(out.text, "");
  vpq_engine_tick(e, clock + 14999); /* idle; watermark 45 s + 15 s = 60 s - 1 ms */
  assert_string_equal(out.text, "");
  vpq_engine_tick(e, clock + 15000); /* the watermark reaches 60 s: the window closes */
  assert_string_equal(out.text, "+w {\"k\":\"a\",\"n\":2}\n");
  push(e, "s", "{\"k\":\"a\",\"ts\":59000,\"v\":1}"); /* now late */
  assert_int_equal(vpq_engine_stats(e).late, 1);
  vpq_engine_free(e);
}

/* DESIGN §3: an idle input stops holding back an operator of several inputs. A stream fed by
 * two INSERT INTO: `b` has no row at all, and holds the union back only until it has been idle
 * for its idle_timeout; then `a` alone moves it (on the old code, b held it back for good). */
static void idle_input_leaves_a_union(void **state) {
  (void)state;
  vpq_engine *e = load("CREATE STREAM a (ts TIMESTAMP, v DOUBLE) WITH (timestamp = 'ts', idle_timeout = 10 SECONDS);\n"
                       "CREATE STREAM b (ts TIMESTAMP, v DOUBLE) WITH (timestamp = 'ts', idle_timeout = 10 SECONDS);\n"
                       "CREATE STREAM u (ts TIMESTAMP, v DOUBLE);\n"
                       "INSERT INTO u SELECT ts, v FROM a;\n"
                       "INSERT INTO u SELECT ts, v FROM b;\n"
                       "CREATE STREAM w AS SELECT WINDOW_START AS ws, count(*) AS n FROM u\n"
                       "  WINDOW TUMBLING (SIZE 1 MINUTE) EMIT FINAL;\n");
  collected out = {0};
  vpq_engine_subscribe(e, "w", collect, &out);
  int64_t clock = 1700000000000;
  vpq_engine_tick(e, clock);
  push(e, "a", "{\"ts\":30000,\"v\":1}");
  vpq_engine_tick(e, clock + 5000);
  push(e, "a", "{\"ts\":70000,\"v\":1}");
  vpq_engine_tick(e, clock + 9999); /* b not idle yet: [0, 60 s) stays open */
  assert_string_equal(out.text, "");
  vpq_engine_tick(e, clock + 10000); /* b idle: the union's watermark is a's, 70 s */
  assert_string_equal(out.text, "+w {\"ws\":0,\"n\":1}\n");
  push(e, "b", "{\"ts\":65000,\"v\":1}"); /* b is back: it holds the union again */
  push(e, "a", "{\"ts\":130000,\"v\":1}");
  assert_string_equal(out.text, "+w {\"ws\":0,\"n\":1}\n");
  push(e, "b", "{\"ts\":125000,\"v\":1}"); /* both past 2 min: [60 s, 120 s) closes */
  assert_string_equal(out.text, "+w {\"ws\":0,\"n\":1}\n+w {\"ws\":60000,\"n\":2}\n");
  push(e, "b", "{\"ts\":5000,\"v\":1}"); /* behind the union's watermark: late */
  assert_int_equal(vpq_engine_stats(e).late, 1);
  vpq_engine_free(e);
}

/* A LEFT JOIN WITHIN whose right side has no row writes its left rows unmatched once the right
 * side is idle; while both are idle, the joint watermark moves with the clock. */
static void idle_side_of_a_join_lets_left_rows_out(void **state) {
  (void)state;
  vpq_engine *e = load("CREATE STREAM a (k STRING, ts TIMESTAMP) WITH (timestamp = 'ts', idle_timeout = 10 SECONDS);\n"
                       "CREATE STREAM b (k STRING, ts TIMESTAMP, x BIGINT) WITH (timestamp = 'ts', idle_timeout = 20 SECONDS);\n"
                       "CREATE STREAM j AS SELECT a.k, a.ts, x FROM a LEFT JOIN b WITHIN 5 SECONDS ON a.k = b.k;\n");
  collected out = {0};
  vpq_engine_subscribe(e, "j", collect, &out);
  int64_t clock = 1700000000000;
  vpq_engine_tick(e, clock);
  push(e, "a", "{\"k\":\"p\",\"ts\":1000}");
  vpq_engine_tick(e, clock + 1000);
  push(e, "a", "{\"k\":\"q\",\"ts\":9000}");
  vpq_engine_tick(e, clock + 19999); /* a idle (its watermark 9 s + 18.999 s), b not yet */
  assert_string_equal(out.text, "");
  vpq_engine_tick(e, clock + 20000); /* both idle: a's watermark alone, 29 s, passes both rows */
  assert_string_equal(out.text, "+j {\"k\":\"p\",\"ts\":1000,\"x\":null}\n+j {\"k\":\"q\",\"ts\":9000,\"x\":null}\n");
  vpq_engine_free(e);
}

/* SCHEDULE plans an issue once its forecast is complete and, when freed, logs its plans, their
 * CPU time and how many were not certified optimal (a plan of one battery always is). */
/* A generated filter of 30,000 conditions (one per device) runs: a chain of OR is one node of the
 * syntax tree, bound as a balanced tree (it overflowed the stack when every OR nested the last),
 * and so is a join's ON of 30,000 ANDs. */
static void long_chains_of_or_and_and_run(void **state) {
  (void)state;
  enum { TERMS = 30000 };
  size_t cap = (size_t)TERMS * 48 + 1024, len = 0; /* about 36 bytes a term */
  char *text = malloc(cap);
  assert_non_null(text);
  len += (size_t)snprintf(text + len, cap - len,
                          "CREATE STREAM s (k STRING KEY, ts TIMESTAMP, v DOUBLE) WITH (timestamp = 'ts');\n"
                          "CREATE STREAM some AS SELECT k, v FROM s WHERE ");
  for (int i = 0; i < TERMS; i++) len += (size_t)snprintf(text + len, cap - len, "%sk = 'd%d'", i ? " OR " : "", 2 * i);
  len += (size_t)snprintf(text + len, cap - len,
                          ";\nCREATE STREAM pairs AS SELECT a.k, a.v AS av, b.v AS bv FROM s a JOIN s b WITHIN 1 SECOND"
                          " ON a.k = b.k");
  for (int i = 0; i < TERMS; i++) len += (size_t)snprintf(text + len, cap - len, " AND a.v > %d", -i);
  snprintf(text + len, cap - len, ";\n");
  vpq_engine *e = load(text);
  free(text);
  collected some = {0}, pairs = {0};
  assert_int_equal(vpq_engine_subscribe(e, "some", collect, &some), 0);
  assert_int_equal(vpq_engine_subscribe(e, "pairs", collect, &pairs), 0);
  push(e, "s", "{\"k\":\"d59998\",\"ts\":1000,\"v\":1}"); /* the last condition */
  push(e, "s", "{\"k\":\"d3\",\"ts\":2000,\"v\":2}");     /* odd: none */
  push(e, "s", "{\"k\":\"d0\",\"ts\":3000,\"v\":-1}");    /* the first; a.v > -1 fails */
  vpq_engine_finish(e);
  assert_string_equal(some.text, "+some {\"k\":\"d59998\",\"v\":1.0}\n+some {\"k\":\"d0\",\"v\":-1.0}\n");
  assert_string_equal(pairs.text, "+pairs {\"k\":\"d59998\",\"av\":1.0,\"bv\":1.0}\n+pairs {\"k\":\"d3\",\"av\":2.0,\"bv\":2.0}\n");
  vpq_engine_free(e);
}

static void schedule_logs_its_plans(void **state) {
  (void)state;
  vpq_engine *e = load("CREATE STREAM tel (device_id STRING KEY, ts TIMESTAMP, soc DOUBLE, capacity_kwh DOUBLE,\n"
                       "  max_kw DOUBLE) WITH (timestamp = 'ts');\n"
                       "CREATE TABLE fleet AS SELECT device_id, last(soc) AS soc, last(capacity_kwh) AS capacity_kwh,\n"
                       "  last(max_kw) AS max_kw FROM tel GROUP BY device_id;\n"
                       "CREATE STREAM fc (issued_at TIMESTAMP, ts TIMESTAMP, value DOUBLE) WITH (timestamp = 'issued_at');\n"
                       "CREATE STREAM dispatch AS SCHEDULE fleet FOR fc MINIMIZE PEAK HORIZON 2 HOURS STEP 1 HOUR;\n");
  collected out = {0};
  assert_int_equal(vpq_engine_subscribe(e, "dispatch", collect, &out), 0);
  push(e, "tel", "{\"device_id\":\"b1\",\"ts\":0,\"soc\":0.5,\"capacity_kwh\":10,\"max_kw\":5}");
  push(e, "fc", "{\"issued_at\":3600000,\"ts\":3600000,\"value\":20}");
  push(e, "fc", "{\"issued_at\":3600000,\"ts\":7200000,\"value\":10}");
  vpq_engine_finish(e);
  /* 5 kWh stored: the peak of 20 comes down to 15 (5 kW for an hour), the hour after stays 10 */
  assert_string_equal(out.text, "+dispatch {\"issued_at\":3600000,\"ts\":3600000,\"device_id\":\"b1\","
                                "\"setpoint_kw\":5.0,\"soc\":0.0,\"planned_peak_kw\":15.0}\n");
  /* the engine logs to stderr: catch it in a file while the engine is freed */
  FILE *caught = tmpfile();
  assert_non_null(caught);
  fflush(stderr);
  const int saved = dup(2);
  dup2(fileno(caught), 2);
  vpq_engine_free(e);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char log_text[1024] = "";
  rewind(caught);
  log_text[fread(log_text, 1, sizeof log_text - 1, caught)] = '\0';
  fclose(caught);
  assert_non_null(strstr(log_text, "vpq: SCHEDULE dispatch: 1 plan, CPU time "));
  assert_non_null(strstr(log_text, "; 0 not certified optimal (largest measured gap of the peak to the optimum: 0 kW)\n"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tumbling_final_closes_windows_in_order),
      cmocka_unit_test(late_rows_are_counted_row_by_row),
      cmocka_unit_test(emit_changes_writes_each_change_once),
      cmocka_unit_test(table_over_table_retracts_old_rows),
      cmocka_unit_test(push_rejects_malformed_rows_and_goes_on),
      cmocka_unit_test(idle_sources_let_windows_close),
      cmocka_unit_test(idle_input_leaves_a_union),
      cmocka_unit_test(idle_side_of_a_join_lets_left_rows_out),
      cmocka_unit_test(long_chains_of_or_and_and_run),
      cmocka_unit_test(schedule_logs_its_plans),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
