/* vpq_file.c — the file connector: JSON-lines and CSV files as bounded sources, and buffered
 * JSON-lines/CSV writers for files and stdio streams.
 *
 * A source maps (or reads) the whole file once and cuts records out of it in place:
 *
 *   data ──► [ line 1 │ line 2 │ ... ]   pos: the next record; line: its 1-based line number
 *
 * JSON records end at '\n'; CSV records at a '\n' outside quotes (a quoted field may hold line
 * breaks, so the record's line number is where it starts). Blank lines are skipped. A record
 * that does not decode goes to the `bad` callback with the decoder's reason and is skipped.
 * A common JSON line is found and decoded in the same pass (vpq_decoder_json_line); its strings
 * are interned once per batch (vpq_decoder_defer_strings), while the file is still mapped.
 * The bytes a few KiB ahead of the reader are prefetched, page after page.
 *
 * A sink encodes rows into one big buffer and hands it to stdio when it fills, on flush and on
 * close; a stream sink (stdout) hands over after every write so that rows show up as they come.
 */
#include "vpq_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { SINK_BUFFER = 1 << 20 };

static vpq_format format_of(const char *format) {
  return format && strcmp(format, "csv") == 0 ? VPQ_FORMAT_CSV : VPQ_FORMAT_JSON;
}

/* ===== Source ===== */

typedef struct file_source {
  vpq_source base;
  char *path;
  const char *name; /* basename of path, for origins */
  char *data;
  size_t size;
  bool mapped;
  size_t pos;
  size_t released; /* mapped bytes before this offset were given back to the kernel */
  size_t fetched;  /* bytes before this offset were prefetched */
  int64_t line;
  vpq_format format;
  vpq_decoder *dec;
  vpq_bad_record_fn bad;
  void *bad_ctx;
  size_t *batch_pos; /* where each row of the last batch starts, for resuming at an unread one */
  int64_t *batch_line;
  int batch_n, batch_cap;
  size_t start; /* where the first record starts (after a CSV header) */
} file_source;

/* Finds the end of the record starting at `p` (its '\n', or the end of the data) and counts
 * the line breaks inside it: CSV quoted fields may hold them. Quotes are read as the decoder
 * reads them: a field is quoted only when it starts with '"' ("" inside is a quote), so a
 * stray quote inside an unquoted field is text and cannot swallow the lines after it. */
static const char *record_end(const file_source *s, const char *p, int64_t *inner_lines) {
  const char *end = s->data + s->size;
  bool quoted = false, field_start = true;
  *inner_lines = 0;
  for (;;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl : end;
    if (s->format == VPQ_FORMAT_CSV && (quoted || memchr(p, '"', (size_t)(stop - p)))) {
      for (const char *q = p; q < stop; q++) {
        if (quoted) {
          if (*q == '"' && q + 1 < stop && q[1] == '"') q++;
          else if (*q == '"') quoted = false;
        } else {
          quoted = *q == '"' && field_start;
          field_start = *q == ',';
        }
      }
    }
    if (!nl || !quoted) return stop;
    (*inner_lines)++;
    p = nl + 1;
  }
}

/* The next non-blank record: its text (without '\n' or a final '\r') and line number. False
 * at the end of the data. */
static bool next_record(file_source *s, const char **text, size_t *len, int64_t *line) {
  const char *end = s->data + s->size;
  while (s->pos < s->size) {
    const char *p = s->data + s->pos;
    int64_t inner;
    const char *stop = record_end(s, p, &inner);
    *line = s->line;
    s->line += 1 + inner;
    s->pos = stop < end ? (size_t)(stop - s->data) + 1 : s->size;
    size_t n = (size_t)(stop - p);
    if (n > 0 && p[n - 1] == '\r') n--;
    size_t blank = 0;
    while (blank < n && (p[blank] == ' ' || p[blank] == '\t')) blank++;
    if (blank == n) continue;
    *text = p;
    *len = n;
    return true;
  }
  return false;
}

/* Decoded records are never looked at again: give their pages back, so that reading a file
 * much larger than memory keeps the resident set small. */
static void release_consumed(file_source *s) {
  enum { RELEASE_STEP = 16 << 20 };
  if (!s->mapped || s->pos - s->released < RELEASE_STEP) return;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t upto = s->pos / page * page;
  if (upto <= s->released) return;
  madvise(s->data + s->released, upto - s->released, MADV_DONTNEED);
  s->released = upto;
}

