/**
 * `npm run test:faults`: the fault matrix (issue 8). For each backend it starts a 3-member
 * cluster on loopback, puts every client behind its own TCP proxies (one per member), runs each
 * workload under each fault class, then each seeded bug (a faulty backend under the clients,
 * test/support/faulty-backend.ts), and prints per backend: runs and histories, operations (ok /
 * failed / unknown), linearizability violations, lost acknowledged writes, watch anomalies, stale
 * cached reads, lock exclusion violations, stale-token writes accepted, election violations,
 * recreate anomalies, queue anomalies, the smallest lock-lost margin, recovery p50 / p99 and the seeded bugs
 * caught. It exits non-zero on any violation, any seeded bug not caught, or any run that could
 * not be made.
 * Everything stays on 127.0.0.1; every loop is bounded in count and time. See docs/RELIABILITY.md.
 *
 *   npm run test:faults [-- --backend etcd|zookeeper] [--quick | --ci] [--filter 'text']
 */
import type { Etcd3 } from 'etcd3';
import { backendOf } from '../../lib/client.js';
import { connect, safetyMarginMs, type Client, type Logger } from '../../lib/index.js';
import type { SeededBug } from '../support/faulty-backend.js';
import { metricValue, rawEtcd, startEtcd } from '../support/etcd.js';
import { sleep } from '../support/process.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { startZooKeeper, zkLeader } from '../support/zookeeper.js';
import { expireSessionOf } from '../zookeeper/helpers.js';
import {
  leaderDisagreements,
  leaderOverlaps,
  lifeAnomalies,
  lockLosses,
  longestLeaderless,
  now,
  percentile,
  queueAnomalies,
  recoveryTimes,
  staleReads,
  staleTokenWrites,
  type ForcedExpiry,
  type Freeze,
  type LeaderSample,
  type LockLoss,
} from './checks.js';
import { checkLinearizable } from './linearizability.js';
import {
  LocalParticipant,
  RemoteParticipant,
  settle,
  toOperation,
  type ParticipantConfig,
  type ParticipantHandle,
  type RunRecord,
  type SetupSpec,
  type WorkloadName,
} from './participant.js';

const argv = process.argv.slice(2);
const MODE: 'full' | 'quick' | 'ci' = argv.includes('--ci') ? 'ci' : argv.includes('--quick') ? 'quick' : 'full';
const ONLY = argv.includes('--backend') ? argv[argv.indexOf('--backend') + 1] : undefined;
/** Debugging: only the runs whose `fault / workload` contains this text; seeded runs are skipped unless it names them. */
const FILTER = argv.includes('--filter') ? argv[argv.indexOf('--filter') + 1] : undefined;
const TTL = 4000;
const REQUEST_TIMEOUT = 1500;
/** The watch workload's `maxStalenessMs`: the bound its cached reads are checked against. */
const STALENESS_BOUND = 1000;
/**
 * What a cached read may miss the bound by: the library measures staleness with Date.now()
 * (whole ms) and this runner with the monotonic clock; the two may disagree by a millisecond or
 * two. Nothing else: confirmations count from when their request was sent (docs/SEMANTICS.md).
 */
const STALENESS_CLOCKS_MS = 5;
/**
 * election: how long the election may go without a leader after the fault ended, and how long
 * `leader()` may name a term its holder no longer believes in. A deposed leader's key goes as soon
 * as it reaches the store again, and at the latest with its session (one ttl); the tail of an
 * election run is at least this plus a second, so a wedge shows.
 */
const ELECTION_BOUND_MS = TTL;
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Durations per mode: how long the workload goes on after the fault ends, and the pace of each workload. */
const PROFILE = {
  full: { tailMs: 4000, registerMaxOps: 400, registerPaceMs: 40 },
  quick: { tailMs: 2500, registerMaxOps: 300, registerPaceMs: 40 },
  ci: { tailMs: 1500, registerMaxOps: 200, registerPaceMs: 40 },
}[MODE];

/** A 3-member cluster, whatever the store. */
interface Cluster {
  readonly name: 'etcd' | 'zookeeper';
  /** Direct client ports of the members. */
  readonly ports: readonly number[];
  url(ports: readonly number[]): string;
  leader(): Promise<number>;
  kill(i: number): Promise<void>;
  restart(i: number): Promise<void>;
  pause(i: number): Promise<void>;
  resume(i: number): void;
  /** Restarts any member that is down (after a run that failed half-way). */
  repair(): Promise<void>;
  /** Ends a client's session on the server, as an operator or a server-side timeout would. */
  expire(info: Awaited<ReturnType<ParticipantHandle['sessionInfo']>>, proxies: readonly TcpProxy[]): Promise<void>;
  stop(): Promise<void>;
}

