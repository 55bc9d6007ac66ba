/* vpq_op.c — the operator framework and the simple operators: relation (fan-out, sink,
 * subscribers), source (event time, per-row watermarks, table upserts) and map (WHERE and
 * the SELECT list of queries without aggregation).
 */
#include "vpq_op.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../connectors/vpq_codec.h"
#include "vpq_expr.h"
#include "vpq_clock.h"

/* ===== Framework ===== */

/* ORDER VPQ_REASON */
static const char *const vpq_reason_names[VPQ_REASON_COUNT] = {
    "invalid JSON", "invalid UTF-8", "not an object", "type mismatch", "invalid timestamp", "wrong field count",
    "record too large", "too deeply nested", "late", "max_keys", "other",
};

const char *vpq_reason_name(vpq_reason reason) {
  return reason >= 0 && reason < VPQ_REASON_COUNT ? vpq_reason_names[reason] : vpq_reason_names[VPQ_REASON_OTHER];
}

vpq_reason vpq_runtime_reason(const char *reason) {
  size_t len = strcspn(reason, ":");
  vpq_reason r = VPQ_REASON_OTHER;
  for (int i = 0; i < VPQ_REASON_OTHER; i++)
    if (strlen(vpq_reason_names[i]) == len && strncmp(reason, vpq_reason_names[i], len) == 0) r = (vpq_reason)i;
  return r;
}

void vpq_runtime_refused(vpq_runtime *rt, const char *reason) { rt->stats.refused[vpq_runtime_reason(reason)]++; }

/* Hash of a source row's origin (vpq_runtime_dispatch_position's index). */
static uint64_t origin_hash(vpq_origin o) {
  uint64_t h = ((uint64_t)(uint32_t)o.partition << 32) ^ (uint64_t)o.offset;
  h *= 0x9e3779b97f4a7c15ull;
  return h ^ (h >> 29);
}

int vpq_runtime_dispatch_position(vpq_runtime *rt, vpq_origin o, int32_t source) {
  vpq_dispatch *d = &rt->dispatch;
  if (!d->origin || d->n == 0 || (source != 0 && source != d->source)) return -1;
  if (!d->index) {
    int size = 16;
    while (size < 2 * d->n) size *= 2;
    d->index = vpq_arena_alloc(&rt->scratch, sizeof *d->index * (size_t)size);
    d->index_size = size;
    for (int i = 0; i < size; i++) d->index[i] = -1;
    for (int r = 0; r < d->n; r++) {
      size_t at = origin_hash(d->origin[r]) & (size_t)(size - 1);
      while (d->index[at] >= 0) at = (at + 1) & (size_t)(size - 1);
      d->index[at] = r;
    }
  }
  for (size_t at = origin_hash(o) & (size_t)(d->index_size - 1); d->index[at] >= 0;
       at = (at + 1) & (size_t)(d->index_size - 1)) {
    const vpq_origin *r = &d->origin[d->index[at]];
    if (r->partition == o.partition && r->offset == o.offset) return d->index[at];
  }
  return -1;
}

int vpq_op_depth(vpq_op *op) {
  if (op->depth < 0) {
    int depth = 0;
    for (int i = 0; i < op->ninputs; i++) {
      const int above = vpq_op_depth(op->inputs[i]) + 1;
      depth = above > depth ? above : depth;
    }
    op->depth = depth;
  }
  return op->depth;
}

void vpq_held_batches_push(vpq_held_batches *held, const vpq_batch *batch) {
  if (held->n == held->cap) {
    held->cap = held->cap ? held->cap * 2 : 8;
    held->items = realloc(held->items, sizeof *held->items * (size_t)held->cap);
    if (!held->items) abort();
  }
  held->items[held->n++] = batch;
}

int vpq_held_row_compare(const void *pa, const void *pb) {
  const vpq_held_row *a = pa, *b = pb;
  if (a->position != b->position) return a->position < b->position ? -1 : 1;
  if (a->batch != b->batch) return a->batch < b->batch ? -1 : 1;
  return (a->row > b->row) - (a->row < b->row);
}

void vpq_op_deliver_in_source_order(vpq_op *op, const vpq_held_batches *held,
                                    void (*deliver)(vpq_op *op, const vpq_batch *batch)) {
  vpq_runtime *rt = op->rt;
  int total = 0;
  for (int b = 0; b < held->n; b++) total += held->items[b]->n;
  vpq_held_row *rows = vpq_arena_alloc(&rt->scratch, sizeof *rows * (size_t)(total ? total : 1));
  int n = 0;
  bool sorted = true;
  for (int b = 0; b < held->n; b++) {
    const vpq_batch *batch = held->items[b];
    for (int i = 0; i < batch->n; i++) {
      const int position = vpq_runtime_dispatch_position(rt, batch->origin[i], batch->source[i]);
      rows[n] = (vpq_held_row){b, i, position < 0 ? INT_MAX : position};
      sorted = sorted && (n == 0 || vpq_held_row_compare(&rows[n - 1], &rows[n]) <= 0);
      n++;
    }
  }
  if (sorted) {
    for (int b = 0; b < held->n; b++) deliver(op, held->items[b]);
    return;
  }
  qsort(rows, (size_t)n, sizeof *rows, vpq_held_row_compare);
  for (int from = 0; from < n; from += VPQ_BATCH_ROWS) {
    const int count = n - from < VPQ_BATCH_ROWS ? n - from : VPQ_BATCH_ROWS;
    vpq_batch *out = vpq_op_batch(rt, op->schema, count);
    for (int i = from; i < from + count; i++) vpq_batch_append_row(out, held->items[rows[i].batch], rows[i].row);
    deliver(op, out);
  }
}

void vpq_op_dispatch_wait(vpq_op *op, vpq_dispatch_waiter *waiter) {
  waiter->order = vpq_op_depth(op);
  vpq_dispatch_waiter **at = &op->rt->dispatch.waiting;
  while (*at && (*at)->order <= waiter->order) at = &(*at)->next;
  waiter->next = *at;
  *at = waiter;
}

/* Ends the dispatch of a source batch: flushes the operators that held rows of it, upstream
 * first (one that a flush makes wait again is flushed after it). */
static void dispatch_end(vpq_runtime *rt) {
  while (rt->dispatch.waiting) {
    vpq_dispatch_waiter *w = rt->dispatch.waiting;
    rt->dispatch.waiting = w->next;
    w->flush(w);
  }
  rt->dispatch = (vpq_dispatch){0};
}

void vpq_op_init(vpq_op *op, const vpq_op_vt *vt, vpq_runtime *rt, const vpq_schema *schema) {
  op->vt = vt;
  op->rt = rt;
  op->schema = schema;
  op->passed_wm = VPQ_TS_MIN;
  op->idle = -1;
  op->watermark_ports = UINT32_MAX;
  op->depth = -1;
}

void vpq_op_connect(vpq_op *from, vpq_op *to, int port) {
  if (from->nouts == from->outs_cap) {
    from->outs_cap = from->outs_cap ? from->outs_cap * 2 : 4;
    from->outs = realloc(from->outs, sizeof *from->outs * (size_t)from->outs_cap);
    if (!from->outs) abort();
  }
  from->outs[from->nouts++] = (vpq_op_out){to, port};
  to->inputs = realloc(to->inputs, sizeof *to->inputs * (size_t)(to->ninputs + 1));
  to->input_ports = realloc(to->input_ports, sizeof *to->input_ports * (size_t)(to->ninputs + 1));
  if (!to->inputs || !to->input_ports) abort();
  to->input_ports[to->ninputs] = port;
  to->inputs[to->ninputs++] = from;
}

