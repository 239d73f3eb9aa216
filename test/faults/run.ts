/**
 * `npm run test:faults`: the fault matrix (issue 8, in progress). For each backend it starts a
 * 3-member cluster on loopback, puts every client behind its own TCP proxies (one per member),
 * and runs each workload under each fault class, then the seeded bugs without faults. It prints,
 * per backend: runs, operations (ok / failed / unknown), linearizability violations, lost
 * acknowledged writes, lock exclusion violations, and which seeded bugs were caught.
 * Everything stays on 127.0.0.1; every loop is bounded in count and time.
 *
 *   npm run test:faults [-- --backend etcd|zookeeper] [--quick]
 */
import { performance } from 'node:perf_hooks';
import { applyChanges, connect, isSharedStructError, type Client, type Logger, type SharedStruct } from '../../lib/index.js';
import { seedBug, type SeededBug } from '../../lib/testing.js';
import { workload as registerWorkload } from '../contract/linearizability.suite.js';
import { metricValue, startEtcd } from '../support/etcd.js';
import { sleep } from '../support/process.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { startZooKeeper, zkLeader } from '../support/zookeeper.js';
import { checkLinearizable } from './linearizability.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const QUICK = process.argv.includes('--quick');
const only = process.argv.includes('--backend') ? process.argv[process.argv.indexOf('--backend') + 1] : undefined;
const TTL = 4000;
const UNKNOWN = ['TIMEOUT', 'CONNECTION', 'SESSION_LOST'] as const;

/** A 3-member cluster, whatever the store. */
interface Cluster {
  readonly name: 'etcd' | 'zookeeper';
  readonly ports: readonly number[];
  url(ports: readonly number[]): string;
  leader(): Promise<number>;
  kill(i: number): Promise<void>;
  restart(i: number): Promise<void>;
  pause(i: number): Promise<void>;
  resume(i: number): void;
  stop(): Promise<void>;
}

async function etcdCluster(): Promise<Cluster> {
  const c = await startEtcd({ members: 3 });
  return {
    name: 'etcd',
    ports: c.members.map((m) => m.clientPort),
    url: (ports) => `etcd://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    async leader() {
      for (let attempt = 0; attempt < 100; attempt++) {
        for (const [i, m] of c.members.entries()) {
          try {
            if (metricValue(await m.metrics(), 'etcd_server_is_leader') === 1) return i;
          } catch {
            // down
          }
        }
        await sleep(100);
      }
      throw new Error('etcd: no leader');
    },
    kill: (i) => c.members[i]!.kill(),
    restart: (i) => c.members[i]!.restart(),
    pause: (i) => Promise.resolve(c.members[i]!.pause()),
    resume: (i) => c.members[i]!.resume(),
    stop: () => c.stop(),
  };
}

async function zkCluster(): Promise<Cluster> {
  const c = await startZooKeeper({ nodes: 3, startTimeoutMs: 60000 });
  return {
    name: 'zookeeper',
    ports: c.nodes.map((n) => n.port),
    url: (ports) => `zk://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    async leader() {
      for (let attempt = 0; attempt < 100; attempt++) {
        const l = await zkLeader(c);
        if (l) return c.nodes.indexOf(l);
        await sleep(100);
      }
      throw new Error('zookeeper: no leader');
    },
    kill: (i) => c.nodes[i]!.kill(),
    restart: (i) => c.nodes[i]!.restart(),
    pause: (i) => c.nodes[i]!.pause(),
    resume: (i) => c.nodes[i]!.resume(),
    stop: () => c.stop(),
  };
}

/** A client behind its own proxies (one per member), so faults can cut it off alone. */
interface Agent {
  readonly client: Client;
  readonly proxies: TcpProxy[];
}

