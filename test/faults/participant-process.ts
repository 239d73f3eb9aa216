/**
 * A fault-matrix participant in its own process, so the runner can freeze it (SIGSTOP) past its
 * session ttl. Commands arrive as JSON lines on stdin (`{ rid, method, args }`), answers leave as
 * JSON lines on stdout (`{ ev: 'reply', rid, ok, result | error }`). It exits when stdin closes
 * (the runner is gone) or after `lifetimeMs`, so nothing outlives a run.
 * Usage: node --import tsx test/faults/participant-process.ts '<json config>'.
 */
import { createInterface } from 'node:readline';
import { Participant, type ParticipantConfig } from './participant.js';

const cfg = JSON.parse(process.argv[2] ?? '{}') as ParticipantConfig & { id: string; lifetimeMs: number };
const out = (ev: string, fields: Record<string, unknown> = {}): void => {
  process.stdout.write(`${JSON.stringify({ ev, at: Date.now(), pid: process.pid, id: cfg.id, ...fields })}\n`);
};

setTimeout(() => {
  out('lifetime-over');
  process.exit(0);
}, cfg.lifetimeMs).unref();

async function main(): Promise<void> {
  const p = await Participant.connect(cfg);
  const methods: Record<string, (...args: never[]) => unknown> = {
    sessionInfo: () => p.sessionInfo(),
    setup: (spec: Parameters<Participant['setup']>[0]) => p.setup(spec),
    run: () => p.run(),
    stop: (at: number) => p.stop(at),
    holdLong: (ms: number, timeoutMs: number) => p.holdLong(ms, timeoutMs),
    nextContact: (timeoutMs: number) => p.nextContact(timeoutMs),
    finish: (final: Parameters<Participant['finish']>[0]) => p.finish(final),
    close: () => p.close(),
  };
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    let msg: { rid: number; method: string; args: unknown[] };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      return;
    }
    const method = methods[msg.method];
    void (async () => {
      try {
        if (!method) throw new Error(`no method '${msg.method}'`);
        const result = await (method as (...args: unknown[]) => unknown)(...msg.args);
        out('reply', { rid: msg.rid, ok: true, result: result ?? null });
        if (msg.method === 'close') process.exit(0);
      } catch (err) {
        out('reply', { rid: msg.rid, ok: false, error: (err as Error)?.stack ?? String(err) });
      }
    })();
  });
  lines.on('close', () => process.exit(0));
  out('ready');
}

main().catch((err: unknown) => {
  out('error', { error: (err as Error)?.stack ?? String(err) });
  process.exit(1);
});
