"""A consumer group member whose committed offset lies below the log start: with
auto.offset.reset it must recover and resume at the log start.

usage: reset_consumer.py BOOTSTRAP GROUP TOPIC RESET(earliest|latest) EXPECTED_COUNT
Prints {"offsets": [...], "values": [...]} with the messages it received.
"""
import sys
import time

from confluent_kafka import Consumer

from common import base_config, emit


def main():
    bootstrap, group, topic, reset, expected = sys.argv[1:6]
    consumer = Consumer(base_config(bootstrap, **{
        "group.id": group,
        "auto.offset.reset": reset,
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
    }))
    consumer.subscribe([topic])
    got = []
    deadline = time.time() + 30
    while len(got) < int(expected) and time.time() < deadline:
        msg = consumer.poll(0.2)
        if msg is None or msg.error() is not None:
            continue
        got.append((msg.offset(), msg.value().decode()))
    consumer.close()
    emit({"offsets": [o for o, _ in got], "values": [v for _, v in got]})


main()
