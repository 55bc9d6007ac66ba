"""Writes input.txt: the first four days of queries/data/site_meters.csv as meter rows, with
site-virginia starting on day two, a few values missing and a few rows swapped with their
neighbours (out of order within the watermark delay)."""
import csv
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "../../../queries/data/site_meters.csv")

rows = list(csv.DictReader(open(DATA)))
t0 = int(rows[0]["ts"])
events = []
for i, r in enumerate(rows):
    ts = int(r["ts"])
    if ts >= t0 + 4 * 86400000:
        break
    if r["site"] == "site-virginia" and ts < t0 + 86400000:
        continue
    load = None if i % 37 == 5 else float(r["load_kw"])
    events.append({"site": r["site"], "ts": ts, "load_kw": load})
for i in range(11, len(events) - 1, 29):
    events[i], events[i + 1] = events[i + 1], events[i]
    events[i + 1], events[i + 5] = events[i + 5], events[i + 1]
with open(os.path.join(HERE, "input.txt"), "w") as out:
    for e in events:
        out.write("meters\t" + json.dumps(e) + "\n")
