/**
 * ZooKeeper as a contract target: the run's shared server (or `ZK_CONNECT`), one namespace per
 * store, one TCP proxy per client so a partition cuts off only that client, and session expiry
 * for real (a second client attaches with the session's id and password and closes it).
 */
import { randomUUID } from 'node:crypto';
import type { ZooKeeperBackend } from '../../adapters/zookeeper/index.js';
import { backendOf } from '../../lib/client.js';
import { connect, type Client, type ConnectOptions } from '../../lib/index.js';
import type { ContractStore, ContractTarget } from '../contract/target.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { sharedZooKeeper, type ZooKeeperCluster } from '../support/zookeeper.js';
import { RawClient, expireSession, quietLogger } from './helpers.js';

/**
 * The backend of a ZooKeeper client. Checked by kind, not `instanceof`: `connect` loads the
 * adapter with a dynamic import, which tsx may instantiate apart from a static one.
 */
export function zkBackendOf(client: Client): ZooKeeperBackend {
  const b = backendOf(client);
  if (b.kind !== 'zookeeper') throw new Error(`not a ZooKeeper client (${b.kind})`);
  return b as ZooKeeperBackend;
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
    const clients: Client[] = [];
    const proxies = new Map<Client, TcpProxy>();
    const partitioned = new Set<Client>();
    // The foreign writer: the plain library on its own session, straight to the server.
    let raw: Promise<RawClient> | undefined;
    const rawClient = (): Promise<RawClient> => (raw ??= RawClient.connect(zk.connectString));
    const proxyOf = (client: Client): TcpProxy => {
      const proxy = proxies.get(client);
      if (!proxy) throw new Error('the client was not connected by this store');
      return proxy;
    };
    return Promise.resolve({
      async connect(options: Partial<ConnectOptions> = {}) {
        const proxy = await startTcpProxy(zk.nodes[0]!.port);
        try {
          const c = await connect(`zk://127.0.0.1:${proxy.port}`, {
            namespace,
            requestTimeoutMs: 2000,
            logger: quietLogger,
            ...options,
          });
          clients.push(c);
          proxies.set(c, proxy);
          return c;
        } catch (err) {
          await proxy.close();
          throw err;
        }
      },
      async expireSession(client: Client) {
        await expireSession(zkBackendOf(client), zk.connectString, proxyOf(client), partitioned.has(client) ? 'blackhole' : 'pass');
      },
      partition(client: Client) {
        const proxy = proxyOf(client);
        proxy.setMode('blackhole');
        partitioned.add(client);
        return Promise.resolve(() => {
          partitioned.delete(client);
          proxy.setMode('pass');
          // Bytes the blackhole dropped cannot be replayed into a live TCP stream (the xids
          // would no longer match); a real partition long enough to matter breaks the
          // connections too.
          proxy.resetAll();
          return Promise.resolve();
        });
      },
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
      async close() {
        const pendingRaw = raw;
        raw = undefined;
        await Promise.allSettled([pendingRaw?.then((c) => c.close())]);
        await Promise.allSettled(clients.splice(0).map((c) => c.close()));
        await Promise.allSettled([...proxies.values()].map((p) => p.close()));
        proxies.clear();
      },
    });
  },
};
