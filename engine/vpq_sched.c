/* vpq_sched.c — the battery dispatch optimiser behind SCHEDULE (vpq_sched.h): the entry point,
 * the peak objectives' loop, and the replay that turns every plan into setpoints.
 *
 * The model of vpq_sched.h is a linear programme with one block of columns per battery, coupled
 * only by the per-step net load. A real fleet has no two equal socs, so 10,000 batteries are
 * 10,000 blocks of 96 steps: far too many for a simplex in a fraction of a second. They become
 * tractable because the sum of any batteries of one efficiency is a battery of that efficiency
 * (whatever their sizes, socs, limits and C-rates), so their sum's LP is a relaxation of theirs,
 * and because a plan of the sum can be split back over them or shown not to (vpq_sched_fill.c).
 *
 * MIN_COST couples nothing: each battery's plan is its own small problem, which vpq_sched_dp.c
 * solves exactly by dynamic programming on the stored energy, once per kind and limits plus O(T)
 * per battery (with negative prices, one setpoint per step is not an LP: vpq_sched_dp.c says how).
 *
 * MIN_PEAK and KEEP_BELOW couple every battery. Their plan comes from relaxing, splitting and
 * cutting, and is returned with a certificate of optimality:
 *   1. Relax. One LP battery per class (vpq_sched_lp.c): a class is the batteries of one kind
 *      (efficiency and C-rate) when the fleet has few kinds, else of one efficiency, whatever
 *      their C-rates (classify says when); capacity, power, energy and energy bounds are the
 *      members' sums. Every fleet plan adds up to a plan
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
 * two (by C-rate, then soc) and the loop runs again over the finer classes. After
 * MAX_RELAXATIONS relaxations that found a plan meeting their peak bound, the plan with the
 * least excess throughput is returned: optimal in the primary objective, its throughput above
 * the least by at most that (measured) excess. On day-ahead fleets of a few kinds with
 * all-different socs the first relaxation is tight and certifies after a few dozen cuts
 * (bench/bench_sched.c); fleets can be made that need several relaxations (tests/unit/
 * test_sched.c's random fleets). A fleet of 10,000 batteries of all-different C-rates and 4
 * efficiencies certifies in the first relaxation over 4 classes after about a dozen rounds.
 *   Halving can cascade: an aged fleet of 2,000 batteries (test_sched.c's test_aged_large) found
 * no plan until 1,811 classes, after two minutes, and SCHEDULE re-plans every step. So the
 * halving stops at MAX_CLASSES classes (or when no class can be halved): with no plan found by
 * then, fallback() plans over those classes. Its plan is always a fleet plan, found in a bounded
 * number of LP solves, but not certified: vpq_sched_solve_gap reports how far its peak is above
 * the greatest bound the relaxations proved (on that fleet: 1.1 s, 0.017 % of the peak).
 *   A fleet planned over classes of mixed efficiencies (below) halves only those, each at its
 * change of efficiency closest to its middle; once none is left, the fallback plans (a
 * relaxation over those exact classes could not halve them further if it failed, and the
 * fallback finds the same plan when it would not). A fleet of at least SPLIT_TO_EXACT_FLEET
 * batteries and at most MAX_CLASSES efficiencies skips the classes of mixed efficiencies: it
 * starts from a class per efficiency (split_to_exact) and the fallback plans over those at once.
 * On such fleets the relaxations over mixed classes rarely found a plan (bench_sched's aged fleet
 * of 12 efficiencies: the one over 10 classes found none after 17 rounds of cuts, 0.37 s) and
 * then cost a third of the time for the same plan: bench_sched's aged fleets of 6, 8 and 12
 * efficiencies took 147, 200 and 247 ms with them, and 113, 135 and 223 ms without them (on a
busier machine), the same plans bit for bit. Of 32
 * plans (MIN_PEAK and KEEP_BELOW) of 16 random fleets of 2,000-8,000 batteries of 6-26
 * efficiencies, 25 stayed the same; 3 peaks fell (by up to 0.024 kW) and 1 rose (0.15 kW, from a
 * plan with no measured bound); 2 throughputs rose 0.3 % and 1 fell 0.15 %; the time of all 32
 * fell from 5.2 to 3.6 s. (On small fleets the
 * relaxations over mixed classes are cheap and sometimes do better, so they run there.) Halving
 * the exact classes by C-rate cascaded (bench_sched's aged fleet of 10,000 batteries took 9 s
 * with 8 efficiencies, 44 s with 12). tests/unit/test_sched.c checks such fleets
 * against glpsol. Within the fallback a mixed class may find no cut: it is held to what
 * its members can do.
 *
 * Efficiencies do not sum: batteries of different efficiencies have no exact sum. A fleet with
 * more efficiencies than EFFICIENCY_CLASSES (and more than KIND_CLASSES kinds and SMALL_FLEET
 * batteries) is planned over EFFICIENCY_CLASSES classes of close efficiencies, each an LP
 * battery of the least of its members' efficiency η (make_class). Each member's energy is
 * counted in the class's units, scaled by κ = η_member / η: a member's discharge then takes
 * exactly what the class's does (d/η per kW), and its charge stores (η_member/η)² times more,
 * so its stored energy and the power it can deliver count in full and only energy charged
 * during the horizon is undercounted. Every plan of that LP that splits is a fleet plan at least
 * as good in every step, but the LP is no relaxation. Its bound comes from RELAXED_PARTS times
 * as many classes at their greatest efficiency (relaxed_bound), and vpq_sched_solve_gap reports
 * how far the plan's peak is above it. On the bench's fleet of all-different efficiencies
 * 0.90-0.97: 58 kW, 0.12 % of the peak; the bound over 40 classes shows the plan within 44 kW,
 * 0.09 %, of the optimum. Eight classes came within 7 kW but took a minute (measured before
 * mixed classes were split at changes of efficiency): their first relaxation found no split.
 *
 * Classes of mixed efficiencies fail on fleets spread widely in efficiency and C-rate (an audit's
 * 500 batteries, efficiencies 0.80-1 and C-rates 0.05-3.4: six relaxations found no plan and the
 * fallback's was 6.8 % above the optimum, after 32 s). A fleet whose first relaxation over mixed
 * classes finds no plan, or of up to COLGEN_FLEET batteries whose plan's measured gap is above
 * COLGEN_GAP, is planned by column generation instead (vpq_sched_colgen.c): the LP battery by
 * battery, over groups of batteries of close kinds, with a Lagrangian bound that certifies it
 * (COLGEN_GROUPS below gives the figures). It is not the first choice: it takes seconds where
 * the classes take milliseconds (bench_sched's 100 kinds: 4.6 s against 61 ms, 0.08 % above the
 * optimum, battery by battery), and on small fleets it converges slowly (10 kinds: 2 % above
 * after 400 rounds), where the exact LP over kinds is fast.
 *
 * Every plan is replayed in C from each battery's charge and discharge: the setpoint of a step
 * is the single direction that changes the stored energy as they do, every energy is checked
 * against the limits and clamped onto them within the solvers' tolerances, so a returned plan
 * never breaks a limit and its soc follows from its setpoints exactly.
 *
 * One limit of the model: the LP may charge and discharge a battery in the same step, which
 * burns energy through the losses. That never lowers the peak, so those optima do not use it (a
 * plan that does anyway within the tolerances is replayed as the one setpoint with the same
 * energy change). With a negative price it lowers the cost: MIN_COST is planned with one
 * setpoint per step (vpq_sched_dp_plan_setpoints), so its optimum is one a battery can follow.
 */
