/* vpq_demo.c — `vpq run FILE` without --brokers, for a file that uses Kafka: the whole loop on
 * one machine. An embedded broker (vpq_broker.h) gets the file's topics, the simulator
 * (vpq_sim.h) produces telemetry and meter readings into it on its own thread and follows
 * the dispatch topic, and the engine runs the file against them. The terminal shows a live
 * summary, updated in place (one line per simulated hour when not a terminal):
 *
 *   engine subscriptions ─► plant_load, load_forecast, dispatch, fleet (plant row)
 *   simulator ticks      ─► the plant's measured gross and net load, per 15 minutes
 *
 * Settings (`--set sim.KEY=VALUE`): devices, sites, speed (simulated time per wall time),
 * hours (simulated hours to run, 0 = until Ctrl-C), history_days (meter history produced at
 * start so forecasts can fit), seed, pv (rooftop PV in kW per kW of a site's peak load; 0 =
 * none). The final report compares the plant's peak with and without the batteries, as the
 * simulator measured it, from the first dispatch on: before the first plan the batteries have
 * had no setpoint, and a run that starts at the evening peak would otherwise measure that.
 */
#include "vpq_demo.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kafka/vpq_broker.h"
#include "sim/vpq_sim.h"
#include "vpq_codec.h"
#include "vpq_clock.h"

enum { BUCKET_MS = 15 * 60 * 1000, MAX_TOPICS = 64 };

struct vpq_demo {
  vpq_engine *engine;
  vpq_broker *broker;
  pthread_t thread;
  vpq_sim *sim;
  vpq_sim_run_options run;
  volatile sig_atomic_t sim_stop;
  int sim_rc;
  pthread_mutex_t lock;
  bool tty;
  int64_t wall_last_print;
  int64_t hour_printed;
  /* from the engine */
  int64_t plant_ts;
  double plant_kw;
  int64_t forecast_issue;
  double forecast_next, forecast_peak;
  int64_t dispatch_issue;
  double dispatch_kw, planned_peak;
  double fleet_soc, fleet_stored, fleet_capacity;
  /* from the simulator (under lock): the current 15-minute bucket and the peaks */
  int64_t bucket;
  double bucket_gross, bucket_net;
  int bucket_n;
  double last_gross, last_net;
  double peak_gross, peak_net;
  int64_t loop_from; /* the first dispatch's issue time: peaks count from its bucket on */
  int64_t sim_now;
};

typedef struct vpq_demo demo;

static double field_number(const char *json, const char *name) {
  const char *v = vpq_json_field(json, strlen(json), name);
  if (!v || strncmp(v, "null", 4) == 0) return NAN;
  return strtod(v, NULL);
}

static bool field_null(const char *json, const char *name) {
  const char *v = vpq_json_field(json, strlen(json), name);
  return v && strncmp(v, "null", 4) == 0;
}

/* ===== The simulator's measurements ===== */

static void on_tick(void *ctx, int64_t t, double gross, double net) {
  demo *d = ctx;
  pthread_mutex_lock(&d->lock);
  int64_t bucket = t / BUCKET_MS * BUCKET_MS;
  if (bucket != d->bucket && d->bucket_n) {
    d->last_gross = d->bucket_gross / d->bucket_n;
    d->last_net = d->bucket_net / d->bucket_n;
    if (d->bucket >= d->loop_from) {
      if (d->last_gross > d->peak_gross) d->peak_gross = d->last_gross;
      if (d->last_net > d->peak_net) d->peak_net = d->last_net;
    }
    d->bucket_gross = d->bucket_net = 0;
    d->bucket_n = 0;
  }
  d->bucket = bucket;
  d->bucket_gross += gross;
  d->bucket_net += net;
  d->bucket_n++;
  d->sim_now = t;
  pthread_mutex_unlock(&d->lock);
}

/* The simulator starts its clock once the engine has windowed the whole history. */
static int engine_ready(void *ctx) {
  demo *d = ctx;
  return __atomic_load_n(&d->plant_ts, __ATOMIC_ACQUIRE) >= d->run.start_ms - 2 * BUCKET_MS;
}

