// Topic configuration: the keys Skiff understands, their defaults and validation. Unknown
// keys and bad values are refused with INVALID_CONFIG rather than stored and ignored.

export interface ConfigDef {
  default: string;
  validate: (v: string) => boolean;
  doc: string;
}

const long = (min: number) => (v: string) => /^-?\d+$/.test(v) && Number(v) >= min;
const oneOf = (...xs: string[]) => (v: string) => xs.includes(v);

export const TOPIC_CONFIGS: Record<string, ConfigDef> = {
  'cleanup.policy': { default: 'delete', validate: oneOf('delete'), doc: 'Only delete is supported (no compaction).' },
  'retention.ms': { default: '604800000', validate: long(-1), doc: 'Delete whole segments older than this; -1 keeps forever.' },
  'retention.bytes': { default: '-1', validate: long(-1), doc: 'Delete oldest segments beyond this size; -1 for no limit.' },
  'segment.bytes': { default: '134217728', validate: long(1024), doc: 'Roll a segment object after this many bytes, or after half the broker cache (--cache-bytes) if that is smaller.' },
  'segment.ms': { default: '3600000', validate: long(1), doc: 'Roll a segment object after this long.' },
  'max.message.bytes': { default: '1048588', validate: long(0), doc: 'Largest record batch accepted.' },
  'message.timestamp.type': { default: 'CreateTime', validate: oneOf('CreateTime'), doc: 'Only CreateTime is supported.' },
  'compression.type': { default: 'producer', validate: oneOf('producer'), doc: 'Batches are stored as the producer compressed them.' },
  'min.insync.replicas': { default: '1', validate: long(1), doc: 'Accepted for compatibility; durability comes from object storage.' },
  'skiff.require.durable': { default: 'false', validate: oneOf('true', 'false'), doc: 'Answer every produce only after commit, whatever acks asks.' },
};

/** Returns an error message for the first invalid entry, or undefined. */
export function validateTopicConfig(config: Record<string, string | null | undefined>): string | undefined {
  for (const [k, v] of Object.entries(config)) {
    const def = TOPIC_CONFIGS[k];
    if (!def) return `unknown topic config ${k}`;
    if (v == null) continue;
    if (!def.validate(v)) return `invalid value ${JSON.stringify(v)} for ${k}`;
  }
  return undefined;
}

export function topicConfigValue(config: Record<string, string>, key: keyof typeof TOPIC_CONFIGS & string): string {
  return config[key] ?? TOPIC_CONFIGS[key].default;
}
