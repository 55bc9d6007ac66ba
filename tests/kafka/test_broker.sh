#!/usr/bin/env bash
# test_broker.sh VPQ — `vpq broker` speaks the real Kafka protocol to clients we did not write:
# kafka-python (Debian python3-kafka) produces 100 keyed messages into a 2-partition topic, and
# kcat and confluent-kafka (Debian python3-confluent-kafka) read them all back; confluent-kafka
# produces readings that `vpq run` aggregates. The bootstrap list is the first line of standard
# output.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic vpq.test:2 --topic vpq.readings:2
/usr/bin/python3 - "$bootstrap" <<'PY' || exit 1
import sys
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
sent = [producer.send("vpq.test", key=b"dev-%d" % (i % 7), value=b'{"n":%d}' % i) for i in range(100)]
producer.flush(30)
for future in sent:
    future.get(timeout=30)  # raises if the broker refused or lost the message
producer.close()
PY
got=$(timeout 60 kcat -b "$bootstrap" -C -t vpq.test -o beginning -e -q -f '%k %s\n' | sort -t: -k2 -n)
count=$(grep -c '"n"' <<<"$got")
if [ "$count" != 100 ]; then
  echo "kcat read $count messages, expected 100"; printf '%s\n' "$got" | head; exit 1
fi
# (here-strings, not `printf | grep -q`: with pipefail, grep leaving early fails the printf)
for i in $(seq 0 99); do
  grep -qx "dev-$((i % 7)) {\"n\":$i}" <<<"$got" || { echo "message $i missing or wrong; read:"; echo "$got"; exit 1; }
done
/usr/bin/python3 - "$bootstrap" <<'PY' || { echo "confluent-kafka did not read the 100 messages"; exit 1; }
import sys
from confluent_kafka import Consumer
consumer = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "vpq.test.reader", "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})
consumer.subscribe(["vpq.test"])
got = set()
for _ in range(300):
    m = consumer.poll(0.2)
    if m is not None and m.error() is None:
        got.add((m.key(), m.value()))
    if len(got) == 100:
        break
consumer.close()
want = {(b"dev-%d" % (i % 7), b'{"n":%d}' % i) for i in range(100)}
assert got == want, "read %d of 100; missing %s" % (len(got), sorted(want - got)[:3])
PY
/usr/bin/python3 - "$bootstrap" <<'PY' || { echo "confluent-kafka could not produce"; exit 1; }
import json, sys
from confluent_kafka import Producer
producer = Producer({"bootstrap.servers": sys.argv[1]})
for i in range(60):
    row = {"device_id": "d%d" % (i % 3), "ts": 1700000000000 + i * 1000, "kw": i % 5}
    producer.produce("vpq.readings", key=row["device_id"], value=json.dumps(row))
assert producer.flush(30) == 0, "messages left unsent"
PY
cat >"$work/sum.vpq" <<'VPQ'
CREATE STREAM readings (device_id STRING KEY, ts TIMESTAMP, kw BIGINT)
  WITH (connector = 'kafka', topic = 'vpq.readings', timestamp = 'ts', bounded = true);
CREATE TABLE totals WITH (connector = 'file', path = 'totals.jsonl') AS
  SELECT device_id, count(*) AS n, sum(kw) AS kw FROM readings GROUP BY device_id;
VPQ
(cd "$work" && "$vpq" run sum.vpq --brokers "$bootstrap" 2>run.err) || { echo "vpq run failed"; cat "$work/run.err"; exit 1; }
want=$(/usr/bin/python3 -c '
for d in range(3): print("{\"device_id\":\"d%d\",\"n\":20,\"kw\":%d}" % (d, sum(i % 5 for i in range(d, 60, 3))))')
got=$(/usr/bin/python3 -c '
import json, sys
last = {}  # the state of the table: the last row of each key
for line in sys.stdin:
    row = json.loads(line)
    last[row["device_id"]] = line.strip()
print("\n".join(last[k] for k in sorted(last)))' <"$work/totals.jsonl")
[ "$got" = "$want" ] || { echo "vpq's totals of confluent-kafka's readings: got"; echo "$got"; echo "want"; echo "$want"; cat "$work/run.err"; exit 1; }
partitions=$(timeout 30 kcat -b "$bootstrap" -L -t vpq.test | grep -c "partition [0-9]")
[ "$partitions" = 2 ] || { echo "expected 2 partitions, metadata shows $partitions"; exit 1; }
if "$vpq" broker --topic ':x' >/dev/null 2>"$work/bad"; then echo "a bad --topic was accepted"; exit 1; fi
grep -q "bad --topic" "$work/bad" || { echo "no message for a bad --topic"; cat "$work/bad"; exit 1; }
echo "kafka-python wrote and kcat and confluent-kafka read 100 messages through vpq broker ($bootstrap); vpq summed confluent-kafka's readings"
