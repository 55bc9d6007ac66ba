/* vpq_op_aggregate.c — aggregation: windows on event time, keyed tables, ROLLUP, HAVING,
 * EMIT FINAL / EMIT CHANGES, retractions of table inputs, and late rows.
 *
 * State is a set of groups. A group is one (window, rollup level, key) with a block of
 * aggregate states (vpq_agg.h) and the last row it emitted:
 *
 *   buckets[hash] ─► group ─► group ─► ...        (chained; key = window start, level, keys)
 *   windows[] sorted by (end, start) ─► groups in creation order   (tumbling, hopping)
 *   sessions: groups of one key chained under the key's hash; a row merges the sessions it
 *             touches (gaps strictly less than the session gap)
 *
 * Rows are processed in order. Before row i, the operator advances to the row's watermark
 * wm[i]: every window with end + grace <= wm closes and, under EMIT FINAL, is written
 * (ordered by end, start, group creation). The emitted rows carry the watermark the
 * operator had passed on before, and their event time is WINDOW_END - 1, so a downstream
 * window of the same alignment receives them before it closes.
 *
 * The hot path (EMIT FINAL, tumbling/hopping) works in runs: while no window closes, rows
 * only look up their group; then each aggregate steps the whole run in one tight loop
 * (vpq_agg_step_rows). EMIT CHANGES and tables step and emit after each row: a row's changed
 * groups are written when the new output differs from the last one written for the group
 * (tables write the old row with diff -1 before the new one). A retraction (-1) is applied
 * without writing, so a retract + add pair from an upstream table produces one change.
 */
#include <stdlib.h>
#include <string.h>

#include "vpq_expr.h"
#include "vpq_op.h"
#include "vpq_window.h"

typedef struct agg_group {
  uint64_t hash;
  int next;           /* bucket chain; -1 ends */
  int level;          /* rollup level: keys from ngroup_keys - level on are rolled up */
  int64_t start, end; /* window (session: first ts and last ts + gap) */
  int64_t nrows;      /* rows currently in the group (inserts minus retractions) */
  int64_t seq;        /* creation order */
  vpq_datum key0;     /* the first key, kept inline so that a lookup rarely leaves the struct */
  uint8_t key0_null;
  vpq_datum *key;
  uint8_t *key_null;
  uint8_t *state;
  vpq_datum *last;    /* the last output row written (target schema) */
  uint8_t *last_null;
  bool emitted;
  bool dirty;
  bool alive;
} agg_group;

typedef struct agg_window {
  int64_t start, end;
  int *groups;
  int ngroups, cap;
} agg_window;

typedef struct aggregate_op {
  vpq_op base;
  const vpq_plan_query *query;
  const vpq_plan_select *sel;
  const vpq_source_slot *slot; /* the FROM source's connectors, for late rows; or NULL */
  bool to_table;       /* the target is a table: write -1/+1 changelog pairs */
  bool changes;        /* EMIT CHANGES (or a table without a window) */
  int nlevels;
  int nkeys;
  size_t *offsets;     /* per aggregate, into a group's state block */
  size_t state_size;
  vpq_program **key_progs;
  vpq_program **arg_progs;
  vpq_program *having;
  vpq_program **out_progs; /* per target column; NULL = NULL column */
  vpq_schema layout;       /* keys, aggregates, WINDOW_START, WINDOW_END */

  agg_group *groups;
  int ngroups, groups_cap;
  int free_list;
  int *buckets;
  int nbuckets;
  int64_t next_seq;
  agg_window *windows; /* sorted by (end, start) */
  int nwindows, windows_cap;
  int64_t next_close;  /* smallest end + grace of an open window or session */
  int64_t wm;          /* the watermark processed so far */
  int *dirty;
  int ndirty, dirty_cap;

  /* per batch */
  vpq_vec *key_vecs;
  vpq_vec *arg_vecs;
  uint8_t **run_states;
  int *run_rows;
  int run_n, run_cap;
  vpq_batch *out;
  int64_t out_ts;      /* event time for table changes: the triggering row's */
  vpq_origin out_origin;
} aggregate_op;

/* ===== Groups and the hash table ===== */

static uint64_t group_hash(const aggregate_op *a, int64_t start, int level, const vpq_datum *key,
                           const uint8_t *key_null) {
  uint64_t seed = (uint64_t)start * 0x9e3779b97f4a7c15ull + (uint64_t)level;
  return vpq_op_hash_datums(key, key_null, a->nkeys, seed);
}

