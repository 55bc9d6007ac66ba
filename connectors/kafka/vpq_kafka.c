/* vpq_kafka.c — the Kafka connector: a source (messages → rows) and a sink (rows → messages).
 *
 * The source decodes each message value straight into the schema's columns, a batch of messages at
 * a time, their strings interned once per batch as the file source does (the messages are kept
 * until then, so nothing is copied); a message's origin is topic/partition/offset and its event
 * time, when the relation names no `timestamp` column, the message timestamp. Partitions are
 * tracked apart so the engine keeps one watermark per partition. An unbounded source reads as a
 * member of a consumer group (rebalances commit what is safe; a partition it keeps through a
 * rebalance is read on from where it was, its rows being in this member's state already); a bounded
 * one assigns itself every partition and ends at the end offsets seen when it opened; a partition
 * task (vpq_kafka_tasks.h) assigns itself its one partition. A checkpoint holds each partition's
 * next offset (save/restore), none for a group member's partition it no longer reads (its state
 * for it is dropped). A consumer with hooks commits a watermark with its offsets, in the
 * commit's metadata, and tells the hooks the one committed with a partition it starts over. A
 * consumer can give its messages to hooks instead of the JSON decoder, and a sink can take its
 * values from an encoder (vpq_kafka_int.h): the repartition exchanges are built so
 * (vpq_kafka_repartition.c).
 *
 * One idempotent producer per sink. A row's message key is its key columns (one column: its text;
 * several: a JSON array), its timestamp the row's event time, its value the row as a JSON object,
 * its partition murmur2 of the key (as Java clients). Failed deliveries (only those are reported)
 * are served on every write and on flush: each is counted and surfaces as a write/flush error with
 * librdkafka's reason, never silently dropped. A full local queue makes the writer wait for
 * deliveries (backpressure) instead of dropping. In a checkpointed run the sink is exactly-once:
 * rows are held until their checkpoint is durable, then produced with a `vpq.id` header, and a
 * restore reads each partition's tail to write only what is missing ('kafka_transactions' does the
 * same, each checkpoint's rows in one Kafka transaction; 'at_least_once' produces at once).
 *
 * A source's or sink's `partitions` option creates its topic, when missing, through the Admin
 * API before the first read or write (apply_partitions). Dead letters written to a topic are
 * keyed by their origin's topic/partition (line_key). vpq_kafka_check_option finds, for
 * `vpq check`, the options librdkafka would refuse.
 */
#include "vpq_kafka.h"

#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../vpq_codec.h"
#include "vpq_kafka_int.h"
#include "vpq_clock.h"

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

/* True for errors a cluster recovers from by itself (a leader moving, a broker restarting):
 * the request is worth repeating. */
static bool transient(rd_kafka_resp_err_t e) {
  switch (e) {
  case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
  case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
  case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
  case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR__TRANSPORT:
  case RD_KAFKA_RESP_ERR__TIMED_OUT:
  case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
  case RD_KAFKA_RESP_ERR__WAIT_COORD:
    return true;
  default:
    return false;
  }
}

enum { RETRY_MS = 60 * 1000 }; /* how long a request is repeated through transient errors */

/* Whether a request repeated since `started` is to be given up: RETRY_MS passed, or the process
 * was interrupted (vpq_interrupt). */
static bool retry_over(int64_t started) {
  return vpq_connector_interrupted || vpq_clock_monotonic_ms() - started >= RETRY_MS;
}

/* Says once on stderr that a request is being repeated. */
static void note_retry(bool *noted, const char *what, const char *topic, rd_kafka_resp_err_t e) {
  if (*noted) return;
  *noted = true;
  fprintf(stderr, "vpq: kafka: %s of `%s`: %s; retrying for up to %d s\n", what, topic, rd_kafka_err2str(e), RETRY_MS / 1000);
}

/* rd_kafka_query_watermark_offsets, repeated through transient errors. */
static rd_kafka_resp_err_t query_offsets(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t *low, int64_t *high) {
  bool noted = false;
  for (const int64_t started = vpq_clock_monotonic_ms();;) {
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, partition, low, high, 10000);
    if (!transient(e) || retry_over(started)) return e;
    note_retry(&noted, "the offsets", topic, e);
    rd_kafka_poll(rk, 500);
  }
}

/* The partition count of `topic` from the cluster's metadata, repeated through transient
 * errors (and, with `create_wait`, while the topic is being created); 0 with the error in *e. */
static int32_t query_partitions(rd_kafka_t *rk, const char *topic, bool create_wait, rd_kafka_resp_err_t *e) {
  bool noted = false;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  int32_t n = 0;
  for (const int64_t started = vpq_clock_monotonic_ms();;) {
    const struct rd_kafka_metadata *md = NULL;
    *e = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
    if (!*e && md->topic_cnt == 1) {
      *e = md->topics[0].err;
      if (!*e) n = md->topics[0].partition_cnt;
    } else if (!*e) {
      *e = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    }
    if (md) rd_kafka_metadata_destroy(md);
    if (n > 0) break;
    if (!*e) *e = RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
    bool creating = create_wait && *e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if ((!transient(*e) && !creating) || retry_over(started)) break;
    if (!creating) note_retry(&noted, "the metadata", topic, *e);
    rd_kafka_poll(rk, 200);
  }
  rd_kafka_topic_destroy(rkt);
  return n;
}

/* ===== Creating topics (`partitions`) ===== */

/* Asks the cluster to create `topic` with `partitions` partitions and its default replication
 * through the Admin API (CreateTopics), waiting at most 15 s. Returns NO_ERROR when it was
 * created, else the error (TOPIC_ALREADY_EXISTS included) with the reason in `reason`. A cluster
 * whose metadata names no controller among its brokers is not asked: librdkafka's mock cluster
 * (`vpq broker`, 2.0.2) names none and has no Admin API, and the request would wait for a
 * controller until it timed out. */
static rd_kafka_resp_err_t request_topic(rd_kafka_t *rk, const char *topic, int32_t partitions, char *reason,
                                         size_t reason_size) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, 10000);
  if (e) {
    snprintf(reason, reason_size, "the cluster's metadata: %s", rd_kafka_err2str(e));
    return e;
  }
  int32_t controller = rd_kafka_controllerid(rk, 0);
  bool listed = false;
  for (int i = 0; i < md->broker_cnt; i++) listed |= md->brokers[i].id == controller;
  rd_kafka_metadata_destroy(md);
  if (!listed) {
    snprintf(reason, reason_size, "the cluster names no controller among its brokers: it has no Admin API (as "
             "librdkafka's mock cluster, `vpq broker`)");
    return RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE;
  }
  rd_kafka_NewTopic_t *request = rd_kafka_NewTopic_new(topic, partitions, -1, reason, reason_size);
  if (!request) return RD_KAFKA_RESP_ERR__INVALID_ARG;
  rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t *options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  char ignored[256];
  rd_kafka_AdminOptions_set_request_timeout(options, 10000, ignored, sizeof ignored);
  rd_kafka_AdminOptions_set_operation_timeout(options, 10000, ignored, sizeof ignored);
  rd_kafka_CreateTopics(rk, &request, 1, options, queue);
  rd_kafka_event_t *event = rd_kafka_queue_poll(queue, 15000);
  e = RD_KAFKA_RESP_ERR__TIMED_OUT;
  snprintf(reason, reason_size, "no answer within 15 s");
  if (event) {
    e = rd_kafka_event_error(event);
    if (e) snprintf(reason, reason_size, "%s", rd_kafka_event_error_string(event));
    const rd_kafka_CreateTopics_result_t *result = e ? NULL : rd_kafka_event_CreateTopics_result(event);
    size_t n = 0;
    const rd_kafka_topic_result_t **topics = result ? rd_kafka_CreateTopics_result_topics(result, &n) : NULL;
    if (n == 1) {
      e = rd_kafka_topic_result_error(topics[0]);
      const char *why = rd_kafka_topic_result_error_string(topics[0]);
      snprintf(reason, reason_size, "%s", why && *why ? why : rd_kafka_err2str(e));
    }
    rd_kafka_event_destroy(event);
  }
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_NewTopic_destroy(request);
  rd_kafka_queue_destroy(queue);
  return e;
}

/* Applies the connector's `partitions` option before its first produce or subscribe: a topic
 * that does not exist yet is created with that many partitions (request_topic); one that
 * exists with another count is left as it is, with a line saying so; when the cluster does not
 * create it, a line names the topic and the reason, and the topic is left to the cluster's
 * auto-creation (with its default count). True when the topic was created here (its metadata
 * can lag behind: wait for it). */
static bool apply_partitions(rd_kafka_t *rk, const vpq_plan_connector *conn, const char *topic) {
  const vpq_plan_option *wanted = option(conn, "partitions");
  if (!wanted || wanted->value.i < 1) return false;
  const int32_t partitions = (int32_t)wanted->value.i;
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, 10000); /* every topic: asking for one creates it */
  if (e) {
    fprintf(stderr, "vpq: kafka: topic `%s`: `partitions` not applied: the cluster's metadata: %s\n", topic,
            rd_kafka_err2str(e));
    return false;
  }
  int32_t existing = -1;
  for (int i = 0; i < md->topic_cnt; i++)
    if (strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err) existing = md->topics[i].partition_cnt;
  rd_kafka_metadata_destroy(md);
  if (existing >= 0) {
    if (existing != partitions)
      fprintf(stderr, "vpq: kafka: topic `%s` exists with %d partition(s), not the %d of `partitions`: left as it is\n",
              topic, existing, partitions);
    return false;
  }
  char reason[512];
  e = request_topic(rk, topic, partitions, reason, sizeof reason);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    fprintf(stderr, "vpq: kafka: created topic `%s` with %d partition(s)\n", topic, partitions);
    return true;
  }
  if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) return false; /* another writer made it meanwhile */
  fprintf(stderr, "vpq: kafka: cannot create topic `%s` with %d partition(s) (`partitions`): %s; it is left to the "
          "cluster's auto-creation, with its default partition count\n", topic, partitions, reason);
  return false;
}

/* ===== Sink ===== */

/* A copy of the connector's `kafka.<property>` options (librdkafka names, then values),
 * NULL-terminated: what a sink needs to reach its cluster again later. */
