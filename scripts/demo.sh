#!/usr/bin/env bash
# demo.sh — the main job: set up and build, then run the example plant-load pipeline over
# the shipped meter data and show its output.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
./build/vpq explain queries/plant_load.vpq
./build/vpq run queries/plant_load.vpq
echo "--- first rows of queries/out/plant_load.jsonl:"
head -n 8 queries/out/plant_load.jsonl