static void *sim_thread(void *arg) {
  demo *d = arg;
  d->sim_rc = vpq_sim_run(d->sim, &d->run, &d->sim_stop, stderr);
  /* Give the engine a moment to plan on the last rows, then end the run. */
  for (int i = 0; i < 20 && !d->sim_stop; i++) nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
  vpq_engine_stop(d->engine);
  return NULL;
}

/* ===== The summary ===== */

static void format_time(int64_t ms, char *buf, size_t size) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  strftime(buf, size, "%Y-%m-%d %H:%M UTC", &tm);
}

static void print_summary(demo *d, bool final) {
  pthread_mutex_lock(&d->lock);
  double gross = d->last_gross, net = d->last_net, peak_gross = d->peak_gross, peak_net = d->peak_net;
  int64_t now = d->sim_now;
  pthread_mutex_unlock(&d->lock);
  char when[64];
  format_time(now, when, sizeof when);
  double shaved = peak_gross > 0 ? 100 * (peak_gross - peak_net) / peak_gross : 0;
  if (!d->tty && !final && peak_gross <= 0) { /* the peaks are measured from the first dispatch on */
    printf("%s  plant %.1f kW  waiting for the first forecast and dispatch\n", when, d->plant_kw);
    fflush(stdout);
    return;
  }
  if (!d->tty || final) {
    printf("%s  plant %.1f kW  forecast %.1f kW  dispatch %+.1f kW  net %.1f kW  soc %.1f%%  peak %.1f -> %.1f kW (%+.1f%%)\n",
           when, d->plant_kw, d->forecast_next, d->dispatch_kw, net, 100 * d->fleet_soc, peak_gross, peak_net, -shaved);
    fflush(stdout);
    return;
  }
  printf("\033[7A\033[J");
  printf("  simulated time  %s\n", when);
  printf("  plant load      %9.1f kW   15-minute average (engine: plant_load)\n", d->plant_kw);
  printf("  forecast        %9.1f kW   next 15 minutes; day-ahead peak %.1f kW (load_forecast)\n", d->forecast_next,
         d->forecast_peak);
  printf("  dispatch        %+9.1f kW   batteries now; planned peak %.1f kW (dispatch)\n", d->dispatch_kw, d->planned_peak);
  printf("  net load        %9.1f kW   measured: gross %.1f kW − batteries\n", net, gross);
  printf("  fleet soc       %9.1f %%    %.1f of %.1f kWh (fleet)\n", 100 * d->fleet_soc, d->fleet_stored, d->fleet_capacity);
  printf("  peak so far     %9.1f kW   without batteries, %.1f kW with them (%+.1f%%)\n", peak_gross, peak_net, -shaved);
  fflush(stdout);
}

static void maybe_print(demo *d) {
  int64_t now = vpq_clock_monotonic_ms();
  if (d->tty) {
    if (now - d->wall_last_print < 250) return;
    d->wall_last_print = now;
    print_summary(d, false);
    return;
  }
  pthread_mutex_lock(&d->lock);
  int64_t hour = d->sim_now / 3600000;
  pthread_mutex_unlock(&d->lock);
  if (hour == d->hour_printed) return;
  d->hour_printed = hour;
  print_summary(d, false);
}

/* ===== Engine subscriptions (on the engine's thread) ===== */

static void on_plant(void *ctx, const char *relation, const char *json, int diff) {
  (void)relation;
  demo *d = ctx;
  if (diff < 0) return;
  __atomic_store_n(&d->plant_ts, (int64_t)field_number(json, "ts"), __ATOMIC_RELEASE);
  d->plant_kw = field_number(json, "load_kw");
  maybe_print(d);
}

static void on_forecast(void *ctx, const char *relation, const char *json, int diff) {
  (void)relation;
  demo *d = ctx;
  if (diff < 0 || field_null(json, "value")) return;
  int64_t issue = (int64_t)field_number(json, "issued_at");
  double value = field_number(json, "value");
  if (issue != d->forecast_issue) {
    d->forecast_issue = issue;
    d->forecast_next = value;
    d->forecast_peak = value;
  }
  if (value > d->forecast_peak) d->forecast_peak = value;
}

