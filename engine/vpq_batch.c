/* vpq_batch.c — columnar batch allocation and row copies (vpq_batch.h). */
#include "vpq_batch.h"

#include <string.h>

vpq_batch *vpq_batch_new(vpq_arena *arena, int ncols, const vpq_type *types, int cap) {
  vpq_batch *batch = vpq_arena_alloc(arena, sizeof *batch);
  batch->cap = cap;
  batch->ncols = ncols;
  batch->cols = vpq_arena_alloc(arena, sizeof *batch->cols * (size_t)(ncols ? ncols : 1));
  for (int c = 0; c < ncols; c++) {
    batch->cols[c].type = types ? types[c] : VPQ_TYPE_NULL;
    batch->cols[c].data = vpq_arena_alloc(arena, sizeof(vpq_datum) * (size_t)cap);
    batch->cols[c].null = vpq_arena_alloc(arena, (size_t)cap);
  }
  batch->ts = vpq_arena_alloc(arena, sizeof(int64_t) * (size_t)cap);
  batch->wm = vpq_arena_alloc(arena, sizeof(int64_t) * (size_t)cap);
  batch->diff = vpq_arena_alloc(arena, (size_t)cap);
  batch->origin = vpq_arena_alloc(arena, sizeof(vpq_origin) * (size_t)cap);
  return batch;
}

void vpq_batch_append_row(vpq_batch *dst, const vpq_batch *src, int row) {
  int at = dst->n++;
  for (int c = 0; c < dst->ncols; c++) {
    dst->cols[c].data[at] = src->cols[c].data[row];
    dst->cols[c].null[at] = src->cols[c].null[row];
  }
  dst->ts[at] = src->ts[row];
  dst->wm[at] = src->wm[row];
  dst->diff[at] = src->diff[row];
  dst->origin[at] = src->origin[row];
}
