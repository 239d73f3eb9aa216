/** `queue NAME [--retry ID | --drop ID]`: a durable server's queue and dead letters. */
import { usageError, type Command } from '../command.js';
import { durationText, table, toJson } from '../output.js';
import { CODEC_OPTION, codecOption, inCliWords } from '../structs.js';

export const queue: Command = {
  name: 'queue',
  args: 'NAME',
  summary: "a durable server's queue: pending count, head, claims, dead letters; --retry / --drop a dead letter",
  details:
    '--retry ID puts dead letter ID back at the end of the queue (attempts reset); --drop ID deletes it for good.\n' +
    "--codec NAME opens a server whose state is stored with that codec (messages are always JSON).\n" +
    '--json prints { name, pending, claimed, head, dead } (or the retried / dropped id).',
  options: {
    retry: { type: 'string', value: 'ID', description: 'requeue dead letter ID' },
    drop: { type: 'string', value: 'ID', description: 'delete dead letter ID' },
    codec: CODEC_OPTION,
  },
  positionals: { required: ['NAME'] },
  async run(ctx) {
    const name = ctx.positionals[0]!;
    const retry = ctx.values.retry;
    const drop = ctx.values.drop;
    if (typeof retry === 'string' && typeof drop === 'string') throw usageError('queue: give --retry or --drop, not both');
    const codec = codecOption(ctx);
    const client = await ctx.connect();
    const server = await client.server(name, { codec, signal: ctx.signal }).catch((err: unknown) => {
      throw inCliWords(client, name, err);
    });
    try {
      if (typeof retry === 'string') {
        const { id } = await server.retry(retry, { signal: ctx.signal });
        if (ctx.json) ctx.out.json({ name, retried: retry, id });
        else ctx.err.line(`${name}: dead letter ${retry} is queued again as ${id}`);
        return;
      }
      if (typeof drop === 'string') {
        await server.drop(drop, { signal: ctx.signal });
        if (ctx.json) ctx.out.json({ name, dropped: drop });
        else ctx.err.line(`${name}: dead letter ${drop} dropped`);
        return;
      }
      const [pending, dead] = await Promise.all([server.pending({ signal: ctx.signal }), server.deadLetters({ signal: ctx.signal })]);
      const claimed = pending.filter((m) => m.claimed).length;
      if (ctx.json) return ctx.out.json({ name, pending: pending.length, claimed, head: pending[0] ?? null, dead });
      const now = Date.now();
      ctx.out.line(`${ctx.out.style('bold', name)}: ${pending.length} pending (${claimed} claimed), ${dead.length} dead letter(s)`);
      const head = pending[0];
      if (head) ctx.out.line(`  head ${head.id}: queued ${durationText(now - head.enqueuedAt)} ago, ${head.attempts} failed attempt(s)${head.claimed ? ', claimed' : ''}: ${toJson(head.msg)}`);
      if (dead.length > 0) {
        ctx.out.line('');
        const rows = dead.map((d) => [d.id, `${durationText(now - d.failedAt)} ago`, String(d.attempts), `${d.error.code ? `${d.error.code}: ` : ''}${d.error.message}`, toJson(d.msg)]);
        for (const line of table(ctx.out, ['DEAD LETTER', 'FAILED', 'ATTEMPTS', 'ERROR', 'MESSAGE'], rows)) ctx.out.line(line);
      }
    } finally {
      await server.close();
    }
  },
};
