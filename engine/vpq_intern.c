/* vpq_intern.c — the string pool: open addressing over (hash, id), strings in big slabs.
 *
 *   slots[] ──► id+1 (0 = empty) ──► entries[id] = {text, len, hash}
 *
 * Lookups hash the bytes once (FNV-1a, 64-bit), probe linearly, and compare lengths and
 * hashes before bytes. The table doubles at 50% load.
 */
#include "vpq_intern.h"

#include <stdlib.h>
#include <string.h>

typedef struct intern_entry {
  char *text;
  uint32_t len;
  uint64_t hash;
} intern_entry;

typedef struct intern_slab {
  struct intern_slab *next;
  size_t used, size;
  char data[];
} intern_slab;

struct vpq_intern {
  intern_entry *entries;
  size_t count, cap;
  uint32_t *slots; /* id + 1; 0 = empty */
  size_t nslots;
  intern_slab *slab;
};

enum { INTERN_SLAB = 256 * 1024 };

static uint64_t intern_hash(const char *text, size_t len) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)text[i];
    h *= 1099511628211ull;
  }
  return h ^ (h >> 29);
}

static void *intern_xalloc(size_t size) {
  void *p = malloc(size);
  if (!p) abort();
  return p;
}

static char *intern_store(vpq_intern *pool, const char *text, size_t len) {
  if (!pool->slab || pool->slab->size - pool->slab->used < len + 1) {
    size_t size = len + 1 > INTERN_SLAB ? len + 1 : INTERN_SLAB;
    intern_slab *slab = intern_xalloc(sizeof *slab + size);
    slab->next = pool->slab;
    slab->used = 0;
    slab->size = size;
    pool->slab = slab;
  }
  char *copy = pool->slab->data + pool->slab->used;
  memcpy(copy, text, len);
  copy[len] = '\0';
  pool->slab->used += len + 1;
  return copy;
}

static void intern_rehash(vpq_intern *pool, size_t nslots) {
  free(pool->slots);
  pool->slots = calloc(nslots, sizeof *pool->slots);
  if (!pool->slots) abort();
  pool->nslots = nslots;
  for (size_t id = 0; id < pool->count; id++) {
    size_t at = pool->entries[id].hash & (nslots - 1);
    while (pool->slots[at]) at = (at + 1) & (nslots - 1);
    pool->slots[at] = (uint32_t)id + 1;
  }
}

vpq_intern *vpq_intern_new(void) {
  vpq_intern *pool = calloc(1, sizeof *pool);
  if (!pool) abort();
  pool->cap = 1024;
  pool->entries = intern_xalloc(sizeof *pool->entries * pool->cap);
  intern_rehash(pool, 2048);
  vpq_intern_id(pool, "", 0);
  return pool;
}

void vpq_intern_free(vpq_intern *pool) {
  if (!pool) return;
  intern_slab *slab = pool->slab;
  while (slab) {
    intern_slab *next = slab->next;
    free(slab);
    slab = next;
  }
  free(pool->entries);
  free(pool->slots);
  free(pool);
}

int64_t vpq_intern_id(vpq_intern *pool, const char *text, size_t len) {
  uint64_t hash = intern_hash(text, len);
  size_t mask = pool->nslots - 1;
  size_t at = hash & mask;
  for (;;) {
    uint32_t slot = pool->slots[at];
    if (!slot) break;
    const intern_entry *e = &pool->entries[slot - 1];
    if (e->hash == hash && e->len == len && memcmp(e->text, text, len) == 0) return slot - 1;
    at = (at + 1) & mask;
  }
  if (pool->count == pool->cap) {
    pool->cap *= 2;
    pool->entries = realloc(pool->entries, sizeof *pool->entries * pool->cap);
    if (!pool->entries) abort();
  }
  size_t id = pool->count++;
  pool->entries[id] = (intern_entry){intern_store(pool, text, len), (uint32_t)len, hash};
  if (pool->count * 2 > pool->nslots) {
    intern_rehash(pool, pool->nslots * 2);
  } else {
    pool->slots[at] = (uint32_t)id + 1;
  }
  return (int64_t)id;
}

const char *vpq_intern_text(const vpq_intern *pool, int64_t id, size_t *len) {
  const intern_entry *e = &pool->entries[id];
  if (len) *len = e->len;
  return e->text;
}

int vpq_intern_compare(const vpq_intern *pool, int64_t a, int64_t b) {
  if (a == b) return 0;
  const intern_entry *x = &pool->entries[a], *y = &pool->entries[b];
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->text, y->text, n);
  if (c) return c;
  return x->len < y->len ? -1 : (x->len > y->len);
}

size_t vpq_intern_count(const vpq_intern *pool) { return pool->count; }
