/* vpq_agg.c — aggregate functions over fixed-size states (vpq_agg.h).
 *
 * Each aggregate keeps a small struct in the group's state block; the ones that must see
 * every value keep a heap array behind a pointer:
 *
 *   count, sum, avg   counters and a running sum: a DOUBLE sum compensated (Neumaier), so that
 *                     it is the correctly rounded total in all but pathological cases whatever
 *                     the order rows come in (several partitions, a replay), and avg divides
 *                     it; a BIGINT sum is exact in 128 bits, so it never wraps: avg divides
 *                     the exact sum, and sum is NULL when its total does not fit a BIGINT;
 *                     over a changelog a DOUBLE sum counts its infinite and NaN values apart
 *                     (agg_table_sum), so that the sum of the finite ones comes back when
 *                     they leave
 *   stddev            compensated sums of x − K and (x − K)² about a shift K, the group's first
 *                     value (agg_spread), their terms exact (spread_add), the result computed
 *                     in double-double and rounded once: correctly rounded, where a running
 *                     mean (Welford) loses digits (BIGINTs taken less a value of the group in
 *                     integers first: centred); over a changelog the values are kept too,
 *                     to re-base K when it drifts from them (agg_shifted)
 *   min, max          the best value; over a changelog a sorted value→count array instead,
 *                     so that retracting the minimum finds the next one
 *   first, last       the value and its event time; over a changelog every value with its event
 *                     time, in time order (agg_samples), so that retracting the first or the
 *                     last finds the one before it
 *   count_distinct    an open-addressing set of values with counts (exact)
 *   percentile        all values: a sorted run, and a short sorted run of the values added
 *                     since it was last merged (at most about √n of them); a read takes the
 *                     two ranks it needs from the two runs by binary search (exact); a NaN
 *                     has no rank and is skipped like NULL (added and retracted alike), so
 *                     the run stays totally ordered and a retraction always finds its value
 *   integrate, twa    the samples sorted by event time and the running trapezoid integral:
 *                     appending in time order adds one trapezoid; an out-of-order sample
 *                     replaces the trapezoid between its neighbours by two (and, when that
 *                     cancels most of the integral, sums it again in time order); over a changelog
 *                     the integral is summed afresh from the samples when it is read, so
 *                     that it is what the table's current rows give, whatever came and went
 *
 * Exactness over speed for the rare aggregates; the common ones (count, sum, avg, min, max
 * without retraction) are specialised tight loops in vpq_agg_step_rows.
 *
 * Checkpoints write each state's fields as they are (doubles bit for bit, running sums and
 * integrals included), so that a restored state goes on to give exactly the results the
 * original would have: a restore never changes a digit of the output.
 */
#include "vpq_agg.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct agg_sum {
  int64_t n;
  vpq_datum sum; /* DOUBLE: the sum; BIGINT: the low 64 bits of the exact sum */
  union {
    int64_t hi;  /* BIGINT: the high 64 bits of the exact sum (two's complement) */
    double comp; /* DOUBLE: what rounding took from sum (Neumaier) */
  };
} agg_sum;

/* A DOUBLE sum or avg over a changelog: the finite values' sum (and the count of all values),
 * and the infinite and NaN values counted apart: added to the running sum they would stay in
 * it (inf − inf is NaN) after their rows leave. The finite values are summed scaled by
 * TABLE_SUM_SCALE (exact: a power of two, and values below 2^-958 are not data), so that a sum
 * that passes the largest double on the way (1e308 + 1e308 − 1e308) comes back too. */
#define TABLE_SUM_SCALE 0x1p-64
typedef struct agg_table_sum {
  agg_sum sum;
  int64_t nan, pos_inf, neg_inf;
} agg_table_sum;

/* Whether a sum or avg keeps an agg_table_sum. */
static bool table_sum(const vpq_agg_spec *spec) { return spec->retracting && spec->arg_type == VPQ_TYPE_DOUBLE; }

/* The sum of a DOUBLE sum's values: NaN with a NaN, or infinities of both signs, among them;
 * an infinity with those of one sign; else the finite values' sum. */
static double double_sum(const vpq_agg_spec *spec, const agg_sum *s) {
  if (table_sum(spec)) {
    const agg_table_sum *t = (const agg_table_sum *)s;
    if (t->nan > 0 || (t->pos_inf > 0 && t->neg_inf > 0)) return NAN;
    if (t->pos_inf > 0) return INFINITY;
    if (t->neg_inf > 0) return -INFINITY;
    return (s->sum.d + s->comp) / TABLE_SUM_SCALE;
  }
  return s->sum.d + s->comp;
}

/* stddev over a stream: Σ d and Σ d² for d = x − shift, the first value, each compensated.
 * As shift is one of the values, (mean − shift)² is at most Σ (x − mean)², so the cancellation
 * in Σ d² − (Σ d)²/n costs at most a factor n + 1 of the rounding. */
typedef struct agg_spread {
  int64_t n;
  int64_t origin; /* BIGINT: the group's first value, which every value is taken relative to (centred) */
  double shift, s1, c1, s2, c2;
} agg_spread;

typedef struct agg_value_count {
  vpq_datum value;
  int64_t count;
} agg_value_count;

typedef struct agg_best {
  int64_t n;
  vpq_datum best;
  agg_value_count *sorted; /* changelog inputs only */
  int nsorted, cap;
} agg_best;

/* stddev over a changelog. Welford's update run backwards for a retraction divides by the
 * shrinking count and subtracts rounded products, so every retraction leaves an error behind
 * (a huge value added and retracted wipes out the digits of the rest). Instead the state keeps
 * the sums of d = x − K and d² about a shift K, each with Neumaier's compensation (as DOUBLE
 * sum over a table does), so that a retraction subtracts exactly the rounded terms its addition
 * added, and the result is (Σd² − (Σd)²/n) / (n − 1). That is accurate while the rows lie near
 * K; when they do not (K was an outlier since retracted, or the values drifted), the rounding
 * of d and d² (ε·Σd²) or of the compensation (ε²·the largest partial sum) is no longer small
 * against the squared deviations, and the read re-bases: K becomes the mean of the rows there
 * now, and the sums are computed again from them, two-pass, exactly as a fresh computation
 * would. The rows are kept for that as a sorted value→count array, as min/max over a changelog
 * keep them; non-finite values are only counted (one present makes the result NaN). */
typedef struct agg_shifted {
  int64_t n;       /* finite values */
  int64_t nonfinite;
  int64_t origin;  /* BIGINT: a value of the group, which every value is taken relative to (centred) */
  double shift;
  double s1, c1;   /* Σ d, and what rounding took from it */
  double s2, c2;   /* Σ d², and what rounding took from it */
  double peak;     /* the largest |Σ d²| since the last re-base */
  agg_best values; /* the finite values: sorted, with counts */
} agg_shifted;

typedef struct agg_at {
  bool has;
  int64_t ts;
  vpq_datum value;
} agg_at;

typedef struct agg_set {
  agg_value_count *slots; /* count 0 = empty; count < 0 never */
  int64_t used, cap, distinct;
  bool has_zero_key;      /* a key equal to the empty marker is kept aside */
  int64_t zero_count;
} agg_set;

typedef struct agg_values {
  vpq_datum *values;
  int64_t n, cap;
  int64_t nsorted; /* values[0, nsorted) are sorted, and so are values[nsorted, n): added since */
} agg_values;

/* A value at its event time: integrate's and twa's as a DOUBLE, first's and last's (over a
 * changelog) of the argument's type. Over a changelog seq is its row's arrival number, which
 * orders the rows of one time and names the row a retraction takes away; 0 over a stream. */
typedef struct agg_sample {
  int64_t ts, seq;
  vpq_datum value;
} agg_sample;

