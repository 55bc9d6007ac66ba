/* vpq_kafka.c — the Kafka sink: rows → JSON messages on a topic.
 *
 * One idempotent producer per sink. A row's message key is its key columns (one column: its
 * text; several: a JSON array), its timestamp the row's event time, its value the row as a JSON
 * object. Delivery reports are served on every write and on flush; a failed delivery is counted
 * and surfaces as a write/flush error with librdkafka's reason, never silently dropped. A full
 * local queue makes the writer wait for deliveries (backpressure) instead of dropping.
 */
#include "vpq_kafka.h"

#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>

#include "../vpq_codec.h"

typedef struct kafka_sink {
  vpq_sink base;
  rd_kafka_t *rk;
  rd_kafka_topic_t *topic;
  const vpq_schema *schema;
  const vpq_intern *intern;
  vpq_json_keys keys;
  int nkeys; /* key columns of the schema */
  vpq_buf key, value;
  int64_t failed;           /* messages whose delivery failed */
  char first_error[256];
} kafka_sink;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
  (void)rk;
  kafka_sink *s = opaque;
  if (!msg->err) return;
  if (!s->failed++) snprintf(s->first_error, sizeof s->first_error, "%s", rd_kafka_err2str(msg->err));
}

static bool report_failures(kafka_sink *s, char *err, size_t err_size) {
  if (!s->failed) return true;
  snprintf(err, err_size, "%lld message(s) not delivered: %s", (long long)s->failed, s->first_error);
  return false;
}

/* The message key of row `row`: the key columns' text, a JSON array when there are several. */
static void encode_key(kafka_sink *s, const vpq_batch *batch, int row) {
  s->key.len = 0;
  int nkeys = s->nkeys;
  if (nkeys > 1) vpq_buf_append(&s->key, "[", 1);
  int written = 0;
  for (int c = 0; c < s->schema->ncols; c++) {
    if (!s->schema->cols[c].is_key) continue;
    if (written++) vpq_buf_append(&s->key, ",", 1);
    const vpq_vec *v = &batch->cols[c];
    if (v->null[row]) {
      if (nkeys > 1) vpq_buf_append(&s->key, "null", 4);
    } else if (s->schema->cols[c].type == VPQ_TYPE_STRING) {
      size_t len;
      const char *text = vpq_intern_text(s->intern, v->data[row].i, &len);
      if (nkeys > 1) vpq_json_encode_string(&s->key, text, len);
      else vpq_buf_append(&s->key, text, len);
    } else if (s->schema->cols[c].type == VPQ_TYPE_DOUBLE) {
      vpq_json_encode_double(&s->key, v->data[row].d);
    } else if (s->schema->cols[c].type == VPQ_TYPE_BOOLEAN) {
      vpq_buf_puts(&s->key, v->data[row].i ? "true" : "false");
    } else {
      vpq_buf_printf(&s->key, "%lld", (long long)v->data[row].i);
    }
  }
  if (nkeys > 1) vpq_buf_append(&s->key, "]", 1);
}

