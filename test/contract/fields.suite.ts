/**
 * What only the per-field layout has (the rest of its contract is the struct suite, run with
 * `layout: 'fields'`): the wrong layout, bad input, field names, atomicity seen by a remote
 * reader, and what reads cost.
 */
import assert from 'node:assert/strict';
import type { SharedStruct } from '../../lib/index.js';
import { countsSince } from '../../lib/util/counters.js';
import { escapeField, unescapeField } from '../../lib/struct/fields.js';
import { Recorder, eventually } from './struct.suite.js';
import { storePerTest, type ContractTarget } from './target.js';

type Doc = Record<string, unknown>;

const requests = (d: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(d).filter(([op]) => !op.startsWith('watch')));
const total = (d: Record<string, number>): number => Object.values(requests(d)).reduce((x, y) => x + y, 0);

/** Registers the per-field layout tests under `[name] per-field layout`. */
export function fieldsContract(target: ContractTarget): void {
  describe(`[${target.name}] per-field layout`, function () {
    this.timeout(60000);
    const ctx = storePerTest(target);
    let seq = 0;
    const name = (): string => `f${Date.now().toString(36)}-${++seq}`;

    it('opening with the other layout rejects INVALID_ARGUMENT naming the stored one', async () => {
      const a = await ctx.store.connect();
      const byFields = name();
      const byValue = name();
      await a.open<Doc>(byFields, { layout: 'fields', initial: { x: 1 } });
      await a.open<Doc>(byValue, { initial: { x: 1 } });
      await assert.rejects(a.open<Doc>(byFields), { code: 'INVALID_ARGUMENT', message: /stored with layout 'fields'/ });
      await assert.rejects(a.open<Doc>(byFields, { layout: 'value', initial: { x: 2 } }), { code: 'INVALID_ARGUMENT', message: /layout 'fields'/ });
      await assert.rejects(a.open<Doc>(byValue, { layout: 'fields' }), { code: 'INVALID_ARGUMENT', message: /stored with layout 'value'/ });
      await assert.rejects(a.open<Doc>(name(), { layout: 'fields', initial: [1] as unknown as Doc }), { code: 'INVALID_ARGUMENT', message: /must be an object/ });
      await assert.rejects(a.open<Doc>(name(), { layout: 'bogus' as 'fields', initial: {} }), { code: 'INVALID_ARGUMENT', message: /'value' or 'fields'/ });
    });

    it('a field over the limit rejects VALUE_TOO_LARGE naming it; so does a write whose fields together exceed one transaction; nothing is sent', async () => {
      const a = await ctx.store.connect({ maxValueBytes: 4000 });
      const s = await a.open<Doc>(name(), { layout: 'fields', initial: { small: 1 } });
      const before = a.requestCounts();
      await assert.rejects(s.update((d) => void (d.huge = 'x'.repeat(5000))), (err: { code?: string; message?: string; details?: unknown }) => {
        assert.equal(err.code, 'VALUE_TOO_LARGE');
        assert.match(err.message!, /field 'huge'/);
        assert.deepEqual(err.details, { field: 'huge' });
        return true;
      });
      await assert.rejects(
        s.update((d) => {
          for (let i = 0; i < 4; i++) d[`part${i}`] = 'y'.repeat(1500);
        }),
        { code: 'VALUE_TOO_LARGE', message: /in one transaction/ },
      );
      await assert.rejects(s.set([] as unknown as Doc), { code: 'INVALID_VALUE', message: /top-level object/ });
      assert.equal(total(countsSince(before, a.requestCounts())), 0);
      const few = await ctx.store.connect({ maxTxnOps: 4 });
      const sf = await few.open<Doc>(name(), { layout: 'fields', initial: { a: 1 } });
      const fewBefore = few.requestCounts();
      await assert.rejects(
        sf.update((d) => {
          for (let i = 0; i < 3; i++) d[`k${i}`] = i;
        }),
        { code: 'VALUE_TOO_LARGE', message: /needs \d+ operations in one transaction .* limit is 4/ },
      );
      assert.equal(total(countsSince(fewBefore, few.requestCounts())), 0);
      await sf.update((d) => void (d.k0 = 0));
      // Writes that fit, one field at a time, are fine: the limit is per transaction.
      for (let i = 0; i < 4; i++) await s.update((d) => void (d[`part${i}`] = 'y'.repeat(1500)));
      assert.equal(Object.keys(s.read()).length, 5);
    });

    it('any JSON key is a field: escaped into one key segment, read back by another client', async () => {
      const keys = ['', '.', '..', 'a/b', 'ü ñ', '__proto__', 'constructor', '0', '%2F', '_x', '.2e', '😀'];
      const segments = keys.map(escapeField);
      assert.equal(new Set(segments).size, keys.length, 'injective');
      for (const [i, k] of keys.entries()) {
        assert.match(segments[i]!, /^_[A-Za-z0-9_.-]*$/);
        assert.equal(unescapeField(segments[i]!), k);
      }
      const a = await ctx.store.connect();
      const b = await ctx.store.connect();
      const n = name();
      const initial: Doc = {};
      for (const [i, k] of keys.entries()) Object.defineProperty(initial, k, { value: i, enumerable: true, writable: true, configurable: true });
      await a.open<Doc>(n, { layout: 'fields', initial });
      const sb = await b.open<Doc>(n, { layout: 'fields' });
      assert.deepEqual(Object.entries(sb.read()).sort(), Object.entries(initial).sort());
      assert.ok(await ctx.store.rawGet(`${a.namespace}/${n}/fields/${escapeField('a/b')}`), 'the field key exists under fields/');
    });

    it('a remote reader never sees part of a write: an invariant between fields holds in every event and read', async () => {
      const a = await ctx.store.connect();
      const b = await ctx.store.connect();
      const n = name();
      // Each write changes two of the three fields (a or b, and sum): a reader that took fields
      // of two writes sees sum !== a + b.
      const writer = await a.open<Doc>(n, { layout: 'fields', initial: { a: 0, b: 0, sum: 0, other: { pad: 'p'.repeat(200) } } });
      const reader = await b.open<Doc>(n, { layout: 'fields' });
      const torn: string[] = [];
      const check = (v: Doc, where: string): void => {
        if ((v.a as number) + (v.b as number) !== v.sum) torn.push(`${where}: ${JSON.stringify({ a: v.a, b: v.b, sum: v.sum })}`);
      };
      const rec = new Recorder(reader);
      reader.on('change', (ev) => check(ev.value, `event v${ev.version}`));
      // The reader hears of each head late, so later writes land while it reads that head's fields.
      const restore = await ctx.store.slowLink(b, 15);
      let writing = true;
      const reads = (async () => {
        let count = 0;
        while (writing && count < 2000) {
          check(await reader.readConsistent(), 'readConsistent');
          count += 1;
        }
        return count;
      })();
      for (let i = 1; i <= 80; i++) {
        await writer.update((d) => {
          if (i % 2 === 1) d.a = i;
          else d.b = i * 10;
          d.sum = (d.a as number) + (d.b as number);
        });
      }
      writing = false;
      const readCount = await reads;
      await restore();
      await eventually('reader caught up', () => reader.readDirty().b === 800);
      assert.deepEqual(torn, []);
      assert.ok(readCount > 0);
      assert.deepEqual(rec.fold(), reader.read());
      assert.ok(rec.events.every((e) => e.origin === 'remote' || e.origin === 'resync'));
    });

    it('cost: readConsistent with nothing changed reads only the head; a one-field change costs a watcher one field read more than the value layout', async () => {
      const a = await ctx.store.connect();
      const b = await ctx.store.connect();
      const initial: Doc = {};
      for (let i = 0; i < 30; i++) initial[`f${i}`] = { i, text: 'z'.repeat(100) };
      const opened: Record<'value' | 'fields', [SharedStruct<Doc>, SharedStruct<Doc>]> = {} as never;
      for (const layout of ['value', 'fields'] as const) {
        const n = name();
        const w = await a.open<Doc>(n, { layout, initial, refreshIntervalMs: 600000 });
        const r = await b.open<Doc>(n, { layout, refreshIntervalMs: 600000 });
        opened[layout] = [w, r];
      }
      const cost = async (fn: () => Promise<unknown>): Promise<Record<string, number>> => {
        const before = b.requestCounts();
        await fn();
        return countsSince(before, b.requestCounts());
      };
      const idle = { value: await cost(() => opened.value[1].readConsistent()), fields: await cost(() => opened.fields[1].readConsistent()) };
      assert.deepEqual(requests(idle.fields), requests(idle.value), 'an idle consistent read: the head alone, as the payload alone');
      const untouched = opened.fields[1].read().f8;
      const change: Record<string, Record<string, number>> = {};
      for (const layout of ['value', 'fields'] as const) {
        const [w, r] = opened[layout];
        change[layout] = await cost(async () => {
          await w.update((d) => void ((d.f7 as { i: number }).i = 99));
          await eventually(`${layout} watcher has it`, () => (r.readDirty().f7 as { i: number }).i === 99);
          await new Promise((res) => setTimeout(res, 100));
        });
      }
      assert.equal(total(change.fields!), total(change.value!) + 1, `watcher requests: value ${JSON.stringify(change.value)}, fields ${JSON.stringify(change.fields)}`);
      assert.equal(opened.fields[1].read().f8, untouched, 'a remote change keeps the untouched fields as the cached objects');
    });

    it('updateLocked and compareAndSet write field by field too', async () => {
      const a = await ctx.store.connect();
      const b = await ctx.store.connect();
      const n = name();
      const sa = await a.open<Doc>(n, { layout: 'fields', initial: { x: 1, y: { deep: [1] } } });
      const sb = await b.open<Doc>(n, { layout: 'fields' });
      const locked = await sa.updateLocked((d) => void (d.x = 2));
      assert.deepEqual(locked, { value: { x: 2, y: { deep: [1] } }, version: 2 });
      await eventually('b has the locked write', () => sb.readDirty().x === 2);
      const cas = await sb.compareAndSet(2, { x: 3, z: true });
      assert.equal(cas.version, 3);
      await assert.rejects(sa.compareAndSet(2, { x: 9 }), { code: 'CONFLICT' });
      assert.deepEqual(await sa.readConsistent(), { x: 3, z: true });
      assert.equal(await ctx.store.rawGet(`${a.namespace}/${n}/fields/${escapeField('y')}`), undefined, 'the removed field is deleted');
    });

    it('delete removes every field; a new life starts clean; garbage in the head is reported and a write heals it', async () => {
      const a = await ctx.store.connect();
      const b = await ctx.store.connect();
      const n = name();
      const sa = await a.open<Doc>(n, { layout: 'fields', initial: { x: 1, y: 2 } });
      const sb = await b.open<Doc>(n, { layout: 'fields' });
      for (const s of [sa, sb]) s.on('error', () => {}); // the garbage below reaches them too
      await sa.delete();
      await eventually('deleted seen', () => sb.stat().state === 'deleted');
      assert.equal(await ctx.store.rawGet(`${a.namespace}/${n}/fields/${escapeField('x')}`), undefined);
      const again = await a.open<Doc>(n, { layout: 'fields', initial: { z: 3 } });
      assert.deepEqual(again.read(), { z: 3 });
      const errors: string[] = [];
      again.on('error', (e) => errors.push(e.code));
      await ctx.store.rawPut(`${a.namespace}/${n}/payload`, new Uint8Array([0xff, 0x00]));
      await eventually('garbage reported', () => errors.length === 1);
      assert.deepEqual(errors, ['CORRUPT_REMOTE_VALUE']);
      assert.deepEqual(again.read(), { z: 3 });
      await again.update((d) => void (d.z = 4));
      const c = await ctx.store.connect();
      assert.deepEqual((await c.open<Doc>(n, { layout: 'fields' })).read(), { z: 4 });
    });
  });
}