static void buckets_resize(aggregate_op *a, int nbuckets) {
  free(a->buckets);
  a->buckets = malloc(sizeof *a->buckets * (size_t)nbuckets);
  if (!a->buckets) abort();
  for (int b = 0; b < nbuckets; b++) a->buckets[b] = -1;
  a->nbuckets = nbuckets;
  for (int g = 0; g < a->ngroups; g++) {
    if (!a->groups[g].alive) continue;
    int b = (int)(a->groups[g].hash & (uint64_t)(nbuckets - 1));
    a->groups[g].next = a->buckets[b];
    a->buckets[b] = g;
  }
}

static bool group_key_equal(const aggregate_op *a, const agg_group *g, const vpq_datum *key,
                            const uint8_t *key_null) {
  if (a->nkeys == 0) return true;
  if (g->key0_null != key_null[0] || (!key_null[0] && g->key0.i != key[0].i)) return false;
  for (int k = 1; k < a->nkeys; k++) {
    if (g->key_null[k] != key_null[k]) return false;
    if (!key_null[k] && g->key[k].i != key[k].i) return false;
  }
  return true;
}

static int group_new(aggregate_op *a, uint64_t hash, int64_t start, int64_t end, int level,
                     const vpq_datum *key, const uint8_t *key_null) {
  if ((a->ngroups + 1) * 2 > a->nbuckets) buckets_resize(a, a->nbuckets ? a->nbuckets * 2 : 1024);
  int g;
  if (a->free_list >= 0) {
    g = a->free_list;
    a->free_list = a->groups[g].next;
  } else {
    if (a->ngroups == a->groups_cap) {
      a->groups_cap = a->groups_cap ? a->groups_cap * 2 : 256;
      a->groups = realloc(a->groups, sizeof *a->groups * (size_t)a->groups_cap);
      if (!a->groups) abort();
    }
    g = a->ngroups++;
  }
  agg_group *group = &a->groups[g];
  memset(group, 0, sizeof *group);
  group->hash = hash;
  group->level = level;
  group->start = start;
  group->end = end;
  group->seq = a->next_seq++;
  group->alive = true;
  vpq_runtime *rt = a->base.rt;
  if (++rt->open_groups > rt->stats.peak_groups) rt->stats.peak_groups = rt->open_groups;
  int nout = a->base.schema->ncols;
  size_t bytes = a->state_size + sizeof(vpq_datum) * (size_t)(a->nkeys + nout) + (size_t)(a->nkeys + nout);
  uint8_t *block = malloc(bytes ? bytes : 1);
  if (!block) abort();
  group->state = block;
  group->key = (vpq_datum *)(block + a->state_size);
  group->last = group->key + a->nkeys;
  group->key_null = (uint8_t *)(group->last + nout);
  group->last_null = group->key_null + a->nkeys;
  memcpy(group->key, key, sizeof *key * (size_t)a->nkeys);
  memcpy(group->key_null, key_null, (size_t)a->nkeys);
  if (a->nkeys) {
    group->key0 = key[0];
    group->key0_null = key_null[0];
  }
  for (int i = 0; i < a->sel->naggs; i++) vpq_agg_init(&a->sel->aggs[i].spec, group->state + a->offsets[i]);
  int b = (int)(hash & (uint64_t)(a->nbuckets - 1));
  group->next = a->buckets[b];
  a->buckets[b] = g;
  return g;
}

static void group_free(aggregate_op *a, int g) {
  agg_group *group = &a->groups[g];
  int b = (int)(group->hash & (uint64_t)(a->nbuckets - 1));
  for (int *link = &a->buckets[b]; *link >= 0; link = &a->groups[*link].next) {
    if (*link == g) {
      *link = group->next;
      break;
    }
  }
  for (int i = 0; i < a->sel->naggs; i++) vpq_agg_destroy(&a->sel->aggs[i].spec, group->state + a->offsets[i]);
  free(group->state);
  group->alive = false;
  a->base.rt->open_groups--;
  group->next = a->free_list;
  a->free_list = g;
}

static int group_find(aggregate_op *a, uint64_t hash, int64_t start, int level,
                      const vpq_datum *key, const uint8_t *key_null) {
  if (!a->nbuckets) return -1;
  for (int g = a->buckets[hash & (uint64_t)(a->nbuckets - 1)]; g >= 0; g = a->groups[g].next) {
    const agg_group *group = &a->groups[g];
    if (group->hash == hash && group->start == start && group->level == level &&
        group_key_equal(a, group, key, key_null))
      return g;
  }
  return -1;
}

