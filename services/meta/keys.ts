// Every metadata key Skiff uses, in one place (DESIGN.md §6). Names are URI-encoded so a
// topic or group name can never escape its prefix.

const enc = encodeURIComponent;
const ROOT = '/skiff';

export const Keys = {
  cluster: `${ROOT}/cluster`,
  topicsPrefix: `${ROOT}/topics/`,
  topic: (name: string) => `${ROOT}/topics/${enc(name)}`,
  brokersPrefix: `${ROOT}/brokers/`,
  broker: (id: number) => `${ROOT}/brokers/${id}`,
  proxiesPrefix: `${ROOT}/proxies/`,
  proxy: (id: number) => `${ROOT}/proxies/${id}`,
  controller: `${ROOT}/controller`,
  assignPrefix: `${ROOT}/assign/`,
  assign: (topicId: string, p: number) => `${ROOT}/assign/${topicId}/${p}`,
  /** Assignment of a group-coordinator slot; groups hash onto slots. */
  assignSlot: (slot: number) => `${ROOT}/assign/__groups/${slot}`,
  slotLock: (slot: number) => `${ROOT}/locks/__groups/${slot}`,
  drainingPrefix: `${ROOT}/draining/`,
  draining: (id: number) => `${ROOT}/draining/${id}`,
  lock: (topicId: string, p: number) => `${ROOT}/locks/${topicId}/${p}`,
  walPrefix: `${ROOT}/wal/`,
  walOf: (brokerId: number) => `${ROOT}/wal/${brokerId}/`,
  /** `name` is the WAL object's name, which sorts in commit order. */
  wal: (brokerId: number, name: string) => `${ROOT}/wal/${brokerId}/${name}`,
  ckptPrefix: `${ROOT}/ckpt/`,
  ckpt: (topicId: string, p: number) => `${ROOT}/ckpt/${topicId}/${p}`,
  ckptOfTopic: (topicId: string) => `${ROOT}/ckpt/${topicId}/`,
  producerIdBlock: `${ROOT}/producer-ids`,
  groupsPrefix: `${ROOT}/groups/`,
} as const;
