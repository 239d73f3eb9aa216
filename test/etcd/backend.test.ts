/** The etcd adapter's request mapping against a real etcd: one request per call, semantics per backend.ts. */
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import type { EtcdBackend } from '../../adapters/etcd/index.js';
import type { WatchEvent } from '../../lib/backend.js';
import { isSharedStructError } from '../../lib/errors.js';
import { countsSince } from '../../lib/util/counters.js';
import { etcdBackend, rawEtcd, sharedEtcd, uniquePrefix } from '../support/etcd.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

describe('etcd adapter: requests', function () {
  this.timeout(20000);
  let backend: EtcdBackend;
  let raw: Etcd3;
  let ns: string;

  before(async () => {
    const etcd = await sharedEtcd();
    backend = await etcdBackend(etcd.endpoints);
    raw = rawEtcd(etcd.endpoints);
  });
  after(async () => {
    await backend?.close();
    raw?.close();
  });
  beforeEach(() => {
    ns = uniquePrefix('req');
  });

  it('declares its kind, features and value limit', () => {
    assert.equal(backend.kind, 'etcd');
    assert.deepEqual([...backend.features].sort(), ['everyVersion', 'history', 'txn']);
    assert.equal(backend.limits.maxValueBytes, 1_572_864 - 16 * 1024);
    assert.match(backend.session.id, /^[0-9a-f]+$/);
    assert.equal(BigInt(backend.leaseId).toString(16), backend.session.id);
    assert.equal(backend.session.state, 'connected');
    assert.equal(backend.session.epoch, 1);
  });

  it('an uncontended put is exactly one txn and no range', async () => {
    const key = `${ns}/s/payload`;
    const created = await backend.create(key, enc('v1'));
    assert.equal(created.created, true);
    const before = backend.counters.snapshot();
    const res = await backend.put(key, enc('v2'), { expectedVersion: 1 });
    assert.deepEqual(countsSince(before, backend.counters.snapshot()), { txn: 1 });
    assert.equal(res.ok, true);
    if (!res.ok) return;
    assert.equal(res.entry.version, 2);
    assert.equal(dec(res.entry.value), 'v2');
    assert.equal(res.entry.createRevision, created.created ? created.entry.createRevision : -1n);
    assert.ok(res.entry.revision > res.entry.createRevision);
    const stored = await raw.get(key.slice(0)).exec();
    assert.equal(stored.kvs[0]!.version, '2');
    assert.equal(stored.kvs[0]!.mod_revision, res.entry.revision.toString());
  });

  it('a conflicting put returns the current entry in the same single txn', async () => {
    const key = `${ns}/s/payload`;
    await backend.create(key, enc('v1'));
    await raw.put(key).value('theirs');
    const before = backend.counters.snapshot();
    const res = await backend.put(key, enc('mine'), { expectedVersion: 1 });
    assert.deepEqual(countsSince(before, backend.counters.snapshot()), { txn: 1 });
    assert.equal(res.ok, false);
    if (res.ok) return;
    assert.equal(res.current?.version, 2);
    assert.equal(dec(res.current.value), 'theirs');
    const gone = await backend.put(`${ns}/missing`, enc('x'), { expectedVersion: 1 });
    assert.deepEqual(gone, { ok: false, current: undefined });
  });

  it('create conflict returns the current entry in one request', async () => {
    const key = `${ns}/c`;
    const first = await backend.create(key, enc('first'));
    assert.equal(first.created, true);
    if (!first.created) return;
    assert.equal(first.entry.version, 1);
    assert.equal(first.entry.revision, first.entry.createRevision);
    const before = backend.counters.snapshot();
    const second = await backend.create(key, enc('second'));
    assert.deepEqual(countsSince(before, backend.counters.snapshot()), { txn: 1 });
    assert.equal(second.created, false);
    if (second.created) return;
    assert.equal(dec(second.current.value), 'first');
    assert.equal(second.current.createRevision, first.entry.createRevision);
  });

  it('get and stat map version and revisions; stat reads no value', async () => {
    const key = `${ns}/g`;
    assert.equal(await backend.get(key), undefined);
    assert.equal(await backend.stat(key), undefined);
    await raw.put(key).value('a');
    await raw.put(key).value('b');
    const e = await backend.get(key, { consistent: true });
    assert.ok(e);
    assert.equal(e.version, 2);
    assert.equal(dec(e.value), 'b');
    assert.equal(e.ephemeral, false);
    assert.ok(e.value instanceof Uint8Array);
    const before = backend.counters.snapshot();
    const s = await backend.stat(key, { consistent: true });
    assert.deepEqual(countsSince(before, backend.counters.snapshot()), { range: 1 });
    assert.deepEqual(s, { version: 2, revision: e.revision, createRevision: e.createRevision });
    assert.ok(Object.isFrozen(s));
  });

  it('delete: unconditional and at a version', async () => {
    const key = `${ns}/d`;
    await backend.create(key, enc('x'));
    assert.equal(await backend.delete(key, { expectedVersion: 2 }), false);
    assert.equal(await backend.delete(key, { expectedVersion: 1 }), true);
    assert.equal(await backend.delete(key), false);
    await backend.create(key, enc('y'));
    assert.equal(await backend.delete(key), true);
    assert.equal(await backend.get(key), undefined);
    const again = await backend.create(key, enc('z'));
    assert.equal(again.created && again.entry.version, 1, 'a re-created key starts again at version 1');
  });

  it('list returns direct children only, ordered by create revision', async () => {
    for (const name of ['zeta', 'alpha', 'mid']) await backend.create(`${ns}/p/${name}`, enc(name));
    await backend.create(`${ns}/p/alpha/deeper`, enc('no'));
    await backend.create(`${ns}/p0`, enc('sibling'));
    await backend.create(`${ns}/p`, enc('parent itself'));
    await raw.put(`${ns}/p/zeta`).value('rewritten'); // a later write does not move it
    const list = await backend.list(`${ns}/p`, { consistent: true });
    assert.deepEqual(list.map((e) => e.key.slice(ns.length)), ['/p/zeta', '/p/alpha', '/p/mid']);
    assert.equal(dec(list[0]!.value), 'rewritten');
    assert.deepEqual(await backend.list(`${ns}/none`), []);
  });

  it('sequential creates get unique keys ordered by create revision', async () => {
    const keys: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await backend.create(`${ns}/q/item-`, enc(String(i)), { sequential: true });
      assert.equal(r.created, true);
      if (r.created) keys.push(r.entry.key);
    }
    assert.equal(new Set(keys).size, 3);
    for (const k of keys) assert.match(k, new RegExp(`^${ns}/q/item-[0-9a-f]+-\\d{10}$`));
    const list = await backend.list(`${ns}/q`);
    assert.deepEqual(list.map((e) => e.key), keys);
  });

  it('ephemeral keys carry the lease; a put keeps them on it', async () => {
    const key = `${ns}/e`;
    const r = await backend.create(key, enc('eph'), { ephemeral: true });
    assert.equal(r.created && r.entry.ephemeral, true);
    const stored = await raw.get(key).exec();
    assert.equal(stored.kvs[0]!.lease, backend.leaseId);
    const p = await backend.put(key, enc('eph2'), { expectedVersion: 1 });
    assert.equal(p.ok && p.entry.ephemeral, true);
    const after = await raw.get(key).exec();
    assert.equal(after.kvs[0]!.lease, backend.leaseId);
  });

  it('txn: multi-key compares and ops apply all or nothing', async () => {
    const a = `${ns}/t/a`;
    const b = `${ns}/t/b`;
    const c = `${ns}/t/c`;
    await backend.create(a, enc('a1'));
    await backend.create(b, enc('b1'));
    const before = backend.counters.snapshot();
    const ok = await backend.txn({
      compare: [{ key: a, version: 1 }, { key: b, exists: true }],
      ops: [
        { op: 'put', key: a, value: enc('a2'), expectedVersion: 1 },
        { op: 'create', key: c, value: enc('c1'), ephemeral: true },
        { op: 'delete', key: b },
      ],
    });
    assert.deepEqual(countsSince(before, backend.counters.snapshot()), { txn: 1 });
    assert.equal(ok.ok, true);
    if (!ok.ok) return;
    const [ea, ec, eb] = ok.entries;
    assert.equal(ea?.version, 2);
    assert.equal(dec(ea.value), 'a2');
    assert.equal(ec?.version, 1);
    assert.equal(ec?.ephemeral, true);
    assert.equal(ec?.revision, ea?.revision, 'one txn, one revision');
    assert.equal(eb, undefined);
    assert.equal(await backend.get(b), undefined);

    // Any failing compare or op precondition: nothing applies.
    const failures = [
      { compare: [{ key: a, version: 1 }], ops: [{ op: 'put' as const, key: c, value: enc('x') }] },
      { compare: [], ops: [{ op: 'put' as const, key: a, value: enc('x') }, { op: 'create' as const, key: c, value: enc('x') }] },
      { compare: [], ops: [{ op: 'put' as const, key: a, value: enc('x') }, { op: 'delete' as const, key: b }] },
      { compare: [{ key: b, exists: true as const }], ops: [{ op: 'put' as const, key: a, value: enc('x') }] },
      { compare: [], ops: [{ op: 'delete' as const, key: a, expectedVersion: 1 }] },
    ];
    for (const t of failures) assert.deepEqual(await backend.txn(t), { ok: false });
    assert.equal(dec((await backend.get(a))!.value), 'a2');
    assert.equal((await backend.get(c))!.version, 1);
  });

  it('a value too large for etcd rejects VALUE_TOO_LARGE', async () => {
    const big = new Uint8Array(2 * 1024 * 1024);
    await assert.rejects(backend.create(`${ns}/big`, big), (err) => isSharedStructError(err, 'VALUE_TOO_LARGE'));
    const fits = new Uint8Array(backend.limits.maxValueBytes);
    const r = await backend.create(`${ns}/fits`, fits);
    assert.equal(r.created, true);
  });

  it('bad arguments reject INVALID_ARGUMENT before sending', async () => {
    const before = backend.counters.snapshot();
    await assert.rejects(backend.put(`${ns}/x`, enc('x'), { expectedVersion: 0 }), (err) => isSharedStructError(err, 'INVALID_ARGUMENT'));
    assert.deepEqual(countsSince(before, backend.counters.snapshot()), {});
  });

  it('an aborted signal rejects ABORTED', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(backend.get(`${ns}/x`, { signal: controller.signal }), (err) => isSharedStructError(err, 'ABORTED'));
  });

  it('a watch sees puts and deletes of direct children only, then ends on close', async () => {
    // Watching from a known revision leaves no race with the writes below.
    const base = BigInt((await raw.put(`${ns}/base`).value('0').exec()).header.revision);
    const watch = backend.watch({ prefix: `${ns}/w` }, { afterRevision: base });
    const events: WatchEvent[] = [];
    const done = (async () => {
      for await (const ev of watch) {
        if (ev.type === 'progress') continue;
        events.push(ev);
        if (events.length === 3) watch.close();
      }
    })();
    await backend.create(`${ns}/w/a`, enc('1'));
    await backend.create(`${ns}/w/a/deep`, enc('no'));
    await backend.create(`${ns}/wx`, enc('no'));
    await backend.put(`${ns}/w/a`, enc('2'), { expectedVersion: 1 });
    await backend.delete(`${ns}/w/a`);
    await done;
    assert.deepEqual(
      events.map((e) => (e.type === 'put' ? `put ${e.entry.key.slice(ns.length)} v${e.entry.version}` : e.type === 'delete' ? `delete ${e.key.slice(ns.length)}` : e.type)),
      ['put /w/a v1', 'put /w/a v2', 'delete /w/a'],
    );
  });

  it('a watch "from now" sees a write made right after watch() returns, before etcd confirmed it', async () => {
    for (let i = 0; i < 20; i++) {
      const key = `${ns}/now/${i}`;
      const watch = backend.watch({ key });
      // No waiting: the write races the watch's creation on the server.
      const put = await raw.put(key).value(String(i)).exec();
      const it = watch[Symbol.asyncIterator]();
      for (;;) {
        const r = await Promise.race([
          it.next(),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`round ${i}: the put was missed`)), 5000).unref()),
        ]);
        assert.equal(r.done, false);
        if (r.value.type === 'progress') continue;
        assert.equal(r.value.type, 'put');
        if (r.value.type === 'put') assert.equal(r.value.entry.revision.toString(), put.header.revision);
        break;
      }
      watch.close();
    }
  });
});
