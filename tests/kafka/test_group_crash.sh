#!/usr/bin/env bash
# test_group_crash.sh VPQ — state that moves: two members of a consumer group run a file with
# `--partition-tasks` and one shared state folder; one member is killed with SIGKILL while its
# partitions hold open windows and unsent output; the survivor takes its partitions over
# together with their state. The output topic, read by kafka-python, must equal the output of
# one uninterrupted bounded run over the same input, row for row (no loss, no duplicate).
#
# Input: 300,000 telemetry rows keyed by device into 4 partitions, produced in two halves (the
# second after the kill, so that windows open across the kill are completed by the survivor).
set -uo pipefail
vpq=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic vpp.telemetry:4 --topic ref.windows:4 --topic tasks.windows:4
cd "$work" || exit 1
trap 'kill $broker_pid $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT

/usr/bin/python3 - <<'PY'
import random
random.seed(11)
ts = 1700000000000
rows = []
for i in range(300000):
    ts += random.randrange(0, 20)
    d = random.randrange(300)
    rows.append('d%d|{"device_id":"d%d","ts":%d,"kw":%.2f}\n' % (d, d, ts, random.uniform(-5, 5)))
open("first.txt", "w").writelines(rows[:150000])
open("second.txt", "w").writelines(rows[150000:])
PY
produce() { kcat -b "$bootstrap" -P -t vpp.telemetry -K '|' -z zstd -l "$1" || { echo "kcat could not produce"; exit 1; }; }
produce first.txt

query() {
  cat <<VPQ
CREATE STREAM telemetry (device_id STRING KEY, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'vpp.telemetry', timestamp = 'ts', idle_timeout = 2 SECONDS$2);
CREATE STREAM windows WITH (connector = 'kafka', topic = '$1.windows') AS
  SELECT device_id, WINDOW_START AS minute, count(*) AS n, sum(kw) AS kw
  FROM telemetry WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY device_id EMIT FINAL;
VPQ
}
query tasks "" >tasks.vpq

member() {
  "$vpq" run tasks.vpq --brokers "$bootstrap" --state-dir state --partition-tasks --checkpoint-interval 300ms \
    --set kafka.session.timeout.ms=6000 --set kafka.heartbeat.interval.ms=500 2>"$1.err" &
}
member a
a=$!
member b
b=$!
# Both members hold tasks (the group's first join takes about 3 s), and a's have checkpoints.
for _ in $(seq 300); do
  grep -q "task [0-9] started" a.err && grep -q "task [0-9] started" b.err && break
  sleep 0.1
done
a_tasks=$(grep -o "task [0-9] started" a.err | tail -2 | grep -o "[0-9]" | sort -u | tr '\n' ' ')
[ -n "$a_tasks" ] && grep -q "task [0-9] started" b.err || { echo "the members did not both get tasks:"; cat a.err b.err; exit 1; }
for p in $a_tasks; do
  for _ in $(seq 200); do ls state/task-$p/checkpoint-*.vpqc >/dev/null 2>&1 && break; sleep 0.05; done
done
sleep 0.$((RANDOM % 9 + 1))
kill -9 $a
wait $a 2>/dev/null
produce second.txt

query ref ", bounded = true" >ref.vpq
timeout 300 "$vpq" run ref.vpq --brokers "$bootstrap" 2>ref.err || { echo "the reference run failed:"; cat ref.err; exit 1; }
want=$(grep -o "[0-9]* rows out" ref.err | grep -o "^[0-9]*")

count() {
  /usr/bin/python3 - "$bootstrap" <<'PY'
import sys
from kafka import KafkaConsumer, TopicPartition
c = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
parts = [TopicPartition("tasks.windows", p) for p in range(4)]
print(sum(c.end_offsets(parts).values()))
PY
}
# The survivor takes the dead member's partitions over after the session timeout, resumes them
# from their checkpoints and closes the last windows when the input goes idle.
got=0
for _ in $(seq 90); do
  got=$(count)
  [ "$got" -ge "$want" ] && break
  sleep 1
done
sleep 3
kill $b
wait $b
grep -v '^%' b.err >b.log
for p in $a_tasks; do
  grep -q "resumed from checkpoint [0-9]* in state/task-$p" b.log \
    || { echo "the survivor did not resume partition $p from its checkpoint:"; cat b.log; exit 1; }
done

for topic in ref.windows tasks.windows; do
  /usr/bin/python3 "$here/read_topic.py" "$bootstrap" $topic 4 $topic.jsonl || exit 1
done
/usr/bin/python3 - <<'PY' || { echo "--- survivor's log:"; cat b.log; exit 1; }
import collections, json, sys

def read(topic):
    return [tuple(json.loads(line)[1:3]) for line in open(topic + ".jsonl")]

ref, got = read("ref.windows"), read("tasks.windows")
want, have = collections.Counter(ref), collections.Counter(got)
lost, extra = want - have, have - want
if lost or extra or not ref:
    print("%d rows uninterrupted, %d with a member killed: %d lost, %d duplicated or wrong"
          % (len(ref), len(got), sum(lost.values()), sum(extra.values())))
    for row in list(lost)[:3]: print("  lost:", row)
    for row in list(extra)[:3]: print("  extra:", row, "x", extra[row])
    sys.exit(1)
print("%d window rows, identical to the uninterrupted run" % len(got))
PY
echo "group of two, one killed (SIGKILL): partitions $a_tasks moved with their state; output exact"
