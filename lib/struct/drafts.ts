/**
 * Copy-on-write drafts (immer): `update(fn)` gets a draft of the cached, frozen value; the result
 * shares every subtree `fn` did not touch with it, so the plain-JSON check, the freeze and the
 * change list cost what changed, not the size of the struct. docs/PERFORMANCE.md says why immer.
 */
import { Immer, current, enablePatches, isDraft, isDraftable, type Patch } from 'immer';
import { diffValues, type Change, type Path } from '../diff.js';
import { SharedStructError } from '../errors.js';

enablePatches();

/** Our own instance: no auto-freeze (we freeze the new nodes ourselves), and no global setting touched. */
const immer = new Immer({ autoFreeze: false });

/** A draft of `value` (a deep-frozen cached value); a primitive is its own draft. */
export function makeDraft<T>(value: T): T {
  return isDraftable(value) ? (immer.createDraft(value as object) as T) : value;
}

/** Whether `value` is a live draft made by {@link makeDraft}. */
export function isLiveDraft(value: unknown): boolean {
  return isDraft(value);
}

/**
 * Ends a draft: the next value (its unchanged subtrees are the base's own, frozen objects; the
 * new ones are not frozen yet) and the patches that lead there. The draft is revoked.
 */
export function finish<T>(draft: T): { readonly value: T; readonly patches: readonly Patch[] } {
  let patches: readonly Patch[] = [];
  try {
    const value = immer.finishDraft(draft, (p) => (patches = p)) as T;
    return { value, patches };
  } catch (err) {
    throw new SharedStructError('INVALID_VALUE', `the draft could not be turned into a value (${(err as Error).message}); store only plain JSON, without cycles`, { cause: err });
  }
}

/**
 * The nodes of a finished draft's `value` that `fn` assigned (each add or replace patch's target;
 * immer computes its patches from the final state, so each is where the assigned value is now),
 * with their paths. Everything else in `value` is the base's own (frozen, already checked) or a
 * copy immer made of a base node on the way to a change. An assigned object may be the caller's,
 * frozen by the caller with anything inside: it must be checked and frozen all the way down.
 */
export function assignedNodes(value: unknown, patches: readonly Patch[]): { readonly node: object; readonly path: readonly (string | number)[] }[] {
  const out: { node: object; path: readonly (string | number)[] }[] = [];
  for (const p of patches) {
    if (p.op === 'remove') continue;
    let node: unknown = value;
    for (const k of p.path) {
      if (typeof node !== 'object' || node === null) break;
      node = (node as Record<string | number, unknown>)[k];
    }
    if (typeof node === 'object' && node !== null) out.push({ node, path: p.path });
  }
  return out;
}

/**
 * `value` with every live draft inside it replaced by a plain snapshot, so it outlives the
 * draft (a value `fn` returned, or `modify`'s result). Containers are copied only where a draft
 * was replaced; a value without drafts is returned as it is.
 */
export function undraft<V>(value: V): V {
  if (isDraft(value)) return current(value as object) as V;
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  const proto: unknown = Object.getPrototypeOf(value);
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const u = undraft(v);
      if (u !== v) (out ??= [...(value as unknown[])])[i] = u;
    }
    return (out ?? value) as V;
  }
  if (proto !== Object.prototype && proto !== null) return value;
  let out: Record<string, unknown> | undefined;
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    const v = o[k];
    const u = undraft(v);
    if (u !== v) {
      out ??= { ...o };
      Object.defineProperty(out, k, { value: u, writable: true, enumerable: true, configurable: true });
    }
  }
  return (out ?? value) as V;
}

/**
 * The change list from `before` to `after` (the result of a draft with `patches`): deep-diff run
 * only on the subtrees the patches touched, so it is the same list a full deep-diff gives (up to
 * the order of disjoint subtrees, which the fold does not see) at the cost of what changed. An
 * array element's change is diffed from the array (its indices may have shifted).
 */
export function changesFromPatches(before: unknown, after: unknown, patches: readonly Patch[], mayHaveEmptyKeys: boolean): Change[] {
  const roots: Path[] = [];
  for (const p of patches) {
    const path = p.path as Path;
    if (path.length === 0) return diffValues(before, after, { mayHaveEmptyKeys });
    const parentPath = path.slice(0, -1);
    const parentAfter = at(after, parentPath);
    const parentBefore = at(before, parentPath);
    roots.push(Array.isArray(parentAfter) || Array.isArray(parentBefore) ? parentPath : path);
  }
  const out: Change[] = [];
  for (const root of minimalRoots(roots)) {
    for (const c of diffValues(at(before, root), at(after, root), { mayHaveEmptyKeys })) {
      out.push({ ...c, path: [...root, ...c.path] });
    }
  }
  return out;
}

/** The value at `path` inside `value` (own properties only), or undefined. */
export function at(value: unknown, path: Path): unknown {
  let node = value;
  for (const key of path) {
    if (typeof node !== 'object' || node === null || !Object.prototype.hasOwnProperty.call(node, key)) return undefined;
    node = (node as Record<string | number, unknown>)[key];
  }
  return node;
}

/** The paths of `paths` that no other one contains (a prefix covers everything below it), once each. */
function minimalRoots(paths: readonly Path[]): Path[] {
  const sorted = [...paths].sort((a, b) => a.length - b.length);
  const kept: Path[] = [];
  const seen = new Set<string>();
  outer: for (const p of sorted) {
    const parts = p.map(String);
    for (let i = 1; i <= parts.length; i++) if (seen.has(JSON.stringify(parts.slice(0, i)))) continue outer;
    seen.add(JSON.stringify(parts));
    kept.push(p);
  }
  return kept;
}
