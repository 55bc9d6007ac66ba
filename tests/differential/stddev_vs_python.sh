#!/usr/bin/env bash
# stddev_vs_python.sh VPQ — stddev is the correctly rounded sample standard deviation, the
# value of Python's statistics.stdev (exact arithmetic, rounded once), to the last bit: over 400
# windows of 2–30 values of four kinds (two-decimal readings, values near 1e6 a few units
# apart, tiny values around 0, and mixed magnitudes from 1e-7 to 1e12), and over a table whose
# 300 keys move between 12 groups in 20,000 updates (readings, values near 5e5, and 1e15 rows
# that come and go), where the final row of each group must be the stdev of the values there.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_work "$1"
cat > windows.vpq <<'VPQ'
CREATE STREAM t (g STRING, ts TIMESTAMP, x DOUBLE) WITH (connector = 'file', path = 'w.jsonl', timestamp = 'ts');
CREATE STREAM o WITH (connector = 'file', path = 'w_out.jsonl') AS
  SELECT g, stddev(x) AS sd FROM t WINDOW TUMBLING (SIZE 1 DAY) GROUP BY g EMIT FINAL;
VPQ
cat > table.vpq <<'VPQ'
CREATE STREAM s (k STRING KEY, ts TIMESTAMP, v DOUBLE, g STRING) WITH (connector = 'file', path = 't.jsonl', timestamp = 'ts');
CREATE TABLE t1 AS SELECT k, last(v) AS v, last(g) AS g FROM s GROUP BY k;
CREATE TABLE t2 WITH (connector = 'file', path = 't_out.jsonl') AS SELECT g, stddev(v) AS sd FROM t1 GROUP BY g;
VPQ
/usr/bin/python3 - <<'PY'
import json, random, statistics
random.seed(11)
windows = {}
for i in range(400):
    n, kind = random.randint(2, 30), i % 4
    if kind == 0: xs = [round(random.uniform(0, 100), 2) for _ in range(n)]
    elif kind == 1: xs = [random.gauss(1e6, 3) for _ in range(n)]
    elif kind == 2: xs = [random.uniform(-1e-3, 1e-3) for _ in range(n)]
    else: xs = [random.choice([1e12, 1, -5, 3.3, 1e-7]) * random.random() for _ in range(n)]
    windows["g%d" % i] = xs
with open("w.jsonl", "w") as f:
    for g, xs in windows.items():
        for i, x in enumerate(xs): f.write(json.dumps({"g": g, "ts": i, "x": x}) + "\n")
state = {}
with open("t.jsonl", "w") as f:
    for ts in range(1, 20001):
        k, g, r = "k%d" % random.randrange(300), "g%d" % random.randrange(12), random.random()
        v = round(random.uniform(0, 100), 2) if r < 0.6 else random.gauss(5e5, 2) if r < 0.9 else random.choice([1e15, -3.5, 0.1])
        f.write(json.dumps({"k": k, "ts": ts, "v": v, "g": g}) + "\n")
        state[k] = (v, g)
groups = {}
for v, g in state.values(): groups.setdefault(g, []).append(v)
json.dump({"w": {g: statistics.stdev(xs) for g, xs in windows.items()},
           "t": {g: statistics.stdev(vs) if len(vs) > 1 else None for g, vs in groups.items()}}, open("ref.json", "w"))
PY
"$vpq" run windows.vpq 2>/dev/null
"$vpq" run table.vpq 2>/dev/null
/usr/bin/python3 - <<'PY'
import json, sys
ref = json.load(open("ref.json"))
bad = 0
for name in ("w", "t"):
    last = {}
    for line in open(name + "_out.jsonl"):
        o = json.loads(line)
        last[o["g"]] = o["sd"]
    for g, want in ref[name].items():
        if last.get(g) != want:
            bad += 1
            if bad <= 10: print("%s %s: vpq %r, statistics.stdev %r" % (name, g, last.get(g), want))
    print("%s: %d groups compared" % ("windows" if name == "w" else "table", len(ref[name])))
sys.exit(1 if bad else 0)
PY
