/* vpq_buf.h — a growable byte buffer for encoding output rows and messages. Appending keeps a
 * NUL after the bytes (data[len] == '\0'). Reserving and appending are inline: encoders call
 * them for every value. */
#ifndef VPQ_BUF_H
#define VPQ_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct vpq_buf {
  char *data;
  size_t len;
  size_t cap;
} vpq_buf;

/* Grows the storage to hold `extra` more bytes and a NUL; aborts on OOM (vpq_buf_reserve's
 * slow path). */
void vpq_buf_grow(vpq_buf *buf, size_t extra);

/* Makes room for `extra` more bytes and a NUL; aborts on OOM. */
static inline void vpq_buf_reserve(vpq_buf *buf, size_t extra) {
  if (buf->len + extra + 1 > buf->cap) vpq_buf_grow(buf, extra);
}

/* Appends `len` bytes. */
static inline void vpq_buf_append(vpq_buf *buf, const char *bytes, size_t len) {
  vpq_buf_reserve(buf, len);
  memcpy(buf->data + buf->len, bytes, len);
  buf->len += len;
  buf->data[buf->len] = '\0';
}

/* Appends a NUL-terminated string. */
void vpq_buf_puts(vpq_buf *buf, const char *text);

/* Appends printf-style text. */
void vpq_buf_printf(vpq_buf *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees the storage; the buffer is empty and reusable afterwards. */
void vpq_buf_free(vpq_buf *buf);

#endif