/* ===== Windows ===== */

/* Finds or inserts the window [start, end) in the sorted window list; returns its index. */
static int window_get(aggregate_op *a, int64_t start, int64_t end) {
  int lo = 0, hi = a->nwindows;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    const agg_window *w = &a->windows[mid];
    if (w->end < end || (w->end == end && w->start < start)) lo = mid + 1;
    else hi = mid;
  }
  if (lo < a->nwindows && a->windows[lo].start == start && a->windows[lo].end == end) return lo;
  if (a->nwindows == a->windows_cap) {
    a->windows_cap = a->windows_cap ? a->windows_cap * 2 : 16;
    a->windows = realloc(a->windows, sizeof *a->windows * (size_t)a->windows_cap);
    if (!a->windows) abort();
  }
  memmove(&a->windows[lo + 1], &a->windows[lo], sizeof *a->windows * (size_t)(a->nwindows - lo));
  a->windows[lo] = (agg_window){start, end, NULL, 0, 0};
  a->nwindows++;
  int64_t close = end + a->sel->window.grace_ms;
  if (close < a->next_close) a->next_close = close;
  return lo;
}

static void window_add_group(agg_window *w, int g) {
  if (w->ngroups == w->cap) {
    w->cap = w->cap ? w->cap * 2 : 16;
    w->groups = realloc(w->groups, sizeof *w->groups * (size_t)w->cap);
    if (!w->groups) abort();
  }
  w->groups[w->ngroups++] = g;
}

/* ===== Output ===== */

static void out_flush(aggregate_op *a) {
  if (a->out && a->out->n) vpq_op_emit(&a->base, a->out);
  a->out = NULL;
}

static void out_room(aggregate_op *a, int rows) {
  if (a->out && a->out->n + rows > a->out->cap) out_flush(a);
  if (!a->out) a->out = vpq_op_batch(a->base.rt, a->base.schema, VPQ_BATCH_ROWS);
}

static void out_append(aggregate_op *a, const vpq_datum *data, const uint8_t *null, int64_t ts, int diff) {
  vpq_batch *out = a->out;
  int at = out->n++;
  for (int c = 0; c < out->ncols; c++) {
    out->cols[c].data[at] = data[c];
    out->cols[c].null[at] = null[c];
  }
  out->ts[at] = ts;
  out->wm[at] = a->base.passed_wm;
  out->diff[at] = (int8_t)diff;
  out->origin[at] = a->out_origin;
}

/* Writes the results of groups[0..n): evaluates HAVING and the SELECT list over the
 * aggregate layout and appends rows (changes mode: only rows that differ from the last). */
static void emit_groups(aggregate_op *a, const int *groups, int n) {
  vpq_runtime *rt = a->base.rt;
  const vpq_plan_select *sel = a->sel;
  bool windowed = sel->window.kind != VPQ_WINDOW_NONE;
  for (int base = 0; base < n; base += VPQ_BATCH_ROWS) {
    int m = n - base < VPQ_BATCH_ROWS ? n - base : VPQ_BATCH_ROWS;
    vpq_batch *layout = vpq_op_batch(rt, &a->layout, m);
    layout->n = m;
    for (int r = 0; r < m; r++) {
      const agg_group *g = &a->groups[groups[base + r]];
      for (int k = 0; k < a->nkeys; k++) {
        bool rolled = k >= a->nkeys - g->level;
        layout->cols[k].data[r] = g->key[k];
        layout->cols[k].null[r] = rolled || g->key_null[k];
      }
      for (int i = 0; i < sel->naggs; i++) {
        vpq_vec *col = &layout->cols[a->nkeys + i];
        col->null[r] = !vpq_agg_final(&sel->aggs[i].spec, g->state + a->offsets[i], &col->data[r]);
      }
      if (windowed) {
        layout->cols[a->nkeys + sel->naggs].data[r].i = g->start;
        layout->cols[a->nkeys + sel->naggs + 1].data[r].i = g->end;
      }
    }
    int *pass = NULL;
    int npass = m;
    if (a->having) {
      pass = vpq_arena_alloc(&rt->scratch, sizeof *pass * (size_t)m);
      npass = vpq_program_select(a->having, layout, pass, &rt->scratch);
    }
    vpq_batch *rows = vpq_op_batch(rt, a->base.schema, m);
    rows->n = m;
    for (int c = 0; c < rows->ncols; c++) {
      if (a->out_progs[c]) vpq_program_eval(a->out_progs[c], layout, &rows->cols[c], &rt->scratch);
      else memset(rows->cols[c].null, 1, (size_t)m);
    }
    int ncols = rows->ncols;
    vpq_datum *data = vpq_arena_alloc(&rt->scratch, sizeof *data * (size_t)(ncols ? ncols : 1));
    uint8_t *null = vpq_arena_alloc(&rt->scratch, (size_t)(ncols ? ncols : 1));
    int next_pass = 0;
    for (int r = 0; r < m; r++) {
      agg_group *g = &a->groups[groups[base + r]];
      bool passes = !a->having;
      if (a->having && next_pass < npass && pass[next_pass] == r) {
        passes = true;
        next_pass++;
      }
      bool live = passes && g->nrows > 0;
      int64_t ts = windowed ? g->end - 1 : a->out_ts;
      vpq_op_copy_row(rows, r, ncols, data, null);
      if (!a->changes) {
        if (!live) continue;
        out_room(a, 1);
        out_append(a, data, null, ts, +1);
        continue;
      }
      if (live && g->emitted && memcmp(g->last_null, null, (size_t)ncols) == 0 &&
          memcmp(g->last, data, sizeof *data * (size_t)ncols) == 0)
        continue;
      if (!live && !g->emitted) continue;
      out_room(a, 2);
      if (g->emitted && a->to_table) out_append(a, g->last, g->last_null, ts, -1);
      if (live) {
        out_append(a, data, null, ts, +1);
        memcpy(g->last, data, sizeof *data * (size_t)ncols);
        memcpy(g->last_null, null, (size_t)ncols);
      }
      g->emitted = live;
    }
  }
}

