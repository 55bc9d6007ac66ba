/* vpq_sched_lp.c — the LP of the peak objectives over classes of batteries, solved with GLPK
 * (vpq_sched_int.h).
 *
 * One LP battery per class: its capacity, power and stored energy are the class's sums, its
 * energy bounds the sums of the members' (widened) bounds. When the members share the class's
 * efficiency, any plan of the members adds up to a plan of that battery, so the LP is a
 * relaxation of the model of vpq_sched.h: its optimum is a bound no fleet plan beats (a class of
 * mixed efficiencies has the power limits and efficiency that vpq_sched_int.h's vpq_sched_class
 * and vpq_sched.c's make_class describe). vpq_sched.c turns it into a fleet plan (vpq_sched_fill.c) and, where
 * that fails, adds the cuts this file appends (vpq_sched_lp_add_cuts).
 *
 * Columns c, d, e of class k at step t, then the peak column P; rows: one energy balance per
 * class and step, then one peak row per step, then the cuts' rows. All 1-based for GLPK.
 *
 * Why the simplex: it stops at a basis that is primal and dual feasible, a certificate that no
 * better plan exists. The lexicographic objective takes two solves on the same LP: the primary
 * objective, then the least throughput with the primary held at its optimum (the second solve
 * starts from the first one's optimal basis). Cuts keep the basis dual feasible (a new row is
 * basic, a new column has no cost), and so do the bounds vpq_sched_lp_hold puts on a class's
 * earlier steps (at their current values): the dual simplex re-optimises from the basis in a few
 * pivots. With 6 classes × 96 steps, the first solve takes ~400 pivots, each cut round ~20.
 */
#include <glpk.h>
#include <math.h>
#include <stdlib.h>

#include "vpq_sched_int.h"

enum { COL_C, COL_D, COL_E };

struct vpq_sched_lp {
  glp_prob *glp;
  const vpq_sched_problem *pr;
  int nclasses;
  double *eff;    /* per class, for the cuts' coefficients */
  double power;   /* the classes' discharge power in all (kW): MIN_PEAK's tie-break slack */
  double optimum; /* the primary objective's optimum at the last lexicographic solve */
  bool weighted;  /* one stage: the primary objective weighted, plus the throughput (vpq_sched_lp_weigh) */
  bool single_row_cuts; /* cuts are append_subset_cut's (vpq_sched_lp_weigh) */
};

static int col(int nsteps, int k, int t, int which) { return 1 + 3 * (k * nsteps + t) + which; }

static int peak_col(const vpq_sched_lp *lp) { return 3 * lp->nclasses * lp->pr->nsteps + 1; }

/* The LP over the classes with the primary objective set; false when out of memory. */
static bool build(vpq_sched_lp *lp, const vpq_sched_class *classes) {
  const vpq_sched_problem *pr = lp->pr;
  const int T = pr->nsteps, n = lp->nclasses;
  const double dt = pr->step_hours;
  const int prow0 = n * T + 1;
  const size_t nz = (size_t)n * (size_t)T * 6 + (size_t)T;
  int *ia = malloc((nz + 1) * sizeof *ia), *ja = malloc((nz + 1) * sizeof *ja);
  double *ar = malloc((nz + 1) * sizeof *ar);
  if (!ia || !ja || !ar) {
    free(ia), free(ja), free(ar);
    return false;
  }
  glp_prob *glp = lp->glp = glp_create_prob();
  glp_set_obj_dir(glp, GLP_MIN);
  glp_add_cols(glp, 3 * n * T + 1);
  glp_add_rows(glp, n * T + T);
  int k = 0;
  for (int u = 0; u < n; u++) {
    const vpq_sched_class *cl = &classes[u];
    const double lo = cl->lo_kwh, hi = cl->hi_kwh, e0 = cl->e0;
    lp->power += cl->discharge_kw;
    for (int t = 0; t < T; t++) {
      const int c = col(T, u, t, COL_C), d = col(T, u, t, COL_D), e = col(T, u, t, COL_E);
      const int row = 1 + u * T + t;
      glp_set_col_bnds(glp, c, GLP_DB, 0, cl->charge_kw);
      glp_set_col_bnds(glp, d, GLP_DB, 0, cl->discharge_kw);
      glp_set_col_bnds(glp, e, lo < hi ? GLP_DB : GLP_FX, lo, hi);
      /* e_t − e_{t−1} − eff·Δt·c + Δt/eff·d = 0, with e_{−1} = e0 on the right */
      glp_set_row_bnds(glp, row, GLP_FX, t == 0 ? e0 : 0, t == 0 ? e0 : 0);
      ia[++k] = row, ja[k] = e, ar[k] = 1;
      if (t > 0) ia[++k] = row, ja[k] = e - 3, ar[k] = -1;
      ia[++k] = row, ja[k] = c, ar[k] = -cl->eff * dt;
      ia[++k] = row, ja[k] = d, ar[k] = dt / cl->eff;
      ia[++k] = prow0 + t, ja[k] = d, ar[k] = 1;
      ia[++k] = prow0 + t, ja[k] = c, ar[k] = -1;
    }
  }
  /* load_t − Σ (d − c) ≤ P (MIN_PEAK), ≤ cap + s (KEEP_BELOW, P = s ≥ 0) */
  const bool below = pr->objective == VPQ_SCHED_KEEP_BELOW;
  const int pcol = peak_col(lp);
  glp_set_col_bnds(glp, pcol, below ? GLP_LO : GLP_FR, 0, 0);
  glp_set_obj_coef(glp, pcol, 1);
  for (int t = 0; t < T; t++) {
    glp_set_row_bnds(glp, prow0 + t, GLP_LO, pr->load[t] - (below ? pr->cap_kw : 0), 0);
    ia[++k] = prow0 + t, ja[k] = pcol, ar[k] = 1;
  }
  glp_load_matrix(glp, k, ia, ja, ar);
  free(ia), free(ja), free(ar);
  glp_scale_prob(glp, GLP_SF_AUTO);
  return true;
}

