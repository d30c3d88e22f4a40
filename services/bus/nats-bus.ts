// NatsBus: the Bus adapter on a NATS server. It owns the connection's lifecycle: the bus is
// usable whether or not NATS is up, keeps reconnecting forever, re-subscribes after every
// reconnect, and drops notifications it cannot send (the bus only ever makes things faster).

import { createRequire } from 'node:module';
import type { NatsConnection, Subscription as NatsSubscription } from 'nats';
import type { Logger } from 'pino';
import type { Bus, Subscription } from './bus.js';
import { BusClosedError, reportSubscriberError, subjectTokens } from './local-bus.js';

// Required rather than imported, as etcd3 in etcd-meta-store.ts: importing would make Node lex
// the sources of the dozens of modules nats re-exports, at a lasting cost in memory.
const { connect, Events } = createRequire(import.meta.url)('nats') as typeof import('nats');

export interface NatsBusOptions {
  servers: string[];
  logger?: Logger;
  /** Connection name shown by the NATS server's monitoring. */
  name?: string;
  /** Pause between connection attempts. Default 500 ms. */
  reconnectTimeWaitMs?: number;
  /** How long one connection attempt may take. Default 2000 ms. */
  connectTimeoutMs?: number;
}

export class NatsBus implements Bus {
  private nc: NatsConnection | undefined;
  private connected = false;
  private closed = false;
  private readonly subs = new Set<NatsBusSubscription>();
  private wakeSleeper: (() => void) | undefined;
  private readonly loop: Promise<void>;

  private constructor(private readonly options: NatsBusOptions, firstAttemptDone: () => void) {
    this.loop = this.connectLoop(firstAttemptDone);
  }

  /**
   * Resolves after the first connection attempt, whether it succeeded or not: start-up must
   * not wait for (or fail because of) NATS. Later attempts continue in the background.
   */
  static async connect(options: NatsBusOptions): Promise<NatsBus> {
    let bus!: NatsBus;
    await new Promise<void>((resolve) => {
      bus = new NatsBus(options, resolve);
    });
    return bus;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  publish(subject: string, data: Buffer): void {
    subjectTokens(subject, false);
    const nc = this.nc;
    if (!nc || !this.connected || this.closed) {
      this.options.logger?.debug({ subject }, 'NATS not connected, notification dropped');
      return;
    }
    try {
      nc.publish(subject, data);
    } catch (err) {
      // The connection can close between the check above and here; still only a lost notification.
      this.options.logger?.debug({ err, subject }, 'NATS publish failed, notification dropped');
    }
  }

  subscribe(subject: string, cb: (data: Buffer, subject: string) => void): Subscription {
    if (this.closed) throw new BusClosedError();
    subjectTokens(subject, true);
    const sub = new NatsBusSubscription(subject, cb, this.subs, this.options.logger);
    this.subs.add(sub);
    if (this.nc) sub.bind(this.nc);
    return sub;
  }

  /** Resolves once the server has processed everything sent so far (no-op while disconnected). */
  async flush(): Promise<void> {
    if (this.nc && this.connected) await this.nc.flush();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeSleeper?.();
    for (const sub of this.subs) sub.unsubscribe();
    const nc = this.nc;
    this.nc = undefined;
    this.connected = false;
    if (nc && !nc.isClosed()) await nc.close();
    await this.loop;
  }

  /**
   * nats.js reconnects forever once it has connected, but its first connect() either waits
   * uncancellably or fails; so the first connection is retried here, where close() can stop it.
   */
  private async connectLoop(firstAttemptDone: () => void): Promise<void> {
    const { servers, logger } = this.options;
    const waitMs = this.options.reconnectTimeWaitMs ?? 500;
    while (!this.closed) {
      try {
        const nc = await connect({
          servers,
          name: this.options.name,
          maxReconnectAttempts: -1,
          reconnectTimeWait: waitMs,
          reconnectJitter: Math.min(100, waitMs),
          timeout: this.options.connectTimeoutMs ?? 2000,
          waitOnFirstConnect: false,
        });
        if (this.closed) {
          await nc.close();
          break;
        }
        this.attach(nc);
        logger?.info({ servers }, 'NATS connected');
        firstAttemptDone();
        const err = await nc.closed();
        if (this.closed) break;
        // Only a fatal error (e.g. authorization) closes a connection that reconnects forever.
        logger?.warn({ err }, 'NATS connection closed, reconnecting');
        this.nc = undefined;
        this.connected = false;
      } catch (err) {
        logger?.warn({ err, servers }, 'NATS unreachable, notifications are dropped until it is back');
        firstAttemptDone();
      }
      await this.sleep(waitMs);
    }
    firstAttemptDone();
  }

  private attach(nc: NatsConnection): void {
    this.nc = nc;
    this.connected = true;
    for (const sub of this.subs) sub.bind(nc);
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === Events.Disconnect) {
          this.connected = false;
          this.options.logger?.warn({ server: status.data }, 'NATS disconnected');
        } else if (status.type === Events.Reconnect) {
          this.connected = true;
          this.options.logger?.info({ server: status.data }, 'NATS reconnected');
        }
      }
    })();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeSleeper = done;
    });
  }
}

class NatsBusSubscription implements Subscription {
  private inner: NatsSubscription | undefined;
  private active = true;

  constructor(
    private readonly subject: string,
    private readonly cb: (data: Buffer, subject: string) => void,
    private readonly owner: Set<NatsBusSubscription>,
    private readonly logger: Logger | undefined,
  ) {}

  /** Called for the first connection and after a replacement one; nats.js resubscribes on reconnects itself. */
  bind(nc: NatsConnection): void {
    if (!this.active) return;
    this.inner = nc.subscribe(this.subject, {
      callback: (err, msg) => {
        if (err) {
          this.logger?.warn({ err, subject: this.subject }, 'NATS subscription error');
          return;
        }
        if (!this.active) return;
        try {
          this.cb(Buffer.from(msg.data), msg.subject);
        } catch (cbErr) {
          reportSubscriberError(this.logger, msg.subject, cbErr);
        }
      },
    });
  }

  unsubscribe(): void {
    if (!this.active) return;
    this.active = false;
    this.owner.delete(this);
    try {
      this.inner?.unsubscribe();
    } catch (err) {
      // Unsubscribing on a closed connection fails, and there is nothing left to undo.
      this.logger?.debug({ err, subject: this.subject }, 'NATS unsubscribe failed');
    }
  }
}
