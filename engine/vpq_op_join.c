/* vpq_op_join.c — joins.
 *
 * Stream–table: the operator keeps the table's current row per key from the table's
 * changelog (port 1); each stream row (port 0) looks its key up and comes out with the
 * table's columns appended (NULLs for an unmatched LEFT JOIN row; an inner join drops it).
 * The output keeps the stream row's event time and watermark; the table does not hold the
 * watermark back. A table built from the stream's own source (the twin joined to the telemetry
 * it is built from) changes while that source's batch goes through the pipeline, before or after
 * the batch's rows reach port 0. So while a source batch goes through, both are held (and the
 * watermark the stream passes): when it has gone through (joins flush upstream first), the
 * stream rows of all the batches held look the table up in the order of their source rows, each
 * after the changes made by the source rows up to and including its own (by position in the
 * source batch: vpq_runtime_dispatch_position) have been applied. A stream row sees the table as
 * the rows before it and itself made it, however the input was batched and in whatever order the
 * statements were written. A row or change whose source row is not known comes after the
 * others (a window's results are positioned at the row whose watermark closed the window).
 *
 * Stream–stream WITHIN d: both sides are buffered. A row arriving on one side is paired with
 * every buffered row of the other side whose key matches and whose event time is within d;
 * the pair is written once, when its second row arrives, with the later event time. A
 * buffered row is dropped once the joint watermark (the minimum of both sides) is more than
 * d past it; an unmatched left row of a LEFT JOIN is written then, with NULLs on the right.
 * So a LEFT JOIN holds its output watermark d behind the joint one (output_watermark): an
 * unmatched row comes out as late as d after the watermark passed it, and must not find the
 * windows downstream closed; and a pair's watermark is held at the oldest kept left row, which
 * may still come out unmatched (its NULL row follows at the end of the batch). A row older
 * than its own input's watermark (as it stood at that row) is late, as for a window: rows are
 * dropped at the joint watermark, never above that one, so an on-time row finds every row it
 * pairs with, while a late one may not. It is counted, dead-lettered (its source's
 * `dead_letter`) and pairs with nothing, whatever happens to be still kept, so that what it
 * pairs with does not depend on how the inputs' batches interleave.
 * Residual ON conditions are evaluated over candidate pairs in one vector pass.
 *   Both sides can bring rows of one source batch (a stream joined with itself, or two streams
 * derived from one source): the batch reaches one side whole, then the other, so a row of the
 * second side pairs with rows of the first that come after it in the source. An inner join
 * therefore holds its pairs (and the watermark) while a source batch goes through, as the
 * stream–table join holds its rows, and writes them in the order of the source row that made
 * each pair, the later of its two (whose origin the pair carries): a pair comes out after the
 * row that completed it, however the input was batched, and a table built from the pairs
 * changes as that row made it. (A LEFT JOIN writes as it probes: its unmatched rows are
 * ordered by the watermark, see above.)
 *
 * Both joins find a key's rows through a hash index over each side's kept rows (row_index),
 * whose chains keep the rows' order: a window join's probe costs the rows of its key, not all
 * the rows the bound keeps, and writes its pairs in the order a scan of the rows would.
 *
 * Checkpoints hold the kept rows of both sides in order (for a table join, the table's rows)
 * and each side's watermark; the indexes are rebuilt from the rows.
 */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "vpq_expr.h"
#include "vpq_op.h"

/* A kept row: its columns, key hash, event time, origin and source (vpq_batch.source). */
typedef struct join_row {
  vpq_datum *data;
  uint8_t *null;
  vpq_datum *key;
  uint8_t *key_null;
  uint64_t hash;
  int64_t ts;
  vpq_origin origin;
  int32_t source;
  int position;   /* in the source batch going through when it came (vpq_runtime_dispatch_position) */
  uint64_t epoch; /* the join's epoch then: the position holds while the epoch is the same */
  bool matched;
  bool deleted; /* table side: the key left the table (a lookup misses it; a new row revives it) */
} join_row;

/* A table change held until the stream rows before it have looked the table up: its batch (in
 * the runtime's scratch arena, alive until the source batch has gone through), its row, and the
 * position in the source batch of the row that made it. */
typedef struct held_change {
  const vpq_batch *batch;
  const vpq_vec *keys; /* the batch's keys (eval_keys) */
  int row;
  int position;
  int arrival; /* its place among the held changes as they came */
} held_change;

/* A side's kept rows by key hash: chains of row indices (`next`, -1 ends one), each in the
 * rows' order, so that a probe meets its matches in the order a scan of the rows would. */
typedef struct row_index {
  int *head, *tail; /* per bucket: its first and last row */
  int *next;        /* per row (as many as the side has room for) */
  int nbuckets, cap;
} row_index;

typedef struct join_side {
  join_row *rows;
  int n, cap;
  row_index index;
  vpq_program **key_progs;
  int ncols;
  int64_t wm;
  int64_t pending_wm;          /* the watermark it passed during the source batch going through */
  vpq_schema schema;           /* its rows' columns (dead letters) */
  const vpq_relation *from;    /* the relation it reads, when that is a source (dead letters) */
} join_side;