/* The idle plan as the starting basis: every e basic (the energy balances then fix it at e0),
 * every c and d nonbasic at 0, and P basic at the highest load, whose peak row is the one
 * nonbasic row (KEEP_BELOW with all loads under the cap: s nonbasic at 0 instead). The basis
 * matrix is triangular, so it is a valid basis, and it is primal feasible: the simplex starts
 * straight in phase 2. */
static void start_idle(vpq_sched_lp *lp) {
  const vpq_sched_problem *pr = lp->pr;
  const int T = pr->nsteps;
  for (int u = 0; u < lp->nclasses; u++)
    for (int t = 0; t < T; t++) {
      glp_set_col_stat(lp->glp, col(T, u, t, COL_C), GLP_NL);
      glp_set_col_stat(lp->glp, col(T, u, t, COL_D), GLP_NL);
      glp_set_col_stat(lp->glp, col(T, u, t, COL_E), GLP_BS);
      glp_set_row_stat(lp->glp, 1 + u * T + t, GLP_NS);
    }
  int top = 0;
  for (int t = 1; t < T; t++)
    if (pr->load[t] > pr->load[top]) top = t;
  const bool binding = pr->objective == VPQ_SCHED_MIN_PEAK || pr->load[top] > pr->cap_kw;
  glp_set_col_stat(lp->glp, peak_col(lp), binding ? GLP_BS : GLP_NL);
  for (int t = 0; t < T; t++)
    glp_set_row_stat(lp->glp, lp->nclasses * T + 1 + t, binding && t == top ? GLP_NL : GLP_BS);
}

/* The simplex from the LP's current basis, primal or dual. No presolve: it would throw the
 * basis away, and from the idle basis (then from the previous optimum) the simplex is faster
 * than with GLPK's presolver and its own starting basis on these LPs. */
static bool solved(vpq_sched_lp *lp, int method) {
  glp_smcp parm;
  glp_init_smcp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  parm.meth = method;
  return glp_simplex(lp->glp, &parm) == 0 && glp_get_status(lp->glp) == GLP_OPT;
}

/* The primary objective: the peak (MIN_PEAK) or the excess s over the cap (KEEP_BELOW), free of
 * any bound from an earlier tie-break. */
static void primary(vpq_sched_lp *lp) {
  const int T = lp->pr->nsteps;
  glp_set_col_bnds(lp->glp, peak_col(lp), lp->pr->objective == VPQ_SCHED_KEEP_BELOW ? GLP_LO : GLP_FR, 0, 0);
  glp_set_obj_coef(lp->glp, peak_col(lp), 1);
  for (int u = 0; u < lp->nclasses; u++)
    for (int t = 0; t < T; t++) {
      glp_set_obj_coef(lp->glp, col(T, u, t, COL_C), 0);
      glp_set_obj_coef(lp->glp, col(T, u, t, COL_D), 0);
    }
}

