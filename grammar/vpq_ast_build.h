/* vpq_ast_build.h — the parser's private side of the AST: the parse context carried in
 * lemon's %extra_context, clause structs that exist only while a statement is parsed, and
 * the builders grammar actions call (each one line in vpq_parse.y). Not for the engine.
 */
#ifndef VPQ_AST_BUILD_H
#define VPQ_AST_BUILD_H

#include "vpq_ast.h"
#include "vpq_lex.h"

typedef struct vpq_parse_ctx {
  vpq_arena *arena;
  vpq_diag *diag;
  vpq_ast_file *file;
  vpq_span last_unit; /* the unit token of the interval being reduced */
} vpq_parse_ctx;

/* GROUP BY [ROLLUP] (...) while a SELECT is parsed. */
typedef struct vpq_ast_group {
  vpq_ast_exprs exprs;
  bool rollup;
  vpq_span span;
} vpq_ast_group;

/* EMIT FINAL | CHANGES while a SELECT is parsed. */
typedef struct vpq_ast_emit_clause {
  vpq_ast_emit emit;
  vpq_span span;
} vpq_ast_emit_clause;

/* Records a syntax error at `token` (major code `major`; 0 = end of input). */
void vpq_ast_syntax_error(vpq_parse_ctx *ctx, int major, vpq_token token);

/* Text of a name token (a "quoted name" loses its quotes), copied into the arena. */
const char *vpq_ast_name_text(vpq_parse_ctx *ctx, vpq_token name);

vpq_ast_stmt *vpq_ast_stmt_declare(vpq_parse_ctx *ctx, vpq_ast_stmt *cols, vpq_ast_stmt_kind kind,
                                   vpq_token name, vpq_ast_options options, vpq_token first, vpq_token last);
vpq_ast_stmt *vpq_ast_stmt_derive(vpq_parse_ctx *ctx, vpq_ast_stmt_kind kind, vpq_token name,
                                  vpq_ast_options options, vpq_ast_query *query, vpq_token first);
vpq_ast_coldef vpq_ast_coltype(vpq_ast_type type, vpq_token token);
vpq_ast_coldef vpq_ast_coldef_make(vpq_parse_ctx *ctx, vpq_token name, vpq_ast_coldef type, int key);
vpq_ast_option vpq_ast_option_make(vpq_parse_ctx *ctx, vpq_token key, bool quoted, vpq_ast_expr *value);
vpq_ast_expr *vpq_ast_list(vpq_parse_ctx *ctx, vpq_token open, vpq_ast_expr *first, const vpq_ast_exprs *rest,
                           vpq_token close);

void vpq_ast_select_from(vpq_parse_ctx *ctx, vpq_ast_query *query, vpq_token select, vpq_ast_relation from);
void vpq_ast_select_finish(vpq_parse_ctx *ctx, vpq_ast_query *query, vpq_ast_window window, vpq_ast_expr *where,
                           vpq_ast_group group, vpq_ast_expr *having, vpq_ast_emit_clause emit);
vpq_ast_select_item vpq_ast_item_alias(vpq_parse_ctx *ctx, vpq_ast_expr *expr, vpq_token alias);
vpq_ast_expr *vpq_ast_star(vpq_parse_ctx *ctx, vpq_token qualifier, vpq_token star);
vpq_ast_relation vpq_ast_relation_make(vpq_parse_ctx *ctx, vpq_token name, const vpq_token *alias);
vpq_ast_join vpq_ast_join_make(vpq_ast_join_kind kind, vpq_token keyword, vpq_ast_relation rel,
                               vpq_ast_expr *within, vpq_ast_expr *on);
vpq_ast_window vpq_ast_window_make(vpq_ast_window_kind kind, vpq_token first, vpq_token last, vpq_ast_expr *size,
                                   vpq_ast_expr *advance, vpq_ast_expr *gap, vpq_ast_expr *grace);

vpq_ast_query *vpq_ast_forecast_make(vpq_parse_ctx *ctx, vpq_token keyword, vpq_ast_expr *value,
                                     vpq_ast_relation from, vpq_ast_exprs by, vpq_token model,
                                     vpq_ast_options options, vpq_ast_expr *horizon, vpq_ast_expr *every,
                                     vpq_ast_expr *step);
vpq_ast_query *vpq_ast_schedule_make(vpq_parse_ctx *ctx, vpq_token keyword, vpq_span last,
                                     vpq_ast_relation fleet, vpq_ast_relation forecast,
                                     vpq_ast_objective objective, vpq_ast_expr *cap,
                                     const vpq_ast_relation *price);
void vpq_ast_schedule_finish(vpq_ast_query *query, vpq_ast_exprs constraints, vpq_ast_expr *horizon,
                             vpq_ast_expr *step, int emit_plan);

vpq_ast_expr *vpq_ast_paren(vpq_ast_expr *expr, vpq_token open, vpq_token close);
vpq_ast_expr *vpq_ast_number(vpq_parse_ctx *ctx, vpq_token token, bool is_float);
vpq_ast_expr *vpq_ast_interval(vpq_parse_ctx *ctx, vpq_token number, int64_t unit_ms, vpq_span unit);
vpq_ast_expr *vpq_ast_string(vpq_parse_ctx *ctx, vpq_token token);
vpq_ast_expr *vpq_ast_column(vpq_parse_ctx *ctx, const vpq_token *qualifier, vpq_token name);
vpq_ast_expr *vpq_ast_call(vpq_parse_ctx *ctx, vpq_token name, bool distinct, const vpq_ast_exprs *args,
                           vpq_token close);
vpq_ast_expr *vpq_ast_is_null(vpq_parse_ctx *ctx, vpq_ast_expr *expr, bool negated, vpq_token last);
vpq_ast_expr *vpq_ast_case_finish(vpq_ast_expr *cases, vpq_ast_expr *operand, vpq_ast_expr *otherwise,
                                  vpq_token first, vpq_token last);

/* The lemon parser's entry points (generated from vpq_parse.y). */
void *vpqParserAlloc(void *(*malloc_fn)(size_t), vpq_parse_ctx *ctx);
void vpqParser(void *parser, int major, vpq_token minor);
void vpqParserFree(void *parser, void (*free_fn)(void *));

#endif
