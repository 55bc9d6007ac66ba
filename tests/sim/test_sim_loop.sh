#!/usr/bin/env bash
# test_sim_loop.sh VPQ QUERIES_DIR — the closed loop on `connector = 'sim'` (no Kafka):
# queries/peak_shaving_sim.vpq runs one simulated day. Checked from its outputs: every 15-minute
# issue dispatches all 24 batteries; the batteries, as their telemetry reports them, stay within
# the query's SUBJECT TO limits (10%..95%, ±0.001 for the telemetry's rounding) once the first
# plan has reached them; and the plant's net load (gross load − battery power, per 15 minutes)
# peaks lower than the gross load does: the fleet shaves the day's peak.
set -uo pipefail
vpq=$1 queries=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$queries/." "$work/"
cd "$work" || exit 1
rm -rf out
"$vpq" run peak_shaving_sim.vpq >/dev/null 2>err.txt || { echo "vpq run failed"; cat err.txt; exit 1; }
/usr/bin/python3 - <<'PY'
import json
load = {r["ts"]: r["load_kw"] for r in map(json.loads, open("out/sim_plant_load.jsonl"))}
power = [json.loads(l) for l in open("out/sim_battery_power.jsonl")]
dispatch = [json.loads(l) for l in open("out/sim_dispatch.jsonl")]
issues = {}
for r in dispatch:
    issues.setdefault(r["issued_at"], set()).add(r["device_id"])
assert len(issues) >= 90 and all(len(d) == 24 for d in issues.values()), (len(issues), [len(d) for d in issues.values()][:5])
first_plan = min(issues)
for r in power:
    if r["ts"] > first_plan + 15 * 60000:
        assert 0.1 - 1e-3 <= r["min_soc"] and r["max_soc"] <= 0.95 + 1e-3, r
gross = {r["ts"]: load[r["ts"]] for r in power if r["ts"] in load}
net = {r["ts"]: load[r["ts"]] - r["power_kw"] for r in power if r["ts"] in load}  # the fleet's average power
assert max(net.values()) < max(gross.values()) - 1, (max(net.values()), max(gross.values()))
print("ok: %d issues x 24 batteries, soc within limits, peak %.1f kW -> %.1f kW" % (len(issues), max(gross.values()), max(net.values())))
PY
