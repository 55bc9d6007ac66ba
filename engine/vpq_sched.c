/* vpq_sched.c — the battery dispatch optimiser behind SCHEDULE (vpq_sched.h).
 *
 * Why an LP solved with GLPK: the model of vpq_sched.h is a linear programme, and the simplex
 * method solves it exactly — it stops at a basis that is primal and dual feasible, a
 * certificate that no better plan exists — where a hand-written heuristic (greedy peak
 * shaving, say) could only be tested, never shown, to be optimal. The lexicographic objective
 * takes two solves on the same LP: the primary objective, then the least throughput with the
 * primary held at its optimum (the second solve starts from the first one's optimal basis).
 *
 * Speed: batteries that differ only in size — same soc, efficiency, soc limits and C-rate
 * (max_kw / capacity), in particular exact duplicates — are one LP battery of their summed
 * capacity and power. This is exact: the LP's plan for the sum, split in proportion to
 * capacity, is feasible for every member, and the members' plans of any feasible fleet plan
 * add up to a feasible plan for the sum. A fleet of thousands of batteries of a few kinds is
 * then a small LP.
 *
 * The LP's answer is not trusted blindly: each battery's plan is replayed in C from its
 * setpoints, checked against the LP's stored energy and limits, and tiny numeric violations
 * (within the solver's tolerances) are clamped, so a returned plan never breaks a limit and its
 * soc follows from its setpoints exactly.
 *
 * One limit of the model: the LP may charge and discharge a battery in the same step, which
 * burns energy through the losses. That never lowers the peak or, with prices ≥ 0, the cost, so
 * those optima do not use it; with negative prices they can, and the replay (see replay) turns
 * such a step into the one setpoint with the same energy change: the plan is then feasible and
 * consistent but may cost more than the LP's optimum.
 */
#include "vpq_sched.h"

#include <glpk.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A battery taking part in the LP, with the key that decides which ones merge. */
typedef struct member {
  double soc, eff, lo, hi, rate; /* lo, hi: the soc limits widened to soc; rate = max_kw / capacity */
  double capacity, max_kw;       /* sorted by within a unit, so that exact duplicates are adjacent */
  int index;
} member;

/* One LP battery: the merged members [first, first + count) of the sorted member array. */
typedef struct unit {
  double soc, eff, lo, hi;   /* shared by the members */
  double capacity, max_kw;   /* summed over the members */
  int first, count;
} unit;

/* Columns c, d, e of unit u at step t, then the peak column; rows: one energy balance per
 * unit and step, then (MIN_PEAK, KEEP_BELOW) one peak row per step. All 1-based for GLPK. */
enum { COL_C, COL_D, COL_E };

static int col(int nsteps, int u, int t, int which) { return 1 + 3 * (u * nsteps + t) + which; }

static int fail(char *err, size_t errsize, const char *msg) {
  if (err && errsize > 0) snprintf(err, errsize, "%s", msg);
  return -1;
}

static double efficiency(double eff) { return eff > 0 && eff <= 1 ? eff : 1; }