typedef struct join_op {
  vpq_op base;
  const vpq_plan_select *sel;
  const vpq_plan_join *join;
  bool window;       /* stream–stream */
  join_side side[2]; /* 0 left, 1 right */
  int nkeys;
  vpq_program *residual;
  int64_t oldest_left; /* LEFT JOIN within a bound: the earliest event time of a kept left row */
  bool self_join;      /* the right side's relation feeds the left side too (FROM s a JOIN s b) */
  const vpq_source_slot *slots; /* per relation: where late rows are dead-lettered */
  held_change *held;   /* table join: changes of the current source batch; [held_next, nheld) not applied yet */
  int held_next, nheld, held_cap;
  vpq_held_batches held_rows; /* stream batches (table join) or pairs (window join) held */
  int64_t held_wm;     /* the stream's watermark, held with them (VPQ_TS_MIN: none) */
  bool waiting;        /* holding for the current source batch */
  uint64_t epoch;      /* window join: counts the source batches it has held for */
  vpq_dispatch_waiter waiter; /* flushes what is held when the source batch has gone through */
} join_op;

static void join_row_free(join_row *row) {
  free(row->data);
}

/* A kept row of side `side` with room for its columns and key (one malloc). */
static join_row join_row_alloc(const join_op *j, int side) {
  int ncols = j->side[side].ncols;
  size_t bytes = sizeof(vpq_datum) * (size_t)(ncols + j->nkeys) + (size_t)(ncols + j->nkeys);
  join_row r = {0};
  r.data = malloc(bytes ? bytes : 1);
  if (!r.data) abort();
  r.key = r.data + ncols;
  r.null = (uint8_t *)(r.key + j->nkeys);
  r.key_null = r.null + ncols;
  return r;
}

static join_row join_row_make(const join_op *j, int side, const vpq_batch *batch, int row,
                              const vpq_vec *keys) {
  int ncols = j->side[side].ncols;
  join_row r = join_row_alloc(j, side);
  vpq_op_copy_row(batch, row, ncols, r.data, r.null);
  for (int k = 0; k < j->nkeys; k++) {
    r.key[k] = keys[k].data[row];
    r.key_null[k] = keys[k].null[row];
  }
  r.hash = vpq_op_hash_datums(r.key, r.key_null, j->nkeys, 0);
  r.ts = batch->ts[row];
  r.origin = batch->origin[row];
  r.source = batch->source[row];
  return r;
}

/* Appends row r of the side to its bucket's chain. */
static void index_link(join_side *side, int r) {
  row_index *x = &side->index;
  const int b = (int)(side->rows[r].hash & (uint64_t)(x->nbuckets - 1));
  x->next[r] = -1;
  if (x->tail[b] >= 0) x->next[x->tail[b]] = r;
  else x->head[b] = r;
  x->tail[b] = r;
}

/* Indexes every kept row of the side again, in order, over at least twice as many buckets as
 * rows (after rows were dropped, or when the index outgrows its buckets). */
static void index_rebuild(join_side *side) {
  row_index *x = &side->index;
  int nbuckets = 64;
  while (nbuckets < side->n * 2) nbuckets *= 2;
  if (nbuckets != x->nbuckets) {
    free(x->head);
    x->head = malloc(sizeof *x->head * (size_t)nbuckets * 2);
    if (!x->head) abort();
    x->tail = x->head + nbuckets;
    x->nbuckets = nbuckets;
  }
  if (x->cap < side->cap) {
    x->next = realloc(x->next, sizeof *x->next * (size_t)side->cap);
    if (!x->next) abort();
    x->cap = side->cap;
  }
  for (int b = 0; b < nbuckets * 2; b++) x->head[b] = -1; /* heads and tails */
  for (int r = 0; r < side->n; r++) index_link(side, r);
}

/* Indexes the side's newest row (its last). */
static void index_add(join_side *side) {
  row_index *x = &side->index;
  if (side->n * 2 > x->nbuckets || x->cap < side->cap) index_rebuild(side);
  else index_link(side, side->n - 1);
}

/* The first kept row of the side in the chain of key hash `hash` (-1: none). */
static int index_first(const join_side *side, uint64_t hash) {
  return side->index.nbuckets ? side->index.head[hash & (uint64_t)(side->index.nbuckets - 1)] : -1;
}

static void index_free(row_index *x) {
  free(x->head);
  free(x->next);
}

static bool join_keys_match(const join_op *j, const join_row *a, const vpq_vec *keys, int row, uint64_t hash) {
  if (a->hash != hash) return false;
  for (int k = 0; k < j->nkeys; k++) {
    if (a->key_null[k] || keys[k].null[row]) return false; /* NULL never equals */
    if (a->key[k].i != keys[k].data[row].i) return false;
  }
  return true;
}

/* Whether row `row`'s key has a NULL (a NaN is one, eval_keys): it matches no row. */
static bool key_has_null(const join_op *j, const vpq_vec *keys, int row) {
  for (int k = 0; k < j->nkeys; k++)
    if (keys[k].null[row]) return true;
  return false;
}

static vpq_vec *eval_keys(join_op *j, int side, const vpq_batch *batch) {
  vpq_runtime *rt = j->base.rt;
  vpq_vec *keys = vpq_arena_alloc(&rt->scratch, sizeof *keys * (size_t)(j->nkeys + 1));
  for (int k = 0; k < j->nkeys; k++) {
    keys[k].data = vpq_arena_alloc(&rt->scratch, sizeof(vpq_datum) * (size_t)batch->n);
    keys[k].null = vpq_arena_alloc(&rt->scratch, (size_t)batch->n);
    vpq_program_eval(j->side[side].key_progs[k], batch, &keys[k], &rt->scratch);
    const vpq_type type = (side == 0 ? j->join->left_keys : j->join->right_keys)[k]->type;
    vpq_op_canonical_keys(&keys[k], type, batch->n);
    /* a NaN key equals nothing, as `=` says, so it matches as a NULL one does: never */
    if (type == VPQ_TYPE_DOUBLE)
      for (int r = 0; r < batch->n; r++)
        if (!keys[k].null[r] && isnan(keys[k].data[r].d)) keys[k].null[r] = 1;
  }
  return keys;
}

