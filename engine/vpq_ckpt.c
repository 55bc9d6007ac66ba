/* vpq_ckpt.c — the checkpoint byte format (varints, doubles, datums) and checkpoint files:
 * zstd-compressed, checksummed, written atomically, the newest two kept, one process per
 * state folder (vpq_ckpt.h). zstd is used at level 1: checkpoints are taken every few
 * seconds, so speed matters more than the last percent of size.
 */
#include "vpq_ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

/* ===== Writing state ===== */

void vpq_ckpt_put_u64(vpq_ckpt_out *out, uint64_t value) {
  vpq_buf_reserve(&out->buf, 10);
  uint8_t *p = (uint8_t *)out->buf.data + out->buf.len;
  size_t n = 0;
  do {
    uint8_t b = value & 0x7f;
    value >>= 7;
    p[n++] = (uint8_t)(b | (value ? 0x80 : 0));
  } while (value);
  out->buf.len += n;
}

void vpq_ckpt_put_i64(vpq_ckpt_out *out, int64_t value) {
  vpq_ckpt_put_u64(out, ((uint64_t)value << 1) ^ (uint64_t)(value >> 63));
}

void vpq_ckpt_put_f64(vpq_ckpt_out *out, double value) {
  uint64_t bits;
  memcpy(&bits, &value, sizeof bits);
  char bytes[8];
  for (int i = 0; i < 8; i++) bytes[i] = (char)(bits >> (8 * i));
  vpq_buf_append(&out->buf, bytes, 8);
}

void vpq_ckpt_put_bytes(vpq_ckpt_out *out, const void *bytes, size_t len) {
  vpq_ckpt_put_u64(out, len);
  if (len) vpq_buf_append(&out->buf, bytes, len);
}

void vpq_ckpt_put_datums(vpq_ckpt_out *out, const vpq_datum *data, const uint8_t *null, int n) {
  for (int i = 0; i < n; i++) {
    vpq_ckpt_put_u64(out, null[i] ? 1 : 0);
    if (!null[i]) vpq_ckpt_put_i64(out, data[i].i);
  }
}

/* ===== Reading state ===== */

vpq_ckpt_in vpq_ckpt_in_init(const void *data, size_t len) {
  const uint8_t *p = data;
  return (vpq_ckpt_in){p, p + len, NULL};
}

void vpq_ckpt_fail(vpq_ckpt_in *in, const char *why) {
  if (!in->error) in->error = why;
  in->p = in->end;
}

uint64_t vpq_ckpt_get_u64(vpq_ckpt_in *in) {
  uint64_t value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in->p >= in->end) {
      vpq_ckpt_fail(in, "state ends inside a value");
      return 0;
    }
    uint8_t b = *in->p++;
    value |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return value;
  }
  vpq_ckpt_fail(in, "malformed integer");
  return 0;
}

int64_t vpq_ckpt_get_i64(vpq_ckpt_in *in) {
  uint64_t z = vpq_ckpt_get_u64(in);
  return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
}

double vpq_ckpt_get_f64(vpq_ckpt_in *in) {
  if (in->end - in->p < 8) {
    vpq_ckpt_fail(in, "state ends inside a value");
    return 0;
  }
  uint64_t bits = 0;
  for (int i = 0; i < 8; i++) bits |= (uint64_t)in->p[i] << (8 * i);
  in->p += 8;
  double value;
  memcpy(&value, &bits, sizeof value);
  return value;
}

bool vpq_ckpt_get_bool(vpq_ckpt_in *in) {
  uint64_t v = vpq_ckpt_get_u64(in);
  if (v > 1) vpq_ckpt_fail(in, "malformed flag");
  return v == 1;
}

int64_t vpq_ckpt_get_at_most(vpq_ckpt_in *in, int64_t max) {
  uint64_t n = vpq_ckpt_get_u64(in);
  if (in->error) return 0;
  if (n > (uint64_t)max) {
    vpq_ckpt_fail(in, "a number out of range");
    return 0;
  }
  return (int64_t)n;
}

int64_t vpq_ckpt_get_count(vpq_ckpt_in *in, int64_t max) {
  uint64_t n = vpq_ckpt_get_u64(in);
  if (in->error) return 0;
  if (n > (uint64_t)max || n > (uint64_t)(in->end - in->p)) {
    vpq_ckpt_fail(in, "a count larger than the state holds");
    return 0;
  }
  return (int64_t)n;
}

const void *vpq_ckpt_get_bytes(vpq_ckpt_in *in, size_t *len) {
  uint64_t n = vpq_ckpt_get_u64(in);
  if (in->error || n > (uint64_t)(in->end - in->p)) {
    vpq_ckpt_fail(in, "state ends inside a value");
    *len = 0;
    return NULL;
  }
  const void *bytes = in->p;
  in->p += n;
  *len = (size_t)n;
  return bytes;
}

