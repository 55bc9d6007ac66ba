/* vpq_diag.h — diagnostics: every error found in a query file, collected in one object and
 * printed as `file:line:col: error: message`, the source line, and a caret under the culprit.
 * Library code never prints; it records here and the caller decides where the text goes.
 * Positions are byte offsets into the source; line and column are computed only when printed.
 */
#ifndef VPQ_DIAG_H
#define VPQ_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A byte range of the query text: what a token or node came from. */
typedef struct vpq_span {
  uint32_t off;
  uint32_t len;
} vpq_span;

typedef struct vpq_diag_entry {
  vpq_span span;
  char *message; /* malloc'd, owned by the diag object */
} vpq_diag_entry;

/* The query text and every diagnostic recorded against it. */
typedef struct vpq_diag {
  const char *file; /* as the user named it */
  const char *text; /* NUL-terminated query text, not owned */
  size_t text_len;
  vpq_diag_entry *entries;
  int count;
  int cap;
  int errors;
} vpq_diag;

/* Starts an empty diagnostic list for `text` (borrowed: it must outlive the diag). */
void vpq_diag_init(vpq_diag *diag, const char *file, const char *text, size_t text_len);

/* Frees every recorded message. */
void vpq_diag_free(vpq_diag *diag);

/* Records an error at `span` with a printf-style message. */
void vpq_diag_error(vpq_diag *diag, vpq_span span, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Computes the 1-based line and column (in UTF-8 characters) of byte offset `off`. */
void vpq_diag_position(const vpq_diag *diag, uint32_t off, int *line, int *col);

/* Prints every entry, sorted by position, as `file:line:col: error: message`, the source
 * line, and a caret line (`^` then `~` over the rest of the span on that line). */
void vpq_diag_print(const vpq_diag *diag, FILE *out);

/* Returns the closest of `candidates` to `name` by edit distance, or NULL when none is close
 * enough to be worth suggesting ("did you mean `soc`?"). Case-insensitive. */
const char *vpq_diag_suggest(const char *name, const char *const *candidates, int count);

#endif
