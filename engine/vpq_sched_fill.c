/* vpq_sched_fill.c — a class's LP plan split over its batteries by water-filling, and a cut
 * when it cannot be split (vpq_sched_int.h).
 *
 * A class's batteries differ in size, soc, soc limits, C-rate and (in a class whose LP uses one
 * efficiency for several, vpq_sched.c) efficiency. The LP plans their sum; this file finds each
 * member's share of the stored energy it moves. Measure each member by its distance to the limit
 * it is moving towards: its room (hi − soc) in a step where the class charges, its energy above
 * lo (soc − lo) where it discharges; and measure that distance in steps at full power, τ = u / s,
 * where s is the soc one step at full power moves (rate·Δt·eff charging, rate·Δt/eff
 * discharging). In one step τ can shrink to max(0, τ − 1), the same box for every member, and
 * the class must move the LP's energy, so the new τ lie in those boxes and their sum weighted by
 * the energy of a full step (capacity·s) is fixed. Water-filling puts every member at
 * clamp(ρ, box) for the one ρ that meets the sum: it charges the batteries with the most steps of
 * room first and discharges those with the most steps of energy first, and leaves the τ as equal
 * as the boxes allow.
 *
 * Why that choice: in a run of steps that all move the class one way, members differ only in
 * their τ (a member is weight-many copies of one unit battery whose full step moves 1, so sizes
 * and C-rates reduce away), and every other split's τ are a convex combination of permutations
 * of water-filling's (water-filling's are majorised by them). The model is convex and blind to
 * the members' order, so whatever the class can still do in the run after another split, it can
 * do after water-filling's too: if water-filling fails in a run, no split of the LP's plan for
 * that run exists from the state the run started in. (Between runs, members of the same C-rate,
 * efficiency and limits have equal socs when their τ are equal, and the argument carries over;
 * other members make water-filling a heuristic there, and vpq_sched.c's certificate the judge.)
 *
 * When it fails, the LP's plan is not a fleet plan, and a cut tells the LP why. Take the run
 * from its first step s to the failing step t. Which step of the run a member charges in does
 * not matter, only how much: splitting the run is a transportation problem (steps send their
 * energy to members, at most a full step's energy per step and member, at most a member's room
 * in total), and by the max-flow min-cut theorem it has a solution exactly when, for every set S
 * of the run's steps, the energy of S is at most G(|S|) = Σ_members min(|S|·full step, room).
 * G depends only on |S|, so the worst S of size j holds the j largest steps: sorting them
 * finds the most violated j, and the cut
 *     energy charged in any j steps of [s, t] − energy discharged in [s, t] ≤ G(j)
 * goes to the LP (vpq_sched_lp.c). It holds for every fleet plan that leaves the class in the same
 * state at s (discharging in the window frees as much room as it spends). With s = 0, the state
 * is the fleet's state now and the cut holds for every fleet plan; that one is looked for first
 * (over [0, t]), and the cut from the run's own start only when it is not violated.
 *
 * Members with the same soc, limits and steps stay equal forever (same box, same clamp), so the
 * fill works on groups of them, and groups only merge: after a few steps a class of thousands of
 * one kind is a few dozen groups (a class of all-different C-rates stays one group per member,
 * O(members) per step). The fill keeps the groups' order by τ, so they are checked once per step
 * and sorted only when rounding has broken the order, and ρ is found by one sweep over the
 * boxes' ends.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vpq_sched_int.h"

/* Groups of members with equal soc, limits and steps: level (soc), weight (capacity in the
 * class's units: scaled by the member's efficiency over the class's, vpq_sched_int.h), limits, and
 * the soc one step at full power moves charging (up) and discharging (down). */
typedef struct groups {
  int n;
  double *level, *weight, *lo, *hi, *up, *down;
} groups;

struct vpq_sched_fill {
  groups now, start, initial; /* the class now, at the start of the current run, at step 0 */
  groups sorted;              /* scratch for sort_groups */
  double *a, *b, *w;          /* per group: the box of this step in τ, and a full step's energy */
  int *order;                 /* 2 per group: sort_groups's scratch */
  double *rho;                /* per step: the fill level (−INFINITY: every member at its box's end) */
  signed char *dir;           /* per step: +1 charge, −1 discharge, 0 idle */
  double *amount;             /* per step of a run: energy moved */
  double *room_at, *power_at; /* per number of steps: see separate */
};

