#!/usr/bin/env bash
# test_repartition_crash.sh VPQ — repartitioning survives kill -9. The query of
# test_repartition.sh (windows per site, tables per site and ROLLUP over the last row per
# device, input keyed by device) runs twice over the same 6,000 readings, read back with
# kafka-python and checked by repartition_check.py against what the input alone gives:
#
# 1. Two members without --state-dir; one is killed with SIGKILL after the first half of the
#    input, while it owns partitions of the source and of the internal topics and holds open
#    windows; the second half is produced after the kill. The survivor takes the dead member's
#    partitions over after the session timeout (reading the internal topics from the dead
#    member's commits, its source partitions again from their start as tables need). Nothing
#    may be lost or wrong: every window is there with its exact count and sum, the tables'
#    final rows are exact. What may repeat: a window the dead member wrote after its last
#    commit is written again (the test prints how many).
# 2. One member with --state-dir, killed with SIGKILL twice at random moments after a
#    checkpoint and restarted (the second half of the input produced after the first kill):
#    exactly-once, so every window is there exactly once, through the internal topics too.
set -uo pipefail
vpq=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic telemetry:4 --topic per_site:2 --topic site_soc:2 --topic fleet:2 \
  --topic eo.telemetry:4 --topic eo.per_site:2 --topic eo.site_soc:2 --topic eo.fleet:2
cd "$work" || exit 1
# SIGKILL: a member stopped while its cluster goes away can hang in librdkafka's group leave.
trap 'kill -9 $broker_pid $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT

# query PREFIX: the file, its topics named PREFIX<topic>.
query() {
  cat <<VPQ
CREATE STREAM telemetry (device_id STRING KEY, region STRING, site STRING, ts TIMESTAMP, kw DOUBLE, soc DOUBLE)
  WITH (connector = 'kafka', topic = '$1telemetry', timestamp = 'ts', idle_timeout = 15 SECONDS,
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
query "" >sites.vpq
query "eo." >eo.vpq

/usr/bin/python3 - <<'PY'
import random
random.seed(11)
ts = 1700000040000
rows = []
for i in range(6000):
    d = random.randrange(48)
    site = (d + i // 2000) % 6
    ts += random.randrange(0, 100)
    rows.append('d%d|{"device_id":"d%d","region":"r%d","site":"s%d","ts":%d,"kw":%d.0,"soc":%s}\n'
                % (d, d, site % 2, site, ts, random.randrange(-5, 6), random.randrange(0, 65) / 64))
open("in.txt", "w").writelines(rows)
open("first.txt", "w").writelines(rows[:3000])
open("second.txt", "w").writelines(rows[3000:])
PY
windows=$(/usr/bin/python3 -c '
import json
print(len({(json.loads(l.split("|", 1)[1])["site"], json.loads(l.split("|", 1)[1])["ts"] // 60000) for l in open("in.txt")}))')

fail() { echo "FAIL: $*"; for f in *.err; do echo "--- $f"; grep -v '^%' "$f"; done; exit 1; }
produce() { kcat -b "$bootstrap" -P -t "$2telemetry" -K '|' -l "$1" || fail "kcat could not produce"; }
count() { # count TOPIC: messages in the topic (2 partitions)
  /usr/bin/python3 - "$bootstrap" "$1" <<'PY'
import sys
from kafka import KafkaConsumer, TopicPartition
c = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
print(sum(c.end_offsets([TopicPartition(sys.argv[2], p) for p in range(2)]).values()))
PY
}
# check PREFIX MODE: reads the output topics and compares them with the input's results.
check() {
  mkdir -p "out$1"
  for t in per_site site_soc fleet; do
    /usr/bin/python3 "$here/read_topic.py" "$bootstrap" "$1$t" 2 "out$1/$t.jsonl" || return 1
  done
  /usr/bin/python3 "$here/repartition_check.py" in.txt "out$1" "$2" >"check$1.txt"
}
# settled FILE COUNT TOPIC...: the member's latest assignment of each topic has COUNT partitions.
settled() {
  local file=$1 n=$2
  shift 2
  for topic in "$@"; do
    grep "of \`$topic\`" "$file" 2>/dev/null | tail -1 | grep -qE "partitions \[[0-9]+(, [0-9]+){$((n - 1))}\]" || return 1
  done
}

# ----- 1. Two members, one killed, no --state-dir -----
topics="telemetry sites.per_site.repartition sites.site_soc.repartition sites.fleet.repartition"
"$vpq" run sites.vpq --brokers "$bootstrap" 2>a.err &
a=$!
"$vpq" run sites.vpq --brokers "$bootstrap" 2>b.err &
b=$!
for _ in $(seq 240); do
  settled a.err 2 $topics && settled b.err 2 $topics && break
  sleep 0.25
done
settled a.err 2 $topics && settled b.err 2 $topics || fail "the members did not split every group's partitions"
produce first.txt ""
# The first half's first windows close (the members exchange rows and watermarks); later
# windows are still open when a member dies.
for _ in $(seq 60); do
  [ "$(count per_site)" -ge 6 ] && break
  sleep 0.5
done
[ "$(count per_site)" -ge 6 ] || fail "no window closed before the kill"
kill -9 $a
wait $a 2>/dev/null
produce second.txt ""
ok=
for _ in $(seq 150); do
  sleep 1
  [ "$(count per_site)" -ge "$windows" ] || continue
  check "" repeats && { ok=1; break; }
done
kill -INT $b
wait $b || fail "the survivor exited $? after SIGINT"
[ -n "$ok" ] || { cat check.txt; fail "after kill -9 of a member without --state-dir"; }
settled b.err 4 $topics || fail "the survivor did not take every partition over"
echo "kill -9 of one of two members: $(cat check.txt)"

# ----- 2. One member with --state-dir, killed twice: exactly once -----
member() { "$vpq" run eo.vpq --brokers "$bootstrap" --state-dir state --checkpoint-interval 300ms 2>>eo.err & }
wait_count() { # wait_count TOPIC N: until the topic holds N messages (false after a minute)
  for _ in $(seq 240); do
    [ "$(count "$1")" -ge "$2" ] && return 0
    sleep 0.25
  done
  return 1
}
produce first.txt eo.
member
m=$!
# Killed once windows have come through the internal topic (others are open), then again
# once the restarted member has resumed and written more of them. (Not sooner: a member
# killed while joining its groups keeps the next one waiting for the group, and the source's
# partitions then count as idle (idle_timeout) while the next one catches up: rows of the
# partition read last would be late, with or without repartitioning.)
written=6
for kill in 1 2; do
  wait_count eo.per_site $written || fail "no windows written before kill $kill"
  [ "$(grep -c "resumed from checkpoint" eo.err)" = $((kill - 1)) ] || fail "the member did not resume"
  sleep 0.$((RANDOM % 9 + 1))
  kill -9 $m
  wait $m 2>/dev/null
  echo "--- killed ($kill)" >>eo.err
  written=$(($(count eo.per_site) + 3))
  [ $kill = 1 ] && produce second.txt eo.
  member
  m=$!
  for _ in $(seq 240); do
    [ "$(grep -c "resumed from checkpoint" eo.err)" = $kill ] && break
    sleep 0.25
  done
done
ok=
for _ in $(seq 150); do
  sleep 1
  [ "$(count eo.per_site)" -ge "$windows" ] || continue
  check eo. exact && { ok=1; break; }
done
kill -INT $m
wait $m || fail "the restarted member exited $? after SIGINT"
[ -n "$ok" ] || { cat checkeo..txt; fail "killed twice with --state-dir"; }
[ "$(grep -c "resumed from checkpoint" eo.err)" = 2 ] || fail "the restarted member did not resume from a checkpoint twice"
echo "kill -9 twice with --state-dir: $(cat checkeo..txt)"
