/* vpq.h — the public C API of libvpq: load a .vpq file, run it, push rows into its sources,
 * subscribe to its streams and tables. The `vpq` command is a thin shell over these calls.
 *
 *   vpq_engine *e = vpq_engine_new();
 *   if (vpq_engine_load(e, "fleet.vpq", text, stderr) == 0) vpq_engine_run(e, stderr);
 *   vpq_engine_free(e);
 */
#ifndef VPQ_H
#define VPQ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct vpq_engine vpq_engine;

/* Called with every row a subscribed stream or table emits, as one JSON object (no newline).
 * For tables, `diff` is +1 for a key's new row and -1 for its retracted old row. */
typedef void (*vpq_row_fn)(void *ctx, const char *relation, const char *json, int diff);

/* Why a record or row was refused (vpq_stats.refused). ORDER VPQ_REASON: keep
 * vpq_reason_names in vpq_op.c in step. */
typedef enum vpq_reason {
  VPQ_REASON_INVALID_JSON,
  VPQ_REASON_INVALID_UTF8,
  VPQ_REASON_NOT_AN_OBJECT,
  VPQ_REASON_TYPE_MISMATCH,
  VPQ_REASON_INVALID_TIMESTAMP,
  VPQ_REASON_WRONG_FIELD_COUNT,
  VPQ_REASON_TOO_LARGE,
  VPQ_REASON_TOO_DEEP,
  VPQ_REASON_LATE,
  VPQ_REASON_MAX_KEYS,
  VPQ_REASON_OTHER,
  VPQ_REASON_COUNT
} vpq_reason;

/* The reason as dead letters name it ("invalid JSON", "late", "max_keys", ...). */
const char *vpq_reason_name(vpq_reason reason);

/* Counters of a run (also printed by `vpq run` at the end). */
typedef struct vpq_stats {
  int64_t rows_in;        /* decoded source rows */
  int64_t rows_out;       /* rows written to sinks */
  int64_t refused_out;    /* rows a sink could not take (a Kafka message over message.max.bytes): not written */
  int64_t malformed;      /* source records that could not be decoded */
  int64_t late;           /* rows that arrived after their window closed */
  int64_t dead_lettered;  /* records and rows written to dead-letter outputs */
  int64_t peak_groups;    /* most aggregation groups (window × key) open at once, all queries */
  int64_t group_bytes;    /* memory of one such group: its bookkeeping and aggregate states */
  int64_t checkpoints;    /* checkpoints taken by this run */
  int64_t checkpoint_failures; /* checkpoints that could not be written (the previous one stays) */
  int64_t checkpoint_bytes;    /* state of the last checkpoint, uncompressed */
  int64_t checkpoint_ms;       /* how long the last checkpoint took */
  int64_t checkpoint_at_ms;    /* wall clock of the last checkpoint (epoch ms; 0: none) */
  int64_t refused[VPQ_REASON_COUNT]; /* malformed records and refused rows, per reason */
  int64_t consumer_lag;   /* records the Kafka sources have not read yet (updated every second; -1: unknown) */
} vpq_stats;

/* Creates an engine with nothing loaded. */
vpq_engine *vpq_engine_new(void);

/* Frees the engine, its plans, state and open connectors. */
void vpq_engine_free(vpq_engine *engine);

/* Parses and checks `text` (the contents of `file_name`; relative connector paths resolve
 * against its folder) and builds the operator pipeline. Diagnostics are printed to `diag`
 * (file:line:col, source line, caret). Returns 0 when clean, -1 on errors. */
int vpq_engine_load(vpq_engine *engine, const char *file_name, const char *text, FILE *diag);

/* Sets a connector property for this run, as `vpq run --set key=value` does: every
 * connector of the file that does not name `key` in its WITH (...) gets it (e.g.
 * `kafka.bootstrap.servers`, which `--brokers` sets). Call before vpq_engine_run.
 * `repartition` = 'on' (the default) or 'off' is the engine's own: with 'off', aggregations
 * over rows spread over a consumer group by another key than their GROUP BY key are not
 * repartitioned (each member aggregates what it reads). Changing it plans the pipeline again,
 * so set it before subscribing. */
