/** What a command is (its arguments, options and run function) and what it runs with. */
import type { Readable } from 'node:stream';
import { SharedStructError, type Client } from '../lib/index.js';
import type { Printer } from './output.js';

/** One option of a command (or of every command). */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** What the value is called in the help (`N`, `FILE`). */
  readonly value?: string;
  readonly description: string;
}

/** What a running command gets. */
export interface CommandContext {
  /** The command's own options and the global ones, as parsed. */
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly positionals: readonly string[];
  readonly out: Printer;
  readonly err: Printer;
  readonly stdin: Readable;
  readonly env: NodeJS.ProcessEnv;
  /** Whether a person can answer a question (stdin and stderr are terminals). */
  readonly interactive: boolean;
  /** `--json`: one JSON document (or one JSON line per event) on stdout. */
  readonly json: boolean;
  /** Aborted on SIGINT / SIGTERM: long-running commands end cleanly. */
  readonly signal: AbortSignal;
  /** Connects with `--url` / `--namespace` (once; closed when the command ends). */
  connect(): Promise<Client>;
}

/** A command of the CLI. */
export interface Command {
  readonly name: string;
  /** Positional arguments as the help shows them: `NAME [JSON]`. */
  readonly args: string;
  readonly summary: string;
  /** Longer help: what it prints, what `--json` gives. */
  readonly details?: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Required positionals, then optional ones. */
  readonly positionals: { readonly required: readonly string[]; readonly optional?: readonly string[] };
  run(ctx: CommandContext): Promise<void>;
}

/**
 * A usage error (an unknown command or option, a missing or extra argument): exit status 2.
 * The library's one error class, `INVALID_ARGUMENT`, marked by its details.
 */
export function usageError(message: string): SharedStructError {
  return new SharedStructError('INVALID_ARGUMENT', message, { details: { usage: true } });
}

/** Whether `err` is a {@link usageError}. */
export function isUsageError(err: unknown): boolean {
  return err instanceof SharedStructError && typeof err.details === 'object' && err.details !== null && (err.details as { usage?: unknown }).usage === true;
}

/** An integer option's value, or undefined when not given; a usage error when it is not one. */
export function intOption(ctx: CommandContext, name: string, min: number): number | undefined {
  const raw = ctx.values[name];
  if (raw === undefined) return undefined;
  const n = typeof raw === 'string' && /^-?\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw usageError(`option '--${name}' must be an integer >= ${min}, got '${String(raw)}'`);
  return n;
}