/* Samples in (event time, seq) order, equal ones in the order they came. */
typedef struct agg_samples {
  agg_sample *s;
  int64_t n, cap;
  double integral; /* x·ms, integrate's and twa's over a stream (running_integral) */
} agg_samples;

static void *agg_realloc(void *p, size_t size) {
  void *q = realloc(p, size ? size : 1);
  if (!q) abort();
  return q;
}

/* The exact 128-bit sum of a BIGINT sum/avg state. */
static __int128 sum_wide(const agg_sum *s) {
  return (__int128)(((unsigned __int128)(uint64_t)s->hi << 64) | (uint64_t)s->sum.i);
}

/* Adds `x` to a BIGINT sum/avg state, in 128 bits (unsigned, so a corrupt state cannot
 * overflow: it wraps at 2^128, far beyond any sum of 2^62 BIGINTs). */
static void sum_add_wide(agg_sum *s, __int128 x) {
  unsigned __int128 v = (unsigned __int128)sum_wide(s) + (unsigned __int128)x;
  s->sum.i = (int64_t)(uint64_t)v;
  s->hi = (int64_t)(uint64_t)(v >> 64);
}

/* Neumaier's compensated step of a plain (sum, comp) pair: sum + comp gains x. Once the sum is
 * not finite the compensation stops (it would turn an infinite sum into NaN). */
static void comp_add(double *sum, double *comp, double x) {
  double t = *sum + x;
  if (isfinite(t)) *comp += fabs(*sum) >= fabs(x) ? (*sum - t) + x : (x - t) + *sum;
  *sum = t;
}

/* Adds x to a DOUBLE sum with Neumaier's compensation: what each addition rounds off is kept in
 * comp, so that the total is correctly rounded (1e9 + 0.1, + 0.2, + 0.3 is 3000000000.6, not
 * 3000000000.6000004) and retracting a value leaves the sum of the values still there (1e16 + 1
 * − 1e16 is 1, and 0.1 + 0.2 − 0.2 is 0.1), not the rounding errors of the values gone. */
static void sum_add_compensated(agg_sum *s, double x) { comp_add(&s->sum.d, &s->comp, x); }

static double as_double(vpq_type type, vpq_datum v) { return type == VPQ_TYPE_DOUBLE ? v.d : (double)v.i; }

/* A stddev's value as the double it sums: a DOUBLE as it is, a BIGINT less `origin` (a value of
 * its group) in exact integer arithmetic, so that BIGINTs beyond 2^53 close together keep their
 * differences (9223372036854775807 and 9223372036854775806 are one double). */
static double centred(const vpq_agg_spec *spec, vpq_datum v, int64_t origin) {
  return spec->arg_type == VPQ_TYPE_DOUBLE ? v.d : (double)((__int128)v.i - origin);
}

/* ===== stddev: sums and result in double-double =====
 * Σ d and Σ d² (d = x − shift) are kept as Neumaier sums hi + comp, their terms exact to about
 * 2^-106: the rounding of x − shift and of d·d is recovered (two_sum, fma) and added to the
 * compensation. The result sqrt((Σd² − (Σd)²/n) / (n − 1)) is computed in double-double and
 * rounded once, so it is the correctly rounded standard deviation (what Python's
 * statistics.stdev gives, exact arithmetic rounded) but in near-ties beyond 2^-100. */

/* A double-double: hi + lo with |lo| at most half an ulp of hi. */
typedef struct dd {
  double hi, lo;
} dd;

/* a + b as a double-double, given |a| ≥ |b| (or a = 0). */
static dd dd_norm(double a, double b) {
  double s = a + b;
  return (dd){s, b - (s - a)};
}

/* a + b exactly, as a double-double (Knuth's two-sum). */
static dd dd_two_sum(double a, double b) {
  double s = a + b, bb = s - a;
  return (dd){s, (a - (s - bb)) + (b - bb)};
}

/* a + b, to about 2^-104. */
static dd dd_add(dd a, dd b) {
  dd s = dd_two_sum(a.hi, b.hi);
  return dd_norm(s.hi, s.lo + a.lo + b.lo);
}

/* a · b, to about 2^-104 (the product of the high parts exact by fma). */
static dd dd_mul(dd a, dd b) {
  double p = a.hi * b.hi;
  return dd_norm(p, fma(a.hi, b.hi, -p) + (a.hi * b.lo + a.lo * b.hi));
}

/* a / n, to about 2^-104 (the quotient's remainder exact by fma). */
static dd dd_div(dd a, double n) {
  double q = a.hi / n, p = q * n;
  return dd_norm(q, ((a.hi - p) - fma(q, n, -p) + a.lo) / n);
}

/* Adds `count` (±1, or a row's multiplicity) copies of x to Σd and Σd² about `shift`. */
static void spread_add(double *s1, double *c1, double *s2, double *c2, double x, double shift, double count) {
  dd d = dd_two_sum(x, -shift); /* x − shift, exactly */
  double sq = d.hi * d.hi, sq_lo = fma(d.hi, d.hi, -sq) + 2 * d.hi * d.lo;
  double t1 = count * d.hi, t2 = count * sq;
  comp_add(s1, c1, t1);
  *c1 += fma(count, d.hi, -t1) + count * d.lo;
  comp_add(s2, c2, t2);
  *c2 += fma(count, sq, -t2) + count * sq_lo;
}

/* The sample standard deviation of n values from their Σd (s1 + c1) and Σd² (s2 + c2). */
static double spread_stddev(double s1, double c1, double s2, double c2, int64_t n) {
  if (!isfinite(s1 + c1) || !isfinite(s2 + c2)) return NAN;
  dd sum = dd_norm(s1, c1), squares = dd_norm(s2, c2);
  dd mean_part = dd_mul(sum, dd_div(sum, (double)n)); /* (Σd)²/n: dividing first keeps it finite */
  dd m2 = dd_add(squares, (dd){-mean_part.hi, -mean_part.lo});
  if (m2.hi <= 0) return 0;
  dd var = dd_div(m2, (double)(n - 1));
  double r = sqrt(var.hi);
  /* One Newton step in double-double: r + (var − r²) / 2r, rounded once. */
  double r2 = r * r;
  return r + (((var.hi - r2) - fma(r, r, -r2)) + var.lo) / (2 * r);
}

static int datum_cmp_double(const void *a, const void *b) {
  double x = ((const vpq_datum *)a)->d, y = ((const vpq_datum *)b)->d;
  return (x > y) - (x < y);
}

static int datum_cmp_int(const void *a, const void *b) {
  int64_t x = ((const vpq_datum *)a)->i, y = ((const vpq_datum *)b)->i;
  return (x > y) - (x < y);
}

/* Removes one value equal (bit for bit) to `value` from a percentile's values: by binary search
 * in the sorted run, else among the values added since; the order of the rest is kept. */
static void values_remove(const vpq_agg_spec *spec, agg_values *v, vpq_datum value) {
  int (*cmp)(const void *, const void *) = spec->arg_type == VPQ_TYPE_DOUBLE ? datum_cmp_double : datum_cmp_int;
  int64_t lo = 0, hi = v->nsorted, at = -1;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (cmp(&v->values[mid], &value) < 0) lo = mid + 1;
    else hi = mid;
  }
  for (int64_t i = lo; i < v->nsorted && cmp(&v->values[i], &value) == 0 && at < 0; i++)
    if (v->values[i].i == value.i) at = i;
  if (at >= 0) v->nsorted--;
  for (int64_t i = v->nsorted; i < v->n && at < 0; i++)
    if (v->values[i].i == value.i) at = i;
  if (at < 0) return;
  memmove(&v->values[at], &v->values[at + 1], sizeof *v->values * (size_t)(v->n - at - 1));
  v->n--;
}

/* Merges the values added since the last merge (a sorted run) into the sorted run, the run's
 * values first among equal ones. */