void vpq_engine_set(vpq_engine *engine, const char *key, const char *value);

/* Whether vpq_engine_set takes `key`: a connector option, `kafka.<property>` or `repartition`.
 * False with a message in err (naming the closest key) when not, and for a statement's own
 * options (timestamp, watermark_delay, dead_letter, ...), which only its WITH (...) sets. */
bool vpq_engine_setting_known(const char *key, char *err, size_t err_size);

/* The repartition steps of the loaded file: the relation each feeds into relations[0..max)
 * and its internal topic (also its readers' consumer group) into topics[0..max); returns how
 * many there are (max 0 just counts them). */
int vpq_engine_repartitions(const vpq_engine *engine, const char **relations, const char **topics, int max);

/* Prints the operator pipeline of the loaded file: an indented tree, or Graphviz with `dot`. */
void vpq_engine_explain(const vpq_engine *engine, FILE *out, bool dot);

/* Writes the names of the loaded file's streams and tables (declaration order) into
 * names[0..max) and whether each is a table into is_table[0..max); returns how many there are
 * (max 0 just counts them). */
int vpq_engine_relations(const vpq_engine *engine, const char **names, bool *is_table, int max);

/* Prints the operator tree that computes relation `name`, as vpq_engine_explain prints it for
 * every relation. Returns 0, or -1 when there is no such relation. */
int vpq_engine_explain_relation(const vpq_engine *engine, const char *name, FILE *out);

/* Makes runs durable: state folder `dir` holds a checkpoint every `interval_ms` of
 * processing (0: 10 s), and vpq_engine_run restores the newest valid one first, resuming
 * every source at its position, with exactly-once output (DESIGN §6). A folder holding another
 * query's state is refused unless `reset` (which drops it). Call before vpq_engine_run. */
void vpq_engine_set_state(vpq_engine *engine, const char *dir, int64_t interval_ms, bool reset);

/* Opens the connectors and runs until every bounded source has ended and all results are
 * written (unbounded sources run until vpq_engine_stop). Errors (a file that cannot be
 * opened) are printed to `log`. Returns 0 on success, -1 on error, 1 when vpq_engine_stop
 * stopped it before a bounded source's end (not everything is written). */
int vpq_engine_run(vpq_engine *engine, FILE *log);

/* Asks a running engine to stop after the current batch (callable from a signal handler). */
void vpq_engine_stop(vpq_engine *engine);

/* Gives up, in every engine of the process, the requests being repeated while a cluster does
 * not answer (opening a Kafka source or sink): for a signal handler, beside vpq_engine_stop. */
void vpq_interrupt(void);

/* Decodes one JSON object into the source stream or table `relation` and processes it at
 * once (with the source's event time and watermark). Returns 0, or -1 with a reason in `err`
 * (unknown relation, malformed record). Usable without vpq_engine_run, e.g. by embedders. */
int vpq_engine_push_json(vpq_engine *engine, const char *relation, const char *json,
                         char *err, size_t err_size);

/* Advances the engine's processing-time clock to `now_ms` (epoch ms; the wall clock, or a
 * test's virtual clock): a source without rows for its `idle_timeout` stops holding the
 * watermark back and its watermark advances with the clock, so windows close even when data
 * stops. Rows pushed afterwards count as arriving at `now_ms`. */
void vpq_engine_tick(vpq_engine *engine, int64_t now_ms);

/* Ends every source (watermark to +infinity): closes all windows and flushes every sink. */
void vpq_engine_finish(vpq_engine *engine);

/* Calls `fn` for every row the stream or table `relation` emits from now on. Returns 0, or
 * -1 when there is no such relation. */
int vpq_engine_subscribe(vpq_engine *engine, const char *relation, vpq_row_fn fn, void *ctx);

/* The counters so far (from the thread that runs the engine). */
vpq_stats vpq_engine_stats(const vpq_engine *engine);

