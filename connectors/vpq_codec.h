/* vpq_codec.h — JSON-lines and CSV records to and from columnar rows.
 *
 * Decoding goes straight into the schema's columns with no DOM: the decoder scans a JSON
 * object once, matches each key against the schema (fields not in the schema are skipped
 * without allocation), and parses the value into the column's type. Strings are interned.
 * A JSON `null`, a missing field, or an empty CSV field is NULL. TIMESTAMP fields accept
 * epoch milliseconds (a JSON number, or a CSV integer) and ISO-8601 strings
 * ("2024-01-01T00:00:00Z", "2024-01-01 00:00:00.250+01:00", "2024-01-01"; no zone = UTC).
 * BIGINT accepts integral numbers only; DOUBLE accepts any number; BOOLEAN true/false.
 *
 * Encoding writes one JSON object per row, keys in schema order: TIMESTAMP as integer epoch
 * milliseconds, DOUBLE as the shortest text that reads back to the same double (with ".0"
 * when integral; NaN and infinities as null), NULL as null, strings escaped per RFC 8259.
 */
#ifndef VPQ_CODEC_H
#define VPQ_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/vpq_batch.h"
#include "../engine/vpq_buf.h"
#include "../engine/vpq_intern.h"
#include "../engine/vpq_plan.h"

typedef enum vpq_format { VPQ_FORMAT_JSON, VPQ_FORMAT_CSV } vpq_format;

typedef struct vpq_decoder vpq_decoder;

/* Creates a decoder for rows of `schema` (borrowed; must outlive the decoder). */
vpq_decoder *vpq_decoder_new(vpq_format format, const vpq_schema *schema, vpq_intern *intern);
void vpq_decoder_free(vpq_decoder *dec);

/* Rejects records longer than `max_bytes` ("record too large"); 0 (the default) = no limit. */
void vpq_decoder_set_max_bytes(vpq_decoder *dec, size_t max_bytes);

/* CSV only: reads the header line naming the columns (any order; unknown names skipped;
 * schema columns absent from the header are NULL). Returns false with a reason in `err`. */
bool vpq_decoder_csv_header(vpq_decoder *dec, const char *line, size_t len, char *err,
                            size_t err_size);

/* CSV only: whether the fields (the header read last, else the schema's order) include
 * schema column `col`. */
bool vpq_decoder_csv_has(const vpq_decoder *dec, int col);

/* Decodes one record (a JSON object, or a CSV line; no trailing newline) into row `row` of
 * `out` (every column's data and null mask at that row). Returns false with the reason in
 * `err` when the record is malformed: invalid JSON or UTF-8, not an object, a value of the
 * wrong type ("field `soc`: expected DOUBLE, got string \"high\""), wrong CSV field count,
 * a record over `max_bytes` (0 = no limit), or nesting deeper than 64. */
bool vpq_decoder_row(vpq_decoder *dec, const char *text, size_t len, vpq_batch *out, int row,
                     char *err, size_t err_size);

/* JSON lines: decodes the line at the start of text[0..avail) (up to its first '\n') into row
 * `row` when it is a common record, one flat object of plain ASCII values that the decoder's
 * fast path takes, and returns the line's length (without the '\n'); the row is then what
 * vpq_decoder_row would make of the line. Returns SIZE_MAX otherwise (a blank line, an error, an
 * unusual record, a decoder with a record limit): the caller finds the line itself and decodes
 * it with vpq_decoder_row. This saves a pass over the bytes to find the line first. */
size_t vpq_decoder_json_line(vpq_decoder *dec, const char *text, size_t avail, vpq_batch *out, int row);

/* JSON only: lets the decoder intern the plain strings of decoded rows later, all at once in
 * vpq_decoder_flush, so that their look-ups in its cache overlap instead of each waiting for
 * memory. The ids of STRING columns are then complete only after the flush; until it, the
 * record texts must stay readable and a decoded row must not be decoded into again. Interning
 * order (and so every id) stays that of a decoder that does not defer. Off by default. */
void vpq_decoder_defer_strings(vpq_decoder *dec, bool defer);

/* Interns the strings deferred since the last flush and stores their ids in their rows. */
void vpq_decoder_flush(vpq_decoder *dec);

/* Finds the top-level field `name` (its exact spelling, unescaped) of the JSON object
 * text[0..len), walking its fields and skipping their values, and returns where its value
 * starts, or NULL. It validates no more of the object than it walks. */
const char *vpq_json_field(const char *text, size_t len, const char *name);

/* Parses an ISO-8601 timestamp into epoch ms; false when it is not one. */
bool vpq_timestamp_parse(const char *text, size_t len, int64_t *ms);

/* Appends row `row` of `batch` as one JSON object (no newline) to `out`. */
void vpq_json_encode_row(vpq_buf *out, const vpq_schema *schema, const vpq_batch *batch,
                         int row, const vpq_intern *intern);

/* The `"name":` texts of a schema's columns, escaped once for writing many rows: key c is
 * text.data[ends[c - 1] .. ends[c]) (from 0 for c = 0). */
typedef struct vpq_json_keys {
  vpq_buf text;
  size_t *ends;
  int n;
} vpq_json_keys;

/* Encodes the keys of `schema` into `keys`. */
void vpq_json_keys_init(vpq_json_keys *keys, const vpq_schema *schema);

/* Frees the keys' storage. */
void vpq_json_keys_free(vpq_json_keys *keys);

/* vpq_json_encode_row with the keys encoded beforehand: the same text, faster. */
void vpq_json_encode_row_keyed(vpq_buf *out, const vpq_json_keys *keys, const vpq_schema *schema,
                               const vpq_batch *batch, int row, const vpq_intern *intern);

/* Appends `len` bytes as a JSON string literal (quotes included); invalid UTF-8 bytes are
 * written as \u00XX escapes of their byte value so that the output is always valid JSON. */
void vpq_json_encode_string(vpq_buf *out, const char *text, size_t len);

/* Appends a double as JSON (shortest round-trip text; ".0" when integral; null if not finite). */
void vpq_json_encode_double(vpq_buf *out, double value);

/* Appends the deletion of row `row`'s key from a table as a JSON object (no newline; `keys` as
 * vpq_json_encode_row_keyed's): its key and window columns as they are, every other one null. */
void vpq_json_encode_deletion(vpq_buf *out, const vpq_json_keys *keys, const vpq_schema *schema,
                              const vpq_batch *batch, int row, const vpq_intern *intern);

/* The same deletion as one CSV line (no newline), the other columns empty. */
void vpq_csv_encode_deletion(vpq_buf *out, const vpq_schema *schema, const vpq_batch *batch, int row,
                             const vpq_intern *intern);

/* Appends the CSV header line (no newline) naming the schema's columns. */
void vpq_csv_encode_header(vpq_buf *out, const vpq_schema *schema);

/* Appends row `row` as one CSV line (no newline): NULL as an empty field, strings quoted
 * when they hold a comma, quote or newline. */
void vpq_csv_encode_row(vpq_buf *out, const vpq_schema *schema, const vpq_batch *batch,
                        int row, const vpq_intern *intern);

#endif
