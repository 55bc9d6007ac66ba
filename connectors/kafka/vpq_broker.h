/* vpq_broker.h — the embedded Kafka cluster behind `vpq broker`: librdkafka's mock cluster,
 * which speaks the real protocol, on random localhost ports, for development and tests. */
#ifndef VPQ_BROKER_H
#define VPQ_BROKER_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

typedef struct vpq_broker vpq_broker;

/* Starts a mock cluster of `brokers` brokers with the topics `topics[i]` ("name" or
 * "name:partitions") inside this process; NULL with a message in err on failure. */
vpq_broker *vpq_broker_start(int brokers, const char *const *topics, int ntopics, char *err, size_t err_size);

/* The cluster's bootstrap address list ("127.0.0.1:port,..."). */
const char *vpq_broker_bootstraps(const vpq_broker *broker);

/* Stops the cluster and frees it. */
void vpq_broker_stop(vpq_broker *broker);

/* Injects a fault, for tests: `down ID` / `up ID` (broker ID, from 1, stops or resumes
 * answering), `rtt ID MS` (its answers take MS longer), `errors API COUNT ERROR` (the next
 * COUNT requests of API fail with ERROR; API and ERROR by Kafka name, e.g. Produce and
 * NOT_LEADER_OR_FOLLOWER, or number). Returns 0 with "ok ..." in `reply`, or -1 with why. */
int vpq_broker_control(vpq_broker *broker, const char *command, char *reply, size_t reply_size);

/* Starts a mock cluster of `brokers` brokers with the topics `topics[i]` ("name" or
 * "name:partitions"), prints its bootstrap address list as the first line of `out`, and runs
 * until `*stop` becomes non-zero; with `control`, it reads vpq_broker_control commands from
 * standard input, one per line, answering each on `log`. Returns 0, or 1 with a message on
 * `log` when the cluster or a topic cannot be created. */
int vpq_broker_run(int brokers, const char *const *topics, int ntopics, bool control, FILE *out, FILE *log,
                   volatile sig_atomic_t *stop);

#endif