static void on_dispatch(void *ctx, const char *relation, const char *json, int diff) {
  (void)relation;
  demo *d = ctx;
  if (diff < 0) return;
  int64_t issue = (int64_t)field_number(json, "issued_at");
  if ((int64_t)field_number(json, "ts") != issue) return; /* EMIT PLAN: only the step being applied */
  if (issue != d->dispatch_issue) {
    d->dispatch_issue = issue;
    d->dispatch_kw = 0;
    pthread_mutex_lock(&d->lock);
    if (d->loop_from == INT64_MAX) d->loop_from = issue / BUCKET_MS * BUCKET_MS;
    pthread_mutex_unlock(&d->lock);
  }
  double setpoint = field_number(json, "setpoint_kw");
  if (!isnan(setpoint)) d->dispatch_kw += setpoint;
  d->planned_peak = field_number(json, "planned_peak_kw");
  maybe_print(d);
}

static void on_fleet(void *ctx, const char *relation, const char *json, int diff) {
  (void)relation;
  demo *d = ctx;
  if (diff < 0 || !field_null(json, "region") || !field_null(json, "site")) return;
  d->fleet_soc = field_number(json, "soc");
  d->fleet_stored = field_number(json, "stored_kwh");
  d->fleet_capacity = field_number(json, "capacity_kwh");
}

/* ===== Running it ===== */

/* Reads the number of `--set KEY=VALUE` into *value: 1 when set, 0 when not, -1 (after saying
 * so on log) when its value is not a number. */
static int setting(const char *const *sets, int nsets, const char *key, double *value, FILE *log) {
  size_t n = strlen(key);
  for (int i = 0; i < nsets; i++)
    if (strncmp(sets[i], key, n) == 0 && sets[i][n] == '=') {
      char *end;
      *value = strtod(sets[i] + n + 1, &end);
      if (end != sets[i] + n + 1 && *end == '\0' && isfinite(*value)) return 1;
      fprintf(log, "vpq: --set %s: `%s` is not a number\n", key, sets[i] + n + 1);
      return -1;
    }
  return 0;
}

