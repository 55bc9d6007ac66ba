#!/usr/bin/env bash
# test_cli.sh VPQ — the command line's contract: exit codes (0 clean, 1 errors, 2 usage),
# where output goes, explain's tree and Graphviz forms, stdout when a file has no sink.
set -uo pipefail
vpq=$1
kafka_lib=$(cd "$(dirname "$0")/../kafka" && pwd)/lib.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fails=0
expect() { # expect CODE DESCRIPTION -- COMMAND...
  local code=$1 what=$2; shift 3
  "$@" >out.txt 2>err.txt
  local got=$?
  if [ "$got" != "$code" ]; then
    echo "FAIL: $what: exit $got, expected $code"; cat out.txt err.txt; fails=$((fails + 1))
  fi
}

expect 2 "no command" -- "$vpq"
expect 2 "unknown command" -- "$vpq" frobnicate x.vpq
expect 2 "check without a file" -- "$vpq" check
expect 2 "unreadable file" -- "$vpq" check missing.vpq
grep -q "cannot read \`missing.vpq\`" err.txt || { echo "FAIL: unreadable file message"; fails=$((fails + 1)); }
expect 0 "help" -- "$vpq" --help

cat >in.jsonl <<'JSON'
{"k":"a","ts":1000,"v":1.5}
{"k":"b","ts":2000,"v":-2}
JSON
cat >ok.vpq <<'VPQ'
CREATE STREAM s (k STRING KEY, ts TIMESTAMP, v DOUBLE)
  WITH (connector = 'file', path = 'in.jsonl', format = 'json', timestamp = 'ts');
CREATE STREAM doubled AS SELECT k, v * 2 AS v2 FROM s WHERE v > 0;
VPQ
# A usage error names the argument it could not take.
usage_names() { # usage_names WHAT NEEDLE -- COMMAND...
  local what=$1 needle=$2; shift 2
  expect 2 "$what" "$@"
  grep -qF -- "$needle" err.txt || { echo "FAIL: $what: the error does not name $needle:"; head -1 err.txt; fails=$((fails + 1)); }
}
usage_names "unknown command" "unknown command \`frobnicate\`" -- "$vpq" frobnicate x.vpq
usage_names "unknown option for run" "unknown option \`--bogus\` for run" -- "$vpq" run ok.vpq --bogus
usage_names "run option without its value" "--http needs a value" -- "$vpq" run ok.vpq --http
usage_names "run with two files" "not also \`ok2.vpq\`" -- "$vpq" run ok.vpq ok2.vpq
usage_names "explain --set without a value" "--set takes key=value" -- "$vpq" explain --set foo ok.vpq
usage_names "run --http-token without --http" "--http-token goes with --http ADDR" -- "$vpq" run ok.vpq --http-token abc
usage_names "run --reset-state without --state-dir" "--reset-state goes with --state-dir DIR" -- "$vpq" run ok.vpq --reset-state
usage_names "run --state-dir with an empty name" "--state-dir needs a folder, not an empty name" -- "$vpq" run ok.vpq --state-dir ""
usage_names "run --checkpoint-interval without --state-dir" "--checkpoint-interval goes with --state-dir DIR" -- "$vpq" run ok.vpq --checkpoint-interval 1s
usage_names "unknown option for check" "unknown option \`--fast\` for check" -- "$vpq" check --fast ok.vpq
usage_names "unknown option for explain" "unknown option \`--svg\` for explain" -- "$vpq" explain --svg ok.vpq
usage_names "unknown option for broker" "\`--port\`" -- "$vpq" broker --port 9092
usage_names "bad option for simulate" "bad option \`--devcies\` for simulate" -- "$vpq" simulate --devcies 3
# The demo (a Kafka file run without --brokers) refuses simulator settings it cannot take.
cat >demo.vpq <<'VPQ'
CREATE STREAM m (ts TIMESTAMP, v DOUBLE)
  WITH (connector = 'kafka', topic = 'vpp.meters', format = 'json', timestamp = 'ts');
