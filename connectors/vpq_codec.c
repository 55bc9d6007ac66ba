/* vpq_codec.c — JSON-lines and CSV records decoded straight into columns, and the encoders.
 *
 * Decoding a JSON record is one pass over its bytes with no DOM and no allocation per field:
 *
 *   { "key" : value , ... }
 *      │        └─► the key's column known: parse the value into data[row]/null[row]
 *      │            unknown: skip_value() walks any shape with a 64-level stack in a bitmask
 *      └─► match_key(): the column after the previous one first (fields usually come in schema
 *          order), then a small open-addressing table of lower-cased names
 *
 * Strings are scanned 8 bytes at a time for a quote, a backslash, a control byte or a non-ASCII
 * byte; only then does the scanner look closer (escapes are validated, surrogates paired,
 * UTF-8 checked). A string with escapes is unescaped into one reusable buffer before it is
 * interned; others are interned from the record itself, through a small set-associative cache
 * (device ids, sites and regions repeat) in front of the string pool.
 *
 * Numbers are scanned once into (negative, up to 19 significant digits, decimal exponent).
 * Doubles come from Clinger's fast path (mantissa <= 2^53 and |exponent| <= 22: one correctly
 * rounded operation) and otherwise from strtod, so every result equals strtod's. Integers
 * (BIGINT, epoch-ms TIMESTAMP) come from the same digits, exactly: 1.0 and 1e3 are integers,
 * 1.5 is not.
 *
 * Errors are written as "<category>: <detail>"; the categories are fixed (see vpq_codec.h and
 * the dead-letter writer, which splits them at the first ": ").
 *
 * CSV lines split on commas outside quotes (RFC 4180: "" inside quotes is a quote). The header
 * maps field positions to columns; without one, fields map to columns by position.
 */
#include "vpq_codec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  JSON_MAX_DEPTH = 64, /* the record's own object is depth 1 */
  STR_CACHE = 32768,   /* entries of the interning cache (2 ways; a power of two) */
  ERR_VALUE_MAX = 40,  /* bytes of a bad value quoted in an error */
};

/* A cached string: its two key words (see string_words), which are the whole string when it
 * has at most 16 bytes, so that most hits compare nothing else. An all-zero entry is the empty
 * string, id 0, which is right. */
typedef struct str_cache_entry {
  uint64_t a, b;
  uint32_t len;
  uint32_t id;
} str_cache_entry;

struct vpq_decoder {
  vpq_format format;
  const vpq_schema *schema;
  vpq_intern *intern;
  size_t max_bytes;
  int ncols;
  size_t *name_len;
  bool *plain; /* the name holds no quote, backslash or control byte: it can be matched raw */
  int *slots; /* lower-cased name hash → column + 1; 0 = empty */
  size_t nslots;
  int *csv_map; /* CSV field position → column, or -1 */
  int csv_nfields;
  char *scratch; /* unescaped strings and number text for strtod */
  size_t scratch_cap;
  str_cache_entry cache[STR_CACHE];
};

static bool fail(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool fail(char *err, size_t err_size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_size, fmt, ap);
  va_end(ap);
  return false;
}

static char *scratch(vpq_decoder *dec, size_t size) {
  if (size + 1 > dec->scratch_cap) {
    size_t cap = dec->scratch_cap ? dec->scratch_cap : 256;
    while (cap < size + 1) cap *= 2;
    dec->scratch = realloc(dec->scratch, cap);
    if (!dec->scratch) abort();
    dec->scratch_cap = cap;
  }
  return dec->scratch;
}

/* ===== Column names: exact match at the expected position, else a case-insensitive table ===== */

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c; }

static uint64_t name_hash(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) h = (h ^ lower((unsigned char)s[i])) * 1099511628211ull;
  return h ^ (h >> 31);
}

static bool name_equal(const char *a, size_t alen, const char *b, size_t blen) {
  if (alen != blen) return false;
  for (size_t i = 0; i < alen; i++)
    if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return false;
  return true;
}

/* Returns the column named `s` (any case), or -1. */
static int lookup_column(const vpq_decoder *dec, const char *s, size_t len) {
  size_t mask = dec->nslots - 1;
  for (size_t at = name_hash(s, len) & mask;; at = (at + 1) & mask) {
    int slot = dec->slots[at];
    if (!slot) return -1;
    if (name_equal(s, len, dec->schema->cols[slot - 1].name, dec->name_len[slot - 1])) return slot - 1;
  }
}

vpq_decoder *vpq_decoder_new(vpq_format format, const vpq_schema *schema, vpq_intern *intern) {
  vpq_decoder *dec = calloc(1, sizeof *dec);
  if (!dec) abort();
  dec->format = format;
  dec->schema = schema;
  dec->intern = intern;
  dec->ncols = schema->ncols;
  size_t n = schema->ncols > 0 ? (size_t)schema->ncols : 1;
  dec->name_len = calloc(n, sizeof *dec->name_len);
  dec->plain = calloc(n, sizeof *dec->plain);
  dec->nslots = 8;
  while (dec->nslots < 2 * n) dec->nslots *= 2;
  dec->slots = calloc(dec->nslots, sizeof *dec->slots);
  dec->csv_map = calloc(n, sizeof *dec->csv_map);
  if (!dec->name_len || !dec->plain || !dec->slots || !dec->csv_map) abort();
  for (int c = 0; c < schema->ncols; c++) {
    const char *name = schema->cols[c].name;
    dec->name_len[c] = strlen(name);
    dec->plain[c] = true;
    for (const char *p = name; *p; p++) dec->plain[c] &= *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20;
    dec->csv_map[c] = c;
    if (lookup_column(dec, name, dec->name_len[c]) >= 0) continue; /* the first of equal names wins */
    size_t at = name_hash(name, dec->name_len[c]) & (dec->nslots - 1);
    while (dec->slots[at]) at = (at + 1) & (dec->nslots - 1);
    dec->slots[at] = c + 1;
  }
  dec->csv_nfields = schema->ncols;
  return dec;
}

