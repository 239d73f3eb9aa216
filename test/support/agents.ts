/**
 * Starts test agents (test/support/agent.ts, or another script that speaks the same JSON lines)
 * as child processes and collects their JSON lines; `send` writes a JSON line to the agent's stdin.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freeze } from './process.js';

/** One line an agent printed. */
export interface AgentEvent {
  readonly ev: string;
  readonly at: number;
  readonly pid: number;
  readonly id: string;
  readonly [field: string]: unknown;
}

/** A running agent. */
export interface Agent {
  readonly id: string;
  readonly child: ChildProcess;
  readonly events: AgentEvent[];
  /** Writes `message` as one JSON line to the agent's stdin. */
  send(message: unknown): void;
  /** The last 2000 characters the agent wrote to stderr. */
  stderr(): string;
  /** Calls `listener` with every event from now on; returns the unsubscribe function. */
  onEvent(listener: (event: AgentEvent) => void): () => void;
  /** Resolves the first event (after `since`, an index) that matches, within `ms`. */
  waitFor(ev: string, ms: number, since?: number): Promise<AgentEvent>;
  kill(): Promise<void>;
  /** SIGSTOP; resolves once every thread of the agent has stopped. */
  pause(): Promise<void>;
  resume(): void;
}

const AGENT = fileURLToPath(new URL('./agent.ts', import.meta.url));

/**
 * Spawns an agent; `config` is passed as JSON (see agent.ts). `script` runs another agent
 * program instead (an absolute path). Killed by PID in `kill()`.
 */
export function startAgent(config: Record<string, unknown> & { id: string }, options: { script?: string } = {}): Agent {
  const child = spawn(process.execPath, ['--import', 'tsx', options.script ?? AGENT, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
  // An agent that outlives a write we sent (it exited, it was killed) is not an error of ours.
  child.stdin.on('error', () => {});
  const events: AgentEvent[] = [];
  const waiters = new Set<() => void>();
  const listeners = new Set<(event: AgentEvent) => void>();
  let buffer = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        const event = JSON.parse(line) as AgentEvent;
        events.push(event);
        for (const l of [...listeners]) l(event);
      } catch {
        // not one of ours
      }
      for (const w of [...waiters]) w();
    }
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-2000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    id: config.id,
    child,
    events,
    stderr: () => stderr,
    send(message) {
      if (child.stdin.writable) child.stdin.write(`${JSON.stringify(message)}\n`);
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    waitFor(ev, ms, since = 0) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const hit = events.slice(since).find((e) => e.ev === ev);
          if (!hit) return false;
          clearTimeout(timer);
          waiters.delete(onLine);
          resolve(hit);
          return true;
        };
        const onLine = (): void => void check();
        const timer = setTimeout(() => {
          waiters.delete(onLine);
          reject(new Error(`agent ${config.id}: no '${ev}' within ${ms} ms; events: ${events.map((e) => e.ev).join(',')}; stderr: ${stderr}`));
        }, ms);
        if (!check()) waiters.add(onLine);
      });
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(child.pid!, 'SIGCONT');
        process.kill(child.pid!, 'SIGKILL');
      } catch {
        return;
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())]);
    },
    pause: () => freeze(child.pid!),
    resume() {
      process.kill(child.pid!, 'SIGCONT');
    },
  };
}
