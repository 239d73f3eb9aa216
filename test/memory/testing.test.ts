/**
 * `sharedstruct/testing`'s `memoryStore()`: the memory backend's fault hooks as a user's unit
 * tests use them, with no server: a client cut off (suspended, requests at their deadline, lost
 * past its ttl, reconnected on the heal), a session expired (its lock lost, a new session), slow
 * watch delivery, dropped watches, compaction, and the checks on what is passed in.
 */
import assert from 'node:assert/strict';
import { connect, isSharedStructError, type Client } from '../../lib/index.js';
import { memoryStore, type MemoryTestStore } from '../../testing/index.js';
import { eventually } from '../contract/struct.suite.js';

describe('[memory] sharedstruct/testing memoryStore()', function () {
  this.timeout(20000);
  let store: MemoryTestStore;
  const clients: Client[] = [];
  const open = async (ttl = 1000): Promise<Client> => {
    const c = await connect(store.url, { sessionTtlMs: ttl, requestTimeoutMs: 300 });
    clients.push(c);
    return c;
  };
  const statesOf = (c: Client): string[] => {
    const states: string[] = [];
    c.on('state', (s) => states.push(s.state));
    return states;
  };
  beforeEach(() => {
    store = memoryStore();
  });
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  });

  it('a fresh store per call without a name; a named one is the store memory://NAME clients share', async () => {
    assert.match(store.url, /^memory:\/\/test-[0-9a-f]{8}$/);
    assert.notEqual(memoryStore().name, store.name);
    const a = await open();
    const s = await a.open<{ n: number }>('x', { initial: { n: 1 } });
    assert.equal(store.revision > 0n, true);
    const before = store.revision;
    await s.set({ n: 2 });
    assert.equal(memoryStore(store.name).revision, before + 1n);
  });

  it('partition(client): requests end at their deadline, suspended, then lost past the ttl; heal(): a new session', async () => {
    const a = await open();
    const states = statesOf(a);
    const s = await a.open<{ n: number }>('x', { initial: { n: 0 } });
    const heal = store.partition(a);
    await assert.rejects(s.set({ n: 1 }), (err: unknown) => isSharedStructError(err) && err.code === 'TIMEOUT');
    await eventually('lost', () => states.includes('suspended') && states.includes('lost'), 5000);
    heal();
    heal();
    await eventually('reconnected', () => states.at(-1) === 'reconnected', 5000);
    await s.set({ n: 2 });
    assert.deepEqual(s.read(), { n: 2 });
  });

  it("expireSession(client): its lock is lost (signal aborted), other clients may take it, the client's next session works", async () => {
    const a = await open(3000);
    const b = await open(3000);
    const states = statesOf(a);
    const lock = await a.lock('job');
    await store.expireSession(a);
    assert.equal(lock.signal.aborted, true);
    const taken = await b.lock('job', { waitMs: 2000 });
    assert.ok(BigInt(taken.token) > BigInt(lock.token));
    await taken.release();
    assert.deepEqual(states.slice(0, 2), ['lost', 'reconnected']);
    const again = await a.lock('job', { waitMs: 2000 });
    await again.release();
  });

  it('expireSession of a cut-off client: it learns of it when the partition heals', async () => {
    const a = await open(3000);
    const states = statesOf(a);
    const heal = store.partition(a);
    await store.expireSession(a);
    assert.equal(states.includes('lost'), false);
    heal();
    await eventually('lost, then reconnected', () => states.includes('lost') && states.at(-1) === 'reconnected', 3000);
  });

  it('delayDelivery(client, ms): its cache learns of changes that much later; 0 turns it off', async () => {
    const a = await open(3000);
    const b = await open(3000);
    const sa = await a.open<{ n: number }>('x', { initial: { n: 0 } });
    const sb = await b.open<{ n: number }>('x');
    store.delayDelivery(b, 300);
    const t0 = Date.now();
    await sa.set({ n: 1 });
    await eventually('b sees n = 1', () => sb.readDirty().n === 1, 3000);
    assert.ok(Date.now() - t0 >= 290, `delivered after ${Date.now() - t0} ms`);
    store.delayDelivery(b, 0);
    assert.throws(() => store.delayDelivery(b, -1), (err: unknown) => isSharedStructError(err) && err.code === 'INVALID_ARGUMENT');
  });

  it('dropWatches + compact while a client is cut off: it resyncs to the latest value (one coalesced resync event)', async () => {
    const a = await open(3000);
    const b = await open(3000);
    const sa = await a.open<{ n: number }>('x', { initial: { n: 0 } });
    const sb = await b.open<{ n: number }>('x');
    const origins: string[] = [];
    sb.on('change', (e) => origins.push(`${e.origin}${e.coalesced ? ' coalesced' : ''}`));
    const heal = store.partition(b);
    for (let i = 1; i <= 3; i++) await sa.set({ n: i });
    store.compact();
    store.dropWatches(b);
    heal();
    await eventually('b resynced', () => sb.readDirty().n === 3, 5000);
    assert.deepEqual(origins, ['resync coalesced']);
  });

  it('a client of another store, or not a memory client, is refused with INVALID_ARGUMENT', async () => {
    const other = memoryStore();
    const c = await connect(other.url);
    clients.push(c);
    assert.throws(() => store.partition(c), (err: unknown) => isSharedStructError(err) && err.code === 'INVALID_ARGUMENT' && err.message.includes(`connected to ${other.url}`));
    assert.throws(() => memoryStore('no/slash'), (err: unknown) => isSharedStructError(err) && err.code === 'INVALID_ARGUMENT');
  });
});
