// The BrokerClient port over the network (cluster mode): each partition's work goes to the
// broker the controller assigned it to, over the Kafka protocol. Produce calls made in the
// same event-loop turn are merged into one request per broker; fetches are split by broker
// and merged back, except catch-up reads, which the proxy serves from segment objects itself
// (catch-up.ts). A broker that cannot be reached costs clients a retriable error.
import type { Logger } from 'pino';
import type { BrokerClient, EpochEndResult, FetchInput, FetchResult, ListOffsetResult, PartitionStatus, ProduceResult } from '../broker/broker-client.js';
import { partitionUnit, type Registration } from '../broker/assignments.js';
import type { TopicRegistry } from '../meta/topics.js';
import { ApiKey } from '../protocol/messages/api-keys.js';
import { ErrorCode } from '../protocol/errors.js';
import { recordBytes } from '../protocol/primitives.js';
import type { ProduceResponse } from '../protocol/messages/produce-response.js';
import type { FetchResponse } from '../protocol/messages/fetch-response.js';
import type { ListOffsetsResponse } from '../protocol/messages/list-offsets-response.js';
import type { OffsetForLeaderEpochResponse } from '../protocol/messages/offset-for-leader-epoch-response.js';
import type { DeleteRecordsResponse } from '../protocol/messages/delete-records-response.js';
import type { InitProducerIdResponse } from '../protocol/messages/init-producer-id-response.js';
import { AnswerLostError, BrokerConnection } from './broker-connection.js';
import type { ClusterView } from './cluster-view.js';
import { CatchUpError, type CatchUpPlan, type CatchUpReads } from './catch-up.js';
import { proxyMetrics as m } from './metrics.js';

const PRODUCE_V = 9;
const FETCH_V = 12;
/** Below every log start: the owner answers with the partition's offsets and reads nothing. */
const PROBE_OFFSET = -1;

interface PendingProduce {
  topic: string;
  partition: number;
  records: Buffer;
  resolve: (r: ProduceResult) => void;
}

interface ProduceBatch {
  acks: number;
  timeoutMs: number;
  parts: PendingProduce[];
}

const unavailable = (errorCode: number = ErrorCode.NOT_LEADER_OR_FOLLOWER): ProduceResult => ({ errorCode, baseOffset: -1, logStartOffset: -1 });

export class BrokerConnections {
  private readonly conns = new Map<number, BrokerConnection>();

  constructor(
    private readonly clientId: string,
    /** Told when a broker's registered address refuses connections (DeadBrokers). */
    private readonly onRefused?: (reg: Registration) => void,
  ) {}

  to(reg: Registration): BrokerConnection {
    let c = this.conns.get(reg.id);
    if (!c || c.host !== reg.host || c.port !== reg.port) {
      c?.close();
      c = new BrokerConnection(reg.host, reg.port, this.clientId, () => this.onRefused?.(reg));
      this.conns.set(reg.id, c);
    }
    return c;
  }

  /** Drops connections to brokers that left: what was in flight to them fails at once. */
  prune(live: Set<number>): void {
    for (const [id, c] of this.conns) {
      if (live.has(id)) continue;
      c.close();
      this.conns.delete(id);
    }
  }

  close(): void {
    for (const c of this.conns.values()) c.close();
    this.conns.clear();
  }
}

export class RemoteBrokerClient implements BrokerClient {
  private batches = new Map<string, ProduceBatch>();
  private flushQueued = false;

  constructor(
    private readonly view: ClusterView,
    private readonly topics: TopicRegistry,
    readonly connections: BrokerConnections,
    private readonly log: Logger,
    /** Cluster mode with an object store: catch-up fetches are read from segments here. */
    private readonly catchUp?: CatchUpReads,
  ) {}

  private owner(topicId: string, partition: number): Registration | undefined {
    return this.view.ownerOf(partitionUnit(topicId, partition));
  }