#include "vpq_sched.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpq_sched_int.h"

/* Rounds of cuts per relaxation before it gives up (bench/bench_sched.c's fleets need up to
 * about 25), relaxations before the best plan found is taken, and the most classes a relaxation
 * may have: past that, with no plan found, the fallback plans over the last relaxation's classes. */
enum { MAX_CUT_ROUNDS = 64, MAX_RELAXATIONS = 3, MAX_CLASSES = 64 };

/* Rounds of cuts in the fallback over a fleet of mixed efficiencies, whose cuts are single rows
 * (vpq_sched_lp_weigh): cheap but weaker (test_sched.c's aged fleet of 4 efficiencies, planned
 * so, needed 146 rounds over 64 classes; bench_sched's fleets of 6-12 efficiencies take 28-49). */
enum { SINGLE_ROW_CUT_ROUNDS = 256 };

/* The fewest batteries for which a fleet of at most MAX_CLASSES efficiencies is planned over a
 * class per efficiency from the start (split_to_exact): on smaller fleets the relaxations over
 * mixed classes are cheap and sometimes find a better plan (of 500 random fleets of 41-640
 * batteries, a review's differential test, 59 MIN_PEAK plans changed without them, 28 for the
 * worse, by up to 0.32 %). */
enum { SPLIT_TO_EXACT_FLEET = 2000 };

/* Column generation (vpq_sched_colgen.c) plans a fleet of mixed classes whose first relaxation
 * finds no plan, and a fleet of at most COLGEN_FLEET batteries whose plan's measured gap is above
 * COLGEN_GAP; over COLGEN_GROUPS groups of batteries of close kinds (each a run of members in
 * their order), whose plans it weighs as one. Such fleets (efficiencies 0.80-1 and C-rates
 * 0.05-4, all different) halved their classes without a plan and took the fallback's, 6.8 %,
 * 10 % and 12 % above the optimum for 500, 1,000 and 2,000 batteries in 32, 48 and 45 s; a
 * natural random fleet (capacities 5-20 kWh, powers 2-10 kW, efficiencies 0.85-0.98) of 3,000 and
 * 10,000 batteries, 7 % and 8 % in 78 and 89 s. Column generation plans every one of them at
 * its certified optimum: battery by battery (a group each) in 3.3, 9.9 and 29 s for the first
 * three; over 64 groups in 1.0, 2.4, 3.6 s, and the natural fleets in 5.5 and 17 s (50 groups:
 * 1.1, 2.6, 3.8, 6 and 23 s; 100: 1.1, 3.1, 3.9, 5.7 and 24 s; 200: 1.6, 3.4 and 4.8 s). Groups restrict the LP, but on
 * these fleets the restriction cost nothing: the few batteries whose plans the optimum mixes
 * are rarely in one group; where it costs, the measured gap says so. */
