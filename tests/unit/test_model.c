/* test_model.c — unit tests of the forecasting models (vpq_model.h): each model against series
 * whose future is known exactly, against each other on noisy and spiky data, on short or gappy
 * histories, and the MLP's training in slices with a checkpoint halfway. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "vpq_model.h"

#define HOUR_MS 3600000LL
#define DAY 24
#define TWO_PI 6.28318530717958647692
/* 2023-11-14 22:00 UTC, a Tuesday. */
#define TS0 1699999200000LL

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

/* A standard normal draw (Box–Muller). */
static double rng_normal(uint64_t *s) {
  double u = rng_uniform(s), v = rng_uniform(s);
  return sqrt(-2.0 * log(1.0 - u)) * cos(TWO_PI * v);
}

/* An irregular daily profile. */
static double profile(int phase) { return 10.0 * sin(TWO_PI * phase / DAY) + (phase * 7 % DAY) * 0.5; }

static vpq_model *make(vpq_model_kind kind, int season, int nfeatures) {
  vpq_model_config c = vpq_model_defaults(kind);
  c.step_ms = HOUR_MS;
  c.season = season;
  c.nfeatures = nfeatures;
  vpq_model *m = vpq_model_new(&c);
  assert_non_null(m);
  return m;
}

static void assert_close(double got, double want, double rel) {
  if (!(fabs(got - want) <= rel * fmax(1.0, fabs(want)))) fail_msg("got %.12g, want %.12g", got, want);
}

static void defaults_are_documented_values(void **state) {
  (void)state;
  vpq_model_config c = vpq_model_defaults(VPQ_MODEL_MLP);
  assert_int_equal(c.kind, VPQ_MODEL_MLP);
  assert_true(c.ridge == 1.0);
  assert_int_equal(c.hidden, 8);
  assert_int_equal(c.epochs, 30);
  assert_true(c.learning_rate == 0.003);
  assert_int_equal(c.seed, 42);
  assert_int_equal(c.season, 0);
  assert_int_equal(c.step_ms, 0);
  assert_int_equal(c.nfeatures, 0);
}

static void seasonal_naive_repeats_the_last_season(void **state) {
  (void)state;
  enum { N = 70, H = 60 };
  double y[N], out[H];
  for (int i = 0; i < N; i++) y[i] = profile(i % DAY);
  vpq_series s = {TS0, y, NULL, N};
  vpq_model *m = make(VPQ_MODEL_SEASONAL_NAIVE, DAY, 0);
  assert_int_equal(vpq_model_fit(m, &s), 0);
  vpq_model_predict(m, &s, NULL, H, out);
  for (int k = 0; k < H; k++) assert_true(out[k] == profile((N + k) % DAY));
  vpq_model_free(m);
}

static void seasonal_naive_skips_a_missing_value(void **state) {
  (void)state;
  enum { N = 72, H = 48 };
  double y[N], out[H];
  /* Each day is 100 above the one before, so the day a value comes from shows. */
  for (int i = 0; i < N; i++) y[i] = profile(i % DAY) + 100.0 * (i / DAY);
  y[N - DAY + 5] = NAN;
  vpq_series s = {TS0, y, NULL, N};
  vpq_model *m = make(VPQ_MODEL_SEASONAL_NAIVE, DAY, 0);
  assert_int_equal(vpq_model_fit(m, &s), 0);
  vpq_model_predict(m, &s, NULL, H, out);
  for (int k = 0; k < H; k++) {
    int phase = k % DAY;
    double want = phase == 5 ? profile(5) + 100.0 : profile(phase) + 200.0;
    assert_true(out[k] == want);
  }
  vpq_model_free(m);

  /* Without a season: the last observed value. */
  y[N - 1] = NAN;
  m = make(VPQ_MODEL_SEASONAL_NAIVE, 0, 0);
  vpq_model_predict(m, &s, NULL, 3, out);
  for (int k = 0; k < 3; k++) assert_true(out[k] == y[N - 2]);
  vpq_model_free(m);
}

