/**
 * What a backend provides to run the contract suites: isolated stores, clients on them, and
 * real fault injection. Memory implements it with its test hooks; etcd and ZooKeeper with real
 * servers, a TCP proxy per client and real session expiry.
 */
import type { Client, ConnectOptions } from '../../lib/index.js';

/** A backend under test. */
export interface ContractTarget {
  /** `memory`, `etcd` or `zookeeper`. */
  readonly name: string;
  /** Starts what the target needs (once per suite). */
  setup(): Promise<void>;
  /** Stops what `setup` started that the run-end cleanup does not. */
  teardown(): Promise<void>;
  /** A fresh store: its clients share data, and no other store sees it (own namespace). */
  newStore(): Promise<ContractStore>;
}

/** One isolated store of a {@link ContractTarget}. */
export interface ContractStore {
  /** Connects a new client, with its own session, to this store. */
  connect(options?: Partial<ConnectOptions>): Promise<Client>;
  /** Expires `client`'s session on the server, for real; resolves once the server dropped it. */
  expireSession(client: Client): Promise<void>;
  /**
   * Cuts `client` off the store (requests and watches get no answer) until the returned
   * function heals the partition.
   */
  partition(client: Client): Promise<() => Promise<void>>;
  /**
   * Makes `client`'s link slow until the returned function restores it: what the store sends it
   * (its watch news at least) arrives about `ms` late, so its cache learns of changes late.
   * Memory delays its watch deliveries (requests are answered at once); etcd and ZooKeeper delay
   * every chunk through the client's proxy, both ways, order kept.
   */
  slowLink(client: Client, ms: number): Promise<() => Promise<void>>;
  /**
   * Writes `bytes` to the absolute `key` as a foreign writer would: with the store's own raw
   * client (etcd3 put, ZooKeeper setData with version -1), never through our adapter.
   */
  rawPut(key: string, bytes: Uint8Array): Promise<void>;
  /** Reads the absolute `key` with the store's own raw client; undefined when absent. */
  rawGet(key: string): Promise<Uint8Array | undefined>;
  /** Deletes the absolute `key` as a foreign client would (etcd3 delete, ZooKeeper remove, version -1); a missing key is no error. */
  rawDelete(key: string): Promise<void>;
  /** Closes every client this store connected. */
  close(): Promise<void>;
}

/**
 * The per-test store of a contract suite: the target is set up once for the suite, every test
 * gets a fresh store, closed after it. Call inside the suite's `describe`; read `.store` in tests.
 */
export function storePerTest(target: ContractTarget, layout: 'value' | 'fields' = 'value'): { readonly store: ContractStore } {
  let current: ContractStore | undefined;
  before(async function () {
    this.timeout(120000);
    await target.setup();
  });
  after(() => target.teardown());
  beforeEach(async () => {
    current = withLayout(await target.newStore(), layout);
  });
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
  return {
    get store(): ContractStore {
      if (!current) throw new Error('storePerTest: no store outside a test');
      return current;
    },
  };
}

/**
 * `store` whose clients open and expect structs with `layout` unless a test says otherwise: the
 * same suite then runs on either layout. The clients are proxies; the store's hooks get the real
 * client back.
 */
export function withLayout(store: ContractStore, layout: 'value' | 'fields'): ContractStore {
  if (layout === 'value') return store;
  const real = new WeakMap<Client, Client>();
  const unwrap = (c: Client): Client => real.get(c) ?? c;
  return {
    async connect(options?: Partial<ConnectOptions>) {
      const client = await store.connect(options);
      const wrapped = new Proxy(client, {
        get(target, prop) {
          if (prop === 'open' || prop === 'expect') {
            return (name: string, opts: object = {}) => (target[prop] as (n: string, o: object) => unknown).call(target, name, { layout, ...opts });
          }
          const v: unknown = Reflect.get(target, prop, target);
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      real.set(wrapped, client);
      return wrapped;
    },
    expireSession: (c) => store.expireSession(unwrap(c)),
    partition: (c) => store.partition(unwrap(c)),
    slowLink: (c, ms) => store.slowLink(unwrap(c), ms),
    rawPut: (k, b) => store.rawPut(k, b),
    rawGet: (k) => store.rawGet(k),
    rawDelete: (k) => store.rawDelete(k),
    close: () => store.close(),
  };
}
