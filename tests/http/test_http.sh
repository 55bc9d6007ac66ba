#!/usr/bin/env bash
# test_http.sh VPQ — `vpq run --http` end to end, with curl as the client: a query over an
# unbounded Kafka source on `vpq broker` (kcat produces the rows) keeps running while the test
# reads /healthz, a table (/api/tables/latest, compared whole, then filtered with where= and
# limit=), ad-hoc queries over it (POST /api/query: results, exact diagnostics, limits), a
# stream as server-sent events (/api/streams/big: the newest old row, then rows produced while
# connected, then resumed with Last-Event-ID), /metrics, /api/queries, the dashboard and
# embeddable chart pages and their compiled-in scripts (byte for byte those of web/ and npm's
# uplot), and the errors (401, 404 whatever the method, 400, 405, 413); the server is bound
# to 127.0.0.1 by default and wants the --http-token bearer token; then SIGINT must end the
# open event stream cleanly and the run with exit 0. A second run, on 0.0.0.0 with the token from
# VPQ_HTTP_TOKEN, checks binding every interface, resuming past the recent buffer
# (`event: gap`) and a client too slow to keep up (whole events, then `event: overflow`). A
# third, checkpointed, run is stopped and resumed: its table is there again at once.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/../kafka/lib.sh"
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
web=$(cd "$here/../../web" && pwd)
start_broker "$vpq" "$work" --topic vpp.readings:1
vpq_pid= curl_pid=
trap 'kill $vpq_pid $curl_pid $broker_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cd "$work" || exit 1

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

# listen_addrs PORT: the addresses listening on TCP PORT, from /proc/net/tcp (no iproute2 needed).
listen_addrs() {
  /usr/bin/python3 - "$1" <<'PY'
import socket, struct, sys
port = int(sys.argv[1])
for line in open("/proc/net/tcp").readlines()[1:]:
    local, state = line.split()[1], line.split()[3]
    addr, p = local.split(":")
    if state == "0A" and int(p, 16) == port:
        print("%s:%d" % (socket.inet_ntoa(struct.pack("<I", int(addr, 16))), port))
PY
}

# No host: 127.0.0.1 only. The token on the command line wins over VPQ_HTTP_TOKEN.
VPQ_HTTP_TOKEN=not-this-one start_http_run q.vpq "" --http-token s3cret
[ "$(listen_addrs "$port")" = "127.0.0.1:$port" ] || fail "no host: not bound to 127.0.0.1 only: $(listen_addrs "$port")"
# get [CURL ARG...]: curl with the token.
get() { curl -s -H "Authorization: Bearer s3cret" "$@"; }
auth=(-H "Authorization: Bearer s3cret")

# Wait until the engine has read the first batch (3 rows; the malformed one is counted apart).
for _ in $(seq 150); do
  get "$url/metrics" | grep -qx 'vpq_rows_in_total 3' && break
  sleep 0.2
done

[ "$(curl -s "$url/healthz")" = ok ] || fail "/healthz is not ok (it needs no token)"

# Everything else wants the bearer token.
status() { curl -s -o body.json -w '%{http_code}' "$@"; }
for path in / /metrics /api/queries /api/tables/latest /api/streams/big "/embed?stream=big&y=power_kw"; do
  [ "$(status "$url$path")" = 401 ] && grep -qx '{"status":401,"message":"this server needs the header Authorization: Bearer TOKEN"}' body.json ||
    fail "$path without a token"
done
for header in "Bearer s3cre" "Bearer s3cretX" "Bearer not-this-one" "Basic s3cret" "s3cret"; do
  [ "$(status -H "Authorization: $header" "$url/metrics")" = 401 ] || fail "Authorization: $header accepted"
done
curl -s -D headers.txt -o /dev/null "$url/metrics"
grep -qi '^www-authenticate: Bearer' headers.txt || fail "401 without WWW-Authenticate"
[ "$(status -H "Authorization: bearer s3cret" "$url/metrics")" = 200 ] || fail "the scheme is case-insensitive"

