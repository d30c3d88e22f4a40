// Assignments: which broker owns each partition and each group-coordinator slot, with an
// epoch that grows on every move (it is the partition's leader epoch). Written by the
// controller, watched by brokers (to open and drain) and proxies (to route).
import { crc32c } from '../protocol/native.js';
import { Keys } from '../meta/keys.js';

/** Groups hash onto this many coordinator slots, owned like partitions. */
export const GROUP_SLOTS = 16;

export interface Assignment {
  broker: number;
  epoch: number;
}

/** A unit is `<topicId>/<partition>` or `__groups/<slot>`. */
export type Unit = string;

export const GROUPS_UNIT = '__groups';

export function slotOf(groupId: string): number {
  return crc32c(Buffer.from(groupId, 'utf8')) % GROUP_SLOTS;
}

export const slotUnit = (slot: number): Unit => `${GROUPS_UNIT}/${slot}`;
export const partitionUnit = (topicId: string, p: number): Unit => `${topicId}/${p}`;

export function unitOfKey(key: string): Unit {
  return key.slice(Keys.assignPrefix.length);
}

export function keyOfUnit(unit: Unit): string {
  return Keys.assignPrefix + unit;
}

export function parseUnit(unit: Unit): { kind: 'slot'; slot: number } | { kind: 'partition'; topicId: string; partition: number } {
  const cut = unit.lastIndexOf('/');
  const head = unit.slice(0, cut);
  const n = Number(unit.slice(cut + 1));
  return head === GROUPS_UNIT ? { kind: 'slot', slot: n } : { kind: 'partition', topicId: head, partition: n };
}

export function encodeAssignment(a: Assignment): Buffer {
  return Buffer.from(JSON.stringify(a));
}

export function decodeAssignment(b: Buffer): Assignment {
  return JSON.parse(b.toString()) as Assignment;
}

/** Registration of a broker or proxy: where to reach it. */
export interface Registration {
  id: number;
  host: string;
  port: number;
  httpPort: number;
  startedAt: number;
}
