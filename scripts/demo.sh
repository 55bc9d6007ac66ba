#!/usr/bin/env bash
# demo.sh — the main job: set up and build, then run the peak-shaving demo: DESIGN §2's
# pipeline (queries/peak_shaving.vpq) against the embedded Kafka broker and the battery-fleet
# simulator, for one simulated day at 720× real time (about two minutes), with a live summary.
# Extra arguments go to `vpq run` (e.g. --set sim.hours=0 to run until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cd queries
../build/vpq explain peak_shaving.vpq
exec ../build/vpq run peak_shaving.vpq --set sim.hours=24 --set sim.speed=720 "$@"
