/* vpq_repartition.c — repartitioning (vpq_repartition.h): planning which aggregations move
 * their input between the members of a consumer group, and the operators at both ends.
 *
 * Planning follows how each relation's rows are spread over the members (its "spread"):
 *
 *   WHOLE  every member has every row: files, the simulator, bounded Kafka reads, and
 *          whatever is computed from those alone;
 *   KEYED  rows that agree on some columns are on one member: a group-read Kafka source is
 *          keyed by its KEY columns (the message key its producers partition by); no columns:
 *          every row is on one member;
 *   ANY    no rule is known (a source without KEY, a projection that dropped the key).
 *
 * In declaration order (every relation after those it reads): a filter or projection keeps its
 * input's spread when it keeps the key columns; an aggregation over a KEYED input whose key
 * columns are all among its GROUP BY columns runs where it is and is KEYED by its GROUP BY
 * columns in its output; any other aggregation over a spread input is repartitioned by its
 * GROUP BY key (a global aggregate or a ROLLUP to one key: its grand total needs every row)
 * and is KEYED by that key afterwards. FORECAST keeps its input's spread by its BY keys;
 * SCHEDULE and joins are not repartitioned (see the README: run those on one member).
 *
 * The step of an aggregation over a table (a changelog) sends upserts keyed by the table's
 * key, so the reading end can turn them into exact retractions even when a member rebuilds
 * the table after a take-over; a stream read straight from a source (through filters and
 * projections only) is deduplicated by the source origin of its rows.
 */
#include "vpq_repartition.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vpq_expr.h"

/* ===== Planning ===== */

enum { MAX_SPREAD_COLS = 16 };

typedef enum spread_kind { SPREAD_WHOLE, SPREAD_KEYED, SPREAD_ANY } spread_kind;

typedef struct spread {
  spread_kind kind;
  int ncols;                 /* KEYED: rows agreeing on cols[0..ncols) are on one member */
  int cols[MAX_SPREAD_COLS];
  int source;                /* the group-read source the rows come from; -1: none, or several */
  bool direct;               /* that source's rows through filters and projections only */
} spread;

static const spread whole = {SPREAD_WHOLE, 0, {0}, -1, false};

/* True for a Kafka source read as a consumer-group member (unbounded). */
static bool group_read(const vpq_relation *rel) {
  if (!rel->is_source || !rel->source.connector || strcmp(rel->source.connector, "kafka") != 0) return false;
  for (int i = 0; i < rel->source.options.count; i++)
    if (strcmp(rel->source.options.items[i].key, "bounded") == 0 && rel->source.options.items[i].value.i) return false;
  return true;
}

static spread source_spread(const vpq_relation *rel) {
  if (!group_read(rel)) return whole;
  spread s = {SPREAD_ANY, 0, {0}, rel->index, true};
  if (rel->nkeys > 0 && rel->nkeys <= MAX_SPREAD_COLS) {
    s.kind = SPREAD_KEYED;
    s.ncols = rel->nkeys;
    memcpy(s.cols, rel->key_cols, sizeof *s.cols * (size_t)rel->nkeys);
  }
  return s;
}

/* The target column of the first output that is plain column `col` of the layout `outputs`
 * are bound to, or -1. */
static int output_of(const vpq_plan_query *q, vpq_bexpr *const *outputs, int noutputs, int col) {
  for (int i = 0; i < noutputs; i++)
    if (outputs[i]->kind == VPQ_BEXPR_COLUMN && outputs[i]->column == col && q->column_map[i] >= 0) return q->column_map[i];
  return -1;
}

/* `in` keyed by target columns: each key column `in.cols[i]` mapped by `map` (-1: lost). */
static spread remap(spread in, const int *map) {
  if (in.kind != SPREAD_KEYED) return in;
  for (int i = 0; i < in.ncols; i++) {
    if (map[i] < 0) {
      in.kind = SPREAD_ANY;
      in.ncols = 0;
      return in;
    }
    in.cols[i] = map[i];
  }
  return in;
}

/* The GROUP BY key of `sel` that is plain input column `col`, or -1. */
static int group_key_of(const vpq_plan_select *sel, int col) {
  for (int k = 0; k < sel->ngroup_keys; k++)
    if (sel->group_keys[k]->kind == VPQ_BEXPR_COLUMN && sel->group_keys[k]->column == col) return k;
  return -1;
}

/* True when an aggregation over input spread `in` must be repartitioned: some group of its
 * may have rows on several members. */
