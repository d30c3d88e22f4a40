"""Reads every partition of a topic from the beginning to the end, without a group.

usage: consume_all.py BOOTSTRAP TOPIC
Prints {"messages": [{"value", "key", "partition", "offset", "timestamp"}...]} once every
partition reported end of partition.
"""
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from common import base_config, emit


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    consumer = Consumer(base_config(bootstrap, **{
        "group.id": "consume-all",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    }))
    md = consumer.list_topics(topic, timeout=15)
    partitions = sorted(md.topics[topic].partitions.keys())
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    pending = set(partitions)
    messages, errors = [], []
    deadline = time.time() + 30
    while pending and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                pending.discard(msg.partition())
            else:
                errors.append(msg.error().str())
            continue
        messages.append({
            "value": msg.value().decode(),
            "key": msg.key().decode() if msg.key() is not None else None,
            "partition": msg.partition(),
            "offset": msg.offset(),
            "timestamp": msg.timestamp()[1],
        })
    consumer.close()
    emit({"messages": messages, "errors": errors, "unfinished": sorted(pending)})


if __name__ == "__main__":
    main()
