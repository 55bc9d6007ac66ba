/* vpq_sim.c — the battery-fleet model of the simulator (vpq_sim.h).
 *
 * Site loads come from 56 whole days of the four PJM zones' hourly load (queries/data/
 * sim_load_pjm.csv, compiled in as vpq_sim_load_csv). Event time t maps onto that data by its
 * UTC day (modulo 56, which keeps weekdays) and hour, interpolated linearly between hours.
 * Each site scales its zone so that the zone's peak becomes the site's peak (site_peak_kw
 * times a per-site factor in 0.6..1.4), and adds noise of ±2% that is a pure function of
 * (seed, site, minute), so a reading can be reproduced.
 *
 * Rooftop PV (optional, pv_ratio > 0): each site has PV of pv_ratio times its peak load,
 * producing that capacity times a profile of the same 56 days (queries/data/sim_pv_fr.csv,
 * compiled in as vpq_sim_pv_csv: France's solar radiation per kW installed, moved to the PJM
 * zones' solar time), interpolated the same way, without noise. The meter reads load − PV,
 * which goes negative when the site exports.
 *
 * The fleet: batteries of three sizes (5 kW / 13.5 kWh, 10 kW / 20 kWh, 25 kW / 50 kWh, picked
 * at random), scaled together so that their power adds up to fleet_kw, one-way efficiency
 * 0.95, starting at a state of charge in 0.4..0.8, spread over the sites in turn.
 */
#include "vpq_sim.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

extern const char vpq_sim_load_csv[];
extern const char vpq_sim_pv_csv[];

enum { ZONES = 4 };

/* How long a setpoint holds: one 15-minute step. */
static const int64_t SETPOINT_STEP_MS = 15 * 60000;

struct vpq_sim {
  vpq_sim_config config;
  double *load;         /* hours × ZONES, MW */
  int hours;
  int64_t first_day;    /* epoch day of the data's first hour */
  double zone_peak[ZONES];
  double *site_scale;   /* per site: kW per MW */
  double *pv;           /* hours: PV output per kW installed, 0..1 */
  double *site_pv_kw;   /* per site: PV installed, kW */
  char (*site_names)[16];
  vpq_sim_battery *batteries;
};

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* A uniform number in [0, 1) from the state. */
static double uniform(uint64_t *state) { return (double)(splitmix64(state) >> 11) / 9007199254740992.0; }

vpq_sim_config vpq_sim_defaults(void) {
  return (vpq_sim_config){.devices = 24, .sites = 4, .seed = 1, .site_peak_kw = 250, .fleet_kw = 0, .pv_ratio = 0};
}

/* Parses the compiled-in CSV (header, then ts and four zones per line). */
static int load_series(vpq_sim *sim, char *err, size_t err_size) {
  const char *p = strchr(vpq_sim_load_csv, '\n');
  int cap = 0;
  while (p && p[1]) {
    p++;
    char *end;
    long long ts = strtoll(p, &end, 10);
    if (sim->hours == cap) {
      cap = cap ? 2 * cap : 2048;
      sim->load = realloc(sim->load, sizeof *sim->load * (size_t)cap * ZONES);
      if (!sim->load) abort();
    }
    if (sim->hours == 0) sim->first_day = ts / 86400000;
    for (int z = 0; z < ZONES; z++) {
      if (*end != ',') {
        snprintf(err, err_size, "the simulator's load data is malformed at hour %d", sim->hours);
        return -1;
      }
      double v = strtod(end + 1, &end);
      sim->load[sim->hours * ZONES + z] = v;
      if (v > sim->zone_peak[z]) sim->zone_peak[z] = v;
    }
    sim->hours++;
    p = strchr(end, '\n');
  }
  if (sim->hours < 48 || sim->hours % 24) {
    snprintf(err, err_size, "the simulator's load data must hold whole days");
    return -1;
  }
  return 0;
}

/* Parses the compiled-in PV profile (header, then ts and pv per line), which must cover the
 * load data's hours one by one. */
static int pv_series(vpq_sim *sim, char *err, size_t err_size) {
  sim->pv = malloc(sizeof *sim->pv * (size_t)sim->hours);
  if (!sim->pv) abort();
  const char *p = strchr(vpq_sim_pv_csv, '\n');
  for (int h = 0; h < sim->hours; h++) {
    char *end = NULL;
    long long ts = p ? strtoll(p + 1, &end, 10) : 0;
    if (!p || ts != (sim->first_day * 24 + h) * 3600000 || *end != ',') {
      snprintf(err, err_size, "the simulator's PV data does not match its load data at hour %d", h);
      return -1;
    }
    sim->pv[h] = strtod(end + 1, &end);
    p = strchr(end, '\n');
  }
  return 0;
}

