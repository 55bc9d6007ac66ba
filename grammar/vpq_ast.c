/* vpq_ast.c — the syntax tree: constructors, the builders grammar actions call, the parse
 * driver (tokens from the re2c lexer fed to the lemon parser), and expression formatting.
 * Everything is allocated in the query's arena.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpq_ast.h"
#include "vpq_ast_build.h"
#include "vpq_lex.h"
#include "vpq_parse.h"

/* ===== Constructors ===== */

vpq_span vpq_span_join(vpq_span a, vpq_span b) {
  uint32_t start = a.off < b.off ? a.off : b.off;
  uint32_t end_a = a.off + a.len, end_b = b.off + b.len;
  uint32_t end = end_a > end_b ? end_a : end_b;
  return (vpq_span){start, end - start};
}

vpq_ast_expr *vpq_ast_expr_new(vpq_arena *arena, vpq_ast_expr_kind kind, vpq_span span) {
  vpq_ast_expr *expr = vpq_arena_alloc(arena, sizeof *expr);
  expr->kind = kind;
  expr->span = span;
  return expr;
}

void vpq_ast_expr_add_arg(vpq_arena *arena, vpq_ast_expr *expr, vpq_ast_expr *arg) {
  expr->args = vpq_arena_grow(arena, expr->args, sizeof *expr->args, &expr->args_cap, expr->nargs + 1);
  expr->args[expr->nargs++] = arg;
}

vpq_ast_expr *vpq_ast_unary(vpq_arena *arena, vpq_ast_op op, vpq_ast_expr *operand, vpq_span op_span) {
  vpq_ast_expr *expr = vpq_ast_expr_new(arena, VPQ_AST_UNARY, vpq_span_join(op_span, operand->span));
  expr->op = op;
  vpq_ast_expr_add_arg(arena, expr, operand);
  return expr;
}

vpq_ast_expr *vpq_ast_binary(vpq_arena *arena, vpq_ast_op op, vpq_ast_expr *left, vpq_ast_expr *right) {
  vpq_ast_expr *expr = vpq_ast_expr_new(arena, VPQ_AST_BINARY, vpq_span_join(left->span, right->span));
  expr->op = op;
  vpq_ast_expr_add_arg(arena, expr, left);
  vpq_ast_expr_add_arg(arena, expr, right);
  return expr;
}

vpq_ast_stmt *vpq_ast_stmt_new(vpq_arena *arena, vpq_ast_stmt_kind kind, vpq_span span) {
  vpq_ast_stmt *stmt = vpq_arena_alloc(arena, sizeof *stmt);
  stmt->kind = kind;
  stmt->span = span;
  return stmt;
}

void vpq_ast_stmt_add_col(vpq_arena *arena, vpq_ast_stmt *stmt, vpq_ast_coldef col) {
  stmt->cols = vpq_arena_grow(arena, stmt->cols, sizeof *stmt->cols, &stmt->cols_cap, stmt->ncols + 1);
  stmt->cols[stmt->ncols++] = col;
}

void vpq_ast_options_add(vpq_arena *arena, vpq_ast_options *options, vpq_ast_option option) {
  options->items = vpq_arena_grow(arena, options->items, sizeof *options->items, &options->cap, options->count + 1);
  options->items[options->count++] = option;
}

void vpq_ast_exprs_add(vpq_arena *arena, vpq_ast_exprs *list, vpq_ast_expr *expr) {
  list->items = vpq_arena_grow(arena, list->items, sizeof *list->items, &list->cap, list->count + 1);
  list->items[list->count++] = expr;
}

vpq_ast_query *vpq_ast_query_new(vpq_arena *arena, vpq_ast_query_kind kind, vpq_span span) {
  vpq_ast_query *query = vpq_arena_alloc(arena, sizeof *query);
  query->kind = kind;
  query->span = span;
  return query;
}

