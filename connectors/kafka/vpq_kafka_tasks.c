/* vpq_kafka_tasks.c — partition tasks (vpq_kafka_tasks.h).
 *
 *   coordinator (group member, paused) ──assign N──► task N: thread running its own engine
 *                                      ──revoke N──► stop task N: last checkpoint, output out
 *
 * The coordinator is a consumer that joins the group and never reads: its partitions are
 * paused at once. It only learns which partition numbers this member owns. Task N is a whole
 * engine loaded from the same file whose unbounded Kafka sources read partition N only
 * (`vpq.partition`), with the state folder DIR/task-N: it resumes from that folder's newest
 * checkpoint, whoever wrote it, and its exactly-once sinks skip what the previous owner had
 * already written. Engines share nothing, so each task runs in its own thread.
 *
 * Why checkpoints per partition rather than a changelog topic per operator: a task's state is
 * already one checkpoint (every operator, its offsets, its held output), written atomically;
 * moving it needs only a folder every member can reach (one machine, or a shared filesystem),
 * no extra topics, no compaction (the embedded broker has none) and no replay of a changelog
 * on take-over. The price: results are per partition, so a keyed result is exact when its
 * GROUP BY key is the message key; a file that would need repartitioning (an aggregation or
 * a join by another key) is refused unless `repartition` is set to off.
 */
#include "vpq_kafka_tasks.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vpq.h"
#include "vpq_ckpt.h"

typedef struct task {
  int partition;
  pthread_t thread;
  pthread_mutex_t lock;
  vpq_engine *engine;     /* while it runs; guarded by lock */
  bool stop_requested;    /* guarded by lock */
  volatile bool finished;
  int rc;
  const vpq_tasks_config *config;
  FILE *log;
} task;

typedef struct runner {
  const vpq_tasks_config *config;
  FILE *log;
  task **tasks; /* by partition number; NULL when not running here */
  int cap;
  bool failed;
} runner;

static void sleep_ms(int ms) { nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000}, NULL); }

/* Applies the run's settings (and the cluster) to a task's engine. */
static void apply_settings(vpq_engine *engine, const vpq_tasks_config *c, int partition) {
  if (c->brokers) vpq_engine_set(engine, "kafka.bootstrap.servers", c->brokers);
  for (int i = 0; i < c->nsettings; i++) {
    const char *eq = strchr(c->settings[i], '=');
    if (!eq) continue;
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - c->settings[i]), c->settings[i]);
    vpq_engine_set(engine, key, eq + 1);
  }
  char text[32];
  snprintf(text, sizeof text, "%d", partition);
  vpq_engine_set(engine, "vpq.partition", text);
}

static void *task_main(void *arg) {
  task *t = arg;
  const vpq_tasks_config *c = t->config;
  char dir[4096], err[512];
  snprintf(dir, sizeof dir, "%s/task-%d", c->state_dir, t->partition);
  /* The previous owner may still be taking its last checkpoint: wait for its lock. */
  for (int waited = 0;; waited += 100) {
    int fd = vpq_ckpt_lock(dir, err, sizeof err);
    if (fd >= 0) {
      vpq_ckpt_unlock(fd);
      break;
    }
    pthread_mutex_lock(&t->lock);
    bool stop = t->stop_requested;
    pthread_mutex_unlock(&t->lock);
    if (fd == -1 || stop || waited >= 60000) {
      fprintf(t->log, "vpq: task %d: %s\n", t->partition, err);
      t->rc = stop ? 0 : -1;
      t->finished = true;
      return NULL;
    }
    sleep_ms(100);
  }
  vpq_engine *engine = vpq_engine_new();
  if (vpq_engine_load(engine, c->file_name, c->text, t->log) != 0) {
    vpq_engine_free(engine);
    t->rc = -1;
    t->finished = true;
    return NULL;
  }
  apply_settings(engine, c, t->partition);
  vpq_engine_set_state(engine, dir, c->checkpoint_interval_ms, false);
  pthread_mutex_lock(&t->lock);
  t->engine = engine;
  if (t->stop_requested) vpq_engine_stop(engine);
  pthread_mutex_unlock(&t->lock);
  fprintf(t->log, "vpq: task %d started (partition %d, state in %s)\n", t->partition, t->partition, dir);
  int rc = vpq_engine_run(engine, t->log);
  vpq_stats stats = vpq_engine_stats(engine);
  fprintf(t->log, "vpq: task %d stopped: %lld rows in, %lld rows out, %lld late, %lld malformed; checkpoint %s\n",
          t->partition, (long long)stats.rows_in, (long long)stats.rows_out, (long long)stats.late,
          (long long)stats.malformed, stats.checkpoints ? "taken" : "none");
  pthread_mutex_lock(&t->lock);
  t->engine = NULL;
  pthread_mutex_unlock(&t->lock);
  vpq_engine_free(engine);
  t->rc = rc < 0 ? -1 : 0; /* 1: stopped before a bounded input's end, as a task is when its partition moves */
  t->finished = true;
  return NULL;
}

