/* vpq_http_query.c — POST /api/query: an ad-hoc SELECT over a running file's tables
 * (vpq_http_query.h), run in an engine of its own through the public API (vpq.h).
 *
 * The query's text is first scanned here (names, strings, comments): it must be one SELECT,
 * with nothing after its `;`, and neither WINDOW (a table has no event time) nor JOIN (it
 * reads one table). Then a small file is made of it, one statement per line before the
 * query's own text, which starts a line of its own:
 *
 *   CREATE STREAM "fleet" ("region" STRING KEY, "site" STRING KEY, "soc" DOUBLE, ...);
 *   CREATE STREAM "batteries" (...);
 *   CREATE TABLE "vpq query" AS
 *   SELECT region, avg(soc) AS soc FROM fleet GROUP BY region
 *
 * so that an error in the query is at the same column of the line K lines further down, K
 * being the number of lines before it: the engine's diagnostics are given back with their
 * line numbers lowered by K, their source line and caret as printed. Each table is a source
 * stream there, fed its rows once: an aggregation over it makes a table (the result is its
 * rows after every retraction), anything else a stream. Which of the two the result is comes
 * from the engine: the file is loaded with CREATE TABLE, then, if that does not check, with
 * CREATE STREAM, and when neither checks, the diagnostics of the one with fewer errors are
 * given (a statement of the wrong kind adds an error of its own to the other).
 */
#include "vpq_http_query.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vpq.h"

#define RESULT "vpq query" /* the name of the query's statement in the made file */

/* ===== Scanning the query's text ===== */

typedef enum tok_kind { TOK_END, TOK_WORD, TOK_NAME, TOK_STRING, TOK_OTHER } tok_kind;

/* A token of the query: a word (a name or keyword, or a number), a "quoted name", a
 * 'string' or any other character. */
typedef struct token {
  tok_kind kind;
  size_t off, len;
} token;

const char *vpq_http_skip_blank(const char *p) {
  for (;;) {
    while (isspace((unsigned char)*p)) p++;
    if (p[0] == '-' && p[1] == '-') {
      while (*p && *p != '\n') p++;
    } else if (p[0] == '/' && p[1] == '*') {
      const char *end = strstr(p + 2, "*/");
      p = end ? end + 2 : p + strlen(p);
    } else {
      return p;
    }
  }
}

/* Reads the token at or after byte `off` of `text` (skipping blanks and comments) into `t`;
 * returns the offset after it. */
static size_t next_token(const char *text, size_t off, token *t) {
  const char *p = vpq_http_skip_blank(text + off);
  const char *start = p;
  if (!*p) {
    t->kind = TOK_END;
  } else if (*p == '\'' || *p == '"') {
    char quote = *p++;
    for (; *p && !(p[0] == quote && p[1] != quote); p += p[0] == quote ? 2 : 1) {}
    if (*p) p++;
    t->kind = quote == '"' ? TOK_NAME : TOK_STRING;
  } else if (isalnum((unsigned char)*p) || *p == '_') {
    while (isalnum((unsigned char)*p) || *p == '_') p++;
    t->kind = TOK_WORD;
  } else {
    p++;
    t->kind = TOK_OTHER;
  }
  t->off = (size_t)(start - text);
  t->len = (size_t)(p - start);
  return (size_t)(p - text);
}

/* Whether token `t` of `text` is the word `word` (case-insensitively). */
static bool is_word(const char *text, const token *t, const char *word) {
  return t->kind == TOK_WORD && t->len == strlen(word) && strncasecmp(text + t->off, word, t->len) == 0;
}

/* Whether token `t` of `text` names `name`: a word, or a quoted name whose doubled quotes
 * stand for one, equal to it case-insensitively. */
static bool names(const char *text, const token *t, const char *name) {
  if (t->kind == TOK_WORD) return t->len == strlen(name) && strncasecmp(text + t->off, name, t->len) == 0;
  if (t->kind != TOK_NAME) return false;
  const char *p = text + t->off + 1, *end = text + t->off + t->len - 1;
  for (; p < end && *name; p += p[0] == '"' ? 2 : 1, name++)
    if (tolower((unsigned char)*p) != tolower((unsigned char)*name)) return false;
  return p >= end && !*name;
}

/* Whether the query names the table (vpq_http_query.h). */
bool vpq_http_query_reads(const char *text, const char *table) {
  token t;
  for (size_t off = next_token(text, 0, &t); t.kind != TOK_END; off = next_token(text, off, &t))
    if (names(text, &t, table)) return true;
  return false;
}

