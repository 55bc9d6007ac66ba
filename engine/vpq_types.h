/* vpq_types.h — the engine's value types and how one value is held.
 *
 * Every value is one 8-byte datum: BIGINT and TIMESTAMP (epoch ms, UTC) as int64, DOUBLE as
 * double, BOOLEAN as int64 0/1, STRING as the int64 id of an interned string (vpq_intern.h).
 * NULL is not a datum: columns carry a null mask beside their data.
 */
#ifndef VPQ_TYPES_H
#define VPQ_TYPES_H

#include <stdbool.h>
#include <stdint.h>

/* ORDER VPQ_TYPE: keep vpq_type_name() in step. */
typedef enum vpq_type {
  VPQ_TYPE_NULL,      /* the type of a bare NULL literal only */
  VPQ_TYPE_BOOLEAN,
  VPQ_TYPE_BIGINT,
  VPQ_TYPE_DOUBLE,
  VPQ_TYPE_STRING,
  VPQ_TYPE_TIMESTAMP,
  VPQ_TYPE_INTERVAL,  /* interval literals (ms); only in options, windows and ts arithmetic */
} vpq_type;

typedef union vpq_datum {
  int64_t i;
  double d;
} vpq_datum;

/* The smallest and largest event times: "no watermark yet" and "end of stream". */
#define VPQ_TS_MIN INT64_MIN
#define VPQ_TS_MAX INT64_MAX

/* The event times a source row may carry: 0000-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z, the
 * years ISO-8601 input can write. Bounded so that a window's end, a grace period or a bound
 * added to an event time never overflows (interval literals are bounded too: VPQ_AST_INTERVAL_MAX_MS). */
#define VPQ_EVENT_TIME_FIRST INT64_C(-62167219200000)
#define VPQ_EVENT_TIME_LAST INT64_C(253402300799999)

/* Orders two doubles as PostgreSQL and Spark do: NaN above every number and equal to itself
 * (a total order, so min, max, least and greatest do not depend on the order of their inputs);
 * -0.0 equals 0.0. Returns -1, 0 or 1. */
static inline int vpq_double_compare(double a, double b) {
  if (a != a || b != b) return (a != a) - (b != b);
  return (a > b) - (a < b);
}

/* Returns the SQL name of a type: "BIGINT", "STRING", ... */
const char *vpq_type_name(vpq_type type);

#endif
