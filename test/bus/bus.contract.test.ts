// The Bus contract, run against LocalBus and NatsBus (real nats-server), plus NatsBus's
// behaviour while NATS is down and after it comes back.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bus } from '../../services/bus/bus.js';
import { InvalidSubjectError, LocalBus } from '../../services/bus/local-bus.js';
import { NatsBus } from '../../services/bus/nats-bus.js';
import { startNats, type NatsServer } from '../support/servers.js';

interface BusHarness {
  /** A publisher and a subscriber; for NATS these are two connections, as between two processes. */
  pair(): Promise<{ pub: Bus; sub: Bus; settle(): Promise<void> }>;
}

/** Collects messages and resolves waiters as soon as enough have arrived: no sleeps. */
class Inbox {
  readonly messages: { subject: string; data: string }[] = [];
  private waiters: { n: number; resolve: () => void }[] = [];

  readonly cb = (data: Buffer, subject: string): void => {
    this.messages.push({ subject, data: data.toString() });
    this.waiters = this.waiters.filter((w) => (this.messages.length >= w.n ? (w.resolve(), false) : true));
  };

  waitFor(n: number, timeoutMs = 5000): Promise<void> {
    if (this.messages.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`got ${this.messages.length} of ${n} messages`)), timeoutMs);
      this.waiters.push({ n, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  subjects(): string[] {
    return this.messages.map((m) => m.subject);
  }
}

function busContract(name: string, harness: () => BusHarness): void {
  describe(`Bus contract: ${name}`, () => {
    /**
     * Messages from one publisher reach a subscriber connection in order, so once the
     * sentinel arrives on a catch-all subscription, anything else would have arrived too.
     */
    async function publishThenSentinel(pub: Bus, sub: Bus, settle: () => Promise<void>, send: () => void): Promise<void> {
      const sentinel = new Inbox();
      const s = sub.subscribe('sentinel.>', sentinel.cb);
      await settle();
      send();
      pub.publish('sentinel.done', Buffer.from('.'));
      await sentinel.waitFor(1);
      s.unsubscribe();
    }

    it('delivers a message to a subscriber of its exact subject, with the subject', async () => {
      const { pub, sub, settle } = await harness().pair();
      const inbox = new Inbox();
      sub.subscribe('hw.orders.0', inbox.cb);
      await settle();
      pub.publish('hw.orders.0', Buffer.from('42'));
      await inbox.waitFor(1);
      expect(inbox.messages).toEqual([{ subject: 'hw.orders.0', data: '42' }]);
    });

    it("matches '*' to exactly one token", async () => {
      const { pub, sub, settle } = await harness().pair();
      const inbox = new Inbox();
      sub.subscribe('hw.*.0', inbox.cb);
      await publishThenSentinel(pub, sub, settle, () => {
        pub.publish('hw.orders.0', Buffer.from('a'));
        pub.publish('hw.orders.1', Buffer.from('b'));
        pub.publish('hw.orders.x.0', Buffer.from('c'));
        pub.publish('hw.payments.0', Buffer.from('d'));
      });
      expect(inbox.subjects()).toEqual(['hw.orders.0', 'hw.payments.0']);
    });

    it("matches '>' to one or more remaining tokens, never zero", async () => {
      const { pub, sub, settle } = await harness().pair();
      const inbox = new Inbox();
      sub.subscribe('assign.>', inbox.cb);
      await publishThenSentinel(pub, sub, settle, () => {
        pub.publish('assign', Buffer.from('a'));
        pub.publish('assign.t1', Buffer.from('b'));
        pub.publish('assign.t1.7', Buffer.from('c'));
        pub.publish('other.t1', Buffer.from('d'));
      });
      expect(inbox.subjects()).toEqual(['assign.t1', 'assign.t1.7']);
    });

    it('delivers one message to every matching subscription', async () => {
      const { pub, sub, settle } = await harness().pair();
      const a = new Inbox();
      const b = new Inbox();
      sub.subscribe('x.y', a.cb);
      sub.subscribe('x.*', b.cb);
      await settle();
      pub.publish('x.y', Buffer.from('m'));
      await Promise.all([a.waitFor(1), b.waitFor(1)]);
      expect([a.messages, b.messages]).toEqual([[{ subject: 'x.y', data: 'm' }], [{ subject: 'x.y', data: 'm' }]]);
    });

    it('stops delivering after unsubscribe', async () => {
      const { pub, sub, settle } = await harness().pair();
      const inbox = new Inbox();
      const s = sub.subscribe('u.v', inbox.cb);
      await settle();
      pub.publish('u.v', Buffer.from('1'));
      await inbox.waitFor(1);
      s.unsubscribe();
      await publishThenSentinel(pub, sub, settle, () => pub.publish('u.v', Buffer.from('2')));
      expect(inbox.messages.map((m) => m.data)).toEqual(['1']);
    });

    it('keeps per-publisher order', async () => {
      const { pub, sub, settle } = await harness().pair();
      const inbox = new Inbox();
      sub.subscribe('seq.>', inbox.cb);
      await settle();
      for (let i = 0; i < 200; i++) pub.publish(`seq.${i % 3}`, Buffer.from(String(i)));
      await inbox.waitFor(200);
      expect(inbox.messages.map((m) => Number(m.data))).toEqual([...Array(200).keys()]);
    });

    it('rejects malformed subjects the same way', async () => {
      const { pub, sub } = await harness().pair();
      expect(() => pub.publish('a.*', Buffer.alloc(0))).toThrow(InvalidSubjectError);
      expect(() => pub.publish('a..b', Buffer.alloc(0))).toThrow(InvalidSubjectError);
      expect(() => sub.subscribe('a.>.b', () => undefined)).toThrow(InvalidSubjectError);
      expect(() => sub.subscribe('', () => undefined)).toThrow(InvalidSubjectError);
    });
  });
}

// --- LocalBus ---------------------------------------------------------------------------------

busContract('LocalBus', () => ({
  async pair() {
    const bus = new LocalBus();
    return { pub: bus, sub: bus, settle: () => bus.flush() };
  },
}));

describe('LocalBus', () => {
  it('never delivers inside publish(), so a publisher is not re-entered', async () => {
    const bus = new LocalBus();
    const inbox = new Inbox();
    bus.subscribe('a', inbox.cb);
    bus.publish('a', Buffer.from('x'));
    expect(inbox.messages).toHaveLength(0);
    await inbox.waitFor(1);
    await bus.close();
  });

  it('gives each subscriber its own copy of the payload', async () => {
    const bus = new LocalBus();
    const got: Buffer[] = [];
    bus.subscribe('a', (d) => got.push(d));
    bus.subscribe('a', (d) => got.push(d));
    const payload = Buffer.from('abc');
    bus.publish('a', payload);
    payload.fill(0);
    await bus.flush();
    got[0].fill(1);
    expect(got[1].toString()).toBe('abc');
  });
});

// --- NatsBus ----------------------------------------------------------------------------------

describe('with a real nats-server', () => {
  let nats: NatsServer;
  const buses: NatsBus[] = [];
  const open = async (): Promise<NatsBus> => {
    const bus = await NatsBus.connect({ servers: [nats.url], reconnectTimeWaitMs: 50 });
    buses.push(bus);
    return bus;
  };

  beforeAll(async () => {
    nats = await startNats();
  });
  afterAll(async () => {
    await Promise.all(buses.map((b) => b.close()));
    await nats?.stop();
  });

  busContract('NatsBus', () => ({
    async pair() {
      const [pub, sub] = await Promise.all([open(), open()]);
      // The subscriber's SUB must reach the server before the publisher's first PUB.
      return { pub, sub, settle: () => sub.flush() };
    },
  }));

  describe('NatsBus failures', () => {
    /** Publishes until the inbox sees one message: delivery resumes exactly when reconnected. */
    async function publishUntilDelivered(pub: Bus, subject: string, inbox: Inbox): Promise<void> {
      const seen = inbox.messages.length;
      const timer = setInterval(() => pub.publish(subject, Buffer.from('ping')), 20);
      try {
        await inbox.waitFor(seen + 1, 15_000);
      } finally {
        clearInterval(timer);
      }
    }

    it('drops publishes while NATS is down without throwing, and delivers again once it is back', async () => {
      const pub = await open();
      const sub = await open();
      const inbox = new Inbox();
      sub.subscribe('hw.>', inbox.cb);
      await sub.flush();
      pub.publish('hw.t.0', Buffer.from('before'));
      await inbox.waitFor(1);

      await nats.kill();
      for (let i = 0; i < 100; i++) expect(() => pub.publish('hw.t.0', Buffer.from('while-down'))).not.toThrow();
      // A subscription made while disconnected is sent once the connection is back.
      const late = new Inbox();
      sub.subscribe('late.*', late.cb);

      await nats.restart();
      await publishUntilDelivered(pub, 'hw.t.0', inbox);
      await publishUntilDelivered(pub, 'late.x', late);
      expect(inbox.messages[0].data).toBe('before');
    });

    it('connects without throwing when NATS is not running, and starts delivering when it is', async () => {
      await nats.kill();
      const pub = await open();
      const sub = await open();
      expect(pub.isConnected).toBe(false);
      const inbox = new Inbox();
      sub.subscribe('boot.*', inbox.cb);
      expect(() => pub.publish('boot.a', Buffer.from('lost'))).not.toThrow();
      await nats.restart();
      await publishUntilDelivered(pub, 'boot.a', inbox);
      expect(inbox.messages.every((m) => m.data === 'ping')).toBe(true);
    });

    it('closes cleanly while NATS is unreachable', async () => {
      await nats.kill();
      const bus = await NatsBus.connect({ servers: [nats.url], reconnectTimeWaitMs: 50 });
      await bus.close();
      expect(() => bus.publish('a.b', Buffer.from('x'))).not.toThrow();
      await nats.restart();
    });
  });
});