/* Fits Holt–Winters to y and checks its forecast of h steps against want(i). */
static void check_holt_winters_exact(int season, const double *y, int n, double (*want)(int)) {
  enum { H = 72 };
  double out[H];
  vpq_series s = {TS0, y, NULL, n};
  vpq_model *m = make(VPQ_MODEL_HOLT_WINTERS, season, 0);
  assert_int_equal(vpq_model_fit(m, &s), 0);
  vpq_model_predict(m, &s, NULL, H, out);
  for (int k = 0; k < H; k++) assert_close(out[k], want(n + k), 1e-6);
  vpq_model_free(m);
}

static double seasonal(int i) { return 100.0 + profile(i % DAY); }
static double trend(int i) { return 5.0 + 0.7 * i; }
static double trend_and_season(int i) { return 5.0 + 0.7 * i + profile(i % DAY); }

static void holt_winters_is_exact_on_exact_series(void **state) {
  (void)state;
  enum { N = 5 * DAY + 7 };
  double y[N];
  for (int i = 0; i < N; i++) y[i] = seasonal(i);
  check_holt_winters_exact(DAY, y, N, seasonal);
  for (int i = 0; i < N; i++) y[i] = trend(i);
  check_holt_winters_exact(DAY, y, N, trend);
  check_holt_winters_exact(0, y, N, trend);
  for (int i = 0; i < N; i++) y[i] = trend_and_season(i);
  check_holt_winters_exact(DAY, y, N, trend_and_season);
}

static void holt_winters_fills_missing_values(void **state) {
  (void)state;
  enum { N = 6 * DAY };
  double y[N];
  for (int i = 0; i < N; i++) y[i] = trend_and_season(i);
  /* Gaps after the two seasons that initialise the model, one of them the last value. */
  y[2 * DAY + 3] = y[3 * DAY] = y[3 * DAY + 1] = y[N - 1] = NAN;
  check_holt_winters_exact(DAY, y, N, trend_and_season);
}

/* Noisy trend + daily season, forecast a day ahead from several origins: Holt–Winters follows
 * the trend, the seasonal naive forecast lags a day behind it. */
static void holt_winters_beats_seasonal_naive_on_noisy_data(void **state) {
  (void)state;
  enum { N = 20 * DAY, HIST = 10 * DAY, H = DAY };
  double y[N], out[H], mae_hw = 0.0, mae_naive = 0.0;
  uint64_t rng = 7;
  for (int i = 0; i < N; i++) y[i] = 200.0 + 0.5 * i + 20.0 * sin(TWO_PI * i / DAY) + 2.0 * rng_normal(&rng);
  vpq_model *hw = make(VPQ_MODEL_HOLT_WINTERS, DAY, 0), *naive = make(VPQ_MODEL_SEASONAL_NAIVE, DAY, 0);
  for (int origin = HIST; origin + H <= N; origin += DAY) {
    vpq_series s = {TS0, y + origin - HIST, NULL, HIST};
    assert_int_equal(vpq_model_fit(hw, &s), 0);
    vpq_model_predict(hw, &s, NULL, H, out);
    for (int k = 0; k < H; k++) mae_hw += fabs(out[k] - y[origin + k]);
    vpq_model_predict(naive, &s, NULL, H, out);
    for (int k = 0; k < H; k++) mae_naive += fabs(out[k] - y[origin + k]);
  }
  /* The naive forecast is off by the day's trend, 0.5 · 24 = 12, on average. */
  assert_true(mae_hw < 0.5 * mae_naive);
  vpq_model_free(hw);
  vpq_model_free(naive);
}

