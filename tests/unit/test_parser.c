/* test_parser.c — unit tests of the lemon grammar and the parse driver (grammar/vpq_ast.h):
 * the whole DESIGN §2 example, every clause, precedence, spans, keywords used as names,
 * expression formatting, and recovery after syntax errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vpq_ast.h"

/* One parse: the arena and diagnostics live as long as the test looks at the tree. */
typedef struct parsed {
  vpq_arena arena;
  vpq_diag diag;
  vpq_ast_file *file;
  const char *text;
} parsed;

static void parse(parsed *p, const char *text) {
  p->text = text;
  vpq_arena_init(&p->arena);
  vpq_diag_init(&p->diag, "t.vpq", text, strlen(text));
  p->file = vpq_parse(&p->arena, &p->diag);
}

static void done(parsed *p) {
  vpq_diag_free(&p->diag);
  vpq_arena_free(&p->arena);
}

/* The text a span covers, in a static buffer. */
static const char *span_text(const parsed *p, vpq_span span) {
  static char buf[512];
  snprintf(buf, sizeof buf, "%.*s", (int)span.len, p->text + span.off);
  return buf;
}

/* Whether `text` ends with `suffix`. */
static bool ends_with(const char *text, const char *suffix) {
  size_t n = strlen(text), m = strlen(suffix);
  return n >= m && strcmp(text + n - m, suffix) == 0;
}

static const char *fmt(const vpq_ast_expr *e) {
  static char buf[512];
  return vpq_ast_expr_format(e, buf, sizeof buf);
}

/* Parses `CREATE STREAM x AS <select>` and returns the first item's expression. */
static const vpq_ast_expr *select_expr(parsed *p, const char *select) {
  static char text[512];
  snprintf(text, sizeof text, "CREATE STREAM x AS %s", select);
  parse(p, text);
  assert_int_equal(p->diag.count, 0);
  assert_int_equal(p->file->count, 1);
  return p->file->stmts[0]->query->u.select.items[0].expr;
}

/* ===== The DESIGN §2 example ===== */

static const char design[] =
    "-- Battery telemetry: one JSON object per message on a Kafka topic.\n"
    "CREATE STREAM telemetry (\n"
    "  device_id    STRING KEY,\n"
    "  site         STRING,\n"
    "  region       STRING,\n"
    "  ts           TIMESTAMP,      -- event time\n"
    "  soc          DOUBLE,         -- state of charge, 0..1\n"
    "  power_kw     DOUBLE,         -- + discharging, - charging\n"
    "  capacity_kwh DOUBLE,\n"
    "  max_kw       DOUBLE\n"
    ") WITH (connector = 'kafka', topic = 'vpp.telemetry', format = 'json',\n"
    "        timestamp = 'ts', watermark_delay = 5 SECONDS);\n"
    "\n"
    "CREATE TABLE batteries AS\n"
    "  SELECT device_id, last(site) AS site, last(region) AS region, last(soc) AS soc,\n"
    "         last(capacity_kwh) AS capacity_kwh, last(max_kw) AS max_kw, last(ts) AS seen\n"
    "  FROM telemetry\n"
    "  GROUP BY device_id;\n"
    "\n"
    "CREATE TABLE fleet AS\n"
    "  SELECT region, site, count(*) AS batteries,\n"
    "         sum(soc * capacity_kwh) AS stored_kwh, sum(capacity_kwh) AS capacity_kwh,\n"
    "         sum(max_kw) AS max_kw, avg(soc) AS soc\n"
    "  FROM batteries\n"
    "  GROUP BY ROLLUP (region, site);\n"
    "\n"
    "CREATE STREAM site_meters (site STRING KEY, ts TIMESTAMP, load_kw DOUBLE)\n"
    "  WITH (connector = 'kafka', topic = 'vpp.meters', format = 'json', timestamp = 'ts');\n"
    "\n"
    "CREATE STREAM site_load AS\n"
    "  SELECT site, WINDOW_START AS ts, time_weighted_avg(load_kw) AS load_kw\n"
    "  FROM site_meters\n"
    "  WINDOW TUMBLING (SIZE 15 MINUTES)\n"
    "  GROUP BY site\n"
    "  EMIT FINAL;\n"
    "\n"
    "CREATE STREAM plant_load AS\n"
    "  SELECT WINDOW_START AS ts, sum(load_kw) AS load_kw\n"
    "  FROM site_load\n"
    "  WINDOW TUMBLING (SIZE 15 MINUTES)\n"
    "  EMIT FINAL;\n"
    "\n"
    "/* Day-ahead load forecast,\n   refitted every 15 minutes. */\n"
    "CREATE STREAM load_forecast AS\n"
    "  FORECAST load_kw FROM plant_load\n"
    "  USING holt_winters (season = 1 DAY)\n"
    "  HORIZON 24 HOURS EVERY 15 MINUTES;\n"
    "\n"
    "CREATE STREAM dispatch WITH (connector = 'kafka', topic = 'vpp.dispatch', format = 'json') AS\n"
    "  SCHEDULE batteries FOR load_forecast\n"
    "  MINIMIZE PEAK\n"
    "  SUBJECT TO soc >= 0.10, soc <= 0.95\n"
    "  HORIZON 24 HOURS STEP 15 MINUTES;\n";

