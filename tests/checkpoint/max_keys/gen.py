"""Writes input.txt: 9 keys whose group changes now and then; the active keys drift over
time so that windows see different keys."""
import json
import random

random.seed(17)
grp = {f"k{i}": f"g{i % 4}" for i in range(9)}
lines = []
t = 0
for i in range(240):
    t += random.randint(100, 900)
    base = (i // 60) * 2
    k = f"k{(base + random.randint(0, 4)) % 9}"
    if random.random() < 0.1:
        grp[k] = f"g{random.randint(0, 3)}"
    row = {"k": k, "grp": grp[k], "ts": t, "v": round(random.uniform(0, 10), 2)}
    lines.append("s\t" + json.dumps(row))
open("input.txt", "w").write("\n".join(lines) + "\n")
