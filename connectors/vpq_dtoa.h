/* vpq_dtoa.h — numbers to text for the encoders: the shortest text that reads back to a double,
 * and integers, without printf.
 *
 * A double is written as Python's repr() writes it: the fewest significant digits whose
 * correctly rounded value reads back (strtod) to the same double, plain decimals when the
 * decimal exponent is in [-4, 16) ("0.25", "1234.5", "1000000000000000.0"), otherwise
 * d.ddde±XX ("1e-05", "1.5e+20"); ".0" on integral plain values; "-0.0" for negative zero.
 * Subnormals (below 2.2e-308) keep the text vpq has always written for them: the first of their
 * 15-, 16- and 17-digit roundings that reads back ("4.94065645841247e-324", not "5e-324").
 */
#ifndef VPQ_DTOA_H
#define VPQ_DTOA_H

#include <stddef.h>
#include <stdint.h>

/* Room the functions below need at buf: texts have at most 24 bytes and a NUL, but digits are
 * moved in whole words, which may write past the NUL. */
enum { VPQ_DTOA_SIZE = 64 };

/* Writes the shortest round-trip text of `v` into buf (VPQ_DTOA_SIZE bytes, NUL-terminated) and
 * returns its length; returns 0 and writes nothing when `v` is NaN or infinite. */
size_t vpq_dtoa_double(char *buf, double v);

/* Writes `v` in decimal into buf (VPQ_DTOA_SIZE bytes, NUL-terminated); returns the length. */
size_t vpq_dtoa_int(char *buf, int64_t v);

#endif
