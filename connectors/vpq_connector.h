/* vpq_connector.h — the one small interface between the engine and the outside world.
 *
 * A source yields decoded rows in columnar batches; a sink takes rows. The engine opens them
 * through vpq_connector_open_source/_sink, which pick the implementation by the relation's
 * `connector` option (file today; kafka and sim plug in here), so the engine names none.
 *
 * Sources decode straight into the relation's schema columns. A record that cannot be decoded
 * never reaches the engine: the source reports it through `bad` (reason, origin, raw text)
 * and goes on. Every decoded row carries an origin (file line, or partition/offset) so that
 * late rows can be dead-lettered with where they came from.
 */
#ifndef VPQ_CONNECTOR_H
#define VPQ_CONNECTOR_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/vpq_batch.h"
#include "../engine/vpq_ckpt.h"
#include "../engine/vpq_intern.h"
#include "../engine/vpq_plan.h"

/* Called for each record a source cannot decode: `reason` says why ("invalid JSON at byte
 * 17", "field soc: expected DOUBLE, got string"), `raw` is the record's bytes. */
typedef void (*vpq_bad_record_fn)(void *ctx, const char *reason, vpq_origin origin,
                                  const char *raw, size_t raw_len);

typedef struct vpq_source vpq_source;
typedef struct vpq_source_vt {
  /* Decodes up to out->cap rows into `out` (columns typed as the schema; out->n set; ts, wm
   * and diff are left to the engine) and their origins into origins[]. Returns false with
   * *done = true when the (bounded) source is exhausted; false with *done = false when
   * nothing is available now. */
  bool (*read)(vpq_source *src, vpq_batch *out, vpq_origin *origins, bool *done);
  /* Formats an origin for messages: "telemetry.jsonl:12" or "vpp.telemetry/3/1041". */
  void (*format_origin)(const vpq_source *src, vpq_origin origin, char *buf, size_t size);
  /* Closes the source and frees it. */
  void (*close)(vpq_source *src);
  /* Optional (NULL: nothing to commit): every row with event time before `safe_ts` has had
   * all its effects written, so the source may record (commit) that it need not be read again. */
  void (*commit)(vpq_source *src, int64_t safe_ts);
  /* Optional (NULL: the source cannot resume; a checkpointed run refuses it): writes where
   * reading must resume so that every row after the checkpoint is read again and none
   * before it. `unread[0..nunread)` are the origins of rows read but not yet processed
   * (they are read again). */
  void (*save)(const vpq_source *src, vpq_ckpt_out *out, const vpq_origin *unread, int nunread);
  /* Optional: resumes reading where `save` said. False + err when the position does not fit
   * the input (a file shorter than the position, an unknown partition). */
  bool (*restore)(vpq_source *src, vpq_ckpt_in *in, char *err, size_t err_size);
  /* Optional: how many records the source has not read yet (a Kafka consumer's lag over the
   * partitions it reads, from the end offsets it last heard of); -1 when it does not know. */
  int64_t (*lag)(const vpq_source *src);
  /* Optional (NULL: never): true while the source has records in `partition` (-1: in any
   * partition it reads) that it knows of and has not read yet, or while it cannot read yet (a
   * consumer still joining its group). Such a partition is not idle, however long it has sent
   * nothing; one whose position or end is not known yet is not behind. */
  bool (*behind)(const vpq_source *src, int partition);
} vpq_source_vt;

struct vpq_source {
  const vpq_source_vt *vt;
  bool bounded;
  bool stamps_rows; /* read() fills out->ts with each record's own time (Kafka message time) */
  int partitions;   /* partitions whose watermarks are tracked apart (0: one for the source) */
  const bool *owned; /* per partition: read by this instance now (NULL: all); a partition another
                        group member reads does not hold this one's watermark back */
  uint64_t assignments; /* how many times a consumer group has given this member partitions */
  bool awaiting_partitions; /* read by a consumer group that has not given this member any yet */
  bool withdrawing;     /* the last read() holds only the retractions and losses of partitions a
                           rebalance took away (an exchange reader: vpq_runtime.withdrawing) */
};

