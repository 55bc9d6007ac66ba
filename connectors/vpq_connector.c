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
 */
#include "vpq_connector.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file/vpq_file.h"
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
    snprintf(err, err_size, "connector `%s` cannot be read from", c->name);
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

/* ===== Dead letters ===== */

struct vpq_dead_letter {
  FILE *stream;
  vpq_buf line;
};

vpq_dead_letter *vpq_dead_letter_open(const char *target, char *err, size_t err_size) {
  if (!vpq_file_make_parents(target, err, err_size)) return NULL;
  FILE *stream = fopen(target, "w");
  if (!stream) {
    snprintf(err, err_size, "cannot create `%s`: %s", target, strerror(errno));
    return NULL;
  }
  vpq_dead_letter *dl = calloc(1, sizeof *dl);
  if (!dl) abort();
  dl->stream = stream;
  return dl;
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

static void end_line(vpq_dead_letter *dl) {
  vpq_buf_puts(&dl->line, "}\n");
  fwrite(dl->line.data, 1, dl->line.len, dl->stream);
}

void vpq_dead_letter_raw(vpq_dead_letter *dl, const char *reason, const char *origin, const char *raw,
                         size_t raw_len) {
  begin_line(dl, reason, origin);
  vpq_buf_puts(&dl->line, ",\"raw\":");
  vpq_json_encode_string(&dl->line, raw, raw_len);
  end_line(dl);
}

void vpq_dead_letter_row(vpq_dead_letter *dl, const char *reason, const char *origin, const vpq_schema *schema,
                         const vpq_batch *batch, int row, const vpq_intern *intern) {
  begin_line(dl, reason, origin);
  vpq_buf_puts(&dl->line, ",\"row\":");
  vpq_json_encode_row(&dl->line, schema, batch, row, intern);
  end_line(dl);
}

void vpq_dead_letter_close(vpq_dead_letter *dl) {
  if (!dl) return;
  fclose(dl->stream);
  vpq_buf_free(&dl->line);
  free(dl);
}
