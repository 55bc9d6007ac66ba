/* vpq_op_schedule.c — the SCHEDULE operator (DESIGN §4): battery dispatch, receding horizon.
 *
 *   port 0  forecast rows (issued_at, ts, value) ─► grouped by issue
 *   port 1  the fleet table's changelog           ─► the twin: one battery per device_id
 *   port 2  price forecast rows (MINIMIZE COST)   ─► every price per time, by event time
 *
 * An issue of the forecast is planned once the watermark of the forecast (and price) input
 * has passed its issued_at, so that all of its rows are in; an issue that arrives after that
 * is late (counted, dead-lettered through its source's `dead_letter`, not planned), and so is
 * a price row whose event time the planning watermark has passed (not kept). The fleet and
 * the prices are read as they stood at issued_at: every battery keeps the versions of its row
 * (with their event times), and every price time the rows given for it, until no pending issue
 * can need them; a plan uses each battery's latest version at or before issued_at, and for each
 * step the newest price row with event time at or before issued_at (of the latest price time
 * at or before the step), so a replay plans with what was known then, however the inputs'
 * processing interleaves.
 * The plan covers [issued_at, issued_at + HORIZON) in steps of STEP; the load of a step is the
 * highest the forecast takes in it (load_over: the row with the latest ts at or before the step's
 * start, and the rows within the step; the plan stops where the forecast ends). A step with a
 * NULL value among those rows, or that no row is at or before, is unknown, and no plan is safe
 * over an unknown load: every battery of that issue stays idle (setpoint 0, soc kept) and a
 * warning is logged, as when MINIMIZE COST has no price at or before a step. vpq_sched_solve
 * (vpq_sched.c) plans; this operator writes, for every battery in device_id order, the first
 * step (or every step with EMIT PLAN):
 * issued_at, ts, device_id, setpoint_kw, soc, planned_peak_kw, with event time issued_at.
 *
 * A battery that cannot be planned (NULL, non-positive or absurd (> SC_MAX_SIZE) capacity or
 * power, a soc that is NULL or outside 0..1, an efficiency outside (0, 1], limits that leave no
 * room, or a last report older than `stale_after`: its `seen` column when the fleet has one,
 * else its row's event time) gets setpoint 0 and keeps its soc.
 *
 * Demand charges bill a month's highest net load, so with `SUBJECT TO peak_floor = f *
 * month_peak` MINIMIZE PEAK remembers the highest net load it has dispatched for a first step
 * in the issue's calendar month (UTC): M, the forecast of that step minus the fleet's
 * setpoints. Shaving below a peak the month already has buys nothing and spends energy a later
 * peak of the month may need, so the plan then keeps the net load at or under f·M with the
 * least energy (vpq_sched's KEEP_BELOW at f·M, which is MINIMIZE PEAK wherever f·M cannot be
 * met); the month's first issue, or a month whose M is not positive, plans plain MINIMIZE PEAK.
 * Least throughput alone would also charge only what the forecast says the horizon needs, and
 * an under-forecast peak would find the fleet half empty: so the first step then charges every
 * battery that is not discharging further, as far as keeps that step's net load at or under
 * the plan's level (the larger of f·M and the plan's peak), and the steps after it are planned
 * again from there. On PJM load this kept 66% instead of 63% of perfect foresight's monthly
 * peak reduction with a third of the battery cycles (bench/eval_schedule.c).
 *
 * When the operator is freed it logs how many plans it made, their CPU time, and how many were
 * not certified optimal with the largest measured gap to the optimum (vpq_sched_solve_gap).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vpq_expr.h"
#include "vpq_op.h"

/* A price row: the price from time `ts` on, as given at event time `event_time`. */
typedef struct sc_price {
  int64_t ts;
  int64_t event_time;
  double value;
} sc_price;

/* One version of a battery's row: its values from event time `ts` on. */
typedef struct sc_version {
  int64_t ts;
  bool present; /* false: the row was retracted (no battery) */
  double params[VPQ_FLEET_NCOLS]; /* by VPQ_FLEET_*, NAN when NULL (DEVICE unused) */
} sc_version;

typedef struct sc_battery {
  vpq_datum device;
  sc_version *versions; /* in arrival order */
  int nversions, cap;
} sc_battery;

/* One time → value point of a forecast. */
typedef struct sc_point {
  int64_t ts;
  double value;
} sc_point;

typedef struct sc_issue {
  int64_t issued_at;
  sc_point *points;
  int n, cap;
} sc_issue;

typedef struct schedule_op {
  vpq_op base;
  const vpq_plan_query *query;
  const vpq_plan_schedule *sc;
  const vpq_source_slot *slots; /* per relation: where late forecast rows are dead-lettered */
  sc_battery *fleet;
  int nfleet, fleet_cap;
  long long versions; /* kept, over the fleet: pruned when they outgrow it (versions_bound) */
  long long pruned;   /* how many the last prune kept */
  int *index; /* device hash → fleet position, -1 empty */
  int index_cap;
  sc_issue *issues; /* not yet planned, in arrival order */
  int nissues, issues_cap;
  sc_price *prices; /* sorted by ts, then event time, then arrival (price_rows) */
  int nprices, prices_cap;
  int64_t input_wm[3];
  int64_t wm;
  int warnings;
  int month;         /* peak_floor: calendar month (year × 12 + month, UTC) of the last issue planned */
  double month_peak; /* peak_floor: the highest first-step net load dispatched in it (-inf: none) */
  long long plans, uncertified; /* plans made; of them, not certified optimal */
  double gap_max_kw;            /* the largest measured gap of a plan's peak to the optimum */
  bool gap_logged;              /* a plan that may be more than 0.1 % above the optimum was logged */
  int64_t plan_ns, plan_max_ns; /* CPU time of the plans (thread), in all and the longest */
} schedule_op;

/* The CPU time of the calling thread: what planning costs, whatever else the machine runs. */
static int64_t cpu_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Plans `problem` (vpq_sched_solve_gap) and counts the plan and its gap. */
static int schedule_solve(schedule_op *s, const vpq_sched_problem *problem, vpq_sched_plan *plan, char *err,
                          size_t errsize) {
  double gap = 0.0;
  const int rc = vpq_sched_solve_gap(problem, plan, &gap, err, errsize);
  s->plans++;
  if (rc == 0 && gap > 1e-6 * (1 + fabs(plan->peak_kw))) {
    /* the first plan measured more than 0.1 % above the optimum says so at once */
    if (gap > 1e-3 * (1 + fabs(plan->peak_kw)) && !s->gap_logged && s->base.rt->log) {
      s->gap_logged = true;
      fprintf(s->base.rt->log,
              "vpq: SCHEDULE %s: a plan not certified optimal: its peak %.3f kW may be up to %.3g kW above the "
              "optimum (a fleet of many kinds; docs/language.md, SCHEDULE)\n",
              s->query->target->name, plan->peak_kw, gap);
    }
    s->uncertified++;
    if (gap > s->gap_max_kw) s->gap_max_kw = gap;
  }
  return rc;
}

/* ===== The twin ===== */

static uint64_t device_hash(vpq_datum d) { return vpq_op_hash_datums(&d, &(uint8_t){0}, 1, 7); }