void vpq_decoder_free(vpq_decoder *dec) {
  if (!dec) return;
  free(dec->name_len);
  free(dec->plain);
  free(dec->slots);
  free(dec->csv_map);
  free(dec->scratch);
  free(dec);
}

void vpq_decoder_set_max_bytes(vpq_decoder *dec, size_t max_bytes) { dec->max_bytes = max_bytes; }

/* ===== Strings: interning cache, UTF-8, escapes ===== */

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the 8-byte string scan assumes little-endian words");

static const uint64_t ONES = 0x0101010101010101ull, HIGHS = 0x8080808080808080ull;

/* Flags (high bit of each byte) the bytes of a little-endian word that are a quote, a backslash,
 * below 0x20 or above 0x7F. Bytes above the first flagged one may be flagged falsely (borrows),
 * the first one never is: its index is ctz(mask) / 8. */
static uint64_t swar_special(uint64_t w) {
  uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
  return (((w - ONES * 0x20) & ~w) | ((q - ONES) & ~q) | ((b - ONES) & ~b) | w) & HIGHS;
}

/* Compares n bytes; short keys and strings (the common case) without a call. */
static inline bool bytes_equal(const char *a, const char *b, size_t n) {
  uint64_t x, y, u, v;
  if (n >= 8 && n <= 16) {
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
    memcpy(&u, a + n - 8, 8);
    memcpy(&v, b + n - 8, 8);
    return ((x ^ y) | (u ^ v)) == 0;
  }
  if (n >= 4 && n < 8) {
    uint32_t x4, y4, u4, v4;
    memcpy(&x4, a, 4);
    memcpy(&y4, b, 4);
    memcpy(&u4, a + n - 4, 4);
    memcpy(&v4, b + n - 4, 4);
    return ((x4 ^ y4) | (u4 ^ v4)) == 0;
  }
  if (n < 4) {
    for (size_t i = 0; i < n; i++)
      if (a[i] != b[i]) return false;
    return true;
  }
  return memcmp(a, b, n) == 0;
}

/* Two words made of the string's bytes (first and last 8, first and last 4, or three single
 * bytes): for up to 16 bytes they hold every byte, so equal words mean equal strings. */
static inline void string_words(const char *s, size_t len, uint64_t *a, uint64_t *b) {
  *a = *b = 0;
  if (len >= 8) {
    memcpy(a, s, 8);
    memcpy(b, s + len - 8, 8);
  } else if (len >= 4) {
    uint32_t x, y;
    memcpy(&x, s, 4);
    memcpy(&y, s + len - 4, 4);
    *a = x;
    *b = y;
  } else if (len > 0) {
    *a = (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[len / 2] << 8 |
         (uint64_t)(unsigned char)s[len - 1] << 16;
  }
}

/* Interns through a 2-way set-associative cache: a hit costs two loads, one multiply and a
 * compare of two words; a miss moves the set's first entry to its second way. */
static int64_t intern_cached(vpq_decoder *dec, const char *s, size_t len) {
  uint64_t a, b;
  string_words(s, len, &a, &b);
  /* a 64x64->128 multiply folded in half mixes every input bit into every output bit */
  __uint128_t m = (__uint128_t)(a ^ 0x9e3779b97f4a7c15ull) * (b ^ len ^ 0xff51afd7ed558ccdull);
  uint64_t h = (uint64_t)m ^ (uint64_t)(m >> 64);
  str_cache_entry *set = &dec->cache[(h & (STR_CACHE / 2 - 1)) * 2];
  for (int way = 0; way < 2; way++) {
    const str_cache_entry *e = &set[way];
    if (e->len == len && e->a == a && e->b == b &&
        (len <= 16 || bytes_equal(vpq_intern_text(dec->intern, e->id, NULL), s, len)))
      return e->id;
  }
  int64_t id = vpq_intern_id(dec->intern, s, len);
  if (len <= UINT32_MAX && id <= UINT32_MAX) {
    set[1] = set[0];
    set[0] = (str_cache_entry){a, b, (uint32_t)len, (uint32_t)id};
  }
  return id;
}

/* Returns the length of the valid UTF-8 sequence at p (1..4), or 0 when it is invalid. */
static int utf8_length(const unsigned char *p, const unsigned char *end) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;
  if (c < 0xE0) return end - p >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c < 0xF0) {
    if (end - p < 3) return 0;
    unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 ? 3 : 0;
  }
  if (c < 0xF5) {
    if (end - p < 4) return 0;
    unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80 ? 4 : 0;
  }
  return 0;
}

