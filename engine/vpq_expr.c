/* vpq_expr.c — the expression compiler and vector VM (vpq_expr.h).
 *
 * A bound expression tree compiles once into a flat program: an array of instructions, each
 * writing one register from the registers of its operands. A register is a vector of the
 * batch's length (data + null mask). Column references are registers that alias the batch's
 * own vectors, so reading a column costs nothing. Constants are registers filled once per
 * evaluation. Instructions are specialised by type at compile time (ADD on int64, ADD on
 * double, ...), and each runs one tight loop over all rows: there is no per-row dispatch.
 *
 * NULLs flow through the null masks: arithmetic and comparisons OR their operands' masks;
 * AND/OR implement three-valued logic; CASE, COALESCE, LEAST/GREATEST pick per row. Results
 * for NULL rows are computed anyway (on whatever the data holds) and masked, which keeps the
 * loops branch-free; division guards its divisor so that no row can fault.
 *
 * Constant folding: an instruction whose operands are all constants is executed once at
 * compile time on a one-row vector and becomes a constant itself.
 */
#include "vpq_expr.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpq_dtoa.h"

typedef enum expr_opcode {
  OP_CONST,
  OP_COLUMN,
  OP_NEG_I, OP_NEG_D, OP_NOT,
  OP_ADD_I, OP_SUB_I, OP_MUL_I, OP_DIV_I, OP_MOD_I,
  OP_ADD_D, OP_SUB_D, OP_MUL_D, OP_DIV_D, OP_MOD_D,
  OP_CMP_I, OP_CMP_D, OP_CMP_S,
  OP_AND, OP_OR,
  OP_I2D, OP_D2I, OP_D2I_EXACT, OP_COPY,
  OP_ABS_I, OP_ABS_D, OP_ROUND_D, OP_ROUND_I,
  OP_COALESCE, OP_LEAST_I, OP_LEAST_D, OP_LEAST_S, OP_GREATEST_I, OP_GREATEST_D, OP_GREATEST_S,
  OP_CASE,
  OP_IS_NULL,
} expr_opcode;

typedef struct expr_instr {
  expr_opcode op;
  vpq_type type;   /* result type */
  vpq_ast_op cmp;  /* comparisons */
  bool negated;    /* IS NOT NULL */
  int dst;
  int *src;
  int nsrc;
  int column;      /* OP_COLUMN */
  vpq_datum value; /* OP_CONST */
  bool is_null;    /* OP_CONST */
} expr_instr;

struct vpq_program {
  expr_instr *code;
  int ncode, cap;
  int nregs;
  int result;
  vpq_type type;
  const vpq_intern *intern;
  vpq_vec *fold_regs; /* fold's registers, one per register of the program so far */
  int fold_cap;
};

/* ===== Execution ===== */

static int cmp_result(vpq_ast_op op, int c) {
  switch (op) {
  case VPQ_OP_EQ: return c == 0;
  case VPQ_OP_NE: return c != 0;
  case VPQ_OP_LT: return c < 0;
  case VPQ_OP_LE: return c <= 0;
  case VPQ_OP_GT: return c > 0;
  default: return c >= 0;
  }
}

/* round(x, digits), half away from zero for x as it is written: on the decimal digits of x's
 * shortest round-trip text (vpq_dtoa.h), so round(0.285, 2) = 0.29 (x·100 would be
 * 28.499999999999996) and round(0.049999999999999996, 1) = 0.0, whatever the digits (round(0.05,
 * -400) = 0.0, round(6e22, -23) = 1e+23). A zero result has no sign. */
