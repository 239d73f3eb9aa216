/**
 * The baselines: what a user of the plain clients would write. One interface, two stores:
 * a CAS loop that tracks its own version (one request per update when uncontended), a
 * zkstate-style update, a linearizable get, and a raw watch.
 *
 * zkstate-style, as its README describes an update: "an exclusive write lock is used both
 * internally, and in zookeeper", and "if the local version of the object does not match the
 * version in zookeeper, the update request will fail". So: take the lock with the standard
 * recipe (ZooKeeper: an ephemeral sequential node, then the children to see it is first, as
 * Curator's InterProcessMutex; etcd: a key on a lease, then the lowest create revision under
 * the prefix, as etcd's concurrency.Mutex), read the version, write with it, delete the lock
 * node: five requests when nobody else holds the lock. Waiting for a holder is not
 * implemented (the benchmark's locked writers are sequential).
 */
import { Etcd3 } from 'etcd3';
import { zookeeper, type ZkClient } from '../adapters/zookeeper/zk-client.js';

/** A raw client on one store. */
export interface RawStore {
  readonly name: string;
  /** Creates or overwrites `key`; resolves its version as the store counts it. */
  reset(key: string, bytes: Buffer): Promise<number>;
  /** One CAS: writes if the stored version is `version`; resolves the new version, or the current one on conflict. */
  cas(key: string, version: number, bytes: Buffer): Promise<{ ok: boolean; version: number; value?: Buffer }>;
  /** A linearizable read. */
  get(key: string): Promise<{ value: Buffer; version: number }>;
  /** zkstate-style: lock (create + list), version read, versioned write, lock delete. */
  lockedWrite(key: string, lockDir: string, bytes: Buffer): Promise<void>;
  /** Calls `onValue` for every change of `key` it is told about; resolves a stop function. */
  watch(key: string, onValue: (value: Buffer) => void): Promise<() => void>;
  close(): Promise<void>;
}

/** Raw etcd3: Txn compare-version CAS; the lock as etcd's concurrency.Mutex takes it. */
export function rawEtcdStore(endpoints: readonly string[]): RawStore {
  const client = new Etcd3({ hosts: endpoints.map((e) => `http://${e}`) });
  // One lease for the client's lock keys, granted once (a session), as the Mutex recipe does.
  const lease = client.lease(60, { autoKeepAlive: true });
  let seq = 0;
  return {
    name: 'etcd3',
    async reset(key, bytes) {
      await client.put(key).value(bytes);
      const kv = await client.get(key).exec();
      return Number(kv.kvs[0]!.version);
    },
    async cas(key, version, bytes) {
      const r = await client.if(key, 'Version', '==', version).then(client.put(key).value(bytes)).else(client.get(key)).commit();
      if (r.succeeded) return { ok: true, version: version + 1 };
      const kv = r.responses[0]!.response_range.kvs[0]!;
      return { ok: false, version: Number(kv.version), value: kv.value };
    },
    async get(key) {
      const r = await client.get(key).exec();
      const kv = r.kvs[0]!;
      return { value: kv.value, version: Number(kv.version) };
    },
    async lockedWrite(key, lockDir, bytes) {
      const me = `${lockDir}/${(seq += 1)}`;
      const leaseId = await lease.grant();
      await client.if(me, 'Create', '==', 0).then(client.put(me).value('x').lease(leaseId)).commit();
      const first = await client.getAll().prefix(`${lockDir}/`).sort('Create', 'Ascend').limit(1).keys();
      if (first[0] !== me) throw new Error('zkstate-style lock: someone else holds it (the benchmark has one writer)');
      const current = await client.get(key).exec();
      const version = Number(current.kvs[0]!.version);
      const r = await client.if(key, 'Version', '==', version).then(client.put(key).value(bytes)).commit();
      if (!r.succeeded) throw new Error('zkstate-style write: version moved');
      await client.delete().key(me);
    },
    async watch(key, onValue) {
      const watcher = await client.watch().key(key).create();
      watcher.on('put', (kv) => onValue(kv.value));
      return () => void watcher.cancel();
    },
    async close() {
      await lease.revoke().catch(() => undefined);
      client.close();
    },
  };
}

