/* vpq_main.c — the `vpq` command: a thin shell over libvpq (vpq.h).
 *
 *   vpq check FILE.vpq            diagnostics; exit 0 clean, 1 errors, 2 usage
 *   vpq explain [--dot] FILE.vpq  the operator pipeline (--set key=value as for run)
 *   vpq run FILE.vpq              run until the bounded inputs end
 *   vpq backtest FILE.vpq         run, then print the accuracy of each FORECAST statement
 *   vpq broker                    an embedded Kafka cluster
 *   vpq simulate                  the battery-fleet simulator
 *   vpq COMMAND --help            that command's usage
 */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vpq.h"
#include "http/vpq_http.h"
#include "kafka/vpq_broker.h"
#include "kafka/vpq_kafka.h"
#include "kafka/vpq_kafka_tasks.h"
#include "sim/vpq_sim.h"
#include "vpq_codec.h"
#include "vpq_demo.h"

/* The commands and their usage, as `vpq --help` lists them (`vpq COMMAND --help`: one). */
static const struct {
  const char *name;
  const char *usage;
} commands[] = {
    {"check", "  check FILE.vpq            check a query file; errors as file:line:col with a caret\n"},
    {"explain", "  explain [--dot] [--set key=value]... FILE.vpq\n"
                "                            print the operator pipeline (--dot: Graphviz); --set as for\n"
                "                            run (e.g. repartition=off)\n"},
    {"run", "  run FILE.vpq [--brokers HOSTS] [--http ADDR [--http-token TOKEN]] [--set key=value]...\n"
            "                            run the file's statements until their bounded inputs end;\n"
            "                            --http serves a dashboard and its streams, tables and\n"
            "                            metrics on ADDR ([HOST]:PORT, no host: 127.0.0.1);\n"
            "                            --http-token (or $VPQ_HTTP_TOKEN) requires it as a bearer token;\n"
            "                            without --brokers, a file that uses Kafka and names no cluster\n"
            "                            ('kafka.bootstrap.servers' in a WITH or --set) runs the demo:\n"
            "                            an embedded broker and the simulator (--set sim.<name>=...)\n"
            "      [--state-dir DIR [--checkpoint-interval 10s] [--reset-state]]\n"
            "                            checkpoint into DIR and resume from its newest checkpoint:\n"
            "                            exactly-once output after a crash (--reset-state drops it)\n"
            "      [--partition-tasks]   with --state-dir and --brokers: one pipeline per partition of\n"
            "                            the Kafka sources, its state in DIR/task-N, so that partitions\n"
            "                            move between group members together with their state\n"},
    {"backtest", "  backtest FILE.vpq [--from T] [--to T] [--steps] [--json]\n"
                 "                            run the file over its bounded inputs and print the accuracy\n"
                 "                            of every FORECAST statement (MAE, RMSE, sMAPE, MASE, interval\n"
                 "                            coverage) for forecasts issued in [T, T) (ISO-8601 or epoch ms)\n"},
    {"simulate", "  simulate [--devices N] [--sites N] [--speed X] [--hours H] [--history-days D]\n"
                 "           [--seed S] [--pv RATIO] [--brokers HOSTS]\n"
                 "                            a battery fleet and site meters on Kafka (vpp.telemetry,\n"
                 "                            vpp.meters) that obeys vpp.dispatch; --pv gives each site\n"
                 "                            rooftop PV of RATIO × its peak load (meters read load − PV);\n"
                 "                            without --brokers it starts an embedded cluster and prints\n"
                 "                            its bootstrap list\n"},
    {"broker", "  broker [--topic NAME[:PARTITIONS]]... [--brokers N] [--control]\n"
               "                            an embedded Kafka cluster on localhost (librdkafka's mock\n"
               "                            cluster); prints its bootstrap list first, runs until Ctrl-C;\n"
               "                            --control reads fault commands on stdin: down ID, up ID,\n"
               "                            rtt ID MS, errors API COUNT ERROR (for fault tests)\n"},
};

/* Prints the usage of every command to `out`. */
static void print_usage(FILE *out) {
  fputs("usage: vpq <command> [options] FILE.vpq\n\ncommands:\n", out);
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) fputs(commands[i].usage, out);
}

