/* vpq_model_int.h — internal to the forecasting models (vpq_model.h): the model's struct, the
 * constants and calendar helpers their files share, and the functions one file of the module
 * calls in another:
 *
 *   vpq_model.c             entry points and dispatch, seasonal naive, checkpoints
 *   vpq_model_hw.c          Holt–Winters
 *   vpq_model_regression.c  inputs, robust variant, fit and prediction of linear and mlp
 *   vpq_model_linear.c      ridge regression per horizon
 *   vpq_model_mlp.c         the network on the linear model's residuals
 */
#ifndef VPQ_MODEL_INT_H
#define VPQ_MODEL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "vpq_model.h"

#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL

/* Holt–Winters: parameters alpha, beta, gamma, phi; a full search every HW_SEARCH_EVERY fits
 * (see vpq_model_hw_fit). */
#define HW_NPAR 4
#define HW_SEARCH_EVERY 30
/* Linear: the fits between refits of the robust variant or the plain one, whichever does not
 * forecast (see vpq_model_regression.c). */
#define OTHER_REFIT 7

struct vpq_model {
  vpq_model_config cfg;
  int fitted;          /* the last fit succeeded */
  double hw[HW_NPAR];  /* holt_winters: alpha, beta, gamma, phi (the warm start of the next fit) */
  int hw_age;          /* holt_winters: fits since the last full search */
  double *season_buf;  /* holt_winters: the seasonal components, by phase */
  int horizons;        /* linear, mlp: horizons fitted directly (one season, at least 1) */
  int week;            /* linear, mlp: the weekly lag in steps, 0 when it is no input */
  int ncommon;         /* linear, mlp: inputs that do not depend on the horizon */
  int nhorizon;        /* linear, mlp: inputs that depend on the forecast origin (not counting k) */
  int nin;             /* linear, mlp: inputs per row (linear: including the intercept) */
  double tf_center, tf_scale; /* linear: the robust transform of the values (scale 0: none) */
  vpq_model *alt;      /* linear: its robust variant (a linear model with a transform) */
  double score;        /* linear: decayed absolute errors of this variant's recent forecasts */
  int64_t scored_until; /* linear: the time of the last value scored */
  int other_age;       /* linear: fits since the variant that does not forecast was refitted */
  double *in_mean, *in_sd; /* linear, mlp: standardisation of each input */
  double y_mean, y_sd; /* linear, mlp: of the target over the training rows (sd 0: no spread) */
  double *w;           /* linear: horizons × nin weights; mlp: W1 (hidden × nin), b1, W2, b2 */
  double *adam_m, *adam_v, *grad; /* mlp: Adam's moments and the minibatch gradient */
  double adam_b1t, adam_b2t; /* mlp: Adam's decay factors raised to the steps taken */
  int64_t owed;        /* mlp: minibatches of the current training still to run */
  int64_t trained;     /* mlp: minibatches run since the weights were initialised */
  int ready;           /* mlp: trained enough: forecasts add the network (see vpq_model_mlp.c) */
  double *raw, *act;   /* linear, mlp: one row's raw inputs; mlp: the hidden activations */
  uint64_t rng;        /* mlp: splitmix64 state */
  vpq_model *base;     /* mlp: the linear model (same options) whose residuals the network learns */
  double res_mean, res_sd; /* mlp: of the residuals over the training rows and horizons (sd 0: no spread) */
};

/* ---- calendar and row helpers ---- */

/* a mod b and a div b rounded towards minus infinity (b > 0). */
static inline int64_t floor_mod(int64_t a, int64_t b) {
  int64_t r = a % b;
  return r < 0 ? r + b : r;
}

static inline int64_t floor_div(int64_t a, int64_t b) { return (a - floor_mod(a, b)) / b; }

/* The hour of day (UTC) of epoch ms ts. */
static inline int hour_of_day(int64_t ts) { return (int)floor_mod(floor_div(ts, HOUR_MS), 24); }

/* Monday = 0 (epoch day 0 was a Thursday). */
static inline int day_of_week(int64_t ts) { return (int)floor_mod(floor_div(ts, DAY_MS) + 3, 7); }

