/* vpq_sched_int.h — what the files of the dispatch optimiser share, and nothing else uses:
 * vpq_sched.c (entry point, batteries and classes, the peak objectives' loop, replay),
 * vpq_sched_lp.c (the LP over classes, GLPK), vpq_sched_fill.c (splitting a class's LP plan
 * over its batteries, and the cuts when it cannot be split), vpq_sched_dp.c (MIN_COST by
 * dynamic programming), vpq_sched_colgen.c (the peak objectives battery by battery, by column
 * generation priced by that dynamic programme).
 *
 *   members  [ class 0: by C-rate, then soc | class 1 | ... ]   one vpq_sched_member per usable battery
 *   classes  [ eff | sums | first, count | exact ]
 *   LP plan  x[(k·T + t)·2 + VPQ_SCHED_CHARGE / VPQ_SCHED_DISCHARGE], kW, per class k and step t
 */
#ifndef VPQ_SCHED_INT_H
#define VPQ_SCHED_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "vpq_sched.h"

enum { VPQ_SCHED_CHARGE, VPQ_SCHED_DISCHARGE };

/* A battery that can move energy, in soc units; lo and hi are its limits widened to its soc. */
typedef struct vpq_sched_member {
  double soc, capacity, max_kw, eff, lo, hi;
  int index; /* in the problem's battery array */
} vpq_sched_member;

/* Batteries that the LP plans as one battery of efficiency eff (vpq_sched.c says which), member
 * i's energy counted scaled by eff_i/eff (capacity, e0 and the bounds are sums of scaled
 * energies). Its power limits are what keeps every member's stored energy within the member's
 * own limits per step: Σ max_kw·(eff_i/eff)² charging, Σ max_kw discharging (both Σ max_kw when
 * every member's efficiency is eff: exact). */
typedef struct vpq_sched_class {
  double eff;
  double capacity, charge_kw, discharge_kw, e0, lo_kwh, hi_kwh; /* sums; e0 the stored energy now */
  int first, count;                                             /* members [first, first + count) */
  bool exact;                                                   /* every member's efficiency is eff */
} vpq_sched_class;

/* A cut on a class's plan (see vpq_sched_fill.c): over steps [first, last], which move the
 * class's energy in direction dir (VPQ_SCHED_CHARGE or _DISCHARGE) from a known state, the
 * energy moved in any `size` of them, minus the energy moved the other way in [first, last],
 * is at most bound (kWh stored). from_start: the known state is the class's state now, so the
 * cut holds for every fleet plan; otherwise only for those that reach the same state at first. */
typedef struct vpq_sched_cut {
  int cls, dir, first, last, size;
  double bound;
  bool from_start;
} vpq_sched_cut;

/* ---- vpq_sched_lp.c: the LP over classes ---- */

typedef struct vpq_sched_lp vpq_sched_lp;

/* Builds the LP of the peak objectives over the classes and solves it lexicographically (peak
 * or excess, then throughput with the first held). NULL when out of memory or when the solver
 * finds no optimum. */
vpq_sched_lp *vpq_sched_lp_solve(const vpq_sched_problem *pr, const vpq_sched_class *classes, int nclasses);

/* Adds cuts and re-optimises the throughput stage from the current basis, the primary objective
 * still held at its optimum; false when no plan meets that any more (or out of memory). After
 * vpq_sched_lp_weigh, it re-optimises the one stage: false when no optimum is found. */
bool vpq_sched_lp_add_cuts(vpq_sched_lp *lp, const vpq_sched_cut *cuts, int ncuts);

/* Solves the LP lexicographically again, cuts included: the primary objective's optimum may
 * rise (after vpq_sched_lp_weigh, the one stage, by the dual simplex). False when the solver
 * finds no optimum. */
bool vpq_sched_lp_reoptimise(vpq_sched_lp *lp);

/* Turns the lexicographic LP into one stage, the primary objective weighted far above the
 * throughput, and solves it from the current basis: from then on cuts, held and fixed classes
 * re-optimise by the dual simplex, the primary rising as far as they need (the fallback's LP).
 * vpq_sched_lp_primary stays the last lexicographic optimum. With `single_row_cuts`, each cut
 * added after it is one row over the steps in which the current plan moves the most, not the rows
 * that hold it for every choice of steps. False when no optimum is found. */
bool vpq_sched_lp_weigh(vpq_sched_lp *lp, bool single_row_cuts);

/* Holds class k's charge and discharge in steps [0, before) at their current values. */
void vpq_sched_lp_hold(vpq_sched_lp *lp, int k, int before);

/* Fixes class k's charge and discharge in every step at xk's (layout of x at class k, values
 * clamped to the columns' bounds). */
void vpq_sched_lp_fix(vpq_sched_lp *lp, int k, const double *xk);

/* The primary objective's optimum (peak or excess, kW) at the last lexicographic solve: cuts
 * added since hold it. */
double vpq_sched_lp_primary(const vpq_sched_lp *lp);

/* The throughput of the current solution (kWh). */
double vpq_sched_lp_throughput(const vpq_sched_lp *lp);

