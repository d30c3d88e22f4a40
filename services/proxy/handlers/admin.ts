// Topic administration: CreateTopics, DeleteTopics, CreatePartitions and the config APIs.
// Replication factor and replica assignments are accepted for compatibility and ignored:
// durability comes from object storage, not from broker replicas.
import type { ProxyContext } from '../proxy.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { CreateTopicsRequest } from '../../protocol/messages/create-topics-request.js';
import type { CreateTopicsResponse, CreatableTopicResult } from '../../protocol/messages/create-topics-response.js';
import type { DeleteTopicsRequest } from '../../protocol/messages/delete-topics-request.js';
import type { DeleteTopicsResponse } from '../../protocol/messages/delete-topics-response.js';
import type { CreatePartitionsRequest } from '../../protocol/messages/create-partitions-request.js';
import type { CreatePartitionsResponse } from '../../protocol/messages/create-partitions-response.js';
import type { DescribeConfigsRequest } from '../../protocol/messages/describe-configs-request.js';
import type { DescribeConfigsResponse, DescribeConfigsResourceResult } from '../../protocol/messages/describe-configs-response.js';
import type { AlterConfigsRequest } from '../../protocol/messages/alter-configs-request.js';
import type { AlterConfigsResponse } from '../../protocol/messages/alter-configs-response.js';
import type { IncrementalAlterConfigsRequest } from '../../protocol/messages/incremental-alter-configs-request.js';
import type { IncrementalAlterConfigsResponse } from '../../protocol/messages/incremental-alter-configs-response.js';
import { TopicExistsError, isValidTopicName } from '../../meta/topics.js';
import { TOPIC_CONFIGS, validateTopicConfig } from '../../meta/topic-config.js';
import { ONLINE_WAIT_MS } from './topics.js';

/** The metadata store failed (unreachable, timing out): a retriable answer, not a closed connection. */
function storeFailed(ctx: ProxyContext, err: unknown, topic: string): string {
  ctx.log.warn({ err, topic }, 'metadata store failed during topic administration');
  return `metadata store unavailable: ${(err as Error).message}`;
}

const RESOURCE_TOPIC = 2;
const RESOURCE_BROKER = 4;
const SOURCE_TOPIC = 1;
const SOURCE_DEFAULT = 5;
const MAX_PARTITIONS = 10_000;

export async function createTopics(ctx: ProxyContext, req: CreateTopicsRequest): Promise<CreateTopicsResponse> {
  const seen = new Map<string, number>();
  for (const t of req.topics) seen.set(t.name, (seen.get(t.name) ?? 0) + 1);
  const topics = [];
  for (const rt of req.topics) {
    const fail = (errorCode: number, errorMessage: string): CreatableTopicResult => ({ name: rt.name, errorCode, errorMessage, numPartitions: -1, replicationFactor: -1, configs: null });
    if (seen.get(rt.name)! > 1) {
      topics.push(fail(ErrorCode.INVALID_REQUEST, 'topic named more than once in the request'));
      continue;
    }
    if (!isValidTopicName(rt.name)) {
      topics.push(fail(ErrorCode.INVALID_TOPIC_EXCEPTION, `invalid topic name ${JSON.stringify(rt.name)}`));
      continue;
    }
    const partitions = rt.numPartitions === -1 ? (rt.assignments.length || ctx.cfg.defaultPartitions) : rt.numPartitions;
    if (partitions < 1 || partitions > MAX_PARTITIONS) {
      topics.push(fail(ErrorCode.INVALID_PARTITIONS, `partition count must be within [1, ${MAX_PARTITIONS}]`));
      continue;
    }
    if (rt.replicationFactor === 0 || rt.replicationFactor < -1) {
      topics.push(fail(ErrorCode.INVALID_REPLICATION_FACTOR, 'replication factor must be positive or -1'));
      continue;
    }
    const config: Record<string, string> = {};
    for (const c of rt.configs) if (c.value !== null) config[c.name] = c.value;
    const bad = validateTopicConfig(config);
    if (bad) {
      topics.push(fail(ErrorCode.INVALID_CONFIG, bad));
      continue;
    }
    if (ctx.topics.get(rt.name)) {
      topics.push(fail(ErrorCode.TOPIC_ALREADY_EXISTS, `topic ${rt.name} already exists`));
      continue;
    }
    const configs = Object.entries(TOPIC_CONFIGS).map(([name, def]) => ({
      name,
      value: config[name] ?? def.default,
      readOnly: false,
      configSource: name in config ? SOURCE_TOPIC : SOURCE_DEFAULT,
      isSensitive: false,
    }));
    if (req.validateOnly) {
      topics.push({ name: rt.name, errorCode: ErrorCode.NONE, errorMessage: null, numPartitions: partitions, replicationFactor: 1, configs });
      continue;
    }
    try {
      const t = await ctx.topics.create(rt.name, partitions, config);
      await ctx.broker.whenOnline(t.id, partitions, Math.min(Math.max(req.timeoutMs, 0), ONLINE_WAIT_MS));
      ctx.log.info({ topic: t.name, partitions, topicId: t.id }, 'topic created');
      topics.push({ name: t.name, topicId: t.id, errorCode: ErrorCode.NONE, errorMessage: null, numPartitions: partitions, replicationFactor: 1, configs });
    } catch (err) {
      if (err instanceof TopicExistsError) topics.push(fail(ErrorCode.TOPIC_ALREADY_EXISTS, err.message));
      else topics.push(fail(ErrorCode.REQUEST_TIMED_OUT, storeFailed(ctx, err, rt.name)));
    }
  }
  return { throttleTimeMs: 0, topics };
}

