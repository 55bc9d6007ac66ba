/* vpq_engine.c — the public API (vpq.h): load a file (parse, analyze, build the physical
 * pipeline), explain it, and run it.
 *
 * Physical planning is one function per logical shape: every relation becomes a relation
 * operator; a source relation gets a source operator in front; a SELECT query becomes
 *
 *   FROM relation ─► join ... (right relations on port 1) ─► Filter (WHERE) ─► Aggregate ─► target
 *   FROM relation ─► join ... ─► Map (WHERE + SELECT list) ─► target          (no aggregation)
 *
 * An aggregation whose input is spread over the members of a consumer group other than by its
 * GROUP BY key is split by a repartition step (vpq_repartition.h): its input goes through an
 * exchange (an internal Kafka topic) to the member that owns its key,
 *
 *   ... ─► Filter (WHERE) ─► Repartition ╌╌ exchange ╌╌► RepartitionScan ─► Aggregate ─► target
 *
 * and a join of two spread sides not on one member by its key gets a step on each side, both
 * into one exchange whose reader feeds both of the join's ports,
 *
 *   left  ─► Repartition ╌╌┐                  ┌╌╌► RepartitionScan ─► join (port 0)
 *   right ─► Repartition ╌╌┴╌╌ one exchange ╌╌┴╌╌► RepartitionScan ─► join (port 1)
 *
 * unless `repartition` is set to off (vpq_engine_set). A join no step makes exact is refused
 * when the run starts. The engine opens the exchanges with the
 * connectors, polls their reading ends between source reads, and keeps their positions and
 * held output in its checkpoints like those of sources and sinks.
 *
 * The run loop reads bounded table sources completely first (so that joins see the whole
 * table), then merges the stream sources by event time: the source whose next row is the
 * oldest goes first, up to the next source's head, so that results do not depend on how
 * inputs were cut into batches. Each top-level batch resets the scratch arena.
 */
#include "vpq.h"

#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../connectors/vpq_codec.h"
#include "../connectors/vpq_connector.h"
#include "../grammar/vpq_ast.h"
#include "vpq_diag.h"
#include "vpq_op.h"
#include "vpq_plan.h"
#include "vpq_repartition.h"
#include "vpq_clock.h"

typedef struct merge_input merge_input;

/* The stream inputs of a run (merge_streams). */
typedef struct merge_input_list {
  merge_input *items;
  int n;
} merge_input_list;

typedef struct bad_ctx bad_ctx;

struct vpq_engine {
  vpq_arena arena; /* AST, plan, programs */
  bad_ctx *bad;    /* during vpq_engine_run: per relation, its source's malformed records (bad_count) */
  vpq_runtime rt;
  char *text;
  char *file_name;
  char *base_dir;
  vpq_plan *plan;
  vpq_op **ops; /* every operator, for explain and destruction */
  int *op_relations; /* per operator: the relation it computes (vpq_engine_operator_stats) */
  int nops, ops_cap;
  int planning;      /* the relation whose operators are being made (engine_track) */
  vpq_op **forecast_ops; /* FORECAST operators in file order, and their queries */
  const vpq_plan_query **forecast_queries;
  int nforecasts;
  bool no_stdout; /* vpq_engine_no_stdout */
  int64_t *state_span;    /* per relation: see state_span() */
  vpq_plan_option default_group; /* "vpq.default_group": the file's name, for Kafka consumer groups */
  int64_t last_commit_ms; /* wall clock of the last source commit */
  int64_t last_lag_ms;    /* wall clock of the last consumer-lag update */
  pthread_mutex_t published_lock; /* vpq_engine_stats_published: the counters as of the last second */
  vpq_stats published;
  int64_t *published_ops; /* per operator: rows in, rows out (vpq_engine_operator_stats) */
  int published_nops;
  vpq_ckpt_out op_state;   /* scratch of save_core: one operator's state */
  vpq_ckpt_out run_state;  /* a run's checkpoints are built here (kept between checkpoints) */
  vpq_op **rel_ops;        /* per relation */
  vpq_op **source_ops;     /* per relation; NULL unless a source */
  vpq_source_slot *slots;  /* per relation */
  vpq_decoder **decoders;  /* per relation, for vpq_engine_push_json */
  bool *subscribed;        /* per relation: has subscribers (its rows are shown whole) */
  volatile sig_atomic_t stop;
  vpq_plan_option *settings;         /* vpq_engine_set: connector properties for this run */
  int nsettings;
  /* Durability (vpq_engine_set_state): checkpoints of a run in a state folder. */
  char *state_dir;         /* NULL: no checkpoints */
  int64_t checkpoint_interval_ms;
  bool reset_state;
  int lock_fd;
  uint64_t epoch;          /* the last checkpoint taken or restored */
  uint64_t run_id;         /* names this state's output (exactly-once identities) */
  int64_t last_checkpoint_ms; /* wall clock */
  uint64_t fingerprint;    /* of the plan */
  int64_t *checkpoint_wm;  /* per relation: its source's watermark at the last checkpoint */
  merge_input_list merging; /* the inputs being merged, for their read but unprocessed rows */
  /* Repartitioning (vpq_repartition.h): the steps of the plan, unless `repartition` is off. */
  vpq_repartition *steps;
  int nsteps;
  vpq_repartition_refusal *refused; /* joins repartitioning cannot make exact: the run refuses them */
  int nrefused;
  const char *repartition; /* the `repartition` setting: "on" (default) or "off" */
  bool exchange_bad_reported; /* a malformed exchange message was reported (once) */
  bool dead_letters_lost;      /* a dead-letter output refused lines (dead_letters_lost) */
  bool restored_older;         /* the checkpoint restored is older than one that could not be read */
};

static vpq_op *engine_track(vpq_engine *e, vpq_op *op) {
  if (e->nops == e->ops_cap) {
    e->ops_cap = e->ops_cap ? e->ops_cap * 2 : 32;
    e->ops = realloc(e->ops, sizeof *e->ops * (size_t)e->ops_cap);
    e->op_relations = realloc(e->op_relations, sizeof *e->op_relations * (size_t)e->ops_cap);
    if (!e->ops || !e->op_relations) abort();
  }
  e->op_relations[e->nops] = e->planning;
  e->ops[e->nops++] = op;
  return op;
}

vpq_engine *vpq_engine_new(void) {
  vpq_engine *e = calloc(1, sizeof *e);
  if (!e) abort();
  vpq_arena_init(&e->arena);
  vpq_arena_init(&e->rt.scratch);
  e->rt.intern = vpq_intern_new();
  e->rt.log = stderr;
  e->rt.stats.consumer_lag = -1;
  e->published.consumer_lag = -1;
  pthread_mutex_init(&e->published_lock, NULL);
  e->lock_fd = -1;
  return e;
}

/* Frees every operator of the pipeline (the plan and the arena stay). */
static void destroy_ops(vpq_engine *e) {
  for (int i = 0; i < e->nops; i++) {
    e->ops[i]->vt->destroy(e->ops[i]);
    vpq_op_release(e->ops[i]);
    free(e->ops[i]);
  }
  e->nops = 0;
  free(e->forecast_ops);
  free(e->forecast_queries);
  e->forecast_ops = NULL;
  e->forecast_queries = NULL;
  e->nforecasts = 0;
}

void vpq_engine_free(vpq_engine *e) {
  if (!e) return;
  destroy_ops(e);
  free(e->ops);
  free(e->op_relations);
  free(e->published_ops);
  for (int i = 0; i < e->nsteps; i++) {
    if (e->steps[i].reader) e->steps[i].reader->vt->close(e->steps[i].reader);
    if (e->steps[i].writer) e->steps[i].writer->vt->close(e->steps[i].writer);
  }
  free(e->settings);
  if (e->plan) {
    for (int r = 0; r < e->plan->nrelations; r++) {
      if (e->slots[r].src) e->slots[r].src->vt->close(e->slots[r].src);
      if (e->slots[r].dl) vpq_dead_letter_close(e->slots[r].dl);
      if (e->decoders[r]) vpq_decoder_free(e->decoders[r]);
    }
  }
  vpq_ckpt_unlock(e->lock_fd);
  pthread_mutex_destroy(&e->published_lock);
  vpq_buf_free(&e->op_state.buf);
  vpq_buf_free(&e->run_state.buf);
  free(e->state_dir);
  vpq_intern_free(e->rt.intern);
  vpq_arena_free(&e->rt.scratch);
  vpq_arena_free(&e->arena);
  free(e);
}

/* ===== Physical planning ===== */

/* The layout a join emits: the query's input layout up to and including the join. */
static const vpq_schema *join_schema(vpq_engine *e, const vpq_plan_select *sel, int j) {
  vpq_schema *schema = vpq_arena_alloc(&e->arena, sizeof *schema);
  schema->cols = sel->input.cols;
  schema->ncols = sel->joins[j].right_offset + sel->joins[j].right->schema.ncols;
  return schema;
}

static void connect_into(vpq_op *from, vpq_op *to) { vpq_op_connect(from, to, to->ninputs); }

static void plan_select(vpq_engine *e, const vpq_plan_query *q) {
  const vpq_plan_select *sel = &q->select;
  vpq_runtime *rt = &e->rt;
  vpq_op *prev = e->rel_ops[sel->from->index];
  for (int j = 0; j < sel->njoins; j++) {
    const vpq_plan_join *join = &sel->joins[j];
    const vpq_schema *schema = join_schema(e, sel, j);
    vpq_op *jop = join->kind == VPQ_PLAN_JOIN_TABLE
                      ? vpq_op_table_join_new(rt, &e->arena, sel, j, schema)
                      : vpq_op_window_join_new(rt, &e->arena, sel, j, schema, e->slots);
    engine_track(e, jop);
    vpq_op *sides[2] = {prev, e->rel_ops[join->right->index]};
    vpq_repartition *step = vpq_repartition_find_join(e->steps, e->nsteps, q, j);
    for (int side = 0; step && side < 2; side++) {
      /* Both sides move to the member owning their join key. */
      vpq_repartition *x = step->sides[side];
      vpq_op *writer = engine_track(e, vpq_repartition_writer_new(rt, &e->arena, x));
      vpq_op_connect(sides[side], writer, 0);
      sides[side] = engine_track(e, vpq_repartition_scan_new(rt, x));
      vpq_op_connect(writer, sides[side], 0);
    }
    vpq_op_connect(sides[0], jop, 0);
    vpq_op_connect(sides[1], jop, 1);
    prev = jop;
  }
  if (sel->aggregate) {
    if (sel->where) {
      vpq_op *filter = engine_track(e, vpq_op_map_new(rt, &e->arena, q, &sel->input, false));
      vpq_op_connect(prev, filter, 0);
      prev = filter;
    }
    vpq_repartition *step = vpq_repartition_find(e->steps, e->nsteps, q);
    if (step) {
      vpq_op *writer = engine_track(e, vpq_repartition_writer_new(rt, &e->arena, step));
      vpq_op_connect(prev, writer, 0);
      vpq_op *scan = engine_track(e, vpq_repartition_scan_new(rt, step));
      vpq_op_connect(writer, scan, 0);
      prev = scan;
    }
    vpq_op *agg = engine_track(e, vpq_op_aggregate_new(rt, &e->arena, q, e->slots, step != NULL));
    if (step) step->aggregate = agg;
    vpq_op_connect(prev, agg, 0);
    prev = agg;
  } else {
    vpq_op *map = engine_track(e, vpq_op_map_new(rt, &e->arena, q, &sel->input, true));
    vpq_op_connect(prev, map, 0);
    prev = map;
  }
  connect_into(prev, e->rel_ops[q->target->index]);
}

