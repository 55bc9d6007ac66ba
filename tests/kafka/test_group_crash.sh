#!/usr/bin/env bash
# test_group_crash.sh VPQ — state that moves: two members of a consumer group run a file with
# `--partition-tasks` and one shared state folder; one member is killed with SIGKILL while its
# partitions hold open windows and unsent output; the survivor takes its partitions over
# together with their state. The output topic, read by kafka-python, must equal the output of
# one uninterrupted bounded run over the same input, row for row (no loss, no duplicate).
#
# Input: 300,000 telemetry rows keyed by device into 4 partitions, produced in two halves (the
# second after the kill, so that windows open across the kill are completed by the survivor).
# The group's session timeout is the source's `'kafka.session.timeout.ms'`, which the members'
# coordinators take from it (with the default 45 s the take-over would outlast the test).
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic vpp.telemetry:4 --topic ref.windows:4 --topic tasks.windows:4
cd "$work" || exit 1
trap 'kill $broker_pid $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "'"$work"'"' EXIT

telemetry_halves 300000 300 11
produce_halves_file first.txt
minute_windows tasks "2 SECONDS" ", 'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500'" >tasks.vpq

member() {
  "$vpq" run tasks.vpq --brokers "$bootstrap" --state-dir state --partition-tasks --checkpoint-interval 300ms 2>"$1.err" &
}
member a
a=$!
member b
b=$!
# Both members hold tasks (the group's first join takes about 3 s), and a's have checkpoints.
for _ in $(seq 300); do
  grep -q "task [0-9] started" a.err && grep -q "task [0-9] started" b.err && break
  sleep 0.1
done
a_tasks=$(grep -o "task [0-9] started" a.err | tail -2 | grep -o "[0-9]" | sort -u | tr '\n' ' ')
[ -n "$a_tasks" ] && grep -q "task [0-9] started" b.err || { echo "the members did not both get tasks:"; cat a.err b.err; exit 1; }
for p in $a_tasks; do
  for _ in $(seq 200); do ls state/task-$p/checkpoint-*.vpqc >/dev/null 2>&1 && break; sleep 0.05; done
done
sleep 0.$((RANDOM % 9 + 1))
kill -9 $a
wait $a 2>/dev/null
produce_halves_file second.txt

minute_windows ref "2 SECONDS" ", bounded = true" >ref.vpq
timeout 300 "$vpq" run ref.vpq --brokers "$bootstrap" 2>ref.err || { echo "the reference run failed:"; cat ref.err; exit 1; }
want=$(grep -o "[0-9]* rows out" ref.err | grep -o "^[0-9]*")

# The survivor takes the dead member's partitions over after the session timeout, resumes them
# from their checkpoints and closes the last windows when the input goes idle.
got=0
for _ in $(seq 90); do
  got=$(topic_size tasks.windows 4)
  [ "$got" -ge "$want" ] && break
  sleep 1
done
sleep 3
kill $b
wait $b
grep -v '^%' b.err >b.log
for p in $a_tasks; do
  grep -q "resumed from checkpoint [0-9]* in state/task-$p" b.log \
    || { echo "the survivor did not resume partition $p from its checkpoint:"; cat b.log; exit 1; }
done

same_windows ref.windows tasks.windows || { echo "--- survivor's log:"; cat b.log; exit 1; }
echo "group of two, one killed (SIGKILL): partitions $a_tasks moved with their state; output exact"