static bool kafka_write(vpq_sink *sink, const vpq_batch *batch, const int *rows, int n, char *err, size_t err_size) {
  kafka_sink *s = (kafka_sink *)sink;
  for (int i = 0; i < n; i++) {
    int row = rows[i];
    encode_key(s, batch, row);
    s->value.len = 0;
    vpq_json_encode_row_keyed(&s->value, &s->keys, s->schema, batch, row, s->intern);
    for (;;) {
      rd_kafka_resp_err_t e = rd_kafka_producev(
          s->rk, RD_KAFKA_V_RKT(s->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(s->key.len ? s->key.data : NULL, s->key.len), RD_KAFKA_V_VALUE(s->value.data, s->value.len),
          RD_KAFKA_V_TIMESTAMP(batch->ts[row]), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        snprintf(err, err_size, "cannot produce to `%s`: %s", rd_kafka_topic_name(s->topic), rd_kafka_err2str(e));
        return false;
      }
      rd_kafka_poll(s->rk, 50); /* the local queue is full: wait for deliveries */
    }
  }
  rd_kafka_poll(s->rk, 0);
  return report_failures(s, err, err_size);
}

static bool kafka_flush(vpq_sink *sink, char *err, size_t err_size) {
  kafka_sink *s = (kafka_sink *)sink;
  rd_kafka_resp_err_t e = rd_kafka_flush(s->rk, 60 * 1000);
  if (e) {
    snprintf(err, err_size, "flushing `%s`: %s (%d message(s) still queued)", rd_kafka_topic_name(s->topic),
             rd_kafka_err2str(e), rd_kafka_outq_len(s->rk));
    return false;
  }
  return report_failures(s, err, err_size);
}

static void kafka_close(vpq_sink *sink) {
  kafka_sink *s = (kafka_sink *)sink;
  rd_kafka_flush(s->rk, 60 * 1000);
  rd_kafka_topic_destroy(s->topic);
  rd_kafka_destroy(s->rk);
  vpq_json_keys_free(&s->keys);
  vpq_buf_free(&s->key);
  vpq_buf_free(&s->value);
  free(s);
}

static const vpq_sink_vt kafka_sink_vt = {kafka_write, kafka_flush, kafka_close};

static bool conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err, size_t err_size) {
  char reason[512];
  if (rd_kafka_conf_set(conf, key, value, reason, sizeof reason) == RD_KAFKA_CONF_OK) return true;
  snprintf(err, err_size, "kafka property `%s`: %s", key, reason);
  return false;
}

vpq_sink *vpq_kafka_open_sink(const vpq_plan_connector *conn, const vpq_schema *schema,
                              const vpq_intern *intern, char *err, size_t err_size) {
  const char *topic = NULL, *servers = NULL;
  for (int i = 0; i < conn->options.count; i++) {
    const vpq_plan_option *o = &conn->options.items[i];
    if (strcmp(o->key, "topic") == 0) topic = o->text;
    if (strcmp(o->key, "kafka.bootstrap.servers") == 0) servers = o->text;
  }
  if (!topic) {
    snprintf(err, err_size, "connector `kafka` needs `topic = '...'`");
    return NULL;
  }
  if (conn->format && strcmp(conn->format, "json") != 0) {
    snprintf(err, err_size, "the kafka sink writes format 'json' only");
    return NULL;
  }
  if (!servers) {
    snprintf(err, err_size, "connector `kafka` needs a cluster: `vpq run --brokers HOSTS` (or 'kafka.bootstrap.servers')");
    return NULL;
  }
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  bool ok = conf_set(conf, "enable.idempotence", "true", err, err_size) &&
            conf_set(conf, "compression.type", "zstd", err, err_size) &&
            conf_set(conf, "linger.ms", "5", err, err_size) && conf_set(conf, "log_level", "3", err, err_size);
  for (int i = 0; ok && i < conn->options.count; i++) {
    const vpq_plan_option *o = &conn->options.items[i];
    if (strncmp(o->key, "kafka.", 6) == 0) ok = conf_set(conf, o->key + 6, o->text ? o->text : "", err, err_size);
  }
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  kafka_sink *s = calloc(1, sizeof *s);
  if (!s) abort();
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_opaque(conf, s);
  char reason[512];
  s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason, sizeof reason);
  if (!s->rk) {
    snprintf(err, err_size, "cannot create a Kafka producer: %s", reason);
    rd_kafka_conf_destroy(conf);
    free(s);
    return NULL;
  }
  s->topic = rd_kafka_topic_new(s->rk, topic, NULL);
  s->base.vt = &kafka_sink_vt;
  s->schema = schema;
  s->intern = intern;
  vpq_json_keys_init(&s->keys, schema);
  for (int c = 0; c < schema->ncols; c++) s->nkeys += schema->cols[c].is_key;
  return &s->base;
}