void vpq_op_emit(vpq_op *op, const vpq_batch *batch) {
  if (batch->n == 0) return;
  op->rows_out += batch->n;
  for (int i = 0; i < op->nouts; i++) {
    vpq_op *to = op->outs[i].op;
    to->rows_in += batch->n;
    to->vt->push(to, op->outs[i].port, batch);
  }
}

void vpq_op_emit_watermark(vpq_op *op, int64_t wm) {
  if (wm <= op->passed_wm) return;
  op->passed_wm = wm;
  for (int i = 0; i < op->nouts; i++) op->outs[i].op->vt->watermark(op->outs[i].op, op->outs[i].port, wm);
}

/* Whether `op` is idle: a source or scan says so itself; another operator is when each input
 * that carries its watermark is. */
static bool op_idle(const vpq_op *op) {
  if (op->idle >= 0) return op->idle;
  bool fed = false;
  for (int i = 0; i < op->ninputs; i++) {
    if (op->input_ports[i] < 32 && !(op->watermark_ports >> op->input_ports[i] & 1)) continue; /* ports past 31 carry one */
    if (!op_idle(op->inputs[i])) return false;
    fed = true;
  }
  return fed;
}

bool vpq_op_input_idle(const vpq_op *op, int port) {
  bool fed = false;
  for (int i = 0; i < op->ninputs; i++) {
    if (op->input_ports[i] != port) continue;
    if (!op_idle(op->inputs[i])) return false;
    fed = true;
  }
  return fed;
}

int64_t vpq_op_inputs_watermark(const vpq_op *op, const int64_t *wm, int n, int skip) {
  /* each port's idleness in one pass over the inputs (vpq_op_input_idle per port would take
   * one pass per port: a stream fed by 4,000 INSERT INTO statements spent 50 s in it) */
  enum { FED = 1, BUSY = 2 };
  uint8_t small[256], *state = n <= (int)sizeof small ? small : malloc((size_t)n);
  if (!state) abort();
  memset(state, 0, (size_t)n);
  for (int i = 0; i < op->ninputs; i++) {
    const int port = op->input_ports[i];
    if (port < 0 || port >= n || port == skip || wm[port] == VPQ_TS_MAX || (state[port] & BUSY)) continue;
    state[port] |= FED | (op_idle(op->inputs[i]) ? 0 : BUSY);
  }
  int64_t active = VPQ_TS_MAX, idle = VPQ_TS_MAX;
  bool any_active = false, any_open = false;
  for (int port = 0; port < n; port++) {
    if (port == skip || wm[port] == VPQ_TS_MAX) continue; /* ended: it holds nothing back */
    any_open = true;
    if (state[port] != FED) { /* not idle: an input of it is busy, or none feeds it */
      any_active = true;
      if (wm[port] < active) active = wm[port];
    } else if (wm[port] != VPQ_TS_MIN && wm[port] < idle) {
      idle = wm[port];
    }
  }
  if (state != small) free(state);
  if (any_active || skip >= 0 || !any_open) return active;
  return idle == VPQ_TS_MAX ? VPQ_TS_MIN : idle;
}

/* Tells every operator downstream of `op` that an input of theirs may have gone idle, once each
 * (`visit` marks the ones told). */
static void tell_input_idle(vpq_op *op, unsigned visit) {
  for (int i = 0; i < op->nouts; i++) {
    vpq_op *to = op->outs[i].op;
    if (to->idle_seen == visit) continue;
    to->idle_seen = visit;
    if (to->vt->input_idle) to->vt->input_idle(to);
    tell_input_idle(to, visit);
  }
}

/* Tells the operators downstream of `op` (a source that went idle) to take their watermarks again. */
static void emit_input_idle(vpq_op *op) {
  if (!++op->rt->idle_visits) ++op->rt->idle_visits; /* 0 is no visit's */
  tell_input_idle(op, op->rt->idle_visits);
}

void vpq_op_release(vpq_op *op) {
  free(op->outs);
  free(op->inputs);
  free(op->input_ports);
}

vpq_batch *vpq_op_batch(vpq_runtime *rt, const vpq_schema *schema, int cap) {
  vpq_batch *batch = vpq_batch_new(&rt->scratch, schema->ncols, NULL, cap);
  for (int c = 0; c < schema->ncols; c++) batch->cols[c].type = schema->cols[c].type;
  return batch;
}

void vpq_op_copy_row(const vpq_batch *batch, int row, int ncols, vpq_datum *data, uint8_t *null) {
  for (int c = 0; c < ncols; c++) {
    data[c] = batch->cols[c].data[row];
    null[c] = batch->cols[c].null[row];
  }
}

uint64_t vpq_op_hash_datums(const vpq_datum *data, const uint8_t *null, int n, uint64_t seed) {
  uint64_t h = seed ^ 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < n; i++) {
    uint64_t v = null[i] ? 0x5bd1e9955bd1e995ull : (uint64_t)data[i].i;
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
  }
  return h;
}

void vpq_op_canonical_keys(vpq_vec *keys, vpq_type type, int n) {
  if (type != VPQ_TYPE_DOUBLE) return;
  for (int i = 0; i < n; i++)
    if (!keys->null[i] && keys->data[i].d == 0) keys->data[i].d = 0.0;
}

/* ===== Relation: fan-out, sink, subscribers ===== */

typedef struct relation_subscriber {
  vpq_row_fn fn;
  void *ctx;
} relation_subscriber;

/* A row a windowed table showed its subscribers (its JSON) and how many times it holds it. */
typedef struct shown_row {
  struct shown_row *next;
  uint64_t hash;
  int64_t count;
  size_t len;
  char json[];
} shown_row;

typedef struct relation_op {
  vpq_op base;
  const vpq_relation *rel;
  vpq_sink *sink;
  relation_subscriber *subs;
  int nsubs;
  /* A subscribed windowed table: the rows its subscribers hold (a hash multiset), closed
   * windows' included, which no aggregation keeps; checkpointed, so a restore shows them again. */
  shown_row **shown;
  size_t nshown_buckets, nshown;
  int *rows; /* scratch row list for the sink */
  int rows_cap;
  int64_t *input_wm; /* per input port, when fed by several */
  int64_t *pending_wm; /* per input port: the watermark it passed during the source batch going through */
  int ninputs;
  vpq_held_batches held;  /* fed by several: their batches of the source batch going through */
  int64_t held_wm;        /* the watermark, held with them (VPQ_TS_MIN: none) */
  bool waiting;           /* holding for the current source batch */
  vpq_dispatch_waiter waiter;
} relation_op;

/* The watermark every input has reached: the minimum over the input ports (idle ones left out). */
static int64_t relation_min_wm(const relation_op *r) {
  return vpq_op_inputs_watermark(&r->base, r->input_wm, r->ninputs, -1);
}

bool vpq_op_replaced(const vpq_batch *batch, int i, const vpq_vec *keys, int nkeys) {
  if (i + 1 >= batch->n || batch->diff[i + 1] <= 0 || batch->ts[i + 1] != batch->ts[i]) return false;
  if (batch->origin[i + 1].partition != batch->origin[i].partition || batch->origin[i + 1].offset != batch->origin[i].offset)
    return false; /* two input rows: the key left with the first and came back with the second */
  for (int k = 0; k < nkeys; k++) {
    const vpq_vec *v = &keys[k];
    if (v->null[i] != v->null[i + 1]) return false;
    if (!v->null[i] && memcmp(&v->data[i], &v->data[i + 1], sizeof v->data[i]) != 0) return false;
  }
  return true;
}

/* The columns that name a table's row in `batch`: its key and window columns (at most 64);
 * returns their number and sets *windows when window columns are among them. */