static void design_sources(void **state) {
  (void)state;
  parsed p;
  parse(&p, design);
  assert_int_equal(p.diag.count, 0);
  assert_int_equal(p.file->count, 8);

  const vpq_ast_stmt *s = p.file->stmts[0];
  assert_int_equal(s->kind, VPQ_STMT_CREATE_STREAM);
  assert_string_equal(s->name, "telemetry");
  assert_string_equal(span_text(&p, s->name_span), "telemetry");
  assert_null(s->query);
  assert_int_equal(s->ncols, 8);
  assert_string_equal(s->cols[0].name, "device_id");
  assert_int_equal(s->cols[0].type, VPQ_AST_TYPE_STRING);
  assert_true(s->cols[0].is_key);
  assert_false(s->cols[0].is_primary_key);
  assert_string_equal(s->cols[3].name, "ts");
  assert_int_equal(s->cols[3].type, VPQ_AST_TYPE_TIMESTAMP);
  assert_string_equal(span_text(&p, s->cols[3].type_span), "TIMESTAMP");
  assert_false(s->cols[3].is_key);
  assert_string_equal(s->cols[7].name, "max_kw");
  assert_int_equal(s->cols[7].type, VPQ_AST_TYPE_DOUBLE);
  assert_int_equal(s->options.count, 5);
  assert_string_equal(s->options.items[0].key, "connector");
  assert_int_equal(s->options.items[0].value->kind, VPQ_AST_STRING);
  assert_string_equal(s->options.items[0].value->sval, "kafka");
  assert_string_equal(s->options.items[3].key, "timestamp");
  assert_string_equal(s->options.items[3].value->sval, "ts");
  assert_string_equal(s->options.items[4].key, "watermark_delay");
  assert_int_equal(s->options.items[4].value->kind, VPQ_AST_INTERVAL);
  assert_int_equal(s->options.items[4].value->ival, 5000);
  assert_string_equal(span_text(&p, s->options.items[4].value->span), "5 SECONDS");
  /* The statement runs from CREATE to its `;`. */
  assert_int_equal(s->span.off, strstr(design, "CREATE STREAM telemetry") - design);
  assert_int_equal(s->span.off + s->span.len, strstr(design, "5 SECONDS);") - design + 11);

  s = p.file->stmts[3];
  assert_int_equal(s->kind, VPQ_STMT_CREATE_STREAM);
  assert_string_equal(s->name, "site_meters");
  assert_int_equal(s->ncols, 3);
  assert_int_equal(s->options.count, 4);
  done(&p);
}

static void design_tables(void **state) {
  (void)state;
  parsed p;
  parse(&p, design);

  const vpq_ast_stmt *s = p.file->stmts[1];
  assert_int_equal(s->kind, VPQ_STMT_CREATE_TABLE);
  assert_string_equal(s->name, "batteries");
  assert_int_equal(s->ncols, 0);
  assert_int_equal(s->options.count, 0);
  const vpq_ast_query *q = s->query;
  assert_int_equal(q->kind, VPQ_QUERY_SELECT);
  const vpq_ast_select *sel = &q->u.select;
  assert_int_equal(sel->nitems, 7);
  assert_int_equal(sel->items[0].expr->kind, VPQ_AST_COLUMN);
  assert_null(sel->items[0].alias);
  assert_int_equal(sel->items[1].expr->kind, VPQ_AST_CALL);
  assert_string_equal(sel->items[1].expr->name, "last");
  assert_string_equal(sel->items[1].alias, "site");
  assert_string_equal(sel->items[6].alias, "seen");
  assert_string_equal(sel->from.name, "telemetry");
  assert_null(sel->from.alias);
  assert_int_equal(sel->group_by.count, 1);
  assert_false(sel->rollup);
  assert_string_equal(span_text(&p, sel->group_span), "GROUP");
  assert_int_equal(sel->window.kind, VPQ_WINDOW_NONE);
  assert_int_equal(sel->emit, VPQ_EMIT_DEFAULT);
  assert_null(sel->where);
  assert_null(sel->having);
  assert_string_equal(span_text(&p, q->span), "SELECT device_id, last(site) AS site, last(region) AS region, "
                                              "last(soc) AS soc,\n         last(capacity_kwh) AS capacity_kwh, "
                                              "last(max_kw) AS max_kw, last(ts) AS seen\n  FROM telemetry\n"
                                              "  GROUP BY device_id");

  sel = &p.file->stmts[2]->query->u.select;
  assert_true(sel->rollup);
  assert_int_equal(sel->group_by.count, 2);
  assert_string_equal(sel->group_by.items[0]->name, "region");
  assert_string_equal(sel->group_by.items[1]->name, "site");
  assert_string_equal(fmt(sel->items[2].expr), "count(*)");
  assert_int_equal(sel->items[2].expr->args[0]->kind, VPQ_AST_STAR);
  assert_string_equal(fmt(sel->items[3].expr), "sum(soc * capacity_kwh)");
  assert_true(ends_with(span_text(&p, p.file->stmts[2]->query->span), "FROM batteries\n  GROUP BY ROLLUP (region, site)"));
  done(&p);
}

