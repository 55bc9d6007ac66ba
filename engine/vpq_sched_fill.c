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
 *
 * At the start of each run the groups are sorted by their τ in its direction: a radix sort of
 * the τ's bits, stable, so the order is the one a stable comparison sort gives (as a merge sort
 * that divided for every comparison it took a quarter of the fill's time on bench_sched's aged
 * fleets). The LP re-optimises a class's plan round after round, mostly in its later steps: a
 * fill that looks for a cut remembers the plan it followed and snapshots of the class, at the
 * start of each run and every SNAPSHOT_STEPS steps within one (vpq_sched_fill_forget), and the
 * next fill of that class resumes at the last snapshot before the first step whose plan changed.
 * From there it does exactly what a fill from step 0 would, so plans and cuts are the same; on
 * the aged fleets of 6 and 12 efficiencies it skips about half of the steps (with snapshots at the
 * starts of runs alone; those within runs take the fills of the fleet of 12 efficiencies from
 * 795 to 616 million instructions).
 */
#include <math.h>
#include <stdint.h>
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

/* The fields of a groups' arrays, as a snapshot stores them; a snapshot within a run also stores
 * each group's τ and full step's energy (f->b and f->w). */
enum { FIELDS = 6, WITHIN_FIELDS = FIELDS + 2 };

/* Steps between snapshots within a run (a fill resumes at most this many steps before the first
 * change of its class's plan, or at the start of the run). Against snapshots at the starts of
 * runs alone, the instructions of bench_sched's runs of one MIN_PEAK plan of its aged fleets of
 * 4, 6, 8 and 12 efficiencies fell by 2 %, 12 %, 2.5 % and 7 %, and those of its fleet of
 * all-different efficiencies rose 1 % (its fills rarely resume late enough to pay for the
 * snapshots); every 4 steps: 1 %, 9 %, 0.2 % and 7.5 % less, 2.4 % more; every 16: 4 %, 13 %,
 * 3 % and 6 % less, 0.5 % more. */
enum { SNAPSHOT_STEPS = 8 };

/* What the last fill of a class that looked for a cut leaves for the next fill of the same class
 * (vpq_sched_fill_class): the plan it followed, its direction and fill level per step up to where
 * it stopped, and snapshots of the class before some steps, in the order of their steps, each
 * FIELDS (at the start of a run, before start_run's sort) or WITHIN_FIELDS (every SNAPSHOT_STEPS
 * steps within a run) arrays of snap_groups[i] doubles from pool + snap_at[i]. */
typedef struct fill_memo {
  bool valid;
  double *x, *rho;
  signed char *dir;
  int nsnaps;
  int *snap_step, *snap_runs, *snap_groups; /* per snapshot: step, runs so far, groups */
  int *snap_start;                          /* per snapshot: the snapshot at its run's start */
  size_t *snap_at;
  double *pool;
  size_t used, capacity;
} fill_memo;

/* A group's τ as a key that orders as the τ do (sortable_key) and the group's index, for
 * sort_groups. */
typedef struct keyed {
  uint64_t key;
  int index;
} keyed;

struct vpq_sched_fill {
  groups now, start, initial; /* the class now, at the start of the current run, at step 0 */
  groups sorted;              /* scratch for sort_groups */
  double *a, *b, *w;          /* per group: the box of this step in τ, and a full step's energy */
  bool *same;                 /* per group: the limits and steps of the group before it */
  keyed *keys;                /* 2 per group: sort_groups's scratch */
  double *rho;                /* per step: the fill level (−INFINITY: every member at its box's end) */
  signed char *dir;           /* per step: +1 charge, −1 discharge, 0 idle */
  double *amount;             /* per step of a run: energy moved */
  double *room_at, *power_at; /* per number of steps: see separate */
  int nsteps;                 /* T, for the memos */
  fill_memo *memos;           /* per class [0, nmemos): vpq_sched_fill_forget's */
  int nmemos;
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
  f->same = malloc(n);
  f->keys = malloc(2 * n * sizeof *f->keys);
  f->rho = malloc(T * sizeof *f->rho);
  f->dir = malloc(T * sizeof *f->dir);
  f->amount = malloc(T * sizeof *f->amount);
  f->room_at = malloc((T + 2) * sizeof *f->room_at);
  f->power_at = malloc((T + 2) * sizeof *f->power_at);
  f->nsteps = nsteps;
  ok = ok && f->a && f->b && f->w && f->same && f->keys && f->rho && f->dir && f->amount && f->room_at && f->power_at;
  if (!ok) {
    vpq_sched_fill_free(f);
    return NULL;
  }
  return f;
}