static uint64_t row_key_hash(const join_op *j, const vpq_vec *keys, int row) {
  vpq_datum key[64];
  uint8_t null[64];
  for (int k = 0; k < j->nkeys; k++) {
    key[k] = keys[k].data[row];
    null[k] = keys[k].null[row];
  }
  return vpq_op_hash_datums(key, null, j->nkeys, 0);
}

/* Writes a joined row into `out`: left columns from (ldata,lnull), right from (rdata,rnull)
 * or NULLs when rdata is NULL; origin and source are those of the row that made the pair. */
static void pair_append(vpq_batch *out, int nleft, const vpq_datum *ldata, const uint8_t *lnull,
                        const vpq_datum *rdata, const uint8_t *rnull, int64_t ts, int64_t wm,
                        int diff, vpq_origin origin, int32_t source) {
  int at = out->n++;
  for (int c = 0; c < out->ncols; c++) {
    bool left = c < nleft;
    const vpq_datum *d = left ? ldata : rdata;
    const uint8_t *n = left ? lnull : rnull;
    int src = left ? c : c - nleft;
    out->cols[c].data[at] = d ? d[src] : (vpq_datum){0};
    out->cols[c].null[at] = d ? n[src] : 1;
  }
  out->ts[at] = ts;
  out->wm[at] = wm;
  out->diff[at] = (int8_t)diff;
  out->origin[at] = origin;
  out->source[at] = source;
}

/* Applies the residual condition to candidate pairs and emits the survivors; with `lefts` (the
 * position of each pair's left row among the kept left rows), marks the left rows of the
 * survivors matched. */
static void emit_pairs(join_op *j, vpq_batch *pairs, const int *lefts) {
  if (j->residual && pairs->n) {
    vpq_runtime *rt = j->base.rt;
    int *sel = vpq_arena_alloc(&rt->scratch, sizeof *sel * (size_t)pairs->n);
    int n = vpq_program_select(j->residual, pairs, sel, &rt->scratch);
    vpq_batch *kept = vpq_op_batch(rt, j->base.schema, n ? n : 1);
    for (int i = 0; i < n; i++) {
      vpq_batch_append_row(kept, pairs, sel[i]);
      if (lefts) j->side[0].rows[lefts[sel[i]]].matched = true;
    }
    pairs = kept;
  }
  if (!j->window || !j->waiting || j->join->left_outer || !pairs->n) { /* an inner window join holds its pairs (the header) */
    vpq_op_emit(&j->base, pairs);
    return;
  }
  vpq_held_batches_push(&j->held_rows, pairs);
}

/* ===== Stream–table ===== */

static int table_find(const join_op *j, const vpq_vec *keys, int row, uint64_t hash) {
  const join_side *t = &j->side[1];
  for (int r = index_first(t, hash); r >= 0; r = t->index.next[r])
    if (join_keys_match(j, &t->rows[r], keys, row, hash)) return r;
  return -1;
}

/* Applies a batch of the table's changes to its copy: a new row replaces its key's; a
 * retraction that its key's new row does not follow (vpq_op_replaced) deletes the key. */
static void table_update_rows(join_op *j, const vpq_batch *batch, const vpq_vec *keys, int from, int to) {
  join_side *t = &j->side[1];
  for (int i = from; i < to; i++) {
    if (key_has_null(j, keys, i)) continue; /* no lookup can find it: not kept */
    uint64_t hash = row_key_hash(j, keys, i);
    int r = table_find(j, keys, i, hash);
    if (batch->diff[i] < 0) {
      if (r >= 0 && !vpq_op_replaced(batch, i, keys, j->nkeys)) t->rows[r].deleted = true;
      continue;
    }
    if (r >= 0) {
      vpq_op_copy_row(batch, i, t->ncols, t->rows[r].data, t->rows[r].null);
      t->rows[r].deleted = false;
      continue;
    }
    if (t->n == t->cap) {
      t->cap = t->cap ? t->cap * 2 : 64;
      t->rows = realloc(t->rows, sizeof *t->rows * (size_t)t->cap);
      if (!t->rows) abort();
    }
    t->rows[t->n] = join_row_make(j, 1, batch, i, keys);
    t->n++;
    index_add(t);
  }
}

/* Applies a batch of the table's changes to its copy. */
static void table_update(join_op *j, const vpq_batch *batch) {
  table_update_rows(j, batch, eval_keys(j, 1, batch), 0, batch->n);
}

/* Looks rows [from, to) of a stream batch (keyed by `keys`) up in the table, appending the
 * pairs (or, for LEFT JOIN, the row with NULLs) to `pairs`. */
static void table_lookup_rows(join_op *j, const vpq_batch *batch, const vpq_vec *keys, int from, int to,
                              vpq_batch *pairs) {
  vpq_runtime *rt = j->base.rt;
  int nleft = j->side[0].ncols;
  vpq_datum *ldata = vpq_arena_alloc(&rt->scratch, sizeof *ldata * (size_t)(nleft + 1));
  uint8_t *lnull = vpq_arena_alloc(&rt->scratch, (size_t)(nleft + 1));
  bool outer = j->join->left_outer;
  for (int i = from; i < to; i++) {
    int r = key_has_null(j, keys, i) ? -1 : table_find(j, keys, i, row_key_hash(j, keys, i));
    if (r >= 0 && j->side[1].rows[r].deleted) r = -1;
    if (r < 0 && !outer) continue;
    vpq_op_copy_row(batch, i, nleft, ldata, lnull);
    const join_row *match = r >= 0 ? &j->side[1].rows[r] : NULL;
    pair_append(pairs, nleft, ldata, lnull, match ? match->data : NULL, match ? match->null : NULL,
                batch->ts[i], batch->wm[i], batch->diff[i], batch->origin[i], batch->source[i]);
  }
}