/* Gives STRING constants their interned ids (the analyzer knows no string pool). */
static void intern_strings(vpq_engine *e, vpq_bexpr *x) {
  if (!x) return;
  if (x->kind == VPQ_BEXPR_CONST && x->type == VPQ_TYPE_STRING && x->text)
    x->value.i = vpq_intern_id(e->rt.intern, x->text, strlen(x->text));
  for (int i = 0; i < x->nargs; i++) intern_strings(e, x->args[i]);
}

static void intern_query_strings(vpq_engine *e, vpq_plan_select *s) {
  intern_strings(e, s->where);
  intern_strings(e, s->having);
  for (int i = 0; i < s->ngroup_keys; i++) intern_strings(e, s->group_keys[i]);
  for (int i = 0; i < s->naggs; i++) intern_strings(e, s->aggs[i].arg);
  for (int i = 0; i < s->noutputs; i++) intern_strings(e, s->outputs[i]);
  for (int j = 0; j < s->njoins; j++) {
    for (int k = 0; k < s->joins[j].nkeys; k++) {
      intern_strings(e, s->joins[j].left_keys[k]);
      intern_strings(e, s->joins[j].right_keys[k]);
    }
    intern_strings(e, s->joins[j].residual);
  }
}

static void plan_forecast(vpq_engine *e, vpq_plan_query *q) {
  vpq_plan_forecast *fc = &q->forecast;
  intern_strings(e, fc->value);
  for (int i = 0; i < fc->nby; i++) intern_strings(e, fc->by[i]);
  vpq_op *op = engine_track(e, vpq_op_forecast_new(&e->rt, &e->arena, q, e->slots));
  e->forecast_ops = realloc(e->forecast_ops, sizeof *e->forecast_ops * (size_t)(e->nforecasts + 1));
  e->forecast_queries = realloc(e->forecast_queries, sizeof *e->forecast_queries * (size_t)(e->nforecasts + 1));
  if (!e->forecast_ops || !e->forecast_queries) abort();
  e->forecast_ops[e->nforecasts] = op;
  e->forecast_queries[e->nforecasts++] = q;
  vpq_op_connect(e->rel_ops[fc->from->index], op, 0);
  connect_into(op, e->rel_ops[q->target->index]);
}

static void plan_schedule(vpq_engine *e, const vpq_plan_query *q) {
  const vpq_plan_schedule *sc = &q->schedule;
  vpq_op *op = engine_track(e, vpq_op_schedule_new(&e->rt, q, e->slots));
  const vpq_relation *inputs[VPQ_SCHEDULE_INPUTS] = {sc->forecast, sc->fleet, sc->price};
  for (int port = 0; port < VPQ_SCHEDULE_INPUTS; port++) {
    if (!inputs[port]) continue;
    vpq_op *in = e->rel_ops[inputs[port]->index];
    vpq_repartition *step = vpq_repartition_find_schedule(e->steps, e->nsteps, q, port);
    if (step) {
      /* The input moves to the one member that plans (vpq_repartition.h). */
      vpq_op *writer = engine_track(e, vpq_repartition_writer_new(&e->rt, &e->arena, step));
      vpq_op_connect(in, writer, 0);
      in = engine_track(e, vpq_repartition_scan_new(&e->rt, step));
      vpq_op_connect(writer, in, 0);
    }
    vpq_op_connect(in, op, port);
  }
  connect_into(op, e->rel_ops[q->target->index]);
}

/* The value of option `key` of a connector, or NULL. */
static const char *option_text(const vpq_plan_connector *conn, const char *key) {
  for (int i = 0; i < conn->options.count; i++)
    if (strcmp(conn->options.items[i].key, key) == 0) return conn->options.items[i].text;
  return NULL;
}

/* The run's setting `key` (vpq_engine_set), or NULL. */
static const char *setting(const vpq_engine *e, const char *key) {
  for (int s = e->nsettings - 1; s >= 0; s--)
    if (strcmp(e->settings[s].key, key) == 0) return e->settings[s].text;
  return NULL;
}

/* Names each repartition step's topic `<prefix>.<relation>[.<n>][.join[<j>]].repartition`:
 * the prefix is the `group` of the source its rows come from when one is given (WITH or
 * --set), else the file's name (as default consumer groups are); n counts the relation's
 * queries after its first; a join's steps (both sides: one topic) add `.join`, and `.join<j>`
 * for the query's j-th join after its first. Characters a topic name cannot have become `_`. */
static void name_steps(vpq_engine *e) {
  for (int i = 0; i < e->nsteps; i++) {
    vpq_repartition *x = &e->steps[i];
    const vpq_relation *src = e->plan->relations[x->source], *target = x->query->target;
    const char *prefix = option_text(&src->source, "group");
    if (!prefix) prefix = setting(e, "group");
    if (!prefix) prefix = e->default_group.text;
    int q = 0;
    while (target->queries[q] != x->query) q++;
    char nth[16] = "", join[24] = "";
    if (q) snprintf(nth, sizeof nth, ".%d", q);
    if (x->join == 0) snprintf(join, sizeof join, ".join");
    else if (x->join > 0) snprintf(join, sizeof join, ".join%d", x->join);
    snprintf(x->topic, sizeof x->topic, "%s.%s%s%s.repartition", prefix, target->name, nth, join);
    for (char *c = x->topic; *c; c++)
      if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') && !(*c >= '0' && *c <= '9') && !strchr("._-", *c)) *c = '_';
  }
}

static bool repartition_off(const char *value) {
  return value && (strcmp(value, "off") == 0 || strcmp(value, "false") == 0);
}

static void plan_physical(vpq_engine *e) {
  const vpq_plan *plan = e->plan;
  int n = plan->nrelations;
  e->nsteps = e->nrefused = 0;
  if (!repartition_off(e->repartition))
    e->nsteps = vpq_repartition_plan(plan, &e->arena, &e->steps, &e->refused, &e->nrefused);
  e->rel_ops = vpq_arena_alloc(&e->arena, sizeof *e->rel_ops * (size_t)(n + 1));
  e->source_ops = vpq_arena_alloc(&e->arena, sizeof *e->source_ops * (size_t)(n + 1));
  e->slots = vpq_arena_alloc(&e->arena, sizeof *e->slots * (size_t)(n + 1));
  e->state_span = vpq_arena_alloc(&e->arena, sizeof *e->state_span * (size_t)(n + 1));
  for (int r = 0; r < n; r++) e->state_span[r] = -1;
  const char *base = strrchr(plan->file, '/');
  char *stem = vpq_arena_strdup(&e->arena, base ? base + 1 : plan->file);
  char *dot = strrchr(stem, '.');
  if (dot && dot != stem) *dot = '\0';
  e->default_group = (vpq_plan_option){"vpq.default_group", {0}, VPQ_TYPE_STRING, stem, {0}};
  e->decoders = vpq_arena_alloc(&e->arena, sizeof *e->decoders * (size_t)(n + 1));
  e->subscribed = vpq_arena_alloc(&e->arena, sizeof *e->subscribed * (size_t)(n + 1));
  name_steps(e);
  for (int r = 0; r < n; r++) {
    const vpq_relation *rel = plan->relations[r];
    e->planning = r;
    e->slots[r].rel = rel;
    e->rel_ops[r] = engine_track(e, vpq_op_relation_new(&e->rt, rel));
    if (rel->is_source || (!rel->nqueries && !rel->is_sink)) {
      e->source_ops[r] = engine_track(e, vpq_op_source_new(&e->rt, rel, &e->slots[r]));
      connect_into(e->source_ops[r], e->rel_ops[r]);
    }
  }
  for (int r = 0; r < n; r++) {
    const vpq_relation *rel = plan->relations[r];
    e->planning = r;
    for (int q = 0; q < rel->nqueries; q++) {
      vpq_plan_query *query = rel->queries[q];
      if (query->kind == VPQ_PLAN_SELECT) {
        intern_query_strings(e, &query->select);
        plan_select(e, query);
      } else if (query->kind == VPQ_PLAN_FORECAST) {
        plan_forecast(e, query);
      } else {
        plan_schedule(e, query);
      }
    }
  }
}

int vpq_engine_load(vpq_engine *e, const char *file_name, const char *text, FILE *diag) {
  e->text = vpq_arena_strdup(&e->arena, text);
  e->file_name = vpq_arena_strdup(&e->arena, file_name);
  e->base_dir = vpq_arena_strdup(&e->arena, dirname(vpq_arena_strdup(&e->arena, file_name)));
  vpq_diag d;
  vpq_diag_init(&d, e->file_name, e->text, strlen(e->text));
  vpq_ast_file *ast = vpq_parse(&e->arena, &d);
  if (ast) e->plan = vpq_analyze(&e->arena, &d, ast, e->file_name, e->base_dir);
  vpq_diag_print(&d, diag);
  int errors = d.errors;
  vpq_diag_free(&d);
  if (errors || !e->plan) {
    e->plan = NULL;
    return -1;
  }
  plan_physical(e);
  return 0;
}

/* ===== Explain ===== */

static void explain_op(const vpq_engine *e, const vpq_op *op, FILE *out, const char *indent, bool last, bool root) {
  vpq_buf line = {0};
  op->vt->describe(op, &line);
  bool is_relation = strcmp(op->vt->kind, "Relation") == 0;
  if (root) {
    fprintf(out, "%s\n", line.data ? line.data : "");
  } else if (is_relation) {
    const char *name = line.data ? strchr(line.data, ' ') : NULL;
    const char *end = name ? strstr(name, " (") : NULL;
    int len = name ? (int)(end ? end - name - 1 : (ptrdiff_t)strlen(name + 1)) : 0;
    fprintf(out, "%s%s %.*s\n", indent, last ? "└─" : "├─", len, name ? name + 1 : "");
  } else {
    fprintf(out, "%s%s %s %s\n", indent, last ? "└─" : "├─", op->vt->kind, line.data ? line.data : "");
  }
  vpq_buf_free(&line);
  if (is_relation && !root) return;
  char child[512];
  snprintf(child, sizeof child, "%s%s", indent, root ? "" : (last ? "   " : "│  "));
  for (int i = 0; i < op->ninputs; i++) explain_op(e, op->inputs[i], out, child, i == op->ninputs - 1, false);
}

