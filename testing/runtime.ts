/**
 * How a harness runs one server member: an installed binary (a child process killed by PID) or a
 * container through testcontainers (host networking, stopped by the harness itself). Both give
 * the same handle, so etcd.ts and zookeeper.ts never ask which runtime they are on.
 */
import type * as Testcontainers from 'testcontainers';
import { SharedStructError } from '../lib/errors.js';
import { startProcess, type ServerProcess } from './process.js';

/** Where servers run: installed binaries, containers (testcontainers), or binaries if installed, else containers. */
export type Runtime = 'binary' | 'container' | 'auto';

/** The options every `start*` function of `sharedstruct/testing` takes. */
export interface RuntimeOptions {
  /** `'binary'`, `'container'` or `'auto'` (default: binaries when installed, else containers). */
  readonly runtime?: Runtime;
  /** The container image (runtime `'container'`); defaults per server, see each `start*` function. */
  readonly image?: string;
  /** Milliseconds to wait for the servers to serve (default 30000 for etcd, 60000 for ZooKeeper). */
  readonly startTimeoutMs?: number;
}

/** A member's process in either runtime. */
export interface MemberProcess {
  /** The host PID of a binary; -1 in a container (see {@link MemberProcess.containerId}). */
  readonly pid: number;
  /** The container's id (runtime `'container'`). */
  readonly containerId?: string | undefined;
  /** True while the process runs (paused counts as running). */
  running(): boolean;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** Starts it again (same ports, same data); resolves when it was started, not when it serves. */
  relaunch(): Promise<void>;
  /** Freezes it (SIGSTOP / `docker pause`); resolves once it is frozen. */
  pause(): Promise<void>;
  /** Thaws it. */
  resume(): Promise<void>;
  /** The last lines it logged. */
  logTail(lines: number): Promise<string>;
  /** Kills it and removes its container. Idempotent. */
  remove(): Promise<void>;
}

/** A binary member: what to spawn. */
export interface BinarySpec {
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly cwd?: string;
}

/** A container member: the image, its command, environment and host directories to mount. */
export interface ContainerSpec {
  readonly image: string;
  /** Overrides the image's command (the entrypoint stays); none keeps the image's own. */
  readonly command?: readonly string[];
  readonly environment?: Readonly<Record<string, string>>;
  /** Host path → container path, read-write. */
  readonly binds: readonly { readonly source: string; readonly target: string }[];
  /** The log line that says the member serves. */
  readonly readyLog: RegExp;
  /** How many times that line must appear (default 1). */
  readonly readyLogTimes?: number;
  readonly startTimeoutMs: number;
  /** A label value naming the cluster, to find leftovers. */
  readonly cluster: string;
}

/** Starts a binary member. */
export function spawnBinary(spec: BinarySpec): MemberProcess {
  let proc: ServerProcess = startProcess(spec.command, [...spec.args], spec.logFile, spec.cwd);
  return {
    get pid() {
      return proc.pid;
    },
    running: () => !proc.exited(),
    kill: () => proc.kill(),
    async relaunch() {
      await proc.kill();
      proc = startProcess(spec.command, [...spec.args], spec.logFile, spec.cwd);
    },
    pause: () => proc.pause(),
    resume() {
      try {
        proc.resume();
      } catch {
        // already gone
      }
      return Promise.resolve();
    },
    logTail: async (lines) => {
      const { readFile } = await import('node:fs/promises');
      return (await readFile(spec.logFile, 'utf8').catch(() => '(no log)')).split('\n').slice(-lines).join('\n');
    },
    remove: () => proc.kill(),
  };
}

let loaded: Promise<typeof Testcontainers> | undefined;

/**
 * testcontainers, imported on first use only; a missing package is one line saying what to
 * install. Not exported: no declaration we ship may name testcontainers' types, or a strict app
 * without the optional peer installed (skipLibCheck off) could not type-check our `.d.ts`.
 */
function loadTestcontainers(): Promise<typeof Testcontainers> {
  // Every container here is on the host's network and every address is 127.0.0.1, so the host
  // testcontainers would work out (by inspecting the engine's 'bridge' network, which an engine
  // run with --bridge=none does not have, and then it finds no working runtime) is known.
  process.env.TESTCONTAINERS_HOST_OVERRIDE ??= '127.0.0.1';
  loaded ??= import('testcontainers').catch((err: unknown) => {
    loaded = undefined;
    throw new SharedStructError('UNSUPPORTED', "runtime 'container' needs the testcontainers package: npm install --save-dev testcontainers@12", { cause: err });
  });
  return loaded;
}

