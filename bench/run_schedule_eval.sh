#!/usr/bin/env bash
# Runs the peak-shaving evaluation (bench/eval_schedule.c): vpq's FORECAST + SCHEDULE, run by the
# engine in a closed loop with a simulated fleet, against the same SCHEDULE with perfect foresight
# and a fixed-threshold rule, on the last year of four PJM zones; prints the tables. With --gap it
# runs the study of where the gap to perfect foresight comes from (bench/schedule_gap.c) instead.
# Builds both programs in $VPQ_BUILD (default build/, configured for Release when new) first.
#   bench/run_schedule_eval.sh [--json] [--query] [--methods min-peak,48h,upper,floor,floor+hi,floor90,floor100]
#   bench/run_schedule_eval.sh --gap
# The data is ../shared/data (relative to the repository root) or $VPQ_DATA.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VPQ_DATA="${VPQ_DATA:-$root/../shared/data}"
if [[ ! -f "$VPQ_DATA/load_pjm.csv" ]]; then
  echo "run_schedule_eval.sh: no load_pjm.csv in $VPQ_DATA (set VPQ_DATA)" >&2
  exit 1
fi

build="${VPQ_BUILD:-$root/build}"
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target eval_schedule schedule_gap -j2 >/dev/null

if [[ "${1:-}" == "--gap" ]]; then
  shift
  exec "$build/schedule_gap" "$@"
fi
# The engine logs each FORECAST's and SCHEDULE's counters when it is freed: lines per zone and method.
exec "$build/eval_schedule" "$@" 2> >(grep -v -e '^vpq: FORECAST load_forecast: ' -e '^vpq: SCHEDULE dispatch' >&2)