static void linear_recovers_a_relation_with_features(void **state) {
  (void)state;
  enum { N = 400, H = 24 };
  double y[N], x[2 * N], fx[2 * H], out[H];
  uint64_t rng = 11;
  for (int i = 0; i < N; i++) {
    x[2 * i] = 10.0 * rng_uniform(&rng);
    x[2 * i + 1] = 100.0 + 5.0 * rng_normal(&rng);
    y[i] = 3.0 + 2.0 * x[2 * i] - x[2 * i + 1];
  }
  for (int k = 0; k < 2 * H; k++) fx[k] = k % 2 ? 90.0 + k : 0.3 * k;
  /* Missing targets and features: those rows are left out. */
  y[17] = NAN;
  x[2 * 40 + 1] = NAN;
  y[N - 1] = NAN;
  vpq_model_config c = vpq_model_defaults(VPQ_MODEL_LINEAR);
  c.step_ms = HOUR_MS;
  c.season = DAY;
  c.nfeatures = 2;
  c.ridge = 1e-9;
  vpq_model *m = vpq_model_new(&c);
  assert_non_null(m);
  vpq_series s = {TS0, y, x, N};
  assert_int_equal(vpq_model_fit(m, &s), 0);
  vpq_model_predict(m, &s, fx, H, out);
  for (int k = 0; k < H; k++) assert_close(out[k], 3.0 + 2.0 * fx[2 * k] - fx[2 * k + 1], 1e-3);
  vpq_model_free(m);
}

static double hour_effect(int hour) { return 3.0 * cos(TWO_PI * hour / 24.0) + (hour == 8 ? 4.0 : 0.0); }
static double weekday_effect(int monday0) { return monday0 >= 5 ? -6.0 : (double)monday0; }

/* The hour of day and day of week of index i, computed from the timestamp. */
static double calendar_value(int i) {
  int64_t ts = TS0 + (int64_t)i * HOUR_MS;
  int hour = (int)((ts / HOUR_MS) % 24);
  int day = (int)((ts / (24 * HOUR_MS) + 3) % 7);
  return 50.0 + hour_effect(hour) + weekday_effect(day);
}

static void linear_learns_calendar_effects(void **state) {
  (void)state;
  enum { N = 21 * DAY, H = 3 * DAY };
  double y[N], out[H];
  for (int i = 0; i < N; i++) y[i] = calendar_value(i);
  vpq_model_config c = vpq_model_defaults(VPQ_MODEL_LINEAR);
  c.step_ms = HOUR_MS;
  c.ridge = 1e-9;
  vpq_model *m = vpq_model_new(&c);
  assert_non_null(m);
  vpq_series s = {TS0, y, NULL, N};
  assert_int_equal(vpq_model_fit(m, &s), 0);
  vpq_model_predict(m, &s, NULL, H, out);
  for (int k = 0; k < H; k++) assert_close(out[k], calendar_value(N + k), 1e-6);
  vpq_model_free(m);
}

/* A series that repeats every 5 steps is its own lag: beyond one season ahead the model lags on
 * its own predictions. */
static void linear_follows_its_seasonal_lag(void **state) {
  (void)state;
  enum { N = 10 * DAY, H = 12, SEASON = 5 };
  const double cycle[SEASON] = {4.0, -1.0, 7.5, 2.0, 0.0};
  double y[N], out[H];
  for (int i = 0; i < N; i++) y[i] = cycle[i % SEASON];
  vpq_model_config c = vpq_model_defaults(VPQ_MODEL_LINEAR);
  c.step_ms = HOUR_MS;
  c.season = SEASON;
  c.ridge = 1e-9;
  vpq_model *m = vpq_model_new(&c);
  assert_non_null(m);
  vpq_series s = {TS0, y, NULL, N};
  assert_int_equal(vpq_model_fit(m, &s), 0);
  vpq_model_predict(m, &s, NULL, H, out);
  for (int k = 0; k < H; k++) assert_close(out[k], cycle[(N + k) % SEASON], 1e-6);
  vpq_model_free(m);
}

/* A daily profile on a persistent random level (AR(1), 0.98 per hour): the direct model
 * forecasts the first hours from the last value, so its errors there are far below those of the
 * seasonal naive forecast, which misses how far the level moved in a day. */
