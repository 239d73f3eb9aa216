/** Opening structs and reading values the way every struct command does. */
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { SharedStructError, isSharedStructError, jsonCodec, loadSchema, msgpackCodec, schemaNames, type Client, type Codec, type SharedStruct } from '../lib/index.js';
import { usageError, type CommandContext, type OptionSpec } from './command.js';

/** The listener data the CLI registers with, so `listeners` tells it from applications. */
export const CLI_LISTENER_DATA = Object.freeze({ tool: 'sharedstruct-cli' });

/** The codecs `--codec` names: the library's own, by their recorded names. */
const CODECS: readonly Codec[] = [jsonCodec, msgpackCodec];
const CODEC_NAMES = CODECS.map((c) => c.name).join(', ');

/** `--codec NAME`, taken by every command that reads or writes a struct's value. */
export const CODEC_OPTION: OptionSpec = { type: 'string', value: 'NAME', description: `the codec the struct's value is stored with: ${CODEC_NAMES} (default json)` };

/** The codec `--codec` names (JSON when not given); a usage error for an unknown name. */
export function codecOption(ctx: CommandContext): Codec {
  const name = ctx.values.codec;
  if (name === undefined) return jsonCodec;
  const codec = CODECS.find((c) => c.name === name);
  if (!codec) throw usageError(`--codec ${String(name)}: no codec of that name (known: ${CODEC_NAMES})`);
  return codec;
}

/** What the struct commands open with: the CLI's listener data, and optionally a schema and initial value. */
export interface CliOpenOptions {
  readonly codec: Codec;
  readonly schema?: object | undefined;
  readonly initial?: unknown;
  readonly signal: AbortSignal;
}

/**
 * Opens `name` (created from `initial` when given, in the value layout), errors in the CLI's words.
 * A struct stored in the other layout is opened in that one: the layout is the writer's choice,
 * and the CLI reads and writes either (the library's error names the stored layout in `details`).
 */
export async function openStruct(client: Client, name: string, options: CliOpenOptions): Promise<SharedStruct<unknown>> {
  const { schema, initial, ...rest } = options;
  const open = (layout: 'value' | 'fields'): Promise<SharedStruct<unknown>> =>
    client.open<unknown>(name, { data: CLI_LISTENER_DATA, ...rest, layout, ...(schema && { schema }), ...(initial !== undefined && { initial }) });
  try {
    try {
      return await open('value');
    } catch (err) {
      const stored = isSharedStructError(err, 'INVALID_ARGUMENT') ? (err.details as { layout?: unknown } | undefined)?.layout : undefined;
      if (stored !== 'fields') throw err;
      return await open('fields');
    }
  } catch (err) {
    throw inCliWords(client, name, err);
  }
}

/** Opens the struct the command's first argument names, which must exist, with `--codec`. */
export async function openArgument(ctx: CommandContext): Promise<SharedStruct<unknown>> {
  const codec = codecOption(ctx);
  return openStruct(await ctx.connect(), ctx.positionals[0]!, { codec, signal: ctx.signal });
}

/**
 * A library error about struct `name` in the CLI's words: `NOT_FOUND` says what to type, a value
 * the codec cannot read points at `--codec`; other errors as they are.
 */
export function inCliWords(client: Client, name: string, err: unknown): unknown {
  if (isSharedStructError(err, 'NOT_FOUND')) {
    return new SharedStructError('NOT_FOUND', `struct '${name}' does not exist in namespace '${client.namespace}'; check the name and --namespace, or create it with 'sharedstruct set ${name} JSON'`, { cause: err });
  }
  if (isSharedStructError(err, 'CORRUPT_REMOTE_VALUE')) {
    return new SharedStructError('CORRUPT_REMOTE_VALUE', `${err.message}; if it was written with another codec, pass --codec NAME (${CODEC_NAMES})`, { cause: err });
  }
  return err;
}

/** Parses JSON text from `where` (an argument, a file, stdin): `INVALID_VALUE` with the parser's words. */
export function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new SharedStructError('INVALID_VALUE', `${where} is not valid JSON: ${err instanceof Error ? err.message : String(err)}; nothing was written`, { cause: err });
  }
}

async function readStream(stream: Readable): Promise<string> {
  let text = '';
  stream.setEncoding('utf8');
  for await (const chunk of stream) text += chunk as string;
  return text;
}

/** The value of `set`: the JSON argument, `-f FILE`, or `-` (stdin). Exactly one of them. */
export async function valueArgument(ctx: CommandContext, arg: string | undefined): Promise<unknown> {
  const file = ctx.values.file;
  if (typeof file === 'string') {
    if (arg !== undefined) throw usageError(`set: give the value either as an argument or with -f FILE, not both`);
    const text = await readFile(file, 'utf8').catch((err: unknown) => {
      throw new SharedStructError('INVALID_ARGUMENT', `cannot read -f ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    });
    return parseJson(text, `file ${file}`);
  }
  if (arg === undefined) throw usageError("set: missing the value: JSON, -f FILE, or - for stdin (usage: sharedstruct set NAME JSON|-f FILE|-)");
  if (arg === '-') return parseJson(await readStream(ctx.stdin), 'stdin');
  return parseJson(arg, 'the value argument');
}

/** `--schema NAME|FILE`: a schema shipped with the package by name, or a JSON Schema file. */
export async function schemaOption(ctx: CommandContext): Promise<object | undefined> {
  const schema = ctx.values.schema;
  if (typeof schema !== 'string') return undefined;
  if (schemaNames().includes(schema)) return loadSchema(schema);
  if (/^[a-z0-9][a-z0-9-]*$/.test(schema) && !schema.endsWith('.json')) {
    throw usageError(`--schema ${schema}: no shipped schema of that name (known: ${schemaNames().join(', ')}); give a file path for your own`);
  }
  const path = isAbsolute(schema) ? schema : resolve(schema);
  const text = await readFile(path, 'utf8').catch((err: unknown) => {
    throw new SharedStructError('INVALID_ARGUMENT', `cannot read --schema ${schema}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  });
  const parsed = parseJson(text, `schema file ${schema}`);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new SharedStructError('INVALID_ARGUMENT', `--schema ${schema}: a JSON Schema is an object`);
  return parsed;
}

/**
 * What `ls`, `locks` and `elections` do with nodes this identity may not read (a ZooKeeper ACL
 * denying READ): leave them out and say so on stderr once the listing is printed, instead of
 * failing the whole listing.
 */
export function unreadableNodes(ctx: CommandContext): { readonly onUnreadable: (key: string) => void; report(): void } {
  const keys: string[] = [];
  return {
    onUnreadable: (key) => void keys.push(key),
    report() {
      if (keys.length === 0) return;
      const shown = keys.slice(0, 5).join(', ') + (keys.length > 5 ? `, and ${keys.length - 5} more` : '');
      ctx.err.line(`sharedstruct: left out ${keys.length} node(s) this identity may not read (their ACL denies it; connect with the auth that created them to see them): ${shown}`);
    },
  };
}
