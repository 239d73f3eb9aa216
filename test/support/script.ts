/**
 * Runs a short user script in a child process, as a user would run theirs, and reports how it
 * ended: exit status, signal, output and time. Lifecycle contracts (a pending call keeps the
 * process alive, an idle client does not, a failure is one readable line) are only observable
 * from outside the process.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** How a script ended. */
export interface ScriptResult {
  /** Exit status (null when killed by a signal, e.g. our timeout's SIGKILL). */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time from spawn to exit. */
  readonly ms: number;
  /** True when the script outlived `timeoutMs` and was killed. */
  readonly timedOut: boolean;
}

/** Options of {@link runScript}. */
export interface RunScriptOptions {
  /** Killed (SIGKILL) after this long (default 30 s). */
  readonly timeoutMs?: number;
  readonly env?: Readonly<Record<string, string>>;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Writes `source` (an ES module in TypeScript; `sharedstruct` in its imports is the repo's
 * `lib/index.ts`) to a scratch file inside the repository, so its imports resolve, and runs it
 * with `node --import tsx`. The file is removed afterwards.
 */
export async function runScript(source: string, options: RunScriptOptions = {}): Promise<ScriptResult> {
  const dir = mkdtempSync(join(ROOT, 'test', '.scripts-'));
  const file = join(dir, 'script.mts');
  writeFileSync(file, source.replaceAll(/from 'sharedstruct'/g, `from '${join(ROOT, 'lib', 'index.ts')}'`));
  const started = Date.now();
  try {
    return await new Promise<ScriptResult>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', file], {
        cwd: ROOT,
        env: { ...process.env, NODE_NO_WARNINGS: '', ...options.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, options.timeoutMs ?? 30_000);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr, ms: Date.now() - started, timedOut });
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