static double round_half_away(double x, int64_t digits) {
  if (!isfinite(x) || x == 0) return x + 0.0;
  char text[VPQ_DTOA_SIZE], kept[VPQ_DTOA_SIZE + 32];
  vpq_dtoa_double(text, x);
  /* x = 0.D × 10^point, D its significant digits */
  char sig[VPQ_DTOA_SIZE];
  int nsig = 0, point = 0;
  bool seen_point = false;
  const char *c = text + (text[0] == '-');
  for (; *c && *c != 'e'; c++) {
    if (*c == '.') {
      seen_point = true;
    } else if (nsig == 0 && *c == '0') {
      if (seen_point) point--;
    } else {
      sig[nsig++] = *c;
      if (!seen_point) point++;
    }
  }
  if (*c == 'e') point += atoi(c + 1);
  while (nsig > 1 && sig[nsig - 1] == '0') nsig--;
  /* keep the first `keep` digits of D */
  const int64_t keep = digits > 400 ? 400 : digits < -400 ? -400 : (int64_t)point + digits;
  if (keep >= nsig) return x;
  if (keep < 0) return 0.0;
  int n = (int)keep;
  bool up = sig[n] >= '5';
  for (int i = n - 1; up && i >= 0; i--) {
    if (sig[i] == '9') {
      sig[i] = '0';
    } else {
      sig[i]++;
      up = false;
    }
  }
  if (up) { /* 99.. became 100..: one more digit */
    memmove(sig + 1, sig, (size_t)n);
    sig[0] = '1';
    n++;
    point++;
  }
  if (n == 0) return 0.0;
  snprintf(kept, sizeof kept, "%s0.%.*se%d", x < 0 ? "-" : "", n, sig, point);
  return strtod(kept, NULL) + 0.0;
}

/* round(x, digits) of a BIGINT: digits ≥ 0 keep x; below, half away from zero at 10^-digits,
 * wrapping as BIGINT arithmetic does when the result leaves the range (round(9.5e18, -19) is
 * 10^19 − 2^64). */
static int64_t round_bigint(int64_t x, int64_t digits) {
  if (digits >= 0) return x;
  if (digits < -19) return 0;
  uint64_t scale = 1;
  for (int64_t k = 0; k < -digits; k++) scale *= 10;
  const uint64_t magnitude = x < 0 ? 0u - (uint64_t)x : (uint64_t)x;
  uint64_t q = magnitude / scale;
  if (magnitude % scale >= scale - magnitude % scale) q++;
  const uint64_t r = q * scale;
  return (int64_t)(x < 0 ? 0u - r : r);
}

