/**
 * The per-field layout (`layout: 'fields'`, SPEC "Per-field layout for large structs"): a
 * top-level object stored one key per top-level field under `<name>/fields/<escaped name>`,
 * with a small head at `<name>/payload` whose version is the struct's version.
 *
 * The head lists every field, in the object's key order, with the struct version that last
 * wrote it; each field's bytes start with that same version (its stamp). A write is one
 * transaction (compare the head's version and life, put the head, put or create the changed
 * fields, delete the removed ones), so it commits whole or not at all. A reader that has the
 * head at version v (from the watch or a consistent read) and a cached value at version c of the
 * same life reads only the fields whose version is above c, and takes a field only when its stamp
 * is the one the head names: a stamp above it means a newer write replaced the field after that
 * head, so the reader fetches a newer head and starts again. It never puts together fields of
 * two writes. docs/ZOOKEEPER.md and docs/ETCD.md say what that costs on each store.
 */
import type { ErrorObject } from 'ajv';
import type { Backend, Entry, Txn, TxnOp } from '../backend.js';
import { decodeFramed, encodeFramed, type Codec } from '../codec.js';
import { diffValues, type Change } from '../diff.js';
import { SharedStructError, isSharedStructError } from '../errors.js';
import { assertPlainJson, assertPlainJsonNew, deepFreeze, jsonEqual } from '../json.js';
import { schemaErrorText } from '../schema.js';

/** How a struct is stored: the whole value in one key (default), or one key per top-level field. */
export type Layout = 'value' | 'fields';

const HEAD_MAGIC = [0x00, 0x53, 0x53, 0x48, 0x01] as const; // \0 S S H, format 1
const FIELD_MAGIC = [0x00, 0x53, 0x53, 0x46, 0x01] as const; // \0 S S F, format 1
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** The layout the stored payload bytes were written with (a JSON text never starts with 0x00). */
export function storedLayout(bytes: Uint8Array): Layout {
  return HEAD_MAGIC.every((b, i) => bytes[i] === b) ? 'fields' : 'value';
}

/** A head: every field, in key order, with the struct version that last wrote it. */
export type Head = ReadonlyMap<string, number>;

export function encodeHead(head: Head): Uint8Array {
  const body = encoder.encode(JSON.stringify({ layout: 'fields', fields: [...head] }));
  const out = new Uint8Array(HEAD_MAGIC.length + body.length);
  out.set(HEAD_MAGIC, 0);
  out.set(body, HEAD_MAGIC.length);
  return out;
}

/** The head in `bytes`; throws `CORRUPT_REMOTE_VALUE` when they are not one. */
export function decodeHead(bytes: Uint8Array): Head {
  if (storedLayout(bytes) !== 'fields') throw new SharedStructError('CORRUPT_REMOTE_VALUE', 'its payload is not a per-field head');
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes.subarray(HEAD_MAGIC.length)));
  } catch (err) {
    throw new SharedStructError('CORRUPT_REMOTE_VALUE', 'its per-field head cannot be decoded', { cause: err });
  }
  const fields = (parsed as { fields?: unknown } | null)?.fields;
  if (!Array.isArray(fields) || !fields.every((f) => Array.isArray(f) && f.length === 2 && typeof f[0] === 'string' && Number.isInteger(f[1]) && (f[1] as number) >= 1)) {
    throw new SharedStructError('CORRUPT_REMOTE_VALUE', 'its per-field head has no valid field list');
  }
  return new Map(fields as [string, number][]);
}

const SAFE = /[A-Za-z0-9_-]/;

/**
 * A field name as one key segment, for any JSON key (the empty one, `.`, `/`, any Unicode): `_`
 * then the name, with every UTF-8 byte outside `[A-Za-z0-9_-]` written `.hh`. Injective, and
 * valid on every store (never empty, `.` or `..`; no `/`; ASCII only).
 */
