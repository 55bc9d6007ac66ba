/* make_checkpoint_seeds.c — writes the seed corpus of the checkpoint fuzzer (fuzz_checkpoint.c):
 * real states of its query (checkpoint_query.h), taken while synthetic fleet, price and
 * telemetry rows run through it, so that every stateful operator (windows, sessions, the
 * rollup table, both joins, FORECAST's fitted Holt–Winters model and SCHEDULE's plan) holds
 * state. Each state is written twice, in the two encodings the fuzzer reads (its first byte):
 * state-<rows> (0x00, then the engine state of vpq_engine_save_state) and file-<rows> (0x01,
 * then a checkpoint file as vpq_ckpt_write writes it). Every state is checked to restore into
 * a fresh engine before it is written, and every stream and table of the query must have
 * emitted rows by the end (else the states would miss the state that matters).
 *
 * Damaged copies follow, so that the loaders' refusals are covered from the start: each state
 * with one byte inverted at DAMAGE_POINTS evenly spread places (state-<rows>-flip-<at>: the
 * place falls into a different operator's state each time, and the lengths around it still
 * hold), the 20-row state with each of its first HEADER_FLIPS bytes inverted (the engine's
 * counters and string pool), and the 20-row checkpoint file with each header field inverted
 * and cut short at a few places (file-20-flip-<at>, file-20-cut-<len>). The rows and the
 * engine's clock are deterministic; only FORECAST's CPU-time counter (part of its state) differs
 * from run to run, in a few bytes.
 *
 * Regenerate the corpus (after a change of the state format or of the query) in the fuzz build,
 * keeping of the seeds those that add coverage (libFuzzer's merge; it names them by their hash):
 *
 *   CC=clang cmake -S . -B build-fuzz -DVPQ_FUZZ=ON -DVPQ_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
 *   cmake --build build-fuzz -j2 --target make_checkpoint_seeds fuzz_checkpoint
 *   rm -rf build-fuzz/seeds && build-fuzz/make_checkpoint_seeds build-fuzz/seeds
 *   rm -rf tests/fuzz/corpus/checkpoint && mkdir tests/fuzz/corpus/checkpoint
 *   build-fuzz/fuzz_checkpoint -merge=1 tests/fuzz/corpus/checkpoint build-fuzz/seeds
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint_query.h"
#include "vpq.h"
#include "vpq_ckpt.h"

enum { DEVICES = 8, SITES = 3, TOTAL_ROWS = 3600, DAMAGE_POINTS = 96, HEADER_FLIPS = 80 };
static const int64_t start_ms = 1704067200000; /* 2024-01-01 00:00 UTC */
/* The telemetry rows after which a state is taken (and once more after vpq_engine_finish). */
static const int snapshot_rows[] = {0, 20, 450, 900, 1800, TOTAL_ROWS};

