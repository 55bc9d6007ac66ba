/* vpq_broker.c — the embedded Kafka cluster (vpq_broker.h).
 *
 * librdkafka's mock cluster lives inside an rd_kafka_t handle: the handle is created only to
 * own it. Its limits (librdkafka 2.0.2) are the user's to know (DESIGN §5): each partition
 * keeps only its newest ~5 MiB, no admin API (topics come from --topic or are auto-created
 * with 4 partitions), transactions without markers, the first group join takes 3 s.
 *
 * For fault tests the cluster takes commands (vpq_broker_control; `vpq broker --control` reads
 * them from standard input): a broker down or up, a round-trip delay, errors for the next
 * requests of one API.
 */
#include "vpq_broker.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* Kafka API keys and error codes that fault-injection commands may name. */
static const struct {
  const char *name;
  int value;
} fault_names[] = {
    {"Produce", 0},         {"Fetch", 1},          {"ListOffsets", 2},          {"Metadata", 3},
    {"OffsetCommit", 8},    {"OffsetFetch", 9},    {"FindCoordinator", 10},     {"JoinGroup", 11},
    {"Heartbeat", 12},      {"SyncGroup", 14},     {"InitProducerId", 22},
    {"NOT_LEADER_OR_FOLLOWER", RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION},
    {"REQUEST_TIMED_OUT", RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT},
    {"NOT_ENOUGH_REPLICAS", RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS},
    {"LEADER_NOT_AVAILABLE", RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE},
    {"COORDINATOR_NOT_AVAILABLE", RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE},
    {"UNKNOWN_TOPIC_OR_PART", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART},
};

/* A name of fault_names or a number; -1 when it is neither. */
static int fault_value(const char *word) {
  for (size_t i = 0; i < sizeof fault_names / sizeof *fault_names; i++)
    if (strcmp(fault_names[i].name, word) == 0) return fault_names[i].value;
  char *end;
  long v = strtol(word, &end, 10);
  return *word && !*end && v >= 0 && v < 10000 ? (int)v : -1;
}

int vpq_broker_control(vpq_broker *b, const char *command, char *reply, size_t reply_size) {
  char verb[32], a[64], c[64], d[64];
  int n = sscanf(command, "%31s %63s %63s %63s", verb, a, c, d);
  int x = n >= 2 ? fault_value(a) : -1, y = n >= 3 ? fault_value(c) : -1, z = n >= 4 ? fault_value(d) : -1;
  rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (n == 2 && strcmp(verb, "down") == 0 && x >= 0) {
    e = rd_kafka_mock_broker_set_down(b->cluster, x);
  } else if (n == 2 && strcmp(verb, "up") == 0 && x >= 0) {
    e = rd_kafka_mock_broker_set_up(b->cluster, x);
  } else if (n == 3 && strcmp(verb, "rtt") == 0 && x >= 0 && y >= 0) {
    e = rd_kafka_mock_broker_set_rtt(b->cluster, x, y);
  } else if (n == 4 && strcmp(verb, "errors") == 0 && x >= 0 && y > 0 && z >= 0) {
    rd_kafka_resp_err_t *errors = malloc(sizeof *errors * (size_t)y);
    if (!errors) abort();
    for (int i = 0; i < y; i++) errors[i] = (rd_kafka_resp_err_t)z;
    rd_kafka_mock_push_request_errors_array(b->cluster, x, (size_t)y, errors);
    free(errors);
  } else {
    snprintf(reply, reply_size, "unknown command `%s` (down ID | up ID | rtt ID MS | errors API COUNT ERROR)", command);
    return -1;
  }
  if (e) {
    snprintf(reply, reply_size, "%s: %s", command, rd_kafka_err2str(e));
    return -1;
  }
  snprintf(reply, reply_size, "ok %s", command);
  return 0;
}

int vpq_broker_run(int brokers, const char *const *topics, int ntopics, bool control, FILE *out, FILE *log,
                   volatile sig_atomic_t *stop) {
  char err[512];
  vpq_broker *b = vpq_broker_start(brokers, topics, ntopics, err, sizeof err);
  if (!b) {
    fprintf(log, "vpq broker: %s\n", err);
    return 1;
  }
  fprintf(out, "%s\n", vpq_broker_bootstraps(b));
  fflush(out);
  char line[256];
  size_t len = 0;
  while (!*stop) {
    struct pollfd in = {0, POLLIN, 0};
    if (!control || poll(&in, 1, 50) <= 0) {
      if (!control) nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
      continue;
    }
    ssize_t got = read(0, line + len, sizeof line - 1 - len);
    if (got <= 0) {
      control = false; /* end of the commands: run on */
      continue;
    }
    len += (size_t)got;
    line[len] = '\0';
    char *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
      *nl = '\0';
      if (*line) {
        char reply[300];
        vpq_broker_control(b, line, reply, sizeof reply);
        fprintf(log, "vpq broker: %s\n", reply);
      }
      len -= (size_t)(nl + 1 - line);
      memmove(line, nl + 1, len + 1);
    }
    if (len == sizeof line - 1) len = 0; /* a line too long to be a command */
  }
  vpq_broker_stop(b);
  return 0;
}
