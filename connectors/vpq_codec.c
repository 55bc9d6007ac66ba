/* vpq_codec.c — JSON-lines and CSV records decoded straight into columns (the encoders are in
 * vpq_codec_encode.c).
 *
 * Decoding a JSON record is one pass over its bytes with no DOM and no allocation per field:
 *
 *   { "key" : value , ... }
 *      │        └─► the key's column known: parse the value into data[row]/null[row]
 *      │            unknown: skip_value() walks any shape with a 64-level stack in a bitmask
 *      └─► match_key(): the column after the previous one first (fields usually come in schema
 *          order), then a small open-addressing table of lower-cased names
 *
 * Two decoders implement this. json_row_fast takes the common record (a flat object of plain
 * ASCII values, keys in schema order) with no error bookkeeping and gives up on anything else;
 * json_row then decodes the record from its start, whatever it holds, and words the errors. See
 * "the fast path" below for why they cannot disagree.
 *
 * Strings are scanned 8 bytes at a time for a quote, a backslash, a control byte or a non-ASCII
 * byte; only then does the scanner look closer (escapes are validated, surrogates paired,
 * UTF-8 checked). A string with escapes is unescaped into one reusable buffer before it is
 * interned; others are interned from the record itself, through a 3-way set-associative cache
 * (device ids, sites and regions repeat) in front of the string pool. A file source lets the
 * decoder defer that to the end of each batch (vpq_decoder_defer_strings): the cache sets are
 * prefetched as strings are found, and looked up once they have arrived.
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

#include "vpq_codec_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  JSON_MAX_DEPTH = 64, /* the record's own object is depth 1 */
  STR_WAYS = 3,        /* strings per set of the interning cache: one cache line */
  STR_SETS = 16384,    /* sets of the interning cache (a power of two) */
  STR_LEN_MAX = 255,   /* strings up to this length and ids below 2^24 are cached */
  ERR_VALUE_MAX = 40,  /* bytes of a bad value quoted in an error */
};

/* A set of the interning cache, one 64-byte cache line: per way, a string's two key words
 * (see string_words), which are the whole string when it has at most 16 bytes, so that most
 * hits compare nothing else, and its length and id packed as len << 24 | id. An all-zero way is
 * the empty string, id 0, which is right. */
typedef struct str_cache_set {
  uint64_t a[STR_WAYS], b[STR_WAYS];
  uint32_t len_id[STR_WAYS];
  uint32_t pad; /* to the cache line */
} str_cache_set;

_Static_assert(sizeof(str_cache_set) == 64, "a set is one cache line");

/* The words and hash of a string, computed once (see string_words, cache_probe). */
typedef struct str_key {
  uint64_t a, b, hash;
} str_key;

/* A string of a decoded row waiting to be interned (vpq_decoder_defer_strings). */
typedef struct pending_string {
  int64_t *id; /* where its id goes */
  const char *text;
  size_t len;
  str_key key;
} pending_string;

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
  char **tokens;          /* per column: its name followed by `":`, for the fast path's key match */
  char unknown[32];       /* the last key json_row_fast found in no column (unknown_len bytes) */
  size_t unknown_len;     /* SIZE_MAX: none */
  str_cache_set *cache;   /* STR_SETS sets, 64-byte aligned */
  bool defer;             /* vpq_decoder_defer_strings */
  pending_string *pending;
  int npending, pending_cap;
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
  dec->cache = aligned_alloc(64, sizeof *dec->cache * STR_SETS);
  if (!dec->cache) abort();
  memset(dec->cache, 0, sizeof *dec->cache * STR_SETS); /* all "": id 0, which is right */
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
  dec->tokens = calloc(n, sizeof *dec->tokens);
  if (!dec->name_len || !dec->plain || !dec->slots || !dec->csv_map || !dec->tokens) abort();
  dec->unknown_len = SIZE_MAX;
  for (int c = 0; c < schema->ncols; c++) {
    const char *name = schema->cols[c].name;
    dec->name_len[c] = strlen(name);
    dec->tokens[c] = malloc(dec->name_len[c] + 3);
    if (!dec->tokens[c]) abort();
    memcpy(dec->tokens[c], name, dec->name_len[c]);
    memcpy(dec->tokens[c] + dec->name_len[c], "\":", 3);
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
  for (int c = 0; c < dec->ncols; c++) free(dec->tokens[c]);
  free(dec->tokens);
  free(dec->name_len);
  free(dec->plain);
  free(dec->slots);
  free(dec->csv_map);
  free(dec->scratch);
  free(dec->cache);
  free(dec->pending);
  free(dec);
}

