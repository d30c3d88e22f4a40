"""Creates a topic with topic configs through the AdminClient.

usage: bp_create_topic.py BOOTSTRAP TOPIC PARTITIONS [key=value ...]
Prints {"ok": true} or {"ok": false, "error": "...", "code": "..."}.
"""
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from common import base_config, emit


def main():
    bootstrap, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
    config = dict(kv.split("=", 1) for kv in sys.argv[4:])
    admin = AdminClient(base_config(bootstrap))
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config)],
                                  operation_timeout=10, request_timeout=15)
    try:
        futures[topic].result(timeout=20)
        emit({"ok": True})
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if hasattr(err, "name"):
            emit({"ok": False, "error": err.str(), "code": err.name()})
        else:
            emit({"ok": False, "error": str(exc), "code": None})


if __name__ == "__main__":
    main()