/* Rebuilds the device index with `cap` (a power of two) slots. */
static void fleet_index_rebuild(schedule_op *s, int cap) {
  free(s->index);
  s->index_cap = cap;
  s->index = malloc(sizeof *s->index * (size_t)cap);
  if (!s->index) abort();
  for (int i = 0; i < cap; i++) s->index[i] = -1;
  for (int b = 0; b < s->nfleet; b++) {
    int at = (int)(device_hash(s->fleet[b].device) & (uint64_t)(cap - 1));
    while (s->index[at] >= 0) at = (at + 1) & (cap - 1);
    s->index[at] = b;
  }
}

/* The battery of a device, created (without versions) on first sight. */
static sc_battery *fleet_find(schedule_op *s, vpq_datum device) {
  int at = (int)(device_hash(device) & (uint64_t)(s->index_cap - 1));
  for (; s->index[at] >= 0; at = (at + 1) & (s->index_cap - 1))
    if (s->fleet[s->index[at]].device.i == device.i) return &s->fleet[s->index[at]];
  if (s->nfleet == s->fleet_cap) {
    s->fleet_cap = s->fleet_cap ? 2 * s->fleet_cap : 64;
    s->fleet = realloc(s->fleet, sizeof *s->fleet * (size_t)s->fleet_cap);
    if (!s->fleet) abort();
  }
  sc_battery *b = &s->fleet[s->nfleet++];
  memset(b, 0, sizeof *b);
  b->device = device;
  if (2 * s->nfleet > s->index_cap) fleet_index_rebuild(s, 2 * s->index_cap);
  else s->index[at] = s->nfleet - 1;
  return b;
}

/* A numeric cell as a double, NAN when NULL. */
static double column_number(const vpq_vec *col, int row) {
  if (col->null[row]) return NAN;
  return col->type == VPQ_TYPE_DOUBLE ? col->data[row].d : (double)col->data[row].i;
}

/* Battery b's row as it stood at time t (NULL when it had none then). */
static const sc_version *version_at(const sc_battery *b, int64_t t) {
  const sc_version *best = NULL;
  for (int i = 0; i < b->nversions; i++)
    if (b->versions[i].ts <= t && (!best || b->versions[i].ts >= best->ts)) best = &b->versions[i];
  return best && best->present ? best : NULL;
}

/* Forgets the versions no issue after t can need: those older than each battery's row at t. */
static void versions_prune(schedule_op *s, int64_t t) {
  s->versions = 0;
  for (int i = 0; i < s->nfleet; i++) {
    sc_battery *b = &s->fleet[i];
    int at_t = -1;
    for (int v = 0; v < b->nversions; v++)
      if (b->versions[v].ts <= t && (at_t < 0 || b->versions[v].ts >= b->versions[at_t].ts)) at_t = v;
    int kept = 0;
    for (int v = 0; v < b->nversions; v++)
      if (at_t < 0 || v == at_t || b->versions[v].ts > t) b->versions[kept++] = b->versions[v];
    b->nversions = kept;
    s->versions += kept;
  }
}

/* An issue still to come is at or after the planning watermark (an earlier one is late), so the
 * twin's versions before it are needed no more, each battery's row as it stood then aside. The
 * twin changes between issues (every 10 s for a day between day-ahead issues) and after the last
 * one: its versions are pruned whenever they have grown to twice what the last prune kept (and
 * twice the fleet, and 4,096 more), so that what is kept follows the watermark, at a cost
 * amortised over the versions even while the watermark stands still and a prune frees nothing. */
static void versions_bound(schedule_op *s) {
  if (s->versions <= 2 * s->pruned + 2LL * s->nfleet + 4096) return;
  versions_prune(s, s->wm);
  s->pruned = s->versions;
}

/* The fleet table's changelog: every row (+1) or retraction (-1) becomes a version of its battery. */
static void fleet_push(schedule_op *s, const vpq_batch *batch) {
  const int *cols = s->sc->fleet_cols;
  const vpq_vec *device = &batch->cols[cols[VPQ_FLEET_DEVICE]];
  for (int row = 0; row < batch->n; row++) {
    if (device->null[row]) continue;
    sc_battery *b = fleet_find(s, device->data[row]);
    if (b->nversions == b->cap) {
      b->cap = b->cap ? 2 * b->cap : 4;
      b->versions = realloc(b->versions, sizeof *b->versions * (size_t)b->cap);
      if (!b->versions) abort();
    }
    sc_version *v = &b->versions[b->nversions++];
    s->versions++;
    v->ts = batch->ts[row];
    v->present = batch->diff[row] > 0;
    for (int p = VPQ_FLEET_SOC; p < VPQ_FLEET_NCOLS; p++)
      v->params[p] = cols[p] >= 0 ? column_number(&batch->cols[cols[p]], row) : NAN;
  }
  versions_bound(s);
}

/* ===== Forecast and price rows ===== */

static void points_add(sc_point **points, int *n, int *cap, int64_t ts, double value) {
  if (*n == *cap) {
    *cap = *cap ? 2 * *cap : 64;
    *points = realloc(*points, sizeof **points * (size_t)*cap);
    if (!*points) abort();
  }
  (*points)[(*n)++] = (sc_point){ts, value};
}

static int cmp_point(const void *a, const void *b) {
  const sc_point *x = a, *y = b;
  return (x->ts > y->ts) - (x->ts < y->ts);
}

/* The pending issue at `issued_at`, created on its first row. */
static sc_issue *issue_find(schedule_op *s, int64_t issued_at) {
  for (int i = s->nissues - 1; i >= 0; i--)
    if (s->issues[i].issued_at == issued_at) return &s->issues[i];
  if (s->nissues == s->issues_cap) {
    s->issues_cap = s->issues_cap ? 2 * s->issues_cap : 8;
    s->issues = realloc(s->issues, sizeof *s->issues * (size_t)s->issues_cap);
    if (!s->issues) abort();
  }
  sc_issue *is = &s->issues[s->nissues++];
  memset(is, 0, sizeof *is);
  is->issued_at = issued_at;
  return is;
}

/* Files a forecast row under its issue (a row of an issue already passed is late). */
static void forecast_rows(schedule_op *s, const vpq_batch *batch, int row) {
  const vpq_plan_schedule *sc = s->sc;
  const vpq_vec *ts = &batch->cols[sc->forecast_ts];
  if (batch->diff[row] < 0 || ts->null[row]) return;
  int64_t issued_at = batch->ts[row];
  if (sc->forecast_issued >= 0 && !batch->cols[sc->forecast_issued].null[row])
    issued_at = batch->cols[sc->forecast_issued].data[row].i;
  if (issued_at < s->wm) {
    /* Its issue's time has passed: planned already, or too late to plan. */
    vpq_op_late_row(s->base.rt, s->slots, sc->forecast, &sc->forecast->schema, batch, row);
    return;
  }
  sc_issue *is = issue_find(s, issued_at);
  points_add(&is->points, &is->n, &is->cap, ts->data[row].i, column_number(&batch->cols[sc->forecast_value], row));
}

/* Keeps a price row among the others, sorted by time, then event time, then arrival. A row
 * whose event time the planning watermark has passed is late (issues after it were planned
 * without it): counted, dead-lettered, not kept. */