static void values_merge(const vpq_agg_spec *spec, agg_values *v) {
  int (*cmp)(const void *, const void *) = spec->arg_type == VPQ_TYPE_DOUBLE ? datum_cmp_double : datum_cmp_int;
  int64_t k = v->n - v->nsorted;
  vpq_datum *added = v->values + v->nsorted;
  if (k > 0 && v->nsorted > 0 && cmp(&v->values[v->nsorted - 1], added) > 0) {
    vpq_datum *copy = agg_realloc(NULL, sizeof *copy * (size_t)k);
    memcpy(copy, added, sizeof *copy * (size_t)k);
    int64_t i = v->nsorted - 1, j = k - 1, at = v->n - 1;
    while (j >= 0) v->values[at--] = i >= 0 && cmp(&v->values[i], &copy[j]) > 0 ? v->values[i--] : copy[j--];
    free(copy);
  }
  v->nsorted = v->n;
}

/* Adds a value to the run of values added since the last merge, in order (after its equals),
 * and merges that run into the sorted one once it has about √n values: an addition costs
 * O(√n), amortised, and a read (values_rank) O(log n), so that a result read after every
 * addition (EMIT CHANGES, tables) does not cost O(n) each time. */
static void values_add(const vpq_agg_spec *spec, agg_values *v, vpq_datum value) {
  int (*cmp)(const void *, const void *) = spec->arg_type == VPQ_TYPE_DOUBLE ? datum_cmp_double : datum_cmp_int;
  if (v->n == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 8;
    v->values = agg_realloc(v->values, sizeof *v->values * (size_t)v->cap);
  }
  int64_t lo = v->nsorted, hi = v->n;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (cmp(&v->values[mid], &value) <= 0) lo = mid + 1;
    else hi = mid;
  }
  memmove(&v->values[lo + 1], &v->values[lo], sizeof *v->values * (size_t)(v->n - lo));
  v->values[lo] = value;
  v->n++;
  const int64_t k = v->n - v->nsorted;
  if (k >= 32 && k * k >= v->n) values_merge(spec, v);
}

/* The value of rank r (from 0) among the sorted run and the run added since, as if they were
 * merged (values_merge's order): the split of the first r + 1 values between the two runs, by
 * binary search. */
static vpq_datum values_rank(const vpq_agg_spec *spec, const agg_values *v, int64_t r) {
  int (*cmp)(const void *, const void *) = spec->arg_type == VPQ_TYPE_DOUBLE ? datum_cmp_double : datum_cmp_int;
  const vpq_datum *a = v->values, *b = v->values + v->nsorted;
  const int64_t m = v->nsorted, k = v->n - v->nsorted;
  int64_t lo = r + 1 - k > 0 ? r + 1 - k : 0, hi = r + 1 < m ? r + 1 : m;
  for (;;) {
    const int64_t i = lo + (hi - lo) / 2, j = r + 1 - i; /* i from a, j from b */
    if (i < m && j > 0 && cmp(&b[j - 1], &a[i]) >= 0) lo = i + 1;       /* a[i] comes before b[j - 1] */
    else if (i > 0 && j < k && cmp(&a[i - 1], &b[j]) > 0) hi = i - 1; /* b[j] comes before a[i - 1] */
    else if (i == 0) return b[j - 1];
    else if (j == 0) return a[i - 1];
    else return cmp(&a[i - 1], &b[j - 1]) > 0 ? a[i - 1] : b[j - 1];
  }
}

/* Orders two values of the spec's argument type: <0, 0, >0. */
static int value_cmp(const vpq_agg_spec *spec, vpq_datum a, vpq_datum b) {
  switch (spec->arg_type) {
  case VPQ_TYPE_DOUBLE: return vpq_double_compare(a.d, b.d);
  case VPQ_TYPE_STRING: return spec->intern ? vpq_intern_compare(spec->intern, a.i, b.i) : (a.i > b.i) - (a.i < b.i);
  default: return (a.i > b.i) - (a.i < b.i);
  }
}

/* ===== Names and types ===== */

static const struct {
  const char *name;
  int nargs;
} agg_table[] = {/* ORDER VPQ_AGG */
                 {"count", 0},  {"count", 1},          {"sum", 1},        {"avg", 1},
                 {"min", 1},    {"max", 1},            {"stddev", 1},     {"first", 1},
                 {"last", 1},   {"count_distinct", 1}, {"percentile", 2}, {"integrate", 1},
                 {"time_weighted_avg", 1}};

bool vpq_agg_lookup(const char *name, vpq_agg_kind *kind, int *nargs) {
  for (int k = VPQ_AGG_COUNT; k <= VPQ_AGG_TIME_WEIGHTED_AVG; k++) {
    if (strcmp(agg_table[k].name, name) == 0) {
      *kind = (vpq_agg_kind)k;
      *nargs = agg_table[k].nargs;
      return true;
    }
  }
  return false;
}

const char *vpq_agg_name(vpq_agg_kind kind) { return agg_table[kind].name; }

vpq_type vpq_agg_result_type(vpq_agg_kind kind, vpq_type arg) {
  bool numeric = arg == VPQ_TYPE_BIGINT || arg == VPQ_TYPE_DOUBLE;
  switch (kind) {
  case VPQ_AGG_COUNT_STAR:
  case VPQ_AGG_COUNT:
  case VPQ_AGG_COUNT_DISTINCT: return VPQ_TYPE_BIGINT;
  case VPQ_AGG_SUM: return numeric ? arg : VPQ_TYPE_NULL;
  case VPQ_AGG_AVG:
  case VPQ_AGG_STDDEV:
  case VPQ_AGG_INTEGRATE:
  case VPQ_AGG_TIME_WEIGHTED_AVG: return numeric ? VPQ_TYPE_DOUBLE : VPQ_TYPE_NULL;
  case VPQ_AGG_PERCENTILE: return numeric ? VPQ_TYPE_DOUBLE : (arg == VPQ_TYPE_TIMESTAMP ? arg : VPQ_TYPE_NULL);
  case VPQ_AGG_MIN:
  case VPQ_AGG_MAX:
  case VPQ_AGG_FIRST:
  case VPQ_AGG_LAST: return arg == VPQ_TYPE_NULL || arg == VPQ_TYPE_INTERVAL ? VPQ_TYPE_NULL : arg;
  }
  return VPQ_TYPE_NULL;
}

size_t vpq_agg_state_size(const vpq_agg_spec *spec) {
  switch (spec->kind) {
  case VPQ_AGG_COUNT_STAR:
  case VPQ_AGG_COUNT: return sizeof(int64_t);
  case VPQ_AGG_SUM:
  case VPQ_AGG_AVG: return table_sum(spec) ? sizeof(agg_table_sum) : sizeof(agg_sum);
  case VPQ_AGG_STDDEV: return spec->retracting ? sizeof(agg_shifted) : sizeof(agg_spread);
  case VPQ_AGG_MIN:
  case VPQ_AGG_MAX: return sizeof(agg_best);
  case VPQ_AGG_FIRST:
  case VPQ_AGG_LAST: return spec->retracting ? sizeof(agg_samples) : sizeof(agg_at);
  case VPQ_AGG_COUNT_DISTINCT: return sizeof(agg_set);
  case VPQ_AGG_PERCENTILE: return sizeof(agg_values);
  case VPQ_AGG_INTEGRATE:
  case VPQ_AGG_TIME_WEIGHTED_AVG: return sizeof(agg_samples);
  }
  return 0;
}

void vpq_agg_init(const vpq_agg_spec *spec, void *state) { memset(state, 0, vpq_agg_state_size(spec)); }

/* ===== Sorted value→count arrays (min/max over changelogs) ===== */

