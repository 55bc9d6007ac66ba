/* vpq_kafka_int.h — what vpq_kafka.c lends to the rest of the Kafka connector (private to
 * connectors/kafka/): a sink whose message values another module encodes, raw messages to a
 * chosen partition, and a consumer whose messages another module turns into rows. The
 * repartition exchange (vpq_kafka_repartition.c) is built on these, so that it shares the
 * sink's exactly-once machinery (held output, `vpq.id`, tail read on restore) and the source's
 * consumer-group handling (safe commits, rebalances, checkpointed offsets).
 */
#ifndef VPQ_KAFKA_INT_H
#define VPQ_KAFKA_INT_H

#include <librdkafka/rdkafka.h>

#include "../vpq_connector.h"

/* ===== Sinks with encoded values ===== */

/* Encodes the value of row `row` of `batch` into `value` (emptied by the caller). */
typedef void (*vpq_kafka_encode_fn)(void *ctx, const vpq_batch *batch, int row, vpq_buf *value);

/* Opens a producer to `topic` on the cluster of `conn` (its `kafka.<property>` options) for
 * rows of `schema`: a row's message key is its key columns (as vpq_kafka_open_sink writes them,
 * the empty key when there are none), its partition murmur2 of that key, its timestamp the
 * row's event time, its value what `encode` writes. The topic is created with
 * `create_partitions` partitions through the Admin API when it does not exist (0: never asked;
 * when the cluster has no Admin API, the first metadata request creates it with the cluster's
 * default). With `sink_id` the sink is exactly-once as a checkpointed Kafka sink is (rows held
 * until their checkpoint is durable, `vpq.id` identities, tail read on restore); without, rows
 * are produced at once. `ctx` is freed with `free_ctx` when the sink closes (also when opening
 * fails). NULL + err on failure. */
vpq_sink *vpq_kafka_open_encoded_sink(const vpq_plan_connector *conn, const char *topic, int32_t create_partitions,
                                      const char *sink_id, const vpq_schema *schema, const vpq_intern *intern,
                                      vpq_kafka_encode_fn encode, void *ctx, void (*free_ctx)(void *), char *err,
                                      size_t err_size);

/* The partition count of an encoded sink's topic. */
int32_t vpq_kafka_sink_partitions(const vpq_sink *sink);

/* The encoder's context of an encoded sink. */
void *vpq_kafka_sink_ctx(const vpq_sink *sink);

/* Writes one message with an empty key to `partition`, held or produced at once as the sink's
 * rows are (so that it keeps its place among them). False + err on failure. */
bool vpq_kafka_sink_put(vpq_sink *sink, int32_t partition, const void *value, size_t value_len, int64_t ts, char *err,
                        size_t err_size);

/* ===== Consumers with a message hook ===== */

typedef struct vpq_kafka_reader_hooks {
  void *ctx;
  int rows_per_message; /* the most rows one message can give */
  /* Turns one message into rows appended at out[n..] (columns, ts, wm, diff and origins all
   * filled) and returns how many (0: none, e.g. a control message), or -1 with `err` filled
   * for a message it cannot read. *event_ts is the latest event time among the rows
   * (VPQ_TS_MIN: none), for safe commits. */
  int (*message)(void *ctx, const rd_kafka_message_t *msg, vpq_batch *out, int n, vpq_origin *origins, int64_t *event_ts,
                 char *err, size_t err_size);
  /* Rows owed before any message (retractions of partitions no longer read here, partitions
   * told lost): appended at out[n..] up to out->cap; returns how many. A read hands them out
   * first, alone, and gives no message while any are left; the messages the consumer took in
   * the call that served an assignment are held for the reads after those rows (so `message`
   * never sees a message of the new assignment before what the assignment owes). */
  int (*owed)(void *ctx, vpq_batch *out, int n, vpq_origin *origins);
  /* After each assignment: `owned[p]` the partitions read here now, `continued[p]` those
   * whose reading goes on from where this member was (kept through the rebalance, or resumed
   * from a checkpoint); the others start over from their committed offsets, and `floor[p]` is
   * the watermark committed with that offset (VPQ_TS_MIN: none). */
  void (*ownership)(void *ctx, const bool *owned, const bool *continued, const int64_t *floor);
  /* The watermark committed with the offsets (in the commit's metadata): every window it
   * closes is written, or held for a checkpoint that will write it. NULL: none committed. */
  int64_t (*commit_watermark)(void *ctx);
  void (*save)(void *ctx, vpq_ckpt_out *out);      /* the hook's state, after the offsets */
  void (*restore)(void *ctx, vpq_ckpt_in *in);     /* ... read back (failing `in` when malformed) */
  void (*free)(void *ctx);
} vpq_kafka_reader_hooks;

/* Opens a consumer-group member reading the `topic` option of rel->source (group `group`,
 * from the earliest offset when the group has none) whose messages go through `hooks` instead
 * of the JSON decoder; reads never wait. Offsets, commits and rebalances are those of
 * vpq_kafka_open_source. `hooks->ctx` is freed by the source (also when opening fails). NULL +
 * err on failure. */
vpq_source *vpq_kafka_open_reader(const vpq_relation *rel, vpq_intern *intern, vpq_bad_record_fn bad, void *bad_ctx,
                                  const vpq_kafka_reader_hooks *hooks, char *err, size_t err_size);

/* The hooks' context of a reader. */
void *vpq_kafka_reader_ctx(const vpq_source *src);

/* True when partition `partition` of a source has more than `slack` messages it has not read
 * yet (by the end offset librdkafka last heard of). */
bool vpq_kafka_source_behind(const vpq_source *src, int partition, int64_t slack);

#endif
