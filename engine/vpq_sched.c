/* vpq_sched.c — the battery dispatch optimiser behind SCHEDULE (vpq_sched.h): the entry point,
 * the peak objectives' loop, and the replay that turns every plan into setpoints.
 *
 * The model of vpq_sched.h is a linear programme with one block of columns per battery, coupled
 * only by the per-step net load. A real fleet has no two equal socs, so 10,000 batteries are
 * 10,000 blocks of 96 steps: far too many for a simplex in a fraction of a second. They become
 * tractable because batteries of one kind (efficiency and C-rate) differ only in size, soc and
 * soc limits, and sizes scale away.
 *
 * MIN_COST couples nothing: each battery's plan is its own small LP, which vpq_sched_dp.c solves
 * exactly by dynamic programming on the stored energy, once per kind and limits plus O(T) per
 * battery.
 *
 * MIN_PEAK and KEEP_BELOW couple every battery. Their plan comes from relaxing, splitting and
 * cutting, and is returned with a certificate of optimality:
 *   1. Relax. One LP battery per class, the batteries of one kind (vpq_sched_lp.c): capacity,
 *      power, energy and energy bounds are the members' sums. Every fleet plan adds up to a plan
 *      of this LP, so its lexicographic optimum, the peak (or excess over the cap) z0 and then the
 *      throughput W0, bounds every fleet plan from below.
 *   2. Split. vpq_sched_fill.c splits each class's LP plan over its members by water-filling. A
 *      plan that splits is a fleet plan with the LP's net load and throughput; it meets z0 (within
 *      the tie-break's 1e-7·|z0| + 1e-6), which no plan beats, and if its throughput is within
 *      THROUGHPUT_TOLERANCE of W0 it is optimal in both.
 *   3. Cut. Where a class's plan does not split, vpq_sched_fill.c returns an inequality that the
 *      plan breaks (in any j steps of a run the class cannot move more energy than its members
 *      can take) and the LP re-optimises with it from its basis (dual simplex). A cut from the
 *      fleet's state now holds for every fleet plan: the LP stays a relaxation, and when z0 can
 *      no longer be met its optimum rises to a new bound that is still valid. A cut from a later
 *      run's start assumes the class's state there, so the LP holds that class's earlier steps as
 *      they are (else it would dodge the cut by moving energy before the run, round after round);
 *      the bounds are then frozen, and if z0 can no longer be met the relaxation gives up.
 * A relaxation that gives up or misses W0 marks the classes that needed cuts; they are split in
 * two by soc and the loop runs again over the finer classes. A class of one battery never needs a
 * cut, so the loop ends. After MAX_RELAXATIONS relaxations that found a plan meeting their peak
 * bound, the plan with the least excess throughput is returned: optimal in the primary
 * objective, its throughput above the least by at most that (measured) excess. On day-ahead
 * fleets of a few kinds with all-different socs the first relaxation is tight and certifies
 * after a few dozen cuts (bench/bench_sched.c); fleets can be made that need several
 * relaxations (tests/unit/test_sched.c's random fleets), which costs time, not the peak.
 *
 * Every plan is replayed in C from each battery's charge and discharge: the setpoint of a step
 * is the single direction that changes the stored energy as they do, every energy is checked
 * against the limits and clamped onto them within the solvers' tolerances, so a returned plan
 * never breaks a limit and its soc follows from its setpoints exactly.
 *
 * One limit of the model: the LP may charge and discharge a battery in the same step, which
 * burns energy through the losses. That never lowers the peak or, with prices ≥ 0, the cost, so
 * those optima do not use it; with negative prices they can, and the replay turns such a step
 * into the one setpoint with the same energy change: the plan is then feasible and consistent
 * but may cost more than the LP's optimum.
 */
#include "vpq_sched.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpq_sched_int.h"

/* Rounds of cuts per relaxation before it gives up (bench/bench_sched.c's fleets need up to
 * about 25), and relaxations before the best plan found is taken. */
enum { MAX_CUT_ROUNDS = 64, MAX_RELAXATIONS = 3 };

/* How far above the relaxation's least throughput a plan's may be and still count as the least:
 * relative, 0.01 %. */
static const double THROUGHPUT_TOLERANCE = 1e-4;

static int fail(char *err, size_t errsize, const char *msg) {
  if (err && errsize > 0) snprintf(err, errsize, "%s", msg);
  return -1;
}

static double efficiency(double eff) { return eff > 0 && eff <= 1 ? eff : 1; }