/* A deterministic stream of pseudo-random numbers (splitmix64). */
static uint64_t next_random(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* A uniform double in [0, 1). */
static double next_uniform(uint64_t *state) { return (double)(next_random(state) >> 11) * 0x1.0p-53; }

/* Pushes one JSON row into `relation`; a refused row is a bug of this generator. */
static void push(vpq_engine *engine, const char *relation, const char *json) {
  char err[256];
  if (vpq_engine_push_json(engine, relation, json, err, sizeof err) != 0) {
    fprintf(stderr, "make_checkpoint_seeds: %s refused %s: %s\n", relation, json, err);
    exit(1);
  }
}

/* The fleet table's row of device d with state of charge soc. */
static void push_fleet(vpq_engine *engine, int d, double soc) {
  static const double capacity_kwh[] = {10, 20, 50}, max_kw[] = {5, 10, 25};
  char json[256];
  snprintf(json, sizeof json,
           "{\"device_id\": \"d%d\", \"site\": \"s%d\", \"soc\": %.4f, \"capacity_kwh\": %.1f, \"max_kw\": %.1f}", d,
           d % SITES, soc, capacity_kwh[d % 3], max_kw[d % 3]);
  push(engine, "fleet", json);
}

/* Telemetry row i: devices report in turn about every 10 s, a few seconds out of order, and
 * every seventh row repeats the previous device within the session gap; the load follows a
 * daily curve per site with noise, now and then negative (a battery discharging). Every 30
 * rows each site gets a price, and every 150 rows one device's state of charge changes. The
 * engine's processing-time clock follows the rows (vpq_engine_tick), not the wall clock, so
 * that the states do not depend on when they are made. */
static void push_row(vpq_engine *engine, int i, uint64_t *random) {
  char json[256];
  int device = i % 7 == 0 && i > 0 ? (i - 1) % DEVICES : i % DEVICES;
  int64_t ts = start_ms + (int64_t)i * 10000 + (int64_t)(next_random(random) % 6000) - 3000;
  if (ts < start_ms) ts = start_ms;
  vpq_engine_tick(engine, start_ms + (int64_t)i * 10000);
  double hour = (double)((ts - start_ms) % 86400000) / 3600000.0;
  double kw = 4.0 + 2.0 * (device % SITES) + 3.0 * (hour > 7 && hour < 20) + 2.0 * next_uniform(random);
  if (next_uniform(random) < 0.05) kw = -kw;
  snprintf(json, sizeof json, "{\"device_id\": \"d%d\", \"site\": \"s%d\", \"ts\": %lld, \"kw\": %.3f}", device,
           device % SITES, (long long)ts, kw);
  push(engine, "telemetry", json);
  if (i % 30 == 0) {
    for (int s = 0; s < SITES; s++) {
      snprintf(json, sizeof json, "{\"site\": \"s%d\", \"ts\": %lld, \"price\": %.2f}", s, (long long)ts,
               40.0 + 30.0 * next_uniform(random));
      push(engine, "prices", json);
    }
  }
  if (i % 150 == 149) push_fleet(engine, (i / 150) % DEVICES, 0.1 + 0.8 * next_uniform(random));
}

/* Counts the rows a relation emits (ctx: its counter). */
static void count_row(void *ctx, const char *relation, const char *json, int diff) {
  (void)relation;
  (void)json;
  (void)diff;
  ++*(long long *)ctx;
}

/* A new engine running the fuzzer's query. */
static vpq_engine *engine_open(void) {
  vpq_engine *engine = vpq_engine_new();
  if (vpq_engine_load(engine, "fuzz.vpq", vpq_fuzz_checkpoint_query, stderr) != 0) exit(1);
  return engine;
}

/* The plan fingerprint a checkpoint of this engine carries: a hash of its explain text, as the
 * engine computes it when it writes checkpoints (vpq_engine.c). */
static uint64_t plan_fingerprint(const vpq_engine *engine) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) exit(1);
  vpq_engine_explain(engine, f, false);
  fclose(f);
  uint64_t hash = vpq_ckpt_hash(text, len, VPQ_CKPT_VERSION);
  free(text);
  return hash;
}

/* Writes `tag` and then `len` bytes of `data` to dir/name. */
static void write_seed(const char *dir, const char *name, uint8_t tag, const void *data, size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fputc(tag, f) == EOF || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
    fprintf(stderr, "make_checkpoint_seeds: cannot write %s\n", path);
    exit(1);
  }
}

/* Writes `tag`, then `data` with byte `at` inverted, to dir/<name>-flip-<at>. */
static void write_flipped(const char *dir, const char *name, uint8_t tag, const char *data, size_t len, size_t at) {
  char *copy = malloc(len), flipped[128];
  if (!copy) exit(1);
  memcpy(copy, data, len);
  copy[at] = (char)~copy[at];
  snprintf(flipped, sizeof flipped, "%s-flip-%zu", name, at);
  write_seed(dir, flipped, tag, copy, len);
  free(copy);
}

/* The damaged copies of a checkpoint file: each header field (magic, version, reserved, epoch,
 * fingerprint, state bytes, compressed bytes, checksum) and the frame's first byte inverted,
 * and the file cut short after the magic, inside the header, right after it, inside the frame,
 * halfway and by one byte. */
static void write_damaged_file(const char *dir, const char *name, const char *file, size_t len) {
  static const size_t fields[] = {0, 7, 8, 12, 16, 24, 32, 40, 48, 55, 56};
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
    if (fields[i] < len) write_flipped(dir, name, 0x01, file, len, fields[i]);
  const size_t cuts[] = {8, 29, 56, 79, len / 2, len - 1};
  char cut[128];
  for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
    if (cuts[i] >= len) continue;
    snprintf(cut, sizeof cut, "%s-cut-%zu", name, cuts[i]);
    write_seed(dir, cut, 0x01, file, cuts[i]);
  }
}

