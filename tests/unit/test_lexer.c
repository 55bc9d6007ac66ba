/* test_lexer.c — unit tests of the re2c lexer (grammar/vpq_lex.h): token codes and byte spans,
 * case-insensitive keywords, numbers, strings, comments, and lexical errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "vpq_lex.h"
#include "vpq_parse.h"

/* Scans `text` into `out` (at most `max` tokens, end of input included); returns the count. */
static int scan(vpq_diag *diag, const char *text, vpq_token *out, int max) {
  vpq_diag_init(diag, "t.vpq", text, strlen(text));
  vpq_lexer lex;
  vpq_lex_init(&lex, diag);
  int n = 0;
  while (n < max) {
    out[n] = vpq_lex_next(&lex);
    if (out[n++].type == 0) break;
  }
  return n;
}

static void assert_token(const vpq_token *tok, int type, uint32_t off, uint32_t len) {
  assert_int_equal(tok->type, type);
  assert_int_equal(tok->span.off, off);
  assert_int_equal(tok->span.len, len);
}

static void tokens_carry_offsets(void **state) {
  (void)state;
  vpq_diag diag;
  vpq_token t[16];
  /*                 0         1         2         3
   *                 0123456789012345678901234567890123 */
  int n = scan(&diag, "SELECT a, 'x''y' FROM t.c;", t, 16);
  assert_int_equal(n, 10);
  assert_token(&t[0], VPQ_TK_SELECT, 0, 6);
  assert_token(&t[1], VPQ_TK_ID, 7, 1);
  assert_token(&t[2], VPQ_TK_COMMA, 8, 1);
  assert_token(&t[3], VPQ_TK_STRING, 10, 6);
  assert_token(&t[4], VPQ_TK_FROM, 17, 4);
  assert_token(&t[5], VPQ_TK_ID, 22, 1);
  assert_token(&t[6], VPQ_TK_DOT, 23, 1);
  assert_token(&t[7], VPQ_TK_ID, 24, 1);
  assert_token(&t[8], VPQ_TK_SEMI, 25, 1);
  assert_token(&t[9], 0, 26, 0);
  assert_int_equal(diag.count, 0);
  vpq_diag_free(&diag);
}

static void keywords_ignore_case(void **state) {
  (void)state;
  vpq_diag diag;
  vpq_token t[16];
  int n = scan(&diag, "select SeLeCt SELECT selected Seconds second int INTEGER bigint varchar window_start", t, 16);
  assert_int_equal(n, 12);
  assert_int_equal(t[0].type, VPQ_TK_SELECT);
  assert_int_equal(t[1].type, VPQ_TK_SELECT);
  assert_int_equal(t[2].type, VPQ_TK_SELECT);
  assert_int_equal(t[3].type, VPQ_TK_ID);
  assert_int_equal(t[4].type, VPQ_TK_SECOND);
  assert_int_equal(t[5].type, VPQ_TK_SECOND);
  assert_int_equal(t[6].type, VPQ_TK_BIGINT);
  assert_int_equal(t[7].type, VPQ_TK_BIGINT);
  assert_int_equal(t[8].type, VPQ_TK_BIGINT);
  assert_int_equal(t[9].type, VPQ_TK_VARCHAR);
  assert_token(&t[10], VPQ_TK_ID, 72, 12);
  vpq_diag_free(&diag);
}

static void numbers_and_operators(void **state) {
  (void)state;
  vpq_diag diag;
  vpq_token t[32];
  const char *text = "42 3.5 .5 1e3 1.5E-2 7. -5 <= >= <> != = == < > + * / % ( )";
  int n = scan(&diag, text, t, 32);
  const int want[] = {VPQ_TK_INTEGER, VPQ_TK_FLOAT, VPQ_TK_FLOAT, VPQ_TK_FLOAT, VPQ_TK_FLOAT, VPQ_TK_FLOAT,
                      VPQ_TK_MINUS,   VPQ_TK_INTEGER, VPQ_TK_LE, VPQ_TK_GE,
                      VPQ_TK_NE,      VPQ_TK_NE,    VPQ_TK_EQ,    VPQ_TK_EQ,    VPQ_TK_LT,    VPQ_TK_GT,
                      VPQ_TK_PLUS,    VPQ_TK_STAR,  VPQ_TK_SLASH, VPQ_TK_PERCENT, VPQ_TK_LP,  VPQ_TK_RP, 0};
  assert_int_equal(n, (int)(sizeof want / sizeof *want));
  for (int i = 0; i < n; i++) assert_int_equal(t[i].type, want[i]);
  assert_token(&t[4], VPQ_TK_FLOAT, 14, 6); /* 1.5E-2 */
  assert_token(&t[7], VPQ_TK_INTEGER, 25, 1); /* the 5 of -5: the sign is an operator */
  assert_int_equal(diag.count, 0);
  vpq_diag_free(&diag);
}

