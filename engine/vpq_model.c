/* vpq_model.c — the forecasting models of the FORECAST operator (vpq_model.h): seasonal naive,
 * additive Holt–Winters with a damped trend fitted by Nelder–Mead on its errors over a season
 * ahead, direct multi-horizon ridge regression on calendar, lag and exogenous features, and a
 * one-hidden-layer MLP trained with Adam on that regression's residuals. */
#include "vpq_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL
#define TWO_PI 6.28318530717958647692

/* Holt–Winters: parameters alpha, beta, gamma, phi; Nelder–Mead's evaluation budget. */
#define HW_NPAR 4
#define HW_MAX_EVALS 400
/* The damping factor's range: phi = 1 is Holt's undamped trend. Fitted on the one-step error,
 * the trend follows the hourly ramps of load data (beta near 1) and runs away over a day-ahead
 * horizon even damped (PJM East, the last year, 24 h ahead from midnight: MAE 3710, 1.6× the
 * seasonal naive forecast; statsmodels' undamped ExponentialSmoothing: 9026). The parameters
 * are therefore fitted on the errors 1 .. season steps ahead (hw_sse), which the forecast is
 * used for: MAE 1986, 0.86× the seasonal naive forecast, at about twice the cost per
 * evaluation. */
#define HW_PHI_MIN 0.8

#define MLP_BATCH 32

struct vpq_model {
  vpq_model_config cfg;
  int fitted;          /* the last fit succeeded */
  double hw[HW_NPAR];  /* holt_winters: alpha, beta, gamma, phi (the warm start of the next fit) */
  double *season_buf;  /* holt_winters: the seasonal components, by phase */
  int horizons;        /* linear, mlp: horizons fitted directly (one season, at least 1) */
  int week;            /* linear, mlp: the weekly lag in steps, 0 when it is no input */
  int ncommon;         /* linear, mlp: inputs that do not depend on the horizon */
  int nin;             /* linear, mlp: inputs per row (linear: including the intercept) */
  double *in_mean, *in_sd; /* linear, mlp: standardisation of each input */
  double y_mean, y_sd; /* linear, mlp: of the target over the training rows */
  double *w;           /* linear: horizons × nin weights; mlp: W1 (hidden × nin), b1, W2, b2 */
  double *adam_m, *adam_v, *grad; /* mlp: Adam's moments and the minibatch gradient */
  double *raw, *act;   /* linear, mlp: one row's raw inputs; mlp: the hidden activations */
  uint64_t rng;        /* mlp: splitmix64 state */
  vpq_model *base;     /* mlp: the linear model (same options) whose residuals the network learns */
  double res_mean, res_sd; /* mlp: of the residuals over the training rows and horizons */
};

/* The documented defaults; the caller sets step_ms and season. */
vpq_model_config vpq_model_defaults(vpq_model_kind kind) {
  vpq_model_config c = {
      .kind = kind,
      .step_ms = 0,
      .season = 0,
      .nfeatures = 0,
      .ridge = 1.0,
      .hidden = 8,
      .epochs = 30,
      .learning_rate = 0.003,
      .seed = 42,
  };
  return c;
}

/* ---- helpers ---- */

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* A uniform double in [0, 1). */
static double uniform(uint64_t *state) { return (double)(splitmix64(state) >> 11) * 0x1.0p-53; }

static int64_t floor_mod(int64_t a, int64_t b) {
  int64_t r = a % b;
  return r < 0 ? r + b : r;
}

static int64_t floor_div(int64_t a, int64_t b) { return (a - floor_mod(a, b)) / b; }

static int hour_of_day(int64_t ts) { return (int)floor_mod(floor_div(ts, HOUR_MS), 24); }

/* Monday = 0 (epoch day 0 was a Thursday). */
static int day_of_week(int64_t ts) { return (int)floor_mod(floor_div(ts, DAY_MS) + 3, 7); }

/* Hour-of-day features make sense only below a daily step, day-of-week below a weekly one. */
static int has_hour(const vpq_model_config *c) { return c->step_ms > 0 && c->step_ms < DAY_MS; }
static int has_dow(const vpq_model_config *c) { return c->step_ms > 0 && c->step_ms < 7 * DAY_MS; }

static double last_value(const vpq_series *s) {
  for (int i = s->n - 1; i >= 0; i--)
    if (isfinite(s->y[i])) return s->y[i];
  return 0.0;
}

static void fill_last(const vpq_series *s, int h, double *out) {
  double v = last_value(s);
  for (int k = 0; k < h; k++) out[k] = v;
}

/* ---- seasonal naive ---- */

static void seasonal_naive_predict(const vpq_model *m, const vpq_series *s, int h, double *out) {
  int season = m->cfg.season;
  double last = last_value(s);
  for (int k = 0; k < h; k++) {
    out[k] = last;
    if (season <= 0) continue;
    /* The own forecast one season earlier is the same phase of the last observed season. */
    int j = s->n - season + k % season;
    while (j >= 0 && !isfinite(s->y[j])) j -= season;
    if (j >= 0) out[k] = s->y[j];
  }
}

/* ---- Holt–Winters ---- */

/* Additive Holt–Winters with a damped trend (phi = 1: undamped). A season of 0 or 1 has no
 * seasonal component (Holt's linear trend). */
typedef struct hw_run {
  const double *y;
  int n, start, m; /* m: season length, 1 without a season */
  int h;           /* the horizon of the fitted error: 1 (one-step) or m (see hw_sse) */
  double *s;       /* seasonal components by phase t mod m */
  double level, trend;
} hw_run;

/* Initial state from the first two seasons after `start`: a line through the seasons' means
 * (each at the mean time of its observed values) and, per phase, the mean deviation from it.
 * The state is that of time start − 1, so the first prediction is for y[start]. */
