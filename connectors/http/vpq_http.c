/* vpq_http.c — the HTTP server of `vpq run --http ADDR` (vpq_http.h, docs/http.md), on
 * libmicrohttpd with one thread per connection.
 *
 * The engine's subscriber callback (on_row, on the engine's thread) and the request handlers
 * (MHD's threads) share the server's state under one mutex: each table's current rows (a
 * multiset of their JSON texts in a hash table), each stream's newest rows (for ?last=N) and
 * its event-stream clients' queues, per-relation counters, and a copy of the engine's counters
 * taken in on_row. Handlers never call into the engine; the plans and statements they show
 * are captured at start. An event-stream client's reader blocks on its own condition variable
 * until rows arrive (the engine signals it only when its queue was empty, and the reader lets
 * them gather for COALESCE_MS), or sends a keep-alive comment after 15 s, checking every
 * second whether the client hung up (its thread is freed then, not at the next write); a
 * client whose queue outgrows QUEUE_CAP is sent `event: overflow` and disconnected, so a slow
 * client never holds up the engine. Each stream numbers its rows (the events' `id:`), so a client that
 * reconnects with Last-Event-ID is sent the recent rows it missed. With a token set, every
 * request but /healthz must carry it as a bearer token.
 *
 * POST /api/query copies the rows of the tables its text names under the mutex, then runs the
 * query in an engine of its own on the request's thread (vpq_http_query.h), at most
 * MAX_QUERIES at once. The pages and scripts (the dashboard, /embed, uPlot) are compiled in
 * (vpq_http_assets.h) and served as they are.
 */
#include "vpq_http.h"

#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <time.h>

#include "vpq_codec.h"
#include "vpq_http_assets.h"
#include "vpq_http_query.h"
#include "vpq_clock.h"

enum {
  RECENT = 1024,             /* rows kept per stream for ?last=N and Last-Event-ID */
  QUEUE_CAP = 1 << 20,       /* bytes an event-stream client may fall behind by */
  KEEPALIVE_S = 15,          /* an idle event stream gets a comment this often */
  HANGUP_CHECK_MS = 1000,    /* an idle event stream checks this often whether its client left */
  MAX_CONNECTIONS = 256,     /* one thread each: 100 event streams and more */
  MAX_STREAMS = MAX_CONNECTIONS - 32, /* event streams: the rest stays for /healthz and the API */
  IDLE_TIMEOUT_S = 60,       /* a connection that sends nothing is closed after this */
  DRAIN_MS = 2000,           /* vpq_http_stop waits this long for clients to take their queue */
  COALESCE_MS = 20,          /* an event stream's rows wait this long for more before being sent */
  COALESCE_BYTES = 8192,     /* ... unless they are this many bytes already */
  MAX_WHERE = 16,            /* where= conditions per table request */
  MAX_QUERY_BYTES = 65536,   /* the longest POST /api/query body */
  MAX_QUERIES = 4,           /* ad-hoc queries running at once */
};

/* A distinct row of a table and how many times it is there. */
typedef struct row_entry {
  struct row_entry *next;
  uint64_t hash;
  int64_t count;
  size_t len;
  char json[];
} row_entry;

typedef struct relation relation;

/* An open GET /api/streams/NAME: what it has not yet sent is queue.data[start..len). */
typedef struct client {
  relation *rel;
  int fd;        /* the connection's socket */
  vpq_buf queue;
  size_t start;
  bool overflow; /* fell behind by QUEUE_CAP: sends `event: overflow`, then ends */
  bool closing;  /* its last bytes are queued */
  pthread_cond_t wake; /* rows for an empty queue, or ending */
  int64_t since; /* when the engine queued a row for the empty queue (monotonic ms) */
  struct client *prev, *next;
} client;

struct relation {
  vpq_http *http;
  char *name;
  bool is_table;
  char *plan;             /* vpq_engine_explain_relation */
  vpq_buf statements;     /* JSON strings, comma-separated: its CREATE and INSERT INTO texts */
  int64_t rows_out;       /* rows emitted with diff +1 */
  bool has_event_time;
  int64_t event_ms;       /* the newest issued_at (else ts) of its rows */
  /* a table */
  row_entry **buckets;
  size_t nbuckets, nentries;
  int64_t nrows;
  /* a stream: the newest rows, recent[(next - n + i) % RECENT] for i < n, oldest first; the
   * newest is event `seq` (the rows emitted so far), so recent[...i] is seq - n + 1 + i */
  int64_t seq;
  vpq_buf *recent;
  int recent_next, recent_n;
  client *clients;
  int nclients;
};

struct vpq_http {
  struct MHD_Daemon *daemon;
  vpq_engine *engine;
  char *token;            /* required as `Authorization: Bearer TOKEN`; NULL: none */
  pthread_mutex_t lock;
  pthread_cond_t drained; /* the last event stream has ended */
  relation *rels;
  int nrels;
  vpq_stats stats;        /* as of the newest row */
  bool ending;
  int nclients;
  int nqueries;           /* ad-hoc queries running (atomic) */
  int port;
  bool started;           /* MHD's log messages are wanted only while starting */
  char start_error[256];
};

/* ===== Helpers ===== */

/* The monotonic clock time `ms` (for the condition variables, which use that clock). */
static struct timespec monotonic_at(int64_t ms) {
  return (struct timespec){.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
}

/* Whether the client on socket `fd` has closed its end. */
static bool hung_up(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLRDHUP};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Initialises a condition variable whose timed waits use the monotonic clock. */
static void init_cond(pthread_cond_t *cond) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(cond, &attr);
  pthread_condattr_destroy(&attr);
}

