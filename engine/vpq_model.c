/* vpq_model.c — the forecasting models of the FORECAST operator (vpq_model.h): the public entry
 * points, which create a model and dispatch to its kind, the seasonal naive model, the helpers
 * the others share, and checkpoints of every kind's state. The other models live beside it:
 *
 *   vpq_model_hw.c          additive Holt–Winters with a damped trend, fitted by Nelder–Mead
 *   vpq_model_regression.c  what the linear model and the MLP share: their inputs, the linear
 *                           model's robust variant, fitting and predicting either
 *   vpq_model_linear.c      direct multi-horizon ridge regression (one weight vector per horizon)
 *   vpq_model_mlp.c         the one-hidden-layer MLP trained with Adam, in slices, on the
 *                           linear model's residuals
 *
 * and vpq_model_int.h declares what they share (the model's struct among it). */
#include "vpq_model_int.h"

#include <math.h>
#include <stdlib.h>

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
      .spread = 0,
  };
  return c;
}

/* ---- helpers ---- */

static double last_value(const vpq_series *s) {
  for (int i = s->n - 1; i >= 0; i--)
    if (isfinite(s->y[i])) return s->y[i];
  return 0.0;
}

/* Fills out[0..h) with the history's last observed value (0 when none): every model's fallback. */
void vpq_model_fill_last(const vpq_series *s, int h, double *out) {
  double v = last_value(s);
  for (int k = 0; k < h; k++) out[k] = v;
}