export async function deleteTopics(ctx: ProxyContext, req: DeleteTopicsRequest): Promise<DeleteTopicsResponse> {
  const targets = req.topics?.length ? req.topics : (req.topicNames ?? []).map((name) => ({ name, topicId: undefined }));
  const responses = [];
  for (const target of targets) {
    const t = target.name ? ctx.topics.get(target.name) : target.topicId ? ctx.topics.getById(target.topicId) : undefined;
    if (!t) {
      const errorCode = target.name ? ErrorCode.UNKNOWN_TOPIC_OR_PARTITION : ErrorCode.UNKNOWN_TOPIC_ID;
      responses.push({ name: target.name ?? null, topicId: target.topicId, errorCode, errorMessage: null });
      continue;
    }
    try {
      await ctx.topics.delete(t.name);
    } catch (err) {
      responses.push({ name: t.name, topicId: t.id, errorCode: ErrorCode.REQUEST_TIMED_OUT, errorMessage: storeFailed(ctx, err, t.name) });
      continue;
    }
    ctx.log.info({ topic: t.name, topicId: t.id }, 'topic deleted');
    responses.push({ name: t.name, topicId: t.id, errorCode: ErrorCode.NONE, errorMessage: null });
  }
  return { throttleTimeMs: 0, responses };
}

export async function createPartitions(ctx: ProxyContext, req: CreatePartitionsRequest): Promise<CreatePartitionsResponse> {
  const results = [];
  for (const rt of req.topics) {
    const t = ctx.topics.get(rt.name);
    if (!t) {
      results.push({ name: rt.name, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, errorMessage: null });
      continue;
    }
    if (rt.count <= t.partitions || rt.count > MAX_PARTITIONS) {
      results.push({ name: rt.name, errorCode: ErrorCode.INVALID_PARTITIONS, errorMessage: `topic has ${t.partitions} partitions; the new count must be larger and at most ${MAX_PARTITIONS}` });
      continue;
    }
    if (!req.validateOnly) {
      try {
        await ctx.topics.update({ ...t, partitions: rt.count });
      } catch (err) {
        results.push({ name: rt.name, errorCode: ErrorCode.REQUEST_TIMED_OUT, errorMessage: storeFailed(ctx, err, rt.name) });
        continue;
      }
      await ctx.broker.whenOnline(t.id, rt.count, Math.min(Math.max(req.timeoutMs, 0), ONLINE_WAIT_MS));
    }
    results.push({ name: rt.name, errorCode: ErrorCode.NONE, errorMessage: null });
  }
  return { throttleTimeMs: 0, results };
}

