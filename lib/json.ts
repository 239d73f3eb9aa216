/** Plain-JSON values: the check that names the offending path, deep freezing, and equality. */
import { SharedStructError } from './errors.js';

/** A value that survives JSON encoding unchanged. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * `T` with every property and element read-only, all the way down: the type of what the cache
 * hands out (`read()`, events, write results), which is deep-frozen at run time. Mutate a draft
 * in `update()` instead.
 */
export type DeepReadonly<T> = T extends (...args: never[]) => unknown ? T : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'bigint') return 'a BigInt';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  const ctor = (value as object).constructor?.name;
  return ctor ? `an instance of ${ctor}` : 'a non-plain object';
}

function pathText(path: readonly (string | number)[]): string {
  if (path.length === 0) return '(root)';
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('');
}

/**
 * Throws `INVALID_VALUE` naming the path of the first part of `value` that is not plain JSON:
 * `undefined`, functions, symbols, BigInt, NaN and ±Infinity, cycles, and objects whose
 * prototype is not `Object.prototype` or `null` (class instances, Date, Map, Set, ...).
 */
export function assertPlainJson(value: unknown): asserts value is JsonValue {
  // One path stack and one ancestor stack for the whole walk (the path is copied only for an
  // error): this runs on every write, so it allocates nothing per value but Object.keys.
  visitJson(value, [], [], false);
}

/**
 * {@link assertPlainJson} for the result of a draft: a frozen object is one the cache already
 * checked (the draft shares it), so only its prototype is looked at and its inside is not
 * walked again. The check costs the new nodes, not the struct.
 */
export function assertPlainJsonNew(value: unknown, path: readonly (string | number)[] = []): asserts value is JsonValue {
  visitJson(value, [...path], [], true);
}

/**
 * {@link assertPlainJson} of a value found at `path` (the path its errors name), walked all the
 * way down, frozen nodes included.
 */
export function assertPlainJsonAt(value: unknown, path: readonly (string | number)[]): asserts value is JsonValue {
  visitJson(value, [...path], [], false);
}

function visitJson(v: unknown, path: (string | number)[], ancestors: object[], skipFrozen: boolean): void {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(v)) fail(v, path);
      return;
    case 'object': {
      if (v === null) return;
      if (skipFrozen && Object.isFrozen(v)) {
        const proto: unknown = Object.getPrototypeOf(v);
        if (!Array.isArray(v) && proto !== Object.prototype && proto !== null) fail(v, path);
        return;
      }
      // A cycle can only go through an ancestor; JSON is rarely more than a few levels deep.
      if (ancestors.includes(v)) {
        throw new SharedStructError('INVALID_VALUE', `value has a cycle at ${pathText(path)}`, { details: { path: [...path] } });
      }
      ancestors.push(v);
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          path.push(i);
          if (!(i in v)) fail(undefined, path);
          visitJson(v[i], path, ancestors, skipFrozen);
          path.pop();
        }
      } else {
        const proto: unknown = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) fail(v, path);
        if (Object.getOwnPropertySymbols(v).length > 0) fail(Symbol(), path);
        const keys = Object.keys(v);
        for (let i = 0; i < keys.length; i++) {
          const k = keys[i]!;
          path.push(k);
          visitJson((v as Record<string, unknown>)[k], path, ancestors, skipFrozen);
          path.pop();
        }
      }
      ancestors.pop();
      return;
    }
    default:
      fail(v, path);
  }
}

function fail(value: unknown, path: (string | number)[]): never {
  throw new SharedStructError('INVALID_VALUE', `value is not plain JSON at ${pathText(path)}: ${describe(value)}; store only null, booleans, finite numbers, strings, arrays and plain objects (convert dates to strings, maps to objects)`, {
    details: { path: [...path] },
  });
}

/** Freezes `value` and everything inside it; returns it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const child: unknown = value[i];
        if (typeof child === 'object' && child !== null) deepFreeze(child);
      }
    } else {
      for (const k in value) {
        const child: unknown = value[k];
        if (typeof child === 'object' && child !== null) deepFreeze(child);
      }
    }
  }
  return value;
}

/**
 * Freezes `value` and everything inside it, through nodes that are frozen already (an object the
 * caller froze may still hold mutable ones); returns it. `value` must be plain JSON (no cycles).
 */
export function deepFreezeAll<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    Object.freeze(value);
    for (const child of Object.values(value) as unknown[]) if (typeof child === 'object' && child !== null) deepFreezeAll(child);
  }
  return value;
}

/**
 * Whether two plain-JSON values are equal as JSON: key order and prototypes do not matter.
 * Stops at the first difference, so telling a real change from a no-op is cheap.
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = Object.keys(x);
  if (keys.length !== Object.keys(y).length) return false;
  for (const k of keys) {
    if (!Object.prototype.hasOwnProperty.call(y, k) || !jsonEqual(x[k], y[k])) return false;
  }
  return true;
}
