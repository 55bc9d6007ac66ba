/* vpq_repartition.h — repartitioning between the members of a consumer group
 * (engine-internal): which aggregations must move their input rows to the member that owns
 * their GROUP BY key, and the two operators at the ends of that move.
 *
 *   source ─► ... ─► [Filter] ─► Repartition ──► exchange (connectors: an internal Kafka topic)
 *                                                    │ rows of the keys this member owns
 *                                RepartitionScan ◄───┘ ─► Aggregate ─► relation
 *
 * Without a running exchange (an engine driven by vpq_engine_push_json, or before
 * vpq_engine_run opens it) the Repartition operator hands its rows straight to the scan, so
 * the pipeline computes the same results in one process.
 */
#ifndef VPQ_REPARTITION_H
#define VPQ_REPARTITION_H

#include "vpq_op.h"

/* One repartition step: the aggregation it feeds, and the exchange while a run has it open. */
typedef struct vpq_repartition {
  const vpq_plan_query *query; /* the aggregation that reads the moved rows */
  int source;                  /* the group-read Kafka source the rows come from (relation index) */
  const int *upsert_keys;      /* table input: the upstream table's key columns (rows upsert) */
  int nupsert_keys;
  bool dedup;                  /* rows are a source's messages through filters and projections */
  vpq_schema keys;             /* the key columns written before each row (none: one key) */
  char topic[300];             /* the exchange's topic and its readers' group (named by the engine) */
  /* While a run has the exchange open (the engine fills these): */
  vpq_sink *writer;            /* NULL: rows go straight from the Repartition operator to the scan */
  vpq_source *reader;
  vpq_op *write_op, *scan_op;
  vpq_batch *batch;            /* what the reader reads into */
  int64_t checkpoint_wm;       /* the reader's watermark at the last checkpoint */
} vpq_repartition;

/* Finds the aggregations of `plan` whose input rows are spread over the members of a consumer
 * group other than by their GROUP BY key (every key on one member; a global aggregate or a
 * ROLLUP: all rows on one member) and returns how many, their steps in *steps (allocated in
 * `arena`, topics not named yet). A relation read from a group-read Kafka source is spread by
 * its KEY columns; filters and projections keep the spread of what they read when they keep
 * its key columns; an aggregation spreads its result by its GROUP BY keys. */
int vpq_repartition_plan(const vpq_plan *plan, vpq_arena *arena, vpq_repartition **steps);

/* The step of `query`, or NULL. */
vpq_repartition *vpq_repartition_find(vpq_repartition *steps, int n, const vpq_plan_query *query);

/* The writing end: evaluates the step's key columns and writes [keys..., row...] to its
 * exchange (or emits the rows as they are when it has none); passes watermarks on as
 * announcements. */
vpq_op *vpq_repartition_writer_new(vpq_runtime *rt, vpq_arena *arena, vpq_repartition *step);

/* Announces the writer's watermark (VPQ_TS_MIN before its input has given one) when it has
 * moved and not been announced for 200 ms, or has not been for a second, or at once with
 * `force`. False when the exchange refused it (logged; the run fails). */
bool vpq_repartition_announce(vpq_op *writer, int64_t now_ms, bool force);

/* The reading end: emits the exchange's rows (in the query's input layout) to the aggregate. */
vpq_op *vpq_repartition_scan_new(vpq_runtime *rt, vpq_repartition *step);

/* Emits rows read from the exchange (event time, watermark, diff and origin set). */
void vpq_repartition_scan_push(vpq_op *scan, const vpq_batch *batch);

/* Passes the exchange's watermark on. */
void vpq_repartition_scan_watermark(vpq_op *scan, int64_t wm);

#endif