static void start_task(runner *r, int partition) {
  if (partition < 0) return;
  if (partition >= r->cap) {
    int cap = partition + 16;
    r->tasks = realloc(r->tasks, sizeof *r->tasks * (size_t)cap);
    if (!r->tasks) abort();
    for (int i = r->cap; i < cap; i++) r->tasks[i] = NULL;
    r->cap = cap;
  }
  if (r->tasks[partition]) return;
  task *t = calloc(1, sizeof *t);
  if (!t) abort();
  t->partition = partition;
  t->config = r->config;
  t->log = r->log;
  pthread_mutex_init(&t->lock, NULL);
  if (pthread_create(&t->thread, NULL, task_main, t) != 0) {
    fprintf(r->log, "vpq: cannot start the task of partition %d\n", partition);
    pthread_mutex_destroy(&t->lock);
    free(t);
    r->failed = true;
    return;
  }
  r->tasks[partition] = t;
}

/* Stops a task: its engine takes a last checkpoint and lets its held output out. */
static void stop_task(runner *r, int partition) {
  task *t = partition >= 0 && partition < r->cap ? r->tasks[partition] : NULL;
  if (!t) return;
  pthread_mutex_lock(&t->lock);
  t->stop_requested = true;
  if (t->engine) vpq_engine_stop(t->engine);
  pthread_mutex_unlock(&t->lock);
  pthread_join(t->thread, NULL);
  if (t->rc != 0) r->failed = true;
  pthread_mutex_destroy(&t->lock);
  free(t);
  r->tasks[partition] = NULL;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t *parts, void *opaque) {
  runner *r = opaque;
  if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (int i = 0; i < parts->cnt; i++) start_task(r, parts->elems[i].partition);
    rd_kafka_assign(rk, parts);
    rd_kafka_pause_partitions(rk, parts); /* the tasks read; this member only holds the assignment */
  } else {
    for (int i = 0; i < parts->cnt; i++) stop_task(r, parts->elems[i].partition);
    rd_kafka_assign(rk, NULL);
  }
}

/* The consumer-group member that owns this process's partitions, with the sources' `kafka.` properties, then
 * --brokers and --set; NULL with `err` filled. */