# table_is JSON [QUERY]: /api/tables/latest[?QUERY] is JSON.
table_is() {
  get -D headers.txt "$url/api/tables/latest${2:+?$2}" >table.json
  grep -qi '^content-type: application/json' headers.txt || fail "/api/tables: not JSON"
  /usr/bin/python3 - "$1" <<'PY' || fail "/api/tables/latest${2:+?$2}"
import json, sys
got, expected = json.load(open("table.json")), json.loads(sys.argv[1])
if got != expected:
    print("got", got, "\nexpected", expected)
    sys.exit(1)
PY
}
table_is '[{"device_id":"d1","power_kw":2.0,"n":1},{"device_id":"d2","power_kw":0.5,"n":1},{"device_id":"d3","power_kw":1.5,"n":1}]'

# The stream: the newest old row (?last=1), then what is produced while connected.
get -N --max-time 8 "$url/api/streams/big?last=1" >sse.txt 2>/dev/null &
curl_pid=$!
for _ in $(seq 50); do [ -s sse.txt ] && break; sleep 0.1; done
kcat -b "$bootstrap" -P -t vpp.readings -K '|' -l batch2.txt || fail "kcat could not produce"
wait $curl_pid
curl_pid=
/usr/bin/python3 - "$(t 3)" "$(t 4)" "$(t 6)" <<'PY' || fail "/api/streams/big"
import sys
t3, t4, t6 = sys.argv[1:]
expected = [": big", "",
            "id: 2", 'data: {"device_id":"d3","ts":%s,"power_kw":1.5}' % t3, "",
            "id: 3", 'data: {"device_id":"d1","ts":%s,"power_kw":3.0}' % t4, "",
            "id: 4", 'data: {"device_id":"d4","ts":%s,"power_kw":4.5}' % t6, ""]
got = open("sse.txt").read().split("\n")[:-1]
if got != expected:
    print("got", got, "\nexpected", expected)
    sys.exit(1)
PY

# Resuming: Last-Event-ID 2 gets events 3 and 4 (it wins over ?last); 4 gets none; an id
# this stream never gave (a restarted server) gets `event: gap`, then all it has.
sse_is() {
  get -N --max-time 1 -H "Last-Event-ID: $1" "$url/api/streams/big?last=1" >sse.txt 2>/dev/null
  /usr/bin/python3 - "$2" <<'PY' || fail "/api/streams/big with Last-Event-ID: $1"
import sys
expected = sys.argv[1].split("|") if sys.argv[1] else []
got = [l for l in open("sse.txt").read().split("\n") if l.startswith(("id:", "event:", "data: {\"last"))]
if got != expected:
    print("got", got, "\nexpected", expected)
    sys.exit(1)
PY
}
sse_is 2 "id: 3|id: 4"
sse_is 4 ""
sse_is 99 'event: gap|data: {"last_event_id":99,"next_id":1}|id: 1|id: 2|id: 3|id: 4'
[ "$(status -H "Authorization: Bearer s3cret" -H "Last-Event-ID: x" "$url/api/streams/big")" = 400 ] &&
  grep -q 'Last-Event-ID must be' body.json || fail "bad Last-Event-ID"

# The table after updates: d1 and d2 replaced (their old rows retracted), d4 added.
table_is '[{"device_id":"d1","power_kw":3.0,"n":2},{"device_id":"d2","power_kw":0.25,"n":2},{"device_id":"d3","power_kw":1.5,"n":1},{"device_id":"d4","power_kw":4.5,"n":1}]'

# Filters: where= on the JSON text of a field (strings unquoted, URL-decoded, ANDed), limit=.
table_is '[{"device_id":"d1","power_kw":3.0,"n":2}]' 'where=device_id=d1'
table_is '[{"device_id":"d1","power_kw":3.0,"n":2}]' 'where=DEVICE_ID=d%31'
table_is '[{"device_id":"d1","power_kw":3.0,"n":2},{"device_id":"d2","power_kw":0.25,"n":2}]' 'where=n=2'
table_is '[{"device_id":"d2","power_kw":0.25,"n":2}]' 'where=n=2&where=power_kw=0.25'
table_is '[{"device_id":"d1","power_kw":3.0,"n":2}]' 'where=n=2&limit=1'
table_is '[]' 'where=device_id=%22d1%22'
table_is '[]' 'where=nope=1'
table_is '[]' 'limit=0'
table_is '[{"device_id":"d3","power_kw":1.5,"n":1},{"device_id":"d4","power_kw":4.5,"n":1}]' 'where=n=1&limit=10'
for bad in "limit=x:limit must be a whole number of rows, not \`x\`" "limit=-1:limit must be" "limit=:limit must be" \
           "where=n:where must be COLUMN=VALUE, not \`n\`" "where==1:where must be COLUMN=VALUE" "wher=n=1:unknown parameter \`wher\`"; do
  [ "$(status -H "Authorization: Bearer s3cret" "$url/api/tables/latest?${bad%%:*}")" = 400 ] &&
    grep -qF "{\"status\":400,\"message\":\"${bad#*:}" body.json || fail "?${bad%%:*}: $(cat body.json)"
