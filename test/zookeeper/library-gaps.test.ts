/**
 * The gaps of node-zookeeper-client 1.1.3 the adapter works around, each shown on the plain
 * library first and then on the adapter. If a library upgrade closes a gap, the first half of
 * its test fails and says so: then the workaround can go.
 */
import assert from 'node:assert/strict';
import { countsSince } from '../../lib/util/counters.js';
import type { ZkClient } from '../../adapters/zookeeper/zk-client.js';
import { RawClient, bytes, closeAll, openBackend, recordStates, text, uniquePrefix, waitForState, zk } from './helpers.js';

interface LibraryTransaction {
  check(path: string, version: number): LibraryTransaction;
  setData(path: string, data: Buffer, version: number): LibraryTransaction;
  commit(cb: (err: Error | null) => void): void;
}

function libraryTransaction(client: ZkClient): LibraryTransaction {
  return (client as unknown as { transaction(): LibraryTransaction }).transaction();
}

describe('zookeeper adapter: node-zookeeper-client gaps', function () {
  this.timeout(30000);

  before(async function () {
    this.timeout(60000);
    await zk();
  });

  afterEach(closeAll);

  it('transaction(): the library sends check(path, 0) as an unconditional check; the adapter does not', async () => {
    const server = await zk();
    const raw = await RawClient.connect(server.connectString);
    try {
      const prefix = uniquePrefix('gap-txn');
      await raw.mkdirp(prefix);
      await raw.create(`${prefix}/a`, Buffer.from('a0'));
      await raw.create(`${prefix}/b`, Buffer.from('b0'));
      await raw.setData(`${prefix}/a`, Buffer.from('a1')); // zk version 1 now
      // The library: `version || -1` turns the stale version-0 check into "any version".
      const libraryErr = await new Promise<Error | null>((resolve) =>
        libraryTransaction(raw.client).check(`${prefix}/a`, 0).setData(`${prefix}/b`, Buffer.from('blind'), -1).commit(resolve),
      );
      assert.equal(libraryErr, null, 'the library bug is gone: the workaround in adapters/zookeeper/wire.ts can go');
      assert.equal((await raw.getData(`${prefix}/b`)).data.toString(), 'blind');
      // The adapter: dense version 1 = zk version 0, sent as 0, rejected.
      const b = await openBackend();
      const result = await b.txn({ compare: [{ key: `${prefix}/a`, version: 1 }], ops: [{ op: 'put', key: `${prefix}/b`, value: bytes('never') }] });
      assert.deepEqual(result, { ok: false });
      assert.equal((await raw.getData(`${prefix}/b`)).data.toString(), 'blind');
    } finally {
      await raw.close();
    }
  });

  it('sync: the library has none; the adapter sends opcode 9 before a consistent read', async () => {
    const server = await zk();
    const raw = await RawClient.connect(server.connectString);
    try {
      assert.equal(typeof (raw.client as unknown as { sync?: unknown }).sync, 'undefined');
      const b = await openBackend();
      const key = `${uniquePrefix('gap-sync')}/payload`;
      await b.create(key, bytes('x'));
      const before = b.counters.snapshot();
      await b.get(key, { consistent: true });
      assert.deepEqual(countsSince(before, b.counters.snapshot()), { sync: 1, getData: 1 });
    } finally {
      await raw.close();
    }
  });

  it('one-shot watches: the library fires a watcher once; the adapter re-arms and sees the last write', async () => {
    const server = await zk();
    const raw = await RawClient.connect(server.connectString);
    try {
      const path = `${uniquePrefix('gap-watch')}/payload`;
      await raw.mkdirp(path);
      let fired = 0;
      await new Promise<void>((resolve, reject) =>
        (raw.client as unknown as { getData(p: string, w: () => void, cb: (e: Error | null) => void): void }).getData(
          path,
          () => (fired += 1),
          (err) => (err ? reject(err) : resolve()),
        ),
      );
      const b = await openBackend();
      const watch = b.watch({ key: path });
      const seen: number[] = [];
      const consumer = (async () => {
        for await (const event of watch) {
          if (event.type === 'put') seen.push(event.entry.version);
          if (seen.includes(4)) break;
        }
      })();
      await (watch as unknown as { armed(): Promise<void> }).armed();
      for (let i = 1; i <= 3; i += 1) await raw.setData(path, Buffer.from(String(i)));
      await consumer;
      assert.equal(fired, 1, 'the library watcher fired once for three writes');
      assert.equal(seen.at(-1), 4);
      assert.equal(text((await b.get(path))!.value), '3');
    } finally {
      await raw.close();
    }
  });

  it('no read timeout: a frozen server leaves the library silent; the adapter reports suspended then lost', async () => {
    const server = await zk();
    const node = server.nodes[0]!;
    const raw = await RawClient.connect(server.connectString, { timeoutMs: 1000 });
    const b = await openBackend({ overrides: { sessionTtlMs: 1000, requestTimeoutMs: 500 } });
    const libraryStates: string[] = [];
    for (const name of ['disconnected', 'expired', 'connected']) raw.client.on(name, () => libraryStates.push(name));
    const { states } = recordStates(b);
    let answered = false;
    try {
      await node.pause();
      // Every JVM thread is stopped: the server answers nothing, not even a four-letter word.
      const probe = await node.fourLetter('ruok', 300).then(
        (answer) => `answered ${JSON.stringify(answer)}`,
        (err: unknown) => String(err),
      );
      assert.match(probe, /no answer/);
      raw.exists('/').then(
        () => (answered = true),
        () => (answered = true),
      );
      await waitForState(b, 'lost', 10000);
      // The whole negotiated timeout passed (and more): the library said nothing.
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(answered, false, 'the library request neither answered nor failed');
      assert.deepEqual(libraryStates, [], 'the library reported no state change');
      assert.deepEqual(states.map((s) => s.state).slice(0, 2), ['suspended', 'lost']);
    } finally {
      node.resume();
    }
    await waitForState(b, 'reconnected', 20000);
    raw.client.close();
  });
});