/* Appends an error at bytes [off, off + len) of `text` as the engine prints one:
 * `query:LINE:COL: error: MESSAGE`, the line, and a caret under the bytes. */
static void error_at(vpq_buf *out, const char *text, size_t off, size_t len, const char *message) {
  int line = 1;
  size_t start = 0;
  for (size_t i = 0; i < off; i++)
    if (text[i] == '\n') {
      line++;
      start = i + 1;
    }
  size_t end = strcspn(text + start, "\n") + start;
  vpq_buf_printf(out, "query:%d:%zu: error: %s\n", line, off - start + 1, message);
  vpq_buf_append(out, text + start, end - start);
  vpq_buf_puts(out, "\n");
  for (size_t i = start; i < off; i++) vpq_buf_append(out, text[i] == '\t' ? "\t" : " ", 1);
  vpq_buf_puts(out, "^");
  for (size_t i = off + 1; i < off + len && i < end; i++) vpq_buf_puts(out, "~");
  vpq_buf_puts(out, "\n");
}

/* Checks that `text` is one SELECT without WINDOW or JOIN; appends an error for each thing
 * that is not, and returns whether there were none. */
static bool check_select(const char *text, vpq_buf *diagnostics) {
  token t;
  size_t off = next_token(text, 0, &t);
  char message[128];
  if (t.kind == TOK_END) {
    error_at(diagnostics, text, t.off, 0, "the query is empty: POST /api/query takes one SELECT");
    return false;
  }
  if (!is_word(text, &t, "select")) {
    snprintf(message, sizeof message, "POST /api/query takes one SELECT, not `%.*s`", (int)(t.len < 40 ? t.len : 40),
             text + t.off);
    error_at(diagnostics, text, t.off, t.len, message);
    return false;
  }
  bool ok = true;
  for (; t.kind != TOK_END; off = next_token(text, off, &t)) {
    if (is_word(text, &t, "window")) {
      error_at(diagnostics, text, t.off, t.len, "a WINDOW needs a stream: an ad-hoc query reads a table");
      ok = false;
    } else if (is_word(text, &t, "join")) {
      error_at(diagnostics, text, t.off, t.len, "an ad-hoc query reads one table: no JOIN");
      ok = false;
    } else if (t.kind == TOK_OTHER && text[t.off] == ';') {
      off = next_token(text, off, &t);
      if (t.kind != TOK_END) {
        error_at(diagnostics, text, t.off, t.len, "POST /api/query takes one SELECT: nothing may follow its `;`");
        ok = false;
      }
      break;
    }
  }
  return ok;
}

/* ===== The file run for the query ===== */

/* The column types explain prints; ORDER vpq_type_name, with what each is declared as (NULL
 * and INTERVAL are not types of the language: a NULL column is read as a STRING, an interval
 * is milliseconds). */
static const struct {
  const char *shown, *declared;
} column_types[] = {{"BOOLEAN", "BOOLEAN"}, {"BIGINT", "BIGINT"},    {"DOUBLE", "DOUBLE"},  {"STRING", "STRING"},
                    {"TIMESTAMP", "TIMESTAMP"}, {"INTERVAL", "BIGINT"}, {"NULL", "STRING"}};

/* If `p` is ` TYPE[ KEY]` followed by `, ` (another column) or by `)` and the end of the
 * line or ` -> ` (the last one), sets the type's index and whether it is a key, and returns
 * where the next column starts (or the `)`). */
static const char *column_end(const char *p, int *type, bool *key) {
  if (*p != ' ') return NULL;
  for (int i = 0; i < (int)(sizeof column_types / sizeof *column_types); i++) {
    size_t n = strlen(column_types[i].shown);
    if (strncmp(p + 1, column_types[i].shown, n) != 0) continue;
    const char *q = p + 1 + n;
    *key = strncmp(q, " KEY", 4) == 0;
    if (*key) q += 4;
    *type = i;
    if (q[0] == ',' && q[1] == ' ') return q + 2;
    if (q[0] == ')' && (q[1] == '\n' || q[1] == '\0' || strncmp(q + 1, " -> ", 4) == 0)) return q;
  }
  return NULL;
}

/* Appends `name` as a "quoted name". */
static void put_name(vpq_buf *out, const char *name, size_t len) {
  vpq_buf_puts(out, "\"");
  for (size_t i = 0; i < len; i++) vpq_buf_append(out, name[i] == '"' ? "\"\"" : name + i, name[i] == '"' ? 2 : 1);
  vpq_buf_puts(out, "\"");
}