done

# POST /api/query: an ad-hoc SELECT over the table, answered once (sorted like a table).
# query_is TEXT STATUS JSON: the body is TEXT; the answer has STATUS and is JSON.
query_is() {
  [ "$(status -H "Authorization: Bearer s3cret" -H 'Content-Type: text/plain' --data-binary "$1" "$url/api/query")" = "$2" ] ||
    fail "POST /api/query $1: status $(cat body.json)"
  /usr/bin/python3 - "$3" <<'PY' || fail "POST /api/query $1"
import json, sys
got, expected = json.load(open("body.json")), json.loads(sys.argv[1])
if got != expected:
    print("got", json.dumps(got), "\nexpected", json.dumps(expected))
    sys.exit(1)
PY
}
query_is 'SELECT n, count(*) AS devices, sum(power_kw) AS kw FROM latest WHERE device_id <> '"'d9'"' GROUP BY n' 200 \
  '[{"n":1,"devices":2,"kw":6.0},{"n":2,"devices":2,"kw":3.25}]'
query_is 'select DEVICE_ID, power_kw * 2 AS double_kw from "Latest" where power_kw > 1;' 200 \
  '[{"device_id":"d1","double_kw":6.0},{"device_id":"d3","double_kw":3.0},{"device_id":"d4","double_kw":9.0}]'
query_is $'-- which devices\nSELECT device_id\nFROM latest WHERE' 400 \
  '{"status":400,"message":"query:3:18: error: syntax error: unexpected end of input",
    "diagnostics":"query:3:18: error: syntax error: unexpected end of input\nFROM latest WHERE\n                 ^\n"}'
query_is 'SELECT devce_id, power_kw FROM latest' 400 \
  '{"status":400,"message":"query:1:8: error: unknown column `devce_id`; did you mean `device_id`?",
    "diagnostics":"query:1:8: error: unknown column `devce_id`; did you mean `device_id`?\nSELECT devce_id, power_kw FROM latest\n       ^~~~~~~~\n"}'
query_is 'SELECT * FROM big' 400 \
  '{"status":400,"message":"query:1:15: error: unknown stream or table `big`",
    "diagnostics":"query:1:15: error: unknown stream or table `big`\nSELECT * FROM big\n              ^~~\n"}'
query_is 'INSERT INTO big SELECT device_id FROM latest' 400 \
  '{"status":400,"message":"query:1:1: error: POST /api/query takes one SELECT, not `INSERT`",
    "diagnostics":"query:1:1: error: POST /api/query takes one SELECT, not `INSERT`\nINSERT INTO big SELECT device_id FROM latest\n^~~~~~\n"}'
query_is 'SELECT n FROM latest; CREATE STREAM x (a BIGINT)' 400 \
  '{"status":400,"message":"query:1:23: error: POST /api/query takes one SELECT: nothing may follow its `;`",
    "diagnostics":"query:1:23: error: POST /api/query takes one SELECT: nothing may follow its `;`\nSELECT n FROM latest; CREATE STREAM x (a BIGINT)\n                      ^~~~~~\n"}'
# The token, the method, and the size of the body (known in advance or not: chunked).
[ "$(status --data-binary 'SELECT n FROM latest' "$url/api/query")" = 401 ] || fail "POST /api/query without the token"
curl -s -D headers.txt -o body.json "${auth[@]}" "$url/api/query"
grep -q '^HTTP/1.1 405' headers.txt && grep -qi '^allow: POST' headers.txt &&
  grep -qx '{"status":405,"message":"method GET not allowed: use POST"}' body.json || fail "GET /api/query"