/* `vpq COMMAND --help`: the command's usage on stdout, its first line after "usage: vpq " and the
 * others moved as far, so that they stay aligned. Returns 0. */
static int command_help(int command) {
  const char *text = commands[command].usage + 2;
  fputs("usage: vpq ", stdout);
  for (const char *nl; (nl = strchr(text, '\n')) != NULL; text = nl + 1) {
    fwrite(text, 1, (size_t)(nl + 1 - text), stdout);
    if (nl[1]) fputs("         ", stdout);
  }
  return 0;
}

/* Prints the problem (a printf format and its arguments; none when NULL) and the usage to
 * stderr; returns the exit code of a usage error, 2. */
__attribute__((format(printf, 1, 2))) static int usage(const char *problem, ...) {
  if (problem) {
    va_list args;
    va_start(args, problem);
    fputs("vpq: ", stderr);
    vfprintf(stderr, problem, args);
    fputc('\n', stderr);
    va_end(args);
  }
  print_usage(stderr);
  return 2;
}

/* Reads a whole file into a NUL-terminated malloc'd string (its length, which counts any NUL
 * byte it holds, in *length when not NULL), or NULL with errno set (EISDIR for a folder). */
static char *read_file(const char *path, size_t *length) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(f);
    errno = EISDIR;
    return NULL;
  }
  size_t cap = 4096, len = 0;
  char *text = malloc(cap);
  if (!text) abort();
  size_t got;
  while ((got = fread(text + len, 1, cap - len - 1, f)) > 0) {
    len += got;
    if (cap - len - 1 == 0) {
      cap *= 2;
      text = realloc(text, cap);
      if (!text) abort();
    }
  }
  int failed = ferror(f);
  fclose(f);
  if (failed) {
    free(text);
    errno = EIO;
    return NULL;
  }
  text[len] = '\0';
  if (length) *length = len;
  return text;
}

static vpq_engine *running;

/* SIGINT, SIGTERM: the run stops after its batch (and gives up waiting for a cluster); a second
 * one stops the process at once. */
static volatile sig_atomic_t stopped_by; /* the signal that stopped the run */

static void on_signal(int sig) {
  stopped_by = sig;
  static volatile sig_atomic_t signals;
  if (signals++) {
    static const char msg[] = "vpq: a second signal: stopped at once\n";
    ssize_t written = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)written;
    _exit(128 + sig);
  }
  vpq_interrupt();
  if (running) vpq_engine_stop(running);
}

/* Whether a Kafka connector of `plan` names its cluster ('kafka.bootstrap.servers' in its WITH). */
static bool names_cluster(const vpq_plan *plan) {
  for (int r = 0; r < plan->nrelations; r++) {
    const vpq_relation *rel = plan->relations[r];
    const vpq_plan_connector *conn = rel->is_source ? &rel->source : rel->is_sink ? &rel->sink : NULL;
    if (!conn || !conn->connector || strcmp(conn->connector, "kafka") != 0) continue;
    for (int i = 0; i < conn->options.count; i++)
      if (strcmp(conn->options.items[i].key, "kafka.bootstrap.servers") == 0) return true;
  }
  return false;
}

/* Records what the Kafka connector would refuse in the WITH of a statement with connector =
 * 'kafka' (vpq_kafka_check_option), on the statements as parsed: beside the analysis' errors. */
static void check_kafka_options(const vpq_ast_file *ast, vpq_diag *diag) {
  for (int i = 0; ast && i < ast->count; i++) {
    const vpq_ast_options *options = &ast->stmts[i]->options;
    bool kafka = false;
    for (int k = 0; k < options->count; k++) {
      const vpq_ast_option *o = &options->items[k];
      kafka |= strcmp(o->key, "connector") == 0 && o->value->kind == VPQ_AST_STRING && strcmp(o->value->sval, "kafka") == 0;
    }
    for (int k = 0; kafka && k < options->count; k++) {
      const vpq_ast_option *o = &options->items[k];
      if (o->value->kind == VPQ_AST_STRING) vpq_kafka_check_option(o->key, o->value->sval, o->span, diag);
    }
  }
}

