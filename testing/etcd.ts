/**
 * Real etcd for tests: one member or a cluster on random 127.0.0.1 ports, data on /dev/shm, as
 * installed binaries (killed by PID) or containers (testcontainers, host networking), with
 * per-member kill / restart / pause / resume, the leader, per-client proxies, session expiry and
 * the servers' Prometheus metrics.
 */
import { Etcd3 } from 'etcd3';
import { backendOf, type Client } from '../lib/client.js';
import { SharedStructError } from '../lib/errors.js';
import { startLink, type ClusterLink } from './link.js';
import { freePort, removeDir, scratchDir, sleep, waitUntil, which } from './process.js';
import { resolveRuntime, spawnBinary, startAll, spawnContainer, type MemberProcess, type RuntimeOptions } from './runtime.js';

/** What every "no etcd" failure says to install. */
export const ETCD_INSTALL_HINT = 'apt-get install -y etcd-server etcd-client (etcd 3.4+ on PATH), or set ETCD_BINARY';

/** The image of runtime `'container'` when neither `image` nor `SHAREDSTRUCT_ETCD_IMAGE` names one: etcd's official image. */
export const DEFAULT_ETCD_IMAGE = 'gcr.io/etcd-development/etcd:v3.5.17';

/** Options of {@link startEtcd}. */
export interface StartEtcdOptions extends RuntimeOptions {
  /** Cluster size: 1 (the default), 3 or 5. */
  readonly members?: number;
  /**
   * `--experimental-watch-progress-notify-interval` in ms (default 2000). etcd's own default is
   * 10 minutes, which would make progress notifications untestable.
   */
  readonly progressNotifyMs?: number;
  /** Extra command-line flags for every member. */
  readonly extraArgs?: readonly string[];
  /** The etcd binary (runtime `'binary'`); default `ETCD_BINARY`, else `etcd` on PATH, else `/usr/bin/etcd`. */
  readonly binary?: string;
}

/** One member of an {@link EtcdCluster}. */
export interface EtcdMember {
  /** `s1`, `s2`, ... */
  readonly name: string;
  /** `127.0.0.1:<client port>`. */
  readonly endpoint: string;
  /** The client port on 127.0.0.1. */
  readonly clientPort: number;
  /** The peer port on 127.0.0.1. */
  readonly peerPort: number;
  /** The port of `/metrics` on 127.0.0.1. */
  readonly metricsPort: number;
  /** The member's data directory on the host. */
  readonly dataDir: string;
  /** PID of the current process (changes on restart); -1 in a container. */
  readonly pid: number;
  /** True while the member runs (paused counts as running). */
  readonly running: boolean;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** Starts the member again on the same ports and data; resolves once it listens (alone it cannot serve without a quorum). */
  restart(): Promise<void>;
  /** Freezes it (SIGSTOP, or `docker pause`): its sockets stay open, nothing answers. Resolves once frozen. */
  pause(): Promise<void>;
  /** Thaws it. */
  resume(): Promise<void>;
  /** The member's Prometheus metrics text. */
  metrics(): Promise<string>;
}

/**
 * A running etcd made by {@link startEtcd}: one member or a cluster. Stop it with
 * {@link EtcdCluster.stop} or `await using`.
 */
