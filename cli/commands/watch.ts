/** `watch NAME [--codec NAME]`: every committed change as it arrives, until Ctrl-C. */
import { isSharedStructError } from '../../lib/index.js';
import type { Command } from '../command.js';
import { diffLines, toJson } from '../output.js';
import { CODEC_OPTION, codecOption, openStruct } from '../structs.js';

export const watch: Command = {
  name: 'watch',
  args: 'NAME',
  summary: 'print live diffs of a struct as they commit (version, origin, revision) until Ctrl-C',
  details:
    'The first event is the current value (origin resync, previousVersion 0). Connection and session changes are said on\n' +
    'stderr; the watch survives reconnects. --json prints one line per event:\n' +
    '{ name, version, previousVersion, revision, origin, coalesced, at, changes, value }, and { name, deleted: true, revision } on a delete.',
  options: { codec: CODEC_OPTION },
  positionals: { required: ['NAME'] },
  async run(ctx) {
    const name = ctx.positionals[0]!;
    const codec = codecOption(ctx);
    const client = await ctx.connect();
    client.on('state', ({ state, epoch, cause }) => {
      const why = cause ? ` (${cause.code}: ${cause.message})` : '';
      const what: Record<string, string> = {
        suspended: `connection to the store lost${why}; still watching, waiting for it to come back`,
        reconnected: `reconnected (session ${epoch}); caught up with every change meanwhile`,
        lost: `the session expired${why}; a new one is being opened and the value re-read`,
        connected: `connected (session ${epoch})`,
        closed: 'closed',
      };
      if (state !== 'closed') ctx.err.line(ctx.err.style('yellow', `${name}: ${what[state] ?? state}`));
    });
    await using struct = await openStruct(client, name, { codec, signal: ctx.signal });
    struct.on('error', (err) => ctx.err.line(ctx.err.style('yellow', `${name}: ${err.code}: ${err.message}`)));
    struct.on('deleted', ({ revision }) => {
      if (ctx.json) ctx.out.json({ name, deleted: true, revision });
      else ctx.out.line(ctx.out.style('red', `${name} deleted at revision ${revision}`));
    });
    if (!ctx.json) ctx.err.line(ctx.err.style('dim', `watching ${name} in ${client.namespace} (${client.backendKind}); Ctrl-C to stop`));
    try {
      for await (const ev of struct.changes({ includeInitial: true, signal: ctx.signal })) {
        const at = new Date().toISOString();
        if (ctx.json) {
          ctx.out.json({ name, version: ev.version, previousVersion: ev.previousVersion, revision: ev.revision, origin: ev.origin, coalesced: ev.coalesced, at, changes: ev.changes, value: ev.value });
          continue;
        }
        if (ev.previousVersion === 0) {
          ctx.out.line(ctx.out.style('bold', `${name} v${ev.version}`) + ctx.out.style('dim', ` revision ${ev.revision} ${at}`));
          ctx.out.line(toJson(ev.value, 2));
          continue;
        }
        const skipped = ev.coalesced ? ctx.out.style('yellow', ` (versions ${ev.previousVersion + 1}..${ev.version - 1} coalesced)`) : '';
        ctx.out.line(ctx.out.style('bold', `${name} v${ev.previousVersion} → v${ev.version}`) + ctx.out.style('cyan', ` ${ev.origin}`) + ctx.out.style('dim', ` revision ${ev.revision} ${at}`) + skipped);
        for (const line of diffLines(ctx.out, ev.changes)) ctx.out.line(`  ${line}`);
      }
    } catch (err) {
      // Ctrl-C: the iterator ends with ABORTED; that is the normal end of a watch.
      if (!(ctx.signal.aborted && isSharedStructError(err, 'ABORTED'))) throw err;
    }
    if (!ctx.json) ctx.err.line(ctx.err.style('dim', `stopped watching ${name}`));
  },
};
