/* vpq_kafka.c — the Kafka connector: a source (messages → rows) and a sink (rows → messages).
 *
 * The source assigns itself every partition of its topic (no consumer-group join: offsets
 * come from `start`), polls messages and decodes each value straight into the schema's
 * columns; a message's origin is partition@offset and its event time, when the relation names
 * no `timestamp` column, the message timestamp. Partitions are tracked apart so the engine
 * keeps one watermark per partition. A bounded source notes each partition's end offset when
 * it opens and ends once it has read up to all of them.
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

/* ===== Shared by source and sink ===== */

/* The option `key` of a connector (NULL when absent). */
static const vpq_plan_option *option(const vpq_plan_connector *conn, const char *key) {
  for (int i = 0; i < conn->options.count; i++)
    if (strcmp(conn->options.items[i].key, key) == 0) return &conn->options.items[i];
  return NULL;
}

/* Checks what every Kafka connector needs: a topic, a cluster, JSON. */
static bool check_connector(const vpq_plan_connector *conn, char *err, size_t err_size) {
  const vpq_plan_option *topic = option(conn, "topic"), *servers = option(conn, "kafka.bootstrap.servers");
  if (!topic || !topic->text) {
    snprintf(err, err_size, "connector `kafka` needs `topic = '...'`");
    return false;
  }
  if (!servers || !servers->text) {
    snprintf(err, err_size, "connector `kafka` needs a cluster: `vpq run --brokers HOSTS` (or 'kafka.bootstrap.servers')");
    return false;
  }
  if (conn->format && strcmp(conn->format, "json") != 0) {
    snprintf(err, err_size, "connector `kafka` reads and writes format 'json' only");
    return false;
  }
  return true;
}

static bool conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err, size_t err_size) {
  char reason[512];
  if (rd_kafka_conf_set(conf, key, value, reason, sizeof reason) == RD_KAFKA_CONF_OK) return true;
  snprintf(err, err_size, "kafka property `%s`: %s", key, reason);
  return false;
}

/* Hands every `kafka.<property>` option to librdkafka. */
static bool pass_properties(rd_kafka_conf_t *conf, const vpq_plan_connector *conn, char *err, size_t err_size) {
  for (int i = 0; i < conn->options.count; i++) {
    const vpq_plan_option *o = &conn->options.items[i];
    if (strncmp(o->key, "kafka.", 6) == 0 && !conf_set(conf, o->key + 6, o->text ? o->text : "", err, err_size))
      return false;
  }
  return true;
}

/* ===== Sink ===== */

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

/* ===== Source ===== */

typedef struct kafka_source {
  vpq_source base;
  rd_kafka_t *rk;
  rd_kafka_queue_t *queue; /* the consumer queue, read in batches */
  char *topic;
  vpq_decoder *dec;
  vpq_bad_record_fn bad;
  void *bad_ctx;
  int64_t *end;     /* bounded: per partition, the offset the source ends at */
  int64_t *next;    /* per partition, the next offset to read */
} kafka_source;

static bool source_finished(const kafka_source *s) {
  if (!s->base.bounded) return false;
  for (int p = 0; p < s->base.partitions; p++)
    if (s->next[p] < s->end[p]) return false;
  return true;
}

static bool kafka_read(vpq_source *src, vpq_batch *out, vpq_origin *origins, bool *done) {
  kafka_source *s = (kafka_source *)src;
  char err[512];
  int n = 0;
  *done = false;
  rd_kafka_message_t *msgs[VPQ_BATCH_ROWS];
  ssize_t got = 0, at = 0;
  while (n < out->cap && !source_finished(s)) {
    if (at == got) {
      /* Messages come a batch at a time from the consumer queue: one call, not one per message. */
      size_t want = (size_t)(out->cap - n) < VPQ_BATCH_ROWS ? (size_t)(out->cap - n) : VPQ_BATCH_ROWS;
      got = rd_kafka_consume_batch_queue(s->queue, n ? 0 : 10, msgs, want);
      at = 0;
      if (got <= 0) break;
    }
    rd_kafka_message_t *msg = msgs[at++];
    if (msg->err) {
      rd_kafka_message_destroy(msg);
      continue; /* partition EOF and transient errors: librdkafka retries on its own */
    }
    int p = msg->partition;
    vpq_origin origin = {p, msg->offset};
    if (p >= 0 && p < s->base.partitions) s->next[p] = msg->offset + 1;
    if (s->base.bounded && p >= 0 && p < s->base.partitions && msg->offset >= s->end[p]) {
      rd_kafka_message_destroy(msg); /* beyond the end seen at open */
      continue;
    }
    const char *text = msg->payload ? msg->payload : "";
    if (!vpq_decoder_row(s->dec, text, msg->len, out, n, err, sizeof err)) {
      if (s->bad) s->bad(s->bad_ctx, err, origin, text, msg->len);
    } else {
      rd_kafka_timestamp_type_t type;
      int64_t ts = rd_kafka_message_timestamp(msg, &type);
      out->ts[n] = ts >= 0 ? ts : 0;
      origins[n++] = origin;
    }
    rd_kafka_message_destroy(msg);
  }
  while (at < got) rd_kafka_message_destroy(msgs[at++]); /* beyond the end: not needed */
  out->n = n;
  if (n == 0 && source_finished(s)) *done = true;
  return n > 0;
}