/* Emits (changes mode) the groups a row changed, then frees those left empty. */
static void emit_dirty(aggregate_op *a) {
  if (!a->ndirty) return;
  emit_groups(a, a->dirty, a->ndirty);
  for (int i = 0; i < a->ndirty; i++) {
    agg_group *g = &a->groups[a->dirty[i]];
    g->dirty = false;
    if (g->nrows <= 0 && a->sel->window.kind == VPQ_WINDOW_NONE) group_free(a, a->dirty[i]);
  }
  a->ndirty = 0;
}

static void mark_dirty(aggregate_op *a, int g) {
  if (!a->changes || a->groups[g].dirty) return;
  a->groups[g].dirty = true;
  if (a->ndirty == a->dirty_cap) {
    a->dirty_cap = a->dirty_cap ? a->dirty_cap * 2 : 64;
    a->dirty = realloc(a->dirty, sizeof *a->dirty * (size_t)a->dirty_cap);
    if (!a->dirty) abort();
  }
  a->dirty[a->ndirty++] = g;
}

/* ===== Closing windows ===== */

static int session_cmp(const void *x, const void *y, void *ctx) {
  const aggregate_op *a = ctx;
  const agg_group *g = &a->groups[*(const int *)x], *h = &a->groups[*(const int *)y];
  if (g->end != h->end) return g->end < h->end ? -1 : 1;
  if (g->start != h->start) return g->start < h->start ? -1 : 1;
  return g->seq < h->seq ? -1 : (g->seq > h->seq);
}

static void close_sessions(aggregate_op *a, int64_t wm) {
  int64_t grace = a->sel->window.grace_ms;
  int *closing = NULL;
  int n = 0;
  int64_t next = VPQ_TS_MAX;
  for (int g = 0; g < a->ngroups; g++) {
    agg_group *group = &a->groups[g];
    if (!group->alive) continue;
    if (group->end + grace <= wm) {
      closing = realloc(closing, sizeof *closing * (size_t)(n + 1));
      if (!closing) abort();
      closing[n++] = g;
    } else if (group->end + grace < next) {
      next = group->end + grace;
    }
  }
  a->next_close = next;
  if (!n) return;
  qsort_r(closing, (size_t)n, sizeof *closing, session_cmp, a);
  if (!a->changes) emit_groups(a, closing, n);
  for (int i = 0; i < n; i++) group_free(a, closing[i]);
  free(closing);
}

/* Advances to watermark `wm`: closes (and under EMIT FINAL writes) what it closes, then
 * passes the watermark on. */
