/* vpq_parse.y — the lemon grammar of the .vpq language (DESIGN §2).
 *
 * Actions only call the vpq_ast_* constructors (grammar/vpq_ast.h) and the small builders in
 * vpq_ast.c; they never evaluate, look names up or check types. The parser context travels in
 * %extra_context. Syntax errors are recorded in the diagnostics object with the offending
 * token's span; the `error SEMI` rule resynchronises at the next `;`, so that every statement
 * of a file is checked in one run. Lists are built by left recursion, appending in place.
 */

%name vpqParser
%token_prefix TK_
%extra_context {vpq_parse_ctx *ctx}
%token_type {vpq_token}
%default_type {vpq_token}
%start_symbol file

%include {
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "vpq_ast.h"
#include "vpq_ast_build.h"
#include "vpq_lex.h"
}

%syntax_error {
  vpq_ast_syntax_error(ctx, yymajor, TOKEN);
}

%stack_overflow {
  vpq_diag_error(ctx->diag, (vpq_span){0, 0}, "query too deeply nested");
}
%stack_size 1000

/* Keywords that may also be used as names (a column called `key`, `step` or `timestamp`).
 * Words that can follow a relation name (EMIT, USING, MINIMIZE, KEEP, ...) stay reserved:
 * lemon prefers a fallback over a default reduction, so they would be read as an alias. */
%fallback ID ADVANCE BELOW CHANGES COST DAY EVERY FINAL FORECAST GRACE HOPPING HOUR
  KEY KW MILLISECOND MINUTE OUTER PEAK PERIOD PLAN PRIMARY ROLLUP SCHEDULE SECOND
  SESSION SIZE STEP TIMESTAMP TO TUMBLING BOOLEAN BIGINT DOUBLE STRING_TYPE.

%left OR.
%left AND.
%right NOT.
%left IS.
%nonassoc EQ NE LT LE GT GE.
%left PLUS MINUS.
%left STAR SLASH PERCENT.
%right UMINUS.

%type stmt {vpq_ast_stmt *}
%type coldefs {vpq_ast_stmt *}
%type coldef {vpq_ast_coldef}
%type coltype {vpq_ast_coldef}
%type with_opt {vpq_ast_options}
%type options {vpq_ast_options}
%type option {vpq_ast_option}
%type query {vpq_ast_query *}
%type select {vpq_ast_query *}
%type select_head {vpq_ast_query *}
%type select_joins {vpq_ast_query *}
%type items {vpq_ast_query *}
%type item {vpq_ast_select_item}
%type relation {vpq_ast_relation}
%type join {vpq_ast_join}
%type within_opt {vpq_ast_expr *}
%type window_opt {vpq_ast_window}
%type grace_opt {vpq_ast_expr *}
%type where_opt {vpq_ast_expr *}
%type group_opt {vpq_ast_group}
%type having_opt {vpq_ast_expr *}
%type emit_opt {vpq_ast_emit_clause}
%type forecast {vpq_ast_query *}
%type by_opt {vpq_ast_exprs}
%type model_opts {vpq_ast_options}
%type step_opt {vpq_ast_expr *}
%type schedule {vpq_ast_query *}
%type schedule_head {vpq_ast_query *}
%type subject_opt {vpq_ast_exprs}
%type plan_opt {int}
%type expr {vpq_ast_expr *}
%type exprs {vpq_ast_exprs}
%type when_list {vpq_ast_expr *}
%type else_opt {vpq_ast_expr *}
%type unit {int64_t}

/* ===== Statements ===== */

file ::= stmts.
stmts ::= .
stmts ::= stmts stmt_semi.
stmt_semi ::= stmt(S) SEMI. { vpq_ast_file_add(ctx->arena, ctx->file, S); }
stmt_semi ::= SEMI.
stmt_semi ::= error SEMI.

/* stmt -> CREATE STREAM name (cols) [WITH (...)] */
stmt(A) ::= CREATE(K) STREAM name(N) LP coldefs(C) RP(E) with_opt(W).
  { A = vpq_ast_stmt_declare(ctx, C, VPQ_STMT_CREATE_STREAM, N, W, K, E); }
stmt(A) ::= CREATE(K) TABLE name(N) LP coldefs(C) RP(E) with_opt(W).
  { A = vpq_ast_stmt_declare(ctx, C, VPQ_STMT_CREATE_TABLE, N, W, K, E); }
