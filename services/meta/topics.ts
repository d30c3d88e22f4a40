// The topic registry: topic records in the MetaStore, mirrored in memory through a prefix
// watch so that lookups on the request path never wait for the store.
import { randomUUID } from 'node:crypto';
import type { MetaStore, Watch } from './meta-store.js';
import { Keys } from './keys.js';

export interface TopicRecord {
  name: string;
  /** Kafka topic id (UUID), stable for the topic's life; a re-created topic gets a new one. */
  id: string;
  partitions: number;
  config: Record<string, string>;
  createdAt: number;
}

export class TopicExistsError extends Error {
  constructor(readonly topic: string) {
    super(`topic ${topic} already exists`);
    this.name = 'TopicExistsError';
  }
}

const LEGAL = /^[a-zA-Z0-9._-]+$/;

/** Kafka's rule: 1..249 characters of [a-zA-Z0-9._-], and not '.' or '..'. */
export function isValidTopicName(name: string): boolean {
  return name.length > 0 && name.length <= 249 && LEGAL.test(name) && name !== '.' && name !== '..';
}

type Listener = (event: 'created' | 'deleted' | 'updated', topic: TopicRecord) => void;

export class TopicRegistry {
  private byName = new Map<string, TopicRecord>();
  private byId = new Map<string, TopicRecord>();
  private listeners = new Set<Listener>();
  private watch?: Watch;

  private constructor(private readonly meta: MetaStore) {}

  static async open(meta: MetaStore): Promise<TopicRegistry> {
    const reg = new TopicRegistry(meta);
    // Watch first, then load: an event racing the load is applied twice, which is harmless.
    reg.watch = await meta.watchPrefix(Keys.topicsPrefix, (ev) => {
      if (ev.type === 'put' && ev.value) reg.apply(JSON.parse(ev.value.toString()) as TopicRecord);
      else if (ev.type === 'delete') reg.forget(decodeURIComponent(ev.key.slice(Keys.topicsPrefix.length)));
    });
    for (const kv of await meta.getPrefix(Keys.topicsPrefix)) reg.apply(JSON.parse(kv.value.toString()) as TopicRecord);
    return reg;
  }

  private apply(t: TopicRecord): void {
    const old = this.byName.get(t.name);
    if (old && old.id !== t.id) this.byId.delete(old.id);
    this.byName.set(t.name, t);
    this.byId.set(t.id, t);
    const kind = !old ? 'created' : old.id !== t.id ? 'created' : 'updated';
    if (!old || old.id !== t.id || old.partitions !== t.partitions || JSON.stringify(old.config) !== JSON.stringify(t.config)) {
      for (const l of this.listeners) l(kind, t);
    }
  }

  private forget(name: string): void {
    const t = this.byName.get(name);
    if (!t) return;
    this.byName.delete(name);
    this.byId.delete(t.id);
    for (const l of this.listeners) l('deleted', t);
  }

  onChange(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  get(name: string): TopicRecord | undefined {
    return this.byName.get(name);
  }

  getById(id: string): TopicRecord | undefined {
    return this.byId.get(id);
  }

  list(): TopicRecord[] {
    return [...this.byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Creates the topic if no topic of that name exists; atomic across processes. */
  async create(name: string, partitions: number, config: Record<string, string>): Promise<TopicRecord> {
    const rec: TopicRecord = { name, id: randomUUID(), partitions, config, createdAt: Date.now() };
    const key = Keys.topic(name);
    const res = await this.meta.txn(
      [{ key, target: 'exists', value: false }],
      [{ type: 'put', key, value: Buffer.from(JSON.stringify(rec)) }],
    );
    if (!res.succeeded) throw new TopicExistsError(name);
    this.apply(rec);
    return rec;
  }

  async update(rec: TopicRecord): Promise<void> {
    await this.meta.put(Keys.topic(rec.name), Buffer.from(JSON.stringify(rec)));
    this.apply(rec);
  }

  async delete(name: string): Promise<TopicRecord | undefined> {
    const t = this.byName.get(name);
    if (!t) return undefined;
    await this.meta.delete(Keys.topic(name));
    this.forget(name);
    return t;
  }

  async close(): Promise<void> {
    await this.watch?.close();
  }
}