/* Appends `CREATE STREAM "NAME" ("COL" TYPE [KEY], ...);` and a newline for a table, its
 * columns read from the first line of its plan: `table NAME (COL TYPE [KEY], ...)`. Returns
 * false when that line is not of this form. */
static bool declare(vpq_buf *src, const vpq_http_table *table) {
  size_t n = strlen(table->name);
  const char *p = table->plan;
  if (strncmp(p, "table ", 6) != 0 || strncmp(p + 6, table->name, n) != 0 || strncmp(p + 6 + n, " (", 2) != 0) return false;
  p += 6 + n + 2;
  vpq_buf_puts(src, "CREATE STREAM ");
  put_name(src, table->name, n);
  vpq_buf_puts(src, " (");
  for (bool first = true; *p != ')'; first = false) {
    const char *name = p, *next = NULL;
    int type = 0;
    bool key = false;
    for (; *p && *p != '\n' && !(next = column_end(p, &type, &key)); p++) {}
    if (!next) return false;
    if (!first) vpq_buf_puts(src, ", ");
    put_name(src, name, (size_t)(p - name));
    vpq_buf_printf(src, " %s%s", column_types[type].declared, key ? " KEY" : "");
    p = next;
  }
  vpq_buf_puts(src, ");\n");
  return true;
}

/* The length of the line at `p`, with its newline if it has one. */
static size_t line_len(const char *p) {
  const char *end = strchr(p, '\n');
  return end ? (size_t)(end - p) + 1 : strlen(p);
}

/* Appends the engine's diagnostics `raw` of the made file, each moved up `skip` lines to its
 * place in the query's `text` (one in the lines before it, which cannot happen for a query
 * of the right kind, is put at the query's start); returns the number of errors. Each is
 * three lines: `query:LINE:COL: error: ...`, the source line and the caret line. */
static int move_diagnostics(const char *raw, int skip, const char *text, vpq_buf *out) {
  int errors = 0;
  for (const char *p = raw; *p;) {
    size_t len = line_len(p);
    int line, col, at = 0;
    if (sscanf(p, "query:%d:%d:%n", &line, &col, &at) != 2 || at == 0) {
      vpq_buf_append(out, p, len);
      p += len;
      continue;
    }
    errors += strncmp(p + at, " error:", 7) == 0;
    vpq_buf_printf(out, "query:%d:%d:", line > skip ? line - skip : 1, line > skip ? col : 1);
    vpq_buf_append(out, p + at, len - (size_t)at);
    p += len;
    if (line > skip) { /* the source line and the caret, as they are */
      for (int k = 0; k < 2 && *p; k++, p += len) vpq_buf_append(out, p, len = line_len(p));
    } else {
      vpq_buf_append(out, text, strcspn(text, "\n"));
      vpq_buf_puts(out, "\n^\n");
      for (int k = 0; k < 2 && *p; k++) p += line_len(p);
    }
  }
  return errors;
}

/* Loads the made file with the query as a `kind` (TABLE or STREAM) statement into a new
 * engine; its diagnostics, moved to the query's text, go to `diagnostics`. Returns the
 * engine and sets *errors to the number of errors (0: it checks). */
static vpq_engine *load(const vpq_buf *declarations, int lines, const char *kind, const char *text,
                        vpq_buf *diagnostics, int *errors) {
  vpq_buf src = {0};
  vpq_buf_append(&src, declarations->data ? declarations->data : "", declarations->len);
  vpq_buf_printf(&src, "CREATE %s \"" RESULT "\" AS\n", kind);
  vpq_buf_puts(&src, text);
  char *raw = NULL;
  size_t raw_size = 0;
  FILE *diag = open_memstream(&raw, &raw_size);
  if (!diag) abort();
  vpq_engine *e = vpq_engine_new();
  int rc = vpq_engine_load(e, "query", src.data, diag);
  fclose(diag);
  *errors = move_diagnostics(raw, lines + 1, text, diagnostics);
  if (rc != 0 && *errors == 0) *errors = 1;
  free(raw);
  vpq_buf_free(&src);
  return e;
}

/* ===== Running it ===== */

