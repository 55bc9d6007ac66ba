/* test_sched_dp.c — vpq_sched_dp.c's dynamic programme on its own, against glpsol's LP of the
 * same batteries: random batteries of one kind (the members that share one backward pass, each
 * with its own soc and size), random charge and discharge prices that differ (as column
 * generation prices throughput) and may be negative. The plan must keep every limit and earn
 * the LP's optimum. (A backward pass that merged a piece into a segment already cut off left
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

#include "vpq_sched_int.h"

enum { CASES = 80, MAX_MEMBERS = 4, MAX_STEPS = 40 };

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
    "var c{m in M, t in 1..T} >= 0, <= maxkw[m];\n"
    "var d{m in M, t in 1..T} >= 0, <= maxkw[m];\n"
    "var e{m in M, t in 0..T} >= lo * cap[m], <= hi * cap[m];\n"
    "s.t. start{m in M}: e[m,0] = soc[m] * cap[m];\n"
    "s.t. stored{m in M, t in 1..T}: e[m,t] = e[m,t-1] + c[m,t] * dt * eff - d[m,t] * dt / eff;\n"
    "maximize money: sum{m in M, t in 1..T} (pd[t] * d[m,t] - pc[t] * c[m,t]) * dt;\n"
    "solve;\n"
    "printf \"MONEY %.15g\\n\", money;\n"
    "end;\n";

static uint64_t next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static double uniform(uint64_t *s, double lo, double hi) { return lo + (hi - lo) * (double)(next(s) >> 11) * 0x1p-53; }

/* Writes the LP's data; returns false when the file cannot be written. */
static bool write_data(const char *path, const vpq_sched_problem *pr, const vpq_sched_dp_prices *prices,
                       const vpq_sched_member *members, int count) {
  FILE *out = fopen(path, "w");
  if (!out) return false;
  fprintf(out, "data;\nparam T := %d;\nparam dt := %.17g;\nparam eff := %.17g;\nparam lo := %.17g;\nparam hi := %.17g;\n",
          pr->nsteps, pr->step_hours, members[0].eff, members[0].lo, members[0].hi);
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

static void test_dp_against_lp(void **state) {
  (void)state;
  if (access("/usr/bin/glpsol", X_OK) != 0) skip();
  char dir[] = "/tmp/vpq_dp_XXXXXX", path[512];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/dp.mod", dir);
  FILE *out = fopen(path, "w");
  assert_non_null(out);
  fputs(model, out);
  fclose(out);
  snprintf(path, sizeof path, "%s/dp.dat", dir);
  for (int k = 0; k < CASES; k++) {
    uint64_t s = 0xd9000u + (uint64_t)k;
    const int T = 4 + (int)(next(&s) % (MAX_STEPS - 3)), count = 1 + (int)(next(&s) % MAX_MEMBERS);
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
    if (!write_data(path, &pr, &prices, members, count) || !glpsol_money(dir, &want))
      fail_msg("case %d: glpsol failed", k);
    if (fabs(got - want) > 1e-7 * (1 + fabs(want))) fail_msg("case %d: the DP earns %.12g, the LP %.12g", k, got, want);
  }
  static const char *const files[] = {"dp.mod", "dp.dat", "out.txt"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_dp_against_lp)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