void vpq_ast_select_add_item(vpq_arena *arena, vpq_ast_select *select, vpq_ast_select_item item) {
  select->items = vpq_arena_grow(arena, select->items, sizeof *select->items, &select->items_cap, select->nitems + 1);
  select->items[select->nitems++] = item;
}

void vpq_ast_select_add_join(vpq_arena *arena, vpq_ast_select *select, vpq_ast_join join) {
  select->joins = vpq_arena_grow(arena, select->joins, sizeof *select->joins, &select->joins_cap, select->njoins + 1);
  select->joins[select->njoins++] = join;
}

void vpq_ast_file_add(vpq_arena *arena, vpq_ast_file *file, vpq_ast_stmt *stmt) {
  file->stmts = vpq_arena_grow(arena, file->stmts, sizeof *file->stmts, &file->cap, file->count + 1);
  file->stmts[file->count++] = stmt;
}

/* ===== Builders for grammar actions ===== */

static const char *token_text(vpq_parse_ctx *ctx, vpq_token token) {
  return vpq_arena_strndup(ctx->arena, ctx->diag->text + token.span.off, token.span.len);
}

static char *lower(char *text) {
  for (char *p = text; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  return text;
}

const char *vpq_ast_name_text(vpq_parse_ctx *ctx, vpq_token name) {
  const char *text = ctx->diag->text + name.span.off;
  if (name.type == TK_QUOTED) return vpq_arena_strndup(ctx->arena, text + 1, name.span.len - 2);
  return vpq_arena_strndup(ctx->arena, text, name.span.len);
}

void vpq_ast_syntax_error(vpq_parse_ctx *ctx, int major, vpq_token token) {
  const vpq_diag *diag = ctx->diag;
  if (major == 0 || (major == TK_SEMI && token.span.len == 0)) {
    /* After an unterminated string or comment the end of input is no news. */
    if (diag->count && strncmp(diag->entries[diag->count - 1].message, "unterminated", 12) == 0) return;
    uint32_t end = (uint32_t)diag->text_len;
    while (end > 0 && (diag->text[end - 1] == '\n' || diag->text[end - 1] == ' ' || diag->text[end - 1] == '\t' ||
                       diag->text[end - 1] == '\r'))
      end--;
    vpq_diag_error(ctx->diag, (vpq_span){end, 0}, "syntax error: unexpected end of input");
  } else {
    vpq_diag_error(ctx->diag, token.span, "syntax error near `%.*s`", (int)token.span.len,
                   ctx->diag->text + token.span.off);
  }
}

vpq_ast_stmt *vpq_ast_stmt_declare(vpq_parse_ctx *ctx, vpq_ast_stmt *cols, vpq_ast_stmt_kind kind,
                                   vpq_token name, vpq_ast_options options, vpq_token first, vpq_token last) {
  cols->kind = kind;
  cols->span = vpq_span_join(first.span, last.span);
  cols->name = vpq_ast_name_text(ctx, name);
  cols->name_span = name.span;
  cols->options = options;
  return cols;
}

vpq_ast_stmt *vpq_ast_stmt_derive(vpq_parse_ctx *ctx, vpq_ast_stmt_kind kind, vpq_token name,
                                  vpq_ast_options options, vpq_ast_query *query, vpq_token first) {
  vpq_ast_stmt *stmt = vpq_ast_stmt_new(ctx->arena, kind, vpq_span_join(first.span, query->span));
  stmt->name = vpq_ast_name_text(ctx, name);
  stmt->name_span = name.span;
  stmt->options = options;
  stmt->query = query;
  return stmt;
}

vpq_ast_coldef vpq_ast_coltype(vpq_ast_type type, vpq_token token) {
  return (vpq_ast_coldef){.type = type, .type_span = token.span};
}

vpq_ast_coldef vpq_ast_coldef_make(vpq_parse_ctx *ctx, vpq_token name, vpq_ast_coldef type, int key) {
  type.name = vpq_ast_name_text(ctx, name);
  type.span = name.span;
  type.is_key = key == 1;
  type.is_primary_key = key == 2;
  return type;
}

vpq_ast_option vpq_ast_option_make(vpq_parse_ctx *ctx, vpq_token key, bool quoted, vpq_ast_expr *value) {
  const char *text;
  if (quoted) {
    text = vpq_arena_strndup(ctx->arena, ctx->diag->text + key.span.off + 1, key.span.len - 2);
  } else {
    text = lower((char *)vpq_ast_name_text(ctx, key));
  }
  return (vpq_ast_option){text, key.span, value};
}

vpq_ast_expr *vpq_ast_list(vpq_parse_ctx *ctx, vpq_token open, vpq_ast_expr *first, const vpq_ast_exprs *rest,
                           vpq_token close) {
  vpq_ast_expr *list = vpq_ast_expr_new(ctx->arena, VPQ_AST_LIST, vpq_span_join(open.span, close.span));
  vpq_ast_expr_add_arg(ctx->arena, list, first);
  for (int i = 0; i < rest->count; i++) vpq_ast_expr_add_arg(ctx->arena, list, rest->items[i]);
  return list;
}

void vpq_ast_select_from(vpq_parse_ctx *ctx, vpq_ast_query *query, vpq_token select, vpq_ast_relation from) {
  (void)ctx;
  query->u.select.from = from;
  query->span = vpq_span_join(select.span, from.span);
}

void vpq_ast_select_finish(vpq_parse_ctx *ctx, vpq_ast_query *query, vpq_ast_window window, vpq_ast_expr *where,
                           vpq_ast_group group, vpq_ast_expr *having, vpq_ast_emit_clause emit) {
  (void)ctx;
  vpq_ast_select *s = &query->u.select;
  s->window = window;
  s->where = where;
  s->group_by = group.exprs;
  s->rollup = group.rollup;
  s->group_span = group.span;
  s->having = having;
  s->emit = emit.emit;
  s->emit_span = emit.span;
  vpq_span end = query->span;
  if (s->njoins) end = s->joins[s->njoins - 1].on->span;
  if (window.kind != VPQ_WINDOW_NONE) end = window.span;
  if (where) end = where->span;
  if (group.exprs.count) end = group.exprs.items[group.exprs.count - 1]->span;
  if (having) end = having->span;
  if (emit.emit != VPQ_EMIT_DEFAULT) end = emit.span;
  query->span = vpq_span_join(query->span, end);
}

vpq_ast_select_item vpq_ast_item_alias(vpq_parse_ctx *ctx, vpq_ast_expr *expr, vpq_token alias) {
  return (vpq_ast_select_item){expr, vpq_ast_name_text(ctx, alias), alias.span};
}

vpq_ast_expr *vpq_ast_star(vpq_parse_ctx *ctx, vpq_token qualifier, vpq_token star) {
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_STAR, vpq_span_join(qualifier.span, star.span));
  expr->qualifier = vpq_ast_name_text(ctx, qualifier);
  return expr;
}

