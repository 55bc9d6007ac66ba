/* vpq_intern.h — the string pool: every string value is interned to a dense integer id at
 * decode time, so that group-by keys, joins and equality work on integers. Id 0 is the empty
 * string. Strings are never removed; the pool belongs to one engine instance.
 */
#ifndef VPQ_INTERN_H
#define VPQ_INTERN_H

#include <stddef.h>
#include <stdint.h>

typedef struct vpq_intern vpq_intern;

/* Creates an empty pool (holding only "" as id 0). */
vpq_intern *vpq_intern_new(void);

/* Frees the pool and every string in it. */
void vpq_intern_free(vpq_intern *pool);

/* Returns the id of `len` bytes at `text`, adding a copy to the pool when new. */
int64_t vpq_intern_id(vpq_intern *pool, const char *text, size_t len);

/* Returns the NUL-terminated text of `id` and stores its length in `*len` (if not NULL). The
 * pointer stays valid for the pool's lifetime. */
const char *vpq_intern_text(const vpq_intern *pool, int64_t id, size_t *len);

/* Compares two interned strings byte-wise, like memcmp then length: <0, 0, >0. */
int vpq_intern_compare(const vpq_intern *pool, int64_t a, int64_t b);

/* Number of distinct strings held. */
size_t vpq_intern_count(const vpq_intern *pool);

#endif
