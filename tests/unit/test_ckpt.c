/* test_ckpt.c — unit tests of checkpoint files (vpq_ckpt.h): a checkpoint of another format
 * version is told apart from a damaged one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vpq_ckpt.h"

enum { HEADER = 56 }; /* magic, version, pad, epoch, fingerprint, raw length, compressed length, checksum */

/* Writes checkpoint 7 of a small state into a fresh folder; returns the folder. */
static char *write_one(void) {
  static char dir[32];
  strcpy(dir, "/tmp/vpq-test-ckpt-XXXXXX");
  assert_non_null(mkdtemp(dir));
  vpq_buf state = {0};
  vpq_buf_append(&state, "some operator state", 19);
  char err[256];
  assert_int_equal(vpq_ckpt_write(dir, 7, 42, &state, err, sizeof err), 0);
  free(state.data);
  return dir;
}

/* The whole file of checkpoint 7 in dir. */
static uint8_t *read_seven(const char *dir, char *path, size_t size, size_t *len) {
  snprintf(path, size, "%s/checkpoint-%016llx.vpqc", dir, 7ULL);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  uint8_t *data = malloc(4096);
  *len = fread(data, 1, 4096, f);
  fclose(f);
  return data;
}

/* Replaces the file at path by data. */
static void write_back(const char *path, const uint8_t *data, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
}

/* Removes the checkpoint and its folder. */
static void remove_folder(const char *dir, const char *path) {
  unlink(path);
  rmdir(dir);
}

/* The version field set to 1 with a checksum that covers it: another vpq's checkpoint, which
 * stops the run (-1) instead of being skipped. */
static void another_version_is_refused(void **state) {
  (void)state;
  char *dir = write_one(), path[512];
  size_t len;
  uint8_t *data = read_seven(dir, path, sizeof path, &len);
  vpq_ckpt_file file;
  char err[256];
  assert_int_equal(vpq_ckpt_decode(data, len, &file, err, sizeof err), 0);
  assert_int_equal(file.epoch, 7);
  vpq_ckpt_file_free(&file);
  data[8] = 1, data[9] = data[10] = data[11] = 0;
  uint64_t sum = vpq_ckpt_hash(data, 48, vpq_ckpt_hash(data + HEADER, len - HEADER, 0));
  for (int i = 0; i < 8; i++) data[48 + i] = (uint8_t)(sum >> (8 * i));
  assert_int_equal(vpq_ckpt_decode(data, len, &file, err, sizeof err), -2);
  assert_non_null(strstr(err, "checkpoint format version 1, this vpq reads version"));
  write_back(path, data, len);
  FILE *log = tmpfile();
  assert_int_equal(vpq_ckpt_read_newest(dir, &file, log), -1);
  fclose(log);
  free(data);
  remove_folder(dir, path);
}

/* A version field damaged on disk (the checksum no longer holds): a damaged file, skipped; with
 * no other checkpoint in the folder the run's state cannot be read, and starting over would
 * write its output again: refused, naming --reset-state. */
static void damaged_version_is_invalid(void **state) {
  (void)state;
  char *dir = write_one(), path[512];
  size_t len;
  uint8_t *data = read_seven(dir, path, sizeof path, &len);
  data[8] ^= 0x04;
  vpq_ckpt_file file;
  char err[256];
  assert_int_equal(vpq_ckpt_decode(data, len, &file, err, sizeof err), -1);
  assert_string_equal(err, "checksum mismatch");
  write_back(path, data, len);
  FILE *log = tmpfile();
  assert_int_equal(vpq_ckpt_read_newest(dir, &file, log), -1);
  rewind(log);
  char text[1024] = {0};
  assert_true(fread(text, 1, sizeof text - 1, log) > 0);
  assert_non_null(strstr(text, "is invalid (checksum mismatch)\n"));
  assert_non_null(strstr(text, "can be read: run with --reset-state to start over"));
  fclose(log);
  free(data);
  remove_folder(dir, path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(another_version_is_refused),
      cmocka_unit_test(damaged_version_is_invalid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
