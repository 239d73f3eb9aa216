/**
 * Real ZooKeeper for tests: one standalone server or an ensemble on random 127.0.0.1 ports, data
 * on /dev/shm, as the installed Debian package (a JVM killed by PID) or containers
 * (testcontainers, host networking), with per-node kill / restart / pause / resume, the leader,
 * per-client proxies and session expiry for real (a second connection closes the session).
 */
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { zookeeper } from '../adapters/zookeeper/zk-client.js';
import { backendOf, type Client } from '../lib/client.js';
import { SharedStructError } from '../lib/errors.js';
import { startLink, type ClusterLink, type LinkInternals } from './link.js';
import { freePort, removeDir, scratchDir, sleep, waitUntil, which } from './process.js';
import { resolveRuntime, spawnBinary, spawnContainer, startAll, type MemberProcess, type RuntimeOptions } from './runtime.js';
import type { ProxyMode, TcpProxy } from './tcp-proxy.js';

/** What every "no ZooKeeper" failure says to install. */
export const ZOOKEEPER_INSTALL_HINT = 'apt-get install -y zookeeper (the Debian package: ZooKeeper 3.8 and a JRE)';

/** The image of runtime `'container'` when neither `image` nor `SHAREDSTRUCT_ZOOKEEPER_IMAGE` names one: the official image. */
export const DEFAULT_ZOOKEEPER_IMAGE = 'zookeeper:3.8';

/** Where the Debian `zookeeper` package puts its jar. */
const ZK_JAR = '/usr/share/java/zookeeper.jar';
const DEBIAN_CLASSPATH = ['/etc/zookeeper/conf', ZK_JAR, '/usr/share/java/slf4j-simple.jar'].join(':');
/** 500 ms ticks: sessions negotiate into [1 s, 10 s], so expiry tests stay short. */
const TICK_MS = 500;
/**
 * How often the server deletes empty container nodes (default 60 s). A JVM system property, not
 * a zoo.cfg key (the server reads it with Integer.getInteger). Short, so tests see a parent go.
 */
const CONTAINER_CHECK_MS = 100;
const JVM_FLAGS = ['-Xmx256m', '-XX:+UseSerialGC', '-Dzookeeper.extendedTypesEnabled=true', `-Dznode.container.checkIntervalMs=${CONTAINER_CHECK_MS}`];

/** Options of {@link startZooKeeper}. */
export interface StartZooKeeperOptions extends RuntimeOptions {
  /** Number of servers: 1 (standalone, the default), 3 or 5 (an ensemble). */
  readonly nodes?: number;
  /** The `java` binary (runtime `'binary'`); default `java` on PATH, else `/usr/lib/jvm/default-java/bin/java`. */
  readonly java?: string;
  /** The JVM class path holding ZooKeeper (runtime `'binary'`); default `ZOOKEEPER_CLASSPATH`, else the Debian package's. */
  readonly classpath?: string;
}

/** One server of a {@link ZooKeeperCluster}. */
export interface ZooKeeperMember {
  /** `myid`: 1, 2, ... */
  readonly id: number;
  /** The client port on 127.0.0.1. */
  readonly port: number;
  /** PID of the running JVM (changes after `restart`); -1 in a container. */
  readonly pid: number;
  /** The server's directory on the host (its `zoo.cfg` and data). */
  readonly dataDir: string;
  /** The JVM's log file (runtime `'binary'`; `''` in a container, see {@link ZooKeeperMember.logTail}). */
  readonly logFile: string;
  /** True while the server runs (paused counts as running). */
  readonly running: boolean;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data (after `kill`); resolves once it answers. */
  restart(): Promise<void>;
  /** Freezes it (SIGSTOP, or `docker pause`): sockets stay open, nothing answers. Resolves once frozen. */
  pause(): Promise<void>;
  /** Thaws it. */
  resume(): Promise<void>;
  /** Sends a four-letter word (`srvr`, `ruok`, `mntr`) and resolves the raw answer. */
  fourLetter(cmd: string, timeoutMs?: number): Promise<string>;
  /** The last lines the server logged. */
  logTail(lines?: number): Promise<string>;
}

