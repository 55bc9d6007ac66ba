#!/usr/bin/env bash
# test_dashboard.sh VPQ QUERIES_DIR WEB_DIR OUT_DIR — the dashboard in a real browser against
# the running demo: `vpq run peak_shaving.vpq --http` (embedded broker and simulator, 1440×
# real time, two days of history) serves it while tests/http/dashboard.mjs drives Debian's
# chromium with playwright-core: every chart must draw live points that move on, and the
# screenshots (dashboard.png, embed.png) are left in OUT_DIR. Then SIGINT must end the demo
# with exit 0.
set -uo pipefail
vpq=$1 queries=$2 web=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
vpq_pid=
trap 'kill $vpq_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; grep -v "^%" "$work/err.txt" 2>/dev/null | tail -20; exit 1; }
[ -d "$web/node_modules/playwright-core" ] || fail "$web/node_modules/playwright-core is missing: run npm ci in $web"
[ -x /usr/bin/chromium ] || fail "Debian's chromium is not installed"
mkdir -p "$out"
rm -f "$out"/*.png

# The demo on a free port (a random one in 20000-60000, another if it is taken).
cd "$queries" || exit 1
for _ in 1 2 3 4 5; do
  port=$(shuf -i 20000-60000 -n 1)
  "$vpq" run peak_shaving.vpq --http "127.0.0.1:$port" --set sim.hours=0 --set sim.speed=1440 \
    --set sim.history_days=2 >"$work/out.txt" 2>"$work/err.txt" &
  vpq_pid=$!
  for _ in $(seq 100); do
    grep -q "serving HTTP on port $port" "$work/err.txt" && break
    kill -0 $vpq_pid 2>/dev/null || break
    sleep 0.1
  done
  grep -q "serving HTTP on port $port" "$work/err.txt" && break
  wait $vpq_pid
  vpq_pid=
  grep -q "cannot listen" "$work/err.txt" || fail "the demo did not start"
done
[ -n "$vpq_pid" ] || fail "no free port found"

/usr/bin/node "$here/dashboard.mjs" "http://127.0.0.1:$port" "$web" "$out" || fail "the dashboard in chromium"
for shot in dashboard.png embed.png; do
  [ "$(head -c 8 "$out/$shot" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] || fail "$out/$shot is not a PNG"
done

stop_run "the demo"
echo "dashboard: charts drawn live in chromium; screenshots in $out"
