/* vpq_op.h — physical operators and the runtime context they share (engine-internal).
 *
 * Operators form a push DAG. A producer calls vpq_op_emit() with a batch and then
 * vpq_op_emit_watermark() with the watermark it passes on; each consumer's `push` and
 * `watermark` run synchronously, on the single worker thread that owns the pipeline.
 * Watermarks also travel per row (vpq_batch.h): a stateful operator advances to wm[i]
 * before it processes row i.
 *
 *   source ─► relation ─┬─► map (WHERE, SELECT) ─► relation ─► sink
 *                       └─► join ─► aggregate (windows) ─► relation ─► ...
 *
 * A "relation" operator is the one place where a stream or table's rows exist: it fans
 * them out to every query reading it, to its sink, and to subscribers.
 */
#ifndef VPQ_OP_H
#define VPQ_OP_H

#include <stdbool.h>
#include <stdint.h>

#include "../connectors/vpq_connector.h"
#include "vpq.h"
#include "vpq_arena.h"
#include "vpq_batch.h"
#include "vpq_buf.h"
#include "vpq_ckpt.h"
#include "vpq_intern.h"
#include "vpq_plan.h"

typedef struct vpq_op vpq_op;

/* An operator that holds rows of the current dispatch (one source batch pushed through the
 * pipeline) until it ends: `flush` runs when vpq_op_source_push has pushed the batch, waiters
 * in the order of `order`, their operator's depth in the pipeline (vpq_op_depth: upstream
 * first, so that what one flushes reaches the ones after it before they flush). */
typedef struct vpq_dispatch_waiter {
  void (*flush)(struct vpq_dispatch_waiter *waiter);
  struct vpq_dispatch_waiter *next;
  int order;
} vpq_dispatch_waiter;

/* The source batch being pushed through the pipeline: its rows' origins, in order, so that an
 * operator can tell which of two rows derived from it came first (vpq_runtime_dispatch_position). */
typedef struct vpq_dispatch {
  const vpq_origin *origin; /* NULL outside vpq_op_source_push */
  int n;
  int32_t source;           /* the source relation that read the batch (vpq_batch.source) */
  int *index;               /* lazily built: origin hash → row, open addressing (scratch arena) */
  int index_size;
  vpq_dispatch_waiter *waiting; /* to flush, by order */
} vpq_dispatch;

/* What every operator can reach: the string pool, the counters, scratch memory. */
typedef struct vpq_runtime {
  vpq_intern *intern;
  vpq_dispatch dispatch; /* the source batch being pushed through */
  vpq_stats stats;
  vpq_arena scratch; /* batches in flight; reset between top-level source batches */
  FILE *log;
  bool failed;       /* a sink failed: the run ends with an error */
  int64_t now_ms;    /* the processing-time clock (wall clock, or a test's virtual clock) */
  int64_t open_groups; /* aggregation groups open now, all operators */
  bool withdrawing;    /* the rows in flight withdraw what a rebalance took from this member: the
                          new owner writes those keys, so sinks write none of them */
  bool replaying;      /* the rows in flight are a restored table's rows, shown again to the
                          relation's subscribers only (vpq_op_aggregate_replay) */
  unsigned idle_visits; /* visits of operators told that an input went idle (vpq_op.idle_seen) */
} vpq_runtime;

typedef struct vpq_op_vt {
  const char *kind; /* "Scan", "Filter", "Project", "WindowAggregate", ... */
  void (*push)(vpq_op *op, int port, const vpq_batch *batch);
  void (*watermark)(vpq_op *op, int port, int64_t wm);
  /* Appends one line of details for explain (keys, window, expressions). */
  void (*describe)(const vpq_op *op, vpq_buf *out);
  void (*destroy)(vpq_op *op);
  /* Writes the operator's own state into a checkpoint (NULL: it keeps none). Strings are
   * written as their interned ids: the string pool is checkpointed with the operators. */
  void (*save)(const vpq_op *op, vpq_ckpt_out *out);
  /* Restores what `save` wrote into the freshly built operator (same plan); malformed
   * input fails `in` (vpq_ckpt_fail) and must neither crash nor leak. */
  void (*load)(vpq_op *op, vpq_ckpt_in *in);
  /* An operator of several inputs (NULL for the others): a source upstream of one of them went
   * idle, so that input no longer holds the watermark back (vpq_op_inputs_watermark); takes the
   * watermark over its inputs again and passes it on when it rose. */
  void (*input_idle)(vpq_op *op);
} vpq_op_vt;

