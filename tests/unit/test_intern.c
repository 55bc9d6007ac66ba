/* test_intern.c — unit tests of the string pool's hash table (vpq_intern.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "vpq_intern.h"

static void same_text_same_id(void **state) {
  (void)state;
  vpq_intern *pool = vpq_intern_new();
  assert_int_equal(vpq_intern_id(pool, "", 0), 0);
  int64_t a = vpq_intern_id(pool, "dev-1", 5);
  int64_t b = vpq_intern_id(pool, "dev-2", 5);
  assert_true(a != b);
  assert_int_equal(vpq_intern_id(pool, "dev-1xyz", 5), a);
  size_t len;
  assert_string_equal(vpq_intern_text(pool, b, &len), "dev-2");
  assert_int_equal(len, 5);
  assert_int_equal(vpq_intern_count(pool), 3);
  vpq_intern_free(pool);
}

static void embedded_nul_and_prefixes_differ(void **state) {
  (void)state;
  vpq_intern *pool = vpq_intern_new();
  int64_t ab = vpq_intern_id(pool, "ab", 2);
  int64_t a_nul_b = vpq_intern_id(pool, "a\0b", 3);
  int64_t a = vpq_intern_id(pool, "a", 1);
  assert_true(ab != a_nul_b && ab != a && a != a_nul_b);
  assert_true(vpq_intern_compare(pool, a, ab) < 0);
  assert_true(vpq_intern_compare(pool, ab, a) > 0);
  assert_int_equal(vpq_intern_compare(pool, ab, ab), 0);
  vpq_intern_free(pool);
}

static void survives_growth(void **state) {
  (void)state;
  vpq_intern *pool = vpq_intern_new();
  char text[32];
  for (int i = 0; i < 200000; i++) {
    int n = snprintf(text, sizeof text, "device-%d", i);
    assert_int_equal(vpq_intern_id(pool, text, (size_t)n), i + 1);
  }
  for (int i = 0; i < 200000; i += 997) {
    int n = snprintf(text, sizeof text, "device-%d", i);
    assert_int_equal(vpq_intern_id(pool, text, (size_t)n), i + 1);
    assert_string_equal(vpq_intern_text(pool, i + 1, NULL), text);
  }
  assert_int_equal(vpq_intern_count(pool), 200001);
  vpq_intern_free(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(same_text_same_id),
      cmocka_unit_test(embedded_nul_and_prefixes_differ),
      cmocka_unit_test(survives_growth),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
