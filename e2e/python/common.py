"""Shared helpers for the e2e scripts: JSON output on stdout, quiet librdkafka logs on stderr.

Every script prints exactly one JSON document per line on stdout; the test parses them.
Written for python3-confluent-kafka 1.7.0 on librdkafka 2.0.2.
"""
import json
import sys


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def base_config(bootstrap, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        # Loopback only: fail fast instead of librdkafka's long defaults.
        "socket.timeout.ms": 10000,
        "log_level": 4,
    }
    conf.update(extra)
    return conf