vpq_sim *vpq_sim_new(const vpq_sim_config *config, char *err, size_t err_size) {
  if (config->devices < 1 || config->devices > VPQ_SIM_MAX_DEVICES || config->sites < 1 || config->sites > VPQ_SIM_MAX_SITES ||
      !(config->site_peak_kw > 0) || config->fleet_kw < 0) {
    snprintf(err, err_size, "the simulator needs 1..1000000 devices, 1..10000 sites and a positive site peak");
    return NULL;
  }
  if (!(config->pv_ratio >= 0 && config->pv_ratio <= VPQ_SIM_MAX_PV_RATIO)) {
    snprintf(err, err_size, "the simulator's PV ratio (PV capacity per kW of peak load) must be in 0..10");
    return NULL;
  }
  vpq_sim *sim = calloc(1, sizeof *sim);
  if (!sim) abort();
  sim->config = *config;
  if (load_series(sim, err, err_size) != 0 || pv_series(sim, err, err_size) != 0) {
    vpq_sim_free(sim);
    return NULL;
  }
  uint64_t rng = config->seed * 0x2545f4914f6cdd1dull + 17;
  int sites = config->sites;
  sim->site_scale = malloc(sizeof *sim->site_scale * (size_t)sites);
  sim->site_pv_kw = malloc(sizeof *sim->site_pv_kw * (size_t)sites);
  sim->site_names = malloc(sizeof *sim->site_names * (size_t)sites);
  sim->batteries = calloc((size_t)config->devices, sizeof *sim->batteries);
  if (!sim->site_scale || !sim->site_pv_kw || !sim->site_names || !sim->batteries) abort();
  double plant_peak = 0;
  for (int s = 0; s < sites; s++) {
    double factor = 0.6 + 0.8 * uniform(&rng);
    sim->site_scale[s] = config->site_peak_kw * factor / sim->zone_peak[s % ZONES];
    sim->site_pv_kw[s] = config->pv_ratio * config->site_peak_kw * factor;
    plant_peak += config->site_peak_kw * factor;
    snprintf(sim->site_names[s], sizeof sim->site_names[s], "site-%02d", s);
  }
  static const double sizes[3][2] = {{5, 13.5}, {10, 20}, {25, 50}};
  double total_kw = 0;
  for (int i = 0; i < config->devices; i++) {
    vpq_sim_battery *b = &sim->batteries[i];
    const double *size = sizes[splitmix64(&rng) % 3];
    snprintf(b->device_id, sizeof b->device_id, "bat-%04d", i);
    b->site = i % sites;
    b->max_kw = size[0];
    b->capacity_kwh = size[1];
    b->efficiency = 0.95;
    b->energy_kwh = (0.4 + 0.4 * uniform(&rng)) * b->capacity_kwh;
    total_kw += b->max_kw;
  }
  double fleet_kw = config->fleet_kw > 0 ? config->fleet_kw : 0.2 * plant_peak;
  double scale = fleet_kw / total_kw;
  for (int i = 0; i < config->devices; i++) {
    vpq_sim_battery *b = &sim->batteries[i];
    b->max_kw *= scale;
    b->capacity_kwh *= scale;
    b->energy_kwh *= scale;
  }
  return sim;
}

void vpq_sim_free(vpq_sim *sim) {
  if (!sim) return;
  free(sim->load);
  free(sim->site_scale);
  free(sim->pv);
  free(sim->site_pv_kw);
  free(sim->site_names);
  for (int i = 0; sim->batteries && i < sim->config.devices; i++) free(sim->batteries[i].setpoints);
  free(sim->batteries);
  free(sim);
}

int vpq_sim_battery_count(const vpq_sim *sim) { return sim->config.devices; }

vpq_sim_battery *vpq_sim_battery_at(vpq_sim *sim, int index) { return &sim->batteries[index]; }

int vpq_sim_site_count(const vpq_sim *sim) { return sim->config.sites; }

const char *vpq_sim_site_name(const vpq_sim *sim, int site) { return sim->site_names[site]; }

const char *vpq_sim_site_region(const vpq_sim *sim, int site) {
  (void)sim;
  return site % ZONES == 0 || site % ZONES == 3 ? "east" : "midwest";
}

/* Column `col` of an hourly series of `stride` columns (the load data or the PV profile) at
 * t, interpolated between the hours of the data. */
static double series_at(const vpq_sim *sim, const double *series, int stride, int col, int64_t t) {
  int64_t hour_ms = 3600000;
  int64_t span = (int64_t)sim->hours * hour_ms;
  int64_t offset = (t - sim->first_day * 86400000) % span;
  if (offset < 0) offset += span;
  int h = (int)(offset / hour_ms);
  double frac = (double)(offset % hour_ms) / (double)hour_ms;
  double a = series[h * stride + col], b = series[((h + 1) % sim->hours) * stride + col];
  return a + frac * (b - a);
}

double vpq_sim_site_load(const vpq_sim *sim, int site, int64_t t) {
  uint64_t state = sim->config.seed ^ ((uint64_t)site << 40) ^ (uint64_t)(t / 60000);
  splitmix64(&state);
  double noise = 1 + 0.02 * (2 * uniform(&state) - 1);
  return series_at(sim, sim->load, ZONES, site % ZONES, t) * sim->site_scale[site] * noise;
}

double vpq_sim_site_pv_capacity(const vpq_sim *sim, int site) { return sim->site_pv_kw[site]; }

