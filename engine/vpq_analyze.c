/* vpq_analyze.c — the analyzer: a parsed file → a checked logical plan (vpq_plan.h).
 *
 * Statements are analysed in file order against a catalog of the relations declared so far.
 * Each statement registers its relation even when it has errors (with whatever schema could
 * be made), so one mistake does not cascade into "unknown relation" errors further down, and
 * analysis always goes on: every error of a file is reported in one run.
 *
 * Expressions are bound against a scope — the FROM relation and each JOINed relation, with
 * their aliases and where their columns start in the input layout — and typed on the way:
 * BIGINT widens to DOUBLE (explicit CAST nodes), TIMESTAMP arithmetic takes intervals, a
 * TIMESTAMP compared with a string literal parses it as ISO-8601. In an aggregating query the
 * SELECT list and HAVING are bound in "aggregate mode": a subexpression equal to a GROUP BY
 * key (compared after binding) becomes a reference to that key, an aggregate call becomes a
 * reference to its slot, WINDOW_START/END refer to the two columns after the slots, and
 * GROUPING(key) of a ROLLUP to that key's rolled-up flag, in the columns after those.
 */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../connectors/sim/vpq_sim.h"
#include "../connectors/vpq_codec.h"
#include "vpq_plan.h"

/* ===== Context ===== */

/* Placeholders for layout columns whose index is known once every aggregate is bound:
 * WINDOW_START, WINDOW_END, and GROUPING(key k) as GROUPING_COL - k. */
enum { WINDOW_START_COL = -1000, WINDOW_END_COL = -1001, GROUPING_COL = -2000 };

/* The longest chain of AND (or OR) bound as written, left to right (left_deep); a longer one is
 * bound as a balanced tree (logic_tree), since every pass over an expression recurses into it. */
enum { LEFT_DEEP_CHAIN = 64 };

/* The most hopping windows a row may belong to (SIZE / ADVANCE BY): each is a group it updates. */
enum { HOPPING_WINDOWS_MAX = 100000 };

typedef struct scope_entry {
  const char *name; /* alias, or the relation's name */
  const vpq_relation *rel;
  int offset;
} scope_entry;

typedef struct bind_scope {
  scope_entry *entries;
  int n, cap;
  const vpq_schema *layout; /* the input layout */
} bind_scope;

typedef enum bind_mode { BIND_ROW, BIND_AGGREGATE } bind_mode;

typedef struct analyzer {
  vpq_arena *arena;
  vpq_diag *diag;
  vpq_plan *plan;
  const vpq_ast_file *file;
  int stmt; /* index in file of the statement being analysed */
  int rel_cap;
  int quiet; /* > 0: binding silently (to compare with GROUP BY keys) */
  bool failed_quietly;
  /* aggregate-mode state of the SELECT being bound */
  vpq_plan_select *sel;
  const vpq_ast_select *select; /* the SELECT being bound (its aliases, for hints) */
  const char *where_clause; /* "WHERE", "GROUP BY", ... when aggregates are not allowed */
  bool windowed;
} analyzer;