VPQ
usage_names "demo: sim setting not a number" "--set sim.devices: \`abc\` is not a number" -- "$vpq" run demo.vpq --set sim.devices=abc
usage_names "demo: unknown sim setting" "unknown setting \`sim.devcies\`" -- "$vpq" run demo.vpq --set sim.devcies=3
usage_names "demo: sim setting out of range" "sim.devices 1..1000000" -- "$vpq" run demo.vpq --set sim.devices=1e12
expect 0 "check a clean file" -- "$vpq" check ok.vpq
[ ! -s out.txt ] && [ ! -s err.txt ] || { echo "FAIL: check of a clean file printed something"; fails=$((fails + 1)); }
expect 0 "run with no sink prints the last statement" -- "$vpq" run ok.vpq
[ "$(cat out.txt)" = '{"k":"a","v2":3.0}' ] || { echo "FAIL: stdout was: $(cat out.txt)"; fails=$((fails + 1)); }
grep -q "2 rows in" err.txt || { echo "FAIL: run summary: $(cat err.txt)"; fails=$((fails + 1)); }

expect 0 "explain" -- "$vpq" explain ok.vpq
grep -q "Map" out.txt && grep -q "stream doubled" out.txt || { echo "FAIL: explain:"; cat out.txt; fails=$((fails + 1)); }
expect 0 "explain --dot" -- "$vpq" explain --dot ok.vpq
head -1 out.txt | grep -q "^digraph vpq" && grep -q -- "->" out.txt || { echo "FAIL: explain --dot"; cat out.txt; fails=$((fails + 1)); }
# A short chain of AND keeps the plan it always had (left to right): a checkpoint is checked
# against the plan, so a new grouping would refuse the state of an unchanged query.
printf 'CREATE STREAM s (k STRING, ts TIMESTAMP, v BIGINT) WITH (connector = %s, path = %s, format = %s, timestamp = %s);\nCREATE STREAM o AS SELECT k, v FROM s WHERE v > 1 AND v > 2 AND v > 3 AND v > 4;\n' "'file'" "'in.jsonl'" "'json'" "'ts'" >chain.vpq
expect 0 "explain a chain of AND" -- "$vpq" explain chain.vpq
grep -qF "where ((((v > 1) AND (v > 2)) AND (v > 3)) AND (v > 4))" out.txt || { echo "FAIL: chain plan:"; cat out.txt; fails=$((fails + 1)); }

printf 'CREATE STREAM s (k STRING) WITH (connector = %s);\nCREATE STREAM t AS SELECT nope FROM s;\n' "'file'" >bad.vpq
expect 1 "check a broken file" -- "$vpq" check bad.vpq
grep -q "^bad.vpq:2:" err.txt || { echo "FAIL: diagnostics position:"; cat err.txt; fails=$((fails + 1)); }
expect 1 "run a broken file" -- "$vpq" run bad.vpq

printf 'CREATE STREAM s (k STRING KEY, ts TIMESTAMP) WITH (connector = %s, path = %s, format = %s);\nCREATE STREAM t AS SELECT k FROM s;\n' "'file'" "'absent.jsonl'" "'json'" >absent.vpq
expect 1 "run with a missing input file" -- "$vpq" run absent.vpq
grep -q "absent.jsonl" err.txt || { echo "FAIL: missing input message: $(cat err.txt)"; fails=$((fails + 1)); }

printf 'k,time,v\na,1000,2\n' >nots.csv
printf 'CREATE STREAM s (k STRING KEY, ts TIMESTAMP, v DOUBLE) WITH (connector = %s, path = %s, format = %s, timestamp = %s);\nCREATE STREAM t AS SELECT k, v FROM s;\n' "'file'" "'nots.csv'" "'csv'" "'ts'" >nots.vpq
expect 1 "run with a CSV header lacking the timestamp column" -- "$vpq" run nots.vpq
grep -q "bad CSV header in \`nots.csv\`: the header has no column \`ts\` (the \`timestamp\` column)" err.txt \
  || { echo "FAIL: CSV header message: $(cat err.txt)"; fails=$((fails + 1)); }
: >empty.csv
sed 's/nots.csv/empty.csv/' nots.vpq >empty.vpq
expect 1 "run with an empty CSV file (no header line)" -- "$vpq" run empty.vpq
grep -q "bad CSV header in \`empty.csv\`: the file has no header line (it is empty)" err.txt \
  || { echo "FAIL: empty CSV message: $(cat err.txt)"; fails=$((fails + 1)); }