/* A number that runs into a name is an error, not a number and an alias. */
static void numbers_running_into_names(void **state) {
  (void)state;
  vpq_diag diag;
  vpq_token t[8];
  int n = scan(&diag, "0x10 1e 1_000 5SECONDS 2.5e3kw 7", t, 8);
  assert_int_equal(n, 7);
  for (int i = 0; i < 5; i++) assert_int_equal(t[i].type, VPQ_TK_ILLEGAL);
  assert_token(&t[5], VPQ_TK_INTEGER, 31, 1);
  assert_int_equal(diag.count, 5);
  assert_string_equal(diag.entries[0].message,
                      "`0x10` is not a number: write decimal numbers (16, 1.5, 2e3), with a space before a name");
  vpq_diag_free(&diag);
}

static void comments_and_quoted_names(void **state) {
  (void)state;
  vpq_diag diag;
  vpq_token t[8];
  int n = scan(&diag, "a -- to the end\n/* one\n * two */ \"Odd \"\"x\"\"\" b/**/c", t, 8);
  assert_int_equal(n, 5);
  assert_token(&t[0], VPQ_TK_ID, 0, 1);
  assert_token(&t[1], VPQ_TK_ID, 33, 11);
  assert_token(&t[2], VPQ_TK_ID, 45, 1);
  assert_token(&t[3], VPQ_TK_ID, 50, 1);
  assert_int_equal(diag.count, 0);
  vpq_diag_free(&diag);
}

static void end_of_input_repeats(void **state) {
  (void)state;
  vpq_diag diag;
  vpq_diag_init(&diag, "t.vpq", "  -- only a comment", 19);
  vpq_lexer lex;
  vpq_lex_init(&lex, &diag);
  for (int i = 0; i < 3; i++) assert_token((const vpq_token[]){vpq_lex_next(&lex)}, 0, 19, 0);
  vpq_diag_free(&diag);
}

static void unterminated_string(void **state) {
  (void)state;
  vpq_diag diag;
  vpq_token t[8];
  int n = scan(&diag, "x = 'it''s\nmore", t, 8);
  assert_int_equal(n, 4);
  assert_token(&t[2], VPQ_TK_ILLEGAL, 4, 11);
  assert_int_equal(diag.count, 1);
  assert_string_equal(diag.entries[0].message, "unterminated string literal");
  assert_int_equal(diag.entries[0].span.off, 4);
  vpq_diag_free(&diag);
}

static void unterminated_comment_and_name(void **state) {
  (void)state;
  vpq_diag diag;
  vpq_token t[8];
  int n = scan(&diag, "a /* never ends", t, 8);
  assert_int_equal(n, 3);
  assert_token(&t[1], VPQ_TK_ILLEGAL, 2, 13);
  assert_int_equal(diag.count, 1);
  assert_string_equal(diag.entries[0].message, "unterminated comment");
  vpq_diag_free(&diag);

  n = scan(&diag, "\"abc", t, 8);
  assert_int_equal(n, 2);
  assert_token(&t[0], VPQ_TK_ILLEGAL, 0, 4);
  assert_string_equal(diag.entries[0].message, "unterminated quoted name");
  vpq_diag_free(&diag);
}

static void unexpected_characters(void **state) {
  (void)state;
  vpq_diag diag;
  vpq_token t[8];
  int n = scan(&diag, "a # b \xc3\xa9 \x01", t, 8);
  assert_int_equal(n, 6);
  assert_token(&t[1], VPQ_TK_ILLEGAL, 2, 1);
  assert_token(&t[2], VPQ_TK_ID, 4, 1);
  assert_token(&t[3], VPQ_TK_ILLEGAL, 6, 2);
  assert_token(&t[4], VPQ_TK_ILLEGAL, 9, 1);
  assert_int_equal(diag.count, 3);
  assert_string_equal(diag.entries[0].message, "unexpected character '#'");
  assert_string_equal(diag.entries[1].message, "unexpected character '\xc3\xa9' (U+00E9)");
  assert_string_equal(diag.entries[2].message, "unexpected character '\\x01'");
  vpq_diag_free(&diag);
}

static void nul_before_the_end_is_an_error(void **state) {
  (void)state;
  vpq_diag diag;
  vpq_diag_init(&diag, "t.vpq", "a\0b", 3);
  vpq_lexer lex;
  vpq_lex_init(&lex, &diag);
  assert_token((const vpq_token[]){vpq_lex_next(&lex)}, VPQ_TK_ID, 0, 1);
  assert_token((const vpq_token[]){vpq_lex_next(&lex)}, VPQ_TK_ILLEGAL, 1, 1);
  assert_token((const vpq_token[]){vpq_lex_next(&lex)}, VPQ_TK_ID, 2, 1);
  assert_token((const vpq_token[]){vpq_lex_next(&lex)}, 0, 3, 0);
  assert_string_equal(diag.entries[0].message, "unexpected character '\\x00'");
  vpq_diag_free(&diag);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tokens_carry_offsets),
      cmocka_unit_test(keywords_ignore_case),
      cmocka_unit_test(numbers_and_operators),
      cmocka_unit_test(numbers_running_into_names),
      cmocka_unit_test(comments_and_quoted_names),
      cmocka_unit_test(end_of_input_repeats),
      cmocka_unit_test(unterminated_string),
      cmocka_unit_test(unterminated_comment_and_name),
      cmocka_unit_test(unexpected_characters),
      cmocka_unit_test(nul_before_the_end_is_an_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