static bool groups_alloc(groups *g, int n) {
  g->n = 0;
  g->level = malloc((size_t)n * sizeof(double));
  g->weight = malloc((size_t)n * sizeof(double));
  g->lo = malloc((size_t)n * sizeof(double));
  g->hi = malloc((size_t)n * sizeof(double));
  g->up = malloc((size_t)n * sizeof(double));
  g->down = malloc((size_t)n * sizeof(double));
  return g->level && g->weight && g->lo && g->hi && g->up && g->down;
}

static void groups_free(groups *g) {
  free(g->level), free(g->weight), free(g->lo), free(g->hi), free(g->up), free(g->down);
}

static void groups_copy(groups *to, const groups *from) {
  const size_t size = (size_t)from->n * sizeof(double);
  to->n = from->n;
  memcpy(to->level, from->level, size);
  memcpy(to->weight, from->weight, size);
  memcpy(to->lo, from->lo, size);
  memcpy(to->hi, from->hi, size);
  memcpy(to->up, from->up, size);
  memcpy(to->down, from->down, size);
}

/* Appends a group, merging it into the last one when soc, limits and steps are equal. */
static void groups_push(groups *g, double level, double weight, double lo, double hi, double up, double down) {
  const int n = g->n;
  if (n > 0 && g->level[n - 1] == level && g->lo[n - 1] == lo && g->hi[n - 1] == hi && g->up[n - 1] == up &&
      g->down[n - 1] == down) {
    g->weight[n - 1] += weight;
    return;
  }
  g->level[n] = level, g->weight[n] = weight, g->lo[n] = lo, g->hi[n] = hi, g->up[n] = up, g->down[n] = down;
  g->n = n + 1;
}

/* The soc that one step at full power moves member m, charging (dir > 0) or discharging. */
static double member_step(const vpq_sched_problem *pr, const vpq_sched_member *m, int dir) {
  const double per_step = m->max_kw / m->capacity * pr->step_hours;
  return dir > 0 ? per_step * m->eff : per_step / m->eff;
}

vpq_sched_fill *vpq_sched_fill_new(int max_members, int nsteps) {
  vpq_sched_fill *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  const size_t n = (size_t)(max_members > 0 ? max_members : 1), T = (size_t)nsteps;
  bool ok = groups_alloc(&f->now, (int)n) && groups_alloc(&f->start, (int)n) && groups_alloc(&f->initial, (int)n) &&
            groups_alloc(&f->sorted, (int)n);
  f->a = malloc(n * sizeof *f->a);
  f->b = malloc(n * sizeof *f->b);
  f->w = malloc(n * sizeof *f->w);
  f->order = malloc(2 * n * sizeof *f->order);
  f->rho = malloc(T * sizeof *f->rho);
  f->dir = malloc(T * sizeof *f->dir);
  f->amount = malloc(T * sizeof *f->amount);
  f->room_at = malloc((T + 2) * sizeof *f->room_at);
  f->power_at = malloc((T + 2) * sizeof *f->power_at);
  ok = ok && f->a && f->b && f->w && f->order && f->rho && f->dir && f->amount && f->room_at && f->power_at;
  if (!ok) {
    vpq_sched_fill_free(f);
    return NULL;
  }
  return f;
}

void vpq_sched_fill_free(vpq_sched_fill *f) {
  if (!f) return;
  groups_free(&f->now), groups_free(&f->start), groups_free(&f->initial), groups_free(&f->sorted);
  free(f->a), free(f->b), free(f->w), free(f->order), free(f->rho), free(f->dir), free(f->amount), free(f->room_at),
      free(f->power_at);
  free(f);
}

/* A group's distance to the limit ahead in direction dir (+1: room below hi, −1: energy above lo),
 * in soc and in full steps (τ). */
static double distance(const groups *g, int i, int dir) {
  return dir > 0 ? g->hi[i] - g->level[i] : g->level[i] - g->lo[i];
}

static double steps_left(const groups *g, int i, int dir) {
  return distance(g, i, dir) / (dir > 0 ? g->up[i] : g->down[i]);
}

