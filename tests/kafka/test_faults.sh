#!/usr/bin/env bash
# test_faults.sh VPQ — the engine survives Kafka faults without losing or repeating a row.
#
# `vpq broker --control` takes fault commands on a pipe. kcat produces 400,000 keyed messages;
# an uninterrupted run computes the reference output. Then a checkpointed Kafka → Kafka run
# goes through, in turn: injected request errors (Produce, Fetch, ListOffsets, Metadata), a
# slow broker (every answer 50 ms late: the sink is slower than the source), and the broker
# going down for three seconds and coming back. The run must end by itself with exit 0 and
# kafka-python must read exactly the reference output.
set -uo pipefail
vpq=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
rows=400000
cd "$work" || exit 1
mkfifo control
exec 3<>control
"$vpq" broker --control --topic vpp.telemetry:8 --topic ref.windows:4 --topic ref.spikes:4 \
  --topic fault.windows:4 --topic fault.spikes:4 <control >broker.out 2>broker.err &
broker_pid=$!
trap 'kill $broker_pid 2>/dev/null; wait $broker_pid 2>/dev/null; rm -rf "'"$work"'"' EXIT
for _ in $(seq 100); do [ -s broker.out ] && break; sleep 0.1; done
bootstrap=$(head -1 broker.out)
case "$bootstrap" in *:[0-9]*) ;; *) echo "no bootstrap line"; cat broker.err; exit 1 ;; esac
fault() { echo "$1" >&3; }

/usr/bin/python3 - "$rows" <<'PY' >in.txt
import random, sys
random.seed(7)
ts = 1700000000000
for i in range(int(sys.argv[1])):
    ts += random.randrange(0, 40)
    d = random.randrange(200)
    print('d%d|{"device_id":"d%d","ts":%d,"kw":%.2f}' % (d, d, ts, random.uniform(-5, 5)))
PY
kcat -b "$bootstrap" -P -t vpp.telemetry -K '|' -z zstd -l in.txt || { echo "kcat could not produce"; exit 1; }

query() {
  cat <<VPQ
CREATE STREAM telemetry (device_id STRING KEY, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'vpp.telemetry', timestamp = 'ts', bounded = true);
CREATE STREAM windows WITH (connector = 'kafka', topic = '$1.windows') AS
  SELECT device_id, WINDOW_START AS minute, count(*) AS n, sum(kw) AS kw
  FROM telemetry WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY device_id EMIT FINAL;
CREATE STREAM spikes WITH (connector = 'kafka', topic = '$1.spikes') AS
  SELECT device_id, ts, kw FROM telemetry WHERE kw > 4.9;
VPQ
}
query ref >ref.vpq
query fault >fault.vpq
timeout 300 "$vpq" run ref.vpq --brokers "$bootstrap" 2>ref.err || { echo "the reference run failed:"; cat ref.err; exit 1; }

fault "errors Produce 30 NOT_LEADER_OR_FOLLOWER"
fault "errors Fetch 30 NOT_LEADER_OR_FOLLOWER"
fault "errors ListOffsets 5 LEADER_NOT_AVAILABLE"
fault "errors Metadata 5 LEADER_NOT_AVAILABLE"
fault "rtt 1 50"
timeout 600 "$vpq" run fault.vpq --brokers "$bootstrap" --state-dir state --checkpoint-interval 200ms \
  --set kafka.message.timeout.ms=120000 2>fault.err &
pid=$!
sleep 2
kill -0 $pid 2>/dev/null || { echo "the run ended before the broker went down: the input is too small"; exit 1; }
fault "down 1"
sleep 3
fault "up 1"
sleep 1
fault "rtt 1 0"
wait $pid
code=$?
grep -v '^%' fault.err >fault.log
[ $code = 0 ] || { echo "the run under faults failed (exit $code):"; tail -20 fault.log; exit 1; }
# Backpressure: a sink slower than the source holds memory bounded (the held output triggers
# early checkpoints at 64 MiB, the producer queue is bounded), whatever the input's size.
peak=$(grep -o "peak memory [0-9.]*" fault.log | grep -o "[0-9.]*$")
/usr/bin/python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 400 else 1)" "${peak:-99999}" \
  || { echo "peak memory ${peak:-?} MiB under a slow sink"; exit 1; }
for reply in "ok errors Produce" "ok errors Fetch" "ok down 1" "ok up 1"; do
  grep -q "$reply" broker.err || { echo "the broker did not take \`$reply\`:"; cat broker.err; exit 1; }
done

for topic in ref.windows ref.spikes fault.windows fault.spikes; do
  /usr/bin/python3 "$here/read_topic.py" "$bootstrap" $topic 4 $topic.jsonl || exit 1
done
/usr/bin/python3 - <<'PY' || exit 1
import collections, json, sys

def read(topic):
    return [tuple(json.loads(line)[:3]) for line in open(topic + ".jsonl")]

failed = False
for name in ("windows", "spikes"):
    ref, got = read("ref." + name), read("fault." + name)
    want, have = collections.Counter(ref), collections.Counter(got)
    if want != have or not ref:
        failed = True
        print("%s: %d rows expected, %d after faults: %d lost, %d extra"
              % (name, len(ref), len(got), sum((want - have).values()), sum((have - want).values())))
    else:
        print("%s: %d rows, as without faults" % (name, len(got)))
sys.exit(1 if failed else 0)
PY
echo "faults (request errors, a slow broker, the broker down 3 s and back): no row lost or repeated"
