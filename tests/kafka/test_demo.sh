#!/usr/bin/env bash
# test_demo.sh VPQ QUERIES_DIR — the README's main job, shortened: `vpq run peak_shaving.vpq`
# without --brokers starts the embedded broker and the simulator, and runs DESIGN §2's
# pipeline (twin → 15-minute loads → FORECAST → SCHEDULE → dispatch topic → batteries) for six
# simulated hours. It must end by itself with exit 0, having issued forecasts and dispatched
# the batteries at the 15-minute issues, with nothing late or malformed, and the fleet's soc
# (from the twin) within the query's SUBJECT TO limits (10%..95%, ±1% for telemetry rounding).
set -uo pipefail
vpq=$1 queries=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$queries" || exit 1
timeout 300 "$vpq" run peak_shaving.vpq --set sim.hours=6 --set sim.speed=1440 --set sim.history_days=2 \
  >"$work/out.txt" 2>"$work/err.txt"
code=$?
[ "$code" = 0 ] || { echo "demo exited $code"; grep -v '^%' "$work/err.txt"; exit 1; }
/usr/bin/python3 - "$work/out.txt" "$work/err.txt" <<'PY'
import re, sys
out = open(sys.argv[1]).read().splitlines()
err = [l for l in open(sys.argv[2]).read().splitlines() if not l.startswith("%")]
stats = next(l for l in err if re.match(r"vpq: \d+ rows in", l))
rows_in, rows_out, late, malformed = map(int, re.match(r"vpq: (\d+) rows in, (\d+) rows out, (\d+) late, (\d+) malformed", stats).groups())
assert late == 0 and malformed == 0, stats
# 24 batteries, one dispatch row per battery per 15-minute issue (a battery whose first report
# comes after an issue's time is not in that plan): at least five live hours of plans.
assert rows_out >= 24 * 4 * 5, stats
forecast = next(l for l in err if l.startswith("vpq: FORECAST load_forecast:"))
assert int(re.search(r"(\d+) issues", forecast).group(1)) >= 2 * 96, forecast
assert any(l.startswith("vpq: demo: plant peak") and "from the first dispatch" in l for l in err), err
socs = [float(m.group(1)) for l in out if (m := re.search(r"soc ([\d.]+)%", l))]
assert len(socs) >= 6, out
live = [s for s in socs if s > 0]
assert live and all(9.0 <= s <= 96.0 for s in live), socs
print("ok: demo ran", len(out), "summary lines;", stats)
PY
