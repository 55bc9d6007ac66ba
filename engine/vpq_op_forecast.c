/* vpq_op_forecast.c — the FORECAST operator (DESIGN §4).
 *
 * Rows of the input relation land on a regular grid per key: the value of the row whose `ts`
 * falls in [g, g + step) is the key's value at grid time g (of two rows in one slot, the one
 * with the later ts; at equal ts, the later to arrive; NULL is a missing value). The step is STEP, or inferred as the smallest gap
 * between two timestamps of one key before the first forecast is due. A row older than an issue
 * that went out is late (that issue went out without it): it is counted and dead-lettered
 * through its source's `dead_letter`, and not filed, so that what later issues see does not
 * depend on when late rows arrive.
 *
 *   key ─► history  y[origin] ... y[origin + (n−1)·step]   (+ exogenous features per slot)
 *       ─► model    refitted on the values in [t − history, t) at each issue (or every
 *                   `retrain`; an MLP's training runs in slices, one per issue)
 *       ─► issues   kept until every step they forecast is known: their errors feed the
 *                   80% interval
 *
 * Forecasts are issued at the multiples t of EVERY (epoch-aligned) once the watermark has
 * reached t, from the rows before t; one row per step in [t, t + HORIZON): the BY keys,
 * issued_at, ts, step, value, lo, hi, with event time t. An issue is skipped for a key with no
 * value in its history window, and after the end of a bounded input no issue goes beyond one
 * step past the last row. The model sees each step's features as they were one season
 * earlier, the history's as the future's (see lagged_features).
 *
 * Intervals: each issue records the volatility of its history (the mean absolute change over
 * a season in its last VOLATILITY_SEASONS seasons), and the errors of its steps are kept
 * divided by it; an issue's interval at step s is its forecast plus its own volatility times
 * the 10th and 90th percentiles of the kept errors at s. Scaled so, the interval widens as soon
 * as a calm series turns volatile: on the benchmark's SE3 day-ahead prices the 80% interval of
 * Holt–Winters covered 72% of the actual values unscaled, 79% scaled (all models and series:
 * 77–83% against 72–81%).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vpq_expr.h"
#include "vpq_op.h"

enum {
  ERRORS_KEPT = 200,  /* past errors kept per horizon step */
  ERRORS_NEEDED = 10, /* fewer errors than this: no interval (lo and hi NULL) */
  VOLATILITY_SEASONS = 7, /* the seasons of history whose changes scale the interval errors */
};

/* A forecast already issued, kept until its steps are known. */
typedef struct fc_issue {
  int64_t issued_at;
  double scale;   /* the history's volatility when issued: its errors are kept divided by it (0: unknown, not kept) */
  double *values; /* steps values, then steps lo, then steps hi (NAN: no interval) */
} fc_issue;

/* Accuracy sums of one horizon step, over the scored issues (see vpq_forecast_score). */
typedef struct fc_sums {
  int64_t n, naive_n, interval_n, covered;
  double abs, sq, smape;
  double paired_abs, naive_abs; /* over the targets that have a seasonal naive forecast */
} fc_sums;

typedef struct fc_key {
  vpq_datum *key;
  uint8_t *key_null;
  uint64_t hash;
  int64_t origin;  /* grid time of y[0] */
  double *y;       /* n values (NAN: missing), room for cap */
  int64_t *y_ts;   /* n: the ts of the row each value came from (VPQ_TS_MIN: none) */
  double *x;       /* n × nfeatures */
  int n, cap;
  int64_t last_ts; /* grid time of the latest value */
  int64_t fitted_at; /* the issue its model was last fitted at (VPQ_TS_MIN: never) */
  vpq_model *model;
  fc_issue *issues;
  int nissues, issues_cap;
  double *errors;  /* steps × ERRORS_KEPT, a ring per step */
  int *nerrors;    /* errors written per step (the ring holds the last ERRORS_KEPT) */
  int64_t *raw_ts; /* before the step is known: the rows' times and values */
  double *raw_y;
  double *raw_x;
  int nraw, raw_cap;
} fc_key;

typedef struct forecast_op {
  vpq_op base;
  const vpq_plan_query *query;
  const vpq_plan_forecast *fc;
  const vpq_source_slot *slots; /* per relation: where late rows are dead-lettered */
  vpq_program *value;
  vpq_program **by;
  vpq_program **features;
  fc_key **keys; /* in order of first appearance */
  int nkeys, keys_cap;
  int *index;    /* open addressing: key hash → keys[] position, -1 empty */
  int index_cap;
  int64_t step_ms;
  int steps;     /* HORIZON / step */
  int season;    /* season in steps */
  int history;   /* history window in steps */
  int64_t wm;
  int64_t next_issue;
  int64_t last_ts; /* latest row time over all keys */
  int64_t issues_done;
  int64_t last_issue; /* the time of the latest issue made (VPQ_TS_MIN: none) */
  int64_t forecast_ns; /* CPU time spent fitting and predicting */
  int64_t forecasts;   /* key forecasts made */
  int64_t fits;        /* model refits among them */
  /* In this process (not checkpointed): CPU time spent in fits and training slices, the
   * longest one of a key, training slices run, the longest and the last issue over all keys. */
  int64_t fit_ns, fit_max_ns, slices, issue_max_ns, issue_last_ns;
  bool told_unknown_feature; /* the log said that a feature had no value in a history */
  fc_sums *sums;   /* per horizon step */
  double *scratch; /* the interval errors of one step (steps × ERRORS_KEPT) */
  int64_t score_from, score_to; /* issues scored: issued_at in [from, to) */
} forecast_op;

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

/* The CPU time of the calling thread: what fitting and forecasting cost, whatever else the
 * machine runs. */
static int64_t cpu_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* ===== Keys ===== */

static void index_rebuild(forecast_op *f, int cap) {
  free(f->index);
  f->index_cap = cap;
  f->index = malloc(sizeof *f->index * (size_t)cap);
  if (!f->index) abort();
  for (int i = 0; i < cap; i++) f->index[i] = -1;
  for (int k = 0; k < f->nkeys; k++) {
    int at = (int)(f->keys[k]->hash & (uint64_t)(cap - 1));
    while (f->index[at] >= 0) at = (at + 1) & (cap - 1);
    f->index[at] = k;
  }
}

