# lib.sh — shared by the Kafka tests (sourced): start `vpq broker` and read a topic back with
# kafka-python, a client we did not write.

# start_broker VPQ WORKDIR --topic NAME:PARTITIONS... — starts the embedded cluster in the
# background, sets $bootstrap and $broker_pid, and arranges for both to go on exit.
start_broker() {
  local vpq=$1 dir=$2
  shift 2
  "$vpq" broker "$@" >"$dir/broker.out" 2>"$dir/broker.err" &
  broker_pid=$!
  trap 'kill $broker_pid 2>/dev/null; wait $broker_pid 2>/dev/null; rm -rf "'"$dir"'"' EXIT
  for _ in $(seq 100); do [ -s "$dir/broker.out" ] && break; sleep 0.1; done
  bootstrap=$(head -1 "$dir/broker.out")
  case "$bootstrap" in
    *:[0-9]*) ;;
    *) echo "no bootstrap address on the broker's first line: '$bootstrap'"; cat "$dir/broker.err"; exit 1 ;;
  esac
}

# start_kafka_test VPQ --topic NAME:PARTITIONS... — the set-up of a test of runs over `vpq
# broker`: $vpq, $here (this folder), a scratch folder $work made the current one, the broker
# with those topics, and a trap that kills the broker and every job (SIGKILL) and removes the
# folder when the test ends; fail MESSAGE ends the test with the runs' logs (run*.err).
start_kafka_test() {
  vpq=$1
  shift
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  work=$(mktemp -d)
  start_broker "$vpq" "$work" "$@"
  cd "$work" || exit 1
  trap 'kill -9 $broker_pid $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT
  fail() { echo "FAIL: $*"; for f in run*.err; do echo "--- $f"; grep -v '^%' "$f"; done; exit 1; }
}

# read_topic TOPIC PARTITIONS — prints every message of the topic as a Python tuple
# (key, value, timestamp), sorted, one per line.
read_topic() {
  /usr/bin/python3 - "$bootstrap" "$1" "$2" <<'PY'
import sys
from kafka import KafkaConsumer, TopicPartition
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5), consumer_timeout_ms=5000,
                         auto_offset_reset="earliest", enable_auto_commit=False)
parts = [TopicPartition(sys.argv[2], p) for p in range(int(sys.argv[3]))]
consumer.assign(parts)
consumer.seek_to_beginning(*parts)
for message in sorted((m.key.decode() if m.key else None, m.value.decode() if m.value is not None else None, m.timestamp)
                      for m in consumer):
    print(repr(message))
PY
}

# ----- A group of members aggregating telemetry by site (repartitioned; the rebalance tests) -----