static void exec_instr(const vpq_program *p, const expr_instr *in, const vpq_vec *r, vpq_vec *d, int n) {
  const vpq_vec *a = in->nsrc > 0 ? &r[in->src[0]] : NULL;
  const vpq_vec *b = in->nsrc > 1 ? &r[in->src[1]] : NULL;
  switch (in->op) {
  case OP_CONST:
    for (int i = 0; i < n; i++) {
      d->data[i] = in->value;
      d->null[i] = in->is_null;
    }
    break;
  case OP_COLUMN:
    break;
  case OP_NEG_I:
    for (int i = 0; i < n; i++) {
      d->data[i].i = (int64_t)(0u - (uint64_t)a->data[i].i);
      d->null[i] = a->null[i];
    }
    break;
  case OP_NEG_D:
    for (int i = 0; i < n; i++) {
      d->data[i].d = -a->data[i].d;
      d->null[i] = a->null[i];
    }
    break;
  case OP_NOT:
    for (int i = 0; i < n; i++) {
      d->data[i].i = !a->data[i].i;
      d->null[i] = a->null[i];
    }
    break;
#define ARITH_I(OPC, EXPR)                                                  \
  case OPC:                                                                 \
    for (int i = 0; i < n; i++) {                                           \
      uint64_t x = (uint64_t)a->data[i].i, y = (uint64_t)b->data[i].i;      \
      d->data[i].i = (int64_t)(EXPR);                                       \
      d->null[i] = a->null[i] | b->null[i];                                 \
    }                                                                       \
    break;
    ARITH_I(OP_ADD_I, x + y)
    ARITH_I(OP_SUB_I, x - y)
    ARITH_I(OP_MUL_I, x * y)
#undef ARITH_I
  case OP_DIV_I:
  case OP_MOD_I:
    for (int i = 0; i < n; i++) {
      int64_t x = a->data[i].i, y = b->data[i].i;
      bool bad = y == 0 || (y == -1 && x == INT64_MIN);
      int64_t safe = bad ? 1 : y;
      d->data[i].i = in->op == OP_DIV_I ? x / safe : x % safe;
      if (bad && y == -1) d->data[i].i = in->op == OP_DIV_I ? x : 0;
      d->null[i] = a->null[i] | b->null[i] | (y == 0);
    }
    break;
#define ARITH_D(OPC, EXPR)                                                  \
  case OPC:                                                                 \
    for (int i = 0; i < n; i++) {                                           \
      double x = a->data[i].d, y = b->data[i].d;                            \
      d->data[i].d = (EXPR);                                                \
      d->null[i] = a->null[i] | b->null[i];                                 \
    }                                                                       \
    break;
    ARITH_D(OP_ADD_D, x + y)
    ARITH_D(OP_SUB_D, x - y)
    ARITH_D(OP_MUL_D, x * y)
#undef ARITH_D
  case OP_DIV_D:
  case OP_MOD_D:
    for (int i = 0; i < n; i++) {
      double x = a->data[i].d, y = b->data[i].d;
      d->data[i].d = y == 0 ? 0 : (in->op == OP_DIV_D ? x / y : fmod(x, y));
      d->null[i] = a->null[i] | b->null[i] | (y == 0);
    }
    break;
  case OP_CMP_I:
    for (int i = 0; i < n; i++) {
      int64_t x = a->data[i].i, y = b->data[i].i;
      d->data[i].i = cmp_result(in->cmp, (x > y) - (x < y));
      d->null[i] = a->null[i] | b->null[i];
    }
    break;
  case OP_CMP_D:
    for (int i = 0; i < n; i++) {
      double x = a->data[i].d, y = b->data[i].d;
      int c = (x > y) - (x < y);
      bool unordered = isnan(x) || isnan(y);
      d->data[i].i = unordered ? in->cmp == VPQ_OP_NE : cmp_result(in->cmp, c);
      d->null[i] = a->null[i] | b->null[i];
    }
    break;
  case OP_CMP_S:
    for (int i = 0; i < n; i++) {
      int64_t x = a->data[i].i, y = b->data[i].i;
      int c;
      if (in->cmp == VPQ_OP_EQ || in->cmp == VPQ_OP_NE || a->null[i] || b->null[i]) c = x != y;
      else c = vpq_intern_compare(p->intern, x, y);
      d->data[i].i = cmp_result(in->cmp, c);
      d->null[i] = a->null[i] | b->null[i];
    }
    break;
  case OP_AND:
    for (int i = 0; i < n; i++) {
      bool xf = !a->null[i] && !a->data[i].i, yf = !b->null[i] && !b->data[i].i;
      d->data[i].i = !(xf || yf) && a->data[i].i && b->data[i].i;
      d->null[i] = !(xf || yf) && (a->null[i] | b->null[i]);
    }
    break;
  case OP_OR:
    for (int i = 0; i < n; i++) {
      bool xt = !a->null[i] && a->data[i].i, yt = !b->null[i] && b->data[i].i;
      d->data[i].i = xt || yt;
      d->null[i] = !(xt || yt) && (a->null[i] | b->null[i]);
    }
    break;
  case OP_I2D:
    for (int i = 0; i < n; i++) {
      d->data[i].d = (double)a->data[i].i;
      d->null[i] = a->null[i];
    }
    break;
  case OP_D2I:
    for (int i = 0; i < n; i++) {
      double x = a->data[i].d;
      bool ok = x >= -9.2233720368547758e18 && x < 9.2233720368547758e18;
      d->data[i].i = ok ? (int64_t)x : 0;
      d->null[i] = a->null[i] | !ok;
    }
    break;
  case OP_D2I_EXACT:
    for (int i = 0; i < n; i++) {
      double x = a->data[i].d;
      bool ok = x >= -9.2233720368547758e18 && x < 9.2233720368547758e18 && x == trunc(x);
      d->data[i].i = ok ? (int64_t)x : 0;
      d->null[i] = a->null[i] | !ok;
    }
    break;
  case OP_COPY:
    memcpy(d->data, a->data, sizeof *d->data * (size_t)n);
    memcpy(d->null, a->null, (size_t)n);
    break;
  case OP_ABS_I:
    for (int i = 0; i < n; i++) {
      int64_t x = a->data[i].i;
      d->data[i].i = x < 0 ? (int64_t)(0u - (uint64_t)x) : x;
      d->null[i] = a->null[i];
    }
    break;
  case OP_ABS_D:
    for (int i = 0; i < n; i++) {
      d->data[i].d = fabs(a->data[i].d);
      d->null[i] = a->null[i];
    }
    break;
  case OP_ROUND_D:
    for (int i = 0; i < n; i++) {
      d->data[i].d = round_half_away(a->data[i].d, b ? b->data[i].i : 0);
      d->null[i] = a->null[i] | (b ? b->null[i] : 0);
    }
    break;
  case OP_ROUND_I:
    for (int i = 0; i < n; i++) {
      d->data[i].i = round_bigint(a->data[i].i, b ? b->data[i].i : 0);
      d->null[i] = a->null[i] | (b ? b->null[i] : 0);
    }
    break;
  case OP_COALESCE:
    for (int i = 0; i < n; i++) {
      d->null[i] = 1;
      d->data[i].i = 0;
      for (int k = 0; k < in->nsrc; k++) {
        const vpq_vec *v = &r[in->src[k]];
        if (!v->null[i]) {
          d->data[i] = v->data[i];
          d->null[i] = 0;
          break;
        }
      }
    }
    break;
  case OP_LEAST_I: case OP_LEAST_D: case OP_LEAST_S:
  case OP_GREATEST_I: case OP_GREATEST_D: case OP_GREATEST_S: {
    bool least = in->op == OP_LEAST_I || in->op == OP_LEAST_D || in->op == OP_LEAST_S;
    for (int i = 0; i < n; i++) {
      d->null[i] = 1;
      d->data[i].i = 0;
      for (int k = 0; k < in->nsrc; k++) {
        const vpq_vec *v = &r[in->src[k]];
        if (v->null[i]) continue;
        int c;
        if (d->null[i]) {
          c = least ? -1 : 1;
        } else if (in->op == OP_LEAST_D || in->op == OP_GREATEST_D) {
          c = vpq_double_compare(v->data[i].d, d->data[i].d);
        } else if (in->op == OP_LEAST_S || in->op == OP_GREATEST_S) {
          c = vpq_intern_compare(p->intern, v->data[i].i, d->data[i].i);
        } else {
          c = (v->data[i].i > d->data[i].i) - (v->data[i].i < d->data[i].i);
        }
        if ((least && c < 0) || (!least && c > 0)) {
          d->data[i] = v->data[i];
          d->null[i] = 0;
        }
      }
    }
    break;
  }
  case OP_CASE:
    for (int i = 0; i < n; i++) {
      const vpq_vec *pick = &r[in->src[in->nsrc - 1]];
      for (int k = 0; k + 1 < in->nsrc; k += 2) {
        const vpq_vec *cond = &r[in->src[k]];
        if (!cond->null[i] && cond->data[i].i) {
          pick = &r[in->src[k + 1]];
          break;
        }
      }
      d->data[i] = pick->data[i];
      d->null[i] = pick->null[i];
    }
    break;
  case OP_IS_NULL:
    for (int i = 0; i < n; i++) {
      d->data[i].i = in->negated ? !a->null[i] : a->null[i];
      d->null[i] = 0;
    }
    break;
  }
}

