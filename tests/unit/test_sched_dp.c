/* test_sched_dp.c — vpq_sched_dp.c's dynamic programme on its own, against glpsol's LP of the
 * same batteries: random batteries of one kind (the members that share one backward pass, each
 * with its own soc and size), random charge and discharge prices that differ (as column
 * generation prices throughput) and may be negative. The plan must keep every limit and earn
 * the LP's optimum. And MIN_COST's one setpoint per step past its cap on branches, against the
 * MILP. (A backward pass that merged a piece into a segment already cut off left
 * MIN_COST alone and passed test_sched.c, while column generation's plans and bound went wrong.)
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sched_random.h"
#include "vpq_sched_int.h"

enum { CASES = 80, MAX_MEMBERS = 4, LP_STEPS = 40, MAX_STEPS = 192 };

static const char model[] =
    "param T integer > 0;\n"
    "param dt > 0;\n"
    "param eff > 0;\n"
    "param lo;\n"
    "param hi;\n"
    "param pc{1..T};\n"
    "param pd{1..T};\n"
    "set M;\n"
    "param soc{M};\n"
    "param cap{M};\n"
    "param maxkw{M};\n"
    "param onesetpoint default 0;  # 1: never charge and discharge in one step (a MILP)\n"
    "var c{m in M, t in 1..T} >= 0, <= maxkw[m];\n"
    "var d{m in M, t in 1..T} >= 0, <= maxkw[m];\n"
    "var charging{m in M, t in 1..T: onesetpoint = 1} binary;\n"
    "s.t. charges{m in M, t in 1..T: onesetpoint = 1}: c[m,t] <= maxkw[m] * charging[m,t];\n"
    "s.t. discharges{m in M, t in 1..T: onesetpoint = 1}: d[m,t] <= maxkw[m] * (1 - charging[m,t]);\n"
    "var e{m in M, t in 0..T} >= lo * cap[m], <= hi * cap[m];\n"
    "s.t. start{m in M}: e[m,0] = soc[m] * cap[m];\n"
    "s.t. stored{m in M, t in 1..T}: e[m,t] = e[m,t-1] + c[m,t] * dt * eff - d[m,t] * dt / eff;\n"
    "maximize money: sum{m in M, t in 1..T} (pd[t] * d[m,t] - pc[t] * c[m,t]) * dt;\n"
    "solve;\n"
    "printf \"MONEY %.15g\\n\", money;\n"
    "end;\n";

/* Writes the LP's data (one_setpoint: the MILP's); returns false when the file cannot be written. */
static bool write_data(const char *path, const vpq_sched_problem *pr, const vpq_sched_dp_prices *prices,
                       const vpq_sched_member *members, int count, bool one_setpoint) {
  FILE *out = fopen(path, "w");
  if (!out) return false;
  fprintf(out,
          "data;\nparam T := %d;\nparam dt := %.17g;\nparam eff := %.17g;\nparam lo := %.17g;\nparam hi := %.17g;\n"
          "param onesetpoint := %d;\n",
          pr->nsteps, pr->step_hours, members[0].eff, members[0].lo, members[0].hi, one_setpoint);
  fprintf(out, "param : pc pd :=\n");
  for (int t = 0; t < pr->nsteps; t++) fprintf(out, "%d %.17g %.17g\n", t + 1, prices->charge[t], prices->discharge[t]);
  fprintf(out, ";\nparam : M : soc cap maxkw :=\n");
  for (int m = 0; m < count; m++)
    fprintf(out, "%d %.17g %.17g %.17g\n", m + 1, members[m].soc, members[m].capacity, members[m].max_kw);
  fprintf(out, ";\nend;\n");
  return fclose(out) == 0;
}

/* glpsol's optimum of the LP in dir; false when it reports none. */
static bool glpsol_money(const char *dir, double *money) {
  char cmd[1024], path[512], line[256];
  snprintf(cmd, sizeof cmd, "/usr/bin/glpsol --math %s/dp.mod --data %s/dp.dat --display %s/out.txt >/dev/null 2>&1",
           dir, dir, dir);
  const int status = system(cmd);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return false;
  snprintf(path, sizeof path, "%s/out.txt", dir);
  FILE *in = fopen(path, "r");
  if (!in) return false;
  bool got = false;
  while (fgets(line, sizeof line, in)) got |= sscanf(line, "MONEY %lf", money) == 1;
  fclose(in);
  return got;
}

/* What the plan earns, after checking it keeps every power and energy limit. */
static double plan_money(const vpq_sched_problem *pr, const vpq_sched_dp_prices *prices,
                         const vpq_sched_member *members, int count, const double *charge, const double *discharge,
                         int k) {
  const int T = pr->nsteps;
  const double dt = pr->step_hours;
  double money = 0;
  for (int m = 0; m < count; m++) {
    const vpq_sched_member *b = &members[m];
    const double tol = 1e-9 * (1 + b->capacity);
    double e = b->soc * b->capacity;
    for (int t = 0; t < T; t++) {
      const double c = charge[b->index * T + t], d = discharge[b->index * T + t];
      if (c < -tol || d < -tol || c > b->max_kw + tol || d > b->max_kw + tol)
        fail_msg("case %d member %d step %d: charge %g, discharge %g, max %g", k, m, t, c, d, b->max_kw);
      e += c * dt * b->eff - d * dt / b->eff;
      if (e < b->lo * b->capacity - tol || e > b->hi * b->capacity + tol)
        fail_msg("case %d member %d step %d: energy %g outside [%g, %g]", k, m, t, e, b->lo * b->capacity,
                 b->hi * b->capacity);
      money += (prices->discharge[t] * d - prices->charge[t] * c) * dt;
    }
  }
  return money;
}

