/* vpq_kafka_repartition.c — exchanges over Kafka (vpq_kafka_repartition.h).
 *
 *   member A: rows ─► writer ─┐                                    ┌─► reader (partitions 0, 1) ─► aggregate
 *                             ├─► <prefix>.<relation>.repartition ─┤
 *   member B: rows ─► writer ─┘                                    └─► reader (partitions 2, 3) ─► aggregate
 *
 *   member A: left  ─► writer (side 0) ─┐
 *             right ─► writer (side 1) ─┤                                         ┌─► reader (0, 1) ─► join
 *                                       ├─► <prefix>.<relation>.join.repartition ─┤
 *   member B: left  ─► writer (side 0) ─┤                                         └─► reader (2, 3) ─► join
 *             right ─► writer (side 1) ─┘
 *
 * Messages. Key: the row's key columns, written as a Kafka sink writes keys (the empty key
 * when the query has none: a global aggregate or a ROLLUP goes to one partition); partition:
 * murmur2 of the key, as Java clients; timestamp: the row's event time. Value (version 3,
 * integers little-endian):
 *
 *   u8 'V' | u8 2 | u8 kind | u8 side | u32 layout | u64 writer | i64 watermark | u32 silence (ms)
 *   kind ROW (+1) or RETRACTION (-1), then: i64 event time | i32 origin partition
 *     | i64 origin offset | per column: u8 1 (NULL), or u8 0 and the value: 8 bytes (BIGINT,
 *     TIMESTAMP and BOOLEAN as int64, DOUBLE as its IEEE bits), or a u32 length and the bytes
 *     (STRING)
 *   kind WATERMARK: nothing more; written to every partition (a writer that has no watermark
 *     yet announces VPQ_TS_MIN: it is there, and will write)
 *
 * `side`'s high bit (SOLE_READER) on a row says its writer reads every partition of its source
 * alone since its run started: its watermark is then the one process's, by which the reading
 * aggregation judges the row late (it is passed on in a column after the partition's). The
 * reader's own watermark lags the writers' (announcements every 200 ms, the lowest of them), and
 * rows late at the source were taken into windows one process closes first (audit 42). Under
 * several members no one writer's watermark is the process's, and rows are judged by the
 * reader's, as before.
 *
 * `side` (its other bits) is 0 but in an exchange of several inputs: a join's carries both sides of the join,
 * keyed by the join key (partition i holds both sides' rows of the same keys, so the member
 * reading it joins them all), a SCHEDULE's its inputs read by a group (fleet, forecast,
 * prices), all under one key. There a row message has the columns of its side (0: a join's
 * left, 1: its right), and the reader yields the inputs' columns one after the other, the
 * other sides' NULL, and the side in a last column. `layout` hashes the row columns' names
 * and types (all the inputs' in an exchange of several; a reader of another query refuses the
 * message as malformed); `writer`
 * names the member (and side) that wrote it; `watermark` is that member's watermark when it
 * wrote the message (for a row: the row's own); `silence` is the longest the writer stays
 * quiet while it runs (its flush interval: the checkpoint interval when it is exactly-once and
 * holds its messages until checkpoints).
 *
 * Watermarks. A reader keeps, per partition it reads, the writers it has heard there and the
 * newest watermark of each. The partition's watermark is the lowest of its live writers'. A
 * writer silent for idle_timeout plus its silence, while the partition has nothing unread,
 * no longer holds it back; a writer that announced VPQ_TS_MAX has ended. A writer without a
 * watermark yet (its input has had no row) holds the partition back for idle_timeout from when
 * it was first heard or the partition's first row, whichever is later: as a source partition
 * without rows since the start holds its source back for idle_timeout (so writers whose input
 * starts a little after the others' are waited for). A partition with no writer heard yet
 * holds the watermark back for idle_timeout after it was assigned. The
 * reader's watermark is the lowest over the partitions it reads and never goes down; when
 * nothing holds it back it goes to the highest watermark a writer announced. Each row gets
 * the reader's watermark after its message, so the aggregate judges late rows as one process
 * reading every source partition would.
 *
 * The right side of a join to a table, and SCHEDULE's fleet, are a table's changes, which hold
 * no watermark back (as a table joined to in one process does not): their writers announce
 * none and the reader does not count them among a partition's writers.
 *
 * Rows. A stream read straight from a source (through filters and projections) has one row
 * per source message, so the reader drops a row whose origin offset is not past the highest
 * it has seen in that partition from the same source partition (and side): a member that
 * took the source partition over read it again from its committed offset and wrote those rows
 * a second time.
 * Table rows are upserts: the reader keeps each upstream key's last row per partition and
 * turns a row into the retraction of the stored row (if any) and the new row, a retraction
 * into the retraction of the stored row; a table written again from its start (a member
 * rebuilding it after a take-over) changes nothing. A partition the reader stops reading (a
 * rebalance gave it to another member) has its stored rows retracted, so the aggregate
 * forgets them while the new owner rebuilds them from the topic.
 *
 * Losses told (an aggregation's exchange: tell_partitions). Each row carries the partition it
 * was read from in a column after its own (then the watermark to judge it late by: SOLE_READER),
 * so the aggregate knows the partition of each of its groups.
 * A partition that stops being read on from where it was (given to another member, or read
 * again from its committed offset) is told by a row with diff 0 naming it, in the first batch
 * read after the rebalance, after the owed retractions. Until every lost partition is told, the
 * reader's watermark stays where it was: a watermark computed without the lost partition must
 * not close its windows before the aggregate has dropped them. So no message comes before the
 * tellings (the consumer holds the messages taken by the read that served the assignment until
 * the owed rows are out, vpq_kafka_int.h): a row of a partition read again from its committed
 * offset would get that stale watermark, below the one committed with the offset (a member
 * that joins has none yet), and a window its last owner wrote would be written again, partial.
 *
 * Watermarks committed (on_commit_watermark). The offsets are committed with the reader's
 * watermark in their metadata (in a checkpointed run, the one of the last checkpoint: later
 * windows are held until the next one is durable). A partition read again from its committed
 * offset starts with that watermark as its floor: its writers' watermarks count as no lower.
 * The rows it reads again of windows its last owner closed, a window's size + grace behind
 * that owner's watermark, are then late here as they would have been there, instead of making
 * this member write those windows again from part of their rows (a member that joins has no
 * watermark of its own yet).
 */
