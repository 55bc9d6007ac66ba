#!/usr/bin/env bash
# run_forecast_keyed.sh [VPQ] — FORECAST ... BY site over 1,000 keyed hourly series (63 days,
# synthetic daily + weekly shape + noise), one model per key refitted every day (EVERY 1 DAY)
# on up to 60 days of history: prints each model's mean fit + predict time per key, hence the
# time of one EVERY tick for the 1,000 keys (target: under one second on one core). mlp is left
# out: at about 15 ms per key (bench/run_forecast.sh) a tick of 1,000 keys takes 15 s.
set -euo pipefail
cd "$(dirname "$0")/.."
vpq=${1:-build/vpq}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 - "$work/series.csv" <<'PY'
import math, random, sys
rng = random.Random(1)
with open(sys.argv[1], "w") as f:
    f.write("site,ts,load_kw\n")
    for h in range(24 * 63):
        ts = 1699999200000 + h * 3600000
        for k in range(1000):
            v = 100 + 30 * math.sin(2 * math.pi * (h % 24) / 24 + k) + 10 * math.sin(2 * math.pi * h / 168) + rng.gauss(0, 3)
            f.write("s%d,%d,%.2f\n" % (k, ts, v))
PY
for model in seasonal_naive linear holt_winters; do
  cat >"$work/q.vpq" <<VPQ
CREATE STREAM meters (site STRING KEY, ts TIMESTAMP, load_kw DOUBLE)
  WITH (connector = 'file', path = 'series.csv', format = 'csv', timestamp = 'ts');
CREATE STREAM fc AS FORECAST load_kw FROM meters BY site USING $model (season = 1 DAY, history = 60 DAYS)
  HORIZON 24 HOURS EVERY 1 DAY;
VPQ
  line=$("$vpq" backtest "$work/q.vpq" 2>&1 >/dev/null | grep 'FORECAST fc')
  ms=$(echo "$line" | sed 's/.* \([0-9.]*\) ms per forecast/\1/')
  printf '%-15s %8s ms per key   %8.2f s per tick of 1,000 keys\n' "$model" "$ms" "$(echo "$ms * 1000 / 1000" | bc -l)"
done
