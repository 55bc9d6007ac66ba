#!/usr/bin/env bash
# run_durability.sh [KEYS] [ROWS] — the durability benchmark (DESIGN §6, issue 6): what
# `vpq run --state-dir` costs. Three parts, printed at the end as tables with their exact setup:
#   1. checkpoint size and time for KEYS (default 1,000,000) distinct device ids: a file of
#      2 × KEYS JSON rows into a GROUP BY device_id table (and the same keys in one open 1-day
#      tumbling window), --checkpoint-interval 500ms: state bytes (uncompressed, the summary
#      line and each checkpoint file's header), bytes on disk (zstd), time per checkpoint;
#   2. recovery: a run resuming from that KEYS-key checkpoint over 1,000 appended rows, timed
#      from process start to "resumed from checkpoint" (the next thing it does is process rows)
#      and to exit, against a fresh run over the same 1,000 rows and a replay of the whole file;
#   3. exactly-once versus at-least-once, Kafka → Kafka on `vpq broker`: ROWS (default
#      2,000,000) keyed JSON messages, a filter/projection writing 95% of them and a 1-minute
#      tumbling aggregate, each run without --state-dir, with --state-dir and
#      processing_guarantee=at_least_once, and exactly-once with 10 s and 1 s intervals
#      (best of REPEAT=2 runs), next to kcat's raw consume and consume+produce rates.
# VPQ=path/to/vpq picks the binary (default ../build/vpq). About 3–4 minutes on 2 cores.
set -euo pipefail
vpq=$(realpath "${VPQ:-$(dirname "$0")/../build/vpq}")
cd "$(dirname "$0")"
keys=${1:-1000000}
rows=${2:-2000000}
repeat=${REPEAT:-2}
py=/usr/bin/python3
runner=$(realpath durability_run.py)
usage=$("$vpq" 2>&1 || true)
[[ $usage == *--state-dir* ]] || { echo "$vpq has no --state-dir: build a newer vpq"; exit 1; }
command -v kcat >/dev/null || { echo "kcat is needed (apt-get install kcat)"; exit 1; }
work=data/durability
mkdir -p "$work"
cd "$work"
rm -rf state_* out results.txt ./*.log
: >results.txt
# measure TAG [--watch DIR] -- CMD...: runs CMD (at most 180 s) under durability_run.py, appends
# "TAG JSON" to results.txt; a failed run stops the benchmark with its log.
measure() {
  local tag=$1
  shift
  local json
  if [ -n "${broker:-}" ] && ! kill -0 "$broker" 2>/dev/null; then
    echo "vpq broker (pid $broker) is gone: stopping before $tag"
    exit 1
  fi
  json=$("$py" "$runner" --timeout 180 --log "$tag.log" "$@")
  echo "$tag $json" >>results.txt
  echo "  $tag: $json" | cut -c1-220
  if [[ $json != *'"code": 0,'* ]]; then
    echo "$tag failed$([ -n "${broker:-}" ] && ! kill -0 "$broker" 2>/dev/null && echo " (vpq broker is gone)"):"
    grep -v '^+[0-9.]* %' "$tag.log" | tail -5
    exit 1
  fi
}

# ---------------------------------------------------------------- 1. checkpoints of KEYS keys
if [ ! -f keys.base.jsonl ] || [ "$(wc -l <keys.base.jsonl)" != $((2 * keys)) ]; then
  echo "writing keys.base.jsonl: $keys device ids, each twice ($((2 * keys)) rows)..."
  "$py" - "$keys" <<'PY'
import random, sys
keys = int(sys.argv[1])
rng = random.Random(1)
ts = 1700000000000
with open("keys.base.jsonl", "w") as f:
    for rnd in range(2):
        buf = []
        for d in range(keys):
            ts += 1
            buf.append('{"device_id":"dev-%07d","ts":%d,"soc":%.3f,"kw":%.2f}\n'
                       % (d, ts, rng.random(), rng.uniform(-5, 5)))
            if len(buf) == 100000:
                f.write("".join(buf))
                buf = []
        f.write("".join(buf))
PY
fi
cp keys.base.jsonl keys.jsonl
keys_query() { # FILE: a table of the latest state per device, plus a stream of spikes to a file
  cat <<VPQ
-- written by bench/run_durability.sh: a GROUP BY device_id table over $1
CREATE STREAM telemetry (device_id STRING KEY, ts TIMESTAMP, soc DOUBLE, kw DOUBLE)
  WITH (connector = 'file', path = '$1', timestamp = 'ts');
CREATE TABLE devices AS
  SELECT device_id, count(*) AS n, last(soc) AS soc, sum(kw) AS kw, max(kw) AS peak_kw
  FROM telemetry GROUP BY device_id;
CREATE STREAM spikes WITH (connector = 'file', path = 'out/spikes_$1') AS
  SELECT device_id, ts, kw FROM telemetry WHERE kw > 4.999;
VPQ
}
keys_query keys.jsonl >table.vpq
keys_query few.jsonl >few.vpq
cat >window.vpq <<'VPQ'
-- written by bench/run_durability.sh: every key in one open 1-day tumbling window (HAVING keeps
-- the output empty: each device has 2 rows)
CREATE STREAM telemetry (device_id STRING KEY, ts TIMESTAMP, soc DOUBLE, kw DOUBLE)
  WITH (connector = 'file', path = 'keys.jsonl', timestamp = 'ts');
CREATE STREAM daily WITH (connector = 'file', path = 'out/daily.jsonl') AS
  SELECT device_id, WINDOW_START AS day, count(*) AS n, avg(soc) AS soc, sum(kw) AS kw, max(kw) AS peak_kw
  FROM telemetry WINDOW TUMBLING (SIZE 1 DAY) GROUP BY device_id HAVING count(*) > 2 EMIT FINAL;
VPQ
echo "1. checkpoints of $keys keys: $((2 * keys)) JSON rows ($(du -m keys.jsonl | cut -f1) MB), each device twice"
measure table_plain -- "$vpq" run table.vpq
measure table_ckpt --watch state_table -- "$vpq" run table.vpq --state-dir state_table --checkpoint-interval 500ms
measure window_plain -- "$vpq" run window.vpq
measure window_ckpt --watch state_window -- "$vpq" run window.vpq --state-dir state_window --checkpoint-interval 500ms
# zstd's own speed on the same state (level 1, as vpq_ckpt_write), for the breakdown.
last=$(ls state_table/checkpoint-*.vpqc | tail -1)
tail -c +57 "$last" >payload.zst
t0=$(date +%s%N); zstd -q -d -f payload.zst -o payload.bin; t1=$(date +%s%N)
zstd -q -1 -f payload.bin -o payload.re.zst; t2=$(date +%s%N)
echo "zstd_cli {\"decompress_ms\": $(((t1 - t0) / 1000000)), \"compress1_ms\": $(((t2 - t1) / 1000000)), \"bytes\": $(stat -c %s payload.bin)}" >>results.txt
rm -f payload.zst payload.bin payload.re.zst

# ---------------------------------------------------------------- 2. recovery
"$py" - <<'PY'
# 1,000 rows after the end of the file, for devices spread over the key space; kw > 4.999, so
# each is also written to the spikes file.
with open("few.jsonl", "w") as few, open("keys.jsonl", "a") as keys:
    for i in range(1000):
        line = '{"device_id":"dev-%07d","ts":%d,"soc":0.5,"kw":4.9995}\n' % (i * 997, 1800000000000 + i)
        few.write(line)
        keys.write(line)
PY
echo "2. recovery: 1,000 rows appended to keys.jsonl; resume from the $keys-key checkpoint (default interval: only the final checkpoint)"
measure recover_resume -- "$vpq" run table.vpq --state-dir state_table
grep -q "resumed from checkpoint" recover_resume.log || { echo "the run did not resume:"; cat recover_resume.log; exit 1; }
measure recover_fresh_state -- "$vpq" run few.vpq --state-dir state_few --reset-state
measure recover_fresh_plain -- "$vpq" run few.vpq
measure recover_replay -- "$vpq" run table.vpq
rm -f keys.jsonl # a copy of keys.base.jsonl with the 1,000 rows appended

# ---------------------------------------------------------------- 3. exactly-once vs at-least-once
if [ ! -f kafka_in.txt ] || [ "$(wc -l <kafka_in.txt)" != "$rows" ]; then
  echo "writing kafka_in.txt: $rows keyed messages, 10,000 devices..."
  "$py" - "$rows" <<'PY'
import random, sys
rows = int(sys.argv[1])
rng = random.Random(5)
ts = 1700000000000
with open("kafka_in.txt", "w") as f:
    buf = []
    for i in range(rows):  # event time grows by 1 ms a row: no row is late in any partition
        d = i % 10000
        buf.append('d%d|{"device_id":"d%d","ts":%d,"soc":%.3f,"kw":%.2f}\n'
                   % (d, d, ts + i, rng.random(), rng.uniform(-5, 5)))
        if len(buf) == 100000:
            f.write("".join(buf))
            buf = []
    f.write("".join(buf))
PY
fi
modes="plain alo eo10s eo1s"
topics=(--topic dur.in:16 --topic dur.copy:16)
for q in filter window; do for m in $modes; do topics+=(--topic "dur.$q.$m:16"); done; done
"$vpq" broker "${topics[@]}" >broker.out 2>broker.err &
broker=$!
trap 'kill $broker 2>/dev/null' EXIT
for _ in $(seq 300); do [ -s broker.out ] && break; sleep 0.1; done
bootstrap=$(head -1 broker.out)
echo "3. Kafka → Kafka on vpq broker $bootstrap: producing $rows messages (zstd, 16 partitions, keyed by device)..."
timeout 120 kcat -b "$bootstrap" -P -t dur.in -K '|' -z zstd -X linger.ms=50 -X batch.num.messages=10000 -l kafka_in.txt
count=$(timeout 120 kcat -b "$bootstrap" -C -t dur.in -o beginning -e -q -f '\n' | wc -l)
[ "$count" = "$rows" ] || { echo "the broker kept $count of $rows messages (5 MiB per partition)"; exit 1; }
now() { date +%s%N; }
kcat_rates() { # R: kcat's raw consume, then consume + produce (zstd) into dur.copy
  local t0 t1
  t0=$(now); timeout 120 kcat -b "$bootstrap" -C -t dur.in -o beginning -e -q >/dev/null; t1=$(now)
  echo "kcat_consume_$1 {\"wall_ms\": $(((t1 - t0) / 1000000))}" >>results.txt
  t0=$(now)
  timeout 120 kcat -b "$bootstrap" -C -t dur.in -o beginning -e -q -f '%k|%s\n' |
    timeout 120 kcat -b "$bootstrap" -P -t dur.copy -K '|' -z zstd -X linger.ms=50 -X batch.num.messages=10000
  t1=$(now)
  echo "kcat_copy_$1 {\"wall_ms\": $(((t1 - t0) / 1000000))}" >>results.txt
  tail -2 results.txt | sed 's/^/  /'
}
kafka_query() { # QUERY MODE
  echo "-- written by bench/run_durability.sh: the $1 query, Kafka → Kafka ($2)"
  echo "CREATE STREAM telemetry (device_id STRING KEY, ts TIMESTAMP, soc DOUBLE, kw DOUBLE)"
  echo "  WITH (connector = 'kafka', topic = 'dur.in', timestamp = 'ts', bounded = true);"
  echo "CREATE STREAM out WITH (connector = 'kafka', topic = 'dur.$1.$2') AS"
  if [ "$1" = filter ]; then
    echo "  SELECT device_id, ts, kw, soc * 13.5 AS kwh FROM telemetry WHERE kw > -4.5;"
  else
    echo "  SELECT device_id, WINDOW_START AS minute, count(*) AS n, avg(soc) AS soc, sum(kw) AS kw, max(kw) AS peak_kw"
    echo "  FROM telemetry WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY device_id EMIT FINAL;"
  fi
}
for r in $(seq "$repeat"); do
  kcat_rates "$r"
  for q in filter window; do
    for m in $modes; do
      kafka_query "$q" "$m" >"kafka_$q.$m.vpq"
      rm -rf state_kafka
      case $m in
        plain) measure "kafka_${q}_${m}_$r" -- "$vpq" run "kafka_$q.$m.vpq" --brokers "$bootstrap" ;;
        alo) measure "kafka_${q}_${m}_$r" --watch state_kafka -- "$vpq" run "kafka_$q.$m.vpq" --brokers "$bootstrap" \
               --state-dir state_kafka --set processing_guarantee=at_least_once ;;
        eo10s) measure "kafka_${q}_${m}_$r" --watch state_kafka -- "$vpq" run "kafka_$q.$m.vpq" --brokers "$bootstrap" \
                 --state-dir state_kafka ;;
        eo1s) measure "kafka_${q}_${m}_$r" --watch state_kafka -- "$vpq" run "kafka_$q.$m.vpq" --brokers "$bootstrap" \
                --state-dir state_kafka --checkpoint-interval 1s ;;
      esac
    done
  done
done
# The modes are what they say: exactly-once messages carry their identity header, the others not.
header() { timeout 60 kcat -b "$bootstrap" -C -t "$1" -o beginning -c 1 -q -f '%h\n'; }
[[ $(header dur.filter.eo1s) == *vpq.id=* && $(header dur.window.eo10s) == *vpq.id=* ]] \
  || { echo "exactly-once output without a vpq.id header"; exit 1; }
[[ $(header dur.filter.alo) != *vpq.id=* && $(header dur.filter.plain) != *vpq.id=* ]] \
  || { echo "at-least-once output with a vpq.id header"; exit 1; }
echo "vpq.id headers: on the exactly-once runs' messages, not on the others'"
kill $broker 2>/dev/null || true
echo
"$py" "$(dirname "$runner")/durability_report.py" results.txt "$keys" "$rows"
