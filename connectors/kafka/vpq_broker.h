/* vpq_broker.h — the embedded Kafka cluster behind `vpq broker`: librdkafka's mock cluster,
 * which speaks the real protocol, on random localhost ports, for development and tests. */
#ifndef VPQ_BROKER_H
#define VPQ_BROKER_H

#include <signal.h>
#include <stdio.h>

/* Starts a mock cluster of `brokers` brokers with the topics `topics[i]` ("name" or
 * "name:partitions"), prints its bootstrap address list as the first line of `out`, and runs
 * until `*stop` becomes non-zero. Returns 0, or 1 with a message on `log` when the cluster or
 * a topic cannot be created. */
int vpq_broker_run(int brokers, const char *const *topics, int ntopics, FILE *out, FILE *log,
                   volatile sig_atomic_t *stop);

#endif