expect 0 "run --state-dir" -- "$vpq" run ok.vpq --state-dir state
[ "$(cat out.txt)" = '{"k":"a","v2":3.0}' ] && grep -q "1 checkpoint(s) in state (0 failed)" err.txt \
  || { echo "FAIL: run --state-dir: $(cat out.txt) $(cat err.txt)"; fails=$((fails + 1)); }
expect 0 "run --state-dir again: resumes at the end, nothing new" -- "$vpq" run ok.vpq --state-dir state
[ ! -s out.txt ] && grep -q "resumed from checkpoint 1 in state" err.txt \
  || { echo "FAIL: second run --state-dir: $(cat out.txt) $(cat err.txt)"; fails=$((fails + 1)); }
expect 0 "run --state-dir --reset-state: from the start" -- "$vpq" run ok.vpq --state-dir state --reset-state
[ "$(cat out.txt)" = '{"k":"a","v2":3.0}' ] || { echo "FAIL: --reset-state: $(cat out.txt)"; fails=$((fails + 1)); }
expect 2 "run --checkpoint-interval with a bad duration" -- "$vpq" run ok.vpq --state-dir state --checkpoint-interval soon
grep -q "checkpoint-interval takes a duration" err.txt || { echo "FAIL: bad interval: $(cat err.txt)"; fails=$((fails + 1)); }

printf "CREATE STREAM m (site STRING, ts TIMESTAMP) WITH (connector = 'sim', stream = 'meters', pv = 'x');\nCREATE STREAM o AS SELECT site FROM m;\n" >pv.vpq
expect 1 "check a sim source whose pv is not a number" -- "$vpq" check pv.vpq
grep -q "^pv.vpq:1:94: error: option \`pv\` needs a non-negative number" err.txt || { echo "FAIL: pv diagnostic: $(cat err.txt)"; fails=$((fails + 1)); }

# `--set repartition` takes on or off (docs/language.md): another value is a usage error, for
# explain and for run, also when the file has no Kafka source that would notice it.
usage_names "explain --set repartition=maybe" "--set repartition is 'on' or 'off', not 'maybe'" -- "$vpq" explain --set repartition=maybe ok.vpq
usage_names "run --set repartition=maybe" "--set repartition is 'on' or 'off', not 'maybe'" -- "$vpq" run ok.vpq --set repartition=maybe
expect 0 "explain --set repartition=off" -- "$vpq" explain --set repartition=off ok.vpq
# A key no connector and not the engine takes is a usage error (a typo would do nothing).
usage_names "run --set with an unknown key" "unknown setting \`bogus\`" -- "$vpq" run ok.vpq --set bogus=1
usage_names "run --set with a misspelt option" "did you mean \`idle_timeout\`" -- "$vpq" run ok.vpq --set idle_timout=5s
usage_names "explain --set with no key" "unknown setting" -- "$vpq" explain --set =x ok.vpq
# A connector option set for a file without that connector has no effect: the log says so.
expect 0 "run --set kafka.* on a file without Kafka" -- "$vpq" run ok.vpq --set kafka.security.protocol=SSL --set devices=3
grep -qF "vpq: --set kafka.security.protocol has no effect: no source or sink of ok.vpq uses connector 'kafka'" err.txt \
  && grep -qF "vpq: --set devices has no effect: no source or sink of ok.vpq uses connector 'sim'" err.txt \
  || { echo "FAIL: no line for settings without effect:"; cat err.txt; fails=$((fails + 1)); }
expect 0 "run --set sim.* outside the demo" -- "$vpq" run ok.vpq --set sim.hours=1
grep -qF "vpq: --set sim.hours has no effect: sim.<name> settings are the demo's" err.txt \
  || { echo "FAIL: no line for a sim.* setting outside the demo:"; cat err.txt; fails=$((fails + 1)); }

# The MLP takes `ridge` as docs/language.md lists it (the penalty of its linear base model): it
# checks, and a different ridge gives different forecasts.
/usr/bin/python3 -c '
import math
for i in range(24 * 12): print("%d,%.3f" % (1704067200000 + i * 3600000, 100 + 20 * math.sin(i * math.pi / 12) + (i * 7919 % 13)))
' | sed '1i ts,v' >series.csv
for r in 1.0 1000; do
  cat >mlp_$r.vpq <<VPQ