static void price_rows(schedule_op *s, const vpq_batch *batch, int row) {
  const vpq_plan_schedule *sc = s->sc;
  const vpq_vec *ts = &batch->cols[sc->price_ts];
  double value = column_number(&batch->cols[sc->price_value], row);
  if (batch->diff[row] < 0 || ts->null[row] || isnan(value)) return;
  if (batch->ts[row] < s->wm) {
    vpq_op_late_row(s->base.rt, s->slots, sc->price, &sc->price->schema, batch, row);
    return;
  }
  const sc_price price = {ts->data[row].i, batch->ts[row], value};
  int lo = 0, hi = s->nprices; /* after every row of an earlier or equal (time, event time) */
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    const sc_price *p = &s->prices[mid];
    if (p->ts < price.ts || (p->ts == price.ts && p->event_time <= price.event_time)) lo = mid + 1;
    else hi = mid;
  }
  if (s->nprices == s->prices_cap) {
    s->prices_cap = s->prices_cap ? 2 * s->prices_cap : 64;
    s->prices = realloc(s->prices, sizeof *s->prices * (size_t)s->prices_cap);
    if (!s->prices) abort();
  }
  memmove(s->prices + lo + 1, s->prices + lo, sizeof *s->prices * (size_t)(s->nprices - lo));
  s->prices[lo] = price;
  s->nprices++;
}

/* The row a plan for issue `issued_at` takes the price at time t from: of the rows given at or
 * before issued_at, one of the latest time at or before t, the newest (the last to arrive of
 * equal event times); -1 when there is none. */
static int price_row_at(const schedule_op *s, int64_t issued_at, int64_t t) {
  int lo = 0, hi = s->nprices;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (s->prices[mid].ts <= t) lo = mid + 1;
    else hi = mid;
  }
  for (int i = lo - 1; i >= 0; i--)
    if (s->prices[i].event_time <= issued_at) return i;
  return -1;
}

/* Forgets the price rows no issue after `issued_at` can need: given by then, at a time before
 * the latest such time at or before issued_at, or replaced by a newer row given by then. */
static void prices_prune(schedule_op *s, int64_t issued_at) {
  const int current = price_row_at(s, issued_at, issued_at);
  int kept = 0;
  for (int i = 0; i < s->nprices; i++) {
    const sc_price *p = &s->prices[i];
    const bool given = p->event_time <= issued_at;
    const bool replaced = i + 1 < s->nprices && s->prices[i + 1].ts == p->ts && s->prices[i + 1].event_time <= issued_at;
    if (given && (p->ts <= issued_at ? i != current : replaced)) continue;
    s->prices[kept++] = *p;
  }
  s->nprices = kept;
}

/* The load of the step [from, to) in sorted `points`: the highest value the forecast takes in
 * it, the latest point at or before `from` and every point before `to` (the setpoints hold over
 * the step, so its highest net load is this less their sum: a forecast finer than the step is
 * planned by its highest row, one coarser by the row it holds). Of points of one ts the last
 * counts. NaN (unknown) when no point is at or before `from`, or a value in the step is NULL. */
static double load_over(const sc_point *points, int n, int64_t from, int64_t to) {
  int lo = 0, hi = n;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (points[mid].ts <= from) lo = mid + 1;
    else hi = mid;
  }
  if (!lo) return NAN;
  double load = points[lo - 1].value;
  for (int i = lo; i < n && points[i].ts < to; i++) {
    if (i + 1 < n && points[i + 1].ts == points[i].ts) continue; /* a later point of its ts replaces it */
    load = isnan(load) || isnan(points[i].value) ? NAN : fmax(load, points[i].value);
  }
  return load;
}

/* ===== Planning ===== */

/* Orders fleet positions by device_id (strings by their text). */
static int cmp_device(const void *a, const void *b, void *ctx) {
  const schedule_op *s = ctx;
  vpq_datum x = s->fleet[*(const int *)a].device, y = s->fleet[*(const int *)b].device;
  vpq_type type = s->sc->fleet->schema.cols[s->sc->fleet_cols[VPQ_FLEET_DEVICE]].type;
  if (type == VPQ_TYPE_STRING) return vpq_intern_compare(s->base.rt->intern, x.i, y.i);
  if (type == VPQ_TYPE_DOUBLE) return (x.d > y.d) - (x.d < y.d);
  return (x.i > y.i) - (x.i < y.i);
}

/* The largest capacity (kWh) and power (kW) a battery may have: far beyond any real one, and far
 * from the range where the optimiser's sums lose their digits (1e308 kept it looping). */
#define SC_MAX_SIZE 1e9

/* Fills `bat` from a battery's row at issue time t; false when it cannot be planned. */
static bool battery_params(const schedule_op *s, const sc_version *v, int64_t t, vpq_sched_battery *bat) {
  const vpq_plan_schedule *sc = s->sc;
  const double *p = v->params;
  double seen = isnan(p[VPQ_FLEET_SEEN]) ? (double)v->ts : p[VPQ_FLEET_SEEN];
  if (sc->stale_after_ms && seen < (double)(t - sc->stale_after_ms)) return false;
  double soc = p[VPQ_FLEET_SOC], eff = isnan(p[VPQ_FLEET_EFFICIENCY]) ? 1 : p[VPQ_FLEET_EFFICIENCY];
  const double capacity = p[VPQ_FLEET_CAPACITY], max_kw = p[VPQ_FLEET_MAX_KW];
  if (!(soc >= 0 && soc <= 1) || !(capacity > 0 && capacity <= SC_MAX_SIZE) || !(max_kw > 0 && max_kw <= SC_MAX_SIZE) ||
      !(eff > 0 && eff <= 1))
    return false;
  bat->soc = soc;
  bat->capacity_kwh = p[VPQ_FLEET_CAPACITY];
  bat->max_kw = p[VPQ_FLEET_MAX_KW];
  bat->efficiency = eff;
  bat->min_soc = isnan(p[VPQ_FLEET_MIN_SOC]) ? sc->min_soc : fmax(p[VPQ_FLEET_MIN_SOC], sc->min_soc);
  bat->max_soc = isnan(p[VPQ_FLEET_MAX_SOC]) ? sc->max_soc : fmin(p[VPQ_FLEET_MAX_SOC], sc->max_soc);
  return bat->min_soc <= bat->max_soc;
}

/* The stored energy a setpoint takes out of a battery in one step (negative: puts in). */
static double energy_moved(double setpoint, double step_hours, double efficiency) {
  return setpoint > 0 ? setpoint * step_hours / efficiency : setpoint * step_hours * efficiency;
}

/* Rounds x to 1/scale (no negative zero): plans are written in whole watts and soc to 1e-9. */
static double round_to(double x, double scale) { return round(x * scale) / scale + 0.0; }