/** A running ZooKeeper made by {@link startZooKeeper}. Stop it with {@link ZooKeeperCluster.stop} or `await using`. */
export interface ZooKeeperCluster extends AsyncDisposable {
  /** The runtime it runs on. */
  readonly runtime: 'binary' | 'container';
  /** The URL to connect with: `zk://127.0.0.1:p1,127.0.0.1:p2,...`. */
  readonly url: string;
  /** `127.0.0.1:port,...`: a ZooKeeper connect string. */
  readonly connectString: string;
  /** `127.0.0.1:port` of every server. */
  readonly hosts: readonly string[];
  /** The servers, in order. */
  readonly members: readonly ZooKeeperMember[];
  /** The index of the current leader (a standalone server is its own); waits (up to 15 s) while there is none. */
  leader(options?: { readonly signal?: AbortSignal }): Promise<number>;
  /** Starts TCP proxies in front of every server for one client; connect it to the link's `url`. Closed by `stop()`. */
  proxy(): Promise<ClusterLink>;
  /**
   * Ends `client`'s session on the server: a second connection attaches to it with its id and
   * password and closes it; its ephemeral nodes go. When `client` connects through a link of this
   * cluster, the link is blackholed meanwhile (so the client cannot take the session back) and
   * then put back as it was.
   */
  expireSession(client: Client): Promise<void>;
  /** Kills every server, closes the links and removes the data. Idempotent. */
  stop(): Promise<void>;
}

