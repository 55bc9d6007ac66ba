#!/usr/bin/env bash
# run_kafka.sh [ROWS] — the Kafka benchmark on the embedded cluster: ROWS telemetry messages
# (default 2,000,000, the file of run_tumbling.sh) produced zstd-compressed by kcat into 16
# partitions of `vpq broker` (which keeps only ~5 MiB per partition: the script checks that
# every message is still there before timing), then side by side: kcat's raw consume rate
# (`kcat -C -e -o beginning`) and vpq's rows/s running the 1-minute tumbling aggregation
# Kafka → Kafka (bounded source, one worker), each with its CPU time (user + sys, all threads),
# then vpq's rate as a share of kcat's and the load average (the machine's other work skews both).
set -euo pipefail
if [[ -n "${VPQ:-}" ]]; then VPQ=$(realpath "$VPQ"); fi # relative to where it was run from
cd "$(dirname "$0")"
rows=${1:-2000000}
vpq=${VPQ:-../build/vpq}
mkdir -p data
file=data/telemetry.jsonl
if [ ! -f "$file" ] || [ "$(wc -l <"$file")" != "$rows" ]; then
  /usr/bin/python3 gen_telemetry.py "$rows" 10000 "$file"
fi
# rate SECONDS TIMEFILE: the rate of $rows messages in SECONDS, and the CPU time /usr/bin/time wrote
rate() { /usr/bin/python3 -c "import sys; s=float(sys.argv[2]); u,k=map(float, open(sys.argv[3]).read().split()); print(f'{int(sys.argv[1])/s/1e6:.2f}M msgs/s ({s:.2f} s, CPU {u+k:.2f} s)')" "$rows" "$@"; }
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
load=$(cut -d' ' -f1 /proc/loadavg)
t0=$(now); /usr/bin/time -o data/kcat.time -f '%U %S' kcat -b "$bootstrap" -C -t bench.telemetry -o beginning -e -q >/dev/null; t1=$(now)
echo "kcat -C (raw consume):   $(rate "$(sub "$t1" "$t0")" data/kcat.time)"
sed -e "s|connector = 'file', path = 'data/telemetry.jsonl'|connector = 'kafka', topic = 'bench.telemetry', bounded = true|" \
    -e "s|connector = 'file', path = 'data/per_minute.jsonl', format = 'json'|connector = 'kafka', topic = 'bench.out'|" \
    tumbling.vpq >data/tumbling_kafka.vpq
t2=$(now); /usr/bin/time -o data/vpq.time -f '%U %S' "$vpq" run data/tumbling_kafka.vpq --brokers "$bootstrap" 2>data/vpq_kafka.log; t3=$(now)
echo "vpq Kafka → Kafka:       $(rate "$(sub "$t3" "$t2")" data/vpq.time)"
/usr/bin/python3 -c "import sys; k,v=float(sys.argv[1]),float(sys.argv[2]); print(f'vpq / kcat:              {k/v:.0%} (load average {sys.argv[3]} before, {sys.argv[4]} after)')" \
  "$(sub "$t1" "$t0")" "$(sub "$t3" "$t2")" "$load" "$(cut -d' ' -f1 /proc/loadavg)"
sed 's/^/  /' data/vpq_kafka.log
