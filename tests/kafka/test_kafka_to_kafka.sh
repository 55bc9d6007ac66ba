#!/usr/bin/env bash
# test_kafka_to_kafka.sh VPQ — Kafka in, Kafka out, with clients we did not write at both
# ends: kcat produces keyed telemetry (one malformed message among it) into a 2-partition topic
# on `vpq broker`; `vpq run --brokers` reads it as a bounded source (a watermark per partition),
# aggregates 1-minute windows per device and writes them to an output topic; kafka-python reads
# the output back and compares every message with hand-computed results. The malformed
# message goes to the dead-letter topic with its reason, topic/partition/offset and raw text.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic vpp.telemetry:2 --topic vpp.out:2 --topic vpp.dead:1 --topic vpp.bad:1 \
  --topic vpp.dead4:4
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
        bounded = true, dead_letter = 'vpp.dead');
CREATE STREAM per_minute WITH (connector = 'kafka', topic = 'vpp.out') AS
  SELECT device_id, WINDOW_START AS minute, count(*) AS n, sum(power_kw) AS kw
  FROM telemetry WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY device_id EMIT FINAL;
VPQ
timeout 120 "$vpq" run q.vpq --brokers "$bootstrap" 2>err.txt || { echo "vpq run failed:"; cat err.txt; exit 1; }
grep -q "5 rows in" err.txt || { echo "expected 5 rows in:"; cat err.txt; exit 1; }
got=$(read_topic vpp.out 2)
expected=$(/usr/bin/python3 -c '
for m in sorted([("d1", "{\"device_id\":\"d1\",\"minute\":0,\"n\":2,\"kw\":6.0}", 59999),
                 ("d2", "{\"device_id\":\"d2\",\"minute\":0,\"n\":1,\"kw\":-1.5}", 59999),
                 ("d1", "{\"device_id\":\"d1\",\"minute\":60000,\"n\":1,\"kw\":1.0}", 119999),
                 ("d2", "{\"device_id\":\"d2\",\"minute\":60000,\"n\":1,\"kw\":0.5}", 119999)]):
    print(repr(m))')
if [ "$got" != "$expected" ]; then
  echo "got:"; echo "$got"; echo "expected:"; echo "$expected"; exit 1
fi
read_topic vpp.dead 1 >dead.txt
/usr/bin/python3 - <<'PY' || exit 1
import ast, json, sys
dead = [json.loads(ast.literal_eval(line)[1]) for line in open("dead.txt")]
raw = '{"device_id":"d2","ts":"not a time","power_kw":1}'
if (len(dead) != 1 or dead[0]["reason"] != "invalid timestamp" or dead[0]["raw"] != raw
        or not dead[0]["origin"].startswith("vpp.telemetry/")):
    print("dead letters:", dead)
    sys.exit(1)
PY

# Dead letters are keyed by their source topic/partition, so those of one partition land in one
# partition of a dead-letter topic of several, in input order (before: no key, any partition).
printf '%s\n' 'd1|{"device_id":"d1","ts":"first"}' 'd1|{"device_id":"d1","ts":1000}' 'd2|not json' \
  'd1|{"device_id":"d1","ts":"third"}' >bad.txt
kcat -b "$bootstrap" -P -t vpp.bad -K '|' -l bad.txt || { echo "kcat could not produce"; exit 1; }
cat >dead.vpq <<'VPQ'
CREATE STREAM bad (device_id STRING KEY, ts TIMESTAMP)
  WITH (connector = 'kafka', topic = 'vpp.bad', timestamp = 'ts', bounded = true, dead_letter = 'vpp.dead4');
CREATE STREAM o AS SELECT device_id FROM bad;
VPQ
timeout 120 "$vpq" run dead.vpq --brokers "$bootstrap" >/dev/null 2>err.txt || { echo "vpq run failed:"; cat err.txt; exit 1; }
/usr/bin/python3 "$(dirname "$0")/read_topic.py" "$bootstrap" vpp.dead4 4 dead4.jsonl || exit 1
/usr/bin/python3 - <<'PY' || exit 1
import json, sys
rows = [json.loads(line) for line in open("dead4.jsonl")]
got = [(p, key, json.loads(value)["origin"]) for p, key, value, _ in rows]
want = ["vpp.bad/0/0", "vpp.bad/0/2", "vpp.bad/0/3"]
if (len({p for p, _, _ in got}) != 1 or {key for _, key, _ in got} != {"vpp.bad/0"}
        or [origin for _, _, origin in got] != want):
    print("dead letters (partition, key, origin), in partition order:", got, "expected keys vpp.bad/0 and origins", want)
    sys.exit(1)
PY
echo "kcat → vpq (Kafka source, a watermark per partition) → Kafka sink → kafka-python: 4 results exact"
