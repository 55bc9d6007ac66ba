/* vpq_sim_connector.c — `connector = 'sim'`: the battery-fleet simulator (vpq_sim.h) inside the
 * engine, without Kafka. Sources give its telemetry or meter readings, a sink feeds it the
 * dispatch; all the 'sim' connectors of a run with the same devices, sites and seed share one
 * simulated fleet, so a file closes the loop on its own:
 *
 *   WITH (connector = 'sim', stream = 'telemetry')  ─► rows every simulated minute, one per battery
 *   WITH (connector = 'sim', stream = 'meters')     ─► rows every simulated minute, one per site
 *   ... WITH (connector = 'sim', stream = 'dispatch') AS SCHEDULE ...  ─► setpoints to the batteries
 *
 * Simulated time starts at `start` (ISO-8601, default 2024-01-01T00:00:00Z) and ends after
 * `duration` (default 1 DAY), so the sources are bounded like files; the meters source first
 * produces `history` (default 3 DAYS) of readings before `start`, so forecasts have data.
 * With `speed = 0` (the default) simulated time runs as fast as the engine reads; with
 * `speed = X` it runs X times faster than the wall clock. Each read gives one simulated minute:
 * the telemetry source moves the batteries one minute (following the setpoints whose
 * 15-minute step holds) and reports them, so a plan written at an issue reaches the batteries
 * within a simulated minute or two. Other options: devices (24), sites (4), seed (1), and
 * pv (0: a site's rooftop PV in kW per kW of its peak load, e.g. pv = 0.5; the meters then give
 * load − PV and pv_kw).
 */
#include "vpq_sim_connector.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../vpq_codec.h"
#include "vpq_sim.h"
#include "vpq_clock.h"

enum { SHARED_MAX = 8, INTERVAL_MS = 60000 };

/* The fleets of this process, one per configuration, shared by the connectors that name it. */
static struct shared_sim {
  vpq_sim *sim;
  int devices, sites;
  uint64_t seed;
  double pv;
  int refs;
} shared[SHARED_MAX];

/* Reads the number option `key` (BIGINT or INTERVAL, or the text of a whole number from `vpq
 * run --set key=N`, an interval then in milliseconds) into *value, which keeps the caller's
 * default without it; false + err when it is not a whole number in 0..max. */
static bool number_option(const vpq_plan_connector *conn, const char *key, int64_t max, int64_t *value, char *err,
                          size_t err_size) {
  for (int i = 0; i < conn->options.count; i++) {
    const vpq_plan_option *o = &conn->options.items[i];
    if (strcmp(o->key, key) != 0) continue;
    long long n = -1;
    if (o->type != VPQ_TYPE_STRING) {
      n = o->value.i;
    } else if (o->text) {
      char *end;
      errno = 0;
      n = strtoll(o->text, &end, 10);
      if (end == o->text || *end != '\0' || errno) n = -1;
    }
    if (n >= 0 && n <= max) {
      *value = n;
      return true;
    }
    if (o->type == VPQ_TYPE_STRING)
      snprintf(err, err_size, "`%s` of a sim connector is a whole number from 0 to %lld, not '%s'", key, (long long)max,
               o->text ? o->text : "");
    else
      snprintf(err, err_size, "`%s` of a sim connector is a whole number from 0 to %lld, not %lld", key, (long long)max,
               (long long)o->value.i);
    return false;
  }
  return true;
}

/* The string option `key`, or NULL. */
static const char *text_option(const vpq_plan_connector *conn, const char *key) {
  for (int i = 0; i < conn->options.count; i++)
    if (strcmp(conn->options.items[i].key, key) == 0) return conn->options.items[i].text;
  return NULL;
}

/* The PV ratio of option `pv` (a number in WITH, or text from `vpq run --set sim.pv=...`), or 0
 * without it; false + err when the text is not a number. */
static bool pv_option(const vpq_plan_connector *conn, double *ratio, char *err, size_t err_size) {
  *ratio = 0;
  for (int i = 0; i < conn->options.count; i++) {
    const vpq_plan_option *o = &conn->options.items[i];
    if (strcmp(o->key, "pv") != 0) continue;
    if (o->type == VPQ_TYPE_DOUBLE) {
      *ratio = o->value.d;
      return true;
    }
    char *end;
    *ratio = o->text ? strtod(o->text, &end) : NAN;
    if (o->text && end != o->text && *end == '\0' && isfinite(*ratio)) return true;
    snprintf(err, err_size, "`pv` of a sim connector is a number (e.g. pv = 0.5), not '%s'", o->text ? o->text : "");
    return false;
  }
  return true;
}

