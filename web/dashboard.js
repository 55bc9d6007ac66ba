/* dashboard.js — the live dashboard of `vpq run --http` (GET /, docs/http.md), drawn with uPlot.
 *
 * It shows what the running file has of queries/peak_shaving.vpq's relations (the others are
 * left out): the `plant_load`, `load_forecast` and `dispatch` streams, read as server-sent
 * events from their newest 1,024 rows on; the `fleet` table, polled every 2 s; and the state of
 * charge by site, asked of the `batteries` table every 2 s with POST api/query. Rows go into
 * maps as they come; every 500 ms, when something changed, the cards, the three charts and the
 * dispatch table are drawn again from them. The charts are uPlot instances, kept in
 * window.vpqCharts (load, net, soc) for tests and the console.
 */
'use strict';

const HOUR = 3600e3, HISTORY = 24 * HOUR, KEEP = 7 * 24 * HOUR;
const COLORS = {
  load: '#1f6fb2', loadLight: '#9cc3e6', net: '#2e9d5b', forecast: '#e07b00', band: 'rgba(224,123,0,.15)',
  bandEdge: 'rgba(224,123,0,.35)', peak: '#c0392b',
  sites: ['#1f6fb2', '#2e9d5b', '#e07b00', '#8e44ad', '#c0392b', '#16a085', '#7f8c8d', '#d35400'],
};
const SOC_QUERY = 'SELECT site, avg(soc) AS soc, max(seen) AS ts FROM batteries WHERE site IS NOT NULL GROUP BY site';

const plant = new Map();      /* ts -> load_kw */
let forecast = null;          /* the newest issue: { issued: ms, rows: Map ts -> row } */
const dispatch = new Map();   /* 'issued|ts|device' -> row */
const socBySite = new Map();  /* site -> Map ts -> soc */
let fleet = null, dirty = false;
const charts = {};            /* name -> { box, uplot, sites } */
window.vpqCharts = {};

const $ = id => document.getElementById(id);
const num = v => (v == null || !isFinite(v) ? '-' : (Math.abs(v) < 0.05 ? 0 : v).toFixed(1));
const kw = v => num(v) === '-' ? '-' : num(v) + ' kW';
const utc = t => new Date(t).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';

/* Unhides element `id`. */
function show(id) { $(id).hidden = false; }

/* ===== Data in ===== */

/* Reads stream `name` as server-sent events from its newest 1,024 rows on, each row to onRow. */
function subscribe(name, onRow) {
  const source = new EventSource('api/streams/' + encodeURIComponent(name) + '?last=1024');
  source.onopen = () => { $('status').textContent = 'live'; };
  source.onerror = () => { $('status').textContent = 'disconnected, retrying'; };
  source.onmessage = e => { onRow(JSON.parse(e.data)); dirty = true; };
}

/* A plant_load row: its load at its window's start; a week is kept. */
function onPlant(r) {
  if (r.ts == null || r.load_kw == null) return;
  plant.set(r.ts, r.load_kw);
  const newest = Math.max(...plant.keys());
  for (const t of plant.keys()) if (t < newest - KEEP) plant.delete(t);
}

/* A load_forecast row: kept when it belongs to the newest issue. */
function onForecast(r) {
  if (r.issued_at == null || r.ts == null || r.value == null) return;
  if (!forecast || r.issued_at > forecast.issued) forecast = { issued: r.issued_at, rows: new Map() };
  if (r.issued_at === forecast.issued) forecast.rows.set(r.ts, r);
}

/* A dispatch row: kept by issue, step and device; a week of issues is kept. */
function onDispatch(r) {
  if (r.issued_at == null || r.ts == null) return;
  dispatch.set(r.issued_at + '|' + r.ts + '|' + r.device_id, r);
  let newest = r.issued_at;
  for (const d of dispatch.values()) newest = Math.max(newest, d.issued_at);
  for (const [k, d] of dispatch) if (d.issued_at < newest - KEEP) dispatch.delete(k);
}

/* Reads the fleet table's plant row (region and site null) for its card. */
async function pollFleet() {
  try {
    const response = await fetch('api/tables/fleet');
    if (!response.ok) return;
    const rows = await response.json();
    fleet = rows.find(r => r.region == null && r.site == null) || null;
    dirty = true;
  } catch (e) {
    $('status').textContent = 'disconnected';
  }
}

/* Asks the batteries table for each site's average soc and newest report; false when the
 * table lacks those columns (the chart is then left out). */
async function pollSoc() {
  try {
    const response = await fetch('api/query', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: SOC_QUERY });
    if (response.status === 400) return false;
    if (!response.ok) return true;
    for (const r of await response.json()) {
      if (r.ts == null || r.soc == null) continue;
      if (!socBySite.has(r.site)) socBySite.set(r.site, new Map());
      const points = socBySite.get(r.site);
      points.set(r.ts, r.soc);
      for (const t of points.keys()) if (t < r.ts - KEEP) points.delete(t);
    }
    dirty = true;
  } catch (e) {
    $('status').textContent = 'disconnected';
  }
  return true;
}

