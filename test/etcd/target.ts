/**
 * etcd as a contract target: a real server (the run's shared one, or `ETCD_ENDPOINTS`), one
 * namespace per store, one TCP proxy per client so a partition cuts off only that client, and
 * session expiry by revoking the client's lease on the server with a separate raw client.
 */
import { randomUUID } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import type { EtcdBackend } from '../../adapters/etcd/index.js';
import { backendOf } from '../../lib/client.js';
import type { Client, ConnectOptions } from '../../lib/index.js';
import type { ContractStore, ContractTarget } from '../contract/target.js';
import { rawEtcd, sharedEtcd, quietLogger } from '../support/etcd.js';
import { proxiedClients } from '../support/proxied-clients.js';

/**
 * The backend of an etcd client. Checked by kind, not `instanceof`: `connect` loads adapters
 * with a dynamic import, which tsx may instantiate apart from a static one.
 */
export function etcdBackendOf(client: Client): EtcdBackend {
  const b = backendOf(client);
  if (b.kind !== 'etcd') throw new Error(`not an etcd client (${b.kind})`);
  return b as EtcdBackend;
}

/** The 127.0.0.1 port of an endpoint: proxies only ever forward on loopback. */
function loopbackPort(endpoint: string): number {
  const m = /^(127\.0\.0\.1|localhost):(\d+)$/.exec(endpoint);
  if (!m) throw new Error(`the etcd contract target proxies 127.0.0.1 endpoints only, got ${endpoint}`);
  return Number(m[2]);
}

/** A foreign writer's raw access to etcd (plain etcd3: no compare, no lease), for a contract store. */
export function etcdRawOps(raw: () => Etcd3): Pick<ContractStore, 'rawPut' | 'rawGet' | 'rawDelete'> {
  return {
    async rawPut(key: string, bytes: Uint8Array) {
      await raw().put(key).value(Buffer.from(bytes)).exec();
    },
    async rawGet(key: string) {
      const res = await raw().get(key).exec();
      const kv = res.kvs[0];
      return kv ? new Uint8Array(kv.value) : undefined;
    },
    async rawDelete(key: string) {
      await raw().delete().key(key).exec();
    },
  };
}

let raw: Etcd3 | undefined;
let serverPort = 0;

export const etcdTarget: ContractTarget = {
  name: 'etcd',
  async setup() {
    const etcd = await sharedEtcd();
    serverPort = loopbackPort(etcd.endpoints[0]!);
    raw ??= rawEtcd(etcd.endpoints);
  },
  teardown() {
    raw?.close();
    raw = undefined;
    return Promise.resolve();
  },
  newStore(): Promise<ContractStore> {
    const namespace = `/ct-${randomUUID().slice(0, 8)}`;
    const clients = proxiedClients(serverPort, (port) => `etcd://127.0.0.1:${port}`, { namespace, requestTimeoutMs: 2000, logger: quietLogger });
    return Promise.resolve({
      connect: (options?: Partial<ConnectOptions>) => clients.connect(options),
      async expireSession(client: Client) {
        // A real server-side end of the lease: its keys go now, and the client learns it from
        // its next keepalive (or, if cut off, when the partition heals or the TTL runs out).
        await raw!.leaseClient.leaseRevoke({ ID: etcdBackendOf(client).leaseId });
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
      ...etcdRawOps(() => raw!),
      close: () => clients.close(),
    });
  },
};