static char **copy_properties(const vpq_plan_connector *conn) {
  char **props = calloc((size_t)conn->options.count * 2 + 1, sizeof *props);
  if (!props) abort();
  int n = 0;
  for (int i = 0; i < conn->options.count; i++) {
    const vpq_plan_option *o = &conn->options.items[i];
    if (strncmp(o->key, "kafka.", 6) != 0) continue;
    props[n++] = strdup(o->key + 6);
    props[n++] = strdup(o->text ? o->text : "");
    if (!props[n - 1] || !props[n - 2]) abort();
  }
  return props;
}

/* A message held for the next checkpoint (exactly-once): where it goes and its bytes in
 * kafka_sink.held. */
typedef struct held_message {
  int32_t partition;
  int64_t ts;
  size_t key_at, key_len, value_at, value_len;
  bool key_null; /* a single key that is NULL: a null message key */
} held_message;

typedef struct kafka_sink {
  vpq_sink base;
  rd_kafka_t *rk;
  rd_kafka_topic_t *topic;
  char **properties;        /* the connector's `kafka.<property>` options: key, value, ..., NULL */
  const vpq_schema *schema;
  const vpq_intern *intern;
  vpq_json_keys keys;
  int nkeys; /* key columns of the schema */
  bool windowed; /* the schema has window columns, which the message key does not hold */
  vpq_buf key, value;
  int64_t failed;           /* messages whose delivery failed */
  int64_t max_message;      /* the producer's message.max.bytes: a longer row is refused */
  char first_error[256];
  /* Exactly-once (a checkpointed run): rows are held until their checkpoint is durable, then
   * produced with a `vpq.id` header "<sink id>/<epoch>/<seq>". */
  char *sink_id;            /* NULL: rows are produced at once (at-least-once) */
  int32_t partitions;       /* of the topic: held messages get their partition when written (a plain
                               sink asks at its first NULL key; -1: could not be known) */
  bool key_null;            /* the encoded key is a single key that is NULL (encode_key) */
  held_message *msgs;
  int64_t nmsgs, msgs_cap;
  vpq_buf held;             /* keys and values of the held messages */
  uint64_t epoch;           /* the checkpoint the held messages belong to (set by save) */
  uint64_t next_epoch;      /* the least epoch the next save may take: above every one in the topic */
  /* After a restore from a checkpoint older than the topic's output (the newest was damaged):
   * the hashes (message_hash) of the messages written after it, sorted, and which of them a
   * replayed message has matched. The replay of their rows produces them again, in an order
   * and (rows without a key go round robin) over partitions a restart may change: each that
   * comes out the same is skipped. */
  uint64_t *replay;
  bool *replay_used;
  int64_t nreplay, replay_left;
  bool transactional;       /* processing_guarantee = 'kafka_transactions': each epoch in one transaction */
  uint64_t next_unkeyed;    /* round robin over partitions for rows without a key */
  /* An encoded sink (vpq_kafka_int.h): values come from `encode`, every key (the empty one
   * too) is partitioned by murmur2. */
  vpq_kafka_encode_fn encode;
  void *encode_ctx;
  void (*free_encode_ctx)(void *);
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
  s->key_null = false;
  int nkeys = s->nkeys;
  if (nkeys > 1) vpq_buf_append(&s->key, "[", 1);
  int written = 0;
  for (int c = 0; c < s->schema->ncols; c++) {
    if (!s->schema->cols[c].is_key) continue;
    if (written++) vpq_buf_append(&s->key, ",", 1);
    const vpq_vec *v = &batch->cols[c];
    if (v->null[row]) {
      if (nkeys > 1) vpq_buf_append(&s->key, "null", 4);
      else s->key_null = true;
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

/* What a message takes besides its key and value, counted against message.max.bytes (the
 * record's framing and the `vpq.id` header). */
enum { MESSAGE_OVERHEAD = 256 };

/* The producer's message.max.bytes. */
static int64_t producer_max_message(rd_kafka_t *rk) {
  char value[64];
  size_t size = sizeof value;
  if (rd_kafka_conf_get(rd_kafka_conf(rk), "message.max.bytes", value, &size) != RD_KAFKA_CONF_OK) return 1000000;
  return strtoll(value, NULL, 10);
}

/* Whether the key of a message goes out as a null key (produce). */
static bool key_goes_null(const kafka_sink *s, size_t key_len, bool key_null) {
  return !key_len && !(s->nkeys > 0 && !s->encode && !key_null);
}

/* Produces one message (waiting while the local queue is full: backpressure); `id` is the
 * exactly-once identity header or NULL. An empty value goes as null (a table's tombstone). In a
 * sink with key columns an empty key is the empty key (a single key ''), and `key_null` (a
 * single key that is NULL) the null key; in others no key is the null key. */
static bool produce(kafka_sink *s, int32_t partition, const char *key, size_t key_len, bool key_null, const char *value,
                    size_t value_len, int64_t ts, const char *id, char *err, size_t err_size) {
  if (!key_len) key = key_goes_null(s, key_len, key_null) ? NULL : "";
  for (;;) {
    rd_kafka_resp_err_t e =
        id ? rd_kafka_producev(s->rk, RD_KAFKA_V_RKT(s->topic), RD_KAFKA_V_PARTITION(partition),
                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
                               RD_KAFKA_V_VALUE(value_len ? (void *)value : NULL, value_len), RD_KAFKA_V_TIMESTAMP(ts),
                               RD_KAFKA_V_HEADER("vpq.id", id, -1), RD_KAFKA_V_END)
           : rd_kafka_producev(s->rk, RD_KAFKA_V_RKT(s->topic), RD_KAFKA_V_PARTITION(partition),
                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
                               RD_KAFKA_V_VALUE(value_len ? (void *)value : NULL, value_len), RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return true;
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      snprintf(err, err_size, "cannot produce to `%s`: %s", rd_kafka_topic_name(s->topic), rd_kafka_err2str(e));
      return false;
    }
    rd_kafka_poll(s->rk, 50); /* the local queue is full: wait for deliveries */
  }
}

/* The number of partitions of a sink's topic (created with the cluster's default when
 * missing), or 0 with `err` filled. */
static int32_t topic_partitions(rd_kafka_t *rk, rd_kafka_topic_t *topic, char *err, size_t err_size) {
  rd_kafka_resp_err_t e;
  int32_t n = query_partitions(rk, rd_kafka_topic_name(topic), true, &e);
  if (n < 1) snprintf(err, err_size, "topic `%s`: %s", rd_kafka_topic_name(topic), rd_kafka_err2str(e));
  return n;
}

/* The partition of the encoded key: the producer's partitioner (murmur2, as Java clients) for
 * a key; round robin for rows without one (a sink without key columns). In an encoded sink, and
 * one with key columns, the empty key is a key like any other, and a NULL key goes with it (its
 * rows keep their order). */
static int32_t key_partition(kafka_sink *s) {
  if (s->key.len || s->encode || s->nkeys > 0)
    return rd_kafka_msg_partitioner_murmur2(s->topic, s->key.len ? s->key.data : "", s->key.len, s->partitions, NULL, NULL);
  return (int32_t)(s->next_unkeyed++ % (uint64_t)s->partitions);
}

/* Holds the encoded key and value for the next checkpoint, bound for `partition`. */
static void hold(kafka_sink *s, int32_t partition, int64_t ts) {
  if (s->nmsgs == s->msgs_cap) {
    s->msgs_cap = s->msgs_cap ? 2 * s->msgs_cap : 1024;
    s->msgs = realloc(s->msgs, sizeof *s->msgs * (size_t)s->msgs_cap);
    if (!s->msgs) abort();
  }
  held_message *m = &s->msgs[s->nmsgs++];
  *m = (held_message){partition, ts, s->held.len, s->key.len, s->held.len + s->key.len, s->value.len, s->key_null};
  vpq_buf_append(&s->held, s->key.data ? s->key.data : "", s->key.len);
  vpq_buf_append(&s->held, s->value.data ? s->value.data : "", s->value.len);
  s->base.held_bytes = s->held.len + (size_t)s->nmsgs * sizeof *s->msgs;
}

static bool kafka_write(vpq_sink *sink, const vpq_batch *batch, const int *rows, int n, char *err, size_t err_size) {
  kafka_sink *s = (kafka_sink *)sink;
  for (int i = 0; i < n; i++) {
    int row = rows[i];
    /* A deletion is a tombstone of its key, unless the key does not name the row: a window's,
     * or none at all (a compacted topic would drop the other windows' rows, or refuse it). */
    if (batch->diff[row] < 0 && (s->nkeys == 0 || s->windowed) && !s->encode) continue;
    encode_key(s, batch, row);
    s->value.len = 0;
    if (s->encode) s->encode(s->encode_ctx, batch, row, &s->value);
    else if (batch->diff[row] >= 0) vpq_json_encode_row_keyed(&s->value, &s->keys, s->schema, batch, row, s->intern);
    /* else a deleted key: a tombstone, whose empty value produce() sends as null */
    if (!s->encode && (int64_t)(s->key.len + s->value.len) + MESSAGE_OVERHEAD > s->max_message) {
      /* It could never be produced: held, it would fail every checkpoint and every restore. */
      if (!s->base.refused++)
        snprintf(s->base.refused_reason, sizeof s->base.refused_reason,
                 "a row of %zu bytes is over the producer's message.max.bytes (%lld; set it with "
                 "'kafka.message.max.bytes', and the topic's max.message.bytes)",
                 s->key.len + s->value.len, (long long)s->max_message);
      continue;
    }
    if (s->key_null && !s->partitions) {
      /* asked once: the partition of the empty key (else murmur2_random, which scatters null keys) */
      char why[256];
      s->partitions = topic_partitions(s->rk, s->topic, why, sizeof why);
      if (s->partitions < 1) {
        fprintf(stderr, "vpq: kafka: %s: rows with a NULL key go to any partition\n", why);
        s->partitions = -1;
      }
    }
    int32_t partition = s->sink_id || s->encode || (s->key_null && s->partitions > 0) ? key_partition(s)
                                                                                     : RD_KAFKA_PARTITION_UA;
    if (s->sink_id) hold(s, partition, batch->ts[row]);
    else if (!produce(s, partition, s->key.data, s->key.len, s->key_null, s->value.data, s->value.len, batch->ts[row],
                      NULL, err, err_size))
      return false;
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
  if (s->base.replayed_present || s->replay_left)
    fprintf(stderr,
            "vpq: `%s`: %lld replayed row(s) were in the topic already and not written again; %lld the run "
            "before wrote after the restored checkpoint did not come out again\n",
            rd_kafka_topic_name(s->topic), (long long)s->base.replayed_present, (long long)s->replay_left);
  rd_kafka_topic_destroy(s->topic);
  rd_kafka_destroy(s->rk);
  vpq_json_keys_free(&s->keys);
  vpq_buf_free(&s->key);
  vpq_buf_free(&s->value);
  vpq_buf_free(&s->held);
  free(s->msgs);
  free(s->replay), free(s->replay_used);
  free(s->sink_id);
  for (char **p = s->properties; p && *p; p++) free(*p);
  free(s->properties);
  if (s->free_encode_ctx) s->free_encode_ctx(s->encode_ctx);
  free(s);
}

/* Checkpoint: every message of earlier checkpoints delivered (so the checkpoint never runs
 * ahead of the topic), then the held messages written into the checkpoint as `epoch`'s. */
static bool kafka_save(vpq_sink *sink, uint64_t epoch, vpq_ckpt_out *out, char *err, size_t err_size) {
  kafka_sink *s = (kafka_sink *)sink;
  if (!kafka_flush(sink, err, err_size)) return false;
  s->epoch = epoch > s->next_epoch ? epoch : s->next_epoch;
  s->next_epoch = s->epoch + 1;
  vpq_ckpt_put_u64(out, s->epoch);
  vpq_ckpt_put_u64(out, (uint64_t)s->nmsgs);
  for (int64_t i = 0; i < s->nmsgs; i++) {
    const held_message *m = &s->msgs[i];
    vpq_ckpt_put_u64(out, (uint64_t)m->partition);
    vpq_ckpt_put_i64(out, m->ts);
    vpq_ckpt_put_bytes(out, s->held.data + m->key_at, m->key_len);
    vpq_ckpt_put_bytes(out, s->held.data + m->value_at, m->value_len);
  }
  /* What is left of the replay (before the held messages are matched in it). */
  vpq_ckpt_put_u64(out, (uint64_t)s->replay_left);
  for (int64_t i = 0; i < s->nreplay; i++)
    if (!s->replay_used[i]) vpq_ckpt_put_u64(out, s->replay[i]);
  return true;
}

/* A message's key (or its absence) and value, hashed (FNV-1a). */
static uint64_t message_hash(const void *key, size_t key_len, bool key_null, const void *value, size_t value_len) {
  uint64_t h = 0xcbf29ce484222325ull ^ (key_null ? 1 : 2);
  const unsigned char *parts[2] = {key, value};
  const size_t lens[2] = {key_null ? 0 : key_len, value_len};
  for (int k = 0; k < 2; k++) {
    for (size_t i = 0; i < lens[k]; i++) h = (h ^ parts[k][i]) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull;
  }
  return h;
}

/* Whether the topic holds held message m from a run after the restored checkpoint
 * (kafka_sink.replay) that no replayed message has matched yet; if so it is matched now. */
static bool replayed(kafka_sink *s, const held_message *m) {
  if (!s->replay_left) return false;
  const uint64_t h = message_hash(s->held.data + m->key_at, m->key_len, key_goes_null(s, m->key_len, m->key_null),
                                  s->held.data + m->value_at, m->value_len);
  int64_t lo = 0, hi = s->nreplay;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (s->replay[mid] < h) lo = mid + 1;
    else hi = mid;
  }
  for (; lo < s->nreplay && s->replay[lo] == h; lo++)
    if (!s->replay_used[lo]) {
      s->replay_used[lo] = true;
      s->replay_left--;
      return true;
    }
  return false;
}

/* Produces the held messages with their identities; `skip_to[p]`: messages of partition p with
 * a sequence number up to it are already in the topic. A message the topic holds from a run
 * after the restored checkpoint (replayed) is skipped: a restore's held messages are matched
 * against the replay as they were before the crash, so the same ones are skipped. */
static bool produce_held(kafka_sink *s, const int64_t *skip_to, char *err, size_t err_size) {
  char id[512];
  for (int64_t i = 0; i < s->nmsgs; i++) {
    const held_message *m = &s->msgs[i];
    if (replayed(s, m)) {
      s->base.replayed_present++;
      continue;
    }
    if (skip_to && i <= skip_to[m->partition]) {
      s->base.resumed_present++;
      continue;
    }
    if (skip_to) s->base.resumed_written++;
    snprintf(id, sizeof id, "%s/%llu/%lld", s->sink_id, (unsigned long long)s->epoch, (long long)i);
    if (!produce(s, m->partition, s->held.data + m->key_at, m->key_len, m->key_null, s->held.data + m->value_at,
                 m->value_len, m->ts, id, err, err_size))
      return false;
  }
  s->nmsgs = 0;
  s->held.len = 0;
  s->base.held_bytes = 0;
  rd_kafka_poll(s->rk, 0);
  return true;
}

/* Says what went wrong with a transaction call (and frees the error); false when there was one. */
static bool txn_ok(rd_kafka_error_t *error, const char *what, char *err, size_t err_size) {
  if (!error) return true;
  snprintf(err, err_size, "%s: %s", what, rd_kafka_error_string(error));
  rd_kafka_error_destroy(error);
  return false;
}

/* Produces the held messages not yet in the topic (skip_to as in produce_held); a
 * transactional sink does it in one transaction, committed before it returns, so that
 * read_committed consumers see a checkpoint's output whole or not at all. */
static bool write_held(kafka_sink *s, const int64_t *skip_to, char *err, size_t err_size) {
  if (!s->transactional) return produce_held(s, skip_to, err, err_size);
  if (!s->nmsgs) return true;
  if (!txn_ok(rd_kafka_begin_transaction(s->rk), "beginning a transaction", err, err_size)) return false;
  bool ok = produce_held(s, skip_to, err, err_size);
  if (ok) return txn_ok(rd_kafka_commit_transaction(s->rk, 60 * 1000), "committing a transaction", err, err_size);
  txn_ok(rd_kafka_abort_transaction(s->rk, 60 * 1000), "aborting a transaction", err, err_size);
  return false;
}

/* The checkpoint is durable: the held messages go out (the next checkpoint waits for them). */
static bool kafka_sink_commit(vpq_sink *sink, char *err, size_t err_size) {
  return write_held((kafka_sink *)sink, NULL, err, err_size);
}

/* What a partition's tail holds of this sink's output: its newest identity (epoch and
 * sequence number; found false when none), and the hashes of the messages of epochs after the
 * restored checkpoint's (a run that got further wrote them), in order. */
typedef struct tail_scan {
  bool found;
  uint64_t epoch;
  int64_t seq;
  bool reached; /* the scan began at or before the first message of an epoch after the restored one */
  uint64_t *later;
  int64_t nlater, later_cap;
} tail_scan;

/* Scans `partition` from offset `from` to its end `high` into *scan. False + err when it
 * cannot be read. */
static bool scan_tail(kafka_sink *s, rd_kafka_t *reader, int32_t partition, int64_t from, int64_t high,
                      tail_scan *scan, char *err, size_t err_size) {
  const char *topic = rd_kafka_topic_name(s->topic);
  *scan = (tail_scan){.later = scan->later, .later_cap = scan->later_cap};
  bool first = true;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(reader, topic, NULL);
  rd_kafka_consume_start(rkt, partition, from);
  size_t prefix = strlen(s->sink_id);
  int64_t at = from;
  int idle = 0;
  while (at < high && idle < 300) {
    rd_kafka_message_t *msgs[512];
    ssize_t got = rd_kafka_consume_batch(rkt, partition, 100, msgs, 512);
    idle = got > 0 ? 0 : idle + 1;
    for (ssize_t i = 0; i < got; i++) {
      rd_kafka_message_t *m = msgs[i];
      rd_kafka_headers_t *hdrs = NULL;
      const void *value;
      size_t size;
      if (!m->err) {
        at = m->offset + 1;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_header_get_last(hdrs, "vpq.id", &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR && size > prefix + 1 &&
            memcmp(value, s->sink_id, prefix) == 0 && ((const char *)value)[prefix] == '/') {
          char text[128];
          size_t n = size - prefix - 1 < sizeof text - 1 ? size - prefix - 1 : sizeof text - 1;
          memcpy(text, (const char *)value + prefix + 1, n);
          text[n] = '\0';
          unsigned long long ep;
          long long sq;
          if (sscanf(text, "%llu/%lld", &ep, &sq) == 2) {
            if (first) scan->reached = ep <= s->epoch;
            first = false;
            scan->found = true;
            scan->epoch = ep;
            scan->seq = sq;
            if (ep > s->epoch) {
              if (scan->nlater == scan->later_cap) {
                scan->later_cap = scan->later_cap ? 2 * scan->later_cap : 256;
                scan->later = realloc(scan->later, sizeof *scan->later * (size_t)scan->later_cap);
                if (!scan->later) abort();
              }
              scan->later[scan->nlater++] = message_hash(m->key, m->key_len, !m->key, m->payload, m->len);
            }
          }
        }
      }
      rd_kafka_message_destroy(m);
    }
  }
  rd_kafka_consume_stop(rkt, partition);
  rd_kafka_topic_destroy(rkt);
  if (at < high) {
    snprintf(err, err_size, "could not read the end of `%s` partition %d (offset %lld of %lld)", topic, partition,
             (long long)at, (long long)high);
    return false;
  }
  return true;
}

/* qsort's order of two hashes. */
static int compare_hashes(const void *a, const void *b) {
  const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Adds n hashes to the replay (kafka_sink.replay). */
static void add_replay(kafka_sink *s, const uint64_t *hashes, int64_t n) {
  int64_t kept = 0;
  for (int64_t i = 0; i < s->nreplay; i++)
    if (!s->replay_used[i]) s->replay[kept++] = s->replay[i];
  const size_t total = (size_t)(kept + n);
  s->replay = realloc(s->replay, sizeof *s->replay * (total ? total : 1));
  free(s->replay_used);
  s->replay_used = calloc(total ? total : 1, sizeof *s->replay_used);
  if (!s->replay || !s->replay_used) abort();
  memcpy(s->replay + kept, hashes, sizeof *hashes * (size_t)n);
  qsort(s->replay, total, sizeof *s->replay, compare_hashes);
  s->nreplay = s->replay_left = (int64_t)total;
}

/* Scans the tail of `partition` (its last TAIL messages, more while they begin inside the
 * output of epochs after the restored checkpoint) into *scan. */
static bool last_written(kafka_sink *s, rd_kafka_t *reader, int32_t partition, tail_scan *scan, char *err,
                         size_t err_size) {
  enum { TAIL = 20000 };
  int64_t low = 0, high = 0;
  rd_kafka_resp_err_t e = query_offsets(reader, rd_kafka_topic_name(s->topic), partition, &low, &high);
  if (e) {
    snprintf(err, err_size, "reading the end of `%s` partition %d: %s", rd_kafka_topic_name(s->topic), partition,
             rd_kafka_err2str(e));
    return false;
  }
  scan->found = false, scan->nlater = 0;
  for (int64_t span = TAIL; high > low; span *= 4) {
    const int64_t from = high - span > low ? high - span : low;
    if (!scan_tail(s, reader, partition, from, high, scan, err, err_size)) return false;
    if (scan->reached || !scan->nlater || from == low) break;
  }
  return true;
}

/* Resuming: the output held at the checkpoint may be in the topic in part (the process died
 * while producing it). Each partition's tail says how far it got; the rest is produced. When
 * the restored checkpoint is not the newest (that one was damaged), the tail also holds what
 * the run went on to write after it: its messages become kafka_sink.replay, and the sink's
 * epochs go on above theirs, so that identities stay unique. */
static bool kafka_restore(vpq_sink *sink, vpq_ckpt_in *in, char *err, size_t err_size) {
  kafka_sink *s = (kafka_sink *)sink;
  s->epoch = vpq_ckpt_get_u64(in);
  int64_t n = vpq_ckpt_get_count(in, INT64_MAX / 4);
  s->nmsgs = 0;
  s->held.len = 0;
  for (int64_t i = 0; i < n && !in->error; i++) {
    uint64_t partition = vpq_ckpt_get_u64(in);
    int64_t ts = vpq_ckpt_get_i64(in);
    size_t klen, vlen;
    const void *key = vpq_ckpt_get_bytes(in, &klen);
    const void *value = vpq_ckpt_get_bytes(in, &vlen);
    if (in->error) break;
    if (partition >= (uint64_t)s->partitions) {
      vpq_ckpt_fail(in, "a held message for a partition the topic does not have");
      break;
    }
    s->key.len = 0;
    s->value.len = 0;
    vpq_buf_append(&s->key, key, klen);
    vpq_buf_append(&s->value, value, vlen);
    hold(s, (int32_t)partition, ts);
  }
  const int64_t count = vpq_ckpt_get_count(in, INT64_MAX / 16);
  uint64_t *hashes = count > 0 ? malloc(sizeof *hashes * (size_t)count) : NULL;
  if (count > 0 && !hashes) abort();
  for (int64_t i = 0; i < count && !in->error; i++) hashes[i] = vpq_ckpt_get_u64(in);
  if (!in->error && count > 0) add_replay(s, hashes, count);
  free(hashes);
  if (in->error) {
    snprintf(err, err_size, "`%s`: %s", rd_kafka_topic_name(s->topic), in->error);
    return false;
  }
  s->next_epoch = s->epoch + 1;
  if (!s->nmsgs && !sink->restored_older) return true;
  int64_t *skip_to = malloc(sizeof *skip_to * (size_t)s->partitions);
  if (!skip_to) abort();
  char reason[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_t *reader = NULL;
  bool ok = conf_set(conf, "log_level", "3", err, err_size) &&
            conf_set(conf, "isolation.level", "read_committed", err, err_size);
  for (char **p = s->properties; ok && *p; p += 2) ok = conf_set(conf, p[0], p[1], err, err_size);
  if (ok && !(reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, reason, sizeof reason))) {
    snprintf(err, err_size, "cannot create a Kafka consumer: %s", reason);
    ok = false;
  }
  if (!reader) rd_kafka_conf_destroy(conf);
  /* Every partition after a fallback; else those with held messages, as they are all a normal
   * restore needs. */
  tail_scan scan = {0};
  uint64_t *later = NULL;
  int64_t nlater = 0;
  for (int32_t p = 0; ok && p < s->partitions; p++) {
    skip_to[p] = -1;
    bool any = sink->restored_older;
    for (int64_t i = 0; i < s->nmsgs && !any; i++) any = s->msgs[i].partition == p;
    if (!any) continue;
    ok = last_written(s, reader, p, &scan, err, err_size);
    if (!ok || !scan.found) continue;
    if (scan.epoch >= s->next_epoch) s->next_epoch = scan.epoch + 1;
    if (scan.epoch > s->epoch) skip_to[p] = INT64_MAX;
    else if (scan.epoch == s->epoch) skip_to[p] = scan.seq;
    if (!scan.nlater) continue;
    later = realloc(later, sizeof *later * (size_t)(nlater + scan.nlater));
    if (!later) abort();
    memcpy(later + nlater, scan.later, sizeof *later * (size_t)scan.nlater);
    nlater += scan.nlater;
  }
  free(scan.later);
  if (reader) rd_kafka_destroy(reader);
  /* The held messages first (in the topic already, or written now): they take their turn in
   * the replay restored with them, not in the messages that came after them. */
  ok = ok && write_held(s, skip_to, err, err_size) && kafka_flush(sink, err, err_size);
  if (ok && nlater) {
    add_replay(s, later, nlater);
    fprintf(stderr,
            "vpq: `%s`: %lld message(s) are from after the restored checkpoint (the run before went further): "
            "the rows replayed that come out the same are not written again\n",
            rd_kafka_topic_name(s->topic), (long long)nlater);
  }
  free(later);
  free(skip_to);
  return ok;
}

static const vpq_sink_vt kafka_sink_vt = {kafka_write, kafka_flush, kafka_close, NULL, NULL, NULL};
static const vpq_sink_vt kafka_exactly_once_vt = {kafka_write, kafka_flush, kafka_close, kafka_save, kafka_sink_commit,
                                                  kafka_restore};

/* ===== Source ===== */

/* A run of consecutive messages of one partition and the latest event time among them: the
 * source may commit the start of a segment once every earlier segment is safe. */
typedef struct kafka_segment {
  int64_t start;  /* offset of its first message */
  int64_t max_ts;
} kafka_segment;

typedef struct kafka_partition {
  kafka_segment *segs;
  int nsegs, cap;
  int64_t rows_in_last; /* messages in the last segment */
} kafka_partition;

enum { SEGMENT_ROWS = 64 };

typedef struct kafka_source {
  vpq_source base;
  rd_kafka_t *rk;
  rd_kafka_queue_t *queue; /* the consumer queue, read in batches */
  char *topic;
  char *group_id;   /* consumer-group mode: the group */
  vpq_decoder *dec;
  vpq_bad_record_fn bad;
  void *bad_ctx;
  int64_t *end;     /* bounded: per partition, the offset the source ends at */
  int64_t *next;    /* per partition, the next offset to read */
  int64_t *resume;  /* per partition, the checkpoint's offset to read from (-1: none) */
  int task_partition; /* a partition task's one partition, or -1 */
  bool group;       /* consumer-group mode: partitions come and go with rebalances */
  bool closing;     /* kafka_source_close has begun: assignments are declined */
  int ts_col;       /* the event-time column, or -1 (message time) */
  kafka_partition *parts;
  int64_t safe_ts;  /* the last safe time the engine reported (see vpq_source_vt.commit) */
  bool *owned;      /* per partition: assigned to this member now (base.owned) */
  bool *revoked;    /* per partition: taken away by the rebalance in progress (kept if given back) */
  bool *continued;  /* scratch of on_rebalance: partitions read on from where they were */
  int64_t *floor;   /* per partition: the watermark committed with the offset it started from
                       (VPQ_TS_MIN: none), committed again while this member has none to give */
  int wait_ms;      /* how long a read waits for its first message */
  vpq_kafka_reader_hooks hooks; /* hooks.message set: messages go to the hooks, not the decoder */
  rd_kafka_message_t **decoded; /* the messages whose rows the read in progress decoded (kafka_read) */
  int ndecoded, decoded_cap;
  rd_kafka_message_t *held[VPQ_BATCH_ROWS]; /* taken from the queue by a read that served an
                                               assignment, for the reads after the rows it owes */
  ssize_t nheld, held_at;
  const vpq_schema *schema;
  int tombstone_key; /* a table with one key column: that column, and a message with a key and a
                        null value (a tombstone) deletes the key; -1: a null value is malformed */
  vpq_buf tombstone; /* the JSON object a tombstone stands for (tombstone_row) */
} kafka_source;

static bool source_finished(const kafka_source *s) {
  if (!s->base.bounded) return false;
  for (int p = 0; p < s->base.partitions; p++)
    if (s->next[p] < s->end[p]) return false;
  return true;
}

/* Notes a message of a partition in its segments. */
static void segment_note(kafka_partition *part, int64_t offset, int64_t ts) {
  if (!part->nsegs || part->rows_in_last >= SEGMENT_ROWS) {
    if (part->nsegs == part->cap) {
      part->cap = part->cap ? 2 * part->cap : 16;
      part->segs = realloc(part->segs, sizeof *part->segs * (size_t)part->cap);
      if (!part->segs) abort();
    }
    part->segs[part->nsegs++] = (kafka_segment){offset, VPQ_TS_MIN};
    part->rows_in_last = 0;
  }
  kafka_segment *last = &part->segs[part->nsegs - 1];
  if (ts > last->max_ts) last->max_ts = ts;
  part->rows_in_last++;
}

/* The offset from which partition p must be read again: the start of its first segment that
 * holds a row at or after safe_ts (the next offset when none does). Drops the segments
 * before it. */
static int64_t safe_offset(kafka_source *s, int p, int64_t safe_ts) {
  kafka_partition *part = &s->parts[p];
  int keep = 0;
  while (keep < part->nsegs && part->segs[keep].max_ts < safe_ts) keep++;
  int64_t offset = keep < part->nsegs ? part->segs[keep].start : s->next[p];
  if (keep == part->nsegs) part->rows_in_last = 0;
  if (keep) memmove(part->segs, part->segs + keep, sizeof *part->segs * (size_t)(part->nsegs - keep));
  part->nsegs -= keep;
  return offset;
}

/* The prefix of a commit's metadata that carries the watermark committed with the offset. */
static const char WM_METADATA[] = "vpq.wm=";

/* Sets the metadata of a partition to commit: the watermark `wm` (nothing for VPQ_TS_MIN). */
static void put_watermark(rd_kafka_topic_partition_t *part, int64_t wm) {
  if (wm == VPQ_TS_MIN) return;
  char text[64];
  int len = snprintf(text, sizeof text, "%s%lld", WM_METADATA, (long long)wm);
  part->metadata = malloc((size_t)len + 1);
  if (!part->metadata) abort();
  memcpy(part->metadata, text, (size_t)len + 1);
  part->metadata_size = (size_t)len;
}

/* The watermark in a committed partition's metadata (VPQ_TS_MIN: none). */
static int64_t get_watermark(const rd_kafka_topic_partition_t *part) {
  size_t prefix = sizeof WM_METADATA - 1;
  char text[64];
  if (part->err || !part->metadata || part->metadata_size <= prefix || part->metadata_size >= sizeof text ||
      memcmp(part->metadata, WM_METADATA, prefix) != 0)
    return VPQ_TS_MIN;
  memcpy(text, (const char *)part->metadata + prefix, part->metadata_size - prefix);
  text[part->metadata_size - prefix] = '\0';
  char *end;
  long long wm = strtoll(text, &end, 10);
  return *end ? VPQ_TS_MIN : (int64_t)wm;
}

/* Commits the safe offsets of the assigned partitions (synchronously when `sync`), each with
 * the hooks' watermark once the engine has said what is safe (before that, the watermark the
 * partition's offset came with). */
static void commit_safe(kafka_source *s, bool sync) {
  rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(s->base.partitions);
  int64_t wm = s->hooks.commit_watermark && s->safe_ts != VPQ_TS_MIN ? s->hooks.commit_watermark(s->hooks.ctx) : VPQ_TS_MIN;
  for (int p = 0; p < s->base.partitions; p++) {
    if (!s->owned[p] || (!s->parts[p].nsegs && s->next[p] < 0)) continue;
    int64_t offset = safe_offset(s, p, s->safe_ts);
    if (offset < 0) continue;
    rd_kafka_topic_partition_t *part = rd_kafka_topic_partition_list_add(list, s->topic, p);
    part->offset = offset;
    if (s->hooks.commit_watermark) put_watermark(part, wm > s->floor[p] ? wm : s->floor[p]);
  }
  if (list->cnt) rd_kafka_commit(s->rk, list, sync ? 0 : 1);
  rd_kafka_topic_partition_list_destroy(list);
}

static void kafka_commit(vpq_source *src, int64_t safe_ts) {
  kafka_source *s = (kafka_source *)src;
  if (!s->group) return;
  s->safe_ts = safe_ts;
  commit_safe(s, false);
}

/* Reads the watermarks committed with the offsets of the partitions of `parts` that start
 * over (not continued) into s->floor (VPQ_TS_MIN when none was committed or the group cannot
 * say). */
static void read_floors(kafka_source *s, const rd_kafka_topic_partition_list_t *parts) {
  rd_kafka_topic_partition_list_t *fresh = rd_kafka_topic_partition_list_new(parts->cnt);
  for (int i = 0; i < parts->cnt; i++) {
    int p = parts->elems[i].partition;
    if (p < 0 || p >= s->base.partitions || s->continued[p]) continue;
    s->floor[p] = VPQ_TS_MIN;
    rd_kafka_topic_partition_list_add(fresh, s->topic, p);
  }
  if (fresh->cnt && rd_kafka_committed(s->rk, fresh, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
    for (int i = 0; i < fresh->cnt; i++) s->floor[fresh->elems[i].partition] = get_watermark(&fresh->elems[i]);
  rd_kafka_topic_partition_list_destroy(fresh);
}

/* Rebalances (consumer-group mode): on assignment, read the new partitions from their
 * committed offsets (or `start`), a partition this member had before the rebalance from where
 * it was (its rows are in this member's state already: reading them again would count them
 * twice); on revocation, commit what is safe, then let them go. With hooks that commit a
 * watermark, a partition that starts over learns the one committed with its offset. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t *parts, void *opaque) {
  kafka_source *s = opaque;
  if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && s->closing) {
    /* An assignment while the consumer closes (its group still rebalancing after a member
     * died): declined. Reading its floors asked the group for committed offsets from inside
     * rd_kafka_consumer_close, which then never returned (audit 42: SIGTERM hung the run). */
    rd_kafka_assign(rk, NULL);
  } else if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    s->base.awaiting_partitions = false;
    s->base.assignments++;
    for (int p = 0; p < s->base.partitions; p++) s->continued[p] = false;
    for (int i = 0; i < parts->cnt; i++) {
      int p = parts->elems[i].partition;
      if (p < 0 || p >= s->base.partitions) continue;
      s->owned[p] = true;
      if (s->resume[p] >= 0) {
        /* The first assignment after a restore reads from the checkpoint's offset. */
        s->parts[p].nsegs = 0;
        s->parts[p].rows_in_last = 0;
        parts->elems[i].offset = s->resume[p];
        s->next[p] = s->resume[p];
        s->resume[p] = -1;
        s->continued[p] = true;
      } else if (s->revoked[p] && s->next[p] >= 0) {
        parts->elems[i].offset = s->next[p];
        s->continued[p] = true;
      } else {
        s->parts[p].nsegs = 0;
        s->parts[p].rows_in_last = 0;
        s->next[p] = -1;
      }
    }
    for (int p = 0; p < s->base.partitions; p++) s->revoked[p] = false;
    if (s->hooks.commit_watermark) read_floors(s, parts);
    rd_kafka_assign(rk, parts);
    /* Say which partitions this member reads (a member of a scaled-out run, or a test,
     * waits for the group to settle on these lines). */
    char list[256] = "";
    for (int p = 0, at = 0; p < s->base.partitions && at < (int)sizeof list - 16; p++)
      if (s->owned[p]) at += snprintf(list + at, sizeof list - (size_t)at, "%s%d", at ? ", " : "", p);
    fprintf(stderr, "vpq: group `%s` gave this member partitions [%s] of `%s`\n", s->group_id, list, s->topic);
    if (s->hooks.ownership) s->hooks.ownership(s->hooks.ctx, s->owned, s->continued, s->floor);
  } else {
    commit_safe(s, true);
    for (int i = 0; i < parts->cnt; i++) {
      int p = parts->elems[i].partition;
      if (p < 0 || p >= s->base.partitions) continue;
      s->revoked[p] = s->owned[p];
      s->owned[p] = false;
    }
    rd_kafka_assign(rk, NULL);
  }
}

/* How far kafka_read fetches ahead into the cache: the messages (librdkafka's broker thread
 * wrote them on another core, and the consumer queue holds up to 64 MiB of them, so they are
 * rarely still cached) PREFETCH_MESSAGES ahead, their payloads PREFETCH_PAYLOADS ahead (by then
 * the message, which points to its payload, has arrived), up to PREFETCH_PAYLOAD_BYTES of each. */
enum { PREFETCH_MESSAGES = 8, PREFETCH_PAYLOADS = 4, PREFETCH_PAYLOAD_BYTES = 256 };

/* Prefetches for the message at msgs[at] of the `got` being read (see PREFETCH_MESSAGES). */
static inline void prefetch_ahead(rd_kafka_message_t *const *msgs, ssize_t at, ssize_t got) {
  if (at + PREFETCH_MESSAGES < got) {
    __builtin_prefetch(msgs[at + PREFETCH_MESSAGES]);
    __builtin_prefetch((const char *)msgs[at + PREFETCH_MESSAGES] + 64);
  }
  if (at + PREFETCH_PAYLOADS < got && msgs[at + PREFETCH_PAYLOADS]->payload) {
    const char *payload = msgs[at + PREFETCH_PAYLOADS]->payload;
    size_t len = msgs[at + PREFETCH_PAYLOADS]->len;
    if (len > PREFETCH_PAYLOAD_BYTES) len = PREFETCH_PAYLOAD_BYTES;
    for (size_t off = 0; off < len; off += 64) __builtin_prefetch(payload + off);
    if (len) __builtin_prefetch(payload + len - 1);
  }
}

/* Whether a message key is one JSON number (BIGINT, TIMESTAMP, DOUBLE) or boolean, as a key
 * column of that type is written: nothing else may be pasted into a tombstone's row. */
static bool key_is_scalar(vpq_type type, const char *key, size_t len) {
  if (type == VPQ_TYPE_BOOLEAN) return (len == 4 && !memcmp(key, "true", 4)) || (len == 5 && !memcmp(key, "false", 5));
  const char *allowed = type == VPQ_TYPE_DOUBLE ? "0123456789+-.eE" : "0123456789-";
  for (size_t i = 0; i < len; i++)
    if (!key[i] || !strchr(allowed, key[i])) return false;
  return len > 0;
}

/* The row a tombstone stands for, as JSON for the decoder: the key column from the message key
 * (a STRING key's text, another type's number or boolean) and, with an event-time column, the
 * message time; every other column NULL. False when the key is not of the column's type. */
static bool tombstone_row(kafka_source *s, const rd_kafka_message_t *msg) {
  const vpq_column *key = &s->schema->cols[s->tombstone_key];
  vpq_buf *b = &s->tombstone;
  b->len = 0;
  if (key->type != VPQ_TYPE_STRING && !key_is_scalar(key->type, msg->key, msg->key_len)) return false;
  vpq_buf_append(b, "{", 1);
  vpq_json_encode_string(b, key->name, strlen(key->name));
  vpq_buf_append(b, ":", 1);
  if (key->type == VPQ_TYPE_STRING) vpq_json_encode_string(b, msg->key, msg->key_len);
  else vpq_buf_append(b, msg->key, msg->key_len);
  if (s->ts_col >= 0 && s->ts_col != s->tombstone_key) {
    rd_kafka_timestamp_type_t type;
    const int64_t ts = rd_kafka_message_timestamp(msg, &type);
    const char *name = s->schema->cols[s->ts_col].name;
    vpq_buf_append(b, ",", 1);
    vpq_json_encode_string(b, name, strlen(name));
    vpq_buf_printf(b, ":%lld", (long long)(ts >= 0 ? ts : 0));
  }
  vpq_buf_append(b, "}", 1);
  return true;
}

/* Takes up to `want` messages into `msgs`: the held ones first, else from the consumer queue.
 * With hooks that owe rows after an assignment, a batch from the queue whose call served one
 * (the rebalance callback runs inside it) is held instead, whole, and none is taken: those
 * messages can be of the new assignment (a partition read from its committed offset, with the
 * watermark committed with it), which the hooks must not see before they have handed out what
 * the assignment owes (vpq_kafka_reader_hooks.owed). */
static ssize_t take_messages(kafka_source *s, rd_kafka_message_t **msgs, size_t want, int wait_ms) {
  if (s->held_at < s->nheld) {
    ssize_t got = s->nheld - s->held_at < (ssize_t)want ? s->nheld - s->held_at : (ssize_t)want;
    memcpy(msgs, s->held + s->held_at, sizeof *msgs * (size_t)got);
    s->held_at += got;
    if (s->held_at == s->nheld) s->held_at = s->nheld = 0;
    return got;
  }
  uint64_t assignments = s->base.assignments;
  ssize_t got = rd_kafka_consume_batch_queue(s->queue, wait_ms, msgs, want);
  if (got > 0 && s->hooks.owed && s->base.assignments != assignments) {
    memcpy(s->held, msgs, sizeof *msgs * (size_t)got);
    s->nheld = got;
    s->held_at = 0;
    return 0;
  }
  return got;
}

/* Reads up to a batch of rows: messages come a batch at a time from the consumer queue, and
 * the JSON decoder defers the interning of their strings to the end of the read, so a message
 * whose row it decoded is kept (in s->decoded) until then. A read that serves an assignment
 * ends there (take_messages): the next one starts with what the hooks owe. */
static bool kafka_read(vpq_source *src, vpq_batch *out, vpq_origin *origins, bool *done) {
  kafka_source *s = (kafka_source *)src;
  char err[512];
  int n = 0;
  *done = false;
  rd_kafka_message_t *msgs[VPQ_BATCH_ROWS];
  ssize_t got = 0, at = 0;
  int per = s->hooks.message ? s->hooks.rows_per_message : 1;
  if (s->decoded_cap < out->cap) {
    s->decoded_cap = out->cap;
    s->decoded = realloc(s->decoded, sizeof *s->decoded * (size_t)s->decoded_cap);
    if (!s->decoded) abort();
  }
  if (s->hooks.owed) n = s->hooks.owed(s->hooks.ctx, out, 0, origins);
  s->base.withdrawing = n > 0;
  if (n > 0) { /* the owed rows go alone: what they cause is not written (vpq_runtime.withdrawing) */
    out->n = n;
    return true;
  }
  while (n + per <= out->cap && !source_finished(s)) {
    if (at == got) {
      size_t room = (size_t)((out->cap - n) / per);
      size_t want = room < VPQ_BATCH_ROWS ? room : VPQ_BATCH_ROWS;
      got = take_messages(s, msgs, want, n ? 0 : s->wait_ms);
      at = 0;
      if (got <= 0) break;
    }
    prefetch_ahead(msgs, at, got);
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
    size_t len = msg->len;
    const bool deletes = !msg->payload && msg->key && s->tombstone_key >= 0 && !s->hooks.message;
    const bool bad_key = deletes && !tombstone_row(s, msg);
    if (deletes && !bad_key) {
      text = s->tombstone.data;
      len = s->tombstone.len;
    }
    int64_t event_ts = VPQ_TS_MIN;
    bool keep = false;
    if (bad_key) {
      snprintf(err, sizeof err, "type mismatch: the key of a tombstone is not a %s",
               vpq_type_name(s->schema->cols[s->tombstone_key].type));
      if (s->bad) s->bad(s->bad_ctx, err, origin, msg->key, msg->key_len);
    } else if (s->hooks.message) {
      int rows = s->hooks.message(s->hooks.ctx, msg, out, n, origins, &event_ts, err, sizeof err);
      if (rows < 0 && s->bad) s->bad(s->bad_ctx, err, origin, text, msg->len);
      n += rows > 0 ? rows : 0;
    } else if (!msg->payload && !deletes) {
      /* a null value that deletes nothing (it read as JSON cut short: audit 43) */
      snprintf(err, sizeof err,
               "invalid JSON: a null value (a tombstone), which deletes a key only in a table of one PRIMARY KEY column");
      if (s->bad) s->bad(s->bad_ctx, err, origin, text, 0);
    } else if (!vpq_decoder_row(s->dec, text, len, out, n, err, sizeof err)) {
      if (s->bad) s->bad(s->bad_ctx, err, origin, text, len);
    } else {
      out->diff[n] = deletes ? -1 : 1;
      if (deletes) vpq_decoder_flush(s->dec); /* its strings point into s->tombstone, reused */
      rd_kafka_timestamp_type_t type;
      int64_t ts = rd_kafka_message_timestamp(msg, &type);
      out->ts[n] = ts >= 0 ? ts : 0;
      event_ts = s->ts_col < 0 ? out->ts[n] : out->cols[s->ts_col].null[n] ? VPQ_TS_MIN : out->cols[s->ts_col].data[n].i;
      origins[n++] = origin;
      keep = true;
    }
    if (s->group && p >= 0 && p < s->base.partitions) segment_note(&s->parts[p], msg->offset, event_ts);
    if (keep) s->decoded[s->ndecoded++] = msg;
    else rd_kafka_message_destroy(msg);
  }
  while (at < got) rd_kafka_message_destroy(msgs[at++]); /* beyond the end: not needed */
  if (s->dec) vpq_decoder_flush(s->dec);
  while (s->ndecoded) rd_kafka_message_destroy(s->decoded[--s->ndecoded]);
  out->n = n;
  if (n == 0 && source_finished(s)) *done = true;
  return n > 0;
}

static void kafka_format_origin(const vpq_source *src, vpq_origin origin, char *buf, size_t size) {
  const kafka_source *s = (const kafka_source *)src;
  snprintf(buf, size, "%s/%d/%lld", s->topic, origin.partition, (long long)origin.offset);
}

/* Leaves the consumer group before closing: unsubscribes and serves the revocation (which
 * commits what is safe) until nothing is assigned, for at most 10 s. librdkafka 2.0.2 can
 * hang for good in rd_kafka_consumer_close when an assignment arrives while it closes (several
 * members of a group stopping at once; librdkafka issues 4527, 4884). */
static void leave_group(kafka_source *s) {
  rd_kafka_unsubscribe(s->rk);
  for (int waited = 0; waited < 10000; waited += 50) {
    rd_kafka_topic_partition_list_t *assigned = NULL;
    bool none = rd_kafka_assignment(s->rk, &assigned) == RD_KAFKA_RESP_ERR_NO_ERROR && assigned->cnt == 0;
    if (assigned) rd_kafka_topic_partition_list_destroy(assigned);
    if (none) return;
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(s->rk, 50); /* serves the rebalance callback */
    if (msg) rd_kafka_message_destroy(msg);
  }
}

static void kafka_source_close(vpq_source *src) {
  kafka_source *s = (kafka_source *)src;
  s->closing = true;
  if (s->group && s->parts) {
    commit_safe(s, true);
    leave_group(s);
  }
  while (s->held_at < s->nheld) rd_kafka_message_destroy(s->held[s->held_at++]);
  if (s->queue) rd_kafka_queue_destroy(s->queue);
  rd_kafka_consumer_close(s->rk);
  rd_kafka_destroy(s->rk);
  vpq_decoder_free(s->dec);
  free(s->decoded);
  vpq_buf_free(&s->tombstone);
  free(s->topic);
  free(s->group_id);
  free(s->end);
  free(s->next);
  for (int p = 0; s->parts && p < s->base.partitions; p++) free(s->parts[p].segs);
  free(s->parts);
  free(s->owned);
  free(s->revoked);
  free(s->continued);
  free(s->floor);
  free(s->resume);
  if (s->hooks.free) s->hooks.free(s->hooks.ctx);
  free(s);
}

/* The position: per partition, the next offset to read (-1: none read yet, or a group
 * member's partition it neither owns nor is giving up in a rebalance: its state here was
 * dropped, so a restore must not resume it), or the offset of its first unread row. A group
 * member still waiting for its first assignment holds the state it restored, which counts the
 * rows up to the restored offsets: it saves those. */
static void kafka_source_save(const vpq_source *src, vpq_ckpt_out *out, const vpq_origin *unread, int nunread) {
  const kafka_source *s = (const kafka_source *)src;
  vpq_ckpt_put_u64(out, (uint64_t)s->base.partitions);
  for (int p = 0; p < s->base.partitions; p++) {
    if (s->group && s->base.awaiting_partitions) {
      vpq_ckpt_put_i64(out, s->resume[p]);
      continue;
    }
    if (s->group && !s->owned[p] && !s->revoked[p]) {
      vpq_ckpt_put_i64(out, -1);
      continue;
    }
    int64_t next = s->next[p];
    for (int i = 0; i < nunread; i++)
      if (unread[i].partition == p && (next < 0 || unread[i].offset < next)) next = unread[i].offset;
    vpq_ckpt_put_i64(out, next);
  }
  if (s->hooks.save) s->hooks.save(s->hooks.ctx, out);
}

/* Resumes each partition at its stored offset: at once for a source that assigns itself its
 * partitions, on assignment for a group member. */
static bool kafka_source_restore(vpq_source *src, vpq_ckpt_in *in, char *err, size_t err_size) {
  kafka_source *s = (kafka_source *)src;
  int64_t n = vpq_ckpt_get_count(in, 1 << 20);
  if (!in->error && n != s->base.partitions) {
    snprintf(err, err_size, "topic `%s` has %d partitions, the checkpoint %lld: it was changed since (run with "
             "--reset-state to start over)", s->topic, s->base.partitions, (long long)n);
    return false;
  }
  for (int p = 0; p < n; p++) s->resume[p] = vpq_ckpt_get_i64(in);
  if (s->hooks.restore) s->hooks.restore(s->hooks.ctx, in);
  if (in->error) {
    snprintf(err, err_size, "`%s`: %s", s->topic, in->error);
    return false;
  }
  /* An offset past a partition's end: not the topic the checkpoint read (a new cluster, or the
   * topic made again). Read from its start, the rows would be taken for ones already read. */
  for (int p = 0; p < n; p++) {
    int64_t low, high;
    if (s->resume[p] <= 0 || query_offsets(s->rk, s->topic, p, &low, &high) || s->resume[p] <= high) continue;
    snprintf(err, err_size,
             "partition %d of `%s` ends at offset %lld, but the checkpoint read it up to %lld: it is not the topic "
             "the checkpoint was taken on (a new cluster, or the topic made again); run with --reset-state to start "
             "over", p, s->topic, (long long)high, (long long)s->resume[p]);
    return false;
  }
  if (s->group) return true;
  rd_kafka_topic_partition_list_t *assignment = rd_kafka_topic_partition_list_new(s->base.partitions);
  for (int p = 0; p < s->base.partitions; p++) {
    if (s->task_partition >= 0 && p != s->task_partition) continue;
    if (s->resume[p] >= 0) s->next[p] = s->resume[p];
    rd_kafka_topic_partition_list_add(assignment, s->topic, p)->offset = s->next[p];
  }
  rd_kafka_resp_err_t e = rd_kafka_assign(s->rk, assignment);
  rd_kafka_topic_partition_list_destroy(assignment);
  if (e) {
    snprintf(err, err_size, "cannot read `%s` from the checkpoint's offsets: %s", s->topic, rd_kafka_err2str(e));
    return false;
  }
  return true;
}

/* The lag: per partition read here, the end offset librdkafka last heard of minus the next
 * offset to read. */
static int64_t kafka_source_lag(const vpq_source *src) {
  const kafka_source *s = (const kafka_source *)src;
  int64_t lag = 0;
  bool known = false;
  for (int p = 0; p < s->base.partitions; p++) {
    if (s->base.owned && !s->owned[p]) continue;
    int64_t low = -1, high = -1;
    if (rd_kafka_get_watermark_offsets(s->rk, s->topic, p, &low, &high) || high < 0 || s->next[p] < 0) continue;
    if (high > s->next[p]) lag += high - s->next[p];
    known = true;
  }
  return known ? lag : -1;
}

/* vpq_source_vt.behind: a group member still waiting for its first assignment cannot tell;
 * a bounded source's partition is behind until it is read to the end offset it ends at; else a
 * partition read here is behind when it has messages past what was read (as far as
 * vpq_kafka_source_behind knows), more than one: the end of a transactional producer's last
 * transaction is its commit marker, a record never delivered, so a partition read to its end
 * can stay one short of it. */
static bool kafka_source_behind(const vpq_source *src, int partition) {
  const kafka_source *s = (const kafka_source *)src;
  if (s->group && s->base.awaiting_partitions) return true;
  if (s->base.bounded && partition >= 0 && partition < s->base.partitions) return s->next[partition] < s->end[partition];
  if (partition >= 0) return (!s->base.owned || s->owned[partition]) && vpq_kafka_source_behind(src, partition, 1);
  for (int p = 0; p < s->base.partitions; p++)
    if ((!s->base.owned || s->owned[p]) && vpq_kafka_source_behind(src, p, 1)) return true;
  return false;
}

static const vpq_source_vt kafka_source_vt = {kafka_read,          kafka_format_origin,  kafka_source_close,
                                              kafka_commit,        kafka_source_save,    kafka_source_restore,
                                              kafka_source_lag,    kafka_source_behind};



/* Opens a consumer for relation `rel` (vpq_kafka_open_source), its messages decoded as JSON,
 * or given to `hooks` when not NULL (whose context it then owns, freed also on failure). */
static vpq_source *open_consumer(const vpq_relation *rel, vpq_intern *intern, vpq_bad_record_fn bad, void *bad_ctx,
                                 const vpq_kafka_reader_hooks *hooks, char *err, size_t err_size) {
  const vpq_plan_connector *conn = &rel->source;
  const vpq_plan_option *topic = option(conn, "topic");
  const vpq_plan_option *start = option(conn, "start"), *bounded = option(conn, "bounded"), *group = option(conn, "group");
  bool latest = start && start->text && strcmp(start->text, "latest") == 0;
  bool ok = check_connector(conn, err, err_size);
  if (ok && start && start->text && !latest && strcmp(start->text, "earliest") != 0) {
    snprintf(err, err_size, "`start` is 'earliest' or 'latest', not '%s'", start->text);
    ok = false;
  }
  if (ok && group && group->text && !*group->text) {
    snprintf(err, err_size, "`group` names a consumer group: it cannot be empty");
    ok = false;
  }
  if (!ok) {
    if (hooks && hooks->free) hooks->free(hooks->ctx);
    return NULL;
  }
  /* An unbounded source reads as a member of a consumer group (`group`, by default derived
   * from the query file's name and the relation); a bounded one assigns itself everything. */
  bool in_group = !(bounded && bounded->value.i);
  /* A partition task (vpq_kafka_run_tasks) reads one partition, assigned by the task runner. */
  const vpq_plan_option *task = option(conn, "vpq.partition");
  int task_partition = task && task->text && !(bounded && bounded->value.i) ? atoi(task->text) : -1;
  if (task_partition >= 0) in_group = false;
  const vpq_plan_option *file_group = option(conn, "vpq.default_group");
  char group_id[300];
  if (group && group->text) snprintf(group_id, sizeof group_id, "%s", group->text);
  else snprintf(group_id, sizeof group_id, "%s.%s", file_group && file_group->text ? file_group->text : "vpq", rel->name);
  /* A source's queued.min.messages is raised from librdkafka's 100,000: with it, a consumer
   * whose process also produces (a Kafka sink) stalled between fetches and read a topic at a
   * third of kcat's rate (bench/run_kafka.sh); the prefetch stays bounded by
   * queued.max.messages.kbytes. An exchange's reader (hooks) keeps the default. */
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  ok = conf_set(conf, "group.id", group_id, err, err_size) &&
       conf_set(conf, "auto.offset.reset", latest ? "latest" : "earliest", err, err_size) &&
       conf_set(conf, "enable.auto.commit", "false", err, err_size) &&
       conf_set(conf, "enable.partition.eof", "false", err, err_size) &&
       conf_set(conf, "fetch.wait.max.ms", "50", err, err_size) && conf_set(conf, "log_level", "3", err, err_size) &&
       (hooks || conf_set(conf, "queued.min.messages", "1000000", err, err_size));
  ok = ok && pass_properties(conf, conn, err, err_size);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    if (hooks && hooks->free) hooks->free(hooks->ctx);
    return NULL;
  }
  kafka_source *s = calloc(1, sizeof *s);
  if (!s) abort();
  if (hooks) s->hooks = *hooks;
  /* A bounded read waits longer for a full batch (throughput); an unbounded one returns soon
   * (latency: the demo's dispatch loop); a hooked reader (an exchange) is polled between the
   * engine's other reads and never waits. */
  s->wait_ms = hooks ? 0 : bounded && bounded->value.i ? 100 : 10;
  if (in_group) {
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, s);
  }
  char reason[512];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, reason, sizeof reason);
  if (!rk) {
    snprintf(err, err_size, "cannot create a Kafka consumer: %s", reason);
    rd_kafka_conf_destroy(conf);
    if (s->hooks.free) s->hooks.free(s->hooks.ctx);
    free(s);
    return NULL;
  }
  rd_kafka_poll_set_consumer(rk);
  s->group = in_group;
  s->task_partition = task_partition;
  s->ts_col = rel->ts_col;
  s->schema = &rel->schema;
  s->tombstone_key = rel->kind == VPQ_REL_TABLE && rel->nkeys == 1 ? rel->key_cols[0] : -1;
  s->safe_ts = VPQ_TS_MIN;
  s->base.vt = &kafka_source_vt;
  s->base.stamps_rows = rel->ts_col < 0;
  s->base.bounded = bounded && bounded->value.i;
  s->rk = rk;
  s->topic = strdup(topic->text);
  s->group_id = strdup(group_id);
  if (!s->topic || !s->group_id) abort();
  s->bad = bad;
  s->bad_ctx = bad_ctx;
  /* The topic's partitions, from the cluster's metadata (once it has it, for a topic created here). */
  rd_kafka_resp_err_t e;
  int partitions = query_partitions(rk, topic->text, apply_partitions(rk, conn, topic->text), &e);
  if (partitions < 1) {
    snprintf(err, err_size, "topic `%s`: %s", topic->text, rd_kafka_err2str(e));
    kafka_source_close(&s->base);
    return NULL;
  }
  s->base.partitions = partitions;
  s->end = calloc((size_t)partitions, sizeof *s->end);
  s->next = calloc((size_t)partitions, sizeof *s->next);
  s->parts = calloc((size_t)partitions, sizeof *s->parts);
  s->owned = calloc((size_t)partitions, sizeof *s->owned);
  s->revoked = calloc((size_t)partitions, sizeof *s->revoked);
  s->continued = calloc((size_t)partitions, sizeof *s->continued);
  s->floor = malloc(sizeof *s->floor * (size_t)partitions);
  s->resume = malloc(sizeof *s->resume * (size_t)partitions);
  if (!s->end || !s->next || !s->parts || !s->owned || !s->revoked || !s->continued || !s->floor || !s->resume) abort();
  for (int p = 0; p < partitions; p++) {
    s->resume[p] = -1;
    s->floor[p] = VPQ_TS_MIN;
  }
  if (in_group) {
    s->base.owned = s->owned;
    s->base.awaiting_partitions = true;
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic->text, RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
      snprintf(err, err_size, "cannot subscribe to `%s`: %s", topic->text, rd_kafka_err2str(e));
      kafka_source_close(&s->base);
      return NULL;
    }
  } else {
    rd_kafka_topic_partition_list_t *assignment = rd_kafka_topic_partition_list_new(partitions);
    if (task_partition >= 0) s->base.owned = s->owned;
    for (int p = 0; p < partitions; p++) {
      if (task_partition >= 0 && p != task_partition) continue;
      s->owned[p] = true;
      int64_t low = 0, high = 0;
      e = query_offsets(rk, topic->text, p, &low, &high);
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
  }
  s->queue = rd_kafka_queue_get_consumer(rk);
  if (hooks) return &s->base;
  s->dec = vpq_decoder_new(VPQ_FORMAT_JSON, &rel->schema, intern);
  vpq_decoder_defer_strings(s->dec, true); /* kafka_read keeps the messages until its flush */
  const vpq_plan_option *max_bytes = option(conn, "max_row_bytes");
  if (max_bytes) vpq_decoder_set_max_bytes(s->dec, (size_t)max_bytes->value.i);
  return &s->base;
}