/* Sorts the groups by τ in direction dir, ascending: nothing to do when they already are (the
 * fill keeps the order, clamping every τ to the same level within boxes of the same width, up to
 * rounding), reversed when they are in the opposite order (one kind and limits, after a run the
 * other way), else a merge sort of the indices, into f->sorted and back. */
static void sort_groups(vpq_sched_fill *f, groups *g, int dir) {
  const int n = g->n;
  bool up = true, down = true;
  for (int i = 1; i < n && (up || down); i++) {
    const double a = steps_left(g, i - 1, dir), b = steps_left(g, i, dir);
    up = up && a <= b;
    down = down && a >= b;
  }
  if (up) return;
  int *o = f->order, *tmp = f->order + n;
  for (int i = 0; i < n; i++) o[i] = down ? n - 1 - i : i;
  if (!down) /* bottom-up merge sort of the indices by τ */
    for (int width = 1; width < n; width *= 2) {
      for (int lo = 0; lo < n; lo += 2 * width) {
        const int mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
        int i = lo, j = mid, k = lo;
        while (i < mid && j < hi) tmp[k++] = steps_left(g, o[j], dir) < steps_left(g, o[i], dir) ? o[j++] : o[i++];
        while (i < mid) tmp[k++] = o[i++];
        while (j < hi) tmp[k++] = o[j++];
      }
      int *swap = o;
      o = tmp, tmp = swap;
    }
  groups *into = &f->sorted;
  into->n = n;
  for (int i = 0; i < n; i++) {
    into->level[i] = g->level[o[i]], into->weight[i] = g->weight[o[i]];
    into->lo[i] = g->lo[o[i]], into->hi[i] = g->hi[o[i]], into->up[i] = g->up[o[i]], into->down[i] = g->down[o[i]];
  }
  groups_copy(g, into);
}

/* The ρ at which Σ w·clamp(ρ, a, b) = target, for the n boxes sorted ascending (both ends) and
 * target within [Σ w·a, Σ w·b]: a sweep over the boxes' ends in order, keeping the sum below the
 * current point as base + slope·ρ. */
static double fill_level(const vpq_sched_fill *f, int n, double target) {
  const double *a = f->a, *b = f->b, *w = f->w;
  double base = 0, slope = 0;
  for (int i = 0; i < n; i++) base += w[i] * a[i];
  int i = 0, j = 0;
  while (j < n) {
    const bool rise = i < n && a[i] <= b[j];
    const double x = rise ? a[i] : b[j];
    if (slope > 0 && base + slope * x >= target) return (target - base) / slope;
    if (rise)
      base -= w[i] * a[i], slope += w[i], i++;
    else
      base += w[j] * b[j], slope -= w[j], j++;
  }
  return b[n - 1];
}

/* A member's soc after a step that moves its class in direction dir (+1 charge, −1 discharge)
 * with fill level rho (in full steps): its distance u to the limit ahead, u / step = τ full
 * steps, becomes step·clamp(rho, max(0, τ − 1), τ). */
static double moved_level(double level, double lo, double hi, int dir, double step, double rho) {
  const double u = dir > 0 ? hi - level : level - lo, tau = u / step;
  if (rho >= tau) return level;
  if (rho <= tau - 1) return dir > 0 ? fmin(hi, level + step) : fmax(lo, level - step);
  const double left = fmax(0, rho) * step;
  return dir > 0 ? hi - left : lo + left;
}

/* The most violated cut over steps [first, last] in direction dir from the state `from` (the
 * class at the start of step first), into *cut; false when none is violated by more than tol.
 * G(j) = Σ min(j·power, room) is summed by bucketing each group at the j from which its room, not
 * its power, is the limit. */