/* Fetches the bytes PREFETCH_AHEAD past the read position into the cache, each line once: the
 * hardware prefetcher stops at every 4 KiB page, and the decoder would wait for each new page.
 * Always inlined: GCC takes a function that only prefetches for one without effects. */
static inline __attribute__((always_inline)) void prefetch_ahead(file_source *s) {
  enum { PREFETCH_AHEAD = 4096 };
  size_t until = s->pos + PREFETCH_AHEAD < s->size ? s->pos + PREFETCH_AHEAD : s->size;
  if (s->fetched < s->pos) s->fetched = s->pos;
  for (; s->fetched < until; s->fetched += 64) __builtin_prefetch(s->data + s->fetched);
}

static bool file_read(vpq_source *src, vpq_batch *out, vpq_origin *origins, bool *done) {
  file_source *s = (file_source *)src;
  char err[512];
  int n = 0;
  const char *text;
  size_t len;
  int64_t line;
  if (s->batch_cap < out->cap) {
    s->batch_cap = out->cap;
    s->batch_pos = realloc(s->batch_pos, sizeof *s->batch_pos * (size_t)s->batch_cap);
    s->batch_line = realloc(s->batch_line, sizeof *s->batch_line * (size_t)s->batch_cap);
    if (!s->batch_pos || !s->batch_line) abort();
  }
  for (;;) {
    size_t pos = s->pos;
    int64_t line_before = s->line;
    if (n >= out->cap) break;
    prefetch_ahead(s);
    /* a common JSON line is found and decoded in one pass; others go the long way */
    len = s->format == VPQ_FORMAT_JSON && pos < s->size
              ? vpq_decoder_json_line(s->dec, s->data + pos, s->size - pos, out, n)
              : SIZE_MAX;
    if (len != SIZE_MAX) {
      line = s->line++;
      s->pos = pos + len < s->size ? pos + len + 1 : s->size;
    } else {
      if (!next_record(s, &text, &len, &line)) break;
      if (!vpq_decoder_row(s->dec, text, len, out, n, err, sizeof err)) {
        if (s->bad) s->bad(s->bad_ctx, err, (vpq_origin){-1, line}, text, len);
        continue;
      }
    }
    vpq_origin origin = {-1, line};
    /* Resuming at this row re-reads from where the read that found it began (blank lines
     * before it included), with the line count it had there. */
    s->batch_pos[n] = pos;
    s->batch_line[n] = line_before;
    origins[n++] = origin;
  }
  vpq_decoder_flush(s->dec);
  s->batch_n = n;
  out->n = n;
  *done = n == 0 && s->pos >= s->size;
  release_consumed(s);
  return n > 0;
}

static void file_format_origin(const vpq_source *src, vpq_origin origin, char *buf, size_t size) {
  const file_source *s = (const file_source *)src;
  snprintf(buf, size, "%s:%lld", s->name, (long long)origin.offset);
}

/* The position: the byte offset and line number of the next record to read (that of the
 * first unread row when rows of the last batch are unread). */
static void file_save(const vpq_source *src, vpq_ckpt_out *out, const vpq_origin *unread, int nunread) {
  const file_source *s = (const file_source *)src;
  size_t pos = s->pos;
  int64_t line = s->line;
  for (int i = 0; nunread > 0 && i < s->batch_n; i++) {
    if (s->batch_line[i] <= unread[0].offset && (i + 1 == s->batch_n || s->batch_line[i + 1] > unread[0].offset)) {
      pos = s->batch_pos[i];
      line = s->batch_line[i];
      break;
    }
  }
  vpq_ckpt_put_u64(out, pos);
  vpq_ckpt_put_i64(out, line);
  vpq_ckpt_put_u64(out, s->size);
}