enum { COLGEN_FLEET = 2000, COLGEN_GROUPS = 64 };

/* How far (relative) above its measured bound a plan over classes of mixed efficiencies may be
 * before such a fleet is planned again by column generation: 0.1 %, the optimality the tests
 * hold SCHEDULE to. */
static const double COLGEN_GAP = 1e-3;

/* How the first relaxation's classes are chosen (classify), and how many relaxed classes per
 * class bound a plan over classes of mixed efficiencies (relaxed_bound). A fleet of at most
 * SMALL_FLEET batteries is planned over its kinds, exactly, however many there are: an audit's
 * fleets of 50 and 100 all-different batteries (96 steps) came 0.39 and 0.34 kW above their
 * optimum over classes of mixed efficiencies in 0.05 and 0.5 s, and plan exactly in 0.2 and
 * 0.8 s over their kinds (bench_sched's 50 and 100 kinds: 0.9 and 3.2 s, against 51 and 55 ms
 * 0.1 and 0.4 kW above), so the exact LP is kept up to 64. */
enum { KIND_CLASSES = 8, EFFICIENCY_CLASSES = 5, SMALL_FLEET = 64, RELAXED_PARTS = 2 };

/* The most battery-steps for which a small fleet whose plan meets the peak but not certainly the
 * least throughput is planned again battery by battery: 64 identical batteries over 96 steps
 * took 245 ms so, against 26 ms (the exact LP's time: bench_sched's 10 and 25 batteries of as
 * many kinds over 96 steps, 35 and 270 ms). */
enum { EXACT_THROUGHPUT_CELLS = 2048 };

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

/* The kind of a battery: efficiency, then C-rate (max_kw / capacity). */
static int compare_kind(const vpq_sched_member *a, const vpq_sched_member *b) {
  const double ka[] = {a->eff, a->max_kw / a->capacity};
  const double kb[] = {b->eff, b->max_kw / b->capacity};
  for (size_t k = 0; k < sizeof ka / sizeof ka[0]; k++)
    if (ka[k] != kb[k]) return ka[k] < kb[k] ? -1 : 1;
  return 0;
}

/* Orders members by kind, then soc, then widened limits, then index: a run of members of one
 * efficiency is sorted by C-rate (the peak objectives' classes and their splits cut it there),
 * and the order is deterministic. */
static int compare_members(const void *pa, const void *pb) {
  const vpq_sched_member *a = pa, *b = pb;
  const int kind = compare_kind(a, b);
  if (kind != 0) return kind;
  const double ka[] = {a->soc, a->lo, a->hi}, kb[] = {b->soc, b->lo, b->hi};
  for (size_t k = 0; k < sizeof ka / sizeof ka[0]; k++)
    if (ka[k] != kb[k]) return ka[k] < kb[k] ? -1 : 1;
  return (a->index > b->index) - (a->index < b->index);
}

/* MIN_COST's order: by kind and widened limits (the batteries that share vpq_sched_dp.c's
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

/* The class of members [first, first + count). Its LP battery has the members' least efficiency
 * η, or their greatest when `relaxed`, and counts each member's energy scaled by η_member / η
 * (the header above): discharging, a member then moves the class's energy per kW; charging,
 * (η_member/η)² times it. With the least, every plan of the LP splits (when it splits) into
 * member plans that put as much power on the grid when discharging and draw no more when
 * charging: the LP restricts the fleet. With the greatest, every fleet plan adds up to an LP
 * plan that draws no more: the LP relaxes the fleet. With one efficiency, both are the fleet's
 * sum exactly. */
static vpq_sched_class make_class(const vpq_sched_member *members, int first, int count, bool relaxed) {
  vpq_sched_class c = {members[first].eff, 0, 0, 0, 0, 0, 0, first, count, true};
  for (int m = first; m < first + count; m++)
    c.eff = relaxed ? fmax(c.eff, members[m].eff) : fmin(c.eff, members[m].eff);
  for (int m = first; m < first + count; m++) {
    const vpq_sched_member *b = &members[m];
    const double scale = b->eff / c.eff, weight = b->capacity * scale;
    c.capacity += weight;
    c.charge_kw += b->max_kw * scale * scale;
    c.discharge_kw += b->max_kw;
    c.e0 += b->soc * weight;
    c.lo_kwh += b->lo * weight;
    c.hi_kwh += b->hi * weight;
    c.exact = c.exact && b->eff == c.eff;
  }
  return c;
}

