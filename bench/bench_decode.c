/* bench_decode.c — decode speed of the JSON-lines codec on one core: generates N telemetry lines
 * (~160 bytes, the DESIGN §2 schema plus an unknown "fw" field, as bench/gen_telemetry.py writes
 * them) in memory, decodes them into 2048-row batches as the file source does (each line found
 * while it is decoded, strings interned per batch) and prints lines/s and MB/s per CPU second
 * (best of 3): once reading every column, once only the columns bench/tumbling.vpq reads (the
 * others are skipped).
 *
 *   cc -O2 -std=c17 -D_GNU_SOURCE -Iengine -Igrammar -Iconnectors bench/bench_decode.c \
 *      connectors/vpq_codec.c engine/vpq_{arena,batch,buf,intern,types}.c -lm -o bench_decode
 *   ./bench_decode [lines]            (default 2,000,000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vpq_codec.h"

static vpq_column cols[] = {
    {"device_id", VPQ_TYPE_STRING, true, false, false},  {"site", VPQ_TYPE_STRING, false, false, false},
    {"region", VPQ_TYPE_STRING, false, false, false},    {"ts", VPQ_TYPE_TIMESTAMP, false, false, false},
    {"soc", VPQ_TYPE_DOUBLE, false, false, false},       {"power_kw", VPQ_TYPE_DOUBLE, false, false, false},
    {"capacity_kwh", VPQ_TYPE_DOUBLE, false, false, false}, {"max_kw", VPQ_TYPE_DOUBLE, false, false, false},
};
enum { NCOLS = sizeof cols / sizeof cols[0], DEVICES = 10000 };

/* CPU seconds of this process: the machine may be shared, wall time would count the others. */
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Decodes the lines into 2048-row batches three times and prints the best rate. */
static void decode_all(const char *text, const size_t *starts, long lines, const char *what) {
  vpq_schema schema = {cols, NCOLS};
  vpq_intern *intern = vpq_intern_new();
  vpq_decoder *dec = vpq_decoder_new(VPQ_FORMAT_JSON, &schema, intern);
  vpq_decoder_defer_strings(dec, true); /* as the file source does */
  vpq_arena arena;
  vpq_arena_init(&arena);
  vpq_type types[NCOLS];
  for (int c = 0; c < NCOLS; c++) types[c] = cols[c].type;
  vpq_batch *batch = vpq_batch_new(&arena, NCOLS, types, VPQ_BATCH_ROWS);
  char err[256];
  long bad = 0;
  double sum = 0, secs = 0;
  for (int run = 0; run < 3; run++) { /* the best of 3 */
    bad = 0;
    sum = 0;
    double t0 = now();
    for (long i = 0; i < lines; i++) {
      int row = (int)(i % VPQ_BATCH_ROWS);
      size_t len = starts[i + 1] - starts[i] - 1;
      if (vpq_decoder_json_line(dec, text + starts[i], starts[lines] - starts[i], batch, row) == SIZE_MAX &&
          !vpq_decoder_row(dec, text + starts[i], len, batch, row, err, sizeof err))
        bad++;
      if (row < VPQ_BATCH_ROWS - 1) continue;
      vpq_decoder_flush(dec);
      sum += batch->cols[4].data[0].d;
    }
    vpq_decoder_flush(dec);
    double t = now() - t0;
    if (run == 0 || t < secs) secs = t;
  }
  printf("%s: decoded %ld lines (%.1f MB, %ld bad, %zu strings) in %.3f s: %.2f M lines/s, %.0f MB/s (check %.3f)\n",
         what, lines, (double)starts[lines] / 1e6, bad, vpq_intern_count(intern), secs, (double)lines / secs / 1e6,
         (double)starts[lines] / secs / 1e6, sum);
  vpq_decoder_free(dec);
  vpq_intern_free(intern);
  vpq_arena_free(&arena);
}

int main(int argc, char **argv) {
  long lines = argc > 1 ? atol(argv[1]) : 2000000;
  vpq_buf text = {0};
  size_t *starts = malloc(sizeof *starts * (size_t)(lines + 1));
  if (!starts) return 1;
  srand(7);
  for (long i = 0; i < lines; i++) {
    long d = i % DEVICES;
    starts[i] = text.len;
    vpq_buf_printf(&text,
                   "{\"device_id\":\"dev-%06ld\",\"site\":\"site-%04ld\",\"region\":\"region-%ld\",\"ts\":%lld,"
                   "\"soc\":%.4f,\"power_kw\":%.3f,\"capacity_kwh\":13.5,\"max_kw\":5.0,\"fw\":\"2.4.1\"}\n",
                   d, d % (DEVICES / 8), d % 7, 1700000000000LL + i / DEVICES * 10000 + rand() % 500,
                   rand() / (double)RAND_MAX, rand() / (double)RAND_MAX * 10 - 5);
  }
  starts[lines] = text.len;

  /* first every column, then only those bench/tumbling.vpq reads (the others are skipped) */
  for (int pass = 0; pass < 2; pass++) {
    for (int c = 0; c < NCOLS; c++)
      cols[c].unread = pass == 1 && strcmp(cols[c].name, "device_id") != 0 && strcmp(cols[c].name, "ts") != 0 &&
                       strcmp(cols[c].name, "soc") != 0 && strcmp(cols[c].name, "power_kw") != 0;
    decode_all(text.data, starts, lines, pass == 0 ? "every column" : "tumbling.vpq's columns");
  }
  vpq_buf_free(&text);
  free(starts);
  return 0;
}