static void design_windows(void **state) {
  (void)state;
  parsed p;
  parse(&p, design);
  const vpq_ast_select *sel = &p.file->stmts[4]->query->u.select;
  assert_int_equal(sel->items[1].expr->kind, VPQ_AST_COLUMN);
  assert_string_equal(sel->items[1].expr->name, "WINDOW_START");
  assert_string_equal(sel->items[1].alias, "ts");
  assert_string_equal(sel->items[2].expr->name, "time_weighted_avg");
  assert_int_equal(sel->window.kind, VPQ_WINDOW_TUMBLING);
  assert_int_equal(sel->window.size->ival, 15 * 60000);
  assert_null(sel->window.grace);
  assert_string_equal(span_text(&p, sel->window.span), "WINDOW TUMBLING (SIZE 15 MINUTES)");
  assert_int_equal(sel->emit, VPQ_EMIT_FINAL);
  assert_string_equal(span_text(&p, sel->emit_span), "EMIT FINAL");

  sel = &p.file->stmts[5]->query->u.select;
  assert_int_equal(sel->group_by.count, 0);
  assert_int_equal(sel->window.kind, VPQ_WINDOW_TUMBLING);
  assert_int_equal(sel->emit, VPQ_EMIT_FINAL);
  done(&p);
}

static void design_forecast_and_schedule(void **state) {
  (void)state;
  parsed p;
  parse(&p, design);
  const vpq_ast_stmt *s = p.file->stmts[6];
  assert_string_equal(s->name, "load_forecast");
  assert_int_equal(s->query->kind, VPQ_QUERY_FORECAST);
  const vpq_ast_forecast *f = &s->query->u.forecast;
  assert_string_equal(f->value->name, "load_kw");
  assert_string_equal(f->from.name, "plant_load");
  assert_int_equal(f->by.count, 0);
  assert_string_equal(f->model, "holt_winters");
  assert_string_equal(span_text(&p, f->model_span), "holt_winters");
  assert_int_equal(f->model_options.count, 1);
  assert_string_equal(f->model_options.items[0].key, "season");
  assert_int_equal(f->model_options.items[0].value->ival, 86400000);
  assert_int_equal(f->horizon->ival, 24 * 3600000);
  assert_int_equal(f->every->ival, 15 * 60000);
  assert_null(f->step);
  assert_string_equal(span_text(&p, s->query->span), "FORECAST load_kw FROM plant_load\n  USING holt_winters "
                                                     "(season = 1 DAY)\n  HORIZON 24 HOURS EVERY 15 MINUTES");

  s = p.file->stmts[7];
  assert_string_equal(s->name, "dispatch");
  assert_int_equal(s->options.count, 3);
  assert_string_equal(s->options.items[1].value->sval, "vpp.dispatch");
  assert_int_equal(s->query->kind, VPQ_QUERY_SCHEDULE);
  const vpq_ast_schedule *sc = &s->query->u.schedule;
  assert_string_equal(sc->fleet.name, "batteries");
  assert_string_equal(sc->forecast.name, "load_forecast");
  assert_int_equal(sc->objective, VPQ_OBJECTIVE_MINIMIZE_PEAK);
  assert_string_equal(span_text(&p, sc->objective_span), "MINIMIZE PEAK");
  assert_null(sc->cap);
  assert_int_equal(sc->constraints.count, 2);
  assert_string_equal(fmt(sc->constraints.items[0]), "soc >= 0.1");
  assert_string_equal(fmt(sc->constraints.items[1]), "soc <= 0.95");
  assert_int_equal(sc->horizon->ival, 24 * 3600000);
  assert_int_equal(sc->step->ival, 15 * 60000);
  assert_false(sc->emit_plan);
  done(&p);
}

