/* vpq_sched_dp.c — MIN_COST: every battery's cheapest plan by dynamic programming on its stored
 * energy (vpq_sched_int.h).
 *
 * Why not the LP: under MIN_COST nothing couples the batteries, so each battery's part of the LP
 * of vpq_sched.h is a problem of its own, with a one-dimensional state, the stored energy. Its
 * value-to-go V_t(e), the best (money, −throughput) from step t on with energy e at the start of
 * step t, is concave and piecewise linear in e: V_T = 0 on [lo, hi], and
 *
 *     V_t(e) = max over e' in [lo, hi] of  s_t(e' − e) + V_{t+1}(e')
 *
 * where s_t(Δ), the value of changing the energy by Δ in step t, is concave with two pieces:
 * from Δmin (discharge at full power) to the kink, and from the kink to Δmax (charge at full
 * power). The maximum over a sum of concave functions is their sup-convolution, so V_t's slopes
 * are V_{t+1}'s and s_t's two merged in decreasing order, cut back to [lo, hi]: exact, O(T) per
 * step. Values are pairs compared lexicographically, money first, then throughput; both parts
 * are linear in the plan, so slopes are pairs too and nothing else changes. That makes "the least
 * throughput among the cheapest plans" exact, where a weighted sum would only approximate it.
 *
 * The optimal decision in step t is a threshold rule on V_{t+1}: move the energy to
 * clamp(e + kink, charge_to, discharge_to), as far as the power allows, where charge_to and
 * discharge_to are the points at which V_{t+1}'s slope crosses the pieces' slopes. Batteries with
 * the same efficiency, C-rate and (widened) limits share V in soc units and so the thresholds:
 * the backward pass runs once for them all, then each battery follows the rule from its own soc,
 * O(T) per battery. 10,000 batteries of a few kinds, all with different socs, plan in
 * milliseconds, each exactly as its own LP would.
 *
 * A kWh drawn may cost more than a kWh delivered earns (vpq_sched_dp_prices: column generation
 * charges throughput both ways); MIN_COST has one price for both.
 *
 * Units are soc (energy / capacity) and power per kWh of capacity (so a battery's power is
 * rate·capacity). With a price ≥ 0, charging and discharging in one step only loses energy and
 * s_t has its kink at 0; with a negative price, the LP is paid to burn energy by doing both at
 * once, s_t's charge piece comes first and the kink is below 0. This file plans the LP's optimum
 * either way; vpq_sched.c's replay turns a burning step into one setpoint.
 */
#include <math.h>
#include <stdlib.h>

#include "vpq_sched_int.h"

/* A value or a slope: money earned, and minus the throughput (kWh per kWh of capacity). */
typedef struct pair {
  double money, wear;
} pair;

/* A piece of V: its length in soc and its slope. */
typedef struct segment {
  double length;
  pair slope;
} segment;

/* The decision rule of one step, in soc. */
typedef struct rule {
  double charge_to, discharge_to, kink;
} rule;

static int pair_compare(pair a, pair b) {
  if (a.money != b.money) return a.money < b.money ? -1 : 1;
  if (a.wear != b.wear) return a.wear < b.wear ? -1 : 1;
  return 0;
}

static pair pair_negate(pair a) { return (pair){-a.money, -a.wear}; }

