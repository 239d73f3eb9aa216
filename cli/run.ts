/**
 * The CLI's driver: parses the command line with `util.parseArgs`, runs the command, and maps
 * the outcome to the exit status (0 success, 2 usage error, 1 anything else) with the error's
 * code and message on stderr (the stack and causes only with `--debug`).
 */
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { inspect, parseArgs, type ParseArgsConfig } from 'node:util';
import { SharedStructError, connect, isSharedStructError, type Client, type ConnectOptions, type Logger } from '../lib/index.js';
import { isUsageError, usageError, type Command, type CommandContext, type OptionSpec } from './command.js';
import { COMMANDS } from './commands/index.js';
import { Printer, type OutStream } from './output.js';

/** Options every command takes. */
export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  url: { type: 'string', short: 'u', value: 'URL', description: 'the store: memory://, etcd://HOST:2379[,HOST:2379], zk://HOST:2181[/chroot] (env SHAREDSTRUCT_URL)' },
  namespace: { type: 'string', short: 'n', value: 'NS', description: "the namespace, '' or /a/b (env SHAREDSTRUCT_NAMESPACE; default /sharedstruct)" },
  json: { type: 'boolean', description: 'JSON on stdout for scripts (watch: one line per event)' },
  'timeout-ms': { type: 'string', value: 'MS', description: 'deadline of the connection and of each request (default 5000)' },
  user: { type: 'string', value: 'NAME', description: 'connect as this user (etcd user, ZooKeeper digest identity; env SHAREDSTRUCT_USER); the password from env SHAREDSTRUCT_PASSWORD or --password-file' },
  'password-file': { type: 'string', value: 'FILE', description: "the user's password, the file's first line (env SHAREDSTRUCT_PASSWORD_FILE)" },
  tls: { type: 'boolean', description: "TLS to the store with Node's root certificates (implied by --ca, --cert, --key)" },
  ca: { type: 'string', value: 'FILE', description: "PEM CA certificate(s) the server's certificate must chain to (env SHAREDSTRUCT_CA)" },
  cert: { type: 'string', value: 'FILE', description: 'PEM client certificate, for mutual TLS; needs --key (env SHAREDSTRUCT_CERT)' },
  key: { type: 'string', value: 'FILE', description: 'PEM private key of --cert (env SHAREDSTRUCT_KEY)' },
  servername: { type: 'string', value: 'NAME', description: "the name the server's certificate must carry (default: the URL's host)" },
  debug: { type: 'boolean', description: 'on errors, the stack and every cause; the library log on stderr' },
  help: { type: 'boolean', short: 'h', description: 'this help, or a command\'s with COMMAND --help' },
  version: { type: 'boolean', short: 'V', description: 'the version of sharedstruct' },
};

/** Where the CLI reads and writes (the process's own streams, or a test's). */
export interface Io {
  readonly stdout: OutStream;
  readonly stderr: OutStream;
  readonly stdin: Readable & { readonly isTTY?: boolean };
  readonly env: NodeJS.ProcessEnv;
  /** Aborted to stop a long-running command (SIGINT). */
  readonly signal: AbortSignal;
}

function parseConfig(options: Readonly<Record<string, OptionSpec>>): NonNullable<ParseArgsConfig['options']> {
  const out: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, spec] of Object.entries(options)) out[name] = { type: spec.type, ...(spec.short !== undefined && { short: spec.short }) };
  return out;
}

/** Every option of every command: what the first pass needs to find the command's name. */
function allOptions(): Record<string, OptionSpec> {
  const all: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS };
  for (const c of COMMANDS) Object.assign(all, c.options);
  return all;
}

/** The package's version, from the package.json above this file (in the repository or installed). */
export function packageVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'sharedstruct' && pkg.version) return pkg.version;
    } catch {
      // not at this level
    }
  }
  return 'unknown';
}

