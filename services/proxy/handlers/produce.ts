// Produce: resolve each topic, hand each partition's record set to its owning broker,
// merge the answers. acks=0 gets no response at all (KAFKA-COMPAT.md item 2).
import type { ProxyContext } from '../proxy.js';
import type { RequestContext } from '../server.js';
import { ErrorCode } from '../../protocol/errors.js';
import { recordBytes } from '../../protocol/primitives.js';
import type { ProduceRequest } from '../../protocol/messages/produce-request.js';
import type { ProduceResponse, PartitionProduceResponse } from '../../protocol/messages/produce-response.js';
import { isValidTopicName } from '../../meta/topics.js';
import { topicConfigValue } from '../../meta/topic-config.js';
import { ensureTopic } from './topics.js';

const failed = (index: number, errorCode: number, errorMessage: string | null = null): PartitionProduceResponse => ({
  index,
  errorCode,
  baseOffset: -1n,
  logAppendTimeMs: -1n,
  logStartOffset: -1n,
  errorMessage,
});

export async function produce(ctx: ProxyContext, req: ProduceRequest, rc: RequestContext): Promise<ProduceResponse | undefined> {
  const acks = req.acks;
  const validAcks = acks === 0 || acks === 1 || acks === -1;
  if (req.transactionalId != null) ctx.log.warn({ client: rc.clientId }, 'transactional produce is not supported');
  const responses = await Promise.all(
    req.topicData.map(async (td) => {
      const name = td.name;
      const t = isValidTopicName(name) ? await ensureTopic(ctx, name) : undefined;
      const partitionResponses = await Promise.all(
        td.partitionData.map(async (pd): Promise<PartitionProduceResponse> => {
          if (!validAcks) return failed(pd.index, ErrorCode.INVALID_REQUIRED_ACKS);
          if (req.transactionalId != null) return failed(pd.index, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, 'transactions are not supported');
          if (!isValidTopicName(name)) return failed(pd.index, ErrorCode.INVALID_TOPIC_EXCEPTION, `invalid topic name ${JSON.stringify(name)}`);
          if (!t || pd.index < 0 || pd.index >= t.partitions) return failed(pd.index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
          // Decoded from the request: one Buffer (a subarray of the frame, nothing is copied).
          const records = pd.records && recordBytes(pd.records);
          if (!records || records.length === 0) return failed(pd.index, ErrorCode.INVALID_RECORD, 'empty record set');
          const durable = acks === -1 || topicConfigValue(t.config, 'skiff.require.durable') === 'true';
          const maxBytes = Number(topicConfigValue(t.config, 'max.message.bytes'));
          if (records.length > maxBytes) {
            return failed(pd.index, ErrorCode.MESSAGE_TOO_LARGE, `record set of ${records.length} bytes exceeds max.message.bytes ${maxBytes}`);
          }
          const r = await ctx.broker.produce(t.id, pd.index, records, durable ? -1 : acks, req.timeoutMs);
          if (r.errorCode !== ErrorCode.NONE) {
            ctx.log.debug({ topic: name, partition: pd.index, errorCode: r.errorCode, msg: r.errorMessage }, 'produce refused');
          }
          return {
            index: pd.index,
            errorCode: r.errorCode,
            baseOffset: BigInt(r.baseOffset),
            logAppendTimeMs: -1n,
            logStartOffset: BigInt(r.logStartOffset),
            errorMessage: r.errorMessage ?? null,
          };
        }),
      );
      return { name, partitionResponses };
    }),
  );
  if (acks === 0) return undefined;
  return { responses, throttleTimeMs: 0 };
}
