// ListOffsets, OffsetForLeaderEpoch, DeleteRecords and InitProducerId: per-partition
// questions answered by the owning broker.
import type { ProxyContext } from '../proxy.js';
import type { RequestContext } from '../server.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { ListOffsetsRequest } from '../../protocol/messages/list-offsets-request.js';
import type { ListOffsetsResponse } from '../../protocol/messages/list-offsets-response.js';
import type { OffsetForLeaderEpochRequest } from '../../protocol/messages/offset-for-leader-epoch-request.js';
import type { OffsetForLeaderEpochResponse } from '../../protocol/messages/offset-for-leader-epoch-response.js';
import type { DeleteRecordsRequest } from '../../protocol/messages/delete-records-request.js';
import type { DeleteRecordsResponse } from '../../protocol/messages/delete-records-response.js';
import type { InitProducerIdRequest } from '../../protocol/messages/init-producer-id-request.js';
import type { InitProducerIdResponse } from '../../protocol/messages/init-producer-id-response.js';

/**
 * Asks `answer` about every requested partition of every topic, all at once, and keeps the
 * request's order; a topic or partition that does not exist gets `unknown` instead.
 */
async function perPartition<RT, RP, AP>(
  ctx: ProxyContext,
  topics: RT[],
  shape: { name: (rt: RT) => string; partitions: (rt: RT) => RP[]; index: (rp: RP) => number },
  answer: (topicId: string, rp: RP) => Promise<AP>,
  unknown: (rp: RP) => AP,
): Promise<{ rt: RT; answers: AP[] }[]> {
  return Promise.all(
    topics.map(async (rt) => {
      const t = ctx.topics.get(shape.name(rt));
      const answers = await Promise.all(
        shape.partitions(rt).map((rp) => {
          const index = shape.index(rp);
          return !t || index < 0 || index >= t.partitions ? unknown(rp) : answer(t.id, rp);
        }),
      );
      return { rt, answers };
    }),
  );
}

export async function listOffsets(ctx: ProxyContext, req: ListOffsetsRequest, rc: RequestContext): Promise<ListOffsetsResponse> {
  type RT = ListOffsetsRequest['topics'][number];
  type RP = RT['partitions'][number];
  const answered = await perPartition(
    ctx,
    req.topics,
    { name: (rt: RT) => rt.name, partitions: (rt) => rt.partitions, index: (rp: RP) => rp.partitionIndex },
    async (topicId, rp) => {
      const r = await ctx.broker.listOffset(topicId, rp.partitionIndex, Number(rp.timestamp));
      return {
        partitionIndex: rp.partitionIndex,
        errorCode: r.errorCode,
        // v0 answers with a list of segment start offsets; the one offset is enough for clients.
        oldStyleOffsets: rc.apiVersion === 0 && r.offset >= 0 ? [BigInt(r.offset)] : [],
        timestamp: BigInt(r.timestamp),
        offset: BigInt(r.offset),
        leaderEpoch: r.leaderEpoch,
      };
    },
    (rp) => ({ partitionIndex: rp.partitionIndex, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, oldStyleOffsets: [], timestamp: -1n, offset: -1n, leaderEpoch: -1 }),
  );
  return { throttleTimeMs: 0, topics: answered.map(({ rt, answers }) => ({ name: rt.name, partitions: answers })) };
}

export async function offsetForLeaderEpoch(ctx: ProxyContext, req: OffsetForLeaderEpochRequest): Promise<OffsetForLeaderEpochResponse> {
  type RT = OffsetForLeaderEpochRequest['topics'][number];
  type RP = RT['partitions'][number];
  const answered = await perPartition(
    ctx,
    req.topics,
    { name: (rt: RT) => rt.topic, partitions: (rt) => rt.partitions, index: (rp: RP) => rp.partition },
    async (topicId, rp) => {
      const r = await ctx.broker.offsetForLeaderEpoch(topicId, rp.partition, rp.leaderEpoch);
      return { errorCode: r.errorCode, partition: rp.partition, leaderEpoch: r.leaderEpoch, endOffset: BigInt(r.endOffset) };
    },
    (rp) => ({ errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, partition: rp.partition, leaderEpoch: -1, endOffset: -1n }),
  );
  return { throttleTimeMs: 0, topics: answered.map(({ rt, answers }) => ({ topic: rt.topic, partitions: answers })) };
}

export async function deleteRecords(ctx: ProxyContext, req: DeleteRecordsRequest): Promise<DeleteRecordsResponse> {
  type RT = DeleteRecordsRequest['topics'][number];
  type RP = RT['partitions'][number];
  const answered = await perPartition(
    ctx,
    req.topics,
    { name: (rt: RT) => rt.name, partitions: (rt) => rt.partitions, index: (rp: RP) => rp.partitionIndex },
    async (topicId, rp) => {
      const r = await ctx.broker.deleteRecords(topicId, rp.partitionIndex, Number(rp.offset));
      return { partitionIndex: rp.partitionIndex, lowWatermark: BigInt(r.lowWatermark), errorCode: r.errorCode };
    },
    (rp) => ({ partitionIndex: rp.partitionIndex, lowWatermark: -1n, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION }),
  );
  return { throttleTimeMs: 0, topics: answered.map(({ rt, answers }) => ({ name: rt.name, partitions: answers })) };
}

export async function initProducerId(ctx: ProxyContext, req: InitProducerIdRequest, rc: RequestContext): Promise<InitProducerIdResponse> {
  if (req.transactionalId != null) {
    ctx.log.warn({ client: rc.clientId, transactionalId: req.transactionalId }, 'transactions are not supported');
    return { throttleTimeMs: 0, errorCode: ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, producerId: -1n, producerEpoch: -1 };
  }
  // KIP-360: a producer that already has an id asks for an epoch bump to reset its sequences.
  if (req.producerId !== undefined && req.producerId >= 0n && (req.producerEpoch ?? -1) >= 0) {
    const epoch = req.producerEpoch! + 1;
    if (epoch <= 32767) return { throttleTimeMs: 0, errorCode: ErrorCode.NONE, producerId: req.producerId, producerEpoch: epoch };
  }
  try {
    const r = await ctx.broker.initProducerId();
    return { throttleTimeMs: 0, errorCode: ErrorCode.NONE, producerId: r.producerId, producerEpoch: r.producerEpoch };
  } catch (err) {
    ctx.log.warn({ err }, 'no producer id could be allocated');
    return { throttleTimeMs: 0, errorCode: ErrorCode.COORDINATOR_NOT_AVAILABLE, producerId: -1n, producerEpoch: -1 };
  }
}
