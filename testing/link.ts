/**
 * A client's own link to a cluster: one TCP proxy on 127.0.0.1 in front of every member, so a
 * test cuts off, slows down or resets one client while the others talk to the servers directly.
 */
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

/** What {@link ClusterLink.delay} takes: every chunk waits a uniform random time in [minMs, maxMs]. */
export interface LinkDelay {
  /** The shortest delay, ms. */
  readonly minMs: number;
  /** The longest delay, ms. */
  readonly maxMs: number;
}

/**
 * One client's proxies in front of every member of a cluster, made by `proxy()` of a cluster.
 * Connect the client to {@link ClusterLink.url}.
 *
 * @example
 * ```ts
 * const link = await etcd.proxy();
 * const client = await connect(link.url);
 * link.blackhole();          // the client is cut off (its connections stay open, bytes go nowhere)
 * link.heal();               // traffic flows again
 * ```
 */
export interface ClusterLink extends AsyncDisposable {
  /** The URL a client connects with: the cluster's scheme and every proxy's `127.0.0.1:port`. */
  readonly url: string;
  /** The proxies' ports, in member order. */
  readonly ports: readonly number[];
  /** True between {@link ClusterLink.blackhole} and {@link ClusterLink.heal}. */
  readonly blackholed: boolean;
  /** Drops every byte both ways; connections stay open (what a partition looks like to a client). */
  blackhole(): void;
  /** Forwards every chunk after a delay (default 200–400 ms), never reordering a direction: a slow link. */
  delay(delay?: LinkDelay): void;
  /** Resets every open connection (the client sees a reset and reconnects); the mode stays. */
  reset(): void;
  /**
   * Passes traffic again. After a blackhole it also resets the connections: bytes it dropped
   * cannot be replayed into a live TCP stream, and a real partition long enough to matter breaks
   * connections too.
   */
  heal(): void;
  /** Closes the proxies (and so the client's connections). Idempotent. */
  close(): Promise<void>;
}

/** @internal The proxies behind a link, for the harness's own session expiry. */
export interface LinkInternals {
  readonly proxies: readonly TcpProxy[];
}

/** @internal Starts a link in front of `ports` (127.0.0.1), named `scheme://`. */
export async function startLink(scheme: string, ports: readonly number[], onClose: (link: ClusterLink) => void): Promise<ClusterLink & LinkInternals> {
  const proxies: TcpProxy[] = [];
  try {
    for (const port of ports) proxies.push(await startTcpProxy(port));
  } catch (err) {
    await Promise.allSettled(proxies.map((p) => p.close()));
    throw err;
  }
  let blackholed = false;
  let closed: Promise<void> | undefined;
  const link: ClusterLink & LinkInternals = {
    url: `${scheme}://${proxies.map((p) => `127.0.0.1:${p.port}`).join(',')}`,
    ports: proxies.map((p) => p.port),
    proxies,
    get blackholed() {
      return blackholed;
    },
    blackhole() {
      blackholed = true;
      for (const p of proxies) p.setMode('blackhole');
    },
    delay(delay = { minMs: 200, maxMs: 400 }) {
      blackholed = false;
      for (const p of proxies) p.setMode('delay', delay);
    },
    reset() {
      for (const p of proxies) p.resetAll();
    },
    heal() {
      const wasCut = blackholed;
      blackholed = false;
      for (const p of proxies) {
        p.setMode('pass');
        if (wasCut) p.resetAll();
      }
    },
    close() {
      closed ??= Promise.allSettled(proxies.map((p) => p.close())).then(() => onClose(link));
      return closed;
    },
    [Symbol.asyncDispose]() {
      return link.close();
    },
  };
  return link;
}
