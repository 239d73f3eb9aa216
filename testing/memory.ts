/**
 * The memory backend's fault hooks as a typed API: cut a client off, expire its session, slow
 * its watch delivery, drop its watches, compact the store's history. A user's unit tests can then
 * see their own code react to `suspended` / `lost` / `reconnected` and to resyncs without servers.
 */
import { randomUUID } from 'node:crypto';
import { memoryStore as storeNamed, type MemoryBackend } from '../adapters/memory/index.js';
import { backendOf, type Client } from '../lib/client.js';
import { SharedStructError } from '../lib/errors.js';

/**
 * One `memory://NAME` store and the faults a test can inject into its clients, made by
 * {@link memoryStore}. Every client passed in must have connected to {@link MemoryTestStore.url}.
 *
 * @example
 * ```ts
 * const store = memoryStore();
 * await using client = await connect(store.url, { sessionTtlMs: 1000 });
 * const heal = store.partition(client);   // requests hang until their deadline; `suspended`, then `lost`
 * heal();                                 // `reconnected` (a new session if it expired meanwhile)
 * ```
 */
export interface MemoryTestStore {
  /** The store's name. */
  readonly name: string;
  /** `memory://NAME`: connect the clients under test with it. */
  readonly url: string;
  /** The store's current revision (every write adds one). */
  readonly revision: bigint;
  /**
   * Cuts `client` off: its requests get no answer (they end at their deadline with `TIMEOUT`),
   * watch events are held, its session turns `suspended` after a third of its ttl and expires
   * after the ttl, as a real server's would. Returns the function that heals it (idempotent).
   */
  partition(client: Client): () => void;
  /**
   * The server expires `client`'s session now: its ephemeral keys (locks, leaderships,
   * memberships) go; the client learns `lost`, opens a new session (`reconnected`) and its watches
   * resync. A cut-off client learns it when its partition heals.
   */
  expireSession(client: Client): Promise<void>;
  /** Delays every watch delivery to `client` by `ms` (0 turns it off): a slow link. */
  delayDelivery(client: Client, ms: number): void;
  /** Breaks every open watch of `client` with a `CONNECTION` error (the library resumes them). */
  dropWatches(client: Client): void;
  /** Forgets the store's history up to `revision` (default: all of it), like etcd's compaction: watches resuming from before it resync. */
  compact(revision?: bigint): void;
}

/**
 * The test handle of the memory store `name` (the one `memory://NAME` clients of this process
 * share); without a name, a fresh store no other test uses.
 */
export function memoryStore(name: string = `test-${randomUUID().slice(0, 8)}`): MemoryTestStore {
  if (!/^[A-Za-z0-9._-]*$/.test(name)) throw new SharedStructError('INVALID_ARGUMENT', `memoryStore: names use A-Z a-z 0-9 . _ -, got ${JSON.stringify(name)}`);
  const store = storeNamed(name);
  const partitioned = new WeakSet<Client>();
  const backend = (client: Client): MemoryBackend => {
    const b = backendOf(client);
    if (b.kind !== 'memory') throw new SharedStructError('INVALID_ARGUMENT', `memoryStore('${name}'): not a memory client (${b.kind})`);
    const mb = b as MemoryBackend;
    if (mb.store.name !== name) throw new SharedStructError('INVALID_ARGUMENT', `memoryStore('${name}'): the client connected to memory://${mb.store.name}`);
    return mb;
  };
  return {
    name,
    url: `memory://${name}`,
    get revision() {
      return store.revision;
    },
    partition(client) {
      const heal = backend(client).partition();
      partitioned.add(client);
      return () => {
        partitioned.delete(client);
        heal();
      };
    },
    expireSession(client) {
      const b = backend(client);
      // A cut-off client learns of the expiry when the partition heals; a connected one at once,
      // as a real client's next keepalive would tell it.
      if (partitioned.has(client)) b.store.endSession(b.session.id);
      else b.expireSession();
      return Promise.resolve();
    },
    delayDelivery(client, ms) {
      if (!(Number.isFinite(ms) && ms >= 0)) throw new SharedStructError('INVALID_ARGUMENT', `delayDelivery: ms must be a number >= 0, got ${ms}`);
      backend(client).delayDelivery(ms);
    },
    dropWatches(client) {
      backend(client).dropWatches();
    },
    compact(revision) {
      store.compact(revision);
    },
  };
}
