/* vpq_dtoa.c — the shortest round-trip text of a double, in exact integer arithmetic.
 *
 * The text is the p-digit decimal nearest to the double (ties to even) for the smallest p
 * whose nearest decimal reads back to it. Three facts make that cheap to find:
 *
 *   - With at most 15 digits, at most one decimal of each length lies within the double's
 *     rounding interval, and it is the 15-digit correct rounding with trailing zeros dropped;
 *     so the 15-digit rounding is tried first, then 16 digits, then 17 (which always read back).
 *   - A non-integral double a = m·2^e (m < 2^53) in [2^-33, 2^52) has at most 26 decimals to
 *     look at, and 4m·5^k < 2^116 for k <= 26: the value scaled by 10^k, x = 4m·5^k / 2^S,
 *     with S = 2 - k - e, is an exact 128-bit fraction. Its nearest integer c and the distance
 *     |c - x| are exact, and c reads back to a exactly when that distance is within half an
 *     ulp scaled the same way (2·5^k / 2^S; half of it below a power of two, where the lower
 *     neighbour is closer), the bounds themselves counting when m is even (strtod rounds ties
 *     to even).
 *   - Integral values below 1e16 are their integer digits and ".0".
 *
 *      a ──► m, e ──► decimal exponent e10 (estimated from e, checked on x)
 *                 ──► p = 15, 16, 17: c = nearest(a·10^(p-1-e10)); reads back? ──► digits
 *
 * Other values (|a| >= 1e16, below 2^-33) are rare in telemetry and take the general path:
 * printf's correct rounding to 15, 16, 17 digits checked with strtod, which gives the same digits
 * for normal doubles (the first fact) and, for subnormals, the text vpq has always written. Both
 * paths then lay the digits out the same way (see vpq_dtoa.h).
 */
#include "vpq_dtoa.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

