/* vpq_ckpt.h — checkpoints: how state is written to and read back from bytes, and the
 * checkpoint files of a state folder.
 *
 * Every stateful operator, the string pool, every source's read position and every sink's
 * pending output are written in turn into one byte stream (vpq_ckpt_out) and read back, in
 * the same order, from a vpq_ckpt_in. Integers are LEB128 varints (signed ones zigzagged),
 * doubles their 8 IEEE bytes. Reading never trusts the bytes: a count larger than what is
 * left, a truncated value or a value out of range marks the input failed (in->error), every
 * later read returns zeros, and the caller reports the error — a corrupt checkpoint never
 * crashes the engine or allocates without bound.
 *
 * On disk a checkpoint is one file, checkpoint-<epoch>.vpqc:
 *
 *   "VPQCKPT1" | u32 version | u32 0 | u64 epoch | u64 plan fingerprint | u64 state bytes
 *   | u64 compressed bytes | u64 checksum of everything before it and the compressed bytes
 *   | zstd frame of the state (with zstd's own content checksum)
 *
 * written to a temporary file, fsynced, renamed into place and the folder fsynced, so a crash
 * leaves the old checkpoint or the new one, never half of one. The newest two are kept.
 */
#ifndef VPQ_CKPT_H
#define VPQ_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vpq_buf.h"
#include "vpq_types.h"

enum { VPQ_CKPT_VERSION = 11 }; /* 2: a BIGINT sum/avg keeps the high word of its 128-bit sum; 3: stddev over a table
                                keeps shifted sums and its values, max_keys over a table its refused rows; 4: a
                                DOUBLE sum/avg over a stream keeps its compensation, stddev over a stream shifted sums;
                                5: the length of each dead-letter file; 6: the rows sinks refused, FORECAST's
                                last issue; 7: SCHEDULE's price rows with their event times; 8: stddev's BIGINT origin;
                                9: the rows a subscribed windowed table has shown; 10: a DOUBLE sum/avg over a
                                table counts its non-finite values apart, an aggregation over a table with first,
                                last, integrate or time_weighted_avg keeps its rows' times; 11: a Kafka sink's replay
                                after a restore from a checkpoint older than its output */

/* ===== Writing state ===== */

typedef struct vpq_ckpt_out {
  vpq_buf buf;
} vpq_ckpt_out;

/* Write one number (little-endian, 8 bytes; a double as its IEEE bits). */
void vpq_ckpt_put_u64(vpq_ckpt_out *out, uint64_t value);
void vpq_ckpt_put_i64(vpq_ckpt_out *out, int64_t value);
void vpq_ckpt_put_f64(vpq_ckpt_out *out, double value);
/* Writes a length and `len` bytes. */
void vpq_ckpt_put_bytes(vpq_ckpt_out *out, const void *bytes, size_t len);
/* Writes `n` datums with their null flags (strings as their interned ids). */
void vpq_ckpt_put_datums(vpq_ckpt_out *out, const vpq_datum *data, const uint8_t *null, int n);

/* ===== Reading state ===== */

typedef struct vpq_ckpt_in {
  const uint8_t *p;
  const uint8_t *end;
  const char *error; /* the first problem found; NULL while the input is sound */
} vpq_ckpt_in;

/* Starts reading `len` bytes at `data`. */
vpq_ckpt_in vpq_ckpt_in_init(const void *data, size_t len);

/* Marks the input failed with `why` (the first reason is kept); later reads return zeros. */
void vpq_ckpt_fail(vpq_ckpt_in *in, const char *why);

/* Read one number as the put functions wrote it (0 once the input has failed or ended). */
uint64_t vpq_ckpt_get_u64(vpq_ckpt_in *in);
int64_t vpq_ckpt_get_i64(vpq_ckpt_in *in);
double vpq_ckpt_get_f64(vpq_ckpt_in *in);
/* A bool written as a u64 0/1. */
bool vpq_ckpt_get_bool(vpq_ckpt_in *in);
/* A number written as a u64, checked to be at most `max` (an age, an index); 0 on failure. */
int64_t vpq_ckpt_get_at_most(vpq_ckpt_in *in, int64_t max);
/* A count written as a u64, checked to be at most `max` and at most the bytes left (every
 * counted item takes at least one byte), so that it is safe to allocate for; 0 on failure. */
int64_t vpq_ckpt_get_count(vpq_ckpt_in *in, int64_t max);
/* Bytes written by vpq_ckpt_put_bytes: a pointer into the input and their length (NULL, 0
 * on failure). */
const void *vpq_ckpt_get_bytes(vpq_ckpt_in *in, size_t *len);
/* Datums written by vpq_ckpt_put_datums. */
void vpq_ckpt_get_datums(vpq_ckpt_in *in, vpq_datum *data, uint8_t *null, int n);

/* ===== Checkpoint files ===== */

/* A 64-bit hash of `len` bytes (checksums and plan fingerprints). */
uint64_t vpq_ckpt_hash(const void *data, size_t len, uint64_t seed);

/* Takes the lock of state folder `dir` (creating the folder and its parents when missing): a
 * second process asking for it is refused. Returns the lock's file descriptor, -2 with `err`
 * filled when another process holds it, or -1 with `err` filled on other errors. */
int vpq_ckpt_lock(const char *dir, char *err, size_t err_size);

/* Releases the lock taken by vpq_ckpt_lock. */
void vpq_ckpt_unlock(int fd);

/* Deletes every checkpoint file of `dir` (vpq run --reset-state). */
void vpq_ckpt_remove_all(const char *dir);

/* Writes `state` as checkpoint `epoch` of `dir`, atomically and durably, then deletes all but
 * the newest two checkpoints. Returns 0, or -1 with `err` filled (the previous checkpoints
 * stay as they were). */
int vpq_ckpt_write(const char *dir, uint64_t epoch, uint64_t fingerprint, const vpq_buf *state, char *err,
                   size_t err_size);

/* A checkpoint read back. */
typedef struct vpq_ckpt_file {
  uint64_t epoch;
  uint64_t fingerprint;
  char *state; /* malloc'ed; free with vpq_ckpt_file_free */
  size_t len;
  int64_t written_ms; /* vpq_ckpt_read_newest: the file's modification time (epoch ms; 0: unknown) */
  bool older;         /* vpq_ckpt_read_newest: a newer checkpoint could not be read (the run went further) */
} vpq_ckpt_file;

/* Reads the newest valid checkpoint of `dir` into `out`: a corrupt or truncated file is
 * reported on `log` and the one before it is tried. Returns 1 when one was read, 0 when there
 * is none, -1 (reported on `log`) at a checkpoint of another format version, or when every
 * checkpoint there is damaged: the state of a run is there but cannot be read, and starting
 * over would write its output again. */
int vpq_ckpt_read_newest(const char *dir, vpq_ckpt_file *out, FILE *log);

/* Checks and decompresses checkpoint bytes `data` (a whole file). Returns 0, or with `err`
 * filled -2 when they are a checkpoint of another format version, -1 when they are not a whole
 * valid checkpoint. */
int vpq_ckpt_decode(const void *data, size_t len, vpq_ckpt_file *out, char *err, size_t err_size);

/* Frees the state a read or decode returned. */
void vpq_ckpt_file_free(vpq_ckpt_file *file);

#endif