typedef struct vpq_op_out {
  vpq_op *op;
  int port;
} vpq_op_out;

struct vpq_op {
  const vpq_op_vt *vt;
  vpq_runtime *rt;
  const vpq_schema *schema; /* the rows it emits */
  vpq_op_out *outs;
  int nouts;
  int outs_cap;
  vpq_op **inputs; /* for explain and idleness (vpq_op_input_idle) */
  int *input_ports; /* the input port each of `inputs` feeds */
  int ninputs;
  uint32_t watermark_ports; /* the input ports whose watermarks it takes (bit per port; all by
                               default): a lookup join's stream side, SCHEDULE's forecast and
                               prices, not the tables beside them */
  unsigned idle_seen; /* emit_input_idle's visit mark */
  signed char idle; /* 1 idle, 0 not (a source: vpq_op_source_idle; an operator that keeps its
                       own watermark over what it reads, such as a repartition scan: never);
                       -1 as its inputs (idle when each one is) */
  int64_t rows_in;
  int64_t rows_out;
  int64_t passed_wm; /* the last watermark passed downstream */
  int depth;         /* vpq_op_depth, -1 until asked */
};

/* Counts a refused record or row under the reason its message starts with ("type mismatch:
 * field soc ..." counts as VPQ_REASON_TYPE_MISMATCH). */
void vpq_runtime_refused(vpq_runtime *rt, const char *reason);
/* The reason a message starts with (vpq_runtime_refused's count). */
vpq_reason vpq_runtime_reason(const char *reason);

/* The position in the source batch being pushed of the row with origin `o` read by source
 * `source` (vpq_batch.source; 0: not known, as for an aggregation's results, whose origin is
 * the source row that made them): the row's index, or -1 when no source batch is being pushed,
 * another source read the row, or none of the batch's rows has that origin. */
int vpq_runtime_dispatch_position(vpq_runtime *rt, vpq_origin o, int32_t source);

/* Has `waiter`, which holds rows for `op`, flushed once the source batch being pushed has gone
 * through (after the waiters of operators upstream of it: vpq_op_depth): within
 * vpq_op_source_push (rt->dispatch.origin set), while it is not waiting already; it may wait
 * again once flushed (rows reach it from a waiter flushed before it). */
void vpq_op_dispatch_wait(vpq_op *op, vpq_dispatch_waiter *waiter);

/* Batches an operator holds while a source batch goes through (in scratch memory, which lasts
 * until it has). */
typedef struct vpq_held_batches {
  const vpq_batch **items;
  int n, cap;
} vpq_held_batches;

/* Appends `batch` to `held`. */
void vpq_held_batches_push(vpq_held_batches *held, const vpq_batch *batch);

/* A held row: its batch (index into a vpq_held_batches), row, and the position of its source row
 * in the source batch (INT_MAX when not known: after the others). */
typedef struct vpq_held_row {
  int batch, row, position;
} vpq_held_row;

/* Orders held rows by position, then as they came (batch, row). */
int vpq_held_row_compare(const void *a, const void *b);

/* Passes the rows of `held` to `deliver` in the order of their source rows, whichever batch
 * holds them: the batches themselves when they are in that order already, else new batches of
 * at most VPQ_BATCH_ROWS rows of `op`'s schema. */
void vpq_op_deliver_in_source_order(vpq_op *op, const vpq_held_batches *held,
                                    void (*deliver)(vpq_op *op, const vpq_batch *batch));

/* The length of the longest path from a source to `op` through the operators' inputs (a
 * source: 0), computed once the pipeline is connected and then kept. */
int vpq_op_depth(vpq_op *op);

/* Initialises the common part of an operator. */
void vpq_op_init(vpq_op *op, const vpq_op_vt *vt, vpq_runtime *rt, const vpq_schema *schema);

/* Connects `from`'s output to input `port` of `to`. */
void vpq_op_connect(vpq_op *from, vpq_op *to, int port);

/* Sends a batch to every consumer. */
void vpq_op_emit(vpq_op *op, const vpq_batch *batch);

/* Passes a watermark to every consumer (ignored unless it is higher than the last one). */
void vpq_op_emit_watermark(vpq_op *op, int64_t wm);