CREATE STREAM s (ts TIMESTAMP, v DOUBLE) WITH (connector = 'file', path = 'series.csv', format = 'csv', timestamp = 'ts');
CREATE STREAM f AS FORECAST v FROM s USING mlp (season = 1 DAY, ridge = $r) HORIZON 2 HOURS EVERY 1 DAY STEP 1 HOUR;
VPQ
  expect 0 "check an mlp with ridge = $r" -- "$vpq" check mlp_$r.vpq
  expect 0 "run an mlp with ridge = $r" -- "$vpq" run mlp_$r.vpq
  cp out.txt mlp_$r.out
done
[ "$(wc -l <mlp_1.0.out)" -gt 10 ] && ! cmp -s mlp_1.0.out mlp_1000.out || { echo "FAIL: mlp ridge changes nothing"; fails=$((fails + 1)); }

# `--set` gives every connector the properties its WITH does not name (README): a sim source's
# number options too (`sites`), not only its `pv`; one the WITH names stays as it is.
cat >simset.vpq <<'VPQ'
CREATE STREAM m (site STRING KEY, ts TIMESTAMP, load_kw DOUBLE)
  WITH (connector = 'sim', stream = 'meters', timestamp = 'ts', duration = 1 HOUR, history = 1 HOUR);
CREATE TABLE o AS SELECT count_distinct(site) AS sites, count(*) AS n FROM m;
VPQ
expect 0 "run a sim source with --set sites=2" -- "$vpq" run simset.vpq --set sites=2 --set history=0
[ "$(tail -1 out.txt)" = '{"sites":2,"n":242}' ] || { echo "FAIL: --set sites=2 on a sim source: $(tail -1 out.txt)"; fails=$((fails + 1)); }
expect 1 "run a sim source with --set sites=0" -- "$vpq" run simset.vpq --set sites=0
grep -q "1..10000 sites" err.txt || { echo "FAIL: --set sites=0 on a sim source: $(cat err.txt)"; fails=$((fails + 1)); }
expect 1 "run a sim source with --set sites=abc" -- "$vpq" run simset.vpq --set sites=abc
grep -qF "\`sites\` of a sim connector is a whole number from 0 to 10000, not 'abc'" err.txt \
  || { echo "FAIL: --set sites=abc on a sim source: $(cat err.txt)"; fails=$((fails + 1)); }
expect 1 "run a sim source with --set speed=-1" -- "$vpq" run simset.vpq --set speed=-1
grep -qF "\`speed\` of a sim connector is a whole number" err.txt \
  || { echo "FAIL: --set speed=-1 on a sim source: $(cat err.txt)"; fails=$((fails + 1)); }

# A SCHEDULE whose fleet rows carry no event time at or before an issue (a fleet file without a
# `timestamp`: its rows are stamped when read) plans no battery: a warning says why.
printf 'device_id,soc,capacity_kwh,max_kw\nb1,0.5,10,5\n' >fleet.csv
printf 'issued_at,ts,value\n86400000,86400000,10\n86400000,90000000,20\n' >forecast.csv
cat >nofleet.vpq <<'VPQ'
CREATE TABLE fleet (device_id STRING PRIMARY KEY, soc DOUBLE, capacity_kwh DOUBLE, max_kw DOUBLE)
  WITH (connector = 'file', path = 'fleet.csv', format = 'csv');
CREATE STREAM fc (issued_at TIMESTAMP, ts TIMESTAMP, value DOUBLE)
  WITH (connector = 'file', path = 'forecast.csv', format = 'csv', timestamp = 'issued_at');
CREATE STREAM plan AS SCHEDULE fleet FOR fc MINIMIZE PEAK HORIZON 2 HOURS STEP 1 HOUR;
VPQ
expect 0 "run a SCHEDULE whose fleet has no row before the issue" -- "$vpq" run nofleet.vpq
grep -qF "none of the fleet's 1 batteries has a row at or before issue 86400000" err.txt \
  || { echo "FAIL: no warning for a fleet with no row before the issue: $(cat err.txt)"; fails=$((fails + 1)); }

# --set cannot change a statement's own options (the analysis has read them): refused.
usage_names "run --set watermark_delay" "\`watermark_delay\` belongs to a statement" -- "$vpq" run ok.vpq --set watermark_delay=100

