/** Self-tests of the linearizability checker (test/faults/linearizability.ts) on known histories. */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkLinearizable, type Operation, type RegisterState } from '../faults/linearizability.js';

const v0: RegisterState = { version: 1, value: '0' };
const inc = (s: string): string => String(Number(s) + 1);
const read = (client: number, call: number, ret: number, version: number, value: string): Operation => ({ kind: 'read', client, call, ret, output: { version, value } });
const update = (client: number, call: number, ret: number | undefined, version?: number, value?: string): Operation => ({
  kind: 'update',
  client,
  call,
  ...(ret !== undefined && { ret }),
  next: inc,
  ...(version !== undefined && { output: { version, value: value! } }),
});

describe('linearizability checker', () => {
  describe('known-good histories', () => {
    it('a sequential history', () => {
      const h: Operation[] = [
        update(0, 0, 1, 2, '1'),
        read(1, 2, 3, 2, '1'),
        { kind: 'cas', client: 0, call: 4, ret: 5, expectedVersion: 2, value: '9', output: { ok: true, version: 3 } },
        read(1, 6, 7, 3, '9'),
        { kind: 'cas', client: 1, call: 8, ret: 9, expectedVersion: 2, value: 'x', output: { ok: false } },
      ];
      const r = checkLinearizable(v0, h);
      assert.ok(r.linearizable);
      assert.deepEqual(r.order, [0, 1, 2, 3, 4]);
    });

    it('overlapping updates and a read that sees either order', () => {
      const h: Operation[] = [update(0, 0, 10, 3, '2'), update(1, 1, 9, 2, '1'), read(2, 2, 8, 2, '1')];
      assert.ok(checkLinearizable(v0, h).linearizable);
    });

    it('a write with an unknown outcome that took effect, and one that did not', () => {
      const tookEffect: Operation[] = [update(0, 0, undefined), read(1, 5, 6, 2, '1')];
      assert.ok(checkLinearizable(v0, tookEffect).linearizable);
      const didNot: Operation[] = [update(0, 0, undefined), read(1, 5, 6, 1, '0')];
      assert.ok(checkLinearizable(v0, didNot).linearizable);
    });
  });

  describe('known-bad histories', () => {
    it('a stale read after a completed write', () => {
      const h: Operation[] = [update(0, 0, 2, 2, '1'), read(1, 3, 4, 1, '0')];
      assert.equal(checkLinearizable(v0, h).linearizable, false);
    });

    it('a lost update: two increments that both report version 2', () => {
      const h: Operation[] = [update(0, 0, 5, 2, '1'), update(1, 1, 6, 2, '1')];
      assert.equal(checkLinearizable(v0, h).linearizable, false);
    });

    it('a CAS that succeeded although the version had moved', () => {
      const h: Operation[] = [
        update(0, 0, 1, 2, '1'),
        { kind: 'cas', client: 1, call: 2, ret: 3, expectedVersion: 1, value: 'x', output: { ok: true, version: 2 } },
      ];
      assert.equal(checkLinearizable(v0, h).linearizable, false);
    });

    it('a read of a value nobody wrote', () => {
      assert.equal(checkLinearizable(v0, [read(0, 0, 1, 1, '42')]).linearizable, false);
    });

    it('reads that go back in time', () => {
      const h: Operation[] = [update(0, 0, 20, 2, '1'), read(1, 1, 3, 2, '1'), read(1, 4, 5, 1, '0')];
      assert.equal(checkLinearizable(v0, h).linearizable, false);
    });
  });

  describe('generated histories (property)', () => {
    // A true execution: operations take effect at distinct instants; each one's interval is
    // stretched around its instant at random, so intervals overlap as concurrent ones do.
    const execution = fc.array(
      fc.record({ kind: fc.constantFrom('read', 'update', 'cas'), client: fc.integer({ min: 0, max: 4 }), before: fc.nat(30), after: fc.nat(30), casOff: fc.boolean() }),
      { minLength: 1, maxLength: 24 },
    );
    const build = (ops: { kind: string; client: number; before: number; after: number; casOff: boolean }[]): Operation[] => {
      let state = v0;
      return ops.map((o, i): Operation => {
        const at = i * 10;
        const call = at - o.before;
        const ret = at + o.after;
        if (o.kind === 'read') return read(o.client, call, ret, state.version, state.value);
        if (o.kind === 'update') {
          state = { version: state.version + 1, value: inc(state.value) };
          return update(o.client, call, ret, state.version, state.value);
        }
        const expectedVersion = o.casOff ? state.version + 7 : state.version;
        const ok = expectedVersion === state.version;
        if (ok) state = { version: state.version + 1, value: `c${i}` };
        return { kind: 'cas', client: o.client, call, ret, expectedVersion, value: `c${i}`, output: ok ? { ok, version: state.version } : { ok } };
      });
    };

    it('every history of a real execution is linearizable', () => {
      fc.assert(
        fc.property(execution, (ops) => {
          const r = checkLinearizable(v0, build(ops));
          assert.ok(r.linearizable, `explored ${r.explored}`);
        }),
        { numRuns: 300 },
      );
    });

    it('a read of a version that never existed is always caught', () => {
      fc.assert(
        fc.property(execution, fc.nat(), (ops, pick) => {
          const h = build(ops);
          const reads = h.map((op, i) => [op, i] as const).filter(([op]) => op.kind === 'read');
          fc.pre(reads.length > 0);
          const [op, i] = reads[pick % reads.length]!;
          h[i] = { ...op, output: { version: 999, value: 'never' } } as Operation;
          assert.equal(checkLinearizable(v0, h).linearizable, false);
        }),
        { numRuns: 200 },
      );
    });
  });
});
