/* vpq_model_mlp.c — the MLP model of FORECAST (vpq_model.h): one hidden layer of tanh units
 * trained with Adam on the residuals of a linear base model, in slices of a few minibatches
 * per call, deterministically for a seed.
 *
 * The network learns the residuals of a linear model with the same options (its base): on its
 * own it had to learn how the weight of the last value decays with the horizon and stayed
 * behind the linear model (PJM East: MAE 2406 against 1694); on the residuals it adds what the
 * calendar and lags do non-linearly. A training is `epochs` passes over the history, run in
 * slices of at most MLP_SLICE minibatches per call, so that training never holds the engine
 * for long: vpq_model_fit refits the base and the standardisation and runs the first slice,
 * vpq_model_train the next ones (the FORECAST operator calls it at every issue while a training
 * is unfinished). A refit starts a new training, so with the default (a refit at every issue)
 * the network trains one slice per issue, continually, on the newest history. Each minibatch
 * draws MLP_BATCH training rows of the history as it is then at random, each at a random
 * horizon, and takes one Adam step. Forecasts add the network once it has run as many
 * minibatches since its initialisation as a training of the history owes (the base alone
 * before); trainings continue from its weights and Adam's moments. Everything random comes
 * from the model's own generator, so a seed gives the same forecasts for the same calls.
 * Trained this way, lightly and continually, the network does better than with 30 epochs from
 * a warm start at every issue (PJM East: MAE 1743 against 1827 MW) at a fifteenth of the cost. */
#include "vpq_model_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* MLP: rows per minibatch; minibatches per training slice (about 0.2 ms with 8 hidden units and
 * hourly lags); the training rows the standardisation is taken from at most. */
#define MLP_BATCH 32
#define MLP_SLICE 16
#define MLP_STANDARDISE_ROWS 256

/* The model's random numbers: splitmix64, one step of it. */
static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* A uniform double in [0, 1). */
static double uniform(uint64_t *state) { return (double)(splitmix64(state) >> 11) * 0x1.0p-53; }

/* ---- the network ---- */

/* The number of the network's parameters: W1, b1, W2 and b2. */
int vpq_model_mlp_nparams(const vpq_model *m) { return m->cfg.hidden * (m->nin + 2) + 1; }

/* Xavier-uniform weights, zero biases; Adam's moments zero. */
void vpq_model_mlp_init(vpq_model *m) {
  int hn = m->cfg.hidden, nin = m->nin, np = vpq_model_mlp_nparams(m);
  double a1 = sqrt(6.0 / (nin + hn)), a2 = sqrt(6.0 / (hn + 1));
  double *w1 = m->w, *b1 = w1 + hn * nin, *w2 = b1 + hn;
  for (int i = 0; i < hn * nin; i++) w1[i] = (2 * uniform(&m->rng) - 1) * a1;
  for (int j = 0; j < hn; j++) {
    b1[j] = 0.0;
    w2[j] = (2 * uniform(&m->rng) - 1) * a2;
  }
  w2[hn] = 0.0;
  memset(m->adam_m, 0, sizeof(double) * (size_t)np);
  memset(m->adam_v, 0, sizeof(double) * (size_t)np);
  m->adam_b1t = m->adam_b2t = 1.0;
  m->ready = 0;
  m->owed = 0;
  m->trained = 0;
}

/* The network's output (standardised) for the standardised inputs in m->raw; the hidden
 * activations are left in m->act. */
