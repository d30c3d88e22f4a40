// Topic resolution shared by the handlers: lookup by name or id, and auto-creation on first
// use when `auto.create.topics` is on.
import type { ProxyContext } from '../proxy.js';
import { TopicExistsError, isValidTopicName, type TopicRecord } from '../../meta/topics.js';

/** How long topic creation waits for the new partitions to come online before answering. */
export const ONLINE_WAIT_MS = 5000;

export async function ensureTopic(ctx: ProxyContext, name: string): Promise<TopicRecord | undefined> {
  const existing = ctx.topics.get(name);
  if (existing) return existing;
  if (!ctx.cfg.autoCreateTopics || !isValidTopicName(name)) return undefined;
  try {
    const t = await ctx.topics.create(name, ctx.cfg.defaultPartitions, {});
    ctx.log.info({ topic: name, partitions: t.partitions }, 'topic auto-created');
    await ctx.broker.whenOnline(t.id, t.partitions, ONLINE_WAIT_MS);
    return t;
  } catch (err) {
    if (err instanceof TopicExistsError) return ctx.topics.get(name);
    // The metadata store is unreachable: the client sees an unknown topic and retries.
    ctx.log.warn({ err, topic: name }, 'auto-creating a topic failed');
    return undefined;
  }
}
