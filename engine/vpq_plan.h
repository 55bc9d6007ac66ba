/* vpq_plan.h — the logical plan: what the analyzer (vpq_analyze.c) makes of a checked file,
 * and what the physical planner (vpq_physical.c) turns into operators.
 *
 * A file becomes a catalog of named relations (streams and tables). A relation is fed by a
 * source connector, or by queries (its AS query and any INSERT INTO ... queries); every
 * relation is computed once and its rows fan out to every query that reads it, so the whole
 * file is one DAG:
 *
 *   source telemetry ──► batteries (table: GROUP BY device_id) ──► fleet (ROLLUP over table)
 *                    └─► alerts (stream: WHERE soc < 0.1) ──► file sink
 *
 * A SELECT query has one fixed shape, evaluated in this order:
 *
 *   FROM ─► JOIN ... ─► WHERE ─► [WINDOW + GROUP BY aggregates ─► HAVING] ─► SELECT list
 *
 * Bound expressions (vpq_bexpr) are typed and refer to columns by index in a row layout:
 *  - "input layout": the FROM relation's columns, then each joined relation's columns in
 *    JOIN order (WHERE, GROUP BY keys, aggregate arguments, and the SELECT list of a query
 *    without aggregation are bound against it);
 *  - "aggregate layout": the group keys (in GROUP BY order), then the aggregates' results
 *    (in vpq_plan_select.aggs order), then WINDOW_START and WINDOW_END when windowed, then
 *    with ROLLUP one BIGINT per key, its GROUPING flag (1 where the row rolled it up; HAVING
 *    and the SELECT list of an aggregate query are bound against it).
 */
#ifndef VPQ_PLAN_H
#define VPQ_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "../grammar/vpq_ast.h"
#include "vpq_agg.h"
#include "vpq_model.h"
#include "vpq_sched.h"
#include "vpq_types.h"

/* ===== Bound expressions ===== */

typedef enum vpq_bexpr_kind {
  VPQ_BEXPR_CONST,   /* value, or NULL when is_null */
  VPQ_BEXPR_COLUMN,  /* column: index in the layout the expression is bound against */
  VPQ_BEXPR_UNARY,   /* op (VPQ_OP_NEG, VPQ_OP_NOT), args[0] */
  VPQ_BEXPR_BINARY,  /* op, args[0], args[1]; both operands already of one type (casts added) */
  VPQ_BEXPR_CAST,    /* args[0] converted to `type` (BIGINT→DOUBLE, TIMESTAMP↔BIGINT, ...) */
  VPQ_BEXPR_FUNC,    /* func, args[] */
  VPQ_BEXPR_CASE,    /* args = WHEN,THEN pairs then ELSE (a NULL constant when absent) */
  VPQ_BEXPR_IS_NULL, /* args[0]; negated = IS NOT NULL */
} vpq_bexpr_kind;

typedef enum vpq_func {
  VPQ_FUNC_COALESCE,
  VPQ_FUNC_ABS,
  VPQ_FUNC_ROUND,    /* round(x) or round(x, digits) */
  VPQ_FUNC_LEAST,
  VPQ_FUNC_GREATEST,
} vpq_func;

typedef struct vpq_bexpr vpq_bexpr;
struct vpq_bexpr {
  vpq_bexpr_kind kind;
  vpq_type type; /* result type */
  vpq_span span;
  vpq_ast_op op;
  vpq_func func;
  int column;
  vpq_datum value;       /* CONST; a STRING constant's id is set by the runtime from `text` */
  const char *text;      /* CONST STRING: the string */
  bool is_null;
  bool negated;
  bool exact; /* CAST from DOUBLE to BIGINT: NULL unless a whole number (a DOUBLE matched with a
                 table's BIGINT key) */
  vpq_bexpr **args;
  int nargs;
  int args_cap; /* room in args (badd grows it by doubling) */
};

/* ===== Schemas ===== */

typedef struct vpq_column {
  const char *name;
  vpq_type type;
  bool is_key; /* KEY / PRIMARY KEY / GROUP BY key: the row's key */
  bool unread; /* a source column no query reads: set by the runtime, decoders may skip it */
  bool is_window; /* a windowed aggregate's WINDOW_START or WINDOW_END: with the key, names a row */
} vpq_column;

typedef struct vpq_schema {
  vpq_column *cols;
  int ncols;
} vpq_schema;

/* ===== Relations ===== */

typedef enum vpq_relation_kind {
  VPQ_REL_STREAM,
  VPQ_REL_TABLE, /* keyed; its rows form a changelog (diff -1 retracts a key's old row) */
} vpq_relation_kind;

/* WITH (...) options with their values already checked and converted. */
typedef struct vpq_plan_option {
  const char *key;       /* lower-cased; `kafka.<property>` keys keep their text */
  vpq_span span;
  vpq_type type;         /* STRING, BIGINT, DOUBLE, BOOLEAN or INTERVAL (ms) */
  const char *text;      /* STRING values */
  vpq_datum value;       /* other values */
} vpq_plan_option;

