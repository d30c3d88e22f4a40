// The Bus port: fire-and-forget notifications (high-watermark moves, assignment changes).
// Adapters: nats-bus.ts and local-bus.ts (in-process). Losing a notification is allowed:
// every waiter also has a deadline, so the bus only ever makes things faster.

/**
 * Subject on which a broker announces high-watermark moves after each commit (`.<brokerId>`),
 * for proxies to wake parked fetches. Here rather than in broker.ts so that a proxy does not
 * load the broker to learn it.
 */
export const HW_SUBJECT = 'skiff.hw';

export interface Subscription {
  unsubscribe(): void;
}

export interface Bus {
  /** Subjects are dot-separated tokens, as in NATS. */
  publish(subject: string, data: Buffer): void;
  /** subject may end in '>' (any remaining tokens) or use '*' for one token, as in NATS. */
  subscribe(subject: string, cb: (data: Buffer, subject: string) => void): Subscription;
  close(): Promise<void>;
}
