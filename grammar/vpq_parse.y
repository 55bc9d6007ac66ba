/* vpq_parse.y — the lemon grammar of the .vpq language (DESIGN §2) and the parse driver.
 *
 * How text becomes a tree: vpq_parse() (at the end of this file) pulls tokens from the re2c
 * lexer (vpq_lex.re) and pushes them into the lemon parser one by one. The parser's actions
 * build the tree with the vpq_ast_* constructors (vpq_ast.c) and the small static helpers
 * below, which only read token text (names, numbers, strings) and join spans: no action
 * evaluates anything, looks a name up or checks a type — that is the analyzer's job.
 *
 * Long constructs are built left to right: the first rule of a SELECT, FORECAST, SCHEDULE or
 * CREATE makes the node, and each later clause is a left-recursive rule that fills one field
 * of it and stretches its span. So every node's span covers exactly its text.
 *
 * Keywords as names: `%fallback KWNAME ...` lets most keywords (KEY, STEP, TIMESTAMP, EMIT,
 * units, types, ...) be used as column, stream or option names. lemon tries a fallback only
 * when the keyword has no action of its own in the current state; where its only action
 * would be a default reduction it falls back instead, so the places that accept a bare name
 * after a complete phrase (a relation alias `FROM t d`, a select alias `expr name`) take
 * only a true identifier (ID), never KWNAME: `FROM t EMIT CHANGES` keeps EMIT a keyword.
 *
 * Errors: %syntax_error records "syntax error near `tok`" (or "unexpected end of input") and
 * marks the parse failed; the driver then skips the rest of the statement up to its `;`,
 * restarts the parser and goes on, so every statement's first error is reported in one run.
 */

%name vpq_parser
%token_prefix VPQ_TK_
%extra_context {parse_ctx *ctx}
%token_type {vpq_token}
%default_type {vpq_token}
%start_symbol file
%stack_size 400

%include {
#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vpq_ast.h"
#include "vpq_lex.h"
#include "vpq_parse.h"

/* The parser's context (%extra_context). */
typedef struct parse_ctx {
  vpq_arena *arena;
  vpq_diag *diag;
  vpq_ast_file *file;
  vpq_token token; /* the token being pushed: where a stack overflow is reported */
  vpq_token previous; /* the token pushed before it */
  int clause;      /* VPQ_TK_FORECAST or VPQ_TK_SCHEDULE inside such a query (0: neither) */
  bool failed;     /* a syntax error: the driver skips to the next `;` */
} parse_ctx;

/* ===== Helpers for the actions: token text → values, spans ===== */

/* Copies `len` bytes of `text` quoted with `text[0]` into the arena without the quotes; a
 * doubled quote inside stands for one. */
static char *unquote(vpq_arena *arena, const char *text, uint32_t len) {
  char *out = vpq_arena_alloc(arena, len);
  uint32_t n = 0;
  for (uint32_t i = 1; i + 1 < len; i++) {
    out[n++] = text[i];
    if (text[i] == text[0]) i++;
  }
  out[n] = '\0';
  return out;
}

/* The name a token spells, copied into the arena: a "quoted name" loses its quotes. */
static char *name_of(parse_ctx *ctx, vpq_token tok) {
  const char *text = ctx->diag->text + tok.span.off;
  if (text[0] == '"') return unquote(ctx->arena, text, tok.span.len);
  return vpq_arena_strndup(ctx->arena, text, tok.span.len);
}

/* Lower-cases ASCII letters of `text` in place; returns it. */
static char *lowered(char *text) {
  for (char *p = text; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  return text;
}

/* What to write instead of SQL the language lacks, when `text` names it; else NULL. */
static const char *unsupported_hint(const char *text, uint32_t len) {
  static const struct {
    const char *word, *hint;
  } unsupported[] = {
      {"in", "vpq has no IN: write `x = a OR x = b`"},
      {"between", "vpq has no BETWEEN: write `x >= a AND x <= b` (in SUBJECT TO, `soc >= a, soc <= b`)"},
      {"like", "vpq has no LIKE"},
      {"order", "vpq has no ORDER BY: rows come out in event-time order (docs/language.md, Output order)"},
      {"limit", "vpq has no LIMIT"},
      {"union", "vpq has no UNION: several INSERT INTO statements write into one stream"},
  };
  for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++)
    if (strlen(unsupported[i].word) == len && strncasecmp(text, unsupported[i].word, len) == 0)
      return unsupported[i].hint;
  return NULL;
}

/* How the FORECAST or SCHEDULE query being parsed reads, for a syntax error inside it. */
static const char *clause_form(int clause) {
  if (clause == VPQ_TK_FORECAST)
    return "FORECAST reads `FORECAST column FROM stream [BY key] USING model [(options)] HORIZON h EVERY e "
           "[STEP s]`";
  if (clause == VPQ_TK_SCHEDULE)
    return "SCHEDULE reads `SCHEDULE fleet FOR forecast MINIMIZE PEAK | KEEP BELOW x KW | MINIMIZE COST USING "
           "prices [SUBJECT TO ...] HORIZON h STEP s [EMIT PLAN]`";
  return NULL;
}

/* Records a syntax error at `tok` and marks the parse failed. */
static void syntax_error(parse_ctx *ctx, vpq_token tok) {
  ctx->failed = true;
  const char *form = clause_form(ctx->clause);
  if (tok.type == 0 || tok.span.len == 0) {
    vpq_diag_error(ctx->diag, tok.span, "syntax error: unexpected end of input%s%s", form ? ": " : "", form ? form : "");
    return;
  }
  const char *text = ctx->diag->text + tok.span.off;
  int len = (int)tok.span.len;
  const char *newline = memchr(text, '\n', tok.span.len);
  if (newline) len = (int)(newline - text);
  if (tok.type == VPQ_TK_INT_MIN_MAGNITUDE) {
    vpq_diag_error(ctx->diag, tok.span, "integer `%.*s` is out of range", len, text);
    return;
  }
  /* SQL that the language lacks gets a hint, at the failing token or at the name before it
   * (`x IN (1, 2)` reads `IN` as an alias and fails at `(`) */
  const vpq_token *at[] = {&tok, &ctx->previous};
  for (int k = 0; k < 2; k++) {
    const vpq_token *t = at[k];
    const bool name = k == 0 || t->type == VPQ_TK_ID;
    const char *hint = name ? unsupported_hint(ctx->diag->text + t->span.off, t->span.len) : NULL;
    if (hint) {
      vpq_diag_error(ctx->diag, t->span, "syntax error near `%.*s`: %s", (int)t->span.len, ctx->diag->text + t->span.off,
                     hint);
      return;
    }
  }
  /* a statement's first word starting a line inside another statement: the `;` between them
   * is missing */
  size_t line_start = tok.span.off;
  while (line_start > 0 && (ctx->diag->text[line_start - 1] == ' ' || ctx->diag->text[line_start - 1] == '\t'))
    line_start--;
  if ((tok.type == VPQ_TK_CREATE || tok.type == VPQ_TK_INSERT) && ctx->previous.span.len > 0 &&
      ctx->previous.type != VPQ_TK_SEMI && (line_start == 0 || ctx->diag->text[line_start - 1] == '\n')) {
    vpq_diag_error(ctx->diag, tok.span, "syntax error near `%.*s`: the statement before it does not end with `;`", len,
                   text);
    return;
  }
  vpq_diag_error(ctx->diag, tok.span, "syntax error near `%.*s`%s%s", len, text, form ? ": " : "", form ? form : "");
}

static vpq_ast_expr *with_span(vpq_ast_expr *expr, vpq_span first, vpq_span last) {
  expr->span = vpq_span_join(first, last);
  return expr;
}

static vpq_ast_expr *literal(parse_ctx *ctx, vpq_ast_expr_kind kind, vpq_token tok, int64_t ival) {
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, kind, tok.span);
  expr->ival = ival;
  return expr;
}

