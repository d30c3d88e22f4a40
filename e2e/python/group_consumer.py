"""A member of a consumer group that reports everything it does as JSON lines.

usage: group_consumer.py BOOTSTRAP GROUP TOPIC NAME [ASSIGNMENT-STRATEGY]
Prints {"event": "assigned"|"revoked", "partitions": [...]} on rebalances and
{"event": "message", "value": ..., "partition": p, "offset": o} per message. On SIGTERM
it commits synchronously, closes (leaving the group) and prints {"event": "closed"}.
"""
import signal
import sys

from confluent_kafka import Consumer, KafkaError, KafkaException

from common import base_config, emit

stopping = False


def on_term(signum, frame):
    global stopping
    stopping = True


def main():
    bootstrap, group, topic, name = sys.argv[1:5]
    strategy = sys.argv[5] if len(sys.argv) > 5 else "range,roundrobin"
    signal.signal(signal.SIGTERM, on_term)
    consumer = Consumer(base_config(bootstrap, **{
        "group.id": group,
        "client.id": name,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 500,
        # Short enough that a killed member's partitions move on within the test's time.
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "max.poll.interval.ms": 60000,
        "partition.assignment.strategy": strategy,
    }))

    def on_assign(c, partitions):
        emit({"event": "assigned", "name": name, "partitions": sorted(p.partition for p in partitions)})

    def on_revoke(c, partitions):
        emit({"event": "revoked", "name": name, "partitions": sorted(p.partition for p in partitions)})

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    emit({"event": "subscribed", "name": name})
    while not stopping:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() != KafkaError._PARTITION_EOF:
                emit({"event": "error", "name": name, "error": msg.error().str()})
            continue
        emit({"event": "message", "name": name, "value": msg.value().decode(), "partition": msg.partition(), "offset": msg.offset()})
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as exc:
        # _NO_OFFSET: everything consumed was already committed.
        if exc.args[0].code() != KafkaError._NO_OFFSET:
            emit({"event": "error", "name": name, "error": exc.args[0].str()})
    consumer.close()
    emit({"event": "closed", "name": name})


if __name__ == "__main__":
    main()
