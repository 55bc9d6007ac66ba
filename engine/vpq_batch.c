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
  memset(batch->diff, 1, (size_t)cap); /* rows are insertions unless their producer says otherwise */
  batch->origin = vpq_arena_alloc(arena, sizeof(vpq_origin) * (size_t)cap);
  batch->source = vpq_arena_alloc(arena, sizeof(int32_t) * (size_t)cap);
  return batch;
}

vpq_batch vpq_batch_view(vpq_arena *arena, const vpq_batch *batch, int first, int ncols, int from, int to) {
  vpq_batch view = *batch;
  view.n = view.cap = to - from;
  view.ncols = ncols;
  view.cols = vpq_arena_alloc(arena, sizeof *view.cols * (size_t)(ncols + 1));
  for (int c = 0; c < ncols; c++) {
    view.cols[c] = batch->cols[first + c];
    view.cols[c].data += from;
    view.cols[c].null += from;
  }
  view.ts = batch->ts + from;
  view.wm = batch->wm + from;
  view.diff = batch->diff + from;
  view.origin = batch->origin + from;
  view.source = batch->source + from;
  return view;
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
  dst->source[at] = src->source[row];
}
