#!/usr/bin/env bash
# test_state_dir.sh VPQ — `vpq run --state-dir` as a user meets it, on files:
#   1. killed (SIGKILL) after a few checkpoints, then its newest checkpoint damaged: the next run
#      says so, resumes from the one before, and its output files equal an uninterrupted run's;
#   2. the same with the newest checkpoint cut short (2c: the dead-letter file deleted: the run
#      resumes and says what the file lacks);
#   3. a second process on the same state folder is refused (the lock);
#   4. a changed query is refused, and runs from scratch with --reset-state;
#   5. a full disk (a file-size limit) while checkpointing: the checkpoint fails with a clear
#      line and a count, the run goes on, and the previous checkpoint stays usable;
#   6. every checkpoint damaged: the run stops with a clear line instead of starting over (which
#      would write the output again);
#   7. a dead-letter file that refuses its lines, with and without a state folder: the run stops
#      at once; with one, it resumes once the file is back, and writes them;
#   8. a sink file cut short outside vpq: the resume is refused.
# Every resumed run's outputs, its dead letters (malformed records and late rows) included, must
# equal the uninterrupted run's byte for byte. A second source is merged with the first, so that
# a checkpoint can fall between the rows of a batch read (whose malformed records are
# dead-lettered when read) and the ones processed.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
cd "$work" || exit 1

/usr/bin/python3 - <<'PY'
import random
random.seed(3)
ts = 1700000000000
with open("telemetry.jsonl", "w") as f, open("other.jsonl", "w") as g:
    for i in range(1500000):
        ts += random.randrange(0, 30)
        d = random.randrange(20000)
        if i % 500 == 7:  # malformed: dead-lettered when read
            f.write('{"device_id":"d%d","ts":%d,"kw":"bad"}\n' % (d, ts))
        else:
            f.write('{"device_id":"d%d","ts":%d,"kw":%.3f}\n' % (d, ts - random.randrange(0, 2000), random.uniform(-5, 5)))
        if i % 8 == 0:
            g.write('{"device_id":"d%d","ts":%d,"kw":%.3f}\n' % (d, ts, random.uniform(-5, 5)))
PY
# query MINUTES MIN_ROWS [DEAD_LETTERS]: the query, its dead letters in out/dead.jsonl unless
# DEAD_LETTERS is `none`.
query() {
  local dead=", dead_letter = 'out/dead.jsonl'"
  [ "${3:-}" = none ] && dead=
  cat <<VPQ
CREATE STREAM telemetry (device_id STRING KEY, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'file', path = 'telemetry.jsonl', timestamp = 'ts', watermark_delay = 1 SECOND$dead);
CREATE STREAM busy WITH (connector = 'file', path = 'out/busy.jsonl') AS
  SELECT device_id, WINDOW_START AS start, count(*) AS n, sum(kw) AS kw
  FROM telemetry WINDOW TUMBLING (SIZE $1 MINUTES) GROUP BY device_id HAVING count(*) >= $2 EMIT FINAL;
CREATE STREAM spikes WITH (connector = 'file', path = 'out/spikes.jsonl') AS
  SELECT device_id, ts, kw FROM telemetry WHERE kw > 4.999;
CREATE STREAM other (device_id STRING KEY, ts TIMESTAMP, kw DOUBLE)
  WITH (connector = 'file', path = 'other.jsonl', timestamp = 'ts');
CREATE STREAM other_spikes WITH (connector = 'file', path = 'out/other_spikes.jsonl') AS
  SELECT device_id, ts, kw FROM other WHERE kw > 4.99;
VPQ
}
query 30 9 >q.vpq
"$vpq" run q.vpq 2>ref.err || { echo "the reference run failed"; cat ref.err; exit 1; }
mv out ref
[ -s ref/busy.jsonl ] && [ -s ref/spikes.jsonl ] && [ -s ref/dead.jsonl ] || { echo "the reference output is empty"; exit 1; }

newest() { ls state/checkpoint-*.vpqc 2>/dev/null | tail -1; }
count() { ls state/checkpoint-*.vpqc 2>/dev/null | wc -l; }

