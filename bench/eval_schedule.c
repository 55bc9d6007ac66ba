/* eval_schedule.c — peak-shaving evaluation of vpq's FORECAST + SCHEDULE modules on PJM load:
 * over the last 365 days of each zone of load_pjm.csv, scaled to a plant with a 10 MW yearly
 * peak, a ~2 MW / 4 MWh fleet of 2-hour batteries is dispatched hourly by three controllers, and
 * the monthly peaks of each net load are compared with those of the load.
 *
 *  vpq      receding horizon: every hour t, vpq_model's `linear` model (season 24 steps, fitted
 *           on the 60 days before t, refitted every hour) forecasts [t, t+24 h); vpq_sched plans
 *           MIN_PEAK over that horizon from the fleet's current soc; the first hour's setpoints
 *           are applied as they are (open loop: the batteries do not see the hour's actual load),
 *           and the next hour plans again.
 *  perfect  the same planner on the true load of [t, t+24 h) (perfect foresight).
 *  rule     fixed thresholds as in OpenEMS's peak-shaving controller: discharge by load − high
 *           above high, charge by low − load below low, within power and energy limits. At the
 *           month's start high = the median over the whole days (00:00–24:00 EST, so evening
 *           peaks are not cut in two) of the previous month of the level the fleet's deliverable
 *           energy ((0.95 − 0.10) × 3900 kWh × 0.95) and power could shave that day down to;
 *           during the month high ratchets up to the month's net peak so far (discharging below
 *           a peak already paid for buys nothing); low = LOW_FRACTION × high. A first version
 *           with the highest daily level and no ratchet shaved 0–1 %: its threshold lay above all
 *           of a cooler month's load, or emptied the fleet on the first day of a hotter one.
 *
 * The monthly memory of the planner. Demand charges bill the month's peak, and a 24-hour plan
 * does not see the peak M of the net load the month already has. The obvious fix — KEEP_BELOW
 * with cap = M, i.e. minimise max(0, peak − M) with the least throughput, which is MIN_PEAK
 * wherever the horizon cannot stay under M — was measured and is much worse here: vpq kept 7–21 %
 * of perfect foresight's average reduction, against 50–57 % with MIN_PEAK, and perfect foresight
 * itself did as well or better with MIN_PEAK (PJME 653 against 611 kW). KEEP_BELOW plans the net
 * load exactly up to M with as little energy as the forecast needs, so every under-forecast hour
 * raises M and the fleet holds no reserve for the next; MIN_PEAK shaves every horizon as deep as
 * the fleet allows, so on all but the month's worst days the planned level sits below M and the
 * gap absorbs forecast errors. The energy spent below M costs cycling (reported), not peak: the
 * fleet recharges overnight within the horizon. So both planners use MIN_PEAK and no M (MIN_PEAK
 * over max(forecast, M) was not tried: every hour under M would look like M, so recharging would
 * raise the planned peak). In the window's last 23 hours the horizon ends with the data.
 *
 * Batteries follow their setpoints exactly: stored energy changes by −p·Δt/eff discharging and
 * −p·Δt·eff charging, clamped to the soc limits. The fleet's batteries are proportional (same
 * C-rate, efficiency, limits and soc), so vpq_sched can merge them into one LP battery; it merges
 * only bit-equal socs, and the program counts the plans where rounding kept them apart.
 *
 * Months are UTC calendar months; the yearly averages are over the full calendar months of the
 * window (its first and last months are partial and marked '*').
 *
 *   gcc -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Iengine bench/eval_schedule.c \
 *       engine/vpq_model.c engine/vpq_sched.c -lglpk -lm -o eval_schedule
 *   VPQ_DATA=../shared/data ./eval_schedule [--json]      (reads $VPQ_DATA/load_pjm.csv, default
 *                                                          ../shared/data; run_schedule_eval.sh)
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vpq_model.h"
#include "vpq_sched.h"

#define HOUR_MS 3600000LL
#define PLANT_PEAK_KW 10000.0
#define EFFICIENCY 0.95
#define MIN_SOC 0.10
#define MAX_SOC 0.95
#define START_SOC 0.50
#define LOW_FRACTION 0.90
#define EST_OFFSET_H 5
#define STEP_H 1.0

enum {
  ZONES = 4,
  YEAR_H = 365 * 24,
  HORIZON = 24,
  HISTORY_H = 60 * 24,
  MAX_MONTHS = 14,
  CONTROLLERS = 3,
  MAX_BATTERIES = 256,
};

enum { CTRL_VPQ, CTRL_PERFECT, CTRL_RULE };

static const char *const zone_columns[ZONES] = {"pjme_mw", "aep_mw", "dayton_mw", "dom_mw"};
static const char *const zone_names[ZONES] = {"PJME", "AEP", "DAYTON", "DOM"};
static const char *const controller_names[CONTROLLERS] = {"vpq", "perfect", "rule"};

/* The fleet: count × (kW, kWh), all 2-hour batteries. */
static const struct {
  int count;
  double kw, kwh;
} fleet_kinds[] = {{40, 25, 50}, {60, 10, 20}, {70, 5, 10}};

