/* sched_random.h — the seeded random numbers of the scheduler's unit tests (test_sched.c,
 * test_sched_dp.c): every case draws from its own seed, so any case is reproducible alone. */
#ifndef SCHED_RANDOM_H
#define SCHED_RANDOM_H

#include <stdint.h>

/* The next number of the sequence at *s (splitmix64). */
static inline uint64_t next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

/* A number drawn uniformly from [lo, hi). */
static inline double uniform(uint64_t *s, double lo, double hi) {
  return lo + (hi - lo) * (double)(next(s) >> 11) * 0x1p-53;
}

#endif
