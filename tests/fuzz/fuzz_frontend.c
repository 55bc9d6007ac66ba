/* fuzz_frontend.c — libFuzzer target for the front end: arbitrary bytes through the lexer,
 * parser and analyzer (what `vpq check` does), which must report errors, never crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vpq_ast.h"
#include "vpq_plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  size_t len = strlen(text); /* the front end reads up to the first NUL, like a C string */
  vpq_arena arena;
  vpq_arena_init(&arena);
  vpq_diag diag;
  vpq_diag_init(&diag, "fuzz.vpq", text, len);
  vpq_ast_file *file = vpq_parse(&arena, &diag);
  if (file && !diag.errors) vpq_analyze(&arena, &diag, file, "fuzz.vpq", ".");
  vpq_diag_free(&diag);
  vpq_arena_free(&arena);
  free(text);
  return 0;
}