/* Offset of the first byte of [s, s+len) that is not valid UTF-8, or -1. */
static long utf8_invalid_at(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  while (p < end) {
    if (end - p >= 8) {
      uint64_t w;
      memcpy(&w, p, 8);
      if (!(w & HIGHS)) {
        p += 8;
        continue;
      }
    }
    int n = utf8_length(p, end);
    if (!n) return (long)(p - (const unsigned char *)s);
    p += n;
  }
  return -1;
}

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Reads \uXXXX at p; -1 when there is none. */
static long read_u_escape(const unsigned char *p, const unsigned char *end) {
  if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return -1;
  long v = 0;
  for (int i = 2; i < 6; i++) {
    int h = hex_value(p[i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

static size_t put_utf8(char *out, unsigned long cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | cp >> 12);
    out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | cp >> 18);
  out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
  out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Unescapes the body of a validated JSON string into the scratch buffer (never longer). */
static const char *json_unescape(vpq_decoder *dec, const char *s, size_t len, size_t *out_len) {
  char *out = scratch(dec, len);
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  size_t n = 0;
  while (p < end) {
    if (*p != '\\') {
      out[n++] = (char)*p++;
      continue;
    }
    switch (p[1]) {
    case 'b': out[n++] = '\b'; break;
    case 'f': out[n++] = '\f'; break;
    case 'n': out[n++] = '\n'; break;
    case 'r': out[n++] = '\r'; break;
    case 't': out[n++] = '\t'; break;
    case 'u': {
      unsigned long cp = (unsigned long)read_u_escape(p, end);
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned long low = (unsigned long)read_u_escape(p + 6, end);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        p += 6;
      }
      n += put_utf8(out + n, cp);
      p += 4;
      break;
    }
    default: out[n++] = (char)p[1]; break; /* " \ / */
    }
    p += 2;
  }
  *out_len = n;
  return out;
}

/* ===== Numbers ===== */

typedef struct num {
  const char *text; /* the number's text in the record */
  size_t len;
  uint64_t mant;     /* up to 19 significant digits */
  int exp10;         /* value = mant * 10^exp10 (when nothing was dropped) */
  bool neg;
  bool dropped_int;  /* a nonzero digit beyond the 19th was dropped from the integer part */
  bool dropped_frac; /* ... from the fraction */
} num;

/* True when the 8 bytes are all ASCII digits. */
static inline bool eight_digits(const char *p) {
  uint64_t w;
  memcpy(&w, p, 8);
  return (w & 0xF0F0F0F0F0F0F0F0ull) == 0x3030303030303030ull &&
         ((w + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) == 0x3030303030303030ull;
}

/* The value of 8 ASCII digits (the first is the most significant), with three multiplies. */
static inline uint64_t eight_digits_value(const char *p) {
  uint64_t w;
  memcpy(&w, p, 8);
  w -= 0x3030303030303030ull;
  w = (w * 10 + (w >> 8)) & 0x00FF00FF00FF00FFull;
  w = (w * 100 + (w >> 16)) & 0x0000FFFF0000FFFFull;
  return (w * 10000 + (w >> 32)) & 0xFFFFFFFFull;
}

/* number -> '-'? int frac? exp? (and '+' in front when `plus`); returns the end of the number,
 * or NULL when the text at p is not one. */
static const char *scan_number(const char *p, const char *end, bool plus, num *n) {
  *n = (num){.text = p};
  if (p < end && (*p == '-' || (plus && *p == '+'))) n->neg = *p++ == '-';
  if (p >= end || *p < '0' || *p > '9') return NULL;
  int nd = 0;
  if (*p == '0') {
    p++;
  } else {
    for (; nd <= 11 && end - p >= 8 && eight_digits(p); p += 8, nd += 8)
      n->mant = n->mant * 100000000 + eight_digits_value(p);
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
      if (nd < 19) {
        n->mant = n->mant * 10 + (uint64_t)(*p - '0');
        nd++;
      } else {
        n->exp10++;
        n->dropped_int |= *p != '0';
      }
    }
  }
  if (p < end && *p == '.') {
    p++;
    if (p >= end || *p < '0' || *p > '9') return NULL;
    for (; nd > 0 && nd <= 11 && end - p >= 8 && eight_digits(p); p += 8, nd += 8, n->exp10 -= 8)
      n->mant = n->mant * 100000000 + eight_digits_value(p);
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
      if (nd == 0 && *p == '0') {
        n->exp10--;
      } else if (nd < 19) {
        n->mant = n->mant * 10 + (uint64_t)(*p - '0');
        n->exp10--;
        nd++;
      } else {
        n->dropped_frac |= *p != '0';
      }
    }
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    bool eneg = false;
    if (p < end && (*p == '+' || *p == '-')) eneg = *p++ == '-';
    if (p >= end || *p < '0' || *p > '9') return NULL;
    int e = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++)
      if (e < 100000) e = e * 10 + (*p - '0');
    n->exp10 += eneg ? -e : e;
  }
  n->len = (size_t)(p - n->text);
  return p;
}

/* The number's double through strtod (the slow path); false when it is out of range. */
static bool __attribute__((noinline)) num_double_strtod(vpq_decoder *dec, const num *n, double *out) {
  char *text = scratch(dec, n->len);
  memcpy(text, n->text, n->len);
  text[n->len] = '\0';
  *out = strtod(text, NULL);
  return isfinite(*out);
}

/* The number's double, equal to strtod's; false when it overflows (JSON has no infinity). */
static inline bool num_double(vpq_decoder *dec, const num *n, double *out) {
  static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  if (n->dropped_int || n->dropped_frac || n->mant > (1ull << 53) || n->exp10 < -22 || n->exp10 > 22)
    return num_double_strtod(dec, n, out);
  double d = (double)n->mant; /* exact, and so is the power of ten: one rounding */
  d = n->exp10 < 0 ? d / pow10[-n->exp10] : d * pow10[n->exp10];
  *out = n->neg ? -d : d;
  return true;
}

typedef enum int_result { INT_OK, INT_FRACTION, INT_RANGE } int_result;

/* The number as an exact int64: 1.0 and 1e3 are integers, 1.5 is not. */
static int_result num_int(const num *n, int64_t *out) {
  if (n->dropped_int) return INT_RANGE;
  if (n->dropped_frac) return INT_FRACTION;
  uint64_t m = n->mant;
  int e = n->exp10;
  if (m == 0) {
    *out = 0;
    return INT_OK;
  }
  for (; e < 0; e++) {
    if (m % 10) return INT_FRACTION;
    m /= 10;
  }
  for (; e > 0; e--) {
    if (m > UINT64_MAX / 10) return INT_RANGE;
    m *= 10;
  }
  if (n->neg) {
    if (m > (uint64_t)INT64_MAX + 1) return INT_RANGE;
    *out = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
  } else {
    if (m > (uint64_t)INT64_MAX) return INT_RANGE;
    *out = (int64_t)m;
  }
  return INT_OK;
}

/* ===== Timestamps ===== */

static int read_digits(const char *p, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    v = v * 10 + (p[i] - '0');
  }
  return v;
}

