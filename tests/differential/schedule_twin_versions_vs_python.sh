#!/usr/bin/env bash
# schedule_twin_versions_vs_python.sh VPQ — SCHEDULE reads the fleet as it stood at each issue
# (DESIGN.md §4, docs/language.md), also when the twin changes thousands of times between issues
# and the operator forgets the versions no issue can need any more. Three batteries report every
# second for three hours (32,400 telemetry rows, their soc a different saw-tooth each, and one
# battery silent for the second hour), a twin `batteries` (last(...) per device) is built from
# them, and a forecast issues every hour at :30 (the last issue is after the telemetry ends) four
# steps of a load that needs no battery under `KEEP BELOW 1000 KW`: every setpoint is 0, so the
# soc written for each battery at each issue is its soc in the twin at that instant. Python
# computes those socs from the telemetry and compares every row.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_work "$1"
/usr/bin/python3 - <<'PY'
import json
t0 = 1704067200000
with open("telemetry.jsonl", "w") as f:
    for s in range(3 * 3600):
        for d in range(3):
            if d == 2 and 3600 <= s < 7200:
                continue
            soc = 0.2 + 0.6 * ((s * (d + 1)) % 1800) / 1800
            f.write(json.dumps({"device_id": "b%d" % d, "ts": t0 + s * 1000, "soc": round(soc, 6),
                                "capacity_kwh": 10.0, "max_kw": 5.0}) + "\n")
with open("forecast.jsonl", "w") as f:
    for h in range(4):
        issued = t0 + h * 3600000 + 1800000
        for k in range(4):
            f.write(json.dumps({"issued_at": issued, "ts": issued + k * 900000, "value": 50.0}) + "\n")
PY
cat > q.vpq <<'VPQ'
CREATE STREAM telemetry (device_id STRING KEY, ts TIMESTAMP, soc DOUBLE, capacity_kwh DOUBLE, max_kw DOUBLE)
  WITH (connector = 'file', path = 'telemetry.jsonl', format = 'json', timestamp = 'ts');
CREATE TABLE batteries AS
  SELECT device_id, last(soc) AS soc, last(capacity_kwh) AS capacity_kwh, last(max_kw) AS max_kw, last(ts) AS seen
  FROM telemetry GROUP BY device_id;
CREATE STREAM forecast (issued_at TIMESTAMP, ts TIMESTAMP, value DOUBLE)
  WITH (connector = 'file', path = 'forecast.jsonl', format = 'json', timestamp = 'issued_at');
CREATE STREAM dispatch WITH (connector = 'file', path = 'dispatch.jsonl', format = 'json') AS
  SCHEDULE batteries FOR forecast KEEP BELOW 1000 KW
  HORIZON 1 HOUR STEP 15 MINUTES;
VPQ
"$vpq" run q.vpq 2>run.log || { cat run.log; exit 1; }
/usr/bin/python3 - <<'PY'
import json, sys
rows = {}
for line in open("telemetry.jsonl"):
    r = json.loads(line)
    rows.setdefault(r["device_id"], []).append((r["ts"], r["soc"]))
issues = sorted({json.loads(l)["issued_at"] for l in open("forecast.jsonl")})
expected = []
for t in issues:
    for d in sorted(rows):
        seen = [soc for ts, soc in rows[d] if ts <= t]
        expected.append({"issued_at": t, "ts": t, "device_id": d, "setpoint_kw": 0.0, "soc": seen[-1],
                         "planned_peak_kw": 50.0})
got = [json.loads(l) for l in open("dispatch.jsonl")]
if got != expected:
    for g, e in zip(got, expected):
        if g != e:
            print("got      %s\nexpected %s" % (json.dumps(g), json.dumps(e)))
    print("%d rows, expected %d" % (len(got), len(expected)))
    sys.exit(1)
print("%d rows: each battery's soc at each of %d issues, as the twin had it then" % (len(got), len(issues)))
PY