/* ===== Other forms ===== */

static void forecast_and_schedule_options(void **state) {
  (void)state;
  parsed p;
  parse(&p, "CREATE STREAM f AS FORECAST load_kw FROM meters BY site, region USING linear "
            "(features = (temp, wind), alpha = 0.5) HORIZON 1 DAY EVERY 1 HOUR STEP 15 MINUTES;\n"
            "CREATE STREAM a AS SCHEDULE fleet FOR f KEEP BELOW 500 KW HORIZON 1 DAY STEP 1 HOUR EMIT PLAN;\n"
            "CREATE STREAM b AS SCHEDULE fleet FOR f MINIMIZE COST USING prices HORIZON 1 DAY STEP 1 HOUR");
  assert_int_equal(p.diag.count, 0);
  assert_int_equal(p.file->count, 3);
  const vpq_ast_forecast *f = &p.file->stmts[0]->query->u.forecast;
  assert_int_equal(f->by.count, 2);
  assert_string_equal(f->by.items[1]->name, "region");
  assert_string_equal(f->model, "linear");
  assert_int_equal(f->model_options.count, 2);
  const vpq_ast_expr *features = f->model_options.items[0].value;
  assert_int_equal(features->kind, VPQ_AST_LIST);
  assert_int_equal(features->nargs, 2);
  assert_int_equal(features->args[0]->kind, VPQ_AST_COLUMN);
  assert_string_equal(features->args[1]->name, "wind");
  assert_string_equal(span_text(&p, features->span), "(temp, wind)");
  assert_int_equal(f->step->ival, 15 * 60000);

  const vpq_ast_schedule *sc = &p.file->stmts[1]->query->u.schedule;
  assert_int_equal(sc->objective, VPQ_OBJECTIVE_KEEP_BELOW);
  assert_int_equal(sc->cap->ival, 500);
  assert_string_equal(span_text(&p, sc->objective_span), "KEEP BELOW 500 KW");
  assert_true(sc->emit_plan);
  assert_int_equal(sc->constraints.count, 0);
  assert_true(ends_with(span_text(&p, p.file->stmts[1]->query->span), "STEP 1 HOUR EMIT PLAN"));

  sc = &p.file->stmts[2]->query->u.schedule;
  assert_int_equal(sc->objective, VPQ_OBJECTIVE_MINIMIZE_COST);
  assert_string_equal(sc->price.name, "prices");
  /* The last statement may omit its `;`: its span ends with its last token. */
  assert_true(ends_with(span_text(&p, p.file->stmts[2]->span), "prices HORIZON 1 DAY STEP 1 HOUR"));
  done(&p);
}

