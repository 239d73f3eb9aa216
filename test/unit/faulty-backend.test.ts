/**
 * The fault matrix's seeded bugs (test/support/faulty-backend.ts) on memory: each wrapper really
 * changes what the library does on top of it, in a small scene of its own, and the same scene on
 * the unwrapped backend does not show it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { MemoryBackend } from '../../adapters/memory/index.js';
import type { Backend } from '../../lib/backend.js';
import { backendOf } from '../../lib/client.js';
import { connectWrapped } from '../../lib/connect.js';
import { isSharedStructError, type Client, type Logger } from '../../lib/index.js';
import { faultyBackend, innermost, type SeededBug } from '../support/faulty-backend.js';
import { sleep } from '../support/process.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** One scene: clients on a store of its own, closed (and healed) at the end. */
class Scene {
  readonly url = `memory://faulty-${randomUUID().slice(0, 8)}`;
  readonly #clients: Client[] = [];
  readonly #heals: (() => void)[] = [];

  /** A client whose backends are wrapped with `bug` (none: the real backend). */
  async client(bug: SeededBug | undefined, sessionTtlMs = 2000): Promise<Client> {
    const wrap = bug === undefined ? (b: Backend) => b : faultyBackend(bug);
    const c = await connectWrapped(this.url, { sessionTtlMs, requestTimeoutMs: 300, logger: quiet }, wrap);
    this.#clients.push(c);
    return c;
  }

  /**
   * One struct `{ n: 0 }` opened by a client with `bug` seeded (`sa`) and by one without (`sb`),
   * `sa` with `options`.
   */
  async shared(name: string, bug: SeededBug | undefined, options: { maxStalenessMs?: number; refreshIntervalMs?: number } = {}) {
    const a = await this.client(bug);
    const b = await this.client(undefined);
    const sa = await a.open<{ n: number }>(name, { initial: { n: 0 }, ...options });
    const sb = await b.open<{ n: number }>(name);
    return { a, sa, sb };
  }

  /** Cuts `client` off the store (memory's partition hook, under any wrapper). */
  partition(client: Client): () => void {
    const heal = (innermost(backendOf(client)) as MemoryBackend).partition();
    this.#heals.push(heal);
    return heal;
  }

