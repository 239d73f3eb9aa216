/**
 * The struct contract: the SharedStruct API of SPEC.md through `connect()`, run unchanged
 * against every backend. Fault steps (partition, session expiry) use the target's real
 * mechanisms: memory hooks, or a TCP proxy and server-side expiry for etcd and ZooKeeper.
 */
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import fc from 'fast-check';
import { applyChanges, isSharedStructError, type ChangeEvent, type Client, type DeepReadonly, type SharedStruct } from '../../lib/index.js';
import { backendOf } from '../../lib/client.js';
import { countsSince } from '../../lib/util/counters.js';
import { storePerTest, type ContractTarget } from './target.js';

/** Polls `check` until it returns true (bounded). */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, ms = 10000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    let last: unknown;
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? ` (last error: ${last.message})` : '';
      assert.fail(`${what}: not true within ${ms} ms${why}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Records a struct's events and checks the ordering invariants on every one. */
export class Recorder<T> {
  readonly events: ChangeEvent<T>[] = [];
  readonly base: { version: number; value: DeepReadonly<T> };

  constructor(readonly struct: SharedStruct<T>) {
    this.base = { version: struct.stat().version, value: struct.readDirty() };
    struct.on('change', (ev) => {
      const last = this.events[this.events.length - 1];
      const prev = last ? last.version : this.base.version;
      assert.ok(ev.version > prev || ev.previousVersion === 0, `versions strictly increase: ${prev} then ${ev.version}`);
      this.events.push(ev);
    });
  }

  /** The fold of every event over the first value. */
  fold(): T {
    let v: unknown = this.base.value;
    for (const ev of this.events) v = applyChanges(v, ev.changes);
    return v as T;
  }

  versions(): number[] {
    return this.events.map((e) => e.version);
  }
}

type Counter = { n: number };
type Doc = { [k: string]: unknown };

const WRITE_OPS = (d: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.entries(d).filter(([op]) => !op.startsWith('watch')));

/** Registers the struct contract tests under `[name] struct contract`. */
export function structContract(target: ContractTarget, layout: 'value' | 'fields' = 'value'): void {
  describe(`[${target.name}] struct contract${layout === 'value' ? '' : ` (layout '${layout}')`}`, function () {
    this.timeout(60000);
    const ctx = storePerTest(target, layout);
    let seq = 0;
    const name = (): string => `s${Date.now().toString(36)}-${++seq}`;

    describe('open', () => {
      it('creates if absent: the first initial wins, later ones are ignored', async () => {
        const a = await ctx.store.connect();
        const b = await ctx.store.connect();
        const n = name();
        const sa = await a.open<Doc>(n, { initial: { who: 'a' } });
        const sb = await b.open<Doc>(n, { initial: { who: 'b' } });
        assert.deepEqual(sa.read(), { who: 'a' });
        assert.deepEqual(sb.read(), { who: 'a' });
        assert.equal(sb.stat().version, 1);
        assert.deepEqual([sa.created, sb.created], [true, false]);
      });

      it('concurrent creators agree on one initial', async () => {
        const clients = await Promise.all([0, 1, 2, 3].map(() => ctx.store.connect()));
        const n = name();
        const structs = await Promise.all(clients.map((c, i) => c.open<Doc>(n, { initial: { who: i } })));
        const values = structs.map((s) => JSON.stringify(s.read()));
        assert.equal(new Set(values).size, 1, values.join(' '));
        assert.ok(structs.every((s) => s.stat().version === 1));
        assert.equal(structs.filter((s) => s.created).length, 1, 'exactly one creator won');
        assert.equal(JSON.stringify(structs.find((s) => s.created)!.read()), values[0]);
      });

      it('created: racing creators of the very same value, exactly one is told it created the struct', async () => {
        const clients = await Promise.all([0, 1, 2, 3].map(() => ctx.store.connect()));
        const n = name();
        const structs = await Promise.all(clients.map((c) => c.open<Doc>(n, { initial: { same: true } })));
        assert.deepEqual(structs.map((s) => s.stat().version), [1, 1, 1, 1]);
        assert.equal(structs.filter((s) => s.created).length, 1, structs.map((s) => s.created).join(' '));
        const later = await clients[0]!.open<Doc>(n, { initial: { same: true } });
        assert.equal(later.created, false);
      });

      it('without initial a missing struct is NOT_FOUND', async () => {
        const a = await ctx.store.connect();
        await assert.rejects(a.open(name()), { code: 'NOT_FOUND' });
      });

      it('reads are frozen, stat reports the version and freshness', async () => {
        const a = await ctx.store.connect();
        const s = await a.open<{ list: number[] }>(name(), { initial: { list: [1] } });
        const v = s.read();
        assert.ok(Object.isFrozen(v) && Object.isFrozen(v.list));
        assert.equal(s.read(), v, 'no copy per read');
        const st = s.stat();
        assert.equal(st.version, 1);
        assert.equal(st.state, 'open');
        assert.ok(st.stalenessMs >= 0 && st.stalenessMs < 5000);
        assert.match(st.revision, /^\d+$/);
      });
    });

    describe('writes', () => {
      it('10 concurrent updaters × 50 increments end at exactly 500', async () => {
        const clients = await Promise.all([0, 1, 2].map(() => ctx.store.connect()));
        const n = name();
        const structs: SharedStruct<Counter>[] = [];
        for (let i = 0; i < 10; i++) structs.push(await clients[i % 3]!.open<Counter>(n, { initial: { n: 0 } }));
        const recorders = structs.map((s) => new Recorder(s));
        await Promise.all(
          structs.map(async (s) => {
            for (let i = 0; i < 50; i++) await s.update((d) => void (d.n += 1), { maxRetries: 1000 });
          }),
        );
        const final = await structs[0]!.readConsistent();
        assert.equal(final.n, 500);
        assert.equal(structs[0]!.stat().version, 501);
        for (const [i, r] of recorders.entries()) {
          await eventually(`struct ${i} caught up`, () => r.struct.readDirty().n === 500);
          assert.deepEqual(r.fold(), { n: 500 }, `fold of subscriber ${i}`);
          assert.equal(r.events.filter((e) => e.origin === 'local').length, 50, `one local event per write of ${i}`);
        }
      });

      it('update: mutate the draft or return the next value (null included); an equal result writes nothing', async () => {
        const a = await ctx.store.connect();
        const s = await a.open<Doc | null>(name(), { initial: { x: 1 } });
        const r1 = await s.update((d) => void ((d as Doc).x = 2));
        assert.deepEqual(r1, { value: { x: 2 }, version: 2 });
        const r2 = await s.update(() => ({ y: 3 }));
        assert.deepEqual(r2.value, { y: 3 });
        const before = a.requestCounts();
        const r3 = await s.update((d) => d);
        assert.deepEqual(r3, { value: { y: 3 }, version: 3 });
        assert.deepEqual(WRITE_OPS(countsSince(before, a.requestCounts())), {}, 'no request for an unchanged value');
        if (layout === 'fields') {
          // One key per top-level field: only an object can be stored.
          await assert.rejects(s.update(() => null), { code: 'INVALID_VALUE', message: /layout 'fields'/ });
          await s.update(() => ({ z: 4 }));
        } else {
          const r4 = await s.update(() => null);
          assert.equal(r4.value, null);
          assert.equal(s.read(), null);
        }
        const r5 = await s.set({ back: true });
        assert.deepEqual(r5, { value: { back: true }, version: 5 });
      });

      it('modify resolves its result, sync or async', async () => {
        const a = await ctx.store.connect();
        const s = await a.open<Counter>(name(), { initial: { n: 41 } });
        const r = await s.modify((d) => [d.n + 1, { n: d.n + 1 }] as const);
        assert.equal(r, 42);
        const r2 = await s.modify(async (d) => {
          await new Promise((res) => setTimeout(res, 5));
          return ['async', { n: d.n * 2 }] as const;
        });
        assert.equal(r2, 'async');
        assert.deepEqual(s.read(), { n: 84 });
      });

      it('compareAndSet: one attempt, CONFLICT when the version moved', async () => {
        const a = await ctx.store.connect();
        const b = await ctx.store.connect();
        const n = name();
        const sa = await a.open<Counter>(n, { initial: { n: 0 } });
        const sb = await b.open<Counter>(n);
        const w = await sa.compareAndSet(1, { n: 1 });
        assert.equal(w.version, 2);
        await assert.rejects(sb.compareAndSet(1, { n: 99 }), { code: 'CONFLICT' });
        assert.deepEqual(await sb.readConsistent(), { n: 1 });
      });

      it('a CAS conflict leaves the cache and the events untouched', async () => {
        const a = await ctx.store.connect();
        const s = await a.open<Counter>(name(), { initial: { n: 0 } });
        await s.update((d) => void (d.n = 1));
        const rec = new Recorder(s);
        const before = s.read();
        await assert.rejects(s.compareAndSet(1, { n: 77 }), (err: { code?: string }) => err.code === 'CONFLICT');
        assert.equal(s.read(), before, 'same frozen object');
        assert.equal(s.stat().version, 2);
        await new Promise((r) => setTimeout(r, 100));
        assert.deepEqual(rec.events, [], 'no event for a write that did not commit');
      });

      it('update gives up with CONFLICT after maxRetries', async () => {
        const a = await ctx.store.connect();
        const b = await ctx.store.connect();
        const n = name();
        const sa = await a.open<Counter>(n, { initial: { n: 0 } });
        const sb = await b.open<Counter>(n);
        let calls = 0;
        await assert.rejects(
          sa.update(async (d) => {
            calls += 1;
            // Another writer commits between our read and our write, every time.
            await sb.update((x) => void (x.n += 100));
            d.n += 1;
          }, { maxRetries: 2 }),
          { code: 'CONFLICT' },
        );
        assert.equal(calls, 3, 'first attempt + 2 retries');
        assert.deepEqual(await sa.readConsistent(), { n: 300 });
      });

      it('rejects a value that is not plain JSON with INVALID_VALUE, writing nothing', async () => {
        const a = await ctx.store.connect();
        const s = await a.open<Doc>(name(), { initial: { ok: true } });
        const before = a.requestCounts();
        await assert.rejects(s.update((d) => void (d.when = new Date())), { code: 'INVALID_VALUE' });
        await assert.rejects(s.set({ n: Number.NaN }), { code: 'INVALID_VALUE' });
        assert.deepEqual(WRITE_OPS(countsSince(before, a.requestCounts())), {});
        assert.deepEqual(s.read(), { ok: true });
      });

      it('drafts: bad nodes deep inside a draft are caught, results built from a draft outlive it, local changes match the values', async () => {
        const a = await ctx.store.connect();
        const s = await a.open<Doc>(name(), { initial: { keep: { big: 'x'.repeat(100) }, list: [1, 2], nested: { n: 1 } } });
        const rec = new Recorder(s);
        const before = a.requestCounts();
        await assert.rejects(s.update((d) => void ((d.nested as Doc).when = new Map())), { code: 'INVALID_VALUE' });
        await assert.rejects(s.update((d) => void ((d.list as unknown[])[5] = 1)), { code: 'INVALID_VALUE' });
        await assert.rejects(s.update((d) => void ((d.list as unknown[]).push(undefined))), { code: 'INVALID_VALUE' });
        await assert.rejects(s.update((d) => void ((d.nested as Doc).self = d.nested)), { code: 'INVALID_VALUE' });
        assert.deepEqual(WRITE_OPS(countsSince(before, a.requestCounts())), {});
        const kept = s.read().keep;
        const got = await s.modify((d) => {
          (d.nested as Doc).n = 2;
          (d.list as unknown[]).splice(0, 1, 'a', 'b');
          return [{ nested: d.nested, list: d.list }, d] as const;
        });
        assert.deepEqual(got, { nested: { n: 2 }, list: ['a', 'b', 2] });
        assert.equal(s.read().keep, kept, 'an untouched subtree is the cached object itself');
        assert.ok(Object.isFrozen(s.read().nested) && Object.isFrozen(s.read().list));
        await s.update((d) => {
          delete d.keep;
          d.added = { deep: [true] };
        });
        await s.update((d) => ({ ...d, spread: 1 }));
        assert.deepEqual(s.read(), { list: ['a', 'b', 2], nested: { n: 2 }, added: { deep: [true] }, spread: 1 });
        assert.deepEqual(rec.fold(), s.read());
        assert.deepEqual(
          [...rec.events[0]!.changes].map((c) => JSON.stringify(c)).sort(),
          [
            { kind: 'Modified', path: ['list', 0], oldValue: 1, value: 'a' },
            { kind: 'Modified', path: ['list', 1], oldValue: 2, value: 'b' },
            { kind: 'Added', path: ['list', 2], value: 2 },
            { kind: 'Modified', path: ['nested', 'n'], oldValue: 1, value: 2 },
          ].map((c) => JSON.stringify(c)).sort(),
        );
      });

      it('AbortSignal: an aborted update rejects ABORTED and writes nothing', async () => {
        const a = await ctx.store.connect();
        const s = await a.open<Counter>(name(), { initial: { n: 0 } });
        await assert.rejects(s.update((d) => void (d.n += 1), { signal: AbortSignal.abort() }), { code: 'ABORTED' });
        const ctl = new AbortController();
        const pending = s.update(async (d) => {
          ctl.abort();
          await new Promise((r) => setTimeout(r, 10));
          d.n += 1;
        }, { signal: ctl.signal });
        await assert.rejects(pending, { code: 'ABORTED' });
        assert.deepEqual(await s.readConsistent(), { n: 0 });
        assert.equal(s.stat().version, 1);
      });

      it('delete: other instances get a deleted event and NOT_FOUND', async () => {
        const a = await ctx.store.connect();
        const b = await ctx.store.connect();
        const n = name();
        const sa = await a.open<Counter>(n, { initial: { n: 0 } });
        const sb = await b.open<Counter>(n);
        let deleted = 0;
        sb.on('deleted', () => (deleted += 1));
        await sa.delete();
        assert.throws(() => sa.read(), { code: 'NOT_FOUND' });
        await eventually('deleted event', () => deleted === 1);
        assert.throws(() => sb.read(), { code: 'NOT_FOUND' });
        assert.equal(sb.stat().state, 'deleted');
        await assert.rejects(b.open(n), { code: 'NOT_FOUND' });
      });
    });

    describe('events', () => {
      it('in order, no duplicates, exactly one per local write', async () => {
        const a = await ctx.store.connect();
        const b = await ctx.store.connect();
        const n = name();
        const sa = await a.open<Counter>(n, { initial: { n: 0 } });
        const sb = await b.open<Counter>(n);
        const ra = new Recorder(sa);
        const rb = new Recorder(sb);
        for (let i = 0; i < 20; i++) await sa.update((d) => void (d.n += 1));
        await eventually('b caught up', () => sb.readDirty().n === 20);
        await new Promise((r) => setTimeout(r, 100));
        assert.deepEqual(ra.versions(), Array.from({ length: 20 }, (_, i) => i + 2));
        assert.ok(ra.events.every((e) => e.origin === 'local' && !e.coalesced));
        const vb = rb.versions();
        assert.equal(new Set(vb).size, vb.length, 'no duplicates');
        assert.equal(vb[vb.length - 1], 21);
        assert.ok(rb.events.every((e) => e.origin !== 'local'));
        assert.deepEqual(rb.fold(), { n: 20 });
        assert.deepEqual(ra.events[0]!.changes, [{ kind: 'Modified', path: ['n'], oldValue: 0, value: 1 }]);
      });

      it('diffs are Added / Modified / Removed with array indices in the path', async () => {
        const a = await ctx.store.connect();
        const s = await a.open<Doc>(name(), { initial: { keep: 1, drop: 2, list: ['a'] } });
        const events: ChangeEvent<Doc>[] = [];
        s.on('change', (e) => events.push(e));
        await s.set({ keep: 10, list: ['a', 'b'], added: { deep: true } });
        const changes = events[0]!.changes;
        assert.deepEqual(
          [...changes].sort((x, y) => JSON.stringify(x.path).localeCompare(JSON.stringify(y.path))),
          [
            { kind: 'Added', path: ['added'], value: { deep: true } },
            { kind: 'Removed', path: ['drop'], oldValue: 2 },
            { kind: 'Modified', path: ['keep'], oldValue: 1, value: 10 },
            { kind: 'Added', path: ['list', 1], value: 'b' },
          ],
        );
      });

      it('changes() iterators and on("change") see the same events; close ends iterators', async () => {
        const a = await ctx.store.connect();
        const s = await a.open<Counter>(name(), { initial: { n: 0 } });
        const seen: number[] = [];
        const consumer = (async () => {
          for await (const ev of s.changes({ includeInitial: true })) {
            seen.push(ev.version);
            if (ev.version === 4) break;
          }
        })();
        const rec = new Recorder(s);
        for (let i = 0; i < 3; i++) await s.update((d) => void (d.n += 1));
        await consumer;
        assert.deepEqual(seen, [1, 2, 3, 4]);
        assert.deepEqual(rec.versions(), [2, 3, 4]);
        const it = s.changes()[Symbol.asyncIterator]();
        const pending = it.next();
        await s.close();
        assert.equal((await pending).done, true);
        assert.throws(() => s.read(), { code: 'CLOSED' });
      });

      it('fold invariant (property): random updates from several instances, every subscriber folds to the final value', async function () {
        const clients = await Promise.all([0, 1, 2].map(() => ctx.store.connect()));
        const opArb = fc.record({
          who: fc.integer({ min: 0, max: 2 }),
          key: fc.constantFrom('a', 'b', 'c'),
          action: fc.constantFrom('set', 'delete', 'push', 'shift', 'replace'),
          value: fc.oneof(fc.integer(), fc.string({ maxLength: 4 }), fc.boolean(), fc.constant(null)),
        });
        await fc.assert(
          fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 12 }), async (ops) => {
            const n = name();
            const structs: SharedStruct<Doc>[] = [];
            for (const c of clients) structs.push(await c.open<Doc>(n, { initial: { list: [] } }));
            const recs = structs.map((s) => new Recorder(s));
            await Promise.all(
              [0, 1, 2].map(async (who) => {
                for (const op of ops.filter((o) => o.who === who)) {
                  await structs[who]!.update((d) => {
                    const list = (Array.isArray(d.list) ? d.list : (d.list = [])) as unknown[];
                    if (op.action === 'set') d[op.key] = op.value;
                    else if (op.action === 'delete') delete d[op.key];
                    else if (op.action === 'push') list.push({ [op.key]: op.value });
                    else if (op.action === 'shift') list.shift();
                    else return { list: [op.value], [op.key]: [op.value] };
                  }, { maxRetries: 1000 });
                }
              }),
            );
            const final = await structs[0]!.readConsistent();
            for (const [i, r] of recs.entries()) {
              await eventually(`instance ${i} converged`, () => r.struct.stat().version === structs[0]!.stat().version);
              assert.deepEqual(r.fold(), final, `fold of instance ${i}`);
            }
            await Promise.all(structs.map((s) => s.close()));
          }),
          { numRuns: 12 },
        );
      });

      it('a subscriber that never reads gets one resync instead of an unbounded backlog', async () => {
        const a = await ctx.store.connect();
        const s = await a.open<Counter>(name(), { initial: { n: 0 } });
        const lazy = s.changes({ maxBuffered: 5 });
        for (let i = 0; i < 30; i++) await s.update((d) => void (d.n += 1));
        const got: ChangeEvent<Counter>[] = [];
        for await (const ev of lazy) {
          got.push(ev);
          if (ev.version === 31) break;
        }
        assert.ok(got.length <= 6, `bounded: ${got.length} events`);
        assert.equal(got[0]!.origin, 'resync');
        assert.equal(got[0]!.coalesced, true);
        assert.equal(got[0]!.previousVersion, 1);
        let v: unknown = { n: 0 };
        for (const ev of got) v = applyChanges(v, ev.changes);
        assert.deepEqual(v, { n: 30 });
      });
    });

    describe('reads', () => {
      it('readConsistent sees another writer at once and delivers its event first', async () => {
        const a = await ctx.store.connect();
        const b = await ctx.store.connect();
        const n = name();
        const sa = await a.open<Counter>(n, { initial: { n: 0 } });
        const sb = await b.open<Counter>(n);
        const seen: number[] = [];
        sb.on('change', (e) => seen.push(e.version));
        await sa.update((d) => void (d.n = 5));
        const v = await sb.readConsistent();
        assert.deepEqual(v, { n: 5 });
        assert.ok(seen.includes(2), 'the event was delivered before readConsistent resolved');
        const count = seen.length;
        assert.deepEqual(await sb.readConsistent(), { n: 5 });
        assert.equal(seen.length, count, 'no event when nothing changed');
      });

      it('STALE_READ after the bound when refreshes fail; readDirty still answers; recovery after healing', async () => {
        const a = await ctx.store.connect({ requestTimeoutMs: 400, sessionTtlMs: 8000 });
        const s = await a.open<Counter>(name(), { initial: { n: 7 }, maxStalenessMs: 1200, refreshIntervalMs: 200 });
        const errors: string[] = [];
        s.on('error', (e) => errors.push(e.code));
        assert.deepEqual(s.read(), { n: 7 });
        const heal = await ctx.store.partition(a);
        const cutAt = Date.now();
        await eventually('STALE_READ', () => {
          try {
            s.read();
            return false;
          } catch (err) {
            return (err as { code?: string }).code === 'STALE_READ';
          }
        }, 8000);
        assert.ok(Date.now() - cutAt >= 1000, 'not stale before the bound');
        assert.deepEqual(s.readDirty(), { n: 7 });
        assert.ok(s.stat().stalenessMs > 1200);
        assert.ok(errors.length > 0, 'failed refreshes are reported as error events');
        await heal();
        await eventually('fresh again', () => {
          try {
            return s.read().n === 7;
          } catch {
            return false;
          }
        }, 15000);
      });

      it('cost: update() on a fresh uncontended struct is one write and no read, not even for its own watch echo', async () => {
        const a = await ctx.store.connect();
        const s = await a.open<Counter>(name(), { initial: { n: 0 }, refreshIntervalMs: 600000 });
        await s.update((d) => void (d.n = 1));
        await new Promise((r) => setTimeout(r, 200));
        const before = a.requestCounts();
        await s.update((d) => void (d.n = 2));
        const d = WRITE_OPS(countsSince(before, a.requestCounts()));
        const total = Object.values(d).reduce((x, y) => x + y, 0);
        assert.equal(total, 1, `requests: ${JSON.stringify(d)}`);
        assert.deepEqual(s.read(), { n: 2 });
        // The echo of the write arrives on the watch and costs nothing more (ZooKeeper: the
        // persistent watch recognises its own write; before, a re-arming read).
        await new Promise((r) => setTimeout(r, 300));
        const all = countsSince(before, a.requestCounts());
        assert.equal(Object.values(all).reduce((x, y) => x + y, 0), 1, `requests with the echo: ${JSON.stringify(all)}`);
      });
    });

    // A foreign writer of the value layout writes the payload's bytes; the fields layout's own
    // foreign-writer case is in the fields suite (fields.suite.ts).
    if (layout === 'value') describe('foreign writers (raw payload bytes)', () => {
      it('garbage bytes, then JSON failing the schema: error events, the last valid value kept, then recovery', async () => {
        const a = await ctx.store.connect();
        const n = name();
        const schema = { type: 'object', properties: { n: { type: 'number' } }, required: ['n'] };
        const s = await a.open<Counter>(n, { initial: { n: 1 }, schema });
        const rec = new Recorder(s);
        const errors: { code: string; message: string }[] = [];
        s.on('error', (e) => errors.push(e));
        const key = `${a.namespace}/${n}/payload`;
        await ctx.store.rawPut(key, new Uint8Array([0xff, 0xfe, 0x00, 0x7b]));
        await eventually('garbage reported', () => errors.length === 1);
        assert.equal(errors[0]!.code, 'CORRUPT_REMOTE_VALUE');
        assert.deepEqual(s.read(), { n: 1 });
        assert.equal(s.stat().version, 1);
        await ctx.store.rawPut(key, new TextEncoder().encode('{"n":"not a number"}'));
        await eventually('schema failure reported', () => errors.length === 2);
        assert.equal(errors[1]!.code, 'CORRUPT_REMOTE_VALUE');
        assert.match(errors[1]!.message, /fails its schema/);
        assert.deepEqual(s.read(), { n: 1 });
        await ctx.store.rawPut(key, new TextEncoder().encode('{"n":5}'));
        await eventually('recovered', () => s.readDirty().n === 5);
        assert.equal(rec.events.length, 1);
        assert.equal(rec.events[0]!.origin, 'resync');
        assert.deepEqual(rec.fold(), { n: 5 });
        assert.equal(errors.length, 2);
        await s.update((d) => void (d.n += 1));
        assert.deepEqual(await s.readConsistent(), { n: 6 });
      });

      it('a raw client writing plain JSON is seen as Added / Modified / Removed, and our JSON is plain for it', async () => {
        const a = await ctx.store.connect();
        const n = name();
        const s = await a.open<Doc>(n, { initial: { processes: ['systemd*', 'rsync*'], keep: 1, gone: true } });
        const rec = new Recorder(s);
        const key = `${a.namespace}/${n}/payload`;
        await ctx.store.rawPut(key, new TextEncoder().encode('{"processes":["systemd*","rsync*","firefox*"],"keep":2}'));
        await eventually('seen', () => s.readDirty().keep === 2);
        const changes = rec.events.flatMap((e) => e.changes);
        assert.deepEqual(
          [...changes].sort((x, y) => JSON.stringify(x.path).localeCompare(JSON.stringify(y.path))),
          [
            { kind: 'Removed', path: ['gone'], oldValue: true },
            { kind: 'Modified', path: ['keep'], oldValue: 1, value: 2 },
            { kind: 'Added', path: ['processes', 2], value: 'firefox*' },
          ],
        );
        await s.update((d) => void (d.by = 'sharedstruct'));
        const raw = await ctx.store.rawGet(key);
        assert.ok(raw, 'the payload exists for a raw client');
        assert.deepEqual(JSON.parse(new TextDecoder().decode(raw)), { processes: ['systemd*', 'rsync*', 'firefox*'], keep: 2, by: 'sharedstruct' });
      });
    });

    describe('expect', () => {
      it('resolves when another client creates the struct', async () => {
        const a = await ctx.store.connect();
        const b = await ctx.store.connect();
        const n = name();
        const waiting = a.expect<Counter>(n, { timeoutMs: 15000 });
        await new Promise((r) => setTimeout(r, 200));
        await b.open<Counter>(n, { initial: { n: 3 } });
        const s = await waiting;
        assert.deepEqual(s.read(), { n: 3 });
      });

      it('rejects TIMEOUT after timeoutMs and ABORTED on the signal', async () => {
        const a = await ctx.store.connect();
        await assert.rejects(a.expect(name(), { timeoutMs: 300 }), { code: 'TIMEOUT' });
        const ctl = new AbortController();
        setTimeout(() => ctl.abort(), 100);
        await assert.rejects(a.expect(name(), { signal: ctl.signal }), { code: 'ABORTED' });
        await assert.rejects(a.expect(name(), { signal: AbortSignal.abort() }), { code: 'ABORTED' });
      });
    });

    describe('listeners and sessions', () => {
      it('every open instance is a listener until it closes', async () => {
        const a = await ctx.store.connect();
        const b = await ctx.store.connect();
        const n = name();
        const sa = await a.open<Counter>(n, { initial: { n: 0 } });
        const sb = await b.open<Counter>(n);
        const ids = (await sa.listeners()).map((m) => m.id).sort();
        assert.deepEqual(ids, [sa.id, sb.id].sort());
        const me = (await sa.listeners()).find((m) => m.id === sa.id)!;
        assert.deepEqual(me.data, { host: hostname(), pid: process.pid });
        await sb.close();
        assert.deepEqual((await sa.listeners()).map((m) => m.id), [sa.id]);
      });

      it('open({ label, data }) names the listener; a live label is not taken over (CONFLICT)', async () => {
        const a = await ctx.store.connect();
        const b = await ctx.store.connect();
        const n = name();
        const sa = await a.open<Counter>(n, { initial: { n: 0 }, label: 'billing-1', data: { role: 'writer' } });
        assert.equal(sa.id, 'billing-1');
        await assert.rejects(b.open<Counter>(n, { label: 'billing-1' }), (err: unknown) => isSharedStructError(err, 'CONFLICT'));
        const listeners = await sa.listeners();
        assert.deepEqual(listeners.map((m) => [m.id, m.data]), [['billing-1', { role: 'writer' }]], 'the first keeps its registration');
        await sa.close();
        // Free again once its holder closed.
        const sb = await b.open<Counter>(n, { label: 'billing-1' });
        assert.deepEqual((await sb.listeners()).map((m) => [m.id, m.data]), [['billing-1', { host: hostname(), pid: process.pid }]]);
        await assert.rejects(b.open<Counter>(n, { label: 'not a segment' }), (err: unknown) => isSharedStructError(err, 'INVALID_ARGUMENT'));
      });

      it('session expiry: the listener registration returns and the cache resyncs', async () => {
        const a = await ctx.store.connect({ sessionTtlMs: 4000, requestTimeoutMs: 1000 });
        const b = await ctx.store.connect();
        const n = name();
        const sa = await a.open<Counter>(n, { initial: { n: 0 }, refreshIntervalMs: 500 });
        const sb = await b.open<Counter>(n);
        const rec = new Recorder(sa);
        const states: string[] = [];
        a.on('state', (s) => states.push(s.state));
        const epoch = backendOf(a).session.epoch;
        const heal = await ctx.store.partition(a);
        for (let i = 0; i < 3; i++) await sb.update((d) => void (d.n += 1));
        await ctx.store.expireSession(a);
        await heal();
        await eventually('new session', () => states.includes('reconnected') && states.includes('lost'), 30000);
        assert.ok(backendOf(a).session.epoch > epoch, 'a new session epoch');
        await eventually('listener registered again', async () => (await sb.listeners()).some((m) => m.id === sa.id), 20000);
        await eventually('cache resynced', () => sa.readDirty().n === 3, 20000);
        assert.deepEqual(rec.fold(), { n: 3 });
        assert.equal(new Set(rec.versions()).size, rec.events.length, 'no version twice');
        await sb.update((d) => void (d.n += 1));
        await eventually('watch alive after expiry', () => sa.readDirty().n === 4, 10000);
      });
    });

    describe('lifecycle', () => {
      it('close and asyncDispose are idempotent; calls after close reject CLOSED', async () => {
        const a = await ctx.store.connect();
        const s = await a.open<Counter>(name(), { initial: { n: 0 } });
        await s[Symbol.asyncDispose]();
        await s.close();
        await assert.rejects(s.update((d) => void (d.n += 1)), { code: 'CLOSED' });
        await a.close();
        await a[Symbol.asyncDispose]();
        assert.equal(a.state, 'closed');
        await assert.rejects(a.open(name(), { initial: {} }), { code: 'CLOSED' });
      });

      it('a client reports its session state', async () => {
        const a: Client = await ctx.store.connect();
        assert.equal(a.state, 'connected');
      });
    });
  });
}