typedef struct vpq_sink vpq_sink;
typedef struct vpq_sink_vt {
  /* Writes rows `rows[0..n)` of `batch`, whose columns follow `schema`. A row whose diff is
   * negative deletes its key from a table: written as the key with no value (a Kafka tombstone;
   * in a file, the key and window columns with every other column NULL). Returns false and fills `err` on
   * an I/O error. */
  bool (*write)(vpq_sink *sink, const vpq_batch *batch, const int *rows, int n, char *err,
                size_t err_size);
  /* Flushes buffered output. */
  bool (*flush)(vpq_sink *sink, char *err, size_t err_size);
  /* Flushes, closes and frees. */
  void (*close)(vpq_sink *sink);
  /* Optional (checkpoints; NULL: the sink is at-least-once): makes the output written so far
   * durable or held, and writes what the sink needs to resume exactly at checkpoint `epoch`
   * (a file's length; a Kafka sink's output held for this epoch). False + err on failure (the
   * checkpoint is then not taken). */
  bool (*save)(vpq_sink *sink, uint64_t epoch, vpq_ckpt_out *out, char *err, size_t err_size);
  /* Optional: checkpoint `epoch` is durable: output held for it may go out. */
  bool (*commit)(vpq_sink *sink, char *err, size_t err_size);
  /* Optional: resumes from what `save` wrote: a file is cut back to its length, a Kafka sink
   * writes the held output its topic does not hold yet. False + err when it cannot. */
  bool (*restore)(vpq_sink *sink, vpq_ckpt_in *in, char *err, size_t err_size);
} vpq_sink_vt;

struct vpq_sink {
  const vpq_sink_vt *vt;
  size_t held_bytes; /* output held until the next checkpoint (exactly-once Kafka sinks) */
  int64_t resumed_present; /* restore: held rows the output already had */
  int64_t resumed_written; /* restore: held rows written by the restore */
  int64_t replayed_present; /* rows replayed after a restore that the output had from the run before */
  bool restored_older;      /* set before restore: the checkpoint is older than one that could not be
                               read, so the output may hold rows from after it */
  int64_t refused;         /* rows the output cannot take (a Kafka message too large): counted, not written */
  char refused_reason[256]; /* why the first was refused */
};

/* Opens the source of relation `rel` (rel->is_source). `bad` receives undecodable records.
 * Returns NULL and fills `err` when it cannot be opened (missing file, unknown connector). */
vpq_source *vpq_connector_open_source(const vpq_relation *rel, vpq_intern *intern,
                                      vpq_bad_record_fn bad, void *bad_ctx, char *err,
                                      size_t err_size);

/* Opens a sink writing rows of `schema` as `conn` says (format json or csv). Returns NULL and
 * fills `err` when it cannot be opened. */
vpq_sink *vpq_connector_open_sink(const vpq_plan_connector *conn, const vpq_schema *schema,
                                  const vpq_intern *intern, char *err, size_t err_size);

/* Opens a sink that writes JSON lines to an already open stdio stream (stdout). */
vpq_sink *vpq_connector_open_stdout(const vpq_schema *schema, const vpq_intern *intern);

/* ===== Exchanges: repartitioning between the members of a consumer group =====
 *
 * An exchange carries the input rows of a query from every member of a group to the member
 * that owns their key (the engine plans them: vpq_repartition.h). Its writing end is a sink
 * whose batches hold the key columns first, then the row (with its event time, watermark,
 * diff and origin); it also announces its writer's watermark to every partition. Its reading
 * end is a source, a member of the group reading the exchange, whose rows come with event
 * time, watermark, diff and origin already set: a partition's watermark is the lowest that
 * its live writers announced, the source's the lowest over the partitions it reads. */
enum { VPQ_EXCHANGE_MAX_SIDES = 4 };