/* The series of a key, created (empty) on first sight. */
static fc_key *key_find(forecast_op *f, const vpq_datum *key, const uint8_t *key_null) {
  int nby = f->fc->nby;
  uint64_t hash = vpq_op_hash_datums(key, key_null, nby, 0);
  int at = (int)(hash & (uint64_t)(f->index_cap - 1));
  for (; f->index[at] >= 0; at = (at + 1) & (f->index_cap - 1)) {
    fc_key *k = f->keys[f->index[at]];
    if (k->hash != hash) continue;
    bool same = true;
    for (int i = 0; i < nby && same; i++)
      same = k->key_null[i] == key_null[i] && (key_null[i] || k->key[i].i == key[i].i);
    if (same) return k;
  }
  fc_key *k = calloc(1, sizeof *k);
  if (!k) abort();
  k->key = malloc(sizeof *k->key * (size_t)(nby + 1));
  k->key_null = malloc((size_t)nby + 1);
  if (!k->key || !k->key_null) abort();
  memcpy(k->key, key, sizeof *key * (size_t)nby);
  memcpy(k->key_null, key_null, (size_t)nby);
  k->hash = hash;
  k->last_ts = VPQ_TS_MIN;
  k->fitted_at = VPQ_TS_MIN;
  if (f->nkeys == f->keys_cap) {
    f->keys_cap = f->keys_cap ? 2 * f->keys_cap : 16;
    f->keys = realloc(f->keys, sizeof *f->keys * (size_t)f->keys_cap);
    if (!f->keys) abort();
  }
  f->keys[f->nkeys++] = k;
  if (2 * f->nkeys > f->index_cap) index_rebuild(f, 2 * f->index_cap);
  else f->index[at] = f->nkeys - 1;
  return k;
}

/* Frees a key with its history, model and kept issues. */
static void key_free(fc_key *k) {
  for (int i = 0; i < k->nissues; i++) free(k->issues[i].values);
  free(k->issues);
  free(k->errors);
  free(k->nerrors);
  vpq_model_free(k->model);
  free(k->y);
  free(k->y_ts);
  free(k->x);
  free(k->raw_ts);
  free(k->raw_y);
  free(k->raw_x);
  free(k->key);
  free(k->key_null);
  free(k);
}

/* ===== History ===== */

/* Makes room in k's grid for slot `g` (grid time), dropping what falls out of the history. */
static int history_slot(forecast_op *f, fc_key *k, int64_t g) {
  int nf = f->fc->nfeatures;
  if (k->n == 0) k->origin = g;
  if (g < k->origin) {
    int64_t shift = (g - k->origin) / f->step_ms; /* negative */
    if (k->n - shift > 4 * (int64_t)f->history) return -1; /* too old to matter */
    int by = (int)-shift;
    if (k->n + by > k->cap) {
      k->cap = k->n + by + 64;
      k->y = realloc(k->y, sizeof *k->y * (size_t)k->cap);
      k->y_ts = realloc(k->y_ts, sizeof *k->y_ts * (size_t)k->cap);
      k->x = realloc(k->x, sizeof *k->x * (size_t)k->cap * (size_t)(nf + 1));
      if (!k->y || !k->y_ts || !k->x) abort();
    }
    memmove(k->y + by, k->y, sizeof *k->y * (size_t)k->n);
    memmove(k->y_ts + by, k->y_ts, sizeof *k->y_ts * (size_t)k->n);
    memmove(k->x + (size_t)by * (size_t)nf, k->x, sizeof *k->x * (size_t)k->n * (size_t)nf);
    for (int i = 0; i < by; i++) k->y[i] = NAN, k->y_ts[i] = VPQ_TS_MIN;
    for (int i = 0; i < by * nf; i++) k->x[i] = NAN;
    k->n += by;
    k->origin = g;
  }
  int64_t at = (g - k->origin) / f->step_ms;
  if (at >= k->n) {
    int64_t need = at + 1;
    if (need > 2 * (int64_t)f->history + 2) {
      /* Drop the oldest slots so that the grid holds the last `history` ones. */
      int64_t drop = need - f->history - 1;
      if (drop > k->n) drop = k->n;
      memmove(k->y, k->y + drop, sizeof *k->y * (size_t)(k->n - drop));
      memmove(k->y_ts, k->y_ts + drop, sizeof *k->y_ts * (size_t)(k->n - drop));
      memmove(k->x, k->x + (size_t)drop * (size_t)nf, sizeof *k->x * (size_t)(k->n - drop) * (size_t)nf);
      k->n -= (int)drop;
      k->origin += drop * f->step_ms;
      at -= drop;
      if (at > k->n) {
        k->origin += (at - k->n) * f->step_ms;
        at = k->n;
      }
    }
    if (at + 1 > k->cap) {
      k->cap = (int)(at + 1) * 2;
      if (k->cap < 64) k->cap = 64;
      k->y = realloc(k->y, sizeof *k->y * (size_t)k->cap);
      k->y_ts = realloc(k->y_ts, sizeof *k->y_ts * (size_t)k->cap);
      k->x = realloc(k->x, sizeof *k->x * (size_t)k->cap * (size_t)(nf + 1));
      if (!k->y || !k->y_ts || !k->x) abort();
    }
    for (int64_t i = k->n; i <= at; i++) {
      k->y[i] = NAN;
      k->y_ts[i] = VPQ_TS_MIN;
      for (int j = 0; j < nf; j++) k->x[i * nf + j] = NAN;
    }
    k->n = (int)at + 1;
  }
  return (int)at;
}

/* Puts a row's value and features into the grid slot of its time, unless the slot holds a row
 * with a later ts (at an equal ts the later to arrive replaces). */
static void history_put(forecast_op *f, fc_key *k, int64_t ts, double y, const double *x) {
  int64_t g = floor_div(ts, f->step_ms) * f->step_ms;
  int at = history_slot(f, k, g);
  if (at < 0 || k->y_ts[at] > ts) return;
  int nf = f->fc->nfeatures;
  k->y[at] = y;
  k->y_ts[at] = ts;
  for (int j = 0; j < nf; j++) k->x[(size_t)at * (size_t)nf + (size_t)j] = x[j];
  if (g > k->last_ts) k->last_ts = g;
}

