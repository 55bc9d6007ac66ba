/* vpq_ast.h — the syntax tree of a .vpq file, as the lemon parser builds it.
 *
 * Every node carries the span of text it came from, so the analyzer can point at it long after
 * parsing. All nodes live in the query's arena (vpq_arena) and are freed with it; there are no
 * per-node destructors. The parser's actions only call the vpq_ast_* constructors below: they
 * never evaluate, look up names or check types (that is engine/vpq_analyze.c's job).
 *
 *   vpq_ast_file ─► stmts[] ─► vpq_ast_stmt (CREATE STREAM/TABLE, INSERT INTO)
 *                                 ├─ cols[] / opts[]          (source declarations)
 *                                 └─ query ─► SELECT | FORECAST | SCHEDULE
 *                                               └─ vpq_ast_expr trees
 */
#ifndef VPQ_AST_H
#define VPQ_AST_H

#include <stdbool.h>
#include <stdint.h>

#include "../engine/vpq_arena.h"
#include "../engine/vpq_diag.h"

/* ===== Expressions ===== */

/* The longest interval literal, 10,000 years of 366 days: an event time (at most year 9999,
 * VPQ_EVENT_TIME_LAST) plus a few intervals never overflows. A literal out of range is reported
 * and holds VPQ_AST_INTERVAL_MAX_MS + 1. */
#define VPQ_AST_INTERVAL_MAX_MS INT64_C(316224000000000)

/* The deepest expression the parser accepts (vpq_ast_expr.depth). Every pass over an expression
 * recurses into it, so this bounds their stack; a flat chain of AND or OR is one level. */
enum { VPQ_AST_MAX_DEPTH = 1000 };

typedef enum vpq_ast_expr_kind {
  VPQ_AST_INT,      /* ival */
  VPQ_AST_DOUBLE,   /* dval */
  VPQ_AST_STRING,   /* sval (quotes removed, '' unescaped) */
  VPQ_AST_BOOL,     /* ival 0/1 */
  VPQ_AST_NULL,
  VPQ_AST_INTERVAL, /* ival = milliseconds; `5 SECONDS` */
  VPQ_AST_COLUMN,   /* name, optional qualifier (`d.owner`) */
  VPQ_AST_STAR,     /* `*` in count(*) or a SELECT list; optional qualifier (`t.*`) */
  VPQ_AST_UNARY,    /* op, args[0] */
  VPQ_AST_BINARY,   /* op, args[0], args[1]; AND and OR: args[0..nargs), a chain of one of them */
  VPQ_AST_CALL,     /* name (lower-cased), args[] — functions and aggregates alike */
  VPQ_AST_CASE,     /* case_operand (may be NULL), args = WHEN,THEN pairs, case_else (may be NULL) */
  VPQ_AST_IS_NULL,  /* args[0]; negated = IS NOT NULL */
  VPQ_AST_LIST,     /* args[] — a parenthesised list in an option: `features = (temp, wind)` */
} vpq_ast_expr_kind;

/* ORDER AST_OP: keep vpq_ast_op_text() in vpq_ast.c in step. */
typedef enum vpq_ast_op {
  VPQ_OP_NEG,
  VPQ_OP_NOT,
  VPQ_OP_ADD,
  VPQ_OP_SUB,
  VPQ_OP_MUL,
  VPQ_OP_DIV,
  VPQ_OP_MOD,
  VPQ_OP_EQ,
  VPQ_OP_NE,
  VPQ_OP_LT,
  VPQ_OP_LE,
  VPQ_OP_GT,
  VPQ_OP_GE,
  VPQ_OP_AND,
  VPQ_OP_OR,
} vpq_ast_op;

typedef struct vpq_ast_expr vpq_ast_expr;
struct vpq_ast_expr {
  vpq_ast_expr_kind kind;
  vpq_span span;          /* the whole expression's text */
  vpq_ast_op op;          /* UNARY, BINARY */
  const char *name;       /* COLUMN: column name; CALL: function name, lower-cased */
  const char *qualifier;  /* COLUMN, STAR: `t` of `t.col`; NULL when unqualified */
  vpq_span name_span;     /* COLUMN: just the column name; CALL: just the function name */
  int64_t ival;           /* INT, BOOL, INTERVAL (ms) */
  double dval;            /* DOUBLE */
  const char *sval;       /* STRING */
  bool negated;           /* IS_NULL: IS NOT NULL */
  bool distinct;          /* CALL: f(DISTINCT x) */
  vpq_ast_expr **args;
  int nargs;
  int args_cap;
  vpq_ast_expr *case_operand;
  vpq_ast_expr *case_else;
  int depth;              /* levels of expressions below this one: 0 for a leaf */
};

/* ===== Declarations and options ===== */

typedef enum vpq_ast_type {
  VPQ_AST_TYPE_BOOLEAN,
  VPQ_AST_TYPE_BIGINT,
  VPQ_AST_TYPE_DOUBLE,
  VPQ_AST_TYPE_STRING,
  VPQ_AST_TYPE_TIMESTAMP,
} vpq_ast_type;

