#!/usr/bin/env bash
# test_table_sink.sh VPQ — a table written to Kafka: one message per change of a key, keyed by
# the GROUP BY key, and a key that leaves the table (region e empties when its last battery
# moves away) written as a tombstone (the key with a null value), so that the topic compacts
# to the table's state. Read back in offset order by kafka-python, a client we did not write,
# from a plain run and from a checkpointed run (exactly-once: messages held until their
# checkpoint, then written with identities); expected messages are written by hand. Then vpq
# reads the topic back as a table source, where the tombstone deletes the key.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic vpq.regions:1 --topic vpq.regions_eo:1 --topic vpq.ids:1 --topic vpq.many:1 \
  --topic vpq.rollup:4 --topic vpq.rollup_eo:4
cd "$work" || exit 1
printf '%s\n' '{"device_id":"a","region":"e","ts":1000,"soc":0.5}' '{"device_id":"b","region":"w","ts":2000,"soc":0.25}' \
  '{"device_id":"a","region":"w","ts":3000,"soc":0.5}' '{"device_id":"c","region":"e","ts":4000,"soc":1}' >tel.jsonl
query() {
  cat <<VPQ
CREATE STREAM tel (device_id STRING KEY, region STRING, ts TIMESTAMP, soc DOUBLE)
  WITH (connector = 'file', path = 'tel.jsonl', timestamp = 'ts');
CREATE TABLE bat AS SELECT device_id, last(region) AS region, last(soc) AS soc FROM tel GROUP BY device_id;
CREATE TABLE regions WITH (connector = 'kafka', topic = '$1') AS
  SELECT region, count(*) AS batteries, sum(soc) AS soc FROM bat GROUP BY region;
VPQ
}
# read_in_order TOPIC — every message of the topic's one partition as (key, value, timestamp).
read_in_order() {
  /usr/bin/python3 - "$bootstrap" "$1" <<'PY'
import sys
from kafka import KafkaConsumer, TopicPartition
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5), consumer_timeout_ms=5000,
                         auto_offset_reset="earliest", enable_auto_commit=False)
part = TopicPartition(sys.argv[2], 0)
consumer.assign([part])
consumer.seek_to_beginning(part)
for m in consumer:
    print(repr((m.key.decode(), m.value.decode() if m.value is not None else None, m.timestamp)))
PY
}
expected="('e', '{\"region\":\"e\",\"batteries\":1,\"soc\":0.5}', 1000)
('w', '{\"region\":\"w\",\"batteries\":1,\"soc\":0.25}', 2000)
('e', None, 3000)
('w', '{\"region\":\"w\",\"batteries\":2,\"soc\":0.75}', 3000)
('e', '{\"region\":\"e\",\"batteries\":1,\"soc\":1.0}', 4000)"
query vpq.regions >plain.vpq
"$vpq" run plain.vpq --brokers "$bootstrap" 2>err.txt || { echo "vpq run failed:"; cat err.txt; exit 1; }
got=$(read_in_order vpq.regions)
if [ "$got" != "$expected" ]; then
  echo "plain run, got:"; echo "$got"; echo "expected:"; echo "$expected"; exit 1
fi
query vpq.regions_eo >eo.vpq
"$vpq" run eo.vpq --brokers "$bootstrap" --state-dir state 2>err.txt || { echo "vpq run --state-dir failed:"; cat err.txt; exit 1; }
got=$(read_in_order vpq.regions_eo)
if [ "$got" != "$expected" ]; then
  echo "checkpointed run, got:"; echo "$got"; echo "expected:"; echo "$expected"; exit 1
fi
# vpq reads the topic back as a table source: the tombstone deletes region e, so a table copied
# from it writes the same changes (the deletion as the key with NULL values, in a file).
cat >readback.vpq <<'VPQ'
CREATE TABLE regions (region STRING PRIMARY KEY, batteries BIGINT, soc DOUBLE)
  WITH (connector = 'kafka', topic = 'vpq.regions', bounded = true);
CREATE TABLE copy WITH (connector = 'file', path = 'copy.jsonl') AS SELECT region, batteries, soc FROM regions;
VPQ
"$vpq" run readback.vpq --brokers "$bootstrap" 2>err.txt || { echo "vpq run readback.vpq failed:"; cat err.txt; exit 1; }
expected='{"region":"e","batteries":1,"soc":0.5}
{"region":"w","batteries":1,"soc":0.25}
{"region":"e","batteries":null,"soc":null}
{"region":"w","batteries":2,"soc":0.75}
{"region":"e","batteries":1,"soc":1.0}'
if [ "$(cat copy.jsonl)" != "$expected" ]; then
  echo "read back as a table, got:"; cat copy.jsonl; echo "expected:"; echo "$expected"; cat err.txt; exit 1
fi
# A BIGINT key: a tombstone deletes its key; one whose key is not a BIGINT (here one that would
# smuggle a field into the row) is a type mismatch, dead-lettered, and deletes nothing.
printf '%s\n' '1|{"id":1,"v":5}' '2|{"id":2,"v":6}' '1|' '2,"v":9|' | kcat -P -b "$bootstrap" -t vpq.ids -K'|' -Z
cat >ids.vpq <<'VPQ'
CREATE TABLE ids (id BIGINT PRIMARY KEY, v BIGINT)
  WITH (connector = 'kafka', topic = 'vpq.ids', bounded = true, dead_letter = 'ids_dead.jsonl');