/* The current solution's charge and discharge per class and step into x (layout above). */
void vpq_sched_lp_plan(const vpq_sched_lp *lp, double *x);

/* Frees the LP. */
void vpq_sched_lp_free(vpq_sched_lp *lp);

/* ---- vpq_sched_fill.c: a class's plan over its members ---- */

typedef enum vpq_sched_fill_result {
  VPQ_SCHED_FILL_OK,    /* the class's plan splits over its members */
  VPQ_SCHED_FILL_CUT,   /* it does not; *cut is a cut that the plan violates */
  VPQ_SCHED_FILL_STUCK, /* it does not, and no cut was found: the class must be split */
} vpq_sched_fill_result;

/* Scratch space for filling the largest class. */
typedef struct vpq_sched_fill vpq_sched_fill;

/* Makes (and frees) the scratch space for classes of up to `max_members` over `nsteps` steps. */
vpq_sched_fill *vpq_sched_fill_new(int max_members, int nsteps);
void vpq_sched_fill_free(vpq_sched_fill *f);

/* Forgets what the fills of classes [0, nclasses) remembered, before the classes' first fills
 * from a new LP (or new classes). A fill that looks for a cut remembers its class's plan and the
 * class's state at the start of each run of it and every few steps within one, and the next fill
 * of that class with a cut asked for starts again at the last of those states before the plan
 * changed: the same result, without the steps before. Out of memory, fills start from step 0. */
void vpq_sched_fill_forget(vpq_sched_fill *f, int nclasses);

/* Water-fills class k's LP plan xk (x + k·T·2) over its members; on success records the fill
 * of each step for vpq_sched_fill_members. With cut NULL it never fails: a step that asks more
 * of the members than they can do moves every member as far as it can (the class then moves
 * less energy than the plan: a fleet plan with a different net load), and the fill goes on. */
vpq_sched_fill_result vpq_sched_fill_class(vpq_sched_fill *f, const vpq_sched_problem *pr,
                                           const vpq_sched_member *members, const vpq_sched_class *cls, int k,
                                           const double *xk, vpq_sched_cut *cut);

/* After VPQ_SCHED_FILL_OK: each member's charge and discharge (kW) per step, into the rows
 * charge[index·T ...] and discharge[index·T ...]. */
void vpq_sched_fill_members(const vpq_sched_fill *f, const vpq_sched_problem *pr, const vpq_sched_member *members,
                            const vpq_sched_class *cls, double *charge, double *discharge);

/* After vpq_sched_fill_class: the class's charge and discharge (kW, the LP's units) per step
 * that the recorded fill moves, into xk (layout of x at class k). With no cut, a step the members
 * could not follow moves less than the LP's plan: this is the plan they can. */
void vpq_sched_fill_class_plan(const vpq_sched_fill *f, const vpq_sched_problem *pr, const vpq_sched_member *members,
                               const vpq_sched_class *cls, double *xk);

/* ---- vpq_sched_dp.c: MIN_COST ---- */

/* What a kWh drawn from the grid costs and a kWh delivered to it earns, per step: MIN_COST's
 * price for both; vpq_sched_colgen.c's prices of its master LP's rows (a battery's throughput
 * then costs both ways, so a charge costs more than a discharge earns). */
typedef struct vpq_sched_dp_prices {
  const double *charge, *discharge;
} vpq_sched_dp_prices;

/* Plans members [0, count) — the same efficiency, C-rate and widened limits — for the least cost
 * at `prices`, then the least throughput, into charge and discharge rows as
 * vpq_sched_fill_members does. False when out of memory. */
bool vpq_sched_dp_plan(const vpq_sched_problem *pr, const vpq_sched_dp_prices *prices,
                       const vpq_sched_member *members, int count, double *charge, double *discharge);

/* As vpq_sched_dp_plan, with one setpoint per step: a battery never charges and discharges in
 * one step, which the LP's plan does to burn energy at a negative price. The least cost of that
 * model (then the least throughput), which is not convex. False when out of memory. */
bool vpq_sched_dp_plan_setpoints(const vpq_sched_problem *pr, const vpq_sched_dp_prices *prices,
                                 const vpq_sched_member *members, int count, double *charge, double *discharge);

/* ---- vpq_sched_colgen.c: the peak objectives battery by battery ---- */

/* Plans members [0, n) for MIN_PEAK or KEEP_BELOW by column generation, then the least
 * throughput at that peak, into charge and discharge rows as vpq_sched_fill_members does. The
 * members are cut into `ngroups` runs of consecutive members whose plans are weighted as one: n
 * groups (or ngroups < 1) plan each battery on its own, the exact LP; fewer restrict it to a
 * smaller master. *bound becomes a bound on the primary objective (peak, or excess over the
 * cap) that no fleet plan beats, whatever the groups. False when out of memory or when the LP
 * solver finds no optimum. */
bool vpq_sched_colgen_plan(const vpq_sched_problem *pr, const vpq_sched_member *members, int n, int ngroups,
                           double *charge, double *discharge, double *bound);

#endif