/* The shared fleet for the connector's devices, sites, seed and pv (created on first use). */
static struct shared_sim *shared_open(const vpq_plan_connector *conn, char *err, size_t err_size) {
  vpq_sim_config config = vpq_sim_defaults();
  int64_t devices = config.devices, sites = config.sites, seed = (int64_t)config.seed;
  if (!number_option(conn, "devices", VPQ_SIM_MAX_DEVICES, &devices, err, err_size) ||
      !number_option(conn, "sites", VPQ_SIM_MAX_SITES, &sites, err, err_size) ||
      !number_option(conn, "seed", INT64_MAX, &seed, err, err_size) || !pv_option(conn, &config.pv_ratio, err, err_size))
    return NULL;
  config.devices = (int)devices;
  config.sites = (int)sites;
  config.seed = (uint64_t)seed;
  struct shared_sim *free_slot = NULL;
  for (int i = 0; i < SHARED_MAX; i++) {
    struct shared_sim *s = &shared[i];
    if (s->refs && s->devices == config.devices && s->sites == config.sites && s->seed == config.seed &&
        s->pv == config.pv_ratio) {
      s->refs++;
      return s;
    }
    if (!s->refs && !free_slot) free_slot = s;
  }
  if (!free_slot) {
    snprintf(err, err_size, "at most %d differently configured simulators per run", SHARED_MAX);
    return NULL;
  }
  free_slot->sim = vpq_sim_new(&config, err, err_size);
  if (!free_slot->sim) return NULL;
  free_slot->devices = config.devices;
  free_slot->sites = config.sites;
  free_slot->seed = config.seed;
  free_slot->pv = config.pv_ratio;
  free_slot->refs = 1;
  return free_slot;
}

static void shared_close(struct shared_sim *s) {
  if (--s->refs > 0) return;
  vpq_sim_free(s->sim);
  memset(s, 0, sizeof *s);
}

/* ===== Sources ===== */

typedef struct sim_source {
  vpq_source base;
  struct shared_sim *shared;
  bool telemetry;  /* else meters */
  int64_t next;    /* the next tick's simulated time */
  int64_t end;     /* the last tick */
  int64_t start;
  int64_t speed;   /* 0: as fast as read */
  int64_t wall0;
  vpq_decoder *dec;
  vpq_bad_record_fn bad;
  void *bad_ctx;
} sim_source;

static bool sim_read(vpq_source *src, vpq_batch *out, vpq_origin *origins, bool *done) {
  sim_source *s = (sim_source *)src;
  vpq_sim *sim = s->shared->sim;
  *done = false;
  out->n = 0;
  if (s->next > s->end) {
    *done = true;
    return false;
  }
  if (s->speed > 0 && s->next > s->start && (s->next - s->start) > (vpq_clock_monotonic_ms() - s->wall0) * s->speed) {
    struct timespec pause = {0, 5 * 1000 * 1000};
    nanosleep(&pause, NULL);
    return false; /* simulated time has not got there yet */
  }
  int64_t t = s->next;
  int count = s->telemetry ? vpq_sim_battery_count(sim) : vpq_sim_site_count(sim);
  if (count > out->cap) count = out->cap;
  if (s->telemetry && t > s->start) vpq_sim_step(sim, t - INTERVAL_MS, (double)INTERVAL_MS / 3600000.0);
  char json[1024], err[256];
  for (int i = 0; i < count; i++) {
    int len = s->telemetry ? vpq_sim_telemetry_json(sim, i, t, json, sizeof json) : vpq_sim_meter_json(sim, i, t, json, sizeof json);
    vpq_origin origin = {-1, (t - s->start) / INTERVAL_MS * count + i + 1};
    if (!vpq_decoder_row(s->dec, json, (size_t)len, out, out->n, err, sizeof err)) {
      if (s->bad) s->bad(s->bad_ctx, err, origin, json, (size_t)len);
      continue;
    }
    origins[out->n++] = origin;
  }
  s->next = t + INTERVAL_MS;
  return out->n > 0;
}

static void sim_format_origin(const vpq_source *src, vpq_origin origin, char *buf, size_t size) {
  const sim_source *s = (const sim_source *)src;
  snprintf(buf, size, "sim:%s:%lld", s->telemetry ? "telemetry" : "meters", (long long)origin.offset);
}

static void sim_source_close(vpq_source *src) {
  sim_source *s = (sim_source *)src;
  vpq_decoder_free(s->dec);
  shared_close(s->shared);
  free(s);
}

static const vpq_source_vt sim_source_vt = {sim_read, sim_format_origin, sim_source_close, NULL, NULL, NULL, NULL, NULL};

/* The simulated start time: `start` (ISO-8601) or 2024-01-01T00:00:00Z. */
static bool start_time(const vpq_plan_connector *conn, int64_t *ms, char *err, size_t err_size) {
  const char *text = text_option(conn, "start");
  *ms = 1704067200000;
  if (!text) return true;
  if (vpq_timestamp_parse(text, strlen(text), ms)) return true;
  snprintf(err, err_size, "`start` of a sim connector is an ISO-8601 time, not '%s'", text);
  return false;
}

