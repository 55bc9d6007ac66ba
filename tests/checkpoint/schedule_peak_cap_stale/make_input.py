"""Writes input.txt: twelve hours of a six-battery fleet and an hourly load forecast.

Batteries bat-00 .. bat-05 of queries/data/telemetry.jsonl report (an upsert of the fleet
table) every half hour; bat-04 stops after five hours (stale after one), bat-05's reports
arrive 20 minutes late (after the forecast of the issue they precede). Every hour an issue of
the forecast: 16 quarter-hours of PJM East's load (queries/data/load_pjme.csv, interpolated)
scaled to about 100 kW. Issue 7 loses its last row, which comes after issue 8 (late)."""
import csv
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "../../../queries/data")
HOUR, QUARTER = 3600000, 900000

telemetry = [json.loads(line) for line in open(os.path.join(DATA, "telemetry.jsonl"))]
t0 = telemetry[0]["ts"]
load = [float(r["load_mw"]) for r in csv.DictReader(open(os.path.join(DATA, "load_pjme.csv")))][:40]


def load_kw(ts):
    """PJM East's load at ts (hours from t0, linearly interpolated), scaled to ~100 kW."""
    h = (ts - t0) / HOUR
    i = int(h)
    return round((load[i] + (load[i + 1] - load[i]) * (h - i)) / 300.0, 3)


def report(r):
    row = {k: r[k] for k in ("device_id", "soc", "capacity_kwh", "max_kw")}
    row["seen"] = r["ts"]
    return "fleet\t" + json.dumps(row)


reports = {}
for r in telemetry:
    if r["device_id"] in {"bat-0%d" % i for i in range(6)} and (r["ts"] - t0) % (HOUR // 2) == 0:
        reports.setdefault(r["ts"], []).append(r)

lines, late_rows, delayed = [], [], []
for slot in range(24):
    t = t0 + slot * HOUR // 2
    for r in reports.get(t, []):
        if r["device_id"] == "bat-04" and t >= t0 + 5 * HOUR:
            continue
        if r["device_id"] == "bat-05":
            delayed.append(r)
            continue
        lines.append(report(r))
    if slot % 2 == 0:
        issue = slot // 2
        lines += late_rows
        late_rows = []
        rows = ["load_forecast\t" + json.dumps({"issued_at": t, "ts": t + k * QUARTER, "value": load_kw(t + k * QUARTER)})
                for k in range(16)]
        if issue == 7:
            late_rows = rows[-1:]
            rows = rows[:-1]
        lines += rows
    lines += [report(r) for r in delayed]
    delayed = []
with open(os.path.join(HERE, "input.txt"), "w") as out:
    out.write("\n".join(lines) + "\n")