static void kafka_format_origin(const vpq_source *src, vpq_origin origin, char *buf, size_t size) {
  const kafka_source *s = (const kafka_source *)src;
  snprintf(buf, size, "%s/%d@%lld", s->topic, origin.partition, (long long)origin.offset);
}

static void kafka_source_close(vpq_source *src) {
  kafka_source *s = (kafka_source *)src;
  if (s->queue) rd_kafka_queue_destroy(s->queue);
  rd_kafka_consumer_close(s->rk);
  rd_kafka_destroy(s->rk);
  vpq_decoder_free(s->dec);
  free(s->topic);
  free(s->end);
  free(s->next);
  free(s);
}

static const vpq_source_vt kafka_source_vt = {kafka_read, kafka_format_origin, kafka_source_close};



vpq_source *vpq_kafka_open_source(const vpq_relation *rel, vpq_intern *intern, vpq_bad_record_fn bad,
                                  void *bad_ctx, char *err, size_t err_size) {
  const vpq_plan_connector *conn = &rel->source;
  const vpq_plan_option *topic = option(conn, "topic");
  const vpq_plan_option *start = option(conn, "start"), *bounded = option(conn, "bounded"), *group = option(conn, "group");
  if (!check_connector(conn, err, err_size)) return NULL;
  bool latest = start && start->text && strcmp(start->text, "latest") == 0;
  if (start && start->text && !latest && strcmp(start->text, "earliest") != 0) {
    snprintf(err, err_size, "`start` is 'earliest' or 'latest', not '%s'", start->text);
    return NULL;
  }
  char group_id[300];
  snprintf(group_id, sizeof group_id, "%s", group && group->text ? group->text : rel->name);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  bool ok = conf_set(conf, "group.id", group_id, err, err_size) &&
            conf_set(conf, "enable.auto.commit", "false", err, err_size) &&
            conf_set(conf, "enable.partition.eof", "false", err, err_size) &&
            conf_set(conf, "fetch.wait.max.ms", "50", err, err_size) && conf_set(conf, "log_level", "3", err, err_size);
  ok = ok && pass_properties(conf, conn, err, err_size);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  char reason[512];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, reason, sizeof reason);
  if (!rk) {
    snprintf(err, err_size, "cannot create a Kafka consumer: %s", reason);
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  rd_kafka_poll_set_consumer(rk);
  kafka_source *s = calloc(1, sizeof *s);
  if (!s) abort();
  s->base.vt = &kafka_source_vt;
  s->base.stamps_rows = rel->ts_col < 0;
  s->base.bounded = bounded && bounded->value.i;
  s->rk = rk;
  s->topic = strdup(topic->text);
  s->bad = bad;
  s->bad_ctx = bad_ctx;
  /* The topic's partitions, from the cluster's metadata. */
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic->text, NULL);
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  rd_kafka_topic_destroy(rkt);
  if (e || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt < 1) {
    snprintf(err, err_size, "topic `%s`: %s", topic->text,
             rd_kafka_err2str(e ? e : md && md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
    if (md) rd_kafka_metadata_destroy(md);
    kafka_source_close(&s->base);
    return NULL;
  }
  int partitions = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  s->base.partitions = partitions;
  s->end = calloc((size_t)partitions, sizeof *s->end);
  s->next = calloc((size_t)partitions, sizeof *s->next);
  if (!s->end || !s->next) abort();
  rd_kafka_topic_partition_list_t *assignment = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; p++) {
    int64_t low = 0, high = 0;
    e = rd_kafka_query_watermark_offsets(rk, topic->text, p, &low, &high, 10000);
    if (e) {
      snprintf(err, err_size, "topic `%s` partition %d: %s", topic->text, p, rd_kafka_err2str(e));
      rd_kafka_topic_partition_list_destroy(assignment);
      kafka_source_close(&s->base);
      return NULL;
    }
    s->end[p] = high;
    s->next[p] = latest ? high : low;
    rd_kafka_topic_partition_list_add(assignment, topic->text, p)->offset = latest ? high : low;
  }
  e = rd_kafka_assign(rk, assignment);
  rd_kafka_topic_partition_list_destroy(assignment);
  if (e) {
    snprintf(err, err_size, "cannot read `%s`: %s", topic->text, rd_kafka_err2str(e));
    kafka_source_close(&s->base);
    return NULL;
  }
  s->queue = rd_kafka_queue_get_consumer(rk);
  s->dec = vpq_decoder_new(VPQ_FORMAT_JSON, &rel->schema, intern);
  const vpq_plan_option *max_bytes = option(conn, "max_row_bytes");
  if (max_bytes) vpq_decoder_set_max_bytes(s->dec, (size_t)max_bytes->value.i);
  return &s->base;
}


