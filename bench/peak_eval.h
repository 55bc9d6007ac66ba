/* peak_eval.h — what the peak-shaving benchmarks share (bench/eval_schedule.c, the closed loop
 * through the engine, and bench/schedule_gap.c, the study of where its gap comes from): the
 * PJM load of load_pjm.csv on an hourly grid scaled to a 10 MW plant, the mixed battery fleet
 * and how a battery follows a setpoint. Static inline functions: each program includes it once.
 *
 *   dataset   ts0, n hours; load[zone][i] in kW, the last PEAK_EVAL_YEAR_H hours peaking at
 *             PEAK_EVAL_PLANT_KW
 *   battery   soc, capacity_kwh, max_kw, efficiency; limits PEAK_EVAL_MIN_SOC..MAX_SOC
 */
#ifndef PEAK_EVAL_H
#define PEAK_EVAL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PEAK_EVAL_HOUR_MS 3600000LL
#define PEAK_EVAL_PLANT_KW 10000.0
#define PEAK_EVAL_MIN_SOC 0.10
#define PEAK_EVAL_MAX_SOC 0.95
#define PEAK_EVAL_START_SOC 0.50
#define PEAK_EVAL_STEP_H 1.0

enum {
  PEAK_EVAL_ZONES = 4,
  PEAK_EVAL_YEAR_H = 365 * 24,
  PEAK_EVAL_HISTORY_H = 61 * 24, /* hours before the year a forecast may read (FORECAST keeps 60 days) */
  PEAK_EVAL_MAX_BATTERIES = 256,
};

static const char *const peak_eval_zone_columns[PEAK_EVAL_ZONES] = {"pjme_mw", "aep_mw", "dayton_mw", "dom_mw"};
static const char *const peak_eval_zone_names[PEAK_EVAL_ZONES] = {"PJME", "AEP", "DAYTON", "DOM"};

/* The fleet: count × (kW, kWh, one-way efficiency) — commercial 1-hour and 2-hour units and
 * home batteries, ~2 MW / 4 MWh. */
static const struct {
  int count;
  double kw, kwh, efficiency;
  const char *what;
} peak_eval_fleet_kinds[] = {
    {4, 150, 150, 0.96, "commercial 1 h"},
    {8, 100, 215, 0.95, "commercial 2.15 h"},
    {120, 5, 13.5, 0.92, "home 2.7 h"},
};
enum { PEAK_EVAL_KINDS = sizeof peak_eval_fleet_kinds / sizeof peak_eval_fleet_kinds[0] };

/* The hourly load of every zone on a regular grid from ts0, in kW after peak_eval_read. */
typedef struct dataset {
  int64_t ts0;
  int n;
  double *load[PEAK_EVAL_ZONES];
} dataset;

/* A simulated battery. */
typedef struct battery {
  double soc, capacity_kwh, max_kw, efficiency;
} battery;