static int64_t sorted_find(const vpq_agg_spec *spec, const agg_best *b, vpq_datum v, bool *found) {
  int64_t lo = 0, hi = b->nsorted;
  while (lo < hi) {
    int64_t mid = (lo + hi) / 2;
    if (value_cmp(spec, b->sorted[mid].value, v) < 0) lo = mid + 1;
    else hi = mid;
  }
  *found = lo < b->nsorted && value_cmp(spec, b->sorted[lo].value, v) == 0;
  return lo;
}

static void sorted_add(const vpq_agg_spec *spec, agg_best *b, vpq_datum v, int64_t count) {
  bool found;
  int64_t at = sorted_find(spec, b, v, &found);
  if (found) {
    b->sorted[at].count += count;
    if (b->sorted[at].count <= 0) {
      memmove(&b->sorted[at], &b->sorted[at + 1], sizeof *b->sorted * (size_t)(b->nsorted - at - 1));
      b->nsorted--;
    }
    return;
  }
  if (count <= 0) return;
  if (b->nsorted == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 8;
    b->sorted = agg_realloc(b->sorted, sizeof *b->sorted * (size_t)b->cap);
  }
  memmove(&b->sorted[at + 1], &b->sorted[at], sizeof *b->sorted * (size_t)(b->nsorted - at));
  b->sorted[at] = (agg_value_count){v, count};
  b->nsorted++;
}

/* Adds (diff > 0) or retracts one value of a stddev over a changelog (agg_shifted). */
static void shifted_step(const vpq_agg_spec *spec, agg_shifted *v, vpq_datum value, int diff) {
  if (diff > 0 && v->n == 0 && v->values.nsorted == 0 && spec->arg_type != VPQ_TYPE_DOUBLE) v->origin = value.i;
  double x = centred(spec, value, v->origin);
  if (!isfinite(x)) {
    v->nonfinite += diff > 0 ? 1 : -1;
    return;
  }
  sorted_add(spec, &v->values, value, diff > 0 ? 1 : -1);
  if (diff > 0 && v->n == 0) v->shift = x;
  v->n += diff > 0 ? 1 : -1;
  if (v->n <= 0) {
    v->n = 0;
    v->s1 = v->c1 = v->s2 = v->c2 = v->peak = 0;
    return;
  }
  spread_add(&v->s1, &v->c1, &v->s2, &v->c2, x, v->shift, diff > 0 ? 1.0 : -1.0);
  if (fabs(v->s2) > v->peak) v->peak = fabs(v->s2);
}

/* The standard deviation of a stddev over a changelog from its sums; re-bases them on the
 * values first (see agg_shifted) when the rounding they carry may show: the compensation's own
 * rounding, about ε² times the largest Σ d² since the last re-base per update, against
 * Σ (x − mean)² (re-based when that is below 2^64 ε² of the largest Σ d²: then each update's
 * rounding stays below 2^-64 of the result's square). */
static double shifted_stddev(const vpq_agg_spec *spec, agg_shifted *v) {
  double n = (double)v->n, s1 = v->s1 + v->c1, s2 = v->s2 + v->c2;
  double m2 = s2 - s1 * (s1 / n);
  if (!(m2 > 0x1p64 * DBL_EPSILON * DBL_EPSILON * v->peak)) {
    /* BIGINTs are taken relative to their middle one: the first value, since retracted, may lie
     * so far from them that their differences to it are not exact doubles (7 − 2e16) */
    if (spec->arg_type != VPQ_TYPE_DOUBLE && v->values.nsorted > 0)
      v->origin = v->values.sorted[v->values.nsorted / 2].value.i;
    double mean = 0, comp = 0;
    for (int i = 0; i < v->values.nsorted; i++) {
      double x = centred(spec, v->values.sorted[i].value, v->origin), c = (double)v->values.sorted[i].count;
      comp_add(&mean, &comp, x * c);
      comp += fma(x, c, -(x * c));
    }
    v->shift = (mean + comp) / n;
    v->s1 = v->c1 = v->s2 = v->c2 = 0;
    for (int i = 0; i < v->values.nsorted; i++)
      spread_add(&v->s1, &v->c1, &v->s2, &v->c2, centred(spec, v->values.sorted[i].value, v->origin), v->shift,
                 (double)v->values.sorted[i].count);
    v->peak = fabs(v->s2);
  }
  return spread_stddev(v->s1, v->c1, v->s2, v->c2, v->n);
}

/* ===== Distinct sets ===== */

static uint64_t datum_hash(vpq_datum v) {
  uint64_t h = (uint64_t)v.i * 0x9e3779b97f4a7c15ull;
  return h ^ (h >> 31);
}

static vpq_datum distinct_key(const vpq_agg_spec *spec, vpq_datum v) {
  if (spec->arg_type == VPQ_TYPE_DOUBLE && v.d == 0) v.d = 0.0; /* -0.0 and 0.0 are one value */
  return v;
}

static void set_add(agg_set *s, vpq_datum v, int64_t count);

static void set_grow(agg_set *s) {
  agg_value_count *old = s->slots;
  int64_t old_cap = s->cap;
  s->cap = s->cap ? s->cap * 2 : 16;
  s->slots = calloc((size_t)s->cap, sizeof *s->slots);
  if (!s->slots) abort();
  s->used = 0;
  s->distinct = s->has_zero_key && s->zero_count > 0;
  for (int64_t i = 0; i < old_cap; i++)
    if (old[i].count > 0) set_add(s, old[i].value, old[i].count);
  free(old);
}

static void set_add(agg_set *s, vpq_datum v, int64_t count) {
  if (v.i == 0) { /* the empty slot marker is value 0 with count 0; keep key 0 aside */
    bool before = s->zero_count > 0;
    s->has_zero_key = true;
    s->zero_count += count;
    s->distinct += (s->zero_count > 0) - before;
    return;
  }
  if ((s->used + 1) * 2 > s->cap) set_grow(s);
  uint64_t mask = (uint64_t)s->cap - 1;
  for (uint64_t at = datum_hash(v) & mask;; at = (at + 1) & mask) {
    agg_value_count *slot = &s->slots[at];
    if (slot->value.i == v.i) {
      bool before = slot->count > 0;
      slot->count += count;
      s->distinct += (slot->count > 0) - before;
      return;
    }
    if (slot->value.i == 0 && slot->count == 0) {
      if (count <= 0) return;
      *slot = (agg_value_count){v, count};
      s->used++;
      s->distinct++;
      return;
    }
  }
}

/* ===== Samples for integrate / time_weighted_avg ===== */

static double trapezoid(const agg_sample *a, const agg_sample *b) {
  return (a->value.d + b->value.d) / 2 * (double)(b->ts - a->ts);
}

/* Whether integrate's and twa's state keeps s->integral up to date as samples come: over a
 * stream; over a changelog the integral is summed when read (samples_integral). */
static bool running_integral(const vpq_agg_spec *spec) {
  return !spec->retracting && (spec->kind == VPQ_AGG_INTEGRATE || spec->kind == VPQ_AGG_TIME_WEIGHTED_AVG);
}

static void samples_reserve(agg_samples *s, int64_t n) {
  if (n <= s->cap) return;
  while (s->cap < n) s->cap = s->cap ? s->cap * 2 : 8;
  s->s = agg_realloc(s->s, sizeof *s->s * (size_t)s->cap);
}

/* Whether sample a goes before b: an earlier (time, seq). */
static bool sample_before(const agg_sample *a, const agg_sample *b) {
  return a->ts < b->ts || (a->ts == b->ts && a->seq < b->seq);
}

/* The trapezoid integral of the samples, summed in time order (x·ms). */
static double samples_integral(const agg_samples *s) {
  double integral = 0;
  for (int64_t i = 1; i < s->n; i++) integral += trapezoid(&s->s[i - 1], &s->s[i]);
  return integral;
}

