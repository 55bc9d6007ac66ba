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
sent = [producer.send("vpq.test", key=b"dev-%d" % (i % 7), value=b'{"n":%d}' % i) for i in range(100)]
producer.flush(30)
for future in sent:
    future.get(timeout=30)  # raises if the broker refused or lost the message
producer.close()
PY
got=$(timeout 60 kcat -b "$bootstrap" -C -t vpq.test -o beginning -e -q -f '%k %s\n' | sort -t: -k2 -n)
count=$(grep -c '"n"' <<<"$got")
if [ "$count" != 100 ]; then
  echo "kcat read $count messages, expected 100"; printf '%s\n' "$got" | head; exit 1
fi
# (here-strings, not `printf | grep -q`: with pipefail, grep leaving early fails the printf)
for i in $(seq 0 99); do
  grep -qx "dev-$((i % 7)) {\"n\":$i}" <<<"$got" || { echo "message $i missing or wrong; read:"; echo "$got"; exit 1; }
done
partitions=$(timeout 30 kcat -b "$bootstrap" -L -t vpq.test | grep -c "partition [0-9]")
[ "$partitions" = 2 ] || { echo "expected 2 partitions, metadata shows $partitions"; exit 1; }
if "$vpq" broker --topic ':x' >/dev/null 2>"$work/bad"; then echo "a bad --topic was accepted"; exit 1; fi
grep -q "bad --topic" "$work/bad" || { echo "no message for a bad --topic"; cat "$work/bad"; exit 1; }
echo "kafka-python wrote and kcat read 100 messages through vpq broker ($bootstrap)"