printf 'SELECT n FROM latest WHERE device_id = %070000d' 0 >big_query.txt
[ "$(status "${auth[@]}" --data-binary @big_query.txt "$url/api/query")" = 413 ] &&
  grep -qx '{"status":413,"message":"the query is longer than 65536 bytes"}' body.json || fail "a long query"
[ "$(status "${auth[@]}" -H 'Transfer-Encoding: chunked' --data-binary @big_query.txt "$url/api/query")" = 413 ] ||
  fail "a long chunked query"
query_is 'SELECT count(*) AS rows FROM latest' 200 '[{"rows":4}]'

# The stream's client has left: the server notices within a second or so (and the engine
# publishes its operators' counters every second).
for _ in $(seq 50); do
  get "$url/metrics" >metrics.txt
  grep -qx 'vpq_http_stream_clients{relation="big"} 0' metrics.txt &&
    grep -qx 'vpq_operator_rows_out_total{relation="big",operator="Map",index="1"} 4' metrics.txt && break
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
            'vpq_http_stream_clients{relation="big"}': 0, 'vpq_refused_total{reason="invalid timestamp"}': 1,
            'vpq_refused_total{reason="late"}': 0, "vpq_checkpoints_total": 0, "vpq_consumer_lag_records": 0,
            # Rows in and out per operator (as `vpq explain` names them; index: their place in
            # the relation's pipeline): the source's scan, and the filter of `big`.
            'vpq_operator_rows_in_total{relation="readings",operator="Scan",index="1"}': 6,
            'vpq_operator_rows_out_total{relation="readings",operator="Scan",index="1"}': 6,
            'vpq_operator_rows_in_total{relation="big",operator="Map",index="1"}': 6,
            'vpq_operator_rows_out_total{relation="big",operator="Map",index="1"}': 4}
assert samples["vpq_resident_memory_bytes"] > 1 << 20, samples["vpq_resident_memory_bytes"]
for k, v in expected.items():
    assert samples.get(k) == v, (k, samples.get(k), v)
# Lag: wall clock minus the newest ts seen (now - 54 s when produced), give or take the test's time.
lag = samples['vpq_watermark_lag_seconds{relation="readings"}']
expected_lag = time.time() - (int(sys.argv[1]) - 54000) / 1000
assert abs(lag - expected_lag) < 5, (lag, expected_lag)
for family in {re.sub(r"\{.*", "", k) for k in samples}:
    assert "# TYPE %s " % family in "\n".join(lines), family
    assert "# HELP %s " % family in "\n".join(lines), family
# Every family DESIGN names is listed, also before it has a sample (no checkpoint in this run).
assert "# TYPE vpq_checkpoint_age_seconds gauge" in lines, "checkpoint age"
assert not any(l.startswith("vpq_checkpoint_age_seconds") for l in lines), "a checkpoint age without a checkpoint"
PY

