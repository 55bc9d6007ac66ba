/* vpq_buf.c — the growable byte buffer (vpq_buf.h). */
#include "vpq_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vpq_buf_grow(vpq_buf *buf, size_t extra) {
  size_t cap = buf->cap ? buf->cap * 2 : 256;
  while (cap < buf->len + extra + 1) cap *= 2;
  buf->data = realloc(buf->data, cap);
  if (!buf->data) abort();
  buf->cap = cap;
}

void vpq_buf_puts(vpq_buf *buf, const char *text) { vpq_buf_append(buf, text, strlen(text)); }

void vpq_buf_printf(vpq_buf *buf, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list copy;
  va_copy(copy, ap);
  int len = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  vpq_buf_reserve(buf, (size_t)len);
  vsnprintf(buf->data + buf->len, (size_t)len + 1, fmt, ap);
  buf->len += (size_t)len;
  va_end(ap);
}

void vpq_buf_free(vpq_buf *buf) {
  free(buf->data);
  buf->data = NULL;
  buf->len = buf->cap = 0;
}