vpq_ast_relation vpq_ast_relation_make(vpq_parse_ctx *ctx, vpq_token name, const vpq_token *alias) {
  vpq_ast_relation rel = {vpq_ast_name_text(ctx, name), name.span, NULL, {0, 0}};
  if (alias) {
    rel.alias = vpq_ast_name_text(ctx, *alias);
    rel.alias_span = alias->span;
  }
  return rel;
}

vpq_ast_join vpq_ast_join_make(vpq_ast_join_kind kind, vpq_token keyword, vpq_ast_relation rel,
                               vpq_ast_expr *within, vpq_ast_expr *on) {
  return (vpq_ast_join){kind, keyword.span, rel, within, on};
}

vpq_ast_window vpq_ast_window_make(vpq_ast_window_kind kind, vpq_token first, vpq_token last, vpq_ast_expr *size,
                                   vpq_ast_expr *advance, vpq_ast_expr *gap, vpq_ast_expr *grace) {
  return (vpq_ast_window){kind, vpq_span_join(first.span, last.span), size, advance, gap, grace};
}

vpq_ast_query *vpq_ast_forecast_make(vpq_parse_ctx *ctx, vpq_token keyword, vpq_ast_expr *value,
                                     vpq_ast_relation from, vpq_ast_exprs by, vpq_token model,
                                     vpq_ast_options options, vpq_ast_expr *horizon, vpq_ast_expr *every,
                                     vpq_ast_expr *step) {
  vpq_span end = step ? step->span : every->span;
  vpq_ast_query *query = vpq_ast_query_new(ctx->arena, VPQ_QUERY_FORECAST, vpq_span_join(keyword.span, end));
  vpq_ast_forecast *f = &query->u.forecast;
  f->value = value;
  f->from = from;
  f->by = by;
  f->model = lower((char *)vpq_ast_name_text(ctx, model));
  f->model_span = model.span;
  f->model_options = options;
  f->horizon = horizon;
  f->every = every;
  f->step = step;
  return query;
}

