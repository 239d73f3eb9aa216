/**
 * One process of the scale bench (bench/scale.ts): `count` clients, each its own session, each
 * with the struct `name` open and one subscriber. Talks to its parent over IPC:
 * - sends `{ kind: 'ready', clients, bytesPerClient }` once every client follows the struct;
 * - on `{ kind: 'mark' }`, sends `{ kind: 'mark', cpuUs }`: the process's CPU time since `ready`;
 * - on `{ kind: 'report' }`, sends `{ kind: 'report', receipts, cpuUs }`: for each version, the
 *   epoch milliseconds (sub-ms precision) at which each client's subscriber received it, and the
 *   process's CPU time since `ready`, and the newest version each client has seen (`newest`);
 * - on `{ kind: 'stop' }`, closes every client and exits.
 * Started as `node --expose-gc --import tsx bench/scale-agent.ts URL NAMESPACE NAME COUNT`.
 */
import { performance } from 'node:perf_hooks';
import type { Client, Logger } from '../lib/index.js';
import { connect } from './product.js';

const [url, namespace, name, countText] = process.argv.slice(2);
const count = Number(countText);
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const now = (): number => performance.timeOrigin + performance.now();

function heapAndExternal(): number {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.external + m.arrayBuffers;
}

async function main(): Promise<void> {
  if (!url || !namespace || !name || !Number.isInteger(count) || count < 1) throw new Error('usage: scale-agent URL NAMESPACE NAME COUNT');
  const receipts = new Map<number, number[]>();
  const clients: Client[] = [];
  /** The newest version each client's subscriber has seen. */
  const newest: number[] = [];
  const before = heapAndExternal();
  // A few at a time: a thousand sessions opened at once would measure the server's accept queue.
  const CONCURRENCY = 10;
  for (let i = 0; i < count; i += CONCURRENCY) {
    await Promise.all(
      Array.from({ length: Math.min(CONCURRENCY, count - i) }, async () => {
        const client = await connect(url, { namespace: namespace, logger: quiet });
        clients.push(client);
        const struct = await client.open<{ v: number }>(name);
        void (async () => {
          for await (const ev of struct.changes()) {
            let at = receipts.get(ev.version);
            if (!at) receipts.set(ev.version, (at = []));
            at.push(now());
          }
        })();
      }),
    );
  }
  const bytesPerClient = (heapAndExternal() - before) / count;
  const cpuAtReady = process.cpuUsage();
  process.send!({ kind: 'ready', clients: clients.length, bytesPerClient });
  process.on('message', (msg: { kind: string }) => {
    if (msg.kind === 'mark') {
      const cpu = process.cpuUsage(cpuAtReady);
      process.send!({ kind: 'mark', cpuUs: cpu.user + cpu.system });
    }
    if (msg.kind === 'report') {
      const cpu = process.cpuUsage(cpuAtReady);
      process.send!({ kind: 'report', receipts: [...receipts.entries()], cpuUs: cpu.user + cpu.system, newest });
    }
    if (msg.kind === 'stop') {
      void Promise.allSettled(clients.map((c) => c.close())).then(() => process.exit(0));
    }
  });
}

main().catch((err: unknown) => {
  console.error(`scale-agent: ${String(err)}`);
  process.exit(1);
});