static bool needs_move(const spread *in, const vpq_plan_select *sel) {
  if (in->kind == SPREAD_WHOLE) return false;
  if (in->kind == SPREAD_KEYED && in->ncols == 0) return false;
  if (in->kind == SPREAD_ANY || sel->rollup || sel->ngroup_keys == 0) return true;
  for (int i = 0; i < in->ncols; i++)
    if (group_key_of(sel, in->cols[i]) < 0) return true;
  return false;
}

/* The spread of a SELECT's output; *move set when it must be repartitioned. */
static spread select_spread(const vpq_plan_query *q, const spread *spreads, bool *move) {
  const vpq_plan_select *sel = &q->select;
  spread in = spreads[sel->from->index];
  *move = false;
  for (int j = 0; j < sel->njoins; j++)
    if (sel->joins[j].kind == VPQ_PLAN_JOIN_WITHIN) in.direct = false;
  int map[MAX_SPREAD_COLS];
  if (!sel->aggregate) {
    for (int i = 0; i < in.ncols; i++) map[i] = output_of(q, sel->outputs, sel->noutputs, in.cols[i]);
    return remap(in, map);
  }
  in.direct = false;
  if (in.kind == SPREAD_WHOLE) return in;
  *move = needs_move(&in, sel);
  if (*move) {
    /* Rows of one GROUP BY key (all rows, for a global aggregate or a ROLLUP) end on one member. */
    bool one = sel->rollup || sel->ngroup_keys == 0;
    in.kind = SPREAD_KEYED;
    in.ncols = one || sel->ngroup_keys > MAX_SPREAD_COLS ? 0 : sel->ngroup_keys;
    if (!one && sel->ngroup_keys > MAX_SPREAD_COLS) in.kind = SPREAD_ANY;
    for (int k = 0; k < in.ncols; k++) map[k] = output_of(q, sel->outputs, sel->noutputs, k);
    return remap(in, map);
  }
  for (int i = 0; i < in.ncols; i++) map[i] = output_of(q, sel->outputs, sel->noutputs, group_key_of(sel, in.cols[i]));
  return remap(in, map);
}

/* The spread of a FORECAST's output: its input's, by the BY keys it is keyed on. */
static spread forecast_spread(const vpq_plan_query *q, const spread *spreads) {
  const vpq_plan_forecast *fc = &q->forecast;
  spread in = spreads[fc->from->index];
  in.direct = false;
  int map[MAX_SPREAD_COLS];
  for (int i = 0; i < in.ncols; i++) {
    int by = -1;
    for (int k = 0; k < fc->nby && by < 0; k++)
      if (fc->by[k]->kind == VPQ_BEXPR_COLUMN && fc->by[k]->column == in.cols[i]) by = k;
    map[i] = by >= 0 ? q->column_map[by] : -1;
  }
  return remap(in, map);
}

static bool same_spread(const spread *a, const spread *b) {
  if (a->kind != b->kind || a->ncols != b->ncols) return false;
  for (int i = 0; i < a->ncols; i++)
    if (a->cols[i] != b->cols[i]) return false;
  return true;
}