/* INTEGER: digits only (a minus sign is the unary operator). */
static vpq_ast_expr *int_literal(parse_ctx *ctx, vpq_token tok) {
  const char *text = ctx->diag->text + tok.span.off;
  int64_t value = 0;
  for (uint32_t i = 0; i < tok.span.len; i++) {
    if (__builtin_mul_overflow(value, 10, &value) || __builtin_add_overflow(value, text[i] - '0', &value)) {
      vpq_diag_error(ctx->diag, tok.span, "integer `%.*s` is out of range", (int)tok.span.len, text);
      return literal(ctx, VPQ_AST_INT, tok, 0);
    }
  }
  return literal(ctx, VPQ_AST_INT, tok, value);
}

/* `-9223372036854775808`, the smallest BIGINT: a minus sign and INT_MIN_MAGNITUDE (the lexer's
 * token for the one magnitude of a BIGINT that is a number only after a minus). */
static vpq_ast_expr *int_min(parse_ctx *ctx, vpq_token minus, vpq_token magnitude) {
  vpq_ast_expr *expr = literal(ctx, VPQ_AST_INT, magnitude, INT64_MIN);
  expr->span = vpq_span_join(minus.span, magnitude.span);
  return expr;
}

/* FLOAT: digits with a fraction and/or an exponent. */
static vpq_ast_expr *float_literal(parse_ctx *ctx, vpq_token tok) {
  const char *text = vpq_arena_strndup(ctx->arena, ctx->diag->text + tok.span.off, tok.span.len);
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_DOUBLE, tok.span);
  expr->dval = strtod(text, NULL);
  if (isinf(expr->dval)) vpq_diag_error(ctx->diag, tok.span, "number `%s` is out of range", text);
  return expr;
}

static vpq_ast_expr *string_literal(parse_ctx *ctx, vpq_token tok) {
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_STRING, tok.span);
  expr->sval = unquote(ctx->arena, ctx->diag->text + tok.span.off, tok.span.len);
  return expr;
}

/* Milliseconds in one interval unit token. */
static int64_t unit_ms(int unit) {
  switch (unit) {
  case VPQ_TK_SECOND: return 1000;
  case VPQ_TK_MINUTE: return 60 * 1000;
  case VPQ_TK_HOUR: return 60 * 60 * 1000;
  case VPQ_TK_DAY: return 24 * 60 * 60 * 1000;
  default: return 1;
  }
}

/* Computes `number` (decimal text: digits, fraction, exponent) × `unit` exactly in whole
 * milliseconds. Returns 0, -1 when the value is not a whole number of milliseconds, or -2
 * when it does not fit in 64 bits. */
static int decimal_ms(const char *text, uint32_t len, int64_t unit, int64_t *out) {
  int64_t mantissa = 0;
  int scale = 0; /* value = mantissa × 10^scale */
  bool fraction = false;
  uint32_t i = 0;
  for (; i < len && text[i] != 'e' && text[i] != 'E'; i++) {
    if (text[i] == '.') {
      fraction = true;
      continue;
    }
    int digit = text[i] - '0';
    if (mantissa > (INT64_MAX - digit) / 10) {
      if (digit != 0) return fraction ? -1 : -2;
      if (!fraction) scale++;
      continue;
    }
    mantissa = mantissa * 10 + digit;
    if (fraction) scale--;
  }
  if (i < len) {
    int sign = 1, exponent = 0;
    i++;
    if (text[i] == '+' || text[i] == '-') sign = text[i++] == '-' ? -1 : 1;
    for (; i < len; i++)
      if (exponent < 100000) exponent = exponent * 10 + (text[i] - '0');
    scale += sign * exponent;
  }
  int64_t ms;
  if (__builtin_mul_overflow(mantissa, unit, &ms)) return -2;
  for (; scale > 0 && ms != 0; scale--)
    if (__builtin_mul_overflow(ms, 10, &ms)) return -2;
  for (; scale < 0 && ms != 0; scale++) {
    if (ms % 10) return -1;
    ms /= 10;
  }
  *out = ms;
  return 0;
}