# Runs q.vpq with a state folder until it has taken `$1` checkpoints of its own, then kills it.
kill_after_checkpoints() {
  "$vpq" run q.vpq --state-dir state --checkpoint-interval 20ms 2>>run.err &
  local pid=$! seen=0 last
  last=$(newest)
  for _ in $(seq 600); do
    if [ "$(newest)" != "$last" ]; then last=$(newest); seen=$((seen + 1)); fi
    [ $seen -ge "$1" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
  done
  kill -9 $pid 2>/dev/null || { echo "the run ended before $1 checkpoints"; exit 1; }
  wait $pid 2>/dev/null
}

same_output() {
  for f in busy spikes other_spikes dead; do
    [ -f "ref/$f.jsonl" ] || [ $f != dead ] || continue
    cmp -s "out/$f.jsonl" "ref/$f.jsonl" || { echo "$1: out/$f.jsonl differs from the uninterrupted run"; exit 1; }
  done
}

# same_counts MESSAGE FILE — the summary line in FILE (rows in and out, late, malformed and
# dead-lettered: counted once, across the restore) equals the uninterrupted run's. A malformed
# record decoded in a batch whose rows a checkpoint fell between was counted twice, once more
# by the run that read it again (audits 20, 22).
same_counts() {
  local want got
  want=$(grep "rows in" ref.err) got=$(grep "rows in" "$2")
  [ "$got" = "$want" ] || { echo "$1: '$got', the uninterrupted run: '$want'"; exit 1; }
}

# 1. A damaged newest checkpoint: the run falls back to the previous one.
kill_after_checkpoints 3
# Two are kept; a kill between a new checkpoint's rename and the removal of the oldest leaves three.
case "$(count)" in 2 | 3) ;; *) echo "expected the newest two checkpoints kept, found $(count)"; ls state; exit 1 ;; esac
damaged=$(newest)
printf '\x55' | dd of="$damaged" bs=1 seek=200 conv=notrunc 2>/dev/null
"$vpq" run q.vpq --state-dir state 2>resume.err || { echo "resuming failed"; cat resume.err; exit 1; }
grep -q "checkpoint $damaged is invalid (checksum mismatch); trying the previous one" resume.err \
  || { echo "no clear line about the damaged checkpoint:"; cat resume.err; exit 1; }
grep -q "resumed from checkpoint" resume.err || { echo "did not resume:"; cat resume.err; exit 1; }
same_output "after a damaged checkpoint"
same_counts "the counts after a damaged checkpoint" resume.err
[ "$(count)" = 2 ] || { echo "expected the newest two checkpoints kept after a whole run, found $(count)"; ls state; exit 1; }

# 2. A checkpoint cut short (a crash while a copy was written).
rm -rf state out
kill_after_checkpoints 3
truncated=$(newest)
truncate -s 100 "$truncated"
"$vpq" run q.vpq --state-dir state 2>resume.err || { echo "resuming failed"; cat resume.err; exit 1; }
grep -q "checkpoint $truncated is invalid (truncated" resume.err || { echo "no line about the cut checkpoint:"; cat resume.err; exit 1; }
same_output "after a truncated checkpoint"
same_counts "the counts after a truncated checkpoint" resume.err

# 2b. A damaged version field is a damaged file (the checksum covers it): the run falls back to
#     the previous checkpoint. (Another vpq's version, checksum intact, stops the run:
#     tests/unit/test_ckpt.c.)
rm -rf state out
kill_after_checkpoints 3
other=$(newest)
printf '\x01\x00\x00\x00' | dd of="$other" bs=1 seek=8 conv=notrunc 2>/dev/null
"$vpq" run q.vpq --state-dir state 2>version.err || { echo "resuming failed"; cat version.err; exit 1; }
grep -q "checkpoint $other is invalid (checksum mismatch); trying the previous one" version.err \
  || { echo "no line about the damaged version field:"; cat version.err; exit 1; }
same_output "after a damaged version field"

