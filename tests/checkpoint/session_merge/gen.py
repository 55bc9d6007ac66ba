"""Writes input.txt: bursts of clicks per user with gaps, some rows held back up to 15 s so
that they arrive between two sessions and merge them, and a few held back 40 s: a session of
such a row alone would be closed already, so it is late unless it falls within (or next to) a
session of its user that is still open, which it then joins."""
import json
import random

random.seed(11)
users = ["u1", "u2", "u3", "u4"]
pages = ["home", "cart", "pay", "faq", "about", "news"]
events = []
for u in users:
    t = random.randint(0, 5000)
    for _ in range(55):
        t += random.choice([700, 1500, 3000, 6000, 9000, 14000, 25000])
        amount = None if random.random() < 0.05 else round(random.uniform(0, 100), 2)
        events.append({"uid": u, "ts": t, "amount": amount, "page": random.choice(pages)})
events.sort(key=lambda e: e["ts"])
# arrival order: some rows come later than their time (up to 15 s, a few 40 s)
arrival = sorted(events, key=lambda e: e["ts"] + random.choice([0, 0, 0, 4000, 9000, 15000, 40000]))
lines = ["clicks\t" + json.dumps(e) for e in arrival]
open("input.txt", "w").write("\n".join(lines) + "\n")