static void hw_init(hw_run *r) {
  int m = r->m;
  double mean[2] = {0, 0}, centre[2] = {0, 0};
  int count[2] = {0, 0};
  for (int j = 0; j < 2; j++) {
    for (int i = r->start + j * m; i < r->start + (j + 1) * m; i++) {
      if (!isfinite(r->y[i])) continue;
      mean[j] += r->y[i];
      centre[j] += i;
      count[j]++;
    }
    if (count[j] > 0) {
      mean[j] /= count[j];
      centre[j] /= count[j];
    }
  }
  /* The first season holds y[start]; a second season without values gives no trend. */
  double slope = count[1] > 0 ? (mean[1] - mean[0]) / (centre[1] - centre[0]) : 0.0;
  double offset = 0.0;
  for (int p = 0; p < m; p++) {
    double sum = 0.0;
    int c = 0;
    for (int j = 0; j < 2; j++) {
      int i = r->start + j * m + p;
      if (!isfinite(r->y[i])) continue;
      sum += r->y[i] - (mean[0] + slope * (i - centre[0]));
      c++;
    }
    r->s[(r->start + p) % m] = c > 0 ? sum / c : 0.0;
    offset += r->s[(r->start + p) % m];
  }
  offset = m > 1 ? offset / m : 0.0;
  for (int p = 0; p < m; p++) r->s[p] = m > 1 ? r->s[p] - offset : 0.0;
  r->level = mean[0] + offset + slope * (r->start - 1 - centre[0]);
  r->trend = slope;
}

/* Runs the recursion over y[start..n) with parameters p and returns the sum of squared errors of
 * its forecasts: with h = 1 the one-step errors; otherwise the errors of the forecasts 1 .. h
 * steps ahead from every origin a whole number of horizons before the end of the history (the
 * phase the model is asked to forecast from), after the first two seasons. A missing value is
 * replaced by its prediction and adds no error. */
static double hw_sse(hw_run *r, const double *p) {
  double alpha = p[0], beta = p[1], gamma = p[2], phi = p[3], sse = 0.0;
  hw_init(r);
  double level = r->level, trend = r->trend;
  for (int t = r->start; t < r->n; t++) {
    int phase = t % r->m;
    double sv = r->s[phase], base = level + phi * trend, yt = r->y[t];
    if (r->h > 1 && (r->n - t) % r->h == 0 && t >= r->start + 2 * r->m) {
      /* Within one season ahead no seasonal component has been updated since. */
      double damp = 0.0, phik = 1.0;
      for (int k = 0; k < r->h && t + k < r->n; k++) {
        phik *= phi;
        damp += phik;
        double e = r->y[t + k] - (level + damp * trend + r->s[(t + k) % r->m]);
        if (isfinite(e)) sse += e * e;
      }
    }
    if (isfinite(yt)) {
      double e = yt - (base + sv);
      if (r->h == 1) sse += e * e;
    } else {
      yt = base + sv;
    }
    double next = alpha * (yt - sv) + (1 - alpha) * base;
    trend = beta * (next - level) + (1 - beta) * phi * trend;
    level = next;
    if (r->m > 1) r->s[phase] = gamma * (yt - level) + (1 - gamma) * sv;
  }
  r->level = level;
  r->trend = trend;
  return sse;
}

static const double hw_lo[HW_NPAR] = {0, 0, 0, HW_PHI_MIN};
static const double hw_hi[HW_NPAR] = {1, 1, 1, 1};

/* Nelder–Mead's view of the fit: the parameters it moves (gamma only with a season), each kept
 * inside its box by clamping every trial point, and the evaluations spent. */
typedef struct hw_opt {
  hw_run *r;
  double p[HW_NPAR]; /* the full parameter vector; the moved ones are overwritten */
  int idx[HW_NPAR], d, evals;
} hw_opt;

/* Clamps x into the box and returns the sum of squared errors there. */
static double hw_eval(hw_opt *o, double *x) {
  for (int k = 0; k < o->d; k++) {
    int i = o->idx[k];
    x[k] = fmin(fmax(x[k], hw_lo[i]), hw_hi[i]);
    o->p[i] = x[k];
  }
  o->evals++;
  return hw_sse(o->r, o->p);
}

/* One Nelder–Mead run from x (value fx) with initial steps of 0.2 towards the box's interior;
 * leaves the best point in x and returns its value. Stops when the simplex's values agree to a
 * relative 1e-10 or after HW_MAX_EVALS evaluations in all. */
static double nelder_mead(hw_opt *o, double *x, double fx) {
  int d = o->d;
  double p[HW_NPAR + 1][HW_NPAR], f[HW_NPAR + 1], c[HW_NPAR], xr[HW_NPAR], xe[HW_NPAR];
  size_t size = sizeof(double) * (size_t)d;
  memcpy(p[0], x, size);
  f[0] = fx;
  for (int i = 1; i <= d; i++) {
    memcpy(p[i], x, size);
    p[i][i - 1] += x[i - 1] + 0.2 <= hw_hi[o->idx[i - 1]] ? 0.2 : -0.2;
    f[i] = hw_eval(o, p[i]);
  }
  while (o->evals < HW_MAX_EVALS) {
    /* Order the vertices by value (insertion sort; d is tiny). */
    for (int i = 1; i <= d; i++) {
      for (int j = i; j > 0 && f[j] < f[j - 1]; j--) {
        double tf = f[j];
        f[j] = f[j - 1];
        f[j - 1] = tf;
        memcpy(xe, p[j], size);
        memcpy(p[j], p[j - 1], size);
        memcpy(p[j - 1], xe, size);
      }
    }
    if (f[d] - f[0] <= 1e-10 * f[0]) break;
    for (int k = 0; k < d; k++) {
      c[k] = 0;
      for (int i = 0; i < d; i++) c[k] += p[i][k];
      c[k] /= d;
      xr[k] = 2 * c[k] - p[d][k];
    }
    double fr = hw_eval(o, xr);
    if (fr < f[0]) {
      for (int k = 0; k < d; k++) xe[k] = 3 * c[k] - 2 * p[d][k];
      double fe = hw_eval(o, xe);
      memcpy(p[d], fe < fr ? xe : xr, size);
      f[d] = fmin(fe, fr);
      continue;
    }
    if (fr < f[d - 1]) {
      memcpy(p[d], xr, size);
      f[d] = fr;
      continue;
    }
    /* Contract towards the reflected point (outside) or the worst vertex (inside). */
    int outside = fr < f[d];
    for (int k = 0; k < d; k++) xe[k] = c[k] + 0.5 * ((outside ? xr[k] : p[d][k]) - c[k]);
    double fc = hw_eval(o, xe);
    if (fc < (outside ? fr : f[d])) {
      memcpy(p[d], xe, size);
      f[d] = fc;
      continue;
    }
    for (int i = 1; i <= d; i++) {
      for (int k = 0; k < d; k++) p[i][k] = p[0][k] + 0.5 * (p[i][k] - p[0][k]);
      f[i] = hw_eval(o, p[i]);
    }
  }
  int best = 0;
  for (int i = 1; i <= d; i++)
    if (f[i] < f[best]) best = i;
  memcpy(x, p[best], size);
  return f[best];
}

