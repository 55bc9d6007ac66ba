#!/usr/bin/env bash
# test_sink.sh VPQ — file → vpq → Kafka: a windowed aggregation written by the Kafka sink to a
# 2-partition topic on `vpq broker`, read back by kafka-python (a client we did not write) and
# compared message by message: JSON value, key (the GROUP BY key) and timestamp (the window
# result's event time, WINDOW_END − 1 ms). Expected values are written by hand.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
"$vpq" broker --topic vpq.out:2 >"$work/broker.out" 2>"$work/broker.err" &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/broker.out" ] && break; sleep 0.1; done
bootstrap=$(head -1 "$work/broker.out")
cd "$work" || exit 1
printf '%s\n' '{"site":"s1","ts":1000,"kw":2}' '{"site":"s2","ts":2000,"kw":3}' '{"site":"s1","ts":30000,"kw":4}' \
  '{"site":"s1","ts":61000,"kw":5}' >meters.jsonl
cat >q.vpq <<'VPQ'
CREATE STREAM meters (site STRING KEY, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'file', path = 'meters.jsonl', format = 'json', timestamp = 'ts');
CREATE STREAM per_minute WITH (connector = 'kafka', topic = 'vpq.out') AS
  SELECT site, WINDOW_START AS minute, sum(kw) AS kw FROM meters
  WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY site EMIT FINAL;
VPQ
if "$vpq" run q.vpq 2>err.txt; then echo "ran without --brokers"; exit 1; fi
grep -q -- "--brokers" err.txt || { echo "no hint about --brokers:"; cat err.txt; exit 1; }
"$vpq" run q.vpq --brokers "$bootstrap" 2>err.txt || { echo "vpq run failed:"; cat err.txt; exit 1; }
/usr/bin/python3 - "$bootstrap" <<'PY'
import sys
from kafka import KafkaConsumer, TopicPartition
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5), consumer_timeout_ms=5000,
                         auto_offset_reset="earliest", enable_auto_commit=False)
parts = [TopicPartition("vpq.out", p) for p in (0, 1)]
consumer.assign(parts)
consumer.seek_to_beginning(*parts)
got = sorted((m.key.decode(), m.value.decode(), m.timestamp) for m in consumer)
expected = sorted([
    ("s1", '{"site":"s1","minute":0,"kw":6.0}', 59999),
    ("s2", '{"site":"s2","minute":0,"kw":3.0}', 59999),
    ("s1", '{"site":"s1","minute":60000,"kw":5.0}', 119999),
])
if got != expected:
    print("got     ", got)
    print("expected", expected)
    sys.exit(1)
print("the Kafka sink wrote", len(got), "keyed, timestamped messages that kafka-python read back")
PY
