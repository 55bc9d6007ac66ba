#!/usr/bin/env bash
# test_kafka_to_kafka.sh VPQ — Kafka in, Kafka out, with clients we did not write at both
# ends: kcat produces keyed telemetry (one malformed message among it) into a 2-partition topic
# on `vpq broker`; `vpq run --brokers` reads it as a bounded source (a watermark per partition),
# aggregates 1-minute windows per device and writes them to an output topic; kafka-python reads
# the output back and compares every message with hand-computed results. The malformed
# message goes to the dead-letter file with its topic/partition@offset.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
"$vpq" broker --topic vpp.telemetry:2 --topic vpp.out:2 >"$work/broker.out" 2>"$work/broker.err" &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/broker.out" ] && break; sleep 0.1; done
bootstrap=$(head -1 "$work/broker.out")
cd "$work" || exit 1
cat >in.txt <<'MSG'
d1|{"device_id":"d1","ts":1000,"power_kw":2.0}
d2|{"device_id":"d2","ts":2000,"power_kw":-1.5}
d1|{"device_id":"d1","ts":30000,"power_kw":4.0}
d2|{"device_id":"d2","ts":"not a time","power_kw":1}
d1|{"device_id":"d1","ts":70000,"power_kw":1.0}
d2|{"device_id":"d2","ts":75000,"power_kw":0.5}
MSG
kcat -b "$bootstrap" -P -t vpp.telemetry -K '|' -l in.txt || { echo "kcat could not produce"; exit 1; }
cat >q.vpq <<'VPQ'
CREATE STREAM telemetry (device_id STRING KEY, ts TIMESTAMP, power_kw DOUBLE)
  WITH (connector = 'kafka', topic = 'vpp.telemetry', format = 'json', timestamp = 'ts',
        bounded = true, dead_letter = 'dead.jsonl');
CREATE STREAM per_minute WITH (connector = 'kafka', topic = 'vpp.out') AS
  SELECT device_id, WINDOW_START AS minute, count(*) AS n, sum(power_kw) AS kw
  FROM telemetry WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY device_id EMIT FINAL;
VPQ
timeout 120 "$vpq" run q.vpq --brokers "$bootstrap" 2>err.txt || { echo "vpq run failed:"; cat err.txt; exit 1; }
grep -q "5 rows in" err.txt || { echo "expected 5 rows in:"; cat err.txt; exit 1; }
/usr/bin/python3 - "$bootstrap" <<'PY' || exit 1
import json, sys
from kafka import KafkaConsumer, TopicPartition
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5), consumer_timeout_ms=5000,
                         auto_offset_reset="earliest", enable_auto_commit=False)
parts = [TopicPartition("vpp.out", p) for p in (0, 1)]
consumer.assign(parts)
consumer.seek_to_beginning(*parts)
got = sorted((m.key.decode(), m.value.decode(), m.timestamp) for m in consumer)
expected = sorted([
    ("d1", '{"device_id":"d1","minute":0,"n":2,"kw":6.0}', 59999),
    ("d2", '{"device_id":"d2","minute":0,"n":1,"kw":-1.5}', 59999),
    ("d1", '{"device_id":"d1","minute":60000,"n":1,"kw":1.0}', 119999),
    ("d2", '{"device_id":"d2","minute":60000,"n":1,"kw":0.5}', 119999),
])
if got != expected:
    print("got     ", got)
    print("expected", expected)
    sys.exit(1)
dead = [json.loads(line) for line in open("dead.jsonl")]
if len(dead) != 1 or dead[0]["reason"] != "invalid timestamp" or not dead[0]["origin"].startswith("vpp.telemetry/"):
    print("dead letters:", dead)
    sys.exit(1)
print("kcat → vpq (Kafka source, per-partition watermarks) → Kafka sink → kafka-python:", len(got), "results exact")
PY