double vpq_model_mlp_forward(const vpq_model *m) {
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

/* Adds the gradient of ½(output − target)² to m->grad after vpq_model_mlp_forward. */
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

/* True when index t of the history can train: its value and its features are observed (its
 * lags, read from the filled series, always are). */
static int mlp_row_valid(const vpq_model *m, const vpq_series *s, int t) {
  if (!isfinite(s->y[t])) return 0;
  const double *x = row_of(s->x, t, m->cfg.nfeatures);
  for (int f = 0; f < m->cfg.nfeatures; f++)
    if (!isfinite(x[f])) return 0;
  return 1;
}

/* The last observed index of s, -1 when there is none. */
static int last_observed(const vpq_series *s) {
  int last = s->n - 1;
  while (last >= 0 && !isfinite(s->y[last])) last--;
  return last;
}

/* The horizon at which training row t is seen from an origin of the phase of the history's
 * last value (the one the forecast starts from), as the base model weights it. */
static int origin_horizon(const vpq_model *m, int t, int last) {
  int nk = m->horizons;
  return 1 + (int)((((int64_t)t - last - 1) % nk + nk) % nk);
}

/* Sets the standardisation of the network's inputs and of the base model's residuals from the
 * training rows (Welford's running means and variances over at most MLP_STANDARDISE_ROWS of
 * them, evenly spread), each row taken at its origin_horizon; returns the number of training
 * rows. */
static int mlp_standardise(vpq_model *m, const vpq_series *s, const double *z) {
  int rows = 0, used = 0, last = last_observed(s), first = vpq_model_first_row(m, s->n);
  for (int t = first; t < s->n; t++) rows += mlp_row_valid(m, s, t);
  int stride = rows > MLP_STANDARDISE_ROWS ? (rows + MLP_STANDARDISE_ROWS - 1) / MLP_STANDARDISE_ROWS : 1;
  double r_m2 = 0.0;
  m->res_mean = 0.0;
  for (int i = 0; i < m->nin; i++) m->in_mean[i] = m->in_sd[i] = 0.0;
  for (int t = first, valid = 0; t < s->n; t++) {
    if (!mlp_row_valid(m, s, t) || valid++ % stride) continue;
    int k = origin_horizon(m, t, last);
    const double *xrow = row_of(s->x, t, m->cfg.nfeatures);
    double res = s->y[t] - vpq_model_predict_at(m->base, z, t, k, s->ts0, xrow);
    vpq_model_raw_inputs(m, z, t, k, s->ts0, xrow, m->raw);
    used++;
    double d = res - m->res_mean;
    m->res_mean += d / used;
    r_m2 += d * (res - m->res_mean);
    for (int i = 0; i < m->nin; i++) {
      d = m->raw[i] - m->in_mean[i];
      m->in_mean[i] += d / used;
      m->in_sd[i] += d * (m->raw[i] - m->in_mean[i]);
    }
  }
  m->res_sd = used > 1 ? sqrt(r_m2 / used) : 0.0;
  if (!(m->res_sd > 1e-12 * (1.0 + fabs(m->res_mean)))) m->res_sd = 0.0;
  for (int i = 0; i < m->nin; i++) vpq_model_finish_sd(m, i, used);
  return rows;
}

/* Runs the next slice of the training (at most MLP_SLICE minibatches of what is owed) on the
 * history s (gaps filled in z); returns 0, or -1 when the weights diverged (then they start
 * afresh). */
int vpq_model_mlp_train_slice(vpq_model *m, const vpq_series *s, const double *z) {
  int first = vpq_model_first_row(m, s->n), *at = malloc(sizeof(int) * ((size_t)s->n + 1)), rows = 0;
  int last = last_observed(s);
  if (!at) return -1;
  for (int t = first; t < s->n; t++)
    if (mlp_row_valid(m, s, t)) at[rows++] = t;
  int np = vpq_model_mlp_nparams(m), nf = m->cfg.nfeatures;
  int64_t batches = m->owed < MLP_SLICE ? m->owed : MLP_SLICE;
  double lr = m->cfg.learning_rate;
  /* residuals without spread leave the network nothing to learn: it adds their mean */
  for (int64_t b = 0; b < batches && rows > 0 && m->res_sd > 0; b++) {
    memset(m->grad, 0, sizeof(double) * (size_t)np);
    for (int r = 0; r < MLP_BATCH; r++) {
      int t = at[splitmix64(&m->rng) % (uint64_t)rows], k = origin_horizon(m, t, last);
      const double *xrow = row_of(s->x, t, nf);
      double target = (s->y[t] - vpq_model_predict_at(m->base, z, t, k, s->ts0, xrow) - m->res_mean) / m->res_sd;
      vpq_model_raw_inputs(m, z, t, k, s->ts0, xrow, m->raw);
      vpq_model_standardise_row(m, m->nin);
      mlp_backward(m, vpq_model_mlp_forward(m) - target);
    }
    m->adam_b1t *= 0.9;
    m->adam_b2t *= 0.999;
    double step = lr * sqrt(1 - m->adam_b2t) / (1 - m->adam_b1t), inv = 1.0 / MLP_BATCH;
    for (int i = 0; i < np; i++) {
      double g = m->grad[i] * inv;
      m->adam_m[i] = 0.9 * m->adam_m[i] + 0.1 * g;
      m->adam_v[i] = 0.999 * m->adam_v[i] + 0.001 * g * g;
      m->w[i] -= step * m->adam_m[i] / (sqrt(m->adam_v[i]) + 1e-8);
    }
  }
  free(at);
  m->owed -= batches;
  m->trained += batches;
  if (m->trained >= ((int64_t)m->cfg.epochs * rows + MLP_BATCH - 1) / MLP_BATCH) m->ready = 1;
  for (int i = 0; i < np; i++) {
    if (!isfinite(m->w[i])) {
      vpq_model_mlp_init(m);
      return -1;
    }
  }
  return 0;
}

/* Starts a training: refits the base model, sets the standardisation, owes `epochs` passes
 * over the training rows and runs the first slice. */
int vpq_model_mlp_fit(vpq_model *m, const vpq_series *s, const double *z) {
  if (vpq_model_linear_fit(m->base, s, z) != 0) return -1;
  int rows = mlp_standardise(m, s, z);
  if (rows < MLP_BATCH) return -1;
  m->owed = ((int64_t)m->cfg.epochs * rows + MLP_BATCH - 1) / MLP_BATCH;
  return vpq_model_mlp_train_slice(m, s, z);
}
