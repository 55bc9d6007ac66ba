/* schedule_gap.c — where the gap between vpq's closed loop and perfect foresight comes from
 * (bench/eval_schedule.c measures the gap through the engine; this study takes it apart). It
 * runs the loop of eval_schedule's `min-peak` method with the modules behind the operators —
 * vpq_model's `linear` forecast (season 24 h, the 60 days before the hour, refitted every
 * hour, as FORECAST calls it) and vpq_sched's MIN_PEAK on the same mixed fleet — and plans on
 * load series between the forecast and the truth:
 *
 *   perfect       the actual load of the horizon (24 h; also 12 and 48 h)
 *   vpq           vpq's forecast (24 h; also 12 and 48 h)
 *   step0 only    the actual load except the hour being dispatched (step 0): vpq's forecast
 *   rest only     vpq's forecast except step 0: the actual load
 *   errors x a    actual + a × (forecast − actual) at every step, a = 0.75, 0.5, 0.25
 *
 * and prints each one's average monthly peak reduction (full UTC months of the last year of
 * each PJM zone) and its share of perfect foresight's over 24 h. The fleet follows the first
 * hour's setpoints exactly, as in eval_schedule.c; `vpq` should come out as eval_schedule's
 * min-peak does through the engine (which rounds setpoints to watts).
 *
 *   cmake --build build --target schedule_gap
 *   VPQ_DATA=../shared/data build/schedule_gap        (bench/run_schedule_eval.sh --gap)
 */
#include <stdbool.h>

#include "peak_eval.h"
#include "vpq_model.h"
#include "vpq_sched.h"

enum { MAX_HORIZON = 48, MAX_MONTHS = 14 };

/* What a plan's load is made of. */
typedef enum source { SRC_ACTUAL, SRC_FORECAST, SRC_STEP0_FORECAST, SRC_STEP0_ACTUAL, SRC_SCALED } source;

typedef struct experiment {
  const char *name;
  source src;
  double scale; /* SRC_SCALED: the share of the forecast's error kept */
  int horizon_h;
} experiment;

static const experiment experiments[] = {
    {"perfect 24 h", SRC_ACTUAL, 0, 24},
    {"vpq 24 h", SRC_FORECAST, 0, 24},
    {"step0 only: forecast, rest actual", SRC_STEP0_FORECAST, 0, 24},
    {"rest only: step 0 actual", SRC_STEP0_ACTUAL, 0, 24},
    {"errors x 0.75", SRC_SCALED, 0.75, 24},
    {"errors x 0.5", SRC_SCALED, 0.5, 24},
    {"errors x 0.25", SRC_SCALED, 0.25, 24},
    {"perfect 12 h", SRC_ACTUAL, 0, 12},
    {"perfect 48 h", SRC_ACTUAL, 0, 48},
    {"vpq 12 h", SRC_FORECAST, 0, 12},
    {"vpq 48 h", SRC_FORECAST, 0, 48},
};
enum { EXPERIMENTS = sizeof experiments / sizeof experiments[0] };

/* Per zone: each experiment's average monthly reduction over the full months (kW). */
typedef struct zone_result {
  double reduction[EXPERIMENTS];
} zone_result;

/* vpq's forecast of the 48 hours from every hour of the year: YEAR_H × MAX_HORIZON values. */
static double *forecasts(const dataset *d, int z) {
  const double *y = d->load[z];
  const int start = d->n - PEAK_EVAL_YEAR_H, history = 60 * 24;
  double *fc = malloc(sizeof(double) * (size_t)PEAK_EVAL_YEAR_H * MAX_HORIZON);
  vpq_model_config cfg = vpq_model_defaults(VPQ_MODEL_LINEAR);
  cfg.step_ms = PEAK_EVAL_HOUR_MS;
  cfg.season = 24;
  vpq_model *model = vpq_model_new(&cfg);
  if (!fc || !model)
    peak_eval_die("out of memory", NULL);
  for (int t = start; t < d->n; t++) {
    const vpq_series s = {d->ts0 + (int64_t)(t - history) * PEAK_EVAL_HOUR_MS, &y[t - history], NULL, history};
    vpq_model_fit(model, &s);
    vpq_model_predict(model, &s, NULL, MAX_HORIZON, &fc[(size_t)(t - start) * MAX_HORIZON]);
  }
  vpq_model_free(model);
  return fc;
}

/* The load experiment e plans on at step k of hour t (index i in the year). */
static double plan_load(const experiment *e, const double *y, const double *fc, int t, int i, int k) {
  const double actual = y[t + k], forecast = fc[(size_t)i * MAX_HORIZON + (size_t)k];
  switch (e->src) {
  case SRC_ACTUAL:
    return actual;
  case SRC_FORECAST:
    return forecast;
  case SRC_STEP0_FORECAST:
    return k == 0 ? forecast : actual;
  case SRC_STEP0_ACTUAL:
    return k == 0 ? actual : forecast;
  case SRC_SCALED:
    return actual + e->scale * (forecast - actual);
  }
  return actual;
}

