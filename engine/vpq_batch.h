/* vpq_batch.h — columnar batches: how rows move between operators.
 *
 *   batch ─┬─ n rows
 *          ├─ ts[n]    event time of each row (epoch ms)
 *          ├─ wm[n]    the input's watermark when the row is processed (see below)
 *          ├─ diff[n]  +1 an insert (the default), -1 a retraction (a table's old row, or a
 *          │           source table's key deleted by a Kafka tombstone), for changelogs
 *          └─ cols[k] ─┬─ data[n]  (vpq_datum: int64 / double / string id)
 *                      └─ null[n]  1 = NULL
 *
 * Watermarks travel with the rows: wm[i] is the watermark that holds when row i is processed
 * (the source's max event time up to and including row i, minus its delay). An operator
 * first advances to wm[i] — closing, in order, every window that watermark closes — and then
 * processes row i. Results thus do not depend on how rows were cut into batches: a row is
 * late exactly when a row-at-a-time engine would call it late. Rows an operator emits carry
 * the watermark it had passed on before emitting them, so a window's result is never late
 * for the next window downstream. After a batch, vpq_op_watermark() passes the input's
 * watermark on (it may be higher than the last row's, e.g. rows filtered out, end of input).
 *
 * A batch and its columns are allocated from one arena that the producer owns; a consumer
 * that keeps rows beyond the call copies what it keeps.
 */
#ifndef VPQ_BATCH_H
#define VPQ_BATCH_H

#include <stdint.h>

#include "vpq_arena.h"
#include "vpq_types.h"

enum { VPQ_BATCH_ROWS = 2048 };

typedef struct vpq_vec {
  vpq_type type;
  vpq_datum *data;
  uint8_t *null;
} vpq_vec;

/* Where a source row came from: a file line (partition = -1) or a partition and offset. */
typedef struct vpq_origin {
  int32_t partition;
  int64_t offset; /* file: 1-based line number */
} vpq_origin;

typedef struct vpq_batch {
  int n;
  int cap;
  int ncols;
  vpq_vec *cols;
  int64_t *ts;
  int64_t *wm;
  int8_t *diff;
  vpq_origin *origin; /* the source row each row derives from (for dead letters) */
  int32_t *source;    /* the source relation that read that row: 1 + its index; 0: not known
                         (rows read back from an internal topic or a checkpoint, and the
                         results of aggregations) */
} vpq_batch;

/* Allocates a batch of `ncols` columns with room for `cap` rows in `arena`; types may be NULL
 * (then every column is typed later by the caller). n starts at 0. */
vpq_batch *vpq_batch_new(vpq_arena *arena, int ncols, const vpq_type *types, int cap);

/* A view of rows [from, to) and columns [first, first + ncols) of `batch`, sharing its data;
 * the column array (with room for one more column) comes from `arena`. */
vpq_batch vpq_batch_view(vpq_arena *arena, const vpq_batch *batch, int first, int ncols, int from, int to);

/* Appends row `row` of `src` to `dst` (same column layout); dst must have room. */
void vpq_batch_append_row(vpq_batch *dst, const vpq_batch *src, int row);

#endif