/* Checks the text of file `path` as `vpq check` does: the engine's analysis, and what the Kafka
 * connector would refuse when the run opens it (check_kafka_options); prints every error to
 * stderr in file order. Returns the number of errors; *cluster says whether the file names a
 * Kafka cluster (names_cluster). */
static int check_text(const char *path, const char *text, size_t len, bool *cluster) {
  char *copy = strdup(path);
  if (!copy) abort();
  vpq_arena arena;
  vpq_arena_init(&arena);
  vpq_diag diag;
  vpq_diag_init(&diag, path, text, len);
  vpq_ast_file *ast = vpq_parse(&arena, &diag);
  vpq_plan *plan = ast ? vpq_analyze(&arena, &diag, ast, path, dirname(copy)) : NULL;
  check_kafka_options(ast, &diag);
  *cluster = plan && names_cluster(plan);
  vpq_diag_print(&diag, stderr);
  int errors = diag.errors + (plan ? 0 : !diag.errors);
  vpq_diag_free(&diag);
  vpq_arena_free(&arena);
  free(copy);
  return errors;
}

/* Loads FILE into a new engine; returns NULL after printing why (exit code in *rc). *cluster
 * (when not NULL) says whether the file names a Kafka cluster in a WITH. */
static vpq_engine *load(const char *path, int *rc, bool *cluster) {
  size_t len = 0;
  char *text = read_file(path, &len);
  if (!text) {
    fprintf(stderr, "vpq: cannot read `%s`: %s\n", path, strerror(errno));
    *rc = 2;
    return NULL;
  }
  bool named = false;
  vpq_engine *engine = NULL;
  if (check_text(path, text, len, &named) == 0) {
    engine = vpq_engine_new();
    if (vpq_engine_load(engine, path, text, stderr) != 0) {
      vpq_engine_free(engine);
      engine = NULL;
    }
  }
  free(text);
  if (!engine) *rc = 1;
  if (cluster) *cluster = named;
  return engine;
}

static int cmd_check(int argc, char **argv) {
  if (argc == 0) return usage("check needs a FILE.vpq");
  for (int i = 0; i < argc; i++)
    if (argv[i][0] == '-') return usage("unknown option `%s` for check: check takes one FILE.vpq", argv[i]);
  if (argc != 1) return usage("check takes one FILE.vpq, not also `%s`", argv[1]);
  int rc = 0;
  vpq_engine *engine = load(argv[0], &rc, NULL);
  if (!engine) return rc;
  vpq_engine_free(engine);
  return 0;
}

/* Whether a `--set key=value` has a key the run does not know (vpq_engine_setting_known; the
 * demo checks its own `sim.<name>`) or a value its key cannot take (`repartition`: on or off,
 * as the engine also accepts true and false); prints the usage error. */
static bool bad_set(const char *set) {
  const char *value = strchr(set, '=') + 1;
  char key[256], err[512];
  snprintf(key, sizeof key, "%.*s", (int)(value - 1 - set), set);
  if (strncmp(key, "sim.", 4) != 0 && !vpq_engine_setting_known(key, err, sizeof err)) {
    usage("%s", err);
    return true;
  }
  if (strncmp(set, "repartition=", 12) != 0 || strcmp(value, "on") == 0 || strcmp(value, "off") == 0 ||
      strcmp(value, "true") == 0 || strcmp(value, "false") == 0)
    return false;
  usage("--set repartition is 'on' or 'off', not '%s'", value);
  return true;
}

/* Applies a `--set key=value` to an engine. */
static void apply_set(vpq_engine *engine, const char *set) {
  const char *eq = strchr(set, '=');
  char key[256];
  snprintf(key, sizeof key, "%.*s", (int)(eq - set), set);
  vpq_engine_set(engine, key, eq + 1);
}

