#!/usr/bin/env bash
# percentile_vs_python.sh VPQ — a differential test of percentile(x, p) (docs/language.md: exact,
# linear interpolation between ranks, PostgreSQL's percentile_cont) where its result is read
# after every row: 6,000 rows of 3 keys in one hour, x on a 0.5 grid (many equal values) with
# NULLs, through
#   percentile(x, 0.9) and percentile(x, 0.5) per key, WINDOW TUMBLING (SIZE 1 HOUR) EMIT CHANGES
#   percentile(x, 0.25) per group over a table of 400 devices' latest g and x (each change of a
#     device retracts its old row)
# Python recomputes each result from the values after every row: the window's changes, in order,
# must be the results that changed; the table's last row per group its final result.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_work "$1"
/usr/bin/python3 - <<'PY'
import json, random
rng = random.Random(11)
t0 = 1704067200000
with open("s.jsonl", "w") as f:
    for i in range(6000):
        x = None if rng.random() < 0.05 else rng.randrange(0, 200) / 2
        f.write(json.dumps({"k": "k%d" % rng.randrange(3), "d": "d%03d" % rng.randrange(400),
                            "g": "g%d" % rng.randrange(4), "ts": t0 + i * 500, "x": x}) + "\n")
PY
cat > q.vpq <<'VPQ'
CREATE STREAM s (k STRING, d STRING, g STRING, ts TIMESTAMP, x DOUBLE)
  WITH (connector = 'file', path = 's.jsonl', format = 'json', timestamp = 'ts');
CREATE STREAM changes WITH (connector = 'file', path = 'changes.jsonl', format = 'json') AS
  SELECT k, percentile(x, 0.9) AS p90, percentile(x, 0.5) AS p50
  FROM s WINDOW TUMBLING (SIZE 1 HOUR) GROUP BY k EMIT CHANGES;
CREATE TABLE latest AS SELECT d, last(g) AS g, last(x) AS x FROM s GROUP BY d;
CREATE TABLE quartile WITH (connector = 'file', path = 'quartile.jsonl', format = 'json') AS
  SELECT g, percentile(x, 0.25) AS p25 FROM latest GROUP BY g;
VPQ
"$vpq" run q.vpq 2>run.log || { cat run.log; exit 1; }
/usr/bin/python3 - <<'PY'
import json, math, sys

def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    pos = p * (len(v) - 1)
    lo = min(int(math.floor(pos)), len(v) - 1)
    frac = pos - lo
    a = v[lo]
    b = v[lo + 1] if lo + 1 < len(v) else a
    return a if frac == 0 else a + frac * (b - a)

rows = [json.loads(l) for l in open("s.jsonl")]
failures = []
# the window: per key, the results after each row, those that changed
values, last, expected = {}, {}, {}
for r in rows:
    vals = values.setdefault(r["k"], [])
    if r["x"] is not None:
        vals.append(r["x"])
    result = (percentile(vals, 0.9), percentile(vals, 0.5))
    if last.get(r["k"]) != result:
        expected.setdefault(r["k"], []).append(result)
        last[r["k"]] = result
got = {}
for l in open("changes.jsonl"):
    c = json.loads(l)
    got.setdefault(c["k"], []).append((c["p90"], c["p50"]))
for k in sorted(expected):
    if got.get(k) != expected[k]:
        g = got.get(k, [])
        at = next((i for i, (x, y) in enumerate(zip(g, expected[k])) if x != y), min(len(g), len(expected[k])))
        failures.append("window %s: %d changes, expected %d; first difference at %d: %s, expected %s" %
                        (k, len(g), len(expected[k]), at, g[at] if at < len(g) else None,
                         expected[k][at] if at < len(expected[k]) else None))
# the table: each device's latest g and latest x (last() skips NULLs); the final 25th
# percentile of x per g
latest = {}
for r in rows:
    g, x = latest.get(r["d"], (None, None))
    latest[r["d"]] = (r["g"], r["x"] if r["x"] is not None else x)
final = {}
for g, x in latest.values():
    final.setdefault(g, [])
    if x is not None:
        final[g].append(x)
state = {}
for l in open("quartile.jsonl"):
    q = json.loads(l)
    state[q["g"]] = q["p25"]
want = {g: percentile(v, 0.25) for g, v in final.items()}
if state != want:
    failures.append("table: %s, expected %s" % (state, want))
for f in failures:
    print(f)
n = sum(len(v) for v in expected.values())
print("%d window changes, %d groups of the table: %d failures" % (n, len(want), len(failures)))
sys.exit(1 if failures else 0)
PY
