/* vpq_file.h — the file connector (private to connectors/): JSON-lines and CSV files as
 * bounded sources, and buffered JSON-lines/CSV writers for files and stdio streams. */
#ifndef VPQ_FILE_H
#define VPQ_FILE_H

#include <stdbool.h>
#include <stdio.h>

#include "../vpq_codec.h"
#include "../vpq_connector.h"

/* Opens `rel->source.path` as a bounded source (format json or csv). NULL + err when the file
 * cannot be read or a CSV header is bad. */
vpq_source *vpq_file_open_source(const vpq_relation *rel, vpq_intern *intern, vpq_bad_record_fn bad,
                                 void *bad_ctx, char *err, size_t err_size);

/* Creates (truncates) `conn->path`, making its folders, and writes rows to it. */
vpq_sink *vpq_file_open_sink(const vpq_plan_connector *conn, const vpq_schema *schema,
                             const vpq_intern *intern, char *err, size_t err_size);

/* A sink writing to an open stream; every write() reaches the stream at once. The stream is
 * not closed with the sink. */
vpq_sink *vpq_file_open_stream_sink(FILE *stream, vpq_format format, const vpq_schema *schema,
                                    const vpq_intern *intern);

/* Creates the folders leading to `path` (like mkdir -p of its dirname). */
bool vpq_file_make_parents(const char *path, char *err, size_t err_size);

#endif
