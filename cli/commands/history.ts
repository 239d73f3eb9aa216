/** `history NAME [--limit N] [--codec NAME]`: past versions with diffs (etcd; UNSUPPORTED on ZooKeeper). */
import { intOption, type Command } from '../command.js';
import { diffLines, toJson } from '../output.js';
import { CODEC_OPTION, codecOption } from '../structs.js';

export const history: Command = {
  name: 'history',
  args: 'NAME',
  summary: 'past versions of a struct with their diffs (etcd keeps revisions until compaction; not on ZooKeeper)',
  details:
    'Newest first. Where compaction removed older versions it says so. ZooKeeper keeps no past values: UNSUPPORTED (exit 1).\n' +
    '--json prints { name, versions: [{ version, revision, value, changes }], compactedBefore? }.',
  options: {
    limit: { type: 'string', value: 'N', description: 'at most N versions (default 10)' },
    codec: CODEC_OPTION,
  },
  positionals: { required: ['NAME'] },
  async run(ctx) {
    const name = ctx.positionals[0]!;
    const limit = intOption(ctx, 'limit', 1) ?? 10;
    const codec = codecOption(ctx);
    const client = await ctx.connect();
    const h = await client.inspect.history(name, { limit, codec, signal: ctx.signal });
    if (ctx.json) return ctx.out.json(h);
    for (const v of h.versions) {
      ctx.out.line(ctx.out.style('bold', `${name} v${v.version}`) + ctx.out.style('dim', ` revision ${v.revision}`));
      if (v.error) ctx.out.line(ctx.out.style('red', `  ${v.error}`));
      else if (v.version === 1) ctx.out.line(`  created: ${toJson(v.value)}`);
      else if (v.changes.length > 0) for (const line of diffLines(ctx.out, v.changes)) ctx.out.line(`  ${line}`);
      else ctx.out.line(`  ${toJson(v.value)}`);
    }
    const oldest = h.versions[h.versions.length - 1];
    if (h.compactedBefore !== undefined && oldest) {
      ctx.err.line(ctx.err.style('yellow', `versions before v${oldest.version} (revision ${h.compactedBefore}) were compacted: the store no longer keeps them`));
    } else if (oldest && oldest.version > 1) {
      ctx.err.line(ctx.err.style('dim', `older versions: sharedstruct history ${name} --limit ${limit * 2}`));
    }
  },
};
