/* vpq_model.h — forecasting models for the FORECAST operator: fit on a regular history,
 * predict the steps that follow it.
 *
 * A series is regular: value i is at ts0 + i·step_ms. Missing values are NAN; every model
 * fits around them (they are left out of losses; Holt–Winters fills them with its own
 * prediction where its recursion needs a value, linear and mlp read their lags from the
 * history with its gaps interpolated and forecast from the last observed value on). Models
 * keep their fitted parameters between fits, so a refit starts from the previous solution
 * (warm start), and the MLP's training is spread over calls, so that no call takes long.
 *
 *   history  y[0] .. y[n-1] at ts0 .. ts0 + (n-1)·step     (x: n × nfeatures exogenous)
 *   forecast out[0] .. out[h-1] at ts0 + n·step ..          (future_x: h × nfeatures)
 *
 * Models and their defaults (each documented in docs/language.md):
 *  - seasonal_naive: out[k] = the last observed value one season before (season = 1 DAY).
 *  - holt_winters: additive level, damped trend and season; alpha, beta, gamma, phi fitted with
 *    Nelder–Mead by minimising the squared error of the forecasts 1 .. season steps ahead from
 *    the origins of the history at the phase forecast from (the one-step error when the
 *    history is shorter than four seasons or there is no season) (season = 1 DAY); a full
 *    search every 30 fits, a short refinement of the last parameters in between.
 *  - linear: direct multi-horizon ridge regression (ridge = 1.0), one weight vector per horizon
 *    1 .. season, on calendar features (hour of day, day of week, one-hot), the value one season
 *    and one week before the target, the exogenous features (standardised), the last value
 *    before the forecast origin and the mean of the season up to it; the rows whose origin has
 *    the phase of the forecast's weigh as much as all others; further ahead it lags on its own
 *    predictions. A robust variant fits asinh-transformed values beside it, and whichever
 *    forecast the last values better forecasts.
 *  - mlp: the linear model above (without the robust variant) plus one hidden layer (hidden = 8,
 *    tanh) trained with Adam (epochs = 30, learning_rate = 0.003) on its residuals, over sin/cos
 *    of the time of day and week, the same lags, the horizon and the exogenous features, in
 *    slices of a few minibatches per fit or vpq_model_train call; deterministic for a seed.
 */
#ifndef VPQ_MODEL_H
#define VPQ_MODEL_H

#include <stdint.h>

#include "vpq_ckpt.h"

typedef enum vpq_model_kind {
  VPQ_MODEL_SEASONAL_NAIVE,
  VPQ_MODEL_HOLT_WINTERS,
  VPQ_MODEL_LINEAR,
  VPQ_MODEL_MLP,
} vpq_model_kind;

typedef struct vpq_model_config {
  vpq_model_kind kind;
  int64_t step_ms;   /* the series' step (calendar features are derived from timestamps) */
  int season;        /* season length in steps; 0: the model has no season */
  int nfeatures;     /* exogenous features per step (linear, mlp) */
  double ridge;      /* linear: L2 penalty on standardised features */
  int hidden;        /* mlp: hidden units */
  int epochs;        /* mlp: passes over the history per training */
  double learning_rate; /* mlp: Adam's step size */
  uint64_t seed;     /* mlp: weights and sample order */
  uint64_t spread;   /* differs between the models of one operator (its keys): periodic work
                      * (the linear model's refits of its other variant) is spread by it */
} vpq_model_config;

/* The defaults above for `kind`, with step_ms and season left for the caller to set. */
vpq_model_config vpq_model_defaults(vpq_model_kind kind);

typedef struct vpq_series {
  int64_t ts0;      /* time of y[0], epoch ms */
  const double *y;  /* n values; NAN = missing */
  const double *x;  /* n × nfeatures, row-major; NULL when nfeatures = 0 */
  int n;
} vpq_series;

typedef struct vpq_model vpq_model;

/* Creates a model; returns NULL when out of memory. The caller frees it with vpq_model_free. */
vpq_model *vpq_model_new(const vpq_model_config *config);
void vpq_model_free(vpq_model *model);

/* Fits the model to `history` (warm-started from the previous fit). Returns 0, or -1 when the
 * history is too short to fit (then vpq_model_predict falls back to the last value). */
int vpq_model_fit(vpq_model *model, const vpq_series *history);

/* True while the model owes part of a training (the MLP trains in slices, see vpq_model_mlp.c):
 * the caller runs vpq_model_train at each later forecast until it is false. */
int vpq_model_training(const vpq_model *model);

/* Runs the next slice of an unfinished training on `history` (the series as it is now); 0 when
 * there is none or it went well, -1 when the weights diverged (the network then starts
 * afresh and forecasts use the linear base model alone). */
int vpq_model_train(vpq_model *model, const vpq_series *history);

/* Predicts the h steps after `history` (the series the model was last fitted on, possibly with
 * newer values appended) into out[0..h-1]. future_x holds the exogenous features of those
 * steps (h × nfeatures, row-major; NULL when none). Never fails: without enough history it
 * predicts the last observed value (or 0 when none). */
void vpq_model_predict(vpq_model *model, const vpq_series *history, const double *future_x, int h, double *out);

/* Writes what the model carries from one fit to the next (the fitted parameters, the
 * standardisation, the MLP's random state; not the scratch of a fit) into a checkpoint. */
void vpq_model_save(const vpq_model *model, vpq_ckpt_out *out);

/* Restores what vpq_model_save wrote into a model made with the same config; malformed or
 * mismatched state fails `in` and leaves the model freeable. */
void vpq_model_load(vpq_model *model, vpq_ckpt_in *in);

/* The k-th smallest of v[0..n) (0 ≤ k < n), reordering v so that v[0..k) ≤ v[k] ≤ v[k+1..n)
 * (Hoare's selection); the models' medians and the forecast intervals' quantiles use it. */
double vpq_model_select_kth(double *v, int n, int k);

#endif
