"""Writes input.txt: devices registered and re-registered among telemetry; meters and prices
in 3 zones, a little out of order, prices sparser than meters."""
import json
import random

random.seed(9)
owners = ["ann", "bob", "cyd"]
tariffs = ["tou", "flat"]
zones = ["za", "zb", "zc"]
lines = []
t = 0
for i in range(260):
    t += random.randint(100, 900)
    r = random.random()
    if r < 0.12:
        d = {"device": f"d{random.randint(0, 6)}", "owner": random.choice(owners),
             "tariff": random.choice(tariffs), "cap": random.choice([5.0, 10.0, 13.5])}
        lines.append("devices\t" + json.dumps(d))
    elif r < 0.45:
        d = {"device": f"d{random.randint(0, 8)}", "ts": t, "soc": round(random.uniform(0, 1), 3)}
        lines.append("telemetry\t" + json.dumps(d))
    elif r < 0.8:
        d = {"zone": random.choice(zones), "ts": max(0, t - random.choice([0, 0, 1000])),
             "load": round(random.uniform(0, 40), 1)}
        lines.append("meters\t" + json.dumps(d))
    else:
        d = {"zone": random.choice(zones), "ts": max(0, t - random.choice([0, 0, 1500])),
             "price": round(random.uniform(5, 60), 2)}
        lines.append("prices\t" + json.dumps(d))
open("input.txt", "w").write("\n".join(lines) + "\n")