static void explain_dot(const vpq_engine *e, FILE *out) {
  fprintf(out, "digraph vpq {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n");
  for (int i = 0; i < e->nops; i++) {
    vpq_buf line = {0};
    e->ops[i]->vt->describe(e->ops[i], &line);
    fprintf(out, "  op%d [label=\"%s\\n", i, e->ops[i]->vt->kind);
    for (size_t c = 0; c < line.len; c++) {
      if (line.data[c] == '"' || line.data[c] == '\\') fputc('\\', out);
      fputc(line.data[c], out);
    }
    fprintf(out, "\"];\n");
    vpq_buf_free(&line);
  }
  for (int i = 0; i < e->nops; i++)
    for (int o = 0; o < e->ops[i]->nouts; o++)
      for (int t = 0; t < e->nops; t++)
        if (e->ops[t] == e->ops[i]->outs[o].op) fprintf(out, "  op%d -> op%d;\n", i, t);
  fprintf(out, "}\n");
}

void vpq_engine_explain(const vpq_engine *e, FILE *out, bool dot) {
  if (!e->plan) return;
  if (dot) {
    explain_dot(e, out);
    return;
  }
  for (int r = 0; r < e->plan->nrelations; r++) {
    explain_op(e, e->rel_ops[r], out, "", true, true);
    if (r + 1 < e->plan->nrelations) fputc('\n', out);
  }
}

int vpq_engine_explain_relation(const vpq_engine *e, const char *name, FILE *out) {
  const vpq_relation *rel = e->plan ? vpq_plan_find(e->plan, name) : NULL;
  if (!rel) return -1;
  explain_op(e, e->rel_ops[rel->index], out, "", true, true);
  return 0;
}

int vpq_engine_relations(const vpq_engine *e, const char **names, bool *is_table, int max) {
  int n = e->plan ? e->plan->nrelations : 0;
  for (int r = 0; r < n && r < max; r++) {
    names[r] = e->plan->relations[r]->name;
    is_table[r] = e->plan->relations[r]->kind == VPQ_REL_TABLE;
  }
  return n;
}

/* ===== State (checkpoints) =====
 *
 * The engine's state is the counters, the string pool (in id order, so that every interned
 * id an operator holds means the same string after a restore) and each operator's own state
 * as a length-prefixed block, in operator order. The plan's fingerprint guarantees that the
 * operators are the same ones: the pool then starts with the same query constants, and a
 * restore checks that it does. */

enum { STATE_TAG = 0x5650515354415445 /* "VPQSTATE" */ };

static void save_core(vpq_engine *e, vpq_ckpt_out *out) {
  const vpq_stats *st = &e->rt.stats;
  vpq_ckpt_put_u64(out, STATE_TAG);
  int64_t counters[] = {st->rows_in,     st->rows_out,       st->malformed,   st->late,
                        st->dead_lettered, st->peak_groups,   st->group_bytes, e->rt.open_groups,
                        e->rt.now_ms,      st->refused_out};
  for (size_t i = 0; i < sizeof counters / sizeof *counters; i++) vpq_ckpt_put_i64(out, counters[i]);
  for (int i = 0; i < VPQ_REASON_COUNT; i++) vpq_ckpt_put_i64(out, st->refused[i]);
  size_t nstrings = vpq_intern_count(e->rt.intern);
  vpq_ckpt_put_u64(out, nstrings);
  for (size_t id = 1; id < nstrings; id++) {
    size_t len;
    const char *text = vpq_intern_text(e->rt.intern, (int64_t)id, &len);
    vpq_ckpt_put_bytes(out, text, len);
  }
  vpq_ckpt_put_u64(out, (uint64_t)e->nops);
  vpq_ckpt_out *own = &e->op_state; /* kept between checkpoints: no regrowing, no page faults */
  for (int i = 0; i < e->nops; i++) {
    const vpq_op *op = e->ops[i];
    vpq_ckpt_put_i64(out, op->rows_in);
    vpq_ckpt_put_i64(out, op->rows_out);
    vpq_ckpt_put_i64(out, op->passed_wm);
    own->buf.len = 0;
    if (op->vt->save) op->vt->save(op, own);
    vpq_ckpt_put_bytes(out, own->buf.data, own->buf.len);
  }
}

/* Restores what save_core wrote into the freshly loaded engine; false with `err` filled when
 * the state is malformed or belongs to another plan. */
static bool load_core(vpq_engine *e, vpq_ckpt_in *in, char *err, size_t err_size) {
  vpq_stats *st = &e->rt.stats;
  if (vpq_ckpt_get_u64(in) != STATE_TAG) vpq_ckpt_fail(in, "not engine state");
  int64_t *counters[] = {&st->rows_in,     &st->rows_out,     &st->malformed,   &st->late,
                         &st->dead_lettered, &st->peak_groups,  &st->group_bytes, &e->rt.open_groups,
                         &e->rt.now_ms,      &st->refused_out};
  for (size_t i = 0; i < sizeof counters / sizeof *counters; i++) *counters[i] = vpq_ckpt_get_i64(in);
  for (int i = 0; i < VPQ_REASON_COUNT; i++) st->refused[i] = vpq_ckpt_get_i64(in);
  int64_t nstrings = vpq_ckpt_get_count(in, INT32_MAX);
  size_t have = vpq_intern_count(e->rt.intern);
  if (!in->error && (size_t)nstrings < have) vpq_ckpt_fail(in, "the string pool is smaller than the query's");
  for (int64_t id = 1; id < nstrings && !in->error; id++) {
    size_t len, known_len;
    const char *text = vpq_ckpt_get_bytes(in, &len);
    if (in->error) break;
    if ((size_t)id < have) {
      const char *known = vpq_intern_text(e->rt.intern, id, &known_len);
      if (known_len != len || memcmp(known, text, len) != 0) vpq_ckpt_fail(in, "the string pool does not match the query's");
    } else if (vpq_intern_id(e->rt.intern, text, len) != id) {
      vpq_ckpt_fail(in, "the string pool holds a string twice");
    }
  }
  if (!in->error && vpq_ckpt_get_count(in, INT32_MAX) != e->nops) vpq_ckpt_fail(in, "a different number of operators");
  for (int i = 0; i < e->nops && !in->error; i++) {
    vpq_op *op = e->ops[i];
    op->rows_in = vpq_ckpt_get_i64(in);
    op->rows_out = vpq_ckpt_get_i64(in);
    op->passed_wm = vpq_ckpt_get_i64(in);
    size_t len;
    const void *bytes = vpq_ckpt_get_bytes(in, &len);
    if (in->error) break;
    vpq_ckpt_in own = vpq_ckpt_in_init(bytes, len);
    if (op->vt->load) op->vt->load(op, &own);
    else if (len) vpq_ckpt_fail(&own, "state for an operator that keeps none");
    if (!own.error && own.p != own.end) vpq_ckpt_fail(&own, "state left over");
    if (own.error) {
      snprintf(err, err_size, "operator %d (%s): %s", i, op->vt->kind, own.error);
      return false;
    }
  }
  if (in->error) {
    snprintf(err, err_size, "%s", in->error);
    return false;
  }
  return true;
}

int vpq_engine_save_state(vpq_engine *e, char **data, size_t *len) {
  if (!e->plan) return -1;
  vpq_ckpt_out out = {0};
  save_core(e, &out);
  *data = out.buf.data;
  *len = out.buf.len;
  return 0;
}

int vpq_engine_load_state(vpq_engine *e, const char *data, size_t len, char *err, size_t err_size) {
  if (!e->plan) {
    snprintf(err, err_size, "no file loaded");
    return -1;
  }
  vpq_ckpt_in in = vpq_ckpt_in_init(data, len);
  if (!load_core(e, &in, err, err_size)) return -1;
  if (in.p != in.end) {
    snprintf(err, err_size, "%zu bytes after the engine state", (size_t)(in.end - in.p));
    return -1;
  }
  return 0;
}

/* ===== Running ===== */

/* A malformed record a source decoded (a batch is decoded ahead of the rows pushed), counted
 * when it is due as its dead letter is written (bad_count), so that a checkpoint between the
 * two does not count what a restore reads again. */
typedef struct bad_record {
  vpq_origin origin;
  vpq_reason reason;
  bool dead_lettered;
} bad_record;

/* A source's context for its malformed records: the engine, the relation, those not counted yet. */
struct bad_ctx {
  vpq_engine *engine;
  int relation;
  bad_record *pending;
  int npending, cap;
};

/* A source's malformed record (vpq_bad_record_fn): dead-lettered (held until due) and pending
 * for bad_count. */
static void engine_bad_record(void *ctx, const char *reason, vpq_origin origin, const char *raw, size_t len) {
  bad_ctx *b = ctx;
  vpq_engine *e = b->engine;
  vpq_source_slot *slot = &e->slots[b->relation];
  bool dead_lettered = false;
  if (slot->dl) {
    char where[256];
    if (slot->src) slot->src->vt->format_origin(slot->src, origin, where, sizeof where);
    else snprintf(where, sizeof where, "%s", e->plan->relations[b->relation]->name);
    dead_lettered = vpq_dead_letter_raw(slot->dl, origin, reason, where, raw, len);
  }
  if (b->npending == b->cap) {
    b->cap = b->cap ? 2 * b->cap : 16;
    b->pending = realloc(b->pending, sizeof *b->pending * (size_t)b->cap);
    if (!b->pending) abort();
  }
  b->pending[b->npending++] = (bad_record){origin, vpq_runtime_reason(reason), dead_lettered};
}

/* Counts the malformed records of `b` that are due, by the rule of dead letters: before the first
 * of `unread` (the rows read but not pushed yet) in its partition; the others stay pending. */
static void bad_count(vpq_engine *e, bad_ctx *b, const vpq_origin *unread, int nunread) {
  if (!b->npending) return;
  vpq_origin *first = nunread ? malloc(sizeof *first * (size_t)nunread) : NULL;
  if (nunread && !first) abort();
  const int nfirst = vpq_origins_first_unread(unread, nunread, first);
  int kept = 0;
  for (int i = 0; i < b->npending; i++) {
    const bad_record *rec = &b->pending[i];
    if (!vpq_origin_read(rec->origin, first, nfirst)) {
      b->pending[kept++] = *rec;
      continue;
    }
    e->rt.stats.malformed++;
    e->rt.stats.refused[rec->reason]++;
    e->rt.stats.dead_lettered += rec->dead_lettered;
  }
  b->npending = kept;
  free(first);
}

/* A stream source being merged: its decoded batch and the next row to push. */
struct merge_input {
  int relation;
  vpq_batch *batch;
  int pos;
  bool done;
};

static int64_t head_ts(const vpq_engine *e, const merge_input *in) {
  const vpq_relation *rel = e->plan->relations[in->relation];
  if (rel->ts_col < 0) return 0;
  const vpq_vec *col = &in->batch->cols[rel->ts_col];
  return col->null[in->pos] ? VPQ_TS_MIN : col->data[in->pos].i;
}

/* Reads the next batch of a source; false when it has ended, or, for an unbounded source,
 * when it has nothing right now. A bounded source is waited for, so that bounded inputs merge
 * in exact event-time order. */