/* Frees a memo's arrays. */
static void memo_free(fill_memo *memo) {
  free(memo->x), free(memo->rho), free(memo->dir), free(memo->snap_step), free(memo->snap_runs),
      free(memo->snap_groups), free(memo->snap_start), free(memo->snap_at), free(memo->pool);
}

/* A memo with room for nsteps steps and snapshots (one before a step at most) and no snapshot
 * yet; false when out of memory. */
static bool memo_alloc(fill_memo *memo, int nsteps) {
  const size_t T = (size_t)(nsteps > 0 ? nsteps : 1);
  *memo = (fill_memo){.x = malloc(2 * T * sizeof(double)),
                      .rho = malloc(T * sizeof(double)),
                      .dir = malloc(T),
                      .snap_step = malloc(T * sizeof(int)),
                      .snap_runs = malloc(T * sizeof(int)),
                      .snap_groups = malloc(T * sizeof(int)),
                      .snap_start = malloc(T * sizeof(int)),
                      .snap_at = malloc(T * sizeof(size_t))};
  if (memo->x && memo->rho && memo->dir && memo->snap_step && memo->snap_runs && memo->snap_groups &&
      memo->snap_start && memo->snap_at)
    return true;
  memo_free(memo);
  return false;
}

void vpq_sched_fill_forget(vpq_sched_fill *f, int nclasses) {
  for (int k = 0; k < f->nmemos; k++) f->memos[k].valid = false;
  if (nclasses <= f->nmemos) return;
  fill_memo *memos = realloc(f->memos, (size_t)nclasses * sizeof *memos);
  if (!memos) return;
  f->memos = memos;
  while (f->nmemos < nclasses && memo_alloc(&f->memos[f->nmemos], f->nsteps)) f->nmemos++;
}