/* Whether input `port` of `op` is idle: every source upstream of it, through the ports that
 * carry watermarks (vpq_op.watermark_ports), has had no row for its idle_timeout
 * (vpq_op_source_idle), so it does not hold back the watermark of an operator of several inputs
 * (DESIGN §3, as Flink leaves idle inputs out). */
bool vpq_op_input_idle(const vpq_op *op, int port);

/* The watermark of `op` over its input ports [0, n), whose watermarks are `wm`, leaving out
 * port `skip` (-1: none) and the inputs that have ended (VPQ_TS_MAX): the lowest of the inputs
 * that are not idle. When every one left is idle, the lowest of those that have a watermark (an
 * idle source's advances with the clock; one that has had no row has none), or VPQ_TS_MIN; with
 * `skip` given, or when every input has ended, VPQ_TS_MAX. */
int64_t vpq_op_inputs_watermark(const vpq_op *op, const int64_t *wm, int n, int skip);

/* Frees the common part (the operator's own state is freed by its destroy). */
void vpq_op_release(vpq_op *op);

/* A batch of `schema`'s column types with room for `cap` rows, from the scratch arena. */
vpq_batch *vpq_op_batch(vpq_runtime *rt, const vpq_schema *schema, int cap);

/* ===== Constructors, one per physical operator ===== */

/* The connector objects of a source relation, filled in when the run opens them. */
typedef struct vpq_source_slot {
  const vpq_relation *rel; /* the source relation (its name is the origin of pushed rows) */
  vpq_source *src;
  vpq_dead_letter *dl;
} vpq_source_slot;

/* Writes row `row` of `batch` (its columns named by `schema`) with `reason` to the dead-letter
 * output of the source it derives from: the one its origin names, else `from` (may be NULL)
 * when that is a source (a row read back from an internal topic or a checkpoint); nothing when
 * that source has none. */
void vpq_op_dead_letter(vpq_runtime *rt, const vpq_source_slot *slots, const vpq_relation *from,
                        const vpq_schema *schema, const vpq_batch *batch, int row, const char *reason);
/* Counts row `row` as late and dead-letters it (vpq_op_dead_letter) with reason "late". */
void vpq_op_late_row(vpq_runtime *rt, const vpq_source_slot *slots, const vpq_relation *from,
                     const vpq_schema *schema, const vpq_batch *batch, int row);

/* The rows of a relation: fan-out to readers, its sink (for a table, its new rows and the
 * retractions that delete a key: vpq_sink_vt's write), and
 * subscribers. With several inputs (a source and INSERT INTO queries) its watermark is the
 * minimum of theirs. */
vpq_op *vpq_op_relation_new(vpq_runtime *rt, const vpq_relation *rel);
/* Whether retraction `i` of a changelog batch is the first half of an update: the next row is
 * an insertion at the same event time, from the same input row (origin), with the same values
 * in `keys` (nkeys vectors over the batch's rows, e.g. the key columns). An update writes its
 * two rows so, side by side, within one change; otherwise the retraction deletes its key. */
bool vpq_op_replaced(const vpq_batch *batch, int i, const vpq_vec *keys, int nkeys);
/* Gives the relation a sink (owned by the operator from then on). */
void vpq_op_relation_attach_sink(vpq_op *op, vpq_sink *sink);
/* Adds a subscriber (vpq_engine_subscribe). */
void vpq_op_relation_subscribe(vpq_op *op, vpq_row_fn fn, void *ctx);
/* The relation's sink, or NULL. */
vpq_sink *vpq_op_relation_sink(const vpq_op *op);
/* After a restore: a subscribed windowed table's rows, every window's row it has shown (its
 * aggregation keeps only the open windows), to its subscribers again. */
void vpq_op_relation_replay(vpq_op *op);
/* Flushes the sink. */
void vpq_op_relation_flush(vpq_op *op);

/* A source relation's entry: stamps event time and per-row watermarks, converts a table
 * source's upserts into a changelog, dead-letters rows without a valid event time. */
vpq_op *vpq_op_source_new(vpq_runtime *rt, const vpq_relation *rel, const vpq_source_slot *slot);
/* Pushes one decoded batch from the connector. */
void vpq_op_source_push(vpq_op *op, vpq_batch *batch);
/* After a restore: a table source's current rows to its subscribers, as vpq_op_aggregate_replay. */
void vpq_op_source_replay(vpq_op *op);
/* The source's watermark now. */
int64_t vpq_op_source_watermark(const vpq_op *op);

