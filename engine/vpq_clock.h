/* vpq_clock.h — the two clocks in milliseconds: the wall clock (event times that come from
 * processing time, announcements others compare) and the monotonic one (durations, waits).
 */
#ifndef VPQ_CLOCK_H
#define VPQ_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since the epoch on the wall clock (CLOCK_REALTIME). */
static inline int64_t vpq_clock_wall_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Milliseconds on the monotonic clock (CLOCK_MONOTONIC), for durations. */
static inline int64_t vpq_clock_monotonic_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

#endif