/* `<number> <unit>`: an INTERVAL whose ival is in milliseconds. */
static vpq_ast_expr *interval(parse_ctx *ctx, vpq_token number, vpq_token unit) {
  vpq_span span = vpq_span_join(number.span, unit.span);
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_INTERVAL, span);
  const char *text = ctx->diag->text + span.off;
  int rc = decimal_ms(ctx->diag->text + number.span.off, number.span.len, unit_ms(unit.type), &expr->ival);
  if (rc == 0 && expr->ival > VPQ_AST_INTERVAL_MAX_MS) rc = -2;
  if (rc == -1) {
    vpq_diag_error(ctx->diag, span, "interval `%.*s` is not a whole number of milliseconds", (int)span.len, text);
  } else if (rc == -2) {
    vpq_diag_error(ctx->diag, span, "interval `%.*s` is out of range (at most 10,000 years)", (int)span.len, text);
    expr->ival = VPQ_AST_INTERVAL_MAX_MS + 1; /* past any interval: checks of its size say nothing more */
  }
  return expr;
}

static vpq_ast_expr *column(parse_ctx *ctx, const vpq_token *qualifier, vpq_token name) {
  vpq_span span = qualifier ? vpq_span_join(qualifier->span, name.span) : name.span;
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_COLUMN, span);
  expr->name = name_of(ctx, name);
  expr->name_span = name.span;
  if (qualifier) expr->qualifier = name_of(ctx, *qualifier);
  return expr;
}

static vpq_ast_expr *star(parse_ctx *ctx, const vpq_token *qualifier, vpq_token tok) {
  vpq_span span = qualifier ? vpq_span_join(qualifier->span, tok.span) : tok.span;
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_STAR, span);
  if (qualifier) expr->qualifier = name_of(ctx, *qualifier);
  return expr;
}

/* A CALL node for `name(`; its arguments are appended by the rules that follow. */
static vpq_ast_expr *call(parse_ctx *ctx, vpq_token name, bool distinct) {
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_CALL, name.span);
  expr->name = lowered(name_of(ctx, name));
  expr->name_span = name.span;
  expr->distinct = distinct;
  return expr;
}

/* `name(*)`: a call whose one argument is STAR. */
static vpq_ast_expr *call_star(parse_ctx *ctx, vpq_token name, vpq_token tok, vpq_token close) {
  vpq_ast_expr *expr = call(ctx, name, false);
  vpq_ast_expr_add_arg(ctx->arena, expr, star(ctx, NULL, tok));
  return with_span(expr, name.span, close.span);
}

static vpq_ast_expr *add_arg(parse_ctx *ctx, vpq_ast_expr *expr, vpq_ast_expr *arg) {
  vpq_ast_expr_add_arg(ctx->arena, expr, arg);
  return expr;
}

/* Appends one `WHEN cond THEN value` pair to a CASE node. */
static vpq_ast_expr *case_when(parse_ctx *ctx, vpq_ast_expr *expr, vpq_ast_expr *when, vpq_ast_expr *then) {
  vpq_ast_expr_add_arg(ctx->arena, expr, when);
  vpq_ast_expr_add_arg(ctx->arena, expr, then);
  return expr;
}

static vpq_ast_expr *case_new(parse_ctx *ctx, vpq_token keyword, vpq_ast_expr *operand) {
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_CASE, keyword.span);
  vpq_ast_expr_set_case_part(expr, &expr->case_operand, operand);
  return expr;
}

static vpq_ast_expr *case_end(vpq_ast_expr *expr, vpq_ast_expr *otherwise, vpq_token end) {
  vpq_ast_expr_set_case_part(expr, &expr->case_else, otherwise);
  return with_span(expr, expr->span, end.span);
}

/* Refuses `expr` past VPQ_AST_MAX_DEPTH levels like a stack overflow, at `where`: the operators
 * written after their left operand (a + b + c ..., x IS NULL IS NULL ...) nest without growing
 * the parser's stack, which bounds every other nesting. */
static vpq_ast_expr *bounded(parse_ctx *ctx, vpq_ast_expr *expr, vpq_span where) {
  if (expr->depth > VPQ_AST_MAX_DEPTH && !ctx->failed) {
    ctx->failed = true;
    vpq_diag_error(ctx->diag, where, "expression nested too deeply: more than %d operators deep", VPQ_AST_MAX_DEPTH);
  }
  return expr;
}

/* `left op right` (vpq_ast_binary), at most VPQ_AST_MAX_DEPTH deep. */
static vpq_ast_expr *binary(parse_ctx *ctx, vpq_ast_op op, vpq_ast_expr *left, vpq_ast_expr *right) {
  return bounded(ctx, vpq_ast_binary(ctx->arena, op, left, right), right->span);
}

static vpq_ast_expr *is_null(parse_ctx *ctx, vpq_ast_expr *operand, bool negated, vpq_token last) {
  vpq_ast_expr *expr = vpq_ast_expr_new(ctx->arena, VPQ_AST_IS_NULL, vpq_span_join(operand->span, last.span));
  expr->negated = negated;
  vpq_ast_expr_add_arg(ctx->arena, expr, operand);
  return bounded(ctx, expr, last.span);
}

