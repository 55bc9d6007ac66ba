"""read_topic.py — reads a whole topic with kafka-python (a client we did not write), for the
Kafka tests that compare outputs: every message up to the end offsets seen at the start.

    read_topic.py BOOTSTRAP TOPIC PARTITIONS [OUT]

Writes one JSON line per message to OUT (standard output by default):
[partition, key, value, vpq.id header or null], keys and values as text. Reads until every
partition reaches its end offset, polling for at most two minutes (a loaded machine can stall
a fetch for seconds); exits 1 naming the partitions it could not finish.
"""
import json
import sys
import time

from kafka import KafkaConsumer, TopicPartition


def read(bootstrap, topic, partitions):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, api_version=(2, 5), auto_offset_reset="earliest",
                             enable_auto_commit=False, max_partition_fetch_bytes=8 << 20)
    parts = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    ends = consumer.end_offsets(parts)
    rows = []
    deadline = time.time() + 120
    while any(consumer.position(p) < ends[p] for p in parts) and time.time() < deadline:
        for tp, messages in consumer.poll(timeout_ms=1000).items():
            for m in messages:
                if m.offset < ends[tp]:
                    header = dict(m.headers).get("vpq.id")
                    rows.append([m.partition, m.key.decode() if m.key is not None else None,
                                 m.value.decode() if m.value is not None else None,
                                 header.decode() if header is not None else None])
    behind = ["%d at %d of %d" % (p.partition, consumer.position(p), ends[p]) for p in parts
              if consumer.position(p) < ends[p]]
    consumer.close()
    if behind:
        sys.exit("%s: could not read to the end of partition(s) %s" % (topic, ", ".join(behind)))
    return rows


def main():
    rows = read(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    out = open(sys.argv[4], "w") if len(sys.argv) > 4 else sys.stdout
    for row in rows:
        out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
