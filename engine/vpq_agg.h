/* vpq_agg.h — aggregate functions: init / step (with retraction) / merge / final over a
 * fixed-size state that the aggregation operator keeps per group and window.
 *
 * The operator lays out one state block per group: [agg 0 state | agg 1 state | ...], each
 * at an offset it computes from vpq_agg_state_size(). States may own heap memory (sample
 * lists, value sets); vpq_agg_destroy() releases it. A step with diff = -1 retracts a value
 * stepped earlier (tables over tables: a key's old row leaves the group); every aggregate
 * accepts it when its spec says `retracting`.
 *
 * NULL inputs are skipped by every aggregate but count(*). Results are NULL for an empty
 * group except count(*) and count(x), which are 0.
 */
#ifndef VPQ_AGG_H
#define VPQ_AGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vpq_batch.h"
#include "vpq_ckpt.h"
#include "vpq_intern.h"
#include "vpq_types.h"

/* ORDER VPQ_AGG: keep the table in vpq_agg.c in step. */
typedef enum vpq_agg_kind {
  VPQ_AGG_COUNT_STAR,
  VPQ_AGG_COUNT,
  VPQ_AGG_SUM,
  VPQ_AGG_AVG,
  VPQ_AGG_MIN,
  VPQ_AGG_MAX,
  VPQ_AGG_STDDEV,            /* sample standard deviation; NULL for fewer than 2 values */
  VPQ_AGG_FIRST,             /* value at the smallest event time (ties: first arrived) */
  VPQ_AGG_LAST,              /* value at the largest event time (ties: last arrived) */
  VPQ_AGG_COUNT_DISTINCT,
  VPQ_AGG_PERCENTILE,        /* percentile(x, p), p in [0, 1] constant; linear interpolation */
  VPQ_AGG_INTEGRATE,         /* trapezoidal integral over event time, in x·hours */
  VPQ_AGG_TIME_WEIGHTED_AVG, /* integral / (last ts − first ts); one sample: the sample */
} vpq_agg_kind;

typedef struct vpq_agg_spec {
  vpq_agg_kind kind;
  vpq_type arg_type;    /* NULL type for count(*) */
  vpq_type result_type;
  double param;         /* percentile's p */
  bool retracting;      /* the input is a changelog: steps may have diff = -1 */
  const vpq_intern *intern; /* for ordering strings (min, max of STRING) */
} vpq_agg_spec;

/* Looks up an aggregate by its lower-case name; returns false when `name` is no aggregate.
 * `*nargs` receives how many arguments it takes (percentile: 2, count(*): 0). */
bool vpq_agg_lookup(const char *name, vpq_agg_kind *kind, int *nargs);

/* The result type of `kind` over an argument of `arg_type`, or VPQ_TYPE_NULL when the
 * argument type is not accepted (e.g. sum of a STRING). */
vpq_type vpq_agg_result_type(vpq_agg_kind kind, vpq_type arg_type);

/* The name as written in queries ("count", "time_weighted_avg", ...). */
const char *vpq_agg_name(vpq_agg_kind kind);

/* Bytes of one state block. */
size_t vpq_agg_state_size(const vpq_agg_spec *spec);

/* Initialises a state block to the empty group. */
void vpq_agg_init(const vpq_agg_spec *spec, void *state);

/* Adds (diff = +1) or retracts (diff = -1) one row: value `value` (ignored when `is_null`,
 * and for count(*)) at event time `ts`. Over a changelog, first, last, integrate and
 * time_weighted_avg also take the row's arrival number `seq`, increasing from row to row: it
 * orders rows of one event time, and a retraction names the row it takes away by its (ts, seq)
 * when added; 0 over a stream. */
void vpq_agg_step(const vpq_agg_spec *spec, void *state, vpq_datum value, bool is_null,
                  int64_t ts, int64_t seq, int diff);

/* Steps `n` rows at once: row i adds arg->data[rows[i]] (arg NULL for count(*)) at
 * ts[rows[i]] (and seq[rows[i]], seq NULL for all 0) with diff[rows[i]] to the state at
 * states[i] + offset. The hot loop of
 * windowed aggregation; equivalent to calling vpq_agg_step for each row in order. */
void vpq_agg_step_rows(const vpq_agg_spec *spec, uint8_t *const *states, size_t offset,
                       const vpq_vec *arg, const int64_t *ts, const int64_t *seq, const int8_t *diff,
                       const int *rows, int n);

/* Folds `src` into `dst` (session windows merging); `src` is destroyed by the call. */
void vpq_agg_merge(const vpq_agg_spec *spec, void *dst, void *src);

/* Computes the result; returns false when it is NULL. */
bool vpq_agg_final(const vpq_agg_spec *spec, const void *state, vpq_datum *out);

/* Releases heap memory a state owns (the block itself belongs to the caller). */
void vpq_agg_destroy(const vpq_agg_spec *spec, void *state);

/* Writes a state into a checkpoint (STRING values as their interned ids). */
void vpq_agg_save(const vpq_agg_spec *spec, const void *state, vpq_ckpt_out *out);

/* Reads what vpq_agg_save wrote into a state fresh from vpq_agg_init. Malformed input fails
 * `in`; the state is then partly filled but always safe to vpq_agg_destroy. */
void vpq_agg_load(const vpq_agg_spec *spec, void *state, vpq_ckpt_in *in);

#endif
