/* eval_schedule.c — peak-shaving evaluation of vpq's FORECAST + SCHEDULE on PJM load, run
 * through the engine itself: over the last 365 days of each zone of load_pjm.csv, scaled to a
 * plant with a 10 MW yearly peak, a mixed fleet of ~2 MW / 4 MWh is dispatched hourly, and the
 * monthly peaks of each controller's net load are compared with those of the load.
 *
 *  vpq      a .vpq file (assembled below, `--query` prints it) loaded into libvpq: the program
 *           pushes the plant's hourly meter readings and the batteries' telemetry with
 *           vpq_engine_push_json, FORECAST (`linear`, season 1 day, history 60 days, issued and
 *           refitted every hour) forecasts the next 24 h, SCHEDULE plans them from the fleet as
 *           it stands and emits every battery's setpoint for the hour; the simulated batteries
 *           follow those setpoints for the hour (open loop within it: they never see the hour's
 *           actual load) and report their new soc, and the next hour plans again.
 *  perfect  a second SCHEDULE statement in the same file, with the same objective, constraints
 *           and horizon, planning on the actual load of the horizon (pushed as its forecast)
 *           for a second, identical fleet: perfect foresight with the same optimiser.
 *  rule     fixed thresholds as in OpenEMS's peak-shaving controller, in C: discharge by
 *           load − high above high, charge by low − load below low, within power and energy
 *           limits, seeing the hour's actual load. At the month's start high = the median over
 *           the whole days (00:00–24:00 EST) of the previous month of the level the fleet's
 *           deliverable energy and power could shave that day down to; during the month high
 *           ratchets up to the month's net peak so far; low = LOW_FRACTION × high.
 *
 * Methods. Each method is one way of writing the SCHEDULE statement (and the streams it plans
 * on); vpq and perfect foresight run the same text. `min-peak` is DESIGN §2's plain MINIMIZE
 * PEAK; `48h` the same over a 48-hour horizon (forecast and plan); `upper` plans on FORECAST's
 * `hi` column (the 90% quantile of past errors at each step) through a derived stream; `floor`
 * adds `peak_floor = 0.95 * month_peak`: never plan to shave below 95% of the highest net load
 * already dispatched this calendar month, and keep the fleet charged (docs/language.md). Not
 * run by default (--methods): `floor+hi` (floor, the next 4 hours planned halfway to hi),
 * `floor90` and `floor100` (the floor at 0.9 and 1 × the month's peak).
 *
 * Results (average monthly reduction, the four zones' mean; perfect foresight 629 kW over
 * 24 h, 607 kW over 48 h; the rule 245 kW), measured 2026-11-30 after the forecast gained the
 * origin's lags (vpq_model_regression.c): min-peak 395 kW (63% of perfect), floor 413 kW (66%,
 * better in every zone, and 100–120 full cycles a year instead of 304–347), 48h 375 (62% of its
 * own perfect foresight), upper 71 (hi grows with the step, so tomorrow always looks worse than
 * today and today is not shaved). Before that change: min-peak 352 (56%), floor 381 (61%),
 * floor+hi 387 (62%: within the noise of a metric that one hour a month sets: the same loop run
 * through the modules alone, bench/schedule_gap.c, differs from it by up to 46 kW in a zone),
 * floor90 362, floor100 300. The target, 85%, is not reached.
 *
 * Where the gap comes from (bench/schedule_gap.c plans MIN_PEAK on series between the forecast
 * and the truth; its own vpq run keeps 62%):
 *  - the hour being dispatched: planning on the truth except that hour's forecast keeps 84%.
 *    Setpoints are fixed for the hour, so the net load is the plan's level plus the hour's
 *    forecast error (MAE 33–59 kW, 0.6–0.9% of the mean load; 62–78 kW before), and the
 *    month's peak is the worst such hour on the plateau the plan flattens;
 *  - the rest of the horizon: scaling every step's error by 0.75 / 0.5 / 0.25 keeps 73 / 83 /
 *    93%, so 85% needs errors about 0.45× vpq's at every step, not only in the first hours. At
 *    the daily peak hour the forecast is low on average (by 105–205 kW six to twelve steps
 *    ahead): the plan spends its energy early and runs out (below 10% of its energy left at
 *    the hour of the month's net peak in 3–6 of the 11 months per zone);
 *  - the horizon is not the limit: over 12 h vpq keeps the same, over 48 h perfect foresight
 *    itself reduces less (the least-throughput plan shaves today only to tomorrow's level).
 * Also measured, with an earlier study harness on an all-2-hour fleet (plain vpq 337 kW of 630):
 * planning on the lower quantile 183 kW, on the quantile's midpoint 336, on a 50/50 blend of
 * value and hi 322; a 100 kW margin on the first step 249; KEEP BELOW the month's peak 73 (0.9 ×
 * it: 316): least throughput charges only what the forecast says the horizon needs, so the fleet
 * meets peaks half full; MIN_PEAK over max(forecast, 0.9 × month peak) 238 (hours under the
 * floor look like the floor, so the fleet cannot recharge); history 28 days 325, 120 days 275;
 * blends of linear with holt_winters or mlp: worse at step 0; planning with 15–20% of the stored
 * energy held back 354 (with the floor +6 kW); a ridge regression that adds the values two and 25
 * hours back halves the step-0 error (MAE 40–67 kW) but kept only 358. A site controller that
 * corrects the setpoints with the hour's measured load (discharging more when the net load would
 * pass the plan's peak, less when the load is under the forecast) keeps less, not more: 45–61% per
 * zone with the floor (2026-11-30), because it spends the energy on the first hours of the
 * plateau of a day whose peak the forecast puts too low, and has none left at the peak; likewise
 * planning on the truth for the hour being dispatched and the forecast after it keeps 49%
 * (bench/schedule_gap.c). What 85% needs is a better forecast of the rest of the day.
 *
 * Batteries follow their setpoints exactly: stored energy changes by −p·Δt/eff discharging
 * and −p·Δt·eff charging, clamped to the soc limits. Months are UTC calendar months; yearly
 * averages are over the full calendar months of the window (its first and last are partial,
 * marked '*').
 *
 *   cmake --build build --target eval_schedule
 *   VPQ_DATA=../shared/data build/eval_schedule [--json] [--query] [--methods a,b,...]
 *   (bench/run_schedule_eval.sh runs it)
 */
