#!/usr/bin/env bash
# test_sink_too_large.sh VPQ — a row too large for its Kafka sink (over the producer's
# message.max.bytes) is refused with a line and a count, and never stops the pipeline: the rows
# after it are written. kafka-python (a client we did not write) produces six rows into one
# partition of `vpq broker`, the third with a 1.2 MB field; a bounded `vpq run` copies them to
# another topic, once without and once with --state-dir (whose exactly-once sink holds rows until
# the checkpoint: a held row that could never be produced would fail every checkpoint and every
# restore). Asserted: the other five rows arrive, in order, the log names the refusal, the
# summary counts it, exit 0; the checkpointed run resumes (nothing left to write) and exits 0.
set -uo pipefail
vpq=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$here/lib.sh"
start_broker "$vpq" "$work" --topic big.in:1 --topic big.out:1 --topic big.out2:1
cd "$work" || exit 1

/usr/bin/python3 - "$bootstrap" <<'PY' || { echo "producing with kafka-python failed"; exit 1; }
import json, sys
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers=sys.argv[1], api_version=(2, 5), max_request_size=4 << 20)
for i in range(6):
    note = "x" * 1200000 if i == 2 else "n%d" % i
    producer.send("big.in", json.dumps({"k": "k%d" % i, "ts": 1000 * i, "note": note}).encode())
producer.flush()
PY

query() {
  cat <<VPQ
CREATE STREAM i (k STRING KEY, ts TIMESTAMP, note STRING)
  WITH (connector = 'kafka', topic = 'big.in', format = 'json', timestamp = 'ts', bounded = true);
CREATE STREAM o WITH (connector = 'kafka', topic = '$1', format = 'json') AS SELECT k, note FROM i;
VPQ
}
expected="k0 n0
k1 n1
k3 n3
k4 n4
k5 n5"
check() { # TOPIC LOG
  local got
  got=$(/usr/bin/python3 "$here/read_topic.py" "$bootstrap" "$1" 1 | /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    partition, key, value, _ = json.loads(line)
    print(key, json.loads(value)["note"])')
  [ "$got" = "$expected" ] || { echo "$1 holds:"; echo "$got"; echo "expected:"; echo "$expected"; exit 1; }
  grep -q "vpq: writing \`o\`: a row of 1200022 bytes is over the producer's message.max.bytes (1000000; set it with 'kafka.message.max.bytes', and the topic's max.message.bytes): not written (counted)" "$2" \
    && grep -q "vpq: 6 rows in, 5 rows out" "$2" && grep -q "vpq: 1 row(s) refused by their sink (too large to write)" "$2" \
    || { echo "no line or count for the refused row:"; cat "$2"; exit 1; }
}
query big.out >q.vpq
"$vpq" run q.vpq --brokers "$bootstrap" 2>run.err || { echo "the run failed:"; cat run.err; exit 1; }
check big.out run.err

query big.out2 >q2.vpq
"$vpq" run q2.vpq --brokers "$bootstrap" --state-dir state 2>run2.err || { echo "the checkpointed run failed:"; cat run2.err; exit 1; }
check big.out2 run2.err
"$vpq" run q2.vpq --brokers "$bootstrap" --state-dir state 2>resume.err || { echo "resuming failed:"; cat resume.err; exit 1; }
grep -q "resumed from checkpoint" resume.err || { echo "did not resume:"; cat resume.err; exit 1; }
echo "a row too large for its sink is refused with a line and a count; the rows after it are written, with and without checkpoints"
