// Wakes parked fetches when a broker announces that high watermarks moved. One bus
// subscription per proxy; each notification lists (topic id, partition, high watermark).
import { HW_SUBJECT, type Bus, type Subscription } from '../bus/bus.js';
import { proxyMetrics as m } from './metrics.js';

export interface Parked {
  /** Resolves true when woken by a commit, false at the deadline. */
  wait(ms: number): Promise<boolean>;
  /** Set once a commit touched one of the partitions since parking. */
  woken: boolean;
  release(): void;
}

function uuidOf(b: Buffer, at: number): string {
  const h = b.toString('hex', at, at + 16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export class HwWatch {
  private readonly waiters = new Map<string, Set<ParkedFetch>>();
  private readonly sub: Subscription;
  private parked = 0;

  constructor(
    bus: Bus,
    private readonly maxParked: number,
  ) {
    this.sub = bus.subscribe(`${HW_SUBJECT}.>`, (data) => this.onNote(data));
  }

  private onNote(data: Buffer): void {
    for (let at = 0; at + 28 <= data.length; at += 28) {
      const key = `${uuidOf(data, at)}/${data.readInt32BE(at + 16)}`;
      const set = this.waiters.get(key);
      if (set) for (const w of set) w.wake();
    }
  }

  /**
   * Registers interest in partitions before reading them, so a commit landing between the
   * read and the wait is not missed. Undefined when too many fetches are parked already.
   */
  park(keys: string[]): Parked | undefined {
    if (this.parked >= this.maxParked) return undefined;
    const p = new ParkedFetch(this, keys);
    for (const k of keys) {
      let set = this.waiters.get(k);
      if (!set) this.waiters.set(k, (set = new Set()));
      set.add(p);
    }
    this.parked++;
    m.parkedFetches.set(this.parked);
    return p;
  }

  unpark(p: ParkedFetch, keys: string[]): void {
    for (const k of keys) {
      const set = this.waiters.get(k);
      if (!set) continue;
      set.delete(p);
      if (set.size === 0) this.waiters.delete(k);
    }
    this.parked--;
    m.parkedFetches.set(this.parked);
  }

  close(): void {
    this.sub.unsubscribe();
  }
}

class ParkedFetch implements Parked {
  woken = false;
  private resolve?: (v: boolean) => void;
  private timer?: NodeJS.Timeout;
  private released = false;

  constructor(
    private readonly watch: HwWatch,
    private readonly keys: string[],
  ) {}

  wake(): void {
    this.woken = true;
    if (this.resolve) {
      clearTimeout(this.timer);
      const r = this.resolve;
      this.resolve = undefined;
      r(true);
    }
  }

  wait(ms: number): Promise<boolean> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      this.resolve = (v) => {
        this.woken = false;
        resolve(v);
      };
      this.timer = setTimeout(() => {
        const r = this.resolve;
        this.resolve = undefined;
        r?.(false);
      }, Math.max(0, ms));
    });
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    clearTimeout(this.timer);
    this.watch.unpark(this, this.keys);
  }
}
