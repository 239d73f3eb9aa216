/**
 * The baselines: what a user of the plain clients would write. One interface, two stores:
 * a CAS loop that tracks its own version (one request per update when uncontended), a
 * zkstate-style update (take a lock on the server, write, release: three requests), a
 * linearizable get, and a raw watch.
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
  /** zkstate-style: lock node create, write, lock node delete. */
  lockedWrite(key: string, lockKey: string, bytes: Buffer): Promise<void>;
  /** Calls `onValue` for every change of `key` it is told about; resolves a stop function. */
  watch(key: string, onValue: (value: Buffer) => void): Promise<() => void>;
  close(): Promise<void>;
}

/** Raw etcd3: Txn compare-version CAS, the lock as a key created only if absent. */
export function rawEtcdStore(endpoints: readonly string[]): RawStore {
  const client = new Etcd3({ hosts: endpoints.map((e) => `http://${e}`) });
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
    async lockedWrite(key, lockKey, bytes) {
      for (;;) {
        const got = await client.if(lockKey, 'Create', '==', 0).then(client.put(lockKey).value('x')).commit();
        if (got.succeeded) break;
      }
      await client.put(key).value(bytes);
      await client.delete().key(lockKey);
    },
    async watch(key, onValue) {
      const watcher = await client.watch().key(key).create();
      watcher.on('put', (kv) => onValue(kv.value));
      return () => void watcher.cancel();
    },
    async close() {
      client.close();
      await Promise.resolve();
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
}

/** Raw node-zookeeper-client: setData with a version, a lock as an ephemeral node, re-armed one-shot watches. */
export async function rawZkStore(connectString: string): Promise<RawStore> {
  const client: ZkClient = zookeeper.createClient(connectString, { sessionTimeout: 10000, spinDelay: 100, retries: 0 });
  await new Promise<void>((resolve) => {
    client.on('connected', () => resolve());
    client.connect();
  });
  const zk = client as unknown as Zk;
  const EPHEMERAL = 1;
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
    async lockedWrite(key, lockKey, bytes) {
      for (;;) {
        try {
          await call((cb) => zk.create(lockKey, Buffer.from('x'), EPHEMERAL, cb), () => undefined);
          break;
        } catch (err) {
          if ((err as { code?: number }).code !== -110) throw err; // NODE_EXISTS: someone holds it
        }
      }
      await call((cb) => zk.setData(key, bytes, -1, cb), () => undefined);
      await call((cb) => zk.remove(lockKey, -1, cb), () => undefined);
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
