/* test_dtoa.c — numbers to text: doubles as their shortest round-trip text laid out as Python's
 * repr() (exact cases at every edge, then random doubles of many shapes against an oracle built
 * on printf and strtod), integers against printf. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpq_dtoa.h"

static const char *format(char *buf, double v) {
  size_t n = vpq_dtoa_double(buf, v);
  if (n == 0) return "(none)";
  assert_int_equal(n, strlen(buf));
  return buf;
}

static void doubles_format_as_repr(void **state) {
  (void)state;
  static const struct {
    double v;
    const char *text;
  } cases[] = {
      {0.0, "0.0"},
      {-0.0, "-0.0"},
      {1.0, "1.0"},
      {-2.5, "-2.5"},
      {0.1, "0.1"},
      {0.1 + 0.2, "0.30000000000000004"},
      {1.0 / 3.0, "0.3333333333333333"},
      {2.0 / 3.0, "0.6666666666666666"},
      {1.2969999999999997, "1.2969999999999997"},
      {0.9479, "0.9479"},
      {-1.052, "-1.052"},
      {1e-4, "0.0001"},
      {9.9999e-05, "9.9999e-05"},
      {1e-5, "1e-05"},
      {1.5e-7, "1.5e-07"},
      {123.456, "123.456"},
      {1e15, "1000000000000000.0"},
      {999999999999999.9, "999999999999999.9"},
      {1e16, "1e+16"},
      {1.5e16, "1.5e+16"},
      {9007199254740993.0, "9007199254740992.0"}, /* 2^53 + 1 is not a double */
      {4503599627370495.5, "4503599627370495.5"}, /* the last non-integral binade */
      {2251799813685248.5, "2251799813685248.5"},
      {123456789012345678.0, "1.2345678901234568e+17"},
      {1e21, "1e+21"},
      {1e22, "1e+22"},
      {1e23, "1e+23"},
      {1e300, "1e+300"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
      {2.2250738585072014e-308, "2.2250738585072014e-308"}, /* the smallest normal */
      {2.225073858507201e-308, "2.225073858507201e-308"},   /* the largest subnormal */
      {5e-324, "4.94065645841247e-324"}, /* subnormals keep their text of old: see oracle() */
      {1e-320, "9.99988867182683e-321"},
      {0x1p-33, "1.1641532182693481e-10"},                  /* the exact path's lower end */
      {0x1p-34, "5.820766091346741e-11"},
      {0x1p-10, "0.0009765625"},
      {0.5, "0.5"},
      {0x1.0000000000001p0, "1.0000000000000002"}, /* one ulp above 1 */
      {0x1.fffffffffffffp-1, "0.9999999999999999"}, /* one ulp below 1: the lower neighbour is closer */
      {5e-5, "5e-05"},
      {0.000123456789, "0.000123456789"},
      {-123456.789e-10, "-1.23456789e-05"},
  };
  char buf[VPQ_DTOA_SIZE];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *got = format(buf, cases[i].v);
    if (strcmp(got, cases[i].text) != 0) fail_msg("%a: got %s, want %s", cases[i].v, got, cases[i].text);
  }
  assert_int_equal(vpq_dtoa_double(buf, NAN), 0);
  assert_int_equal(vpq_dtoa_double(buf, -NAN), 0);
  assert_int_equal(vpq_dtoa_double(buf, INFINITY), 0);
  assert_int_equal(vpq_dtoa_double(buf, -INFINITY), 0);
}

/* The oracle: the fewest significant digits p whose correct rounding (printf) reads back
 * (strtod), laid out as repr() does. Subnormals, whose precision is less, keep the text vpq has
 * always written for them: the first of the 15-, 16- and 17-digit roundings that reads back. */
