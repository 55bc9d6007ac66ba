#!/usr/bin/env bash
# test_repartition_rebalance.sh VPQ — a group that changes while its members keep running.
# Three `vpq run` of one file read a 4-partition topic of telemetry keyed by device and count
# and sum 1-minute windows per site (not the message key: repartitioned by site through
# `rebal.per_site.repartition`, whose 4 partitions the three members split 2/1/1). While a
# window is open, the member that reads two partitions of the internal topic leaves cleanly
# (SIGTERM); the group gives its partitions to the others and moves one more, so a member
# that keeps running loses a partition whose open window it holds part of. That member must
# drop those groups without writing them, and the new owner must rebuild them from the
# internal topic's committed offsets. The union of the members' output, read by kafka-python,
# must hold every window of the input exactly once with its exact count and sum.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic telemetry:4 --topic per_site:2
cd "$work" || exit 1
setup_site_windows rebal
for m in 1 2 3; do
  "$vpq" run rebal.vpq --brokers "$bootstrap" 2>m$m.err &
  eval "pid$m=$!"
done
for _ in $(seq 240); do
  [ "$(sizes $exchange m1.err m2.err m3.err)" = "1 1 2 " ] && [ "$(sizes telemetry m1.err m2.err m3.err)" = "1 1 2 " ] && break
  sleep 0.25
done
[ "$(sizes $exchange m1.err m2.err m3.err)" = "1 1 2 " ] || fail "the three members did not split the internal topic"

# Minutes 0 and 1 close; minute 2 ([120 s, 180 s)) is half full when the group changes.
produce_telemetry 0 150 || fail "producing the first part"
sleep 3

# The member with two partitions of the internal topic leaves; the group moves a partition
# between the two that stay.
leaver=
for m in 1 2 3; do
  [ "$(sizes $exchange m$m.err)" = "2 " ] && leaver=$m
done
stayers=$(for m in 1 2 3; do [ $m != "$leaver" ] && echo $m; done)
declare -A before
for m in $stayers; do before[$m]=$(assignment m$m.err $exchange); done
eval "kill -TERM \$pid$leaver"
eval "wait \$pid$leaver"
rc=$?
[ $rc = 0 ] || fail "the member that left exited $rc"
for _ in $(seq 120); do
  [ "$(sizes $exchange $(for m in $stayers; do echo m$m.err; done))" = "2 2 " ] && break
  sleep 0.25
done
[ "$(sizes $exchange $(for m in $stayers; do echo m$m.err; done))" = "2 2 " ] || fail "the two members did not take the partitions over"
lost=
for m in $stayers; do
  for p in $(echo "${before[$m]}" | tr ',' ' '); do
    echo " $(assignment m$m.err $exchange | tr ',' ' ') " | grep -q " $p " || lost="$lost member $m lost partition $p;"
  done
done
[ -n "$lost" ] || fail "no member that stays lost a partition of the internal topic (nothing to test)"
echo "rebalance:$lost"

# The rest of the input, then a row in every partition far ahead, which closes every window of it.
produce_telemetry 150 300 || fail "producing the second part"
produce_end || fail "producing the last rows"

ok=
for _ in $(seq 60); do
  sleep 2
  check_windows >check.txt && { ok=1; break; }
done
cat check.txt
for m in $stayers; do eval "kill -INT \$pid$m"; done
for m in $stayers; do
  eval "wait \$pid$m"
  rc=$?
  [ $rc = 0 ] || fail "member $m exited $rc after SIGINT"
done
[ -n "$ok" ] || fail "the union of the members' output is not every window once"
# A last look after both stopped: nothing was written after the check passed.
check_windows >check.txt || { cat check.txt; fail "rows written after the windows were complete"; }
