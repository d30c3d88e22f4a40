"""Reads a topic's partitions from the beginning and keeps tailing them, without a group,
printing when each message arrived (milliseconds since the epoch).

usage: tail_consumer.py BOOTSTRAP TOPIC PARTITIONS [--fetch-wait-ms 3000]

stdout, one JSON document per line:
  {"ready": true}
  {"m": [partition, offset, value, t]}
  {"eof": [partition, offset, t]}         reached the end of a partition
  {"error": str, "t": t}
Runs until SIGTERM.
"""
import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition  # noqa: E402

from common import base_config, emit  # noqa: E402


def now_ms():
    return int(time.time() * 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("partitions", type=int)
    ap.add_argument("--fetch-wait-ms", type=int, default=3000)
    a = ap.parse_args()

    stop = {"now": False}

    def on_signal(_signum, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    consumer = Consumer(base_config(a.bootstrap, **{
        "group.id": "tail-consumer",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": a.fetch_wait_ms,
        "fetch.min.bytes": 1,
        "error_cb": lambda err: emit({"error": err.str(), "t": now_ms()}),
    }))
    consumer.assign([TopicPartition(a.topic, p, OFFSET_BEGINNING) for p in range(a.partitions)])
    emit({"ready": True})
    while not stop["now"]:
        msg = consumer.poll(0.1)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                emit({"eof": [msg.partition(), msg.offset(), now_ms()]})
            else:
                emit({"error": msg.error().str(), "t": now_ms()})
            continue
        emit({"m": [msg.partition(), msg.offset(), msg.value().decode(), now_ms()]})
    consumer.close()


if __name__ == "__main__":
    main()
