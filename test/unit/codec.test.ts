import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeFramed, encodeFramed, jsonCodec, msgpackCodec, readFrame, type Codec } from '../../lib/codec.js';
import { assertPlainJson } from '../../lib/json.js';
import { SharedStructError } from '../../lib/index.js';

// JSON values without -0 (JSON itself turns it into 0) and without __proto__ keys (msgpack refuses them).
const jsonValue = fc.jsonValue().filter((v) => !JSON.stringify(v).includes('"__proto__"'));

describe('codecs', () => {
  for (const codec of [jsonCodec, msgpackCodec]) {
    it(`${codec.name}: random JSON values round-trip through the framed bytes (property)`, () => {
      fc.assert(
        fc.property(jsonValue, (v) => {
          const bytes = encodeFramed(codec, v);
          assert.equal(readFrame(bytes).name, codec.name);
          assert.deepEqual(decodeFramed(codec, bytes), JSON.parse(JSON.stringify(v)));
        }),
        { numRuns: 300 },
      );
    });
  }

  it('json is stored bare, so raw clients and zkstate read it', () => {
    const bytes = encodeFramed(jsonCodec, { a: [1, 'x'] });
    assert.equal(new TextDecoder().decode(bytes), '{"a":[1,"x"]}');
  });

  it('a reader with the wrong codec reports CORRUPT_REMOTE_VALUE naming both codecs', () => {
    const cases: [Codec, Codec, string][] = [
      [msgpackCodec, jsonCodec, "written with codec 'msgpack' but this instance reads with 'json'"],
      [jsonCodec, msgpackCodec, "written with codec 'json' but this instance reads with 'msgpack'"],
    ];
    for (const [writer, reader, text] of cases) {
      // 7 as JSON text is the byte 0x37, which MessagePack would read as the number 55.
      const bytes = encodeFramed(writer, 7);
      assert.throws(() => decodeFramed(reader, bytes), (err: unknown) => {
        assert.ok(err instanceof SharedStructError && err.code === 'CORRUPT_REMOTE_VALUE');
        assert.ok(err.message.includes(text), err.message);
        return true;
      });
    }
  });

  it('msgpack refuses a __proto__ key when writing (it could never be read back)', () => {
    assert.throws(() => encodeFramed(msgpackCodec, JSON.parse('{"a":{"__proto__":1}}')), { code: 'INVALID_VALUE' });
  });

  it('random invalid values hidden in random JSON are always rejected with INVALID_VALUE (property)', () => {
    const poison = fc.oneof(
      fc.constant(undefined),
      fc.constant(Number.NaN),
      fc.constant(Infinity),
      fc.constant(-Infinity),
      fc.bigInt(),
      fc.constant(Symbol('s')),
      fc.constant(() => 1),
      fc.date(),
      fc.constant(new Map()),
      fc.constant(new Set()),
      fc.constant(new Uint8Array(2)),
    );
    fc.assert(
      fc.property(fc.jsonValue(), poison, fc.array(fc.string({ maxLength: 3 }), { minLength: 1, maxLength: 3 }), (base, bad, path) => {
        let root: Record<string, unknown> = { base };
        const top = root;
        for (const seg of path.slice(0, -1)) root = (root[`k${seg}`] = {});
        root[`k${path[path.length - 1]}`] = bad;
        assert.throws(() => assertPlainJson(top), (err: unknown) => err instanceof SharedStructError && err.code === 'INVALID_VALUE');
      }),
      { numRuns: 300 },
    );
  });
});
