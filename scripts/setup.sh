#!/usr/bin/env bash
# setup.sh — installs the Debian packages vpq needs (only those missing) and the npm packages of
# web/ (uPlot, compiled into vpq, and playwright-core for the dashboard's browser test), then
# configures and builds vpq into build/ (the `vpq` executable lands at build/vpq).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config re2c lemon clang libjemalloc-dev libcmocka-dev librdkafka-dev libzstd-dev libglpk-dev
          libmicrohttpd-dev glpk-utils python3 kcat python3-kafka python3-confluent-kafka python3-zstandard curl chromium)
missing=()
# Node.js and npm: Debian's, unless a node and an npm are there already (e.g. NodeSource's nodejs,
# which has npm inside and conflicts with Debian's npm package).
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
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

# web/node_modules, as web/package-lock.json pins it (again when the lock file changes).
if [ ! -d web/node_modules/uplot ] || [ ! -d web/node_modules/playwright-core ] ||
   [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  echo "setup: npm ci in web/"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