static bool refill(vpq_engine *e, merge_input *in) {
  vpq_source *src = e->slots[in->relation].src;
  in->batch->n = 0;
  in->pos = 0;
  while (!in->done && !e->stop) {
    bool done = false;
    if (src->vt->read(src, in->batch, in->batch->origin, &done) && in->batch->n > 0) {
      if (!src->bounded) e->rt.now_ms = vpq_clock_wall_ms(); /* the rows arrive now */
      return true;
    }
    /* No row: the malformed records read are read for good (no unread row is before them). */
    vpq_dead_letter_flush(e->slots[in->relation].dl);
    bad_count(e, &e->bad[in->relation], NULL, 0);
    if (done) in->done = true;
    else if (!src->bounded) vpq_engine_tick(e, vpq_clock_wall_ms()); /* nothing now: idle sources let windows close */
    if (!src->bounded) return false;
  }
  return false;
}

/* Pushes rows [from, to) of `in`'s batch into its source operator. */
static void push_slice(vpq_engine *e, merge_input *in, int from, int to) {
  vpq_batch *b = in->batch;
  vpq_batch view = vpq_batch_view(&e->rt.scratch, b, 0, b->ncols, from, to);
  vpq_op_source_push(e->source_ops[in->relation], &view);
  vpq_arena_reset(&e->rt.scratch);
  /* Dead letters up to the next unread row are complete: write them in input order. */
  vpq_dead_letter *dl = e->slots[in->relation].dl;
  if (dl) vpq_dead_letter_flush_read(dl, b->origin + to, b->n - to);
  bad_count(e, &e->bad[in->relation], b->origin + to, b->n - to);
}

bool vpq_engine_setting_known(const char *key, char *err, size_t err_size) {
  /* Options the analysis reads from a statement's own WITH: a setting comes too late for them. */
  static const char *const statement_only[] = {"connector", "format",      "path",          "topic",
                                               "stream",    "timestamp",   "watermark_delay", "idle_timeout",
                                               "dead_letter", "max_row_bytes", "max_keys",  "stale_after"};
  for (size_t i = 0; i < sizeof statement_only / sizeof *statement_only; i++)
    if (strcmp(key, statement_only[i]) == 0) {
      snprintf(err, err_size, "`%s` belongs to a statement: set it in the statement's WITH (...), not with --set", key);
      return false;
    }
  const char *hint = NULL;
  if (strcmp(key, "repartition") == 0 || vpq_analyze_option_known(key, &hint)) return true;
  if (hint) snprintf(err, err_size, "unknown setting `%s`; did you mean `%s`?", key, hint);
  else snprintf(err, err_size, "unknown setting `%s`: --set takes a connector option, kafka.<property> or repartition", key);
  return false;
}

void vpq_engine_set(vpq_engine *e, const char *key, const char *value) {
  e->settings = realloc(e->settings, sizeof *e->settings * (size_t)(e->nsettings + 1));
  if (!e->settings) abort();
  e->settings[e->nsettings++] = (vpq_plan_option){vpq_arena_strdup(&e->arena, key), {0, 0}, VPQ_TYPE_STRING,
                                                  vpq_arena_strdup(&e->arena, value), {0}};
  if (strcmp(key, "repartition") == 0) {
    bool was_off = repartition_off(e->repartition);
    e->repartition = e->settings[e->nsettings - 1].text;
    if (e->plan && was_off != repartition_off(e->repartition)) {
      /* The pipeline changes shape: plan it again (before any run or subscription). */
      destroy_ops(e);
      plan_physical(e);
    }
  }
  if (e->plan) name_steps(e);
}

/* A connector with the run's settings added where its WITH (...) does not name them. */
/* (The copy has room for one more option: a source's default group, a sink's identity.) */
static vpq_plan_connector with_settings(vpq_engine *e, const vpq_plan_connector *conn) {
  vpq_plan_connector out = *conn;
  out.options.items = vpq_arena_alloc(&e->arena, sizeof *out.options.items * (size_t)(conn->options.count + e->nsettings + 1));
  if (conn->options.count) memcpy(out.options.items, conn->options.items, sizeof *out.options.items * (size_t)conn->options.count);
  for (int s = 0; s < e->nsettings; s++) {
    bool named = false;
    for (int i = 0; i < conn->options.count; i++) named |= strcmp(conn->options.items[i].key, e->settings[s].key) == 0;
    if (!named) out.options.items[out.options.count++] = e->settings[s];
  }
  return out;
}

static int64_t add_span(int64_t a, int64_t b) { return a == VPQ_TS_MAX || b == VPQ_TS_MAX || a > VPQ_TS_MAX - b ? VPQ_TS_MAX : a + b; }

/* How far back in event time a row of relation r can still change results that are not
 * written yet: the time downstream state keeps it (a window: its size + grace, windows over
 * windows adding up; a WITHIN join: its bound), VPQ_TS_MAX when state keeps it for good
 * (tables, sessions, a table joined to, FORECAST's history, SCHEDULE's fleet). A source may
 * commit its offsets up to its watermark minus this span. Memoised in e->state_span. */
static int64_t state_span(vpq_engine *e, int r) {
  if (e->state_span[r] >= 0) return e->state_span[r];
  const vpq_plan *plan = e->plan;
  const vpq_relation *rel = plan->relations[r];
  int64_t span = rel->kind == VPQ_REL_TABLE ? VPQ_TS_MAX : 0;
  for (int t = r + 1; t < plan->nrelations && span != VPQ_TS_MAX; t++) {
    for (int qi = 0; qi < plan->relations[t]->nqueries; qi++) {
      const vpq_plan_query *q = plan->relations[t]->queries[qi];
      int64_t own = -1;
      if (q->kind == VPQ_PLAN_FORECAST && q->forecast.from == rel) own = VPQ_TS_MAX;
      if (q->kind == VPQ_PLAN_SCHEDULE)
        own = q->schedule.fleet == rel ? VPQ_TS_MAX : q->schedule.forecast == rel || q->schedule.price == rel ? 0 : -1;
      if (q->kind == VPQ_PLAN_SELECT) {
        const vpq_plan_select *sel = &q->select;
        bool reads = sel->from == rel;
        int64_t joins = 0;
        for (int j = 0; j < sel->njoins; j++) {
          if (sel->joins[j].right == rel && sel->joins[j].kind == VPQ_PLAN_JOIN_TABLE) own = VPQ_TS_MAX;
          reads |= sel->joins[j].right == rel;
          if (sel->joins[j].kind == VPQ_PLAN_JOIN_WITHIN) joins = add_span(joins, sel->joins[j].within_ms);
        }
        if (reads && own != VPQ_TS_MAX) {
          const vpq_plan_window *w = &sel->window;
          own = joins;
          if (vpq_repartition_moves(e->steps, e->nsteps, q)) {
            /* Repartitioned: a row is kept by the exchange once written (commit_sources flushes
             * it first); the exchange's reader commits for the aggregate. */
            if (own > span) span = own;
            continue;
          }
          if (sel->aggregate && (w->kind == VPQ_WINDOW_NONE || w->kind == VPQ_WINDOW_SESSION)) own = VPQ_TS_MAX;
          else if (sel->aggregate) own = add_span(own, add_span(w->size_ms, w->grace_ms));
        }
      }
      if (own >= 0) {
        int64_t total = add_span(own, state_span(e, t));
        if (total > span) span = total;
      }
    }
  }
  e->state_span[r] = span;
  return span;
}

/* How far back in event time a row read from an exchange can still change results not yet
 * written: its aggregate's window (size + grace) and what downstream keeps; VPQ_TS_MAX for
 * tables and sessions. A join's exchange adds the WITHIN bounds of its join and the joins
 * after it (a table joined to: VPQ_TS_MAX); a later step keeps the rows once written. */
static int64_t exchange_span(vpq_engine *e, const vpq_repartition *x) {
  if (x->query->kind == VPQ_PLAN_SCHEDULE) return VPQ_TS_MAX; /* the fleet is a table */
  const vpq_plan_select *sel = &x->query->select;
  int64_t joins = 0;
  for (int j = x->join; j >= 0 && j < sel->njoins; j++) {
    if (j > x->join && vpq_repartition_find_join(e->steps, e->nsteps, x->query, j)) return joins;
    if (sel->joins[j].kind == VPQ_PLAN_JOIN_TABLE && j == x->join) return VPQ_TS_MAX;
    if (sel->joins[j].kind == VPQ_PLAN_JOIN_WITHIN) joins = add_span(joins, sel->joins[j].within_ms);
  }
  if (x->join >= 0 && vpq_repartition_find(e->steps, e->nsteps, x->query)) return joins;
  const vpq_plan_window *w = &sel->window;
  if (sel->aggregate && (w->kind == VPQ_WINDOW_NONE || w->kind == VPQ_WINDOW_SESSION)) return VPQ_TS_MAX;
  int64_t own = sel->aggregate ? add_span(w->size_ms, w->grace_ms) : 0;
  return add_span(add_span(joins, own), state_span(e, x->query->target->index));
}

/* Whether a dead-letter output refused lines (each says why once): the run stops and fails at
 * once, taking no checkpoint and committing no offset that would count them written, so the
 * next run, once the output takes lines again (disk space freed, say), reads their records
 * again. The refused lines are not counted dead-lettered. */
static bool dead_letters_lost(vpq_engine *e) {
  if (e->dead_letters_lost) return true;
  int64_t refused = 0;
  for (int r = 0; r < e->plan->nrelations; r++) refused += vpq_dead_letter_unwritten(e->slots[r].dl);
  if (!refused) return false;
  e->dead_letters_lost = true;
  e->rt.failed = true;
  e->rt.stats.dead_lettered -= refused;
  fprintf(e->rt.log, "vpq: %lld dead letter(s) were not written: the run stops%s\n", (long long)refused,
          e->state_dir ? " without a checkpoint over them" : "");
  return true;
}

/* Flushes every sink, then lets each source commit what no longer needs reading again: rows
 * whose effects are all written, judged by each source's watermark now, or by `wm_at[r]`
 * (the watermarks of the last checkpoint, whose output is all delivered). Exchanges are
 * flushed like sinks and commit like sources. */
static void commit_sources(vpq_engine *e, const int64_t *wm_at) {
  const vpq_plan *plan = e->plan;
  char err[512];
  for (int r = 0; r < plan->nrelations; r++) vpq_op_relation_flush(e->rel_ops[r]);
  if (dead_letters_lost(e)) return; /* the next run reads their records again */
  for (int i = 0; i < e->nsteps; i++) {
    vpq_sink *writer = e->steps[i].writer;
    if (writer && !writer->vt->flush(writer, err, sizeof err)) {
      fprintf(e->rt.log, "vpq: repartitioning into `%s`: %s\n", e->steps[i].topic, err);
      e->rt.failed = true;
    }
  }
  for (int i = 0; i < e->nsteps; i++) {
    vpq_repartition *x = &e->steps[i];
    if (!x->reader) continue;
    int64_t span = exchange_span(e, x), wm = wm_at ? x->checkpoint_wm : x->scan_op->passed_wm;
    if (span == VPQ_TS_MAX || wm == VPQ_TS_MIN) continue;
    x->reader->vt->commit(x->reader, wm == VPQ_TS_MAX ? VPQ_TS_MAX : wm - span);
  }
  for (int r = 0; r < plan->nrelations; r++) {
    vpq_source *src = e->slots[r].src;
    if (!src || !src->vt->commit || !e->source_ops[r]) continue;
    int64_t span = state_span(e, r), wm = wm_at ? wm_at[r] : vpq_op_source_watermark(e->source_ops[r]);
    if (span == VPQ_TS_MAX || wm == VPQ_TS_MIN) continue;
    src->vt->commit(src, wm == VPQ_TS_MAX ? VPQ_TS_MAX : wm - span);
  }
}

