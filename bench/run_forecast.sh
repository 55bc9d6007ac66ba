#!/usr/bin/env bash
# Runs the day-ahead forecast benchmark (bench/forecast_reference.py): vpq backtest against seasonal
# naive, statsmodels and scikit-learn references on PJM load and SE3/SE4 prices, and prints the table.
# Usage: bench/run_forecast.sh [VPQ_BINARY] [--json] [--jobs N] [--reference-cache FILE]
# (binary default: build/vpq under the repository root; build it with scripts/setup.sh; with
# --reference-cache the references, ~20 CPU minutes, are computed once and read from FILE after).
# The data is ../shared/data or $VPQ_DATA.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vpq="build/vpq"
if [[ $# -gt 0 && "$1" != -* ]]; then
  vpq="$1"
  shift
fi
[[ "$vpq" = /* ]] || vpq="$root/$vpq"

if ! /usr/bin/python3 -c 'import numpy, pandas, statsmodels, sklearn' 2>/dev/null; then
  echo "run_forecast.sh: /usr/bin/python3 lacks numpy, pandas, statsmodels or scikit-learn; install them with:" >&2
  echo "  sudo apt-get install python3-numpy python3-pandas python3-statsmodels python3-sklearn" >&2
  exit 1
fi
if [[ ! -x "$vpq" ]]; then
  echo "run_forecast.sh: no vpq binary at $vpq (build it with: bash scripts/setup.sh)" >&2
  exit 1
fi

exec /usr/bin/python3 "$root/bench/forecast_reference.py" --vpq "$vpq" "$@"
