/* vpq_http_assets.h — the files `vpq run --http` serves as they are: the dashboard page (/),
 * the one-chart page (/embed), their scripts and uPlot (/assets/...). They are compiled in at
 * build time from web/ and npm's uplot package by web/embed_assets.cmake (never committed). */
#ifndef VPQ_HTTP_ASSETS_H
#define VPQ_HTTP_ASSETS_H

#include <stddef.h>

/* A file served at `path` with content type `type`: data[0..len), NUL-terminated. */
typedef struct vpq_http_asset {
  const char *path;
  const char *type;
  const unsigned char *data;
  size_t len;
} vpq_http_asset;

/* Every asset; the last entry has a NULL path. */
extern const vpq_http_asset vpq_http_assets[];

#endif
