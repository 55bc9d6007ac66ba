/* test_codec.c — the JSON-lines and CSV codec: every type, NULL/missing/unknown fields,
 * escapes and UTF-8, the JSON fast path against the general one, deferred interning, each error
 * category with its exact text, ISO-8601 timestamps, CSV quoting and header mapping, encoder
 * output, and round trips. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpq_codec.h"

/* s STRING, n BIGINT, d DOUBLE, b BOOLEAN, t TIMESTAMP */
static vpq_column all_cols[] = {
    {"s", VPQ_TYPE_STRING, false, false, false}, {"n", VPQ_TYPE_BIGINT, false, false, false},    {"d", VPQ_TYPE_DOUBLE, false, false, false},
    {"b", VPQ_TYPE_BOOLEAN, false, false, false}, {"t", VPQ_TYPE_TIMESTAMP, false, false, false},
};
enum { S, N, D, B, T, NCOLS };
static const vpq_schema all_schema = {all_cols, NCOLS};

typedef struct fx {
  vpq_arena arena;
  vpq_intern *intern;
  vpq_batch *batch;
  vpq_decoder *json;
  vpq_decoder *csv;
  char err[256];
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  vpq_arena_init(&f->arena);
  f->intern = vpq_intern_new();
  vpq_type types[NCOLS];
  for (int c = 0; c < NCOLS; c++) types[c] = all_cols[c].type;
  f->batch = vpq_batch_new(&f->arena, NCOLS, types, 4);
  f->json = vpq_decoder_new(VPQ_FORMAT_JSON, &all_schema, f->intern);
  f->csv = vpq_decoder_new(VPQ_FORMAT_CSV, &all_schema, f->intern);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  vpq_decoder_free(f->json);
  vpq_decoder_free(f->csv);
  vpq_intern_free(f->intern);
  vpq_arena_free(&f->arena);
  free(f);
  return 0;
}

static bool json(fx *f, const char *text) {
  f->err[0] = '\0';
  return vpq_decoder_row(f->json, text, strlen(text), f->batch, 0, f->err, sizeof f->err);
}

static bool csv(fx *f, const char *text) {
  f->err[0] = '\0';
  return vpq_decoder_row(f->csv, text, strlen(text), f->batch, 0, f->err, sizeof f->err);
}

static bool is_null(fx *f, int col) { return f->batch->cols[col].null[0]; }
static int64_t int_at(fx *f, int col) { return f->batch->cols[col].data[0].i; }
static double double_at(fx *f, int col) { return f->batch->cols[col].data[0].d; }
static const char *str_at(fx *f, int col) { return vpq_intern_text(f->intern, int_at(f, col), NULL); }

/* ===== JSON: values ===== */

static void json_decodes_every_type(void **state) {
  fx *f = *state;
  assert_true(json(f, "{\"s\":\"hi\",\"n\":-42,\"d\":2.5,\"b\":true,\"t\":1700000000000}"));
  assert_string_equal(str_at(f, S), "hi");
  assert_int_equal(int_at(f, N), -42);
  assert_true(double_at(f, D) == 2.5);
  assert_int_equal(int_at(f, B), 1);
  assert_int_equal(int_at(f, T), 1700000000000);
  for (int c = 0; c < NCOLS; c++) assert_false(is_null(f, c));
  assert_true(json(f, " { \"b\" : false , \"t\" : \"2024-01-01T00:00:00Z\" , \"d\" : 3 } "));
  assert_int_equal(int_at(f, B), 0);
  assert_int_equal(int_at(f, T), 1704067200000);
  assert_true(double_at(f, D) == 3.0);
}

static void json_null_missing_and_unknown_fields(void **state) {
  fx *f = *state;
  assert_true(json(f, "{\"s\":null,\"x\":{\"a\":[1,{\"b\":null},true,\"\\u00e9\"],\"c\":-1.5e3},\"d\":-0.5,"
                      "\"zz\":[[],{}],\"fw\":\"2.4.1\"}"));
  assert_true(is_null(f, S));
  assert_true(is_null(f, N));
  assert_false(is_null(f, D));
  assert_true(double_at(f, D) == -0.5);
  assert_true(is_null(f, B));
  assert_true(is_null(f, T));
  assert_true(json(f, "{}"));
  for (int c = 0; c < NCOLS; c++) assert_true(is_null(f, c));
}

static void json_keys_any_case_any_order_last_wins(void **state) {
  fx *f = *state;
  assert_true(json(f, "{\"T\":5,\"D\":1,\"S\":\"a\",\"s\":\"b\",\"n\":7,\"N\":null}"));
  assert_string_equal(str_at(f, S), "b");
  assert_true(double_at(f, D) == 1.0);
  assert_int_equal(int_at(f, T), 5);
  assert_true(is_null(f, N));
}

