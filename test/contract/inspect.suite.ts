/**
 * The inspection contract (`client.inspect`): read-only views of a namespace, run unchanged on
 * every backend; history is etcd's and memory's (ZooKeeper keeps no past values: UNSUPPORTED).
 */
import assert from 'node:assert/strict';
import { isSharedStructError, msgpackCodec, type Client } from '../../lib/index.js';
import { storePerTest, type ContractTarget } from './target.js';

/** Registers the inspection tests under `[name] inspection contract`. */
export function inspectContract(
  target: ContractTarget,
  options: { readonly history: boolean; /** Compacts the store's history up to its current revision. */ readonly compact?: (client: Client) => Promise<void> },
): void {
  describe(`[${target.name}] inspection contract`, function () {
    this.timeout(60000);
    const ctx = storePerTest(target);

    it('structs(): every struct with version, revision, size, layout and listener count; a durable server with its queue; writes nothing', async () => {
      const a = await ctx.store.connect();
      const b = await ctx.store.connect();
      const flags = await a.open('flags', { initial: { beta: false } });
      await b.open('flags');
      await flags.update((d) => void (d.beta = true));
      await a.open('team/config', { initial: { replicas: 3 } });
      const big = await a.open<{ x: number; y: number }>('big', { layout: 'fields', initial: { x: 1, y: 2 } });
      await big.update((d) => void (d.x = 5));
      await a.lock('job');
      await a.join('workers', { id: 'w1' });
      const server = await a.server<{ n: number }, { by: number }>('counter', { initial: { n: 0 } });
      await server.cast({ by: 1 });
      const before = b.requestCounts();
      const structs = await b.inspect.structs();
      const counts = b.requestCounts();
      assert.ok(!Object.keys(counts).some((op) => /create|put|txn|delete/.test(op) && counts[op] !== before[op]), 'no write');
      assert.deepEqual(
        structs.map((s) => [s.name, s.version, s.layout, s.listeners]),
        [
          ['big', 2, 'fields', 1],
          ['counter', 1, 'value', 1],
          ['flags', 2, 'value', 2],
          ['team/config', 1, 'value', 1],
        ],
      );
      const f = structs.find((s) => s.name === 'flags')!;
      assert.equal(f.revision, flags.stat().revision);
      assert.equal(f.sizeBytes, JSON.stringify({ beta: true }).length);
      assert.deepEqual(structs.find((s) => s.name === 'counter')!.server, { pending: 1, dead: 0 });
      assert.deepEqual((await b.inspect.structs({ prefix: 'team/' })).map((s) => s.name), ['team/config']);
      // From the empty namespace, the same structs have the namespace in their names.
      const root = await ctx.store.connect({ namespace: '' });
      const ns = a.namespace.slice(1);
      assert.deepEqual((await root.inspect.structs({ prefix: `${ns}/` })).map((s) => s.name), [`${ns}/big`, `${ns}/counter`, `${ns}/flags`, `${ns}/team/config`]);
    });

    it('listeners() and members() without opening or joining; locks() shows holder, queue order and tokens; elections() the leader', async () => {
      const a = await ctx.store.connect();
      const b = await ctx.store.connect();
      const viewer = await ctx.store.connect();
      await a.open('s', { initial: {}, label: 'app-a' });
      assert.deepEqual((await viewer.inspect.listeners('s')).map((m) => m.id), ['app-a']);
      await a.join('workers', { id: 'w1', data: { zone: 'eu' } });
      await b.join('workers', { id: 'w2' });
      const members = await viewer.inspect.members('workers');
      assert.deepEqual(members.map((m) => m.id).sort(), ['w1', 'w2']);
      assert.deepEqual(members.find((m) => m.id === 'w1')!.data, { zone: 'eu' });
      const held = await a.lock('nightly');
      const waiting = b.lock('nightly', { waitMs: 20_000 });
      let locks = await viewer.inspect.locks();
      for (let i = 0; i < 50 && (locks[0]?.waiting.length ?? 0) < 1; i++) {
        await new Promise((r) => setTimeout(r, 50));
        locks = await viewer.inspect.locks();
      }
      assert.equal(locks.length, 1);
      const [lock] = locks;
      assert.equal(lock!.name, 'nightly');
      assert.equal(lock!.kind, 'lock');
      assert.equal(lock!.holder!.token, held.token);
      assert.equal(lock!.holder!.pid, process.pid);
      assert.equal(lock!.holder!.ephemeral, true);
      assert.equal(lock!.waiting.length, 1);
      assert.ok(BigInt(lock!.waiting[0]!.token) > BigInt(held.token));
      await held.release();
      const second = await waiting;
      assert.equal((await viewer.inspect.locks({ name: 'nightly' }))[0]!.holder!.token, second.token);
      await second.release();
      assert.deepEqual(await viewer.inspect.locks({ name: 'nightly' }), []);
      const jobs = await a.open<{ n: number }>('jobs', { initial: { n: 0 } });
      let seen: unknown;
      await jobs.updateLocked(async (d) => {
        seen = (await viewer.inspect.locks({ name: 'jobs' })).map((l) => [l.name, l.kind, l.holder?.pid]);
        d.n = 1;
      });
      assert.deepEqual(seen, [['jobs', 'write_lock', process.pid]]);
      const leader = a.election('scheduler', { id: 'node-1', data: { addr: 'a:1' } });
      await leader.campaign();
      const follower = b.election('scheduler', { id: 'node-2' });
      void follower.campaign().catch(() => {});
      let elections = await viewer.inspect.elections();
      for (let i = 0; i < 50 && (elections[0]?.candidates.length ?? 0) < 1; i++) {
        await new Promise((r) => setTimeout(r, 50));
        elections = await viewer.inspect.elections();
      }
      assert.deepEqual(
        elections.map((e) => [e.name, e.leader?.id, e.leader?.data, e.candidates.map((c) => c.id)]),
        [['scheduler', 'node-1', { addr: 'a:1' }, ['node-2']]],
      );
      await follower.resign();
      await leader.resign();
    });

    it('endpoints() answers for every endpoint and session() reports the granted ttl', async () => {
      const c = await ctx.store.connect();
      const endpoints = await c.inspect.endpoints();
      assert.ok(endpoints.length >= 1);
      for (const e of endpoints) {
        assert.equal(e.reachable, true, JSON.stringify(e));
        assert.equal(typeof e.version, 'string', JSON.stringify(e));
        assert.equal(typeof e.roundTripMs, 'number');
        assert.ok(e.role === undefined || typeof e.role === 'string');
      }
      const session = c.inspect.session();
      assert.ok(session.ttlMs > 0);
      assert.equal(typeof session.id, 'string');
    });

    if (options.history) {
      it('history(): past versions newest first, each with its diff, up to the limit; NOT_FOUND for a missing struct', async () => {
        const c = await ctx.store.connect();
        const s = await c.open<{ n: number; tag?: string }>('h', { initial: { n: 0 } });
        for (let i = 1; i <= 4; i++) await s.update((d) => void (d.n = i));
        await s.update((d) => void (d.tag = 'x'));
        const h = await c.inspect.history('h', { limit: 3 });
        assert.deepEqual(h.versions.map((v) => v.version), [6, 5, 4]);
        assert.deepEqual(h.versions[0]!.changes, [{ kind: 'Added', path: ['tag'], value: 'x' }]);
        assert.deepEqual(h.versions[2]!.changes, [{ kind: 'Modified', path: ['n'], oldValue: 2, value: 3 }]);
        assert.equal(h.compactedBefore, undefined);
        const all = await c.inspect.history('h', { limit: 100 });
        assert.deepEqual(all.versions.map((v) => v.version), [6, 5, 4, 3, 2, 1]);
        assert.deepEqual(all.versions[5]!.value, { n: 0 });
        assert.equal(all.compactedBefore, undefined);
        await assert.rejects(c.inspect.history('missing'), (err) => isSharedStructError(err, 'NOT_FOUND'));
      });
      it('history({ codec }): the framed values of another codec decoded, and with the wrong codec each version says so', async () => {
        const c = await ctx.store.connect();
        const s = await c.open<{ n: number }>('packed', { initial: { n: 0 }, codec: msgpackCodec });
        await s.update((d) => void (d.n = 1));
        const h = await c.inspect.history('packed', { codec: msgpackCodec });
        assert.deepEqual(h.versions.map((v) => [v.version, v.value, v.changes]), [
          [2, { n: 1 }, [{ kind: 'Modified', path: ['n'], oldValue: 0, value: 1 }]],
          [1, { n: 0 }, []],
        ]);
        const wrong = await c.inspect.history('packed');
        assert.deepEqual(wrong.versions.map((v) => v.value), [undefined, undefined]);
        assert.match(wrong.versions[0]!.error ?? '', /^not decodable with the json codec: the value was written with codec 'msgpack'/);
      });
      it('history() after compaction: the versions still kept, and where compaction cut them off', async () => {
        const c = await ctx.store.connect();
        const s = await c.open<{ n: number }>('compacted', { initial: { n: 0 } });
        await s.update((d) => void (d.n = 1));
        await options.compact!(c);
        const { version } = await s.update((d) => void (d.n = 2));
        const h = await c.inspect.history('compacted', { limit: 10 });
        assert.deepEqual(h.versions.map((v) => v.version), [version, version - 1]);
        assert.equal(h.compactedBefore, h.versions[1]!.revision);
        assert.deepEqual(h.versions[0]!.changes, [{ kind: 'Modified', path: ['n'], oldValue: 1, value: 2 }]);
      });
    } else {
      it('history(): UNSUPPORTED, saying why', async () => {
        const c = await ctx.store.connect();
        await c.open('h', { initial: { n: 0 } });
        await assert.rejects(c.inspect.history('h'), (err) => isSharedStructError(err, 'UNSUPPORTED') && /keeps only a znode's current data/.test(err.message));
      });
    }
  });
}
