/**
 * Runs a command to its end in a child process with a hard time limit and reports how it ended.
 * The package tests run npm, node and tsc as a user would, so what they see is only observable
 * from outside.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** How a command ended. */
export interface ExecResult {
  readonly command: string;
  /** Exit status; null when it ended by a signal (our time limit sends SIGKILL). */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
  readonly timedOut: boolean;
}

/** Options of {@link exec}. */
export interface ExecOptions {
  readonly cwd: string;
  /** SIGKILL after this long (default 120 s). */
  readonly timeoutMs?: number;
  /** Added to (or, with `undefined`, removed from) the environment below. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * The environment of our children: ours without what npm sets for the script that runs the tests
 * (`npm test`), so an npm we start reads its config as it would in a fresh shell: no
 * `npm_config_local_prefix` pointing at this repository, no `npm_package_*` of ours.
 */
function childEnv(extra: Readonly<Record<string, string | undefined>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_(package_|lifecycle_|command$|config_local_prefix$)/.test(key) || key === 'INIT_CWD') continue;
    env[key] = value;
  }
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/** Runs `command args` in `options.cwd`; never rejects for a non-zero exit (the result says). */
export function exec(command: string, args: readonly string[], options: ExecOptions): Promise<ExecResult> {
  const started = Date.now();
  return new Promise<ExecResult>((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: childEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ command: [command, ...args].join(' '), code, signal, stdout, stderr, ms: Date.now() - started, timedOut });
    });
  });
}

/** A one-paragraph account of a result, for assertion messages. */
export function describeResult(r: ExecResult): string {
  const end = r.timedOut ? 'timed out' : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  return `\`${r.command}\`: ${end} after ${r.ms} ms\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
}
