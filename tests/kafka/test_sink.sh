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