static int row_key_columns(const vpq_schema *schema, const vpq_batch *batch, vpq_vec *keys, bool *windows) {
  int nkeys = 0;
  *windows = false;
  for (int c = 0; c < schema->ncols && nkeys < 64; c++) {
    if (!schema->cols[c].is_key && !schema->cols[c].is_window) continue;
    keys[nkeys++] = batch->cols[c];
    *windows = *windows || schema->cols[c].is_window;
  }
  return nkeys;
}

/* Whether rows i and j of `batch` hold the same values in every column. */
static bool same_row(const vpq_batch *batch, int i, int j) {
  for (int c = 0; c < batch->ncols; c++) {
    const vpq_vec *v = &batch->cols[c];
    if (v->null[i] != v->null[j] || (!v->null[i] && memcmp(&v->data[i], &v->data[j], sizeof v->data[i]) != 0))
      return false;
  }
  return true;
}

/* Whether the relation keeps the rows it shows its subscribers (relation_op.shown). */
static bool keeps_shown(const relation_op *r) {
  return r->nsubs > 0 && r->rel->kind == VPQ_REL_TABLE && r->rel->windowed;
}

/* Adds `diff` copies of the row `json` to the shown rows (a negative diff removes them). */
static void shown_apply(relation_op *r, const char *json, size_t len, int64_t diff) {
  const uint64_t hash = vpq_ckpt_hash(json, len, 0);
  shown_row **at = r->nshown_buckets ? &r->shown[hash & (r->nshown_buckets - 1)] : NULL;
  for (; at && *at; at = &(*at)->next)
    if ((*at)->hash == hash && (*at)->len == len && memcmp((*at)->json, json, len) == 0) break;
  if (at && *at) {
    shown_row *row = *at;
    row->count += diff;
    if (row->count > 0) return;
    *at = row->next;
    free(row);
    r->nshown--;
    return;
  }
  if (diff <= 0) return;
  if (r->nshown >= r->nshown_buckets) {
    size_t n = r->nshown_buckets ? 2 * r->nshown_buckets : 64;
    shown_row **buckets = calloc(n, sizeof *buckets);
    if (!buckets) abort();
    for (size_t b = 0; b < r->nshown_buckets; b++)
      for (shown_row *row = r->shown[b], *next; row; row = next) {
        next = row->next;
        row->next = buckets[row->hash & (n - 1)];
        buckets[row->hash & (n - 1)] = row;
      }
    free(r->shown);
    r->shown = buckets;
    r->nshown_buckets = n;
  }
  shown_row *row = malloc(sizeof *row + len + 1);
  if (!row) abort();
  *row = (shown_row){r->shown[hash & (r->nshown_buckets - 1)], hash, diff, len};
  memcpy(row->json, json, len);
  row->json[len] = '\0';
  r->shown[hash & (r->nshown_buckets - 1)] = row;
  r->nshown++;
}

/* Shows each row of the batch to the relation's subscribers, as JSON with its diff; `keep`:
 * also into the rows it keeps for a restore (keeps_shown). */
static void notify_subscribers(relation_op *r, const vpq_batch *batch, bool keep) {
  vpq_buf json = {0};
  for (int i = 0; i < batch->n; i++) {
    json.len = 0;
    vpq_json_encode_row(&json, &r->rel->schema, batch, i, r->base.rt->intern);
    if (keep && batch->diff[i]) shown_apply(r, json.data, json.len, batch->diff[i]);
    for (int s = 0; s < r->nsubs; s++) r->subs[s].fn(r->subs[s].ctx, r->rel->name, json.data, batch->diff[i]);
  }
  vpq_buf_free(&json);
}

/* Makes room for the watermarks of input ports [0, n): a port not heard from yet is at VPQ_TS_MIN. */
static void relation_inputs(relation_op *r, int n) {
  if (n <= r->ninputs) return;
  r->input_wm = realloc(r->input_wm, sizeof *r->input_wm * (size_t)n);
  r->pending_wm = realloc(r->pending_wm, sizeof *r->pending_wm * (size_t)n);
  if (!r->input_wm || !r->pending_wm) abort();
  for (int i = r->ninputs; i < n; i++) r->input_wm[i] = r->pending_wm[i] = VPQ_TS_MIN;
  r->ninputs = n;
}

/* Writes a batch of the relation's rows to its sink and subscribers and passes it on. */
static void relation_deliver(vpq_op *op, const vpq_batch *batch) {
  relation_op *r = (relation_op *)op;
  if (r->sink && !op->rt->withdrawing) {
    if (r->rows_cap < batch->n) {
      r->rows_cap = batch->n;
      r->rows = realloc(r->rows, sizeof *r->rows * (size_t)r->rows_cap);
      if (!r->rows) abort();
    }
    int n = 0;
    /* A table's retraction that its key's new row does not replace (vpq_op_replaced) deletes
     * the key; a windowed table that selects no window column writes no deletions (its key
     * does not say which window left). */
    vpq_vec keys[64];
    bool windows;
    const int nkeys = row_key_columns(&r->rel->schema, batch, keys, &windows);
    const bool deletions = r->rel->kind == VPQ_REL_TABLE && (!r->rel->windowed || windows);
    for (int i = 0; i < batch->n; i++) {
      if (batch->diff[i] == 0 || (batch->diff[i] < 0 && !deletions)) continue;
      if (batch->diff[i] < 0 && vpq_op_replaced(batch, i, keys, nkeys)) {
        if (same_row(batch, i, i + 1)) i++; /* the key's row did not change: nothing to write */
        continue;
      }
      r->rows[n++] = i;
    }
    char err[256];
    const int64_t refused = r->sink->refused;
    if (n && !r->sink->vt->write(r->sink, batch, r->rows, n, err, sizeof err)) {
      fprintf(op->rt->log, "vpq: writing `%s`: %s\n", r->rel->name, err);
      op->rt->failed = true;
    }
    if (r->sink->refused > refused) {
      if (!refused) fprintf(op->rt->log, "vpq: writing `%s`: %s: not written (counted)\n", r->rel->name, r->sink->refused_reason);
      op->rt->stats.refused_out += r->sink->refused - refused;
    }
    op->rt->stats.rows_out += n - (r->sink->refused - refused);
  }
  if (r->nsubs) notify_subscribers(r, batch, keeps_shown(r));
  vpq_op_emit(op, batch);
}

/* When the source batch has gone through: the rows of the inputs, held, in the order of their
 * source rows (the queries of several INSERT INTO over one source each bring the batch's rows
 * they pass, one query after the other), then the watermarks the inputs passed meanwhile. */
static void relation_flush(vpq_dispatch_waiter *waiter) {
  relation_op *r = (relation_op *)((char *)waiter - offsetof(relation_op, waiter));
  vpq_op_deliver_in_source_order(&r->base, &r->held, relation_deliver);
  r->held.n = 0;
  r->waiting = false;
  for (int i = 0; i < r->ninputs; i++) {
    if (r->pending_wm[i] > r->input_wm[i]) r->input_wm[i] = r->pending_wm[i];
    r->pending_wm[i] = VPQ_TS_MIN;
  }
  int64_t wm = r->held_wm;
  r->held_wm = VPQ_TS_MIN;
  const int64_t over_inputs = r->ninputs > 1 ? relation_min_wm(r) : VPQ_TS_MIN;
  if (over_inputs > wm) wm = over_inputs;
  if (wm != VPQ_TS_MIN) vpq_op_emit_watermark(&r->base, wm);
}

/* Waits for the end of the source batch going through; false outside one. */
static bool relation_wait(relation_op *r) {
  if (!r->base.rt->dispatch.origin) return false;
  if (!r->waiting) {
    r->waiting = true;
    vpq_op_dispatch_wait(&r->base, &r->waiter);
  }
  return true;
}