/* Adds a sample after those of an earlier or the same (time, seq). */
static void samples_add(const vpq_agg_spec *spec, agg_samples *s, int64_t ts, int64_t seq, vpq_datum value) {
  samples_reserve(s, s->n + 1);
  int64_t at = s->n;
  const agg_sample sample = {ts, seq, value};
  while (at > 0 && sample_before(&sample, &s->s[at - 1])) at--;
  memmove(&s->s[at + 1], &s->s[at], sizeof *s->s * (size_t)(s->n - at));
  s->s[at] = sample;
  s->n++;
  if (!running_integral(spec)) return;
  const double before = s->integral;
  const double replaced = at > 0 && at + 1 < s->n ? trapezoid(&s->s[at - 1], &s->s[at + 1]) : 0;
  s->integral -= replaced;
  if (at > 0) s->integral += trapezoid(&s->s[at - 1], &s->s[at]);
  if (at + 1 < s->n) s->integral += trapezoid(&s->s[at], &s->s[at + 1]);
  /* An out-of-order sample that cancels most of the integral (a huge trapezoid replaced) would
   * leave the rounding of the sums before it in the result: summed again in time order, the
   * integral is what the samples give whatever order they came in. */
  const bool out_of_order = at + 1 < s->n;
  if (out_of_order && fabs(s->integral) < 0x1p-10 * fmax(fabs(before), fabs(replaced)))
    s->integral = samples_integral(s);
}

/* Retracts the sample added at (ts, seq) (over a changelog); a sample never added changes
 * nothing. */
static void samples_remove(agg_samples *s, int64_t ts, int64_t seq) {
  const agg_sample key = {ts, seq, {0}};
  int64_t lo = 0, hi = s->n;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (sample_before(&s->s[mid], &key)) lo = mid + 1;
    else hi = mid;
  }
  if (lo == s->n || s->s[lo].ts != ts || s->s[lo].seq != seq) return;
  memmove(&s->s[lo], &s->s[lo + 1], sizeof *s->s * (size_t)(s->n - lo - 1));
  s->n--;
}

/* Merges src's samples into dst's, in time order, dst's first among equal times. */
static void samples_merge(const vpq_agg_spec *spec, agg_samples *d, const agg_samples *s) {
  if (!s->n) return;
  samples_reserve(d, d->n + s->n);
  int64_t i = d->n - 1, j = s->n - 1, k = d->n + s->n - 1;
  while (j >= 0) d->s[k--] = i >= 0 && sample_before(&s->s[j], &d->s[i]) ? d->s[i--] : s->s[j--];
  d->n += s->n;
  if (running_integral(spec)) d->integral = samples_integral(d);
}

/* ===== Stepping ===== */

void vpq_agg_step(const vpq_agg_spec *spec, void *state, vpq_datum value, bool is_null, int64_t ts, int64_t seq,
                  int diff) {
  if (spec->kind == VPQ_AGG_COUNT_STAR) {
    *(int64_t *)state += diff;
    return;
  }
  if (is_null) return;
  switch (spec->kind) {
  case VPQ_AGG_COUNT_STAR: break;
  case VPQ_AGG_COUNT: *(int64_t *)state += diff; break;
  case VPQ_AGG_SUM:
  case VPQ_AGG_AVG: {
    agg_sum *s = state;
    s->n += diff;
    if (spec->arg_type != VPQ_TYPE_DOUBLE) {
      sum_add_wide(s, diff > 0 ? (__int128)value.i : -(__int128)value.i);
    } else if (table_sum(spec) && !isfinite(value.d)) {
      agg_table_sum *t = state;
      *(isnan(value.d) ? &t->nan : value.d > 0 ? &t->pos_inf : &t->neg_inf) += diff;
    } else if (table_sum(spec)) {
      sum_add_compensated(s, (diff > 0 ? value.d : -value.d) * TABLE_SUM_SCALE);
    } else {
      sum_add_compensated(s, diff > 0 ? value.d : -value.d);
    }
    break;
  }
  case VPQ_AGG_STDDEV: {
    if (spec->retracting) {
      shifted_step(spec, state, value, diff);
      break;
    }
    agg_spread *w = state;
    if (!w->n && spec->arg_type != VPQ_TYPE_DOUBLE) w->origin = value.i;
    double x = centred(spec, value, w->origin);
    if (!w->n++) w->shift = x;
    spread_add(&w->s1, &w->c1, &w->s2, &w->c2, x, w->shift, 1);
    break;
  }
  case VPQ_AGG_MIN:
  case VPQ_AGG_MAX: {
    agg_best *b = state;
    if (spec->retracting) {
      sorted_add(spec, b, value, diff);
      b->n = b->nsorted;
      if (b->nsorted) b->best = spec->kind == VPQ_AGG_MIN ? b->sorted[0].value : b->sorted[b->nsorted - 1].value;
      break;
    }
    int c = b->n ? value_cmp(spec, value, b->best) : 0;
    if (!b->n || (spec->kind == VPQ_AGG_MIN ? c < 0 : c > 0)) b->best = value;
    b->n++;
    break;
  }
  case VPQ_AGG_FIRST:
  case VPQ_AGG_LAST: {
    if (spec->retracting) {
      if (diff > 0) samples_add(spec, state, ts, seq, value);
      else samples_remove(state, ts, seq);
      break;
    }
    agg_at *a = state;
    bool take = !a->has || (spec->kind == VPQ_AGG_FIRST ? ts < a->ts : ts >= a->ts);
    if (take) *a = (agg_at){true, ts, value};
    break;
  }
  case VPQ_AGG_COUNT_DISTINCT: set_add(state, distinct_key(spec, value), diff); break;
  case VPQ_AGG_PERCENTILE: {
    agg_values *v = state;
    if (spec->arg_type == VPQ_TYPE_DOUBLE && isnan(value.d)) break;
    if (diff > 0) values_add(spec, v, value);
    else values_remove(spec, v, value);
    break;
  }
  case VPQ_AGG_INTEGRATE:
  case VPQ_AGG_TIME_WEIGHTED_AVG: {
    const vpq_datum x = {.d = as_double(spec->arg_type, value)};
    if (diff > 0) samples_add(spec, state, ts, seq, x);
    else samples_remove(state, ts, seq);
    break;
  }
  }
}

void vpq_agg_step_rows(const vpq_agg_spec *spec, uint8_t *const *states, size_t offset, const vpq_vec *arg,
                       const int64_t *ts, const int64_t *seq, const int8_t *diff, const int *rows, int n) {
  if (spec->kind == VPQ_AGG_COUNT_STAR) {
    for (int i = 0; i < n; i++) *(int64_t *)(states[i] + offset) += diff[rows[i]];
    return;
  }
  if (!spec->retracting && spec->arg_type == VPQ_TYPE_DOUBLE) {
    switch (spec->kind) {
    case VPQ_AGG_SUM:
    case VPQ_AGG_AVG:
      for (int i = 0; i < n; i++) {
        int r = rows[i];
        if (arg->null[r]) continue;
        agg_sum *s = (agg_sum *)(states[i] + offset);
        s->n++;
        sum_add_compensated(s, arg->data[r].d);
      }
      return;
    case VPQ_AGG_MIN:
    case VPQ_AGG_MAX: {
      bool min = spec->kind == VPQ_AGG_MIN;
      for (int i = 0; i < n; i++) {
        int r = rows[i];
        if (arg->null[r]) continue;
        agg_best *b = (agg_best *)(states[i] + offset);
        double x = arg->data[r].d;
        if (!b->n || (min ? vpq_double_compare(x, b->best.d) < 0 : vpq_double_compare(x, b->best.d) > 0)) b->best.d = x;
        b->n++;
      }
      return;
    }
    default: break;
    }
  }
  if (spec->kind == VPQ_AGG_COUNT) {
    for (int i = 0; i < n; i++) *(int64_t *)(states[i] + offset) += arg->null[rows[i]] ? 0 : diff[rows[i]];
    return;
  }
  for (int i = 0; i < n; i++) {
    int r = rows[i];
    vpq_agg_step(spec, states[i] + offset, arg->data[r], arg->null[r], ts[r], seq ? seq[r] : 0, diff[r]);
  }
}