/* ===== What the data means ===== */

/* ts -> the sum of setpoint_kw planned for ts by the newest issue that covers ts */
function setpointsByTime() {
  const sums = new Map();
  for (const r of dispatch.values()) {
    if (r.setpoint_kw == null) continue;
    const s = sums.get(r.ts);
    if (!s || r.issued_at > s.issued) sums.set(r.ts, { issued: r.issued_at, kw: r.setpoint_kw });
    else if (r.issued_at === s.issued) s.kw += r.setpoint_kw;
  }
  return sums;
}

/* issued_at -> the planned_peak_kw of that issue */
function plannedPeaks() {
  const peaks = new Map();
  for (const r of dispatch.values()) if (r.planned_peak_kw != null) peaks.set(r.issued_at, r.planned_peak_kw);
  return peaks;
}

/* the setpoint each device is applying: its newest row for its issue's first step */
function currentSetpoints() {
  const byDevice = new Map();
  for (const r of dispatch.values()) {
    if (r.ts !== r.issued_at) continue;
    const d = byDevice.get(r.device_id);
    if (!d || r.issued_at > d.issued_at) byDevice.set(r.device_id, r);
  }
  return [...byDevice.values()].sort((a, b) => String(a.device_id).localeCompare(String(b.device_id)));
}

/* [xs, ...one array per series] for uPlot: xs the sorted union of the maps' keys (epoch ms,
 * from `from` on) in seconds, each series the value of its map at x or null */
function align(maps, from) {
  const keys = new Set();
  for (const m of maps) for (const t of m.keys()) if (t >= from) keys.add(t);
  const xs = [...keys].sort((a, b) => a - b);
  return [xs.map(t => t / 1000), ...maps.map(m => xs.map(t => (m.has(t) ? m.get(t) : null)))];
}

/* ===== Drawing ===== */

/* uPlot's labels of a UTC time axis: HH:MM, and MM-DD at midnight. */
function timeLabels(u, splits) {
  return splits.map(s => {
    const iso = new Date(s * 1e3).toISOString();
    return iso.slice(11, 16) === '00:00' ? iso.slice(5, 10) : iso.slice(11, 16);
  });
}

/* A uPlot chart in element `id` with time (UTC) on x and `series` on y. */
function makeChart(id, series, extra) {
  const el = $(id);
  const opts = Object.assign({
    width: el.clientWidth || 800,
    height: 300,
    tzDate: ts => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
    series: [{ label: 'time (UTC)', value: (u, v) => (v == null ? '-' : utc(v * 1e3)) }].concat(series),
    axes: [{ values: timeLabels }, { size: 60 }],
    cursor: { drag: { x: false, y: false } },
  }, extra || {});
  return new uPlot(opts, [[], ...series.map(() => [])], el);
}

/* A uPlot series of kW values. */
function kwSeries(label, stroke, more) {
  return Object.assign({ label, stroke, width: 2, value: (u, v) => kw(v) }, more || {});
}

/* The chart called `name`, made by build() the first time. */
function ensureChart(name, build) {
  if (!charts[name]) {
    charts[name] = build();
    window.vpqCharts[name] = charts[name];
  }
  return charts[name];
}

/* The plant load of the last 24 hours and the newest forecast with its band. */
function drawLoad(load, steps) {
  const u = ensureChart('load', () => makeChart('chart-load', [
    kwSeries('plant load', COLORS.load),
    kwSeries('forecast', COLORS.forecast, { dash: [6, 4] }),
    kwSeries('forecast lo', COLORS.bandEdge, { width: 1 }),
    kwSeries('forecast hi', COLORS.bandEdge, { width: 1 }),
  ], { bands: [{ series: [4, 3], fill: COLORS.band }] }));
  const field = key => new Map(steps.map(r => [r.ts, r[key]]));
  const newest = load.size ? Math.max(...load.keys()) : 0;
  u.setData(align([load, field('value'), field('lo'), field('hi')], newest - HISTORY));
}

/* Plant load, net load after dispatch and each issue's planned peak. */
function drawNet(load, net, peaks) {
  const u = ensureChart('net', () => makeChart('chart-net', [
    kwSeries('plant load', COLORS.loadLight),
    kwSeries('net load after dispatch', COLORS.net),
    kwSeries('planned peak', COLORS.peak, { dash: [6, 4], paths: uPlot.paths.stepped({ align: 1 }) }),
  ]));
  const newest = load.size ? Math.max(...load.keys()) : 0;
  u.setData(align([load, net, peaks], newest - HISTORY));
}