export interface EtcdCluster extends AsyncDisposable {
  /** The runtime it runs on. */
  readonly runtime: 'binary' | 'container';
  /** The URL to connect with: `etcd://127.0.0.1:p1,127.0.0.1:p2,...`. */
  readonly url: string;
  /** `127.0.0.1:port` of every member's client URL. */
  readonly endpoints: readonly string[];
  /** The members, in order. */
  readonly members: readonly EtcdMember[];
  /** The index of the current leader in {@link EtcdCluster.members}; waits (up to 15 s) while there is none. */
  leader(options?: { readonly signal?: AbortSignal }): Promise<number>;
  /** Starts TCP proxies in front of every member for one client; connect it to the link's `url`. Closed by `stop()`. */
  proxy(): Promise<ClusterLink>;
  /** Ends `client`'s session on the server: revokes its lease (its ephemeral keys go at once). */
  expireSession(client: Client): Promise<void>;
  /** The first member's metrics text. */
  metrics(): Promise<string>;
  /** Kills every member, closes the links and removes the data. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Sums the samples of metric `name` whose labels include every `labels` pair (Prometheus text
 * format, one sample a line: `name{a="b",c="d"} 12`).
 */
export function metricValue(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labelText = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

async function healthy(clientPort: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${clientPort}/health`, { signal: AbortSignal.timeout(1000) });
  if (!res.ok) return false;
  const body = (await res.json()) as { health?: string };
  return body.health === 'true';
}

function etcdBinary(option: string | undefined): string | undefined {
  return which(option ?? process.env.ETCD_BINARY ?? 'etcd') ?? (option === undefined && !process.env.ETCD_BINARY ? which('/usr/bin/etcd') : undefined);
}

/**
 * Starts etcd on free 127.0.0.1 ports and resolves once every member serves.
 *
 * @example
 * ```ts
 * await using etcd = await startEtcd({ members: 3 });
 * await using client = await connect(etcd.url);
 * await etcd.members[await etcd.leader()]!.kill();   // the client carries on with the other two
 * ```
 */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const size = options.members ?? 1;
  if (![1, 3, 5].includes(size)) throw new SharedStructError('INVALID_ARGUMENT', `startEtcd: members must be 1, 3 or 5, got ${size}`);
  const runtime = await resolveRuntime(options.runtime, 'etcd', () => etcdBinary(options.binary) !== undefined, ETCD_INSTALL_HINT);
  const startTimeoutMs = options.startTimeoutMs ?? 30000;
  const progressMs = options.progressNotifyMs ?? 2000;
  const specs: { name: string; clientPort: number; peerPort: number; metricsPort: number; dataDir: string }[] = [];
  for (let i = 1; i <= size; i++) {
    specs.push({ name: `s${i}`, clientPort: await freePort(), peerPort: await freePort(), metricsPort: await freePort(), dataDir: scratchDir(`etcd-s${i}`) });
  }
  const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peerPort}`).join(',');
  const token = `sharedstruct-${process.pid}-${Date.now()}`;
  const argsOf = (spec: (typeof specs)[number]): string[] => [
    '--name', spec.name,
    '--data-dir', spec.dataDir,
    '--listen-client-urls', `http://127.0.0.1:${spec.clientPort}`,
    '--advertise-client-urls', `http://127.0.0.1:${spec.clientPort}`,
    '--listen-peer-urls', `http://127.0.0.1:${spec.peerPort}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${spec.peerPort}`,
    '--initial-cluster', initialCluster,
    '--listen-metrics-urls', `http://127.0.0.1:${spec.metricsPort}`,
    '--experimental-watch-progress-notify-interval', `${progressMs}ms`,
    '--logger', 'zap',
    // A container's only log is its output: keep the info line the start waits for.
    '--log-level', runtime === 'container' ? 'info' : 'warn',
    ...(size > 1 ? ['--initial-cluster-token', token, '--initial-cluster-state', 'new'] : []),
    ...(options.extraArgs ?? []),
  ];
  const image = options.image ?? process.env.SHAREDSTRUCT_ETCD_IMAGE ?? DEFAULT_ETCD_IMAGE;
  const launch = (spec: (typeof specs)[number]): Promise<MemberProcess> =>
    runtime === 'binary'
      ? Promise.resolve(spawnBinary({ command: etcdBinary(options.binary)!, args: argsOf(spec), logFile: `${spec.dataDir}.log` }))
      : spawnContainer({
          image,
          command: ['etcd', ...argsOf(spec)],
          binds: [{ source: spec.dataDir, target: spec.dataDir }],
          // etcd 3.4's zap logger says the first once it serves, 3.5 both.
          readyLog: /serving client traffic|ready to serve client requests/,
          startTimeoutMs,
          cluster: token,
        });

  const procs: (MemberProcess | undefined)[] = specs.map(() => undefined);
  const links = new Set<ClusterLink>();
  let raw: Etcd3 | undefined;
  let stopped: Promise<void> | undefined;
  const onExit = (): void => {
    for (const p of procs) {
      if (p && p.pid > 0) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  };
  const members: EtcdMember[] = specs.map((spec, i) => ({
    name: spec.name,
    endpoint: `127.0.0.1:${spec.clientPort}`,
    clientPort: spec.clientPort,
    peerPort: spec.peerPort,
    metricsPort: spec.metricsPort,
    dataDir: spec.dataDir,
    get pid() {
      return procs[i]?.pid ?? -1;
    },
    get running() {
      return procs[i]?.running() ?? false;
    },
    async kill() {
      await procs[i]?.kill();
    },
    async restart() {
      const proc = procs[i]!;
      await proc.relaunch();
      // A lone restarted member of a 3-member cluster cannot be healthy without a quorum;
      // wait for the process to listen instead.
      await waitUntil(`etcd ${spec.name} restart`, async () => {
        if (!proc.running()) throw new Error(`etcd ${spec.name} exited`);
        return size === 1 ? healthy(spec.clientPort) : (await fetch(`http://127.0.0.1:${spec.metricsPort}/metrics`)).ok;
      }, { timeoutMs: startTimeoutMs });
    },
    async pause() {
      await procs[i]?.pause();
    },
    async resume() {
      await procs[i]?.resume();
    },
    async metrics() {
      const res = await fetch(`http://127.0.0.1:${spec.metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
      return res.text();
    },
  }));

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      process.removeListener('exit', onExit);
      raw?.close();
      await Promise.allSettled([...links].map((l) => l.close()));
      await Promise.allSettled(procs.map((p) => p?.remove() ?? Promise.resolve()));
      for (const s of specs) {
        removeDir(s.dataDir);
        removeDir(`${s.dataDir}.log`);
      }
    })();
    return stopped;
  };
  const cluster: EtcdCluster = {
    runtime,
    url: `etcd://${members.map((m) => m.endpoint).join(',')}`,
    endpoints: members.map((m) => m.endpoint),
    members,
    async leader({ signal } = {}) {
      for (let attempt = 0; attempt < 150; attempt++) {
        signal?.throwIfAborted();
        for (const [i, m] of members.entries()) {
          try {
            if (metricValue(await m.metrics(), 'etcd_server_is_leader') === 1) return i;
          } catch {
            // down or frozen
          }
        }
        await sleep(100);
      }
      throw new SharedStructError('TIMEOUT', 'etcd has no leader after 15 s: check that a majority of the members runs');
    },
    async proxy() {
      if (stopped) throw new SharedStructError('CLOSED', 'the etcd cluster is stopped');
      const link = await startLink('etcd', specs.map((s) => s.clientPort), (l) => links.delete(l));
      links.add(link);
      return link;
    },
    async expireSession(client) {
      const backend = backendOf(client) as { kind: string; leaseId?: string };
      if (backend.kind !== 'etcd' || backend.leaseId === undefined) throw new SharedStructError('INVALID_ARGUMENT', `expireSession: not an etcd client (${backend.kind})`);
      raw ??= new Etcd3({ hosts: members.map((m) => `http://${m.endpoint}`), defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5000 }) });
      // A real server-side end of the lease: its keys go now, and the client learns it from its
      // next keepalive (or, if cut off, when the link heals or the TTL runs out).
      await raw.leaseClient.leaseRevoke({ ID: backend.leaseId });
    },
    metrics: () => members[0]!.metrics(),
    stop,
    [Symbol.asyncDispose]: stop,
  };

  // A run that ends without its cleanup (process.exit, a crash) must not leave binaries behind:
  // 'exit' handlers run synchronously, and a SIGKILL by PID is synchronous.
  process.once('exit', onExit);
  try {
    await startAll(specs.map((spec, i) => async () => (procs[i] = await launch(spec))));
    await waitUntil('etcd', async () => {
      for (const m of members) if (!m.running) throw new Error(`etcd ${m.name} exited at start`);
      return (await Promise.all(specs.map((s) => healthy(s.clientPort)))).every(Boolean);
    }, { timeoutMs: startTimeoutMs });
  } catch (err) {
    // The logs go with the data: keep their tails in the error, or a failed start cannot be diagnosed.
    const tails = await Promise.all(specs.map(async (s, i) => `--- ${s.name} ---\n${(await procs[i]?.logTail(8).catch(() => '')) ?? '(not started)'}`));
    await stop();
    throw new SharedStructError('CONNECTION', `etcd did not start on ${runtime === 'binary' ? 'its binary' : `image ${image}`}: ${(err as Error).message}\n${tails.join('\n')}`, { cause: err });
  }
  return cluster;
}

