/* vpq_connector.c — the connector registry, the stdout sink and the dead-letter writer.
 *
 * The engine names no connector: it asks for a relation's source or sink, and the registry
 * below picks the implementation by the `connector` option. A connector is one row of
 * `connectors[]`; one that only reads (or only writes) leaves the other opener NULL.
 *
 * Dead letters are JSON lines. A malformed record's reason ("type mismatch: field `soc`: ...")
 * is split at its first ": " into `reason` (the category) and `detail`:
 *
 *   {"reason":"invalid JSON","detail":"unexpected end of input","origin":"t.jsonl:7","raw":"{\"a\":"}
 *   {"reason":"late","origin":"t.jsonl:9","row":{"device_id":"b1","ts":1700000000000}}
 *
 * Exchanges (repartitioning) exist for Kafka only: the functions below check the connector and
 * hand over to vpq_kafka_repartition.c.
 *
 * A hostile record may be huge (and escaping invalid bytes makes its text up to 6 times longer),
 * so only its first VPQ_DEAD_LETTER_RAW_MAX bytes are kept, with `raw_bytes` giving its length:
 * every dead letter then fits in one Kafka message (1 MB by default).
 */
#include "vpq_connector.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file/vpq_file.h"
#include "kafka/vpq_kafka.h"
#include "kafka/vpq_kafka_repartition.h"
#include "sim/vpq_sim_connector.h"
#include "vpq_codec.h"

/* ===== Registry ===== */

typedef struct connector_entry {
  const char *name;
  vpq_source *(*open_source)(const vpq_relation *rel, vpq_intern *intern, vpq_bad_record_fn bad, void *bad_ctx,
                             char *err, size_t err_size);
  vpq_sink *(*open_sink)(const vpq_plan_connector *conn, const vpq_schema *schema, const vpq_intern *intern,
                         char *err, size_t err_size);
} connector_entry;

static const connector_entry connectors[] = {
    {"file", vpq_file_open_source, vpq_file_open_sink},
    {"kafka", vpq_kafka_open_source, vpq_kafka_open_sink},
    {"sim", vpq_sim_open_source, vpq_sim_open_sink},
};

enum { NCONNECTORS = sizeof connectors / sizeof connectors[0] };

/* Finds a connector by name; NULL with "connector `x` is not available (known: ...)" in err. */
static const connector_entry *find_connector(const char *name, char *err, size_t err_size) {
  for (int i = 0; i < NCONNECTORS; i++)
    if (name && strcmp(connectors[i].name, name) == 0) return &connectors[i];
  char known[256] = "";
  for (int i = 0; i < NCONNECTORS; i++) {
    size_t at = strlen(known);
    snprintf(known + at, sizeof known - at, "%s%s", i ? ", " : "", connectors[i].name);
  }
  snprintf(err, err_size, "connector `%s` is not available (known: %s)", name ? name : "", known);
  return NULL;
}

/* Checks the format option: json (the default) or csv. */
static bool check_format(const char *format, char *err, size_t err_size) {
  if (!format || strcmp(format, "json") == 0 || strcmp(format, "csv") == 0) return true;
  snprintf(err, err_size, "format `%s` is not supported (known: json, csv)", format);
  return false;
}

vpq_source *vpq_connector_open_source(const vpq_relation *rel, vpq_intern *intern, vpq_bad_record_fn bad,
                                      void *bad_ctx, char *err, size_t err_size) {
  const connector_entry *c = find_connector(rel->source.connector, err, err_size);
  if (!c || !check_format(rel->source.format, err, err_size)) return NULL;
  if (!c->open_source) {
    snprintf(err, err_size, "connector `%s` cannot be read from in this version of vpq", c->name);
    return NULL;
  }
  return c->open_source(rel, intern, bad, bad_ctx, err, err_size);
}