/* Hour-of-day features make sense only below a daily step, day-of-week below a weekly one. */
static inline int has_hour(const vpq_model_config *c) { return c->step_ms > 0 && c->step_ms < DAY_MS; }
static inline int has_dow(const vpq_model_config *c) { return c->step_ms > 0 && c->step_ms < 7 * DAY_MS; }

/* Row t of x, a row-major matrix of nf columns (NULL when x is NULL). */
static inline const double *row_of(const double *x, int t, int nf) { return x ? x + (size_t)t * (size_t)nf : NULL; }

/* ---- vpq_model.c ---- */

/* Fills out[0..h) with the history's last observed value (0 when none). */
void vpq_model_fill_last(const vpq_series *s, int h, double *out);

/* ---- vpq_model_hw.c ---- */

/* The box each Holt–Winters parameter is kept in: [lo[i], hi[i]]. */
extern const double vpq_model_hw_lo[HW_NPAR];
extern const double vpq_model_hw_hi[HW_NPAR];

/* Fits alpha, beta, gamma and phi to the history; -1 when it is shorter than two seasons. */
int vpq_model_hw_fit(vpq_model *m, const vpq_series *s);

/* Predicts h steps after the history with the fitted parameters into out. */
void vpq_model_hw_predict(vpq_model *m, const vpq_series *s, int h, double *out);

/* ---- vpq_model_regression.c ---- */

/* Sets a linear model's or an MLP's input layout (horizons, weekly lag, input counts). */
void vpq_model_set_inputs(vpq_model *m);

/* Writes the horizon inputs of an origin whose last value is z[j] into r. */
void vpq_model_horizon_inputs(const vpq_model *m, const double *z, int j, double *r);

/* Writes the seasonal and weekly lags and exogenous features of t into r; returns how many. */
int vpq_model_lag_inputs(const vpq_model *m, const double *z, int t, const double *xrow, double *r);

/* Writes the raw inputs of the row predicting index t of z at horizon k into r. */
void vpq_model_raw_inputs(const vpq_model *m, const double *z, int t, int k, int64_t ts0, const double *xrow,
                          double *r);

/* The first training row of a history of n values. */
int vpq_model_first_row(const vpq_model *m, int n);

/* Standardises the first n entries of m->raw in place. */
void vpq_model_standardise_row(const vpq_model *m, int n);

/* Turns in_sd[i], a sum of squared deviations over `rows` rows, into a standard deviation. */
void vpq_model_finish_sd(vpq_model *m, int i, int rows);

/* The model's prediction for index t of z (observed values, then filled ones) at horizon k. */
double vpq_model_predict_at(vpq_model *m, const double *z, int t, int k, int64_t ts0, const double *xrow);

/* Fits the linear model (both variants) or starts the MLP's training. */
int vpq_model_regression_fit(vpq_model *m, const vpq_series *s);

/* Runs the next slice of the MLP's training on the history. */
int vpq_model_regression_train(vpq_model *m, const vpq_series *s);

/* Predicts the h steps after the history's last observed value into out. */
void vpq_model_regression_predict(vpq_model *m, const vpq_series *s, const double *future_x, int h, double *out);

/* ---- vpq_model_linear.c ---- */

/* The standardised row in m->raw times the weights of horizon k. */
double vpq_model_linear_eval(const vpq_model *m, int k);

/* Fits the weights of every horizon by ridge regression on s (lags from z, gaps filled); -1
 * when too few rows or out of memory. */
int vpq_model_linear_fit(vpq_model *m, const vpq_series *s, const double *z);

/* ---- vpq_model_mlp.c ---- */

/* The number of the network's parameters. */
int vpq_model_mlp_nparams(const vpq_model *m);

/* Initialises the network's weights and Adam's state. */
void vpq_model_mlp_init(vpq_model *m);

/* The network's output (standardised) for the standardised inputs in m->raw. */
double vpq_model_mlp_forward(const vpq_model *m);

/* Runs the next slice of the training; -1 when the weights diverged (they start afresh). */
int vpq_model_mlp_train_slice(vpq_model *m, const vpq_series *s, const double *z);

/* Starts a training: refits the base model and runs the first slice. */
int vpq_model_mlp_fit(vpq_model *m, const vpq_series *s, const double *z);

#endif