#include "vpq_kafka_repartition.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vpq_kafka_int.h"
#include "vpq_clock.h"

/* Version 3 added SOLE_READER; a reader takes version 2 too (its rows have no such bit), and an
 * older one refuses version 3 as written by another version of vpq. */
enum { MAGIC = 'V', VERSION = 3, OLD_VERSION = 2, HEADER_BYTES = 28, ROW_HEADER_BYTES = 20 };

typedef enum message_kind { KIND_ROW, KIND_RETRACTION, KIND_WATERMARK } message_kind;

/* A row message's side byte has this bit when its writer reads every partition of its source,
 * alone, since its run started: its watermark is then the one by which one process would judge
 * the row late, and the reader passes it on for that (vpq_op_aggregate.c's late_watermark). */
enum { SOLE_READER = 0x80 };

/* ===== Encoding ===== */

static void put_u32(vpq_buf *b, uint32_t v) {
  char bytes[4];
  for (int i = 0; i < 4; i++) bytes[i] = (char)(v >> (8 * i));
  vpq_buf_append(b, bytes, 4);
}

static void put_u64(vpq_buf *b, uint64_t v) {
  char bytes[8];
  for (int i = 0; i < 8; i++) bytes[i] = (char)(v >> (8 * i));
  vpq_buf_append(b, bytes, 8);
}

static uint32_t get_u32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
  return v;
}

static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* FNV-1a over the row columns' names and types: what writer and reader must agree on. */
static uint32_t layout_hash(const vpq_schema *rows) {
  uint32_t h = 2166136261u;
  for (int c = 0; c < rows->ncols; c++) {
    for (const char *p = rows->cols[c].name; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ (uint32_t)(rows->cols[c].type + 1)) * 16777619u;
  }
  return h;
}

static void put_header(vpq_buf *b, message_kind kind, int side, uint32_t layout, uint64_t writer, int64_t wm,
                       int64_t silence_ms) {
  char head[4] = {MAGIC, VERSION, (char)kind, (char)side};
  vpq_buf_append(b, head, 4);
  put_u32(b, layout);
  put_u64(b, writer);
  put_u64(b, (uint64_t)wm);
  put_u32(b, (uint32_t)(silence_ms < 0 ? 0 : silence_ms > UINT32_MAX ? UINT32_MAX : silence_ms));
}

/* ===== Writing end ===== */

typedef struct exchange_writer {
  vpq_schema wire;  /* the key columns (marked keys), then the row columns: a written batch */
  int nkeys;
  int side;         /* the side written (0 but in an exchange of several inputs) */
  const vpq_intern *intern;
  uint32_t layout;
  uint64_t id;
  int64_t silence_ms;
  const vpq_source *from; /* the source whose rows it writes (sole_reader) */
  vpq_buf value;    /* announcements */
} exchange_writer;

static void free_writer(void *ctx) {
  exchange_writer *w = ctx;
  free(w->wire.cols);
  vpq_buf_free(&w->value);
  free(w);
}

/* Whether the writer's source has been read by this member alone, every partition of it, since
 * the run started (its watermark then is one process's). */
static bool sole_reader(const vpq_source *from) {
  if (!from || !from->owned || from->assignments > 1 || from->awaiting_partitions) return false;
  for (int p = 0; p < from->partitions; p++)
    if (!from->owned[p]) return false;
  return true;
}

/* The value of a row message (vpq_kafka_encode_fn). */
static void encode_row(void *ctx, const vpq_batch *batch, int row, vpq_buf *value) {
  const exchange_writer *w = ctx;
  put_header(value, batch->diff[row] < 0 ? KIND_RETRACTION : KIND_ROW, w->side | (sole_reader(w->from) ? SOLE_READER : 0),
             w->layout, w->id, batch->wm[row], w->silence_ms);
  put_u64(value, (uint64_t)batch->ts[row]);
  put_u32(value, (uint32_t)batch->origin[row].partition);
  put_u64(value, (uint64_t)batch->origin[row].offset);
  for (int c = w->nkeys; c < w->wire.ncols; c++) {
    const vpq_vec *v = &batch->cols[c];
    if (v->null[row]) {
      vpq_buf_append(value, "\1", 1);
      continue;
    }
    vpq_buf_append(value, "\0", 1);
    if (w->wire.cols[c].type == VPQ_TYPE_STRING) {
      size_t len;
      const char *text = vpq_intern_text(w->intern, v->data[row].i, &len);
      put_u32(value, (uint32_t)len);
      vpq_buf_append(value, text, len);
    } else {
      put_u64(value, (uint64_t)v->data[row].i);
    }
  }
}