/* Writes one output row (the query's columns, placed by column_map). */
static void out_row(schedule_op *s, vpq_batch *out, int64_t issued_at, int64_t ts, vpq_datum device, double setpoint,
                    double soc, double peak) {
  const int *map = s->query->column_map;
  setpoint = round_to(setpoint, 1e3);
  soc = round_to(soc, 1e9);
  peak = round_to(peak, 1e9); /* the peak the written setpoints give: the forecast may carry sub-watt digits */
  int at = out->n++;
  vpq_datum vals[6] = {{.i = issued_at}, {.i = ts}, device, {.d = setpoint}, {.d = soc}, {.d = peak}};
  for (int c = 0; c < out->ncols; c++) out->cols[c].null[at] = 1;
  for (int i = 0; i < 6; i++) {
    if (map[i] < 0) continue;
    out->cols[map[i]].data[at] = vals[i];
    out->cols[map[i]].null[at] = i >= 3 && !isfinite(vals[i].d);
  }
  out->ts[at] = issued_at;
  out->wm[at] = s->base.passed_wm;
  out->diff[at] = 1;
  out->origin[at] = (vpq_origin){-1, 0};
}

/* Greater fractional part first (the aim closest to its next watt), then the earlier battery. */
static int compare_round_up(const void *pa, const void *pb, void *ctx) {
  const double *part = ctx;
  const int a = *(const int *)pa, b = *(const int *)pb;
  if (part[a] != part[b]) return part[a] > part[b] ? -1 : 1;
  return (a > b) - (a < b);
}

/* Rounds the plan's setpoints to whole watts, within the batteries' power limits in whole watts,
 * and recomputes each soc trajectory and the plan's peak from the setpoints as written: the soc
 * written is exactly what they lead to, within the limits.
 *   Per battery, each step rounds `aim`, the setpoint of the exact one's direction that takes
 * the stored energy as written so far back to the exact plan's, within a watt of the exact
 * setpoint, so that the roundings do not add up over the horizon (rounding each step's own
 * setpoint, a discharge of 1.29167 kW written 1.292 for 95 steps of 15 minutes left the last
 * one 32 W short).
 *   Across the fleet, each step first rounds every aim down (a discharge to less, a charge to
 * more: energy kept for the steps after; within 10 milliwatts of a whole watt, the LP's noise,
 * to that watt), towards zero where that takes the stored energy past a limit. Then, while the
 * step's net load is over the exact plan's peak, it adds a watt to setpoints: the aims closest to
 * their next watt first, then any battery's, one the exact plan leaves idle too. A watt is added
 * only where it leaves the battery's stored energy, as written, short of the exact plan's by no
 * more than its slack (what the plan leaves unused above lo from this step on) plus a watt for a
 * step, which the aims of the steps after make up: a round-up never takes energy a later step of
 * the plan needs by more than that. A plan with energy to spare is so written at or under its
 * exact peak (a KEEP BELOW cap it meets stays met); one that uses a battery's energy to the last
 * watt can be written up to about 2 W per battery over it (docs/language.md has the figures). */
static void published_plan(const vpq_sched_problem *p, vpq_sched_plan *plan) {
  const int n = p->nbatteries;
  const size_t T = (size_t)p->nsteps;
  double peak = -INFINITY;
  for (size_t k = 0; k < T; k++) {
    double net = p->load[k];
    for (int b = 0; b < n; b++) net -= plan->setpoint_kw[(size_t)b * T + k];
    peak = fmax(peak, net);
  }
  /* per battery and step: the stored energy the exact plan leaves, then the least it leaves from
   * that step on (the slack's floor); per battery: the energy as written and as planned, and its
   * aim's fraction of a watt */
  double *lowest = malloc(sizeof *lowest * ((size_t)n * T + 1));
  double *energy = malloc(sizeof *energy * (size_t)(n + 1)), *planned = malloc(sizeof *planned * (size_t)(n + 1));
  double *part = malloc(sizeof *part * (size_t)(n + 1));
  int *round_up = malloc(sizeof *round_up * (size_t)(n + 1));
  if (!lowest || !energy || !planned || !part || !round_up) abort();
  for (int b = 0; b < n; b++) {
    const vpq_sched_battery *bat = &p->batteries[b];
    const double lo = fmin(bat->min_soc, bat->soc) * bat->capacity_kwh;
    const double hi = fmax(bat->max_soc, bat->soc) * bat->capacity_kwh;
    double e = bat->soc * bat->capacity_kwh;
    for (size_t k = 0; k < T; k++) {
      e = fmin(fmax(e - energy_moved(plan->setpoint_kw[(size_t)b * T + k], p->step_hours, bat->efficiency), lo), hi);
      lowest[(size_t)b * T + k] = e;
    }
    for (size_t k = T - 1; k-- > 0;) lowest[(size_t)b * T + k] = fmin(lowest[(size_t)b * T + k], lowest[(size_t)b * T + k + 1]);
    energy[b] = planned[b] = bat->soc * bat->capacity_kwh;
  }
  for (size_t k = 0; k < T; k++) {
    double total = 0;
    int candidates = 0;
    for (int b = 0; b < n; b++) {
      const vpq_sched_battery *bat = &p->batteries[b];
      const double lo = fmin(bat->min_soc, bat->soc) * bat->capacity_kwh;
      const double hi = fmax(bat->max_soc, bat->soc) * bat->capacity_kwh;
      const double exact = plan->setpoint_kw[(size_t)b * T + k];
      planned[b] = fmin(fmax(planned[b] - energy_moved(exact, p->step_hours, bat->efficiency), lo), hi);
      const double gap = energy[b] - planned[b];
      double aim = gap > 0 ? gap * bat->efficiency / p->step_hours : gap / (p->step_hours * bat->efficiency);
      if (exact != 0) aim = fmin(fmax(aim, exact - 0.001), exact + 0.001);
      if (exact == 0 || (aim > 0) != (exact > 0)) aim = 0;
      const double limit = floor(bat->max_kw * 1e3 + 1e-6) / 1e3; /* in whole watts, as written */
      double setpoint = fmin(fmax(floor(aim * 1e3 + 0.01) / 1e3, -limit), limit) + 0.0;
      const double up = fmin(fmax(ceil(aim * 1e3 - 0.01) / 1e3, -limit), limit) + 0.0;
      if (up > setpoint) round_up[candidates++] = b, part[b] = aim - setpoint;
      for (;;) { /* towards zero where the rounding takes the stored energy past a limit */
        const double next = energy[b] - energy_moved(setpoint, p->step_hours, bat->efficiency);
        if ((next >= lo - 1e-12 && next <= hi + 1e-12) || setpoint == 0) break;
        setpoint = setpoint > 0 ? fmax(round_to(setpoint - 0.001, 1e3), 0) : fmin(round_to(setpoint + 0.001, 1e3), 0);
      }
      plan->setpoint_kw[(size_t)b * T + k] = setpoint;
      total += setpoint;
    }
    if (p->load[k] - total > peak + 1e-9 && candidates > 0)
      qsort_r(round_up, (size_t)candidates, sizeof *round_up, compare_round_up, part);
    /* pass 0: the batteries whose aim was rounded down; then every battery, a watt a pass (the
     * first of these passes runs even when pass 0 added nothing) */
    for (int pass = 0, added = 1; (added || pass == 1) && p->load[k] - total > peak + 1e-9; pass++) {
      added = 0;
      for (int i = 0; i < (pass == 0 ? candidates : n) && p->load[k] - total > peak + 1e-9; i++) {
        const int b = pass == 0 ? round_up[i] : i;
        const vpq_sched_battery *bat = &p->batteries[b];
        double *setpoint = &plan->setpoint_kw[(size_t)b * T + k];
        const double more = round_to(*setpoint + 0.001, 1e3);
        const double lo = fmin(bat->min_soc, bat->soc) * bat->capacity_kwh;
        const double next = energy[b] - energy_moved(more, p->step_hours, bat->efficiency);
        /* within the power limit, and short of the plan's energy by no more than its slack (the
         * energy above lo that the plan leaves unused from this step on) and a watt's worth,
         * which the steps after make up */
        const double slack = lowest[(size_t)b * T + k] - lo + 0.001 * p->step_hours / bat->efficiency;
        if (more > floor(bat->max_kw * 1e3 + 1e-6) / 1e3 || next < lo - 1e-12 || next < planned[b] - slack - 1e-12) continue;
        total += more - *setpoint;
        *setpoint = more;
        added = 1;
      }
    }
    for (int b = 0; b < n; b++) {
      const vpq_sched_battery *bat = &p->batteries[b];
      const double lo = fmin(bat->min_soc, bat->soc) * bat->capacity_kwh;
      const double hi = fmax(bat->max_soc, bat->soc) * bat->capacity_kwh;
      energy[b] = fmin(fmax(energy[b] - energy_moved(plan->setpoint_kw[(size_t)b * T + k], p->step_hours, bat->efficiency), lo), hi);
      plan->soc[(size_t)b * T + k] = energy[b] / bat->capacity_kwh;
    }
  }
  free(lowest), free(energy), free(planned), free(part), free(round_up);
  plan->peak_kw = -INFINITY;
  for (int k = 0; k < p->nsteps; k++) {
    double net = p->load[k];
    for (int b = 0; b < p->nbatteries; b++) net -= plan->setpoint_kw[(size_t)b * (size_t)p->nsteps + (size_t)k];
    plan->peak_kw = fmax(plan->peak_kw, net);
  }
}