/* Writes the pairs of table lookups: the residual condition drops those that fail it, or, in a
 * LEFT JOIN, keeps their stream rows with NULLs. */
static void table_emit(join_op *j, vpq_batch *pairs) {
  vpq_runtime *rt = j->base.rt;
  int nleft = j->side[0].ncols;
  bool outer = j->join->left_outer;
  if (!outer || !j->residual) {
    emit_pairs(j, pairs, NULL);
    return;
  }
  /* LEFT JOIN with a residual: a failing condition keeps the left row with NULLs. */
  vpq_vec cond = {VPQ_TYPE_BOOLEAN, vpq_arena_alloc(&rt->scratch, sizeof(vpq_datum) * (size_t)(pairs->n + 1)),
                  vpq_arena_alloc(&rt->scratch, (size_t)(pairs->n + 1))};
  vpq_program_eval(j->residual, pairs, &cond, &rt->scratch);
  for (int i = 0; i < pairs->n; i++) {
    if (!cond.null[i] && cond.data[i].i) continue;
    for (int c = nleft; c < pairs->ncols; c++) pairs->cols[c].null[i] = 1;
  }
  vpq_op_emit(&j->base, pairs);
}

/* Looks a batch of stream rows up in the table as it stands. */
static void table_probe(join_op *j, const vpq_batch *batch) {
  vpq_batch *pairs = vpq_op_batch(j->base.rt, j->base.schema, batch->n);
  table_lookup_rows(j, batch, eval_keys(j, 0, batch), 0, batch->n, pairs);
  table_emit(j, pairs);
}

/* ===== Stream–stream within a bound ===== */

/* The watermark the join passes on for a joint input watermark `wm` (see the header). */
static int64_t output_watermark(const join_op *j, int64_t wm) {
  const int64_t d = j->join->within_ms;
  if (!j->join->left_outer || wm == VPQ_TS_MIN || wm == VPQ_TS_MAX) return wm;
  return wm < VPQ_TS_MIN + d ? VPQ_TS_MIN : wm - d;
}

/* The earliest event time of the kept left rows (VPQ_TS_MAX: none). */
static int64_t oldest_left(const join_op *j) {
  int64_t oldest = VPQ_TS_MAX;
  for (int r = 0; r < j->side[0].n; r++)
    if (j->side[0].rows[r].ts < oldest) oldest = j->side[0].rows[r].ts;
  return oldest;
}

/* Orders unmatched left rows (indices into the kept left rows) by event time, then as kept. */
static int compare_unmatched(const void *pa, const void *pb, void *ctx) {
  const join_row *rows = ctx;
  const int a = *(const int *)pa, b = *(const int *)pb;
  if (rows[a].ts != rows[b].ts) return rows[a].ts < rows[b].ts ? -1 : 1;
  return (a > b) - (a < b);
}

/* Drops rows of sides [0, last] that the joint watermark has passed by more than the bound
 * (LEFT JOIN: writes the unmatched left ones with NULLs, by event time: the order does not
 * depend on how many rows one watermark passes, so neither on how the inputs were batched). */
static void window_evict(join_op *j, int64_t wm, int last) {
  vpq_runtime *rt = j->base.rt;
  const int nleft = j->side[0].ncols;
  join_side *left = &j->side[0];
  if (j->join->left_outer) {
    int *unmatched = vpq_arena_alloc(&rt->scratch, sizeof *unmatched * (size_t)(left->n + 1)), n = 0;
    for (int r = 0; r < left->n; r++)
      if ((wm == VPQ_TS_MAX || left->rows[r].ts < wm - j->join->within_ms) && !left->rows[r].matched) unmatched[n++] = r;
    if (n > 1) qsort_r(unmatched, (size_t)n, sizeof *unmatched, compare_unmatched, left->rows);
    for (int from = 0; from < n; from += VPQ_BATCH_ROWS) {
      vpq_batch *out = vpq_op_batch(rt, j->base.schema, n - from < VPQ_BATCH_ROWS ? n - from : VPQ_BATCH_ROWS);
      for (int u = from; u < n && u < from + VPQ_BATCH_ROWS; u++) {
        const join_row *row = &left->rows[unmatched[u]];
        pair_append(out, nleft, row->data, row->null, NULL, NULL, row->ts, j->base.passed_wm, 1, row->origin, row->source);
      }
      vpq_op_emit(&j->base, out);
    }
  }
  for (int s = 0; s <= last; s++) {
    join_side *side = &j->side[s];
    int kept = 0;
    for (int r = 0; r < side->n; r++) {
      if (wm == VPQ_TS_MAX || side->rows[r].ts < wm - j->join->within_ms) join_row_free(&side->rows[r]);
      else side->rows[kept++] = side->rows[r];
    }
    const bool dropped = kept < side->n;
    side->n = kept;
    if (dropped) index_rebuild(side);
  }
  j->oldest_left = oldest_left(j);
}

/* Whether the joint watermark `wm` has passed a kept left row by more than the bound. */
static bool window_passes_left(const join_op *j, int64_t wm) {
  return wm == VPQ_TS_MAX || (wm > VPQ_TS_MIN + j->join->within_ms && j->oldest_left < wm - j->join->within_ms);
}

