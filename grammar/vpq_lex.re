/* vpq_lex.re — the re2c lexer of the .vpq language (vpq_lex.h).
 *
 * All rules sit in one block inside vpq_lex_next(). The text ends in a NUL stop byte, so no
 * refilling is needed (`re2c:yyfill:enable = 0`): `nul` is the end of input (or, before
 * `text_len`, a stray NUL byte) and `[^]` any other byte that starts no token. Keywords are
 * case-insensitive ('select' in re2c); identifiers keep their case. A token is only a code
 * and a byte span: the parser's actions read numbers and strings from the text, and line:col
 * is computed only when a diagnostic is printed.
 */
#include "vpq_lex.h"

#include "vpq_parse.h"

#include <stdbool.h>
#include <string.h>

void vpq_lex_init(vpq_lexer *lex, vpq_diag *diag) {
  lex->diag = diag;
  lex->pos = 0;
}

/* Records "unexpected character" for the bytes [start, end): one ASCII character, one UTF-8
 * sequence (with its code point, so that a no-break space does not look like a space), or one
 * other byte. */
static void bad_character(vpq_diag *diag, const unsigned char *text, const unsigned char *start,
                          const unsigned char *end) {
  vpq_span span = {(uint32_t)(start - text), (uint32_t)(end - start)};
  if (end - start > 1) {
    uint32_t code = start[0] & (0x7f >> (end - start));
    for (const unsigned char *p = start + 1; p < end; p++) code = code << 6 | (*p & 0x3f);
    vpq_diag_error(diag, span, "unexpected character '%.*s' (U+%04X)", (int)span.len, (const char *)start,
                   (unsigned)code);
  } else if (*start >= 0x20 && *start < 0x7f) {
    vpq_diag_error(diag, span, "unexpected character '%c'", *start);
  } else {
    vpq_diag_error(diag, span, "unexpected character '\\x%02x'", *start);
  }
}

