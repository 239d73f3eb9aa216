/** A struct's values on their way to and from the store: checked, encoded, decoded, frozen. */
import type { ErrorObject } from 'ajv';
import type { Entry, Txn, TxnOp } from '../backend.js';
import { decodeFramed, encodeFramed, jsonCodec, mayHaveEmptyKey, type Codec } from '../codec.js';
import { SharedStructError, isSharedStructError } from '../errors.js';
import { diffValues, type Change } from '../diff.js';
import { assertPlainJson, assertPlainJsonAt, assertPlainJsonNew, deepFreeze, deepFreezeAll, jsonEqual } from '../json.js';
import { schemaErrorText, validatorFor } from '../schema.js';
import { assignedNodes, changesFromPatches, finish, isLiveDraft, makeDraft, undraft } from './drafts.js';
import { FieldsLayout, type Layout } from './fields.js';

/** A stored version as the cache holds it. */
export interface Cached<T> {
  /** Deep-frozen. */
  readonly value: T;
  /** The stored bytes of `value`: decoding them is the cheapest fresh mutable copy. */
  readonly bytes: Uint8Array;
  readonly version: number;
  readonly revision: bigint;
  readonly createRevision: bigint;
  readonly ephemeral: boolean;
}

/** A local write, checked and encoded, that differs from the cached version `base`. */
export interface Prepared<T> {
  readonly bytes: Uint8Array;
  /** The value as it will be cached (frozen). */
  readonly value: T;
  /** The cached version it was made from (-1: none; the commit decodes what was stored). */
  readonly base: number;
  /** The life of the cached version it was made from (a re-created key must not take it). */
  readonly life?: { readonly createRevision: bigint; readonly ephemeral: boolean } | undefined;
  /**
   * The change list from `before`, when the write knows it cheaper than a deep-diff (a draft's
   * patches): undefined unless `before` is the very value the write was made from (a new life
   * at the same version is not). Computed on first call.
   */
  readonly changes?: ((before: unknown) => readonly Change[] | undefined) | undefined;
  /** Layout 'fields': every op of the write's transaction (the head's put first; `bytes` is the head). */
  readonly ops?: readonly TxnOp[] | undefined;
}

/** The codec, schema and size limit of one struct. */
export class StructValues<T> {
  readonly #name: string;
  readonly #codec: Codec;
  readonly #validate: ((value: unknown) => readonly ErrorObject[] | undefined) | undefined;
  readonly #maxBytes: number;
  readonly #backendKind: string;
  /**
   * The JSON text of top-level children of cached values: a draft's result shares every untouched
   * child with the cached value, and its text is reused instead of built again (see
   * {@link #encodeSharing}). Safe because a cached value is frozen all the way down: decoded
   * values are frozen whole, and a draft's assigned objects are frozen through even when the
   * caller froze them (see {@link assignedNodes}). Weak: a child no cached value holds any more goes.
   */
  readonly #childJson = new WeakMap<object, string>();

  /** The per-field layout, when the struct has it. */
  readonly fields: FieldsLayout<T> | undefined;

  constructor(name: string, codec: Codec, schema: object | undefined, limits: { maxValueBytes: number; maxTxnOps?: number | undefined; txnOps?: ((txn: Txn) => number) | undefined; kind: string }, layout: { readonly layout: Layout; readonly key: string } = { layout: 'value', key: '' }) {
    this.#name = name;
    this.#codec = codec;
    this.#validate = schema ? validatorFor(schema) : undefined;
    this.#maxBytes = limits.maxValueBytes;
    this.#backendKind = limits.kind;
    this.fields = layout.layout === 'fields' ? new FieldsLayout<T>(name, layout.key, codec, this.#validate, limits) : undefined;
  }

  /** Checks a value this process wants to write (plain JSON, schema, size) and encodes it. */
  encode(value: unknown): Uint8Array {
    assertPlainJson(value);
    return this.#checkAndEncode(value);
  }

  /**
   * The schema and size checks of {@link encode}, on a value already known to be plain JSON.
   * `base`: the cached (deep-frozen) value a draft's result was made from, whose untouched
   * children the result shares.
   */
  #checkAndEncode(value: unknown, base?: unknown): Uint8Array {
    const errors = this.#validate?.(value);
    if (errors) {
      throw new SharedStructError('SCHEMA_VALIDATION', `the value for '${this.#name}' fails its schema, so nothing was written: ${schemaErrorText(errors)}`, {
        details: errors,
      });
    }
    const bytes = base !== undefined && this.#codec === jsonCodec ? this.#encodeSharing(value, base) : encodeFramed(this.#codec, value);
    if (bytes.byteLength > this.#maxBytes) {
      throw new SharedStructError(
        'VALUE_TOO_LARGE',
        `the value for '${this.#name}' is ${bytes.byteLength} bytes encoded and the ${this.#backendKind} limit is ${this.#maxBytes}; store less, or raise the server's limit and the 'maxValueBytes' option together`,
      );
    }
    return bytes;
  }

