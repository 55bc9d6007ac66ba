/* vpq_codec_encode.c — rows to JSON objects and CSV lines (vpq_codec.h).
 *
 * Each value is written straight into the output buffer after one reserve: doubles as their
 * shortest round-trip text and integers by vpq_dtoa, strings in runs of bytes that need no
 * escape (found 8 bytes at a time), keys from text encoded once per schema. Short copies (keys,
 * ids) are made with a few word moves rather than calls to memcpy.
 */
#include "vpq_codec.h"

#include "vpq_codec_int.h"
#include "vpq_dtoa.h"

#include <stdlib.h>
#include <string.h>

/* Appends an integer in decimal. */
static void put_int(vpq_buf *out, int64_t v) {
  vpq_buf_reserve(out, VPQ_DTOA_SIZE);
  out->len += vpq_dtoa_int(out->data + out->len, v);
}

/* Appends a double's shortest round-trip text, or `null_text` when it is not finite. */
static void put_double(vpq_buf *out, double v, const char *null_text) {
  vpq_buf_reserve(out, VPQ_DTOA_SIZE);
  size_t n = vpq_dtoa_double(out->data + out->len, v);
  if (n) out->len += n;
  else vpq_buf_puts(out, null_text);
}

/* Copies n bytes with at most four loads and stores when n <= 16 (keys, ids, short strings), so
 * that the common copies of encoding make no call. */
static inline void copy_short(char *dst, const char *src, size_t n) {
  if (n >= 8 && n <= 16) {
    uint64_t x, y;
    memcpy(&x, src, 8);
    memcpy(&y, src + n - 8, 8);
    memcpy(dst, &x, 8);
    memcpy(dst + n - 8, &y, 8);
  } else if (n >= 4 && n < 8) {
    uint32_t x, y;
    memcpy(&x, src, 4);
    memcpy(&y, src + n - 4, 4);
    memcpy(dst, &x, 4);
    memcpy(dst + n - 4, &y, 4);
  } else if (n < 4) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
  } else {
    memcpy(dst, src, n);
  }
}

/* The length of the leading run of `text` that a JSON string holds as it is (printable ASCII
 * other than a quote or a backslash), 8 bytes at a time. */
static size_t plain_prefix(const char *text, size_t len) {
  size_t n = 0;
  for (; len - n >= 8; n += 8) {
    uint64_t w;
    memcpy(&w, text + n, 8);
    uint64_t mask = swar_special(w);
    if (mask) return n + (size_t)__builtin_ctzll(mask) / 8;
  }
  while (n < len && (unsigned char)text[n] >= 0x20 && (unsigned char)text[n] < 0x80 && text[n] != '"' &&
         text[n] != '\\')
    n++;
  return n;
}

void vpq_json_encode_string(vpq_buf *out, const char *text, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t plain = plain_prefix(text, len);
  vpq_buf_reserve(out, plain + 2);
  out->data[out->len] = '"';
  copy_short(out->data + out->len + 1, text, plain);
  out->len += plain + 1;
  if (plain == len) {
    out->data[out->len++] = '"';
    out->data[out->len] = '\0';
    return;
  }
  const unsigned char *p = (const unsigned char *)text + plain, *end = (const unsigned char *)text + len;
  while (p < end) {
    const unsigned char *run = p;
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
    if (p > run) vpq_buf_append(out, (const char *)run, (size_t)(p - run));
    if (p >= end) break;
    unsigned char c = *p;
    int n = c >= 0x80 ? utf8_length(p, end) : 0;
    if (n > 0) {
      vpq_buf_append(out, (const char *)p, (size_t)n);
      p += n;
      continue;
    }
    char esc[8] = {'\\', 0};
    size_t elen = 2;
    switch (c) {
    case '"': esc[1] = '"'; break;
    case '\\': esc[1] = '\\'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    default:
      memcpy(esc, "\\u00", 4);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      elen = 6;
    }
    vpq_buf_append(out, esc, elen);
    p++;
  }
  vpq_buf_append(out, "\"", 1);
}

void vpq_json_encode_double(vpq_buf *out, double value) { put_double(out, value, "null"); }

/* Appends a CSV field: quoted (quotes doubled) when it holds a comma, a quote or a line break,
 * or is empty (an unquoted empty field reads back as NULL). */
static void csv_string(vpq_buf *out, const char *text, size_t len) {
  bool quote = len == 0;
  for (size_t i = 0; i < len && !quote; i++)
    quote = text[i] == ',' || text[i] == '"' || text[i] == '\n' || text[i] == '\r';
  if (!quote) {
    vpq_buf_append(out, text, len);
    return;
  }
  vpq_buf_append(out, "\"", 1);
  for (size_t i = 0; i < len; i++) {
    if (text[i] == '"') vpq_buf_append(out, "\"", 1);
    vpq_buf_append(out, text + i, 1);
  }
  vpq_buf_append(out, "\"", 1);
}