void vpq_ckpt_get_datums(vpq_ckpt_in *in, vpq_datum *data, uint8_t *null, int n) {
  for (int i = 0; i < n; i++) {
    null[i] = vpq_ckpt_get_bool(in);
    data[i].i = null[i] ? 0 : vpq_ckpt_get_i64(in);
  }
}

/* ===== Checkpoint files ===== */

static const char CKPT_MAGIC[8] = {'V', 'P', 'Q', 'C', 'K', 'P', 'T', '1'};
enum { CKPT_HEADER = 56, CKPT_KEEP = 2 };

uint64_t vpq_ckpt_hash(const void *data, size_t len, uint64_t seed) {
  const uint8_t *p = data;
  uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ull);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    h = (h ^ (v * 0xff51afd7ed558ccdull)) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
  }
  for (; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

static void put_le(uint8_t *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

int vpq_ckpt_lock(const char *dir, char *err, size_t err_size) {
  if (!*dir) {
    snprintf(err, err_size, "the state folder is named by an empty path");
    return -1;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s", dir);
  for (char *p = path + 1;; p++) { /* the folder and its parents */
    bool end = *p == '\0';
    if (*p != '/' && !end) continue;
    *p = '\0';
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
      snprintf(err, err_size, "cannot create state folder %s: %s", path, strerror(errno));
      return -1;
    }
    if (end) break;
    *p = '/';
  }
  snprintf(path, sizeof path, "%s/LOCK", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = "";
    ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    snprintf(err, err_size, "state folder %s is in use by another vpq process%s%s%s", dir, *pid ? " (pid " : "",
             pid, *pid ? ")" : "");
    close(fd);
    return -2;
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (pwrite(fd, pid, (size_t)n, 0) != n || ftruncate(fd, n) != 0) {
    /* The pid is only informative: the lock itself is held. */
  }
  return fd;
}

void vpq_ckpt_unlock(int fd) {
  if (fd >= 0) close(fd);
}

/* The epochs of the checkpoint files of `dir`, newest first; returns how many (at most max). */
static int list_epochs(const char *dir, uint64_t *epochs, int max) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *ent;
  while ((ent = readdir(d)) && n < max) {
    unsigned long long epoch;
    char tail[8];
    if (sscanf(ent->d_name, "checkpoint-%16llx.%7s", &epoch, tail) == 2 && strcmp(tail, "vpqc") == 0)
      epochs[n++] = epoch;
  }
  closedir(d);
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && epochs[j] > epochs[j - 1]; j--) {
      uint64_t t = epochs[j];
      epochs[j] = epochs[j - 1];
      epochs[j - 1] = t;
    }
  return n;
}

static void epoch_path(char *path, size_t size, const char *dir, uint64_t epoch) {
  snprintf(path, size, "%s/checkpoint-%016llx.vpqc", dir, (unsigned long long)epoch);
}

void vpq_ckpt_remove_all(const char *dir) {
  uint64_t epochs[256];
  int n = list_epochs(dir, epochs, 256);
  char path[4096];
  for (int i = 0; i < n; i++) {
    epoch_path(path, sizeof path, dir, epochs[i]);
    unlink(path);
  }
}

static bool write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= (size_t)n;
  }
  return true;
}

int vpq_ckpt_write(const char *dir, uint64_t epoch, uint64_t fingerprint, const vpq_buf *state, char *err,
                   size_t err_size) {
  size_t bound = ZSTD_compressBound(state->len);
  uint8_t *file = malloc(CKPT_HEADER + bound);
  if (!file) abort();
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  if (!cctx) abort();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  /* A large state compresses on two threads (the engine waits for the checkpoint either way);
   * a zstd without thread support refuses the parameter and compresses on this one. */
  if (state->len >= (8u << 20)) ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, 2);
  size_t clen = ZSTD_compress2(cctx, file + CKPT_HEADER, bound, state->data ? state->data : "", state->len);
  ZSTD_freeCCtx(cctx);
  if (ZSTD_isError(clen)) {
    snprintf(err, err_size, "compressing the checkpoint: %s", ZSTD_getErrorName(clen));
    free(file);
    return -1;
  }
  memcpy(file, CKPT_MAGIC, 8);
  put_le(file + 8, VPQ_CKPT_VERSION, 4);
  put_le(file + 12, 0, 4);
  put_le(file + 16, epoch, 8);
  put_le(file + 24, fingerprint, 8);
  put_le(file + 32, state->len, 8);
  put_le(file + 40, clen, 8);
  uint64_t sum = vpq_ckpt_hash(file, 48, vpq_ckpt_hash(file + CKPT_HEADER, clen, 0));
  put_le(file + 48, sum, 8);

  char tmp[4096], path[4096];
  snprintf(tmp, sizeof tmp, "%s/checkpoint.tmp", dir);
  epoch_path(path, sizeof path, dir, epoch);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  bool ok = fd >= 0 && write_all(fd, file, CKPT_HEADER + clen) && fsync(fd) == 0;
  int saved = errno;
  if (fd >= 0 && close(fd) != 0 && ok) {
    ok = false;
    saved = errno;
  }
  free(file);
  if (ok && rename(tmp, path) != 0) {
    ok = false;
    saved = errno;
  }
  if (!ok) {
    snprintf(err, err_size, "writing checkpoint %llu in %s: %s (the previous checkpoint stays valid)",
             (unsigned long long)epoch, dir, strerror(saved));
    unlink(tmp);
    return -1;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  uint64_t epochs[256];
  int n = list_epochs(dir, epochs, 256);
  for (int i = CKPT_KEEP; i < n; i++) {
    epoch_path(path, sizeof path, dir, epochs[i]);
    unlink(path);
  }
  return 0;
}