/* ===== Line writer (dead-letter topics) ===== */

typedef struct line_producer {
  rd_kafka_t *rk;
  rd_kafka_topic_t *topic;
  int64_t failed;
  char first_error[256];
} line_producer;

static void on_line_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
  (void)rk;
  line_producer *p = opaque;
  if (!msg->err) return;
  if (p->failed++ == 0) snprintf(p->first_error, sizeof p->first_error, "%s", rd_kafka_err2str(msg->err));
}

static bool line_write(void *ctx, const char *line, size_t len, char *err, size_t err_size) {
  line_producer *p = ctx;
  while (rd_kafka_produce(p->topic, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)line, len, NULL, 0, NULL) != 0) {
    if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      snprintf(err, err_size, "producing to `%s`: %s", rd_kafka_topic_name(p->topic), rd_kafka_err2str(rd_kafka_last_error()));
      return false;
    }
    rd_kafka_poll(p->rk, 50);
  }
  rd_kafka_poll(p->rk, 0);
  return true;
}

static bool line_flush(void *ctx, char *err, size_t err_size) {
  line_producer *p = ctx;
  rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, 60 * 1000);
  if (e) snprintf(err, err_size, "flushing `%s`: %s", rd_kafka_topic_name(p->topic), rd_kafka_err2str(e));
  else if (p->failed) snprintf(err, err_size, "%lld message(s) to `%s` failed: %s", (long long)p->failed,
                               rd_kafka_topic_name(p->topic), p->first_error);
  bool ok = !e && !p->failed;
  p->failed = 0;
  return ok;
}

static void line_close(void *ctx) {
  line_producer *p = ctx;
  rd_kafka_flush(p->rk, 60 * 1000);
  rd_kafka_topic_destroy(p->topic);
  rd_kafka_destroy(p->rk);
  free(p);
}

bool vpq_kafka_open_line_writer(const vpq_plan_connector *conn, const char *topic, vpq_line_writer *out, char *err,
                                size_t err_size) {
  if (!check_connector(conn, err, err_size)) return false;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  bool ok = conf_set(conf, "enable.idempotence", "true", err, err_size) &&
            conf_set(conf, "compression.type", "zstd", err, err_size) && conf_set(conf, "log_level", "3", err, err_size) &&
            pass_properties(conf, conn, err, err_size);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return false;
  }
  line_producer *p = calloc(1, sizeof *p);
  if (!p) abort();
  rd_kafka_conf_set_dr_msg_cb(conf, on_line_delivery);
  rd_kafka_conf_set_opaque(conf, p);
  char reason[512];
  p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason, sizeof reason);
  if (!p->rk) {
    snprintf(err, err_size, "cannot create a Kafka producer: %s", reason);
    rd_kafka_conf_destroy(conf);
    free(p);
    return false;
  }
  p->topic = rd_kafka_topic_new(p->rk, topic, NULL);
  *out = (vpq_line_writer){line_write, line_flush, line_close, p};
  return true;
}

/* ===== Opening the sink ===== */

vpq_sink *vpq_kafka_open_sink(const vpq_plan_connector *conn, const vpq_schema *schema,
                              const vpq_intern *intern, char *err, size_t err_size) {
  if (!check_connector(conn, err, err_size)) return NULL;
  const char *topic = option(conn, "topic")->text;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  bool ok = conf_set(conf, "enable.idempotence", "true", err, err_size) &&
            conf_set(conf, "compression.type", "zstd", err, err_size) &&
            conf_set(conf, "linger.ms", "5", err, err_size) && conf_set(conf, "log_level", "3", err, err_size);
  ok = ok && pass_properties(conf, conn, err, err_size);
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