static void linear_forecasts_from_the_last_value(void **state) {
  (void)state;
  enum { N = 40 * DAY, HIST = 20 * DAY, H = DAY, NEAR = 3 };
  double y[N], out[H], level = 0.0, mae_linear = 0.0, mae_naive = 0.0;
  uint64_t rng = 13;
  for (int i = 0; i < N; i++) {
    level = 0.98 * level + 2.0 * rng_normal(&rng);
    y[i] = 100.0 + profile(i % DAY) + level;
  }
  vpq_model *linear = make(VPQ_MODEL_LINEAR, DAY, 0), *naive = make(VPQ_MODEL_SEASONAL_NAIVE, DAY, 0);
  for (int origin = HIST; origin + H <= N; origin += DAY) {
    vpq_series s = {TS0, y + origin - HIST, NULL, HIST};
    assert_int_equal(vpq_model_fit(linear, &s), 0);
    vpq_model_predict(linear, &s, NULL, H, out);
    for (int k = 0; k < NEAR; k++) mae_linear += fabs(out[k] - y[origin + k]);
    vpq_model_predict(naive, &s, NULL, H, out);
    for (int k = 0; k < NEAR; k++) mae_naive += fabs(out[k] - y[origin + k]);
  }
  assert_true(mae_linear < 0.5 * mae_naive);
  vpq_model_free(linear);
  vpq_model_free(naive);
}

/* Runs an MLP's training slices until none is owed; returns how many it took. */
static int train_to_the_end(vpq_model *m, const vpq_series *s) {
  int slices = 0;
  while (vpq_model_training(m)) {
    assert_int_equal(vpq_model_train(m, s), 0);
    slices++;
  }
  return slices;
}

static void mlp_is_deterministic(void **state) {
  (void)state;
  enum { N = 14 * DAY, H = DAY };
  double y[N], a[H], b[H];
  uint64_t rng = 3;
  for (int i = 0; i < N; i++) y[i] = 10.0 * sin(TWO_PI * i / DAY) + rng_normal(&rng);
  y[50] = NAN;
  vpq_series s = {TS0, y, NULL, N};
  vpq_model *m1 = make(VPQ_MODEL_MLP, DAY, 0), *m2 = make(VPQ_MODEL_MLP, DAY, 0);
  for (int round = 0; round < 2; round++) {
    assert_int_equal(vpq_model_fit(m1, &s), 0);
    assert_int_equal(vpq_model_fit(m2, &s), 0);
    train_to_the_end(m1, &s);
    train_to_the_end(m2, &s);
    vpq_model_predict(m1, &s, NULL, H, a);
    vpq_model_predict(m2, &s, NULL, H, b);
    assert_memory_equal(a, b, sizeof a);
    for (int k = 0; k < H; k++) assert_true(isfinite(a[k]));
  }
  vpq_model_config c = vpq_model_defaults(VPQ_MODEL_MLP);
  c.step_ms = HOUR_MS;
  c.season = DAY;
  c.seed = 43;
  vpq_model *m3 = vpq_model_new(&c);
  assert_non_null(m3);
  assert_int_equal(vpq_model_fit(m3, &s), 0);
  train_to_the_end(m3, &s);
  vpq_model_predict(m1, &s, NULL, H, a);
  vpq_model_predict(m3, &s, NULL, H, b);
  assert_memory_not_equal(a, b, sizeof a);
  vpq_model_free(m1);
  vpq_model_free(m2);
  vpq_model_free(m3);
}

static void mlp_forecasts_a_sine_wave(void **state) {
  (void)state;
  enum { N = 30 * DAY, H = DAY };
  const double amplitude = 10.0;
  double y[N], out[H], mae = 0.0;
  for (int i = 0; i < N; i++) y[i] = 50.0 + amplitude * sin(TWO_PI * i / DAY);
  vpq_series s = {TS0, y, NULL, N};
  vpq_model *m = make(VPQ_MODEL_MLP, DAY, 0);
  assert_int_equal(vpq_model_fit(m, &s), 0);
  vpq_model_predict(m, &s, NULL, H, out);
  for (int k = 0; k < H; k++) mae += fabs(out[k] - (50.0 + amplitude * sin(TWO_PI * (N + k) / DAY))) / H;
  assert_true(mae < 0.1 * amplitude);
  vpq_model_free(m);
}

/* Holt–Winters refits between its full searches from its last parameters: refitted daily on a
 * growing exact series, it stays exact. */
