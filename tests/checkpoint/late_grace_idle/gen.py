"""Writes input.txt: rows of 3 keys (event time follows the virtual clock), some held back up
to 12 s, and pauses of 6 to 20 s announced by clock ticks."""
import json
import random

random.seed(21)
lines = []
now = 1_000_000  # virtual processing time (ms); event time is now - 1_000_000
for _ in range(230):
    if random.random() < 0.06:
        for _ in range(random.randint(1, 3)):
            now += random.randint(3000, 7000)
            lines.append(f"tick\t{now}")
        continue
    now += random.randint(100, 1200)
    lines.append(f"tick\t{now}")
    ts = now - 1_000_000 - random.choice([0, 0, 0, 0, 2000, 5000, 12000])
    row = {"k": random.choice(["a", "b", "c"]), "ts": max(0, ts), "v": round(random.uniform(0, 10), 2)}
    lines.append("s\t" + json.dumps(row))
open("input.txt", "w").write("\n".join(lines) + "\n")
