#!/usr/bin/env python3
"""gen_telemetry.py ROWS DEVICES OUT — writes ROWS lines of battery telemetry JSON (~160 bytes
each, the DESIGN §2 schema) for DEVICES batteries, one reading per device every 10 s of event
time, in time order with a little jitter. Deterministic (seeded)."""
import random, sys

rows, devices, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = random.Random(7)
start = 1700000000000
sites = [f"site-{i:04d}" for i in range(max(1, devices // 8))]
with open(out, "w") as f:
    buf = []
    for i in range(rows):
        d = i % devices
        tick = i // devices
        ts = start + tick * 10000 + rng.randrange(0, 500)
        site = sites[d % len(sites)]
        buf.append('{"device_id":"dev-%06d","site":"%s","region":"region-%d","ts":%d,'
                   '"soc":%.4f,"power_kw":%.3f,"capacity_kwh":13.5,"max_kw":5.0,"fw":"2.4.1"}\n'
                   % (d, site, d % 7, ts, rng.random(), rng.uniform(-5, 5)))
        if len(buf) == 100000:
            f.write("".join(buf))
            buf = []
    f.write("".join(buf))
