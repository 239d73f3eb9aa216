/**
 * Shared plumbing of the ZooKeeper adapter tests: backends on the shared server, a raw client
 * (the plain library, as another process or zkstate would use it), real session expiry, and
 * bounded waiting for watch events and session states.
 */
import { randomBytes } from 'node:crypto';
import type { AdapterOptions, Backend, Logger, SessionState, SessionStateChange, Watch, WatchEvent } from '../../lib/backend.js';
import type { ZooKeeperBackend} from '../../adapters/zookeeper/index.js';
import { createBackend } from '../../adapters/zookeeper/index.js';
import { zookeeper, type ZkClient } from '../../adapters/zookeeper/zk-client.js';
import { sharedZooKeeper, type ZooKeeperCluster } from '../support/zookeeper.js';
import type { ProxyMode, TcpProxy } from '../support/tcp-proxy.js';
import { expireZooKeeperSession } from '../../testing/zookeeper.js';

/** A logger that keeps quiet unless `ZK_TEST_LOG` is set. */
export const quietLogger: Logger = process.env.ZK_TEST_LOG
  ? console
  : { debug() {}, info() {}, warn() {}, error() {} };

/** Adapter options for tests: a short session so expiry tests stay short. */
export function testOptions(overrides: Partial<AdapterOptions> = {}): AdapterOptions {
  return {
    sessionTtlMs: 3000,
    connectTimeoutMs: 10000,
    requestTimeoutMs: 4000,
    logger: quietLogger,
    ...overrides,
  };
}

/** A unique absolute prefix per test, so tests never see each other's keys. */
export function uniquePrefix(label = 't'): string {
  return `/sharedstruct-test/${label}-${randomBytes(5).toString('hex')}`;
}

/** Opens an adapter on `hosts` (default: the shared server), tracked for `closeAll`. */
export async function openBackend(
  options: { hosts?: readonly string[]; path?: string; overrides?: Partial<AdapterOptions> } = {},
): Promise<ZooKeeperBackend> {
  const hosts = options.hosts ?? (await sharedZooKeeper()).hosts;
  const backend = (await createBackend({ scheme: 'zk', hosts, path: options.path ?? '', params: {} }, testOptions(options.overrides))) as ZooKeeperBackend;
  opened.add(backend);
  return backend;
}

const opened = new Set<Backend>();

/** Closes every backend opened by {@link openBackend} (call from `afterEach`). */
export async function closeAll(): Promise<void> {
  const all = [...opened];
  opened.clear();
  await Promise.all(all.map((b) => b.close()));
}

/** The plain library, promisified: what another process (or zkstate) would use. */
export class RawClient {
  constructor(readonly client: ZkClient) {}

  static async connect(connectString: string, options: { sessionId?: Buffer; sessionPassword?: Buffer; timeoutMs?: number } = {}): Promise<RawClient> {
    const client = zookeeper.createClient(connectString, {
      sessionTimeout: options.timeoutMs ?? 3000,
      spinDelay: 100,
      retries: 0,
      ...(options.sessionId ? { sessionId: options.sessionId, sessionPassword: options.sessionPassword } : {}),
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('raw client: no session within 10 s')), 10000);
      client.on('connected', () => {
        clearTimeout(timer);
        resolve();
      });
      client.on('expired', () => {
        clearTimeout(timer);
        reject(new Error('raw client: session expired'));
      });
      client.connect();
    });
    return new RawClient(client);
  }

  #call<T>(fn: (cb: (err: Error | null, ...rest: unknown[]) => void) => void, pick: (rest: unknown[]) => T): Promise<T> {
    return new Promise((resolve, reject) => fn((err, ...rest) => (err ? reject(err) : resolve(pick(rest)))));
  }

  /** Adds a digest identity to this session (the server answers AUTH_FAILED by closing it). */
  addDigest(username: string, password: string): void {
    (this.client as unknown as { addAuthInfo(scheme: string, auth: Buffer): void }).addAuthInfo('digest', Buffer.from(`${username}:${password}`));
  }

  /** The node's ACL, as the library parses it. */
  getACL(path: string): Promise<{ permission: number; id: { scheme: string; id: string } }[]> {
    const c = this.client as unknown as { getACL(p: string, cb: (e: Error | null, acls?: unknown) => void): void };
    return this.#call((cb) => c.getACL(path, cb), (r) => r[0] as { permission: number; id: { scheme: string; id: string } }[]);
  }

  mkdirp(path: string): Promise<void> {
    const c = this.client as unknown as { mkdirp(p: string, cb: (e: Error | null) => void): void };
    return this.#call((cb) => c.mkdirp(path, cb), () => undefined);
  }

  create(path: string, data: Buffer, mode = 0): Promise<string> {
    const c = this.client as unknown as { create(p: string, d: Buffer, m: number, cb: (e: Error | null, p?: string) => void): void };
    return this.#call((cb) => c.create(path, data, mode, cb), (r) => r[0] as string);
  }

  setData(path: string, data: Buffer, version = -1): Promise<{ version: number }> {
    const c = this.client as unknown as { setData(p: string, d: Buffer, v: number, cb: (e: Error | null, s?: unknown) => void): void };
    return this.#call((cb) => c.setData(path, data, version, cb), (r) => r[0] as { version: number });
  }

  getData(path: string): Promise<{ data: Buffer; version: number }> {
    const c = this.client as unknown as { getData(p: string, cb: (e: Error | null, d?: Buffer, s?: { version: number }) => void): void };
    return this.#call((cb) => c.getData(path, cb), (r) => ({ data: r[0] as Buffer, version: (r[1] as { version: number }).version }));
  }

  exists(path: string): Promise<boolean> {
    const c = this.client as unknown as { exists(p: string, cb: (e: Error | null, s?: unknown) => void): void };
    return this.#call((cb) => c.exists(path, cb), (r) => r[0] !== null && r[0] !== undefined);
  }

  remove(path: string): Promise<void> {
    const c = this.client as unknown as { remove(p: string, v: number, cb: (e: Error | null) => void): void };
    return this.#call((cb) => c.remove(path, -1, cb), () => undefined);
  }

  /** Closes the session and waits until the server confirmed (the socket closed). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 3000);
      this.client.on('disconnected', () => {
        clearTimeout(timer);
        resolve();
      });
      this.client.close();
    });
  }
}

/** What a second client needs to attach to a session. */
export interface SessionCredentials {
  readonly sessionId: Buffer;
  readonly password: Buffer;
  readonly timeoutMs: number;
}

