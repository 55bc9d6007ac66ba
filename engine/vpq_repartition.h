/* vpq_repartition.h — repartitioning between the members of a consumer group
 * (engine-internal): which aggregations must move their input rows to the member that owns
 * their GROUP BY key, which joins must move both their sides to the member that owns their
 * join key, and the two operators at the ends of each move.
 *
 *   source ─► ... ─► [Filter] ─► Repartition ──► exchange (connectors: an internal Kafka topic)
 *                                                    │ rows of the keys this member owns
 *                                RepartitionScan ◄───┘ ─► Aggregate ─► relation
 *
 *   left  ─► Repartition (side 0) ──┐                 ┌─► RepartitionScan (side 0) ─► Join port 0
 *                                   ├─► one exchange ─┤
 *   right ─► Repartition (side 1) ──┘                 └─► RepartitionScan (side 1) ─► Join port 1
 *
 * Both sides of a join go into one topic, keyed by the join key: partition i holds both
 * sides' rows of the keys that hash to i, and the one member of the topic's group that reads
 * it sees every row of those keys (co-partitioned and co-assigned by construction).
 *
 *   fleet    ─► Repartition (side 0) ──┐                 ┌─► RepartitionScan ─► SCHEDULE port 1
 *   forecast ─► Repartition (side 1) ──┼─► one exchange ─┼─► RepartitionScan ─► SCHEDULE port 0
 *   prices   ─► Repartition (side 2) ──┘   (one key)     └─► RepartitionScan ─► SCHEDULE port 2
 *
 * SCHEDULE plans the whole fleet on one member: each of its inputs that is spread over the
 * members goes into one topic under one key, whose one partition with rows one member reads.
 * An input every member has whole (a file) stays where it is.
 *
 * Without a running exchange (an engine driven by vpq_engine_push_json, or before
 * vpq_engine_run opens it) the Repartition operator hands its rows straight to the scan, so
 * the pipeline computes the same results in one process.
 */
#ifndef VPQ_REPARTITION_H
#define VPQ_REPARTITION_H

#include "vpq_op.h"

/* One repartition step: the aggregation it feeds (or one side of the join or one input of the
 * SCHEDULE it feeds), and the exchange while a run has it open. A join has two steps, one per
 * side, sharing one topic, and a SCHEDULE one per input it moves: the first one (the lead)
 * reads the rows of all. */
typedef struct vpq_repartition vpq_repartition;
struct vpq_repartition {
  const vpq_plan_query *query; /* the query that reads the moved rows */
  int join;                    /* a join's step: the join's index; -1: an aggregation's or a SCHEDULE's */
  int side;                    /* a step of an exchange of several inputs: its side (a join's: 0 left, 1 right) */
  int port;                    /* a SCHEDULE's step: the operator's input it feeds */
  vpq_repartition *lead;       /* a step of an exchange of several inputs: the one that reads it (side 0) */
  int nsides;                  /* the lead: how many inputs share its exchange (0: one input) */
  vpq_repartition *sides[VPQ_EXCHANGE_MAX_SIDES]; /* the lead: the step of each side */
  bool lookup;                 /* a table's changes (a join's right side, SCHEDULE's fleet): no watermark */
  int source;                  /* the group-read Kafka source the rows come from (relation index) */
  const int *upsert_keys;      /* table input: the upstream table's key columns (rows upsert) */
  int nupsert_keys;
  bool dedup;                  /* rows are a source's messages through filters and projections */
  vpq_schema keys;             /* the key columns written before each row (none: one key) */
  vpq_schema rows;             /* what the exchange carries: the aggregation's input layout, or
                                  the join's (its left side's columns, then its right side's), or
                                  a SCHEDULE's moved inputs' columns one after the other */
  vpq_schema side_rows;        /* what this step writes: `rows`, or its side's columns of them */
  char topic[300];             /* the exchange's topic and its readers' group (named by the engine) */
  /* While a run has the exchange open (the engine fills these): */
  vpq_sink *writer;            /* NULL: rows go straight from the Repartition operator to the scan */
  vpq_source *reader;
  vpq_op *write_op, *scan_op;
  vpq_op *aggregate;           /* the aggregation the scan feeds (not a join's step) */
  vpq_batch *batch;            /* what the reader reads into */
  int64_t checkpoint_wm;       /* the reader's watermark at the last checkpoint */
};

