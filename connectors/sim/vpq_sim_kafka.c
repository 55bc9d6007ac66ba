/* vpq_sim_kafka.c — the simulator's Kafka side (vpq_sim_run in vpq_sim.h): produces meter
 * readings and telemetry in simulated time, consumes dispatch and applies the setpoints.
 *
 *   wall clock ──► simulated time = start + (wall − wall0) · speed
 *   every interval of simulated time: batteries step, then meters + telemetry are produced
 *   dispatch topic ──► a setpoint per device and step (rows are read from the beginning, so a
 *                      plan written before the simulator subscribed is not missed)
 */
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../vpq_codec.h"
#include "vpq_sim.h"
#include "vpq_clock.h"

/* The producer's deliveries that failed, and the last reason. */
typedef struct sim_deliveries {
  int64_t failed;
  rd_kafka_resp_err_t last;
} sim_deliveries;

/* librdkafka's delivery report: counts a message the cluster did not take. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  sim_deliveries *d = opaque;
  if (!m->err) return;
  d->failed++;
  d->last = m->err;
}

/* A producer (with `deliveries` counting its failures) or consumer of the cluster `brokers`. */
static rd_kafka_t *make_client(rd_kafka_type_t type, const char *brokers, sim_deliveries *deliveries, FILE *log) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (deliveries) {
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, deliveries);
  }
  const char *settings[][2] = {
      {"bootstrap.servers", brokers},
      {"log_level", "3"},
      {type == RD_KAFKA_PRODUCER ? "linger.ms" : "enable.partition.eof", type == RD_KAFKA_PRODUCER ? "5" : "false"},
      {type == RD_KAFKA_PRODUCER ? "compression.codec" : "group.id", type == RD_KAFKA_PRODUCER ? "zstd" : "vpq-simulator"},
      {type == RD_KAFKA_PRODUCER ? "acks" : "fetch.wait.max.ms", type == RD_KAFKA_PRODUCER ? "all" : "10"},
  };
  for (size_t i = 0; i < sizeof settings / sizeof *settings; i++) {
    if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], err, sizeof err) != RD_KAFKA_CONF_OK) {
      fprintf(log, "vpq simulate: %s\n", err);
      rd_kafka_conf_destroy(conf);
      return NULL;
    }
  }
  rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) {
    fprintf(log, "vpq simulate: %s\n", err);
    rd_kafka_conf_destroy(conf);
  }
  return rk;
}

/* Assigns every partition of `topic` from the beginning, once the topic exists. */
static bool assign_dispatch(rd_kafka_t *consumer, const char *topic) {
  const rd_kafka_metadata_t *md = NULL;
  rd_kafka_topic_t *t = rd_kafka_topic_new(consumer, topic, NULL);
  bool ok = false;
  if (rd_kafka_metadata(consumer, 0, t, &md, 500) == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 &&
      md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt > 0) {
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int p = 0; p < md->topics[0].partition_cnt; p++)
      rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[p].id)->offset = RD_KAFKA_OFFSET_BEGINNING;
    ok = rd_kafka_assign(consumer, parts) == RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(parts);
  }
  if (md) rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(t);
  return ok;
}

/* Applies one dispatch row {"ts":...,"device_id":"...","setpoint_kw":...}: the setpoint holds
 * for the 15-minute step starting at its ts (at `now` when the row has none). */
static void apply_dispatch(vpq_sim *sim, const char *json, size_t len, int64_t now) {
  char text[4096], device[64];
  if (len >= sizeof text) return;
  memcpy(text, json, len);
  text[len] = '\0';
  const char *id = vpq_json_field(text, len, "device_id");
  const char *setpoint = vpq_json_field(text, len, "setpoint_kw");
  const char *ts = vpq_json_field(text, len, "ts");
  if (!id || !setpoint || *id != '"') return;
  const char *close = strchr(id + 1, '"');
  if (!close || (size_t)(close - id - 1) >= sizeof device) return;
  memcpy(device, id + 1, (size_t)(close - id - 1));
  device[close - id - 1] = '\0';
  char *end;
  double kw = strtod(setpoint, &end);
  if (end != setpoint) vpq_sim_set_setpoint(sim, device, kw, ts ? strtoll(ts, NULL, 10) : now);
}

/* Before simulated time starts: assigns the dispatch topic when it exists already and applies
 * the setpoints already on it (waiting up to 5 s for them to arrive), so that a plan written
 * before the simulator started is followed from the first tick. False when the topic does not
 * exist yet (the live loop keeps trying). */
static bool catch_up_dispatch(vpq_sim *sim, rd_kafka_t *consumer, const char *topic, int64_t now) {
  if (!assign_dispatch(consumer, topic)) return false;
  rd_kafka_topic_partition_list_t *parts = NULL;
  if (rd_kafka_assignment(consumer, &parts) || !parts) return true;
  int64_t deadline = vpq_clock_wall_ms() + 5000;
  int64_t *high = calloc((size_t)parts->cnt + 1, sizeof *high), *next = calloc((size_t)parts->cnt + 1, sizeof *next);
  if (!high || !next) abort();
  for (int i = 0; i < parts->cnt; i++) {
    int64_t low = 0;
    if (rd_kafka_query_watermark_offsets(consumer, topic, parts->elems[i].partition, &low, &high[i], 2000)) high[i] = 0;
    next[i] = low;
  }
  for (;;) {
    bool behind = false;
    for (int i = 0; i < parts->cnt; i++) behind |= next[i] < high[i];
    if (!behind || vpq_clock_wall_ms() >= deadline) break;
    rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 100);
    if (!m) continue;
    if (!m->err && m->payload) apply_dispatch(sim, m->payload, m->len, now);
    for (int i = 0; !m->err && i < parts->cnt; i++)
      if (parts->elems[i].partition == m->partition) next[i] = m->offset + 1;
    rd_kafka_message_destroy(m);
  }
  free(high);
  free(next);
  rd_kafka_topic_partition_list_destroy(parts);
  return true;
}