static void holt_winters_stays_exact_between_searches(void **state) {
  (void)state;
  enum { N = 16 * DAY, H = DAY };
  double y[N], out[H];
  for (int i = 0; i < N; i++) y[i] = trend_and_season(i);
  vpq_model *m = make(VPQ_MODEL_HOLT_WINTERS, DAY, 0);
  for (int n = 5 * DAY; n + H <= N; n += DAY) {
    vpq_series s = {TS0, y, NULL, n};
    assert_int_equal(vpq_model_fit(m, &s), 0);
    vpq_model_predict(m, &s, NULL, H, out);
    for (int k = 0; k < H; k++) assert_close(out[k], trend_and_season(n + k), 1e-6);
  }
  vpq_model_free(m);
}

/* A daily profile with noise and, at 3% of the hours, spikes 30 times the noise (prices at
 * scarcity). Refitted daily, the linear model comes to forecast with its robust variant: its
 * forecasts stay near the profile (MAE 3.2 here), where its least-squares variant is pulled up
 * by the spikes (MAE 8.1; their mean alone is 0.03 · 150 = 4.5). */
static void linear_forecasts_spiky_series_robustly(void **state) {
  (void)state;
  enum { N = 60 * DAY, HIST = 28 * DAY, H = DAY };
  double y[N], out[H], mae = 0.0;
  int scored = 0;
  uint64_t rng = 17;
  for (int i = 0; i < N; i++) {
    y[i] = 50.0 + profile(i % DAY) + 5.0 * rng_normal(&rng);
    if (rng_uniform(&rng) < 0.03) y[i] += 150.0;
  }
  vpq_model *m = make(VPQ_MODEL_LINEAR, DAY, 0);
  for (int origin = HIST; origin + H <= N; origin += DAY) {
    vpq_series s = {TS0, y + origin - HIST, NULL, HIST};
    assert_int_equal(vpq_model_fit(m, &s), 0);
    vpq_model_predict(m, &s, NULL, H, out);
    if (origin < N - 14 * DAY) continue; /* the last two weeks, once the scores have settled */
    for (int k = 0; k < H; k++) mae += fabs(out[k] - (50.0 + profile((origin + k) % DAY)));
    scored += H;
  }
  mae /= scored;
  assert_true(mae < 4.5);
  vpq_model_free(m);
}

/* Before its first training is complete the MLP forecasts with its linear base, which is the
 * linear model of the same options; the training then runs in slices until none is owed, and
 * the network changes the forecast. */
static void mlp_trains_in_slices(void **state) {
  (void)state;
  enum { N = 21 * DAY, H = DAY };
  double y[N], mlp[H], linear[H];
  uint64_t rng = 19;
  for (int i = 0; i < N; i++)
    y[i] = 10.0 * sin(TWO_PI * i / DAY) + 3.0 * fabs(sin(TWO_PI * i / (7 * DAY))) + rng_normal(&rng);
  vpq_series s = {TS0, y, NULL, N};
  vpq_model *m = make(VPQ_MODEL_MLP, DAY, 0), *l = make(VPQ_MODEL_LINEAR, DAY, 0);
  assert_int_equal(vpq_model_fit(m, &s), 0);
  assert_int_equal(vpq_model_fit(l, &s), 0);
  assert_true(vpq_model_training(m));
  assert_false(vpq_model_training(l));
  vpq_model_predict(m, &s, NULL, H, mlp);
  vpq_model_predict(l, &s, NULL, H, linear);
  assert_memory_equal(mlp, linear, sizeof mlp);
  assert_true(train_to_the_end(m, &s) > 1);
  assert_false(vpq_model_training(m));
  vpq_model_predict(m, &s, NULL, H, mlp);
  assert_memory_not_equal(mlp, linear, sizeof mlp);
  vpq_model_free(m);
  vpq_model_free(l);
}

/* A model saved halfway through a training and restored into a new one goes on exactly as the
 * one that never stopped. */
