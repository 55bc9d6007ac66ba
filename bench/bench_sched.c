/* bench_sched.c — time of vpq_sched_solve on day-ahead fleet plans (96 steps of 15 minutes), for
 * each objective:
 *   - a twin: 10,000 batteries of 6 kinds (sizes 5–30 kWh, C-rates 0.33–0.6, efficiencies
 *     0.90–0.97), every soc different, 10 % with soc limits of their own, 1 % outside their
 *     limits; the horizon starting at midnight and at 18:00 (the evening peak right at the start);
 *   - 10,000 batteries of 4 kinds with socs drawn from 20 and from 5 values;
 *   - 10,000 batteries of all-different sizes (5–20 kWh) and C-rates (0.25–1), as a fleet of
 *     aged batteries is, with efficiencies of 4, 6, 8 and 12 values, and with all-different
 *     efficiencies (0.90–0.97);
 *   - fleets of n batteries of n kinds (every efficiency different);
 *   - MIN_COST on the twin and on the all-different fleet with prices below 0 from 10:00 to
 *     16:00 (vpq_sched_dp.c's branches);
 *   - wide fleets of 1,000 and 10,000 batteries as random as a test would draw them: capacities
 *     5–20 kWh and powers 2–10 kW drawn apart (C-rates 0.1–2), efficiencies 0.85–0.98, socs
 *     0.2–0.9, planned by column generation (vpq_sched_colgen.c), one run each (seconds).
 * Prints, per plan, the best and the median process CPU time of the runs (CPU time, so that other
 * work on the machine counts less), and the plan's peak, its measured gap to the optimum's
 * (vpq_sched_solve_gap: at most this far above it) and cost.
 *
 *   build/bench_sched [runs] [filter]     (default 5 runs; only the plans whose label holds filter)
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vpq_sched.h"

enum { STEPS = 96, FLEET = 10000, MAX_RUNS = 51 };

static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The label filter from the command line, or NULL. */
static const char *only;

