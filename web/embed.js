/* embed.js — the one-chart page of `vpq run --http` (GET /embed?stream=NAME&y=COL[&x=COL],
 * docs/http.md): a uPlot line of column y of a stream over column x (UTC times when its values
 * look like epoch milliseconds) or, without x, over the rows' event ids. It subscribes with
 * ?last=1024, keeps the newest 1,024 points and redraws every 250 ms when some came; rows whose
 * x or y is not a number are skipped. The chart is window.vpqCharts.embed once the first point
 * is in.
 */
'use strict';

const params = new URLSearchParams(location.search);
const stream = params.get('stream'), ycol = params.get('y'), xcol = params.get('x');
const MAX = 1024, points = [];
let chart = null, dirty = false;
const $ = id => document.getElementById(id);

/* row[name], the name matched case-insensitively as in the language */
function field(row, name) {
  if (name in row) return row[name];
  const key = Object.keys(row).find(k => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : row[key];
}

/* The chart's box. */
const size = () => ({ width: $('chart').clientWidth, height: $('chart').clientHeight });

/* The chart, made for the first point: a time axis when x is epoch milliseconds. */
function makeChart(time) {
  const opts = Object.assign({
    series: [{ label: xcol || 'event' }, { label: ycol, stroke: '#1f6fb2', width: 2 }],
    scales: { x: { time } },
    legend: { show: false },
    axes: [{}, { size: 56 }],
    cursor: { drag: { x: false, y: false } },
  }, size());
  if (time) opts.tzDate = ts => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC');
  if (time) opts.axes[0].values = (u, splits) => splits.map(s => {
    const iso = new Date(s * 1e3).toISOString(); /* HH:MM, and MM-DD at midnight */
    return iso.slice(11, 16) === '00:00' ? iso.slice(5, 10) : iso.slice(11, 16);
  });
  chart = new uPlot(opts, [[], []], $('chart'));
  chart.time = time;
  window.vpqCharts = { embed: chart };
}

/* Draws the kept points, oldest x first, and shows the newest value. */
function draw() {
  if (!points.length) return;
  if (!chart) makeChart(xcol != null && points[0][0] > 1e11);
  const shown = points.slice().sort((a, b) => a[0] - b[0]);
  chart.setData([shown.map(p => (chart.time ? p[0] / 1000 : p[0])), shown.map(p => p[1])]);
  $('value').textContent = String(+points[points.length - 1][1].toPrecision(6));
}

$('name').textContent = stream + ' ' + ycol;
const source = new EventSource('api/streams/' + encodeURIComponent(stream) + '?last=' + MAX);
source.onopen = () => { $('status').textContent = ''; };
source.onerror = () => { $('status').textContent = 'reconnecting'; };
source.onmessage = e => {
  const row = JSON.parse(e.data), yv = field(row, ycol), xv = xcol == null ? Number(e.lastEventId) : field(row, xcol);
  if (typeof yv !== 'number' || typeof xv !== 'number') return;
  points.push([xv, yv]);
  if (points.length > MAX) points.shift();
  dirty = true;
};
setInterval(() => { if (dirty) { dirty = false; draw(); } }, 250);
window.addEventListener('resize', () => chart && chart.setSize(size()));