static int cmd_explain(int argc, char **argv) {
  bool dot = false;
  const char *file = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--dot") == 0) dot = true;
    else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc && strchr(argv[i + 1], '=')) {
      if (bad_set(argv[++i])) return 2;
    }
    else if (strcmp(argv[i], "--set") == 0) return usage("--set takes key=value");
    else if (argv[i][0] == '-') return usage("unknown option `%s` for explain: explain takes --dot and --set key=value", argv[i]);
    else if (!file) file = argv[i];
    else return usage("explain takes one FILE.vpq, not also `%s`", argv[i]);
  }
  if (!file) return usage("explain needs a FILE.vpq");
  int rc = 0;
  vpq_engine *engine = load(file, &rc, NULL);
  if (!engine) return rc;
  for (int i = 0; i + 1 < argc; i++)
    if (strcmp(argv[i], "--set") == 0 && strchr(argv[i + 1], '=')) apply_set(engine, argv[++i]);
  vpq_engine_explain(engine, stdout, dot);
  vpq_engine_free(engine);
  return 0;
}

/* Parses a duration: a number with ms, s, m or h (a bare number is seconds). */
static bool parse_interval(const char *text, int64_t *ms) {
  char *end;
  double v = strtod(text, &end);
  double unit = strcmp(end, "ms") == 0 ? 1 : strcmp(end, "s") == 0 || !*end ? 1000 : strcmp(end, "m") == 0 ? 60000
              : strcmp(end, "h") == 0 ? 3600000 : -1;
  if (end == text || unit < 0 || !(v > 0) || v * unit > 1e12) return false;
  *ms = (int64_t)(v * unit);
  return *ms > 0;
}

static volatile sig_atomic_t tasks_stop;

static void on_tasks_signal(int sig) {
  (void)sig;
  tasks_stop = 1;
}

/* vpq run --partition-tasks: one pipeline per partition, state that moves (vpq_kafka_tasks.h). */
static int run_tasks(const char *file, const char *state_dir, const char *brokers, const char *http_addr, bool reset,
                     int64_t interval_ms, const char **sets, int nsets) {
  if (!state_dir || !brokers || http_addr || reset) {
    fprintf(stderr, "vpq: --partition-tasks needs --state-dir and --brokers, and takes neither --http nor "
            "--reset-state (remove DIR/task-N folders to start a partition over)\n");
    return 2;
  }
  char *text = read_file(file, NULL);
  if (!text) {
    fprintf(stderr, "vpq: cannot read %s\n", file);
    return 1;
  }
  vpq_tasks_config config = {file, text, sets, nsets, brokers, state_dir, interval_ms};
  signal(SIGINT, on_tasks_signal);
  signal(SIGTERM, on_tasks_signal);
  signal(SIGXFSZ, SIG_IGN);
  int rc = vpq_kafka_run_tasks(&config, stderr, &tasks_stop);
  free(text);
  return rc;
}