/* Appends one value of a column as JSON, or as a CSV field when `csv`. */
static void encode_value(vpq_buf *out, const vpq_vec *vec, vpq_type type, int row, const vpq_intern *intern,
                         bool csv) {
  const char *null_text = csv ? "" : "null";
  if (vec->null[row]) {
    vpq_buf_puts(out, null_text);
    return;
  }
  vpq_datum v = vec->data[row];
  size_t len;
  const char *text;
  switch (type) {
  case VPQ_TYPE_BOOLEAN:
    vpq_buf_puts(out, v.i ? "true" : "false");
    break;
  case VPQ_TYPE_DOUBLE:
    put_double(out, v.d, null_text);
    break;
  case VPQ_TYPE_STRING:
    text = vpq_intern_text(intern, v.i, &len);
    if (csv) csv_string(out, text, len);
    else vpq_json_encode_string(out, text, len);
    break;
  default: /* BIGINT, TIMESTAMP (epoch ms), INTERVAL (ms) */
    put_int(out, v.i);
    break;
  }
}

void vpq_json_encode_row(vpq_buf *out, const vpq_schema *schema, const vpq_batch *batch, int row,
                         const vpq_intern *intern) {
  vpq_buf_append(out, "{", 1);
  for (int c = 0; c < schema->ncols; c++) {
    if (c) vpq_buf_append(out, ",", 1);
    vpq_json_encode_string(out, schema->cols[c].name, strlen(schema->cols[c].name));
    vpq_buf_append(out, ":", 1);
    encode_value(out, &batch->cols[c], schema->cols[c].type, row, intern, false);
  }
  vpq_buf_append(out, "}", 1);
}

void vpq_json_keys_init(vpq_json_keys *keys, const vpq_schema *schema) {
  memset(keys, 0, sizeof *keys);
  keys->n = schema->ncols;
  keys->ends = malloc(sizeof *keys->ends * (size_t)(schema->ncols + 1));
  if (!keys->ends) abort();
  for (int c = 0; c < schema->ncols; c++) {
    if (c) vpq_buf_append(&keys->text, ",", 1);
    vpq_json_encode_string(&keys->text, schema->cols[c].name, strlen(schema->cols[c].name));
    vpq_buf_append(&keys->text, ":", 1);
    keys->ends[c] = keys->text.len;
  }
}

void vpq_json_keys_free(vpq_json_keys *keys) {
  vpq_buf_free(&keys->text);
  free(keys->ends);
  keys->ends = NULL;
}

void vpq_json_encode_row_keyed(vpq_buf *out, const vpq_json_keys *keys, const vpq_schema *schema,
                               const vpq_batch *batch, int row, const vpq_intern *intern) {
  vpq_buf_reserve(out, keys->text.len + 32 * (size_t)keys->n + 2);
  out->data[out->len++] = '{';
  size_t from = 0;
  for (int c = 0; c < keys->n; c++) {
    size_t n = keys->ends[c] - from;
    vpq_buf_reserve(out, n);
    copy_short(out->data + out->len, keys->text.data + from, n);
    out->len += n;
    from = keys->ends[c];
    encode_value(out, &batch->cols[c], schema->cols[c].type, row, intern, false);
  }
  vpq_buf_append(out, "}", 1);
}

/* A deletion row (vpq_json_encode_deletion), as JSON or, when `csv`, as CSV (keys unused). */
static void encode_deletion(vpq_buf *out, const vpq_json_keys *keys, const vpq_schema *schema, const vpq_batch *batch,
                            int row, const vpq_intern *intern, bool csv) {
  if (!csv) vpq_buf_append(out, "{", 1);
  size_t from = 0;
  for (int c = 0; c < schema->ncols; c++) {
    if (csv && c) vpq_buf_append(out, ",", 1);
    if (!csv) {
      vpq_buf_append(out, keys->text.data + from, keys->ends[c] - from);
      from = keys->ends[c];
    }
    if (schema->cols[c].is_key || schema->cols[c].is_window) encode_value(out, &batch->cols[c], schema->cols[c].type, row, intern, csv);
    else if (!csv) vpq_buf_puts(out, "null");
  }
  if (!csv) vpq_buf_append(out, "}", 1);
}

void vpq_json_encode_deletion(vpq_buf *out, const vpq_json_keys *keys, const vpq_schema *schema,
                              const vpq_batch *batch, int row, const vpq_intern *intern) {
  encode_deletion(out, keys, schema, batch, row, intern, false);
}

void vpq_csv_encode_deletion(vpq_buf *out, const vpq_schema *schema, const vpq_batch *batch, int row,
                             const vpq_intern *intern) {
  encode_deletion(out, NULL, schema, batch, row, intern, true);
}

void vpq_csv_encode_header(vpq_buf *out, const vpq_schema *schema) {
  for (int c = 0; c < schema->ncols; c++) {
    if (c) vpq_buf_append(out, ",", 1);
    csv_string(out, schema->cols[c].name, strlen(schema->cols[c].name));
  }
}

void vpq_csv_encode_row(vpq_buf *out, const vpq_schema *schema, const vpq_batch *batch, int row,
                        const vpq_intern *intern) {
  for (int c = 0; c < schema->ncols; c++) {
    if (c) vpq_buf_append(out, ",", 1);
    encode_value(out, &batch->cols[c], schema->cols[c].type, row, intern, true);
  }
}
