"""Produces COUNT messages with acks=1 as one quick burst and reports what was acknowledged.

usage: crash_acks1.py BOOTSTRAP TOPIC COUNT --prefix P [--partitions N]

Message i has value "<P><i>" and goes to partition i % N. After every delivery report is in,
prints {"acked": [[value, partition, offset]...], "errors": [[value, error]...],
"unflushed": n, "burstMs": ms} where burstMs runs from the first produce() to the last report.
"""
import argparse
import time

from confluent_kafka import Producer

from common import base_config, emit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("count", type=int)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--partitions", type=int, default=1)
    a = ap.parse_args()

    producer = Producer(base_config(a.bootstrap, **{
        "acks": 1,
        "linger.ms": 2,
        "message.timeout.ms": 20000,
    }))
    # Connect and learn the partitions before the clock starts: the burst itself is short.
    producer.list_topics(a.topic, timeout=15)
    acked, errors = [], []

    def on_delivery(err, msg):
        value = msg.value().decode()
        if err is not None:
            errors.append([value, err.str()])
        else:
            acked.append([value, msg.partition(), msg.offset()])

    started = time.monotonic()
    for i in range(a.count):
        while True:
            try:
                producer.produce(a.topic, value="%s%d" % (a.prefix, i), partition=i % a.partitions, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    unflushed = producer.flush(20)
    burst_ms = (time.monotonic() - started) * 1000
    emit({"acked": acked, "errors": errors, "unflushed": unflushed, "burstMs": round(burst_ms, 1)})


if __name__ == "__main__":
    main()
