#!/usr/bin/env bash
# run_kafka.sh [ROWS] — the Kafka benchmark on the embedded cluster: ROWS telemetry messages
# (default 2,000,000, the file of run_tumbling.sh) produced zstd-compressed by kcat into 16
# partitions of `vpq broker` (which keeps only ~5 MiB per partition: the script checks that
# every message is still there before timing), then side by side: kcat's raw consume rate
# (`kcat -C -e -o beginning`) and vpq's rows/s running the 1-minute tumbling aggregation
# Kafka → Kafka (bounded source, one worker).
set -euo pipefail
cd "$(dirname "$0")"
rows=${1:-2000000}
vpq=${VPQ:-../build/vpq}
mkdir -p data
file=data/telemetry.jsonl
if [ ! -f "$file" ] || [ "$(wc -l <"$file")" != "$rows" ]; then
  /usr/bin/python3 gen_telemetry.py "$rows" 10000 "$file"
fi
rate() { /usr/bin/python3 -c "import sys; r,s=float(sys.argv[1]),float(sys.argv[2]); print(f'{r/s/1e6:.2f}M msgs/s ({s:.2f} s)')" "$@"; }
now() { date +%s.%N; }
sub() { /usr/bin/python3 -c "import sys; print(float(sys.argv[1]) - float(sys.argv[2]))" "$1" "$2"; }

"$vpq" broker --topic bench.telemetry:16 --topic bench.out:16 >data/broker.out 2>data/broker.err &
broker=$!
trap 'kill $broker 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s data/broker.out ] && break; sleep 0.1; done
bootstrap=$(head -1 data/broker.out)
echo "producing $rows messages (zstd, 16 partitions, keyed by device)..."
sed 's/^{"device_id":"\([^"]*\)"/\1|{"device_id":"\1"/' "$file" |
  kcat -b "$bootstrap" -P -t bench.telemetry -K '|' -z zstd -X linger.ms=50 -X batch.num.messages=10000
count=$(kcat -b "$bootstrap" -C -t bench.telemetry -o beginning -e -q -f '\n' | wc -l)
[ "$count" = "$rows" ] || { echo "the broker kept $count of $rows messages (5 MiB per partition)"; exit 1; }
t0=$(now); kcat -b "$bootstrap" -C -t bench.telemetry -o beginning -e -q >/dev/null; t1=$(now)
echo "kcat -C (raw consume):   $(rate "$rows" "$(sub "$t1" "$t0")")"
sed -e "s|connector = 'file', path = 'data/telemetry.jsonl'|connector = 'kafka', topic = 'bench.telemetry', bounded = true|" \
    -e "s|connector = 'file', path = 'data/per_minute.jsonl', format = 'json'|connector = 'kafka', topic = 'bench.out'|" \
    tumbling.vpq >data/tumbling_kafka.vpq
t0=$(now); "$vpq" run data/tumbling_kafka.vpq --brokers "$bootstrap" 2>data/vpq_kafka.log; t1=$(now)
echo "vpq Kafka → Kafka:       $(rate "$rows" "$(sub "$t1" "$t0")")"
sed 's/^/  /' data/vpq_kafka.log