/* Keeps a row as it came, until the step is inferred. */
static void raw_put(fc_key *k, int nf, int64_t ts, double y, const double *x) {
  if (k->nraw == k->raw_cap) {
    k->raw_cap = k->raw_cap ? 2 * k->raw_cap : 16;
    k->raw_ts = realloc(k->raw_ts, sizeof *k->raw_ts * (size_t)k->raw_cap);
    k->raw_y = realloc(k->raw_y, sizeof *k->raw_y * (size_t)k->raw_cap);
    k->raw_x = realloc(k->raw_x, sizeof *k->raw_x * (size_t)k->raw_cap * (size_t)(nf + 1));
    if (!k->raw_ts || !k->raw_y || !k->raw_x) abort();
  }
  k->raw_ts[k->nraw] = ts;
  k->raw_y[k->nraw] = y;
  memcpy(k->raw_x + (size_t)k->nraw * (size_t)nf, x, sizeof *x * (size_t)nf);
  k->nraw++;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Gives key k (once the step is known) its model and its interval errors. */
static void key_model_new(forecast_op *f, fc_key *k) {
  vpq_model_config config = f->fc->model;
  config.step_ms = f->step_ms;
  config.season = f->season;
  config.nfeatures = f->fc->nfeatures;
  config.spread = k->hash;
  k->model = vpq_model_new(&config);
  k->errors = malloc(sizeof *k->errors * (size_t)f->steps * ERRORS_KEPT);
  k->nerrors = calloc((size_t)f->steps, sizeof *k->nerrors);
  if (!k->model || !k->errors || !k->nerrors) abort();
}

/* Sets the step and everything that depends on it, then moves the buffered rows onto the grid. */
static void step_known(forecast_op *f, int64_t step_ms) {
  const vpq_plan_forecast *fc = f->fc;
  f->step_ms = step_ms;
  f->steps = (int)((fc->horizon_ms + step_ms - 1) / step_ms);
  f->season = (int)(fc->season_ms / step_ms);
  f->history = (int)(fc->history_ms / step_ms);
  if (f->history < 2) f->history = 2;
  f->sums = calloc((size_t)f->steps, sizeof *f->sums);
  f->scratch = malloc(sizeof *f->scratch * (size_t)f->steps * ERRORS_KEPT);
  if (!f->sums || !f->scratch) abort();
  for (int i = 0; i < f->nkeys; i++) {
    fc_key *k = f->keys[i];
    key_model_new(f, k);
    for (int r = 0; r < k->nraw; r++)
      history_put(f, k, k->raw_ts[r], k->raw_y[r], k->raw_x + (size_t)r * (size_t)fc->nfeatures);
    free(k->raw_ts);
    free(k->raw_y);
    free(k->raw_x);
    k->raw_ts = NULL;
    k->raw_y = NULL;
    k->raw_x = NULL;
    k->nraw = k->raw_cap = 0;
  }
}

/* Infers the step for the issue at `t` from the buffered rows before t: the smallest gap
 * between two times of one key. 0, with *second set to the earliest time at which some key has
 * two distinct times (VPQ_TS_MAX: none yet), when no key has two before t. */
static int64_t step_infer(const forecast_op *f, int64_t t, int64_t *second) {
  int64_t best = 0;
  *second = VPQ_TS_MAX;
  for (int i = 0; i < f->nkeys; i++) {
    fc_key *k = f->keys[i];
    int64_t *ts = malloc(sizeof *ts * (size_t)(k->nraw + 1));
    if (!ts) abort();
    memcpy(ts, k->raw_ts, sizeof *ts * (size_t)k->nraw);
    qsort(ts, (size_t)k->nraw, sizeof *ts, cmp_i64);
    bool two = false;
    for (int r = 1; r < k->nraw; r++) {
      int64_t gap = ts[r] - ts[r - 1];
      if (gap <= 0) continue;
      if (!two && ts[r] < *second) *second = ts[r];
      two = true;
      if (ts[r] < t && (best == 0 || gap < best)) best = gap;
    }
    free(ts);
  }
  return best;
}

/* ===== Issuing ===== */

/* The q-quantile (0..1) of v[0..n) (n > 0), linearly interpolated between order statistics;
 * reorders v. */
static double quantile(double *v, int n, double q) {
  double pos = q * (n - 1);
  int lo = (int)pos;
  double below = vpq_model_select_kth(v, n, lo);
  if (lo >= n - 1) return below;
  double above = v[lo + 1];
  for (int i = lo + 2; i < n; i++) above = fmin(above, v[i]);
  return below + (pos - lo) * (above - below);
}

/* Value of k's grid at time g, NAN when unknown. */
static double history_at(const forecast_op *f, const fc_key *k, int64_t g) {
  if (k->n == 0 || g < k->origin) return NAN;
  int64_t at = (g - k->origin) / f->step_ms;
  return at < k->n ? k->y[at] : NAN;
}

/* The seasonal naive forecast of time g as known before `issued_at`: the value a whole number
 * of seasons earlier (the last value before issued_at when there is no season). */
static double naive_at(const forecast_op *f, const fc_key *k, int64_t issued_at, int64_t g) {
  int64_t period = (f->season ? f->season : 1) * f->step_ms;
  int64_t back = g - period;
  if (!f->season) back = issued_at - f->step_ms;
  while (back >= issued_at) back -= period;
  return history_at(f, k, back);
}

/* Adds the errors of step s of `is` to the interval errors and the accuracy sums. */
static void score_step(forecast_op *f, fc_key *k, const fc_issue *is, int s) {
  int64_t g = is->issued_at + s * f->step_ms;
  double actual = history_at(f, k, g), value = is->values[s];
  if (isnan(actual) || isnan(value)) return;
  double err = actual - value;
  if (is->scale > 0) {
    k->errors[(size_t)s * ERRORS_KEPT + (size_t)(k->nerrors[s] % ERRORS_KEPT)] = err / is->scale;
    k->nerrors[s]++;
  }
  if (is->issued_at < f->score_from || is->issued_at >= f->score_to) return;
  fc_sums *sum = &f->sums[s];
  sum->n++;
  sum->abs += fabs(err);
  sum->sq += err * err;
  double denom = fabs(actual) + fabs(value);
  if (denom > 0) sum->smape += 2 * fabs(err) / denom;
  double naive = naive_at(f, k, is->issued_at, g);
  if (!isnan(naive)) {
    sum->naive_n++;
    sum->paired_abs += fabs(err);
    sum->naive_abs += fabs(actual - naive);
  }
  double lo = is->values[f->steps + s], hi = is->values[2 * f->steps + s];
  if (!isnan(lo)) {
    sum->interval_n++;
    sum->covered += actual >= lo && actual <= hi;
  }
}

/* Scores the kept issues whose steps are all before `t` and forgets them; at the end of the
 * input (`end`), forgets the others unscored (their steps are not all known). */
static void score_issues(forecast_op *f, fc_key *k, int64_t t, bool end) {
  int kept = 0;
  for (int i = 0; i < k->nissues; i++) {
    fc_issue *is = &k->issues[i];
    bool complete = is->issued_at + f->steps * f->step_ms <= t;
    if (!complete && !end) {
      k->issues[kept++] = *is;
      continue;
    }
    for (int s = 0; complete && s < f->steps; s++) score_step(f, k, is, s);
    free(is->values);
  }
  k->nissues = kept;
}

/* The 80% interval offsets of step s (lo <= 0 <= hi): from its own errors, else from all
 * steps' errors. */
static bool interval(const forecast_op *f, const fc_key *k, int s, double *scratch, double *lo, double *hi) {
  int n = 0;
  int own = k->nerrors[s] < ERRORS_KEPT ? k->nerrors[s] : ERRORS_KEPT;
  if (own >= ERRORS_NEEDED) {
    memcpy(scratch, k->errors + (size_t)s * ERRORS_KEPT, sizeof *scratch * (size_t)own);
    n = own;
  } else {
    for (int j = 0; j < f->steps; j++) {
      int m = k->nerrors[j] < ERRORS_KEPT ? k->nerrors[j] : ERRORS_KEPT;
      memcpy(scratch + n, k->errors + (size_t)j * ERRORS_KEPT, sizeof *scratch * (size_t)m);
      n += m;
    }
    if (n < ERRORS_NEEDED) return false;
  }
  /* widened to hold the forecast itself: errors all of one sign (a model still warming up, a
   * level shift) would put the interval on one side of it */
  *lo = fmin(quantile(scratch, n, 0.10), 0);
  *hi = fmax(quantile(scratch, n, 0.90), 0);
  return true;
}

/* Writes one output row (the query's columns, placed by column_map). */
static void out_row(forecast_op *f, vpq_batch *out, const fc_key *k, int64_t t, int s, double value, bool has_interval,
                    double lo, double hi) {
  const vpq_plan_forecast *fc = f->fc;
  int at = out->n++;
  for (int c = 0; c < out->ncols; c++) out->cols[c].null[at] = 1;
  const int *map = f->query->column_map;
  for (int i = 0; i < fc->nby; i++) {
    if (map[i] < 0) continue;
    out->cols[map[i]].data[at] = k->key[i];
    out->cols[map[i]].null[at] = k->key_null[i];
  }
  vpq_datum vals[6] = {{.i = t}, {.i = t + s * f->step_ms}, {.i = s}, {.d = value}, {.d = value + lo}, {.d = value + hi}};
  for (int i = 0; i < 6; i++) {
    int c = map[fc->nby + i];
    if (c < 0) continue;
    out->cols[c].data[at] = vals[i];
    out->cols[c].null[at] = (i >= 4 && !has_interval) || (i >= 3 && !isfinite(vals[i].d));
  }
  out->ts[at] = t;
  out->wm[at] = f->base.passed_wm;
  out->diff[at] = 1;
  out->origin[at] = (vpq_origin){-1, 0};
}

/* The features the model sees at the n steps of a history x (n × nf) and the h steps after
 * it, (n + h) × nf: each step's values one season earlier (further seasons back while missing;
 * the last value known before the step, or before the forecast for a future step, when there
 * is none that way). A forecast cannot know the features of the future, so it takes them from
 * one season before (seasonal persistence); the model is trained on the same lag, so that what
 * it learns holds for what it is given (SE3 day-ahead prices with the weather of the day
 * before: linear's MAE 17.3 → 16.1 EUR/MWh against training on the weather of the hour). */
static double *lagged_features(forecast_op *f, const double *x, int n, int h) {
  int nf = f->fc->nfeatures, lag = f->season ? f->season : 1;
  double *out = malloc(sizeof *out * (size_t)(n + h) * (size_t)nf);
  double *known = malloc(sizeof *known * (size_t)nf);
  if (!out || !known) abort();
  for (int j = 0; j < nf; j++) known[j] = NAN;
  for (int i = 0; i < n + h; i++) {
    for (int j = 0; j < nf; j++) {
      double v = NAN;
      for (int back = i - lag; back >= 0 && isnan(v); back -= lag)
        if (back < n) v = x[(size_t)back * (size_t)nf + (size_t)j];
      out[(size_t)i * (size_t)nf + (size_t)j] = isnan(v) ? known[j] : v;
    }
    for (int j = 0; j < nf && i < n; j++)
      if (!isnan(x[(size_t)i * (size_t)nf + (size_t)j])) known[j] = x[(size_t)i * (size_t)nf + (size_t)j];
  }
  /* A feature with no value in the whole history (a weather stream that has not started, a
   * join that never matched) would leave the model no row to learn from: it is constant (0)
   * instead, which tells the model nothing, so it forecasts as without the feature. */
  for (int j = 0; j < nf; j++) {
    if (!isnan(known[j])) continue;
    for (int i = 0; i < n + h; i++) out[(size_t)i * (size_t)nf + (size_t)j] = 0;
    if (!f->told_unknown_feature && f->base.rt->log)
      fprintf(f->base.rt->log, "vpq: FORECAST %s: feature %d has no value in a key's history: the model forecasts without it\n",
              f->query->target->name, j + 1);
    f->told_unknown_feature = true;
  }
  free(known);
  return out;
}

/* The volatility of k's history window (n slots from `first`): the mean absolute change over
 * one season (one step without a season) in the last VOLATILITY_SEASONS seasons; 0 (unknown)
 * when the history holds no such change (it is shorter than a season and a step) or every one
 * is 0 (a constant history). An issue of unknown volatility has no interval and keeps no
 * errors: divided by a stand-in, its errors would be off by the series' scale and widen or
 * narrow every later interval with them. */
static double volatility(const forecast_op *f, const fc_key *k, int64_t first, int n) {
  int lag = f->season ? f->season : 1, from = n - VOLATILITY_SEASONS * lag, count = 0;
  double sum = 0.0;
  for (int i = from > lag ? from : lag; i < n; i++) {
    double d = k->y[first + i] - k->y[first + i - lag];
    if (isnan(d)) continue;
    sum += fabs(d);
    count++;
  }
  return count > 0 ? sum / count : 0.0;
}

/* A batch for the rows of one issue (every key's steps, at most VPQ_BATCH_ROWS): scratch memory
 * lasts as long as the input batch, which can bring an issue per row. */
static vpq_batch *issue_batch(const forecast_op *f) {
  const int64_t rows = (int64_t)f->nkeys * f->steps;
  return vpq_op_batch(f->base.rt, f->base.schema, rows < VPQ_BATCH_ROWS ? (int)(rows ? rows : 1) : VPQ_BATCH_ROWS);
}

/* Issues the forecast of key k at time t into `out` (emitting `out` whenever it fills). */
static void issue_key(forecast_op *f, fc_key *k, int64_t t, vpq_batch **out) {
  const vpq_plan_forecast *fc = f->fc;
  int nf = fc->nfeatures;
  score_issues(f, k, t, false);
  /* The history window [t − history, t) on the grid, from what k holds. */
  int64_t from = t - (int64_t)f->history * f->step_ms;
  if (from < k->origin) from = k->origin;
  int64_t first = (from - k->origin) / f->step_ms;
  int64_t end = (t - k->origin + f->step_ms - 1) / f->step_ms;
  if (end > k->n) end = k->n;
  int n = end > first ? (int)(end - first) : 0;
  bool any = false;
  for (int i = 0; i < n && !any; i++) any = !isnan(k->y[first + i]);
  if (!any) return;
  /* Steps between the last slot held and t are forecast too, then dropped. */
  int64_t ts0 = k->origin + first * f->step_ms;
  int skip = (int)((t - (ts0 + (int64_t)n * f->step_ms)) / f->step_ms);
  int h = skip + f->steps;
  double *pred = malloc(sizeof *pred * (size_t)h);
  double *x = nf ? lagged_features(f, k->x + first * nf, n, h) : NULL;
  if (!pred) abort();
  vpq_series series = {ts0, k->y + first, x, n};
  const double *future_x = x ? x + (size_t)n * (size_t)nf : NULL;
  int64_t started = cpu_ns();
  if (k->fitted_at == VPQ_TS_MIN || t - k->fitted_at >= fc->retrain_ms) {
    vpq_model_fit(k->model, &series); /* between refits the model forecasts from the newest values */
    k->fitted_at = t;
    f->fits++;
  } else if (vpq_model_training(k->model)) {
    vpq_model_train(k->model, &series); /* the next slice of a training (the MLP's) */
    f->slices++;
  }
  int64_t fitted = cpu_ns();
  f->fit_ns += fitted - started;
  if (fitted - started > f->fit_max_ns) f->fit_max_ns = fitted - started;
  vpq_model_predict(k->model, &series, future_x, h, pred);
  f->forecast_ns += cpu_ns() - started;
  f->forecasts++;
  fc_issue issue = {t, volatility(f, k, first, n), malloc(sizeof(double) * 3 * (size_t)f->steps)};
  if (!issue.values) abort();
  for (int s = 0; s < f->steps; s++) {
    double value = pred[skip + s], lo = 0, hi = 0;
    bool has = issue.scale > 0 && interval(f, k, s, f->scratch, &lo, &hi);
    lo *= issue.scale;
    hi *= issue.scale;
    issue.values[s] = value;
    issue.values[f->steps + s] = has ? value + lo : NAN;
    issue.values[2 * f->steps + s] = has ? value + hi : NAN;
    if ((*out)->n == (*out)->cap) {
      vpq_op_emit(&f->base, *out);
      *out = issue_batch(f);
    }
    out_row(f, *out, k, t, s, value, has, lo, hi);
  }
  if (k->nissues == k->issues_cap) {
    k->issues_cap = k->issues_cap ? 2 * k->issues_cap : 8;
    k->issues = realloc(k->issues, sizeof *k->issues * (size_t)k->issues_cap);
    if (!k->issues) abort();
  }
  k->issues[k->nissues++] = issue;
  free(pred);
  free(x);
}

static FILE *op_log(const forecast_op *f) { return f->base.rt->log; }

/* Whether an inferred step passes the checks vpq check makes of a STEP given (else it says why
 * on the log): issues between grid slots would see part of a slot after them, a season or
 * horizon between slots would be cut to whole slots, and a step far finer than the season
 * would keep more history than memory holds. */
static bool step_fits(const forecast_op *f, int64_t step) {
  const char *name = f->query->target->name;
  const struct {
    const char *what;
    int64_t ms;
  } lengths[] = {{"EVERY", f->fc->every_ms}, {"the season", f->fc->season_ms}, {"HORIZON", f->fc->horizon_ms}};
  for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
    if (lengths[i].ms % step == 0) continue;
    if (op_log(f))
      fprintf(op_log(f),
              "vpq: FORECAST %s: the step inferred from the rows before the first issue (%lld ms) does not divide %s "
              "(%lld ms): no forecast issued (give STEP)\n",
              name, (long long)step, lengths[i].what, (long long)lengths[i].ms);
    return false;
  }
  const int64_t history_steps = f->fc->history_ms / step, horizon_steps = f->fc->horizon_ms / step;
  if (history_steps <= VPQ_FORECAST_MAX_HISTORY_STEPS && horizon_steps <= VPQ_FORECAST_MAX_HORIZON_STEPS) return true;
  if (op_log(f))
    fprintf(op_log(f),
            "vpq: FORECAST %s: the step inferred (%lld ms) makes %lld steps of history and %lld of HORIZON (at most %d "
            "and %d): no forecast issued (give STEP)\n",
            name, (long long)step, (long long)history_steps, (long long)horizon_steps, VPQ_FORECAST_MAX_HISTORY_STEPS,
            VPQ_FORECAST_MAX_HORIZON_STEPS);
  return false;
}