/* Sets up a run over the history from its first observed value; returns -1 when fewer than two
 * seasons (two values without a season) follow it. */
static int hw_prepare(const vpq_model *m, const vpq_series *s, int h, hw_run *r) {
  r->y = s->y;
  r->n = s->n;
  r->m = m->cfg.season > 1 ? m->cfg.season : 1;
  r->h = h;
  r->s = m->season_buf;
  r->start = 0;
  while (r->start < s->n && !isfinite(s->y[r->start])) r->start++;
  return s->n - r->start >= 2 * r->m ? 0 : -1;
}

/* Starting points tried besides the previous fit: the best of them starts Nelder–Mead. */
static const double hw_starts[][HW_NPAR] = {
    {0.2, 0.01, 0.1, 0.98},
    {0.5, 0.1, 0.3, 0.9},
    {0.9, 0.5, 0.5, 0.9},
};

/* Fits alpha, beta, gamma and phi: Nelder–Mead from the best of the previous fit and a few
 * fixed points, restarted from its result (a clamped simplex can collapse onto a face of the
 * box) until a restart no longer improves the fit. */
static int hw_fit(vpq_model *m, const vpq_series *s) {
  hw_run r;
  if (hw_prepare(m, s, 1, &r) != 0) return -1;
  if (r.m > 1 && r.n - r.start >= 4 * r.m) r.h = r.m;
  hw_opt o = {.r = &r};
  memcpy(o.p, m->hw, sizeof o.p);
  for (int i = 0; i < HW_NPAR; i++)
    if (i != 2 || r.m > 1) o.idx[o.d++] = i;
  double x[HW_NPAR], cand[HW_NPAR];
  for (int k = 0; k < o.d; k++) x[k] = m->hw[o.idx[k]];
  double fx = hw_eval(&o, x);
  for (size_t j = 0; j < sizeof hw_starts / sizeof hw_starts[0]; j++) {
    for (int k = 0; k < o.d; k++) cand[k] = hw_starts[j][o.idx[k]];
    double fc = hw_eval(&o, cand);
    if (fc < fx) {
      fx = fc;
      memcpy(x, cand, sizeof x);
    }
  }
  while (o.evals < HW_MAX_EVALS) {
    double f = nelder_mead(&o, x, fx);
    int improved = f < fx - 1e-9 * fx;
    fx = f;
    if (!improved) break;
  }
  for (int k = 0; k < o.d; k++) m->hw[o.idx[k]] = x[k];
  return 0;
}

static void hw_predict(vpq_model *m, const vpq_series *s, int h, double *out) {
  hw_run r;
  if (hw_prepare(m, s, 1, &r) != 0) {
    fill_last(s, h, out);
    return;
  }
  hw_sse(&r, m->hw);
  double damp = 0.0, phik = 1.0;
  for (int k = 0; k < h; k++) {
    phik *= m->hw[3];
    damp += phik;
    out[k] = r.level + damp * r.trend + (r.m > 1 ? r.s[(s->n + k) % r.m] : 0.0);
  }
}

/* ---- inputs of the linear model and the MLP ----
 *
 * Both are direct multi-horizon forecasters. The row predicting index t from an origin k steps
 * before it (the last value known is at t − k) holds the common inputs of t, then the horizon
 * inputs: the value at t − k and, for the MLP, k itself. Linear: intercept, one-hot hour of day
 * (hour 0 the reference), one-hot day of week (Monday the reference). MLP: sin/cos of the time of
 * day and of the week. Both then: the value one season before, the value one week before, the
 * exogenous features. The linear model keeps one weight vector per horizon k = 1 .. horizons
 * (one season), the MLP one network with k as an input; steps further ahead are predicted with
 * k = horizons from the model's own earlier predictions. A day-ahead load forecast from midnight
 * thereby uses the last hour observed, not only yesterday's same hour (PJM East, the last year:
 * MAE 0.74× the better seasonal naive forecast, against 0.92× lagging one season only). */

static double lag_at(const vpq_model *m, const double *z, int j) { return j < 0 ? m->y_mean : z[j]; }

/* The index of the weekly lag of t: a week before, or where that is before the history, the
 * earliest same phase of the season inside it (negative when there is none). */
static int week_lag(const vpq_model *m, int t) {
  int season = m->cfg.season, j = t - m->week;
  while (j < 0 && season > 1 && j + season <= t - season) j += season;
  return j;
}

/* The raw inputs (see above) of the row predicting index t of z (observed or filled values) at
 * horizon k, whose exogenous features are xrow (NULL: none known, NAN). */
