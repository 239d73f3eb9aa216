/**
 * Real etcd for tests: single members or 3-member clusters on random 127.0.0.1 ports, data on
 * /dev/shm, killed by PID, with per-member kill / restart / pause (SIGSTOP) / resume and the
 * server's Prometheus `/metrics`. `sharedEtcd()` gives one lazily started server per test run;
 * `ETCD_ENDPOINTS` (comma-separated host:port) points the tests at an external etcd instead.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { EtcdBackend } from '../../adapters/etcd/index.js';
import type { AdapterOptions, Logger } from '../../lib/backend.js';
import { onRunEnd } from './cleanup.js';
import {
  freePort,
  removeDir,
  scratchDir,
  startProcess,
  waitUntil,
  which,
  type ServerProcess,
} from './process.js';

/** The install hint every "no etcd" failure carries. */
export const ETCD_INSTALL_HINT = 'etcd is not installed: apt-get install -y etcd-server etcd-client (etcd 3.4+ on PATH)';

/** Options of {@link startEtcd}. */
export interface StartEtcdOptions {
  /** Cluster size (default 1). */
  readonly members?: 1 | 3;
  /**
   * `--experimental-watch-progress-notify-interval` in ms (default 2000). etcd's own default is
   * 10 minutes, which would make progress notifications untestable.
   */
  readonly progressNotifyMs?: number;
  /** Extra command-line flags for every member. */
  readonly extraArgs?: readonly string[];
}

/** One member of a cluster we started. */
export interface EtcdMember {
  readonly name: string;
  /** `127.0.0.1:<client port>`. */
  readonly endpoint: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly metricsPort: number;
  readonly dataDir: string;
  /** PID of the current process (changes on restart). */
  readonly pid: number;
  /** True while the process runs (paused counts as running). */
  readonly running: boolean;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** Starts the member again on the same ports and data dir; resolves once it is healthy. */
  restart(): Promise<void>;
  /** SIGSTOP: the process freezes, its sockets stay open (what a hung server looks like); resolves once every thread has stopped. */
  pause(): Promise<void>;
  /** SIGCONT. */
  resume(): void;
  /** The member's Prometheus metrics text. */
  metrics(): Promise<string>;
}

/** A running etcd (one member or a cluster). */
export interface EtcdCluster {
  /** `host:port` of every member's client URL. */
  readonly endpoints: readonly string[];
  readonly members: readonly EtcdMember[];
  /** The first member's metrics text. */
  metrics(): Promise<string>;
  /** Kills every member and removes the data dirs. Idempotent. */
  stop(): Promise<void>;
}

/** An etcd to run tests against; `cluster` is absent for an external `ETCD_ENDPOINTS` server. */
export interface EtcdTarget {
  readonly endpoints: readonly string[];
  readonly cluster?: EtcdCluster | undefined;
}