/* ===== Compilation ===== */

static int emit(vpq_arena *arena, vpq_program *p, expr_instr in) {
  p->code = vpq_arena_grow(arena, p->code, sizeof *p->code, &p->cap, p->ncode + 1);
  in.dst = p->nregs++;
  p->code[p->ncode++] = in;
  return in.dst;
}

static int emit_const(vpq_arena *arena, vpq_program *p, vpq_type type, vpq_datum value, bool is_null) {
  return emit(arena, p, (expr_instr){.op = OP_CONST, .type = type, .value = value, .is_null = is_null});
}

/* Folds the last instruction into a constant when all its operands are constants. Register r
 * is instruction r's result (emit), and only the operands' registers are filled, so a fold costs
 * the instruction's operands, not the program's length. */
static int fold(vpq_arena *arena, vpq_program *p, int reg) {
  expr_instr *in = &p->code[p->ncode - 1];
  if (in->op == OP_CONST || in->op == OP_COLUMN) return reg;
  for (int k = 0; k < in->nsrc; k++)
    if (p->code[in->src[k]].op != OP_CONST) return reg;
  p->fold_regs = vpq_arena_grow(arena, p->fold_regs, sizeof *p->fold_regs, &p->fold_cap, p->nregs);
  vpq_vec *regs = p->fold_regs;
  vpq_datum *data = vpq_arena_alloc(arena, sizeof *data * (size_t)(in->nsrc + 1));
  uint8_t *null = vpq_arena_alloc(arena, (size_t)in->nsrc + 1);
  for (int k = 0; k < in->nsrc; k++) {
    const int c = in->src[k];
    regs[c].data = &data[k];
    regs[c].null = &null[k];
    exec_instr(p, &p->code[c], regs, &regs[c], 1);
  }
  regs[reg].data = &data[in->nsrc];
  regs[reg].null = &null[in->nsrc];
  exec_instr(p, in, regs, &regs[reg], 1);
  in->op = OP_CONST;
  in->value = regs[reg].data[0];
  in->is_null = regs[reg].null[0];
  in->nsrc = 0;
  return reg;
}