vpq_sink *vpq_connector_open_sink(const vpq_plan_connector *conn, const vpq_schema *schema,
                                  const vpq_intern *intern, char *err, size_t err_size) {
  const connector_entry *c = find_connector(conn->connector, err, err_size);
  if (!c || !check_format(conn->format, err, err_size)) return NULL;
  if (!c->open_sink) {
    snprintf(err, err_size, "connector `%s` cannot be written to", c->name);
    return NULL;
  }
  return c->open_sink(conn, schema, intern, err, err_size);
}

vpq_sink *vpq_connector_open_stdout(const vpq_schema *schema, const vpq_intern *intern) {
  return vpq_file_open_stream_sink(stdout, VPQ_FORMAT_JSON, schema, intern);
}

/* ===== Exchanges: Kafka is the one connector that has them ===== */

/* True when `conn` can carry an exchange; fills `err` otherwise. */
static bool exchange_connector(const vpq_plan_connector *conn, char *err, size_t err_size) {
  if (conn->connector && strcmp(conn->connector, "kafka") == 0) return true;
  snprintf(err, err_size, "repartitioning needs a Kafka cluster, not connector `%s`", conn->connector ? conn->connector : "");
  return false;
}

vpq_sink *vpq_connector_open_exchange_writer(const vpq_plan_connector *conn, const vpq_exchange_spec *spec,
                                             const vpq_intern *intern, char *err, size_t err_size) {
  if (!exchange_connector(conn, err, err_size)) return NULL;
  return vpq_kafka_open_exchange_writer(conn, spec, intern, err, err_size);
}

bool vpq_connector_exchange_announce(vpq_sink *writer, int64_t wm, char *err, size_t err_size) {
  return vpq_kafka_exchange_announce(writer, wm, err, err_size);
}

vpq_source *vpq_connector_open_exchange_reader(const vpq_plan_connector *conn, const vpq_exchange_spec *spec,
                                               vpq_intern *intern, vpq_bad_record_fn bad, void *bad_ctx, char *err,
                                               size_t err_size) {
  if (!exchange_connector(conn, err, err_size)) return NULL;
  return vpq_kafka_open_exchange_reader(conn, spec, intern, bad, bad_ctx, err, err_size);
}

int64_t vpq_connector_exchange_watermark(vpq_source *reader, int64_t now_ms) {
  return vpq_kafka_exchange_watermark(reader, now_ms);
}

/* ===== Dead letters ===== */

/* A held line: its order key, the partition of its record, and where its text starts in
 * `held`. */
typedef struct held_line {
  int64_t order;
  int32_t partition;
  size_t start, len;
  size_t seq; /* arrival, for a stable sort */
  bool row;   /* a row's line (deduplicated), not a raw record's */
} held_line;

/* Slots of the table of row lines written (end_line): a row late for a query that reads it back
 * from a repartition topic comes after its line for another query was written, a few batches
 * later. Direct-mapped, so a check costs one slot even in a flood of late rows; a line whose
 * slot a later one took is no longer recognised. A power of two. */
enum { WRITTEN_KEPT = 4096 };

struct vpq_dead_letter {
  vpq_line_writer out;
  FILE *file;     /* the output when it is a file (NULL: a Kafka topic) */
  size_t fresh;   /* lines[fresh..] were held since the last flush (the rows of one push) */
  int64_t failed; /* lines the output refused (reported once) */
  char error[256]; /* why the first one was refused */
  vpq_buf line;
  vpq_buf held;    /* the text of the held lines, back to back */
  held_line *lines;
  size_t nlines, cap;
  uint64_t written[WRITTEN_KEPT]; /* row lines written: line_hash in slot hash % WRITTEN_KEPT, 0 for none */
};

/* A row line's hash with its record's place (never 0). */
static uint64_t line_hash(const char *text, size_t len, int32_t partition, int64_t order) {
  uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)order ^ ((uint64_t)(uint32_t)partition << 40);
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)text[i]) * 0x100000001b3ull;
  return h ? h : 1;
}