static int days_in_month(int y, int m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* time -> YYYY-MM-DD [('T' | ' ') HH:MM [:SS [.fraction]] ['Z' | ('+'|'-') HH[:]MM]] */
const char *vpq_json_field(const char *text, size_t len, const char *name) {
  size_t n = strlen(name);
  for (const char *p = text; p + n + 3 <= text + len; p++) {
    if (p[0] != '"' || strncmp(p + 1, name, n) != 0 || p[n + 1] != '"') continue;
    const char *v = p + n + 2;
    while (v < text + len && (*v == ' ' || *v == ':')) v++;
    return v < text + len ? v : NULL;
  }
  return NULL;
}

bool vpq_timestamp_parse(const char *text, size_t len, int64_t *ms) {
  const char *p = text, *end = text + len;
  if (len < 10 || p[4] != '-' || p[7] != '-') return false;
  int y = read_digits(p, 4), mo = read_digits(p + 5, 2), d = read_digits(p + 8, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return false;
  p += 10;
  int h = 0, mi = 0, s = 0, frac = 0, offset = 0;
  if (p < end) {
    if (*p != 'T' && *p != 't' && *p != ' ') return false;
    p++;
    if (end - p < 5 || p[2] != ':') return false;
    h = read_digits(p, 2);
    mi = read_digits(p + 3, 2);
    p += 5;
    if (p < end && *p == ':') {
      if (end - p < 3 || (s = read_digits(p + 1, 2)) < 0) return false;
      p += 3;
      if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') return false;
        for (int i = 0; i < 3; i++) frac = frac * 10 + (p < end && *p >= '0' && *p <= '9' ? *p++ - '0' : 0);
        while (p < end && *p >= '0' && *p <= '9') p++;
      }
    }
    if (h < 0 || h > 23 || mi < 0 || mi > 59 || s > 59) return false;
    if (p < end && (*p == 'Z' || *p == 'z')) {
      p++;
    } else if (p < end && (*p == '+' || *p == '-')) {
      int sign = *p++ == '-' ? -1 : 1;
      if (end - p < 4) return false;
      int oh = read_digits(p, 2), om;
      if (p[2] == ':') {
        if (end - p < 5) return false;
        om = read_digits(p + 3, 2);
        p += 5;
      } else {
        om = read_digits(p + 2, 2);
        p += 4;
      }
      if (oh < 0 || oh > 23 || om < 0 || om > 59) return false;
      offset = sign * (oh * 60 + om);
    }
  }
  if (p != end) return false;
  int64_t days = days_from_civil(y, mo, d);
  *ms = (((days * 24 + h) * 60 + mi - offset) * 60 + s) * 1000 + frac;
  return true;
}

/* ===== JSON decoding ===== */

typedef struct jp {
  vpq_decoder *dec;
  const char *base, *p, *end;
  char *err;
  size_t err_size;
} jp;

typedef struct jstr {
  const char *s; /* the body, between the quotes */
  size_t len;
  bool esc;
} jstr;

static int peek(const jp *j) { return j->p < j->end ? (unsigned char)*j->p : -1; }

static inline void skip_ws(jp *j) {
  const char *p = j->p;
  while (p < j->end && (unsigned char)*p <= ' ' && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  j->p = p;
}

static long offset_of(const jp *j) { return (long)(j->p - j->base); }

/* "invalid JSON: unexpected ... at byte N" for the byte at j->p. */
static bool unexpected(jp *j) {
  int c = peek(j);
  if (c < 0) return fail(j->err, j->err_size, "invalid JSON: unexpected end of input");
  if (c >= 0x20 && c < 0x7F)
    return fail(j->err, j->err_size, "invalid JSON: unexpected '%c' at byte %ld", c, offset_of(j));
  return fail(j->err, j->err_size, "invalid JSON: unexpected byte 0x%02X at byte %ld", (unsigned)c, offset_of(j));
}

/* string -> '"' char* '"'; j->p is at the opening quote and ends past the closing one. */
static bool scan_string(jp *j, jstr *out) {
  const unsigned char *p = (const unsigned char *)j->p + 1, *end = (const unsigned char *)j->end;
  const unsigned char *start = p;
  bool esc = false;
  const char *problem = NULL;
  for (;;) {
    while (end - p >= 8) {
      uint64_t w;
      memcpy(&w, p, 8);
      uint64_t mask = swar_special(w);
      if (mask) {
        p += __builtin_ctzll(mask) / 8;
        break;
      }
      p += 8;
    }
    if (p >= end) {
      j->p = (const char *)p;
      return fail(j->err, j->err_size, "invalid JSON: unterminated string");
    }
    unsigned char c = *p;
    if (c == '"') break;
    if (c == '\\') {
      esc = true;
      unsigned char e = p + 1 < end ? p[1] : 0;
      if (e == 'u') {
        long cp = read_u_escape(p, end);
        if (cp < 0) {
          problem = "invalid escape";
          break;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          long low = read_u_escape(p + 6, end);
          if (low < 0xDC00 || low > 0xDFFF) {
            problem = "unpaired surrogate escape";
            break;
          }
          p += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          problem = "unpaired surrogate escape";
          break;
        }
        p += 6;
      } else if (e && strchr("\"\\/bfnrt", e)) {
        p += 2;
      } else {
        problem = "invalid escape";
        break;
      }
    } else if (c < 0x20) {
      j->p = (const char *)p;
      return fail(j->err, j->err_size, "invalid JSON: control character 0x%02X in a string at byte %ld", c,
                  offset_of(j));
    } else if (c < 0x80) {
      p++;
    } else {
      int n = utf8_length(p, end);
      if (!n) {
        j->p = (const char *)p;
        return fail(j->err, j->err_size, "invalid UTF-8: byte 0x%02X in a string at byte %ld", c, offset_of(j));
      }
      p += n;
    }
  }
  j->p = (const char *)p;
  if (problem) return fail(j->err, j->err_size, "invalid JSON: %s at byte %ld", problem, offset_of(j));
  *out = (jstr){(const char *)start, (size_t)(p - start), esc};
  j->p++;
  return true;
}

static bool scan_literal(jp *j, const char *word, size_t n) {
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) return unexpected(j);
  j->p += n;
  return true;
}

static bool json_number(jp *j, num *n) {
  const char *stop = scan_number(j->p, j->end, false, n);
  if (!stop) return fail(j->err, j->err_size, "invalid JSON: invalid number at byte %ld", offset_of(j));
  j->p = stop;
  return true;
}

/* member -> string ws ':' ws; j->p is at the key's opening quote. */
static bool skip_member_key(jp *j) {
  jstr key;
  if (peek(j) != '"') return unexpected(j);
  if (!scan_string(j, &key)) return false;
  skip_ws(j);
  if (peek(j) != ':') return unexpected(j);
  j->p++;
  return true;
}

/* value -> string | number | object | array | true | false | null: skipped but validated.
 * `depth` is the depth of the container holding the value. Iterative: a bitmask remembers,
 * per open container, whether it is an object. */
static bool skip_value(jp *j, int depth) {
  uint64_t objects = 0;
  int level = 0;
  for (;;) {
    skip_ws(j);
    int c = peek(j);
    jstr s;
    num n;
    if (c == '{' || c == '[') {
      if (depth + level + 1 > JSON_MAX_DEPTH)
        return fail(j->err, j->err_size, "too deeply nested: more than %d levels at byte %ld", JSON_MAX_DEPTH,
                    offset_of(j));
      objects = (objects & ~(1ull << level)) | (uint64_t)(c == '{') << level;
      level++;
      j->p++;
      skip_ws(j);
      if (peek(j) != (c == '{' ? '}' : ']')) {
        if (c == '{' && !skip_member_key(j)) return false;
        continue; /* the first element's value */
      }
      j->p++;
      level--;
    } else if (c == '"') {
      if (!scan_string(j, &s)) return false;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      if (!json_number(j, &n)) return false;
    } else if (c == 't') {
      if (!scan_literal(j, "true", 4)) return false;
    } else if (c == 'f') {
      if (!scan_literal(j, "false", 5)) return false;
    } else if (c == 'n') {
      if (!scan_literal(j, "null", 4)) return false;
    } else {
      return unexpected(j);
    }
    /* after a value: close containers, or go on to the next element */
    for (;;) {
      if (level == 0) return true;
      bool obj = objects >> (level - 1) & 1;
      skip_ws(j);
      c = peek(j);
      if (c == (obj ? '}' : ']')) {
        j->p++;
        level--;
        continue;
      }
      if (c != ',') return unexpected(j);
      j->p++;
      skip_ws(j);
      if (obj && !skip_member_key(j)) return false;
      break;
    }
  }
}

/* Writes at most ERR_VALUE_MAX bytes of `s` (cut at a character boundary), "..." when cut. */
static void value_excerpt(char *buf, size_t size, const char *s, size_t len) {
  size_t n = len;
  if (n > ERR_VALUE_MAX) {
    n = ERR_VALUE_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
  }
  snprintf(buf, size, "%.*s%s", (int)n, s, n < len ? "..." : "");
}

/* "type mismatch: field `soc`: expected DOUBLE, got string \"high\"" */
static bool mismatch(jp *j, int col, const char *what, const char *text, size_t len) {
  char excerpt[ERR_VALUE_MAX + 8];
  value_excerpt(excerpt, sizeof excerpt, text, len);
  const vpq_column *c = &j->dec->schema->cols[col];
  return fail(j->err, j->err_size, "type mismatch: field `%s`: expected %s, got %s%s%s", c->name,
              vpq_type_name(c->type), what, len ? " " : "", excerpt);
}

/* The value of a known field, parsed into its column. */
static bool json_field(jp *j, int col, vpq_vec *vec, int row) {
  vpq_decoder *dec = j->dec;
  const char *name = dec->schema->cols[col].name;
  vpq_type type = dec->schema->cols[col].type;
  const char *at = j->p;
  char excerpt[ERR_VALUE_MAX + 8];
  int c = peek(j);
  if (c == '"') {
    jstr s;
    if (!scan_string(j, &s)) return false;
    if (type != VPQ_TYPE_STRING && type != VPQ_TYPE_TIMESTAMP)
      return mismatch(j, col, "string", at, (size_t)(j->p - at));
    const char *text = s.s;
    size_t len = s.len;
    if (s.esc) text = json_unescape(dec, s.s, s.len, &len);
    if (type == VPQ_TYPE_STRING) {
      vec->data[row].i = intern_cached(dec, text, len);
    } else if (!vpq_timestamp_parse(text, len, &vec->data[row].i)) {
      value_excerpt(excerpt, sizeof excerpt, at, (size_t)(j->p - at));
      return fail(j->err, j->err_size, "invalid timestamp: field `%s`: %s is not an ISO-8601 time", name, excerpt);
    }
    vec->null[row] = 0;
    return true;
  }
  if (c == '-' || (c >= '0' && c <= '9')) {
    num n;
    if (!json_number(j, &n)) return false;
    int_result r;
    switch (type) {
    case VPQ_TYPE_DOUBLE:
      if (num_double(dec, &n, &vec->data[row].d)) break;
      value_excerpt(excerpt, sizeof excerpt, n.text, n.len);
      return fail(j->err, j->err_size, "type mismatch: field `%s`: %s is out of range for DOUBLE", name, excerpt);
    case VPQ_TYPE_BIGINT:
    case VPQ_TYPE_TIMESTAMP:
      r = num_int(&n, &vec->data[row].i);
      if (r == INT_OK) break;
      value_excerpt(excerpt, sizeof excerpt, n.text, n.len);
      if (type == VPQ_TYPE_TIMESTAMP)
        return fail(j->err, j->err_size, "invalid timestamp: field `%s`: %s is not whole epoch milliseconds", name,
                    excerpt);
      if (r == INT_RANGE)
        return fail(j->err, j->err_size, "type mismatch: field `%s`: %s is out of range for BIGINT", name, excerpt);
      return mismatch(j, col, "number", n.text, n.len);
    case VPQ_TYPE_STRING:
      vec->data[row].i = intern_cached(dec, n.text, n.len);
      break;
    default:
      return mismatch(j, col, "number", n.text, n.len);
    }
    vec->null[row] = 0;
    return true;
  }
  if (c == 't' || c == 'f') {
    if (!(c == 't' ? scan_literal(j, "true", 4) : scan_literal(j, "false", 5))) return false;
    if (type != VPQ_TYPE_BOOLEAN) return mismatch(j, col, "boolean", at, (size_t)(j->p - at));
    vec->data[row].i = c == 't';
    vec->null[row] = 0;
    return true;
  }
  if (c == 'n') {
    if (!scan_literal(j, "null", 4)) return false;
    vec->null[row] = 1; /* a later duplicate key wins */
    vec->data[row].i = 0;
    return true;
  }
  if (c == '{') return mismatch(j, col, "an object", "", 0);
  if (c == '[') return mismatch(j, col, "an array", "", 0);
  return unexpected(j);
}

/* Finds the column of a scanned key, in any case. */
static int match_key(vpq_decoder *dec, const jstr *key) {
  if (!key->esc) return lookup_column(dec, key->s, key->len);
  size_t len;
  const char *text = json_unescape(dec, key->s, key->len, &len);
  return lookup_column(dec, text, len);
}

/* record -> ws '{' ws [member (',' ws member)*] '}' ws;  member -> string ws ':' ws value ws */
static bool json_row(vpq_decoder *dec, const char *text, size_t len, vpq_batch *out, int row, char *err,
                     size_t err_size) {
  jp j = {dec, text, text, text + len, err, err_size};
  uint64_t seen = 0; /* columns given a value (with at most 64 columns; else all were set NULL) */
  skip_ws(&j);
  int c = peek(&j);
  if (c != '{') {
    static const char *const kinds[][2] = {{"[", "an array"}, {"\"", "a string"}, {"true", "true"},
                                           {"false", "false"}, {"null", "null"}};
    if (c == '-' || (c >= '0' && c <= '9')) return fail(err, err_size, "not an object: the record is a number");
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
      size_t n = strlen(kinds[k][0]);
      if ((size_t)(j.end - j.p) >= n && memcmp(j.p, kinds[k][0], n) == 0)
        return fail(err, err_size, "not an object: the record is %s", kinds[k][1]);
    }
    return unexpected(&j);
  }
  j.p++;
  skip_ws(&j);
  if (peek(&j) == '}') {
    j.p++;
  } else {
    int expect = 0, col;
    for (;;) {
      if (peek(&j) != '"') return unexpected(&j);
      size_t n = expect < dec->ncols ? dec->name_len[expect] : 0;
      if (n && dec->plain[expect] && (size_t)(j.end - j.p) > n + 1 && j.p[n + 1] == '"' &&
          bytes_equal(j.p + 1, dec->schema->cols[expect].name, n)) {
        col = expect; /* the next column in schema order, exactly as named: no scan, no lookup */
        j.p += n + 2;
      } else {
        jstr key;
        if (!scan_string(&j, &key)) return false;
        col = match_key(dec, &key);
      }
      skip_ws(&j);
      if (peek(&j) != ':') return unexpected(&j);
      j.p++;
      skip_ws(&j);
      if (col < 0 || dec->schema->cols[col].unread) {
        if (!skip_value(&j, 1)) return false; /* not in the schema, or no query reads it */
        if (col >= 0) expect = col + 1;
      } else {
        if (!json_field(&j, col, &out->cols[col], row)) return false;
        seen |= 1ull << (col & 63);
        expect = col + 1;
      }
      skip_ws(&j);
      c = peek(&j);
      if (c == '}') {
        j.p++;
        break;
      }
      if (c != ',') return unexpected(&j);
      j.p++;
      skip_ws(&j);
    }
  }
  skip_ws(&j);
  if (j.p != j.end)
    return fail(err, err_size, "invalid JSON: unexpected text after the object at byte %ld", offset_of(&j));
  if (dec->ncols <= 64) {
    for (int c = 0; c < dec->ncols; c++) {
      if (seen >> c & 1) continue;
      out->cols[c].null[row] = 1;
      out->cols[c].data[row].i = 0;
    }
  }
  return true;
}

