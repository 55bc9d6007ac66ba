/* test_sim.c — unit tests of the battery-fleet simulator's model (vpq_sim.h): batteries obey
 * setpoints within their limits, energy is conserved with efficiency, setpoints expire, site
 * loads follow the real series deterministically, and rooftop PV is taken off the meters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "sim/vpq_sim.h"

/* Fails unless |got − want| <= tolerance. */
static void assert_double_equal(double got, double want, double tolerance) {
  if (!(fabs(got - want) <= tolerance)) fail_msg("got %.12g, want %.12g (±%g)", got, want, tolerance);
}

static vpq_sim *make(int devices, int sites) {
  vpq_sim_config config = vpq_sim_defaults();
  config.devices = devices;
  config.sites = sites;
  char err[256];
  vpq_sim *sim = vpq_sim_new(&config, err, sizeof err);
  assert_non_null(sim);
  return sim;
}

/* A simulator of 4 sites with rooftop PV of `pv_ratio` × each site's peak load. */
static vpq_sim *make_pv(double pv_ratio) {
  vpq_sim_config config = vpq_sim_defaults();
  config.pv_ratio = pv_ratio;
  char err[256];
  vpq_sim *sim = vpq_sim_new(&config, err, sizeof err);
  assert_non_null(sim);
  return sim;
}

static void setpoints_are_clamped_to_the_power_limit(void **state) {
  (void)state;
  vpq_sim *sim = make(3, 1);
  vpq_sim_battery *b = vpq_sim_battery_at(sim, 0);
  assert_true(vpq_sim_set_setpoint(sim, "bat-0000", 10 * b->max_kw, 0));
  vpq_sim_step(sim, 0, 1.0 / 60);
  assert_double_equal(b->power_kw, b->max_kw, 1e-12);
  assert_true(vpq_sim_set_setpoint(sim, "bat-0000", -10 * b->max_kw, 0));
  vpq_sim_step(sim, 60000, 1.0 / 60);
  assert_double_equal(b->power_kw, -b->max_kw, 1e-12);
  assert_false(vpq_sim_set_setpoint(sim, "bat-9999", 1, 0));
  assert_false(vpq_sim_set_setpoint(sim, "pump-1", 1, 0));
  vpq_sim_free(sim);
}

static void energy_is_conserved_with_efficiency(void **state) {
  (void)state;
  vpq_sim *sim = make(2, 1);
  vpq_sim_battery *b = vpq_sim_battery_at(sim, 1);
  double hours = 1.0 / 60, e0 = b->energy_kwh;
  double discharge = 0.5 * b->max_kw;
  vpq_sim_set_setpoint(sim, "bat-0001", discharge, 0);
  for (int i = 0; i < 10; i++) vpq_sim_step(sim, i * 60000, hours);
  /* Discharging p for t draws p·t/η from storage. */
  double e1 = e0 - discharge * 10 * hours / b->efficiency;
  assert_double_equal(b->energy_kwh, e1, 1e-9);
  double charge = 0.25 * b->max_kw;
  vpq_sim_set_setpoint(sim, "bat-0001", -charge, 0);
  for (int i = 0; i < 10; i++) vpq_sim_step(sim, i * 60000, hours);
  /* Charging p for t stores p·t·η. */
  assert_double_equal(b->energy_kwh, e1 + charge * 10 * hours * b->efficiency, 1e-9);
  vpq_sim_free(sim);
}

static void batteries_stop_at_empty_and_full(void **state) {
  (void)state;
  vpq_sim *sim = make(1, 1);
  vpq_sim_battery *b = vpq_sim_battery_at(sim, 0);
  double hours = 1.0 / 60;
  for (int i = 0; i < 600; i++) {
    vpq_sim_set_setpoint(sim, "bat-0000", b->max_kw, i * 60000);
    vpq_sim_step(sim, i * 60000, hours);
    assert_true(b->energy_kwh >= 0);
    assert_true(b->power_kw <= b->max_kw + 1e-12);
  }
  assert_double_equal(b->energy_kwh, 0, 1e-9);
  assert_double_equal(b->power_kw, 0, 1e-9);
  for (int i = 0; i < 600; i++) {
    vpq_sim_set_setpoint(sim, "bat-0000", -b->max_kw, i * 60000);
    vpq_sim_step(sim, i * 60000, hours);
    assert_true(b->energy_kwh <= b->capacity_kwh + 1e-9);
  }
  assert_double_equal(b->energy_kwh, b->capacity_kwh, 1e-9);
  vpq_sim_free(sim);
}