# 2c. The dead-letter file deleted while the run is down: the run resumes and says that the file
#     lacks dead letters from before the checkpoint (it said nothing: audit 42).
rm -rf state out
kill_after_checkpoints 3
rm out/dead.jsonl
"$vpq" run q.vpq --state-dir state 2>deleted.err || { echo "resuming without the dead letters failed"; cat deleted.err; exit 1; }
grep -q "dead-letter output: the file holds 0 bytes, fewer than the [1-9][0-9]* the checkpoint wrote" deleted.err \
  || { echo "no line about the deleted dead-letter file:"; cat deleted.err; exit 1; }

# 3. One process per state folder.
"$vpq" run q.vpq --state-dir state --reset-state 2>first.err &
first=$!
for _ in $(seq 500); do [ "$(cat state/LOCK 2>/dev/null)" = "$first" ] && break; sleep 0.01; done
"$vpq" run q.vpq --state-dir state 2>second.err
code=$?
wait $first
[ $code != 0 ] && grep -q "state folder state is in use by another vpq process (pid $first)" second.err \
  || { echo "a second process on the state folder was not refused (exit $code):"; cat second.err; exit 1; }

# 4. A changed query is refused; --reset-state starts over.
query 20 7 >q.vpq
"$vpq" run q.vpq --state-dir state 2>changed.err
code=$?
[ $code != 0 ] && grep -q "state holds the state of a different query" changed.err && grep -q -- "--reset-state" changed.err \
  || { echo "a changed query was not refused (exit $code):"; cat changed.err; exit 1; }
"$vpq" run q.vpq --state-dir state --reset-state 2>reset.err || { echo "--reset-state failed"; cat reset.err; exit 1; }
mv out reset_out
"$vpq" run q.vpq 2>/dev/null
cmp -s out/busy.jsonl reset_out/busy.jsonl || { echo "the run after --reset-state differs from a fresh run"; exit 1; }

# 5. The disk fills up while checkpointing (every file of vpq limited to 32 KiB: the state of
#    20,000 open windows is larger; this query's output is not, and it has no dead letters, which
#    would not fit: 7. is a dead-letter file that refuses its lines).
query 30 40 none >q.vpq
rm -rf out
"$vpq" run q.vpq 2>/dev/null
rm -rf ref state && mv out ref
kill_after_checkpoints 1
valid=$(newest)
(ulimit -f 32; "$vpq" run q.vpq --state-dir state --checkpoint-interval 100ms 2>full.err)
code=$?
[ $code = 0 ] || { echo "the run with a full disk failed (exit $code):"; grep -v '^%' full.err | tail; exit 1; }
grep -q "(the previous checkpoint stays valid)" full.err && grep -Eq "checkpoint\(s\) in state \([1-9][0-9]* failed\)" full.err \
  || { echo "no clear line or count for the failed checkpoints:"; cat full.err; exit 1; }
[ "$(newest)" = "$valid" ] || { echo "the checkpoint before the full disk is gone"; ls -l state; exit 1; }
"$vpq" run q.vpq --state-dir state 2>after.err || { echo "resuming after the full disk failed"; cat after.err; exit 1; }
grep -q "resumed from checkpoint" after.err || { echo "did not resume after the full disk:"; cat after.err; exit 1; }
same_output "after a full disk"

# 6. Every checkpoint damaged: the state of a run is there but unreadable; starting over would
#    write its output again, so the run stops and names --reset-state.
rm -rf state out
kill_after_checkpoints 3
for f in state/checkpoint-*.vpqc; do truncate -s 50 "$f"; done
"$vpq" run q.vpq --state-dir state 2>unreadable.err
code=$?
[ $code != 0 ] && grep -q "no checkpoint in state can be read: run with --reset-state to start over" unreadable.err \
  || { echo "a state folder of damaged checkpoints was not refused (exit $code):"; cat unreadable.err; exit 1; }