/* FNV-1a. */
static uint64_t hash_bytes(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

/* The stream or table called `name` (case-insensitively), or NULL. */
static relation *find_relation(vpq_http *h, const char *name) {
  for (int i = 0; i < h->nrels; i++)
    if (strcasecmp(h->rels[i].name, name) == 0) return &h->rels[i];
  return NULL;
}

/* Skips the JSON value at `p` (a string, number or literal, or an array or object); returns
 * the `,`, `}` or `]` after it, or the end of the text. */
static const char *skip_value(const char *p) {
  int depth = 0;
  while (*p) {
    if (*p == '"') {
      for (p++; *p && *p != '"';) p += *p == '\\' && p[1] ? 2 : 1;
      if (*p) p++;
      continue;
    }
    if (depth == 0 && (*p == ',' || *p == '}' || *p == ']')) return p;
    if (*p == '[' || *p == '{') depth++;
    else if (*p == ']' || *p == '}') depth--;
    p++;
  }
  return p;
}

/* Finds top-level field `name` (matched case-insensitively) of a JSON object the engine wrote
 * (no blanks): its value's text is *value, *len bytes long. */
static bool field_text(const char *json, const char *name, const char **value, size_t *len) {
  size_t n = strlen(name);
  const char *p = json + 1;
  while (*p == '"') {
    const char *key = ++p;
    while (*p && *p != '"') p += *p == '\\' && p[1] ? 2 : 1;
    bool match = (size_t)(p - key) == n && strncasecmp(key, name, n) == 0;
    if (*p++ != '"' || *p++ != ':') return false;
    const char *end = skip_value(p);
    if (match) {
      *value = p;
      *len = (size_t)(end - p);
      return true;
    }
    if (*end != ',') return false;
    p = end + 1;
  }
  return false;
}

/* The integer value of top-level field `name` of a JSON object the engine wrote. */
static bool integer_field(const char *json, const char *name, int64_t *out) {
  const char *value;
  size_t len;
  char text[24];
  if (!field_text(json, name, &value, &len) || len == 0 || len >= sizeof text) return false;
  memcpy(text, value, len);
  text[len] = '\0';
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (end != text + len || errno) return false;
  *out = v;
  return true;
}

/* ===== Tables: a multiset of the rows' JSON texts ===== */

/* The link to the table's entry for row `json`, or the NULL link to put it at. */
static row_entry **table_find(relation *rel, const char *json, size_t len, uint64_t hash) {
  row_entry **at = &rel->buckets[hash & (rel->nbuckets - 1)];
  while (*at && !((*at)->hash == hash && (*at)->len == len && memcmp((*at)->json, json, len) == 0)) at = &(*at)->next;
  return at;
}

/* Doubles the table's buckets (64 at first). */
static void table_grow(relation *rel) {
  size_t n = rel->nbuckets ? rel->nbuckets * 2 : 64;
  row_entry **buckets = calloc(n, sizeof *buckets);
  if (!buckets) abort();
  for (size_t b = 0; b < rel->nbuckets; b++)
    for (row_entry *e = rel->buckets[b], *next; e; e = next) {
      next = e->next;
      e->next = buckets[e->hash & (n - 1)];
      buckets[e->hash & (n - 1)] = e;
    }
  free(rel->buckets);
  rel->buckets = buckets;
  rel->nbuckets = n;
}

/* Adds (diff > 0) or retracts (diff < 0) a row of a table. */
static void table_apply(relation *rel, const char *json, size_t len, int diff) {
  if (rel->nentries >= rel->nbuckets) table_grow(rel);
  uint64_t hash = hash_bytes(json, len);
  row_entry **at = table_find(rel, json, len, hash);
  row_entry *e = *at;
  if (!e) {
    if (diff <= 0) return;
    e = malloc(sizeof *e + len + 1);
    if (!e) abort();
    *e = (row_entry){.next = NULL, .hash = hash, .count = 0, .len = len};
    memcpy(e->json, json, len + 1);
    *at = e;
    rel->nentries++;
  }
  int64_t before = e->count;
  e->count += diff;
  rel->nrows += (e->count > 0 ? e->count : 0) - before;
  if (e->count <= 0) {
    *at = e->next;
    free(e);
    rel->nentries--;
  }
}

/* Frees a table's rows and buckets. */
static void table_free(relation *rel) {
  for (size_t b = 0; b < rel->nbuckets; b++)
    for (row_entry *e = rel->buckets[b], *next; e; e = next) {
      next = e->next;
      free(e);
    }
  free(rel->buckets);
}

/* ===== Streams: recent rows and client queues ===== */

/* Appends to a client's queue, first moving what it has not sent to the front when that
 * saves growing the buffer. */
static void queue_append(client *c, const char *bytes, size_t len) {
  if (c->start && c->queue.len + len >= c->queue.cap) {
    memmove(c->queue.data, c->queue.data + c->start, c->queue.len - c->start);
    c->queue.len -= c->start;
    c->start = 0;
  }
  vpq_buf_append(&c->queue, bytes, len);
}

/* Where a client's queue may be cut: after the event its reader has handed on in part (MHD may
 * take part of an event; the client must get the rest before anything else), or at its start. */
static size_t whole_events_end(const client *c) {
  const char *q = c->queue.data;
  for (size_t i = c->start; i + 1 < c->queue.len; i++)
    if (q[i] == '\n' && q[i + 1] == '\n') return i + 2;
  return c->start;
}

/* Queues event `id` (row `json`) for a client, or marks it overflowing: the events not yet begun
 * are dropped, `event: overflow` follows the one being sent. */
static void queue_row(client *c, int64_t id, const char *json, size_t len) {
  if (c->overflow || c->closing) return;
  char head[40];
  int head_len = snprintf(head, sizeof head, "id: %lld\ndata: ", (long long)id);
  if (c->queue.len - c->start + (size_t)head_len + len + 2 > QUEUE_CAP) {
    c->overflow = true;
    c->queue.len = whole_events_end(c);
    if (c->start == c->queue.len) c->start = c->queue.len = 0;
    return;
  }
  queue_append(c, head, (size_t)head_len);
  queue_append(c, json, len);
  queue_append(c, "\n\n", 2);
}

/* Keeps a stream's new row among the recent ones and queues it for its clients, waking those
 * whose queue was empty. */
static void stream_append(relation *rel, const char *json, size_t len) {
  vpq_buf *slot = &rel->recent[rel->recent_next];
  slot->len = 0;
  vpq_buf_append(slot, json, len);
  rel->recent_next = (rel->recent_next + 1) % RECENT;
  if (rel->recent_n < RECENT) rel->recent_n++;
  rel->seq++;
  int64_t now = rel->clients ? vpq_clock_monotonic_ms() : 0;
  for (client *c = rel->clients; c; c = c->next) {
    bool was_empty = c->start == c->queue.len;
    queue_row(c, rel->seq, json, len);
    if (was_empty) { /* a client with rows queued already is awake or will be */
      c->since = now;
      pthread_cond_signal(&c->wake);
    }
  }
}

/* ===== The engine's side ===== */

/* The engine's subscriber callback: takes in a row of relation `ctx` and the engine's counters. */
static void on_row(void *ctx, const char *relation_name, const char *json, int diff) {
  (void)relation_name;
  relation *rel = ctx;
  vpq_http *h = rel->http;
  size_t len = strlen(json);
  int64_t event_ms;
  bool timed = diff > 0 && (integer_field(json, "issued_at", &event_ms) || integer_field(json, "ts", &event_ms));
  pthread_mutex_lock(&h->lock);
  h->stats = vpq_engine_stats(h->engine);
  if (diff > 0) rel->rows_out++;
  if (timed && (!rel->has_event_time || event_ms > rel->event_ms)) {
    rel->event_ms = event_ms;
    rel->has_event_time = true;
  }
  if (rel->is_table) table_apply(rel, json, len, diff);
  else stream_append(rel, json, len);
  pthread_mutex_unlock(&h->lock);
}

/* ===== Responses ===== */

/* Gives the response `r` its headers and queues it (and drops this reference to it). */
static enum MHD_Result send_response(struct MHD_Connection *conn, unsigned status, const char *type,
                                     struct MHD_Response *r) {
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"vpq\"");
  enum MHD_Result result = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return result;
}

