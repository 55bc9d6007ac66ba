# lib.sh — shared by the Kafka tests (sourced): start `vpq broker` and read a topic back with
# kafka-python, a client we did not write.

# start_broker VPQ WORKDIR --topic NAME:PARTITIONS... — starts the embedded cluster in the
# background, sets $bootstrap and $broker_pid, and arranges for both to go on exit.
start_broker() {
  local vpq=$1 dir=$2
  shift 2
  "$vpq" broker "$@" >"$dir/broker.out" 2>"$dir/broker.err" &
  broker_pid=$!
  trap 'kill $broker_pid 2>/dev/null; wait $broker_pid 2>/dev/null; rm -rf "'"$dir"'"' EXIT
  for _ in $(seq 100); do [ -s "$dir/broker.out" ] && break; sleep 0.1; done
  bootstrap=$(head -1 "$dir/broker.out")
  case "$bootstrap" in
    *:[0-9]*) ;;
    *) echo "no bootstrap address on the broker's first line: '$bootstrap'"; cat "$dir/broker.err"; exit 1 ;;
  esac
}

# read_topic TOPIC PARTITIONS — prints every message of the topic as a Python tuple
# (key, value, timestamp), sorted, one per line.
read_topic() {
  /usr/bin/python3 - "$bootstrap" "$1" "$2" <<'PY'
import sys
from kafka import KafkaConsumer, TopicPartition
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], api_version=(2, 5), consumer_timeout_ms=5000,
                         auto_offset_reset="earliest", enable_auto_commit=False)
parts = [TopicPartition(sys.argv[2], p) for p in range(int(sys.argv[3]))]
consumer.assign(parts)
consumer.seek_to_beginning(*parts)
for message in sorted((m.key.decode() if m.key else None, m.value.decode(), m.timestamp) for m in consumer):
    print(repr(message))
PY
}
