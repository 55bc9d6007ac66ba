#!/usr/bin/env bash
# test_group_rebalance.sh VPQ — windows of a plain group-read source while its group changes.
# `vpq run` of one file read a 4-partition topic of telemetry keyed by device and count and sum
# 1-minute windows per device: GROUP BY the source's KEY, so no repartition step; each member
# aggregates the partitions the group gives it. Two members start; once minutes 0 and 1 are
# written and minute 2 is half full, a third joins and takes a partition from one of them
# (which keeps running). Later, while minute 4 is half full, the member with two partitions
# leaves cleanly (SIGTERM) and the group moves a partition between the two that stay. A member
# that loses a partition must drop that partition's open windows unwritten; the member that gets
# it reads it again from the committed offset and must rebuild those windows whole, but not
# write again the windows the old owner wrote (it starts the partition at the watermark
# committed with the offset). The union of the members' output, read by kafka-python, must hold
# every window of the input exactly once with its exact count and sum.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic telemetry:4 --topic per_device:2
cd "$work" || exit 1
trap 'kill -9 $broker_pid $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT
fail() { echo "FAIL: $*"; for f in m*.err; do echo "--- $f"; grep -v '^%' "$f"; done; exit 1; }
cat >grp.vpq <<'VPQ'
CREATE STREAM telemetry (device_id STRING KEY, site STRING, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'telemetry', timestamp = 'ts', idle_timeout = 40 SECONDS,
        'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
CREATE STREAM per_device WITH (connector = 'kafka', topic = 'per_device') AS
  SELECT device_id, WINDOW_START AS minute, count(*) AS n, sum(kw) AS kw
  FROM telemetry WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY device_id EMIT FINAL;
VPQ

# check_devices [MINUTES] — `per_device` holds every 1-minute window per device of in.jsonl
# once, with its exact count and sum (devices `end*` not looked at); with MINUTES, only the
# windows starting in the first MINUTES minutes, and other rows are allowed.
check_devices() {
  /usr/bin/python3 - "$bootstrap" "${1:-}" <<'PY'
import collections, json, sys
from kafka import KafkaConsumer, TopicPartition
upto = 1700000040000 // 60000 * 60000 + int(sys.argv[2]) * 60000 if sys.argv[2] else None
want = collections.defaultdict(lambda: [0, 0.0])
for line in open("in.jsonl"):
    row = json.loads(line)
    w = want[(row["device_id"], row["ts"] // 60000 * 60000)]
    w[0] += 1
    w[1] += row["kw"]
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5), consumer_timeout_ms=3000,
                         auto_offset_reset="earliest", enable_auto_commit=False)
parts = [TopicPartition("per_device", p) for p in range(2)]
consumer.assign(parts)
consumer.seek_to_beginning(*parts)
got = collections.Counter()
for m in consumer:
    row = json.loads(m.value)
    if row["device_id"].startswith("end") or (upto is not None and row["minute"] >= upto):
        continue
    got[(row["device_id"], row["minute"], row["n"], row["kw"])] += 1
expected = collections.Counter((d, minute, n, kw) for (d, minute), (n, kw) in want.items()
                               if upto is None or minute < upto)
missing, extra = expected - got, got - expected
if missing or extra:
    partial = sum(n for (d, minute, c, kw), n in extra.items() if want[(d, minute)] != [c, kw])
    print("%d windows expected, %d rows written: %d missing, %d extra (%d a window written again whole, "
          "%d a window written partial)" % (len(expected), sum(got.values()), sum(missing.values()),
                                            sum(extra.values()), sum(extra.values()) - partial, partial))
    for row in sorted(missing):
        print("missing:", row)
    for row in sorted(extra):
        print("extra:  ", row, "x%d" % extra[row])
    sys.exit(1)
print("every one of the %d windows written once, exact" % len(expected))
PY
}

for m in 1 2; do
  "$vpq" run grp.vpq --brokers "$bootstrap" 2>m$m.err &
  eval "pid$m=$!"
done
for _ in $(seq 240); do
  [ "$(sizes telemetry m1.err m2.err)" = "2 2 " ] && break
  sleep 0.25
done
[ "$(sizes telemetry m1.err m2.err)" = "2 2 " ] || fail "the two members did not split the topic"

# Minutes 0 and 1 close and are written; minute 2 ([120 s, 180 s)) is half full.
produce_telemetry 0 150 || fail "producing the first part"
for _ in $(seq 120); do
  check_devices 2 >check.txt && break
  sleep 0.25
done
check_devices 2 >check.txt || { cat check.txt; fail "minutes 0 and 1 were not written before the third member"; }

# A third member joins: one of the two loses a partition while minute 2 is open.
declare -A before
for m in 1 2; do before[$m]=$(assignment m$m.err telemetry); done
"$vpq" run grp.vpq --brokers "$bootstrap" 2>m3.err &
pid3=$!
for _ in $(seq 240); do
  [ "$(sizes telemetry m1.err m2.err m3.err)" = "1 1 2 " ] && break
  sleep 0.25
done
[ "$(sizes telemetry m1.err m2.err m3.err)" = "1 1 2 " ] || fail "the third member got no partition"
echo "join: member 3 reads partitions [$(assignment m3.err telemetry)]; members 1 and 2 had [${before[1]}] and [${before[2]}], now [$(assignment m1.err telemetry)] and [$(assignment m2.err telemetry)]"

# Minutes 2 and 3 close; minute 4 ([240 s, 300 s)) is half full when a member leaves.
produce_telemetry 150 270 || fail "producing the second part"
sleep 3
leaver=
for m in 1 2 3; do
  [ "$(sizes telemetry m$m.err)" = "2 " ] && leaver=$m
done
stayers=$(for m in 1 2 3; do [ $m != "$leaver" ] && echo $m; done)
for m in $stayers; do before[$m]=$(assignment m$m.err telemetry); done
eval "kill -TERM \$pid$leaver"
eval "wait \$pid$leaver"
rc=$?
[ $rc = 0 ] || fail "the member that left exited $rc"
stayer_logs=$(for m in $stayers; do echo m$m.err; done)
for _ in $(seq 120); do
  [ "$(sizes telemetry $stayer_logs)" = "2 2 " ] && break
  sleep 0.25
done
# shellcheck disable=SC2086
[ "$(sizes telemetry $stayer_logs)" = "2 2 " ] || fail "the two members did not take the partitions over"
lost=
for m in $stayers; do
  for p in $(echo "${before[$m]}" | tr ',' ' '); do
    echo " $(assignment m$m.err telemetry | tr ',' ' ') " | grep -q " $p " || lost="$lost member $m lost partition $p;"
  done
done
[ -n "$lost" ] || fail "no member that stays lost a partition (nothing to test)"
echo "leave: member $leaver left;$lost"

# The rest of the input, then a row in every partition far ahead, which closes every window.
produce_telemetry 270 400 || fail "producing the third part"
produce_end || fail "producing the last rows"
ok=
for _ in $(seq 30); do
  sleep 2
  check_devices >check.txt && { ok=1; break; }
  grep -q '^extra' check.txt && break # a window written twice stays so
done
cat check.txt
for m in $stayers; do eval "kill -INT \$pid$m"; done
for m in $stayers; do
  eval "wait \$pid$m"
  rc=$?
  [ $rc = 0 ] || fail "member $m exited $rc after SIGINT"
done
for m in 1 2 3; do
  echo "member $m: $(grep -o '^vpq: [0-9]* rows in, [0-9]* rows out, [0-9]* late' m$m.err)"
done
[ -n "$ok" ] || fail "the union of the members' output is not every window once"
check_devices >check.txt || { cat check.txt; fail "rows written after the windows were complete"; }
# The rows the third member read again of windows already written were counted late there.
late=$(sed -n 's/^vpq: [0-9]* rows in, [0-9]* rows out, \([0-9]*\) late.*/\1/p' m3.err)
[ -n "$late" ] && [ "$late" -gt 0 ] || fail "the third member counted no late row (late: '$late')"
