/** Plain-JSON values: the check that names the offending path, deep freezing, and equality. */
import { SharedStructError } from './errors.js';

/** A value that survives JSON encoding unchanged. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

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
  // One path stack for the whole walk (copied only for an error): this runs on every write.
  const path: (string | number)[] = [];
  const stack = new Set<object>();
  const visit = (v: unknown): void => {
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return;
      case 'number':
        if (!Number.isFinite(v)) fail(v, path);
        return;
      case 'object': {
        if (v === null) return;
        if (stack.has(v)) {
          throw new SharedStructError('INVALID_VALUE', `value has a cycle at ${pathText(path)}`, { details: { path: [...path] } });
        }
        stack.add(v);
        if (Array.isArray(v)) {
          for (let i = 0; i < v.length; i++) {
            path.push(i);
            if (!(i in v)) fail(undefined, path);
            visit(v[i]);
            path.pop();
          }
        } else {
          const proto: unknown = Object.getPrototypeOf(v);
          if (proto !== Object.prototype && proto !== null) fail(v, path);
          if (Object.getOwnPropertySymbols(v).length > 0) fail(Symbol(), path);
          for (const k of Object.keys(v)) {
            path.push(k);
            visit((v as Record<string, unknown>)[k]);
            path.pop();
          }
        }
        stack.delete(v);
        return;
      }
      default:
        fail(v, path);
    }
  };
  visit(value);
}

function fail(value: unknown, path: (string | number)[]): never {
  throw new SharedStructError('INVALID_VALUE', `value is not plain JSON at ${pathText(path)}: ${describe(value)}`, {
    details: { path: [...path] },
  });
}

/** Freezes `value` and everything inside it; returns it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
