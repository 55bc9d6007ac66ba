/* vpq_lex.re — the re2c lexer of the .vpq language.
 *
 * One rule block inside vpq_lex_next(). The text ends in a NUL stop byte (no refilling:
 * `re2c:yyfill:enable = 0`), so `nul` is the end of input and `[^]` any other byte that
 * starts no token. Keywords are case-insensitive ('select' in re2c); identifiers keep their
 * case. Tokens carry only a byte span; values (numbers, unquoted strings) are read by the
 * parser's constructors, and line:col is computed only when an error is printed.
 */
#include "vpq_lex.h"

#include "vpq_parse.h"

vpq_token vpq_lex_next(vpq_diag *diag, uint32_t *pos) {
  const unsigned char *text = (const unsigned char *)diag->text;
  const unsigned char *YYCURSOR = text + *pos, *YYMARKER = YYCURSOR, *start;
  int type;
  for (;;) {
    start = YYCURSOR;
    /*!re2c
      re2c:define:YYCTYPE = "unsigned char";
      re2c:yyfill:enable = 0;

      nul = "\x00";
      digits = [0-9]+;
      exp = [eE] [+-]? digits;
      ident = [a-zA-Z_] [a-zA-Z0-9_]*;

      nul { type = 0; YYCURSOR = start; goto done; }
      [ \t\r\n\f\v]+ { continue; }
      "--" [^\n\x00]* { continue; }
      "/*" ([^*\x00] | "*"+ [^*/\x00])* "*"+ "/" { continue; }
      "/*" {
        vpq_diag_error(diag, (vpq_span){(uint32_t)(start - text), 2}, "unterminated comment");
        while (*YYCURSOR) YYCURSOR++;
        continue;
      }

      "'" ([^'\x00] | "''")* "'" { type = TK_STRING; goto done; }
      "'" {
        vpq_diag_error(diag, (vpq_span){(uint32_t)(start - text), 1}, "unterminated string literal");
        while (*YYCURSOR) YYCURSOR++;
        continue;
      }
      ["] [^"\x00]+ ["] { type = TK_QUOTED; goto done; }
      ["] {
        vpq_diag_error(diag, (vpq_span){(uint32_t)(start - text), 1}, "unterminated quoted name");
        while (*YYCURSOR) YYCURSOR++;
        continue;
      }

      digits { type = TK_INTEGER; goto done; }
      digits "." [0-9]* exp? | "." digits exp? | digits exp { type = TK_FLOAT; goto done; }

      "(" { type = TK_LP; goto done; }
      ")" { type = TK_RP; goto done; }
      "," { type = TK_COMMA; goto done; }
      "." { type = TK_DOT; goto done; }
      ";" { type = TK_SEMI; goto done; }
      "*" { type = TK_STAR; goto done; }
      "+" { type = TK_PLUS; goto done; }
      "-" { type = TK_MINUS; goto done; }
      "/" { type = TK_SLASH; goto done; }
      "%" { type = TK_PERCENT; goto done; }
      "=" | "==" { type = TK_EQ; goto done; }
      "<>" | "!=" { type = TK_NE; goto done; }
      "<" { type = TK_LT; goto done; }
      "<=" { type = TK_LE; goto done; }
      ">" { type = TK_GT; goto done; }
      ">=" { type = TK_GE; goto done; }

      'advance' { type = TK_ADVANCE; goto done; }
      'and' { type = TK_AND; goto done; }
      'as' { type = TK_AS; goto done; }
      'below' { type = TK_BELOW; goto done; }
      'bigint' | 'int' | 'integer' { type = TK_BIGINT; goto done; }
      'boolean' { type = TK_BOOLEAN; goto done; }
      'by' { type = TK_BY; goto done; }
      'case' { type = TK_CASE; goto done; }
      'changes' { type = TK_CHANGES; goto done; }
      'cost' { type = TK_COST; goto done; }
      'create' { type = TK_CREATE; goto done; }
      'day' | 'days' { type = TK_DAY; goto done; }
      'distinct' { type = TK_DISTINCT; goto done; }
      'double' { type = TK_DOUBLE; goto done; }
      'else' { type = TK_ELSE; goto done; }
      'emit' { type = TK_EMIT; goto done; }
      'end' { type = TK_END; goto done; }
      'every' { type = TK_EVERY; goto done; }
      'false' { type = TK_FALSE; goto done; }
      'final' { type = TK_FINAL; goto done; }
      'for' { type = TK_FOR; goto done; }
      'forecast' { type = TK_FORECAST; goto done; }
      'from' { type = TK_FROM; goto done; }
      'grace' { type = TK_GRACE; goto done; }
      'group' { type = TK_GROUP; goto done; }
      'having' { type = TK_HAVING; goto done; }
      'hopping' { type = TK_HOPPING; goto done; }
      'horizon' { type = TK_HORIZON; goto done; }
      'hour' | 'hours' { type = TK_HOUR; goto done; }
      'inner' { type = TK_INNER; goto done; }
      'insert' { type = TK_INSERT; goto done; }
      'into' { type = TK_INTO; goto done; }
      'is' { type = TK_IS; goto done; }
      'join' { type = TK_JOIN; goto done; }
      'keep' { type = TK_KEEP; goto done; }
      'key' { type = TK_KEY; goto done; }
      'kw' { type = TK_KW; goto done; }
      'left' { type = TK_LEFT; goto done; }
      'millisecond' | 'milliseconds' { type = TK_MILLISECOND; goto done; }
      'minimize' { type = TK_MINIMIZE; goto done; }
      'minute' | 'minutes' { type = TK_MINUTE; goto done; }
      'not' { type = TK_NOT; goto done; }
      'null' { type = TK_NULL; goto done; }
      'on' { type = TK_ON; goto done; }
      'or' { type = TK_OR; goto done; }
      'outer' { type = TK_OUTER; goto done; }
      'peak' { type = TK_PEAK; goto done; }
      'period' { type = TK_PERIOD; goto done; }
      'plan' { type = TK_PLAN; goto done; }
      'primary' { type = TK_PRIMARY; goto done; }
      'rollup' { type = TK_ROLLUP; goto done; }
      'schedule' { type = TK_SCHEDULE; goto done; }
      'second' | 'seconds' { type = TK_SECOND; goto done; }
      'select' { type = TK_SELECT; goto done; }
      'session' { type = TK_SESSION; goto done; }
      'size' { type = TK_SIZE; goto done; }
      'step' { type = TK_STEP; goto done; }
      'stream' { type = TK_STREAM; goto done; }
      'string' | 'varchar' { type = TK_STRING_TYPE; goto done; }
      'subject' { type = TK_SUBJECT; goto done; }
      'table' { type = TK_TABLE; goto done; }
      'then' { type = TK_THEN; goto done; }
      'timestamp' { type = TK_TIMESTAMP; goto done; }
      'to' { type = TK_TO; goto done; }
      'true' { type = TK_TRUE; goto done; }
      'tumbling' { type = TK_TUMBLING; goto done; }
      'using' { type = TK_USING; goto done; }
      'when' { type = TK_WHEN; goto done; }
      'where' { type = TK_WHERE; goto done; }
      'window' { type = TK_WINDOW; goto done; }
      'with' { type = TK_WITH; goto done; }
      'within' { type = TK_WITHIN; goto done; }

      ident { type = TK_ID; goto done; }

      [^] {
        uint32_t off = (uint32_t)(start - text);
        unsigned char c = *start;
        if (c >= 0x20 && c < 0x7f) {
          vpq_diag_error(diag, (vpq_span){off, 1}, "unexpected character '%c'", c);
        } else {
          vpq_diag_error(diag, (vpq_span){off, 1}, "unexpected byte 0x%02x", c);
        }
        continue;
      }
    */
  }
done:
  *pos = (uint32_t)(YYCURSOR - text);
  return (vpq_token){type, {(uint32_t)(start - text), (uint32_t)(YYCURSOR - start)}};
}