static bool file_write(void *ctx, const char *line, size_t len, char *err, size_t err_size) {
  if (fwrite(line, 1, len, ctx) == len && fputc('\n', ctx) != EOF) return true;
  snprintf(err, err_size, "%s", strerror(errno));
  return false;
}

static bool file_flush(void *ctx, char *err, size_t err_size) {
  if (fflush(ctx) == 0) return true;
  snprintf(err, err_size, "%s", strerror(errno));
  return false;
}

static void file_close(void *ctx) { fclose(ctx); }

static vpq_dead_letter *dead_letter_new(vpq_line_writer out) {
  vpq_dead_letter *dl = calloc(1, sizeof *dl);
  if (!dl) abort();
  dl->out = out;
  return dl;
}

vpq_dead_letter *vpq_dead_letter_open(const char *target, bool resume, char *err, size_t err_size) {
  if (!vpq_file_make_parents(target, err, err_size)) return NULL;
  /* A run resuming from a checkpoint keeps what the file holds (restore cuts it back). */
  int fd = resume ? open(target, O_RDWR | O_CREAT | O_CLOEXEC, 0666) : -1;
  FILE *stream = resume ? (fd >= 0 ? fdopen(fd, "r+") : NULL) : fopen(target, "w");
  if (!stream || (resume && fseeko(stream, 0, SEEK_END) != 0)) {
    snprintf(err, err_size, "cannot create `%s`: %s", target, strerror(errno));
    if (stream) fclose(stream);
    else if (fd >= 0) close(fd);
    return NULL;
  }
  vpq_dead_letter *dl = dead_letter_new((vpq_line_writer){file_write, file_flush, file_close, stream});
  dl->file = stream;
  return dl;
}

void vpq_dead_letter_save(const vpq_dead_letter *dl, vpq_ckpt_out *out) {
  const off_t at = dl->file ? ftello(dl->file) : -1;
  vpq_ckpt_put_u64(out, at < 0 ? UINT64_MAX : (uint64_t)at);
}

bool vpq_dead_letter_restore(vpq_dead_letter *dl, vpq_ckpt_in *in, char *err, size_t err_size) {
  const uint64_t length = vpq_ckpt_get_u64(in);
  if (!dl->file || length == UINT64_MAX) return true;
  /* Cut back to the checkpoint's length. A file shorter than that (rotated, say, or deleted) is
   * kept, and the log says that it lacks dead letters the run counts (audit 42). */
  if (fseeko(dl->file, 0, SEEK_END) != 0 ||
      (ftello(dl->file) > (off_t)length && (ftruncate(fileno(dl->file), (off_t)length) != 0 ||
                                             fseeko(dl->file, 0, SEEK_END) != 0))) {
    snprintf(err, err_size, "dead letters: %s", strerror(errno));
    return false;
  }
  const off_t held = ftello(dl->file);
  if (held >= 0 && held < (off_t)length)
    fprintf(stderr,
            "vpq: dead-letter output: the file holds %lld bytes, fewer than the %llu the checkpoint wrote "
            "(rotated, or changed outside vpq): dead letters from before the checkpoint are missing from it\n",
            (long long)held, (unsigned long long)length);
  return true;
}

vpq_dead_letter *vpq_dead_letter_open_kafka(const vpq_plan_connector *source, char *err, size_t err_size) {
  vpq_line_writer out;
  if (!vpq_kafka_open_line_writer(source, source->dead_letter, &out, err, err_size)) return NULL;
  return dead_letter_new(out);
}

/* Starts a line: {"reason":"<category>"[,"detail":"<rest>"],"origin":"<origin>" */
static void begin_line(vpq_dead_letter *dl, const char *reason, const char *origin) {
  dl->line.len = 0;
  const char *split = strstr(reason, ": ");
  vpq_buf_puts(&dl->line, "{\"reason\":");
  vpq_json_encode_string(&dl->line, reason, split ? (size_t)(split - reason) : strlen(reason));
  if (split) {
    vpq_buf_puts(&dl->line, ",\"detail\":");
    vpq_json_encode_string(&dl->line, split + 2, strlen(split + 2));
  }
  vpq_buf_puts(&dl->line, ",\"origin\":");
  vpq_json_encode_string(&dl->line, origin, strlen(origin));
}