static bool separate(vpq_sched_fill *f, const vpq_sched_problem *pr, const vpq_sched_class *cls, int k,
                     const double *xk, int dir, int first, int last, const groups *from, bool from_start, double tol,
                     vpq_sched_cut *cut) {
  const double dt = pr->step_hours, eff = cls->eff;
  const bool charge = dir == VPQ_SCHED_CHARGE;
  const double per_kw = charge ? eff * dt : dt / eff, other_per_kw = charge ? dt / eff : eff * dt;
  const int m = last - first + 1, other = charge ? VPQ_SCHED_DISCHARGE : VPQ_SCHED_CHARGE;
  double opposite = 0;
  for (int i = 0; i < m; i++) {
    f->amount[i] = xk[2 * (first + i) + dir] * per_kw;
    opposite += xk[2 * (first + i) + other] * other_per_kw;
  }
  for (int i = 1; i < m; i++) /* descending; m ≤ T */
    for (int j = i; j > 0 && f->amount[j] > f->amount[j - 1]; j--) {
      const double swap = f->amount[j];
      f->amount[j] = f->amount[j - 1], f->amount[j - 1] = swap;
    }
  for (int j = 0; j <= m + 1; j++) f->room_at[j] = 0, f->power_at[j] = 0;
  double power = 0;
  for (int i = 0; i < from->n; i++) {
    const double room = from->weight[i] * fmax(0, charge ? from->hi[i] - from->level[i] : from->level[i] - from->lo[i]);
    const double per_step = from->weight[i] * (charge ? from->up[i] : from->down[i]);
    const double steps = ceil(room / per_step);
    const int at = steps > m ? m + 1 : (int)steps;
    f->room_at[at] += room, f->power_at[at] += per_step, power += per_step;
  }
  double best = tol, top = 0, bound = 0, rooms = f->room_at[0], power_above = power - f->power_at[0];
  int size = 0;
  for (int j = 1; j <= m; j++) {
    top += f->amount[j - 1];
    rooms += f->room_at[j];
    power_above -= f->power_at[j];
    const double g_j = rooms + (double)j * power_above;
    if (top - opposite - g_j > best) best = top - opposite - g_j, size = j, bound = g_j;
  }
  if (size == 0) return false;
  *cut = (vpq_sched_cut){k, dir, first, last, size, bound, from_start};
  return true;
}

/* At the start of a run in direction dir: sorts the groups by τ and sets f->b to their τ and f->w
 * to the energy of their full step. */
static void start_run(vpq_sched_fill *f, groups *g, int dir) {
  sort_groups(f, g, dir);
  const double *step = dir > 0 ? g->up : g->down;
  for (int i = 0; i < g->n; i++) {
    f->w[i] = g->weight[i] * step[i];
    f->b[i] = distance(g, i, dir) / step[i];
  }
}

/* At the end of a run in direction dir: the groups' levels from their τ. */
static void end_run(const vpq_sched_fill *f, groups *g, int dir) {
  for (int i = 0; i < g->n; i++)
    g->level[i] = dir > 0 ? g->hi[i] - f->b[i] * g->up[i] : g->lo[i] + f->b[i] * g->down[i];
}

/* One step of a run at fill level rho: every τ to clamp(rho, a, b), merging neighbours that
 * become equal (same τ, limits and steps). */
static void fill_step(vpq_sched_fill *f, groups *g, double rho) {
  int k = 0;
  for (int i = 0; i < g->n; i++) {
    const double tau = rho < f->a[i] ? f->a[i] : rho > f->b[i] ? f->b[i] : rho;
    if (k > 0 && f->b[k - 1] == tau && g->lo[k - 1] == g->lo[i] && g->hi[k - 1] == g->hi[i] &&
        g->up[k - 1] == g->up[i] && g->down[k - 1] == g->down[i]) {
      g->weight[k - 1] += g->weight[i], f->w[k - 1] += f->w[i];
      continue;
    }
    g->weight[k] = g->weight[i], g->lo[k] = g->lo[i], g->hi[k] = g->hi[i], g->up[k] = g->up[i];
    g->down[k] = g->down[i], f->w[k] = f->w[i], f->b[k] = tau;
    k++;
  }
  g->n = k;
}

