#!/usr/bin/env bash
# test.sh — set up and build, run the whole test suite with ctest, again under AddressSanitizer
# and UndefinedBehaviorSanitizer, then each fuzz target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir build --output-on-failure -j2

echo "== the suite again under ASan + UBSan"
cmake -S . -B build-asan -DVPQ_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j2 >/dev/null
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir build-asan --output-on-failure -j2

echo "== fuzzing (${VPQ_FUZZ_SECONDS:-60} s per target)"
CC=clang cmake -S . -B build-fuzz -DVPQ_FUZZ=ON -DVPQ_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j2 >/dev/null
ctest --test-dir build-fuzz -R fuzz.checkpoint_seeds --output-on-failure
for target in build-fuzz/fuzz_*; do
  [ -x "$target" ] || continue
  name=$(basename "$target")
  corpus=tests/fuzz/corpus/${name#fuzz_}
  mkdir -p build-fuzz/corpus-$name
  "$target" -max_total_time="${VPQ_FUZZ_SECONDS:-60}" -rss_limit_mb=2048 -print_final_stats=0 \
    -artifact_prefix=build-fuzz/ \
    build-fuzz/corpus-$name $( [ -d "$corpus" ] && echo "$corpus" ) 2>build-fuzz/$name.log \
    || { tail -50 build-fuzz/$name.log; echo "fuzz target $name failed"; exit 1; }
  echo "$name: $(grep -c . build-fuzz/$name.log) log lines, no crash"
done
