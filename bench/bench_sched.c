/* bench_sched.c — time of vpq_sched_solve on a day-ahead fleet plan: 10,000 batteries of 4 sizes
 * (each with its own C-rate and efficiency), socs drawn from 20 values (80 LP batteries after
 * merging), 96 steps of 15 minutes, for each objective; the same with socs from 5 values (20 LP
 * batteries); then fleets of n all-distinct batteries (no merging) to show the LP's own growth.
 * Prints the median wall time of the runs.
 *
 *   gcc -std=c17 -D_GNU_SOURCE -O2 -Iengine bench/bench_sched.c engine/vpq_sched.c -lglpk -lm \
 *       -o bench_sched
 *   ./bench_sched [runs]              (default 5)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "vpq_sched.h"

enum { STEPS = 96, FLEET = 10000, MAX_RUNS = 51 };

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median wall time in ms of `runs` solves; prints the plan's figures once. */
static void time_solve(const char *label, const vpq_sched_problem *pr, int runs) {
  vpq_sched_plan plan = {malloc(sizeof(double) * (size_t)pr->nbatteries * STEPS),
                         malloc(sizeof(double) * (size_t)pr->nbatteries * STEPS), 0, 0, false};
  double ms[MAX_RUNS];
  char err[256];
  for (int r = 0; r < runs; r++) {
    const double t0 = now();
    if (vpq_sched_solve(pr, &plan, err, sizeof err) != 0) {
      printf("%-40s failed: %s\n", label, err);
      break;
    }
    ms[r] = (now() - t0) * 1e3;
  }
  qsort(ms, (size_t)runs, sizeof ms[0], compare_doubles);
  printf("%-40s %9.1f ms   peak %10.1f kW   cost %12.1f\n", label, ms[runs / 2], plan.peak_kw, plan.cost);
  free(plan.setpoint_kw);
  free(plan.soc);
}

/* FLEET batteries of 4 kinds with socs drawn from `socs` values. */
static void make_fleet(vpq_sched_battery *fleet, int socs) {
  static const struct { double capacity, max_kw, efficiency; } kinds[] = {
      {13.5, 5.0, 0.95}, {10.0, 3.3, 0.92}, {5.0, 3.0, 0.97}, {30.0, 10.0, 0.9}};
  srand(42);
  for (int i = 0; i < FLEET; i++) {
    const int k = rand() % 4;
    fleet[i] = (vpq_sched_battery){0.1 + 0.8 / socs * (rand() % socs), kinds[k].capacity, kinds[k].max_kw,
                                   kinds[k].efficiency, 0.1, 0.95};
  }
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 5;
  if (runs < 1 || runs > MAX_RUNS) runs = 5;
  static vpq_sched_battery fleet[FLEET];
  double load[STEPS], price[STEPS];
  for (int t = 0; t < STEPS; t++) {
    const double h = t * 0.25;
    load[t] = 40000 + 15000 * exp(-pow((h - 8) / 2, 2)) + 30000 * exp(-pow((h - 19) / 2.5, 2)) + 500 * (t % 3);
    price[t] = 0.10 + 0.08 * exp(-pow((h - 8) / 2, 2)) + 0.15 * exp(-pow((h - 19) / 2, 2)) - 0.04 * exp(-pow((h - 13) / 2, 2));
  }
  printf("%d batteries, %d steps of 15 min, median of %d runs\n", FLEET, STEPS, runs);
  static const int socs[] = {20, 5};
  for (size_t s = 0; s < sizeof socs / sizeof socs[0]; s++) {
    make_fleet(fleet, socs[s]);
    vpq_sched_problem pr = {VPQ_SCHED_MIN_PEAK, fleet, FLEET, load, price, STEPS, 0.25, 60000};
    char label[64];
    snprintf(label, sizeof label, "4 kinds x %d socs MIN_PEAK", socs[s]);
    time_solve(label, &pr, runs);
    pr.objective = VPQ_SCHED_KEEP_BELOW;
    snprintf(label, sizeof label, "4 kinds x %d socs KEEP_BELOW 60 MW", socs[s]);
    time_solve(label, &pr, runs);
    pr.objective = VPQ_SCHED_MIN_COST;
    snprintf(label, sizeof label, "4 kinds x %d socs MIN_COST", socs[s]);
    time_solve(label, &pr, runs);
  }

  printf("all-distinct batteries (no merging), %d steps, MIN_PEAK\n", STEPS);
  static const int sizes[] = {10, 25, 50, 100};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    const int n = sizes[s];
    for (int i = 0; i < n; i++)
      fleet[i] = (vpq_sched_battery){0.2 + 0.6 * i / n, 10 + i % 7, 5, 0.9 + 0.0005 * i, 0.1, 0.95};
    double small[STEPS];
    for (int t = 0; t < STEPS; t++) small[t] = load[t] * n * 5 / 50000.0;
    vpq_sched_problem d = {VPQ_SCHED_MIN_PEAK, fleet, n, small, NULL, STEPS, 0.25, 0};
    char label[64];
    snprintf(label, sizeof label, "MIN_PEAK %d distinct", n);
    time_solve(label, &d, runs);
  }
  return 0;
}
