/** Pure mappings between etcd's wire shapes (etcd3's proto objects) and the backend's types. */
import type { IKeyValue } from 'etcd3';
import type { Entry, EntryStat, WatchTarget } from '../../lib/backend.js';

/** A key as etcd bytes. */
export function keyBytes(key: string): Buffer {
  return Buffer.from(key, 'utf8');
}

/** A value as a Buffer view over the same memory (gRPC wants a Buffer; no copy). */
export function valueBytes(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/**
 * The key range `[key, rangeEnd)` of the children of `prefix`: everything below `prefix/`.
 * `'0'` is the byte after `'/'`, so `prefix0` ends the range.
 */
export function childRange(prefix: string): { key: Buffer; range_end: Buffer } {
  return { key: keyBytes(`${prefix}/`), range_end: keyBytes(`${prefix}0`) };
}

/** The etcd key range a watch target covers (a prefix target also covers deeper keys: filter them). */
export function targetRange(target: WatchTarget): { key: Buffer; range_end?: Buffer } {
  return 'key' in target ? { key: keyBytes(target.key) } : childRange(target.prefix);
}

/** Whether `key` is a direct child of `prefix` (etcd ranges include grandchildren). */
export function isDirectChild(prefix: string, key: string): boolean {
  const head = `${prefix}/`;
  return key.startsWith(head) && key.length > head.length && !key.slice(head.length).includes('/');
}

/** Whether `key` is what `target` watches. */
export function matchesTarget(target: WatchTarget, key: string): boolean {
  return 'key' in target ? key === target.key : isDirectChild(target.prefix, key);
}

/**
 * A stored etcd key as an {@link Entry}. `value` overrides the wire value (after a write the
 * adapter reads keys-only and already holds the bytes it wrote). A key with a lease is
 * ephemeral: only session-bound keys get one.
 */
export function toEntry(kv: IKeyValue, value?: Uint8Array): Entry {
  const bytes = value ?? new Uint8Array(kv.value.buffer, kv.value.byteOffset, kv.value.byteLength);
  return Object.freeze({
    key: kv.key.toString('utf8'),
    value: bytes,
    version: Number(kv.version),
    revision: BigInt(kv.mod_revision),
    createRevision: BigInt(kv.create_revision),
    ephemeral: kv.lease !== '0' && kv.lease !== '',
  });
}

/** The version-only view of a stored key. */
export function toStat(kv: IKeyValue): EntryStat {
  return Object.freeze({
    version: Number(kv.version),
    revision: BigInt(kv.mod_revision),
    createRevision: BigInt(kv.create_revision),
  });
}

/** Orders entries by create revision; keys created by one txn share it and fall back to key order. */
export function byCreateRevision(a: Entry, b: Entry): number {
  if (a.createRevision !== b.createRevision) return a.createRevision < b.createRevision ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** A lease id (etcd3 gives decimal strings of an int64) as lower-case hex. */
export function leaseHex(id: string): string {
  return BigInt.asUintN(64, BigInt(id)).toString(16);
}