/* Marks as read every column of relation `rel` that `x` reads, where `rel`'s columns start
 * at `offset` of the layout `x` is bound to. */
static void mark_read(vpq_relation *rel, const vpq_bexpr *x, int offset) {
  if (!x) return;
  if (x->kind == VPQ_BEXPR_COLUMN && x->column >= offset && x->column < offset + rel->schema.ncols)
    rel->schema.cols[x->column - offset].unread = false;
  for (int i = 0; i < x->nargs; i++) mark_read(rel, x->args[i], offset);
}

/* Whether some source of the plan has a dead-letter output. */
static bool plan_dead_letters(const vpq_plan *plan) {
  for (int r = 0; r < plan->nrelations; r++)
    if (plan->relations[r]->is_source && plan->relations[r]->source.dead_letter) return true;
  return false;
}

/* Marks every column of `rel` read. */
static void mark_all_read(vpq_relation *rel) {
  for (int c = 0; c < rel->schema.ncols; c++) rel->schema.cols[c].unread = false;
}

/* The relation printed to standard output (a file with no sink prints its last statement's
 * rows), or -1. */
static int printed_relation(const vpq_engine *e) {
  const vpq_plan *plan = e->plan;
  for (int r = 0; r < plan->nrelations; r++)
    if (plan->relations[r]->is_sink) return -1;
  return plan->nrelations > 0 && !e->no_stdout ? plan->nrelations - 1 : -1;
}

/* Projection pushdown: a source column that no query reads need not be decoded. Sources with
 * a dead-letter output or subscribers keep every column (their rows are shown whole), and so
 * does a source printed to standard output, sources read by FORECAST or SCHEDULE, and (when
 * there are dead-letter outputs) every relation of an aggregation over a join, both sides: its
 * late and refused rows are dead-lettered with all their columns, whichever side's source
 * takes them. */
static void mark_unread_columns(vpq_engine *e) {
  const vpq_plan *plan = e->plan;
  bool dead_letters = plan_dead_letters(plan);
  const int printed = printed_relation(e);
  for (int r = 0; r < plan->nrelations; r++) {
    vpq_relation *rel = plan->relations[r];
    if (!rel->is_source || rel->source.dead_letter || e->subscribed[r] || r == printed) continue;
    for (int c = 0; c < rel->schema.ncols; c++) rel->schema.cols[c].unread = !rel->schema.cols[c].is_key && c != rel->ts_col;
  }
  for (int r = 0; r < plan->nrelations; r++) {
    for (int q = 0; q < plan->relations[r]->nqueries; q++) {
      const vpq_plan_query *query = plan->relations[r]->queries[q];
      if (query->kind != VPQ_PLAN_SELECT) {
        for (int s = 0; s < plan->nrelations; s++) mark_all_read(plan->relations[s]);
        return;
      }
      const vpq_plan_select *sel = &query->select;
      for (int side = -1; side < sel->njoins; side++) {
        vpq_relation *rel = side < 0 ? sel->from : sel->joins[side].right;
        int offset = side < 0 ? 0 : sel->joins[side].right_offset;
        if (sel->njoins > 0 && sel->aggregate && dead_letters) mark_all_read(rel);
        mark_read(rel, sel->where, offset);
        for (int k = 0; k < sel->ngroup_keys; k++) mark_read(rel, sel->group_keys[k], offset);
        for (int i = 0; i < sel->naggs; i++) mark_read(rel, sel->aggs[i].arg, offset);
        if (!sel->aggregate)
          for (int i = 0; i < sel->noutputs; i++) mark_read(rel, sel->outputs[i], offset);
        for (int j = 0; j < sel->njoins; j++) {
          for (int k = 0; k < sel->joins[j].nkeys; k++) mark_read(rel, sel->joins[j].left_keys[k], offset);
          mark_read(rel, sel->joins[j].residual, offset);
          if (side == j)
            for (int k = 0; k < sel->joins[j].nkeys; k++) mark_read(rel, sel->joins[j].right_keys[k], 0);
        }
      }
    }
  }
}

/* A malformed exchange message (written by another version or another query): counted and
 * reported once. */
static void exchange_bad_record(void *ctx, const char *reason, vpq_origin origin, const char *raw, size_t len) {
  (void)origin, (void)raw, (void)len;
  vpq_engine *e = ctx;
  if (!e->exchange_bad_reported) fprintf(e->rt.log, "vpq: %s (counted as malformed)\n", reason);
  e->exchange_bad_reported = true;
  e->rt.stats.malformed++;
  vpq_runtime_refused(&e->rt, reason);
}

/* Prints, as errors at their JOIN keywords, the joins repartitioning cannot make exact;
 * false when there are any. */
static bool report_refused_joins(vpq_engine *e, FILE *log) {
  if (!e->nrefused) return true;
  vpq_diag d;
  vpq_diag_init(&d, e->file_name, e->text, strlen(e->text));
  for (int i = 0; i < e->nrefused; i++) {
    const vpq_repartition_refusal *r = &e->refused[i];
    vpq_diag_error(&d, r->query->ast->u.select.joins[r->join].span,
                   "cannot scale out the join of `%s` with `%s` in `%s`: %s; run it on one member with --set "
                   "repartition=off",
                   r->query->select.from->name, r->query->select.joins[r->join].right->name, r->query->target->name,
                   r->why);
  }
  vpq_diag_print(&d, log);
  vpq_diag_free(&d);
  return false;
}

/* Opens both ends of every repartition step on the cluster of the source its rows come from:
 * the topic is created with that source's partition count when the cluster allows it. In a
 * checkpointed run the writing end is exactly-once (the state's run names it and this member
 * as a writer); otherwise this run is a new writer. The steps of an exchange of several inputs
 * (a join's two sides, a SCHEDULE's inputs) are writers of one topic; the lead's reader reads
 * it for all. */
static bool open_exchanges(vpq_engine *e, FILE *log) {
  char err[512];
  if (e->repartition && strcmp(e->repartition, "on") != 0 && strcmp(e->repartition, "true") != 0 &&
      !repartition_off(e->repartition)) {
    fprintf(log, "vpq: `repartition` is 'on' or 'off', not '%s'\n", e->repartition);
    return false;
  }
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  uint64_t writer = e->state_dir ? e->run_id : vpq_ckpt_hash(&now, sizeof now, (uint64_t)getpid());
  for (int i = 0; i < e->nsteps; i++) {
    vpq_repartition *x = &e->steps[i];
    const vpq_relation *src = e->plan->relations[x->source];
    vpq_plan_connector conn = with_settings(e, &src->source);
    char sink_id[400];
    char side_name[16] = ""; /* side 1 keeps the name a join's right side has always had */
    if (x->side) snprintf(side_name, sizeof side_name, x->side == 1 ? ".right" : ".side%d", x->side);
    snprintf(sink_id, sizeof sink_id, "%016llx.%s%s", (unsigned long long)e->run_id, x->topic, side_name);
    const vpq_source *upstream = e->slots[x->source].src;
    const vpq_repartition *lead = x->lead ? x->lead : x;
    vpq_exchange_spec spec = {
        .topic = x->topic, .keys = &x->keys, .rows = &x->rows, .nsides = lead->nsides, .side = x->side,
        .upsert_keys = x->upsert_keys, .nupsert_keys = x->nupsert_keys, .dedup = x->dedup, .tell_partitions = !x->lead,
        .partitions = upstream ? upstream->partitions : 0, .sink_id = e->state_dir ? sink_id : NULL,
        /* Each side is a writer of its own in the topic. */
        .writer = writer ^ (0x9e3779b97f4a7c15ull * (uint64_t)x->side),
        .silence_ms = (e->state_dir ? e->checkpoint_interval_ms : 1000) + 1000, .idle_timeout_ms = src->idle_timeout_ms,
        .from = upstream};
    for (int k = 0; k < lead->nsides; k++) {
      spec.side_first[k + 1] = spec.side_first[k] + lead->sides[k]->side_rows.ncols;
      spec.side_lookup[k] = lead->sides[k]->lookup;
      spec.side_dedup[k] = lead->sides[k]->dedup;
    }
    x->writer = vpq_connector_open_exchange_writer(&conn, &spec, e->rt.intern, err, sizeof err);
    if (x->writer && !x->side)
      x->reader = vpq_connector_open_exchange_reader(&conn, &spec, e->rt.intern, exchange_bad_record, e, err, sizeof err);
    if (!x->writer || (!x->side && !x->reader)) {
      fprintf(log, "vpq: repartitioning `%s` through `%s`: %s\n", x->query->target->name, x->topic, err);
      return false;
    }
    x->checkpoint_wm = VPQ_TS_MIN;
    if (x->side) continue;
    /* What the reader reads into: the rows, and the side of each (several inputs) or the
     * partition of each and the watermark to judge it late by (an aggregation's). */
    const int extra = spec.tell_partitions ? 2 : 1;
    x->batch = vpq_batch_new(&e->arena, x->rows.ncols + extra, NULL, VPQ_BATCH_ROWS);
    for (int c = 0; c < x->rows.ncols; c++) x->batch->cols[c].type = x->rows.cols[c].type;
    for (int c = 0; c < extra; c++) x->batch->cols[x->rows.ncols + c].type = VPQ_TYPE_BIGINT;
  }
  return true;
}

/* Reads what each exchange has for this member now and pushes it on, then the exchange's
 * watermark (which moves on its own as writers go idle); the writing ends announce their
 * watermarks when due. A batch goes in whole, so a checkpoint never falls inside one. */
static void pump_exchanges(vpq_engine *e) {
  int64_t now = vpq_clock_wall_ms();
  for (int i = 0; i < e->nsteps; i++) {
    vpq_repartition *x = &e->steps[i];
    vpq_repartition_announce(x->write_op, now, false);
    if (!x->reader) continue;
    bool done = false;
    x->batch->n = 0;
    if (x->reader->vt->read(x->reader, x->batch, x->batch->origin, &done) && x->batch->n > 0) {
      e->rt.now_ms = now;
      e->rt.withdrawing = x->reader->withdrawing;
      vpq_repartition_scan_push(x, x->batch);
      e->rt.withdrawing = false;
      vpq_arena_reset(&e->rt.scratch);
    }
    vpq_repartition_scan_watermark(x, vpq_connector_exchange_watermark(x->reader, now));
  }
}

/* Says on the log which --set settings no connector of the file reads (a Kafka option where
 * no source or sink uses Kafka, a simulator option without `connector = 'sim'`): they have no
 * effect, and a user who meant them should know. */