static bool hold(join_op *j);
static void window_advance(join_op *j);

static void window_probe(join_op *j, int side, const vpq_batch *batch) {
  vpq_runtime *rt = j->base.rt;
  join_side *mine = &j->side[side], *other = &j->side[1 - side];
  vpq_vec *keys = eval_keys(j, side, batch);
  int nleft = j->side[0].ncols;
  int64_t within = j->join->within_ms;
  vpq_batch *pairs = vpq_op_batch(rt, j->base.schema, VPQ_BATCH_ROWS);
  /* With a residual condition, a LEFT JOIN's left row is matched only by a pair that meets it
   * (emit_pairs marks it): the position of each candidate pair's left row. */
  int *lefts = j->join->left_outer && j->residual
                   ? vpq_arena_alloc(&rt->scratch, sizeof *lefts * (size_t)pairs->cap)
                   : NULL;
  const bool other_idle = vpq_op_input_idle(&j->base, 1 - side); /* idleness changes between batches only */
  const bool holding = !j->join->left_outer && hold(j);
  for (int i = 0; i < batch->n; i++) {
    int64_t ts = batch->ts[i];
    const int64_t others = other_idle ? VPQ_TS_MAX : other->wm; /* an ended side's is VPQ_TS_MAX too */
    if (j->join->left_outer && batch->wm[i] > mine->wm) {
      /* The watermark the row brings comes first (DESIGN §3): the unmatched left rows it passes
       * are written before the row pairs (the rest waits for the input's watermark). */
      mine->wm = batch->wm[i];
      const int64_t joint = mine->wm < others ? mine->wm : others;
      if (window_passes_left(j, joint)) {
        emit_pairs(j, pairs, lefts);
        pairs = vpq_op_batch(rt, j->base.schema, VPQ_BATCH_ROWS);
        window_evict(j, joint, 0);
      }
    }
    if (ts < batch->wm[i]) {
      /* Behind its own input's watermark: late (see the header). A stream joined with itself
       * sees the row on both sides: one query's late row, counted once (by the left side). */
      if (side == 0 || !j->self_join) vpq_op_late_row(rt, j->slots, mine->from, &mine->schema, batch, i);
      continue;
    }
    uint64_t hash = row_key_hash(j, keys, i);
    int64_t wm = output_watermark(j, batch->wm[i] < others ? batch->wm[i] : others);
    if (j->join->left_outer && j->oldest_left < wm) wm = j->oldest_left; /* see the header */
    if (mine->n == mine->cap) {
      mine->cap = mine->cap ? mine->cap * 2 : 256;
      mine->rows = realloc(mine->rows, sizeof *mine->rows * (size_t)mine->cap);
      if (!mine->rows) abort();
    }
    const int at = mine->n++;
    mine->rows[at] = join_row_make(j, side, batch, i, keys);
    index_add(mine);
    if (holding) {
      mine->rows[at].position = vpq_runtime_dispatch_position(rt, batch->origin[i], batch->source[i]);
      mine->rows[at].epoch = j->epoch;
    }
    if (side == 0 && mine->rows[at].ts < j->oldest_left) j->oldest_left = mine->rows[at].ts;
    const int first = key_has_null(j, keys, i) ? -1 : index_first(other, hash); /* it matches no row */
    for (int r = first; r >= 0; r = other->index.next[r]) {
      join_row *o = &other->rows[r], *row = &mine->rows[at];
      int64_t d = o->ts > ts ? o->ts - ts : ts - o->ts;
      if (d > within || !join_keys_match(j, o, keys, i, hash)) continue;
      if (pairs->n == pairs->cap) {
        emit_pairs(j, pairs, lefts);
        pairs = vpq_op_batch(rt, j->base.schema, VPQ_BATCH_ROWS);
      }
      const join_row *l = side == 0 ? row : o, *rr = side == 0 ? o : row;
      /* made by the later of its rows in the source batch going through */
      const join_row *maker = holding && o->epoch == j->epoch && o->position > row->position ? o : row;
      pair_append(pairs, nleft, l->data, l->null, rr->data, rr->null, o->ts > ts ? o->ts : ts, wm, 1,
                  maker->origin, maker->source);
      if (lefts) {
        lefts[pairs->n - 1] = side == 0 ? at : r;
      } else {
        o->matched = true;
        row->matched = true;
      }
    }
  }
  emit_pairs(j, pairs, lefts);
}

/* ===== Stream–table: changes of the source batch going through ===== */

/* Applies the held changes [held_next, upto) in order, each run of consecutive rows of one batch
 * as one update (a retraction and the insertion that replaces it stay together). */
static void apply_held(join_op *j, int upto) {
  for (int h = j->held_next; h < upto;) {
    const vpq_batch *batch = j->held[h].batch;
    int end = h + 1;
    while (end < upto && j->held[end].batch == batch && j->held[end].row == j->held[end - 1].row + 1) end++;
    table_update_rows(j, batch, j->held[h].keys, j->held[h].row, j->held[end - 1].row + 1);
    h = end;
  }
  j->held_next = upto;
}

/* By position, then as they came. */
static int compare_held_changes(const void *pa, const void *pb) {
  const held_change *a = pa, *b = pb;
  if (a->position != b->position) return a->position < b->position ? -1 : 1;
  return (a->arrival > b->arrival) - (a->arrival < b->arrival);
}

/* Whether the n items of `size` bytes at `items` are in cmp's order already (as they mostly
 * come: no sort needed). */
