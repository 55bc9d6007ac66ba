"""Writes input.txt: readings of 10 batteries that move between 4 sites, 30% out of order by up to
4 s and some at one event time, soc sometimes NULL; registry upserts of the batteries' owners,
some repeating a row unchanged."""
import json
import random

random.seed(11)
lines, t = [], 0
site_of = {}
for i in range(240):
    t += random.choice([0, 0, 250, 1000])
    device = f"b{random.randint(0, 9)}"
    if device not in site_of or random.random() < 0.2:
        site_of[device] = random.choice(["s1", "s2", "s3", "s4"])
    ts = t - random.randint(0, 4000) if random.random() < 0.3 else t
    soc = None if random.random() < 0.1 else round(random.uniform(0, 1), 3)
    row = {"device": device, "site": site_of[device], "ts": ts, "soc": soc, "kw": random.randint(-5, 5)}
    lines.append("readings\t" + json.dumps(row))
    if random.random() < 0.15:
        owner = random.choice(["ann", "bob", "cyd"])
        lines.append("registry\t" + json.dumps({"device": device, "owner": owner, "ts": t - random.randint(0, 2) * 500}))
open("input.txt", "w").write("\n".join(lines) + "\n")