void vpq_decoder_set_max_bytes(vpq_decoder *dec, size_t max_bytes) { dec->max_bytes = max_bytes; }

/* ===== Strings: interning cache, UTF-8, escapes ===== */

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

static inline str_key string_key(const char *s, size_t len) {
  str_key k;
  string_words(s, len, &k.a, &k.b);
  /* a 64x64->128 multiply folded in half mixes every input bit into every output bit */
  __uint128_t m = (__uint128_t)(k.a ^ 0x9e3779b97f4a7c15ull) * (k.b ^ len ^ 0xff51afd7ed558ccdull);
  k.hash = (uint64_t)m ^ (uint64_t)(m >> 64);
  return k;
}

static inline str_cache_set *cache_set(const vpq_decoder *dec, const str_key *k) {
  return &dec->cache[k->hash & (STR_SETS - 1)];
}

/* Interns through a 3-way set-associative cache: a hit costs the set's line, and compares of
 * two words and the length; a miss asks the pool and puts the string in the set's first way,
 * the others moving down one. */
static int64_t cache_probe(vpq_decoder *dec, const str_key *k, const char *s, size_t len) {
  str_cache_set *set = cache_set(dec, k);
  for (int way = 0; way < STR_WAYS; way++) {
    if (set->a[way] == k->a && set->b[way] == k->b && set->len_id[way] >> 24 == len &&
        (len <= 16 || bytes_equal(vpq_intern_text(dec->intern, set->len_id[way] & 0xFFFFFF, NULL), s, len)))
      return set->len_id[way] & 0xFFFFFF;
  }
  int64_t id = vpq_intern_id(dec->intern, s, len);
  if (len <= STR_LEN_MAX && id < 1 << 24) {
    for (int way = STR_WAYS - 1; way > 0; way--) {
      set->a[way] = set->a[way - 1];
      set->b[way] = set->b[way - 1];
      set->len_id[way] = set->len_id[way - 1];
    }
    set->a[0] = k->a;
    set->b[0] = k->b;
    set->len_id[0] = (uint32_t)len << 24 | (uint32_t)id;
  }
  return id;
}

static int64_t intern_cached(vpq_decoder *dec, const char *s, size_t len) {
  str_key k = string_key(s, len);
  return cache_probe(dec, &k, s, len);
}

/* Queues a string of the row being decoded for vpq_decoder_flush and fetches its cache set. */
static void defer_string(vpq_decoder *dec, int64_t *id, const char *s, size_t len) {
  if (dec->npending == dec->pending_cap) {
    dec->pending_cap = dec->pending_cap ? dec->pending_cap * 2 : 1024;
    dec->pending = realloc(dec->pending, sizeof *dec->pending * (size_t)dec->pending_cap);
    if (!dec->pending) abort();
  }
  pending_string *p = &dec->pending[dec->npending++];
  *p = (pending_string){id, s, len, string_key(s, len)};
  __builtin_prefetch(cache_set(dec, &p->key));
}

void vpq_decoder_defer_strings(vpq_decoder *dec, bool defer) {
  vpq_decoder_flush(dec);
  dec->defer = defer;
}