static vpq_ast_expr *list_new(parse_ctx *ctx, vpq_ast_expr *first) {
  return add_arg(ctx, vpq_ast_expr_new(ctx->arena, VPQ_AST_LIST, first->span), first);
}

static vpq_ast_exprs exprs_one(parse_ctx *ctx, vpq_ast_expr *expr) {
  vpq_ast_exprs list = {0};
  vpq_ast_exprs_add(ctx->arena, &list, expr);
  return list;
}

static vpq_ast_options options_one(parse_ctx *ctx, vpq_ast_option option) {
  vpq_ast_options options = {0};
  vpq_ast_options_add(ctx->arena, &options, option);
  return options;
}

/* `key = value`: a name key is lower-cased, a 'quoted.key' keeps its text. */
static vpq_ast_option option(parse_ctx *ctx, vpq_token key, vpq_ast_expr *value) {
  const char *text = ctx->diag->text + key.span.off;
  char *name = key.type == VPQ_TK_STRING ? unquote(ctx->arena, text, key.span.len) : lowered(name_of(ctx, key));
  return (vpq_ast_option){name, key.span, value};
}

static vpq_ast_coldef coldef(parse_ctx *ctx, vpq_token name, vpq_token type, int key) {
  vpq_ast_type t = type.type == VPQ_TK_BOOLEAN   ? VPQ_AST_TYPE_BOOLEAN
                   : type.type == VPQ_TK_BIGINT  ? VPQ_AST_TYPE_BIGINT
                   : type.type == VPQ_TK_DOUBLE  ? VPQ_AST_TYPE_DOUBLE
                   : type.type == VPQ_TK_VARCHAR ? VPQ_AST_TYPE_STRING
                                                 : VPQ_AST_TYPE_TIMESTAMP;
  return (vpq_ast_coldef){name_of(ctx, name), name.span, t, type.span, key == 1, key == 2};
}

static vpq_ast_relation relation(parse_ctx *ctx, vpq_token name, const vpq_token *alias) {
  vpq_ast_relation rel = {name_of(ctx, name), name.span, NULL, {0, 0}};
  if (alias) {
    rel.alias = name_of(ctx, *alias);
    rel.alias_span = alias->span;
  }
  return rel;
}

static vpq_ast_select_item item(parse_ctx *ctx, vpq_ast_expr *expr, const vpq_token *alias) {
  vpq_ast_select_item it = {expr, NULL, {0, 0}};
  if (alias) {
    it.alias = name_of(ctx, *alias);
    it.alias_span = alias->span;
  }
  return it;
}

/* The kind and keyword span of a join; the relation and conditions are added by join(). */
static vpq_ast_join join_kind(vpq_ast_join_kind kind, vpq_token first, vpq_token last) {
  return (vpq_ast_join){.kind = kind, .span = vpq_span_join(first.span, last.span)};
}

static vpq_ast_join join(vpq_ast_join kind, vpq_ast_relation rel, vpq_ast_expr *within, vpq_ast_expr *on) {
  kind.rel = rel;
  kind.within = within;
  kind.on = on;
  return kind;
}

static vpq_ast_window window(vpq_ast_window_kind kind, vpq_token first, vpq_token last, vpq_ast_expr *size,
                             vpq_ast_expr *advance, vpq_ast_expr *gap, vpq_ast_expr *grace) {
  return (vpq_ast_window){kind, vpq_span_join(first.span, last.span), size, advance, gap, grace};
}

static vpq_ast_stmt *stmt(parse_ctx *ctx, vpq_ast_stmt_kind kind, vpq_token first, vpq_token name) {
  vpq_ast_stmt *s = vpq_ast_stmt_new(ctx->arena, kind, first.span);
  s->name = name_of(ctx, name);
  s->name_span = name.span;
  return s;
}

static vpq_ast_stmt *stmt_set(vpq_ast_stmt *s, const vpq_ast_options *options, vpq_ast_query *query) {
  if (options) s->options = *options;
  s->query = query;
  return s;
}

/* Stretches a query's span to the end of `last`. */
static void extend(vpq_ast_query *query, vpq_span last) {
  query->span = vpq_span_join(query->span, last);
}

static vpq_ast_query *select_new(parse_ctx *ctx, vpq_token keyword, vpq_ast_select_item first) {
  vpq_ast_query *query = vpq_ast_query_new(ctx->arena, VPQ_QUERY_SELECT, keyword.span);
  vpq_ast_select_add_item(ctx->arena, &query->u.select, first);
  return query;
}

static void select_from(vpq_ast_query *query, vpq_ast_relation from) {
  query->u.select.from = from;
  extend(query, from.alias ? from.alias_span : from.span);
}

static void select_join(parse_ctx *ctx, vpq_ast_query *query, vpq_ast_join join) {
  vpq_ast_select_add_join(ctx->arena, &query->u.select, join);
  extend(query, join.on->span);
}

static void select_group(vpq_ast_query *query, vpq_token keyword, vpq_ast_exprs keys, bool rollup, vpq_span last) {
  query->u.select.group_by = keys;
  query->u.select.rollup = rollup;
  query->u.select.group_span = keyword.span;
  extend(query, last);
}

static void select_emit(vpq_ast_query *query, vpq_ast_emit emit, vpq_token first, vpq_token last) {
  query->u.select.emit = emit;
  query->u.select.emit_span = vpq_span_join(first.span, last.span);
  extend(query, last.span);
}