vpq_sink *vpq_kafka_open_exchange_writer(const vpq_plan_connector *conn, const vpq_exchange_spec *spec,
                                         const vpq_intern *intern, char *err, size_t err_size) {
  exchange_writer *w = calloc(1, sizeof *w);
  if (!w) abort();
  /* The columns written: the whole row, or a side's. */
  w->side = spec->nsides > 0 ? spec->side : 0;
  int first = spec->nsides > 0 ? spec->side_first[w->side] : 0;
  int ncols = spec->nsides > 0 ? spec->side_first[w->side + 1] - first : spec->rows->ncols;
  w->nkeys = spec->keys->ncols;
  w->wire.ncols = spec->keys->ncols + ncols;
  w->wire.cols = calloc((size_t)w->wire.ncols + 1, sizeof *w->wire.cols);
  if (!w->wire.cols) abort();
  for (int c = 0; c < spec->keys->ncols; c++) {
    w->wire.cols[c] = spec->keys->cols[c];
    w->wire.cols[c].is_key = true;
  }
  for (int c = 0; c < ncols; c++) {
    w->wire.cols[w->nkeys + c] = spec->rows->cols[first + c];
    w->wire.cols[w->nkeys + c].is_key = false;
  }
  w->intern = intern;
  w->layout = layout_hash(spec->rows);
  w->id = spec->writer;
  w->silence_ms = spec->silence_ms;
  w->from = spec->from;
  return vpq_kafka_open_encoded_sink(conn, spec->topic, spec->partitions, spec->sink_id, &w->wire, intern, encode_row, w,
                                     free_writer, err, err_size);
}

bool vpq_kafka_exchange_announce(vpq_sink *writer, int64_t wm, char *err, size_t err_size) {
  exchange_writer *w = vpq_kafka_sink_ctx(writer);
  w->value.len = 0;
  put_header(&w->value, KIND_WATERMARK, w->side, w->layout, w->id, wm, w->silence_ms);
  int64_t now = vpq_clock_wall_ms();
  int32_t partitions = vpq_kafka_sink_partitions(writer);
  for (int32_t p = 0; p < partitions; p++)
    if (!vpq_kafka_sink_put(writer, p, w->value.data, w->value.len, now, err, err_size)) return false;
  return true;
}

/* ===== Reading end ===== */

/* A writer heard in a partition: its newest watermark and when it was last heard. */
typedef struct writer_mark {
  uint64_t id;
  int64_t wm;
  int64_t heard_ms;
  int64_t silence_ms;
  int64_t since_ms; /* when it was first heard in the partition */
} writer_mark;

typedef struct part_state {
  writer_mark *writers;
  int nwriters, cap;
  int64_t *seen;    /* dedup: per source partition (times the sides, plus the side, in an
                       exchange of several inputs), the highest origin offset read (-1: none) */
  int nseen;
  int64_t since_ms; /* when this member started reading it */
  int64_t first_row_ms; /* when it gave its first row since then (0: none yet) */
  bool untold;      /* tell_partitions: no longer read on from where it was, not yet told */
  int64_t floor;    /* the watermark committed with the offset it started from: its own is
                       never lower (VPQ_TS_MIN: none) */
} part_state;

/* A table row kept for upserts (data NULL: a free slot), or a retraction owed. */
typedef struct kept_row {
  uint64_t hash;
  int next;         /* bucket chain, or the free list */
  int32_t partition;
  int64_t ts;
  vpq_origin origin;
  vpq_datum *data;
  uint8_t *null;
} kept_row;

typedef struct exchange_reader {
  vpq_source *src;
  vpq_intern *intern;
  vpq_schema rows;
  uint32_t layout;
  int *keys;        /* upserts: the upstream table's key columns; NULL: rows carry their diff */
  int nkeys;
  int nsides;       /* an exchange of several inputs: how many (0: one) */
  int side_first[VPQ_EXCHANGE_MAX_SIDES + 1]; /* where each side's columns start */
  bool dedup[VPQ_EXCHANGE_MAX_SIDES]; /* per side (0 with one input) */
  bool lookup[VPQ_EXCHANGE_MAX_SIDES]; /* per side: table changes, holding no watermark back */
  int64_t idle_ms;
  part_state *parts;
  int nparts;
  kept_row *kept;
  int nkept, kept_cap, free_slot;
  int *buckets;
  int nbuckets, live;
  kept_row *owed;   /* retractions still to hand out (ownership lost) */
  int nowed, owed_cap, owed_at;
  bool tell_partitions; /* rows carry their partition in column `partition_col`; losses are told */
  int partition_col;
  int nuntold;      /* partitions lost and not yet told (the watermark waits for them) */
  int64_t wm;
  bool checkpointed; /* a checkpoint was taken or restored */
  int64_t saved_wm; /* the watermark at the last checkpoint */
} exchange_reader;

/* The state of partition p (the array is made on first use: the partition count is known
 * once the consumer is open). */
static part_state *part(exchange_reader *r, int p) {
  if (!r->parts) {
    r->nparts = r->src->partitions;
    r->parts = calloc((size_t)r->nparts + 1, sizeof *r->parts);
    if (!r->parts) abort();
    int64_t now = vpq_clock_wall_ms();
    for (int i = 0; i < r->nparts; i++) {
      r->parts[i].since_ms = now;
      r->parts[i].floor = VPQ_TS_MIN;
    }
  }
  return p >= 0 && p < r->nparts ? &r->parts[p] : NULL;
}

