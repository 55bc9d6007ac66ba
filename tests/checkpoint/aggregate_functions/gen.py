"""Writes input.txt: 5 meters in 2 zones every ~2 s for ~4 minutes, up to 4 s out of order,
with NULLs, repeated values (for the distinct counts) and empty-string labels."""
import json
import random

random.seed(3)
meters = {f"m{i}": "z" + str(i % 2) for i in range(5)}
labels = ["", "ok", "warn", "alarm", "idle", "peak"]
rows = []
t = 0
for _ in range(240):
    t += random.randint(200, 1800)
    m = random.choice(list(meters))
    rows.append({
        "meter": m, "zone": meters[m], "ts": t,
        "kw": None if random.random() < 0.07 else random.choice([1.5, 2.0, round(random.uniform(-3, 9), 3)]),
        "pulses": None if random.random() < 0.07 else random.randint(0, 12),
        "label": None if random.random() < 0.07 else random.choice(labels),
    })
arrival = sorted(rows, key=lambda r: r["ts"] + random.choice([0, 0, 0, 1500, 4000]))
lines = ["m\t" + json.dumps(r) for r in arrival]
open("input.txt", "w").write("\n".join(lines) + "\n")