/* A join of rows read by a group that cannot be made exact by repartitioning. */
typedef struct vpq_repartition_refusal {
  const vpq_plan_query *query;
  int join;                    /* index in query->select.joins */
  const char *why;
} vpq_repartition_refusal;

/* Finds the aggregations of `plan` whose input rows are spread over the members of a consumer
 * group other than by their GROUP BY key (every key on one member; a global aggregate or a
 * ROLLUP: all rows on one member), and the joins whose two sides are spread and not on the
 * same member by their join key, and returns how many steps they need, the steps in *steps
 * (allocated in `arena`, topics not named yet). A relation read from a group-read Kafka
 * source is spread by its KEY columns; filters and projections keep the spread of what they
 * read when they keep its key columns; an aggregation spreads its result by its GROUP BY
 * keys, a repartitioned join by its join key. Joins that cannot be made exact are listed in
 * *refused (*nrefused of them). */
int vpq_repartition_plan(const vpq_plan *plan, vpq_arena *arena, vpq_repartition **steps,
                         vpq_repartition_refusal **refused, int *nrefused);

/* The step of the aggregation of `query`, or NULL. */
vpq_repartition *vpq_repartition_find(vpq_repartition *steps, int n, const vpq_plan_query *query);

/* The left side's step of join `join` of `query` (the lead: sides[1] is the right side's), or NULL. */
vpq_repartition *vpq_repartition_find_join(vpq_repartition *steps, int n, const vpq_plan_query *query, int join);

/* The step of the SCHEDULE `query` that feeds its input `port`, or NULL (the input stays). */
vpq_repartition *vpq_repartition_find_schedule(vpq_repartition *steps, int n, const vpq_plan_query *query, int port);

/* True when `query` has a step of any kind. */
bool vpq_repartition_moves(const vpq_repartition *steps, int n, const vpq_plan_query *query);

/* The writing end: evaluates the step's key columns and writes [keys..., row...] to its
 * exchange (or emits the rows as they are when it has none); passes watermarks on as
 * announcements (none for a lookup side). */
vpq_op *vpq_repartition_writer_new(vpq_runtime *rt, vpq_arena *arena, vpq_repartition *step);

/* Announces the writer's watermark (VPQ_TS_MIN before its input has given one) when it has
 * moved and not been announced for 200 ms, or has not been for a second, or at once with
 * `force`. False when the exchange refused it (logged; the run fails). */
bool vpq_repartition_announce(vpq_op *writer, int64_t now_ms, bool force);

/* The reading end: emits the exchange's rows (the step's side_rows) to the aggregate, join or SCHEDULE;
 * an aggregate's rows with two more BIGINT columns, the partition of the internal topic each
 * row was read from (-1 without a running exchange) and the watermark to judge it late by
 * (vpq_exchange_spec.tell_partitions). */
vpq_op *vpq_repartition_scan_new(vpq_runtime *rt, vpq_repartition *step);

/* Emits rows read from the exchange (event time, watermark, diff and origin set). An
 * aggregation's batch (its layout `rows` and two last BIGINT columns, the partition of each
 * row and the watermark to judge it late by) goes to the aggregate, which forgets a partition where a row with diff 0 tells it is
 * lost (vpq_exchange_spec.tell_partitions). The batch of several inputs (its layout `rows`
 * and one last BIGINT column, the side of each row) goes to the sides' scans, each run of
 * rows of one side in turn, so that rows keep their order. */
void vpq_repartition_scan_push(vpq_repartition *step, const vpq_batch *batch);

/* Passes the exchange's watermark on (to every side of an exchange of several inputs). */
void vpq_repartition_scan_watermark(vpq_repartition *step, int64_t wm);

#endif
