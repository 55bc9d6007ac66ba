#!/usr/bin/env bash
# test_downtime.sh VPQ — a member that was down longer than idle_timeout resumes without
# losing the rows produced while it was down. `vpq run --state-dir` counts 10-second windows per
# device over a 2-partition topic (idle_timeout 5 seconds), is killed with SIGKILL after a
# checkpoint (before it has been idle that long), stays down for 10 seconds while more readings are produced, and is started again
# from its state folder. The idle clock is the reading process's: a restored source must not
# count the downtime as idleness (that would move its watermark on by the downtime before the
# backlog is read, closing its windows early and making their rows late). kafka-python reads
# the output topic: every window once, exact, and no row late.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
start_kafka_test "$1" --topic readings:2 --topic windows:1
cat >down.vpq <<'VPQ'
CREATE STREAM readings (device_id STRING KEY, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'readings', timestamp = 'ts', idle_timeout = 5 SECONDS,
        'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
CREATE STREAM windows WITH (connector = 'kafka', topic = 'windows') AS
  SELECT device_id, WINDOW_START AS start, count(*) AS n, sum(kw) AS kw
  FROM readings WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY device_id EMIT FINAL;
VPQ

# produce FIRST LAST: a reading of d0..d3 (device d on partition d % 2) every 100 ms of event time
# in [FIRST, LAST) seconds; integer kw, so sums are exact. Appends them to in.jsonl.
produce() {
  /usr/bin/python3 - "$bootstrap" "$1" "$2" <<'PY'
import json, sys
from kafka import KafkaProducer
bootstrap, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
producer = KafkaProducer(bootstrap_servers=bootstrap, api_version=(2, 5))
with open("in.jsonl", "a") as log:
    for i in range(first * 10, last * 10):
        d = i % 4
        row = {"device_id": "d%d" % d, "ts": 1700000000000 + i * 100, "kw": float(i % 7)}
        producer.send("readings", key=row["device_id"].encode(), value=json.dumps(row).encode(), partition=d % 2)
        log.write(json.dumps(row) + "\n")
producer.flush()
PY
}

produce 0 15
"$vpq" run down.vpq --brokers "$bootstrap" --state-dir state --checkpoint-interval 200ms 2>run1.err &
pid=$!
# Running once the first window is written (its rows are in); then a checkpoint after it.
for _ in $(seq 120); do
  [ "$(/usr/bin/python3 "$here/read_topic.py" "$bootstrap" windows 1 2>/dev/null | wc -l)" -ge 4 ] && break
  sleep 0.25
done
sleep 1
kill -9 $pid
wait $pid 2>/dev/null
produce 15 40 # while it is down, for longer than idle_timeout
sleep 10
"$vpq" run down.vpq --brokers "$bootstrap" --state-dir state --checkpoint-interval 200ms 2>run2.err &
pid=$!
want=$(/usr/bin/python3 -c 'print(4 * 4)') # 4 devices x windows starting at 0, 10, 20, 30 s
for _ in $(seq 120); do
  [ "$(/usr/bin/python3 "$here/read_topic.py" "$bootstrap" windows 1 2>/dev/null | wc -l)" -ge "$want" ] && break
  sleep 0.5
done
sleep 2 # anything written twice would arrive by now
kill -INT $pid
wait $pid || fail "the resumed run exited $?"
grep -q "resumed from checkpoint" run2.err || fail "the second run did not resume"
/usr/bin/python3 "$here/read_topic.py" "$bootstrap" windows 1 windows.jsonl || fail "reading windows"
/usr/bin/python3 - <<'PY' || fail "the windows after the downtime"
import collections, json, re
want = collections.defaultdict(lambda: [0, 0.0])
for line in open("in.jsonl"):
    row = json.loads(line)
    w = want[(row["device_id"], row["ts"] // 10000 * 10000)]
    w[0] += 1
    w[1] += row["kw"]
expected = collections.Counter((d, start, n, kw) for (d, start), (n, kw) in want.items())
got = collections.Counter()
for line in open("windows.jsonl"):
    v = json.loads(json.loads(line)[2])
    got[(v["device_id"], v["start"], v["n"], v["kw"])] += 1
missing, extra = expected - got, got - expected
assert not missing and not extra, "missing %s, extra %s" % (sorted(missing), sorted(extra))
m = re.search(r"vpq: \d+ rows in, \d+ rows out, (\d+) late", open("run2.err").read())
assert m and m.group(1) == "0", m and m.group(0)
print("every one of the %d windows once, exact; no row late after %s" % (len(expected), "10 s down"))
PY
echo "a member down for longer than idle_timeout resumed and lost nothing"
