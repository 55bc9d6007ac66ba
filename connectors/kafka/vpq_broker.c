/* vpq_broker.c — the embedded Kafka cluster (vpq_broker.h).
 *
 * librdkafka's mock cluster lives inside an rd_kafka_t handle: the handle is created only to
 * own it. Its limits (librdkafka 2.0.2) are the user's to know (DESIGN §5): each partition
 * keeps only its newest ~5 MiB, no admin API (topics come from --topic or are auto-created
 * with 4 partitions), transactions without markers, the first group join takes 3 s.
 */
#include "vpq_broker.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Splits "name[:partitions]" into the name (copied into `name`) and the partition count. */
static int parse_topic(const char *spec, char *name, size_t size, int *partitions) {
  const char *colon = strrchr(spec, ':');
  size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
  if (len == 0 || len >= size) return -1;
  memcpy(name, spec, len);
  name[len] = '\0';
  *partitions = 1;
  if (colon) {
    char *end;
    long n = strtol(colon + 1, &end, 10);
    if (*end || n < 1 || n > 10000) return -1;
    *partitions = (int)n;
  }
  return 0;
}

struct vpq_broker {
  rd_kafka_t *rk; /* owns the cluster */
  rd_kafka_mock_cluster_t *cluster;
};

vpq_broker *vpq_broker_start(int brokers, const char *const *topics, int ntopics, char *err, size_t err_size) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "log_level", "3", err, err_size) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  vpq_broker *b = calloc(1, sizeof *b);
  if (!b) abort();
  b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, err_size);
  if (!b->rk) {
    rd_kafka_conf_destroy(conf);
    free(b);
    return NULL;
  }
  b->cluster = rd_kafka_mock_cluster_new(b->rk, brokers);
  if (!b->cluster) {
    snprintf(err, err_size, "cannot start the mock cluster");
    vpq_broker_stop(b);
    return NULL;
  }
  for (int i = 0; i < ntopics; i++) {
    char name[256];
    int partitions;
    if (parse_topic(topics[i], name, sizeof name, &partitions) != 0) {
      snprintf(err, err_size, "bad --topic `%s` (expected NAME or NAME:PARTITIONS)", topics[i]);
      vpq_broker_stop(b);
      return NULL;
    }
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(b->cluster, name, partitions, brokers < 3 ? brokers : 3);
    if (e) {
      snprintf(err, err_size, "cannot create topic `%s`: %s", name, rd_kafka_err2str(e));
      vpq_broker_stop(b);
      return NULL;
    }
  }
  return b;
}

const char *vpq_broker_bootstraps(const vpq_broker *b) { return rd_kafka_mock_cluster_bootstraps(b->cluster); }

void vpq_broker_stop(vpq_broker *b) {
  if (!b) return;
  if (b->cluster) rd_kafka_mock_cluster_destroy(b->cluster);
  rd_kafka_destroy(b->rk);
  free(b);
}

int vpq_broker_run(int brokers, const char *const *topics, int ntopics, FILE *out, FILE *log,
                   volatile sig_atomic_t *stop) {
  char err[512];
  vpq_broker *b = vpq_broker_start(brokers, topics, ntopics, err, sizeof err);
  if (!b) {
    fprintf(log, "vpq broker: %s\n", err);
    return 1;
  }
  fprintf(out, "%s\n", vpq_broker_bootstraps(b));
  fflush(out);
  while (!*stop) nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
  vpq_broker_stop(b);
  return 0;
}