static void raw_inputs(const vpq_model *m, const double *z, int t, int k, int64_t ts0, const double *xrow, double *r) {
  const vpq_model_config *c = &m->cfg;
  int64_t ts = ts0 + (int64_t)t * c->step_ms;
  int n = 0;
  if (c->kind == VPQ_MODEL_LINEAR) {
    r[n++] = 1.0;
    if (has_hour(c)) {
      int hour = hour_of_day(ts);
      for (int i = 1; i < 24; i++) r[n++] = hour == i;
    }
    if (has_dow(c)) {
      int dow = day_of_week(ts);
      for (int i = 1; i < 7; i++) r[n++] = dow == i;
    }
  } else {
    double day = (double)floor_mod(ts, DAY_MS) / (double)DAY_MS;
    if (has_hour(c)) {
      r[n++] = sin(TWO_PI * day);
      r[n++] = cos(TWO_PI * day);
    }
    if (has_dow(c)) {
      double week = (day_of_week(ts) + day) / 7.0;
      r[n++] = sin(TWO_PI * week);
      r[n++] = cos(TWO_PI * week);
    }
  }
  if (c->season > 1) r[n++] = lag_at(m, z, t - c->season);
  if (m->week > 0) r[n++] = lag_at(m, z, week_lag(m, t));
  for (int f = 0; f < c->nfeatures; f++) r[n++] = xrow ? xrow[f] : NAN;
  r[n++] = lag_at(m, z, t - k);
  if (c->kind == VPQ_MODEL_MLP && m->horizons > 1) r[n++] = k;
}

/* Sets the model's input layout: horizons, the weekly lag (when the step divides a week and the
 * week is longer than the season), the common inputs and all inputs. */
static void set_inputs(vpq_model *m) {
  const vpq_model_config *c = &m->cfg;
  m->horizons = c->season > 1 ? c->season : 1;
  m->week = 0;
  if (has_dow(c) && (7 * DAY_MS) % c->step_ms == 0 && 7 * DAY_MS / c->step_ms > c->season)
    m->week = (int)(7 * DAY_MS / c->step_ms);
  int common = (c->season > 1) + (m->week > 0) + c->nfeatures;
  if (c->kind == VPQ_MODEL_LINEAR) common += 1 + (has_hour(c) ? 23 : 0) + (has_dow(c) ? 6 : 0);
  else common += (has_hour(c) ? 2 : 0) + (has_dow(c) ? 2 : 0);
  m->ncommon = common;
  m->nin = common + 1 + (c->kind == VPQ_MODEL_MLP && m->horizons > 1);
}

/* The first inputs that are standardised: the linear model keeps its intercept and one-hot
 * columns as they are. */
static int first_standardised(const vpq_model *m) {
  const vpq_model_config *c = &m->cfg;
  if (c->kind != VPQ_MODEL_LINEAR) return 0;
  return 1 + (has_hour(c) ? 23 : 0) + (has_dow(c) ? 6 : 0);
}

static const double *row_of(const double *x, int t, int nf) { return x ? x + (size_t)t * (size_t)nf : NULL; }

/* Copies y[0..n) into z with each gap between two observed values filled by linear
 * interpolation and the values before the first observed one set to it (those after the last
 * stay NAN); the lags of the training rows and of the forecast read z. Returns the index of the
 * last observed value, -1 when there is none. */
static int fill_gaps(const double *y, int n, double *z) {
  int prev = -1;
  for (int i = 0; i < n; i++) {
    z[i] = NAN;
    if (!isfinite(y[i])) continue;
    for (int j = prev + 1; j < i; j++) z[j] = prev < 0 ? y[i] : y[prev] + (y[i] - y[prev]) * (j - prev) / (i - prev);
    z[i] = y[i];
    prev = i;
  }
  return prev;
}

/* Computes the raw inputs of training row t at horizon k into m->raw (lags from the filled
 * series z); returns 0 when y[t] and every input are observed. */
static int training_row(const vpq_model *m, const vpq_series *s, const double *z, int t, int k) {
  if (!isfinite(s->y[t])) return -1;
  raw_inputs(m, z, t, k, s->ts0, row_of(s->x, t, m->cfg.nfeatures), m->raw);
  for (int i = 0; i < m->nin; i++)
    if (!isfinite(m->raw[i])) return -1;
  return 0;
}

/* The first training row of a history of n values: the first with its season and horizon lags
 * inside the history, or the first with its weekly lag inside it when that leaves enough rows
 * (before it the weekly lag stands in with an earlier same phase, see week_lag). */
static int first_row(const vpq_model *m, int n) {
  if (m->week > 0 && n - m->week >= 4 * m->nin) return m->week;
  return m->horizons > m->cfg.season ? m->horizons : m->cfg.season;
}

/* Sets the standardisation of the inputs and the target from the training rows (Welford's
 * running means and variances), each row taken at horizon 1 + t mod horizons; returns the number
 * of training rows. */
static int standardise_on(vpq_model *m, const vpq_series *s, const double *z) {
  int first = first_standardised(m), rows = 0;
  double y_m2 = 0.0;
  m->y_mean = 0.0;
  for (int i = 0; i < m->nin; i++) {
    m->in_mean[i] = 0.0;
    m->in_sd[i] = 0.0;
  }
  for (int t = first_row(m, s->n); t < s->n; t++) {
    if (training_row(m, s, z, t, 1 + t % m->horizons) != 0) continue;
    rows++;
    double d = s->y[t] - m->y_mean;
    m->y_mean += d / rows;
    y_m2 += d * (s->y[t] - m->y_mean);
    for (int i = first; i < m->nin; i++) {
      d = m->raw[i] - m->in_mean[i];
      m->in_mean[i] += d / rows;
      m->in_sd[i] += d * (m->raw[i] - m->in_mean[i]);
    }
  }
  m->y_sd = rows > 1 ? sqrt(y_m2 / rows) : 0.0;
  if (!(m->y_sd > 1e-12 * (1.0 + fabs(m->y_mean)))) m->y_sd = 1.0;
  for (int i = 0; i < m->nin; i++) {
    double sd = rows > 1 ? sqrt(m->in_sd[i] / rows) : 0.0;
    m->in_sd[i] = sd > 1e-12 * (1.0 + fabs(m->in_mean[i])) ? sd : 1.0;
  }
  return rows;
}