/* The hourly load of every zone on a regular grid from ts0, in MW as read, then in kW scaled. */
typedef struct dataset {
  int64_t ts0;
  int n;
  double *load[ZONES];
} dataset;

/* One zone's outcome: plain data, so that a worker process can send it through a pipe. */
typedef struct zone_result {
  int nmonths;
  int month_key[MAX_MONTHS];  /* year × 12 + month (0-based) */
  bool month_full[MAX_MONTHS];
  double peak[MAX_MONTHS];                 /* of the load */
  double net_peak[CONTROLLERS][MAX_MONTHS]; /* of each controller's net load */
  double high[MAX_MONTHS];                  /* the rule's high threshold at the month's start */
  double discharged_kwh[CONTROLLERS];      /* energy delivered over the year */
  double mae_sum, mean_load;
  long mae_count;
  long plans, unmerged_plans, failed_plans;
  double plan_seconds, forecast_seconds;
} zone_result;

/* Monotonic wall time in seconds. */
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Prints a message and exits with status 1. */
static void die(const char *msg, const char *detail) {
  fprintf(stderr, "eval_schedule: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

/* year × 12 + month (0-based) of an epoch-ms time, UTC. */
static int month_key(int64_t ts) {
  time_t s = (time_t)(ts / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  return (tm.tm_year + 1900) * 12 + tm.tm_mon;
}

/* "YYYY-MM-DD HH:00" of an epoch-ms time, UTC. */
static void format_hour(int64_t ts, char *buf, size_t size) {
  time_t s = (time_t)(ts / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  strftime(buf, size, "%Y-%m-%d %H:00", &tm);
}

/* Reads load_pjm.csv onto an hourly grid from its first to its last timestamp; an hour without
 * a row or with an empty field takes the previous hour's value (NAN before the zone's first). */
static void read_data(const char *path, dataset *d) {
  FILE *f = fopen(path, "r");
  if (!f) die("cannot open", path);
  char line[512];
  if (!fgets(line, sizeof line, f) || strncmp(line, "ts,pjme_mw,aep_mw,dayton_mw,dom_mw", 33) != 0)
    die("unexpected header in", path);
  long pos = ftell(f);
  int64_t first = 0, last = 0;
  int rows = 0;
  while (fgets(line, sizeof line, f)) {
    int64_t ts = strtoll(line, NULL, 10);
    if (rows++ == 0) first = ts;
    if (ts <= last && rows > 1) die("timestamps not increasing in", path);
    last = ts;
  }
  if (rows == 0 || (last - first) % HOUR_MS != 0) die("no hourly rows in", path);
  d->ts0 = first;
  d->n = (int)((last - first) / HOUR_MS) + 1;
  for (int z = 0; z < ZONES; z++) {
    d->load[z] = malloc(sizeof(double) * (size_t)d->n);
    if (!d->load[z]) die("out of memory", NULL);
    for (int i = 0; i < d->n; i++) d->load[z][i] = NAN;
  }
  fseek(f, pos, SEEK_SET);
  while (fgets(line, sizeof line, f)) {
    char *p = line;
    const int64_t ts = strtoll(p, &p, 10);
    if ((ts - first) % HOUR_MS != 0) die("timestamp off the hourly grid in", path);
    const int i = (int)((ts - first) / HOUR_MS);
    for (int z = 0; z < ZONES && *p == ','; z++) {
      char *end;
      const double v = strtod(++p, &end);
      if (end != p) d->load[z][i] = v;
      p = end;
    }
  }
  fclose(f);
  for (int z = 0; z < ZONES; z++)
    for (int i = 1; i < d->n; i++)
      if (isnan(d->load[z][i])) d->load[z][i] = d->load[z][i - 1];
}

/* The fleet of fleet_kinds, every battery at START_SOC; returns the number of batteries. */
static int make_fleet(vpq_sched_battery *b) {
  int n = 0;
  for (size_t k = 0; k < sizeof fleet_kinds / sizeof fleet_kinds[0]; k++)
    for (int i = 0; i < fleet_kinds[k].count && n < MAX_BATTERIES; i++)
      b[n++] = (vpq_sched_battery){START_SOC, fleet_kinds[k].kwh, fleet_kinds[k].kw, EFFICIENCY, MIN_SOC, MAX_SOC};
  return n;
}

/* Applies one hour of setpoints (kW, + discharge) to the batteries: each is clamped to the
 * battery's power and its stored energy to the soc limits. Returns the fleet's actual power. */
static double apply(vpq_sched_battery *b, int n, const double *setpoint) {
  double total = 0.0;
  for (int i = 0; i < n; i++) {
    const double max = b[i].max_kw, cap = b[i].capacity_kwh;
    double p = fmin(fmax(setpoint[i], -max), max);
    const double e = b[i].soc * cap, lo = b[i].min_soc * cap, hi = b[i].max_soc * cap;
    double next = p >= 0 ? e - p * STEP_H / b[i].efficiency : e - p * STEP_H * b[i].efficiency;
    if (next < lo && p > 0) {
      next = fmin(e, lo);
      p = (e - next) * b[i].efficiency / STEP_H;
    } else if (next > hi && p < 0) {
      next = fmax(e, hi);
      p = -(next - e) / (b[i].efficiency * STEP_H);
    }
    b[i].soc = next / cap;
    total += p;
  }
  return total;
}

/* Number of distinct socs in the fleet (1 when vpq_sched can merge every battery into one). */
static int distinct_socs(const vpq_sched_battery *b, int n) {
  int distinct = 0;
  for (int i = 0; i < n; i++) {
    int seen = 0;
    for (int j = 0; j < i && !seen; j++) seen = b[j].soc == b[i].soc;
    distinct += !seen;
  }
  return distinct;
}

/* Plans MIN_PEAK over load[0..h) from the fleet's soc and applies the first hour's setpoints;
 * returns the fleet's power. */
static double plan_and_apply(vpq_sched_battery *b, int n, const double *load, int h, zone_result *r,
                             double *setpoints, double *socs, double *first) {
  const vpq_sched_problem pr = {VPQ_SCHED_MIN_PEAK, b, n, load, NULL, h, STEP_H, 0};
  vpq_sched_plan plan = {setpoints, socs, 0, 0, false};
  char err[256];
  const double t0 = now();
  r->unmerged_plans += distinct_socs(b, n) > 1;
  if (vpq_sched_solve(&pr, &plan, err, sizeof err) != 0) r->failed_plans++;
  r->plan_seconds += now() - t0;
  r->plans++;
  for (int i = 0; i < n; i++) first[i] = setpoints[(size_t)i * (size_t)h];
  return apply(b, n, first);
}

/* The fleet's energy from full to empty, delivered (kWh): one equivalent full cycle. */
static double cycle_kwh(double fleet_kwh) { return fleet_kwh * (MAX_SOC - MIN_SOC) * EFFICIENCY; }

/* The lowest level a day's hourly loads x[0..h) can be shaved to with `energy` kWh and `power`
 * kW delivered: the smallest L ≥ max − power with Σ max(0, x − L) ≤ energy (bisection). */
static double shave_level(const double *x, int h, double energy, double power) {
  double top = -INFINITY;
  for (int i = 0; i < h; i++) top = fmax(top, x[i]);
  double lo = top - power, hi = top;
  for (int it = 0; it < 60; it++) {
    const double mid = 0.5 * (lo + hi);
    double above = 0.0;
    for (int i = 0; i < h; i++) above += fmax(0.0, x[i] - mid) * STEP_H;
    if (above <= energy) hi = mid;
    else lo = mid;
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
  const int key = month_key(d->ts0 + (int64_t)t * HOUR_MS);
  while (t > 0 && month_key(d->ts0 + (int64_t)(t - 1) * HOUR_MS) == key) t--;
  return t;
}

/* The rule's high threshold for the month holding index t of the load: the median of the shave
 * levels of the whole days (00:00 to 24:00 EST) inside the previous month. */
static double rule_threshold(const dataset *d, const double *load, int t, double energy, double power) {
  const int start = month_start(d, t);
  int i = month_start(d, start - 1);
  while ((d->ts0 / HOUR_MS + i - EST_OFFSET_H) % 24 != 0) i++; /* the month's first 00:00 EST */
  double levels[32];
  int days = 0;
  for (; i + 24 <= start && days < 32; i += 24) levels[days++] = shave_level(&load[i], 24, energy, power);
  if (days == 0) die("no whole day in the month before", NULL);
  qsort(levels, (size_t)days, sizeof levels[0], compare_doubles);
  return 0.5 * (levels[(days - 1) / 2] + levels[days / 2]);
}

/* Simulates the three controllers over the last YEAR_H hours of zone z. */
static void run_zone(const dataset *d, int z, zone_result *r) {
  memset(r, 0, sizeof *r);
  const double *y = d->load[z];
  const int start = d->n - YEAR_H;
  vpq_sched_battery fleet[CONTROLLERS][MAX_BATTERIES];
  int nb = 0;
  for (int c = 0; c < CONTROLLERS; c++) nb = make_fleet(fleet[c]);
  double power = 0.0, capacity = 0.0;
  for (int i = 0; i < nb; i++) {
    power += fleet[0][i].max_kw;
    capacity += fleet[0][i].capacity_kwh;
  }
  const double energy = cycle_kwh(capacity);
  vpq_model_config cfg = vpq_model_defaults(VPQ_MODEL_LINEAR);
  cfg.step_ms = HOUR_MS;
  cfg.season = 24;
  vpq_model *model = vpq_model_new(&cfg);
  double *setpoints = malloc(sizeof(double) * (size_t)nb * HORIZON * 2), *first = malloc(sizeof(double) * (size_t)nb);
  if (!model || !setpoints || !first) die("out of memory", NULL);
  double *socs = setpoints + (size_t)nb * HORIZON, forecast[HORIZON], rule_peak = 0.0;
  int m = -1;
  for (int t = start; t < d->n; t++) {
    const int key = month_key(d->ts0 + (int64_t)t * HOUR_MS);
    if (m < 0 || key != r->month_key[m]) {
      if (++m >= MAX_MONTHS) die("too many months", NULL);
      r->month_key[m] = key;
      r->month_full[m] = t == start ? month_key(d->ts0 + (int64_t)(t - 1) * HOUR_MS) != key : true;
      r->peak[m] = -INFINITY;
      for (int c = 0; c < CONTROLLERS; c++) r->net_peak[c][m] = -INFINITY;
      r->high[m] = rule_threshold(d, y, t, energy, power);
      rule_peak = 0.0;
    }
    const int h = d->n - t < HORIZON ? d->n - t : HORIZON;
    const vpq_series history = {d->ts0 + (int64_t)(t - HISTORY_H) * HOUR_MS, &y[t - HISTORY_H], NULL, HISTORY_H};
    double t0 = now();
    vpq_model_fit(model, &history);
    vpq_model_predict(model, &history, NULL, h, forecast);
    r->forecast_seconds += now() - t0;
    for (int k = 0; k < h; k++) r->mae_sum += fabs(forecast[k] - y[t + k]);
    r->mae_count += h;
    r->mean_load += y[t] / YEAR_H;

    double out[CONTROLLERS];
    out[CTRL_VPQ] = plan_and_apply(fleet[CTRL_VPQ], nb, forecast, h, r, setpoints, socs, first);
    out[CTRL_PERFECT] = plan_and_apply(fleet[CTRL_PERFECT], nb, &y[t], h, r, setpoints, socs, first);
    const double high = fmax(r->high[m], rule_peak), low = LOW_FRACTION * high;
    const double want = y[t] > high ? y[t] - high : y[t] < low ? -(low - y[t]) : 0.0;
    for (int i = 0; i < nb; i++) first[i] = want * fleet[CTRL_RULE][i].capacity_kwh / capacity;
    out[CTRL_RULE] = apply(fleet[CTRL_RULE], nb, first);
    rule_peak = fmax(rule_peak, y[t] - out[CTRL_RULE]);

    r->peak[m] = fmax(r->peak[m], y[t]);
    for (int c = 0; c < CONTROLLERS; c++) {
      r->net_peak[c][m] = fmax(r->net_peak[c][m], y[t] - out[c]);
      r->discharged_kwh[c] += fmax(out[c], 0.0) * STEP_H;
    }
  }
  r->nmonths = m + 1;
  r->month_full[m] = month_key(d->ts0 + (int64_t)d->n * HOUR_MS) != r->month_key[m];
  vpq_model_free(model);
  free(setpoints);
  free(first);
}

/* Runs every zone in its own worker process (so two cores are used) and collects the results
 * through pipes; the results do not depend on the scheduling. */
static void run_all(const dataset *d, zone_result *results) {
  int fds[ZONES][2];
  pid_t pids[ZONES];
  for (int z = 0; z < ZONES; z++) {
    if (pipe(fds[z]) != 0) die("pipe failed", NULL);
    fflush(NULL);
    pids[z] = fork();
    if (pids[z] < 0) die("fork failed", NULL);
    if (pids[z] == 0) {
      close(fds[z][0]);
      zone_result r;
      run_zone(d, z, &r);
      const char *p = (const char *)&r;
      size_t left = sizeof r;
      while (left > 0) {
        const ssize_t w = write(fds[z][1], p, left);
        if (w <= 0) _exit(1);
        p += w, left -= (size_t)w;
      }
      _exit(0);
    }
    close(fds[z][1]);
  }
  for (int z = 0; z < ZONES; z++) {
    char *p = (char *)&results[z];
    size_t left = sizeof results[z];
    while (left > 0) {
      const ssize_t got = read(fds[z][0], p, left);
      if (got <= 0) die("a worker failed for zone", zone_names[z]);
      p += got, left -= (size_t)got;
    }
    close(fds[z][0]);
    int status;
    waitpid(pids[z], &status, 0);
  }
}

/* Reduction of controller c in month m, kW. */
static double reduction(const zone_result *r, int c, int m) { return r->peak[m] - r->net_peak[c][m]; }

/* Averages over the full months of zone r: the peak and each controller's reduction. */
static void yearly(const zone_result *r, double *peak, double *red) {
  int full = 0;
  *peak = 0.0;
  for (int c = 0; c < CONTROLLERS; c++) red[c] = 0.0;
  for (int m = 0; m < r->nmonths; m++) {
    if (!r->month_full[m]) continue;
    full++;
    *peak += r->peak[m];
    for (int c = 0; c < CONTROLLERS; c++) red[c] += reduction(r, c, m);
  }
  *peak /= full;
  for (int c = 0; c < CONTROLLERS; c++) red[c] /= full;
}

/* The human-readable report. */
static void print_table(const dataset *d, const zone_result *res, double fleet_kw, double fleet_kwh, int nb,
                        const char *path, double seconds) {
  char from[32], to[32];
  format_hour(d->ts0 + (int64_t)(d->n - YEAR_H) * HOUR_MS, from, sizeof from);
  format_hour(d->ts0 + (int64_t)(d->n - 1) * HOUR_MS, to, sizeof to);
  printf("vpq peak-shaving evaluation — %s\n", path);
  printf("data     last 365 days of each PJM zone, hours %s .. %s UTC (hour starts); a missing\n"
         "         hour takes the previous value; each zone scaled to a plant with a %.0f kW yearly peak\n",
         from, to, PLANT_PEAK_KW);
  printf("fleet    ");
  for (size_t k = 0; k < sizeof fleet_kinds / sizeof fleet_kinds[0]; k++)
    printf("%s%d x %g kW/%g kWh", k ? " + " : "", fleet_kinds[k].count, fleet_kinds[k].kw, fleet_kinds[k].kwh);
  printf(" = %d batteries, %.0f kW / %.0f kWh, all 2-hour;\n", nb, fleet_kw, fleet_kwh);
  printf("         one-way efficiency %.2f, soc %.2f..%.2f, start %.2f; hourly steps; setpoints followed exactly\n",
         EFFICIENCY, MIN_SOC, MAX_SOC, START_SOC);
  printf("vpq      every hour t: vpq_model linear (season 24 h, fitted on the 60 days before t, refitted every\n"
         "         hour) forecasts [t, t+24 h); vpq_sched MIN_PEAK over it from the fleet's soc; the first\n"
         "         hour's setpoints applied open loop (receding horizon). MIN_PEAK, not KEEP_BELOW with cap =\n"
         "         the month's net peak so far: see the header of bench/eval_schedule.c\n");
  printf("perfect  the same planner on the true load of [t, t+24 h)\n");
  printf("rule     OpenEMS-style thresholds: discharge by load - high above high, charge by low - load below\n"
         "         low; high starts the month at the median over the previous month's days (00:00 EST) of\n"
         "         the level the fleet could shave the day to, ratchets up to the month's net peak so far;\n"
         "         low = %.2f x high\n",
         LOW_FRACTION);
  printf("months   UTC calendar months; '*' = partial, left out of the yearly averages\n\n");

  for (int z = 0; z < ZONES; z++) {
    const zone_result *r = &res[z];
    printf("%-7s  month     peak kW |    vpq kW      %% | perfect kW      %% |   rule kW      %% | rule start high kW\n",
           zone_names[z]);
    for (int m = 0; m < r->nmonths; m++) {
      printf("         %04d-%02d%c %8.0f |", r->month_key[m] / 12, r->month_key[m] % 12 + 1,
             r->month_full[m] ? ' ' : '*', r->peak[m]);
      for (int c = 0; c < CONTROLLERS; c++)
        printf(" %9.0f %6.1f |", reduction(r, c, m), 100.0 * reduction(r, c, m) / r->peak[m]);
      printf(" %8.0f\n", r->high[m]);
    }
    printf("\n");
  }

  printf("yearly summary: monthly peak reduction averaged over the full months\n");
  printf("zone     avg peak kW |    vpq kW      %% | perfect kW      %% |   rule kW      %% | vpq/perfect | "
         "forecast MAE | cycles vpq/perfect/rule\n");
  for (int z = 0; z < ZONES; z++) {
    const zone_result *r = &res[z];
    double peak, red[CONTROLLERS];
    yearly(r, &peak, red);
    printf("%-7s  %11.0f |", zone_names[z], peak);
    for (int c = 0; c < CONTROLLERS; c++) printf(" %9.0f %6.1f |", red[c], 100.0 * red[c] / peak);
    const double mae = r->mae_sum / (double)r->mae_count;
    printf(" %10.1f%% | %3.0f kW %4.1f%% | %4.0f / %4.0f / %4.0f\n", 100.0 * red[CTRL_VPQ] / red[CTRL_PERFECT], mae,
           100.0 * mae / r->mean_load, r->discharged_kwh[CTRL_VPQ] / cycle_kwh(fleet_kwh),
           r->discharged_kwh[CTRL_PERFECT] / cycle_kwh(fleet_kwh), r->discharged_kwh[CTRL_RULE] / cycle_kwh(fleet_kwh));
  }
  printf("vpq/perfect: vpq's average reduction as a share of perfect foresight's (target >= 85%%)\n"
         "forecast MAE: of every hourly 24-hour forecast over all its horizons, kW and %% of the mean load\n"
         "cycles: energy delivered over the year / (%.0f kWh x (%.2f - %.2f) x %.2f)\n\n",
         fleet_kwh, MAX_SOC, MIN_SOC, EFFICIENCY);
  long plans = 0, unmerged = 0, failed = 0;
  double plan_s = 0, fc_s = 0;
  for (int z = 0; z < ZONES; z++) {
    plans += res[z].plans, unmerged += res[z].unmerged_plans, failed += res[z].failed_plans;
    plan_s += res[z].plan_seconds, fc_s += res[z].forecast_seconds;
  }
  printf("plans    %ld vpq_sched solves, %.2f ms each on average; %ld failed; in %ld the socs were not all\n"
         "         bit-equal (rounding), so the fleet was 2-3 LP batteries instead of 1\n",
         plans, 1e3 * plan_s / (double)plans, failed, unmerged);
  printf("forecast %d fits + predictions, %.2f ms each on average\n", ZONES * YEAR_H, 1e3 * fc_s / (ZONES * YEAR_H));
  printf("run time %.1f s wall (one worker process per zone)\n", seconds);
}

/* The same figures as JSON. */
static void print_json(const zone_result *res, double fleet_kwh, double seconds) {
  printf("{\"zones\": [");
  for (int z = 0; z < ZONES; z++) {
    const zone_result *r = &res[z];
    double peak, red[CONTROLLERS];
    yearly(r, &peak, red);
    printf("%s\n {\"zone\": \"%s\", \"months\": [", z ? "," : "", zone_names[z]);
    for (int m = 0; m < r->nmonths; m++) {
      printf("%s\n  {\"month\": \"%04d-%02d\", \"full\": %s, \"peak_kw\": %.1f", m ? "," : "", r->month_key[m] / 12,
             r->month_key[m] % 12 + 1, r->month_full[m] ? "true" : "false", r->peak[m]);
      for (int c = 0; c < CONTROLLERS; c++) printf(", \"%s_reduction_kw\": %.1f", controller_names[c], reduction(r, c, m));
      printf(", \"rule_start_high_kw\": %.1f}", r->high[m]);
    }
    printf("],\n  \"avg_peak_kw\": %.1f", peak);
    for (int c = 0; c < CONTROLLERS; c++)
      printf(", \"%s_avg_reduction_kw\": %.1f, \"%s_cycles\": %.1f", controller_names[c], red[c], controller_names[c],
             r->discharged_kwh[c] / cycle_kwh(fleet_kwh));
    printf(", \"vpq_share_of_perfect\": %.4f, \"forecast_mae_kw\": %.1f, \"plans\": %ld, \"failed_plans\": %ld}",
           red[CTRL_VPQ] / red[CTRL_PERFECT], r->mae_sum / (double)r->mae_count, r->plans, r->failed_plans);
  }
  printf("],\n \"run_seconds\": %.1f}\n", seconds);
}

/* Reads the data, scales each zone, runs the evaluation and prints it. */
int main(int argc, char **argv) {
  bool json = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0) json = true;
    else die("usage: eval_schedule [--json]", NULL);
  }
  const double t0 = now();
  const char *dir = getenv("VPQ_DATA");
  char path[4096];
  snprintf(path, sizeof path, "%s/load_pjm.csv", dir && *dir ? dir : "../shared/data");
  dataset d;
  read_data(path, &d);
  if (d.n < YEAR_H + HISTORY_H + 31 * 24) die("fewer hours than a year plus its history in", path);
  const int start = d.n - YEAR_H;
  for (int z = 0; z < ZONES; z++) {
    double max = -INFINITY;
    for (int i = start; i < d.n; i++) max = fmax(max, d.load[z][i]);
    for (int i = 0; i < d.n; i++) {
      if (i >= start - HISTORY_H - 32 * 24 && !isfinite(d.load[z][i])) die("missing data before the year for", zone_columns[z]);
      d.load[z][i] *= PLANT_PEAK_KW / max;
    }
  }
  zone_result results[ZONES];
  run_all(&d, results);
  vpq_sched_battery fleet[MAX_BATTERIES];
  const int nb = make_fleet(fleet);
  double kw = 0.0, kwh = 0.0;
  for (int i = 0; i < nb; i++) kw += fleet[i].max_kw, kwh += fleet[i].capacity_kwh;
  if (json) print_json(results, kwh, now() - t0);
  else print_table(&d, results, kw, kwh, nb, path, now() - t0);
  for (int z = 0; z < ZONES; z++) free(d.load[z]);
  return 0;
}