/* The response `body` (taken over); NULL when out of memory. */
static struct MHD_Response *response_of(vpq_buf *body) {
  struct MHD_Response *r = MHD_create_response_from_buffer(body->len, body->data, MHD_RESPMEM_MUST_FREE);
  if (!r) vpq_buf_free(body);
  return r;
}

/* Replies `body` (taken over). */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type, vpq_buf *body) {
  struct MHD_Response *r = response_of(body);
  return r ? send_response(conn, status, type, r) : MHD_NO;
}

/* Replies a string that lives as long as the program. */
static enum MHD_Result reply_static(struct MHD_Connection *conn, const char *type, const void *text, size_t len) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_PERSISTENT);
  return r ? send_response(conn, MHD_HTTP_OK, type, r) : MHD_NO;
}

/* Replies the error {"status":STATUS,"message":MESSAGE} (with "diagnostics":DIAGNOSTICS
 * unless NULL); a 405 names in `Allow` the method the path takes (`allow`). */
static enum MHD_Result reply_problem(struct MHD_Connection *conn, unsigned status, const char *allow,
                                     const char *message, const char *diagnostics) {
  vpq_buf body = {0};
  vpq_buf_printf(&body, "{\"status\":%u,\"message\":", status);
  vpq_json_encode_string(&body, message, strlen(message));
  if (diagnostics) {
    vpq_buf_puts(&body, ",\"diagnostics\":");
    vpq_json_encode_string(&body, diagnostics, strlen(diagnostics));
  }
  vpq_buf_puts(&body, "}\n");
  struct MHD_Response *r = response_of(&body);
  if (!r) return MHD_NO;
  if (allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
  return send_response(conn, status, "application/json", r);
}

/* Replies the error {"status":STATUS,"message":MESSAGE}, the message printf-style. */
__attribute__((format(printf, 3, 4))) static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned status,
                                                                         const char *fmt, ...) {
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  return reply_problem(conn, status, NULL, message, NULL);
}

/* Replies the compiled-in file served at `path` (vpq_http_assets.h), or 404. */
static enum MHD_Result reply_asset(struct MHD_Connection *conn, const char *path) {
  for (const vpq_http_asset *a = vpq_http_assets; a->path; a++)
    if (strcmp(a->path, path) == 0) return reply_static(conn, a->type, a->data, a->len);
  return reply_error(conn, MHD_HTTP_NOT_FOUND, "no such path: %s", path);
}

/* The query of GET /api/tables/NAME: its where= conditions and limit=. */
typedef struct row_filter {
  int nwhere;
  struct {
    char *column;   /* "COLUMN\0VALUE", allocated */
    const char *value;
    vpq_buf quoted; /* the value as a JSON string */
  } where[MAX_WHERE];
  long long limit;  /* -1: none */
  char error[256];  /* the first bad parameter; empty: none */
} row_filter;

/* MHD's iterator over a table request's query parameters: fills the row_filter `cls`, or
 * its error (and stops) at the first bad one. */
static enum MHD_Result add_filter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  (void)kind;
  row_filter *f = cls;
  if (strcmp(key, "where") == 0) {
    const char *eq = value ? strchr(value, '=') : NULL;
    if (!eq || eq == value) {
      snprintf(f->error, sizeof f->error, "where must be COLUMN=VALUE, not `%s`", value ? value : "");
      return MHD_NO;
    }
    if (f->nwhere == MAX_WHERE) {
      snprintf(f->error, sizeof f->error, "where: at most %d conditions", MAX_WHERE);
      return MHD_NO;
    }
    char *column = strdup(value);
    if (!column) abort();
    column[eq - value] = '\0';
    f->where[f->nwhere].column = column;
    f->where[f->nwhere].value = column + (eq - value) + 1;
    vpq_json_encode_string(&f->where[f->nwhere].quoted, eq + 1, strlen(eq + 1));
    f->nwhere++;
  } else if (strcmp(key, "limit") == 0) {
    char *end = NULL;
    errno = 0;
    f->limit = value && isdigit((unsigned char)*value) ? strtoll(value, &end, 10) : -1;
    if (!end || *end || errno) {
      snprintf(f->error, sizeof f->error, "limit must be a whole number of rows, not `%s`", value ? value : "");
      return MHD_NO;
    }
  } else {
    snprintf(f->error, sizeof f->error, "unknown parameter `%s`: use where=COLUMN=VALUE and limit=N", key);
    return MHD_NO;
  }
  return MHD_YES;
}

/* Whether a row meets every where= condition: its field's JSON text is the value (a string
 * field's without its quotes). */
static bool row_matches(const row_filter *f, const char *json) {
  for (int i = 0; i < f->nwhere; i++) {
    const char *text;
    size_t len;
    if (!field_text(json, f->where[i].column, &text, &len)) return false;
    const char *want = *text == '"' ? f->where[i].quoted.data : f->where[i].value;
    size_t want_len = *text == '"' ? f->where[i].quoted.len : strlen(want);
    if (len != want_len || memcmp(text, want, len) != 0) return false;
  }
  return true;
}

/* Frees the where= conditions of a table request. */
static void free_filter(row_filter *f) {
  for (int i = 0; i < f->nwhere; i++) {
    free(f->where[i].column);
    vpq_buf_free(&f->where[i].quoted);
  }
}

/* Copies the rows of table `rel` that meet `filter` (each as often as the table holds it)
 * under the lock: their texts go back to back into `texts`, NUL-terminated. Returns an array
 * of *n pointers into `texts` (to free). */
static const char **copy_rows(vpq_http *h, const relation *rel, const row_filter *filter, vpq_buf *texts, size_t *n) {
  size_t count = 0;
  pthread_mutex_lock(&h->lock);
  for (size_t b = 0; b < rel->nbuckets; b++)
    for (const row_entry *e = rel->buckets[b]; e; e = e->next)
      if (row_matches(filter, e->json))
        for (int64_t k = 0; k < e->count; k++, count++) vpq_buf_append(texts, e->json, e->len + 1);
  pthread_mutex_unlock(&h->lock);
  const char **rows = malloc(sizeof *rows * (count + 1));
  if (!rows) abort();
  for (size_t i = 0, at = 0; i < count; i++, at += strlen(texts->data + at) + 1) rows[i] = texts->data + at;
  *n = count;
  return rows;
}