# 7. The dead-letter file refuses its lines (a link to /dev/full, as a full disk does): no
#    checkpoint may count them written, and the run exits 1. Once the file is back, the run
#    resumes from the checkpoint before and writes them (a dead-letter file that lost rows
#    silently took checkpoints over them: audit 35). The refused run checkpoints only at its
#    end: /dev/full holds 0 bytes, so a checkpoint taken before its first refused line (the
#    first batch after the resume, at 100 ms) would see a rotated dead-letter file of 0 bytes,
#    and the resume after it would cut the file put back to that.
query 30 9 >q.vpq
rm -rf out
"$vpq" run q.vpq 2>/dev/null
rm -rf ref state && mv out ref
kill_after_checkpoints 2
mv out/dead.jsonl dead.kept
ln -s /dev/full out/dead.jsonl
"$vpq" run q.vpq --state-dir state --checkpoint-interval 1h 2>refused.err
code=$?
[ $code = 1 ] && grep -q "dead-letter output: No space left on device" refused.err &&
  grep -Eq "[1-9][0-9]* dead letter\(s\) were not written: the run stops without a checkpoint over them" refused.err ||
  { echo "a dead-letter file that refused its lines did not fail the run (exit $code):"; cat refused.err; exit 1; }
rm out/dead.jsonl && mv dead.kept out/dead.jsonl
"$vpq" run q.vpq --state-dir state 2>back.err || { echo "resuming with the dead-letter file back failed"; cat back.err; exit 1; }
same_output "after the dead-letter file refused its lines"
# 7b. The same without --state-dir: the run stops at its first refused line, not at the end of
#     its input, and the summary counts no refused line dead-lettered (audit 43: it read all
#     1.5 million records and counted 3,123 dead letters, none written).
mkdir nostate && ln -s ../telemetry.jsonl ../other.jsonl ../q.vpq nostate/ && mkdir nostate/out &&
  ln -s /dev/full nostate/out/dead.jsonl
(cd nostate && "$vpq" run q.vpq 2>../nostate.err)
code=$?
rows_in() { sed -n 's/^vpq: \([0-9]*\) rows in,.*/\1/p' "$1"; }
[ $code = 1 ] && grep -Eq "[1-9][0-9]* dead letter\(s\) were not written: the run stops$" nostate.err &&
  grep -q " 0 dead-lettered$" nostate.err && [ "$(rows_in nostate.err)" -lt $(($(rows_in ref.err) / 10)) ] ||
  { echo "without --state-dir, a dead-letter file that refused its lines did not stop the run at once (exit $code):"
    cat nostate.err; exit 1; }
# 8. A sink file cut short outside vpq (rows the checkpoint counts as written are gone): the
#    resume is refused, naming the file and --reset-state, and the summary counts nothing (it
#    showed the restored run's counts: audit 35).
rm -rf state out
"$vpq" run q.vpq --state-dir state --checkpoint-interval 20ms 2>>run.err &
pid=$!
for _ in $(seq 500); do [ -s out/spikes.jsonl ] && break; sleep 0.02; done
last=$(newest) taken=0
for _ in $(seq 500); do # two checkpoints after the file has rows: the second counts them
  [ "$(newest)" != "$last" ] && last=$(newest) taken=$((taken + 1))
  [ $taken -ge 2 ] && break
  sleep 0.02
done
kill -9 $pid 2>/dev/null || { echo "the run ended before its sink was cut"; exit 1; }
wait $pid 2>/dev/null
: >out/spikes.jsonl
"$vpq" run q.vpq --state-dir state 2>cut.err
code=$?
[ $code = 1 ] && grep -q "out/spikes.jsonl\` has 0 bytes, fewer than the" cut.err && grep -q -- "--reset-state" cut.err &&
  grep -q "vpq: 0 rows in, 0 rows out" cut.err ||
  { echo "a sink cut short outside vpq was not refused clearly (exit $code):"; cat cut.err; exit 1; }
echo "state folder: damaged and cut checkpoints fall back, the lock holds, a changed query is refused, a full disk is survived, unreadable state is refused, lost dead letters fail the run, a sink cut short is refused"