/* stmt -> CREATE STREAM name [WITH (...)] AS query */
stmt(A) ::= CREATE(K) STREAM name(N) with_opt(W) AS query(Q).
  { A = vpq_ast_stmt_derive(ctx, VPQ_STMT_CREATE_STREAM, N, W, Q, K); }
stmt(A) ::= CREATE(K) TABLE name(N) with_opt(W) AS query(Q).
  { A = vpq_ast_stmt_derive(ctx, VPQ_STMT_CREATE_TABLE, N, W, Q, K); }
/* stmt -> INSERT INTO name query */
stmt(A) ::= INSERT(K) INTO name(N) query(Q).
  { A = vpq_ast_stmt_derive(ctx, VPQ_STMT_INSERT_INTO, N, (vpq_ast_options){0}, Q, K); }

coldefs(A) ::= coldef(C). { A = vpq_ast_stmt_new(ctx->arena, VPQ_STMT_CREATE_STREAM, C.span); vpq_ast_stmt_add_col(ctx->arena, A, C); }
coldefs(A) ::= coldefs(A) COMMA coldef(C). { vpq_ast_stmt_add_col(ctx->arena, A, C); }

coldef(A) ::= name(N) coltype(T). { A = vpq_ast_coldef_make(ctx, N, T, 0); }
coldef(A) ::= name(N) coltype(T) KEY. { A = vpq_ast_coldef_make(ctx, N, T, 1); }
coldef(A) ::= name(N) coltype(T) PRIMARY KEY. { A = vpq_ast_coldef_make(ctx, N, T, 2); }

coltype(A) ::= BOOLEAN(T). { A = vpq_ast_coltype(VPQ_AST_TYPE_BOOLEAN, T); }
coltype(A) ::= BIGINT(T). { A = vpq_ast_coltype(VPQ_AST_TYPE_BIGINT, T); }
coltype(A) ::= DOUBLE(T). { A = vpq_ast_coltype(VPQ_AST_TYPE_DOUBLE, T); }
coltype(A) ::= STRING_TYPE(T). { A = vpq_ast_coltype(VPQ_AST_TYPE_STRING, T); }
coltype(A) ::= TIMESTAMP(T). { A = vpq_ast_coltype(VPQ_AST_TYPE_TIMESTAMP, T); }

with_opt(A) ::= . { A = (vpq_ast_options){0}; }
with_opt(A) ::= WITH LP options(O) RP. { A = O; }

options(A) ::= option(O). { A = (vpq_ast_options){0}; vpq_ast_options_add(ctx->arena, &A, O); }
options(A) ::= options(A) COMMA option(O). { vpq_ast_options_add(ctx->arena, &A, O); }

option(A) ::= name(K) EQ expr(V). { A = vpq_ast_option_make(ctx, K, false, V); }
option(A) ::= STRING(K) EQ expr(V). { A = vpq_ast_option_make(ctx, K, true, V); }
option(A) ::= name(K) EQ LP(L) expr(F) COMMA exprs(R) RP(E). { A = vpq_ast_option_make(ctx, K, false, vpq_ast_list(ctx, L, F, &R, E)); }

name(A) ::= ID(A).
name(A) ::= QUOTED(A).

/* ===== Queries ===== */

query(A) ::= select(A).
query(A) ::= forecast(A).
query(A) ::= schedule(A).

/* select -> SELECT items FROM relation join* [WINDOW] [WHERE] [GROUP BY] [HAVING] [EMIT] */
select(A) ::= select_joins(A) window_opt(W) where_opt(X) group_opt(G) having_opt(H) emit_opt(E).
  { vpq_ast_select_finish(ctx, A, W, X, G, H, E); }
select_head(A) ::= SELECT(S) items(I) FROM relation(R). { A = I; vpq_ast_select_from(ctx, A, S, R); }
select_joins(A) ::= select_head(A).
select_joins(A) ::= select_joins(A) join(J). { vpq_ast_select_add_join(ctx->arena, &A->u.select, J); }

items(A) ::= item(I). { A = vpq_ast_query_new(ctx->arena, VPQ_QUERY_SELECT, I.expr->span); vpq_ast_select_add_item(ctx->arena, &A->u.select, I); }
items(A) ::= items(A) COMMA item(I). { vpq_ast_select_add_item(ctx->arena, &A->u.select, I); }

