/* vpq_lex.h — the lexer's interface to the parser driver: tokens with their byte spans. */
#ifndef VPQ_LEX_H
#define VPQ_LEX_H

#include "../engine/vpq_diag.h"

/* One token: its lemon code (TK_* from the generated vpq_parse.h; 0 = end of input) and the
 * text it came from. */
typedef struct vpq_token {
  int type;
  vpq_span span;
} vpq_token;

/* Scans the token starting at byte `*pos` of the NUL-terminated `diag->text`, skipping
 * whitespace and comments, and advances `*pos` past it. Lexical errors (an unterminated
 * string or comment, a character that starts no token) are recorded in `diag` and the
 * offending text is skipped. Returns the token; type 0 at the end of the text. */
vpq_token vpq_lex_next(vpq_diag *diag, uint32_t *pos);

#endif
