"""Writes input.txt: two days of hourly issues from the first midnight UTC of
queries/data/prices_se3.csv. Each hour: four batteries report (soc drifting with the price),
the load forecast for the next six hours (a daily shape around 60 kW), and the price forecast
for the next six hours (the actual price, revised by a few percent for the hours after the
next). Every fifth hour the price rows come before the load rows, else after."""
import csv
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "../../../queries/data/prices_se3.csv")
HOUR, DAY = 3600000, 86400000

prices = {int(r["ts"]): float(r["price"]) for r in csv.DictReader(open(DATA))}
start = next(ts for ts in sorted(prices) if ts % DAY == 0)
batteries = [
    ("bat-a", 13.5, 5.0, 0.95, 0.10, 0.90),
    ("bat-b", 10.0, 3.3, 0.90, None, None),
    ("bat-c", 20.0, 7.0, None, 0.20, 0.95),
    ("bat-d", 5.0, 2.5, 0.97, None, 0.80),
]
lines = []
for h in range(48):
    t = start + h * HOUR
    for i, (name, cap, kw, eff, lo, hi) in enumerate(batteries):
        soc = round(0.5 + 0.35 * math.sin(h / 5.0 + i), 4)
        row = {"device_id": name, "soc": soc, "capacity_kwh": cap, "max_kw": kw, "efficiency": eff,
               "min_soc": lo, "max_soc": hi, "seen": t - 5 * 60000 * i}
        lines.append("fleet\t" + json.dumps(row))
    loads = ["load_forecast\t" + json.dumps({"issued_at": t, "ts": t + k * HOUR,
                                             "value": round(60 + 25 * math.sin(2 * math.pi * ((h + k) % 24 - 8) / 24), 3)})
             for k in range(6)]
    price_rows = ["price_forecast\t" + json.dumps({"issued_at": t, "ts": t + k * HOUR,
                                                   "value": round(prices[t + k * HOUR] * (1 + 0.03 * ((k * 7 + h) % 5 - 2) * (k > 1)), 4)})
                  for k in range(6) if t + k * HOUR in prices]
    lines += price_rows + loads if h % 5 == 0 else loads + price_rows
with open(os.path.join(HERE, "input.txt"), "w") as out:
    out.write("\n".join(lines) + "\n")
