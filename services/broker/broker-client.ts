// The BrokerClient port: everything a proxy asks of the broker that owns a partition.
// Adapters: the Broker itself (embedded, a direct call) and, in cluster mode, a TCP client.
// Offsets are plain numbers here (exact up to 2^53); the proxy converts at the wire.

export interface ProduceResult {
  errorCode: number;
  baseOffset: number;
  logStartOffset: number;
  errorMessage?: string;
}

export interface FetchInput {
  topicId: string;
  partition: number;
  fetchOffset: number;
  maxBytes: number;
}

export interface FetchResult {
  errorCode: number;
  highWatermark: number;
  lastStableOffset: number;
  logStartOffset: number;
  records: Buffer[];
  bytes: number;
}

export interface ListOffsetResult {
  errorCode: number;
  offset: number;
  timestamp: number;
  leaderEpoch: number;
}

export interface EpochEndResult {
  errorCode: number;
  leaderEpoch: number;
  endOffset: number;
}

export interface PartitionStatus {
  topic: string;
  topicId: string;
  partition: number;
  state: string;
  highWatermark: number;
  logStartOffset: number;
  nextOffset: number;
  leaderEpoch: number;
  extents: number;
  cachedBatches: number;
}

export interface BrokerClient {
  /** acks: 0/1 answer after the append, -1 after the commit. */
  produce(topicId: string, partition: number, records: Buffer, acks: number, timeoutMs: number): Promise<ProduceResult>;
  /** Reads committed data; `budget` is the response-wide byte limit (KIP-74: the first batch always fits). */
  fetch(inputs: FetchInput[], budget: number): Promise<FetchResult[]>;
  listOffset(topicId: string, partition: number, timestamp: number): Promise<ListOffsetResult>;
  offsetForLeaderEpoch(topicId: string, partition: number, leaderEpoch: number): Promise<EpochEndResult>;
  deleteRecords(topicId: string, partition: number, offset: number): Promise<{ errorCode: number; lowWatermark: number }>;
  initProducerId(): Promise<{ producerId: bigint; producerEpoch: number }>;
  /** Leader epoch per partition, for Metadata; -1 when the partition is not online. */
  leaderEpoch(topicId: string, partition: number): number;
  partitions(): PartitionStatus[];
  /** Resolves true once partitions [0, count) of the topic are online, false after timeoutMs. */
  whenOnline(topicId: string, count: number, timeoutMs: number): Promise<boolean>;
  /** Bytes appended but not yet durable: the proxy stops reading producers above a bound. */
  unflushedBytes(): number;
  /** WAL bytes beyond a full segment in partitions waiting to roll: the same, for segment rolls. */
  rollBacklogBytes(): number;
}