CREATE TABLE ids_copy WITH (connector = 'file', path = 'ids.jsonl') AS SELECT id, v FROM ids;
VPQ
"$vpq" run ids.vpq --brokers "$bootstrap" 2>err.txt || { echo "vpq run ids.vpq failed:"; cat err.txt; exit 1; }
expected='{"id":1,"v":5}
{"id":2,"v":6}
{"id":1,"v":null}'
if [ "$(cat ids.jsonl)" != "$expected" ]; then
  echo "BIGINT-keyed table with tombstones, got:"; cat ids.jsonl; echo "expected:"; echo "$expected"; exit 1
fi
grep -q '"reason":"type mismatch".*"raw":"2,\\"v\\":9"' ids_dead.jsonl \
  || { echo "the tombstone with a bad key was not dead-lettered as a type mismatch:"; cat ids_dead.jsonl; exit 1; }
# Many keys come and go (200 upserted, 150 deleted, 10 of those back, one changed): the table
# drops the deleted keys' memory once they are most of it, and its state stays exact.
/usr/bin/python3 -c '
for i in range(200): print("k%03d|{\"id\":\"k%03d\",\"v\":%d}" % (i, i, i))
for i in range(150): print("k%03d|" % i)
for i in range(10): print("k%03d|{\"id\":\"k%03d\",\"v\":%d}" % (i, i, 1000 + i))
print("k199|{\"id\":\"k199\",\"v\":5}")' | kcat -P -b "$bootstrap" -t vpq.many -K'|' -Z
cat >many.vpq <<'VPQ'
CREATE TABLE many (id STRING PRIMARY KEY, v BIGINT) WITH (connector = 'kafka', topic = 'vpq.many', bounded = true);
CREATE TABLE n WITH (connector = 'file', path = 'many.jsonl') AS SELECT count(*) AS keys, sum(v) AS total FROM many;
VPQ
"$vpq" run many.vpq --brokers "$bootstrap" 2>err.txt || { echo "vpq run many.vpq failed:"; cat err.txt; exit 1; }
want=$(/usr/bin/python3 -c 'print("{\"keys\":60,\"total\":%d}" % (sum(range(150, 199)) + 5 + sum(1000 + i for i in range(10))))')
[ "$(tail -1 many.jsonl)" = "$want" ] || { echo "keys that come and go: got $(tail -1 many.jsonl), want $want"; exit 1; }
# A single key that is NULL (a ROLLUP's grand total, a battery with no site) is the null message
# key and '' the empty key, both in the partition of the empty key, so each keeps its rows in
# order (the partitioner scattered the NULL key's rows, and '' went unkeyed too, so no consumer
# could tell their newest row); every other key in one partition too, in both modes (audit 20).
printf '%s\n' '{"device_id":"a","region":"e","ts":1000,"soc":0.5}' '{"device_id":"b","region":"","ts":2000,"soc":0.25}' \
  '{"device_id":"c","ts":3000,"soc":0.75}' '{"device_id":"c","region":"w","ts":4000,"soc":1}' \
  '{"device_id":"d","region":"w","ts":5000,"soc":0.5}' >tel.jsonl
for mode in plain eo; do
  topic=vpq.rollup$([ $mode = eo ] && echo _eo)
  cat >rollup.vpq <<VPQ
CREATE STREAM tel (device_id STRING KEY, region STRING, ts TIMESTAMP, soc DOUBLE)
  WITH (connector = 'file', path = 'tel.jsonl', timestamp = 'ts');
CREATE TABLE bat AS SELECT device_id, last(region) AS region, last(soc) AS soc FROM tel GROUP BY device_id;
CREATE TABLE regions WITH (connector = 'kafka', topic = '$topic') AS
  SELECT region, count(*) AS batteries FROM bat GROUP BY ROLLUP (region);
VPQ
  rm -rf state
  "$vpq" run rollup.vpq --brokers "$bootstrap" $([ $mode = eo ] && echo --state-dir state) 2>err.txt \
    || { echo "vpq run rollup.vpq ($mode) failed:"; cat err.txt; exit 1; }
  /usr/bin/python3 - "$bootstrap" "$topic" <<'PY' || { echo "the empty keys of a ROLLUP ($mode)"; exit 1; }
import sys
from kafka import KafkaConsumer, TopicPartition
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5), consumer_timeout_ms=5000,
                         auto_offset_reset="earliest", enable_auto_commit=False)
parts = [TopicPartition(sys.argv[2], p) for p in range(4)]
consumer.assign(parts)
consumer.seek_to_beginning(*parts)
messages = list(consumer)
assert len(messages) > 0, "no message"
where = {}
for m in messages:
    where.setdefault(m.key, set()).add(m.partition)
assert all(len(p) == 1 for p in where.values()), where
assert set(where) == {None, b"", b"e", b"w"}, where
assert where[None] == where[b""], where
nulls = [m.value for m in sorted(messages, key=lambda m: m.offset) if m.key is None]
assert nulls[-1] == b'{"region":null,"batteries":4}', nulls  # the grand total, newest last
empties = [m.value for m in messages if m.key == b""]
assert empties == [b'{"region":"","batteries":1}'], empties
print("keys None, '', e, w each in one partition; the null key's newest row %s" % nulls[-1])
PY
done
echo "a table's changes reached Kafka keyed, with a tombstone for the key that left, in both modes, and read back"
echo "as a table source the tombstone deleted the key"
