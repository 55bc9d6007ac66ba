/* test_sched.c — tests of the battery dispatch optimiser (vpq_sched.h): plans computed by hand,
 * properties of random fleets (no limit broken, soc following from the setpoints), and an
 * independent optimality check: random instances written as a GNU MathProg model — transcribed
 * from the model text in vpq_sched.h, not from vpq_sched.c — solved by glpsol and compared. The
 * random fleets come in two families: small ones of any batteries, and fleets of a few kinds
 * whose batteries all have different socs (as a real twin's do), which is what the optimiser's
 * classes, water-filling and cuts are for; and aged fleets, every battery of its own size and
 * C-rate, with a few or all-different efficiencies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sched_random.h"
#include "vpq_sched.h"

enum { MAX_BATTERIES = 20, MAX_STEPS = 48, RANDOM_FLEETS = 240, KINDS_FLEETS = 36 };

/* A problem with its own arrays and room for its plan. */
typedef struct fixture {
  vpq_sched_battery batteries[MAX_BATTERIES];
  double load[MAX_STEPS], price[MAX_STEPS];
  double setpoint[MAX_BATTERIES * MAX_STEPS], soc[MAX_BATTERIES * MAX_STEPS];
  vpq_sched_problem pr;
  vpq_sched_plan plan;
} fixture;

static void init(fixture *f, vpq_sched_objective objective, int nbatteries, int nsteps, double step_hours) {
  f->pr = (vpq_sched_problem){objective, f->batteries, nbatteries, f->load, f->price, nsteps, step_hours, 0};
  f->plan = (vpq_sched_plan){f->setpoint, f->soc, 0, 0, false};
}

static vpq_sched_battery battery(double soc, double capacity, double max_kw, double efficiency, double min_soc,
                                 double max_soc) {
  return (vpq_sched_battery){soc, capacity, max_kw, efficiency, min_soc, max_soc};
}

/* Checks the plan against the model on its own terms: every setpoint within ±max_kw, every soc
 * within the (widened) limits, the soc recomputed from the setpoints step by step, idle
 * batteries idle, and the reported peak, cost and cap_met those of the planned net load. */
static void check_plan(const vpq_sched_problem *pr, const vpq_sched_plan *plan) {
  const int T = pr->nsteps;
  const double dt = pr->step_hours;
  double *net = malloc((size_t)(T > 0 ? T : 1) * sizeof *net);
  assert_non_null(net);
  for (int t = 0; t < T; t++) net[t] = pr->load[t];
  for (int i = 0; i < pr->nbatteries; i++) {
    const vpq_sched_battery *b = &pr->batteries[i];
    const bool usable = isfinite(b->soc) && isfinite(b->min_soc) && isfinite(b->max_soc) && b->capacity_kwh > 0 &&
                        b->max_kw > 0 && b->min_soc <= b->max_soc;
    const double eff = b->efficiency > 0 && b->efficiency <= 1 ? b->efficiency : 1;
    const double lo = fmin(b->min_soc, b->soc), hi = fmax(b->max_soc, b->soc);
    double e = b->soc * b->capacity_kwh;
    for (int t = 0; t < T; t++) {
      const double p = plan->setpoint_kw[i * T + t], soc = plan->soc[i * T + t];
      if (!usable) {
        assert_true(p == 0);
        assert_true(soc == b->soc || (isnan(soc) && isnan(b->soc)));
        continue;
      }
      assert_true(fabs(p) <= b->max_kw);
      assert_true(soc >= lo && soc <= hi);
      e = p < 0 ? e - p * dt * eff : e - p * dt / eff;
      assert_true(fabs(e - soc * b->capacity_kwh) <= 1e-9 * (1 + b->capacity_kwh));
      net[t] -= p;
    }
  }
  double peak = -INFINITY, cost = 0;
  for (int t = 0; t < T; t++) {
    peak = fmax(peak, net[t]);
    if (pr->objective == VPQ_SCHED_MIN_COST) cost += pr->price[t] * net[t] * dt;
  }
  free(net);
  assert_true(fabs(plan->peak_kw - peak) <= 1e-9 * (1 + fabs(peak)));
  assert_true(fabs(plan->cost - cost) <= 1e-9 * (1 + fabs(cost)));
  assert_true(plan->cap_met == (pr->objective != VPQ_SCHED_KEEP_BELOW || peak <= pr->cap_kw + 1e-6));
}

static void solve_ok(fixture *f) {
  char err[200] = "";
  if (vpq_sched_solve(&f->pr, &f->plan, err, sizeof err) != 0) fail_msg("%s", err);
  check_plan(&f->pr, &f->plan);
}

/* Equal within the tie-break's slack: the primary may exceed its optimum by 1e-7·|z| + 1e-6. */
static void assert_near(double got, double want) {
  if (fabs(got - want) > 1e-5 * (1 + fabs(want))) fail_msg("got %.12g, want %.12g", got, want);
}

static void set_loads(fixture *f, const double *load, int n) {
  for (int t = 0; t < n; t++) f->load[t] = load[t];
}

/* One lossless battery, 10 kWh, 5 kW, soc 0.5, one-hour steps, load 10, 20, 10, 10: step 1 can
 * be shaved by at most 5 kW (the power limit) and 5 kWh are there, so the peak is 15, reached by
 * discharging 5 kW in step 1 and nothing else (the least throughput). */
static void test_lossless_peak(void **state) {
  (void)state;
  fixture f;
  init(&f, VPQ_SCHED_MIN_PEAK, 1, 4, 1);
  f.batteries[0] = battery(0.5, 10, 5, 1, 0, 1);
  set_loads(&f, (const double[]){10, 20, 10, 10}, 4);
  solve_ok(&f);
  assert_near(f.plan.peak_kw, 15);
  const double want[] = {0, 5, 0, 0}, soc[] = {0.5, 0, 0, 0};
  for (int t = 0; t < 4; t++) assert_near(f.setpoint[t], want[t]), assert_near(f.soc[t], soc[t]);
}

/* The same with efficiency 0.9. Discharging 5 kW for an hour takes 5/0.9 = 50/9 kWh from the
 * battery but only 5 are stored, so step 0 must charge (50/9 − 5)/0.9 = 50/81 kW (net load
 * 10.617 ≤ 15). Peak 15 again: setpoints −50/81, 5, 0, 0; soc 5/9 after step 0, then 0. */
static void test_lossy_peak(void **state) {
  (void)state;
  fixture f;
  init(&f, VPQ_SCHED_MIN_PEAK, 1, 4, 1);
  f.batteries[0] = battery(0.5, 10, 5, 0.9, 0, 1);
  set_loads(&f, (const double[]){10, 20, 10, 10}, 4);
  solve_ok(&f);
  assert_near(f.plan.peak_kw, 15);
  const double want[] = {-50.0 / 81, 5, 0, 0}, soc[] = {5.0 / 9, 0, 0, 0};
  for (int t = 0; t < 4; t++) assert_near(f.setpoint[t], want[t]), assert_near(f.soc[t], soc[t]);
}