/* Notes that `id` wrote watermark `wm` into partition p now; writers silent for ten idle
 * timeouts are forgotten. */
static void note_writer(exchange_reader *r, part_state *ps, uint64_t id, int64_t wm, int64_t silence_ms, int64_t now) {
  for (int i = 0; i < ps->nwriters; i++) {
    writer_mark *w = &ps->writers[i];
    if (w->id == id) {
      if (wm > w->wm) w->wm = wm;
      w->heard_ms = now;
      w->silence_ms = silence_ms;
      return;
    }
  }
  int kept = 0;
  for (int i = 0; i < ps->nwriters; i++)
    if (ps->writers[i].wm == VPQ_TS_MAX || now - ps->writers[i].heard_ms < 10 * (r->idle_ms + ps->writers[i].silence_ms))
      ps->writers[kept++] = ps->writers[i];
  ps->nwriters = kept;
  if (ps->nwriters == ps->cap) {
    ps->cap = ps->cap ? 2 * ps->cap : 4;
    ps->writers = realloc(ps->writers, sizeof *ps->writers * (size_t)ps->cap);
    if (!ps->writers) abort();
  }
  ps->writers[ps->nwriters++] = (writer_mark){id, wm, now, silence_ms, now};
}

/* The reader's watermark at `now` (see the essay above). */
static int64_t reader_watermark(exchange_reader *r, int64_t now) {
  if (r->nuntold) return r->wm;
  const bool *owned = r->src->owned;
  int64_t low = VPQ_TS_MAX, high = VPQ_TS_MIN;
  bool holding = false;
  for (int p = 0; p < r->src->partitions; p++) {
    if (owned && !owned[p]) continue;
    part_state *ps = part(r, p);
    if (!ps->nwriters) {
      if (now - ps->since_ms < r->idle_ms || vpq_kafka_source_behind(r->src, p, 0)) {
        holding = true;
        if (ps->floor < low) low = ps->floor;
      }
      continue;
    }
    for (int i = 0; i < ps->nwriters; i++) {
      const writer_mark *w = &ps->writers[i];
      int64_t wm = w->wm > ps->floor ? w->wm : ps->floor;
      if (wm > high) high = wm;
      if (w->wm == VPQ_TS_MAX) continue;
      int64_t waiting = w->since_ms > ps->first_row_ms ? w->since_ms : ps->first_row_ms;
      bool live = now - w->heard_ms < r->idle_ms + w->silence_ms && (w->wm != VPQ_TS_MIN || now - waiting < r->idle_ms);
      if (live || vpq_kafka_source_behind(r->src, p, 0)) {
        holding = true;
        if (wm < low) low = wm;
      }
    }
  }
  int64_t wm = holding ? low : high;
  if (wm > r->wm) r->wm = wm;
  return r->wm;
}

int64_t vpq_kafka_exchange_watermark(vpq_source *reader, int64_t now_ms) {
  return reader_watermark(vpq_kafka_reader_ctx(reader), now_ms);
}

/* True when a partition has had the row at `offset` of dedup slot `slot` (a source partition,
 * with its side) before (and notes it). */
static bool seen_before(part_state *ps, int64_t slot, int64_t offset) {
  if (slot < 0 || slot > (1 << 21)) return false;
  if (slot >= ps->nseen) {
    int n = (int)slot + 1;
    ps->seen = realloc(ps->seen, sizeof *ps->seen * (size_t)n);
    if (!ps->seen) abort();
    for (int i = ps->nseen; i < n; i++) ps->seen[i] = -1;
    ps->nseen = n;
  }
  if (offset <= ps->seen[slot]) return true;
  ps->seen[slot] = offset;
  return false;
}

/* ----- Upserts ----- */

/* The hash of the upstream key of row `row` of `batch` in partition p. */
static uint64_t key_hash(const exchange_reader *r, int32_t p, const vpq_batch *batch, int row) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uint32_t)p;
  for (int k = 0; k < r->nkeys; k++) {
    const vpq_vec *v = &batch->cols[r->keys[k]];
    uint64_t x = v->null[row] ? 0x5bd1e9955bd1e995ull : (uint64_t)v->data[row].i;
    h ^= x + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
  }
  return h;
}

/* The kept row of partition p with the key of `row`, or -1. */
static int kept_find(const exchange_reader *r, int32_t p, uint64_t hash, const vpq_batch *batch, int row) {
  if (!r->nbuckets) return -1;
  for (int e = r->buckets[hash & (uint64_t)(r->nbuckets - 1)]; e >= 0; e = r->kept[e].next) {
    const kept_row *k = &r->kept[e];
    if (k->hash != hash || k->partition != p) continue;
    bool same = true;
    for (int i = 0; i < r->nkeys && same; i++) {
      const vpq_vec *v = &batch->cols[r->keys[i]];
      int c = r->keys[i];
      same = k->null[c] == v->null[row] && (v->null[row] || k->data[c].i == v->data[row].i);
    }
    if (same) return e;
  }
  return -1;
}

/* Links slot e into its bucket, growing the table when it is half full. */
static void kept_link(exchange_reader *r, int e) {
  if (2 * (r->live + 1) > r->nbuckets) {
    int n = r->nbuckets ? 2 * r->nbuckets : 64;
    free(r->buckets);
    r->buckets = malloc(sizeof *r->buckets * (size_t)n);
    if (!r->buckets) abort();
    for (int b = 0; b < n; b++) r->buckets[b] = -1;
    r->nbuckets = n;
    for (int i = 0; i < r->nkept; i++) {
      if (!r->kept[i].data || i == e) continue;
      int b = (int)(r->kept[i].hash & (uint64_t)(n - 1));
      r->kept[i].next = r->buckets[b];
      r->buckets[b] = i;
    }
  }
  int b = (int)(r->kept[e].hash & (uint64_t)(r->nbuckets - 1));
  r->kept[e].next = r->buckets[b];
  r->buckets[b] = e;
  r->live++;
}