static bool in_order(const void *items, int n, size_t size, int (*cmp)(const void *, const void *)) {
  for (int i = 1; i < n; i++)
    if (cmp((const char *)items + (size_t)(i - 1) * size, (const char *)items + (size_t)i * size) > 0) return false;
  return true;
}

/* When the source batch has gone through: the held stream rows, in the order of their source
 * rows (whichever batch brought them), each after the changes made by the source rows up to
 * and including its own; then the remaining changes, then the held watermark. */
static void flush_held(vpq_dispatch_waiter *waiter) {
  join_op *j = (join_op *)((char *)waiter - offsetof(join_op, waiter));
  vpq_runtime *rt = j->base.rt;
  if (!in_order(j->held, j->nheld, sizeof *j->held, compare_held_changes))
    qsort(j->held, (size_t)j->nheld, sizeof *j->held, compare_held_changes);
  int total = 0;
  for (int b = 0; b < j->held_rows.n; b++) total += j->held_rows.items[b]->n;
  if (total > 0) {
    vpq_held_row *rows = vpq_arena_alloc(&rt->scratch, sizeof *rows * (size_t)total);
    const vpq_vec **keys = vpq_arena_alloc(&rt->scratch, sizeof *keys * (size_t)j->held_rows.n);
    int n = 0;
    for (int b = 0; b < j->held_rows.n; b++) {
      const vpq_batch *batch = j->held_rows.items[b];
      keys[b] = eval_keys(j, 0, batch);
      for (int r = 0; r < batch->n; r++) {
        int position = j->nheld ? vpq_runtime_dispatch_position(rt, batch->origin[r], batch->source[r]) : -1;
        rows[n++] = (vpq_held_row){b, r, position < 0 ? INT_MAX : position};
      }
    }
    if (j->nheld && !in_order(rows, n, sizeof *rows, vpq_held_row_compare))
      qsort(rows, (size_t)n, sizeof *rows, vpq_held_row_compare);
    int cap = total < VPQ_BATCH_ROWS ? total : VPQ_BATCH_ROWS;
    vpq_batch *pairs = vpq_op_batch(rt, j->base.schema, cap);
    for (int from = 0; from < n;) {
      int upto = j->held_next;
      while (upto < j->nheld && j->held[upto].position <= rows[from].position) upto++;
      apply_held(j, upto);
      if (pairs->n == cap) {
        table_emit(j, pairs);
        pairs = vpq_op_batch(rt, j->base.schema, cap);
      }
      /* a run: rows of one batch, one after the other, with no change between them, as many as
       * the output batch has room for */
      int to = from + 1;
      while (to < n && to - from < cap - pairs->n && rows[to].batch == rows[from].batch &&
             rows[to].row == rows[to - 1].row + 1 &&
             (j->held_next == j->nheld || j->held[j->held_next].position > rows[to].position))
        to++;
      const vpq_batch *batch = j->held_rows.items[rows[from].batch];
      table_lookup_rows(j, batch, keys[rows[from].batch], rows[from].row, rows[to - 1].row + 1, pairs);
      from = to;
    }
    table_emit(j, pairs);
  }
  j->held_rows.n = 0;
  apply_held(j, j->nheld);
  j->held_next = j->nheld = 0;
  j->waiting = false;
  int64_t wm = j->held_wm;
  j->held_wm = VPQ_TS_MIN;
  if (wm != VPQ_TS_MIN) vpq_op_emit_watermark(&j->base, wm);
}

/* When the source batch has gone through (window join): the held pairs in the order of the
 * source rows that made them, then the held watermark. */
static void flush_pairs(vpq_dispatch_waiter *waiter) {
  join_op *j = (join_op *)((char *)waiter - offsetof(join_op, waiter));
  vpq_op_deliver_in_source_order(&j->base, &j->held_rows, vpq_op_emit);
  j->held_rows.n = 0;
  j->waiting = false;
  j->epoch++;
  int64_t wm = j->held_wm;
  j->held_wm = VPQ_TS_MIN;
  if (wm != VPQ_TS_MIN) vpq_op_emit_watermark(&j->base, wm);
  bool moved = false;
  for (int s = 0; s < 2; s++) {
    if (j->side[s].pending_wm > j->side[s].wm) {
      j->side[s].wm = j->side[s].pending_wm;
      moved = true;
    }
    j->side[s].pending_wm = VPQ_TS_MIN;
  }
  if (moved) window_advance(j);
}

/* Starts holding for the source batch going through; false outside one. */
static bool hold(join_op *j) {
  vpq_runtime *rt = j->base.rt;
  if (!rt->dispatch.origin) return false;
  if (!j->waiting) {
    j->waiting = true;
    vpq_op_dispatch_wait(&j->base, &j->waiter);
  }
  return true;
}

/* Table changes (port 1): held, at the position of the source row that made each (a change
 * whose position is not known, after every stream row), while a source batch goes through. */
static void table_changes(join_op *j, const vpq_batch *batch) {
  if (!hold(j)) {
    table_update(j, batch);
    return;
  }
  vpq_runtime *rt = j->base.rt;
  const vpq_vec *keys = eval_keys(j, 1, batch);
  for (int i = 0; i < batch->n; i++) {
    if (j->nheld == j->held_cap) {
      j->held_cap = j->held_cap ? j->held_cap * 2 : 64;
      j->held = realloc(j->held, sizeof *j->held * (size_t)j->held_cap);
      if (!j->held) abort();
    }
    int position = vpq_runtime_dispatch_position(rt, batch->origin[i], batch->source[i]);
    if (position < 0) position = INT_MAX;
    j->held[j->nheld] = (held_change){batch, keys, i, position, j->nheld};
    j->nheld++;
  }
}