export async function describeConfigs(ctx: ProxyContext, req: DescribeConfigsRequest): Promise<DescribeConfigsResponse> {
  const results = req.resources.map((res) => {
    const base = { resourceType: res.resourceType, resourceName: res.resourceName };
    if (res.resourceType === RESOURCE_BROKER) return { errorCode: ErrorCode.NONE, errorMessage: null, ...base, configs: [] };
    if (res.resourceType !== RESOURCE_TOPIC) return { errorCode: ErrorCode.INVALID_REQUEST, errorMessage: 'only topic and broker resources are supported', ...base, configs: [] };
    const t = ctx.topics.get(res.resourceName);
    if (!t) return { errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, errorMessage: null, ...base, configs: [] };
    const configs: DescribeConfigsResourceResult[] = [];
    for (const [name, def] of Object.entries(TOPIC_CONFIGS)) {
      if (res.configurationKeys && !res.configurationKeys.includes(name)) continue;
      const set = name in t.config;
      configs.push({
        name,
        value: set ? t.config[name] : def.default,
        readOnly: false,
        isDefault: !set,
        configSource: set ? SOURCE_TOPIC : SOURCE_DEFAULT,
        isSensitive: false,
        synonyms: [],
        configType: 2,
        documentation: req.includeDocumentation ? def.doc : null,
      });
    }
    return { errorCode: ErrorCode.NONE, errorMessage: null, ...base, configs };
  });
  return { throttleTimeMs: 0, results };
}

type Change = { name: string; op: number; value: string | null };
const SET = 0;
const DELETE = 1;

async function alter(ctx: ProxyContext, resources: { resourceType: number; resourceName: string; changes: Change[] }[], validateOnly: boolean, replace: boolean) {
  const responses = [];
  for (const res of resources) {
    const base = { resourceType: res.resourceType, resourceName: res.resourceName };
    if (res.resourceType !== RESOURCE_TOPIC) {
      responses.push({ errorCode: ErrorCode.INVALID_REQUEST, errorMessage: 'only topic configs can be altered', ...base });
      continue;
    }
    const t = ctx.topics.get(res.resourceName);
    if (!t) {
      responses.push({ errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, errorMessage: null, ...base });
      continue;
    }
    const config: Record<string, string> = replace ? {} : { ...t.config };
    let bad: string | undefined;
    for (const c of res.changes) {
      if (c.op === SET && c.value !== null) config[c.name] = c.value;
      else if (c.op === DELETE || c.value === null) delete config[c.name];
      else bad = `config operation ${c.op} is not supported for ${c.name}`;
    }
    bad ??= validateTopicConfig(Object.fromEntries(res.changes.map((c) => [c.name, c.value])));
    if (bad) {
      responses.push({ errorCode: ErrorCode.INVALID_CONFIG, errorMessage: bad, ...base });
      continue;
    }
    if (!validateOnly) {
      try {
        await ctx.topics.update({ ...t, config });
      } catch (err) {
        responses.push({ errorCode: ErrorCode.REQUEST_TIMED_OUT, errorMessage: storeFailed(ctx, err, t.name), ...base });
        continue;
      }
    }
    responses.push({ errorCode: ErrorCode.NONE, errorMessage: null, ...base });
  }
  return responses;
}

export async function alterConfigs(ctx: ProxyContext, req: AlterConfigsRequest): Promise<AlterConfigsResponse> {
  const resources = req.resources.map((r) => ({ ...r, changes: r.configs.map((c) => ({ name: c.name, op: SET, value: c.value })) }));
  return { throttleTimeMs: 0, responses: await alter(ctx, resources, req.validateOnly, true) };
}

export async function incrementalAlterConfigs(ctx: ProxyContext, req: IncrementalAlterConfigsRequest): Promise<IncrementalAlterConfigsResponse> {
  const resources = req.resources.map((r) => ({ ...r, changes: r.configs.map((c) => ({ name: c.name, op: c.configOperation, value: c.value })) }));
  return { throttleTimeMs: 0, responses: await alter(ctx, resources, req.validateOnly, false) };
}
