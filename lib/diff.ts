/** Structural diffs as Added / Modified / Removed, from deep-diff, and their inverse `applyChanges`. */
import deepDiff from 'deep-diff';
import type { JsonValue } from './json.js';

/** A path into a JSON value: object keys and array indices. */
export type Path = readonly (string | number)[];

/** One change between two versions of a struct. */
export type Change =
  | { readonly kind: 'Added'; readonly path: Path; readonly value: unknown }
  | { readonly kind: 'Removed'; readonly path: Path; readonly oldValue: unknown }
  | { readonly kind: 'Modified'; readonly path: Path; readonly oldValue: unknown; readonly value: unknown };

/**
 * The changes that turn `before` into `after`, in an order that {@link applyChanges} can replay.
 * Empty when the two are equal. `mayHaveEmptyKeys: false` (the caller knows `after` has no key
 * named `''`) skips the pass that makes up for deep-diff's blind spot.
 */
export function diffValues(before: unknown, after: unknown, options: { mayHaveEmptyKeys?: boolean } = {}): Change[] {
  const out: Change[] = [];
  for (const d of deepDiff.diff(before, after) ?? []) {
    const base = (d.path ?? []) as (string | number)[];
    if (d.kind === 'A') {
      push(out, [...base, d.index], d.item);
    } else {
      push(out, base, d);
    }
  }
  if (options.mayHaveEmptyKeys !== false) addEmptyKeys(before, after, [], out);
  return out;
}

/**
 * deep-diff 1.0.2 never reports an added key named `''` (it skips falsy keys while looking for
 * its own `null` markers). JSON allows that key and foreign writers may use it, so find those
 * additions here: only where both sides are containers of the same kind, as deep-diff descends.
 */
function addEmptyKeys(before: unknown, after: unknown, path: (string | number)[], out: Change[]): void {
  if (typeof before !== 'object' || typeof after !== 'object' || before === null || after === null) return;
  if (Array.isArray(before) !== Array.isArray(after)) return;
  if (Array.isArray(before)) {
    const b = before as unknown[];
    const a = after as unknown[];
    for (let i = 0; i < Math.min(b.length, a.length); i++) addEmptyKeys(b[i], a[i], [...path, i], out);
    return;
  }
  const b = before as Record<string, unknown>;
  const a = after as Record<string, unknown>;
  if (Object.prototype.hasOwnProperty.call(a, '') && !Object.prototype.hasOwnProperty.call(b, '')) {
    out.push({ kind: 'Added', path: [...path, ''], value: a[''] });
  }
  for (const k of Object.keys(a)) {
    if (Object.prototype.hasOwnProperty.call(b, k)) addEmptyKeys(b[k], a[k], [...path, k], out);
  }
}

function push(out: Change[], path: (string | number)[], d: deepDiff.Diff<unknown, unknown>): void {
  switch (d.kind) {
    case 'N':
      out.push({ kind: 'Added', path, value: d.rhs });
      break;
    case 'D':
      out.push({ kind: 'Removed', path, oldValue: d.lhs });
      break;
    case 'E':
      out.push({ kind: 'Modified', path, oldValue: d.lhs, value: d.rhs });
      break;
    case 'A':
      push(out, [...path, d.index], d.item);
      break;
  }
}

/**
 * Applies `changes` in order to a copy of `value` and returns the result; `value` is not touched.
 * Folding every change event of a struct over its first value yields its current value.
 *
 * @example
 * ```ts
 * let mirror = first.value;
 * for await (const ev of flags.changes()) mirror = applyChanges(mirror, ev.changes);
 * ```
 */
export function applyChanges<T = JsonValue>(value: unknown, changes: readonly Change[]): T {
  let root: unknown = structuredClone(value);
  for (const change of changes) {
    if (change.path.length === 0) {
      root = change.kind === 'Removed' ? undefined : structuredClone(change.value);
      continue;
    }
    const parent = walk(root, change.path);
    const last = change.path[change.path.length - 1]!;
    if (change.kind === 'Removed') {
      if (Array.isArray(parent) && typeof last === 'number') parent.splice(last, 1);
      else delete (parent as Record<string, unknown>)[last];
    } else {
      setOwn(parent, last, structuredClone(change.value));
    }
  }
  return root as T;
}

function walk(root: unknown, path: Path): object {
  let node = root as Record<string | number, unknown>;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!;
    if (!Object.prototype.hasOwnProperty.call(node, key) || typeof node[key] !== 'object' || node[key] === null) {
      setOwn(node, key, typeof path[i + 1] === 'number' ? [] : {});
    }
    node = node[key] as Record<string | number, unknown>;
  }
  return node;
}

/** Sets an own data property: a key named `__proto__` must not reach the prototype setter. */
function setOwn(target: object, key: string | number, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}