/* ===== The month's peak (peak_floor) ===== */

/* year × 12 + month (0-based) of an epoch-ms time, UTC. */
static int utc_month(int64_t t) {
  time_t sec = (time_t)(t / 1000 - (t % 1000 < 0));
  struct tm tm;
  gmtime_r(&sec, &tm);
  return (tm.tm_year + 1900) * 12 + tm.tm_mon;
}

/* The net load of step k of a plan: the step's load less every battery's setpoint. */
static double plan_net(const vpq_sched_problem *p, const vpq_sched_plan *plan, int k) {
  double net = p->load[k];
  for (int b = 0; b < p->nbatteries; b++) net -= plan->setpoint_kw[(size_t)b * (size_t)p->nsteps + (size_t)k];
  return net;
}

/* Charges, in the plan's first step, every battery that is not discharging further, in proportion
 * to the charging power it has left (its power limit, and its energy room within the step), as
 * far as keeps the step's net load at or under `level`. Returns whether any setpoint changed. */
static bool fill_first_step(const vpq_sched_problem *p, vpq_sched_plan *plan, double level) {
  double room = level - plan_net(p, plan, 0), total = 0;
  double *extra = malloc(sizeof *extra * (size_t)(p->nbatteries + 1));
  if (!extra) abort();
  for (int b = 0; b < p->nbatteries; b++) {
    const vpq_sched_battery *bat = &p->batteries[b];
    double setpoint = plan->setpoint_kw[(size_t)b * (size_t)p->nsteps];
    double energy_room = (fmax(bat->max_soc, bat->soc) - bat->soc) * bat->capacity_kwh;
    extra[b] = setpoint > 0 ? 0 : fmax(0, fmin(bat->max_kw + setpoint, energy_room / (bat->efficiency * p->step_hours) + setpoint));
    total += extra[b];
  }
  double take = fmin(room, total);
  if (take > 0)
    for (int b = 0; b < p->nbatteries; b++) plan->setpoint_kw[(size_t)b * (size_t)p->nsteps] -= take * extra[b] / total;
  free(extra);
  return take > 0;
}

/* Plans steps 1 .. nsteps − 1 of `plan` again (same objective) from the socs its first step
 * leads to; the first step stays as it is. */
static void replan_after_first_step(const vpq_sched_problem *p, vpq_sched_plan *plan) {
  int rest = p->nsteps - 1, n = p->nbatteries;
  if (rest <= 0 || n <= 0) return;
  vpq_sched_battery *next = malloc(sizeof *next * (size_t)n);
  double *setpoints = calloc((size_t)n * (size_t)rest, sizeof *setpoints);
  double *socs = calloc((size_t)n * (size_t)rest, sizeof *socs);
  if (!next || !setpoints || !socs) abort();
  for (int b = 0; b < n; b++) {
    const vpq_sched_battery *bat = &p->batteries[b];
    double setpoint = plan->setpoint_kw[(size_t)b * (size_t)p->nsteps];
    double energy = bat->soc * bat->capacity_kwh - (setpoint > 0 ? setpoint * p->step_hours / bat->efficiency
                                                                  : setpoint * p->step_hours * bat->efficiency);
    next[b] = *bat;
    /* a battery outside its limits at the issue keeps its soc then as its limit for the horizon */
    next[b].min_soc = fmin(bat->min_soc, bat->soc);
    next[b].max_soc = fmax(bat->max_soc, bat->soc);
    next[b].soc = fmin(fmax(energy / bat->capacity_kwh, next[b].min_soc), next[b].max_soc);
  }
  vpq_sched_problem later = *p;
  later.batteries = next;
  later.load = p->load + 1;
  later.price = p->price ? p->price + 1 : NULL;
  later.nsteps = rest;
  vpq_sched_plan rest_plan = {setpoints, socs, 0, 0, false};
  char err[256];
  if (vpq_sched_solve(&later, &rest_plan, err, sizeof err) == 0)
    for (int b = 0; b < n; b++)
      for (int k = 0; k < rest; k++)
        plan->setpoint_kw[(size_t)b * (size_t)p->nsteps + (size_t)k + 1] = setpoints[(size_t)b * (size_t)rest + (size_t)k];
  free(next);
  free(setpoints);
  free(socs);
}

/* ===== Planning an issue ===== */