static void mlp_resumes_its_training_from_a_checkpoint(void **state) {
  (void)state;
  enum { N = 21 * DAY, H = DAY };
  double y[N], a[H], b[H];
  uint64_t rng = 23;
  for (int i = 0; i < N; i++) y[i] = 20.0 + 10.0 * sin(TWO_PI * i / DAY) + rng_normal(&rng);
  vpq_series s = {TS0, y, NULL, N};
  vpq_model *whole = make(VPQ_MODEL_MLP, DAY, 0), *stopped = make(VPQ_MODEL_MLP, DAY, 0);
  assert_int_equal(vpq_model_fit(whole, &s), 0);
  assert_int_equal(vpq_model_fit(stopped, &s), 0);
  assert_int_equal(vpq_model_train(stopped, &s), 0);
  vpq_ckpt_out out = {0};
  vpq_model_save(stopped, &out);
  vpq_model_free(stopped);
  vpq_model *restored = make(VPQ_MODEL_MLP, DAY, 0);
  vpq_ckpt_in in = vpq_ckpt_in_init(out.buf.data, out.buf.len);
  vpq_model_load(restored, &in);
  assert_null(in.error);
  assert_true(in.p == in.end);
  vpq_buf_free(&out.buf);
  assert_int_equal(vpq_model_train(whole, &s), 0);
  train_to_the_end(whole, &s);
  train_to_the_end(restored, &s);
  vpq_model_predict(whole, &s, NULL, H, a);
  vpq_model_predict(restored, &s, NULL, H, b);
  assert_memory_equal(a, b, sizeof a);
  vpq_model_free(whole);
  vpq_model_free(restored);
}

/* A Holt-Winters model saved between its parameter searches (its age in the state is the last
 * value written, with no bytes after it) restores whole and forecasts as the one saved. */
static void holt_winters_restores_from_its_state_alone(void **state) {
  (void)state;
  enum { N = 12 * DAY, H = DAY };
  double y[N], a[H], b[H];
  uint64_t rng = 29;
  for (int i = 0; i < N; i++) y[i] = trend_and_season(i) + rng_normal(&rng);
  vpq_model *m = make(VPQ_MODEL_HOLT_WINTERS, DAY, 0);
  for (int n = 8 * DAY; n <= N; n += DAY) {
    vpq_series s = {TS0, y, NULL, n};
    assert_int_equal(vpq_model_fit(m, &s), 0);
  }
  vpq_ckpt_out out = {0};
  vpq_model_save(m, &out);
  vpq_model *restored = make(VPQ_MODEL_HOLT_WINTERS, DAY, 0);
  vpq_ckpt_in in = vpq_ckpt_in_init(out.buf.data, out.buf.len);
  vpq_model_load(restored, &in);
  assert_null(in.error);
  assert_true(in.p == in.end);
  vpq_buf_free(&out.buf);
  vpq_series s = {TS0, y, NULL, N};
  vpq_model_predict(m, &s, NULL, H, a);
  vpq_model_predict(restored, &s, NULL, H, b);
  assert_memory_equal(a, b, sizeof a);
  vpq_model_free(m);
  vpq_model_free(restored);
}

/* Each model on a history too short to fit: -1, then the last observed value. */
static void short_history_falls_back_to_the_last_value(void **state) {
  (void)state;
  const struct {
    vpq_model_kind kind;
    int season, n; /* n: the shortest history that fits */
  } cases[] = {
      {VPQ_MODEL_HOLT_WINTERS, DAY, 2 * DAY},
      {VPQ_MODEL_HOLT_WINTERS, 0, 2},
      /* 23 hours + 6 days + 1 + 2 lags (season, week) + 5 origin inputs (its value, its season's
       * mean, its value a season before, the value before it and that one's a season before) =
       * 37 inputs, so 38 rows after the first season. */
      {VPQ_MODEL_LINEAR, DAY, DAY + 38},
      /* The MLP learns the residuals of the linear model. */
      {VPQ_MODEL_MLP, DAY, DAY + 38},
  };
  enum { N = 100, H = 5 };
  double y[N], out[H];
  for (int i = 0; i < N; i++) y[i] = 1.0 + i;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    vpq_model *m = make(cases[c].kind, cases[c].season, 0);
    int n = cases[c].n;
    vpq_series s = {TS0, y, NULL, n - 1};
    assert_int_equal(vpq_model_fit(m, &s), -1);
    y[n - 2] = NAN;
    double want = n >= 3 ? y[n - 3] : 0.0;
    vpq_model_predict(m, &s, NULL, H, out);
    for (int k = 0; k < H; k++) assert_true(out[k] == want);
    y[n - 2] = n - 1.0;
    s.n = n;
    assert_int_equal(vpq_model_fit(m, &s), 0);
    vpq_model_free(m);
  }
  /* No value at all: 0, and no model fits. */
  vpq_model_kind kinds[] = {VPQ_MODEL_SEASONAL_NAIVE, VPQ_MODEL_HOLT_WINTERS, VPQ_MODEL_LINEAR, VPQ_MODEL_MLP};
  for (int i = 0; i < 3; i++) y[i] = NAN;
  for (size_t c = 0; c < sizeof kinds / sizeof kinds[0]; c++) {
    vpq_model *m = make(kinds[c], DAY, 0);
    vpq_series empty = {TS0, y, NULL, 3};
    assert_int_equal(vpq_model_fit(m, &empty), -1);
    vpq_model_predict(m, &empty, NULL, H, out);
    for (int k = 0; k < H; k++) assert_true(out[k] == 0.0);
    empty.n = 0;
    vpq_model_predict(m, &empty, NULL, H, out);
    for (int k = 0; k < H; k++) assert_true(out[k] == 0.0);
    vpq_model_free(m);
  }
}