/* Holds the line being built. With `dedupe`, false (nothing held) when the same line is held
 * already for the same record since the last flush, or was written (dl->written):
 * one row late for two queries that see it alike is one dead letter (both see it within one
 * push, before the flush that follows it, unless one reads it back from a repartition topic). */
static bool end_line(vpq_dead_letter *dl, vpq_origin origin, bool dedupe) {
  vpq_buf_puts(&dl->line, "}");
  for (size_t i = dl->fresh; dedupe && i < dl->nlines; i++) {
    const held_line *held = &dl->lines[i];
    if (held->order == origin.offset && held->partition == origin.partition && held->len == dl->line.len &&
        memcmp(dl->held.data + held->start, dl->line.data, dl->line.len) == 0)
      return false;
  }
  if (dedupe) {
    const uint64_t h = line_hash(dl->line.data, dl->line.len, origin.partition, origin.offset);
    if (dl->written[h % WRITTEN_KEPT] == h) return false;
  }
  if (dl->nlines == dl->cap) {
    dl->cap = dl->cap ? dl->cap * 2 : 64;
    dl->lines = realloc(dl->lines, sizeof *dl->lines * dl->cap);
    if (!dl->lines) abort();
  }
  dl->lines[dl->nlines] = (held_line){origin.offset, origin.partition, dl->held.len, dl->line.len, dl->nlines, dedupe};
  dl->nlines++;
  vpq_buf_append(&dl->held, dl->line.data, dl->line.len);
  return true;
}

