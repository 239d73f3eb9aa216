/**
 * A real ZooKeeper for the suites: an adapter over `testing/zookeeper.ts` (the package's
 * `sharedstruct/testing`) that keeps the shape the suites were written against (`nodes`, a
 * `resume()` that returns at once, `owned`). `ZK_CONNECT` points the tests at an external server
 * instead (fault injection on the server process is then unavailable).
 */
import { startZooKeeper as startCluster, fourLetterWord, type ZooKeeperMember } from '../../testing/zookeeper.js';
import { onRunEnd } from './cleanup.js';
import { syncResume, type SyncResume } from './sync-resume.js';

export { fourLetterWord } from '../../testing/zookeeper.js';

/** Options of {@link startZooKeeper}. */
export interface ZooKeeperOptions {
  /** Number of servers: 1 (standalone, the default) or an ensemble of 3 (or 5) on loopback. */
  readonly nodes?: number;
  /** Milliseconds to wait for the JVM to answer `srvr` (default 30000). */
  readonly startTimeoutMs?: number;
}

/** One server of a {@link ZooKeeperCluster}. */
export type ZooKeeperNode = SyncResume<Omit<ZooKeeperMember, 'running' | 'logTail' | 'dataDir'>>;

/** A running ZooKeeper: one standalone server or an ensemble. */
export interface ZooKeeperCluster {
  /** `127.0.0.1:port,...` for a client connection string. */
  readonly connectString: string;
  /** `host:port` pairs. */
  readonly hosts: readonly string[];
  readonly nodes: readonly ZooKeeperNode[];
  /** True when this harness owns the processes (false for `ZK_CONNECT`). */
  readonly owned: boolean;
  /** Kills every node and removes the scratch dir. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts a real ZooKeeper: standalone (`nodes: 1`) or an ensemble (`nodes: 3`), from the Debian
 * package, else through testcontainers when a Docker engine answers; otherwise it throws an
 * error that says what to install: tests that need it fail, never skip.
 */
export async function startZooKeeper(options: ZooKeeperOptions = {}): Promise<ZooKeeperCluster> {
  const zk = await startCluster({ nodes: options.nodes ?? 1, runtime: 'auto', startTimeoutMs: options.startTimeoutMs ?? 30000 });
  return { connectString: zk.connectString, hosts: zk.hosts, nodes: zk.members.map(syncResume), owned: true, stop: () => zk.stop() };
}

/** The node that currently leads the ensemble (by its `srvr` answer), if any. */
export async function zkLeader(cluster: ZooKeeperCluster): Promise<ZooKeeperNode | undefined> {
  for (const node of cluster.nodes) {
    try {
      if ((await node.fourLetter('srvr', 1000)).includes('Mode: leader')) return node;
    } catch {
      // down or frozen
    }
  }
  return undefined;
}

/** A server this process does not own, from `ZK_CONNECT=host:port[,host:port]`. */
function externalZooKeeper(connect: string): ZooKeeperCluster {
  const hosts = connect.split(',').map((h) => h.trim()).filter(Boolean);
  const external = (what: string) => (): never => {
    throw new Error(`${what}: ZK_CONNECT points at a server this run does not own`);
  };
  return {
    connectString: hosts.join(','),
    hosts,
    nodes: hosts.map((h, i) => {
      const [host = '127.0.0.1', portText = '2181'] = h.split(':');
      const port = Number(portText);
      return {
        id: i + 1,
        port,
        pid: -1,
        logFile: '',
        kill: external('kill'),
        restart: external('restart'),
        pause: () => Promise.reject(new Error('pause: ZK_CONNECT points at a server this run does not own')),
        resume: external('resume'),
        fourLetter: (cmd: string, timeoutMs?: number) => fourLetterWord(port, cmd, timeoutMs, host),
      };
    }),
    owned: false,
    stop: () => Promise.resolve(),
  };
}

let shared: Promise<ZooKeeperCluster> | undefined;

/**
 * One ZooKeeper per test run, started on first use and killed when the run ends (`ZK_CONNECT`
 * wins when set). Suites isolate themselves by path (namespace), not by server.
 */
export function sharedZooKeeper(): Promise<ZooKeeperCluster> {
  if (!shared) {
    const connect = process.env.ZK_CONNECT;
    shared = connect ? Promise.resolve(externalZooKeeper(connect)) : startZooKeeper({ nodes: 1 });
    shared.then(
      (zk) => onRunEnd(() => zk.stop()),
      () => {
        // Let the next caller try again (and report the same install hint).
        shared = undefined;
      },
    );
  }
  return shared;
}
