/* fuzz_checkpoint.c — libFuzzer target for the checkpoint loader: arbitrary bytes, read as a
 * checkpoint file (first byte odd: header, checksum, zstd frame) or as engine state (even),
 * are restored into an engine running a query with every kind of stateful operator. Loading
 * must succeed or fail with a reason, never crash, leak or overrun. The seeds under
 * tests/fuzz/corpus/checkpoint are real states of this query (vpq_engine_save_state after 20,
 * 450 and 900 synthetic telemetry rows with fleet and price rows): raw (state-*) and as
 * checkpoint files (file-*); regenerate them when the state format changes. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "vpq.h"
#include "vpq_ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keep in step with the generator of the seed corpus (the same text gives the same plan). */
static const char query[] =
    "CREATE TABLE fleet (device_id STRING PRIMARY KEY, site STRING, soc DOUBLE, capacity_kwh DOUBLE, max_kw DOUBLE);\n"
    "CREATE STREAM telemetry (device_id STRING KEY, site STRING, ts TIMESTAMP, kw DOUBLE) WITH (timestamp = 'ts');\n"
    "CREATE STREAM prices (site STRING, ts TIMESTAMP, price DOUBLE) WITH (timestamp = 'ts');\n"
    "CREATE STREAM per_min AS SELECT device_id, WINDOW_START AS start, count(*) AS n, avg(kw) AS kw, min(site) AS s,\n"
    "  percentile(kw, 0.9) AS p90, count_distinct(site) AS sites, first(kw) AS f, last(kw) AS l,\n"
    "  integrate(kw) AS kwh, time_weighted_avg(kw) AS twa, stddev(kw) AS sd\n"
    "  FROM telemetry WINDOW HOPPING (SIZE 2 MINUTES, ADVANCE BY 1 MINUTE) GROUP BY device_id EMIT FINAL;\n"
    "CREATE STREAM sessions AS SELECT device_id, count(*) AS n FROM telemetry\n"
    "  WINDOW SESSION (30 SECONDS) GROUP BY device_id;\n"
    "CREATE TABLE sites AS SELECT site, sum(kw) AS kw FROM telemetry GROUP BY ROLLUP (site);\n"
    "CREATE STREAM joined AS SELECT t.device_id, f.soc, p.price FROM telemetry t\n"
    "  LEFT JOIN fleet f ON t.device_id = f.device_id JOIN prices p WITHIN 1 MINUTE ON t.site = p.site;\n"
    "CREATE STREAM load AS SELECT WINDOW_START AS ts, sum(kw) AS kw FROM telemetry\n"
    "  WINDOW TUMBLING (SIZE 15 MINUTES) GROUP BY site;\n"
    "CREATE STREAM fc AS FORECAST kw FROM load USING holt_winters (season = 1 HOUR)\n"
    "  HORIZON 1 HOUR EVERY 15 MINUTES STEP 15 MINUTES;\n"
    "CREATE STREAM plan AS SCHEDULE fleet FOR fc MINIMIZE PEAK HORIZON 1 HOUR STEP 15 MINUTES EMIT PLAN;\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  vpq_engine *engine = vpq_engine_new();
  FILE *quiet = fopen("/dev/null", "w");
  if (vpq_engine_load(engine, "fuzz.vpq", query, quiet) != 0) abort();
  char err[256];
  if (data[0] & 1) {
    vpq_ckpt_file file;
    if (vpq_ckpt_decode(data + 1, size - 1, &file, err, sizeof err) == 0) {
      vpq_engine_load_state(engine, file.state, file.len, err, sizeof err);
      vpq_ckpt_file_free(&file);
    }
  } else {
    vpq_engine_load_state(engine, (const char *)data + 1, size - 1, err, sizeof err);
  }
  vpq_engine_free(engine);
  fclose(quiet);
  return 0;
}