vpq_source *vpq_kafka_open_source(const vpq_relation *rel, vpq_intern *intern, vpq_bad_record_fn bad,
                                  void *bad_ctx, char *err, size_t err_size) {
  return open_consumer(rel, intern, bad, bad_ctx, NULL, err, err_size);
}

vpq_source *vpq_kafka_open_reader(const vpq_relation *rel, vpq_intern *intern, vpq_bad_record_fn bad, void *bad_ctx,
                                  const vpq_kafka_reader_hooks *hooks, char *err, size_t err_size) {
  return open_consumer(rel, intern, bad, bad_ctx, hooks, err, err_size);
}

void *vpq_kafka_reader_ctx(const vpq_source *src) { return ((const kafka_source *)src)->hooks.ctx; }

bool vpq_kafka_source_behind(const vpq_source *src, int partition, int64_t slack) {
  const kafka_source *s = (const kafka_source *)src;
  int64_t low = -1, high = -1;
  if (partition < 0 || partition >= s->base.partitions ||
      rd_kafka_get_watermark_offsets(s->rk, s->topic, partition, &low, &high) || high < 0)
    return false;
  int64_t next = s->next[partition];
  for (ssize_t i = s->held_at; i < s->nheld && next < 0; i++)
    if (s->held[i]->partition == partition) next = s->held[i]->offset; /* taken, not read yet */
  if (next < 0) { /* nothing read since the assignment: where the consumer will fetch from */
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, s->topic, partition);
    if (!rd_kafka_position(s->rk, list) && !list->elems[0].err) next = list->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(list);
  }
  return next >= 0 && high > next + slack;
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

