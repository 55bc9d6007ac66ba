#!/usr/bin/env bash
# test_http_resume.sh VPQ — `vpq run --http --state-dir`, stopped and resumed: the resumed run
# serves every table's restored rows as soon as it serves HTTP (a table, a table over it,
# repartitioned, and a windowed table, its closed windows included: the HTTP views keep no
# state of their own, the engine writes the restored rows to them), its counters agree with
# what the tables hold, and its checkpoint metrics are the restored checkpoint's. The source is Kafka (on `vpq broker`): a file source ends, and its
# resumed run with it, before it could be asked.
set -uo pipefail
vpq=$1
. "$(dirname "$0")/../kafka/lib.sh"
. "$(dirname "$0")/lib.sh"
start_http_test tel:1

cat >q.vpq <<'VPQ'
CREATE STREAM tel (device_id STRING KEY, site STRING, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'tel', format = 'json', timestamp = 'ts',
        'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
CREATE TABLE latest AS
  SELECT device_id, last(site) AS site, last(kw) AS kw, count(*) AS n FROM tel GROUP BY device_id;
CREATE TABLE per_site AS SELECT site, sum(kw) AS kw FROM latest GROUP BY site;
CREATE TABLE wt AS
  SELECT device_id, WINDOW_START AS ws, count(*) AS n FROM tel
  WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY device_id EMIT FINAL;
VPQ
# 3 devices, 6 minutes, then a row at minute 10: 18 closed windows.
t0=1764547200000
for m in 0 1 2 3 4 5; do
  for d in 1 2 3; do echo "d$d|{\"device_id\":\"d$d\",\"site\":\"s$((d % 2))\",\"ts\":$((t0 + m * 60000 + d * 1000)),\"kw\":$m.5}"; done
done >rows.txt
echo "d1|{\"device_id\":\"d1\",\"site\":\"s1\",\"ts\":$((t0 + 600000)),\"kw\":9.5}" >>rows.txt
kcat -b "$bootstrap" -P -t tel -K '|' -l rows.txt || fail "kcat could not produce"

# start_vpq [ARG...]: runs q.vpq with --http on a free port and --state-dir state (start_http_run).
start_vpq() { start_http_run q.vpq 127.0.0.1 --state-dir state "$@"; }

start_vpq --checkpoint-interval 200ms
for _ in $(seq 150); do
  curl -s "$url/api/tables/wt" >wt_before.json
  [ "$(grep -c device_id wt_before.json)" = 18 ] && break
  sleep 0.2
done
[ "$(grep -c device_id wt_before.json)" = 18 ] || fail "wt has $(grep -c device_id wt_before.json) rows, not 18"
for _ in $(seq 100); do
  curl -s "$url/api/tables/latest" >latest_before.json
  curl -s "$url/api/tables/per_site" >per_site_before.json
  [ "$(grep -c device_id latest_before.json)" = 3 ] && grep -q '"site":"s1","kw":15.0' per_site_before.json && break
  sleep 0.2
done
[ "$(grep -c device_id latest_before.json)" = 3 ] || fail "latest: $(cat latest_before.json)"
grep -q '"site":"s1","kw":15.0' per_site_before.json || fail "per_site: $(cat per_site_before.json)"
sleep 1 # a checkpoint after the last row
stop_run

# Resumed: the tables are there at the first requests after `serving HTTP` (within 1 s:
# the restored state is written to the views before the connectors open, which takes seconds
# with the repartition step's consumer and producer), and rows_out and table_rows count the
# restored rows.
start_vpq
for _ in $(seq 20); do
  curl -s "$url/api/tables/wt" >wt_after.json
  curl -s "$url/api/tables/latest" >latest_after.json
  curl -s "$url/api/tables/per_site" >per_site_after.json
  cmp -s wt_before.json wt_after.json && cmp -s latest_before.json latest_after.json &&
    cmp -s per_site_before.json per_site_after.json && break
  sleep 0.05
done
cmp -s wt_before.json wt_after.json || fail "after a resume /api/tables/wt is $(cat wt_after.json)"
cmp -s latest_before.json latest_after.json || fail "after a resume /api/tables/latest is $(cat latest_after.json)"
cmp -s per_site_before.json per_site_after.json || fail "after a resume /api/tables/per_site is $(cat per_site_after.json)"
wait_resumed
for _ in $(seq 50); do
  curl -s "$url/metrics" >metrics.txt
  grep -q '^vpq_operator_rows_out_total{relation="wt",operator="Relation"' metrics.txt && break
  sleep 0.1
done
for line in 'vpq_table_rows{relation="wt"} 18' 'vpq_rows_out_total{relation="wt"} 18' \
            'vpq_operator_rows_out_total{relation="wt",operator="Relation",index="0"} 18' \
            'vpq_table_rows{relation="latest"} 3'; do
  grep -qxF "$line" metrics.txt || fail "/metrics after a resume has no \`$line\`: $(grep -F '"wt"' metrics.txt)"
done
# the last checkpoint is the restored one until the run takes its own (10 s after its start)
grep -Eq '^vpq_checkpoint_age_seconds [0-9]+\.[0-9]{3}$' metrics.txt &&
  grep -Eq '^vpq_checkpoint_state_bytes [1-9][0-9]*$' metrics.txt ||
  fail "/metrics after a resume has no checkpoint age or size: $(grep checkpoint metrics.txt)"
# and the restored windows stay served once new ones close, without duplicates
echo "d2|{\"device_id\":\"d2\",\"site\":\"s0\",\"ts\":$((t0 + 900000)),\"kw\":1.0}" | kcat -b "$bootstrap" -P -t tel -K '|' ||
  fail "kcat could not produce"
for _ in $(seq 300); do
  curl -s "$url/api/tables/wt" >wt_more.json
  [ "$(grep -c device_id wt_more.json)" = 19 ] && break
  sleep 0.1
done
[ "$(grep -c device_id wt_more.json)" = 19 ] && grep -q "\"ws\":$((t0 + 600000))" wt_more.json ||
  fail "after a new window closed /api/tables/wt is $(cat wt_more.json)"
stop_run
echo "vpq run --http --state-dir: tables (windowed too) and their counters restored at once"
