/* vpq_codec_int.h — byte-level helpers that the decoders (vpq_codec.c) and the encoders
 * (vpq_codec_encode.c) share. Private to the codec. */
#ifndef VPQ_CODEC_INT_H
#define VPQ_CODEC_INT_H

#include <stdint.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the 8-byte string scan assumes little-endian words");

static const uint64_t ONES = 0x0101010101010101ull, HIGHS = 0x8080808080808080ull;

/* Flags (high bit of each byte) the bytes of a little-endian word that are a quote, a backslash,
 * below 0x20 or above 0x7F. Bytes above the first flagged one may be flagged falsely (borrows),
 * the first one never is: its index is ctz(mask) / 8. */
static inline uint64_t swar_special(uint64_t w) {
  uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
  return (((w - ONES * 0x20) & ~w) | ((q - ONES) & ~q) | ((b - ONES) & ~b) | w) & HIGHS;
}

/* Returns the length of the valid UTF-8 sequence at p (1..4), or 0 when it is invalid. */
static inline int utf8_length(const unsigned char *p, const unsigned char *end) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;
  if (c < 0xE0) return end - p >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c < 0xF0) {
    if (end - p < 3) return 0;
    unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 ? 3 : 0;
  }
  if (c < 0xF5) {
    if (end - p < 4) return 0;
    unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80 ? 4 : 0;
  }
  return 0;
}

#endif