static vpq_ast_query *forecast_new(parse_ctx *ctx, vpq_token keyword, vpq_ast_expr *value, vpq_ast_relation from) {
  vpq_ast_query *query = vpq_ast_query_new(ctx->arena, VPQ_QUERY_FORECAST, keyword.span);
  query->u.forecast.value = value;
  query->u.forecast.from = from;
  return query;
}

static void forecast_model(parse_ctx *ctx, vpq_ast_query *query, vpq_token model, const vpq_ast_options *options) {
  query->u.forecast.model = lowered(name_of(ctx, model));
  query->u.forecast.model_span = model.span;
  if (options) query->u.forecast.model_options = *options;
}

static void forecast_times(vpq_ast_query *query, vpq_ast_expr *horizon, vpq_ast_expr *every) {
  query->u.forecast.horizon = horizon;
  query->u.forecast.every = every;
  extend(query, every ? every->span : horizon->span);
}

static vpq_ast_query *schedule_new(parse_ctx *ctx, vpq_token keyword, vpq_ast_relation fleet,
                                   vpq_ast_relation forecast) {
  vpq_ast_query *query = vpq_ast_query_new(ctx->arena, VPQ_QUERY_SCHEDULE, keyword.span);
  query->u.schedule.fleet = fleet;
  query->u.schedule.forecast = forecast;
  return query;
}

static void schedule_objective(vpq_ast_query *query, vpq_ast_objective objective, vpq_span first, vpq_span last) {
  query->u.schedule.objective = objective;
  query->u.schedule.objective_span = vpq_span_join(first, last);
}

static void schedule_times(vpq_ast_query *query, vpq_ast_expr *horizon, vpq_ast_expr *step) {
  query->u.schedule.horizon = horizon;
  query->u.schedule.step = step;
  extend(query, step->span);
}
}

%syntax_error {
  syntax_error(ctx, TOKEN);
}

%stack_overflow {
  ctx->failed = true;
  vpq_diag_error(ctx->diag, ctx->token.span, "statement nested too deeply");
}

/* Tokens the grammar never shifts: the lexer's error token, and the name every keyword in
 * the %fallback list stands in for. */
%token ILLEGAL.
%fallback KWNAME ADVANCE BELOW BIGINT BOOLEAN CHANGES COST DAY DOUBLE EMIT EVERY FINAL FOR
  FORECAST GRACE HOPPING HORIZON HOUR KEEP KEY KW MILLISECOND MINIMIZE MINUTE OUTER PEAK
  PERIOD PLAN PRIMARY ROLLUP SCHEDULE SECOND SESSION SIZE STEP STREAM SUBJECT TABLE
  TIMESTAMP TO TUMBLING USING VARCHAR.

%left OR.
%left AND.
%right NOT.
%left EQ NE LT LE GT GE IS.
%left PLUS MINUS.
%left STAR SLASH PERCENT.
%right UMINUS.

%type stmt {vpq_ast_stmt *}
%type create {vpq_ast_stmt *}
%type cols {vpq_ast_stmt *}
%type coldef {vpq_ast_coldef}
%type with {vpq_ast_options}
%type options {vpq_ast_options}
%type option {vpq_ast_option}
%type optval {vpq_ast_expr *}
%type optlist {vpq_ast_expr *}
%type query {vpq_ast_query *}
%type select {vpq_ast_query *}
%type sel_items {vpq_ast_query *}
%type sel_from {vpq_ast_query *}
%type sel_joins {vpq_ast_query *}
%type sel_window {vpq_ast_query *}
%type sel_where {vpq_ast_query *}
%type sel_group {vpq_ast_query *}
%type sel_having {vpq_ast_query *}
%type item {vpq_ast_select_item}
%type relation {vpq_ast_relation}
%type relname {vpq_ast_relation}
%type join_kind {vpq_ast_join}
%type join {vpq_ast_join}
%type window {vpq_ast_window}
%type grace {vpq_ast_expr *}
%type forecast {vpq_ast_query *}
%type fc_from {vpq_ast_query *}
%type fc_by {vpq_ast_query *}
%type fc_model {vpq_ast_query *}
%type fc_every {vpq_ast_query *}
%type schedule {vpq_ast_query *}
%type sc_head {vpq_ast_query *}
%type sc_goal {vpq_ast_query *}
%type sc_subject {vpq_ast_query *}
%type sc_times {vpq_ast_query *}
%type expr {vpq_ast_expr *}
%type literal {vpq_ast_expr *}
%type args {vpq_ast_expr *}
%type cases {vpq_ast_expr *}
%type exprs {vpq_ast_exprs}

/* ===== Statements ===== */

/* file -> (stmt? ;)*   — the driver supplies the last `;` when it is missing */
file ::= cmds.
cmds ::= .
cmds ::= cmds cmd.
cmd ::= SEMI.
cmd ::= stmt(S) SEMI(E). { S->span = vpq_span_join(S->span, E.span); vpq_ast_file_add(ctx->arena, ctx->file, S); }

/* stmt -> CREATE STREAM|TABLE name (coldef, ...) [WITH (options)]
 *       | CREATE STREAM|TABLE name [WITH (options)] AS query
 *       | INSERT INTO name query */
create(A) ::= CREATE(K) STREAM name(N). { A = stmt(ctx, VPQ_STMT_CREATE_STREAM, K, N); }
create(A) ::= CREATE(K) TABLE name(N). { A = stmt(ctx, VPQ_STMT_CREATE_TABLE, K, N); }
cols(A) ::= create(A) LP coldef(C). { vpq_ast_stmt_add_col(ctx->arena, A, C); }
cols(A) ::= cols(A) COMMA coldef(C). { vpq_ast_stmt_add_col(ctx->arena, A, C); }
stmt(A) ::= cols(A) RP.
stmt(A) ::= cols(A) RP with(O). { A = stmt_set(A, &O, NULL); }
stmt(A) ::= create(A) AS query(Q). { A = stmt_set(A, NULL, Q); }
stmt(A) ::= create(A) with(O) AS query(Q). { A = stmt_set(A, &O, Q); }
stmt(A) ::= INSERT(K) INTO name(N) query(Q). { A = stmt_set(stmt(ctx, VPQ_STMT_INSERT_INTO, K, N), NULL, Q); }

