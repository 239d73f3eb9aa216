/**
 * A test agent in its own process: connects to a real store and plays one role, reporting every
 * step as a JSON line on stdout (`{"ev":...,"at":Date.now(),"pid":...}`). The parent kills,
 * freezes and restarts it by PID. Roles:
 * - `lock`: take the lock, then every 50 ms check `lock.held` and write to a fenced struct (the
 *   resource refuses a token lower than one it has seen); report `lost` when the check fails.
 * - `candidate`: campaign; report `elected` / `deposed`; campaign again after a deposition.
 * - `member`: join the group and stay.
 * Usage: node --import tsx test/support/agent.ts '<json config>'. It exits on its own after
 * `lifetimeMs`, so nothing outlives the test run.
 */
import { connect, type Logger } from '../../lib/index.js';

interface AgentConfig {
  url: string;
  namespace: string;
  sessionTtlMs: number;
  role: 'lock' | 'candidate' | 'member';
  name: string;
  id: string;
  lifetimeMs: number;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as AgentConfig;
const out = (ev: string, fields: Record<string, unknown> = {}): void => {
  process.stdout.write(`${JSON.stringify({ ev, at: Date.now(), pid: process.pid, id: cfg.id, ...fields })}\n`);
};
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

setTimeout(() => {
  out('lifetime-over');
  process.exit(0);
}, cfg.lifetimeMs);

async function main(): Promise<void> {
  const client = await connect(cfg.url, { namespace: cfg.namespace, sessionTtlMs: cfg.sessionTtlMs, requestTimeoutMs: 1000, logger: quiet });
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
  } else {
    await client.join(cfg.name, { id: cfg.id });
    out('joined');
  }
}

main().catch((err: unknown) => {
  out('error', { error: (err as Error).message });
  process.exit(1);
});
