#!/usr/bin/env bash
# session_vs_python.sh VPQ — a differential test of session windows and late rows: for a few
# seeds, 5,000 generated rows of 4 keys, 30% of them up to 15 s out of order, through
# WINDOW SESSION (5 SECONDS, GRACE PERIOD 2 SECONDS) with a watermark delay of 3 s; then 20,000
# rows of 300 keys, up to 60 s out of order, with a grace period of 2 minutes (dozens of sessions
# open per key, new ones older than others, hash chains shared by keys and rehashed); compared
# with sessions computed in Python as DESIGN.md §2–§3 define them: before each row, sessions
# whose last row + gap + grace the watermark has reached close (written by end, start, order
# of creation); a row joins every open session of its key it lies less than the gap from
# (merging them, perhaps moving a start back); a row touching none is late when a session of it
# alone would be closed already. Both the results and the lines dead-lettered as late must match.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_work "$1"
cat > q.vpq <<'VPQ'
CREATE STREAM m (k STRING KEY, ts TIMESTAMP, v BIGINT)
  WITH (connector = 'file', path = 'in.jsonl', format = 'json', timestamp = 'ts',
        watermark_delay = 3 SECONDS, dead_letter = 'dead.jsonl');
CREATE STREAM o WITH (connector = 'file', path = 'out.jsonl', format = 'json') AS
  SELECT k, WINDOW_START AS ws, WINDOW_END AS we, count(*) AS n, sum(v) AS s
  FROM m WINDOW SESSION (5 SECONDS, GRACE PERIOD GRACE_MS MILLISECONDS) GROUP BY k EMIT FINAL;
VPQ
cp q.vpq q.template
# seed, rows, keys, the most a row is out of order (ms), grace (ms), time between rows (ms)
for config in "1 5000 4 15000 2000 100,500,1000,3000,7000" "2 5000 4 15000 2000 100,500,1000,3000,7000" \
              "3 5000 4 15000 2000 100,500,1000,3000,7000" "4 5000 4 15000 2000 100,500,1000,3000,7000" \
              "5 5000 4 15000 2000 100,500,1000,3000,7000" "6 20000 60 150000 120000 0,10,50,200,1000"; do
  read -r seed nrows nkeys disorder grace steps <<< "$config"
  sed "s/GRACE_MS/$grace/" q.template > q.vpq
  /usr/bin/python3 - "$seed" "$nrows" "$nkeys" "$disorder" "$grace" "$steps" <<'PY'
import json, random, sys
seed, nrows, nkeys, disorder, GRACE = (int(a) for a in sys.argv[1:6])
steps = [int(x) for x in sys.argv[6].split(",")]
random.seed(seed)
GAP, DELAY = 5000, 3000
rows, t = [], 0
for _ in range(nrows):
    t += random.choice(steps)
    ts = max(0, t - random.randint(0, disorder)) if random.random() < 0.3 else t
    rows.append({"k": "k%d" % random.randrange(nkeys), "ts": ts, "v": random.randint(0, 9)})
with open("in.jsonl", "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
sessions = {}  # key -> open sessions [start, last, n, sum, creation order]
out, late, order, max_ts = [], [], 0, None
def close(wm):
    closing = []
    for k, ss in sessions.items():
        for s in [s for s in ss if wm is None or s[1] + GAP + GRACE <= wm]:
            ss.remove(s)
            closing.append((s[1] + GAP, s[0], s[4], k, s))
    for end, start, _, k, s in sorted(closing, key=lambda c: c[:3]):
        out.append({"k": k, "ws": start, "we": end, "n": s[2], "s": s[3]})
for line, r in enumerate(rows, 1):
    ts = r["ts"]
    max_ts = ts if max_ts is None else max(max_ts, ts)
    wm = max_ts - DELAY
    close(wm)
    ss = sessions.setdefault(r["k"], [])
    hit = [s for s in ss if s[0] - GAP < ts < s[1] + GAP]
    if not hit and ts + GAP + GRACE <= wm:
        late.append(line)
        continue
    merged = [min([s[0] for s in hit] + [ts]), max([s[1] for s in hit] + [ts]),
              sum(s[2] for s in hit) + 1, sum(s[3] for s in hit) + r["v"], min([s[4] for s in hit] + [order])]
    if not hit:
        order += 1
    for s in hit:
        ss.remove(s)
    ss.append(merged)
close(None)
with open("expected.jsonl", "w") as f:
    for o in out:
        f.write(json.dumps(o, separators=(",", ":")) + "\n")
with open("expected_late.txt", "w") as f:
    f.write("".join("in.jsonl:%d\n" % n for n in late))
PY
  rm -f out.jsonl dead.jsonl
  "$vpq" run q.vpq 2>/dev/null
  /usr/bin/python3 -c '
import json
for line in open("dead.jsonl"):
    d = json.loads(line)
    assert d["reason"] == "late", d
    print(d["origin"])' > late.txt
  diff -u expected.jsonl out.jsonl || { echo "seed $seed: session results differ"; exit 1; }
  diff -u expected_late.txt late.txt || { echo "seed $seed: late rows differ"; exit 1; }
  echo "seed $seed: $(wc -l < out.jsonl) sessions and $(wc -l < late.txt) late rows equal the Python reference"
done