static int cmd_run(int argc, char **argv) {
  const char *file = NULL;
  const char **sets = calloc((size_t)argc + 1, sizeof *sets);
  if (!sets) abort();
  int nsets = 0;
  const char *brokers = NULL, *http_addr = NULL, *http_token = getenv("VPQ_HTTP_TOKEN"), *state_dir = NULL;
  int64_t interval_ms = 10000;
  bool reset_state = false, partition_tasks = false, interval_given = false;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
      brokers = argv[++i];
    } else if (strcmp(argv[i], "--http") == 0 && i + 1 < argc) {
      http_addr = argv[++i];
    } else if (strcmp(argv[i], "--http-token") == 0 && i + 1 < argc) {
      http_token = argv[++i];
    } else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc && strchr(argv[i + 1], '=')) {
      sets[nsets++] = argv[++i];
      if (bad_set(argv[i])) {
        free(sets);
        return 2;
      }
    } else if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc) {
      state_dir = argv[++i];
    } else if (strcmp(argv[i], "--checkpoint-interval") == 0 && i + 1 < argc) {
      if (!parse_interval(argv[++i], &interval_ms)) {
        free(sets);
        return usage("--checkpoint-interval takes a duration: 10s, 500ms, 2m");
      }
      interval_given = true;
    } else if (strcmp(argv[i], "--reset-state") == 0) {
      reset_state = true;
    } else if (strcmp(argv[i], "--partition-tasks") == 0) {
      partition_tasks = true;
    } else if (argv[i][0] == '-' || file) {
      free(sets);
      if (argv[i][0] != '-') return usage("run takes one FILE.vpq, not also `%s`", argv[i]);
      if (strcmp(argv[i], "--set") == 0) return usage("--set takes key=value");
      static const char *const valued[] = {"--brokers", "--http", "--http-token", "--state-dir", "--checkpoint-interval"};
      for (size_t o = 0; o < sizeof valued / sizeof *valued; o++)
        if (strcmp(argv[i], valued[o]) == 0) return usage("%s needs a value", argv[i]);
      return usage("unknown option `%s` for run: run takes --brokers HOSTS, --http ADDR, --http-token TOKEN, "
                   "--state-dir DIR, --checkpoint-interval DURATION, --reset-state, --partition-tasks and "
                   "--set key=value",
                   argv[i]);
    } else {
      file = argv[i];
    }
  }
  if (!file) {
    free(sets);
    return usage("run needs a FILE.vpq");
  }
  if (http_token && getenv("VPQ_HTTP_TOKEN") != http_token && !http_addr) {
    free(sets);
    return usage("--http-token goes with --http ADDR: without it nothing is served");
  }
  if (state_dir && !*state_dir) {
    free(sets);
    return usage("--state-dir needs a folder, not an empty name");
  }
  if (!state_dir && (reset_state || interval_given)) {
    free(sets);
    return usage("%s goes with --state-dir DIR: without it a run keeps no state", reset_state ? "--reset-state" : "--checkpoint-interval");
  }
  int rc = 0;
  bool cluster = brokers != NULL;
  vpq_engine *engine = load(file, &rc, brokers ? NULL : &cluster);
  if (!engine) {
    free(sets);
    return rc;
  }
  for (int i = 0; i < nsets; i++) cluster |= strncmp(sets[i], "kafka.bootstrap.servers=", 24) == 0;
  /* The demo: a file that uses Kafka and names no cluster (no --brokers, no
   * 'kafka.bootstrap.servers' in a WITH or --set). */
  const char *topics[1];
  bool demo = !cluster && vpq_engine_kafka_topics(engine, topics, 1) > 0;
  if (state_dir && demo) {
    fprintf(stderr, "vpq: --state-dir needs --brokers: the demo's embedded broker starts empty on every run, so there "
            "is nothing to resume\n");
    free(sets);
    vpq_engine_free(engine);
    return 2;
  }
  if (partition_tasks) {
    vpq_engine_free(engine);
    int tasks_rc = run_tasks(file, state_dir, brokers, http_addr, reset_state, interval_ms, sets, nsets);
    free(sets);
    return tasks_rc;
  }
  if (state_dir) vpq_engine_set_state(engine, state_dir, interval_ms, reset_state);
  if (brokers) vpq_engine_set(engine, "kafka.bootstrap.servers", brokers);
  /* The demo is one process with its own broker: one member, nothing to repartition. */
  if (demo) vpq_engine_set(engine, "repartition", "off");
  for (int i = 0; i < nsets; i++) {
    if (strncmp(sets[i], "sim.", 4) != 0) apply_set(engine, sets[i]);
    else if (!demo)
      fprintf(stderr, "vpq: --set %.*s has no effect: sim.<name> settings are the demo's (a file that uses Kafka, run "
              "without --brokers); a `connector = 'sim'` source takes devices, sites, seed, speed, duration, history "
              "and pv\n", (int)strcspn(sets[i], "="), sets[i]);
  }
  vpq_http *http = NULL;
  if (http_addr) {
    char err[512], *text = read_file(file, NULL);
    http = vpq_http_start(engine, http_addr, http_token, text, err, sizeof err);
    free(text);
    if (!http) {
      fprintf(stderr, "vpq: --http %s: %s\n", http_addr, err);
      free(sets);
      vpq_engine_free(engine);
      return 1;
    }
    fprintf(stderr, "vpq: serving HTTP on port %d (dashboard at /)\n", vpq_http_port(http));
  }
  vpq_demo *demo_run = NULL;
  if (demo && !(demo_run = vpq_demo_start(engine, sets, nsets, stderr, &rc))) {
    vpq_http_stop(http);
    free(sets);
    vpq_engine_free(engine);
    return rc;
  }
  running = engine;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGXFSZ, SIG_IGN); /* a file-size limit fails the write (a checkpoint) instead of killing vpq */
  int result = vpq_engine_run(engine, stderr);
  vpq_http_stop(http);
  if (demo_run) vpq_demo_stop(demo_run);
  free(sets);
  vpq_stats stats = vpq_engine_stats(engine);
  fprintf(stderr, "vpq: %lld rows in, %lld rows out, %lld late, %lld malformed, %lld dead-lettered\n",
          (long long)stats.rows_in, (long long)stats.rows_out, (long long)stats.late, (long long)stats.malformed,
          (long long)stats.dead_lettered);
  bool refused = false;
  for (int r = 0; r < VPQ_REASON_COUNT; r++) {
    if (!stats.refused[r]) continue;
    fprintf(stderr, "%s%s %lld", refused ? ", " : "vpq: refused by reason: ", vpq_reason_name((vpq_reason)r),
            (long long)stats.refused[r]);
    refused = true;
  }
  if (refused) fputc('\n', stderr);
  if (stats.refused_out)
    fprintf(stderr, "vpq: %lld row(s) refused by their sink (too large to write)\n", (long long)stats.refused_out);
  if (stats.peak_groups)
    fprintf(stderr, "vpq: at most %lld aggregation groups open at once, %lld bytes each\n",
            (long long)stats.peak_groups, (long long)stats.group_bytes);
  if (state_dir)
    fprintf(stderr, "vpq: %lld checkpoint(s) in %s (%lld failed); the last: %lld bytes of state in %lld ms\n",
            (long long)stats.checkpoints, state_dir, (long long)stats.checkpoint_failures,
            (long long)stats.checkpoint_bytes, (long long)stats.checkpoint_ms);
  struct rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) == 0)
    fprintf(stderr, "vpq: peak memory %.1f MiB resident\n", (double)usage.ru_maxrss / 1024.0);
  running = NULL;
  vpq_engine_free(engine);
  int demo_rc = demo_run ? vpq_demo_finish(demo_run, stderr) : 0;
  if (result == 1 && stopped_by) return 128 + stopped_by; /* stopped before its input's end */
  return result == 0 && demo_rc == 0 ? 0 : 1;
}