vpq_source *vpq_sim_open_source(const vpq_relation *rel, vpq_intern *intern, vpq_bad_record_fn bad, void *bad_ctx,
                                char *err, size_t err_size) {
  const vpq_plan_connector *conn = &rel->source;
  const char *stream = text_option(conn, "stream");
  if (!stream || (strcmp(stream, "telemetry") != 0 && strcmp(stream, "meters") != 0)) {
    snprintf(err, err_size, "a sim source needs `stream = 'telemetry'` or `stream = 'meters'`");
    return NULL;
  }
  int64_t start, history = 3 * 86400000LL, duration = 86400000LL, speed = 0;
  if (!start_time(conn, &start, err, err_size)) return NULL;
  /* at most 100 years of history or duration, a speed of at most 10^9 */
  const int64_t century = 100 * 366 * 86400000LL;
  if (!number_option(conn, "history", century, &history, err, err_size) ||
      !number_option(conn, "duration", century, &duration, err, err_size) ||
      !number_option(conn, "speed", 1000000000, &speed, err, err_size))
    return NULL;
  struct shared_sim *shared = shared_open(conn, err, err_size);
  if (!shared) return NULL;
  sim_source *s = calloc(1, sizeof *s);
  if (!s) abort();
  s->base.vt = &sim_source_vt;
  s->base.bounded = true;
  s->shared = shared;
  s->telemetry = strcmp(stream, "telemetry") == 0;
  s->start = start;
  s->next = s->telemetry ? start : start - history / INTERVAL_MS * INTERVAL_MS;
  s->end = start + duration;
  s->speed = speed;
  s->wall0 = vpq_clock_monotonic_ms();
  s->dec = vpq_decoder_new(VPQ_FORMAT_JSON, &rel->schema, intern);
  s->bad = bad;
  s->bad_ctx = bad_ctx;
  return &s->base;
}

/* ===== Sink: dispatch ===== */

typedef struct sim_sink {
  vpq_sink base;
  struct shared_sim *shared;
  const vpq_intern *intern;
  int device_col, setpoint_col, ts_col;
  int64_t unknown; /* rows for devices the fleet does not have (reported at close) */
} sim_sink;

static bool sim_write(vpq_sink *sink, const vpq_batch *batch, const int *rows, int n, char *err, size_t err_size) {
  (void)err;
  (void)err_size;
  sim_sink *s = (sim_sink *)sink;
  for (int i = 0; i < n; i++) {
    int row = rows[i];
    const vpq_vec *device = &batch->cols[s->device_col], *setpoint = &batch->cols[s->setpoint_col];
    if (device->null[row] || setpoint->null[row] || batch->diff[row] < 0) continue;
    size_t len;
    const char *text = vpq_intern_text(s->intern, device->data[row].i, &len);
    char id[64];
    snprintf(id, sizeof id, "%.*s", (int)len, text);
    int64_t step = s->ts_col >= 0 && !batch->cols[s->ts_col].null[row] ? batch->cols[s->ts_col].data[row].i : batch->ts[row];
    if (!vpq_sim_set_setpoint(s->shared->sim, id, setpoint->data[row].d, step)) s->unknown++;
  }
  return true;
}

static bool sim_flush(vpq_sink *sink, char *err, size_t err_size) {
  (void)sink;
  (void)err;
  (void)err_size;
  return true;
}

static void sim_sink_close(vpq_sink *sink) {
  sim_sink *s = (sim_sink *)sink;
  if (s->unknown) fprintf(stderr, "vpq: sim dispatch: %lld row(s) for devices the fleet does not have\n", (long long)s->unknown);
  shared_close(s->shared);
  free(s);
}

static const vpq_sink_vt sim_sink_vt = {sim_write, sim_flush, sim_sink_close, NULL, NULL, NULL};

vpq_sink *vpq_sim_open_sink(const vpq_plan_connector *conn, const vpq_schema *schema, const vpq_intern *intern,
                            char *err, size_t err_size) {
  const char *stream = text_option(conn, "stream");
  if (!stream || strcmp(stream, "dispatch") != 0) {
    snprintf(err, err_size, "a sim sink needs `stream = 'dispatch'`");
    return NULL;
  }
  int device = vpq_schema_find(schema, "device_id"), setpoint = vpq_schema_find(schema, "setpoint_kw");
  if (device < 0 || schema->cols[device].type != VPQ_TYPE_STRING || setpoint < 0 ||
      schema->cols[setpoint].type != VPQ_TYPE_DOUBLE) {
    snprintf(err, err_size, "a sim dispatch sink needs columns device_id STRING and setpoint_kw DOUBLE");
    return NULL;
  }
  struct shared_sim *shared = shared_open(conn, err, err_size);
  if (!shared) return NULL;
  sim_sink *s = calloc(1, sizeof *s);
  if (!s) abort();
  s->base.vt = &sim_sink_vt;
  s->shared = shared;
  s->intern = intern;
  s->device_col = device;
  s->setpoint_col = setpoint;
  s->ts_col = vpq_schema_find(schema, "ts");
  if (s->ts_col >= 0 && schema->cols[s->ts_col].type != VPQ_TYPE_TIMESTAMP) s->ts_col = -1;
  return &s->base;
}