/* Plans one forecast issue and writes its rows: the fleet as of issued_at, the load per step, the LP. */
static void plan_issue(schedule_op *s, sc_issue *is) {
  const vpq_plan_schedule *sc = s->sc;
  vpq_runtime *rt = s->base.rt;
  int64_t t = is->issued_at;
  qsort(is->points, (size_t)is->n, sizeof *is->points, cmp_point);
  /* The forecast's own step, the smallest gap between its rows (STEP for a single row), to know
   * where it ends; points with a NULL value count. */
  if (!is->n) return;
  int64_t fstep = 0;
  for (int i = 1; i < is->n; i++)
    if (is->points[i].ts > is->points[i - 1].ts && (!fstep || is->points[i].ts - is->points[i - 1].ts < fstep))
      fstep = is->points[i].ts - is->points[i - 1].ts;
  int64_t forecast_end = is->points[is->n - 1].ts + (fstep ? fstep : sc->step_ms);
  int steps = 0, max_steps = (int)(sc->horizon_ms / sc->step_ms);
  while (steps < max_steps && t + steps * sc->step_ms < forecast_end) steps++;
  if (!steps) {
    if (s->warnings++ < 10 && rt->log)
      fprintf(rt->log, "vpq: SCHEDULE %s: issue %lld has no forecast row at or after it: nothing to plan\n",
              s->query->target->name, (long long)t);
    return;
  }
  double *load = malloc(sizeof *load * (size_t)steps);
  double *price = malloc(sizeof *price * (size_t)steps);
  int *order = malloc(sizeof *order * (size_t)(s->nfleet + 1));
  int *plan_pos = malloc(sizeof *plan_pos * (size_t)(s->nfleet + 1));
  vpq_sched_battery *bats = malloc(sizeof *bats * (size_t)(s->nfleet + 1));
  if (!load || !price || !order || !plan_pos || !bats) abort();
  int unknown = -1, unpriced = -1; /* the first step whose load (price) is NULL or not given */
  for (int k = 0; k < steps; k++) {
    load[k] = load_over(is->points, is->n, t + k * sc->step_ms, t + (k + 1) * sc->step_ms);
    const int priced = sc->objective == VPQ_SCHED_MIN_COST ? price_row_at(s, t, t + k * sc->step_ms) : -1;
    price[k] = sc->objective != VPQ_SCHED_MIN_COST ? 0 : priced >= 0 ? s->prices[priced].value : NAN;
    if (isnan(load[k]) && unknown < 0) unknown = k;
    if (isnan(price[k]) && unpriced < 0) unpriced = k;
  }
  int norder = 0, nbats = 0;
  const sc_version **rows = malloc(sizeof *rows * (size_t)(s->nfleet + 1));
  if (!rows) abort();
  for (int b = 0; b < s->nfleet; b++)
    if (version_at(&s->fleet[b], t)) order[norder++] = b;
  if (!norder && s->nfleet && s->warnings++ < 10 && rt->log)
    fprintf(rt->log,
            "vpq: SCHEDULE %s: none of the fleet's %d batteries has a row at or before issue %lld (the fleet is read "
            "as it stood then: stamp its rows with the time they were reported, e.g. a `timestamp` column)\n",
            s->query->target->name, s->nfleet, (long long)t);
  qsort_r(order, (size_t)norder, sizeof *order, cmp_device, s);
  for (int i = 0; i < norder; i++) {
    plan_pos[i] = -1;
    rows[i] = version_at(&s->fleet[order[i]], t);
    if (battery_params(s, rows[i], t, &bats[nbats])) plan_pos[i] = nbats++;
  }
  vpq_sched_problem problem = {sc->objective, bats, nbats, load, price, steps, (double)sc->step_ms / 3600000.0, sc->cap_kw};
  double floor_kw = -INFINITY; /* peak_floor: f·M, -inf before the month has a positive M */
  if (sc->peak_floor > 0) {
    int month = utc_month(t);
    if (month != s->month) {
      s->month = month;
      s->month_peak = -INFINITY;
    }
    if (s->month_peak > 0) {
      floor_kw = sc->peak_floor * s->month_peak;
      problem.objective = VPQ_SCHED_KEEP_BELOW;
      problem.cap_kw = floor_kw;
    }
  }
  vpq_sched_plan plan = {0};
  plan.setpoint_kw = calloc((size_t)nbats * (size_t)steps + 1, sizeof *plan.setpoint_kw);
  plan.soc = calloc((size_t)nbats * (size_t)steps + 1, sizeof *plan.soc);
  if (!plan.setpoint_kw || !plan.soc) abort();
  char err[256] = "";
  bool cap_missed = false; /* KEEP BELOW: the plan's peak is over the cap (warned once it is written) */
  const int64_t planning_from = cpu_ns();
  if (unknown >= 0 || unpriced >= 0) {
    if (s->warnings++ < 10 && rt->log) {
      if (unknown >= 0)
        fprintf(rt->log,
                "vpq: SCHEDULE %s: the forecast of issue %lld has no value at step %d (%lld): NULL, or no row at or "
                "before it: batteries stay idle\n",
                s->query->target->name, (long long)t, unknown, (long long)(t + unknown * sc->step_ms));
      else
        fprintf(rt->log, "vpq: SCHEDULE %s: no price at or before step %d (%lld) of issue %lld: batteries stay idle\n",
                s->query->target->name, unpriced, (long long)(t + unpriced * sc->step_ms), (long long)t);
    }
    problem.nbatteries = 0;
    for (int i = 0; i < norder; i++) plan_pos[i] = -1;
  } else if (schedule_solve(s, &problem, &plan, err, sizeof err) != 0) {
    if (rt->log) fprintf(rt->log, "vpq: SCHEDULE %s: planning failed at issue %lld: %s\n", s->query->target->name, (long long)t, err);
  } else if (sc->objective == VPQ_SCHED_KEEP_BELOW && !plan.cap_met) {
    cap_missed = true;
  } else if (sc->peak_floor > 0 && fill_first_step(&problem, &plan, fmax(floor_kw, plan.peak_kw))) {
    replan_after_first_step(&problem, &plan);
  }
  const int64_t planning_ns = cpu_ns() - planning_from;
  s->plan_ns += planning_ns;
  if (planning_ns > s->plan_max_ns) s->plan_max_ns = planning_ns;
  published_plan(&problem, &plan);
  if (cap_missed && s->warnings++ < 10 && rt->log) /* the peak as written (published_plan) */
    fprintf(rt->log, "vpq: SCHEDULE %s: the cap of %.15g kW cannot be met at issue %lld: planned peak %.3f kW\n",
            s->query->target->name, sc->cap_kw, (long long)t, plan.peak_kw);
  else if (sc->objective == VPQ_SCHED_KEEP_BELOW && problem.nbatteries > 0 && plan.peak_kw > sc->cap_kw + 1e-9 &&
           s->warnings++ < 10 && rt->log)
    fprintf(rt->log,
            "vpq: SCHEDULE %s: at issue %lld the setpoints, rounded to whole watts, pass the cap of %.15g kW by %.3f W "
            ": the exact plan meets it, but its batteries have no energy to spare for the rounding\n",
            s->query->target->name, (long long)t, sc->cap_kw, (plan.peak_kw - sc->cap_kw) * 1e3);
  if (unknown >= 0 || unpriced >= 0) plan.peak_kw = NAN; /* written as NULL: no plan (a load or price unknown) */
  if (sc->peak_floor > 0) s->month_peak = fmax(s->month_peak, plan_net(&problem, &plan, 0));
  int out_steps = sc->emit_plan ? steps : 1;
  /* Sized to the plan's rows: scratch memory lasts as long as the input batch, which can bring
   * many plans. */
  const int64_t out_rows = (int64_t)out_steps * norder;
  const int out_cap = out_rows < VPQ_BATCH_ROWS ? (int)(out_rows ? out_rows : 1) : VPQ_BATCH_ROWS;
  vpq_batch *out = vpq_op_batch(rt, s->base.schema, out_cap);
  for (int k = 0; k < out_steps; k++) {
    for (int i = 0; i < norder; i++) {
      const sc_battery *b = &s->fleet[order[i]];
      double setpoint = 0, soc = rows[i]->params[VPQ_FLEET_SOC];
      if (plan_pos[i] >= 0) {
        size_t at = (size_t)plan_pos[i] * (size_t)steps + (size_t)k;
        setpoint = plan.setpoint_kw[at];
        soc = plan.soc[at];
      }
      if (out->n == out->cap) {
        vpq_op_emit(&s->base, out);
        out = vpq_op_batch(rt, s->base.schema, VPQ_BATCH_ROWS);
      }
      out_row(s, out, t, t + k * sc->step_ms, b->device, setpoint, soc, plan.peak_kw);
    }
  }
  vpq_op_emit(&s->base, out);
  free(plan.setpoint_kw);
  free(plan.soc);
  free(load);
  free(price);
  free(order);
  free(plan_pos);
  free(bats);
  free(rows);
}