/* Groups the sorted members into classes; returns their number. A fleet of at most KIND_CLASSES
 * kinds, or of at most SMALL_FLEET batteries, gets a class per kind (efficiency and C-rate), as
 * the classes of one kind split best; else a fleet of at most EFFICIENCY_CLASSES efficiencies a
 * class per efficiency (exact, whatever the C-rates); else EFFICIENCY_CLASSES classes of about
 * equal count of close efficiencies (mixed: the plan's gap is measured). */
static int classify(const vpq_sched_member *members, int n, vpq_sched_class *classes) {
  int kinds = 1, efficiencies = 1;
  for (int m = 1; m < n; m++) {
    kinds += compare_kind(&members[m - 1], &members[m]) != 0;
    efficiencies += members[m - 1].eff != members[m].eff;
  }
  const bool by_kind = kinds <= KIND_CLASSES || n <= SMALL_FLEET, by_efficiency = efficiencies <= EFFICIENCY_CLASSES;
  int nclasses = 0;
  for (int first = 0, m = 1; m <= n; m++) {
    const bool boundary =
        m == n || (by_kind ? compare_kind(&members[m - 1], &members[m]) != 0
                           : members[m - 1].eff != members[m].eff &&
                                 (by_efficiency || (long long)m * EFFICIENCY_CLASSES >= (long long)n * (nclasses + 1)));
    if (boundary) {
      classes[nclasses++] = make_class(members, first, m - first, false);
      first = m;
    }
  }
  return nclasses;
}

/* ===== MIN_COST ===== */

/* Plans every member by vpq_sched_dp.c, once per run of members with the same class and
 * widened limits (outside their limits, batteries have limits of their own). */
static int plan_cost(const vpq_sched_problem *pr, const vpq_sched_member *members, int n, double *charge,
                     double *discharge, char *err, size_t errsize) {
  const vpq_sched_dp_prices prices = {pr->price, pr->price};
  for (int first = 0, m = 1; m <= n; m++)
    if (m == n || compare_kind(&members[m - 1], &members[m]) != 0 || members[m - 1].lo != members[m].lo ||
        members[m - 1].hi != members[m].hi) {
      if (!vpq_sched_dp_plan_setpoints(pr, &prices, &members[first], m - first, charge, discharge))
        return fail(err, errsize, "schedule: out of memory");
      first = m;
    }
  return 0;
}

/* ===== MIN_PEAK and KEEP_BELOW: relax, split, cut ===== */

/* Splits class k in two in its members' order (efficiency, then C-rate, then soc): halves, or
 * for a class of mixed efficiencies at the change of efficiency closest to its middle. The lower
 * part stays class k, the upper part becomes class *n. */
static void split_class(const vpq_sched_member *members, vpq_sched_class *classes, int k, int *n) {
  const int first = classes[k].first, count = classes[k].count;
  int half = count / 2;
  if (!classes[k].exact) {
    int best = 0;
    for (int m = first + 1; m < first + count; m++)
      if (members[m - 1].eff != members[m].eff && (best == 0 || abs(m - first - half) < abs(best - half)))
        best = m - first;
    half = best;
  }
  classes[k] = make_class(members, first, half, false);
  classes[(*n)++] = make_class(members, first + half, count - half, false);
}

/* The number of different efficiencies of the members (sorted by efficiency first). */
static int count_efficiencies(const vpq_sched_member *members, int n) {
  int count = n > 0;
  for (int m = 1; m < n; m++) count += members[m - 1].eff != members[m].eff;
  return count;
}

/* What one relaxation achieved: no plan at the peak bound, or a plan that meets it (optimal in
 * its primary objective) whose throughput is or is not within THROUGHPUT_TOLERANCE of the
 * relaxation's bound. */
typedef enum outcome { NO_PLAN, PLAN, CERTIFIED } outcome;

/* The peak objectives' loop: the classes, scratch, and the best plan so far. */
typedef struct peak_loop {
  const vpq_sched_problem *pr;
  const vpq_sched_member *members;
  vpq_sched_class *classes;
  int nclasses;
  vpq_sched_fill *fill;
  double *x, *last_x;         /* the LP's plan per class (vpq_sched_int.h), this round and the last */
  bool *filled;               /* per class: last_x split over its members */
  vpq_sched_cut *cuts;        /* per class, one round's */
  bool *split;                /* per class: it got in the way */
  double *charge, *discharge; /* the best plan's, per battery (vpq_sched_fill_members) */
  double excess;              /* its throughput above its relaxation's bound, relative */
  double bound;               /* the greatest primary optimum of a relaxation of exact classes */
  bool mixed;                 /* the first relaxation's classes mix efficiencies */
} peak_loop;

