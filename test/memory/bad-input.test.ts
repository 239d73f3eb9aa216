/**
 * Bad input never crashes and never writes: a table of values, names, options and URLs, each
 * with its expected code, checked to reject (not throw synchronously) and to leave the store's
 * revision where it was.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect, msgpackCodec, SharedStructError, type Client, type SharedStruct } from '../../lib/index.js';
import { memoryBackendOf } from './target.js';

type Doc = Record<string, unknown>;
interface Ctx {
  client: Client;
  struct: SharedStruct<Doc>;
  flags: SharedStruct<Doc>;
  url: string;
}

class Point {
  x = 1;
}
const cyclic: Doc = {};
cyclic.self = cyclic;
const validFlags = { beta: false, rollout: 0, regions: ['eu'] };

const cases: [string, string, (c: Ctx) => Promise<unknown>][] = [
  // values
  ['set(undefined)', 'INVALID_VALUE', (c) => c.struct.set(undefined as unknown as Doc)],
  ['a nested undefined', 'INVALID_VALUE', (c) => c.struct.update(() => ({ a: undefined }))],
  ['a function', 'INVALID_VALUE', (c) => c.struct.update((d) => void (d.f = () => 1))],
  ['a symbol', 'INVALID_VALUE', (c) => c.struct.update((d) => void (d.s = Symbol('x')))],
  ['a BigInt', 'INVALID_VALUE', (c) => c.struct.update((d) => void (d.n = 10n))],
  ['NaN', 'INVALID_VALUE', (c) => c.struct.update((d) => void (d.n = Number.NaN))],
  ['Infinity', 'INVALID_VALUE', (c) => c.struct.set({ deep: [Infinity] })],
  ['-Infinity', 'INVALID_VALUE', (c) => c.struct.compareAndSet(1, { n: -Infinity })],
  ['a cycle', 'INVALID_VALUE', (c) => c.struct.set(cyclic)],
  ['a class instance', 'INVALID_VALUE', (c) => c.struct.set({ p: new Point() })],
  ['a Date', 'INVALID_VALUE', (c) => c.struct.update((d) => void (d.when = new Date()))],
  // An object the caller froze is not one the cache checked: its inside is checked too.
  ['an undefined inside a caller-frozen object in a draft', 'INVALID_VALUE', (c) => c.struct.update((d) => void (d.cfg = Object.freeze({ inner: { bad: undefined } })))],
  ['a Date inside a caller-frozen array in a draft', 'INVALID_VALUE', (c) => c.struct.update((d) => void (d.list = Object.freeze([{ when: new Date() }])))],
  ['a Map', 'INVALID_VALUE', (c) => c.struct.set({ m: new Map() })],
  ['a Set', 'INVALID_VALUE', (c) => c.struct.modify(() => ['r', { s: new Set([1]) }] as const)],
  ['a sparse array', 'INVALID_VALUE', (c) => c.struct.set({ holes: new Array(3) })],
  ['an initial with a Date', 'INVALID_VALUE', (c) => c.client.open(`n-${randomUUID()}`, { initial: { d: new Date() } })],
  ['a write failing the schema', 'SCHEMA_VALIDATION', (c) => c.flags.update((d) => void (d.rollout = 101))],
  ['an extra field the schema forbids', 'SCHEMA_VALIDATION', (c) => c.flags.update((d) => void (d.extra = true))],
  ['an initial failing the schema', 'SCHEMA_VALIDATION', (c) => c.client.open(`n-${randomUUID()}`, { schema: 'flags', initial: { beta: 'yes' } } as never)],
  ['a value over maxValueBytes', 'VALUE_TOO_LARGE', (c) => c.struct.set({ big: 'x'.repeat(5000) })],
  ['a __proto__ key with msgpack', 'INVALID_VALUE', (c) => c.client.open(`n-${randomUUID()}`, { codec: msgpackCodec, initial: JSON.parse('{"__proto__":1}') as Doc })],
  // arguments of calls
  ['compareAndSet(0)', 'INVALID_ARGUMENT', (c) => c.struct.compareAndSet(0, {})],
  ['compareAndSet(1.5)', 'INVALID_ARGUMENT', (c) => c.struct.compareAndSet(1.5, {})],
  ['maxRetries -1', 'INVALID_ARGUMENT', (c) => c.struct.update((d) => void (d.x = 1), { maxRetries: -1 })],
  ['modify(fn) returning no pair', 'INVALID_ARGUMENT', (c) => c.struct.modify(() => 'oops' as unknown as readonly [string, Doc])],
  // names
  ['an empty name', 'INVALID_NAME', (c) => c.client.open('', { initial: {} })],
  ['an empty segment', 'INVALID_NAME', (c) => c.client.open('a//b', { initial: {} })],
  ['a .. segment', 'INVALID_NAME', (c) => c.client.open('a/..', { initial: {} })],
  ['a space', 'INVALID_NAME', (c) => c.client.open('bad name', { initial: {} })],
  ['201 characters', 'INVALID_NAME', (c) => c.client.open('x'.repeat(201), { initial: {} })],
  ['a reserved _ prefix', 'INVALID_NAME', (c) => c.client.open('_locks', { initial: {} })],
  ['a reserved segment', 'INVALID_NAME', (c) => c.client.open('a/payload', { initial: {} })],
  ['a number as name', 'INVALID_NAME', (c) => c.client.open(42 as unknown as string, { initial: {} })],
  ['expect() with a bad name', 'INVALID_NAME', (c) => c.client.expect('a/../b')],
  // options
  ['maxStalenessMs 0', 'INVALID_ARGUMENT', (c) => c.client.open(`n-${randomUUID()}`, { initial: {}, maxStalenessMs: 0 })],
  ['a codec without encode', 'INVALID_ARGUMENT', (c) => c.client.open(`n-${randomUUID()}`, { initial: {}, codec: { name: 'x', decode: () => 1 } as never })],
  ['a codec with a bad name', 'INVALID_ARGUMENT', (c) => c.client.open(`n-${randomUUID()}`, { initial: {}, codec: { ...msgpackCodec, name: 'bad name' } })],
  ['an unknown schema name', 'INVALID_ARGUMENT', (c) => c.client.open(`n-${randomUUID()}`, { initial: {}, schema: 'no-such-schema' } as never)],
  ['a broken schema', 'INVALID_ARGUMENT', (c) => c.client.open(`n-${randomUUID()}`, { initial: {}, schema: { type: 'nonsense' } })],
  ['an unknown open option', 'INVALID_ARGUMENT', (c) => c.client.open(`n-${randomUUID()}`, { initial: {}, colour: 'red' } as never)],
  ['expect timeoutMs -5', 'INVALID_ARGUMENT', (c) => c.client.expect('later', { timeoutMs: -5 })],
  // URLs and connect options
  ['an unknown scheme', 'INVALID_ARGUMENT', () => connect('redis://127.0.0.1:6379')],
  ['etcd without a host', 'INVALID_ARGUMENT', () => connect('etcd://')],
  ['a port out of range', 'INVALID_ARGUMENT', () => connect('zk://127.0.0.1:70000')],
  ['credentials in the URL', 'INVALID_ARGUMENT', () => connect('etcd://root:secret@127.0.0.1:2379')],
  ['a memory name with a slash', 'INVALID_ARGUMENT', (c) => connect(`${c.url}/x`)],
  ['a relative namespace', 'INVALID_ARGUMENT', (c) => connect(c.url, { namespace: 'relative' })],
  ['sessionTtlMs 5', 'INVALID_ARGUMENT', (c) => connect(c.url, { sessionTtlMs: 5 })],
  ['auth without username', 'INVALID_ARGUMENT', (c) => connect(c.url, { auth: { username: 1 } as never })],
  ['an unknown connect option', 'INVALID_ARGUMENT', (c) => connect(c.url, { retries: 3 } as never)],
];

describe('[memory] bad input: typed errors, nothing written', function () {
  const ctx = {} as Ctx;
  before(async () => {
    ctx.url = `memory://bad-${randomUUID().slice(0, 8)}`;
    ctx.client = await connect(ctx.url, { maxValueBytes: 2000 });
    ctx.struct = await ctx.client.open<Doc>('plain', { initial: { ok: true } });
    ctx.flags = await ctx.client.open('typed', { schema: 'flags', initial: validFlags }) as unknown as SharedStruct<Doc>;
  });
  after(() => ctx.client.close());

  it(`has at least 30 cases (${cases.length})`, () => assert.ok(cases.length >= 30));

  for (const [what, code, call] of cases) {
    it(`${what} → ${code}`, async () => {
      const store = memoryBackendOf(ctx.client).store;
      const revision = store.revision;
      let promise: Promise<unknown>;
      try {
        promise = call(ctx);
      } catch (err) {
        assert.fail(`threw synchronously instead of rejecting: ${String(err)}`);
      }
      await assert.rejects(promise, (err: unknown) => {
        assert.ok(err instanceof SharedStructError, `a SharedStructError, got ${String(err)}`);
        assert.equal(err.code, code, err.message);
        return true;
      });
      assert.equal(store.revision, revision, 'nothing was written');
      assert.deepEqual(ctx.struct.read(), { ok: true });
      assert.deepEqual(ctx.flags.read(), validFlags);
    });
  }
});

describe('[memory] a caller-frozen object written by draft', function () {
  it('is frozen all the way down in the cache, and the cache equals what was stored', async () => {
    const url = `memory://frozen-${randomUUID().slice(0, 8)}`;
    await using client = await connect(url);
    const struct = await client.open<Doc>('s', { initial: { n: 0 } });
    const inner = { x: 1 };
    await struct.update((d) => void (d.cfg = Object.freeze({ inner })));
    assert.ok(Object.isFrozen(inner), 'the mutable inside of the caller-frozen object is frozen too');
    assert.throws(() => (inner.x = 2), TypeError); // ES modules are strict: a frozen object throws
    await using other = await connect(url);
    const seen = await other.open<Doc>('s');
    assert.deepEqual(await seen.readConsistent(), struct.read());
  });
});