static int compare_doubles(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Solves `runs` times; prints the best and median CPU ms and the plan's figures. */
static void time_solve(const char *label, const vpq_sched_problem *pr, int runs) {
  if (only && !strstr(label, only)) return;
  vpq_sched_plan plan = {malloc(sizeof(double) * (size_t)pr->nbatteries * STEPS),
                         malloc(sizeof(double) * (size_t)pr->nbatteries * STEPS), 0, 0, false};
  double ms[MAX_RUNS];
  char err[256];
  double gap = 0;
  int done = 0;
  for (; done < runs; done++) {
    const double t0 = cpu_seconds();
    if (vpq_sched_solve_gap(pr, &plan, &gap, err, sizeof err) != 0) {
      printf("%-44s failed: %s\n", label, err);
      break;
    }
    ms[done] = (cpu_seconds() - t0) * 1e3;
  }
  if (done == runs) {
    qsort(ms, (size_t)runs, sizeof ms[0], compare_doubles);
    printf("%-44s %8.1f %8.1f ms   peak %9.1f kW   gap %7.3f kW   cost %10.1f\n", label, ms[0], ms[runs / 2],
           plan.peak_kw, gap, plan.cost);
  }
  free(plan.setpoint_kw);
  free(plan.soc);
}

static uint64_t next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static double uniform(uint64_t *s, double lo, double hi) {
  return lo + (hi - lo) * (double)(next(s) >> 11) * 0x1p-53;
}

/* The twin: FLEET batteries of 6 kinds, every soc different. */
static void make_twin(vpq_sched_battery *fleet) {
  static const struct {
    double capacity, max_kw, efficiency;
  } kinds[] = {{13.5, 5.0, 0.95}, {10.0, 3.3, 0.92}, {5.0, 3.0, 0.97}, {30.0, 10.0, 0.9}, {9.8, 5.0, 0.94},
               {16.0, 8.0, 0.96}};
  uint64_t s = 42;
  for (int i = 0; i < FLEET; i++) {
    const int k = (int)(next(&s) % 6);
    const double min_soc = next(&s) % 10 == 0 ? 0.2 : 0.1, max_soc = next(&s) % 10 == 0 ? 0.9 : 0.95;
    double soc = uniform(&s, min_soc, max_soc);
    if (next(&s) % 100 == 0) soc = next(&s) % 2 ? uniform(&s, min_soc - 0.05, min_soc) : uniform(&s, max_soc, 1);
    fleet[i] = (vpq_sched_battery){soc, kinds[k].capacity, kinds[k].max_kw, kinds[k].efficiency, min_soc, max_soc};
  }
}

/* FLEET batteries of 4 kinds with socs drawn from `socs` values. */
static void make_fleet(vpq_sched_battery *fleet, int socs) {
  static const struct {
    double capacity, max_kw, efficiency;
  } kinds[] = {{13.5, 5.0, 0.95}, {10.0, 3.3, 0.92}, {5.0, 3.0, 0.97}, {30.0, 10.0, 0.9}};
  srand(42);
  for (int i = 0; i < FLEET; i++) {
    const int k = rand() % 4;
    fleet[i] = (vpq_sched_battery){0.1 + 0.8 / socs * (rand() % socs), kinds[k].capacity, kinds[k].max_kw,
                                   kinds[k].efficiency, 0.1, 0.95};
  }
}

/* FLEET batteries of all-different sizes and C-rates, every soc different, soc limits as the
 * twin's; efficiencies of `values` values (at most 12), or all different when values is 0. */
static void make_aged(vpq_sched_battery *fleet, int values) {
  static const double efficiencies[] = {0.9, 0.92, 0.95, 0.97, 0.93, 0.94, 0.91, 0.96, 0.905, 0.915, 0.925, 0.935};
  uint64_t s = 7;
  for (int i = 0; i < FLEET; i++) {
    const double capacity = uniform(&s, 5, 20), rate = uniform(&s, 0.25, 1);
    const double eff = values == 0 ? uniform(&s, 0.9, 0.97) : efficiencies[next(&s) % (uint64_t)values];
    const double min_soc = next(&s) % 10 == 0 ? 0.2 : 0.1, max_soc = next(&s) % 10 == 0 ? 0.9 : 0.95;
    fleet[i] = (vpq_sched_battery){uniform(&s, min_soc, max_soc), capacity, rate * capacity, eff, min_soc, max_soc};
  }
}

/* n batteries drawn as a test would: capacity, power and efficiency each uniform on its own. */
static void make_wide(vpq_sched_battery *fleet, int n) {
  uint64_t s = 11;
  for (int i = 0; i < n; i++)
    fleet[i] = (vpq_sched_battery){uniform(&s, 0.2, 0.9), uniform(&s, 5, 20), uniform(&s, 2, 10), uniform(&s, 0.85, 0.98),
                                   0.1, 0.95};
}

/* A day of plant load (morning and evening peaks) and prices, from hour `start`. */
static void make_day(double start, double *load, double *price) {
  for (int t = 0; t < STEPS; t++) {
    const double h = fmod(start + t * 0.25, 24);
    load[t] = 40000 + 15000 * exp(-pow((h - 8) / 2, 2)) + 30000 * exp(-pow((h - 19) / 2.5, 2)) + 500 * (t % 3);
    price[t] = 0.10 + 0.08 * exp(-pow((h - 8) / 2, 2)) + 0.15 * exp(-pow((h - 19) / 2, 2)) -
               0.04 * exp(-pow((h - 13) / 2, 2));
  }
}

/* The three objectives on one fleet. */
static void time_objectives(const char *name, vpq_sched_battery *fleet, const double *load, const double *price,
                            int runs) {
  static const struct {
    vpq_sched_objective objective;
    const char *label;
  } objectives[] = {{VPQ_SCHED_MIN_PEAK, "MIN_PEAK"}, {VPQ_SCHED_KEEP_BELOW, "KEEP_BELOW 60 MW"},
                    {VPQ_SCHED_MIN_COST, "MIN_COST"}};
  for (size_t o = 0; o < sizeof objectives / sizeof objectives[0]; o++) {
    const vpq_sched_problem pr = {objectives[o].objective, fleet, FLEET, load, price, STEPS, 0.25, 60000};
    char label[96];
    snprintf(label, sizeof label, "%s %s", name, objectives[o].label);
    time_solve(label, &pr, runs);
  }
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 5;
  if (runs < 1 || runs > MAX_RUNS) runs = 5;
  only = argc > 2 ? argv[2] : NULL;
  setvbuf(stdout, NULL, _IOLBF, 0);
  static vpq_sched_battery fleet[FLEET];
  double load[STEPS], price[STEPS];
  printf("%d batteries, %d steps of 15 min, CPU time of %d runs: %43s\n", FLEET, STEPS, runs, "best   median");
  make_twin(fleet);
  make_day(0, load, price);
  time_objectives("twin, from 00:00,", fleet, load, price, runs);
  make_day(18, load, price);
  time_objectives("twin, from 18:00,", fleet, load, price, runs);

  make_day(0, load, price);
  static const int socs[] = {20, 5};
  for (size_t s = 0; s < sizeof socs / sizeof socs[0]; s++) {
    make_fleet(fleet, socs[s]);
    char name[64];
    snprintf(name, sizeof name, "4 kinds x %d socs", socs[s]);
    time_objectives(name, fleet, load, price, runs);
  }

  static const int values[] = {4, 6, 8, 12, 0};
  for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
    make_aged(fleet, values[v]);
    char name[64];
    if (values[v] > 0)
      snprintf(name, sizeof name, "all sizes, C-rates, %d effs,", values[v]);
    else
      snprintf(name, sizeof name, "all sizes, C-rates, effs,");
    time_objectives(name, fleet, load, price, runs);
  }

  printf("MIN_COST with midday prices below 0 (one setpoint per step is then not an LP)\n");
  for (int t = 0; t < STEPS; t++) price[t] -= 0.25 * exp(-pow((t * 0.25 - 13) / 2.5, 2));
  make_twin(fleet);
  const vpq_sched_problem twin_cost = {VPQ_SCHED_MIN_COST, fleet, FLEET, load, price, STEPS, 0.25, 0};
  time_solve("twin, negative prices, MIN_COST", &twin_cost, runs);
  make_aged(fleet, 0);
  const vpq_sched_problem aged_cost = {VPQ_SCHED_MIN_COST, fleet, FLEET, load, price, STEPS, 0.25, 0};
  time_solve("all effs, negative prices, MIN_COST", &aged_cost, runs);

  printf("n batteries of n kinds (every efficiency different), %d steps, MIN_PEAK\n", STEPS);
  static const int sizes[] = {10, 25, 50, 100};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    const int n = sizes[s];
    for (int i = 0; i < n; i++)
      fleet[i] = (vpq_sched_battery){0.2 + 0.6 * i / n, 10 + i % 7, 5, 0.9 + 0.0005 * i, 0.1, 0.95};
    double small[STEPS];
    for (int t = 0; t < STEPS; t++) small[t] = load[t] * n * 5 / 50000.0;
    const vpq_sched_problem d = {VPQ_SCHED_MIN_PEAK, fleet, n, small, NULL, STEPS, 0.25, 0};
    char label[64];
    snprintf(label, sizeof label, "MIN_PEAK %d kinds", n);
    time_solve(label, &d, runs);
  }

  printf("wide fleets (capacity, power and efficiency drawn apart), %d steps, MIN_PEAK, 1 run\n", STEPS);
  static const int wide[] = {1000, FLEET};
  for (size_t w = 0; w < sizeof wide / sizeof wide[0]; w++) {
    const int n = wide[w];
    make_wide(fleet, n);
    double scaled[STEPS];
    for (int t = 0; t < STEPS; t++) scaled[t] = load[t] * 1.2 * n / FLEET;
    const vpq_sched_problem d = {VPQ_SCHED_MIN_PEAK, fleet, n, scaled, NULL, STEPS, 0.25, 0};
    char label[64];
    snprintf(label, sizeof label, "MIN_PEAK wide %d", n);
    time_solve(label, &d, 1);
  }
  return 0;
}
