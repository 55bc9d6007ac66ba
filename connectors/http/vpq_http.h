/* vpq_http.h — `vpq run --http ADDR`: serves a running engine over HTTP (libmicrohttpd) for
 * ops dashboards: a live dashboard page, tables as JSON arrays, ad-hoc SELECTs over tables,
 * streams as server-sent events, the running statements with their plans and counters,
 * Prometheus metrics, a health check and one-chart pages for iframes (docs/http.md). The server
 * runs on its own threads and never calls into the engine from them: it keeps its own copy of
 * what it serves, fed by engine subscriptions.
 *
 *   vpq_http *http = vpq_http_start(engine, "127.0.0.1:8080", token, text, err, sizeof err);
 *   vpq_engine_run(engine, stderr);
 *   vpq_http_stop(http);
 */
#ifndef VPQ_HTTP_H
#define VPQ_HTTP_H

#include <stddef.h>

#include "vpq.h"

typedef struct vpq_http vpq_http;

/* Subscribes to every stream and table of the loaded engine and starts serving them on
 * `addr`: "HOST:PORT", "[IPV6]:PORT", ":PORT" or "PORT" (no host: 127.0.0.1; "0.0.0.0:PORT":
 * every IPv4 interface; port 0: any free port). `token`, unless NULL or empty, is required as
 * `Authorization: Bearer TOKEN` by every endpoint but /healthz (it is copied). `file_text` is
 * the .vpq source, whose statements /api/queries shows (NULL: none shown). Call after vpq_engine_load and before vpq_engine_run. Returns
 * NULL with the reason in `err` when the address is bad or cannot be listened on; the engine
 * is then left as it was. */
vpq_http *vpq_http_start(vpq_engine *engine, const char *addr, const char *token, const char *file_text,
                         char *err, size_t err_size);

/* The port the server listens on (the chosen one when started with port 0). */
int vpq_http_port(const vpq_http *http);

/* Ends every event stream (after sending what is queued, waiting at most 2 s for clients to
 * take it), stops the server and frees it. Call after vpq_engine_run has returned; the engine
 * must not process rows afterwards (its subscriptions point into the freed server). NULL is
 * a no-op. */
void vpq_http_stop(vpq_http *http);

#endif
