/** `locks [NAME]` and `elections`: who holds, who waits, with tokens and ages. */
import type { QueueEntry } from '../../lib/index.js';
import type { Command, CommandContext } from '../command.js';
import { durationText, toJson } from '../output.js';
import { unreadableNodes } from '../structs.js';

function who(ctx: CommandContext, e: QueueEntry, now: number): string {
  const where = e.host !== undefined ? ` ${e.host}${e.pid !== undefined ? `:${e.pid}` : ''}` : '';
  const age = e.since !== undefined ? `, queued ${durationText(now - e.since)} ago` : '';
  const ttl = e.ttlMs !== undefined ? `, session ttl ${durationText(e.ttlMs)}` : '';
  const data = e.data !== undefined && e.data !== null ? ` ${toJson(e.data)}` : '';
  return `${ctx.out.style('bold', e.id)}${where} token ${e.token}${age}${ttl}${data}`;
}

export const locks: Command = {
  name: 'locks',
  args: '[NAME]',
  summary: 'list held locks (and struct write locks): holder, waiting queue, fencing tokens, ages',
  details: '--json prints an array of { name, kind, holder, waiting } (each { id, token, host, pid, since, ttlMs, ephemeral }).',
  options: {},
  positionals: { required: [], optional: ['NAME'] },
  async run(ctx) {
    const name = ctx.positionals[0];
    const client = await ctx.connect();
    const unreadable = unreadableNodes(ctx);
    const found = await client.inspect.locks({ ...(name !== undefined && { name }), signal: ctx.signal, onUnreadable: unreadable.onUnreadable });
    if (ctx.json) ctx.out.json(found);
    else if (found.length === 0) ctx.err.line(name ? `lock '${name}' is free in ${client.namespace}` : `no lock is held in ${client.namespace}`);
    else {
      const now = Date.now();
      for (const lock of found) {
        ctx.out.line(`${ctx.out.style('bold', lock.name)}${lock.kind === 'write_lock' ? ' (write lock of the struct)' : ''}: ${lock.waiting.length} waiting`);
        if (lock.holder) ctx.out.line(`  held by ${who(ctx, lock.holder, now)}`);
        lock.waiting.forEach((w, i) => ctx.out.line(`  ${i + 1}. ${who(ctx, w, now)}`));
      }
    }
    unreadable.report();
  },
};

export const elections: Command = {
  name: 'elections',
  args: '',
  summary: 'list elections with candidates: the leader, its token, the queue behind it',
  details: '--json prints an array of { name, leader, candidates }.',
  options: {},
  positionals: { required: [] },
  async run(ctx) {
    const client = await ctx.connect();
    const unreadable = unreadableNodes(ctx);
    const found = await client.inspect.elections({ signal: ctx.signal, onUnreadable: unreadable.onUnreadable });
    if (ctx.json) ctx.out.json(found);
    else if (found.length === 0) ctx.err.line(`no election has candidates in ${client.namespace}`);
    else {
      const now = Date.now();
      for (const e of found) {
        ctx.out.line(`${ctx.out.style('bold', e.name)}: ${e.candidates.length} more candidate(s)`);
        if (e.leader) ctx.out.line(`  leader ${who(ctx, e.leader, now)}`);
        e.candidates.forEach((c, i) => ctx.out.line(`  ${i + 1}. ${who(ctx, c, now)}`));
      }
    }
    unreadable.report();
  },
};