/* The counters as a running engine last published them (every second while it runs, and when
 * it ends); callable from any thread, e.g. an HTTP server's. */
vpq_stats vpq_engine_stats_published(vpq_engine *engine);

/* One operator of the pipeline and its row counters as last published. */
typedef struct vpq_operator_stats {
  const char *relation; /* the stream or table it computes */
  const char *name;     /* as `vpq explain` names it: "WindowAggregate", "Scan", ... */
  int index;            /* its place among the relation's operators (0, 1, ...) */
  int64_t rows_in, rows_out;
} vpq_operator_stats;

/* Fills out[0..max) with every operator's counters as last published (nothing before the
 * first publication) and returns how many; callable from any thread. */
int vpq_engine_operator_stats(vpq_engine *engine, vpq_operator_stats *out, int max);

/* Writes the state of every operator (windows, tables, joins, forecasts, plans, watermarks)
 * and the string pool into a malloc'ed buffer: what a checkpoint holds besides the
 * connectors' positions. Returns 0, or -1 when nothing is loaded. */
int vpq_engine_save_state(vpq_engine *engine, char **data, size_t *len);

/* Restores state written by vpq_engine_save_state into an engine that has just loaded the
 * same file (and run nothing yet). Returns 0, or -1 with a reason in `err` when the state is
 * malformed or belongs to another file; the engine must then be freed, not run. */
int vpq_engine_load_state(vpq_engine *engine, const char *data, size_t len, char *err, size_t err_size);

/* The accuracy of a FORECAST statement's forecasts, scored as their steps become known
 * (rolling origin: every issue is scored once all its steps are past; at the end of a bounded
 * input, against whatever actuals there are). */
typedef struct vpq_forecast_score {
  int steps;             /* the statement's horizon, in steps (0 before its step is known) */
  int64_t n;             /* forecast values scored (with a known actual) */
  double mae, rmse;
  double smape;          /* percent: mean of 2·|actual − forecast| / (|actual| + |forecast|) */
  double mase;           /* MAE / MAE of the seasonal naive forecast of the same targets */
  double coverage;       /* share of actuals inside [lo, hi], of those with an interval */
  int64_t with_interval; /* scored values that had an interval */
} vpq_forecast_score;

/* A file without sinks writes its last statement's rows to standard output; after this call
 * it writes them nowhere (for `vpq backtest`, which prints scores instead). */
void vpq_engine_no_stdout(vpq_engine *engine);

/* Writes the names of the Kafka topics the file reads or writes into topics[0..max) and
 * returns how many there are (each once). */
int vpq_engine_kafka_topics(const vpq_engine *engine, const char **topics, int max);

/* Writes the topics of the file's unbounded Kafka sources (those read as a consumer group)
 * into topics[0..max) and returns how many there are (each once). */
int vpq_engine_kafka_stream_topics(const vpq_engine *engine, const char **topics, int max);

/* Writes the `'kafka.<property>'` options of the file's unbounded Kafka sources (the property
 * without `kafka.`, and its value) into names and values [0..max), each property once (the
 * first source's), and returns how many there are: a consumer of the same cluster that is no
 * source (--partition-tasks' coordinator) takes them too. */
int vpq_engine_kafka_stream_properties(const vpq_engine *engine, const char **names, const char **values, int max);

/* Scores only forecasts issued in [from_ms, to_ms) (epoch ms). Call before vpq_engine_run. */
void vpq_engine_score_range(vpq_engine *engine, int64_t from_ms, int64_t to_ms);

/* The number of FORECAST statements of the loaded file. */
int vpq_engine_forecast_count(const vpq_engine *engine);

/* FORECAST statement `index` (file order): its stream and model names, and its accuracy at
 * horizon step `step` (-1: over all steps; NaN figures when nothing was scored). Returns -1
 * when there is no such statement or step. */
int vpq_engine_forecast_score(const vpq_engine *engine, int index, int step, const char **stream,
                              const char **model, vpq_forecast_score *out);

#endif
