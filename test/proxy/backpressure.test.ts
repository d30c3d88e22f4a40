// Producer backpressure on client connections: while the broker is overloaded (too many
// unflushed bytes, or segment rolls behind), connections that produce are no longer read, so
// their clients wait instead of piling up memory; connections that only fetch keep being
// served, so consumers do not stall with them.
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { KafkaServer, type Dispatch } from '../../services/proxy/server.js';
import { ApiKey } from '../../services/protocol/messages/index.js';
import { TestClient } from '../support/kafka-client.js';

const PRODUCE_VERSION = 9;
const API_VERSIONS_VERSION = 3;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(overloaded: () => boolean) {
  const seen: { apiKey: number; correlationId: number }[] = [];
  const dispatch: Dispatch = async (ctx) => {
    seen.push({ apiKey: ctx.apiKey, correlationId: ctx.correlationId });
    if (ctx.apiKey === ApiKey.Produce) return { responses: [], throttleTimeMs: 0 };
    return { errorCode: 0, apiKeys: [], throttleTimeMs: 0 };
  };
  const server = new KafkaServer({ host: '127.0.0.1', port: 0, maxRequestBytes: 1 << 20, log: pino({ level: 'silent' }), dispatch, overloaded });
  const port = await server.listen();
  cleanups.push(() => server.close());
  const connect = async () => {
    const c = await TestClient.connect(port);
    cleanups.push(() => c.close());
    return c;
  };
  return { seen, connect };
}

const produce = (c: TestClient) =>
  c.request(ApiKey.Produce, PRODUCE_VERSION, { transactionalId: null, acks: -1, timeoutMs: 1000, topicData: [] });
const apiVersions = (c: TestClient) =>
  c.request(ApiKey.ApiVersions, API_VERSIONS_VERSION, { clientSoftwareName: 'test', clientSoftwareVersion: '1' });

describe('producer backpressure', () => {
  it('stops reading a producing connection while overloaded and resumes it after; fetch-only connections are not held', async () => {
    let overloaded = false;
    const { seen, connect } = await serve(() => overloaded);
    const producer = await connect();
    const consumer = await connect();
    await produce(producer);

    overloaded = true;
    // The request read while overloaded is answered; reading stops after it.
    await produce(producer);
    const held = produce(producer);
    let heldAnswered = false;
    void held.then(() => (heldAnswered = true));
    // The other connection, which never produced, is read and answered meanwhile.
    for (let i = 0; i < 5; i++) await apiVersions(consumer);
    expect(seen.filter((s) => s.apiKey === ApiKey.Produce)).toHaveLength(2);
    expect(heldAnswered).toBe(false);

    overloaded = false;
    await held;
    expect(seen.filter((s) => s.apiKey === ApiKey.Produce)).toHaveLength(3);
  });
});