/* Keeps a new row of partition p (its columns from `batch`'s row `row`); returns its slot. */
static int kept_add(exchange_reader *r, int32_t p, uint64_t hash, const vpq_batch *batch, int row, int64_t ts,
                    vpq_origin origin) {
  int e = r->free_slot;
  if (e >= 0) {
    r->free_slot = r->kept[e].next;
  } else {
    if (r->nkept == r->kept_cap) {
      r->kept_cap = r->kept_cap ? 2 * r->kept_cap : 64;
      r->kept = realloc(r->kept, sizeof *r->kept * (size_t)r->kept_cap);
      if (!r->kept) abort();
    }
    e = r->nkept++;
  }
  int ncols = r->rows.ncols;
  kept_row *k = &r->kept[e];
  *k = (kept_row){hash, -1, p, ts, origin, malloc(sizeof *k->data * (size_t)(ncols + 1)),
                  malloc((size_t)ncols + 1)};
  if (!k->data || !k->null) abort();
  for (int c = 0; c < ncols; c++) {
    k->data[c] = batch->cols[c].data[row];
    k->null[c] = batch->cols[c].null[row];
  }
  kept_link(r, e);
  return e;
}

/* Takes slot e out of its bucket and onto the free list; its data go to the caller. */
static kept_row kept_remove(exchange_reader *r, int e) {
  kept_row k = r->kept[e];
  int *link = &r->buckets[k.hash & (uint64_t)(r->nbuckets - 1)];
  while (*link != e) link = &r->kept[*link].next;
  *link = k.next;
  r->kept[e].data = NULL;
  r->kept[e].null = NULL;
  r->kept[e].next = r->free_slot;
  r->free_slot = e;
  r->live--;
  return k;
}

/* Writes kept row `k` into row `row` of `out` as a retraction. */
static void put_kept(const exchange_reader *r, const kept_row *k, vpq_batch *out, int row, vpq_origin *origins) {
  for (int c = 0; c < r->rows.ncols; c++) {
    out->cols[c].data[row] = k->data[c];
    out->cols[c].null[row] = k->null[c];
  }
  out->diff[row] = -1;
  origins[row] = k->origin;
}

static void owe(exchange_reader *r, kept_row k) {
  if (r->nowed == r->owed_cap) {
    r->owed_cap = r->owed_cap ? 2 * r->owed_cap : 64;
    r->owed = realloc(r->owed, sizeof *r->owed * (size_t)r->owed_cap);
    if (!r->owed) abort();
  }
  r->owed[r->nowed++] = k;
}

/* ----- Partitions told lost (tell_partitions) ----- */

/* Writes into row `row` of `out` the row that tells partition p is no longer read on from
 * where it was: diff 0, p in the partition column, every other column NULL. */
static void tell(exchange_reader *r, int32_t p, vpq_batch *out, int row, vpq_origin *origins) {
  for (int c = 0; c < r->partition_col; c++) {
    out->cols[c].data[row].i = 0;
    out->cols[c].null[row] = 1;
  }
  out->cols[r->partition_col].data[row].i = p;
  out->cols[r->partition_col].null[row] = 0;
  out->cols[r->partition_col + 1].data[row].i = VPQ_TS_MIN;
  out->cols[r->partition_col + 1].null[row] = 0;
  out->ts[row] = r->wm;
  out->wm[row] = r->wm;
  out->diff[row] = 0;
  origins[row] = (vpq_origin){p, -1};
  r->parts[p].untold = false;
  r->nuntold--;
}

/* ----- Hooks (vpq_kafka_int.h) ----- */

/* Decodes the columns [first, last) of a row message at `p` into row `row` of `out`; false
 * when short. */
static bool decode_columns(exchange_reader *r, const unsigned char *p, const unsigned char *end, int first, int last,
                           vpq_batch *out, int row) {
  for (int c = first; c < last; c++) {
    if (p >= end) return false;
    vpq_vec *v = &out->cols[c];
    v->null[row] = *p++ != 0;
    if (v->null[row]) {
      v->data[row].i = 0;
      continue;
    }
    if (r->rows.cols[c].type == VPQ_TYPE_STRING) {
      if (end - p < 4) return false;
      uint32_t len = get_u32(p);
      p += 4;
      if ((size_t)(end - p) < len) return false;
      v->data[row].i = vpq_intern_id(r->intern, (const char *)p, len);
      p += len;
    } else {
      if (end - p < 8) return false;
      v->data[row].i = (int64_t)get_u64(p);
      p += 8;
    }
  }
  return p == end;
}

