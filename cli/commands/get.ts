/** `get NAME [--consistent] [--codec NAME]`: the value, its version, revision and staleness. */
import type { Command } from '../command.js';
import { durationText, toJson } from '../output.js';
import { CODEC_OPTION, openArgument } from '../structs.js';

export const get: Command = {
  name: 'get',
  args: 'NAME',
  summary: 'print a struct: its value (stdout), version, revision and staleness (stderr)',
  details:
    'Opening a struct reads it linearizably. With --consistent the value is read from the store once more right before printing.\n' +
    '--json prints { name, value, version, revision, stalenessMs, consistent } on stdout.',
  options: {
    consistent: { type: 'boolean', description: 'read from the store right before printing (readConsistent)' },
    codec: CODEC_OPTION,
  },
  positionals: { required: ['NAME'] },
  async run(ctx) {
    const name = ctx.positionals[0]!;
    await using struct = await openArgument(ctx);
    const client = await ctx.connect();
    const consistent = ctx.values.consistent === true;
    const value = consistent ? await struct.readConsistent({ signal: ctx.signal }) : struct.read();
    const stat = struct.stat();
    if (ctx.json) {
      ctx.out.json({ name, value, version: stat.version, revision: stat.revision, stalenessMs: stat.stalenessMs, consistent });
      return;
    }
    ctx.out.line(toJson(value, 2));
    ctx.err.line(ctx.err.style('dim', `${name}: version ${stat.version}, revision ${stat.revision}, confirmed ${durationText(stat.stalenessMs)} ago (${client.backendKind})`));
  },
};
