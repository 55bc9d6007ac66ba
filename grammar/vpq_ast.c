/* vpq_ast.c — the syntax tree (vpq_ast.h): the constructors grammar actions call, names of
 * operators, types and node kinds, and expression formatting. Every node lives in the
 * query's arena. The grammar and the parse driver are in vpq_parse.y.
 */
#include "vpq_ast.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ===== Constructors ===== */

/* The smallest span covering both `a` and `b`. */
vpq_span vpq_span_join(vpq_span a, vpq_span b) {
  uint32_t start = a.off < b.off ? a.off : b.off;
  uint32_t end_a = a.off + a.len, end_b = b.off + b.len;
  uint32_t end = end_a > end_b ? end_a : end_b;
  return (vpq_span){start, end - start};
}

/* A zeroed expression node of `kind` over `span`, in the arena. */
vpq_ast_expr *vpq_ast_expr_new(vpq_arena *arena, vpq_ast_expr_kind kind, vpq_span span) {
  vpq_ast_expr *expr = vpq_arena_alloc(arena, sizeof *expr);
  expr->kind = kind;
  expr->span = span;
  return expr;
}

/* Appends `arg` to a CALL, CASE or LIST node (and UNARY/BINARY operands). */
void vpq_ast_expr_add_arg(vpq_arena *arena, vpq_ast_expr *expr, vpq_ast_expr *arg) {
  expr->args = vpq_arena_grow(arena, expr->args, sizeof *expr->args, &expr->args_cap, expr->nargs + 1);
  expr->args[expr->nargs++] = arg;
  if (arg->depth + 1 > expr->depth) expr->depth = arg->depth + 1;
}

void vpq_ast_expr_set_case_part(vpq_ast_expr *expr, vpq_ast_expr **slot, vpq_ast_expr *part) {
  *slot = part;
  if (part && part->depth + 1 > expr->depth) expr->depth = part->depth + 1;
}

/* `op operand`; the span runs from the operator to the end of the operand. */
vpq_ast_expr *vpq_ast_unary(vpq_arena *arena, vpq_ast_op op, vpq_ast_expr *operand, vpq_span op_span) {
  vpq_ast_expr *expr = vpq_ast_expr_new(arena, VPQ_AST_UNARY, vpq_span_join(op_span, operand->span));
  expr->op = op;
  vpq_ast_expr_add_arg(arena, expr, operand);
  return expr;
}

/* `left op right`; the span covers both operands. A chain of AND (or of OR) is one node with
 * an operand each, so that a long generated list of conditions stays one level deep. */
vpq_ast_expr *vpq_ast_binary(vpq_arena *arena, vpq_ast_op op, vpq_ast_expr *left, vpq_ast_expr *right) {
  if ((op == VPQ_OP_AND || op == VPQ_OP_OR) && left->kind == VPQ_AST_BINARY && left->op == op) {
    vpq_ast_expr_add_arg(arena, left, right);
    left->span = vpq_span_join(left->span, right->span);
    return left;
  }
  vpq_ast_expr *expr = vpq_ast_expr_new(arena, VPQ_AST_BINARY, vpq_span_join(left->span, right->span));
  expr->op = op;
  vpq_ast_expr_add_arg(arena, expr, left);
  vpq_ast_expr_add_arg(arena, expr, right);
  return expr;
}

/* A zeroed statement of `kind` whose span starts as `span`. */
vpq_ast_stmt *vpq_ast_stmt_new(vpq_arena *arena, vpq_ast_stmt_kind kind, vpq_span span) {
  vpq_ast_stmt *stmt = vpq_arena_alloc(arena, sizeof *stmt);
  stmt->kind = kind;
  stmt->span = span;
  return stmt;
}

/* Appends a column definition to a CREATE statement. */
void vpq_ast_stmt_add_col(vpq_arena *arena, vpq_ast_stmt *stmt, vpq_ast_coldef col) {
  stmt->cols = vpq_arena_grow(arena, stmt->cols, sizeof *stmt->cols, &stmt->cols_cap, stmt->ncols + 1);
  stmt->cols[stmt->ncols++] = col;
}

/* Appends one `key = value` option. */
void vpq_ast_options_add(vpq_arena *arena, vpq_ast_options *options, vpq_ast_option option) {
  options->items = vpq_arena_grow(arena, options->items, sizeof *options->items, &options->cap, options->count + 1);
  options->items[options->count++] = option;
}