/* Issues every forecast due at watermark wm, then passes wm on. */
static void advance(forecast_op *f, int64_t wm) {
  if (wm <= f->wm) return;
  f->wm = wm;
  vpq_batch *out = NULL;
  while (f->next_issue != VPQ_TS_MIN && f->next_issue != VPQ_TS_MAX && f->next_issue <= wm) {
    int64_t t = f->next_issue, second;
    if (!f->step_ms) {
      const int64_t step = step_infer(f, t, &second);
      if (!step) {
        /* No key has two rows before t: the issues are skipped all at once up to the first after
         * the time some key has two, or else up to wm (at the end of a bounded input wm is
         * VPQ_TS_MAX: one by one, that would take forever). */
        int64_t every = f->fc->every_ms, upto = second < wm ? second : wm, below = upto / every - (upto % every < 0);
        f->next_issue = below >= VPQ_TS_MAX / every - 1 ? VPQ_TS_MAX : (below + 1) * every;
        if (second < wm) continue;
        if (f->next_issue == VPQ_TS_MAX && op_log(f))
          fprintf(op_log(f), "vpq: FORECAST %s: no key has two rows to infer the step from (give STEP): no forecast issued\n",
                  f->query->target->name);
        continue;
      }
      if (!step_fits(f, step)) {
        f->next_issue = VPQ_TS_MAX; /* for good: the rows that come are not kept either */
        break;
      }
      step_known(f, step);
    }
    if (t > f->last_ts + f->step_ms) break; /* nothing new to forecast from */
    if (!out) out = issue_batch(f);
    int64_t started = cpu_ns();
    for (int i = 0; i < f->nkeys; i++) issue_key(f, f->keys[i], t, &out);
    f->issue_last_ns = cpu_ns() - started;
    if (f->issue_last_ns > f->issue_max_ns) f->issue_max_ns = f->issue_last_ns;
    f->issues_done++;
    f->last_issue = t;
    f->next_issue = t + f->fc->every_ms;
  }
  if (out) vpq_op_emit(&f->base, out);
  if (wm == VPQ_TS_MAX && f->step_ms)
    for (int i = 0; i < f->nkeys; i++) score_issues(f, f->keys[i], f->keys[i]->last_ts + f->step_ms, true);
  vpq_op_emit_watermark(&f->base, wm);
}

