/* vpq_window.h — the window assigner: which epoch-aligned tumbling or hopping windows an
 * event time falls in. Windows are [k·advance, k·advance + size); tumbling has advance = size.
 */
#ifndef VPQ_WINDOW_H
#define VPQ_WINDOW_H

#include <stdint.h>

/* The start of the last window containing `ts`: floor(ts / advance) · advance (also for
 * negative times). */
int64_t vpq_window_last_start(int64_t ts, int64_t advance);

/* The start of the first (oldest) window of size `size` and step `advance` containing `ts`;
 * the windows containing ts start at first, first + advance, ..., vpq_window_last_start(). */
int64_t vpq_window_first_start(int64_t ts, int64_t size, int64_t advance);

#endif