/* Parses --from/--to: epoch ms or ISO-8601 (a date alone is its midnight UTC). */
static bool parse_time(const char *text, int64_t *ms) {
  char *end;
  long long v = strtoll(text, &end, 10);
  if (*end == '\0' && end != text) {
    *ms = v;
    return true;
  }
  char full[64];
  if (strlen(text) == 10) {
    snprintf(full, sizeof full, "%sT00:00:00Z", text);
    text = full;
  }
  return vpq_timestamp_parse(text, strlen(text), ms);
}

static void print_number(FILE *out, double v, bool json) {
  if (isnan(v)) fputs(json ? "null" : "        -", out);
  else fprintf(out, json ? "%.6g" : " %8.4g", v);
}

/* One line (text) or object (JSON) of scores. */
static void print_score(FILE *out, const char *stream, const char *model, int step, const vpq_forecast_score *sc,
                        bool json) {
  if (json) {
    fprintf(out, "{\"stream\":\"%s\",\"model\":\"%s\",\"step\":", stream, model);
    if (step < 0) fputs("null", out);
    else fprintf(out, "%d", step);
    fprintf(out, ",\"n\":%lld", (long long)sc->n);
    const char *names[] = {"mae", "rmse", "smape", "mase", "coverage"};
    double values[] = {sc->mae, sc->rmse, sc->smape, sc->mase, sc->coverage};
    for (int i = 0; i < 5; i++) {
      fprintf(out, ",\"%s\":", names[i]);
      print_number(out, values[i], true);
    }
    fputs("}\n", out);
    return;
  }
  char where[32] = "all";
  if (step >= 0) snprintf(where, sizeof where, "%d", step);
  fprintf(out, "%-20s %-15s %5s %8lld", stream, model, where, (long long)sc->n);
  print_number(out, sc->mae, false);
  print_number(out, sc->rmse, false);
  print_number(out, sc->smape, false);
  print_number(out, sc->mase, false);
  print_number(out, isnan(sc->coverage) ? NAN : 100 * sc->coverage, false);
  fputc('\n', out);
}