void vpq_op_forecast_score_range(vpq_op *op, int64_t from_ms, int64_t to_ms) {
  forecast_op *f = (forecast_op *)op;
  f->score_from = from_ms;
  f->score_to = to_ms;
}

int vpq_op_forecast_score(const vpq_op *op, int step, vpq_forecast_score *out) {
  const forecast_op *f = (const forecast_op *)op;
  memset(out, 0, sizeof *out);
  out->steps = f->steps;
  if (step >= f->steps) return -1;
  fc_sums sum = {0};
  for (int s = step < 0 ? 0 : step; s < (step < 0 ? f->steps : step + 1); s++) {
    const fc_sums *x = &f->sums[s];
    sum.n += x->n;
    sum.naive_n += x->naive_n;
    sum.interval_n += x->interval_n;
    sum.covered += x->covered;
    sum.abs += x->abs;
    sum.sq += x->sq;
    sum.smape += x->smape;
    sum.paired_abs += x->paired_abs;
    sum.naive_abs += x->naive_abs;
  }
  out->n = sum.n;
  out->mae = sum.n ? sum.abs / (double)sum.n : NAN;
  out->rmse = sum.n ? sqrt(sum.sq / (double)sum.n) : NAN;
  out->smape = sum.n ? 100 * sum.smape / (double)sum.n : NAN;
  out->mase = sum.naive_n && sum.naive_abs > 0 ? sum.paired_abs / sum.naive_abs : NAN;
  out->with_interval = sum.interval_n;
  out->coverage = sum.interval_n ? (double)sum.covered / (double)sum.interval_n : NAN;
  return 0;
}

/* ===== Operator ===== */

/* Whether a row at `ts` is late: before an issue that went out without it. */
static bool row_late(const forecast_op *f, int64_t ts) { return ts < f->last_issue; }

