#!/usr/bin/env bash
# test_crash_before_assignment.sh VPQ — a crash loop during the group's rebalance wait: a run of
# a consumer-group query (unbounded Kafka source, --state-dir) is killed with SIGKILL after its
# checkpoints; the restarted run restores that state and keeps taking checkpoints while it waits
# for the group to give it partitions (the dead member's session has to time out first), and is
# killed too before it gets them; a third run then finishes the input. Its output, read by
# kafka-python, must equal one uninterrupted bounded run's, row for row: the checkpoints of the
# run that never had partitions must carry the restored offsets, or the third run reads again
# rows whose counts are already in the restored windows. And the third run's wait for its
# partitions (the group's rebalance, 6-15 s) is no idleness of those partitions: with
# idle_timeout 5 s, counting it would move the watermark on and close the window open at the
# crash before the rows of the second half that belong to it are read.
set -uo pipefail
vpq=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic vpp.telemetry:4 --topic ref.windows:4 --topic crash.windows:4
cd "$work" || exit 1
trap 'kill $broker_pid $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT

/usr/bin/python3 - <<'PY'
import random
random.seed(5)
ts = 1700000000000
rows = []
for i in range(120000):
    ts += random.randrange(0, 20)
    d = random.randrange(100)
    rows.append('d%d|{"device_id":"d%d","ts":%d,"kw":%.2f}\n' % (d, d, ts, random.uniform(-5, 5)))
open("first.txt", "w").writelines(rows[:60000])
open("second.txt", "w").writelines(rows[60000:])
PY
produce() { kcat -b "$bootstrap" -P -t vpp.telemetry -K '|' -z zstd -l "$1" || { echo "kcat could not produce"; exit 1; }; }
produce first.txt

query() {
  cat <<VPQ
CREATE STREAM telemetry (device_id STRING KEY, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'vpp.telemetry', timestamp = 'ts', idle_timeout = 5 SECONDS$2);
CREATE STREAM windows WITH (connector = 'kafka', topic = '$1.windows') AS
  SELECT device_id, WINDOW_START AS minute, count(*) AS n, sum(kw) AS kw
  FROM telemetry WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY device_id EMIT FINAL;
VPQ
}
query crash "" >crash.vpq
run() {
  "$vpq" run crash.vpq --brokers "$bootstrap" --state-dir state --checkpoint-interval 200ms \
    --set kafka.session.timeout.ms=6000 --set kafka.heartbeat.interval.ms=500 2>"$1.err" &
}
newest() { ls state/checkpoint-*.vpqc 2>/dev/null | sort -V | tail -1; }

# A: reads the first half with partitions, checkpoints, is killed.
run a
a=$!
for _ in $(seq 300); do grep -q "rows in" a.err 2>/dev/null || [ -n "$(newest)" ] && break; sleep 0.1; done
sleep 4
last_a=$(newest)
[ -n "$last_a" ] || { echo "run a took no checkpoint:"; cat a.err; exit 1; }
kill -9 $a
wait $a 2>/dev/null

# B: restores a's checkpoint and waits for the group (a's session lasts 6 s more); killed once
# it has checkpointed, before it is given partitions.
run b
b=$!
for _ in $(seq 40); do [ "$(newest)" != "$last_a" ] && break; sleep 0.1; done
sleep 0.5
last_b=$(newest)
kill -9 $b
wait $b 2>/dev/null
grep -q "resumed from checkpoint" b.err || { echo "run b did not resume from a's checkpoint:"; cat b.err; exit 1; }
[ "$last_b" != "$last_a" ] || { echo "run b took no checkpoint of its own:"; cat b.err; exit 1; }
grep -q "gave this member partitions" b.err && echo "note: run b was given partitions before it was killed"

produce second.txt
query ref ", bounded = true" >ref.vpq
timeout 300 "$vpq" run ref.vpq --brokers "$bootstrap" 2>ref.err || { echo "the reference run failed:"; cat ref.err; exit 1; }
want=$(grep -o "[0-9]* rows out" ref.err | grep -o "^[0-9]*")

# C: finishes the input and closes the last windows when it goes idle.
run c
c=$!
count() {
  /usr/bin/python3 - "$bootstrap" <<'PY'
import sys
from kafka import KafkaConsumer, TopicPartition
c = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
parts = [TopicPartition("crash.windows", p) for p in range(4)]
print(sum(c.end_offsets(parts).values()))
PY
}
got=0
for _ in $(seq 90); do
  got=$(count)
  [ "$got" -ge "$want" ] && break
  sleep 1
done
sleep 3
kill $c
wait $c

for topic in ref.windows crash.windows; do
  /usr/bin/python3 "$here/read_topic.py" "$bootstrap" $topic 4 $topic.jsonl || exit 1
done
/usr/bin/python3 - <<'PY' || { for r in a b c; do echo "--- run $r's log:"; grep -v "^%" $r.err; done; ls state; exit 1; }
import collections, json, sys

def read(topic):
    return [tuple(json.loads(line)[1:3]) for line in open(topic + ".jsonl")]

ref, got = read("ref.windows"), read("crash.windows")
want, have = collections.Counter(ref), collections.Counter(got)
lost, extra = want - have, have - want
if lost or extra or not ref:
    print("%d rows uninterrupted, %d across the crashes: %d lost, %d duplicated or wrong"
          % (len(ref), len(got), sum(lost.values()), sum(extra.values())))
    print("  windows lost by minute:", dict(collections.Counter(json.loads(r[1])["minute"] for r in lost)))
    for row in list(lost)[:3]: print("  lost:", row)
    for row in list(extra)[:3]: print("  extra:", row, "x", extra[row])
    sys.exit(1)
print("%d window rows, identical to the uninterrupted run" % len(got))
PY
echo "killed with partitions, then killed again while waiting for them: output exact"
