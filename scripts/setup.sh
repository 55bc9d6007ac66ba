#!/usr/bin/env bash
# setup.sh — installs the Debian packages vpq needs (only those missing), then configures and
# builds vpq into build/ (the `vpq` executable lands at build/vpq).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config re2c lemon clang libjemalloc-dev libcmocka-dev librdkafka-dev libzstd-dev libglpk-dev
          libmicrohttpd-dev glpk-utils python3 kcat python3-kafka python3-zstandard curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -E"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