interface Tally {
  ok: number;
  failed: number;
  unknown: number;
  linearizability: number;
  lost: number;
  exclusion: number;
  /** Watch anomalies: a version repeated or going back, a cache or fold not equal to the store after healing, read() going back. */
  watch: number;
}
const tally = (): Tally => ({ ok: 0, failed: 0, unknown: 0, linearizability: 0, lost: 0, exclusion: 0, watch: 0 });
const add = (a: Tally, b: Tally): void => {
  for (const k of Object.keys(a) as (keyof Tally)[]) a[k] += b[k];
};

type Fault = (cluster: Cluster, agents: Agent[]) => Promise<void>;
const FAULTS: Record<string, Fault> = {
  none: () => Promise.resolve(),
  'leader SIGKILL + restart': async (c) => {
    const l = await c.leader();
    await c.kill(l);
    await sleep(1500);
    await c.restart(l);
  },
  'follower SIGKILL + restart': async (c) => {
    const f = ((await c.leader()) + 1) % 3;
    await c.kill(f);
    await sleep(1500);
    await c.restart(f);
  },
  'leader SIGSTOP 2 s': async (c) => {
    const l = await c.leader();
    await c.pause(l);
    await sleep(2000);
    c.resume(l);
  },
  'client blackhole < ttl': async (_c, agents) => {
    for (const p of agents[0]!.proxies) p.setMode('blackhole');
    await sleep(TTL / 2);
    for (const p of agents[0]!.proxies) p.setMode('pass');
  },
  'client blackhole > ttl': async (_c, agents) => {
    for (const p of agents[0]!.proxies) p.setMode('blackhole');
    await sleep(TTL + 2000);
    for (const p of agents[0]!.proxies) p.setMode('pass');
  },
  'connection resets': async (_c, agents) => {
    for (let i = 0; i < 3; i++) {
      for (const a of agents) for (const p of a.proxies) p.resetAll();
      await sleep(500);
    }
  },
};