/* Holds the primary objective at its optimum z (within 1e-7 relative, 1e-6 absolute) and makes
 * the throughput Σ (c + d)·Δt the objective. MIN_PEAK's slack is 1e-7 of the fleet's discharge
 * power, what its batteries can move the peak by, not of the peak, so that it does not grow
 * with the load's size (1e-7 of a 30 GW peak is 3 kW; the bench's fleets, about 50-80 MW
 * under a 46 MW peak, get about what 1e-7 of the peak gave them, which a tighter slack made
 * slower to certify). KEEP_BELOW's excess s gets no absolute slack: a cap that can be met stays
 * met (1e-6 more would put the peak right on cap_met's threshold). */
static void tie_break(vpq_sched_lp *lp, double z) {
  const vpq_sched_problem *pr = lp->pr;
  const int T = pr->nsteps;
  const double scale = pr->objective == VPQ_SCHED_MIN_PEAK ? lp->power : z;
  const double bound = z + 1e-7 * fabs(scale) + (pr->objective == VPQ_SCHED_KEEP_BELOW ? 0 : 1e-6);
  const int type = pr->objective == VPQ_SCHED_MIN_PEAK ? GLP_UP : bound > 0 ? GLP_DB : GLP_FX;
  glp_set_col_bnds(lp->glp, peak_col(lp), type, 0, bound);
  glp_set_obj_coef(lp->glp, peak_col(lp), 0);
  for (int u = 0; u < lp->nclasses; u++)
    for (int t = 0; t < T; t++) {
      glp_set_obj_coef(lp->glp, col(T, u, t, COL_C), pr->step_hours);
      glp_set_obj_coef(lp->glp, col(T, u, t, COL_D), pr->step_hours);
    }
}

vpq_sched_lp *vpq_sched_lp_solve(const vpq_sched_problem *pr, const vpq_sched_class *classes, int nclasses) {
  vpq_sched_lp *lp = malloc(sizeof *lp);
  if (!lp) return NULL;
  *lp = (vpq_sched_lp){NULL, pr, nclasses, malloc((size_t)nclasses * sizeof(double)), 0, 0, false, false};
  if (!lp->eff) {
    vpq_sched_lp_free(lp);
    return NULL;
  }
  for (int k = 0; k < nclasses; k++) lp->eff[k] = classes[k].eff;
  const int old = glp_term_out(GLP_OFF);
  bool ok = build(lp, classes);
  glp_term_out(old);
  if (ok) {
    start_idle(lp);
    ok = vpq_sched_lp_reoptimise(lp);
  }
  if (!ok) {
    vpq_sched_lp_free(lp);
    return NULL;
  }
  return lp;
}

bool vpq_sched_lp_reoptimise(vpq_sched_lp *lp) {
  const int old = glp_term_out(GLP_OFF);
  if (lp->weighted) {
    const bool ok = solved(lp, GLP_DUALP);
    glp_term_out(old);
    return ok;
  }
  primary(lp);
  bool ok = solved(lp, GLP_PRIMAL);
  if (ok) {
    lp->optimum = glp_get_obj_val(lp->glp);
    tie_break(lp, lp->optimum);
    ok = solved(lp, GLP_PRIMAL);
  }
  glp_term_out(old);
  return ok;
}

bool vpq_sched_lp_weigh(vpq_sched_lp *lp, bool single_row_cuts) {
  const vpq_sched_problem *pr = lp->pr;
  const int T = pr->nsteps;
  double least = 1;
  for (int k = 0; k < lp->nclasses; k++) least = fmin(least, lp->eff[k]);
  /* Lowering the peak by δ moves at most δ more in every step, charged beforehand at the least
   * efficiency: at most T·Δt·(1 + 1/η²)·δ of throughput. A weight far above that makes the peak
   * come first. */
  const double weight = 1e3 * T * pr->step_hours * (1 + 1 / (least * least));
  glp_set_col_bnds(lp->glp, peak_col(lp), pr->objective == VPQ_SCHED_KEEP_BELOW ? GLP_LO : GLP_FR, 0, 0);
  glp_set_obj_coef(lp->glp, peak_col(lp), weight);
  lp->weighted = true;
  lp->single_row_cuts = single_row_cuts;
  const int old = glp_term_out(GLP_OFF);
  const bool ok = solved(lp, GLP_PRIMAL);
  glp_term_out(old);
  return ok;
}