item(A) ::= expr(E). { A = (vpq_ast_select_item){E, NULL, {0, 0}}; }
item(A) ::= expr(E) AS name(N). { A = vpq_ast_item_alias(ctx, E, N); }
item(A) ::= STAR(S). { A = (vpq_ast_select_item){vpq_ast_expr_new(ctx->arena, VPQ_AST_STAR, S.span), NULL, {0, 0}}; }
item(A) ::= name(Q) DOT STAR(S). { A = (vpq_ast_select_item){vpq_ast_star(ctx, Q, S), NULL, {0, 0}}; }

relation(A) ::= name(N). { A = vpq_ast_relation_make(ctx, N, NULL); }
relation(A) ::= name(N) name(L). { A = vpq_ast_relation_make(ctx, N, &L); }
relation(A) ::= name(N) AS name(L). { A = vpq_ast_relation_make(ctx, N, &L); }

/* join -> [LEFT [OUTER] | INNER] JOIN relation [WITHIN interval] ON expr */
join(A) ::= JOIN(K) relation(R) within_opt(W) ON expr(E). { A = vpq_ast_join_make(VPQ_JOIN_INNER, K, R, W, E); }
join(A) ::= INNER(K) JOIN relation(R) within_opt(W) ON expr(E). { A = vpq_ast_join_make(VPQ_JOIN_INNER, K, R, W, E); }
join(A) ::= LEFT(K) JOIN relation(R) within_opt(W) ON expr(E). { A = vpq_ast_join_make(VPQ_JOIN_LEFT, K, R, W, E); }
join(A) ::= LEFT(K) OUTER JOIN relation(R) within_opt(W) ON expr(E). { A = vpq_ast_join_make(VPQ_JOIN_LEFT, K, R, W, E); }

within_opt(A) ::= . { A = NULL; }
within_opt(A) ::= WITHIN expr(E). { A = E; }

/* window -> WINDOW TUMBLING (SIZE i [, GRACE PERIOD g]) | HOPPING (SIZE i, ADVANCE BY a [, ...]) | SESSION (gap [, ...]) */
window_opt(A) ::= . { A = (vpq_ast_window){0}; }
window_opt(A) ::= WINDOW(K) TUMBLING LP SIZE expr(S) grace_opt(G) RP(E).
  { A = vpq_ast_window_make(VPQ_WINDOW_TUMBLING, K, E, S, NULL, NULL, G); }
window_opt(A) ::= WINDOW(K) HOPPING LP SIZE expr(S) COMMA ADVANCE BY expr(V) grace_opt(G) RP(E).
  { A = vpq_ast_window_make(VPQ_WINDOW_HOPPING, K, E, S, V, NULL, G); }
window_opt(A) ::= WINDOW(K) SESSION LP expr(P) grace_opt(G) RP(E).
  { A = vpq_ast_window_make(VPQ_WINDOW_SESSION, K, E, NULL, NULL, P, G); }

grace_opt(A) ::= . { A = NULL; }
grace_opt(A) ::= COMMA GRACE PERIOD expr(E). { A = E; }

where_opt(A) ::= . { A = NULL; }
where_opt(A) ::= WHERE expr(E). { A = E; }

group_opt(A) ::= . { A = (vpq_ast_group){{0}, false, {0, 0}}; }
group_opt(A) ::= GROUP(K) BY exprs(E). { A = (vpq_ast_group){E, false, K.span}; }
group_opt(A) ::= GROUP(K) BY ROLLUP LP exprs(E) RP. { A = (vpq_ast_group){E, true, K.span}; }

having_opt(A) ::= . { A = NULL; }
having_opt(A) ::= HAVING expr(E). { A = E; }

emit_opt(A) ::= . { A = (vpq_ast_emit_clause){VPQ_EMIT_DEFAULT, {0, 0}}; }
emit_opt(A) ::= EMIT(K) FINAL(E). { A = (vpq_ast_emit_clause){VPQ_EMIT_FINAL, vpq_span_join(K.span, E.span)}; }
emit_opt(A) ::= EMIT(K) CHANGES(E). { A = (vpq_ast_emit_clause){VPQ_EMIT_CHANGES, vpq_span_join(K.span, E.span)}; }

