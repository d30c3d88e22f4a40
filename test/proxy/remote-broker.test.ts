// What a proxy tells producers when it cannot get a broker's answer (cluster mode): a request
// the broker never received was not written (NOT_LEADER_OR_FOLLOWER), but one it received and
// then lost the connection over may have been (REQUEST_TIMED_OUT, "possibly persisted"), so an
// idempotent producer retries it with the same sequence numbers instead of renumbering it.
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { encodeAssignment } from '../../services/broker/assignments.js';
import { Keys } from '../../services/meta/keys.js';
import { TopicRegistry } from '../../services/meta/topics.js';
import { ErrorCode } from '../../services/protocol/errors.js';
import { ApiKey } from '../../services/protocol/messages/index.js';
import { ClusterView } from '../../services/proxy/cluster-view.js';
import { BrokerConnections, RemoteBrokerClient } from '../../services/proxy/remote-broker.js';
import { buildBatch } from '../support/batches.js';
import { freePort } from '../support/servers.js';
import { EmbeddedMetaStore } from '../../services/meta/embedded-meta-store.js';

const log = pino({ level: 'silent' });
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A proxy side whose only broker, id 7, is registered at `port` and owns partition 0. */
async function proxyTo(port: number) {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-remote-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const meta = await EmbeddedMetaStore.open(join(dir, 'meta.log'));
  cleanups.push(() => meta.close());
  const topics = await TopicRegistry.open(meta);
  cleanups.push(() => topics.close());
  const topic = await topics.create('lost', 1, {});
  await meta.put(Keys.broker(7), Buffer.from(JSON.stringify({ id: 7, host: '127.0.0.1', port, httpPort: 0, startedAt: Date.now() })));
  await meta.put(Keys.assign(topic.id, 0), encodeAssignment({ broker: 7, epoch: 0 }));
  const view = await ClusterView.open(meta);
  cleanups.push(() => view.close());
  expect(await view.whenAssigned([`${topic.id}/0`], 5000)).toBe(true);
  const connections = new BrokerConnections('remote-broker-test');
  cleanups.push(() => connections.close());
  return { remote: new RemoteBrokerClient(view, topics, connections, log), topicId: topic.id };
}

/** A "broker" that reads request frames and, on the first Produce, drops the connection. */
async function brokerThatDropsProduce(): Promise<{ port: number; produces: () => number }> {
  let produces = 0;
  const server = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        const apiKey = buf.readInt16BE(4);
        buf = buf.subarray(4 + buf.readInt32BE(0));
        if (apiKey === ApiKey.Produce) {
          produces++;
          s.destroy();
          return;
        }
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as net.AddressInfo).port, produces: () => produces };
}

describe('RemoteBrokerClient produce without an answer', () => {
  it('answers REQUEST_TIMED_OUT when the broker got the request and the connection closed before its answer', async () => {
    const broker = await brokerThatDropsProduce();
    const { remote, topicId } = await proxyTo(broker.port);
    const r = await remote.produce(topicId, 0, buildBatch([{ value: 'maybe' }]), -1, 5000);
    expect(broker.produces()).toBe(1);
    expect(r.errorCode).toBe(ErrorCode.REQUEST_TIMED_OUT);
  });

  it('answers NOT_LEADER_OR_FOLLOWER when the broker could not be reached at all', async () => {
    const { remote, topicId } = await proxyTo(await freePort());
    const r = await remote.produce(topicId, 0, buildBatch([{ value: 'never sent' }]), -1, 5000);
    expect(r.errorCode).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
  });
});