/* GET /api/tables/NAME[?where=COLUMN=VALUE...][&limit=N]: the current rows that meet the
 * conditions, sorted by their JSON text, the first N of them, one per line. */
static enum MHD_Result serve_table(vpq_http *h, struct MHD_Connection *conn, relation *rel) {
  row_filter filter = {.limit = -1};
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_filter, &filter);
  if (filter.error[0]) {
    free_filter(&filter);
    return reply_error(conn, MHD_HTTP_BAD_REQUEST, "%s", filter.error);
  }
  vpq_buf texts = {0};
  size_t n;
  const char **rows = copy_rows(h, rel, &filter, &texts, &n);
  free_filter(&filter);
  vpq_buf body = {0};
  vpq_http_json_array(rows, n, filter.limit >= 0 && (unsigned long long)filter.limit < n ? (size_t)filter.limit : n, &body);
  free(rows);
  vpq_buf_free(&texts);
  return reply(conn, MHD_HTTP_OK, "application/json", &body);
}

/* MHD's reader of an event stream: waits for the client's queue to fill and hands on what it
 * can take. Rows queued for an empty queue wait up to COALESCE_MS for more (unless they are
 * COALESCE_BYTES already), so that a busy stream wakes each client's thread some tens of
 * times a second, not once a row. */
static ssize_t read_events(void *cls, uint64_t pos, char *out, size_t max) {
  (void)pos;
  client *c = cls;
  vpq_http *h = c->rel->http;
  int64_t keepalive = vpq_clock_monotonic_ms() + KEEPALIVE_S * 1000;
  pthread_mutex_lock(&h->lock);
  while (c->start == c->queue.len) {
    if (c->overflow && !c->closing) {
      static const char overflow[] = "event: overflow\ndata: {\"error\":\"client too slow: disconnected\"}\n\n";
      queue_append(c, overflow, sizeof overflow - 1);
      c->closing = true;
      break;
    }
    if (c->closing || h->ending) {
      pthread_mutex_unlock(&h->lock);
      return MHD_CONTENT_READER_END_OF_STREAM;
    }
    int64_t now = vpq_clock_monotonic_ms();
    if (now >= keepalive) {
      queue_append(c, ": keep-alive\n\n", 14);
      break;
    }
    struct timespec until = monotonic_at(now + HANGUP_CHECK_MS < keepalive ? now + HANGUP_CHECK_MS : keepalive);
    pthread_cond_timedwait(&c->wake, &h->lock, &until);
    if (c->start == c->queue.len && hung_up(c->fd)) {
      pthread_mutex_unlock(&h->lock);
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
  }
  for (int64_t until = c->since + COALESCE_MS;
       !h->ending && !c->overflow && c->queue.len - c->start < COALESCE_BYTES && vpq_clock_monotonic_ms() < until;) {
    struct timespec at = monotonic_at(until);
    pthread_cond_timedwait(&c->wake, &h->lock, &at);
  }
  size_t n = c->queue.len - c->start < max ? c->queue.len - c->start : max;
  memcpy(out, c->queue.data + c->start, n);
  c->start += n;
  if (c->start == c->queue.len) c->start = c->queue.len = 0;
  pthread_mutex_unlock(&h->lock);
  return (ssize_t)n;
}

/* MHD's end of an event stream: unlinks the client and frees it. */
static void end_events(void *cls) {
  client *c = cls;
  vpq_http *h = c->rel->http;
  pthread_mutex_lock(&h->lock);
  if (c->prev) c->prev->next = c->next;
  else c->rel->clients = c->next;
  if (c->next) c->next->prev = c->prev;
  c->rel->nclients--;
  if (--h->nclients == 0) pthread_cond_broadcast(&h->drained);
  pthread_mutex_unlock(&h->lock);
  pthread_cond_destroy(&c->wake);
  vpq_buf_free(&c->queue);
  free(c);
}

/* GET /api/streams/NAME[?last=N]: server-sent events, one row each, from now on (after the
 * newest N rows, at most RECENT). With a Last-Event-ID header (which wins over ?last) the
 * recent rows after that event come first, preceded by `event: gap` when some were lost. */
static enum MHD_Result serve_stream(vpq_http *h, struct MHD_Connection *conn, relation *rel) {
  const char *arg = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "last");
  long last = 0;
  if (arg) {
    char *end;
    last = strtol(arg, &end, 10);
    if (end == arg || *end || last < 0 || last > RECENT)
      return reply_error(conn, MHD_HTTP_BAD_REQUEST, "last must be 0 to %d", RECENT);
  }
  const char *resume = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
  long long after = -1;
  if (resume) {
    char *end;
    errno = 0;
    after = isdigit((unsigned char)*resume) ? strtoll(resume, &end, 10) : -1;
    while (after >= 0 && (*end == ' ' || *end == '\t')) end++; /* optional whitespace around a header value */
    if (after < 0 || *end || errno)
      return reply_error(conn, MHD_HTTP_BAD_REQUEST, "Last-Event-ID must be an event id (a whole number)");
  }
  client *c = calloc(1, sizeof *c);
  if (!c) abort();
  c->rel = rel;
  c->fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD)->connect_fd;
  init_cond(&c->wake);
  pthread_mutex_lock(&h->lock);
  if (h->ending || h->nclients >= MAX_STREAMS) {
    const bool ending = h->ending;
    pthread_mutex_unlock(&h->lock);
    pthread_cond_destroy(&c->wake);
    free(c);
    if (ending) return reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "the engine has stopped");
    return reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                       "at most %d event streams at once (the other connections stay for /healthz and the API)",
                       MAX_STREAMS);
  }
  vpq_buf_puts(&c->queue, ": ");
  for (const char *p = rel->name; *p; p++) vpq_buf_append(&c->queue, *p == '\n' || *p == '\r' ? " " : p, 1);
  vpq_buf_puts(&c->queue, "\n\n");
  int64_t oldest = rel->seq - rel->recent_n + 1; /* the id of recent row 0 */
  int from = last < rel->recent_n ? rel->recent_n - (int)last : 0;
  if (after >= 0 && after <= rel->seq && after + 1 >= oldest) {
    from = (int)(after + 1 - oldest);
  } else if (after >= 0) {
    from = 0;
    vpq_buf_printf(&c->queue, "event: gap\ndata: {\"last_event_id\":%lld,\"next_id\":%lld}\n\n", after,
                   (long long)oldest);
  }
  for (int i = from; i < rel->recent_n; i++) {
    const vpq_buf *row = &rel->recent[(rel->recent_next - rel->recent_n + i + RECENT) % RECENT];
    queue_row(c, oldest + i, row->data, row->len);
  }
  c->next = rel->clients;
  if (c->next) c->next->prev = c;
  rel->clients = c;
  rel->nclients++;
  h->nclients++;
  pthread_mutex_unlock(&h->lock);
  struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, read_events, c, end_events);
  if (!r) {
    end_events(c);
    return MHD_NO;
  }
  MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* nginx: pass events on at once */
  return send_response(conn, MHD_HTTP_OK, "text/event-stream", r);
}

