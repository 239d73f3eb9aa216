/**
 * Process plumbing shared by the real-server harnesses (etcd, ZooKeeper): free loopback ports,
 * scratch dirs on /dev/shm, spawning and killing by PID, and bounded readiness polling.
 * Everything binds to 127.0.0.1 only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, openSync, closeSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Asks the kernel for a free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

/** A scratch directory on /dev/shm (RAM) when it exists, else the OS temp dir. */
export function scratchDir(prefix: string): string {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  return mkdtempSync(join(base, `sharedstruct-${prefix}-`));
}

/** Removes a scratch directory made by {@link scratchDir}. */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A server process we started; killed only by its own PID. */
export interface ServerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Log file receiving stdout and stderr. */
  readonly logFile: string;
  /** True once the process has exited. */
  exited(): boolean;
  /** SIGKILL and wait for the exit (bounded). */
  kill(): Promise<void>;
  /** SIGSTOP: freeze the process (fault injection); resolves once every thread has stopped. */
  pause(): Promise<void>;
  /** SIGCONT: thaw it. */
  resume(): void;
}

/** Spawns `command` detached from our stdio, logging to `logFile`. */
export function startProcess(command: string, args: string[], logFile: string, cwd?: string): ServerProcess {
  const fd = openSync(logFile, 'a');
  const child = spawn(command, args, { stdio: ['ignore', fd, fd], cwd });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const pid = child.pid;
  let hasExited = false;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      hasExited = true;
      resolve();
    });
  });
  child.once('error', () => {
    hasExited = true;
  });
  return {
    child,
    pid,
    logFile,
    exited: () => hasExited,
    async kill() {
      if (hasExited) return;
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGKILL');
      } catch {
        return;
      }
      await Promise.race([exitedPromise, new Promise((r) => setTimeout(r, 5000).unref())]);
    },
    pause: () => freeze(pid),
    resume() {
      process.kill(pid, 'SIGCONT');
    },
  };
}

/** Polls `check` every `intervalMs` until it resolves true, at most `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  { timeoutMs = 15000, intervalMs = 50 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not ready yet
    }
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Resolves after `ms` (a plain timer that keeps the process alive, as a test wants). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Finds an executable on PATH (or an absolute path that exists). */
export function which(command: string): string | undefined {
  if (command.startsWith('/')) return existsSync(command) ? command : undefined;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = join(dir, command);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

/**
 * SIGSTOP `pid` and resolve once every one of its threads is stopped. `kill()` returns when the
 * signal is queued, not when a busy multi-threaded server (Go, the JVM) has stopped: a request
 * sent right after could still be answered, which made "frozen server" tests flaky on a loaded
 * machine.
 */
export async function freeze(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  await waitUntil(`pid ${pid} stopped`, () => allThreadsStopped(pid), { timeoutMs: 5000, intervalMs: 5 });
}

/** True when every thread of `pid` is in the stopped state (`T`), per /proc (Linux). */
function allThreadsStopped(pid: number): boolean {
  const taskDir = `/proc/${pid}/task`;
  if (!existsSync(taskDir)) return true;
  return readdirSync(taskDir).every((tid) => {
    try {
      // Field 3 of stat, after the parenthesised command name.
      const stat = readFileSync(`${taskDir}/${tid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
    } catch {
      return true; // the thread is gone
    }
  });
}