void vpq_sched_fill_free(vpq_sched_fill *f) {
  if (!f) return;
  for (int k = 0; k < f->nmemos; k++) memo_free(&f->memos[k]);
  free(f->memos);
  groups_free(&f->now), groups_free(&f->start), groups_free(&f->initial), groups_free(&f->sorted);
  free(f->a), free(f->b), free(f->w), free(f->same), free(f->keys), free(f->rho), free(f->dir), free(f->amount),
      free(f->room_at), free(f->power_at);
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

/* The bits of a double as an unsigned key in the doubles' order (−0 and +0 as one key): flip the
 * sign bit of a positive double, every bit of a negative one. */
static uint64_t sortable_key(double v) {
  v += 0.0;
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  return bits >> 63 ? ~bits : bits | (UINT64_C(1) << 63);
}

/* Sorts n keyed items in o by key, stably (ties keep their order: as a stable comparison sort
 * would), by least significant digit radix sort on bytes, skipping the bytes that every key
 * shares; tmp is scratch of n items. Returns the array that holds the result, o or tmp. */
static keyed *radix_sort(keyed *o, keyed *tmp, int n) {
  enum { DIGITS = 8, BUCKETS = 256 };
  int count[DIGITS][BUCKETS];
  memset(count, 0, sizeof count);
  for (int i = 0; i < n; i++)
    for (int d = 0; d < DIGITS; d++) count[d][(o[i].key >> (8 * d)) & (BUCKETS - 1)]++;
  for (int d = 0; d < DIGITS; d++) {
    if (count[d][(o[0].key >> (8 * d)) & (BUCKETS - 1)] == n) continue;
    for (int b = 0, at = 0; b < BUCKETS; b++) {
      const int c = count[d][b];
      count[d][b] = at;
      at += c;
    }
    for (int i = 0; i < n; i++) tmp[count[d][(o[i].key >> (8 * d)) & (BUCKETS - 1)]++] = o[i];
    keyed *swap = o;
    o = tmp, tmp = swap;
  }
  return o;
}

/* Sorts the groups by τ in direction dir, ascending: nothing to do when they already are (the
 * fill keeps the order, clamping every τ to the same level within boxes of the same width, up to
 * rounding), reversed when they are in the opposite order (one kind and limits, after a run the
 * other way), else a stable radix sort of (τ, index) pairs, each τ computed once, then the groups
 * gathered into f->sorted, which trades places with g. */
static void sort_groups(vpq_sched_fill *f, groups *g, int dir) {
  const int n = g->n;
  keyed *o = f->keys, *tmp = f->keys + n;
  bool up = true, down = true;
  for (int i = 0; i < n; i++) {
    o[i] = (keyed){sortable_key(steps_left(g, i, dir)), i};
    if (i > 0) {
      up = up && o[i - 1].key <= o[i].key;
      down = down && o[i - 1].key >= o[i].key;
    }
  }
  if (up) return;
  if (down) {
    for (int i = 0; i < n; i++) tmp[i] = o[n - 1 - i];
    o = tmp;
  } else {
    o = radix_sort(o, tmp, n);
  }
  groups *into = &f->sorted;
  into->n = n;
  for (int i = 0; i < n; i++) {
    const int at = o[i].index;
    into->level[i] = g->level[at], into->weight[i] = g->weight[at];
    into->lo[i] = g->lo[at], into->hi[i] = g->hi[at], into->up[i] = g->up[at], into->down[i] = g->down[at];
  }
  const groups swap = *g; /* both have room for every member */
  *g = *into, *into = swap;
}

/* The ρ at which Σ w·clamp(ρ, a, b) = target, for the n boxes sorted ascending (both ends) and
 * target within [lowest, Σ w·b], lowest = Σ w·a (summed in index order): a sweep over the boxes'
 * ends in order, keeping the sum below the current point as base + slope·ρ. */
static double fill_level(const vpq_sched_fill *f, int n, double lowest, double target) {
  const double *a = f->a, *b = f->b, *w = f->w;
  double base = lowest, slope = 0;
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

/* At the start of a run in direction dir: sorts the groups by τ and sets f->b to their τ, f->w
 * to the energy of their full step and f->same. */
static void start_run(vpq_sched_fill *f, groups *g, int dir) {
  sort_groups(f, g, dir);
  const double *step = dir > 0 ? g->up : g->down;
  for (int i = 0; i < g->n; i++) {
    f->w[i] = g->weight[i] * step[i];
    f->b[i] = distance(g, i, dir) / step[i];
    f->same[i] = i > 0 && g->lo[i - 1] == g->lo[i] && g->hi[i - 1] == g->hi[i] && g->up[i - 1] == g->up[i] &&
                 g->down[i - 1] == g->down[i];
  }
}

/* At the end of a run in direction dir: the groups' levels from their τ. */
static void end_run(const vpq_sched_fill *f, groups *g, int dir) {
  for (int i = 0; i < g->n; i++)
    g->level[i] = dir > 0 ? g->hi[i] - f->b[i] * g->up[i] : g->lo[i] + f->b[i] * g->down[i];
}

/* The energy the groups hold in full steps, Σ w·τ, and the least they can hold after one more
 * step, Σ w·a (a = max(0, τ − 1)), summed in the groups' order. */
typedef struct box_sums {
  double stored, lowest;
} box_sums;

/* Sets group i's box a from its τ and adds the group to the sums. */
static void add_box(vpq_sched_fill *f, int i, box_sums *sums) {
  f->a[i] = f->b[i] > 1 ? f->b[i] - 1 : 0;
  sums->stored += f->w[i] * f->b[i];
  sums->lowest += f->w[i] * f->a[i];
}

/* The boxes and sums of the groups' next step. */
static box_sums boxes(vpq_sched_fill *f, int n) {
  box_sums sums = {0, 0};
  for (int i = 0; i < n; i++) add_box(f, i, &sums);
  return sums;
}

/* One step of a run at fill level rho: every τ to clamp(rho, a, b), merging neighbours that
 * become equal (same τ, limits and steps); returns the boxes' sums of the next step (boxes),
 * each group's added once it has taken every group that merges into it. A group merges only into
 * the group before it, and every group merged into one has its limits and steps, so f->same says
 * whether the limits and steps of a group and of the last group kept before it are equal, in this
 * step and the next. */
static box_sums fill_step(vpq_sched_fill *f, groups *g, double rho) {
  box_sums sums = {0, 0};
  int k = 0;
  for (int i = 0; i < g->n; i++) {
    const double tau = rho < f->a[i] ? f->a[i] : rho > f->b[i] ? f->b[i] : rho;
    if (k > 0 && f->same[i] && f->b[k - 1] == tau) {
      g->weight[k - 1] += g->weight[i], f->w[k - 1] += f->w[i];
      continue;
    }
    if (k > 0) add_box(f, k - 1, &sums);
    if (k < i) {
      g->weight[k] = g->weight[i], g->lo[k] = g->lo[i], g->hi[k] = g->hi[i], g->up[k] = g->up[i];
      g->down[k] = g->down[i], f->w[k] = f->w[i], f->same[k] = f->same[i];
    }
    f->b[k++] = tau;
  }
  if (k > 0) add_box(f, k - 1, &sums);
  g->n = k;
  return sums;
}

/* Where a fill resumed by restore: its step, the current run's direction (VPQ_SCHED_CHARGE or
 * _DISCHARGE) and first step, the runs so far, and the snapshot at the run's start. */
typedef struct resume_point {
  int step, run, run_first, runs, run_snap;
} resume_point;

/* Copies `count` arrays of n doubles from the memo's pool at `at` into `into`. */
static void restore_fields(const fill_memo *memo, size_t at, int n, double *const *into, int count) {
  for (int j = 0; j < count; j++)
    memcpy(into[j], memo->pool + at + (size_t)j * (size_t)n, (size_t)n * sizeof(double));
}

/* The latest snapshot of class k's fill (f->memos[k]) that the plan's change at step `before`
 * leaves valid (one at the start of a run that began before it, or one within a run before or at
 * it) into g, f->start (the class at its run's start), f->b, f->w and f->same, started as the
 * fill would be there, with the fill's recorded directions and fill levels of the steps before
 * it; the snapshots after it are dropped. False when there is none (the memo is then emptied). */
static bool restore(vpq_sched_fill *f, fill_memo *memo, int before, groups *g, resume_point *at) {
  int i = memo->nsnaps - 1;
  while (i >= 0 && (memo->snap_start[i] == i ? memo->snap_step[i] >= before : memo->snap_step[i] > before)) i--;
  memo->nsnaps = i + 1;
  if (i < 0) {
    memo->used = 0;
    return false;
  }
  const int n = memo->snap_groups[i], first = memo->snap_start[i], step = memo->snap_step[i];
  const bool within = first != i;
  double *const fields[WITHIN_FIELDS] = {g->level, g->weight, g->lo, g->hi, g->up, g->down, f->b, f->w};
  restore_fields(memo, memo->snap_at[i], n, fields, within ? WITHIN_FIELDS : FIELDS);
  g->n = n;
  memo->used = memo->snap_at[i] + (size_t)(within ? WITHIN_FIELDS : FIELDS) * (size_t)n;
  memcpy(f->rho, memo->rho, (size_t)step * sizeof *f->rho);
  memcpy(f->dir, memo->dir, (size_t)(step + 1) * sizeof *f->dir);
  const int run_first = memo->snap_step[first];
  *at = (resume_point){step, f->dir[run_first] > 0 ? VPQ_SCHED_CHARGE : VPQ_SCHED_DISCHARGE, run_first,
                       memo->snap_runs[i], first};
  if (!within) {
    groups_copy(&f->start, g);
    start_run(f, g, f->dir[step]);
    return true;
  }
  double *const start[FIELDS] = {f->start.level, f->start.weight, f->start.lo, f->start.hi, f->start.up, f->start.down};
  restore_fields(memo, memo->snap_at[first], memo->snap_groups[first], start, FIELDS);
  f->start.n = memo->snap_groups[first];
  for (int j = 0; j < n; j++)
    f->same[j] = j > 0 && g->lo[j - 1] == g->lo[j] && g->hi[j - 1] == g->hi[j] && g->up[j - 1] == g->up[j] &&
                 g->down[j - 1] == g->down[j];
  return true;
}

/* Appends a snapshot of the class before step `step` to the memo: g, and with `within` (a step
 * within the run that began at snapshot `run_snap`) f->b and f->w; false when out of memory. */
static bool remember(vpq_sched_fill *f, fill_memo *memo, int step, int runs, int run_snap, bool within,
                     const groups *g) {
  const int count = within ? WITHIN_FIELDS : FIELDS;
  const size_t need = memo->used + (size_t)count * (size_t)g->n;
  if (need > memo->capacity) {
    const size_t capacity = need * 2;
    double *pool = realloc(memo->pool, capacity * sizeof *pool);
    if (!pool) return false;
    memo->pool = pool, memo->capacity = capacity;
  }
  const double *const fields[WITHIN_FIELDS] = {g->level, g->weight, g->lo, g->hi, g->up, g->down, f->b, f->w};
  for (int j = 0; j < count; j++)
    memcpy(memo->pool + memo->used + (size_t)j * (size_t)g->n, fields[j], (size_t)g->n * sizeof(double));
  const int i = memo->nsnaps++;
  memo->snap_step[i] = step, memo->snap_runs[i] = runs, memo->snap_groups[i] = g->n;
  memo->snap_start[i] = within ? run_snap : i;
  memo->snap_at[i] = memo->used;
  memo->used = need;
  return true;
}

/* The first step in which plan xk differs from the one the memo's fill followed (T if none). */
static int first_change(const fill_memo *memo, const double *xk, int T) {
  int t = 0;
  while (t < T && memcmp(&xk[2 * t], &memo->x[2 * t], 2 * sizeof *xk) == 0) t++;
  return t;
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
  /* with a cut asked for, resume at the memo's last snapshot before the plan changed: up to the
   * change the fill is the same */
  fill_memo *memo = cut && k < f->nmemos ? &f->memos[k] : NULL;
  int run = -1, run_first = 0, runs = 0, t = 0, run_snap = 0, snapped = 0;
  box_sums sums = {0, 0};
  if (memo) {
    resume_point at;
    if (memo->valid && restore(f, memo, first_change(memo, xk, T), g, &at)) {
      t = snapped = at.step, run = at.run, run_first = at.run_first, runs = at.runs, run_snap = at.run_snap;
      sums = boxes(f, g->n);
    } else {
      memo->nsnaps = 0, memo->used = 0;
    }
    memo->valid = false;
  }
  if (run < 0) groups_copy(g, &f->initial);
  vpq_sched_fill_result result = VPQ_SCHED_FILL_OK;
  for (; t < T; t++) {
    const double moved = xk[2 * t + VPQ_SCHED_CHARGE] * eff * dt - xk[2 * t + VPQ_SCHED_DISCHARGE] * dt / eff;
    f->dir[t] = moved > 1e-12 * (1 + cls->capacity) ? 1 : moved < -1e-12 * (1 + cls->capacity) ? -1 : 0;
    if (f->dir[t] == 0) continue;
    const int dir = f->dir[t] > 0 ? VPQ_SCHED_CHARGE : VPQ_SCHED_DISCHARGE;
    if (dir != run) {
      if (run >= 0) end_run(f, g, -f->dir[t]);
      run = dir, run_first = t, runs++;
      groups_copy(&f->start, g);
      run_snap = memo ? memo->nsnaps : 0, snapped = t;
      if (memo && !remember(f, memo, t, runs, run_snap, false, g)) memo = NULL;
      start_run(f, g, f->dir[t]);
      sums = boxes(f, g->n);
    } else if (memo && t - snapped >= SNAPSHOT_STEPS) {
      snapped = t;
      if (!remember(f, memo, t, runs, run_snap, true, g)) memo = NULL;
    }
    const double lowest = sums.lowest, target = sums.stored - fabs(moved);
    if (target < lowest - tol && cut) {
      /* a cut from the state now holds for every plan: prefer it to one from the run's start */
      result = separate(f, pr, cls, k, xk, dir, 0, t, &f->initial, true, tol, cut) ||
                       (runs > 1 && separate(f, pr, cls, k, xk, dir, run_first, t, &f->start, false, tol, cut))
                   ? VPQ_SCHED_FILL_CUT
                   : VPQ_SCHED_FILL_STUCK;
      break;
    }
    f->rho[t] = target > lowest ? fill_level(f, g->n, lowest, target) : -INFINITY;
    sums = fill_step(f, g, f->rho[t]);
  }
  if (memo) { /* t: the step the fill stopped at, or T */
    memcpy(memo->x, xk, 2 * (size_t)T * sizeof *xk);
    memcpy(memo->rho, f->rho, (size_t)t * sizeof *f->rho);
    memcpy(memo->dir, f->dir, (size_t)(t < T ? t + 1 : T) * sizeof *f->dir);
    memo->valid = true;
  }
  return result;
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
