"""Writes input.txt: 3 sites every ~1.5 s for ~12 minutes, slightly out of order."""
import json
import random

random.seed(13)
lines = []
t = 0
for _ in range(480):
    t += random.randint(300, 2700)
    row = {"site": random.choice(["north", "south", "east"]), "ts": max(0, t - random.choice([0, 0, 800])),
           "kw": round(random.uniform(0, 100), 1)}
    lines.append("s\t" + json.dumps(row))
open("input.txt", "w").write("\n".join(lines) + "\n")