/* One column of CREATE STREAM/TABLE name (cols): `device_id STRING KEY`. */
typedef struct vpq_ast_coldef {
  const char *name;
  vpq_span span; /* the column name */
  vpq_ast_type type;
  vpq_span type_span;
  bool is_key;         /* KEY */
  bool is_primary_key; /* PRIMARY KEY */
} vpq_ast_coldef;

/* One `key = value` of a WITH (...) list or of a model's (...) options. The key is lower-cased;
 * a quoted key (`'kafka.security.protocol' = ...`) keeps its text. */
typedef struct vpq_ast_option {
  const char *key;
  vpq_span span; /* the key */
  vpq_ast_expr *value;
} vpq_ast_option;

typedef struct vpq_ast_options {
  vpq_ast_option *items;
  int count;
  int cap;
} vpq_ast_options;

/* ===== Queries ===== */

/* A relation named in FROM or JOIN: `telemetry t`. */
typedef struct vpq_ast_relation {
  const char *name;
  vpq_span span;
  const char *alias; /* NULL when none */
  vpq_span alias_span;
} vpq_ast_relation;

typedef enum vpq_ast_join_kind { VPQ_JOIN_INNER, VPQ_JOIN_LEFT } vpq_ast_join_kind;

/* `[LEFT] JOIN rel [WITHIN interval] ON cond`. */
typedef struct vpq_ast_join {
  vpq_ast_join_kind kind;
  vpq_span span; /* the JOIN keyword */
  vpq_ast_relation rel;
  vpq_ast_expr *within; /* INTERVAL, or NULL for a stream–table join */
  vpq_ast_expr *on;
} vpq_ast_join;

typedef enum vpq_ast_window_kind {
  VPQ_WINDOW_NONE,
  VPQ_WINDOW_TUMBLING,
  VPQ_WINDOW_HOPPING,
  VPQ_WINDOW_SESSION,
} vpq_ast_window_kind;

/* `WINDOW TUMBLING (SIZE 1 MINUTE [, GRACE PERIOD 10 SECONDS])`, HOPPING (SIZE, ADVANCE BY),
 * SESSION (gap). Interval expressions are kept as written; the analyzer checks them. */
typedef struct vpq_ast_window {
  vpq_ast_window_kind kind;
  vpq_span span;
  vpq_ast_expr *size;    /* TUMBLING, HOPPING */
  vpq_ast_expr *advance; /* HOPPING */
  vpq_ast_expr *gap;     /* SESSION */
  vpq_ast_expr *grace;   /* NULL when no GRACE PERIOD */
} vpq_ast_window;

/* One item of a SELECT list: an expression with an optional alias, or `*`. */
typedef struct vpq_ast_select_item {
  vpq_ast_expr *expr;
  const char *alias; /* NULL when none */
  vpq_span alias_span;
} vpq_ast_select_item;

typedef enum vpq_ast_emit { VPQ_EMIT_DEFAULT, VPQ_EMIT_FINAL, VPQ_EMIT_CHANGES } vpq_ast_emit;

typedef struct vpq_ast_exprs {
  vpq_ast_expr **items;
  int count;
  int cap;
} vpq_ast_exprs;

typedef struct vpq_ast_select {
  vpq_ast_select_item *items;
  int nitems;
  int items_cap;
  vpq_ast_relation from;
  vpq_ast_join *joins;
  int njoins;
  int joins_cap;
  vpq_ast_window window; /* kind NONE when absent */
  vpq_ast_expr *where;   /* NULL when absent */
  vpq_ast_exprs group_by;
  bool rollup;           /* GROUP BY ROLLUP (...) */
  vpq_span group_span;   /* the GROUP keyword */
  vpq_ast_expr *having;
  vpq_ast_emit emit;
  vpq_span emit_span;
} vpq_ast_select;

/* FORECAST value FROM rel [BY k, ...] USING model [(options)] HORIZON h EVERY e [STEP s] */
typedef struct vpq_ast_forecast {
  vpq_ast_expr *value;
  vpq_ast_relation from;
  vpq_ast_exprs by;
  const char *model; /* lower-cased */
  vpq_span model_span;
  vpq_ast_options model_options;
  vpq_ast_expr *horizon;
  vpq_ast_expr *every;
  vpq_ast_expr *step; /* NULL: inferred from the timestamps */
} vpq_ast_forecast;

typedef enum vpq_ast_objective {
  VPQ_OBJECTIVE_MINIMIZE_PEAK,
  VPQ_OBJECTIVE_KEEP_BELOW,    /* cap: value in kW */
  VPQ_OBJECTIVE_MINIMIZE_COST, /* price: relation of price forecast rows */
} vpq_ast_objective;

/* SCHEDULE fleet FOR forecast objective [SUBJECT TO c, ...] HORIZON h STEP s [EMIT PLAN] */
typedef struct vpq_ast_schedule {
  vpq_ast_relation fleet;
  vpq_ast_relation forecast;
  vpq_ast_objective objective;
  vpq_span objective_span;
  vpq_ast_expr *cap;        /* KEEP BELOW x KW */
  vpq_ast_relation price;   /* MINIMIZE COST USING price_stream */
  vpq_ast_exprs constraints;
  vpq_ast_expr *horizon;
  vpq_ast_expr *step;
  bool emit_plan;
} vpq_ast_schedule;