typedef struct vpq_plan_options {
  vpq_plan_option *items;
  int count;
} vpq_plan_options;

/* A connector (source or sink) as named in WITH (...). */
typedef struct vpq_plan_connector {
  const char *connector; /* "file", "kafka", "sim"; NULL when the relation has none */
  const char *format;    /* "json" or "csv" */
  const char *path;      /* file connector: resolved against the .vpq file's folder */
  const char *dead_letter; /* resolved like path; NULL when not configured */
  bool dead_letter_topic;  /* Kafka source: dead_letter names a topic of its cluster */
  vpq_plan_options options; /* every option as written (for connector-specific ones) */
} vpq_plan_connector;

typedef struct vpq_plan_query vpq_plan_query;

typedef struct vpq_relation {
  const char *name;
  vpq_span span;
  vpq_relation_kind kind;
  vpq_schema schema;
  int *key_cols; /* indexes into schema of the key columns, in key order */
  int nkeys;
  int windowed;  /* a windowed table: its key also includes the window */

  /* Fed by a source connector ... */
  bool is_source;
  vpq_plan_connector source;
  int ts_col;            /* source: the `timestamp` column, or -1 (message/processing time) */
  int64_t watermark_delay_ms;
  int64_t idle_timeout_ms;

  /* ... or by queries (the AS query first, then INSERT INTO queries in file order). */
  vpq_plan_query **queries;
  int nqueries;

  /* Written to a sink when WITH names a connector on a derived relation (or the relation is
   * a target of INSERT INTO and declares a connector). */
  bool is_sink;
  vpq_plan_connector sink;

  bool declared; /* declared with columns (a source, or a stream fed by INSERT INTO) */
  int index;     /* position in vpq_plan.relations */
} vpq_relation;

/* ===== Queries ===== */

typedef enum vpq_plan_join_kind {
  VPQ_PLAN_JOIN_TABLE,  /* stream–table: look up the table's current row by key */
  VPQ_PLAN_JOIN_WITHIN, /* stream–stream: pairs whose event times differ by <= within_ms */
} vpq_plan_join_kind;

typedef struct vpq_plan_join {
  vpq_plan_join_kind kind;
  bool left_outer;       /* LEFT JOIN: unmatched left rows come out with NULLs on the right */
  vpq_relation *right;
  const char *alias;
  int64_t within_ms;
  /* Equality conjuncts of ON: left_keys[i] (bound to the input layout so far, i.e. without
   * this join's columns) = right_keys[i] (bound to the right relation's own schema). For a
   * table join they are the table's key columns in key order. */
  vpq_bexpr **left_keys;
  vpq_bexpr **right_keys;
  int nkeys;
  vpq_bexpr *residual;   /* the rest of ON, bound to the input layout including this join; or NULL */
  int right_offset;      /* where the right relation's columns start in the input layout */
} vpq_plan_join;

typedef struct vpq_plan_window {
  vpq_ast_window_kind kind; /* NONE when not windowed */
  int64_t size_ms;
  int64_t advance_ms;       /* = size for TUMBLING */
  int64_t gap_ms;           /* SESSION */
  int64_t grace_ms;
} vpq_plan_window;

typedef struct vpq_plan_agg {
  vpq_agg_spec spec;
  vpq_bexpr *arg;   /* bound to the input layout; NULL for count(*) */
  vpq_span span;
} vpq_plan_agg;

typedef struct vpq_plan_select {
  vpq_relation *from;
  vpq_plan_join *joins;
  int njoins;
  vpq_schema input;       /* the input layout: FROM's columns then each join's */
  vpq_bexpr *where;       /* or NULL */
  bool aggregate;         /* GROUP BY or aggregates present */
  vpq_plan_window window;
  vpq_bexpr **group_keys; /* bound to the input layout */
  int ngroup_keys;
  bool rollup;
  vpq_plan_agg *aggs;
  int naggs;
  vpq_bexpr *having;      /* bound to the aggregate layout; or NULL */
  vpq_ast_emit emit;      /* FINAL or CHANGES (DEFAULT resolved by the analyzer) */
  vpq_bexpr **outputs;    /* the SELECT list, bound as the header comment says */
  int noutputs;
  bool input_is_changelog; /* FROM is a table: rows carry diffs, aggregates retract */
} vpq_plan_select;

/* The most steps a FORECAST keeps per key (its history, at least three seasons) and writes per
 * issue (its HORIZON): a STEP far finer than the season would take gigabytes per key. */
enum { VPQ_FORECAST_MAX_HISTORY_STEPS = 1000000, VPQ_FORECAST_MAX_HORIZON_STEPS = 100000 };

/* FORECAST value FROM rel [BY keys] USING model (options) HORIZON h EVERY e [STEP s]. The
 * output schema is the BY keys, then issued_at, ts, step, value, lo, hi. */
