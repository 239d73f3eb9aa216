/**
 * Clients of a real server, each through its own TCP proxy on loopback, so that a test can cut
 * off one client alone: what the etcd and ZooKeeper contract targets share.
 */
import { connect, type Client, type ConnectOptions } from '../../lib/index.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

/** The clients of one contract store. */
export interface ProxiedClients {
  /** Connects a new client through a new proxy to the server. */
  connect(options?: Partial<ConnectOptions>): Promise<Client>;
  /** The proxy in front of `client`. */
  proxyOf(client: Client): TcpProxy;
  /** True while `client` is cut off by {@link partition}. */
  isPartitioned(client: Client): boolean;
  /** Blackholes `client`'s proxy; the returned function heals it. */
  partition(client: Client): Promise<() => Promise<void>>;
  /** Closes every client, then every proxy. */
  close(): Promise<void>;
}

/** `url(port)` names the server through a proxy listening on `port`; `defaults` apply to every client. */
export function proxiedClients(serverPort: number, url: (port: number) => string, defaults: Partial<ConnectOptions>): ProxiedClients {
  const clients: Client[] = [];
  const proxies = new Map<Client, TcpProxy>();
  const partitioned = new Set<Client>();
  const proxyOf = (client: Client): TcpProxy => {
    const proxy = proxies.get(client);
    if (!proxy) throw new Error('the client was not connected by this store');
    return proxy;
  };
  return {
    async connect(options = {}) {
      const proxy = await startTcpProxy(serverPort);
      try {
        const c = await connect(url(proxy.port), { ...defaults, ...options });
        clients.push(c);
        proxies.set(c, proxy);
        return c;
      } catch (err) {
        await proxy.close();
        throw err;
      }
    },
    proxyOf,
    isPartitioned: (client) => partitioned.has(client),
    partition(client) {
      const proxy = proxyOf(client);
      proxy.setMode('blackhole');
      partitioned.add(client);
      return Promise.resolve(() => {
        partitioned.delete(client);
        proxy.setMode('pass');
        // Bytes the blackhole dropped cannot be replayed into a live TCP stream (for ZooKeeper
        // the xids would no longer match); a real partition long enough to matter breaks the
        // connections too.
        proxy.resetAll();
        return Promise.resolve();
      });
    },
    async close() {
      await Promise.allSettled(clients.splice(0).map((c) => c.close()));
      await Promise.allSettled([...proxies.values()].map((p) => p.close()));
      proxies.clear();
      partitioned.clear();
    },
  };
}
