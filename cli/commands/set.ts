/** `set NAME JSON|-f FILE|- [--if-version N] [--schema NAME|FILE]`: writes a struct. */
import { diffValues, isSharedStructError, type Change, type SharedStruct } from '../../lib/index.js';
import { intOption, type Command } from '../command.js';
import { diffLines } from '../output.js';
import { CLI_LISTENER_DATA, openExisting, schemaOption, valueArgument } from '../structs.js';

export const set: Command = {
  name: 'set',
  args: 'NAME [JSON|-]',
  summary: 'write a struct (created when missing): one CAS with --if-version, else the retrying update',
  details:
    'The value is the JSON argument, the file of -f FILE, or stdin with -. Without --if-version the write retries on\n' +
    'conflicts (update) and creates the struct if it does not exist; with --if-version N it is one compare-and-set\n' +
    'on version N and fails CONFLICT (exit 1) if the struct moved on. --schema validates the value first\n' +
    '(SCHEMA_VALIDATION, nothing written). Prints the diff; --json prints { name, version, previousVersion, created, changes }.',
  options: {
    file: { type: 'string', short: 'f', value: 'FILE', description: 'read the value from FILE' },
    'if-version': { type: 'string', value: 'N', description: 'write only if the struct is at version N (one attempt)' },
    schema: { type: 'string', value: 'NAME|FILE', description: 'validate against a shipped schema (flags, ...) or a JSON Schema file' },
  },
  positionals: { required: ['NAME'], optional: ['JSON'] },
  async run(ctx) {
    const name = ctx.positionals[0]!;
    const ifVersion = intOption(ctx, 'if-version', 1);
    const value = await valueArgument(ctx, ctx.positionals[1]);
    const schema = await schemaOption(ctx);
    const client = await ctx.connect();
    let before: unknown;
    let previousVersion = 0;
    let version: number;
    let created = false;
    if (ifVersion !== undefined) {
      await using struct = await openExisting(client, name, { ...(schema && { schema }), signal: ctx.signal });
      before = struct.readDirty();
      previousVersion = struct.stat().version;
      version = (await struct.compareAndSet(ifVersion, value, { signal: ctx.signal })).version;
      if (previousVersion !== ifVersion) previousVersion = ifVersion;
    } else {
      const options = { data: CLI_LISTENER_DATA, ...(schema && { schema }), signal: ctx.signal };
      let struct: SharedStruct<unknown>;
      try {
        struct = await client.open<unknown>(name, options);
      } catch (err) {
        if (!isSharedStructError(err, 'NOT_FOUND')) throw err;
        struct = await client.open<unknown>(name, { ...options, initial: value });
        // Ours when it is at version 1 with our value (else someone created it meanwhile: update it).
        created = struct.stat().version === 1 && diffValues(struct.readDirty(), value).length === 0;
      }
      await using _closing = struct;
      version = struct.stat().version;
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