static int cmd_backtest(int argc, char **argv) {
  const char *file = NULL;
  int64_t from = INT64_MIN, to = INT64_MAX;
  bool json = false, steps = false;
  for (int i = 0; i < argc; i++) {
    if ((strcmp(argv[i], "--from") == 0 || strcmp(argv[i], "--to") == 0) && i + 1 < argc) {
      int64_t *at = argv[i][2] == 'f' ? &from : &to;
      if (!parse_time(argv[i + 1], at)) return usage("--from and --to take an ISO-8601 time or epoch milliseconds");
      i++;
    } else if (strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (strcmp(argv[i], "--steps") == 0) {
      steps = true;
    } else if (argv[i][0] == '-' || file) {
      if (argv[i][0] != '-') return usage("backtest takes one FILE.vpq, not also `%s`", argv[i]);
      return usage("unknown option `%s` (or it lacks its value) for backtest: backtest takes --from T, --to T, "
                   "--steps and --json",
                   argv[i]);
    } else {
      file = argv[i];
    }
  }
  if (!file) return usage("backtest needs a FILE.vpq");
  int rc = 0;
  vpq_engine *engine = load(file, &rc, NULL);
  if (!engine) return rc;
  if (vpq_engine_forecast_count(engine) == 0) {
    fprintf(stderr, "vpq: %s has no FORECAST statement to backtest\n", file);
    vpq_engine_free(engine);
    return 1;
  }
  vpq_engine_no_stdout(engine);
  vpq_engine_score_range(engine, from, to);
  running = engine;
  signal(SIGINT, on_signal);
  int result = vpq_engine_run(engine, stderr);
  running = NULL;
  if (!json) printf("%-20s %-15s %5s %8s %8s %8s %8s %8s %8s\n", "stream", "model", "step", "n", "MAE", "RMSE", "sMAPE%",
                    "MASE", "cover%");
  for (int i = 0; i < vpq_engine_forecast_count(engine); i++) {
    const char *stream, *model;
    vpq_forecast_score sc;
    vpq_engine_forecast_score(engine, i, -1, &stream, &model, &sc);
    print_score(stdout, stream, model, -1, &sc, json);
    for (int s = 0; steps && s < sc.steps; s++) {
      vpq_forecast_score at;
      vpq_engine_forecast_score(engine, i, s, &stream, &model, &at);
      print_score(stdout, stream, model, s, &at, json);
    }
  }
  vpq_engine_free(engine);
  return result == 0 ? 0 : 1;
}

static volatile sig_atomic_t broker_stop;

static void on_broker_signal(int sig) {
  (void)sig;
  broker_stop = 1;
}

static int cmd_broker(int argc, char **argv) {
  const char **topics = calloc((size_t)argc + 1, sizeof *topics);
  if (!topics) abort();
  int ntopics = 0, brokers = 1;
  bool control = false;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
      topics[ntopics++] = argv[++i];
    } else if (strcmp(argv[i], "--control") == 0) {
      control = true;
    } else if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
      brokers = atoi(argv[++i]);
      if (brokers < 1 || brokers > 16) {
        free(topics);
        return usage("--brokers takes 1 to 16");
      }
    } else {
      free(topics);
      return usage("unknown option `%s` (or it lacks its value) for broker: broker takes --topic NAME[:PARTITIONS], "
                   "--brokers N and --control",
                   argv[i]);
    }
  }
  signal(SIGINT, on_broker_signal);
  signal(SIGTERM, on_broker_signal);
  int rc = vpq_broker_run(brokers, topics, ntopics, control, stdout, stderr, &broker_stop);
  free(topics);
  return rc;
}

static volatile sig_atomic_t simulate_stop;

static void on_simulate_signal(int sig) {
  (void)sig;
  simulate_stop = 1;
}