/* A cut's terms: its direction's column (x: charge c or discharge d) and the stored energy per
 * kW of it (a), the other direction's column (y) and its factor (b). */
typedef struct cut_terms {
  double a, b;
  int x, y;
} cut_terms;

static cut_terms terms_of(const vpq_sched_lp *lp, const vpq_sched_cut *cut) {
  const double dt = lp->pr->step_hours, eff = lp->eff[cut->cls];
  const bool charge = cut->dir == VPQ_SCHED_CHARGE;
  return charge ? (cut_terms){eff * dt, dt / eff, COL_C, COL_D} : (cut_terms){dt / eff, eff * dt, COL_D, COL_C};
}

/* A step of a cut's run and the energy the current plan moves in it, for append_subset_cut's
 * order. */
typedef struct step_energy {
  double energy;
  int step;
} step_energy;

/* Larger energy first, then earlier step: the current plan's busiest steps. */
static int compare_step_energy(const void *pa, const void *pb) {
  const step_energy *a = pa, *b = pb;
  if (a->energy != b->energy) return a->energy > b->energy ? -1 : 1;
  return (a->step > b->step) - (a->step < b->step);
}

/* Appends one cut as the single row it is for the `size` steps in which the current plan moves
 * the most: Σ over those steps a·x_u − b·Σ y_u ≤ bound (append_cut's notation). Weaker than
 * append_cut's rows, which hold for every choice of steps, but one row and no column: the
 * fallback over a fleet of many efficiencies adds a dozen cuts a round for dozens of rounds, and
 * their rows would grow the LP by thousands of rows and columns (bench_sched's aged fleet of 12
 * efficiencies: 1.6 s with them, 1.0 s and a plan 14 kW closer to its bound with this; but the
 * aged fleets of 4 efficiencies of tests/unit/test_sched.c came 7.7 and 67 kW above their bounds
 * with this, 5.6 and 0 kW with them). */
static bool append_subset_cut(vpq_sched_lp *lp, const vpq_sched_cut *cut) {
  const int T = lp->pr->nsteps, m = cut->last - cut->first + 1;
  const cut_terms t = terms_of(lp, cut);
  const double a = t.a, b = t.b;
  const int x = t.x, y = t.y;
  int *ind = malloc((size_t)(m + cut->size + 1) * sizeof *ind);
  double *val = malloc((size_t)(m + cut->size + 1) * sizeof *val);
  step_energy *steps = malloc((size_t)m * sizeof *steps);
  if (!ind || !val || !steps) {
    free(ind), free(val), free(steps);
    return false;
  }
  for (int i = 0; i < m; i++)
    steps[i] = (step_energy){a * glp_get_col_prim(lp->glp, col(T, cut->cls, cut->first + i, x)), cut->first + i};
  qsort(steps, (size_t)m, sizeof *steps, compare_step_energy);
  int len = 0;
  for (int i = 0; i < cut->size; i++) ind[++len] = col(T, cut->cls, steps[i].step, x), val[len] = a;
  for (int u = cut->first; u <= cut->last; u++) ind[++len] = col(T, cut->cls, u, y), val[len] = -b;
  const int row = glp_add_rows(lp->glp, 1);
  glp_set_mat_row(lp->glp, row, len, ind, val);
  glp_set_row_bnds(lp->glp, row, GLP_UP, 0, cut->bound);
  free(ind), free(val), free(steps);
  return true;
}

/* Appends one cut: columns θ (free) and z_u ≥ 0 for its steps u, rows
 *   a·x_u − θ − z_u ≤ 0        (z_u ≥ the part of step u's energy above θ)
 *   size·θ + Σ z_u − b·Σ y_u ≤ bound
 * where x is the cut's direction (charge c, stored energy a = eff·Δt per kW; discharge d,
 * a = Δt/eff) and y the other one (b its factor). The largest `size` of the a·x_u are at most
 * size·θ + Σ z_u, so the rows say what the cut says for every choice of `size` steps at once. */
