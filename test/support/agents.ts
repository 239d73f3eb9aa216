/** Starts test agents (test/support/agent.ts) as child processes and collects their JSON lines. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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
  /** Resolves the first event (after `since`, an index) that matches, within `ms`. */
  waitFor(ev: string, ms: number, since?: number): Promise<AgentEvent>;
  kill(): Promise<void>;
  pause(): void;
  resume(): void;
}

const AGENT = fileURLToPath(new URL('./agent.ts', import.meta.url));

/** Spawns an agent; `config` is passed as JSON (see agent.ts). Killed by PID in `kill()`. */
export function startAgent(config: Record<string, unknown> & { id: string }): Agent {
  const child = spawn(process.execPath, ['--import', 'tsx', AGENT, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: AgentEvent[] = [];
  const waiters = new Set<() => void>();
  let buffer = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        events.push(JSON.parse(line) as AgentEvent);
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
    pause() {
      process.kill(child.pid!, 'SIGSTOP');
    },
    resume() {
      process.kill(child.pid!, 'SIGCONT');
    },
  };
}