/* Standardises the first n entries of m->raw in place; an unknown input becomes its mean (0). */
static void standardise_row(const vpq_model *m, int n) {
  for (int i = 0; i < n; i++) m->raw[i] = isfinite(m->raw[i]) ? (m->raw[i] - m->in_mean[i]) / m->in_sd[i] : 0.0;
}

/* ---- linear: ridge regression per horizon ---- */

/* The standardised row in m->raw times the weights of horizon k. */
static double linear_eval(const vpq_model *m, int k) {
  const double *w = m->w + (size_t)(k - 1) * (size_t)m->nin;
  double v = 0.0;
  for (int i = 0; i < m->nin; i++) v += w[i] * m->raw[i];
  return v;
}

/* The predictions of training row t (valid, see training_row) at every horizon into
 * out[0..horizons): the common inputs are computed and standardised once. */
static void linear_row_all(vpq_model *m, const vpq_series *s, const double *z, int t, double *out) {
  int p = m->ncommon;
  training_row(m, s, z, t, 1);
  standardise_row(m, p);
  for (int k = 0; k < m->horizons; k++) {
    const double *w = m->w + (size_t)k * (size_t)m->nin;
    double v = w[p] * (z[t - 1 - k] - m->in_mean[p]) / m->in_sd[p];
    for (int i = 0; i < p; i++) v += w[i] * m->raw[i];
    out[k] = v;
  }
}

/* Solves (XₖᵀXₖ + ridge·D) wₖ = Xₖᵀy for every horizon k, D the identity without the intercept.
 * The rows Xₖ share their common inputs and differ in the last column (the value k steps
 * before), so the common Gram matrix is factorised once by Cholesky and each horizon only
 * borders it with one row: fitting all horizons costs little more than fitting one. A pivot that
 * rounding or a constant column makes non-positive is raised to a tiny positive value, which
 * leaves that direction's weight near 0. */
static int linear_fit(vpq_model *m, const vpq_series *s, const double *z) {
  int p = m->ncommon, nk = m->horizons;
  int rows = standardise_on(m, s, z);
  if (rows <= m->nin) return -1;
  size_t pp = (size_t)p * (size_t)p;
  double *a = calloc(pp + 2 * (size_t)p + (size_t)nk * (size_t)p + 2 * (size_t)nk, sizeof(double));
  if (!a) return -1;
  double *g = a + pp, *v = g + p, *b = v + p, *c = b + (size_t)nk * (size_t)p, *h = c + nk;
  double u_mean = m->in_mean[p], u_sd = m->in_sd[p], ridge = m->cfg.ridge > 0 ? m->cfg.ridge : 0.0;
  for (int t = first_row(m, s->n); t < s->n; t++) {
    if (training_row(m, s, z, t, 1) != 0) continue;
    standardise_row(m, p);
    double yt = s->y[t];
    for (int i = 0; i < p; i++) {
      g[i] += m->raw[i] * yt;
      for (int j = 0; j <= i; j++) a[i * p + j] += m->raw[i] * m->raw[j];
    }
    for (int k = 0; k < nk; k++) {
      double u = (z[t - 1 - k] - u_mean) / u_sd, *bk = b + (size_t)k * (size_t)p;
      for (int i = 0; i < p; i++) bk[i] += m->raw[i] * u;
      c[k] += u * u;
      h[k] += u * yt;
    }
  }
  double scale = 0.0;
  for (int i = 0; i < p; i++) {
    if (i > 0) a[i * p + i] += ridge;
    scale = fmax(scale, a[i * p + i]);
  }
  double tiny = 1e-12 * (1.0 + scale);
  for (int j = 0; j < p; j++) {
    double d = a[j * p + j];
    for (int k = 0; k < j; k++) d -= a[j * p + k] * a[j * p + k];
    a[j * p + j] = sqrt(d > tiny ? d : tiny);
    for (int i = j + 1; i < p; i++) {
      double x = a[i * p + j];
      for (int k = 0; k < j; k++) x -= a[i * p + k] * a[j * p + k];
      a[i * p + j] = x / a[j * p + j];
    }
  }
  /* L q = g, with q kept in g. */
  for (int i = 0; i < p; i++) {
    for (int k = 0; k < i; k++) g[i] -= a[i * p + k] * g[k];
    g[i] /= a[i * p + i];
  }
  int ok = 1;
  for (int k = 0; k < nk; k++) {
    /* The bordered factor [L 0; vᵀ d]: L v = bₖ, d² = cₖ + ridge − vᵀv; then the last weight
     * (hₖ − vᵀq) / d², and Lᵀ w = q − v·(last weight) for the others. */
    double *bk = b + (size_t)k * (size_t)p, *w = m->w + (size_t)k * (size_t)m->nin, vv = 0.0, vq = 0.0;
    for (int i = 0; i < p; i++) {
      double x = bk[i];
      for (int j = 0; j < i; j++) x -= a[i * p + j] * v[j];
      v[i] = x / a[i * p + i];
      vv += v[i] * v[i];
      vq += v[i] * g[i];
    }
    double d2 = c[k] + ridge - vv, last = (h[k] - vq) / (d2 > tiny ? d2 : tiny);
    for (int i = p - 1; i >= 0; i--) {
      double x = g[i] - v[i] * last;
      for (int j = i + 1; j < p; j++) x -= a[j * p + i] * w[j];
      w[i] = x / a[i * p + i];
    }
    w[p] = last;
    for (int i = 0; i <= p; i++) ok &= isfinite(w[i]);
  }
  free(a);
  return ok ? 0 : -1;
}