static bool int_backed(vpq_type t) { return t != VPQ_TYPE_DOUBLE; }

static int compile_node(vpq_arena *arena, vpq_program *p, const vpq_bexpr *e);

/* Emits int64 → double for register `reg`. */
static int widen(vpq_arena *arena, vpq_program *p, int reg) {
  int *one = vpq_arena_alloc(arena, sizeof *one);
  *one = reg;
  return fold(arena, p, emit(arena, p, (expr_instr){.op = OP_I2D, .type = VPQ_TYPE_DOUBLE, .src = one, .nsrc = 1}));
}

static int *compile_args(vpq_arena *arena, vpq_program *p, const vpq_bexpr *e) {
  int *src = vpq_arena_alloc(arena, sizeof *src * (size_t)(e->nargs + 1));
  for (int k = 0; k < e->nargs; k++) src[k] = compile_node(arena, p, e->args[k]);
  return src;
}

static expr_opcode binary_opcode(const vpq_bexpr *e) {
  vpq_type lt = e->args[0]->type, rt = e->args[1]->type;
  bool dbl = lt == VPQ_TYPE_DOUBLE || rt == VPQ_TYPE_DOUBLE;
  switch (e->op) {
  case VPQ_OP_ADD: return dbl ? OP_ADD_D : OP_ADD_I;
  case VPQ_OP_SUB: return dbl ? OP_SUB_D : OP_SUB_I;
  case VPQ_OP_MUL: return dbl ? OP_MUL_D : OP_MUL_I;
  case VPQ_OP_DIV: return dbl ? OP_DIV_D : OP_DIV_I;
  case VPQ_OP_MOD: return dbl ? OP_MOD_D : OP_MOD_I;
  case VPQ_OP_AND: return OP_AND;
  case VPQ_OP_OR: return OP_OR;
  default:
    if (lt == VPQ_TYPE_STRING || rt == VPQ_TYPE_STRING) return OP_CMP_S;
    return dbl ? OP_CMP_D : OP_CMP_I;
  }
}

