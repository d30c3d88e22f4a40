// Retention seen by real clients: after DeleteRecords (kafkajs admin) moves the log start
// past a group's committed offset, a librdkafka consumer with auto.offset.reset recovers.

import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { pythonJson } from './support/procs.js';
import { useSkiff } from './support/skiff.js';

const { Kafka, logLevel } = kafkajs;
const server = useSkiff();

describe('retention with real clients', () => {
  it('lets a consumer whose committed offset fell below the log start recover with auto.offset.reset=earliest', async () => {
    const kafka = new Kafka({ clientId: 'retention', brokers: [server().bootstrap], logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    const producer = kafka.producer();
    await admin.connect();
    await producer.connect();
    try {
      const topic = 'trimmed';
      await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
      for (let i = 0; i < 10; i++) await producer.send({ topic, acks: -1, messages: [{ value: `m${i}` }] });
      await admin.setOffsets({ groupId: 'behind', topic, partitions: [{ partition: 0, offset: '2' }] });
      await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '6' }] });
      const [low] = await admin.fetchTopicOffsets(topic);
      expect(low.low).toBe('6');
      // Committed 2 < log start 6: the fetch answers OFFSET_OUT_OF_RANGE and the client resets.
      const r = await pythonJson<{ offsets: number[]; values: string[] }>('reset_consumer.py', [server().bootstrap, 'behind', topic, 'earliest', '4']);
      expect(r.offsets).toEqual([6, 7, 8, 9]);
      expect(r.values).toEqual(['m6', 'm7', 'm8', 'm9']);
    } finally {
      await producer.disconnect();
      await admin.disconnect();
    }
  });
});
