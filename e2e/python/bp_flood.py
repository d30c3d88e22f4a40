"""Floods a topic with acks=1 as fast as librdkafka can send, for the backpressure test.

usage: bp_flood.py BOOTSTRAP TOPIC --bytes N [--size 65536] [--id NAME] [--partitions 4]

Sends ceil(N / size) messages of `size` bytes each: value "<id>-<i>|" padded with '.' to
`size` bytes, message i on partition i % partitions. Values are built from one shared
padding, so memory stays small whatever N is. retries=0: a timeout or a disconnect shows up
as an error instead of a silent resend (acks=1 without idempotence could store a resend twice).

stdout: {"progress": ackedBytes} about every 64 MiB acknowledged, then
{"acked": n, "ackedBytes": b, "errors": n, "firstError": str|null, "unflushed": n,
 "seconds": s, "last": {partition: [value prefix, offset]}}
"""
import argparse
import time

from confluent_kafka import Producer

from common import base_config, emit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("--size", type=int, default=65536)
    ap.add_argument("--id", default="f")
    ap.add_argument("--partitions", type=int, default=4)
    a = ap.parse_args()

    producer = Producer(base_config(a.bootstrap, **{
        "acks": 1,
        "retries": 0,
        "linger.ms": 20,
        "batch.size": 1000000,
        "compression.type": "none",
        "message.timeout.ms": 120000,
        "request.timeout.ms": 60000,
        # Bound the client side too: at most 64 MiB waiting in librdkafka.
        "queue.buffering.max.kbytes": 65536,
    }))
    producer.list_topics(a.topic, timeout=15)

    state = {"acked": 0, "bytes": 0, "errors": 0, "firstError": None, "nextProgress": 64 << 20}
    last = {}

    def on_delivery(err, msg):
        if err is not None:
            state["errors"] += 1
            if state["firstError"] is None:
                state["firstError"] = err.str()
            return
        state["acked"] += 1
        state["bytes"] += len(msg.value())
        p = msg.partition()
        if p not in last or msg.offset() > last[p][1]:
            last[p] = [msg.value()[:32].decode().split("|")[0], msg.offset()]
        if state["bytes"] >= state["nextProgress"]:
            state["nextProgress"] += 64 << 20
            emit({"progress": state["bytes"]})

    pad = b"." * a.size
    count = (a.bytes + a.size - 1) // a.size
    started = time.monotonic()
    for i in range(count):
        head = ("%s-%d|" % (a.id, i)).encode()
        value = head + pad[len(head):]
        while True:
            try:
                producer.produce(a.topic, value=value, partition=i % a.partitions, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    unflushed = producer.flush(120)
    emit({
        "acked": state["acked"],
        "ackedBytes": state["bytes"],
        "errors": state["errors"],
        "firstError": state["firstError"],
        "unflushed": unflushed,
        "seconds": round(time.monotonic() - started, 2),
        "last": {str(p): v for p, v in last.items()},
    })


if __name__ == "__main__":
    main()