/**
 * Expires `backend`'s session for real (see {@link expireSessionOf}). The backend must reach the
 * server through `proxy`; the proxy is then put back into `restore` (a partitioned client stays
 * partitioned).
 */
export function expireSession(
  backend: ZooKeeperBackend,
  connectString: string,
  proxy: TcpProxy,
  restore: ProxyMode = 'pass',
): Promise<void> {
  return expireSessionOf(connectString, backend.sessionCredentials(), [proxy], restore);
}

/**
 * Expires a session for real: a second client attaches to it and closes it, with the owner's
 * `proxies` blackholed meanwhile (`sharedstruct/testing`'s session expiry, testing/zookeeper.ts).
 */
export function expireSessionOf(
  connectString: string,
  credentials: SessionCredentials,
  proxies: readonly TcpProxy[],
  restore: ProxyMode = 'pass',
): Promise<void> {
  return expireZooKeeperSession(connectString, credentials, proxies, restore);
}

/** Collects session state changes of a backend. */
export function recordStates(backend: Backend): { states: SessionStateChange[]; stop: () => void } {
  const states: SessionStateChange[] = [];
  const stop = backend.session.onStateChange((c) => states.push(c));
  return { states, stop };
}

/** Resolves when the backend's session is in (or reaches) `state` (bounded). */
export function waitForState(backend: Backend, state: SessionState, timeoutMs = 20000): Promise<SessionStateChange> {
  return new Promise((resolve, reject) => {
    const session = backend.session;
    if (session.state === state) {
      resolve({ state, epoch: session.epoch, at: session.since });
      return;
    }
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`session did not reach ${state} within ${timeoutMs} ms (now ${backend.session.state})`));
    }, timeoutMs);
    const stop = backend.session.onStateChange((c) => {
      if (c.state === state) {
        clearTimeout(timer);
        stop();
        resolve(c);
      }
    });
  });
}

/** Reads watch events in the background; `next()` and `until()` wait with a bound. */
export class EventReader {
  readonly events: WatchEvent[] = [];
  #waiters: (() => void)[] = [];
  #error: unknown;
  #done = false;

  constructor(readonly watch: Watch) {
    void (async () => {
      try {
        for await (const event of watch) {
          this.events.push(event);
          this.#notify();
        }
      } catch (err) {
        this.#error = err;
      } finally {
        this.#done = true;
        this.#notify();
      }
    })();
  }

  get error(): unknown {
    return this.#error;
  }

  get done(): boolean {
    return this.#done;
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Waits until `predicate(events)` holds (bounded). */
  async until(what: string, predicate: (events: WatchEvent[]) => boolean, timeoutMs = 15000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.events)) {
      if (this.#done) throw new Error(`watch ended before ${what}: ${String(this.#error)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms; events: ${describe(this.events)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

/** A compact description of events for failure messages. */
export function describe(events: readonly WatchEvent[]): string {
  return events
    .map((e) =>
      e.type === 'put'
        ? `put(${e.entry.key}@v${e.entry.version})`
        : e.type === 'delete'
          ? `delete(${e.key})`
          : e.type === 'reset'
            ? `reset(${e.entries.length})`
            : 'progress',
    )
    .join(' ');
}

/** The shared server. */
export function zk(): Promise<ZooKeeperCluster> {
  return sharedZooKeeper();
}

/** UTF-8 bytes of a string. */
export function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** A string from UTF-8 bytes. */
export function text(value: Uint8Array): string {
  return new TextDecoder().decode(value);
}
