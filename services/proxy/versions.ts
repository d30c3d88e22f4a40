// The API versions Skiff advertises, and so implements fully. Floors are 0 where clients
// probe a version to switch a feature on (KAFKA-COMPAT.md items 5-8); ceilings stop where
// a version would bring semantics Skiff does not have (KIP-848 member epochs, KIP-890).
import { ApiKey } from '../protocol/messages/api-keys.js';

export const SUPPORTED: ReadonlyMap<number, readonly [min: number, max: number]> = new Map([
  [ApiKey.Produce, [0, 11]],
  [ApiKey.Fetch, [0, 16]],
  [ApiKey.ListOffsets, [0, 9]],
  [ApiKey.Metadata, [0, 12]],
  [ApiKey.OffsetCommit, [0, 8]],
  [ApiKey.OffsetFetch, [0, 8]],
  [ApiKey.FindCoordinator, [0, 5]],
  [ApiKey.JoinGroup, [0, 9]],
  [ApiKey.Heartbeat, [0, 4]],
  [ApiKey.LeaveGroup, [0, 5]],
  [ApiKey.SyncGroup, [0, 5]],
  [ApiKey.DescribeGroups, [0, 5]],
  [ApiKey.ListGroups, [0, 4]],
  [ApiKey.ApiVersions, [0, 4]],
  [ApiKey.CreateTopics, [0, 7]],
  [ApiKey.DeleteTopics, [0, 6]],
  [ApiKey.DeleteRecords, [0, 2]],
  [ApiKey.InitProducerId, [0, 5]],
  [ApiKey.OffsetForLeaderEpoch, [0, 4]],
  [ApiKey.DescribeConfigs, [0, 4]],
  [ApiKey.AlterConfigs, [0, 2]],
  [ApiKey.CreatePartitions, [0, 3]],
  [ApiKey.DeleteGroups, [0, 2]],
  [ApiKey.IncrementalAlterConfigs, [0, 1]],
  [ApiKey.DescribeCluster, [0, 1]],
] as const);

export function isSupported(apiKey: number, version: number): boolean {
  const r = SUPPORTED.get(apiKey);
  return r !== undefined && version >= r[0] && version <= r[1];
}