static void joins_windows_and_clauses(void **state) {
  (void)state;
  parsed p;
  parse(&p, "INSERT INTO out SELECT t.*, d.owner AS who, count(DISTINCT t.site) n\n"
            "FROM telemetry AS t JOIN devices d ON t.device_id = d.id\n"
            "LEFT JOIN meters m WITHIN 5 MINUTES ON m.site = t.site\n"
            "WINDOW HOPPING (SIZE 10 MINUTES, ADVANCE BY 5 MINUTES, GRACE PERIOD 10 SECONDS)\n"
            "WHERE t.soc > 0.5 GROUP BY d.owner HAVING count(*) > 2 EMIT CHANGES;\n"
            "CREATE STREAM s2 AS SELECT * FROM t WINDOW SESSION (2 MINUTES, GRACE PERIOD 1 SECOND);\n"
            "CREATE STREAM s3 AS SELECT * FROM t WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 500 MILLISECONDS);\n"
            "CREATE TABLE devices (id STRING PRIMARY KEY, owner VARCHAR, n INT, ok BOOLEAN, w INTEGER) "
            "WITH ('kafka.security.protocol' = 'SSL', bounded = true);\n");
  assert_int_equal(p.diag.count, 0);
  assert_int_equal(p.file->count, 4);

  const vpq_ast_stmt *s = p.file->stmts[0];
  assert_int_equal(s->kind, VPQ_STMT_INSERT_INTO);
  assert_string_equal(s->name, "out");
  const vpq_ast_select *sel = &s->query->u.select;
  assert_int_equal(sel->nitems, 3);
  assert_int_equal(sel->items[0].expr->kind, VPQ_AST_STAR);
  assert_string_equal(sel->items[0].expr->qualifier, "t");
  assert_string_equal(sel->items[1].expr->qualifier, "d");
  assert_string_equal(sel->items[1].expr->name, "owner");
  assert_string_equal(span_text(&p, sel->items[1].expr->name_span), "owner");
  assert_string_equal(span_text(&p, sel->items[1].expr->span), "d.owner");
  assert_string_equal(sel->items[1].alias, "who");
  assert_true(sel->items[2].expr->distinct);
  assert_string_equal(sel->items[2].alias, "n");
  assert_string_equal(sel->from.name, "telemetry");
  assert_string_equal(sel->from.alias, "t");
  assert_int_equal(sel->njoins, 2);
  assert_int_equal(sel->joins[0].kind, VPQ_JOIN_INNER);
  assert_null(sel->joins[0].within);
  assert_string_equal(sel->joins[0].rel.alias, "d");
  assert_string_equal(fmt(sel->joins[0].on), "t.device_id = d.id");
  assert_int_equal(sel->joins[1].kind, VPQ_JOIN_LEFT);
  assert_string_equal(span_text(&p, sel->joins[1].span), "LEFT JOIN");
  assert_int_equal(sel->joins[1].within->ival, 5 * 60000);
  assert_int_equal(sel->window.kind, VPQ_WINDOW_HOPPING);
  assert_int_equal(sel->window.size->ival, 10 * 60000);
  assert_int_equal(sel->window.advance->ival, 5 * 60000);
  assert_int_equal(sel->window.grace->ival, 10000);
  assert_string_equal(fmt(sel->where), "t.soc > 0.5");
  assert_string_equal(fmt(sel->having), "count(*) > 2");
  assert_int_equal(sel->emit, VPQ_EMIT_CHANGES);

  sel = &p.file->stmts[1]->query->u.select;
  assert_int_equal(sel->items[0].expr->kind, VPQ_AST_STAR);
  assert_null(sel->items[0].expr->qualifier);
  assert_int_equal(sel->window.kind, VPQ_WINDOW_SESSION);
  assert_int_equal(sel->window.gap->ival, 120000);
  assert_int_equal(sel->window.grace->ival, 1000);
  sel = &p.file->stmts[2]->query->u.select;
  assert_int_equal(sel->window.size->ival, 60000);
  assert_int_equal(sel->window.grace->ival, 500);

  s = p.file->stmts[3];
  assert_int_equal(s->kind, VPQ_STMT_CREATE_TABLE);
  assert_true(s->cols[0].is_primary_key);
  assert_int_equal(s->cols[1].type, VPQ_AST_TYPE_STRING);
  assert_int_equal(s->cols[2].type, VPQ_AST_TYPE_BIGINT);
  assert_int_equal(s->cols[3].type, VPQ_AST_TYPE_BOOLEAN);
  assert_int_equal(s->cols[4].type, VPQ_AST_TYPE_BIGINT);
  assert_string_equal(s->options.items[0].key, "kafka.security.protocol");
  assert_int_equal(s->options.items[1].value->kind, VPQ_AST_BOOL);
  assert_int_equal(s->options.items[1].value->ival, 1);
  done(&p);
}

static void keywords_as_names(void **state) {
  (void)state;
  parsed p;
  parse(&p, "create stream Readings (key string key, step bigint, value double, timestamp timestamp, "
            "emit int, \"Odd \"\"Name\"\"\" double) with (Timestamp = 'timestamp', GROUP = 'g', Path = x);\n"
            "create stream r2 as select key, step, emit + size AS Total, hour, KW from Readings emit changes;\n"
            "create stream r3 as select Sum(value) from Readings r group by r.key emit final");
  assert_int_equal(p.diag.count, 0);
  assert_int_equal(p.file->count, 3);
  const vpq_ast_stmt *s = p.file->stmts[0];
  assert_string_equal(s->name, "Readings");
  assert_string_equal(s->cols[0].name, "key");
  assert_true(s->cols[0].is_key);
  assert_string_equal(s->cols[1].name, "step");
  assert_string_equal(s->cols[3].name, "timestamp");
  assert_int_equal(s->cols[3].type, VPQ_AST_TYPE_TIMESTAMP);
  assert_string_equal(s->cols[4].name, "emit");
  assert_string_equal(s->cols[5].name, "Odd \"Name\"");
  assert_string_equal(s->options.items[0].key, "timestamp");
  assert_string_equal(s->options.items[1].key, "group");
  assert_string_equal(s->options.items[2].key, "path");
  assert_int_equal(s->options.items[2].value->kind, VPQ_AST_COLUMN);
  assert_string_equal(s->options.items[2].value->name, "x");

  const vpq_ast_select *sel = &p.file->stmts[1]->query->u.select;
  assert_int_equal(sel->nitems, 5);
  assert_string_equal(sel->items[1].expr->name, "step");
  assert_string_equal(fmt(sel->items[2].expr), "emit + size");
  assert_string_equal(sel->items[2].alias, "Total");
  assert_string_equal(sel->items[3].expr->name, "hour");
  assert_string_equal(sel->items[4].expr->name, "KW");
  assert_null(sel->from.alias);
  assert_int_equal(sel->emit, VPQ_EMIT_CHANGES);

  sel = &p.file->stmts[2]->query->u.select;
  assert_string_equal(sel->items[0].expr->name, "sum");
  assert_string_equal(span_text(&p, sel->items[0].expr->name_span), "Sum");
  assert_string_equal(sel->from.alias, "r");
  assert_int_equal(sel->emit, VPQ_EMIT_FINAL);
  done(&p);
}