/* ===== Merging, results, release ===== */

void vpq_agg_merge(const vpq_agg_spec *spec, void *dst, void *src) {
  switch (spec->kind) {
  case VPQ_AGG_COUNT_STAR:
  case VPQ_AGG_COUNT: *(int64_t *)dst += *(int64_t *)src; break;
  case VPQ_AGG_SUM:
  case VPQ_AGG_AVG: {
    agg_sum *d = dst, *s = src;
    d->n += s->n;
    if (spec->arg_type != VPQ_TYPE_DOUBLE) {
      sum_add_wide(d, sum_wide(s));
    } else {
      sum_add_compensated(d, s->sum.d);
      sum_add_compensated(d, s->comp);
    }
    if (table_sum(spec)) {
      agg_table_sum *td = dst, *ts = src;
      td->nan += ts->nan, td->pos_inf += ts->pos_inf, td->neg_inf += ts->neg_inf;
    }
    break;
  }
  case VPQ_AGG_STDDEV: {
    if (spec->retracting) {
      agg_shifted *s = src;
      for (int i = 0; i < s->values.nsorted; i++)
        for (int64_t k = 0; k < s->values.sorted[i].count; k++) shifted_step(spec, dst, s->values.sorted[i].value, 1);
      ((agg_shifted *)dst)->nonfinite += s->nonfinite;
      break;
    }
    agg_spread *d = dst, *s = src;
    if (!s->n) break;
    if (!d->n) {
      *d = *s;
      break;
    }
    /* s's values about d's shift: x − K_d = (x − K_s) + δ (with BIGINTs, each relative to its origin) */
    double delta = (double)((__int128)s->origin - d->origin) + s->shift - d->shift;
    double s1 = s->s1 + s->c1, s2 = s->s2 + s->c2, n = (double)s->n;
    comp_add(&d->s1, &d->c1, s1);
    comp_add(&d->s1, &d->c1, n * delta);
    comp_add(&d->s2, &d->c2, s2);
    comp_add(&d->s2, &d->c2, 2 * delta * s1);
    comp_add(&d->s2, &d->c2, n * delta * delta);
    d->n += s->n;
    break;
  }
  case VPQ_AGG_MIN:
  case VPQ_AGG_MAX: {
    agg_best *d = dst, *s = src;
    if (spec->retracting) {
      for (int i = 0; i < s->nsorted; i++) sorted_add(spec, d, s->sorted[i].value, s->sorted[i].count);
      d->n = d->nsorted;
      if (d->nsorted) d->best = spec->kind == VPQ_AGG_MIN ? d->sorted[0].value : d->sorted[d->nsorted - 1].value;
    } else if (s->n) {
      int c = d->n ? value_cmp(spec, s->best, d->best) : 0;
      if (!d->n || (spec->kind == VPQ_AGG_MIN ? c < 0 : c > 0)) d->best = s->best;
      d->n += s->n;
    }
    break;
  }
  case VPQ_AGG_FIRST:
  case VPQ_AGG_LAST: {
    if (spec->retracting) {
      samples_merge(spec, dst, src);
      break;
    }
    agg_at *d = dst, *s = src;
    if (s->has && (!d->has || (spec->kind == VPQ_AGG_FIRST ? s->ts < d->ts : s->ts >= d->ts))) *d = *s;
    break;
  }
  case VPQ_AGG_COUNT_DISTINCT: {
    agg_set *s = src;
    for (int64_t i = 0; i < s->cap; i++)
      if (s->slots[i].count > 0) set_add(dst, s->slots[i].value, s->slots[i].count);
    if (s->has_zero_key && s->zero_count > 0) set_add(dst, (vpq_datum){0}, s->zero_count);
    break;
  }
  case VPQ_AGG_PERCENTILE: {
    agg_values *s = src;
    for (int64_t i = 0; i < s->n; i++) vpq_agg_step(spec, dst, s->values[i], false, 0, 0, 1);
    break;
  }
  case VPQ_AGG_INTEGRATE:
  case VPQ_AGG_TIME_WEIGHTED_AVG: samples_merge(spec, dst, src); break;
  }
  vpq_agg_destroy(spec, src);
  vpq_agg_init(spec, src);
}

bool vpq_agg_final(const vpq_agg_spec *spec, const void *state, vpq_datum *out) {
  switch (spec->kind) {
  case VPQ_AGG_COUNT_STAR:
  case VPQ_AGG_COUNT: out->i = *(const int64_t *)state; return true;
  case VPQ_AGG_SUM: {
    const agg_sum *s = state;
    *out = s->sum;
    if (spec->arg_type == VPQ_TYPE_DOUBLE) {
      out->d = double_sum(spec, s);
      return s->n > 0;
    }
    __int128 sum = sum_wide(s);
    return s->n > 0 && sum >= INT64_MIN && sum <= INT64_MAX; /* out of BIGINT range: NULL */
  }
  case VPQ_AGG_AVG: {
    const agg_sum *s = state;
    if (s->n <= 0) return false;
    double sum = spec->arg_type != VPQ_TYPE_DOUBLE ? (double)sum_wide(s) : double_sum(spec, s);
    out->d = sum / (double)s->n;
    return true;
  }
  case VPQ_AGG_STDDEV: {
    if (spec->retracting) {
      agg_shifted *v = (agg_shifted *)state; /* re-basing is invisible to callers */
      if (v->n + v->nonfinite < 2) return false;
      out->d = v->nonfinite > 0 ? NAN : shifted_stddev(spec, v);
      return true;
    }
    const agg_spread *w = state;
    if (w->n < 2) return false;
    out->d = spread_stddev(w->s1, w->c1, w->s2, w->c2, w->n); /* NaN (a non-finite value) stays NaN */
    return true;
  }
  case VPQ_AGG_MIN:
  case VPQ_AGG_MAX: {
    const agg_best *b = state;
    *out = b->best;
    return b->n > 0;
  }
  case VPQ_AGG_FIRST:
  case VPQ_AGG_LAST: {
    if (spec->retracting) {
      const agg_samples *s = state;
      if (s->n == 0) return false;
      *out = s->s[spec->kind == VPQ_AGG_FIRST ? 0 : s->n - 1].value;
      return true;
    }
    const agg_at *a = state;
    *out = a->value;
    return a->has;
  }
  case VPQ_AGG_COUNT_DISTINCT: out->i = ((const agg_set *)state)->distinct; return true;
  case VPQ_AGG_PERCENTILE: {
    const agg_values *v = state;
    if (v->n == 0) return false;
    double pos = spec->param * (double)(v->n - 1);
    int64_t lo = (int64_t)floor(pos);
    if (lo >= v->n - 1) lo = v->n - 1;
    double frac = pos - (double)lo;
    double a = as_double(spec->arg_type, values_rank(spec, v, lo));
    double b = lo + 1 < v->n ? as_double(spec->arg_type, values_rank(spec, v, lo + 1)) : a;
    double result = frac == 0 ? a : a + frac * (b - a);
    if (spec->result_type == VPQ_TYPE_TIMESTAMP) out->i = (int64_t)llround(result);
    else out->d = result;
    return true;
  }
  case VPQ_AGG_INTEGRATE: {
    const agg_samples *s = state;
    if (s->n == 0) return false;
    out->d = (running_integral(spec) ? s->integral : samples_integral(s)) / 3600000.0;
    return true;
  }
  case VPQ_AGG_TIME_WEIGHTED_AVG: {
    const agg_samples *s = state;
    if (s->n == 0) return false;
    int64_t span = s->s[s->n - 1].ts - s->s[0].ts;
    if (span > 0) {
      out->d = (running_integral(spec) ? s->integral : samples_integral(s)) / (double)span;
    } else {
      double sum = 0, comp = 0; /* compensated: 38.9 + 1e12 − 70.5 − 1e12 keeps its digits */
      for (int64_t i = 0; i < s->n; i++) comp_add(&sum, &comp, s->s[i].value.d);
      out->d = (sum + comp) / (double)s->n;
    }
    return true;
  }
  }
  return false;
}