/** Sends a four-letter word to `host:port` and resolves everything the server wrote back. */
export function fourLetterWord(port: number, cmd: string, timeoutMs = 2000, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`four-letter word ${cmd} to ${port}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    socket.on('connect', () => socket.end(cmd));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

function javaBinary(option: string | undefined): string | undefined {
  return which(option ?? 'java') ?? (option === undefined ? which('/usr/lib/jvm/default-java/bin/java') : undefined);
}

function classpath(option: string | undefined): string | undefined {
  const cp = option ?? process.env.ZOOKEEPER_CLASSPATH;
  if (cp) return cp;
  return existsSync(ZK_JAR) ? DEBIAN_CLASSPATH : undefined;
}

/** What a second client needs to attach to a session. */
export interface SessionCredentials {
  readonly sessionId: Buffer;
  readonly password: Buffer;
  readonly timeoutMs: number;
}

/** Attaches to a session with its credentials; rejects with 'expired' once the server refuses it. */
function attach(connectString: string, credentials: SessionCredentials): Promise<{ close(): Promise<void> }> {
  const client = zookeeper.createClient(connectString, {
    sessionTimeout: credentials.timeoutMs,
    spinDelay: 100,
    retries: 0,
    sessionId: credentials.sessionId,
    sessionPassword: credentials.password,
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.close();
      reject(new Error('no session within 10 s'));
    }, 10000);
    client.on('connected', () => {
      clearTimeout(timer);
      resolve({
        close: () =>
          new Promise<void>((done) => {
            const t = setTimeout(done, 3000);
            client.on('disconnected', () => {
              clearTimeout(t);
              done();
            });
            client.close();
          }),
      });
    });
    client.on('expired', () => {
      clearTimeout(timer);
      client.close();
      reject(new Error('session expired'));
    });
    client.connect();
  });
}

/**
 * Expires a session for real: a second client attaches to it (id and password) and closes it;
 * the server ends the session and drops its ephemerals. The owner's `proxies` are blackholed
 * meanwhile, because otherwise its own reconnect (same credentials) can take the session back
 * before the close arrives. Resolves once a further attach is refused as expired; the proxies are
 * then put into `restore` (and reset, when that is `pass`, so the owner retries at once).
 */
export async function expireZooKeeperSession(connectString: string, credentials: SessionCredentials, proxies: readonly TcpProxy[], restore: ProxyMode = 'pass'): Promise<void> {
  for (const p of proxies) p.setMode('blackhole');
  try {
    for (let attempt = 1; ; attempt += 1) {
      let twin: { close(): Promise<void> };
      try {
        twin = await attach(connectString, credentials);
      } catch (err) {
        if (String(err).includes('expired')) return;
        throw err;
      }
      await twin.close();
      if (attempt >= 5) throw new SharedStructError('TIMEOUT', 'the session survived five closes: is the client reconnecting around its link?');
    }
  } finally {
    for (const p of proxies) {
      p.setMode(restore);
      if (restore === 'pass') p.resetAll();
    }
  }
}

/**
 * Starts ZooKeeper on free 127.0.0.1 ports and resolves once every server serves (an ensemble:
 * once its quorum has formed).
 *
 * @example
 * ```ts
 * await using zk = await startZooKeeper({ nodes: 3 });
 * await using client = await connect(zk.url);
 * await zk.members[await zk.leader()]!.kill();
 * ```
 */
export async function startZooKeeper(options: StartZooKeeperOptions = {}): Promise<ZooKeeperCluster> {
  const count = options.nodes ?? 1;
  if (![1, 3, 5].includes(count)) throw new SharedStructError('INVALID_ARGUMENT', `startZooKeeper: nodes must be 1, 3 or 5, got ${count}`);
  const runtime = await resolveRuntime(options.runtime, 'ZooKeeper', () => javaBinary(options.java) !== undefined && classpath(options.classpath) !== undefined, ZOOKEEPER_INSTALL_HINT);
  const startTimeoutMs = options.startTimeoutMs ?? 60000;
  const image = options.image ?? process.env.SHAREDSTRUCT_ZOOKEEPER_IMAGE ?? DEFAULT_ZOOKEEPER_IMAGE;
  const dir = scratchDir('zk');
  const ports = await Promise.all(Array.from({ length: count }, async () => ({ client: await freePort(), peer: await freePort(), election: await freePort() })));
  // An ensemble needs every server's peer and election ports in every config; standalone needs none.
  const servers = count > 1 ? ports.map((p, i) => `server.${i + 1}=127.0.0.1:${p.peer}:${p.election}`) : [];
  const label = `sharedstruct-zk-${process.pid}-${Date.now()}`;
  const procs: (MemberProcess | undefined)[] = ports.map(() => undefined);
  const launches: (() => Promise<MemberProcess>)[] = [];
  const members: ZooKeeperMember[] = [];
  const ready = async (i: number): Promise<void> => {
    const port = ports[i]!.client;
    await waitUntil(
      `ZooKeeper on 127.0.0.1:${port}`,
      async () => {
        if (!procs[i]!.running()) throw new Error('the server exited');
        // Standalone says "Mode: standalone"; an ensemble member says leader or follower once
        // the quorum has formed (before that, srvr answers "not currently serving requests").
        return (await fourLetterWord(port, 'srvr', 1000)).includes('Mode:');
      },
      { timeoutMs: startTimeoutMs, intervalMs: 100 },
    ).catch(async (err: unknown) => {
      throw new SharedStructError('CONNECTION', `${(err as Error).message}\n--- node ${i + 1} ---\n${await procs[i]!.logTail(15).catch(() => '')}`, { cause: err });
    });
  };
  for (let i = 0; i < count; i++) {
    const id = i + 1;
    const port = ports[i]!.client;
    const nodeDir = join(dir, `node${id}`);
    const dataDir = join(nodeDir, 'data');
    mkdirSync(dataDir, { recursive: true });
    if (count > 1) writeFileSync(join(dataDir, 'myid'), `${id}\n`);
    const cfg = join(nodeDir, 'zoo.cfg');
    writeFileSync(
      cfg,
      [
        `tickTime=${TICK_MS}`,
        `dataDir=${dataDir}`,
        `clientPort=${port}`,
        'clientPortAddress=127.0.0.1',
        'admin.enableServer=false',
        '4lw.commands.whitelist=srvr,ruok,mntr',
        // Snapshots of a test store are tiny; keep the dir from growing during long runs.
        'autopurge.snapRetainCount=3',
        // Every client of a test comes from 127.0.0.1: no per-address cap (ZooKeeper's is 60).
        'maxClientCnxns=0',
        ...(count > 1 ? ['initLimit=10', 'syncLimit=5', ...servers] : []),
        '',
      ].join('\n'),
    );
    const logFile = runtime === 'binary' ? join(nodeDir, 'zookeeper.log') : '';
    launches.push(() =>
      runtime === 'binary'
        ? Promise.resolve(
            spawnBinary({
              command: javaBinary(options.java)!,
              args: [...JVM_FLAGS, '-cp', classpath(options.classpath)!, 'org.apache.zookeeper.server.quorum.QuorumPeerMain', cfg],
              logFile,
              cwd: nodeDir,
            }),
          )
        : spawnContainer({
            image,
            // The image runs ZooKeeper on /conf/zoo.cfg (the official image's convention); the
            // JVM picks its flags up from JAVA_TOOL_OPTIONS whatever launches it.
            environment: { JAVA_TOOL_OPTIONS: JVM_FLAGS.join(' '), ZOO_MY_ID: String(id) },
            binds: [
              { source: nodeDir, target: nodeDir },
              { source: cfg, target: '/conf/zoo.cfg' },
            ],
            // Logged once the server serves (PrepRequestProcessor's start comes too early).
            readyLog: /ZooKeeper audit is disabled/,
            startTimeoutMs,
            cluster: label,
          }),
    );
    members.push({
      id,
      port,
      get pid() {
        return procs[i]?.pid ?? -1;
      },
      dataDir: nodeDir,
      logFile,
      get running() {
        return procs[i]?.running() ?? false;
      },
      kill: async () => {
        await procs[i]?.kill();
      },
      async restart() {
        await procs[i]!.relaunch();
        await ready(i);
      },
      pause: async () => {
        await procs[i]?.pause();
      },
      resume: async () => {
        await procs[i]?.resume();
      },
      fourLetter: (cmd, timeoutMs) => fourLetterWord(port, cmd, timeoutMs),
      logTail: (lines = 20) => procs[i]?.logTail(lines) ?? Promise.resolve(''),
    });
  }
  const links = new Set<ClusterLink & LinkInternals>();
  let stopped: Promise<void> | undefined;
  // A run that ends without its cleanup hooks (process.exit, a crash) must not leave a JVM
  // behind: 'exit' handlers run synchronously, and a SIGKILL by PID is synchronous.
  const onExit = (): void => {
    for (const proc of procs) {
      if (proc && proc.pid > 0) {
        try {
          process.kill(proc.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    if (runtime === 'binary') removeDir(dir);
  };
  process.once('exit', onExit);
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      process.removeListener('exit', onExit);
      await Promise.allSettled([...links].map((l) => l.close()));
      await Promise.allSettled(procs.map((p) => p?.remove() ?? Promise.resolve()));
      removeDir(dir);
    })();
    return stopped;
  };
  const hosts = ports.map((p) => `127.0.0.1:${p.client}`);
  const cluster: ZooKeeperCluster = {
    runtime,
    url: `zk://${hosts.join(',')}`,
    connectString: hosts.join(','),
    hosts,
    members,
    async leader({ signal } = {}) {
      for (let attempt = 0; attempt < 150; attempt++) {
        signal?.throwIfAborted();
        for (const [i, m] of members.entries()) {
          try {
            const srvr = await m.fourLetter('srvr', 1000);
            if (srvr.includes('Mode: leader') || srvr.includes('Mode: standalone')) return i;
          } catch {
            // down or frozen
          }
        }
        await sleep(100);
      }
      throw new SharedStructError('TIMEOUT', 'ZooKeeper has no leader after 15 s: check that a majority of the servers runs');
    },
    async proxy() {
      if (stopped) throw new SharedStructError('CLOSED', 'the ZooKeeper cluster is stopped');
      const link = await startLink('zk', ports.map((p) => p.client), (l) => links.delete(l as ClusterLink & LinkInternals));
      links.add(link);
      return link;
    },
    async expireSession(client) {
      const backend = backendOf(client) as { kind: string; connectString?: string; sessionCredentials?: () => SessionCredentials };
      if (backend.kind !== 'zookeeper' || !backend.sessionCredentials) throw new SharedStructError('INVALID_ARGUMENT', `expireSession: not a ZooKeeper client (${backend.kind})`);
      const hostsOf = (backend.connectString ?? '').split(',');
      const link = [...links].find((l) => hostsOf.every((h) => l.url.includes(h)));
      await expireZooKeeperSession(cluster.connectString, backend.sessionCredentials(), link?.proxies ?? [], link?.blackholed ? 'blackhole' : 'pass');
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
  try {
    await startAll(launches.map((launch, i) => async () => (procs[i] = await launch())));
    await Promise.all(members.map((_, i) => ready(i)));
  } catch (err) {
    await stop();
    throw err instanceof SharedStructError ? err : new SharedStructError('CONNECTION', `ZooKeeper did not start on ${runtime === 'binary' ? 'its binary' : `image ${image}`}: ${(err as Error).message}`, { cause: err });
  }
  return cluster;
}