/* ===== Expressions ===== */

static void precedence(void **state) {
  (void)state;
  parsed p;
  const vpq_ast_expr *e = select_expr(&p, "SELECT a + b * c FROM s");
  assert_int_equal(e->kind, VPQ_AST_BINARY);
  assert_int_equal(e->op, VPQ_OP_ADD);
  assert_int_equal(e->args[1]->op, VPQ_OP_MUL);
  assert_string_equal(span_text(&p, e->args[1]->span), "b * c");
  done(&p);

  e = select_expr(&p, "SELECT NOT a = b AND c FROM s");
  assert_int_equal(e->op, VPQ_OP_AND);
  assert_int_equal(e->args[0]->kind, VPQ_AST_UNARY);
  assert_int_equal(e->args[0]->op, VPQ_OP_NOT);
  assert_int_equal(e->args[0]->args[0]->op, VPQ_OP_EQ);
  assert_string_equal(span_text(&p, e->args[0]->span), "NOT a = b");
  assert_string_equal(e->args[1]->name, "c");
  done(&p);

  e = select_expr(&p, "SELECT a OR b AND c FROM s");
  assert_int_equal(e->op, VPQ_OP_OR);
  assert_int_equal(e->args[1]->op, VPQ_OP_AND);
  done(&p);

  e = select_expr(&p, "SELECT -a * b - c % d FROM s");
  assert_int_equal(e->op, VPQ_OP_SUB);
  assert_int_equal(e->args[0]->op, VPQ_OP_MUL);
  assert_int_equal(e->args[0]->args[0]->kind, VPQ_AST_UNARY);
  assert_int_equal(e->args[0]->args[0]->op, VPQ_OP_NEG);
  assert_int_equal(e->args[1]->op, VPQ_OP_MOD);
  done(&p);

  e = select_expr(&p, "SELECT a - b - c FROM s");
  assert_int_equal(e->op, VPQ_OP_SUB);
  assert_int_equal(e->args[0]->op, VPQ_OP_SUB);
  assert_string_equal(e->args[1]->name, "c");
  done(&p);

  e = select_expr(&p, "SELECT (a + b) * c FROM s");
  assert_int_equal(e->op, VPQ_OP_MUL);
  assert_string_equal(span_text(&p, e->span), "(a + b) * c");
  assert_string_equal(span_text(&p, e->args[0]->span), "(a + b)");
  done(&p);

  e = select_expr(&p, "SELECT a + 1 IS NOT NULL AND b IS NULL FROM s");
  assert_int_equal(e->op, VPQ_OP_AND);
  assert_int_equal(e->args[0]->kind, VPQ_AST_IS_NULL);
  assert_true(e->args[0]->negated);
  assert_int_equal(e->args[0]->args[0]->op, VPQ_OP_ADD);
  assert_false(e->args[1]->negated);
  assert_string_equal(span_text(&p, e->args[0]->span), "a + 1 IS NOT NULL");
  done(&p);
}