/* ===== CSV decoding ===== */

typedef struct csv_field {
  const char *s; /* the text (after the opening quote when quoted) */
  size_t len;
  bool quoted;
  bool esc; /* holds "" or text after the closing quote: read it through csv_unquote */
} csv_field;

/* field -> '"' (char | '""')* '"' text* | text*;  returns where the field ends (',' or end).
 * Lenient: text after a closing quote belongs to the field; an unclosed quote runs to the end. */
static const char *csv_next(const char *p, const char *end, csv_field *f) {
  if (p < end && *p == '"') {
    const char *s = ++p;
    bool esc = false;
    for (;;) {
      const char *q = memchr(p, '"', (size_t)(end - p));
      if (!q) {
        *f = (csv_field){s, (size_t)(end - s), true, esc};
        return end;
      }
      if (q + 1 < end && q[1] == '"') {
        esc = true;
        p = q + 2;
        continue;
      }
      p = q + 1;
      if (p < end && *p != ',') {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        p = comma ? comma : end;
        esc = true;
      }
      *f = (csv_field){s, (size_t)(esc ? p - s : q - s), true, esc};
      return p;
    }
  }
  const char *comma = memchr(p, ',', (size_t)(end - p));
  const char *stop = comma ? comma : end;
  *f = (csv_field){p, (size_t)(stop - p), false, false};
  return stop;
}