/* Rows of the input: file each row, then advance to its watermark (issuing what it reaches). */
static void forecast_push(vpq_op *op, int port, const vpq_batch *batch) {
  (void)port;
  forecast_op *f = (forecast_op *)op;
  const vpq_plan_forecast *fc = f->fc;
  vpq_runtime *rt = op->rt;
  int nby = fc->nby, nf = fc->nfeatures;
  vpq_vec value = {VPQ_TYPE_DOUBLE, vpq_arena_alloc(&rt->scratch, sizeof(vpq_datum) * (size_t)batch->n),
                   vpq_arena_alloc(&rt->scratch, (size_t)batch->n)};
  vpq_program_eval(f->value, batch, &value, &rt->scratch);
  vpq_vec *keys = vpq_arena_alloc(&rt->scratch, sizeof *keys * (size_t)(nby + 1));
  for (int i = 0; i < nby; i++) {
    keys[i].data = vpq_arena_alloc(&rt->scratch, sizeof(vpq_datum) * (size_t)batch->n);
    keys[i].null = vpq_arena_alloc(&rt->scratch, (size_t)batch->n);
    vpq_program_eval(f->by[i], batch, &keys[i], &rt->scratch);
    vpq_op_canonical_keys(&keys[i], fc->by[i]->type, batch->n);
  }
  vpq_vec *features = vpq_arena_alloc(&rt->scratch, sizeof *features * (size_t)(nf + 1));
  for (int j = 0; j < nf; j++) {
    features[j].data = vpq_arena_alloc(&rt->scratch, sizeof(vpq_datum) * (size_t)batch->n);
    features[j].null = vpq_arena_alloc(&rt->scratch, (size_t)batch->n);
    vpq_program_eval(f->features[j], batch, &features[j], &rt->scratch);
  }
  const vpq_vec *ts = &batch->cols[fc->ts_col];
  vpq_datum *key = vpq_arena_alloc(&rt->scratch, sizeof *key * (size_t)(nby + 1));
  uint8_t *key_null = vpq_arena_alloc(&rt->scratch, (size_t)nby + 1);
  double *x = vpq_arena_alloc(&rt->scratch, sizeof *x * (size_t)(nf + 1));
  for (int row = 0; row < batch->n; row++) {
    const int64_t t = ts->null[row] ? VPQ_TS_MIN : ts->data[row].i;
    if (batch->diff[row] > 0 && !ts->null[row] && row_late(f, t)) {
      vpq_op_late_row(rt, f->slots, fc->from, &fc->from->schema, batch, row);
    } else if (batch->diff[row] > 0 && !ts->null[row]) {
      for (int i = 0; i < nby; i++) {
        key[i] = keys[i].data[row];
        key_null[i] = keys[i].null[row];
      }
      for (int j = 0; j < nf; j++) x[j] = features[j].null[row] ? NAN : features[j].data[row].d;
      double y = value.null[row] ? NAN : value.data[row].d;
      fc_key *k = key_find(f, key, key_null);
      if (f->step_ms) {
        if (!k->model) key_model_new(f, k);
        history_put(f, k, t, y, x);
      } else if (f->next_issue != VPQ_TS_MAX) { /* the step is not known yet (VPQ_TS_MAX: it never will be) */
        raw_put(k, nf, t, y, x);
      }
      if (t > f->last_ts) f->last_ts = t;
      if (f->next_issue == VPQ_TS_MIN) f->next_issue = (floor_div(t, fc->every_ms) + 1) * fc->every_ms;
    }
    /* The row is filed first: an issue its watermark reaches is due now, and has the data up to it. */
    if (batch->wm[row] > f->wm) advance(f, batch->wm[row]);
  }
}

static void forecast_watermark(vpq_op *op, int port, int64_t wm) {
  (void)port;
  forecast_op *f = (forecast_op *)op;
  if (wm > f->wm) advance(f, wm);
  else vpq_op_emit_watermark(op, wm);
}

static void forecast_describe(const vpq_op *op, vpq_buf *out) {
  const forecast_op *f = (const forecast_op *)op;
  const vpq_plan_forecast *fc = f->fc;
  char text[256];
  vpq_buf_printf(out, "model=%s value=%s", fc->model_name, vpq_bexpr_format(fc->value, &fc->from->schema, text, sizeof text));
  if (fc->nby) {
    vpq_buf_puts(out, " by[");
    for (int i = 0; i < fc->nby; i++)
      vpq_buf_printf(out, "%s%s", i ? ", " : "", vpq_bexpr_format(fc->by[i], &fc->from->schema, text, sizeof text));
    vpq_buf_puts(out, "]");
  }
  if (fc->nfeatures) {
    vpq_buf_puts(out, " features[");
    for (int j = 0; j < fc->nfeatures; j++) vpq_buf_printf(out, "%s%s", j ? ", " : "", fc->from->schema.cols[fc->features[j]].name);
    vpq_buf_puts(out, "]");
  }
  vpq_buf_printf(out, " season=%lldms history=%lldms horizon=%lldms every=%lldms step=", (long long)fc->season_ms,
                 (long long)fc->history_ms, (long long)fc->horizon_ms, (long long)fc->every_ms);
  if (fc->step_ms) vpq_buf_printf(out, "%lldms", (long long)fc->step_ms);
  else vpq_buf_puts(out, "inferred");
}

static void forecast_destroy(vpq_op *op) {
  forecast_op *f = (forecast_op *)op;
  if (f->issues_done && op->rt->log) {
    fprintf(op->rt->log, "vpq: FORECAST %s: %lld issues, %lld key forecasts (%lld refits), %.2f ms per forecast\n",
            f->query->target->name, (long long)f->issues_done, (long long)f->forecasts, (long long)f->fits,
            f->forecasts ? (double)f->forecast_ns / 1e6 / (double)f->forecasts : 0.0);
    if (f->issue_max_ns)
      fprintf(op->rt->log,
              "vpq: FORECAST %s: CPU time: fitting %.2f ms per refit or training slice (%lld slices), longest %.2f ms; "
              "one issue of all keys: longest %.1f ms, last %.1f ms\n",
              f->query->target->name,
              f->fits + f->slices ? (double)f->fit_ns / 1e6 / (double)(f->fits + f->slices) : 0.0,
              (long long)f->slices, (double)f->fit_max_ns / 1e6, (double)f->issue_max_ns / 1e6,
              (double)f->issue_last_ns / 1e6);
  }
  for (int i = 0; i < f->nkeys; i++) key_free(f->keys[i]);
  free(f->keys);
  free(f->index);
  free(f->sums);
  free(f->scratch);
}

/* ===== Checkpoints =====
 *
 * State: the issue clock (watermark, next issue, latest row, counters), the step (inferred
 * or given) with the accuracy sums of every horizon step, then every key in order of first
 * appearance: its BY values and, before the step is known, its buffered rows; after, its grid,
 * model, kept issues (with their volatility) and interval errors (divided by it). The scoring
 * range is the caller's setting for a run (vpq_op_forecast_score_range) and the CPU times are
 * this process's, not state. Loading checks every count against the query (the step, the
 * horizon, the history) and against the bytes left before allocating. */

/* Writes key k: its BY values, then its buffered rows (step unknown) or its grid, model, kept
 * issues and interval errors. */
