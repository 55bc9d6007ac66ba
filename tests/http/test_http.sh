#!/usr/bin/env bash
# test_http.sh VPQ — `vpq run --http` end to end, with curl as the client: a query over an
# unbounded Kafka source on `vpq broker` (kcat produces the rows) keeps running while the test
# reads /healthz, a table (/api/tables/latest, compared whole), a stream as server-sent events
# (/api/streams/big: the newest old row, then rows produced while connected), /metrics,
# /api/queries, the dashboard page and the errors (404, 400, 405); then SIGINT must end the
# open event stream cleanly and the run with exit 0.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/../kafka/lib.sh"
start_broker "$vpq" "$work" --topic vpp.readings:1
vpq_pid= curl_pid=
trap 'kill $vpq_pid $curl_pid $broker_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cd "$work" || exit 1
fail() { echo "FAIL: $*"; [ -f err.txt ] && cat err.txt; exit 1; }

cat >q.vpq <<'VPQ'
CREATE STREAM readings (device_id STRING KEY, ts TIMESTAMP, power_kw DOUBLE)
  WITH (connector = 'kafka', topic = 'vpp.readings', format = 'json', timestamp = 'ts');
-- the newest reading per device
CREATE TABLE latest AS
  SELECT device_id, last(power_kw) AS power_kw, count(*) AS n FROM readings GROUP BY device_id;
CREATE STREAM big AS
  SELECT device_id, ts, power_kw FROM readings WHERE power_kw > 1.0 AND device_id <> 'x;y';
VPQ
now=$(( $(date +%s) * 1000 ))
t() { echo $(( now - 60000 + $1 * 1000 )); }
cat >batch1.txt <<MSG
d1|{"device_id":"d1","ts":$(t 1),"power_kw":2.0}
d2|{"device_id":"d2","ts":$(t 2),"power_kw":0.5}
d9|{"device_id":"d9","ts":"not a time","power_kw":1.0}
d3|{"device_id":"d3","ts":$(t 3),"power_kw":1.5}
MSG
cat >batch2.txt <<MSG
d1|{"device_id":"d1","ts":$(t 4),"power_kw":3.0}
d2|{"device_id":"d2","ts":$(t 5),"power_kw":0.25}
d4|{"device_id":"d4","ts":$(t 6),"power_kw":4.5}
MSG
kcat -b "$bootstrap" -P -t vpp.readings -K '|' -l batch1.txt || fail "kcat could not produce"

# A free port: a random one in 20000-60000, another if it is taken.
for _ in 1 2 3 4 5; do
  port=$(shuf -i 20000-60000 -n 1)
  "$vpq" run q.vpq --brokers "$bootstrap" --http "127.0.0.1:$port" >out.txt 2>err.txt &
  vpq_pid=$!
  for _ in $(seq 100); do
    grep -q "serving HTTP on port $port" err.txt && break
    kill -0 $vpq_pid 2>/dev/null || break
    sleep 0.1
  done
  grep -q "serving HTTP on port $port" err.txt && break
  wait $vpq_pid
  vpq_pid=
  grep -q "cannot listen" err.txt || fail "vpq run --http did not start"
done
[ -n "$vpq_pid" ] || fail "no free port found"
url="http://127.0.0.1:$port"

# Wait until the engine has read the first batch (3 rows; the malformed one is counted apart).
for _ in $(seq 150); do
  curl -s "$url/metrics" | grep -qx 'vpq_rows_in_total 3' && break
  sleep 0.2
done

[ "$(curl -s "$url/healthz")" = ok ] || fail "/healthz is not ok"

table_is() {
  curl -s -D headers.txt "$url/api/tables/latest" >table.json
  grep -qi '^content-type: application/json' headers.txt || fail "/api/tables: not JSON"
  /usr/bin/python3 - "$1" <<'PY' || fail "/api/tables/latest"
import json, sys
got, expected = json.load(open("table.json")), json.loads(sys.argv[1])
if got != expected:
    print("got", got, "\nexpected", expected)
    sys.exit(1)
PY
}
table_is '[{"device_id":"d1","power_kw":2.0,"n":1},{"device_id":"d2","power_kw":0.5,"n":1},{"device_id":"d3","power_kw":1.5,"n":1}]'

# The stream: the newest old row (?last=1), then what is produced while connected.
curl -s -N --max-time 8 "$url/api/streams/big?last=1" >sse.txt 2>/dev/null &
curl_pid=$!
for _ in $(seq 50); do [ -s sse.txt ] && break; sleep 0.1; done
kcat -b "$bootstrap" -P -t vpp.readings -K '|' -l batch2.txt || fail "kcat could not produce"
wait $curl_pid
curl_pid=
/usr/bin/python3 - "$(t 3)" "$(t 4)" "$(t 6)" <<'PY' || fail "/api/streams/big"
import sys
t3, t4, t6 = sys.argv[1:]
expected = [": big", "",
            'data: {"device_id":"d3","ts":%s,"power_kw":1.5}' % t3, "",
            'data: {"device_id":"d1","ts":%s,"power_kw":3.0}' % t4, "",
            'data: {"device_id":"d4","ts":%s,"power_kw":4.5}' % t6, ""]