void vpq_decoder_flush(vpq_decoder *dec) {
  for (int i = 0; i < dec->npending; i++) {
    pending_string *p = &dec->pending[i];
    *p->id = cache_probe(dec, &p->key, p->text, p->len);
  }
  dec->npending = 0;
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

enum {
  DROPPED_INT = 1, /* a nonzero digit beyond the 19th was dropped from the integer part */
  DROPPED_FRAC = 2 /* ... from the fraction */
};

typedef struct num {
  const char *text; /* the number's text in the record */
  size_t len;
  uint64_t mant;     /* up to 19 significant digits */
  int exp10;         /* value = mant * 10^exp10 (when nothing was dropped) */
  bool neg;
  uint8_t dropped;   /* DROPPED_INT | DROPPED_FRAC: one byte, tested with one load */
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
 * or NULL when the text at p is not one. The digits accumulate in locals, not in *n: stores
 * through n could alias the text, which would keep the compiler from holding them in registers. */
static inline __attribute__((always_inline)) const char *scan_number(const char *p, const char *end, bool plus, num *n) {
  const char *text = p;
  *n = (num){.text = p};
  uint64_t mant = 0;
  int exp10 = 0, nd = 0;
  bool neg = false;
  uint8_t dropped = 0;
  if (p < end && (*p == '-' || (plus && *p == '+'))) neg = *p++ == '-';
  if (p >= end || *p < '0' || *p > '9') return NULL;
  if (*p == '0') {
    p++;
  } else {
    for (; nd <= 11 && end - p >= 8 && eight_digits(p); p += 8, nd += 8) mant = mant * 100000000 + eight_digits_value(p);
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
      if (nd < 19) {
        mant = mant * 10 + (uint64_t)(*p - '0');
        nd++;
      } else {
        exp10++;
        if (*p != '0') dropped |= DROPPED_INT;
      }
    }
  }
  if (p < end && *p == '.') {
    p++;
    if (p >= end || *p < '0' || *p > '9') return NULL;
    for (; nd > 0 && nd <= 11 && end - p >= 8 && eight_digits(p); p += 8, nd += 8, exp10 -= 8)
      mant = mant * 100000000 + eight_digits_value(p);
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
      if (nd == 0 && *p == '0') {
        exp10--;
      } else if (nd < 19) {
        mant = mant * 10 + (uint64_t)(*p - '0');
        exp10--;
        nd++;
      } else {
        if (*p != '0') dropped |= DROPPED_FRAC;
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
    exp10 += eneg ? -e : e;
  }
  *n = (num){text, (size_t)(p - text), mant, exp10, neg, dropped};
  return p;
}

/* The double of the number text through strtod (the slow path); false when it is out of range. */
static bool __attribute__((noinline)) num_double_strtod(vpq_decoder *dec, const char *number, size_t len,
                                                         double *out) {
  char *text = scratch(dec, len);
  memcpy(text, number, len);
  text[len] = '\0';
  *out = strtod(text, NULL);
  return isfinite(*out);
}

/* The number's double, equal to strtod's; false when it overflows (JSON has no infinity). */
static inline bool num_double(vpq_decoder *dec, const num *n, double *out) {
  static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  if (n->dropped || n->mant > (1ull << 53) || n->exp10 < -22 || n->exp10 > 22)
    return num_double_strtod(dec, n->text, n->len, out); /* (not n: it would have to live in memory) */
  double d = (double)n->mant; /* exact, and so is the power of ten: one rounding */
  d = n->exp10 < 0 ? d / pow10[-n->exp10] : d * pow10[n->exp10];
  *out = n->neg ? -d : d;
  return true;
}

typedef enum int_result { INT_OK, INT_FRACTION, INT_RANGE } int_result;

/* The number as an exact int64: 1.0 and 1e3 are integers, 1.5 is not. */
static int_result num_int(const num *n, int64_t *out) {
  if (n->dropped & DROPPED_INT) return INT_RANGE;
  if (n->dropped & DROPPED_FRAC) return INT_FRACTION;
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

/* Past the blanks at p. */
static const char *json_skip_blanks(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* Past the closing quote of the JSON string whose opening quote is at p, or NULL. */
static const char *json_string_end(const char *p, const char *end) {
  for (p++; p < end; p++) {
    if (*p == '\\') {
      if (++p == end) break; /* the escaped byte is skipped */
    } else if (*p == '"') {
      return p + 1;
    }
  }
  return NULL;
}

/* Past the JSON value at p (a string, a nested object or array, or a scalar up to the next
 * ',', '}' or ']'), or NULL when a string in it is not closed. */
static const char *json_value_end(const char *p, const char *end) {
  int depth = 0;
  while (p < end) {
    if (*p == '"') {
      p = json_string_end(p, end);
      if (!p || depth == 0) return p;
      continue;
    }
    if (*p == '{' || *p == '[') {
      depth++;
    } else if (*p == '}' || *p == ']') {
      if (depth == 0) return p;
      if (--depth == 0) return p + 1;
    } else if (*p == ',' && depth == 0) {
      return p;
    }
    p++;
  }
  return p;
}

const char *vpq_json_field(const char *text, size_t len, const char *name) {
  const char *end = text + len, *p = json_skip_blanks(text, end);
  if (p >= end || *p != '{') return NULL;
  const size_t n = strlen(name);
  for (p = json_skip_blanks(p + 1, end); p < end && *p == '"';) {
    const char *key = p + 1, *key_end = json_string_end(p, end);
    if (!key_end) return NULL;
    const bool match = (size_t)(key_end - 1 - key) == n && memcmp(key, name, n) == 0;
    p = json_skip_blanks(key_end, end);
    if (p >= end || *p != ':') return NULL;
    p = json_skip_blanks(p + 1, end);
    if (match) return p < end ? p : NULL;
    p = json_value_end(p, end);
    if (!p) return NULL;
    p = json_skip_blanks(p, end);
    if (p >= end || *p != ',') return NULL;
    p = json_skip_blanks(p + 1, end);
  }
  return NULL;
}

/* time -> YYYY-MM-DD [('T' | ' ') HH:MM [:SS [.fraction]] ['Z' | ('+'|'-') HH[[:]MM]]] */
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
      if (end - p != 2 && end - p < 4) return false;
      int oh = read_digits(p, 2), om;
      if (end - p == 2) {
        om = 0;
        p += 2;
      } else if (p[2] == ':') {
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

typedef enum ts_result { TS_OK, TS_NOT_WHOLE_MS, TS_NOT_ISO } ts_result;

/* A TIMESTAMP written as text (a JSON string, a CSV field): epoch milliseconds written as a
 * number ("1700000000000"; whole, so 1e3 too and 1.5 not), or else an ISO-8601 time. */
static ts_result timestamp_text(const char *text, size_t len, int64_t *ms) {
  num n;
  if (scan_number(text, text + len, true, &n) == text + len) return num_int(&n, ms) == INT_OK ? TS_OK : TS_NOT_WHOLE_MS;
  return vpq_timestamp_parse(text, len, ms) ? TS_OK : TS_NOT_ISO;
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

static inline __attribute__((always_inline)) bool json_number(jp *j, num *n) {
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
  if (c->type == VPQ_TYPE_TIMESTAMP)
    return fail(j->err, j->err_size,
                "invalid timestamp: field `%s`: expected epoch milliseconds or an ISO-8601 time, got %s%s%s", c->name,
                what, len ? " " : "", excerpt);
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
    ts_result r = TS_OK;
    if (type == VPQ_TYPE_STRING) vec->data[row].i = intern_cached(dec, text, len);
    else r = timestamp_text(text, len, &vec->data[row].i);
    if (r != TS_OK) {
      value_excerpt(excerpt, sizeof excerpt, at, (size_t)(j->p - at));
      return fail(j->err, j->err_size, "invalid timestamp: field `%s`: %s is not %s", name, excerpt,
                  r == TS_NOT_WHOLE_MS ? "whole epoch milliseconds" : "an ISO-8601 time");
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

/* ===== JSON decoding: the fast path ===== */

/* The common record — one flat object of plain ASCII strings, numbers and literals — is decoded
 * by json_row_fast with no error bookkeeping; anything else (escapes, non-ASCII text, nested
 * values, a value of the wrong type, invalid JSON) makes it give up, and json_row decodes the
 * record from the start, with the exact error when it is malformed. json_row_fast accepts only
 * what json_row accepts and stores the same values, so which one decoded a row never shows. Both
 * intern the same strings in the same order (json_row goes over the fields the fast path had
 * already passed), so the string pool does not depend on it either. The unit tests hold them to
 * this on generated records (test_codec.c, json_fast_path_agrees_with_general_path).
 *
 * Since it never takes a line break for whitespace, the fast path also finds where a JSON line
 * ends while decoding it (vpq_decoder_json_line): the file source needs no separate pass to cut
 * the line first. */

/* Skips JSON whitespace but line breaks (a record with line breaks inside is left to json_row:
 * so the fast path can tell where a JSON line ends, see vpq_decoder_json_line). */
static inline const char *fast_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
  return p;
}

/* The closing quote of the string body at p, or NULL when the body holds an escape, a control or
 * non-ASCII byte, or is not closed. */
static inline const char *fast_string_end(const char *p, const char *end) {
  while (end - p >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    uint64_t mask = swar_special(w);
    if (mask) {
      p += __builtin_ctzll(mask) / 8;
      return *p == '"' ? p : NULL;
    }
    p += 8;
  }
  for (; p < end; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') return p;
    if (c == '\\' || c < 0x20 || c >= 0x80) return NULL;
  }
  return NULL;
}

/* The end of the literal `word` at p, or NULL. */
static inline const char *fast_literal(const char *p, const char *end, const char *word, size_t n) {
  return (size_t)(end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

/* number -> '-'? ('0' | [1-9][0-9]*) ('.' [0-9]+)? ([eE] [+-]? [0-9]+)?: the end of the number
 * at p, or NULL when there is none (as scan_number, without computing its value). */
static inline const char *fast_skip_number(const char *p, const char *end) {
  if (p < end && *p == '-') p++;
  if (p == end || *p < '0' || *p > '9') return NULL;
  if (*p++ != '0')
    while (p < end && *p >= '0' && *p <= '9') p++;
  if (p < end && *p == '.') {
    if (++p == end || *p < '0' || *p > '9') return NULL;
    while (p < end && *p >= '0' && *p <= '9') p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    if (++p < end && (*p == '+' || *p == '-')) p++;
    if (p == end || *p < '0' || *p > '9') return NULL;
    while (p < end && *p >= '0' && *p <= '9') p++;
  }
  return p;
}

/* Skips a scalar value at p (p < end); NULL when it is not a plain one. */
static inline const char *fast_skip(const char *p, const char *end) {
  switch (*p) {
  case '"': {
    const char *q = fast_string_end(p + 1, end);
    return q ? q + 1 : NULL;
  }
  case 't': return fast_literal(p, end, "true", 4);
  case 'f': return fast_literal(p, end, "false", 5);
  case 'n': return fast_literal(p, end, "null", 4);
  default: return fast_skip_number(p, end);
  }
}

/* Parses the value at p (p < end) into row `row` of column `col` as json_field would; returns
 * its end, or NULL to leave the record to json_row. */
static inline const char *fast_field(vpq_decoder *dec, int col, const char *p, const char *end, vpq_vec *vec,
                                     int row) {
  vpq_type type = dec->schema->cols[col].type;
  num n;
  const char *stop;
  if (*p == 'n') {
    if (!(stop = fast_literal(p, end, "null", 4))) return NULL;
    vec->null[row] = 1;
    vec->data[row].i = 0;
    return stop;
  }
  switch (type) {
  case VPQ_TYPE_DOUBLE:
    if (!(stop = scan_number(p, end, false, &n)) || !num_double(dec, &n, &vec->data[row].d)) return NULL;
    break;
  case VPQ_TYPE_STRING:
    if (*p != '"' || !(stop = fast_string_end(p + 1, end))) return NULL;
    if (dec->defer) defer_string(dec, &vec->data[row].i, p + 1, (size_t)(stop - p - 1));
    else vec->data[row].i = intern_cached(dec, p + 1, (size_t)(stop - p - 1));
    stop++;
    break;
  case VPQ_TYPE_TIMESTAMP:
    if (*p == '"') {
      if (!(stop = fast_string_end(p + 1, end)) ||
          timestamp_text(p + 1, (size_t)(stop - p - 1), &vec->data[row].i) != TS_OK)
        return NULL;
      stop++;
      break;
    }
    __attribute__((fallthrough)); /* epoch milliseconds */
  case VPQ_TYPE_BIGINT:
    if (!(stop = scan_number(p, end, false, &n)) || num_int(&n, &vec->data[row].i) != INT_OK) return NULL;
    break;
  case VPQ_TYPE_BOOLEAN:
    if ((stop = fast_literal(p, end, "true", 4))) vec->data[row].i = 1;
    else if ((stop = fast_literal(p, end, "false", 5))) vec->data[row].i = 0;
    else return NULL;
    break;
  default:
    return NULL;
  }
  vec->null[row] = 0;
  return stop;
}

/* record -> '{' [member (',' member)*] '}' with plain members only (see above), in text[0..end);
 * returns where the record ends: `end`, or with `line`, its line break if it comes first. NULL
 * when the record needs json_row. */
static const char *json_row_fast(vpq_decoder *dec, const char *text, const char *end, vpq_batch *out, int row,
                                 bool line) {
  const char *p = text;
  uint64_t seen = 0;
  if (p == end || *p != '{') return NULL;
  p = fast_ws(p + 1, end);
  if (p < end && *p == '}') {
    p++;
  } else {
    int expect = 0, col;
    for (;;) {
      if (p == end || *p != '"') return NULL;
      size_t n = expect < dec->ncols ? dec->name_len[expect] : 0;
      if (n && dec->plain[expect] && (size_t)(end - p) > n + 2 && bytes_equal(p + 1, dec->tokens[expect], n + 2)) {
        col = expect; /* "name": of the next column, exactly: no scan, no look-up */
        p += n + 3;
      } else if (n && dec->plain[expect] && (size_t)(end - p) > n + 1 && bytes_equal(p + 1, dec->tokens[expect], n + 1)) {
        col = expect; /* the same with blanks before the colon: as json_row, the exact name wins */
        p = fast_ws(p + n + 2, end);
        if (p == end || *p != ':') return NULL;
        p++;
      } else {
        const char *q = fast_string_end(p + 1, end);
        if (!q) return NULL;
        size_t len = (size_t)(q - p - 1);
        if (len == dec->unknown_len && bytes_equal(p + 1, dec->unknown, len)) {
          col = -1;
        } else {
          col = lookup_column(dec, p + 1, len);
          if (col < 0 && len <= sizeof dec->unknown) {
            memcpy(dec->unknown, p + 1, len);
            dec->unknown_len = len;
          }
        }
        p = fast_ws(q + 1, end);
        if (p == end || *p != ':') return NULL;
        p++;
      }
      p = fast_ws(p, end);
      if (p == end) return NULL;
      if (col < 0 || dec->schema->cols[col].unread) {
        p = fast_skip(p, end);
        if (col >= 0) expect = col + 1;
      } else {
        p = fast_field(dec, col, p, end, &out->cols[col], row);
        seen |= 1ull << (col & 63);
        expect = col + 1;
      }
      if (!p) return NULL;
      p = fast_ws(p, end);
      if (p == end) return NULL;
      if (*p == '}') {
        p++;
        break;
      }
      if (*p != ',') return NULL;
      p = fast_ws(p + 1, end);
    }
  }
  p = fast_ws(p, end);
  if (!(line && p < end && *p == '\n')) { /* not the end of a line: only whitespace may follow */
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    if (p != end) return NULL;
  }
  if (dec->ncols <= 64) {
    for (int c = 0; c < dec->ncols; c++) {
      if (seen >> c & 1) continue;
      out->cols[c].null[row] = 1;
      out->cols[c].data[row].i = 0;
    }
  }
  return p;
}

size_t vpq_decoder_json_line(vpq_decoder *dec, const char *text, size_t avail, vpq_batch *out, int row) {
  if (dec->format != VPQ_FORMAT_JSON || dec->max_bytes) return SIZE_MAX;
  int queued = dec->npending;
  const char *stop = json_row_fast(dec, text, text + avail, out, row, true);
  if (stop) return (size_t)(stop - text);
  dec->npending = queued; /* nothing of the line stays queued: vpq_decoder_row decodes it again */
  return SIZE_MAX;
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
  case VPQ_TYPE_TIMESTAMP: {
    ts_result r = timestamp_text(text, len, &i);
    value_excerpt(excerpt, sizeof excerpt, text, len);
    if (r == TS_NOT_WHOLE_MS)
      return fail(err, err_size, "invalid timestamp: field `%s`: %s is not whole epoch milliseconds", column->name,
                  excerpt);
    if (r == TS_NOT_ISO)
      return fail(err, err_size, "invalid timestamp: field `%s`: \"%s\" is not an ISO-8601 time", column->name,
                  excerpt);
    vec->data[row].i = i;
    break;
  }
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

bool vpq_decoder_csv_has(const vpq_decoder *dec, int col) {
  for (int i = 0; i < dec->csv_nfields; i++)
    if (dec->csv_map[i] == col) return true;
  return false;
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
  if (json_row_fast(dec, text, text + len, out, row, false)) return true;
  vpq_decoder_flush(dec); /* strings are interned in the order of the records */
  return json_row(dec, text, len, out, row, err, err_size);
}
