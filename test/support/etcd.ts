/**
 * Real etcd for the suites: an adapter over `testing/etcd.ts` (the package's `sharedstruct/testing`,
 * always on installed binaries here), keeping the shape the suites were written against (a
 * member's `resume()` returns at once: SIGCONT is synchronous). `sharedEtcd()` gives one lazily
 * started server per test run; `ETCD_ENDPOINTS` (comma-separated host:port) points the tests at an
 * external etcd instead.
 */
import { Etcd3 } from 'etcd3';
import { EtcdBackend } from '../../adapters/etcd/index.js';
import type { AdapterOptions, Logger } from '../../lib/backend.js';
import { startEtcd as startCluster, type EtcdCluster as TestingCluster, type EtcdMember as TestingMember } from '../../testing/etcd.js';
import { onRunEnd } from './cleanup.js';
import { syncResume, type SyncResume } from './sync-resume.js';

export { metricValue } from '../../testing/etcd.js';

/** The install hint every "no etcd" failure carries. */
export const ETCD_INSTALL_HINT = 'etcd is not installed: apt-get install -y etcd-server etcd-client (etcd 3.4+ on PATH)';

/** Options of {@link startEtcd}. */
export interface StartEtcdOptions {
  /** Cluster size (default 1). */
  readonly members?: 1 | 3;
  /** `--experimental-watch-progress-notify-interval` in ms (default 2000). */
  readonly progressNotifyMs?: number;
  /** Extra command-line flags for every member. */
  readonly extraArgs?: readonly string[];
}

/** One member of a cluster we started. */
export type EtcdMember = SyncResume<TestingMember>;

/** A running etcd (one member or a cluster). */
export interface EtcdCluster extends Omit<TestingCluster, 'members'> {
  readonly members: readonly EtcdMember[];
}

/** An etcd to run tests against; `cluster` is absent for an external `ETCD_ENDPOINTS` server. */
export interface EtcdTarget {
  readonly endpoints: readonly string[];
  readonly cluster?: EtcdCluster | undefined;
}

/** Starts etcd from its binary on free 127.0.0.1 ports. Throws (never skips) when the binary is missing. */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const cluster = await startCluster({ ...options, runtime: 'binary', startTimeoutMs: 20000 });
  return { ...cluster, members: cluster.members.map(syncResume) };
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
