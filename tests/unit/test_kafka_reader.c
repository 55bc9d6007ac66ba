/* test_kafka_reader.c — a Kafka consumer with message hooks (connectors/kafka/vpq_kafka_int.h),
 * the one the repartition exchanges read with, against the embedded cluster: after an
 * assignment, the hooks hand out what it owes (the partitions told lost, whose state the
 * aggregate drops) before they see any message of the new assignment. The rebalance callback
 * runs inside librdkafka's batch consume, which goes on taking messages after it: here the
 * ownership hook takes a second, long enough for the fetch of the assigned partition to land
 * in that same call (a loaded machine does the same at random; a member that joined then read
 * rows of a partition started over at its committed watermark under a stale one, and wrote
 * windows again, partial: tests/kafka/test_repartition_join_member.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka/vpq_broker.h"
#include "kafka/vpq_kafka_int.h"
#include "vpq_arena.h"
#include "vpq_batch.h"
#include "vpq_intern.h"

enum { MESSAGES = 20 };

/* What the hooks saw. */
typedef struct seen {
  int assignments;      /* ownership calls */
  bool owing;           /* an assignment's row not handed out yet */
  int owed;             /* rows handed out by `owed` */
  int messages;         /* messages given to `message` */
  int early;            /* ... of them while an assignment's row was still owed */
} seen;

/* The ownership hook: the assignment owes one row; then waits a second inside the callback. */
static void on_ownership(void *ctx, const bool *owned, const bool *continued, const int64_t *floor) {
  (void)owned;
  (void)continued;
  (void)floor;
  seen *s = ctx;
  s->assignments++;
  s->owing = true;
  nanosleep(&(struct timespec){1, 0}, NULL);
}

/* The owed hook: the row an assignment owes (diff 0), once. */
static int on_owed(void *ctx, vpq_batch *out, int n, vpq_origin *origins) {
  seen *s = ctx;
  if (!s->owing || n >= out->cap) return 0;
  s->owing = false;
  s->owed++;
  out->cols[0].data[n].i = 0;
  out->cols[0].null[n] = 1;
  out->ts[n] = out->wm[n] = 0;
  out->diff[n] = 0;
  origins[n] = (vpq_origin){0, -1};
  return 1;
}

/* The message hook: counts the message (and whether a row was still owed); gives no row. */
static int on_message(void *ctx, const rd_kafka_message_t *msg, vpq_batch *out, int n, vpq_origin *origins,
                      int64_t *event_ts, char *err, size_t err_size) {
  (void)msg;
  (void)out;
  (void)n;
  (void)origins;
  (void)err;
  (void)err_size;
  seen *s = ctx;
  s->messages++;
  if (s->owing) s->early++;
  *event_ts = VPQ_TS_MIN;
  return 0;
}

/* Produces MESSAGES messages into partition 0 of `topic`. */
static void produce(const char *bootstrap, const char *topic) {
  char reason[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, reason, sizeof reason), RD_KAFKA_CONF_OK);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason, sizeof reason);
  assert_non_null(rk);
  for (int i = 0; i < MESSAGES; i++) {
    char value[32];
    snprintf(value, sizeof value, "message %d", i);
    assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                       RD_KAFKA_V_VALUE(value, strlen(value)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  assert_int_equal(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
}

static void assignment_owes_before_messages(void **state) {
  (void)state;
  char err[512];
  const char *topics[] = {"held:1"};
  vpq_broker *broker = vpq_broker_start(1, topics, 1, err, sizeof err);
  if (!broker) fail_msg("%s", err);
  produce(vpq_broker_bootstraps(broker), "held");

  vpq_column col = {"v", VPQ_TYPE_BIGINT, false, false, false};
  vpq_plan_option options[] = {
      {"kafka.bootstrap.servers", {0}, VPQ_TYPE_STRING, vpq_broker_bootstraps(broker), {0}},
      {"topic", {0}, VPQ_TYPE_STRING, "held", {0}},
      {"group", {0}, VPQ_TYPE_STRING, "held.readers", {0}},
      {"start", {0}, VPQ_TYPE_STRING, "earliest", {0}},
  };
  vpq_relation rel = {.name = "held", .kind = VPQ_REL_STREAM, .schema = {&col, 1}, .is_source = true,
                      .source = {"kafka", "json", NULL, NULL, false, {options, 4}}, .ts_col = -1,
                      .idle_timeout_ms = 1000};
  seen s = {0};
  vpq_kafka_reader_hooks hooks = {.ctx = &s, .rows_per_message = 1, .message = on_message, .owed = on_owed,
                                  .ownership = on_ownership};
  vpq_intern *intern = vpq_intern_new();
  vpq_source *src = vpq_kafka_open_reader(&rel, intern, NULL, NULL, &hooks, err, sizeof err);
  if (!src) fail_msg("%s", err);

  vpq_arena arena;
  vpq_arena_init(&arena);
  vpq_batch *batch = vpq_batch_new(&arena, 1, NULL, VPQ_BATCH_ROWS);
  for (int waited = 0; s.messages < MESSAGES && waited < 30000; waited += 10) {
    bool done;
    batch->n = 0;
    src->vt->read(src, batch, batch->origin, &done);
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  }
  assert_int_equal(s.early, 0);
  assert_int_equal(s.messages, MESSAGES);
  assert_true(s.assignments >= 1);
  assert_int_equal(s.owed, s.assignments);

  src->vt->close(src);
  vpq_arena_free(&arena);
  vpq_intern_free(intern);
  vpq_broker_stop(broker);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(assignment_owes_before_messages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