vpq_ast_query *vpq_ast_schedule_make(vpq_parse_ctx *ctx, vpq_token keyword, vpq_span last,
                                     vpq_ast_relation fleet, vpq_ast_relation forecast,
                                     vpq_ast_objective objective, vpq_ast_expr *cap,
                                     const vpq_ast_relation *price) {
  vpq_ast_query *query = vpq_ast_query_new(ctx->arena, VPQ_QUERY_SCHEDULE, vpq_span_join(keyword.span, last));
  vpq_ast_schedule *s = &query->u.schedule;
  s->fleet = fleet;
  s->forecast = forecast;
  s->objective = objective;
  s->objective_span = last;
  s->cap = cap;
  if (price) s->price = *price;
  return query;
}

void vpq_ast_schedule_finish(vpq_ast_query *query, vpq_ast_exprs constraints, vpq_ast_expr *horizon,
                             vpq_ast_expr *step, int emit_plan) {
  vpq_ast_schedule *s = &query->u.schedule;
  s->constraints = constraints;
  s->horizon = horizon;
  s->step = step;
  s->emit_plan = emit_plan != 0;
  query->span = vpq_span_join(query->span, step->span);
}

vpq_ast_expr *vpq_ast_paren(vpq_ast_expr *expr, vpq_token open, vpq_token close) {
  expr->span = vpq_span_join(expr->span, vpq_span_join(open.span, close.span));
  return expr;
}

vpq_ast_expr *vpq_ast_number(vpq_parse_ctx *ctx, vpq_token token, bool is_float) {
  const char *text = token_text(ctx, token);
  errno = 0;
  if (!is_float) {
    char *end;
    long long value = strtoll(text, &end, 10);
    if (errno == 0) {
      vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_INT, token.span);
      expr->ival = value;
      return expr;
    }
    vpq_diag_error(ctx->diag, token.span, "integer literal out of range");
  }
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, is_float ? VPQ_AST_DOUBLE : VPQ_AST_INT, token.span);
  expr->dval = strtod(text, NULL);
  return expr;
}

vpq_ast_expr *vpq_ast_interval(vpq_parse_ctx *ctx, vpq_token number, int64_t unit_ms, vpq_span unit) {
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_INTERVAL, vpq_span_join(number.span, unit));
  double value = strtod(token_text(ctx, number), NULL);
  double ms = value * (double)unit_ms;
  if (ms > 9.2e18 || ms != (double)(int64_t)ms) {
    vpq_diag_error(ctx->diag, expr->span, "interval must be a whole number of milliseconds");
    return expr;
  }
  expr->ival = (int64_t)ms;
  return expr;
}

