// dashboard.mjs URL WEB_DIR OUT_DIR — the dashboard in a real browser: Debian's chromium, driven
// by playwright-core (web/package.json), loads URL (a running `vpq run peak_shaving.vpq --http`)
// and waits for live data. Each uPlot chart (window.vpqCharts: load, net, soc) must get points
// and draw its lines (uPlot's stroked paths, and the series' colours on the canvas), then get
// newer points; the dispatch table must fill and move on to a newer issue. The same for the
// /embed chart of plant_load (window.vpqCharts.embed). Every request must go to the engine
// (nothing from elsewhere: it works offline) and the pages must log no error. Screenshots go
// to OUT_DIR.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

const [url, webDir, outDir] = process.argv.slice(2);
const { chromium } = createRequire(path.join(webDir, 'package.json'))('playwright-core');
const WAIT = 180e3; // a bound on how long live data may take to come, not a measurement

mkdirSync(outDir, { recursive: true });
// Nothing but the engine on loopback: no background connections (updates, sync, QUIC probes),
// and no host name resolves.
const quiet = ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
               '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'];
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: process.getuid() === 0 ? ['--no-sandbox', ...quiet] : quiet, // root has no user namespace sandbox
});
const problems = [];
let failed = false;

// Notes a failure (the run goes on, to report every one).
function fail(message) {
  console.log('FAIL: ' + message);
  failed = true;
}

// A new page at `target` whose errors and requests outside the engine are noted.
async function open(target) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', e => problems.push('page error: ' + e.message));
  page.on('console', m => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('request', r => { if (!r.url().startsWith(url)) problems.push('request outside the engine: ' + r.url()); });
  await page.goto(target);
  return page;
}

// In the page: for each chart of window.vpqCharts, its points and the newest x, and per
// series its non-null points and the pixels of its colour on the canvas (opaque strokes only).
function inspect() {
  const out = {};
  for (const [name, u] of Object.entries(window.vpqCharts)) {
    const xs = u.data[0];
    const { width, height } = u.ctx.canvas;
    const pixels = u.ctx.getImageData(0, 0, width, height).data;
    const series = [];
    for (let i = 1; i < u.series.length; i++) {
      const s = u.series[i];
      const stroke = typeof s.stroke === 'function' ? s.stroke(u, i) : s.stroke;
      const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(stroke || '');
      let drawn = null;
      if (m) {
        const [r, g, b] = [1, 2, 3].map(k => parseInt(m[k], 16));
        drawn = 0;
        for (let p = 0; p < pixels.length; p += 4)
          if (Math.abs(pixels[p] - r) < 12 && Math.abs(pixels[p + 1] - g) < 12 && Math.abs(pixels[p + 2] - b) < 12 && pixels[p + 3] > 200)
            drawn++;
      }
      // uPlot keeps the Path2D it stroked for a series (its lines may lie under another's)
      const stroked = !!(s._paths && s._paths.stroke);
      series.push({ label: s.label, points: u.data[i].filter(v => v != null).length, drawn, stroked });
    }
    out[name] = { points: xs.length, newest: xs.length ? xs[xs.length - 1] : null, series };
  }
  return out;
}

// Waits until every chart of `required` (name -> series indexes, 1-based) has two points (a
// line) in each of those series, and returns what inspect() sees then.
async function waitForPoints(page, required) {
  await page.waitForFunction(required => Object.entries(required).every(([name, idxs]) => {
    const u = window.vpqCharts && window.vpqCharts[name];
    return u && idxs.every(i => u.data[i] && u.data[i].filter(v => v != null).length >= 2);
  }), required, { timeout: WAIT, polling: 250 });
  return page.evaluate(inspect);
}

// Waits until the newest x of every chart of `before` (name -> newest x) is past it.
async function waitForNewer(page, before) {
  await page.waitForFunction(before => Object.entries(before).every(([name, x]) => {
    const xs = window.vpqCharts[name].data[0];
    return xs.length && xs[xs.length - 1] > x;
  }), before, { timeout: WAIT, polling: 250 });
  return page.evaluate(inspect);
}

// Each series of `required` must have been stroked and show its colour on the canvas (a line
// between two points, however short, covers a few pixels; how many depends on how far the demo
// got, so the check is only that the line is there).
function checkDrawn(seen, required) {
  for (const [name, idxs] of Object.entries(required)) {
    for (const i of idxs) {
      const s = seen[name].series[i - 1];
      console.log(`${name}: ${s.label}: ${s.points} points, stroked ${s.stroked}, ${s.drawn} pixels of its colour on top`);
      if (!s.stroked) fail(`chart ${name}: series ${s.label} has ${s.points} points but no line`);
      if (!(s.drawn >= 5)) fail(`chart ${name}: series ${s.label} shows ${s.drawn} pixels of its colour`);
    }
  }
}

// The dashboard: plant load and forecast, net load and planned peak, soc of every site.
const page = await open(url + '/');
await page.waitForFunction(() => window.vpqCharts && window.vpqCharts.soc, null, { timeout: WAIT, polling: 250 });
const sites = await page.evaluate(() => window.vpqCharts.soc.series.length - 1);
if (sites < 1) fail('the soc chart has no site');
const required = { load: [1, 2, 3, 4], net: [1, 2, 3], soc: [...Array(sites).keys()].map(i => i + 1) };
const first = await waitForPoints(page, required);
checkDrawn(first, { load: [1, 2], net: [2, 3], soc: required.soc });
const dispatchBefore = await page.evaluate(() => [document.querySelectorAll('#dispatch tr').length, document.getElementById('dispatch-issue').textContent]);
if (dispatchBefore[0] < 1) fail('the dispatch table is empty');
const newest = Object.fromEntries(Object.entries(first).map(([name, c]) => [name, c.newest]));
const later = await waitForNewer(page, newest);
for (const name of Object.keys(required))
  console.log(`${name}: newest point ${new Date(first[name].newest * 1e3).toISOString()} -> ${new Date(later[name].newest * 1e3).toISOString()} (${first[name].points} -> ${later[name].points} points)`);
await page.waitForFunction(before => document.getElementById('dispatch-issue').textContent !== before, dispatchBefore[1], { timeout: WAIT, polling: 250 });
const dispatchAfter = await page.evaluate(() => [document.querySelectorAll('#dispatch tr').length, document.getElementById('dispatch-issue').textContent]);
console.log(`dispatch: ${dispatchBefore[0]} devices, ${dispatchBefore[1]} -> ${dispatchAfter[1]}`);
await page.screenshot({ path: path.join(outDir, 'dashboard.png'), fullPage: true });

// One chart for an iframe.
const embed = await open(url + '/embed?stream=plant_load&y=load_kw&x=ts');
const embedFirst = await waitForPoints(embed, { embed: [1] });
checkDrawn(embedFirst, { embed: [1] });
const embedLater = await waitForNewer(embed, { embed: embedFirst.embed.newest });
console.log(`embed: ${embedFirst.embed.points} -> ${embedLater.embed.points} points`);
await embed.screenshot({ path: path.join(outDir, 'embed.png') });

for (const p of problems) fail(p);
await browser.close();
if (failed) process.exit(1);
console.log('dashboard and embed: every chart drew live points that moved on; screenshots in ' + outDir);
