/* vpq_http_query.h — POST /api/query (docs/http.md): one ad-hoc SELECT over the tables of a
 * running file, answered once. It runs in a fresh engine of its own, through the public API
 * only (vpq.h): each table is declared as a source stream of the same columns, the SELECT is
 * appended as the file's last statement, the table's current rows are pushed into it (in the
 * order of their JSON text, each at the wall-clock time) and the engine is finished. Errors come back as `vpq check` prints them, their positions in the
 * query's own text (file name `query`).
 *
 *   vpq_http_table t = {"fleet", plan_of_fleet, rows, nrows};
 *   int status = vpq_http_query_run("SELECT region, sum(batteries) AS b FROM fleet GROUP BY region",
 *                                   &t, 1, &json, &diagnostics);
 */
#ifndef VPQ_HTTP_QUERY_H
#define VPQ_HTTP_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "vpq_buf.h"

/* A table an ad-hoc query may read. */
typedef struct vpq_http_table {
  const char *name;        /* as declared */
  const char *plan;        /* as vpq_engine_explain_relation prints it (its first line gives the columns) */
  const char *const *rows; /* its current rows, JSON objects; NULL when the query does not read it */
  size_t nrows;
} vpq_http_table;

/* Skips spaces and SQL comments (-- to the end of the line, and block comments) from `p`;
 * returns the first other character. */
const char *vpq_http_skip_blank(const char *p);

/* Whether query `text` names `table` (a name or quoted name outside strings and comments,
 * matched case-insensitively): only the tables it names need their rows copied. */
bool vpq_http_query_reads(const char *text, const char *table);

/* Runs query `text` over `tables` and returns an HTTP status. 200: `out` gets the result
 * rows as a JSON array, one per line, sorted by their JSON text (a table's final rows after
 * retractions). 400: `diagnostics` gets every error as `query:LINE:COL: error: MESSAGE`, the
 * line of `text` and a caret, as `vpq check` prints them (the text is not one SELECT, or does
 * not check). 500: `diagnostics` gets the reason a table's row could not be read. */
int vpq_http_query_run(const char *text, const vpq_http_table *tables, int ntables, vpq_buf *out, vpq_buf *diagnostics);

/* Sorts rows[0..n) (JSON objects) by their text and appends the first `limit` of them as a
 * JSON array with one row per line: the answer of GET /api/tables and POST /api/query. */
void vpq_http_json_array(const char **rows, size_t n, size_t limit, vpq_buf *out);

#endif
