// Fast failover (DESIGN.md §5). A broker's lease is the rule for when its partitions move,
// but a SIGKILLed or crashed broker keeps its lease until the TTL runs out. A proxy whose
// connection to a broker's registered address is refused knows that no broker runs there
// any more, so it revokes that registration's lease at once: locks and registration go, the
// controller reassigns within milliseconds. Revoking a lease never endangers data (a broker
// that loses its lease is fenced and joins again), so a wrong guess only costs a rejoin.
import type { Logger } from 'pino';
import type { MetaStore } from '../meta/meta-store.js';
import { Keys } from '../meta/keys.js';
import type { Registration } from '../broker/assignments.js';
import { proxyMetrics } from './metrics.js';

export class DeadBrokers {
  private readonly checking = new Set<number>();

  constructor(
    private readonly meta: MetaStore,
    private readonly log: Logger,
  ) {}

  /** A connection to `reg`'s address was refused. */
  async refused(reg: Registration): Promise<void> {
    if (this.checking.has(reg.id)) return;
    this.checking.add(reg.id);
    try {
      const kv = await this.meta.get(Keys.broker(reg.id));
      if (!kv?.lease) return;
      const now = JSON.parse(kv.value.toString()) as Registration;
      // A broker that restarted elsewhere (another port or host) is alive: leave it be.
      if (now.host !== reg.host || now.port !== reg.port) return;
      this.log.warn({ brokerId: reg.id, host: reg.host, port: reg.port }, 'broker refuses connections: revoking its lease so its partitions move now');
      await this.meta.revokeLease(kv.lease);
      proxyMetrics.brokersRevoked.inc();
    } catch (err) {
      this.log.warn({ err, brokerId: reg.id }, 'revoking a dead broker’s lease failed; its lease will expire instead');
    } finally {
      this.checking.delete(reg.id);
    }
  }
}
