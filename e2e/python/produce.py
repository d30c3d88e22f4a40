"""Produces COUNT messages with a delivery callback for each and prints what was acknowledged.

usage: produce.py BOOTSTRAP TOPIC COUNT [--idempotent] [--compression CODEC]
                  [--partition N | --round-robin N] [--timestamp-base MS --timestamp-step MS] [--id-prefix P]
                  [--linger-ms MS] [--value-pad N] [--metadata-first]
Message i has key "k<i % 10>" and value "<prefix><i>" (plus --value-pad dots); with --timestamp-base its
CreateTime is base + i * step. Prints {"acked": [[value, partition, offset, timestamp]...],
"errors": [[value, error]...], "unflushed": n}.
"""
import argparse

from confluent_kafka import Producer

from common import base_config, emit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("count", type=int)
    ap.add_argument("--idempotent", action="store_true")
    ap.add_argument("--compression", default="none")
    ap.add_argument("--partition", type=int, default=None)
    ap.add_argument("--round-robin", type=int, default=None, help="message i goes to partition i %% N")
    ap.add_argument("--timestamp-base", type=int, default=None)
    ap.add_argument("--timestamp-step", type=int, default=1000)
    ap.add_argument("--id-prefix", default="m-")
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--value-pad", type=int, default=0, help="append this many '.' so compression pays off")
    ap.add_argument("--metadata-first", action="store_true",
                    help="learn the topic's leaders before producing, so the messages wait out linger.ms in their "
                         "partition's queue (otherwise, on a topic it has not seen, librdkafka holds them until the "
                         "metadata arrives and may then send each as its own batch)")
    a = ap.parse_args()

    conf = base_config(a.bootstrap, **{
        "acks": "all",
        "compression.type": a.compression,
        "linger.ms": a.linger_ms,
        "message.timeout.ms": 30000,
    })
    if a.idempotent:
        conf["enable.idempotence"] = True
    producer = Producer(conf)
    if a.metadata_first:
        producer.list_topics(a.topic, timeout=10)
    acked, errors = [], []

    def on_delivery(err, msg):
        value = msg.value().decode()
        if err is not None:
            errors.append([value, err.str()])
        else:
            acked.append([value, msg.partition(), msg.offset(), msg.timestamp()[1]])

    for i in range(a.count):
        kwargs = {"key": "k%d" % (i % 10), "value": "%s%d%s" % (a.id_prefix, i, "." * a.value_pad), "on_delivery": on_delivery}
        if a.partition is not None:
            kwargs["partition"] = a.partition
        elif a.round_robin is not None:
            kwargs["partition"] = i % a.round_robin
        if a.timestamp_base is not None:
            kwargs["timestamp"] = a.timestamp_base + i * a.timestamp_step
        while True:
            try:
                producer.produce(a.topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    unflushed = producer.flush(30)
    emit({"acked": acked, "errors": errors, "unflushed": unflushed})


if __name__ == "__main__":
    main()
