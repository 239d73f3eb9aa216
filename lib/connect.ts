/** `connect(url, options)`: picks the adapter from the URL's scheme and opens a client. */
import type { AdapterOptions, Backend, BackendAddress, BackendFactory } from './backend.js';
import { Client } from './client.js';
import { parseUrl, resolveConnectOptions, type AddressRules, type ConnectOptions } from './options.js';
import { holding } from './util/keepalive.js';

/** What an adapter module exports. */
interface AdapterModule {
  readonly createBackend: BackendFactory;
  readonly addressRules: AddressRules;
}

/**
 * Adapters are loaded on demand, so `memory://` users never load etcd3 or the ZooKeeper client,
 * and `lib/` imports no backend library.
 */
const ADAPTERS: Readonly<Record<'memory' | 'etcd' | 'zk', () => Promise<AdapterModule>>> = {
  memory: () => import('../adapters/memory/index.js'),
  etcd: () => import('../adapters/etcd/index.js'),
  zk: () => import('../adapters/zookeeper/index.js'),
};

/**
 * Connects to a store and resolves a {@link Client}.
 *
 * URLs: `memory://` (one store per process), `memory://NAME` (isolated by name),
 * `etcd://h1:2379,h2:2379`, `zk://h1:2181,h2:2181/chroot`. A bad URL or option rejects
 * `INVALID_ARGUMENT` naming it. An unreachable store rejects `CONNECTION`: at once when every
 * endpoint refuses the connection, after `connectTimeoutMs` at the latest otherwise. While
 * `connect()` is pending it keeps the process alive; an idle client does not.
 *
 * @example
 * ```ts
 * const client = await connect('etcd://127.0.0.1:2379', { namespace: '/myapp' });
 * const flags = await client.open('flags', { initial: { beta: false } });
 * ```
 */
export function connect(url: string, options: ConnectOptions = {}): Promise<Client> {
  return holding(() => open(url, options, undefined));
}

/**
 * @internal Tests only: connects with every backend of the client (its own and the extra
 * sessions of locks with their own ttl) passed through `wrap`. The fault matrix seeds its bugs
 * this way, so the shipped code has no switch that turns a check off.
 */
export function connectWrapped(url: string, options: ConnectOptions, wrap: (backend: Backend) => Backend): Promise<Client> {
  return holding(() => open(url, options, wrap));
}

/** @internal The adapter and the address a URL leads to (validated: `INVALID_ARGUMENT` otherwise). */
export async function resolveUrl(url: string): Promise<{ adapter: AdapterModule; address: BackendAddress }> {
  const parts = parseUrl(url);
  const adapter = await ADAPTERS[parts.scheme]();
  return { adapter, address: adapter.addressRules(parts) };
}

async function open(url: string, options: ConnectOptions, wrap: ((backend: Backend) => Backend) | undefined): Promise<Client> {
  const resolved = resolveConnectOptions(options);
  const { adapter, address } = await resolveUrl(url);
  const adapterOptions: AdapterOptions = {
    sessionTtlMs: resolved.sessionTtlMs,
    connectTimeoutMs: resolved.connectTimeoutMs,
    requestTimeoutMs: resolved.requestTimeoutMs,
    auth: resolved.auth,
    tls: resolved.tls,
    acl: resolved.acl,
    logger: resolved.logger,
    maxValueBytes: resolved.maxValueBytes,
    maxTxnOps: resolved.maxTxnOps,
  };
  const create = async (o: AdapterOptions): Promise<Backend> => {
    const backend = await adapter.createBackend(address, o);
    return wrap ? wrap(backend) : backend;
  };
  const backend = await create(adapterOptions);
  return new Client(backend, resolved, (sessionTtlMs) => create({ ...adapterOptions, sessionTtlMs }));
}
