// Topic resolution shared by the handlers: lookup by name or id, and auto-creation on first
// use when `auto.create.topics` is on.
import type { ProxyContext } from '../proxy.js';
import { TopicExistsError, isValidTopicName, type TopicRecord } from '../../meta/topics.js';

export async function ensureTopic(ctx: ProxyContext, name: string): Promise<TopicRecord | undefined> {
  const existing = ctx.topics.get(name);
  if (existing) return existing;
  if (!ctx.cfg.autoCreateTopics || !isValidTopicName(name)) return undefined;
  try {
    const t = await ctx.topics.create(name, ctx.cfg.defaultPartitions, {});
    ctx.log.info({ topic: name, partitions: t.partitions }, 'topic auto-created');
    return t;
  } catch (err) {
    if (err instanceof TopicExistsError) return ctx.topics.get(name);
    throw err;
  }
}
