/**
 * Telemetry against the real OpenTelemetry SDK (an on-demand metric reader, an in-memory span
 * exporter): names, attributes and values of what a client records — locks (wait, hold, loss,
 * timeout), elections, durable-server applies, request counts, staleness, session changes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { isSharedStructError } from '../../lib/index.js';
import { collect, installOtel, pointsOf, spansNamed } from '../support/otel.js';
import { sleep } from '../support/process.js';
import { storePerTest, type ContractTarget } from './target.js';

export function telemetryContract(target: ContractTarget): void {
  describe(`[${target.name}] telemetry (OpenTelemetry SDK)`, function () {
    this.timeout(60000);
    before(() => void installOtel());
    const ctx = storePerTest(target);
    const unique = (what: string): string => `${what}-${randomUUID().slice(0, 8)}`;

    it('a lock: its wait and hold are recorded with the lock name and outcome, in a span; a wait that times out says LOCK_TIMEOUT', async () => {
      const a = await ctx.store.connect();
      const b = await ctx.store.connect();
      const name = unique('lock');
      const lock = await a.lock(name);
      await assert.rejects(b.lock(name, { waitMs: 200 }), (err: unknown) => isSharedStructError(err, 'LOCK_TIMEOUT'));
      await sleep(50);
      await lock.release();
      const points = await collect();
      const base = { 'sharedstruct.lock': name, 'sharedstruct.backend': target.name };
      assert.equal(pointsOf(points, 'sharedstruct.lock.wait', { ...base, 'sharedstruct.client': a.telemetryId, 'sharedstruct.outcome': 'ok' })[0]?.count, 1);
      const timedOut = pointsOf(points, 'sharedstruct.lock.wait', { ...base, 'sharedstruct.client': b.telemetryId, 'sharedstruct.outcome': 'LOCK_TIMEOUT' })[0];
      assert.equal(timedOut?.count, 1);
      assert.ok(timedOut.value >= 150, `waited ${timedOut.value} ms`);
      const hold = pointsOf(points, 'sharedstruct.lock.hold', { ...base, 'sharedstruct.outcome': 'released' })[0];
      assert.equal(hold?.count, 1);
      assert.ok(hold.value >= 50, `held ${hold.value} ms`);
      assert.equal(pointsOf(points, 'sharedstruct.lock.losses', base).length, 0);
      const spans = spansNamed('sharedstruct.lock').filter((s) => s.attributes['sharedstruct.lock'] === name);
      assert.deepEqual(spans.map((s) => s.attributes['sharedstruct.outcome']).sort(), ['LOCK_TIMEOUT', 'ok']);
    });

    it('a lock lost with its session counts a loss, its hold ends "lost"; the session changes are counted by state', async () => {
      const client = await ctx.store.connect();
      const name = unique('lost');
      const lock = await client.lock(name);
      const lost = new Promise<void>((resolve) => client.on('state', (c) => c.state === 'lost' && resolve()));
      await ctx.store.expireSession(client);
      // The session learns of it at its next keepalive (etcd) or at once (ZooKeeper, memory).
      await Promise.race([lost, sleep(15000)]);
      await new Promise<void>((resolve) => (lock.signal.aborted ? resolve() : lock.signal.addEventListener('abort', () => resolve(), { once: true })));
      await lock.release();
      const points = await collect();
      assert.equal(pointsOf(points, 'sharedstruct.lock.losses', { 'sharedstruct.lock': name })[0]?.value, 1);
      assert.equal(pointsOf(points, 'sharedstruct.lock.hold', { 'sharedstruct.lock': name, 'sharedstruct.outcome': 'lost' })[0]?.count, 1);
      assert.equal(pointsOf(points, 'sharedstruct.lock.hold', { 'sharedstruct.lock': name, 'sharedstruct.outcome': 'released' }).length, 0, 'a release after the loss is no second end');
      const states = pointsOf(points, 'sharedstruct.session.changes', { 'sharedstruct.client': client.telemetryId });
      assert.ok(states.some((p) => p.attributes['sharedstruct.state'] === 'lost' && p.value >= 1), JSON.stringify(states));
    });

    it('an election: won and resigned; a durable server: applied messages and their cast-to-commit latency', async () => {
      const client = await ctx.store.connect();
      const ename = unique('election');
      const election = client.election(ename);
      const term = await election.campaign();
      await term.resign();
      const sname = unique('server');
      const server = await client.server<{ n: number }, { by: number }>(sname, { initial: { n: 0 }, handle: (d, m) => void (d.n += m.by) });
      for (let i = 0; i < 3; i += 1) await server.cast({ by: 1 });
      await using worker = await server.serve({ batch: 2 });
      const deadline = Date.now() + 20000;
      while (server.state.read().n < 3 && Date.now() < deadline) await sleep(20);
      assert.equal(server.state.read().n, 3);
      await worker.stop();
      const points = await collect();
      const changes = pointsOf(points, 'sharedstruct.election.changes', { 'sharedstruct.election': ename });
      assert.deepEqual(changes.map((p) => `${String(p.attributes['sharedstruct.change'])}=${p.value}`).sort(), ['resigned=1', 'won=1']);
      assert.equal(pointsOf(points, 'sharedstruct.server.applied', { 'sharedstruct.server': sname })[0]?.value, 3);
      const latency = pointsOf(points, 'sharedstruct.server.apply.latency', { 'sharedstruct.server': sname })[0];
      assert.equal(latency?.count, 3);
    });

    it('request counts by operation equal the seam\'s, per client; staleness of each open struct; collecting after close still works', async () => {
      const client = await ctx.store.connect();
      const sname = unique('struct');
      const s = await client.open(sname, { initial: { n: 0 } });
      await s.update((d) => void (d.n += 1));
      await s.readConsistent();
      const expected = client.requestCounts();
      const points = await collect();
      const mine = pointsOf(points, 'sharedstruct.requests', { 'sharedstruct.client': client.telemetryId });
      const seen = Object.fromEntries(mine.map((p) => [String(p.attributes['sharedstruct.operation']), p.value]));
      // Collecting does not send requests, so the two agree exactly.
      assert.deepEqual(seen, { ...expected });
      assert.ok(Object.keys(seen).length > 0);
      const staleness = pointsOf(points, 'sharedstruct.staleness', { 'sharedstruct.client': client.telemetryId, 'sharedstruct.struct': sname })[0];
      assert.ok(staleness && staleness.value >= 0 && staleness.value < 30000, JSON.stringify(staleness));
      await client.close();
      // A closed client's callback is removed: collecting still works (the SDK keeps the last
      // cumulative values), and the figures no longer move.
      const after = await collect();
      const again = Object.fromEntries(pointsOf(after, 'sharedstruct.requests', { 'sharedstruct.client': client.telemetryId }).map((p) => [String(p.attributes['sharedstruct.operation']), p.value]));
      for (const [op, n] of Object.entries(again)) assert.ok(n >= (seen[op] ?? 0), op);
    });
  });
}