typedef struct vpq_exchange_spec {
  const char *topic;       /* the exchange's topic; its readers' consumer group has the same name */
  const vpq_schema *keys;  /* the key columns a written batch starts with (none: one key for all) */
  const vpq_schema *rows;  /* the row columns that follow them: what the reading end yields (an
                              exchange of several inputs, a join's or a SCHEDULE's: their columns
                              one input after the other, and the reading end adds a last BIGINT
                              column: each row's side) */
  int nsides;              /* an exchange of several inputs: how many (at most
                              VPQ_EXCHANGE_MAX_SIDES); 0: one input */
  int side_first[VPQ_EXCHANGE_MAX_SIDES + 1]; /* where side s's columns start in `rows`
                              ([nsides]: rows->ncols) */
  int side;                /* the writing end of an exchange of several inputs: the side it writes
                              (its columns, after the key columns) */
  bool side_lookup[VPQ_EXCHANGE_MAX_SIDES]; /* a side of table changes: its rows hold no
                              watermark back (the table of a join, SCHEDULE's fleet) */
  bool side_dedup[VPQ_EXCHANGE_MAX_SIDES];  /* `dedup` for a side's rows */
  const int *upsert_keys;  /* rows upsert a table keyed by these columns of `rows`, retractions
                              delete (NULL: rows carry their diff as they are) */
  int nupsert_keys;
  bool dedup;              /* one input: a row per source origin (a partition keeps the first it reads) */
  bool tell_partitions;    /* an exchange of one input: the reading end adds two BIGINT columns, the
                              exchange partition each row was read from and the watermark to judge
                              it late by (its writer's when that member reads its whole source
                              alone, else the lowest timestamp), and tells each partition
                              it no longer reads from where it was (a rebalance gave it to another
                              member, or it is read again from its committed offset) by a row
                              with diff 0 naming it in that column (its other columns NULL),
                              before any later row of that partition; its watermark stays where
                              it was until it has told every such partition */
  int32_t partitions;      /* the topic is created with this many partitions (0: the cluster's default) */
  const char *sink_id;     /* the writing end is exactly-once under this identity (a checkpointed run); NULL: at once */
  uint64_t writer;         /* the writing end's identity among the topic's writers */
  int64_t silence_ms;      /* the longest the writing end stays silent while it runs (its flush interval) */
  int64_t idle_timeout_ms; /* a writer silent this long (plus its silence) stops holding watermarks back */
  const vpq_source *from;  /* the writing end: the source whose rows it writes (NULL: not known) */
} vpq_exchange_spec;

/* Opens the writing end of an exchange on the cluster of `conn` (a Kafka source's or sink's
 * connector: its `kafka.<property>` options). NULL + err on failure (a connector without
 * exchanges included). */
vpq_sink *vpq_connector_open_exchange_writer(const vpq_plan_connector *conn, const vpq_exchange_spec *spec,
                                             const vpq_intern *intern, char *err, size_t err_size);

/* Announces the writer's watermark `wm` to every partition of its exchange, in order with the
 * rows written before: VPQ_TS_MAX when it has ended; VPQ_TS_MIN while it has none yet (it is
 * there: readers wait for it as a source waits for a partition without rows, for
 * idle_timeout). False + err on failure. */
bool vpq_connector_exchange_announce(vpq_sink *writer, int64_t wm, char *err, size_t err_size);

/* Opens the reading end of an exchange on the cluster of `conn`. NULL + err on failure. */
vpq_source *vpq_connector_open_exchange_reader(const vpq_plan_connector *conn, const vpq_exchange_spec *spec,
                                               vpq_intern *intern, vpq_bad_record_fn bad, void *bad_ctx, char *err,
                                               size_t err_size);

/* The reading end's watermark at processing time `now_ms` (writers idle by then no longer hold
 * it back); it never goes down. */
int64_t vpq_connector_exchange_watermark(vpq_source *reader, int64_t now_ms);

/* A dead-letter output: one JSON object per line with `reason`, `origin` and `raw` (the
 * record's text, for malformed records) or `row` (the decoded row, for late rows). Lines are
 * held until vpq_dead_letter_flush and then written ordered by their record's offset (the
 * source line or offset), so malformed records and late rows of a batch come out in input
 * order. */
typedef struct vpq_dead_letter vpq_dead_letter;