#include <stdbool.h>

#include "peak_eval.h"
#include "vpq.h"

#define HOUR_MS PEAK_EVAL_HOUR_MS
#define MIN_SOC PEAK_EVAL_MIN_SOC
#define MAX_SOC PEAK_EVAL_MAX_SOC
#define STEP_H PEAK_EVAL_STEP_H
#define LOW_FRACTION 0.90
#define EMPTY_SHARE 0.10 /* a fleet with less usable energy than this share counts as empty */
#define MISSED_KW 150.0  /* a step-0 forecast this much too low counts as a missed hour */
#define EST_OFFSET_H 5

enum {
  ZONES = PEAK_EVAL_ZONES,
  YEAR_H = PEAK_EVAL_YEAR_H,
  HISTORY_H = PEAK_EVAL_HISTORY_H,
  MAX_HORIZON = 48,
  MAX_MONTHS = 14,
  MAX_BATTERIES = PEAK_EVAL_MAX_BATTERIES,
  MAX_METHODS = 8,
  FLEETS = 2, /* vpq, perfect foresight */
};

enum { FLEET_VPQ, FLEET_PERFECT };

/* One way of writing the SCHEDULE statement; vpq and perfect foresight run the same text. */
typedef struct method {
  const char *name;
  const char *about;
  const char *streams;  /* statements that derive what vpq's SCHEDULE plans on, or "" */
  const char *forecast; /* the relation vpq's SCHEDULE plans on */
  const char *plan;     /* objective and SUBJECT TO, the same for both SCHEDULE statements */
  int horizon_h;
  bool by_default; /* run without --methods */
} method;

static const method methods[] = {
    {"min-peak", "MINIMIZE PEAK over 24 h (DESIGN §2)", "", "load_forecast",
     "MINIMIZE PEAK\n  SUBJECT TO soc >= 0.10, soc <= 0.95", 24, true},
    {"48h", "MINIMIZE PEAK over 48 h (forecast and plan)", "", "load_forecast",
     "MINIMIZE PEAK\n  SUBJECT TO soc >= 0.10, soc <= 0.95", 48, true},
    {"upper", "MINIMIZE PEAK on FORECAST's hi (90% quantile)",
     "CREATE STREAM load_upper AS SELECT issued_at, ts, hi AS value FROM load_forecast;\n", "load_upper",
     "MINIMIZE PEAK\n  SUBJECT TO soc >= 0.10, soc <= 0.95", 24, true},
    {"floor", "MINIMIZE PEAK, peak_floor = 0.95 * month_peak", "", "load_forecast",
     "MINIMIZE PEAK\n  SUBJECT TO soc >= 0.10, soc <= 0.95, peak_floor = 0.95 * month_peak", 24, true},
    {"floor+hi", "as floor, the next 4 hours planned halfway to FORECAST's hi",
     "CREATE STREAM load_hedged AS\n"
     "  SELECT issued_at, ts,\n"
     "         CASE WHEN step < 4 AND hi IS NOT NULL THEN value + 0.5 * (hi - value) ELSE value END AS value\n"
     "  FROM load_forecast;\n",
     "load_hedged", "MINIMIZE PEAK\n  SUBJECT TO soc >= 0.10, soc <= 0.95, peak_floor = 0.95 * month_peak", 24, false},
    {"floor90", "MINIMIZE PEAK, peak_floor = 0.9 * month_peak", "", "load_forecast",
     "MINIMIZE PEAK\n  SUBJECT TO soc >= 0.10, soc <= 0.95, peak_floor = 0.9 * month_peak", 24, false},
    {"floor100", "MINIMIZE PEAK, peak_floor = month_peak", "", "load_forecast",
     "MINIMIZE PEAK\n  SUBJECT TO soc >= 0.10, soc <= 0.95, peak_floor = month_peak", 24, false},
};
enum { NMETHODS = sizeof methods / sizeof methods[0] };
_Static_assert((int)NMETHODS <= (int)MAX_METHODS, "more methods than zone_result holds");

/* One method's outcome in one zone. */
typedef struct method_result {
  double net_peak[FLEETS][MAX_MONTHS];
  double discharged_kwh[FLEETS];
  double usable_at_load_peak[FLEETS][MAX_MONTHS]; /* share of the fleet's usable energy, before the hour */
  double usable_at_net_peak[MAX_MONTHS];          /* vpq's fleet at the hour of its month's net peak */
  double error_at_net_peak[MAX_MONTHS];           /* actual − forecast of that hour (step 0) */
  long plans, missing_rows;
  double seconds;
} method_result;

/* One zone's outcome: plain data, so that a worker process can send it through a pipe. */
typedef struct zone_result {
  int nmonths;
  int month_key[MAX_MONTHS]; /* year × 12 + month (0-based) */
  bool month_full[MAX_MONTHS];
  double peak[MAX_MONTHS];      /* of the load */
  double rule_peak[MAX_MONTHS]; /* of the rule's net load */
  double rule_high[MAX_MONTHS]; /* the rule's high threshold at the month's start */
  double rule_discharged_kwh;
  method_result m[MAX_METHODS];
  /* FORECAST's 24-hour forecasts (from the first method run): absolute error sums per step,
   * over every target, and over the targets that are their EST day's peak hour (with sign). */
  double abs_error[MAX_HORIZON], peak_abs_error[MAX_HORIZON], peak_error[MAX_HORIZON];
  long errors[MAX_HORIZON], peak_errors[MAX_HORIZON];
  double mean_load;
} zone_result;