/* Holds `batch` of an input while a source batch goes through; false outside one. */
static bool relation_hold(relation_op *r, const vpq_batch *batch) {
  if (!relation_wait(r)) return false;
  vpq_held_batches_push(&r->held, batch);
  return true;
}

static void relation_push(vpq_op *op, int port, const vpq_batch *batch) {
  relation_op *r = (relation_op *)op;
  if (op->rt->replaying) {
    notify_subscribers(r, batch, false);
    return;
  }
  if (op->ninputs > 1) {
    /* A row cannot bring a watermark the other inputs have not reached (one that has not
     * spoken yet has reached none), unless they are idle. */
    relation_inputs(r, op->ninputs);
    const int64_t others = vpq_op_inputs_watermark(op, r->input_wm, r->ninputs, port);
    vpq_batch *clamped = vpq_arena_alloc(&op->rt->scratch, sizeof *clamped);
    *clamped = *batch;
    clamped->wm = vpq_arena_alloc(&op->rt->scratch, sizeof *clamped->wm * (size_t)(batch->n + 1));
    for (int i = 0; i < batch->n; i++) clamped->wm[i] = batch->wm[i] < others ? batch->wm[i] : others;
    if (relation_hold(r, clamped)) return;
    batch = clamped;
  }
  relation_deliver(op, batch);
}

/* Passes the watermark over the inputs on (held with the rows while they are held). */
static void relation_pass_watermark(relation_op *r) {
  const int64_t wm = relation_min_wm(r);
  if (r->waiting) r->held_wm = wm > r->held_wm ? wm : r->held_wm;
  else vpq_op_emit_watermark(&r->base, wm);
}

static void relation_watermark(vpq_op *op, int port, int64_t wm) {
  relation_op *r = (relation_op *)op;
  relation_inputs(r, op->ninputs > port + 1 ? op->ninputs : port + 1);
  if (r->ninputs > 1 && relation_wait(r)) {
    /* Passed during a source batch, it is the input's watermark after the whole batch, which
     * the rows of the batch that the other inputs bring may come before in source order (a
     * window with a grace period and the stream it reads): those are judged by the watermarks
     * from before the batch, and this one counts once they are through (relation_flush). */
    if (wm > r->pending_wm[port]) r->pending_wm[port] = wm;
    return;
  }
  if (wm > r->input_wm[port]) r->input_wm[port] = wm;
  relation_pass_watermark(r);
}

/* An input went idle: the watermark over the others, passed on when it rose. */
static void relation_input_idle(vpq_op *op) {
  relation_op *r = (relation_op *)op;
  if (r->ninputs > 1) relation_pass_watermark(r);
}

static void relation_describe(const vpq_op *op, vpq_buf *out) {
  const relation_op *r = (const relation_op *)op;
  const vpq_relation *rel = r->rel;
  vpq_buf_printf(out, "%s %s (", rel->kind == VPQ_REL_TABLE ? "table" : "stream", rel->name);
  for (int c = 0; c < rel->schema.ncols; c++)
    vpq_buf_printf(out, "%s%s %s%s", c ? ", " : "", rel->schema.cols[c].name,
                   vpq_type_name(rel->schema.cols[c].type), rel->schema.cols[c].is_key ? " KEY" : "");
  vpq_buf_puts(out, ")");
  if (rel->is_sink)
    vpq_buf_printf(out, " -> %s %s%s%s", rel->sink.connector, rel->sink.format ? rel->sink.format : "",
                   rel->sink.path ? " " : "", rel->sink.path ? rel->sink.path : "");
}

static void relation_destroy(vpq_op *op) {
  relation_op *r = (relation_op *)op;
  if (r->sink) r->sink->vt->close(r->sink);
  free(r->subs);
  free(r->rows);
  free(r->input_wm);
  free(r->pending_wm);
  free(r->held.items);
  for (size_t b = 0; b < r->nshown_buckets; b++)
    for (shown_row *row = r->shown[b], *next; row; row = next) {
      next = row->next;
      free(row);
    }
  free(r->shown);
}

/* State: the watermark of each input port, then the shown rows (each its JSON and count). */
static void relation_save(const vpq_op *op, vpq_ckpt_out *out) {
  const relation_op *r = (const relation_op *)op;
  vpq_ckpt_put_u64(out, (uint64_t)r->ninputs);
  for (int i = 0; i < r->ninputs; i++) vpq_ckpt_put_i64(out, r->input_wm[i]);
  vpq_ckpt_put_u64(out, (uint64_t)r->nshown);
  for (size_t b = 0; b < r->nshown_buckets; b++)
    for (const shown_row *row = r->shown[b]; row; row = row->next) {
      vpq_ckpt_put_bytes(out, row->json, row->len);
      vpq_ckpt_put_i64(out, row->count);
    }
}

static void relation_load(vpq_op *op, vpq_ckpt_in *in) {
  relation_op *r = (relation_op *)op;
  int n = (int)vpq_ckpt_get_count(in, op->ninputs);
  if (n) {
    relation_inputs(r, n);
    for (int i = 0; i < n; i++) r->input_wm[i] = vpq_ckpt_get_i64(in);
  }
  int64_t nshown = vpq_ckpt_get_count(in, INT32_MAX);
  if (nshown && (r->rel->kind != VPQ_REL_TABLE || !r->rel->windowed)) vpq_ckpt_fail(in, "shown rows of no windowed table");
  for (int64_t i = 0; i < nshown && !in->error; i++) {
    size_t len;
    const char *json = vpq_ckpt_get_bytes(in, &len);
    int64_t count = vpq_ckpt_get_i64(in);
    if (!in->error && count <= 0) vpq_ckpt_fail(in, "a shown row held no times");
    if (!in->error && keeps_shown(r)) shown_apply(r, json, len, count);
  }
}

static const vpq_op_vt relation_vt = {"Relation",       relation_push, relation_watermark, relation_describe,
                                      relation_destroy, relation_save,  relation_load,      relation_input_idle};

vpq_op *vpq_op_relation_new(vpq_runtime *rt, const vpq_relation *rel) {
  relation_op *r = calloc(1, sizeof *r);
  if (!r) abort();
  vpq_op_init(&r->base, &relation_vt, rt, &rel->schema);
  r->rel = rel;
  r->held_wm = VPQ_TS_MIN;
  r->waiter.flush = relation_flush;
  return &r->base;
}

void vpq_op_relation_attach_sink(vpq_op *op, vpq_sink *sink) {
  relation_op *r = (relation_op *)op;
  r->sink = sink;
}

void vpq_op_relation_subscribe(vpq_op *op, vpq_row_fn fn, void *ctx) {
  relation_op *r = (relation_op *)op;
  r->subs = realloc(r->subs, sizeof *r->subs * (size_t)(r->nsubs + 1));
  if (!r->subs) abort();
  r->subs[r->nsubs++] = (relation_subscriber){fn, ctx};
}

vpq_sink *vpq_op_relation_sink(const vpq_op *op) { return ((const relation_op *)op)->sink; }

void vpq_op_relation_replay(vpq_op *op) {
  relation_op *r = (relation_op *)op;
  for (size_t b = 0; b < r->nshown_buckets; b++)
    for (const shown_row *row = r->shown[b]; row; row = row->next)
      for (int64_t c = 0; c < row->count; c++)
        for (int s = 0; s < r->nsubs; s++) r->subs[s].fn(r->subs[s].ctx, r->rel->name, row->json, 1);
}

