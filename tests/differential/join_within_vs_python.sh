#!/usr/bin/env bash
# join_within_vs_python.sh VPQ — a differential test of stream–stream joins within a time bound:
# for a few seeds, two generated files of 2,000 rows each (8 keys and a few NULL keys, 30% of the
# rows out of order by up to the watermark delay, so that no row is late; event times on a 250 ms
# grid so that pairs exactly the bound apart occur; NULLs in x and y) through
#   a JOIN b WITHIN 2 SECONDS ON a.k = b.k AND b.y > -40        (inner)
#   a LEFT JOIN b WITHIN 2 SECONDS ON a.k = b.k AND b.y > -40   (left)
#   a LEFT JOIN b WITHIN 2 SECONDS ON a.k = b.k                 (left, on the key alone)
# and tumbling windows (EMIT FINAL) over both results, compared with Python as DESIGN.md §2 and
# docs/language.md ("Joins") define them: every pair of rows meeting the condition whose event
# times differ by at most the bound, each pair once, with the later of the two event times; a
# LEFT JOIN also writes every left row that found no pair, once, with NULLs on the right, at its
# own event time. The join results are compared as multisets of rows (the order of pairs is not
# specified); the windows over them, which see the results' event times, in full and in order.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_work "$1"
cat > q.vpq <<'VPQ'
CREATE STREAM a (k STRING KEY, ts TIMESTAMP, x BIGINT)
  WITH (connector = 'file', path = 'a.jsonl', format = 'json', timestamp = 'ts',
        watermark_delay = 3 SECONDS, dead_letter = 'a.dead.jsonl');
CREATE STREAM b (k STRING KEY, ts TIMESTAMP, y DOUBLE)
  WITH (connector = 'file', path = 'b.jsonl', format = 'json', timestamp = 'ts',
        watermark_delay = 3 SECONDS, dead_letter = 'b.dead.jsonl');
CREATE STREAM j WITH (connector = 'file', path = 'j.jsonl', format = 'json') AS
  SELECT a.k AS k, a.ts AS ats, b.ts AS bts, x, y
  FROM a JOIN b WITHIN 2 SECONDS ON a.k = b.k AND b.y > -40;
CREATE STREAM lj WITH (connector = 'file', path = 'lj.jsonl', format = 'json') AS
  SELECT a.k AS k, a.ts AS ats, b.ts AS bts, x, y
  FROM a LEFT JOIN b WITHIN 2 SECONDS ON a.k = b.k AND b.y > -40;
CREATE STREAM lk WITH (connector = 'file', path = 'lk.jsonl', format = 'json') AS
  SELECT a.k AS k, a.ts AS ats, b.ts AS bts, x, y
  FROM a LEFT JOIN b WITHIN 2 SECONDS ON a.k = b.k;
CREATE STREAM lkw WITH (connector = 'file', path = 'lkw.jsonl', format = 'json') AS
  SELECT WINDOW_START AS ws, k, count(*) AS n, count(bts) AS matched, sum(x) AS sx
  FROM lk WINDOW TUMBLING (SIZE 5 SECONDS) GROUP BY k EMIT FINAL;
CREATE STREAM jw WITH (connector = 'file', path = 'jw.jsonl', format = 'json') AS
  SELECT WINDOW_START AS ws, count(*) AS n, sum(x) AS sx, count(y) AS ny, min(ats) AS lo, max(bts) AS hi
  FROM j WINDOW TUMBLING (SIZE 5 SECONDS) EMIT FINAL;
CREATE STREAM ljw WITH (connector = 'file', path = 'ljw.jsonl', format = 'json') AS
  SELECT WINDOW_START AS ws, k, count(*) AS n, count(bts) AS matched, sum(x) AS sx
  FROM lj WINDOW TUMBLING (SIZE 5 SECONDS) GROUP BY k EMIT FINAL;
VPQ
fail=0
for seed in 1 2 3; do
  /usr/bin/python3 - "$seed" <<'PY'
