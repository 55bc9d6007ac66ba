/* vpq_buf.h — a growable byte buffer for encoding output rows and messages. */
#ifndef VPQ_BUF_H
#define VPQ_BUF_H

#include <stddef.h>

typedef struct vpq_buf {
  char *data;
  size_t len;
  size_t cap;
} vpq_buf;

/* Makes room for `extra` more bytes; aborts on OOM. */
void vpq_buf_reserve(vpq_buf *buf, size_t extra);

/* Appends `len` bytes. */
void vpq_buf_append(vpq_buf *buf, const char *bytes, size_t len);

/* Appends a NUL-terminated string. */
void vpq_buf_puts(vpq_buf *buf, const char *text);

/* Appends printf-style text. */
void vpq_buf_printf(vpq_buf *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees the storage; the buffer is empty and reusable afterwards. */
void vpq_buf_free(vpq_buf *buf);

#endif
