"""Writes input.txt: 14 batteries upserted 200 times; they move between sites and regions,
change vendor now and then, and sometimes report a NULL soc."""
import json
import random

random.seed(5)
sites = {"s1": "r1", "s2": "r1", "s3": "r2", "s4": "r2", "s5": "r3"}
vendors = ["acme", "bolt", "cell", "dyna"]
state = {}
lines = []
for i in range(200):
    d = f"b{random.randint(0, 13):02d}"
    row = state.get(d) or {"device": d, "site": random.choice(list(sites)), "vendor": random.choice(vendors),
                           "cap": random.choice([5, 10, 13])}
    if random.random() < 0.15:
        row["site"] = random.choice(list(sites))
    if random.random() < 0.05:
        row["vendor"] = random.choice(vendors)
    row["region"] = sites[row["site"]]
    row["soc"] = None if random.random() < 0.05 else round(random.uniform(0, 1), 3)
    state[d] = dict(row)
    lines.append("batteries\t" + json.dumps(row))
open("input.txt", "w").write("\n".join(lines) + "\n")