async function withAgents<T>(cluster: Cluster, n: number, fn: (agents: Agent[]) => Promise<T>): Promise<T> {
  const agents: Agent[] = [];
  const namespace = `/faults-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  try {
    for (let i = 0; i < n; i++) {
      const proxies = await Promise.all(cluster.ports.map((p) => startTcpProxy(p)));
      const client = await connect(cluster.url(proxies.map((p) => p.port)), { namespace, sessionTtlMs: TTL, requestTimeoutMs: 1500, logger: quiet });
      agents.push({ client, proxies });
    }
    return await fn(agents);
  } finally {
    await Promise.allSettled(agents.map((a) => a.client.close()));
    await Promise.allSettled(agents.flatMap((a) => a.proxies.map((p) => p.close())));
  }
}

/** Retries a read or an open until the store answers (after healing), bounded. */
async function settle<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 40 || !isSharedStructError(err, ...UNKNOWN)) throw err;
      await sleep(250);
    }
  }
}

type Workload = (agents: Agent[], during: Promise<void>) => Promise<Tally>;
const WORKLOADS: Record<string, Workload> = {
  async register(agents, during) {
    const name = `reg-${Math.random().toString(36).slice(2, 8)}`;
    const structs = await Promise.all(agents.map((a) => Promise.all([0, 1].map((k) => settle(() => a.client.open<{ n: number }>(`${name}-${k}`, { initial: { n: 0 } }))))));
    const [histories] = await Promise.all([registerWorkload(structs, QUICK ? 25 : 50, 40), during]);
    const t = tally();
    for (const h of histories) {
      t.ok += h.filter((o) => o.ret !== undefined).length;
      t.unknown += h.filter((o) => o.ret === undefined).length;
      if (!checkLinearizable({ version: 1, value: '{"n":0}' }, h).linearizable) t.linearizability += 1;
    }
    return t;
  },
  async counter(agents, during) {
    const name = `ctr-${Math.random().toString(36).slice(2, 8)}`;
    const structs: SharedStruct<{ n: number }>[] = await Promise.all(agents.map((a) => settle(() => a.client.open<{ n: number }>(name, { initial: { n: 0 } }))));
    const t = tally();
    const until = performance.now() + (QUICK ? 3000 : 6000);
    const loops = structs.map(async (s) => {
      while (performance.now() < until) {
        try {
          await s.update((d) => void (d.n += 1), { maxRetries: 200 });
          t.ok += 1;
        } catch (err) {
          if (isSharedStructError(err, ...UNKNOWN)) t.unknown += 1;
          else if (isSharedStructError(err, 'CONFLICT')) t.failed += 1;
          else throw err;
          await sleep(50);
        }
      }
    });
    await Promise.all([...loops, during]);
    const final = (await settle(() => structs[1]!.readConsistent())).n;
    if (final < t.ok) t.lost += t.ok - final; // acknowledged increments missing
    if (final > t.ok + t.unknown) t.lost += final - t.ok - t.unknown; // increments nobody made
    return t;
  },
  async watch(agents, during) {
    const name = `watch-${Math.random().toString(36).slice(2, 8)}`;
    const structs: SharedStruct<{ n: number; by: number }>[] = await Promise.all(
      agents.map((a) => settle(() => a.client.open<{ n: number; by: number }>(name, { initial: { n: 0, by: -1 }, maxStalenessMs: TTL, refreshIntervalMs: 500 }))),
    );
    const t = tally();
    // Every instance subscribes; its events must strictly increase and fold to the final value.
    const subs = structs.map((s) => {
      const rec = { base: s.readDirty() as unknown, first: s.stat().version, last: s.stat().version, folded: s.readDirty() as unknown };
      s.on('change', (ev) => {
        if (ev.version <= rec.last) t.watch += 1;
        rec.last = ev.version;
        rec.folded = applyChanges(rec.folded, ev.changes);
      });
      return rec;
    });
    const until = performance.now() + (QUICK ? 3000 : 6000);
    const writers = structs.slice(0, 2).map(async (s, i) => {
      while (performance.now() < until) {
        try {
          await s.update((d) => {
            d.n += 1;
            d.by = i;
          }, { maxRetries: 200 });
          t.ok += 1;
        } catch (err) {
          if (!isSharedStructError(err, ...UNKNOWN, 'CONFLICT')) throw err;
          t.unknown += 1;
          await sleep(50);
        }
        await sleep(10);
      }
    });
    // The other two read their cache: a client's read() never goes back in versions.
    const readers = structs.slice(2).map(async (s) => {
      let lastSeen = 0;
      while (performance.now() < until) {
        try {
          s.read();
          const v = s.stat().version;
          if (v < lastSeen) t.watch += 1;
          lastSeen = v;
        } catch (err) {
          if (!isSharedStructError(err, 'STALE_READ')) throw err;
        }
        await sleep(20);
      }
    });
    await Promise.all([...writers, ...readers, during]);
    const final = await settle(() => structs[0]!.readConsistent());
    const finalVersion = structs[0]!.stat().version;
    for (const [i, s] of structs.entries()) {
      const deadline = performance.now() + 15000;
      while (s.stat().version < finalVersion && performance.now() < deadline) await sleep(50);
      if (JSON.stringify(s.readDirty()) !== JSON.stringify(final)) t.watch += 1;
      if (JSON.stringify(subs[i]!.folded) !== JSON.stringify(final)) t.watch += 1;
    }
    return t;
  },
  async lock(agents, during) {
    const name = `lock-${Math.random().toString(36).slice(2, 8)}`;
    const structs = await Promise.all(agents.map((a) => settle(() => a.client.open<{ n: number }>(name, { initial: { n: 0 } }))));
    const t = tally();
    const until = performance.now() + (QUICK ? 3000 : 6000);
    const loops = agents.map(async (a, i) => {
      const s = structs[i]!;
      while (performance.now() < until) {
        try {
          await a.client.withLock(name, async (lock) => {
            await s.readConsistent();
            const version = s.stat().version;
            const n = s.readDirty().n;
            await sleep(5);
            if (!lock.held) return;
            try {
              await s.compareAndSet(version, { n: n + 1 });
              t.ok += 1;
            } catch (err) {
              // Someone wrote inside our critical section while we still held the lock.
              if (isSharedStructError(err, 'CONFLICT') && lock.held) t.exclusion += 1;
              else throw err;
            }
          }, { waitMs: 5000 });
        } catch (err) {
          if (isSharedStructError(err, ...UNKNOWN, 'LOCK_LOST', 'LOCK_TIMEOUT', 'CONFLICT')) t.unknown += 1;
          else throw err;
          await sleep(50);
        }
      }
    });
    await Promise.all([...loops, during]);
    return t;
  },
};

async function runBackend(make: () => Promise<Cluster>): Promise<string[]> {
  const cluster = await make();
  const lines: string[] = [];
  try {
    const total = tally();
    let runs = 0;
    const started = performance.now();
    for (const [faultName, fault] of Object.entries(FAULTS)) {
      for (const [workloadName, run] of Object.entries(WORKLOADS)) {
        const t = await withAgents(cluster, workloadName === 'lock' ? 3 : 4, (agents) =>
          run(agents, sleep(500).then(() => fault(cluster, agents))),
        );
        runs += 1;
        add(total, t);
        const bad = t.linearizability + t.lost + t.exclusion + t.watch;
        console.error(`  [${cluster.name}] ${faultName} / ${workloadName}: ${t.ok} ok, ${t.failed} failed, ${t.unknown} unknown${bad ? `, VIOLATIONS ${JSON.stringify(t)}` : ''}`);
        await cluster.leader(); // the cluster is whole again before the next run
      }
    }
    // Each seeded bug with the workload that must catch it.
    const seeded: Record<SeededBug, string> = { 'cached-read': 'register', 'blind-cas': 'counter', 'lock-without-queue': 'lock' };
    const caught: string[] = [];
    for (const [bug, workloadName] of Object.entries(seeded) as [SeededBug, string][]) {
      seedBug(bug);
      try {
        // Under a short client cut-off: without a fault, caches are fresh within a millisecond and
        // a cache served as consistent rarely shows; a cut-off client's cache is stale for sure.
        const fault = FAULTS['client blackhole < ttl']!;
        const t = await withAgents(cluster, workloadName === 'lock' ? 3 : 4, (agents) =>
          WORKLOADS[workloadName]!(agents, sleep(500).then(() => fault(cluster, agents))),
        );
        const hit = t.linearizability + t.lost + t.exclusion + t.watch > 0;
        if (hit) caught.push(bug);
        console.error(`  [${cluster.name}] seeded ${bug} / ${workloadName}: ${hit ? 'caught' : 'NOT caught'} ${JSON.stringify(t)}`);
      } finally {
        seedBug(bug, false);
      }
    }
    lines.push(
      `| ${cluster.name} | ${runs} | ${total.ok} / ${total.failed} / ${total.unknown} | ${total.linearizability} | ${total.lost} | ${total.exclusion} | ${total.watch} | ${caught.length} / 3 (${caught.join(', ') || 'none'}) | ${((performance.now() - started) / 1000).toFixed(0)} s |`,
    );
  } finally {
    await cluster.stop();
  }
  return lines;
}

async function main(): Promise<void> {
  const rows: string[] = [];
  if (!only || only === 'etcd') rows.push(...(await runBackend(etcdCluster)));
  if (!only || only === 'zookeeper') rows.push(...(await runBackend(zkCluster)));
  console.log(`faults: ${Object.keys(FAULTS).join(', ')}; workloads: ${Object.keys(WORKLOADS).join(', ')}; ttl ${TTL} ms`);
  console.log('| backend | runs | operations ok / failed / unknown | linearizability violations | lost acknowledged writes | lock exclusion violations | watch anomalies | seeded bugs caught | time |');
  console.log('| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: |');
  for (const r of rows) console.log(r);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