static int compile_node(vpq_arena *arena, vpq_program *p, const vpq_bexpr *e) {
  expr_instr in = {.type = e->type};
  switch (e->kind) {
  case VPQ_BEXPR_CONST:
    return emit_const(arena, p, e->type, e->value, e->is_null);
  case VPQ_BEXPR_COLUMN:
    return emit(arena, p, (expr_instr){.op = OP_COLUMN, .type = e->type, .column = e->column});
  case VPQ_BEXPR_UNARY:
    in.src = compile_args(arena, p, e);
    in.nsrc = 1;
    in.op = e->op == VPQ_OP_NOT ? OP_NOT : (e->args[0]->type == VPQ_TYPE_DOUBLE ? OP_NEG_D : OP_NEG_I);
    break;
  case VPQ_BEXPR_BINARY: {
    in.src = compile_args(arena, p, e);
    in.nsrc = 2;
    in.op = binary_opcode(e);
    in.cmp = e->op;
    if ((in.op >= OP_ADD_D && in.op <= OP_MOD_D) || in.op == OP_CMP_D) {
      /* Mixed int64/double operands (the analyzer normally casts): widen here. */
      for (int k = 0; k < 2; k++)
        if (int_backed(e->args[k]->type)) in.src[k] = widen(arena, p, in.src[k]);
    }
    break;
  }
  case VPQ_BEXPR_CAST: {
    in.src = compile_args(arena, p, e);
    in.nsrc = 1;
    vpq_type from = e->args[0]->type;
    if (e->type == VPQ_TYPE_DOUBLE && from != VPQ_TYPE_DOUBLE) in.op = OP_I2D;
    else if (e->type != VPQ_TYPE_DOUBLE && from == VPQ_TYPE_DOUBLE) in.op = e->exact ? OP_D2I_EXACT : OP_D2I;
    else in.op = OP_COPY;
    break;
  }
  case VPQ_BEXPR_FUNC: {
    in.src = compile_args(arena, p, e);
    in.nsrc = e->nargs;
    bool dbl = e->type == VPQ_TYPE_DOUBLE, str = e->type == VPQ_TYPE_STRING;
    switch (e->func) {
    case VPQ_FUNC_COALESCE: in.op = OP_COALESCE; break;
    case VPQ_FUNC_ABS: in.op = dbl ? OP_ABS_D : OP_ABS_I; break;
    case VPQ_FUNC_ROUND: in.op = e->args[0]->type == VPQ_TYPE_DOUBLE ? OP_ROUND_D : OP_ROUND_I; break;
    case VPQ_FUNC_LEAST: in.op = dbl ? OP_LEAST_D : (str ? OP_LEAST_S : OP_LEAST_I); break;
    case VPQ_FUNC_GREATEST: in.op = dbl ? OP_GREATEST_D : (str ? OP_GREATEST_S : OP_GREATEST_I); break;
    }
    break;
  }
  case VPQ_BEXPR_CASE:
    in.src = compile_args(arena, p, e);
    in.nsrc = e->nargs;
    in.op = OP_CASE;
    break;
  case VPQ_BEXPR_IS_NULL:
    in.src = compile_args(arena, p, e);
    in.nsrc = 1;
    in.op = OP_IS_NULL;
    in.negated = e->negated;
    break;
  }
  return fold(arena, p, emit(arena, p, in));
}

vpq_program *vpq_expr_compile(vpq_arena *arena, const vpq_bexpr *expr, const vpq_intern *intern) {
  vpq_program *p = vpq_arena_alloc(arena, sizeof *p);
  p->intern = intern;
  p->type = expr->type;
  p->result = compile_node(arena, p, expr);
  return p;
}


/* Runs every instruction; returns the registers (the result is regs[program->result]). */
static vpq_vec *run(const vpq_program *p, const vpq_batch *in, vpq_arena *scratch) {
  int n = in->n;
  vpq_vec *regs = vpq_arena_alloc(scratch, sizeof *regs * (size_t)(p->nregs + 1));
  for (int c = 0; c < p->ncode; c++) {
    const expr_instr *instr = &p->code[c];
    vpq_vec *d = &regs[instr->dst];
    d->type = instr->type;
    if (instr->op == OP_COLUMN) {
      *d = in->cols[instr->column];
      continue;
    }
    d->data = vpq_arena_alloc(scratch, sizeof(vpq_datum) * (size_t)(n ? n : 1));
    d->null = vpq_arena_alloc(scratch, (size_t)(n ? n : 1));
    exec_instr(p, instr, regs, d, n);
  }
  return regs;
}

void vpq_program_eval(const vpq_program *program, const vpq_batch *in, vpq_vec *out, vpq_arena *scratch) {
  vpq_vec *regs = run(program, in, scratch);
  const vpq_vec *result = &regs[program->result];
  memcpy(out->data, result->data, sizeof *out->data * (size_t)in->n);
  memcpy(out->null, result->null, (size_t)in->n);
  out->type = program->type;
}

int vpq_program_select(const vpq_program *program, const vpq_batch *in, int *sel, vpq_arena *scratch) {
  vpq_vec *regs = run(program, in, scratch);
  const vpq_vec *result = &regs[program->result];
  int n = 0;
  for (int i = 0; i < in->n; i++) {
    sel[n] = i;
    n += !result->null[i] && result->data[i].i;
  }
  return n;
}