static const char DIGIT_PAIRS[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                  "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                  "8081828384858687888990919293949596979899";

/* Writes exactly 8 digits of v < 10^8 (leading zeros included): four independent pairs. */
static void put_eight(char *buf, uint32_t v) {
  uint32_t hi = v / 10000, lo = v % 10000;
  memcpy(buf, DIGIT_PAIRS + hi / 100 * 2, 2);
  memcpy(buf + 2, DIGIT_PAIRS + hi % 100 * 2, 2);
  memcpy(buf + 4, DIGIT_PAIRS + lo / 100 * 2, 2);
  memcpy(buf + 6, DIGIT_PAIRS + lo % 100 * 2, 2);
}

/* The number of decimal digits of u (1 for 0). */
static size_t decimal_length(uint64_t u) {
  static const uint64_t POW10[] = {1ull,
                                   10ull,
                                   100ull,
                                   1000ull,
                                   10000ull,
                                   100000ull,
                                   1000000ull,
                                   10000000ull,
                                   100000000ull,
                                   1000000000ull,
                                   10000000000ull,
                                   100000000000ull,
                                   1000000000000ull,
                                   10000000000000ull,
                                   100000000000000ull,
                                   1000000000000000ull,
                                   10000000000000000ull,
                                   100000000000000000ull,
                                   1000000000000000000ull,
                                   10000000000000000000ull};
  if (u < 10) return 1;
  /* bits · log10(2) is the length or one less */
  size_t n = (size_t)((64 - __builtin_clzll(u)) * 1233 >> 12);
  return n + (n < 20 && u >= POW10[n]);
}

/* Writes the decimal digits of u at buf (no NUL), right to left in place; returns how many. */
static size_t put_u64(char *buf, uint64_t u) {
  size_t n = decimal_length(u);
  char *p = buf + n;
  for (; u >= 100000000; u /= 100000000) {
    p -= 8;
    put_eight(p, (uint32_t)(u % 100000000));
  }
  uint32_t v = (uint32_t)u;
  for (; v >= 100; v /= 100) {
    p -= 2;
    memcpy(p, DIGIT_PAIRS + v % 100 * 2, 2);
  }
  if (v >= 10) memcpy(p - 2, DIGIT_PAIRS + v * 2, 2);
  else p[-1] = (char)('0' + v);
  return n;
}

size_t vpq_dtoa_int(char *buf, int64_t v) {
  size_t n = 0;
  if (v < 0) buf[n++] = '-';
  n += put_u64(buf + n, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
  buf[n] = '\0';
  return n;
}

/* ===== Layout: digits d1 d2 ... dn and the exponent of d1 ===== */

enum { DIGITS_SIZE = 48, /* a digits buffer: up to 20 digits, and room for the copies below */
       COPY = 24 };      /* bytes moved by one digits copy, whatever the count: no call to memcpy */

/* Writes [-]digits as repr() does; `digits` (DIGITS_SIZE bytes) has no trailing zeros (except a
 * lone "0"). Digits are moved COPY bytes at a time: bytes past the text are scribbled over. */
static size_t layout(char *buf, bool negative, const char *digits, size_t n, int exp10) {
  size_t len = 0;
  if (negative) buf[len++] = '-';
  if (exp10 >= -4 && exp10 < 16) {
    if (exp10 < 0) {
      memcpy(buf + len, "0.000", 5);
      len += (size_t)(1 - exp10);
      memcpy(buf + len, digits, COPY);
      len += n;
    } else {
      size_t whole = (size_t)exp10 + 1;
      memcpy(buf + len, digits, COPY);
      for (size_t i = n; i < whole; i++) buf[len + i] = '0';
      len += whole;
      buf[len++] = '.';
      if (whole < n) {
        memcpy(buf + len, digits + whole, COPY);
        len += n - whole;
      } else {
        buf[len++] = '0';
      }
    }
  } else {
    buf[len++] = digits[0];
    if (n > 1) {
      buf[len++] = '.';
      memcpy(buf + len, digits + 1, COPY);
      len += n - 1;
    }
    int e = exp10 < 0 ? -exp10 : exp10;
    buf[len++] = 'e';
    buf[len++] = exp10 < 0 ? '-' : '+';
    if (e >= 100) buf[len++] = (char)('0' + e / 100);
    memcpy(buf + len, DIGIT_PAIRS + e % 100 * 2, 2);
    len += 2;
  }
  buf[len] = '\0';
  return len;
}

/* ===== The exact path: non-integral values in [2^-33, 2^52) ===== */

enum { POW5_MAX = 26 };

static const uint64_t POW5[POW5_MAX + 1] = {
    1ull,
    5ull,
    25ull,
    125ull,
    625ull,
    3125ull,
    15625ull,
    78125ull,
    390625ull,
    1953125ull,
    9765625ull,
    48828125ull,
    244140625ull,
    1220703125ull,
    6103515625ull,
    30517578125ull,
    152587890625ull,
    762939453125ull,
    3814697265625ull,
    19073486328125ull,
    95367431640625ull,
    476837158203125ull,
    2384185791015625ull,
    11920928955078125ull,
    59604644775390625ull,
    298023223876953125ull,
    1490116119384765625ull,
};

/* The double m·2^e as seen from k decimals: x = m·2^e·10^k = X / 2^S with X = 4m·5^k. For the
 * doubles and the k of shortest_exact, S = 2 - k - e is in [2, 86]: a < 2^52 keeps k <= -e (at
 * most 16 - e10 decimals), a >= 2^-33 keeps e >= -85. */
typedef struct scaled {
  u128 x4;   /* X */
  int shift; /* S */
} scaled;

static scaled scale(uint64_t m, int e, int k) {
  return (scaled){(u128)(m << 2) * POW5[k], 2 - k - e};
}

/* The nearest integer to m·2^e·10^k (ties to even) in *c; true when c·10^-k reads back to
 * m·2^e (a normal double; `lower_closer`: m is a power of two, its lower neighbour is closer). */
static bool nearest_reads_back(uint64_t m, int e, bool lower_closer, int k, uint64_t *c) {
  scaled s = scale(m, e, k);
  u128 one = (u128)1 << s.shift, half = one >> 1;
  u128 q = s.x4 >> s.shift, r = s.x4 & (one - 1);
  bool up = r > half || (r == half && (q & 1));
  u128 distance = up ? one - r : r;
  u128 bound = (u128)POW5[k] << (up || !lower_closer ? 1 : 0);
  *c = (uint64_t)q + up;
  return distance < bound || (distance == bound && !(m & 1));
}

/* floor(e2 · log10 2) for |e2| <= 1650 (78913 / 2^18 is close enough there). */
static int floor_log10_pow2(int e2) {
  return e2 >= 0 ? (int)(((uint32_t)e2 * 78913u) >> 18) : -(int)(((uint32_t)-e2 * 78913u) >> 18) - 1;
}

/* The shortest digits of a non-integral |v| in [2^-33, 2^52): writes them, returns how many,
 * and stores the exponent of the first digit in *exp10. */
static size_t shortest_exact(double v, char *digits, int *exp10) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  uint64_t fraction = bits & ((1ull << 52) - 1);
  uint64_t m = fraction | 1ull << 52;
  int e = (int)(bits >> 52 & 0x7FF) - 1075;
  bool lower_closer = fraction == 0;
  /* |v| is in [2^(e+52), 2^(e+53)): its decimal exponent is the estimate or one more */
  int e10 = floor_log10_pow2(e + 52);
  scaled s = scale(m, e, 16 - e10);
  e10 += (uint64_t)(s.x4 >> s.shift) >= 100000000000000000ull;
  uint64_t c = 0;
  int k = 0;
  for (int p = 15; p <= 17; p++) {
    k = p - 1 - e10;
    if (k < 1) continue; /* an integer never reads back to a non-integral double */
    if (nearest_reads_back(m, e, lower_closer, k, &c) || p == 17) break;
  }
  /* drop trailing zeros (a 15-digit rounding has most of them), 16, 8, 4, 2, 1 at a time */
  static const uint64_t tens[] = {10000000000000000ull, 100000000, 10000, 100, 10};
  static const int counts[] = {16, 8, 4, 2, 1};
  for (int i = 0; i < 5; i++) {
    if (c % tens[i]) continue;
    c /= tens[i];
    k -= counts[i];
  }
  size_t n = put_u64(digits, c);
  *exp10 = (int)n - 1 - k;
  return n;
}

/* ===== The general path ===== */

/* The digits of any finite |v| through printf and strtod: the first of its 15-, 16- and 17-digit
 * roundings that reads back, trailing zeros dropped (the shortest, but for subnormals); as
 * shortest_exact. */
static size_t shortest_general(double v, char *digits, int *exp10) {
  char sci[40];
  /* 15 significant digits always suffice to separate the shorter texts (trailing zeros are
   * stripped below); 16 or 17 are needed only when 15 do not read back. */
  for (int p = 15; p <= 17; p++) {
    snprintf(sci, sizeof sci, "%.*e", p - 1, fabs(v));
    if (p == 17 || strtod(sci, NULL) == fabs(v)) break;
  }
  /* sci = d[.ddd]e±XX */
  size_t n = 0;
  const char *at = sci;
  for (; *at && *at != 'e'; at++)
    if (*at != '.') digits[n++] = *at;
  *exp10 = atoi(at + 1);
  while (n > 1 && digits[n - 1] == '0') n--;
  return n;
}

size_t vpq_dtoa_double(char *buf, double v) {
  if (!isfinite(v)) return 0;
  double a = fabs(v);
  if (a < 1e16 && v == (double)(int64_t)v) {
    size_t n = 0;
    if (signbit(v) && v == 0) buf[n++] = '-'; /* -0.0 */
    n += vpq_dtoa_int(buf + n, (int64_t)v);
    memcpy(buf + n, ".0", 3);
    return n + 2;
  }
  char digits[DIGITS_SIZE];
  int exp10;
  size_t n = a >= 0x1p-33 && a < 0x1p52 ? shortest_exact(a, digits, &exp10) : shortest_general(a, digits, &exp10);
  return layout(buf, signbit(v), digits, n, exp10);
}
