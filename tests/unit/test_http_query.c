/* test_http_query.c — the ad-hoc queries of POST /api/query (vpq_http_query.h), without a
 * server: results of filters and aggregations over a table (sorted, retractions applied),
 * columns whose names need quoting, and the exact diagnostics, at the query's own lines and
 * columns, of syntax errors, unknown names, a query that is not one SELECT, WINDOW and JOIN;
 * a table whose columns or rows cannot be read; and which tables a query names. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http/vpq_http_query.h"

static const char *const fleet_rows[] = {
    "{\"region\":\"east\",\"site\":\"s1\",\"batteries\":2,\"soc\":0.5}",
    "{\"region\":\"east\",\"site\":\"s2\",\"batteries\":3,\"soc\":0.7}",
    "{\"region\":\"west\",\"site\":\"s3\",\"batteries\":4,\"soc\":0.9}",
    "{\"region\":\"east\",\"site\":null,\"batteries\":5,\"soc\":0.62}",
};

static const char *const sums_rows[] = {"{\"sum(x, y)\":1.5,\"n\":1}", "{\"sum(x, y)\":2.5,\"n\":1}"};

/* fleet as GROUP BY ROLLUP makes it; sums with a sink and a column named by its expression */
static vpq_http_table tables[] = {
    {"fleet",
     "table fleet (region STRING KEY, site STRING KEY, batteries BIGINT, soc DOUBLE)\n"
     "└─ Aggregate rollup[region, site] aggs[count(*), avg(soc)] emit=CHANGES\n   └─ batteries\n",
     fleet_rows, 4},
    {"sums", "table sums (sum(x, y) DOUBLE, n BIGINT) -> file json out/sums.jsonl\n└─ Aggregate keys[] ...\n",
     sums_rows, 2},
};

/* Runs `query` over both tables and checks its status and its answer (the JSON array for
 * 200, the diagnostics otherwise). */
static void check(const char *query, int status, const char *expected) {
  vpq_buf out = {0}, diagnostics = {0};
  int got = vpq_http_query_run(query, tables, 2, &out, &diagnostics);
  const vpq_buf *answer = got == 200 ? &out : &diagnostics;
  if (got != status || strcmp(answer->data ? answer->data : "", expected) != 0)
    print_error("query: %s\nstatus %d, expected %d\ngot:\n%s\nexpected:\n%s\n", query, got, status,
                answer->data ? answer->data : "", expected);
  assert_int_equal(got, status);
  assert_string_equal(answer->data ? answer->data : "", expected);
  vpq_buf_free(&out);
  vpq_buf_free(&diagnostics);
}

static void test_group_by(void **state) {
  (void)state;
  check("SELECT region, sum(batteries) AS batteries, count(*) AS sites FROM fleet WHERE site IS NOT NULL GROUP BY region",
        200,
        "[\n{\"region\":\"east\",\"batteries\":5,\"sites\":2},\n{\"region\":\"west\",\"batteries\":4,\"sites\":1}\n]\n");
  check("SELECT count(*) AS n, max(soc) AS top FROM fleet", 200, "[\n{\"n\":4,\"top\":0.9}\n]\n");
}

static void test_filter(void **state) {
  (void)state;
  check("select site, round(soc * 100, 0) AS pct from FLEET where soc > 0.6;", 200,
        "[\n{\"site\":\"s2\",\"pct\":70.0},\n{\"site\":\"s3\",\"pct\":90.0},\n{\"site\":null,\"pct\":62.0}\n]\n");
  check("SELECT * FROM fleet WHERE region = 'nowhere'", 200, "[\n]\n");
}

static void test_quoted_columns(void **state) {
  (void)state;
  check("SELECT \"sum(x, y)\" AS s, n FROM sums WHERE \"sum(x, y)\" > 2", 200, "[\n{\"s\":2.5,\"n\":1}\n]\n");
}

static void test_syntax_error(void **state) {
  (void)state;
  check("-- east only\nSELECT region\nFROM fleet WHERE", 400,
        "query:3:17: error: syntax error: unexpected end of input\n"
        "FROM fleet WHERE\n"
        "                ^\n");
}

