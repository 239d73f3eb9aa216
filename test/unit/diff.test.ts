import assert from 'node:assert/strict';
import fc from 'fast-check';
import { applyChanges, diffValues } from '../../lib/index.js';
import { changeEvent } from '../../lib/fanout.js';
import { jsonEqual } from '../../lib/json.js';

describe('diffValues / applyChanges', () => {
  it('folding the diff of any two JSON values reproduces the second (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => {
        const changes = diffValues(a, b);
        assert.deepEqual(applyChanges(a, changes), b);
        if (changes.length === 0) assert.deepEqual(a, b);
      }),
      { numRuns: 500 },
    );
  });

  it('folds a chain of random edits (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { minLength: 2, maxLength: 6 }), (values) => {
        let v: unknown = values[0];
        for (let i = 1; i < values.length; i++) v = applyChanges(v, diffValues(values[i - 1], values[i]));
        assert.deepEqual(v, values[values.length - 1]);
      }),
      { numRuns: 200 },
    );
  });

  it('maps to Added / Removed / Modified with array indices in the path', () => {
    assert.deepEqual(diffValues({ a: [1, 2] }, { a: [1, 3, 4] }), [
      { kind: 'Added', path: ['a', 2], value: 4 },
      { kind: 'Modified', path: ['a', 1], oldValue: 2, value: 3 },
    ]);
    assert.deepEqual(diffValues({ k: {} }, { k: { '': 0 } }), [{ kind: 'Added', path: ['k', ''], value: 0 }]);
    assert.deepEqual(diffValues({ x: 1 }, {}), [{ kind: 'Removed', path: ['x'], oldValue: 1 }]);
    assert.deepEqual(diffValues(1, 2), [{ kind: 'Modified', path: [], oldValue: 1, value: 2 }]);
    assert.deepEqual(diffValues({ same: true }, { same: true }), []);
  });

  it('a key named __proto__ is data, never a prototype', () => {
    const after = JSON.parse('{"__proto__": {"polluted": true}}') as object;
    const out = applyChanges<Record<string, unknown>>({}, diffValues({}, after));
    assert.deepEqual(Object.keys(out), ['__proto__']);
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('applyChanges does not touch its input', () => {
    const input = Object.freeze({ a: Object.freeze([1]) });
    const out = applyChanges(input, diffValues(input, { a: [1, 2] }));
    assert.deepEqual(out, { a: [1, 2] });
    assert.deepEqual(input, { a: [1] });
  });
});

describe('jsonEqual (the no-op test of a write)', () => {
  it('agrees with "the diff is empty" on any two JSON values, and ignores key order (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => {
        assert.equal(jsonEqual(a, b), diffValues(a, b).length === 0);
        assert.equal(jsonEqual(a, JSON.parse(JSON.stringify(a)) as unknown), true);
      }),
      { numRuns: 500 },
    );
    assert.equal(jsonEqual({ a: 1, b: [1, { c: null }] }, { b: [1, { c: null }], a: 1 }), true);
    assert.equal(jsonEqual({ a: 1 }, { a: 1, b: undefined }), false);
    assert.equal(jsonEqual([1, 2], { 0: 1, 1: 2 }), false);
  });
});

describe('change events', () => {
  it('diff on first access only, keep the result, and show changes to spread and JSON.stringify', () => {
    const before = Object.freeze({ a: 1, list: Object.freeze([1]) });
    const after = Object.freeze({ a: 2, list: Object.freeze([1, 2]) });
    const ev = changeEvent({ version: 2, previousVersion: 1, revision: '7', origin: 'remote', coalesced: false, value: after }, before);
    assert.ok(Object.isFrozen(ev));
    const first = ev.changes;
    assert.equal(ev.changes, first, 'computed once');
    assert.deepEqual(applyChanges(before, first), after);
    assert.deepEqual({ ...ev }.changes, first);
    assert.deepEqual((JSON.parse(JSON.stringify(ev)) as { changes: unknown }).changes, JSON.parse(JSON.stringify(first)));
    assert.deepEqual(structuredClone(ev).changes, first);
  });
});