/* The text of an escaped quoted field ("" → ", the closing quote dropped) in the scratch buffer. */
static const char *csv_unquote(vpq_decoder *dec, const csv_field *f, size_t *len) {
  char *out = scratch(dec, f->len);
  size_t n = 0;
  bool in_quotes = true;
  for (size_t i = 0; i < f->len; i++) {
    char c = f->s[i];
    if (c == '"' && in_quotes) {
      if (i + 1 < f->len && f->s[i + 1] == '"') i++;
      else in_quotes = false;
      if (!in_quotes) continue;
    }
    out[n++] = c;
  }
  *len = n;
  return out;
}

static bool csv_value(vpq_decoder *dec, int col, const csv_field *f, vpq_vec *vec, int row, char *err,
                      size_t err_size) {
  const vpq_column *column = &dec->schema->cols[col];
  const char *text = f->s;
  size_t len = f->len;
  if (f->esc) text = csv_unquote(dec, f, &len);
  if (len == 0 && (!f->quoted || column->type != VPQ_TYPE_STRING)) return true; /* NULL */
  char excerpt[ERR_VALUE_MAX + 8];
  const char *end = text + len;
  num n;
  int64_t i;
  switch (column->type) {
  case VPQ_TYPE_STRING:
    vec->data[row].i = intern_cached(dec, text, len);
    break;
  case VPQ_TYPE_BOOLEAN:
    if (name_equal(text, len, "true", 4)) vec->data[row].i = 1;
    else if (name_equal(text, len, "false", 5)) vec->data[row].i = 0;
    else goto mismatch;
    break;
  case VPQ_TYPE_DOUBLE:
    if (scan_number(text, end, true, &n) != end) goto mismatch;
    if (!num_double(dec, &n, &vec->data[row].d)) goto mismatch;
    break;
  case VPQ_TYPE_BIGINT:
    if (scan_number(text, end, true, &n) != end || num_int(&n, &i) != INT_OK) goto mismatch;
    vec->data[row].i = i;
    break;
  case VPQ_TYPE_TIMESTAMP:
    value_excerpt(excerpt, sizeof excerpt, text, len);
    if (scan_number(text, end, true, &n) == end) {
      if (num_int(&n, &i) != INT_OK)
        return fail(err, err_size, "invalid timestamp: field `%s`: %s is not whole epoch milliseconds", column->name,
                    excerpt);
    } else if (!vpq_timestamp_parse(text, len, &i)) {
      return fail(err, err_size, "invalid timestamp: field `%s`: \"%s\" is not an ISO-8601 time", column->name,
                  excerpt);
    }
    vec->data[row].i = i;
    break;
  default:
    goto mismatch;
  }
  vec->null[row] = 0;
  return true;
mismatch:
  value_excerpt(excerpt, sizeof excerpt, text, len);
  return fail(err, err_size, "type mismatch: field `%s`: expected %s, got \"%s\"", column->name,
              vpq_type_name(column->type), excerpt);
}