static void warn_unused_settings(const vpq_engine *e, FILE *log) {
  static const char *const kafka_keys[] = {"group", "start", "bounded", "partitions", "processing_guarantee"};
  static const char *const sim_keys[] = {"devices", "sites", "seed", "speed", "duration", "history", "pv"};
  bool used[2] = {false, false}; /* kafka, sim */
  for (int r = 0; r < e->plan->nrelations; r++) {
    const vpq_relation *rel = e->plan->relations[r];
    const char *connectors[2] = {rel->is_source ? rel->source.connector : NULL, rel->is_sink ? rel->sink.connector : NULL};
    for (int c = 0; c < 2; c++) {
      used[0] = used[0] || (connectors[c] && strcmp(connectors[c], "kafka") == 0);
      used[1] = used[1] || (connectors[c] && strcmp(connectors[c], "sim") == 0);
    }
  }
  for (int i = 0; i < e->nsettings; i++) {
    const char *key = e->settings[i].key;
    if (strcmp(key, "start") == 0 && (used[0] || used[1])) continue; /* both connectors take it */
    int needs = strncmp(key, "kafka.", 6) == 0 ? 0 : -1;
    for (size_t k = 0; needs < 0 && k < sizeof kafka_keys / sizeof *kafka_keys; k++)
      if (strcmp(key, kafka_keys[k]) == 0) needs = 0;
    for (size_t k = 0; needs < 0 && k < sizeof sim_keys / sizeof *sim_keys; k++)
      if (strcmp(key, sim_keys[k]) == 0) needs = 1;
    if (needs >= 0 && !used[needs])
      fprintf(log, "vpq: --set %s%s has no effect: no source or sink of %s uses connector '%s'\n", key,
              strcmp(key, "kafka.bootstrap.servers") == 0 ? " (or --brokers)" : "", e->file_name,
              needs == 0 ? "kafka" : "sim");
  }
}

static bool open_connectors(vpq_engine *e, FILE *log, bad_ctx *bad) {
  const vpq_plan *plan = e->plan;
  char err[512];
  for (int r = 0; r < plan->nrelations; r++) {
    const vpq_relation *rel = plan->relations[r];
    if (rel->is_sink) {
      vpq_plan_connector conn = with_settings(e, &rel->sink);
      if (e->state_dir) {
        /* A checkpointed run: output identities name the state's run and the relation. */
        char id[300];
        snprintf(id, sizeof id, "%016llx.%s", (unsigned long long)e->run_id, rel->name);
        conn.options.items[conn.options.count++] =
            (vpq_plan_option){"vpq.sink_id", {0}, VPQ_TYPE_STRING, vpq_arena_strdup(&e->arena, id), {0}};
      }
      vpq_sink *sink = vpq_connector_open_sink(&conn, &rel->schema, e->rt.intern, err, sizeof err);
      if (!sink) {
        fprintf(log, "vpq: %s: %s\n", rel->name, err);
        return false;
      }
      vpq_op_relation_attach_sink(e->rel_ops[r], sink);
    }
    if (!rel->is_source) continue;
    bad[r] = (bad_ctx){e, r, NULL, 0, 0};
    vpq_relation *with = vpq_arena_alloc(&e->arena, sizeof *with);
    *with = *rel;
    with->source = with_settings(e, &rel->source);
    with->source.options.items[with->source.options.count++] = e->default_group;
    if (rel->source.dead_letter) {
      e->slots[r].dl = rel->source.dead_letter_topic ? vpq_dead_letter_open_kafka(&with->source, err, sizeof err)
                             : vpq_dead_letter_open(rel->source.dead_letter, setting(e, "vpq.resume") != NULL, err,
                                                    sizeof err);
      if (!e->slots[r].dl) {
        fprintf(log, "vpq: %s: dead letters: %s\n", rel->name, err);
        return false;
      }
    }
    e->slots[r].src = vpq_connector_open_source(with, e->rt.intern, engine_bad_record, &bad[r], err, sizeof err);
    if (!e->slots[r].src) {
      fprintf(log, "vpq: %s: %s\n", rel->name, err);
      return false;
    }
  }
  if (!open_exchanges(e, log)) return false;
  const int printed = printed_relation(e);
  if (printed >= 0)
    vpq_op_relation_attach_sink(e->rel_ops[printed], vpq_connector_open_stdout(&plan->relations[printed]->schema, e->rt.intern));
  return true;
}

/* ===== Checkpoints of a run =====
 *
 * A checkpoint is the engine state (save_core), the run's id, every source's position and
 * every sink's resume state. It is taken between two slices of the merge, so every row
 * pushed so far has had all its effects; rows read but not pushed yet are read again after a
 * restore. Output goes out only once its checkpoint is durable (Kafka sinks hold it, file
 * sinks are cut back on restore), so a restore neither loses nor repeats a result. */

enum { HELD_OUTPUT_LIMIT = 64 << 20 }; /* held output that triggers an early checkpoint */

/* The stream input reading relation r, or NULL. */
static const merge_input *merging(const vpq_engine *e, int r) {
  for (int i = 0; i < e->merging.n; i++)
    if (e->merging.items[i].relation == r) return &e->merging.items[i];
  return NULL;
}

static vpq_sink *relation_sink(const vpq_engine *e, int r) { return vpq_op_relation_sink(e->rel_ops[r]); }

/* The output all sinks hold for the next checkpoint. */
static size_t held_output(const vpq_engine *e) {
  size_t held = 0;
  for (int r = 0; r < e->plan->nrelations; r++) {
    const vpq_sink *sink = relation_sink(e, r);
    if (sink) held += sink->held_bytes;
  }
  for (int i = 0; i < e->nsteps; i++)
    if (e->steps[i].writer) held += e->steps[i].writer->held_bytes;
  return held;
}

/* Takes a checkpoint; false (logged, the previous checkpoint still valid) when it could not
 * be written. */
static bool take_checkpoint(vpq_engine *e) {
  const vpq_plan *plan = e->plan;
  int64_t started = vpq_clock_wall_ms();
  uint64_t epoch = e->epoch + 1;
  char err[512];
  /* Dead letters of the rows read but not processed yet stay held: a restore reads those again. */
  for (int r = 0; r < plan->nrelations; r++) {
    const merge_input *in = merging(e, r);
    const int unread = in && !in->done ? in->batch->n - in->pos : 0;
    vpq_dead_letter_flush_read(e->slots[r].dl, unread > 0 ? in->batch->origin + in->pos : NULL, unread > 0 ? unread : 0);
    bad_count(e, &e->bad[r], unread > 0 ? in->batch->origin + in->pos : NULL, unread > 0 ? unread : 0);
  }
  if (dead_letters_lost(e)) return false;
  /* Each exchange's output of this epoch ends with its writer's watermark. */
  for (int i = 0; i < e->nsteps; i++) vpq_repartition_announce(e->steps[i].write_op, started, true);
  vpq_ckpt_out *state = &e->run_state;
  state->buf.len = 0;
  save_core(e, state);
  vpq_ckpt_put_u64(state, e->run_id);
  for (int r = 0; r < plan->nrelations; r++) {
    vpq_source *src = e->slots[r].src;
    if (!src) continue;
    const merge_input *in = merging(e, r);
    int unread = in && !in->done ? in->batch->n - in->pos : 0;
    src->vt->save(src, state, unread > 0 ? in->batch->origin + in->pos : NULL, unread > 0 ? unread : 0);
  }
  for (int r = 0; r < plan->nrelations; r++)
    if (e->slots[r].dl) vpq_dead_letter_save(e->slots[r].dl, state);
  for (int i = 0; i < e->nsteps; i++)
    if (e->steps[i].reader) e->steps[i].reader->vt->save(e->steps[i].reader, state, NULL, 0);
  bool ok = true;
  for (int r = 0; r < plan->nrelations && ok; r++) {
    vpq_sink *sink = relation_sink(e, r);
    if (!sink || !sink->vt->save) continue;
    ok = sink->vt->save(sink, epoch, state, err, sizeof err);
    if (!ok) fprintf(e->rt.log, "vpq: checkpoint %llu not taken: `%s`: %s\n", (unsigned long long)epoch,
                     plan->relations[r]->name, err);
  }
  for (int i = 0; i < e->nsteps && ok; i++) {
    vpq_sink *writer = e->steps[i].writer;
    ok = writer->vt->save(writer, epoch, state, err, sizeof err);
    if (!ok) fprintf(e->rt.log, "vpq: checkpoint %llu not taken: `%s`: %s\n", (unsigned long long)epoch,
                     e->steps[i].topic, err);
  }
  if (ok && vpq_ckpt_write(e->state_dir, epoch, e->fingerprint, &state->buf, err, sizeof err) != 0) {
    fprintf(e->rt.log, "vpq: %s\n", err);
    ok = false;
  }
  e->last_checkpoint_ms = vpq_clock_wall_ms();
  if (!ok) {
    e->rt.stats.checkpoint_failures++;
    return false;
  }
  e->epoch = epoch;
  for (int r = 0; r < plan->nrelations; r++) {
    vpq_sink *sink = relation_sink(e, r);
    if (sink && sink->vt->commit && !sink->vt->commit(sink, err, sizeof err)) {
      fprintf(e->rt.log, "vpq: writing `%s`: %s\n", plan->relations[r]->name, err);
      e->rt.failed = true;
    }
  }
  for (int i = 0; i < e->nsteps; i++) {
    vpq_sink *writer = e->steps[i].writer;
    if (!writer->vt->commit(writer, err, sizeof err)) {
      fprintf(e->rt.log, "vpq: repartitioning into `%s`: %s\n", e->steps[i].topic, err);
      e->rt.failed = true;
    }
  }
  /* Consumer groups learn the offsets up to which the previous checkpoint's output is
   * delivered (each sink's save waited for it). */
  commit_sources(e, e->checkpoint_wm);
  for (int r = 0; r < plan->nrelations; r++)
    e->checkpoint_wm[r] = e->source_ops[r] ? vpq_op_source_watermark(e->source_ops[r]) : VPQ_TS_MIN;
  for (int i = 0; i < e->nsteps; i++) e->steps[i].checkpoint_wm = e->steps[i].scan_op->passed_wm;
  e->rt.stats.checkpoints++;
  e->rt.stats.checkpoint_bytes = (int64_t)state->buf.len;
  e->rt.stats.checkpoint_ms = e->last_checkpoint_ms - started;
  e->rt.stats.checkpoint_at_ms = e->last_checkpoint_ms;
  return true;
}

/* Takes a checkpoint when the interval has passed or the held output is large. */
static void maybe_checkpoint(vpq_engine *e) {
  if (!e->state_dir) return;
  int64_t now = vpq_clock_wall_ms();
  if (now - e->last_checkpoint_ms >= e->checkpoint_interval_ms || held_output(e) >= HELD_OUTPUT_LIMIT) take_checkpoint(e);
}

/* A hash of the plan (its explain text): a checkpoint only restores into the same plan. */
static uint64_t plan_fingerprint(const vpq_engine *e) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) abort();
  vpq_engine_explain(e, f, false);
  for (int r = 0; r < e->plan->nrelations; r++) /* dead letters restore into the file they went to */
    if (e->plan->relations[r]->source.dead_letter)
      fprintf(f, "%s dead letters: %s\n", e->plan->relations[r]->name, e->plan->relations[r]->source.dead_letter);
  fclose(f);
  uint64_t hash = vpq_ckpt_hash(text, len, VPQ_CKPT_VERSION);
  free(text);
  return hash;
}

