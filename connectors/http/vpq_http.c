/* vpq_http.c — the HTTP server of `vpq run --http ADDR` (vpq_http.h, docs/http.md), on
 * libmicrohttpd with one thread per connection.
 *
 * The engine's subscriber callback (on_row, on the engine's thread) and the request handlers
 * (MHD's threads) share the server's state under one mutex: each table's current rows (a
 * multiset of their JSON texts in a hash table), each stream's newest rows (for ?last=N) and
 * its event-stream clients' queues, per-relation counters, and a copy of the engine's counters
 * taken in on_row. Handlers never call into the engine; the plans and statements they show
 * are captured at start. An event-stream client's reader blocks on a condition variable
 * until rows arrive, or sends a keep-alive comment after 15 s, checking every second whether
 * the client hung up (its thread is freed then, not at the next write); a client whose queue
 * outgrows QUEUE_CAP is sent `event: overflow` and disconnected, so a slow client never
 * holds up the engine. Each stream numbers its rows (the events' `id:`), so a client that
 * reconnects with Last-Event-ID is sent the recent rows it missed. With a token set, every
 * request but /healthz must carry it as a bearer token.
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
#include <strings.h>
#include <time.h>

#include "vpq_codec.h"

enum {
  RECENT = 1024,             /* rows kept per stream for ?last=N and Last-Event-ID */
  QUEUE_CAP = 1 << 20,       /* bytes an event-stream client may fall behind by */
  KEEPALIVE_S = 15,          /* an idle event stream gets a comment this often */
  HANGUP_CHECK_MS = 1000,    /* an idle event stream checks this often whether its client left */
  MAX_CONNECTIONS = 64,      /* one thread each */
  IDLE_TIMEOUT_S = 60,       /* idle keep-alive connections are closed after this */
  DRAIN_MS = 2000,           /* vpq_http_stop waits this long for clients to take their queue */
  MAX_WHERE = 16,            /* where= conditions per table request */
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
  pthread_cond_t wake;    /* rows for event streams, or ending */
  pthread_cond_t drained; /* the last event stream has ended */
  relation *rels;
  int nrels;
  vpq_stats stats;        /* as of the newest row */
  bool ending;
  int nclients;
  int port;
  bool started;           /* MHD's log messages are wanted only while starting */
  char start_error[256];
};