got = open("sse.txt").read().split("\n")[:-1]
if got != expected:
    print("got", got, "\nexpected", expected)
    sys.exit(1)
PY

# The table after updates: d1 and d2 replaced (their old rows retracted), d4 added.
table_is '[{"device_id":"d1","power_kw":3.0,"n":2},{"device_id":"d2","power_kw":0.25,"n":2},{"device_id":"d3","power_kw":1.5,"n":1},{"device_id":"d4","power_kw":4.5,"n":1}]'

# The stream's client has left: the server notices within a second or so.
for _ in $(seq 50); do
  curl -s "$url/metrics" >metrics.txt
  grep -qx 'vpq_http_stream_clients{relation="big"} 0' metrics.txt && break
  sleep 0.1
done
/usr/bin/python3 - "$now" <<'PY' || fail "/metrics"
import re, sys, time
lines = open("metrics.txt").read().splitlines()
samples = {}
for l in lines:
    if not l.startswith("#"):
        name, value = l.rsplit(" ", 1)
        samples[name] = float(value)
expected = {"vpq_rows_in_total": 6, "vpq_malformed_total": 1, "vpq_late_rows_total": 0, "vpq_dead_lettered_total": 0,
            'vpq_rows_out_total{relation="readings"}': 6, 'vpq_rows_out_total{relation="latest"}': 6,
            'vpq_rows_out_total{relation="big"}': 4, 'vpq_table_rows{relation="latest"}': 4,
            'vpq_http_stream_clients{relation="big"}': 0}
for k, v in expected.items():
    assert samples.get(k) == v, (k, samples.get(k), v)
# Lag: wall clock minus the newest ts seen (now - 54 s when produced), give or take the test's time.
lag = samples['vpq_watermark_lag_seconds{relation="readings"}']
expected_lag = time.time() - (int(sys.argv[1]) - 54000) / 1000
assert abs(lag - expected_lag) < 5, (lag, expected_lag)
for family in {re.sub(r"\{.*", "", k) for k in samples}:
    assert "# TYPE %s " % family in "\n".join(lines), family
    assert "# HELP %s " % family in "\n".join(lines), family
PY

curl -s "$url/api/queries" >queries.json
/usr/bin/python3 - <<'PY' || fail "/api/queries"
import json
q = json.load(open("queries.json"))
assert [(r["name"], r["kind"], r["rows_out"]) for r in q] == [("readings", "stream", 6), ("latest", "table", 6), ("big", "stream", 4)], q
assert q[1]["plan"].startswith("table latest (device_id STRING KEY") and "Aggregate" in q[1]["plan"], q[1]["plan"]
assert q[1]["statements"] == ["CREATE TABLE latest AS\n  SELECT device_id, last(power_kw) AS power_kw, count(*) AS n FROM readings GROUP BY device_id;"], q[1]
assert q[2]["statements"][0].endswith("device_id <> 'x;y';"), q[2]
PY

curl -s -D headers.txt "$url/" >page.html
grep -qi '^content-type: text/html' headers.txt || fail "/ is not HTML"
grep -q '<canvas id="chart">' page.html && grep -q 'new EventSource' page.html && grep -q "/api/tables/fleet" page.html ||
  fail "/ is not the dashboard"

status() { curl -s -o body.json -w '%{http_code}' "$@"; }
[ "$(status "$url/nope")" = 404 ] && grep -q '"error":"no such path: /nope"' body.json || fail "unknown path"
[ "$(status "$url/api/tables/nope")" = 404 ] && grep -q 'no table `nope`' body.json || fail "unknown table"
[ "$(status "$url/api/streams/latest")" = 404 ] && grep -q '`latest` is a table' body.json || fail "table as a stream"
[ "$(status "$url/api/streams/big?last=x")" = 400 ] || fail "bad ?last"
[ "$(status -X POST -d x=1 "$url/healthz")" = 405 ] && grep -q 'method POST not allowed' body.json || fail "POST"

# SIGINT with a stream open: the stream ends cleanly (curl exit 0) and so does the run.
curl -s -N --max-time 20 "$url/api/streams/readings" >sse2.txt 2>/dev/null &
curl_pid=$!
for _ in $(seq 50); do [ -s sse2.txt ] && break; sleep 0.1; done
kill -INT $vpq_pid
wait $vpq_pid
code=$?
vpq_pid=
[ "$code" = 0 ] || fail "vpq run exited $code after SIGINT"
wait $curl_pid
code=$?
curl_pid=
[ "$code" = 0 ] || fail "the open event stream did not end cleanly (curl exit $code)"
[ "$(cat sse2.txt)" = ": readings" ] || fail "unexpected events: $(cat sse2.txt)"
grep -q "vpq: 6 rows in" err.txt || fail "run summary"
echo "vpq run --http: healthz, tables (whole, after retractions), SSE, metrics, queries, dashboard, errors, clean stop"
