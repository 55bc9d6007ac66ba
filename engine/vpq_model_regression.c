/* vpq_model_regression.c — what FORECAST's linear model and MLP (vpq_model.h) share: the
 * layout and values of their input rows, the gap filling and standardisation of the history,
 * the linear model's robust variant (a second linear model on transformed values, and the
 * scores that pick which of the two forecasts), and fitting and predicting either model over
 * a history. The ridge regression itself is in vpq_model_linear.c, the network in
 * vpq_model_mlp.c. */
#include "vpq_model_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TWO_PI 6.28318530717958647692

/* The robust variant's transform scale in median absolute deviations; the time constant of
 * the variants' scores, in seasons of values. */
#define TF_SCALE 2.0
#define SCORE_MEMORY_SEASONS 14.0

/* ---- inputs of the linear model and the MLP ----
 *
 * Both are direct multi-horizon forecasters. The row predicting index t from an origin k steps
 * before it (the last value known is at t − k) holds the common inputs of t, then the horizon
 * inputs: the value at t − k, with a season also the mean of the season up to t − k, the value a
 * season before t − k, the value before t − k and that one's a season before, and, for the MLP, k
 * itself. Linear: one-hot hour of day (hour 0 the reference), one-hot day of week (Monday the
 * reference) and the intercept, in this order, so that the hours' block of the Gram matrix is
 * diagonal and leads (see cholesky in vpq_model_linear.c). MLP: sin/cos of the time of day and of
 * the week. Both then: the value one season before, the value one week before, the exogenous
 * features. The linear model keeps one weight vector per horizon k = 1 .. horizons (one season),
 * the MLP one network with k as an input; steps further ahead are predicted with k = horizons from
 * the model's own earlier predictions. A day-ahead load forecast from midnight thereby uses the
 * last hour observed, not only yesterday's same hour (PJM East, the last year: MAE 0.74× the
 * better seasonal naive forecast, against 0.92× lagging one season only); the season's mean adds
 * the level of the whole last season (load: MAE −1%). The origin's values a season before let the
 * regression weigh how far today runs above or below yesterday at the origin, and the value before
 * the origin how fast the series moves there: day-ahead load MAE −6 to −10% on the four PJM zones,
 * SE3 prices −2%, SE4 +1% (bench/run_forecast.sh), and the next hour's load −25 to −48%
 * (bench/schedule_gap.c's forecasts). */

static double lag_at(const vpq_model *m, const double *z, int j) { return j < 0 ? m->y_mean : z[j]; }

/* The index of the weekly lag of t: a week before, or where that is before the history, the
 * earliest same phase of the season inside it (negative when there is none). */
static int week_lag(const vpq_model *m, int t) {
  int season = m->cfg.season, j = t - m->week;
  while (j < 0 && season > 1 && j + season <= t - season) j += season;
  return j;
}

/* Writes the horizon inputs of an origin whose last value is z[j] into r: that value and, with a
 * season, the value a season before it, the value before it, that one's a season before, and the
 * mean of the season up to it (from index 0 when it starts before the history). */
void vpq_model_horizon_inputs(const vpq_model *m, const double *z, int j, double *r) {
  r[0] = lag_at(m, z, j);
  if (m->nhorizon == 1) return;
  r[2] = lag_at(m, z, j - m->cfg.season);
  r[3] = lag_at(m, z, j - 1);
  r[4] = lag_at(m, z, j - 1 - m->cfg.season);
  if (j < 0) {
    r[1] = m->y_mean;
    return;
  }
  int from = j - m->cfg.season + 1 > 0 ? j - m->cfg.season + 1 : 0;
  double sum = 0.0;
  for (int i = from; i <= j; i++) sum += z[i];
  r[1] = sum / (j - from + 1);
}

/* Writes the inputs of t that neither the calendar nor the horizon decide (the seasonal and
 * weekly lags, the exogenous features xrow, NAN when unknown) into r; returns how many. */
int vpq_model_lag_inputs(const vpq_model *m, const double *z, int t, const double *xrow, double *r) {
  const vpq_model_config *c = &m->cfg;
  int n = 0;
  if (c->season > 1) r[n++] = lag_at(m, z, t - c->season);
  if (m->week > 0) r[n++] = lag_at(m, z, week_lag(m, t));
  for (int f = 0; f < c->nfeatures; f++) r[n++] = xrow ? xrow[f] : NAN;
  return n;
}

