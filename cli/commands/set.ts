/** `set NAME JSON|-f FILE|- [--if-version N] [--schema NAME|FILE] [--codec NAME]`: writes a struct. */
import { SharedStructError, diffValues, isSharedStructError, type Change, type SharedStruct } from '../../lib/index.js';
import { intOption, type Command } from '../command.js';
import { diffLines } from '../output.js';
import { CODEC_OPTION, codecOption, openStruct, schemaOption, valueArgument, type CliOpenOptions } from '../structs.js';

/**
 * Opens `name`, creating it with `value` when it does not exist (the library's create-if-absent).
 * `created`: our create is the one the store took (`struct.created`); a racing creator that won,
 * even with the very same value, leaves it `false`.
 */
async function openOrCreate(open: (initial?: unknown) => Promise<SharedStruct<unknown>>, value: unknown): Promise<{ struct: SharedStruct<unknown>; created: boolean }> {
  try {
    return { struct: await open(), created: false };
  } catch (err) {
    if (!isSharedStructError(err, 'NOT_FOUND')) throw err;
  }
  const struct = await open(value);
  return { struct, created: struct.created };
}

export const set: Command = {
  name: 'set',
  args: 'NAME [JSON|-]',
  summary: 'write a struct (created when missing): one CAS with --if-version, else the retrying update',
  details:
    'The value is the JSON argument, the file of -f FILE, or stdin with -. Without --if-version the write retries on\n' +
    'conflicts (update) and creates the struct if it does not exist; with --if-version N it is one compare-and-set\n' +
    'on version N and fails CONFLICT (exit 1) if the struct moved on; --if-version 0 only creates it, and fails\n' +
    'CONFLICT naming its version if it exists. --schema validates the value first (SCHEMA_VALIDATION, nothing written).\n' +
    '--codec writes (and reads) the value with that codec. Prints the diff; --json prints\n' +
    '{ name, version, previousVersion, created, changes }.',
  options: {
    file: { type: 'string', short: 'f', value: 'FILE', description: 'read the value from FILE' },
    'if-version': { type: 'string', value: 'N', description: 'write only if the struct is at version N, 0: only if it does not exist (one attempt)' },
    schema: { type: 'string', value: 'NAME|FILE', description: 'validate against a shipped schema (flags, ...) or a JSON Schema file' },
    codec: CODEC_OPTION,
  },
  positionals: { required: ['NAME'], optional: ['JSON'] },
  async run(ctx) {
    const name = ctx.positionals[0]!;
    const ifVersion = intOption(ctx, 'if-version', 0);
    const codec = codecOption(ctx);
    const value = await valueArgument(ctx, ctx.positionals[1]);
    const schema = await schemaOption(ctx);
    const client = await ctx.connect();
    const options: CliOpenOptions = { codec, schema, signal: ctx.signal };
    let before: unknown;
    let previousVersion = 0;
    let version: number;
    let created = false;
    if (ifVersion !== undefined && ifVersion > 0) {
      await using struct = await openStruct(client, name, options);
      before = struct.readDirty();
      version = (await struct.compareAndSet(ifVersion, value, { signal: ctx.signal })).version;
      previousVersion = ifVersion;
    } else {
      const opened = await openOrCreate((initial) => openStruct(client, name, { ...options, initial }), value);
      await using struct = opened.struct;
      created = opened.created;
      version = struct.stat().version;
      if (ifVersion === 0 && !created) {
        throw new SharedStructError('CONFLICT', `struct '${name}' already exists (now at version ${version}); nothing was written: pass --if-version ${version} to replace that version, or leave --if-version out`);
      }
      if (!created) {
        const written = await struct.update(
          () => {
            // The value this attempt starts from (frozen, so kept as is; the draft is a proxy).
            before = struct.readDirty();
            previousVersion = struct.stat().version;
            return value;
          },
          { signal: ctx.signal },
        );
        version = written.version;
      }
    }
    const changes: Change[] = diffValues(before, value);
    if (ctx.json) {
      ctx.out.json({ name, version, previousVersion, created, changes });
      return;
    }
    const what = created ? 'created' : previousVersion === version ? 'unchanged' : `version ${previousVersion} → ${version}`;
    ctx.err.line(`${name}: ${what}`);
    if (!created) for (const line of diffLines(ctx.err, changes)) ctx.err.line(line);
  },
};