static int held_cmp(const void *a, const void *b) {
  const held_line *x = a, *y = b;
  if (x->order != y->order) return x->order < y->order ? -1 : 1;
  return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

volatile sig_atomic_t vpq_connector_interrupted;

int vpq_origins_first_unread(const vpq_origin *unread, int n, vpq_origin *first) {
  int nfirst = 0;
  for (int i = 0; i < n; i++) {
    int f = 0;
    while (f < nfirst && first[f].partition != unread[i].partition) f++;
    if (f == nfirst) first[nfirst++] = unread[i];
    else if (unread[i].offset < first[f].offset) first[f].offset = unread[i].offset;
  }
  return nfirst;
}

bool vpq_origin_read(vpq_origin at, const vpq_origin *first, int nfirst) {
  for (int i = 0; i < nfirst; i++)
    if (first[i].partition == at.partition && first[i].offset <= at.offset) return false;
  return true;
}

/* Whether a held line is to be written now: its record is before the first unread one of its
 * partition (`first`: vpq_origins_first_unread). */
static bool line_due(const held_line *line, const vpq_origin *first, int nfirst) {
  return vpq_origin_read((vpq_origin){line->partition, line->order}, first, nfirst);
}

/* Counts `lines` lines the output refused; the first time, keeps and reports why. */
static void refused(vpq_dead_letter *dl, const char *why, int64_t lines) {
  const bool first = !dl->failed;
  dl->failed += lines;
  if (!first) return;
  snprintf(dl->error, sizeof dl->error, "%s", why);
  fprintf(stderr, "vpq: dead-letter output: %s\n", why);
}

/* Writes the held lines that are due (line_due), in order; the others stay held. Once the
 * output has refused a line it is given no more: the run stops without them. */
static void flush_due(vpq_dead_letter *dl, const vpq_origin *unread_rows, int nunread_rows) {
  if (!dl || dl->failed) return;
  dl->fresh = dl->nlines;
  if (!dl->nlines) return;
  vpq_origin *unread = nunread_rows ? malloc(sizeof *unread * (size_t)nunread_rows) : NULL;
  if (nunread_rows && !unread) abort();
  const int nunread = vpq_origins_first_unread(unread_rows, nunread_rows, unread);
  size_t due = 0;
  for (size_t i = 0; i < dl->nlines && !due; i++) due += line_due(&dl->lines[i], unread, nunread);
  if (!due) {
    free(unread);
    return;
  }
  qsort(dl->lines, dl->nlines, sizeof *dl->lines, held_cmp);
  size_t written = 0, kept = 0, lost = 0;
  char err[256];
  vpq_buf rest = {0};
  for (size_t i = 0; i < dl->nlines; i++) {
    held_line *line = &dl->lines[i];
    if (!line_due(line, unread, nunread)) {
      /* Kept: its text moves to the front of the buffer. */
      size_t start = rest.len;
      vpq_buf_append(&rest, dl->held.data + line->start, line->len);
      line->start = start;
      dl->lines[kept++] = *line;
      continue;
    }
    if (!dl->out.write(dl->out.ctx, dl->held.data + line->start, line->len, err, sizeof err)) {
      refused(dl, err, 1);
      lost++;
    }
    if (line->row) {
      const uint64_t h = line_hash(dl->held.data + line->start, line->len, line->partition, line->order);
      dl->written[h % WRITTEN_KEPT] = h;
    }
    written++;
  }
  dl->nlines = dl->fresh = kept;
  vpq_buf_free(&dl->held);
  dl->held = rest;
  free(unread);
  /* A buffered output refuses at the flush: every line it took since is lost. */
  if (written > lost && !dl->out.flush(dl->out.ctx, err, sizeof err)) refused(dl, err, (int64_t)(written - lost));
}

void vpq_dead_letter_flush(vpq_dead_letter *dl) { flush_due(dl, NULL, 0); }

const char *vpq_dead_letter_error(const vpq_dead_letter *dl) { return dl && dl->failed ? dl->error : NULL; }

int64_t vpq_dead_letter_unwritten(const vpq_dead_letter *dl) {
  return dl && dl->failed ? dl->failed + (int64_t)dl->nlines : 0;
}

void vpq_dead_letter_flush_read(vpq_dead_letter *dl, const vpq_origin *unread, int nunread) {
  flush_due(dl, unread, nunread);
}

bool vpq_dead_letter_raw(vpq_dead_letter *dl, vpq_origin at, const char *reason, const char *origin, const char *raw,
                         size_t raw_len) {
  begin_line(dl, reason, origin);
  size_t keep = raw_len;
  if (keep > VPQ_DEAD_LETTER_RAW_MAX) {
    /* Cut before a UTF-8 continuation run (at most 3 bytes back: invalid text may be all of them). */
    keep = VPQ_DEAD_LETTER_RAW_MAX;
    for (int back = 0; back < 3 && ((unsigned char)raw[keep] & 0xC0) == 0x80; back++) keep--;
  }
  vpq_buf_puts(&dl->line, ",\"raw\":");
  vpq_json_encode_string(&dl->line, raw, keep);
  if (keep < raw_len) vpq_buf_printf(&dl->line, ",\"raw_bytes\":%zu", raw_len);
  return end_line(dl, at, false);
}

bool vpq_dead_letter_row(vpq_dead_letter *dl, vpq_origin at, const char *reason, const char *origin,
                         const vpq_schema *schema, const vpq_batch *batch, int row, const vpq_intern *intern) {
  begin_line(dl, reason, origin);
  vpq_buf_puts(&dl->line, ",\"row\":");
  vpq_json_encode_row(&dl->line, schema, batch, row, intern);
  return end_line(dl, at, true);
}

void vpq_dead_letter_close(vpq_dead_letter *dl) {
  if (!dl) return;
  vpq_dead_letter_flush(dl);
  dl->out.close(dl->out.ctx);
  vpq_buf_free(&dl->line);
  vpq_buf_free(&dl->held);
  free(dl->lines);
  free(dl);
}
