/**
 * A test agent in its own process: connects to a real store and plays one role, reporting every
 * step as a JSON line on stdout (`{"ev":...,"at":Date.now(),"pid":...}`). The parent kills,
 * freezes and restarts it by PID. Roles:
 * - `lock`: take the lock, then every 50 ms check `lock.held` and write to a fenced struct (the
 *   resource refuses a token lower than one it has seen); report `lost` when the check fails.
 * - `candidate`: campaign; report `elected` / `deposed`; campaign again after a deposition.
 * - `member`: join the group and stay.
 * - `increment`: `count` times `update(n => n + 1)` while folding its own subscriber's events;
 *   once the counter reaches `total`, report the fold, the versions seen and the local events.
 * - `reader`: every 20 ms a cached `read()` of a struct opened with `maxStalenessMs`; reports the
 *   version served (`read`) or `stale` (STALE_READ).
 * - `hold`: take the lock and keep it, checking `lock.held` every 20 ms (`step`) until it says no
 *   (`learned`), while a struct `<name>-noise` is open (someone else's writes keep traffic coming).
 * Usage: node --import tsx test/support/agent.ts '<json config>'. It exits on its own after
 * `lifetimeMs`, so nothing outlives the test run.
 */
import { applyChanges, connect, type Logger } from '../../lib/index.js';
import { sleep } from './process.js';

interface AgentConfig {
  url: string;
  namespace: string;
  sessionTtlMs: number;
  role: 'lock' | 'candidate' | 'member' | 'increment' | 'reader' | 'hold';
  /** Deadline of each request (default 1000 ms). */
  requestTimeoutMs?: number;
  /** `reader`: the struct's maxStalenessMs and refreshIntervalMs. */
  maxStalenessMs?: number;
  refreshIntervalMs?: number;
  /** `increment`: how many updates this agent makes, and the total all agents reach. */
  count?: number;
  total?: number;
  name: string;
  id: string;
  lifetimeMs: number;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as AgentConfig;
const out = (ev: string, fields: Record<string, unknown> = {}): void => {
  process.stdout.write(`${JSON.stringify({ ev, at: Date.now(), pid: process.pid, id: cfg.id, ...fields })}\n`);
};
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

setTimeout(() => {
  out('lifetime-over');
  process.exit(0);
}, cfg.lifetimeMs);

async function main(): Promise<void> {
  const client = await connect(cfg.url, { namespace: cfg.namespace, sessionTtlMs: cfg.sessionTtlMs, requestTimeoutMs: cfg.requestTimeoutMs ?? 1000, logger: quiet });
  client.on('state', (s) => out('state', { state: s.state, epoch: s.epoch }));
  out('connected');
  if (cfg.role === 'lock') {
    const fenced = await client.open<{ token: string; writes: string[] }>(`${cfg.name}-fenced`, { initial: { token: '0', writes: [] } });
    for (;;) {
      const lock = await client.lock(cfg.name);
      out('acquired', { token: lock.token });
      lock.signal.addEventListener('abort', () => out('lost-signal', { code: (lock.signal.reason as { code?: string }).code }), { once: true });
      while (lock.held) {
        const token = lock.token;
        // 'writing' marks the start: a write sent just before a SIGSTOP reports 'wrote' only
        // after SIGCONT, but it began while the lock was held.
        out('writing', { token });
        try {
          await fenced.update((d) => {
            if (BigInt(token) < BigInt(d.token)) throw new Error(`stale token ${token} < ${d.token}`);
            d.token = token;
            d.writes = [...d.writes.slice(-20), cfg.id];
          });
          out('wrote', { token });
        } catch (err) {
          out('write-refused', { token, error: (err as Error).message });
        }
        await sleep(50);
      }
      out('lost', { token: lock.token });
      await lock.release().catch(() => {});
    }
  } else if (cfg.role === 'candidate') {
    const election = client.election(cfg.name, { id: cfg.id });
    election.on('deposed', ({ reason }) => out('deposed', { code: reason?.code }));
    for (;;) {
      const leader = await election.campaign();
      out('elected', { token: leader.token });
      while (election.isLeader) await sleep(50);
    }
  } else if (cfg.role === 'hold') {
    await client.open<{ n: number }>(`${cfg.name}-noise`, { initial: { n: 0 } });
    const lock = await client.lock(cfg.name);
    out('acquired', { token: lock.token });
    lock.signal.addEventListener('abort', () => out('lost-signal'), { once: true });
    for (;;) {
      const held = lock.held;
      out(held ? 'step' : 'learned', { token: lock.token });
      if (!held) break;
      await sleep(20);
    }
  } else if (cfg.role === 'reader') {
    const s = await client.open<{ n: number }>(cfg.name, {
      initial: { n: 0 },
      ...(cfg.maxStalenessMs !== undefined && { maxStalenessMs: cfg.maxStalenessMs }),
      ...(cfg.refreshIntervalMs !== undefined && { refreshIntervalMs: cfg.refreshIntervalMs }),
    });
    out('ready');
    for (;;) {
      try {
        s.read();
        out('read', { version: s.stat().version });
      } catch (err) {
        out('stale', { code: (err as { code?: string }).code });
      }
      await sleep(20);
    }
  } else if (cfg.role === 'increment') {
    const counter = await client.open<{ n: number }>(cfg.name, { initial: { n: 0 } });
    let folded: unknown = counter.readDirty();
    const versions: number[] = [counter.stat().version];
    let local = 0;
    let coalesced = 0;
    const gaps: string[] = [];
    counter.on('change', (ev) => {
      folded = applyChanges(folded, ev.changes);
      versions.push(ev.version);
      if (ev.origin === 'local') local += 1;
      if (ev.coalesced) {
        coalesced += 1;
        gaps.push(`${ev.previousVersion}->${ev.version} ${ev.origin}`);
      }
    });
    out('ready');
    for (let i = 0; i < (cfg.count ?? 0); i++) await counter.update((d) => void (d.n += 1), { maxRetries: 10000 });
    out('updated');
    // Wait on the watch, not with readConsistent(): a consistent read that finds the store ahead
    // updates the cache at once, which is a (legitimate) coalesced event.
    while (counter.readDirty().n < (cfg.total ?? 0)) await sleep(20);
    await counter.readConsistent();
    const increasing = versions.every((v, i) => i === 0 || v > versions[i - 1]!);
    out('done', { final: counter.read().n, folded, increasing, local, coalesced, gaps, events: versions.length - 1, from: versions[0], to: counter.stat().version });
  } else {
    await client.join(cfg.name, { id: cfg.id });
    out('joined');
  }
}

main().catch((err: unknown) => {
  out('error', { error: (err as Error).message });
  process.exit(1);
});