/* GET /api/queries: every relation, its statements, plan and rows out. */
static enum MHD_Result serve_queries(vpq_http *h, struct MHD_Connection *conn) {
  vpq_buf body = {0};
  vpq_buf_puts(&body, "[");
  pthread_mutex_lock(&h->lock);
  for (int i = 0; i < h->nrels; i++) {
    const relation *rel = &h->rels[i];
    vpq_buf_puts(&body, i ? ",\n{\"name\":" : "\n{\"name\":");
    vpq_json_encode_string(&body, rel->name, strlen(rel->name));
    vpq_buf_printf(&body, ",\"kind\":\"%s\",\"rows_out\":%lld,", rel->is_table ? "table" : "stream",
                   (long long)rel->rows_out);
    if (rel->is_table) vpq_buf_printf(&body, "\"rows\":%lld,", (long long)rel->nrows);
    else vpq_buf_printf(&body, "\"subscribers\":%d,", rel->nclients);
    vpq_buf_puts(&body, "\"statements\":[");
    vpq_buf_append(&body, rel->statements.data ? rel->statements.data : "", rel->statements.len);
    vpq_buf_puts(&body, "],\"plan\":");
    vpq_json_encode_string(&body, rel->plan, strlen(rel->plan));
    vpq_buf_puts(&body, "}");
  }
  pthread_mutex_unlock(&h->lock);
  vpq_buf_puts(&body, "\n]\n");
  return reply(conn, MHD_HTTP_OK, "application/json", &body);
}

/* GET /embed?stream=NAME&y=COLUMN[&x=COLUMN]: the one-chart page, once its parameters are
 * checked. */
static enum MHD_Result serve_embed(vpq_http *h, struct MHD_Connection *conn) {
  static const char use[] = "/embed?stream=NAME&y=COLUMN[&x=COLUMN]";
  const char *name = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "stream");
  const char *y = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "y");
  const char *x = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "x");
  if (!name || !*name) return reply_error(conn, MHD_HTTP_BAD_REQUEST, "stream must name a stream: %s", use);
  if (!y || !*y) return reply_error(conn, MHD_HTTP_BAD_REQUEST, "y must name a column: %s", use);
  if (x && !*x) return reply_error(conn, MHD_HTTP_BAD_REQUEST, "x must name a column: %s", use);
  const relation *rel = find_relation(h, name);
  if (!rel || rel->is_table) return reply_error(conn, MHD_HTTP_NOT_FOUND, "no stream `%s`", name);
  return reply_asset(conn, "/embed");
}

/* Appends a metric family's # HELP and # TYPE lines. */
static void metric_header(vpq_buf *out, const char *name, const char *type, const char *help) {
  vpq_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Appends `text` escaped as a label value. */
static void label_value(vpq_buf *out, const char *text) {
  for (const char *p = text; *p; p++) {
    if (*p == '\\' || *p == '"') vpq_buf_printf(out, "\\%c", *p);
    else if (*p == '\n') vpq_buf_puts(out, "\\n");
    else vpq_buf_append(out, p, 1);
  }
}

/* Appends `metric{relation="NAME"} `. */
static void sample(vpq_buf *out, const char *metric, const char *relation) {
  vpq_buf_printf(out, "%s{relation=\"", metric);
  label_value(out, relation);
  vpq_buf_puts(out, "\"} ");
}

/* Appends every operator's rows in and out, as the engine last published them. */
static void operator_samples(vpq_http *h, vpq_buf *out) {
  int cap = 64, n;
  vpq_operator_stats *ops = NULL;
  for (;;) {
    ops = realloc(ops, sizeof *ops * (size_t)cap);
    if (!ops) abort();
    n = vpq_engine_operator_stats(h->engine, ops, cap);
    if (n < cap) break;
    cap *= 2;
  }
  static const char *const families[2][2] = {{"vpq_operator_rows_in_total", "Rows each operator received."},
                                             {"vpq_operator_rows_out_total", "Rows each operator emitted."}};
  for (int f = 0; f < 2; f++) {
    metric_header(out, families[f][0], "counter", families[f][1]);
    for (int i = 0; i < n; i++) {
      vpq_buf_printf(out, "%s{relation=\"", families[f][0]);
      label_value(out, ops[i].relation);
      vpq_buf_printf(out, "\",operator=\"%s\",index=\"%d\"} %lld\n", ops[i].name, ops[i].index,
                     (long long)(f ? ops[i].rows_out : ops[i].rows_in));
    }
  }
  free(ops);
}

/* GET /metrics: Prometheus text format 0.0.4. */
static enum MHD_Result serve_metrics(vpq_http *h, struct MHD_Connection *conn) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
  vpq_buf out = {0};
  vpq_stats published = vpq_engine_stats_published(h->engine);
  pthread_mutex_lock(&h->lock);
  /* The newer of the counters the engine published (every second) and those of its last row. */
  vpq_stats st = published.rows_in >= h->stats.rows_in ? published : h->stats;
  st.consumer_lag = published.consumer_lag;
  const struct {
    const char *name, *help;
    int64_t value;
  } totals[] = {
      {"vpq_rows_in_total", "Source rows decoded.", st.rows_in},
      {"vpq_sink_rows_total", "Rows written to sinks.", st.rows_out},
      {"vpq_sink_refused_rows_total", "Rows a sink could not take (a Kafka message over message.max.bytes).",
       st.refused_out},
      {"vpq_late_rows_total", "Rows that arrived after their window closed.", st.late},
      {"vpq_malformed_total", "Source records that could not be decoded.", st.malformed},
      {"vpq_dead_lettered_total", "Records and rows written to dead-letter outputs.", st.dead_lettered},
  };
  for (size_t i = 0; i < sizeof totals / sizeof *totals; i++) {
    metric_header(&out, totals[i].name, "counter", totals[i].help);
    vpq_buf_printf(&out, "%s %lld\n", totals[i].name, (long long)totals[i].value);
  }
  metric_header(&out, "vpq_refused_total", "counter", "Malformed records and refused rows (late, max_keys), by reason.");
  for (int r = 0; r < VPQ_REASON_COUNT; r++)
    vpq_buf_printf(&out, "vpq_refused_total{reason=\"%s\"} %lld\n", vpq_reason_name((vpq_reason)r),
                   (long long)st.refused[r]);
  metric_header(&out, "vpq_checkpoints_total", "counter", "Checkpoints taken (vpq run --state-dir).");
  vpq_buf_printf(&out, "vpq_checkpoints_total %lld\n", (long long)st.checkpoints);
  metric_header(&out, "vpq_checkpoint_failures_total", "counter", "Checkpoints that could not be written.");
  vpq_buf_printf(&out, "vpq_checkpoint_failures_total %lld\n", (long long)st.checkpoint_failures);
  /* Every family DESIGN names is listed, also before it has a sample (no checkpoint yet, no
   * Kafka source or its lag not measured yet), so that scrapers and dashboards find it. */
  metric_header(&out, "vpq_checkpoint_age_seconds", "gauge", "Wall clock since the last checkpoint was written.");
  if (st.checkpoint_at_ms > 0)
    vpq_buf_printf(&out, "vpq_checkpoint_age_seconds %.3f\n", (double)(now_ms - st.checkpoint_at_ms) / 1000);
  metric_header(&out, "vpq_checkpoint_state_bytes", "gauge", "Uncompressed state of the last checkpoint.");
  if (st.checkpoint_at_ms > 0)
    vpq_buf_printf(&out, "vpq_checkpoint_state_bytes %lld\n", (long long)st.checkpoint_bytes);
  metric_header(&out, "vpq_consumer_lag_records", "gauge", "Records the Kafka sources have not read yet.");
  if (st.consumer_lag >= 0) vpq_buf_printf(&out, "vpq_consumer_lag_records %lld\n", (long long)st.consumer_lag);
  long pages = 0, resident = 0;
  FILE *statm = fopen("/proc/self/statm", "r");
  if (statm && fscanf(statm, "%ld %ld", &pages, &resident) == 2) {
    metric_header(&out, "vpq_resident_memory_bytes", "gauge", "Resident memory of the vpq process.");
    vpq_buf_printf(&out, "vpq_resident_memory_bytes %lld\n", (long long)resident * sysconf(_SC_PAGESIZE));
  }
  if (statm) fclose(statm);
  metric_header(&out, "vpq_rows_out_total", "counter", "Rows each stream or table emitted (retractions not counted).");
  for (int i = 0; i < h->nrels; i++) {
    sample(&out, "vpq_rows_out_total", h->rels[i].name);
    vpq_buf_printf(&out, "%lld\n", (long long)h->rels[i].rows_out);
  }
  operator_samples(h, &out);
  metric_header(&out, "vpq_table_rows", "gauge", "Rows a table holds now.");
  for (int i = 0; i < h->nrels; i++)
    if (h->rels[i].is_table) {
      sample(&out, "vpq_table_rows", h->rels[i].name);
      vpq_buf_printf(&out, "%lld\n", (long long)h->rels[i].nrows);
    }
  metric_header(&out, "vpq_http_stream_clients", "gauge", "Open GET /api/streams/NAME connections.");
  for (int i = 0; i < h->nrels; i++)
    if (!h->rels[i].is_table) {
      sample(&out, "vpq_http_stream_clients", h->rels[i].name);
      vpq_buf_printf(&out, "%d\n", h->rels[i].nclients);
    }
  metric_header(&out, "vpq_watermark_lag_seconds", "gauge",
                "Wall clock minus the newest event time (issued_at, else ts) of the relation's rows.");
  for (int i = 0; i < h->nrels; i++)
    if (h->rels[i].has_event_time) {
      sample(&out, "vpq_watermark_lag_seconds", h->rels[i].name);
      vpq_buf_printf(&out, "%.3f\n", (double)(now_ms - h->rels[i].event_ms) / 1000);
    }
  pthread_mutex_unlock(&h->lock);
  return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &out);
}

