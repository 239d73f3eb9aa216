/**
 * A real ZooKeeper for tests: standalone 3.8 from the Debian package on a free 127.0.0.1 port,
 * data on /dev/shm, killed by PID at the end of the run. `ZK_CONNECT` points the tests at an
 * external server instead (fault injection on the server process is then unavailable).
 */
import { writeFileSync, mkdirSync, existsSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import type * as Testcontainers from 'testcontainers';
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

/** Where the Debian `zookeeper` package puts its jars and config. */
const ZK_JAR = '/usr/share/java/zookeeper.jar';
const CLASSPATH = ['/etc/zookeeper/conf', ZK_JAR, '/usr/share/java/slf4j-simple.jar'].join(':');
/** 500 ms ticks: sessions negotiate into [1 s, 10 s], so expiry tests stay short. */
const TICK_MS = 500;
/**
 * How often the server deletes empty container nodes (lock, election and group parents; default
 * 60 s). A JVM system property, not a zoo.cfg key (the server reads it with Integer.getInteger).
 * Short, so tests see a parent go and the adapter's create races a container's deletion often.
 */
const CONTAINER_CHECK_MS = 100;

/** Options of {@link startZooKeeper}. */
export interface ZooKeeperOptions {
  /** Number of servers: 1 (standalone, the default) or an ensemble of 3 (or 5) on loopback. */
  readonly nodes?: number;
  /** Milliseconds to wait for the JVM to answer `srvr` (default 30000). */
  readonly startTimeoutMs?: number;
}

/** One server of a {@link ZooKeeperCluster}. */
export interface ZooKeeperNode {
  readonly id: number;
  readonly port: number;
  /** PID of the running JVM (changes after `restart`). */
  readonly pid: number;
  /** Log file of the JVM. */
  readonly logFile: string;
  /** SIGKILL the JVM and wait for it to exit. */
  kill(): Promise<void>;
  /** Start it again on the same port and data dir (after `kill`), wait until it answers. */
  restart(): Promise<void>;
  /**
   * SIGSTOP: the server keeps its sockets open but answers nothing (a hung server). Resolves
   * once every thread of the JVM is stopped (the signal is delivered asynchronously).
   */
  pause(): Promise<void>;
  /** SIGCONT. */
  resume(): void;
  /** Sends a four-letter word (`srvr`, `ruok`, `mntr`) and resolves the raw answer. */
  fourLetter(cmd: string, timeoutMs?: number): Promise<string>;
}

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

/** Sends a four-letter word to 127.0.0.1:`port` and resolves everything the server wrote back. */
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
    socket.on('data', (chunk) => chunks.push(chunk));
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

/** The error to raise when no ZooKeeper can be started, with the fix in the message. */
function noZooKeeper(detail: string): Error {
  return new Error(
    `ZooKeeper is not available (${detail}). Install it with \`apt-get install -y zookeeper\` ` +
      '(Debian package, ZooKeeper 3.8), or set ZK_CONNECT=127.0.0.1:2181 to use a running server.',
  );
}

/**
 * Starts a real ZooKeeper from the Debian package: standalone (`nodes: 1`) or an ensemble
 * (`nodes: 3`); with no package and a reachable Docker engine, a standalone `zookeeper:3.8.0`
 * through testcontainers. Otherwise it throws an
 * error that says how to install it: tests that need it fail, never skip, in CI.
 */
export async function startZooKeeper(options: ZooKeeperOptions = {}): Promise<ZooKeeperCluster> {
  const nodes = options.nodes ?? 1;
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 5) throw new Error(`startZooKeeper: nodes must be 1..5, got ${nodes}`);
  if (existsSync(ZK_JAR) && which('java')) return startEnsemble(nodes, options.startTimeoutMs ?? 30000);
  if (nodes > 1) throw noZooKeeper(`${ZK_JAR} or java not found; an ensemble needs the Debian package`);
  const docker = await startWithTestcontainers();
  if (docker) return docker;
  throw noZooKeeper(`${ZK_JAR} or java not found, and no Docker engine is reachable`);
}

