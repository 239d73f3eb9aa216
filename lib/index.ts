/**
 * sharedstruct: share one JSON struct between many Node.js processes through etcd, ZooKeeper or
 * memory. This module is the public surface; everything else is internal.
 */
export { connect } from './connect.js';
export { Client, type ClientEvents, type ExpectOptions } from './client.js';
export {
  SharedStruct,
  type StructStat,
  type StructEvents,
  type UpdateOptions,
  type ChangesOptions,
  type WriteResult,
  type WriteLockInfo,
  type Member,
} from './struct.js';
export type { ChangeEvent, ChangeOrigin } from './fanout.js';
export { Lock, type LockOptions } from './lock.js';
export { Election, type ElectionOptions, type ElectionEvents, type Leader, type Leadership } from './election.js';
export { Group, type MemberChange } from './group.js';
export {
  Inspector,
  type StructInfo,
  type QueueEntry,
  type LockInfo,
  type ElectionInfo,
  type StructVersion,
  type StructHistory,
  type SessionInfo,
} from './inspect.js';
export {
  DurableServer,
  type ServerOptions,
  type ServerEvents,
  type ServeOptions,
  type Consumer,
  type HandleContext,
  type LockedContext,
  type MessageInfo,
  type QueuedMessage,
  type DeadLetter,
} from './server.js';
export { safetyMarginMs } from './queue.js';
export { applyChanges, diffValues, type Change, type Path } from './diff.js';
export { SharedStructError, isSharedStructError, ErrorCodes, type ErrorCode, type SharedStructErrorOptions } from './errors.js';
export { jsonCodec, msgpackCodec, type Codec } from './codec.js';
export { loadSchema, schemaNames } from '../schemas/index.js';
export type * from '../schemas/types/index.js';
export {
  defaultConnectOptions,
  defaultOpenOptions,
  consoleLogger,
  type ConnectOptions,
  type TlsOptions,
  type AclEntry,
  zooKeeperDigestId,
  type OpenOptions,
} from './options.js';
export { exponentialBackoff, type BackoffPolicy, type ExponentialBackoffOptions } from './retry.js';
export type { JsonValue, DeepReadonly } from './json.js';
export type { Logger, SessionState, SessionStateChange, EndpointStatus, RequestFailures } from './backend.js';