vpq_token vpq_lex_next(vpq_lexer *lex) {
  const unsigned char *text = (const unsigned char *)lex->diag->text;
  const unsigned char *YYCURSOR = text + lex->pos, *YYMARKER = YYCURSOR, *start;
  int type;
  for (;;) {
    start = YYCURSOR;
    /*!re2c
      re2c:define:YYCTYPE = "unsigned char";
      re2c:yyfill:enable = 0;
      re2c:flags:utf-8 = 0;

      nul = "\x00";
      digits = [0-9]+;
      exp = [eE] [+-]? digits;
      ident = [a-zA-Z_] [a-zA-Z0-9_]*;
      utf8 = [\xc2-\xdf] [\x80-\xbf] | [\xe0-\xef] [\x80-\xbf]{2} | [\xf0-\xf4] [\x80-\xbf]{3};

      nul {
        if ((size_t)(start - text) < lex->diag->text_len) {
          bad_character(lex->diag, text, start, YYCURSOR);
          type = VPQ_TK_ILLEGAL;
          goto done;
        }
        YYCURSOR = start;
        type = 0;
        goto done;
      }
      [ \t\r\n\f\v]+ { continue; }
      "--" [^\n\x00]* { continue; }
      "/*" ([^*\x00] | "*"+ [^*/\x00])* "*"+ "/" { continue; }
      "/*" ([^*\x00] | "*"+ [^*/\x00])* "*"* {
        vpq_diag_error(lex->diag, (vpq_span){(uint32_t)(start - text), (uint32_t)(YYCURSOR - start)},
                       "unterminated comment");
        type = VPQ_TK_ILLEGAL;
        goto done;
      }

      "'" ([^'\x00] | "''")* "'" { type = VPQ_TK_STRING; goto done; }
      "'" ([^'\x00] | "''")* {
        vpq_diag_error(lex->diag, (vpq_span){(uint32_t)(start - text), (uint32_t)(YYCURSOR - start)},
                       "unterminated string literal");
        type = VPQ_TK_ILLEGAL;
        goto done;
      }
      ["] ([^"\x00] | ["]["])* ["] { type = VPQ_TK_ID; goto done; }
      ["] ([^"\x00] | ["]["])* {
        vpq_diag_error(lex->diag, (vpq_span){(uint32_t)(start - text), (uint32_t)(YYCURSOR - start)},
                       "unterminated quoted name");
        type = VPQ_TK_ILLEGAL;
        goto done;
      }

      digits {
        /* 9223372036854775808, the magnitude of the smallest BIGINT: a number only after a minus */
        const unsigned char *first = start;
        while (first + 1 < YYCURSOR && *first == '0') first++;
        const bool int_min = YYCURSOR - first == 19 && memcmp(first, "9223372036854775808", 19) == 0;
        type = int_min ? VPQ_TK_INT_MIN_MAGNITUDE : VPQ_TK_INTEGER;
        goto done;
      }
      digits "." [0-9]* exp? | "." digits exp? | digits exp { type = VPQ_TK_FLOAT; goto done; }
      (digits | digits "." [0-9]* exp? | "." digits exp? | digits exp) [a-zA-Z_] [a-zA-Z0-9_]* {
        /* a number running into a name (0x10, 1e, 1_000, 5SECONDS) would read as a number and an alias */
        vpq_diag_error(lex->diag, (vpq_span){(uint32_t)(start - text), (uint32_t)(YYCURSOR - start)},
                       "`%.*s` is not a number: write decimal numbers (16, 1.5, 2e3), with a space before a name",
                       (int)(YYCURSOR - start), start);
        type = VPQ_TK_ILLEGAL;
        goto done;
      }

      "(" { type = VPQ_TK_LP; goto done; }
      ")" { type = VPQ_TK_RP; goto done; }
      "," { type = VPQ_TK_COMMA; goto done; }
      "." { type = VPQ_TK_DOT; goto done; }
      ";" { type = VPQ_TK_SEMI; goto done; }
      "*" { type = VPQ_TK_STAR; goto done; }
      "+" { type = VPQ_TK_PLUS; goto done; }
      "-" { type = VPQ_TK_MINUS; goto done; }
      "/" { type = VPQ_TK_SLASH; goto done; }
      "%" { type = VPQ_TK_PERCENT; goto done; }
      "=" | "==" { type = VPQ_TK_EQ; goto done; }
      "<>" | "!=" { type = VPQ_TK_NE; goto done; }
      "<" { type = VPQ_TK_LT; goto done; }
      "<=" { type = VPQ_TK_LE; goto done; }
      ">" { type = VPQ_TK_GT; goto done; }
      ">=" { type = VPQ_TK_GE; goto done; }

      'advance' { type = VPQ_TK_ADVANCE; goto done; }
      'and' { type = VPQ_TK_AND; goto done; }
      'as' { type = VPQ_TK_AS; goto done; }
      'below' { type = VPQ_TK_BELOW; goto done; }
      'bigint' | 'int' | 'integer' { type = VPQ_TK_BIGINT; goto done; }
      'boolean' { type = VPQ_TK_BOOLEAN; goto done; }
      'by' { type = VPQ_TK_BY; goto done; }
      'case' { type = VPQ_TK_CASE; goto done; }
      'changes' { type = VPQ_TK_CHANGES; goto done; }
      'cost' { type = VPQ_TK_COST; goto done; }
      'create' { type = VPQ_TK_CREATE; goto done; }
      'day' | 'days' { type = VPQ_TK_DAY; goto done; }
      'distinct' { type = VPQ_TK_DISTINCT; goto done; }
      'double' { type = VPQ_TK_DOUBLE; goto done; }
      'else' { type = VPQ_TK_ELSE; goto done; }
      'emit' { type = VPQ_TK_EMIT; goto done; }
      'end' { type = VPQ_TK_END; goto done; }
      'every' { type = VPQ_TK_EVERY; goto done; }
      'false' { type = VPQ_TK_FALSE; goto done; }
      'final' { type = VPQ_TK_FINAL; goto done; }
      'for' { type = VPQ_TK_FOR; goto done; }
      'forecast' { type = VPQ_TK_FORECAST; goto done; }
      'from' { type = VPQ_TK_FROM; goto done; }
      'grace' { type = VPQ_TK_GRACE; goto done; }
      'group' { type = VPQ_TK_GROUP; goto done; }
      'having' { type = VPQ_TK_HAVING; goto done; }
      'hopping' { type = VPQ_TK_HOPPING; goto done; }
      'horizon' { type = VPQ_TK_HORIZON; goto done; }
      'hour' | 'hours' { type = VPQ_TK_HOUR; goto done; }
      'inner' { type = VPQ_TK_INNER; goto done; }
      'insert' { type = VPQ_TK_INSERT; goto done; }
      'into' { type = VPQ_TK_INTO; goto done; }
      'is' { type = VPQ_TK_IS; goto done; }
      'join' { type = VPQ_TK_JOIN; goto done; }
      'keep' { type = VPQ_TK_KEEP; goto done; }
      'key' { type = VPQ_TK_KEY; goto done; }
      'kw' { type = VPQ_TK_KW; goto done; }
      'left' { type = VPQ_TK_LEFT; goto done; }
      'millisecond' | 'milliseconds' { type = VPQ_TK_MILLISECOND; goto done; }
      'minimize' { type = VPQ_TK_MINIMIZE; goto done; }
      'minute' | 'minutes' { type = VPQ_TK_MINUTE; goto done; }
      'not' { type = VPQ_TK_NOT; goto done; }
      'null' { type = VPQ_TK_NULL; goto done; }
      'on' { type = VPQ_TK_ON; goto done; }
      'or' { type = VPQ_TK_OR; goto done; }
      'outer' { type = VPQ_TK_OUTER; goto done; }
      'peak' { type = VPQ_TK_PEAK; goto done; }
      'period' { type = VPQ_TK_PERIOD; goto done; }
      'plan' { type = VPQ_TK_PLAN; goto done; }
      'primary' { type = VPQ_TK_PRIMARY; goto done; }
      'rollup' { type = VPQ_TK_ROLLUP; goto done; }
      'schedule' { type = VPQ_TK_SCHEDULE; goto done; }
      'second' | 'seconds' { type = VPQ_TK_SECOND; goto done; }
      'select' { type = VPQ_TK_SELECT; goto done; }
      'session' { type = VPQ_TK_SESSION; goto done; }
      'size' { type = VPQ_TK_SIZE; goto done; }
      'step' { type = VPQ_TK_STEP; goto done; }
      'stream' { type = VPQ_TK_STREAM; goto done; }
      'string' | 'varchar' { type = VPQ_TK_VARCHAR; goto done; }
      'subject' { type = VPQ_TK_SUBJECT; goto done; }
      'table' { type = VPQ_TK_TABLE; goto done; }
      'then' { type = VPQ_TK_THEN; goto done; }
      'timestamp' { type = VPQ_TK_TIMESTAMP; goto done; }
      'to' { type = VPQ_TK_TO; goto done; }
      'true' { type = VPQ_TK_TRUE; goto done; }
      'tumbling' { type = VPQ_TK_TUMBLING; goto done; }
      'using' { type = VPQ_TK_USING; goto done; }
      'when' { type = VPQ_TK_WHEN; goto done; }
      'where' { type = VPQ_TK_WHERE; goto done; }
      'window' { type = VPQ_TK_WINDOW; goto done; }
      'with' { type = VPQ_TK_WITH; goto done; }
      'within' { type = VPQ_TK_WITHIN; goto done; }

      ident { type = VPQ_TK_ID; goto done; }

      utf8 | [^] {
        bad_character(lex->diag, text, start, YYCURSOR);
        type = VPQ_TK_ILLEGAL;
        goto done;
      }
    */
  }
done:
  lex->pos = (uint32_t)(YYCURSOR - text);
  return (vpq_token){type, {(uint32_t)(start - text), (uint32_t)(YYCURSOR - start)}};
}
