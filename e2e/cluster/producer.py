"""A producer that runs until SIGTERM and reports every delivery with a wall-clock time.

usage: producer.py BOOTSTRAP TOPIC --partitions N [--rate 400] [--no-idempotent] [--acks all]
                   [--message-timeout-ms 120000] [--flush-timeout 60] [--debug eos]

Message n goes to partition n % N with value "<partition>:<seq>:<pad>", seq counting that
partition's messages from 0. Times are milliseconds since the epoch (time.time()), so the
test can set them against its own Date.now().

stdout, one JSON document per line:
  {"ready": true}
  {"ack": [partition, seq, offset, t]}                 successful delivery report
  {"err": [partition, seq, error, fatal, retriable, t]} failed delivery report
  {"clientError": str, "code": str, "fatal": bool, "t": t}   error_cb (transport, all brokers down, ...)
  {"done": true, "produced": n, "unflushed": n, "lastSeq": [seq per partition]}
"""
import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from confluent_kafka import Producer  # noqa: E402

from common import base_config, emit  # noqa: E402


def now_ms():
    return int(time.time() * 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--rate", type=float, default=400.0, help="messages per second")
    ap.add_argument("--pad", type=int, default=16)
    ap.add_argument("--acks", default="all")
    ap.add_argument("--no-idempotent", action="store_true")
    ap.add_argument("--message-timeout-ms", type=int, default=120000)
    ap.add_argument("--flush-timeout", type=float, default=60.0)
    ap.add_argument("--debug", help="librdkafka debug contexts, logged on stderr (e.g. eos)")
    a = ap.parse_args()

    stop = {"now": False}

    def on_signal(_signum, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def on_error(err):
        emit({"clientError": err.str(), "code": err.name(), "fatal": err.fatal(), "t": now_ms()})

    conf = base_config(a.bootstrap, **{
        "acks": a.acks,
        "enable.idempotence": not a.no_idempotent,
        "linger.ms": 5,
        "message.timeout.ms": a.message_timeout_ms,
        "request.timeout.ms": 10000,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 250,
        "retry.backoff.ms": 50,
        # Leadership moves are seen through Metadata; refresh it promptly after an error.
        "topic.metadata.refresh.fast.interval.ms": 100,
        "error_cb": on_error,
    })
    if a.debug:
        conf.update({"debug": a.debug, "log_level": 7})
    producer = Producer(conf)
    emit({"ready": True})

    seqs = [0] * a.partitions
    pad = "." * a.pad

    def report(partition, seq):
        def on_delivery(err, msg):
            if err is not None:
                emit({"err": [partition, seq, err.str(), err.fatal(), err.retriable(), now_ms()]})
            else:
                emit({"ack": [msg.partition(), seq, msg.offset(), now_ms()]})
        return on_delivery

    produced = 0
    started = time.monotonic()
    while not stop["now"]:
        target = int(a.rate * (time.monotonic() - started))
        while produced < target and not stop["now"]:
            p = produced % a.partitions
            seq = seqs[p]
            try:
                producer.produce(a.topic, value="%d:%d:%s" % (p, seq, pad), partition=p, on_delivery=report(p, seq))
            except BufferError:
                producer.poll(0.05)
                continue
            seqs[p] += 1
            produced += 1
        producer.poll(0.005)

    unflushed = producer.flush(a.flush_timeout)
    emit({"done": True, "produced": produced, "unflushed": unflushed, "lastSeq": [s - 1 for s in seqs]})


if __name__ == "__main__":
    main()