static void test_unknown_names(void **state) {
  (void)state;
  check("SELECT regoin FROM fleet", 400,
        "query:1:8: error: unknown column `regoin`; did you mean `region`?\n"
        "SELECT regoin FROM fleet\n"
        "       ^~~~~~\n");
  /* an aggregation: one error, not another one for the kind of its statement */
  check("SELECT region,\n\tsum(batteriez) AS b FROM fleet GROUP BY region", 400,
        "query:2:6: error: unknown column `batteriez`; did you mean `batteries`?\n"
        "\tsum(batteriez) AS b FROM fleet GROUP BY region\n"
        "\t    ^~~~~~~~~\n");
  check("SELECT * FROM fleets", 400,
        "query:1:15: error: unknown stream or table `fleets`; did you mean `fleet`?\n"
        "SELECT * FROM fleets\n"
        "              ^~~~~~\n");
}

static void test_not_one_select(void **state) {
  (void)state;
  check("  CREATE STREAM x (a BIGINT)", 400,
        "query:1:3: error: POST /api/query takes one SELECT, not `CREATE`\n"
        "  CREATE STREAM x (a BIGINT)\n"
        "  ^~~~~~\n");
  check("SELECT region FROM fleet;\nINSERT INTO x SELECT 1", 400,
        "query:2:1: error: POST /api/query takes one SELECT: nothing may follow its `;`\n"
        "INSERT INTO x SELECT 1\n"
        "^~~~~~\n");
  check(" -- nothing\n", 400,
        "query:2:1: error: the query is empty: POST /api/query takes one SELECT\n"
        "\n"
        "^\n");
  check("SELECT count(*) AS n FROM fleet WINDOW TUMBLING (SIZE 1 MINUTE)", 400,
        "query:1:33: error: a WINDOW needs a stream: an ad-hoc query reads a table\n"
        "SELECT count(*) AS n FROM fleet WINDOW TUMBLING (SIZE 1 MINUTE)\n"
        "                                ^~~~~~\n");
  check("SELECT * FROM fleet f JOIN sums s ON f.batteries = s.n", 400,
        "query:1:23: error: an ad-hoc query reads one table: no JOIN\n"
        "SELECT * FROM fleet f JOIN sums s ON f.batteries = s.n\n"
        "                      ^~~~\n");
}

static void test_internal_errors(void **state) {
  (void)state;
  static const char *const bad_rows[] = {"{\"a\":1}", "not json"};
  vpq_http_table broken[] = {{"t", "table t (a BIGINT)\n", bad_rows, 2}, {"u", "stream u (a BIGINT)\n", NULL, 0}};
  vpq_buf out = {0}, diagnostics = {0};
  assert_int_equal(vpq_http_query_run("SELECT a FROM t", broken, 2, &out, &diagnostics), 500);
  assert_string_equal(diagnostics.data, "cannot read the columns of table `u`");
  vpq_buf_free(&diagnostics);
  assert_int_equal(vpq_http_query_run("SELECT a FROM t", broken, 1, &out, &diagnostics), 500);
  assert_true(strncmp(diagnostics.data, "table `t`: ", 11) == 0);
  assert_null(out.data);
  vpq_buf_free(&diagnostics);
}

static void test_reads(void **state) {
  (void)state;
  assert_true(vpq_http_query_reads("SELECT * FROM Fleet", "fleet"));
  assert_true(vpq_http_query_reads("SELECT * FROM \"FLEET\"", "fleet"));
  assert_true(vpq_http_query_reads("SELECT * FROM \"a\"\"b\"", "a\"b"));
  assert_false(vpq_http_query_reads("SELECT 'fleet' AS f FROM sums -- fleet", "fleet"));
  assert_false(vpq_http_query_reads("SELECT fleets FROM sums /* fleet */", "fleet"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_group_by),       cmocka_unit_test(test_filter),        cmocka_unit_test(test_quoted_columns),
      cmocka_unit_test(test_syntax_error),   cmocka_unit_test(test_unknown_names), cmocka_unit_test(test_not_one_select),
      cmocka_unit_test(test_internal_errors), cmocka_unit_test(test_reads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