vpq_ast_expr *vpq_ast_string(vpq_parse_ctx *ctx, vpq_token token) {
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_STRING, token.span);
  const char *text = ctx->diag->text + token.span.off + 1;
  uint32_t len = token.span.len - 2;
  char *out = vpq_arena_alloc(ctx->arena, len + 1);
  uint32_t n = 0;
  for (uint32_t i = 0; i < len; i++) {
    out[n++] = text[i];
    if (text[i] == '\'') i++; /* '' stands for one quote */
  }
  out[n] = '\0';
  expr->sval = out;
  return expr;
}

vpq_ast_expr *vpq_ast_column(vpq_parse_ctx *ctx, const vpq_token *qualifier, vpq_token name) {
  vpq_span span = qualifier ? vpq_span_join(qualifier->span, name.span) : name.span;
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_COLUMN, span);
  expr->name = vpq_ast_name_text(ctx, name);
  expr->name_span = name.span;
  if (qualifier) expr->qualifier = vpq_ast_name_text(ctx, *qualifier);
  return expr;
}

vpq_ast_expr *vpq_ast_call(vpq_parse_ctx *ctx, vpq_token name, bool distinct, const vpq_ast_exprs *args,
                           vpq_token close) {
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_CALL, vpq_span_join(name.span, close.span));
  expr->name = lower((char *)vpq_ast_name_text(ctx, name));
  expr->name_span = name.span;
  expr->distinct = distinct;
  if (args)
    for (int i = 0; i < args->count; i++) vpq_ast_expr_add_arg(ctx->arena, expr, args->items[i]);
  return expr;
}

vpq_ast_expr *vpq_ast_is_null(vpq_parse_ctx *ctx, vpq_ast_expr *operand, bool negated, vpq_token last) {
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_IS_NULL, vpq_span_join(operand->span, last.span));
  expr->negated = negated;
  vpq_ast_expr_add_arg(ctx->arena, expr, operand);
  return expr;
}

vpq_ast_expr *vpq_ast_case_finish(vpq_ast_expr *cases, vpq_ast_expr *operand, vpq_ast_expr *otherwise,
                                  vpq_token first, vpq_token last) {
  cases->span = vpq_span_join(first.span, last.span);
  cases->case_operand = operand;
  cases->case_else = otherwise;
  return cases;
}

/* ===== The parse driver ===== */

static void *parser_malloc(size_t size) {
  void *p = malloc(size);
  if (!p) abort();
  return p;
}

vpq_ast_file *vpq_parse(vpq_arena *arena, vpq_diag *diag) {
  vpq_ast_file *file = vpq_arena_alloc(arena, sizeof *file);
  vpq_parse_ctx ctx = {arena, diag, file, {0, 0}};
  void *parser = vpqParserAlloc(parser_malloc, &ctx);
  uint32_t pos = 0;
  int last = TK_SEMI;
  vpq_token token;
  do {
    token = vpq_lex_next(diag, &pos);
    if (token.type == 0 && last != TK_SEMI) {
      /* The last statement may omit its `;`. */
      vpqParser(parser, TK_SEMI, (vpq_token){TK_SEMI, {token.span.off, 0}});
    }
    vpqParser(parser, token.type, token);
    last = token.type;
  } while (token.type != 0);
  vpqParserFree(parser, free);
  return file;
}

/* ===== Names and formatting ===== */

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

const char *vpq_ast_type_name(vpq_ast_type type) {
  switch (type) { /* ORDER AST_TYPE */
  case VPQ_AST_TYPE_BOOLEAN: return "BOOLEAN";
  case VPQ_AST_TYPE_BIGINT: return "BIGINT";
  case VPQ_AST_TYPE_DOUBLE: return "DOUBLE";
  case VPQ_AST_TYPE_STRING: return "STRING";
  case VPQ_AST_TYPE_TIMESTAMP: return "TIMESTAMP";
  }
  return "?";
}