/* The message key of a dead letter: its origin without the offset, the source's topic and
 * partition ("vpp.telemetry/3"), so that the dead letters of one source partition go to one
 * partition of the dead-letter topic, in their order; NULL (no key) for a line without an origin.
 * The first `"origin":"` of the line is the field: within a JSON string before it (the reason,
 * the detail) a quote is escaped. A topic name has no character JSON escapes. */
static const char *line_key(const char *line, size_t len, size_t *key_len) {
  static const char field[] = "\"origin\":\"";
  const char *at = memmem(line, len, field, sizeof field - 1);
  if (!at) return NULL;
  const char *from = at + sizeof field - 1;
  const char *end = memchr(from, '"', len - (size_t)(from - line));
  if (!end) return NULL;
  const char *slash = end;
  while (slash > from && slash[-1] != '/') slash--;
  *key_len = (size_t)(slash > from ? slash - 1 - from : end - from);
  return from;
}

static bool line_write(void *ctx, const char *line, size_t len, char *err, size_t err_size) {
  line_producer *p = ctx;
  size_t key_len = 0;
  const char *key = line_key(line, len, &key_len);
  while (rd_kafka_produce(p->topic, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)line, len, key, key_len, NULL) != 0) {
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
  if (e == RD_KAFKA_RESP_ERR__TIMED_OUT) { /* still queued (the broker away): delivered later, not lost */
    fprintf(stderr, "vpq: dead letters to `%s` wait for the broker\n", rd_kafka_topic_name(p->topic));
    e = RD_KAFKA_RESP_ERR_NO_ERROR;
  }
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

/* A producer for the connector's cluster: idempotent (transactional with `transactional_id`),
 * zstd, linger 5 ms, the `kafka.<property>` options, failed deliveries reported to `on_delivery`
 * with `opaque` (only the failed ones: a report per delivered message would cost the writer a
 * callback and librdkafka an event per row). NULL + err on failure. */
static rd_kafka_t *open_producer(const vpq_plan_connector *conn, const char *transactional_id,
                                 void (*on_delivery)(rd_kafka_t *, const rd_kafka_message_t *, void *), void *opaque,
                                 char *err, size_t err_size) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (transactional_id && !conf_set(conf, "transactional.id", transactional_id, err, err_size)) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  bool ok = conf_set(conf, "enable.idempotence", "true", err, err_size) &&
            conf_set(conf, "compression.type", "zstd", err, err_size) &&
            conf_set(conf, "linger.ms", "5", err, err_size) && conf_set(conf, "log_level", "3", err, err_size) &&
            conf_set(conf, "delivery.report.only.error", "true", err, err_size) &&
            conf_set(conf, "partitioner", "murmur2_random", err, err_size) &&
            pass_properties(conf, conn, err, err_size);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_opaque(conf, opaque);
  char reason[512];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason, sizeof reason);
  if (!rk) {
    snprintf(err, err_size, "cannot create a Kafka producer: %s", reason);
    rd_kafka_conf_destroy(conf);
  }
  return rk;
}

