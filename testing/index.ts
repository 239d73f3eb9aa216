/**
 * `sharedstruct/testing`: real etcd and ZooKeeper clusters for your own tests (installed binaries
 * or containers through testcontainers), per-client TCP proxies for partitions and slow links,
 * session expiry, and the memory store's fault hooks for tests without servers.
 *
 * @example
 * ```ts
 * import { connect } from 'sharedstruct';
 * import { startEtcd } from 'sharedstruct/testing';
 *
 * await using etcd = await startEtcd({ members: 3, runtime: 'auto' });
 * await using client = await connect(etcd.url);
 * await etcd.members[await etcd.leader()]!.kill();
 * ```
 *
 * @packageDocumentation
 */
export { startEtcd, metricValue, DEFAULT_ETCD_IMAGE, ETCD_INSTALL_HINT, type StartEtcdOptions, type EtcdCluster, type EtcdMember } from './etcd.js';
export {
  startZooKeeper,
  fourLetterWord,
  DEFAULT_ZOOKEEPER_IMAGE,
  ZOOKEEPER_INSTALL_HINT,
  type StartZooKeeperOptions,
  type ZooKeeperCluster,
  type ZooKeeperMember,
} from './zookeeper.js';
export type { ClusterLink, LinkDelay } from './link.js';
export type { Runtime, RuntimeOptions } from './runtime.js';
export { memoryStore, type MemoryTestStore } from './memory.js';
