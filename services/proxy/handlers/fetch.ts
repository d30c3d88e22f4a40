// Fetch with long-poll: read committed data; if fewer than minBytes are there, park until a
// commit notification for one of the partitions arrives or maxWaitMs passes. Sessions
// (KIP-227) are declined: every response carries session id 0, which clients accept and
// answer with full fetches (KAFKA-COMPAT.md item 23).
import type { ProxyContext } from '../proxy.js';
import type { RequestContext } from '../server.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { FetchRequest } from '../../protocol/messages/fetch-request.js';
import type { FetchResponse, FetchableTopicResponse, PartitionData } from '../../protocol/messages/fetch-response.js';
import type { FetchInput, FetchResult } from '../../broker/broker-client.js';

const EMPTY = Buffer.alloc(0);

interface Slot {
  topicIndex: number;
  partition: number;
  input?: FetchInput;
  errorCode?: number;
}

export async function fetch(ctx: ProxyContext, req: FetchRequest, rc: RequestContext): Promise<FetchResponse> {
  const byId = rc.apiVersion >= 13;
  if ((req.sessionId ?? 0) !== 0) {
    return { throttleTimeMs: 0, errorCode: ErrorCode.FETCH_SESSION_ID_NOT_FOUND, sessionId: 0, responses: [] };
  }
  const slots: Slot[] = [];
  const inputs: FetchInput[] = [];
  req.topics.forEach((rt, topicIndex) => {
    const t = byId ? ctx.topics.getById(rt.topicId ?? '') : ctx.topics.get(rt.topic ?? '');
    for (const rp of rt.partitions) {
      if (!t || rp.partition < 0 || rp.partition >= t.partitions) {
        slots.push({ topicIndex, partition: rp.partition, errorCode: byId && !t ? ErrorCode.UNKNOWN_TOPIC_ID : ErrorCode.UNKNOWN_TOPIC_OR_PARTITION });
        continue;
      }
      const input = { topicId: t.id, partition: rp.partition, fetchOffset: Number(rp.fetchOffset), maxBytes: rp.partitionMaxBytes };
      inputs.push(input);
      slots.push({ topicIndex, partition: rp.partition, input });
    }
  });
  const budget = rc.apiVersion >= 3 ? (req.maxBytes ?? 0x7fffffff) : 0x7fffffff;
  const deadline = Date.now() + Math.max(0, req.maxWaitMs);
  const parked = req.maxWaitMs > 0 && req.minBytes > 0 ? ctx.hw.park(inputs.map((i) => `${i.topicId}/${i.partition}`)) : undefined;
  let results: FetchResult[];
  try {
    for (;;) {
      results = await ctx.broker.fetch(inputs, budget);
      let bytes = 0;
      let failed = false;
      for (const r of results) {
        bytes += r.bytes;
        if (r.errorCode !== ErrorCode.NONE) failed = true;
      }
      const left = deadline - Date.now();
      if (!parked || bytes >= req.minBytes || failed || left <= 0) break;
      await parked.wait(left);
    }
  } finally {
    parked?.release();
  }
  const responses: FetchableTopicResponse[] = req.topics.map((rt) => ({ topic: rt.topic, topicId: rt.topicId, partitions: [] as PartitionData[] }));
  let next = 0;
  for (const s of slots) {
    const out = responses[s.topicIndex].partitions;
    if (!s.input) {
      out.push({ partitionIndex: s.partition, errorCode: s.errorCode!, highWatermark: -1n, lastStableOffset: -1n, logStartOffset: -1n, abortedTransactions: [], preferredReadReplica: -1, records: EMPTY });
      continue;
    }
    const r = results![next++];
    out.push({
      partitionIndex: s.partition,
      errorCode: r.errorCode,
      highWatermark: BigInt(r.highWatermark),
      // No transactions: the last stable offset is the high watermark (KAFKA-COMPAT.md item 24).
      lastStableOffset: BigInt(r.lastStableOffset),
      logStartOffset: BigInt(r.logStartOffset),
      abortedTransactions: [],
      preferredReadReplica: -1,
      // The cached batches go to the socket as they are, one chunk each: no copy.
      records: r.records.length === 0 ? EMPTY : r.records.length === 1 ? r.records[0] : r.records,
    });
  }
  return { throttleTimeMs: 0, errorCode: ErrorCode.NONE, sessionId: 0, responses };
}