/* A scratch folder holding the model for glpsol; path gets its data file's name. */
static void model_dir(char *dir, char *path, size_t size) {
  assert_non_null(mkdtemp(dir));
  snprintf(path, size, "%s/dp.mod", dir);
  FILE *out = fopen(path, "w");
  assert_non_null(out);
  fputs(model, out);
  fclose(out);
  snprintf(path, size, "%s/dp.dat", dir);
}

static void remove_model_dir(const char *dir) {
  char path[512];
  static const char *const files[] = {"dp.mod", "dp.dat", "out.txt"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

static void test_dp_against_lp(void **state) {
  (void)state;
  if (access("/usr/bin/glpsol", X_OK) != 0) skip();
  char dir[] = "/tmp/vpq_dp_XXXXXX", path[512];
  model_dir(dir, path, sizeof path);
  for (int k = 0; k < CASES; k++) {
    uint64_t s = 0xd9000u + (uint64_t)k;
    const int T = 4 + (int)(next(&s) % (LP_STEPS - 3)), count = 1 + (int)(next(&s) % MAX_MEMBERS);
    const double eff = k % 5 == 0 ? 1 : uniform(&s, 0.8, 0.99), rate = uniform(&s, 0.1, 2);
    const double lo = uniform(&s, 0, 0.3), hi = uniform(&s, 0.7, 1);
    double pc[MAX_STEPS], pd[MAX_STEPS], charge[MAX_MEMBERS * MAX_STEPS], discharge[MAX_MEMBERS * MAX_STEPS];
    for (int t = 0; t < T; t++) {
      pc[t] = uniform(&s, k % 4 == 0 ? -0.3 : 0, 1);
      pd[t] = pc[t] - (k % 3 == 0 ? 0 : uniform(&s, 0, 0.3));
    }
    vpq_sched_member members[MAX_MEMBERS];
    for (int m = 0; m < count; m++) {
      const double capacity = uniform(&s, 1, 30);
      members[m] = (vpq_sched_member){uniform(&s, lo, hi), capacity, rate * capacity, eff, lo, hi, m};
    }
    const vpq_sched_problem pr = {VPQ_SCHED_MIN_COST, NULL, count, NULL, NULL, T, k % 2 ? 1 : 0.25, 0};
    const vpq_sched_dp_prices prices = {pc, pd};
    assert_true(vpq_sched_dp_plan(&pr, &prices, members, count, charge, discharge));
    const double got = plan_money(&pr, &prices, members, count, charge, discharge, k);
    double want = 0;
    if (!write_data(path, &pr, &prices, members, count, false) || !glpsol_money(dir, &want))
      fail_msg("case %d: glpsol failed", k);
    if (fabs(got - want) > 1e-7 * (1 + fabs(want))) fail_msg("case %d: the DP earns %.12g, the LP %.12g", k, got, want);
  }
  remove_model_dir(dir);
}

/* MIN_COST's one setpoint per step where its branches reach MAX_BRANCHES (vpq_sched_dp.c): a
 * slow battery (0.25C, efficiency 0.9) over two days of 15-minute steps with six hours of
 * negative prices a day, against glpsol's MILP. Past the cap the plan may in principle lie above
 * the optimum; on these it does not. */
static void test_setpoints_past_the_cap(void **state) {
  (void)state;
  if (access("/usr/bin/glpsol", X_OK) != 0) skip();
  char dir[] = "/tmp/vpq_dp_XXXXXX", path[512];
  model_dir(dir, path, sizeof path);
  for (int k = 0; k < 3; k++) {
    uint64_t s = 0xca9u + (uint64_t)k;
    double price[MAX_STEPS], charge[MAX_STEPS], discharge[MAX_STEPS];
    for (int t = 0; t < MAX_STEPS; t++) {
      const double h = fmod(t * 0.25, 24);
      price[t] = (h >= 10 && h < 16 ? -0.3 : 0.2) + 0.1 * sin(h / 24 * 2 * M_PI) + uniform(&s, -0.1, 0.1);
    }
    const vpq_sched_member member = {uniform(&s, 0.2, 0.8), 10, 2.5, 0.9, 0.05, 0.95, 0};
    const vpq_sched_problem pr = {VPQ_SCHED_MIN_COST, NULL, 1, NULL, NULL, MAX_STEPS, 0.25, 0};
    const vpq_sched_dp_prices prices = {price, price};
    assert_true(vpq_sched_dp_plan_setpoints(&pr, &prices, &member, 1, charge, discharge));
    for (int t = 0; t < MAX_STEPS; t++)
      if (charge[t] > 0 && discharge[t] > 0) fail_msg("case %d step %d: charges and discharges at once", k, t);
    const double got = plan_money(&pr, &prices, &member, 1, charge, discharge, k);
    double want = 0;
    if (!write_data(path, &pr, &prices, &member, 1, true) || !glpsol_money(dir, &want))
      fail_msg("case %d: glpsol failed", k);
    if (fabs(got - want) > 1e-6 * (1 + fabs(want)))
      fail_msg("case %d: the plan earns %.12g, the MILP %.12g", k, got, want);
  }
  remove_model_dir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_dp_against_lp), cmocka_unit_test(test_setpoints_past_the_cap)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
