#!/usr/bin/env bash
# run_http_load.sh [SECONDS] [CLIENTS] [PULLS] [SPEED] — the HTTP side under load, against the demo:
# `vpq run queries/peak_shaving.vpq --http` on loopback with the simulator at SPEED× real time
# (default 20000: faster than the engine can follow, so it is always busy and rows in per second
# is its throughput). Three phases of SECONDS each (default 60): alone, then with CLIENTS
# (default 100) server-sent-event subscribers spread over the demo's six streams plus a loop of
# PULLS (default 100; 0: back to back) pull queries a second (tables, POST /api/query,
# /metrics; bench/http_load.py), then alone again. Prints, per phase, the engine's rows in per
# second, simulated seconds per wall second, vpq's CPU, the clients' CPU and what they got.
# Everything runs on this machine (2 cores here), so the clients' CPU is taken from the engine.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60} clients=${2:-100} pulls=${3:-100} speed=${4:-20000}
vpq=$(cd .. && pwd)/${VPQ:-build/vpq}
[ -x "$vpq" ] || { echo "no $vpq: build first (bash scripts/setup.sh)"; exit 1; }
work=$(mktemp -d)
vpq_pid=
trap 'kill -INT $vpq_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

port=$(shuf -i 20000-60000 -n 1)
# The subshell execs vpq, so $! is the demo's process.
(cd ../queries && exec "$vpq" run peak_shaving.vpq --http "127.0.0.1:$port" --set sim.hours=0 \
  --set sim.speed="$speed" --set sim.history_days=1 >"$work/out.txt" 2>"$work/err.txt") &
vpq_pid=$!
for _ in $(seq 100); do grep -q "serving HTTP on port $port" "$work/err.txt" 2>/dev/null && break; sleep 0.1; done
grep -q "serving HTTP on port $port" "$work/err.txt" || { cat "$work/err.txt"; exit 1; }
echo "demo on 127.0.0.1:$port, simulator at ${speed}x; warming up 20 s (history, first forecasts)"
sleep 20

phase() { # phase NAME CLIENTS
  printf '%-8s ' "$1"
  /usr/bin/python3 http_load.py "http://127.0.0.1:$port" "$vpq_pid" "$seconds" "$2" "$pulls" | tee -a "$work/phases.jsonl"
}
phase alone 0
phase loaded "$clients"
phase alone 0
/usr/bin/python3 - "$work/phases.jsonl" <<'PY'
import json, sys
a1, loaded, a2 = [json.loads(l) for l in open(sys.argv[1])]
alone = (a1["rows_in_per_s"] + a2["rows_in_per_s"]) / 2
print()
print("| phase | rows in/s | simulated s per s | vpq CPU | clients' CPU | SSE events | SSE MiB | overflows | pulls (p50 / p99 ms) |")
print("|---|---|---|---|---|---|---|---|---|")
for name, p in (("alone", a1), ("%d SSE + pulls" % loaded["clients"], loaded), ("alone again", a2)):
    pulls = "%d (%s / %s)" % (p["pulls"], p["pull_ms_p50"], p["pull_ms_p99"]) if p["pulls"] else "-"
    print("| %s | %d | %d | %d%% | %d%% | %d | %.1f | %d | %s |" % (name, p["rows_in_per_s"], p["sim_s_per_s"], p["vpq_cpu_pct"],
          p["clients_cpu_pct"], p["events"], p["mib"], p["overflows"], pulls))
print()
print("engine throughput with the clients: %.0f%% of alone (mean of the two alone phases)" % (100 * loaded["rows_in_per_s"] / alone))
bad = {k: v for k, v in loaded["pull_status"].items() if k != "200"}
print("pull answers: %s%s" % (loaded["pull_status"], "" if not bad else "  (not all 200!)"))
PY
