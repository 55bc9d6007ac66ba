#!/usr/bin/env bash
# test_repartition_schedule.sh VPQ — scaling out SCHEDULE. Two `vpq run` processes of one file
# read battery telemetry keyed by device (4 partitions: each member holds the `batteries` rows
# of its devices only) and a load forecast (2 partitions). SCHEDULE must plan the whole fleet
# at once, so both inputs move, under one key, into one internal topic
# (`sched.dispatch.repartition`) read by one member: that member plans every issue for every
# battery, the other writes nothing. kcat produces the telemetry, then the forecast's issues;
# kafka-python reads the dispatch topic back. It must hold, row by row, what one process
# writes from the same input read from files (the same plans: every battery's setpoint and
# soc at every step of every issue, the planned peak); with `--set repartition=off` each member
# would plan with half the fleet.
set -uo pipefail
vpq=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic telemetry:4 --topic forecast:2 --topic dispatch:2
cd "$work" || exit 1
# SIGKILL: a member stopped while its cluster goes away can hang in librdkafka's group leave.
trap 'kill -9 $broker_pid $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT

query() { # query SOURCE_OPTIONS SINK_OPTIONS (for telemetry and forecast, for dispatch)
  cat <<VPQ
CREATE STREAM telemetry (device_id STRING KEY, ts TIMESTAMP, soc DOUBLE, capacity_kwh DOUBLE, max_kw DOUBLE,
                         efficiency DOUBLE)
  WITH ($(printf "$1" telemetry), timestamp = 'ts');
CREATE TABLE batteries AS
  SELECT device_id, last(soc) AS soc, last(capacity_kwh) AS capacity_kwh, last(max_kw) AS max_kw,
         last(efficiency) AS efficiency
  FROM telemetry GROUP BY device_id;
CREATE STREAM forecast (issued_at TIMESTAMP, ts TIMESTAMP, value DOUBLE)
  WITH ($(printf "$1" forecast), timestamp = 'issued_at');
CREATE STREAM dispatch WITH ($2) AS
  SCHEDULE batteries FOR forecast
  MINIMIZE PEAK
  SUBJECT TO soc >= 0.1, soc <= 0.9
  HORIZON 6 HOURS STEP 1 HOUR
  EMIT PLAN;
VPQ
}
query "connector = 'kafka', topic = '%s', idle_timeout = 4 SECONDS, 'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500'" \
  "connector = 'kafka', topic = 'dispatch'" >sched.vpq
query "connector = 'file', path = '%s.jsonl'" "connector = 'file', path = 'expected.jsonl'" >one.vpq

# 16 batteries of different sizes, powers and efficiencies (two report twice: the later row
# counts), then 3 issues of a 6-hour forecast with an evening peak, an hour apart.
/usr/bin/python3 - <<'PY'
import json, random
random.seed(5)
start = 1700000000000
with open("telemetry.txt", "w") as txt, open("telemetry.jsonl", "w") as jsonl:
    rows = []
    for d in range(16):
        rows.append({"device_id": "b%d" % d, "ts": start - 120000 + d * 1000, "soc": round(random.uniform(0.3, 0.9), 3),
                     "capacity_kwh": float(random.choice([10, 13.5, 20, 50])), "max_kw": float(random.choice([5, 7, 25])),
                     "efficiency": random.choice([0.9, 0.95, 1.0])})
    for d in (3, 11):
        rows.append(dict(rows[d], ts=start - 30000, soc=0.5))
    for row in rows:
        txt.write("%s|%s\n" % (row["device_id"], json.dumps(row)))
        jsonl.write(json.dumps(row) + "\n")
with open("forecast.txt", "w") as txt, open("forecast.jsonl", "w") as jsonl:
    for issue in range(3):
        issued = start + issue * 3600000
        for step in range(6):
            hour = issue + step
            row = {"issued_at": issued, "ts": issued + step * 3600000, "value": 300.0 + 60 * hour - 12 * hour * hour}
            txt.write("f|%s\n" % json.dumps(row))
            jsonl.write(json.dumps(row) + "\n")
PY
"$vpq" run one.vpq 2>one.err || { cat one.err; exit 1; }
want=$(wc -l <expected.jsonl)
[ "$want" = $((3 * 6 * 16)) ] || { echo "one process wrote $want rows, not 288"; cat one.err; exit 1; }

fail() { echo "FAIL: $*"; for f in a.err b.err; do [ -f $f ] && { echo "--- $f"; grep -v '^%' $f; }; done; exit 1; }
# assigned FILE TOPIC: the member got its partitions of the topic.
assigned() { grep -q "of \`$2\`" "$1" 2>/dev/null; }
"$vpq" run sched.vpq --brokers "$bootstrap" 2>a.err &
a=$!
"$vpq" run sched.vpq --brokers "$bootstrap" 2>b.err &
b=$!
for _ in $(seq 240); do
  [ "$(sizes telemetry a.err b.err)" = "2 2 " ] && assigned a.err sched.dispatch.repartition &&
    assigned b.err sched.dispatch.repartition && break
  sleep 0.25
done
[ "$(sizes telemetry a.err b.err)" = "2 2 " ] || fail "the members did not split the telemetry's partitions"
kcat -b "$bootstrap" -P -t telemetry -K '|' -l telemetry.txt || fail "kcat could not produce the telemetry"
sleep 5 # the fleet reaches the planning member before the first issue
kcat -b "$bootstrap" -P -t forecast -K '|' -l forecast.txt || fail "kcat could not produce the forecast"

# The last issue is planned once the forecast has been idle for idle_timeout.
for _ in $(seq 90); do
  n=$(/usr/bin/python3 "$here/read_topic.py" "$bootstrap" dispatch 2 dispatch.jsonl >/dev/null 2>&1 && wc -l <dispatch.jsonl)
  [ "${n:-0}" -ge "$want" ] && break
  sleep 1
done
sleep 2 # anything written twice would arrive by now
/usr/bin/python3 "$here/read_topic.py" "$bootstrap" dispatch 2 dispatch.jsonl || fail "reading dispatch"
/usr/bin/python3 - <<'PY' || fail "the union of both members' dispatch is not one process's"
import collections, json
columns = ("issued_at", "ts", "device_id", "setpoint_kw", "soc", "planned_peak_kw")
want = collections.Counter(json.dumps([json.loads(l)[c] for c in columns]) for l in open("expected.jsonl"))
have = collections.Counter(json.dumps([json.loads(json.loads(l)[2])[c] for c in columns]) for l in open("dispatch.jsonl"))
missing, extra = want - have, have - want
assert not missing and not extra, "%d rows missing (e.g. %s), %d extra (e.g. %s)" % (
    sum(missing.values()), sorted(missing)[:3], sum(extra.values()), sorted(extra)[:3])
print("dispatch: %d rows, each of one process's once" % sum(have.values()))
PY
stop_members $a $b
counts=$(member_counts a.err b.err) || fail "a member's log has no summary line"
/usr/bin/python3 - "$counts" "$want" <<'PY' || fail "the members' counts"
import sys
counts = [list(map(int, line.split())) for line in sys.argv[1].splitlines()]
assert all(late == 0 and malformed == 0 for _, _, late, malformed in counts), counts
rows, out = [c[0] for c in counts], [c[1] for c in counts]
assert all(r > 0 for r in rows), rows
assert sorted(out) == [0, int(sys.argv[2])], "one member writes every plan: %s" % out
print("members read %d and %d rows, wrote %d and %d" % (rows[0], rows[1], out[0], out[1]))
PY
echo "two members, each holding half the fleet: one plans the whole fleet, every plan as in one process"
