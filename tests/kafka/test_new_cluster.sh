#!/usr/bin/env bash
# test_new_cluster.sh VPQ — a run resumed from its state folder against a cluster that is not the
# one its checkpoint read (the embedded broker started again: its topics are new and short) stops
# with a clear line, instead of reading nothing: its checkpoint's offsets are past the new
# partitions' ends, and their rows would be taken for ones already read (audit 20: every new
# row was dropped without a count when the run was repartitioned).
set -uo pipefail
vpq=$1
work=$(mktemp -d)
cd "$work" || exit 1
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT
fail() { echo "FAIL: $*"; grep -v '^%' run*.err 2>/dev/null; exit 1; }
cat >q.vpq <<'VPQ'
CREATE STREAM readings (device_id STRING KEY, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'readings', timestamp = 'ts', bounded = true);
CREATE STREAM totals WITH (connector = 'file', path = 'totals.jsonl') AS
  SELECT device_id, WINDOW_START AS start, count(*) AS n FROM readings
  WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY device_id EMIT FINAL;
VPQ
# cluster NAME ROWS — starts an embedded broker with `readings` (1 partition) holding ROWS
# readings (kcat, a client we did not write); sets $bootstrap and $broker.
cluster() {
  "$vpq" broker --topic readings:1 >"$1.out" 2>/dev/null &
  broker=$!
  for _ in $(seq 100); do [ -s "$1.out" ] && break; sleep 0.1; done
  bootstrap=$(head -1 "$1.out")
  /usr/bin/python3 -c "
for i in range($2): print('{\"device_id\":\"d%d\",\"ts\":%d,\"kw\":1.0}' % (i % 2, 1700000000000 + i * 1000))" \
    | kcat -P -b "$bootstrap" -t readings || fail "producing to $1"
}
cluster a 20
"$vpq" run q.vpq --brokers "$bootstrap" --state-dir state 2>run1.err || fail "the first run exited $?"
[ "$(wc -l <totals.jsonl)" -eq 4 ] || fail "the first run wrote $(wc -l <totals.jsonl) windows, not 4"
kill $broker
wait $broker 2>/dev/null
cluster b 5
"$vpq" run q.vpq --brokers "$bootstrap" --state-dir state 2>run2.err
rc=$?
[ $rc = 1 ] || fail "resumed against another cluster, the run exited $rc, not 1"
grep -q "partition 0 of \`readings\` ends at offset 5, but the checkpoint read it up to 20: it is not the topic the checkpoint was taken on" run2.err \
  || fail "no clear line about the checkpoint's offsets"
"$vpq" run q.vpq --brokers "$bootstrap" --state-dir state --reset-state 2>run3.err || fail "--reset-state exited $?"
echo "a checkpoint taken on another cluster was refused with a clear line; --reset-state started over"