/* Appends an expression to a list (GROUP BY keys, BY keys, SUBJECT TO constraints). */
void vpq_ast_exprs_add(vpq_arena *arena, vpq_ast_exprs *list, vpq_ast_expr *expr) {
  list->items = vpq_arena_grow(arena, list->items, sizeof *list->items, &list->cap, list->count + 1);
  list->items[list->count++] = expr;
}

/* A zeroed query of `kind` whose span starts as `span`. */
vpq_ast_query *vpq_ast_query_new(vpq_arena *arena, vpq_ast_query_kind kind, vpq_span span) {
  vpq_ast_query *query = vpq_arena_alloc(arena, sizeof *query);
  query->kind = kind;
  query->span = span;
  return query;
}

/* Appends an item to a SELECT list. */
void vpq_ast_select_add_item(vpq_arena *arena, vpq_ast_select *select, vpq_ast_select_item item) {
  select->items = vpq_arena_grow(arena, select->items, sizeof *select->items, &select->items_cap, select->nitems + 1);
  select->items[select->nitems++] = item;
}

/* Appends a JOIN clause to a SELECT. */
void vpq_ast_select_add_join(vpq_arena *arena, vpq_ast_select *select, vpq_ast_join join) {
  select->joins = vpq_arena_grow(arena, select->joins, sizeof *select->joins, &select->joins_cap, select->njoins + 1);
  select->joins[select->njoins++] = join;
}

/* Appends a parsed statement to the file. */
void vpq_ast_file_add(vpq_arena *arena, vpq_ast_file *file, vpq_ast_stmt *stmt) {
  file->stmts = vpq_arena_grow(arena, file->stmts, sizeof *file->stmts, &file->cap, file->count + 1);
  file->stmts[file->count++] = stmt;
}

/* ===== Names and formatting ===== */

/* The operator as written in a query: "+", "<=", "AND", ... */
const char *vpq_ast_op_text(vpq_ast_op op) {
  switch (op) { /* ORDER AST_OP */
  case VPQ_OP_NEG: return "-";
  case VPQ_OP_NOT: return "NOT";
  case VPQ_OP_ADD: return "+";
  case VPQ_OP_SUB: return "-";
  case VPQ_OP_MUL: return "*";
  case VPQ_OP_DIV: return "/";
  case VPQ_OP_MOD: return "%";
  case VPQ_OP_EQ: return "=";
  case VPQ_OP_NE: return "<>";
  case VPQ_OP_LT: return "<";
  case VPQ_OP_LE: return "<=";
  case VPQ_OP_GT: return ">";
  case VPQ_OP_GE: return ">=";
  case VPQ_OP_AND: return "AND";
  case VPQ_OP_OR: return "OR";
  }
  return "?";
}



/* ===== Formatting ===== */

/* A bounded writer: output past `size` is dropped, the text stays NUL-terminated. */
typedef struct writer {
  char *buf;
  size_t size;
  size_t len;
} writer;

static void put(writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(writer *w, const char *fmt, ...) {
  if (w->len + 1 >= w->size) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(w->buf + w->len, w->size - w->len, fmt, ap);
  va_end(ap);
  if (n > 0) w->len += (size_t)n;
  if (w->len >= w->size) w->len = w->size - 1;
}

/* How tightly a node binds, as in the grammar: OR 1 < AND 2 < NOT 3 < comparison and IS 4
 * < + - 5 < * / % 6 < unary minus 7 < everything else 8. */
static int precedence(const vpq_ast_expr *e) {
  switch (e->kind) {
  case VPQ_AST_UNARY: return e->op == VPQ_OP_NOT ? 3 : 7;
  case VPQ_AST_IS_NULL: return 4;
  case VPQ_AST_BINARY:
    switch (e->op) {
    case VPQ_OP_OR: return 1;
    case VPQ_OP_AND: return 2;
    case VPQ_OP_ADD:
    case VPQ_OP_SUB: return 5;
    case VPQ_OP_MUL:
    case VPQ_OP_DIV:
    case VPQ_OP_MOD: return 6;
    default: return 4;
    }
  default: return 8;
  }
}

static void format_expr(writer *w, const vpq_ast_expr *e);

/* Writes `e`, in parentheses when it binds less tightly than `min`. */
static void format_operand(writer *w, const vpq_ast_expr *e, int min) {
  bool paren = precedence(e) < min;
  if (paren) put(w, "(");
  format_expr(w, e);
  if (paren) put(w, ")");
}

/* The shortest text that reads back as the same double, always with a `.` or an exponent. */
static void format_double(writer *w, double value) {
  char text[32];
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(text, sizeof text, "%.*g", digits, value);
    if (strtod(text, NULL) == value) break;
  }
  put(w, "%s%s", text, strpbrk(text, ".eEn") ? "" : ".0");
}

