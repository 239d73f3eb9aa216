/** `connect(url, options)`: picks the adapter from the URL's scheme and opens a client. */
import type { AdapterOptions, BackendFactory } from './backend.js';
import { Client } from './client.js';
import { SharedStructError } from './errors.js';
import { parseUrl, resolveConnectOptions, type ConnectOptions } from './options.js';

/**
 * Adapters are loaded on demand, so `memory://` users never load etcd3 or the ZooKeeper client,
 * and `lib/` imports no backend library.
 */
const ADAPTERS: Readonly<Record<string, () => Promise<{ createBackend: BackendFactory }>>> = {
  memory: () => import('../adapters/memory/index.js'),
  etcd: () => import('../adapters/etcd/index.js'),
  zk: () => import('../adapters/zookeeper/index.js'),
};

/**
 * Connects to a store and resolves a {@link Client}.
 *
 * URLs: `memory://` (one store per process), `memory://NAME` (isolated by name),
 * `etcd://h1:2379,h2:2379`, `zk://h1:2181,h2:2181/chroot`. A bad URL or option rejects
 * `INVALID_ARGUMENT` naming it; an unreachable store rejects `CONNECTION` or `TIMEOUT` after
 * `connectTimeoutMs`.
 *
 * @example
 * ```ts
 * const client = await connect('etcd://127.0.0.1:2379', { namespace: '/myapp' });
 * const flags = await client.open('flags', { initial: { beta: false } });
 * ```
 */
export async function connect(url: string, options: ConnectOptions = {}): Promise<Client> {
  const address = parseUrl(url);
  const resolved = resolveConnectOptions(options);
  const load = ADAPTERS[address.scheme];
  if (!load) throw new SharedStructError('UNSUPPORTED', `no adapter for scheme '${address.scheme}'`);
  const { createBackend } = await load();
  const adapterOptions: AdapterOptions = {
    sessionTtlMs: resolved.sessionTtlMs,
    connectTimeoutMs: resolved.connectTimeoutMs,
    requestTimeoutMs: resolved.requestTimeoutMs,
    auth: resolved.auth,
    tls: resolved.tls,
    logger: resolved.logger,
    maxValueBytes: resolved.maxValueBytes,
  };
  const backend = await createBackend(address, adapterOptions);
  return new Client(backend, resolved, (sessionTtlMs) => createBackend(address, { ...adapterOptions, sessionTtlMs }));
}