static void advance(aggregate_op *a, int64_t wm) {
  if (wm <= a->wm) return;
  a->wm = wm;
  if (wm >= a->next_close && a->sel->window.kind != VPQ_WINDOW_NONE) {
    if (a->sel->window.kind == VPQ_WINDOW_SESSION) {
      close_sessions(a, wm);
    } else {
      int64_t grace = a->sel->window.grace_ms;
      int closed = 0;
      while (closed < a->nwindows && a->windows[closed].end + grace <= wm) closed++;
      for (int w = 0; w < closed; w++) {
        agg_window *win = &a->windows[w];
        if (!a->changes) emit_groups(a, win->groups, win->ngroups);
        for (int i = 0; i < win->ngroups; i++) group_free(a, win->groups[i]);
        free(win->groups);
      }
      memmove(a->windows, a->windows + closed, sizeof *a->windows * (size_t)(a->nwindows - closed));
      a->nwindows -= closed;
      a->next_close = a->nwindows ? a->windows[0].end + grace : VPQ_TS_MAX;
      for (int w = 1; w < a->nwindows; w++)
        if (a->windows[w].end + grace < a->next_close) a->next_close = a->windows[w].end + grace;
    }
  }
  out_flush(a);
  vpq_op_emit_watermark(&a->base, wm);
}

/* ===== Rows ===== */

static void late_row(aggregate_op *a, const vpq_batch *batch, int row) {
  vpq_runtime *rt = a->base.rt;
  rt->stats.late++;
  if (!a->slot || !a->slot->dl) return;
  char origin[256];
  if (a->slot->src) a->slot->src->vt->format_origin(a->slot->src, batch->origin[row], origin, sizeof origin);
  else snprintf(origin, sizeof origin, "%s", a->sel->from->name);
  vpq_dead_letter_row(a->slot->dl, batch->origin[row].offset, "late", origin, &a->sel->input, batch, row, rt->intern);
  rt->stats.dead_lettered++;
}

static void run_step(aggregate_op *a, const vpq_batch *batch) {
  for (int i = 0; i < a->sel->naggs; i++) {
    const vpq_plan_agg *agg = &a->sel->aggs[i];
    vpq_agg_step_rows(&agg->spec, a->run_states, a->offsets[i], agg->arg ? &a->arg_vecs[i] : NULL,
                      batch->ts, batch->diff, a->run_rows, a->run_n);
  }
  a->run_n = 0;
}

static void run_add(aggregate_op *a, int g, int row) {
  if (a->run_n == a->run_cap) {
    a->run_cap = a->run_cap ? a->run_cap * 2 : VPQ_BATCH_ROWS;
    a->run_states = realloc(a->run_states, sizeof *a->run_states * (size_t)a->run_cap);
    a->run_rows = realloc(a->run_rows, sizeof *a->run_rows * (size_t)a->run_cap);
    if (!a->run_states || !a->run_rows) abort();
  }
  a->run_states[a->run_n] = a->groups[g].state;
  a->run_rows[a->run_n++] = row;
}

/* Adds row `row` to the group (start, end, level, key): finds or creates it, queues it. */
/* The key of rollup level `level`: the last `level` keys rolled up (NULL). */
static void level_key(const aggregate_op *a, int level, const vpq_datum *key, const uint8_t *key_null,
                      vpq_datum *out, uint8_t *out_null) {
  for (int k = 0; k < a->nkeys; k++) {
    bool rolled = k >= a->nkeys - level;
    out[k] = rolled ? (vpq_datum){0} : key[k];
    out_null[k] = rolled ? 1 : key_null[k];
  }
}

static void add_to_group(aggregate_op *a, const vpq_batch *batch, int row, int64_t start,
                         int64_t end, const vpq_datum *row_key, const uint8_t *row_key_null) {
  vpq_datum key[64];
  uint8_t key_null[64];
  for (int level = 0; level < a->nlevels; level++) {
    level_key(a, level, row_key, row_key_null, key, key_null);
    uint64_t hash = group_hash(a, start, level, key, key_null);
    int g = group_find(a, hash, start, level, key, key_null);
    if (g < 0) {
      if (batch->diff[row] < 0) continue; /* retracting a row the group never saw */
      g = group_new(a, hash, start, end, level, key, key_null);
      if (a->sel->window.kind != VPQ_WINDOW_NONE) {
        int w = window_get(a, start, end); /* may move a->windows */
        window_add_group(&a->windows[w], g);
      }
    }
    a->groups[g].nrows += batch->diff[row];
    run_add(a, g, row);
    mark_dirty(a, g);
  }
}

/* Session windows: the row joins (and merges) every session of its key it lies within gap
 * of, or starts a new one. Steps immediately. */
