/**
 * ZooKeeper as a contract target: the run's shared server (or `ZK_CONNECT`), one namespace per
 * store, one TCP proxy per client so a partition cuts off only that client, and session expiry
 * for real (a second client attaches with the session's id and password and closes it).
 */
import { randomUUID } from 'node:crypto';
import type { ZooKeeperBackend } from '../../adapters/zookeeper/index.js';
import { backendOf } from '../../lib/client.js';
import type { Client, ConnectOptions } from '../../lib/index.js';
import type { ContractStore, ContractTarget } from '../contract/target.js';
import { sharedZooKeeper, type ZooKeeperCluster } from '../support/zookeeper.js';
import { RawClient, expireSession, quietLogger } from './helpers.js';
import { proxiedClients } from '../support/proxied-clients.js';

/**
 * The backend of a ZooKeeper client. Checked by kind, not `instanceof`: `connect` loads the
 * adapter with a dynamic import, which tsx may instantiate apart from a static one.
 */
export function zkBackendOf(client: Client): ZooKeeperBackend {
  const b = backendOf(client);
  if (b.kind !== 'zookeeper') throw new Error(`not a ZooKeeper client (${b.kind})`);
  return b as ZooKeeperBackend;
}

/**
 * A foreign writer's raw access to ZooKeeper: the plain library on its own session, straight to
 * the servers (setData / create / remove with version -1), connected on first use.
 */
export function zkRawOps(connectString: string): Pick<ContractStore, 'rawPut' | 'rawGet' | 'rawDelete'> & { close(): Promise<void> } {
  let raw: Promise<RawClient> | undefined;
  const rawClient = (): Promise<RawClient> => (raw ??= RawClient.connect(connectString));
  return {
    async rawPut(key: string, value: Uint8Array) {
      const client = await rawClient();
      const data = Buffer.from(value);
      if (await client.exists(key)) {
        await client.setData(key, data, -1);
      } else {
        await client.mkdirp(key.slice(0, key.lastIndexOf('/')) || '/');
        await client.create(key, data);
      }
    },
    async rawGet(key: string) {
      const client = await rawClient();
      if (!(await client.exists(key))) return undefined;
      return new Uint8Array((await client.getData(key)).data);
    },
    async rawDelete(key: string) {
      const client = await rawClient();
      if (await client.exists(key)) await client.remove(key);
    },
    async close() {
      const pending = raw;
      raw = undefined;
      await Promise.allSettled([pending?.then((c) => c.close())]);
    },
  };
}

let server: ZooKeeperCluster | undefined;

/** The ZooKeeper {@link ContractTarget}. */
export const zookeeperTarget: ContractTarget = {
  name: 'zookeeper',
  async setup() {
    server = await sharedZooKeeper();
  },
  teardown() {
    // The shared server is stopped when the run ends.
    return Promise.resolve();
  },
  newStore(): Promise<ContractStore> {
    const zk = server;
    if (!zk) return Promise.reject(new Error('zookeeperTarget.setup() was not called'));
    const namespace = `/ct-${randomUUID().slice(0, 8)}`;
    const clients = proxiedClients(zk.nodes[0]!.port, (port) => `zk://127.0.0.1:${port}`, { namespace, requestTimeoutMs: 2000, logger: quietLogger });
    const raw = zkRawOps(zk.connectString);
    return Promise.resolve({
      connect: (options?: Partial<ConnectOptions>) => clients.connect(options),
      async expireSession(client: Client) {
        await expireSession(zkBackendOf(client), zk.connectString, clients.proxyOf(client), clients.isPartitioned(client) ? 'blackhole' : 'pass');
      },
      partition: (client: Client) => clients.partition(client),
      slowLink(client: Client, ms: number) {
        const proxy = clients.proxyOf(client);
        proxy.setMode('delay', { minMs: ms, maxMs: ms });
        return Promise.resolve(() => {
          proxy.setMode('pass');
          return Promise.resolve();
        });
      },
      rawPut: raw.rawPut,
      rawGet: raw.rawGet,
      rawDelete: raw.rawDelete,
      async close() {
        await raw.close();
        await clients.close();
      },
    });
  },
};
