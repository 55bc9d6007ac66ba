#!/usr/bin/env bash
# test_repartition.sh VPQ — scaling out with repartitioning. Two `vpq run` processes of one
# file (one consumer group) read a 4-partition topic of battery telemetry keyed by device, and
# aggregate by site, which is not the message key: 1-minute windows per site (repartitioned
# by site), a table of the last row per device (kept where it is read), and two tables over it
# with retractions: per site (repartitioned by site, upserts by device) and a ROLLUP (region,
# site) (repartitioned to one key). Devices move between sites while the input runs, so rows
# are retracted from one site and added to another across partitions and members.
#
# kcat produces the input once both members hold their partitions of every group (the source
# topic and the three internal topics); kafka-python reads the three output topics. The union
# of both members' output must be exactly what repartition_check.py computes from the input:
# every window once with its exact count and sum, and the tables' last rows per key exact.
# Each member must have read only part of the input, and no row may be late. Then one row
# arrives for a window closed long ago: it is counted late once, by the member that owns its
# site, and dead-lettered with its origin in the source topic.
#
# Then `--set repartition=off` on one member: the plan has no repartition step and no internal
# topic is created; one member reading every partition computes the same results as before.
set -uo pipefail
vpq=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic telemetry:4 --topic per_site:2 --topic site_soc:2 --topic fleet:2 --topic dead:1 \
  --topic off.telemetry:4 --topic off.per_site:2 --topic off.site_soc:2 --topic off.fleet:2
cd "$work" || exit 1
# SIGKILL: a member stopped while its cluster goes away can hang in librdkafka's group leave.
trap 'kill -9 $broker_pid $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT

# query PREFIX IDLE: the file, its topics named PREFIX<topic>.
query() {
  cat <<VPQ
CREATE STREAM telemetry (device_id STRING KEY, region STRING, site STRING, ts TIMESTAMP, kw DOUBLE, soc DOUBLE)
  WITH (connector = 'kafka', topic = '$1telemetry', timestamp = 'ts', idle_timeout = $2, dead_letter = '$1dead',
        'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
CREATE STREAM per_site WITH (connector = 'kafka', topic = '$1per_site') AS
  SELECT site, WINDOW_START AS minute, count(*) AS n, sum(kw) AS kw
  FROM telemetry WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY site EMIT FINAL;
CREATE TABLE batteries AS
  SELECT device_id, last(region) AS region, last(site) AS site, last(soc) AS soc FROM telemetry GROUP BY device_id;
CREATE TABLE site_soc WITH (connector = 'kafka', topic = '$1site_soc') AS
  SELECT site, count(*) AS batteries, sum(soc) AS soc FROM batteries GROUP BY site;
CREATE TABLE fleet WITH (connector = 'kafka', topic = '$1fleet') AS
  SELECT region, site, count(*) AS batteries, sum(soc) AS soc FROM batteries GROUP BY ROLLUP (region, site);
VPQ
}
query "" "4 SECONDS" >sites.vpq
query "off." "3 SECONDS" >off.vpq

# 6,000 readings of 48 devices over 5 minutes; every 2,000 readings each device moves to the
# next of 6 sites (which hash to 3 of the exchanges' 4 partitions: both members write). kw are
# integers and soc multiples of 1/64, so every sum is exact in any order.
/usr/bin/python3 - <<'PY' >in.txt
import random
random.seed(7)
ts = 1700000040000
for i in range(6000):
    d = random.randrange(48)
    site = (d + i // 2000) % 6
    ts += random.randrange(0, 100)
    print('d%d|{"device_id":"d%d","region":"r%d","site":"s%d","ts":%d,"kw":%d.0,"soc":%s}'
          % (d, d, site % 2, site, ts, random.randrange(-5, 6), random.randrange(0, 65) / 64))
PY
windows=$(/usr/bin/python3 -c '
import json, sys
print(len({(json.loads(l.split("|", 1)[1])["site"], json.loads(l.split("|", 1)[1])["ts"] // 60000) for l in open("in.txt")}))')

fail() { echo "FAIL: $*"; for f in a.err b.err off.err; do [ -f $f ] && { echo "--- $f"; grep -v '^%' $f; }; done; exit 1; }

# settled FILE TOPIC...: the member's latest assignment of each topic has two partitions.
settled() {
  local file=$1
  shift
  for topic in "$@"; do
    grep "of \`$topic\`" "$file" 2>/dev/null | tail -1 | grep -q "partitions \[[0-9], [0-9]\]" || return 1
  done
}
topics="telemetry sites.per_site.repartition sites.site_soc.repartition sites.fleet.repartition"
"$vpq" run sites.vpq --brokers "$bootstrap" 2>a.err &
a=$!
"$vpq" run sites.vpq --brokers "$bootstrap" 2>b.err &
b=$!
for _ in $(seq 240); do
  settled a.err $topics && settled b.err $topics && break
  sleep 0.25
done
settled a.err $topics && settled b.err $topics || fail "the members did not split every group's partitions"
# Longer than idle_timeout (4 s) before the input starts: writers without rows yet are waited
# for from each partition's first row on, not from their start.
sleep 5
kcat -b "$bootstrap" -P -t telemetry -K '|' -l in.txt || fail "kcat could not produce"

count() { # count TOPIC: messages in the topic (2 partitions)
  /usr/bin/python3 - "$bootstrap" "$1" <<'PY'
import sys
from kafka import KafkaConsumer, TopicPartition
c = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
print(sum(c.end_offsets([TopicPartition(sys.argv[2], p) for p in range(2)]).values()))
PY
}
# The last windows close once the input has been idle for idle_timeout.
for _ in $(seq 120); do
  [ "$(count per_site)" -ge "$windows" ] && break
  sleep 1
done
read_all() { # read_all PREFIX DIR: the three output topics PREFIX<topic> into DIR/<topic>.jsonl
  mkdir -p "$2"
  for t in per_site site_soc fleet; do
    /usr/bin/python3 "$here/read_topic.py" "$bootstrap" "$1$t" 2 "$2/$t.jsonl" || return 1
  done
}
# The tables change with every row: wait until their last rows are the final state.
ok=
for _ in $(seq 30); do
  read_all "" out && /usr/bin/python3 "$here/repartition_check.py" in.txt out exact >check.txt && { ok=1; break; }
  sleep 1
done
[ -n "$ok" ] || { cat check.txt; fail "the union of both members' output is not the expected result"; }
late='d1|{"device_id":"d1","region":"r1","site":"s1","ts":1700000041000,"kw":7.0,"soc":0.5}'
echo "$late" | kcat -b "$bootstrap" -P -t telemetry -K '|' || fail "kcat could not produce"
sleep 3
stop_members $a $b
counts=$(member_counts a.err b.err) || fail "a member's log has no summary line"
/usr/bin/python3 - "$counts" <<'PY' || fail "the members' counts"
import sys
counts = [list(map(int, line.split())) for line in sys.argv[1].splitlines()]
assert all(malformed == 0 for _, _, _, malformed in counts), counts
rows, out, late = [c[0] for c in counts], [c[1] for c in counts], sum(c[2] for c in counts)
assert late == 1, "late rows: %d, not the one" % late
assert all(0 < r < 6001 for r in rows) and sum(rows) >= 6001, rows
assert all(o > 0 for o in out), out
print("members read %d and %d of the 6000 rows, wrote %d and %d rows" % (rows[0], rows[1], out[0], out[1]))
PY
cat check.txt
/usr/bin/python3 "$here/read_topic.py" "$bootstrap" dead 1 dead.jsonl || fail "reading the dead letters"
/usr/bin/python3 - "$bootstrap" "$late" <<'PY' || fail "the late row's dead letter"
import json, sys
from kafka import KafkaConsumer, TopicPartition
letters = [json.loads(json.loads(line)[2]) for line in open("dead.jsonl")]
assert len(letters) == 1 and letters[0]["reason"] == "late", letters
want = json.loads(sys.argv[2].split("|", 1)[1])
assert letters[0]["row"] == want, (letters[0]["row"], want)
# The origin names the row's message in the source topic.
topic, partition, offset = letters[0]["origin"].split("/")
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5), consumer_timeout_ms=10000)
tp = TopicPartition(topic, int(partition))
consumer.assign([tp])
consumer.seek(tp, int(offset))
message = next(iter(consumer))
assert topic == "telemetry" and message.offset == int(offset) and json.loads(message.value) == want, letters[0]
print("the late row: counted once, dead-lettered with its origin %s" % letters[0]["origin"])
PY

# repartition=off: no repartition step, no internal topic; one member still gets it all right.
"$vpq" explain off.vpq --set repartition=off >explain.txt || fail "explain --set repartition=off"
grep -q Repartition explain.txt && fail "explain shows a repartition step with repartition=off"
kcat -b "$bootstrap" -P -t off.telemetry -K '|' -l in.txt || fail "kcat could not produce"
timeout 120 "$vpq" run off.vpq --brokers "$bootstrap" --set repartition=off 2>off.err &
off=$!
ok=
for _ in $(seq 90); do
  sleep 1
  [ "$(count off.per_site)" -ge "$windows" ] || continue
  read_all off. out.off && /usr/bin/python3 "$here/repartition_check.py" in.txt out.off exact >check.txt && { ok=1; break; }
done
kill -INT $off
wait $off
[ -n "$ok" ] || { cat check.txt; fail "one member with repartition=off"; }
kcat -b "$bootstrap" -L | grep -q 'topic "off\..*repartition"' && fail "repartition=off created an internal topic"
echo "repartition=off: no internal topic, one member's output exact"