/* Whether the request carries `Authorization: Bearer TOKEN` with the server's token, compared
 * in a time that depends on the lengths only. */
static bool authorized(const vpq_http *h, struct MHD_Connection *conn) {
  const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return false;
  const char *given = auth + 7;
  size_t n = strlen(h->token), m = strlen(given);
  unsigned char diff = m != n;
  for (size_t i = 0; i < n; i++) diff |= (unsigned char)(h->token[i] ^ (i < m ? given[i] : 0));
  return diff == 0;
}

/* ===== POST /api/query ===== */

/* The body of a POST /api/query as it arrives: MHD's per-request state (con_cls). */
typedef struct upload {
  vpq_buf text;
  bool too_long; /* over MAX_QUERY_BYTES: the rest is dropped */
} upload;

/* Runs the query text of a complete POST /api/query over copies of the tables it names and
 * replies the result or the diagnostics. */
static enum MHD_Result serve_query(vpq_http *h, struct MHD_Connection *conn, const upload *u) {
  const char *text = u->text.data ? u->text.data : "";
  if (strlen(text) != u->text.len) return reply_error(conn, MHD_HTTP_BAD_REQUEST, "the query text has a NUL byte");
  if (__atomic_add_fetch(&h->nqueries, 1, __ATOMIC_ACQ_REL) > MAX_QUERIES) {
    __atomic_sub_fetch(&h->nqueries, 1, __ATOMIC_ACQ_REL);
    return reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "%d ad-hoc queries are running: try again", MAX_QUERIES);
  }
  vpq_http_table *tables = calloc((size_t)h->nrels + 1, sizeof *tables);
  vpq_buf *texts = calloc((size_t)h->nrels + 1, sizeof *texts);
  if (!tables || !texts) abort();
  int ntables = 0;
  row_filter all = {.limit = -1};
  for (int i = 0; i < h->nrels; i++) {
    relation *rel = &h->rels[i];
    if (!rel->is_table) continue;
    vpq_http_table *t = &tables[ntables];
    *t = (vpq_http_table){.name = rel->name, .plan = rel->plan};
    if (vpq_http_query_reads(text, rel->name)) t->rows = copy_rows(h, rel, &all, &texts[ntables], &t->nrows);
    ntables++;
  }
  vpq_buf result = {0}, diagnostics = {0};
  int status = vpq_http_query_run(text, tables, ntables, &result, &diagnostics);
  for (int i = 0; i < ntables; i++) {
    free((void *)tables[i].rows);
    vpq_buf_free(&texts[i]);
  }
  free(tables);
  free(texts);
  __atomic_sub_fetch(&h->nqueries, 1, __ATOMIC_ACQ_REL);
  if (status == MHD_HTTP_OK) {
    vpq_buf_free(&diagnostics);
    return reply(conn, MHD_HTTP_OK, "application/json", &result);
  }
  vpq_buf_free(&result);
  const char *d = diagnostics.data ? diagnostics.data : "";
  char message[512];
  snprintf(message, sizeof message, "%.*s", (int)strcspn(d, "\n"), d);
  enum MHD_Result rc = status == MHD_HTTP_BAD_REQUEST ? reply_problem(conn, MHD_HTTP_BAD_REQUEST, NULL, message, d)
                                                     : reply_error(conn, (unsigned)status, "%s", message);
  vpq_buf_free(&diagnostics);
  return rc;
}