/* KEEP_BELOW 17: 3 kW in step 1 is all it takes — 3 kWh lossless (soc 0.5 → 0.2), 3/0.9 kWh at
 * efficiency 0.9 (soc 0.5 → 0.5 − 1/3) — and no battery energy is spent elsewhere. */
static void test_keep_below_reachable(void **state) {
  (void)state;
  const double effs[] = {1, 0.9};
  for (int k = 0; k < 2; k++) {
    fixture f;
    init(&f, VPQ_SCHED_KEEP_BELOW, 1, 4, 1);
    f.pr.cap_kw = 17;
    f.batteries[0] = battery(0.5, 10, 5, effs[k], 0, 1);
    set_loads(&f, (const double[]){10, 20, 10, 10}, 4);
    solve_ok(&f);
    assert_true(f.plan.cap_met);
    assert_near(f.plan.peak_kw, 17);
    const double want[] = {0, 3, 0, 0}, left = 0.5 - 0.3 / effs[k];
    for (int t = 0; t < 4; t++) assert_near(f.setpoint[t], want[t]);
    assert_near(f.soc[0], 0.5);
    assert_near(f.soc[3], left);
  }
}

/* KEEP_BELOW 12 cannot be met (step 1 can come down to 15 at best): cap_met is false and the
 * plan is the lowest peak, 15. */
static void test_keep_below_unreachable(void **state) {
  (void)state;
  fixture f;
  init(&f, VPQ_SCHED_KEEP_BELOW, 1, 4, 1);
  f.pr.cap_kw = 12;
  f.batteries[0] = battery(0.5, 10, 5, 1, 0, 1);
  set_loads(&f, (const double[]){10, 20, 10, 10}, 4);
  solve_ok(&f);
  assert_false(f.plan.cap_met);
  assert_near(f.plan.peak_kw, 15);
  const double want[] = {0, 5, 0, 0};
  for (int t = 0; t < 4; t++) assert_near(f.setpoint[t], want[t]);
}

/* MIN_COST, prices 1, 10, 1, 10, flat load 10, lossless 10 kWh / 5 kW at soc 0.5 with limits
 * 0.2..0.9 (2..9 kWh). Discharging the full 5 kW in both dear steps earns 100 and needs
 * e_1 = 5 + c_0 − 5 ≥ 2 and e_3 = c_0 + c_2 − 5 ≥ 2, i.e. 7 kWh charged in the cheap steps
 * (c_0 ∈ [2, 5]; the split is a tie): cost 10·(1 + 10 + 1 + 10) − 100 + 7 = 127. */
static void test_min_cost(void **state) {
  (void)state;
  fixture f;
  init(&f, VPQ_SCHED_MIN_COST, 1, 4, 1);
  f.batteries[0] = battery(0.5, 10, 5, 1, 0.2, 0.9);
  set_loads(&f, (const double[]){10, 10, 10, 10}, 4);
  memcpy(f.price, (const double[]){1, 10, 1, 10}, 4 * sizeof(double));
  solve_ok(&f);
  assert_near(f.plan.cost, 127);
  assert_near(f.setpoint[1], 5);
  assert_near(f.setpoint[3], 5);
  assert_true(f.setpoint[0] <= 0 && f.setpoint[2] <= 0);
  assert_near(f.setpoint[0] + f.setpoint[2], -7);
}

/* Nothing to gain, nothing done: a flat load under a KEEP_BELOW cap, and a flat load for MIN_PEAK
 * with every battery at its lowest soc (charging could only raise the peak) plan all-zero
 * setpoints. */
static void test_flat_load_idle(void **state) {
  (void)state;
  for (int k = 0; k < 2; k++) {
    fixture f;
    init(&f, k == 0 ? VPQ_SCHED_KEEP_BELOW : VPQ_SCHED_MIN_PEAK, 4, 24, 0.25);
    f.pr.cap_kw = 12;
    f.batteries[0] = battery(k == 0 ? 0.5 : 0, 10, 5, 1, 0, 1);
    f.batteries[1] = battery(0.1, 13.5, 5, 0.95, 0.1, 0.9);
    f.batteries[2] = battery(k == 0 ? 0.9 : 0.2, 5, 3, 0.85, 0.2, 0.8);
    f.batteries[3] = battery(k == 0 ? 0.5 : 0, 10, 5, 1, 0, 1);
    for (int t = 0; t < 24; t++) f.load[t] = 10;
    solve_ok(&f);
    assert_true(f.plan.peak_kw == 10);
    for (int i = 0; i < 4 * 24; i++) assert_true(f.setpoint[i] == 0);
  }
}

/* The throughput tie-break: a full 10 kWh / 5 kW battery under load 10, 20, 10, 10 reaches the
 * lowest peak, 15, with 5 kW in step 1, and could spend its other 5 kWh anywhere else without
 * changing the peak; the least throughput spends nothing more. */
static void test_least_throughput(void **state) {
  (void)state;
  fixture f;
  init(&f, VPQ_SCHED_MIN_PEAK, 1, 4, 1);
  f.batteries[0] = battery(1, 10, 5, 1, 0, 1);
  set_loads(&f, (const double[]){10, 20, 10, 10}, 4);
  solve_ok(&f);
  assert_near(f.plan.peak_kw, 15);
  const double want[] = {0, 5, 0, 0};
  for (int t = 0; t < 4; t++) assert_near(f.setpoint[t], want[t]);
}

/* Batteries without capacity or power, with a non-finite soc or with limits that leave no room
 * (min_soc > max_soc) stay idle and out of the way of the others; efficiencies outside (0, 1]
 * count as 1. */
static void test_idle_and_efficiency(void **state) {
  (void)state;
  fixture f, ref;
  init(&f, VPQ_SCHED_MIN_PEAK, 7, 4, 1);
  f.batteries[0] = battery(0.5, 0, 5, 1, 0, 1);
  f.batteries[1] = battery(0.5, 10, 0, 1, 0, 1);
  f.batteries[2] = battery(0.5, 10, 5, 0, 0, 1);
  f.batteries[3] = battery(NAN, 10, 5, 1, 0, 1);
  f.batteries[4] = battery(0.5, 10, 5, 1.5, 0, 1);
  f.batteries[5] = battery(0.5, -1, 5, 1, 0, 1);
  f.batteries[6] = battery(0.5, 10, 5, 1, 0.6, 0.4);
  set_loads(&f, (const double[]){10, 30, 10, 10}, 4);
  solve_ok(&f);
  assert_near(f.plan.peak_kw, 20);
  init(&ref, VPQ_SCHED_MIN_PEAK, 1, 4, 1);
  ref.batteries[0] = battery(0.5, 20, 10, 1, 0, 1);
  set_loads(&ref, f.load, 4);
  solve_ok(&ref);
  for (int t = 0; t < 4; t++) {
    assert_near(f.setpoint[2 * 4 + t] + f.setpoint[4 * 4 + t], ref.setpoint[t]);
    for (int i = 0; i < 7; i++)
      if (i != 2 && i != 4) assert_true(f.setpoint[i * 4 + t] == 0);
  }
}