static int cmp_issue(const void *a, const void *b) {
  const sc_issue *x = a, *y = b;
  return (x->issued_at > y->issued_at) - (x->issued_at < y->issued_at);
}

/* Plans every issue the watermark has passed (in issue order), then passes the watermark on. */
static void advance(schedule_op *s, int64_t wm) {
  if (wm <= s->wm) return;
  s->wm = wm;
  if (s->nissues) {
    qsort(s->issues, (size_t)s->nissues, sizeof *s->issues, cmp_issue);
    int done = 0;
    while (done < s->nissues && (s->issues[done].issued_at < wm || wm == VPQ_TS_MAX)) {
      plan_issue(s, &s->issues[done]);
      versions_prune(s, s->issues[done].issued_at);
      prices_prune(s, s->issues[done].issued_at);
      free(s->issues[done].points);
      done++;
    }
    memmove(s->issues, s->issues + done, sizeof *s->issues * (size_t)(s->nissues - done));
    s->nissues -= done;
  }
  versions_bound(s);
  vpq_op_emit_watermark(&s->base, wm);
}

/* ===== Operator ===== */

/* The watermark that holds for planning: the minimum over the forecast and price inputs, an idle
 * one left out (vpq_op_inputs_watermark; the fleet, a table, holds none back). */
static int64_t planning_wm(const schedule_op *s) {
  if (!s->sc->price) return s->input_wm[VPQ_SCHEDULE_FORECAST];
  int64_t wm[VPQ_SCHEDULE_INPUTS];
  memcpy(wm, s->input_wm, sizeof wm);
  wm[VPQ_SCHEDULE_FLEET] = VPQ_TS_MAX;
  return vpq_op_inputs_watermark(&s->base, wm, VPQ_SCHEDULE_INPUTS, -1);
}

/* An input went idle: plans what the watermark over the others has passed. */
static void schedule_input_idle(vpq_op *op) {
  schedule_op *s = (schedule_op *)op;
  advance(s, planning_wm(s));
}

/* Rows of the forecast (0), fleet (1) or price (2) input. */
static void schedule_push(vpq_op *op, int port, const vpq_batch *batch) {
  schedule_op *s = (schedule_op *)op;
  if (port == VPQ_SCHEDULE_FLEET) {
    fleet_push(s, batch);
    return;
  }
  for (int row = 0; row < batch->n; row++) {
    if (batch->wm[row] > s->input_wm[port]) {
      s->input_wm[port] = batch->wm[row];
      advance(s, planning_wm(s));
    }
    if (port == VPQ_SCHEDULE_FORECAST) forecast_rows(s, batch, row);
    else price_rows(s, batch, row);
  }
}

static void schedule_watermark(vpq_op *op, int port, int64_t wm) {
  schedule_op *s = (schedule_op *)op;
  if (port == VPQ_SCHEDULE_FLEET) return;
  if (wm > s->input_wm[port]) s->input_wm[port] = wm;
  advance(s, planning_wm(s));
}

static void schedule_describe(const vpq_op *op, vpq_buf *out) {
  const schedule_op *s = (const schedule_op *)op;
  const vpq_plan_schedule *sc = s->sc;
  static const char *const objectives[] = {"minimize peak", "keep below", "minimize cost"}; /* ORDER vpq_sched_objective */
  vpq_buf_printf(out, "fleet=%s forecast=%s objective=%s", sc->fleet->name, sc->forecast->name, objectives[sc->objective]);
  if (sc->objective == VPQ_SCHED_KEEP_BELOW) vpq_buf_printf(out, " %.15gkW", sc->cap_kw);
  if (sc->price) vpq_buf_printf(out, " prices=%s", sc->price->name);
  vpq_buf_printf(out, " soc=[%g, %g] horizon=%lldms step=%lldms%s", sc->min_soc, sc->max_soc, (long long)sc->horizon_ms,
                 (long long)sc->step_ms, sc->emit_plan ? " emit=plan" : "");
  if (sc->stale_after_ms) vpq_buf_printf(out, " stale_after=%lldms", (long long)sc->stale_after_ms);
  if (sc->peak_floor > 0) vpq_buf_printf(out, " peak_floor=%g*month_peak", sc->peak_floor);
}

static void schedule_destroy(vpq_op *op) {
  schedule_op *s = (schedule_op *)op;
  if (s->plans && op->rt->log)
    fprintf(op->rt->log,
            "vpq: SCHEDULE %s: %lld plan%s, CPU time %.2f ms per plan, longest %.2f ms; %lld not certified optimal "
            "(largest measured gap of the peak to the optimum: %.3g kW)\n",
            s->query->target->name, s->plans, s->plans == 1 ? "" : "s", (double)s->plan_ns / 1e6 / (double)s->plans,
            (double)s->plan_max_ns / 1e6, s->uncertified, s->gap_max_kw);
  for (int i = 0; i < s->nissues; i++) free(s->issues[i].points);
  free(s->issues);
  free(s->prices);
  for (int i = 0; i < s->nfleet; i++) free(s->fleet[i].versions);
  free(s->fleet);
  free(s->index);
}

/* ===== Checkpoints =====
 *
 * State: the watermarks (each input's and the planning one), the warnings printed, every
 * battery (in order of first sight) with the versions of its row still needed, the issues not
 * yet planned with their points, the price rows (in their order), and with a peak_floor the month
 * and its peak so far. Loading checks counts against the bytes left, device ids against the
 * string pool, and the prices' order. */

/* Writes a count and the (ts, value) points. */
static void points_save(const sc_point *points, int n, vpq_ckpt_out *out) {
  vpq_ckpt_put_u64(out, (uint64_t)n);
  for (int i = 0; i < n; i++) {
    vpq_ckpt_put_i64(out, points[i].ts);
    vpq_ckpt_put_f64(out, points[i].value);
  }
}