/* Each site's state of charge; the chart is made again when a site appears. */
function drawSoc() {
  const sites = [...socBySite.keys()].sort();
  if (charts.soc && charts.soc.sites !== sites.join('|')) {
    charts.soc.destroy();
    delete charts.soc;
  }
  const u = ensureChart('soc', () => {
    const chart = makeChart('chart-soc', sites.map((s, i) => ({
      label: s, stroke: COLORS.sites[i % COLORS.sites.length], width: 2,
      value: (u, v) => (v == null ? '-' : (100 * v).toFixed(1) + ' %'),
    })), { scales: { y: { range: (u, lo, hi) => [Math.max(0, lo - 0.05), Math.min(1, hi + 0.05)] } }, axes: [{ values: timeLabels }, { size: 60, values: (u, vs) => vs.map(v => Math.round(100 * v) + ' %') }] });
    chart.sites = sites.join('|');
    return chart;
  });
  let newest = 0;
  for (const points of socBySite.values()) for (const t of points.keys()) newest = Math.max(newest, t);
  u.setData(align(sites.map(s => socBySite.get(s)), newest - HISTORY));
}

/* The dispatch table: each device's setpoint now. */
function drawDispatch(current) {
  const body = $('dispatch');
  body.textContent = '';
  for (const r of current) {
    const tr = body.insertRow();
    for (const v of [r.device_id == null ? '-' : r.device_id, num(r.setpoint_kw),
                     r.soc == null ? '-' : num(100 * r.soc) + ' %', num(r.planned_peak_kw)])
      tr.insertCell().textContent = v;
  }
  if (current.length) {
    const total = current.reduce((sum, r) => sum + (r.setpoint_kw || 0), 0);
    $('dispatch-issue').textContent = 'issued ' + utc(current[0].issued_at) + ', fleet setpoint ' + kw(total);
  }
}

/* Draws the cards, charts and table again from what has come. */
function render() {
  const steps = forecast ? [...forecast.rows.values()].sort((a, b) => a.ts - b.ts) : [];
  const sums = setpointsByTime();
  const net = new Map();
  for (const [t, v] of plant) if (sums.has(t)) net.set(t, v - sums.get(t).kw);
  const current = currentSetpoints();
  const peak = current.length ? current[0].planned_peak_kw : null;
  if (plant.size) {
    const t = Math.max(...plant.keys());
    $('load').textContent = kw(plant.get(t));
    $('load-at').textContent = utc(t);
  }
  if (steps.length) {
    $('forecast').textContent = kw(steps[0].value);
    $('forecast-peak').textContent = 'peak ' + kw(Math.max(...steps.map(r => r.value))) + ', issued ' + utc(forecast.issued);
  }
  if (net.size) $('net').textContent = kw(net.get(Math.max(...net.keys())));
  if (peak != null) $('planned-peak').textContent = 'planned peak ' + kw(peak);
  if (fleet && fleet.soc != null) {
    $('soc').textContent = (100 * fleet.soc).toFixed(1) + ' %';
    $('soc-bar').style.width = Math.max(0, Math.min(100, 100 * fleet.soc)) + '%';
    $('stored').textContent = (fleet.stored_kwh == null ? '-' : fleet.stored_kwh.toFixed(0)) + ' of ' +
      (fleet.capacity_kwh == null ? '-' : fleet.capacity_kwh.toFixed(0)) + ' kWh, ' + fleet.batteries + ' batteries';
  }
  if (!$('load-box').hidden) drawLoad(plant, steps);
  if (!$('net-box').hidden) drawNet(plant, net, plannedPeaks());
  if (!$('soc-box').hidden && socBySite.size) drawSoc();
  if (!$('dispatch-box').hidden) drawDispatch(current);
}

/* Fits the charts to their boxes' new width. */
function resize() {
  for (const [name, u] of Object.entries(charts)) {
    const el = $('chart-' + name);
    u.setSize({ width: el.clientWidth, height: 300 });
  }
}

/* Finds which relations the file has, shows their parts and starts reading them. */
async function start() {
  let relations;
  try {
    relations = await (await fetch('api/queries')).json();
  } catch (e) {
    $('status').textContent = 'cannot reach the engine';
    return;
  }
  const kind = {};
  for (const r of relations) kind[r.name.toLowerCase()] = { name: r.name, kind: r.kind };
  const stream = n => (kind[n] && kind[n].kind === 'stream' ? kind[n].name : null);
  const table = n => (kind[n] && kind[n].kind === 'table' ? kind[n].name : null);
  if (stream('plant_load')) {
    show('card-load'); show('load-box');
    subscribe(stream('plant_load'), onPlant);
  }
  if (stream('load_forecast')) {
    show('card-forecast'); show('load-box');
    subscribe(stream('load_forecast'), onForecast);
  }
  if (stream('dispatch')) {
    show('dispatch-box'); show('net-box');
    if (stream('plant_load')) show('card-net');
    subscribe(stream('dispatch'), onDispatch);
  }
  if (table('fleet')) {
    show('card-soc');
    pollFleet();
    setInterval(pollFleet, 2000);
  }
  if (table('batteries') && await pollSoc()) {
    show('soc-box');
    setInterval(pollSoc, 2000);
  }
  const any = ['plant_load', 'load_forecast', 'dispatch'].some(stream) || table('fleet');
  $('status').textContent = any ? 'live' : 'no plant_load, load_forecast, dispatch or fleet here: see queries';
  setInterval(() => { if (dirty) { dirty = false; render(); } }, 500);
  window.addEventListener('resize', resize);
}

start();
