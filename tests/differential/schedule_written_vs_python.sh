#!/usr/bin/env bash
# schedule_written_vs_python.sh VPQ — a property test of SCHEDULE's output as written (setpoints
# in whole watts, socs and peaks as DESIGN.md §4 and docs/language.md define them), on 120 random
# small fleets (1–6 batteries of random sizes, powers, efficiencies and socs, fleet limits soc 0.1
# to 0.95) and random loads with sub-watt digits over 4–12 steps of 1 hour or 15 minutes, each
# through
#   MINIMIZE PEAK ... EMIT PLAN    and    KEEP BELOW cap KW ... EMIT PLAN
# with a cap between 0.5 and 3 kW above the lowest peak the fleet can reach. Python checks every
# row against the model, not against vpq's code: each setpoint is a whole number of watts within
# ±max_kw; each soc is what the written setpoints lead to (a discharge takes setpoint·Δt/η, a
# charge stores |setpoint|·Δt·η) and within the limits; planned_peak_kw is the maximum of load −
# Σ setpoints. The lowest reachable peak comes from glpsol on a model written here: MINIMIZE
# PEAK's written peak is no lower than it and at most 2 W per battery above it (the rounding to
# watts, docs/language.md); the written KEEP BELOW plan passes its cap by no more than that, and
# in at least a third of the cases not at all (67 of 120 pass it, by a watt or two: the exact
# plans here use some battery's energy to the last watt, which leaves the rounding nothing to
# spare; a rounding battery by battery passed it in 115).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_work "$1"
[ -x /usr/bin/glpsol ] || { echo "glpsol (Debian glpk-utils) is needed"; exit 1; }
cat > check.py <<'PY'
import json, math, os, random, subprocess, sys

vpq = sys.argv[1]
MIN_SOC, MAX_SOC = 0.1, 0.95
MODEL = """
set B; param T integer > 0; param dt > 0; param load{0..T-1};
param cap{B} > 0; param kw{B} > 0; param eff{B} > 0; param soc0{B};
var c{b in B, t in 0..T-1} >= 0, <= kw[b];
var d{b in B, t in 0..T-1} >= 0, <= kw[b];
var e{b in B, t in 0..T-1} >= """ + str(MIN_SOC) + """ * cap[b], <= """ + str(MAX_SOC) + """ * cap[b];
var peak;
minimize lowest: peak;
s.t. stored{b in B, t in 0..T-1}:
  e[b, t] = (if t = 0 then soc0[b] * cap[b] else e[b, t - 1]) + eff[b] * dt * c[b, t] - dt / eff[b] * d[b, t];
s.t. net{t in 0..T-1}: load[t] - sum{b in B} (d[b, t] - c[b, t]) <= peak;
solve;
printf "%.12f\\n", peak > "peak.txt";
end;
"""

def lowest_peak(fleet, loads, dt):
    with open("m.mod", "w") as f:
        f.write(MODEL)
    with open("m.dat", "w") as f:
        f.write("data;\nset B := %s;\nparam T := %d;\nparam dt := %r;\n" % (" ".join(b["id"] for b in fleet), len(loads), dt))
        f.write("param load := %s;\n" % " ".join("%d %r" % (t, v) for t, v in enumerate(loads)))
        for name in ("cap", "kw", "eff", "soc0"):
            f.write("param %s := %s;\n" % (name, " ".join("%s %r" % (b["id"], b[name]) for b in fleet)))
        f.write("end;\n")
    subprocess.run(["/usr/bin/glpsol", "--math", "m.mod", "--data", "m.dat"], check=True, stdout=subprocess.DEVNULL)
    return float(open("peak.txt").read())

def check(label, rows, fleet, loads, dt, t0, step_ms):
    failures = []
    def fail(msg):
        failures.append("%s: %s" % (label, msg))
    if len(rows) != len(fleet) * len(loads):
        fail("%d rows, expected %d" % (len(rows), len(fleet) * len(loads)))
        return failures, None
    by_device = {b["id"]: [] for b in fleet}
    for r in rows:
        by_device[r["device_id"]].append(r)
    totals = [0.0] * len(loads)
    for b in fleet:
        mine = sorted(by_device[b["id"]], key=lambda r: r["ts"])
        energy = b["soc0"] * b["cap"]
        for k, r in enumerate(mine):
            sp = r["setpoint_kw"]
            if r["ts"] != t0 + k * step_ms:
                fail("%s step %d at %d" % (b["id"], k, r["ts"]))
            if abs(sp * 1000 - round(sp * 1000)) > 1e-6:
                fail("%s step %d setpoint %r is not whole watts" % (b["id"], k, sp))
            if abs(sp) > math.floor(b["kw"] * 1000 + 1e-6) / 1000 + 1e-12:
                fail("%s step %d setpoint %r beyond max_kw %r" % (b["id"], k, sp, b["kw"]))
            energy -= sp * dt / b["eff"] if sp > 0 else sp * dt * b["eff"]
            soc = energy / b["cap"]
            if abs(r["soc"] - soc) > 2e-9:
                fail("%s step %d soc %r, the setpoints give %r" % (b["id"], k, r["soc"], soc))
            if soc < MIN_SOC - 1e-9 or soc > MAX_SOC + 1e-9:
                fail("%s step %d soc %r outside the limits" % (b["id"], k, soc))
            totals[k] += sp
    peak = max(l - s for l, s in zip(loads, totals))
    for r in rows:
        if abs(r["planned_peak_kw"] - peak) > 2e-9:
            fail("planned_peak_kw %r, the setpoints give %r" % (r["planned_peak_kw"], peak))
            break
    return failures, peak

