/* fuzz_json.c — libFuzzer target for the JSON decoder: arbitrary bytes decoded as one record of
 * the telemetry schema must decode or fail with one of the fixed error categories, never crash;
 * a decoded row, encoded again, must decode to the same row (and so must its CSV line). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vpq_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static vpq_column cols[] = {
    {"device_id", VPQ_TYPE_STRING, true, false, false}, {"site", VPQ_TYPE_STRING, false, false, false},
    {"region", VPQ_TYPE_STRING, false, false, false},   {"ts", VPQ_TYPE_TIMESTAMP, false, false, false},
    {"soc", VPQ_TYPE_DOUBLE, false, false, false},      {"power_kw", VPQ_TYPE_DOUBLE, false, false, false},
    {"online", VPQ_TYPE_BOOLEAN, false, false, false},  {"cycles", VPQ_TYPE_BIGINT, false, false, false},
};
enum { NCOLS = sizeof cols / sizeof cols[0] };
static const vpq_schema schema = {cols, NCOLS};

static const char *const categories[] = {"invalid JSON: ",    "invalid UTF-8: ",     "not an object: ",
                                         "type mismatch: ",   "invalid timestamp: ", "wrong field count: ",
                                         "record too large: ", "too deeply nested: "};

static void check_category(const char *err) {
  for (size_t i = 0; i < sizeof categories / sizeof categories[0]; i++)
    if (strncmp(err, categories[i], strlen(categories[i])) == 0) return;
  abort();
}

/* Row 1 must equal row 0, bit for bit where not NULL. */
static void check_same(const vpq_batch *batch) {
  for (int c = 0; c < NCOLS; c++) {
    if (batch->cols[c].null[1] != batch->cols[c].null[0]) abort();
    if (!batch->cols[c].null[0] && memcmp(&batch->cols[c].data[1], &batch->cols[c].data[0], 8) != 0) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static vpq_intern *intern;
  static vpq_decoder *json, *csv;
  static vpq_arena arena;
  static vpq_batch *batch;
  if (intern && vpq_intern_count(intern) > 100000) {
    /* Keep memory bounded over millions of inputs: start again with an empty pool. */
    vpq_decoder_free(json);
    vpq_decoder_free(csv);
    vpq_intern_free(intern);
    vpq_arena_free(&arena);
    intern = NULL;
  }
  if (!intern) {
    intern = vpq_intern_new();
    json = vpq_decoder_new(VPQ_FORMAT_JSON, &schema, intern);
    csv = vpq_decoder_new(VPQ_FORMAT_CSV, &schema, intern);
    vpq_type types[NCOLS];
    for (int c = 0; c < NCOLS; c++) types[c] = cols[c].type;
    vpq_arena_init(&arena);
    batch = vpq_batch_new(&arena, NCOLS, types, 2);
  }
  char err[256];
  char *text = malloc(size ? size : 1); /* an exact-size copy, so reads past the end are caught */
  if (!text) return 0;
  memcpy(text, data, size);
  if (!vpq_decoder_row(json, text, size, batch, 0, err, sizeof err)) {
    check_category(err);
  } else {
    vpq_buf buf = {0};
    vpq_json_encode_row(&buf, &schema, batch, 0, intern);
    if (!vpq_decoder_row(json, buf.data, buf.len, batch, 1, err, sizeof err)) abort();
    check_same(batch);
    buf.len = 0;
    vpq_csv_encode_row(&buf, &schema, batch, 0, intern);
    if (!vpq_decoder_row(csv, buf.data, buf.len, batch, 1, err, sizeof err)) abort();
    check_same(batch);
    vpq_buf_free(&buf);
  }
  if (!vpq_decoder_row(csv, text, size, batch, 0, err, sizeof err)) check_category(err);
  int64_t ms;
  vpq_timestamp_parse(text, size, &ms);
  free(text);
  return 0;
}