static bool file_restore(vpq_source *src, vpq_ckpt_in *in, char *err, size_t err_size) {
  file_source *s = (file_source *)src;
  uint64_t pos = vpq_ckpt_get_u64(in);
  int64_t line = vpq_ckpt_get_i64(in);
  uint64_t size = vpq_ckpt_get_u64(in);
  if (in->error) {
    snprintf(err, err_size, "`%s`: %s", s->path, in->error);
    return false;
  }
  if (pos > s->size || size > s->size || pos < s->start || line < 1 || (pos > 0 && pos < s->size && s->data[pos - 1] != '\n')) {
    snprintf(err, err_size, "`%s` changed since the checkpoint (it was read up to byte %llu of %llu; it now has %zu bytes): "
             "run with --reset-state to read it again from the start", s->path, (unsigned long long)pos,
             (unsigned long long)size, s->size);
    return false;
  }
  s->pos = pos;
  s->line = line;
  return true;
}

static void file_close(vpq_source *src) {
  file_source *s = (file_source *)src;
  free(s->batch_pos);
  free(s->batch_line);
  if (s->mapped) munmap(s->data, s->size);
  else free(s->data);
  vpq_decoder_free(s->dec);
  free(s->path);
  free(s);
}

static const vpq_source_vt file_source_vt = {file_read, file_format_origin, file_close, NULL, file_save, file_restore, NULL, NULL};

/* Maps the file, or reads it when it cannot be mapped (pipes, special files). */
static bool load_file(file_source *s, char *err, size_t err_size) {
  int fd = open(s->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, err_size, "cannot open `%s`: %s", s->path, strerror(errno));
    return false;
  }
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    if (st.st_size == 0) {
      close(fd);
      return true;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map != MAP_FAILED) {
      madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
      s->data = map;
      s->size = (size_t)st.st_size;
      s->mapped = true;
      close(fd);
      return true;
    }
  }
  size_t cap = 1 << 16;
  s->data = malloc(cap);
  if (!s->data) abort();
  for (;;) {
    if (s->size == cap) {
      cap *= 2;
      s->data = realloc(s->data, cap);
      if (!s->data) abort();
    }
    ssize_t got = read(fd, s->data + s->size, cap - s->size);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      snprintf(err, err_size, "cannot read `%s`: %s", s->path, strerror(errno));
      close(fd);
      return false;
    }
    if (got == 0) break;
    s->size += (size_t)got;
  }
  close(fd);
  return true;
}

static int64_t option_bigint(const vpq_plan_options *options, const char *key) {
  for (int i = 0; i < options->count; i++)
    if (strcmp(options->items[i].key, key) == 0 && options->items[i].type == VPQ_TYPE_BIGINT)
      return options->items[i].value.i;
  return 0;
}

/* Whether a CSV header names every declared column: a column it lacks would be NULL in every
 * row (every row dead-lettered, for the `timestamp` column), so the file is refused at open.
 * The event-time column is named first when several are missing. */
static bool csv_header_complete(const vpq_relation *rel, const vpq_decoder *dec, char *err, size_t err_size) {
  if (rel->ts_col >= 0 && !vpq_decoder_csv_has(dec, rel->ts_col)) {
    snprintf(err, err_size, "the header has no column `%s` (the `timestamp` column)",
             rel->schema.cols[rel->ts_col].name);
    return false;
  }
  for (int c = 0; c < rel->schema.ncols; c++) {
    if (vpq_decoder_csv_has(dec, c)) continue;
    snprintf(err, err_size, "the header has no column `%s` (a declared column)", rel->schema.cols[c].name);
    return false;
  }
  return true;
}

vpq_source *vpq_file_open_source(const vpq_relation *rel, vpq_intern *intern, vpq_bad_record_fn bad,
                                 void *bad_ctx, char *err, size_t err_size) {
  if (!rel->source.path) {
    snprintf(err, err_size, "connector `file` needs a `path`");
    return NULL;
  }
  file_source *s = calloc(1, sizeof *s);
  if (!s) abort();
  s->base = (vpq_source){.vt = &file_source_vt, .bounded = true};
  s->path = strdup(rel->source.path);
  if (!s->path) abort();
  const char *slash = strrchr(s->path, '/');
  s->name = slash ? slash + 1 : s->path;
  s->line = 1;
  s->format = format_of(rel->source.format);
  s->bad = bad;
  s->bad_ctx = bad_ctx;
  s->dec = vpq_decoder_new(s->format, &rel->schema, intern);
  if (s->format == VPQ_FORMAT_JSON) vpq_decoder_defer_strings(s->dec, true); /* the file stays mapped */
  int64_t max = option_bigint(&rel->source.options, "max_row_bytes");
  if (max > 0) vpq_decoder_set_max_bytes(s->dec, (size_t)max);
  if (!load_file(s, err, err_size)) {
    file_close(&s->base);
    return NULL;
  }
  /* A UTF-8 byte order mark (spreadsheets write one) is no part of the first record. */
  if (s->size >= 3 && memcmp(s->data, "\xEF\xBB\xBF", 3) == 0) s->pos = 3;
  const char *text;
  size_t len;
  int64_t line;
  if (s->format == VPQ_FORMAT_CSV) {
    char why[256] = "the file has no header line (it is empty)";
    if (!next_record(s, &text, &len, &line) || !vpq_decoder_csv_header(s->dec, text, len, why, sizeof why) ||
        !csv_header_complete(rel, s->dec, why, sizeof why)) {
      snprintf(err, err_size, "bad CSV header in `%s`: %s", s->path, why);
      file_close(&s->base);
      return NULL;
    }
  }
  s->start = s->pos;
  return &s->base;
}