static const char dashboard_html[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>vpq</title>\n"
    "<style>\n"
    "body { font: 14px system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2733; }\n"
    "header { display: flex; gap: 1.5em; align-items: baseline; padding: .6em 1em; background: #1d2733; color: #fff; }\n"
    "header h1 { font-size: 1.1em; margin: 0; }\n"
    "header a { color: #9fb3c8; font-size: .85em; }\n"
    "#status { color: #9fb3c8; font-size: .9em; flex: 1; }\n"
    "main { padding: 1em; display: grid; gap: 1em; }\n"
    ".cards { display: flex; gap: 1em; flex-wrap: wrap; }\n"
    ".card, section { background: #fff; border-radius: 6px; padding: .7em 1em; box-shadow: 0 1px 2px #0003; }\n"
    ".card { min-width: 11em; }\n"
    ".value { font-size: 1.6em; font-weight: 600; }\n"
    ".label { color: #5d6b7a; font-size: .85em; }\n"
    ".bar { height: 8px; background: #e3e6ea; border-radius: 4px; margin: .3em 0; }\n"
    ".bar div { height: 100%; background: #2e9d5b; border-radius: 4px; }\n"
    "canvas { width: 100%; height: 360px; display: block; }\n"
    "h2 { font-size: 1em; margin: 0 0 .4em; }\n"
    "table { border-collapse: collapse; width: 100%; }\n"
    "th, td { padding: .25em .6em; text-align: right; border-bottom: 1px solid #eceef1; }\n"
    "th:first-child, td:first-child { text-align: left; }\n"
    ".legend span { margin-right: 1.4em; font-size: .85em; }\n"
    ".legend i { display: inline-block; width: 1.6em; height: 4px; vertical-align: middle; margin-right: .4em; }\n"
    "[hidden] { display: none !important; }\n"
    "</style>\n"
    "</head>\n"
    "<body>\n"
    "<header><h1>vpq</h1><span id=\"status\">connecting</span>\n"
    "<a href=\"/api/queries\">queries</a><a href=\"/metrics\">metrics</a></header>\n"
    "<main>\n"
    "<div class=\"cards\">\n"
    "<div class=\"card\" id=\"card-load\" hidden><div class=\"label\">plant load</div><div class=\"value\" id=\"load\">-</div><div class=\"label\" id=\"load-at\"></div></div>\n"
    "<div class=\"card\" id=\"card-forecast\" hidden><div class=\"label\">forecast, next step</div><div class=\"value\" id=\"forecast\">-</div><div class=\"label\" id=\"forecast-peak\"></div></div>\n"
    "<div class=\"card\" id=\"card-net\" hidden><div class=\"label\">net load after dispatch</div><div class=\"value\" id=\"net\">-</div><div class=\"label\" id=\"planned-peak\"></div></div>\n"
    "<div class=\"card\" id=\"card-soc\" hidden><div class=\"label\">fleet state of charge</div><div class=\"value\" id=\"soc\">-</div><div class=\"bar\"><div id=\"soc-bar\" style=\"width:0\"></div></div><div class=\"label\" id=\"stored\"></div></div>\n"
    "</div>\n"
    "<section id=\"chart-box\" hidden><div class=\"legend\" id=\"legend\"></div><canvas id=\"chart\"></canvas></section>\n"
    "<section id=\"dispatch-box\" hidden><h2>dispatch</h2><div class=\"label\" id=\"dispatch-issue\"></div>\n"
    "<table><thead><tr><th>device</th><th>setpoint kW</th><th>soc</th><th>planned peak kW</th></tr></thead><tbody id=\"dispatch\"></tbody></table></section>\n"
    "</main>\n"
    "<script>\n"
    "'use strict';\n"
    "const HOUR = 3600e3, HISTORY = 24 * HOUR, KEEP = 7 * 24 * HOUR;\n"
    "const COLORS = { load: '#1f6fb2', net: '#2e9d5b', forecast: '#e07b00', band: 'rgba(224,123,0,.18)', peak: '#c0392b' };\n"
    "const plant = new Map();      /* ts -> load_kw */\n"
    "let forecast = null;          /* the latest issue: { issued: ms, rows: Map ts -> row } */\n"
    "const dispatch = new Map();   /* 'issued|ts|device' -> row */\n"
    "let fleet = null, dirty = false;\n"
    "const $ = id => document.getElementById(id);\n"
    "const num = v => v == null || !isFinite(v) ? '-' : v.toFixed(1);\n"
    "const kw = v => num(v) === '-' ? '-' : num(v) + ' kW';\n"
    "const utc = t => new Date(t).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';\n"
    "\n"
    "function show(id) { $(id).hidden = false; }\n"
    "\n"
    "function subscribe(name, onRow) {\n"
    "  const source = new EventSource('/api/streams/' + encodeURIComponent(name) + '?last=1024');\n"
    "  source.onopen = () => { $('status').textContent = 'live'; };\n"
    "  source.onerror = () => { $('status').textContent = 'disconnected, retrying'; };\n"
    "  source.onmessage = e => { onRow(JSON.parse(e.data)); dirty = true; };\n"
    "}\n"
    "\n"
    "function onPlant(r) {\n"
    "  if (r.ts == null || r.load_kw == null) return;\n"
    "  plant.set(r.ts, r.load_kw);\n"
    "  const newest = Math.max(...plant.keys());\n"
    "  for (const t of plant.keys()) if (t < newest - KEEP) plant.delete(t);\n"
    "}\n"
    "\n"
    "function onForecast(r) {\n"
    "  if (r.issued_at == null || r.ts == null || r.value == null) return;\n"
    "  if (!forecast || r.issued_at > forecast.issued) forecast = { issued: r.issued_at, rows: new Map() };\n"
    "  if (r.issued_at === forecast.issued) forecast.rows.set(r.ts, r);\n"
    "}\n"
    "\n"
    "function onDispatch(r) {\n"
    "  if (r.issued_at == null || r.ts == null) return;\n"
    "  dispatch.set(r.issued_at + '|' + r.ts + '|' + r.device_id, r);\n"
    "  let newest = r.issued_at;\n"
    "  for (const d of dispatch.values()) newest = Math.max(newest, d.issued_at);\n"
    "  for (const [k, d] of dispatch) if (d.issued_at < newest - KEEP) dispatch.delete(k);\n"
    "}\n"
    "\n"
    "/* ts -> the sum of setpoint_kw planned for ts by the newest issue that covers ts */\n"
    "function setpointsByTime() {\n"
    "  const sums = new Map();\n"
    "  for (const r of dispatch.values()) {\n"
    "    if (r.setpoint_kw == null) continue;\n"
    "    const s = sums.get(r.ts);\n"
    "    if (!s || r.issued_at > s.issued) sums.set(r.ts, { issued: r.issued_at, kw: r.setpoint_kw });\n"
    "    else if (r.issued_at === s.issued) s.kw += r.setpoint_kw;\n"
    "  }\n"
    "  return sums;\n"
    "}\n"
    "\n"
    "/* the setpoint each device is applying: its newest row for its issue's first step */\n"
    "function currentSetpoints() {\n"
    "  const byDevice = new Map();\n"
    "  for (const r of dispatch.values()) {\n"
    "    if (r.ts !== r.issued_at) continue;\n"
    "    const d = byDevice.get(r.device_id);\n"
    "    if (!d || r.issued_at > d.issued_at) byDevice.set(r.device_id, r);\n"
    "  }\n"
    "  return [...byDevice.values()].sort((a, b) => String(a.device_id).localeCompare(String(b.device_id)));\n"
    "}\n"
    "\n"
    "async function pollFleet() {\n"
    "  try {\n"
    "    const response = await fetch('/api/tables/fleet');\n"
    "    if (!response.ok) return;\n"
    "    const rows = await response.json();\n"
    "    fleet = rows.find(r => r.region == null && r.site == null) || null;\n"
    "    dirty = true;\n"
    "  } catch (e) {\n"
    "    $('status').textContent = 'disconnected';\n"
    "  }\n"
    "}\n"
    "\n"
    "function niceTicks(lo, hi, count) {\n"
    "  const raw = (hi - lo) / count, magnitude = Math.pow(10, Math.floor(Math.log10(raw)));\n"
    "  const step = [1, 2, 5, 10].map(m => m * magnitude).find(s => s >= raw);\n"
    "  const ticks = [];\n"
    "  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) ticks.push(v);\n"
    "  return ticks;\n"
    "}\n"
    "\n"
    "function timeTicks(lo, hi) {\n"
    "  const steps = [15, 30, 60, 120, 180, 360, 720, 1440].map(m => m * 60e3);\n"
    "  const step = steps.find(s => (hi - lo) / s <= 8) || 2880 * 60e3;\n"
    "  const ticks = [];\n"
    "  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) ticks.push(t);\n"
    "  return ticks;\n"
    "}\n"
    "\n"
    "function line(g, points, x, y, color, dash) {\n"
    "  if (!points.length) return;\n"
    "  g.strokeStyle = color;\n"
    "  g.lineWidth = 2;\n"
    "  g.setLineDash(dash || []);\n"
    "  g.beginPath();\n"
    "  points.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));\n"
    "  g.stroke();\n"
    "  g.setLineDash([]);\n"
    "}\n"
    "\n"
    "function drawChart(load, net, steps, peak) {\n"
    "  const canvas = $('chart'), ratio = window.devicePixelRatio || 1;\n"
    "  const w = canvas.clientWidth, h = canvas.clientHeight;\n"
    "  canvas.width = w * ratio;\n"
    "  canvas.height = h * ratio;\n"
    "  const g = canvas.getContext('2d');\n"
    "  g.setTransform(ratio, 0, 0, ratio, 0, 0);\n"
    "  g.clearRect(0, 0, w, h);\n"
    "  const times = load.map(p => p[0]).concat(steps.map(r => r.ts));\n"
    "  if (!times.length) return;\n"
    "  let t1 = Math.max(...times), t0 = Math.min(...times);\n"
    "  if (load.length) t0 = Math.max(t0, load[load.length - 1][0] - HISTORY);\n"
    "  if (t1 <= t0) t1 = t0 + HOUR;\n"
    "  const values = [];\n"
    "  for (const [t, v] of load.concat(net)) if (t >= t0) values.push(v);\n"
    "  for (const r of steps) values.push(r.value, r.lo == null ? r.value : r.lo, r.hi == null ? r.value : r.hi);\n"
    "  if (peak != null) values.push(peak);\n"
    "  let v0 = Math.min(0, ...values), v1 = Math.max(...values);\n"
    "  if (v1 <= v0) v1 = v0 + 1;\n"
    "  v1 += (v1 - v0) * 0.05;\n"
    "  const left = 64, right = 12, top = 10, bottom = 26;\n"
    "  const x = t => left + (t - t0) / (t1 - t0) * (w - left - right);\n"
    "  const y = v => top + (v1 - v) / (v1 - v0) * (h - top - bottom);\n"
    "  g.font = '12px system-ui, sans-serif';\n"
    "  g.fillStyle = '#5d6b7a';\n"
    "  g.strokeStyle = '#eceef1';\n"
    "  g.lineWidth = 1;\n"
    "  g.textAlign = 'right';\n"
    "  for (const v of niceTicks(v0, v1, 6)) {\n"
    "    g.beginPath(); g.moveTo(left, y(v)); g.lineTo(w - right, y(v)); g.stroke();\n"
    "    g.fillText(v + ' kW', left - 6, y(v) + 4);\n"
    "  }\n"
    "  g.textAlign = 'center';\n"
    "  for (const t of timeTicks(t0, t1)) {\n"
    "    const label = t % (24 * HOUR) === 0 ? new Date(t).toISOString().slice(5, 10) : new Date(t).toISOString().slice(11, 16);\n"
    "    g.fillText(label, x(t), h - 8);\n"
    "  }\n"
    "  const shown = steps.filter(r => r.lo != null && r.hi != null);\n"
    "  if (shown.length) {\n"
    "    g.fillStyle = COLORS.band;\n"
    "    g.beginPath();\n"
    "    shown.forEach((r, i) => (i ? g.lineTo(x(r.ts), y(r.hi)) : g.moveTo(x(r.ts), y(r.hi))));\n"
    "    for (let i = shown.length - 1; i >= 0; i--) g.lineTo(x(shown[i].ts), y(shown[i].lo));\n"
    "    g.closePath();\n"
    "    g.fill();\n"
    "  }\n"
    "  if (forecast) {\n"
    "    g.strokeStyle = '#9aa5b1';\n"
    "    g.setLineDash([2, 4]);\n"
    "    g.beginPath(); g.moveTo(x(forecast.issued), top); g.lineTo(x(forecast.issued), h - bottom); g.stroke();\n"
    "    g.setLineDash([]);\n"
    "  }\n"
    "  if (peak != null) line(g, [[t0, peak], [t1, peak]], x, y, COLORS.peak, [6, 4]);\n"
    "  line(g, steps.map(r => [r.ts, r.value]), x, y, COLORS.forecast, [5, 3]);\n"
    "  line(g, load.filter(p => p[0] >= t0), x, y, COLORS.load);\n"
    "  line(g, net.filter(p => p[0] >= t0), x, y, COLORS.net);\n"
    "}\n"
    "\n"
    "function render() {\n"
    "  const load = [...plant.entries()].sort((a, b) => a[0] - b[0]);\n"
    "  const steps = forecast ? [...forecast.rows.values()].sort((a, b) => a.ts - b.ts) : [];\n"
    "  const sums = setpointsByTime();\n"
    "  const net = load.filter(([t]) => sums.has(t)).map(([t, v]) => [t, v - sums.get(t).kw]);\n"
    "  const current = currentSetpoints();\n"
    "  const peak = current.length ? current[0].planned_peak_kw : null;\n"
    "  if (load.length) {\n"
    "    const [t, v] = load[load.length - 1];\n"
    "    $('load').textContent = kw(v);\n"
    "    $('load-at').textContent = utc(t);\n"
    "  }\n"
    "  if (steps.length) {\n"
    "    $('forecast').textContent = kw(steps[0].value);\n"
    "    $('forecast-peak').textContent = 'peak ' + kw(Math.max(...steps.map(r => r.value))) + ', issued ' + utc(forecast.issued);\n"
    "  }\n"
    "  if (net.length) $('net').textContent = kw(net[net.length - 1][1]);\n"
    "  if (peak != null) $('planned-peak').textContent = 'planned peak ' + kw(peak);\n"
    "  if (fleet && fleet.soc != null) {\n"
    "    $('soc').textContent = (100 * fleet.soc).toFixed(1) + ' %';\n"
    "    $('soc-bar').style.width = Math.max(0, Math.min(100, 100 * fleet.soc)) + '%';\n"
    "    $('stored').textContent = (fleet.stored_kwh == null ? '-' : fleet.stored_kwh.toFixed(0)) + ' of ' +\n"
    "      (fleet.capacity_kwh == null ? '-' : fleet.capacity_kwh.toFixed(0)) + ' kWh, ' + fleet.batteries + ' batteries';\n"
    "  }\n"
    "  const body = $('dispatch');\n"
    "  body.textContent = '';\n"
    "  for (const r of current) {\n"
    "    const tr = body.insertRow();\n"
    "    for (const v of [r.device_id == null ? '-' : r.device_id, num(r.setpoint_kw), r.soc == null ? '-' : num(100 * r.soc) + ' %',\n"
    "                     num(r.planned_peak_kw)])\n"
    "      tr.insertCell().textContent = v;\n"
    "  }\n"
    "  if (current.length) $('dispatch-issue').textContent = 'issued ' + utc(current[0].issued_at);\n"
    "  drawChart(load, net, steps, peak);\n"
    "}\n"
    "\n"
    "function legend(items) {\n"
    "  $('legend').innerHTML = '';\n"
    "  for (const [name, color] of items) {\n"
    "    const span = document.createElement('span'), mark = document.createElement('i');\n"
    "    mark.style.background = color;\n"
    "    span.append(mark, name);\n"
    "    $('legend').append(span);\n"
    "  }\n"
    "}\n"
    "\n"
    "async function start() {\n"
    "  let relations;\n"
    "  try {\n"
    "    relations = await (await fetch('/api/queries')).json();\n"
    "  } catch (e) {\n"
    "    $('status').textContent = 'cannot reach the engine';\n"
    "    return;\n"
    "  }\n"
    "  const kind = {};\n"
    "  for (const r of relations) kind[r.name.toLowerCase()] = { name: r.name, kind: r.kind };\n"
    "  const stream = n => kind[n] && kind[n].kind === 'stream' ? kind[n].name : null;\n"
    "  const items = [];\n"
    "  if (stream('plant_load')) {\n"
    "    show('card-load'); show('chart-box');\n"
    "    items.push(['plant load', COLORS.load]);\n"
    "    subscribe(stream('plant_load'), onPlant);\n"
    "  }\n"
    "  if (stream('load_forecast')) {\n"
    "    show('card-forecast'); show('chart-box');\n"
    "    items.push(['forecast (band: lo..hi)', COLORS.forecast]);\n"
    "    subscribe(stream('load_forecast'), onForecast);\n"
    "  }\n"
    "  if (stream('dispatch')) {\n"
    "    show('dispatch-box');\n"
    "    if (stream('plant_load')) { show('card-net'); items.push(['net load after dispatch', COLORS.net]); }\n"
    "    items.push(['planned peak', COLORS.peak]);\n"
    "    subscribe(stream('dispatch'), onDispatch);\n"
    "  }\n"
    "  if (kind.fleet && kind.fleet.kind === 'table') {\n"
    "    show('card-soc');\n"
    "    pollFleet();\n"
    "    setInterval(pollFleet, 2000);\n"
    "  }\n"
    "  legend(items);\n"
    "  $('status').textContent = items.length || kind.fleet ? 'live' : 'no plant_load, load_forecast, dispatch or fleet here: see queries';\n"
    "  setInterval(() => { if (dirty) { dirty = false; render(); } }, 500);\n"
    "  window.addEventListener('resize', render);\n"
    "}\n"
    "\n"
    "start();\n"
    "</script>\n"
    "</body>\n"
    "</html>\n";

/* GET /embed: one live chart of a stream's column, sized to its frame; it reads its stream
 * and columns from its own query string (serve_embed has checked them). */
static const char embed_html[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>vpq</title>\n"
    "<style>\n"
    "html, body { margin: 0; height: 100%; overflow: hidden; font: 12px system-ui, sans-serif; color: #1d2733; background: #fff; }\n"
    "#label { position: absolute; left: 64px; top: 4px; }\n"
    "#value { font-size: 1.4em; font-weight: 600; margin: 0 .4em; }\n"
    "#status { color: #5d6b7a; }\n"
    "canvas { width: 100%; height: 100%; display: block; }\n"
    "</style>\n"
    "</head>\n"
    "<body>\n"
    "<div id=\"label\"><span id=\"name\"></span><span id=\"value\"></span><span id=\"status\">connecting</span></div>\n"
    "<canvas id=\"chart\"></canvas>\n"
    "<script>\n"
    "'use strict';\n"
    "const params = new URLSearchParams(location.search);\n"
    "const stream = params.get('stream'), ycol = params.get('y'), xcol = params.get('x');\n"
    "const MAX = 1024, points = [];\n"
    "let dirty = true;\n"
    "const $ = id => document.getElementById(id);\n"
    "\n"
    "/* row[name], the name matched case-insensitively as in the language */\n"
    "function field(row, name) {\n"
    "  if (name in row) return row[name];\n"
    "  const key = Object.keys(row).find(k => k.toLowerCase() === name.toLowerCase());\n"
    "  return key === undefined ? undefined : row[key];\n"
    "}\n"
    "\n"
    "const isTime = () => xcol != null && points.length > 0 && points[0][0] > 1e11;\n"
    "const label = (v, time) => time ? new Date(v).toISOString().slice(5, 16).replace('T', ' ') : String(+v.toPrecision(6));\n"
    "\n"
    "function draw() {\n"
    "  const canvas = $('chart'), ratio = window.devicePixelRatio || 1;\n"
    "  const w = canvas.clientWidth, h = canvas.clientHeight;\n"
    "  canvas.width = w * ratio;\n"
    "  canvas.height = h * ratio;\n"
    "  const g = canvas.getContext('2d');\n"
    "  g.setTransform(ratio, 0, 0, ratio, 0, 0);\n"
    "  g.clearRect(0, 0, w, h);\n"
    "  if (!points.length) return;\n"
    "  $('value').textContent = label(points[points.length - 1][1], false);\n"
    "  const shown = points.slice().sort((a, b) => a[0] - b[0]);\n"
    "  let x0 = shown[0][0], x1 = shown[shown.length - 1][0];\n"
    "  let y0 = Math.min(...shown.map(p => p[1])), y1 = Math.max(...shown.map(p => p[1]));\n"
    "  if (x1 <= x0) x1 = x0 + 1;\n"
    "  if (y1 <= y0) { y0 -= 1; y1 += 1; }\n"
    "  const left = 60, right = 10, top = 24, bottom = 20;\n"
    "  const x = v => left + (v - x0) / (x1 - x0) * (w - left - right);\n"
    "  const y = v => top + (y1 - v) / (y1 - y0) * (h - top - bottom);\n"
    "  g.font = '11px system-ui, sans-serif';\n"
    "  g.fillStyle = '#5d6b7a';\n"
    "  g.strokeStyle = '#eceef1';\n"
    "  g.lineWidth = 1;\n"
    "  g.textAlign = 'right';\n"
    "  for (let i = 0; i <= 4; i++) {\n"
    "    const v = y0 + (y1 - y0) * i / 4;\n"
    "    g.beginPath(); g.moveTo(left, y(v)); g.lineTo(w - right, y(v)); g.stroke();\n"
    "    g.fillText(label(v, false), left - 4, y(v) + 4);\n"
    "  }\n"
    "  g.fillText(label(x1, isTime()), w - right, h - 6);\n"
    "  g.textAlign = 'left';\n"
    "  g.fillText(label(x0, isTime()), left, h - 6);\n"
    "  g.strokeStyle = '#1f6fb2';\n"
    "  g.lineWidth = 2;\n"
    "  g.beginPath();\n"
    "  shown.forEach(([a, b], i) => (i ? g.lineTo(x(a), y(b)) : g.moveTo(x(a), y(b))));\n"
    "  g.stroke();\n"
    "}\n"
    "\n"
    "$('name').textContent = stream + ' ' + ycol;\n"
    "const source = new EventSource('/api/streams/' + encodeURIComponent(stream) + '?last=' + MAX);\n"
    "source.onopen = () => { $('status').textContent = ''; };\n"
    "source.onerror = () => { $('status').textContent = 'reconnecting'; };\n"
    "source.onmessage = e => {\n"
    "  const row = JSON.parse(e.data), yv = field(row, ycol), xv = xcol == null ? Number(e.lastEventId) : field(row, xcol);\n"
    "  if (typeof yv !== 'number' || typeof xv !== 'number') return;\n"
    "  points.push([xv, yv]);\n"
    "  if (points.length > MAX) points.shift();\n"
    "  dirty = true;\n"
    "};\n"
    "setInterval(() => { if (dirty) { dirty = false; draw(); } }, 250);\n"
    "window.addEventListener('resize', draw);\n"
    "</script>\n"
    "</body>\n"
    "</html>\n";

/* ===== Helpers ===== */

/* Milliseconds on the monotonic clock. */
static int64_t monotonic_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

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

/* Queues event `id` (row `json`) for a client, or marks it overflowing. */
static void queue_row(client *c, int64_t id, const char *json, size_t len) {
  if (c->overflow || c->closing) return;
  char head[40];
  int head_len = snprintf(head, sizeof head, "id: %lld\ndata: ", (long long)id);
  if (c->queue.len - c->start + (size_t)head_len + len + 2 > QUEUE_CAP) {
    c->overflow = true;
    c->queue.len = c->start = 0;
    return;
  }
  queue_append(c, head, (size_t)head_len);
  queue_append(c, json, len);
  queue_append(c, "\n\n", 2);
}

/* Keeps a stream's new row among the recent ones and queues it for its clients. */
static void stream_append(vpq_http *h, relation *rel, const char *json, size_t len) {
  vpq_buf *slot = &rel->recent[rel->recent_next];
  slot->len = 0;
  vpq_buf_append(slot, json, len);
  rel->recent_next = (rel->recent_next + 1) % RECENT;
  if (rel->recent_n < RECENT) rel->recent_n++;
  rel->seq++;
  for (client *c = rel->clients; c; c = c->next) queue_row(c, rel->seq, json, len);
  if (rel->clients) pthread_cond_broadcast(&h->wake);
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
  else stream_append(h, rel, json, len);
  pthread_mutex_unlock(&h->lock);
}

/* ===== Responses ===== */

/* Gives the response `r` its headers and queues it (and drops this reference to it). */
static enum MHD_Result send_response(struct MHD_Connection *conn, unsigned status, const char *type,
                                     struct MHD_Response *r) {
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET");
  if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"vpq\"");
  enum MHD_Result result = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return result;
}

/* Replies `body` (taken over). */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type, vpq_buf *body) {
  struct MHD_Response *r = MHD_create_response_from_buffer(body->len, body->data, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    vpq_buf_free(body);
    return MHD_NO;
  }
  return send_response(conn, status, type, r);
}

