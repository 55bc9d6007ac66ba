/* roundtrip.c — the checkpoint round-trip test of one case folder: a run that is stopped,
 * checkpointed and restored into a new engine must give exactly the output of a run that
 * never stopped.
 *
 *   test_checkpoint_roundtrip CASE_DIR
 *
 * CASE_DIR/query.vpq declares push sources (no connector needed); CASE_DIR/input.txt holds one
 * event per line, `RELATION<TAB>{json row}` (pushed with vpq_engine_push_json) or
 * `tick<TAB>EPOCH_MS` (vpq_engine_tick). The output is every row every relation emits
 * (`relation diff json`), up to and including vpq_engine_finish. The test compares:
 *   - a restore after every event (every 1/64th of the input for long inputs);
 *   - a chain of restores, one after every few events;
 *   - damaged state (bytes flipped, cut short): vpq_engine_load_state refuses it or loads it,
 *     never crashes (the sanitizer build checks for leaks and undefined behaviour).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpq.h"

typedef struct event {
  char *relation; /* NULL: a tick */
  char *json;
  long long tick_ms;
} event;

typedef struct capture {
  char *data;
  size_t len;
  FILE *out;
} capture;

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)size + 1);
  if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) exit(2);
  text[size] = '\0';
  fclose(f);
  return text;
}

static int read_events(char *text, event **out) {
  int n = 0, cap = 0;
  event *events = NULL;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    char *tab = strchr(line, '\t');
    if (!tab || line[0] == '#') continue;
    *tab = '\0';
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      events = realloc(events, sizeof *events * (size_t)cap);
      if (!events) exit(2);
    }
    if (strcmp(line, "tick") == 0) events[n++] = (event){NULL, NULL, atoll(tab + 1)};
    else events[n++] = (event){line, tab + 1, 0};
  }
  *out = events;
  return n;
}

static void on_row(void *ctx, const char *relation, const char *json, int diff) {
  capture *c = ctx;
  fprintf(c->out, "%s %+d %s\n", relation, diff, json);
}

static const char *query_file;
static char *query_text;

static vpq_engine *engine_open(capture *c) {
  vpq_engine *e = vpq_engine_new();
  if (vpq_engine_load(e, query_file, query_text, stderr) != 0) exit(2);
  const char *names[256];
  bool is_table[256];
  int n = vpq_engine_relations(e, names, is_table, 256);
  for (int i = 0; i < n; i++) vpq_engine_subscribe(e, names[i], on_row, c);
  return e;
}

static void push(vpq_engine *e, const event *ev) {
  char err[256];
  if (!ev->relation) vpq_engine_tick(e, ev->tick_ms);
  else vpq_engine_push_json(e, ev->relation, ev->json, err, sizeof err);
}

/* Swaps `e` for a new engine restored from its state. */
static vpq_engine *restore(vpq_engine *e, capture *c, int at) {
  char *state;
  size_t len;
  if (vpq_engine_save_state(e, &state, &len) != 0) exit(2);
  vpq_engine_free(e);
  vpq_engine *fresh = engine_open(c);
  char err[256];
  if (vpq_engine_load_state(fresh, state, len, err, sizeof err) != 0) {
    fprintf(stderr, "restore after event %d: %s\n", at, err);
    exit(1);
  }
  free(state);
  return fresh;
}

/* Runs the events, restoring after event i whenever restore_at[i]; returns the output. */
static char *run(const event *events, int n, const bool *restore_at) {
  capture c = {0};
  c.out = open_memstream(&c.data, &c.len);
  vpq_engine *e = engine_open(&c);
  for (int i = 0; i < n; i++) {
    push(e, &events[i]);
    if (restore_at && restore_at[i]) e = restore(e, &c, i);
  }
  vpq_engine_finish(e);
  vpq_engine_free(e);
  fclose(c.out);
  return c.data;
}

static int compare(const char *want, const char *got, const char *what) {
  if (strcmp(want, got) == 0) return 0;
  size_t at = 0, line_start = 0;
  int line = 1;
  while (want[at] && want[at] == got[at]) {
    if (want[at] == '\n') {
      line++;
      line_start = at + 1;
    }
    at++;
  }
  int wlen = (int)strcspn(want + line_start, "\n"), glen = (int)strcspn(got + line_start, "\n");
  fprintf(stderr, "%s: output differs from the uninterrupted run at line %d\n  want: %.*s\n  got:  %.*s\n", what,
          line, wlen, want + line_start, glen, got + line_start);
  return 1;
}

/* Damaged state must be refused or loaded, never crash. */
static void damage(const event *events, int n) {
  capture c = {0};
  c.out = open_memstream(&c.data, &c.len);
  vpq_engine *e = engine_open(&c);
  for (int i = 0; i < n / 2; i++) push(e, &events[i]);
  char *state;
  size_t len;
  vpq_engine_save_state(e, &state, &len);
  vpq_engine_free(e);
  int refused = 0, tries = 0;
  for (size_t at = 0; at < len; at += 1 + len / 97) {
    for (int kind = 0; kind < 3; kind++) {
      char *copy = malloc(len + 1);
      memcpy(copy, state, len);
      size_t use = len;
      if (kind == 0) copy[at] ^= 0x41;
      else if (kind == 1) copy[at] = (char)0xff;
      else use = at;
      vpq_engine *fresh = engine_open(&c);
      char err[256];
      refused += vpq_engine_load_state(fresh, copy, use, err, sizeof err) != 0;
      tries++;
      vpq_engine_free(fresh);
      free(copy);
    }
  }
  free(state);
  fclose(c.out);
  free(c.data);
  printf("damaged state: %d of %d variants refused, none crashed\n", refused, tries);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_checkpoint_roundtrip CASE_DIR\n");
    return 2;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/query.vpq", argv[1]);
  query_file = strdup(path);
  query_text = slurp(path);
  snprintf(path, sizeof path, "%s/input.txt", argv[1]);
  char *input = slurp(path);
  event *events;
  int n = read_events(input, &events);
  char *want = run(events, n, NULL);
  if (!*want) {
    fprintf(stderr, "the case produces no output\n");
    return 1;
  }
  bool *restore_at = calloc((size_t)n + 1, sizeof *restore_at);
  int failures = 0, stride = n > 64 ? n / 64 : 1;
  for (int at = 0; at < n && !failures; at += stride) {
    memset(restore_at, 0, (size_t)n);
    restore_at[at] = true;
    char *got = run(events, n, restore_at);
    char what[64];
    snprintf(what, sizeof what, "restore after event %d", at);
    failures += compare(want, got, what);
    free(got);
  }
  memset(restore_at, 0, (size_t)n);
  for (int at = 0; at < n; at += 3) restore_at[at] = true;
  char *got = run(events, n, restore_at);
  failures += compare(want, got, "a restore after every third event");
  free(got);
  damage(events, n);
  printf("%d events, %zu bytes of output, restores compared: %s\n", n, strlen(want), failures ? "FAILED" : "ok");
  free(restore_at);
  free(want);
  free(events);
  free(input);
  free(query_text);
  free((char *)query_file);
  return failures ? 1 : 0;
}
