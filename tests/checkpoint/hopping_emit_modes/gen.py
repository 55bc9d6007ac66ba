"""Writes input.txt: readings of 6 devices on 3 sites, up to 12 s out of order, some kw NULL."""
import json
import random

random.seed(7)
sites = {f"d{i}": ["north", "south", "east"][i % 3] for i in range(6)}
lines = []
t = 0
for _ in range(220):
    t += random.randint(0, 600)
    ts = max(0, t - random.choice([0, 0, 0, 500, 1500, 4000, 12000]))
    device = random.choice(list(sites))
    kw = None if random.random() < 0.08 else round(random.uniform(-5, 50), 1)
    row = {"device": device, "site": sites[device], "ts": ts, "kw": kw}
    lines.append("readings\t" + json.dumps(row))
open("input.txt", "w").write("\n".join(lines) + "\n")