/* Duplicates and batteries differing only in size merge into one LP battery; the plan splits
 * back in proportion to capacity: three 10 kWh batteries and one 20 kWh one (same C-rate, soc,
 * efficiency and limits) interleaved with a different one plan as one 50 kWh battery would. */
static void test_merged_split(void **state) {
  (void)state;
  fixture f, ref;
  const double load[] = {30, 60, 20, 80, 40, 70};
  init(&f, VPQ_SCHED_MIN_PEAK, 5, 6, 0.5);
  f.batteries[0] = battery(0.6, 10, 5, 0.9, 0.1, 0.95);
  f.batteries[1] = battery(0.3, 7, 7, 0.95, 0, 1);
  f.batteries[2] = battery(0.6, 20, 10, 0.9, 0.1, 0.95);
  f.batteries[3] = battery(0.6, 10, 5, 0.9, 0.1, 0.95);
  f.batteries[4] = battery(0.6, 10, 5, 0.9, 0.1, 0.95);
  set_loads(&f, load, 6);
  solve_ok(&f);
  init(&ref, VPQ_SCHED_MIN_PEAK, 2, 6, 0.5);
  ref.batteries[0] = battery(0.6, 50, 25, 0.9, 0.1, 0.95);
  ref.batteries[1] = f.batteries[1];
  set_loads(&ref, load, 6);
  solve_ok(&ref);
  assert_near(f.plan.peak_kw, ref.plan.peak_kw);
  for (int t = 0; t < 6; t++) {
    assert_near(f.setpoint[0 * 6 + t], f.setpoint[3 * 6 + t]);
    assert_near(f.setpoint[2 * 6 + t], 2 * f.setpoint[0 * 6 + t]);
    assert_near(f.soc[2 * 6 + t], f.soc[4 * 6 + t]);
  }
}

/* A battery already outside its limits may stay there or move towards them, never further. */
static void test_outside_limits(void **state) {
  (void)state;
  fixture f;
  init(&f, VPQ_SCHED_MIN_PEAK, 2, 4, 1);
  f.batteries[0] = battery(0.95, 10, 5, 1, 0.1, 0.9);
  f.batteries[1] = battery(0.05, 10, 5, 1, 0.1, 0.9);
  set_loads(&f, (const double[]){20, 10, 10, 10}, 4);
  solve_ok(&f);
  assert_near(f.plan.peak_kw, 15);
  for (int t = 0; t < 4; t++) assert_true(f.setpoint[4 + t] <= 0);
}

/* Bad input is refused with a message and an idle plan. */
static void test_invalid(void **state) {
  (void)state;
  fixture f;
  char err[200] = "";
  init(&f, VPQ_SCHED_MIN_PEAK, 1, 4, 0);
  f.batteries[0] = battery(0.5, 10, 5, 1, 0, 1);
  set_loads(&f, (const double[]){10, 20, 10, 10}, 4);
  for (int k = 0; k < 4; k++) f.setpoint[k] = 1, f.soc[k] = 1;
  assert_int_equal(vpq_sched_solve(&f.pr, &f.plan, err, sizeof err), -1);
  assert_true(err[0] != '\0');
  for (int k = 0; k < 4; k++) assert_true(f.setpoint[k] == 0 && f.soc[k] == 0.5);
  f.pr.step_hours = 1;
  f.load[2] = NAN;
  err[0] = '\0';
  assert_int_equal(vpq_sched_solve(&f.pr, &f.plan, err, sizeof err), -1);
  assert_true(err[0] != '\0');
  f.pr.nsteps = 0;
  assert_int_equal(vpq_sched_solve(&f.pr, &f.plan, err, sizeof err), 0);
  assert_true(f.plan.peak_kw == 0 && f.plan.cap_met);
}

/* ---- random fleets ---- */

/* Random fleet number k (its own seed, so any subset is reproducible): 1–20 batteries with mixed
 * sizes, efficiencies 0.85–1, socs and limits (now and then outside them, idle, or a duplicate or
 * double-size copy of the one before), 4–48 steps,
 * a random load around the fleet's power; objective by k. Prices are ≥ 0 on the glpsol subset
 * (negative prices make the LP burn energy by charging and discharging at once, which a
 * setpoint cannot do: test_negative_prices_glpsol checks those against the MILP). */
static void random_fleet(fixture *f, int k) {
  uint64_t s = 0x5eed0000u + (uint64_t)k;
  static const vpq_sched_objective objectives[] = {VPQ_SCHED_MIN_PEAK, VPQ_SCHED_MIN_PEAK, VPQ_SCHED_KEEP_BELOW,
                                                   VPQ_SCHED_MIN_COST};
  static const double steps[] = {0.25, 0.5, 1};
  const int nb = 1 + (int)(next(&s) % MAX_BATTERIES), T = 4 + (int)(next(&s) % (MAX_STEPS - 3));
  init(f, objectives[k % 4], nb, T, steps[next(&s) % 3]);
  double power = 0;
  for (int i = 0; i < nb; i++) {
    const double cap = uniform(&s, 1, 50), min_soc = uniform(&s, 0, 0.3), max_soc = uniform(&s, 0.7, 1);
    const int kind = (int)(next(&s) % 10);
    const double soc = kind == 0 ? uniform(&s, 0, min_soc) : kind == 1 ? uniform(&s, max_soc, 1) : uniform(&s, 0, 1);
    f->batteries[i] = battery(soc, kind == 2 ? 0 : cap, uniform(&s, 0.2, 1) * cap,
                              kind == 3 ? 1 : uniform(&s, 0.85, 1), min_soc, max_soc);
    if (i > 0 && kind >= 4 && kind <= 5) { /* a duplicate, or a double-size copy: merged */
      f->batteries[i] = f->batteries[i - 1];
      f->batteries[i].capacity_kwh *= kind - 3;
      f->batteries[i].max_kw *= kind - 3;
    }
    power += f->batteries[i].max_kw;
  }
  const double base = uniform(&s, 0, 2) * power;
  double lo = INFINITY, hi = -INFINITY;
  for (int t = 0; t < T; t++) {
    f->load[t] = base + uniform(&s, 0, 1) * power;
    f->price[t] = uniform(&s, k % 3 == 0 ? 0 : -0.2, 1);
    lo = fmin(lo, f->load[t]), hi = fmax(hi, f->load[t]);
  }
  f->pr.cap_kw = uniform(&s, lo, hi);
}

/* Random fleets: every plan keeps every limit and its soc follows from its setpoints; and no
 * plan is worse than doing nothing. */