/* coldef -> name type [KEY | PRIMARY KEY] */
coldef(A) ::= name(N) type(T). { A = coldef(ctx, N, T, 0); }
coldef(A) ::= name(N) type(T) KEY. { A = coldef(ctx, N, T, 1); }
coldef(A) ::= name(N) type(T) PRIMARY KEY. { A = coldef(ctx, N, T, 2); }
type(A) ::= BOOLEAN(A).
type(A) ::= BIGINT(A).
type(A) ::= DOUBLE(A).
type(A) ::= VARCHAR(A).
type(A) ::= TIMESTAMP(A).

/* with -> WITH (key = value, ...); a value is a literal, an interval, a name or (v, ...) */
with(A) ::= WITH LP options(O) RP. { A = O; }
options(A) ::= option(X). { A = options_one(ctx, X); }
options(A) ::= options(A) COMMA option(X). { vpq_ast_options_add(ctx->arena, &A, X); }
option(A) ::= name(K) EQ optval(V). { A = option(ctx, K, V); }
option(A) ::= GROUP(K) EQ optval(V). { A = option(ctx, K, V); }
option(A) ::= STRING(K) EQ optval(V). { A = option(ctx, K, V); }
optval(A) ::= literal(A).
optval(A) ::= MINUS(M) literal(X). { A = vpq_ast_unary(ctx->arena, VPQ_OP_NEG, X, M.span); }
optval(A) ::= MINUS(M) INT_MIN_MAGNITUDE(T). { A = int_min(ctx, M, T); }
optval(A) ::= name(N). { A = column(ctx, NULL, N); }
optval(A) ::= LP(L) optlist(X) RP(R). { A = with_span(X, L.span, R.span); }
optlist(A) ::= optval(X). { A = list_new(ctx, X); }
optlist(A) ::= optlist(A) COMMA optval(X). { A = add_arg(ctx, A, X); }

name(A) ::= ID(A).
name(A) ::= KWNAME(A).

/* ===== Queries ===== */

query(A) ::= select(A).
query(A) ::= forecast(A).
query(A) ::= schedule(A).

/* select -> SELECT item, ... FROM relation join* [window] [WHERE e] [GROUP BY keys]
 *           [HAVING e] [EMIT FINAL|CHANGES] */
sel_items(A) ::= SELECT(K) item(X). { A = select_new(ctx, K, X); }
sel_items(A) ::= sel_items(A) COMMA item(X). { vpq_ast_select_add_item(ctx->arena, &A->u.select, X); }
sel_from(A) ::= sel_items(A) FROM relation(R). { select_from(A, R); }
sel_joins(A) ::= sel_from(A).
sel_joins(A) ::= sel_joins(A) join(J). { select_join(ctx, A, J); }
sel_window(A) ::= sel_joins(A).
sel_window(A) ::= sel_joins(A) window(W). { A->u.select.window = W; extend(A, W.span); }
sel_where(A) ::= sel_window(A).
sel_where(A) ::= sel_window(A) WHERE expr(X). { A->u.select.where = X; extend(A, X->span); }
sel_group(A) ::= sel_where(A).
sel_group(A) ::= sel_where(A) GROUP(K) BY exprs(L). { select_group(A, K, L, false, L.items[L.count - 1]->span); }
sel_group(A) ::= sel_where(A) GROUP(K) BY ROLLUP LP exprs(L) RP(R). { select_group(A, K, L, true, R.span); }
sel_having(A) ::= sel_group(A).
sel_having(A) ::= sel_group(A) HAVING expr(X). { A->u.select.having = X; extend(A, X->span); }
select(A) ::= sel_having(A).
select(A) ::= sel_having(A) EMIT(K) FINAL(E). { select_emit(A, VPQ_EMIT_FINAL, K, E); }
select(A) ::= sel_having(A) EMIT(K) CHANGES(E). { select_emit(A, VPQ_EMIT_CHANGES, K, E); }

/* item -> expr [[AS] alias] | * | name.* */
item(A) ::= expr(X). { A = item(ctx, X, NULL); }
item(A) ::= expr(X) AS name(N). { A = item(ctx, X, &N); }
item(A) ::= expr(X) ID(N). { A = item(ctx, X, &N); }
item(A) ::= STAR(S). { A = item(ctx, star(ctx, NULL, S), NULL); }
item(A) ::= name(Q) DOT STAR(S). { A = item(ctx, star(ctx, &Q, S), NULL); }

/* relation -> name [[AS] alias] */
relation(A) ::= name(N). { A = relation(ctx, N, NULL); }
relation(A) ::= name(N) ID(L). { A = relation(ctx, N, &L); }
relation(A) ::= name(N) AS name(L). { A = relation(ctx, N, &L); }
relname(A) ::= name(N). { A = relation(ctx, N, NULL); }

/* join -> [INNER | LEFT [OUTER]] JOIN relation [WITHIN interval] ON expr */
join_kind(A) ::= JOIN(K). { A = join_kind(VPQ_JOIN_INNER, K, K); }
join_kind(A) ::= INNER(K) JOIN(E). { A = join_kind(VPQ_JOIN_INNER, K, E); }
join_kind(A) ::= LEFT(K) JOIN(E). { A = join_kind(VPQ_JOIN_LEFT, K, E); }
join_kind(A) ::= LEFT(K) OUTER JOIN(E). { A = join_kind(VPQ_JOIN_LEFT, K, E); }
join(A) ::= join_kind(K) relation(R) ON expr(X). { A = join(K, R, NULL, X); }
join(A) ::= join_kind(K) relation(R) WITHIN expr(W) ON expr(X). { A = join(K, R, W, X); }