/* Prints a message and exits with status 1. */
static inline void peak_eval_die(const char *msg, const char *detail) {
  fprintf(stderr, "%s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

/* year × 12 + month (0-based) of an epoch-ms time, UTC. */
static inline int peak_eval_month(int64_t ts) {
  time_t s = (time_t)(ts / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  return (tm.tm_year + 1900) * 12 + tm.tm_mon;
}

/* Reads $VPQ_DATA/load_pjm.csv (default ../shared/data) onto an hourly grid from its first to
 * its last timestamp — an hour without a row or with an empty field takes the previous hour's
 * value — and scales each zone so that its last year peaks at PEAK_EVAL_PLANT_KW. Writes the
 * file's path into path[0..size). Dies on unreadable data or a year without its history. */
static inline void peak_eval_read(dataset *d, char *path, size_t size) {
  const char *dir = getenv("VPQ_DATA");
  snprintf(path, size, "%s/load_pjm.csv", dir && *dir ? dir : "../shared/data");
  FILE *f = fopen(path, "r");
  if (!f)
    peak_eval_die("cannot open", path);
  char line[512];
  if (!fgets(line, sizeof line, f) || strncmp(line, "ts,pjme_mw,aep_mw,dayton_mw,dom_mw", 33) != 0)
    peak_eval_die("unexpected header in", path);
  long pos = ftell(f);
  int64_t first = 0, last = 0;
  int rows = 0;
  while (fgets(line, sizeof line, f)) {
    int64_t ts = strtoll(line, NULL, 10);
    if (rows++ == 0)
      first = ts;
    if (ts <= last && rows > 1)
      peak_eval_die("timestamps not increasing in", path);
    last = ts;
  }
  if (rows == 0 || (last - first) % PEAK_EVAL_HOUR_MS != 0)
    peak_eval_die("no hourly rows in", path);
  d->ts0 = first;
  d->n = (int)((last - first) / PEAK_EVAL_HOUR_MS) + 1;
  for (int z = 0; z < PEAK_EVAL_ZONES; z++) {
    d->load[z] = malloc(sizeof(double) * (size_t)d->n);
    if (!d->load[z])
      peak_eval_die("out of memory", NULL);
    for (int i = 0; i < d->n; i++)
      d->load[z][i] = NAN;
  }
  fseek(f, pos, SEEK_SET);
  while (fgets(line, sizeof line, f)) {
    char *p = line;
    const int64_t ts = strtoll(p, &p, 10);
    if ((ts - first) % PEAK_EVAL_HOUR_MS != 0)
      peak_eval_die("timestamp off the hourly grid in", path);
    const int i = (int)((ts - first) / PEAK_EVAL_HOUR_MS);
    for (int z = 0; z < PEAK_EVAL_ZONES && *p == ','; z++) {
      char *end;
      const double v = strtod(++p, &end);
      if (end != p)
        d->load[z][i] = v;
      p = end;
    }
  }
  fclose(f);
  if (d->n < PEAK_EVAL_YEAR_H + PEAK_EVAL_HISTORY_H + 32 * 24)
    peak_eval_die("fewer hours than a year plus its history in", path);
  const int start = d->n - PEAK_EVAL_YEAR_H;
  for (int z = 0; z < PEAK_EVAL_ZONES; z++) {
    for (int i = 1; i < d->n; i++)
      if (isnan(d->load[z][i]))
        d->load[z][i] = d->load[z][i - 1];
    double max = -INFINITY;
    for (int i = start; i < d->n; i++)
      max = fmax(max, d->load[z][i]);
    for (int i = 0; i < d->n; i++) {
      if (i >= start - PEAK_EVAL_HISTORY_H - 32 * 24 && !isfinite(d->load[z][i]))
        peak_eval_die("missing data before the year for", peak_eval_zone_columns[z]);
      d->load[z][i] *= PEAK_EVAL_PLANT_KW / max;
    }
  }
}

/* Frees what peak_eval_read allocated. */
static inline void peak_eval_free(dataset *d) {
  for (int z = 0; z < PEAK_EVAL_ZONES; z++)
    free(d->load[z]);
}

/* The fleet of peak_eval_fleet_kinds, every battery at PEAK_EVAL_START_SOC; returns how many. */
static inline int peak_eval_fleet(battery *b) {
  int n = 0;
  for (int k = 0; k < PEAK_EVAL_KINDS; k++)
    for (int i = 0; i < peak_eval_fleet_kinds[k].count && n < PEAK_EVAL_MAX_BATTERIES; i++)
      b[n++] = (battery){PEAK_EVAL_START_SOC, peak_eval_fleet_kinds[k].kwh, peak_eval_fleet_kinds[k].kw,
                         peak_eval_fleet_kinds[k].efficiency};
  return n;
}

/* The energy the fleet can still deliver (kWh, after losses). */
static inline double peak_eval_deliverable(const battery *b, int n) {
  double e = 0.0;
  for (int i = 0; i < n; i++)
    e += fmax(0.0, b[i].soc - PEAK_EVAL_MIN_SOC) * b[i].capacity_kwh * b[i].efficiency;
  return e;
}

/* The energy the fleet delivers from full to empty: one full cycle (kWh). */
static inline double peak_eval_cycle_kwh(const battery *b, int n) {
  double e = 0.0;
  for (int i = 0; i < n; i++)
    e += (PEAK_EVAL_MAX_SOC - PEAK_EVAL_MIN_SOC) * b[i].capacity_kwh * b[i].efficiency;
  return e;
}

/* Applies one hour of setpoints (kW, + discharge) to the batteries: each is clamped to the
 * battery's power and its stored energy to the soc limits. Returns the fleet's actual power. */
static inline double peak_eval_apply(battery *b, int n, const double *setpoint) {
  double total = 0.0;
  for (int i = 0; i < n; i++) {
    const double max = b[i].max_kw, cap = b[i].capacity_kwh, eff = b[i].efficiency;
    double p = fmin(fmax(setpoint[i], -max), max);
    const double e = b[i].soc * cap, lo = PEAK_EVAL_MIN_SOC * cap, hi = PEAK_EVAL_MAX_SOC * cap;
    double next = p >= 0 ? e - p * PEAK_EVAL_STEP_H / eff : e - p * PEAK_EVAL_STEP_H * eff;
    if (next < lo && p > 0) {
      next = fmin(e, lo);
      p = (e - next) * eff / PEAK_EVAL_STEP_H;
    } else if (next > hi && p < 0) {
      next = fmax(e, hi);
      p = -(next - e) / (eff * PEAK_EVAL_STEP_H);
    }
    b[i].soc = next / cap;
    total += p;
  }
  return total;
}

/* Runs run(d, z, ctx, result of zone z) for every zone, each in its own worker process (so two
 * cores are used), and copies each zone's result (result_size bytes of plain data) through a
 * pipe into results[z]. The results do not depend on the scheduling. */
static inline void peak_eval_run_zones(const dataset *d, void (*run)(const dataset *, int, const void *, void *),
                                       const void *ctx, void *results, size_t result_size) {
  int fds[PEAK_EVAL_ZONES][2];
  pid_t pids[PEAK_EVAL_ZONES];
  for (int z = 0; z < PEAK_EVAL_ZONES; z++) {
    if (pipe(fds[z]) != 0)
      peak_eval_die("pipe failed", NULL);
    fflush(NULL);
    pids[z] = fork();
    if (pids[z] < 0)
      peak_eval_die("fork failed", NULL);
    if (pids[z] == 0) {
      close(fds[z][0]);
      char *r = malloc(result_size);
      if (!r)
        _exit(1);
      run(d, z, ctx, r);
      const char *p = r;
      size_t left = result_size;
      while (left > 0) {
        const ssize_t w = write(fds[z][1], p, left);
        if (w <= 0)
          _exit(1);
        p += w, left -= (size_t)w;
      }
      free(r);
      _exit(0);
    }
    close(fds[z][1]);
  }
  for (int z = 0; z < PEAK_EVAL_ZONES; z++) {
    char *p = (char *)results + (size_t)z * result_size;
    size_t left = result_size;
    while (left > 0) {
      const ssize_t got = read(fds[z][0], p, left);
      if (got <= 0)
        peak_eval_die("a worker failed for zone", peak_eval_zone_names[z]);
      p += got, left -= (size_t)got;
    }
    close(fds[z][0]);
    int status;
    waitpid(pids[z], &status, 0);
  }
}

#endif