static void oracle(char *out, size_t size, double v) {
  char sci[48];
  for (int p = fabs(v) < DBL_MIN ? 15 : 1; p <= 17; p++) {
    snprintf(sci, sizeof sci, "%.*e", p - 1, fabs(v));
    if (strtod(sci, NULL) == fabs(v)) break;
  }
  char digits[24];
  size_t n = 0;
  const char *at = sci;
  for (; *at != 'e'; at++)
    if (*at != '.') digits[n++] = *at;
  int e = atoi(at + 1);
  while (n > 1 && digits[n - 1] == '0') n--;
  digits[n] = '\0';
  const char *sign = signbit(v) ? "-" : "";
  if (e < -4 || e >= 16) {
    snprintf(out, size, "%s%c%s%se%c%02d", sign, digits[0], n > 1 ? "." : "", digits + 1, e < 0 ? '-' : '+',
             abs(e));
  } else if (e < 0) {
    snprintf(out, size, "%s0.%.*s%s", sign, -e - 1, "0000", digits);
  } else if ((size_t)e + 1 >= n) {
    snprintf(out, size, "%s%s%.*s.0", sign, digits, (int)((size_t)e + 1 - n), "0000000000000000");
  } else {
    snprintf(out, size, "%s%.*s.%s", sign, e + 1, digits, digits + e + 1);
  }
}

static uint64_t next_random(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* A double of one of several shapes: any bits, a binade near 1, few decimals, sums and means of
 * such (what aggregates write), n·2^-k (exact ties), the ends of binades, scaled integers. */
static double random_double(uint64_t *s, int shape) {
  uint64_t r = next_random(s), bits;
  double v = 0;
  switch (shape) {
  case 0: bits = next_random(s) % 16 ? r : r >> 12; break; /* sometimes subnormal */
  case 1: bits = (r & ((1ull << 52) - 1)) | (uint64_t)(1023 - 40 + next_random(s) % 100) << 52; break;
  case 2: return (double)(int64_t)(r % 2000000 - 1000000) / 1000.0;
  case 3:
    for (int i = 0; i < 4; i++) v += (double)(int64_t)(next_random(s) % 20000 - 10000) / 1000.0;
    return v;
  case 4:
    for (int i = 0; i < 4; i++) v += (double)(next_random(s) % 10000) / 10000.0;
    return v / 4;
  case 5: return ldexp((double)(r >> 11), -(int)(next_random(s) % 80));
  case 6:
    bits = (next_random(s) % 2 ? 0 : (1ull << 52) - 1 - r % 4) | (uint64_t)(1023 - 40 + next_random(s) % 100) << 52;
    break;
  default: return (double)(r % 100000000000000000ull) * pow(10, (double)(int)(next_random(s) % 40) - 20);
  }
  memcpy(&v, &bits, sizeof v);
  return v;
}

static void doubles_are_shortest_and_read_back(void **state) {
  (void)state;
  uint64_t s = 88172645463325252ull;
  char got[VPQ_DTOA_SIZE], want[64];
  for (int i = 0; i < 40000; i++) {
    double v = random_double(&s, i % 8);
    if (!isfinite(v)) continue;
    format(got, v);
    double back = strtod(got, NULL);
    if (memcmp(&back, &v, sizeof v) != 0) fail_msg("%a: %s reads back as %a", v, got, back);
    oracle(want, sizeof want, v);
    if (strcmp(got, want) != 0) fail_msg("%a: got %s, the oracle gives %s", v, got, want);
  }
}

static void integers_format_as_printf(void **state) {
  (void)state;
  static const int64_t cases[] = {0, 1, -1, 9, 10, 99, 100, 12345678, 99999999, 100000000, 9999999999999999,
                                  10000000000000000, 1000000000000000000, INT64_MAX, INT64_MIN, INT64_MIN + 1};
  char got[VPQ_DTOA_SIZE], want[32];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(want, sizeof want, "%lld", (long long)cases[i]);
    assert_int_equal(vpq_dtoa_int(got, cases[i]), strlen(want));
    assert_string_equal(got, want);
  }
  uint64_t s = 7;
  for (int i = 0; i < 100000; i++) {
    uint64_t r = next_random(&s);
    int64_t v = (int64_t)(r >> (r % 64));
    if (i & 1) v = -v;
    snprintf(want, sizeof want, "%lld", (long long)v);
    assert_int_equal(vpq_dtoa_int(got, v), strlen(want));
    assert_string_equal(got, want);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(doubles_format_as_repr),
      cmocka_unit_test(doubles_are_shortest_and_read_back),
      cmocka_unit_test(integers_format_as_printf),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