/* Ends the source: the watermark goes to +infinity. */
void vpq_op_source_finish(vpq_op *op);

/* At processing time `now_ms`: a source that has had no rows for its idle_timeout stops holding
 * the watermark back; its watermark advances with the clock from its last row on, so windows
 * close when data stops. */
void vpq_op_source_idle(vpq_op *op, int64_t now_ms);

/* WHERE and (for queries without aggregation) the SELECT list, written in the target
 * relation's column order. `project` false: filter only (rows keep the input layout). */
vpq_op *vpq_op_map_new(vpq_runtime *rt, vpq_arena *arena, const vpq_plan_query *query,
                       const vpq_schema *input, bool project);

/* Aggregation: windows (tumbling, hopping, session) or a keyed table, ROLLUP, HAVING, the
 * SELECT list, EMIT FINAL / CHANGES, retractions of table inputs, late rows. `slots`: every
 * relation's connector objects, by relation index (a late or refused row goes to the
 * dead-letter output of the source it derives from). `partitioned`: its input is read from a
 * repartition step, each row with the internal topic's partition it came from in one more
 * BIGINT column after the input columns. */
vpq_op *vpq_op_aggregate_new(vpq_runtime *rt, vpq_arena *arena, const vpq_plan_query *query,
                             const vpq_source_slot *slots, bool partitioned);
/* A partitioned aggregation whose member no longer reads `partition` of the internal topic:
 * drops the open groups of that partition without writing them (a table's written rows are
 * retracted). Called between batches. */
void vpq_op_aggregate_forget_partition(vpq_op *op, int32_t partition);
/* After a restore: writes the rows of a table it makes (its groups' current rows) to the
 * table's subscribers alone (vpq_runtime.replaying), which, unlike the operators and sinks,
 * keep no state in checkpoints; nothing for a stream, a windowed table (vpq_op_relation_replay
 * shows its rows) or an operator that is no aggregation. */
void vpq_op_aggregate_replay(vpq_op *op);

/* Stream–table join (port 0 the stream, port 1 the table's changelog). */
vpq_op *vpq_op_table_join_new(vpq_runtime *rt, vpq_arena *arena, const vpq_plan_select *select,
                              int join_index, const vpq_schema *out);
/* Stream–stream join within a time bound (port 0 left, port 1 right); its late rows go to the
 * dead-letter output of the source they derive from (`slots`, per relation). */
vpq_op *vpq_op_window_join_new(vpq_runtime *rt, vpq_arena *arena, const vpq_plan_select *select,
                               int join_index, const vpq_schema *out, const vpq_source_slot *slots);

/* FORECAST: the input relation's rows on port 0; its late rows go to the dead-letter output of
 * the source they derive from (`slots`, per relation). */
vpq_op *vpq_op_forecast_new(vpq_runtime *rt, vpq_arena *arena, const vpq_plan_query *query,
                            const vpq_source_slot *slots);
/* Scores only the issues with issued_at in [from_ms, to_ms) (all by default). */
void vpq_op_forecast_score_range(vpq_op *op, int64_t from_ms, int64_t to_ms);
/* The accuracy of the forecasts scored so far, at horizon step `step` (-1: all steps);
 * -1 when there is no such step. */
int vpq_op_forecast_score(const vpq_op *op, int step, vpq_forecast_score *out);
/* SCHEDULE: port 0 the forecast, port 1 the fleet table's changelog, port 2 the prices; late
 * forecast rows go to the dead-letter output of the source they derive from (`slots`). */
vpq_op *vpq_op_schedule_new(vpq_runtime *rt, const vpq_plan_query *query, const vpq_source_slot *slots);

/* Copies row `row` of `batch`'s first `ncols` columns into `data`/`null` (for state kept
 * beyond a call). */
void vpq_op_copy_row(const vpq_batch *batch, int row, int ncols, vpq_datum *data, uint8_t *null);

/* Hashes `n` datums with their null flags. */
uint64_t vpq_op_hash_datums(const vpq_datum *data, const uint8_t *null, int n, uint64_t seed);

/* Makes the `n` key values of `keys`, of type `type`, compare as SQL compares them when keys are
 * hashed and compared by their bits: a DOUBLE -0.0 becomes 0.0 (they are equal). */
void vpq_op_canonical_keys(vpq_vec *keys, vpq_type type, int n);

#endif