/* Reads the whole file at `path` into a malloc'ed buffer; exits when it cannot. */
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f || fseek(f, 0, SEEK_END) != 0) exit(1);
  long size = ftell(f);
  char *data = malloc((size_t)size + 1);
  if (size < 0 || !data || fseek(f, 0, SEEK_SET) != 0 || fread(data, 1, (size_t)size, f) != (size_t)size) exit(1);
  fclose(f);
  *len = (size_t)size;
  return data;
}

/* Takes the engine's state (`label`: after which rows), checks that it restores, and writes it
 * as state-<label> and, through a checkpoint file of epoch `epoch` in scratch folder `tmp`, as
 * file-<label>. */
static void snapshot(vpq_engine *engine, const char *dir, const char *tmp, const char *label, uint64_t epoch) {
  char *state, name[64], err[256], path[4096];
  size_t len;
  if (vpq_engine_save_state(engine, &state, &len) != 0) exit(1);
  vpq_engine *fresh = engine_open();
  if (vpq_engine_load_state(fresh, state, len, err, sizeof err) != 0) {
    fprintf(stderr, "make_checkpoint_seeds: state %s does not restore: %s\n", label, err);
    exit(1);
  }
  vpq_engine_free(fresh);
  snprintf(name, sizeof name, "state-%s", label);
  write_seed(dir, name, 0x00, state, len);
  for (size_t i = 1; i < DAMAGE_POINTS; i++) write_flipped(dir, name, 0x00, state, len, len * i / DAMAGE_POINTS);
  for (size_t at = 0; at < HEADER_FLIPS && at < len && strcmp(label, "20") == 0; at++)
    write_flipped(dir, name, 0x00, state, len, at);

  vpq_buf buf = {.data = state, .len = len, .cap = len};
  if (vpq_ckpt_write(tmp, epoch, plan_fingerprint(engine), &buf, err, sizeof err) != 0) {
    fprintf(stderr, "make_checkpoint_seeds: %s\n", err);
    exit(1);
  }
  snprintf(path, sizeof path, "%s/checkpoint-%016llx.vpqc", tmp, (unsigned long long)epoch);
  size_t file_len;
  char *file = read_file(path, &file_len);
  snprintf(name, sizeof name, "file-%s", label);
  write_seed(dir, name, 0x01, file, file_len);
  if (strcmp(label, "20") == 0) write_damaged_file(dir, name, file, file_len);
  free(file);
  free(state);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: make_checkpoint_seeds DIR (writes the checkpoint fuzzer's seeds into DIR)\n");
    return 2;
  }
  const char *dir = argv[1];
  char tmp[] = "/tmp/vpq-seeds-XXXXXX";
  if ((mkdir(dir, 0777) != 0 && access(dir, W_OK) != 0) || !mkdtemp(tmp)) {
    perror("make_checkpoint_seeds");
    return 1;
  }
  vpq_engine *engine = engine_open();
  const char *relations[32];
  bool is_table[32];
  long long emitted[32] = {0};
  int nrelations = vpq_engine_relations(engine, relations, is_table, 32);
  for (int r = 0; r < nrelations; r++) vpq_engine_subscribe(engine, relations[r], count_row, &emitted[r]);
  uint64_t random = 42, epoch = 0;
  char label[32];
  vpq_engine_tick(engine, start_ms);
  for (int d = 0; d < DEVICES; d++) push_fleet(engine, d, 0.2 + 0.08 * d);
  for (int i = 0, next = 0; i <= TOTAL_ROWS; i++) {
    if (i == snapshot_rows[next]) {
      snprintf(label, sizeof label, "%d", i);
      snapshot(engine, dir, tmp, label, ++epoch);
      next++;
    }
    if (i < TOTAL_ROWS) push_row(engine, i, &random);
  }
  vpq_engine_finish(engine);
  snapshot(engine, dir, tmp, "finished", ++epoch);
  int silent = 0;
  for (int r = 0; r < nrelations; r++) {
    printf("%s%s %lld", r ? ", " : "rows emitted: ", relations[r], emitted[r]);
    silent += emitted[r] == 0;
  }
  printf("\n");
  vpq_engine_free(engine);
  vpq_ckpt_remove_all(tmp);
  if (rmdir(tmp) != 0) perror(tmp);
  if (silent) fprintf(stderr, "make_checkpoint_seeds: %d streams or tables emitted no rows\n", silent);
  return silent ? 1 : 0;
}
