/**
 * Issue 8's register workload, trimmed: five clients run readConsistent / update /
 * compareAndSet on three structs, one operation in flight each, every call and return stamped by
 * one monotonic clock; each struct's history must be linearizable. Operations that end in
 * TIMEOUT or CONNECTION are recorded with an unknown outcome (they may have happened).
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { isSharedStructError, type Client, type SharedStruct } from '../../lib/index.js';
import { checkLinearizable, type Operation } from '../faults/linearizability.js';
import { sleep } from '../support/process.js';
import { storePerTest, type ContractStore, type ContractTarget } from './target.js';

type Counter = { n: number };
const inc = (s: string): string => JSON.stringify({ n: (JSON.parse(s) as Counter).n + 1 });
const UNKNOWN = ['TIMEOUT', 'CONNECTION', 'SESSION_LOST'] as const;

/** Runs `ops` operations per client, `paceMs` apart, and resolves the histories by struct. */
export async function workload(structs: SharedStruct<Counter>[][], ops: number, paceMs = 0): Promise<Operation[][]> {
  const histories: Operation[][] = structs[0]!.map(() => []);
  await Promise.all(
    structs.map(async (mine, client) => {
      for (let i = 0; i < ops; i++) {
        // i * 5, not i * 3: with 3 structs, 3i would pin each client to one struct; and k - pick
        // (pick below is (client + i) % 3) runs through every value, so every struct sees every operation kind.
        const k = (client * 7 + i * 5) % mine.length;
        const s = mine[k]!;
        const h = histories[k]!;
        const pick = (client + i) % 3;
        const call = performance.now();
        try {
          if (pick === 0) {
            await s.readConsistent();
            // Value and version in one synchronous step: a pair that was current inside the call.
            h.push({ kind: 'read', client, call, ret: performance.now(), output: { version: s.stat().version, value: JSON.stringify(s.readDirty()) } });
          } else if (pick === 1) {
            const r = await s.update((d) => void (d.n += 1), { maxRetries: 1000 });
            h.push({ kind: 'update', client, call, ret: performance.now(), next: inc, output: { version: r.version, value: JSON.stringify(r.value) } });
          } else {
            const expectedVersion = s.stat().version;
            const value = JSON.stringify({ n: -(client * 1000 + i) });
            try {
              const r = await s.compareAndSet(expectedVersion, JSON.parse(value) as Counter);
              h.push({ kind: 'cas', client, call, ret: performance.now(), expectedVersion, value, output: { ok: true, version: r.version } });
            } catch (err) {
              if (!isSharedStructError(err, 'CONFLICT')) throw err;
              h.push({ kind: 'cas', client, call, ret: performance.now(), expectedVersion, value, output: { ok: false } });
            }
          }
        } catch (err) {
          if (!isSharedStructError(err, ...UNKNOWN)) throw err;
          // The outcome is unknown: a write may have committed; a read constrains nothing.
          if (pick === 1) h.push({ kind: 'update', client, call, next: inc });
          if (pick === 2) {
            const expectedVersion = s.stat().version;
            h.push({ kind: 'cas', client, call, expectedVersion, value: JSON.stringify({ n: -(client * 1000 + i) }) });
          }
          await sleep(50);
        }
        if (paceMs > 0) await sleep(paceMs);
      }
    }),
  );
  return histories;
}

/** Registers the linearizability tests under `[name] linearizability`. */
export function linearizabilityContract(target: ContractTarget): void {
  describe(`[${target.name}] linearizability`, function () {
    this.timeout(120000);
    const ctx = storePerTest(target);
    let seq = 0;

    const openAll = async (options: Parameters<ContractStore['connect']>[0]): Promise<{ clients: Client[]; structs: SharedStruct<Counter>[][] }> => {
      const base = `lin${Date.now().toString(36)}-${++seq}`;
      const clients = await Promise.all([0, 1, 2, 3, 4].map(() => ctx.store.connect(options)));
      const structs = await Promise.all(clients.map((c) => Promise.all([0, 1, 2].map((k) => c.open<Counter>(`${base}-${k}`, { initial: { n: 0 } })))));
      return { clients, structs };
    };

    const check = (histories: Operation[][]): void => {
      const all = histories.flat();
      console.log(`      [${target.name}] ${all.length} operations, ${all.filter((o) => o.ret === undefined).length} with unknown outcome, ${histories.length} histories`);
      for (const [k, h] of histories.entries()) {
        const r = checkLinearizable({ version: 1, value: '{"n":0}' }, h);
        assert.ok(r.linearizable, `struct ${k}: ${h.length} operations (${h.filter((o) => o.ret === undefined).length} unknown), explored ${r.explored}${r.gaveUp ? ', gave up' : ''}`);
      }
    };

    it('5 clients × 3 structs, no fault: every history is linearizable', async () => {
      const { structs } = await openAll({});
      check(await workload(structs, 30));
    });

    it('one client cut off mid-history (shorter than its ttl): still linearizable, unknown outcomes allowed', async () => {
      const { clients, structs } = await openAll({ requestTimeoutMs: 800, sessionTtlMs: 6000 });
      const running = workload(structs, 40, 40);
      await sleep(400);
      const heal = await ctx.store.partition(clients[0]!);
      await sleep(1500);
      await heal();
      const histories = await running;
      check(histories);
      assert.ok(histories.flat().some((o) => o.ret === undefined) || histories.flat().length < 200, 'the partition cut some operations short');
    });
  });
}
