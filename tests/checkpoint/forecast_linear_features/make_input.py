"""Writes input.txt: three weeks of SE3 prices joined with Stockholm's weather on the hour
(queries/data), from the first midnight UTC both cover; every 29th price and every 31st
temperature missing, and one day without any weather."""
import csv
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "../../../queries/data")
DAY = 86400000

prices = {int(r["ts"]): float(r["price"]) for r in csv.DictReader(open(os.path.join(DATA, "prices_se3.csv")))}
weather = {int(r["ts"]): r for r in csv.DictReader(open(os.path.join(DATA, "weather_sthlm.csv")))}
common = sorted(set(prices) & set(weather))
start = next(ts for ts in common if ts % DAY == 0)
with open(os.path.join(HERE, "input.txt"), "w") as out:
    for i, ts in enumerate(t for t in common if start <= t < start + 21 * DAY):
        w = weather[ts]
        no_weather = start + 9 * DAY <= ts < start + 10 * DAY
        row = {
            "ts": ts,
            "price": None if i % 29 == 3 else prices[ts],
            "temp_c": None if no_weather or i % 31 == 4 else float(w["temp_c"]),
            "wind_kmh": None if no_weather else float(w["wind_kmh"]),
            "cloud_pct": None if no_weather else int(float(w["cloud_pct"])),
        }
        out.write("priced_weather\t" + json.dumps(row) + "\n")
