/**
 * A draft's write reuses the JSON text of the top-level children it shares with the cached value
 * (lib/struct/values.ts): its bytes must still be exactly `JSON.stringify` of the value it
 * caches, whatever the edits, the keys and the history of writes before it.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { jsonCodec } from '../../lib/codec.js';
import { StructValues, type Cached } from '../../lib/struct/values.js';

type Obj = Record<string, unknown>;
const text = new TextDecoder();
const bytesOf = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));

function cachedOf(values: StructValues<Obj>, bytes: Uint8Array, version: number): Cached<Obj> {
  const decoded = values.decodeStored({ key: 'k', value: bytes, version, revision: BigInt(version), createRevision: 1n, ephemeral: false });
  if ('error' in decoded) throw decoded.error;
  return { value: decoded.value, bytes, version, revision: BigInt(version), createRevision: 1n, ephemeral: false };
}

/** One write by draft; the next cached version (or the same, for a no-op). */
function write(values: StructValues<Obj>, cache: Cached<Obj>, edit: (d: Obj) => void): Cached<Obj> {
  const draft = values.draft(cache);
  edit(draft);
  const prepared = values.prepare(cache, draft, draft);
  if (!prepared) return cache;
  assert.equal(text.decode(prepared.bytes), JSON.stringify(prepared.value), 'the bytes are the JSON of the cached value');
  return { value: prepared.value, bytes: prepared.bytes, version: cache.version + 1, revision: BigInt(cache.version + 1), createRevision: 1n, ephemeral: false };
}

// ('__proto__' as a key: set on a draft it is the prototype setter, as on any object; it comes
// in through decoded values instead, below.)
const key = fc.constantFrom('a', 'b', 'blob', '', '0', '10', 'ü"\\', 'n');
const step = fc.record({ top: key, nested: fc.option(key, { nil: undefined }), value: fc.jsonValue({ maxDepth: 2 }), remove: fc.boolean() });

describe('encoding a draft that shares children with the cache', () => {
  it('writes exactly JSON.stringify of the value, over any history of edits (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(key, fc.jsonValue({ maxDepth: 3 })), fc.array(step, { minLength: 1, maxLength: 12 }), (initial, steps) => {
        const values = new StructValues<Obj>('t', jsonCodec, undefined, { maxValueBytes: 1e7, kind: 'memory' });
        // A decoded value may carry an own '__proto__' key (JSON.parse makes one).
        const bytes = new TextEncoder().encode(JSON.stringify(initial).replace(/^\{/, '{"__proto__":{"p":1},').replace(',}', '}'));
        let cache = cachedOf(values, bytes, 1);
        for (const s of steps) {
          cache = write(values, cache, (d) => {
            const child = d[s.top];
            if (s.nested !== undefined && child !== null && typeof child === 'object' && !Array.isArray(child)) {
              if (s.remove) delete (child as Obj)[s.nested];
              else (child as Obj)[s.nested] = s.value;
            } else if (s.remove) {
              delete d[s.top];
            } else {
              d[s.top] = s.value;
            }
          });
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a child the caller froze is frozen all the way down when written, so no text of it can go stale', () => {
    const values = new StructValues<Obj>('t', jsonCodec, undefined, { maxValueBytes: 1e7, kind: 'memory' });
    let cache = cachedOf(values, bytesOf({ n: 0, blob: { list: [1, 2, 3] } }), 1);
    const inner = { x: 1 };
    cache = write(values, cache, (d) => void (d.cfg = Object.freeze({ inner })));
    cache = write(values, cache, (d) => void (d.n = 1)); // a write that shares cfg
    // deepFreeze alone stops at a frozen node; an assigned one is frozen through.
    assert.throws(() => (inner.x = 2), TypeError);
    cache = write(values, cache, (d) => void (d.n = 2));
    assert.match(text.decode(cache.bytes), /"cfg":\{"inner":\{"x":1\}\}/);
  });

  it('reuses the text of the untouched children it decoded: a one-field change does not stringify them again', () => {
    const values = new StructValues<Obj>('t', jsonCodec, undefined, { maxValueBytes: 1e7, kind: 'memory' });
    let cache = cachedOf(values, bytesOf({ n: 0, blob: { list: Array.from({ length: 100 }, (_, i) => i) } }), 1);
    cache = write(values, cache, (d) => void (d.n = 1)); // the first write learns blob's text
    const stringify = JSON.stringify;
    const seen: unknown[] = [];
    JSON.stringify = ((v: unknown, ...rest: []) => (seen.push(v), stringify(v, ...rest))) as typeof JSON.stringify;
    try {
      cache = write(values, cache, (d) => void (d.n = 2));
    } finally {
      JSON.stringify = stringify;
    }
    assert.ok(!seen.includes(cache.value.blob), 'blob was not stringified again');
    assert.equal(text.decode(cache.bytes), stringify(cache.value));
  });
});