static void literals(void **state) {
  (void)state;
  parsed p;
  parse(&p, "CREATE STREAM x AS SELECT 42, 2.5e3, 'it''s', TRUE, false, NULL, -7, 1.5 HOURS, 500 milliseconds, 2 days, "
            "0.25 SECOND FROM s");
  assert_int_equal(p.diag.count, 0);
  const vpq_ast_select *sel = &p.file->stmts[0]->query->u.select;
  assert_int_equal(sel->nitems, 11);
  assert_int_equal(sel->items[0].expr->kind, VPQ_AST_INT);
  assert_int_equal(sel->items[0].expr->ival, 42);
  assert_int_equal(sel->items[1].expr->kind, VPQ_AST_DOUBLE);
  assert_true(sel->items[1].expr->dval == 2500.0);
  assert_string_equal(sel->items[2].expr->sval, "it's");
  assert_int_equal(sel->items[3].expr->ival, 1);
  assert_int_equal(sel->items[4].expr->kind, VPQ_AST_BOOL);
  assert_int_equal(sel->items[4].expr->ival, 0);
  assert_int_equal(sel->items[5].expr->kind, VPQ_AST_NULL);
  const vpq_ast_expr *neg = sel->items[6].expr;
  assert_int_equal(neg->kind, VPQ_AST_UNARY);
  assert_int_equal(neg->op, VPQ_OP_NEG);
  assert_int_equal(neg->args[0]->ival, 7);
  assert_int_equal(sel->items[7].expr->kind, VPQ_AST_INTERVAL);
  assert_int_equal(sel->items[7].expr->ival, 5400000);
  assert_string_equal(span_text(&p, sel->items[7].expr->span), "1.5 HOURS");
  assert_int_equal(sel->items[8].expr->ival, 500);
  assert_int_equal(sel->items[9].expr->ival, 2 * 86400000LL);
  assert_int_equal(sel->items[10].expr->ival, 250);
  done(&p);
}

static void bad_literals(void **state) {
  (void)state;
  parsed p;
  parse(&p, "CREATE STREAM x AS SELECT 1.0005 SECONDS, 99999999999999999999, 1e999, 200000000000 DAYS, "
            "3660000 DAYS, 3660001 DAYS FROM s");
  assert_int_equal(p.diag.count, 5);
  assert_string_equal(p.diag.entries[0].message, "interval `1.0005 SECONDS` is not a whole number of milliseconds");
  assert_string_equal(p.diag.entries[1].message, "integer `99999999999999999999` is out of range");
  assert_string_equal(p.diag.entries[2].message, "number `1e999` is out of range");
  assert_string_equal(p.diag.entries[3].message, "interval `200000000000 DAYS` is out of range (at most 10,000 years)");
  assert_string_equal(p.diag.entries[4].message, "interval `3660001 DAYS` is out of range (at most 10,000 years)");
  assert_string_equal(span_text(&p, p.diag.entries[0].span), "1.0005 SECONDS");
  done(&p);
}

static void calls_and_case(void **state) {
  (void)state;
  parsed p;
  const vpq_ast_expr *e = select_expr(&p, "SELECT COALESCE(a, round(b, 2), now()) FROM s");
  assert_int_equal(e->kind, VPQ_AST_CALL);
  assert_string_equal(e->name, "coalesce");
  assert_string_equal(span_text(&p, e->name_span), "COALESCE");
  assert_string_equal(span_text(&p, e->span), "COALESCE(a, round(b, 2), now())");
  assert_int_equal(e->nargs, 3);
  assert_int_equal(e->args[2]->nargs, 0);
  done(&p);

  e = select_expr(&p, "SELECT CASE WHEN x > 1 THEN 'a' WHEN x < 0 THEN 'n' ELSE 'b' END FROM s");
  assert_int_equal(e->kind, VPQ_AST_CASE);
  assert_null(e->case_operand);
  assert_int_equal(e->nargs, 4);
  assert_string_equal(e->case_else->sval, "b");
  assert_string_equal(span_text(&p, e->span), "CASE WHEN x > 1 THEN 'a' WHEN x < 0 THEN 'n' ELSE 'b' END");
  done(&p);

  e = select_expr(&p, "SELECT CASE kind WHEN 1 THEN 'one' END FROM s");
  assert_string_equal(e->case_operand->name, "kind");
  assert_int_equal(e->nargs, 2);
  assert_null(e->case_else);
  done(&p);
}

static void formatting(void **state) {
  (void)state;
  parsed p;
  parse(&p, "CREATE STREAM x AS SELECT sum(soc * capacity_kwh), count(*), count(DISTINCT site), a + b, (a + b) * c, a - (b - c), "
            "-(-a), -(a + b), NOT (a OR b), CASE WHEN x > 1 THEN 'a' ELSE 'b' END, 5 SECONDS, 90 MINUTES, "
            "1500 MILLISECONDS, 1 day, 'o''k', 2.0, 1e20, x IS NOT NULL, t.*, s.a, (a = b) IS NULL FROM s");
  assert_int_equal(p.diag.count, 0);
  const char *want[] = {"sum(soc * capacity_kwh)",
                        "count(*)",
                        "count(DISTINCT site)",
                        "a + b",
                        "(a + b) * c",
                        "a - (b - c)",
                        "-(-a)",
                        "-(a + b)",
                        "NOT (a OR b)",
                        "CASE WHEN x > 1 THEN 'a' ELSE 'b' END",
                        "5 SECONDS",
                        "90 MINUTES",
                        "1500 MILLISECONDS",
                        "1 DAY",
                        "'o''k'",
                        "2.0",
                        "1e+20",
                        "x IS NOT NULL",
                        "t.*",
                        "s.a",
                        "(a = b) IS NULL"};
  const vpq_ast_select *sel = &p.file->stmts[0]->query->u.select;
  assert_int_equal(sel->nitems, (int)(sizeof want / sizeof *want));
  for (int i = 0; i < sel->nitems; i++) assert_string_equal(fmt(sel->items[i].expr), want[i]);

  char small[8];
  assert_string_equal(vpq_ast_expr_format(sel->items[0].expr, small, sizeof small), "sum(soc");
  done(&p);

  assert_string_equal(vpq_ast_op_text(VPQ_OP_LE), "<=");
  assert_string_equal(vpq_ast_op_text(VPQ_OP_AND), "AND");
}