static void test_random_fleets(void **state) {
  (void)state;
  for (int k = 0; k < RANDOM_FLEETS; k++) {
    fixture f;
    random_fleet(&f, k);
    solve_ok(&f);
    double idle_peak = -INFINITY, idle_cost = 0;
    for (int t = 0; t < f.pr.nsteps; t++)
      idle_peak = fmax(idle_peak, f.load[t]), idle_cost += f.price[t] * f.load[t] * f.pr.step_hours;
    if (f.pr.objective == VPQ_SCHED_MIN_COST)
      assert_true(f.plan.cost <= idle_cost + 1e-6 * (1 + fabs(idle_cost)));
    else
      assert_true(f.plan.peak_kw <= idle_peak + 1e-6 * (1 + fabs(idle_peak)));
  }
}

/* ---- independent check with glpsol ---- */

/* vpq_sched.h's model in GNU MathProg, transcribed from the header's text. */
static const char model[] =
    "param mode;  # 0 MIN_PEAK, 1 KEEP_BELOW, 2 MIN_COST\n"
    "param T integer > 0;\n"
    "param dt > 0;\n"
    "param capkw;\n"
    "param load{1..T};\n"
    "param price{1..T};\n"
    "set B;\n"
    "param soc{B};\n"
    "param cap{B};\n"
    "param maxkw{B};\n"
    "param eff{B};\n"
    "param minsoc{B};\n"
    "param maxsoc{B};\n"
    "param onesetpoint default 0;  # 1: never charge and discharge in one step (a MILP)\n"
    "set A := {i in B: cap[i] > 0 and maxkw[i] > 0};\n"
    "var c{i in A, t in 1..T} >= 0, <= maxkw[i];\n"
    "var d{i in A, t in 1..T} >= 0, <= maxkw[i];\n"
    "var charging{i in A, t in 1..T: onesetpoint = 1} binary;\n"
    "s.t. charges{i in A, t in 1..T: onesetpoint = 1}: c[i,t] <= maxkw[i] * charging[i,t];\n"
    "s.t. discharges{i in A, t in 1..T: onesetpoint = 1}: d[i,t] <= maxkw[i] * (1 - charging[i,t]);\n"
    "var e{i in A, t in 0..T} >= min(minsoc[i], soc[i]) * cap[i], <= max(maxsoc[i], soc[i]) * cap[i];\n"
    "var peak;\n"
    "s.t. start{i in A}: e[i,0] = soc[i] * cap[i];\n"
    "s.t. stored{i in A, t in 1..T}: e[i,t] = e[i,t-1] + c[i,t] * dt * eff[i] - d[i,t] * dt / eff[i];\n"
    "s.t. net{t in 1..T}: load[t] - sum{i in A} (d[i,t] - c[i,t]) <= peak;\n"
    "s.t. atcap{k in 1..1: mode = 1}: peak >= capkw;\n"
    "minimize obj: if mode = 2 then sum{t in 1..T} price[t] * (load[t] - sum{i in A} (d[i,t] - c[i,t])) * dt\n"
    "              else peak;\n"
    "solve;\n"
    "printf \"PEAK %.15g\\n\", peak;\n"
    "printf \"COST %.15g\\n\", sum{t in 1..T} price[t] * (load[t] - sum{i in A} (d[i,t] - c[i,t])) * dt;\n"
    "end;\n";

/* The model's data for pr; one_setpoint makes it the MILP of one setpoint per step. */
static void write_data(const char *path, const vpq_sched_problem *pr, bool one_setpoint) {
  FILE *out = fopen(path, "w");
  assert_non_null(out);
  fprintf(out,
          "data;\nparam mode := %d;\nparam T := %d;\nparam dt := %.17g;\nparam capkw := %.17g;\n"
          "param onesetpoint := %d;\n",
          pr->objective == VPQ_SCHED_MIN_PEAK ? 0 : pr->objective == VPQ_SCHED_KEEP_BELOW ? 1 : 2, pr->nsteps,
          pr->step_hours, pr->cap_kw, one_setpoint);
  fprintf(out, "param : load price :=\n");
  for (int t = 0; t < pr->nsteps; t++) fprintf(out, "%d %.17g %.17g\n", t + 1, pr->load[t], pr->price[t]);
  fprintf(out, ";\nparam : B : soc cap maxkw eff minsoc maxsoc :=\n");
  for (int i = 0; i < pr->nbatteries; i++) {
    const vpq_sched_battery *b = &pr->batteries[i];
    if (!isfinite(b->soc) || b->min_soc > b->max_soc) continue; /* not in the model: idle (check_plan) */
    fprintf(out, "%d %.17g %.17g %.17g %.17g %.17g %.17g\n", i + 1, b->soc, b->capacity_kwh, b->max_kw,
            b->efficiency, b->min_soc, b->max_soc);
  }
  fprintf(out, ";\nend;\n");
  fclose(out);
}

/* Runs glpsol on the model and data in dir; true with its peak variable and cost when it
 * reports an optimal solution. */
static bool glpsol(const char *dir, double *peak, double *cost) {
  char cmd[1024], path[512], line[256];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/glpsol --math %s/sched.mod --data %s/sched.dat --display %s/out.txt -o %s/report.txt "
           ">/dev/null 2>&1",
           dir, dir, dir, dir);
  const int status = system(cmd);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return false;
  bool optimal = false, got_peak = false, got_cost = false;
  snprintf(path, sizeof path, "%s/report.txt", dir);
  FILE *in = fopen(path, "r");
  if (!in) return false;
  while (fgets(line, sizeof line, in))
    if (strncmp(line, "Status:", 7) == 0 && strstr(line, "OPTIMAL")) optimal = true;
  fclose(in);
  snprintf(path, sizeof path, "%s/out.txt", dir);
  in = fopen(path, "r");
  if (!in) return false;
  while (fgets(line, sizeof line, in)) {
    if (sscanf(line, "PEAK %lf", peak) == 1) got_peak = true;
    if (sscanf(line, "COST %lf", cost) == 1) got_cost = true;
  }
  fclose(in);
  return optimal && got_peak && got_cost;
}

static void assert_close(double got, double want, double tol, int k) {
  if (fabs(got - want) > tol * fmax(1, fabs(want))) fail_msg("fleet %d: got %.12g, glpsol %.12g", k, got, want);
}

/* A scratch folder holding the model for glpsol. */
static void model_dir(char *dir) {
  char path[512];
  assert_non_null(mkdtemp(dir));
  snprintf(path, 512, "%s/sched.mod", dir);
  FILE *out = fopen(path, "w");
  assert_non_null(out);
  fputs(model, out);
  fclose(out);
}