bool vpq_kafka_open_line_writer(const vpq_plan_connector *conn, const char *topic, vpq_line_writer *out, char *err,
                                size_t err_size) {
  if (!check_connector(conn, err, err_size)) return false;
  line_producer *p = calloc(1, sizeof *p);
  if (!p) abort();
  p->rk = open_producer(conn, NULL, on_line_delivery, p, err, err_size);
  if (!p->rk) {
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
  kafka_sink *s = calloc(1, sizeof *s);
  if (!s) abort();
  const vpq_plan_option *txn_guarantee = option(conn, "processing_guarantee"), *txn_id = option(conn, "vpq.sink_id");
  bool txn = txn_guarantee && txn_guarantee->text && strcmp(txn_guarantee->text, "kafka_transactions") == 0 && txn_id &&
             txn_id->text;
  s->rk = open_producer(conn, txn ? txn_id->text : NULL, on_delivery, s, err, err_size);
  if (!s->rk) {
    free(s);
    return NULL;
  }
  s->max_message = producer_max_message(s->rk);
  apply_partitions(s->rk, conn, topic);
  s->topic = rd_kafka_topic_new(s->rk, topic, NULL);
  s->base.vt = &kafka_sink_vt;
  s->properties = copy_properties(conn);
  const vpq_plan_option *sink_id = option(conn, "vpq.sink_id"), *guarantee = option(conn, "processing_guarantee");
  const char *mode = guarantee && guarantee->text ? guarantee->text : "exactly_once";
  if (strcmp(mode, "exactly_once") != 0 && strcmp(mode, "at_least_once") != 0 && strcmp(mode, "kafka_transactions") != 0) {
    snprintf(err, err_size, "`processing_guarantee` is 'exactly_once', 'kafka_transactions' or 'at_least_once', not '%s'",
             mode);
    kafka_close(&s->base);
    return NULL;
  }
  if (strcmp(mode, "kafka_transactions") == 0 && !(sink_id && sink_id->text)) {
    snprintf(err, err_size, "`processing_guarantee = 'kafka_transactions'` needs checkpoints: run with --state-dir");
    kafka_close(&s->base);
    return NULL;
  }
  if (sink_id && sink_id->text && strcmp(mode, "at_least_once") != 0) {
    s->partitions = topic_partitions(s->rk, s->topic, err, err_size);
    if (s->partitions < 1) {
      kafka_close(&s->base);
      return NULL;
    }
    s->sink_id = strdup(sink_id->text);
    if (!s->sink_id) abort();
    s->base.vt = &kafka_exactly_once_vt;
    s->transactional = strcmp(mode, "kafka_transactions") == 0;
    if (s->transactional && !txn_ok(rd_kafka_init_transactions(s->rk, 60 * 1000), "starting transactions", err, err_size)) {
      kafka_close(&s->base);
      return NULL;
    }
  }
  s->schema = schema;
  s->intern = intern;
  vpq_json_keys_init(&s->keys, schema);
  for (int c = 0; c < schema->ncols; c++) s->nkeys += schema->cols[c].is_key, s->windowed |= schema->cols[c].is_window;
  return &s->base;
}

/* ===== Encoded sinks (vpq_kafka_int.h) ===== */

vpq_sink *vpq_kafka_open_encoded_sink(const vpq_plan_connector *conn, const char *topic, int32_t create_partitions,
                                      const char *sink_id, const vpq_schema *schema, const vpq_intern *intern,
                                      vpq_kafka_encode_fn encode, void *ctx, void (*free_ctx)(void *), char *err,
                                      size_t err_size) {
  kafka_sink *s = calloc(1, sizeof *s);
  if (!s) abort();
  s->encode = encode;
  s->encode_ctx = ctx;
  s->free_encode_ctx = free_ctx;
  s->rk = open_producer(conn, NULL, on_delivery, s, err, err_size);
  if (!s->rk) {
    if (free_ctx) free_ctx(ctx);
    free(s);
    return NULL;
  }
  char reason[512];
  if (create_partitions > 0) request_topic(s->rk, topic, create_partitions, reason, sizeof reason);
  s->topic = rd_kafka_topic_new(s->rk, topic, NULL);
  s->base.vt = sink_id ? &kafka_exactly_once_vt : &kafka_sink_vt;
  s->properties = copy_properties(conn);
  s->schema = schema;
  s->intern = intern;
  vpq_json_keys_init(&s->keys, schema);
  for (int c = 0; c < schema->ncols; c++) s->nkeys += schema->cols[c].is_key, s->windowed |= schema->cols[c].is_window;
  s->partitions = topic_partitions(s->rk, s->topic, err, err_size);
  if (s->partitions < 1) {
    kafka_close(&s->base);
    return NULL;
  }
  if (sink_id) {
    s->sink_id = strdup(sink_id);
    if (!s->sink_id) abort();
  }
  return &s->base;
}

int32_t vpq_kafka_sink_partitions(const vpq_sink *sink) { return ((const kafka_sink *)sink)->partitions; }

void *vpq_kafka_sink_ctx(const vpq_sink *sink) { return ((const kafka_sink *)sink)->encode_ctx; }

bool vpq_kafka_sink_put(vpq_sink *sink, int32_t partition, const void *value, size_t value_len, int64_t ts, char *err,
                        size_t err_size) {
  kafka_sink *s = (kafka_sink *)sink;
  s->key.len = 0;
  s->value.len = 0;
  vpq_buf_append(&s->value, value, value_len);
  if (s->sink_id) {
    hold(s, partition, ts);
    return true;
  }
  if (!produce(s, partition, NULL, 0, false, s->value.data, s->value.len, ts, NULL, err, err_size)) return false;
  rd_kafka_poll(s->rk, 0);
  return report_failures(s, err, err_size);
}

/* ===== Checking a file (vpq check) ===== */

void vpq_kafka_check_option(const char *key, const char *text, vpq_span span, vpq_diag *diag) {
  if (strncmp(key, "kafka.", 6) == 0) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char reason[512];
    if (rd_kafka_conf_set(conf, key + 6, text, reason, sizeof reason) != RD_KAFKA_CONF_OK)
      vpq_diag_error(diag, span, "kafka property `%s`: %s", key + 6, reason);
    rd_kafka_conf_destroy(conf);
  } else if (strcmp(key, "group") == 0 && !*text) {
    vpq_diag_error(diag, span, "`group` names a consumer group: it cannot be empty");
  }
}