int vpq_repartition_plan(const vpq_plan *plan, vpq_arena *arena, vpq_repartition **steps) {
  int n = plan->nrelations, nqueries = 0, nsteps = 0, fallback_source = -1;
  for (int r = 0; r < n; r++) {
    nqueries += plan->relations[r]->nqueries;
    if (fallback_source < 0 && group_read(plan->relations[r])) fallback_source = r;
  }
  *steps = vpq_arena_alloc(arena, sizeof **steps * (size_t)(nqueries + 1));
  spread *spreads = calloc((size_t)n + 1, sizeof *spreads);
  if (!spreads) abort();
  for (int r = 0; r < n; r++) {
    const vpq_relation *rel = plan->relations[r];
    if (rel->is_source || !rel->nqueries) {
      spreads[r] = source_spread(rel);
      continue;
    }
    for (int qi = 0; qi < rel->nqueries; qi++) {
      const vpq_plan_query *q = rel->queries[qi];
      bool move = false;
      spread out = q->kind == VPQ_PLAN_SELECT     ? select_spread(q, spreads, &move)
                   : q->kind == VPQ_PLAN_FORECAST ? forecast_spread(q, spreads)
                                                  : whole;
      if (q->kind == VPQ_PLAN_SCHEDULE) {
        const vpq_plan_schedule *sc = &q->schedule;
        bool spread_in = spreads[sc->fleet->index].kind != SPREAD_WHOLE || spreads[sc->forecast->index].kind != SPREAD_WHOLE ||
                         (sc->price && spreads[sc->price->index].kind != SPREAD_WHOLE);
        if (spread_in) out = (spread){SPREAD_ANY, 0, {0}, -1, false};
      }
      int source = move && spreads[q->select.from->index].source >= 0 ? spreads[q->select.from->index].source
                                                                          : fallback_source;
      if (move && source >= 0) {
        const vpq_plan_select *sel = &q->select;
        const spread *in = &spreads[sel->from->index];
        vpq_repartition *step = &(*steps)[nsteps++];
        memset(step, 0, sizeof *step);
        step->query = q;
        step->source = source;
        step->dedup = in->direct && in->source >= 0 && !sel->input_is_changelog;
        for (int j = 0; j < sel->njoins; j++) step->dedup &= sel->joins[j].kind == VPQ_PLAN_JOIN_TABLE;
        const vpq_relation *from = sel->from;
        if (sel->input_is_changelog && from->kind == VPQ_REL_TABLE && from->nkeys > 0 && !from->windowed && !sel->njoins) {
          step->upsert_keys = from->key_cols;
          step->nupsert_keys = from->nkeys;
        }
        int nkeys = sel->rollup ? 0 : sel->ngroup_keys;
        step->keys.ncols = nkeys;
        step->keys.cols = vpq_arena_alloc(arena, sizeof *step->keys.cols * (size_t)(nkeys + 1));
        for (int k = 0; k < nkeys; k++) {
          char text[256];
          vpq_bexpr_format(sel->group_keys[k], &sel->input, text, sizeof text);
          step->keys.cols[k] = (vpq_column){vpq_arena_strdup(arena, text), sel->group_keys[k]->type, true, false};
        }
      }
      if (qi == 0) {
        spreads[r] = out;
      } else if (!same_spread(&spreads[r], &out)) {
        bool both_whole = spreads[r].kind == SPREAD_WHOLE && out.kind == SPREAD_WHOLE;
        spreads[r] = both_whole ? whole : (spread){SPREAD_ANY, 0, {0}, -1, false};
      } else {
        /* Several queries into one relation: one message may give a row through each. */
        if (spreads[r].source != out.source) spreads[r].source = -1;
        spreads[r].direct = false;
      }
    }
  }
  free(spreads);
  return nsteps;
}

vpq_repartition *vpq_repartition_find(vpq_repartition *steps, int n, const vpq_plan_query *query) {
  for (int i = 0; i < n; i++)
    if (steps[i].query == query) return &steps[i];
  return NULL;
}

/* ===== Writing end: Repartition ===== */

enum { ANNOUNCE_EVERY_MS = 200, HEARTBEAT_MS = 1000 };

typedef struct writer_op {
  vpq_op base;
  vpq_repartition *step;
  vpq_program **keys;   /* one per key column */
  int *rows;            /* 0..n-1, for the sink */
  int rows_cap;
  int64_t wm;           /* the watermark passed in */
  int64_t announced_wm;
  int64_t announced_ms; /* wall clock of the last announcement */
} writer_op;

static int64_t wall_clock_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void writer_push(vpq_op *op, int port, const vpq_batch *batch) {
  (void)port;
  writer_op *w = (writer_op *)op;
  vpq_repartition *step = w->step;
  if (!step->writer) {
    vpq_op_emit(op, batch);
    return;
  }
  vpq_runtime *rt = op->rt;
  int nkeys = step->keys.ncols;
  vpq_batch wire = *batch;
  wire.ncols = nkeys + batch->ncols;
  wire.cols = vpq_arena_alloc(&rt->scratch, sizeof *wire.cols * (size_t)(wire.ncols + 1));
  for (int k = 0; k < nkeys; k++) {
    wire.cols[k].type = step->keys.cols[k].type;
    wire.cols[k].data = vpq_arena_alloc(&rt->scratch, sizeof *wire.cols[k].data * (size_t)(batch->n + 1));
    wire.cols[k].null = vpq_arena_alloc(&rt->scratch, (size_t)batch->n + 1);
    vpq_program_eval(w->keys[k], batch, &wire.cols[k], &rt->scratch);
  }
  memcpy(wire.cols + nkeys, batch->cols, sizeof *batch->cols * (size_t)batch->ncols);
  if (w->rows_cap < batch->n) {
    w->rows_cap = batch->n;
    w->rows = realloc(w->rows, sizeof *w->rows * (size_t)w->rows_cap);
    if (!w->rows) abort();
    for (int i = 0; i < w->rows_cap; i++) w->rows[i] = i;
  }
  char err[512];
  if (!step->writer->vt->write(step->writer, &wire, w->rows, batch->n, err, sizeof err)) {
    fprintf(rt->log, "vpq: repartitioning into `%s`: %s\n", step->topic, err);
    rt->failed = true;
  }
}

