// Fast failover: a proxy notices a broker that died (its registered port refuses
// connections) and revokes the broker's lease, so its partitions move without waiting for
// the lease to expire — and never touches a broker that is alive elsewhere.
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Registration } from '../../services/broker/assignments.js';
import { EmbeddedMetaStore } from '../../services/meta/embedded-meta-store.js';
import { Keys } from '../../services/meta/keys.js';
import { BrokerUnavailableError } from '../../services/proxy/broker-connection.js';
import { DeadBrokers } from '../../services/proxy/dead-brokers.js';
import { BrokerConnections } from '../../services/proxy/remote-broker.js';
import { ApiKey } from '../../services/protocol/messages/index.js';

const log = pino({ level: 'silent' });

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('dead brokers', () => {
  let dir: string;
  let meta: EmbeddedMetaStore;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-dead-'));
    meta = await EmbeddedMetaStore.open(join(dir, 'meta.log'));
  });

  afterEach(async () => {
    await meta.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function register(reg: Registration) {
    const lease = await meta.grantLease(30);
    let lost = false;
    lease.onLost(() => (lost = true));
    await meta.put(Keys.broker(reg.id), Buffer.from(JSON.stringify(reg)), { lease: lease.id });
    await meta.put(Keys.lock('t', 0), Buffer.from(String(reg.id)), { lease: lease.id });
    return { lost: () => lost };
  }

  it('revokes the lease of a broker whose registered address refuses connections', async () => {
    const reg: Registration = { id: 3, host: '127.0.0.1', port: await closedPort(), httpPort: 0, startedAt: 1 };
    const held = await register(reg);
    await new DeadBrokers(meta, log).refused(reg);
    // Registration and partition lock go with the lease: the controller can reassign now.
    expect(await meta.get(Keys.broker(3))).toBeUndefined();
    expect(await meta.get(Keys.lock('t', 0))).toBeUndefined();
    expect(held.lost()).toBe(true);
  });

  it('leaves a broker alone that registered again at another address', async () => {
    const old: Registration = { id: 3, host: '127.0.0.1', port: await closedPort(), httpPort: 0, startedAt: 1 };
    await register({ ...old, port: old.port + 1, startedAt: 2 });
    await new DeadBrokers(meta, log).refused(old);
    expect(await meta.get(Keys.broker(3))).toBeDefined();
    expect(await meta.get(Keys.lock('t', 0))).toBeDefined();
  });

  it('a proxy connection reports a refused broker at once when the broker dies, without waiting for a request', async () => {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => sockets.add(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const reg: Registration = { id: 7, host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, httpPort: 0, startedAt: 1 };
    let report!: (id: number) => void;
    const reported = new Promise<number>((r) => (report = r));
    const conns = new BrokerConnections('test', (r) => report(r.id));
    // A request that the "broker" never answers, then the broker process dies.
    const inflight = conns.to(reg).request(ApiKey.ApiVersions, 3, { clientSoftwareName: 't', clientSoftwareVersion: '1' });
    await new Promise<void>((r) => (sockets.size > 0 ? r() : server.once('connection', () => r())));
    server.close();
    for (const s of sockets) s.destroy();
    await expect(inflight).rejects.toBeInstanceOf(BrokerUnavailableError);
    expect(await reported).toBe(7);
    conns.close();
  });
});