/* forecast -> FORECAST expr FROM relation [BY exprs] USING model [(options)] HORIZON i EVERY i [STEP i] */
forecast(A) ::= FORECAST(K) expr(V) FROM relation(R) by_opt(B) USING name(M) model_opts(O)
                HORIZON expr(H) EVERY expr(E) step_opt(S).
  { A = vpq_ast_forecast_make(ctx, K, V, R, B, M, O, H, E, S); }

by_opt(A) ::= . { A = (vpq_ast_exprs){0}; }
by_opt(A) ::= BY exprs(E). { A = E; }
model_opts(A) ::= . { A = (vpq_ast_options){0}; }
model_opts(A) ::= LP options(O) RP. { A = O; }
step_opt(A) ::= . { A = NULL; }
step_opt(A) ::= STEP expr(E). { A = E; }

/* schedule -> SCHEDULE relation FOR relation objective [SUBJECT TO exprs] HORIZON i STEP i [EMIT PLAN] */
schedule(A) ::= schedule_head(A) subject_opt(C) HORIZON expr(H) STEP expr(S) plan_opt(P).
  { vpq_ast_schedule_finish(A, C, H, S, P); }
schedule_head(A) ::= SCHEDULE(K) relation(F) FOR relation(R) MINIMIZE PEAK(E).
  { A = vpq_ast_schedule_make(ctx, K, E.span, F, R, VPQ_OBJECTIVE_MINIMIZE_PEAK, NULL, NULL); }
schedule_head(A) ::= SCHEDULE(K) relation(F) FOR relation(R) KEEP BELOW expr(X) KW(E).
  { A = vpq_ast_schedule_make(ctx, K, E.span, F, R, VPQ_OBJECTIVE_KEEP_BELOW, X, NULL); }
schedule_head(A) ::= SCHEDULE(K) relation(F) FOR relation(R) MINIMIZE COST USING relation(P).
  { A = vpq_ast_schedule_make(ctx, K, P.span, F, R, VPQ_OBJECTIVE_MINIMIZE_COST, NULL, &P); }

subject_opt(A) ::= . { A = (vpq_ast_exprs){0}; }
subject_opt(A) ::= SUBJECT TO exprs(E). { A = E; }
plan_opt(A) ::= . { A = 0; }
plan_opt(A) ::= EMIT PLAN. { A = 1; }

/* ===== Expressions ===== */

exprs(A) ::= expr(E). { A = (vpq_ast_exprs){0}; vpq_ast_exprs_add(ctx->arena, &A, E); }
exprs(A) ::= exprs(A) COMMA expr(E). { vpq_ast_exprs_add(ctx->arena, &A, E); }

