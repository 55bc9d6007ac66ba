/* vpq_diag.c — collecting and printing diagnostics with positions and carets (vpq_diag.h). */
#include "vpq_diag.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void vpq_diag_init(vpq_diag *diag, const char *file, const char *text, size_t text_len) {
  memset(diag, 0, sizeof *diag);
  diag->file = file;
  diag->text = text;
  diag->text_len = text_len;
}

void vpq_diag_free(vpq_diag *diag) {
  for (int i = 0; i < diag->count; i++) free(diag->entries[i].message);
  free(diag->entries);
  diag->entries = NULL;
  diag->count = diag->cap = diag->errors = 0;
}

void vpq_diag_error(vpq_diag *diag, vpq_span span, const char *fmt, ...) {
  if (diag->count == diag->cap) {
    diag->cap = diag->cap ? diag->cap * 2 : 8;
    diag->entries = realloc(diag->entries, sizeof *diag->entries * (size_t)diag->cap);
    if (!diag->entries) abort();
  }
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *message = malloc((size_t)len + 1);
  if (!message) abort();
  va_start(ap, fmt);
  vsnprintf(message, (size_t)len + 1, fmt, ap);
  va_end(ap);
  if (span.off > diag->text_len) span.off = (uint32_t)diag->text_len;
  diag->entries[diag->count++] = (vpq_diag_entry){span, message};
  diag->errors++;
}

/* Whether byte b continues a UTF-8 character: columns count characters, not bytes. */
static bool continuation(char b) { return ((unsigned char)b & 0xC0) == 0x80; }

void vpq_diag_position(const vpq_diag *diag, uint32_t off, int *line, int *col) {
  int l = 1, c = 1;
  for (uint32_t i = 0; i < off && i < diag->text_len; i++) {
    if (diag->text[i] == '\n') {
      l++;
      c = 1;
    } else if (!continuation(diag->text[i])) {
      c++;
    }
  }
  *line = l;
  *col = c;
}

static int entry_cmp(const void *a, const void *b) {
  const vpq_diag_entry *x = *(const vpq_diag_entry *const *)a;
  const vpq_diag_entry *y = *(const vpq_diag_entry *const *)b;
  if (x->span.off != y->span.off) return x->span.off < y->span.off ? -1 : 1;
  return x < y ? -1 : (x > y);
}

static void print_entry(const vpq_diag *diag, const vpq_diag_entry *e, FILE *out) {
  int line, col;
  vpq_diag_position(diag, e->span.off, &line, &col);
  fprintf(out, "%s:%d:%d: error: %s\n", diag->file, line, col, e->message);
  size_t start = e->span.off;
  while (start > 0 && diag->text[start - 1] != '\n') start--;
  size_t end = e->span.off;
  while (end < diag->text_len && diag->text[end] != '\n') end++;
  fprintf(out, "%.*s\n", (int)(end - start), diag->text + start);
  for (size_t i = start; i < e->span.off; i++)
    if (!continuation(diag->text[i])) fputc(diag->text[i] == '\t' ? '\t' : ' ', out);
  fputc('^', out);
  size_t span_end = e->span.off + (e->span.len ? e->span.len : 1);
  for (size_t i = e->span.off + 1; i < span_end && i < end; i++)
    if (!continuation(diag->text[i])) fputc('~', out);
  fputc('\n', out);
}

void vpq_diag_print(const vpq_diag *diag, FILE *out) {
  if (diag->count == 0) return;
  const vpq_diag_entry **order = malloc(sizeof *order * (size_t)diag->count);
  if (!order) abort();
  for (int i = 0; i < diag->count; i++) order[i] = &diag->entries[i];
  qsort(order, (size_t)diag->count, sizeof *order, entry_cmp);
  for (int i = 0; i < diag->count; i++) print_entry(diag, order[i], out);
  free(order);
}

static int edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return 1000;
  int row[65];
  for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int diag_prev = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int up = row[j];
      int cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
      int best = diag_prev + cost;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      if (up + 1 < best) best = up + 1;
      row[j] = best;
      diag_prev = up;
    }
  }
  return row[lb];
}

const char *vpq_diag_suggest(const char *name, const char *const *candidates, int count) {
  const char *best = NULL;
  int best_distance = 1000;
  int limit = (int)strlen(name) / 3 + 1;
  for (int i = 0; i < count; i++) {
    int d = edit_distance(name, candidates[i]);
    if (d < best_distance) {
      best_distance = d;
      best = candidates[i];
    }
  }
  return best_distance <= limit ? best : NULL;
}