/* The raw inputs (see above) of the row predicting index t of z (observed or filled values) at
 * horizon k, whose exogenous features are xrow (NULL: none known, NAN). */
void vpq_model_raw_inputs(const vpq_model *m, const double *z, int t, int k, int64_t ts0, const double *xrow,
                          double *r) {
  const vpq_model_config *c = &m->cfg;
  int64_t ts = ts0 + (int64_t)t * c->step_ms;
  int n = 0;
  if (c->kind == VPQ_MODEL_LINEAR) {
    if (has_hour(c)) {
      int hour = hour_of_day(ts);
      for (int i = 1; i < 24; i++) r[n++] = hour == i;
    }
    if (has_dow(c)) {
      int dow = day_of_week(ts);
      for (int i = 1; i < 7; i++) r[n++] = dow == i;
    }
    r[n++] = 1.0;
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
  n += vpq_model_lag_inputs(m, z, t, xrow, r + n);
  vpq_model_horizon_inputs(m, z, t - k, r + n);
  n += m->nhorizon;
  if (c->kind == VPQ_MODEL_MLP && m->horizons > 1) r[n++] = k;
}

/* Sets the model's input layout: horizons, the weekly lag (when the step divides a week and the
 * week is longer than the season), the common inputs, the horizon inputs and all inputs. */
void vpq_model_set_inputs(vpq_model *m) {
  const vpq_model_config *c = &m->cfg;
  m->horizons = c->season > 1 ? c->season : 1;
  m->week = 0;
  if (has_dow(c) && (7 * DAY_MS) % c->step_ms == 0 && 7 * DAY_MS / c->step_ms > c->season)
    m->week = (int)(7 * DAY_MS / c->step_ms);
  int common = (c->season > 1) + (m->week > 0) + c->nfeatures;
  if (c->kind == VPQ_MODEL_LINEAR) common += 1 + (has_hour(c) ? 23 : 0) + (has_dow(c) ? 6 : 0);
  else common += (has_hour(c) ? 2 : 0) + (has_dow(c) ? 2 : 0);
  m->ncommon = common;
  m->nhorizon = c->season > 1 ? 5 : 1;
  m->nin = common + m->nhorizon + (c->kind == VPQ_MODEL_MLP && m->horizons > 1);
}


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

/* The first training row of a history of n values: the first with its season and horizon lags
 * inside the history, or the first with its weekly lag inside it when that leaves enough rows
 * (before it the weekly lag stands in with an earlier same phase, see week_lag). */
int vpq_model_first_row(const vpq_model *m, int n) {
  if (m->week > 0 && n - m->week >= 4 * m->nin) return m->week;
  return m->horizons > m->cfg.season ? m->horizons : m->cfg.season;
}

/* Standardises the first n entries of m->raw in place; an unknown input becomes its mean (0). */
void vpq_model_standardise_row(const vpq_model *m, int n) {
  for (int i = 0; i < n; i++) m->raw[i] = isfinite(m->raw[i]) ? (m->raw[i] - m->in_mean[i]) / m->in_sd[i] : 0.0;
}

/* Sets in_sd[i] (holding a sum of squared deviations over `rows` rows) to the standard
 * deviation, or 1 when it is (nearly) 0 against the mean. */
void vpq_model_finish_sd(vpq_model *m, int i, int rows) {
  double sd = rows > 1 ? sqrt(m->in_sd[i] / rows) : 0.0;
  m->in_sd[i] = sd > 1e-12 * (1.0 + fabs(m->in_mean[i])) ? sd : 1.0;
}

/* ---- the robust variant of the linear model ----
 *
 * Day-ahead prices jump by many times their usual hourly change; fitted by least squares,
 * those hours pull every weight, where a load series has no such hours. A linear model
 * therefore fits a second variant of itself (alt) on asinh((v − median) / (TF_SCALE · MAD)) of
 * the history's values (the lags with them; not the exogenous features; median and median
 * absolute deviation of the history) and forecasts the inverse of what that predicts: near the
 * median the transform is linear, far from it logarithmic, as in the epftoolbox benchmark's
 * models. Which variant forecasts is decided by how well each did lately: at every fit, before
 * it refits, each variant's last fit forecasts the values of the last season from the origin
 * one season before (the values it has not yet scored), and the absolute errors add to a score
 * that forgets with a time constant of SCORE_MEMORY_SEASONS seasons of values; the variant
 * with the lower score forecasts (the plain one on a tie). On the benchmark (day-ahead, daily
 * refits): SE3 prices MAE 16.1 EUR/MWh plain, 15.0 robust, 15.6 chosen so; PJM East load 4%
 * worse robust than plain, and the choice stays with the plain variant. */

static double tf_forward(const vpq_model *m, double v) {
  return m->tf_scale > 0 ? asinh((v - m->tf_center) / m->tf_scale) : v;
}

static double tf_inverse(const vpq_model *m, double v) {
  return m->tf_scale > 0 ? m->tf_center + m->tf_scale * sinh(v) : v;
}

/* The median of v[0..n) (n > 0), reordering v. */
static double median_of(double *v, int n) {
  double upper = vpq_model_select_kth(v, n, n / 2);
  if (n % 2) return upper;
  double lower = v[0];
  for (int i = 1; i < n / 2; i++) lower = fmax(lower, v[i]); /* the left part holds the smaller half */
  return 0.5 * (lower + upper);
}

/* Sets the robust variant's transform from the history's observed values (none when they do
 * not spread). */
static void tf_choose(vpq_model *m, const vpq_series *s) {
  m->tf_center = 0.0;
  m->tf_scale = 0.0;
  double *v = malloc(sizeof(double) * ((size_t)s->n + 1));
  if (!v) return;
  int n = 0;
  for (int i = 0; i < s->n; i++)
    if (isfinite(s->y[i])) v[n++] = s->y[i];
  if (n > 0) {
    double center = median_of(v, n);
    for (int i = 0; i < n; i++) v[i] = fabs(v[i] - center);
    double mad = median_of(v, n);
    if (mad > 0 && isfinite(mad)) {
      m->tf_center = center;
      m->tf_scale = TF_SCALE * mad;
    }
  }
  free(v);
}

/* ---- linear and mlp: fit and prediction ---- */

/* The history's values in the model's transform (y) and with their gaps filled (z, with room
 * for `extra` more), in one allocation (freed with y); returns the index of the last observed
 * value, -1 when there is none or out of memory. */
static int transformed(const vpq_model *m, const vpq_series *s, int extra, double **y, double **z) {
  *y = malloc(sizeof(double) * (2 * (size_t)s->n + (size_t)extra + 1));
  if (!*y) return -1;
  *z = *y + s->n;
  for (int i = 0; i < s->n; i++) (*y)[i] = isfinite(s->y[i]) ? tf_forward(m, s->y[i]) : NAN;
  return fill_gaps(*y, s->n, *z);
}

/* Fits a linear model (one variant) or starts the MLP's training on the history, in the
 * model's transform. */
static int series_fit(vpq_model *m, const vpq_series *s) {
  double *y, *z;
  int rc = -1;
  if (transformed(m, s, 0, &y, &z) >= 0) {
    vpq_series ts = *s;
    ts.y = y;
    rc = m->cfg.kind == VPQ_MODEL_LINEAR ? vpq_model_linear_fit(m, &ts, z) : vpq_model_mlp_fit(m, &ts, z);
  }
  free(y);
  return rc;
}

/* Runs the next slice of the MLP's training on the history. */
int vpq_model_regression_train(vpq_model *m, const vpq_series *s) {
  double *y, *z;
  int rc = -1;
  if (transformed(m, s, 0, &y, &z) >= 0) {
    vpq_series ts = *s;
    ts.y = y;
    rc = vpq_model_mlp_train_slice(m, &ts, z);
  }
  free(y);
  return rc;
}

/* The model's prediction for index t of z (observed values, then filled ones) at horizon k. */
double vpq_model_predict_at(vpq_model *m, const double *z, int t, int k, int64_t ts0, const double *xrow) {
  if (m->cfg.kind == VPQ_MODEL_MLP && !m->ready) return vpq_model_predict_at(m->base, z, t, k, ts0, xrow);
  vpq_model_raw_inputs(m, z, t, k, ts0, xrow, m->raw);
  vpq_model_standardise_row(m, m->nin);
  if (m->cfg.kind == VPQ_MODEL_LINEAR) return vpq_model_linear_eval(m, k);
  double net = m->res_mean + m->res_sd * vpq_model_mlp_forward(m);
  return vpq_model_predict_at(m->base, z, t, k, ts0, xrow) + net;
}

/* Adds to *score the absolute errors of variant m's forecasts of the history's values after
 * index `origin` up to `last`, at times after `since` (epoch ms), from `origin`; the score
 * forgets by a factor 1 − 1/(SCORE_MEMORY_SEASONS · season) per value. */
static void backcast(vpq_model *m, const vpq_series *s, int origin, int last, int64_t since, double *score) {
  double *y, *z;
  if (transformed(m, s, 0, &y, &z) >= 0) {
    double decay = 1.0 - 1.0 / (SCORE_MEMORY_SEASONS * m->horizons);
    for (int t = origin + 1; t <= last; t++) {
      if (s->ts0 + (int64_t)t * m->cfg.step_ms <= since || !isfinite(s->y[t])) continue;
      double f = tf_inverse(m, vpq_model_predict_at(m, z, t, t - origin, s->ts0, row_of(s->x, t, m->cfg.nfeatures)));
      *score = decay * *score + (isfinite(f) ? fabs(s->y[t] - f) : fabs(s->y[t]));
    }
  }
  free(y);
}

/* Fits a linear model and its robust variant (see ---- the robust variant ----): first scores
 * both variants' last fits on the newest values, then refits the one that forecasts and, every
 * OTHER_REFIT fits (counted from a point the config's spread sets), the other one (its scores
 * keep coming from its last fit: it halves the cost of a fit). Fails when a refit of the plain
 * variant or of the forecasting robust one fails. */
static int linear_top_fit(vpq_model *m, const vpq_series *s) {
  vpq_model *alt = m->alt;
  int last = s->n - 1, season = m->horizons;
  while (last >= 0 && !isfinite(s->y[last])) last--;
  if (m->fitted && alt->fitted && last - season >= m->cfg.season) {
    backcast(m, s, last - season, last, m->scored_until, &m->score);
    backcast(alt, s, last - season, last, m->scored_until, &alt->score);
    m->scored_until = s->ts0 + (int64_t)last * m->cfg.step_ms;
  }
  int use_alt = m->fitted && alt->fitted && alt->score < m->score;
  int due = ++m->other_age >= OTHER_REFIT, other = due || !alt->fitted;
  if (due) m->other_age = 0;
  int rc = 0;
  if (use_alt || other) {
    tf_choose(alt, s);
    alt->fitted = series_fit(alt, s) == 0;
    if (use_alt && !alt->fitted) rc = -1;
  }
  if ((!use_alt || other) && series_fit(m, s) != 0) rc = -1;
  return rc;
}

/* Fits the linear model (both variants) or starts the MLP's training. */
int vpq_model_regression_fit(vpq_model *m, const vpq_series *s) {
  return m->alt ? linear_top_fit(m, s) : series_fit(m, s);
}

/* Predicts every step after the last observed value of the history, at its horizon from there
 * (the gaps before it filled as for fitting), with the variant whose recent forecasts did
 * better; beyond `horizons` steps the lag of the last horizon is the model's own earlier
 * prediction. */
void vpq_model_regression_predict(vpq_model *m, const vpq_series *s, const double *future_x, int h, double *out) {
  if (m->alt && m->alt->fitted && m->alt->score < m->score) m = m->alt;
  double *y = NULL, *z;
  int last = transformed(m, s, h, &y, &z);
  if (last < 0) {
    free(y);
    vpq_model_fill_last(s, h, out);
    return;
  }
  int nf = m->cfg.nfeatures;
  for (int t = last + 1; t < s->n + h; t++) {
    int k = t - last < m->horizons ? t - last : m->horizons;
    const double *xrow = t < s->n ? row_of(s->x, t, nf) : row_of(future_x, t - s->n, nf);
    z[t] = vpq_model_predict_at(m, z, t, k, s->ts0, xrow);
  }
  for (int i = 0; i < h; i++) out[i] = tf_inverse(m, z[s->n + i]);
  free(y);
}
