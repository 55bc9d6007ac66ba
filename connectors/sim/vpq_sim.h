/* vpq_sim.h — the battery-fleet simulator behind `vpq simulate` and the demo.
 *
 *   sites ─── gross load: a PJM zone's real hourly load (interpolated), scaled per site, ±2% noise
 *     ├─ rooftop PV (optional): pv_ratio × the site's peak load × a profile from real radiation
 *     └─ batteries: capacity, power limit, one-way efficiency, stored energy
 *          setpoint (from dispatch) ─► clamped to ±max_kw and to what the energy allows
 *
 * The model is deterministic for a seed. Time is simulated: the caller steps it. Telemetry
 * and meter readings are JSON objects in the shape of DESIGN §2's `telemetry` and
 * `site_meters` streams (plus the battery's `efficiency`). Meters report the site's load minus
 * its PV generation (what the batteries shave; with PV, also `pv_kw`); the net load is that
 * − Σ battery power.
 */
#ifndef VPQ_SIM_H
#define VPQ_SIM_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct vpq_sim_config {
  int devices;          /* batteries (default 24) */
  int sites;            /* sites (default 4); site i follows PJM zone i mod 4 */
  uint64_t seed;        /* default 1 */
  double site_peak_kw;  /* a site's typical peak load (default 250 kW) */
  double fleet_kw;      /* the fleet's total power (default: 20% of the plant's peak); energy = 2 h of it */
  double pv_ratio;      /* rooftop PV per site, in kW per kW of the site's peak load, 0..10 (default 0: none) */
} vpq_sim_config;

/* The largest fleet the simulator makes, and the most PV per kW of a site's peak load. */
enum { VPQ_SIM_MAX_DEVICES = 1000000, VPQ_SIM_MAX_SITES = 10000, VPQ_SIM_MAX_PV_RATIO = 10 };

/* A requested setpoint: + discharge, − charge, for the 15-minute step starting at `from`. */
typedef struct vpq_sim_setpoint {
  int64_t from;
  double kw;
} vpq_sim_setpoint;

/* How many steps to come a battery keeps setpoints for: 4 days of 15-minute steps, as many as
 * a SCHEDULE ... EMIT PLAN can write for them. */
enum { VPQ_SIM_SETPOINT_STEPS = 384 };

typedef struct vpq_sim_battery {
  char device_id[32];
  int site;
  double capacity_kwh;
  double max_kw;
  double efficiency;   /* one-way */
  double energy_kwh;   /* stored now */
  vpq_sim_setpoint *setpoints; /* the steps not yet over, by start, one setpoint each */
  int nsetpoints, setpoints_cap;
  double power_kw;     /* delivered in the last step */
} vpq_sim_battery;

typedef struct vpq_sim vpq_sim;

/* The defaults above. */
vpq_sim_config vpq_sim_defaults(void);

/* Creates a simulator; NULL with a message in err on a bad configuration. */
vpq_sim *vpq_sim_new(const vpq_sim_config *config, char *err, size_t err_size);
/* Frees the simulator and its fleet. */
void vpq_sim_free(vpq_sim *sim);

/* The fleet: how many batteries, battery i (its state, which setpoints change), how many sites. */
int vpq_sim_battery_count(const vpq_sim *sim);
vpq_sim_battery *vpq_sim_battery_at(vpq_sim *sim, int index);
int vpq_sim_site_count(const vpq_sim *sim);
/* The name of site i ("site-00", ...) and its region ("east" or "midwest"). */
const char *vpq_sim_site_name(const vpq_sim *sim, int site);
const char *vpq_sim_site_region(const vpq_sim *sim, int site);

/* Site i's gross load (its consumption) at event time t (epoch ms), kW. */
double vpq_sim_site_load(const vpq_sim *sim, int site, int64_t t);
/* Site i's installed PV (pv_ratio × its peak load), kW, and its PV generation at t, kW. */
double vpq_sim_site_pv_capacity(const vpq_sim *sim, int site);
double vpq_sim_site_pv(const vpq_sim *sim, int site, int64_t t);
/* What site i's meter reads at t: its load minus its PV generation, kW (negative: export). */
double vpq_sim_site_meter(const vpq_sim *sim, int site, int64_t t);

/* Sets the setpoint of `device_id` (kW, + discharge) for the 15-minute step that starts at
 * `step_ms`, replacing the one it had for that step (a plan issued later replaces an earlier
 * one's steps; the setpoints of the other steps wait for theirs); false when there is no such
 * battery. A battery keeps the VPQ_SIM_SETPOINT_STEPS earliest steps it was given. */
int vpq_sim_set_setpoint(vpq_sim *sim, const char *device_id, double setpoint_kw, int64_t step_ms);

/* Moves the batteries `hours` forward from simulated time `from_ms`: each delivers the
 * setpoint whose step holds at from_ms (else it idles, as a device's fail-safe would when no
 * plan is renewed), clamped to ±max_kw and to the energy it holds or can take, with efficiency
 * applied on charge and discharge. */
void vpq_sim_step(vpq_sim *sim, int64_t from_ms, double hours);

/* Writes battery i's telemetry (or site i's meter reading) at time t as one JSON object;
 * returns its length. */
int vpq_sim_telemetry_json(const vpq_sim *sim, int battery, int64_t t, char *buf, size_t size);
int vpq_sim_meter_json(const vpq_sim *sim, int site, int64_t t, char *buf, size_t size);

/* Runs the simulator against a Kafka cluster until *stop: produces meter readings to
 * `meters_topic` and telemetry to `telemetry_topic` every `interval_ms` of simulated time,
 * starting `history_days` before `start_ms` (the history is produced at once, meters only, so
 * forecasts have data to fit), then in simulated time running `speed` times faster than the
 * wall clock; consumes `dispatch_topic` and applies each row's setpoint_kw to its device_id.
 * Stops by itself after `duration_ms` of simulated time past start_ms (0: never). Returns 0,
 * or 1 with a message on `log`. */
typedef struct vpq_sim_run_options {
  const char *brokers;
  const char *telemetry_topic;
  const char *meters_topic;
  const char *dispatch_topic;
  int partitions;       /* of the telemetry and meters topics: rows spread evenly; 0: by key */
  int64_t start_ms;
  int64_t interval_ms;
  int history_days;
  double speed;
  int64_t duration_ms;
  /* Called after every live tick with the plant's gross load (Σ meter readings: load − PV)
   * and its net load (gross − Σ battery power), kW; may be NULL. Runs on the simulator's thread. */
  void (*on_tick)(void *ctx, int64_t t, double gross_kw, double net_kw);
  /* Polled after the history is produced, until it returns non-zero, before simulated time
   * starts running (the demo waits for the engine to read the history); may be NULL. */
  int (*ready)(void *ctx);
  void *tick_ctx;
} vpq_sim_run_options;

/* Runs the simulator against a Kafka cluster (`vpq simulate`, the demo): produces the history,
 * then telemetry and meter readings as simulated time runs, and applies the dispatch it reads,
 * until *stop is set or the run's duration ends. Returns 0, or non-zero after logging why. */
int vpq_sim_run(vpq_sim *sim, const vpq_sim_run_options *options, volatile sig_atomic_t *stop, FILE *log);

#endif
