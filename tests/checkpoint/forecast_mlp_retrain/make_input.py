"""Writes input.txt: the first ten days of the AEP and Dayton zones of
queries/data/sim_load_pjm.csv as (region, ts, load_mw) rows in time order, every 23rd value
missing."""
import csv
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "../../../queries/data/sim_load_pjm.csv")
DAY = 86400000

rows = list(csv.DictReader(open(DATA)))
start = int(rows[0]["ts"])
n = 0
with open(os.path.join(HERE, "input.txt"), "w") as out:
    for r in rows:
        ts = int(r["ts"])
        if ts >= start + 10 * DAY:
            break
        for region, col in (("aep", "aep_mw"), ("dayton", "dayton_mw")):
            n += 1
            row = {"region": region, "ts": ts, "load_mw": None if n % 23 == 9 else float(r[col])}
            out.write("zone_load\t" + json.dumps(row) + "\n")