/* Takes in a part of a POST /api/query's body, or, at its end (no more data), answers it:
 * 413 when it was longer than MAX_QUERY_BYTES (the rest of such a body is read and dropped:
 * MHD cannot answer before the whole request is in). */
static enum MHD_Result receive_query(vpq_http *h, struct MHD_Connection *conn, upload *u, const char *data,
                                     size_t *size) {
  if (*size == 0 && u->too_long)
    return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "the query is longer than %d bytes", MAX_QUERY_BYTES);
  if (*size == 0) return serve_query(h, conn, u);
  u->too_long |= u->text.len + *size > MAX_QUERY_BYTES;
  if (!u->too_long) vpq_buf_append(&u->text, data, *size);
  *size = 0;
  return MHD_YES;
}

/* MHD's end of a request: frees a POST /api/query's body. */
static void request_done(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode why) {
  (void)cls, (void)conn, (void)why;
  upload *u = *con_cls;
  if (!u) return;
  vpq_buf_free(&u->text);
  free(u);
  *con_cls = NULL;
}

/* Whether the server answers `url` (with some method): a request for it with another method
 * is a 405, for any other path a 404 whatever the method. Any name after /api/tables/ and
 * /api/streams/ counts (an unknown relation is a 404 of its own). */
static bool known_path(const char *url) {
  static const char *const paths[] = {"/healthz", "/metrics", "/api/queries", "/api/query"};
  for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
    if (strcmp(url, paths[i]) == 0) return true;
  for (const vpq_http_asset *a = vpq_http_assets; a->path; a++)
    if (strcmp(a->path, url) == 0) return true;
  return strncmp(url, "/api/tables/", 12) == 0 || strncmp(url, "/api/streams/", 13) == 0;
}

/* MHD's request handler: routes a request to its endpoint (a POST /api/query is called again
 * for each part of its body, then once more at its end). */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size,
                              void **con_cls) {
  (void)version;
  vpq_http *h = cls;
  if (*con_cls) return receive_query(h, conn, *con_cls, upload_data, upload_data_size);
  bool query = strcmp(url, "/api/query") == 0;
  /* HEAD is GET without the body (MHD leaves it out), as health probes use it */
  const bool head = !query && strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
  const char *allow = query ? MHD_HTTP_METHOD_POST : MHD_HTTP_METHOD_GET;
  if (strcmp(method, allow) != 0 && !head && known_path(url)) {
    char message[128];
    snprintf(message, sizeof message, "method %.32s not allowed: use %s", method, allow);
    return reply_problem(conn, MHD_HTTP_METHOD_NOT_ALLOWED, query ? allow : "GET, HEAD", message, NULL);
  }
  if (strcmp(url, "/healthz") == 0) return reply_static(conn, "text/plain; charset=utf-8", "ok\n", 3);
  if (h->token && !authorized(h, conn))
    return reply_error(conn, MHD_HTTP_UNAUTHORIZED, "this server needs the header Authorization: Bearer TOKEN");
  if (query) {
    const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && strtoull(length, NULL, 10) > MAX_QUERY_BYTES)
      return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "the query is longer than %d bytes", MAX_QUERY_BYTES);
    upload *u = calloc(1, sizeof *u);
    if (!u) abort();
    *con_cls = u;
    return MHD_YES;
  }
  if (strcmp(url, "/") == 0 || strncmp(url, "/assets/", 8) == 0) return reply_asset(conn, url);
  if (strcmp(url, "/embed") == 0) return serve_embed(h, conn);
  if (strcmp(url, "/metrics") == 0) return serve_metrics(h, conn);
  if (strcmp(url, "/api/queries") == 0) return serve_queries(h, conn);
  bool table = strncmp(url, "/api/tables/", 12) == 0, stream = strncmp(url, "/api/streams/", 13) == 0;
  if (!table && !stream) return reply_error(conn, MHD_HTTP_NOT_FOUND, "no such path: %s", url);
  const char *name = url + (table ? 12 : 13);
  relation *rel = find_relation(h, name);
  if (!rel) return reply_error(conn, MHD_HTTP_NOT_FOUND, "no %s `%s`", table ? "table" : "stream", name);
  if (rel->is_table != table)
    return reply_error(conn, MHD_HTTP_NOT_FOUND, "`%s` is a %s: GET /api/%ss/%s", rel->name,
                       rel->is_table ? "table" : "stream", rel->is_table ? "table" : "stream", rel->name);
  if (!table && head) return reply_static(conn, "text/event-stream", "", 0); /* no events to leave out */
  return table ? serve_table(h, conn, rel) : serve_stream(h, conn, rel);
}

/* ===== Starting and stopping ===== */

/* Skips the 'string' or "quoted name" at `p` (a doubled quote stands for one). */
static const char *skip_quoted(const char *p) {
  char quote = *p++;
  for (; *p && !(p[0] == quote && p[1] != quote); p += p[0] == quote ? 2 : 1) {}
  return *p ? p + 1 : p;
}

/* Reads the name or keyword at `p` (after blanks; a "quoted name" unquoted) into `word`;
 * returns where it ends. */
static const char *read_word(const char *p, char *word, size_t size) {
  p = vpq_http_skip_blank(p);
  size_t n = 0;
  if (*p == '"') {
    const char *end = skip_quoted(p);
    for (p++; p < end - 1; p += p[0] == '"' ? 2 : 1)
      if (n + 1 < size) word[n++] = *p;
    p = end;
  } else {
    for (; isalnum((unsigned char)*p) || *p == '_'; p++)
      if (n + 1 < size) word[n++] = *p;
  }
  word[n] = '\0';
  return p;
}

/* Gives each relation the text of its CREATE statement and INSERT INTO statements, found by
 * splitting the file at the `;` outside strings and comments. */
