/* vpq_main.c — the `vpq` command: a thin shell over libvpq (vpq.h).
 *
 *   vpq check FILE.vpq            diagnostics; exit 0 clean, 1 errors, 2 usage
 *   vpq explain [--dot] FILE.vpq  the operator pipeline
 *   vpq run FILE.vpq              run until the bounded inputs end
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpq.h"
#include "kafka/vpq_broker.h"

static const char usage_text[] =
    "usage: vpq <command> [options] FILE.vpq\n"
    "\n"
    "commands:\n"
    "  check FILE.vpq            check a query file; errors as file:line:col with a caret\n"
    "  explain [--dot] FILE.vpq  print the operator pipeline (--dot: Graphviz)\n"
    "  run FILE.vpq [--brokers HOSTS] [--set key=value]...\n"
    "                            run the file's statements until their bounded inputs end\n"
    "  broker [--topic NAME[:PARTITIONS]]... [--brokers N]\n"
    "                            an embedded Kafka cluster on localhost (librdkafka's mock\n"
    "                            cluster); prints its bootstrap list first, runs until Ctrl-C\n";

static int usage(const char *problem) {
  if (problem) fprintf(stderr, "vpq: %s\n", problem);
  fputs(usage_text, stderr);
  return 2;
}

/* Reads a whole file into a NUL-terminated malloc'd string, or NULL with errno set. */
static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
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
  return text;
}

static vpq_engine *running;

static void on_signal(int sig) {
  (void)sig;
  if (running) vpq_engine_stop(running);
}

/* Loads FILE into a new engine; returns NULL after printing why (exit code in *rc). */
static vpq_engine *load(const char *path, int *rc) {
  char *text = read_file(path);
  if (!text) {
    fprintf(stderr, "vpq: cannot read `%s`: %s\n", path, strerror(errno));
    *rc = 2;
    return NULL;
  }
  vpq_engine *engine = vpq_engine_new();
  int loaded = vpq_engine_load(engine, path, text, stderr);
  free(text);
  if (loaded != 0) {
    vpq_engine_free(engine);
    *rc = 1;
    return NULL;
  }
  return engine;
}

static int cmd_check(int argc, char **argv) {
  if (argc != 1) return usage("check takes one FILE.vpq");
  int rc = 0;
  vpq_engine *engine = load(argv[0], &rc);
  if (!engine) return rc;
  vpq_engine_free(engine);
  return 0;
}

static int cmd_explain(int argc, char **argv) {
  bool dot = false;
  const char *file = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--dot") == 0) dot = true;
    else if (argv[i][0] == '-') return usage("unknown option for explain");
    else if (!file) file = argv[i];
    else return usage("explain takes one FILE.vpq");
  }
  if (!file) return usage("explain needs a FILE.vpq");
  int rc = 0;
  vpq_engine *engine = load(file, &rc);
  if (!engine) return rc;
  vpq_engine_explain(engine, stdout, dot);
  vpq_engine_free(engine);
  return 0;
}

static int cmd_run(int argc, char **argv) {
  const char *file = NULL;
  const char **sets = calloc((size_t)argc + 1, sizeof *sets);
  if (!sets) abort();
  int nsets = 0;
  const char *brokers = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
      brokers = argv[++i];
    } else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc && strchr(argv[i + 1], '=')) {
      sets[nsets++] = argv[++i];
    } else if (argv[i][0] == '-' || file) {
      free(sets);
      return usage(argv[i][0] == '-' ? "run takes --brokers HOSTS and --set key=value" : "run takes one FILE.vpq");
    } else {
      file = argv[i];
    }
  }
  if (!file) {
    free(sets);
    return usage("run needs a FILE.vpq");
  }
  int rc = 0;
  vpq_engine *engine = load(file, &rc);
  if (!engine) {
    free(sets);
    return rc;
  }
  if (brokers) vpq_engine_set(engine, "kafka.bootstrap.servers", brokers);
  for (int i = 0; i < nsets; i++) {
    const char *eq = strchr(sets[i], '=');
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
    vpq_engine_set(engine, key, eq + 1);
  }
  free(sets);
  running = engine;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  int result = vpq_engine_run(engine, stderr);
  vpq_stats stats = vpq_engine_stats(engine);
  fprintf(stderr, "vpq: %lld rows in, %lld rows out, %lld late, %lld malformed, %lld dead-lettered\n",
          (long long)stats.rows_in, (long long)stats.rows_out, (long long)stats.late, (long long)stats.malformed,
          (long long)stats.dead_lettered);
  if (stats.peak_groups)
    fprintf(stderr, "vpq: at most %lld aggregation groups open at once, %lld bytes each\n",
            (long long)stats.peak_groups, (long long)stats.group_bytes);
  running = NULL;
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
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
      topics[ntopics++] = argv[++i];
    } else if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
      brokers = atoi(argv[++i]);
      if (brokers < 1 || brokers > 16) {
        free(topics);
        return usage("--brokers takes 1 to 16");
      }
    } else {
      free(topics);
      return usage("broker takes --topic NAME[:PARTITIONS] and --brokers N");
    }
  }
  signal(SIGINT, on_broker_signal);
  signal(SIGTERM, on_broker_signal);
  int rc = vpq_broker_run(brokers, topics, ntopics, stdout, stderr, &broker_stop);
  free(topics);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage(NULL);
  const char *cmd = argv[1];
  if (strcmp(cmd, "check") == 0) return cmd_check(argc - 2, argv + 2);
  if (strcmp(cmd, "explain") == 0) return cmd_explain(argc - 2, argv + 2);
  if (strcmp(cmd, "run") == 0) return cmd_run(argc - 2, argv + 2);
  if (strcmp(cmd, "broker") == 0) return cmd_broker(argc - 2, argv + 2);
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    fputs(usage_text, stdout);
    return 0;
  }
  return usage("unknown command");
}