function call<T>(fn: (cb: (err: Error | null, ...rest: unknown[]) => void) => void, pick: (rest: unknown[]) => T): Promise<T> {
  return new Promise((resolve, reject) => fn((err, ...rest) => (err ? reject(err) : resolve(pick(rest)))));
}

interface Zk {
  create(p: string, d: Buffer, m: number, cb: (e: Error | null, p?: string) => void): void;
  setData(p: string, d: Buffer, v: number, cb: (e: Error | null, s?: { version: number }) => void): void;
  getData(p: string, w: ((e: unknown) => void) | undefined, cb: (e: Error | null, d?: Buffer, s?: { version: number }) => void): void;
  remove(p: string, v: number, cb: (e: Error | null) => void): void;
  mkdirp(p: string, cb: (e: Error | null) => void): void;
  getChildren(p: string, cb: (e: Error | null, children?: string[]) => void): void;
}

/** Raw node-zookeeper-client: setData with a version, a lock as an ephemeral node, re-armed one-shot watches. */
export async function rawZkStore(connectString: string): Promise<RawStore> {
  const client: ZkClient = zookeeper.createClient(connectString, { sessionTimeout: 10000, spinDelay: 100, retries: 0 });
  await new Promise<void>((resolve) => {
    client.on('connected', () => resolve());
    client.connect();
  });
  const zk = client as unknown as Zk;
  const EPHEMERAL_SEQUENTIAL = 3;
  const BAD_VERSION = -103;
  return {
    name: 'node-zookeeper-client',
    async reset(key, bytes) {
      await call((cb) => zk.mkdirp(key, cb), () => undefined);
      const s = await call((cb) => zk.setData(key, bytes, -1, cb), (r) => r[0] as { version: number });
      return s.version;
    },
    async cas(key, version, bytes) {
      try {
        const s = await call((cb) => zk.setData(key, bytes, version, cb), (r) => r[0] as { version: number });
        return { ok: true, version: s.version };
      } catch (err) {
        if ((err as { code?: number }).code !== BAD_VERSION) throw err;
        const [value, stat] = await call((cb) => zk.getData(key, undefined, cb), (r) => [r[0] as Buffer, r[1] as { version: number }] as const);
        return { ok: false, version: stat.version, value };
      }
    },
    async get(key) {
      const [value, stat] = await call((cb) => zk.getData(key, undefined, cb), (r) => [r[0] as Buffer, r[1] as { version: number }] as const);
      return { value, version: stat.version };
    },
    async lockedWrite(key, lockDir, bytes) {
      const me = await call((cb) => zk.create(`${lockDir}/lock-`, Buffer.from('x'), EPHEMERAL_SEQUENTIAL, cb), (r) => r[0] as string);
      const children = await call((cb) => zk.getChildren(lockDir, cb), (r) => (r[0] as string[]).sort());
      if (`${lockDir}/${children[0]}` !== me) throw new Error('zkstate-style lock: someone else holds it (the benchmark has one writer)');
      const [, stat] = await call((cb) => zk.getData(key, undefined, cb), (r) => [r[0] as Buffer, r[1] as { version: number }] as const);
      await call((cb) => zk.setData(key, bytes, stat.version, cb), () => undefined);
      await call((cb) => zk.remove(me, -1, cb), () => undefined);
    },
    async watch(key, onValue) {
      let stopped = false;
      const arm = (): void => {
        if (stopped) return;
        zk.getData(key, () => arm(), (err, data) => {
          if (!err && data && !stopped) onValue(data);
        });
      };
      // The first arm reports the current value too; callers ignore values they did not send.
      arm();
      await new Promise((r) => setTimeout(r, 50));
      return () => {
        stopped = true;
      };
    },
    async close() {
      client.close();
      await Promise.resolve();
    },
  };
}
