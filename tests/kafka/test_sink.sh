#!/usr/bin/env bash
# test_sink.sh VPQ — file → vpq → Kafka: a windowed aggregation written by the Kafka sink to a
# 2-partition topic on `vpq broker`, read back by kafka-python (a client we did not write) and
# compared message by message: JSON value, key (the GROUP BY key) and timestamp (the window
# result's event time, WINDOW_END − 1 ms). Expected values are written by hand.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic vpq.out:2
cd "$work" || exit 1
printf '%s\n' '{"site":"s1","ts":1000,"kw":2}' '{"site":"s2","ts":2000,"kw":3}' '{"site":"s1","ts":30000,"kw":4}' \
  '{"site":"s1","ts":61000,"kw":5}' >meters.jsonl
cat >q.vpq <<'VPQ'
CREATE STREAM meters (site STRING KEY, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'file', path = 'meters.jsonl', format = 'json', timestamp = 'ts');
CREATE STREAM per_minute WITH (connector = 'kafka', topic = 'vpq.out') AS
  SELECT site, WINDOW_START AS minute, sum(kw) AS kw FROM meters
  WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY site EMIT FINAL;
VPQ
"$vpq" run q.vpq --brokers "$bootstrap" 2>err.txt || { echo "vpq run failed:"; cat err.txt; exit 1; }
got=$(read_topic vpq.out 2)
expected=$(/usr/bin/python3 -c '
for m in sorted([("s1", "{\"site\":\"s1\",\"minute\":0,\"kw\":6.0}", 59999),
                 ("s2", "{\"site\":\"s2\",\"minute\":0,\"kw\":3.0}", 59999),
                 ("s1", "{\"site\":\"s1\",\"minute\":60000,\"kw\":5.0}", 119999)]):
    print(repr(m))')
if [ "$got" != "$expected" ]; then
  echo "got:"; echo "$got"; echo "expected:"; echo "$expected"; exit 1
fi
echo "the Kafka sink wrote 3 keyed, timestamped messages that kafka-python read back"
# A message's timestamp is the row's event time, but librdkafka takes 0 for "now": a row at
# ts = 1 is stamped 1, one at ts = 0 the time it is produced (docs/language.md says so).
printf '%s\n' '{"k":"a","ts":1}' '{"k":"b","ts":0}' >early.jsonl
cat >early.vpq <<'VPQ'
CREATE STREAM s (k STRING KEY, ts TIMESTAMP) WITH (connector = 'file', path = 'early.jsonl', timestamp = 'ts');
CREATE STREAM early WITH (connector = 'kafka', topic = 'vpq.early') AS SELECT k, ts FROM s;
VPQ
before=$(($(date +%s) * 1000))
"$vpq" run early.vpq --brokers "$bootstrap" 2>err.txt || { echo "vpq run failed:"; cat err.txt; exit 1; }
after=$(($(date +%s) * 1000 + 1000))
read_topic vpq.early 4 >early.txt
/usr/bin/python3 - "$before" "$after" <<'PY' || exit 1
import ast, sys
before, after = int(sys.argv[1]), int(sys.argv[2])
got = {key: ts for key, value, ts in map(ast.literal_eval, open("early.txt"))}
if got.get("a") != 1 or not before <= got.get("b", -1) <= after:
    print("timestamps of ts = 1 and ts = 0:", got, "expected 1 and the run's wall clock", before, after)
    sys.exit(1)
PY

# `partitions` (the count of a topic vpq creates): the mock cluster has no Admin API, so a
# sink's or source's topic that does not exist is left to auto-creation (4 partitions) with a
# line naming the topic and why; a topic that exists with another count is left as it is, with a
# line saying so. (Before, `partitions` did nothing and said nothing.)
cat >parts.vpq <<'VPQ'
CREATE STREAM s (k STRING KEY, ts TIMESTAMP) WITH (connector = 'file', path = 'early.jsonl', timestamp = 'ts');
CREATE STREAM made WITH (connector = 'kafka', topic = 'vpq.made', partitions = 2) AS SELECT k, ts FROM s;
CREATE STREAM again WITH (connector = 'kafka', topic = 'vpq.out', partitions = 3) AS SELECT k, ts FROM s;
VPQ
"$vpq" run parts.vpq --brokers "$bootstrap" 2>err.txt || { echo "vpq run failed:"; cat err.txt; exit 1; }
grep -qF "vpq: kafka: cannot create topic \`vpq.made\` with 2 partition(s) (\`partitions\`): the cluster names no controller among its brokers: it has no Admin API" err.txt \
  && grep -qF "vpq: kafka: topic \`vpq.out\` exists with 2 partition(s), not the 3 of \`partitions\`: left as it is" err.txt \
  || { echo "no line for \`partitions\`:"; cat err.txt; exit 1; }
kcat -b "$bootstrap" -L -t vpq.made | grep -q 'topic "vpq.made" with 4 partitions' \
  || { echo "vpq.made:"; kcat -b "$bootstrap" -L -t vpq.made; exit 1; }
cat >parts_source.vpq <<'VPQ'
CREATE STREAM s (k STRING KEY, ts TIMESTAMP) WITH (connector = 'kafka', topic = 'vpq.in', partitions = 2, bounded = true);
CREATE STREAM o AS SELECT k FROM s;
VPQ
"$vpq" run parts_source.vpq --brokers "$bootstrap" >/dev/null 2>err.txt || { echo "vpq run failed:"; cat err.txt; exit 1; }
grep -qF "vpq: kafka: cannot create topic \`vpq.in\` with 2 partition(s) (\`partitions\`)" err.txt \
  || { echo "no line for a source's \`partitions\`:"; cat err.txt; exit 1; }
echo "timestamps 1 and 0 written as librdkafka can; \`partitions\` said what it could not do"
