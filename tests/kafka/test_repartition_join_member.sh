#!/usr/bin/env bash
# test_repartition_join_member.sh VPQ — a member joins a running group after windows have
# closed and while others are open. Two `vpq run` of one file read a 4-partition topic of
# telemetry keyed by device and count and sum 1-minute windows per site (repartitioned by site
# through `join.per_site.repartition`). Once minutes 0 and 1 are written and minute 2 is half
# full, a third member starts: the group gives it a partition of the internal topic, which it
# reads again from the committed offset, a window's size behind the old owner's watermark, so
# it reads again rows of windows the old owner wrote. It must start that partition at the
# watermark committed with the offset: those rows are late for it (counted), not a window
# written a second time, partial. The union of the members' output, read by kafka-python, must
# hold every window of the input exactly once with its exact count and sum.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic telemetry:4 --topic per_site:2
cd "$work" || exit 1
setup_site_windows join
for m in 1 2; do
  "$vpq" run join.vpq --brokers "$bootstrap" 2>m$m.err &
  eval "pid$m=$!"
done
for _ in $(seq 240); do
  [ "$(sizes $exchange m1.err m2.err)" = "2 2 " ] && [ "$(sizes telemetry m1.err m2.err)" = "2 2 " ] && break
  sleep 0.25
done
[ "$(sizes $exchange m1.err m2.err)" = "2 2 " ] || fail "the two members did not split the internal topic"

# Minutes 0 and 1 close and are written; minute 2 ([120 s, 180 s)) is half full.
produce_telemetry 0 150 || fail "producing the first part"
for _ in $(seq 120); do
  check_windows 2 >check.txt && break
  sleep 0.25
done
check_windows 2 >check.txt || { cat check.txt; fail "minutes 0 and 1 were not written before the third member"; }

"$vpq" run join.vpq --brokers "$bootstrap" 2>m3.err &
pid3=$!
for _ in $(seq 240); do
  [ "$(sizes $exchange m1.err m2.err m3.err)" = "1 1 2 " ] && break
  sleep 0.25
done
[ "$(sizes $exchange m1.err m2.err m3.err)" = "1 1 2 " ] || fail "the third member got no partition of the internal topic"
echo "the third member reads partitions [$(assignment m3.err $exchange)] of the internal topic"

produce_telemetry 150 300 || fail "producing the second part"
produce_end || fail "producing the last rows"

ok=
for _ in $(seq 60); do
  sleep 2
  check_windows >check.txt && { ok=1; break; }
  grep -q '^extra' check.txt && break # a window written twice stays so
done
cat check.txt
for m in 1 2 3; do eval "kill -INT \$pid$m"; done
for m in 1 2 3; do
  eval "wait \$pid$m"
  rc=$?
  [ $rc = 0 ] || fail "member $m exited $rc after SIGINT"
done
[ -n "$ok" ] || fail "the union of the members' output is not every window once"
check_windows >check.txt || { cat check.txt; fail "rows written after the windows were complete"; }
# The rows the third member read again of windows already written were counted late there.
late=$(sed -n 's/^vpq: [0-9]* rows in, [0-9]* rows out, \([0-9]*\) late.*/\1/p' m3.err)
[ -n "$late" ] && [ "$late" -gt 0 ] || fail "the third member counted no late row (late: '$late')"
echo "the third member counted $late row(s) read again of written windows late"
