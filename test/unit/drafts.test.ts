import assert from 'node:assert/strict';
import fc from 'fast-check';
import { applyChanges, diffValues, type Change } from '../../lib/index.js';
import { deepFreeze, jsonEqual } from '../../lib/json.js';
import { changeEvent } from '../../lib/fanout.js';
import { changesFromPatches, finish, makeDraft, undraft } from '../../lib/struct/drafts.js';

type Obj = Record<string, unknown>;

const sortChanges = (cs: readonly Change[]): string[] => cs.map((c) => JSON.stringify(c)).sort();

/** Every container of `root` (the draft), found by walking it: edits pick one by index. */
function containers(root: unknown): unknown[] {
  const out: unknown[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (typeof v !== 'object' || v === null || depth > 4) return;
    out.push(v);
    for (const k of Object.keys(v)) walk((v as Obj)[k], depth + 1);
  };
  walk(root, 0);
  return out;
}

type Edit = { readonly pick: number; readonly kind: 'set' | 'delete' | 'push' | 'splice' | 'pop'; readonly key: string; readonly value: unknown };

const edit = fc.record({
  pick: fc.nat(),
  kind: fc.constantFrom<Edit['kind']>('set', 'delete', 'push', 'splice', 'pop'),
  key: fc.constantFrom('a', 'b', 'c', '', '0', '1'),
  value: fc.jsonValue({ maxDepth: 2 }),
});

function applyEdit(draft: unknown, e: Edit): void {
  const all = containers(draft);
  const target = all[e.pick % all.length] as Obj | unknown[];
  if (Array.isArray(target)) {
    const i = target.length === 0 ? 0 : e.pick % target.length;
    if (e.kind === 'push') target.push(e.value);
    else if (e.kind === 'splice') target.splice(i, 1);
    else if (e.kind === 'pop') target.pop();
    else if (e.kind === 'delete') target.splice(i, 1, e.value, e.value);
    else if (i < target.length) target[i] = e.value;
    return;
  }
  if (e.kind === 'delete' || e.kind === 'pop') delete target[e.key];
  else target[e.key] = e.value;
}

describe('drafts (copy-on-write, immer)', () => {
  it('the change list from patches folds to the result and equals a full deep-diff (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 3 }), fc.jsonValue({ maxDepth: 3 })), fc.array(edit, { minLength: 1, maxLength: 8 }), (base, edits) => {
        const before = deepFreeze(structuredClone(base) as Obj);
        const draft = makeDraft(before);
        for (const e of edits) applyEdit(draft, e);
        const { value: after, patches } = finish(draft);
        const fromPatches = changesFromPatches(before, after, patches, true);
        assert.ok(jsonEqual(applyChanges(before, fromPatches), after), 'the fold reproduces the result');
        assert.deepEqual(sortChanges(fromPatches), sortChanges(diffValues(before, after)));
      }),
      { numRuns: 400 },
    );
  });

  it('shares every untouched subtree with the base and leaves the base as it was', () => {
    const before = deepFreeze({ big: { list: [1, 2, 3] }, small: { n: 1 }, other: { deep: { x: 1 } } });
    const draft = makeDraft(before);
    draft.small.n = 2;
    const { value, patches } = finish(draft);
    assert.equal(value.big, before.big);
    assert.equal(value.other, before.other);
    assert.notEqual(value.small, before.small);
    assert.equal(before.small.n, 1);
    assert.deepEqual(changesFromPatches(before, value, patches, true), [{ kind: 'Modified', path: ['small', 'n'], oldValue: 1, value: 2 }]);
  });

  it('an untouched draft gives the base itself and no patch', () => {
    const before = deepFreeze({ a: [1] });
    const draft = makeDraft(before);
    void draft.a[0];
    const { value, patches } = finish(draft);
    assert.equal(value, before);
    assert.equal(patches.length, 0);
  });

  it('undraft replaces drafts inside a value by snapshots that outlive the draft', () => {
    const before = deepFreeze({ a: { n: 1 }, b: [1, 2] });
    const draft = makeDraft(before);
    draft.a.n = 5;
    const built = undraft({ keep: draft.a, list: [draft.b], plain: 3 });
    finish(draft);
    assert.deepEqual(built, { keep: { n: 5 }, list: [[1, 2]], plain: 3 });
    const plain = { x: [1] };
    assert.equal(undraft(plain), plain, 'a value without drafts is not copied');
  });

  it('a primitive value is its own draft', () => {
    assert.equal(makeDraft(5), 5);
    assert.equal(makeDraft(null), null);
  });
  it('an event takes the known change list only from the value it was made from (a new life at the same version is diffed)', () => {
    const made = deepFreeze({ a: 1, b: 1 });
    const draft = makeDraft(made);
    draft.a = 2;
    const { value, patches } = finish(draft);
    const known = (from: unknown): readonly Change[] | undefined => (from === made ? changesFromPatches(made, value, patches, true) : undefined);
    const fields = { version: 2, previousVersion: 1, revision: '9', origin: 'local' as const, coalesced: false, value };
    assert.deepEqual(changeEvent(fields, made, undefined, known).changes, [{ kind: 'Modified', path: ['a'], oldValue: 1, value: 2 }]);
    const otherLife = deepFreeze({ a: 7, b: 3 });
    const ev = changeEvent(fields, otherLife, undefined, known);
    assert.deepEqual(applyChanges(otherLife, ev.changes), value);
  });
});