/* ===== Sinks ===== */

typedef struct file_sink {
  vpq_sink base;
  FILE *stream;
  char *path; /* NULL for a stream sink */
  vpq_format format;
  const vpq_schema *schema;
  const vpq_intern *intern;
  vpq_buf buf;
  vpq_json_keys keys;
} file_sink;

static bool sink_drain(file_sink *s, char *err, size_t err_size) {
  if (s->buf.len && fwrite(s->buf.data, 1, s->buf.len, s->stream) != s->buf.len) {
    snprintf(err, err_size, "cannot write `%s`: %s", s->path ? s->path : "stdout", strerror(errno));
    s->buf.len = 0;
    return false;
  }
  s->buf.len = 0;
  return true;
}

static bool sink_write(vpq_sink *sink, const vpq_batch *batch, const int *rows, int n, char *err,
                       size_t err_size) {
  file_sink *s = (file_sink *)sink;
  for (int i = 0; i < n; i++) {
    const bool csv = s->format == VPQ_FORMAT_CSV, deletion = batch->diff[rows[i]] < 0;
    if (deletion && csv) vpq_csv_encode_deletion(&s->buf, s->schema, batch, rows[i], s->intern);
    else if (deletion) vpq_json_encode_deletion(&s->buf, &s->keys, s->schema, batch, rows[i], s->intern);
    else if (csv) vpq_csv_encode_row(&s->buf, s->schema, batch, rows[i], s->intern);
    else vpq_json_encode_row_keyed(&s->buf, &s->keys, s->schema, batch, rows[i], s->intern);
    vpq_buf_append(&s->buf, "\n", 1);
    if (s->buf.len >= SINK_BUFFER && !sink_drain(s, err, err_size)) return false;
  }
  if (!s->path) return sink_drain(s, err, err_size) && fflush(s->stream) == 0;
  return true;
}

static bool sink_flush(vpq_sink *sink, char *err, size_t err_size) {
  file_sink *s = (file_sink *)sink;
  if (!sink_drain(s, err, err_size)) return false;
  if (fflush(s->stream) != 0) {
    snprintf(err, err_size, "cannot write `%s`: %s", s->path ? s->path : "stdout", strerror(errno));
    return false;
  }
  return true;
}

static void sink_close(vpq_sink *sink) {
  file_sink *s = (file_sink *)sink;
  char err[256];
  sink_flush(sink, err, sizeof err);
  if (s->path) fclose(s->stream);
  vpq_buf_free(&s->buf);
  vpq_json_keys_free(&s->keys);
  free(s->path);
  free(s);
}

/* Checkpoint: the file's length once everything written so far is on disk. */
static bool sink_save(vpq_sink *sink, uint64_t epoch, vpq_ckpt_out *out, char *err, size_t err_size) {
  (void)epoch;
  file_sink *s = (file_sink *)sink;
  if (!sink_flush(sink, err, err_size)) return false;
  if (fsync(fileno(s->stream)) != 0) {
    snprintf(err, err_size, "cannot sync `%s`: %s", s->path, strerror(errno));
    return false;
  }
  off_t len = ftello(s->stream);
  if (len < 0) {
    snprintf(err, err_size, "cannot tell the length of `%s`: %s", s->path, strerror(errno));
    return false;
  }
  vpq_ckpt_put_u64(out, (uint64_t)len);
  return true;
}