/* ---- mlp ---- */

static int mlp_nparams(const vpq_model *m) { return m->cfg.hidden * (m->nin + 2) + 1; }

/* Xavier-uniform weights, zero biases. */
static void mlp_init(vpq_model *m) {
  int hn = m->cfg.hidden, nin = m->nin;
  double a1 = sqrt(6.0 / (nin + hn)), a2 = sqrt(6.0 / (hn + 1));
  double *w1 = m->w, *b1 = w1 + hn * nin, *w2 = b1 + hn;
  for (int i = 0; i < hn * nin; i++) w1[i] = (2 * uniform(&m->rng) - 1) * a1;
  for (int j = 0; j < hn; j++) {
    b1[j] = 0.0;
    w2[j] = (2 * uniform(&m->rng) - 1) * a2;
  }
  w2[hn] = 0.0;
}

/* The network's output (standardised) for the standardised inputs in m->raw; the hidden
 * activations are left in m->act. */
static double mlp_forward(const vpq_model *m) {
  int hn = m->cfg.hidden, nin = m->nin;
  const double *w1 = m->w, *b1 = w1 + hn * nin, *w2 = b1 + hn;
  double out = w2[hn];
  for (int j = 0; j < hn; j++) {
    double a = b1[j];
    for (int i = 0; i < nin; i++) a += w1[j * nin + i] * m->raw[i];
    m->act[j] = tanh(a);
    out += w2[j] * m->act[j];
  }
  return out;
}

/* Adds the gradient of ½(output − target)² to m->grad after mlp_forward. */
static void mlp_backward(vpq_model *m, double err) {
  int hn = m->cfg.hidden, nin = m->nin;
  const double *w2 = m->w + hn * nin + hn;
  double *g1 = m->grad, *gb1 = g1 + hn * nin, *g2 = gb1 + hn;
  g2[hn] += err;
  for (int j = 0; j < hn; j++) {
    g2[j] += err * m->act[j];
    double delta = err * w2[j] * (1 - m->act[j] * m->act[j]);
    gb1[j] += delta;
    for (int i = 0; i < nin; i++) g1[j * nin + i] += delta * m->raw[i];
  }
}

/* Puts the standardised horizon inputs of training row t at horizon k after the common ones in
 * m->raw. */
static void mlp_horizon_inputs(vpq_model *m, const double *z, int t, int k) {
  int c = m->ncommon;
  m->raw[c] = (z[t - k] - m->in_mean[c]) / m->in_sd[c];
  if (m->nin > c + 1) m->raw[c + 1] = (k - m->in_mean[c + 1]) / m->in_sd[c + 1];
}

/* Fits the linear base model, then trains the network on its residuals with Adam on minibatches
 * of the training rows in a shuffled order, each row at a horizon drawn afresh in every epoch
 * (so every horizon is trained on every part of the history). The common inputs of the rows and
 * the base's predictions at every horizon are computed once up front. On its own, the network
 * had to learn how the weight of the last value decays with the horizon from k as an input and
 * stayed behind the linear model (PJM East: MAE 2406 against 1694); on the residuals it adds
 * what the calendar and lags do non-linearly. */
static int mlp_fit(vpq_model *m, const vpq_series *s, const double *z) {
  if (linear_fit(m->base, s, z) != 0) return -1;
  int rows = standardise_on(m, s, z);
  if (rows < MLP_BATCH) return -1;
  int nc = m->ncommon, nk = m->horizons;
  int *order = malloc(sizeof(int) * 2 * (size_t)rows);
  double *common = malloc(sizeof(double) * (size_t)rows * (size_t)(nc + nk) + sizeof(double));
  if (!order || !common) {
    free(order);
    free(common);
    return -1;
  }
  int *at = order + rows;
  double *base = common + (size_t)rows * (size_t)nc, sum = 0.0, sq = 0.0;
  rows = 0;
  for (int t = first_row(m, s->n); t < s->n; t++) {
    if (training_row(m, s, z, t, 1) != 0) continue;
    standardise_row(m, nc);
    memcpy(common + (size_t)rows * (size_t)nc, m->raw, sizeof(double) * (size_t)nc);
    double *b = base + (size_t)rows * (size_t)nk;
    linear_row_all(m->base, s, z, t, b);
    for (int k = 0; k < nk; k++) {
      b[k] = s->y[t] - b[k];
      sum += b[k];
      sq += b[k] * b[k];
    }
    order[rows] = rows;
    at[rows++] = t;
  }
  double count = (double)rows * nk;
  m->res_mean = sum / count;
  m->res_sd = sqrt(fmax(sq / count - m->res_mean * m->res_mean, 0.0));
  if (!(m->res_sd > 1e-12 * (1.0 + fabs(m->y_mean)))) m->res_sd = 1.0;
  int np = mlp_nparams(m);
  memset(m->adam_m, 0, sizeof(double) * (size_t)np);
  memset(m->adam_v, 0, sizeof(double) * (size_t)np);
  double b1t = 1.0, b2t = 1.0, lr = m->cfg.learning_rate;
  for (int e = 0; e < m->cfg.epochs; e++) {
    for (int i = rows - 1; i > 0; i--) {
      int j = (int)(splitmix64(&m->rng) % (uint64_t)(i + 1)), tmp = order[i];
      order[i] = order[j];
      order[j] = tmp;
    }
    for (int start = 0; start < rows; start += MLP_BATCH) {
      int end = start + MLP_BATCH < rows ? start + MLP_BATCH : rows;
      memset(m->grad, 0, sizeof(double) * (size_t)np);
      for (int r = start; r < end; r++) {
        int row = order[r], t = at[row], k = 1 + (int)(splitmix64(&m->rng) % (uint64_t)m->horizons);
        memcpy(m->raw, common + (size_t)row * (size_t)nc, sizeof(double) * (size_t)nc);
        mlp_horizon_inputs(m, z, t, k);
        double target = (base[(size_t)row * (size_t)nk + (size_t)(k - 1)] - m->res_mean) / m->res_sd;
        mlp_backward(m, mlp_forward(m) - target);
      }
      b1t *= 0.9;
      b2t *= 0.999;
      double step = lr * sqrt(1 - b2t) / (1 - b1t), inv = 1.0 / (end - start);
      for (int i = 0; i < np; i++) {
        double g = m->grad[i] * inv;
        m->adam_m[i] = 0.9 * m->adam_m[i] + 0.1 * g;
        m->adam_v[i] = 0.999 * m->adam_v[i] + 0.001 * g * g;
        m->w[i] -= step * m->adam_m[i] / (sqrt(m->adam_v[i]) + 1e-8);
      }
    }
  }
  free(order);
  free(common);
  for (int i = 0; i < np; i++) {
    if (!isfinite(m->w[i])) {
      mlp_init(m);
      return -1;
    }
  }
  return 0;
}

