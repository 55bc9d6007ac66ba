#!/usr/bin/env bash
# test_http_lag.sh VPQ — `vpq_consumer_lag_records` on /metrics of an idle, caught-up pipeline
# that repartitions (a table over a table, and a window grouped by another key, over an
# unbounded Kafka source on `vpq broker`): it must read 0 at every sample, although the
# writers of the internal topics keep announcing their watermarks there (every 200 ms once the
# source is idle, every second at least), records the reader takes as they come.
set -uo pipefail
vpq=$1
. "$(dirname "$0")/../kafka/lib.sh"
. "$(dirname "$0")/lib.sh"
start_http_test tel:2

cat >q.vpq <<'VPQ'
CREATE STREAM tel (device_id STRING KEY, site STRING, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'tel', format = 'json', timestamp = 'ts', idle_timeout = 5 SECONDS,
        'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
CREATE TABLE latest AS SELECT device_id, last(site) AS site, last(kw) AS kw FROM tel GROUP BY device_id;
CREATE TABLE per_site AS SELECT site, sum(kw) AS kw, count(*) AS devices FROM latest GROUP BY site;
CREATE STREAM site_minutes AS
  SELECT site, WINDOW_START AS ws, count(*) AS n FROM tel WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY site EMIT FINAL;
VPQ
now=$(($(date +%s) * 1000))
for i in $(seq 20); do
  echo "d$i|{\"device_id\":\"d$i\",\"site\":\"s$((i % 3))\",\"ts\":$((now - 30000 + i * 100)),\"kw\":$i.0}"
done >rows.txt
kcat -b "$bootstrap" -P -t tel -K '|' -l rows.txt || fail "kcat could not produce"

start_http_run q.vpq 127.0.0.1

# Caught up: both exchanges have passed on the 20 rows, and the source has been idle for its
# idle_timeout (so its writers announce every 200 ms).
for _ in $(seq 150); do
  curl -s "$url/metrics" >metrics.txt
  [ "$(grep -c 'operator="RepartitionScan",index="2"} 20$' metrics.txt)" = 2 ] && break
  sleep 0.2
done
[ "$(grep -c 'operator="RepartitionScan",index="2"} 20$' metrics.txt)" = 2 ] ||
  fail "the exchanges did not pass the rows on: $(grep Repartition metrics.txt)"
sleep 6
lags=
for _ in $(seq 12); do
  lags="$lags $(curl -s "$url/metrics" | sed -n 's/^vpq_consumer_lag_records //p')"
  sleep 1
done
[ "$lags" = "$(printf ' 0%.0s' $(seq 12))" ] || fail "vpq_consumer_lag_records of a caught-up pipeline, once a second:$lags"
stop_run
echo "vpq_consumer_lag_records: 0 for a caught-up pipeline with internal topics"