/* window -> WINDOW TUMBLING (SIZE i [grace]) | WINDOW HOPPING (SIZE i, ADVANCE BY i [grace])
 *         | WINDOW SESSION (gap [grace]);   grace -> , GRACE PERIOD i */
window(A) ::= WINDOW(K) TUMBLING LP SIZE expr(S) grace(G) RP(E).
  { A = window(VPQ_WINDOW_TUMBLING, K, E, S, NULL, NULL, G); }
window(A) ::= WINDOW(K) HOPPING LP SIZE expr(S) COMMA ADVANCE BY expr(V) grace(G) RP(E).
  { A = window(VPQ_WINDOW_HOPPING, K, E, S, V, NULL, G); }
window(A) ::= WINDOW(K) SESSION LP expr(P) grace(G) RP(E).
  { A = window(VPQ_WINDOW_SESSION, K, E, NULL, NULL, P, G); }
grace(A) ::= . { A = NULL; }
grace(A) ::= COMMA GRACE PERIOD expr(X). { A = X; }

/* forecast -> FORECAST expr FROM name [BY expr, ...] USING model [(options)]
 *             HORIZON i EVERY i [STEP i] */
fc_from(A) ::= FORECAST(K) expr(V) FROM relname(R). { A = forecast_new(ctx, K, V, R); }
fc_by(A) ::= fc_from(A).
fc_by(A) ::= fc_from(A) BY exprs(L). { A->u.forecast.by = L; }
fc_model(A) ::= fc_by(A) USING name(M). { forecast_model(ctx, A, M, NULL); }
fc_model(A) ::= fc_by(A) USING name(M) LP options(O) RP. { forecast_model(ctx, A, M, &O); }
fc_every(A) ::= fc_model(A) HORIZON expr(H) EVERY expr(E). { forecast_times(A, H, E); }
fc_every(A) ::= fc_model(A) HORIZON expr(H). { forecast_times(A, H, NULL); } /* the analyzer asks for EVERY */
forecast(A) ::= fc_every(A).
forecast(A) ::= fc_every(A) STEP expr(S). { A->u.forecast.step = S; extend(A, S->span); }

/* schedule -> SCHEDULE fleet FOR forecast (MINIMIZE PEAK | KEEP BELOW e KW | MINIMIZE COST
 *             USING prices) [SUBJECT TO expr, ...] HORIZON i STEP i [EMIT PLAN] */
sc_head(A) ::= SCHEDULE(K) relname(F) FOR relname(R). { A = schedule_new(ctx, K, F, R); }
sc_goal(A) ::= sc_head(A) MINIMIZE(K) PEAK(E).
  { schedule_objective(A, VPQ_OBJECTIVE_MINIMIZE_PEAK, K.span, E.span); }
sc_goal(A) ::= sc_head(A) KEEP(K) BELOW expr(X) KW(E).
  { schedule_objective(A, VPQ_OBJECTIVE_KEEP_BELOW, K.span, E.span); A->u.schedule.cap = X; }
sc_goal(A) ::= sc_head(A) MINIMIZE(K) COST USING relname(P).
  { schedule_objective(A, VPQ_OBJECTIVE_MINIMIZE_COST, K.span, P.span); A->u.schedule.price = P; }
sc_subject(A) ::= sc_goal(A).
sc_subject(A) ::= sc_goal(A) SUBJECT TO exprs(L). { A->u.schedule.constraints = L; }
sc_times(A) ::= sc_subject(A) HORIZON expr(H) STEP expr(S). { schedule_times(A, H, S); }
schedule(A) ::= sc_times(A).
schedule(A) ::= sc_times(A) EMIT PLAN(E). { A->u.schedule.emit_plan = true; extend(A, E.span); }

/* ===== Expressions ===== */

exprs(A) ::= expr(X). { A = exprs_one(ctx, X); }
exprs(A) ::= exprs(A) COMMA expr(X). { vpq_ast_exprs_add(ctx->arena, &A, X); }

literal(A) ::= INTEGER(T). { A = int_literal(ctx, T); }
literal(A) ::= FLOAT(T). { A = float_literal(ctx, T); }
literal(A) ::= INTEGER(T) unit(U). { A = interval(ctx, T, U); }
literal(A) ::= FLOAT(T) unit(U). { A = interval(ctx, T, U); }
literal(A) ::= STRING(T). { A = string_literal(ctx, T); }
literal(A) ::= TRUE(T). { A = literal(ctx, VPQ_AST_BOOL, T, 1); }
literal(A) ::= FALSE(T). { A = literal(ctx, VPQ_AST_BOOL, T, 0); }
literal(A) ::= NULL(T). { A = literal(ctx, VPQ_AST_NULL, T, 0); }
unit(A) ::= MILLISECOND(A).
unit(A) ::= SECOND(A).
unit(A) ::= MINUTE(A).
unit(A) ::= HOUR(A).
unit(A) ::= DAY(A).

expr(A) ::= literal(A).
expr(A) ::= name(N). { A = column(ctx, NULL, N); }
expr(A) ::= name(Q) DOT name(N). { A = column(ctx, &Q, N); }
expr(A) ::= LP(L) expr(X) RP(R). { A = with_span(X, L.span, R.span); }