/* ---- linear and mlp: fit and prediction ---- */

/* Fits the linear model or the MLP on the history with its gaps filled for the lags. */
static int regression_fit(vpq_model *m, const vpq_series *s) {
  double *z = malloc(sizeof(double) * ((size_t)s->n + 1));
  if (!z) return -1;
  int rc = -1;
  if (fill_gaps(s->y, s->n, z) >= 0) rc = m->cfg.kind == VPQ_MODEL_LINEAR ? linear_fit(m, s, z) : mlp_fit(m, s, z);
  free(z);
  return rc;
}

/* The model's prediction for index t of z (observed values, then filled ones) at horizon k. */
static double predict_at(vpq_model *m, const double *z, int t, int k, int64_t ts0, const double *xrow) {
  raw_inputs(m, z, t, k, ts0, xrow, m->raw);
  standardise_row(m, m->nin);
  if (m->cfg.kind == VPQ_MODEL_LINEAR) return linear_eval(m, k);
  double net = m->res_mean + m->res_sd * mlp_forward(m);
  return predict_at(m->base, z, t, k, ts0, xrow) + net;
}

/* Predicts every step after the last observed value of the history, at its horizon from there
 * (the gaps before it filled as for fitting); beyond `horizons` steps the lag of the last
 * horizon is the model's own earlier prediction. */
static void regression_predict(vpq_model *m, const vpq_series *s, const double *future_x, int h, double *out) {
  double *z = malloc(sizeof(double) * ((size_t)s->n + (size_t)h));
  int last = z ? fill_gaps(s->y, s->n, z) : -1;
  if (last < 0) {
    free(z);
    fill_last(s, h, out);
    return;
  }
  int nf = m->cfg.nfeatures;
  for (int t = last + 1; t < s->n + h; t++) {
    int k = t - last < m->horizons ? t - last : m->horizons;
    const double *xrow = t < s->n ? row_of(s->x, t, nf) : row_of(future_x, t - s->n, nf);
    z[t] = predict_at(m, z, t, k, s->ts0, xrow);
  }
  memcpy(out, z + s->n, sizeof(double) * (size_t)h);
  free(z);
}

/* ---- public API ---- */

/* Allocates everything the model needs up front: fitting allocates only per-fit scratch. */
vpq_model *vpq_model_new(const vpq_model_config *config) {
  vpq_model *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->cfg = *config;
  if (m->cfg.season < 0) m->cfg.season = 0;
  if (m->cfg.nfeatures < 0) m->cfg.nfeatures = 0;
  if (m->cfg.hidden < 1) m->cfg.hidden = 1;
  m->hw[0] = 0.3;
  m->hw[1] = 0.05;
  m->hw[2] = 0.2;
  m->hw[3] = 0.98;
  m->rng = m->cfg.seed;
  size_t need = 0;
  switch (m->cfg.kind) {
  case VPQ_MODEL_SEASONAL_NAIVE:
    return m;
  case VPQ_MODEL_HOLT_WINTERS:
    m->season_buf = malloc(sizeof(double) * (size_t)(m->cfg.season > 1 ? m->cfg.season : 1));
    if (!m->season_buf) break;
    return m;
  case VPQ_MODEL_LINEAR:
  case VPQ_MODEL_MLP:
    set_inputs(m);
    need = m->cfg.kind == VPQ_MODEL_LINEAR ? (size_t)m->horizons * (size_t)m->nin : (size_t)mlp_nparams(m);
    m->in_mean = malloc(sizeof(double) * (size_t)m->nin);
    m->in_sd = malloc(sizeof(double) * (size_t)m->nin);
    m->raw = malloc(sizeof(double) * (size_t)m->nin);
    m->w = calloc(need, sizeof(double));
    if (!m->in_mean || !m->in_sd || !m->raw || !m->w) break;
    if (m->cfg.kind == VPQ_MODEL_LINEAR) return m;
    m->adam_m = malloc(sizeof(double) * need);
    m->adam_v = malloc(sizeof(double) * need);
    m->grad = malloc(sizeof(double) * need);
    m->act = malloc(sizeof(double) * (size_t)m->cfg.hidden);
    if (!m->adam_m || !m->adam_v || !m->grad || !m->act) break;
    vpq_model_config base = m->cfg;
    base.kind = VPQ_MODEL_LINEAR;
    m->base = vpq_model_new(&base);
    if (!m->base) break;
    mlp_init(m);
    return m;
  }
  vpq_model_free(m);
  return NULL;
}

/* Frees the model and all it owns; NULL is a no-op. */
void vpq_model_free(vpq_model *model) {
  if (!model) return;
  vpq_model_free(model->base);
  free(model->season_buf);
  free(model->in_mean);
  free(model->in_sd);
  free(model->w);
  free(model->adam_m);
  free(model->adam_v);
  free(model->grad);
  free(model->raw);
  free(model->act);
  free(model);
}