/* Gappy targets and features: every model fits and forecasts finite values near the series. */
static void missing_values_give_finite_forecasts(void **state) {
  (void)state;
  enum { N = 20 * DAY, H = 2 * DAY };
  double y[N], x[N], fx[H], out[H];
  uint64_t rng = 5;
  for (int i = 0; i < N; i++) {
    x[i] = rng_uniform(&rng);
    y[i] = 100.0 + 10.0 * sin(TWO_PI * i / DAY) + x[i] + rng_normal(&rng);
    if (rng_uniform(&rng) < 0.1) y[i] = NAN;
    if (rng_uniform(&rng) < 0.1) x[i] = NAN;
  }
  for (int i = N - 30; i < N; i++) y[i] = NAN;
  for (int k = 0; k < H; k++) fx[k] = k % 3 ? 0.5 : NAN;
  vpq_model_kind kinds[] = {VPQ_MODEL_SEASONAL_NAIVE, VPQ_MODEL_HOLT_WINTERS, VPQ_MODEL_LINEAR, VPQ_MODEL_MLP};
  for (size_t c = 0; c < sizeof kinds / sizeof kinds[0]; c++) {
    vpq_model *m = make(kinds[c], DAY, 1);
    vpq_series s = {TS0, y, x, N};
    assert_int_equal(vpq_model_fit(m, &s), 0);
    vpq_model_predict(m, &s, fx, H, out);
    for (int k = 0; k < H; k++) {
      assert_true(isfinite(out[k]));
      assert_true(fabs(out[k] - 100.0) < 40.0);
    }
    vpq_model_free(m);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_are_documented_values),
      cmocka_unit_test(seasonal_naive_repeats_the_last_season),
      cmocka_unit_test(seasonal_naive_skips_a_missing_value),
      cmocka_unit_test(holt_winters_is_exact_on_exact_series),
      cmocka_unit_test(holt_winters_fills_missing_values),
      cmocka_unit_test(holt_winters_beats_seasonal_naive_on_noisy_data),
      cmocka_unit_test(linear_recovers_a_relation_with_features),
      cmocka_unit_test(linear_learns_calendar_effects),
      cmocka_unit_test(linear_follows_its_seasonal_lag),
      cmocka_unit_test(linear_forecasts_from_the_last_value),
      cmocka_unit_test(mlp_is_deterministic),
      cmocka_unit_test(mlp_forecasts_a_sine_wave),
      cmocka_unit_test(holt_winters_stays_exact_between_searches),
      cmocka_unit_test(linear_forecasts_spiky_series_robustly),
      cmocka_unit_test(mlp_trains_in_slices),
      cmocka_unit_test(mlp_resumes_its_training_from_a_checkpoint),
      cmocka_unit_test(holt_winters_restores_from_its_state_alone),
      cmocka_unit_test(short_history_falls_back_to_the_last_value),
      cmocka_unit_test(missing_values_give_finite_forecasts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