/* An interval in the largest unit that divides it: `5 SECONDS`, `1 DAY`, `1500 MILLISECONDS`. */
static void format_interval(writer *w, int64_t ms) {
  static const struct {
    int64_t ms;
    const char *name;
  } units[] = {{86400000, "DAY"}, {3600000, "HOUR"}, {60000, "MINUTE"}, {1000, "SECOND"}, {1, "MILLISECOND"}};
  for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
    if (ms % units[i].ms == 0 && (ms != 0 || units[i].ms == 1)) {
      int64_t n = ms / units[i].ms;
      put(w, "%" PRId64 " %s%s", n, units[i].name, n == 1 ? "" : "S");
      return;
    }
  }
}

static void format_list(writer *w, const vpq_ast_expr *e) {
  for (int i = 0; i < e->nargs; i++) {
    if (i) put(w, ", ");
    format_expr(w, e->args[i]);
  }
}

static void format_expr(writer *w, const vpq_ast_expr *e) {
  switch (e->kind) {
  case VPQ_AST_INT: put(w, "%" PRId64, e->ival); break;
  case VPQ_AST_DOUBLE: format_double(w, e->dval); break;
  case VPQ_AST_STRING:
    put(w, "'");
    for (const char *p = e->sval; *p; p++) {
      if (*p == '\'') {
        put(w, "''");
      } else {
        put(w, "%c", *p);
      }
    }
    put(w, "'");
    break;
  case VPQ_AST_BOOL: put(w, "%s", e->ival ? "TRUE" : "FALSE"); break;
  case VPQ_AST_NULL: put(w, "NULL"); break;
  case VPQ_AST_INTERVAL: format_interval(w, e->ival); break;
  case VPQ_AST_COLUMN:
  case VPQ_AST_STAR:
    if (e->qualifier) put(w, "%s.", e->qualifier);
    put(w, "%s", e->kind == VPQ_AST_STAR ? "*" : e->name);
    break;
  case VPQ_AST_UNARY:
    put(w, "%s", e->op == VPQ_OP_NOT ? "NOT " : "-");
    format_operand(w, e->args[0], e->op == VPQ_OP_NOT ? 3 : 8);
    break;
  case VPQ_AST_BINARY: {
    int p = precedence(e);
    format_operand(w, e->args[0], p);
    for (int i = 1; i < e->nargs; i++) {
      put(w, " %s ", vpq_ast_op_text(e->op));
      format_operand(w, e->args[i], p + 1);
    }
    break;
  }
  case VPQ_AST_CALL:
    put(w, "%s(%s", e->name, e->distinct ? "DISTINCT " : "");
    format_list(w, e);
    put(w, ")");
    break;
  case VPQ_AST_LIST:
    put(w, "(");
    format_list(w, e);
    put(w, ")");
    break;
  case VPQ_AST_CASE:
    put(w, "CASE");
    if (e->case_operand) {
      put(w, " ");
      format_expr(w, e->case_operand);
    }
    for (int i = 0; i + 1 < e->nargs; i += 2) {
      put(w, " WHEN ");
      format_expr(w, e->args[i]);
      put(w, " THEN ");
      format_expr(w, e->args[i + 1]);
    }
    if (e->case_else) {
      put(w, " ELSE ");
      format_expr(w, e->case_else);
    }
    put(w, " END");
    break;
  case VPQ_AST_IS_NULL:
    format_operand(w, e->args[0], 5);
    put(w, "%s", e->negated ? " IS NOT NULL" : " IS NULL");
    break;
  }
}

/* Writes `expr` as canonical text into `buf` (`size` bytes, truncated if need be, always
 * NUL-terminated when size > 0): keywords upper-case, operators spaced, parentheses only where
 * precedence needs them, intervals in their largest exact unit. Returns `buf`. */
char *vpq_ast_expr_format(const vpq_ast_expr *expr, char *buf, size_t size) {
  if (size == 0) return buf;
  writer w = {buf, size, 0};
  buf[0] = '\0';
  format_expr(&w, expr);
  return buf;
}
