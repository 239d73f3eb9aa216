/**
 * The raw baseline of a durable server: a command queue drained by a loop over the plain client,
 * written honestly the way a user of that client would — the head of the queue read, then one
 * transaction per message that compares the state's version and the message's, writes the state
 * and deletes the message (etcd: a Txn; ZooKeeper: a multi). The consumer tracks the state's
 * version itself (no watch, no cache), as the raw CAS loop of bench/raw.ts does.
 */
import { Etcd3 } from 'etcd3';
import { zookeeper, type ZkClient } from '../adapters/zookeeper/zk-client.js';

/** A raw queue on one store. */
export interface RawQueue {
  readonly name: string;
  /** Requests one `take` sends. */
  readonly requestsPerTake: number;
  /** Creates the state key with `state` and an empty queue folder. */
  setup(stateKey: string, queue: string, state: Buffer): Promise<void>;
  /** Queues one message (in order). */
  push(queue: string, msg: Buffer): Promise<void>;
  /** Takes the head message, applies `apply` to the state and commits both in one transaction; false when the queue is empty. */
  take(stateKey: string, queue: string, apply: (state: Buffer, msg: Buffer) => Buffer): Promise<boolean>;
  close(): Promise<void>;
}

/** Raw etcd3: a limited range sorted by create revision for the head, a Txn per message. */
export function rawEtcdQueue(endpoints: readonly string[]): RawQueue {
  const client = new Etcd3({ hosts: endpoints.map((e) => `http://${e}`) });
  let seq = 0;
  let state: { value: Buffer; version: number } | undefined;
  return {
    name: 'etcd3',
    requestsPerTake: 2, // range, txn
    async setup(stateKey, _queue, value) {
      await client.put(stateKey).value(value);
      const kv = (await client.get(stateKey).exec()).kvs[0]!;
      state = { value: kv.value, version: Number(kv.version) };
    },
    async push(queue, msg) {
      await client.put(`${queue}/m-${String((seq += 1)).padStart(10, '0')}`).value(msg);
    },
    async take(stateKey, queue, apply) {
      const head = (await client.getAll().prefix(`${queue}/`).sort('Create', 'Ascend').limit(1).exec()).kvs[0];
      if (!head) return false;
      const s = state!;
      const next = apply(s.value, head.value);
      const r = await client
        .if(stateKey, 'Version', '==', s.version)
        .and(head.key.toString(), 'Version', '==', Number(head.version))
        .then(client.put(stateKey).value(next), client.delete().key(head.key.toString()))
        .commit();
      if (!r.succeeded) throw new Error('raw queue: a compare failed (the benchmark has one consumer)');
      state = { value: next, version: s.version + 1 };
      return true;
    },
    close() {
      client.close();
      return Promise.resolve();
    },
  };
}

function call<T>(fn: (cb: (err: Error | null, ...rest: unknown[]) => void) => void, pick: (rest: unknown[]) => T): Promise<T> {
  return new Promise((resolve, reject) => fn((err, ...rest) => (err ? reject(err) : resolve(pick(rest)))));
}

interface Zk {
  create(p: string, d: Buffer, m: number, cb: (e: Error | null, p?: string) => void): void;
  setData(p: string, d: Buffer, v: number, cb: (e: Error | null, s?: { version: number }) => void): void;
  getData(p: string, w: undefined, cb: (e: Error | null, d?: Buffer, s?: { version: number }) => void): void;
  mkdirp(p: string, cb: (e: Error | null) => void): void;
  getChildren(p: string, cb: (e: Error | null, children?: string[]) => void): void;
  transaction(): {
    check(p: string, v: number): ReturnType<Zk['transaction']>;
    setData(p: string, d: Buffer, v: number): ReturnType<Zk['transaction']>;
    remove(p: string, v: number): ReturnType<Zk['transaction']>;
    commit(cb: (e: Error | null, results?: unknown[]) => void): void;
  };
}

/** Raw node-zookeeper-client: sequential znodes, getChildren for the head, a multi per message. */
export async function rawZkQueue(connectString: string): Promise<RawQueue> {
  const client: ZkClient = zookeeper.createClient(connectString, { sessionTimeout: 10000, spinDelay: 100, retries: 0 });
  await new Promise<void>((resolve) => {
    client.on('connected', () => resolve());
    client.connect();
  });
  const zk = client as unknown as Zk;
  const PERSISTENT_SEQUENTIAL = 2;
  let state: { value: Buffer; version: number } | undefined;
  return {
    name: 'node-zookeeper-client',
    requestsPerTake: 3, // getChildren, getData, multi
    async setup(stateKey, queue, value) {
      await call((cb) => zk.mkdirp(stateKey, cb), () => undefined);
      await call((cb) => zk.mkdirp(queue, cb), () => undefined);
      // Written once more so the version is not 0 (the client turns a version-0 check into none).
      await call((cb) => zk.setData(stateKey, value, -1, cb), () => undefined);
      const s = await call((cb) => zk.setData(stateKey, value, -1, cb), (r) => r[0] as { version: number });
      state = { value, version: s.version };
    },
    async push(queue, msg) {
      await call((cb) => zk.create(`${queue}/m-`, msg, PERSISTENT_SEQUENTIAL, cb), () => undefined);
    },
    async take(stateKey, queue, apply) {
      const children = await call((cb) => zk.getChildren(queue, cb), (r) => (r[0] as string[]).sort());
      const first = children[0];
      if (first === undefined) return false;
      const path = `${queue}/${first}`;
      const [msg, stat] = await call((cb) => zk.getData(path, undefined, cb), (r) => [r[0] as Buffer, r[1] as { version: number }] as const);
      const s = state!;
      const next = apply(s.value, msg);
      await call((cb) => zk.transaction().setData(stateKey, next, s.version).remove(path, stat.version).commit(cb), () => undefined);
      state = { value: next, version: s.version + 1 };
      return true;
    },
    close() {
      client.close();
      return Promise.resolve();
    },
  };
}
