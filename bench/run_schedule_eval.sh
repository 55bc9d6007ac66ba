#!/usr/bin/env bash
# Runs the peak-shaving evaluation (bench/eval_schedule.c): vpq's forecast + MIN_PEAK dispatch
# against perfect foresight and a fixed-threshold rule on the last year of four PJM zones, and
# prints the table. Uses build/eval_schedule when it exists, else compiles the program into a
# temporary directory. Usage: bench/run_schedule_eval.sh [--json]. The data is
# ../shared/data (relative to the repository root) or $VPQ_DATA.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VPQ_DATA="${VPQ_DATA:-$root/../shared/data}"
if [[ ! -f "$VPQ_DATA/load_pjm.csv" ]]; then
  echo "run_schedule_eval.sh: no load_pjm.csv in $VPQ_DATA (set VPQ_DATA)" >&2
  exit 1
fi

bin="$root/build/eval_schedule"
if [[ ! -x "$bin" ]]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  bin="$tmp/eval_schedule"
  gcc -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -I"$root/engine" "$root/bench/eval_schedule.c" \
    "$root/engine/vpq_model.c" "$root/engine/vpq_sched.c" -lglpk -lm -o "$bin"
fi

"$bin" "$@"
