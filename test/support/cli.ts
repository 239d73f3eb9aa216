/**
 * The real `sharedstruct` binary for tests: built once per run (`npm run build`, as `npm pack`
 * does) and run as a child process, to its end (`runCli`) or long-running with its stdout read
 * line by line (`startCli`, for `watch`). Killed by PID; every run has a hard time limit.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The built executable. */
export const CLI_BIN = join(ROOT, 'dist', 'cli', 'main.js');

let built: Promise<void> | undefined;

/** Builds `dist/` once per test run (the CLI imports the built library, as installed). */
export function buildCli(): Promise<void> {
  built ??= new Promise<void>((resolve, reject) => {
    const child = spawn('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`npm run build failed (${code}):\n${output}`))));
  });
  built.catch(() => (built = undefined));
  return built;
}

/** How a CLI run ended. */
export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of {@link runCli} and {@link startCli}. */
export interface CliOptions {
  /** Added to the environment (`undefined` removes a variable). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Written to stdin, then stdin is closed (default: closed at once). */
  readonly stdin?: string;
  /** SIGKILL after this long (default 20 s). */
  readonly timeoutMs?: number;
  readonly cwd?: string;
}

/** The environment of a CLI child: no colour unless asked, no inherited store settings. */
function cliEnv(extra: Readonly<Record<string, string | undefined>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SHAREDSTRUCT_URL: undefined, SHAREDSTRUCT_NAMESPACE: undefined, SHAREDSTRUCT_USER: undefined, SHAREDSTRUCT_PASSWORD: undefined, SHAREDSTRUCT_PASSWORD_FILE: undefined, SHAREDSTRUCT_CA: undefined, SHAREDSTRUCT_CERT: undefined, SHAREDSTRUCT_KEY: undefined, SHAREDSTRUCT_SERVERNAME: undefined, FORCE_COLOR: undefined, NODE_OPTIONS: undefined };
  for (const [k, v] of Object.entries(extra)) env[k] = v;
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return env;
}

function spawnCli(args: readonly string[], options: CliOptions): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [CLI_BIN, ...args], { cwd: options.cwd ?? ROOT, env: cliEnv(options.env), stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs the CLI to its end. */
export async function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const child = spawnCli(args, options);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.end(options.stdin ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
  try {
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    // 'exit' may come before the pipes are drained.
    if (!child.stdout.readableEnded) await once(child.stdout, 'end').catch(() => {});
    if (!child.stderr.readableEnded) await once(child.stderr, 'end').catch(() => {});
    return { code, signal, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** A CLI that keeps running (`watch`): its stdout line by line, its stderr collected. */
export interface RunningCli {
  readonly pid: number;
  /** The next stdout line; rejects after `timeoutMs` (default 10 s) or when the CLI exits first. */
  nextLine(timeoutMs?: number): Promise<string>;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Sends `signal` and resolves how it ended (SIGKILL after `timeoutMs`, default 10 s). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<CliResult & { readonly rest: string[] }>;
}

/** Starts the CLI and hands its output over as it comes. */
export function startCli(args: readonly string[], options: CliOptions = {}): RunningCli {
  const child = spawnCli(args, options);
  if (child.stdin) child.stdin.end(options.stdin ?? '');
  const lines: string[] = [];
  const waiters: ((line: string | undefined) => void)[] = [];
  let stdout = '';
  let stderr = '';
  let ended = false;
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const rl = createInterface({ input: child.stdout });
  rl.on('line', (line) => {
    stdout += `${line}\n`;
    const w = waiters.shift();
    if (w) w(line);
    else lines.push(line);
  });
  rl.on('close', () => {
    ended = true;
    for (const w of waiters.splice(0)) w(undefined);
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const hardLimit = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  void exited.finally(() => clearTimeout(hardLimit));
  return {
    pid: child.pid!,
    nextLine(timeoutMs = 10_000) {
      const ready = lines.shift();
      if (ready !== undefined) return Promise.resolve(ready);
      if (ended) return Promise.reject(new Error(`the CLI ended; stderr:\n${stderr}`));
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = waiters.indexOf(take);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`no line from the CLI within ${timeoutMs} ms; stderr:\n${stderr}`));
        }, timeoutMs);
        const take = (line: string | undefined): void => {
          clearTimeout(timer);
          if (line === undefined) reject(new Error(`the CLI ended; stderr:\n${stderr}`));
          else resolve(line);
        };
        waiters.push(take);
      });
    },
    stderr: () => stderr,
    async stop(signal = 'SIGINT', timeoutMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        const [code, sig] = await exited;
        if (!ended) await once(rl, 'close').catch(() => {});
        return { code, signal: sig, stdout, stderr, rest: lines.splice(0) };
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** A word quoted for `/bin/sh`. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The CLI on a pseudo-terminal (util-linux `script`), as a person runs it. */
export interface PtyCli {
  /** Everything the terminal showed so far (stdout and stderr together, `\r\n` line ends). */
  output(): string;
  /** Types `text` (`\x03` is Ctrl-C: the terminal sends SIGINT). */
  type(text: string): void;
  /** Resolves once the output matches `pattern`; rejects after `timeoutMs` (default 15 s). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves the exit status once it ends (SIGKILL after `timeoutMs`, default 15 s). */
  exit(timeoutMs?: number): Promise<number | null>;
}

/**
 * Starts the CLI under `script -qfec`, so its stdin, stdout and stderr are a terminal, as a
 * person has it: TERM=xterm-256color and no `CI` (with `CI` set, Node reports a two-colour
 * terminal, so a CI run would see no colours where a person does).
 */
export function startCliInPty(args: readonly string[], options: Omit<CliOptions, 'stdin'> = {}): PtyCli {
  // exec: no shell stays between the terminal and the CLI. `script` runs the command under $SHELL,
  // or /bin/sh (dash) when SHELL is unset, as in CI; Ctrl-C signals the terminal's whole foreground
  // group, and dash can die of it while the CLI is still ending cleanly: status 130 instead of 0.
  const command = `exec ${[process.execPath, CLI_BIN, ...args].map(shellQuote).join(' ')}`;
  const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: options.cwd ?? ROOT, env: cliEnv({ TERM: 'xterm-256color', CI: undefined, ...options.env }), stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const hardLimit = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  void exited.finally(() => clearTimeout(hardLimit));
  return {
    output: () => output,
    type: (text) => void child.stdin.write(text),
    async waitFor(pattern, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(output)) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the terminal did not show ${String(pattern)} within ${timeoutMs} ms; it shows:\n${output}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async exit(timeoutMs = 15_000) {
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return (await exited)[0];
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
