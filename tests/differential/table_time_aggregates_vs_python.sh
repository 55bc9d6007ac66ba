#!/usr/bin/env bash
# table_time_aggregates_vs_python.sh VPQ — a differential test of the aggregates that order values
# by event time (first, last, integrate, time_weighted_avg) over a table: for a few seeds, 2,000
# generated rows of 12 keys (30% out of order, some at equal event times, NULLs in v and g) feed
# t1 = the last v and g per key, and over it t2 (GROUP BY g). A key's row in t1 carries the event
# time of the input row that last changed it; when the key changes, its old row leaves its group
# (a retraction, written at the new row's time) and its new row joins a group. The reference
# follows docs/language.md ("Aggregates", "Output order"): over a table, first/last are the values
# of the rows there now at the smallest/largest event time (ties: first/last arrived), integrate
# and time_weighted_avg the trapezoids between those rows' non-NULL values in event-time order,
# summed in that order; a change writes its groups once each, the retraction's first, if they
# differ from their last written row, and an emptied group as its key with the other columns NULL.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_work "$1"
cat > q.vpq <<'VPQ'
CREATE STREAM s (k STRING KEY, ts TIMESTAMP, v DOUBLE, g STRING)
  WITH (connector = 'file', path = 'in.jsonl', format = 'json', timestamp = 'ts');
CREATE TABLE t1 AS SELECT k, last(v) AS v, last(g) AS g FROM s GROUP BY k;
CREATE TABLE t2 WITH (connector = 'file', path = 'out.jsonl', format = 'json') AS
  SELECT g, first(v) AS fv, last(v) AS lv, first(k) AS fk, last(k) AS lk,
         integrate(v) AS kwh, time_weighted_avg(v) AS twa
  FROM t1 GROUP BY g;
VPQ
fail=0
for seed in 1 2 3 4; do
  /usr/bin/python3 - "$seed" <<'PY'
import json, math, random, sys
random.seed(int(sys.argv[1]))
rows, t = [], 1700000000000
for _ in range(2000):
    t += random.choice([0, 0, 1000, 60000, 900000])
    ts = t - random.randint(0, 3600000) if random.random() < 0.3 else t
    rows.append({"k": "k%02d" % random.randrange(12), "ts": ts,
                 "v": None if random.random() < 0.15 else random.choice(
                     [round(random.uniform(-50, 50), 3), 0.1, 0.2, 0.3, 7.0]),
                 "g": None if random.random() < 0.1 else random.choice("abc")})
with open("in.jsonl", "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
dump = lambda o: json.dumps(o, separators=(",", ":")) + "\n"
hist = {}                  # key -> [(ts, arrival, v, g)] of the input
t1 = {}                    # key -> (v, g, event time of the row, arrival of the row in t2's input)
out, last = [], {}         # t2's change rows; group -> last written state (None: not in the table)
cols = ["fv", "lv", "fk", "lk", "kwh", "twa"]
def lastval(h, i):
    l = [(e[0], e[1], e[i]) for e in h if e[i] is not None]
    return max(l)[2] if l else None
def state(g):
    members = sorted((ts, arr, k, v) for k, (v, gg, ts, arr) in t1.items() if gg == g)
    if not members:
        return None
    vals = [(ts, v) for ts, _, _, v in members if v is not None]
    integral = 0.0
    for (t0, x0), (t1_, x1) in zip(vals, vals[1:]):
        integral += (x0 + x1) / 2 * float(t1_ - t0)
    twa = None
    if vals:
        span = vals[-1][0] - vals[0][0]
        if span > 0:
            twa = integral / float(span)
        else:
            twa = math.fsum(x for _, x in vals) / len(vals)
    return {"g": g, "fv": vals[0][1] if vals else None, "lv": vals[-1][1] if vals else None,
            "fk": members[0][2], "lk": members[-1][2],
            "kwh": integral / 3600000.0 if vals else None, "twa": twa}
def emit(groups):
    seen = []
    for g in groups:
        if g in seen:
            continue
        seen.append(g)
        st = state(g)
        if st != last.get(g):
            out.append(st if st is not None else dict({"g": g}, **{c: None for c in cols}))
            last[g] = st
arrival = 0
for i, r in enumerate(rows):
    h = hist.setdefault(r["k"], [])
    h.append((r["ts"], i, r["v"], r["g"]))
    old = t1.get(r["k"])
    new = (lastval(h, 2), lastval(h, 3))
    if old is not None and old[:2] == new:
        continue
    arrival += 1
    t1[r["k"]] = (new[0], new[1], r["ts"], arrival)
    emit(([old[1]] if old is not None else []) + [new[1]])
with open("expected.jsonl", "w") as f:
    f.write("".join(dump(o) for o in out))
PY
  rm -f out.jsonl
  "$vpq" run q.vpq 2>err.txt || { cat err.txt; echo "seed $seed: vpq run failed"; exit 1; }
  if ! cmp -s expected.jsonl out.jsonl; then
    diff -u expected.jsonl out.jsonl | head -40 || true
    echo "seed $seed: FAIL: t2's change rows differ from the Python reference (- expected, + vpq)"; fail=1
  else
    echo "seed $seed: t2's $(wc -l < out.jsonl) change rows equal the Python reference"
  fi
done
exit $fail