/* call -> name ( [DISTINCT] expr, ... ) | name ( * ) | name ( ) */
expr(A) ::= name(F) LP RP(R). { A = with_span(call(ctx, F, false), F.span, R.span); }
expr(A) ::= name(F) LP STAR(S) RP(R). { A = call_star(ctx, F, S, R); }
expr(A) ::= args(X) RP(R). { A = with_span(X, X->span, R.span); }
args(A) ::= name(F) LP expr(X). { A = add_arg(ctx, call(ctx, F, false), X); }
args(A) ::= name(F) LP DISTINCT expr(X). { A = add_arg(ctx, call(ctx, F, true), X); }
args(A) ::= args(A) COMMA expr(X). { A = add_arg(ctx, A, X); }

/* case -> CASE [operand] (WHEN e THEN e)+ [ELSE e] END */
expr(A) ::= cases(X) END(E). { A = case_end(X, NULL, E); }
expr(A) ::= cases(X) ELSE expr(Y) END(E). { A = case_end(X, Y, E); }
cases(A) ::= CASE(K) WHEN expr(W) THEN expr(T). { A = case_when(ctx, case_new(ctx, K, NULL), W, T); }
cases(A) ::= CASE(K) expr(O) WHEN expr(W) THEN expr(T). { A = case_when(ctx, case_new(ctx, K, O), W, T); }
cases(A) ::= cases(A) WHEN expr(W) THEN expr(T). { A = case_when(ctx, A, W, T); }

expr(A) ::= MINUS(O) expr(X). [UMINUS] { A = vpq_ast_unary(ctx->arena, VPQ_OP_NEG, X, O.span); }
expr(A) ::= MINUS(O) INT_MIN_MAGNITUDE(T). [UMINUS] { A = int_min(ctx, O, T); }
expr(A) ::= NOT(O) expr(X). { A = vpq_ast_unary(ctx->arena, VPQ_OP_NOT, X, O.span); }
expr(A) ::= expr(X) OR expr(Y). { A = binary(ctx, VPQ_OP_OR, X, Y); }
expr(A) ::= expr(X) AND expr(Y). { A = binary(ctx, VPQ_OP_AND, X, Y); }
expr(A) ::= expr(X) EQ expr(Y). { A = binary(ctx, VPQ_OP_EQ, X, Y); }
expr(A) ::= expr(X) NE expr(Y). { A = binary(ctx, VPQ_OP_NE, X, Y); }
expr(A) ::= expr(X) LT expr(Y). { A = binary(ctx, VPQ_OP_LT, X, Y); }
expr(A) ::= expr(X) LE expr(Y). { A = binary(ctx, VPQ_OP_LE, X, Y); }
expr(A) ::= expr(X) GT expr(Y). { A = binary(ctx, VPQ_OP_GT, X, Y); }
expr(A) ::= expr(X) GE expr(Y). { A = binary(ctx, VPQ_OP_GE, X, Y); }
expr(A) ::= expr(X) PLUS expr(Y). { A = binary(ctx, VPQ_OP_ADD, X, Y); }
expr(A) ::= expr(X) MINUS expr(Y). { A = binary(ctx, VPQ_OP_SUB, X, Y); }
expr(A) ::= expr(X) STAR expr(Y). { A = binary(ctx, VPQ_OP_MUL, X, Y); }
expr(A) ::= expr(X) SLASH expr(Y). { A = binary(ctx, VPQ_OP_DIV, X, Y); }
expr(A) ::= expr(X) PERCENT expr(Y). { A = binary(ctx, VPQ_OP_MOD, X, Y); }
expr(A) ::= expr(X) IS NULL(E). { A = is_null(ctx, X, false, E); }
expr(A) ::= expr(X) IS NOT NULL(E). { A = is_null(ctx, X, true, E); }

%code {
/* ===== The driver ===== */

/* Pushes one token into the parser, remembering it for a stack-overflow message. */
static void push(yyParser *parser, parse_ctx *ctx, vpq_token tok) {
  ctx->previous = ctx->token;
  ctx->token = tok;
  if (tok.type == VPQ_TK_FORECAST || tok.type == VPQ_TK_SCHEDULE) ctx->clause = tok.type;
  vpq_parser(parser, tok.type, tok);
  if (tok.type == VPQ_TK_SEMI) ctx->clause = 0;
}

vpq_ast_file *vpq_parse(vpq_arena *arena, vpq_diag *diag) {
  parse_ctx ctx = {arena, diag, vpq_arena_alloc(arena, sizeof(vpq_ast_file)), {0, {0, 0}}, {0, {0, 0}}, 0, false};
  vpq_lexer lex;
  vpq_lex_init(&lex, diag);
  yyParser parser;
  vpq_parserInit(&parser, &ctx);
  bool open = false; /* tokens were pushed since the last `;` */
  uint32_t end = 0;  /* where the last pushed token ends */
  for (;;) {
    vpq_token tok = vpq_lex_next(&lex);
    if (tok.type == 0 && open) push(&parser, &ctx, (vpq_token){VPQ_TK_SEMI, {end, 0}});
    if (tok.type == VPQ_TK_ILLEGAL) {
      ctx.failed = true;
    } else if (!ctx.failed) {
      push(&parser, &ctx, tok);
      open = tok.type != VPQ_TK_SEMI;
      end = tok.span.off + tok.span.len;
    }
    if (ctx.failed) {
      ctx.file->incomplete = true;
      while (tok.type != 0 && tok.type != VPQ_TK_SEMI) tok = vpq_lex_next(&lex);
      vpq_parserFinalize(&parser);
      vpq_parserInit(&parser, &ctx);
      ctx.failed = false;
      ctx.clause = 0;
      open = false;
    }
    if (tok.type == 0) break;
  }
  vpq_parserFinalize(&parser);
  return ctx.file;
}
}
