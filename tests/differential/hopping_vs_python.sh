#!/usr/bin/env bash
# hopping_vs_python.sh VPQ — a differential test of hopping windows, NULLs and late rows: for a
# few seeds, 4,000 generated rows of 5 keys (25% up to 12 s out of order, some with equal event
# times, ~15% NULL in each aggregated column) through
# WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 3 SECONDS, GRACE PERIOD 2 SECONDS) with a
# watermark delay of 1.5 s (the size is not a multiple of the advance and the event times do not
# start on a window boundary) and EMIT FINAL, compared with windows computed in Python as
# DESIGN.md §2–§3 and docs/language.md define them:
# - windows [k·advance, k·advance + size) aligned to the epoch, a row in every one containing it;
# - watermark = largest event time so far (the row's own included) − delay, applied before each
#   row; a window closes when the watermark reaches WINDOW_END + grace;
# - a row is late when one of its windows has closed: it is written once to the dead-letter file
#   ({"reason":"late","origin":"in.jsonl:LINE","row":{...}}) and still counts in its open windows;
# - EMIT FINAL writes windows ordered by end, then start, then the order their groups appeared;
# - count(*) counts rows, every other aggregate skips NULLs (NULL over no values, counts 0);
#   sum/avg of DOUBLE are correctly rounded (math.fsum), first/last by event time (ties: first /
#   last arrived), min/max of strings byte-wise, count_distinct exact.
# Both the full result file and the full dead-letter file must match.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_work "$1"
cat > q.vpq <<'VPQ'
CREATE STREAM m (k STRING KEY, ts TIMESTAMP, v BIGINT, x DOUBLE, s STRING)
  WITH (connector = 'file', path = 'in.jsonl', format = 'json', timestamp = 'ts',
        watermark_delay = 1500 MILLISECONDS, dead_letter = 'dead.jsonl');
CREATE STREAM o WITH (connector = 'file', path = 'out.jsonl', format = 'json') AS
  SELECT k, WINDOW_START AS ws, WINDOW_END AS we,
         count(*) AS n, count(x) AS nx, count(v) AS nv,
         sum(v) AS sv, sum(x) AS sx, avg(v) AS av, avg(x) AS ax,
         min(x) AS mnx, max(x) AS mxx, min(v) AS mnv, max(v) AS mxv, min(s) AS mns, max(s) AS mxs,
         first(x) AS fx, last(x) AS lx, first(s) AS fs, last(v) AS lv,
         count_distinct(v) AS cdv, count_distinct(s) AS cds
  FROM m WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 3 SECONDS, GRACE PERIOD 2 SECONDS)
  GROUP BY k EMIT FINAL;
VPQ
for seed in 1 2 3; do
  /usr/bin/python3 - "$seed" <<'PY'
import json, math, random, sys
random.seed(int(sys.argv[1]))
SIZE, ADV, GRACE, DELAY = 10000, 3000, 2000, 1500
BASE = 1700000000123          # not a multiple of the advance
rows, t = [], BASE
for _ in range(4000):
    t += random.choice([0, 37, 250, 400, 1000, 2100])
    ts = t - random.randint(0, 12000) if random.random() < 0.25 else t
    nul = lambda p, val: None if random.random() < p else val
    rows.append({"k": "k%d" % random.randrange(5), "ts": ts,
                 "v": nul(0.15, random.randint(-50, 50)),
                 "x": nul(0.15, random.choice([round(random.uniform(-100, 100), 2), 0.1, 0.2, 0.3, 1e15, -1e15, 7.0])),
                 "s": nul(0.15, random.choice(["a", "b", "B", "ab", "zz", "", "m1", "m10"]))})
with open("in.jsonl", "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
cols = ["k", "ts", "v", "x", "s"]
wins = {}          # (start, key) -> [creation order, list of (ts, arrival, row)]
order = 0
out, dead = [], []
def close(wm):
    done = [(st + SIZE, st, w[0], st, k) for (st, k), w in wins.items() if wm is None or st + SIZE + GRACE <= wm]
    for end, st, _, _, k in sorted(done):
        rs = wins.pop((st, k))[1]
        def nn(c): return [(ts, a, r[c]) for ts, a, r in rs if r[c] is not None]
        xs, vs, ss = nn("x"), nn("v"), nn("s")
        def first(l): return min(l, key=lambda e: (e[0], e[1]))[2] if l else None
        def last(l): return max(l, key=lambda e: (e[0], e[1]))[2] if l else None
        o = {"k": k, "ws": st, "we": end, "n": len(rs), "nx": len(xs), "nv": len(vs),
             "sv": sum(e[2] for e in vs) if vs else None,
             "sx": math.fsum(e[2] for e in xs) if xs else None,
             "av": sum(e[2] for e in vs) / len(vs) if vs else None,
             "ax": math.fsum(e[2] for e in xs) / len(xs) if xs else None,
             "mnx": min(e[2] for e in xs) if xs else None, "mxx": max(e[2] for e in xs) if xs else None,
             "mnv": min(e[2] for e in vs) if vs else None, "mxv": max(e[2] for e in vs) if vs else None,
             "mns": min(e[2] for e in ss) if ss else None, "mxs": max(e[2] for e in ss) if ss else None,
             "fx": first(xs), "lx": last(xs), "fs": first(ss), "lv": last(vs),
             "cdv": len({e[2] for e in vs}), "cds": len({e[2] for e in ss})}
        out.append(o)
max_ts = None
for line, r in enumerate(rows, 1):
    ts = r["ts"]
    max_ts = ts if max_ts is None else max(max_ts, ts)
    wm = max_ts - DELAY
    close(wm)
    late = False
    for kk in range((ts - SIZE) // ADV + 1, ts // ADV + 1):
        st = kk * ADV
        assert st <= ts < st + SIZE
        if st + SIZE + GRACE <= wm:
            late = True
            continue
        w = wins.get((st, r["k"]))
        if w is None:
            w = wins[(st, r["k"])] = [order, []]
            order += 1
        w[1].append((ts, line, r))
    if late:
        dead.append({"reason": "late", "origin": "in.jsonl:%d" % line, "row": {c: r[c] for c in cols}})
close(None)
dump = lambda o: json.dumps(o, separators=(",", ":")) + "\n"
with open("expected.jsonl", "w") as f:
    f.write("".join(dump(o) for o in out))
with open("expected_dead.jsonl", "w") as f:
    f.write("".join(dump(d) for d in dead))
PY
  rm -f out.jsonl dead.jsonl
  "$vpq" run q.vpq 2>err.txt || { cat err.txt; echo "seed $seed: vpq run failed"; exit 1; }
  touch dead.jsonl
  diff -u expected.jsonl out.jsonl | head -40 || true
  cmp -s expected.jsonl out.jsonl || { echo "seed $seed: hopping window results differ from the Python reference (- expected, + vpq)"; exit 1; }
  diff -u expected_dead.jsonl dead.jsonl | head -40 || true
  cmp -s expected_dead.jsonl dead.jsonl || { echo "seed $seed: dead-lettered late rows differ from the Python reference (- expected, + vpq)"; exit 1; }
  echo "seed $seed: $(wc -l < out.jsonl) windows and $(wc -l < dead.jsonl) late rows equal the Python reference"
done