static int cmd_simulate(int argc, char **argv) {
  vpq_sim_config config = vpq_sim_defaults();
  double speed = 1, hours = 0, history_days = 0;
  const char *brokers = NULL;
  for (int i = 0; i < argc; i += 2) { /* every option takes a value */
    char *end = NULL;
    double value = i + 1 < argc ? strtod(argv[i + 1], &end) : 0;
    bool number = end && end != argv[i + 1] && *end == '\0';
    if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) brokers = argv[i + 1];
    else if (strcmp(argv[i], "--devices") == 0 && number) config.devices = (int)value;
    else if (strcmp(argv[i], "--sites") == 0 && number) config.sites = (int)value;
    else if (strcmp(argv[i], "--seed") == 0 && number) config.seed = (uint64_t)value;
    else if (strcmp(argv[i], "--pv") == 0 && number && value >= 0 && value <= 10) config.pv_ratio = value;
    else if (strcmp(argv[i], "--speed") == 0 && number && value > 0) speed = value;
    else if (strcmp(argv[i], "--hours") == 0 && number && value >= 0) hours = value;
    else if (strcmp(argv[i], "--history-days") == 0 && number && value >= 0 && value <= 56) history_days = value;
    else return usage("bad option `%s` for simulate (unknown, or its value is missing or out of range): simulate "
                      "takes --devices N, --sites N, --speed X (> 0), --hours H, --history-days D (0..56), --seed S, "
                      "--pv RATIO (0..10) and --brokers HOSTS",
                      argv[i]);
  }
  char err[512];
  vpq_sim *sim = vpq_sim_new(&config, err, sizeof err);
  if (!sim) return usage("%s", err);
  vpq_broker *broker = NULL;
  if (!brokers) {
    const char *topics[] = {"vpp.telemetry:4", "vpp.meters:4", "vpp.dispatch:4"};
    broker = vpq_broker_start(1, topics, 3, err, sizeof err);
    if (!broker) {
      fprintf(stderr, "vpq simulate: embedded broker: %s\n", err);
      vpq_sim_free(sim);
      return 1;
    }
    brokers = vpq_broker_bootstraps(broker);
    printf("%s\n", brokers);
    fflush(stdout);
  }
  int64_t now = (int64_t)time(NULL) * 1000;
  vpq_sim_run_options options = {.brokers = brokers,
                                 .telemetry_topic = "vpp.telemetry",
                                 .meters_topic = "vpp.meters",
                                 .dispatch_topic = "vpp.dispatch",
                                 .start_ms = now / 60000 * 60000,
                                 .interval_ms = 60000,
                                 .history_days = (int)history_days,
                                 .speed = speed,
                                 .duration_ms = (int64_t)(hours * 3600000)};
  fprintf(stderr, "vpq simulate: %d batteries on %d sites, %g× real time, to %s\n", config.devices, config.sites, speed,
          brokers);
  signal(SIGINT, on_simulate_signal);
  signal(SIGTERM, on_simulate_signal);
  int rc = vpq_sim_run(sim, &options, &simulate_stop, stderr);
  vpq_broker_stop(broker);
  vpq_sim_free(sim);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage(NULL);
  const char *cmd = argv[1];
  for (size_t c = 0; c < sizeof commands / sizeof *commands; c++)
    for (int i = 2; i < argc && strcmp(cmd, commands[c].name) == 0; i++)
      if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return command_help((int)c);
  if (strcmp(cmd, "check") == 0) return cmd_check(argc - 2, argv + 2);
  if (strcmp(cmd, "explain") == 0) return cmd_explain(argc - 2, argv + 2);
  if (strcmp(cmd, "run") == 0) return cmd_run(argc - 2, argv + 2);
  if (strcmp(cmd, "broker") == 0) return cmd_broker(argc - 2, argv + 2);
  if (strcmp(cmd, "backtest") == 0) return cmd_backtest(argc - 2, argv + 2);
  if (strcmp(cmd, "simulate") == 0) return cmd_simulate(argc - 2, argv + 2);
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    print_usage(stdout);
    return 0;
  }
  return usage("unknown command `%s`", cmd);
}