# A file whose last statement is a source prints that source's rows whole (no query reads its
# columns, but printing them does).
printf '{"device_id":"d1","site":"s1","ts":1000,"soc":0.5,"power_kw":2}\n' >tel.jsonl
cat >source_only.vpq <<'VPQ'
CREATE STREAM telemetry (device_id STRING KEY, site STRING, ts TIMESTAMP, soc DOUBLE, power_kw DOUBLE)
  WITH (connector = 'file', path = 'tel.jsonl', timestamp = 'ts');
VPQ
expect 0 "run a file whose last statement is a source" -- "$vpq" run source_only.vpq
[ "$(cat out.txt)" = '{"device_id":"d1","site":"s1","ts":1000,"soc":0.5,"power_kw":2.0}' ] \
  || { echo "FAIL: a printed source lost columns: $(cat out.txt)"; fails=$((fails + 1)); }

# Two sinks writing one file through a symbolic link whose target does not exist yet (nor the
# folder it is in) are one file: refused before a first run lets them overwrite each other.
mkdir -p linked && ln -sfn ../later/deep linked/out
printf '{"k":"a","ts":1}\n' >linked/a.jsonl
cat >linked/q.vpq <<'VPQ'
CREATE STREAM a (k STRING, ts TIMESTAMP) WITH (connector = 'file', path = 'a.jsonl', timestamp = 'ts');
CREATE STREAM z1 WITH (connector = 'file', path = 'out/x.jsonl') AS SELECT k FROM a;
CREATE STREAM z2 WITH (connector = 'file', path = '../later/./deep/x.jsonl') AS SELECT k FROM a;
VPQ
expect 1 "check two sinks of one file through a dangling link" -- "$vpq" check linked/q.vpq
grep -qF "\`z2\` writes \`linked/../later/./deep/x.jsonl\`, which \`z1\` writes too" err.txt \
  || { echo "FAIL: one file through a dangling link: $(cat err.txt)"; fails=$((fails + 1)); }

# Ctrl-C stops a run that waits for a cluster that does not answer: it gives up repeating its
# requests (which, each blocking for seconds, went on for minutes past "up to 60 s", deaf to
# signals). Port 1 on this machine: nothing listens.
cat >unreachable.vpq <<'VPQ'
CREATE STREAM t (ts TIMESTAMP, v DOUBLE) WITH (connector = 'kafka', topic = 'vpp.telemetry', timestamp = 'ts');
CREATE STREAM o WITH (connector = 'file', path = 'unreachable.jsonl') AS SELECT v FROM t;
VPQ
"$vpq" run unreachable.vpq --brokers 127.0.0.1:1 >/dev/null 2>unreachable.err &
pid=$!
sleep 2
kill -INT $pid
for _ in $(seq 60); do kill -0 $pid 2>/dev/null || break; sleep 0.5; done
if kill -0 $pid 2>/dev/null; then
  kill -9 $pid
  echo "FAIL: Ctrl-C did not stop a run waiting for an unreachable cluster within 30 s"; fails=$((fails + 1))
fi
wait $pid 2>/dev/null

# The simulator says so, and fails, when the cluster takes none of its messages (it exited 0,
# having sent nothing).
expect 1 "simulate to an unreachable cluster" -- "$vpq" simulate --brokers 127.0.0.1:1 --hours 1 --speed 36000
grep -q "message(s) not delivered to 127.0.0.1:1" err.txt \
  || { echo "FAIL: no line about undelivered messages: $(grep -v '^%' err.txt | tail -2)"; fails=$((fails + 1)); }

# Memory of a backfill: 120 days of hourly load read from a file, one FORECAST issue per row and
# a plan of two batteries per issue. An input batch brings thousands of issues, and what the
# operators allocate per issue lasts until the batch is done: each issue and plan took a batch
# of 2,048 rows (about 190 KB): 807 MiB resident at the peak. Sized to their rows: 30 MiB (the
# limit, 150 MiB, holds in a plain build; AddressSanitizer's shadow memory takes far more).
/usr/bin/python3 -c "
import math
with open('hourly.jsonl', 'w') as f:
    for i in range(2880):
        f.write('{\"ts\":%d,\"load\":%.3f}\\n' % (i * 3600000, 100 + 10 * math.sin(i * 2 * math.pi / 24)))