double vpq_sim_site_pv(const vpq_sim *sim, int site, int64_t t) {
  return sim->site_pv_kw[site] * series_at(sim, sim->pv, 1, 0, t);
}

double vpq_sim_site_meter(const vpq_sim *sim, int site, int64_t t) {
  return vpq_sim_site_load(sim, site, t) - vpq_sim_site_pv(sim, site, t);
}

int vpq_sim_set_setpoint(vpq_sim *sim, const char *device_id, double setpoint_kw, int64_t step_ms) {
  /* Device ids are "bat-NNNN" with NNNN the index. */
  if (strncmp(device_id, "bat-", 4) != 0) return 0;
  char *end;
  long i = strtol(device_id + 4, &end, 10);
  if (*end || i < 0 || i >= sim->config.devices || strcmp(sim->batteries[i].device_id, device_id) != 0) return 0;
  vpq_sim_battery *b = &sim->batteries[i];
  int at = 0;
  while (at < b->nsetpoints && b->setpoints[at].from < step_ms) at++;
  if (at < b->nsetpoints && b->setpoints[at].from == step_ms) {
    b->setpoints[at].kw = isfinite(setpoint_kw) ? setpoint_kw : 0;
    return 1;
  }
  if (at == VPQ_SIM_SETPOINT_STEPS) return 1; /* beyond the steps kept */
  if (b->nsetpoints == VPQ_SIM_SETPOINT_STEPS) b->nsetpoints--; /* the latest step gives way */
  if (b->nsetpoints == b->setpoints_cap) {
    b->setpoints_cap = b->setpoints_cap ? 2 * b->setpoints_cap : 8;
    b->setpoints = realloc(b->setpoints, sizeof *b->setpoints * (size_t)b->setpoints_cap);
    if (!b->setpoints) abort();
  }
  memmove(b->setpoints + at + 1, b->setpoints + at, sizeof *b->setpoints * (size_t)(b->nsetpoints - at));
  b->setpoints[at] = (vpq_sim_setpoint){step_ms, isfinite(setpoint_kw) ? setpoint_kw : 0};
  b->nsetpoints++;
  return 1;
}

/* The setpoint of battery b at simulated time t (0 when none holds); forgets the steps over. */
static double setpoint_at(vpq_sim_battery *b, int64_t t) {
  int over = 0;
  while (over < b->nsetpoints && b->setpoints[over].from + SETPOINT_STEP_MS <= t) over++;
  if (over) {
    b->nsetpoints -= over;
    memmove(b->setpoints, b->setpoints + over, sizeof *b->setpoints * (size_t)b->nsetpoints);
  }
  return b->nsetpoints && b->setpoints[0].from <= t ? b->setpoints[0].kw : 0;
}

void vpq_sim_step(vpq_sim *sim, int64_t from_ms, double hours) {
  for (int i = 0; i < sim->config.devices; i++) {
    vpq_sim_battery *b = &sim->batteries[i];
    double p = fmin(fmax(setpoint_at(b, from_ms), -b->max_kw), b->max_kw);
    if (p > 0) {
      double most = b->energy_kwh * b->efficiency / hours; /* empties the battery */
      if (p > most) p = most;
      b->energy_kwh = fmax(b->energy_kwh - p * hours / b->efficiency, 0);
    } else if (p < 0) {
      double most = (b->capacity_kwh - b->energy_kwh) / (b->efficiency * hours); /* fills it */
      if (-p > most) p = -most;
      b->energy_kwh = fmin(b->energy_kwh - p * hours * b->efficiency, b->capacity_kwh);
    }
    b->power_kw = p;
  }
}

int vpq_sim_telemetry_json(const vpq_sim *sim, int battery, int64_t t, char *buf, size_t size) {
  const vpq_sim_battery *b = &sim->batteries[battery];
  return snprintf(buf, size,
                  "{\"device_id\":\"%s\",\"site\":\"%s\",\"region\":\"%s\",\"ts\":%lld,\"soc\":%.4f,\"power_kw\":%.3f,"
                  "\"capacity_kwh\":%.3f,\"max_kw\":%.3f,\"efficiency\":%.2f}",
                  b->device_id, sim->site_names[b->site], vpq_sim_site_region(sim, b->site), (long long)t,
                  b->energy_kwh / b->capacity_kwh, b->power_kw, b->capacity_kwh, b->max_kw, b->efficiency);
}

int vpq_sim_meter_json(const vpq_sim *sim, int site, int64_t t, char *buf, size_t size) {
  if (sim->config.pv_ratio == 0)
    return snprintf(buf, size, "{\"site\":\"%s\",\"ts\":%lld,\"load_kw\":%.1f}", sim->site_names[site], (long long)t,
                    vpq_sim_site_load(sim, site, t));
  return snprintf(buf, size, "{\"site\":\"%s\",\"ts\":%lld,\"load_kw\":%.1f,\"pv_kw\":%.1f}", sim->site_names[site],
                  (long long)t, vpq_sim_site_meter(sim, site, t), vpq_sim_site_pv(sim, site, t));
}
