#!/usr/bin/env bash
# run_tumbling.sh [ROWS] [DEVICES] — the core benchmark: a 1-minute tumbling window per device
# over ROWS JSON lines (default 2,000,000 lines, 10,000 devices), EMIT FINAL to a file. Prints,
# on the same file: the time to merely read it, vpq's rows/s (one core) by wall time and by its
# CPU time (user + sys: what a shared machine does not inflate), and DuckDB's rows/s with
# SET threads = 1 (npm @duckdb/node-api, installed here on first use); best of 3 runs each.
# QUERY=join runs join.vpq instead: each reading paired with the device's readings of the next
# 15 seconds (a stream joined with itself WITHIN a bound), DuckDB running the same join.
set -euo pipefail
if [[ -n "${VPQ:-}" ]]; then VPQ=$(realpath "$VPQ"); fi # relative to where it was run from
cd "$(dirname "$0")"
rows=${1:-2000000} devices=${2:-10000}
vpq=${VPQ:-../build/vpq}
query=${QUERY:-tumbling}
case "$query" in
  tumbling) output=data/per_minute.jsonl ;;
  join) output=data/ramps.jsonl ;;
  *) echo "run_tumbling.sh: QUERY is tumbling or join" >&2; exit 2 ;;
esac
mkdir -p data
file=data/telemetry.jsonl
if [ ! -f "$file" ] || [ "$(wc -l <"$file")" != "$rows" ]; then
  echo "generating $rows lines for $devices devices..."
  /usr/bin/python3 gen_telemetry.py "$rows" "$devices" "$file"
fi
bytes=$(stat -c %s "$file")
now() { date +%s.%N; }
sub() { /usr/bin/python3 -c "import sys; print(float(sys.argv[1]) - float(sys.argv[2]))" "$1" "$2"; }
rate() { /usr/bin/python3 -c "import sys; r,s=float(sys.argv[1]),float(sys.argv[2]); print(f'{r/s/1e6:.2f}M rows/s ({s:.3f} s)')" "$@"; }

cat "$file" >/dev/null
t0=$(now); cat "$file" >/dev/null; t1=$(now)
echo "file: $rows lines, $((bytes / rows)) bytes/line, $((bytes / 1048576)) MiB"
echo "read the file (cat):   $(rate "$rows" "$(sub "$t1" "$t0")")"

best="" best_cpu=""
for i in 1 2 3; do
  t0=$(now); /usr/bin/time -o data/vpq.time -f '%U %S' "$vpq" run "$query.vpq" 2>data/vpq.log; t1=$(now)
  s=$(sub "$t1" "$t0")
  cpu=$(/usr/bin/python3 -c "import sys; u, s = open(sys.argv[1]).read().split()[-2:]; print(float(u) + float(s))" data/vpq.time)
  best=$(/usr/bin/python3 -c "import sys; print(min(float(x) for x in sys.argv[1:] if x))" "$s" "$best")
  best_cpu=$(/usr/bin/python3 -c "import sys; print(min(float(x) for x in sys.argv[1:] if x))" "$cpu" "$best_cpu")
done
echo "vpq (1 core):          $(rate "$rows" "$best")"
echo "vpq per CPU second:    $(rate "$rows" "$best_cpu") of user + sys"
sed 's/^/  /' data/vpq.log
/usr/bin/time -f "vpq peak RSS: %M KiB" "$vpq" run "$query.vpq" 2>&1 >/dev/null | tail -1
echo "vpq output rows:       $(wc -l <"$output")"

if [ ! -d node_modules/@duckdb/node-api ]; then npm install --no-audit --no-fund --silent >/dev/null 2>&1 || true; fi
if [ -d node_modules/@duckdb/node-api ]; then
  best=""
  for i in 1 2 3; do
    s=$(node duckdb_bench.mjs "$file" data/duckdb_out.json "$query")
    best=$(/usr/bin/python3 -c "import sys; print(min(float(x) for x in sys.argv[1:] if x))" "$s" "$best")
  done
  echo "DuckDB (threads = 1):  $(rate "$rows" "$best")"
else
  echo "DuckDB: @duckdb/node-api could not be installed; skipped"
fi