static double clamp(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

static bool usable(const vpq_sched_battery *b) {
  return isfinite(b->soc) && isfinite(b->capacity_kwh) && isfinite(b->max_kw) && isfinite(b->min_soc) &&
         isfinite(b->max_soc) && b->capacity_kwh > 0 && b->max_kw > 0;
}

/* Orders members by their merge key; 0 when they merge. */
static int compare_kind(const member *a, const member *b) {
  const double ka[] = {a->soc, a->eff, a->lo, a->hi, a->rate}, kb[] = {b->soc, b->eff, b->lo, b->hi, b->rate};
  for (size_t k = 0; k < sizeof ka / sizeof ka[0]; k++)
    if (ka[k] != kb[k]) return ka[k] < kb[k] ? -1 : 1;
  return 0;
}

static bool duplicates(const member *a, const member *b) {
  return compare_kind(a, b) == 0 && a->capacity == b->capacity && a->max_kw == b->max_kw;
}

static int compare_members(const void *pa, const void *pb) {
  const member *a = pa, *b = pb;
  const int kind = compare_kind(a, b);
  if (kind != 0) return kind;
  if (a->capacity != b->capacity) return a->capacity < b->capacity ? -1 : 1;
  if (a->max_kw != b->max_kw) return a->max_kw < b->max_kw ? -1 : 1;
  return (a->index > b->index) - (a->index < b->index);
}

/* Sorts the usable batteries into members and merges equal keys into units; returns the
 * number of units. */
static int merge(const vpq_sched_problem *pr, member *members, unit *units) {
  int n = 0;
  for (int i = 0; i < pr->nbatteries; i++) {
    const vpq_sched_battery *b = &pr->batteries[i];
    if (!usable(b)) continue;
    members[n++] = (member){.soc = b->soc,
                            .eff = efficiency(b->efficiency),
                            .lo = fmin(b->min_soc, b->soc),
                            .hi = fmax(b->max_soc, b->soc),
                            .rate = b->max_kw / b->capacity_kwh,
                            .capacity = b->capacity_kwh,
                            .max_kw = b->max_kw,
                            .index = i};
  }
  qsort(members, (size_t)n, sizeof *members, compare_members);
  int nunits = 0;
  for (int m = 0; m < n; m++) {
    const vpq_sched_battery *b = &pr->batteries[members[m].index];
    if (m == 0 || compare_kind(&members[m - 1], &members[m]) != 0)
      units[nunits++] = (unit){members[m].soc, members[m].eff, members[m].lo, members[m].hi, 0, 0, m, 0};
    unit *u = &units[nunits - 1];
    u->capacity += b->capacity_kwh;
    u->max_kw += b->max_kw;
    u->count++;
  }
  return nunits;
}

/* The LP of vpq_sched.h over the units, with the primary objective set. */
static glp_prob *build(const vpq_sched_problem *pr, const unit *units, int nunits) {
  const int T = pr->nsteps;
  const double dt = pr->step_hours;
  const bool peak = pr->objective != VPQ_SCHED_MIN_COST;
  const int pcol = 3 * nunits * T + 1, prow0 = nunits * T + 1;
  const size_t nz = (size_t)nunits * (size_t)T * (peak ? 6 : 4) + (peak ? (size_t)T : 0);
  int *ia = malloc((nz + 1) * sizeof *ia), *ja = malloc((nz + 1) * sizeof *ja);
  double *ar = malloc((nz + 1) * sizeof *ar);
  if (!ia || !ja || !ar) {
    free(ia), free(ja), free(ar);
    return NULL;
  }
  glp_prob *lp = glp_create_prob();
  glp_set_obj_dir(lp, GLP_MIN);
  glp_add_cols(lp, 3 * nunits * T + (peak ? 1 : 0));
  glp_add_rows(lp, nunits * T + (peak ? T : 0));
  int k = 0;
  for (int u = 0; u < nunits; u++) {
    const unit *un = &units[u];
    const double lo = un->lo * un->capacity, hi = un->hi * un->capacity, e0 = un->soc * un->capacity;
    for (int t = 0; t < T; t++) {
      const int c = col(T, u, t, COL_C), d = col(T, u, t, COL_D), e = col(T, u, t, COL_E);
      const int row = 1 + u * T + t;
      glp_set_col_bnds(lp, c, GLP_DB, 0, un->max_kw);
      glp_set_col_bnds(lp, d, GLP_DB, 0, un->max_kw);
      glp_set_col_bnds(lp, e, lo < hi ? GLP_DB : GLP_FX, lo, hi);
      /* e_t − e_{t−1} − eff·Δt·c + Δt/eff·d = 0, with e_{−1} = soc·capacity on the right */
      glp_set_row_bnds(lp, row, GLP_FX, t == 0 ? e0 : 0, t == 0 ? e0 : 0);
      ia[++k] = row, ja[k] = e, ar[k] = 1;
      if (t > 0) ia[++k] = row, ja[k] = e - 3, ar[k] = -1;
      ia[++k] = row, ja[k] = c, ar[k] = -un->eff * dt;
      ia[++k] = row, ja[k] = d, ar[k] = dt / un->eff;
      if (peak) {
        ia[++k] = prow0 + t, ja[k] = d, ar[k] = 1;
        ia[++k] = prow0 + t, ja[k] = c, ar[k] = -1;
      } else {
        glp_set_obj_coef(lp, c, pr->price[t] * dt);
        glp_set_obj_coef(lp, d, -pr->price[t] * dt);
      }
    }
  }
  if (peak) {
    /* load_t − Σ (d − c) ≤ P (MIN_PEAK), ≤ cap + s (KEEP_BELOW, P = s ≥ 0) */
    const bool below = pr->objective == VPQ_SCHED_KEEP_BELOW;
    glp_set_col_bnds(lp, pcol, below ? GLP_LO : GLP_FR, 0, 0);
    glp_set_obj_coef(lp, pcol, 1);
    for (int t = 0; t < T; t++) {
      glp_set_row_bnds(lp, prow0 + t, GLP_LO, pr->load[t] - (below ? pr->cap_kw : 0), 0);
      ia[++k] = prow0 + t, ja[k] = pcol, ar[k] = 1;
    }
  }
  glp_load_matrix(lp, k, ia, ja, ar);
  free(ia), free(ja), free(ar);
  glp_scale_prob(lp, GLP_SF_AUTO);
  return lp;
}

/* The idle plan as the starting basis: every e basic (the energy balances then fix it at
 * soc·capacity), every c and d nonbasic at 0, and for the peak objectives P basic at the highest
 * load, whose peak row is the one nonbasic row (KEEP_BELOW with all loads under the cap: s
 * nonbasic at 0 instead). The basis matrix is triangular, so it is a valid basis, and it is
 * primal feasible: the simplex starts straight in phase 2. */
static void start_idle(glp_prob *lp, const vpq_sched_problem *pr, int nunits) {
  const int T = pr->nsteps;
  for (int u = 0; u < nunits; u++)
    for (int t = 0; t < T; t++) {
      glp_set_col_stat(lp, col(T, u, t, COL_C), GLP_NL);
      glp_set_col_stat(lp, col(T, u, t, COL_D), GLP_NL);
      glp_set_col_stat(lp, col(T, u, t, COL_E), GLP_BS);
      glp_set_row_stat(lp, 1 + u * T + t, GLP_NS);
    }
  if (pr->objective == VPQ_SCHED_MIN_COST) return;
  int top = 0;
  for (int t = 1; t < T; t++)
    if (pr->load[t] > pr->load[top]) top = t;
  const bool binding = pr->objective == VPQ_SCHED_MIN_PEAK || pr->load[top] > pr->cap_kw;
  glp_set_col_stat(lp, 3 * nunits * T + 1, binding ? GLP_BS : GLP_NL);
  for (int t = 0; t < T; t++) glp_set_row_stat(lp, nunits * T + 1 + t, binding && t == top ? GLP_NL : GLP_BS);
}

/* Primal simplex from the LP's current basis. No presolve: it would throw the basis away, and
 * from the idle basis (then from the first stage's optimum) the simplex is faster than with
 * GLPK's presolver and its own starting basis on these LPs (1.7× for MIN_PEAK, 7× for KEEP_BELOW
 * in bench/bench_sched.c; the second stage, warm, takes milliseconds either way). */
static bool solved(glp_prob *lp) {
  glp_smcp parm;
  glp_init_smcp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  return glp_simplex(lp, &parm) == 0 && glp_get_status(lp) == GLP_OPT;
}

/* Holds the primary objective at its optimum z (within 1e-7 relative, 1e-6 absolute) and
 * makes the throughput Σ (c + d)·Δt the objective. KEEP_BELOW's excess s gets no absolute slack:
 * a cap that can be met stays met (1e-6 more would put the peak right on cap_met's threshold).
 * False when out of memory. */
static bool tie_break(glp_prob *lp, const vpq_sched_problem *pr, int nunits, double z) {
  const int T = pr->nsteps, n = nunits * T;
  const double dt = pr->step_hours;
  const double bound = z + 1e-7 * fabs(z) + (pr->objective == VPQ_SCHED_KEEP_BELOW ? 0 : 1e-6);
  if (pr->objective == VPQ_SCHED_MIN_COST) {
    /* Σ price·Δt·(c − d) ≤ bound: the battery part of the cost; the load's part is constant */
    int *ind = malloc((size_t)(2 * n + 1) * sizeof *ind);
    double *val = malloc((size_t)(2 * n + 1) * sizeof *val);
    if (!ind || !val) {
      free(ind), free(val);
      return false;
    }
    int len = 0;
    for (int u = 0; u < nunits; u++)
      for (int t = 0; t < T; t++)
        if (pr->price[t] != 0) {
          ind[++len] = col(T, u, t, COL_C), val[len] = pr->price[t] * dt;
          ind[++len] = col(T, u, t, COL_D), val[len] = -pr->price[t] * dt;
        }
    const int row = glp_add_rows(lp, 1);
    glp_set_mat_row(lp, row, len, ind, val);
    glp_set_row_bnds(lp, row, GLP_UP, 0, bound);
    free(ind), free(val);
  } else {
    const int pcol = 3 * n + 1;
    const int type = pr->objective == VPQ_SCHED_MIN_PEAK ? GLP_UP : bound > 0 ? GLP_DB : GLP_FX;
    glp_set_col_bnds(lp, pcol, type, 0, bound);
    glp_set_obj_coef(lp, pcol, 0);
  }
  for (int u = 0; u < nunits; u++)
    for (int t = 0; t < T; t++) {
      glp_set_obj_coef(lp, col(T, u, t, COL_C), dt);
      glp_set_obj_coef(lp, col(T, u, t, COL_D), dt);
    }
  return true;
}

/* Solves the lexicographic LP over the units; x receives c, d, e per unit and step. */
static int solve_lp(const vpq_sched_problem *pr, const unit *units, int nunits, double *x, char *err,
                    size_t errsize) {
  glp_prob *lp = build(pr, units, nunits);
  if (!lp) return fail(err, errsize, "schedule: out of memory");
  start_idle(lp, pr, nunits);
  int rc = 0;
  if (!solved(lp))
    rc = fail(err, errsize, "schedule: the LP solver found no optimum");
  else if (!tie_break(lp, pr, nunits, glp_get_obj_val(lp)))
    rc = fail(err, errsize, "schedule: out of memory");
  else if (!solved(lp))
    rc = fail(err, errsize, "schedule: the LP solver found no optimum for the throughput tie-break");
  for (int j = 0; rc == 0 && j < 3 * nunits * pr->nsteps; j++) x[j] = glp_get_col_prim(lp, j + 1);
  glp_delete_prob(lp);
  return rc;
}

/* Solves the whole plan into x (c, d, e per unit and step). MIN_COST has no constraint across
 * batteries, so each unit is its own small LP (much faster than one large one; each unit's cost
 * is then held within the tolerance on its own); the peak objectives couple all units. */
static int optimise(const vpq_sched_problem *pr, const unit *units, int nunits, double *x, char *err,
                    size_t errsize) {
  const int old = glp_term_out(GLP_OFF);
  int rc = 0;
  if (pr->objective == VPQ_SCHED_MIN_COST)
    for (int u = 0; rc == 0 && u < nunits; u++)
      rc = solve_lp(pr, &units[u], 1, &x[(size_t)u * (size_t)pr->nsteps * 3], err, errsize);
  else
    rc = solve_lp(pr, units, nunits, x, err, errsize);
  glp_term_out(old);
  return rc;
}

/* Replays one member's share of its unit's LP plan. The setpoint of a step is the single
 * direction (charge or discharge) that changes the stored energy as the LP's c and d do: the
 * same as d − c when one of them is 0. With both > 0 the LP burns energy, which one setpoint
 * cannot express; the single direction keeps the energy trajectory and never raises the net
 * load, so it is as good for MIN_PEAK and KEEP_BELOW and, with prices ≥ 0, for MIN_COST (the
 * throughput tie-break leaves no burning then anyway). Each setpoint and energy is checked
 * against the limits and the LP's energy within the solver's tolerances and clamped onto the
 * limits; false when the LP plan is off by more. */
static bool replay(const vpq_sched_problem *pr, const unit *un, const vpq_sched_battery *b, const double *x,
                   double *setpoint, double *soc) {
  const double share = b->capacity_kwh / un->capacity, dt = pr->step_hours, eff = un->eff, max = b->max_kw;
  const double lo = un->lo * b->capacity_kwh, hi = un->hi * b->capacity_kwh;
  const double tol_kw = 1e-6 * (1 + max), tol_kwh = 1e-6 * (1 + b->capacity_kwh);
  double e = b->soc * b->capacity_kwh;
  for (int t = 0; t < pr->nsteps; t++) {
    const double c = x[3 * t + COL_C] * share, d = x[3 * t + COL_D] * share, lp_e = x[3 * t + COL_E] * share;
    double p = eff * c >= d / eff ? -(c - d / (eff * eff)) : d - eff * eff * c;
    if (fabs(p) > max + tol_kw) return false;
    p = clamp(p, -max, max);
    double next = p < 0 ? e - p * dt * eff : e - p * dt / eff;
    if (next > hi) {
      p = clamp(-(hi - e) / (dt * eff), -max, 0);
      next = hi;
    } else if (next < lo) {
      p = clamp((e - lo) * eff / dt, 0, max);
      next = lo;
    }
    if (fabs(p) < 1e-9) {
      p = 0;
      next = e;
    }
    if (fabs(next - lp_e) > tol_kwh) return false;
    e = next;
    setpoint[t] = p;
    soc[t] = clamp(e / b->capacity_kwh, un->lo, un->hi);
  }
  return true;
}

/* Splits each unit's LP plan over its members (replay); an exact duplicate of the previous
 * member copies its plan. */
static int distribute(const vpq_sched_problem *pr, const member *members, const unit *units, int nunits,
                      const double *x, vpq_sched_plan *plan, char *err, size_t errsize) {
  const size_t T = (size_t)pr->nsteps;
  for (int u = 0; u < nunits; u++)
    for (int m = units[u].first; m < units[u].first + units[u].count; m++) {
      const size_t row = (size_t)members[m].index * T;
      if (m > units[u].first && duplicates(&members[m - 1], &members[m])) {
        const size_t prev = (size_t)members[m - 1].index * T;
        memcpy(&plan->setpoint_kw[row], &plan->setpoint_kw[prev], T * sizeof *plan->setpoint_kw);
        memcpy(&plan->soc[row], &plan->soc[prev], T * sizeof *plan->soc);
      } else if (!replay(pr, &units[u], &pr->batteries[members[m].index], &x[(size_t)u * T * 3],
                         &plan->setpoint_kw[row], &plan->soc[row])) {
        return fail(err, errsize, "schedule: the LP plan failed verification");
      }
    }
  return 0;
}

/* The planned net load per step. */
static void net_load(const vpq_sched_problem *pr, const vpq_sched_plan *plan, double *net) {
  const int T = pr->nsteps;
  for (int t = 0; t < T; t++) net[t] = pr->load[t];
  for (int i = 0; i < pr->nbatteries; i++)
    for (int t = 0; t < T; t++) net[t] -= plan->setpoint_kw[(size_t)i * (size_t)T + (size_t)t];
}

/* Peak, cost and cap_met of the net load. */
static void measure(const vpq_sched_problem *pr, vpq_sched_plan *plan, const double *net) {
  double peak = -INFINITY, cost = 0;
  for (int t = 0; t < pr->nsteps; t++) {
    peak = fmax(peak, net[t]);
    if (pr->objective == VPQ_SCHED_MIN_COST) cost += pr->price[t] * net[t] * pr->step_hours;
  }
  plan->peak_kw = pr->nsteps > 0 ? peak : 0;
  plan->cost = cost;
  plan->cap_met = pr->objective != VPQ_SCHED_KEEP_BELOW || plan->peak_kw <= pr->cap_kw + 1e-6;
}

/* Every battery idle: setpoints 0, soc unchanged. */
static void idle(const vpq_sched_problem *pr, vpq_sched_plan *plan) {
  for (int i = 0; i < pr->nbatteries; i++)
    for (int t = 0; t < pr->nsteps; t++) {
      const size_t k = (size_t)i * (size_t)pr->nsteps + (size_t)t;
      plan->setpoint_kw[k] = 0;
      plan->soc[k] = pr->batteries[i].soc;
    }
}

static const char *invalid(const vpq_sched_problem *pr, const vpq_sched_plan *plan) {
  if (!pr || !plan) return "schedule: no problem or plan";
  if (pr->nbatteries < 0 || pr->nsteps < 0) return "schedule: negative size";
  if (pr->nbatteries > 0 && pr->nsteps > 0 && (!pr->batteries || !plan->setpoint_kw || !plan->soc))
    return "schedule: missing batteries or plan arrays";
  if (pr->nsteps > 0 && !pr->load) return "schedule: missing load";
  if (pr->objective == VPQ_SCHED_MIN_COST && pr->nsteps > 0 && !pr->price) return "schedule: missing prices";
  if (pr->objective != VPQ_SCHED_MIN_PEAK && pr->objective != VPQ_SCHED_KEEP_BELOW &&
      pr->objective != VPQ_SCHED_MIN_COST)
    return "schedule: unknown objective";
  if (!(isfinite(pr->step_hours) && pr->step_hours > 0)) return "schedule: step length must be positive";
  if (pr->objective == VPQ_SCHED_KEEP_BELOW && !isfinite(pr->cap_kw)) return "schedule: cap must be finite";
  for (int t = 0; t < pr->nsteps; t++)
    if (!isfinite(pr->load[t]) || (pr->objective == VPQ_SCHED_MIN_COST && !isfinite(pr->price[t])))
      return "schedule: load and prices must be finite";
  return NULL;
}

int vpq_sched_solve(const vpq_sched_problem *pr, vpq_sched_plan *plan, char *err, size_t errsize) {
  const char *bad = invalid(pr, plan);
  if (bad) {
    if (plan) *plan = (vpq_sched_plan){plan->setpoint_kw, plan->soc, 0, 0, false};
    if (pr && plan && pr->nbatteries > 0 && pr->nsteps > 0 && pr->batteries && plan->setpoint_kw && plan->soc)
      idle(pr, plan);
    return fail(err, errsize, bad);
  }
  idle(pr, plan);
  if (pr->nbatteries == 0 || pr->nsteps == 0) {
    measure(pr, plan, pr->load);
    return 0;
  }
  const int T = pr->nsteps;
  member *members = malloc((size_t)pr->nbatteries * sizeof *members);
  unit *units = malloc((size_t)pr->nbatteries * sizeof *units);
  double *net = malloc((size_t)T * sizeof *net), *x = NULL;
  int rc = 0, nunits = 0;
  if (!members || !units || !net) {
    rc = fail(err, errsize, "schedule: out of memory");
  } else {
    nunits = merge(pr, members, units);
    if (nunits > 0) {
      x = malloc((size_t)nunits * (size_t)T * 3 * sizeof *x);
      rc = x ? optimise(pr, units, nunits, x, err, errsize) : fail(err, errsize, "schedule: out of memory");
    }
  }
  if (rc == 0) rc = distribute(pr, members, units, nunits, x, plan, err, errsize);
  if (rc == 0) {
    net_load(pr, plan, net);
    measure(pr, plan, net);
  } else {
    idle(pr, plan);
    measure(pr, plan, pr->load);
  }
  free(members), free(units), free(net), free(x);
  return rc;
}