static void attach_statements(vpq_http *h, const char *text) {
  const char *p = vpq_http_skip_blank(text);
  while (*p) {
    const char *start = p;
    while (*p && *p != ';') {
      if (*p == '\'' || *p == '"') {
        p = skip_quoted(p);
      } else if ((p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*')) {
        p = vpq_http_skip_blank(p);
      } else {
        p++;
      }
    }
    if (*p) p++;
    char first[16], second[16], name[256];
    const char *after = read_word(read_word(start, first, sizeof first), second, sizeof second);
    read_word(after, name, sizeof name);
    bool create = strcasecmp(first, "create") == 0 && (strcasecmp(second, "stream") == 0 || strcasecmp(second, "table") == 0);
    bool insert = strcasecmp(first, "insert") == 0 && strcasecmp(second, "into") == 0;
    relation *rel = create || insert ? find_relation(h, name) : NULL;
    if (rel) {
      const char *end = p;
      while (end > start && isspace((unsigned char)end[-1])) end--;
      if (rel->statements.len) vpq_buf_puts(&rel->statements, ",");
      vpq_json_encode_string(&rel->statements, start, (size_t)(end - start));
    }
    p = vpq_http_skip_blank(p);
  }
}

/* Splits "HOST:PORT", "[V6]:PORT", ":PORT" or "PORT" into host (127.0.0.1 for none) and port. */
static bool parse_addr(const char *addr, char *host, size_t host_size, int *port) {
  const char *colon = strrchr(addr, ':');
  const char *digits = colon ? colon + 1 : addr;
  size_t host_len = colon ? (size_t)(colon - addr) : 0;
  if (host_len >= 2 && addr[0] == '[' && addr[host_len - 1] == ']') {
    addr++;
    host_len -= 2;
  } else if (memchr(addr, ':', host_len)) {
    return false; /* an IPv6 address without brackets */
  }
  if (host_len >= host_size || !*digits || strlen(digits) > 5 || strspn(digits, "0123456789") != strlen(digits))
    return false;
  *port = atoi(digits);
  if (host_len) {
    memcpy(host, addr, host_len);
    host[host_len] = '\0';
  } else {
    snprintf(host, host_size, "127.0.0.1");
  }
  return *port <= 65535;
}

/* MHD's logger: keeps its first message while starting, for the error of vpq_http_start. */
static void log_start_error(void *cls, const char *fmt, va_list ap) {
  vpq_http *h = cls;
  if (__atomic_load_n(&h->started, __ATOMIC_ACQUIRE) || h->start_error[0]) return;
  vsnprintf(h->start_error, sizeof h->start_error, fmt, ap);
  size_t n = strlen(h->start_error);
  while (n && (h->start_error[n - 1] == '\n' || h->start_error[n - 1] == '.')) h->start_error[--n] = '\0';
}

/* Frees the server's state (its daemon stopped or never started). */
static void free_http(vpq_http *h) {
  for (int i = 0; i < h->nrels; i++) {
    relation *rel = &h->rels[i];
    free(rel->name);
    free(rel->plan);
    vpq_buf_free(&rel->statements);
    table_free(rel);
    for (int k = 0; rel->recent && k < RECENT; k++) vpq_buf_free(&rel->recent[k]);
    free(rel->recent);
  }
  free(h->rels);
  free(h->token);
  pthread_mutex_destroy(&h->lock);
  pthread_cond_destroy(&h->drained);
  free(h);
}

/* Starts MHD on host and port; NULL with the reason in `err`. */
static struct MHD_Daemon *listen_on(vpq_http *h, const char *host, int port, char *err, size_t err_size) {
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
  struct sockaddr_storage sa = {0};
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *found;
  int rc = getaddrinfo(host, NULL, &hints, &found);
  if (rc != 0) {
    snprintf(err, err_size, "cannot resolve `%s`: %s", host, gai_strerror(rc));
    return NULL;
  }
  memcpy(&sa, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  if (sa.ss_family == AF_INET6) {
    ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
    flags |= MHD_USE_IPv6;
  } else {
    ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
  }
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, (uint16_t)port, NULL, NULL, handle, h, MHD_OPTION_EXTERNAL_LOGGER, log_start_error, h,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
      MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
  if (!d) snprintf(err, err_size, "cannot listen: %s", h->start_error[0] ? h->start_error : "libmicrohttpd failed to start");
  return d;
}

/* Starts serving (vpq_http.h). */
vpq_http *vpq_http_start(vpq_engine *engine, const char *addr, const char *token, const char *file_text, char *err,
                         size_t err_size) {
  char host[256];
  int port;
  if (!parse_addr(addr, host, sizeof host, &port)) {
    snprintf(err, err_size, "bad address `%s`: expected HOST:PORT, [IPV6]:PORT, :PORT or PORT", addr);
    return NULL;
  }
  vpq_http *h = calloc(1, sizeof *h);
  if (!h) abort();
  h->engine = engine;
  if (token && *token && !(h->token = strdup(token))) abort();
  pthread_mutex_init(&h->lock, NULL);
  init_cond(&h->drained);
  h->nrels = vpq_engine_relations(engine, NULL, NULL, 0);
  const char **names = calloc((size_t)h->nrels + 1, sizeof *names);
  bool *is_table = calloc((size_t)h->nrels + 1, sizeof *is_table);
  h->rels = calloc((size_t)h->nrels + 1, sizeof *h->rels);
  if (!names || !is_table || !h->rels) abort();
  vpq_engine_relations(engine, names, is_table, h->nrels);
  for (int i = 0; i < h->nrels; i++) {
    relation *rel = &h->rels[i];
    rel->http = h;
    rel->name = strdup(names[i]);
    rel->is_table = is_table[i];
    size_t size;
    FILE *plan = open_memstream(&rel->plan, &size);
    if (!rel->name || !plan) abort();
    vpq_engine_explain_relation(engine, names[i], plan);
    fclose(plan);
    if (!rel->is_table) {
      rel->recent = calloc(RECENT, sizeof *rel->recent);
      if (!rel->recent) abort();
    }
  }
  free(names);
  free(is_table);
  if (file_text) attach_statements(h, file_text);
  h->daemon = listen_on(h, host, port, err, err_size);
  if (!h->daemon) {
    free_http(h);
    return NULL;
  }
  __atomic_store_n(&h->started, true, __ATOMIC_RELEASE);
  h->port = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT)->port;
  h->stats = vpq_engine_stats(engine);
  for (int i = 0; i < h->nrels; i++) vpq_engine_subscribe(engine, h->rels[i].name, on_row, &h->rels[i]);
  return h;
}

/* The port listened on (vpq_http.h). */
int vpq_http_port(const vpq_http *h) { return h->port; }

/* Ends the event streams and stops the server (vpq_http.h). */
void vpq_http_stop(vpq_http *h) {
  if (!h) return;
  pthread_mutex_lock(&h->lock);
  h->ending = true;
  for (int i = 0; i < h->nrels; i++)
    for (client *c = h->rels[i].clients; c; c = c->next) pthread_cond_signal(&c->wake);
  struct timespec deadline = monotonic_at(vpq_clock_monotonic_ms() + DRAIN_MS);
  while (h->nclients > 0 && pthread_cond_timedwait(&h->drained, &h->lock, &deadline) != ETIMEDOUT) {}
  pthread_mutex_unlock(&h->lock);
  MHD_stop_daemon(h->daemon);
  free_http(h);
}