static void remove_model_dir(const char *dir) {
  char path[512];
  static const char *const files[] = {"sched.mod", "sched.dat", "out.txt", "report.txt"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

/* Solves problem k with glpsol and compares the primary objective with the plan's within tol
 * (relative), and KEEP_BELOW's cap_met with whether glpsol meets the cap. */
static void compare_with_glpsol(const char *dir, const vpq_sched_problem *pr, const vpq_sched_plan *plan, double tol,
                                int k) {
  char path[512];
  snprintf(path, sizeof path, "%s/sched.dat", dir);
  write_data(path, pr, false);
  double peak = 0, cost = 0;
  if (!glpsol(dir, &peak, &cost)) fail_msg("fleet %d: glpsol failed", k);
  switch (pr->objective) {
  case VPQ_SCHED_MIN_PEAK: assert_close(plan->peak_kw, peak, tol, k); break;
  case VPQ_SCHED_KEEP_BELOW:
    assert_close(fmax(plan->peak_kw, pr->cap_kw), peak, tol, k);
    if (plan->cap_met != (peak <= pr->cap_kw + 1e-6))
      fail_msg("fleet %d: peak %.15g cap %.15g glpsol %.15g", k, plan->peak_kw, pr->cap_kw, peak);
    break;
  case VPQ_SCHED_MIN_COST: assert_close(plan->cost, cost, tol, k); break;
  }
}

/* Every third random fleet (80: 40 MIN_PEAK, 20 KEEP_BELOW, 20 MIN_COST) against glpsol: the
 * optimum of the primary objective agrees within 0.1 %. */
static void test_glpsol_optimality(void **state) {
  (void)state;
  if (access("/usr/bin/glpsol", X_OK) != 0) skip();
  char dir[] = "/tmp/vpq_sched_XXXXXX";
  model_dir(dir);
  int checked = 0;
  for (int k = 0; k < RANDOM_FLEETS; k += 3) {
    fixture f;
    random_fleet(&f, k);
    solve_ok(&f);
    compare_with_glpsol(dir, &f.pr, &f.plan, 1e-3, k);
    checked++;
  }
  assert_int_equal(checked, RANDOM_FLEETS / 3);
  remove_model_dir(dir);
}

/* MIN_COST with negative prices against glpsol's MILP of one setpoint per step: 60 fleets of
 * 1-4 batteries (efficiencies 0.8-1), 6-24 steps, prices in [-1, 1] or a run of negative
 * prices. The plan's cost is the MILP's optimum within 1e-6; and the test is one: in at least a
 * third of the fleets the LP, which may charge and discharge at once, costs less. */
static void test_negative_prices_glpsol(void **state) {
  (void)state;
  if (access("/usr/bin/glpsol", X_OK) != 0) skip();
  char dir[] = "/tmp/vpq_sched_XXXXXX", path[512];
  model_dir(dir);
  snprintf(path, sizeof path, "%s/sched.dat", dir);
  enum { FLEETS = 60 };
  int burning = 0;
  for (int k = 0; k < FLEETS; k++) {
    uint64_t s = 0xc057u * 1000 + (uint64_t)k;
    fixture f;
    const int nb = 1 + (int)(next(&s) % 4), T = 6 + (int)(next(&s) % 19);
    init(&f, VPQ_SCHED_MIN_COST, nb, T, k % 2 ? 1 : 0.25);
    for (int i = 0; i < nb; i++) {
      const double cap = uniform(&s, 1, 20), min_soc = uniform(&s, 0, 0.3), max_soc = uniform(&s, 0.7, 1);
      f.batteries[i] = battery(uniform(&s, 0, 1), cap, uniform(&s, 0.2, 1) * cap,
                               next(&s) % 5 == 0 ? 1 : uniform(&s, 0.8, 0.97), min_soc, max_soc);
    }
    const int run = (int)(next(&s) % (unsigned)T), length = 1 + (int)(next(&s) % 6);
    for (int t = 0; t < T; t++) {
      f.load[t] = uniform(&s, 0, 10);
      f.price[t] = k % 3 == 0 ? uniform(&s, -1, 1)
                   : t >= run && t < run + length ? -uniform(&s, 0, 1)
                                                   : uniform(&s, 0.1, 1);
    }
    solve_ok(&f);
    double one = 0, relaxed = 0, unused = 0;
    write_data(path, &f.pr, true);
    if (!glpsol(dir, &unused, &one)) fail_msg("fleet %d: glpsol failed", k);
    if (fabs(f.plan.cost - one) > 1e-6 * (1 + fabs(one)))
      fail_msg("fleet %d: plan costs %.12g, glpsol's MILP %.12g", k, f.plan.cost, one);
    write_data(path, &f.pr, false);
    if (!glpsol(dir, &unused, &relaxed)) fail_msg("fleet %d: glpsol failed", k);
    burning += relaxed < one - 1e-6 * (1 + fabs(one));
  }
  if (burning < FLEETS / 3) fail_msg("only %d fleets of %d where the LP burns energy", burning, FLEETS);
  remove_model_dir(dir);
}

/* ---- fleets of a few kinds, every soc different ---- */

/* A problem of any size, on the heap. */
typedef struct fleet {
  vpq_sched_battery *batteries;
  double *load, *price, *setpoint, *soc;
  vpq_sched_problem pr;
  vpq_sched_plan plan;
} fleet;

static void fleet_init(fleet *f, vpq_sched_objective objective, int nbatteries, int nsteps, double step_hours) {
  const size_t n = (size_t)nbatteries, T = (size_t)nsteps;
  f->batteries = calloc(n, sizeof *f->batteries);
  f->load = calloc(T, sizeof *f->load);
  f->price = calloc(T, sizeof *f->price);
  f->setpoint = calloc(n * T, sizeof *f->setpoint);
  f->soc = calloc(n * T, sizeof *f->soc);
  assert_true(f->batteries && f->load && f->price && f->setpoint && f->soc);
  f->pr = (vpq_sched_problem){objective, f->batteries, nbatteries, f->load, f->price, nsteps, step_hours, 0};
  f->plan = (vpq_sched_plan){f->setpoint, f->soc, 0, 0, false};
}

static void fleet_free(fleet *f) {
  free(f->batteries), free(f->load), free(f->price), free(f->setpoint), free(f->soc);
}

static void fleet_solve_ok(fleet *f) {
  char err[200] = "";
  if (vpq_sched_solve(&f->pr, &f->plan, err, sizeof err) != 0) fail_msg("%s", err);
  check_plan(&f->pr, &f->plan);
}

/* Kinds fleet number k (its own seed): 2–4 kinds (capacity 2–40 kWh, C-rate 0.2–1.2, efficiency
 * 0.85–1, some lossless), `nbatteries` of them, some of double size, every soc different; soc
 * limits 0.1 or 0.2 to 0.9 or 0.95 per battery, now and then a soc outside them; a few stale
 * batteries (no capacity, no power, no soc, limits that leave no room); 24–nsteps steps of a
 * load around the fleet's power shaped by k: an evening peak, noise, a peak right at the start,
 * or a ramp; prices ≥ 0 (some zero); a cap anywhere between the lowest and the highest load; the
 * objective by k. */
static void kinds_fleet(fleet *f, int k, int nbatteries, int max_steps) {
  uint64_t s = 0x6b696e64u + (uint64_t)k;
  static const vpq_sched_objective objectives[] = {VPQ_SCHED_MIN_PEAK, VPQ_SCHED_KEEP_BELOW, VPQ_SCHED_MIN_COST};
  static const double steps[] = {0.25, 0.5, 1};
  const int T = 24 + (int)(next(&s) % (uint64_t)(max_steps - 23)), nkinds = 2 + (int)(next(&s) % 3);
  fleet_init(f, objectives[k % 3], nbatteries, T, steps[next(&s) % 3]);
  double capacity[4], rate[4], eff[4], power = 0;
  for (int j = 0; j < nkinds; j++)
    capacity[j] = uniform(&s, 2, 40), rate[j] = uniform(&s, 0.2, 1.2), eff[j] = j == 0 ? 1 : uniform(&s, 0.85, 1);
  for (int i = 0; i < nbatteries; i++) {
    const int j = (int)(next(&s) % (uint64_t)nkinds), size = next(&s) % 4 == 0 ? 2 : 1;
    const double min_soc = next(&s) % 3 ? 0.1 : 0.2, max_soc = next(&s) % 3 ? 0.95 : 0.9;
    const double soc = next(&s) % 12 == 0 ? uniform(&s, 0, 1) : uniform(&s, min_soc, max_soc);
    f->batteries[i] = battery(soc, size * capacity[j], size * capacity[j] * rate[j], eff[j], min_soc, max_soc);
    switch (next(&s) % 50) {
    case 0: f->batteries[i].capacity_kwh = 0; break;
    case 1: f->batteries[i].max_kw = 0; break;
    case 2: f->batteries[i].soc = NAN; break;
    case 3: f->batteries[i].min_soc = 0.7, f->batteries[i].max_soc = 0.3; break;
    default: power += f->batteries[i].max_kw;
    }
  }
  const int shape = (int)(next(&s) % 4);
  const double base = uniform(&s, 0.3, 2.5) * power;
  double lo = INFINITY, hi = -INFINITY;
  for (int t = 0; t < T; t++) {
    const double h = 24.0 * t / T;
    const double bump = shape == 0   ? exp(-pow((h - 19) / 2.5, 2))
                        : shape == 1 ? uniform(&s, 0, 1)
                        : shape == 2 ? (t < T / 5 ? 1 : 0.1 * uniform(&s, 0, 1))
                                     : (double)t / T;
    f->load[t] = base + 0.6 * power * bump;
    f->price[t] = next(&s) % 5 == 0 ? 0 : uniform(&s, 0, 1);
    lo = fmin(lo, f->load[t]), hi = fmax(hi, f->load[t]);
  }
  f->pr.cap_kw = uniform(&s, lo, hi);
}

/* Kinds fleets of 40 batteries and up to 96 steps against glpsol (12 per objective): the primary
 * objective agrees within 1e-5 (the tie-break allows 1e-7 relative). */
static void test_kinds_glpsol_optimality(void **state) {
  (void)state;
  if (access("/usr/bin/glpsol", X_OK) != 0) skip();
  char dir[] = "/tmp/vpq_sched_XXXXXX";
  model_dir(dir);
  for (int k = 0; k < KINDS_FLEETS; k++) {
    fleet f;
    kinds_fleet(&f, k, 40, 96);
    fleet_solve_ok(&f);
    compare_with_glpsol(dir, &f.pr, &f.plan, 1e-5, k);
    fleet_free(&f);
  }
  remove_model_dir(dir);
}

/* Large kinds fleets (2,000 batteries × 96 steps, each objective): every plan keeps every limit,
 * its soc follows from its setpoints, and it is no worse than doing nothing. */
static void test_kinds_large(void **state) {
  (void)state;
  for (int k = 0; k < 6; k++) {
    fleet f;
    kinds_fleet(&f, 1000 + k, 2000, 96);
    fleet_solve_ok(&f);
    double idle_peak = -INFINITY, idle_cost = 0;
    for (int t = 0; t < f.pr.nsteps; t++)
      idle_peak = fmax(idle_peak, f.load[t]), idle_cost += f.price[t] * f.load[t] * f.pr.step_hours;
    if (f.pr.objective == VPQ_SCHED_MIN_COST)
      assert_true(f.plan.cost <= idle_cost + 1e-6 * (1 + fabs(idle_cost)));
    else
      assert_true(f.plan.peak_kw <= idle_peak + 1e-6 * (1 + fabs(idle_peak)));
    fleet_free(&f);
  }
}

/* Fifty copies of each battery of a kinds fleet, under fifty times the load, plan fifty times
 * the peak or cost of the fleet itself (a plan of the copies averaged over them is a plan of the
 * fleet, and a plan of the fleet copied is a plan of the copies): the large fleet is checked
 * against glpsol through the small one. */
static void test_kinds_copies(void **state) {
  (void)state;
  enum { COPIES = 50, N = 30 };
  for (int k = 0; k < 6; k++) {
    fleet small, large;
    kinds_fleet(&small, 2000 + k, N, 96);
    fleet_solve_ok(&small);
    const int T = small.pr.nsteps;
    fleet_init(&large, small.pr.objective, N * COPIES, T, small.pr.step_hours);
    for (int i = 0; i < N * COPIES; i++) large.batteries[i] = small.batteries[i % N];
    for (int t = 0; t < T; t++) large.load[t] = COPIES * small.load[t], large.price[t] = small.price[t];
    large.pr.cap_kw = COPIES * small.pr.cap_kw;
    fleet_solve_ok(&large);
    if (small.pr.objective == VPQ_SCHED_MIN_COST)
      assert_near(large.plan.cost, COPIES * small.plan.cost);
    else
      assert_near(large.plan.peak_kw / COPIES, small.plan.peak_kw);
    assert_true(large.plan.cap_met == small.plan.cap_met);
    fleet_free(&small), fleet_free(&large);
  }
}

/* ---- aged fleets: every size and C-rate different ---- */

/* A random load for a fleet of `power` kW of discharge (an evening bump, noise or a morning
 * block over a base of 0.3–2.5 times the power), prices in 0–1, and a cap between the load's
 * least and greatest. */
static void random_load(fleet *f, uint64_t *s, double power) {
  const int T = f->pr.nsteps;
  const int shape = (int)(next(s) % 3);
  const double base = uniform(s, 0.3, 2.5) * power;
  double lo = INFINITY, hi = -INFINITY;
  for (int t = 0; t < T; t++) {
    const double h = 24.0 * t / T;
    const double bump = shape == 0   ? exp(-pow((h - 19) / 2.5, 2))
                        : shape == 1 ? uniform(s, 0, 1)
                                     : (t < T / 5 ? 1 : 0.1);
    f->load[t] = base + 0.6 * power * bump;
    f->price[t] = uniform(s, 0, 1);
    lo = fmin(lo, f->load[t]), hi = fmax(hi, f->load[t]);
  }
  f->pr.cap_kw = uniform(s, lo, hi);
}

/* Aged fleet number k (its own seed): `nbatteries` of capacity 2–40 kWh and C-rate 0.25–1.2, all
 * different, every soc different, limits and load as kinds_fleet's; efficiencies from `effs`
 * values (at most 12; 0.85–1, one of them lossless), or all different when effs is 0; the objective by k,
 * MIN_PEAK and KEEP_BELOW only when `peak_only`. */
static void aged_fleet(fleet *f, int k, int nbatteries, int max_steps, int effs, bool peak_only) {
  uint64_t s = 0x61676564u + (uint64_t)k;
  static const vpq_sched_objective objectives[] = {VPQ_SCHED_MIN_PEAK, VPQ_SCHED_KEEP_BELOW, VPQ_SCHED_MIN_COST};
  static const double steps[] = {0.25, 0.5, 1};
  const int T = 24 + (int)(next(&s) % (uint64_t)(max_steps - 23));
  fleet_init(f, objectives[k % (peak_only ? 2 : 3)], nbatteries, T, steps[next(&s) % 3]);
  double eff[12] = {1, uniform(&s, 0.85, 1), uniform(&s, 0.85, 1), uniform(&s, 0.85, 1)}, power = 0;
  for (int e = 4; e < effs; e++) eff[e] = uniform(&s, 0.85, 1);
  for (int i = 0; i < nbatteries; i++) {
    const double capacity = uniform(&s, 2, 40), rate = uniform(&s, 0.25, 1.2);
    const double min_soc = next(&s) % 3 ? 0.1 : 0.2, max_soc = next(&s) % 3 ? 0.95 : 0.9;
    const double soc = next(&s) % 12 == 0 ? uniform(&s, 0, 1) : uniform(&s, min_soc, max_soc);
    const double e = effs > 0 ? eff[next(&s) % (uint64_t)effs] : uniform(&s, 0.85, 1);
    f->batteries[i] = battery(soc, capacity, rate * capacity, e, min_soc, max_soc);
    power += f->batteries[i].max_kw;
  }
  random_load(f, &s, power);
}

/* Wide fleet number k: `nbatteries` as a fleet of many makes and ages is, efficiencies 0.80–1,
 * capacities 5–50 kWh and powers 2–20 kW drawn apart (C-rates 0.04–4), socs anywhere in 0–1
 * (some outside the limits 0.1–0.95); 24–48 steps; MIN_PEAK and KEEP_BELOW. */
static void wide_fleet(fleet *f, int k, int nbatteries) {
  uint64_t s = 0x77696465u + (uint64_t)k;
  static const double steps[] = {0.25, 0.5, 1};
  const int T = 24 + (int)(next(&s) % 25);
  fleet_init(f, k % 2 ? VPQ_SCHED_KEEP_BELOW : VPQ_SCHED_MIN_PEAK, nbatteries, T, steps[next(&s) % 3]);
  double power = 0;
  for (int i = 0; i < nbatteries; i++) {
    const double capacity = uniform(&s, 5, 50), max_kw = uniform(&s, 2, 20);
    f->batteries[i] = battery(uniform(&s, 0, 1), capacity, max_kw, uniform(&s, 0.8, 1), 0.1, 0.95);
    power += max_kw;
  }
  random_load(f, &s, power);
}

/* Solves with the gap measured; checks the plan as fleet_solve_ok does and returns the gap. */
static double aged_solve_ok(fleet *f) {
  char err[200] = "";
  double gap = NAN;
  if (vpq_sched_solve_gap(&f->pr, &f->plan, &gap, err, sizeof err) != 0) fail_msg("%s", err);
  check_plan(&f->pr, &f->plan);
  assert_true(gap >= 0);
  return gap;
}

/* Aged fleets of 30 batteries (24–48 steps) with 1–3 efficiencies against glpsol (every objective): the primary
 * objective agrees within 1e-5 and the measured gap is within the tie-break's slack of 0. */
static void test_aged_glpsol_optimality(void **state) {
  (void)state;
  if (access("/usr/bin/glpsol", X_OK) != 0) skip();
  char dir[] = "/tmp/vpq_sched_XXXXXX";
  model_dir(dir);
  for (int k = 0; k < 12; k++) {
    fleet f;
    aged_fleet(&f, k, 30, 48, 1 + k % 3, false);
    const double gap = aged_solve_ok(&f);
    compare_with_glpsol(dir, &f.pr, &f.plan, 1e-5, k);
    assert_true(gap <= 1e-5 * (1 + fabs(f.plan.peak_kw)));
    fleet_free(&f);
  }
  remove_model_dir(dir);
}

/* Fleets number first.. first + 5 of `nbatteries` (24–48 steps; MIN_PEAK and KEEP_BELOW):
 * aged fleets with `effs` efficiencies (0: all different; else effs + k for fleet k), or wide
 * fleets when effs < 0; more than vpq_sched.c plans over exact classes. Against glpsol: the plan
 * is no better than the optimum and at most `optimal` of it above, and the measured gap is
 * honest (the optimum is no lower than the plan's peak less the gap) and under `within` of the
 * peak. */
static void fleets_against_glpsol(int first, int nbatteries, int effs, double optimal, double within) {
  if (access("/usr/bin/glpsol", X_OK) != 0) skip();
  char dir[] = "/tmp/vpq_sched_XXXXXX", path[512];
  model_dir(dir);
  snprintf(path, sizeof path, "%s/sched.dat", dir);
  for (int k = 0; k < 6; k++) {
    fleet f;
    if (effs < 0)
      wide_fleet(&f, first + k, nbatteries);
    else
      aged_fleet(&f, first + k, nbatteries, 48, effs ? effs + k : 0, true);
    const double gap = aged_solve_ok(&f);
    write_data(path, &f.pr, false);
    double optimum = 0, cost = 0;
    if (!glpsol(dir, &optimum, &cost)) fail_msg("fleet %d: glpsol failed", k);
    const double planned = f.pr.objective == VPQ_SCHED_KEEP_BELOW ? fmax(f.plan.peak_kw, f.pr.cap_kw) : f.plan.peak_kw;
    const double tol = 1e-6 * (1 + fabs(optimum));
    if (planned < optimum - tol || planned > optimum + optimal * fabs(optimum) + tol || planned - gap > optimum + tol ||
        gap > within * fabs(optimum))
      fail_msg("fleet %d: plan %.12g gap %.6g glpsol %.12g", k, planned, gap, optimum);
    fleet_free(&f);
  }
  remove_model_dir(dir);
}

/* Fleets of 50 batteries of all-different efficiencies, planned over their kinds: exact. */
static void test_aged_gap_honest(void **state) {
  (void)state;
  fleets_against_glpsol(100, 50, 0, 1e-6, 1e-6);
}

/* Fleets of 120 batteries with 6–12 efficiencies: classes of a few efficiencies each, split at
 * their changes of efficiency, or column generation when a plan's measured gap is over 0.1 %
 * (measured: every plan at the optimum within 1e-7; one gap 0.035 %, the others under 1e-6). */
static void test_discrete_efficiencies_glpsol(void **state) {
  (void)state;
  fleets_against_glpsol(200, 120, 6, 1e-6, 1e-3);
}

/* Fleets of 400 batteries with 6–11 efficiencies. Fleet 2 (MIN_PEAK, 8 efficiencies) was
 * planned by the fallback 0.73 % above the optimum; it is now planned by column generation, at
 * the optimum. Fleet 5 (KEEP_BELOW) is planned from a relaxation over classes of mixed
 * efficiencies that found a plan, then halved them into exact classes and so solved no LP over
 * those: its gap is measured all the same (it was infinite). */
static void test_mixed_relaxation_gap(void **state) {
  (void)state;
  fleets_against_glpsol(600, 400, 6, 1e-6, 1e-3);
}

/* Wide fleets of 150 batteries (efficiencies 0.80–1, C-rates 0.04–4, all different): the
 * relaxations over classes of mixed efficiencies find no plan, and column generation plans them
 * exactly, its gap certified (before it, such fleets of 500 batteries came 6.8 % above the
 * optimum in 30 s: audit 39). */
static void test_wide_fleets_glpsol(void **state) {
  (void)state;
  fleets_against_glpsol(700, 150, -1, 1e-6, 1e-6);
}

/* The relaxation of a fleet whose batteries have at most 4 efficiencies: one battery per
 * efficiency, the sum of its batteries (capacity, power, stored energy and widened limits), as
 * a fleet of its own with f's load. Every plan of f adds up to a plan of it, so its optimum is
 * no higher than f's. */
static void relaxation(const fleet *f, fleet *r) {
  fleet_init(r, f->pr.objective, 4, f->pr.nsteps, f->pr.step_hours);
  r->pr.cap_kw = f->pr.cap_kw;
  memcpy(r->load, f->load, (size_t)f->pr.nsteps * sizeof *r->load);
  double effs[4], lo[4] = {0}, hi[4] = {0}, e[4] = {0};
  int n = 0;
  for (int i = 0; i < f->pr.nbatteries; i++) {
    const vpq_sched_battery *b = &f->batteries[i];
    int k = 0;
    while (k < n && effs[k] != b->efficiency) k++;
    assert_true(k < 4);
    if (k == n) effs[n++] = b->efficiency;
    r->batteries[k].capacity_kwh += b->capacity_kwh, r->batteries[k].max_kw += b->max_kw;
    e[k] += b->soc * b->capacity_kwh;
    lo[k] += fmin(b->min_soc, b->soc) * b->capacity_kwh, hi[k] += fmax(b->max_soc, b->soc) * b->capacity_kwh;
  }
  r->pr.nbatteries = n;
  for (int k = 0; k < n; k++) {
    const double c = r->batteries[k].capacity_kwh;
    r->batteries[k] = battery(e[k] / c, c, r->batteries[k].max_kw, effs[k], lo[k] / c, hi[k] / c);
  }
}

/* Large aged fleets (2,000 batteries × 24–96 steps, 4 or all-different efficiencies, each
 * objective): every plan keeps every limit, its soc follows from its setpoints, and it is no
 * worse than doing nothing. Fleets 1 and 2 (4 efficiencies) certify: their gap is 0 within the
 * tie-break's slack. Fleet 0 (4 efficiencies, MIN_PEAK, 29 steps) finds no plan at its
 * relaxations' bound within vpq_sched.c's MAX_CLASSES classes (unbounded, it needed 1,811 and
 * two minutes) and gets the fallback's plan: its gap is honest, the plan's peak less the gap
 * being the optimum of the fleet's relaxation (one battery per efficiency, solved here on its
 * own: 33,007.28 kW), and small: 5.6 kW, 0.017 % of the peak (asserted under 0.02 %; the
 * optimum, certified at 1,811 classes, is 33,007.29 kW; the fallback that solved its two stages
 * again whenever the peak rose came within 1.6 kW, 30 % slower, and further from the bound on
 * bench_sched's fleets of 6-12 efficiencies; with the single-row cuts of a fleet of mixed
 * efficiencies, 7.7 kW). */
static void test_aged_large(void **state) {
  (void)state;
  for (int k = 0; k < 6; k++) {
    fleet f;
    const int effs = k < 3 ? 4 : 0;
    aged_fleet(&f, 3000 + k, 2000, 96, effs, false);
    const double gap = aged_solve_ok(&f);
    double idle_peak = -INFINITY, idle_cost = 0;
    for (int t = 0; t < f.pr.nsteps; t++)
      idle_peak = fmax(idle_peak, f.load[t]), idle_cost += f.price[t] * f.load[t] * f.pr.step_hours;
    if (f.pr.objective == VPQ_SCHED_MIN_COST)
      assert_true(f.plan.cost <= idle_cost + 1e-6 * (1 + fabs(idle_cost)));
    else
      assert_true(f.plan.peak_kw <= idle_peak + 1e-6 * (1 + fabs(idle_peak)));
    if (k == 0) {
      fleet r;
      relaxation(&f, &r);
      assert_true(aged_solve_ok(&r) <= 1e-5 * (1 + fabs(r.plan.peak_kw)));
      assert_true(f.plan.peak_kw >= r.plan.peak_kw - 1e-6 * fabs(r.plan.peak_kw));
      assert_true(fabs(f.plan.peak_kw - gap - r.plan.peak_kw) <= 1e-5 * fabs(r.plan.peak_kw));
      assert_true(gap <= 2e-4 * fabs(f.plan.peak_kw));
      fleet_free(&r);
    } else if (effs > 0) {
      assert_true(gap <= 1e-5 * (1 + fabs(f.plan.peak_kw)));
    }
    fleet_free(&f);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lossless_peak),        cmocka_unit_test(test_lossy_peak),
      cmocka_unit_test(test_keep_below_reachable), cmocka_unit_test(test_keep_below_unreachable),
      cmocka_unit_test(test_min_cost),             cmocka_unit_test(test_flat_load_idle),
      cmocka_unit_test(test_least_throughput),
      cmocka_unit_test(test_idle_and_efficiency),  cmocka_unit_test(test_merged_split),
      cmocka_unit_test(test_outside_limits),       cmocka_unit_test(test_invalid),
      cmocka_unit_test(test_random_fleets),        cmocka_unit_test(test_glpsol_optimality),
      cmocka_unit_test(test_kinds_glpsol_optimality), cmocka_unit_test(test_kinds_large),
      cmocka_unit_test(test_kinds_copies),
      cmocka_unit_test(test_aged_glpsol_optimality), cmocka_unit_test(test_aged_gap_honest),
      cmocka_unit_test(test_discrete_efficiencies_glpsol), cmocka_unit_test(test_mixed_relaxation_gap),
      cmocka_unit_test(test_aged_large),           cmocka_unit_test(test_wide_fleets_glpsol),
      cmocka_unit_test(test_negative_prices_glpsol),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