/* Monotonic wall time in seconds. */
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* "YYYY-MM-DD HH:00" of an epoch-ms time, UTC. */
static void format_hour(int64_t ts, char *buf, size_t size) {
  time_t s = (time_t)(ts / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  strftime(buf, size, "%Y-%m-%d %H:00", &tm);
}

/* The rule's split of a fleet power `want` (+ discharge) over the batteries: in proportion to
 * what each can deliver (or take) this hour, so that the fleet reaches `want` when it can. */
static void rule_split(const battery *b, int n, double want, double *setpoint) {
  double can[MAX_BATTERIES], total = 0.0;
  for (int i = 0; i < n; i++) {
    const double e = b[i].soc * b[i].capacity_kwh;
    const double energy = want > 0 ? fmax(0.0, e - MIN_SOC * b[i].capacity_kwh) * b[i].efficiency / STEP_H
                                   : fmax(0.0, MAX_SOC * b[i].capacity_kwh - e) / (b[i].efficiency * STEP_H);
    can[i] = fmin(b[i].max_kw, energy);
    total += can[i];
  }
  for (int i = 0; i < n; i++)
    setpoint[i] = total > 0 ? want * can[i] / total : 0.0;
}

/* ===== The threshold rule's monthly threshold ===== */

/* The lowest level a day's hourly loads x[0..h) can be shaved to with `energy` kWh and `power`
 * kW delivered: the smallest L ≥ max − power with Σ max(0, x − L) ≤ energy (bisection). */
static double shave_level(const double *x, int h, double energy, double power) {
  double top = -INFINITY;
  for (int i = 0; i < h; i++)
    top = fmax(top, x[i]);
  double lo = top - power, hi = top;
  for (int it = 0; it < 60; it++) {
    const double mid = 0.5 * (lo + hi);
    double above = 0.0;
    for (int i = 0; i < h; i++)
      above += fmax(0.0, x[i] - mid) * STEP_H;
    if (above <= energy)
      hi = mid;
    else
      lo = mid;
  }
  return hi;
}

/* Orders doubles ascending (qsort). */
static int compare_doubles(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Index of the first hour of the month holding index t. */
static int month_start(const dataset *d, int t) {
  const int key = peak_eval_month(d->ts0 + (int64_t)t * HOUR_MS);
  while (t > 0 && peak_eval_month(d->ts0 + (int64_t)(t - 1) * HOUR_MS) == key)
    t--;
  return t;
}

/* The rule's high threshold for the month holding index t of the load: the median of the shave
 * levels of the whole days (00:00 to 24:00 EST) inside the previous month. */
static double rule_threshold(const dataset *d, const double *load, int t, double energy, double power) {
  const int start = month_start(d, t);
  int i = month_start(d, start - 1);
  while ((d->ts0 / HOUR_MS + i - EST_OFFSET_H) % 24 != 0)
    i++; /* the month's first 00:00 EST */
  double levels[32];
  int days = 0;
  for (; i + 24 <= start && days < 32; i += 24)
    levels[days++] = shave_level(&load[i], 24, energy, power);
  if (days == 0)
    peak_eval_die("no whole day in the month before", NULL);
  qsort(levels, (size_t)days, sizeof levels[0], compare_doubles);
  return 0.5 * (levels[(days - 1) / 2] + levels[days / 2]);
}

/* ===== The query ===== */

/* Writes method m's .vpq text into buf (NUL-terminated); dies when it does not fit. */
static void method_query(const method *m, char *buf, size_t size) {
  static const char telemetry_columns[] =
      "(device_id STRING KEY, ts TIMESTAMP, soc DOUBLE, capacity_kwh DOUBLE, max_kw DOUBLE, efficiency DOUBLE)";
  static const char fleet_columns[] = "device_id, last(soc) AS soc, last(capacity_kwh) AS capacity_kwh,\n"
                                      "         last(max_kw) AS max_kw, last(efficiency) AS efficiency";
  const int n = snprintf(
      buf, size,
      "-- bench/eval_schedule.c, method %s: %s.\n"
      "-- The program drives the engine's clock: at the end of every hour it pushes the batteries'\n"
      "-- telemetry and the hour's meter reading; a second later the meter counts as idle, its\n"
      "-- watermark passes the hour, FORECAST issues and SCHEDULE plans; the batteries follow `dispatch`.\n"
      "CREATE STREAM meter (ts TIMESTAMP, load_kw DOUBLE, reported TIMESTAMP)\n"
      "  WITH (timestamp = 'reported', idle_timeout = 1 SECOND);\n"
      "CREATE STREAM telemetry %s WITH (timestamp = 'ts', idle_timeout = 1 DAY);\n"
      "CREATE TABLE batteries AS\n  SELECT %s\n  FROM telemetry GROUP BY device_id;\n"
      "CREATE STREAM load_forecast AS\n  FORECAST load_kw FROM meter USING linear (season = 1 DAY)\n"
      "  HORIZON %d HOURS EVERY 1 HOUR STEP 1 HOUR;\n"
      "%s"
      "CREATE STREAM dispatch AS\n  SCHEDULE batteries FOR %s\n  %s\n  HORIZON %d HOURS STEP 1 HOUR;\n"
      "-- Perfect foresight: the same SCHEDULE for a second fleet on the actual load of the horizon,\n"
      "-- pushed as a forecast issued every hour (the next hour's issue moves the watermark past it).\n"
      "CREATE STREAM actual_load (issued_at TIMESTAMP, ts TIMESTAMP, value DOUBLE)\n"
      "  WITH (timestamp = 'issued_at', idle_timeout = 1 DAY);\n"
      "CREATE STREAM telemetry_pf %s WITH (timestamp = 'ts', idle_timeout = 1 DAY);\n"
      "CREATE TABLE batteries_pf AS\n  SELECT %s\n  FROM telemetry_pf GROUP BY device_id;\n"
      "CREATE STREAM dispatch_pf AS\n  SCHEDULE batteries_pf FOR actual_load\n  %s\n  HORIZON %d HOURS STEP 1 HOUR;\n",
      m->name, m->about, telemetry_columns, fleet_columns, m->horizon_h, m->streams, m->forecast, m->plan, m->horizon_h,
      telemetry_columns, fleet_columns, m->plan, m->horizon_h);
  if (n < 0 || (size_t)n >= size)
    peak_eval_die("query text too long for method", m->name);
}

/* ===== The closed loop ===== */

/* What the engine's subscriptions fill in while one hour is processed. */
typedef struct loop {
  int64_t issue; /* the issue whose dispatch is being collected */
  double setpoint[FLEETS][MAX_BATTERIES];
  int got[FLEETS];
  int nb;
  int64_t year_ts0; /* time of the year's first hour */
  double *forecast; /* YEAR_H × MAX_HORIZON values of load_forecast, NAN when none */
  int horizon;
} loop;

/* The number after `"key":` in a JSON row, NAN when absent or null. */
static double json_number(const char *json, const char *key) {
  const char *p = strstr(json, key);
  if (!p)
    return NAN;
  p += strlen(key);
  if (*p != ':')
    return NAN;
  char *end;
  const double v = strtod(p + 1, &end);
  return end == p + 1 ? NAN : v;
}

/* A dispatch row of `dispatch` (vpq) or `dispatch_pf` (perfect foresight): the setpoint of one
 * battery for the issue being collected. */
static void on_dispatch(void *ctx, const char *relation, const char *json, int diff) {
  loop *l = ctx;
  const int fleet = strcmp(relation, "dispatch") == 0 ? FLEET_VPQ : FLEET_PERFECT;
  if (diff <= 0 || (int64_t)json_number(json, "\"issued_at\"") != l->issue)
    return;
  const char *id = strstr(json, "\"device_id\":\"b");
  if (!id)
    peak_eval_die("dispatch row without a device", json);
  const int b = atoi(id + 14);
  if (b < 0 || b >= l->nb)
    peak_eval_die("dispatch row for an unknown battery", json);
  l->setpoint[fleet][b] = json_number(json, "\"setpoint_kw\"");
  l->got[fleet]++;
}

/* A row of load_forecast: kept for the forecast's accuracy by step. */
static void on_forecast(void *ctx, const char *relation, const char *json, int diff) {
  (void)relation;
  loop *l = ctx;
  const int64_t issued = (int64_t)json_number(json, "\"issued_at\"");
  const double step = json_number(json, "\"step\"");
  if (diff <= 0 || issued < l->year_ts0 || !(step >= 0 && step < l->horizon))
    return;
  const int64_t i = (issued - l->year_ts0) / HOUR_MS;
  if (i < YEAR_H)
    l->forecast[(size_t)i * MAX_HORIZON + (size_t)step] = json_number(json, "\"value\"");
}

/* Pushes one JSON row into a source of the engine; dies on refusal. */
static void push(vpq_engine *e, const char *relation, const char *json) {
  char err[256];
  if (vpq_engine_push_json(e, relation, json, err, sizeof err) != 0)
    peak_eval_die(err, json);
}

/* Pushes every battery's state at time ts into `relation`. */
static void push_telemetry(vpq_engine *e, const char *relation, const battery *b, int nb, int64_t ts) {
  char row[256];
  for (int i = 0; i < nb; i++) {
    snprintf(row, sizeof row,
             "{\"device_id\":\"b%03d\",\"ts\":%lld,\"soc\":%.17g,\"capacity_kwh\":%.17g,\"max_kw\":%.17g,"
             "\"efficiency\":%.17g}",
             i, (long long)ts, b[i].soc, b[i].capacity_kwh, b[i].max_kw, b[i].efficiency);
    push(e, relation, row);
  }
}

/* Pushes the perfect-foresight issue at index t: the actual load of [t, t + horizon) within the
 * data (one row of the last value when t is past its end: that issue only moves the watermark). */
static void push_actual(vpq_engine *e, const dataset *d, const double *y, int t, int horizon) {
  char row[160];
  const int64_t issued = d->ts0 + (int64_t)t * HOUR_MS;
  const int h = t >= d->n ? 1 : d->n - t < horizon ? d->n - t : horizon;
  for (int k = 0; k < h; k++) {
    const double v = t + k < d->n ? y[t + k] : y[d->n - 1];
    snprintf(row, sizeof row, "{\"issued_at\":%lld,\"ts\":%lld,\"value\":%.17g}", (long long)issued,
             (long long)(issued + k * HOUR_MS), v);
    push(e, "actual_load", row);
  }
}

/* Pushes the meter reading of hour i (its load at ts, reported at the hour's end, the engine's
 * clock standing there), then moves the clock a second on: the meter is idle, its watermark
 * passes the hour's end, FORECAST issues and SCHEDULE plans the next hour. */
static void push_meter(vpq_engine *e, const dataset *d, const double *y, int i) {
  char row[160];
  const int64_t ts = d->ts0 + (int64_t)i * HOUR_MS;
  snprintf(row, sizeof row, "{\"ts\":%lld,\"load_kw\":%.17g,\"reported\":%lld}", (long long)ts, y[i],
           (long long)(ts + HOUR_MS));
  push(e, "meter", row);
  vpq_engine_tick(e, ts + HOUR_MS + 1000);
}

/* Runs method `mi` over the year of zone z through the engine and fills r->m[mi]. With
 * `record`, FORECAST's values by issue and step go into `forecast`; every method reads the
 * step-0 forecasts from there (all methods forecast alike). */
static void run_method(const dataset *d, int z, int mi, zone_result *r, double *forecast, bool record) {
  const method *m = &methods[mi];
  method_result *mr = &r->m[mi];
  const double *y = d->load[z];
  const int start = d->n - YEAR_H;
  const double t0 = now();
  char text[8192];
  method_query(m, text, sizeof text);
  vpq_engine *e = vpq_engine_new();
  if (vpq_engine_load(e, "eval_schedule.vpq", text, stderr) != 0)
    peak_eval_die("the query does not load for method", m->name);
  vpq_engine_no_stdout(e);
  battery fleet[FLEETS][MAX_BATTERIES];
  loop l = {.year_ts0 = d->ts0 + (int64_t)start * HOUR_MS, .forecast = forecast, .horizon = m->horizon_h};
  for (int f = 0; f < FLEETS; f++)
    l.nb = peak_eval_fleet(fleet[f]);
  if (vpq_engine_subscribe(e, "dispatch", on_dispatch, &l) != 0 ||
      vpq_engine_subscribe(e, "dispatch_pf", on_dispatch, &l) != 0)
    peak_eval_die("no dispatch streams for method", m->name);
  if (record && vpq_engine_subscribe(e, "load_forecast", on_forecast, &l) != 0)
    peak_eval_die("no load_forecast", m->name);
  for (int i = start - HISTORY_H; i < start - 1; i++) {
    vpq_engine_tick(e, d->ts0 + (int64_t)(i + 1) * HOUR_MS);
    push_meter(e, d, y, i);
  }
  push_actual(e, d, y, start, m->horizon_h);
  int month = -1;
  for (int t = start; t < d->n; t++) {
    const int key = peak_eval_month(d->ts0 + (int64_t)t * HOUR_MS);
    if (month < 0 || key != r->month_key[month]) {
      month++;
      for (int f = 0; f < FLEETS; f++)
        mr->net_peak[f][month] = -INFINITY;
    }
    const int64_t ts = d->ts0 + (int64_t)t * HOUR_MS;
    double usable[FLEETS];
    for (int f = 0; f < FLEETS; f++)
      usable[f] = peak_eval_deliverable(fleet[f], l.nb) / peak_eval_cycle_kwh(fleet[f], l.nb);
    l.issue = ts;
    l.got[FLEET_VPQ] = l.got[FLEET_PERFECT] = 0;
    for (int f = 0; f < FLEETS; f++)
      for (int b = 0; b < l.nb; b++)
        l.setpoint[f][b] = 0.0;
    vpq_engine_tick(e, ts);
    push_telemetry(e, "telemetry", fleet[FLEET_VPQ], l.nb, ts);
    push_telemetry(e, "telemetry_pf", fleet[FLEET_PERFECT], l.nb, ts);
    push_meter(e, d, y, t - 1);                /* FORECAST issues t, SCHEDULE plans it */
    push_actual(e, d, y, t + 1, m->horizon_h); /* the next perfect issue lets SCHEDULE plan issue t */
    mr->plans++;
    for (int f = 0; f < FLEETS; f++)
      mr->missing_rows += l.nb - l.got[f];
    for (int f = 0; f < FLEETS; f++) {
      const double out = peak_eval_apply(fleet[f], l.nb, l.setpoint[f]);
      const double net = y[t] - out;
      if (y[t] == r->peak[month])
        mr->usable_at_load_peak[f][month] = usable[f];
      if (net > mr->net_peak[f][month]) {
        mr->net_peak[f][month] = net;
        if (f == FLEET_VPQ) {
          mr->usable_at_net_peak[month] = usable[f];
          mr->error_at_net_peak[month] = y[t] - forecast[(size_t)(t - start) * MAX_HORIZON];
        }
      }
      mr->discharged_kwh[f] += fmax(out, 0.0) * STEP_H;
    }
  }
  vpq_engine_free(e);
  mr->seconds = now() - t0;
}

/* The months of the year, the load's monthly peaks and the threshold rule, for zone z. */
static void run_rule(const dataset *d, int z, zone_result *r) {
  const double *y = d->load[z];
  const int start = d->n - YEAR_H;
  battery fleet[MAX_BATTERIES];
  const int nb = peak_eval_fleet(fleet);
  double power = 0.0, setpoint[MAX_BATTERIES], rule_peak = 0.0;
  for (int i = 0; i < nb; i++)
    power += fleet[i].max_kw;
  const double energy = peak_eval_cycle_kwh(fleet, nb);
  int m = -1;
  for (int t = start; t < d->n; t++) {
    const int key = peak_eval_month(d->ts0 + (int64_t)t * HOUR_MS);
    if (m < 0 || key != r->month_key[m]) {
      if (++m >= MAX_MONTHS)
        peak_eval_die("too many months", NULL);
      r->month_key[m] = key;
      r->month_full[m] = t == start ? peak_eval_month(d->ts0 + (int64_t)(t - 1) * HOUR_MS) != key : true;
      r->peak[m] = r->rule_peak[m] = -INFINITY;
      r->rule_high[m] = rule_threshold(d, y, t, energy, power);
      rule_peak = 0.0;
    }
    const double high = fmax(r->rule_high[m], rule_peak), low = LOW_FRACTION * high;
    const double want = y[t] > high ? y[t] - high : y[t] < low ? -(low - y[t]) : 0.0;
    rule_split(fleet, nb, want, setpoint);
    const double out = peak_eval_apply(fleet, nb, setpoint);
    rule_peak = fmax(rule_peak, y[t] - out);
    r->rule_peak[m] = fmax(r->rule_peak[m], y[t] - out);
    r->rule_discharged_kwh += fmax(out, 0.0) * STEP_H;
    r->peak[m] = fmax(r->peak[m], y[t]);
    r->mean_load += y[t] / YEAR_H;
  }
  r->nmonths = m + 1;
  r->month_full[m] = peak_eval_month(d->ts0 + (int64_t)d->n * HOUR_MS) != r->month_key[m];
}

/* The forecast's absolute errors by step, over all targets and over the daily peak hours. */
static void forecast_errors(const dataset *d, int z, const double *forecast, zone_result *r) {
  const double *y = d->load[z];
  const int start = d->n - YEAR_H;
  for (int i = 0; i < YEAR_H; i++)
    for (int k = 0; k < 24 && i + k < YEAR_H; k++) {
      const double f = forecast[(size_t)i * MAX_HORIZON + (size_t)k];
      if (isnan(f))
        continue;
      r->abs_error[k] += fabs(y[start + i + k] - f);
      r->errors[k]++;
    }
  int day = start;
  while ((d->ts0 / HOUR_MS + day - EST_OFFSET_H) % 24 != 0)
    day++;
  for (; day + 24 <= d->n; day += 24) {
    int p = day;
    for (int i = day; i < day + 24; i++)
      if (y[i] > y[p])
        p = i;
    for (int k = 0; k < 24 && p - k >= start; k++) {
      const double f = forecast[(size_t)(p - k - start) * MAX_HORIZON + (size_t)k];
      if (isnan(f))
        continue;
      r->peak_abs_error[k] += fabs(y[p] - f);
      r->peak_error[k] += y[p] - f;
      r->peak_errors[k]++;
    }
  }
}

/* Everything for zone z: the rule, then every selected method (ctx: bool per method) through
 * the engine (peak_eval_run_zones' worker). */
static void run_zone(const dataset *d, int z, const void *ctx, void *result) {
  const bool *selected = ctx;
  zone_result *r = result;
  memset(r, 0, sizeof *r);
  run_rule(d, z, r);
  double *forecast = malloc(sizeof(double) * (size_t)YEAR_H * MAX_HORIZON);
  if (!forecast)
    peak_eval_die("out of memory", NULL);
  for (size_t i = 0; i < (size_t)YEAR_H * MAX_HORIZON; i++)
    forecast[i] = NAN;
  bool recorded = false;
  for (int mi = 0; mi < (int)NMETHODS; mi++) {
    if (!selected[mi])
      continue;
    const bool record = !recorded; /* the methods forecast alike (48h: the same first 24 steps) */
    run_method(d, z, mi, r, forecast, record);
    if (record) {
      forecast_errors(d, z, forecast, r);
      recorded = true;
    }
  }
  free(forecast);
}

/* ===== Reports ===== */

/* Reduction of a net peak against the load's peak in month m, kW. */
static double reduction(const zone_result *r, double net_peak, int m) { return r->peak[m] - net_peak; }

/* Averages over the full months of zone r: the load's peak, the rule's reduction and each fleet's
 * reduction under method mi. */
static void yearly(const zone_result *r, int mi, double *peak, double *rule, double *red) {
  int full = 0;
  *peak = *rule = red[0] = red[1] = 0.0;
  for (int m = 0; m < r->nmonths; m++) {
    if (!r->month_full[m])
      continue;
    full++;
    *peak += r->peak[m];
    *rule += reduction(r, r->rule_peak[m], m);
    for (int f = 0; f < FLEETS; f++)
      red[f] += reduction(r, r->m[mi].net_peak[f][m], m);
  }
  *peak /= full;
  *rule /= full;
  for (int f = 0; f < FLEETS; f++)
    red[f] /= full;
}

/* At the hour of vpq's net peak of each full month: the months its fleet held less than
 * EMPTY_SHARE of its usable energy, those it held at least half and the hour's forecast was
 * more than MISSED_KW too low, and the mean share it held. */
static void net_peak_hours(const zone_result *r, int mi, int *empty, int *missed, double *mean_share) {
  int full = 0;
  *empty = *missed = 0;
  *mean_share = 0.0;
  for (int m = 0; m < r->nmonths; m++) {
    if (!r->month_full[m])
      continue;
    full++;
    const double share = r->m[mi].usable_at_net_peak[m];
    *empty += share < EMPTY_SHARE;
    *missed += share >= 0.5 && r->m[mi].error_at_net_peak[m] > MISSED_KW;
    *mean_share += share;
  }
  *mean_share /= full;
}

/* Energy delivered over the year divided by one full cycle of the fleet. */
static double cycles(double discharged_kwh, double full_kwh) { return discharged_kwh / full_kwh; }

/* The human-readable report. */
static void print_table(const dataset *d, const zone_result *res, const bool *selected, const char *path,
                        double seconds) {
  char from[32], to[32];
  format_hour(d->ts0 + (int64_t)(d->n - YEAR_H) * HOUR_MS, from, sizeof from);
  format_hour(d->ts0 + (int64_t)(d->n - 1) * HOUR_MS, to, sizeof to);
  battery fleet[MAX_BATTERIES];
  const int nb = peak_eval_fleet(fleet);
  double kw = 0.0, kwh = 0.0;
  for (int i = 0; i < nb; i++)
    kw += fleet[i].max_kw, kwh += fleet[i].capacity_kwh;
  const double full = peak_eval_cycle_kwh(fleet, nb);
  printf("vpq peak-shaving evaluation — %s\n", path);
  printf("data     last 365 days of each PJM zone, hours %s .. %s UTC (hour starts); a missing\n"
         "         hour takes the previous value; each zone scaled to a plant with a %.0f kW yearly peak\n",
         from, to, PEAK_EVAL_PLANT_KW);
  printf("fleet    %d batteries of mixed sizes, C-rates and efficiencies, %.0f kW / %.0f kWh:\n", nb, kw, kwh);
  for (int k = 0; k < PEAK_EVAL_KINDS; k++)
    printf("         %3d x %5g kW / %5g kWh, one-way efficiency %.2f (%s)\n", peak_eval_fleet_kinds[k].count,
           peak_eval_fleet_kinds[k].kw, peak_eval_fleet_kinds[k].kwh, peak_eval_fleet_kinds[k].efficiency,
           peak_eval_fleet_kinds[k].what);
  printf("         soc %.2f..%.2f, start %.2f; one full cycle delivers %.0f kWh; hourly setpoints followed exactly\n",
         MIN_SOC, MAX_SOC, PEAK_EVAL_START_SOC, full);
  printf("vpq      the engine runs a .vpq file (eval_schedule --query prints it): FORECAST linear (season 1 day,\n"
         "         60 days of history) issued and refitted every hour, SCHEDULE re-planning every hour from the\n"
         "         batteries' reported soc; the batteries follow the first hour's setpoints (open loop within it)\n");
  printf("perfect  the same SCHEDULE text, in the same file, on the actual load of its horizon\n");
  printf("rule     OpenEMS-style thresholds on the hour's actual load: discharge by load - high above high,\n"
         "         charge by low - load below low; high starts the month at the median over the previous month's\n"
         "         days (00:00 EST) of the level the fleet could shave the day to, ratchets up to the month's net\n"
         "         peak so far; low = %.2f x high\n",
         LOW_FRACTION);
  printf("methods  how the SCHEDULE statement is written (vpq and perfect foresight alike):\n");
  for (int mi = 0; mi < (int)NMETHODS; mi++)
    if (selected[mi])
      printf("         %-9s %s\n", methods[mi].name, methods[mi].about);
  printf("months   UTC calendar months; '*' = partial, left out of the yearly averages\n\n");

  for (int z = 0; z < ZONES; z++) {
    const zone_result *r = &res[z];
    printf("%-7s  month    peak kW |  rule kW |", peak_eval_zone_names[z]);
    for (int mi = 0; mi < (int)NMETHODS; mi++)
      if (selected[mi])
        printf(" %9s vpq / perfect kW |", methods[mi].name);
    printf("  (monthly peak reduction)\n");
    for (int m = 0; m < r->nmonths; m++) {
      printf("         %04d-%02d%c %7.0f | %8.0f |", r->month_key[m] / 12, r->month_key[m] % 12 + 1,
             r->month_full[m] ? ' ' : '*', r->peak[m], reduction(r, r->rule_peak[m], m));
      for (int mi = 0; mi < (int)NMETHODS; mi++)
        if (selected[mi])
          printf("       %9.0f / %7.0f |", reduction(r, r->m[mi].net_peak[FLEET_VPQ][m], m),
                 reduction(r, r->m[mi].net_peak[FLEET_PERFECT][m], m));
      printf("\n");
    }
    printf("\n");
  }

  for (int mi = 0; mi < (int)NMETHODS; mi++) {
    if (!selected[mi])
      continue;
    printf("yearly summary, method %s (%s): monthly peak reduction averaged over the full months\n", methods[mi].name,
           methods[mi].about);
    printf("zone     avg peak kW |    vpq kW      %% | perfect kW      %% |   rule kW      %% | vpq/perfect | "
           "cycles vpq/perfect/rule\n");
    double share_sum = 0.0, vpq_sum = 0.0, perfect_sum = 0.0;
    for (int z = 0; z < ZONES; z++) {
      const zone_result *r = &res[z];
      double peak, rule, red[FLEETS];
      yearly(r, mi, &peak, &rule, red);
      printf("%-7s  %11.0f | %9.0f %6.1f | %9.0f %6.1f | %9.0f %6.1f | %10.1f%% | %4.0f / %4.0f / %4.0f\n",
             peak_eval_zone_names[z], peak, red[FLEET_VPQ], 100.0 * red[FLEET_VPQ] / peak, red[FLEET_PERFECT],
             100.0 * red[FLEET_PERFECT] / peak, rule, 100.0 * rule / peak, 100.0 * red[FLEET_VPQ] / red[FLEET_PERFECT],
             cycles(r->m[mi].discharged_kwh[FLEET_VPQ], full), cycles(r->m[mi].discharged_kwh[FLEET_PERFECT], full),
             cycles(r->rule_discharged_kwh, full));
      share_sum += red[FLEET_VPQ] / red[FLEET_PERFECT];
      vpq_sum += red[FLEET_VPQ];
      perfect_sum += red[FLEET_PERFECT];
    }
    printf(
        "all      vpq %.0f kW, perfect %.0f kW on average: vpq/perfect %.1f%% (mean of the zones' shares %.1f%%)\n\n",
        vpq_sum / ZONES, perfect_sum / ZONES, 100.0 * vpq_sum / perfect_sum, 100.0 * share_sum / ZONES);
  }

  printf("where the gap comes from\n");
  printf("forecast MAE by step (kW; the step-0 forecast is the hour the batteries act in), all targets and at the\n"
         "daily peak hour (EST days; signed mean = actual - forecast):\n");
  static const int shown[] = {0, 1, 2, 3, 6, 12, 18, 23};
  printf("zone     targets     ");
  for (size_t s = 0; s < sizeof shown / sizeof shown[0]; s++)
    printf(" step %2d", shown[s]);
  printf("\n");
  for (int z = 0; z < ZONES; z++) {
    const zone_result *r = &res[z];
    if (!r->errors[0])
      continue;
    printf("%-7s  all         ", peak_eval_zone_names[z]);
    for (size_t s = 0; s < sizeof shown / sizeof shown[0]; s++)
      printf(" %7.0f", r->abs_error[shown[s]] / (double)r->errors[shown[s]]);
    printf("   (%.1f%% of the mean load at step 0)\n", 100.0 * r->abs_error[0] / (double)r->errors[0] / r->mean_load);
    printf("         daily peak  ");
    for (size_t s = 0; s < sizeof shown / sizeof shown[0]; s++)
      printf(" %7.0f", r->peak_abs_error[shown[s]] / (double)r->peak_errors[shown[s]]);
    printf("\n         signed      ");
    for (size_t s = 0; s < sizeof shown / sizeof shown[0]; s++)
      printf(" %+7.0f", r->peak_error[shown[s]] / (double)r->peak_errors[shown[s]]);
    printf("\n");
  }
  printf("vpq's monthly net peak hour (full months): months its fleet had less than %.0f%% of its usable energy\n"
         "left (empty), months it had half or more and the hour's forecast was over %.0f kW too low (missed),\n"
         "mean share left; then the mean share vpq / perfect foresight had left at the load's monthly peak hour:\n",
         100.0 * EMPTY_SHARE, MISSED_KW);
  for (int mi = 0; mi < (int)NMETHODS; mi++) {
    if (!selected[mi])
      continue;
    printf("  %s\n", methods[mi].name);
    for (int z = 0; z < ZONES; z++) {
      const zone_result *r = &res[z];
      int empty, missed, full_months = 0;
      double share, at_peak[FLEETS] = {0, 0};
      net_peak_hours(r, mi, &empty, &missed, &share);
      for (int m = 0; m < r->nmonths; m++) {
        if (!r->month_full[m])
          continue;
        full_months++;
        for (int f = 0; f < FLEETS; f++)
          at_peak[f] += r->m[mi].usable_at_load_peak[f][m];
      }
      printf("    %-7s empty %2d/%d, missed %2d/%d, left %3.0f%%; at the load's peak %3.0f%% / %3.0f%%\n",
             peak_eval_zone_names[z], empty, full_months, missed, full_months, 100.0 * share,
             100.0 * at_peak[0] / full_months, 100.0 * at_peak[1] / full_months);
    }
  }
  long missing = 0;
  double engine_s = 0.0;
  long plans = 0;
  for (int z = 0; z < ZONES; z++)
    for (int mi = 0; mi < (int)NMETHODS; mi++) {
      missing += res[z].m[mi].missing_rows;
      engine_s += res[z].m[mi].seconds;
      plans += res[z].m[mi].plans;
    }
  printf("\nengine   %ld hourly loops (each: telemetry of 2 x %d batteries, a meter reading, a forecast, two plans),\n"
         "         %.1f ms each on average; %ld dispatch rows missing\n",
         plans, nb, 1e3 * engine_s / (double)(plans ? plans : 1), missing);
  printf("run time %.1f s wall (one worker process per zone)\n", seconds);
}

/* The same figures as JSON. */
static void print_json(const zone_result *res, const bool *selected, double seconds) {
  battery fleet[MAX_BATTERIES];
  const int nb = peak_eval_fleet(fleet);
  const double full = peak_eval_cycle_kwh(fleet, nb);
  printf("{\"zones\": [");
  for (int z = 0; z < ZONES; z++) {
    const zone_result *r = &res[z];
    printf("%s\n {\"zone\": \"%s\", \"months\": [", z ? "," : "", peak_eval_zone_names[z]);
    for (int m = 0; m < r->nmonths; m++) {
      printf("%s\n  {\"month\": \"%04d-%02d\", \"full\": %s, \"peak_kw\": %.1f, \"rule_reduction_kw\": %.1f",
             m ? "," : "", r->month_key[m] / 12, r->month_key[m] % 12 + 1, r->month_full[m] ? "true" : "false",
             r->peak[m], reduction(r, r->rule_peak[m], m));
      for (int mi = 0; mi < (int)NMETHODS; mi++)
        if (selected[mi])
          printf(", \"%s\": {\"vpq_reduction_kw\": %.1f, \"perfect_reduction_kw\": %.1f}", methods[mi].name,
                 reduction(r, r->m[mi].net_peak[FLEET_VPQ][m], m),
                 reduction(r, r->m[mi].net_peak[FLEET_PERFECT][m], m));
      printf("}");
    }
    printf("],\n  \"methods\": {");
    bool first = true;
    for (int mi = 0; mi < (int)NMETHODS; mi++) {
      if (!selected[mi])
        continue;
      double peak, rule, red[FLEETS];
      yearly(r, mi, &peak, &rule, red);
      printf("%s\"%s\": {\"avg_peak_kw\": %.1f, \"vpq_avg_reduction_kw\": %.1f, \"perfect_avg_reduction_kw\": %.1f, "
             "\"vpq_share_of_perfect\": %.4f, \"vpq_cycles\": %.1f, \"perfect_cycles\": %.1f}",
             first ? "" : ", ", methods[mi].name, peak, red[FLEET_VPQ], red[FLEET_PERFECT],
             red[FLEET_VPQ] / red[FLEET_PERFECT], cycles(r->m[mi].discharged_kwh[FLEET_VPQ], full),
             cycles(r->m[mi].discharged_kwh[FLEET_PERFECT], full));
      first = false;
    }
    double peak, rule, red[FLEETS];
    yearly(r, 0, &peak, &rule, red);
    printf("},\n  \"rule_avg_reduction_kw\": %.1f, \"rule_cycles\": %.1f, \"forecast_mae_kw_by_step\": [", rule,
           cycles(r->rule_discharged_kwh, full));
    for (int k = 0; k < 24; k++) {
      if (r->errors[k])
        printf("%s%.1f", k ? ", " : "", r->abs_error[k] / (double)r->errors[k]);
      else
        printf("%snull", k ? ", " : "");
    }
    printf("]}");
  }
  printf("],\n \"run_seconds\": %.1f}\n", seconds);
}

/* Reads the data, scales each zone, runs the evaluation and prints it. */
int main(int argc, char **argv) {
  bool json = false, query = false, selected[MAX_METHODS];
  for (int mi = 0; mi < (int)NMETHODS; mi++)
    selected[mi] = methods[mi].by_default;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = true;
    else if (strcmp(argv[i], "--query") == 0)
      query = true;
    else if (strcmp(argv[i], "--methods") == 0 && i + 1 < argc) {
      for (int mi = 0; mi < (int)NMETHODS; mi++)
        selected[mi] = false;
      char *list = argv[++i], *save = NULL;
      for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int mi = 0; mi < (int)NMETHODS; mi++)
          if (strcmp(name, methods[mi].name) == 0)
            found = mi;
        if (found < 0)
          peak_eval_die("unknown method", name);
        selected[found] = true;
      }
    } else
      peak_eval_die(
          "usage: eval_schedule [--json] [--query] [--methods min-peak,48h,upper,floor,floor+hi,floor90,floor100]",
          NULL);
  }
  if (query) {
    char text[8192];
    for (int mi = 0; mi < (int)NMETHODS; mi++)
      if (selected[mi]) {
        method_query(&methods[mi], text, sizeof text);
        printf("%s\n", text);
      }
    return 0;
  }
  const double t0 = now();
  char path[4096];
  dataset d;
  peak_eval_read(&d, path, sizeof path);
  zone_result *results = malloc(sizeof *results * ZONES);
  if (!results)
    peak_eval_die("out of memory", NULL);
  peak_eval_run_zones(&d, run_zone, selected, results, sizeof results[0]);
  if (json)
    print_json(results, selected, now() - t0);
  else
    print_table(&d, results, selected, path, now() - t0);
  free(results);
  peak_eval_free(&d);
  return 0;
}
