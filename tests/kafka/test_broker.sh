#!/usr/bin/env bash
# test_broker.sh VPQ — `vpq broker` speaks the real Kafka protocol to clients we did not write:
# kafka-python (Debian python3-kafka) produces 100 keyed messages into a 2-partition topic and
# kcat reads them all back; the bootstrap list is the first line of standard output.
set -uo pipefail
vpq=$1
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"
start_broker "$vpq" "$work" --topic vpq.test:2
/usr/bin/python3 - "$bootstrap" <<'PY' || exit 1
import sys
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
for i in range(100):
    producer.send("vpq.test", key=b"dev-%d" % (i % 7), value=b'{"n":%d}' % i)
producer.flush(30)
producer.close()
PY
got=$(timeout 60 kcat -b "$bootstrap" -C -t vpq.test -o beginning -e -q -f '%k %s\n' | sort -t: -k2 -n)
count=$(printf '%s\n' "$got" | grep -c '"n"')
if [ "$count" != 100 ]; then
  echo "kcat read $count messages, expected 100"; printf '%s\n' "$got" | head; exit 1
fi
for i in 0 42 99; do
  printf '%s\n' "$got" | grep -qx "dev-$((i % 7)) {\"n\":$i}" || { echo "message $i missing or wrong"; exit 1; }
done
partitions=$(timeout 30 kcat -b "$bootstrap" -L -t vpq.test | grep -c "partition [0-9]")
[ "$partitions" = 2 ] || { echo "expected 2 partitions, metadata shows $partitions"; exit 1; }
if "$vpq" broker --topic ':x' >/dev/null 2>"$work/bad"; then echo "a bad --topic was accepted"; exit 1; fi
grep -q "bad --topic" "$work/bad" || { echo "no message for a bad --topic"; cat "$work/bad"; exit 1; }
echo "kafka-python wrote and kcat read 100 messages through vpq broker ($bootstrap)"