/* Cuts the file back to its length at the checkpoint: what was written after it is written
 * again by the replay. */
static bool sink_restore(vpq_sink *sink, vpq_ckpt_in *in, char *err, size_t err_size) {
  file_sink *s = (file_sink *)sink;
  uint64_t len = vpq_ckpt_get_u64(in);
  struct stat st;
  if (in->error || fstat(fileno(s->stream), &st) != 0) {
    snprintf(err, err_size, "`%s`: %s", s->path, in->error ? in->error : strerror(errno));
    return false;
  }
  if ((uint64_t)st.st_size < len) {
    snprintf(err, err_size, "`%s` has %lld bytes, fewer than the %llu the checkpoint wrote: it was changed outside vpq "
             "(run with --reset-state to start over)", s->path, (long long)st.st_size, (unsigned long long)len);
    return false;
  }
  s->buf.len = 0; /* a CSV header is already in the file */
  if (ftruncate(fileno(s->stream), (off_t)len) != 0 || fseeko(s->stream, (off_t)len, SEEK_SET) != 0) {
    snprintf(err, err_size, "cannot cut `%s` back to %llu bytes: %s", s->path, (unsigned long long)len, strerror(errno));
    return false;
  }
  return true;
}

static const vpq_sink_vt file_sink_vt = {sink_write, sink_flush, sink_close, sink_save, NULL, sink_restore};
static const vpq_sink_vt stream_sink_vt = {sink_write, sink_flush, sink_close, NULL, NULL, NULL};

static file_sink *sink_new(FILE *stream, const char *path, vpq_format format, const vpq_schema *schema,
                           const vpq_intern *intern) {
  file_sink *s = calloc(1, sizeof *s);
  if (!s) abort();
  s->base.vt = path ? &file_sink_vt : &stream_sink_vt;
  s->stream = stream;
  s->path = path ? strdup(path) : NULL;
  if (path && !s->path) abort();
  s->format = format;
  s->schema = schema;
  s->intern = intern;
  vpq_json_keys_init(&s->keys, schema);
  if (format == VPQ_FORMAT_CSV) {
    vpq_csv_encode_header(&s->buf, schema);
    vpq_buf_append(&s->buf, "\n", 1);
  }
  return s;
}

bool vpq_file_make_parents(const char *path, char *err, size_t err_size) {
  char *dir = strdup(path);
  if (!dir) abort();
  for (char *p = dir + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
      snprintf(err, err_size, "cannot create folder `%s`: %s", dir, strerror(errno));
      free(dir);
      return false;
    }
    *p = '/';
  }
  free(dir);
  return true;
}

vpq_sink *vpq_file_open_sink(const vpq_plan_connector *conn, const vpq_schema *schema,
                             const vpq_intern *intern, char *err, size_t err_size) {
  if (!conn->path) {
    snprintf(err, err_size, "connector `file` needs a `path`");
    return NULL;
  }
  if (!vpq_file_make_parents(conn->path, err, err_size)) return NULL;
  /* A run resuming from a checkpoint keeps what the file holds (restore cuts it back). */
  bool resume = false;
  for (int i = 0; i < conn->options.count; i++) {
    resume |= strcmp(conn->options.items[i].key, "vpq.resume") == 0;
    if (strcmp(conn->options.items[i].key, "vpq.partition") == 0) {
      snprintf(err, err_size, "a file sink (`%s`) cannot be shared by partition tasks: write to a Kafka topic",
               conn->path);
      return NULL;
    }
  }
  int fd = resume ? open(conn->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666) : -1;
  FILE *stream = resume ? (fd >= 0 ? fdopen(fd, "r+") : NULL) : fopen(conn->path, "w");
  if (!stream) {
    snprintf(err, err_size, "cannot create `%s`: %s", conn->path, strerror(errno));
    if (fd >= 0) close(fd);
    return NULL;
  }
  return &sink_new(stream, conn->path, format_of(conn->format), schema, intern)->base;
}

vpq_sink *vpq_file_open_stream_sink(FILE *stream, vpq_format format, const vpq_schema *schema,
                                    const vpq_intern *intern) {
  return &sink_new(stream, NULL, format, schema, intern)->base;
}