bool vpq_repartition_announce(vpq_op *op, int64_t now_ms, bool force) {
  writer_op *w = (writer_op *)op;
  if (!w->step->writer) return true;
  bool due = force || now_ms - w->announced_ms >= HEARTBEAT_MS ||
             (w->wm != w->announced_wm && (w->wm == VPQ_TS_MAX || now_ms - w->announced_ms >= ANNOUNCE_EVERY_MS));
  if (!due) return true;
  char err[512];
  if (!vpq_connector_exchange_announce(w->step->writer, w->wm, err, sizeof err)) {
    fprintf(op->rt->log, "vpq: repartitioning into `%s`: %s\n", w->step->topic, err);
    op->rt->failed = true;
    return false;
  }
  w->announced_wm = w->wm;
  w->announced_ms = now_ms;
  return true;
}

static void writer_watermark(vpq_op *op, int port, int64_t wm) {
  (void)port;
  writer_op *w = (writer_op *)op;
  if (!w->step->writer) {
    vpq_op_emit_watermark(op, wm);
    return;
  }
  if (wm <= w->wm) return;
  w->wm = wm;
  vpq_repartition_announce(op, wall_clock_ms(), false);
}

static void writer_describe(const vpq_op *op, vpq_buf *out) {
  const writer_op *w = (const writer_op *)op;
  const vpq_repartition *step = w->step;
  const vpq_plan_select *sel = &step->query->select;
  if (!step->keys.ncols) {
    vpq_buf_puts(out, "to one key");
  } else {
    vpq_buf_puts(out, "by [");
    for (int k = 0; k < step->keys.ncols; k++) vpq_buf_printf(out, "%s%s", k ? ", " : "", step->keys.cols[k].name);
    vpq_buf_puts(out, "]");
  }
  vpq_buf_printf(out, " into `%s`", step->topic);
  if (step->upsert_keys) {
    vpq_buf_puts(out, ", upserts of [");
    for (int k = 0; k < step->nupsert_keys; k++)
      vpq_buf_printf(out, "%s%s", k ? ", " : "", sel->input.cols[step->upsert_keys[k]].name);
    vpq_buf_puts(out, "]");
  } else if (step->dedup) {
    vpq_buf_puts(out, ", one row per source message");
  }
}

static void writer_destroy(vpq_op *op) { free(((writer_op *)op)->rows); }

static const vpq_op_vt writer_vt = {"Repartition", writer_push, writer_watermark, writer_describe, writer_destroy, NULL, NULL};

vpq_op *vpq_repartition_writer_new(vpq_runtime *rt, vpq_arena *arena, vpq_repartition *step) {
  writer_op *w = calloc(1, sizeof *w);
  if (!w) abort();
  const vpq_plan_select *sel = &step->query->select;
  vpq_op_init(&w->base, &writer_vt, rt, &sel->input);
  w->step = step;
  w->wm = w->announced_wm = VPQ_TS_MIN;
  w->keys = vpq_arena_alloc(arena, sizeof *w->keys * (size_t)(step->keys.ncols + 1));
  for (int k = 0; k < step->keys.ncols; k++) w->keys[k] = vpq_expr_compile(arena, sel->group_keys[k], rt->intern);
  step->write_op = &w->base;
  return &w->base;
}

/* ===== Reading end: RepartitionScan ===== */

typedef struct scan_op {
  vpq_op base;
  const vpq_repartition *step;
} scan_op;

static void scan_push(vpq_op *op, int port, const vpq_batch *batch) {
  (void)port;
  vpq_op_emit(op, batch);
}

static void scan_watermark(vpq_op *op, int port, int64_t wm) {
  (void)port;
  vpq_op_emit_watermark(op, wm);
}

static void scan_describe(const vpq_op *op, vpq_buf *out) {
  const scan_op *s = (const scan_op *)op;
  vpq_buf_printf(out, "`%s` (group of the same name), watermark the lowest of its writers'", s->step->topic);
}

static void scan_destroy(vpq_op *op) { (void)op; }

static const vpq_op_vt scan_vt = {"RepartitionScan", scan_push, scan_watermark, scan_describe, scan_destroy, NULL, NULL};

vpq_op *vpq_repartition_scan_new(vpq_runtime *rt, vpq_repartition *step) {
  scan_op *s = calloc(1, sizeof *s);
  if (!s) abort();
  vpq_op_init(&s->base, &scan_vt, rt, &step->query->select.input);
  s->step = step;
  step->scan_op = &s->base;
  return &s->base;
}

void vpq_repartition_scan_push(vpq_op *scan, const vpq_batch *batch) { vpq_op_emit(scan, batch); }

void vpq_repartition_scan_watermark(vpq_op *scan, int64_t wm) { vpq_op_emit_watermark(scan, wm); }
