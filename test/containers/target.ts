/**
 * A contract target on a cluster of `sharedstruct/testing` (any runtime, any size): one namespace
 * per store, each client behind its own link (a proxy in front of every member, so a partition
 * cuts off that client only), session expiry through the harness, and a foreign writer's raw
 * access given by the backend.
 */
import { randomUUID } from 'node:crypto';
import { connect, type Client, type ConnectOptions } from '../../lib/index.js';
import type { ClusterLink, EtcdCluster, ZooKeeperCluster } from '../../testing/index.js';
import type { ContractStore, ContractTarget } from '../contract/target.js';
import { quietLogger } from '../support/etcd.js';

/** What a store's foreign writer can do, on the cluster's own raw client. */
export type RawOps = Pick<ContractStore, 'rawPut' | 'rawGet' | 'rawDelete'> & { close(): Promise<void> };

/** A {@link ContractTarget} named `name` on the cluster `start` makes (once, in `setup`). */
export function clusterTarget<C extends EtcdCluster | ZooKeeperCluster>(name: 'etcd' | 'zookeeper', start: () => Promise<C>, rawOps: (cluster: C) => RawOps): ContractTarget {
  let cluster: C | undefined;
  let raw: RawOps | undefined;
  return {
    name,
    async setup() {
      const t0 = Date.now();
      cluster ??= await start();
      raw ??= rawOps(cluster);
      console.log(`      (${name} × ${cluster.members.length}, runtime ${cluster.runtime}: ready in ${Date.now() - t0} ms)`);
    },
    async teardown() {
      await raw?.close();
      raw = undefined;
      const t0 = Date.now();
      const n = cluster?.members.length;
      await cluster?.stop();
      if (cluster) console.log(`      (${name} × ${n}: stopped in ${Date.now() - t0} ms)`);
      cluster = undefined;
    },
    newStore(): Promise<ContractStore> {
      const c = cluster;
      const r = raw;
      if (!c || !r) return Promise.reject(new Error(`${name} cluster target: setup() was not called`));
      const namespace = `/ct-${randomUUID().slice(0, 8)}`;
      const links = new Map<Client, ClusterLink>();
      const linkOf = (client: Client): ClusterLink => {
        const link = links.get(client);
        if (!link) throw new Error('the client was not connected by this store');
        return link;
      };
      return Promise.resolve({
        async connect(options: Partial<ConnectOptions> = {}) {
          const link = await c.proxy();
          try {
            const client = await connect(link.url, { namespace, requestTimeoutMs: 2000, logger: quietLogger, ...options });
            links.set(client, link);
            return client;
          } catch (err) {
            await link.close();
            throw err;
          }
        },
        expireSession: (client: Client) => c.expireSession(client),
        partition(client: Client) {
          const link = linkOf(client);
          link.blackhole();
          return Promise.resolve(() => {
            link.heal();
            return Promise.resolve();
          });
        },
        slowLink(client: Client, ms: number) {
          const link = linkOf(client);
          link.delay({ minMs: ms, maxMs: ms });
          return Promise.resolve(() => {
            link.heal();
            return Promise.resolve();
          });
        },
        rawPut: r.rawPut,
        rawGet: r.rawGet,
        rawDelete: r.rawDelete,
        async close() {
          await Promise.allSettled([...links.keys()].map((client) => client.close()));
          await Promise.allSettled([...links.values()].map((link) => link.close()));
          links.clear();
        },
      });
    },
  };
}