export function escapeField(name: string): string {
  let out = '_';
  for (const ch of name) {
    if (SAFE.test(ch)) out += ch;
    else for (const b of encoder.encode(ch)) out += `.${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The inverse of {@link escapeField}. */
export function unescapeField(segment: string): string {
  if (!segment.startsWith('_')) throw new SharedStructError('INVALID_ARGUMENT', `'${segment}' is not an escaped field name`);
  const bytes: number[] = [];
  for (let i = 1; i < segment.length; i++) {
    if (segment[i] === '.') {
      bytes.push(Number.parseInt(segment.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(segment.charCodeAt(i));
  }
  return decoder.decode(Uint8Array.from(bytes));
}

function encodeField(codec: Codec, version: number, value: unknown): Uint8Array {
  const stamp = encoder.encode(`${version}\n`);
  const body = encodeFramed(codec, value);
  const out = new Uint8Array(FIELD_MAGIC.length + stamp.length + body.length);
  out.set(FIELD_MAGIC, 0);
  out.set(stamp, FIELD_MAGIC.length);
  out.set(body, FIELD_MAGIC.length + stamp.length);
  return out;
}

/** A field's stamp and body; undefined when the bytes are not a field record. */
export function decodeField(bytes: Uint8Array): { version: number; body: Uint8Array } | undefined {
  if (!FIELD_MAGIC.every((b, i) => bytes[i] === b)) return undefined;
  const nl = bytes.indexOf(0x0a, FIELD_MAGIC.length);
  if (nl < 0) return undefined;
  const version = Number(decoder.decode(bytes.subarray(FIELD_MAGIC.length, nl)));
  return Number.isInteger(version) ? { version, body: bytes.subarray(nl + 1) } : undefined;
}

/** A fields-layout write: the head's bytes, and every op of its transaction (the head's put first). */
export interface FieldsWrite {
  readonly head: Uint8Array;
  readonly ops: readonly TxnOp[];
  /** The fields it puts, creates or deletes. */
  readonly changed: readonly string[];
}

/** What a read put together for a head entry: the value, or why it is corrupt. */
export type Assembled<T> =
  | { readonly value: T; readonly known?: ((before: unknown) => readonly Change[] | undefined) | undefined }
  | { readonly error: SharedStructError };

/** The value a reader builds on: the cached one, if of the same life. */
export interface FieldsBase<T> {
  readonly value: T;
  readonly bytes: Uint8Array;
  readonly version: number;
  readonly createRevision: bigint;
}

const MAX_CATCH_UP = 50;

/** The per-field layout of one struct instance. */
export class FieldsLayout<T> {
  readonly #name: string;
  readonly #key: string;
  readonly #codec: Codec;
  readonly #validate: ((value: unknown) => readonly ErrorObject[] | undefined) | undefined;
  readonly #maxBytes: number;
  readonly #maxOps: number;
  readonly #txnOps: (txn: Txn) => number;
  readonly #kind: string;
  /** What was put together for each head entry this instance handed to the cache. */
  readonly #assembled = new WeakMap<Entry, Assembled<T>>();
  readonly #heads = new WeakMap<Uint8Array, Head>();

  /** `key` is the struct's key (`<namespace>/<name>`); the head is `<key>/payload`. */
  constructor(name: string, key: string, codec: Codec, validate: ((value: unknown) => readonly ErrorObject[] | undefined) | undefined, limits: { maxValueBytes: number; maxTxnOps?: number | undefined; txnOps?: ((txn: Txn) => number) | undefined; kind: string }) {
    this.#name = name;
    this.#key = key;
    this.#codec = codec;
    this.#validate = validate;
    this.#maxBytes = limits.maxValueBytes;
    this.#maxOps = limits.maxTxnOps ?? Number.POSITIVE_INFINITY;
    this.#txnOps = limits.txnOps ?? ((txn) => txn.compare.length + txn.ops.length);
    this.#kind = limits.kind;
  }

  get headKey(): string {
    return `${this.#key}/payload`;
  }

  /** The folder of the field keys (ZooKeeper needs it as a parent before the first create). */
  get folder(): string {
    return `${this.#key}/fields`;
  }

  fieldKey(field: string): string {
    return `${this.folder}/${escapeField(field)}`;
  }

  /** The value put together for `entry` (a head this layout read or wrote), or undefined. */
  assembled(entry: Entry): Assembled<T> | undefined {
    return this.#assembled.get(entry);
  }

  /** Records that the store holds `value` at `entry` (our own committed write). */
  remember(entry: Entry, value: T): void {
    this.#assembled.set(entry, { value });
  }

  /** The head of cached bytes (memoized per bytes). */
  head(bytes: Uint8Array): Head {
    let h = this.#heads.get(bytes);
    if (!h) this.#heads.set(bytes, (h = decodeHead(bytes)));
    return h;
  }

  /**
   * Checks a whole value for a create: the ops, and the frozen value as stored. Throws
   * `INVALID_VALUE`, `SCHEMA_VALIDATION` or `VALUE_TOO_LARGE` before any request.
   */
  create(value: unknown): { readonly ops: readonly TxnOp[]; readonly value: T } {
    const obj = this.#object(value);
    assertPlainJson(obj);
    this.#schema(obj);
    const head = new Map<string, number>();
    const ops: TxnOp[] = [];
    for (const k of Object.keys(obj)) {
      head.set(k, 1);
      ops.push({ op: 'create', key: this.fieldKey(k), value: this.#fieldBytes(k, 1, obj[k]) });
    }
    ops.unshift({ op: 'create', key: this.headKey, value: encodeHead(head) });
    this.#checkTotal({ compare: [], ops });
    return { ops, value: deepFreeze(structuredClone(obj) as T) };
  }

  /**
   * A write of `next` over the cached `base` (head in `base.bytes`) that creates struct version
   * `version`: undefined when no field changes (unless `force`, which writes the head alone).
   * `fromDraft`: `next` shares its untouched subtrees with `base.value` (only new nodes are
   * checked).
   */
  write(base: FieldsBase<T>, next: unknown, options: { readonly fromDraft: boolean; readonly version: number; readonly force?: boolean; readonly touched?: ReadonlySet<string> | undefined }): FieldsWrite | undefined {
    const { fromDraft, version, force = false, touched } = options;
    const obj = this.#object(next);
    // A draft's patches name the fields it touched: the others are the cached objects themselves.
    if (touched) {
      for (const k of touched) if (Object.prototype.hasOwnProperty.call(obj, k)) assertPlainJsonNew(obj[k], [k]);
    }
    else if (fromDraft) assertPlainJsonNew(obj);
    else assertPlainJson(obj);
    const before = base.value as Record<string, unknown>;
    const oldHead = this.head(base.bytes);
    const head = new Map<string, number>();
    const fieldOps: TxnOp[] = [];
    const changed: string[] = [];
    for (const k of Object.keys(obj)) {
      const had = oldHead.get(k);
      if (had !== undefined && touched && !touched.has(k)) {
        head.set(k, had);
        continue;
      }
      const v = obj[k];
      if (had !== undefined && Object.prototype.hasOwnProperty.call(before, k) && (before[k] === v || jsonEqual(before[k], v))) {
        head.set(k, had);
        continue;
      }
      head.set(k, version);
      changed.push(k);
      const bytes = this.#fieldBytes(k, version, v);
      fieldOps.push(had === undefined ? { op: 'create', key: this.fieldKey(k), value: bytes } : { op: 'put', key: this.fieldKey(k), value: bytes });
    }
    for (const k of oldHead.keys()) {
      if (head.has(k)) continue;
      changed.push(k);
      fieldOps.push({ op: 'delete', key: this.fieldKey(k) });
    }
    const oldKeys = changed.length === 0 ? [...oldHead.keys()] : [];
    const sameOrder = changed.length === 0 && [...head.keys()].every((k, i) => k === oldKeys[i]);
    if (sameOrder && !force) return undefined;
    this.#schema(obj);
    const headBytes = encodeHead(head);
    this.#heads.set(headBytes, head);
    const ops: TxnOp[] = [{ op: 'put', key: this.headKey, value: headBytes }, ...fieldOps];
    this.#checkTotal({ compare: [{ key: this.headKey, version: version - 1, createRevision: base.createRevision }], ops });
    return { head: headBytes, ops, changed };
  }

  /** The ops that delete the struct whose head is `head`. */
  deleteOps(head: Head): TxnOp[] {
    return [{ op: 'delete', key: this.headKey }, ...[...head.keys()].map((k): TxnOp => ({ op: 'delete', key: this.fieldKey(k) }))];
  }

  /**
   * A consistent read of the struct: the head and what changed since `base`. Undefined when the
   * struct does not exist; the head entry alone when it is not newer than `base` (nothing else
   * is read); otherwise the head entry with its value put together (see {@link assembled}).
   */
  async read(backend: Backend, base: FieldsBase<T> | undefined, signal: AbortSignal | undefined): Promise<Entry | undefined> {
    for (let i = 0; ; i++) {
      const entry = await backend.get(this.headKey, { signal, consistent: true });
      if (!entry) return undefined;
      if (base && entry.createRevision === base.createRevision && entry.version <= base.version) return entry;
      const r = await this.assemble(backend, entry, base, signal);
      if (r !== 'moved') return entry;
      if (i >= MAX_CATCH_UP) {
        throw new SharedStructError('CONFLICT', `struct '${this.#name}' kept changing while it was read field by field (${MAX_CATCH_UP} heads in a row); read it again later`);
      }
    }
  }

  /**
   * Puts together the value of head `entry` from `base` and the fields written after it, and
   * records it for the entry. `'moved'` when a field was already replaced by a newer write (read
   * a newer head). A corrupt head or field is recorded as the entry's error.
   */
  async assemble(backend: Backend, entry: Entry, base: FieldsBase<T> | undefined, signal: AbortSignal | undefined): Promise<'ok' | 'moved'> {
    let head: Head;
    try {
      head = this.head(entry.value);
    } catch (err) {
      this.#assembled.set(entry, { error: this.#corrupt(entry, (err as Error).message, err) });
      return 'ok';
    }
    const sameLife = base !== undefined && base.createRevision === entry.createRevision;
    const prev = sameLife ? (base.value as Record<string, unknown>) : undefined;
    const prevHead = sameLife ? this.#tryHead(base.bytes) : undefined;
    const toRead = [...head].filter(([k, v]) => !prev || !prevHead || prevHead.get(k) !== v || !Object.prototype.hasOwnProperty.call(prev, k)).map(([k]) => k);
    const read = new Map<string, unknown>();
    let consistent = false;
    for (let attempt = 0; attempt < 2; attempt++) {
      const entries = await Promise.all(toRead.map((k) => backend.get(this.fieldKey(k), { signal, consistent })));
      let lagging = false;
      for (const [i, k] of toRead.entries()) {
        const e = entries[i];
        if (!e) return 'moved';
        const f = decodeField(e.value);
        if (!f) {
          this.#assembled.set(entry, { error: this.#corrupt(entry, `field '${k}' is not a field record`, undefined) });
          return 'ok';
        }
        const want = head.get(k)!;
        if (f.version > want) return 'moved';
        if (f.version < want) {
          lagging = true;
          break;
        }
        try {
          read.set(k, decodeFramed(this.#codec, f.body));
        } catch (err) {
          const why = isSharedStructError(err, 'CORRUPT_REMOTE_VALUE') ? `field '${k}': ${err.message}` : `field '${k}' cannot be decoded with codec '${this.#codec.name}'`;
          this.#assembled.set(entry, { error: this.#corrupt(entry, why, err) });
          return 'ok';
        }
      }
      if (!lagging) break;
      // A member behind the head we saw answered: ask again, linearizably.
      if (consistent) return 'moved';
      consistent = true;
      read.clear();
    }
    const value: Record<string, unknown> = {};
    for (const k of head.keys()) {
      const v = read.has(k) ? deepFreeze(read.get(k)) : prev![k];
      Object.defineProperty(value, k, { value: v, writable: true, enumerable: true, configurable: true });
    }
    const errors = this.#validate?.(value);
    if (errors) {
      this.#assembled.set(entry, { error: this.#corrupt(entry, `fails its schema: ${schemaErrorText(errors)}`, errors) });
      return 'ok';
    }
    deepFreeze(value);
    const removed = prev ? Object.keys(prev).filter((k) => !head.has(k)) : [];
    const changed = [...toRead, ...removed];
    // The change list from `prev`: deep-diff only over the fields read or removed.
    const known = prev
      ? (before: unknown): readonly Change[] | undefined =>
          before !== prev ? undefined : changed.flatMap((k) => diffValues(prev[k], value[k]).map((c): Change => ({ ...c, path: [k, ...c.path] })))
      : undefined;
    this.#assembled.set(entry, { value: value as T, known });
    return 'ok';
  }

  #tryHead(bytes: Uint8Array): Head | undefined {
    try {
      return this.head(bytes);
    } catch {
      return undefined;
    }
  }

  #corrupt(entry: Entry, why: string, cause: unknown): SharedStructError {
    return new SharedStructError('CORRUPT_REMOTE_VALUE', `struct '${this.#name}' version ${entry.version} ${why}`, { cause });
  }

  #object(value: unknown): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new SharedStructError('INVALID_VALUE', `struct '${this.#name}' has layout 'fields', which stores a top-level object, not ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}; wrap the value in an object, or use layout 'value'`);
    }
    return value as Record<string, unknown>;
  }

  #schema(value: unknown): void {
    const errors = this.#validate?.(value);
    if (errors) {
      throw new SharedStructError('SCHEMA_VALIDATION', `the value for '${this.#name}' fails its schema, so nothing was written: ${schemaErrorText(errors)}`, { details: errors });
    }
  }

  #fieldBytes(field: string, version: number, value: unknown): Uint8Array {
    const bytes = encodeField(this.#codec, version, value);
    if (bytes.byteLength > this.#maxBytes) {
      throw new SharedStructError(
        'VALUE_TOO_LARGE',
        `field '${field}' of '${this.#name}' is ${bytes.byteLength} bytes encoded and the ${this.#kind} limit is ${this.#maxBytes}; split it into several top-level fields, or raise the server's limit and the 'maxValueBytes' option together`,
        { details: { field } },
      );
    }
    return bytes;
  }

  /** The whole write must fit one request: its keys and values together within the limit. */
  #checkTotal(txn: Txn): void {
    const { ops } = txn;
    const count = this.#txnOps(txn);
    if (count > this.#maxOps) {
      throw new SharedStructError(
        'VALUE_TOO_LARGE',
        `the write of '${this.#name}' needs ${count} operations in one transaction (the head and ${ops.length - 1} fields) and the ${this.#kind} limit is ${this.#maxOps}; change fewer fields per write (create a struct with fewer top-level fields), or raise the server's limit (etcd --max-txn-ops) and the 'maxTxnOps' option together`,
      );
    }
    let total = 0;
    for (const op of ops) total += op.key.length + (op.op === 'delete' ? 0 : op.value.byteLength);
    if (total > this.#maxBytes) {
      throw new SharedStructError(
        'VALUE_TOO_LARGE',
        `the write of '${this.#name}' is ${total} bytes in one transaction (head and ${ops.length - 1} field keys) and the ${this.#kind} limit is ${this.#maxBytes}; change fewer fields per write, or raise the server's limit and the 'maxValueBytes' option together`,
      );
    }
  }
}