/* Hoare's selection of the k-th smallest (vpq_model.h). */
double vpq_model_select_kth(double *v, int n, int k) {
  int lo = 0, hi = n - 1;
  while (lo < hi) {
    double pivot = v[lo + (hi - lo) / 2];
    int i = lo, j = hi;
    while (i <= j) {
      while (v[i] < pivot) i++;
      while (v[j] > pivot) j--;
      if (i <= j) {
        double tmp = v[i];
        v[i++] = v[j];
        v[j--] = tmp;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return v[k];
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

/* ---- public API ---- */

/* What a model is part of: a linear model on its own has a robust variant; the MLP's base and
 * the robust variant itself have none. */
typedef enum model_role { ROLE_TOP, ROLE_PART } model_role;

/* Allocates everything the model needs up front: fitting allocates only per-fit scratch. */
static vpq_model *model_new(const vpq_model_config *config, model_role role) {
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
    vpq_model_set_inputs(m);
    need = m->cfg.kind == VPQ_MODEL_LINEAR ? (size_t)m->horizons * (size_t)m->nin : (size_t)vpq_model_mlp_nparams(m);
    m->in_mean = malloc(sizeof(double) * (size_t)m->nin);
    m->in_sd = malloc(sizeof(double) * (size_t)m->nin);
    m->raw = malloc(sizeof(double) * (size_t)m->nin);
    m->w = calloc(need, sizeof(double));
    if (!m->in_mean || !m->in_sd || !m->raw || !m->w) break;
    if (m->cfg.kind == VPQ_MODEL_LINEAR && role == ROLE_PART) return m;
    if (m->cfg.kind == VPQ_MODEL_LINEAR) {
      m->alt = model_new(config, ROLE_PART);
      if (!m->alt) break;
      m->other_age = (int)(m->cfg.spread % OTHER_REFIT);
      return m;
    }
    m->adam_m = malloc(sizeof(double) * need);
    m->adam_v = malloc(sizeof(double) * need);
    m->grad = malloc(sizeof(double) * need);
    m->act = malloc(sizeof(double) * (size_t)m->cfg.hidden);
    if (!m->adam_m || !m->adam_v || !m->grad || !m->act) break;
    vpq_model_config base = m->cfg;
    base.kind = VPQ_MODEL_LINEAR;
    m->base = model_new(&base, ROLE_PART);
    if (!m->base) break;
    vpq_model_mlp_init(m);
    return m;
  }
  vpq_model_free(m);
  return NULL;
}

/* A model of the given config (see model_new). */
vpq_model *vpq_model_new(const vpq_model_config *config) { return model_new(config, ROLE_TOP); }

/* Frees the model and all it owns; NULL is a no-op. */
void vpq_model_free(vpq_model *model) {
  if (!model) return;
  vpq_model_free(model->base);
  vpq_model_free(model->alt);
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
    rc = vpq_model_hw_fit(model, history);
    break;
  case VPQ_MODEL_LINEAR:
  case VPQ_MODEL_MLP:
    rc = vpq_model_regression_fit(model, history);
    break;
  }
  model->fitted = rc == 0;
  return rc;
}

/* True while the MLP owes slices of a training (see vpq_model_mlp.c). */
int vpq_model_training(const vpq_model *model) {
  return model->cfg.kind == VPQ_MODEL_MLP && model->fitted && model->owed > 0;
}

/* Runs the next slice of an unfinished MLP training; any other model has none. */
int vpq_model_train(vpq_model *model, const vpq_series *history) {
  return vpq_model_training(model) ? vpq_model_regression_train(model, history) : 0;
}

/* Forecasts from `history` with the last fit; the seasonal naive model needs no fit. */
void vpq_model_predict(vpq_model *model, const vpq_series *history, const double *future_x, int h, double *out) {
  if (h <= 0) return;
  if (model->cfg.kind == VPQ_MODEL_SEASONAL_NAIVE) {
    seasonal_naive_predict(model, history, h, out);
  } else if (!model->fitted) {
    vpq_model_fill_last(history, h, out);
  } else if (model->cfg.kind == VPQ_MODEL_HOLT_WINTERS) {
    vpq_model_hw_predict(model, history, h, out);
  } else {
    vpq_model_regression_predict(model, history, future_x, h, out);
  }
}

/* ---- checkpoints ----
 *
 * A model's state between fits: its kind and whether the last fit succeeded; Holt–Winters'
 * parameters (its seasonal components are recomputed at every prediction); the linear model's
 * and the MLP's transform, standardisation and weights; the MLP's random state, its residuals'
 * scale, its training (Adam's moments and decay factors, the minibatches owed, whether a
 * training has completed) and its linear base model. The other buffers are scratch. */

/* The number of weights of a linear model or an MLP. */
static size_t model_nweights(const vpq_model *m) {
  return m->cfg.kind == VPQ_MODEL_LINEAR ? (size_t)m->horizons * (size_t)m->nin : (size_t)vpq_model_mlp_nparams(m);
}

/* Writes the model's state (see above). */
void vpq_model_save(const vpq_model *model, vpq_ckpt_out *out) {
  const vpq_model *m = model;
  vpq_ckpt_put_u64(out, (uint64_t)m->cfg.kind);
  vpq_ckpt_put_u64(out, m->fitted ? 1 : 0);
  if (m->cfg.kind == VPQ_MODEL_HOLT_WINTERS) {
    for (int i = 0; i < HW_NPAR; i++) vpq_ckpt_put_f64(out, m->hw[i]);
    vpq_ckpt_put_u64(out, (uint64_t)m->hw_age);
  }
  if (m->cfg.kind != VPQ_MODEL_LINEAR && m->cfg.kind != VPQ_MODEL_MLP) return;
  vpq_ckpt_put_f64(out, m->tf_center);
  vpq_ckpt_put_f64(out, m->tf_scale);
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
  vpq_ckpt_put_f64(out, m->score);
  vpq_ckpt_put_u64(out, m->alt ? 1 : 0);
  if (m->alt) {
    vpq_ckpt_put_i64(out, m->scored_until);
    vpq_ckpt_put_u64(out, (uint64_t)m->other_age);
    vpq_model_save(m->alt, out);
  }
  if (m->cfg.kind != VPQ_MODEL_MLP) return;
  vpq_ckpt_put_u64(out, m->rng);
  vpq_ckpt_put_f64(out, m->res_mean);
  vpq_ckpt_put_f64(out, m->res_sd);
  vpq_ckpt_put_f64(out, m->adam_b1t);
  vpq_ckpt_put_f64(out, m->adam_b2t);
  vpq_ckpt_put_i64(out, m->owed);
  vpq_ckpt_put_i64(out, m->trained);
  vpq_ckpt_put_u64(out, m->ready ? 1 : 0);
  for (size_t i = 0; i < nw; i++) {
    vpq_ckpt_put_f64(out, m->adam_m[i]);
    vpq_ckpt_put_f64(out, m->adam_v[i]);
  }
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
      if (!(m->hw[i] >= vpq_model_hw_lo[i] && m->hw[i] <= vpq_model_hw_hi[i]))
        vpq_ckpt_fail(in, "a Holt-Winters parameter out of range");
    }
    m->hw_age = (int)vpq_ckpt_get_at_most(in, HW_SEARCH_EVERY);
  }
  if (m->cfg.kind == VPQ_MODEL_LINEAR || m->cfg.kind == VPQ_MODEL_MLP) {
    m->tf_center = vpq_ckpt_get_f64(in);
    m->tf_scale = vpq_ckpt_get_f64(in);
    if (!isfinite(m->tf_center) || !(m->tf_scale >= 0 && m->tf_scale < INFINITY))
      vpq_ckpt_fail(in, "a forecasting model's transform out of range");
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
    m->score = vpq_ckpt_get_f64(in);
    if (!(m->score >= 0 && m->score <= INFINITY)) vpq_ckpt_fail(in, "a forecasting model's score out of range");
    if (vpq_ckpt_get_bool(in) != (m->alt != NULL)) vpq_ckpt_fail(in, "a linear model without its robust variant");
    if (m->alt && !in->error) {
      m->scored_until = vpq_ckpt_get_i64(in);
      m->other_age = (int)vpq_ckpt_get_at_most(in, OTHER_REFIT);
      vpq_model_load(m->alt, in);
    }
  }
  if (m->cfg.kind == VPQ_MODEL_MLP) {
    m->rng = vpq_ckpt_get_u64(in);
    m->res_mean = vpq_ckpt_get_f64(in);
    m->res_sd = vpq_ckpt_get_f64(in);
    m->adam_b1t = vpq_ckpt_get_f64(in);
    m->adam_b2t = vpq_ckpt_get_f64(in);
    m->owed = vpq_ckpt_get_i64(in);
    m->trained = vpq_ckpt_get_i64(in);
    m->ready = vpq_ckpt_get_bool(in);
    if (!(m->adam_b1t >= 0 && m->adam_b1t <= 1 && m->adam_b2t >= 0 && m->adam_b2t <= 1) || m->owed < 0 ||
        m->trained < 0)
      vpq_ckpt_fail(in, "an MLP training state out of range");
    size_t nw = model_nweights(m);
    for (size_t i = 0; i < nw && !in->error; i++) {
      m->adam_m[i] = vpq_ckpt_get_f64(in);
      m->adam_v[i] = vpq_ckpt_get_f64(in);
    }
    vpq_model_load(m->base, in);
  }
  if (in->error) m->fitted = 0;
}