"
printf 'device_id,soc,capacity_kwh,max_kw,seen\nb1,0.5,10,5,0\nb2,0.5,20,5,0\n' >pair.csv
cat >backfill.vpq <<'VPQ'
CREATE STREAM hourly (ts TIMESTAMP, load DOUBLE) WITH (connector = 'file', path = 'hourly.jsonl', timestamp = 'ts');
CREATE TABLE pair (device_id STRING PRIMARY KEY, soc DOUBLE, capacity_kwh DOUBLE, max_kw DOUBLE, seen TIMESTAMP)
  WITH (connector = 'file', path = 'pair.csv', format = 'csv', timestamp = 'seen');
CREATE STREAM fc WITH (connector = 'file', path = 'fc.jsonl') AS
  FORECAST load FROM hourly USING seasonal_naive (season = 1 DAY) HORIZON 24 HOURS EVERY 1 HOUR;
CREATE STREAM plan WITH (connector = 'file', path = 'plan.jsonl') AS
  SCHEDULE pair FOR fc MINIMIZE PEAK HORIZON 24 HOURS STEP 1 HOUR EMIT PLAN;
VPQ
# The first issue is at 2 h, the first with two rows before it to infer the step from: 2,879.
expect 0 "run a backfill of 2,879 forecast issues and plans" -- "$vpq" run backfill.vpq
peak=$(sed -n 's/^vpq: peak memory \([0-9.]*\) MiB resident$/\1/p' err.txt)
[ "$(wc -l <fc.jsonl)" -eq 69096 ] && [ "$(wc -l <plan.jsonl)" -eq 138192 ] && [ -n "$peak" ] \
  && { grep -q __asan_init "$vpq" || /usr/bin/python3 -c "import sys; sys.exit(0 if float('$peak') < 150 else 1)"; } \
  || { echo "FAIL: the backfill wrote $(wc -l <fc.jsonl) forecast rows, $(wc -l <plan.jsonl) plan rows, peak memory '$peak' MiB (limit 150)"; fails=$((fails + 1)); }

# `vpq COMMAND --help` (or -h, anywhere among its arguments) prints that command's usage on
# stdout and exits 0; before, each of them was a usage error (exit 2).
for c in check explain run backtest simulate broker; do
  for h in --help -h; do
    expect 0 "$c $h" -- "$vpq" "$c" "$h"
    head -1 out.txt | grep -q "^usage: vpq $c " && [ ! -s err.txt ] \
      || { echo "FAIL: $c $h: $(head -1 out.txt) $(cat err.txt)"; fails=$((fails + 1)); }
  done
done
expect 0 "run FILE --help" -- "$vpq" run ok.vpq --help
head -1 out.txt | grep -q "^usage: vpq run FILE.vpq" || { echo "FAIL: run FILE --help: $(head -1 out.txt)"; fails=$((fails + 1)); }

# A folder named as the file is said to be one (it was "Input/output error").
mkdir -p folder.vpq
usage_names "check a folder" "vpq: cannot read \`folder.vpq\`: Is a directory" -- "$vpq" check folder.vpq

# What the Kafka connector would refuse when the run opens it, check finds at its place: a
# property librdkafka does not take, and an empty consumer group (check said nothing before).
cat >kafka_props.vpq <<'VPQ'
CREATE STREAM s (k STRING KEY, ts TIMESTAMP)
  WITH (connector = 'kafka', topic = 't', timestamp = 'ts', 'kafka.bogus.prop' = 'x', group = '');
CREATE STREAM o WITH (connector = 'kafka', topic = 'o', 'kafka.acks' = 'banana') AS SELECT k FROM s;
VPQ
expect 1 "check Kafka properties librdkafka refuses and an empty group" -- "$vpq" check kafka_props.vpq
grep -qF 'kafka_props.vpq:2:61: error: kafka property `bogus.prop`: No such configuration property: "bogus.prop"' err.txt \
  && grep -qF 'kafka_props.vpq:2:87: error: `group` names a consumer group: it cannot be empty' err.txt \
  && grep -qF 'kafka_props.vpq:3:57: error: kafka property `acks`: Invalid value for configuration property "request.required.acks"' err.txt \
  || { echo "FAIL: Kafka option diagnostics:"; cat err.txt; fails=$((fails + 1)); }
