/* vpq_sched_colgen.c — the peak objectives battery by battery, by column generation
 * (Dantzig–Wolfe), for fleets of many kinds (vpq_sched_int.h; vpq_sched.c says when).
 *
 * The LP of vpq_sched.h couples its batteries only through the net load of each step. Over a
 * fleet of many kinds the classes of vpq_sched.c either restrict it (mixed efficiencies) or do not
 * split (mixed C-rates and socs), and the exact LP, one block per battery, is too large for the
 * simplex (an audit's 500 all-different batteries over 96 steps: 24 s). Column generation solves
 * that exact LP without writing it down. The master LP chooses, for every battery, a convex
 * combination of plans of that battery found so far (its columns):
 *
 *     minimise z  subject to  z + Σ_i Σ_j w_ij·p_ij[t] ≥ load[t]  (each step t; KEEP_BELOW: load − cap, z ≥ 0)
 *                             Σ_j w_ij = 1, w ≥ 0                  (each battery i)
 *
 * where p_ij[t] is the setpoint of plan j of battery i. A convex combination of a battery's plans
 * is a plan of that battery (its limits are linear), so every master solution is a fleet plan
 * and its z an upper bound. The duals λ[t] ≥ 0 of the step rows (Σ λ = 1 at an optimum; at most
 * 1 for KEEP_BELOW) price a new plan: the battery's plan that earns the most Σ λ[t]·p[t], which
 * is MIN_COST's problem at prices λ, solved exactly by vpq_sched_dp.c. Its value also bounds
 * every fleet plan from below (Lagrangian relaxation): z ≥ Σ λ[t]·load[t] − Σ_i max_p Σ λ[t]·p[t].
 * The loop adds the plans that improve the master until the bounds meet: the plan's peak is then
 * certified optimal, its gap measured otherwise. The duals are smoothed (Wentges): each round
 * prices at a mix of the master's duals and those that gave the best lower bound so far, which
 * damps the duals' swings between rounds; a mix that finds no improving plan is priced again at
 * the master's duals alone. Weights measured on the audit's fleet (500 batteries, efficiencies
 * 0.80-1, C-rates 0.05-3.4, 96 steps): none, 0.5, 0.8 and 0.9 took 3.9 (60 + 19 rounds), 3.9,
 * 2.8 and 3.1 s; starting from duals found by subgradient ascent (cheap: the DP) took longer,
 * 4.8-7.3 s. Columns that stay out of the basis for MAX_IDLE rounds are dropped: with all of
 * them kept (24,000) the same fleet took 18 s, nearly all of it in the master's simplex.
 *
 * Then the least throughput among plans at that peak, the same way: z is fixed and the master
 * minimises Σ_ij w_ij·throughput_ij; a plan is priced by the DP with throughput costing 1 per
 * kWh both ways on top of λ, so that a charge costs (λ[t]/Δt + 1) per kWh and a discharge earns
 * (λ[t]/Δt − 1).
 *
 * Groups: a column may be a plan of every battery of a group (consecutive members, of close
 * kinds), weighted as one, with one convexity row per group. That restricts the master (its
 * optimum may lie above the LP's) but not the bound, which prices every battery on its own, so
 * the gap stays measured. The master's simplex is what costs on a large fleet (the audit's 500
 * batteries: 3.3 s battery by battery, 1.1 s over 50 groups, both certified; vpq_sched.c's
 * COLGEN_GROUPS has the rest); with groups, the DP does (bench_sched's wide fleet of 10,000
 * batteries: 233 rounds for the peak and 122 for the throughput, the DP about 4 µs a battery a
 * round, 59 % of the time, the master's simplex 22 %; the DP took 8 µs before its backward pass
 * swept each step's segments once, in place).
 *
 * Columns hold a plan as setpoints; the DP's plans never charge and discharge in one step. The
 * fleet plan is each battery's combination, as charge and discharge per step.
 */
#include <glpk.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vpq_sched_int.h"

/* Rounds of pricing per stage before the best plan found is returned, and the smoothing's
 * weight on the best duals so far. */
enum { MAX_ROUNDS = 400, MAX_IDLE = 5 };
static const double SMOOTHING = 0.8;

/* When a stage stops (relative to its objective): the peak's bounds meet within PEAK_TOLERANCE,
 * inside the 1e-6 that vpq_op_schedule.c counts as certified; the throughput's
 * within THROUGHPUT_TOLERANCE, vpq_sched.c's; a plan improves the master when its reduced cost
 * is below −IMPROVES (relative). */
