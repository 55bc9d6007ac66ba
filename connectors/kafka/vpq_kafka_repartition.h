/* vpq_kafka_repartition.h — exchanges (vpq_connector.h) over Kafka: an internal topic that
 * every member of a group writes its rows into, keyed by the GROUP BY key, and reads its share
 * of back as a member of the topic's consumer group. */
#ifndef VPQ_KAFKA_REPARTITION_H
#define VPQ_KAFKA_REPARTITION_H

#include "../vpq_connector.h"

/* vpq_connector_open_exchange_writer for Kafka. */
vpq_sink *vpq_kafka_open_exchange_writer(const vpq_plan_connector *conn, const vpq_exchange_spec *spec,
                                         const vpq_intern *intern, char *err, size_t err_size);

/* vpq_connector_exchange_announce for Kafka. */
bool vpq_kafka_exchange_announce(vpq_sink *writer, int64_t wm, char *err, size_t err_size);

/* vpq_connector_open_exchange_reader for Kafka. */
vpq_source *vpq_kafka_open_exchange_reader(const vpq_plan_connector *conn, const vpq_exchange_spec *spec,
                                           vpq_intern *intern, vpq_bad_record_fn bad, void *bad_ctx, char *err,
                                           size_t err_size);

/* vpq_connector_exchange_watermark for Kafka. */
int64_t vpq_kafka_exchange_watermark(vpq_source *reader, int64_t now_ms);

#endif
