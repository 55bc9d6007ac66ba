/* vpq_op_aggregate.c — aggregation: windows on event time, keyed tables, ROLLUP, HAVING,
 * EMIT FINAL / EMIT CHANGES, retractions of table inputs, and late rows.
 *
 * State is a set of groups. A group is one (window, rollup level, key) with a block of
 * aggregate states (vpq_agg.h) and the last row it emitted:
 *
 *   buckets[hash] ─► group ─► group ─► ...        (chained; key = window start, level, keys)
 *   windows[] sorted by (end, start) ─► groups in creation order   (tumbling, hopping)
 *   sessions: groups of one key chained under the key's hash; a row merges the open sessions
 *             it touches (gaps strictly less than the session gap); a row touching none is
 *             late when a session of it alone would be closed already
 *
 * Rows are processed in order. Before row i, the operator advances to the row's watermark
 * wm[i]: every window with end + grace <= wm closes and, under EMIT FINAL, is written
 * (ordered by end, start, group creation). The emitted rows carry the watermark the
 * operator had passed on before, and their event time is WINDOW_END - 1, so a downstream
 * window of the same alignment receives them before it closes. The watermark passed on is
 * the input's less the grace period, so that the rows of windows still open within their grace
 * are not late downstream either.
 *
 * The hot path (EMIT FINAL, tumbling/hopping) works in runs: while no window closes, rows
 * only look up their group; then each aggregate steps the whole run in one tight loop
 * (vpq_agg_step_rows). EMIT CHANGES and tables step and emit after each row: a row's changed
 * groups are written when the new output differs from the last one written for the group
 * (tables write the old row with diff -1 before the new one). Over a table, the rows of one
 * upstream change (one source row: retractions and additions of the keys it changed, e.g. of
 * every ROLLUP level) are applied first and written as one change, its groups ordered by
 * window start, then ROLLUP level (finest first), then the order the change reached them; a
 * retraction alone (a key that left the upstream table) is a change too.
 *
 * With `max_keys` set (WITH (max_keys = n) on the query's relation), the distinct GROUP BY
 * keys that have open groups are counted in a key set; once n keys are open, a row of a new
 * key is refused (counted, dead-lettered with reason "max_keys: ...") while the open keys keep
 * updating. A key leaves the set when its last group closes or, over a table, as soon as a
 * retraction empties its group (before the rest of that change: a row moving between keys frees
 * the old key's place for the new one). Over a table the refused rows are remembered, so that
 * their retractions, which have nothing to retract, are ignored as well.
 *
 * A table's retraction carries the event time of the change that retracts, not of the row it
 * retracts. first, last, integrate and time_weighted_avg order their values by the rows' own
 * event times, then by arrival, so an aggregation over a table that has one of them numbers
 * the rows it is given (`added_seq`), remembers each with its event time and number (`added`),
 * and steps a retraction with those of the row it takes away (the earliest copy, for identical
 * rows).
 *
 * Late and refused rows go to the dead-letter output of the source each row comes from
 * (vpq_batch.source), written as the input layout with its joined columns' names made unique.
 *
 * A repartitioned aggregation remembers which partition of the internal topic each group's
 * rows come from, and drops a partition's groups unwritten when a rebalance takes it away
 * ("Partitions of the internal topic lost" below).
 *
 * Checkpoints write the state slot for slot (see "Checkpoints" below), so a restored operator
 * continues exactly as the one that was saved.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "vpq_expr.h"
#include "vpq_op.h"
#include "vpq_window.h"

enum { GROUP_INLINE_STATE = 80 }; /* bytes of aggregate states a slot holds itself */

/* A group slot, 192 bytes, 64-byte aligned. What a row's lookup and step touch fills the first
 * two cache lines: the lookup fields, then the aggregate states when they fit in
 * GROUP_INLINE_STATE bytes (count, sum, avg, min, max...: a row costs two lines); larger states
 * live in a block of their own. The third line holds what closing, emitting and checkpoints
 * need. */
typedef struct agg_group {
  uint64_t hash;
  int64_t start;      /* window (session: first ts) */
  vpq_datum key0;     /* the first key, kept inline so that a lookup rarely leaves the line */
  int64_t nrows;      /* rows currently in the group (inserts minus retractions) */
  uint8_t *state;     /* inline_state, or the group's block */
  int next;           /* bucket chain; -1 ends */
  int8_t level;       /* rollup level: keys from ngroup_keys - level on are rolled up */
  uint8_t key0_null;
  bool dirty;
  bool alive;
  _Alignas(16) uint8_t inline_state[GROUP_INLINE_STATE];
  /* ---- third cache line ---- */
  int64_t end;        /* window end (session: last ts + gap) */
  int64_t seq;        /* creation order */
  vpq_datum *key;     /* the key and the last row written: the group's block */
  uint8_t *key_null;
  vpq_datum *last;    /* the last output row written (target schema) */
  uint8_t *last_null;
  bool emitted;
  bool key_held;      /* max_keys: the group counts for its key in the key set */
  int32_t partition;  /* the internal topic's partition its rows are read from (-1: none) */
  int prev;           /* bucket chain, backwards (-1: the bucket's first): unlinking is O(1) */
} agg_group;

_Static_assert(offsetof(agg_group, inline_state) == 48 && sizeof(agg_group) == 192,
               "a group slot is three cache lines, the states starting in the first");

/* A row of a multiset of rows: a GROUP BY key with open groups (max_keys), an input row that
 * was refused (max_keys), or an input row added (`added`). */
typedef struct agg_key {
  uint64_t hash;
  int next;        /* hash chain, or the free list */
  int64_t count;   /* open level-0 groups with this key, or copies of the row; 0: free */
  vpq_datum *key;  /* the row's values, then its null flags (one malloc) */
  int64_t *times;  /* `added` only: the event time and arrival number of each copy, in the order they came */
} agg_key;

/* A hash multiset of rows of `ncols` values. */
typedef struct agg_rowset {
  agg_key *e;
  int n, cap, free;
  int *buckets;
  int nbuckets;
  int ncols;
  int64_t live;    /* distinct rows held */
} agg_rowset;

/* A session's close time when it was queued (sessions_queue): a heap entry, valid while the
 * group in slot g is the same session (seq). The session may close later than `at` (its end
 * grew since): the entry is then queued again at its close time when it comes up. */
typedef struct agg_close {
  int64_t at, seq;
  int g;
} agg_close;

typedef struct agg_window {
  int64_t start, end;
  int *groups;
  int ngroups, cap;
} agg_window;

/* A table's row of a session that a merge absorbed into `target`: retracted just before the
 * target's own change is written, so that the two are one change downstream. */
typedef struct agg_absorbed {
  int target;
  vpq_datum *row; /* the row last written for the absorbed session, and its NULLs after it */
} agg_absorbed;

typedef struct aggregate_op {
  vpq_op base;
  const vpq_plan_query *query;
  const vpq_plan_select *sel;
  const vpq_source_slot *slots; /* every relation's connectors (by index), for dead letters */
  bool to_table;       /* the target is a table: write -1/+1 changelog pairs */
  agg_absorbed *absorbed; /* sessions absorbed since the last emit_dirty (tables only) */
  int nabsorbed, absorbed_cap;
  bool changes;        /* EMIT CHANGES (or a table without a window) */
  int nlevels;
  int nkeys;
  size_t *offsets;     /* per aggregate, into a group's state block */
  size_t state_size;
  vpq_program **key_progs;
  vpq_program **arg_progs;
  vpq_program *having;
  vpq_program **out_progs; /* per target column; NULL = NULL column */
  bool partitioned;        /* input rows carry their internal topic's partition after the input columns,
                              then their writer's watermark (late_watermark) */
  vpq_schema layout;       /* keys, aggregates, WINDOW_START, WINDOW_END, GROUPING flags */
  vpq_schema dead_schema;  /* the input layout as dead letters name it: unique column names */

  agg_group *groups;
  int ngroups, groups_cap;
  int free_list;
  int *buckets;
  int nbuckets;
  int64_t next_seq;
  agg_window *windows; /* sorted by (end, start) */
  int nwindows, windows_cap;
  int64_t next_close;  /* smallest end + grace of an open window or session */
  agg_close *closes;   /* sessions: a min-heap of close times, stale entries among them */
  int ncloses, closes_cap;
  int64_t wm;          /* the watermark processed so far */
  int *dirty;
  int ndirty, dirty_cap;

  /* max_keys */
  int64_t max_keys;    /* 0: unbounded */
  int64_t rejected;    /* rows refused because the key set was full (the first is logged) */
  agg_rowset keys;     /* the keys held: with open level-0 groups */
  agg_rowset refused;  /* over a changelog: the rows refused and not yet retracted */
  agg_rowset added;    /* over a changelog, with timed aggregates: the rows added, with their times */
  int64_t added_seq;   /* the rows added so far: the next row's arrival number */
  bool timed;          /* over a changelog, some aggregate orders values by event time */
  int64_t *step_ts, *step_seq; /* timed: per row of the batch, the event time and arrival number its
                                  aggregates step it at */
  int step_cap;
  vpq_datum *refused_row; /* scratch: an input row's values, then its null flags */

  int64_t start_seen;  /* the last window start of the row before, when start_known */
  bool start_known;

  /* per batch */
  vpq_vec *key_vecs;
  vpq_vec *arg_vecs;
  int *run_groups;       /* the run: rows and their groups, stepped together */
  uint8_t **run_states;  /* the groups' states, gathered when the run is stepped */
  int *run_rows;
  int run_n, run_cap;
  vpq_batch *out;
  int out_cap;         /* windowed: rows of the next output batch (see out_flush); 0: a full one */
  int64_t out_ts;      /* event time for table changes: the triggering row's */
  vpq_origin out_origin;
} aggregate_op;

/* ===== The group hash table ===== */