static void add_to_session(aggregate_op *a, const vpq_batch *batch, int row, const vpq_datum *row_key,
                           const uint8_t *row_key_null) {
  int64_t ts = batch->ts[row], gap = a->sel->window.gap_ms;
  vpq_datum key[64];
  uint8_t key_null[64];
  for (int level = 0; level < a->nlevels; level++) {
    level_key(a, level, row_key, row_key_null, key, key_null);
    uint64_t hash = group_hash(a, 0, level, key, key_null);
    int target = -1;
    for (int g = a->nbuckets ? a->buckets[hash & (uint64_t)(a->nbuckets - 1)] : -1; g >= 0;) {
      agg_group *group = &a->groups[g];
      int next = group->next;
      bool mine = group->hash == hash && group->level == level && group_key_equal(a, group, key, key_null);
      if (mine && ts > group->start - gap && ts < group->end) {
        if (target < 0) {
          target = g;
        } else {
          agg_group *t = &a->groups[target];
          for (int i = 0; i < a->sel->naggs; i++)
            vpq_agg_merge(&a->sel->aggs[i].spec, t->state + a->offsets[i], group->state + a->offsets[i]);
          for (int i = 0; i < a->sel->naggs; i++) vpq_agg_init(&a->sel->aggs[i].spec, group->state + a->offsets[i]);
          if (group->start < t->start) t->start = group->start;
          if (group->end > t->end) t->end = group->end;
          if (group->seq < t->seq) t->seq = group->seq;
          t->nrows += group->nrows;
          group_free(a, g);
        }
      }
      g = next;
    }
    if (target < 0) target = group_new(a, hash, ts, ts + gap, level, key, key_null);
    agg_group *t = &a->groups[target];
    if (ts < t->start) t->start = ts;
    if (ts + gap > t->end) t->end = ts + gap;
    t->nrows += batch->diff[row];
    int64_t close = t->end + a->sel->window.grace_ms;
    if (close < a->next_close) a->next_close = close;
    run_add(a, target, row);
    run_step(a, batch);
    mark_dirty(a, target);
  }
}

static void process_row(aggregate_op *a, const vpq_batch *batch, int row, vpq_datum *key, uint8_t *key_null) {
  for (int k = 0; k < a->nkeys; k++) {
    key[k] = a->key_vecs[k].data[row];
    key_null[k] = a->key_vecs[k].null[row];
  }
  const vpq_plan_window *win = &a->sel->window;
  int64_t ts = batch->ts[row];
  switch (win->kind) {
  case VPQ_WINDOW_NONE:
    add_to_group(a, batch, row, 0, 0, key, key_null);
    break;
  case VPQ_WINDOW_SESSION:
    if (ts + win->gap_ms + win->grace_ms <= a->wm) {
      late_row(a, batch, row);
      return;
    }
    add_to_session(a, batch, row, key, key_null);
    break;
  case VPQ_WINDOW_TUMBLING:
  case VPQ_WINDOW_HOPPING: {
    int64_t adv = win->advance_ms;
    int64_t last = vpq_window_last_start(ts, adv);
    int64_t first = vpq_window_first_start(ts, win->size_ms, adv);
    bool late = false;
    for (int64_t start = first; start <= last; start += adv) {
      if (start + win->size_ms + win->grace_ms <= a->wm) {
        late = true;
        continue;
      }
      add_to_group(a, batch, row, start, start + win->size_ms, key, key_null);
    }
    if (late) late_row(a, batch, row);
    break;
  }
  }
}