/* Before the connectors open: locks the state folder and restores the newest checkpoint's
 * engine state. Returns 1 when a checkpoint was restored (its connector part is left in
 * `rest`), 0 for a fresh start, -1 on error (logged). */
static int restore_engine(vpq_engine *e, FILE *log, vpq_ckpt_file *file, vpq_ckpt_in *rest) {
  char err[512];
  e->lock_fd = vpq_ckpt_lock(e->state_dir, err, sizeof err);
  if (e->lock_fd < 0) {
    fprintf(log, "vpq: %s\n", err);
    return -1;
  }
  e->fingerprint = plan_fingerprint(e);
  e->checkpoint_wm = vpq_arena_alloc(&e->arena, sizeof *e->checkpoint_wm * (size_t)(e->plan->nrelations + 1));
  for (int r = 0; r < e->plan->nrelations; r++) e->checkpoint_wm[r] = VPQ_TS_MIN;
  e->last_checkpoint_ms = vpq_clock_wall_ms();
  if (e->reset_state) vpq_ckpt_remove_all(e->state_dir);
  for (int r = 0; r < e->plan->nrelations; r++) {
    const vpq_relation *rel = e->plan->relations[r];
    if (rel->is_source && rel->source.connector && strcmp(rel->source.connector, "sim") == 0) {
      fprintf(log, "vpq: %s: connector 'sim' cannot resume from a checkpoint: run it without --state-dir\n", rel->name);
      return -1;
    }
  }
  int found = vpq_ckpt_read_newest(e->state_dir, file, log);
  if (found < 0) return -1;
  if (!found) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    e->run_id = vpq_ckpt_hash(&now, sizeof now, (uint64_t)getpid());
    return 0;
  }
  if (file->fingerprint != e->fingerprint) {
    fprintf(log, "vpq: %s holds the state of a different query (the plan of %s changed since checkpoint %llu): "
            "run with --reset-state to start over without it\n", e->state_dir, e->file_name,
            (unsigned long long)file->epoch);
    return -1;
  }
  *rest = vpq_ckpt_in_init(file->state, file->len);
  if (!load_core(e, rest, err, sizeof err)) {
    fprintf(log, "vpq: checkpoint %llu in %s cannot be restored: %s (run with --reset-state to start over)\n",
            (unsigned long long)file->epoch, e->state_dir, err);
    return -1;
  }
  e->run_id = vpq_ckpt_get_u64(rest);
  e->epoch = file->epoch;
  /* the metrics of the last checkpoint are the restored one's until this run takes one */
  e->rt.stats.checkpoint_at_ms = file->written_ms;
  e->rt.stats.checkpoint_bytes = (int64_t)file->len;
  e->restored_older = file->older;
  vpq_engine_set(e, "vpq.resume", "true");
  return 1;
}

/* After the connectors open: every source resumes at its position, every sink from its
 * state. False on error (logged). */
static bool restore_connectors(vpq_engine *e, FILE *log, vpq_ckpt_in *in) {
  const vpq_plan *plan = e->plan;
  char err[512];
  for (int r = 0; r < plan->nrelations; r++) {
    vpq_source *src = e->slots[r].src;
    if (src && !src->vt->restore(src, in, err, sizeof err)) {
      fprintf(log, "vpq: %s: cannot resume: %s\n", plan->relations[r]->name, err);
      return false;
    }
  }
  for (int r = 0; r < plan->nrelations; r++) {
    vpq_dead_letter *dl = e->slots[r].dl;
    if (dl && !vpq_dead_letter_restore(dl, in, err, sizeof err)) {
      fprintf(log, "vpq: %s: cannot resume: %s\n", plan->relations[r]->name, err);
      return false;
    }
  }
  for (int i = 0; i < e->nsteps; i++) {
    vpq_source *reader = e->steps[i].reader;
    if (reader && !reader->vt->restore(reader, in, err, sizeof err)) {
      fprintf(log, "vpq: `%s`: cannot resume: %s\n", e->steps[i].topic, err);
      return false;
    }
  }
  for (int r = 0; r < plan->nrelations; r++) {
    vpq_sink *sink = relation_sink(e, r);
    if (sink) sink->restored_older = e->restored_older;
    if (sink && sink->vt->save && !sink->vt->restore(sink, in, err, sizeof err)) {
      fprintf(log, "vpq: %s: cannot resume: %s\n", plan->relations[r]->name, err);
      return false;
    }
    if (sink && sink->resumed_present + sink->resumed_written > 0)
      fprintf(log, "vpq: %s: of the %lld row(s) held at checkpoint %llu, %lld were already written, %lld written now\n",
              plan->relations[r]->name, (long long)(sink->resumed_present + sink->resumed_written),
              (unsigned long long)e->epoch, (long long)sink->resumed_present, (long long)sink->resumed_written);
  }
  for (int i = 0; i < e->nsteps; i++) {
    vpq_sink *writer = e->steps[i].writer;
    if (!writer->vt->restore(writer, in, err, sizeof err)) {
      fprintf(log, "vpq: `%s`: cannot resume: %s\n", e->steps[i].topic, err);
      return false;
    }
  }
  if (in->error || in->p != in->end) {
    fprintf(log, "vpq: checkpoint %llu in %s: %s (run with --reset-state to start over)\n",
            (unsigned long long)e->epoch, e->state_dir, in->error ? in->error : "state left over");
    return false;
  }
  fprintf(log, "vpq: resumed from checkpoint %llu in %s\n", (unsigned long long)e->epoch, e->state_dir);
  return true;
}

void vpq_engine_set_state(vpq_engine *e, const char *dir, int64_t interval_ms, bool reset) {
  free(e->state_dir);
  e->state_dir = dir ? strdup(dir) : NULL;
  if (dir && !e->state_dir) abort();
  e->checkpoint_interval_ms = interval_ms > 0 ? interval_ms : 10000;
  e->reset_state = reset;
}

/* Reads a source to its end (tables are loaded before the streams that join them). */
static void drain(vpq_engine *e, merge_input *in) {
  while (refill(e, in)) push_slice(e, in, 0, in->batch->n);
  vpq_op_source_finish(e->source_ops[in->relation]);
}

/* Publishes the counters for other threads (vpq_engine_stats_published,
 * vpq_engine_operator_stats). */
static void publish_stats(vpq_engine *e) {
  pthread_mutex_lock(&e->published_lock);
  e->published = e->rt.stats;
  if (e->published_nops != e->nops) {
    e->published_ops = realloc(e->published_ops, sizeof *e->published_ops * (size_t)(2 * e->nops + 1));
    if (!e->published_ops) abort();
    e->published_nops = e->nops;
  }
  for (int i = 0; i < e->nops; i++) {
    e->published_ops[2 * i] = e->ops[i]->rows_in;
    e->published_ops[2 * i + 1] = e->ops[i]->rows_out;
  }
  pthread_mutex_unlock(&e->published_lock);
}

/* Refreshes stats.consumer_lag and publishes the counters, at most once a second. */
static void update_lag(vpq_engine *e) {
  int64_t now = vpq_clock_wall_ms();
  if (now - e->last_lag_ms < 1000) return;
  e->last_lag_ms = now;
  int64_t total = -1;
  for (int r = 0; r < e->plan->nrelations; r++) {
    vpq_source *src = e->slots[r].src;
    int64_t lag = src && src->vt->lag ? src->vt->lag(src) : -1;
    if (lag >= 0) total = (total < 0 ? 0 : total) + lag;
  }
  for (int i = 0; i < e->nsteps; i++) {
    vpq_source *reader = e->steps[i].reader;
    int64_t lag = reader ? reader->vt->lag(reader) : -1;
    if (lag >= 0) total = (total < 0 ? 0 : total) + lag;
  }
  e->rt.stats.consumer_lag = total;
  publish_stats(e);
}

int vpq_engine_operator_stats(vpq_engine *e, vpq_operator_stats *out, int max) {
  pthread_mutex_lock(&e->published_lock);
  int n = 0, *seen = calloc((size_t)(e->plan ? e->plan->nrelations : 0) + 1, sizeof *seen);
  if (!seen) abort();
  for (int i = 0; i < e->published_nops && i < e->nops && n < max; i++) {
    int r = e->op_relations[i];
    out[n++] = (vpq_operator_stats){e->plan->relations[r]->name, e->ops[i]->vt->kind, seen[r]++,
                                    e->published_ops[2 * i], e->published_ops[2 * i + 1]};
  }
  free(seen);
  pthread_mutex_unlock(&e->published_lock);
  return n;
}

vpq_stats vpq_engine_stats_published(vpq_engine *e) {
  pthread_mutex_lock(&e->published_lock);
  vpq_stats stats = e->published;
  pthread_mutex_unlock(&e->published_lock);
  return stats;
}

/* Merges the stream sources by event time: each step pushes the rows of the input with the
 * earliest head up to the next input's head (of equal event times, the source declared first
 * goes first). An unbounded source with nothing to read does not hold the others up (its
 * watermark does, until it is idle). */
static void merge_streams(vpq_engine *e, merge_input *inputs, int n) {
  for (int i = 0; i < n; i++) inputs[i].batch->n = 0;
  for (;;) {
    pump_exchanges(e);
    update_lag(e); /* after reading the exchanges: their writers' announcements keep coming */
    int open = 0, best = -1, second = n;
    int64_t best_ts = VPQ_TS_MAX, second_ts = VPQ_TS_MAX;
    for (int i = 0; i < n && !e->stop; i++) {
      merge_input *in = &inputs[i];
      if (in->done) continue;
      if (in->pos >= in->batch->n && !refill(e, in)) {
        if (in->done) vpq_op_source_finish(e->source_ops[in->relation]);
        else open++;
        continue;
      }
      open++;
      int64_t ts = head_ts(e, in);
      if (best < 0 || ts < best_ts) {
        if (best >= 0) second_ts = best_ts, second = best;
        best = i;
        best_ts = ts;
      } else if (ts < second_ts) {
        second_ts = ts, second = i;
      }
    }
    if (!open || e->stop || e->rt.failed) return;
    if (best < 0) { /* unbounded sources without rows right now: their reads waited */
      maybe_checkpoint(e);
      continue;
    }
    merge_input *in = &inputs[best];
    int end = in->pos + 1;
    while (end < in->batch->n) {
      int saved = in->pos;
      in->pos = end;
      int64_t ts = head_ts(e, in);
      in->pos = saved;
      if (ts > second_ts || (ts == second_ts && second < best)) break;
      end++;
    }
    int from = in->pos;
    in->pos = end;
    push_slice(e, in, from, end);
    if (dead_letters_lost(e)) return;
    if (e->state_dir) {
      maybe_checkpoint(e);
    } else if (e->rt.now_ms - e->last_commit_ms >= 1000 && !e->slots[in->relation].src->bounded) {
      commit_sources(e, NULL);
      e->last_commit_ms = e->rt.now_ms;
    }
  }
}

/* After a restore, subscribers (the HTTP pull queries) see the restored tables' rows: they
 * keep no state of their own in checkpoints. Called as soon as the engine state is restored,
 * before the connectors open (which takes seconds with Kafka), so they show them at once. */