import json, random, sys
random.seed(int(sys.argv[1]))
D, DELAY, W = 2000, 3000, 5000
def gen(name, col, val):
    rows, t = [], 1700000000000
    for _ in range(2000):
        t += random.choice([0, 250, 500, 1000, 1500])
        ts = t - random.randrange(0, DELAY + 1, 250) if random.random() < 0.3 else t
        k = None if random.random() < 0.03 else "k%d" % random.randrange(8)
        rows.append({"k": k, "ts": ts, col: val()})
    with open(name, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    return rows
A = gen("a.jsonl", "x", lambda: None if random.random() < 0.1 else random.randint(-100, 100))
B = gen("b.jsonl", "y", lambda: None if random.random() < 0.1 else round(random.uniform(-100, 100), 1))
byk = {}
for r in B:
    byk.setdefault(r["k"], []).append(r)
def join(cond, outer):     # [(event time, row)]
    out = []
    for ra in A:
        found = False
        if ra["k"] is not None:     # NULL = anything is NULL: no pair
            for rb in byk.get(ra["k"], []):
                if abs(ra["ts"] - rb["ts"]) <= D and cond(rb):
                    out.append((max(ra["ts"], rb["ts"]),
                                {"k": ra["k"], "ats": ra["ts"], "bts": rb["ts"], "x": ra["x"], "y": rb["y"]}))
                    found = True
        if outer and not found:
            out.append((ra["ts"], {"k": ra["k"], "ats": ra["ts"], "bts": None, "x": ra["x"], "y": None}))
    return out
cond = lambda rb: rb["y"] is not None and rb["y"] > -40    # b.y > -40 is NULL for a NULL y
inner, left, leftk = join(cond, False), join(cond, True), join(lambda rb: True, True)
dump = lambda o: json.dumps(o, separators=(",", ":"))
for name, rows in (("j", inner), ("lj", left), ("lk", leftk)):
    with open("expected_%s.sorted" % name, "w") as f:
        f.write("".join(sorted(dump(r) + "\n" for _, r in rows)))
# windows over the results: all rows are on time, so every window is complete; EMIT FINAL order:
# by window, then the order the groups first appeared (checked here only for the global jw)
jw = {}
for et, r in inner:
    w = jw.setdefault(et // W * W, [])
    w.append(r)
with open("expected_jw.jsonl", "w") as f:
    for ws in sorted(jw):
        rs = jw[ws]
        xs = [r["x"] for r in rs if r["x"] is not None]
        f.write(dump({"ws": ws, "n": len(rs), "sx": sum(xs) if xs else None,
                      "ny": sum(r["y"] is not None for r in rs),
                      "lo": min(r["ats"] for r in rs), "hi": max(r["bts"] for r in rs)}) + "\n")
for name, res in (("ljw", left), ("lkw", leftk)):
    groups = {}
    for et, r in res:
        groups.setdefault((et // W * W, r["k"]), []).append(r)
    rows = []
    for (ws, k), rs in groups.items():
        xs = [r["x"] for r in rs if r["x"] is not None]
        rows.append(dump({"ws": ws, "k": k, "n": len(rs), "matched": sum(r["bts"] is not None for r in rs),
                          "sx": sum(xs) if xs else None}) + "\n")
    with open("expected_%s.sorted" % name, "w") as f:
        f.write("".join(sorted(rows)))
print("reference: %d pairs, %d left-join rows, %d left-join rows on the key alone" % (len(inner), len(left), len(leftk)))
PY
  rm -f j.jsonl lj.jsonl lk.jsonl jw.jsonl ljw.jsonl lkw.jsonl a.dead.jsonl b.dead.jsonl
  "$vpq" run q.vpq 2>err.txt || { cat err.txt; echo "seed $seed: vpq run failed"; exit 1; }
  touch a.dead.jsonl b.dead.jsonl
  sort j.jsonl > got_j.sorted
  sort lj.jsonl > got_lj.sorted
  sort ljw.jsonl > got_ljw.sorted
  sort lk.jsonl > got_lk.sorted
  sort lkw.jsonl > got_lkw.sorted
  check() {  # check WHAT EXPECTED GOT
    if cmp -s "$2" "$3"; then
      echo "seed $seed: $1: $(wc -l < "$3") rows equal the Python reference"
    else
      diff -u "$2" "$3" | head -30 || true
      echo "seed $seed: FAIL: $1 differs from the Python reference (- expected, + vpq)"; fail=1
    fi
  }
  check "inner join pairs (as a multiset)" expected_j.sorted got_j.sorted
  check "left join rows (as a multiset)" expected_lj.sorted got_lj.sorted
  check "windows over the inner join (in order)" expected_jw.jsonl jw.jsonl
  check "windows over the left join (as a set)" expected_ljw.sorted got_ljw.sorted
  check "left join on the key alone (as a multiset)" expected_lk.sorted got_lk.sorted
  check "windows over the left join on the key alone (as a set)" expected_lkw.sorted got_lkw.sorted
  if [ -s a.dead.jsonl ] || [ -s b.dead.jsonl ]; then
    head -5 a.dead.jsonl b.dead.jsonl
    echo "seed $seed: FAIL: rows were dead-lettered although none is late"; fail=1
  fi
done
exit $fail