/* Replies a string that lives as long as the program. */
static enum MHD_Result reply_static(struct MHD_Connection *conn, const char *type, const char *text) {
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
  return r ? send_response(conn, MHD_HTTP_OK, type, r) : MHD_NO;
}

/* Replies {"error": MESSAGE}. */
__attribute__((format(printf, 3, 4))) static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned status,
                                                                         const char *fmt, ...) {
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  vpq_buf body = {0};
  vpq_buf_puts(&body, "{\"error\":");
  vpq_json_encode_string(&body, message, strlen(message));
  vpq_buf_puts(&body, "}\n");
  return reply(conn, status, "application/json", &body);
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

/* Orders rows by their JSON text. */
static int compare_rows(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
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
  size_t n = 0;
  pthread_mutex_lock(&h->lock);
  for (size_t b = 0; b < rel->nbuckets; b++)
    for (const row_entry *e = rel->buckets[b]; e; e = e->next)
      if (row_matches(&filter, e->json))
        for (int64_t k = 0; k < e->count; k++, n++) vpq_buf_append(&texts, e->json, e->len + 1);
  pthread_mutex_unlock(&h->lock);
  free_filter(&filter);
  const char **rows = malloc(sizeof *rows * (n + 1));
  if (!rows) abort();
  for (size_t i = 0, at = 0; i < n; i++, at += strlen(texts.data + at) + 1) rows[i] = texts.data + at;
  qsort(rows, n, sizeof *rows, compare_rows);
  if (filter.limit >= 0 && (unsigned long long)filter.limit < n) n = (size_t)filter.limit;
  vpq_buf body = {0};
  vpq_buf_puts(&body, "[");
  for (size_t i = 0; i < n; i++) vpq_buf_printf(&body, "%s\n%s", i ? "," : "", rows[i]);
  vpq_buf_puts(&body, "\n]\n");
  free(rows);
  vpq_buf_free(&texts);
  return reply(conn, MHD_HTTP_OK, "application/json", &body);
}

/* MHD's reader of an event stream: waits for the client's queue to fill and hands on what it
 * can take. */
static ssize_t read_events(void *cls, uint64_t pos, char *out, size_t max) {
  (void)pos;
  client *c = cls;
  vpq_http *h = c->rel->http;
  int64_t keepalive = monotonic_ms() + KEEPALIVE_S * 1000;
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
    int64_t now = monotonic_ms();
    if (now >= keepalive) {
      queue_append(c, ": keep-alive\n\n", 14);
      break;
    }
    struct timespec until = monotonic_at(now + HANGUP_CHECK_MS < keepalive ? now + HANGUP_CHECK_MS : keepalive);
    pthread_cond_timedwait(&h->wake, &h->lock, &until);
    if (c->start == c->queue.len && hung_up(c->fd)) {
      pthread_mutex_unlock(&h->lock);
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
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
    if (after < 0 || *end || errno)
      return reply_error(conn, MHD_HTTP_BAD_REQUEST, "Last-Event-ID must be an event id (a whole number)");
  }
  client *c = calloc(1, sizeof *c);
  if (!c) abort();
  c->rel = rel;
  c->fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD)->connect_fd;
  pthread_mutex_lock(&h->lock);
  if (h->ending) {
    pthread_mutex_unlock(&h->lock);
    free(c);
    return reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "the engine has stopped");
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
  return reply_static(conn, "text/html; charset=utf-8", embed_html);
}