/* Orders rows by their JSON text. */
static int compare_rows(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The result's changes as they come: each a '+' or '-' and the row, NUL-terminated. */
typedef struct changes {
  vpq_buf bytes;
  size_t n;
} changes;

/* The subscriber of the query's result: keeps each change. */
static void on_result(void *ctx, const char *relation, const char *json, int diff) {
  (void)relation;
  changes *c = ctx;
  vpq_buf_append(&c->bytes, diff > 0 ? "+" : "-", 1);
  vpq_buf_append(&c->bytes, json, strlen(json) + 1);
  c->n++;
}

/* Orders changes by their row's text. */
static int compare_changes(const void *a, const void *b) {
  return strcmp(*(const char *const *)a + 1, *(const char *const *)b + 1);
}

/* Appends the rows the changes leave (each row as many times as it was added more than
 * retracted) as the JSON array of the answer. */
static void result_rows(const changes *c, vpq_buf *out) {
  const char **all = malloc(sizeof *all * (c->n + 1)), **rows = malloc(sizeof *rows * (c->n + 1));
  if (!all || !rows) abort();
  for (size_t i = 0, at = 0; i < c->n; i++, at += strlen(c->bytes.data + at) + 1) all[i] = c->bytes.data + at;
  qsort(all, c->n, sizeof *all, compare_changes);
  size_t n = 0;
  for (size_t i = 0, j; i < c->n; i = j) {
    long long count = 0;
    for (j = i; j < c->n && strcmp(all[j] + 1, all[i] + 1) == 0; j++) count += all[j][0] == '+' ? 1 : -1;
    for (long long k = 0; k < count; k++) rows[n++] = all[i] + 1;
  }
  vpq_http_json_array(rows, n, n, out);
  free(all);
  free(rows);
}

/* Runs an ad-hoc query (vpq_http_query.h). */
int vpq_http_query_run(const char *text, const vpq_http_table *tables, int ntables, vpq_buf *out, vpq_buf *diagnostics) {
  if (!check_select(text, diagnostics)) return 400;
  vpq_buf declarations = {0};
  for (int i = 0; i < ntables; i++)
    if (!declare(&declarations, &tables[i])) {
      vpq_buf_printf(diagnostics, "cannot read the columns of table `%s`", tables[i].name);
      vpq_buf_free(&declarations);
      return 500;
    }
  vpq_buf as_table = {0}, as_stream = {0};
  const vpq_buf *chosen = &as_table;
  int errors, stream_errors;
  vpq_engine *e = load(&declarations, ntables, "TABLE", text, &as_table, &errors);
  if (errors) {
    vpq_engine *stream = load(&declarations, ntables, "STREAM", text, &as_stream, &stream_errors);
    if (stream_errors < errors) {
      vpq_engine_free(e);
      e = stream;
      errors = stream_errors;
      chosen = &as_stream;
    } else {
      vpq_engine_free(stream);
    }
  }
  vpq_buf_free(&declarations);
  if (errors) vpq_buf_append(diagnostics, chosen->data, chosen->len);
  vpq_buf_free(&as_table);
  vpq_buf_free(&as_stream);
  if (errors) {
    vpq_engine_free(e);
    return 400;
  }
  changes result = {0};
  vpq_engine_no_stdout(e);
  vpq_engine_subscribe(e, RESULT, on_result, &result);
  char err[256];
  int status = 200;
  for (int i = 0; status == 200 && i < ntables; i++) {
    if (!tables[i].rows) continue;
    const char **rows = malloc(sizeof *rows * (tables[i].nrows + 1)); /* pushed in their text's order */
    if (!rows) abort();
    memcpy(rows, tables[i].rows, sizeof *rows * tables[i].nrows);
    qsort(rows, tables[i].nrows, sizeof *rows, compare_rows);
    for (size_t r = 0; status == 200 && r < tables[i].nrows; r++)
      if (vpq_engine_push_json(e, tables[i].name, rows[r], err, sizeof err) != 0) {
        vpq_buf_printf(diagnostics, "table `%s`: %s", tables[i].name, err);
        status = 500;
      }
    free(rows);
  }
  if (status == 200) {
    vpq_engine_finish(e);
    result_rows(&result, out);
  }
  vpq_engine_free(e);
  vpq_buf_free(&result.bytes);
  return status;
}

/* Appends rows as a sorted JSON array (vpq_http_query.h). */
void vpq_http_json_array(const char **rows, size_t n, size_t limit, vpq_buf *out) {
  qsort(rows, n, sizeof *rows, compare_rows);
  if (limit < n) n = limit;
  vpq_buf_puts(out, "[");
  for (size_t i = 0; i < n; i++) vpq_buf_printf(out, "%s\n%s", i ? "," : "", rows[i]);
  vpq_buf_puts(out, "\n]\n");
}