/** True when testcontainers loads and a Docker engine answers. */
export async function containersAvailable(): Promise<boolean> {
  try {
    const tc = await loadTestcontainers();
    await tc.getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

/** Starts a container member on the host network and waits for its ready log line. */
export async function spawnContainer(spec: ContainerSpec): Promise<MemberProcess> {
  const tc = await loadTestcontainers();
  let container = new tc.GenericContainer(spec.image)
    .withNetworkMode('host')
    .withEnvironment({ ...spec.environment })
    .withBindMounts(spec.binds.map((b) => ({ source: b.source, target: b.target, mode: 'rw' as const })))
    .withLabels({ 'org.sharedstruct.testing': spec.cluster })
    .withPullPolicy(tc.PullPolicy.defaultPolicy())
    .withWaitStrategy(tc.Wait.forLogMessage(spec.readyLog, spec.readyLogTimes ?? 1))
    .withStartupTimeout(spec.startTimeoutMs)
    // Ryuk (the reaper) needs an image from a registry; the harness removes its own containers.
    .withAutoCleanup(false);
  if (spec.command) container = container.withCommand([...spec.command]);
  const started = await container.start();
  const client = await tc.getContainerRuntimeClient();
  const handle = client.container.getById(started.getId());
  let up = true;
  let removed = false;
  const kill = async (): Promise<void> => {
    if (!up) return;
    up = false;
    await handle.unpause().catch(() => undefined);
    await handle.kill({ signal: 'SIGKILL' }).catch(() => undefined);
    await handle.wait().catch(() => undefined);
  };
  return {
    pid: -1,
    containerId: started.getId(),
    running: () => up,
    kill,
    async relaunch() {
      await kill();
      await handle.start();
      up = true;
    },
    async pause() {
      await handle.pause();
    },
    async resume() {
      await handle.unpause().catch((err: unknown) => {
        // Not paused (or already gone) is what resume after a kill meets; anything else is real.
        if (!/not paused|is not running|No such container/i.test(String(err))) throw err;
      });
    },
    async logTail(lines) {
      const buf = (await handle.logs({ stdout: true, stderr: true, tail: lines, follow: false }));
      // Docker multiplexes stdout and stderr in 8-byte-headed frames; strip the headers.
      const out: string[] = [];
      for (let i = 0; i + 8 <= buf.length; ) {
        const size = buf.readUInt32BE(i + 4);
        out.push(buf.subarray(i + 8, i + 8 + size).toString('utf8'));
        i += 8 + size;
      }
      return out.join('');
    },
    async remove() {
      if (removed) return;
      removed = true;
      up = false;
      await handle.remove({ force: true, v: true }).catch(() => undefined);
    },
  };
}

/**
 * The runtime to use: `'auto'` takes binaries when `hasBinary`, else containers when an engine
 * answers, else fails with one line saying what to install.
 */
export async function resolveRuntime(runtime: Runtime | undefined, server: string, hasBinary: () => boolean, installHint: string): Promise<'binary' | 'container'> {
  const wanted = runtime ?? 'auto';
  if (wanted !== 'binary' && wanted !== 'container' && wanted !== 'auto') {
    throw new SharedStructError('INVALID_ARGUMENT', `runtime must be 'binary', 'container' or 'auto', got ${JSON.stringify(runtime)}`);
  }
  if (wanted === 'binary') {
    if (!hasBinary()) throw new SharedStructError('UNSUPPORTED', `${server} is not installed: ${installHint}`);
    return 'binary';
  }
  if (wanted === 'container') {
    await loadTestcontainers();
    return 'container';
  }
  if (hasBinary()) return 'binary';
  if (await containersAvailable()) return 'container';
  throw new SharedStructError('UNSUPPORTED', `no ${server} to start: ${installHint}, or a Docker engine and the testcontainers package (npm install --save-dev testcontainers@12)`);
}

/** Runs every start at once and waits for all of them (no start left running unseen), then throws the first failure. */
export async function startAll(starts: readonly (() => Promise<unknown>)[]): Promise<void> {
  const results = await Promise.allSettled(starts.map((start) => start()));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}