/* Whether every class's members share its efficiency (its LP battery is their exact sum). */
static bool all_exact(const peak_loop *L) {
  for (int k = 0; k < L->nclasses; k++)
    if (!L->classes[k].exact) return false;
  return true;
}

/* Fills class k's LP plan; a plan that was the same last round and split needs no fill. */
static vpq_sched_fill_result fill_class(peak_loop *L, int k, vpq_sched_cut *cut) {
  const size_t block = (size_t)L->pr->nsteps * 2, at = (size_t)k * block;
  if (L->filled[k] && memcmp(&L->x[at], &L->last_x[at], block * sizeof *L->x) == 0) return VPQ_SCHED_FILL_OK;
  memcpy(&L->last_x[at], &L->x[at], block * sizeof *L->x);
  const vpq_sched_fill_result r = vpq_sched_fill_class(L->fill, L->pr, L->members, &L->classes[k], k, &L->x[at], cut);
  L->filled[k] = r == VPQ_SCHED_FILL_OK;
  return r;
}

/* Makes the LP plan in L->x the best plan: each class's plan split over its members. With
 * `clamp`, a class whose plan does not split moves what its members can (vpq_sched_fill_class
 * with no cut); else every class's plan must split. */
static void keep_plan(peak_loop *L, bool clamp) {
  const vpq_sched_problem *pr = L->pr;
  for (int k = 0; k < L->nclasses; k++) {
    vpq_sched_cut unused;
    const vpq_sched_class *c = &L->classes[k];
    vpq_sched_fill_class(L->fill, pr, L->members, c, k, &L->x[(size_t)k * (size_t)pr->nsteps * 2],
                         clamp ? NULL : &unused);
    vpq_sched_fill_members(L->fill, pr, L->members, c, L->charge, L->discharge);
  }
}

/* Halves every class of mixed efficiencies (split_class) again and again until each class has one
 * efficiency (the header above says when and why). */
static void split_to_exact(peak_loop *L) {
  for (bool halved = true; halved;) {
    halved = false;
    for (int k = 0, before = L->nclasses; k < before; k++)
      if (!L->classes[k].exact) {
        split_class(L->members, L->classes, k, &L->nclasses);
        halved = true;
      }
  }
}

/* One relaxation: the LP over the current classes, then rounds of splitting and cutting. A plan
 * whose throughput exceeds its bound by less than L->excess (relative) becomes the best plan.
 * Classes that got in the way are marked in L->split; *failed is set when the LP solver fails. */
static outcome relax_and_split(peak_loop *L, bool *failed) {
  const vpq_sched_problem *pr = L->pr;
  vpq_sched_lp *lp = vpq_sched_lp_solve(pr, L->classes, L->nclasses);
  if (!lp) {
    *failed = true;
    return NO_PLAN;
  }
  memset(L->filled, 0, (size_t)L->nclasses * sizeof *L->filled);
  vpq_sched_fill_forget(L->fill, L->nclasses);
  /* the bounds: the relaxation's, and still valid while every cut holds for every fleet plan
   * (from_start); a rise of the primary optimum is accepted on the same condition */
  double bound = vpq_sched_lp_throughput(lp), primary = vpq_sched_lp_primary(lp);
  bool split_ok = false, valid = true, in_bounds = true;
  for (int round = 0; round < MAX_CUT_ROUNDS && in_bounds; round++) {
    vpq_sched_lp_plan(lp, L->x);
    int ncuts = 0;
    bool stuck = false;
    for (int k = 0; k < L->nclasses; k++) {
      const vpq_sched_fill_result r = fill_class(L, k, &L->cuts[ncuts]);
      if (r == VPQ_SCHED_FILL_CUT && !L->cuts[ncuts].from_start) {
        /* the cut assumes the class's state at the run's start: hold the class's plan before it */
        vpq_sched_lp_hold(lp, k, L->cuts[ncuts].first);
        valid = false;
      }
      if (r == VPQ_SCHED_FILL_CUT) ncuts++;
      if (r != VPQ_SCHED_FILL_OK) L->split[k] = true;
      stuck = stuck || r == VPQ_SCHED_FILL_STUCK;
    }
    if (stuck) break;
    if (ncuts == 0) {
      split_ok = true;
      break;
    }
    in_bounds = vpq_sched_lp_add_cuts(lp, L->cuts, ncuts);
    if (!in_bounds && valid) in_bounds = vpq_sched_lp_reoptimise(lp);
    if (valid) bound = vpq_sched_lp_throughput(lp), primary = vpq_sched_lp_primary(lp);
  }
  const double over = (vpq_sched_lp_throughput(lp) - bound) / fmax(fabs(bound), 1);
  vpq_sched_lp_free(lp);
  if (all_exact(L)) L->bound = fmax(L->bound, primary);
  if (!split_ok) return NO_PLAN;
  if (over < L->excess) {
    L->excess = over;
    keep_plan(L, false);
  }
  return over <= THROUGHPUT_TOLERANCE ? CERTIFIED : PLAN;
}