/* Where a dead-letter output's lines go (a file, or a Kafka topic, one message per line). */
typedef struct vpq_line_writer {
  bool (*write)(void *ctx, const char *line, size_t len, char *err, size_t err_size);
  bool (*flush)(void *ctx, char *err, size_t err_size);
  void (*close)(void *ctx);
  void *ctx;
} vpq_line_writer;

/* Opens the dead-letter output at `target` (a file path): emptied, or with `resume` (a run
 * restoring a checkpoint) kept for vpq_dead_letter_restore. NULL + err on failure. */
vpq_dead_letter *vpq_dead_letter_open(const char *target, bool resume, char *err, size_t err_size);
/* Writes to a checkpoint where the output stands (a file's length; nothing to resume for a
 * topic), after vpq_dead_letter_flush_read. */
void vpq_dead_letter_save(const vpq_dead_letter *dl, vpq_ckpt_out *out);
/* Resumes from what vpq_dead_letter_save wrote: a file is cut back to its length at the
 * checkpoint, so the dead letters of the rows read again are not written twice (a topic gets
 * them again). False + err when the file cannot be cut. */
bool vpq_dead_letter_restore(vpq_dead_letter *dl, vpq_ckpt_in *in, char *err, size_t err_size);
/* Opens a dead-letter output that writes each line (without its newline) as a message to the
 * topic `source->dead_letter` of the source's Kafka cluster. NULL + err on failure. */
vpq_dead_letter *vpq_dead_letter_open_kafka(const vpq_plan_connector *source, char *err, size_t err_size);
/* The most bytes of a malformed record a dead letter keeps in `raw` (64 KiB: escaped, at most
 * 384 KiB); a longer record's dead letter also has `raw_bytes`, its full length. */
enum { VPQ_DEAD_LETTER_RAW_MAX = 64 << 10 };

/* Holds a malformed record: `reason` "<category>: <detail>", its origin text and raw bytes (the
 * first VPQ_DEAD_LETTER_RAW_MAX of them, cut before a UTF-8 continuation byte). Returns true. */
bool vpq_dead_letter_raw(vpq_dead_letter *dl, vpq_origin at, const char *reason, const char *origin,
                         const char *raw, size_t raw_len);
/* Holds a decoded row (a late row) with its reason and origin text. False when the same line
 * is held already for the same record since the last flush (a row late for two queries that
 * see it alike, within one push). */
bool vpq_dead_letter_row(vpq_dead_letter *dl, vpq_origin at, const char *reason, const char *origin,
                         const vpq_schema *schema, const vpq_batch *batch, int row,
                         const vpq_intern *intern);
/* Writes every held line, ordered by offset (stable for equal offsets). */
void vpq_dead_letter_flush(vpq_dead_letter *dl);
/* At a checkpoint: writes the held lines of the records the source has read for good, all but
 * those at or after the first of `unread` (the rows read but not processed yet, which a restore
 * reads again) in their partition, which stay held. */
void vpq_dead_letter_flush_read(vpq_dead_letter *dl, const vpq_origin *unread, int nunread);
/* Why the output refused a line (the first time), or NULL while it has taken every one: dead
 * letters it lost, so no checkpoint may count them written and the run fails. */
const char *vpq_dead_letter_error(const vpq_dead_letter *dl);
/* Once the output has refused a line: how many it refused and holds, none of which it writes
 * (0 before). */
int64_t vpq_dead_letter_unwritten(const vpq_dead_letter *dl);
/* Flushes and closes. */
void vpq_dead_letter_close(vpq_dead_letter *dl);

/* Set (by vpq_interrupt, from a signal handler) to give up requests repeated while a cluster
 * does not answer. */
extern volatile sig_atomic_t vpq_connector_interrupted;

/* The first of the `n` origins `unread` in each partition, into `first` (room for n); their
 * number. A record at or after its partition's first unread origin is read again by a restore. */
int vpq_origins_first_unread(const vpq_origin *unread, int n, vpq_origin *first);
/* Whether the record at `at` comes before the first unread origin of its partition (`first`,
 * from vpq_origins_first_unread): read for good. */
bool vpq_origin_read(vpq_origin at, const vpq_origin *first, int nfirst);

#endif
