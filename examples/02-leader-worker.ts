/**
 * One active worker, the others hot standby: three workers campaign in an election; the leader
 * processes jobs and records them in a shared `worker-state` struct (typed by its schema). After
 * a while the leader crashes (its client closes without resigning); a standby takes over and the
 * failover is logged. Runs in one process on the in-memory store, or against a real store:
 *
 *   npx tsx examples/02-leader-worker.ts [etcd://127.0.0.1:2379 | zk://127.0.0.1:2181]
 */
import { connect, type Client, type Election } from '../lib/index.js';

const url = process.argv[2] ?? 'memory://';
const namespace = `/sharedstruct-example-02-${process.pid}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function worker(id: string, client: Client, stop: AbortSignal): Promise<void> {
  const state = await client.open('pool', {
    schema: 'worker-state',
    initial: { leader: null, term: 0, processed: 0, workers: {} },
  });
  const election: Election = client.election('pool-leader', { id });
  election.on('deposed', ({ reason }) => console.log(`[${id}] deposed${reason ? `: ${reason.code}` : ''}`));
  await state.update((d) => void (d.workers[id] = { status: 'standby', lastSeen: Date.now() }));

  const leader = await election.campaign({ signal: stop }).catch(() => undefined);
  if (!leader) return; // stopped while on standby
  const { value } = await state.update((d) => {
    d.leader = id;
    d.term += 1;
    d.workers[id] = { status: 'active', lastSeen: Date.now() };
  });
  console.log(`[${id}] elected (term ${value.term}, token ${leader.token})`);
  while (election.isLeader && !stop.aborted) {
    // Guarded work: a write fenced by the leadership would pass leader.token to the resource.
    await state.update((d) => {
      d.processed += 1;
      d.workers[id]!.lastSeen = Date.now();
    });
    await sleep(100);
  }
  await election.resign();
}

async function main(): Promise<void> {
  console.log(`store: ${url}`);
  const clients = await Promise.all(['w1', 'w2', 'w3'].map(() => connect(url, { namespace, sessionTtlMs: 2000 })));
  // A plain timer, not AbortSignal.timeout(): that one does not keep the process alive, and on
  // the in-memory store nothing else would while the standbys wait.
  const stop = new AbortController();
  setTimeout(() => stop.abort(), 4000);
  const running = ['w1', 'w2', 'w3'].map((id, i) => worker(id, clients[i]!, stop.signal));

  const observer = await connect(url, { namespace });
  const watch = (async () => {
    for await (const leader of observer.election('pool-leader').observe({ signal: stop.signal })) {
      console.log(`observer: leader is ${leader ? `${leader.id} (token ${leader.token})` : 'nobody'}`);
    }
  })().catch(() => {});

  await sleep(1200);
  const pool = await observer.open('pool', { schema: 'worker-state' });
  const crashed = pool.read().leader;
  const index = ['w1', 'w2', 'w3'].indexOf(crashed ?? '');
  console.log(`crashing the leader ${crashed} (its session ends; a standby takes over)`);
  const crashAt = Date.now();
  await clients[index]!.close();
  pool.on('change', (ev) => {
    if (ev.changes.some((c) => c.path[0] === 'leader')) console.log(`failover to ${ev.value.leader} after ${Date.now() - crashAt} ms`);
  });

  await Promise.allSettled(running);
  await watch;
  console.log(`processed ${pool.read().processed} jobs in terms 1..${pool.read().term}`);
  await Promise.allSettled([...clients, observer].map((c) => c.close()));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
