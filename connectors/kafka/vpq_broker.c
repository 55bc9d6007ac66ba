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

int vpq_broker_run(int brokers, const char *const *topics, int ntopics, FILE *out, FILE *log,
                   volatile sig_atomic_t *stop) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err) != RD_KAFKA_CONF_OK) {
    fprintf(log, "vpq broker: %s\n", err);
    rd_kafka_conf_destroy(conf);
    return 1;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    fprintf(log, "vpq broker: %s\n", err);
    rd_kafka_conf_destroy(conf);
    return 1;
  }
  int rc = 1;
  rd_kafka_mock_cluster_t *cluster = rd_kafka_mock_cluster_new(rk, brokers);
  if (!cluster) {
    fprintf(log, "vpq broker: cannot start the mock cluster\n");
    goto done;
  }
  for (int i = 0; i < ntopics; i++) {
    char name[256];
    int partitions;
    if (parse_topic(topics[i], name, sizeof name, &partitions) != 0) {
      fprintf(log, "vpq broker: bad --topic `%s` (expected NAME or NAME:PARTITIONS)\n", topics[i]);
      goto done;
    }
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(cluster, name, partitions, brokers < 3 ? brokers : 3);
    if (e) {
      fprintf(log, "vpq broker: cannot create topic `%s`: %s\n", name, rd_kafka_err2str(e));
      goto done;
    }
  }
  fprintf(out, "%s\n", rd_kafka_mock_cluster_bootstraps(cluster));
  fflush(out);
  while (!*stop) nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
  rc = 0;
done:
  if (cluster) rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  return rc;
}