static void replay_tables(vpq_engine *e) {
  bool any = false;
  for (int r = 0; r < e->plan->nrelations; r++) any = any || e->subscribed[r];
  if (!any) return;
  e->rt.replaying = true;
  for (int r = 0; r < e->plan->nrelations; r++)
    if (e->source_ops[r]) vpq_op_source_replay(e->source_ops[r]);
  for (int i = 0; i < e->nops; i++) vpq_op_aggregate_replay(e->ops[i]);
  for (int r = 0; r < e->plan->nrelations; r++) vpq_op_relation_replay(e->rel_ops[r]);
  e->rt.replaying = false;
  vpq_arena_reset(&e->rt.scratch);
}

int vpq_engine_run(vpq_engine *e, FILE *log) {
  if (!e->plan) return -1;
  e->rt.log = log;
  const vpq_plan *plan = e->plan;
  bad_ctx *bad = calloc((size_t)plan->nrelations + 1, sizeof *bad);
  merge_input *streams = calloc((size_t)plan->nrelations + 1, sizeof *streams);
  if (!bad || !streams) abort();
  e->bad = bad;
  vpq_connector_interrupted = 0; /* a run starts uninterrupted (vpq_interrupt) */
  int rc = -1;
  mark_unread_columns(e);
  vpq_ckpt_file checkpoint = {0};
  vpq_ckpt_in rest = {0};
  warn_unused_settings(e, log);
  int restored = !report_refused_joins(e, log) ? -1 : e->state_dir ? restore_engine(e, log, &checkpoint, &rest) : 0;
  if (restored > 0) replay_tables(e);
  if (restored >= 0 && open_connectors(e, log, bad) && (restored == 0 || restore_connectors(e, log, &rest))) {
    vpq_ckpt_file_free(&checkpoint);
    int nstreams = 0;
    for (int r = 0; r < plan->nrelations; r++) {
      const vpq_relation *rel = plan->relations[r];
      if (!rel->is_source) continue;
      vpq_batch *batch = vpq_batch_new(&e->arena, rel->schema.ncols, NULL, VPQ_BATCH_ROWS);
      for (int c = 0; c < rel->schema.ncols; c++) batch->cols[c].type = rel->schema.cols[c].type;
      merge_input in = {r, batch, 0, false};
      if (e->state_dir && !e->slots[r].src->vt->save) {
        fprintf(log, "vpq: %s: its connector cannot resume from a checkpoint: run it without --state-dir\n", rel->name);
        e->rt.failed = true;
        break;
      }
      if (rel->kind == VPQ_REL_TABLE && e->slots[r].src->bounded) drain(e, &in);
      else streams[nstreams++] = in;
    }
    e->merging = (merge_input_list){streams, nstreams};
    if (!e->rt.failed) merge_streams(e, streams, nstreams);
    bool cut_short = false; /* stopped before a bounded input's end: not everything is written */
    if (e->stop || e->rt.failed) {
      for (int i = 0; i < nstreams; i++) cut_short |= !streams[i].done && e->slots[streams[i].relation].src->bounded;
      if (cut_short && !e->rt.failed)
        fprintf(log, "vpq: stopped before the end of its input%s\n",
                e->state_dir ? " (the same command resumes it)" : ": the output is not complete");
      /* Stopped (Ctrl-C, vpq_engine_stop): open windows stay open rather than being written
       * half full. A checkpointed run keeps them in its last checkpoint; otherwise sinks are
       * flushed and each source commits only what is safe, so a later run of the same group
       * reads the open windows' rows again. */
      if (e->state_dir && !e->rt.failed) take_checkpoint(e);
      else commit_sources(e, NULL);
      for (int r = 0; r < plan->nrelations; r++) {
        vpq_dead_letter_flush(e->slots[r].dl);
        bad_count(e, &bad[r], NULL, 0);
      }
    } else {
      for (int r = 0; r < plan->nrelations; r++) bad_count(e, &bad[r], NULL, 0);
      vpq_engine_finish(e);
      if (e->state_dir && take_checkpoint(e))
        for (int r = 0; r < plan->nrelations; r++) vpq_op_relation_flush(e->rel_ops[r]);
    }
    e->merging = (merge_input_list){NULL, 0};
    dead_letters_lost(e);
    publish_stats(e);
    rc = e->rt.failed ? -1 : cut_short ? 1 : 0;
  } else if (restored > 0) {
    e->rt.stats = (vpq_stats){0}; /* the resume was refused: nothing ran, the restored counts are no run's */
  }
  vpq_ckpt_file_free(&checkpoint);
  free(streams);
  for (int r = 0; r < plan->nrelations; r++) free(bad[r].pending);
  free(bad);
  e->bad = NULL;
  return rc;
}

void vpq_engine_stop(vpq_engine *e) { e->stop = 1; }

void vpq_interrupt(void) { vpq_connector_interrupted = 1; }

void vpq_engine_tick(vpq_engine *e, int64_t now_ms) {
  if (!e->plan) return;
  e->rt.now_ms = now_ms;
  for (int r = 0; r < e->plan->nrelations; r++)
    if (e->source_ops[r]) vpq_op_source_idle(e->source_ops[r], now_ms);
  if (!e->state_dir) commit_sources(e, NULL);
  vpq_arena_reset(&e->rt.scratch);
}

void vpq_engine_finish(vpq_engine *e) {
  if (!e->plan) return;
  for (int r = 0; r < e->plan->nrelations; r++)
    if (e->source_ops[r]) vpq_op_source_finish(e->source_ops[r]);
  for (int r = 0; r < e->plan->nrelations; r++) {
    vpq_op_relation_flush(e->rel_ops[r]);
    vpq_dead_letter_flush(e->slots[r].dl);
  }
  vpq_arena_free(&e->rt.scratch);
}

int vpq_engine_push_json(vpq_engine *e, const char *relation, const char *json, char *err, size_t err_size) {
  vpq_relation *rel = e->plan ? vpq_plan_find(e->plan, relation) : NULL;
  if (!rel || !e->source_ops[rel->index]) {
    snprintf(err, err_size, "no source stream or table `%s`", relation);
    return -1;
  }
  int r = rel->index;
  if (!e->decoders[r]) e->decoders[r] = vpq_decoder_new(VPQ_FORMAT_JSON, &rel->schema, e->rt.intern);
  vpq_batch *batch = vpq_op_batch(&e->rt, &rel->schema, 1);
  if (!vpq_decoder_row(e->decoders[r], json, strlen(json), batch, 0, err, err_size)) {
    e->rt.stats.malformed++;
    vpq_runtime_refused(&e->rt, err);
    vpq_arena_free(&e->rt.scratch);
    return -1;
  }
  batch->n = 1;
  batch->origin[0] = (vpq_origin){-1, 0};
  vpq_op_source_push(e->source_ops[r], batch);
  vpq_arena_reset(&e->rt.scratch);
  return 0;
}

int vpq_engine_subscribe(vpq_engine *e, const char *relation, vpq_row_fn fn, void *ctx) {
  vpq_relation *rel = e->plan ? vpq_plan_find(e->plan, relation) : NULL;
  if (!rel) return -1;
  vpq_op_relation_subscribe(e->rel_ops[rel->index], fn, ctx);
  e->subscribed[rel->index] = true;
  return 0;
}

vpq_stats vpq_engine_stats(const vpq_engine *e) { return e->rt.stats; }

void vpq_engine_no_stdout(vpq_engine *e) { e->no_stdout = true; }

/* The `topic` option of a Kafka connector, or NULL. */
static const char *kafka_topic(const vpq_plan_connector *conn) {
  if (!conn->connector || strcmp(conn->connector, "kafka") != 0) return NULL;
  for (int i = 0; i < conn->options.count; i++)
    if (strcmp(conn->options.items[i].key, "topic") == 0) return conn->options.items[i].text;
  return NULL;
}

int vpq_engine_kafka_topics(const vpq_engine *e, const char **topics, int max) {
  int n = 0;
  for (int r = 0; e->plan && r < e->plan->nrelations; r++) {
    const vpq_relation *rel = e->plan->relations[r];
    const char *found[2] = {rel->is_source ? kafka_topic(&rel->source) : NULL, rel->is_sink ? kafka_topic(&rel->sink) : NULL};
    for (int i = 0; i < 2; i++) {
      bool seen = !found[i];
      for (int j = 0; j < n && !seen; j++) seen = strcmp(topics[j], found[i]) == 0;
      if (!seen && n < max) topics[n++] = found[i];
    }
  }
  return n;
}

int vpq_engine_repartitions(const vpq_engine *e, const char **relations, const char **topics, int max) {
  for (int i = 0; i < e->nsteps && i < max; i++) {
    relations[i] = e->steps[i].query->target->name;
    topics[i] = e->steps[i].topic;
  }
  return e->nsteps;
}

/* The topic of relation rel when it is an unbounded Kafka source (read as a consumer group),
 * else NULL. */
static const char *stream_topic(const vpq_relation *rel) {
  const char *topic = rel->is_source ? kafka_topic(&rel->source) : NULL;
  for (int i = 0; topic && i < rel->source.options.count; i++)
    if (strcmp(rel->source.options.items[i].key, "bounded") == 0 && rel->source.options.items[i].value.i) return NULL;
  return topic;
}

int vpq_engine_kafka_stream_topics(const vpq_engine *e, const char **topics, int max) {
  int n = 0;
  for (int r = 0; e->plan && r < e->plan->nrelations; r++) {
    const char *topic = stream_topic(e->plan->relations[r]);
    bool seen = !topic;
    for (int j = 0; j < n && !seen; j++) seen = strcmp(topics[j], topic) == 0;
    if (!seen && n < max) topics[n++] = topic;
  }
  return n;
}

int vpq_engine_kafka_stream_properties(const vpq_engine *e, const char **names, const char **values, int max) {
  int n = 0;
  for (int r = 0; e->plan && r < e->plan->nrelations; r++) {
    const vpq_relation *rel = e->plan->relations[r];
    for (int i = 0; stream_topic(rel) && i < rel->source.options.count; i++) {
      const vpq_plan_option *o = &rel->source.options.items[i];
      if (strncmp(o->key, "kafka.", 6) != 0) continue;
      bool seen = false;
      for (int j = 0; j < n && !seen; j++) seen = strcmp(names[j], o->key + 6) == 0;
      if (!seen && n < max) names[n] = o->key + 6, values[n++] = o->text ? o->text : "";
    }
  }
  return n;
}

void vpq_engine_score_range(vpq_engine *e, int64_t from_ms, int64_t to_ms) {
  for (int i = 0; i < e->nforecasts; i++) vpq_op_forecast_score_range(e->forecast_ops[i], from_ms, to_ms);
}

int vpq_engine_forecast_count(const vpq_engine *e) { return e->nforecasts; }

int vpq_engine_forecast_score(const vpq_engine *e, int index, int step, const char **stream, const char **model,
                              vpq_forecast_score *out) {
  if (index < 0 || index >= e->nforecasts) return -1;
  *stream = e->forecast_queries[index]->target->name;
  *model = e->forecast_queries[index]->forecast.model_name;
  return vpq_op_forecast_score(e->forecast_ops[index], step, out);
}