expect 1 "run refuses them as check does" -- "$vpq" run kafka_props.vpq --brokers 127.0.0.1:1
grep -qF 'kafka_props.vpq:2:61: error: kafka property `bogus.prop`' err.txt \
  || { echo "FAIL: run of refused Kafka options:"; cat err.txt; fails=$((fails + 1)); }
# Beside the analysis' errors too (audit 43: they came only once the file had no other error).
sed 's/SELECT k FROM s/SELECT nosuch FROM s/' kafka_props.vpq >kafka_props2.vpq
expect 1 "check Kafka properties beside other errors" -- "$vpq" check kafka_props2.vpq
grep -qF 'kafka_props2.vpq:2:61: error: kafka property `bogus.prop`' err.txt \
  && grep -qF 'kafka_props2.vpq:3:57: error: kafka property `acks`' err.txt && grep -q "nosuch" err.txt \
  || { echo "FAIL: Kafka option diagnostics beside another error:"; cat err.txt; fails=$((fails + 1)); }

# A file that names its Kafka cluster (in WITH, or with --set kafka.bootstrap.servers) runs
# against it without --brokers: not the demo, and stdout holds only the rows (before, the demo
# started its broker and simulator and printed its summary among them).
. "$kafka_lib"
start_broker "$vpq" "$work" --topic named:1
printf '%s\n' '{"k":"a","ts":1000}' '{"k":"b","ts":2000}' | kcat -b "$bootstrap" -P -t named \
  || { echo "FAIL: kcat could not produce"; fails=$((fails + 1)); }
cat >named.vpq <<VPQ
CREATE STREAM s (k STRING, ts TIMESTAMP)
  WITH (connector = 'kafka', topic = 'named', timestamp = 'ts', bounded = true, 'kafka.bootstrap.servers' = '$bootstrap');
CREATE STREAM o AS SELECT k, ts FROM s;
VPQ
rows=$(printf '%s\n' '{"k":"a","ts":1000}' '{"k":"b","ts":2000}')
expect 0 "run a file naming its cluster, without --brokers" -- timeout 60 "$vpq" run named.vpq
[ "$(cat out.txt)" = "$rows" ] && ! grep -q "demo" err.txt \
  || { echo "FAIL: a file naming its cluster:"; cat out.txt err.txt; fails=$((fails + 1)); }
sed "s/, 'kafka.bootstrap.servers' = '[^']*'//" named.vpq >unnamed.vpq
expect 0 "run with --set kafka.bootstrap.servers, without --brokers" -- timeout 60 "$vpq" run unnamed.vpq --set kafka.bootstrap.servers="$bootstrap"
[ "$(cat out.txt)" = "$rows" ] && ! grep -q "demo" err.txt \
  || { echo "FAIL: --set kafka.bootstrap.servers:"; cat out.txt err.txt; fails=$((fails + 1)); }

# A run stopped (SIGTERM, SIGINT) before the end of its bounded input says so and exits 128 plus
# the signal: not everything is written (it exited 0, as a finished run does: audit 35). The
# input is an hour of the simulator's meter readings at 60 times the wall clock: a minute long.
cat >long.vpq <<'VPQ'
CREATE STREAM m (site STRING, ts TIMESTAMP, load_kw DOUBLE)
  WITH (connector = 'sim', stream = 'meters', sites = 2, speed = 60, duration = 1 HOUR, history = 1 MINUTE);
CREATE STREAM o WITH (connector = 'file', path = 'long_out.jsonl') AS SELECT site, ts, load_kw FROM m;
VPQ
for sig in TERM INT; do
  rm -f long_out.jsonl
  "$vpq" run long.vpq 2>err.txt &
  pid=$!
  for _ in $(seq 1000); do [ -s long_out.jsonl ] && break; sleep 0.01; done
  kill -$sig $pid
  wait $pid
  got=$?
  want=$((128 + $(kill -l $sig)))
  [ $got = $want ] && [ -s long_out.jsonl ] && grep -q "stopped before the end of its input: the output is not complete" err.txt \
    || { echo "FAIL: a run stopped by SIG$sig: exit $got, expected $want"; cat err.txt; fails=$((fails + 1)); }
done

if [ "$fails" -gt 0 ]; then echo "$fails CLI checks failed"; exit 1; fi
echo "all CLI checks passed"