void vpq_op_relation_flush(vpq_op *op) {
  relation_op *r = (relation_op *)op;
  char err[256];
  if (r->sink && !r->sink->vt->flush(r->sink, err, sizeof err)) {
    fprintf(op->rt->log, "vpq: writing `%s`: %s\n", r->rel->name, err);
    op->rt->failed = true;
  }
}

/* ===== Source: event time, watermarks, table upserts ===== */

/* A table source's current row per key, for turning upserts into a changelog. */
typedef struct upsert_entry {
  uint64_t hash;
  int next;
  vpq_datum *data;
  uint8_t *null;
  bool deleted; /* a tombstone removed the key: data keeps it for the look-up, not as a row */
} upsert_entry;

typedef struct source_op {
  vpq_op base;
  const vpq_relation *rel;
  const vpq_source_slot *slot;
  int64_t max_ts;
  int64_t wm;
  int64_t last_arrival; /* processing time of the last row */
  int64_t *part_max;    /* per partition: the largest event time seen (sources with partitions) */
  int64_t *part_arrival; /* per partition: processing time of its last row (or of the first push) */
  bool *part_idle;      /* per partition: idle (mark_idle) for the batch or tick at hand */
  int nparts;
  bool restored;        /* restored from a checkpoint, not looked at since (restart_idle_clock) */
  uint64_t assignments; /* the source's assignments last looked at (restart_idle_clock) */
  upsert_entry *entries;
  int nentries, entries_cap;
  int ndeleted; /* entries whose key a tombstone deleted (upserts_compact drops them) */
  int *buckets;
  int nbuckets;
} source_op;

/* A source has no inputs: rows enter through vpq_op_source_push. */
static void source_push_unused(vpq_op *op, int port, const vpq_batch *batch) {
  (void)op;
  (void)port;
  (void)batch;
}

static void source_watermark_unused(vpq_op *op, int port, int64_t wm) {
  (void)op;
  (void)port;
  (void)wm;
}

static void source_describe(const vpq_op *op, vpq_buf *out) {
  const source_op *s = (const source_op *)op;
  const vpq_relation *rel = s->rel;
  vpq_buf_printf(out, "%s", rel->source.connector ? rel->source.connector : "push");
  if (rel->source.path) vpq_buf_printf(out, " %s", rel->source.path);
  if (rel->source.format) vpq_buf_printf(out, " format=%s", rel->source.format);
  if (rel->ts_col >= 0) vpq_buf_printf(out, " timestamp=%s", rel->schema.cols[rel->ts_col].name);
  vpq_buf_printf(out, " watermark_delay=%lldms", (long long)rel->watermark_delay_ms);
}

static void source_destroy(vpq_op *op) {
  source_op *s = (source_op *)op;
  free(s->part_max);
  free(s->part_arrival);
  free(s->part_idle);
  for (int i = 0; i < s->nentries; i++) {
    free(s->entries[i].data);
    free(s->entries[i].null);
  }
  free(s->entries);
  free(s->buckets);
}

static int upsert_find(source_op *s, const vpq_batch *batch, int row, bool insert);

/* State: event-time progress (overall and per partition) and, for a table source, each
 * key's current row. */
static void source_save(const vpq_op *op, vpq_ckpt_out *out) {
  const source_op *s = (const source_op *)op;
  vpq_ckpt_put_i64(out, s->max_ts);
  vpq_ckpt_put_i64(out, s->wm);
  vpq_ckpt_put_i64(out, s->last_arrival);
  vpq_ckpt_put_u64(out, (uint64_t)s->nparts);
  for (int p = 0; p < s->nparts; p++) {
    vpq_ckpt_put_i64(out, s->part_max[p]);
    vpq_ckpt_put_i64(out, s->part_arrival[p]);
  }
  int ncols = s->rel->schema.ncols;
  uint64_t rows = 0;
  for (int e = 0; e < s->nentries; e++) rows += !s->entries[e].deleted;
  vpq_ckpt_put_u64(out, rows);
  for (int e = 0; e < s->nentries; e++)
    if (!s->entries[e].deleted) vpq_ckpt_put_datums(out, s->entries[e].data, s->entries[e].null, ncols);
}

/* Makes the per-partition watermark state hold `n` partitions (it never shrinks): one it did
 * not hold (a source's first rows, or a topic that has gained partitions since a checkpoint)
 * has sent no row yet, as from `now_ms`. */
static void source_partitions(source_op *s, int n, int64_t now_ms) {
  if (n <= s->nparts) return;
  s->part_max = realloc(s->part_max, sizeof *s->part_max * (size_t)n);
  s->part_arrival = realloc(s->part_arrival, sizeof *s->part_arrival * (size_t)n);
  s->part_idle = realloc(s->part_idle, sizeof *s->part_idle * (size_t)n);
  if (!s->part_max || !s->part_arrival || !s->part_idle) abort();
  for (int p = s->nparts; p < n; p++) {
    s->part_max[p] = VPQ_TS_MIN;
    s->part_arrival[p] = now_ms;
    s->part_idle[p] = false;
  }
  s->nparts = n;
}

static void source_load(vpq_op *op, vpq_ckpt_in *in) {
  source_op *s = (source_op *)op;
  s->max_ts = vpq_ckpt_get_i64(in);
  s->wm = vpq_ckpt_get_i64(in);
  s->last_arrival = vpq_ckpt_get_i64(in);
  int nparts = (int)vpq_ckpt_get_count(in, 1 << 20);
  source_partitions(s, nparts, 0);
  for (int p = 0; p < nparts; p++) {
    s->part_max[p] = vpq_ckpt_get_i64(in);
    s->part_arrival[p] = vpq_ckpt_get_i64(in);
  }
  s->restored = true;
  int ncols = s->rel->schema.ncols;
  int64_t n = vpq_ckpt_get_count(in, INT32_MAX / 2);
  if (n && s->rel->kind != VPQ_REL_TABLE) vpq_ckpt_fail(in, "a stream source with table rows");
  vpq_batch *row = vpq_op_batch(op->rt, &s->rel->schema, 1);
  for (int64_t i = 0; i < n && !in->error; i++) {
    for (int c = 0; c < ncols; c++) {
      vpq_ckpt_get_datums(in, &row->cols[c].data[0], &row->cols[c].null[0], 1);
      if (s->rel->schema.cols[c].type == VPQ_TYPE_STRING && !row->cols[c].null[0] &&
          (uint64_t)row->cols[c].data[0].i >= vpq_intern_count(op->rt->intern))
        vpq_ckpt_fail(in, "a string that is not in the string pool");
    }
    if (in->error) break;
    int e = upsert_find(s, row, 0, true);
    upsert_entry *entry = &s->entries[e];
    if (entry->data) {
      vpq_ckpt_fail(in, "a table source key stored twice");
      break;
    }
    entry->data = malloc(sizeof *entry->data * (size_t)ncols);
    entry->null = malloc((size_t)ncols);
    if (!entry->data || !entry->null) abort();
    vpq_op_copy_row(row, 0, ncols, entry->data, entry->null);
  }
  vpq_arena_reset(&op->rt->scratch);
}

static const vpq_op_vt source_vt = {"Scan", source_push_unused, source_watermark_unused,
                                    source_describe, source_destroy, source_save, source_load, NULL};

vpq_op *vpq_op_source_new(vpq_runtime *rt, const vpq_relation *rel, const vpq_source_slot *slot) {
  source_op *s = calloc(1, sizeof *s);
  if (!s) abort();
  vpq_op_init(&s->base, &source_vt, rt, &rel->schema);
  s->base.idle = 0;
  s->rel = rel;
  s->slot = slot;
  s->max_ts = VPQ_TS_MIN;
  s->wm = VPQ_TS_MIN;
  return &s->base;
}