static void key_save(const forecast_op *f, const fc_key *k, vpq_ckpt_out *out) {
  int nf = f->fc->nfeatures;
  vpq_ckpt_put_datums(out, k->key, k->key_null, f->fc->nby);
  if (!f->step_ms) {
    vpq_ckpt_put_u64(out, (uint64_t)k->nraw);
    for (int r = 0; r < k->nraw; r++) {
      vpq_ckpt_put_i64(out, k->raw_ts[r]);
      vpq_ckpt_put_f64(out, k->raw_y[r]);
      for (int j = 0; j < nf; j++) vpq_ckpt_put_f64(out, k->raw_x[(size_t)r * (size_t)nf + (size_t)j]);
    }
    return;
  }
  vpq_ckpt_put_i64(out, k->origin);
  vpq_ckpt_put_i64(out, k->last_ts);
  vpq_ckpt_put_i64(out, k->fitted_at);
  vpq_ckpt_put_u64(out, (uint64_t)k->n);
  for (int i = 0; i < k->n; i++) {
    vpq_ckpt_put_f64(out, k->y[i]);
    vpq_ckpt_put_i64(out, k->y_ts[i]);
    for (int j = 0; j < nf; j++) vpq_ckpt_put_f64(out, k->x[(size_t)i * (size_t)nf + (size_t)j]);
  }
  vpq_model_save(k->model, out);
  vpq_ckpt_put_u64(out, (uint64_t)k->nissues);
  for (int i = 0; i < k->nissues; i++) {
    vpq_ckpt_put_i64(out, k->issues[i].issued_at);
    vpq_ckpt_put_f64(out, k->issues[i].scale);
    for (int v = 0; v < 3 * f->steps; v++) vpq_ckpt_put_f64(out, k->issues[i].values[v]);
  }
  vpq_ckpt_put_u64(out, (uint64_t)f->steps);
  for (int s = 0; s < f->steps; s++) {
    vpq_ckpt_put_u64(out, (uint64_t)k->nerrors[s]);
    int kept = k->nerrors[s] < ERRORS_KEPT ? k->nerrors[s] : ERRORS_KEPT;
    for (int e = 0; e < kept; e++) vpq_ckpt_put_f64(out, k->errors[(size_t)s * ERRORS_KEPT + (size_t)e]);
  }
}

/* Writes the operator's state (see above). */
static void forecast_save(const vpq_op *op, vpq_ckpt_out *out) {
  const forecast_op *f = (const forecast_op *)op;
  int64_t clock[] = {f->wm,           f->next_issue, f->last_ts, f->issues_done,
                     f->last_issue,   f->forecast_ns, f->forecasts, f->fits};
  for (size_t i = 0; i < sizeof clock / sizeof *clock; i++) vpq_ckpt_put_i64(out, clock[i]);
  vpq_ckpt_put_i64(out, f->step_ms);
  vpq_ckpt_put_u64(out, (uint64_t)f->steps);
  for (int s = 0; s < f->steps; s++) {
    const fc_sums *sum = &f->sums[s];
    int64_t counts[] = {sum->n, sum->naive_n, sum->interval_n, sum->covered};
    double totals[] = {sum->abs, sum->sq, sum->smape, sum->paired_abs, sum->naive_abs};
    for (int i = 0; i < 4; i++) vpq_ckpt_put_i64(out, counts[i]);
    for (int i = 0; i < 5; i++) vpq_ckpt_put_f64(out, totals[i]);
  }
  vpq_ckpt_put_u64(out, (uint64_t)f->nkeys);
  for (int i = 0; i < f->nkeys; i++) key_save(f, f->keys[i], out);
}

/* True when t is an issue time: a multiple of EVERY. */
static bool issue_time(const forecast_op *f, int64_t t) { return t % f->fc->every_ms == 0; }

/* Reads the state of key k written by key_save (its BY values already read); x is scratch
 * for one row's features. */
static void key_load(forecast_op *f, fc_key *k, vpq_ckpt_in *in, double *x) {
  int nf = f->fc->nfeatures;
  if (!f->step_ms) {
    int64_t nraw = vpq_ckpt_get_count(in, INT32_MAX / 2);
    for (int64_t r = 0; r < nraw && !in->error; r++) {
      int64_t ts = vpq_ckpt_get_i64(in);
      double y = vpq_ckpt_get_f64(in);
      for (int j = 0; j < nf; j++) x[j] = vpq_ckpt_get_f64(in);
      raw_put(k, nf, ts, y, x);
    }
    return;
  }
  key_model_new(f, k);
  k->origin = vpq_ckpt_get_i64(in);
  k->last_ts = vpq_ckpt_get_i64(in);
  k->fitted_at = vpq_ckpt_get_i64(in);
  if (k->origin % f->step_ms || (k->last_ts != VPQ_TS_MIN && k->last_ts % f->step_ms) || k->last_ts > f->last_ts ||
      (k->fitted_at != VPQ_TS_MIN && !issue_time(f, k->fitted_at)))
    vpq_ckpt_fail(in, "a forecast key's times are off its grid");
  int n = (int)vpq_ckpt_get_count(in, 4 * (int64_t)f->history + 2);
  if (n) {
    k->y = malloc(sizeof *k->y * (size_t)n);
    k->y_ts = malloc(sizeof *k->y_ts * (size_t)n);
    k->x = malloc(sizeof *k->x * (size_t)n * (size_t)(nf + 1));
    if (!k->y || !k->y_ts || !k->x) abort();
    k->cap = n;
  }
  for (int i = 0; i < n && !in->error; i++) {
    k->y[i] = vpq_ckpt_get_f64(in);
    k->y_ts[i] = vpq_ckpt_get_i64(in);
    int64_t off;
    if (k->y_ts[i] != VPQ_TS_MIN &&
        (__builtin_sub_overflow(k->y_ts[i], k->origin, &off) || off < 0 || off / f->step_ms != i))
      vpq_ckpt_fail(in, "a forecast value's time outside its grid slot");
    for (int j = 0; j < nf; j++) k->x[(size_t)i * (size_t)nf + (size_t)j] = vpq_ckpt_get_f64(in);
  }
  k->n = in->error ? 0 : n;
  vpq_model_load(k->model, in);
  int nissues = (int)vpq_ckpt_get_count(in, INT32_MAX / 2);
  if (nissues) {
    k->issues = malloc(sizeof *k->issues * (size_t)nissues);
    if (!k->issues) abort();
    k->issues_cap = nissues;
  }
  for (int i = 0; i < nissues && !in->error; i++) {
    int64_t issued_at = vpq_ckpt_get_i64(in);
    double scale = vpq_ckpt_get_f64(in);
    if (!issue_time(f, issued_at)) vpq_ckpt_fail(in, "a kept forecast issue off the EVERY grid");
    if (!(scale >= 0 && scale < INFINITY)) vpq_ckpt_fail(in, "a kept forecast issue's volatility out of range");
    if (in->end - in->p < (ptrdiff_t)(3 * sizeof(double)) * f->steps)
      vpq_ckpt_fail(in, "state ends inside a forecast issue");
    if (in->error) break;
    fc_issue *is = &k->issues[k->nissues++];
    is->issued_at = issued_at;
    is->scale = scale;
    is->values = malloc(sizeof(double) * 3 * (size_t)f->steps);
    if (!is->values) abort();
    for (int v = 0; v < 3 * f->steps; v++) is->values[v] = vpq_ckpt_get_f64(in);
  }
  if (vpq_ckpt_get_count(in, f->steps) != f->steps) vpq_ckpt_fail(in, "interval errors for another horizon");
  for (int s = 0; s < f->steps && !in->error; s++) {
    uint64_t written = vpq_ckpt_get_u64(in);
    if (written > INT32_MAX / 2) vpq_ckpt_fail(in, "an interval error count out of range");
    k->nerrors[s] = in->error ? 0 : (int)written;
    int kept = k->nerrors[s] < ERRORS_KEPT ? k->nerrors[s] : ERRORS_KEPT;
    for (int e = 0; e < kept; e++) k->errors[(size_t)s * ERRORS_KEPT + (size_t)e] = vpq_ckpt_get_f64(in);
  }
}