static void aggregate_push(vpq_op *op, int port, const vpq_batch *batch) {
  (void)port;
  aggregate_op *a = (aggregate_op *)op;
  vpq_runtime *rt = op->rt;
  const vpq_plan_select *sel = a->sel;
  for (int k = 0; k < a->nkeys; k++) {
    a->key_vecs[k].data = vpq_arena_alloc(&rt->scratch, sizeof(vpq_datum) * (size_t)batch->n);
    a->key_vecs[k].null = vpq_arena_alloc(&rt->scratch, (size_t)batch->n);
    vpq_program_eval(a->key_progs[k], batch, &a->key_vecs[k], &rt->scratch);
  }
  for (int i = 0; i < sel->naggs; i++) {
    if (!a->arg_progs[i]) continue;
    a->arg_vecs[i].data = vpq_arena_alloc(&rt->scratch, sizeof(vpq_datum) * (size_t)batch->n);
    a->arg_vecs[i].null = vpq_arena_alloc(&rt->scratch, (size_t)batch->n);
    vpq_program_eval(a->arg_progs[i], batch, &a->arg_vecs[i], &rt->scratch);
  }
  vpq_datum key[64];
  uint8_t key_null[64];
  bool per_row = a->changes || sel->window.kind == VPQ_WINDOW_SESSION;
  for (int row = 0; row < batch->n; row++) {
    if (batch->wm[row] > a->wm) {
      if (batch->wm[row] >= a->next_close && a->run_n) run_step(a, batch);
      if (batch->wm[row] >= a->next_close) {
        advance(a, batch->wm[row]);
      } else {
        a->wm = batch->wm[row];
      }
    }
    process_row(a, batch, row, key, key_null);
    if (per_row) {
      if (a->run_n) run_step(a, batch);
      a->out_ts = batch->ts[row];
      a->out_origin = batch->origin[row];
      if (batch->diff[row] > 0) emit_dirty(a);
    }
  }
  if (a->run_n) run_step(a, batch);
  emit_dirty(a);
  out_flush(a);
}

static void aggregate_watermark(vpq_op *op, int port, int64_t wm) {
  (void)port;
  aggregate_op *a = (aggregate_op *)op;
  if (wm > a->wm) {
    advance(a, wm);
  } else {
    vpq_op_emit_watermark(op, wm);
  }
}

static void aggregate_describe(const vpq_op *op, vpq_buf *out) {
  const aggregate_op *a = (const aggregate_op *)op;
  const vpq_plan_select *sel = a->sel;
  const vpq_plan_window *w = &sel->window;
  char text[512];
  static const char *const kinds[] = {"", "TUMBLING", "HOPPING", "SESSION"};
  if (w->kind != VPQ_WINDOW_NONE) {
    vpq_buf_printf(out, "window=%s", kinds[w->kind]);
    if (w->kind == VPQ_WINDOW_SESSION) vpq_buf_printf(out, " gap=%lldms", (long long)w->gap_ms);
    else vpq_buf_printf(out, " size=%lldms advance=%lldms", (long long)w->size_ms, (long long)w->advance_ms);
    vpq_buf_printf(out, " grace=%lldms ", (long long)w->grace_ms);
  }
  vpq_buf_printf(out, "%s[", sel->rollup ? "rollup" : "keys");
  for (int k = 0; k < sel->ngroup_keys; k++)
    vpq_buf_printf(out, "%s%s", k ? ", " : "", vpq_bexpr_format(sel->group_keys[k], &sel->input, text, sizeof text));
  vpq_buf_puts(out, "] aggs[");
  for (int i = 0; i < sel->naggs; i++) {
    vpq_buf_printf(out, "%s%s(", i ? ", " : "", vpq_agg_name(sel->aggs[i].spec.kind));
    if (sel->aggs[i].arg) vpq_buf_puts(out, vpq_bexpr_format(sel->aggs[i].arg, &sel->input, text, sizeof text));
    else if (sel->aggs[i].spec.kind == VPQ_AGG_COUNT_STAR) vpq_buf_puts(out, "*");
    vpq_buf_puts(out, ")");
  }
  vpq_buf_printf(out, "] emit=%s%s", a->changes ? "CHANGES" : "FINAL", sel->input_is_changelog ? " retracting" : "");
  if (sel->having) vpq_buf_printf(out, " having %s", vpq_bexpr_format(sel->having, &a->layout, text, sizeof text));
}

static void aggregate_destroy(vpq_op *op) {
  aggregate_op *a = (aggregate_op *)op;
  for (int g = 0; g < a->ngroups; g++)
    if (a->groups[g].alive) group_free(a, g);
  for (int w = 0; w < a->nwindows; w++) free(a->windows[w].groups);
  free(a->windows);
  free(a->groups);
  free(a->buckets);
  free(a->dirty);
  free(a->run_states);
  free(a->run_rows);
}

static const vpq_op_vt aggregate_vt = {"Aggregate", aggregate_push, aggregate_watermark,
                                       aggregate_describe, aggregate_destroy, NULL, NULL};
static const vpq_op_vt window_aggregate_vt = {"WindowAggregate", aggregate_push, aggregate_watermark,
                                              aggregate_describe, aggregate_destroy, NULL, NULL};