/* Writes row `row` of `batch` (columns named by `schema`) with `reason` to `slot`'s dead-letter
 * output, if it has one, naming the row's origin as the slot's source formats it. */
static void dead_letter_to(vpq_runtime *rt, const vpq_source_slot *slot, const vpq_schema *schema,
                           const vpq_batch *batch, int row, const char *reason) {
  if (!slot || !slot->dl) return;
  char origin[256];
  if (slot->src) slot->src->vt->format_origin(slot->src, batch->origin[row], origin, sizeof origin);
  else snprintf(origin, sizeof origin, "%s", slot->rel->name);
  if (vpq_dead_letter_row(slot->dl, batch->origin[row], reason, origin, schema, batch, row, rt->intern))
    rt->stats.dead_lettered++;
}

void vpq_op_dead_letter(vpq_runtime *rt, const vpq_source_slot *slots, const vpq_relation *from,
                        const vpq_schema *schema, const vpq_batch *batch, int row, const char *reason) {
  int32_t source = batch->source[row];
  dead_letter_to(rt, source > 0 ? &slots[source - 1] : from && from->is_source ? &slots[from->index] : NULL, schema,
                 batch, row, reason);
}

void vpq_op_late_row(vpq_runtime *rt, const vpq_source_slot *slots, const vpq_relation *from,
                     const vpq_schema *schema, const vpq_batch *batch, int row) {
  rt->stats.late++;
  rt->stats.refused[VPQ_REASON_LATE]++;
  vpq_op_dead_letter(rt, slots, from, schema, batch, row, "late");
}

static int64_t saturating_sub(int64_t a, int64_t b) {
  if (a == VPQ_TS_MIN) return VPQ_TS_MIN;
  return a < VPQ_TS_MIN + b ? VPQ_TS_MIN : a - b;
}

static void source_dead_letter(source_op *s, const char *reason, const vpq_batch *batch, int row) {
  s->base.rt->stats.malformed++;
  vpq_runtime_refused(s->base.rt, reason);
  dead_letter_to(s->base.rt, s->slot, &s->rel->schema, batch, row, reason);
}

/* Finds (or with `insert`, creates) the upsert entry of the key of `row`; -1 when absent. */
static int upsert_find(source_op *s, const vpq_batch *batch, int row, bool insert) {
  const vpq_relation *rel = s->rel;
  enum { FEW_KEYS = 16 };
  vpq_datum few[FEW_KEYS];
  uint8_t few_null[FEW_KEYS];
  const int nkeys = rel->nkeys;
  vpq_datum *key = nkeys <= FEW_KEYS ? few : vpq_arena_alloc(&s->base.rt->scratch, sizeof *key * (size_t)nkeys);
  uint8_t *key_null = nkeys <= FEW_KEYS ? few_null : vpq_arena_alloc(&s->base.rt->scratch, (size_t)nkeys);
  for (int k = 0; k < nkeys; k++) {
    key[k] = batch->cols[rel->key_cols[k]].data[row];
    key_null[k] = batch->cols[rel->key_cols[k]].null[row];
  }
  uint64_t hash = vpq_op_hash_datums(key, key_null, nkeys, 0);
  if (s->nbuckets) {
    for (int e = s->buckets[hash & (uint64_t)(s->nbuckets - 1)]; e >= 0; e = s->entries[e].next) {
      upsert_entry *entry = &s->entries[e];
      if (entry->hash != hash) continue;
      bool same = true;
      for (int k = 0; k < nkeys && same; k++) {
        int c = rel->key_cols[k];
        same = entry->null[c] == key_null[k] && (key_null[k] || entry->data[c].i == key[k].i);
      }
      if (same) return e;
    }
  }
  if (!insert) return -1;
  if (s->nentries * 2 >= s->nbuckets) {
    int nbuckets = s->nbuckets ? s->nbuckets * 2 : 64;
    free(s->buckets);
    s->buckets = malloc(sizeof *s->buckets * (size_t)nbuckets);
    if (!s->buckets) abort();
    for (int b = 0; b < nbuckets; b++) s->buckets[b] = -1;
    s->nbuckets = nbuckets;
    for (int e = 0; e < s->nentries; e++) {
      int b = (int)(s->entries[e].hash & (uint64_t)(nbuckets - 1));
      s->entries[e].next = s->buckets[b];
      s->buckets[b] = e;
    }
  }
  if (s->nentries == s->entries_cap) {
    s->entries_cap = s->entries_cap ? s->entries_cap * 2 : 64;
    s->entries = realloc(s->entries, sizeof *s->entries * (size_t)s->entries_cap);
    if (!s->entries) abort();
  }
  int e = s->nentries++;
  int b = (int)(hash & (uint64_t)(s->nbuckets - 1));
  s->entries[e] = (upsert_entry){hash, s->buckets[b], NULL, NULL, false};
  s->buckets[b] = e;
  return e;
}

/* Appends row `row` of `batch` with `diff`, or the stored row `entry` when not NULL. */
static void changelog_append(vpq_batch *out, const vpq_batch *batch, int row,
                             const upsert_entry *entry, int diff) {
  int at = out->n;
  vpq_batch_append_row(out, batch, row);
  if (entry) {
    for (int c = 0; c < out->ncols; c++) {
      out->cols[c].data[at] = entry->data[c];
      out->cols[c].null[at] = entry->null[c];
    }
  }
  out->diff[at] = (int8_t)diff;
}

/* Whether row i of `batch` has the values of the entry's row (then it changes nothing). */
static bool upsert_unchanged(const vpq_batch *batch, int i, int ncols, const upsert_entry *entry) {
  for (int c = 0; c < ncols; c++) {
    const vpq_vec *v = &batch->cols[c];
    if (v->null[i] != entry->null[c]) return false;
    if (!v->null[i] && memcmp(&v->data[i], &entry->data[c], sizeof v->data[i]) != 0) return false;
  }
  return true;
}

/* Drops the entries of deleted keys once they are half of all: a table whose keys come and go
 * keeps memory for the keys it has, not for every key it ever had. */
static void upserts_compact(source_op *s) {
  if (s->ndeleted < 64 || s->ndeleted * 2 < s->nentries) return;
  int kept = 0;
  for (int e = 0; e < s->nentries; e++) {
    if (s->entries[e].deleted) {
      free(s->entries[e].data);
      free(s->entries[e].null);
      continue;
    }
    s->entries[kept++] = s->entries[e];
  }
  s->nentries = kept;
  s->ndeleted = 0;
  for (int b = 0; b < s->nbuckets; b++) s->buckets[b] = -1;
  for (int e = 0; e < s->nentries; e++) {
    int b = (int)(s->entries[e].hash & (uint64_t)(s->nbuckets - 1));
    s->entries[e].next = s->buckets[b];
    s->buckets[b] = e;
  }
}

/* Turns a batch of upserts into a changelog: a key's old row (-1) before its new one (+1); a
 * row equal to its key's current row, its event-time column included, is no change and writes
 * nothing (without that column the row's event time is its arrival, a change of its own for
 * the operators reading the table: a battery that reports the same values again is not stale
 * to SCHEDULE; a sink, which writes only rows whose values change, skips it); a deletion
 * (diff -1, a Kafka tombstone) retracts the key's row, if it has one. */