  produce(topicId: string, partition: number, records: Buffer, acks: number, timeoutMs: number): Promise<ProduceResult> {
    const reg = this.owner(topicId, partition);
    const topic = this.topics.getById(topicId)?.name;
    if (!reg || !topic) return Promise.resolve(unavailable());
    // acks=0 still needs the broker's answer here: the proxy just does not pass it on.
    const brokerAcks = acks === 0 ? 1 : acks;
    const key = `${reg.id}/${brokerAcks}`;
    let batch = this.batches.get(key);
    if (!batch) this.batches.set(key, (batch = { acks: brokerAcks, timeoutMs, parts: [] }));
    batch.timeoutMs = Math.max(batch.timeoutMs, timeoutMs);
    const done = new Promise<ProduceResult>((resolve) => batch!.parts.push({ topic, partition, records, resolve }));
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flushProduce());
    }
    return done;
  }

  private flushProduce(): void {
    this.flushQueued = false;
    const batches = this.batches;
    this.batches = new Map();
    for (const [key, batch] of batches) void this.sendProduce(Number(key.split('/')[0]), batch);
  }

  private async sendProduce(brokerId: number, batch: ProduceBatch): Promise<void> {
    const reg = this.view.brokers.get(brokerId);
    const byTopic = new Map<string, PendingProduce[]>();
    for (const p of batch.parts) {
      let list = byTopic.get(p.topic);
      if (!list) byTopic.set(p.topic, (list = []));
      list.push(p);
    }
    try {
      if (!reg) throw new Error('broker left');
      const res = await this.connections.to(reg).request<ProduceResponse>(ApiKey.Produce, PRODUCE_V, {
        transactionalId: null,
        acks: batch.acks,
        timeoutMs: batch.timeoutMs,
        topicData: [...byTopic].map(([name, parts]) => ({ name, partitionData: parts.map((p) => ({ index: p.partition, records: p.records })) })),
      });
      // Answers come in request order. One partition may appear twice (two client requests
      // merged), so they are matched by position, never by (topic, partition).
      const groups = [...byTopic.values()];
      groups.forEach((parts, i) => {
        const answers = res.responses[i]?.partitionResponses ?? [];
        parts.forEach((p, j) => {
          const a = answers[j];
          if (!a || a.index !== p.partition) return p.resolve(unavailable());
          p.resolve({ errorCode: a.errorCode, baseOffset: Number(a.baseOffset), logStartOffset: Number(a.logStartOffset ?? -1n), errorMessage: a.errorMessage ?? undefined });
        });
      });
    } catch (err) {
      this.log.debug({ err, brokerId }, 'produce to broker failed');
      // Sent and unanswered, the batches may have been written: REQUEST_TIMED_OUT ("possibly
      // persisted") has an idempotent producer retry them with the same sequence numbers,
      // where NOT_LEADER_OR_FOLLOWER ("not persisted") would let it renumber them.
      const lost = err instanceof AnswerLostError ? unavailable(ErrorCode.REQUEST_TIMED_OUT) : unavailable();
      for (const p of batch.parts) p.resolve(lost);
    }
  }

  async fetch(inputs: FetchInput[], budget: number): Promise<FetchResult[]> {
    const plans = this.catchUp ? inputs.map((i) => this.catchUp!.plan(i.topicId, i.partition, i.fetchOffset)) : [];
    const fromSegment = new Array<boolean>(inputs.length).fill(false);
    const out = plans.some((p) => p) ? await this.fetchCatchingUp(inputs, plans, fromSegment, budget) : await this.forward(inputs, budget);
    inputs.forEach((i, n) => {
      if (out[n].highWatermark >= 0) this.catchUp?.observe(i.topicId, i.partition, out[n].highWatermark);
    });
    // Each broker honoured the budget on its own, and so did each catch-up read; keep the
    // response-wide limit (KIP-74: the first data always stays).
    let used = 0;
    out.forEach((r, n) => {
      const source = fromSegment[n] ? 'segment' : 'broker';
      m.fetchReads.inc({ source });
      if (r.bytes === 0) return;
      if (used > 0 && used + r.bytes > budget) {
        r.records = [];
        r.bytes = 0;
        return;
      }
      used += r.bytes;
      m.fetchBytes.inc({ source }, r.bytes);
    });
    return out;
  }

  /**
   * Partitions with a catch-up plan are read from segments here while their owner answers a
   * probe for them in the same request: fetch offset -1, which is below every log start, so
   * the broker answers OFFSET_OUT_OF_RANGE at once, reading nothing, with the partition's
   * current high watermark and log start (or the error any offset would get: not online,
   * moved, unknown). Those decide the answer exactly as the broker decides it: data only for
   * an offset in [log start, high watermark], and none at or above the high watermark.
   * A catch-up read that failed, or a probe answered otherwise, goes to the broker after all.
   */
  private async fetchCatchingUp(inputs: FetchInput[], plans: (CatchUpPlan | undefined)[], fromSegment: boolean[], budget: number): Promise<FetchResult[]> {
    const reads = plans.map((p, n) => {
      if (!p) return undefined;
      const limit = Math.max(1, Math.min(inputs[n].maxBytes, budget));
      return this.catchUp!.read(p, inputs[n].fetchOffset, limit).catch((err: unknown) => err as Error);
    });
    const out = await this.forward(inputs.map((i, n) => (plans[n] ? { ...i, fetchOffset: PROBE_OFFSET, maxBytes: 0 } : i)), budget);
    const again: number[] = [];
    for (let n = 0; n < inputs.length; n++) {
      const pending = reads[n];
      if (!pending) continue;
      const read = await pending;
      const probe = out[n];
      const offset = inputs[n].fetchOffset;
      if (probe.errorCode !== ErrorCode.OFFSET_OUT_OF_RANGE || probe.highWatermark < 0) {
        // An error the partition has whatever the offset stands; anything else is not a probe answer.
        if (probe.errorCode === ErrorCode.NONE || probe.errorCode === ErrorCode.OFFSET_OUT_OF_RANGE) again.push(n);
        continue;
      }
      if (offset < probe.logStartOffset || offset > probe.highWatermark) continue;
      if (read instanceof Error) {
        const reason = read instanceof CatchUpError ? read.reason : 'error';
        m.catchUpFallbacks.inc({ reason });
        this.log[reason === 'missing' ? 'debug' : 'warn']({ err: read, topicId: inputs[n].topicId, partition: inputs[n].partition, offset }, 'catch-up read failed; asking the broker');
        again.push(n);
        continue;
      }
      if (read.bytes === 0 || read.lastOffset >= probe.highWatermark) {
        again.push(n);
        continue;
      }
      out[n] = { errorCode: ErrorCode.NONE, highWatermark: probe.highWatermark, lastStableOffset: probe.lastStableOffset, logStartOffset: probe.logStartOffset, records: read.records, bytes: read.bytes };
      fromSegment[n] = true;
    }
    if (again.length > 0) {
      const res = await this.forward(again.map((n) => inputs[n]), budget);
      again.forEach((n, j) => (out[n] = res[j]));
    }
    return out;
  }

  /** Fetches from the owning brokers, one request per broker, answers in input order. */
  private async forward(inputs: FetchInput[], budget: number): Promise<FetchResult[]> {
    const out: FetchResult[] = new Array(inputs.length);
    const byBroker = new Map<number, number[]>();
    inputs.forEach((i, n) => {
      const reg = this.owner(i.topicId, i.partition);
      if (!reg || !this.topics.getById(i.topicId)) {
        out[n] = { errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1, records: [], bytes: 0 };
        return;
      }
      let list = byBroker.get(reg.id);
      if (!list) byBroker.set(reg.id, (list = []));
      list.push(n);
    });
    await Promise.all(
      [...byBroker].map(async ([brokerId, idx]) => {
        const reg = this.view.brokers.get(brokerId)!;
        const topics = new Map<string, number[]>();
        for (const n of idx) {
          const name = this.topics.getById(inputs[n].topicId)!.name;
          let list = topics.get(name);
          if (!list) topics.set(name, (list = []));
          list.push(n);
        }
        try {
          const res = await this.connections.to(reg).request<FetchResponse>(ApiKey.Fetch, FETCH_V, {
            replicaId: -1,
            maxWaitMs: 0,
            minBytes: 0,
            maxBytes: budget,
            isolationLevel: 1,
            sessionId: 0,
            sessionEpoch: -1,
            topics: [...topics].map(([topic, ns]) => ({
              topic,
              partitions: ns.map((n) => ({ partition: inputs[n].partition, fetchOffset: BigInt(inputs[n].fetchOffset), partitionMaxBytes: inputs[n].maxBytes, currentLeaderEpoch: -1, logStartOffset: -1n, lastFetchedEpoch: -1 })),
            })),
            forgottenTopicsData: [],
            rackId: '',
          });
          const answers = new Map<string, FetchResult>();
          for (const t of res.responses) {
            for (const p of t.partitions) {
              const data = p.records && recordBytes(p.records);
              const records = data && data.length > 0 ? [data] : [];
              answers.set(`${t.topic}/${p.partitionIndex}`, {
                errorCode: p.errorCode,
                highWatermark: Number(p.highWatermark),
                lastStableOffset: Number(p.lastStableOffset ?? p.highWatermark),
                logStartOffset: Number(p.logStartOffset ?? -1n),
                records,
                bytes: records.length ? records[0].length : 0,
              });
            }
          }
          for (const [name, ns] of topics) {
            for (const n of ns) {
              out[n] = answers.get(`${name}/${inputs[n].partition}`) ?? { errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1, records: [], bytes: 0 };
            }
          }
        } catch (err) {
          this.log.debug({ err, brokerId }, 'fetch from broker failed');
          for (const n of idx) out[n] = { errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1, records: [], bytes: 0 };
        }
      }),
    );
    return out;
  }

  private async ask<T>(topicId: string, partition: number, apiKey: number, version: number, body: (topic: string) => object): Promise<T | undefined> {
    const reg = this.owner(topicId, partition);
    const topic = this.topics.getById(topicId)?.name;
    if (!reg || !topic) return undefined;
    try {
      return await this.connections.to(reg).request<T>(apiKey, version, body(topic));
    } catch (err) {
      this.log.debug({ err }, 'broker request failed');
      return undefined;
    }
  }

  async listOffset(topicId: string, partition: number, timestamp: number): Promise<ListOffsetResult> {
    const res = await this.ask<ListOffsetsResponse>(topicId, partition, ApiKey.ListOffsets, 7, (name) => ({
      replicaId: -1,
      isolationLevel: 1,
      topics: [{ name, partitions: [{ partitionIndex: partition, currentLeaderEpoch: -1, timestamp: BigInt(timestamp) }] }],
    }));
    const p = res?.topics[0]?.partitions[0];
    if (!p) return { errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER, offset: -1, timestamp: -1, leaderEpoch: -1 };
    return { errorCode: p.errorCode, offset: Number(p.offset ?? -1n), timestamp: Number(p.timestamp ?? -1n), leaderEpoch: p.leaderEpoch ?? -1 };
  }

  async offsetForLeaderEpoch(topicId: string, partition: number, leaderEpoch: number): Promise<EpochEndResult> {
    const res = await this.ask<OffsetForLeaderEpochResponse>(topicId, partition, ApiKey.OffsetForLeaderEpoch, 4, (topic) => ({
      replicaId: -1,
      topics: [{ topic, partitions: [{ partition, currentLeaderEpoch: -1, leaderEpoch }] }],
    }));
    const p = res?.topics[0]?.partitions[0];
    if (!p) return { errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER, leaderEpoch: -1, endOffset: -1 };
    return { errorCode: p.errorCode, leaderEpoch: p.leaderEpoch ?? -1, endOffset: Number(p.endOffset) };
  }

  async deleteRecords(topicId: string, partition: number, offset: number): Promise<{ errorCode: number; lowWatermark: number }> {
    const res = await this.ask<DeleteRecordsResponse>(topicId, partition, ApiKey.DeleteRecords, 2, (name) => ({
      timeoutMs: 30_000,
      topics: [{ name, partitions: [{ partitionIndex: partition, offset: BigInt(offset) }] }],
    }));
    const p = res?.topics[0]?.partitions[0];
    if (!p) return { errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER, lowWatermark: -1 };
    return { errorCode: p.errorCode, lowWatermark: Number(p.lowWatermark) };
  }

  async initProducerId(): Promise<{ producerId: bigint; producerEpoch: number }> {
    // Any broker will do: producer ids come from one cluster-wide counter in the MetaStore.
    for (const reg of this.view.brokers.values()) {
      try {
        const r = await this.connections.to(reg).request<InitProducerIdResponse>(ApiKey.InitProducerId, 4, {
          transactionalId: null,
          transactionTimeoutMs: 60_000,
          producerId: -1n,
          producerEpoch: -1,
        });
        if (r.errorCode === ErrorCode.NONE) return { producerId: r.producerId, producerEpoch: r.producerEpoch };
      } catch {
        // try the next broker
      }
    }
    throw new Error('no broker could allocate a producer id');
  }

  leaderEpoch(topicId: string, partition: number): number {
    return this.owner(topicId, partition) ? this.view.epochOf(partitionUnit(topicId, partition)) : -1;
  }

  partitions(): PartitionStatus[] {
    return [];
  }

  unflushedBytes(): number {
    return 0;
  }

  rollBacklogBytes(): number {
    return 0;
  }

  whenOnline(topicId: string, count: number, timeoutMs: number): Promise<boolean> {
    const units = [];
    for (let p = 0; p < count; p++) units.push(partitionUnit(topicId, p));
    return this.view.whenAssigned(units, timeoutMs);
  }
}
