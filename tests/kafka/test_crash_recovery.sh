#!/usr/bin/env bash
# test_crash_recovery.sh VPQ [ROWS [GUARANTEE]] — exactly-once output across crashes, on
# `vpq broker` (GUARANTEE: the sinks' processing_guarantee, exactly_once by default, or
# kafka_transactions).
#
# kcat produces ROWS telemetry messages (default 2,000,000; keyed, zstd) into a 16-partition
# topic. A Kafka → Kafka query (5-minute windows per device, and a filtered stream) runs twice
# over it: once uninterrupted, once with --state-dir and a 100 ms checkpoint interval, killed
# with SIGKILL at random moments (five times, each after the run's first checkpoint) and
# restarted until it finishes. After the third kill the newest checkpoint is damaged, so the
# next run falls back to the one before: the output of the rows between the two is in the
# topic already, and the run that replays them must not write it again (audit 42).
# kafka-python, a client we did not write, reads both runs' output topics: they must hold the
# same rows (no loss, no duplicate), and every message of the checkpointed run carries its
# exactly-once identity header.
set -uo pipefail
vpq=$1
rows=${2:-2000000}
guarantee=${3:-exactly_once}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic vpp.telemetry:16 --topic ref.windows:4 --topic ref.spikes:4 \
  --topic crash.windows:4 --topic crash.spikes:4
cd "$work" || exit 1

/usr/bin/python3 - "$rows" <<'PY' >in.txt
import random, sys
random.seed(42)
ts = 1700000000000
out = sys.stdout
for i in range(int(sys.argv[1])):
    ts += random.randrange(0, 20)
    d = random.randrange(500)
    out.write('d%d|{"device_id":"d%d","ts":%d,"soc":%.3f,"kw":%.2f}\n' % (d, d, ts, random.random(), random.uniform(-5, 5)))
PY
kcat -b "$bootstrap" -P -t vpp.telemetry -K '|' -z zstd -X batch.num.messages=10000 -X linger.ms=50 -l in.txt \
  || { echo "kcat could not produce"; exit 1; }

# Event times grow within each partition, so no row is late whatever the interleaving of
# partitions: both runs must compute the same windows.
query() {
  cat <<VPQ
CREATE STREAM telemetry (device_id STRING KEY, ts TIMESTAMP, soc DOUBLE, kw DOUBLE)
  WITH (connector = 'kafka', topic = 'vpp.telemetry', timestamp = 'ts', bounded = true);
CREATE STREAM windows WITH (connector = 'kafka', topic = '$1.windows') AS
  SELECT device_id, WINDOW_START AS minute, count(*) AS n, avg(soc) AS soc, sum(kw) AS kw
  FROM telemetry WINDOW TUMBLING (SIZE 5 MINUTES) GROUP BY device_id EMIT FINAL;
CREATE STREAM spikes WITH (connector = 'kafka', topic = '$1.spikes') AS
  SELECT device_id, ts, kw FROM telemetry WHERE kw > 4.95;
VPQ
}
query ref >ref.vpq
query crash >crash.vpq

timeout 600 "$vpq" run ref.vpq --brokers "$bootstrap" 2>ref.err || { echo "the uninterrupted run failed:"; cat ref.err; exit 1; }
grep -q "^vpq: $rows rows in" ref.err || { echo "the uninterrupted run did not read $rows rows:"; cat ref.err; exit 1; }

# The newest checkpoint file of the state folder (empty when none).
newest() { ls state/checkpoint-*.vpqc 2>/dev/null | tail -1; }

# Each kill lands at a random moment after the run has taken a checkpoint of its own (so every
# restart resumes from one, whatever the machine's speed): during processing, while a
# checkpoint is written, while held output is produced.
kills=0 runs=0 code=1
while [ $runs -lt 40 ]; do
  runs=$((runs + 1))
  before=$(newest)
  "$vpq" run crash.vpq --brokers "$bootstrap" --state-dir state --checkpoint-interval 100ms \
    --set processing_guarantee="$guarantee" 2>>crash.err &
  pid=$!
  if [ $kills -lt 5 ]; then
    for _ in $(seq 1200); do
      [ "$(newest)" != "$before" ] && break
      kill -0 $pid 2>/dev/null || break
      sleep 0.05
    done
    sleep "$(/usr/bin/python3 -c 'import random; print(round(random.uniform(0, 0.2), 2))')"
    if kill -9 $pid 2>/dev/null; then
      wait $pid 2>/dev/null
      kills=$((kills + 1))
      if [ $kills = 3 ] && [ "$(ls state/checkpoint-*.vpqc | wc -l)" -ge 2 ]; then
        printf '\x55' | dd of="$(newest)" bs=1 seek=200 conv=notrunc 2>/dev/null
        damaged=1
      fi
      continue
    fi
  fi
  wait $pid
  code=$?
  break
done
[ $code = 0 ] || { echo "the checkpointed run failed (exit $code):"; grep -v '^%' crash.err | tail -20; exit 1; }
[ $kills -ge 3 ] || { echo "only $kills kill(s) landed before the run finished: make the input larger"; exit 1; }
[ "${damaged:-0}" = 1 ] && grep -q "is invalid (checksum mismatch); trying the previous one" crash.err \
  || { echo "no run fell back to the checkpoint before a damaged one:"; grep -v '^%' crash.err | tail -20; exit 1; }
resumed=$(grep -c "resumed from checkpoint" crash.err)
[ "$resumed" -ge 3 ] || { echo "only $resumed run(s) resumed from a checkpoint:"; grep -v '^%' crash.err | tail -20; exit 1; }

for topic in ref.windows ref.spikes crash.windows crash.spikes; do
  /usr/bin/python3 "$here/read_topic.py" "$bootstrap" $topic 4 $topic.jsonl || exit 1
done
/usr/bin/python3 - <<'PY' || exit 1
import collections, json, sys

def read(topic):
    rows = [json.loads(line) for line in open(topic + ".jsonl")]
    return [tuple(r[:3]) for r in rows], [r[3] for r in rows]

failed = False
for name in ("windows", "spikes"):
    ref, _ = read("ref." + name)
    got, ids = read("crash." + name)
    want, have = collections.Counter(ref), collections.Counter(got)
    lost, extra = want - have, have - want
    if lost or extra or not ref:
        failed = True
        print("%s: %d rows uninterrupted, %d after crashes; %d lost, %d duplicated or wrong"
              % (name, len(ref), len(got), sum(lost.values()), sum(extra.values())))
        for row in list(lost)[:3]: print("  lost:", row)
        for row in list(extra)[:3]: print("  extra:", row, "x", extra[row])
    if any(i is None for i in ids) or len(set(ids)) != len(ids):
        failed = True
        print("%s: messages without a unique vpq.id header" % name)
    if not failed:
        print("%s: %d rows, identical to the uninterrupted run" % (name, len(got)))
sys.exit(1 if failed else 0)
PY
held=$(grep -o "were already written, [0-9]* written now" crash.err | awk '{s += $4} END {print s + 0}')
present=$(grep -o "[0-9]* were already written" crash.err | awk '{s += $1} END {print s + 0}')
replayed=$(grep -o "[0-9]* message(s) are from after the restored checkpoint" crash.err | awk '{s += $1} END {print s + 0}')
echo "crash recovery ($guarantee): $rows rows, $kills kills (SIGKILL), $resumed restores ($present held rows found already written and skipped, $held written on restore; after the fallback past a damaged checkpoint, $replayed rows found written after the checkpoint restored, whose replay was not written again): output equals the uninterrupted run"
