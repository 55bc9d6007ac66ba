# lib.sh — sourced by the HTTP tests after tests/kafka/lib.sh's start_broker.
#
# start_http_test TOPIC:PARTITIONS: the set-up of a test over `vpq broker` ($vpq set by the
# test): a scratch folder $work, made the current one, the broker with that topic, and a trap
# that stops the run (vpq_pid) and the broker and removes the folder when the test ends.
start_http_test() {
  work=$(mktemp -d)
  start_broker "$vpq" "$work" --topic "$1"
  vpq_pid=
  trap 'kill $vpq_pid $broker_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
  cd "$work" || exit 1
}

# fail MESSAGE: ends the test, with the run's standard error.
fail() { echo "FAIL: $*"; [ -f err.txt ] && cat err.txt; exit 1; }

# stop_run [WHAT]: SIGINT to the run (vpq_pid), which must end with exit 0 (else fail() names
# WHAT, by default `vpq run`).
stop_run() {
  kill -INT $vpq_pid
  wait $vpq_pid
  local code=$?
  vpq_pid=
  [ "$code" = 0 ] || fail "${1:-vpq run} exited $code after SIGINT"
}

# wait_resumed: waits up to 10 s for the run to say that it resumed from its checkpoint.
wait_resumed() {
  for _ in $(seq 100); do
    grep -q "resumed from checkpoint" err.txt && return
    sleep 0.1
  done
  fail "the run did not resume from its state"
}
#
# start_http_run FILE HOST [ARG...]: runs `$vpq run FILE --brokers $bootstrap --http HOST:PORT
# ARG...` (stdout to out.txt, stderr to err.txt) on a free port, a random one in 20000-60000 or
# another if it is taken, and sets vpq_pid, port and url once the run says it serves; calls
# fail() when it cannot start.
start_http_run() {
  local file=$1 host=$2
  shift 2
  for _ in 1 2 3 4 5; do
    port=$(shuf -i 20000-60000 -n 1)
    "$vpq" run "$file" --brokers "$bootstrap" --http "$host:$port" "$@" >out.txt 2>err.txt &
    vpq_pid=$!
    for _ in $(seq 200); do
      grep -q "serving HTTP on port $port" err.txt && break
      kill -0 $vpq_pid 2>/dev/null || break
      sleep 0.05
    done
    grep -q "serving HTTP on port $port" err.txt && break
    wait $vpq_pid
    vpq_pid=
    grep -q "cannot listen" err.txt || fail "vpq run --http did not start"
  done
  [ -n "$vpq_pid" ] || fail "no free port found"
  url="http://127.0.0.1:$port"
}
