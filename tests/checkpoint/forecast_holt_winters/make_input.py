"""Writes input.txt: 6 days of queries/data/load_pjme.csv (from its first midnight UTC), with
every 41st value missing, a three-hour outage on day four, and every 53rd row swapped with the
next (out of order within the watermark delay)."""
import csv
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "../../../queries/data/load_pjme.csv")
DAY = 86400000

rows = [(int(r["ts"]), float(r["load_mw"])) for r in csv.DictReader(open(DATA))]
start = next(ts for ts, _ in rows if ts % DAY == 0)
events = []
for i, (ts, load) in enumerate(r for r in rows if start <= r[0] < start + 6 * DAY):
    if start + 3 * DAY + 10 * 3600000 <= ts < start + 3 * DAY + 13 * 3600000:
        continue
    events.append({"ts": ts, "load_mw": None if i % 41 == 7 else load})
for i in range(20, len(events) - 1, 53):
    events[i], events[i + 1] = events[i + 1], events[i]
with open(os.path.join(HERE, "input.txt"), "w") as out:
    for e in events:
        out.write("pjme\t" + json.dumps(e) + "\n")
