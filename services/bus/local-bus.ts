// LocalBus: the in-process Bus adapter used by `skiff dev`, and the home of the subject rules
// ('*' one token, '>' the rest) that nats-bus.ts also enforces, so that both adapters accept
// and reject the same subjects.

import type { Logger } from 'pino';
import type { Bus, Subscription } from './bus.js';

export class InvalidSubjectError extends Error {
  constructor(readonly subject: string, reason: string) {
    super(`invalid subject '${subject}': ${reason}`);
    this.name = 'InvalidSubjectError';
  }
}

export class BusClosedError extends Error {
  constructor() {
    super('bus is closed');
    this.name = 'BusClosedError';
  }
}

/**
 * Splits a subject into tokens. Wildcards are only legal in subscriptions: a published
 * subject containing '*' would be delivered literally by NATS, which is never what we mean.
 */
export function subjectTokens(subject: string, allowWildcards: boolean): string[] {
  if (subject.length === 0) throw new InvalidSubjectError(subject, 'empty');
  const tokens = subject.split('.');
  tokens.forEach((token, i) => {
    if (token.length === 0) throw new InvalidSubjectError(subject, 'empty token');
    if (/\s/.test(token)) throw new InvalidSubjectError(subject, 'whitespace');
    const wildcard = token === '*' || token === '>';
    if (!wildcard && (token.includes('*') || token.includes('>'))) {
      throw new InvalidSubjectError(subject, `wildcard inside token '${token}'`);
    }
    if (wildcard && !allowWildcards) throw new InvalidSubjectError(subject, 'wildcards are only allowed when subscribing');
    if (token === '>' && i !== tokens.length - 1) throw new InvalidSubjectError(subject, "'>' must be the last token");
  });
  return tokens;
}

/** NATS matching: '*' is exactly one token, a trailing '>' is one or more tokens. */
export function subjectMatches(pattern: readonly string[], subject: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === '>') return subject.length > i;
    if (i >= subject.length) return false;
    if (p !== '*' && p !== subject[i]) return false;
  }
  return pattern.length === subject.length;
}

export interface LocalBusOptions {
  logger?: Logger;
}

export class LocalBus implements Bus {
  private readonly subs = new Set<LocalSubscription>();
  private closed = false;

  constructor(private readonly options: LocalBusOptions = {}) {}

  publish(subject: string, data: Buffer): void {
    const tokens = subjectTokens(subject, false);
    if (this.closed) {
      // Notifications are allowed to be lost, and shutdown races should not crash a publisher.
      this.options.logger?.debug({ subject }, 'bus closed, notification dropped');
      return;
    }
    for (const sub of this.subs) {
      if (!subjectMatches(sub.pattern, tokens)) continue;
      // Each subscriber gets its own copy, as it would from NATS, so nobody sees a publisher
      // reuse its buffer or another subscriber scribble on it.
      const copy = Buffer.from(data);
      // Delivered later so a publisher holding locks or mid-update is never re-entered.
      queueMicrotask(() => sub.deliver(copy, subject));
    }
  }

  subscribe(subject: string, cb: (data: Buffer, subject: string) => void): Subscription {
    if (this.closed) throw new BusClosedError();
    const sub = new LocalSubscription(subjectTokens(subject, true), cb, this.subs, this.options.logger);
    this.subs.add(sub);
    return sub;
  }

  /** Resolves once every notification published so far has been delivered. */
  async flush(): Promise<void> {
    // Deliveries are microtasks queued at publish time; a macrotask runs after all of them.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const sub of this.subs) sub.unsubscribe();
  }
}

class LocalSubscription implements Subscription {
  private active = true;

  constructor(
    readonly pattern: readonly string[],
    private readonly cb: (data: Buffer, subject: string) => void,
    private readonly owner: Set<LocalSubscription>,
    private readonly logger: Logger | undefined,
  ) {}

  deliver(data: Buffer, subject: string): void {
    // A delivery queued before unsubscribe() must not arrive after it.
    if (!this.active) return;
    try {
      this.cb(data, subject);
    } catch (err) {
      reportSubscriberError(this.logger, subject, err);
    }
  }

  unsubscribe(): void {
    this.active = false;
    this.owner.delete(this);
  }
}

/** A throwing subscriber is a bug in that subscriber; it must not take the publisher down. */
export function reportSubscriberError(logger: Logger | undefined, subject: string, err: unknown): void {
  if (logger) {
    logger.error({ err, subject }, 'bus subscriber threw');
  } else {
    process.emitWarning(`bus subscriber for '${subject}' threw: ${err instanceof Error ? err.stack : String(err)}`);
  }
}