expr(A) ::= LP(L) expr(E) RP(R). { A = vpq_ast_paren(E, L, R); }
expr(A) ::= INTEGER(T). { A = vpq_ast_number(ctx, T, false); }
expr(A) ::= FLOAT(T). { A = vpq_ast_number(ctx, T, true); }
expr(A) ::= INTEGER(T) unit(U). [UMINUS] { A = vpq_ast_interval(ctx, T, U, ctx->last_unit); }
expr(A) ::= FLOAT(T) unit(U). [UMINUS] { A = vpq_ast_interval(ctx, T, U, ctx->last_unit); }
expr(A) ::= STRING(T). { A = vpq_ast_string(ctx, T); }
expr(A) ::= TRUE(T). { A = vpq_ast_expr_new(ctx->arena, VPQ_AST_BOOL, T.span); A->ival = 1; }
expr(A) ::= FALSE(T). { A = vpq_ast_expr_new(ctx->arena, VPQ_AST_BOOL, T.span); }
expr(A) ::= NULL(T). { A = vpq_ast_expr_new(ctx->arena, VPQ_AST_NULL, T.span); }
expr(A) ::= name(N). { A = vpq_ast_column(ctx, NULL, N); }
expr(A) ::= name(Q) DOT name(N). { A = vpq_ast_column(ctx, &Q, N); }
expr(A) ::= name(F) LP RP(R). { A = vpq_ast_call(ctx, F, false, NULL, R); }
expr(A) ::= name(F) LP STAR(S) RP(R). { A = vpq_ast_call(ctx, F, false, NULL, R); vpq_ast_expr_add_arg(ctx->arena, A, vpq_ast_expr_new(ctx->arena, VPQ_AST_STAR, S.span)); }
expr(A) ::= name(F) LP exprs(E) RP(R). { A = vpq_ast_call(ctx, F, false, &E, R); }
expr(A) ::= name(F) LP DISTINCT exprs(E) RP(R). { A = vpq_ast_call(ctx, F, true, &E, R); }
expr(A) ::= MINUS(O) expr(E). [UMINUS] { A = vpq_ast_unary(ctx->arena, VPQ_OP_NEG, E, O.span); }
expr(A) ::= PLUS(O) expr(E). [UMINUS] { A = vpq_ast_paren(E, O, O); }
expr(A) ::= NOT(O) expr(E). { A = vpq_ast_unary(ctx->arena, VPQ_OP_NOT, E, O.span); }
expr(A) ::= expr(L) OR expr(R). { A = vpq_ast_binary(ctx->arena, VPQ_OP_OR, L, R); }
expr(A) ::= expr(L) AND expr(R). { A = vpq_ast_binary(ctx->arena, VPQ_OP_AND, L, R); }
expr(A) ::= expr(L) EQ expr(R). { A = vpq_ast_binary(ctx->arena, VPQ_OP_EQ, L, R); }
expr(A) ::= expr(L) NE expr(R). { A = vpq_ast_binary(ctx->arena, VPQ_OP_NE, L, R); }
expr(A) ::= expr(L) LT expr(R). { A = vpq_ast_binary(ctx->arena, VPQ_OP_LT, L, R); }
expr(A) ::= expr(L) LE expr(R). { A = vpq_ast_binary(ctx->arena, VPQ_OP_LE, L, R); }
expr(A) ::= expr(L) GT expr(R). { A = vpq_ast_binary(ctx->arena, VPQ_OP_GT, L, R); }
expr(A) ::= expr(L) GE expr(R). { A = vpq_ast_binary(ctx->arena, VPQ_OP_GE, L, R); }
expr(A) ::= expr(L) PLUS expr(R). { A = vpq_ast_binary(ctx->arena, VPQ_OP_ADD, L, R); }
expr(A) ::= expr(L) MINUS expr(R). { A = vpq_ast_binary(ctx->arena, VPQ_OP_SUB, L, R); }
expr(A) ::= expr(L) STAR expr(R). { A = vpq_ast_binary(ctx->arena, VPQ_OP_MUL, L, R); }
expr(A) ::= expr(L) SLASH expr(R). { A = vpq_ast_binary(ctx->arena, VPQ_OP_DIV, L, R); }
expr(A) ::= expr(L) PERCENT expr(R). { A = vpq_ast_binary(ctx->arena, VPQ_OP_MOD, L, R); }
expr(A) ::= expr(E) IS NULL(T). { A = vpq_ast_is_null(ctx, E, false, T); }
expr(A) ::= expr(E) IS NOT NULL(T). { A = vpq_ast_is_null(ctx, E, true, T); }
expr(A) ::= CASE(K) when_list(W) else_opt(X) END(E). { A = vpq_ast_case_finish(W, NULL, X, K, E); }
expr(A) ::= CASE(K) expr(O) when_list(W) else_opt(X) END(E). { A = vpq_ast_case_finish(W, O, X, K, E); }

when_list(A) ::= WHEN(K) expr(C) THEN expr(V). { A = vpq_ast_expr_new(ctx->arena, VPQ_AST_CASE, K.span); vpq_ast_expr_add_arg(ctx->arena, A, C); vpq_ast_expr_add_arg(ctx->arena, A, V); }
when_list(A) ::= when_list(A) WHEN expr(C) THEN expr(V). { vpq_ast_expr_add_arg(ctx->arena, A, C); vpq_ast_expr_add_arg(ctx->arena, A, V); }
else_opt(A) ::= . { A = NULL; }
else_opt(A) ::= ELSE expr(E). { A = E; }

unit(A) ::= MILLISECOND(T). { A = 1; ctx->last_unit = T.span; }
unit(A) ::= SECOND(T). { A = 1000; ctx->last_unit = T.span; }
unit(A) ::= MINUTE(T). { A = 60000; ctx->last_unit = T.span; }
unit(A) ::= HOUR(T). { A = 3600000; ctx->last_unit = T.span; }
unit(A) ::= DAY(T). { A = 86400000; ctx->last_unit = T.span; }
