"""A consumer-group member that consumes and commits in two steps, with a pause between them
during which the test fails the group coordinator over.

usage: group_step.py BOOTSTRAP GROUP TOPIC --first N1 --second N2

1. Joins GROUP, consumes N1 messages, commits synchronously, prints
   {"committed": {partition: offset}, "step": 1, "consumed": n}.
2. Pauses its partitions but keeps polling (so it stays in the group) until SIGUSR1.
3. Resumes, consumes N2 more messages, commits synchronously (retrying retriable errors for
   up to 60 s, e.g. while the group rejoins a new coordinator), prints
   {"committed": {...}, "step": 2, "consumed": n}, closes and prints {"closed": true}.
Every message: {"m": [partition, offset, value]}; every error: {"error": str}; rebalances:
{"assigned": [...]} / {"revoked": [...]}.
"""
import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from confluent_kafka import Consumer, KafkaError, KafkaException  # noqa: E402

from common import base_config, emit  # noqa: E402

go = {"on": False}


def on_usr1(_signum, _frame):
    go["on"] = True


def commit(consumer, step, consumed):
    deadline = time.time() + 60
    while True:
        try:
            tps = consumer.commit(asynchronous=False)
            # The list names every assigned partition; those whose position did not move since
            # the last commit carry OFFSET_INVALID (-1001) and were not part of this commit.
            emit({"committed": {str(tp.partition): tp.offset for tp in tps if tp.error is None and tp.offset >= 0},
                  "errors": [tp.error.str() for tp in tps if tp.error is not None], "step": step, "consumed": consumed})
            return
        except KafkaException as exc:
            err = exc.args[0]
            emit({"error": "commit: " + err.str(), "retriable": err.retriable()})
            if time.time() > deadline:
                raise
            # Rebalance in progress / not coordinator / unknown member: let librdkafka rejoin.
            consumer.poll(0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("group")
    ap.add_argument("topic")
    ap.add_argument("--first", type=int, required=True)
    ap.add_argument("--second", type=int, required=True)
    a = ap.parse_args()
    signal.signal(signal.SIGUSR1, on_usr1)

    consumer = Consumer(base_config(a.bootstrap, **{
        "group.id": a.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 500,
        "max.poll.interval.ms": 120000,
        "error_cb": lambda err: emit({"error": err.str()}),
    }))
    consumer.subscribe([a.topic],
                       on_assign=lambda c, ps: emit({"assigned": sorted(p.partition for p in ps)}),
                       on_revoke=lambda c, ps: emit({"revoked": sorted(p.partition for p in ps)}))

    def consume(n):
        got = 0
        while got < n:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    emit({"error": msg.error().str()})
                continue
            emit({"m": [msg.partition(), msg.offset(), msg.value().decode()]})
            got += 1
        return got

    consumed = consume(a.first)
    commit(consumer, 1, consumed)

    consumer.pause(consumer.assignment())
    emit({"paused": True})
    while not go["on"]:
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            # Only after a rebalance re-assigned the partitions unpaused.
            emit({"m": [msg.partition(), msg.offset(), msg.value().decode()]})
            consumed += 1
    consumer.resume(consumer.assignment())
    emit({"resumed": True})

    consumed += consume(a.second)
    commit(consumer, 2, consumed)
    consumer.close()
    emit({"closed": True})


if __name__ == "__main__":
    main()
