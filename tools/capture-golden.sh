#!/usr/bin/env bash
# Records golden frames from real clients talking to Skiff (kcat/librdkafka, kafkajs,
# @platformatic/kafka) into test/protocol/fixtures, through tools/record-frames.mjs.
# Skiff advertises the recorder's port, so every connection of every client is recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
out=test/protocol/fixtures
data=$(mktemp -d)
rec=29092; kafka=29093
npm run build >/dev/null
node dist/services/cli/main.js dev --data-dir "$data" --port $kafka --advertised-port $rec --http-port 0 --group-initial-rebalance-delay-ms 50 >"$data/skiff.log" 2>&1 &
skiff=$!
trap 'kill $skiff $recorder 2>/dev/null; rm -rf "$data"' EXIT
until grep -q 'skiff dev is ready' "$data/skiff.log"; do sleep 0.1; done

record() { # client
  node tools/record-frames.mjs --listen $rec --target 127.0.0.1:$kafka --out $out --client "$1" &
  recorder=$!
  until (exec 3<>/dev/tcp/127.0.0.1/$rec) 2>/dev/null; do sleep 0.1; done
}
stop() { kill $recorder; wait $recorder 2>/dev/null || true; }

record kcat
printf 'k1:one\nk2:two\n' | kcat -P -b 127.0.0.1:$rec -t golden-kcat -K: -z snappy
kcat -C -b 127.0.0.1:$rec -t golden-kcat -o beginning -e -q >/dev/null
kcat -L -b 127.0.0.1:$rec >/dev/null
stop

record kafkajs
node --input-type=module -e "
import { Kafka, CompressionTypes, logLevel } from 'kafkajs';
const kafka = new Kafka({ brokers: ['127.0.0.1:$rec'], clientId: 'golden', logLevel: logLevel.NOTHING });
const admin = kafka.admin(); await admin.connect();
await admin.createTopics({ topics: [{ topic: 'golden-kafkajs', numPartitions: 2 }] });
const p = kafka.producer(); await p.connect();
await p.send({ topic: 'golden-kafkajs', compression: CompressionTypes.GZIP, messages: [{ key: 'a', value: 'x', headers: { h: 'v' } }, { value: 'y' }] });
await p.disconnect();
await admin.fetchTopicOffsets('golden-kafkajs');
await admin.disconnect();
"
stop

record platformatic
node --input-type=module -e "
import { Producer, Consumer, Admin, stringSerializers, stringDeserializers } from '@platformatic/kafka';
const admin = new Admin({ clientId: 'golden', bootstrapBrokers: ['127.0.0.1:$rec'] });
await admin.createTopics({ topics: ['golden-platformatic'], partitions: 1, replicas: 1 });
await admin.close();
const producer = new Producer({ clientId: 'golden', bootstrapBrokers: ['127.0.0.1:$rec'], serializers: stringSerializers });
await producer.send({ messages: [{ topic: 'golden-platformatic', key: 'k', value: 'v' }] });
await producer.close();
"
stop
ls $out | wc -l
