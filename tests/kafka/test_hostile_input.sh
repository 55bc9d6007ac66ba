#!/usr/bin/env bash
# test_hostile_input.sh VPQ — bad and hostile messages on a Kafka topic never stop the engine
# nor touch its results. kafka-python (a client we did not write) produces, into one partition
# of `vpq broker`, 12 good rows and a late one among 26 bad ones: malformed JSON, records over
# `max_row_bytes` (one byte over, and 600,000 bytes of 0xFF), nesting one level too deep,
# non-UTF-8 bytes (in a value, in an unknown field, a BOM, an encoded surrogate), wrong types,
# not-an-object records, an empty message and a tombstone, a NULL or missing event time.
# Good rows exercise what must be accepted: unknown fields of any shape (ignored), field names
# in any case, the 64th nesting level, ISO-8601 times, escaped and raw UTF-8 (one key), a
# duplicate field (the last wins), a NULL key column (its own group), exactly max_row_bytes.
# A bounded `vpq run` aggregates 1-minute windows into a file; asserted: the whole output, one
# dead letter per bad record (and one for the late row) on the dead-letter topic with its exact
# reason, detail, origin topic/partition/offset and raw text or row, the counters, exit 0.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic hostile.in:1 --topic hostile.dead:1
cd "$work" || exit 1

/usr/bin/python3 - "$bootstrap" <<'PY' || { echo "producing with kafka-python failed"; exit 1; }
import codecs, json, sys
from kafka import KafkaProducer

# The dead-letter writer escapes each byte that is not valid UTF-8 as \u00XX: read it back alike.
codecs.register_error("byte_as_char", lambda e: ("".join(map(chr, e.object[e.start:e.end])), e.end))
def text(raw):
    return (raw or b"").decode("utf-8", "byte_as_char")

def nest(levels):
    return b"[" * levels + b"]" * levels

def padded(prefix, size):  # prefix + "pad":"xxx…"} of exactly `size` bytes
    return prefix + b',"pad":"' + b"x" * (size - len(prefix) - 10) + b'"}'

def null_ts_row(device, kw):
    return {"device_id": device, "ts": None, "soc": None, "power_kw": kw, "cycles": None, "online": None}

