/* fuzz_checkpoint.c — libFuzzer target for the checkpoint loader: arbitrary bytes, read as a
 * checkpoint file (first byte odd: header, checksum, zstd frame) or as engine state (even),
 * are restored into an engine running a query with every kind of stateful operator. Loading
 * must succeed or fail with a reason, never crash, leak or overrun. The query is in
 * checkpoint_query.h; the seeds under tests/fuzz/corpus/checkpoint are real states of it, raw
 * and as checkpoint files, and damaged copies of them, written by make_checkpoint_seeds.c and
 * kept where they add coverage (see there how to regenerate them when the state format or the
 * query changes). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "checkpoint_query.h"
#include "vpq.h"
#include "vpq_ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  vpq_engine *engine = vpq_engine_new();
  FILE *quiet = fopen("/dev/null", "w");
  if (vpq_engine_load(engine, "fuzz.vpq", vpq_fuzz_checkpoint_query, quiet) != 0) abort();
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