/* Stream rows (port 0): held while a source batch goes through. */
static void stream_rows(join_op *j, const vpq_batch *batch) {
  if (!hold(j)) {
    table_probe(j, batch);
    return;
  }
  vpq_held_batches_push(&j->held_rows, batch);
}

/* ===== The operator ===== */

static void join_push(vpq_op *op, int port, const vpq_batch *batch) {
  join_op *j = (join_op *)op;
  if (!j->window) {
    if (port == 1) table_changes(j, batch);
    else stream_rows(j, batch);
    return;
  }
  window_probe(j, port, batch);
}

/* Evicts what the joint watermark of the two sides (an idle one left out) has passed, and passes
 * it on. */
static void window_advance(join_op *j) {
  const int64_t sides[2] = {j->side[0].wm, j->side[1].wm};
  const int64_t joint = vpq_op_inputs_watermark(&j->base, sides, 2, -1);
  if (output_watermark(j, joint) <= j->base.passed_wm) return;
  window_evict(j, joint, 1);
  const int64_t wm = output_watermark(j, joint);
  if (j->waiting) j->held_wm = wm > j->held_wm ? wm : j->held_wm;
  else vpq_op_emit_watermark(&j->base, wm);
}

static void join_watermark(vpq_op *op, int port, int64_t wm) {
  join_op *j = (join_op *)op;
  if (!j->window) {
    if (port != 0) return;
    if (j->waiting) j->held_wm = wm > j->held_wm ? wm : j->held_wm;
    else vpq_op_emit_watermark(op, wm);
    return;
  }
  if (hold(j)) {
    /* Passed during a source batch, it is the side's watermark after the whole batch, which the
     * other side's rows of the batch may come before in source order (a window with a grace
     * period and the stream it reads): they are joined under the watermark from before the
     * batch, and this one counts once the batch is through (flush_pairs). */
    if (wm > j->side[port].pending_wm) j->side[port].pending_wm = wm;
    return;
  }
  j->side[port].wm = wm;
  window_advance(j);
}

/* A window join's input went idle: it no longer holds the joint watermark back. */
static void join_input_idle(vpq_op *op) {
  join_op *j = (join_op *)op;
  if (j->window) window_advance(j);
}

static void join_describe(const vpq_op *op, vpq_buf *out) {
  const join_op *j = (const join_op *)op;
  char text[512];
  vpq_buf_printf(out, "%s%s", j->join->left_outer ? "left " : "", j->join->right->name);
  if (j->window) vpq_buf_printf(out, " within=%lldms", (long long)j->join->within_ms);
  vpq_buf_puts(out, " on [");
  for (int k = 0; k < j->nkeys; k++) {
    vpq_buf_printf(out, "%s%s = ", k ? ", " : "", vpq_bexpr_format(j->join->left_keys[k], &j->sel->input, text, sizeof text));
    vpq_buf_printf(out, "%s.%s", j->join->right->name,
                   vpq_bexpr_format(j->join->right_keys[k], &j->join->right->schema, text, sizeof text));
  }
  vpq_buf_puts(out, "]");
  if (j->join->residual) vpq_buf_printf(out, " and %s", vpq_bexpr_format(j->join->residual, &j->sel->input, text, sizeof text));
}

static void join_destroy(vpq_op *op) {
  join_op *j = (join_op *)op;
  for (int s = 0; s < 2; s++) {
    for (int r = 0; r < j->side[s].n; r++) join_row_free(&j->side[s].rows[r]);
    free(j->side[s].rows);
    index_free(&j->side[s].index);
  }
  free(j->held);
  free(j->held_rows.items);
}

/* ===== Checkpoints ===== */

static void join_save(const vpq_op *op, vpq_ckpt_out *out) {
  const join_op *j = (const join_op *)op;
  for (int s = 0; s < 2; s++) {
    const join_side *side = &j->side[s];
    vpq_ckpt_put_i64(out, side->wm);
    uint64_t rows = 0;
    for (int r = 0; r < side->n; r++) rows += !side->rows[r].deleted;
    vpq_ckpt_put_u64(out, rows);
    for (int r = 0; r < side->n; r++) {
      const join_row *row = &side->rows[r];
      if (row->deleted) continue;
      vpq_ckpt_put_datums(out, row->data, row->null, side->ncols);
      vpq_ckpt_put_datums(out, row->key, row->key_null, j->nkeys);
      vpq_ckpt_put_i64(out, row->ts);
      vpq_ckpt_put_i64(out, row->origin.partition);
      vpq_ckpt_put_i64(out, row->origin.offset);
      vpq_ckpt_put_u64(out, row->matched);
    }
  }
}

/* Times read back are within ±2^62 (watermarks may also be ±infinity), so that distances
 * between them and the bound subtracted from them cannot overflow. */
static bool in_range(int64_t t) { return t >= -((int64_t)1 << 62) && t <= (int64_t)1 << 62; }

/* Fails `in` unless a STRING value (not NULL) is an id of the string pool. */
static void check_string(vpq_ckpt_in *in, const vpq_intern *intern, vpq_type type, vpq_datum value, uint8_t null) {
  if (!null && type == VPQ_TYPE_STRING && (value.i < 0 || (uint64_t)value.i >= vpq_intern_count(intern)))
    vpq_ckpt_fail(in, "a value names no string");
}

/* Reads one kept row of side `s` (its value types: the input layout's first columns on the
 * left, the right relation's schema on the right). */
