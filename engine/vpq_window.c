/* vpq_window.c — epoch-aligned window assignment (vpq_window.h). */
#include "vpq_window.h"

int64_t vpq_window_last_start(int64_t ts, int64_t advance) {
  int64_t q = ts / advance;
  if (ts % advance != 0 && ts < 0) q--;
  return q * advance;
}

int64_t vpq_window_first_start(int64_t ts, int64_t size, int64_t advance) {
  int64_t last = vpq_window_last_start(ts, advance);
  /* The oldest start s with s + size > ts, i.e. s > ts - size, on the advance grid. */
  int64_t first = vpq_window_last_start(ts - size, advance) + advance;
  return first > last ? last : first;
}
