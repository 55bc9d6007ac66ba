#!/usr/bin/env python3
"""make_sample_data.py — writes the small sample inputs of queries/data/ from the real series in
../shared/data/ (deterministic; rerun to regenerate):
  site_meters.csv   a week of hourly load for four sites, one per PJM zone, scaled to ~kW
  telemetry.jsonl   a day of 15-minute battery telemetry for 12 batteries on those sites
  load_pjme.csv     the last 400 days of PJM East hourly load (MW), for the load forecast
  prices_se3.csv    the last 200 days of SE3 day-ahead prices (EUR/MWh), for the price forecast
  weather_sthlm.csv Stockholm's weather over the same hours (temperature, wind, cloud cover)
  sim_load_pjm.csv  the last 56 whole UTC days of the four PJM zones (MW): the site loads of
                    `vpq simulate`, compiled into the vpq binary
  sim_pv_fr.csv     over the same hours, rooftop PV output per unit of installed capacity (0..1)
                    from France's solar radiation: the simulator's optional PV, compiled in too
"""
import csv, json, math, os, random, sys

here = os.path.dirname(os.path.abspath(__file__))
shared = os.path.join(here, "..", "..", "shared", "data")
out_dir = os.path.join(here, "..", "queries", "data")

zones = [("pjme_mw", "site-east", 0.05), ("aep_mw", "site-ohio", 0.08),
         ("dayton_mw", "site-dayton", 0.6), ("dom_mw", "site-virginia", 0.09)]
start = 1514764800000  # 2018-01-01T00:00:00Z
hours = 7 * 24

with open(os.path.join(shared, "load_pjm.csv")) as f:
    rows = {int(r["ts"]): r for r in csv.DictReader(f)}

with open(os.path.join(out_dir, "site_meters.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["site", "ts", "load_kw"])
    for h in range(hours):
        ts = start + h * 3600000
        r = rows.get(ts)
        for col, site, scale in zones:
            value = r[col] if r and r[col] else ""
            w.writerow([site, ts, round(float(value) * scale, 1) if value else ""])

rng = random.Random(42)
with open(os.path.join(out_dir, "telemetry.jsonl"), "w") as f:
    devices = []
    for i in range(12):
        site = zones[i % 4][1]
        region = "east" if site in ("site-east", "site-virginia") else "midwest"
        cap = rng.choice([10.0, 13.5, 20.0])
        devices.append({"device_id": f"bat-{i:02d}", "site": site, "region": region,
                        "capacity_kwh": cap, "max_kw": cap / 2, "soc": rng.uniform(0.3, 0.9)})
    for step in range(96):
        ts = start + step * 900000
        for d in devices:
            power = round(math.sin(step / 96 * 2 * math.pi) * d["max_kw"] * 0.6, 2)
            d["soc"] = min(0.95, max(0.1, d["soc"] - power * 0.25 / d["capacity_kwh"]))
            f.write(json.dumps({"device_id": d["device_id"], "site": d["site"], "region": d["region"],
                                "ts": ts, "soc": round(d["soc"], 4), "power_kw": power,
                                "capacity_kwh": d["capacity_kwh"], "max_kw": d["max_kw"]},
                               separators=(",", ":")) + "\n")
def subset(src, dst, columns, days):
    """Copies the last `days` days of columns (renamed: {source: target}) of a shared file."""
    with open(os.path.join(shared, src)) as f:
        rows = list(csv.DictReader(f))
    last = int(rows[-1]["ts"])
    first = last - days * 86400000
    with open(os.path.join(out_dir, dst), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ts"] + list(columns.values()))
        for r in rows:
            if int(r["ts"]) > first:
                w.writerow([r["ts"]] + [r[c] for c in columns])


subset("load_pjm.csv", "load_pjme.csv", {"pjme_mw": "load_mw"}, 400)
subset("prices_se.csv", "prices_se3.csv", {"se3_eur_mwh": "price"}, 200)
subset("weather_se.csv", "weather_sthlm.csv",
       {"stockholm_temp_c": "temp_c", "stockholm_wind_kmh": "wind_kmh", "stockholm_cloud_pct": "cloud_pct"}, 200)
with open(os.path.join(shared, "load_pjm.csv")) as f:
    rows = list(csv.DictReader(f))
end = int(rows[-1]["ts"]) // 86400000 * 86400000
begin = end - 56 * 86400000
with open(os.path.join(out_dir, "sim_load_pjm.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["ts", "pjme_mw", "aep_mw", "dayton_mw", "dom_mw"])
    for r in rows:
        if begin <= int(r["ts"]) < end:
            w.writerow([r["ts"], r["pjme_mw"], r["aep_mw"], r["dayton_mw"], r["dom_mw"]])

# The PV profile: global horizontal irradiance (direct + diffuse, W/m²) / 1000 W/m², capped at 1,
# i.e. a panel's output per kW installed at standard test conditions. Radiation rather than
# solar_mw normalised by its maximum: French PV capacity grew over the years and the maximum
# depends on the window, whereas irradiance is per unit of capacity by definition. The
# radiation is France's (the PJM zones have none); PJM hour ts takes France's hour ts − 5 h of
# the same year, so that both are at the same solar time (solar noon ≈ 11:50 UTC in France,
# ≈ 17:10 UTC in PJM's zones around 77° W) and the sun shines in the American daytime.
# Source: Open Power System Data "Weather data" (NASA MERRA-2), see ../shared/data/README.md.
SOLAR_SHIFT_MS = 5 * 3600000
with open(os.path.join(shared, "load_weather_fr.csv")) as f:
    weather = {int(r["ts"]): r for r in csv.DictReader(f)}
with open(os.path.join(out_dir, "sim_pv_fr.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["ts", "pv"])
    for ts in range(begin, end, 3600000):
        r = weather[ts - SOLAR_SHIFT_MS]
        ghi = float(r["rad_direct_wm2"]) + float(r["rad_diffuse_wm2"])
        w.writerow([ts, f"{min(ghi / 1000, 1.0):.4f}"])
print("wrote", out_dir, file=sys.stderr)
