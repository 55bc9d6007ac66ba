/* fuzz_csv.c — libFuzzer target for the CSV decoder as the file source drives it: the input's
 * first line is the header, the rest are records cut at line breaks outside quotes. A header
 * must be accepted or refused with one of its fixed messages; every record must decode or fail
 * with one of the fixed error categories, never crash or leak; a record over `max_bytes` must
 * be refused before it is looked at; a decoded row, encoded again as CSV (by position) and as
 * JSON, must decode to the same row. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpq_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The telemetry schema of fuzz_json.c, and a column no query reads (decoders skip it). */
static vpq_column cols[] = {
    {"device_id", VPQ_TYPE_STRING, true, false, false}, {"site", VPQ_TYPE_STRING, false, false, false},
    {"region", VPQ_TYPE_STRING, false, false, false},   {"ts", VPQ_TYPE_TIMESTAMP, false, false, false},
    {"soc", VPQ_TYPE_DOUBLE, false, false, false},      {"power_kw", VPQ_TYPE_DOUBLE, false, false, false},
    {"online", VPQ_TYPE_BOOLEAN, false, false, false},  {"cycles", VPQ_TYPE_BIGINT, false, false, false},
    {"firmware", VPQ_TYPE_STRING, false, true, false},
};
enum { NCOLS = sizeof cols / sizeof cols[0] };
static const vpq_schema schema = {cols, NCOLS};

/* The error categories a CSV record can have (the JSON-only ones cannot occur). */
static const char *const categories[] = {"invalid UTF-8: ", "type mismatch: ", "invalid timestamp: ",
                                         "wrong field count: ", "record too large: "};

/* The reasons a header is refused (the file source prefixes them with "bad CSV header in ..."). */
static const char *const header_errors[] = {"the header line is empty", "column `", "the header `"};

static void check_prefix(const char *err, const char *const *prefixes, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strncmp(err, prefixes[i], strlen(prefixes[i])) == 0) return;
  abort();
}

/* Row 1 must equal row 0, bit for bit where not NULL. */
static void check_same(const vpq_batch *batch) {
  for (int c = 0; c < NCOLS; c++) {
    if (batch->cols[c].null[1] != batch->cols[c].null[0]) abort();
    if (!batch->cols[c].null[0] && memcmp(&batch->cols[c].data[1], &batch->cols[c].data[0], 8) != 0) abort();
  }
}

/* The end of the record starting at p: its '\n' outside a quoted field, or `end` (as the file
 * source cuts records: a field starting with '"' may hold line breaks; "" inside is a quote). */
static const char *record_end(const char *p, const char *end) {
  bool quoted = false, field_start = true;
  for (; p < end; p++) {
    if (quoted) {
      if (*p == '"' && p + 1 < end && p[1] == '"') p++;
      else if (*p == '"') quoted = false;
    } else if (*p == '\n') {
      return p;
    } else {
      quoted = *p == '"' && field_start;
      field_start = *p == ',';
    }
  }
  return end;
}

/* Decodes one record with `dec` (header-mapped) and checks the result as the header says. */
static void check_record(vpq_decoder *dec, vpq_decoder *plain, vpq_decoder *json, const char *text, size_t len,
                         vpq_batch *batch, const vpq_intern *intern) {
  char err[256], want[96];
  char *copy = malloc(len ? len : 1); /* an exact-size copy, so reads past the end are caught */
  if (!copy) abort();
  memcpy(copy, text, len);
  if (len > 1) { /* a limit of 0 means none */
    vpq_decoder_set_max_bytes(dec, len - 1);
    if (vpq_decoder_row(dec, copy, len, batch, 0, err, sizeof err)) abort();
    snprintf(want, sizeof want, "record too large: %zu bytes, the limit is %zu", len, len - 1);
    if (strcmp(err, want) != 0) abort();
    vpq_decoder_set_max_bytes(dec, 0);
  }
  if (!vpq_decoder_row(dec, copy, len, batch, 0, err, sizeof err)) {
    check_prefix(err, categories, sizeof categories / sizeof categories[0]);
  } else {
    vpq_buf buf = {0};
    vpq_csv_encode_row(&buf, &schema, batch, 0, intern);
    if (!vpq_decoder_row(plain, buf.data, buf.len, batch, 1, err, sizeof err)) abort();
    check_same(batch);
    buf.len = 0;
    vpq_json_encode_row(&buf, &schema, batch, 0, intern);
    if (!vpq_decoder_row(json, buf.data, buf.len, batch, 1, err, sizeof err)) abort();
    check_same(batch);
    vpq_buf_free(&buf);
  }
  free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static vpq_intern *intern;
  static vpq_decoder *csv, *plain, *json;
  static vpq_arena arena;
  static vpq_batch *batch;
  if (intern && vpq_intern_count(intern) > 100000) {
    /* Keep memory bounded over millions of inputs: start again with an empty pool. */
    vpq_decoder_free(csv);
    vpq_decoder_free(plain);
    vpq_decoder_free(json);
    vpq_intern_free(intern);
    vpq_arena_free(&arena);
    intern = NULL;
  }
  if (!intern) {
    intern = vpq_intern_new();
    csv = vpq_decoder_new(VPQ_FORMAT_CSV, &schema, intern);
    plain = vpq_decoder_new(VPQ_FORMAT_CSV, &schema, intern);
    json = vpq_decoder_new(VPQ_FORMAT_JSON, &schema, intern);
    vpq_type types[NCOLS];
    for (int c = 0; c < NCOLS; c++) types[c] = cols[c].type;
    vpq_arena_init(&arena);
    batch = vpq_batch_new(&arena, NCOLS, types, 2);
  }
  const char *p = (const char *)data, *end = p + size;
  const char *stop = record_end(p, end);
  size_t len = (size_t)(stop - p);
  char *header = malloc(len ? len : 1);
  if (!header) abort();
  memcpy(header, p, len);
  char err[256];
  bool ok = vpq_decoder_csv_header(csv, header, len, err, sizeof err);
  free(header);
  if (!ok) {
    check_prefix(err, header_errors, sizeof header_errors / sizeof header_errors[0]);
    return 0;
  }
  for (p = stop; p < end;) {
    p++; /* past the '\n' */
    stop = record_end(p, end);
    check_record(csv, plain, json, p, (size_t)(stop - p), batch, intern);
    p = stop;
  }
  return 0;
}