static void setpoints_hold_for_their_step_only(void **state) {
  (void)state;
  vpq_sim *sim = make(1, 1);
  vpq_sim_battery *b = vpq_sim_battery_at(sim, 0);
  double hours = 1.0 / 60;
  int64_t step = 10 * 60000; /* the setpoint's step: [10 min, 25 min) */
  vpq_sim_set_setpoint(sim, "bat-0000", 0.1 * b->max_kw, step);
  for (int minute = 0; minute < 30; minute++) {
    vpq_sim_step(sim, minute * 60000, hours);
    bool holds = minute >= 10 && minute < 25;
    if (holds) assert_double_equal(b->power_kw, 0.1 * b->max_kw, 1e-12);
    else assert_double_equal(b->power_kw, 0, 0);
  }
  vpq_sim_free(sim);
}

/* A plan of several steps (SCHEDULE ... EMIT PLAN): every step's setpoint waits for its step,
 * whatever order they arrive in, and a later plan replaces the steps it plans again. */
static void setpoints_of_later_steps_wait_for_theirs(void **state) {
  (void)state;
  vpq_sim *sim = make(1, 1);
  vpq_sim_battery *b = vpq_sim_battery_at(sim, 0);
  const double hours = 1.0 / 60, kw[] = {0.1, 0.2, -0.3, 0.4};
  const int64_t step = 15 * 60000;
  vpq_sim_set_setpoint(sim, "bat-0000", kw[2] * b->max_kw, 2 * step);
  vpq_sim_set_setpoint(sim, "bat-0000", kw[0] * b->max_kw, 0);
  vpq_sim_set_setpoint(sim, "bat-0000", 0.9 * b->max_kw, step);
  vpq_sim_set_setpoint(sim, "bat-0000", kw[3] * b->max_kw, 3 * step);
  vpq_sim_set_setpoint(sim, "bat-0000", kw[1] * b->max_kw, step); /* the later plan's */
  for (int minute = 0; minute < 75; minute++) {
    vpq_sim_step(sim, minute * 60000, hours);
    const double want = minute < 60 ? kw[minute / 15] * b->max_kw : 0;
    assert_double_equal(b->power_kw, want, 1e-12);
  }
  vpq_sim_free(sim);
}

static void site_loads_follow_the_series_and_are_reproducible(void **state) {
  (void)state;
  vpq_sim *a = make(4, 4), *b = make(4, 4);
  int64_t t = 1700000000000;
  for (int s = 0; s < 4; s++) {
    double load = vpq_sim_site_load(a, s, t);
    assert_true(load > 0);
    assert_double_equal(load, vpq_sim_site_load(b, s, t), 0);
    /* The default site peak is 250 kW, scaled by 0.6..1.4, plus 2% noise. */
    assert_true(load < 250 * 1.4 * 1.02);
  }
  /* 56 days later the data repeats, apart from the noise. */
  int64_t later = t + 56LL * 86400000;
  assert_double_equal(vpq_sim_site_load(a, 0, t), vpq_sim_site_load(a, 0, later), 0.05 * vpq_sim_site_load(a, 0, t));
  char json[512];
  int len = vpq_sim_meter_json(a, 1, t, json, sizeof json);
  assert_int_equal(len, (int)strlen(json));
  assert_non_null(strstr(json, "\"site\":\"site-01\""));
  len = vpq_sim_telemetry_json(a, 2, t, json, sizeof json);
  assert_non_null(strstr(json, "\"device_id\":\"bat-0002\""));
  assert_non_null(strstr(json, "\"ts\":1700000000000"));
  vpq_sim_free(a);
  vpq_sim_free(b);
}

static void the_fleet_adds_up_to_its_power(void **state) {
  (void)state;
  vpq_sim_config config = vpq_sim_defaults();
  config.devices = 50;
  config.fleet_kw = 2000;
  char err[256];
  vpq_sim *sim = vpq_sim_new(&config, err, sizeof err);
  assert_non_null(sim);
  double kw = 0;
  for (int i = 0; i < 50; i++) {
    const vpq_sim_battery *b = vpq_sim_battery_at(sim, i);
    kw += b->max_kw;
    assert_true(b->energy_kwh >= 0.4 * b->capacity_kwh - 1e-9 && b->energy_kwh <= 0.8 * b->capacity_kwh + 1e-9);
  }
  assert_double_equal(kw, 2000, 1e-6);
  vpq_sim_free(sim);
  config.devices = 0;
  assert_null(vpq_sim_new(&config, err, sizeof err));
  assert_non_null(strstr(err, "devices"));
}

