/**
 * The core's recovery paths, driven by the memory backend's hooks: a watch that breaks, delayed
 * delivery, compaction while the watch is down, a foreign writer's corrupt value.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect, type Client, type SharedStructError } from '../../lib/index.js';
import { eventually, Recorder } from '../contract/struct.suite.js';
import { memoryStore, type MemoryTestStore } from '../../testing/index.js';
import { memoryBackendOf } from './target.js';

type Counter = { n: number };
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('[memory] recovery paths of the core', function () {
  this.timeout(20000);
  let url: string;
  let store: MemoryTestStore;
  const clients: Client[] = [];
  const open = async (): Promise<Client> => {
    const c = await connect(url, { requestTimeoutMs: 1000 });
    clients.push(c);
    return c;
  };
  beforeEach(() => {
    store = memoryStore(`rec-${randomUUID().slice(0, 8)}`);
    url = store.url;
  });
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  });

  it('a dropped watch resumes after the last revision: no version missed, none twice', async () => {
    const a = await open();
    const b = await open();
    const sa = await a.open<Counter>('c', { initial: { n: 0 } });
    const sb = await b.open<Counter>('c');
    const rec = new Recorder(sb);
    for (let i = 0; i < 5; i++) {
      await sa.update((d) => void (d.n += 1));
      store.dropWatches(b);
      await sa.update((d) => void (d.n += 1));
    }
    await eventually('b caught up', () => sb.readDirty().n === 10);
    assert.deepEqual(rec.versions(), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert.ok(rec.events.every((e) => !e.coalesced && e.origin === 'remote'));
  });

  it('delayed delivery: a local write still yields exactly one local event, remote ones arrive later in order', async () => {
    const a = await open();
    const b = await open();
    const sa = await a.open<Counter>('c', { initial: { n: 0 } });
    const sb = await b.open<Counter>('c');
    store.delayDelivery(a, 50);
    const rec = new Recorder(sa);
    await sa.update((d) => void (d.n = 1));
    await sb.update((d) => void (d.n = 2));
    await sa.update((d) => void (d.n = 3));
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(rec.versions(), [2, 3, 4]);
    assert.deepEqual(rec.events.map((e) => e.origin), ['local', 'remote', 'local']);
    assert.deepEqual(rec.fold(), { n: 3 });
  });

  it('compaction while the watch is down: one resync event with the net diff', async () => {
    const a = await open();
    const b = await open();
    const sa = await a.open<Counter & { extra?: string }>('c', { initial: { n: 0 } });
    const sb = await b.open<Counter & { extra?: string }>('c');
    const rec = new Recorder(sb);
    const heal = store.partition(b);
    for (let i = 0; i < 4; i++) await sa.update((d) => void (d.n += 1));
    await sa.update((d) => void (d.extra = 'x'));
    store.compact();
    store.dropWatches(b);
    heal();
    await eventually('b resynced', () => sb.readDirty().extra === 'x');
    const resyncs = rec.events.filter((e) => e.origin === 'resync');
    assert.equal(resyncs.length, 1, JSON.stringify(rec.events.map((e) => [e.version, e.origin])));
    assert.equal(resyncs[0]!.coalesced, true);
    assert.deepEqual(rec.fold(), { n: 4, extra: 'x' });
  });

  it('a corrupt remote value: an error event, the cache keeps the last valid version, the next valid one resyncs', async () => {
    const a = await open();
    const sa = await a.open<Counter>('c', { initial: { n: 1 } });
    const rec = new Recorder(sa);
    const errors: SharedStructError[] = [];
    sa.on('error', (e) => errors.push(e));
    const raw = await open();
    const backend = memoryBackendOf(raw);
    const key = '/sharedstruct/c/payload';
    assert.ok((await backend.put(key, enc('{not json'), { expectedVersion: 1 })).ok);
    await eventually('error event', () => errors.length === 1);
    assert.equal(errors[0]!.code, 'CORRUPT_REMOTE_VALUE');
    assert.deepEqual(sa.read(), { n: 1 });
    assert.equal(sa.stat().version, 1);
    assert.ok((await backend.put(key, enc('{"n":5}'), { expectedVersion: 2 })).ok);
    await eventually('recovered', () => sa.readDirty().n === 5);
    assert.equal(rec.events.length, 1);
    assert.equal(rec.events[0]!.origin, 'resync');
    assert.equal(rec.events[0]!.coalesced, true);
    assert.deepEqual(rec.fold(), { n: 5 });
  });

  it('a local write over a corrupt value heals the struct; the corrupt version is reported once', async () => {
    const a = await open();
    const sa = await a.open<Counter>('c', { initial: { n: 1 } });
    const rec = new Recorder(sa);
    const errors: SharedStructError[] = [];
    sa.on('error', (e) => errors.push(e));
    const raw = memoryBackendOf(await open());
    assert.ok((await raw.put('/sharedstruct/c/payload', enc('garbage'), { expectedVersion: 1 })).ok);
    await eventually('reported', () => errors.length === 1);
    await sa.readConsistent();
    const w = await sa.update((d) => void (d.n = 9));
    assert.equal(w.version, 3);
    assert.deepEqual(sa.read(), { n: 9 });
    assert.equal(errors.length, 1, 'the same corrupt version is not reported again');
    assert.deepEqual(rec.events.map((e) => [e.version, e.previousVersion, e.origin, e.coalesced]), [[3, 1, 'local', true]]);
    assert.deepEqual(rec.fold(), { n: 9 });
  });

  it('a delete then a re-create elsewhere: deleted, then a resync into the new life', async () => {
    const a = await open();
    const b = await open();
    const sa = await a.open<Counter>('c', { initial: { n: 1 } });
    const sb = await b.open<Counter>('c');
    const rec = new Recorder(sb);
    let deleted = 0;
    sb.on('deleted', () => (deleted += 1));
    await sa.delete();
    await eventually('deleted', () => deleted === 1);
    const again = await a.open<Counter>('c', { initial: { n: 100 } });
    assert.equal(again.stat().version, 1);
    await eventually('b sees the new life', () => sb.stat().state === 'open' && sb.readDirty().n === 100);
    assert.equal(rec.events[rec.events.length - 1]!.origin, 'resync');
    assert.equal(rec.events[rec.events.length - 1]!.previousVersion, 0);
    assert.deepEqual(rec.fold(), { n: 100 });
  });

  it('the periodic check confirms an idle cache with a version-only request', async () => {
    const a = await open();
    const s = await a.open<Counter>('c', { initial: { n: 1 }, refreshIntervalMs: 50, maxStalenessMs: 150 });
    const before = a.requestCounts();
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(s.read(), { n: 1 }, 'still fresh after more than maxStalenessMs idle');
    const after = a.requestCounts();
    assert.ok((after.stat ?? 0) - (before.stat ?? 0) >= 3, 'confirmed by stat');
    assert.equal((after.get ?? 0) - (before.get ?? 0), 0, 'no value read when nothing changed');
  });
});