static const double PEAK_TOLERANCE = 1e-7, THROUGHPUT_TOLERANCE = 1e-4, IMPROVES = 1e-9;

/* The master LP and the columns' plans. Members are in groups of consecutive members (one
 * member each, or, on a large fleet, vpq_sched.c's choice); a column is a plan of every member
 * of its group, weighted as one. */
typedef struct colgen {
  const vpq_sched_problem *pr;
  const vpq_sched_member *members;
  int n, T, ngroups;
  int *first;           /* per group, and one past the last: its first member */
  glp_prob *glp;
  double *rhs;          /* per step: load, or load − cap */
  double *plans;        /* the columns' setpoints: T per member of the column's group */
  size_t used, room;    /* doubles of plans written (the dropped columns' included) and allocated */
  size_t dropped;       /* doubles of plans of dropped columns, not yet reclaimed (reserve) */
  size_t *at;           /* per column (after z): its setpoints' offset in plans */
  double *throughput;   /* per column: kWh */
  int *owner;           /* per column: group */
  int *idle;            /* per column: rounds since it was last basic */
  int ncols, capacity;  /* columns after z */
  double *charge, *discharge; /* the DP's rows, by battery index */
  double *price_c, *price_d;  /* per step: the DP's prices */
  double *lambda, *center, *mix; /* duals: the master's, the best bound's, the priced mix */
  double *mu;           /* per group: the convexity row's dual */
  bool have_center;     /* center holds the duals of a lower bound */
} colgen;

/* Moves the columns' plans down over the dropped columns' (the columns' offsets increase with
 * their index), so that each plan moves only when half the space has been dropped. */
static void compact_plans(colgen *cg) {
  size_t used = 0;
  for (int j = 0; j < cg->ncols; j++) {
    const int g = cg->owner[j];
    const size_t cells = (size_t)(cg->first[g + 1] - cg->first[g]) * (size_t)cg->T;
    if (cg->at[j] != used) memmove(&cg->plans[used], &cg->plans[cg->at[j]], cells * sizeof *cg->plans);
    cg->at[j] = used;
    used += cells;
  }
  cg->used = used, cg->dropped = 0;
}

/* Makes room for one more column of `cells` setpoints, first by reclaiming the dropped columns'
 * space when it is at least half of what is written; false when out of memory. */
static bool reserve(colgen *cg, size_t cells) {
  if (cg->used + cells > cg->room && 2 * cg->dropped >= cg->used) compact_plans(cg);
  if (cg->used + cells > cg->room) {
    const size_t room = (cg->used + cells) * 2;
    double *plans = realloc(cg->plans, room * sizeof *plans);
    if (!plans) return false;
    cg->plans = plans, cg->room = room;
  }
  if (cg->ncols == cg->capacity) {
    const int grown = cg->capacity * 2 + 64;
    size_t *at = realloc(cg->at, (size_t)grown * sizeof *at);
    if (at) cg->at = at;
    double *throughput = realloc(cg->throughput, (size_t)grown * sizeof *throughput);
    if (throughput) cg->throughput = throughput;
    int *owner = realloc(cg->owner, (size_t)grown * sizeof *owner);
    if (owner) cg->owner = owner;
    int *idle = realloc(cg->idle, (size_t)grown * sizeof *idle);
    if (idle) cg->idle = idle;
    if (!at || !throughput || !owner || !idle) return false;
    cg->capacity = grown;
  }
  return true;
}

/* Appends the plans in the DP's rows of group g's members as a column of the master; false
 * when out of memory. rows and vals hold T + 2 entries. */