static void json_integers_and_numbers_as_text(void **state) {
  fx *f = *state;
  assert_true(json(f, "{\"n\":1.0}"));
  assert_int_equal(int_at(f, N), 1);
  assert_true(json(f, "{\"n\":1e3}"));
  assert_int_equal(int_at(f, N), 1000);
  assert_true(json(f, "{\"n\":-9223372036854775808}"));
  assert_true(int_at(f, N) == INT64_MIN);
  assert_true(json(f, "{\"n\":9223372036854775807}"));
  assert_true(int_at(f, N) == INT64_MAX);
  assert_true(json(f, "{\"s\":12.50}"));
  assert_string_equal(str_at(f, S), "12.50");
  assert_true(json(f, "{\"t\":-1}"));
  assert_int_equal(int_at(f, T), -1);
  assert_true(json(f, "{\"t\":\"1700000000000\"}")); /* epoch milliseconds in a string */
  assert_int_equal(int_at(f, T), 1700000000000);
  assert_true(json(f, " {\"t\":\"-1e3\"}"));
  assert_int_equal(int_at(f, T), -1000);
}

/* vpq_json_field finds a top-level field by its key only: not in a string value equal to the
 * name, nor in a nested object, and with blanks around the colon. */
static void json_field_walks_top_level_fields(void **state) {
  (void)state;
  const char *text = "{ \"device_id\" : \"ts\", \"nested\": {\"ts\": 5, \"a\": [1, {\"ts\": 6}]},"
                     " \"s\": \"a \\\"ts\\\": 7\", \"ts\" :\t1700 }";
  const char *v = vpq_json_field(text, strlen(text), "ts");
  assert_non_null(v);
  assert_int_equal(strncmp(v, "1700", 4), 0);
  v = vpq_json_field(text, strlen(text), "device_id");
  assert_non_null(v);
  assert_int_equal(strncmp(v, "\"ts\"", 4), 0);
  assert_null(vpq_json_field(text, strlen(text), "a"));
  assert_null(vpq_json_field(text, strlen(text), "missing"));
  assert_null(vpq_json_field("[\"ts\", 1]", 9, "ts"));
  assert_null(vpq_json_field("{\"x\": \"a\", ts\": 1}", 18, "ts")); /* a key without its opening quote */
  assert_null(vpq_json_field("{\"x\": \"abc", 10, "ts"));           /* a string not closed */
  assert_null(vpq_json_field("{\"x\": \"ab\\", 10, "ts"));        /* ... ending in a backslash */
  const char *escaped = "{\"x\": \"a\\\\\", \"ts\": 2}";      /* "a\\" then ts */
  v = vpq_json_field(escaped, strlen(escaped), "ts");
  assert_non_null(v);
  assert_int_equal(*v, '2');
}

static void json_escapes_and_surrogate_pairs(void **state) {
  fx *f = *state;
  assert_true(json(f, "{\"s\":\"a\\\"b\\\\c\\/d\\n\\t\\b\\f\\r\\u00e9\\ud83d\\ude00\\u0041\"}"));
  assert_string_equal(str_at(f, S), "a\"b\\c/d\n\t\b\f\r\xc3\xa9\xf0\x9f\x98\x80" "A");
  assert_true(json(f, "{\"\\u0073\":\"escaped key\",\"\\u0044\":2}"));
  assert_string_equal(str_at(f, S), "escaped key");
  assert_true(double_at(f, D) == 2.0);
  assert_true(json(f, "{\"s\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x8b\"}"));
  assert_string_equal(str_at(f, S), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x8b");
  assert_true(json(f, "{\"s\":\"\"}"));
  assert_int_equal(int_at(f, S), 0);
}

static void json_strings_are_interned(void **state) {
  fx *f = *state;
  assert_true(json(f, "{\"s\":\"site-0001\"}"));
  int64_t a = int_at(f, S);
  assert_true(json(f, "{\"s\":\"site-0002\"}"));
  int64_t b = int_at(f, S);
  assert_true(json(f, "{\"s\":\"site-\\u00301\"}"));
  assert_true(json(f, "{\"s\":\"site-0001\"}"));
  assert_int_equal(int_at(f, S), a);
  assert_true(a != b);
  assert_int_equal(vpq_intern_id(f->intern, "site-0002", 9), b);
}

static void json_strings_of_any_length_intern_once(void **state) {
  fx *f = *state;
  /* more strings than the decoder's cache holds, short and long (past 16 and 255 bytes), twice */
  char text[400], value[320];
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < 60000; i++) {
      int len = 1 + i % 300;
      for (int k = 0; k < len; k++) value[k] = (char)('a' + (i / 300 + k * 7) % 26);
      snprintf(value + len - (len > 6 ? 6 : len), 7, "%06d", i);
      snprintf(text, sizeof text, "{\"s\":\"%.*s\"}", len, value);
      assert_true(json(f, text));
      assert_int_equal(int_at(f, S), vpq_intern_id(f->intern, value, (size_t)len));
    }
  }
}

/* ===== JSON: the fast path and the general one ===== */

/* v BIGINT and V DOUBLE: names equal but for case */
static vpq_column case_cols[] = {{"v", VPQ_TYPE_BIGINT, false, false, false}, {"V", VPQ_TYPE_DOUBLE, false, false, false}};
static const vpq_schema case_schema = {case_cols, 2};

