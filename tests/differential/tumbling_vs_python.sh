#!/usr/bin/env bash
# tumbling_vs_python.sh VPQ — a differential test at scale: 60,000 generated telemetry lines
# (bench/gen_telemetry.py, 500 devices) through the benchmark's 1-minute tumbling query, compared
# with the same aggregation computed independently in Python (sums correctly rounded, math.fsum,
# which vpq's compensated sums must match to the bit), and the EMIT FINAL order (windows by end)
# checked.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
start_work "$1"
mkdir -p data
/usr/bin/python3 "$here/../../bench/gen_telemetry.py" 60000 500 data/telemetry.jsonl
cp "$here/../../bench/tumbling.vpq" .
"$vpq" run tumbling.vpq 2>/dev/null
/usr/bin/python3 - <<'PY'
import json, math, sys
groups = {}
for line in open("data/telemetry.jsonl"):
    r = json.loads(line)
    groups.setdefault((r["device_id"], r["ts"] // 60000 * 60000), []).append(r)
expected = {}
for key, rows in groups.items():
    soc, power = math.fsum(r["soc"] for r in rows), math.fsum(r["power_kw"] for r in rows)
    expected[key] = (len(rows), soc / len(rows), power, max(r["power_kw"] for r in rows))
got, minutes = {}, []
for line in open("data/per_minute.jsonl"):
    o = json.loads(line)
    got[(o["device_id"], o["minute"])] = (o["n"], o["soc"], o["power_kw"], o["peak_kw"])
    minutes.append(o["minute"])
wrong = [k for k in expected if expected[k] != got.get(k)]
if len(got) != len(expected) or wrong:
    print(f"{len(expected)} groups expected, {len(got)} written; first differences:", file=sys.stderr)
    for k in wrong[:5]:
        print(k, expected[k], got.get(k), file=sys.stderr)
    sys.exit(1)
if minutes != sorted(minutes):
    print("EMIT FINAL rows are not in window order", file=sys.stderr)
    sys.exit(1)
print(f"{len(got)} window results equal the Python reference")
PY
