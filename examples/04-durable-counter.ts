/**
 * A durable counter (DGen's counter): its state and its message queue live in the store, so they
 * outlive the process that serves them. The main process queues 20 increments; a consumer
 * process applies them; halfway through, the main process SIGKILLs the consumer — nothing closes,
 * exactly as in a crash. The state it committed is there; the messages it did not apply are still
 * queued. A second consumer process finishes them, each applied exactly once, and `call()` reads
 * the value through the queue: 20. Everything is deleted at the end; the SIGKILLed consumer's own
 * registration goes when its session expires (its sessionTtlMs, 2 s), as a crashed process's does.
 *
 * Processes share a store only through a server, so this example needs etcd or ZooKeeper:
 *
 *   npx tsx examples/04-durable-counter.ts etcd://127.0.0.1:2379
 *   npx tsx examples/04-durable-counter.ts zk://127.0.0.1:2181
 *
 * Exit status 0 on success; otherwise 1 and one line: `example 04: CODE: message`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { connect, isSharedStructError, type Client } from '../lib/index.js';

type Counter = { n: number; applied: number[] };
type Msg = { op: 'add'; by: number; seq: number } | { op: 'value' };

const [url = 'memory://', role, childNamespace = ''] = process.argv.slice(2);
const MESSAGES = 20;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The server as every process declares it: the producers need no handler, consumers do. */
function counter(client: Client) {
  return client.server<Counter, Msg, number>('counter', {
    initial: { n: 0, applied: [] },
    handle(draft, msg, ctx) {
      if (msg.op === 'value') {
        ctx.reply(draft.n);
        return;
      }
      draft.n += msg.by;
      draft.applied.push(msg.seq);
      // An effect after the commit, on this consumer only; slow, so the crash lands mid-queue.
      ctx.after(async (state) => {
        console.log(`[consumer ${process.pid}] applied #${msg.seq}: n = ${state.n}`);
        await sleep(100);
      });
    },
  });
}

// ---- a consumer process -------------------------------------------------------------------------

async function consume(namespace: string): Promise<void> {
  await using client = await connect(url, { namespace, sessionTtlMs: 2000 });
  const server = await counter(client);
  await using worker = await server.serve({ batch: 1 });
  // Serve until the parent lets go of us (or dies); the parent SIGKILLs the first consumer instead.
  await new Promise<void>((resolve) => process.on('disconnect', () => resolve()));
  void worker;
}

// ---- the main process ---------------------------------------------------------------------------

function startConsumer(namespace: string): ChildProcess {
  return fork(fileURLToPath(import.meta.url), [url, 'consume', namespace], { stdio: 'inherit', execArgv: ['--import', 'tsx'] });
}

async function main(): Promise<void> {
  if (role === 'consume') return consume(childNamespace);
  if (url.startsWith('memory:')) {
    console.error('example 04: the consumers are separate processes, and memory:// is one store per process: pass etcd://HOST:PORT or zk://HOST:PORT');
    process.exitCode = 2;
    return;
  }
  const namespace = `/sharedstruct-example-04-${process.pid}`;
  console.log(`store: ${url}  namespace: ${namespace}`);
  await using client = await connect(url, { namespace });
  const server = await counter(client);
  try {
    for (let seq = 1; seq <= MESSAGES; seq++) await server.cast({ op: 'add', by: 1, seq });
    console.log(`queued ${MESSAGES} increments; starting a consumer`);

    const first = startConsumer(namespace);
    while (server.state.readDirty().n < MESSAGES / 2) await sleep(20);
    first.kill('SIGKILL');
    await once(first, 'exit');
    const afterCrash = await server.state.readConsistent();
    const pending = await server.pending();
    console.log(`SIGKILLed the consumer: the state it committed is kept (n = ${afterCrash.n}), ${pending.length} messages still queued`);

    const second = startConsumer(namespace);
    const n = await server.call({ op: 'value' }, { timeoutMs: 30_000 }); // queued behind the others: answered after them
    second.disconnect(); // the consumer stops, and exits on its own
    await once(second, 'exit');
    const { applied } = server.state.read();
    const once_ = new Set(applied).size === applied.length && applied.length === MESSAGES;
    console.log(`a new consumer finished the queue: call() says n = ${n}; every increment applied ${once_ ? 'exactly once' : 'NOT exactly once'}`);
    if (!once_ || n !== MESSAGES) process.exitCode = 1;
  } finally {
    await server.state.delete(); // leave the store as we found it (the queue is empty)
  }
}

main().catch((err: unknown) => {
  // One readable line for what a user can act on; the whole stack for anything else (a bug).
  console.error(isSharedStructError(err) ? `example 04${role === 'consume' ? ` [consumer ${process.pid}]` : ''}: ${err.code}: ${err.message}` : err);
  process.exitCode = 1;
});