static void load_row(join_op *j, int s, join_row *row, vpq_ckpt_in *in) {
  const vpq_intern *intern = j->base.rt->intern;
  int ncols = j->side[s].ncols;
  const vpq_column *cols = s == 0 ? j->sel->input.cols : j->join->right->schema.cols;
  vpq_bexpr **keys = s == 0 ? j->join->left_keys : j->join->right_keys;
  vpq_ckpt_get_datums(in, row->data, row->null, ncols);
  for (int c = 0; c < ncols; c++) check_string(in, intern, cols[c].type, row->data[c], row->null[c]);
  vpq_ckpt_get_datums(in, row->key, row->key_null, j->nkeys);
  for (int k = 0; k < j->nkeys; k++) check_string(in, intern, keys[k]->type, row->key[k], row->key_null[k]);
  row->hash = vpq_op_hash_datums(row->key, row->key_null, j->nkeys, 0);
  row->ts = vpq_ckpt_get_i64(in);
  if (!in_range(row->ts)) vpq_ckpt_fail(in, "a row time out of range");
  int64_t partition = vpq_ckpt_get_i64(in);
  if (partition < INT32_MIN || partition > INT32_MAX) vpq_ckpt_fail(in, "a partition out of range");
  row->origin.partition = (int32_t)partition;
  row->origin.offset = vpq_ckpt_get_i64(in);
  row->matched = vpq_ckpt_get_bool(in);
}

static void join_load(vpq_op *op, vpq_ckpt_in *in) {
  join_op *j = (join_op *)op;
  for (int s = 0; s < 2 && !in->error; s++) {
    join_side *side = &j->side[s];
    side->wm = vpq_ckpt_get_i64(in);
    if (side->wm != VPQ_TS_MIN && side->wm != VPQ_TS_MAX && !in_range(side->wm))
      vpq_ckpt_fail(in, "a watermark out of range");
    int n = (int)vpq_ckpt_get_count(in, INT32_MAX / 4);
    if (n && !j->window && s == 0) vpq_ckpt_fail(in, "buffered stream rows in a table join");
    if (in->error || !n) continue;
    side->rows = malloc(sizeof *side->rows * (size_t)n);
    if (!side->rows) abort();
    side->cap = n;
    for (int r = 0; r < n && !in->error; r++) {
      side->rows[side->n] = join_row_alloc(j, s);
      load_row(j, s, &side->rows[side->n++], in);
    }
    index_rebuild(side);
  }
  j->oldest_left = oldest_left(j);
}

static const vpq_op_vt table_join_vt = {"LookupJoin", join_push, join_watermark, join_describe, join_destroy,
                                        join_save, join_load, NULL};
static const vpq_op_vt window_join_vt = {"WindowJoin", join_push, join_watermark, join_describe, join_destroy,
                                         join_save,    join_load, join_input_idle};

static vpq_op *join_new(vpq_runtime *rt, vpq_arena *arena, const vpq_plan_select *select, int join_index,
                        const vpq_schema *out, bool window, const vpq_source_slot *slots) {
  join_op *j = calloc(1, sizeof *j);
  if (!j) abort();
  const vpq_plan_join *join = &select->joins[join_index];
  vpq_op_init(&j->base, window ? &window_join_vt : &table_join_vt, rt, out);
  if (!window) j->base.watermark_ports = 1u; /* the stream side's: the table holds none back */
  j->sel = select;
  j->join = join;
  j->window = window;
  j->slots = slots;
  j->side[0].schema = (vpq_schema){.cols = select->input.cols, .ncols = join->right_offset};
  j->side[1].schema = join->right->schema;
  j->side[0].from = join_index == 0 ? select->from : NULL;
  j->side[1].from = join->right;
  j->self_join = select->from == join->right;
  for (int k = 0; k < join_index; k++) j->self_join = j->self_join || select->joins[k].right == join->right;
  j->oldest_left = VPQ_TS_MAX;
  j->waiter.flush = window ? flush_pairs : flush_held;
  j->epoch = 1; /* rows made while not holding have epoch 0 */
  j->held_wm = VPQ_TS_MIN;
  j->nkeys = join->nkeys < 64 ? join->nkeys : 64;
  j->side[0].ncols = join->right_offset;
  j->side[1].ncols = join->right->schema.ncols;
  j->side[0].wm = j->side[1].wm = j->side[0].pending_wm = j->side[1].pending_wm = VPQ_TS_MIN;
  for (int s = 0; s < 2; s++) {
    vpq_bexpr **exprs = s == 0 ? join->left_keys : join->right_keys;
    j->side[s].key_progs = vpq_arena_alloc(arena, sizeof *j->side[s].key_progs * (size_t)(j->nkeys + 1));
    for (int k = 0; k < j->nkeys; k++) j->side[s].key_progs[k] = vpq_expr_compile(arena, exprs[k], rt->intern);
  }
  if (join->residual) j->residual = vpq_expr_compile(arena, join->residual, rt->intern);
  return &j->base;
}

vpq_op *vpq_op_table_join_new(vpq_runtime *rt, vpq_arena *arena, const vpq_plan_select *select,
                              int join_index, const vpq_schema *out) {
  return join_new(rt, arena, select, join_index, out, false, NULL);
}

vpq_op *vpq_op_window_join_new(vpq_runtime *rt, vpq_arena *arena, const vpq_plan_select *select,
                               int join_index, const vpq_schema *out, const vpq_source_slot *slots) {
  return join_new(rt, arena, select, join_index, out, true, slots);
}
