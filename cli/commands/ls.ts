/** `ls [PREFIX]`: the structs of the namespace. */
import type { Command } from '../command.js';
import { table } from '../output.js';
import { unreadableNodes } from '../structs.js';

export const ls: Command = {
  name: 'ls',
  args: '[PREFIX]',
  summary: 'list the structs of the namespace: version, size, layout, listeners, server queue',
  details: '--json prints an array of { name, version, revision, sizeBytes, layout, listeners, server? }.',
  options: {},
  positionals: { required: [], optional: ['PREFIX'] },
  async run(ctx) {
    const prefix = ctx.positionals[0];
    const client = await ctx.connect();
    const unreadable = unreadableNodes(ctx);
    const structs = await client.inspect.structs({ ...(prefix !== undefined && { prefix }), signal: ctx.signal, onUnreadable: unreadable.onUnreadable });
    if (ctx.json) ctx.out.json(structs);
    else if (structs.length === 0) ctx.err.line(`no structs in ${client.namespace}${prefix ? ` starting with '${prefix}'` : ''}`);
    else {
      const rows = structs.map((s) => [s.name, String(s.version), `${s.sizeBytes} B`, s.layout, String(s.listeners), s.server ? `${s.server.pending} pending, ${s.server.dead} dead` : '']);
      for (const line of table(ctx.out, ['NAME', 'VERSION', 'SIZE', 'LAYOUT', 'LISTENERS', 'SERVER'], rows)) ctx.out.line(line);
    }
    unreadable.report();
  },
};