static bool add_column(colgen *cg, int g, bool by_throughput, int *rows, double *vals) {
  const int T = cg->T, first = cg->first[g], count = cg->first[g + 1] - first;
  const size_t cells = (size_t)count * (size_t)T;
  if (!reserve(cg, cells)) return false;
  double *p = &cg->plans[cg->used], w = 0;
  for (int t = 0; t < T; t++) vals[t + 1] = 0;
  for (int m = 0; m < count; m++) {
    const size_t row = (size_t)cg->members[first + m].index * (size_t)T;
    for (int t = 0; t < T; t++) {
      const double c = cg->charge[row + (size_t)t], d = cg->discharge[row + (size_t)t];
      p[(size_t)m * (size_t)T + (size_t)t] = d - c;
      vals[t + 1] += d - c;
      w += (c + d) * cg->pr->step_hours;
    }
  }
  int k = 0;
  for (int t = 0; t < T; t++)
    if (vals[t + 1] != 0) rows[++k] = 1 + t, vals[k] = vals[t + 1];
  rows[++k] = 1 + T + g, vals[k] = 1;
  cg->at[cg->ncols] = cg->used;
  cg->used += cells;
  cg->throughput[cg->ncols] = w;
  cg->owner[cg->ncols] = g;
  cg->idle[cg->ncols] = 0;
  const int j = glp_add_cols(cg->glp, 1);
  glp_set_col_bnds(cg->glp, j, GLP_LO, 0, 0);
  glp_set_obj_coef(cg->glp, j, by_throughput ? w : 0);
  glp_set_mat_col(cg->glp, j, k, rows, vals);
  cg->ncols++;
  return true;
}

/* Deletes the columns that have not been basic for MAX_IDLE rounds: they price no more, and
 * the master's simplex spends its time on its columns (the audit's 500 batteries kept 24,000).
 * Their plans' space is reclaimed later, by reserve: moving every later plan down at every drop
 * took 1.2 of the 21 s of bench_sched's wide fleet of 10,000 batteries. */
static bool drop_idle_columns(colgen *cg) {
  int *doomed = malloc((size_t)(cg->ncols + 1) * sizeof *doomed);
  if (!doomed) return false;
  int ndoomed = 0, kept = 0;
  for (int j = 0; j < cg->ncols; j++) {
    cg->idle[j] = glp_get_col_stat(cg->glp, 2 + j) == GLP_BS ? 0 : cg->idle[j] + 1;
    const int g = cg->owner[j];
    if (cg->idle[j] > MAX_IDLE) {
      doomed[++ndoomed] = 2 + j;
      cg->dropped += (size_t)(cg->first[g + 1] - cg->first[g]) * (size_t)cg->T;
      continue;
    }
    cg->at[kept] = cg->at[j];
    cg->throughput[kept] = cg->throughput[j], cg->owner[kept] = g, cg->idle[kept] = cg->idle[j];
    kept++;
  }
  if (ndoomed > 0) glp_del_cols(cg->glp, ndoomed, doomed);
  cg->ncols = kept;
  free(doomed);
  return true;
}

/* Plans every member by the DP at the prices in price_c and price_d, into the DP's rows; false
 * when out of memory. Members that share kind and limits share one backward pass. */
static bool price_members(colgen *cg) {
  const vpq_sched_dp_prices prices = {cg->price_c, cg->price_d};
  const vpq_sched_member *ms = cg->members;
  for (int first = 0, m = 1; m <= cg->n; m++)
    if (m == cg->n || ms[m].eff != ms[first].eff || ms[m].max_kw / ms[m].capacity != ms[first].max_kw / ms[first].capacity ||
        ms[m].lo != ms[first].lo || ms[m].hi != ms[first].hi) {
      if (!vpq_sched_dp_plan(cg->pr, &prices, &ms[first], m - first, cg->charge, cg->discharge)) return false;
      first = m;
    }
  return true;
}

/* The simplex from the master's current basis; false when it finds no optimum. */
static bool solve_master(colgen *cg) {
  glp_smcp parm;
  glp_init_smcp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  return glp_simplex(cg->glp, &parm) == 0 && glp_get_status(cg->glp) == GLP_OPT;
}

/* One stage: rounds of pricing until the master's objective meets the best lower bound within
 * `tolerance` (relative) or no plan improves it. by_throughput: the second stage (throughput, z
 * fixed). *lower, a lower bound at the start, becomes the best lower bound found. rows and vals
 * are add_column's scratch. False when out of memory or the solver fails. */