typedef enum vpq_ast_query_kind {
  VPQ_QUERY_SELECT,
  VPQ_QUERY_FORECAST,
  VPQ_QUERY_SCHEDULE,
} vpq_ast_query_kind;

typedef struct vpq_ast_query {
  vpq_ast_query_kind kind;
  vpq_span span;
  union {
    vpq_ast_select select;
    vpq_ast_forecast forecast;
    vpq_ast_schedule schedule;
  } u;
} vpq_ast_query;

/* ===== Statements ===== */

typedef enum vpq_ast_stmt_kind {
  VPQ_STMT_CREATE_STREAM,    /* cols + options (a source), or options? + query (derived) */
  VPQ_STMT_CREATE_TABLE,     /* cols with a PRIMARY KEY + options (a source), or query */
  VPQ_STMT_INSERT_INTO,      /* name + query */
} vpq_ast_stmt_kind;

typedef struct vpq_ast_stmt {
  vpq_ast_stmt_kind kind;
  vpq_span span; /* from the first keyword to the `;` */
  const char *name;
  vpq_span name_span;
  vpq_ast_coldef *cols; /* NULL for derived statements */
  int ncols;
  int cols_cap;
  vpq_ast_options options; /* WITH (...) */
  vpq_ast_query *query;    /* NULL for source declarations */
} vpq_ast_stmt;

typedef struct vpq_ast_file {
  vpq_ast_stmt **stmts;
  int count;
  int cap;
  bool incomplete; /* a statement failed to parse (a syntax error) and is missing */
} vpq_ast_file;

/* ===== Parsing ===== */

/* Parses `diag->text` into a file of statements allocated in `arena`. Syntax errors are
 * recorded in `diag` (file:line:col with what was expected); the parser recovers at the next
 * `;` so that every statement's errors are reported in one run. Returns the file even when
 * there were errors (with the statements that parsed; `incomplete` when one did not). A literal
 * out of range is an error but not a syntax error: the statement parses, with 0 in its place. */
vpq_ast_file *vpq_parse(vpq_arena *arena, vpq_diag *diag);

/* ===== Constructors: the only calls grammar actions make ===== */

/* A node of `kind` at `span`, zeroed otherwise. */
vpq_ast_expr *vpq_ast_expr_new(vpq_arena *arena, vpq_ast_expr_kind kind, vpq_span span);
/* `op operand` (NOT, unary minus), spanning from the operator to the operand's end. */
vpq_ast_expr *vpq_ast_unary(vpq_arena *arena, vpq_ast_op op, vpq_ast_expr *operand, vpq_span op_span);
/* `left op right`; for AND and OR, `right` joins a chain of the same operator on the left. */
vpq_ast_expr *vpq_ast_binary(vpq_arena *arena, vpq_ast_op op, vpq_ast_expr *left, vpq_ast_expr *right);
/* Appends `arg` to `expr->args` (CALL, CASE, LIST), deepening `expr` to hold it. */
void vpq_ast_expr_add_arg(vpq_arena *arena, vpq_ast_expr *expr, vpq_ast_expr *arg);
/* Sets a CASE's operand or ELSE (`*slot`), deepening `expr` to hold it. */
void vpq_ast_expr_set_case_part(vpq_ast_expr *expr, vpq_ast_expr **slot, vpq_ast_expr *part);
/* Returns the span covering both spans. */
vpq_span vpq_span_join(vpq_span a, vpq_span b);

/* A statement, a query and the lists they hold; each add appends to its list, growing it in the
 * arena. */
vpq_ast_stmt *vpq_ast_stmt_new(vpq_arena *arena, vpq_ast_stmt_kind kind, vpq_span span);
void vpq_ast_stmt_add_col(vpq_arena *arena, vpq_ast_stmt *stmt, vpq_ast_coldef col);
void vpq_ast_options_add(vpq_arena *arena, vpq_ast_options *options, vpq_ast_option option);
void vpq_ast_exprs_add(vpq_arena *arena, vpq_ast_exprs *list, vpq_ast_expr *expr);
vpq_ast_query *vpq_ast_query_new(vpq_arena *arena, vpq_ast_query_kind kind, vpq_span span);
void vpq_ast_select_add_item(vpq_arena *arena, vpq_ast_select *select, vpq_ast_select_item item);
void vpq_ast_select_add_join(vpq_arena *arena, vpq_ast_select *select, vpq_ast_join join);
void vpq_ast_file_add(vpq_arena *arena, vpq_ast_file *file, vpq_ast_stmt *stmt);

/* An operator as written in the language ("<=", "AND", ...), for messages and formatted expressions. */
const char *vpq_ast_op_text(vpq_ast_op op);

/* Writes the expression back as text (for explain output and default column names), into
 * `buf` of `size` bytes; returns `buf`. */
char *vpq_ast_expr_format(const vpq_ast_expr *expr, char *buf, size_t size);

#endif
