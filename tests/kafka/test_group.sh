#!/usr/bin/env bash
# test_group.sh VPQ — scale-out through a consumer group, with a kill -9. Two `vpq run`
# processes of the same file (the same default group) read a 4-partition topic that kcat fills
# with 400 keyed readings, and write the readings above zero to an output topic. Both must get
# partitions (each reads fewer than all rows). Then one is killed with SIGKILL, 400 more
# readings arrive, and the survivor takes over the dead one's partitions after the session
# timeout. Read back with kafka-python: every positive reading is in the output at least once
# (none lost). Durability is not built yet, so rows the killed process read after its last
# committed offset may appear twice; the test counts and reports them.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic readings:4 --topic positive:1
cd "$work" || exit 1
cat >scale.vpq <<'VPQ'
CREATE STREAM readings (device_id STRING KEY, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'readings', format = 'json', timestamp = 'ts',
        'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
CREATE STREAM positive WITH (connector = 'kafka', topic = 'positive') AS
  SELECT device_id, ts, kw FROM readings WHERE kw > 0;
VPQ
produce() { # produce FROM TO: readings FROM..TO-1, keyed d0..d15, every third one negative
  /usr/bin/python3 -c '
import sys
for i in range(int(sys.argv[1]), int(sys.argv[2])):
    kw = -1.0 if i % 3 == 0 else float(i)
    print("d%d|{\"device_id\":\"d%d\",\"ts\":%d,\"kw\":%s}" % (i % 16, i % 16, 1000 * i, kw))' "$1" "$2" >batch.txt
  kcat -b "$bootstrap" -P -t readings -K '|' -l batch.txt || { echo "kcat could not produce"; exit 1; }
}
"$vpq" run scale.vpq --brokers "$bootstrap" 2>a.err & a=$!
"$vpq" run scale.vpq --brokers "$bootstrap" 2>b.err & b=$!
trap 'kill $a $b $broker_pid 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT
sleep 8 # the mock cluster's first group join takes 3 s, the second member's rebalance more
produce 0 400
count_output() { read_topic positive 1 | wc -l; }
for _ in $(seq 60); do [ "$(count_output)" -ge 266 ] && break; sleep 0.5; done
kill -9 $a
wait $a 2>/dev/null
produce 400 800
for _ in $(seq 80); do [ "$(count_output)" -ge 533 ] && break; sleep 0.5; done
kill -INT $b
wait $b
read_topic positive 1 >out.txt
/usr/bin/python3 - <<'PY' || { echo "--- a.err"; grep -v '^%' a.err; echo "--- b.err"; grep -v '^%' b.err; exit 1; }
import ast, json, re
rows = [json.loads(ast.literal_eval(line)[1]) for line in open("out.txt")]
got = {}
for r in rows:
    got[r["ts"]] = got.get(r["ts"], 0) + 1
want = {1000 * i for i in range(800) if i % 3 != 0}
lost = sorted(want - set(got))
extra = sorted(set(got) - want)
assert not lost, f"lost {len(lost)} readings, e.g. {lost[:5]}"
assert not extra, f"unexpected rows {extra[:5]}"
twice = sum(n - 1 for n in got.values())
stats = open("b.err").read()
m = re.search(r"vpq: (\d+) rows in", stats)
assert m, stats
b_rows = int(m.group(1))
assert b_rows < 800 + 400, f"the survivor read {b_rows} rows"
print(f"ok: {len(want)} positive readings, none lost, {twice} written twice (read after the killed process's last commit); survivor read {b_rows} of 800 rows")
PY
