/**
 * Telemetry against the real OpenTelemetry SDK (an on-demand metric reader, an in-memory span
 * exporter): names, attributes and values of what a client records — locks (wait, hold, loss,
 * timeout), elections, durable-server applies, request counts, staleness, session changes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { isSharedStructError, type Logger } from '../../lib/index.js';
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
      // The loss margin: recorded once, the time the server could still have kept the session.
      const margin = pointsOf(points, 'sharedstruct.lock.loss.margin', { 'sharedstruct.lock': name })[0];
      assert.equal(margin?.count, 1);
      assert.ok(margin.value >= 0 && margin.value < 60_000, `margin ${margin.value} ms`);
      assert.equal(pointsOf(points, 'sharedstruct.lock.losses', { 'sharedstruct.lock': name })[0]?.attributes['sharedstruct.late'], margin.value === 0);
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
      const handled = spansNamed('sharedstruct.server.handle').filter((s) => s.attributes['sharedstruct.server'] === sname && s.attributes['sharedstruct.committed'] === true);
      assert.equal(handled.reduce((n, s) => n + Number(s.attributes['sharedstruct.handled']), 0), 3);
    });

    it('updates: duration, attempts and outcome (ok, noop, a conflict retried), events by origin, in spans with their attempt count; readConsistent and campaign spans', async () => {
      const a = await ctx.store.connect();
      const b = await ctx.store.connect();
      const name = unique('updates');
      const sa = await a.open<{ n: number }>(name, { initial: { n: 0 } });
      const sb = await b.open<{ n: number }>(name);
      await sa.update((d) => void (d.n += 1));
      await sa.update(() => {}); // changes nothing: no write
      let first = true;
      // The other client writes inside the first run of fn: the CAS loses and fn runs again.
      await sa.update(async (d) => {
        if (first) {
          first = false;
          await sb.update((x) => void (x.n += 10));
        }
        d.n += 1;
      });
      assert.equal(sa.read().n, 12);
      await sa.readConsistent();
      const points = await collect();
      const mine = { 'sharedstruct.client': a.telemetryId, 'sharedstruct.struct': name, 'sharedstruct.operation': 'update' };
      const ok = pointsOf(points, 'sharedstruct.update.duration', { ...mine, 'sharedstruct.outcome': 'ok' })[0];
      assert.equal(ok?.count, 2, JSON.stringify(ok));
      assert.equal(pointsOf(points, 'sharedstruct.update.duration', { ...mine, 'sharedstruct.outcome': 'noop' })[0]?.count, 1);
      // attempts recorded: 1 + 1 (noop) + 2 (the conflict) over three updates
      const attempts = pointsOf(points, 'sharedstruct.update.attempts', { ...mine, 'sharedstruct.outcome': 'ok' })[0];
      assert.equal(attempts?.value, 3, JSON.stringify(attempts));
      assert.equal(pointsOf(points, 'sharedstruct.update.conflicts', { 'sharedstruct.client': a.telemetryId, 'sharedstruct.struct': name })[0]?.value, 1);
      assert.equal(pointsOf(points, 'sharedstruct.update.noops', { 'sharedstruct.client': a.telemetryId, 'sharedstruct.struct': name })[0]?.value, 1);
      const events = pointsOf(points, 'sharedstruct.events', { 'sharedstruct.client': a.telemetryId, 'sharedstruct.struct': name });
      const byOrigin = Object.fromEntries(events.map((p) => [String(p.attributes['sharedstruct.origin']), p.value]));
      assert.equal(byOrigin['local'], 2, JSON.stringify(byOrigin));
      assert.equal(byOrigin['remote'], 1, JSON.stringify(byOrigin));
      const spans = spansNamed('sharedstruct.update').filter((s) => s.attributes['sharedstruct.struct'] === name && s.attributes['sharedstruct.client'] === a.telemetryId);
      assert.deepEqual(spans.map((s) => s.attributes['sharedstruct.attempts']), [1, 1, 2]);
      assert.ok(spans.every((s) => s.attributes['sharedstruct.outcome'] === 'ok'));
      assert.equal(spansNamed('sharedstruct.readConsistent').filter((s) => s.attributes['sharedstruct.struct'] === name).length, 1);
      const ename = unique('campaign');
      const term = await a.election(ename).campaign();
      await term.resign();
      assert.deepEqual(spansNamed('sharedstruct.campaign').filter((s) => s.attributes['sharedstruct.election'] === ename).map((s) => s.attributes['sharedstruct.outcome']), ['ok']);
    });

    it('a failed update records its error code; a slow subscriber\'s backlog is observed and its overflow counted', async () => {
      const client = await ctx.store.connect();
      const name = unique('backlog');
      const s = await client.open<{ n: number }>(name, { initial: { n: 0 } });
      await assert.rejects(s.update(() => ({ n: Number.NaN })), (err: unknown) => isSharedStructError(err, 'INVALID_VALUE'));
      const it = s.changes({ maxBuffered: 3 })[Symbol.asyncIterator]();
      for (let i = 0; i < 2; i += 1) await s.update((d) => void (d.n += 1));
      let points = await collect();
      const attrs = { 'sharedstruct.client': client.telemetryId, 'sharedstruct.struct': name };
      assert.equal(pointsOf(points, 'sharedstruct.update.duration', { ...attrs, 'sharedstruct.outcome': 'INVALID_VALUE' })[0]?.count, 1);
      assert.equal(pointsOf(points, 'sharedstruct.subscriber.backlog', attrs)[0]?.value, 2);
      assert.equal(pointsOf(points, 'sharedstruct.subscriber.overflows', attrs).length, 0);
      for (let i = 0; i < 3; i += 1) await s.update((d) => void (d.n += 1));
      points = await collect();
      assert.equal(pointsOf(points, 'sharedstruct.subscriber.overflows', attrs)[0]?.value, 1);
      const r = await it.next();
      assert.ok(!r.done);
      assert.equal(r.value.origin, 'resync');
      await it.return?.();
    });

    it('the logger: a corrupt remote value (warn, when the app handles error), the resync after it (info), a lost lock (warn, with its token)', async () => {
      const lines: { level: string; message: string; fields: Record<string, unknown> | undefined }[] = [];
      const logger: Logger = Object.fromEntries(
        (['debug', 'info', 'warn', 'error'] as const).map((level) => [level, (message: string, fields?: Record<string, unknown>) => void lines.push({ level, message, fields })]),
      ) as unknown as Logger;
      const client = await ctx.store.connect({ logger });
      const name = unique('logged');
      const s = await client.open<{ n: number }>(name, { initial: { n: 1 } });
      const errors: string[] = [];
      s.on('error', (e) => errors.push(e.code));
      const key = `${client.namespace}/${name}/payload`;
      await ctx.store.rawPut(key, new Uint8Array([0xff, 0xfe, 0x00, 0x7b]));
      const deadline = Date.now() + 10000;
      while (errors.length === 0 && Date.now() < deadline) await sleep(20);
      assert.deepEqual(errors, ['CORRUPT_REMOTE_VALUE']);
      const corrupt = lines.filter((l) => l.level === 'warn' && l.message.startsWith(`struct '${name}': `));
      assert.equal(corrupt.length, 1, JSON.stringify(lines));
      assert.equal(corrupt[0]!.fields?.['code'], 'CORRUPT_REMOTE_VALUE');
      await ctx.store.rawPut(key, new TextEncoder().encode('{"n":5}'));
      while (s.readDirty().n !== 5 && Date.now() < deadline) await sleep(20);
      assert.ok(lines.some((l) => l.level === 'info' && l.message.startsWith(`struct '${name}' resynced from version 1 to `)), JSON.stringify(lines));
      const lname = unique('lost-lock');
      const lock = await client.lock(lname);
      await ctx.store.expireSession(client);
      await Promise.race([new Promise<void>((resolve) => (lock.signal.aborted ? resolve() : lock.signal.addEventListener('abort', () => resolve(), { once: true }))), sleep(15000)]);
      assert.ok(lock.signal.aborted, 'the lock was lost');
      const lostLine = lines.find((l) => l.level === 'warn' && l.message.startsWith(`lock '${lname}' was lost after `));
      assert.ok(lostLine, JSON.stringify(lines));
      assert.equal(lostLine.fields?.['token'], lock.token);
      assert.ok(lines.every((l) => l.level !== 'error'), JSON.stringify(lines.filter((l) => l.level === 'error')));
    });

    it('request failures by operation and code: a read that gets no answer is a TIMEOUT, counted once per request; lost compares are not failures', async () => {
      const client = await ctx.store.connect({ requestTimeoutMs: 600 });
      const other = await ctx.store.connect();
      const sname = unique('failing');
      const s = await client.open<{ n: number }>(sname, { initial: { n: 0 } });
      // A lost compare (another writer came first) is an outcome: retried, not a failure.
      const o = await other.open<{ n: number }>(sname);
      let first = true;
      const version = await s.update(async (d) => {
        if (first) {
          first = false;
          await o.set({ n: 5 });
        }
        d.n += 1;
      }).then(() => s.stat().version);
      assert.equal(version, 3, 'initial, the other writer, the retried update');
      assert.deepEqual(client.requestFailures(), []);
      const heal = await ctx.store.partition(client);
      try {
        await assert.rejects(s.readConsistent(), (err: unknown) => isSharedStructError(err, 'TIMEOUT'));
      } finally {
        await heal();
      }
      // One request on etcd and memory; ZooKeeper pipelines a sync and the read: both unanswered.
      const failures = client.requestFailures();
      assert.ok(failures.length >= 1 && failures.length <= 2, JSON.stringify(failures));
      for (const f of failures) {
        assert.deepEqual([f.code, f.count], ['TIMEOUT', 1], JSON.stringify(f));
        assert.ok(f.operation in client.requestCounts(), `${f.operation} is a counted request`);
      }
      const points = await collect();
      const seen = pointsOf(points, 'sharedstruct.request.failures', { 'sharedstruct.client': client.telemetryId });
      const key = (op: unknown, code: unknown, n: unknown): string => `${String(op)} ${String(code)} ${String(n)}`;
      assert.deepEqual(
        seen.map((p) => key(p.attributes['sharedstruct.operation'], p.attributes['sharedstruct.code'], p.value)).sort(),
        failures.map((f) => key(f.operation, f.code, f.count)).sort(),
      );
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