/* Produces one message; `index` (a site's or battery's) spreads them evenly over the
 * topic's `partitions`, so that every partition has data and holds the watermark honestly. */
static bool produce(rd_kafka_t *producer, const char *topic, int partitions, int index, const char *key,
                    const char *value, int len, int64_t ts, FILE *log) {
  int32_t partition = partitions > 0 ? index % partitions : RD_KAFKA_PARTITION_UA;
  for (;;) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE((void *)value, (size_t)len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return true;
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      fprintf(log, "vpq simulate: cannot produce to %s: %s\n", topic, rd_kafka_err2str(e));
      return false;
    }
    rd_kafka_poll(producer, 10);
  }
}

/* Produces every site's meter reading at t, and every battery's telemetry when `telemetry`. */
static bool produce_tick(vpq_sim *sim, rd_kafka_t *producer, const vpq_sim_run_options *o, int64_t t, bool telemetry,
                         FILE *log) {
  char buf[1024];
  for (int s = 0; s < vpq_sim_site_count(sim); s++) {
    int len = vpq_sim_meter_json(sim, s, t, buf, sizeof buf);
    if (!produce(producer, o->meters_topic, o->partitions, s, vpq_sim_site_name(sim, s), buf, len, t, log)) return false;
  }
  for (int b = 0; telemetry && b < vpq_sim_battery_count(sim); b++) {
    int len = vpq_sim_telemetry_json(sim, b, t, buf, sizeof buf);
    if (!produce(producer, o->telemetry_topic, o->partitions, b, vpq_sim_battery_at(sim, b)->device_id, buf, len, t, log))
      return false;
  }
  rd_kafka_poll(producer, 0);
  return true;
}

int vpq_sim_run(vpq_sim *sim, const vpq_sim_run_options *o, volatile sig_atomic_t *stop, FILE *log) {
  sim_deliveries deliveries = {0, RD_KAFKA_RESP_ERR_NO_ERROR};
  rd_kafka_t *producer = make_client(RD_KAFKA_PRODUCER, o->brokers, &deliveries, log);
  rd_kafka_t *consumer = producer ? make_client(RD_KAFKA_CONSUMER, o->brokers, NULL, log) : NULL;
  if (!consumer) {
    if (producer) rd_kafka_destroy(producer);
    return 1;
  }
  int rc = 1;
  int64_t interval = o->interval_ms > 0 ? o->interval_ms : 60000;
  int64_t t = o->start_ms - (int64_t)o->history_days * 86400000;
  for (; t < o->start_ms && !*stop; t += interval)
    if (!produce_tick(sim, producer, o, t, false, log)) goto done;
  rd_kafka_flush(producer, 10000);
  while (o->ready && !o->ready(o->tick_ctx) && !*stop) nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
  bool assigned = catch_up_dispatch(sim, consumer, o->dispatch_topic, t - interval);
  int64_t wall0 = vpq_clock_wall_ms();
  int64_t last_assign_try = 0;
  while (!*stop) {
    int64_t now = vpq_clock_wall_ms();
    if (!assigned && now - last_assign_try >= 500) {
      assigned = assign_dispatch(consumer, o->dispatch_topic);
      last_assign_try = now;
    }
    for (rd_kafka_message_t *m; assigned && (m = rd_kafka_consumer_poll(consumer, 0)) != NULL;) {
      if (!m->err && m->payload) apply_dispatch(sim, m->payload, m->len, t - interval);
      rd_kafka_message_destroy(m);
    }
    int64_t target = o->start_ms + (int64_t)((double)(now - wall0) * o->speed);
    for (; t <= target && !*stop; t += interval) {
      if (o->duration_ms > 0 && t > o->start_ms + o->duration_ms) {
        rc = 0;
        goto done;
      }
      vpq_sim_step(sim, t - interval, (double)interval / 3600000.0);
      if (!produce_tick(sim, producer, o, t, true, log)) goto done;
      if (o->on_tick) {
        double gross = 0, battery = 0;
        for (int s = 0; s < vpq_sim_site_count(sim); s++) gross += vpq_sim_site_meter(sim, s, t);
        for (int b = 0; b < vpq_sim_battery_count(sim); b++) battery += vpq_sim_battery_at(sim, b)->power_kw;
        o->on_tick(o->tick_ctx, t, gross, gross - battery);
      }
    }
    rd_kafka_poll(producer, 0);
    nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
  }
  rc = 0;
done:
  rd_kafka_flush(producer, 10000);
  /* Delivered or not: a message the cluster did not take is never dropped silently. */
  const int undelivered = rd_kafka_outq_len(producer);
  if (deliveries.failed || undelivered > 0) {
    fprintf(log, "vpq simulate: %lld message(s) not delivered to %s (%s)\n",
            (long long)(deliveries.failed + (undelivered > 0 ? undelivered : 0)), o->brokers,
            deliveries.failed ? rd_kafka_err2str(deliveries.last) : "still queued when the simulator stopped");
    rc = 1;
  }
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  rd_kafka_destroy(producer);
  return rc;
}
