#!/usr/bin/env bash
# run_forecast_keyed.sh [VPQ] — FORECAST ... BY site over 1,000 keyed hourly series (63 days,
# synthetic daily + weekly shape + noise), one model per key refitted at every daily issue
# (EVERY 1 DAY) on up to 60 days of history. Prints, per model, the CPU time of one EVERY tick
# for all 1,000 keys (the operator's own thread-CPU counters, printed by `vpq backtest`): the
# last tick (full 60-day histories) and the longest one, the mean fit + predict time per key
# over all ticks, and the whole run's user + sys time. Target: a tick under one second on one
# core. RUNS=N (default 1) repeats each model and keeps the best (lowest) figures.
set -euo pipefail
cd "$(dirname "$0")/.."
vpq=${1:-build/vpq}
[[ "$vpq" = /* ]] || vpq="$PWD/$vpq"
runs=${RUNS:-1}
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
printf '%-15s %14s %14s %16s %12s\n' model "last tick (s)" "longest (s)" "ms per key" "run CPU (s)"
for model in seasonal_naive linear holt_winters mlp; do
  cat >"$work/q.vpq" <<VPQ
CREATE STREAM meters (site STRING KEY, ts TIMESTAMP, load_kw DOUBLE)
  WITH (connector = 'file', path = 'series.csv', format = 'csv', timestamp = 'ts');
CREATE STREAM fc AS FORECAST load_kw FROM meters BY site USING $model (season = 1 DAY, history = 60 DAYS)
  HORIZON 24 HOURS EVERY 1 DAY;
VPQ
  best=""
  for ((r = 0; r < runs; r++)); do
    log=$( { /usr/bin/time -f 'cpu %U %S' "$vpq" backtest "$work/q.vpq" >/dev/null; } 2>&1 )
    per_key=$(echo "$log" | sed -n 's/.* \([0-9.]*\) ms per forecast$/\1/p')
    longest=$(echo "$log" | sed -n 's/.*longest \([0-9.]*\) ms, last .*/\1/p')
    last=$(echo "$log" | sed -n 's/.*, last \([0-9.]*\) ms$/\1/p')
    cpu=$(echo "$log" | awk '/^cpu /{print $2 + $3}')
    line=$(printf '%s %s %s %s' "${last:-0}" "${longest:-0}" "$per_key" "$cpu")
    if [[ -z "$best" ]]; then best=$line; else
      best=$(printf '%s\n%s\n' "$best" "$line" | awk 'NR==1{for(i=1;i<=4;i++)b[i]=$i} NR==2{for(i=1;i<=4;i++) if($i<b[i]) b[i]=$i} END{print b[1],b[2],b[3],b[4]}')
    fi
  done
  read -r last longest per_key cpu <<<"$best"
  printf '%-15s %14.2f %14.2f %16s %12.1f\n' "$model" "$(echo "$last / 1000" | bc -l)" "$(echo "$longest / 1000" | bc -l)" "$per_key" "$cpu"
done