def main():
    rng = random.Random(20261201)
    failures, over_optimum, passed = [], 0.0, 0
    for case in range(120):
        n = rng.randint(1, 6)
        fleet = [{"id": "b%d" % i, "cap": round(rng.uniform(5, 20), 3), "kw": round(rng.uniform(1.5, 7), 4),
                  "eff": round(rng.uniform(0.85, 1.0), 3), "soc0": round(rng.uniform(0.2, 0.9), 4)} for i in range(n)]
        steps = rng.randint(4, 12)
        step_ms = rng.choice([3600000, 900000])
        dt = step_ms / 3600000
        power = sum(b["kw"] for b in fleet)
        loads = [round(rng.uniform(2, 2 + 3 * power), 4) + rng.choice([0, 1e-4, 3.3e-4]) for _ in range(steps)]
        optimum = lowest_peak(fleet, loads, dt)
        cap = round(optimum + rng.uniform(0.5, 3), 1)
        t0 = 1704067200000 + case * 86400000
        with open("fleet.csv", "w") as f:
            f.write("device_id,soc,capacity_kwh,max_kw,efficiency,seen\n")
            for b in fleet:
                f.write("%s,%r,%r,%r,%r,%d\n" % (b["id"], b["soc0"], b["cap"], b["kw"], b["eff"], t0 - 1000))
        with open("forecast.csv", "w") as f:
            f.write("issued_at,ts,value\n")
            for k, v in enumerate(loads):
                f.write("%d,%d,%r\n" % (t0, t0 + k * step_ms, v))
        step = "1 HOUR" if step_ms == 3600000 else "15 MINUTES"
        horizon = "%d MINUTES" % (steps * step_ms // 60000)
        with open("q.vpq", "w") as f:
            f.write("""
CREATE TABLE batteries (device_id STRING PRIMARY KEY, soc DOUBLE, capacity_kwh DOUBLE, max_kw DOUBLE,
                        efficiency DOUBLE, seen TIMESTAMP)
  WITH (connector = 'file', path = 'fleet.csv', format = 'csv', timestamp = 'seen');
CREATE STREAM load_forecast (issued_at TIMESTAMP, ts TIMESTAMP, value DOUBLE)
  WITH (connector = 'file', path = 'forecast.csv', format = 'csv', timestamp = 'issued_at');
CREATE STREAM peak WITH (connector = 'file', path = 'peak.jsonl') AS
  SCHEDULE batteries FOR load_forecast MINIMIZE PEAK SUBJECT TO soc >= 0.1, soc <= 0.95
  HORIZON %s STEP %s EMIT PLAN;
CREATE STREAM capped WITH (connector = 'file', path = 'capped.jsonl') AS
  SCHEDULE batteries FOR load_forecast KEEP BELOW %r KW SUBJECT TO soc >= 0.1, soc <= 0.95
  HORIZON %s STEP %s EMIT PLAN;
""" % (horizon, step, cap, horizon, step))
        for name in ("peak.jsonl", "capped.jsonl"):
            if os.path.exists(name):
                os.remove(name)
        subprocess.run([vpq, "run", "q.vpq"], check=True, stderr=subprocess.DEVNULL)
        label = "case %d (%d batteries, %d steps of %g h, lowest peak %.6f, cap %r)" % (case, n, steps, dt, optimum, cap)
        peak_rows = [json.loads(l) for l in open("peak.jsonl")]
        capped_rows = [json.loads(l) for l in open("capped.jsonl")]
        f1, written = check(label + " MINIMIZE PEAK", peak_rows, fleet, loads, dt, t0, step_ms)
        f2, capped = check(label + " KEEP BELOW", capped_rows, fleet, loads, dt, t0, step_ms)
        failures += f1 + f2
        if written is not None:
            over_optimum = max(over_optimum, (written - optimum) / n)
            if written < optimum - 1e-6 or written > optimum + 0.002 * n:
                failures.append("%s: MINIMIZE PEAK wrote a peak of %.9f" % (label, written))
        if capped is not None and capped > cap + 1e-9:
            passed += 1
            if capped > cap + 0.002 * n:
                failures.append("%s: KEEP BELOW wrote a peak of %.9f over the cap" % (label, capped))
    if passed > 80:
        failures.append("%d of 120 written KEEP BELOW plans pass their cap" % passed)
    for f in failures[:20]:
        print(f)
    print("120 cases, %d failures; MINIMIZE PEAK's written peak at most %.2f W per battery above the lowest; "
          "%d KEEP BELOW plans over their cap" % (len(failures), over_optimum * 1e3, passed))
    sys.exit(1 if failures else 0)

main()
PY
/usr/bin/python3 check.py "$vpq"