static double clamp(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

static bool usable(const vpq_sched_battery *b) {
  return isfinite(b->soc) && isfinite(b->capacity_kwh) && isfinite(b->max_kw) && isfinite(b->min_soc) &&
         isfinite(b->max_soc) && b->capacity_kwh > 0 && b->max_kw > 0 && b->min_soc <= b->max_soc;
}

/* ===== Batteries and classes ===== */

/* The key that decides which members the LP plans as one class. */
static int compare_kind(const vpq_sched_member *a, const vpq_sched_member *b) {
  const double ka[] = {a->eff, a->max_kw / a->capacity};
  const double kb[] = {b->eff, b->max_kw / b->capacity};
  for (size_t k = 0; k < sizeof ka / sizeof ka[0]; k++)
    if (ka[k] != kb[k]) return ka[k] < kb[k] ? -1 : 1;
  return 0;
}

/* Orders members by class, then soc, then widened limits, then index: classes are contiguous
 * and sorted by soc (as vpq_sched_fill.c needs), and the order is deterministic. */
static int compare_members(const void *pa, const void *pb) {
  const vpq_sched_member *a = pa, *b = pb;
  const int kind = compare_kind(a, b);
  if (kind != 0) return kind;
  const double ka[] = {a->soc, a->lo, a->hi}, kb[] = {b->soc, b->lo, b->hi};
  for (size_t k = 0; k < sizeof ka / sizeof ka[0]; k++)
    if (ka[k] != kb[k]) return ka[k] < kb[k] ? -1 : 1;
  return (a->index > b->index) - (a->index < b->index);
}

/* MIN_COST's order: by class and widened limits (the batteries that share vpq_sched_dp.c's
 * backward pass), then as compare_members. */
static int compare_members_cost(const void *pa, const void *pb) {
  const vpq_sched_member *a = pa, *b = pb;
  const int kind = compare_kind(a, b);
  if (kind != 0) return kind;
  if (a->lo != b->lo) return a->lo < b->lo ? -1 : 1;
  if (a->hi != b->hi) return a->hi < b->hi ? -1 : 1;
  return compare_members(pa, pb);
}

/* The usable batteries as members, sorted for the objective; returns their number. */
static int collect(const vpq_sched_problem *pr, vpq_sched_member *members) {
  int n = 0;
  for (int i = 0; i < pr->nbatteries; i++) {
    const vpq_sched_battery *b = &pr->batteries[i];
    if (!usable(b)) continue;
    members[n++] = (vpq_sched_member){.soc = b->soc,
                                      .capacity = b->capacity_kwh,
                                      .max_kw = b->max_kw,
                                      .eff = efficiency(b->efficiency),
                                      .lo = fmin(b->min_soc, b->soc),
                                      .hi = fmax(b->max_soc, b->soc),
                                      .index = i};
  }
  qsort(members, (size_t)n, sizeof *members,
        pr->objective == VPQ_SCHED_MIN_COST ? compare_members_cost : compare_members);
  return n;
}

/* The class of members [first, first + count). */
static vpq_sched_class make_class(const vpq_sched_member *members, int first, int count) {
  const vpq_sched_member *m0 = &members[first];
  vpq_sched_class c = {m0->eff, m0->max_kw / m0->capacity, 0, 0, 0, 0, 0, first, count};
  for (int m = first; m < first + count; m++) {
    const vpq_sched_member *b = &members[m];
    c.capacity += b->capacity;
    c.max_kw += b->max_kw;
    c.e0 += b->soc * b->capacity;
    c.lo_kwh += b->lo * b->capacity;
    c.hi_kwh += b->hi * b->capacity;
  }
  return c;
}

/* Groups the sorted members into classes; returns their number. */
static int classify(const vpq_sched_member *members, int n, vpq_sched_class *classes) {
  int nclasses = 0;
  for (int first = 0, m = 1; m <= n; m++)
    if (m == n || compare_kind(&members[m - 1], &members[m]) != 0) {
      classes[nclasses++] = make_class(members, first, m - first);
      first = m;
    }
  return nclasses;
}

/* ===== MIN_COST ===== */

/* Plans every member by vpq_sched_dp.c, once per run of members with the same class and
 * widened limits (outside their limits, batteries have limits of their own). */
static int plan_cost(const vpq_sched_problem *pr, const vpq_sched_member *members, int n, double *charge,
                     double *discharge, char *err, size_t errsize) {
  for (int first = 0, m = 1; m <= n; m++)
    if (m == n || compare_kind(&members[m - 1], &members[m]) != 0 || members[m - 1].lo != members[m].lo ||
        members[m - 1].hi != members[m].hi) {
      if (!vpq_sched_dp_plan(pr, &members[first], m - first, charge, discharge))
        return fail(err, errsize, "schedule: out of memory");
      first = m;
    }
  return 0;
}

/* ===== MIN_PEAK and KEEP_BELOW: relax, split, cut ===== */

/* Splits class k in two by soc (its members are sorted by soc): the lower half stays class k,
 * the upper half becomes class *n. */
static void split_class(const vpq_sched_member *members, vpq_sched_class *classes, int k, int *n) {
  const int first = classes[k].first, count = classes[k].count, half = count / 2;
  classes[k] = make_class(members, first, half);
  classes[(*n)++] = make_class(members, first + half, count - half);
}

/* What one relaxation achieved: no plan at the peak bound, or a plan that meets it (optimal in
 * its primary objective) whose throughput is or is not within THROUGHPUT_TOLERANCE of the
 * relaxation's bound. */
typedef enum outcome { NO_PLAN, PLAN, CERTIFIED } outcome;

/* One relaxation: the LP over the current classes, then rounds of splitting and cutting. A plan
 * whose throughput exceeds its bound by less than *excess (relative) goes into charge and
 * discharge, and *excess becomes its excess. Classes that got in the way are marked in split;
 * *failed is set when the LP solver fails. */
static outcome relax_and_split(const vpq_sched_problem *pr, const vpq_sched_member *members,
                               const vpq_sched_class *classes, int nclasses, vpq_sched_fill *fill, double *x,
                               vpq_sched_cut *cuts, bool *split, double *charge, double *discharge, double *excess,
                               bool *failed) {
  const int T = pr->nsteps;
  vpq_sched_lp *lp = vpq_sched_lp_solve(pr, classes, nclasses);
  if (!lp) {
    *failed = true;
    return NO_PLAN;
  }
  /* the throughput bound: the relaxation's, and still valid while every cut holds for every
   * fleet plan (from_start); a rise of the primary optimum is accepted on the same condition */
  double bound = vpq_sched_lp_throughput(lp);
  bool split_ok = false, valid = true, in_bounds = true;
  for (int round = 0; round < MAX_CUT_ROUNDS && in_bounds; round++) {
    vpq_sched_lp_plan(lp, x);
    int ncuts = 0;
    bool stuck = false;
    for (int k = 0; k < nclasses; k++) {
      const vpq_sched_fill_result r =
          vpq_sched_fill_class(fill, pr, members, &classes[k], k, &x[(size_t)k * (size_t)T * 2], &cuts[ncuts]);
      if (r == VPQ_SCHED_FILL_CUT && !cuts[ncuts].from_start) {
        /* the cut assumes the class's state at the run's start: hold the class's plan before it */
        vpq_sched_lp_hold(lp, k, cuts[ncuts].first);
        valid = false;
      }
      if (r == VPQ_SCHED_FILL_CUT) ncuts++;
      if (r != VPQ_SCHED_FILL_OK) split[k] = true;
      stuck = stuck || r == VPQ_SCHED_FILL_STUCK;
    }
    if (stuck) break;
    if (ncuts == 0) {
      split_ok = true;
      break;
    }
    in_bounds = vpq_sched_lp_add_cuts(lp, cuts, ncuts);
    if (!in_bounds && valid) in_bounds = vpq_sched_lp_reoptimise(lp);
    if (valid) bound = vpq_sched_lp_throughput(lp);
  }
  const double over = (vpq_sched_lp_throughput(lp) - bound) / fmax(fabs(bound), 1);
  vpq_sched_lp_free(lp);
  if (!split_ok) return NO_PLAN;
  if (over < *excess) {
    *excess = over;
    for (int k = 0; k < nclasses; k++) {
      vpq_sched_cut unused;
      vpq_sched_fill_class(fill, pr, members, &classes[k], k, &x[(size_t)k * (size_t)T * 2], &unused);
      vpq_sched_fill_members(fill, pr, members, &classes[k], charge, discharge);
    }
  }
  return over <= THROUGHPUT_TOLERANCE ? CERTIFIED : PLAN;
}

/* Plans the peak objectives: relaxations over finer and finer classes until one is certified,
 * or, after MAX_RELAXATIONS, the plan with the least excess throughput of those that meet their
 * relaxation's peak. */
static int plan_peak(const vpq_sched_problem *pr, const vpq_sched_member *members, int n, double *charge,
                     double *discharge, char *err, size_t errsize) {
  const size_t T = (size_t)pr->nsteps;
  vpq_sched_class *classes = malloc((size_t)n * sizeof *classes);
  vpq_sched_cut *cuts = malloc((size_t)n * sizeof *cuts);
  bool *split = malloc((size_t)n * sizeof *split);
  int nclasses = classes ? classify(members, n, classes) : 0, largest = 0;
  for (int k = 0; k < nclasses; k++) largest = classes[k].count > largest ? classes[k].count : largest;
  double *x = malloc((size_t)nclasses * T * 2 * sizeof *x);
  vpq_sched_fill *fill = vpq_sched_fill_new(largest, pr->nsteps);
  int rc = classes && cuts && split && x && fill ? 1 : fail(err, errsize, "schedule: out of memory");
  double excess = INFINITY;
  for (int relaxation = 1; rc == 1; relaxation++) {
    bool failed = false;
    memset(split, 0, (size_t)n * sizeof *split);
    const outcome o =
        relax_and_split(pr, members, classes, nclasses, fill, x, cuts, split, charge, discharge, &excess, &failed);
    if (failed) {
      rc = fail(err, errsize, "schedule: the LP solver found no optimum");
      break;
    }
    if (o == CERTIFIED || (isfinite(excess) && relaxation >= MAX_RELAXATIONS)) {
      rc = 0;
      break;
    }
    const int before = nclasses;
    for (int k = 0; k < before; k++)
      if (split[k] && classes[k].count > 1) split_class(members, classes, k, &nclasses);
    double *more = nclasses > before ? realloc(x, (size_t)nclasses * T * 2 * sizeof *x) : x;
    if (nclasses == before)
      rc = isfinite(excess) ? 0 : fail(err, errsize, "schedule: no plan meets the relaxation's bound");
    else if (!more)
      rc = fail(err, errsize, "schedule: out of memory");
    else
      x = more;
  }
  free(classes), free(cuts), free(split), free(x);
  vpq_sched_fill_free(fill);
  return rc;
}

/* ===== Replay ===== */

/* Turns a member's charge c and discharge d per step (kW, read from the rows of setpoint and
 * soc) into its plan, in place: the setpoint of a step is the single direction that changes the
 * stored energy as c and d do, the same as d − c when one of them is 0. With both > 0 the plan
 * burns energy, which one setpoint cannot express; the single direction keeps the energy
 * trajectory and never raises the net load, so it is as good for MIN_PEAK and KEEP_BELOW and,
 * with prices ≥ 0, for MIN_COST. Each setpoint and energy is checked against the limits within
 * the solvers' tolerances and clamped onto them; false when the plan is off by more. */
static bool replay(const vpq_sched_problem *pr, const vpq_sched_member *b, double *setpoint, double *soc) {
  const double dt = pr->step_hours, eff = b->eff, max = b->max_kw, capacity = b->capacity;
  const double lo = b->lo * capacity, hi = b->hi * capacity;
  const double tol_kw = 1e-6 * (1 + max), tol_kwh = 1e-6 * (1 + capacity);
  double e = b->soc * capacity;
  for (int t = 0; t < pr->nsteps; t++) {
    const double c = setpoint[t], d = soc[t];
    double p = eff * c >= d / eff ? -(c - d / (eff * eff)) : d - eff * eff * c;
    if (!(fabs(p) <= max + tol_kw)) return false;
    p = clamp(p, -max, max);
    double next = p < 0 ? e - p * dt * eff : e - p * dt / eff;
    if (!(next <= hi + tol_kwh && next >= lo - tol_kwh)) return false;
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
    e = next;
    setpoint[t] = p;
    soc[t] = clamp(e / capacity, b->lo, b->hi);
  }
  return true;
}

/* ===== The plan's figures ===== */

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
  const size_t T = (size_t)pr->nsteps;
  vpq_sched_member *members = malloc((size_t)pr->nbatteries * sizeof *members);
  double *net = malloc(T * sizeof *net);
  int rc = members && net ? 0 : fail(err, errsize, "schedule: out of memory");
  const int n = rc == 0 ? collect(pr, members) : 0;
  /* the members' charge and discharge go into the rows of setpoint and soc, then replay in place */
  double *charge = plan->setpoint_kw, *discharge = plan->soc;
  if (rc == 0 && n > 0)
    rc = pr->objective == VPQ_SCHED_MIN_COST ? plan_cost(pr, members, n, charge, discharge, err, errsize)
                                             : plan_peak(pr, members, n, charge, discharge, err, errsize);
  for (int m = 0; rc == 0 && m < n; m++) {
    const size_t row = (size_t)members[m].index * T;
    if (!replay(pr, &members[m], &charge[row], &discharge[row]))
      rc = fail(err, errsize, "schedule: the plan failed verification");
  }
  if (rc == 0) {
    net_load(pr, plan, net);
    measure(pr, plan, net);
  } else {
    idle(pr, plan);
    measure(pr, plan, pr->load);
  }
  free(members), free(net);
  return rc;
}