# The metrics parse as Prometheus text (a strict parser: Debian's promtool comes only with the
# whole prometheus server), and the parser does reject what is not.
/usr/bin/python3 "$here/check_metrics.py" metrics.txt >check.txt || { cat check.txt; fail "/metrics is not valid Prometheus text"; }
printf '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 1\n# HELP b B.\n# TYPE b gauge\nb 1\na_total{x="2"} 2\nb{x="a\\q"} 1\n# TYPE c counter\nc 1' >bad_metrics.txt
/usr/bin/python3 "$here/check_metrics.py" bad_metrics.txt >check.txt && fail "the metrics parser took bad text"
[ "$(cat check.txt)" = "the text does not end with a newline
line 7: the samples of a_total are not together
line 8: not a sample: 'b{x=\"a\\\\q\"} 1'
line 10: c has no HELP
counter c is not named *_total" ] || { cat check.txt; fail "the metrics parser's complaints"; }

get "$url/api/queries" >queries.json
/usr/bin/python3 - <<'PY' || fail "/api/queries"
import json
q = json.load(open("queries.json"))
assert [(r["name"], r["kind"], r["rows_out"]) for r in q] == [("readings", "stream", 6), ("latest", "table", 6), ("big", "stream", 4)], q
assert q[1]["plan"].startswith("table latest (device_id STRING KEY") and "Aggregate" in q[1]["plan"], q[1]["plan"]
assert q[1]["statements"] == ["CREATE TABLE latest AS\n  SELECT device_id, last(power_kw) AS power_kw, count(*) AS n FROM readings GROUP BY device_id;"], q[1]
assert q[2]["statements"][0].endswith("device_id <> 'x;y';"), q[2]
PY

# The pages load their scripts and styles from the server itself (relative URLs, nothing from
# elsewhere), and it serves them as they are in web/ and in npm's uplot package.
page_is() { # page_is PATH LINKS: PATH is HTML whose src= and href= are LINKS (sorted, each and a space)
  get -D headers.txt "$url$1" >page.html
  grep -qi '^content-type: text/html' headers.txt || fail "$1 is not HTML"
  links=$(grep -Eo '(src|href)="[^"]*"' page.html | LC_ALL=C sort -u | tr '\n' ' ')
  [ "$links" = "$2" ] || fail "$1 links to $links"
}
page_is / 'href="api/queries" href="assets/uPlot.min.css" href="data:," href="metrics" src="assets/dashboard.js" src="assets/uPlot.iife.min.js" '
page_is "/embed?stream=BIG&y=power_kw&x=ts" 'href="assets/uPlot.min.css" href="data:," src="assets/embed.js" src="assets/uPlot.iife.min.js" '
asset_is() { # asset_is NAME FILE TYPE: /assets/NAME is FILE, byte for byte, as TYPE
  get -D headers.txt "$url/assets/$1" >asset.bin
  grep -qi "^content-type: $3" headers.txt && cmp -s asset.bin "$2" || fail "/assets/$1 is not $2"
}
asset_is dashboard.js "$web/dashboard.js" text/javascript
asset_is embed.js "$web/embed.js" text/javascript
asset_is uPlot.iife.min.js "$web/node_modules/uplot/dist/uPlot.iife.min.js" text/javascript
asset_is uPlot.min.css "$web/node_modules/uplot/dist/uPlot.min.css" text/css
asset_is uPlot.LICENSE.txt "$web/node_modules/uplot/LICENSE" text/plain
[ "$(status "${auth[@]}" "$url/assets/nope.js")" = 404 ] && grep -qx '{"status":404,"message":"no such path: /assets/nope.js"}' body.json ||
  fail "unknown asset"
[ "$(status "$url/assets/uPlot.iife.min.js")" = 401 ] || fail "/assets without the token"

[ "$(status "${auth[@]}" "$url/nope")" = 404 ] && grep -qx '{"status":404,"message":"no such path: /nope"}' body.json || fail "unknown path"
[ "$(status "${auth[@]}" "$url/api/tables/nope")" = 404 ] && grep -q 'no table `nope`' body.json || fail "unknown table"
[ "$(status "${auth[@]}" "$url/api/streams/latest")" = 404 ] && grep -q '`latest` is a table' body.json || fail "table as a stream"
[ "$(status "${auth[@]}" "$url/api/streams/big?last=x")" = 400 ] || fail "bad ?last"
curl -s -D headers.txt -o body.json -X POST -d x=1 "$url/healthz"
grep -q '^HTTP/1.1 405' headers.txt && grep -qi '^allow: GET, HEAD' headers.txt &&
  grep -qx '{"status":405,"message":"method POST not allowed: use GET"}' body.json || fail "POST"
# An unknown path is a 404 whatever the method (405 is for a known path only).
for method in POST PUT DELETE; do
  [ "$(status "${auth[@]}" -X $method "$url/nope")" = 404 ] && grep -qx '{"status":404,"message":"no such path: /nope"}' body.json ||
    fail "$method /nope: $(cat body.json)"
done
[ "$(status "${auth[@]}" -X POST "$url/assets/nope.js")" = 404 ] || fail "POST /assets/nope.js: $(cat body.json)"
[ "$(status "${auth[@]}" -X DELETE "$url/api/tables/latest")" = 405 ] || fail "DELETE /api/tables/latest: $(cat body.json)"
# HEAD answers as GET without the body (health probes), a stream's too.
curl -s -I -o head.txt "$url/healthz" && grep -q '^HTTP/1.1 200' head.txt && grep -qi '^content-length: 3' head.txt ||
  fail "HEAD /healthz"
curl -s -I -o head.txt "${auth[@]}" "$url/api/tables/latest" && grep -q '^HTTP/1.1 200' head.txt &&
  grep -qi '^content-type: application/json' head.txt || fail "HEAD a table"
curl -s -I -o head.txt --max-time 5 "${auth[@]}" "$url/api/streams/readings" && grep -q '^HTTP/1.1 200' head.txt &&
  grep -qi '^content-type: text/event-stream' head.txt || fail "HEAD a stream"
[ "$(status "${auth[@]}" "$url/embed?y=power_kw")" = 400 ] && grep -q '"message":"stream must name a stream' body.json || fail "/embed without stream"
[ "$(status "${auth[@]}" "$url/embed?stream=big")" = 400 ] && grep -q '"message":"y must name a column' body.json || fail "/embed without y"
[ "$(status "${auth[@]}" "$url/embed?stream=big&y=power_kw&x=")" = 400 ] && grep -q '"message":"x must name a column' body.json || fail "/embed with x="
[ "$(status "${auth[@]}" "$url/embed?stream=latest&y=n")" = 404 ] && grep -q 'no stream `latest`' body.json || fail "/embed of a table"

# SIGINT with a stream open: the stream ends cleanly (curl exit 0) and so does the run.
get -N --max-time 20 "$url/api/streams/readings" >sse2.txt 2>/dev/null &
curl_pid=$!
for _ in $(seq 50); do [ -s sse2.txt ] && break; sleep 0.1; done
stop_run
wait $curl_pid
code=$?
curl_pid=
[ "$code" = 0 ] || fail "the open event stream did not end cleanly (curl exit $code)"
[ "$(cat sse2.txt)" = ": readings" ] || fail "unexpected events: $(cat sse2.txt)"
grep -q "vpq: 6 rows in" err.txt || fail "run summary"

# 0.0.0.0: every interface, the token from VPQ_HTTP_TOKEN. 1,100 more rows for `big` push its
# first ones out of the recent 1,024: resuming from event 1 gets `event: gap`, then 1,024 rows.
# (Another file name: another consumer group, which reads the topic from the start.)
cp q.vpq q2.vpq
VPQ_HTTP_TOKEN=from-env start_http_run q2.vpq 0.0.0.0
[ "$(listen_addrs "$port")" = "0.0.0.0:$port" ] || fail "0.0.0.0: not bound to every interface: $(listen_addrs "$port")"
[ "$(status "$url/api/queries")" = 401 ] || fail "VPQ_HTTP_TOKEN not required"
[ "$(status -H "Authorization: Bearer from-env" "$url/api/queries")" = 200 ] || fail "VPQ_HTTP_TOKEN not accepted"
for i in $(seq 1100); do echo "d$i|{\"device_id\":\"d$i\",\"ts\":$(t 7),\"power_kw\":2.0}"; done >batch3.txt
kcat -b "$bootstrap" -P -t vpp.readings -K '|' -l batch3.txt || fail "kcat could not produce"
for _ in $(seq 150); do
  curl -s -H "Authorization: Bearer from-env" "$url/metrics" | grep -qx 'vpq_rows_out_total{relation="big"} 1104' && break
  sleep 0.2
done
curl -s -N --max-time 1 -H "Authorization: Bearer from-env" -H "Last-Event-ID: 1" "$url/api/streams/big" >sse3.txt 2>/dev/null
/usr/bin/python3 - <<'PY' || fail "resuming past the recent rows"
events = open("sse3.txt").read().split("\n\n")
assert events[0] == ": big", events[0]
assert events[1] == 'event: gap\ndata: {"last_event_id":1,"next_id":81}', events[1]
ids = [int(e.split("\n")[0][4:]) for e in events[2:] if e]
assert ids == list(range(81, 1105)), (ids[:3], ids[-3:], len(ids))
PY
# A client that stops reading falls behind by more than the 1 MiB a stream may queue for it:
# it gets every event it was sent whole, then `event: overflow`, and the server ends the stream.
# 2,000 rows of 4 KiB for `big` while it does not read (zstd: the broker keeps them all).
/usr/bin/python3 - "$port" >slow.txt 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /api/streams/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer from-env\r\n\r\n")
open("slow.ready", "w").close()
while not __import__("os").path.exists("slow.go"):
    time.sleep(0.1)
data = b""
while chunk := s.recv(65536):
    data += chunk
sys.stdout.write(data.decode())
PY
curl_pid=$!
for _ in $(seq 50); do [ -f slow.ready ] && break; sleep 0.1; done
pad=$(head -c 4000 /dev/zero | tr '\0' 'w')
for i in $(seq 2000); do echo "w$i|{\"device_id\":\"w$i$pad\",\"ts\":$(t 8),\"power_kw\":2.0}"; done >batch4.txt
kcat -b "$bootstrap" -P -t vpp.readings -K '|' -z zstd -l batch4.txt || fail "kcat could not produce"
for _ in $(seq 150); do
  curl -s -H "Authorization: Bearer from-env" "$url/metrics" | grep -qx 'vpq_rows_out_total{relation="big"} 3104' && break
  sleep 0.2
done
touch slow.go
wait $curl_pid
curl_pid=
/usr/bin/python3 - <<'PY' || fail "a slow client's events"
import json
text = open("slow.txt", newline="").read()
body = text.split("\r\n\r\n", 1)[1]
# the body is chunked: join the chunks
events, rest = "", body
while rest:
    size, rest = rest.split("\r\n", 1)
    n = int(size, 16)
    events, rest = events + rest[:n], rest[n + 2:]
    if n == 0:
        break
parts = [e for e in events.split("\n\n") if e]
assert parts[0] == ": big" and parts[-1].startswith("event: overflow\n"), (parts[0], parts[-1][:60])
ids = []
for e in parts[1:-1]:
    head, data = e.split("\n")
    ids.append(int(head[4:]))
    json.loads(data[6:])
assert ids == list(range(ids[0], ids[0] + len(ids))) and ids[-1] < 3104, (ids[:3], ids[-3:])
PY
# Event streams take at most 224 of the 256 connections: past them a stream is answered 503, so
# /healthz still answers (it waited, unanswered, behind 256 open streams: audit 37).
/usr/bin/python3 - "$port" <<'PY' || fail "/healthz with 240 event streams open"
import socket, sys, time, urllib.request
port = int(sys.argv[1])
socks = []
for _ in range(240):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /api/streams/readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer from-env\r\n\r\n")
    socks.append(s)
codes = {}
for s in socks:
    s.settimeout(5)
    status = s.recv(64).split(b"\r\n")[0].decode()
    codes[status] = codes.get(status, 0) + 1
ok, full = codes.get("HTTP/1.1 200 OK", 0), codes.get("HTTP/1.1 503 Service Unavailable", 0)
assert ok + full == 240 and 200 <= ok <= 224, codes  # streams of the tests before may still be open
assert urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5).status == 200
for s in socks:
    s.close()