static rd_kafka_t *open_coordinator(runner *r, const vpq_engine *probe, const char *group, char *err, size_t err_size) {
  const vpq_tasks_config *c = r->config;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  bool ok = rd_kafka_conf_set(conf, "group.id", group, err, err_size) == RD_KAFKA_CONF_OK &&
            rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, err_size) == RD_KAFKA_CONF_OK &&
            rd_kafka_conf_set(conf, "log_level", "3", err, err_size) == RD_KAFKA_CONF_OK;
  /* the sources' own librdkafka properties (the cluster, its security, the group's timeouts),
   * then --brokers and --set, which override them as they do the sources' */
  const char *names[64], *values[64];
  const int nproperties = vpq_engine_kafka_stream_properties(probe, names, values, 64);
  for (int i = 0; ok && i < nproperties; i++)
    ok = rd_kafka_conf_set(conf, names[i], values[i], err, err_size) == RD_KAFKA_CONF_OK;
  if (ok && c->brokers) ok = rd_kafka_conf_set(conf, "bootstrap.servers", c->brokers, err, err_size) == RD_KAFKA_CONF_OK;
  for (int i = 0; ok && i < c->nsettings; i++) {
    const char *eq = strchr(c->settings[i], '=');
    if (!eq || strncmp(c->settings[i], "kafka.", 6) != 0) continue;
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - c->settings[i] - 6), c->settings[i] + 6);
    ok = rd_kafka_conf_set(conf, key, eq + 1, err, err_size) == RD_KAFKA_CONF_OK;
  }
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
  rd_kafka_conf_set_opaque(conf, r);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, err_size);
  if (!rk) rd_kafka_conf_destroy(conf);
  else rd_kafka_poll_set_consumer(rk);
  return rk;
}

int vpq_kafka_run_tasks(const vpq_tasks_config *c, FILE *log, volatile sig_atomic_t *stop) {
  vpq_engine *probe = vpq_engine_new();
  if (vpq_engine_load(probe, c->file_name, c->text, log) != 0) {
    vpq_engine_free(probe);
    return 1;
  }
  const char *topics[64];
  int ntopics = vpq_engine_kafka_stream_topics(probe, topics, 64);
  if (!ntopics) {
    fprintf(log, "vpq: --partition-tasks: %s reads no unbounded Kafka source\n", c->file_name);
    vpq_engine_free(probe);
    return 1;
  }
  /* A task reads one partition of each source: rows of another key than the message key
   * would have to move between tasks, which tasks cannot do yet. */
  apply_settings(probe, c, 0);
  const char *relation, *internal;
  if (vpq_engine_repartitions(probe, &relation, &internal, 1) > 0) {
    fprintf(log, "vpq: --partition-tasks cannot repartition yet: `%s` groups or joins rows by another key than the message "
            "key of the source they come from (it would need the internal topic `%s`); run it without "
            "--partition-tasks, or with --set repartition=off for results per partition\n", relation, internal);
    vpq_engine_free(probe);
    return 1;
  }
  const char *base = strrchr(c->file_name, '/');
  char group[300];
  snprintf(group, sizeof group, "%s", base ? base + 1 : c->file_name);
  char *dot = strrchr(group, '.');
  if (dot && dot != group) *dot = '\0';
  strncat(group, ".tasks", sizeof group - strlen(group) - 1);
  runner r = {c, log, NULL, 0, false};
  char err[512];
  rd_kafka_t *rk = open_coordinator(&r, probe, group, err, sizeof err);
  if (!rk) {
    fprintf(log, "vpq: cannot join group `%s`: %s\n", group, err);
    vpq_engine_free(probe);
    return 1;
  }
  rd_kafka_topic_partition_list_t *subscription = rd_kafka_topic_partition_list_new(ntopics);
  for (int i = 0; i < ntopics; i++) rd_kafka_topic_partition_list_add(subscription, topics[i], RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, subscription);
  rd_kafka_topic_partition_list_destroy(subscription);
  vpq_engine_free(probe);
  if (e) {
    fprintf(log, "vpq: cannot subscribe: %s\n", rd_kafka_err2str(e));
    rd_kafka_destroy(rk);
    return 1;
  }
  fprintf(log, "vpq: joining group `%s`: one task per partition, state in %s/task-N\n", group, c->state_dir);
  while (!*stop && !r.failed) {
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 200);
    if (msg) rd_kafka_message_destroy(msg);
    for (int p = 0; p < r.cap; p++) {
      task *t = r.tasks[p];
      if (t && t->finished) {
        fprintf(log, "vpq: task %d ended by itself%s\n", p, t->rc ? " with an error" : "");
        stop_task(&r, p);
        r.failed = true;
      }
    }
  }
  for (int p = 0; p < r.cap; p++) stop_task(&r, p);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  free(r.tasks);
  return r.failed ? 1 : 0;
}