static void meters_take_rooftop_pv_off_the_load(void **state) {
  (void)state;
  vpq_sim *off = make_pv(0), *on = make_pv(0.5), *again = make_pv(0.5), *double_pv = make_pv(1);
  /* 2018-06-18 (day 10 of the data): 17:00 UTC is a data hour whose PV profile is 0.7993 in
   * queries/data/sim_pv_fr.csv; 05:00 and 06:00 UTC are 0 (night), so 05:30 is too. */
  int64_t day = 1528416000000 + 10 * 86400000LL, noon = day + 17 * 3600000LL, night = day + 5 * 3600000LL + 1800000;
  for (int s = 0; s < 4; s++) {
    double capacity = vpq_sim_site_pv_capacity(on, s);
    assert_true(capacity > 0.5 * 250 * 0.6 && capacity < 0.5 * 250 * 1.4);
    assert_double_equal(vpq_sim_site_pv_capacity(double_pv, s), 2 * capacity, 1e-9);
    assert_double_equal(vpq_sim_site_pv_capacity(off, s), 0, 0);
    /* PV changes the meter, not the load; readings are a function of the seed. */
    double load = vpq_sim_site_load(on, s, noon);
    assert_double_equal(load, vpq_sim_site_load(off, s, noon), 0);
    assert_double_equal(vpq_sim_site_pv(on, s, noon), capacity * 0.7993, 1e-9);
    assert_double_equal(vpq_sim_site_meter(on, s, noon), load - capacity * 0.7993, 1e-9);
    assert_double_equal(vpq_sim_site_meter(again, s, noon), vpq_sim_site_meter(on, s, noon), 0);
    assert_double_equal(vpq_sim_site_meter(on, s, night), vpq_sim_site_load(on, s, night), 0);
    /* Without PV the meter reads the load, at any time. */
    assert_double_equal(vpq_sim_site_meter(off, s, noon), load, 0);
  }
  /* With PV of twice the peak load, a site exports at noon (PV 2 × 0.7993 × its peak, load at
   * most 1.02 × its peak): its meter reads negative. */
  vpq_sim *exporter = make_pv(2);
  for (int s = 0; s < 4; s++) assert_true(vpq_sim_site_meter(exporter, s, noon) < 0);
  vpq_sim_free(exporter);
  /* Meter readings: unchanged without PV; with PV, load − PV and the PV as pv_kw. */
  char json[512], want[512];
  vpq_sim_meter_json(off, 1, noon, json, sizeof json);
  snprintf(want, sizeof want, "{\"site\":\"site-01\",\"ts\":%lld,\"load_kw\":%.1f}", (long long)noon,
           vpq_sim_site_load(off, 1, noon));
  assert_string_equal(json, want);
  vpq_sim_meter_json(on, 1, noon, json, sizeof json);
  double pv_kw = vpq_sim_site_pv_capacity(on, 1) * 0.7993;
  snprintf(want, sizeof want, "{\"site\":\"site-01\",\"ts\":%lld,\"load_kw\":%.1f,\"pv_kw\":%.1f}", (long long)noon,
           vpq_sim_site_load(on, 1, noon) - pv_kw, pv_kw);
  assert_string_equal(json, want);
  vpq_sim_free(off);
  vpq_sim_free(on);
  vpq_sim_free(again);
  vpq_sim_free(double_pv);
  vpq_sim_config config = vpq_sim_defaults();
  config.pv_ratio = -1;
  char err[256];
  assert_null(vpq_sim_new(&config, err, sizeof err));
  assert_non_null(strstr(err, "PV"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(setpoints_are_clamped_to_the_power_limit),
      cmocka_unit_test(energy_is_conserved_with_efficiency),
      cmocka_unit_test(batteries_stop_at_empty_and_full),
      cmocka_unit_test(setpoints_hold_for_their_step_only),
      cmocka_unit_test(setpoints_of_later_steps_wait_for_theirs),
      cmocka_unit_test(site_loads_follow_the_series_and_are_reproducible),
      cmocka_unit_test(the_fleet_adds_up_to_its_power),
      cmocka_unit_test(meters_take_rooftop_pv_off_the_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