static const vpq_batch *source_upserts(source_op *s, const vpq_batch *batch) {
  int ncols = s->rel->schema.ncols;
  vpq_batch *out = vpq_op_batch(s->base.rt, &s->rel->schema, batch->n * 2);
  for (int i = 0; i < batch->n; i++) {
    if (batch->diff[i] < 0) {
      int e = upsert_find(s, batch, i, false);
      if (e >= 0 && !s->entries[e].deleted) {
        changelog_append(out, batch, i, &s->entries[e], -1);
        s->entries[e].deleted = true;
        s->ndeleted++;
      }
      continue;
    }
    int e = upsert_find(s, batch, i, true);
    upsert_entry *entry = &s->entries[e];
    if (entry->data && !entry->deleted) {
      if (s->rel->ts_col >= 0 && upsert_unchanged(batch, i, ncols, entry)) continue;
      changelog_append(out, batch, i, entry, -1);
    } else if (!entry->data) {
      entry->data = malloc(sizeof *entry->data * (size_t)ncols);
      entry->null = malloc((size_t)ncols);
      if (!entry->data || !entry->null) abort();
    }
    s->ndeleted -= entry->deleted;
    entry->deleted = false;
    vpq_op_copy_row(batch, i, ncols, entry->data, entry->null);
    changelog_append(out, batch, i, NULL, +1);
  }
  upserts_compact(s);
  return out;
}

/* After a restore, the processing times of the last rows are the previous run's. For a source
 * the engine reads (on the wall clock), the time it was down is no idleness: counting it would
 * move the watermark on by the downtime before the backlog is read, and make its rows late, so
 * they start over at the first look after the restore. An embedder's clock (vpq_engine_tick)
 * goes on as it was. Likewise when a consumer group gives this member partitions (the source's
 * `assignments` change): the time spent waiting for them, a rebalance that can outlast
 * idle_timeout, is no idleness of the partitions it now reads, whose backlog it has not seen. */
static void restart_idle_clock(source_op *s, const vpq_source *src, int64_t now_ms) {
  const bool reassigned = src && src->assignments != s->assignments;
  if (!s->restored && !reassigned) return;
  s->restored = false;
  if (src) s->assignments = src->assignments;
  if (!src || src->bounded) return;
  s->last_arrival = now_ms;
  for (int p = 0; p < s->nparts; p++) s->part_arrival[p] = now_ms;
}

/* Marks which partitions of a source are idle at processing time `now_ms`: for an unbounded
 * source, those that have sent no row for idle_timeout (one that has sent nothing since the
 * source started included) and where the source knows of no record it has not read yet
 * (vpq_source_vt.behind, asked once per batch or tick, not per row); for a bounded one, those
 * that have sent nothing and never will (read to their end: an empty partition), which would
 * otherwise hold the watermark back until the end of the input, so that no row is ever late. */
static void mark_idle(source_op *s, const vpq_source *src, int64_t now_ms) {
  for (int p = 0; p < s->nparts; p++)
    s->part_idle[p] = src && (src->bounded ? s->part_max[p] == VPQ_TS_MIN
                                           : now_ms - s->part_arrival[p] >= s->rel->idle_timeout_ms) &&
                      (!src->vt->behind || !src->vt->behind(src, p));
}

/* The watermark after a row at `ts` from `partition`: the minimum over the partitions (when the
 * connector tracks several) of the largest event time each has sent, minus the delay. An idle
 * partition (mark_idle) does not hold the watermark back until it sends again. */
static int64_t source_watermark(source_op *s, int partition, int64_t ts) {
  if (ts > s->max_ts) s->max_ts = ts;
  if (s->nparts <= 1 || partition < 0 || partition >= s->nparts)
    return saturating_sub(s->max_ts, s->rel->watermark_delay_ms);
  if (ts > s->part_max[partition]) s->part_max[partition] = ts;
  s->part_arrival[partition] = s->base.rt->now_ms;
  s->part_idle[partition] = false;
  int64_t low = VPQ_TS_MAX;
  const vpq_source *src = s->slot ? s->slot->src : NULL;
  const bool *owned = src ? src->owned : NULL;
  for (int p = 0; p < s->nparts; p++)
    if ((!owned || owned[p]) && s->part_max[p] < low && !s->part_idle[p]) low = s->part_max[p];
  if (low == VPQ_TS_MAX) low = s->max_ts;
  return saturating_sub(low, s->rel->watermark_delay_ms);
}

void vpq_op_source_replay(vpq_op *op) {
  source_op *s = (source_op *)op;
  if (s->rel->kind != VPQ_REL_TABLE) return;
  const int ncols = s->rel->schema.ncols;
  vpq_batch *out = vpq_op_batch(op->rt, &s->rel->schema, VPQ_BATCH_ROWS);
  for (int e = 0; e < s->nentries; e++) {
    if (s->entries[e].deleted) continue;
    if (out->n == out->cap) {
      vpq_op_emit(op, out);
      out = vpq_op_batch(op->rt, &s->rel->schema, VPQ_BATCH_ROWS);
    }
    const int at = out->n++;
    for (int c = 0; c < ncols; c++) {
      out->cols[c].data[at] = s->entries[e].data[c];
      out->cols[c].null[at] = s->entries[e].null[c];
    }
    out->ts[at] = 0;
    out->wm[at] = s->wm;
    out->diff[at] = 1;
    out->origin[at] = (vpq_origin){-1, 0};
    out->source[at] = 0;
  }
  if (out->n) vpq_op_emit(op, out);
}

void vpq_op_source_push(vpq_op *op, vpq_batch *batch) {
  source_op *s = (source_op *)op;
  const vpq_relation *rel = s->rel;
  const vpq_source *src = s->slot ? s->slot->src : NULL;
  if (src && src->partitions > 1) source_partitions(s, src->partitions, op->rt->now_ms);
  restart_idle_clock(s, src, op->rt->now_ms);
  mark_idle(s, src, op->rt->now_ms);
  if (batch->n) op->idle = 0;
  /* A partition with rows in this batch is not idle, though the connector has taken them all (a
   * bounded read then counts it as read to its end): its rows further down the batch must still
   * hold the watermark back for the rows of other partitions before them. */
  for (int i = 0; i < batch->n; i++)
    if (batch->origin[i].partition >= 0 && batch->origin[i].partition < s->nparts)
      s->part_idle[batch->origin[i].partition] = false;
  bool stamped = src && src->stamps_rows;
  int kept = 0;
  int64_t now = rel->ts_col >= 0 ? 0 : op->rt->now_ms ? op->rt->now_ms : vpq_clock_wall_ms();
  for (int i = 0; i < batch->n; i++) {
    int64_t ts;
    if (rel->ts_col >= 0) {
      if (batch->cols[rel->ts_col].null[i]) {
        source_dead_letter(s, "invalid timestamp: the event-time column is NULL", batch, i);
        continue;
      }
      ts = batch->cols[rel->ts_col].data[i].i;
    } else {
      ts = stamped ? batch->ts[i] : now;
    }
    if (ts < VPQ_EVENT_TIME_FIRST || ts > VPQ_EVENT_TIME_LAST) {
      source_dead_letter(s, "invalid timestamp: the event time is outside the years 0000-9999", batch, i);
      continue;
    }
    int64_t wm = source_watermark(s, batch->origin[i].partition, ts);
    if (wm > s->wm) s->wm = wm;
    if (kept != i) {
      for (int c = 0; c < batch->ncols; c++) {
        batch->cols[c].data[kept] = batch->cols[c].data[i];
        batch->cols[c].null[kept] = batch->cols[c].null[i];
      }
      batch->origin[kept] = batch->origin[i];
    }
    batch->source[kept] = rel->index + 1;
    batch->ts[kept] = ts;
    batch->wm[kept] = s->wm;
    batch->diff[kept] = rel->kind == VPQ_REL_TABLE && batch->diff[i] < 0 ? -1 : 1;
    kept++;
  }
  batch->n = kept;
  s->last_arrival = op->rt->now_ms ? op->rt->now_ms : vpq_clock_wall_ms();
  op->rt->stats.rows_in += kept;
  op->rows_in += kept;
  if (rel->kind == VPQ_REL_TABLE) /* a key -0.0 upserts the key 0.0 */
    for (int k = 0; k < rel->nkeys; k++)
      vpq_op_canonical_keys(&batch->cols[rel->key_cols[k]], rel->schema.cols[rel->key_cols[k]].type, batch->n);
  const vpq_batch *out = rel->kind == VPQ_REL_TABLE ? source_upserts(s, batch) : batch;
  op->rt->dispatch = (vpq_dispatch){.origin = out->origin, .n = out->n, .source = rel->index + 1};
  vpq_op_emit(op, out);
  dispatch_end(op->rt);
  vpq_op_emit_watermark(op, s->wm);
}

