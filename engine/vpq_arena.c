/* vpq_arena.c — the bump allocator behind every compiled query and batch (see vpq_arena.h). */
#include "vpq_arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ARENA_CHUNK = 64 * 1024, ARENA_ALIGN = 16 };

struct vpq_arena_chunk {
  vpq_arena_chunk *next;
  size_t size;
  size_t used;
  _Alignas(16) unsigned char data[];
};

void vpq_arena_init(vpq_arena *arena) {
  arena->head = NULL;
  arena->spare = NULL;
  arena->bytes = 0;
}

static void chunks_free(vpq_arena_chunk *chunk) {
  while (chunk) {
    vpq_arena_chunk *next = chunk->next;
    free(chunk);
    chunk = next;
  }
}

void vpq_arena_free(vpq_arena *arena) {
  chunks_free(arena->head);
  chunks_free(arena->spare);
  arena->head = NULL;
  arena->spare = NULL;
  arena->bytes = 0;
}

void vpq_arena_reset(vpq_arena *arena) {
  vpq_arena_chunk *chunk = arena->head;
  while (chunk) {
    vpq_arena_chunk *next = chunk->next;
    if (chunk->size == ARENA_CHUNK) {
      chunk->used = 0;
      chunk->next = arena->spare;
      arena->spare = chunk;
    } else {
      free(chunk);
    }
    chunk = next;
  }
  arena->head = NULL;
  arena->bytes = 0;
}

void *vpq_arena_alloc(vpq_arena *arena, size_t size) {
  size_t rounded = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  vpq_arena_chunk *chunk = arena->head;
  if (!chunk || chunk->size - chunk->used < rounded) {
    size_t want = rounded > ARENA_CHUNK / 4 ? rounded : ARENA_CHUNK;
    if (want == ARENA_CHUNK && arena->spare) {
      chunk = arena->spare;
      arena->spare = chunk->next;
    } else {
      chunk = malloc(sizeof *chunk + want);
    }
    if (!chunk) {
      fprintf(stderr, "vpq: out of memory (arena of %zu bytes)\n", want);
      abort();
    }
    chunk->size = want;
    chunk->used = 0;
    if (rounded > ARENA_CHUNK / 4 && arena->head) {
      /* A large block gets its own chunk behind the current one, which keeps its free space. */
      chunk->next = arena->head->next;
      arena->head->next = chunk;
    } else {
      chunk->next = arena->head;
      arena->head = chunk;
    }
  }
  void *block = chunk->data + chunk->used;
  chunk->used += rounded;
  arena->bytes += rounded;
  memset(block, 0, size);
  return block;
}

char *vpq_arena_strndup(vpq_arena *arena, const char *text, size_t len) {
  char *copy = vpq_arena_alloc(arena, len + 1);
  memcpy(copy, text, len);
  copy[len] = '\0';
  return copy;
}

char *vpq_arena_strdup(vpq_arena *arena, const char *text) {
  return vpq_arena_strndup(arena, text, strlen(text));
}

void *vpq_arena_grow(vpq_arena *arena, void *array, size_t elem, int *cap, int need) {
  if (need <= *cap) return array;
  int grown = *cap ? *cap * 2 : 4;
  while (grown < need) grown *= 2;
  void *bigger = vpq_arena_alloc(arena, elem * (size_t)grown);
  if (array && *cap) memcpy(bigger, array, elem * (size_t)*cap);
  *cap = grown;
  return bigger;
}
