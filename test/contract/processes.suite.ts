/**
 * Coordination across real processes on a real store (etcd, ZooKeeper): a holder killed with
 * SIGKILL, a holder frozen with SIGSTOP past its ttl, leaders killed in turn, a member killed and
 * restarted. Each agent is a child process (test/support/agent.ts) killed by PID.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { backendOf } from '../../lib/client.js';
import { connect, type Client, type MemberChange } from '../../lib/index.js';
import { startAgent, type Agent } from '../support/agents.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { eventually } from './struct.suite.js';
import { sleep } from '../support/process.js';

/** A real store the agents can reach. */
export interface ProcessTarget {
  readonly name: string;
  /** The URL agents connect to (the store is started on first use). */
  url(): Promise<string>;
}

const TTL = 2000;

/** Registers the multi-process tests under `[name] processes`. */
export function processContract(target: ProcessTarget): void {
  describe(`[${target.name}] processes`, function () {
    this.timeout(90000);
    let url: string;
    let namespace: string;
    const agents: Agent[] = [];
    const clients: Client[] = [];
    const proxies: TcpProxy[] = [];
    const agent = (role: string, name: string, id: string): Agent => {
      const a = startAgent({ url, namespace, sessionTtlMs: TTL, role, name, id, lifetimeMs: 80000 });
      agents.push(a);
      return a;
    };
    const local = async (): Promise<Client> => {
      const c = await connect(url, { namespace, requestTimeoutMs: 2000 });
      clients.push(c);
      return c;
    };

    before(async function () {
      this.timeout(120000);
      url = await target.url();
    });
    beforeEach(() => {
      namespace = `/proc-${randomUUID().slice(0, 8)}`;
    });
    afterEach(async () => {
      await Promise.allSettled(agents.splice(0).map((a) => a.kill()));
      await Promise.allSettled(clients.splice(0).map((c) => c.close()));
      await Promise.allSettled(proxies.splice(0).map((p) => p.close()));
    });

    const queued = async (c: Client, parent: string, n: number): Promise<void> => {
      await eventually(`${n} in the queue`, async () => (await backendOf(c).list(parent)).length === n, 20000);
    };

    it('two processes × 100 increments end at exactly 200, and each subscriber folds to it', async () => {
      const agents2 = ['p1', 'p2'].map((id) => startAgent({ url, namespace, sessionTtlMs: 10000, role: 'increment', name: 'counter', id, count: 100, total: 200, lifetimeMs: 80000 }));
      agents.push(...agents2);
      const everyVersion = backendOf(await local()).features.has('everyVersion');
      const done = await Promise.all(agents2.map((a) => a.waitFor('done', 60000)));
      for (const d of done) {
        assert.equal(d.final, 200, `${d.id} final`);
        assert.deepEqual(d.folded, { n: 200 }, `${d.id}: the fold of its events`);
        assert.equal(d.increasing, true, `${d.id}: versions strictly increase`);
        assert.equal(d.local, 100, `${d.id}: one local event per write`);
        // Where the backend's watch reports every version (etcd): each one after the version this
        // subscriber started at, one by one, none coalesced.
        if (everyVersion) assert.deepEqual([d.events, d.coalesced], [(d.to as number) - (d.from as number), 0], `${d.id}: every version, one by one; gaps ${JSON.stringify(d.gaps)}`);
      }
      console.log(`      [${target.name}] 2 × 100 increments: events per subscriber ${done.map((d) => `${d.id} ${String(d.events)} (${String(d.coalesced)} coalesced)`).join(', ')}`);
    });

    it('SIGKILL the holder: the next waiter gets the lock within ttl + 1 s', async () => {
      const observer = await local();
      const a = agent('lock', 'job', 'A');
      await a.waitFor('acquired', 20000);
      const b = agent('lock', 'job', 'B');
      await queued(observer, `${namespace}/_locks/job`, 2);
      const killedAt = Date.now();
      await a.kill();
      const acquired = await b.waitFor('acquired', TTL + 10000);
      const failover = acquired.at - killedAt;
      console.log(`      [${target.name}] lock failover after SIGKILL: ${failover} ms (ttl ${TTL} ms)`);
      assert.ok(failover <= TTL + 1000, `failover ${failover} ms > ttl + 1 s`);
      assert.ok(BigInt(acquired.token as string) > BigInt((a.events.find((e) => e.ev === 'acquired')!.token as string)));
    });

    it('SIGSTOP the holder past its ttl, SIGCONT: it learns it lost the lock before any guarded write', async () => {
      const observer = await local();
      const a = agent('lock', 'job', 'A');
      const first = await a.waitFor('acquired', 20000);
      await a.waitFor('wrote', 10000);
      const b = agent('lock', 'job', 'B');
      await queued(observer, `${namespace}/_locks/job`, 2);
      await a.pause();
      const pausedAt = Date.now();
      const acquired = await b.waitFor('acquired', TTL + 15000);
      // The server counts the ttl from its last keepalive, up to a third of the ttl before the pause.
      assert.ok(acquired.at - pausedAt >= (TTL * 2) / 3 - 100, `the lock passed on ${acquired.at - pausedAt} ms after the pause, before the session could expire`);
      await b.waitFor('wrote', 10000);
      const resumedIndex = a.events.length;
      const resumedAt = Date.now();
      a.resume();
      await sleep(1500);
      const after = a.events.slice(resumedIndex);
      const firstAfter = after.find((e) => e.ev === 'writing' || e.ev === 'lost' || e.ev === 'lost-signal');
      assert.ok(firstAfter, `A reported after SIGCONT: ${after.map((e) => e.ev).join(',')}`);
      assert.notEqual(firstAfter.ev, 'writing', `A started a guarded write after SIGCONT before learning: ${after.map((e) => e.ev).join(',')}`);
      const started = after.filter((e) => e.ev === 'writing' && e.token === first.token);
      assert.deepEqual(started, [], 'no guarded write with the old token started after SIGCONT');
      // A write sent before the freeze may complete after it; the fence saw B's larger token by then.
      const fenced = await (await local()).open<{ token: string }>('job-fenced');
      assert.equal((await fenced.readConsistent()).token, String(acquired.token), 'the fenced resource holds the newest token');
      assert.ok(BigInt(acquired.token as string) > BigInt(first.token as string));
      console.log(`      [${target.name}] frozen holder: lock passed on ${acquired.at - pausedAt} ms after SIGSTOP; after SIGCONT A first reported '${firstAfter.ev}' ${firstAfter.at - resumedAt} ms later`);
    });

    it('a holder on a slow link frozen past its ttl: answers waiting in its socket do not make it think it still holds', async () => {
      // Answers take 250 ms to arrive, so some are always on their way when the holder freezes
      // (keepalive answers; on ZooKeeper also the notifications of someone else's writes); they
      // wait in its socket and are read first after SIGCONT. They were sent before the server
      // expired the session: no news of the server hearing from the holder since.
      const port = Number(/:(\d+)$/.exec(url)?.[1]);
      const proxy = await startTcpProxy(port);
      proxies.push(proxy);
      proxy.setMode('delay', { minMs: 250, maxMs: 250 });
      const a = startAgent({ url: url.replace(/:\d+$/, `:${proxy.port}`), namespace, sessionTtlMs: TTL, role: 'hold', name: 'job', id: 'A', requestTimeoutMs: 3000, lifetimeMs: 80000 });
      agents.push(a);
      await a.waitFor('acquired', 20000);
      const noise = await (await local()).open<{ n: number }>('job-noise', { initial: { n: 0 } });
      let writing = true;
      const writes = (async () => {
        for (let i = 0; i < 2000 && writing; i++) {
          await noise.update((d) => void (d.n += 1));
          await sleep(10);
        }
      })();
      try {
        await sleep(1000);
        assert.equal(a.events.at(-1)?.ev, 'step', 'A holds the lock before the freeze');
        await a.pause();
        await sleep(TTL + 1000);
        const resumedIndex = a.events.length;
        a.resume();
        await a.waitFor('learned', 5000, resumedIndex);
        const after = a.events.slice(resumedIndex).map((e) => e.ev);
        assert.deepEqual(after.filter((ev) => ev === 'step'), [], `A took a guarded step after SIGCONT before learning: ${after.join(',')}`);
      } finally {
        writing = false;
        await writes;
      }
    });

    it('a reader on a slow link, frozen past maxStalenessMs: read() never serves a version older than the bound', async () => {
      // Replies and events take 100 ms to reach the reader, so some are always on their way; while
      // the reader is frozen they land in its socket and the store moves on. After SIGCONT they
      // are processed first: old news, which must not make a stale cache look fresh.
      const bound = 1000;
      const port = Number(/:(\d+)$/.exec(url)?.[1]);
      const proxy = await startTcpProxy(port);
      proxies.push(proxy);
      proxy.setMode('delay', { minMs: 100, maxMs: 100 });
      const reader = startAgent({
        url: url.replace(/:\d+$/, `:${proxy.port}`),
        namespace,
        sessionTtlMs: TTL,
        role: 'reader',
        name: 'cfg',
        id: 'R',
        maxStalenessMs: bound,
        refreshIntervalMs: 200,
        lifetimeMs: 80000,
      });
      agents.push(reader);
      await reader.waitFor('ready', 20000);
      const writer = await (await local()).open<{ n: number }>('cfg', { initial: { n: 0 } });
      const acks: { version: number; at: number }[] = [];
      let stopWriting = false;
      const writing = (async () => {
        for (let i = 0; i < 1000 && !stopWriting; i++) {
          const r = await writer.update((d) => void (d.n += 1));
          acks.push({ version: r.version, at: Date.now() });
          await sleep(10);
        }
      })();
      try {
        await sleep(1000);
        const since = reader.events.length;
        await reader.pause();
        await sleep(3000);
        const resumedAt = Date.now();
        reader.resume();
        // Until it serves a read again (a new session first, if it was frozen past its ttl), then a bit more.
        for (let i = 0; i < 200 && !reader.events.some((e) => e.ev === 'read' && e.at > resumedAt); i++) await sleep(50);
        await sleep(500);
        const reads = reader.events.slice(since).filter((e) => e.ev === 'read');
        const late = reads.filter((r) => acks.some((a) => a.version > (r.version as number) && a.at <= r.at - bound));
        assert.deepEqual(
          late.map((r) => `version ${String(r.version)} at ${r.at - resumedAt} ms`),
          [],
          `read() served versions older than ${bound} ms (relative to SIGCONT; the writer was at version ${acks.at(-1)?.version})`,
        );
        assert.ok(reads.some((r) => r.at > resumedAt), 'the reader never read again after SIGCONT');
      } finally {
        stopWriting = true;
        await writing;
      }
    });

    it('election across 3 processes under kills and session expiry: one leader at a time', async () => {
      const ids = ['c1', 'c2', 'c3'];
      const live = new Map<string, Agent>(ids.map((id) => [id, agent('candidate', 'lead', id)]));
      const all: Agent[] = [...live.values()];
      const killedAt = new Map<number, number>();
      const leaderNow = async (ms: number): Promise<Agent> => {
        const deadline = Date.now() + ms;
        for (;;) {
          for (const a of live.values()) {
            const last = [...a.events].reverse().find((e) => e.ev === 'elected' || e.ev === 'deposed');
            if (last?.ev === 'elected') return a;
          }
          if (Date.now() > deadline) throw new Error('no leader');
          await sleep(25);
        }
      };
      for (let round = 0; round < 2; round++) {
        const leader = await leaderNow(TTL + 20000);
        const t = Date.now();
        await leader.kill();
        killedAt.set(leader.child.pid!, t);
        live.delete(leader.id);
        const restarted = agent('candidate', 'lead', leader.id);
        live.set(leader.id, restarted);
        all.push(restarted);
      }
      // Session expiry: freeze the leader past its ttl. A frozen leader cannot act, so its term
      // ends at the freeze; on SIGCONT it must learn it was deposed before anything else.
      const frozen = await leaderNow(TTL + 20000);
      const frozenAt = Date.now();
      const sinceFreeze = frozen.events.length;
      await frozen.pause();
      killedAt.set(frozen.child.pid!, frozenAt);
      live.delete(frozen.id);
      await leaderNow(TTL + 20000);
      frozen.resume();
      const resumedAt = Date.now();
      const deposed = await frozen.waitFor('deposed', 5000, sinceFreeze);
      const firstAfter = frozen.events.slice(sinceFreeze).find((e) => e.ev === 'deposed' || e.ev === 'elected');
      assert.equal(firstAfter?.ev, 'deposed', 'the frozen leader learns first that it was deposed');
      console.log(`      [${target.name}] frozen leader: reported deposed ${deposed.at - resumedAt} ms after SIGCONT`);
      await leaderNow(TTL + 20000);
      // Leadership intervals per process: elected → deposed, kill or freeze, or now.
      const endOf = (pid: number, from: number, to: number): number => {
        const cut = killedAt.get(pid);
        return cut !== undefined && cut >= from ? Math.min(cut, to) : to;
      };
      const intervals: { pid: number; from: number; to: number }[] = [];
      for (const a of all) {
        let from: number | undefined;
        for (const e of a.events) {
          if (e.ev === 'elected') from = e.at;
          if (e.ev === 'deposed' && from !== undefined) {
            intervals.push({ pid: e.pid, from, to: endOf(e.pid, from, e.at) });
            from = undefined;
          }
        }
        if (from !== undefined) intervals.push({ pid: a.child.pid!, from, to: endOf(a.child.pid!, from, Date.now()) });
      }
      intervals.sort((x, y) => x.from - y.from);
      assert.ok(intervals.length >= 3, JSON.stringify(intervals));
      for (let i = 1; i < intervals.length; i++) {
        assert.ok(intervals[i]!.from >= intervals[i - 1]!.to, `leaders overlap: ${JSON.stringify(intervals.slice(i - 1, i + 1))}`);
      }
      const gaps = intervals.slice(1).map((iv, i) => iv.from - intervals[i]!.to);
      console.log(`      [${target.name}] election: ${intervals.length} terms, failover gaps ${gaps.join(' / ')} ms (ttl ${TTL} ms)`);
    });

    it('kill -9 a member: leave within ttl + 1 s; restart it: exactly one join', async () => {
      const watcher = await local();
      const group = await watcher.join('pool', { id: 'watcher' });
      const changes: (MemberChange & { at: number })[] = [];
      const ctl = new AbortController();
      const reading = (async () => {
        for await (const c of group.changes({ signal: ctl.signal })) changes.push({ ...c, at: Date.now() });
      })().catch(() => {});
      const m1 = agent('member', 'pool', 'm1');
      agent('member', 'pool', 'm2');
      await eventually('both joined', () => changes.filter((c) => c.type === 'join').length === 2, 20000);
      const killedAt = Date.now();
      await m1.kill();
      await eventually('m1 left', () => changes.some((c) => c.type === 'leave' && c.member.id === 'm1'), TTL + 10000);
      const left = changes.find((c) => c.type === 'leave' && c.member.id === 'm1')!;
      console.log(`      [${target.name}] member leave seen ${left.at - killedAt} ms after kill -9 (ttl ${TTL} ms)`);
      assert.ok(left.at - killedAt <= TTL + 1000, `leave after ${left.at - killedAt} ms`);
      agent('member', 'pool', 'm1');
      await eventually('m1 back', () => changes.filter((c) => c.type === 'join' && c.member.id === 'm1').length === 2, 20000);
      await sleep(1000);
      assert.deepEqual(
        changes.map((c) => `${c.type}:${c.member.id}`).filter((s) => s.endsWith(':m1')),
        ['join:m1', 'leave:m1', 'join:m1'],
      );
      ctl.abort();
      await reading;
    });
  });
}
