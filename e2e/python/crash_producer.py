"""Idempotent acks=all producer that runs until SIGTERM, for the crash (SIGKILL) test.

usage: crash_producer.py BOOTSTRAP TOPIC [--keys 16] [--partitions 4] [--rate 3000] [--pad 32]

Message n goes to key "k<NN>" (NN = n % keys, two digits) on partition NN % partitions, with
value "<key>:<seq>:<pad>" where seq counts that key's messages from 0. It produces at about
`rate` messages per second for as long as it runs, whether or not the broker is up
(librdkafka queues and retries; message.timeout.ms is generous).

stdout, one JSON document per line:
  {"ready": true}                                              once the producer exists
  {"ack": [key, seq, partition, offset]}                       a successful delivery report
  {"err": [key, seq, partition, error, fatal]}                 a failed delivery report
  {"clientError": str, "code": str, "fatal": bool}             only fatal client errors
  {"done": true, "produced": n, "unflushed": n, "lastSeq": {key: seq}, "transportErrors": n}
                                                               after SIGTERM/SIGINT and flush
"""
import argparse
import signal
import time

from confluent_kafka import Producer

from common import base_config, emit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("--keys", type=int, default=16)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--rate", type=float, default=3000.0, help="messages per second")
    ap.add_argument("--pad", type=int, default=32, help="filler bytes per value")
    ap.add_argument("--flush-timeout", type=float, default=60.0)
    a = ap.parse_args()

    stop = {"now": False}

    def on_signal(_signum, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    counters = {"transport": 0}

    def on_error(err):
        # Connection refused / all brokers down are expected while the server is killed;
        # only fatal errors (the idempotent producer gave up) are worth reporting.
        if err.fatal():
            emit({"clientError": err.str(), "code": err.name(), "fatal": True})
        else:
            counters["transport"] += 1

    conf = base_config(a.bootstrap, **{
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": 120000,
        "request.timeout.ms": 10000,
        # Reconnect quickly to the restarted server (same address, same port).
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 250,
        "error_cb": on_error,
    })
    producer = Producer(conf)
    emit({"ready": True})

    keys = ["k%02d" % i for i in range(a.keys)]
    seqs = [0] * a.keys
    pad = "." * a.pad

    def report(key, seq, partition):
        def on_delivery(err, msg):
            if err is not None:
                emit({"err": [key, seq, partition, err.str(), err.fatal()]})
            else:
                emit({"ack": [key, seq, msg.partition(), msg.offset()]})
        return on_delivery

    produced = 0
    started = time.monotonic()
    while not stop["now"]:
        target = int(a.rate * (time.monotonic() - started))
        while produced < target and not stop["now"]:
            k = produced % a.keys
            key, seq = keys[k], seqs[k]
            partition = k % a.partitions
            try:
                producer.produce(a.topic, key=key, value="%s:%d:%s" % (key, seq, pad), partition=partition,
                                 on_delivery=report(key, seq, partition))
            except BufferError:
                producer.poll(0.05)
                continue
            seqs[k] += 1
            produced += 1
        producer.poll(0.005)

    unflushed = producer.flush(a.flush_timeout)
    emit({
        "done": True,
        "produced": produced,
        "unflushed": unflushed,
        "lastSeq": {keys[i]: seqs[i] - 1 for i in range(a.keys)},
        "transportErrors": counters["transport"],
    })


if __name__ == "__main__":
    main()