async function startEnsemble(count: number, startTimeoutMs: number): Promise<ZooKeeperCluster> {
  const dir = scratchDir('zk');
  const ports = await Promise.all(Array.from({ length: count }, async () => ({ client: await freePort(), peer: await freePort(), election: await freePort() })));
  // An ensemble needs every server's peer and election ports in every config; standalone needs none.
  const servers = count > 1 ? ports.map((p, i) => `server.${i + 1}=127.0.0.1:${p.peer}:${p.election}`) : [];
  const procs: ServerProcess[] = [];
  const nodes: ZooKeeperNode[] = [];
  const launches: (() => Promise<void>)[] = [];
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
        ...(count > 1 ? ['initLimit=10', 'syncLimit=5', ...servers] : []),
        '',
      ].join('\n'),
    );
    const logFile = join(nodeDir, 'zookeeper.log');
    const launch = (): ServerProcess =>
      startProcess(
        'java',
        ['-Xmx256m', '-XX:+UseSerialGC', '-Dzookeeper.extendedTypesEnabled=true', `-Dznode.container.checkIntervalMs=${CONTAINER_CHECK_MS}`, '-cp', CLASSPATH, 'org.apache.zookeeper.server.quorum.QuorumPeerMain', cfg],
        logFile,
        nodeDir,
      );
    const ready = async (proc: ServerProcess): Promise<void> => {
      await waitUntil(
        `ZooKeeper on 127.0.0.1:${port}`,
        async () => {
          if (proc.exited()) throw noZooKeeper(`the JVM exited; see ${logFile}`);
          // Standalone says "Mode: standalone"; an ensemble member says leader or follower once
          // the quorum has formed (before that, srvr answers "not currently serving requests").
          return (await fourLetterWord(port, 'srvr', 1000)).includes('Mode:');
        },
        { timeoutMs: startTimeoutMs, intervalMs: 100 },
      ).catch((err: unknown) => {
        // waitUntil swallows check errors; surface the log tail so a broken JVM is diagnosable.
        const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n') : '';
        throw new Error(`${(err as Error).message}\n--- ${logFile} ---\n${tail}`, { cause: err });
      });
    };
    procs.push(launch());
    launches.push(() => ready(procs[i]!));
    nodes.push({
      id,
      port,
      get pid() {
        return procs[i]!.pid;
      },
      logFile,
      kill: () => procs[i]!.kill(),
      async restart() {
        await procs[i]!.kill();
        procs[i] = launch();
        await ready(procs[i]!);
      },
      pause: () => procs[i]!.pause(),
      resume: () => procs[i]!.resume(),
      fourLetter: (cmd, timeoutMs) => fourLetterWord(port, cmd, timeoutMs),
    });
  }
  let stopped = false;
  // A run that ends without its cleanup hooks (process.exit, a crash, a killed mocha) must not
  // leave a JVM behind: 'exit' handlers run synchronously, and a SIGKILL by PID is synchronous.
  const onExit = (): void => {
    for (const proc of procs) {
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    removeDir(dir);
  };
  process.once('exit', onExit);
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', onExit);
    await Promise.all(procs.map((p) => p.kill()));
    removeDir(dir);
  };
  try {
    await Promise.all(launches.map((l) => l()));
  } catch (err) {
    await stop();
    throw err;
  }
  const hosts = ports.map((p) => `127.0.0.1:${p.client}`);
  return { connectString: hosts.join(','), hosts, nodes, owned: true, stop };
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

/** testcontainers' `zookeeper:3.8.0`, only when a Docker engine answers; undefined otherwise. */
async function startWithTestcontainers(): Promise<ZooKeeperCluster | undefined> {
  let tc: typeof Testcontainers;
  try {
    tc = await import('testcontainers');
    // Throws when no engine is reachable; that is the "no Docker" answer, not a failure.
    await tc.getContainerRuntimeClient();
  } catch {
    return undefined;
  }
  const container = await new tc.GenericContainer('zookeeper:3.8.0')
    .withExposedPorts(2181)
    .withEnvironment({
      ZOO_TICK_TIME: String(TICK_MS),
      ZOO_4LW_COMMANDS_WHITELIST: 'srvr,ruok,mntr',
      SERVER_JVMFLAGS: `-Dznode.container.checkIntervalMs=${CONTAINER_CHECK_MS}`,
    })
    .withWaitStrategy(tc.Wait.forLogMessage(/binding to port/))
    .start();
  const host = container.getHost();
  const port = container.getMappedPort(2181);
  const unsupported = (what: string) => (): never => {
    throw new Error(`${what} is not available for a testcontainers ZooKeeper`);
  };
  let stopped = false;
  return {
    connectString: `${host}:${port}`,
    hosts: [`${host}:${port}`],
    nodes: [
      {
        id: 1,
        port,
        pid: -1,
        logFile: '',
        kill: async () => {
          await container.stop();
        },
        restart: async () => {
          await container.restart();
        },
        pause: () => Promise.reject(new Error('pause is not available for a testcontainers ZooKeeper')),
        resume: unsupported('resume'),
        fourLetter: (cmd, timeoutMs) => fourLetterWord(port, cmd, timeoutMs, host),
      },
    ],
    owned: true,
    async stop() {
      if (stopped) return;
      stopped = true;
      await container.stop();
    },
  };
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