/* Writes the operator's state (see above). */
static void schedule_save(const vpq_op *op, vpq_ckpt_out *out) {
  const schedule_op *s = (const schedule_op *)op;
  for (int i = 0; i < 3; i++) vpq_ckpt_put_i64(out, s->input_wm[i]);
  vpq_ckpt_put_i64(out, s->wm);
  vpq_ckpt_put_u64(out, (uint64_t)s->warnings);
  vpq_ckpt_put_u64(out, (uint64_t)s->nfleet);
  for (int b = 0; b < s->nfleet; b++) {
    const sc_battery *bat = &s->fleet[b];
    vpq_ckpt_put_i64(out, bat->device.i);
    vpq_ckpt_put_u64(out, (uint64_t)bat->nversions);
    for (int v = 0; v < bat->nversions; v++) {
      const sc_version *ver = &bat->versions[v];
      vpq_ckpt_put_i64(out, ver->ts);
      vpq_ckpt_put_u64(out, ver->present ? 1 : 0);
      for (int p = VPQ_FLEET_SOC; p < VPQ_FLEET_NCOLS; p++) vpq_ckpt_put_f64(out, ver->params[p]);
    }
  }
  vpq_ckpt_put_u64(out, (uint64_t)s->nissues);
  for (int i = 0; i < s->nissues; i++) {
    vpq_ckpt_put_i64(out, s->issues[i].issued_at);
    points_save(s->issues[i].points, s->issues[i].n, out);
  }
  vpq_ckpt_put_u64(out, (uint64_t)s->nprices);
  for (int i = 0; i < s->nprices; i++) {
    vpq_ckpt_put_i64(out, s->prices[i].ts);
    vpq_ckpt_put_i64(out, s->prices[i].event_time);
    vpq_ckpt_put_f64(out, s->prices[i].value);
  }
  if (s->sc->peak_floor > 0) {
    vpq_ckpt_put_i64(out, s->month);
    vpq_ckpt_put_f64(out, s->month_peak);
  }
}

/* Reads points written by points_save into a fresh array (exactly sized). */
static void points_load(vpq_ckpt_in *in, sc_point **points, int *n, int *cap) {
  int count = (int)vpq_ckpt_get_count(in, INT32_MAX / 2);
  if (!count) return;
  *points = malloc(sizeof **points * (size_t)count);
  if (!*points) abort();
  *cap = count;
  for (int i = 0; i < count && !in->error; i++) {
    (*points)[i].ts = vpq_ckpt_get_i64(in);
    (*points)[i].value = vpq_ckpt_get_f64(in);
  }
  *n = in->error ? 0 : count;
}

/* Restores what schedule_save wrote; batteries are re-created in their order, so the device
 * index and every later plan are as before. */
static void schedule_load(vpq_op *op, vpq_ckpt_in *in) {
  schedule_op *s = (schedule_op *)op;
  const vpq_plan_schedule *sc = s->sc;
  for (int i = 0; i < 3; i++) s->input_wm[i] = vpq_ckpt_get_i64(in);
  s->wm = vpq_ckpt_get_i64(in);
  uint64_t warnings = vpq_ckpt_get_u64(in);
  if (warnings > INT32_MAX) vpq_ckpt_fail(in, "a warning count out of range");
  s->warnings = (int)(in->error ? 0 : warnings);
  bool strings = sc->fleet->schema.cols[sc->fleet_cols[VPQ_FLEET_DEVICE]].type == VPQ_TYPE_STRING;
  size_t nstrings = vpq_intern_count(op->rt->intern);
  int64_t nfleet = vpq_ckpt_get_count(in, INT32_MAX / 4);
  for (int64_t b = 0; b < nfleet && !in->error; b++) {
    vpq_datum device = {.i = vpq_ckpt_get_i64(in)};
    if (strings && (device.i < 0 || (uint64_t)device.i >= nstrings))
      vpq_ckpt_fail(in, "a battery names an unknown string");
    int before = s->nfleet;
    sc_battery *bat = in->error ? NULL : fleet_find(s, device);
    if (bat && s->nfleet == before) vpq_ckpt_fail(in, "a battery stored twice");
    int nversions = (int)vpq_ckpt_get_count(in, INT32_MAX / 2);
    if (in->error) break;
    if (nversions) {
      bat->versions = malloc(sizeof *bat->versions * (size_t)nversions);
      if (!bat->versions) abort();
      bat->cap = nversions;
    }
    for (int v = 0; v < nversions && !in->error; v++) {
      sc_version *ver = &bat->versions[bat->nversions++];
      s->versions++;
      ver->ts = vpq_ckpt_get_i64(in);
      ver->present = vpq_ckpt_get_bool(in);
      ver->params[VPQ_FLEET_DEVICE] = NAN;
      for (int p = VPQ_FLEET_SOC; p < VPQ_FLEET_NCOLS; p++) ver->params[p] = vpq_ckpt_get_f64(in);
    }
  }
  int nissues = (int)vpq_ckpt_get_count(in, INT32_MAX / 4);
  if (nissues) {
    s->issues = malloc(sizeof *s->issues * (size_t)nissues);
    if (!s->issues) abort();
    s->issues_cap = nissues;
  }
  for (int i = 0; i < nissues && !in->error; i++) {
    sc_issue *is = &s->issues[s->nissues++];
    memset(is, 0, sizeof *is);
    is->issued_at = vpq_ckpt_get_i64(in);
    points_load(in, &is->points, &is->n, &is->cap);
  }
  const int nprices = (int)vpq_ckpt_get_count(in, INT32_MAX / 2);
  if (nprices) {
    s->prices = malloc(sizeof *s->prices * (size_t)nprices);
    if (!s->prices) abort();
    s->prices_cap = nprices;
  }
  for (int i = 0; i < nprices && !in->error; i++) {
    sc_price *p = &s->prices[s->nprices++];
    p->ts = vpq_ckpt_get_i64(in);
    p->event_time = vpq_ckpt_get_i64(in);
    p->value = vpq_ckpt_get_f64(in);
    if (i && (p->ts < p[-1].ts || (p->ts == p[-1].ts && p->event_time < p[-1].event_time)))
      vpq_ckpt_fail(in, "prices out of order");
  }
  if (s->nprices && !sc->price) vpq_ckpt_fail(in, "prices for a schedule without them");
  if (sc->peak_floor > 0) {
    int64_t month = vpq_ckpt_get_i64(in);
    if (month < -1 || month > INT32_MAX) vpq_ckpt_fail(in, "a month out of range");
    s->month = in->error ? -1 : (int)month;
    s->month_peak = vpq_ckpt_get_f64(in);
    if (isnan(s->month_peak)) vpq_ckpt_fail(in, "a month's peak that is not a number");
  }
}

static const vpq_op_vt schedule_vt = {"Schedule",       schedule_push, schedule_watermark, schedule_describe,
                                      schedule_destroy, schedule_save, schedule_load,      schedule_input_idle};

vpq_op *vpq_op_schedule_new(vpq_runtime *rt, const vpq_plan_query *query, const vpq_source_slot *slots) {
  schedule_op *s = calloc(1, sizeof *s);
  if (!s) abort();
  vpq_op_init(&s->base, &schedule_vt, rt, &query->target->schema);
  s->base.watermark_ports = 1u << VPQ_SCHEDULE_FORECAST | 1u << VPQ_SCHEDULE_PRICE;
  s->query = query;
  s->sc = &query->schedule;
  s->slots = slots;
  s->wm = VPQ_TS_MIN;
  for (int i = 0; i < 3; i++) s->input_wm[i] = VPQ_TS_MIN;
  s->month = -1;
  s->month_peak = -INFINITY;
  fleet_index_rebuild(s, 64);
  return &s->base;
}