  /**
   * JSON of `value`, byte for byte what `JSON.stringify` gives, reusing the text of every
   * top-level child it shares with `base` (the same object: deep-frozen by us, so its text cannot
   * have changed). A one-field change of a 100 KB struct then builds the text of one field, not
   * of 100 KB. Object keys come in `Object.keys` order, which is `JSON.stringify`'s; plain JSON has
   * no `undefined`, no `toJSON`, no holes.
   */
  #encodeSharing(value: unknown, base: unknown): Uint8Array {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || base === null || typeof base !== 'object' || Array.isArray(base)) {
      return jsonCodec.encode(value);
    }
    const v = value as Record<string, unknown>;
    const b = base as Record<string, unknown>;
    const parts: string[] = [];
    for (const k of Object.keys(v)) {
      const child = v[k];
      let text: string | undefined;
      if (child !== null && typeof child === 'object' && child === b[k]) {
        text = this.#childJson.get(child);
        if (text === undefined) this.#childJson.set(child, (text = JSON.stringify(child)));
      }
      parts.push(`${JSON.stringify(k)}:${text ?? JSON.stringify(child)}`);
    }
    return TEXT.encode(`{${parts.join(',')}}`);
  }

  /** Decodes and checks a stored value: the frozen value, or the `CORRUPT_REMOTE_VALUE` error. */
  decodeStored(entry: Entry): { value: T; known?: ((before: unknown) => readonly Change[] | undefined) | undefined } | { error: SharedStructError } {
    if (this.fields) {
      return this.fields.assembled(entry) ?? { error: new SharedStructError('CORRUPT_REMOTE_VALUE', `struct '${this.#name}' version ${entry.version} was not read field by field`) };
    }
    const corrupt = (why: string, cause: unknown): { error: SharedStructError } => ({
      error: new SharedStructError('CORRUPT_REMOTE_VALUE', `struct '${this.#name}' version ${entry.version} ${why}`, { cause }),
    });
    let value: unknown;
    try {
      value = decodeFramed(this.#codec, entry.value);
    } catch (err) {
      if (isSharedStructError(err, 'CORRUPT_REMOTE_VALUE')) return corrupt(err.message, err);
      return corrupt(`cannot be decoded with codec '${this.#codec.name}'`, err);
    }
    const errors = this.#validate?.(value);
    if (errors) return corrupt(`fails its schema: ${schemaErrorText(errors)}`, errors);
    return { value: deepFreeze(value as T) };
  }

  /**
   * A copy-on-write draft of a cached value (see struct/drafts.ts): nothing is copied until `fn`
   * writes, and then only the path to what it wrote.
   */
  draft(cache: Cached<T>): T {
    return makeDraft(cache.value);
  }

  /**
   * Checks and encodes `next` before any request. Undefined when it equals the cache: no patch,
   * the same bytes, or (rarely: other key order) the same JSON. When `next` is the draft, the
   * result shares every untouched subtree with the cache: only new nodes are checked for plain
   * JSON and frozen, and the change list comes from the draft's patches. A value the caller built
   * is checked whole and decoded from the bytes, so the caller's object is never frozen.
   */
  prepare(cache: Cached<T>, draft: T | undefined, next: T, version = cache.version + 1): Prepared<T> | undefined {
    const life = { createRevision: cache.createRevision, ephemeral: cache.ephemeral };
    if (this.fields) return this.#prepareFields(cache, draft, next, version, false);
    if (draft !== undefined && next === draft && isLiveDraft(draft)) {
      const { value, patches } = finish(draft);
      if (value === cache.value || patches.length === 0) return undefined;
      assertPlainJsonNew(value);
      const assigned = assignedNodes(value, patches);
      for (const a of assigned) assertPlainJsonAt(a.node, a.path);
      const bytes = this.#checkAndEncode(value, cache.value);
      if (sameBytes(bytes, cache.bytes) || jsonEqual(cache.value, value)) return undefined;
      deepFreeze(value);
      for (const a of assigned) deepFreezeAll(a.node);
      const before = cache.value;
      let memo: readonly Change[] | undefined;
      const changes = (from: unknown): readonly Change[] | undefined => (from !== before ? undefined : (memo ??= changesFromPatches(before, value, patches, mayHaveEmptyKey(bytes))));
      return { bytes, value, base: cache.version, life, changes };
    }
    if (draft !== undefined && next !== draft) next = undraft(next);
    const bytes = this.encode(next);
    if (sameBytes(bytes, cache.bytes) || jsonEqual(cache.value, next)) return undefined;
    const value = next === draft ? deepFreeze(next) : deepFreeze(decodeFramed(this.#codec, bytes) as T);
    return { bytes, value, base: cache.version, life };
  }

  /**
   * Layout 'fields': the write of `next` over the cache, as version `version` (see
   * {@link FieldsLayout.write}); `force` writes the head even when no field changes.
   */
  #prepareFields(cache: Cached<T>, draft: T | undefined, next: T, version: number, force: boolean): Prepared<T> | undefined {
    const fields = this.fields!;
    let value: T = next;
    let fromDraft = false;
    let touched: Set<string> | undefined;
    let assigned: ReturnType<typeof assignedNodes> = [];
    if (draft !== undefined && next === draft && isLiveDraft(draft)) {
      const f = finish(draft);
      if (!force && (f.value === cache.value || f.patches.length === 0)) return undefined;
      value = f.value;
      fromDraft = true;
      assigned = assignedNodes(value, f.patches);
      for (const a of assigned) assertPlainJsonAt(a.node, a.path);
      touched = new Set();
      for (const p of f.patches) {
        if (p.path.length === 0) {
          touched = undefined;
          break;
        }
        touched.add(String(p.path[0]));
      }
    } else if (draft !== undefined && next !== draft) {
      value = undraft(next);
    }
    const w = fields.write(cache, value, { fromDraft, version, force, touched });
    if (!w) return undefined;
    const frozen = fromDraft ? deepFreeze(value) : deepFreeze(structuredClone(value));
    for (const a of assigned) deepFreezeAll(a.node);
    const before = cache.value as Record<string, unknown>;
    const after = frozen as Record<string, unknown>;
    let memo: readonly Change[] | undefined;
    const changes = (from: unknown): readonly Change[] | undefined =>
      from !== before ? undefined : (memo ??= w.changed.flatMap((k) => diffValues(before[k], after[k]).map((c): Change => ({ ...c, path: [k, ...c.path] }))));
    return { bytes: w.head, value: frozen, base: cache.version, life: { createRevision: cache.createRevision, ephemeral: cache.ephemeral }, changes, ops: w.ops };
  }

  /** Layout 'fields': a write of `value` over the cache that writes the head even when no field changes. */
  prepareForced(cache: Cached<T>, value: T, version: number): Prepared<T> {
    return this.#prepareFields(cache, undefined, value, version, true)!;
  }

  /**
   * A checked write of `value` that is not diffed against the cache (base -1): its value is
   * decoded only if someone needs it (the commit decodes and diffs the stored entry).
   */
  prepareBlind(value: T, life: Prepared<T>['life']): Prepared<T> {
    const bytes = this.encode(value);
    const codec = this.#codec;
    let decoded: T | undefined;
    return {
      bytes,
      base: -1,
      life,
      get value(): T {
        return (decoded ??= deepFreeze(decodeFramed(codec, bytes) as T));
      },
    };
  }
}

const TEXT = new TextEncoder();

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}