/* The fallback when the relaxations reach MAX_CLASSES classes or can split none (in a fleet
 * planned over classes of mixed efficiencies, once no mixed class is left to split) without a
 * plan: the LP over the current classes, split and cut as a relaxation is, but it never gives
 * up. After its first (lexicographic) optimum, whose primary objective over exact classes
 * raises L->bound, the LP has one stage, the primary objective weighted far above the
 * throughput (vpq_sched_lp_weigh): cuts and held classes re-optimise by the dual simplex from
 * the last basis, and the peak rises as far as they need. (Solving the two stages again after
 * every round that raised the peak took longer and planned worse: bench_sched's aged fleets of
 * 6, 8 and 12 efficiencies came within 17.8, 5.0 and 57 kW of their bounds in 0.43, 0.58 and
 * 2.5 s; one stage, 0.03, 1.9 and 34 kW in 0.39, 0.50 and 1.7 s; one stage with each cut a
 * single row, as now for fleets of mixed efficiencies, 0.17, 5.4 and 20 kW in 0.25, 0.36 and
 * 0.78 s, the rows of the full cuts having grown its LP round after round; the same plans now
 * take 0.15, 0.20 and 0.26 s, header above.) A class whose plan does not split and yields no
 * cut is held to the plan its members can follow (the fill clamped, step by step) and the LP
 * re-optimises the others around it. After the last round
 * (MAX_CUT_ROUNDS, or SINGLE_ROW_CUT_ROUNDS, at most) each class's plan is split over its
 * members, a class that still cannot follow its plan moving what its members can (keep_plan's
 * clamp): a fleet plan, always, after a bounded number of solves of an LP of at most
 * MAX_CLASSES classes. Its peak is not bounded by the LP's: the caller
 * measures its gap. False when the LP solver finds no first optimum or memory runs out. */
static bool fallback(peak_loop *L) {
  const vpq_sched_problem *pr = L->pr;
  const size_t block = (size_t)pr->nsteps * 2;
  double *followed = malloc(block * sizeof *followed);
  vpq_sched_lp *lp = followed ? vpq_sched_lp_solve(pr, L->classes, L->nclasses) : NULL;
  if (!lp) {
    free(followed);
    return false;
  }
  if (all_exact(L)) L->bound = fmax(L->bound, vpq_sched_lp_primary(lp));
  vpq_sched_lp_plan(lp, L->x); /* the plan kept should the one stage find no optimum */
  bool solved = vpq_sched_lp_weigh(lp, L->mixed);
  memset(L->filled, 0, (size_t)L->nclasses * sizeof *L->filled);
  vpq_sched_fill_forget(L->fill, L->nclasses);
  const int rounds = L->mixed ? SINGLE_ROW_CUT_ROUNDS : MAX_CUT_ROUNDS;
  for (int round = 0; solved && round < rounds; round++) {
    vpq_sched_lp_plan(lp, L->x);
    int ncuts = 0, nheld = 0;
    for (int k = 0; k < L->nclasses; k++) {
      const vpq_sched_fill_result r = fill_class(L, k, &L->cuts[ncuts]);
      if (r == VPQ_SCHED_FILL_CUT) {
        if (!L->cuts[ncuts].from_start) vpq_sched_lp_hold(lp, k, L->cuts[ncuts].first);
        ncuts++;
      } else if (r == VPQ_SCHED_FILL_STUCK) {
        vpq_sched_fill_class(L->fill, pr, L->members, &L->classes[k], k, &L->x[(size_t)k * block], NULL);
        vpq_sched_fill_class_plan(L->fill, pr, L->members, &L->classes[k], followed);
        vpq_sched_lp_fix(lp, k, followed);
        nheld++;
      }
    }
    if (ncuts == 0 && nheld == 0) break;
    solved = ncuts > 0 ? vpq_sched_lp_add_cuts(lp, L->cuts, ncuts) : vpq_sched_lp_reoptimise(lp);
  }
  if (solved) vpq_sched_lp_plan(lp, L->x);
  keep_plan(L, true);
  vpq_sched_lp_free(lp);
  free(followed);
  return true;
}

/* A bound on the primary objective when some class mixes efficiencies (its LP restricts the
 * fleet, so its optimum is no bound), or when the classes are exact but no LP over them gave
 * one (the plan came from a relaxation over mixed classes): the optimum of the LP over each
 * class cut into RELAXED_PARTS runs of members (closer efficiencies), relaxed. */