/**
 * Sums the samples of metric `name` whose labels include every `labels` pair. Prometheus text
 * format, one sample a line (`name{a="b",c="d"} 12`).
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

/** Starts etcd on free 127.0.0.1 ports. Throws (never skips) when the binary is missing. */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const binary = which(process.env.ETCD_BINARY ?? 'etcd');
  if (!binary) throw new Error(ETCD_INSTALL_HINT);
  const size = options.members ?? 1;
  const progressMs = options.progressNotifyMs ?? 2000;
  const specs: { name: string; clientPort: number; peerPort: number; metricsPort: number; dataDir: string }[] = [];
  for (let i = 1; i <= size; i++) {
    specs.push({
      name: `s${i}`,
      clientPort: await freePort(),
      peerPort: await freePort(),
      metricsPort: await freePort(),
      dataDir: scratchDir(`etcd-s${i}`),
    });
  }
  const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peerPort}`).join(',');
  const token = `sharedstruct-${process.pid}-${Date.now()}`;

  const members: EtcdMember[] = specs.map((spec) => {
    let proc: ServerProcess | undefined;
    const args = [
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
      '--log-level', 'warn',
      ...(size > 1 ? ['--initial-cluster-token', token, '--initial-cluster-state', 'new'] : []),
      ...(options.extraArgs ?? []),
    ];
    const launch = (): void => {
      proc = startProcess(binary, args, join(spec.dataDir, '..', `${spec.dataDir.split('/').pop()}.log`));
    };
    launch();
    const member: EtcdMember = {
      name: spec.name,
      endpoint: `127.0.0.1:${spec.clientPort}`,
      clientPort: spec.clientPort,
      peerPort: spec.peerPort,
      metricsPort: spec.metricsPort,
      dataDir: spec.dataDir,
      get pid() {
        return proc!.pid;
      },
      get running() {
        return proc !== undefined && !proc.exited();
      },
      async kill() {
        await proc?.kill();
      },
      async restart() {
        await proc?.kill();
        launch();
        // A lone restarted member of a 3-member cluster cannot be healthy without a quorum;
        // wait for the process to listen instead.
        await waitUntil(`etcd ${spec.name} restart`, async () => {
          if (proc!.exited()) throw new Error(`etcd ${spec.name} exited; see ${proc!.logFile}`);
          return size === 1 ? healthy(spec.clientPort) : (await fetch(`http://127.0.0.1:${spec.metricsPort}/metrics`)).ok;
        });
      },
      async pause() {
        await proc?.pause();
      },
      resume() {
        proc?.resume();
      },
      async metrics() {
        const res = await fetch(`http://127.0.0.1:${spec.metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
        return res.text();
      },
    };
    return member;
  });

  let stopped = false;
  const cluster: EtcdCluster = {
    endpoints: members.map((m) => m.endpoint),
    members,
    metrics: () => members[0]!.metrics(),
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(members.map((m) => m.kill()));
      for (const s of specs) {
        removeDir(s.dataDir);
        removeDir(`${s.dataDir}.log`);
      }
    },
  };
  try {
    await waitUntil('etcd', async () => {
      for (const m of members) if (!m.running) throw new Error(`etcd ${m.name} exited at start`);
      const answers = await Promise.all(specs.map((s) => healthy(s.clientPort)));
      return answers.every(Boolean);
    }, { timeoutMs: 20000 });
  } catch (err) {
    // The logs go with the data dirs: keep their tails in the error, or a failed start cannot be diagnosed.
    const tails = specs.map((s) => {
      const log = join(s.dataDir, '..', `${s.dataDir.split('/').pop()}.log`);
      return `--- ${s.name} ---\n${existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-8).join('\n') : '(no log)'}`;
    });
    await cluster.stop();
    throw new Error(`${(err as Error).message}\n${tails.join('\n')}`, { cause: err });
  }
  return cluster;
}

let shared: Promise<EtcdTarget> | undefined;

/**
 * One etcd for the whole test run, started on first use and killed when the run ends; or the
 * external server named by `ETCD_ENDPOINTS`. Tests that inject faults start their own.
 */
export function sharedEtcd(): Promise<EtcdTarget> {
  if (!shared) {
    const external = process.env.ETCD_ENDPOINTS?.split(',').map((s) => s.trim()).filter(Boolean);
    if (external && external.length > 0) {
      shared = Promise.resolve({ endpoints: external });
    } else {
      shared = startEtcd().then((cluster) => {
        onRunEnd(() => cluster.stop());
        return { endpoints: cluster.endpoints, cluster };
      });
      // A failed start is reported by every test that asks, and retried by none.
      shared.catch(() => undefined);
    }
  }
  return shared;
}

/**
 * Starts a private etcd for a fault-injection suite and registers its kill with the run-end
 * cleanup too (a suite that crashes before its `after` still leaves nothing running).
 */
export async function privateEtcd(options: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const cluster = await startEtcd(options);
  onRunEnd(() => cluster.stop());
  return cluster;
}

/** Options for an etcd backend in tests: short deadlines, a quiet logger, overridable. */
export function etcdAdapterOptions(overrides: Partial<AdapterOptions> = {}): AdapterOptions {
  return {
    sessionTtlMs: 3000,
    connectTimeoutMs: 5000,
    requestTimeoutMs: 2000,
    logger: quietLogger,
    ...overrides,
  };
}

/** A logger that drops everything (tests assert on behaviour, not on log lines). */
export const quietLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** Connects an {@link EtcdBackend} to `endpoints` (the adapter's factory, as `connect()` uses it). */
export function etcdBackend(endpoints: readonly string[], overrides: Partial<AdapterOptions> = {}): Promise<EtcdBackend> {
  return EtcdBackend.connect({ scheme: 'etcd', hosts: endpoints, path: '', params: {} }, etcdAdapterOptions(overrides));
}

/**
 * A plain etcd3 client for the test's own side channel: writes behind the adapter's back,
 * compaction, lease revocation. etcd3's retries stay on; its calls get a 5 s deadline.
 */
export function rawEtcd(endpoints: readonly string[]): Etcd3 {
  return new Etcd3({
    hosts: endpoints.map((e) => `http://${e}`),
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5000 }),
  });
}

/** A namespace no other test uses. */
export function uniquePrefix(label: string): string {
  return `/t-${label}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