typedef struct vpq_plan_forecast {
  vpq_relation *from;
  vpq_bexpr *value;      /* bound to from's schema */
  vpq_bexpr **by;        /* bound to from's schema */
  int nby;
  int ts_col;            /* from's `ts` column */
  vpq_model_config model; /* step_ms and season are set when the step is known */
  const char *model_name;
  int64_t season_ms;     /* 0: none */
  int64_t history_ms;    /* the history kept per key (model option `history`) */
  int64_t retrain_ms;    /* refit at most this often (model option `retrain`); 0: every issue */
  int *features;         /* exogenous feature columns of from's schema */
  int nfeatures;
  int64_t horizon_ms;
  int64_t every_ms;
  int64_t step_ms;       /* 0: inferred from the timestamps */
} vpq_plan_forecast;

/* Fleet columns SCHEDULE reads, as indexes in the fleet table's schema (-1 when absent). */
enum { VPQ_FLEET_DEVICE, VPQ_FLEET_SOC, VPQ_FLEET_CAPACITY, VPQ_FLEET_MAX_KW, VPQ_FLEET_EFFICIENCY,
       VPQ_FLEET_MIN_SOC, VPQ_FLEET_MAX_SOC, VPQ_FLEET_SEEN, VPQ_FLEET_NCOLS };

/* SCHEDULE fleet FOR forecast objective [SUBJECT TO ...] HORIZON h STEP s [EMIT PLAN]. */
/* SCHEDULE's inputs, numbered as its operator's ports (vpq_op_schedule.c). */
enum { VPQ_SCHEDULE_FORECAST, VPQ_SCHEDULE_FLEET, VPQ_SCHEDULE_PRICE, VPQ_SCHEDULE_INPUTS };

typedef struct vpq_plan_schedule {
  vpq_relation *fleet;
  vpq_relation *forecast;
  vpq_relation *price;   /* MINIMIZE COST USING price; else NULL */
  vpq_sched_objective objective;
  double cap_kw;         /* KEEP BELOW */
  double min_soc;        /* SUBJECT TO: fleet-wide soc limits (default 0 and 1) */
  double max_soc;
  int64_t horizon_ms;
  int64_t step_ms;
  int64_t stale_after_ms; /* WITH (stale_after = ...); 0: a battery's row never goes stale */
  double peak_floor;     /* SUBJECT TO peak_floor = f * month_peak: f; 0: no floor */
  bool emit_plan;
  int fleet_cols[VPQ_FLEET_NCOLS];
  int forecast_ts, forecast_value, forecast_issued; /* columns of the forecast (issued -1: none) */
  int price_ts, price_value, price_issued;
} vpq_plan_schedule;

typedef enum vpq_plan_query_kind {
  VPQ_PLAN_SELECT,
  VPQ_PLAN_FORECAST,
  VPQ_PLAN_SCHEDULE,
} vpq_plan_query_kind;

struct vpq_plan_query {
  vpq_plan_query_kind kind;
  vpq_span span;
  vpq_relation *target;   /* the relation whose rows this query produces */
  vpq_plan_select select; /* SELECT */
  vpq_plan_forecast forecast; /* FORECAST */
  vpq_plan_schedule schedule; /* SCHEDULE */
  const vpq_ast_query *ast;
  /* Output column i of the query goes to target column column_map[i] (INSERT INTO matches
   * by name; the AS query maps one to one). Unmapped target columns are NULL. */
  int *column_map;
};

/* ===== The plan of one file ===== */

typedef struct vpq_plan {
  vpq_relation **relations; /* in declaration order: every relation after those it reads */
  int nrelations;
  const char *file;         /* the .vpq file's path, as given */
  const char *base_dir;     /* its folder, for relative connector paths */
} vpq_plan;

/* Checks `file` (parsed from diag->text) and builds its logical plan in `arena`. Every error
 * is recorded in `diag` with its position; analysis goes on after an error so that all of a
 * file's errors are reported in one run. Returns NULL when there were errors. `base_dir` is
 * where relative paths resolve. */
vpq_plan *vpq_analyze(vpq_arena *arena, vpq_diag *diag, const vpq_ast_file *file,
                      const char *file_name, const char *base_dir);

/* Whether `key` names an option of WITH (...) (a `kafka.<property>` included); when not, *hint
 * is the closest option's name, or NULL. */
bool vpq_analyze_option_known(const char *key, const char **hint);

/* Finds a relation by name (case-insensitive), or NULL. */
vpq_relation *vpq_plan_find(const vpq_plan *plan, const char *name);

/* Finds a column of `schema` by name (case-insensitive); returns its index or -1. */
int vpq_schema_find(const vpq_schema *schema, const char *name);

/* Writes a bound expression as text, naming columns from `layout` (for explain). */
char *vpq_bexpr_format(const vpq_bexpr *expr, const vpq_schema *layout, char *buf, size_t size);

#endif