static bool run_stage(colgen *cg, bool by_throughput, double tolerance, double *lower, int *rows, double *vals) {
  const int T = cg->T;
  const double dt = cg->pr->step_hours;
  const double fixed_z = by_throughput ? glp_get_col_lb(cg->glp, 1) : 0;
  bool ok = true;
  for (int round = 0; ok && round < MAX_ROUNDS; round++) {
    if (!solve_master(cg)) {
      ok = false;
      break;
    }
    const double upper = glp_get_obj_val(cg->glp);
    if (!(ok = drop_idle_columns(cg))) break;
    for (int t = 0; t < T; t++) cg->lambda[t] = fmax(0, glp_get_row_dual(cg->glp, 1 + t));
    for (int g = 0; g < cg->ngroups; g++) cg->mu[g] = glp_get_row_dual(cg->glp, 1 + T + g);
    bool added = false;
    const bool smoothed = cg->have_center; /* else the second attempt would price the same duals */
    for (int attempt = 0; attempt < (smoothed ? 2 : 1) && !added && ok; attempt++) {
      const double alpha = smoothed && attempt == 0 ? SMOOTHING : 0;
      double sum = 0;
      for (int t = 0; t < T; t++) {
        cg->mix[t] = alpha > 0 ? alpha * cg->center[t] + (1 - alpha) * cg->lambda[t] : cg->lambda[t];
        sum += cg->mix[t];
      }
      /* stage 1's bound holds for duals summing to 1 (KEEP_BELOW: at most 1): scale them so */
      const double scale = by_throughput || sum <= 0 || (cg->pr->objective == VPQ_SCHED_KEEP_BELOW && sum <= 1)
                               ? 1
                               : 1 / sum;
      for (int t = 0; t < T; t++) {
        const double lam = cg->mix[t] * scale / dt;
        cg->price_c[t] = by_throughput ? lam + 1 : lam;
        cg->price_d[t] = by_throughput ? lam - 1 : lam;
      }
      if (!price_members(cg)) {
        ok = false;
        break;
      }
      /* the bound at the mix, and each group's plan's reduced cost at the master's duals */
      double bound = 0;
      for (int t = 0; t < T; t++) bound += cg->mix[t] * scale * (cg->rhs[t] - fixed_z);
      for (int g = 0; g < cg->ngroups && ok; g++) {
        double reduced = -cg->mu[g];
        for (int m = cg->first[g]; m < cg->first[g + 1]; m++) {
          const size_t row = (size_t)cg->members[m].index * (size_t)T;
          double value_mix = 0, value_master = 0, w = 0;
          for (int t = 0; t < T; t++) {
            const double c = cg->charge[row + (size_t)t], d = cg->discharge[row + (size_t)t];
            value_mix += cg->mix[t] * scale * (d - c);
            value_master += cg->lambda[t] * (d - c);
            w += (c + d) * dt;
          }
          bound -= by_throughput ? value_mix - w : value_mix;
          reduced += (by_throughput ? w : 0) - value_master;
        }
        if (reduced < -IMPROVES * (1 + fabs(upper))) {
          ok = add_column(cg, g, by_throughput, rows, vals);
          added = true;
        }
      }
      if (bound > *lower) {
        *lower = bound;
        memcpy(cg->center, cg->mix, (size_t)T * sizeof *cg->center);
        cg->have_center = true;
      }
    }
    if (!added || upper - *lower <= tolerance * (1 + fabs(upper))) break;
  }
  if (ok) ok = solve_master(cg);
  return ok;
}

/* Each member's plan, the master's combination of its group's columns, into the rows charge and
 * discharge[index·T ...]. */
static void combine(const colgen *cg, double *charge, double *discharge) {
  const size_t T = (size_t)cg->T;
  for (int m = 0; m < cg->n; m++) {
    const size_t row = (size_t)cg->members[m].index * T;
    memset(&charge[row], 0, T * sizeof *charge);
    memset(&discharge[row], 0, T * sizeof *discharge);
  }
  for (int j = 0; j < cg->ncols; j++) {
    const double w = glp_get_col_prim(cg->glp, 2 + j);
    if (w <= 0) continue;
    const int g = cg->owner[j];
    for (int m = cg->first[g]; m < cg->first[g + 1]; m++) {
      const size_t row = (size_t)cg->members[m].index * T;
      const double *p = &cg->plans[cg->at[j] + (size_t)(m - cg->first[g]) * T];
      for (size_t t = 0; t < T; t++) {
        charge[row + t] += w * fmax(0, -p[t]);
        discharge[row + t] += w * fmax(0, p[t]);
      }
    }
  }
}

