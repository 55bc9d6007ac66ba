#!/usr/bin/env bash
# test_crash_before_assignment.sh VPQ — a crash loop during the group's rebalance wait: a run of
# a consumer-group query (unbounded Kafka source, --state-dir) is killed with SIGKILL after its
# checkpoints; the restarted run restores that state and keeps taking checkpoints while it waits
# for the group to give it partitions (the dead member's session has to time out first), and is
# killed too before it gets them; a third run then finishes the input. Its output, read by
# kafka-python, must equal one uninterrupted bounded run's, row for row: the checkpoints of the
# run that never had partitions must carry the restored offsets, or the third run reads again
# rows whose counts are already in the restored windows. And the third run's wait for its
# partitions (the group's rebalance, 6-15 s) is no idleness of those partitions: with
# idle_timeout 5 s, counting it would move the watermark on and close the window open at the
# crash before the rows of the second half that belong to it are read.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic vpp.telemetry:4 --topic ref.windows:4 --topic crash.windows:4
cd "$work" || exit 1
trap 'kill $broker_pid $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT

telemetry_halves 120000 100 5
produce_halves_file first.txt
minute_windows crash "5 SECONDS" >crash.vpq
run() {
  "$vpq" run crash.vpq --brokers "$bootstrap" --state-dir state --checkpoint-interval 200ms \
    --set kafka.session.timeout.ms=6000 --set kafka.heartbeat.interval.ms=500 2>"$1.err" &
}
newest() { ls state/checkpoint-*.vpqc 2>/dev/null | sort -V | tail -1; }

# A: reads the first half with partitions, checkpoints, is killed.
run a
a=$!
for _ in $(seq 300); do grep -q "rows in" a.err 2>/dev/null || [ -n "$(newest)" ] && break; sleep 0.1; done
sleep 4
last_a=$(newest)
[ -n "$last_a" ] || { echo "run a took no checkpoint:"; cat a.err; exit 1; }
kill -9 $a
wait $a 2>/dev/null

# B: restores a's checkpoint and waits for the group (a's session lasts 6 s more); killed once
# it has checkpointed, before it is given partitions.
run b
b=$!
for _ in $(seq 40); do [ "$(newest)" != "$last_a" ] && break; sleep 0.1; done
sleep 0.5
last_b=$(newest)
kill -9 $b
wait $b 2>/dev/null
grep -q "resumed from checkpoint" b.err || { echo "run b did not resume from a's checkpoint:"; cat b.err; exit 1; }
[ "$last_b" != "$last_a" ] || { echo "run b took no checkpoint of its own:"; cat b.err; exit 1; }
grep -q "gave this member partitions" b.err && echo "note: run b was given partitions before it was killed"

produce_halves_file second.txt
minute_windows ref "5 SECONDS" ", bounded = true" >ref.vpq
timeout 300 "$vpq" run ref.vpq --brokers "$bootstrap" 2>ref.err || { echo "the reference run failed:"; cat ref.err; exit 1; }
want=$(grep -o "[0-9]* rows out" ref.err | grep -o "^[0-9]*")

# C: finishes the input and closes the last windows when it goes idle.
run c
c=$!
got=0
for _ in $(seq 90); do
  got=$(topic_size crash.windows 4)
  [ "$got" -ge "$want" ] && break
  sleep 1
done
sleep 3
kill $c
wait $c

same_windows ref.windows crash.windows ||
  { for r in a b c; do echo "--- run $r's log:"; grep -v "^%" $r.err; done; exit 1; }
echo "killed with partitions, then killed again while waiting for them: output exact"
