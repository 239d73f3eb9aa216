/** `members GROUP` and `listeners NAME`: registrations, without joining or opening. */
import type { Member } from '../../lib/index.js';
import type { Command, CommandContext } from '../command.js';
import { durationText, table, toJson } from '../output.js';

function printMembers(ctx: CommandContext, members: readonly Member[], empty: string): void {
  if (ctx.json) return ctx.out.json(members);
  if (members.length === 0) return ctx.err.line(empty);
  const now = Date.now();
  const rows = members.map((m) => [m.id, m.since ? durationText(now - m.since) : '?', m.data === null || m.data === undefined ? '' : toJson(m.data)]);
  for (const line of table(ctx.out, ['ID', 'AGE', 'DATA'], rows)) ctx.out.line(line);
}

export const members: Command = {
  name: 'members',
  args: 'GROUP',
  summary: 'list the members of a group (client.join) with their age and data',
  details: '--json prints an array of { id, since, data }.',
  options: {},
  positionals: { required: ['GROUP'] },
  async run(ctx) {
    const group = ctx.positionals[0]!;
    const client = await ctx.connect();
    printMembers(ctx, await client.inspect.members(group, { signal: ctx.signal }), `group '${group}' has no members in ${client.namespace}`);
  },
};

export const listeners: Command = {
  name: 'listeners',
  args: 'NAME',
  summary: 'list the instances that have a struct open (host, pid, age), without opening it',
  details: '--json prints an array of { id, since, data } (data: host, pid and what the instance published).',
  options: {},
  positionals: { required: ['NAME'] },
  async run(ctx) {
    const name = ctx.positionals[0]!;
    const client = await ctx.connect();
    printMembers(ctx, await client.inspect.listeners(name, { signal: ctx.signal }), `struct '${name}' has no listeners in ${client.namespace}`);
  },
};