/* Fits the model's kind; a failed fit makes predictions fall back to the last value until the
 * next successful one, but keeps the parameters to warm-start from. */
int vpq_model_fit(vpq_model *model, const vpq_series *history) {
  int rc = -1;
  switch (model->cfg.kind) {
  case VPQ_MODEL_SEASONAL_NAIVE:
    for (int i = 0; i < history->n && rc != 0; i++)
      if (isfinite(history->y[i])) rc = 0;
    break;
  case VPQ_MODEL_HOLT_WINTERS:
    rc = hw_fit(model, history);
    break;
  case VPQ_MODEL_LINEAR:
  case VPQ_MODEL_MLP:
    rc = regression_fit(model, history);
    break;
  }
  model->fitted = rc == 0;
  return rc;
}

/* Forecasts from `history` with the last fit; the seasonal naive model needs no fit. */
void vpq_model_predict(vpq_model *model, const vpq_series *history, const double *future_x, int h, double *out) {
  if (h <= 0) return;
  if (model->cfg.kind == VPQ_MODEL_SEASONAL_NAIVE) {
    seasonal_naive_predict(model, history, h, out);
  } else if (!model->fitted) {
    fill_last(history, h, out);
  } else if (model->cfg.kind == VPQ_MODEL_HOLT_WINTERS) {
    hw_predict(model, history, h, out);
  } else {
    regression_predict(model, history, future_x, h, out);
  }
}

/* ---- checkpoints ----
 *
 * A model's state between fits: its kind and whether the last fit succeeded; Holt–Winters'
 * parameters (its seasonal components are recomputed at every prediction); the linear model's
 * and the MLP's standardisation and weights (the MLP warm-starts from them); the MLP's random
 * state, its residuals' scale and its linear base model. Adam's moments start from zero at
 * every fit and the other buffers are scratch, so they are not written. */

/* The number of weights of a linear model or an MLP. */
static size_t model_nweights(const vpq_model *m) {
  return m->cfg.kind == VPQ_MODEL_LINEAR ? (size_t)m->horizons * (size_t)m->nin : (size_t)mlp_nparams(m);
}

/* Writes the model's state (see above). */
void vpq_model_save(const vpq_model *model, vpq_ckpt_out *out) {
  const vpq_model *m = model;
  vpq_ckpt_put_u64(out, (uint64_t)m->cfg.kind);
  vpq_ckpt_put_u64(out, m->fitted ? 1 : 0);
  if (m->cfg.kind == VPQ_MODEL_HOLT_WINTERS)
    for (int i = 0; i < HW_NPAR; i++) vpq_ckpt_put_f64(out, m->hw[i]);
  if (m->cfg.kind != VPQ_MODEL_LINEAR && m->cfg.kind != VPQ_MODEL_MLP) return;
  vpq_ckpt_put_u64(out, (uint64_t)m->nin);
  for (int i = 0; i < m->nin; i++) {
    vpq_ckpt_put_f64(out, m->in_mean[i]);
    vpq_ckpt_put_f64(out, m->in_sd[i]);
  }
  vpq_ckpt_put_f64(out, m->y_mean);
  vpq_ckpt_put_f64(out, m->y_sd);
  size_t nw = model_nweights(m);
  vpq_ckpt_put_u64(out, nw);
  for (size_t i = 0; i < nw; i++) vpq_ckpt_put_f64(out, m->w[i]);
  if (m->cfg.kind != VPQ_MODEL_MLP) return;
  vpq_ckpt_put_u64(out, m->rng);
  vpq_ckpt_put_f64(out, m->res_mean);
  vpq_ckpt_put_f64(out, m->res_sd);
  vpq_model_save(m->base, out);
}

/* Reads a model's state into `model`, whose config fixes every size: a different kind or size
 * fails the input. Values are read into the model's own buffers, so a failure halfway leaves
 * it freeable (and unfitted). */
void vpq_model_load(vpq_model *model, vpq_ckpt_in *in) {
  vpq_model *m = model;
  if (vpq_ckpt_get_u64(in) != (uint64_t)m->cfg.kind) vpq_ckpt_fail(in, "a forecasting model of another kind");
  m->fitted = vpq_ckpt_get_bool(in);
  if (m->cfg.kind == VPQ_MODEL_HOLT_WINTERS) {
    for (int i = 0; i < HW_NPAR; i++) {
      m->hw[i] = vpq_ckpt_get_f64(in);
      if (!(m->hw[i] >= hw_lo[i] && m->hw[i] <= hw_hi[i])) vpq_ckpt_fail(in, "a Holt-Winters parameter out of range");
    }
  }
  if (m->cfg.kind == VPQ_MODEL_LINEAR || m->cfg.kind == VPQ_MODEL_MLP) {
    if (vpq_ckpt_get_count(in, m->nin) != m->nin) vpq_ckpt_fail(in, "a forecasting model with other inputs");
    for (int i = 0; i < m->nin && !in->error; i++) {
      m->in_mean[i] = vpq_ckpt_get_f64(in);
      m->in_sd[i] = vpq_ckpt_get_f64(in);
    }
    m->y_mean = vpq_ckpt_get_f64(in);
    m->y_sd = vpq_ckpt_get_f64(in);
    size_t nw = model_nweights(m);
    if ((size_t)vpq_ckpt_get_count(in, (int64_t)nw) != nw) vpq_ckpt_fail(in, "a forecasting model with other weights");
    for (size_t i = 0; i < nw && !in->error; i++) m->w[i] = vpq_ckpt_get_f64(in);
  }
  if (m->cfg.kind == VPQ_MODEL_MLP) {
    m->rng = vpq_ckpt_get_u64(in);
    m->res_mean = vpq_ckpt_get_f64(in);
    m->res_sd = vpq_ckpt_get_f64(in);
    vpq_model_load(m->base, in);
  }
  if (in->error) m->fitted = 0;
}