async function etcdCluster(): Promise<Cluster> {
  const c = await startEtcd({ members: 3 });
  let raw: Etcd3 | undefined;
  // A run cut short by process.exit (the time limit) must not leave members behind: 'exit'
  // handlers run synchronously, and a SIGKILL by PID is synchronous.
  const onExit = (): void => {
    for (const m of c.members) {
      try {
        process.kill(m.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  process.once('exit', onExit);
  return {
    name: 'etcd',
    ports: c.members.map((m) => m.clientPort),
    url: (ports) => `etcd://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    async leader() {
      for (let attempt = 0; attempt < 150; attempt++) {
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
    pause: (i) => c.members[i]!.pause(),
    resume: (i) => c.members[i]!.resume(),
    async repair() {
      for (const m of c.members) {
        m.resume();
        if (!m.running) await m.restart();
      }
    },
    async expire(info) {
      if (info.kind !== 'etcd') throw new Error(`not an etcd session: ${info.kind}`);
      raw ??= rawEtcd(c.endpoints);
      // A real server-side end of the lease: its keys go at once; the client hears of it from its
      // next keepalive or from its watches.
      await raw.leaseClient.leaseRevoke({ ID: info.leaseId });
    },
    async stop() {
      process.removeListener('exit', onExit);
      raw?.close();
      await c.stop();
    },
  };
}

async function zkCluster(): Promise<Cluster> {
  const c = await startZooKeeper({ nodes: 3, startTimeoutMs: 60000 });
  const down = new Set<number>();
  const restart = async (i: number): Promise<void> => {
    await c.nodes[i]!.restart();
    down.delete(i);
  };
  return {
    name: 'zookeeper',
    ports: c.nodes.map((n) => n.port),
    url: (ports) => `zk://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    async leader() {
      for (let attempt = 0; attempt < 150; attempt++) {
        const l = await zkLeader(c);
        if (l) return c.nodes.indexOf(l);
        await sleep(100);
      }
      throw new Error('zookeeper: no leader');
    },
    async kill(i) {
      down.add(i);
      await c.nodes[i]!.kill();
    },
    restart,
    pause: (i) => c.nodes[i]!.pause(),
    resume: (i) => c.nodes[i]!.resume(),
    async repair() {
      for (const [i, n] of c.nodes.entries()) {
        n.resume();
        if (down.has(i)) await restart(i);
      }
    },
    async expire(info, proxies) {
      if (info.kind !== 'zookeeper') throw new Error(`not a ZooKeeper session: ${info.kind}`);
      // The owner is cut off through its proxies while a second client closes its session.
      await expireSessionOf(c.connectString, { sessionId: Buffer.from(info.sessionId, 'hex'), password: Buffer.from(info.password, 'hex'), timeoutMs: info.timeoutMs }, proxies);
    },
    stop: () => c.stop(),
  };
}

/** What a fault reports: when it ended, and the freezes and forced expiries it caused. */
interface FaultOutcome {
  readonly endAt: number;
  readonly detail?: string;
  readonly freezes?: readonly Freeze[];
  readonly forced?: readonly ForcedExpiry[];
}

interface FaultContext {
  readonly cluster: Cluster;
  readonly participants: readonly ParticipantHandle[];
  readonly proxies: readonly (readonly TcpProxy[])[];
  readonly workload: WorkloadName;
}

interface Fault {
  /** Participant 0 runs in a child process (it is frozen with SIGSTOP). */
  readonly needsProcess?: boolean;
  /**
   * The fault hits participant 0 alone; in the lock workload it strikes while participant 0
   * holds the lock, holding it for this long (or until it learns it lost it).
   */
  readonly holdMs?: number;
  /** The fault ends participant 0's session on the server: a lock it held must be lost. */
  readonly expiresSession?: boolean;
  /**
   * The fault outlasts participant 0's loss deadline (ttl − margin) but not its session: the
   * lock or leadership it held must be given up locally before the fault ends.
   */
  readonly deposesLocally?: boolean;
  apply(ctx: FaultContext): Promise<FaultOutcome>;
}

const cut = (ctx: FaultContext, mode: 'pass' | 'blackhole' | 'delay'): void => {
  for (const p of ctx.proxies[0]!) p.setMode(mode, { minMs: 200, maxMs: 400 });
};

/** Leader freezes last 1 to 5 s, by workload (issue 8's range). */
const LEADER_FREEZE_MS: Record<WorkloadName, number> = { register: 1000, counter: 3000, watch: 5000, lock: 4000, election: 4000, recreate: 3000, queue: 3000 };

const FAULTS: Record<string, Fault> = {
  none: { apply: () => Promise.resolve({ endAt: now() }) },
  'leader SIGKILL + restart': {
    async apply({ cluster }) {
      const l = await cluster.leader();
      await cluster.kill(l);
      await sleep(1500);
      await cluster.restart(l);
      return { endAt: now(), detail: `member ${l}` };
    },
  },
  'follower SIGKILL + restart': {
    async apply({ cluster }) {
      const f = ((await cluster.leader()) + 1) % 3;
      await cluster.kill(f);
      await sleep(1500);
      await cluster.restart(f);
      return { endAt: now(), detail: `member ${f}` };
    },
  },
  'leader SIGSTOP 1–5 s': {
    async apply({ cluster, workload }) {
      const l = await cluster.leader();
      const ms = LEADER_FREEZE_MS[workload];
      await cluster.pause(l);
      try {
        await sleep(ms);
      } finally {
        cluster.resume(l);
      }
      return { endAt: now(), detail: `member ${l} frozen ${ms} ms` };
    },
  },
  'client blackhole < ttl': {
    holdMs: TTL / 2 + 1000,
    async apply(ctx) {
      cut(ctx, 'blackhole');
      try {
        await sleep(TTL / 2);
      } finally {
        cut(ctx, 'pass');
      }
      return { endAt: now() };
    },
  },
  'client blackhole > ttl': {
    holdMs: TTL + 3000,
    expiresSession: true,
    async apply(ctx) {
      cut(ctx, 'blackhole');
      try {
        await sleep(TTL + 2000);
      } finally {
        cut(ctx, 'pass');
      }
      return { endAt: now() };
    },
  },
  'client blackhole near expiry': {
    holdMs: TTL + 3000,
    deposesLocally: true,
    async apply(ctx) {
      // Inside (ttl − margin, ttl): past participant 0's loss deadline, short of its session.
      const margin = safetyMarginMs(TTL);
      const ms = TTL - margin + 200;
      // Cut right after an answer: the server heard from participant 0 just then, so its session
      // outlives the cut (on etcd the lease counts from the last keepalive it received).
      const fresh = await ctx.participants[0]!.nextContact(3000);
      cut(ctx, 'blackhole');
      try {
        await sleep(ms);
      } finally {
        cut(ctx, 'pass');
        // The connections that lost bytes are reset at the heal, so the client reconnects at once
        // instead of waiting to notice a broken stream, and reaches the server before its ttl.
        for (const p of ctx.proxies[0]!) p.resetAll();
      }
      return { endAt: now(), detail: `blackhole ${ms} ms (ttl ${TTL}, margin ${margin})${fresh ? '' : ', not right after a contact'}` };
    },
  },
  'client proxy delay 200–400 ms': {
    holdMs: 4000,
    async apply(ctx) {
      cut(ctx, 'delay');
      try {
        await sleep(3000);
      } finally {
        cut(ctx, 'pass');
      }
      return { endAt: now() };
    },
  },
  'connection resets': {
    async apply(ctx) {
      for (let i = 0; i < 3; i++) {
        for (const ps of ctx.proxies) for (const p of ps) p.resetAll();
        if (i < 2) await sleep(500);
      }
      return { endAt: now() };
    },
  },
  'session expiry forced on the server': {
    holdMs: 3000,
    expiresSession: true,
    async apply(ctx) {
      const info = await ctx.participants[0]!.sessionInfo();
      const at = now();
      await ctx.cluster.expire(info, ctx.proxies[0]!);
      return { endAt: now(), forced: [{ client: 0, at }] };
    },
  },
  'client SIGSTOP > ttl': {
    needsProcess: true,
    holdMs: TTL + 3000,
    expiresSession: true,
    async apply(ctx) {
      const p = ctx.participants[0]!;
      const from = now();
      await p.pause!();
      let to: number;
      try {
        await sleep(TTL + 2000);
      } finally {
        // Stamped before SIGCONT: the woken process may act before this process reads the clock.
        to = now();
        p.resume!();
      }
      return { endAt: to, freezes: [{ client: 0, from, to }], detail: `pid ${p.pid}` };
    },
  },
};

const WORKLOADS: readonly WorkloadName[] = ['register', 'counter', 'watch', 'lock', 'election', 'recreate', 'queue'];
const PARTICIPANTS: Record<WorkloadName, number> = { register: 5, counter: 4, watch: 4, lock: 3, election: 3, recreate: 4, queue: 5 };

/** The CI subset: every fault class on each backend at least once, every workload, short. */
const CI_RUNS: readonly [string, WorkloadName][] = [
  ['none', 'register'],
  ['leader SIGKILL + restart', 'counter'],
  ['follower SIGKILL + restart', 'watch'],
  ['leader SIGSTOP 1–5 s', 'register'],
  ['client blackhole < ttl', 'lock'],
  ['client blackhole > ttl', 'lock'],
  ['client blackhole > ttl', 'watch'],
  ['client proxy delay 200–400 ms', 'register'],
  ['connection resets', 'counter'],
  ['session expiry forced on the server', 'lock'],
  ['client SIGSTOP > ttl', 'lock'],
  ['client SIGSTOP > ttl', 'watch'],
  ['client blackhole near expiry', 'election'],
  // Every instance's connections break three times while lives come and go: each resumed watch
  // replays deletes and creations around the re-read its reconnect makes, which is where a stale
  // delete, a second `deleted` or a life delivered twice would come from.
  ['connection resets', 'recreate'],
  // Participant 0 is a consumer cut off past its ttl: batches it sent into the blackhole may or
  // may not have committed, its session ends on the server and a new one starts on the heal,
  // while consumer 1 goes on with the same messages. A commit applied twice, a message lost or
  // an effect run for a commit that did not happen would show here.
  ['client blackhole > ttl', 'queue'],
];

/**
 * Each seeded bug (a faulty backend under every participant's client, test/support/faulty-backend.ts),
 * the workload and fault that must catch it.
 */
const SEEDED: readonly [SeededBug, WorkloadName, string][] = [
  // The watch cache of a cut-off client is stale for sure, and its consistent reads come back at
  // once instead of timing out; without a fault the cache lags by a millisecond and the lie rarely
  // shows. Cut off past the ttl, participant 0 makes at least three operations (each ends within
  // its 1.5 s deadline), so one is a read (of struct 0, which the others keep writing).
  ['cached-read', 'register', 'client blackhole > ttl'],
  // The cut-off reader's freshness checks are answered by its silent watch while the others write.
  ['unchecked-staleness', 'watch', 'client blackhole > ttl'],
  // Four writers conflict all the time, so any fault catches it; the cut adds a writer whose
  // cache is 2 s old when it comes back.
  ['blind-cas', 'counter', 'client blackhole < ttl'],
  // Whoever queues last holds at once, with any fault.
  ['lock-without-queue', 'lock', 'client blackhole < ttl'],
  // Only a holder cut off past its ttl has a session to lose while it holds.
  ['lock-ignores-session', 'lock', 'client blackhole > ttl'],
  // Two consumers compete for every batch: one whose deletes have not landed yet leaves messages
  // the other applies again, and a reset between the commit and its separate deletes leaves them
  // queued for good. Caught in 4 of 4 tries per backend in about 4 s, the > ttl cut needs 9 s.
  ['split-dequeue', 'queue', 'connection resets'],
];

/** Everything one backend's runs add up to. */
interface Tally {
  runs: number;
  histories: number;
  ok: number;
  failed: number;
  unknown: number;
  linearizability: number;
  lost: number;
  watch: number;
  staleReads: number;
  exclusion: number;
  staleTokens: number;
  /** election: overlapping leaders, a leaderless stretch past the bound, `leader()` naming a term nobody believes in. */
  election: number;
  /** recreate: anomalies across lives, and caches or folds not equal to the final value. */
  recreate: number;
  /** queue: messages applied twice or lost against what producers were told, order, replies, effects, what is left queued. */
  queue: number;
  /** Lock losses to a ttl expiry whose margin was not positive. */
  marginViolations: number;
  /** Runs whose fault had to end participant 0's session while it held the lock, and no loss was seen. */
  missedLosses: number;
  /** Errors no workload expects, and runs that could not be made. */
  unexpected: number;
  losses: LockLoss[];
  /** How far cached reads missed the bound (maxStalenessMs), allowed or not. */
  staleExcess: number[];
  recovery: number[];
  notRecovered: number;
  staleReadErrors: number;
}
const tally = (): Tally => ({
  runs: 0,
  histories: 0,
  ok: 0,
  failed: 0,
  unknown: 0,
  linearizability: 0,
  lost: 0,
  watch: 0,
  staleReads: 0,
  exclusion: 0,
  staleTokens: 0,
  election: 0,
  recreate: 0,
  queue: 0,
  marginViolations: 0,
  missedLosses: 0,
  unexpected: 0,
  losses: [],
  staleExcess: [],
  recovery: [],
  notRecovered: 0,
  staleReadErrors: 0,
});
const violations = (t: Tally): number =>
  t.linearizability + t.lost + t.watch + t.staleReads + t.exclusion + t.staleTokens + t.election + t.recreate + t.queue + t.marginViolations + t.missedLosses + t.unexpected;
/** The checks that found something in `t`, with their counts (what caught a seeded bug). */
const CHECKS: readonly [keyof Tally, string][] = [
  ['linearizability', 'linearizability'],
  ['lost', 'lost acknowledged writes'],
  ['watch', 'watch anomalies'],
  ['staleReads', 'stale cached reads'],
  ['exclusion', 'lock exclusion'],
  ['staleTokens', 'stale-token writes'],
  ['election', 'election violations'],
  ['recreate', 'recreate anomalies'],
  ['queue', 'queue anomalies'],
  ['marginViolations', 'lock-lost margin'],
  ['missedLosses', 'missed lock loss'],
];
const foundBy = (t: Tally): string =>
  CHECKS.flatMap(([k, name]) => ((t[k] as number) > 0 ? [`${name} ${t[k] as number}`] : [])).join(', ');
const add = (a: Tally, b: Tally): void => {
  for (const k of Object.keys(a) as (keyof Tally)[]) {
    const v = b[k];
    if (typeof v === 'number') (a[k] as number) += v;
    else (a[k] as unknown[]).push(...(v as unknown[]));
  }
};

/** Watches the session keys and lock keys of a run from an unfaulted client. */
function observe(observer: Client, prefixes: readonly string[]) {
  const sessionEnds = new Map<number, number[]>();
  const lockDeletes = new Map<string, number>();
  const tokens = new Map<string, string>();
  const ctl = new AbortController();
  const backend = backendOf(observer);
  const loops = prefixes.map(async (prefix) => {
    const known = new Set<string>();
    const deleted = (key: string, at: number): void => {
      known.delete(key);
      const member = /\/p(\d+)$/.exec(key);
      if (prefix.endsWith('/sessions') && member) {
        const list = sessionEnds.get(Number(member[1])) ?? [];
        list.push(at);
        sessionEnds.set(Number(member[1]), list);
      } else {
        const token = tokens.get(key);
        if (token !== undefined && !lockDeletes.has(token)) lockDeletes.set(token, at);
      }
    };
    const watch = backend.watch({ prefix }, { signal: ctl.signal });
    try {
      for await (const ev of watch) {
        const at = now();
        if (ev.type === 'put') {
          known.add(ev.entry.key);
          tokens.set(ev.entry.key, ev.entry.createRevision.toString());
        } else if (ev.type === 'delete') {
          deleted(ev.key, at);
        } else if (ev.type === 'reset') {
          const present = new Set(ev.entries.map((e) => e.key));
          for (const k of [...known]) if (!present.has(k)) deleted(k, at);
          for (const e of ev.entries) {
            known.add(e.key);
            tokens.set(e.key, e.createRevision.toString());
          }
        }
      }
    } catch {
      // The observer closed.
    }
  });
  return {
    observed: { sessionEnds, lockDeletes },
    /** Lock key → its token (create revision), for every key the observer saw. */
    tokens,
    async stop() {
      ctl.abort();
      await Promise.allSettled(loops);
    },
  };
}

interface RunOptions {
  readonly seeded?: SeededBug;
}

/** One workload under one fault, checked. */
async function runOne(cluster: Cluster, faultName: string, workload: WorkloadName, options: RunOptions = {}): Promise<{ t: Tally; line: string }> {
  const fault = FAULTS[faultName]!;
  const t = tally();
  t.runs = 1;
  const tag = Math.random().toString(36).slice(2, 8);
  const namespace = `/faults-${tag}`;
  const name = `${workload}-${tag}`;
  const participants: ParticipantHandle[] = [];
  const proxies: TcpProxy[][] = [];
  let observer: Client | undefined;
  let watcher: ReturnType<typeof observe> | undefined;
  const notes: string[] = [];
  const started = now();
  try {
    observer = await settle(() => connect(cluster.url(cluster.ports), { namespace, sessionTtlMs: TTL, requestTimeoutMs: REQUEST_TIMEOUT, logger: quiet }));
    watcher = observe(observer, [`${namespace}/_groups/sessions`, `${namespace}/${name}/write_lock`]);
    const n = PARTICIPANTS[workload];
    for (let i = 0; i < n; i++) {
      const ps = await Promise.all(cluster.ports.map((p) => startTcpProxy(p)));
      proxies.push(ps);
      const config: ParticipantConfig = {
        index: i,
        url: cluster.url(ps.map((p) => p.port)),
        namespace,
        sessionTtlMs: TTL,
        requestTimeoutMs: REQUEST_TIMEOUT,
        seeded: options.seeded,
      };
      participants.push(i === 0 && fault.needsProcess ? await RemoteParticipant.start(config, 120000) : await LocalParticipant.start(config));
    }
    const hardStopAt = now() + 60000;
    const spec = (i: number): SetupSpec => {
      switch (workload) {
        case 'register':
          return { workload, name, structs: 3, paceMs: PROFILE.registerPaceMs, maxOps: PROFILE.registerMaxOps, hardStopAt };
        case 'counter':
          return { workload, name, paceMs: 10, hardStopAt };
        case 'watch':
          // Participant 0 (the one faults hit) and 2 read their cache; 1 and 3 write.
          return { workload, name, role: i % 2 === 0 ? 'reader' : 'writer', maxStalenessMs: STALENESS_BOUND, refreshIntervalMs: 250, paceMs: i % 2 === 0 ? 20 : 10, hardStopAt };
        case 'lock':
          return { workload, name, holdMs: [50, 150], paceMs: 10, hardStopAt };
        case 'election':
          return { workload, name, holdMs: [50, 150], paceMs: 10, hardStopAt };
        case 'recreate':
          // Participant 1 deletes and re-creates; participant 0 (the one faults hit) is a subscriber.
          return { workload, name, ...(i === 1 && { role: 'deleter' as const }), lifeMs: [200, 400], paceMs: 20, hardStopAt };
        case 'queue':
          // Participants 0 (the one faults hit) and 1 consume, 2 and 3 cast, 4 calls.
          return { workload, name, role: i < 2 ? 'consumer' : i < 4 ? 'producer' : 'caller', paceMs: 20, hardStopAt };
      }
    };
    await Promise.all(participants.map((p, i) => p.setup(spec(i))));
    const runs = participants.map((p) => p.run());
    // A participant that dies is reported when the runs are collected, not as an unhandled rejection.
    for (const r of runs) r.catch(() => {});
    // election: an unfaulted client reads leader() while the run goes on.
    const samples: LeaderSample[] = [];
    let sampling: Promise<void> | undefined;
    let stopAt = Number.POSITIVE_INFINITY;
    if (workload === 'election') {
      const el = observer.election(name, { id: 'observer' });
      sampling = (async () => {
        for (let i = 0; i < 10_000 && now() < Math.min(stopAt, hardStopAt); i++) {
          try {
            const l = await el.leader();
            samples.push({ at: now(), token: l?.token ?? null });
          } catch {
            // A fault on the cluster: the next sample.
          }
          await sleep(50);
        }
      })();
    }
    let outcome: FaultOutcome;
    try {
      await sleep(500);
      if ((workload === 'lock' || workload === 'election') && fault.holdMs !== undefined) {
        if (!(await participants[0]!.holdLong(fault.holdMs, 15000))) notes.push(`p0 never got the ${workload === 'lock' ? 'lock' : 'leadership'} before the fault`);
      }
      outcome = await fault.apply({ cluster, participants, proxies, workload });
    } finally {
      // Whatever happened, the loops end: tailMs after the fault, or now if it failed. An
      // election run goes on long enough for a wedge to show.
      stopAt = now() + (workload === 'election' ? Math.max(PROFILE.tailMs, ELECTION_BOUND_MS + 1000) : PROFILE.tailMs);
      await Promise.all(participants.map((p) => p.stop(stopAt)));
    }
    const records: RunRecord[] = await Promise.all(runs);
    await sampling;
    const codes: Record<string, number> = {};
    for (const r of records) {
      t.ok += r.ok;
      t.failed += r.failed;
      t.unknown += r.unknown;
      t.unexpected += r.unexpected.length;
      t.watch += r.anomalies.length;
      t.staleReadErrors += r.staleReadErrors;
      notes.push(...r.unexpected.slice(0, 3), ...r.anomalies.slice(0, 3), ...r.notes.slice(0, 3));
      for (const [code, n] of Object.entries(r.codes)) codes[code] = (codes[code] ?? 0) + n;
    }
    if (Object.keys(codes).length > 0) notes.push(`errors: ${Object.entries(codes).map(([c, n]) => `${c} ×${n}`).join(', ')}`);
    if (faultName !== 'none') {
      const rec = recoveryTimes(outcome.endAt, records.map((r) => r.okTimes));
      t.recovery.push(...rec.recovered);
      t.notRecovered += rec.notRecovered;
    }

    if (fault.deposesLocally && (workload === 'lock' || workload === 'election')) {
      // Participant 0's long hold or term must have ended locally before the heal.
      const held = workload === 'lock' ? records[0]!.holds.find((h) => h.long) : records[0]!.terms.find((h) => h.long);
      if (held && (held.learnedAt === undefined || held.learnedAt > outcome.endAt)) {
        t.missedLosses += 1;
        notes.push(`p0 did not give up its ${workload === 'lock' ? 'lock' : 'leadership'} before the blackhole ended (learned ${held.learnedAt === undefined ? 'never' : `${(held.learnedAt - outcome.endAt).toFixed(0)} ms after`})`);
      }
      if (held?.learnedAt !== undefined) notes.push(`p0 gave up ${(outcome.endAt - held.learnedAt).toFixed(0)} ms before the heal`);
      const ends = (watcher.observed.sessionEnds.get(0) ?? []).filter((e) => e > started);
      notes.push(ends.length === 0 ? "p0's session survived" : `p0's session ended ${(ends[0]! - outcome.endAt).toFixed(0)} ms after the heal (the cut outlasted its lease)`);
    }

    if (workload === 'election') {
      const terms = records.flatMap((r) => r.terms);
      const forced = outcome.forced ?? [];
      const exempt = (x: { client: number; electedAt: number; endedAt?: number | undefined }): boolean =>
        forced.some((f) => f.client === x.client && x.electedAt <= f.at && (x.endedAt ?? Number.POSITIVE_INFINITY) >= f.at);
      const overlaps = leaderOverlaps(terms, exempt);
      const gap = longestLeaderless(terms, outcome.endAt, stopAt);
      const disagreements = leaderDisagreements(samples, terms, ELECTION_BOUND_MS);
      // campaign() must not resolve a leadership that is already gone (docs/LOCKS.md).
      const goneAtOnce = records.flatMap((r) => r.terms.filter((x) => !x.heldAtOnce));
      t.election += overlaps.length + (gap > ELECTION_BOUND_MS ? 1 : 0) + disagreements.length + goneAtOnce.length;
      if (goneAtOnce.length > 0) notes.push(`campaign() resolved ${goneAtOnce.length} leaderships whose held was already false (p${goneAtOnce[0]!.client}, token ${goneAtOnce[0]!.token})`);
      for (const o of overlaps.slice(0, 3)) notes.push(`two leaders: p${o.older.client} (token ${o.older.token}) acted ${o.overlapMs.toFixed(0)} ms after p${o.newer.client} (token ${o.newer.token}) was elected`);
      if (gap > ELECTION_BOUND_MS) notes.push(`no leader for ${gap.toFixed(0)} ms after the fault (bound ${ELECTION_BOUND_MS} ms)`);
      for (const d of disagreements.slice(0, 3)) notes.push(`leader() named token ${d.token} (${d.client === undefined ? 'no term' : `p${d.client}`}) from ${(d.from - started).toFixed(0)} to ${(d.to - started).toFixed(0)} ms, past the bound`);
      const lost = terms.filter((x) => x.learnedAt !== undefined);
      if (lost.length > 0) notes.push(`terms lost: ${lost.map((x) => `p${x.client} ${(x.electedAt - started).toFixed(0)}–${(x.learnedAt! - started).toFixed(0)} ms`).join(', ')} (fault ended ${(outcome.endAt - started).toFixed(0)} ms)`);
      notes.push(`${terms.length} terms, longest leaderless after the fault ${gap.toFixed(0)} ms, ${samples.length} leader() samples`);
    } else if (workload === 'recreate') {
      const lives = records.flatMap((r) => r.lives);
      for (const [i, r] of records.entries()) {
        if (i === 1) continue;
        const bad = [...lifeAnomalies(r.lifeEvents, lives, r.notFounds), ...lifeAnomalies(r.iterEvents, lives).map((a) => `changes(): ${a}`)];
        t.recreate += bad.length;
        notes.push(...bad.slice(0, 3).map((a) => `p${i}: ${a}`));
      }
      const s = await settle(() => observer!.open<{ life: number; n: number; by: number; log: number[] }>(name));
      const value = await settle(() => s.readConsistent());
      const final = { version: s.stat().version, value };
      for (const [i, p] of participants.entries()) {
        if (i === 1) continue;
        const f = await p.finish(final);
        if (!f.cacheEqual) notes.push(`p${i}: cache at version ${f.version} differs from the store at life ${value.life} version ${final.version}`);
        if (!f.foldEqual) notes.push(`p${i}: fold differs from the final value`);
        t.recreate += (f.cacheEqual ? 0 : 1) + (f.foldEqual ? 0 : 1);
      }
      const deletes = records.reduce((a, r) => a + r.lifeEvents.filter((e) => e.kind === 'deleted').length, 0);
      notes.push(`${lives.length} lives, final life ${value.life} at version ${final.version}; subscribers saw ${deletes} deletes and ${records.reduce((a, r) => a + r.iterEvents.length, 0)} events`);
    } else if (workload === 'queue') {
      const srv = await settle(() => observer!.server<{ applied: string[]; n: number }, { tag: string }, number>(name));
      // The drain: the consumers go on until the queue is empty (bounded), then stop.
      const drainFrom = now();
      let pending = -1;
      for (let i = 0; i < 100 && now() - drainFrom < 15000; i++) {
        try {
          pending = (await srv.pending()).length;
          if (pending === 0) break;
        } catch {
          // A fault on the cluster: look again.
        }
        await sleep(200);
      }
      const value = await settle(() => srv.state.readConsistent());
      const final = { version: srv.state.stat().version, value };
      const effects: string[][] = [];
      for (const [i, p] of participants.entries()) {
        if (i >= 2) continue;
        const f = await p.finish(final);
        effects.push([...(f.effects ?? [])]);
        if (!f.cacheEqual) {
          t.queue += 1;
          notes.push(`p${i}: state cache at version ${f.version} differs from the store at ${final.version}`);
        }
      }
      const dead = (await settle(() => srv.deadLetters())).length;
      const left = (await settle(() => srv.pending())).length;
      const sends = records.flatMap((r) => r.sends);
      const bad = queueAnomalies(sends, { applied: value.applied, n: value.n, pending: left, dead, effects });
      t.queue += bad.length;
      notes.push(...bad.slice(0, 5));
      const count = (o: string): number => sends.filter((x) => x.outcome === o).length;
      notes.push(`${value.n} applied, ${count('ok')} acknowledged, ${count('unknown')} unknown, ${count('failed')} not queued; drained in ${(now() - drainFrom).toFixed(0)} ms; effects ${effects.map((e) => e.length).join(' + ')}`);
    } else if (workload === 'register') {
      for (let k = 0; k < 3; k++) {
        const history = records.flatMap((r) => r.ops.filter((o) => o.k === k)).map(toOperation);
        const result = checkLinearizable({ version: 1, value: '{"n":0}' }, history);
        t.histories += 1;
        if (!result.linearizable) {
          t.linearizability += 1;
          notes.push(`struct ${k}: ${history.length} operations not linearizable${result.gaveUp ? ' (search gave up)' : ''}`);
        }
      }
    } else if (workload === 'counter') {
      const s = await settle(() => observer!.open<{ n: number }>(name));
      const final = (await settle(() => s.readConsistent())).n;
      const acked = records.reduce((a, r) => a + r.ok, 0);
      const unknown = records.reduce((a, r) => a + r.unknown, 0);
      if (final < acked) t.lost += acked - final;
      if (final > acked + unknown) t.lost += final - acked - unknown;
      notes.push(`final ${final}, acknowledged ${acked}, unknown ${unknown}`);
    } else if (workload === 'watch') {
      const s = await settle(() => observer!.open<{ n: number; by: number }>(name));
      const value = await settle(() => s.readConsistent());
      const final = { version: s.stat().version, value };
      for (const [i, p] of participants.entries()) {
        const f = await p.finish(final);
        if (!f.cacheEqual) notes.push(`p${i}: cache at version ${f.version} differs from the store at ${final.version}`);
        if (!f.foldEqual) notes.push(`p${i}: fold differs from the final value`);
        t.watch += (f.cacheEqual ? 0 : 1) + (f.foldEqual ? 0 : 1);
      }
      const stale = staleReads(records.flatMap((r) => r.writes), records.flatMap((r) => r.reads), STALENESS_BOUND);
      const allowed = STALENESS_CLOCKS_MS;
      const beyond = stale.filter((r) => r.excessMs > allowed);
      t.staleReads += beyond.length;
      t.staleExcess.push(...stale.map((r) => r.excessMs));
      if (stale.length > 0) notes.push(`${stale.length} reads past maxStalenessMs by up to ${Math.max(...stale.map((r) => r.excessMs)).toFixed(0)} ms (allowed ${allowed} ms)`);
      if (beyond.length > 0) notes.push(`stale reads, e.g. ${JSON.stringify(beyond[0])}`);
      notes.push(`${records.reduce((a, r) => a + r.reads.length, 0)} cached reads checked, ${t.staleReadErrors} STALE_READ`);
    } else if (workload === 'lock') {
      const s = await settle(() => observer!.open<{ log: { t: string; c: number }[] }>(name));
      const log = (await settle(() => s.readConsistent())).log;
      const stale = staleTokenWrites(log);
      t.staleTokens += stale.length;
      if (stale.length > 0) notes.push(`stale-token writes accepted: ${JSON.stringify(stale.slice(0, 3))}`);
      t.exclusion += records.reduce((a, r) => a + r.lockConflicts, 0);
      await sleep(300); // the observer's last deletions
      const released = new Set(
        records.flatMap((r) => r.lockKeyDeletes.flatMap((d) => (d.result === 'deleted' && watcher!.tokens.has(d.key) ? [watcher!.tokens.get(d.key)!] : []))),
      );
      const losses = lockLosses(records.flatMap((r) => r.holds), watcher.observed, released, outcome.freezes ?? [], outcome.forced ?? []);
      t.losses.push(...losses);
      if (process.env.FAULTS_DEBUG) {
        const holds = records.flatMap((r) => r.holds).filter((h) => process.env.FAULTS_DEBUG === 'all' || h.long || losses.some((l) => l.token === h.token));
        const rel = (v: number | undefined): string => (v === undefined ? '-' : (v - started).toFixed(0));
        for (const h of holds) console.error(`    hold p${h.client} ${h.token}: acquired ${rel(h.acquiredAt)} lastAct ${rel(h.lastActAt)} fnEnd ${rel(h.fnEndAt)} learned ${rel(h.learnedAt)} by ${h.learnedBy ?? '-'} settled ${rel(h.settledAt)} ${h.outcome ?? ''} (${h.why ?? ''}); key deleted ${rel(watcher.observed.lockDeletes.get(h.token))}${released.has(h.token) ? ' (released)' : ''}`);
        for (const [c, ends] of watcher.observed.sessionEnds) console.error(`    session ends p${c}: ${ends.map(rel).join(', ')}`);
        console.error(`    fault ended ${rel(outcome.endAt)}`);
      }
      t.marginViolations += losses.filter((l) => l.marginMs !== undefined && l.marginMs <= 0).length;
      if (fault.expiresSession && !losses.some((l) => l.client === 0)) {
        t.missedLosses += 1;
        notes.push('participant 0 held the lock through a session end, yet no lost lock was seen');
      }
      for (const l of losses) {
        notes.push(
          `lost ${l.cause}${l.frozen ? ' (frozen)' : ''}: ${l.marginMs !== undefined ? `margin ${l.marginMs.toFixed(0)} ms` : `detected ${l.detectionMs?.toFixed(0) ?? '?'} ms after`}${l.wakeToLearnMs !== undefined ? `, learned ${l.wakeToLearnMs.toFixed(0)} ms after SIGCONT` : ''}`,
        );
      }
      notes.push(`${log.length} fenced writes`);
    }
    if (outcome.detail) notes.unshift(outcome.detail);
  } catch (err) {
    t.unexpected += 1;
    notes.push(`RUN FAILED: ${(err as Error)?.stack ?? String(err)}`);
  } finally {
    await watcher?.stop();
    await Promise.allSettled(participants.map((p) => p.close()));
    await observer?.close().catch(() => {});
    await Promise.allSettled(proxies.flat().map((p) => p.close()));
  }
  const rec = t.recovery.length > 0 ? `, recovery max ${Math.max(...t.recovery).toFixed(0)} ms${t.notRecovered > 0 ? ` (${t.notRecovered} clients not recovered in the tail)` : ''}` : '';
  const bad = violations(t);
  const line = `${t.ok} ok, ${t.failed} failed, ${t.unknown} unknown${rec}, ${((now() - started) / 1000).toFixed(1)} s${bad ? `, VIOLATIONS ${bad}` : ''}; ${notes.join('; ')}`;
  return { t, line };
}

const ms = (v: number | undefined): string => (v === undefined ? '–' : `${v.toFixed(0)} ms`);

async function runBackend(make: () => Promise<Cluster>): Promise<{ row: string; byFault: string[]; failed: boolean }> {
  const started = now();
  const cluster = await make();
  const total = tally();
  const recoveryByFault = new Map<string, number[]>();
  const caught: string[] = [];
  try {
    const plan: [string, WorkloadName][] =
      MODE === 'ci' ? [...CI_RUNS] : Object.keys(FAULTS).flatMap((f) => WORKLOADS.map((w): [string, WorkloadName] => [f, w]));
    for (const [faultName, workload] of plan.filter(([f, w]) => FILTER === undefined || `${f} / ${w}`.includes(FILTER))) {
      const { t, line } = await runOne(cluster, faultName, workload);
      add(total, t);
      recoveryByFault.set(faultName, [...(recoveryByFault.get(faultName) ?? []), ...t.recovery]);
      console.error(`  [${cluster.name}] ${faultName} / ${workload}: ${line}`);
      await cluster.repair();
      await cluster.leader(); // the cluster is whole again before the next run
    }
    for (const [bug, workload, faultName] of SEEDED.filter(([b]) => FILTER === undefined || `seeded ${b}`.includes(FILTER))) {
      const { t, line } = await runOne(cluster, faultName, workload, { seeded: bug });
      // Harness failures do not count as catching a bug.
      const hit = violations(t) - t.unexpected > 0;
      if (hit) caught.push(bug);
      console.error(`  [${cluster.name}] seeded ${bug} / ${workload} / ${faultName}: ${hit ? `caught (${foundBy(t)})` : 'NOT caught'}; ${line}`);
      await cluster.repair();
      await cluster.leader();
    }
  } finally {
    await cluster.stop();
  }
  const ttl = total.losses.filter((l) => l.marginMs !== undefined);
  const smallest = ttl.length > 0 ? Math.min(...ttl.map((l) => l.marginMs!)) : undefined;
  const detections = total.losses.flatMap((l) => (l.detectionMs !== undefined ? [l.detectionMs] : []));
  const wake = total.losses.flatMap((l) => (l.wakeToLearnMs !== undefined ? [l.wakeToLearnMs] : []));
  const row = [
    cluster.name,
    `${total.runs} / ${total.histories}`,
    `${total.ok} / ${total.failed} / ${total.unknown}`,
    total.linearizability,
    total.lost,
    total.watch,
    `${total.staleReads}${total.staleExcess.length > 0 ? ` (${total.staleExcess.length} past maxStalenessMs, by ≤ ${ms(Math.max(...total.staleExcess))})` : ''}`,
    total.exclusion,
    total.staleTokens,
    total.election,
    total.recreate,
    total.queue,
    `${ms(smallest)} (${ttl.length} losses${wake.length > 0 ? `; frozen holders learned ≤ ${ms(Math.max(...wake))} after SIGCONT` : ''})${total.marginViolations + total.missedLosses > 0 ? ` VIOLATIONS ${total.marginViolations + total.missedLosses}` : ''}`,
    detections.length > 0 ? `${ms(Math.max(...detections))} (${detections.length})` : '–',
    `${ms(percentile(total.recovery, 50))} / ${ms(percentile(total.recovery, 99))}${total.notRecovered > 0 ? ` (${total.notRecovered} not recovered)` : ''}`,
    `${caught.length} / ${SEEDED.length}${caught.length < SEEDED.length ? ` (missed: ${SEEDED.map(([b]) => b).filter((b) => !caught.includes(b)).join(', ')})` : ''}`,
    `${total.unexpected}`,
    `${((now() - started) / 1000).toFixed(0)} s`,
  ];
  const byFault = [...recoveryByFault].flatMap(([f, v]) =>
    v.length > 0 ? [`| ${cluster.name} | ${f} | ${v.length} | ${ms(percentile(v, 50))} | ${ms(percentile(v, 99))} | ${ms(Math.max(...v))} |`] : [],
  );
  return { row: `| ${row.join(' | ')} |`, byFault, failed: violations(total) > 0 || caught.length < SEEDED.length };
}

/** The whole run's time limit: a run that hangs fails instead of holding CI up. */
const LIMIT_MS = { full: 60, quick: 30, ci: 9 }[MODE] * 60_000;

async function main(): Promise<void> {
  setTimeout(() => {
    console.error(`test:faults: over its ${LIMIT_MS / 60_000} min limit; stopping`);
    process.exit(1);
  }, LIMIT_MS).unref();
  const started = now();
  const rows: string[] = [];
  const byFault: string[] = [];
  let failed = false;
  for (const [name, make] of [['etcd', etcdCluster], ['zookeeper', zkCluster]] as const) {
    if (ONLY && ONLY !== name) continue;
    const r = await runBackend(make);
    rows.push(r.row);
    byFault.push(...r.byFault);
    failed ||= r.failed;
  }
  console.log(`mode ${MODE}; faults: ${Object.keys(FAULTS).join(', ')}; workloads: ${WORKLOADS.join(', ')}; ttl ${TTL} ms; staleness bound ${STALENESS_BOUND} ms`);
  console.log(
    '| backend | runs / histories | operations ok / failed / unknown | linearizability violations | lost acknowledged writes | watch anomalies | stale cached reads | lock exclusion violations | stale-token writes accepted | election violations | recreate anomalies | queue anomalies | lock-lost smallest margin | forced expiry: holder learned after | recovery p50 / p99 | seeded bugs caught | unexpected errors | time |',
  );
  console.log('| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- | ---: | ---: |');
  for (const r of rows) console.log(r);
  console.log('\nrecovery by fault: from the end of the fault to each client\'s next successful operation');
  console.log('| backend | fault | clients | p50 | p99 | max |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: |');
  for (const r of byFault) console.log(r);
  console.log(`total ${((now() - started) / 1000).toFixed(0)} s: ${failed ? 'FAILED' : 'ok'}`);
  if (failed) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