static bool relaxed_bound(peak_loop *L, double *bound) {
  if (all_exact(L) && isfinite(L->bound)) return true;
  const int parts = RELAXED_PARTS;
  vpq_sched_class *relaxed = malloc((size_t)L->nclasses * (size_t)parts * sizeof *relaxed);
  vpq_sched_lp *lp = NULL;
  int n = 0;
  if (relaxed) {
    for (int k = 0; k < L->nclasses; k++) {
      const int first = L->classes[k].first, count = L->classes[k].count;
      for (int p = 0, at = first; p < parts; p++) {
        const int end = first + (int)((long long)count * (p + 1) / parts);
        if (end > at) relaxed[n++] = make_class(L->members, at, end - at, true);
        at = end > at ? end : at;
      }
    }
    lp = vpq_sched_lp_solve(L->pr, relaxed, n);
  }
  if (lp) *bound = vpq_sched_lp_primary(lp);
  free(relaxed);
  vpq_sched_lp_free(lp);
  return lp != NULL;
}

/* The primary objective of the members' plan in rows charge and discharge: its peak, or for
 * KEEP_BELOW its excess over the cap. */
static double primary_objective(const vpq_sched_problem *pr, const vpq_sched_member *members, int n,
                                const double *charge, const double *discharge) {
  const size_t T = (size_t)pr->nsteps;
  double peak = -INFINITY;
  for (size_t t = 0; t < T; t++) {
    double net = pr->load[t];
    for (int m = 0; m < n; m++) net -= discharge[(size_t)members[m].index * T + t] - charge[(size_t)members[m].index * T + t];
    peak = fmax(peak, net);
  }
  return pr->objective == VPQ_SCHED_KEEP_BELOW ? fmax(0, peak - pr->cap_kw) : peak;
}

/* Plans the members again by column generation into scratch rows and keeps that plan when its
 * primary objective is lower (column generation may stop at its round limit above the classes'
 * plan, or fail), and the greater of the two bounds. */
static void plan_again_by_colgen(const vpq_sched_problem *pr, const vpq_sched_member *members, int n, double *charge,
                                 double *discharge, double *bound) {
  const size_t T = (size_t)pr->nsteps, cells = (size_t)pr->nbatteries * T;
  double *c = calloc(cells, sizeof *c), *d = calloc(cells, sizeof *d), colgen_bound;
  if (c && d && vpq_sched_colgen_plan(pr, members, n, COLGEN_GROUPS, c, d, &colgen_bound)) {
    *bound = fmax(*bound, colgen_bound);
    if (primary_objective(pr, members, n, c, d) < primary_objective(pr, members, n, charge, discharge))
      for (int m = 0; m < n; m++) {
        const size_t row = (size_t)members[m].index * T;
        memcpy(&charge[row], &c[row], T * sizeof *c);
        memcpy(&discharge[row], &d[row], T * sizeof *d);
      }
  }
  free(c), free(d);
}

/* Plans the peak objectives: relaxations over finer and finer classes until one is certified,
 * or, after MAX_RELAXATIONS, the plan with the least excess throughput of those that meet their
 * relaxation's peak, or, at MAX_CLASSES classes with no such plan, the fallback's. *bound
 * becomes a bound on the primary objective that no fleet plan beats. */