int vpq_ckpt_decode(const void *data, size_t len, vpq_ckpt_file *out, char *err, size_t err_size) {
  const uint8_t *p = data;
  memset(out, 0, sizeof *out);
  if (len < CKPT_HEADER || memcmp(p, CKPT_MAGIC, 8) != 0) {
    snprintf(err, err_size, "not a vpq checkpoint (%zu bytes)", len);
    return -1;
  }
  uint64_t version = get_le(p + 8, 4), raw = get_le(p + 32, 8), clen = get_le(p + 40, 8);
  if (clen != len - CKPT_HEADER) {
    snprintf(err, err_size, "truncated: %zu bytes of %llu", len - CKPT_HEADER, (unsigned long long)clen);
    return -1;
  }
  if (vpq_ckpt_hash(p, 48, vpq_ckpt_hash(p + CKPT_HEADER, clen, 0)) != get_le(p + 48, 8)) {
    snprintf(err, err_size, "checksum mismatch");
    return -1;
  }
  /* After the checksum (every version so far has this header): a damaged version field is a
   * damaged file, not another vpq's. */
  if (version != VPQ_CKPT_VERSION) {
    snprintf(err, err_size, "checkpoint format version %llu, this vpq reads version %d", (unsigned long long)version,
             VPQ_CKPT_VERSION);
    return -2;
  }
  unsigned long long frame = ZSTD_getFrameContentSize(p + CKPT_HEADER, clen);
  if (frame != raw || raw > ((uint64_t)1 << 40)) {
    snprintf(err, err_size, "state size does not match its header");
    return -1;
  }
  char *state = malloc(raw ? raw : 1);
  if (!state) {
    snprintf(err, err_size, "no memory for %llu bytes of state", (unsigned long long)raw);
    return -1;
  }
  size_t got = ZSTD_decompress(state, raw, p + CKPT_HEADER, clen);
  if (ZSTD_isError(got) || got != raw) {
    snprintf(err, err_size, "corrupt: %s", ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short state");
    free(state);
    return -1;
  }
  out->epoch = get_le(p + 16, 8);
  out->fingerprint = get_le(p + 24, 8);
  out->state = state;
  out->len = raw;
  return 0;
}

/* Reads the whole file at `path` into a malloc'ed buffer; NULL with errno set on failure. */
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  vpq_buf buf = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) vpq_buf_append(&buf, chunk, n);
  fclose(f);
  *len = buf.len;
  if (!buf.data) vpq_buf_reserve(&buf, 1);
  return buf.data;
}

int vpq_ckpt_read_newest(const char *dir, vpq_ckpt_file *out, FILE *log) {
  uint64_t epochs[256];
  int n = list_epochs(dir, epochs, 256);
  for (int i = 0; i < n; i++) {
    char path[4096], err[256];
    epoch_path(path, sizeof path, dir, epochs[i]);
    size_t len = 0;
    char *data = read_file(path, &len);
    if (!data) {
      fprintf(log, "vpq: checkpoint %s: %s%s\n", path, strerror(errno), i + 1 < n ? "; trying the previous one" : "");
      continue;
    }
    int rc = vpq_ckpt_decode(data, len, out, err, sizeof err);
    free(data);
    if (rc == 0 && out->epoch != epochs[i]) {
      snprintf(err, sizeof err, "holds epoch %llu", (unsigned long long)out->epoch);
      vpq_ckpt_file_free(out);
      rc = -1;
    }
    if (rc == 0) {
      struct stat st;
      out->written_ms = stat(path, &st) == 0 ? (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000 : 0;
      out->older = i > 0;
      return 1;
    }
    if (rc == -2) {
      fprintf(log, "vpq: checkpoint %s was written by another version of vpq (%s): run with --reset-state to start "
              "over without it\n", path, err);
      return -1;
    }
    fprintf(log, "vpq: checkpoint %s is invalid (%s)%s\n", path, err, i + 1 < n ? "; trying the previous one" : "");
  }
  if (n > 0) {
    /* The output of the run they held is out there: starting over would write it again. */
    fprintf(log, "vpq: no checkpoint in %s can be read: run with --reset-state to start over (the output is then "
            "written again)\n", dir);
    return -1;
  }
  return 0;
}

void vpq_ckpt_file_free(vpq_ckpt_file *file) {
  free(file->state);
  file->state = NULL;
  file->len = 0;
}