/* line -> field (',' field)*: the field count is checked before any value's error is reported. */
static bool csv_row(vpq_decoder *dec, const char *text, size_t len, vpq_batch *out, int row, char *err,
                    size_t err_size) {
  long bad = utf8_invalid_at(text, len);
  if (bad >= 0)
    return fail(err, err_size, "invalid UTF-8: byte 0x%02X at byte %ld", (unsigned char)text[bad], bad);
  const char *p = text, *end = text + len;
  int nfields = 0;
  bool ok = true;
  for (;;) {
    csv_field f;
    p = csv_next(p, end, &f);
    int col = nfields < dec->csv_nfields ? dec->csv_map[nfields] : -1;
    if (col >= 0 && dec->schema->cols[col].unread) out->cols[col].null[row] = 1; /* no query reads it */
    else if (col >= 0 && ok) ok = csv_value(dec, col, &f, &out->cols[col], row, err, err_size);
    nfields++;
    if (p == end) break;
    p++;
  }
  if (nfields != dec->csv_nfields)
    return fail(err, err_size, "wrong field count: expected %d fields, got %d", dec->csv_nfields, nfields);
  return ok;
}

bool vpq_decoder_csv_header(vpq_decoder *dec, const char *line, size_t len, char *err, size_t err_size) {
  if (len > 0 && line[len - 1] == '\r') len--;
  if (len == 0) return fail(err, err_size, "the header line is empty");
  const char *end = line + len;
  csv_field f;
  int nfields = 1;
  for (const char *p = line; (p = csv_next(p, end, &f)) < end; p++) nfields++;
  int *map = malloc(sizeof *map * (size_t)nfields);
  if (!map) abort();
  int matched = 0;
  const char *p = line;
  for (int i = 0; i < nfields; i++, p++) {
    p = csv_next(p, end, &f);
    const char *name = f.s;
    size_t n = f.len;
    if (f.esc) name = csv_unquote(dec, &f, &n);
    while (n > 0 && *name == ' ') name++, n--;
    while (n > 0 && name[n - 1] == ' ') n--;
    map[i] = lookup_column(dec, name, n);
    for (int k = 0; k < i && map[i] >= 0; k++) {
      if (map[k] == map[i]) {
        const char *dup = dec->schema->cols[map[k]].name;
        free(map);
        return fail(err, err_size, "column `%s` appears twice in the header", dup);
      }
    }
    matched += map[i] >= 0;
  }
  if (matched == 0) {
    free(map);
    char excerpt[ERR_VALUE_MAX + 8];
    value_excerpt(excerpt, sizeof excerpt, line, len);
    return fail(err, err_size, "the header `%s` names none of the columns", excerpt);
  }
  free(dec->csv_map);
  dec->csv_map = map;
  dec->csv_nfields = nfields;
  return true;
}