static void json_exact_name_wins_over_any_case(void **state) {
  fx *f = *state;
  vpq_decoder *dec = vpq_decoder_new(VPQ_FORMAT_JSON, &case_schema, f->intern);
  vpq_type types[] = {VPQ_TYPE_BIGINT, VPQ_TYPE_DOUBLE};
  vpq_batch *batch = vpq_batch_new(&f->arena, 2, types, 1);
  /* the column expected next, named exactly, is taken even with blanks before the colon */
  static const char *const same[] = {"{\"v\":1,\"V\":2.5}", "{\"v\":1,\"V\" :2.5}", "{\"v\" : 1 , \"V\"\t:\t2.5 }",
                                     "{\"\\u0076\":1,\"V\":2.5}"};
  for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
    if (!vpq_decoder_row(dec, same[i], strlen(same[i]), batch, 0, f->err, sizeof f->err)) fail_msg("%s: %s", same[i], f->err);
    assert_int_equal(batch->cols[0].data[0].i, 1);
    assert_true(batch->cols[1].data[0].d == 2.5);
  }
  /* out of order, a name in another case goes to the first column of that name */
  const char *other = "{\"V\":2.5}";
  assert_false(vpq_decoder_row(dec, other, strlen(other), batch, 0, f->err, sizeof f->err));
  assert_string_equal(f->err, "type mismatch: field `v`: expected BIGINT, got number 2.5");
  vpq_decoder_free(dec);
}

