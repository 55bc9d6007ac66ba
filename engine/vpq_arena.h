/* vpq_arena.h — bump allocator: one arena per compiled query (tokens, AST, plans) or per
 * batch, freed in one call. Nothing allocated from an arena is freed on its own.
 *
 *   arena ──► [chunk 64 KiB | used ....... free ] ──► [older chunk] ──► ...
 */
#ifndef VPQ_ARENA_H
#define VPQ_ARENA_H

#include <stddef.h>

typedef struct vpq_arena_chunk vpq_arena_chunk;

typedef struct vpq_arena {
  vpq_arena_chunk *head;
  vpq_arena_chunk *spare; /* chunks kept by vpq_arena_reset for reuse */
  size_t bytes; /* total bytes handed out, for memory reports */
} vpq_arena;

/* Prepares an empty arena; allocates nothing until the first request. */
void vpq_arena_init(vpq_arena *arena);

/* Releases every allocation of the arena at once; the arena may be reused afterwards. */
void vpq_arena_free(vpq_arena *arena);

/* Releases every allocation but keeps the chunks for reuse: for arenas emptied per batch. */
void vpq_arena_reset(vpq_arena *arena);

/* Returns `size` bytes aligned to 16, zero-filled, owned by the arena. Aborts on OOM. */
void *vpq_arena_alloc(vpq_arena *arena, size_t size);

/* Copies `len` bytes of `text` into the arena and NUL-terminates the copy. */
char *vpq_arena_strndup(vpq_arena *arena, const char *text, size_t len);

/* Copies a NUL-terminated string into the arena. */
char *vpq_arena_strdup(vpq_arena *arena, const char *text);

/* Grows an arena array of `*cap` elements of `elem` bytes to hold at least `need` elements;
 * returns the (possibly moved) array. The old storage stays in the arena until it is freed. */
void *vpq_arena_grow(vpq_arena *arena, void *array, size_t elem, int *cap, int need);

#endif