bool vpq_decoder_row(vpq_decoder *dec, const char *text, size_t len, vpq_batch *out, int row, char *err,
                     size_t err_size) {
  if (dec->max_bytes && len > dec->max_bytes)
    return fail(err, err_size, "record too large: %zu bytes, the limit is %zu", len, dec->max_bytes);
  if (dec->format == VPQ_FORMAT_CSV || dec->ncols > 64) {
    for (int c = 0; c < dec->ncols; c++) {
      out->cols[c].null[row] = 1;
      out->cols[c].data[row].i = 0;
    }
  }
  if (dec->format == VPQ_FORMAT_CSV) {
    if (len > 0 && text[len - 1] == '\r') len--;
    return csv_row(dec, text, len, out, row, err, err_size);
  }
  return json_row(dec, text, len, out, row, err, err_size);
}

/* ===== Encoding ===== */

static void put_int(vpq_buf *out, int64_t v) {
  char tmp[24];
  int n = 0;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) tmp[n++] = '-';
  vpq_buf_reserve(out, (size_t)n);
  for (int i = 0; i < n; i++) out->data[out->len + (size_t)i] = tmp[n - 1 - i];
  out->len += (size_t)n;
  out->data[out->len] = '\0';
}

void vpq_json_encode_string(vpq_buf *out, const char *text, size_t len) {
  static const char hex[] = "0123456789abcdef";
  vpq_buf_append(out, "\"", 1);
  const unsigned char *p = (const unsigned char *)text, *end = p + len;
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

/* The common case without printf: a value in [1e-4, 1e15) with at most 17 digits after the
 * point. The fewest digits k for which m = round(|v|·10^k) gives m / 10^k == |v| (one
 * correctly rounded division, so the text reads back to v) are written as plain decimals.
 * Returns false when the value needs the general path. */
static bool format_short_decimal(char *buf, size_t size, double v) {
  double a = fabs(v);
  if (!(a >= 1e-4 && a < 1e15) || size < 40) return false;
  double scale = 1;
  for (int k = 1; k <= 17; k++) {
    scale *= 10;
    double m = round(a * scale);
    if (m >= 9007199254740992.0) return false;
    if (m / scale != a) continue;
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%lld", (long long)m);
    size_t at = 0;
    if (v < 0) buf[at++] = '-';
    if (n <= k) {
      buf[at++] = '0';
      buf[at++] = '.';
      for (int z = n; z < k; z++) buf[at++] = '0';
      memcpy(buf + at, digits, (size_t)n);
      at += (size_t)n;
    } else {
      memcpy(buf + at, digits, (size_t)(n - k));
      at += (size_t)(n - k);
      buf[at++] = '.';
      memcpy(buf + at, digits + n - k, (size_t)k);
      at += (size_t)k;
    }
    buf[at] = '\0';
    return true;
  }
  return false;
}

/* The double's shortest text that reads back to it, written as Python's repr() writes it:
 * plain decimals when the exponent is in [-4, 16), else d.ddde±XX; ".0" on integral plain
 * values. False when it is not finite. */
static bool format_double(char *buf, size_t size, double v) {
  if (!isfinite(v) || size < 40) return false;
  if (fabs(v) < 1e16 && v == (double)(int64_t)v && !(v == 0 && signbit(v))) {
    snprintf(buf, size, "%lld.0", (long long)v);
    return true;
  }
  if (format_short_decimal(buf, size, v)) return true;
  char sci[40];
  /* 15 significant digits always suffice to separate the shorter texts (trailing zeros are
   * stripped below); 16 or 17 are needed only when 15 do not read back. */
  for (int p = 15; p <= 17; p++) {
    snprintf(sci, sizeof sci, "%.*e", p - 1, v);
    if (p == 17 || strtod(sci, NULL) == v) break;
  }
  /* sci = [-]d[.ddd]e±XX: collect the digits and the exponent. */
  const char *at = sci;
  size_t n = 0;
  char digits[24];
  bool negative = *at == '-';
  if (negative) at++;
  for (; *at && *at != 'e'; at++)
    if (*at != '.') digits[n++] = *at;
  int exp10 = atoi(at + 1);
  while (n > 1 && digits[n - 1] == '0') n--;
  size_t len = 0;
  if (negative) buf[len++] = '-';
  if (exp10 >= -4 && exp10 < 16) {
    if (exp10 < 0) {
      buf[len++] = '0';
      buf[len++] = '.';
      for (int z = 0; z < -exp10 - 1; z++) buf[len++] = '0';
      memcpy(buf + len, digits, n);
      len += n;
    } else {
      for (int i = 0; i <= exp10; i++) buf[len++] = (size_t)i < n ? digits[i] : '0';
      buf[len++] = '.';
      if ((size_t)exp10 + 1 < n) {
        memcpy(buf + len, digits + exp10 + 1, n - (size_t)exp10 - 1);
        len += n - (size_t)exp10 - 1;
      } else {
        buf[len++] = '0';
      }
    }
    buf[len] = '\0';
  } else {
    buf[len++] = digits[0];
    if (n > 1) {
      buf[len++] = '.';
      memcpy(buf + len, digits + 1, n - 1);
      len += n - 1;
    }
    snprintf(buf + len, size - len, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
  }
  return true;
}

void vpq_json_encode_double(vpq_buf *out, double value) {
  char buf[40];
  vpq_buf_puts(out, format_double(buf, sizeof buf, value) ? buf : "null");
}

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
  char buf[40];
  size_t len;
  const char *text;
  switch (type) {
  case VPQ_TYPE_BOOLEAN:
    vpq_buf_puts(out, v.i ? "true" : "false");
    break;
  case VPQ_TYPE_DOUBLE:
    vpq_buf_puts(out, format_double(buf, sizeof buf, v.d) ? buf : null_text);
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
    vpq_buf_append(out, keys->text.data + from, keys->ends[c] - from);
    from = keys->ends[c];
    encode_value(out, &batch->cols[c], schema->cols[c].type, row, intern, false);
  }
  vpq_buf_append(out, "}", 1);
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