# setup_site_windows NAME — in the current (work) folder: NAME.vpq, whose members count and sum
# 1-minute windows per site over `telemetry` (keyed by device: repartitioned by site through
# NAME.per_site.repartition, which goes to $exchange) into `per_site`; an exit trap that kills
# every job with SIGKILL (a member stopped while its cluster goes away can hang in librdkafka's
# group leave); and fail MESSAGE, which prints the members' logs m*.err. idle_timeout outlasts
# the pause around a rebalance, which under ASan on a loaded machine took over 15 s (windows
# must stay open: an idle input lets the watermark go on with the clock), and ends the wait for
# a member that left well before the tests' own time limits.
setup_site_windows() {
  trap 'kill -9 $broker_pid $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT
  cat >"$1.vpq" <<'VPQ'
CREATE STREAM telemetry (device_id STRING KEY, site STRING, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'telemetry', timestamp = 'ts', idle_timeout = 40 SECONDS,
        'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
CREATE STREAM per_site WITH (connector = 'kafka', topic = 'per_site') AS
  SELECT site, WINDOW_START AS minute, count(*) AS n, sum(kw) AS kw
  FROM telemetry WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY site EMIT FINAL;
VPQ
  exchange=$1.per_site.repartition
  fail() { echo "FAIL: $*"; for f in m*.err; do echo "--- $f"; grep -v '^%' "$f"; done; exit 1; }
}

# assignment FILE TOPIC — the partitions the member logging to FILE got in its latest
# assignment of TOPIC ("0, 2").
assignment() { grep "of \`$2\`" "$1" 2>/dev/null | tail -1 | sed 's/.*partitions \[\(.*\)\] of.*/\1/'; }

# sizes TOPIC FILE... — the members' partition counts of TOPIC, sorted ("1 1 2 ").
sizes() {
  local topic=$1
  shift
  for f in "$@"; do assignment "$f" "$topic" | tr ',' '\n' | grep -c '[0-9]'; done | sort -n | tr '\n' ' '
}

# produce_telemetry FIRST LAST — readings of 32 devices (device d on partition d % 4 of
# `telemetry`, keyed by device) on 8 sites, one every 50 ms of event time in [FIRST, LAST)
# seconds after the start; kw are integers, so every sum is exact in any order. Also appends
# them to in.jsonl. The sites are two per partition of a 4-partition internal topic (murmur2 of
# the name, as vpq and Java clients partition): whichever partition moves, it holds windows.
produce_telemetry() {
  /usr/bin/python3 - "$bootstrap" "$1" "$2" <<'PY'
import json, random, sys
from kafka import KafkaProducer
bootstrap, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
producer = KafkaProducer(bootstrap_servers=bootstrap, api_version=(2, 5))
random.seed(first)
sites = [0, 4, 1, 2, 16, 18, 5, 8]
with open("in.jsonl", "a") as log:
    for i in range(first * 20, last * 20):
        d = random.randrange(32)
        row = {"device_id": "d%d" % d, "site": "s%d" % random.choice(sites), "ts": 1700000040000 + i * 50,
               "kw": float(random.randrange(-5, 6))}
        value = json.dumps(row)
        producer.send("telemetry", key=row["device_id"].encode(), value=value.encode(), partition=d % 4)
        log.write(value + "\n")
producer.flush()
PY
}

# produce_end — a row in every partition of `telemetry` far ahead (site `end`): it closes every
# window of the input.
produce_end() {
  /usr/bin/python3 - "$bootstrap" <<'PY'
import json, sys
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
for p in range(4):
    row = {"device_id": "end%d" % p, "site": "end", "ts": 1700000040000 + 1000000, "kw": 0.0}
    producer.send("telemetry", key=row["device_id"].encode(), value=json.dumps(row).encode(), partition=p)
producer.flush()
PY
}

# check_windows [MINUTES] — the 2-partition topic `per_site` holds every 1-minute window per
# site of in.jsonl once, with its exact count and sum (rows of site `end` not looked at); with
# MINUTES, only the windows starting in the first MINUTES minutes, and other rows are allowed.
check_windows() {
  /usr/bin/python3 - "$bootstrap" "${1:-}" <<'PY'
import collections, json, sys
from kafka import KafkaConsumer, TopicPartition
upto = 1700000040000 // 60000 * 60000 + int(sys.argv[2]) * 60000 if sys.argv[2] else None
want = collections.defaultdict(lambda: [0, 0.0])
for line in open("in.jsonl"):
    row = json.loads(line)
    w = want[(row["site"], row["ts"] // 60000 * 60000)]
    w[0] += 1
    w[1] += row["kw"]
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5), consumer_timeout_ms=3000,
                         auto_offset_reset="earliest", enable_auto_commit=False)
parts = [TopicPartition("per_site", p) for p in range(2)]
consumer.assign(parts)
consumer.seek_to_beginning(*parts)
got = collections.Counter()
for m in consumer:
    row = json.loads(m.value)
    if row["site"] == "end" or (upto is not None and row["minute"] >= upto):
        continue
    got[(row["site"], row["minute"], row["n"], row["kw"])] += 1
expected = collections.Counter((site, minute, n, kw) for (site, minute), (n, kw) in want.items()
                               if upto is None or minute < upto)
missing, extra = expected - got, got - expected
if missing or extra:
    print("%d windows expected, %d rows written" % (len(expected), sum(got.values())))
    for row in sorted(missing):
        print("missing:", row)
    for row in sorted(extra):
        print("extra:  ", row, "x%d" % extra[row])
    sys.exit(1)
print("every one of the %d windows written once, exact" % len(expected))
PY
}

# ----- Members of a group -----

# stop_members PID... — stops the members with SIGINT and calls the test's fail unless every
# one exits 0.
stop_members() {
  kill -INT "$@"
  local pid code
  for pid in "$@"; do
    wait "$pid"
    code=$?
    [ $code = 0 ] || fail "member $pid exited $code after SIGINT"
  done
}

# member_counts LOG... — each member's summary from its log, "IN OUT LATE MALFORMED" (rows in,
# rows out, late rows, malformed records), one line per log; false when a log has none.
member_counts() {
  local log line
  for log in "$@"; do
    line=$(grep -Eo '^vpq: [0-9]+ rows in, [0-9]+ rows out, [0-9]+ late, [0-9]+ malformed' "$log" | tail -1)
    [ -n "$line" ] || return 1
    echo "$line" | sed -E 's/^vpq: ([0-9]+) rows in, ([0-9]+) rows out, ([0-9]+) late, ([0-9]+) malformed/\1 \2 \3 \4/'
  done
}

# ----- A windowed count over telemetry, written in two halves (the crash tests) -----

# telemetry_halves ROWS DEVICES SEED — first.txt and second.txt in the current folder: ROWS
# telemetry rows (`key|json`, times rising) over DEVICES devices, split in two halves.
telemetry_halves() {
  /usr/bin/python3 - "$@" <<'PY'
import random, sys
rows, devices, seed = (int(a) for a in sys.argv[1:4])
random.seed(seed)
ts = 1700000000000
out = []
for i in range(rows):
    ts += random.randrange(0, 20)
    d = random.randrange(devices)
    out.append('d%d|{"device_id":"d%d","ts":%d,"kw":%.2f}\n' % (d, d, ts, random.uniform(-5, 5)))
open("first.txt", "w").writelines(out[:rows // 2])
open("second.txt", "w").writelines(out[rows // 2:])
PY
}

# produce_halves_file FILE — produces FILE's `key|json` lines into vpp.telemetry with kcat.
produce_halves_file() {
  kcat -b "$bootstrap" -P -t vpp.telemetry -K '|' -z zstd -l "$1" || { echo "kcat could not produce"; exit 1; }
}

# minute_windows NAME IDLE [EXTRA] — prints a query counting and summing vpp.telemetry per device
# in 1-minute windows (EMIT FINAL) into topic NAME.windows; IDLE is the source's idle_timeout,
# EXTRA more of its options (e.g. ", bounded = true").
minute_windows() {
  cat <<VPQ
CREATE STREAM telemetry (device_id STRING KEY, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'vpp.telemetry', timestamp = 'ts', idle_timeout = $2${3:-});
CREATE STREAM windows WITH (connector = 'kafka', topic = '$1.windows') AS
  SELECT device_id, WINDOW_START AS minute, count(*) AS n, sum(kw) AS kw
  FROM telemetry WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY device_id EMIT FINAL;
VPQ
}

# topic_size TOPIC PARTITIONS — the number of messages in the topic (its end offsets' sum).
topic_size() {
  /usr/bin/python3 - "$bootstrap" "$1" "$2" <<'PY'
import sys
from kafka import KafkaConsumer, TopicPartition
c = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
parts = [TopicPartition(sys.argv[2], p) for p in range(int(sys.argv[3]))]
print(sum(c.end_offsets(parts).values()))
PY
}

# same_windows REF GOT — reads both 4-partition topics with read_topic.py and compares their
# messages (key, value) as multisets: no loss, no duplicate; false, naming the differences.
same_windows() {
  local topic
  for topic in "$1" "$2"; do
    /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/read_topic.py" "$bootstrap" "$topic" 4 "$topic.jsonl" || return 1
  done
  /usr/bin/python3 - "$1" "$2" <<'PY'
import collections, json, sys

def read(topic):
    return [tuple(json.loads(line)[1:3]) for line in open(topic + ".jsonl")]

ref, got = read(sys.argv[1]), read(sys.argv[2])
want, have = collections.Counter(ref), collections.Counter(got)
lost, extra = want - have, have - want
if lost or extra or not ref:
    print("%d rows uninterrupted, %d in the run under test: %d lost, %d duplicated or wrong"
          % (len(ref), len(got), sum(lost.values()), sum(extra.values())))
    print("  windows lost by minute:", dict(collections.Counter(json.loads(r[1])["minute"] for r in lost)))
    for row in list(lost)[:3]: print("  lost:", row)
    for row in list(extra)[:3]: print("  extra:", row, "x", extra[row])
    sys.exit(1)
print("%d window rows, identical to the uninterrupted run" % len(got))
PY
}