GOOD = None
# (message value, expected dead letter: (reason, detail) for a malformed record, with "row" for a
# decoded row that is dead-lettered, or GOOD)
messages = [
    (padded(b'{"device_id":"d1","ts":1000,"soc":0.5,"power_kw":2.0,"cycles":10', 200), GOOD),
    (padded(b'{"device_id":"d1","ts":1000,"soc":0.5,"power_kw":2.0,"cycles":10', 201),
     ("record too large", "201 bytes, the limit is 200")),
    (b"\xff" * 600000, ("record too large", "600000 bytes, the limit is 200")),
    (b'{"device_id":"d2","ts":2000,"soc":0.25,"firmware":{"version":"2.1","flags":[1,2,{"x":null}]},'
     b'"power_kw":-1.5,"vendor":"acme","cycles":3}', GOOD),
    (b'{"device_id":"d1","ts":9000,', ("invalid JSON", "unexpected end of input")),
    (b'{"device_id":"d1" "ts":9000}', ("invalid JSON", "unexpected '\"' at byte 18")),
    (b'{"device_id":"d1","ts":9000} x', ("invalid JSON", "unexpected text after the object at byte 29")),
    (b' { "Device_ID" : "d1" , "TS" : 3000 , "Power_KW" : 1e0 , "SOC" : 0.75 } \r\n', GOOD),
    (b'{"device_id":"d1","ts":6000,"power_kw":0.25,"deep":' + nest(63) + b"}", GOOD),
    (b'{"device_id":"d1","ts":9000,"deep":' + nest(64) + b"}", ("too deeply nested", "more than 64 levels at byte 98")),
    (b'{"device_id":"d\xff1","ts":9000}', ("invalid UTF-8", "byte 0xFF in a string at byte 15")),
    (b'{"device_id":"d1","ts":9000,"note":"\xc3\x28"}', ("invalid UTF-8", "byte 0xC3 in a string at byte 36")),
    (b'\xef\xbb\xbf{"device_id":"d1","ts":9000}', ("invalid JSON", "unexpected byte 0xEF at byte 0")),
    (b'{"device_id":"\xed\xa0\x80","ts":9000}', ("invalid UTF-8", "byte 0xED in a string at byte 14")),
    (b'{"device_id":"\\ud800","ts":9000}', ("invalid JSON", "unpaired surrogate escape at byte 14")),
    (b'{"device_id":"d2","ts":"1970-01-01T00:00:04Z","power_kw":0.5}', GOOD),
    (b'{"device_id":"d1","ts":9000,"power_kw":"high"}',
     ("type mismatch", 'field `power_kw`: expected DOUBLE, got string "high"')),
    (b'{"device_id":"d1","ts":9000,"cycles":1.5}', ("type mismatch", "field `cycles`: expected BIGINT, got number 1.5")),
    (b'{"device_id":"d1","ts":"yesterday"}', ("invalid timestamp", 'field `ts`: "yesterday" is not an ISO-8601 time')),
    (b'{"device_id":"d1","ts":9000,"soc":1e999}', ("type mismatch", "field `soc`: 1e999 is out of range for DOUBLE")),
    (b'{"device_id":"d1","ts":9000,"cycles":1e30}', ("type mismatch", "field `cycles`: 1e30 is out of range for BIGINT")),
    (b'{"device_id":"d1","ts":9000,"soc":[[[0.5]]]}', ("type mismatch", "field `soc`: expected DOUBLE, got an array")),
    (b'{"device_id":"d1","ts":9000,"online":"yes"}',
     ("type mismatch", 'field `online`: expected BOOLEAN, got string "yes"')),
    (b'{"device_id":"d1","ts":9000,"soc":NaN}', ("invalid JSON", "unexpected 'N' at byte 34")),
    (b'[{"device_id":"d1","ts":9000}]', ("not an object", "the record is an array")),
    (b'"d1"', ("not an object", "the record is a string")),
    (b"42", ("not an object", "the record is a number")),
    (b"", ("invalid JSON", "unexpected end of input")),
    (None, ("invalid JSON", "a null value (a tombstone), which deletes a key only in a table of one PRIMARY KEY column")),
    (b'{"device_id":"d1","ts":null,"power_kw":1.0}',
     ("invalid timestamp", "the event-time column is NULL", null_ts_row("d1", 1.0))),
    (b'{"device_id":"d3","power_kw":1.0}', ("invalid timestamp", "the event-time column is NULL", null_ts_row("d3", 1.0))),
    (b'{"device_id":null,"ts":5000,"power_kw":7.0}', GOOD),
    (b'{"device_id":"d\\u00e9","ts":7000,"power_kw":1.0}', GOOD),
    ('{"device_id":"dé","ts":7500,"power_kw":1.5}'.encode(), GOOD),
    (b'{"device_id":"d2","ts":8000,"power_kw":100.0,"power_kw":2.0}', GOOD),
    (b'{"device_id":"d1","ts":61000,"power_kw":3.0,"cycles":1}', GOOD),
    (b'{"device_id":"d1","ts":30000,"power_kw":9.0}',
     ("late", None, {"device_id": "d1", "ts": 30000, "soc": None, "power_kw": 9.0, "cycles": None, "online": None})),
    (b'{"device_id":"d2","ts":62000,"power_kw":1.0,"online":true}', GOOD),
    (b'{"device_id":"d1","ts":125000,"power_kw":0.5}', GOOD),
]
producer = KafkaProducer(bootstrap_servers=sys.argv[1], api_version=(2, 5), max_in_flight_requests_per_connection=1)
expected = []
for value, dead in messages:
    offset = producer.send("hostile.in", value=value, key=b"k", partition=0).get(timeout=30).offset
    if dead is GOOD:
        continue
    letter = {"reason": dead[0]}
    if dead[1] is not None:
        letter["detail"] = dead[1]
    letter["origin"] = f"hostile.in/0/{offset}"
    if len(dead) == 3:
        letter["row"] = dead[2]
    elif value is not None and len(value) > 65536:  # the writer keeps the first 64 KiB
        letter["raw"] = text(value[:65536])
        letter["raw_bytes"] = len(value)
    else:
        letter["raw"] = text(value)
    expected.append(letter)
producer.close()
with open("expected_dead.json", "w") as out:
    json.dump(expected, out)
PY