/* Reads the step written by forecast_save and, when it is known, sets everything that depends
 * on it; fails the input on a step the query does not allow. */
static void step_load(forecast_op *f, vpq_ckpt_in *in) {
  const vpq_plan_forecast *fc = f->fc;
  int64_t step = vpq_ckpt_get_i64(in);
  if (step < 0 || (fc->step_ms && step != fc->step_ms))
    vpq_ckpt_fail(in, "a forecast step that does not match the query");
  int64_t steps = step > 0 ? fc->horizon_ms / step + (fc->horizon_ms % step != 0) : 0;
  if (step > 0 && (steps > INT32_MAX || fc->season_ms / step > INT32_MAX || fc->history_ms / step > INT32_MAX / 8))
    vpq_ckpt_fail(in, "a forecast step too small for the horizon");
  /* Every step's sums take bytes: a step the state cannot back is refused before allocating. */
  if (vpq_ckpt_get_count(in, INT32_MAX) != steps) vpq_ckpt_fail(in, "accuracy sums for another horizon");
  if (!in->error && step && !f->step_ms) step_known(f, step);
  for (int s = 0; s < f->steps && !in->error; s++) {
    fc_sums *sum = &f->sums[s];
    int64_t *counts[] = {&sum->n, &sum->naive_n, &sum->interval_n, &sum->covered};
    double *totals[] = {&sum->abs, &sum->sq, &sum->smape, &sum->paired_abs, &sum->naive_abs};
    for (int i = 0; i < 4; i++) *counts[i] = vpq_ckpt_get_i64(in);
    for (int i = 0; i < 5; i++) *totals[i] = vpq_ckpt_get_f64(in);
  }
}

/* Restores what forecast_save wrote; keys are re-created in their order, so that issues
 * write their rows in the same order as before. */
static void forecast_load(vpq_op *op, vpq_ckpt_in *in) {
  forecast_op *f = (forecast_op *)op;
  const vpq_plan_forecast *fc = f->fc;
  int64_t *clock[] = {&f->wm,         &f->next_issue, &f->last_ts,   &f->issues_done,
                      &f->last_issue, &f->forecast_ns, &f->forecasts, &f->fits};
  for (size_t i = 0; i < sizeof clock / sizeof *clock; i++) *clock[i] = vpq_ckpt_get_i64(in);
  if (f->next_issue != VPQ_TS_MIN && f->next_issue != VPQ_TS_MAX && !issue_time(f, f->next_issue))
    vpq_ckpt_fail(in, "the next forecast issue is off the EVERY grid");
  step_load(f, in);
  int nby = fc->nby;
  vpq_datum *key = malloc(sizeof *key * (size_t)(nby + 1));
  uint8_t *key_null = malloc((size_t)nby + 1);
  double *x = malloc(sizeof *x * (size_t)(fc->nfeatures + 1));
  if (!key || !key_null || !x) abort();
  size_t nstrings = vpq_intern_count(op->rt->intern);
  int64_t nkeys = vpq_ckpt_get_count(in, INT32_MAX / 4);
  for (int64_t i = 0; i < nkeys && !in->error; i++) {
    vpq_ckpt_get_datums(in, key, key_null, nby);
    for (int j = 0; j < nby; j++)
      if (!key_null[j] && fc->by[j]->type == VPQ_TYPE_STRING && (key[j].i < 0 || (uint64_t)key[j].i >= nstrings))
        vpq_ckpt_fail(in, "a forecast key names an unknown string");
    if (in->error) break;
    int before = f->nkeys;
    fc_key *k = key_find(f, key, key_null);
    if (f->nkeys == before) {
      vpq_ckpt_fail(in, "a forecast key stored twice");
      break;
    }
    key_load(f, k, in, x);
  }
  free(key);
  free(key_null);
  free(x);
}

static const vpq_op_vt forecast_vt = {"Forecast",       forecast_push, forecast_watermark, forecast_describe,
                                      forecast_destroy, forecast_save, forecast_load, NULL};

vpq_op *vpq_op_forecast_new(vpq_runtime *rt, vpq_arena *arena, const vpq_plan_query *query,
                             const vpq_source_slot *slots) {
  forecast_op *f = calloc(1, sizeof *f);
  if (!f) abort();
  vpq_op_init(&f->base, &forecast_vt, rt, &query->target->schema);
  const vpq_plan_forecast *fc = &query->forecast;
  f->query = query;
  f->fc = fc;
  f->slots = slots;
  f->value = vpq_expr_compile(arena, fc->value, rt->intern);
  f->by = vpq_arena_alloc(arena, sizeof *f->by * (size_t)(fc->nby + 1));
  for (int i = 0; i < fc->nby; i++) f->by[i] = vpq_expr_compile(arena, fc->by[i], rt->intern);
  f->features = vpq_arena_alloc(arena, sizeof *f->features * (size_t)(fc->nfeatures + 1));
  for (int j = 0; j < fc->nfeatures; j++) {
    vpq_bexpr *col = vpq_arena_alloc(arena, sizeof *col);
    *col = (vpq_bexpr){.kind = VPQ_BEXPR_COLUMN, .type = fc->from->schema.cols[fc->features[j]].type, .column = fc->features[j]};
    if (col->type != VPQ_TYPE_DOUBLE) {
      vpq_bexpr *cast = vpq_arena_alloc(arena, sizeof *cast);
      vpq_bexpr **args = vpq_arena_alloc(arena, sizeof *args);
      args[0] = col;
      *cast = (vpq_bexpr){.kind = VPQ_BEXPR_CAST, .type = VPQ_TYPE_DOUBLE, .args = args, .nargs = 1};
      col = cast;
    }
    f->features[j] = vpq_expr_compile(arena, col, rt->intern);
  }
  f->wm = VPQ_TS_MIN;
  f->next_issue = VPQ_TS_MIN;
  f->last_issue = VPQ_TS_MIN;
  f->last_ts = VPQ_TS_MIN;
  f->score_from = VPQ_TS_MIN;
  f->score_to = VPQ_TS_MAX;
  index_rebuild(f, 16);
  if (fc->step_ms) step_known(f, fc->step_ms);
  return &f->base;
}
