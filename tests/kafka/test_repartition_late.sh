#!/usr/bin/env bash
# test_repartition_late.sh — late rows through a repartition step (audit 42): a windowed
# GROUP BY site over a stream keyed by device_id goes through an internal topic, whose reader's
# watermark lags the writer's. Read from a backlog of one partition with rows 20–200 s late,
# the repartitioned run must refuse the same late rows and write the same windows as the run
# with `repartition=off` (one process reading the source), which it did not: it took every late
# row into windows one process had closed (0 late where 56 are).
#   test_repartition_late.sh VPQ
set -euo pipefail
source "$(dirname "$0")/lib.sh"
start_kafka_test "$1" --topic in:1 --topic out_moved:1 --topic out_here:1

/usr/bin/python3 - "$bootstrap" <<'PY'
import json, random, sys
from confluent_kafka import Producer
p = Producer({'bootstrap.servers': sys.argv[1]})
g = random.Random(1)
ts = 1700000000000
for i in range(6000):
    ts += g.randrange(0, 400)
    d = g.randrange(40)
    row_ts = ts - g.randrange(0, 3000)
    if g.random() < 0.01:
        row_ts = ts - g.randrange(20000, 200000)
    p.produce('in', key='d%d' % d, value=json.dumps({'device_id': 'd%d' % d, 'site': 's%d' % (d % 5), 'ts': row_ts}))
p.produce('in', key='end', value=json.dumps({'device_id': 'end', 'site': 'end', 'ts': ts + 3600000}))
p.flush()
PY

# run NAME [--set ...]: the query into topic out_NAME, stopped once its output stops growing.
run() {
  local name=$1
  shift
  cat >"q_$name.vpq" <<EOF
CREATE STREAM telemetry (device_id STRING KEY, site STRING, ts TIMESTAMP)
  WITH (connector = 'kafka', topic = 'in', format = 'json', timestamp = 'ts', watermark_delay = 5 SECONDS,
        idle_timeout = 10 MINUTES, group = 'late_$name');
CREATE STREAM per_site WITH (connector = 'kafka', topic = 'out_$name') AS
  SELECT site, WINDOW_START AS ws, count(*) AS n FROM telemetry WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY site EMIT FINAL;
EOF
  "$vpq" run "q_$name.vpq" --brokers "$bootstrap" "$@" 2>"run_$name.err" &
  local pid=$! last=-1 same=0
  while [ $same -lt 8 ]; do
    sleep 0.5
    kill -0 $pid 2>/dev/null || fail "the run into out_$name ended on its own"
    local now
    now=$(read_topic "out_$name" 1 | wc -l)
    if [ "$now" -eq "$last" ] && [ "$now" -gt 0 ]; then same=$((same + 1)); else same=0; fi
    last=$now
  done
  kill -TERM $pid
  wait $pid || true
}

run moved
run here --set repartition=off
grep -q "repartition" <("$vpq" explain q_moved.vpq) || fail "the query has no repartition step"
late_moved=$(grep -o 'late [0-9]*' run_moved.err | head -1 || true)
late_here=$(grep -o 'late [0-9]*' run_here.err | head -1 || true)
[ -n "$late_here" ] && [ "$late_here" != "late 0" ] || fail "no late rows in the run with repartition=off: '$late_here'"
[ "$late_moved" = "$late_here" ] || fail "late rows: repartitioned '$late_moved', repartition=off '$late_here'"
read_topic out_moved 1 >moved.txt
read_topic out_here 1 >here.txt
diff moved.txt here.txt >windows.diff || fail "the windows differ: $(head -5 windows.diff)"
echo "OK: $(wc -l <here.txt) windows and $late_here rows, the same with and without the repartition step"