static int on_message(void *ctx, const rd_kafka_message_t *msg, vpq_batch *out, int n, vpq_origin *origins, int64_t *event_ts,
                      char *err, size_t err_size) {
  exchange_reader *r = ctx;
  const unsigned char *p = msg->payload;
  part_state *ps = part(r, msg->partition);
  if (!p || msg->len < HEADER_BYTES || p[0] != MAGIC || (p[1] != VERSION && p[1] != OLD_VERSION) || !ps) {
    snprintf(err, err_size, "invalid exchange message: not written by this version of vpq");
    return -1;
  }
  const unsigned char *end = p + msg->len;
  message_kind kind = (message_kind)p[2];
  int side = p[3] & ~SOLE_READER;
  const bool sole = (p[3] & SOLE_READER) != 0;
  if (get_u32(p + 4) != r->layout || side >= (r->nsides > 0 ? r->nsides : 1)) {
    snprintf(err, err_size, "invalid exchange message: written by a query with other input columns");
    return -1;
  }
  int64_t now = vpq_clock_wall_ms();
  bool lookup = r->lookup[side];
  const int64_t written_wm = (int64_t)get_u64(p + 16);
  if (!lookup) note_writer(r, ps, get_u64(p + 8), written_wm, get_u32(p + 24), now);
  if (kind == KIND_WATERMARK) return 0;
  if ((kind != KIND_ROW && kind != KIND_RETRACTION) || msg->len < HEADER_BYTES + ROW_HEADER_BYTES) {
    snprintf(err, err_size, "invalid exchange message: unknown kind %d or too short", (int)kind);
    return -1;
  }
  p += HEADER_BYTES;
  int64_t ts = (int64_t)get_u64(p);
  vpq_origin origin = {(int32_t)get_u32(p + 8), (int64_t)get_u64(p + 12)};
  p += ROW_HEADER_BYTES;
  if (!ps->first_row_ms && !lookup) ps->first_row_ms = now;
  int64_t slot = r->nsides > 0 ? r->nsides * (int64_t)origin.partition + side : origin.partition;
  if (r->dedup[side] && kind == KIND_ROW && seen_before(ps, slot, origin.offset)) return 0;
  int at = n;
  int first = 0, last = r->rows.ncols;
  if (r->nsides > 0) {
    /* A side's columns; the other sides' are NULL, and the last column is the side. */
    first = r->side_first[side];
    last = r->side_first[side + 1];
    for (int c = 0; c < r->rows.ncols; c++) {
      out->cols[c].null[at] = 1;
      out->cols[c].data[at].i = 0;
    }
    out->cols[r->rows.ncols].data[at].i = side;
    out->cols[r->rows.ncols].null[at] = 0;
  }
  if (!decode_columns(r, p, end, first, last, out, at)) {
    snprintf(err, err_size, "invalid exchange message: its row is cut short or too long");
    return -1;
  }
  int rows = 1;
  if (!r->keys) {
    out->diff[at] = kind == KIND_ROW ? 1 : -1;
    origins[at] = origin;
  } else {
    uint64_t hash = key_hash(r, msg->partition, out, at);
    int e = kept_find(r, msg->partition, hash, out, at);
    if (kind == KIND_RETRACTION) {
      if (e < 0) return 0; /* a key this partition does not hold */
      kept_row k = kept_remove(r, e);
      put_kept(r, &k, out, at, origins);
      free(k.data);
      free(k.null);
    } else if (e < 0) {
      out->diff[at] = 1;
      origins[at] = origin;
      kept_add(r, msg->partition, hash, out, at, ts, origin);
    } else {
      /* The stored row's retraction first, then the new row. */
      for (int c = 0; c < r->rows.ncols; c++) {
        out->cols[c].data[at + 1] = out->cols[c].data[at];
        out->cols[c].null[at + 1] = out->cols[c].null[at];
      }
      kept_row *k = &r->kept[e];
      put_kept(r, k, out, at, origins);
      out->diff[at + 1] = 1;
      origins[at + 1] = origin;
      for (int c = 0; c < r->rows.ncols; c++) {
        k->data[c] = out->cols[c].data[at + 1];
        k->null[c] = out->cols[c].null[at + 1];
      }
      k->ts = ts;
      k->origin = origin;
      rows = 2;
    }
  }
  int64_t wm = reader_watermark(r, now);
  for (int i = at; i < at + rows; i++) {
    out->ts[i] = ts;
    out->wm[i] = wm;
    if (r->tell_partitions) {
      out->cols[r->partition_col].data[i].i = msg->partition;
      out->cols[r->partition_col].null[i] = 0;
      out->cols[r->partition_col + 1].data[i].i = sole ? written_wm : VPQ_TS_MIN;
      out->cols[r->partition_col + 1].null[i] = 0;
    }
  }
  *event_ts = ts;
  return rows;
}

/* Hands out the retractions owed, then tells the partitions lost. */
static int on_owed(void *ctx, vpq_batch *out, int n, vpq_origin *origins) {
  exchange_reader *r = ctx;
  int added = 0;
  while (r->owed_at < r->nowed && n + added < out->cap) {
    kept_row *k = &r->owed[r->owed_at++];
    put_kept(r, k, out, n + added, origins);
    out->ts[n + added] = k->ts;
    out->wm[n + added] = r->wm;
    if (r->tell_partitions) {
      out->cols[r->partition_col].data[n + added].i = k->partition;
      out->cols[r->partition_col].null[n + added] = 0;
      out->cols[r->partition_col + 1].data[n + added].i = VPQ_TS_MIN;
      out->cols[r->partition_col + 1].null[n + added] = 0;
    }
    free(k->data);
    free(k->null);
    added++;
  }
  if (r->owed_at == r->nowed) r->owed_at = r->nowed = 0;
  for (int p = 0; p < r->nparts && r->nuntold && n + added < out->cap; p++)
    if (r->parts[p].untold) tell(r, p, out, n + added++, origins);
  return added;
}

