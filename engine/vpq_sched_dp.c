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
 * once, s_t's charge piece comes first and the kink is below 0. vpq_sched_dp_plan plans the LP's
 * optimum either way (column generation's pricing, whose prices are never negative, uses it);
 * MIN_COST uses vpq_sched_dp_plan_setpoints, one setpoint per step (the part below says how).
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

/* ===== One setpoint per step ===== */

/* What the LP's burning cannot give MIN_COST. With a negative price and an efficiency below 1,
 * s_t is convex, not concave: charging and discharging are each a line through 0, and a battery
 * with one setpoint takes the better of the two, s_t = max(charge line, discharge line), each
 * extended over the whole step [Δmin, Δmax]. The sup-convolution distributes over that max, so
 * V_t is the maximum of concave branches: every branch of V_{t+1} gives one branch through a
 * step that does not burn and two through a step that does. A branch dominated everywhere by
 * another is dropped. Past MAX_BRANCHES, the branches that are the maximum at the most of
 * CAP_SAMPLES + 1 points are kept: then the plan may lie above the optimum. Hourly SE3 prices of
 * 2023 (1,110 negative hours) over 96 hours need at most 12 branches; slow batteries over long
 * runs of negative prices reach the cap (a review's 0.25C battery over two days of 15-minute
 * steps with six negative hours a day, 9 cases in 10), and its plans still cost the MILP's
 * optimum in every case checked (test_sched_dp.c). A battery takes the branch that is highest
 * at its soc and follows it: the branch's value there is V_0, so every step of it is optimal. */

enum { MAX_BRANCHES = 64 };

/* The point of [lo, ...] up to which V's slope is above `slope` (or at or above, when weak). */
static double crossing(const segment *v, int n, double lo, pair slope, bool weak) {
  double x = lo;
  for (int i = 0; i < n; i++) {
    const int c = pair_compare(v[i].slope, slope);
    if (c < 0 || (c == 0 && !weak)) break;
    x += v[i].length;
  }
  return x;
}

/* A branch of V_t: its values at lo and hi and its segments (capacity 2T + 2). */
typedef struct branch {
  pair at_lo, at_hi;
  int n;
  segment *seg;
} branch;

/* A branch's decision at its step: the rule, and the branch of the next step it continues. */
typedef struct choice {
  rule rule;
  int parent;
} choice;

/* a + b, part by part. */
static pair pair_add(pair a, pair b) { return (pair){a.money + b.money, a.wear + b.wear}; }

/* a · x, part by part. */
static pair pair_scale(pair a, double x) { return (pair){a.money * x, a.wear * x}; }

/* a ≤ b within a relative tolerance on each part (money first, then wear). */
static bool pair_at_most(pair a, pair b) {
  const double tm = 1e-12 * (1 + fabs(a.money) + fabs(b.money)), tw = 1e-12 * (1 + fabs(a.wear) + fabs(b.wear));
  if (a.money < b.money - tm) return true;
  if (a.money > b.money + tm) return false;
  return a.wear <= b.wear + tw;
}

/* The branch's value at x in [lo, hi]. */
static pair branch_value(const branch *b, double lo, double x) {
  pair value = b->at_lo;
  for (int i = 0; i < b->n && x > lo; i++) {
    const double take = fmin(b->seg[i].length, x - lo);
    value = pair_add(value, pair_scale(b->seg[i].slope, take));
    lo += take;
  }
  return value;
}

/* Sup-convolution of v (n segments on [lo, hi]) with s reflected, whose pieces are add[0..nadd)
 * in decreasing slope, spanning [Δmin, Δmax]: the merged slopes cut back to [lo, hi], into out;
 * returns their number. merged holds 2T + 2 segments. */
static int convolve(const segment *v, int n, const segment *add, int nadd, double dmin, double dmax,
                    segment *merged, segment *out) {
  int m = 0, a = 0, k = 0;
  for (int i = 0; i < n; i++) {
    while (a < nadd && pair_compare(add[a].slope, v[i].slope) > 0) push(merged, &m, add[a++]);
    push(merged, &m, v[i]);
  }
  while (a < nadd) push(merged, &m, add[a++]);
  double front = dmax, back = -dmin;
  for (int i = 0; i < m; i++) {
    segment s = merged[i];
    const double cut = fmin(front, s.length);
    s.length -= cut, front -= cut;
    push(out, &k, s);
  }
  while (k > 0 && back > 0) {
    const double cut = fmin(back, out[k - 1].length);
    out[k - 1].length -= cut, back -= cut;
    if (out[k - 1].length <= 0) k--;
  }
  return k;
}

/* Whether f ≤ g on [lo, hi]: both are linear between their breakpoints, so at every breakpoint. */
static bool branch_dominated(const branch *f, const branch *g) {
  pair vf = f->at_lo, vg = g->at_lo;
  if (!pair_at_most(vf, vg) || !pair_at_most(f->at_hi, g->at_hi)) return false;
  int i = 0, j = 0;
  double left_f = f->n > 0 ? f->seg[0].length : 0, left_g = g->n > 0 ? g->seg[0].length : 0;
  while (i < f->n && j < g->n) {
    const double step = fmin(left_f, left_g);
    vf = pair_add(vf, pair_scale(f->seg[i].slope, step));
    vg = pair_add(vg, pair_scale(g->seg[j].slope, step));
    if (!pair_at_most(vf, vg)) return false;
    left_f -= step, left_g -= step;
    if (left_f <= 0 && ++i < f->n) left_f = f->seg[i].length;
    if (left_g <= 0 && ++j < g->n) left_g = g->seg[j].length;
  }
  return true;
}

enum { CAP_SAMPLES = 256 };

/* More than MAX_BRANCHES branches: keeps the MAX_BRANCHES that are the maximum at the most of
 * CAP_SAMPLES + 1 points spread over [lo, hi] (none that is nowhere the maximum), in their order;
 * returns how many are kept. keep[] gets 1 for a kept branch. */
static int cap_branches(const branch *bs, int count, double lo, double hi, int *score, bool *keep) {
  for (int k = 0; k < count; k++) score[k] = 0;
  for (int p = 0; p <= CAP_SAMPLES; p++) {
    const double x = lo + (hi - lo) * p / CAP_SAMPLES;
    int best = 0;
    pair top = branch_value(&bs[0], lo, x);
    for (int k = 1; k < count; k++) {
      const pair v = branch_value(&bs[k], lo, x);
      if (pair_compare(v, top) > 0) top = v, best = k;
    }
    score[best]++;
  }
  int kept = 0;
  for (int k = 0; k < count; k++) keep[k] = false;
  while (kept < MAX_BRANCHES) {
    int best = -1;
    for (int k = 0; k < count; k++)
      if (!keep[k] && score[k] > 0 && (best < 0 || score[k] > score[best])) best = k;
    if (best < 0) break;
    keep[best] = true, kept++;
  }
  return kept;
}

/* The state of the backward pass over branches: the branches of V_{t+1} (cur) and of V_t before
 * pruning (next), each with its decision, and every step's decisions after pruning. */
typedef struct branching {
  branch cur[MAX_BRANCHES], next[2 * MAX_BRANCHES];
  choice made[2 * MAX_BRANCHES];
  int score[2 * MAX_BRANCHES];
  bool keep[2 * MAX_BRANCHES];
  int ncur, nnext;
  segment *merged;
  choice *choices; /* T × MAX_BRANCHES */
  double lo, hi, dmin, dmax;
  size_t width;
} branching;

/* Adds to next the branch of V_t that cur[parent] gives through s_t's pieces add[0..nadd) (its
 * lines through 0: one, or discharge then charge), with the decision rule r. */
static void add_branch(branching *g, int parent, const segment *add, int nadd, rule r, pair discharge, pair charge) {
  const branch *from = &g->cur[parent];
  branch *to = &g->next[g->nnext];
  to->n = convolve(from->seg, from->n, add, nadd, g->dmin, g->dmax, g->merged, to->seg);
  const double at = clamp(clamp(g->lo, r.charge_to, r.discharge_to), g->lo + g->dmin, g->lo + g->dmax);
  const double delta = at - g->lo;
  const pair slope = nadd == 1 ? pair_negate(add[0].slope) : delta < 0 ? discharge : charge;
  to->at_lo = pair_add(pair_scale(slope, delta), branch_value(from, g->lo, at));
  to->at_hi = branch_value(to, g->lo, g->hi);
  g->made[g->nnext++] = (choice){r, parent};
}

/* Prunes next (dominated branches, then past MAX_BRANCHES the fewest maxima) into cur, and
 * step t's decisions into choices. */
static void prune_branches(branching *g, int t) {
  int alive = 0;
  for (int i = 0; i < g->nnext; i++) g->keep[i] = true;
  for (int i = 0; i < g->nnext; i++) {
    for (int j = 0; j < g->nnext && g->keep[i]; j++)
      if (j != i && g->keep[j] && branch_dominated(&g->next[i], &g->next[j])) g->keep[i] = false;
    alive += g->keep[i];
  }
  if (alive > MAX_BRANCHES) {
    int k = 0;
    for (int i = 0; i < g->nnext; i++)
      if (g->keep[i]) {
        const branch b = g->next[k];
        const choice c = g->made[k];
        g->next[k] = g->next[i], g->made[k] = g->made[i];
        g->next[i] = b, g->made[i] = c;
        k++;
      }
    g->nnext = alive;
    cap_branches(g->next, g->nnext, g->lo, g->hi, g->score, g->keep);
  }
  g->ncur = 0;
  for (int i = 0; i < g->nnext; i++) {
    if (!g->keep[i]) continue;
    const branch b = g->cur[g->ncur];
    g->cur[g->ncur] = g->next[i], g->next[i] = b;
    g->choices[(size_t)t * MAX_BRANCHES + (size_t)g->ncur++] = g->made[i];
  }
}

/* The backward pass with one setpoint per step: step t's branches' decisions into g->choices,
 * and V_0's branches in g->cur. */
static void backward_branches(const vpq_sched_problem *pr, const vpq_sched_dp_prices *prices, double eff,
                              branching *g) {
  g->ncur = 1;
  g->cur[0].at_lo = g->cur[0].at_hi = (pair){0, 0};
  g->cur[0].n = 0;
  push(g->cur[0].seg, &g->cur[0].n, (segment){g->hi - g->lo, {0, 0}});
  for (int t = pr->nsteps - 1; t >= 0; t--) {
    const pair discharge = {-prices->discharge[t] * eff, eff}, charge = {-prices->charge[t] / eff, -1 / eff};
    g->nnext = 0;
    for (int k = 0; k < g->ncur; k++) {
      const branch *b = &g->cur[k];
      if (pair_compare(discharge, charge) >= 0) {
        const segment add[2] = {{g->dmax, pair_negate(charge)}, {-g->dmin, pair_negate(discharge)}};
        add_branch(g, k, add, 2,
                   (rule){crossing(b->seg, b->n, g->lo, pair_negate(charge), false),
                          crossing(b->seg, b->n, g->lo, pair_negate(discharge), true), 0},
                   discharge, charge);
      } else {
        const pair lines[2] = {charge, discharge};
        for (int l = 0; l < 2; l++) {
          const segment add[1] = {{g->dmax - g->dmin, pair_negate(lines[l])}};
          const double x = crossing(b->seg, b->n, g->lo, pair_negate(lines[l]), false);
          add_branch(g, k, add, 1, (rule){x, x, 0}, discharge, charge);
        }
      }
    }
    prune_branches(g, t);
  }
}

/* Plans the members with one setpoint per step by the branches (the header of this part). */
static bool plan_branches(const vpq_sched_problem *pr, const vpq_sched_dp_prices *prices,
                          const vpq_sched_member *members, int count, double *charge, double *discharge) {
  const int T = pr->nsteps;
  const vpq_sched_member *first = &members[0];
  const double rate = first->max_kw / first->capacity, eff = first->eff, dt = pr->step_hours;
  branching *g = malloc(sizeof *g);
  if (!g) return false;
  g->width = (size_t)(2 * T + 2);
  g->lo = first->lo, g->hi = first->hi, g->dmin = -rate * dt / eff, g->dmax = eff * rate * dt;
  segment *store = malloc((3 * MAX_BRANCHES + 1) * g->width * sizeof *store);
  g->choices = malloc((size_t)T * MAX_BRANCHES * sizeof *g->choices);
  const bool ok = store && g->choices;
  if (ok) {
    for (int k = 0; k < MAX_BRANCHES; k++) g->cur[k].seg = store + (size_t)k * g->width;
    for (int k = 0; k < 2 * MAX_BRANCHES; k++) g->next[k].seg = store + (size_t)(MAX_BRANCHES + k) * g->width;
    g->merged = store + (size_t)(3 * MAX_BRANCHES) * g->width;
    backward_branches(pr, prices, eff, g);
    for (int m = 0; m < count; m++) {
      const size_t row = (size_t)members[m].index * (size_t)T;
      const double capacity = members[m].capacity;
      double s = members[m].soc;
      int k = 0;
      pair top = branch_value(&g->cur[0], g->lo, s);
      for (int j = 1; j < g->ncur; j++) {
        const pair v = branch_value(&g->cur[j], g->lo, s);
        if (pair_compare(v, top) > 0) top = v, k = j;
      }
      for (int t = 0; t < T; t++) {
        const choice *c = &g->choices[(size_t)t * MAX_BRANCHES + (size_t)k];
        const double to = clamp(clamp(s, c->rule.charge_to, c->rule.discharge_to), s + g->dmin, s + g->dmax);
        const double delta = to - s;
        charge[row + (size_t)t] = clamp(delta > 0 ? delta / (eff * dt) : 0, 0, rate) * capacity;
        discharge[row + (size_t)t] = clamp(delta < 0 ? -delta * eff / dt : 0, 0, rate) * capacity;
        s = to;
        k = c->parent;
      }
    }
  }
  free(store), free(g->choices), free(g);
  return ok;
}

bool vpq_sched_dp_plan_setpoints(const vpq_sched_problem *pr, const vpq_sched_dp_prices *prices,
                                 const vpq_sched_member *members, int count, double *charge, double *discharge) {
  const double eff = members[0].eff;
  for (int t = 0; t < pr->nsteps; t++) {
    const pair out = {-prices->discharge[t] * eff, eff}, in = {-prices->charge[t] / eff, -1 / eff};
    if (pair_compare(out, in) < 0) return plan_branches(pr, prices, members, count, charge, discharge);
  }
  return vpq_sched_dp_plan(pr, prices, members, count, charge, discharge);
}
