"""Committed offsets of a group next to the partitions' watermarks.

usage: committed.py BOOTSTRAP GROUP TOPIC PARTITIONS
Prints {"partitions": [{"partition": p, "committed": c, "low": l, "high": h}, ...]};
committed is -1001 (OFFSET_INVALID) when the group has no offset for the partition.
"""
import sys

from confluent_kafka import Consumer, TopicPartition

from common import base_config, emit


def main():
    bootstrap, group, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    consumer = Consumer(base_config(bootstrap, **{"group.id": group, "enable.auto.commit": False}))
    tps = [TopicPartition(topic, p) for p in range(count)]
    committed = consumer.committed(tps, timeout=15)
    out = []
    for tp in committed:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=15, cached=False)
        out.append({"partition": tp.partition, "committed": tp.offset, "error": tp.error.str() if tp.error else None, "low": low, "high": high})
    consumer.close()
    emit({"partitions": sorted(out, key=lambda x: x["partition"])})


if __name__ == "__main__":
    main()