static uint64_t group_hash(const aggregate_op *a, int64_t start, int level, const vpq_datum *key,
                           const uint8_t *key_null) {
  uint64_t seed = (uint64_t)start * 0x9e3779b97f4a7c15ull + (uint64_t)level;
  return vpq_op_hash_datums(key, key_null, a->nkeys, seed);
}

/* Rehashes into `nbuckets` buckets. Groups that shared a chain keep their order in it (the
 * sessions of a key rely on it: add_to_session). */
static void buckets_resize(aggregate_op *a, int nbuckets) {
  int *old = a->buckets, nold = a->nbuckets;
  int *buckets = malloc(sizeof *buckets * (size_t)nbuckets), *tails = malloc(sizeof *tails * (size_t)nbuckets);
  if (!buckets || !tails) abort();
  for (int b = 0; b < nbuckets; b++) buckets[b] = tails[b] = -1;
  for (int ob = 0; ob < nold; ob++)
    for (int g = old[ob], next; g >= 0; g = next) {
      agg_group *group = &a->groups[g];
      next = group->next;
      int b = (int)(group->hash & (uint64_t)(nbuckets - 1));
      group->prev = tails[b];
      group->next = -1;
      if (tails[b] >= 0) a->groups[tails[b]].next = g;
      else buckets[b] = g;
      tails[b] = g;
    }
  free(old);
  free(tails);
  a->buckets = buckets;
  a->nbuckets = nbuckets;
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

/* ===== The key set and the refused rows (max_keys) ===== */

static int rowset_find(const agg_rowset *set, uint64_t hash, const vpq_datum *row, const uint8_t *row_null) {
  if (!set->nbuckets) return -1;
  for (int k = set->buckets[hash & (uint64_t)(set->nbuckets - 1)]; k >= 0; k = set->e[k].next) {
    const agg_key *e = &set->e[k];
    const uint8_t *e_null = (const uint8_t *)(e->key + set->ncols);
    bool equal = e->hash == hash;
    for (int c = 0; c < set->ncols && equal; c++)
      equal = e_null[c] == row_null[c] && (row_null[c] || e->key[c].i == row[c].i);
    if (equal) return k;
  }
  return -1;
}

/* True when the set holds `row`. */
static bool rowset_has(const agg_rowset *set, const vpq_datum *row, const uint8_t *row_null) {
  return rowset_find(set, vpq_op_hash_datums(row, row_null, set->ncols, 0), row, row_null) >= 0;
}

static void rowset_rehash(agg_rowset *set) {
  int nbuckets = set->nbuckets ? set->nbuckets * 2 : 256;
  free(set->buckets);
  set->buckets = malloc(sizeof *set->buckets * (size_t)nbuckets);
  if (!set->buckets) abort();
  for (int b = 0; b < nbuckets; b++) set->buckets[b] = -1;
  set->nbuckets = nbuckets;
  for (int k = 0; k < set->n; k++) {
    if (!set->e[k].count) continue;
    int b = (int)(set->e[k].hash & (uint64_t)(nbuckets - 1));
    set->e[k].next = set->buckets[b];
    set->buckets[b] = k;
  }
}

/* Adds (delta > 0) or removes (delta < 0) copies of `row`; a row whose count reaches 0 leaves
 * the set, and removing a row the set does not hold does nothing. */
static void rowset_ref(agg_rowset *set, const vpq_datum *row, const uint8_t *row_null, int delta) {
  uint64_t hash = vpq_op_hash_datums(row, row_null, set->ncols, 0);
  int k = rowset_find(set, hash, row, row_null);
  if (k >= 0) {
    agg_key *e = &set->e[k];
    if ((e->count += delta) > 0) return;
    int *link = &set->buckets[hash & (uint64_t)(set->nbuckets - 1)];
    while (*link != k) link = &set->e[*link].next;
    *link = e->next;
    free(e->key);
    free(e->times);
    e->key = NULL;
    e->times = NULL;
    e->count = 0;
    e->next = set->free;
    set->free = k;
    set->live--;
    return;
  }
  if (delta < 0) return;
  if ((set->live + 1) * 2 > set->nbuckets) rowset_rehash(set);
  if (set->free >= 0) {
    k = set->free;
    set->free = set->e[k].next;
  } else {
    if (set->n == set->cap) {
      set->cap = set->cap ? set->cap * 2 : 256;
      set->e = realloc(set->e, sizeof *set->e * (size_t)set->cap);
      if (!set->e) abort();
    }
    k = set->n++;
  }
  agg_key *e = &set->e[k];
  e->hash = hash;
  e->count = delta;
  e->times = NULL;
  e->key = malloc((sizeof *row + 1) * (size_t)set->ncols + 1);
  if (!e->key) abort();
  memcpy(e->key, row, sizeof *row * (size_t)set->ncols);
  memcpy((uint8_t *)(e->key + set->ncols), row_null, (size_t)set->ncols);
  int b = (int)(hash & (uint64_t)(set->nbuckets - 1));
  e->next = set->buckets[b];
  set->buckets[b] = k;
  set->live++;
}

/* Empties the set (it keeps its width). */
static void rowset_free_all(agg_rowset *set) {
  for (int k = 0; k < set->n; k++) free(set->e[k].key), free(set->e[k].times);
  free(set->e);
  free(set->buckets);
  *set = (agg_rowset){.free = -1, .ncols = set->ncols};
}

/* Adds a copy of `row`, added at event time ts with arrival number seq, to the `added` set. */
static void added_push(agg_rowset *set, const vpq_datum *row, const uint8_t *row_null, int64_t ts, int64_t seq) {
  rowset_ref(set, row, row_null, +1);
  agg_key *e = &set->e[rowset_find(set, vpq_op_hash_datums(row, row_null, set->ncols, 0), row, row_null)];
  e->times = realloc(e->times, sizeof *e->times * 2 * (size_t)e->count);
  if (!e->times) abort();
  e->times[2 * e->count - 2] = ts;
  e->times[2 * e->count - 1] = seq;
}

/* Takes the earliest copy of `row` from the `added` set into *ts and *seq; false when the set
 * does not hold it. */
static bool added_pop(agg_rowset *set, const vpq_datum *row, const uint8_t *row_null, int64_t *ts, int64_t *seq) {
  int k = rowset_find(set, vpq_op_hash_datums(row, row_null, set->ncols, 0), row, row_null);
  if (k < 0) return false;
  agg_key *e = &set->e[k];
  *ts = e->times[0];
  *seq = e->times[1];
  memmove(e->times, e->times + 2, sizeof *e->times * 2 * (size_t)(e->count - 1));
  rowset_ref(set, row, row_null, -1);
  return true;
}

/* Over a changelog with timed aggregates: the event time and arrival number row `row` steps
 * its aggregates at (a retraction's, those of its row when added), the row added to or taken
 * from `added`. */
static void timed_step(aggregate_op *a, const vpq_batch *batch, int row) {
  const int ncols = a->added.ncols;
  vpq_datum *values = a->refused_row;
  uint8_t *null = (uint8_t *)(a->refused_row + ncols);
  for (int c = 0; c < ncols; c++) {
    values[c] = batch->cols[c].null[row] ? (vpq_datum){0} : batch->cols[c].data[row];
    null[c] = batch->cols[c].null[row];
  }
  a->step_ts[row] = batch->ts[row];
  a->step_seq[row] = -1; /* a retraction of a row never added: it matches no sample */
  if (batch->diff[row] < 0) {
    added_pop(&a->added, values, null, &a->step_ts[row], &a->step_seq[row]);
    return;
  }
  a->step_seq[row] = a->added_seq++;
  added_push(&a->added, values, null, a->step_ts[row], a->step_seq[row]);
}

/* ===== Groups ===== */

static bool states_inline(const aggregate_op *a) { return a->state_size <= GROUP_INLINE_STATE; }

/* Gives the (zeroed) `group` its aggregate states, initialised, and its heap block: the states
 * when they do not fit inline, then the key and the last output row. */
static void group_alloc(aggregate_op *a, agg_group *group) {
  int nout = a->base.schema->ncols;
  size_t own = states_inline(a) ? 0 : a->state_size;
  size_t bytes = own + sizeof(vpq_datum) * (size_t)(a->nkeys + nout) + (size_t)(a->nkeys + nout);
  uint8_t *block = calloc(1, bytes ? bytes : 1);
  if (!block) abort();
  group->state = own ? block : group->inline_state;
  group->key = (vpq_datum *)(block + own);
  group->last = group->key + a->nkeys;
  group->key_null = (uint8_t *)(group->last + nout);
  group->last_null = group->key_null + a->nkeys;
  for (int i = 0; i < a->sel->naggs; i++) vpq_agg_init(&a->sel->aggs[i].spec, group->state + a->offsets[i]);
}

/* Destroys the aggregate states of a live group and frees its block. */
static void group_release(aggregate_op *a, agg_group *group) {
  for (int i = 0; i < a->sel->naggs; i++) vpq_agg_destroy(&a->sel->aggs[i].spec, group->state + a->offsets[i]);
  free(states_inline(a) ? (void *)group->key : (void *)group->state);
  group->state = NULL;
}

/* Grows the slot array to `cap` slots, 64-byte aligned (see agg_group); new slots are zero.
 * Inline states move with their slots. */
static void groups_reserve(aggregate_op *a, int cap) {
  agg_group *groups = aligned_alloc(64, sizeof *groups * (size_t)cap);
  if (!groups) abort();
  if (a->ngroups) memcpy(groups, a->groups, sizeof *groups * (size_t)a->ngroups);
  memset(groups + a->ngroups, 0, sizeof *groups * (size_t)(cap - a->ngroups));
  for (int g = 0; g < a->ngroups && states_inline(a); g++)
    if (groups[g].state) groups[g].state = groups[g].inline_state;
  free(a->groups);
  a->groups = groups;
  a->groups_cap = cap;
}

static int group_new(aggregate_op *a, uint64_t hash, int64_t start, int64_t end, int level,
                     const vpq_datum *key, const uint8_t *key_null, int32_t partition) {
  if ((a->ngroups + 1) * 2 > a->nbuckets) buckets_resize(a, a->nbuckets ? a->nbuckets * 2 : 1024);
  int g;
  if (a->free_list >= 0) {
    g = a->free_list;
    a->free_list = a->groups[g].next;
  } else {
    if (a->ngroups == a->groups_cap) groups_reserve(a, a->groups_cap ? a->groups_cap * 2 : 256);
    g = a->ngroups++;
  }
  agg_group *group = &a->groups[g];
  memset(group, 0, sizeof *group);
  group->hash = hash;
  group->level = (int8_t)level;
  group->start = start;
  group->end = end;
  group->seq = a->next_seq++;
  group->alive = true;
  group->partition = partition;
  vpq_runtime *rt = a->base.rt;
  if (++rt->open_groups > rt->stats.peak_groups) rt->stats.peak_groups = rt->open_groups;
  group_alloc(a, group);
  memcpy(group->key, key, sizeof *key * (size_t)a->nkeys);
  memcpy(group->key_null, key_null, (size_t)a->nkeys);
  if (a->nkeys) {
    group->key0 = key[0];
    group->key0_null = key_null[0];
  }
  if (a->max_keys && level == 0) {
    rowset_ref(&a->keys, key, key_null, +1);
    group->key_held = true;
  }
  int b = (int)(hash & (uint64_t)(a->nbuckets - 1));
  group->next = a->buckets[b];
  group->prev = -1;
  if (a->buckets[b] >= 0) a->groups[a->buckets[b]].prev = g;
  a->buckets[b] = g;
  return g;
}

static void group_free(aggregate_op *a, int g) {
  agg_group *group = &a->groups[g];
  if (group->prev >= 0) a->groups[group->prev].next = group->next;
  else a->buckets[group->hash & (uint64_t)(a->nbuckets - 1)] = group->next;
  if (group->next >= 0) a->groups[group->next].prev = group->prev;
  if (group->key_held) rowset_ref(&a->keys, group->key, group->key_null, -1);
  group_release(a, group);
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

/* Passes the output batch on. A windowed aggregation flushes its output before every watermark
 * it passes on, often after a window or two closed: its next batch has room for twice the rows
 * of this one (16 to a full batch), so that a close per input row does not take (and zero) a
 * whole batch of scratch memory each time. */
static void out_flush(aggregate_op *a) {
  if (!a->out) return;
  int cap = 2 * a->out->n;
  a->out_cap = cap < 16 ? 16 : cap > VPQ_BATCH_ROWS ? VPQ_BATCH_ROWS : cap;
  if (a->out->n) vpq_op_emit(&a->base, a->out);
  a->out = NULL;
}

static void out_room(aggregate_op *a, int rows) {
  if (a->out && a->out->n + rows > a->out->cap) out_flush(a);
  if (!a->out) {
    int cap = a->sel->window.kind != VPQ_WINDOW_NONE && a->out_cap ? a->out_cap : VPQ_BATCH_ROWS;
    a->out = vpq_op_batch(a->base.rt, a->base.schema, cap > rows ? cap : rows);
  }
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

/* Session g is absorbed into session target: its row written to a table (if any) is queued to
 * be retracted right before target's change (emit_groups), and so are the rows of the sessions
 * it had absorbed itself. */
static void session_absorb(aggregate_op *a, int g, int target) {
  for (int i = 0; i < a->nabsorbed; i++)
    if (a->absorbed[i].target == g) a->absorbed[i].target = target;
  const agg_group *group = &a->groups[g];
  if (!a->to_table || !group->emitted) return;
  if (a->nabsorbed == a->absorbed_cap) {
    a->absorbed_cap = a->absorbed_cap ? 2 * a->absorbed_cap : 4;
    a->absorbed = realloc(a->absorbed, sizeof *a->absorbed * (size_t)a->absorbed_cap);
    if (!a->absorbed) abort();
  }
  int ncols = a->base.schema->ncols;
  vpq_datum *row = malloc(sizeof *row * (size_t)ncols + (size_t)ncols + 1);
  if (!row) abort();
  memcpy(row, group->last, sizeof *row * (size_t)ncols);
  memcpy(row + ncols, group->last_null, (size_t)ncols);
  a->absorbed[a->nabsorbed++] = (agg_absorbed){target, row};
}

/* Writes (and forgets) the retractions queued for group g, with event time ts. */
static void write_absorbed(aggregate_op *a, int g, int64_t ts) {
  int kept = 0, ncols = a->base.schema->ncols;
  for (int i = 0; i < a->nabsorbed; i++) {
    agg_absorbed *x = &a->absorbed[i];
    if (x->target != g) {
      a->absorbed[kept++] = *x;
      continue;
    }
    out_room(a, 1);
    out_append(a, x->row, (const uint8_t *)(x->row + ncols), ts, -1);
    free(x->row);
  }
  a->nabsorbed = kept;
}

/* Whether two output rows are the same row: the same NULLs, the same values where not NULL (a
 * NULL column's datum is whatever its evaluation left there). */
static bool same_row(const vpq_datum *a, const uint8_t *a_null, const vpq_datum *b, const uint8_t *b_null, int ncols) {
  if (memcmp(a_null, b_null, (size_t)ncols) != 0) return false;
  for (int c = 0; c < ncols; c++)
    if (!a_null[c] && memcmp(&a[c], &b[c], sizeof *a) != 0) return false;
  return true;
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
      for (int k = 0; k < a->nkeys && sel->rollup; k++)
        layout->cols[a->nkeys + sel->naggs + (windowed ? 2 : 0) + k].data[r].i = k >= a->nkeys - g->level;
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
      if (a->nabsorbed) write_absorbed(a, groups[base + r], ts);
      vpq_op_copy_row(rows, r, ncols, data, null);
      if (!a->changes) {
        if (!live) continue;
        out_room(a, 1);
        out_append(a, data, null, ts, +1);
        continue;
      }
      if (live && g->emitted && same_row(g->last, g->last_null, data, null, ncols)) continue;
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

/* The order in which one change writes the groups it changed: by window start (tumbling,
 * hopping), then ROLLUP level, finest first, then the order the change reached them (over a
 * table its retractions come before its additions). */
typedef struct dirty_rank {
  int64_t start;
  int level, at, group;
} dirty_rank;

static int dirty_rank_cmp(const void *x, const void *y) {
  const dirty_rank *p = x, *q = y;
  if (p->start != q->start) return p->start < q->start ? -1 : 1;
  if (p->level != q->level) return p->level - q->level;
  return p->at - q->at;
}

/* Sorts the dirty groups into the order they are written (dirty_rank); a single input row's
 * groups are in that order already. */
static void sort_dirty(aggregate_op *a) {
  bool by_start = a->sel->window.kind == VPQ_WINDOW_TUMBLING || a->sel->window.kind == VPQ_WINDOW_HOPPING;
  dirty_rank *ranks = vpq_arena_alloc(&a->base.rt->scratch, sizeof *ranks * (size_t)a->ndirty);
  bool sorted = true;
  for (int i = 0; i < a->ndirty; i++) {
    const agg_group *g = &a->groups[a->dirty[i]];
    ranks[i] = (dirty_rank){by_start ? g->start : 0, g->level, i, a->dirty[i]};
    sorted = sorted && (i == 0 || dirty_rank_cmp(&ranks[i - 1], &ranks[i]) < 0);
  }
  if (sorted) return;
  qsort(ranks, (size_t)a->ndirty, sizeof *ranks, dirty_rank_cmp);
  for (int i = 0; i < a->ndirty; i++) a->dirty[i] = ranks[i].group;
}

/* Emits (changes mode) the groups a change made dirty, in the order of dirty_rank, then frees
 * those left empty. */
static void emit_dirty(aggregate_op *a) {
  if (!a->ndirty) return;
  if (a->nlevels > 1 || a->sel->input_is_changelog) sort_dirty(a);
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

/* Queues session g's close time (end + grace) in the heap of close times, and lowers
 * next_close to it. Called when a session starts or its seq changes (a merge; the entry it had
 * goes stale), not when its end grows: each open session has one valid entry. */
static void sessions_queue(aggregate_op *a, int g) {
  const agg_group *group = &a->groups[g];
  if (a->ncloses == a->closes_cap) {
    a->closes_cap = a->closes_cap ? 2 * a->closes_cap : 256;
    a->closes = realloc(a->closes, sizeof *a->closes * (size_t)a->closes_cap);
    if (!a->closes) abort();
  }
  const agg_close entry = {group->end + a->sel->window.grace_ms, group->seq, g};
  int at = a->ncloses++;
  while (at > 0 && entry.at < a->closes[(at - 1) / 2].at) {
    a->closes[at] = a->closes[(at - 1) / 2];
    at = (at - 1) / 2;
  }
  a->closes[at] = entry;
  if (entry.at < a->next_close) a->next_close = entry.at;
}

/* Takes the earliest entry off the heap of close times. */
static agg_close sessions_pop(aggregate_op *a) {
  const agg_close top = a->closes[0], last = a->closes[--a->ncloses];
  int at = 0;
  for (;;) {
    int child = 2 * at + 1;
    if (child >= a->ncloses) break;
    if (child + 1 < a->ncloses && a->closes[child + 1].at < a->closes[child].at) child++;
    if (a->closes[child].at >= last.at) break;
    a->closes[at] = a->closes[child];
    at = child;
  }
  if (a->ncloses) a->closes[at] = last;
  return top;
}

/* Whether a heap entry still names its session (the same session in its slot). */
static bool close_valid(const aggregate_op *a, const agg_close *c) {
  return c->g < a->ngroups && a->groups[c->g].alive && a->groups[c->g].seq == c->seq;
}

/* Closes the sessions whose end + grace the watermark has reached, taken off the heap of close
 * times (a scan of every open group whenever one closed cost 40% of a run with a 30-minute grace
 * and hundreds of thousands of sessions open); a session whose end has grown since its entry is
 * queued again. Sets next_close to the earliest entry's time (a session may close later). */
static void close_sessions(aggregate_op *a, int64_t wm) {
  int *closing = NULL;
  int n = 0, cap = 0;
  while (a->ncloses && a->closes[0].at <= wm) {
    const agg_close c = sessions_pop(a);
    if (!close_valid(a, &c)) continue;
    if (a->groups[c.g].end + a->sel->window.grace_ms > wm) {
      sessions_queue(a, c.g);
      continue;
    }
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      closing = realloc(closing, sizeof *closing * (size_t)cap);
      if (!closing) abort();
    }
    closing[n++] = c.g;
  }
  a->next_close = a->ncloses ? a->closes[0].at : VPQ_TS_MAX;
  if (!n) return;
  qsort_r(closing, (size_t)n, sizeof *closing, session_cmp, a);
  if (!a->changes) emit_groups(a, closing, n);
  for (int i = 0; i < n; i++) group_free(a, closing[i]);
  free(closing);
}

/* The watermark passed on at input watermark `wm`: held back by the grace period, as a window
 * still open within its grace (end + grace > wm) writes its rows later at event time end − 1 ≥
 * wm − grace, and a row at the watermark is not late downstream. The end of the input passes
 * on as it is. */
static int64_t output_watermark(const aggregate_op *a, int64_t wm) {
  const int64_t grace = a->sel->window.kind == VPQ_WINDOW_NONE ? 0 : a->sel->window.grace_ms;
  if (wm == VPQ_TS_MAX || grace == 0) return wm;
  return wm < VPQ_TS_MIN + grace ? VPQ_TS_MIN : wm - grace;
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
  vpq_op_emit_watermark(&a->base, output_watermark(a, wm));
}

/* ===== Partitions of the internal topic lost =====
 *
 * A repartitioned aggregation (vpq_repartition.h) reads the rows of its keys from the
 * partitions of an internal topic that its consumer group gives this member. When a rebalance
 * gives a partition to another member, that member rebuilds the partition's open groups from
 * the topic, so this one drops them without writing them: a window it has not closed would
 * otherwise be written twice, once partial. A table's group that has written a row is
 * retracted downstream, as the upserts of a lost partition are, while vpq_runtime.withdrawing
 * keeps the retraction and what follows from it out of the sinks (the new owner writes them). */

/* Drops group g of a lost partition (its table row retracted). */
static void forget_group(aggregate_op *a, int g) {
  agg_group *group = &a->groups[g];
  if (a->to_table && group->emitted) {
    out_room(a, 1);
    out_append(a, group->last, group->last_null, a->sel->window.kind == VPQ_WINDOW_NONE ? a->out_ts : group->end - 1, -1);
  }
  group_free(a, g);
}

void vpq_op_aggregate_forget_partition(vpq_op *op, int32_t partition) {
  aggregate_op *a = (aggregate_op *)op;
  const bool withdrawing = op->rt->withdrawing;
  out_flush(a);
  op->rt->withdrawing = true;
  bool windowed = a->sel->window.kind == VPQ_WINDOW_TUMBLING || a->sel->window.kind == VPQ_WINDOW_HOPPING;
  if (windowed) {
    for (int w = 0; w < a->nwindows; w++) {
      agg_window *win = &a->windows[w];
      int kept = 0;
      for (int i = 0; i < win->ngroups; i++) {
        if (a->groups[win->groups[i]].partition == partition) forget_group(a, win->groups[i]);
        else win->groups[kept++] = win->groups[i];
      }
      win->ngroups = kept;
    }
  } else {
    for (int g = 0; g < a->ngroups; g++)
      if (a->groups[g].alive && a->groups[g].partition == partition) forget_group(a, g);
  }
  out_flush(a);
  op->rt->withdrawing = withdrawing;
}

/* ===== Rows ===== */

/* Writes row `row`, as this operator sees it, to the dead-letter output of the source it
 * derives from (vpq_op_dead_letter) with `reason`. */
static void dead_letter(aggregate_op *a, const vpq_batch *batch, int row, const char *reason) {
  vpq_op_dead_letter(a->base.rt, a->slots, a->sel->from, &a->dead_schema, batch, row, reason);
}

/* Counts row `row` as late and dead-letters it. */
static void late_row(aggregate_op *a, const vpq_batch *batch, int row) {
  vpq_op_late_row(a->base.rt, a->slots, a->sel->from, &a->dead_schema, batch, row);
}

/* max_keys: true when a row of `key` may open groups (its key is held, or there is room). A
 * refused row is counted and dead-lettered; the first refusal is logged. Over a changelog a
 * refused row is remembered, so that its retraction, which has nothing to retract, is ignored
 * too (it could otherwise take a row of the same key that was admitted later). */
static bool key_admitted(aggregate_op *a, const vpq_batch *batch, int row, const vpq_datum *key,
                         const uint8_t *key_null) {
  bool changelog = a->sel->input_is_changelog;
  int ncols = a->refused.ncols;
  uint8_t *row_null = (uint8_t *)(a->refused_row + ncols);
  if (changelog) {
    for (int c = 0; c < ncols; c++) {
      a->refused_row[c] = batch->cols[c].null[row] ? (vpq_datum){0} : batch->cols[c].data[row];
      row_null[c] = batch->cols[c].null[row];
    }
    if (batch->diff[row] < 0 && rowset_has(&a->refused, a->refused_row, row_null)) {
      rowset_ref(&a->refused, a->refused_row, row_null, -1);
      return false;
    }
  }
  if (batch->diff[row] < 0 || a->keys.live < a->max_keys || rowset_has(&a->keys, key, key_null)) return true;
  if (changelog) rowset_ref(&a->refused, a->refused_row, row_null, +1);
  a->rejected++;
  a->base.rt->stats.refused[VPQ_REASON_MAX_KEYS]++;
  char reason[96];
  snprintf(reason, sizeof reason, "max_keys: all %lld keys are in use", (long long)a->max_keys);
  dead_letter(a, batch, row, reason);
  if (a->rejected == 1 && a->base.rt->log)
    fprintf(a->base.rt->log, "vpq: `%s`: max_keys (%lld) reached; rows of new keys are refused\n",
            a->query->target->name, (long long)a->max_keys);
  return false;
}

static void run_step(aggregate_op *a, const vpq_batch *batch) {
  for (int i = 0; i < a->run_n; i++) a->run_states[i] = a->groups[a->run_groups[i]].state;
  for (int i = 0; i < a->sel->naggs; i++) {
    const vpq_plan_agg *agg = &a->sel->aggs[i];
    vpq_agg_step_rows(&agg->spec, a->run_states, a->offsets[i], agg->arg ? &a->arg_vecs[i] : NULL,
                      a->timed ? a->step_ts : batch->ts, a->timed ? a->step_seq : NULL, batch->diff, a->run_rows,
                      a->run_n);
  }
  a->run_n = 0;
}

static void run_add(aggregate_op *a, int g, int row) {
  if (a->run_n == a->run_cap) {
    a->run_cap = a->run_cap ? a->run_cap * 2 : VPQ_BATCH_ROWS;
    a->run_groups = realloc(a->run_groups, sizeof *a->run_groups * (size_t)a->run_cap);
    a->run_states = realloc(a->run_states, sizeof *a->run_states * (size_t)a->run_cap);
    a->run_rows = realloc(a->run_rows, sizeof *a->run_rows * (size_t)a->run_cap);
    if (!a->run_groups || !a->run_states || !a->run_rows) abort();
  }
  a->run_groups[a->run_n] = g; /* not its states: a new group may move the slots before the step */
  a->run_rows[a->run_n++] = row;
}

/* The internal topic's partition row `row` was read from (-1: not repartitioned). */
static int32_t row_partition(const aggregate_op *a, const vpq_batch *batch, int row) {
  return a->partitioned ? (int32_t)batch->cols[a->sel->input.ncols].data[row].i : -1;
}

/* The watermark row `row` is judged late by: the operator's, or for a repartitioned input the
 * one its writer had when it wrote the row, if higher (the column after the partition; the
 * lowest timestamp when the writer does not read every partition of its source). The reader's
 * watermark lags the writers' (they announce theirs every 200 ms, and it is the lowest of
 * them), so a row the writer's source had already passed was taken into windows that one
 * process reading the source closes first (audit 42). */
static int64_t late_watermark(const aggregate_op *a, const vpq_batch *batch, int row) {
  if (!a->partitioned) return a->wm;
  const int64_t written = batch->cols[a->sel->input.ncols + 1].data[row].i;
  return written > a->wm ? written : a->wm;
}

/* The key of rollup level `level`: the last `level` keys rolled up (NULL). */
static void level_key(const aggregate_op *a, int level, const vpq_datum *key, const uint8_t *key_null,
                      vpq_datum *out, uint8_t *out_null) {
  for (int k = 0; k < a->nkeys; k++) {
    bool rolled = k >= a->nkeys - level;
    out[k] = rolled ? (vpq_datum){0} : key[k];
    out_null[k] = rolled ? 1 : key_null[k];
  }
}

/* max_keys, a table: a group emptied by retractions lets go of its key at once, before the
 * rest of the change is applied (a row moving from one key to another, as over a table it
 * retracts first, must find the slot the old key leaves); a group that gets rows again takes
 * its key back (key_admitted has made room for it). */
static void key_hold(aggregate_op *a, int g) {
  agg_group *group = &a->groups[g];
  bool hold = group->nrows > 0;
  if (hold == group->key_held) return;
  rowset_ref(&a->keys, group->key, group->key_null, hold ? +1 : -1);
  group->key_held = hold;
}

/* Adds row `row` to the group (start, end, level, key): finds or creates it, queues it. */
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
      g = group_new(a, hash, start, end, level, key, key_null, row_partition(a, batch, row));
      if (a->sel->window.kind != VPQ_WINDOW_NONE) {
        int w = window_get(a, start, end); /* may move a->windows */
        window_add_group(&a->windows[w], g);
      }
    }
    a->groups[g].nrows += batch->diff[row];
    if (a->max_keys && level == 0 && a->sel->window.kind == VPQ_WINDOW_NONE) key_hold(a, g);
    run_add(a, g, row);
    mark_dirty(a, g);
  }
}

/* The sessions of one key and level share a hash chain, in which they stand newest first (by
 * start; they never overlap, so by end too): a new session is placed after the newer ones
 * (session_place), a merge keeps the survivor's place, and a rehash keeps each chain's order.
 * So a scan for the sessions a row at ts touches stops at the first session of the key that
 * ends at or before ts: the older ones all do (with a long grace a key has many sessions open,
 * and scanning them all for every row made 400k rows of 1,000 devices under a 30-minute grace
 * take 6.6 s). */

/* Whether `group` is a session of (level, key, hash). */
static bool session_of(const aggregate_op *a, const agg_group *group, uint64_t hash, int level, const vpq_datum *key,
                       const uint8_t *key_null) {
  return group->hash == hash && group->level == level && group_key_equal(a, group, key, key_null);
}

/* Whether a session a row at `ts` lies within gap of: it joins that session. */
static bool session_touched(const aggregate_op *a, const agg_group *group, int64_t ts, int64_t late_wm) {
  return ts > group->start - a->sel->window.gap_ms && ts < group->end &&
         group->end + a->sel->window.grace_ms > late_wm;
}

/* Whether a session ends at or before `ts`: it and every older session of its key are behind a
 * row at ts (the scan stops). */
static bool session_behind(const agg_group *group, int64_t ts) { return group->end <= ts; }

/* Moves new session g, at the head of its chain, after the newer sessions of its key. */
static void session_place(aggregate_op *a, int g, uint64_t hash, int level, const vpq_datum *key,
                          const uint8_t *key_null) {
  agg_group *group = &a->groups[g];
  int after = -1;
  for (int h = group->next; h >= 0; h = a->groups[h].next)
    if (session_of(a, &a->groups[h], hash, level, key, key_null)) {
      if (a->groups[h].start < group->start) break;
      after = h;
    }
  if (after < 0) return;
  a->buckets[hash & (uint64_t)(a->nbuckets - 1)] = group->next; /* unlink the head */
  a->groups[group->next].prev = -1;
  agg_group *at = &a->groups[after];
  group->prev = after;
  group->next = at->next;
  if (at->next >= 0) a->groups[at->next].prev = g;
  at->next = g;
}

/* Whether a row at `ts` of key row_key is late for its sessions: at some rollup level it lies
 * within gap of no open session of its key, and a session of it alone would already be closed
 * (ts + gap + grace <= watermark). A row late at one level is late at all of them, so that the
 * levels always add up. */
static bool session_late(const aggregate_op *a, int64_t ts, int64_t late_wm, const vpq_datum *row_key,
                         const uint8_t *row_key_null) {
  if (ts + a->sel->window.gap_ms + a->sel->window.grace_ms > late_wm) return false;
  vpq_datum key[64];
  uint8_t key_null[64];
  for (int level = 0; level < a->nlevels; level++) {
    level_key(a, level, row_key, row_key_null, key, key_null);
    uint64_t hash = group_hash(a, 0, level, key, key_null);
    bool touched = false;
    for (int g = a->nbuckets ? a->buckets[hash & (uint64_t)(a->nbuckets - 1)] : -1; g >= 0 && !touched;
         g = a->groups[g].next) {
      const agg_group *group = &a->groups[g];
      if (!session_of(a, group, hash, level, key, key_null)) continue;
      if (session_behind(group, ts)) break;
      touched = session_touched(a, group, ts, late_wm);
    }
    if (!touched) return true;
  }
  return false;
}

/* Session windows, at every rollup level: the row joins (and merges) every open session of its
 * key it lies within gap of, which may extend a session backwards or bridge two; when it
 * touches none, it starts a new session. A row that session_late calls late joins no level.
 * Sessions already closed are gone, so no row reopens one. Steps immediately; returns false
 * when the row was late. */
static bool add_to_session(aggregate_op *a, const vpq_batch *batch, int row, int64_t late_wm,
                           const vpq_datum *row_key, const uint8_t *row_key_null) {
  int64_t ts = batch->ts[row], gap = a->sel->window.gap_ms;
  if (session_late(a, ts, late_wm, row_key, row_key_null)) return false;
  vpq_datum key[64];
  uint8_t key_null[64];
  for (int level = 0; level < a->nlevels; level++) {
    level_key(a, level, row_key, row_key_null, key, key_null);
    uint64_t hash = group_hash(a, 0, level, key, key_null);
    int head = a->nbuckets ? a->buckets[hash & (uint64_t)(a->nbuckets - 1)] : -1;
    int target = -1;
    for (int g = head; g >= 0 && target < 0; g = a->groups[g].next) {
      const agg_group *group = &a->groups[g];
      if (!session_of(a, group, hash, level, key, key_null)) continue;
      if (session_behind(group, ts)) break;
      if (session_touched(a, group, ts, late_wm)) target = g;
    }
    const int64_t seq_before = target >= 0 ? a->groups[target].seq : 0;
    const bool started = target < 0;
    for (int g = target >= 0 ? a->groups[target].next : -1; g >= 0;) {
      agg_group *group = &a->groups[g];
      int next = group->next;
      if (!session_of(a, group, hash, level, key, key_null)) {
        g = next;
        continue;
      }
      if (session_behind(group, ts)) break;
      if (session_touched(a, group, ts, late_wm)) {
        agg_group *t = &a->groups[target];
        session_absorb(a, g, target);
        for (int i = 0; i < a->sel->naggs; i++)
          vpq_agg_merge(&a->sel->aggs[i].spec, t->state + a->offsets[i], group->state + a->offsets[i]);
        for (int i = 0; i < a->sel->naggs; i++) vpq_agg_init(&a->sel->aggs[i].spec, group->state + a->offsets[i]);
        if (group->start < t->start) t->start = group->start;
        if (group->end > t->end) t->end = group->end;
        if (group->seq < t->seq) t->seq = group->seq;
        t->nrows += group->nrows;
        group_free(a, g);
      }
      g = next;
    }
    if (target < 0) {
      target = group_new(a, hash, ts, ts + gap, level, key, key_null, row_partition(a, batch, row));
      session_place(a, target, hash, level, key, key_null);
    }
    agg_group *t = &a->groups[target];
    if (ts < t->start) t->start = ts;
    if (ts + gap > t->end) t->end = ts + gap;
    t->nrows += batch->diff[row];
    if (started || t->seq != seq_before) sessions_queue(a, target);
    run_add(a, target, row);
    run_step(a, batch);
    mark_dirty(a, target);
  }
  return true;
}

/* The start of the last window holding `ts` (tumbling, hopping): rows come in time order, so
 * the previous row's is reused while rows stay in its window. */
static int64_t last_window_start(aggregate_op *a, int64_t ts) {
  int64_t adv = a->sel->window.advance_ms;
  if (!a->start_known || ts < a->start_seen || (uint64_t)ts - (uint64_t)a->start_seen >= (uint64_t)adv) {
    a->start_seen = vpq_window_last_start(ts, adv);
    a->start_known = true;
  }
  return a->start_seen;
}

static void process_row(aggregate_op *a, const vpq_batch *batch, int row, vpq_datum *key, uint8_t *key_null) {
  for (int k = 0; k < a->nkeys; k++) {
    key[k] = a->key_vecs[k].data[row];
    key_null[k] = a->key_vecs[k].null[row];
  }
  if (a->max_keys && !key_admitted(a, batch, row, key, key_null)) return;
  if (a->timed) timed_step(a, batch, row);
  const vpq_plan_window *win = &a->sel->window;
  int64_t ts = batch->ts[row];
  const int64_t late_wm = late_watermark(a, batch, row);
  switch (win->kind) {
  case VPQ_WINDOW_NONE:
    add_to_group(a, batch, row, 0, 0, key, key_null);
    break;
  case VPQ_WINDOW_SESSION:
    if (!add_to_session(a, batch, row, late_wm, key, key_null)) late_row(a, batch, row);
    break;
  case VPQ_WINDOW_TUMBLING:
  case VPQ_WINDOW_HOPPING: {
    int64_t adv = win->advance_ms;
    int64_t last = last_window_start(a, ts);
    int64_t first = win->size_ms == adv ? last : vpq_window_first_start(ts, win->size_ms, adv);
    bool late = false;
    for (int64_t start = first; start <= last; start += adv) {
      if (start + win->size_ms + win->grace_ms <= late_wm) {
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

/* ===== Prefetching =====
 *
 * Group slots and their states are spread over megabytes: finding a row's group misses the
 * cache two or three times, and each miss would stall the row. So before a batch is processed,
 * the group each row most likely joins (level 0 of its last window; window 0 for sessions and
 * tables) is fetched for all rows at once, in passes whose loads do not depend on each other
 * within a pass, so that the memory system serves many at a time: the hash buckets, then the
 * slots they name (with their inline states), then the next slot of chains whose head is
 * another group, or the states of slots too large to hold them. The batch's groups then sit in
 * the cache when its rows look them up. A prefetch is only a hint: a wrong guess costs a load. */

/* Fetches the groups of the batch's rows (keys evaluated) into the cache. Always inlined: GCC
 * takes a function that only prefetches for one without effects and drops its calls. */
static inline __attribute__((always_inline)) void prefetch_groups(aggregate_op *a, const vpq_batch *batch) {
  vpq_datum key[64];
  uint8_t key_null[64];
  int n = batch->n;
  if (!a->nbuckets || !n) return;
  bool windowed = a->sel->window.kind == VPQ_WINDOW_TUMBLING || a->sel->window.kind == VPQ_WINDOW_HOPPING;
  uint64_t mask = (uint64_t)(a->nbuckets - 1);
  uint64_t *hash = vpq_arena_alloc(&a->base.rt->scratch, sizeof *hash * (size_t)n);
  for (int row = 0; row < n; row++) {
    for (int k = 0; k < a->nkeys; k++) {
      key[k] = a->key_vecs[k].data[row];
      key_null[k] = a->key_vecs[k].null[row];
    }
    hash[row] = group_hash(a, windowed ? last_window_start(a, batch->ts[row]) : 0, 0, key, key_null);
    __builtin_prefetch(&a->buckets[hash[row] & mask]);
  }
  for (int row = 0; row < n; row++) {
    int g = a->buckets[hash[row] & mask];
    if (g < 0) continue;
    __builtin_prefetch(&a->groups[g]);
    if (states_inline(a)) __builtin_prefetch(a->groups[g].inline_state + GROUP_INLINE_STATE - 1);
  }
  for (int row = 0; row < n; row++) {
    int g = a->buckets[hash[row] & mask];
    if (g < 0) continue;
    if (a->groups[g].hash != hash[row]) { /* the chain's head is another group: the next one */
      if ((g = a->groups[g].next) >= 0) __builtin_prefetch(&a->groups[g]);
    } else if (!states_inline(a)) {
      __builtin_prefetch(a->groups[g].state);
      __builtin_prefetch(a->groups[g].state + a->state_size - 1);
    }
  }
}

/* Whether row `row` of a table's changes is followed by more of the same change, to be written
 * with it: the rows an upstream table writes for one source row (the retraction of a key's old
 * row and the addition of its new one, for every key the source row changed) share its origin
 * and event time. A repartitioned table's upsert (`upserts`: read from a repartition step) gives
 * the retraction before it the origin of the row it retracts, so there a retraction and the
 * addition after it are one change too. */
static bool change_continues(const vpq_batch *batch, int row, bool upserts) {
  int next = row + 1;
  if (next >= batch->n || batch->ts[next] != batch->ts[row]) return false;
  bool same_origin = batch->origin[next].partition == batch->origin[row].partition &&
                     batch->origin[next].offset == batch->origin[row].offset;
  bool upsert = upserts && batch->diff[row] < 0 && batch->diff[next] > 0 && batch->origin[row].partition >= 0;
  return same_origin || upsert;
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
    vpq_op_canonical_keys(&a->key_vecs[k], sel->group_keys[k]->type, batch->n);
  }
  for (int i = 0; i < sel->naggs; i++) {
    if (!a->arg_progs[i]) continue;
    a->arg_vecs[i].data = vpq_arena_alloc(&rt->scratch, sizeof(vpq_datum) * (size_t)batch->n);
    a->arg_vecs[i].null = vpq_arena_alloc(&rt->scratch, (size_t)batch->n);
    vpq_program_eval(a->arg_progs[i], batch, &a->arg_vecs[i], &rt->scratch);
  }
  prefetch_groups(a, batch);
  if (a->timed && batch->n > a->step_cap) {
    a->step_cap = batch->n;
    a->step_ts = realloc(a->step_ts, sizeof *a->step_ts * (size_t)a->step_cap);
    a->step_seq = realloc(a->step_seq, sizeof *a->step_seq * (size_t)a->step_cap);
    if (!a->step_ts || !a->step_seq) abort();
  }
  vpq_datum key[64];
  uint8_t key_null[64];
  bool per_row = a->changes || sel->window.kind == VPQ_WINDOW_SESSION;
  for (int row = 0; row < batch->n; row++) {
    if (batch->wm[row] > a->wm) {
      if (batch->wm[row] >= a->next_close && a->run_n) run_step(a, batch);
      if (batch->wm[row] >= a->next_close) {
        a->out_origin = batch->origin[row]; /* the windows it closes come from this row's watermark */
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
      bool change_ends = sel->input_is_changelog ? batch->diff[row] != 0 && !change_continues(batch, row, a->partitioned)
                                                 : batch->diff[row] > 0;
      if (change_ends) emit_dirty(a);
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
    a->out_origin = (vpq_origin){-1, 0}; /* closed by a watermark alone: no source row */
    advance(a, wm);
  } else {
    vpq_op_emit_watermark(op, output_watermark(a, wm));
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
  if (a->max_keys) vpq_buf_printf(out, " max_keys=%lld", (long long)a->max_keys);
  if (sel->having) vpq_buf_printf(out, " having %s", vpq_bexpr_format(sel->having, &a->layout, text, sizeof text));
}

/* Frees every group, window and key (rt->open_groups is left as it is: the caller accounts
 * for it). */
static void release_state(aggregate_op *a) {
  for (int g = 0; g < a->ngroups; g++)
    if (a->groups[g].state) group_release(a, &a->groups[g]);
  for (int w = 0; w < a->nwindows; w++) free(a->windows[w].groups);
  free(a->windows);
  free(a->groups);
  free(a->buckets);
  rowset_free_all(&a->keys);
  rowset_free_all(&a->refused);
  rowset_free_all(&a->added);
  a->windows = NULL;
  a->groups = NULL;
  a->buckets = NULL;
  a->nwindows = a->windows_cap = a->ngroups = a->groups_cap = a->nbuckets = 0;
  a->ncloses = 0;
  a->free_list = -1;
}

static void aggregate_destroy(vpq_op *op) {
  aggregate_op *a = (aggregate_op *)op;
  for (int g = 0; g < a->ngroups; g++)
    if (a->groups[g].alive) group_free(a, g);
  release_state(a);
  free(a->dirty);
  for (int i = 0; i < a->nabsorbed; i++) free(a->absorbed[i].row);
  free(a->absorbed);
  free(a->run_groups);
  free(a->run_states);
  free(a->run_rows);
  free(a->step_ts);
  free(a->step_seq);
  free(a->closes);
}

/* ===== Checkpoints =====
 *
 * Between two input batches the operator holds no rows in flight (no run, no dirty group, no
 * output batch), so its state is: the watermark and bookkeeping scalars, the group slots (free
 * ones too, so that later groups take the same slots), the free list, every hash chain in its
 * order (a session row merges the sessions it touches in chain order, and floating-point sums
 * depend on that order) and the windows with their groups in creation order (the order of
 * EMIT FINAL output). Each group is its window, level, row count, creation number, (with a
 * partitioned input) its partition, key, the
 * last row it wrote, and its aggregate states (vpq_agg_save).
 *
 * Loading checks the structure before anything relies on it: every live group sits in exactly
 * one chain, the one its recomputed hash selects; windowed, in exactly one window with the
 * same bounds; every free slot is on the free list once; string values are ids of the pool.
 * On any failure the partly loaded state is released at once, so destroy has nothing left to
 * walk. The max_keys key set is not written: it is rebuilt from the live groups; over a table
 * the refused rows are written last. */

enum { AGG_MAX_SLOTS = INT32_MAX / 4 };

/* Times and counts read back stay within ±2^62, so that adding a window's size, gap or grace
 * (or a row's diff) to them cannot overflow. */
static bool in_range(int64_t v) { return v >= -((int64_t)1 << 62) && v <= (int64_t)1 << 62; }

static void put_indices(vpq_ckpt_out *out, const int *idx, int n) {
  vpq_ckpt_put_u64(out, (uint64_t)n);
  for (int i = 0; i < n; i++) vpq_ckpt_put_u64(out, (uint64_t)idx[i]);
}

/* Writes a multiset of rows: each row's count and values, and with `times` its copies' event
 * times and arrival numbers (`added`). */
static void save_rowset(const agg_rowset *set, bool times, vpq_ckpt_out *out) {
  vpq_ckpt_put_u64(out, (uint64_t)set->live);
  for (int k = 0; k < set->n; k++) {
    const agg_key *e = &set->e[k];
    if (!e->count) continue;
    vpq_ckpt_put_i64(out, e->count);
    vpq_ckpt_put_datums(out, e->key, (const uint8_t *)(e->key + set->ncols), set->ncols);
    for (int64_t c = 0; times && c < 2 * e->count; c++) vpq_ckpt_put_i64(out, e->times[c]);
  }
}

static void aggregate_save(const vpq_op *op, vpq_ckpt_out *out) {
  const aggregate_op *a = (const aggregate_op *)op;
  int nout = op->schema->ncols;
  const int64_t scalars[] = {a->wm, a->next_close, a->next_seq, a->out_ts, a->out_origin.offset, a->rejected};
  for (size_t i = 0; i < sizeof scalars / sizeof *scalars; i++) vpq_ckpt_put_i64(out, scalars[i]);
  vpq_ckpt_put_i64(out, a->out_origin.partition);
  vpq_ckpt_put_u64(out, (uint64_t)a->ngroups);
  for (int g = 0; g < a->ngroups; g++) {
    const agg_group *group = &a->groups[g];
    vpq_ckpt_put_u64(out, group->alive);
    if (!group->alive) continue;
    vpq_ckpt_put_u64(out, (uint64_t)group->level);
    vpq_ckpt_put_i64(out, group->start);
    vpq_ckpt_put_i64(out, group->end);
    vpq_ckpt_put_i64(out, group->nrows);
    vpq_ckpt_put_i64(out, group->seq);
    if (a->partitioned) vpq_ckpt_put_i64(out, group->partition);
    vpq_ckpt_put_datums(out, group->key, group->key_null, a->nkeys);
    vpq_ckpt_put_u64(out, group->emitted);
    if (group->emitted) vpq_ckpt_put_datums(out, group->last, group->last_null, nout);
    for (int i = 0; i < a->sel->naggs; i++) vpq_agg_save(&a->sel->aggs[i].spec, group->state + a->offsets[i], out);
  }
  int nfree = 0;
  for (int g = a->free_list; g >= 0; g = a->groups[g].next) nfree++;
  vpq_ckpt_put_u64(out, (uint64_t)nfree);
  for (int g = a->free_list; g >= 0; g = a->groups[g].next) vpq_ckpt_put_u64(out, (uint64_t)g);
  vpq_ckpt_put_u64(out, (uint64_t)a->nbuckets);
  int nchains = 0;
  for (int b = 0; b < a->nbuckets; b++) nchains += a->buckets[b] >= 0;
  vpq_ckpt_put_u64(out, (uint64_t)nchains);
  for (int b = 0; b < a->nbuckets; b++) {
    if (a->buckets[b] < 0) continue;
    vpq_ckpt_put_u64(out, (uint64_t)b);
    int len = 0;
    for (int g = a->buckets[b]; g >= 0; g = a->groups[g].next) len++;
    vpq_ckpt_put_u64(out, (uint64_t)len);
    for (int g = a->buckets[b]; g >= 0; g = a->groups[g].next) vpq_ckpt_put_u64(out, (uint64_t)g);
  }
  vpq_ckpt_put_u64(out, (uint64_t)a->nwindows);
  for (int w = 0; w < a->nwindows; w++) {
    vpq_ckpt_put_i64(out, a->windows[w].start);
    vpq_ckpt_put_i64(out, a->windows[w].end);
    put_indices(out, a->windows[w].groups, a->windows[w].ngroups);
  }
  if (a->max_keys && a->sel->input_is_changelog) save_rowset(&a->refused, false, out);
  if (!a->timed) return;
  vpq_ckpt_put_i64(out, a->added_seq);
  save_rowset(&a->added, true, out);
}

/* Reads `n` datums of columns `cols`; a STRING must be an id of the string pool. */
static void get_row(vpq_ckpt_in *in, const vpq_intern *intern, const vpq_column *cols, vpq_datum *data,
                    uint8_t *null, int n) {
  vpq_ckpt_get_datums(in, data, null, n);
  for (int c = 0; c < n; c++)
    if (!null[c] && cols[c].type == VPQ_TYPE_STRING && (data[c].i < 0 || (uint64_t)data[c].i >= vpq_intern_count(intern)))
      vpq_ckpt_fail(in, "a value names no string");
}

/* A group slot index below `n`; -1 (and `in` failed) otherwise. */
static int get_slot(vpq_ckpt_in *in, int n) {
  uint64_t g = vpq_ckpt_get_u64(in);
  if (in->error) return -1;
  if (g >= (uint64_t)n) {
    vpq_ckpt_fail(in, "a group slot out of range");
    return -1;
  }
  return (int)g;
}

/* Reads one live group into slot `group`. */
static void load_group(aggregate_op *a, agg_group *group, vpq_ckpt_in *in) {
  const vpq_plan_window *win = &a->sel->window;
  vpq_runtime *rt = a->base.rt;
  group->level = (int8_t)vpq_ckpt_get_at_most(in, a->nlevels - 1);
  group->start = vpq_ckpt_get_i64(in);
  group->end = vpq_ckpt_get_i64(in);
  group->nrows = vpq_ckpt_get_i64(in);
  group->seq = vpq_ckpt_get_i64(in);
  int64_t partition = a->partitioned ? vpq_ckpt_get_i64(in) : -1;
  if (partition < -1 || partition > INT32_MAX) vpq_ckpt_fail(in, "a group partition out of range");
  group->partition = (int32_t)partition;
  if (!in_range(group->nrows) || !in_range(group->start) || !in_range(group->end))
    vpq_ckpt_fail(in, "a group value out of range");
  bool windowed = win->kind == VPQ_WINDOW_TUMBLING || win->kind == VPQ_WINDOW_HOPPING;
  int64_t window_end;
  if (windowed && (__builtin_add_overflow(group->start, win->size_ms, &window_end) || group->end != window_end))
    vpq_ckpt_fail(in, "a group window of the wrong size");
  if (win->kind == VPQ_WINDOW_NONE && (group->start || group->end)) vpq_ckpt_fail(in, "a window in a table group");
  group->alive = true;
  group_alloc(a, group);
  get_row(in, rt->intern, a->layout.cols, group->key, group->key_null, a->nkeys);
  for (int k = a->nkeys - group->level; k < a->nkeys; k++)
    if (!group->key_null[k]) vpq_ckpt_fail(in, "a rolled-up key with a value");
  if (a->nkeys) {
    group->key0 = group->key[0];
    group->key0_null = group->key_null[0];
  }
  group->emitted = vpq_ckpt_get_bool(in);
  if (group->emitted) get_row(in, rt->intern, a->base.schema->cols, group->last, group->last_null, a->base.schema->ncols);
  for (int i = 0; i < a->sel->naggs && !in->error; i++) vpq_agg_load(&a->sel->aggs[i].spec, group->state + a->offsets[i], in);
  int64_t start = win->kind == VPQ_WINDOW_SESSION ? 0 : group->start;
  group->hash = group_hash(a, start, group->level, group->key, group->key_null);
}

/* Reads the free list and the hash chains, checking that they cover every slot once. */
static void load_chains(aggregate_op *a, vpq_ckpt_in *in, uint8_t *seen) {
  int n = a->ngroups;
  int64_t nfree = vpq_ckpt_get_count(in, n);
  int *link = &a->free_list;
  for (int64_t i = 0; i < nfree && !in->error; i++) {
    int g = get_slot(in, n);
    if (g < 0) break;
    if (a->groups[g].alive || seen[g]) vpq_ckpt_fail(in, "a free slot that is live or listed twice");
    seen[g] = 1;
    *link = g;
    link = &a->groups[g].next;
  }
  *link = -1;
  uint64_t nbuckets = vpq_ckpt_get_u64(in);
  uint64_t most = 4 * (uint64_t)n + 1024;
  if (nbuckets > most || (nbuckets & (nbuckets - 1))) vpq_ckpt_fail(in, "a malformed group hash table");
  if (in->error) return;
  a->nbuckets = (int)nbuckets;
  a->buckets = malloc(sizeof *a->buckets * (nbuckets ? nbuckets : 1));
  if (!a->buckets) abort();
  for (int b = 0; b < a->nbuckets; b++) a->buckets[b] = -1;
  int64_t nchains = vpq_ckpt_get_count(in, a->nbuckets);
  int placed = 0;
  for (int64_t c = 0; c < nchains && !in->error; c++) {
    uint64_t b = vpq_ckpt_get_u64(in);
    if (b >= nbuckets || a->buckets[b] >= 0) vpq_ckpt_fail(in, "a hash chain out of place");
    int64_t len = vpq_ckpt_get_count(in, n);
    if (!in->error && !len) vpq_ckpt_fail(in, "an empty hash chain");
    link = in->error ? NULL : &a->buckets[b];
    int prev = -1;
    for (int64_t i = 0; i < len && !in->error; i++) {
      int g = get_slot(in, n);
      if (g < 0) break;
      if (!a->groups[g].alive || seen[g] || (a->groups[g].hash & (nbuckets - 1)) != b) {
        vpq_ckpt_fail(in, "a group in the wrong hash chain");
        break;
      }
      seen[g] = 1;
      placed++;
      *link = g;
      a->groups[g].prev = prev;
      prev = g;
      link = &a->groups[g].next;
    }
    if (link) *link = -1;
  }
  if (!in->error && placed + nfree != n) vpq_ckpt_fail(in, "a live group outside the hash table");
}

/* Reads the windows (tumbling, hopping): sorted by (end, start), each live group in exactly
 * the one with its bounds. */
static void load_windows(aggregate_op *a, vpq_ckpt_in *in, uint8_t *seen) {
  int n = a->ngroups;
  int64_t nwindows = vpq_ckpt_get_count(in, AGG_MAX_SLOTS);
  bool windowed = a->sel->window.kind == VPQ_WINDOW_TUMBLING || a->sel->window.kind == VPQ_WINDOW_HOPPING;
  if (nwindows && !windowed) vpq_ckpt_fail(in, "windows in an operator without them");
  if (in->error || !nwindows) return;
  a->windows = calloc((size_t)nwindows, sizeof *a->windows);
  if (!a->windows) abort();
  a->windows_cap = (int)nwindows;
  memset(seen, 0, (size_t)n);
  int members = 0;
  for (int64_t w = 0; w < nwindows && !in->error; w++) {
    agg_window *win = &a->windows[a->nwindows++];
    win->start = vpq_ckpt_get_i64(in);
    win->end = vpq_ckpt_get_i64(in);
    if (!in_range(win->start) || !in_range(win->end)) vpq_ckpt_fail(in, "a window out of range");
    if (w && (win->end < win[-1].end || (win->end == win[-1].end && win->start <= win[-1].start)))
      vpq_ckpt_fail(in, "windows out of order");
    int64_t ngroups = vpq_ckpt_get_count(in, n);
    if (in->error || !ngroups) continue;
    win->groups = malloc(sizeof *win->groups * (size_t)ngroups);
    if (!win->groups) abort();
    win->cap = (int)ngroups;
    for (int64_t i = 0; i < ngroups && !in->error; i++) {
      int g = get_slot(in, n);
      if (g < 0) break;
      const agg_group *group = &a->groups[g];
      if (!group->alive || seen[g] || group->start != win->start || group->end != win->end) {
        vpq_ckpt_fail(in, "a group in the wrong window");
        break;
      }
      seen[g] = 1;
      win->groups[win->ngroups++] = g;
      members++;
    }
  }
  int alive = 0;
  for (int g = 0; g < n; g++) alive += a->groups[g].alive;
  if (!in->error && members != alive) vpq_ckpt_fail(in, "a live group outside every window");
}

/* Reads what save_rowset wrote into `set` (the refused rows of a max_keys aggregation over a
 * changelog, or with `times` the rows added to one with timed aggregates: a last part of its
 * state); on failure releases the whole state, as aggregate_load does. */
static void load_rowset(aggregate_op *a, agg_rowset *set, bool times, vpq_ckpt_in *in) {
  int ncols = set->ncols;
  uint8_t *row_null = (uint8_t *)(a->refused_row + ncols);
  int64_t n = vpq_ckpt_get_count(in, AGG_MAX_SLOTS);
  for (int64_t i = 0; i < n && !in->error; i++) {
    int64_t count = vpq_ckpt_get_i64(in);
    if (count < 1 || count > INT32_MAX) vpq_ckpt_fail(in, "a row's count out of range");
    get_row(in, a->base.rt->intern, a->sel->input.cols, a->refused_row, row_null, ncols);
    if (!times && !in->error) rowset_ref(set, a->refused_row, row_null, (int)count);
    for (int64_t c = 0; times && c < count && !in->error; c++) {
      int64_t ts = vpq_ckpt_get_i64(in), seq = vpq_ckpt_get_i64(in);
      if (seq < 0 || seq >= a->added_seq) vpq_ckpt_fail(in, "an added row's arrival number out of range");
      if (!in->error) added_push(set, a->refused_row, row_null, ts, seq);
    }
  }
  if (in->error) release_state(a);
}

static void aggregate_load(vpq_op *op, vpq_ckpt_in *in) {
  aggregate_op *a = (aggregate_op *)op;
  int64_t *scalars[] = {&a->wm, &a->next_close, &a->next_seq, &a->out_ts, &a->out_origin.offset, &a->rejected};
  for (size_t i = 0; i < sizeof scalars / sizeof *scalars; i++) *scalars[i] = vpq_ckpt_get_i64(in);
  int64_t partition = vpq_ckpt_get_i64(in);
  if (partition < INT32_MIN || partition > INT32_MAX) vpq_ckpt_fail(in, "a partition out of range");
  a->out_origin.partition = (int32_t)partition;
  int n = (int)vpq_ckpt_get_count(in, AGG_MAX_SLOTS);
  if (n) {
    groups_reserve(a, n);
    a->ngroups = n;
  }
  for (int g = 0; g < n && !in->error; g++)
    if (vpq_ckpt_get_bool(in)) load_group(a, &a->groups[g], in);
  uint8_t *seen = calloc((size_t)n + 1, 1);
  if (!seen) abort();
  load_chains(a, in, seen);
  load_windows(a, in, seen);
  free(seen);
  if (in->error) {
    release_state(a);
    return;
  }
  for (int g = 0; g < n && a->sel->window.kind == VPQ_WINDOW_SESSION; g++)
    if (a->groups[g].alive) sessions_queue(a, g);
  for (int g = 0; g < n && a->max_keys; g++) {
    agg_group *group = &a->groups[g];
    if (!group->alive || group->level != 0) continue;
    rowset_ref(&a->keys, group->key, group->key_null, +1);
    group->key_held = true;
  }
  if (a->max_keys && a->sel->input_is_changelog) load_rowset(a, &a->refused, false, in);
  if (a->timed && !in->error) {
    a->added_seq = vpq_ckpt_get_i64(in);
    if (a->added_seq < 0) vpq_ckpt_fail(in, "an arrival number out of range");
    load_rowset(a, &a->added, true, in);
  }
}

/* Names the input layout's columns for dead letters, whose rows are JSON objects: a column of
 * a joined relation whose name an earlier column has is qualified with its relation's alias (or
 * name), as `d.k`. */
static void dead_letter_schema(aggregate_op *a, vpq_arena *arena) {
  const vpq_plan_select *sel = a->sel;
  int ncols = sel->input.ncols;
  a->dead_schema.ncols = ncols;
  a->dead_schema.cols = vpq_arena_alloc(arena, sizeof *a->dead_schema.cols * (size_t)(ncols + 1));
  for (int c = 0; c < ncols; c++) {
    vpq_column *col = &a->dead_schema.cols[c];
    *col = sel->input.cols[c];
    bool taken = false;
    for (int d = 0; d < c && !taken; d++) taken = strcmp(sel->input.cols[d].name, col->name) == 0;
    if (!taken || !sel->njoins) continue;
    int j = sel->njoins - 1;
    while (j > 0 && sel->joins[j].right_offset > c) j--;
    const char *qualifier = sel->joins[j].alias ? sel->joins[j].alias : sel->joins[j].right->name;
    char name[512];
    snprintf(name, sizeof name, "%s.%s", qualifier, col->name);
    col->name = vpq_arena_strdup(arena, name);
  }
}

static const vpq_op_vt aggregate_vt = {"Aggregate", aggregate_push, aggregate_watermark,
                                       aggregate_describe, aggregate_destroy, aggregate_save, aggregate_load, NULL};
static const vpq_op_vt window_aggregate_vt = {"WindowAggregate", aggregate_push, aggregate_watermark,
                                              aggregate_describe, aggregate_destroy, aggregate_save, aggregate_load, NULL};

vpq_op *vpq_op_aggregate_new(vpq_runtime *rt, vpq_arena *arena, const vpq_plan_query *query,
                             const vpq_source_slot *slots, bool partitioned) {
  aggregate_op *a = calloc(1, sizeof *a);
  if (!a) abort();
  const vpq_plan_select *sel = &query->select;
  vpq_op_init(&a->base, sel->window.kind == VPQ_WINDOW_NONE ? &aggregate_vt : &window_aggregate_vt, rt,
              &query->target->schema);
  a->query = query;
  a->sel = sel;
  a->slots = slots;
  dead_letter_schema(a, arena);
  a->partitioned = partitioned;
  a->to_table = query->target->kind == VPQ_REL_TABLE;
  const vpq_plan_options *opts = &query->target->sink.options;
  for (int i = 0; i < opts->count; i++)
    if (strcmp(opts->items[i].key, "max_keys") == 0 && query == query->target->queries[0]) a->max_keys = opts->items[i].value.i;
  a->changes = sel->emit == VPQ_EMIT_CHANGES || sel->window.kind == VPQ_WINDOW_NONE;
  a->nkeys = sel->ngroup_keys;
  a->nlevels = sel->rollup ? sel->ngroup_keys + 1 : 1;
  a->free_list = -1;
  a->keys = (agg_rowset){.free = -1, .ncols = a->nkeys};
  a->refused = (agg_rowset){.free = -1, .ncols = sel->input.ncols};
  a->added = (agg_rowset){.free = -1, .ncols = sel->input.ncols};
  a->refused_row = vpq_arena_alloc(arena, (sizeof *a->refused_row + 1) * (size_t)(sel->input.ncols + 1));
  a->wm = VPQ_TS_MIN;
  a->next_close = VPQ_TS_MAX;
  a->offsets = vpq_arena_alloc(arena, sizeof *a->offsets * (size_t)(sel->naggs + 1));
  for (int i = 0; i < sel->naggs; i++) {
    vpq_plan_agg *agg = &sel->aggs[i];
    agg->spec.intern = rt->intern;
    agg->spec.retracting = sel->input_is_changelog;
    const vpq_agg_kind kind = agg->spec.kind;
    const bool by_time = kind == VPQ_AGG_FIRST || kind == VPQ_AGG_LAST || kind == VPQ_AGG_INTEGRATE ||
                         kind == VPQ_AGG_TIME_WEIGHTED_AVG;
    a->timed = a->timed || (sel->input_is_changelog && by_time);
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
  int grouping = a->nkeys + sel->naggs + (windowed ? 2 : 0);
  a->layout.ncols = grouping + (sel->rollup ? a->nkeys : 0);
  a->layout.cols = vpq_arena_alloc(arena, sizeof *a->layout.cols * (size_t)(a->layout.ncols + 1));
  for (int k = 0; k < a->nkeys; k++) {
    char text[256];
    const char *name = vpq_bexpr_format(sel->group_keys[k], &sel->input, text, sizeof text);
    a->layout.cols[k] = (vpq_column){.name = vpq_arena_strdup(arena, name), .type = sel->group_keys[k]->type, .is_key = true};
  }
  for (int i = 0; i < sel->naggs; i++)
    a->layout.cols[a->nkeys + i] = (vpq_column){.name = vpq_agg_name(sel->aggs[i].spec.kind), .type = sel->aggs[i].spec.result_type};
  if (windowed) {
    a->layout.cols[a->nkeys + sel->naggs] = (vpq_column){.name = "WINDOW_START", .type = VPQ_TYPE_TIMESTAMP};
    a->layout.cols[a->nkeys + sel->naggs + 1] = (vpq_column){.name = "WINDOW_END", .type = VPQ_TYPE_TIMESTAMP};
  }
  for (int k = 0; k < a->nkeys && sel->rollup; k++) {
    char text[300];
    snprintf(text, sizeof text, "grouping(%s)", a->layout.cols[k].name);
    a->layout.cols[grouping + k] = (vpq_column){.name = vpq_arena_strdup(arena, text), .type = VPQ_TYPE_BIGINT};
  }
  if (sel->having) a->having = vpq_expr_compile(arena, sel->having, rt->intern);
  int ncols = query->target->schema.ncols;
  /* One group: its struct, a hash-chain and a window-list slot, aggregate states, key and last
   * output row (heap parts of exact aggregates such as percentile come on top). */
  int64_t bytes = (int64_t)(sizeof(agg_group) + 2 * sizeof(int) + (states_inline(a) ? 0 : a->state_size) +
                            (sizeof(vpq_datum) + 1) * (size_t)(a->nkeys + ncols));
  if (bytes > rt->stats.group_bytes) rt->stats.group_bytes = bytes;
  a->out_progs = vpq_arena_alloc(arena, sizeof *a->out_progs * (size_t)(ncols + 1));
  for (int i = 0; i < sel->noutputs; i++) {
    int target = query->column_map[i];
    if (target >= 0) a->out_progs[target] = vpq_expr_compile(arena, sel->outputs[i], rt->intern);
  }
  return &a->base;
}

void vpq_op_aggregate_replay(vpq_op *op) {
  if (op->vt != &aggregate_vt && op->vt != &window_aggregate_vt) return;
  aggregate_op *a = (aggregate_op *)op;
  if (!a->to_table || a->sel->window.kind != VPQ_WINDOW_NONE) return;
  out_flush(a);
  for (int g = 0; g < a->ngroups; g++) {
    const agg_group *group = &a->groups[g];
    if (!group->alive || !group->emitted) continue;
    out_room(a, 1);
    out_append(a, group->last, group->last_null, a->sel->window.kind == VPQ_WINDOW_NONE ? a->out_ts : group->end - 1, 1);
  }
  out_flush(a);
}
