"""Consumer.offsets_for_times for one partition and several timestamps.

usage: offsets_for_times.py BOOTSTRAP TOPIC PARTITION TS [TS...]
Prints {"offsets": [offset for each TS]}; -1 means no message at or after TS.
"""
import sys

from confluent_kafka import Consumer, TopicPartition

from common import base_config, emit


def main():
    bootstrap, topic, partition = sys.argv[1], sys.argv[2], int(sys.argv[3])
    stamps = [int(x) for x in sys.argv[4:]]
    consumer = Consumer(base_config(bootstrap, **{"group.id": "offsets-for-times", "enable.auto.commit": False}))
    out = []
    for ts in stamps:
        res = consumer.offsets_for_times([TopicPartition(topic, partition, ts)], timeout=15)
        if res[0].error is not None:
            out.append({"error": res[0].error.str()})
        else:
            out.append(res[0].offset)
    consumer.close()
    emit({"offsets": out})


if __name__ == "__main__":
    main()
