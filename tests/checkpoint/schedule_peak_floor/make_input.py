"""Writes input.txt: 40 hourly issues from 2024-01-31 08:00 UTC, across the turn of the month
(January's peak is forgotten at 2024-02-01 00:00). Each hour: three batteries report (soc
drifting, one of them with its own limits), then the load forecast for the next six hours (a
daily shape around 60 kW with an evening peak that grows each day)."""
import calendar
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
HOUR = 3600000
start = calendar.timegm((2024, 1, 31, 8, 0, 0)) * 1000
batteries = [
    ("bat-a", 13.5, 5.0, 0.95, 0.10, 0.90),
    ("bat-b", 10.0, 3.3, 0.90, None, None),
    ("bat-c", 20.0, 7.0, None, 0.20, 0.95),
]


def load(h):
    """The load at hour h after the start: a daily shape whose evening peak grows by day."""
    return round(60 + 20 * math.sin(2 * math.pi * ((h + 8) % 24 - 11) / 24) + 2 * (h // 24), 3)


lines = []
for h in range(40):
    t = start + h * HOUR
    for i, (name, cap, kw, eff, lo, hi) in enumerate(batteries):
        soc = round(0.5 + 0.3 * math.sin(h / 4.0 + 2 * i), 4)
        row = {"device_id": name, "soc": soc, "capacity_kwh": cap, "max_kw": kw, "efficiency": eff,
               "min_soc": lo, "max_soc": hi, "seen": t - 60000 * i}
        lines.append("fleet\t" + json.dumps(row))
    lines += ["load_forecast\t" + json.dumps({"issued_at": t, "ts": t + k * HOUR, "value": load(h + k)})
              for k in range(6)]
with open(os.path.join(HERE, "input.txt"), "w") as out:
    out.write("\n".join(lines) + "\n")
