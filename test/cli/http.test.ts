import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type Embedded } from '../support/embedded.js';
import { TestClient } from '../support/kafka-client.js';
import { buildBatch } from '../support/batches.js';
import { ApiKey } from '../../services/protocol/messages/index.js';

let skiff: Embedded;
beforeAll(async () => {
  skiff = await startEmbedded();
});
afterAll(async () => {
  await skiff.destroy();
});

const get = (path: string) => fetch(`http://127.0.0.1:${skiff.httpPort}${path}`);

describe('operability endpoints', () => {
  it('answers /healthz and /readyz', async () => {
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
  });

  it('exports request, byte, flush and partition metrics for Prometheus', async () => {
    const c = await TestClient.connect(skiff.kafkaPort);
    const r = await c.request(ApiKey.Produce, 9, { transactionalId: null, acks: -1, timeoutMs: 5000, topicData: [{ name: 'metered', partitionData: [{ index: 0, records: buildBatch([{ value: 'm' }]) }] }] });
    expect(r.responses[0].partitionResponses[0].errorCode).toBe(0);
    c.close();
    const text = await (await get('/metrics')).text();
    expect(text).toMatch(/skiff_proxy_requests_total\{api="Produce"\} [1-9]/);
    expect(text).toMatch(/skiff_proxy_request_seconds_bucket\{le="[^"]+",api="Produce"\}/);
    expect(text).toMatch(/skiff_proxy_bytes_in_total [1-9]/);
    expect(text).toMatch(/skiff_proxy_bytes_out_total [1-9]/);
    expect(text).toMatch(/skiff_broker_flushes_total [1-9]/);
    expect(text).toMatch(/skiff_broker_partitions\{state="Online"\} [1-9]/);
    expect(text).toMatch(/skiff_broker_partition_transitions_total\{from="Recovering",to="Online"\} [1-9]/);
  });

  it('shows partition states as JSON for the skiff CLI', async () => {
    const parts = (await (await get('/v1/partitions')).json()) as { topic: string; state: string; highWatermark: number }[];
    expect(parts.find((p) => p.topic === 'metered')).toMatchObject({ state: 'Online', highWatermark: 1 });
  });
});