static bool append_cut(vpq_sched_lp *lp, const vpq_sched_cut *cut) {
  const int T = lp->pr->nsteps, m = cut->last - cut->first + 1;
  const cut_terms t = terms_of(lp, cut);
  const double a = t.a, b = t.b;
  const int x = t.x, y = t.y;
  int *ind = malloc((size_t)(2 * m + 2) * sizeof *ind);
  double *val = malloc((size_t)(2 * m + 2) * sizeof *val);
  if (!ind || !val) {
    free(ind), free(val);
    return false;
  }
  const int theta = glp_add_cols(lp->glp, m + 1), row = glp_add_rows(lp->glp, m + 1);
  glp_set_col_bnds(lp->glp, theta, GLP_FR, 0, 0);
  for (int i = 0; i < m; i++) {
    const int z = theta + 1 + i, u = cut->first + i;
    glp_set_col_bnds(lp->glp, z, GLP_LO, 0, 0);
    ind[1] = col(T, cut->cls, u, x), val[1] = a;
    ind[2] = theta, val[2] = -1;
    ind[3] = z, val[3] = -1;
    glp_set_mat_row(lp->glp, row + i, 3, ind, val);
    glp_set_row_bnds(lp->glp, row + i, GLP_UP, 0, 0);
  }
  int len = 0;
  ind[++len] = theta, val[len] = cut->size;
  for (int i = 0; i < m; i++) {
    ind[++len] = theta + 1 + i, val[len] = 1;
    ind[++len] = col(T, cut->cls, cut->first + i, y), val[len] = -b;
  }
  glp_set_mat_row(lp->glp, row + m, len, ind, val);
  glp_set_row_bnds(lp->glp, row + m, GLP_UP, 0, cut->bound);
  free(ind), free(val);
  return true;
}

bool vpq_sched_lp_add_cuts(vpq_sched_lp *lp, const vpq_sched_cut *cuts, int ncuts) {
  for (int i = 0; i < ncuts; i++)
    if (!(lp->single_row_cuts ? append_subset_cut(lp, &cuts[i]) : append_cut(lp, &cuts[i]))) return false;
  const int old = glp_term_out(GLP_OFF);
  const bool ok = solved(lp, GLP_DUALP);
  glp_term_out(old);
  return ok;
}

void vpq_sched_lp_hold(vpq_sched_lp *lp, int k, int before) {
  const int T = lp->pr->nsteps;
  for (int t = 0; t < before; t++)
    for (int which = COL_C; which <= COL_D; which++) {
      const int j = col(T, k, t, which);
      const double v = fmin(fmax(glp_get_col_prim(lp->glp, j), 0), glp_get_col_ub(lp->glp, j));
      glp_set_col_bnds(lp->glp, j, GLP_FX, v, v);
    }
}

void vpq_sched_lp_fix(vpq_sched_lp *lp, int k, const double *xk) {
  const int T = lp->pr->nsteps;
  for (int t = 0; t < T; t++)
    for (int which = COL_C; which <= COL_D; which++) {
      const int j = col(T, k, t, which);
      const double v = fmin(fmax(xk[2 * t + (which == COL_C ? VPQ_SCHED_CHARGE : VPQ_SCHED_DISCHARGE)], 0),
                            glp_get_col_ub(lp->glp, j));
      glp_set_col_bnds(lp->glp, j, GLP_FX, v, v);
    }
}

double vpq_sched_lp_throughput(const vpq_sched_lp *lp) { return glp_get_obj_val(lp->glp); }

double vpq_sched_lp_primary(const vpq_sched_lp *lp) { return lp->optimum; }

void vpq_sched_lp_plan(const vpq_sched_lp *lp, double *x) {
  const int T = lp->pr->nsteps;
  for (int k = 0; k < lp->nclasses; k++)
    for (int t = 0; t < T; t++) {
      const size_t at = ((size_t)k * (size_t)T + (size_t)t) * 2;
      x[at + VPQ_SCHED_CHARGE] = glp_get_col_prim(lp->glp, col(T, k, t, COL_C));
      x[at + VPQ_SCHED_DISCHARGE] = glp_get_col_prim(lp->glp, col(T, k, t, COL_D));
    }
}

void vpq_sched_lp_free(vpq_sched_lp *lp) {
  if (!lp) return;
  if (lp->glp) glp_delete_prob(lp->glp);
  free(lp->eff);
  free(lp);
}
