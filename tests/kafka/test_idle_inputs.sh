#!/usr/bin/env bash
# test_idle_inputs.sh VPQ — DESIGN §3: an idle input stops holding back an operator of several
# inputs, and an input that has ended holds nothing back.
# 1. Topics `a` and `b`; readings go to `a` only, and `b` never gets a message. A stream fed by
#    INSERT INTO from `a` and from `b` joined to a CSV table has 10-second windows counted over
#    it. Once `b` has been idle for its idle_timeout (2 s), the running engine writes the windows
#    that `a`'s watermark (20 s) has passed, without being stopped, and no more: `a` is not idle
#    (its idle_timeout is 60 s). On the old code `b`, with no row at all, held the union back
#    for good, and so did the join (the table beside `b` is never idle, but holds no watermark).
# 2. A file `hist` (rows up to 19 s, read to its end) and a topic `live` feed a union. `live`
#    gets no message at first, so nothing closes; then rows at 21, 25 and 40 s: all three
#    windows close, and no row is late (the ended file and the idle topic together sent the
#    union's watermark to the end, and every later row was late).
# (A window join of two topics is repartitioned over Kafka, and the exchange's reader has its own
# idleness: tests/unit/test_engine.c covers the join.)
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic a:1 --topic b:1 --topic live:1
cd "$work" || exit 1
trap 'kill -9 $broker_pid $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT
fail() { echo "FAIL: $*"; grep -v '^%' run*.err; exit 1; }
# produce TOPIC TS... — a reading at each event time (seconds) with x = its index + 1, by kafka-python.
produce() {
  /usr/bin/python3 - "$bootstrap" "$@" <<'PY' || fail "producing"
import json, sys
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
for i, s in enumerate(sys.argv[3:]):
    producer.send(sys.argv[2], value=json.dumps({"k": "k%d" % i, "ts": 1700000000000 + int(s) * 1000, "x": i + 1}).encode())
producer.flush()
PY
}
# wait_for FILE WANT — waits (up to 30 s) until FILE holds WANT, then 2 s more to see nothing else comes.
wait_for() {
  for _ in $(seq 120); do [ "$(cat "$1" 2>/dev/null)" = "$2" ] && break; sleep 0.25; done
  sleep 2
  [ "$(cat "$1" 2>/dev/null)" = "$2" ] || fail "$1 while running: $(cat "$1" 2>/dev/null)"
}

printf 'k,label\nk0,zero\n' >t.csv
cat >idle.vpq <<'VPQ'
CREATE STREAM a (k STRING, ts TIMESTAMP, x BIGINT)
  WITH (connector = 'kafka', topic = 'a', timestamp = 'ts', idle_timeout = 60 SECONDS);
CREATE STREAM b (k STRING, ts TIMESTAMP, x BIGINT)
  WITH (connector = 'kafka', topic = 'b', timestamp = 'ts', idle_timeout = 2 SECONDS);
CREATE TABLE t (k STRING PRIMARY KEY, label STRING) WITH (connector = 'file', path = 't.csv', format = 'csv');
CREATE STREAM u (k STRING, ts TIMESTAMP, x BIGINT);
INSERT INTO u SELECT k, ts, x FROM a;
INSERT INTO u SELECT b.k, b.ts, b.x FROM b JOIN t ON b.k = t.k;
CREATE STREAM windows WITH (connector = 'file', path = 'windows.jsonl') AS
  SELECT WINDOW_START AS start, count(*) AS n, sum(x) AS total FROM u
  WINDOW TUMBLING (SIZE 10 SECONDS) EMIT FINAL;
VPQ
produce a 0 5 10 15 20
"$vpq" run idle.vpq --brokers "$bootstrap" 2>run1.err &
pid=$!
wait_for windows.jsonl '{"start":1700000000000,"n":2,"total":3}
{"start":1700000010000,"n":2,"total":7}'
kill -0 $pid 2>/dev/null || fail "the run ended"
kill -INT $pid
wait $pid || fail "the run exited $?"

/usr/bin/python3 -c '
for s in range(0, 20, 2): print("{\"k\":\"h\",\"ts\":%d,\"x\":10}" % (1700000000000 + s * 1000))' >hist.jsonl
cat >ended.vpq <<'VPQ'
CREATE STREAM hist (k STRING, ts TIMESTAMP, x BIGINT) WITH (connector = 'file', path = 'hist.jsonl', timestamp = 'ts');
CREATE STREAM live (k STRING, ts TIMESTAMP, x BIGINT)
  WITH (connector = 'kafka', topic = 'live', timestamp = 'ts', idle_timeout = 2 SECONDS);
CREATE STREAM v (k STRING, ts TIMESTAMP, x BIGINT);
INSERT INTO v SELECT k, ts, x FROM hist;
INSERT INTO v SELECT k, ts, x FROM live;
CREATE STREAM totals WITH (connector = 'file', path = 'totals.jsonl') AS
  SELECT WINDOW_START AS start, count(*) AS n, sum(x) AS total FROM v
  WINDOW TUMBLING (SIZE 10 SECONDS) EMIT FINAL;
VPQ
"$vpq" run ended.vpq --brokers "$bootstrap" 2>run2.err &
pid=$!
sleep 5 # hist read to its end, live idle with no row: nothing closes
[ -s totals.jsonl ] && fail "windows closed before live had a row: $(cat totals.jsonl)"
produce live 21 25 40
wait_for totals.jsonl '{"start":1700000000000,"n":5,"total":50}
{"start":1700000010000,"n":5,"total":50}
{"start":1700000020000,"n":2,"total":3}'
kill -INT $pid
wait $pid || fail "the second run exited $?"
grep -q " 0 late," run2.err || fail "rows were late: $(grep 'rows in' run2.err)"
echo "an input with no message stopped holding back a union once idle, through a join too; an ended file and an idle topic did not end the union"