/* After a rebalance: a partition no longer read here, or read again from its committed offset,
 * has its kept rows retracted, its writers and dedup marks forgotten, and is to be told lost;
 * one read again starts at the watermark committed with its offset, so that rows read again
 * of windows its last owner closed are late here too. */
static void on_ownership(void *ctx, const bool *owned, const bool *continued, const int64_t *floor) {
  exchange_reader *r = ctx;
  int64_t now = vpq_clock_wall_ms();
  for (int p = 0; p < r->src->partitions; p++) {
    if (owned[p] && continued[p]) continue;
    part_state *ps = part(r, p);
    ps->floor = owned[p] ? floor[p] : VPQ_TS_MIN;
    if (r->tell_partitions && !ps->untold) {
      ps->untold = true;
      r->nuntold++;
    }
    ps->nwriters = 0;
    for (int i = 0; i < ps->nseen; i++) ps->seen[i] = -1;
    ps->since_ms = now;
    ps->first_row_ms = 0;
    for (int e = 0; e < r->nkept; e++)
      if (r->kept[e].data && r->kept[e].partition == p) owe(r, kept_remove(r, e));
  }
}

static void put_kept_state(const exchange_reader *r, vpq_ckpt_out *out, const kept_row *k) {
  vpq_ckpt_put_u64(out, (uint64_t)k->partition);
  vpq_ckpt_put_i64(out, k->ts);
  vpq_ckpt_put_i64(out, k->origin.partition);
  vpq_ckpt_put_i64(out, k->origin.offset);
  vpq_ckpt_put_datums(out, k->data, k->null, r->rows.ncols);
}

/* The watermark committed with the offsets: the one of the last checkpoint in a checkpointed
 * run (later windows are held until the next one), else the reader's (commits follow a flush
 * of every window it closed). */
static int64_t on_commit_watermark(void *ctx) {
  const exchange_reader *r = ctx;
  return r->checkpointed ? r->saved_wm : r->wm;
}

/* State: the watermark, each partition's writers and dedup marks, the kept and owed rows. */
static void on_save(void *ctx, vpq_ckpt_out *out) {
  exchange_reader *r = ctx;
  part(r, 0);
  r->checkpointed = true;
  r->saved_wm = r->wm;
  vpq_ckpt_put_i64(out, r->wm);
  vpq_ckpt_put_u64(out, (uint64_t)r->nparts);
  for (int p = 0; p < r->nparts; p++) {
    const part_state *ps = &r->parts[p];
    vpq_ckpt_put_u64(out, (uint64_t)ps->nwriters);
    for (int i = 0; i < ps->nwriters; i++) {
      vpq_ckpt_put_u64(out, ps->writers[i].id);
      vpq_ckpt_put_i64(out, ps->writers[i].wm);
      vpq_ckpt_put_i64(out, ps->writers[i].silence_ms);
    }
    vpq_ckpt_put_u64(out, (uint64_t)ps->nseen);
    for (int i = 0; i < ps->nseen; i++) vpq_ckpt_put_i64(out, ps->seen[i]);
  }
  vpq_ckpt_put_u64(out, (uint64_t)r->live);
  for (int e = 0; e < r->nkept; e++)
    if (r->kept[e].data) put_kept_state(r, out, &r->kept[e]);
  vpq_ckpt_put_u64(out, (uint64_t)(r->nowed - r->owed_at));
  for (int i = r->owed_at; i < r->nowed; i++) put_kept_state(r, out, &r->owed[i]);
}

/* Reads one kept row into a batch row (checking its partition and strings); false on error. */
static bool get_kept_state(exchange_reader *r, vpq_ckpt_in *in, vpq_batch *row, int32_t *partition) {
  uint64_t p = vpq_ckpt_get_u64(in);
  row->ts[0] = vpq_ckpt_get_i64(in);
  row->origin[0].partition = (int32_t)vpq_ckpt_get_i64(in);
  row->origin[0].offset = vpq_ckpt_get_i64(in);
  for (int c = 0; c < r->rows.ncols; c++) {
    vpq_ckpt_get_datums(in, &row->cols[c].data[0], &row->cols[c].null[0], 1);
    if (r->rows.cols[c].type == VPQ_TYPE_STRING && !row->cols[c].null[0] &&
        (uint64_t)row->cols[c].data[0].i >= vpq_intern_count(r->intern))
      vpq_ckpt_fail(in, "an exchange row with a string that is not in the string pool");
  }
  if (!in->error && p >= (uint64_t)r->nparts) vpq_ckpt_fail(in, "an exchange row of a partition the topic does not have");
  *partition = (int32_t)p;
  return !in->error;
}