bool vpq_sched_colgen_plan(const vpq_sched_problem *pr, const vpq_sched_member *members, int n, int ngroups,
                           double *charge, double *discharge, double *bound) {
  const int T = pr->nsteps, G = ngroups < 1 || ngroups > n ? n : ngroups;
  const size_t cells = (size_t)pr->nbatteries * (size_t)T;
  colgen cg = {.pr = pr,
               .members = members,
               .n = n,
               .T = T,
               .ngroups = G,
               .first = malloc((size_t)(G + 1) * sizeof *cg.first),
               .rhs = malloc((size_t)T * sizeof *cg.rhs),
               .charge = calloc(cells, sizeof *cg.charge),
               .discharge = calloc(cells, sizeof *cg.discharge),
               .price_c = malloc((size_t)T * sizeof *cg.price_c),
               .price_d = malloc((size_t)T * sizeof *cg.price_d),
               .lambda = malloc((size_t)T * sizeof *cg.lambda),
               .center = malloc((size_t)T * sizeof *cg.center),
               .mix = malloc((size_t)T * sizeof *cg.mix),
               .mu = malloc((size_t)G * sizeof *cg.mu)};
  int *rows = malloc((size_t)(T + 2) * sizeof *rows);
  double *vals = malloc((size_t)(T + 2) * sizeof *vals);
  bool ok = cg.first && cg.rhs && cg.charge && cg.discharge && cg.price_c && cg.price_d && cg.lambda && cg.center &&
            cg.mix && cg.mu && rows && vals;
  for (int g = 0; ok && g <= G; g++) cg.first[g] = (int)((long long)n * g / G);
  const bool below = pr->objective == VPQ_SCHED_KEEP_BELOW;
  double lower = -INFINITY;
  const int term = glp_term_out(GLP_OFF);
  if (ok) {
    cg.glp = glp_create_prob();
    glp_set_obj_dir(cg.glp, GLP_MIN);
    glp_add_rows(cg.glp, T + G);
    for (int t = 0; t < T; t++) {
      cg.rhs[t] = pr->load[t] - (below ? pr->cap_kw : 0);
      glp_set_row_bnds(cg.glp, 1 + t, GLP_LO, cg.rhs[t], 0);
    }
    for (int g = 0; g < G; g++) glp_set_row_bnds(cg.glp, 1 + T + g, GLP_FX, 1, 1);
    /* z, in every step's row; then every battery idle, so that the master starts feasible */
    glp_add_cols(cg.glp, 1);
    glp_set_col_bnds(cg.glp, 1, below ? GLP_LO : GLP_FR, 0, 0);
    glp_set_obj_coef(cg.glp, 1, 1);
    for (int t = 0; t < T; t++) rows[t + 1] = 1 + t, vals[t + 1] = 1;
    glp_set_mat_col(cg.glp, 1, T, rows, vals);
    for (int g = 0; g < G && ok; g++) ok = add_column(&cg, g, false, rows, vals);
    glp_adv_basis(cg.glp, 0);
  }
  if (ok) ok = run_stage(&cg, false, PEAK_TOLERANCE, &lower, rows, vals);
  if (ok) {
    const double z = glp_get_obj_val(cg.glp);
    *bound = fmin(lower, z);
    /* the least throughput at that peak, within the tie-break's slack (vpq_sched_lp.c's: 1e-7
     * of the fleet's discharge power and 1e-6 kW for MIN_PEAK, 1e-7 of the excess for
     * KEEP_BELOW, so that a cap that can be met stays met) */
    double power = 0;
    for (int m = 0; m < n; m++) power += members[m].max_kw;
    const double hold = below ? z + 1e-7 * fabs(z) : z + 1e-7 * power + 1e-6;
    glp_set_col_bnds(cg.glp, 1, GLP_FX, hold, hold);
    glp_set_obj_coef(cg.glp, 1, 0);
    for (int j = 0; j < cg.ncols; j++) glp_set_obj_coef(cg.glp, 2 + j, cg.throughput[j]);
    double least = -INFINITY;
    cg.have_center = false;
    ok = run_stage(&cg, true, THROUGHPUT_TOLERANCE, &least, rows, vals);
  }
  if (ok) combine(&cg, charge, discharge);
  if (cg.glp) glp_delete_prob(cg.glp);
  glp_term_out(term);
  free(cg.first), free(cg.rhs), free(cg.plans), free(cg.at), free(cg.throughput), free(cg.owner), free(cg.idle);
  free(cg.charge), free(cg.discharge);
  free(cg.price_c), free(cg.price_d), free(cg.lambda), free(cg.center), free(cg.mix), free(cg.mu);
  free(rows), free(vals);
  return ok;
}
