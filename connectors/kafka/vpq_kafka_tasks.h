/* vpq_kafka_tasks.h — scale-out whose state moves with its partitions: a file run as one
 * pipeline per input partition (a task), each with its own checkpoints, so that when a member
 * of the consumer group dies, the survivors take over its partitions together with their state
 * (`vpq run --partition-tasks`). */
#ifndef VPQ_KAFKA_TASKS_H
#define VPQ_KAFKA_TASKS_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

typedef struct vpq_tasks_config {
  const char *file_name;         /* the .vpq file, and its text */
  const char *text;
  const char *const *settings;   /* "key=value", as `vpq run --set` */
  int nsettings;
  const char *brokers;           /* the cluster (or a kafka.bootstrap.servers setting) */
  const char *state_dir;         /* shared by every member: task N keeps its state in DIR/task-N */
  int64_t checkpoint_interval_ms;
} vpq_tasks_config;

/* Joins the consumer group `<file stem>.tasks` for the file's unbounded Kafka sources and runs
 * one task per assigned partition number: a whole pipeline reading partition N of every such
 * source, checkpointing into DIR/task-N with exactly-once output, started (resuming from its
 * checkpoint) when the partition is assigned and stopped (after a last checkpoint) when it is
 * revoked. Runs until `*stop` becomes non-zero. Returns 0, or 1 when the group cannot be
 * joined or a task fails (logged on `log`). */
int vpq_kafka_run_tasks(const vpq_tasks_config *config, FILE *log, volatile sig_atomic_t *stop);

#endif
