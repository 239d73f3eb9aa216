/** `doctor`: reachability of every endpoint, versions, leader, round trips, session ttl, clocks. */
import { SharedStructError, type EndpointStatus } from '../../lib/index.js';
import type { Command } from '../command.js';
import { durationText, table } from '../output.js';

/** The CLI's own session ttl request (the library default). */
const ASKED_TTL_MS = 10_000;
/** A clock this far off is worth a word. */
const SKEW_HINT_MS = 2_000;

export const doctor: Command = {
  name: 'doctor',
  args: '',
  summary: 'check the store: every endpoint reachable, server version, leader, round trip, session ttl, clock skew',
  details: 'Exits 1 when an endpoint is unreachable or the cluster has no leader. --json prints { backend, connectMs, endpoints, session, roundTripMs, problems, hints }.',
  options: {},
  positionals: { required: [] },
  async run(ctx) {
    const started = Date.now();
    const client = await ctx.connect();
    const connectMs = Date.now() - started;
    const endpoints: EndpointStatus[] = await client.inspect.endpoints({ signal: ctx.signal });
    // Round trips through the client itself: a read of a key that does not exist, three times.
    const trips: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = Date.now();
      await client.inspect.listeners('sharedstruct-doctor', { signal: ctx.signal });
      trips.push(Date.now() - t);
    }
    const roundTripMs = trips.sort((a, b) => a - b)[1]!;
    const session = client.inspect.session();
    const problems: string[] = [];
    const hints: string[] = [];
    for (const e of endpoints) {
      if (!e.reachable) problems.push(`${e.endpoint} is unreachable${e.note ? `: ${e.note}` : ''}`);
      else if (e.note) hints.push(`${e.endpoint}: ${e.note}`);
      if (e.role === 'no leader') problems.push(`${e.endpoint} has no leader: is a majority of the members up?`);
      if (e.clockOffsetMs !== undefined && Math.abs(e.clockOffsetMs) >= SKEW_HINT_MS) {
        hints.push(`${e.endpoint}'s clock is about ${durationText(Math.abs(e.clockOffsetMs))} ${e.clockOffsetMs > 0 ? 'ahead of' : 'behind'} this host's: ages and timestamps (since, enqueuedAt) written by other hosts may mislead; sessions, leases and locks are timed by the server, so they are not affected`);
      }
    }
    if (client.backendKind === 'zookeeper') hints.push('ZooKeeper tells no time: compare `date` on the hosts for clock skew (sessions are timed by the server either way)');
    if (session.ttlMs !== ASKED_TTL_MS) {
      hints.push(`the server granted a session ttl of ${session.ttlMs} ms for the ${ASKED_TTL_MS} ms asked: its limits (ZooKeeper minSessionTimeout/maxSessionTimeout, 2 to 20 ticks) decide how long locks survive an unreachable holder`);
    }
    if (ctx.json) {
      ctx.out.json({ backend: client.backendKind, connectMs, endpoints, session, roundTripMs, problems, hints });
    } else {
      ctx.out.line(`${ctx.out.style('bold', client.backendKind)}: connected in ${durationText(connectMs)}, round trip ${durationText(roundTripMs)} (median of 3 reads)`);
      const rows = endpoints.map((e) => [
        e.endpoint,
        e.reachable ? ctx.out.style('green', 'ok') : ctx.out.style('red', 'unreachable'),
        e.version ?? '?',
        e.role ?? '?',
        e.roundTripMs !== undefined ? durationText(e.roundTripMs) : '',
        e.clockOffsetMs !== undefined ? `${e.clockOffsetMs >= 0 ? '+' : ''}${Math.round(e.clockOffsetMs / 1000)} s` : '',
      ]);
      for (const line of table(ctx.out, ['ENDPOINT', 'STATE', 'VERSION', 'ROLE', 'RTT', 'CLOCK'], rows)) ctx.out.line(line);
      ctx.out.line(`session ${session.id}: ${session.state}, ttl ${durationText(session.ttlMs)}`);
      for (const p of problems) ctx.out.line(ctx.out.style('red', `problem: ${p}`));
      for (const h of hints) ctx.out.line(ctx.out.style('yellow', `hint: ${h}`));
      if (problems.length === 0) ctx.out.line(ctx.out.style('green', 'no problems found'));
    }
    if (problems.length > 0) {
      throw new SharedStructError('CONNECTION', `${problems.length} problem(s) found: ${problems.join('; ')}`);
    }
  },
};
