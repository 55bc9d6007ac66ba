#!/usr/bin/env bash
# test_repartition_join.sh VPQ — scaling out joins with repartitioning. Two `vpq run` processes
# of one file (one consumer group per topic) read two 4-partition topics: telemetry keyed by
# device and meter readings keyed by meter. Both are joined on site, which is neither message
# key, within 10 seconds: an inner join and a LEFT JOIN. Each join moves both its sides into
# one internal topic keyed by site, whose partition i holds both sides' rows of the same
# sites and is read by one member, so every pair is made once, on one member. The meter
# readings are also joined to a table of sites read from a third topic (a stream–table join:
# the table's changes go into the join's topic too).
#
# kcat produces the input once both members hold their partitions of every group (the three
# source topics and the three joins' internal topics): the sites first (one site twice: its
# last row counts), then the readings; kafka-python reads the three output topics. The union
# of both members' output must be, row by row, what a Python script computes from the input:
# every pair within the bound once, (LEFT JOIN) every telemetry row without a pair once with
# NULLs, and every reading of a site in the table once with the site's capacity. Each member
# must have read only part of the input and written part of the output, and no row may be late.
set -uo pipefail
vpq=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic telemetry:4 --topic meters:4 --topic sites:4 --topic joined:2 --topic left_joined:2 \
  --topic capacity:2
cd "$work" || exit 1
# SIGKILL: a member stopped while its cluster goes away can hang in librdkafka's group leave.
trap 'kill -9 $broker_pid $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT

cat >joins.vpq <<'VPQ'
CREATE STREAM telemetry (device_id STRING KEY, site STRING, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'telemetry', timestamp = 'ts', idle_timeout = 4 SECONDS,
        'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
CREATE STREAM meters (meter_id STRING KEY, site STRING, ts TIMESTAMP, load_kw DOUBLE)
  WITH (connector = 'kafka', topic = 'meters', timestamp = 'ts', idle_timeout = 4 SECONDS,
        'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
CREATE TABLE sites (site STRING PRIMARY KEY, capacity_kw DOUBLE)
  WITH (connector = 'kafka', topic = 'sites', idle_timeout = 4 SECONDS,
        'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
CREATE STREAM joined WITH (connector = 'kafka', topic = 'joined') AS
  SELECT t.device_id, t.site, t.ts AS device_ts, t.kw, m.meter_id, m.ts AS meter_ts, m.load_kw
  FROM telemetry t JOIN meters m WITHIN 10 SECONDS ON t.site = m.site;
CREATE STREAM left_joined WITH (connector = 'kafka', topic = 'left_joined') AS
  SELECT t.device_id, t.site, t.ts AS device_ts, t.kw, m.meter_id, m.ts AS meter_ts, m.load_kw
  FROM telemetry t LEFT JOIN meters m WITHIN 10 SECONDS ON t.site = m.site;
CREATE STREAM capacity WITH (connector = 'kafka', topic = 'capacity') AS
  SELECT m.meter_id, m.ts, m.load_kw, s.site, s.capacity_kw FROM meters m JOIN sites s ON m.site = s.site;
VPQ

# 1,200 readings of 24 devices and 240 of 12 meters over 4 minutes, in time order, at 6 sites
# (s0..s5 hash to partitions 0, 1 and 3 of the internal topics: both members join). Devices
# move between sites; meters stay. Every 40 seconds one site has no meter reading at all, so
# the LEFT JOIN has rows without a pair.
/usr/bin/python3 - <<'PY'
import random
random.seed(11)
start = 1700000040000
tel, met = [], []
for i in range(1200):
    d = random.randrange(24)
    ts = start + i * 200 + random.randrange(0, 200)
    tel.append((ts, 'd%d|{"device_id":"d%d","site":"s%d","ts":%d,"kw":%d.0}' % (d, d, (d + i // 300) % 6, ts, random.randrange(-5, 6))))
for i in range(240):
    m = random.randrange(12)
    ts = start + i * 1000 + random.randrange(0, 1000)
    site = m % 6
    if site == (ts - start) // 40000 % 6:
        continue
    met.append((ts, 'm%d|{"meter_id":"m%d","site":"s%d","ts":%d,"load_kw":%d.0}' % (m, m, site, ts, random.randrange(0, 50))))
with open("telemetry.txt", "w") as f:
    f.writelines(line + "\n" for _, line in sorted(tel))
with open("meters.txt", "w") as f:
    f.writelines(line + "\n" for _, line in sorted(met))
# Sites s0..s4 (s5 has none: its readings have no match); s0 changes before the readings start.
with open("sites.txt", "w") as f:
    f.write('s0|{"site":"s0","capacity_kw":100.0}\n')
    f.writelines('s%d|{"site":"s%d","capacity_kw":%d.0}\n' % (s, s, 150 + 10 * s) for s in range(5))
PY

fail() { echo "FAIL: $*"; for f in a.err b.err; do [ -f $f ] && { echo "--- $f"; grep -v '^%' $f; }; done; exit 1; }

# settled FILE TOPIC...: the member's latest assignment of each topic has two partitions.
settled() {
  local file=$1
  shift
  for topic in "$@"; do
    grep "of \`$topic\`" "$file" 2>/dev/null | tail -1 | grep -q "partitions \[[0-9], [0-9]\]" || return 1
  done
}
topics="telemetry meters sites joins.joined.join.repartition joins.left_joined.join.repartition
  joins.capacity.join.repartition"
"$vpq" run joins.vpq --brokers "$bootstrap" 2>a.err &
a=$!
"$vpq" run joins.vpq --brokers "$bootstrap" 2>b.err &
b=$!
for _ in $(seq 240); do
  settled a.err $topics && settled b.err $topics && break
  sleep 0.25
done
settled a.err $topics && settled b.err $topics || fail "the members did not split every group's partitions"
kcat -b "$bootstrap" -P -t sites -K '|' -l sites.txt || fail "kcat could not produce the sites"
sleep 5 # the sites' rows go into the join's topic before the readings' do
kcat -b "$bootstrap" -P -t meters -K '|' -l meters.txt || fail "kcat could not produce the meter readings"
kcat -b "$bootstrap" -P -t telemetry -K '|' -l telemetry.txt || fail "kcat could not produce the telemetry"

# The rows both joins must write, computed from the input, into expected.json.
/usr/bin/python3 - <<'PY' || fail "computing the expected rows"
import json
tel = [json.loads(l.split("|", 1)[1]) for l in open("telemetry.txt")]
met = [json.loads(l.split("|", 1)[1]) for l in open("meters.txt")]
sites = {}
for line in open("sites.txt"):
    row = json.loads(line.split("|", 1)[1])
    sites[row["site"]] = row["capacity_kw"]
capacity = [(m["meter_id"], m["ts"], m["load_kw"], m["site"], sites[m["site"]]) for m in met if m["site"] in sites]
inner, left = [], []
for t in tel:
    pairs = [(t["device_id"], t["site"], t["ts"], t["kw"], m["meter_id"], m["ts"], m["load_kw"])
             for m in met if m["site"] == t["site"] and abs(m["ts"] - t["ts"]) <= 10000]
    inner += pairs
    left += pairs or [(t["device_id"], t["site"], t["ts"], t["kw"], None, None, None)]
json.dump({"joined": inner, "left_joined": left, "capacity": capacity}, open("expected.json", "w"))
unmatched = sum(1 for row in left if row[4] is None)
assert unmatched > 0 and len(inner) > 1000, (unmatched, len(inner))
assert 0 < len(capacity) < len(met), (len(capacity), len(met))
print("expected: %d pairs; the LEFT JOIN adds %d rows without a pair; %d readings of sites in the table"
      % (len(inner), unmatched, len(capacity)))
PY

count() { # count TOPIC: messages in the topic (2 partitions)
  /usr/bin/python3 - "$bootstrap" "$1" <<'PY'
import sys
from kafka import KafkaConsumer, TopicPartition
c = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
print(sum(c.end_offsets([TopicPartition(sys.argv[2], p) for p in range(2)]).values()))
PY
}
want_inner=$(/usr/bin/python3 -c 'import json; print(len(json.load(open("expected.json"))["joined"]))')
want_left=$(/usr/bin/python3 -c 'import json; print(len(json.load(open("expected.json"))["left_joined"]))')
want_capacity=$(/usr/bin/python3 -c 'import json; print(len(json.load(open("expected.json"))["capacity"]))')
# The last rows without a pair come out once the input has been idle for idle_timeout.
for _ in $(seq 120); do
  [ "$(count joined)" -ge "$want_inner" ] && [ "$(count left_joined)" -ge "$want_left" ] &&
    [ "$(count capacity)" -ge "$want_capacity" ] && break
  sleep 1
done
sleep 2 # anything written twice would arrive by now
for t in joined left_joined capacity; do
  /usr/bin/python3 "$here/read_topic.py" "$bootstrap" $t 2 $t.jsonl || fail "reading $t"
done
/usr/bin/python3 - <<'PY' || fail "the union of both members' output is not the expected rows"
import collections, json
expected = json.load(open("expected.json"))
columns = {"joined": ("device_id", "site", "device_ts", "kw", "meter_id", "meter_ts", "load_kw"),
           "capacity": ("meter_id", "ts", "load_kw", "site", "capacity_kw")}
for topic in ("joined", "left_joined", "capacity"):
    got = []
    for line in open(topic + ".jsonl"):
        v = json.loads(json.loads(line)[2])
        got.append([v.get(c) for c in columns.get(topic, columns["joined"])])
    want = collections.Counter(json.dumps(r) for r in expected[topic])
    have = collections.Counter(json.dumps(r) for r in got)
    missing, extra = want - have, have - want
    assert not missing and not extra, "%s: %d rows missing (e.g. %s), %d extra (e.g. %s)" % (
        topic, sum(missing.values()), list(missing)[:3], sum(extra.values()), list(extra)[:3])
    print("%s: %d rows, each expected row once" % (topic, len(got)))
PY
stop_members $a $b
counts=$(member_counts a.err b.err) || fail "a member's log has no summary line"
/usr/bin/python3 - "$counts" <<'PY' || fail "the members' counts"
import sys
counts = [list(map(int, line.split())) for line in sys.argv[1].splitlines()]
assert all(late == 0 and malformed == 0 for _, _, late, malformed in counts), counts
rows, out = [c[0] for c in counts], [c[1] for c in counts]
total = sum(sum(1 for _ in open(f)) for f in ("telemetry.txt", "meters.txt", "sites.txt"))
assert all(0 < r < total for r in rows) and sum(rows) >= total, (rows, total)
assert all(o > 0 for o in out), out
print("members read %d and %d of the %d rows, wrote %d and %d rows" % (rows[0], rows[1], total, out[0], out[1]))
PY
echo "two members joined streams keyed by device and by meter on site, and a table of sites: every row once"
