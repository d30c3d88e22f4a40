// GroupService: what the proxy asks of group coordination. The GroupCoordinator is one
// implementation (embedded: all groups in one); SlotGroups (cluster: one coordinator per
// owned slot) and the proxy's RemoteGroups (forwarding to the slot's broker) are others.
import type { GroupCoordinator } from './group-coordinator.js';

export type GroupService = Pick<
  GroupCoordinator,
  'joinGroup' | 'syncGroup' | 'heartbeat' | 'leaveGroup' | 'commitOffsets' | 'fetchOffsets' | 'describeGroups' | 'listGroups' | 'deleteGroups'
>;