/* Runs experiment e over the year of zone z; returns its average monthly reduction. */
static double run_experiment(const dataset *d, int z, const double *fc, const experiment *e) {
  const double *y = d->load[z];
  const int start = d->n - PEAK_EVAL_YEAR_H;
  battery fleet[PEAK_EVAL_MAX_BATTERIES];
  vpq_sched_battery planned[PEAK_EVAL_MAX_BATTERIES];
  const int nb = peak_eval_fleet(fleet);
  double *setpoints = malloc(sizeof(double) * (size_t)nb * MAX_HORIZON * 2), first[PEAK_EVAL_MAX_BATTERIES];
  if (!setpoints)
    peak_eval_die("out of memory", NULL);
  double *socs = setpoints + (size_t)nb * MAX_HORIZON, load[MAX_HORIZON];
  double peak[MAX_MONTHS], net_peak[MAX_MONTHS];
  bool full[MAX_MONTHS];
  int key[MAX_MONTHS], m = -1;
  for (int t = start; t < d->n; t++) {
    const int month = peak_eval_month(d->ts0 + (int64_t)t * PEAK_EVAL_HOUR_MS);
    if (m < 0 || month != key[m]) {
      if (++m >= MAX_MONTHS)
        peak_eval_die("too many months", NULL);
      key[m] = month;
      full[m] = m > 0;
      peak[m] = net_peak[m] = -INFINITY;
    }
    const int h = d->n - t < e->horizon_h ? d->n - t : e->horizon_h;
    for (int k = 0; k < h; k++)
      load[k] = plan_load(e, y, fc, t, t - start, k);
    for (int b = 0; b < nb; b++)
      planned[b] = (vpq_sched_battery){fleet[b].soc,        fleet[b].capacity_kwh, fleet[b].max_kw,
                                       fleet[b].efficiency, PEAK_EVAL_MIN_SOC,     PEAK_EVAL_MAX_SOC};
    const vpq_sched_problem problem = {VPQ_SCHED_MIN_PEAK, planned, nb, load, NULL, h, PEAK_EVAL_STEP_H, 0};
    vpq_sched_plan plan = {setpoints, socs, 0, 0, false};
    char err[256];
    if (vpq_sched_solve(&problem, &plan, err, sizeof err) != 0)
      peak_eval_die("vpq_sched_solve failed", err);
    for (int b = 0; b < nb; b++)
      first[b] = setpoints[(size_t)b * (size_t)h];
    const double out = peak_eval_apply(fleet, nb, first);
    peak[m] = fmax(peak[m], y[t]);
    net_peak[m] = fmax(net_peak[m], y[t] - out);
  }
  free(setpoints);
  full[m] = false; /* the year's last month is partial */
  double sum = 0.0;
  int months = 0;
  for (int i = 0; i <= m; i++)
    if (full[i]) {
      sum += peak[i] - net_peak[i];
      months++;
    }
  return sum / months;
}

/* Every experiment for zone z (peak_eval_run_zones' worker; ctx unused). */
static void run_zone(const dataset *d, int z, const void *ctx, void *result) {
  (void)ctx;
  zone_result *r = result;
  double *fc = forecasts(d, z);
  for (int e = 0; e < (int)EXPERIMENTS; e++)
    r->reduction[e] = run_experiment(d, z, fc, &experiments[e]);
  free(fc);
}

/* Reads the data, runs the study and prints its table. */
int main(int argc, char **argv) {
  (void)argv;
  if (argc > 1)
    peak_eval_die("usage: schedule_gap (reads $VPQ_DATA/load_pjm.csv)", NULL);
  char path[4096];
  dataset d;
  peak_eval_read(&d, path, sizeof path);
  zone_result results[PEAK_EVAL_ZONES];
  peak_eval_run_zones(&d, run_zone, NULL, results, sizeof results[0]);
  printf("where vpq's peak-shaving gap comes from — %s, last 365 days, MIN_PEAK, the fleet of eval_schedule.c\n", path);
  printf("average monthly peak reduction over the full months, kW; share = of perfect foresight over 24 h\n\n");
  printf("%-36s", "plans on");
  for (int z = 0; z < PEAK_EVAL_ZONES; z++)
    printf(" %7s", peak_eval_zone_names[z]);
  printf("    mean   share\n");
  double perfect = 0.0;
  for (int z = 0; z < PEAK_EVAL_ZONES; z++)
    perfect += results[z].reduction[0] / PEAK_EVAL_ZONES;
  for (int e = 0; e < (int)EXPERIMENTS; e++) {
    double mean = 0.0;
    printf("%-36s", experiments[e].name);
    for (int z = 0; z < PEAK_EVAL_ZONES; z++) {
      printf(" %7.0f", results[z].reduction[e]);
      mean += results[z].reduction[e] / PEAK_EVAL_ZONES;
    }
    printf(" %7.0f %6.1f%%\n", mean, 100.0 * mean / perfect);
  }
  peak_eval_free(&d);
  return 0;
}
