# lib.sh — sourced by the HTTP tests after tests/kafka/lib.sh's start_broker.
#
# start_http_run FILE HOST [ARG...]: runs `$vpq run FILE --brokers $bootstrap --http HOST:PORT
# ARG...` (stdout to out.txt, stderr to err.txt) on a free port, a random one in 20000-60000 or
# another if it is taken, and sets vpq_pid, port and url once the run says it serves; calls
# the test's fail() when it cannot start.
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
