/* vpq_repartition.c — repartitioning (vpq_repartition.h): planning which aggregations and joins
 * move their input between the members of a consumer group, and the operators at both ends.
 *
 * Planning follows how each relation's rows are spread over the members (its "spread"):
 *
 *   WHOLE  every member has every row: files, the simulator, bounded Kafka reads, and
 *          whatever is computed from those alone;
 *   KEYED  rows that agree on some columns are on one member: a group-read Kafka source is
 *          keyed by its KEY columns (the message key its producers partition by); no columns:
 *          every row is on one member. Which member is decided by an "owner": the consumer
 *          group of the source, or of the exchange the rows were read back from;
 *   ANY    no rule is known (a source without KEY, a projection that dropped the key).
 *
 * In declaration order (every relation after those it reads): a filter or projection keeps its
 * input's spread when it keeps the key columns; an aggregation over a KEYED input whose key
 * columns are all among its GROUP BY columns runs where it is and is KEYED by its GROUP BY
 * columns in its output; any other aggregation over a spread input is repartitioned by its
 * GROUP BY key (a global aggregate or a ROLLUP to one key: its grand total needs every row)
 * and is KEYED by that key afterwards. FORECAST keeps its input's spread by its BY keys.
 * SCHEDULE plans the whole fleet at once: each of its inputs (fleet, forecast, prices) that is
 * spread goes into one topic under one key, read by one member, whose SCHEDULE alone has rows
 * to plan (one with inputs read whole keeps them where they are: the other members' SCHEDULE
 * has no fleet, or no forecast, and writes nothing).
 *
 * Joins, as Kafka Streams and ksqlDB co-partition them: a join to a WHOLE relation is exact
 * where its left rows are. A join of two spread sides is exact where it is only when both are
 * KEYED by one owner on columns the join equates (a self-join of a source on its key);
 * otherwise both sides are repartitioned by the join key into one topic (so its partition i
 * holds both sides' rows of the same keys, read by one member), and the join's output is
 * KEYED by its left key columns. Both sides go, not only the one keyed differently: two
 * sources keyed alike are still read by two groups, whose members hold different partition
 * numbers. A join of a WHOLE left side to a spread right side makes each pair once, on the
 * member of its right row; its LEFT JOIN would write each unmatched row on every member, and
 * is refused.
 *
 * The step of an aggregation over a table (a changelog) sends upserts keyed by the table's
 * key, so the reading end can turn them into exact retractions even when a member rebuilds
 * the table after a take-over; a stream read straight from a source (through filters and
 * projections only) is deduplicated by the source origin of its rows. A table joined to goes
 * as its changes: the join keeps the last row per key, so a rebuilt table changes nothing.
 */
#include "vpq_repartition.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vpq_expr.h"
#include "vpq_clock.h"

/* ===== Planning ===== */

enum { MAX_SPREAD_COLS = 16 };

typedef enum spread_kind { SPREAD_WHOLE, SPREAD_KEYED, SPREAD_ANY } spread_kind;

typedef struct spread {
  spread_kind kind;
  int ncols;                 /* KEYED: rows agreeing on cols[0..ncols) are on one member */
  int cols[MAX_SPREAD_COLS];
  int source;                /* the group-read source the rows come from; -1: none, or several */
  int owner;                 /* KEYED: the group deciding the member: a source's relation index,
                                or the relation count plus the index of the step read from */
  bool direct;               /* that source's rows through filters and projections only */
} spread;

static const spread whole = {SPREAD_WHOLE, 0, {0}, -1, -1, false};
static const spread any = {SPREAD_ANY, 0, {0}, -1, -1, false};

/* What planning builds up, relation by relation. */
typedef struct planner {
  const vpq_plan *plan;
  vpq_arena *arena;
  spread *spreads;           /* per relation */
  vpq_repartition *steps;
  int nsteps;
  vpq_repartition_refusal *refused;
  int nrefused;
  int fallback_source;       /* the first group-read source: its cluster carries steps of no one source */
} planner;

/* True for a Kafka source read as a consumer-group member (unbounded). */
static bool group_read(const vpq_relation *rel) {
  if (!rel->is_source || !rel->source.connector || strcmp(rel->source.connector, "kafka") != 0) return false;
  for (int i = 0; i < rel->source.options.count; i++)
    if (strcmp(rel->source.options.items[i].key, "bounded") == 0 && rel->source.options.items[i].value.i) return false;
  return true;
}

