#!/usr/bin/env bash
# test_repartition_rebalance.sh VPQ — a group that changes while its members keep running.
# Three `vpq run` of one file read a 4-partition topic of telemetry keyed by device and count
# and sum 1-minute windows per site (not the message key: repartitioned by site through
# `rebal.per_site.repartition`, whose 4 partitions the three members split 2/1/1). While a
# window is open, the member that reads two partitions of the internal topic leaves cleanly
# (SIGTERM); the group gives its partitions to the others and moves one more, so a member
# that keeps running loses a partition whose open window it holds part of. That member must
# drop those groups without writing them, and the new owner must rebuild them from the
# internal topic's committed offsets. The union of the members' output, read by kafka-python,
# must hold every window of the input exactly once with its exact count and sum.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic telemetry:4 --topic per_site:2
cd "$work" || exit 1
# SIGKILL: a member stopped while its cluster goes away can hang in librdkafka's group leave.
trap 'kill -9 $broker_pid $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT

# idle_timeout outlasts the pause around the rebalance (the windows must stay open), and ends
# the wait for the member that left well before the test's own time limits.
cat >rebal.vpq <<'VPQ'
CREATE STREAM telemetry (device_id STRING KEY, site STRING, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'telemetry', timestamp = 'ts', idle_timeout = 15 SECONDS,
        'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
CREATE STREAM per_site WITH (connector = 'kafka', topic = 'per_site') AS
  SELECT site, WINDOW_START AS minute, count(*) AS n, sum(kw) AS kw
  FROM telemetry WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY site EMIT FINAL;
VPQ

fail() { echo "FAIL: $*"; for f in m*.err; do echo "--- $f"; grep -v '^%' "$f"; done; exit 1; }

exchange=rebal.per_site.repartition
# assignment FILE TOPIC: the partitions the member's latest assignment of TOPIC gave it.
assignment() { grep "of \`$2\`" "$1" 2>/dev/null | tail -1 | sed 's/.*partitions \[\(.*\)\] of.*/\1/'; }
# sizes TOPIC FILE...: the members' partition counts of TOPIC, sorted ("1 1 2").
sizes() {
  local topic=$1
  shift
  for f in "$@"; do assignment "$f" "$topic" | tr ',' '\n' | grep -c '[0-9]'; done | sort -n | tr '\n' ' '
}

for m in 1 2 3; do
  "$vpq" run rebal.vpq --brokers "$bootstrap" 2>m$m.err &
  eval "pid$m=$!"
done
for _ in $(seq 240); do
  [ "$(sizes $exchange m1.err m2.err m3.err)" = "1 1 2 " ] && [ "$(sizes telemetry m1.err m2.err m3.err)" = "1 1 2 " ] && break
  sleep 0.25
done
[ "$(sizes $exchange m1.err m2.err m3.err)" = "1 1 2 " ] || fail "the three members did not split the internal topic"

# produce FIRST LAST: readings of 32 devices (device d on partition d % 4, keyed by device) on
# 8 sites, one every 50 ms of event time in [FIRST, LAST) seconds after the start; kw are
# integers, so every sum is exact in any order. Also appends them to in.jsonl. The sites are
# two per partition of the internal topic (murmur2 of the name, as vpq and Java clients
# partition): whichever partition moves, it holds open windows.
produce() {
  /usr/bin/python3 - "$bootstrap" "$1" "$2" <<'PY'
import json, random, sys
from kafka import KafkaProducer
bootstrap, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
producer = KafkaProducer(bootstrap_servers=bootstrap, api_version=(2, 5))
random.seed(first)
sites = [0, 4, 1, 2, 16, 18, 5, 8]
with open("in.jsonl", "a") as log:
    for i in range(first * 20, last * 20):
        d = random.randrange(32)
        row = {"device_id": "d%d" % d, "site": "s%d" % random.choice(sites), "ts": 1700000040000 + i * 50,
               "kw": float(random.randrange(-5, 6))}
        value = json.dumps(row)
        producer.send("telemetry", key=row["device_id"].encode(), value=value.encode(), partition=d % 4)
        log.write(value + "\n")
producer.flush()
PY
}
# Minutes 0 and 1 close; minute 2 ([120 s, 180 s)) is half full when the group changes.
produce 0 150 || fail "producing the first part"
sleep 3

# The member with two partitions of the internal topic leaves; the group moves a partition
# between the two that stay.
leaver=
for m in 1 2 3; do
  [ "$(sizes $exchange m$m.err)" = "2 " ] && leaver=$m
done
stayers=$(for m in 1 2 3; do [ $m != "$leaver" ] && echo $m; done)
declare -A before
for m in $stayers; do before[$m]=$(assignment m$m.err $exchange); done
eval "kill -TERM \$pid$leaver"
eval "wait \$pid$leaver"
rc=$?
[ $rc = 0 ] || fail "the member that left exited $rc"
for _ in $(seq 120); do
  [ "$(sizes $exchange $(for m in $stayers; do echo m$m.err; done))" = "2 2 " ] && break
  sleep 0.25
done
[ "$(sizes $exchange $(for m in $stayers; do echo m$m.err; done))" = "2 2 " ] || fail "the two members did not take the partitions over"
lost=
for m in $stayers; do
  for p in $(echo "${before[$m]}" | tr ',' ' '); do
    echo " $(assignment m$m.err $exchange | tr ',' ' ') " | grep -q " $p " || lost="$lost member $m lost partition $p;"
  done
done
[ -n "$lost" ] || fail "no member that stays lost a partition of the internal topic (nothing to test)"
echo "rebalance:$lost"

# The rest of the input, then a row in every partition far ahead, which closes every window of it.
produce 150 300 || fail "producing the second part"
/usr/bin/python3 - "$bootstrap" <<'PY' || fail "producing the last rows"
import json, sys
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
for p in range(4):
    row = {"device_id": "end%d" % p, "site": "end", "ts": 1700000040000 + 1000000, "kw": 0.0}
    producer.send("telemetry", key=row["device_id"].encode(), value=json.dumps(row).encode(), partition=p)
producer.flush()
PY

# check: the union of the members' output is every window of in.jsonl once, exactly (the
# last rows' window closes too once the input has been idle long enough: not looked at).
check() {
  /usr/bin/python3 - "$bootstrap" <<'PY'
import collections, json, sys
from kafka import KafkaConsumer, TopicPartition
want = collections.defaultdict(lambda: [0, 0.0])
for line in open("in.jsonl"):
    row = json.loads(line)
    w = want[(row["site"], row["ts"] // 60000 * 60000)]
    w[0] += 1
    w[1] += row["kw"]
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5), consumer_timeout_ms=3000,
                         auto_offset_reset="earliest", enable_auto_commit=False)
parts = [TopicPartition("per_site", p) for p in range(2)]
consumer.assign(parts)
consumer.seek_to_beginning(*parts)
got = collections.Counter()
for m in consumer:
    row = json.loads(m.value)
    if row["site"] == "end":
        continue
    got[(row["site"], row["minute"], row["n"], row["kw"])] += 1
expected = collections.Counter((site, minute, n, kw) for (site, minute), (n, kw) in want.items())
missing, extra = expected - got, got - expected
if missing or extra:
    print("%d windows expected, %d rows written" % (len(expected), sum(got.values())))
    for row in sorted(missing):
        print("missing:", row)
    for row in sorted(extra):
        print("extra:  ", row, "x%d" % extra[row])
    sys.exit(1)
print("every one of the %d windows written once, exact" % len(expected))
PY
}
ok=
for _ in $(seq 60); do
  sleep 2
  check >check.txt && { ok=1; break; }
done
cat check.txt
for m in $stayers; do eval "kill -INT \$pid$m"; done
for m in $stayers; do
  eval "wait \$pid$m"
  rc=$?
  [ $rc = 0 ] || fail "member $m exited $rc after SIGINT"
done
[ -n "$ok" ] || fail "the union of the members' output is not every window once"
# A last look after both stopped: nothing was written after the check passed.
check >check.txt || { cat check.txt; fail "rows written after the windows were complete"; }