/* ===== Errors and recovery ===== */

static void every_statement_error_is_reported(void **state) {
  (void)state;
  parsed p;
  parse(&p, "CREATE STREAM a AS SELECT x FROM;\n"
            "CREATE STREM b (x INT);\n"
            "CREATE STREAM ok AS SELECT x FROM s;\n"
            "CREATE STREAM c AS SELECT x, FROM s;\n"
            "CREATE STREAM d AS SELECT # FROM s;\n"
            "CREATE TABLE e (x INT PRIMARY);\n"
            "CREATE STREAM ok2 AS SELECT y FROM s\n");
  assert_int_equal(p.diag.count, 5);
  assert_string_equal(p.diag.entries[0].message, "syntax error near `;`");
  assert_string_equal(p.diag.entries[1].message, "syntax error near `STREM`");
  assert_string_equal(span_text(&p, p.diag.entries[1].span), "STREM");
  assert_string_equal(p.diag.entries[2].message, "syntax error near `FROM`");
  assert_string_equal(p.diag.entries[3].message, "unexpected character '#'");
  assert_string_equal(p.diag.entries[4].message, "syntax error near `)`");
  int line, col;
  vpq_diag_position(&p.diag, p.diag.entries[2].span.off, &line, &col);
  assert_int_equal(line, 4);
  assert_int_equal(col, 30);
  assert_int_equal(p.file->count, 2);
  assert_string_equal(p.file->stmts[0]->name, "ok");
  assert_string_equal(p.file->stmts[1]->name, "ok2");
  done(&p);
}

static void end_of_input(void **state) {
  (void)state;
  parsed p;
  parse(&p, "CREATE STREAM v AS SELECT a FROM s WHERE  -- the condition is missing\n");
  assert_int_equal(p.diag.count, 1);
  assert_string_equal(p.diag.entries[0].message, "syntax error: unexpected end of input");
  assert_int_equal(p.diag.entries[0].span.off, strlen("CREATE STREAM v AS SELECT a FROM s WHERE"));
  assert_int_equal(p.file->count, 0);
  done(&p);

  parse(&p, "CREATE STREAM v AS SELECT 'abc FROM s;\nCREATE STREAM w AS SELECT 1 FROM s;");
  assert_int_equal(p.diag.count, 1);
  assert_string_equal(p.diag.entries[0].message, "unterminated string literal");
  done(&p);

  parse(&p, "  /* nothing */ ;; -- at all\n");
  assert_int_equal(p.diag.count, 0);
  assert_int_equal(p.file->count, 0);
  done(&p);
}

static void deep_nesting_is_an_error(void **state) {
  (void)state;
  char text[4096] = "CREATE STREAM deep AS SELECT ";
  for (int i = 0; i < 1000; i++) strcat(text, "(");
  strcat(text, "1");
  for (int i = 0; i < 1000; i++) strcat(text, ")");
  strcat(text, " FROM s;\nCREATE STREAM ok AS SELECT 1 FROM s;");
  parsed p;
  parse(&p, text);
  assert_int_equal(p.diag.count, 1);
  assert_string_equal(p.diag.entries[0].message, "statement nested too deeply");
  assert_int_equal(p.file->count, 1);
  done(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(design_sources),
      cmocka_unit_test(design_tables),
      cmocka_unit_test(design_windows),
      cmocka_unit_test(design_forecast_and_schedule),
      cmocka_unit_test(forecast_and_schedule_options),
      cmocka_unit_test(joins_windows_and_clauses),
      cmocka_unit_test(keywords_as_names),
      cmocka_unit_test(precedence),
      cmocka_unit_test(literals),
      cmocka_unit_test(bad_literals),
      cmocka_unit_test(calls_and_case),
      cmocka_unit_test(formatting),
      cmocka_unit_test(every_statement_error_is_reported),
      cmocka_unit_test(end_of_input),
      cmocka_unit_test(deep_nesting_is_an_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
