/**
 * The backend contract: the semantics of lib/backend.ts that every adapter must share, run
 * unchanged against memory, etcd and ZooKeeper. `makeBackend()` returns a new connection (its
 * own session) to the same store on every call.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Backend, Entry, WatchEvent } from '../../lib/backend.js';
import { countsSince } from '../../lib/util/counters.js';
import { deadlineWindows } from '../../lib/util/abort.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Collects a watch's events until `until` holds or `ms` passes. */
export async function collect(
  iterable: AsyncIterable<WatchEvent>,
  until: (events: WatchEvent[]) => boolean,
  ms = 5000,
): Promise<WatchEvent[]> {
  const events: WatchEvent[] = [];
  const it = iterable[Symbol.asyncIterator]();
  const deadline = Date.now() + ms;
  while (!until(events) && Date.now() < deadline) {
    const next = await Promise.race([
      it.next(),
      new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), Math.max(1, deadline - Date.now())).unref()),
    ]);
    if (next === 'timeout' || next.done) break;
    if (next.value.type !== 'progress') events.push(next.value);
  }
  return events;
}

const totalRequests = (d: Record<string, number>): number => Object.values(d).reduce((a, b) => a + b, 0);

/** Registers the backend contract tests under `[name] backend contract`. */
export function backendContract(name: string, makeBackend: () => Promise<Backend>): void {
  describe(`[${name}] backend contract`, function () {
    this.timeout(20000);
    const opened: Backend[] = [];
    let b: Backend;
    let root: string;

    const another = async (): Promise<Backend> => {
      const x = await makeBackend();
      opened.push(x);
      return x;
    };

    beforeEach(async () => {
      b = await another();
      root = `/bc-${randomUUID().slice(0, 8)}`;
    });

    afterEach(async () => {
      await Promise.allSettled(opened.splice(0).map((x) => x.close()));
    });

    it('reads nothing for a missing key', async () => {
      assert.equal(await b.get(`${root}/nope`), undefined);
      assert.equal(await b.stat(`${root}/nope`), undefined);
      assert.deepEqual(await b.list(`${root}/nope`), []);
    });

    it('creates once: version 1, and a second create returns the current entry', async () => {
      const r1 = await b.create(`${root}/k`, enc('one'));
      assert.ok(r1.created);
      assert.equal(r1.entry.version, 1);
      assert.equal(r1.entry.createRevision, r1.entry.revision);
      assert.equal(dec(r1.entry.value), 'one');
      const r2 = await b.create(`${root}/k`, enc('two'));
      assert.ok(!r2.created);
      assert.equal(r2.current.version, 1);
      assert.equal(dec(r2.current.value), 'one');
    });

    it('puts with compare-and-set on the dense version', async () => {
      const c = await b.create(`${root}/k`, enc('v1'));
      assert.ok(c.created);
      const p2 = await b.put(`${root}/k`, enc('v2'), { expectedVersion: 1 });
      assert.ok(p2.ok);
      assert.equal(p2.entry.version, 2);
      assert.ok(p2.entry.revision > c.entry.revision);
      assert.equal(p2.entry.createRevision, c.entry.createRevision);
      const stale = await b.put(`${root}/k`, enc('lost'), { expectedVersion: 1 });
      assert.ok(!stale.ok);
      assert.equal(stale.current?.version, 2);
      assert.equal(dec(stale.current.value), 'v2');
      const missing = await b.put(`${root}/none`, enc('x'), { expectedVersion: 1 });
      assert.deepEqual(missing, { ok: false, current: undefined });
      const got = await b.get(`${root}/k`, { consistent: true });
      assert.equal(got?.version, 2);
      assert.equal(dec(got.value), 'v2');
      const st = await b.stat(`${root}/k`);
      assert.deepEqual(st, { version: 2, revision: p2.entry.revision, createRevision: c.entry.createRevision });
    });

    it('an uncontended put is exactly one request', async () => {
      await b.create(`${root}/k`, enc('v1'));
      const before = b.counters.snapshot();
      const p = await b.put(`${root}/k`, enc('v2'), { expectedVersion: 1 });
      assert.ok(p.ok);
      const d = countsSince(before, b.counters.snapshot());
      assert.equal(totalRequests(d), 1, `requests: ${JSON.stringify(d)}`);
    });

    it('a put given the life it read: the same result as a read-back, and no ABA where the store can compare lives', async () => {
      const c = await b.create(`${root}/k`, enc('v1'));
      assert.ok(c.created);
      const life = { createRevision: c.entry.createRevision, ephemeral: false };
      const p2 = await b.put(`${root}/k`, enc('v2'), { expectedVersion: 1, life });
      assert.ok(p2.ok);
      const got = await b.get(`${root}/k`, { consistent: true });
      assert.deepEqual({ ...p2.entry, value: dec(p2.entry.value) }, { ...got!, value: dec(got!.value) });
      // Deleted and created again: the new life is at version 1, as the old one was.
      assert.equal(await b.delete(`${root}/k`), true);
      const again = await b.create(`${root}/k`, enc('new life'));
      assert.ok(again.created);
      const aba = await b.put(`${root}/k`, enc('from the old life'), { expectedVersion: 1, life });
      if (b.kind === 'zookeeper') {
        // setData cannot compare a czxid: it writes, and the result shows the new life.
        assert.ok(aba.ok);
        assert.equal(aba.entry.createRevision, again.entry.createRevision);
      } else {
        assert.ok(!aba.ok);
        assert.equal(dec(aba.current!.value), 'new life');
        assert.equal(aba.current!.createRevision, again.entry.createRevision);
      }
    });

    it('deletes only at the expected version; a re-create starts a new life at version 1', async () => {
      const c = await b.create(`${root}/k`, enc('v1'));
      assert.ok(c.created);
      await b.put(`${root}/k`, enc('v2'), { expectedVersion: 1 });
      assert.equal(await b.delete(`${root}/k`, { expectedVersion: 1 }), false);
      assert.equal((await b.get(`${root}/k`))?.version, 2);
      assert.equal(await b.delete(`${root}/k`, { expectedVersion: 2 }), true);
      assert.equal(await b.get(`${root}/k`), undefined);
      assert.equal(await b.delete(`${root}/k`), false);
      const again = await b.create(`${root}/k`, enc('new'));
      assert.ok(again.created);
      assert.equal(again.entry.version, 1);
      assert.ok(again.entry.createRevision > c.entry.createRevision);
    });

    it('lists direct children ordered by create revision', async () => {
      for (const n of ['b', 'a', 'c']) await b.create(`${root}/dir/${n}`, enc(n));
      await b.create(`${root}/dir/a/deeper`, enc('x'));
      const list = await b.list(`${root}/dir`);
      assert.deepEqual(list.map((e) => dec(e.value)), ['b', 'a', 'c']);
      assert.deepEqual(list.map((e) => e.key), [`${root}/dir/b`, `${root}/dir/a`, `${root}/dir/c`]);
    });

    it('ephemeral keys are seen by others and vanish when their session closes', async () => {
      const other = await another();
      const r = await b.create(`${root}/members/m1`, enc('me'), { ephemeral: true });
      assert.ok(r.created);
      assert.equal(r.entry.ephemeral, true);
      assert.equal((await other.get(`${root}/members/m1`))?.ephemeral, true);
      await b.close();
      assert.equal(b.session.state, 'closed');
      assert.equal(await other.get(`${root}/members/m1`, { consistent: true }), undefined);
    });

    it('sequential creates get distinct keys in creation order', async () => {
      const keys: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await b.create(`${root}/q/item-`, enc(String(i)), { sequential: true, ephemeral: true });
        assert.ok(r.created);
        assert.ok(r.entry.key.startsWith(`${root}/q/`), r.entry.key);
        keys.push(r.entry.key);
      }
      assert.equal(new Set(keys).size, 3);
      const listed = await b.list(`${root}/q`);
      assert.deepEqual(listed.map((e) => e.key), keys);
      assert.deepEqual(listed.map((e) => dec(e.value)), ['0', '1', '2']);
    });

    it('lists the head of a folder with a limit; a transaction can create a sequential key behind the others', async () => {
      for (let i = 0; i < 5; i++) await b.create(`${root}/q/m-`, enc(String(i)), { sequential: true });
      const head = await b.list(`${root}/q`, { limit: 2 });
      assert.deepEqual(head.map((e) => dec(e.value)), ['0', '1']);
      const gone = head[0]!;
      const r = await b.txn({ compare: [], ops: [{ op: 'delete', key: gone.key }, { op: 'create', key: `${root}/q/m-`, value: enc('5'), sequential: true }] });
      assert.ok(r.ok);
      const created = r.entries[1]!;
      assert.ok(created.key.startsWith(`${root}/q/m-`) && created.key !== `${root}/q/m-`, created.key);
      assert.equal(created.version, 1);
      assert.deepEqual((await b.list(`${root}/q`)).map((e) => dec(e.value)), ['1', '2', '3', '4', '5']);
      assert.deepEqual((await b.list(`${root}/q`, { limit: 3 })).map((e) => dec(e.value)), ['1', '2', '3']);
      assert.equal((await b.get(created.key))?.createRevision, created.createRevision);
    });

    it('counts the children of a folder in one request (0 for a folder that does not exist)', async () => {
      assert.equal(await b.count(`${root}/none`), 0);
      for (let i = 0; i < 4; i++) await b.create(`${root}/c/m-`, enc(String(i)), { sequential: true });
      const before = b.counters.snapshot().count ?? 0;
      assert.equal(await b.count(`${root}/c`, { consistent: true }), 4);
      assert.equal((b.counters.snapshot().count ?? 0) - before, 1);
      await b.delete((await b.list(`${root}/c`, { limit: 1 }))[0]!.key);
      assert.equal(await b.count(`${root}/c`), 3);
    });

    it('requests leave no listener on the deadline signal they share, answered or refused', async () => {
      // A listener left on a shared window's signal would fire when another request of the
      // window times out: for a request long answered (see lib/util/abort.ts).
      await b.create(`${root}/k`, enc('v1'));
      await b.create(`${root}/k`, enc('again'));
      await b.put(`${root}/k`, enc('v2'), { expectedVersion: 1 });
      await b.put(`${root}/k`, enc('lost'), { expectedVersion: 1 });
      await b.get(`${root}/k`, { consistent: true });
      await b.get(`${root}/nope`);
      await b.stat(`${root}/k`);
      await b.list(`${root}`);
      await b.count(`${root}`);
      await b.txn({ compare: [{ key: `${root}/k`, version: 2 }], ops: [{ op: 'put', key: `${root}/k`, value: enc('v3'), expectedVersion: 2 }] });
      await b.txn({ compare: [{ key: `${root}/k`, version: 1 }], ops: [{ op: 'delete', key: `${root}/k` }] });
      await b.delete(`${root}/k`, { expectedVersion: 3 });
      const { pending, listeners } = deadlineWindows();
      assert.deepEqual({ pending, listeners }, { pending: 0, listeners: 0 });
    });

    it('a transaction applies all of its ops or none', async () => {
      await b.create(`${root}/a`, enc('a1'));
      await b.create(`${root}/lock`, enc('held'));
      const ok = await b.txn({
        compare: [{ key: `${root}/lock`, exists: true }],
        ops: [
          { op: 'put', key: `${root}/a`, value: enc('a2'), expectedVersion: 1 },
          { op: 'create', key: `${root}/b`, value: enc('b1') },
        ],
      });
      assert.ok(ok.ok);
      assert.equal(ok.entries[0]?.version, 2);
      assert.equal(ok.entries[1]?.version, 1);
      // A stale version-1 compare (ZooKeeper version 0) must be a real check, not a blind write.
      const stale = await b.txn({
        compare: [{ key: `${root}/a`, version: 1 }],
        ops: [{ op: 'put', key: `${root}/b`, value: enc('never'), expectedVersion: 1 }],
      });
      assert.deepEqual(stale, { ok: false });
      const staleOp = await b.txn({ compare: [], ops: [{ op: 'put', key: `${root}/a`, value: enc('never'), expectedVersion: 1 }] });
      assert.deepEqual(staleOp, { ok: false });
      await b.delete(`${root}/lock`);
      const noLock = await b.txn({
        compare: [{ key: `${root}/lock`, exists: true }],
        ops: [{ op: 'put', key: `${root}/a`, value: enc('never'), expectedVersion: 2 }],
      });
      assert.deepEqual(noLock, { ok: false });
      assert.equal(dec((await b.get(`${root}/a`))!.value), 'a2');
      assert.equal(dec((await b.get(`${root}/b`))!.value), 'b1');
      const del = await b.txn({ compare: [{ key: `${root}/a`, version: 2 }], ops: [{ op: 'delete', key: `${root}/b` }] });
      assert.ok(del.ok);
      assert.equal(await b.get(`${root}/b`), undefined);
    });

    it('a key watch delivers every change after a revision, in order, once', async () => {
      const writer = await another();
      const c = await writer.create(`${root}/k`, enc('1'));
      assert.ok(c.created);
      let version = 1;
      const revisions: bigint[] = [c.entry.revision];
      for (let i = 2; i <= 4; i++) {
        const p = await writer.put(`${root}/k`, enc(String(i)), { expectedVersion: version++ });
        assert.ok(p.ok);
        revisions.push(p.entry.revision);
      }
      const watch = b.watch({ key: `${root}/k` }, { afterRevision: revisions[1]! });
      // Delete only once v5 was seen: a one-shot watch re-reads after each notification, and no
      // store can return v5's data once the key is gone.
      let sawV5!: () => void;
      const v5 = new Promise<void>((r) => (sawV5 = r));
      try {
        const live = (async () => {
          await new Promise((r) => setTimeout(r, 300));
          const p = await writer.put(`${root}/k`, enc('5'), { expectedVersion: 4 });
          assert.ok(p.ok);
          await v5;
          await writer.delete(`${root}/k`);
        })();
        const events = await collect(watch, (evs) => {
          if (evs.some((e) => e.type === 'put' && e.entry.version === 5)) sawV5();
          return evs.some((e) => e.type === 'delete');
        }, 10000);
        await live;
        // Either each version one by one, or (one-shot watches) fewer puts; never a repeat or a step back.
        const puts = events.filter((e): e is { type: 'put'; entry: Entry } => e.type === 'put').map((e) => e.entry.version);
        const resets = events.filter((e) => e.type === 'reset');
        assert.equal(resets.length, 0, 'no reset when history is available');
        for (let i = 1; i < puts.length; i++) assert.ok(puts[i]! > puts[i - 1]!, `versions increase: ${puts.join(',')}`);
        assert.ok(puts.length >= 1 && puts[0]! >= 3, `starts after the given revision: ${puts.join(',')}`);
        assert.equal(puts[puts.length - 1], 5, `the last version arrives: ${puts.join(',')}`);
        assert.equal(events[events.length - 1]?.type, 'delete');
      } finally {
        watch.close();
      }
    });

    it('a prefix watch sees children come and go', async () => {
      const watch = b.watch({ prefix: `${root}/g` }, {});
      const writer = await another();
      // A backend whose watches deliver every version (etcd, memory) reports every join and leave;
      // ZooKeeper's reports what each listing finds, so an ephemeral child that came and went
      // between two listings (its session closed at once) may never be reported; once reported, its
      // leave must be too. m1 is created before m2, so a listing that finds m2 without m1 was taken
      // after m1 left.
      const everyEvent = b.features.has('everyVersion');
      try {
        const live = (async () => {
          await new Promise((r) => setTimeout(r, 300));
          await writer.create(`${root}/g/m1`, enc('one'), { ephemeral: true });
          await writer.create(`${root}/g/m2`, enc('two'));
          await writer.create(`${root}/other`, enc('not a child'));
          await writer.close();
        })();
        const seen = new Map<string, string>();
        const events = await collect(watch, (evs) => {
          for (const e of evs.splice(0)) {
            if (e.type === 'put') seen.set(e.entry.key, 'put');
            if (e.type === 'delete') seen.set(e.key, 'delete');
            if (e.type === 'reset') for (const x of e.entries) seen.set(x.key, 'put');
          }
          const m1 = seen.get(`${root}/g/m1`);
          return (everyEvent ? m1 === 'delete' : m1 !== 'put') && seen.get(`${root}/g/m2`) === 'put';
        }, 10000);
        await live;
        void events;
        if (everyEvent) assert.equal(seen.get(`${root}/g/m1`), 'delete', 'the ephemeral child left with its session');
        else assert.notEqual(seen.get(`${root}/g/m1`), 'put', 'the ephemeral child left with its session');
        assert.equal(await b.get(`${root}/g/m1`, { consistent: true }), undefined, 'gone from the store');
        assert.equal(seen.get(`${root}/g/m2`), 'put');
        assert.equal(seen.has(`${root}/other`), false);
      } finally {
        watch.close();
      }
    });

    it('a closed watch ends its iterator', async () => {
      const watch = b.watch({ key: `${root}/k` }, {});
      const it = watch[Symbol.asyncIterator]();
      const pending = it.next();
      watch.close();
      const r = await pending;
      assert.equal(r.done, true);
    });

    it('starts connected in epoch 1 and closes idempotently', async () => {
      assert.equal(b.session.state, 'connected');
      assert.equal(typeof b.session.id, 'string');
      assert.ok(b.session.ttlMs > 0);
      const states: string[] = [];
      b.session.onStateChange((s) => states.push(s.state));
      await b.close();
      await b.close();
      assert.deepEqual(states, ['closed']);
      await assert.rejects(b.get(`${root}/k`), { code: 'CLOSED' });
    });

    it('an idle healthy session keeps lastContactAt fresh (locks depend on it)', async function () {
      const ttl = b.session.ttlMs;
      this.timeout(ttl * 2 + 10000);
      const before = b.session.lastContactAt;
      await new Promise((r) => setTimeout(r, Math.min(ttl, 4000)));
      const age = Date.now() - b.session.lastContactAt;
      assert.ok(b.session.lastContactAt > before, 'touched while idle');
      assert.ok(age <= ttl / 2 + 500, `last contact ${age} ms ago with ttl ${ttl} ms: keepalives must touch the session`);
    });

    it('declares a positive value limit and its features', () => {
      assert.ok(b.limits.maxValueBytes > 1000);
      assert.ok(b.features.has('txn'), 'txn');
    });
  });
}