static void json_unread_columns_are_checked_not_decoded(void **state) {
  fx *f = *state;
  vpq_column cols[NCOLS];
  memcpy(cols, all_cols, sizeof cols);
  for (int c = 0; c < NCOLS; c++) cols[c].unread = c != D;
  vpq_schema schema = {cols, NCOLS};
  vpq_decoder *dec = vpq_decoder_new(VPQ_FORMAT_JSON, &schema, f->intern);
  size_t strings = vpq_intern_count(f->intern);
  /* an unread value of the wrong type is skipped: nothing is interned */
  const char *good = "{\"s\":\"never interned\",\"n\":1.5,\"d\":2,\"b\":\"x\",\"t\":-1e999,\"fw\":[1,{}]}";
  assert_true(vpq_decoder_row(dec, good, strlen(good), f->batch, 0, f->err, sizeof f->err));
  assert_true(double_at(f, D) == 2.0);
  assert_int_equal(vpq_intern_count(f->intern), strings);
  /* but it must still be JSON */
  static const char *const bad[][2] = {
      {"{\"n\":1.}", "invalid JSON: invalid number at byte 5"},
      {"{\"n\":-}", "invalid JSON: invalid number at byte 5"},
      {"{\"n\":1e}", "invalid JSON: invalid number at byte 5"},
      {"{\"n\":01}", "invalid JSON: unexpected '1' at byte 6"},
      {"{\"b\":tru}", "invalid JSON: unexpected 't' at byte 5"},
      {"{\"s\":\"a\\x\"}", "invalid JSON: invalid escape at byte 7"},
      {"{\"s\":\"\xff\"}", "invalid UTF-8: byte 0xFF in a string at byte 6"},
      {"{\"fw\":\"a\nb\"}", "invalid JSON: control character 0x0A in a string at byte 8"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_false(vpq_decoder_row(dec, bad[i][0], strlen(bad[i][0]), f->batch, 0, f->err, sizeof f->err));
    assert_string_equal(f->err, bad[i][1]);
  }
  vpq_decoder_free(dec);
}

static void json_deferred_strings_keep_interning_order(void **state) {
  fx *f = *state;
  vpq_intern *pool = vpq_intern_new();
  vpq_decoder *dec = vpq_decoder_new(VPQ_FORMAT_JSON, &all_schema, pool);
  vpq_decoder_defer_strings(dec, true);
  /* rows 0 and 2 take the fast path (deferred), row 1 the general one (an escape) */
  static const char *const rows[] = {"{\"s\":\"b\"}", "{\"s\":\"\\u0061\"}", "{\"s\":\"c\"}", "{\"s\":\"b\"}"};
  for (int r = 0; r < 4; r++)
    assert_true(vpq_decoder_row(dec, rows[r], strlen(rows[r]), f->batch, r, f->err, sizeof f->err));
  vpq_decoder_flush(dec);
  static const char *const want[] = {"b", "a", "c", "b"};
  for (int r = 0; r < 4; r++) assert_string_equal(vpq_intern_text(pool, f->batch->cols[S].data[r].i, NULL), want[r]);
  /* the pool holds them in record order, as without deferring: "" b a c */
  assert_int_equal(vpq_intern_count(pool), 4);
  static const char *const order[] = {"", "b", "a", "c"};
  for (int id = 0; id < 4; id++) assert_string_equal(vpq_intern_text(pool, id, NULL), order[id]);
  /* a failed row in between leaves nothing behind */
  assert_true(vpq_decoder_row(dec, "{\"s\":\"d\"}", 9, f->batch, 0, f->err, sizeof f->err));
  assert_false(vpq_decoder_row(dec, "{\"s\":\"e\",\"n\":x}", 15, f->batch, 1, f->err, sizeof f->err));
  assert_true(vpq_decoder_row(dec, "{\"s\":\"f\"}", 9, f->batch, 1, f->err, sizeof f->err));
  vpq_decoder_flush(dec);
  assert_string_equal(vpq_intern_text(pool, f->batch->cols[S].data[0].i, NULL), "d");
  assert_string_equal(vpq_intern_text(pool, f->batch->cols[S].data[1].i, NULL), "f");
  vpq_decoder_free(dec);
  vpq_intern_free(pool);
}

static uint64_t next_random(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* A record from pieces that the fast path takes and pieces it leaves to the general one, with
 * random bytes changed now and then. */
static size_t random_record(uint64_t *s, char *buf, size_t cap) {
  static const char *const keys[] = {"s", "n", "d", "b", "t", "S", "D", "x", "", "\\u0073", "caf\xc3\xa9", "t "};
  static const char *const values[] = {
      "\"dev-000001\"", "\"a\\\"b\"", "\"caf\xc3\xa9\"", "\"\\u00e9\"", "\"2024-01-01T00:00:00Z\"", "\"2024-13-01\"",
      "1700000000165", "-1.052", "0.9479", "1e3", "1E-3", "-0", "-0.0", "0.5e1", "01", "1.", "-", "1e", "1e400",
      "123456789012345678901234567890", "9007199254740993", "4.9e-324", "9223372036854775808", "true", "false",
      "null", "tru", "{}", "[1,{\"a\":null}]", "\"\"", "\"\\q\"", "\"0.5\"", "12abc", "\"1700000000165\""};
  static const char *const blanks[] = {"", "", "", " ", "\t", "\r\n"};
  size_t n = (size_t)snprintf(buf, cap, "{%s", blanks[next_random(s) % 6]);
  int members = (int)(next_random(s) % 8);
  for (int i = 0; i < members; i++) {
    const char *key = i < NCOLS && next_random(s) % 3 ? all_cols[i].name : keys[next_random(s) % 12];
    n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\"%s:%s%s%s", i ? "," : "", key, blanks[next_random(s) % 6],
                          blanks[next_random(s) % 6], values[next_random(s) % 34], blanks[next_random(s) % 6]);
  }
  n += (size_t)snprintf(buf + n, cap - n, "}");
  if (next_random(s) % 4 == 0) buf[next_random(s) % n] = "{}[]\",:0.e-\\ x\x80"[next_random(s) % 15];
  return n;
}

/* The error text with " at byte N" moved by `shift` bytes. */
static void shift_offset(char *err, long shift) {
  char *at = strstr(err, " at byte ");
  if (at) snprintf(at, 32, " at byte %ld", strtol(at + 9, NULL, 10) + shift);
}

/* A record decodes as it does behind a leading blank, which the fast path leaves to the general
 * one: the same rows, the same strings, the same errors. */
static void json_fast_path_agrees_with_general_path(void **state) {
  fx *f = *state;
  vpq_intern *fast_pool = vpq_intern_new(), *general_pool = vpq_intern_new();
  vpq_decoder *fast = vpq_decoder_new(VPQ_FORMAT_JSON, &all_schema, fast_pool);
  vpq_decoder *general = vpq_decoder_new(VPQ_FORMAT_JSON, &all_schema, general_pool);
  uint64_t s = 88172645463325252ull;
  char text[1024], err[256];
  int decoded = 0;
  for (int i = 0; i < 30000; i++) {
    text[0] = ' ';
    size_t n = random_record(&s, text + 1, sizeof text - 1);
    bool ok = vpq_decoder_row(fast, text + 1, n, f->batch, 0, f->err, sizeof f->err);
    bool also = vpq_decoder_row(general, text, n + 1, f->batch, 1, err, sizeof err);
    if (ok != also) fail_msg("%s: %s / %s", text + 1, ok ? "decoded" : f->err, also ? "decoded" : err);
    if (!ok) {
      shift_offset(f->err, 1);
      if (strcmp(f->err, err) != 0) fail_msg("%s: %s / %s", text + 1, f->err, err);
      continue;
    }
    decoded++;
    for (int c = 0; c < NCOLS; c++) {
      const vpq_vec *v = &f->batch->cols[c];
      assert_int_equal(v->null[0], v->null[1]);
      if (v->null[0]) continue;
      if (all_cols[c].type == VPQ_TYPE_STRING)
        assert_string_equal(vpq_intern_text(fast_pool, v->data[0].i, NULL), vpq_intern_text(general_pool, v->data[1].i, NULL));
      else
        assert_memory_equal(&v->data[0], &v->data[1], sizeof v->data[0]);
    }
  }
  assert_true(decoded > 1000);
  assert_int_equal(vpq_intern_count(fast_pool), vpq_intern_count(general_pool));
  vpq_decoder_free(fast);
  vpq_decoder_free(general);
  vpq_intern_free(fast_pool);
  vpq_intern_free(general_pool);
}

/* ===== JSON: errors, one exact text per category ===== */

static void expect_json_error(fx *f, const char *text, const char *err) {
  assert_false(json(f, text));
  assert_string_equal(f->err, err);
}

static void json_error_texts(void **state) {
  fx *f = *state;
  expect_json_error(f, "{\"s\":", "invalid JSON: unexpected end of input");
  expect_json_error(f, "", "invalid JSON: unexpected end of input");
  expect_json_error(f, "{\"s\" 1}", "invalid JSON: unexpected '1' at byte 5");
  expect_json_error(f, "{\"s\":1,}", "invalid JSON: unexpected '}' at byte 7");
  expect_json_error(f, "{\"x\":[1,]}", "invalid JSON: unexpected ']' at byte 8");
  expect_json_error(f, "{\"x\":tru}", "invalid JSON: unexpected 't' at byte 5");
  expect_json_error(f, "{\"x\":01}", "invalid JSON: unexpected '1' at byte 6");
  expect_json_error(f, "{\"d\":1.}", "invalid JSON: invalid number at byte 5");
  expect_json_error(f, "{\"d\":-}", "invalid JSON: invalid number at byte 5");
  expect_json_error(f, "{} x", "invalid JSON: unexpected text after the object at byte 3");
  expect_json_error(f, "{\"s\":\"abc", "invalid JSON: unterminated string");
  expect_json_error(f, "{\"s\":\"a\\x\"}", "invalid JSON: invalid escape at byte 7");
  expect_json_error(f, "{\"s\":\"a\\u00g1\"}", "invalid JSON: invalid escape at byte 7");
  expect_json_error(f, "{\"s\":\"\\ud800\"}", "invalid JSON: unpaired surrogate escape at byte 6");
  expect_json_error(f, "{\"s\":\"\\udc00\\ud800\"}", "invalid JSON: unpaired surrogate escape at byte 6");
  expect_json_error(f, "{\"s\":\"a\nb\"}", "invalid JSON: control character 0x0A in a string at byte 7");
  expect_json_error(f, "{\"s\":\"a\xff\"}", "invalid UTF-8: byte 0xFF in a string at byte 7");
  expect_json_error(f, "{\"s\":\"\xc0\xaf\"}", "invalid UTF-8: byte 0xC0 in a string at byte 6");
  expect_json_error(f, "{\"s\":\"\xed\xa0\x80\"}", "invalid UTF-8: byte 0xED in a string at byte 6");
  expect_json_error(f, "{\"x\":\"\xe2\x82\"}", "invalid UTF-8: byte 0xE2 in a string at byte 6");
  expect_json_error(f, "[1]", "not an object: the record is an array");
  expect_json_error(f, "\"x\"", "not an object: the record is a string");
  expect_json_error(f, "12", "not an object: the record is a number");
  expect_json_error(f, "null", "not an object: the record is null");
  expect_json_error(f, "{\"d\":\"high\"}", "type mismatch: field `d`: expected DOUBLE, got string \"high\"");
  expect_json_error(f, "{\"n\":1.5}", "type mismatch: field `n`: expected BIGINT, got number 1.5");
  expect_json_error(f, "{\"n\":\"5\"}", "type mismatch: field `n`: expected BIGINT, got string \"5\"");
  expect_json_error(f, "{\"n\":9223372036854775808}",
                    "type mismatch: field `n`: 9223372036854775808 is out of range for BIGINT");
  expect_json_error(f, "{\"d\":-1e400}", "type mismatch: field `d`: -1e400 is out of range for DOUBLE");
  expect_json_error(f, "{\"b\":1}", "type mismatch: field `b`: expected BOOLEAN, got number 1");
  expect_json_error(f, "{\"s\":true}", "type mismatch: field `s`: expected STRING, got boolean true");
  expect_json_error(f, "{\"d\":[1]}", "type mismatch: field `d`: expected DOUBLE, got an array");
  expect_json_error(f, "{\"s\":{}}", "type mismatch: field `s`: expected STRING, got an object");
  expect_json_error(f, "{\"d\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                    "type mismatch: field `d`: expected DOUBLE, got string \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...");
  expect_json_error(f, "{\"t\":\"2024-13-01\"}", "invalid timestamp: field `t`: \"2024-13-01\" is not an ISO-8601 time");
  expect_json_error(f, "{\"t\":1.5}", "invalid timestamp: field `t`: 1.5 is not whole epoch milliseconds");
  expect_json_error(f, "{\"t\":\"1.5\"}", "invalid timestamp: field `t`: \"1.5\" is not whole epoch milliseconds");
  expect_json_error(f, "{\"t\":\"17000x\"}", "invalid timestamp: field `t`: \"17000x\" is not an ISO-8601 time");
  expect_json_error(f, "{\"t\":\"\"}", "invalid timestamp: field `t`: \"\" is not an ISO-8601 time");
  expect_json_error(f, "{\"t\":true}",
                    "invalid timestamp: field `t`: expected epoch milliseconds or an ISO-8601 time, got boolean true");
}

static void json_nesting_is_bounded(void **state) {
  fx *f = *state;
  char text[400];
  /* the record is depth 1, so 63 nested arrays reach depth 64: accepted */
  int n = snprintf(text, sizeof text, "{\"x\":");
  for (int i = 0; i < 63; i++) text[n++] = '[';
  for (int i = 0; i < 63; i++) text[n++] = ']';
  text[n++] = '}';
  text[n] = '\0';
  assert_true(json(f, text));
  /* one more level is refused, objects or arrays alike, before the rest is even read */
  n = snprintf(text, sizeof text, "{\"x\":");
  for (int i = 0; i < 63; i++) text[n++] = '[';
  n += snprintf(text + n, sizeof text - (size_t)n, "{\"k\":1}");
  text[n] = '\0';
  assert_false(json(f, text));
  assert_string_equal(f->err, "too deeply nested: more than 64 levels at byte 68");
}

static void json_record_size_limit(void **state) {
  fx *f = *state;
  vpq_decoder_set_max_bytes(f->json, 10);
  assert_true(json(f, "{\"n\":12}"));
  expect_json_error(f, "{\"n\":123456}", "record too large: 12 bytes, the limit is 10");
  vpq_decoder_set_max_bytes(f->json, 0);
  assert_true(json(f, "{\"n\":123456}"));
}

/* ===== Numbers: every double equals strtod's ===== */

static void check_double(fx *f, const char *number) {
  char text[512];
  snprintf(text, sizeof text, "{\"d\":%s}", number);
  assert_true(json(f, text));
  double want = strtod(number, NULL), got = double_at(f, D);
  if (memcmp(&want, &got, sizeof want) != 0) fail_msg("%s: got %.17g, strtod gives %.17g", number, got, want);
}

static void doubles_equal_strtod(void **state) {
  fx *f = *state;
  static const char *const numbers[] = {
      "0.1", "1e-7", "-0.0", "0", "0.30000000000000004", "9007199254740993", "9007199254740992.5",
      "1e23", "8.98846567431158e307", "1.7976931348623157e308", "2.2250738585072014e-308", "4.9e-324",
      "2.4703282292062327e-324", "123456789012345678901234567890", "3.14159265358979323846264338327950288",
      "0.000000000000000000000000000001", "1E+2", "-1e-400", "12.5e-1", "0.1e1",
      "100000000000000000000000", "0.000123456789012345678901"};
  for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) check_double(f, numbers[i]);
  srand(7);
  for (int i = 0; i < 20000; i++) {
    uint64_t bits = 0;
    for (int k = 0; k < 4; k++) bits = bits << 16 | (uint64_t)(rand() & 0xffff);
    double v;
    memcpy(&v, &bits, sizeof v);
    if (!isfinite(v)) continue;
    char number[64];
    static const char *const formats[] = {"%.17g", "%.15g", "%.6g", "%.3f", "%.10e"};
    snprintf(number, sizeof number, formats[i % 5], i % 5 == 3 ? v * 1e-300 : v);
    if (strpbrk(number, "ni")) continue;
    check_double(f, number);
  }
}

/* ===== ISO-8601 ===== */

static void timestamps_parse(void **state) {
  (void)state;
  static const struct {
    const char *text;
    int64_t ms;
  } good[] = {
      {"2024-01-01", 1704067200000},
      {"2024-01-01T00:00:00Z", 1704067200000},
      {"2024-01-01t00:00:00z", 1704067200000},
      {"2024-01-01 00:00:00.250+01:00", 1704063600250},
      {"2024-01-01T01:00:00.25+0100", 1704067200250},
      {"2024-01-01T12:30", 1704112200000},
      {"2024-01-01T12:30Z", 1704112200000},
      {"2024-02-29T23:59:59.9999999-05:30", 1709270999999},
      {"1969-12-31T23:59:59.999Z", -1},
      {"2000-03-01T00:00:00", 951868800000},
      {"1970-01-01T00:00:00.5", 500},
      {"2024-01-01T10:00+01", 1704099600000},
      {"2024-01-01T10:00:00-05", 1704121200000},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    int64_t ms = 0;
    if (!vpq_timestamp_parse(good[i].text, strlen(good[i].text), &ms)) fail_msg("rejected %s", good[i].text);
    assert_int_equal(ms, good[i].ms);
  }
  static const char *const bad[] = {
      "", "2024", "2024-1-01", "2024-01-1", "2023-02-29", "2024-04-31", "2024-00-10", "2024-13-01",
      "2024-01-01T", "2024-01-01Z", "2024-01-01T24:00", "2024-01-01T10:60", "2024-01-01T10:00:60",
      "2024-01-01T10:00:00.", "2024-01-01T10:00:00x", "2024-01-01T10:00+25:00", "2024-01-01T10:00+01:60",
      "2024-01-01T10:00+1", "2024-01-01T10:00+011", "2024-01-01T1:00", "2024/01/01", "abcd-ef-gh", "2024-01-01T10:00:0",
      "2024-01-01 10:00 ", "2024-01-01T10:00:00+01:0"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t ms;
    if (vpq_timestamp_parse(bad[i], strlen(bad[i]), &ms)) fail_msg("accepted %s", bad[i]);
  }
}

/* ===== CSV ===== */

static void csv_header_maps_columns_and_quoting_works(void **state) {
  fx *f = *state;
  const char *header = "D,\"s\", extra ,T\r";
  assert_true(vpq_decoder_csv_header(f->csv, header, strlen(header), f->err, sizeof f->err));
  assert_true(csv(f, "2.5,\"a,\"\"b\"\"\",ignored,2024-01-01"));
  assert_true(double_at(f, D) == 2.5);
  assert_string_equal(str_at(f, S), "a,\"b\"");
  assert_int_equal(int_at(f, T), 1704067200000);
  assert_true(is_null(f, N));
  assert_true(is_null(f, B));
  assert_true(csv(f, ",\"x\ny\",,1700000000000\r"));
  assert_true(is_null(f, D));
  assert_string_equal(str_at(f, S), "x\ny");
  assert_int_equal(int_at(f, T), 1700000000000);
  assert_true(csv(f, "+1e2,\"\",\"\","));
  assert_true(double_at(f, D) == 100.0);
  assert_false(is_null(f, S));
  assert_string_equal(str_at(f, S), "");
  assert_true(is_null(f, T));
  assert_true(csv(f, "1,plain text,x,"));
  assert_string_equal(str_at(f, S), "plain text");
}

static void csv_types_and_errors(void **state) {
  fx *f = *state;
  const char *header = "n,b,d,t,s";
  assert_true(vpq_decoder_csv_header(f->csv, header, strlen(header), f->err, sizeof f->err));
  assert_true(csv(f, "42,TRUE,-0.25,2024-01-01T00:00:01Z,x"));
  assert_int_equal(int_at(f, N), 42);
  assert_int_equal(int_at(f, B), 1);
  assert_true(double_at(f, D) == -0.25);
  assert_int_equal(int_at(f, T), 1704067201000);
  assert_true(csv(f, "1.0,False,1,5,"));
  assert_int_equal(int_at(f, N), 1);
  assert_int_equal(int_at(f, B), 0);
  assert_int_equal(int_at(f, T), 5);
  assert_true(is_null(f, S));
  assert_true(csv(f, "1,true,2,\"1700000000000\",s"));
  assert_int_equal(int_at(f, T), 1700000000000);
  assert_false(csv(f, "1,true,2"));
  assert_string_equal(f->err, "wrong field count: expected 5 fields, got 3");
  assert_false(csv(f, "x,true,2,3,4,5"));
  assert_string_equal(f->err, "wrong field count: expected 5 fields, got 6");
  assert_false(csv(f, "1.5,true,2,3,s"));
  assert_string_equal(f->err, "type mismatch: field `n`: expected BIGINT, got \"1.5\"");
  assert_false(csv(f, "1,yes,2,3,s"));
  assert_string_equal(f->err, "type mismatch: field `b`: expected BOOLEAN, got \"yes\"");
  assert_false(csv(f, "1,true,abc,3,s"));
  assert_string_equal(f->err, "type mismatch: field `d`: expected DOUBLE, got \"abc\"");
  assert_false(csv(f, "1,true,2,2024-02-30,s"));
  assert_string_equal(f->err, "invalid timestamp: field `t`: \"2024-02-30\" is not an ISO-8601 time");
  assert_false(csv(f, "1,true,2,1.5,s"));
  assert_string_equal(f->err, "invalid timestamp: field `t`: 1.5 is not whole epoch milliseconds");
  assert_false(csv(f, "1,true,2,3,\xff"));
  assert_string_equal(f->err, "invalid UTF-8: byte 0xFF at byte 11");
}

static void csv_without_header_maps_by_position(void **state) {
  fx *f = *state;
  assert_true(csv(f, "a,1,2.5,true,7"));
  assert_string_equal(str_at(f, S), "a");
  assert_int_equal(int_at(f, N), 1);
  assert_int_equal(int_at(f, T), 7);
}

static void csv_bad_headers(void **state) {
  fx *f = *state;
  assert_false(vpq_decoder_csv_header(f->csv, "", 0, f->err, sizeof f->err));
  assert_string_equal(f->err, "the header line is empty");
  assert_false(vpq_decoder_csv_header(f->csv, "x,y", 3, f->err, sizeof f->err));
  assert_string_equal(f->err, "the header `x,y` names none of the columns");
  assert_false(vpq_decoder_csv_header(f->csv, "s,d,S", 5, f->err, sizeof f->err));
  assert_string_equal(f->err, "column `s` appears twice in the header");
}

/* ===== Encoders ===== */

static const char *encode_double(vpq_buf *buf, double v) {
  buf->len = 0;
  vpq_json_encode_double(buf, v);
  return buf->data;
}

static void doubles_encode_exactly(void **state) {
  (void)state;
  vpq_buf buf = {0};
  assert_string_equal(encode_double(&buf, 0.1), "0.1");
  assert_string_equal(encode_double(&buf, 1e-7), "1e-07");
  assert_string_equal(encode_double(&buf, 12.0), "12.0");
  assert_string_equal(encode_double(&buf, 1.0 / 3.0), "0.3333333333333333");
  assert_string_equal(encode_double(&buf, NAN), "null");
  assert_string_equal(encode_double(&buf, -INFINITY), "null");
  assert_string_equal(encode_double(&buf, -0.0), "-0.0");
  assert_string_equal(encode_double(&buf, 0.0), "0.0");
  assert_string_equal(encode_double(&buf, -2.5), "-2.5");
  assert_string_equal(encode_double(&buf, 1e300), "1e+300");
  assert_string_equal(encode_double(&buf, 1e15), "1000000000000000.0");
  assert_string_equal(encode_double(&buf, 123456789012345678.0), "1.2345678901234568e+17");
  assert_string_equal(encode_double(&buf, 0.1 + 0.2), "0.30000000000000004");
  vpq_buf_free(&buf);
}

static void strings_encode_as_json(void **state) {
  (void)state;
  vpq_buf buf = {0};
  const char text[] = "a\"b\\c\n\r\t\b\f\x01\x1f/\xc3\xa9\xff\xe2\x82";
  vpq_json_encode_string(&buf, text, sizeof text - 1);
  assert_string_equal(buf.data, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f/\xc3\xa9\\u00ff\\u00e2\\u0082\"");
  buf.len = 0;
  vpq_json_encode_string(&buf, "", 0);
  assert_string_equal(buf.data, "\"\"");
  vpq_buf_free(&buf);
}

static void rows_encode_as_json_and_csv(void **state) {
  fx *f = *state;
  assert_true(json(f, "{\"s\":\"a,\\\"b\\\"\",\"n\":-5,\"d\":0.5,\"b\":false,\"t\":1704067200000}"));
  vpq_buf buf = {0};
  vpq_json_encode_row(&buf, &all_schema, f->batch, 0, f->intern);
  assert_string_equal(buf.data, "{\"s\":\"a,\\\"b\\\"\",\"n\":-5,\"d\":0.5,\"b\":false,\"t\":1704067200000}");
  buf.len = 0;
  vpq_csv_encode_header(&buf, &all_schema);
  vpq_buf_append(&buf, "\n", 1);
  vpq_csv_encode_row(&buf, &all_schema, f->batch, 0, f->intern);
  assert_string_equal(buf.data, "s,n,d,b,t\n\"a,\"\"b\"\"\",-5,0.5,false,1704067200000");
  assert_true(json(f, "{\"d\":12}"));
  buf.len = 0;
  vpq_json_encode_row(&buf, &all_schema, f->batch, 0, f->intern);
  assert_string_equal(buf.data, "{\"s\":null,\"n\":null,\"d\":12.0,\"b\":null,\"t\":null}");
  buf.len = 0;
  vpq_csv_encode_row(&buf, &all_schema, f->batch, 0, f->intern);
  assert_string_equal(buf.data, ",,12.0,,");
  vpq_buf_free(&buf);
}

/* Encodes row 0, decodes the text into row 1, and checks that both rows are equal. */
static void check_round_trip(fx *f, vpq_format format) {
  vpq_buf buf = {0};
  if (format == VPQ_FORMAT_JSON) vpq_json_encode_row(&buf, &all_schema, f->batch, 0, f->intern);
  else vpq_csv_encode_row(&buf, &all_schema, f->batch, 0, f->intern);
  vpq_decoder *dec = format == VPQ_FORMAT_JSON ? f->json : f->csv;
  if (!vpq_decoder_row(dec, buf.data, buf.len, f->batch, 1, f->err, sizeof f->err)) fail_msg("%s: %s", buf.data, f->err);
  for (int c = 0; c < NCOLS; c++) {
    assert_int_equal(f->batch->cols[c].null[1], f->batch->cols[c].null[0]);
    if (!f->batch->cols[c].null[0]) assert_memory_equal(&f->batch->cols[c].data[1], &f->batch->cols[c].data[0], 8);
  }
  vpq_buf_free(&buf);
}

static void rows_round_trip(void **state) {
  fx *f = *state;
  static const char *const rows[] = {
      "{\"s\":\"plain\",\"n\":0,\"d\":0.1,\"b\":true,\"t\":0}",
      "{\"s\":\"\",\"n\":-9223372036854775808,\"d\":-0.0,\"b\":false,\"t\":-1}",
      "{\"s\":\"a,b\\n\\\"c\\\"\\r\\u00e9\\ud83d\\ude00\",\"d\":4.9e-324,\"t\":\"2024-06-30T12:00:00.123+02:00\"}",
      "{\"s\":\" spaces \",\"n\":9223372036854775807,\"d\":1.7976931348623157e308}",
      "{\"d\":0.30000000000000004}",
      "{\"d\":123456789.123456789}",
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    assert_true(json(f, rows[i]));
    check_round_trip(f, VPQ_FORMAT_JSON);
    check_round_trip(f, VPQ_FORMAT_CSV);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(json_decodes_every_type, setup, teardown),
      cmocka_unit_test_setup_teardown(json_null_missing_and_unknown_fields, setup, teardown),
      cmocka_unit_test_setup_teardown(json_keys_any_case_any_order_last_wins, setup, teardown),
      cmocka_unit_test_setup_teardown(json_integers_and_numbers_as_text, setup, teardown),
      cmocka_unit_test_setup_teardown(json_escapes_and_surrogate_pairs, setup, teardown),
      cmocka_unit_test(json_field_walks_top_level_fields),
      cmocka_unit_test_setup_teardown(json_strings_are_interned, setup, teardown),
      cmocka_unit_test_setup_teardown(json_strings_of_any_length_intern_once, setup, teardown),
      cmocka_unit_test_setup_teardown(json_exact_name_wins_over_any_case, setup, teardown),
      cmocka_unit_test_setup_teardown(json_unread_columns_are_checked_not_decoded, setup, teardown),
      cmocka_unit_test_setup_teardown(json_deferred_strings_keep_interning_order, setup, teardown),
      cmocka_unit_test_setup_teardown(json_fast_path_agrees_with_general_path, setup, teardown),
      cmocka_unit_test_setup_teardown(json_error_texts, setup, teardown),
      cmocka_unit_test_setup_teardown(json_nesting_is_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(json_record_size_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(doubles_equal_strtod, setup, teardown),
      cmocka_unit_test(timestamps_parse),
      cmocka_unit_test_setup_teardown(csv_header_maps_columns_and_quoting_works, setup, teardown),
      cmocka_unit_test_setup_teardown(csv_types_and_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(csv_without_header_maps_by_position, setup, teardown),
      cmocka_unit_test_setup_teardown(csv_bad_headers, setup, teardown),
      cmocka_unit_test(doubles_encode_exactly),
      cmocka_unit_test(strings_encode_as_json),
      cmocka_unit_test_setup_teardown(rows_encode_as_json_and_csv, setup, teardown),
      cmocka_unit_test_setup_teardown(rows_round_trip, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
