/* test_window.c — unit tests of the window assigner (vpq_window.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vpq_window.h"

static void tumbling_windows_are_epoch_aligned(void **state) {
  (void)state;
  assert_int_equal(vpq_window_last_start(0, 60000), 0);
  assert_int_equal(vpq_window_last_start(59999, 60000), 0);
  assert_int_equal(vpq_window_last_start(60000, 60000), 60000);
  assert_int_equal(vpq_window_first_start(59999, 60000, 60000), 0);
  assert_int_equal(vpq_window_first_start(60000, 60000, 60000), 60000);
  assert_int_equal(vpq_window_first_start(1700000012345, 60000, 60000), 1700000000000 - 20000);
}

static void negative_times_round_down(void **state) {
  (void)state;
  assert_int_equal(vpq_window_last_start(-1, 60000), -60000);
  assert_int_equal(vpq_window_last_start(-60000, 60000), -60000);
  assert_int_equal(vpq_window_last_start(-60001, 60000), -120000);
  assert_int_equal(vpq_window_first_start(-1, 60000, 60000), -60000);
}

static void hopping_windows_cover_every_start_containing_ts(void **state) {
  (void)state;
  /* SIZE 10 min, ADVANCE 5 min: 7 min lies in [0,10) and [5,15). */
  int64_t m = 60000;
  assert_int_equal(vpq_window_first_start(7 * m, 10 * m, 5 * m), 0);
  assert_int_equal(vpq_window_last_start(7 * m, 5 * m), 5 * m);
  /* Exactly on a boundary: 10 min lies in [5,15) and [10,20), not [0,10). */
  assert_int_equal(vpq_window_first_start(10 * m, 10 * m, 5 * m), 5 * m);
  assert_int_equal(vpq_window_last_start(10 * m, 5 * m), 10 * m);
  /* SIZE 10, ADVANCE 3: 7 lies in [0,10), [3,13), [6,16). */
  assert_int_equal(vpq_window_first_start(7, 10, 3), 0);
  assert_int_equal(vpq_window_last_start(7, 3), 6);
  /* A brute-force cross-check over a range of times and shapes. */
  for (int64_t size = 1; size <= 12; size++) {
    for (int64_t adv = 1; adv <= size; adv++) {
      for (int64_t ts = -30; ts <= 30; ts++) {
        int64_t first = vpq_window_first_start(ts, size, adv), last = vpq_window_last_start(ts, adv);
        for (int64_t s = -60; s <= 60; s += 1) {
          if (s % adv != 0) continue;
          int contains = s <= ts && ts < s + size;
          int assigned = s >= first && s <= last;
          assert_int_equal(contains, assigned);
        }
      }
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tumbling_windows_are_epoch_aligned),
      cmocka_unit_test(negative_times_round_down),
      cmocka_unit_test(hopping_windows_cover_every_start_containing_ts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