vpq_op *vpq_op_aggregate_new(vpq_runtime *rt, vpq_arena *arena, const vpq_plan_query *query,
                             const vpq_source_slot *slot) {
  aggregate_op *a = calloc(1, sizeof *a);
  if (!a) abort();
  const vpq_plan_select *sel = &query->select;
  vpq_op_init(&a->base, sel->window.kind == VPQ_WINDOW_NONE ? &aggregate_vt : &window_aggregate_vt, rt,
              &query->target->schema);
  a->query = query;
  a->sel = sel;
  a->slot = slot;
  a->to_table = query->target->kind == VPQ_REL_TABLE;
  a->changes = sel->emit == VPQ_EMIT_CHANGES || sel->window.kind == VPQ_WINDOW_NONE;
  a->nkeys = sel->ngroup_keys;
  a->nlevels = sel->rollup ? sel->ngroup_keys + 1 : 1;
  a->free_list = -1;
  a->wm = VPQ_TS_MIN;
  a->next_close = VPQ_TS_MAX;
  a->offsets = vpq_arena_alloc(arena, sizeof *a->offsets * (size_t)(sel->naggs + 1));
  for (int i = 0; i < sel->naggs; i++) {
    vpq_plan_agg *agg = &sel->aggs[i];
    agg->spec.intern = rt->intern;
    agg->spec.retracting = sel->input_is_changelog;
    a->offsets[i] = a->state_size;
    a->state_size += (vpq_agg_state_size(&agg->spec) + 15) & ~(size_t)15;
  }
  a->key_progs = vpq_arena_alloc(arena, sizeof *a->key_progs * (size_t)(a->nkeys + 1));
  a->key_vecs = vpq_arena_alloc(arena, sizeof *a->key_vecs * (size_t)(a->nkeys + 1));
  for (int k = 0; k < a->nkeys; k++) a->key_progs[k] = vpq_expr_compile(arena, sel->group_keys[k], rt->intern);
  a->arg_progs = vpq_arena_alloc(arena, sizeof *a->arg_progs * (size_t)(sel->naggs + 1));
  a->arg_vecs = vpq_arena_alloc(arena, sizeof *a->arg_vecs * (size_t)(sel->naggs + 1));
  for (int i = 0; i < sel->naggs; i++) {
    if (!sel->aggs[i].arg) continue;
    a->arg_progs[i] = vpq_expr_compile(arena, sel->aggs[i].arg, rt->intern);
    a->arg_vecs[i].type = sel->aggs[i].arg->type;
  }
  bool windowed = sel->window.kind != VPQ_WINDOW_NONE;
  a->layout.ncols = a->nkeys + sel->naggs + (windowed ? 2 : 0);
  a->layout.cols = vpq_arena_alloc(arena, sizeof *a->layout.cols * (size_t)(a->layout.ncols + 1));
  for (int k = 0; k < a->nkeys; k++) {
    char text[256];
    a->layout.cols[k] = (vpq_column){vpq_arena_strdup(arena, vpq_bexpr_format(sel->group_keys[k], &sel->input, text, sizeof text)),
                                     sel->group_keys[k]->type, true, false};
  }
  for (int i = 0; i < sel->naggs; i++)
    a->layout.cols[a->nkeys + i] = (vpq_column){vpq_agg_name(sel->aggs[i].spec.kind), sel->aggs[i].spec.result_type, false, false};
  if (windowed) {
    a->layout.cols[a->nkeys + sel->naggs] = (vpq_column){"WINDOW_START", VPQ_TYPE_TIMESTAMP, false, false};
    a->layout.cols[a->nkeys + sel->naggs + 1] = (vpq_column){"WINDOW_END", VPQ_TYPE_TIMESTAMP, false, false};
  }
  if (sel->having) a->having = vpq_expr_compile(arena, sel->having, rt->intern);
  int ncols = query->target->schema.ncols;
  /* One group: its struct, a hash-chain and a window-list slot, aggregate states, key and last
   * output row (heap parts of exact aggregates such as percentile come on top). */
  int64_t bytes = (int64_t)(sizeof(agg_group) + 2 * sizeof(int) + a->state_size +
                            (sizeof(vpq_datum) + 1) * (size_t)(a->nkeys + ncols));
  if (bytes > rt->stats.group_bytes) rt->stats.group_bytes = bytes;
  a->out_progs = vpq_arena_alloc(arena, sizeof *a->out_progs * (size_t)(ncols + 1));
  for (int i = 0; i < sel->noutputs; i++) {
    int target = query->column_map[i];
    if (target >= 0) a->out_progs[target] = vpq_expr_compile(arena, sel->outputs[i], rt->intern);
  }
  return &a->base;
}
