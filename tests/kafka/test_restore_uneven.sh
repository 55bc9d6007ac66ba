#!/usr/bin/env bash
# test_restore_uneven.sh VPQ — a restore whose partitions stood far apart loses none of the
# lagging one's rows. Partition 0 holds readings up to 35 s, partition 1 only up to 3 s, when
# `vpq run --state-dir` is killed (SIGKILL, well before idle_timeout); while it is down,
# partition 1 gets readings at 5 and 7 s. A restored member reads no partition until its group
# gives it some (about 3 s on the embedded broker): until then it has nothing to go by, and its
# restored maximum, 35 s, is partition 0's: had the watermark gone there (as it did), the 10 s
# window of k1 closed with 2 rows and the backlog at 5 and 7 s was late. kafka-python reads the
# output: every window once, exact, no row late.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
start_kafka_test "$1" --topic in:2 --topic out:1
cat >uneven.vpq <<'VPQ'
CREATE STREAM s (k STRING KEY, ts TIMESTAMP, x BIGINT)
  WITH (connector = 'kafka', topic = 'in', timestamp = 'ts', idle_timeout = 4 SECONDS,
        'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
CREATE STREAM w WITH (connector = 'kafka', topic = 'out') AS
  SELECT k, WINDOW_START AS ws, count(*) AS n FROM s WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY k EMIT FINAL;
VPQ

# produce PARTITION:SECOND...: a reading of k<partition> at that second, on that partition.
produce() {
  /usr/bin/python3 - "$bootstrap" "$@" <<'PY'
import json, sys
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
for item in sys.argv[2:]:
    p, second = (int(x) for x in item.split(":"))
    row = {"k": "k%d" % p, "ts": 1700000000000 + second * 1000, "x": 1}
    producer.send("in", key=row["k"].encode(), value=json.dumps(row).encode(), partition=p)
producer.flush()
PY
}

produce 0:0 0:5 0:11 0:15 0:25 0:35 1:1 1:3
"$vpq" run uneven.vpq --brokers "$bootstrap" --state-dir state --checkpoint-interval 200ms 2>run1.err &
pid=$!
for _ in $(seq 100); do grep -q "gave this member" run1.err && break; sleep 0.1; done
grep -q "gave this member" run1.err || fail "the first run was given no partitions"
# Its rows are read at once; the second checkpoint after the assignment holds them (the first
# may have begun before), long before idle_timeout.
newest() { ls state/checkpoint-*.vpqc 2>/dev/null | tail -1; }
last=$(newest) taken=0
for _ in $(seq 200); do
  [ "$(newest)" != "$last" ] && last=$(newest) taken=$((taken + 1))
  [ $taken -ge 2 ] && break
  sleep 0.02
done
[ $taken -ge 2 ] || fail "the first run took no checkpoint after its assignment"
kill -9 $pid
wait $pid 2>/dev/null
produce 1:5 1:7
sleep 6 # down for longer than idle_timeout
"$vpq" run uneven.vpq --brokers "$bootstrap" --state-dir state --checkpoint-interval 200ms 2>run2.err &
pid=$!
for _ in $(seq 60); do
  [ "$(read_topic out 1 | wc -l)" -ge 5 ] && break
  sleep 0.5
done
sleep 2 # anything written twice would arrive by now
kill -INT $pid
wait $pid || fail "the resumed run exited $?"
grep -q "resumed from checkpoint" run2.err || fail "the second run did not resume"
grep -q " 0 late" run2.err || fail "the resumed run counted rows late"
got=$(read_topic out 1 | sed 's/, [0-9]*)$/)/')
want="('k0', '{\"k\":\"k0\",\"ws\":1700000000000,\"n\":2}')
('k0', '{\"k\":\"k0\",\"ws\":1700000010000,\"n\":2}')
('k0', '{\"k\":\"k0\",\"ws\":1700000020000,\"n\":1}')
('k0', '{\"k\":\"k0\",\"ws\":1700000030000,\"n\":1}')
('k1', '{\"k\":\"k1\",\"ws\":1700000000000,\"n\":4}')"
[ "$got" = "$want" ] || fail "the windows: got
$got
want
$want"
echo "restore with uneven partitions: every window once and exact, the backlog of the lagging partition not late"