static spread source_spread(const vpq_relation *rel) {
  if (!group_read(rel)) return whole;
  spread s = {SPREAD_ANY, 0, {0}, rel->index, -1, true};
  if (rel->nkeys > 0 && rel->nkeys <= MAX_SPREAD_COLS) {
    s.kind = SPREAD_KEYED;
    s.ncols = rel->nkeys;
    s.owner = rel->index;
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

/* The key columns a step writes before each row: `exprs` formatted against `layout`. */
static vpq_schema key_schema(vpq_arena *arena, vpq_bexpr *const *exprs, int n, const vpq_schema *layout) {
  vpq_schema keys = {vpq_arena_alloc(arena, sizeof *keys.cols * (size_t)(n + 1)), n};
  for (int k = 0; k < n; k++) {
    char text[256];
    vpq_bexpr_format(exprs[k], layout, text, sizeof text);
    keys.cols[k] = (vpq_column){.name = vpq_arena_strdup(arena, text), .type = exprs[k]->type, .is_key = true};
  }
  return keys;
}

/* A new step of query `q` (zeroed but for the query and the source). */
static vpq_repartition *new_step(planner *p, const vpq_plan_query *q, int source) {
  vpq_repartition *step = &p->steps[p->nsteps++];
  memset(step, 0, sizeof *step);
  step->query = q;
  step->join = -1;
  step->source = source;
  return step;
}

/* ----- Joins ----- */

/* True when rows of `left` and `right` that match on the join's keys are on one member
 * already: both KEYED by one owner, on columns the join equates pairwise. */
static bool co_located(const spread *left, const spread *right, const vpq_plan_join *join) {
  if (left->kind != SPREAD_KEYED || right->kind != SPREAD_KEYED || left->owner < 0 || left->owner != right->owner ||
      left->ncols != right->ncols)
    return false;
  for (int i = 0; i < left->ncols; i++) {
    bool equated = false;
    for (int k = 0; k < join->nkeys && !equated; k++)
      equated = join->left_keys[k]->kind == VPQ_BEXPR_COLUMN && join->left_keys[k]->column == left->cols[i] &&
                join->right_keys[k]->kind == VPQ_BEXPR_COLUMN && join->right_keys[k]->column == right->cols[i];
    if (!equated) return false;
  }
  return true;
}

/* Places the two steps of join j of `q` (sides spread as `left` and `right`) and returns the
 * spread of the join's output: KEYED by its left key columns, owned by the steps' group. */
static spread add_join_steps(planner *p, const vpq_plan_query *q, int j, const spread *left, const spread *right) {
  const vpq_plan_select *sel = &q->select;
  const vpq_plan_join *join = &sel->joins[j];
  int source = left->source >= 0 ? left->source : right->source >= 0 ? right->source : p->fallback_source;
  int owner = p->plan->nrelations + p->nsteps;
  vpq_schema rows = {sel->input.cols, join->right_offset + join->right->schema.ncols};
  vpq_repartition *l = new_step(p, q, source), *r = new_step(p, q, source);
  l->lead = r->lead = l;
  l->nsides = 2;
  l->sides[0] = l;
  l->sides[1] = r;
  for (int side = 0; side < 2; side++) {
    vpq_repartition *step = side ? r : l;
    step->join = j;
    step->side = side;
    step->rows = rows;
    step->side_rows = side ? (vpq_schema){sel->input.cols + join->right_offset, join->right->schema.ncols}
                           : (vpq_schema){sel->input.cols, join->right_offset};
    step->keys = side ? key_schema(p->arena, join->right_keys, join->nkeys, &join->right->schema)
                      : key_schema(p->arena, join->left_keys, join->nkeys, &sel->input);
  }
  l->dedup = left->direct && left->source >= 0;
  r->dedup = right->direct && right->source >= 0 && join->right->kind == VPQ_REL_STREAM;
  r->lookup = join->kind == VPQ_PLAN_JOIN_TABLE;
  spread out = {SPREAD_KEYED, 0, {0}, source, owner, false};
  for (int k = 0; k < join->nkeys; k++) {
    if (join->left_keys[k]->kind != VPQ_BEXPR_COLUMN || k == MAX_SPREAD_COLS)
      return (spread){SPREAD_ANY, 0, {0}, source, -1, false};
    out.cols[out.ncols++] = join->left_keys[k]->column;
  }
  return out;
}

static void refuse(planner *p, const vpq_plan_query *q, int j, const char *why) {
  p->refused[p->nrefused++] = (vpq_repartition_refusal){q, j, why};
}

/* The spread of a SELECT's input after its joins (the input layout keeps the left columns
 * where they are), placing the steps of joins that need them. */
static spread joined_spread(planner *p, const vpq_plan_query *q) {
  const vpq_plan_select *sel = &q->select;
  spread in = p->spreads[sel->from->index];
  for (int j = 0; j < sel->njoins; j++) {
    const vpq_plan_join *join = &sel->joins[j];
    spread right = p->spreads[join->right->index];
    if (right.kind == SPREAD_WHOLE || co_located(&in, &right, join)) {
      if (join->kind == VPQ_PLAN_JOIN_WITHIN) in.direct = false;
    } else if (in.kind == SPREAD_WHOLE) {
      if (join->left_outer)
        refuse(p, q, j, "its left side is read whole by every member and its right side only in part, so every member "
                        "would write the left rows without a match");
      in = (spread){SPREAD_ANY, 0, {0}, right.source, -1, false};
    } else {
      in = add_join_steps(p, q, j, &in, &right);
    }
  }
  return in;
}

/* ----- Aggregations ----- */

/* Places the step of the aggregation `q` over its joined input `in`. */
static void add_aggregate_step(planner *p, const vpq_plan_query *q, const spread *in) {
  const vpq_plan_select *sel = &q->select;
  vpq_repartition *step = new_step(p, q, in->source >= 0 ? in->source : p->fallback_source);
  step->dedup = in->direct && in->source >= 0 && !sel->input_is_changelog;
  const vpq_relation *from = sel->from;
  if (sel->input_is_changelog && from->kind == VPQ_REL_TABLE && from->nkeys > 0 && !from->windowed && !sel->njoins) {
    step->upsert_keys = from->key_cols;
    step->nupsert_keys = from->nkeys;
  }
  step->keys = key_schema(p->arena, sel->group_keys, sel->rollup ? 0 : sel->ngroup_keys, &sel->input);
  step->rows = step->side_rows = sel->input;
}

/* The spread of a SELECT's output, placing the steps it needs. */
static spread select_spread(planner *p, const vpq_plan_query *q) {
  const vpq_plan_select *sel = &q->select;
  spread in = joined_spread(p, q);
  int map[MAX_SPREAD_COLS];
  if (!sel->aggregate) {
    for (int i = 0; i < in.ncols; i++) map[i] = output_of(q, sel->outputs, sel->noutputs, in.cols[i]);
    return remap(in, map);
  }
  if (in.kind == SPREAD_WHOLE) return in;
  bool move = needs_move(&in, sel) && p->fallback_source >= 0;
  if (move) add_aggregate_step(p, q, &in);
  in.direct = false;
  if (move) {
    /* Rows of one GROUP BY key (all rows, for a global aggregate or a ROLLUP) end on one member. */
    bool one = sel->rollup || sel->ngroup_keys == 0;
    in.kind = SPREAD_KEYED;
    in.owner = p->plan->nrelations + p->nsteps - 1;
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

/* The spread of a SCHEDULE's output, placing its steps: each input that is spread over the
 * members (by port: VPQ_SCHEDULE_FORECAST, _FLEET, _PRICE) moves, under one key, into one
 * topic, so that one member has them all; the output is then KEYED by no columns, owned by
 * that topic's group. WHOLE when all its inputs are. */
static spread schedule_spread(planner *p, const vpq_plan_query *q) {
  const vpq_plan_schedule *sc = &q->schedule;
  const vpq_relation *inputs[VPQ_SCHEDULE_INPUTS] = {sc->forecast, sc->fleet, sc->price};
  int moved[VPQ_SCHEDULE_INPUTS], nmoved = 0, ncols = 0, source = -1;
  for (int port = 0; port < VPQ_SCHEDULE_INPUTS; port++) {
    if (!inputs[port] || p->spreads[inputs[port]->index].kind == SPREAD_WHOLE) continue;
    moved[nmoved++] = port;
    ncols += inputs[port]->schema.ncols;
    if (source < 0) source = p->spreads[inputs[port]->index].source;
  }
  if (!nmoved) return whole;
  if (p->fallback_source < 0) return any;
  if (source < 0) source = p->fallback_source;
  int owner = p->plan->nrelations + p->nsteps;
  vpq_schema rows = {vpq_arena_alloc(p->arena, sizeof *rows.cols * (size_t)ncols), 0};
  vpq_repartition *lead = NULL;
  for (int k = 0; k < nmoved; k++) {
    const vpq_relation *in = inputs[moved[k]];
    const spread *from = &p->spreads[in->index];
    vpq_repartition *step = new_step(p, q, source);
    if (!lead) lead = step;
    step->lead = lead;
    lead->sides[k] = step;
    step->side = k;
    step->port = moved[k];
    step->lookup = moved[k] == VPQ_SCHEDULE_FLEET;
    step->dedup = from->direct && from->source >= 0 && in->kind == VPQ_REL_STREAM;
    step->keys = key_schema(p->arena, NULL, 0, NULL);
    step->side_rows = (vpq_schema){rows.cols + rows.ncols, in->schema.ncols};
    memcpy(rows.cols + rows.ncols, in->schema.cols, sizeof *rows.cols * (size_t)in->schema.ncols);
    rows.ncols += in->schema.ncols;
  }
  lead->nsides = nmoved;
  for (int k = 0; k < nmoved; k++) lead->sides[k]->rows = rows;
  return (spread){SPREAD_KEYED, 0, {0}, source, owner, false};
}

static bool same_spread(const spread *a, const spread *b) {
  if (a->kind != b->kind || a->ncols != b->ncols || a->owner != b->owner) return false;
  for (int i = 0; i < a->ncols; i++)
    if (a->cols[i] != b->cols[i]) return false;
  return true;
}

int vpq_repartition_plan(const vpq_plan *plan, vpq_arena *arena, vpq_repartition **steps,
                         vpq_repartition_refusal **refused, int *nrefused) {
  int n = plan->nrelations, most_steps = 0, joins = 0;
  planner p = {plan, arena, calloc((size_t)n + 1, sizeof *p.spreads), NULL, 0, NULL, 0, -1};
  if (!p.spreads) abort();
  for (int r = 0; r < n; r++) {
    for (int qi = 0; qi < plan->relations[r]->nqueries; qi++) {
      const vpq_plan_query *q = plan->relations[r]->queries[qi];
      int njoins = q->kind == VPQ_PLAN_SELECT ? q->select.njoins : 0;
      most_steps += 1 + 2 * njoins + (q->kind == VPQ_PLAN_SCHEDULE ? 3 : 0);
      joins += njoins;
    }
    if (p.fallback_source < 0 && group_read(plan->relations[r])) p.fallback_source = r;
  }
  p.steps = vpq_arena_alloc(arena, sizeof *p.steps * (size_t)(most_steps + 1));
  p.refused = vpq_arena_alloc(arena, sizeof *p.refused * (size_t)(joins + 1));
  for (int r = 0; r < n; r++) {
    const vpq_relation *rel = plan->relations[r];
    if (rel->is_source || !rel->nqueries) {
      p.spreads[r] = source_spread(rel);
      continue;
    }
    for (int qi = 0; qi < rel->nqueries; qi++) {
      const vpq_plan_query *q = rel->queries[qi];
      spread out = q->kind == VPQ_PLAN_SELECT     ? select_spread(&p, q)
                   : q->kind == VPQ_PLAN_FORECAST ? forecast_spread(q, p.spreads)
                                                  : schedule_spread(&p, q);
      if (qi == 0) {
        p.spreads[r] = out;
      } else if (!same_spread(&p.spreads[r], &out)) {
        bool both_whole = p.spreads[r].kind == SPREAD_WHOLE && out.kind == SPREAD_WHOLE;
        p.spreads[r] = both_whole ? whole : any;
      } else {
        /* Several queries into one relation: one message may give a row through each. */
        if (p.spreads[r].source != out.source) p.spreads[r].source = -1;
        p.spreads[r].direct = false;
      }
    }
  }
  free(p.spreads);
  *steps = p.steps;
  *refused = p.refused;
  *nrefused = p.nrefused;
  return p.nsteps;
}

vpq_repartition *vpq_repartition_find(vpq_repartition *steps, int n, const vpq_plan_query *query) {
  for (int i = 0; i < n; i++)
    if (steps[i].query == query && steps[i].join < 0) return &steps[i];
  return NULL;
}

vpq_repartition *vpq_repartition_find_join(vpq_repartition *steps, int n, const vpq_plan_query *query, int join) {
  for (int i = 0; i < n; i++)
    if (steps[i].query == query && steps[i].join == join && steps[i].side == 0) return &steps[i];
  return NULL;
}

vpq_repartition *vpq_repartition_find_schedule(vpq_repartition *steps, int n, const vpq_plan_query *query, int port) {
  for (int i = 0; i < n; i++)
    if (steps[i].query == query && steps[i].port == port) return &steps[i];
  return NULL;
}

bool vpq_repartition_moves(const vpq_repartition *steps, int n, const vpq_plan_query *query) {
  for (int i = 0; i < n; i++)
    if (steps[i].query == query) return true;
  return false;
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
  if (!w->step->writer || w->step->lookup) return true;
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
  vpq_repartition_announce(op, vpq_clock_wall_ms(), false);
}

/* "left side of the join with `meters`" or "SCHEDULE's fleet", and what marks its rows. */
static void describe_side(const vpq_repartition *step, vpq_buf *out) {
  static const char *const ports[VPQ_SCHEDULE_INPUTS] = {"forecast", "fleet", "prices"};
  if (step->join >= 0)
    vpq_buf_printf(out, ", %s side of the join with %s", step->side ? "right" : "left",
                   step->query->select.joins[step->join].right->name);
  else
    vpq_buf_printf(out, ", SCHEDULE's %s", ports[step->port]);
  if (step->lookup) vpq_buf_puts(out, " (a table: its changes, holding no watermark back)");
}

static void writer_describe(const vpq_op *op, vpq_buf *out) {
  const writer_op *w = (const writer_op *)op;
  const vpq_repartition *step = w->step;
  if (!step->keys.ncols) {
    vpq_buf_puts(out, "to one key");
  } else {
    vpq_buf_puts(out, "by [");
    for (int k = 0; k < step->keys.ncols; k++) vpq_buf_printf(out, "%s%s", k ? ", " : "", step->keys.cols[k].name);
    vpq_buf_puts(out, "]");
  }
  vpq_buf_printf(out, " into `%s`", step->topic);
  if (step->lead) describe_side(step, out);
  if (step->upsert_keys) {
    vpq_buf_puts(out, ", upserts of [");
    for (int k = 0; k < step->nupsert_keys; k++)
      vpq_buf_printf(out, "%s%s", k ? ", " : "", step->rows.cols[step->upsert_keys[k]].name);
    vpq_buf_puts(out, "]");
  } else if (step->dedup) {
    vpq_buf_puts(out, ", one row per source message");
  }
}

static void writer_destroy(vpq_op *op) { free(((writer_op *)op)->rows); }

static const vpq_op_vt writer_vt = {"Repartition", writer_push, writer_watermark, writer_describe, writer_destroy, NULL, NULL, NULL};

vpq_op *vpq_repartition_writer_new(vpq_runtime *rt, vpq_arena *arena, vpq_repartition *step) {
  writer_op *w = calloc(1, sizeof *w);
  if (!w) abort();
  const vpq_plan_select *sel = &step->query->select;
  vpq_op_init(&w->base, &writer_vt, rt, &step->side_rows);
  w->step = step;
  w->wm = w->announced_wm = VPQ_TS_MIN;
  vpq_bexpr **keys = step->query->kind == VPQ_PLAN_SCHEDULE ? NULL /* one key */
                     : step->join < 0                        ? sel->group_keys
                     : step->side                            ? sel->joins[step->join].right_keys
                                                             : sel->joins[step->join].left_keys;
  w->keys = vpq_arena_alloc(arena, sizeof *w->keys * (size_t)(step->keys.ncols + 1));
  for (int k = 0; k < step->keys.ncols; k++) w->keys[k] = vpq_expr_compile(arena, keys[k], rt->intern);
  step->write_op = &w->base;
  return &w->base;
}

/* ===== Reading end: RepartitionScan ===== */

typedef struct scan_op {
  vpq_op base;
  const vpq_repartition *step;
} scan_op;

/* Rows straight from the writing end (no exchange running): an aggregation's get the
 * partition column it reads, -1 (a partition no rebalance takes away), and the watermark to
 * judge them late by: none beyond the aggregate's own, which is the writer's. */
static void scan_push(vpq_op *op, int port, const vpq_batch *batch) {
  (void)port;
  const vpq_repartition *step = ((const scan_op *)op)->step;
  if (step->lead) {
    vpq_op_emit(op, batch);
    return;
  }
  vpq_batch tagged = *batch;
  tagged.ncols = batch->ncols + 2;
  tagged.cols = vpq_arena_alloc(&op->rt->scratch, sizeof *tagged.cols * (size_t)tagged.ncols);
  memcpy(tagged.cols, batch->cols, sizeof *batch->cols * (size_t)batch->ncols);
  vpq_vec *partition = &tagged.cols[batch->ncols], *judged = &tagged.cols[batch->ncols + 1];
  for (vpq_vec *v = partition; v <= judged; v++) {
    v->type = VPQ_TYPE_BIGINT;
    v->data = vpq_arena_alloc(&op->rt->scratch, sizeof *v->data * (size_t)(batch->n + 1));
    v->null = vpq_arena_alloc(&op->rt->scratch, (size_t)batch->n + 1);
  }
  for (int i = 0; i < batch->n; i++) {
    partition->data[i].i = -1;
    partition->null[i] = 0;
    judged->data[i].i = VPQ_TS_MIN;
    judged->null[i] = 0;
  }
  vpq_op_emit(op, &tagged);
}

static void scan_watermark(vpq_op *op, int port, int64_t wm) {
  (void)port;
  vpq_op_emit_watermark(op, wm);
}

static void scan_describe(const vpq_op *op, vpq_buf *out) {
  const vpq_repartition *step = ((const scan_op *)op)->step;
  vpq_buf_printf(out, "`%s` (%s)", step->topic,
                 !step->side                   ? "group of the same name"
                 : step->join >= 0             ? "read with the left side"
                                               : "read with the first input");
  if (step->lead) describe_side(step, out);
  vpq_buf_puts(out, step->lookup ? "" : ", watermark the lowest of its writers'");
}

static void scan_destroy(vpq_op *op) { (void)op; }

static const vpq_op_vt scan_vt = {"RepartitionScan", scan_push, scan_watermark, scan_describe, scan_destroy, NULL, NULL, NULL};

vpq_op *vpq_repartition_scan_new(vpq_runtime *rt, vpq_repartition *step) {
  scan_op *s = calloc(1, sizeof *s);
  if (!s) abort();
  vpq_op_init(&s->base, &scan_vt, rt, &step->side_rows);
  s->base.idle = 0; /* its watermark is the writers' (they announce theirs as they go idle) */
  s->step = step;
  step->scan_op = &s->base;
  return &s->base;
}

/* Emits rows [from, to) of the `batch` of an exchange of several inputs (all of one side) to
 * that side's scan: a view of the side's columns. */
static void push_side(vpq_repartition *lead, const vpq_batch *batch, int side, int from, int to) {
  if (side < 0 || side >= lead->nsides) return;
  vpq_repartition *step = lead->sides[side];
  vpq_op *scan = step->scan_op;
  int first = 0;
  for (int k = 0; k < side; k++) first += lead->sides[k]->side_rows.ncols;
  vpq_batch view = vpq_batch_view(&scan->rt->scratch, batch, first, step->side_rows.ncols, from, to);
  vpq_op_emit(scan, &view);
}

/* Emits rows [from, to) of an aggregation's `batch` (a view, all its columns). */
static void push_rows(vpq_repartition *step, const vpq_batch *batch, int from, int to) {
  if (from == to) return;
  vpq_batch view = vpq_batch_view(&step->scan_op->rt->scratch, batch, 0, batch->ncols, from, to);
  vpq_op_emit(step->scan_op, &view);
}

void vpq_repartition_scan_push(vpq_repartition *step, const vpq_batch *batch) {
  if (!step->nsides) {
    /* The rows between the reader's rows that tell a partition lost, which the aggregate
     * forgets in their place. */
    const vpq_vec *partitions = &batch->cols[step->rows.ncols];
    int from = 0;
    for (int i = 0; i < batch->n; i++) {
      if (batch->diff[i] != 0) continue;
      push_rows(step, batch, from, i);
      vpq_op_aggregate_forget_partition(step->aggregate, (int32_t)partitions->data[i].i);
      from = i + 1;
    }
    push_rows(step, batch, from, batch->n);
    return;
  }
  const vpq_vec *sides = &batch->cols[step->rows.ncols];
  int from = 0;
  while (from < batch->n) {
    int to = from + 1;
    while (to < batch->n && sides->data[to].i == sides->data[from].i) to++;
    push_side(step, batch, (int)sides->data[from].i, from, to);
    from = to;
  }
}

void vpq_repartition_scan_watermark(vpq_repartition *step, int64_t wm) {
  if (!step->nsides) vpq_op_emit_watermark(step->scan_op, wm);
  for (int k = 0; k < step->nsides; k++) vpq_op_emit_watermark(step->sides[k]->scan_op, wm);
}