const char *vpq_ast_expr_kind_name(vpq_ast_expr_kind kind) {
  static const char *const names[] = {/* ORDER AST_EXPR */
                                      "integer", "double", "string", "boolean", "NULL", "interval", "column",
                                      "*", "unary operator", "operator", "function call", "CASE", "IS NULL",
                                      "list"};
  return (unsigned)kind < sizeof names / sizeof *names ? names[kind] : "?";
}

/* Appends to buf at *len (bounded by size), always NUL-terminated. */
static void put(char *buf, size_t size, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t size, size_t *len, const char *fmt, ...) {
  if (*len >= size) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *len, size - *len, fmt, ap);
  va_end(ap);
  if (n > 0) *len += (size_t)n;
  if (*len >= size) *len = size - 1;
}

static void format_expr(const vpq_ast_expr *e, char *buf, size_t size, size_t *len) {
  switch (e->kind) {
  case VPQ_AST_INT: put(buf, size, len, "%lld", (long long)e->ival); break;
  case VPQ_AST_DOUBLE: put(buf, size, len, "%.17g", e->dval); break;
  case VPQ_AST_STRING: put(buf, size, len, "'%s'", e->sval); break;
  case VPQ_AST_BOOL: put(buf, size, len, "%s", e->ival ? "TRUE" : "FALSE"); break;
  case VPQ_AST_NULL: put(buf, size, len, "NULL"); break;
  case VPQ_AST_INTERVAL: put(buf, size, len, "%lld MILLISECONDS", (long long)e->ival); break;
  case VPQ_AST_COLUMN:
    if (e->qualifier) put(buf, size, len, "%s.", e->qualifier);
    put(buf, size, len, "%s", e->name);
    break;
  case VPQ_AST_STAR:
    if (e->qualifier) put(buf, size, len, "%s.", e->qualifier);
    put(buf, size, len, "*");
    break;
  case VPQ_AST_UNARY:
    put(buf, size, len, e->op == VPQ_OP_NOT ? "NOT " : "-");
    format_expr(e->args[0], buf, size, len);
    break;
  case VPQ_AST_BINARY:
    put(buf, size, len, "(");
    format_expr(e->args[0], buf, size, len);
    put(buf, size, len, " %s ", vpq_ast_op_text(e->op));
    format_expr(e->args[1], buf, size, len);
    put(buf, size, len, ")");
    break;
  case VPQ_AST_CALL:
  case VPQ_AST_LIST:
    put(buf, size, len, "%s(%s", e->kind == VPQ_AST_CALL ? e->name : "", e->distinct ? "DISTINCT " : "");
    for (int i = 0; i < e->nargs; i++) {
      if (i) put(buf, size, len, ", ");
      format_expr(e->args[i], buf, size, len);
    }
    put(buf, size, len, ")");
    break;
  case VPQ_AST_CASE:
    put(buf, size, len, "CASE");
    if (e->case_operand) {
      put(buf, size, len, " ");
      format_expr(e->case_operand, buf, size, len);
    }
    for (int i = 0; i + 1 < e->nargs; i += 2) {
      put(buf, size, len, " WHEN ");
      format_expr(e->args[i], buf, size, len);
      put(buf, size, len, " THEN ");
      format_expr(e->args[i + 1], buf, size, len);
    }
    if (e->case_else) {
      put(buf, size, len, " ELSE ");
      format_expr(e->case_else, buf, size, len);
    }
    put(buf, size, len, " END");
    break;
  case VPQ_AST_IS_NULL:
    format_expr(e->args[0], buf, size, len);
    put(buf, size, len, e->negated ? " IS NOT NULL" : " IS NULL");
    break;
  }
}

char *vpq_ast_expr_format(const vpq_ast_expr *expr, char *buf, size_t size) {
  size_t len = 0;
  if (size) buf[0] = '\0';
  if (size) format_expr(expr, buf, size, &len);
  return buf;
}