static void error(analyzer *a, vpq_span span, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void error(analyzer *a, vpq_span span, const char *fmt, ...) {
  if (a->quiet) {
    a->failed_quietly = true;
    return;
  }
  char message[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  vpq_diag_error(a->diag, span, "%s", message);
}

static const char *str_lower(analyzer *a, const char *text) {
  char *copy = vpq_arena_strdup(a->arena, text);
  for (char *p = copy; *p; p++) *p = (char)tolower((unsigned char)*p);
  return copy;
}

/* ===== Lookups ===== */

vpq_relation *vpq_plan_find(const vpq_plan *plan, const char *name) {
  for (int r = 0; r < plan->nrelations; r++)
    if (strcasecmp(plan->relations[r]->name, name) == 0) return plan->relations[r];
  return NULL;
}

int vpq_schema_find(const vpq_schema *schema, const char *name) {
  for (int c = 0; c < schema->ncols; c++)
    if (strcasecmp(schema->cols[c].name, name) == 0) return c;
  return -1;
}

/* The statement after the current one that declares `name`, or NULL. */
static const vpq_ast_stmt *declared_later(const analyzer *a, const char *name) {
  for (int i = a->stmt + 1; i < a->file->count; i++) {
    const vpq_ast_stmt *stmt = a->file->stmts[i];
    if (stmt->kind != VPQ_STMT_INSERT_INTO && stmt->name && strcasecmp(stmt->name, name) == 0) return stmt;
  }
  return NULL;
}

/* The relation named `name`, or NULL after an error at `span`: a relation declared further
 * down the file is named with its line, else the closest known name is suggested. In a file
 * with a statement that did not parse (`incomplete`), that statement may be its declaration:
 * NULL then, with no error of its own. */
static vpq_relation *find_relation(analyzer *a, const char *name, vpq_span span) {
  vpq_relation *rel = vpq_plan_find(a->plan, name);
  if (rel) return rel;
  if (a->file->incomplete) return NULL;
  const vpq_ast_stmt *later = declared_later(a, name);
  if (later) {
    int line, col;
    vpq_diag_position(a->diag, later->name_span.off, &line, &col);
    error(a, span, "unknown stream or table `%s` (declared at line %d: declare it before its use)", name, line);
    return NULL;
  }
  const char **names = vpq_arena_alloc(a->arena, sizeof *names * (size_t)(a->plan->nrelations + 1));
  for (int r = 0; r < a->plan->nrelations; r++) names[r] = a->plan->relations[r]->name;
  const char *hint = vpq_diag_suggest(name, names, a->plan->nrelations);
  if (hint) error(a, span, "unknown stream or table `%s`; did you mean `%s`?", name, hint);
  else error(a, span, "unknown stream or table `%s`", name);
  return NULL;
}

/* ===== Bound expression constructors ===== */

static vpq_bexpr *bnew(analyzer *a, vpq_bexpr_kind kind, vpq_type type, vpq_span span) {
  vpq_bexpr *e = vpq_arena_alloc(a->arena, sizeof *e);
  e->kind = kind;
  e->type = type;
  e->span = span;
  return e;
}

static void badd(analyzer *a, vpq_bexpr *e, vpq_bexpr *arg) {
  e->args = vpq_arena_grow(a->arena, e->args, sizeof *e->args, &e->args_cap, e->nargs + 1);
  e->args[e->nargs++] = arg;
}

static vpq_bexpr *bcolumn(analyzer *a, int column, vpq_type type, vpq_span span) {
  vpq_bexpr *e = bnew(a, VPQ_BEXPR_COLUMN, type, span);
  e->column = column;
  return e;
}

static vpq_bexpr *bnull(analyzer *a, vpq_type type, vpq_span span) {
  vpq_bexpr *e = bnew(a, VPQ_BEXPR_CONST, type, span);
  e->is_null = true;
  return e;
}

/* Converts `e` to `type` (adds a CAST, or retypes a NULL constant). */
static vpq_bexpr *cast_to(analyzer *a, vpq_bexpr *e, vpq_type type) {
  if (e->type == type) return e;
  if (e->kind == VPQ_BEXPR_CONST && e->is_null) {
    e->type = type;
    return e;
  }
  if (e->type == VPQ_TYPE_INTERVAL && e->kind == VPQ_BEXPR_CONST && type != VPQ_TYPE_DOUBLE) {
    e->type = type;
    return e;
  }
  vpq_bexpr *c = bnew(a, VPQ_BEXPR_CAST, type, e->span);
  badd(a, c, e);
  return c;
}

static bool numeric(vpq_type t) { return t == VPQ_TYPE_BIGINT || t == VPQ_TYPE_DOUBLE || t == VPQ_TYPE_INTERVAL; }

/* The common type of two, or VPQ_TYPE_NULL with *ok = false when they do not mix. */
static vpq_type unify(vpq_type x, vpq_type y, bool *ok) {
  *ok = true;
  if (x == VPQ_TYPE_NULL) return y;
  if (y == VPQ_TYPE_NULL) return x;
  if (x == y) return x == VPQ_TYPE_INTERVAL ? VPQ_TYPE_BIGINT : x;
  if (numeric(x) && numeric(y)) return x == VPQ_TYPE_DOUBLE || y == VPQ_TYPE_DOUBLE ? VPQ_TYPE_DOUBLE : VPQ_TYPE_BIGINT;
  if ((x == VPQ_TYPE_TIMESTAMP && (y == VPQ_TYPE_BIGINT || y == VPQ_TYPE_INTERVAL)) ||
      (y == VPQ_TYPE_TIMESTAMP && (x == VPQ_TYPE_BIGINT || x == VPQ_TYPE_INTERVAL)))
    return VPQ_TYPE_TIMESTAMP;
  *ok = false;
  return VPQ_TYPE_NULL;
}

static bool bexpr_equal(const vpq_bexpr *x, const vpq_bexpr *y) {
  if (x->kind != y->kind || x->type != y->type || x->nargs != y->nargs) return false;
  switch (x->kind) {
  case VPQ_BEXPR_CONST:
    if (x->is_null != y->is_null) return false;
    if (!x->is_null && x->value.i != y->value.i) return false;
    break;
  case VPQ_BEXPR_COLUMN:
    if (x->column != y->column) return false;
    break;
  case VPQ_BEXPR_UNARY:
  case VPQ_BEXPR_BINARY:
    if (x->op != y->op) return false;
    break;
  case VPQ_BEXPR_FUNC:
    if (x->func != y->func) return false;
    break;
  case VPQ_BEXPR_IS_NULL:
    if (x->negated != y->negated) return false;
    break;
  default: break;
  }
  for (int i = 0; i < x->nargs; i++)
    if (!bexpr_equal(x->args[i], y->args[i])) return false;
  return true;
}

/* True when every column `e` reads lies in [from, to). */
static bool columns_within(const vpq_bexpr *e, int from, int to) {
  if (e->kind == VPQ_BEXPR_COLUMN && (e->column < from || e->column >= to)) return false;
  for (int i = 0; i < e->nargs; i++)
    if (!columns_within(e->args[i], from, to)) return false;
  return true;
}

static bool reads_columns(const vpq_bexpr *e) {
  if (e->kind == VPQ_BEXPR_COLUMN) return true;
  for (int i = 0; i < e->nargs; i++)
    if (reads_columns(e->args[i])) return true;
  return false;
}

/* A copy of `e` with every column index moved by `shift`. */
static vpq_bexpr *shift_columns(analyzer *a, const vpq_bexpr *e, int shift) {
  vpq_bexpr *copy = vpq_arena_alloc(a->arena, sizeof *copy);
  *copy = *e;
  if (copy->kind == VPQ_BEXPR_COLUMN) copy->column += shift;
  if (e->nargs) {
    copy->args = vpq_arena_alloc(a->arena, sizeof *copy->args * (size_t)e->nargs);
    copy->args_cap = e->nargs;
    for (int i = 0; i < e->nargs; i++) copy->args[i] = shift_columns(a, e->args[i], shift);
  }
  return copy;
}

/* ===== Binding expressions ===== */

static vpq_bexpr *bind(analyzer *a, const vpq_ast_expr *e, const bind_scope *scope, bind_mode mode);

static bool is_aggregate_call(const vpq_ast_expr *e) {
  vpq_agg_kind kind;
  int nargs;
  return e->kind == VPQ_AST_CALL && vpq_agg_lookup(e->name, &kind, &nargs);
}

static bool has_aggregate(const vpq_ast_expr *e) {
  if (!e) return false;
  if (is_aggregate_call(e)) return true;
  for (int i = 0; i < e->nargs; i++)
    if (has_aggregate(e->args[i])) return true;
  return has_aggregate(e->case_operand) || has_aggregate(e->case_else);
}

/* Whether `qualifier` names scope entry `entry`: its alias (its relation's name when it has
 * none), or else, when no entry goes by that name, its relation's name (`telemetry.soc` in
 * `FROM telemetry t`). So in `FROM a JOIN a r`, `a.x` is the first `a`'s and `r.x` the second's. */
static bool qualifier_names(const bind_scope *scope, const scope_entry *entry, const char *qualifier) {
  if (strcasecmp(qualifier, entry->name) == 0) return true;
  for (int s = 0; s < scope->n; s++)
    if (strcasecmp(qualifier, scope->entries[s].name) == 0) return false;
  return strcasecmp(qualifier, entry->rel->name) == 0;
}

static vpq_bexpr *bind_column(analyzer *a, const vpq_ast_expr *e, const bind_scope *scope, bind_mode mode) {
  if (!e->qualifier && (strcasecmp(e->name, "window_start") == 0 || strcasecmp(e->name, "window_end") == 0)) {
    bool start = strcasecmp(e->name, "window_start") == 0;
    if (mode == BIND_AGGREGATE && a->windowed)
      return bcolumn(a, start ? WINDOW_START_COL : WINDOW_END_COL, VPQ_TYPE_TIMESTAMP, e->span);
    if (vpq_schema_find(scope->layout, e->name) < 0) {
      if (a->windowed)
        error(a, e->span, "%s is a window's, known in the SELECT list and HAVING, not where rows are read (WHERE, "
              "GROUP BY, ON, an aggregate's argument)", start ? "WINDOW_START" : "WINDOW_END");
      else error(a, e->span, "%s needs a WINDOW clause", start ? "WINDOW_START" : "WINDOW_END");
      return bnull(a, VPQ_TYPE_TIMESTAMP, e->span);
    }
  }
  int found = -1;
  const scope_entry *owner = NULL;
  for (int s = 0; s < scope->n; s++) {
    const scope_entry *entry = &scope->entries[s];
    if (e->qualifier && !qualifier_names(scope, entry, e->qualifier)) continue;
    int c = vpq_schema_find(&entry->rel->schema, e->name);
    if (c < 0) continue;
    if (found >= 0) {
      error(a, e->span, "column `%s` is ambiguous: it is in `%s` and `%s`", e->name, owner->name, entry->name);
      return bnull(a, VPQ_TYPE_NULL, e->span);
    }
    found = entry->offset + c;
    owner = entry;
  }
  if (found < 0) {
    if (e->qualifier) {
      bool known = false;
      for (int s = 0; s < scope->n; s++)
        known |= strcasecmp(e->qualifier, scope->entries[s].name) == 0 ||
                 strcasecmp(e->qualifier, scope->entries[s].rel->name) == 0;
      if (!known) {
        error(a, e->span, "unknown table alias `%s`", e->qualifier);
        return bnull(a, VPQ_TYPE_NULL, e->span);
      }
    }
    for (int i = 0; !e->qualifier && a->select && i < a->select->nitems; i++) {
      const vpq_ast_select_item *item = &a->select->items[i];
      if (!item->alias || strcasecmp(item->alias, e->name) != 0) continue;
      error(a, e->span,
            "unknown column `%s`: `%s` is a name given in the SELECT list, which the query's expressions "
            "(WHERE, GROUP BY, HAVING, the SELECT list) cannot refer to; write its expression instead",
            e->name, item->alias);
      return bnull(a, VPQ_TYPE_NULL, e->span);
    }
    const char **names = vpq_arena_alloc(a->arena, sizeof *names * (size_t)(scope->layout->ncols + 1));
    for (int c = 0; c < scope->layout->ncols; c++) names[c] = scope->layout->cols[c].name;
    const char *hint = vpq_diag_suggest(e->name, names, scope->layout->ncols);
    if (hint) error(a, e->span, "unknown column `%s`; did you mean `%s`?", e->name, hint);
    else error(a, e->span, "unknown column `%s`", e->name);
    return bnull(a, VPQ_TYPE_NULL, e->span);
  }
  if (mode == BIND_AGGREGATE) {
    error(a, e->span, "column `%s` must be in GROUP BY or inside an aggregate", e->name);
    return bnull(a, scope->layout->cols[found].type, e->span);
  }
  return bcolumn(a, found, scope->layout->cols[found].type, e->span);
}

static vpq_bexpr *bind_aggregate(analyzer *a, const vpq_ast_expr *e, const bind_scope *scope, bind_mode mode) {
  vpq_agg_kind kind;
  int nargs;
  vpq_agg_lookup(e->name, &kind, &nargs);
  if (mode != BIND_AGGREGATE || !a->sel) {
    if (a->where_clause) error(a, e->name_span, "aggregate `%s` is not allowed in %s", e->name, a->where_clause);
    else error(a, e->name_span, "aggregate `%s` cannot be nested", e->name);
    return bnull(a, VPQ_TYPE_NULL, e->span);
  }
  bool star = e->nargs == 1 && e->args[0]->kind == VPQ_AST_STAR;
  /* count(DISTINCT x) is count_distinct(x); min and max of the distinct values are theirs */
  if (e->distinct && kind == VPQ_AGG_COUNT && e->nargs == 1 && !star) {
    kind = VPQ_AGG_COUNT_DISTINCT;
  } else if (e->distinct && kind != VPQ_AGG_MIN && kind != VPQ_AGG_MAX) {
    error(a, e->name_span, "`%s(DISTINCT ...)` is not supported: DISTINCT goes in count(DISTINCT x) (count_distinct), min and max only",
          e->name);
    return bnull(a, VPQ_TYPE_NULL, e->span);
  }
  if (kind == VPQ_AGG_COUNT && (e->nargs == 0 || star)) {
    kind = VPQ_AGG_COUNT_STAR;
    nargs = 0;
  } else if (e->nargs != nargs || star) {
    error(a, e->span, "aggregate `%s` takes %d argument%s", e->name, nargs, nargs == 1 ? "" : "s");
    return bnull(a, VPQ_TYPE_NULL, e->span);
  }
  vpq_plan_agg agg = {.span = e->span};
  agg.spec.kind = kind;
  agg.spec.arg_type = VPQ_TYPE_NULL;
  if (nargs > 0) {
    for (int i = 0; i < e->nargs; i++)
      if (has_aggregate(e->args[i])) {
        error(a, e->args[i]->span, "aggregate `%s` cannot be nested", e->name);
        return bnull(a, VPQ_TYPE_NULL, e->span);
      }
    agg.arg = bind(a, e->args[0], scope, BIND_ROW);
    agg.spec.arg_type = agg.arg->type == VPQ_TYPE_INTERVAL ? VPQ_TYPE_BIGINT : agg.arg->type;
    if (agg.arg->type == VPQ_TYPE_NULL) agg.spec.arg_type = VPQ_TYPE_DOUBLE;
  }
  if (kind == VPQ_AGG_PERCENTILE) {
    const vpq_ast_expr *p = e->args[1];
    double value = p->kind == VPQ_AST_DOUBLE ? p->dval : (double)p->ival;
    if ((p->kind != VPQ_AST_DOUBLE && p->kind != VPQ_AST_INT) || value < 0 || value > 1) {
      error(a, p->span, "percentile needs a constant between 0 and 1");
      value = 0.5;
    }
    agg.spec.param = value;
  }
  agg.spec.result_type = vpq_agg_result_type(kind, agg.spec.arg_type);
  if (kind == VPQ_AGG_COUNT_STAR) agg.spec.result_type = VPQ_TYPE_BIGINT;
  if (agg.spec.result_type == VPQ_TYPE_NULL) {
    error(a, e->span, "`%s` cannot take a %s", e->name, vpq_type_name(agg.spec.arg_type));
    agg.spec.result_type = VPQ_TYPE_DOUBLE;
  }
  vpq_plan_select *sel = a->sel;
  for (int i = 0; i < sel->naggs; i++) {
    const vpq_plan_agg *other = &sel->aggs[i];
    if (other->spec.kind == kind && other->spec.param == agg.spec.param &&
        ((!other->arg && !agg.arg) || (other->arg && agg.arg && bexpr_equal(other->arg, agg.arg))))
      return bcolumn(a, sel->ngroup_keys + i, other->spec.result_type, e->span);
  }
  vpq_plan_agg *aggs = vpq_arena_alloc(a->arena, sizeof *aggs * (size_t)(sel->naggs + 1));
  if (sel->naggs) memcpy(aggs, sel->aggs, sizeof *aggs * (size_t)sel->naggs);
  aggs[sel->naggs] = agg;
  sel->aggs = aggs;
  sel->naggs++;
  return bcolumn(a, sel->ngroup_keys + sel->naggs - 1, agg.spec.result_type, e->span);
}

static const struct {
  const char *name;
  vpq_func func;
  int min_args, max_args;
} functions[] = {{"coalesce", VPQ_FUNC_COALESCE, 1, 64}, {"abs", VPQ_FUNC_ABS, 1, 1},
                 {"round", VPQ_FUNC_ROUND, 1, 2},        {"least", VPQ_FUNC_LEAST, 1, 64},
                 {"greatest", VPQ_FUNC_GREATEST, 1, 64}};

static vpq_bexpr *match_group_key(analyzer *a, const vpq_ast_expr *e, const bind_scope *scope);

/* grouping(key) -> 1 in a row where the ROLLUP rolled `key` up, else 0 (a BIGINT): only in the
 * SELECT list and HAVING of a GROUP BY ROLLUP, of one of its keys. */
static vpq_bexpr *bind_grouping(analyzer *a, const vpq_ast_expr *e, const bind_scope *scope, bind_mode mode) {
  if (a->where_clause) {
    error(a, e->name_span, "GROUPING is not allowed in %s", a->where_clause);
    return bnull(a, VPQ_TYPE_BIGINT, e->span);
  }
  if (mode == BIND_ROW && a->sel && a->sel->aggregate) {
    error(a, e->name_span, "GROUPING cannot be inside an aggregate");
    return bnull(a, VPQ_TYPE_BIGINT, e->span);
  }
  if (mode != BIND_AGGREGATE || !a->sel || !a->sel->rollup) {
    error(a, e->name_span, "GROUPING needs GROUP BY ROLLUP");
    return bnull(a, VPQ_TYPE_BIGINT, e->span);
  }
  if (e->nargs != 1 || e->args[0]->kind == VPQ_AST_STAR) {
    error(a, e->span, "function `grouping` takes 1 argument");
    return bnull(a, VPQ_TYPE_BIGINT, e->span);
  }
  vpq_bexpr *key = match_group_key(a, e->args[0], scope);
  if (!key) {
    vpq_span arg = e->args[0]->span;
    error(a, arg, "`%.*s` is not a key of the ROLLUP; GROUPING takes one of its keys", (int)arg.len,
          a->diag->text + arg.off);
    return bnull(a, VPQ_TYPE_BIGINT, e->span);
  }
  return bcolumn(a, GROUPING_COL - key->column, VPQ_TYPE_BIGINT, e->span);
}

static vpq_bexpr *bind_function(analyzer *a, const vpq_ast_expr *e, const bind_scope *scope, bind_mode mode) {
  if (strcmp(e->name, "grouping") == 0) return bind_grouping(a, e, scope, mode);
  int f = -1;
  for (size_t i = 0; i < sizeof functions / sizeof *functions; i++)
    if (strcmp(functions[i].name, e->name) == 0) f = (int)i;
  if (f < 0) {
    const char *names[] = {"coalesce", "abs", "round", "least", "greatest", "grouping", "count", "sum", "avg", "min", "max",
                           "stddev", "first", "last", "count_distinct", "percentile", "integrate",
                           "time_weighted_avg"};
    const char *hint = vpq_diag_suggest(e->name, names, (int)(sizeof names / sizeof *names));
    if (hint) error(a, e->name_span, "unknown function `%s`; did you mean `%s`?", e->name, hint);
    else error(a, e->name_span, "unknown function `%s`", e->name);
    return bnull(a, VPQ_TYPE_NULL, e->span);
  }
  if (e->nargs < functions[f].min_args || e->nargs > functions[f].max_args) {
    if (functions[f].min_args == functions[f].max_args)
      error(a, e->span, "function `%s` takes %d argument%s", e->name, functions[f].min_args,
            functions[f].min_args == 1 ? "" : "s");
    else
      error(a, e->span, "function `%s` takes %d to %d arguments", e->name, functions[f].min_args, functions[f].max_args);
    return bnull(a, VPQ_TYPE_NULL, e->span);
  }
  vpq_bexpr *out = bnew(a, VPQ_BEXPR_FUNC, VPQ_TYPE_NULL, e->span);
  out->func = functions[f].func;
  for (int i = 0; i < e->nargs; i++) badd(a, out, bind(a, e->args[i], scope, mode));
  switch (out->func) {
  case VPQ_FUNC_ABS:
  case VPQ_FUNC_ROUND: {
    vpq_type t = out->args[0]->type;
    if (t == VPQ_TYPE_INTERVAL) t = VPQ_TYPE_BIGINT;
    if (t != VPQ_TYPE_NULL && !numeric(t)) error(a, e->args[0]->span, "function `%s` needs a number, got %s", e->name, vpq_type_name(t));
    out->type = t == VPQ_TYPE_NULL ? VPQ_TYPE_DOUBLE : t;
    out->args[0] = cast_to(a, out->args[0], out->type);
    if (out->nargs == 2) {
      if (out->args[1]->type != VPQ_TYPE_BIGINT && out->args[1]->type != VPQ_TYPE_NULL)
        error(a, e->args[1]->span, "round's digits must be a BIGINT");
      out->args[1] = cast_to(a, out->args[1], VPQ_TYPE_BIGINT);
    }
    break;
  }
  default: {
    vpq_type t = VPQ_TYPE_NULL;
    for (int i = 0; i < out->nargs; i++) {
      bool ok;
      vpq_type u = unify(t, out->args[i]->type, &ok);
      if (!ok) {
        error(a, e->args[i]->span, "function `%s` cannot mix %s and %s", e->name, vpq_type_name(t),
              vpq_type_name(out->args[i]->type));
        break;
      }
      t = u;
    }
    if (t == VPQ_TYPE_INTERVAL) t = VPQ_TYPE_BIGINT;
    out->type = t;
    for (int i = 0; i < out->nargs; i++) out->args[i] = cast_to(a, out->args[i], t);
  }
  }
  return out;
}

static vpq_bexpr *bind_comparison(analyzer *a, vpq_ast_op op, vpq_bexpr *l, vpq_bexpr *r, vpq_span span) {
  vpq_bexpr *out = bnew(a, VPQ_BEXPR_BINARY, VPQ_TYPE_BOOLEAN, span);
  out->op = op;
  /* A TIMESTAMP compared with a string literal: the literal is an ISO-8601 time. */
  for (int side = 0; side < 2; side++) {
    vpq_bexpr *ts = side ? r : l, *lit = side ? l : r;
    if (ts->type == VPQ_TYPE_TIMESTAMP && lit->type == VPQ_TYPE_STRING && lit->kind == VPQ_BEXPR_CONST && lit->text) {
      vpq_span s = lit->span;
      int64_t ms;
      if (vpq_timestamp_parse(lit->text, strlen(lit->text), &ms)) {
        lit->type = VPQ_TYPE_TIMESTAMP;
        lit->value.i = ms;
      } else {
        error(a, s, "`%.*s` is not an ISO-8601 timestamp", (int)s.len, a->diag->text + s.off);
        lit->type = VPQ_TYPE_TIMESTAMP;
        lit->value.i = 0;
      }
    }
  }
  bool ok;
  vpq_type t = unify(l->type, r->type, &ok);
  if (!ok) {
    error(a, span, "cannot compare %s with %s", vpq_type_name(l->type), vpq_type_name(r->type));
    t = l->type;
  }
  if (t == VPQ_TYPE_INTERVAL) t = VPQ_TYPE_BIGINT;
  badd(a, out, ok ? cast_to(a, l, t) : l);
  badd(a, out, ok ? cast_to(a, r, t) : r);
  return out;
}

/* `l op r` for AND and OR, spanning `span`. */
static vpq_bexpr *bind_logic(analyzer *a, vpq_ast_op op, vpq_bexpr *l, vpq_bexpr *r, vpq_span span) {
  vpq_bexpr *out = bnew(a, VPQ_BEXPR_BINARY, VPQ_TYPE_BOOLEAN, span);
  out->op = op;
  for (int i = 0; i < 2; i++) {
    vpq_bexpr *side = i ? r : l;
    if (side->type != VPQ_TYPE_BOOLEAN && side->type != VPQ_TYPE_NULL)
      error(a, side->span, "`%s` needs BOOLEAN operands, got %s", vpq_ast_op_text(op), vpq_type_name(side->type));
    badd(a, out, cast_to(a, side, VPQ_TYPE_BOOLEAN));
  }
  return out;
}

/* A chain of AND (or OR) of at most LEFT_DEEP_CHAIN operands as the parser built every chain
 * before chains became one node: ((a op b) op c) ..., each level spanning its operands. Bound so,
 * a GROUP BY key `a OR b` is found inside `a OR b OR c` (match_group_key), and the plan (which
 * checkpoints are checked against) is what it was. */
static const vpq_ast_expr *left_deep(analyzer *a, const vpq_ast_expr *e) {
  vpq_ast_expr *chain = e->args[0];
  for (int i = 1; i < e->nargs; i++) {
    vpq_ast_expr *level = vpq_ast_expr_new(a->arena, VPQ_AST_BINARY, vpq_span_join(chain->span, e->args[i]->span));
    level->op = e->op;
    vpq_ast_expr_add_arg(a->arena, level, chain);
    vpq_ast_expr_add_arg(a->arena, level, e->args[i]);
    chain = level;
  }
  return chain;
}

/* The operands [lo, hi) of a chain of AND (or OR) joined as a balanced tree, so that a chain of
 * thousands of conditions is only a few levels deep for the passes after binding. AND and OR are
 * associative in three-valued logic, so the grouping does not change a result; the last split is
 * at the last operand, so a chain of two or three groups from the left as written. */
static vpq_bexpr *logic_tree(analyzer *a, vpq_ast_op op, vpq_bexpr **operands, int lo, int hi, vpq_span span) {
  if (hi - lo == 1) return operands[lo];
  const int mid = hi - (hi - lo) / 2;
  vpq_bexpr *l = logic_tree(a, op, operands, lo, mid, vpq_span_join(operands[lo]->span, operands[mid - 1]->span));
  vpq_bexpr *r = logic_tree(a, op, operands, mid, hi, vpq_span_join(operands[mid]->span, operands[hi - 1]->span));
  return bind_logic(a, op, l, r, span);
}

static vpq_bexpr *bind_binary(analyzer *a, const vpq_ast_expr *e, vpq_bexpr *l, vpq_bexpr *r) {
  vpq_ast_op op = e->op;
  if (op >= VPQ_OP_EQ && op <= VPQ_OP_GE) return bind_comparison(a, op, l, r, e->span);
  if (op == VPQ_OP_AND || op == VPQ_OP_OR) return bind_logic(a, op, l, r, e->span);
  vpq_bexpr *out = bnew(a, VPQ_BEXPR_BINARY, VPQ_TYPE_BOOLEAN, e->span);
  out->op = op;
  vpq_type lt = l->type, rt = r->type;
  if (lt == VPQ_TYPE_TIMESTAMP || rt == VPQ_TYPE_TIMESTAMP) {
    bool lts = lt == VPQ_TYPE_TIMESTAMP, rts = rt == VPQ_TYPE_TIMESTAMP;
    vpq_type other = lts ? rt : lt;
    if (lts && rts && op == VPQ_OP_SUB) {
      out->type = VPQ_TYPE_BIGINT;
    } else if ((op == VPQ_OP_ADD || (op == VPQ_OP_SUB && lts)) &&
               (other == VPQ_TYPE_INTERVAL || other == VPQ_TYPE_BIGINT || other == VPQ_TYPE_NULL)) {
      out->type = VPQ_TYPE_TIMESTAMP;
    } else {
      error(a, e->span, "operator `%s` cannot combine %s and %s", vpq_ast_op_text(op), vpq_type_name(lt), vpq_type_name(rt));
      out->type = VPQ_TYPE_TIMESTAMP;
    }
    badd(a, out, lts ? l : cast_to(a, l, VPQ_TYPE_BIGINT));
    badd(a, out, rts ? r : cast_to(a, r, VPQ_TYPE_BIGINT));
    return out;
  }
  bool ok;
  vpq_type t = unify(lt, rt, &ok);
  if (!ok || (!numeric(t) && t != VPQ_TYPE_NULL)) {
    error(a, e->span, "operator `%s` cannot combine %s and %s", vpq_ast_op_text(op), vpq_type_name(lt), vpq_type_name(rt));
    t = VPQ_TYPE_DOUBLE;
  }
  if (t == VPQ_TYPE_INTERVAL || t == VPQ_TYPE_NULL) t = t == VPQ_TYPE_NULL ? VPQ_TYPE_DOUBLE : VPQ_TYPE_BIGINT;
  out->type = t;
  badd(a, out, cast_to(a, l, t));
  badd(a, out, cast_to(a, r, t));
  return out;
}

static vpq_bexpr *bind_case(analyzer *a, const vpq_ast_expr *e, const bind_scope *scope, bind_mode mode) {
  vpq_bexpr *out = bnew(a, VPQ_BEXPR_CASE, VPQ_TYPE_NULL, e->span);
  vpq_bexpr *operand = e->case_operand ? bind(a, e->case_operand, scope, mode) : NULL;
  vpq_type t = VPQ_TYPE_NULL;
  for (int i = 0; i + 1 < e->nargs; i += 2) {
    vpq_bexpr *cond = bind(a, e->args[i], scope, mode);
    if (operand) cond = bind_comparison(a, VPQ_OP_EQ, operand, cond, e->args[i]->span);
    else if (cond->type != VPQ_TYPE_BOOLEAN && cond->type != VPQ_TYPE_NULL)
      error(a, e->args[i]->span, "WHEN needs a BOOLEAN condition, got %s", vpq_type_name(cond->type));
    badd(a, out, cast_to(a, cond, VPQ_TYPE_BOOLEAN));
    vpq_bexpr *value = bind(a, e->args[i + 1], scope, mode);
    bool ok;
    vpq_type u = unify(t, value->type, &ok);
    if (!ok) error(a, e->args[i + 1]->span, "CASE cannot mix %s and %s", vpq_type_name(t), vpq_type_name(value->type));
    else t = u;
    badd(a, out, value);
  }
  vpq_bexpr *otherwise = e->case_else ? bind(a, e->case_else, scope, mode) : bnull(a, VPQ_TYPE_NULL, e->span);
  bool ok;
  vpq_type u = unify(t, otherwise->type, &ok);
  if (!ok) error(a, e->case_else->span, "CASE cannot mix %s and %s", vpq_type_name(t), vpq_type_name(otherwise->type));
  else t = u;
  badd(a, out, otherwise);
  if (t == VPQ_TYPE_INTERVAL) t = VPQ_TYPE_BIGINT;
  out->type = t;
  for (int i = 1; i < out->nargs; i += 2) out->args[i] = cast_to(a, out->args[i], t);
  out->args[out->nargs - 1] = cast_to(a, out->args[out->nargs - 1], t);
  return out;
}

/* In aggregate mode: a subexpression equal to a GROUP BY key is a reference to that key. */
static vpq_bexpr *match_group_key(analyzer *a, const vpq_ast_expr *e, const bind_scope *scope) {
  if (!a->sel || !a->sel->ngroup_keys || has_aggregate(e)) return NULL;
  a->quiet++;
  bool was = a->failed_quietly;
  a->failed_quietly = false;
  const char *clause = a->where_clause;
  a->where_clause = "GROUP BY";
  vpq_bexpr *row = bind(a, e, scope, BIND_ROW);
  a->where_clause = clause;
  bool failed = a->failed_quietly;
  a->failed_quietly = was;
  a->quiet--;
  if (failed) return NULL;
  for (int k = 0; k < a->sel->ngroup_keys; k++)
    if (bexpr_equal(row, a->sel->group_keys[k])) return bcolumn(a, k, a->sel->group_keys[k]->type, e->span);
  return NULL;
}

static vpq_bexpr *bind(analyzer *a, const vpq_ast_expr *e, const bind_scope *scope, bind_mode mode) {
  if (mode == BIND_AGGREGATE) {
    vpq_bexpr *key = match_group_key(a, e, scope);
    if (key) return key;
  }
  vpq_bexpr *out;
  switch (e->kind) {
  case VPQ_AST_INT:
    out = bnew(a, VPQ_BEXPR_CONST, VPQ_TYPE_BIGINT, e->span);
    out->value.i = e->ival;
    return out;
  case VPQ_AST_DOUBLE:
    out = bnew(a, VPQ_BEXPR_CONST, VPQ_TYPE_DOUBLE, e->span);
    out->value.d = e->dval;
    return out;
  case VPQ_AST_STRING:
    out = bnew(a, VPQ_BEXPR_CONST, VPQ_TYPE_STRING, e->span);
    out->text = e->sval;
    return out;
  case VPQ_AST_BOOL:
    out = bnew(a, VPQ_BEXPR_CONST, VPQ_TYPE_BOOLEAN, e->span);
    out->value.i = e->ival != 0;
    return out;
  case VPQ_AST_NULL: return bnull(a, VPQ_TYPE_NULL, e->span);
  case VPQ_AST_INTERVAL:
    out = bnew(a, VPQ_BEXPR_CONST, VPQ_TYPE_INTERVAL, e->span);
    out->value.i = e->ival;
    return out;
  case VPQ_AST_COLUMN: return bind_column(a, e, scope, mode);
  case VPQ_AST_STAR:
    error(a, e->span, "`*` is only allowed in count(*) and as a SELECT item");
    return bnull(a, VPQ_TYPE_NULL, e->span);
  case VPQ_AST_UNARY: {
    vpq_bexpr *arg = bind(a, e->args[0], scope, mode);
    out = bnew(a, VPQ_BEXPR_UNARY, arg->type, e->span);
    out->op = e->op;
    if (e->op == VPQ_OP_NOT) {
      if (arg->type != VPQ_TYPE_BOOLEAN && arg->type != VPQ_TYPE_NULL)
        error(a, e->span, "NOT needs a BOOLEAN, got %s", vpq_type_name(arg->type));
      out->type = VPQ_TYPE_BOOLEAN;
      arg = cast_to(a, arg, VPQ_TYPE_BOOLEAN);
    } else {
      if (!numeric(arg->type) && arg->type != VPQ_TYPE_NULL)
        error(a, e->span, "`-` needs a number, got %s", vpq_type_name(arg->type));
      out->type = arg->type == VPQ_TYPE_DOUBLE ? VPQ_TYPE_DOUBLE : VPQ_TYPE_BIGINT;
      arg = cast_to(a, arg, out->type);
    }
    badd(a, out, arg);
    return out;
  }
  case VPQ_AST_BINARY: {
    if (e->nargs > LEFT_DEEP_CHAIN) {
      vpq_bexpr **operands = vpq_arena_alloc(a->arena, sizeof *operands * (size_t)e->nargs);
      for (int i = 0; i < e->nargs; i++) operands[i] = bind(a, e->args[i], scope, mode);
      return logic_tree(a, e->op, operands, 0, e->nargs, e->span);
    }
    if (e->nargs > 2) return bind(a, left_deep(a, e), scope, mode);
    vpq_bexpr *l = bind(a, e->args[0], scope, mode);
    vpq_bexpr *r = bind(a, e->args[1], scope, mode);
    return bind_binary(a, e, l, r);
  }
  case VPQ_AST_CALL:
    if (is_aggregate_call(e)) return bind_aggregate(a, e, scope, mode);
    if (e->distinct) {
      error(a, e->name_span, "`%s` is no aggregate: DISTINCT goes in count(DISTINCT x), min and max only", e->name);
      return bnull(a, VPQ_TYPE_NULL, e->span);
    }
    return bind_function(a, e, scope, mode);
  case VPQ_AST_CASE: return bind_case(a, e, scope, mode);
  case VPQ_AST_IS_NULL:
    out = bnew(a, VPQ_BEXPR_IS_NULL, VPQ_TYPE_BOOLEAN, e->span);
    out->negated = e->negated;
    badd(a, out, bind(a, e->args[0], scope, mode));
    return out;
  case VPQ_AST_LIST:
    error(a, e->span, "a list is only allowed as an option value");
    return bnull(a, VPQ_TYPE_NULL, e->span);
  }
  return bnull(a, VPQ_TYPE_NULL, e->span);
}

/* ===== Options ===== */

typedef enum option_kind { OPT_STRING, OPT_INTERVAL, OPT_BIGINT, OPT_BOOLEAN, OPT_NAME, OPT_NUMBER } option_kind;

/* The largest value a numeric connector option takes: the simulator's limits (vpq_sim.h); no
 * limit for the others. */
static double option_max(const char *key) {
  static const struct {
    const char *key;
    double max;
  } limits[] = {{"devices", VPQ_SIM_MAX_DEVICES}, {"sites", VPQ_SIM_MAX_SITES}, {"pv", VPQ_SIM_MAX_PV_RATIO}};
  for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
    if (strcmp(key, limits[i].key) == 0) return limits[i].max;
  return INFINITY;
}

static const struct {
  const char *key;
  option_kind kind;
  bool source_only;
} known_options[] = {
    {"connector", OPT_STRING, false}, {"format", OPT_STRING, false},        {"path", OPT_STRING, false},
    {"topic", OPT_STRING, false},     {"group", OPT_STRING, true},          {"start", OPT_STRING, true},
    {"partitions", OPT_BIGINT, false}, {"bounded", OPT_BOOLEAN, true},      {"timestamp", OPT_NAME, true},
    {"watermark_delay", OPT_INTERVAL, true}, {"idle_timeout", OPT_INTERVAL, true},
    {"dead_letter", OPT_STRING, true}, {"max_row_bytes", OPT_BIGINT, true}, {"stale_after", OPT_INTERVAL, false},
    {"stream", OPT_STRING, false},    {"devices", OPT_BIGINT, false},       {"sites", OPT_BIGINT, false},
    {"seed", OPT_BIGINT, false},      {"speed", OPT_BIGINT, true},          {"duration", OPT_INTERVAL, true},
    {"history", OPT_INTERVAL, true},  {"max_keys", OPT_BIGINT, false},  {"processing_guarantee", OPT_STRING, false},
    {"pv", OPT_NUMBER, false},
};

bool vpq_analyze_option_known(const char *key, const char **hint) {
  const char *names[sizeof known_options / sizeof *known_options];
  *hint = NULL;
  if (strncmp(key, "kafka.", 6) == 0 && key[6]) return true;
  for (size_t j = 0; j < sizeof known_options / sizeof *known_options; j++) {
    if (strcmp(known_options[j].key, key) == 0) return true;
    names[j] = known_options[j].key;
  }
  *hint = vpq_diag_suggest(key, names, (int)(sizeof names / sizeof *names));
  return false;
}

static const char *resolve_path(analyzer *a, const char *path) {
  if (path[0] == '/' || !a->plan->base_dir || strcmp(a->plan->base_dir, ".") == 0) return path;
  size_t len = strlen(a->plan->base_dir) + strlen(path) + 2;
  char *full = vpq_arena_alloc(a->arena, len);
  snprintf(full, len, "%s/%s", a->plan->base_dir, path);
  return full;
}

/* Checks WITH (...) and fills `conn`; `source` says whether source options are allowed. */
static void check_options(analyzer *a, const vpq_ast_options *opts, vpq_plan_connector *conn, bool source,
                          const vpq_ast_stmt *stmt) {
  conn->options.items = vpq_arena_alloc(a->arena, sizeof *conn->options.items * (size_t)(opts->count + 1));
  for (int i = 0; i < opts->count; i++) {
    const vpq_ast_option *o = &opts->items[i];
    const vpq_ast_expr *v = o->value;
    vpq_plan_option po = {o->key, o->span, VPQ_TYPE_STRING, NULL, {0}};
    bool passthrough = strncmp(o->key, "kafka.", 6) == 0;
    int k = -1;
    for (size_t j = 0; j < sizeof known_options / sizeof *known_options; j++)
      if (strcmp(known_options[j].key, o->key) == 0) k = (int)j;
    bool repeated = false;
    for (int j = 0; j < i && !repeated; j++) repeated = strcmp(opts->items[j].key, o->key) == 0;
    if (repeated) { /* reported; the first one stands */
      error(a, o->span, "option `%s` is given twice", o->key);
      continue;
    }
    if (k < 0 && !passthrough) {
      const char *names[sizeof known_options / sizeof *known_options];
      for (size_t j = 0; j < sizeof known_options / sizeof *known_options; j++) names[j] = known_options[j].key;
      const char *hint = vpq_diag_suggest(o->key, names, (int)(sizeof names / sizeof *names));
      if (hint) error(a, o->span, "unknown option `%s`; did you mean `%s`?", o->key, hint);
      else error(a, o->span, "unknown option `%s`", o->key);
      continue;
    }
    option_kind kind = passthrough ? OPT_STRING : known_options[k].kind;
    if (!passthrough && known_options[k].source_only && !source) {
      error(a, o->span, "option `%s` belongs to a source declared with columns, not to a derived %s", o->key,
            stmt->kind == VPQ_STMT_CREATE_TABLE ? "table" : "stream");
      continue;
    }
    switch (kind) {
    case OPT_STRING:
    case OPT_NAME:
      if (v->kind == VPQ_AST_STRING) po.text = v->sval;
      else if (kind == OPT_NAME && v->kind == VPQ_AST_COLUMN && !v->qualifier) po.text = v->name;
      else error(a, v->span, "option `%s` needs a string (e.g. '...')", o->key);
      break;
    case OPT_INTERVAL:
      po.type = VPQ_TYPE_INTERVAL;
      if (v->kind == VPQ_AST_INTERVAL) po.value.i = v->ival;
      else if (v->kind == VPQ_AST_INT && v->ival == 0) po.value.i = 0;
      else error(a, v->span, "option `%s` needs an interval (e.g. 5 SECONDS)", o->key);
      if (po.value.i < 0) error(a, v->span, "option `%s` cannot be negative", o->key);
      break;
    case OPT_BIGINT:
      po.type = VPQ_TYPE_BIGINT;
      if (v->kind == VPQ_AST_INT && v->ival > 0 && v->ival <= option_max(o->key)) po.value.i = v->ival;
      else if (v->kind == VPQ_AST_INT && v->ival > 0)
        error(a, v->span, "option `%s` needs an integer from 1 to %.0f", o->key, option_max(o->key));
      else error(a, v->span, "option `%s` needs a positive integer", o->key);
      break;
    case OPT_NUMBER:
      po.type = VPQ_TYPE_DOUBLE;
      if (v->kind == VPQ_AST_INT && v->ival >= 0) po.value.d = (double)v->ival;
      else if (v->kind == VPQ_AST_DOUBLE && v->dval >= 0) po.value.d = v->dval;
      else error(a, v->span, "option `%s` needs a non-negative number", o->key);
      if (po.value.d > option_max(o->key))
        error(a, v->span, "option `%s` needs a number from 0 to %g", o->key, option_max(o->key));
      break;
    case OPT_BOOLEAN:
      po.type = VPQ_TYPE_BOOLEAN;
      if (v->kind == VPQ_AST_BOOL) po.value.i = v->ival;
      else if (v->kind == VPQ_AST_STRING && (strcasecmp(v->sval, "true") == 0 || strcasecmp(v->sval, "false") == 0))
        po.value.i = strcasecmp(v->sval, "true") == 0;
      else error(a, v->span, "option `%s` needs TRUE or FALSE", o->key);
      break;
    }
    if (po.text && strcmp(o->key, "connector") == 0) {
      const char *c = str_lower(a, po.text);
      if (strcmp(c, "file") && strcmp(c, "kafka") && strcmp(c, "sim")) {
        const char *names[] = {"file", "kafka", "sim"};
        const char *hint = vpq_diag_suggest(c, names, 3);
        if (hint) error(a, v->span, "unknown connector `%s`; did you mean `%s`?", po.text, hint);
        else error(a, v->span, "unknown connector `%s` (known: file, kafka, sim)", po.text);
      }
      conn->connector = c;
    } else if (po.text && strcmp(o->key, "format") == 0) {
      const char *f = str_lower(a, po.text);
      if (strcmp(f, "json") && strcmp(f, "csv")) error(a, v->span, "unknown format `%s` (known: json, csv)", po.text);
      conn->format = f;
    } else if (po.text && strcmp(o->key, "path") == 0) {
      conn->path = resolve_path(a, po.text);
    } else if (po.text && strcmp(o->key, "dead_letter") == 0) {
      conn->dead_letter = resolve_path(a, po.text);
    }
    conn->options.items[conn->options.count++] = po;
  }
  if (conn->connector && !conn->format) conn->format = "json";
  for (int i = 0; i < conn->options.count; i++) { /* values the connectors would refuse when opened */
    const vpq_plan_option *o = &conn->options.items[i];
    if (!o->text) continue;
    if (strcmp(o->key, "processing_guarantee") == 0 && strcmp(o->text, "exactly_once") &&
        strcmp(o->text, "kafka_transactions") && strcmp(o->text, "at_least_once"))
      error(a, o->span, "`processing_guarantee` is 'exactly_once', 'kafka_transactions' or 'at_least_once', not '%s'",
            o->text);
    if (strcmp(o->key, "start") == 0 && conn->connector && strcmp(conn->connector, "kafka") == 0 &&
        strcmp(o->text, "earliest") && strcmp(o->text, "latest"))
      error(a, o->span, "`start` is 'earliest' or 'latest', not '%s'", o->text);
  }
  if (conn->dead_letter && conn->connector && strcmp(conn->connector, "kafka") == 0) {
    /* A Kafka source's dead letters go to a topic (the name as written), unless the value is a
     * file path: it has a '/' or ends in .json / .jsonl (a topic name can have neither). */
    const char *text = NULL;
    for (int i = 0; i < conn->options.count && !text; i++)
      if (strcmp(conn->options.items[i].key, "dead_letter") == 0) text = conn->options.items[i].text;
    size_t len = strlen(text);
    bool path = strchr(text, '/') || (len > 5 && strcmp(text + len - 5, ".json") == 0) ||
                (len > 6 && strcmp(text + len - 6, ".jsonl") == 0);
    if (!path) conn->dead_letter_topic = true, conn->dead_letter = text;
  }
  if (conn->connector && strcmp(conn->connector, "file") == 0 && !conn->path)
    error(a, stmt->name_span, "a file connector needs `path = '...'`");
  if (!conn->connector) {
    for (int i = 0; i < conn->options.count; i++) {
      const char *key = conn->options.items[i].key;
      if (!strcmp(key, "path") || !strcmp(key, "topic") || !strcmp(key, "format"))
        error(a, conn->options.items[i].span, "option `%s` needs a `connector`", key);
    }
  }
}

static const vpq_plan_option *find_option(const vpq_plan_connector *conn, const char *key) {
  for (int i = 0; i < conn->options.count; i++)
    if (strcmp(conn->options.items[i].key, key) == 0) return &conn->options.items[i];
  return NULL;
}

/* ===== Relations ===== */

static vpq_relation *add_relation(analyzer *a, const vpq_ast_stmt *stmt, vpq_relation_kind kind) {
  vpq_relation *existing = vpq_plan_find(a->plan, stmt->name);
  if (existing) error(a, stmt->name_span, "`%s` is already defined", stmt->name);
  vpq_relation *rel = vpq_arena_alloc(a->arena, sizeof *rel);
  rel->name = stmt->name;
  rel->span = stmt->name_span;
  rel->kind = kind;
  rel->ts_col = -1;
  rel->idle_timeout_ms = 30000;
  if (existing) return rel; /* checked, but not registered a second time */
  vpq_plan *plan = a->plan;
  plan->relations = vpq_arena_grow(a->arena, plan->relations, sizeof *plan->relations, &a->rel_cap, plan->nrelations + 1);
  rel->index = plan->nrelations;
  plan->relations[plan->nrelations++] = rel;
  return rel;
}

static void set_keys(analyzer *a, vpq_relation *rel) {
  rel->nkeys = 0;
  rel->key_cols = vpq_arena_alloc(a->arena, sizeof *rel->key_cols * (size_t)(rel->schema.ncols + 1));
  for (int c = 0; c < rel->schema.ncols; c++)
    if (rel->schema.cols[c].is_key) rel->key_cols[rel->nkeys++] = c;
}

static vpq_type ast_type(vpq_ast_type t) {
  switch (t) {
  case VPQ_AST_TYPE_BOOLEAN: return VPQ_TYPE_BOOLEAN;
  case VPQ_AST_TYPE_BIGINT: return VPQ_TYPE_BIGINT;
  case VPQ_AST_TYPE_DOUBLE: return VPQ_TYPE_DOUBLE;
  case VPQ_AST_TYPE_STRING: return VPQ_TYPE_STRING;
  case VPQ_AST_TYPE_TIMESTAMP: return VPQ_TYPE_TIMESTAMP;
  }
  return VPQ_TYPE_STRING;
}

static void declare_source(analyzer *a, const vpq_ast_stmt *stmt) {
  bool table = stmt->kind == VPQ_STMT_CREATE_TABLE;
  vpq_relation *rel = add_relation(a, stmt, table ? VPQ_REL_TABLE : VPQ_REL_STREAM);
  rel->declared = true;
  rel->schema.ncols = stmt->ncols;
  rel->schema.cols = vpq_arena_alloc(a->arena, sizeof *rel->schema.cols * (size_t)(stmt->ncols + 1));
  bool has_primary = false;
  for (int c = 0; c < stmt->ncols; c++) {
    const vpq_ast_coldef *col = &stmt->cols[c];
    for (int d = 0; d < c; d++)
      if (strcasecmp(stmt->cols[d].name, col->name) == 0) error(a, col->span, "column `%s` is declared twice", col->name);
    if (col->is_primary_key && !table) error(a, col->span, "PRIMARY KEY belongs to tables; a stream's key is `KEY`");
    if (col->is_key && table) error(a, col->span, "a table's key is `PRIMARY KEY`");
    has_primary |= col->is_primary_key;
    rel->schema.cols[c] = (vpq_column){.name = col->name, .type = ast_type(col->type), .is_key = col->is_key || col->is_primary_key};
  }
  if (table && !has_primary) error(a, stmt->name_span, "a table declared with columns needs a PRIMARY KEY");
  set_keys(a, rel);
  check_options(a, &stmt->options, &rel->source, true, stmt);
  rel->is_source = rel->source.connector != NULL;
  const vpq_plan_option *ts = find_option(&rel->source, "timestamp");
  if (ts && ts->text) {
    int c = vpq_schema_find(&rel->schema, ts->text);
    if (c < 0) {
      error(a, ts->span, "`timestamp` names no column of `%s`: `%s`", rel->name, ts->text);
    } else if (rel->schema.cols[c].type != VPQ_TYPE_TIMESTAMP && rel->schema.cols[c].type != VPQ_TYPE_BIGINT) {
      error(a, ts->span, "the `timestamp` column `%s` must be TIMESTAMP or BIGINT", rel->schema.cols[c].name);
    } else {
      rel->ts_col = c;
    }
  }
  const vpq_plan_option *delay = find_option(&rel->source, "watermark_delay");
  if (delay) rel->watermark_delay_ms = delay->value.i;
  const vpq_plan_option *idle = find_option(&rel->source, "idle_timeout");
  if (idle) rel->idle_timeout_ms = idle->value.i;
  const vpq_plan_option *max_keys = find_option(&rel->source, "max_keys");
  if (max_keys) error(a, max_keys->span, "option `max_keys` belongs to a derived stream or table that aggregates");
}

/* ===== SELECT ===== */

static void scope_add(analyzer *a, bind_scope *scope, vpq_schema *layout, const char *name, const vpq_relation *rel) {
  scope->entries = vpq_arena_grow(a->arena, scope->entries, sizeof *scope->entries, &scope->cap, scope->n + 1);
  scope->entries[scope->n++] = (scope_entry){name, rel, layout->ncols};
  vpq_column *cols = vpq_arena_alloc(a->arena, sizeof *cols * (size_t)(layout->ncols + rel->schema.ncols + 1));
  if (layout->ncols) memcpy(cols, layout->cols, sizeof *cols * (size_t)layout->ncols);
  if (rel->schema.ncols) memcpy(cols + layout->ncols, rel->schema.cols, sizeof *cols * (size_t)rel->schema.ncols);
  layout->cols = cols;
  layout->ncols += rel->schema.ncols;
}

/* Splits `e` into its AND-ed conjuncts. */
static void conjuncts(analyzer *a, vpq_bexpr *e, vpq_bexpr ***out, int *n, int *cap) {
  if (e->kind == VPQ_BEXPR_BINARY && e->op == VPQ_OP_AND) {
    conjuncts(a, e->args[0], out, n, cap);
    conjuncts(a, e->args[1], out, n, cap);
    return;
  }
  *out = vpq_arena_grow(a->arena, *out, sizeof **out, cap, *n + 1);
  (*out)[(*n)++] = e;
}

/* parts[0] AND parts[1] AND ...: left to right as written, or for more than LEFT_DEEP_CHAIN parts
 * a balanced tree (logic_tree), as a chain of AND in the query is bound. */
static vpq_bexpr *and_all(analyzer *a, vpq_bexpr **parts, int n) {
  if (n > LEFT_DEEP_CHAIN) return logic_tree(a, VPQ_OP_AND, parts, 0, n, vpq_span_join(parts[0]->span, parts[n - 1]->span));
  vpq_bexpr *all = NULL;
  for (int i = 0; i < n; i++) {
    if (!all) {
      all = parts[i];
      continue;
    }
    vpq_bexpr *both = bnew(a, VPQ_BEXPR_BINARY, VPQ_TYPE_BOOLEAN, parts[i]->span);
    both->op = VPQ_OP_AND;
    badd(a, both, all);
    badd(a, both, parts[i]);
    all = both;
  }
  return all;
}

static void bind_join(analyzer *a, const vpq_ast_join *j, bind_scope *scope, vpq_schema *layout, vpq_plan_join *out) {
  vpq_relation *right = find_relation(a, j->rel.name, j->rel.span);
  if (!right) return;
  out->right = right;
  out->alias = j->rel.alias;
  out->left_outer = j->kind == VPQ_JOIN_LEFT;
  if (right->kind == VPQ_REL_TABLE) {
    out->kind = VPQ_PLAN_JOIN_TABLE;
    if (j->within) error(a, j->within->span, "WITHIN is for joining two streams; `%s` is a table", right->name);
    if (right->windowed)
      error(a, j->rel.span,
            "`%s` is a windowed table (a row per key and window, which a lookup by key cannot pick): "
            "join its windows' results as a stream (CREATE STREAM ... EMIT FINAL), or a table over them "
            "(GROUP BY its key)", right->name);
  } else {
    out->kind = VPQ_PLAN_JOIN_WITHIN;
    if (!j->within) {
      error(a, j->span, "joining two streams needs WITHIN (e.g. JOIN %s WITHIN 5 MINUTES ON ...)", right->name);
    } else if (j->within->kind != VPQ_AST_INTERVAL || j->within->ival < 0) {
      error(a, j->within->span, "WITHIN needs an interval (e.g. 5 MINUTES)");
    } else {
      out->within_ms = j->within->ival;
    }
  }
  out->right_offset = layout->ncols;
  scope_add(a, scope, layout, j->rel.alias ? j->rel.alias : right->name, right);
  vpq_bexpr *on = bind(a, j->on, scope, BIND_ROW);
  if (on->type != VPQ_TYPE_BOOLEAN && on->type != VPQ_TYPE_NULL)
    error(a, j->on->span, "ON needs a BOOLEAN condition, got %s", vpq_type_name(on->type));
  vpq_bexpr **parts = NULL, **rest = NULL;
  int nparts = 0, parts_cap = 0, nrest = 0, rest_cap = 0;
  conjuncts(a, on, &parts, &nparts, &parts_cap);
  int lo = out->right_offset, hi = layout->ncols;
  out->left_keys = vpq_arena_alloc(a->arena, sizeof *out->left_keys * (size_t)(nparts + right->nkeys + 1));
  out->right_keys = vpq_arena_alloc(a->arena, sizeof *out->right_keys * (size_t)(nparts + right->nkeys + 1));
  bool *covered = vpq_arena_alloc(a->arena, (size_t)(right->nkeys + 1));
  for (int i = 0; i < nparts; i++) {
    vpq_bexpr *p = parts[i];
    bool equi = p->kind == VPQ_BEXPR_BINARY && p->op == VPQ_OP_EQ;
    vpq_bexpr *l = equi ? p->args[0] : NULL, *r = equi ? p->args[1] : NULL;
    if (equi && columns_within(l, lo, hi) && reads_columns(l) && columns_within(r, 0, lo)) {
      vpq_bexpr *t = l;
      l = r;
      r = t;
    }
    /* a table's key may equal a constant (`rg.gs = 0`); a window join pairs rows by their columns */
    bool usable = equi && columns_within(l, 0, lo) && (reads_columns(l) || out->kind == VPQ_PLAN_JOIN_TABLE) &&
                  columns_within(r, lo, hi) && reads_columns(r);
    if (usable && out->kind == VPQ_PLAN_JOIN_TABLE && r->kind == VPQ_BEXPR_CAST && r->args[0]->kind == VPQ_BEXPR_COLUMN &&
        r->args[0]->type == VPQ_TYPE_BIGINT && l->type == VPQ_TYPE_DOUBLE) {
      /* A DOUBLE against a BIGINT key (widened to DOUBLE to compare): the key as it is, looked up
       * by the DOUBLE when it is a whole number (else it matches nothing). */
      r = r->args[0];
      l = cast_to(a, l, VPQ_TYPE_BIGINT);
      l->exact = true;
    }
    if (usable && out->kind == VPQ_PLAN_JOIN_TABLE) {
      int key = -1;
      if (r->kind == VPQ_BEXPR_COLUMN)
        for (int k = 0; k < right->nkeys; k++)
          if (right->key_cols[k] == r->column - lo) key = k;
      usable = key >= 0 && !covered[key];
      if (usable) {
        covered[key] = true;
        out->left_keys[key] = l;
        out->right_keys[key] = shift_columns(a, r, -lo);
        continue;
      }
    } else if (usable) {
      out->left_keys[out->nkeys] = l;
      out->right_keys[out->nkeys++] = shift_columns(a, r, -lo);
      continue;
    }
    rest = vpq_arena_grow(a->arena, rest, sizeof *rest, &rest_cap, nrest + 1);
    rest[nrest++] = p;
  }
  if (out->kind == VPQ_PLAN_JOIN_TABLE) {
    out->nkeys = right->nkeys;
    for (int k = 0; k < right->nkeys; k++) {
      if (covered[k]) continue;
      error(a, j->on->span, "a join with table `%s` needs `ON` equality on its key `%s`", right->name,
            right->schema.cols[right->key_cols[k]].name);
      out->left_keys[k] = bnull(a, right->schema.cols[right->key_cols[k]].type, j->on->span);
      out->right_keys[k] = bcolumn(a, right->key_cols[k], right->schema.cols[right->key_cols[k]].type, j->on->span);
    }
  }
  out->residual = and_all(a, rest, nrest);
}

static const char *output_name(analyzer *a, const vpq_ast_select_item *item, const vpq_schema *layout, const vpq_bexpr *b) {
  if (item->alias) return item->alias;
  const vpq_ast_expr *e = item->expr;
  if (e->kind == VPQ_AST_COLUMN) {
    if (b->kind == VPQ_BEXPR_COLUMN && b->column >= 0 && b->column < layout->ncols && a->sel && !a->sel->aggregate)
      return layout->cols[b->column].name;
    /* a group key that is an input column: named as that column was declared, as above */
    const vpq_plan_select *sel = a->sel;
    if (sel && sel->aggregate && b->kind == VPQ_BEXPR_COLUMN && b->column >= 0 && b->column < sel->ngroup_keys) {
      const vpq_bexpr *key = sel->group_keys[b->column];
      if (key->kind == VPQ_BEXPR_COLUMN && key->column >= 0 && key->column < sel->input.ncols)
        return sel->input.cols[key->column].name;
    }
    return e->name;
  }
  /* The expression's text as written, with runs of whitespace collapsed. */
  const char *text = a->diag->text + e->span.off;
  char *name = vpq_arena_alloc(a->arena, e->span.len + 1);
  size_t n = 0;
  for (uint32_t i = 0; i < e->span.len; i++) {
    char c = text[i];
    bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    if (space) {
      if (n && name[n - 1] != ' ') name[n++] = ' ';
    } else {
      name[n++] = c;
    }
  }
  while (n && name[n - 1] == ' ') n--;
  name[n] = '\0';
  return name;
}

/* Gives the placeholder columns their index in the aggregate layout: the window columns from
 * `start`, the GROUPING flags from `grouping`. */
static void patch_layout_columns(vpq_bexpr *e, int start, int grouping) {
  if (e->kind == VPQ_BEXPR_COLUMN && e->column == WINDOW_START_COL) e->column = start;
  if (e->kind == VPQ_BEXPR_COLUMN && e->column == WINDOW_END_COL) e->column = start + 1;
  if (e->kind == VPQ_BEXPR_COLUMN && e->column <= GROUPING_COL) e->column = grouping + GROUPING_COL - e->column;
  for (int i = 0; i < e->nargs; i++) patch_layout_columns(e->args[i], start, grouping);
}

/* Whether `e` is a positive interval literal: one that window_interval takes as it is (it
 * stands in 1 ms for a bad one, which must not raise errors of its own). */
static bool positive_interval(const vpq_ast_expr *e) { return e && e->kind == VPQ_AST_INTERVAL && e->ival > 0; }

static int64_t window_interval(analyzer *a, const vpq_ast_expr *e, const char *what, bool zero_ok) {
  if (!e) return 0;
  if (e->kind != VPQ_AST_INTERVAL) {
    error(a, e->span, "%s needs an interval (e.g. 1 MINUTE)", what);
    return zero_ok ? 0 : 1;
  }
  if (e->ival < 0 || (!zero_ok && e->ival == 0)) {
    error(a, e->span, "%s must be %s", what, zero_ok ? "zero or positive" : "positive");
    return zero_ok ? 0 : 1;
  }
  return e->ival;
}

/* Binds a SELECT into `q` and returns its output columns (names and types). */
static vpq_schema bind_select(analyzer *a, const vpq_ast_select *s, vpq_plan_query *q, const vpq_ast_stmt *stmt) {
  vpq_plan_select *sel = &q->select;
  vpq_schema out = {0};
  a->select = s;
  vpq_relation *from = find_relation(a, s->from.name, s->from.span);
  if (!from) {
    a->select = NULL;
    return out;
  }
  sel->from = from;
  sel->input_is_changelog = from->kind == VPQ_REL_TABLE;
  bind_scope scope = {0};
  vpq_schema *layout = &sel->input;
  scope.layout = layout;
  scope_add(a, &scope, layout, s->from.alias ? s->from.alias : from->name, from);
  if (s->njoins && from->kind == VPQ_REL_TABLE) error(a, s->from.span, "joins must start FROM a stream; `%s` is a table", from->name);
  sel->joins = vpq_arena_alloc(a->arena, sizeof *sel->joins * (size_t)(s->njoins + 1));
  a->where_clause = "ON";
  for (int j = 0; j < s->njoins; j++) {
    bind_join(a, &s->joins[j], &scope, layout, &sel->joins[sel->njoins]);
    if (sel->joins[sel->njoins].right) sel->njoins++;
  }
  /* WINDOW */
  const vpq_ast_window *w = &s->window;
  sel->window.kind = w->kind;
  if (w->kind == VPQ_WINDOW_TUMBLING || w->kind == VPQ_WINDOW_HOPPING) {
    sel->window.size_ms = window_interval(a, w->size, "SIZE", false);
    sel->window.advance_ms = w->kind == VPQ_WINDOW_HOPPING ? window_interval(a, w->advance, "ADVANCE BY", false) : sel->window.size_ms;
    /* windows per row: ceil(SIZE / ADVANCE BY) */
    const int64_t per_row = (sel->window.size_ms + sel->window.advance_ms - 1) / sel->window.advance_ms;
    if (sel->window.size_ms > VPQ_AST_INTERVAL_MAX_MS || sel->window.advance_ms > VPQ_AST_INTERVAL_MAX_MS)
      ; /* out of range: the parser said so */
    else if (sel->window.advance_ms > sel->window.size_ms) error(a, w->advance->span, "ADVANCE BY must not exceed SIZE");
    else if (per_row > HOPPING_WINDOWS_MAX)
      error(a, w->advance->span, "a row would be in %lld windows; SIZE / ADVANCE BY is at most %d", (long long)per_row,
            HOPPING_WINDOWS_MAX);
  } else if (w->kind == VPQ_WINDOW_SESSION) {
    sel->window.gap_ms = window_interval(a, w->gap, "a session gap", false);
  }
  sel->window.grace_ms = window_interval(a, w->grace, "GRACE PERIOD", true);
  a->windowed = w->kind != VPQ_WINDOW_NONE;
  if (a->windowed && from->kind == VPQ_REL_TABLE) error(a, w->span, "a WINDOW needs a stream; `%s` is a table", from->name);
  /* WHERE */
  a->where_clause = "WHERE";
  if (s->where) {
    sel->where = bind(a, s->where, &scope, BIND_ROW);
    if (sel->where->type != VPQ_TYPE_BOOLEAN && sel->where->type != VPQ_TYPE_NULL)
      error(a, s->where->span, "WHERE needs a BOOLEAN condition, got %s", vpq_type_name(sel->where->type));
  }
  /* GROUP BY */
  a->where_clause = "GROUP BY";
  sel->group_keys = vpq_arena_alloc(a->arena, sizeof *sel->group_keys * (size_t)(s->group_by.count + 1));
  bool *key_failed = vpq_arena_alloc(a->arena, sizeof *key_failed * (size_t)(s->group_by.count + 1));
  for (int k = 0; k < s->group_by.count; k++) {
    const int errors = a->diag->errors;
    vpq_bexpr *key = bind(a, s->group_by.items[k], &scope, BIND_ROW);
    if (key->type == VPQ_TYPE_INTERVAL) key->type = VPQ_TYPE_BIGINT;
    for (int j = 0; j < k && a->diag->errors == errors; j++)
      if (bexpr_equal(sel->group_keys[j], key)) {
        char text[128];
        error(a, s->group_by.items[k]->span, "`%s` is in GROUP BY twice",
              vpq_ast_expr_format(s->group_by.items[k], text, sizeof text));
      }
    key_failed[k] = a->diag->errors != errors; /* no second error about it in the SELECT list */
    sel->group_keys[sel->ngroup_keys++] = key;
  }
  sel->rollup = s->rollup;
  if (sel->ngroup_keys > 64) error(a, s->group_span, "GROUP BY takes at most 64 keys");
  bool any_aggregate = s->having != NULL;
  for (int i = 0; i < s->nitems; i++) any_aggregate |= has_aggregate(s->items[i].expr);
  sel->aggregate = s->group_by.count > 0 || any_aggregate;
  if (s->having && !sel->aggregate) error(a, s->having->span, "HAVING needs GROUP BY or an aggregate");
  if (a->windowed && !sel->aggregate) error(a, w->span, "a WINDOW needs GROUP BY or an aggregate");
  /* SELECT list */
  a->where_clause = NULL;
  a->sel = sel;
  bind_mode mode = sel->aggregate ? BIND_AGGREGATE : BIND_ROW;
  int cap = s->nitems + layout->ncols + 1;
  sel->outputs = vpq_arena_alloc(a->arena, sizeof *sel->outputs * (size_t)cap);
  out.cols = vpq_arena_alloc(a->arena, sizeof *out.cols * (size_t)cap);
  for (int i = 0; i < s->nitems; i++) {
    const vpq_ast_select_item *item = &s->items[i];
    if (item->expr->kind == VPQ_AST_STAR) {
      if (sel->aggregate) {
        error(a, item->expr->span, "`*` cannot be selected in an aggregation");
        continue;
      }
      for (int e = 0; e < scope.n; e++) {
        const scope_entry *entry = &scope.entries[e];
        if (item->expr->qualifier && !qualifier_names(&scope, entry, item->expr->qualifier)) continue;
        for (int c = 0; c < entry->rel->schema.ncols; c++) {
          int col = entry->offset + c;
          for (int o = 0; o < out.ncols; o++)
            if (strcasecmp(out.cols[o].name, layout->cols[col].name) == 0) {
              error(a, item->expr->span, "duplicate column name `%s` from `*`; select the columns with AS",
                    layout->cols[col].name);
              break;
            }
          sel->outputs[sel->noutputs++] = bcolumn(a, col, layout->cols[col].type, item->expr->span);
          out.cols[out.ncols++] = (vpq_column){.name = layout->cols[col].name, .type = layout->cols[col].type};
        }
      }
      continue;
    }
    vpq_bexpr *b = bind(a, item->expr, &scope, mode);
    if (b->type == VPQ_TYPE_INTERVAL) b->type = VPQ_TYPE_BIGINT;
    const char *name = output_name(a, item, layout, b);
    for (int o = 0; o < out.ncols; o++)
      if (strcasecmp(out.cols[o].name, name) == 0) {
        if (item->alias)
          error(a, item->alias_span, "duplicate column name `%s`: `%s` is taken (names ignore case)", name,
                out.cols[o].name);
        else
          error(a, item->expr->span, "duplicate column name `%s`; add AS", name);
        break;
      }
    sel->outputs[sel->noutputs++] = b;
    out.cols[out.ncols++] = (vpq_column){.name = name, .type = b->type == VPQ_TYPE_NULL ? VPQ_TYPE_STRING : b->type};
  }
  if (s->having) {
    sel->having = bind(a, s->having, &scope, BIND_AGGREGATE);
    if (sel->having->type != VPQ_TYPE_BOOLEAN && sel->having->type != VPQ_TYPE_NULL)
      error(a, s->having->span, "HAVING needs a BOOLEAN condition, got %s", vpq_type_name(sel->having->type));
  }
  a->sel = NULL;
  int window_start = sel->ngroup_keys + sel->naggs, grouping_start = window_start + (a->windowed ? 2 : 0);
  for (int i = 0; i < sel->noutputs; i++) patch_layout_columns(sel->outputs[i], window_start, grouping_start);
  if (sel->having) patch_layout_columns(sel->having, window_start, grouping_start);
  /* Keys of the result: plain references to the group keys (and, with ROLLUP, to their
   * GROUPING flags, which tell a rolled-up key from a NULL one), or to the FROM stream's key. */
  for (int i = 0; i < sel->noutputs; i++) {
    const vpq_bexpr *b = sel->outputs[i];
    if (b->kind != VPQ_BEXPR_COLUMN) continue;
    bool grouping = sel->rollup && b->column >= grouping_start && b->column < grouping_start + sel->ngroup_keys;
    if (sel->aggregate) out.cols[i].is_key = (b->column >= 0 && b->column < sel->ngroup_keys) || grouping;
    else out.cols[i].is_key = b->column < from->schema.ncols && from->schema.cols[b->column].is_key;
    out.cols[i].is_window = sel->aggregate ? a->windowed && (b->column == window_start || b->column == window_start + 1)
                                           : b->column < from->schema.ncols && from->schema.cols[b->column].is_window;
  }
  /* EMIT */
  sel->emit = s->emit == VPQ_EMIT_DEFAULT ? VPQ_EMIT_CHANGES : s->emit;
  if (s->emit == VPQ_EMIT_FINAL && !a->windowed) error(a, s->emit_span, "EMIT FINAL needs a WINDOW");
  /* The statement kind must fit the query's shape. */
  if (stmt->kind == VPQ_STMT_CREATE_TABLE) {
    if (!sel->aggregate && from->kind != VPQ_REL_TABLE)
      error(a, stmt->name_span, "a table needs GROUP BY (or a table to select from); use CREATE STREAM");
    /* a table selected from a table is keyed by the same columns: they must come through as they are */
    for (int c = 0; !sel->aggregate && from->kind == VPQ_REL_TABLE && c < from->schema.ncols; c++) {
      if (!from->schema.cols[c].is_key) continue;
      bool selected = false;
      for (int i = 0; i < sel->noutputs; i++)
        selected |= sel->outputs[i]->kind == VPQ_BEXPR_COLUMN && sel->outputs[i]->column == c;
      if (!selected)
        error(a, s->from.span, "the key `%s` of table `%s` must be in the SELECT list (as it is, or renamed): it is the new table's key too",
              from->schema.cols[c].name, from->name);
    }
    for (int k = 0; sel->aggregate && k < sel->ngroup_keys; k++) {
      bool selected = key_failed[k];
      for (int i = 0; i < sel->noutputs; i++)
        selected |= sel->outputs[i]->kind == VPQ_BEXPR_COLUMN && sel->outputs[i]->column == k;
      char text[128];
      if (!selected)
        error(a, s->group_by.items[k]->span, "the table's key `%s` must be in the SELECT list",
              vpq_ast_expr_format(s->group_by.items[k], text, sizeof text));
    }
  } else if (stmt->kind == VPQ_STMT_CREATE_STREAM || stmt->kind == VPQ_STMT_INSERT_INTO) {
    if (sel->aggregate && !a->windowed)
      error(a, s->group_span.len ? s->group_span : q->span, "an aggregation without a WINDOW makes a table: use CREATE TABLE");
    else if (!sel->aggregate && from->kind == VPQ_REL_TABLE)
      error(a, s->from.span, "`%s` is a table: a stream cannot select from it directly", from->name);
  }
  a->select = NULL;
  return out;
}

/* ===== FORECAST and SCHEDULE ===== */

/* model option -> the models it applies to (bit i = model kind i) */
static const struct {
  const char *key;
  option_kind kind;
  unsigned models;
} model_options[] = {
    {"season", OPT_INTERVAL, 0xf}, {"history", OPT_INTERVAL, 0xf}, {"features", OPT_NAME, 0xc},
    {"ridge", OPT_NUMBER, 0xc},    {"hidden", OPT_BIGINT, 0x8},    {"epochs", OPT_BIGINT, 0x8},
    {"learning_rate", OPT_NUMBER, 0x8}, {"seed", OPT_BIGINT, 0x8},     {"retrain", OPT_INTERVAL, 0xf},
};

static const char *const model_names[] = {"seasonal_naive", "holt_winters", "linear", "mlp"}; /* ORDER vpq_model_kind */

static bool number_value(const vpq_ast_expr *v, double *out) {
  if (v->kind == VPQ_AST_INT) *out = (double)v->ival;
  else if (v->kind == VPQ_AST_DOUBLE) *out = v->dval;
  else return false;
  return true;
}

/* number_value, also of a negated number literal (`-0.2`). */
static bool signed_number_value(const vpq_ast_expr *v, double *out) {
  bool negative = v->kind == VPQ_AST_UNARY && v->op == VPQ_OP_NEG;
  if (!number_value(negative ? v->args[0] : v, out)) return false;
  if (negative) *out = -*out;
  return true;
}

/* Adds feature column `e` (a column of from) to f->features. */
static void forecast_feature(analyzer *a, vpq_plan_forecast *f, const vpq_ast_expr *e) {
  int c = e->kind == VPQ_AST_COLUMN ? vpq_schema_find(&f->from->schema, e->name) : -1;
  if (e->kind != VPQ_AST_COLUMN) {
    error(a, e->span, "a feature is a column of `%s`", f->from->name);
    return;
  }
  if (c < 0) {
    error(a, e->span, "`%s` has no column `%s`", f->from->name, e->name);
    return;
  }
  if (!numeric(f->from->schema.cols[c].type)) {
    error(a, e->span, "feature `%s` is %s; features are numbers", e->name, vpq_type_name(f->from->schema.cols[c].type));
    return;
  }
  f->features[f->nfeatures++] = c;
}

static void forecast_options(analyzer *a, const vpq_ast_forecast *ast, vpq_plan_forecast *f) {
  int nkeys = (int)(sizeof model_options / sizeof *model_options);
  unsigned given = 0; /* bit j: model_options[j] seen */
  for (int i = 0; i < ast->model_options.count; i++) {
    const vpq_ast_option *o = &ast->model_options.items[i];
    const vpq_ast_expr *v = o->value;
    int k = -1;
    for (int j = 0; j < nkeys; j++)
      if (strcmp(model_options[j].key, o->key) == 0) k = j;
    if (k < 0) {
      const char *names[sizeof model_options / sizeof *model_options];
      for (int j = 0; j < nkeys; j++) names[j] = model_options[j].key;
      const char *hint = vpq_diag_suggest(o->key, names, nkeys);
      if (hint) error(a, o->span, "unknown model option `%s`; did you mean `%s`?", o->key, hint);
      else error(a, o->span, "unknown model option `%s`", o->key);
      continue;
    }
    if (!(model_options[k].models & (1u << f->model.kind))) {
      error(a, o->span, "model `%s` has no option `%s`", f->model_name, o->key);
      continue;
    }
    if (given & (1u << k)) {
      error(a, o->span, "model option `%s` is given twice", o->key);
      continue;
    }
    given |= 1u << k;
    double number = 0;
    switch (model_options[k].kind) {
    case OPT_INTERVAL:
      if (v->kind != VPQ_AST_INTERVAL || v->ival <= 0) {
        error(a, v->span, "model option `%s` needs a positive interval (e.g. 1 DAY)", o->key);
        continue;
      }
      if (strcmp(o->key, "season") == 0) f->season_ms = v->ival;
      else if (strcmp(o->key, "retrain") == 0) f->retrain_ms = v->ival;
      else f->history_ms = v->ival;
      break;
    case OPT_BIGINT:
      if (v->kind != VPQ_AST_INT || v->ival <= 0 || v->ival > 100000) {
        error(a, v->span, "model option `%s` needs a whole number from 1 to 100000", o->key);
        continue;
      }
      if (strcmp(o->key, "hidden") == 0) f->model.hidden = (int)v->ival;
      else if (strcmp(o->key, "epochs") == 0) f->model.epochs = (int)v->ival;
      else f->model.seed = (uint64_t)v->ival;
      break;
    case OPT_NUMBER:
      if (strcmp(o->key, "learning_rate") == 0 && (!number_value(v, &number) || !(number > 0))) {
        error(a, v->span, "model option `%s` needs a positive number", o->key); /* 0 would never learn */
        continue;
      }
      if (!number_value(v, &number) || number < 0) {
        error(a, v->span, "model option `%s` needs a non-negative number", o->key);
        continue;
      }
      if (strcmp(o->key, "ridge") == 0) f->model.ridge = number;
      else f->model.learning_rate = number;
      break;
    case OPT_NAME: /* features: the only model option of these kinds */
    case OPT_STRING:
    case OPT_BOOLEAN: {
      int n = v->kind == VPQ_AST_LIST ? v->nargs : 1;
      f->features = vpq_arena_alloc(a->arena, sizeof *f->features * (size_t)(n + 1));
      f->nfeatures = 0;
      for (int j = 0; j < n; j++) forecast_feature(a, f, v->kind == VPQ_AST_LIST ? v->args[j] : v);
      break;
    }
    }
  }
}

static vpq_schema forecast_schema(analyzer *a, const vpq_ast_forecast *ast, vpq_plan_forecast *f) {
  vpq_schema out = {0};
  out.cols = vpq_arena_alloc(a->arena, sizeof *out.cols * (size_t)(ast->by.count + 6));
  bool known = false;
  for (int m = 0; m < 4; m++)
    if (strcmp(model_names[m], ast->model) == 0) {
      known = true;
      f->model = vpq_model_defaults((vpq_model_kind)m);
    }
  f->model_name = ast->model;
  if (!known) {
    const char *hint = vpq_diag_suggest(ast->model, model_names, 4);
    if (hint) error(a, ast->model_span, "unknown model `%s`; did you mean `%s`?", ast->model, hint);
    else error(a, ast->model_span, "unknown model `%s` (known: seasonal_naive, holt_winters, linear, mlp)", ast->model);
  }
  f->season_ms = 86400000;
  f->history_ms = 60 * (int64_t)86400000;
  vpq_relation *from = find_relation(a, ast->from.name, ast->from.span);
  f->from = from;
  if (from) {
    bind_scope scope = {0};
    vpq_schema layout = {0};
    scope.layout = &layout;
    scope_add(a, &scope, &layout, ast->from.alias ? ast->from.alias : from->name, from);
    a->where_clause = "FORECAST";
    f->value = bind(a, ast->value, &scope, BIND_ROW);
    if (!numeric(f->value->type) && f->value->type != VPQ_TYPE_NULL)
      error(a, ast->value->span, "FORECAST needs a numeric value, got %s", vpq_type_name(f->value->type));
    else f->value = cast_to(a, f->value, VPQ_TYPE_DOUBLE);
    f->ts_col = vpq_schema_find(&from->schema, "ts");
    if (f->ts_col < 0)
      error(a, ast->from.span, "FORECAST reads the time of each value from a `ts` column; `%s` has none", from->name);
    else if (from->schema.cols[f->ts_col].type != VPQ_TYPE_TIMESTAMP)
      error(a, ast->from.span, "column `ts` of `%s` is %s, FORECAST needs a TIMESTAMP", from->name,
            vpq_type_name(from->schema.cols[f->ts_col].type));
    f->by = vpq_arena_alloc(a->arena, sizeof *f->by * (size_t)(ast->by.count + 1));
    for (int k = 0; k < ast->by.count; k++) {
      vpq_bexpr *key = bind(a, ast->by.items[k], &scope, BIND_ROW);
      f->by[f->nby++] = key;
      const char *name = key->kind == VPQ_BEXPR_COLUMN ? layout.cols[key->column].name : "key";
      out.cols[out.ncols++] = (vpq_column){.name = name, .type = key->type, .is_key = true};
    }
    a->where_clause = NULL;
    if (known) forecast_options(a, ast, f);
  }
  f->horizon_ms = window_interval(a, ast->horizon, "HORIZON", false);
  if (ast->every)
    f->every_ms = window_interval(a, ast->every, "EVERY", false);
  else
    error(a, ast->horizon->span, "FORECAST needs `EVERY interval` after HORIZON: how often it issues (e.g. EVERY 1 HOUR)");
  if (ast->step) f->step_ms = window_interval(a, ast->step, "STEP", false);
  if (f->step_ms && positive_interval(ast->horizon) && f->horizon_ms % f->step_ms)
    error(a, ast->horizon->span, "HORIZON must be a whole number of STEPs");
  if (f->step_ms && positive_interval(ast->every) && f->every_ms % f->step_ms)
    error(a, ast->every->span, "EVERY must be a whole number of STEPs (a forecast uses only whole steps before its issue)");
  if (f->step_ms && f->season_ms % f->step_ms)
    error(a, ast->model_span, "the season must be a whole number of STEPs");
  if (f->history_ms < 3 * f->season_ms) f->history_ms = 3 * f->season_ms;
  /* the limits in steps only for a valid STEP (an invalid one stands in as 1 ms: audit 43) */
  const bool step_valid = positive_interval(ast->step);
  if (step_valid && f->history_ms / f->step_ms > VPQ_FORECAST_MAX_HISTORY_STEPS)
    error(a, ast->step->span, "this STEP makes a history of %lld steps (it covers at least three seasons): at most %d; "
          "give a longer STEP, or a shorter season or history", (long long)(f->history_ms / f->step_ms),
          VPQ_FORECAST_MAX_HISTORY_STEPS);
  if (step_valid && f->horizon_ms / f->step_ms > VPQ_FORECAST_MAX_HORIZON_STEPS)
    error(a, ast->horizon->span, "HORIZON is %lld STEPs: at most %d", (long long)(f->horizon_ms / f->step_ms),
          VPQ_FORECAST_MAX_HORIZON_STEPS);
  const char *names[] = {"issued_at", "ts", "step", "value", "lo", "hi"};
  vpq_type types[] = {VPQ_TYPE_TIMESTAMP, VPQ_TYPE_TIMESTAMP, VPQ_TYPE_BIGINT, VPQ_TYPE_DOUBLE, VPQ_TYPE_DOUBLE, VPQ_TYPE_DOUBLE};
  for (int i = 0; i < 6; i++) out.cols[out.ncols++] = (vpq_column){.name = names[i], .type = types[i]};
  return out;
}

/* Finds column `name` of `rel` (numeric unless `any`), or reports it missing when `required`. */
static int schedule_column(analyzer *a, const vpq_relation *rel, vpq_span span, const char *name, const char *role,
                           bool required, bool any) {
  int c = vpq_schema_find(&rel->schema, name);
  if (c < 0) {
    if (required) error(a, span, "%s `%s` has no `%s` column", role, rel->name, name);
    return -1;
  }
  vpq_type t = rel->schema.cols[c].type;
  if (!any && !numeric(t)) error(a, span, "column `%s` of %s `%s` is %s; it must be a number", name, role, rel->name, vpq_type_name(t));
  return c;
}

/* A forecast's `ts` and `issued_at` columns (when present) must be TIMESTAMPs. */
static void forecast_columns_typed(analyzer *a, const vpq_relation *rel, vpq_span span, int ts, int issued, const char *role) {
  int cols[2] = {ts, issued};
  for (int i = 0; i < 2; i++)
    if (cols[i] >= 0 && rel->schema.cols[cols[i]].type != VPQ_TYPE_TIMESTAMP)
      error(a, span, "column `%s` of %s `%s` is %s; it must be a TIMESTAMP", rel->schema.cols[cols[i]].name, role,
            rel->name, vpq_type_name(rel->schema.cols[cols[i]].type));
}

/* SUBJECT TO peak_floor = f * month_peak (or month_peak * f; month_peak alone is f = 1), with
 * 0 < f <= 1, under MINIMIZE PEAK: sets s->peak_floor to f. */
static void schedule_peak_floor(analyzer *a, const vpq_ast_schedule *ast, const vpq_ast_expr *e, vpq_plan_schedule *s) {
  double share = 1;
  const vpq_ast_expr *peak = e;
  if (e->kind == VPQ_AST_BINARY && e->op == VPQ_OP_MUL) {
    bool left = number_value(e->args[0], &share);
    peak = left ? e->args[1] : number_value(e->args[1], &share) ? e->args[0] : NULL;
  }
  if (!peak || peak->kind != VPQ_AST_COLUMN || strcasecmp(peak->name, "month_peak") != 0) {
    error(a, e->span, "peak_floor is a share of the month's peak, like `peak_floor = 0.95 * month_peak`");
    return;
  }
  if (!(share > 0 && share <= 1)) {
    error(a, e->span, "the share of month_peak is above 0 and at most 1");
    return;
  }
  if (ast->objective != VPQ_OBJECTIVE_MINIMIZE_PEAK) {
    error(a, e->span, "peak_floor goes with MINIMIZE PEAK");
    return;
  }
  s->peak_floor = share;
}

static vpq_schema schedule_schema(analyzer *a, const vpq_ast_schedule *ast, vpq_plan_schedule *s) {
  vpq_type device_type = VPQ_TYPE_STRING;
  for (int i = 0; i < VPQ_FLEET_NCOLS; i++) s->fleet_cols[i] = -1;
  s->fleet = find_relation(a, ast->fleet.name, ast->fleet.span);
  if (s->fleet && s->fleet->kind != VPQ_REL_TABLE) {
    error(a, ast->fleet.span, "SCHEDULE needs a table of batteries; `%s` is a stream", s->fleet->name);
  } else if (s->fleet) {
    static const char *const cols[] = {"device_id", "soc",     "capacity_kwh", "max_kw",
                                       "efficiency", "min_soc", "max_soc",      "seen"}; /* ORDER VPQ_FLEET_ */
    for (int i = 0; i < VPQ_FLEET_SEEN; i++)
      s->fleet_cols[i] = schedule_column(a, s->fleet, ast->fleet.span, cols[i], "the fleet", i < 4, i == VPQ_FLEET_DEVICE);
    int seen = vpq_schema_find(&s->fleet->schema, "seen");
    if (seen >= 0 && s->fleet->schema.cols[seen].type == VPQ_TYPE_TIMESTAMP) s->fleet_cols[VPQ_FLEET_SEEN] = seen;
    if (s->fleet_cols[VPQ_FLEET_DEVICE] >= 0) device_type = s->fleet->schema.cols[s->fleet_cols[VPQ_FLEET_DEVICE]].type;
    /* one battery per device_id: a fleet keyed by something else (one row per site) would plan
     * one of each id that its rows name */
    const int device = s->fleet_cols[VPQ_FLEET_DEVICE];
    for (int c = 0; c < s->fleet->schema.ncols && device >= 0 && !s->fleet->schema.cols[device].is_key; c++)
      if (s->fleet->schema.cols[c].is_key)
        error(a, ast->fleet.span,
              "the fleet `%s` is keyed by `%s`, not by device_id; SCHEDULE plans one battery per device_id: key the "
              "fleet by device_id",
              s->fleet->name, s->fleet->schema.cols[c].name);
  }
  s->forecast = find_relation(a, ast->forecast.name, ast->forecast.span);
  if (s->forecast && s->forecast->kind == VPQ_REL_TABLE) {
    error(a, ast->forecast.span, "SCHEDULE plans for a stream of forecast rows; `%s` is a table", s->forecast->name);
  } else if (s->forecast) {
    s->forecast_ts = schedule_column(a, s->forecast, ast->forecast.span, "ts", "the forecast", true, true);
    s->forecast_value = schedule_column(a, s->forecast, ast->forecast.span, "value", "the forecast", true, false);
    s->forecast_issued = schedule_column(a, s->forecast, ast->forecast.span, "issued_at", "the forecast", false, true);
    forecast_columns_typed(a, s->forecast, ast->forecast.span, s->forecast_ts, s->forecast_issued, "the forecast");
    for (int c = 0; c < s->forecast->schema.ncols; c++)
      if (s->forecast->schema.cols[c].is_key && c != s->forecast_ts && c != s->forecast_issued)
        error(a, ast->forecast.span, "the forecast `%s` is keyed by `%s`; SCHEDULE plans one plant: sum the keys first",
              s->forecast->name, s->forecast->schema.cols[c].name);
  }
  switch (ast->objective) {
  case VPQ_OBJECTIVE_MINIMIZE_PEAK: s->objective = VPQ_SCHED_MIN_PEAK; break;
  case VPQ_OBJECTIVE_KEEP_BELOW: s->objective = VPQ_SCHED_KEEP_BELOW; break;
  case VPQ_OBJECTIVE_MINIMIZE_COST: s->objective = VPQ_SCHED_MIN_COST; break;
  }
  if (ast->objective == VPQ_OBJECTIVE_MINIMIZE_COST) {
    s->price = find_relation(a, ast->price.name, ast->price.span);
    if (s->price && s->price->kind == VPQ_REL_TABLE) {
      error(a, ast->price.span, "MINIMIZE COST reads a stream of price rows; `%s` is a table", s->price->name);
    } else if (s->price) {
      s->price_ts = schedule_column(a, s->price, ast->price.span, "ts", "the price forecast", true, true);
      s->price_value = schedule_column(a, s->price, ast->price.span, "value", "the price forecast", true, false);
      s->price_issued = schedule_column(a, s->price, ast->price.span, "issued_at", "the price forecast", false, true);
      forecast_columns_typed(a, s->price, ast->price.span, s->price_ts, s->price_issued, "the price forecast");
    }
  }
  if (ast->objective == VPQ_OBJECTIVE_KEEP_BELOW) {
    if (!signed_number_value(ast->cap, &s->cap_kw)) error(a, ast->cap->span, "KEEP BELOW needs a number of kW");
  }
  s->min_soc = 0;
  s->max_soc = 1;
  s->peak_floor = 0;
  for (int i = 0; i < ast->constraints.count; i++) {
    const vpq_ast_expr *c = ast->constraints.items[i];
    if (c->kind == VPQ_AST_BINARY && c->op == VPQ_OP_EQ && c->args[0]->kind == VPQ_AST_COLUMN &&
        strcasecmp(c->args[0]->name, "peak_floor") == 0) {
      schedule_peak_floor(a, ast, c->args[1], s);
      continue;
    }
    double limit = 0;
    bool ok = c->kind == VPQ_AST_BINARY && c->op >= VPQ_OP_LT && c->op <= VPQ_OP_GE && c->args[0]->kind == VPQ_AST_COLUMN &&
              strcasecmp(c->args[0]->name, "soc") == 0 && signed_number_value(c->args[1], &limit);
    if (!ok) {
      error(a, c->span, "SUBJECT TO takes limits on soc, like `soc >= 0.10`");
      continue;
    }
    if (limit < 0 || limit > 1) {
      error(a, c->args[1]->span, "a soc limit is between 0 and 1");
      continue;
    }
    if (c->op == VPQ_OP_GT || c->op == VPQ_OP_GE) s->min_soc = limit > s->min_soc ? limit : s->min_soc;
    else s->max_soc = limit < s->max_soc ? limit : s->max_soc;
  }
  if (s->min_soc > s->max_soc) error(a, ast->constraints.items[0]->span, "the soc limits leave no room: %g > %g", s->min_soc, s->max_soc);
  s->horizon_ms = window_interval(a, ast->horizon, "HORIZON", false);
  s->step_ms = window_interval(a, ast->step, "STEP", false);
  const bool sized = positive_interval(ast->horizon) && positive_interval(ast->step); /* else refused above */
  if (sized && s->horizon_ms % s->step_ms) error(a, ast->horizon->span, "HORIZON must be a whole number of STEPs");
  else if (sized && s->horizon_ms / s->step_ms > 10000) error(a, ast->horizon->span, "a plan has at most 10000 steps");
  s->emit_plan = ast->emit_plan;
  vpq_schema out = {0};
  out.cols = vpq_arena_alloc(a->arena, sizeof *out.cols * 6);
  const char *names[] = {"issued_at", "ts", "device_id", "setpoint_kw", "soc", "planned_peak_kw"};
  vpq_type types[] = {VPQ_TYPE_TIMESTAMP, VPQ_TYPE_TIMESTAMP, device_type, VPQ_TYPE_DOUBLE, VPQ_TYPE_DOUBLE, VPQ_TYPE_DOUBLE};
  for (int i = 0; i < 6; i++) out.cols[out.ncols++] = (vpq_column){.name = names[i], .type = types[i], .is_key = i == 2};
  return out;
}

/* ===== Statements ===== */

static vpq_plan_query *bind_query(analyzer *a, const vpq_ast_query *ast, const vpq_ast_stmt *stmt, vpq_schema *out) {
  vpq_plan_query *q = vpq_arena_alloc(a->arena, sizeof *q);
  q->span = ast->span;
  q->ast = ast;
  switch (ast->kind) {
  case VPQ_QUERY_SELECT:
    q->kind = VPQ_PLAN_SELECT;
    *out = bind_select(a, &ast->u.select, q, stmt);
    break;
  case VPQ_QUERY_FORECAST:
    q->kind = VPQ_PLAN_FORECAST;
    *out = forecast_schema(a, &ast->u.forecast, &q->forecast);
    break;
  case VPQ_QUERY_SCHEDULE:
    q->kind = VPQ_PLAN_SCHEDULE;
    *out = schedule_schema(a, &ast->u.schedule, &q->schedule);
    break;
  }
  return q;
}

static void add_query(analyzer *a, vpq_relation *rel, vpq_plan_query *q) {
  vpq_plan_query **queries = vpq_arena_alloc(a->arena, sizeof *queries * (size_t)(rel->nqueries + 1));
  if (rel->nqueries) memcpy(queries, rel->queries, sizeof *queries * (size_t)rel->nqueries);
  queries[rel->nqueries++] = q;
  rel->queries = queries;
  q->target = rel;
}

/* Whether table `rel` is made by GROUP BY, or selected from one that is (its rows then change
 * only when their values do); `depth` bounds the walk. */
static bool aggregated(const vpq_relation *rel, int depth) {
  for (int i = 0; rel && depth < 64 && i < rel->nqueries; i++) {
    const vpq_plan_query *q = rel->queries[i];
    if (q->kind != VPQ_PLAN_SELECT) continue;
    if (q->select.aggregate || aggregated(q->select.from, depth + 1)) return true;
  }
  return false;
}

static void derive(analyzer *a, const vpq_ast_stmt *stmt) {
  vpq_schema out;
  bool table = stmt->kind == VPQ_STMT_CREATE_TABLE;
  vpq_plan_query *q = bind_query(a, stmt->query, stmt, &out);
  vpq_relation *rel = add_relation(a, stmt, table ? VPQ_REL_TABLE : VPQ_REL_STREAM);
  if (table && q->kind != VPQ_PLAN_SELECT) error(a, stmt->name_span, "FORECAST and SCHEDULE make streams: use CREATE STREAM");
  rel->schema = out;
  if (q->kind == VPQ_PLAN_SELECT && q->select.aggregate && q->select.window.kind != VPQ_WINDOW_NONE) rel->windowed = 1;
  if (q->kind == VPQ_PLAN_SELECT && !q->select.aggregate && q->select.from && q->select.from->kind == VPQ_REL_TABLE && table) {
    /* A table selected from a table keeps the input's keys. */
    for (int i = 0; i < q->select.noutputs; i++) {
      const vpq_bexpr *b = q->select.outputs[i];
      rel->schema.cols[i].is_key = b->kind == VPQ_BEXPR_COLUMN && q->select.from->schema.cols[b->column].is_key;
      rel->schema.cols[i].is_window = b->kind == VPQ_BEXPR_COLUMN && q->select.from->schema.cols[b->column].is_window;
    }
  }
  set_keys(a, rel);
  q->column_map = vpq_arena_alloc(a->arena, sizeof *q->column_map * (size_t)(out.ncols + 1));
  for (int i = 0; i < out.ncols; i++) q->column_map[i] = i;
  add_query(a, rel, q);
  check_options(a, &stmt->options, &rel->sink, false, stmt);
  rel->is_sink = rel->sink.connector != NULL;
  if (table && !rel->windowed && rel->is_sink && strcmp(rel->sink.connector, "file") == 0 && rel->nkeys > 0 &&
      rel->nkeys == rel->schema.ncols)
    error(a, stmt->name_span,
          "table `%s` selects its key columns only: in a file a row that leaves the table (its key, every other "
          "column NULL) would read as the key itself; select a column besides the key (e.g. count(*))",
          rel->name);
  const vpq_plan_option *stale = find_option(&rel->sink, "stale_after");
  if (stale && q->kind != VPQ_PLAN_SCHEDULE) error(a, stale->span, "option `stale_after` belongs to a SCHEDULE");
  else if (stale) q->schedule.stale_after_ms = stale->value.i;
  if (stale && q->kind == VPQ_PLAN_SCHEDULE && q->schedule.fleet && q->schedule.fleet_cols[VPQ_FLEET_SEEN] < 0 &&
      aggregated(q->schedule.fleet, 0))
    error(a, stale->span,
          "`stale_after` needs a `seen` TIMESTAMP column in fleet `%s` (e.g. `last(ts) AS seen`): a table made by "
          "GROUP BY writes a battery's row only when its values change, so a battery reporting the same values "
          "would look stale",
          q->schedule.fleet->name);
  const vpq_plan_option *max_keys = find_option(&rel->sink, "max_keys");
  if (max_keys && (q->kind != VPQ_PLAN_SELECT || !q->select.aggregate))
    error(a, max_keys->span, "option `max_keys` belongs to a query with GROUP BY or aggregates");
}

static bool derives_from(const vpq_relation *rel, const vpq_relation *target, bool *seen);

/* Whether query q reads rows of `target`, directly or through the queries that feed what it
 * reads; seen[] marks the relations (by index) already found not to. */
static bool query_derives_from(const vpq_plan_query *q, const vpq_relation *target, bool *seen) {
  const vpq_relation *inputs[3] = {NULL, NULL, NULL};
  if (q->kind == VPQ_PLAN_SELECT) {
    for (int j = 0; j < q->select.njoins; j++)
      if (q->select.joins[j].right && derives_from(q->select.joins[j].right, target, seen)) return true;
    inputs[0] = q->select.from;
  } else if (q->kind == VPQ_PLAN_FORECAST) {
    inputs[0] = q->forecast.from;
  } else {
    inputs[0] = q->schedule.fleet;
    inputs[1] = q->schedule.forecast;
    inputs[2] = q->schedule.price;
  }
  for (int i = 0; i < 3; i++)
    if (inputs[i] && derives_from(inputs[i], target, seen)) return true;
  return false;
}

/* Whether `rel` is `target` or is computed, through its queries, from rows of `target`. */
static bool derives_from(const vpq_relation *rel, const vpq_relation *target, bool *seen) {
  if (rel == target) return true;
  if (seen[rel->index]) return false;
  seen[rel->index] = true;
  for (int i = 0; i < rel->nqueries; i++)
    if (query_derives_from(rel->queries[i], target, seen)) return true;
  return false;
}

/* Options that only a source reads: a stream written by INSERT INTO that has one was most
 * likely meant to be read, and writing it would overwrite its file. */
static const vpq_plan_option *source_only_option(const vpq_plan_options *options) {
  static const char *const keys[] = {"timestamp", "watermark_delay", "idle_timeout", "dead_letter",
                                     "start",     "bounded",         "group",        "max_row_bytes"};
  for (int i = 0; i < options->count; i++)
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
      if (strcmp(options->items[i].key, keys[k]) == 0) return &options->items[i];
  return NULL;
}

static void insert_into(analyzer *a, const vpq_ast_stmt *stmt) {
  vpq_relation *target = find_relation(a, stmt->name, stmt->name_span);
  vpq_schema out;
  vpq_plan_query *q = bind_query(a, stmt->query, stmt, &out);
  if (!target) return;
  if (target->kind != VPQ_REL_STREAM || !target->declared) {
    error(a, stmt->name_span, "INSERT INTO needs a stream declared with columns; `%s` is %s", target->name,
          target->kind == VPQ_REL_TABLE ? "a table" : "derived by a query");
    return;
  }
  q->column_map = vpq_arena_alloc(a->arena, sizeof *q->column_map * (size_t)(out.ncols + 1));
  for (int i = 0; i < out.ncols; i++) {
    int c = vpq_schema_find(&target->schema, out.cols[i].name);
    q->column_map[i] = c;
    if (c < 0) {
      error(a, q->span, "column `%s` is not in `%s`", out.cols[i].name, target->name);
      continue;
    }
    vpq_type want = target->schema.cols[c].type, got = out.cols[i].type;
    if (q->kind == VPQ_PLAN_SELECT && got != want) {
      bool ok;
      vpq_type u = unify(want, got, &ok);
      if (!ok || u != want) {
        error(a, q->select.outputs[i]->span, "column `%s` of `%s` is %s, the query gives %s", target->schema.cols[c].name,
              target->name, vpq_type_name(want), vpq_type_name(got));
        continue;
      }
      q->select.outputs[i] = cast_to(a, q->select.outputs[i], want);
    }
  }
  bool *seen = vpq_arena_alloc(a->arena, (size_t)a->plan->nrelations + 1);
  if (query_derives_from(q, target, seen)) {
    error(a, stmt->name_span, "INSERT INTO `%s` reads `%s` itself: its rows would feed back into it", target->name,
          target->name);
    return;
  }
  const vpq_plan_option *option = target->is_source ? source_only_option(&target->source.options) : NULL;
  if (option) {
    error(a, option->span,
          "`%s` is written by INSERT INTO, so its connector is a sink (its file is overwritten); `%s` is an "
          "option of sources",
          target->name, option->key);
    return;
  }
  add_query(a, target, q);
  if (target->is_source) {
    /* A declared stream written by INSERT INTO: its connector is where the rows go. */
    target->is_source = false;
    target->is_sink = true;
    target->sink = target->source;
  }
}

/* ===== Formatting bound expressions ===== */

static void put(char *buf, size_t size, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t size, size_t *len, const char *fmt, ...) {
  if (*len + 1 >= size) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *len, size - *len, fmt, ap);
  va_end(ap);
  if (n > 0) *len += (size_t)n;
  if (*len >= size) *len = size - 1;
}

static void format_bexpr(const vpq_bexpr *e, const vpq_schema *layout, char *buf, size_t size, size_t *len) {
  static const char *const funcs[] = {"coalesce", "abs", "round", "least", "greatest"};
  switch (e->kind) {
  case VPQ_BEXPR_CONST:
    if (e->is_null) put(buf, size, len, "NULL");
    else if (e->type == VPQ_TYPE_DOUBLE) put(buf, size, len, "%g", e->value.d);
    else if (e->type == VPQ_TYPE_STRING) put(buf, size, len, "'%s'", e->text ? e->text : "");
    else if (e->type == VPQ_TYPE_BOOLEAN) put(buf, size, len, "%s", e->value.i ? "TRUE" : "FALSE");
    else put(buf, size, len, "%lld", (long long)e->value.i);
    break;
  case VPQ_BEXPR_COLUMN:
    if (e->column >= 0 && e->column < layout->ncols) put(buf, size, len, "%s", layout->cols[e->column].name);
    else put(buf, size, len, "#%d", e->column);
    break;
  case VPQ_BEXPR_UNARY:
    put(buf, size, len, e->op == VPQ_OP_NOT ? "NOT " : "-");
    format_bexpr(e->args[0], layout, buf, size, len);
    break;
  case VPQ_BEXPR_BINARY:
    put(buf, size, len, "(");
    format_bexpr(e->args[0], layout, buf, size, len);
    put(buf, size, len, " %s ", vpq_ast_op_text(e->op));
    format_bexpr(e->args[1], layout, buf, size, len);
    put(buf, size, len, ")");
    break;
  case VPQ_BEXPR_CAST:
    put(buf, size, len, "CAST(");
    format_bexpr(e->args[0], layout, buf, size, len);
    put(buf, size, len, " AS %s)", vpq_type_name(e->type));
    break;
  case VPQ_BEXPR_FUNC:
  case VPQ_BEXPR_CASE:
    put(buf, size, len, "%s(", e->kind == VPQ_BEXPR_CASE ? "case" : funcs[e->func]);
    for (int i = 0; i < e->nargs; i++) {
      if (i) put(buf, size, len, ", ");
      format_bexpr(e->args[i], layout, buf, size, len);
    }
    put(buf, size, len, ")");
    break;
  case VPQ_BEXPR_IS_NULL:
    format_bexpr(e->args[0], layout, buf, size, len);
    put(buf, size, len, e->negated ? " IS NOT NULL" : " IS NULL");
    break;
  }
}

char *vpq_bexpr_format(const vpq_bexpr *expr, const vpq_schema *layout, char *buf, size_t size) {
  size_t len = 0;
  if (!size) return buf;
  buf[0] = '\0';
  format_bexpr(expr, layout, buf, size, &len);
  return buf;
}

/* ===== Files read and written ===== */

typedef struct file_use {
  const char *path;
  const vpq_relation *rel;
  vpq_span span; /* the option naming the file */
  bool writes;
  /* what same_file compares, found once per use (file_identify): comparing every pair from
   * scratch, stat and realpath each time, took 14 s to start a file of 1,000 sinks */
  bool exists, device; /* stat found it; it is no regular file (a device: may be shared) */
  dev_t dev;
  ino_t ino;
  const char *canonical; /* canonical_path's text; NULL when the path is too long */
} file_use;

/* The span of option `key` of `conn`, or the relation's name when it has none. */
static vpq_span option_span(const vpq_plan_connector *conn, const vpq_relation *rel, const char *key) {
  for (int i = 0; i < conn->options.count; i++)
    if (strcmp(conn->options.items[i].key, key) == 0) return conn->options.items[i].span;
  return rel->span;
}

/* The file `path` names, spelled one way: the longest part of it that exists with its symbolic
 * links, `.` and `..` resolved (realpath), a link whose target does not exist yet followed to
 * it, then the rest with `.` and `..` applied as written. Two spellings of one file, whether it
 * exists yet or not, give one text. False when the path is too long to be a file's. */
static bool canonical_path(const char *path, char *out, size_t size) {
  char full[PATH_MAX], head[PATH_MAX], resolved[PATH_MAX];
  if ((size_t)snprintf(full, sizeof full, "%s%s", path[0] == '/' ? "" : "./", path) >= sizeof full) return false;
  size_t end = strlen(full), cut = end; /* full[0, cut) is the part that exists */
  for (int links = 0;;) {
    snprintf(head, sizeof head, "%.*s", (int)(cut ? cut : 1), full); /* cut 0: the root */
    if (realpath(head, resolved)) break;
    struct stat st;
    char target[PATH_MAX];
    ssize_t len;
    if (links < 40 && lstat(head, &st) == 0 && S_ISLNK(st.st_mode) &&
        (len = readlink(head, target, sizeof target - 1)) > 0) {
      /* a link to what does not exist yet: its target, then the rest */
      target[len] = '\0';
      char *slash = strrchr(head, '/');
      char next[PATH_MAX];
      int n = target[0] == '/' ? snprintf(next, sizeof next, "%s%s", target, full + cut)
                               : snprintf(next, sizeof next, "%.*s/%s%s", (int)(slash - head), head, target, full + cut);
      if (n < 0 || (size_t)n >= sizeof next) return false;
      memcpy(full, next, (size_t)n + 1);
      end = cut = (size_t)n;
      links++;
      continue;
    }
    while (cut > 0 && full[cut - 1] != '/') cut--;
    if (cut == 0) {
      snprintf(out, size, "%s", path);
      return true;
    }
    cut--;
  }
  snprintf(out, size, "%s", resolved);
  for (size_t at = cut; at < end;) {
    while (at < end && full[at] == '/') at++;
    size_t len = 0;
    while (at + len < end && full[at + len] != '/') len++;
    const char *name = full + at;
    at += len;
    if (!len || (len == 1 && name[0] == '.')) continue;
    char *last = strrchr(out, '/');
    if (len == 2 && name[0] == '.' && name[1] == '.') {
      if (last) last[last == out] = '\0';
      continue;
    }
    const size_t have = strlen(out);
    if ((size_t)snprintf(out + have, size - have, "%s%.*s", have && out[have - 1] == '/' ? "" : "/", (int)len, name) >=
        size - have)
      return false;
  }
  return true;
}

/* Fills what same_file compares of a use's path. */
static void file_identify(analyzer *a, file_use *use) {
  struct stat st;
  use->exists = stat(use->path, &st) == 0;
  use->device = use->exists && !S_ISREG(st.st_mode);
  use->dev = use->exists ? st.st_dev : 0;
  use->ino = use->exists ? st.st_ino : 0;
  char canonical[PATH_MAX];
  const bool spelled = canonical_path(use->path, canonical, sizeof canonical);
  use->canonical = spelled ? vpq_arena_strdup(a->arena, canonical) : NULL;
}

/* Whether two resolved paths name one regular file (or one that does not exist yet): the same
 * canonical text (canonical_path), or the same inode. Devices (`/dev/null`, `/dev/stdout`) may
 * be shared. */
static bool same_file(const file_use *x, const file_use *y) {
  if (x->device || y->device) return false;
  if (strcmp(x->path, y->path) == 0) return true;
  if (x->exists && y->exists) return x->dev == y->dev && x->ino == y->ino;
  return x->canonical && y->canonical && strcmp(x->canonical, y->canonical) == 0;
}

/* Refuses a file written by a sink or dead-letter output that a source reads or another
 * output writes: writing truncates it under the reader (whose mapping of it would fault) or
 * interleaves two outputs. */
static void check_files(analyzer *a) {
  vpq_plan *plan = a->plan;
  file_use *uses = vpq_arena_alloc(a->arena, sizeof *uses * (size_t)(2 * plan->nrelations + 1));
  int n = 0;
  for (int r = 0; r < plan->nrelations; r++) {
    const vpq_relation *rel = plan->relations[r];
    const vpq_plan_connector *src = &rel->source, *sink = &rel->sink;
    if (rel->is_source && src->path)
      uses[n++] = (file_use){.path = src->path, .rel = rel, .span = option_span(src, rel, "path")};
    if (rel->is_source && src->dead_letter && !src->dead_letter_topic)
      uses[n++] =
          (file_use){.path = src->dead_letter, .rel = rel, .span = option_span(src, rel, "dead_letter"), .writes = true};
    if (rel->is_sink && sink->path)
      uses[n++] = (file_use){.path = sink->path, .rel = rel, .span = option_span(sink, rel, "path"), .writes = true};
  }
  for (int i = 0; i < n; i++) file_identify(a, &uses[i]);
  for (int i = 0; i < n; i++) {
    if (!uses[i].writes) continue;
    for (int j = 0; j < n; j++) {
      if (j == i || (uses[j].writes && j > i) || !same_file(&uses[i], &uses[j])) continue;
      error(a, uses[i].span, "`%s` writes `%s`, which `%s` %s", uses[i].rel->name, uses[i].path, uses[j].rel->name,
            uses[j].writes ? "writes too" : "reads");
      break;
    }
  }
}

/* ===== What the connectors need ===== */

/* The text of option `key` of `conn`, or NULL. */
static const char *option_text(const vpq_plan_connector *conn, const char *key) {
  const vpq_plan_option *o = find_option(conn, key);
  return o ? o->text : NULL;
}

/* The one connector that takes option `key` (`start`: kafka and sim), or NULL when every one
 * does (event time, dead letters, limits) or it is not an option of connectors. */
static const char *option_connector(const char *key) {
  static const char *const kafka[] = {"topic", "group", "start", "bounded", "partitions", "processing_guarantee"};
  static const char *const sim[] = {"stream", "devices", "sites", "seed", "speed", "duration", "history", "pv"};
  if (strncmp(key, "kafka.", 6) == 0) return "kafka";
  if (strcmp(key, "path") == 0) return "file";
  for (size_t i = 0; i < sizeof kafka / sizeof *kafka; i++)
    if (strcmp(key, kafka[i]) == 0) return "kafka";
  for (size_t i = 0; i < sizeof sim / sizeof *sim; i++)
    if (strcmp(key, sim[i]) == 0) return "sim";
  return NULL;
}

/* Refuses what a connector would refuse when the run opens it (vpq_kafka.c, vpq_sim_connector.c),
 * so that `vpq check` finds it, at its place in the file. A relation written by INSERT INTO has
 * its connector as a sink, so this looks at every relation once the file is read. */
static void check_connectors(analyzer *a) {
  for (int r = 0; r < a->plan->nrelations; r++) {
    const vpq_relation *rel = a->plan->relations[r];
    const bool source = rel->is_source;
    const vpq_plan_connector *conn = source ? &rel->source : rel->is_sink ? &rel->sink : NULL;
    if (!conn || !conn->connector) continue;
    if (strcmp(conn->connector, "file") && strcmp(conn->connector, "kafka") && strcmp(conn->connector, "sim"))
      continue; /* refused already */
    for (int i = 0; i < conn->options.count; i++) {
      const vpq_plan_option *o = &conn->options.items[i];
      const char *owner = option_connector(o->key);
      if (owner && strcmp(owner, conn->connector) != 0 &&
          !(strcmp(o->key, "start") == 0 && strcmp(conn->connector, "sim") == 0))
        error(a, o->span, "option `%s` is one of connector `%s`, not of `%s`", o->key, owner, conn->connector);
    }
    if (strcmp(conn->connector, "kafka") == 0) {
      if (!option_text(conn, "topic"))
        error(a, option_span(conn, rel, "connector"), "connector `kafka` needs `topic = '...'`");
      if (strcmp(conn->format, "json") != 0)
        error(a, option_span(conn, rel, "format"), "connector `kafka` reads and writes format 'json' only");
    } else if (strcmp(conn->connector, "sim") == 0) {
      const char *stream = option_text(conn, "stream");
      const char *start = option_text(conn, "start");
      int64_t ms;
      if (source && (!stream || (strcmp(stream, "telemetry") != 0 && strcmp(stream, "meters") != 0)))
        error(a, option_span(conn, rel, "stream"), "a sim source needs `stream = 'telemetry'` or `stream = 'meters'`");
      if (source && start && !vpq_timestamp_parse(start, strlen(start), &ms))
        error(a, option_span(conn, rel, "start"), "`start` of a sim connector is an ISO-8601 time, not '%s'", start);
      if (source) continue;
      if (!stream || strcmp(stream, "dispatch") != 0)
        error(a, option_span(conn, rel, "stream"), "a sim sink needs `stream = 'dispatch'`");
      const int device = vpq_schema_find(&rel->schema, "device_id");
      const int setpoint = vpq_schema_find(&rel->schema, "setpoint_kw");
      if (device < 0 || rel->schema.cols[device].type != VPQ_TYPE_STRING || setpoint < 0 ||
          rel->schema.cols[setpoint].type != VPQ_TYPE_DOUBLE)
        error(a, rel->span, "a sim dispatch sink needs columns device_id STRING and setpoint_kw DOUBLE");
    }
  }
}

/* ===== The file ===== */

vpq_plan *vpq_analyze(vpq_arena *arena, vpq_diag *diag, const vpq_ast_file *file, const char *file_name,
                      const char *base_dir) {
  vpq_plan *plan = vpq_arena_alloc(arena, sizeof *plan);
  plan->file = file_name;
  plan->base_dir = base_dir;
  analyzer a = {.arena = arena, .diag = diag, .plan = plan, .file = file};
  int errors_before = diag->errors;
  for (int i = 0; i < file->count; i++) {
    const vpq_ast_stmt *stmt = file->stmts[i];
    a.stmt = i;
    if (stmt->kind == VPQ_STMT_INSERT_INTO) insert_into(&a, stmt);
    else if (stmt->query) derive(&a, stmt);
    else declare_source(&a, stmt);
  }
  check_files(&a);
  check_connectors(&a);
  return diag->errors > errors_before ? NULL : plan;
}
