/* vpq_expr.h — the expression compiler and vector VM.
 *
 * A bound expression tree (vpq_plan.h) compiles once into a flat program of register
 * instructions; each instruction runs over a whole batch's vectors (data + null mask), so
 * per-row cost is a tight loop, never a tree walk. Constants are folded at compile time.
 *
 * SQL semantics: arithmetic and comparisons with a NULL operand give NULL; AND/OR use
 * three-valued logic; integer division truncates and x / 0 or x % 0 give NULL; CASE picks
 * the first WHEN that is TRUE (NULL counts as not true); string comparisons are byte-wise.
 */
#ifndef VPQ_EXPR_H
#define VPQ_EXPR_H

#include "vpq_arena.h"
#include "vpq_batch.h"
#include "vpq_intern.h"
#include "vpq_plan.h"

typedef struct vpq_program vpq_program;

/* Compiles `expr` into a program allocated in `arena` (the query's arena). The program reads
 * the columns of the batch it is run over by the indexes in the expression. */
vpq_program *vpq_expr_compile(vpq_arena *arena, const vpq_bexpr *expr, const vpq_intern *intern);

/* Evaluates the program over the first `in->n` rows of `in` and writes the results into
 * `out` (which must have room for in->n rows; out->type is set). Scratch registers come
 * from `scratch`, an arena the caller resets between batches. */
void vpq_program_eval(const vpq_program *program, const vpq_batch *in, vpq_vec *out,
                      vpq_arena *scratch);

/* Evaluates a predicate and writes into `sel` the indexes of the rows where it is TRUE (not
 * FALSE, not NULL); returns how many. */
int vpq_program_select(const vpq_program *program, const vpq_batch *in, int *sel,
                       vpq_arena *scratch);

#endif
