#!/usr/bin/env bash
# test_idle_inputs.sh VPQ — DESIGN §3: an idle input stops holding back an operator of several
# inputs. Two topics, `a` and `b`; readings go to `a` only, and `b` never gets a message. A
# stream fed by both through INSERT INTO has 10-second windows counted over it. Once `b` has
# been idle for its idle_timeout (2 s), the running engine writes the windows that `a`'s
# watermark (20 s) has passed, without being stopped, and no more: `a` is not idle (its
# idle_timeout is 60 s), so its own watermark holds. On the old code `b`, with no row at all,
# held the union back for good. (A join of the two is repartitioned over Kafka, and the
# exchange's reader has its own idleness: tests/unit/test_engine.c covers the join.)
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic a:1 --topic b:1
cd "$work" || exit 1
trap 'kill -9 $broker_pid $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT
cat >idle.vpq <<'VPQ'
CREATE STREAM a (k STRING, ts TIMESTAMP, x BIGINT)
  WITH (connector = 'kafka', topic = 'a', timestamp = 'ts', idle_timeout = 60 SECONDS);
CREATE STREAM b (k STRING, ts TIMESTAMP, x BIGINT)
  WITH (connector = 'kafka', topic = 'b', timestamp = 'ts', idle_timeout = 2 SECONDS);
CREATE STREAM u (k STRING, ts TIMESTAMP, x BIGINT);
INSERT INTO u SELECT k, ts, x FROM a;
INSERT INTO u SELECT k, ts, x FROM b;
CREATE STREAM windows WITH (connector = 'file', path = 'windows.jsonl') AS
  SELECT WINDOW_START AS start, count(*) AS n, sum(x) AS total FROM u
  WINDOW TUMBLING (SIZE 10 SECONDS) EMIT FINAL;
VPQ
fail() { echo "FAIL: $*"; grep -v '^%' run.err; exit 1; }

# Rows every 5 s of event time over [0, 25 s) to `a`, produced by kafka-python.
/usr/bin/python3 - "$bootstrap" <<'PY' || fail "producing"
import json, sys
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
for i in range(5):
    row = {"k": "k%d" % i, "ts": 1700000000000 + i * 5000, "x": i + 1}
    producer.send("a", value=json.dumps(row).encode())
producer.flush()
PY
"$vpq" run idle.vpq --brokers "$bootstrap" 2>run.err &
pid=$!
want_windows='{"start":1700000000000,"n":2,"total":3}
{"start":1700000010000,"n":2,"total":7}'
for _ in $(seq 120); do
  [ "$(cat windows.jsonl 2>/dev/null)" = "$want_windows" ] && break
  sleep 0.25
done
sleep 2 # nothing more comes
kill -0 $pid 2>/dev/null || fail "the run ended"
[ "$(cat windows.jsonl 2>/dev/null)" = "$want_windows" ] || fail "windows while running: $(cat windows.jsonl 2>/dev/null)"
kill -INT $pid
wait $pid || fail "the run exited $?"
echo "an input with no message stopped holding back a union once idle"