/* Appends a metric family's # HELP and # TYPE lines. */
static void metric_header(vpq_buf *out, const char *name, const char *type, const char *help) {
  vpq_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Appends `metric{relation="NAME"} `, the name escaped as a label value. */
static void sample(vpq_buf *out, const char *metric, const char *relation) {
  vpq_buf_printf(out, "%s{relation=\"", metric);
  for (const char *p = relation; *p; p++) {
    if (*p == '\\' || *p == '"') vpq_buf_printf(out, "\\%c", *p);
    else if (*p == '\n') vpq_buf_puts(out, "\\n");
    else vpq_buf_append(out, p, 1);
  }
  vpq_buf_puts(out, "\"} ");
}

/* GET /metrics: Prometheus text format 0.0.4. */
static enum MHD_Result serve_metrics(vpq_http *h, struct MHD_Connection *conn) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
  vpq_buf out = {0};
  pthread_mutex_lock(&h->lock);
  const struct {
    const char *name, *help;
    int64_t value;
  } totals[] = {
      {"vpq_rows_in_total", "Source rows decoded.", h->stats.rows_in},
      {"vpq_sink_rows_total", "Rows written to sinks.", h->stats.rows_out},
      {"vpq_late_rows_total", "Rows that arrived after their window closed.", h->stats.late},
      {"vpq_malformed_total", "Source records that could not be decoded.", h->stats.malformed},
      {"vpq_dead_lettered_total", "Records and rows written to dead-letter outputs.", h->stats.dead_lettered},
  };
  for (size_t i = 0; i < sizeof totals / sizeof *totals; i++) {
    metric_header(&out, totals[i].name, "counter", totals[i].help);
    vpq_buf_printf(&out, "%s %lld\n", totals[i].name, (long long)totals[i].value);
  }
  metric_header(&out, "vpq_rows_out_total", "counter", "Rows each stream or table emitted (retractions not counted).");
  for (int i = 0; i < h->nrels; i++) {
    sample(&out, "vpq_rows_out_total", h->rels[i].name);
    vpq_buf_printf(&out, "%lld\n", (long long)h->rels[i].rows_out);
  }
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

/* MHD's request handler: routes a request to its endpoint. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size,
                              void **con_cls) {
  (void)version, (void)upload_data, (void)upload_data_size, (void)con_cls;
  vpq_http *h = cls;
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
    return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed: use GET", method);
  if (strcmp(url, "/healthz") == 0) return reply_static(conn, "text/plain; charset=utf-8", "ok\n");
  if (h->token && !authorized(h, conn))
    return reply_error(conn, MHD_HTTP_UNAUTHORIZED, "this server needs the header Authorization: Bearer TOKEN");
  if (strcmp(url, "/") == 0) return reply_static(conn, "text/html; charset=utf-8", dashboard_html);
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
  return table ? serve_table(h, conn, rel) : serve_stream(h, conn, rel);
}

/* ===== Starting and stopping ===== */

/* Skips spaces and comments from `p`. */
static const char *skip_blank(const char *p) {
  for (;;) {
    while (isspace((unsigned char)*p)) p++;
    if (p[0] == '-' && p[1] == '-') {
      while (*p && *p != '\n') p++;
    } else if (p[0] == '/' && p[1] == '*') {
      const char *end = strstr(p + 2, "*/");
      p = end ? end + 2 : p + strlen(p);
    } else {
      return p;
    }
  }
}

/* Skips the 'string' or "quoted name" at `p` (a doubled quote stands for one). */
static const char *skip_quoted(const char *p) {
  char quote = *p++;
  for (; *p && !(p[0] == quote && p[1] != quote); p += p[0] == quote ? 2 : 1) {}
  return *p ? p + 1 : p;
}

/* Reads the name or keyword at `p` (after blanks; a "quoted name" unquoted) into `word`;
 * returns where it ends. */
static const char *read_word(const char *p, char *word, size_t size) {
  p = skip_blank(p);
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
  const char *p = skip_blank(text);
  while (*p) {
    const char *start = p;
    while (*p && *p != ';') {
      if (*p == '\'' || *p == '"') {
        p = skip_quoted(p);
      } else if ((p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*')) {
        p = skip_blank(p);
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
    p = skip_blank(p);
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
  pthread_cond_destroy(&h->wake);
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
  init_cond(&h->wake);
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
  pthread_cond_broadcast(&h->wake);
  struct timespec deadline = monotonic_at(monotonic_ms() + DRAIN_MS);
  while (h->nclients > 0 && pthread_cond_timedwait(&h->drained, &h->lock, &deadline) != ETIMEDOUT) {}
  pthread_mutex_unlock(&h->lock);
  MHD_stop_daemon(h->daemon);
  free_http(h);
}
