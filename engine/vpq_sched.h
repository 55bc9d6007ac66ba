/* vpq_sched.h — the battery dispatch optimiser behind SCHEDULE (DESIGN §4).
 *
 * Model, per battery i and step t (Δt = step_hours):
 *   setpoint p[i][t] = d − c, discharge d ∈ [0, max_kw], charge c ∈ [0, max_kw], one of them 0
 *   stored energy e[i][t] = e[i][t−1] + c·Δt·eff − d·Δt/eff,   e[i][−1] = soc·capacity
 *   min_soc·capacity ≤ e[i][t] ≤ max_soc·capacity   (a battery already outside its limits
 *   may stay where it is: the bound is widened to its current energy, never beyond)
 *   net load n[t] = load[t] − Σ_i p[i][t]
 * Objectives (lexicographic; ties broken by the least throughput Σ (c + d)·Δt):
 *   MIN_PEAK    minimise max_t n[t]
 *   KEEP_BELOW  minimise max(0, max_t n[t] − cap_kw): as little battery energy as keeps the
 *               net load under the cap; when the cap cannot be met, the lowest reachable peak
 *   MIN_COST    minimise Σ_t price[t]·n[t]·Δt
 * Without "one of them 0" the model is a linear programme, whose optimum never charges and
 * discharges a battery in one step, except MIN_COST's with a negative price and an efficiency
 * below 1 (it burns energy for pay): vpq_sched_dp.c plans MIN_COST with one setpoint per step.
 */
#ifndef VPQ_SCHED_H
#define VPQ_SCHED_H

#include <stdbool.h>
#include <stddef.h>

typedef struct vpq_sched_battery {
  double soc;          /* state of charge now, 0..1 */
  double capacity_kwh; /* > 0 */
  double max_kw;       /* ≥ 0, same limit charging and discharging */
  double efficiency;   /* one-way, (0, 1] */
  double min_soc;      /* the battery's limits, already intersected with the fleet-wide ones */
  double max_soc;
} vpq_sched_battery;

typedef enum vpq_sched_objective {
  VPQ_SCHED_MIN_PEAK,
  VPQ_SCHED_KEEP_BELOW,
  VPQ_SCHED_MIN_COST,
} vpq_sched_objective;

typedef struct vpq_sched_problem {
  vpq_sched_objective objective;
  const vpq_sched_battery *batteries;
  int nbatteries;
  const double *load;  /* forecast load per step, kW */
  const double *price; /* MIN_COST: price per step (any currency per kWh or MWh) */
  int nsteps;
  double step_hours;
  double cap_kw;       /* KEEP_BELOW */
} vpq_sched_problem;

typedef struct vpq_sched_plan {
  double *setpoint_kw; /* nbatteries × nsteps, row-major by battery; allocated by the caller */
  double *soc;         /* soc at the end of each step, same layout; allocated by the caller */
  double peak_kw;      /* max_t of the planned net load */
  double cost;         /* Σ price·net·Δt (MIN_COST), else 0 */
  bool cap_met;        /* KEEP_BELOW: the planned net load stays at or under the cap */
} vpq_sched_plan;

/* Plans `problem` into `plan` (whose arrays the caller sized): optimal in the objective (within
 * 1e-7 relative), its throughput the least within 0.01 % (vpq_sched.c says how and when that
 * tolerance is used), except where vpq_sched_solve_gap reports a gap. Returns 0, or -1 with a
 * message in err when the solver failed (the plan is then all zeros: batteries idle). */
int vpq_sched_solve(const vpq_sched_problem *problem, vpq_sched_plan *plan, char *err, size_t errsize);

/* As vpq_sched_solve, and *peak_gap_kw becomes how far the plan's peak (KEEP_BELOW: max(peak,
 * cap)) is at most above the lowest any plan reaches, measured against the relaxation's bound:
 * within the tie-break's 1e-7 relative of 0 when the plan is certified optimal, larger when the
 * fleet mixes more efficiencies than vpq_sched.c plans exactly or when its refinement reaches
 * its budget without a plan (vpq_sched.c's fallback); 0 for MIN_COST (exact), NAN on failure. */
int vpq_sched_solve_gap(const vpq_sched_problem *problem, vpq_sched_plan *plan, double *peak_gap_kw, char *err,
                        size_t errsize);

#endif
