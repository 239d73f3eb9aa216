/**
 * The coordination contract: locks, updateLocked, election and membership through `connect()`,
 * run unchanged on every backend. Faults use the target's real mechanisms (partition, expiry).
 * Multi-process scenarios (SIGKILL, SIGSTOP of a holder) live in the backends' own suites.
 */
import assert from 'node:assert/strict';
import { backendOf } from '../../lib/client.js';
import { safetyMarginMs, type Client, type Leader, type Lock, type MemberChange } from '../../lib/index.js';
import { eventually } from './struct.suite.js';
import { storePerTest, type ContractTarget } from './target.js';
import { sleep } from '../support/process.js';

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));
const dec = (b: Uint8Array | undefined): unknown => (b ? JSON.parse(new TextDecoder().decode(b)) : undefined);

/** Registers the coordination tests under `[name] coordination contract`. */
export function coordinationContract(target: ContractTarget): void {
  describe(`[${target.name}] coordination contract`, function () {
    this.timeout(60000);
    const ctx = storePerTest(target);
    let seq = 0;
    const name = (): string => `c${Date.now().toString(36)}-${++seq}`;

    describe('locks', () => {
      it('10 contenders doing read-sleep-write of a plain key under the lock end at exactly 10 × N', async () => {
        const clients = await Promise.all(Array.from({ length: 10 }, () => ctx.store.connect()));
        const lockName = name();
        const key = `${clients[0]!.namespace}/counter-${lockName}`;
        await ctx.store.rawPut(key, enc({ n: 0 }));
        const N = 4;
        const tokens: bigint[] = [];
        await Promise.all(
          clients.map(async (c) => {
            for (let i = 0; i < N; i++) {
              await c.withLock(lockName, async (lock) => {
                tokens.push(BigInt(lock.token));
                const { n } = dec(await ctx.store.rawGet(key)) as { n: number };
                await sleep(2);
                await ctx.store.rawPut(key, enc({ n: n + 1 }));
              }, { waitMs: 30000 });
            }
          }),
        );
        assert.deepEqual(dec(await ctx.store.rawGet(key)), { n: 10 * N });
        for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i]! > tokens[i - 1]!, `tokens grow: ${tokens[i - 1]} then ${tokens[i]}`);
      });

      it('waiters get the lock in the order they asked (FIFO)', async () => {
        const [a, ...others] = await Promise.all([0, 1, 2, 3].map(() => ctx.store.connect()));
        const lockName = name();
        const held = await a!.lock(lockName);
        const order: number[] = [];
        const waiting: Promise<void>[] = [];
        const parent = `${a!.namespace}/_locks/${lockName}`;
        for (const [i, c] of others.entries()) {
          waiting.push(c.withLock(lockName, () => void order.push(i)));
          // Each waiter is queued before the next one asks.
          await eventually(`waiter ${i} queued`, async () => (await backendOf(a!).list(parent)).length === i + 2);
        }
        await held.release();
        await Promise.all(waiting);
        assert.deepEqual(order, [0, 1, 2]);
      });

      it('LOCK_TIMEOUT after waitMs, ABORTED on the signal, and the queue keeps no leftovers', async () => {
        const [a, b] = await Promise.all([ctx.store.connect(), ctx.store.connect()]);
        const lockName = name();
        const held = await a.lock(lockName);
        await assert.rejects(b.lock(lockName, { waitMs: 300 }), { code: 'LOCK_TIMEOUT' });
        const ctl = new AbortController();
        setTimeout(() => ctl.abort(), 200);
        await assert.rejects(b.lock(lockName, { signal: ctl.signal }), { code: 'ABORTED' });
        const queue = await backendOf(a).list(`${a.namespace}/_locks/${lockName}`);
        assert.deepEqual(queue.map((e) => e.key), [held.key]);
        await held.release();
        await held.release();
        assert.ok(!held.held);
      });

      it('withLock resolves what fn resolves and always releases, also when fn throws', async () => {
        const a = await ctx.store.connect();
        const lockName = name();
        assert.equal(await a.withLock(lockName, () => 42), 42);
        await assert.rejects(a.withLock(lockName, () => Promise.reject(new Error('boom'))), /boom/);
        const again = await a.lock(lockName, { waitMs: 1000 });
        await again.release();
      });

      it('a lock with its own ttlMs lives on a session of that ttl', async () => {
        const a = await ctx.store.connect();
        const lockName = name();
        const lock = await a.lock(lockName, { ttlMs: 3000 });
        const [entry] = await backendOf(a).list(`${a.namespace}/_locks/${lockName}`);
        assert.equal((dec(entry?.value) as { ttlMs: number }).ttlMs, 3000);
        assert.notEqual(backendOf(a).session.ttlMs, 3000);
        await lock.release();
        await assert.rejects(a.lock(lockName, { ttlMs: 10 }), { code: 'INVALID_ARGUMENT' });
      });

      it('a holder whose session expires: signal aborts LOCK_LOST, the next holder has a larger token, a late release keeps its key', async () => {
        const a = await ctx.store.connect({ sessionTtlMs: 2000, requestTimeoutMs: 500 });
        const b = await ctx.store.connect();
        const lockName = name();
        const lock: Lock = await a.lock(lockName);
        const lostAt = new Promise<number>((resolve) => lock.signal.addEventListener('abort', () => resolve(Date.now()), { once: true }));
        const next = b.lock(lockName, { waitMs: 30000 });
        const heal = await ctx.store.partition(a);
        await ctx.store.expireSession(a);
        const lost = await lostAt;
        assert.equal((lock.signal.reason as { code?: string }).code, 'LOCK_LOST');
        const nextLock = await next;
        assert.ok(BigInt(nextLock.token) > BigInt(lock.token), 'fencing token grows');
        assert.ok(lost <= Date.now());
        await heal();
        await lock.release();
        const queue = await backendOf(b).list(`${b.namespace}/_locks/${lockName}`);
        assert.deepEqual(queue.map((e) => e.key), [nextLock.key], 'the new holder keeps its key');
        await nextLock.release();
      });

      it('a holder cut off longer than its ttl learns it lost the lock before the server can free it', async () => {
        const ttl = 2000;
        const a = await ctx.store.connect({ sessionTtlMs: ttl, requestTimeoutMs: 500 });
        const lock = await a.lock(name());
        const cutAt = Date.now();
        const heal = await ctx.store.partition(a);
        const lostAfter = await new Promise<number>((resolve) => lock.signal.addEventListener('abort', () => resolve(Date.now() - cutAt), { once: true }));
        const budget = backendOf(a).session.ttlMs - safetyMarginMs(backendOf(a).session.ttlMs);
        assert.ok(lostAfter <= budget + 200, `lost after ${lostAfter} ms; must be within ttl - margin = ${budget} ms`);
        await heal();
      });

      it('release while the store is unreachable resolves, and the key goes once it is back', async () => {
        // A holder cut off past its deadline gives the lock up while its session still lives on
        // the server; its release cannot get through. A key left behind would keep the lock for
        // as long as that session lives (it reconnects within its ttl, so forever).
        const a = await ctx.store.connect({ sessionTtlMs: 4000, requestTimeoutMs: 500 });
        const b = await ctx.store.connect();
        const lockName = name();
        const lock = await a.lock(lockName);
        const next = b.lock(lockName, { waitMs: 30000 });
        await eventually('b queued', async () => (await backendOf(b).list(`${b.namespace}/_locks/${lockName}`)).length === 2, 10000);
        const heal = await ctx.store.partition(a);
        let healed = false;
        try {
          await new Promise<void>((resolve) => lock.signal.addEventListener('abort', () => resolve(), { once: true }));
          await lock.release(); // must not throw: the store is unreachable, not the lock in doubt
          await heal();
          healed = true;
          const healedAt = Date.now();
          const taken = await next;
          const after = Date.now() - healedAt;
          assert.equal(a.state === 'connected' || a.state === 'reconnected' || a.state === 'suspended', true, `a's session: ${a.state}`);
          assert.ok(after < 3000, `b got the lock ${after} ms after the heal`);
          await taken.release();
        } finally {
          if (!healed) await heal();
        }
      });

      it('the lost signal comes by last contact + ttl - margin even when the client notices the cut late', async () => {
        // A request deadline longer than a keepalive interval: the adapter may say `suspended`
        // late (etcd's keepalive checks run once per third of the ttl). The server's expiry
        // clock runs from the last contact regardless, and so must the holder's.
        const a = await ctx.store.connect({ sessionTtlMs: 3000, requestTimeoutMs: 2000 });
        const lock = await a.lock(name());
        await sleep(300);
        const heal = await ctx.store.partition(a);
        try {
          const session = backendOf(a).session;
          const abortedAt = await Promise.race([
            new Promise<number>((resolve) => lock.signal.addEventListener('abort', () => resolve(Date.now()), { once: true })),
            sleep(3 * session.ttlMs).then(() => Number.NaN),
          ]);
          assert.ok(!Number.isNaN(abortedAt), 'the holder never learned');
          const deadline = session.ttlMs - safetyMarginMs(session.ttlMs);
          const after = abortedAt - session.lastContactAt;
          assert.ok(after <= deadline + 100, `the signal came ${after} ms after the last contact; the deadline is ${deadline} ms (the server may expire the session at ${session.ttlMs} ms)`);
        } finally {
          await heal();
        }
      });
    });

    describe('updateLocked', () => {
      it('runs fn under the write lock, one holder at a time, and writes once per call', async () => {
        const clients = await Promise.all([0, 1, 2].map(() => ctx.store.connect()));
        const n = name();
        const structs = await Promise.all(clients.map((c) => c.open<{ n: number; inside: number }>(n, { initial: { n: 0, inside: 0 } })));
        let inside = 0;
        let maxInside = 0;
        await Promise.all(
          structs.map(async (s) => {
            for (let i = 0; i < 3; i++) {
              await s.updateLocked(async (d) => {
                inside += 1;
                maxInside = Math.max(maxInside, inside);
                await sleep(5);
                inside -= 1;
                d.n += 1;
              }, { lockTimeoutMs: 30000 });
            }
          }),
        );
        assert.equal(maxInside, 1, 'never two holders at once');
        assert.deepEqual((await structs[0]!.readConsistent()).n, 9);
      });

      it('a lost write lock: rejects LOCK_LOST and writes nothing', async () => {
        const a = await ctx.store.connect({ sessionTtlMs: 2000, requestTimeoutMs: 500 });
        const b = await ctx.store.connect();
        const n = name();
        const sa = await a.open<{ n: number }>(n, { initial: { n: 1 } });
        const sb = await b.open<{ n: number }>(n);
        await assert.rejects(
          sa.updateLocked(async (d) => {
            const heal = await ctx.store.partition(a);
            await ctx.store.expireSession(a);
            await eventually('session lost on the client', () => a.state === 'suspended' || a.state === 'lost' || a.state === 'reconnected', 20000);
            await sleep(backendOf(a).session.ttlMs);
            await heal();
            d.n = 999;
          }),
          { code: 'LOCK_LOST' },
        );
        assert.deepEqual(await sb.readConsistent(), { n: 1 });
        assert.equal(sb.stat().version, 1);
      });

      it('a holder frozen past its deadline inside fn: LOCK_LOST, and no write is sent', async () => {
        const a = await ctx.store.connect({ sessionTtlMs: 2000, requestTimeoutMs: 1000 });
        const n = name();
        const s = await a.open<{ n: number }>(n, { initial: { n: 1 } });
        let txnsAtFreeze = -1;
        await assert.rejects(
          s.updateLocked((d) => {
            const ttl = backendOf(a).session.ttlMs;
            txnsAtFreeze = a.requestCounts().txn ?? 0;
            // A freeze (SIGSTOP, a long GC pause): nothing runs, no timer fires, past the deadline.
            const until = Date.now() + ttl - safetyMarginMs(ttl) + 300;
            while (Date.now() < until) {
              // frozen
            }
            d.n = 2;
          }),
          { code: 'LOCK_LOST' },
        );
        assert.equal(a.requestCounts().txn ?? 0, txnsAtFreeze, 'a guarded write was sent after the holder could know its lock was gone');
        assert.deepEqual(await s.readConsistent(), { n: 1 });
      });

      it('CONFLICT when a writer that does not take the lock changed the struct meanwhile', async () => {
        const [a, b] = await Promise.all([ctx.store.connect(), ctx.store.connect()]);
        const n = name();
        const sa = await a.open<{ n: number }>(n, { initial: { n: 1 } });
        const sb = await b.open<{ n: number }>(n);
        await assert.rejects(
          sa.updateLocked(async (d) => {
            await sb.update((x) => void (x.n = 50));
            d.n = 2;
          }),
          { code: 'CONFLICT' },
        );
        assert.deepEqual(await sa.readConsistent(), { n: 50 });
      });
    });

    describe('election', () => {
      it('one leader at a time; resign hands over in order; observe follows', async () => {
        const clients = await Promise.all([0, 1, 2].map(() => ctx.store.connect()));
        const electionName = name();
        const parent = `${clients[0]!.namespace}/_elections/${electionName}`;
        const elections = clients.map((c, i) => c.election(electionName, { id: `n${i}`, data: { i } }));
        const seen: string[] = [];
        const ctl = new AbortController();
        const observing = (async () => {
          for await (const leader of elections[0]!.observe({ signal: ctl.signal })) seen.push(leader?.id ?? 'null');
        })().catch(() => {});
        // The observer's first answer (no leader yet) before anyone campaigns: on a 3-member
        // cluster behind proxies a campaign could otherwise win before the observer's first list.
        await eventually('the observer answered', () => seen.length > 0);
        const first = await elections[0]!.campaign();
        await eventually('n0 observed', () => seen.includes('n0'));
        // Queue n1 before n2: through two connections their creates could land in either order.
        const pending1 = elections[1]!.campaign();
        await eventually('n1 queued', async () => (await backendOf(clients[0]!).list(parent)).length === 2);
        const pending2 = elections[2]!.campaign();
        await eventually('n2 queued', async () => (await backendOf(clients[0]!).list(parent)).length === 3);
        assert.equal(first.id, 'n0');
        assert.deepEqual(elections.map((e) => e.isLeader), [true, false, false]);
        assert.deepEqual(await elections[2]!.leader(), { id: first.id, data: first.data, token: first.token });
        await elections[0]!.resign();
        const second = await pending1;
        assert.equal(second.id, 'n1');
        assert.ok(BigInt(second.token) > BigInt(first.token));
        // observe() reports the current leader; a term shorter than one notification could be
        // skipped, so each term is held until it was observed.
        await eventually('n1 observed', () => seen.includes('n1'));
        await elections[1]!.resign();
        assert.equal((await pending2).id, 'n2');
        await eventually('n2 observed', () => seen.includes('n2'));
        await elections[2]!.resign();
        // Observing started before anyone campaigned: null first, then each leader once, then null.
        await eventually('observed every leader, then none', () => seen.join(',') === 'null,n0,n1,n2,null', 10000).catch((err: unknown) => {
          throw new Error(`${(err as Error).message}: observed ${seen.join(',')}`, { cause: err });
        });
        ctl.abort();
        await observing;
      });

      it('a leader cut off until its session expires is deposed before anyone else is elected', async () => {
        // Natural expiry: the server ends the session after the ttl without hearing from it.
        // (An expiry forced on the server, like a revoked lease, reaches the leader only when it
        // reconnects; no client can learn of it sooner.)
        const a = await ctx.store.connect({ sessionTtlMs: 2000, requestTimeoutMs: 500 });
        const b = await ctx.store.connect();
        const electionName = name();
        const ea = a.election(electionName, { id: 'a' });
        const eb = b.election(electionName, { id: 'b' });
        const events: [string, string, number][] = [];
        ea.on('elected', () => events.push(['elected', 'a', Date.now()]));
        ea.on('deposed', () => events.push(['deposed', 'a', Date.now()]));
        eb.on('elected', () => events.push(['elected', 'b', Date.now()]));
        await ea.campaign();
        const bLeads: Promise<Leader> = eb.campaign();
        const heal = await ctx.store.partition(a);
        await bLeads;
        await heal();
        const deposedA = events.find((e) => e[0] === 'deposed' && e[1] === 'a');
        const electedB = events.find((e) => e[0] === 'elected' && e[1] === 'b');
        assert.ok(deposedA && electedB, JSON.stringify(events));
        assert.ok(deposedA[2] <= electedB[2], `a deposed (${deposedA[2]}) before b elected (${electedB[2]})`);
        await eb.resign();
      });
    });

    describe('membership', () => {
      it('join and leave events without duplicates; members() lists who is in', async () => {
        const [watcher, m1, m2] = await Promise.all([ctx.store.connect(), ctx.store.connect(), ctx.store.connect()]);
        const group = name();
        const g0 = await watcher.join(group, { id: 'watcher' });
        const changes: MemberChange[] = [];
        const ctl = new AbortController();
        const reading = (async () => {
          for await (const c of g0.changes({ signal: ctl.signal })) changes.push(c);
        })().catch(() => {});
        await sleep(200);
        const g1 = await m1.join(group, { id: 'm1', data: { zone: 'eu' } });
        await m2.join(group, { id: 'm2' });
        await eventually('two joins', () => changes.length === 2);
        assert.deepEqual((await g0.members()).map((m) => m.id), ['watcher', 'm1', 'm2']);
        assert.deepEqual((await g0.members())[1]!.data, { zone: 'eu' });
        await g1.leave();
        await m2.close();
        await eventually('two leaves', () => changes.length === 4);
        await sleep(200);
        assert.deepEqual(changes.map((c) => `${c.type}:${c.member.id}`), ['join:m1', 'join:m2', 'leave:m1', 'leave:m2']);
        ctl.abort();
        await reading;
      });

      it('a member whose session expires leaves; after the new session it joins again', async () => {
        const watcher: Client = await ctx.store.connect();
        const m = await ctx.store.connect({ sessionTtlMs: 2000, requestTimeoutMs: 500 });
        const group = name();
        const g0 = await watcher.join(group, { id: 'watcher' });
        await m.join(group, { id: 'm' });
        const changes: string[] = [];
        const ctl = new AbortController();
        const reading = (async () => {
          for await (const c of g0.changes({ signal: ctl.signal })) changes.push(`${c.type}:${c.member.id}`);
        })().catch(() => {});
        await sleep(200);
        const heal = await ctx.store.partition(m);
        await ctx.store.expireSession(m);
        await eventually('leave', () => changes.includes('leave:m'), 20000);
        await heal();
        await eventually('join again', () => changes.includes('join:m'), 20000);
        assert.deepEqual(changes, ['leave:m', 'join:m']);
        ctl.abort();
        await reading;
      });
    });
  });
}
