/* vpq_kafka.h — the Kafka connector (librdkafka): a source and a sink. */
#ifndef VPQ_KAFKA_H
#define VPQ_KAFKA_H

#include "../vpq_connector.h"

/* Opens a producer writing rows of `schema` to the connector's `topic` as JSON values, keyed
 * by the key columns, stamped with the rows' event times. Every `kafka.<property>` option goes
 * to librdkafka (`kafka.bootstrap.servers` names the cluster; `vpq run --brokers` sets it).
 * Defaults: idempotent producer, zstd compression, linger 5 ms. NULL + err on failure. */
vpq_sink *vpq_kafka_open_sink(const vpq_plan_connector *conn, const vpq_schema *schema,
                              const vpq_intern *intern, char *err, size_t err_size);

/* Fills `out` with a producer that writes each line as one message to `topic` on the cluster
 * of `conn` (its `kafka.<property>` options apply): a Kafka source's dead-letter topic. A line's
 * key is its `origin` without the offset (the source topic/partition), so that the dead
 * letters of one source partition keep their order. Deliveries are confirmed at flush; a
 * failed delivery is an error. False + err on failure. */
bool vpq_kafka_open_line_writer(const vpq_plan_connector *conn, const char *topic, vpq_line_writer *out, char *err,
                                size_t err_size);

/* Opens a consumer of the relation's `topic`: every partition is assigned (from the
 * beginning with `start = 'earliest'`, the default, or the end with 'latest'); each message's
 * value is decoded into the schema's columns, its origin is topic/partition/offset and its time the
 * message timestamp. With `bounded = true` the source ends at the end offsets seen when it
 * opened. NULL + err on failure. */
vpq_source *vpq_kafka_open_source(const vpq_relation *rel, vpq_intern *intern, vpq_bad_record_fn bad,
                                  void *bad_ctx, char *err, size_t err_size);

/* Records in `diag`, at `span`, what a Kafka connector would refuse of its option `key` =
 * `text` when the run opens it but the analysis does not know: a `kafka.<property>` librdkafka
 * does not take (an unknown property, a bad value; checked on a configuration, without
 * connecting) and an empty `group`. For `vpq check`, on the string options of every statement
 * WITH connector = 'kafka' as parsed, so that they are reported beside any other error. */
void vpq_kafka_check_option(const char *key, const char *text, vpq_span span, vpq_diag *diag);

#endif