static void on_restore(void *ctx, vpq_ckpt_in *in) {
  exchange_reader *r = ctx;
  part(r, 0);
  r->wm = r->saved_wm = vpq_ckpt_get_i64(in);
  r->checkpointed = true;
  if ((int64_t)vpq_ckpt_get_count(in, 1 << 20) != r->nparts && !in->error)
    vpq_ckpt_fail(in, "the exchange topic's partition count changed");
  int64_t now = vpq_clock_wall_ms();
  for (int p = 0; p < r->nparts && !in->error; p++) {
    part_state *ps = &r->parts[p];
    int64_t nwriters = vpq_ckpt_get_count(in, 1 << 20);
    for (int64_t i = 0; i < nwriters && !in->error; i++) {
      uint64_t id = vpq_ckpt_get_u64(in);
      int64_t wm = vpq_ckpt_get_i64(in), silence = vpq_ckpt_get_i64(in);
      note_writer(r, ps, id, wm, silence, now);
    }
    int64_t nseen = vpq_ckpt_get_count(in, 1 << 20);
    for (int64_t i = 0; i < nseen && !in->error; i++) seen_before(ps, i, vpq_ckpt_get_i64(in));
  }
  /* One row of scratch for reading rows back. */
  vpq_arena arena;
  vpq_arena_init(&arena);
  vpq_batch *row = vpq_batch_new(&arena, r->rows.ncols, NULL, 1);
  int64_t nkept = vpq_ckpt_get_count(in, INT32_MAX / 2);
  for (int64_t i = 0; i < nkept && !in->error; i++) {
    int32_t p;
    if (!get_kept_state(r, in, row, &p)) break;
    uint64_t hash = key_hash(r, p, row, 0);
    if (kept_find(r, p, hash, row, 0) >= 0) {
      vpq_ckpt_fail(in, "an exchange key kept twice");
      break;
    }
    kept_add(r, p, hash, row, 0, row->ts[0], row->origin[0]);
  }
  int64_t nowed = vpq_ckpt_get_count(in, INT32_MAX / 2);
  for (int64_t i = 0; i < nowed && !in->error; i++) {
    int32_t p;
    if (!get_kept_state(r, in, row, &p)) break;
    kept_row k = {0, -1, p, row->ts[0], row->origin[0], malloc(sizeof(vpq_datum) * (size_t)(r->rows.ncols + 1)),
                  malloc((size_t)r->rows.ncols + 1)};
    if (!k.data || !k.null) abort();
    for (int c = 0; c < r->rows.ncols; c++) {
      k.data[c] = row->cols[c].data[0];
      k.null[c] = row->cols[c].null[0];
    }
    owe(r, k);
  }
  vpq_arena_free(&arena);
}

static void free_reader(void *ctx) {
  exchange_reader *r = ctx;
  for (int p = 0; p < r->nparts; p++) {
    free(r->parts[p].writers);
    free(r->parts[p].seen);
  }
  free(r->parts);
  for (int e = 0; e < r->nkept; e++) {
    free(r->kept[e].data);
    free(r->kept[e].null);
  }
  free(r->kept);
  free(r->buckets);
  for (int i = r->owed_at; i < r->nowed; i++) {
    free(r->owed[i].data);
    free(r->owed[i].null);
  }
  free(r->owed);
  free(r->keys);
  free(r);
}

vpq_source *vpq_kafka_open_exchange_reader(const vpq_plan_connector *conn, const vpq_exchange_spec *spec,
                                           vpq_intern *intern, vpq_bad_record_fn bad, void *bad_ctx, char *err,
                                           size_t err_size) {
  exchange_reader *r = calloc(1, sizeof *r);
  if (!r) abort();
  r->intern = intern;
  r->rows = *spec->rows;
  r->layout = layout_hash(spec->rows);
  r->nsides = spec->nsides;
  memcpy(r->side_first, spec->side_first, sizeof r->side_first);
  for (int side = 0; side < spec->nsides; side++) {
    r->dedup[side] = spec->side_dedup[side];
    r->lookup[side] = spec->side_lookup[side];
  }
  if (!spec->nsides) r->dedup[0] = spec->dedup;
  r->tell_partitions = spec->tell_partitions;
  r->partition_col = spec->rows->ncols + (spec->nsides > 0);
  r->idle_ms = spec->idle_timeout_ms;
  r->free_slot = -1;
  r->wm = VPQ_TS_MIN;
  if (spec->upsert_keys) {
    r->nkeys = spec->nupsert_keys;
    r->keys = malloc(sizeof *r->keys * (size_t)(r->nkeys + 1));
    if (!r->keys) abort();
    memcpy(r->keys, spec->upsert_keys, sizeof *r->keys * (size_t)r->nkeys);
  }
  /* The consumer: the cluster's properties, the exchange's topic, its group, from the start. */
  vpq_plan_option *items = calloc((size_t)conn->options.count + 3, sizeof *items);
  if (!items) abort();
  int count = 0;
  for (int i = 0; i < conn->options.count; i++)
    if (strncmp(conn->options.items[i].key, "kafka.", 6) == 0) items[count++] = conn->options.items[i];
  items[count++] = (vpq_plan_option){"topic", {0}, VPQ_TYPE_STRING, spec->topic, {0}};
  items[count++] = (vpq_plan_option){"group", {0}, VPQ_TYPE_STRING, spec->topic, {0}};
  items[count++] = (vpq_plan_option){"start", {0}, VPQ_TYPE_STRING, "earliest", {0}};
  vpq_relation rel = {.name = spec->topic, .kind = VPQ_REL_STREAM, .schema = *spec->rows, .is_source = true,
                      .source = {"kafka", "json", NULL, NULL, false, {items, count}}, .ts_col = -1,
                      .idle_timeout_ms = spec->idle_timeout_ms};
  vpq_kafka_reader_hooks hooks = {.ctx = r,
                                  .rows_per_message = r->keys ? 2 : 1,
                                  .message = on_message,
                                  .owed = on_owed,
                                  .ownership = on_ownership,
                                  .commit_watermark = on_commit_watermark,
                                  .save = on_save,
                                  .restore = on_restore,
                                  .free = free_reader};
  vpq_source *src = vpq_kafka_open_reader(&rel, intern, bad, bad_ctx, &hooks, err, err_size);
  free(items);
  if (src) r->src = src;
  return src;
}