PY
stop_run "the second vpq run"
# A run resumed from --state-dir shows its restored tables at once: the HTTP views keep no
# state of their own, so the engine writes the restored rows to them (before, a table stayed
# empty until new rows came). A copy of the file, so that its consumer group starts afresh.
cp q.vpq resumed.vpq
start_http_run resumed.vpq "" --state-dir state --checkpoint-interval 1s
# the table once it has read the whole topic: the same two seconds apart
for _ in $(seq 60); do
  curl -s "$url/api/tables/latest" >before.json
  sleep 2
  curl -s "$url/api/tables/latest" >again.json
  [ "$(grep -c device_id before.json)" -gt 100 ] && cmp -s before.json again.json && break
done
sleep 2 # a checkpoint after the last row
kill -TERM $vpq_pid
wait $vpq_pid
vpq_pid=
start_http_run resumed.vpq "" --state-dir state
wait_resumed
for _ in $(seq 50); do
  curl -s "$url/api/tables/latest" >after.json
  cmp -s before.json after.json && break
  sleep 0.2
done
[ "$(grep -c device_id before.json)" -gt 100 ] && cmp -s before.json after.json ||
  fail "after a resume /api/tables/latest has $(grep -c device_id after.json) rows, before it $(grep -c device_id before.json)"
stop_run "the resumed vpq run"
echo "vpq run --http: bind, token, healthz, tables (whole, after retractions, filtered), SSE (with resume, gap and overflow), metrics, queries, dashboard, embed, errors, clean stop, tables restored from a checkpoint"