void vpq_agg_destroy(const vpq_agg_spec *spec, void *state) {
  switch (spec->kind) {
  case VPQ_AGG_MIN:
  case VPQ_AGG_MAX: free(((agg_best *)state)->sorted); break;
  case VPQ_AGG_STDDEV:
    if (spec->retracting) free(((agg_shifted *)state)->values.sorted);
    break;
  case VPQ_AGG_COUNT_DISTINCT: free(((agg_set *)state)->slots); break;
  case VPQ_AGG_PERCENTILE: free(((agg_values *)state)->values); break;
  case VPQ_AGG_FIRST:
  case VPQ_AGG_LAST:
    if (spec->retracting) free(((agg_samples *)state)->s);
    break;
  case VPQ_AGG_INTEGRATE:
  case VPQ_AGG_TIME_WEIGHTED_AVG: free(((agg_samples *)state)->s); break;
  default: break;
  }
}

/* ===== Checkpoints ===== */

/* Values and counters read back are bounded: counts by what can be allocated, counters and
 * sample times far from overflow (later steps add ±1 to counters and subtract times). */
enum { AGG_MAX_VALUES = INT32_MAX / 2 };
#define AGG_COUNTER_LIMIT ((int64_t)1 << 62)

static int64_t get_counter(vpq_ckpt_in *in, int64_t min) {
  int64_t v = vpq_ckpt_get_i64(in);
  if (v < min || v > AGG_COUNTER_LIMIT) {
    vpq_ckpt_fail(in, "an aggregate counter out of range");
    return 0;
  }
  return v;
}

/* A value of the argument type; a STRING must be an id of the string pool. */
static vpq_datum get_value(const vpq_agg_spec *spec, vpq_ckpt_in *in) {
  vpq_datum v = {.i = vpq_ckpt_get_i64(in)};
  if (spec->arg_type == VPQ_TYPE_STRING && spec->intern &&
      (v.i < 0 || (uint64_t)v.i >= vpq_intern_count(spec->intern))) {
    vpq_ckpt_fail(in, "an aggregate value names no string");
    v.i = 0;
  }
  return v;
}

void vpq_agg_save(const vpq_agg_spec *spec, const void *state, vpq_ckpt_out *out) {
  switch (spec->kind) {
  case VPQ_AGG_COUNT_STAR:
  case VPQ_AGG_COUNT: vpq_ckpt_put_i64(out, *(const int64_t *)state); break;
  case VPQ_AGG_SUM:
  case VPQ_AGG_AVG: {
    const agg_sum *s = state;
    vpq_ckpt_put_i64(out, s->n);
    vpq_ckpt_put_i64(out, s->sum.i);
    if (spec->arg_type != VPQ_TYPE_DOUBLE) vpq_ckpt_put_i64(out, s->hi);
    else vpq_ckpt_put_f64(out, s->comp);
    if (table_sum(spec)) {
      const agg_table_sum *t = state;
      vpq_ckpt_put_i64(out, t->nan);
      vpq_ckpt_put_i64(out, t->pos_inf);
      vpq_ckpt_put_i64(out, t->neg_inf);
    }
    break;
  }
  case VPQ_AGG_STDDEV: {
    if (spec->retracting) {
      const agg_shifted *v = state;
      vpq_ckpt_put_i64(out, v->n);
      vpq_ckpt_put_i64(out, v->nonfinite);
      vpq_ckpt_put_i64(out, v->origin);
      const double fields[] = {v->shift, v->s1, v->c1, v->s2, v->c2, v->peak};
      for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) vpq_ckpt_put_f64(out, fields[i]);
      vpq_ckpt_put_u64(out, (uint64_t)v->values.nsorted);
      for (int i = 0; i < v->values.nsorted; i++) {
        vpq_ckpt_put_i64(out, v->values.sorted[i].value.i);
        vpq_ckpt_put_i64(out, v->values.sorted[i].count);
      }
      break;
    }
    const agg_spread *w = state;
    vpq_ckpt_put_i64(out, w->n);
    vpq_ckpt_put_i64(out, w->origin);
    const double fields[] = {w->shift, w->s1, w->c1, w->s2, w->c2};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) vpq_ckpt_put_f64(out, fields[i]);
    break;
  }
  case VPQ_AGG_MIN:
  case VPQ_AGG_MAX: {
    const agg_best *b = state;
    vpq_ckpt_put_i64(out, b->n);
    vpq_ckpt_put_i64(out, b->best.i);
    vpq_ckpt_put_u64(out, (uint64_t)b->nsorted);
    for (int i = 0; i < b->nsorted; i++) {
      vpq_ckpt_put_i64(out, b->sorted[i].value.i);
      vpq_ckpt_put_i64(out, b->sorted[i].count);
    }
    break;
  }
  case VPQ_AGG_FIRST:
  case VPQ_AGG_LAST: {
    if (spec->retracting) {
      const agg_samples *s = state;
      vpq_ckpt_put_u64(out, (uint64_t)s->n);
      for (int64_t i = 0; i < s->n; i++) {
        vpq_ckpt_put_i64(out, s->s[i].ts);
        vpq_ckpt_put_i64(out, s->s[i].seq);
        vpq_ckpt_put_i64(out, s->s[i].value.i);
      }
      break;
    }
    const agg_at *a = state;
    vpq_ckpt_put_u64(out, a->has);
    vpq_ckpt_put_i64(out, a->ts);
    vpq_ckpt_put_i64(out, a->value.i);
    break;
  }
  case VPQ_AGG_COUNT_DISTINCT: {
    const agg_set *s = state;
    vpq_ckpt_put_u64(out, s->has_zero_key);
    vpq_ckpt_put_i64(out, s->zero_count);
    int64_t n = 0;
    for (int64_t i = 0; i < s->cap; i++) n += s->slots[i].count > 0;
    vpq_ckpt_put_u64(out, (uint64_t)n);
    for (int64_t i = 0; i < s->cap; i++) {
      if (s->slots[i].count <= 0) continue;
      vpq_ckpt_put_i64(out, s->slots[i].value.i);
      vpq_ckpt_put_i64(out, s->slots[i].count);
    }
    break;
  }
  case VPQ_AGG_PERCENTILE: {
    agg_values *v = (agg_values *)state; /* merging its two runs is invisible to callers */
    values_merge(spec, v);                /* so that a restart keeps the order of equal values */
    vpq_ckpt_put_u64(out, v->nsorted == v->n); /* sorted: the values are one sorted run */
    vpq_ckpt_put_u64(out, (uint64_t)v->n);
    for (int64_t i = 0; i < v->n; i++) vpq_ckpt_put_i64(out, v->values[i].i);
    break;
  }
  case VPQ_AGG_INTEGRATE:
  case VPQ_AGG_TIME_WEIGHTED_AVG: {
    const agg_samples *s = state;
    vpq_ckpt_put_f64(out, s->integral);
    vpq_ckpt_put_u64(out, (uint64_t)s->n);
    for (int64_t i = 0; i < s->n; i++) {
      vpq_ckpt_put_i64(out, s->s[i].ts);
      if (spec->retracting) vpq_ckpt_put_i64(out, s->s[i].seq);
      vpq_ckpt_put_f64(out, s->s[i].value.d);
    }
    break;
  }
  }
}

