"""Writes input.txt: three days of plant load (the four sites of
queries/data/site_meters.csv summed, scaled to about 60 kW) and, each hour before the load
row, the reports of bat-00 .. bat-04 of queries/data/telemetry.jsonl (their day of telemetry
repeated, the hour's first row); bat-03 falls silent after 20 hours, bat-01 from hour 40 to 50."""
import csv
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "../../../queries/data")
HOUR, DAY = 3600000, 86400000

plant = {}
for r in csv.DictReader(open(os.path.join(DATA, "site_meters.csv"))):
    plant[int(r["ts"])] = plant.get(int(r["ts"]), 0.0) + float(r["load_kw"])
telemetry = {}
for line in open(os.path.join(DATA, "telemetry.jsonl")):
    r = json.loads(line)
    if r["device_id"] in {"bat-0%d" % i for i in range(5)} and r["ts"] % HOUR == 0:
        telemetry.setdefault((r["ts"] % DAY) // HOUR, []).append(r)
start = min(plant)
lines = []
for h in range(72):
    t = start + h * HOUR
    for r in telemetry[h % 24]:
        if (r["device_id"] == "bat-03" and h >= 20) or (r["device_id"] == "bat-01" and 40 <= h < 50):
            continue
        row = {k: r[k] for k in ("device_id", "soc", "capacity_kwh", "max_kw")}
        row["seen"] = t
        lines.append("fleet\t" + json.dumps(row))
    lines.append("plant_load\t" + json.dumps({"ts": t, "load_kw": round(plant[t] / 130.0, 3)}))
with open(os.path.join(HERE, "input.txt"), "w") as out:
    out.write("\n".join(lines) + "\n")
