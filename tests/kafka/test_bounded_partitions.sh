#!/usr/bin/env bash
# test_bounded_partitions.sh VPQ — a bounded Kafka read over a topic some of whose partitions
# are empty finds late rows as a file would: an empty partition (read to its end at once) does
# not hold the watermark back. kafka-python produces into partition 0 of a 4-partition topic
# rows at 1, 2, 61 and then 3 s (late: [0 s, 60 s) closed when the row at 61 s came, with no
# watermark delay); 1-minute windows of a bounded `vpq run` count 2 rows in the first window
# and dead-letter the late one, as over a 1-partition topic. Then two partitions over the same
# time range, 3,000 rows (one a second) and 30 (one every 100 s): the small one is taken whole
# into a batch before its rows are filed, and must still hold the watermark back: nothing is
# late (a blind audit found its first rows dead-lettered).
set -uo pipefail
vpq=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$here/lib.sh"
start_broker "$vpq" "$work" --topic four:4 --topic one:1 --topic four.dead:1 --topic one.dead:1 --topic two:2
cd "$work" || exit 1

/usr/bin/python3 - "$bootstrap" <<'PY' || { echo "producing with kafka-python failed"; exit 1; }
import json, sys
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
for topic in ("four", "one"):
    for ts, kw in ((1000, 1.0), (2000, 2.0), (61000, 4.0), (3000, 8.0)):
        producer.send(topic, json.dumps({"site": "s1", "ts": ts, "kw": kw}).encode(), partition=0)
producer.flush()
PY

for topic in four one; do
  cat >$topic.vpq <<VPQ
CREATE STREAM m (site STRING KEY, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = '$topic', format = 'json', timestamp = 'ts', bounded = true,
        dead_letter = '$topic.dead');
CREATE STREAM w WITH (connector = 'file', path = '$topic.jsonl') AS
  SELECT site, WINDOW_START AS ws, count(*) AS n, sum(kw) AS kw
  FROM m WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY site EMIT FINAL;
VPQ
  "$vpq" run $topic.vpq --brokers "$bootstrap" 2>$topic.err || { echo "the run over $topic failed:"; cat $topic.err; exit 1; }
  expected='{"site":"s1","ws":0,"n":2,"kw":3.0}
{"site":"s1","ws":60000,"n":1,"kw":4.0}'
  [ "$(cat $topic.jsonl)" = "$expected" ] || { echo "windows over $topic:"; cat $topic.jsonl; echo "expected:"; echo "$expected"; exit 1; }
  grep -q "4 rows in, 2 rows out, 1 late" $topic.err || { echo "no late row counted over $topic:"; cat $topic.err; exit 1; }
  dead=$(/usr/bin/python3 "$here/read_topic.py" "$bootstrap" $topic.dead 1 | /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    d = json.loads(json.loads(line)[2])
    print(d["reason"], d["origin"], json.dumps(d["row"], sort_keys=True))')
  [ "$dead" = "late $topic/0/3 {\"kw\": 8.0, \"site\": \"s1\", \"ts\": 3000}" ] \
    || { echo "the dead letter of $topic: '$dead'"; exit 1; }
done

/usr/bin/python3 - "$bootstrap" <<'PY' || { echo "producing with kafka-python failed"; exit 1; }
import json, sys
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers=sys.argv[1], api_version=(2, 5), linger_ms=5)
for t in range(3000):
    producer.send("two", json.dumps({"site": "s0", "ts": t * 1000, "kw": 1.0}).encode(), partition=0)
for t in range(0, 3000, 100):
    producer.send("two", json.dumps({"site": "s1", "ts": t * 1000, "kw": 1.0}).encode(), partition=1)
producer.flush()
PY
cat >two.vpq <<'VPQ'
CREATE STREAM m (site STRING KEY, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'two', format = 'json', timestamp = 'ts', bounded = true);
CREATE STREAM w WITH (connector = 'file', path = 'two.jsonl') AS
  SELECT WINDOW_START AS ws, count(*) AS n FROM m WINDOW TUMBLING (SIZE 100 SECONDS) EMIT FINAL;
VPQ
"$vpq" run two.vpq --brokers "$bootstrap" 2>two.err || { echo "the run over two failed:"; cat two.err; exit 1; }
grep -q "3030 rows in, 30 rows out, 0 late" two.err || { echo "rows late over two partitions:"; cat two.err; exit 1; }
expected=$(for w in $(seq 0 29); do printf '{"ws":%d,"n":101}\n' $((w * 100000)); done)
[ "$(cat two.jsonl)" = "$expected" ] || { echo "windows over two:"; cat two.jsonl; exit 1; }
echo "a bounded read finds late rows over a topic with empty partitions as over a single partition,"
echo "and none over two partitions of one time range"