vpq_demo *vpq_demo_start(vpq_engine *engine, const char *const *sets, int nsets, FILE *log, int *rc) {
  vpq_sim_config config = vpq_sim_defaults();
  double devices = config.devices, sites = config.sites, seed = (double)config.seed, pv = config.pv_ratio;
  double speed = 360, hours = 0, history_days = 3;
  const struct {
    const char *key;
    double *value;
  } numbers[] = {{"sim.devices", &devices}, {"sim.sites", &sites},   {"sim.seed", &seed},
                 {"sim.pv", &pv},           {"sim.speed", &speed},   {"sim.hours", &hours},
                 {"sim.history_days", &history_days}};
  *rc = 2;
  for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
    if (setting(sets, nsets, numbers[i].key, numbers[i].value, log) < 0) return NULL;
  for (int i = 0; i < nsets; i++) {
    bool known = strncmp(sets[i], "sim.", 4) != 0;
    for (size_t k = 0; k < sizeof numbers / sizeof numbers[0] && !known; k++) {
      size_t n = strlen(numbers[k].key);
      known = strncmp(sets[i], numbers[k].key, n) == 0 && sets[i][n] == '=';
    }
    if (!known) {
      fprintf(log, "vpq: unknown setting `%.*s` (the simulator's are sim.devices, sim.sites, sim.seed, sim.pv, "
              "sim.speed, sim.hours and sim.history_days)\n", (int)strcspn(sets[i], "="), sets[i]);
      return NULL;
    }
  }
  if (devices < 1 || devices > 1e6 || sites < 1 || sites > 1e4 || seed < 0 || seed > 1e18) {
    fprintf(log, "vpq: the simulator needs sim.devices 1..1000000, sim.sites 1..10000 and sim.seed ≥ 0\n");
    return NULL;
  }
  config.devices = (int)devices;
  config.sites = (int)sites;
  config.seed = (uint64_t)seed;
  config.pv_ratio = pv;
  if (!(speed > 0) || hours < 0 || history_days < 0 || history_days > 56) {
    fprintf(log, "vpq: sim.speed must be positive, sim.hours and sim.history_days (at most 56) not negative\n");
    return NULL;
  }
  char err[512];
  vpq_sim *sim = vpq_sim_new(&config, err, sizeof err);
  if (!sim) {
    fprintf(log, "vpq: %s\n", err);
    return NULL;
  }
  const char *topics[MAX_TOPICS];
  char specs[MAX_TOPICS][300];
  const char *spec_list[MAX_TOPICS];
  int ntopics = vpq_engine_kafka_topics(engine, topics, MAX_TOPICS);
  for (int i = 0; i < ntopics; i++) {
    snprintf(specs[i], sizeof specs[i], "%s:4", topics[i]);
    spec_list[i] = specs[i];
  }
  vpq_broker *broker = vpq_broker_start(1, spec_list, ntopics, err, sizeof err);
  if (!broker) {
    fprintf(log, "vpq: embedded broker: %s\n", err);
    vpq_sim_free(sim);
    *rc = 1;
    return NULL;
  }
  demo *d = calloc(1, sizeof *d);
  if (!d) abort();
  d->engine = engine;
  d->sim = sim;
  d->broker = broker;
  vpq_engine_set(engine, "kafka.bootstrap.servers", vpq_broker_bootstraps(broker));
  pthread_mutex_init(&d->lock, NULL);
  d->tty = isatty(fileno(stdout));
  d->hour_printed = -1;
  int64_t now = (int64_t)time(NULL) * 1000;
  d->run = (vpq_sim_run_options){.brokers = vpq_broker_bootstraps(broker),
                                 .telemetry_topic = "vpp.telemetry",
                                 .meters_topic = "vpp.meters",
                                 .dispatch_topic = "vpp.dispatch",
                                 .partitions = 4,
                                 .start_ms = now / BUCKET_MS * BUCKET_MS,
                                 .interval_ms = 60000,
                                 .history_days = (int)history_days,
                                 .speed = speed,
                                 .duration_ms = (int64_t)(hours * 3600000),
                                 .on_tick = on_tick,
                                 .ready = engine_ready,
                                 .tick_ctx = d};
  d->sim_now = d->run.start_ms;
  d->plant_ts = INT64_MIN;
  d->loop_from = INT64_MAX;
  vpq_engine_subscribe(engine, "plant_load", on_plant, d);
  vpq_engine_subscribe(engine, "load_forecast", on_forecast, d);
  vpq_engine_subscribe(engine, "dispatch", on_dispatch, d);
  vpq_engine_subscribe(engine, "fleet", on_fleet, d);
  fprintf(log, "vpq: demo: embedded broker at %s; simulating %d batteries on %d sites, %g× real time%s\n",
          vpq_broker_bootstraps(broker), config.devices, config.sites, speed, hours > 0 ? "" : "; Ctrl-C stops");
  if (d->tty) printf("\n\n\n\n\n\n\n");
  pthread_create(&d->thread, NULL, sim_thread, d);
  *rc = 0;
  return d;
}

void vpq_demo_stop(vpq_demo *d) {
  d->sim_stop = 1;
  pthread_join(d->thread, NULL);
}

int vpq_demo_finish(vpq_demo *d, FILE *log) {
  print_summary(d, true);
  double shaved = d->peak_gross > 0 ? 100 * (d->peak_gross - d->peak_net) / d->peak_gross : 0;
  if (d->loop_from == INT64_MAX) {
    fprintf(log, "vpq: demo: no dispatch arrived, so there is no peak to compare\n");
  } else {
    char from[64];
    format_time(d->loop_from, from, sizeof from);
    fprintf(log, "vpq: demo: plant peak %.1f kW without batteries, %.1f kW with them (%+.1f%%), measured by the "
            "simulator from the first dispatch (%s) on\n", d->peak_gross, d->peak_net, -shaved, from);
  }
  int rc = d->sim_rc == 0 ? 0 : 1;
  vpq_broker_stop(d->broker);
  vpq_sim_free(d->sim);
  pthread_mutex_destroy(&d->lock);
  free(d);
  return rc;
}