static double clamp(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Appends a segment to out[*n], merging it into the last one when their slopes are equal. */
static void push(segment *out, int *n, segment s) {
  if (s.length <= 0) return;
  if (*n > 0 && pair_compare(out[*n - 1].slope, s.slope) == 0)
    out[*n - 1].length += s.length;
  else
    out[(*n)++] = s;
}

/* The backward pass: the decision rule of every step for batteries with this rate, efficiency
 * and limits, at the prices of `prices`. v and next hold 2T + 2 segments each; V is v[head, n),
 * its slopes strictly decreasing, so one sweep from its start finds both thresholds and where
 * s_t's pieces go. They go in place: V's segments after the first piece's place move up through
 * next (at most 2 a step, so n stays within 2T + 2), the others stay where they are. */
static void backward(const vpq_sched_problem *pr, const vpq_sched_dp_prices *prices, double rate, double eff,
                     double lo, double hi, rule *rules, segment *v, segment *next) {
  const double dt = pr->step_hours, dmin = -rate * dt / eff, dmax = eff * rate * dt;
  int n = 0, head = 0;
  push(v, &n, (segment){hi - lo, {0, 0}});
  for (int t = pr->nsteps - 1; t >= 0; t--) {
    const pair discharge = {-prices->discharge[t] * eff, eff}, charge = {-prices->charge[t] / eff, -1 / eff};
    const bool burn = pair_compare(discharge, charge) < 0;
    const pair left = burn ? charge : discharge, right = burn ? discharge : charge;
    const double left_length = burn ? dmax : -dmin, right_length = burn ? -dmin : dmax;
    /* s_t reflected: its pieces, −right then −left (the slopes decrease) */
    const segment add_right = {right_length, pair_negate(right)}, add_left = {left_length, pair_negate(left)};
    /* thresholds: where V's slope stops being above −right, and at or above −left */
    double x = lo;
    int i = head;
    while (i < n && pair_compare(v[i].slope, add_right.slope) > 0) x += v[i++].length;
    const double charge_to = x;
    const int right_at = i < n && pair_compare(v[i].slope, add_right.slope) == 0 ? i + 1 : i;
    while (i < n && pair_compare(v[i].slope, add_left.slope) >= 0) x += v[i++].length;
    rules[t] = (rule){charge_to, x, burn ? dmin + dmax : 0};
    /* sup-convolution: the pieces merged into V's in order of slope */
    const int moved = n - right_at, middle = i - right_at;
    for (int j = 0; j < moved; j++) next[j] = v[right_at + j];
    segment *const live = &v[head]; /* push merges into V's segments only, never into one cut off */
    int m = right_at - head;
    push(live, &m, add_right);
    for (int j = 0; j < middle; j++) live[m++] = next[j];
    push(live, &m, add_left);
    for (int j = middle; j < moved; j++) live[m++] = next[j];
    n = head + m;
    /* the domain is now [lo − dmax, hi − dmin]: cut it back to [lo, hi] */
    double front = dmax, back = -dmin;
    while (head < n) {
      const double cut = front < v[head].length ? front : v[head].length;
      v[head].length -= cut, front -= cut;
      if (v[head].length > 0) break;
      head++;
    }
    while (n > head && back > 0) {
      const double cut = back < v[n - 1].length ? back : v[n - 1].length;
      v[n - 1].length -= cut, back -= cut;
      if (v[n - 1].length <= 0) n--;
    }
  }
}

bool vpq_sched_dp_plan(const vpq_sched_problem *pr, const vpq_sched_dp_prices *prices,
                       const vpq_sched_member *members, int count, double *charge, double *discharge) {
  const int T = pr->nsteps;
  const vpq_sched_member *first = &members[0];
  const double rate = first->max_kw / first->capacity, eff = first->eff, dt = pr->step_hours;
  const double dmin = -rate * dt / eff, dmax = eff * rate * dt;
  rule *rules = malloc((size_t)T * sizeof *rules);
  segment *v = malloc((size_t)(2 * T + 2) * sizeof *v), *next = malloc((size_t)(2 * T + 2) * sizeof *next);
  const bool ok = rules && v && next;
  if (ok) {
    backward(pr, prices, rate, eff, first->lo, first->hi, rules, v, next);
    for (int m = 0; m < count; m++) {
      const size_t row = (size_t)members[m].index * (size_t)T;
      const double capacity = members[m].capacity;
      double s = members[m].soc;
      for (int t = 0; t < T; t++) {
        const rule *r = &rules[t];
        const double to = clamp(clamp(s + r->kink, r->charge_to, r->discharge_to), s + dmin, s + dmax);
        const double delta = to - s;
        double c, d;
        if (r->kink == 0) { /* charge or discharge */
          c = delta > 0 ? delta / (eff * dt) : 0;
          d = delta < 0 ? -delta * eff / dt : 0;
        } else if (delta <= r->kink) { /* burning: charging at up to full power while discharging at full */
          c = (delta - dmin) / (eff * dt);
          d = rate;
        } else {
          c = rate;
          d = rate - (delta - r->kink) * eff / dt;
        }
        charge[row + (size_t)t] = clamp(c, 0, rate) * capacity;
        discharge[row + (size_t)t] = clamp(d, 0, rate) * capacity;
        s = to;
      }
    }
  }
  free(rules), free(v), free(next);
  return ok;
}
