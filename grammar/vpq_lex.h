/* vpq_lex.h — the re2c lexer of the .vpq language: text in, tokens with byte spans out.
 *
 * Token codes are lemon's (VPQ_TK_* in the generated vpq_parse.h); 0 is the end of input.
 * Whitespace and comments are skipped. A lexical error (unterminated string, quoted name or
 * comment, a character that starts no token) is recorded in the diag object and returned as
 * one VPQ_TK_ILLEGAL token, so the parser's driver can skip the statement it is in.
 */
#ifndef VPQ_LEX_H
#define VPQ_LEX_H

#include <stdint.h>

#include "../engine/vpq_diag.h"

/* One token: its lemon code and the text it came from. */
typedef struct vpq_token {
  int type;
  vpq_span span;
} vpq_token;

/* The lexer's position in `diag->text` (NUL-terminated, `diag->text_len` bytes). */
typedef struct vpq_lexer {
  vpq_diag *diag;
  uint32_t pos;
} vpq_lexer;

/* Starts scanning `diag->text` from its first byte; errors are recorded in `diag`. */
void vpq_lex_init(vpq_lexer *lex, vpq_diag *diag);

/* Returns the next token and advances past it. At the end of the text it returns type 0 with
 * an empty span at the end, again on every further call. */
vpq_token vpq_lex_next(vpq_lexer *lex);

#endif
