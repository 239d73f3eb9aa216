/**
 * One active worker, two hot standbys, each in its own process. The three workers campaign in an
 * election; the leader processes jobs and records them in a shared `worker-state` struct (typed
 * by its schema). Then the supervisor SIGKILLs the leader's process: nothing closes, nothing
 * resigns, exactly as in a crash. The store notices only when the dead process's session expires
 * (`sessionTtlMs`), and a standby takes over; the failover time logged is that real one.
 *
 * Processes share a store only through a server, so this example needs etcd or ZooKeeper
 * (`memory://` is one store per process):
 *
 *   npx tsx examples/02-leader-worker.ts etcd://127.0.0.1:2379
 *   npx tsx examples/02-leader-worker.ts zk://127.0.0.1:2181
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { connect, isSharedStructError, type Client, type Leader, type SharedStruct, type WorkerState } from '../lib/index.js';

/** Short, so the failover is quick to watch; ZooKeeper raises it to its minimum (2 × tickTime). */
const SESSION_TTL_MS = 2000;
const WORKERS = ['w1', 'w2', 'w3'];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const [url = 'memory://', role, workerId = '', workerNamespace = ''] = process.argv.slice(2);

// ---- a worker process ---------------------------------------------------------------------------

async function worker(id: string, namespace: string): Promise<void> {
  // The supervisor stops a worker with a message; a worker whose supervisor is gone stops too.
  const stop = new AbortController();
  process.on('message', () => stop.abort());
  process.on('disconnect', () => stop.abort());
  await using client = await connect(url, { namespace, sessionTtlMs: SESSION_TTL_MS });

  const pool = await client.open('pool', { schema: 'worker-state', label: id }); // the supervisor created it
  const election = client.election('pool-leader', { id, data: { pid: process.pid } });
  await pool.update((d) => void (d.workers[id] = { status: 'standby', lastSeen: Date.now() }));

  const leader = await election.campaign({ signal: stop.signal }).catch((err: unknown) => {
    if (stop.signal.aborted) return undefined; // stopped while on standby: the candidacy is withdrawn
    throw err;
  });
  if (leader) {
    const { value } = await pool.update((d) => {
      const previous = d.leader === null ? undefined : d.workers[d.leader];
      if (previous && d.leader !== id) previous.status = 'stopped'; // a leader that lost its session is gone
      d.leader = id;
      d.term += 1;
      d.workers[id] = { status: 'active', lastSeen: Date.now() };
    });
    console.log(`[${id}] elected (term ${value.term}, token ${leader.token})`);
    // The work, while this term lasts: leader.signal aborts (LOCK_LOST) as soon as it may be
    // over. A side effect outside the store would carry leader.token, so that the resource can
    // refuse a deposed leader that has not noticed yet.
    while (!leader.signal.aborted && !stop.signal.aborted) {
      await pool.update((d) => {
        d.processed += 1;
        d.workers[id]!.lastSeen = Date.now();
      });
      await sleep(100);
    }
    await leader.resign();
  }
  await pool.update((d) => {
    d.workers[id] = { status: 'stopped', lastSeen: Date.now() };
    if (d.leader === id) d.leader = null;
  });
  console.log(`[${id}] stopped`);
  process.disconnect?.();
}

// ---- the supervisor -----------------------------------------------------------------------------

/** The first leader the election names other than `previous`. */
async function nextLeader(client: Client, previous: string | undefined, timeoutMs: number): Promise<Leader> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    for await (const leader of client.election('pool-leader').observe({ signal })) {
      if (leader && leader.id !== previous) return leader;
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  }
  throw new Error(`no new leader within ${timeoutMs} ms`);
}

/** Resolves once the pool's value satisfies `done`. */
async function until(pool: SharedStruct<WorkerState>, what: string, done: (v: WorkerState) => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done(pool.read())) {
    if (Date.now() > deadline) throw new Error(`the pool did not reach "${what}" within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Asks a worker to stop and waits for it; SIGKILL if it does not exit in time. */
async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  if (child.connected) child.send('stop');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function supervise(): Promise<void> {
  const namespace = `/sharedstruct-example-02-${process.pid}`;
  console.log(`store: ${url}  namespace: ${namespace}  sessionTtlMs: ${SESSION_TTL_MS}`);
  await using client = await connect(url, { namespace });
  const pool = await client.open('pool', { schema: 'worker-state', label: 'supervisor', initial: { leader: null, term: 0, processed: 0, workers: {} } });
  const children = new Map<string, ChildProcess>();
  try {
    const file = fileURLToPath(import.meta.url);
    for (const id of WORKERS) {
      children.set(id, fork(file, [url, 'worker', id, namespace], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    }
    const first = await nextLeader(client, undefined, 30_000);
    await until(pool, 'five jobs done', (v) => v.processed >= 5, 10_000);

    const victim = children.get(first.id)!;
    console.log(`[supervisor] SIGKILL ${first.id} (pid ${victim.pid}) after ${pool.read().processed} jobs: no close, no resign`);
    const killedAt = Date.now();
    const exited = once(victim, 'exit');
    victim.kill('SIGKILL');
    const [, signal] = (await exited) as [number | null, NodeJS.Signals | null];
    console.log(`[supervisor] ${first.id} ended by ${signal}; its session is left to expire`);

    const next = await nextLeader(client, first.id, 4 * SESSION_TTL_MS + 20_000);
    console.log(`[supervisor] failover to ${next.id} after ${Date.now() - killedAt} ms (sessionTtlMs ${SESSION_TTL_MS})`);
    const before = pool.read().processed;
    await until(pool, `${next.id} at work`, (v) => v.leader === next.id && v.processed >= before + 3, 10_000);
  } finally {
    await Promise.all([...children.values()].map(stopWorker));
  }
  const { processed, term, workers } = pool.read();
  console.log(`processed ${processed} jobs in terms 1..${term}; workers: ${Object.entries(workers).map(([id, w]) => `${id} ${w.status}`).join(', ')}`);
  await pool.delete(); // leave the store as we found it
}

async function main(): Promise<void> {
  if (role === 'worker') return worker(workerId, workerNamespace);
  if (url.startsWith('memory:')) {
    console.error('example 02: the workers are separate processes, and memory:// is one store per process: pass etcd://HOST:PORT or zk://HOST:PORT');
    process.exitCode = 2;
    return;
  }
  return supervise();
}

main().catch((err: unknown) => {
  // One readable line for what a user can act on; the whole stack for anything else (a bug).
  console.error(isSharedStructError(err) ? `example 02${role === 'worker' ? ` [${workerId}]` : ''}: ${err.code}: ${err.message}` : err);
  process.exitCode = 1;
});