void vpq_op_source_idle(vpq_op *op, int64_t now_ms) {
  source_op *s = (source_op *)op;
  const vpq_source *src = s->slot ? s->slot->src : NULL;
  restart_idle_clock(s, src, now_ms);
  if (s->wm == VPQ_TS_MAX || (src && src->bounded)) return;
  if (s->max_ts == VPQ_TS_MIN && !s->last_arrival) s->last_arrival = now_ms; /* no row yet: idle from now on */
  /* A group-read source restored from a checkpoint has rows of every partition in its maximum,
   * but reads none until its group first gives it partitions: going by that maximum then would
   * close the windows of a partition that lagged behind before its backlog is read, and make
   * those rows late. (A source that starts afresh has no rows before its first assignment.) */
  if (s->max_ts != VPQ_TS_MIN && s->nparts > 1 && src && !src->awaiting_partitions) {
    /* Partitions that went idle no longer hold the others back. */
    mark_idle(s, src, now_ms);
    int64_t low = VPQ_TS_MAX;
    for (int p = 0; p < s->nparts; p++)
      if ((!src->owned || src->owned[p]) && s->part_max[p] < low && !s->part_idle[p]) low = s->part_max[p];
    int64_t wm = saturating_sub(low == VPQ_TS_MAX ? s->max_ts : low, s->rel->watermark_delay_ms);
    if (wm > s->wm) {
      s->wm = wm;
      vpq_op_emit_watermark(op, wm);
    }
  }
  int64_t idle = now_ms - s->last_arrival;
  if (idle < s->rel->idle_timeout_ms || (src && src->vt->behind && src->vt->behind(src, -1))) {
    op->idle = 0; /* a backlog it knows of: not idle, though its rows have not come yet */
    return;
  }
  const bool went_idle = op->idle != 1;
  op->idle = 1;
  int64_t wm = saturating_sub(s->max_ts, s->rel->watermark_delay_ms) + idle;
  if (s->max_ts != VPQ_TS_MIN && wm > s->wm) {
    s->wm = wm;
    vpq_op_emit_watermark(op, wm);
  }
  if (went_idle) emit_input_idle(op);
}

int64_t vpq_op_source_watermark(const vpq_op *op) { return ((const source_op *)op)->wm; }

void vpq_op_source_finish(vpq_op *op) {
  source_op *s = (source_op *)op;
  s->wm = VPQ_TS_MAX;
  vpq_op_emit_watermark(op, VPQ_TS_MAX);
}

/* ===== Map: WHERE and the SELECT list of queries without aggregation ===== */

typedef struct map_op {
  vpq_op base;
  const vpq_plan_query *query;
  const vpq_schema *input;
  vpq_program *where;
  vpq_program **outputs; /* per target column; NULL = NULL column */
  bool project;
  int *sel;
  int sel_cap;
} map_op;

static void map_push(vpq_op *op, int port, const vpq_batch *batch) {
  (void)port;
  map_op *m = (map_op *)op;
  vpq_runtime *rt = op->rt;
  const vpq_batch *in = batch;
  if (m->where) {
    if (m->sel_cap < batch->n) {
      m->sel_cap = batch->n;
      m->sel = realloc(m->sel, sizeof *m->sel * (size_t)m->sel_cap);
      if (!m->sel) abort();
    }
    int n = vpq_program_select(m->where, batch, m->sel, &rt->scratch);
    if (n == 0) return;
    if (n < batch->n) {
      vpq_batch *kept = vpq_op_batch(rt, m->input, n);
      for (int i = 0; i < n; i++) vpq_batch_append_row(kept, batch, m->sel[i]);
      in = kept;
    }
  }
  if (!m->project) {
    vpq_op_emit(op, in);
    return;
  }
  vpq_batch *out = vpq_op_batch(rt, op->schema, in->n);
  out->n = in->n;
  for (int c = 0; c < out->ncols; c++) {
    if (m->outputs[c]) {
      vpq_program_eval(m->outputs[c], in, &out->cols[c], &rt->scratch);
      out->cols[c].type = op->schema->cols[c].type;
    } else {
      memset(out->cols[c].null, 1, (size_t)in->n);
    }
  }
  memcpy(out->ts, in->ts, sizeof *in->ts * (size_t)in->n);
  memcpy(out->wm, in->wm, sizeof *in->wm * (size_t)in->n);
  memcpy(out->diff, in->diff, (size_t)in->n);
  memcpy(out->origin, in->origin, sizeof *in->origin * (size_t)in->n);
  memcpy(out->source, in->source, sizeof *in->source * (size_t)in->n);
  vpq_op_emit(op, out);
}

static void map_watermark(vpq_op *op, int port, int64_t wm) {
  (void)port;
  vpq_op_emit_watermark(op, wm);
}

static void map_describe(const vpq_op *op, vpq_buf *out) {
  const map_op *m = (const map_op *)op;
  const vpq_plan_select *sel = &m->query->select;
  char text[512];
  if (sel->where) vpq_buf_printf(out, "where %s", vpq_bexpr_format(sel->where, &sel->input, text, sizeof text));
  if (!m->project) return;
  vpq_buf_printf(out, "%s[", sel->where ? " select " : "select ");
  for (int i = 0; i < sel->noutputs; i++) {
    int target = m->query->column_map[i];
    vpq_buf_printf(out, "%s%s", i ? ", " : "", vpq_bexpr_format(sel->outputs[i], &sel->input, text, sizeof text));
    if (target >= 0) vpq_buf_printf(out, " AS %s", m->query->target->schema.cols[target].name);
  }
  vpq_buf_puts(out, "]");
}

static void map_destroy(vpq_op *op) {
  map_op *m = (map_op *)op;
  free(m->sel);
}

static const vpq_op_vt map_vt = {"Map", map_push, map_watermark, map_describe, map_destroy, NULL, NULL, NULL};
static const vpq_op_vt filter_vt = {"Filter", map_push, map_watermark, map_describe, map_destroy, NULL, NULL, NULL};

vpq_op *vpq_op_map_new(vpq_runtime *rt, vpq_arena *arena, const vpq_plan_query *query,
                       const vpq_schema *input, bool project) {
  map_op *m = calloc(1, sizeof *m);
  if (!m) abort();
  const vpq_plan_select *sel = &query->select;
  vpq_op_init(&m->base, project ? &map_vt : &filter_vt, rt, project ? &query->target->schema : input);
  m->query = query;
  m->input = input;
  m->project = project;
  if (sel->where) m->where = vpq_expr_compile(arena, sel->where, rt->intern);
  if (project) {
    int ncols = query->target->schema.ncols;
    m->outputs = vpq_arena_alloc(arena, sizeof *m->outputs * (size_t)(ncols ? ncols : 1));
    for (int i = 0; i < sel->noutputs; i++) {
      int target = query->column_map[i];
      if (target >= 0) m->outputs[target] = vpq_expr_compile(arena, sel->outputs[i], rt->intern);
    }
  }
  return &m->base;
}