vpq_sched_fill_result vpq_sched_fill_class(vpq_sched_fill *f, const vpq_sched_problem *pr,
                                           const vpq_sched_member *members, const vpq_sched_class *cls, int k,
                                           const double *xk, vpq_sched_cut *cut) {
  const int T = pr->nsteps;
  const double dt = pr->step_hours, eff = cls->eff;
  const double tol = 1e-7 * (1 + cls->capacity);
  groups *g = &f->now;
  f->initial.n = 0;
  for (int m = cls->first; m < cls->first + cls->count; m++) {
    const vpq_sched_member *b = &members[m];
    groups_push(&f->initial, b->soc, b->capacity * b->eff / eff, b->lo, b->hi, member_step(pr, b, 1), member_step(pr, b, -1));
  }
  groups_copy(g, &f->initial);
  int run = -1, run_first = 0, runs = 0;
  for (int t = 0; t < T; t++) {
    const double moved = xk[2 * t + VPQ_SCHED_CHARGE] * eff * dt - xk[2 * t + VPQ_SCHED_DISCHARGE] * dt / eff;
    f->dir[t] = moved > 1e-12 * (1 + cls->capacity) ? 1 : moved < -1e-12 * (1 + cls->capacity) ? -1 : 0;
    if (f->dir[t] == 0) continue;
    const int dir = f->dir[t] > 0 ? VPQ_SCHED_CHARGE : VPQ_SCHED_DISCHARGE;
    if (dir != run) {
      if (run >= 0) end_run(f, g, -f->dir[t]);
      run = dir, run_first = t, runs++;
      groups_copy(&f->start, g);
      start_run(f, g, f->dir[t]);
    }
    double stored = 0, lowest = 0;
    for (int i = 0; i < g->n; i++) {
      f->a[i] = f->b[i] > 1 ? f->b[i] - 1 : 0;
      stored += f->w[i] * f->b[i];
      lowest += f->w[i] * f->a[i];
    }
    const double target = stored - fabs(moved);
    if (target < lowest - tol && cut) {
      /* a cut from the state now holds for every plan: prefer it to one from the run's start */
      if (separate(f, pr, cls, k, xk, dir, 0, t, &f->initial, true, tol, cut)) return VPQ_SCHED_FILL_CUT;
      if (runs > 1 && separate(f, pr, cls, k, xk, dir, run_first, t, &f->start, false, tol, cut))
        return VPQ_SCHED_FILL_CUT;
      return VPQ_SCHED_FILL_STUCK;
    }
    f->rho[t] = target > lowest ? fill_level(f, g->n, target) : -INFINITY;
    fill_step(f, g, f->rho[t]);
  }
  return VPQ_SCHED_FILL_OK;
}

void vpq_sched_fill_members(const vpq_sched_fill *f, const vpq_sched_problem *pr, const vpq_sched_member *members,
                            const vpq_sched_class *cls, double *charge, double *discharge) {
  const int T = pr->nsteps;
  const double dt = pr->step_hours;
  for (int m = cls->first; m < cls->first + cls->count; m++) {
    const vpq_sched_member *b = &members[m];
    const double up = member_step(pr, b, 1), down = member_step(pr, b, -1), eff = b->eff;
    const size_t row = (size_t)b->index * (size_t)T;
    double s = b->soc;
    for (int t = 0; t < T; t++) {
      const double to =
          f->dir[t] == 0 ? s : moved_level(s, b->lo, b->hi, f->dir[t], f->dir[t] > 0 ? up : down, f->rho[t]);
      charge[row + (size_t)t] = to > s ? (to - s) * b->capacity / (eff * dt) : 0;
      discharge[row + (size_t)t] = to < s ? (s - to) * b->capacity * eff / dt : 0;
      s = to;
    }
  }
}

void vpq_sched_fill_class_plan(const vpq_sched_fill *f, const vpq_sched_problem *pr, const vpq_sched_member *members,
                               const vpq_sched_class *cls, double *xk) {
  const int T = pr->nsteps;
  const double dt = pr->step_hours;
  for (int t = 0; t < 2 * T; t++) xk[t] = 0;
  for (int m = cls->first; m < cls->first + cls->count; m++) {
    const vpq_sched_member *b = &members[m];
    const double up = member_step(pr, b, 1), down = member_step(pr, b, -1), weight = b->capacity * b->eff / cls->eff;
    double s = b->soc;
    for (int t = 0; t < T; t++) {
      if (f->dir[t] == 0) continue;
      const double to = moved_level(s, b->lo, b->hi, f->dir[t], f->dir[t] > 0 ? up : down, f->rho[t]);
      if (to > s) xk[2 * t + VPQ_SCHED_CHARGE] += (to - s) * weight / (cls->eff * dt);
      if (to < s) xk[2 * t + VPQ_SCHED_DISCHARGE] += (s - to) * weight * cls->eff / dt;
      s = to;
    }
  }
}