/* A sorted value→count array (min/max, stddev over a changelog) into b->sorted. */
static void load_sorted_values(const vpq_agg_spec *spec, agg_best *b, vpq_ckpt_in *in) {
  int64_t n = vpq_ckpt_get_count(in, AGG_MAX_VALUES);
  if (n && !spec->retracting) vpq_ckpt_fail(in, "sorted values in an aggregate over a stream");
  if (in->error || !n) return;
  b->sorted = agg_realloc(NULL, sizeof *b->sorted * (size_t)n);
  b->cap = (int)n;
  for (int64_t i = 0; i < n && !in->error; i++) {
    vpq_datum value = get_value(spec, in);
    int64_t count = get_counter(in, 1);
    if (b->nsorted && value_cmp(spec, b->sorted[b->nsorted - 1].value, value) >= 0)
      vpq_ckpt_fail(in, "sorted values out of order");
    b->sorted[b->nsorted++] = (agg_value_count){value, count};
  }
}

/* Min/max: the best value and, over a changelog, the sorted value→count array. */
static void load_best(const vpq_agg_spec *spec, agg_best *b, vpq_ckpt_in *in) {
  b->n = get_counter(in, 0);
  b->best = get_value(spec, in);
  load_sorted_values(spec, b, in);
  if (b->nsorted && b->n != b->nsorted) vpq_ckpt_fail(in, "a min/max count that is not its number of values");
}

/* Samples in time order: integrate's and twa's values as DOUBLEs, first's and last's as
 * values of the argument's type. */
static void load_samples(const vpq_agg_spec *spec, agg_samples *s, vpq_ckpt_in *in) {
  const bool doubles = spec->kind == VPQ_AGG_INTEGRATE || spec->kind == VPQ_AGG_TIME_WEIGHTED_AVG;
  int64_t n = vpq_ckpt_get_count(in, AGG_MAX_VALUES);
  if (in->error || !n) return;
  samples_reserve(s, n);
  for (int64_t i = 0; i < n && !in->error; i++) {
    int64_t ts = vpq_ckpt_get_i64(in), seq = spec->retracting ? vpq_ckpt_get_i64(in) : 0;
    vpq_datum value = doubles ? (vpq_datum){.d = vpq_ckpt_get_f64(in)} : get_value(spec, in);
    if (ts < -AGG_COUNTER_LIMIT || ts > AGG_COUNTER_LIMIT) vpq_ckpt_fail(in, "a sample time out of range");
    const agg_sample sample = {ts, seq, value};
    if (i && sample_before(&sample, &s->s[i - 1])) vpq_ckpt_fail(in, "samples out of time order");
    s->s[s->n++] = sample;
  }
}

void vpq_agg_load(const vpq_agg_spec *spec, void *state, vpq_ckpt_in *in) {
  switch (spec->kind) {
  case VPQ_AGG_COUNT_STAR:
  case VPQ_AGG_COUNT: *(int64_t *)state = get_counter(in, -AGG_COUNTER_LIMIT); break;
  case VPQ_AGG_SUM:
  case VPQ_AGG_AVG: {
    agg_sum *s = state;
    s->n = get_counter(in, -AGG_COUNTER_LIMIT);
    s->sum.i = vpq_ckpt_get_i64(in);
    if (spec->arg_type != VPQ_TYPE_DOUBLE) s->hi = get_counter(in, -AGG_COUNTER_LIMIT);
    else s->comp = vpq_ckpt_get_f64(in);
    if (table_sum(spec)) {
      agg_table_sum *t = state;
      t->nan = get_counter(in, 0);
      t->pos_inf = get_counter(in, 0);
      t->neg_inf = get_counter(in, 0);
    }
    break;
  }
  case VPQ_AGG_STDDEV: {
    if (spec->retracting) {
      agg_shifted *v = state;
      v->n = get_counter(in, 0);
      v->nonfinite = get_counter(in, -AGG_COUNTER_LIMIT);
      v->origin = vpq_ckpt_get_i64(in);
      double *fields[] = {&v->shift, &v->s1, &v->c1, &v->s2, &v->c2, &v->peak};
      for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) *fields[i] = vpq_ckpt_get_f64(in);
      load_sorted_values(spec, &v->values, in);
      int64_t count = 0;
      for (int i = 0; i < v->values.nsorted && count <= AGG_COUNTER_LIMIT; i++) {
        count += v->values.sorted[i].count;
        if (!isfinite(centred(spec, v->values.sorted[i].value, v->origin))) vpq_ckpt_fail(in, "a non-finite stddev value");
      }
      if (!in->error && count != v->n) vpq_ckpt_fail(in, "a stddev count that is not its number of values");
      break;
    }
    agg_spread *w = state;
    w->n = get_counter(in, 0);
    w->origin = vpq_ckpt_get_i64(in);
    double *fields[] = {&w->shift, &w->s1, &w->c1, &w->s2, &w->c2};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) *fields[i] = vpq_ckpt_get_f64(in);
    break;
  }
  case VPQ_AGG_MIN:
  case VPQ_AGG_MAX: load_best(spec, state, in); break;
  case VPQ_AGG_FIRST:
  case VPQ_AGG_LAST: {
    if (spec->retracting) {
      load_samples(spec, state, in);
      break;
    }
    agg_at *a = state;
    a->has = vpq_ckpt_get_bool(in);
    a->ts = vpq_ckpt_get_i64(in);
    a->value = get_value(spec, in);
    break;
  }
  case VPQ_AGG_COUNT_DISTINCT: {
    agg_set *s = state;
    s->has_zero_key = vpq_ckpt_get_bool(in);
    s->zero_count = get_counter(in, 0);
    s->distinct = s->has_zero_key && s->zero_count > 0;
    int64_t n = vpq_ckpt_get_count(in, AGG_MAX_VALUES);
    for (int64_t i = 0; i < n && !in->error; i++) {
      vpq_datum value = get_value(spec, in);
      int64_t count = get_counter(in, 1);
      if (value.i == 0) vpq_ckpt_fail(in, "a distinct value in the wrong place");
      if (!in->error) set_add(s, value, count);
    }
    break;
  }
  case VPQ_AGG_PERCENTILE: {
    agg_values *v = state;
    bool sorted = vpq_ckpt_get_bool(in);
    int64_t n = vpq_ckpt_get_count(in, AGG_MAX_VALUES);
    if (in->error || !n) break;
    v->values = agg_realloc(NULL, sizeof *v->values * (size_t)n);
    v->cap = n;
    int (*cmp)(const void *, const void *) = spec->arg_type == VPQ_TYPE_DOUBLE ? datum_cmp_double : datum_cmp_int;
    for (int64_t i = 0; i < n && !in->error; i++) {
      v->values[i] = get_value(spec, in);
      v->n = i + 1;
      if (sorted && i && cmp(&v->values[i - 1], &v->values[i]) > 0) vpq_ckpt_fail(in, "percentile values out of order");
      if (spec->arg_type == VPQ_TYPE_DOUBLE && isnan(v->values[i].d)) vpq_ckpt_fail(in, "a NaN among percentile values");
    }
    v->nsorted = sorted ? v->n : 0;
    if (!sorted) { /* one run, sorted (values_add keeps the values added since a merge in order) */
      qsort(v->values, (size_t)v->n, sizeof *v->values, cmp);
      v->nsorted = v->n;
    }
    break;
  }
  case VPQ_AGG_INTEGRATE:
  case VPQ_AGG_TIME_WEIGHTED_AVG: {
    agg_samples *s = state;
    s->integral = vpq_ckpt_get_f64(in);
    load_samples(spec, s, in);
    break;
  }
  }
}