cat >q.vpq <<'VPQ'
CREATE STREAM telemetry (device_id STRING KEY, ts TIMESTAMP, soc DOUBLE, power_kw DOUBLE, cycles BIGINT,
                         online BOOLEAN)
  WITH (connector = 'kafka', topic = 'hostile.in', format = 'json', timestamp = 'ts', bounded = true,
        dead_letter = 'hostile.dead', max_row_bytes = 200);
CREATE STREAM per_minute WITH (connector = 'file', path = 'out/per_minute.jsonl', format = 'json') AS
  SELECT device_id, WINDOW_START AS minute, count(*) AS n, sum(power_kw) AS kw, max(soc) AS soc,
         sum(cycles) AS cycles
  FROM telemetry WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY device_id EMIT FINAL;
VPQ
timeout 120 "$vpq" run q.vpq --brokers "$bootstrap" 2>err.txt
rc=$?
[ $rc -eq 0 ] || { echo "vpq run exited $rc:"; cat err.txt; exit 1; }
counters=$(grep '^vpq: .* rows in' err.txt)
want_counters="vpq: 13 rows in, 7 rows out, 1 late, 26 malformed, 27 dead-lettered"
[ "$counters" = "$want_counters" ] || { echo "counters: '$counters', expected '$want_counters'"; cat err.txt; exit 1; }
want_reasons="vpq: refused by reason: invalid JSON 8, invalid UTF-8 3, not an object 3, type mismatch 6, invalid timestamp 3, record too large 2, too deeply nested 1, late 1"
reasons=$(grep '^vpq: refused by reason' err.txt)
[ "$reasons" = "$want_reasons" ] || { echo "reasons: '$reasons', expected '$want_reasons'"; exit 1; }
if grep -v -e '^vpq: .* rows in, ' -e '^vpq: at most .* aggregation groups open at once' -e '^vpq: refused by reason' -e '^vpq: peak memory' err.txt | grep -q .; then
  echo "unexpected messages from vpq run (e.g. a dead letter that could not be written):"; cat err.txt; exit 1
fi

cat >expected.jsonl <<'OUT'
{"device_id":"d1","minute":0,"n":3,"kw":3.25,"soc":0.75,"cycles":10}
{"device_id":"d2","minute":0,"n":3,"kw":1.0,"soc":0.25,"cycles":3}
{"device_id":null,"minute":0,"n":1,"kw":7.0,"soc":null,"cycles":null}
{"device_id":"dé","minute":0,"n":2,"kw":2.5,"soc":null,"cycles":null}
{"device_id":"d1","minute":60000,"n":1,"kw":3.0,"soc":null,"cycles":1}
{"device_id":"d2","minute":60000,"n":1,"kw":1.0,"soc":null,"cycles":null}
{"device_id":"d1","minute":120000,"n":1,"kw":0.5,"soc":null,"cycles":null}
OUT
diff expected.jsonl out/per_minute.jsonl || { echo "the aggregate of the good rows differs (expected < > got)"; exit 1; }

/usr/bin/python3 - "$bootstrap" <<'PY' || exit 1
import json, sys
from kafka import KafkaConsumer, TopicPartition
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5), auto_offset_reset="earliest",
                         enable_auto_commit=False, fetch_max_bytes=8 << 20, max_partition_fetch_bytes=8 << 20)
part = TopicPartition("hostile.dead", 0)
consumer.assign([part])
consumer.seek_to_beginning(part)
end = consumer.end_offsets([part])[part]
got = []
for _ in range(60):  # read up to the end offset (polls return as soon as messages come)
    if consumer.position(part) >= end:
        break
    for records in consumer.poll(timeout_ms=1000).values():
        got += [json.loads(m.value) for m in records]
expected = json.load(open("expected_dead.json"))
if got != expected:
    for i in range(max(len(got), len(expected))):
        g = got[i] if i < len(got) else None
        e = expected[i] if i < len(expected) else None
        if g != e:
            print(f"dead letter {i}:\n  got      {str(g)[:300]}\n  expected {str(e)[:300]}")
    print(f"{len(got)} dead letters, expected {len(expected)}")
    sys.exit(1)
PY
echo "26 bad records and 1 late row dead-lettered with exact reasons and origins; 7 windows of 12 good rows exact"