function optionLines(options: Readonly<Record<string, OptionSpec>>): string[] {
  const rows = Object.entries(options).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.value ? ` ${spec.value}` : ''}`;
    return [flag, spec.description] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length));
  return rows.map(([f, d]) => `  ${f.padEnd(width)}  ${d}`);
}

/** The help of the CLI, or of one command. */
export function helpText(command?: Command): string {
  if (command) {
    return [
      `Usage: sharedstruct [options] ${command.name} ${command.args}`.trimEnd(),
      '',
      command.summary,
      ...(command.details ? ['', command.details] : []),
      ...(Object.keys(command.options).length > 0 ? ['', 'Options:', ...optionLines(command.options)] : []),
      '',
      'Global options:',
      ...optionLines(GLOBAL_OPTIONS),
      '',
    ].join('\n');
  }
  const width = Math.max(...COMMANDS.map((c) => `${c.name} ${c.args}`.length));
  return [
    'Usage: sharedstruct [options] COMMAND [arguments]',
    '',
    'Inspect, edit and watch the structs, members, locks and queues of sharedstruct in etcd, ZooKeeper or memory.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${`${c.name} ${c.args}`.padEnd(width)}  ${c.summary}`),
    '',
    'Global options:',
    ...optionLines(GLOBAL_OPTIONS),
    '',
    "Exit status: 0 success, 2 usage error, 1 anything else (the error's code and message on stderr).",
    "Run 'sharedstruct COMMAND --help' for a command's options. Docs: docs/CLI.md.",
    '',
  ].join('\n');
}

interface Parsed {
  readonly command: Command | undefined;
  readonly values: Record<string, string | boolean | undefined>;
  readonly positionals: string[];
}

function parse(argv: readonly string[]): Parsed {
  // First pass, lenient, knowing every option: only to find the command's name.
  const first = parseArgs({ args: [...argv], options: parseConfig(allOptions()), strict: false, allowPositionals: true, tokens: true });
  const nameToken = first.tokens.find((t) => t.kind === 'positional');
  if (!nameToken) {
    const values = parseArgs({ args: [...argv], options: parseConfig(GLOBAL_OPTIONS), strict: true, allowPositionals: false }).values;
    return { command: undefined, values: values as Parsed['values'], positionals: [] };
  }
  const command = COMMANDS.find((c) => c.name === nameToken.value);
  if (!command) throw usageError(`unknown command '${nameToken.value}' (commands: ${COMMANDS.map((c) => c.name).join(', ')})`);
  const args = [...argv.slice(0, nameToken.index), ...argv.slice(nameToken.index + 1)];
  const { values, positionals } = parseArgs({ args, options: parseConfig({ ...GLOBAL_OPTIONS, ...command.options }), strict: true, allowPositionals: true });
  return { command, values: values as Parsed['values'], positionals };
}

function checkPositionals(command: Command, positionals: readonly string[]): void {
  const { required, optional = [] } = command.positionals;
  if (positionals.length < required.length) {
    throw usageError(`${command.name}: missing ${required.slice(positionals.length).join(' ')} (usage: sharedstruct ${command.name} ${command.args})`);
  }
  if (positionals.length > required.length + optional.length) {
    throw usageError(`${command.name}: unexpected argument '${positionals[required.length + optional.length]}' (usage: sharedstruct ${command.name} ${command.args})`);
  }
}