  async close(): Promise<void> {
    for (const heal of this.#heals) heal();
    await Promise.all(this.#clients.map((c) => c.close()));
  }
}

/** Runs `scene` once with `bug` seeded and once without. */
async function both<R>(bug: SeededBug, scene: (s: Scene, seeded: SeededBug | undefined) => Promise<R>): Promise<{ seeded: R; real: R }> {
  const run = async (b: SeededBug | undefined): Promise<R> => {
    const s = new Scene();
    try {
      return await scene(s, b);
    } finally {
      await s.close();
    }
  };
  return { seeded: await run(bug), real: await run(undefined) };
}

/** What a promise settled to: its value, or its error's code. */
async function outcome<T>(p: Promise<T>): Promise<{ value: T } | { code: string }> {
  try {
    return { value: await p };
  } catch (err) {
    if (isSharedStructError(err)) return { code: err.code };
    throw err;
  }
}

describe('faulty backends (the seeded bugs of the fault matrix)', () => {
  it('cached-read: readConsistent() answers from the watch cache, older than a write it followed', async () => {
    const r = await both('cached-read', async (s, bug) => {
      const { a, sa, sb } = await s.shared('r', bug);
      // a's watch lags (as a cut-off or slow client's does); the store has b's write.
      (innermost(backendOf(a)) as MemoryBackend).delayDelivery(1000);
      await sb.set({ n: 1 });
      return (await sa.readConsistent()).n;
    });
    assert.deepEqual(r, { seeded: 0, real: 1 });
  });

  it('cached-read: a client cut off gets its copy back at once instead of a TIMEOUT', async () => {
    const r = await both('cached-read', async (s, bug) => {
      const a = await s.client(bug);
      const sa = await a.open<{ n: number }>('r', { initial: { n: 0 } });
      s.partition(a);
      return outcome(sa.readConsistent());
    });
    assert.deepEqual(r, { seeded: { value: { n: 0 } }, real: { code: 'TIMEOUT' } });
  });

  it('unchecked-staleness: read() of a client cut off past maxStalenessMs serves its old value, never STALE_READ', async () => {
    const r = await both('unchecked-staleness', async (s, bug) => {
      const { a, sa, sb } = await s.shared('w', bug, { maxStalenessMs: 200, refreshIntervalMs: 50 });
      s.partition(a);
      await sb.set({ n: 1 });
      await sleep(600);
      return { read: outcome(Promise.resolve().then(() => sa.read().n)), stalenessMs: sa.stat().stalenessMs };
    });
    assert.deepEqual(await r.seeded.read, { value: 0 });
    assert.ok(r.seeded.stalenessMs < 200, `seeded: the cache looks confirmed ${r.seeded.stalenessMs} ms ago`);
    assert.deepEqual(await r.real.read, { code: 'STALE_READ' });
    assert.ok(r.real.stalenessMs >= 600, `real: last confirmed ${r.real.stalenessMs} ms ago`);
  });

  it('blind-cas: compareAndSet() against an old version overwrites a newer write', async () => {
    const r = await both('blind-cas', async (s, bug) => {
      const { sa, sb } = await s.shared('c', bug);
      await sb.set({ n: 1 }); // version 2
      const cas = await outcome(sa.compareAndSet(1, { n: 10 }));
      return { cas, stored: (await sb.readConsistent()).n };
    });
    assert.deepEqual(r.seeded, { cas: { value: { value: { n: 10 }, version: 3 } }, stored: 10 });
    assert.deepEqual(r.real, { cas: { code: 'CONFLICT' }, stored: 1 });
  });

  it('blind-cas: a transaction whose version compare fails commits anyway', async () => {
    const r = await both('blind-cas', async (s, bug) => {
      const a = await s.client(bug);
      const backend = backendOf(a);
      await backend.create('/t/k', bytes('0'));
      await backend.put('/t/k', bytes('1'), { expectedVersion: 1 }); // version 2
      const res = await backend.txn({ compare: [{ key: '/t/k', version: 1 }], ops: [{ op: 'put', key: '/t/k', value: bytes('stale') }] });
      return { ok: res.ok, stored: new TextDecoder().decode((await backend.get('/t/k'))!.value) };
    });
    assert.deepEqual(r, { seeded: { ok: true, stored: 'stale' }, real: { ok: false, stored: '1' } });
  });

  it('split-dequeue: a commit whose queued message another consumer already removed applies it again', async () => {
    const r = await both('split-dequeue', async (s, bug) => {
      const backend = backendOf(await s.client(bug));
      await backend.create('/t/payload', bytes('0'));
      await backend.create('/t/queue/m-1', bytes('msg'));
      // A consumer planned the message at version 1; another consumer committed it meanwhile.
      await backend.delete('/t/queue/m-1');
      const res = await backend.txn({
        compare: [{ key: '/t/queue/m-1', version: 1 }],
        ops: [{ op: 'put', key: '/t/payload', value: bytes('applied again'), expectedVersion: 1 }, { op: 'delete', key: '/t/queue/m-1' }],
      });
      return { ok: res.ok, entries: res.ok ? res.entries.map((e) => e?.key) : [], state: new TextDecoder().decode((await backend.get('/t/payload'))!.value) };
    });
    assert.deepEqual(r, { seeded: { ok: true, entries: ['/t/payload', undefined], state: 'applied again' }, real: { ok: false, entries: [], state: '0' } });
  });

  it('split-dequeue: the state change commits while the message stays queued when the second request fails', async () => {
    const r = await both('split-dequeue', async (s, bug) => {
      const a = await s.client(bug);
      const backend = backendOf(a);
      await backend.create('/t/payload', bytes('0'));
      await backend.create('/t/queue/m-1', bytes('msg'));
      // The commit goes through; the next request of this client is cut off.
      const inner = innermost(backend);
      const txn = inner.txn.bind(inner);
      let calls = 0;
      inner.txn = (t, o) => (++calls === 2 ? Promise.reject(new Error('cut off')) : txn(t, o));
      const failed = await backend
        .txn({ compare: [{ key: '/t/queue/m-1', version: 1 }], ops: [{ op: 'put', key: '/t/payload', value: bytes('1'), expectedVersion: 1 }, { op: 'delete', key: '/t/queue/m-1' }] })
        .then(
          () => false,
          () => true,
        );
      inner.txn = txn;
      return { failed, state: new TextDecoder().decode((await backend.get('/t/payload'))!.value), queued: (await backend.get('/t/queue/m-1')) !== undefined };
    });
    assert.deepEqual(r, { seeded: { failed: true, state: '1', queued: true }, real: { failed: false, state: '1', queued: false } });
  });

  it('lock-without-queue: a contender holds the lock while its holder still does', async () => {
    const r = await both('lock-without-queue', async (s, bug) => {
      const a = await s.client(undefined);
      const b = await s.client(bug);
      const first = await a.lock('x');
      const second = await outcome(b.lock('x', { waitMs: 300 }));
      const both = 'value' in second && first.held && second.value.held;
      if ('value' in second) await second.value.release();
      await first.release();
      return { second: 'value' in second ? 'acquired' : second.code, both };
    });
    assert.deepEqual(r, { seeded: { second: 'acquired', both: true }, real: { second: 'LOCK_TIMEOUT', both: false } });
  });

  it('lock-ignores-session: a holder cut off past its ttl still holds, while another client took the lock', async () => {
    const ttl = 1000;
    const r = await both('lock-ignores-session', async (s, bug) => {
      const a = await s.client(bug, ttl);
      const c = await s.client(undefined, ttl);
      const lock = await a.lock('x');
      const heal = s.partition(a);
      // Memory expires a cut-off session on the server after its ttl: the lock is free then.
      await sleep(ttl + 300);
      const other = await outcome(c.lock('x', { waitMs: 1000 }));
      const during = { held: lock.held, aborted: lock.signal.aborted, other: 'value' in other ? 'acquired' : other.code };
      if ('value' in other) await other.value.release();
      // On the heal the new session shows, and then even the seeded holder learns.
      heal();
      for (let i = 0; i < 50 && !lock.signal.aborted; i++) await sleep(20);
      return { during, afterHeal: lock.signal.aborted };
    });
    assert.deepEqual(r.seeded, { during: { held: true, aborted: false, other: 'acquired' }, afterHeal: true });
    assert.deepEqual(r.real, { during: { held: false, aborted: true, other: 'acquired' }, afterHeal: true });
  });
});