static int plan_peak(const vpq_sched_problem *pr, const vpq_sched_member *members, int n, double *charge,
                     double *discharge, double *bound, char *err, size_t errsize) {
  const size_t T = (size_t)pr->nsteps, N = (size_t)n;
  peak_loop L = {.pr = pr,
                 .members = members,
                 .classes = malloc(N * sizeof *L.classes),
                 .x = malloc(N * T * 2 * sizeof *L.x),
                 .last_x = malloc(N * T * 2 * sizeof *L.last_x),
                 .filled = malloc(N * sizeof *L.filled),
                 .cuts = malloc(N * sizeof *L.cuts),
                 .split = malloc(N * sizeof *L.split),
                 .charge = charge,
                 .discharge = discharge,
                 .excess = INFINITY,
                 .bound = -INFINITY};
  int largest = 0;
  if (L.classes) L.nclasses = classify(members, n, L.classes);
  for (int k = 0; k < L.nclasses; k++) largest = L.classes[k].count > largest ? L.classes[k].count : largest;
  L.fill = vpq_sched_fill_new(largest, pr->nsteps);
  int rc = L.classes && L.x && L.last_x && L.filled && L.cuts && L.split && L.fill
               ? 1
               : fail(err, errsize, "schedule: out of memory");
  L.mixed = !all_exact(&L);
  if (L.mixed && n >= SPLIT_TO_EXACT_FLEET && count_efficiencies(members, n) <= MAX_CLASSES) split_to_exact(&L);
  for (int relaxation = 1; rc == 1; relaxation++) {
    if (L.mixed && all_exact(&L)) { /* nothing left to split should this relaxation find no plan */
      rc = isfinite(L.excess) || fallback(&L) ? 0 : fail(err, errsize, "schedule: the LP solver found no optimum");
      break;
    }
    bool failed = false;
    memset(L.split, 0, N * sizeof *L.split);
    const outcome o = relax_and_split(&L, &failed);
    double colgen_bound;
    if (relaxation == 1 && o == NO_PLAN && L.mixed &&
        vpq_sched_colgen_plan(pr, members, n, COLGEN_GROUPS, charge, discharge, &colgen_bound)) {
      /* classes of mixed efficiencies that do not split: the LP by column generation (should
       * it fail, the classes are halved as before) */
      L.nclasses = 0;
      L.bound = fmax(L.bound, colgen_bound);
      rc = 0;
      break;
    }
    if (failed) {
      rc = fail(err, errsize, "schedule: the LP solver found no optimum");
      break;
    }
    if (o == CERTIFIED || (isfinite(L.excess) && relaxation >= MAX_RELAXATIONS)) {
      rc = 0;
      break;
    }
    const int before = L.nclasses;
    for (int k = 0; k < before; k++)
      if (L.split[k] && L.classes[k].count > 1 && (!L.mixed || !L.classes[k].exact))
        split_class(members, L.classes, k, &L.nclasses);
    if (L.nclasses == before || L.nclasses >= MAX_CLASSES) {
      rc = isfinite(L.excess) || fallback(&L) ? 0 : fail(err, errsize, "schedule: the LP solver found no optimum");
      break;
    }
  }
  if (rc == 0 && n <= SMALL_FLEET && L.nclasses < n &&
      (!isfinite(L.excess) || (L.excess > THROUGHPUT_TOLERANCE && N * T <= EXACT_THROUGHPUT_CELLS))) {
    /* A small fleet whose plan is not certified (its peak, after the fallback, or, on a small LP,
     * its throughput): a class per battery is its exact LP, which splits as it is (five
     * identical batteries at different socs, one of them charging 2 kWh more than any need:
     * audit 39). */
    for (int m = 0; m < n; m++) L.classes[m] = make_class(members, m, 1, false);
    L.nclasses = n;
    memset(L.split, 0, N * sizeof *L.split);
    bool failed = false;
    relax_and_split(&L, &failed);
    if (failed) rc = fail(err, errsize, "schedule: the LP solver found no optimum");
  }
  *bound = L.bound;
  if (rc == 0 && !relaxed_bound(&L, bound)) rc = fail(err, errsize, "schedule: the LP solver found no optimum");
  if (rc == 0 && L.mixed && n > SMALL_FLEET && n <= COLGEN_FLEET && L.nclasses > 0 &&
      primary_objective(pr, members, n, charge, discharge) - *bound > COLGEN_GAP * (1 + fabs(*bound)))
    plan_again_by_colgen(pr, members, n, charge, discharge, bound);
  free(L.classes), free(L.x), free(L.last_x), free(L.filled), free(L.cuts), free(L.split);
  vpq_sched_fill_free(L.fill);
  return rc;
}

/* ===== Replay ===== */

/* Turns a member's charge c and discharge d per step (kW, read from the rows of setpoint and
 * soc) into its plan, in place: the setpoint of a step is the single direction that changes the
 * stored energy as c and d do, the same as d − c when one of them is 0. With both > 0 the plan
 * burns energy, which one setpoint cannot express; the single direction keeps the energy
 * trajectory and never raises the net load, so it is as good for MIN_PEAK and KEEP_BELOW (and
 * MIN_COST's plans never burn). Each setpoint and energy is checked against the limits within
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
  return vpq_sched_solve_gap(pr, plan, NULL, err, errsize);
}

int vpq_sched_solve_gap(const vpq_sched_problem *pr, vpq_sched_plan *plan, double *peak_gap_kw, char *err,
                        size_t errsize) {
  const char *bad = invalid(pr, plan);
  if (peak_gap_kw) *peak_gap_kw = bad ? NAN : 0;
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
  double *charge = plan->setpoint_kw, *discharge = plan->soc, bound = -INFINITY;
  const bool peak = pr->objective != VPQ_SCHED_MIN_COST;
  if (rc == 0 && n > 0)
    rc = peak ? plan_peak(pr, members, n, charge, discharge, &bound, err, errsize)
              : plan_cost(pr, members, n, charge, discharge, err, errsize);
  for (int m = 0; rc == 0 && m < n; m++) {
    const size_t row = (size_t)members[m].index * T;
    if (!replay(pr, &members[m], &charge[row], &discharge[row]))
      rc = fail(err, errsize, "schedule: the plan failed verification");
  }
  if (rc == 0) {
    net_load(pr, plan, net);
    measure(pr, plan, net);
    /* the primary's bound as a peak: KEEP_BELOW's is an excess over the cap, and its plans are
     * judged by max(peak, cap) */
    const bool below = pr->objective == VPQ_SCHED_KEEP_BELOW;
    if (peak_gap_kw && peak && n > 0)
      *peak_gap_kw = fmax(0, (below ? fmax(plan->peak_kw, pr->cap_kw) : plan->peak_kw) -
                                 (below ? pr->cap_kw + bound : bound));
  } else {
    idle(pr, plan);
    measure(pr, plan, pr->load);
    if (peak_gap_kw) *peak_gap_kw = NAN;
  }
  free(members), free(net);
  return rc;
}
