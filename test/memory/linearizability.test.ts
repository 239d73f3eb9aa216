/**
 * The checker on real histories from the memory backend: concurrent readConsistent / update /
 * compareAndSet from five clients are linearizable; a cached read() passed off as consistent
 * (issue 8's first seeded bug, here through the workload) is caught.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { connect, isSharedStructError, type Client, type SharedStruct } from '../../lib/index.js';
import { checkLinearizable, type Operation } from '../faults/linearizability.js';
import { memoryBackendOf, memoryTarget } from './target.js';
import { linearizabilityContract } from '../contract/linearizability.suite.js';

type Counter = { n: number };
const inc = (s: string): string => JSON.stringify({ n: (JSON.parse(s) as Counter).n + 1 });

describe('[memory] linearizability of recorded histories', function () {
  this.timeout(30000);
  const clients: Client[] = [];
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  });
  const open = async (url: string, n: number): Promise<SharedStruct<Counter>[]> => {
    const out: SharedStruct<Counter>[] = [];
    for (let i = 0; i < n; i++) {
      const c = await connect(url);
      clients.push(c);
      out.push(await c.open<Counter>('reg', { initial: { n: 0 } }));
    }
    return out;
  };

  it('five clients: readConsistent, update and compareAndSet form a linearizable history', async () => {
    const structs = await open(`memory://lin-${randomUUID().slice(0, 8)}`, 5);
    const history: Operation[] = [];
    await Promise.all(
      structs.map(async (s, client) => {
        for (let i = 0; i < 25; i++) {
          const pick = (client + i) % 3;
          const call = performance.now();
          if (pick === 0) {
            await s.readConsistent();
            // Value and version from the cache in one synchronous step: a consistent pair, and the
            // version was current at some instant between call and return.
            history.push({ kind: 'read', client, call, ret: performance.now(), output: { version: s.stat().version, value: JSON.stringify(s.readDirty()) } });
          } else if (pick === 1) {
            const r = await s.update((d) => void (d.n += 1), { maxRetries: 1000 });
            history.push({ kind: 'update', client, call, ret: performance.now(), next: inc, output: { version: r.version, value: JSON.stringify(r.value) } });
          } else {
            const expectedVersion = s.stat().version;
            const value = { n: -client * 100 - i };
            try {
              const r = await s.compareAndSet(expectedVersion, value);
              history.push({ kind: 'cas', client, call, ret: performance.now(), expectedVersion, value: JSON.stringify(value), output: { ok: true, version: r.version } });
            } catch (err) {
              if (!isSharedStructError(err, 'CONFLICT')) throw err;
              history.push({ kind: 'cas', client, call, ret: performance.now(), expectedVersion, value: JSON.stringify(value), output: { ok: false } });
            }
          }
        }
      }),
    );
    const r = checkLinearizable({ version: 1, value: '{"n":0}' }, history);
    assert.ok(r.linearizable, `${history.length} operations, explored ${r.explored}`);
  });

  it('a cached read passed off as consistent, on a client with delayed delivery, is caught', async () => {
    const [writer, reader] = await open(`memory://lin-${randomUUID().slice(0, 8)}`, 2);
    memoryBackendOf(clients[1]!).delayDelivery(50);
    const history: Operation[] = [];
    for (let i = 0; i < 5; i++) {
      let call = performance.now();
      const w = await writer!.update((d) => void (d.n += 1));
      history.push({ kind: 'update', client: 0, call, ret: performance.now(), next: inc, output: { version: w.version, value: JSON.stringify(w.value) } });
      call = performance.now();
      const value = reader!.readDirty(); // the seeded bug: the cache, not the store
      history.push({ kind: 'read', client: 1, call, ret: performance.now(), output: { version: reader!.stat().version, value: JSON.stringify(value) } });
    }
    assert.equal(checkLinearizable({ version: 1, value: '{"n":0}' }, history).linearizable, false);
  });
});

linearizabilityContract(memoryTarget);
