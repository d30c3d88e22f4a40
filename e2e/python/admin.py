"""AdminClient operations: create, list, delete and describe topics.

usage: admin.py BOOTSTRAP create TOPIC PARTITIONS
       admin.py BOOTSTRAP delete TOPIC
       admin.py BOOTSTRAP list
Prints {"ok": true, ...} or {"ok": false, "error": "...", "code": "..."}.
"""
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from common import base_config, emit


def error_of(exc):
    err = exc.args[0] if exc.args else None
    if hasattr(err, "name"):
        return {"ok": False, "error": err.str(), "code": err.name()}
    return {"ok": False, "error": str(exc), "code": None}


def main():
    bootstrap, op = sys.argv[1], sys.argv[2]
    admin = AdminClient(base_config(bootstrap))
    if op == "create":
        topic, partitions = sys.argv[3], int(sys.argv[4])
        futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)], operation_timeout=10, request_timeout=15)
        try:
            futures[topic].result(timeout=20)
            emit({"ok": True})
        except KafkaException as exc:
            emit(error_of(exc))
    elif op == "delete":
        topic = sys.argv[3]
        futures = admin.delete_topics([topic], operation_timeout=10, request_timeout=15)
        try:
            futures[topic].result(timeout=20)
            emit({"ok": True})
        except KafkaException as exc:
            emit(error_of(exc))
    elif op == "list":
        md = admin.list_topics(timeout=15)
        topics = {}
        for name, t in md.topics.items():
            topics[name] = {
                "error": t.error.name() if t.error is not None else None,
                "partitions": sorted(p.id for p in t.partitions.values()),
                "leaders": sorted({p.leader for p in t.partitions.values()}),
            }
        emit({
            "ok": True,
            "cluster_id": md.cluster_id,
            "controller_id": md.controller_id,
            "brokers": {str(b.id): "%s:%d" % (b.host, b.port) for b in md.brokers.values()},
            "topics": topics,
        })
    else:
        raise SystemExit("unknown op " + op)


if __name__ == "__main__":
    main()