function readOptionFile(option: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new SharedStructError('INVALID_ARGUMENT', `cannot read ${option} ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/**
 * `auth` and `tls` from `--user` (the password only from the environment or a file: a command
 * line is visible to every user of the machine in `ps`) and `--tls` / `--ca` / `--cert` / `--key`.
 */
export function securityOptions(values: Parsed['values'], env: NodeJS.ProcessEnv): Pick<ConnectOptions, 'auth' | 'tls'> {
  const pick = (option: string, variable: string): string | undefined => {
    const v = values[option];
    return typeof v === 'string' ? v : env[variable] !== undefined && env[variable] !== '' ? env[variable] : undefined;
  };
  const out: { auth?: ConnectOptions['auth']; tls?: ConnectOptions['tls'] } = {};
  const username = pick('user', 'SHAREDSTRUCT_USER');
  const passwordFile = pick('password-file', 'SHAREDSTRUCT_PASSWORD_FILE');
  if (username !== undefined) {
    const password = passwordFile !== undefined ? readOptionFile('--password-file', passwordFile).split(/\r?\n/)[0]! : env.SHAREDSTRUCT_PASSWORD;
    if (password === undefined) throw usageError(`--user ${username}: no password: set SHAREDSTRUCT_PASSWORD or pass --password-file FILE (never on the command line, where ps shows it)`);
    out.auth = { username, password };
  } else if (passwordFile !== undefined) {
    throw usageError('--password-file needs --user NAME (or SHAREDSTRUCT_USER)');
  }
  const ca = pick('ca', 'SHAREDSTRUCT_CA');
  const cert = pick('cert', 'SHAREDSTRUCT_CERT');
  const key = pick('key', 'SHAREDSTRUCT_KEY');
  const servername = pick('servername', 'SHAREDSTRUCT_SERVERNAME');
  if ((cert === undefined) !== (key === undefined)) throw usageError(cert === undefined ? '--key needs --cert (the client certificate it belongs to)' : '--cert needs --key (its private key)');
  if (values.tls === true || ca !== undefined || cert !== undefined || servername !== undefined) {
    out.tls = {
      ...(ca !== undefined && { ca: readOptionFile('--ca', ca) }),
      ...(cert !== undefined && { cert: readOptionFile('--cert', cert) }),
      ...(key !== undefined && { key: readOptionFile('--key', key) }),
      ...(servername !== undefined && { servername }),
    };
  }
  return out;
}

/** A logger that sends the library's warnings (and with `--debug` everything) to stderr. */
function stderrLogger(err: Printer, debug: boolean): Logger {
  const write = (level: string, message: string, fields?: Record<string, unknown>): void => {
    const detail = fields && Object.keys(fields).length > 0 ? ` ${safeFields(fields)}` : '';
    err.line(err.style('dim', `[sharedstruct ${level}] ${message}${detail}`));
  };
  return {
    debug: (m, f) => debug && write('debug', m, f),
    info: (m, f) => debug && write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}

function safeFields(fields: Record<string, unknown>): string {
  try {
    return JSON.stringify(fields, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Error ? `${v.name}: ${v.message}` : v));
  } catch {
    return '';
  }
}

/** Writes an error as `sharedstruct: CODE: message`; with `debug`, its stack and causes. */
export function reportError(err: Printer, e: unknown, debug: boolean): void {
  const head = isSharedStructError(e) ? `${e.code}: ${e.message}` : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  err.line(`${err.style('red', 'sharedstruct:')} ${head}`);
  if (!debug) return;
  let cause: unknown = e;
  for (let depth = 0; cause !== undefined && depth < 8; depth++) {
    if (depth > 0) err.line(err.style('dim', 'caused by:'));
    err.line(err.style('dim', cause instanceof Error ? (cause.stack ?? cause.message) : inspect(cause)));
    cause = cause instanceof Error ? cause.cause : undefined;
  }
}

/**
 * Runs the CLI on `argv` (without `node` and the script) and resolves the exit status.
 * Never rejects: every failure is reported on `io.stderr`.
 */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  const out = new Printer(io.stdout, io.env);
  const err = new Printer(io.stderr, io.env);
  let debug = argv.includes('--debug');
  let client: Promise<Client> | undefined;
  try {
    let parsed: Parsed;
    try {
      parsed = parse(argv);
    } catch (e) {
      if (isUsageError(e)) throw e;
      // parseArgs' own errors (ERR_PARSE_ARGS_UNKNOWN_OPTION, ...): usage errors in its words.
      throw usageError(e instanceof Error ? e.message.replace(/\. To specify a positional argument starting with a '-'.*$/s, '') : String(e));
    }
    const { command, values, positionals } = parsed;
    debug = values.debug === true;
    if (values.version === true && !command) {
      out.line(packageVersion());
      return 0;
    }
    if (values.help === true || !command) {
      if (!command && values.help !== true) throw usageError("missing COMMAND; run 'sharedstruct --help' for the commands");
      out.stream.write(helpText(command));
      return 0;
    }
    checkPositionals(command, positionals);
    const url = typeof values.url === 'string' ? values.url : io.env.SHAREDSTRUCT_URL;
    const namespace = typeof values.namespace === 'string' ? values.namespace : io.env.SHAREDSTRUCT_NAMESPACE;
    const timeoutText = typeof values['timeout-ms'] === 'string' ? values['timeout-ms'] : '5000';
    const timeoutMs = /^\d+$/.test(timeoutText) ? Number(timeoutText) : NaN;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw usageError(`option '--timeout-ms' must be an integer >= 1, got '${timeoutText}'`);
    const security = securityOptions(values, io.env);
    const logger = stderrLogger(err, debug);
    const ctx: CommandContext = {
      values,
      positionals,
      out,
      err,
      stdin: io.stdin,
      env: io.env,
      interactive: io.stdin.isTTY === true && io.stderr.isTTY === true,
      json: values.json === true,
      signal: io.signal,
      connect() {
        if (url === undefined || url === '') throw usageError('no store given: pass --url URL or set SHAREDSTRUCT_URL (memory://, etcd://HOST:2379, zk://HOST:2181)');
        client ??= connect(url, { ...(namespace !== undefined && { namespace }), ...security, connectTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs, logger });
        return client;
      },
    };
    await command.run(ctx);
    return 0;
  } catch (e) {
    reportError(err, e, debug);
    return isUsageError(e) ? 2 : 1;
  } finally {
    if (client) await client.then((c) => c.close()).catch(() => {});
  }
}
