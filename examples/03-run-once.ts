/**
 * A job that runs on one node only, once a day (DRef's daily-report case). Three nodes wake up
 * at about the same time; each calls `updateLocked` on a `jobs` struct: under the struct's write
 * lock, the first one finds no run for today, runs the report (a side effect), and records it in
 * the same guarded write; the others find today's run already recorded and skip. If a node loses
 * the lock mid-run, its record is not written (LOCK_LOST) and the next node runs the job. The
 * struct is deleted at the end.
 *
 *   npx tsx examples/03-run-once.ts [etcd://127.0.0.1:2379 | zk://127.0.0.1:2181]
 *
 * Exit status 0 on success; otherwise 1 and one line: `example 03: CODE: message`.
 */
import { connect, isSharedStructError } from '../lib/index.js';

interface Jobs {
  dailyReport: { day: string; node: string; token: string } | null;
}

const url = process.argv[2] ?? 'memory://';
const namespace = `/sharedstruct-example-03-${process.pid}`;

async function node(name: string): Promise<void> {
  await using client = await connect(url, { namespace });
  const jobs = await client.open<Jobs>('jobs', { initial: { dailyReport: null } });
  const today = new Date().toISOString().slice(0, 10);
  const { value } = await jobs.updateLocked(async (draft, lock) => {
    if (draft.dailyReport?.day === today) {
      console.log(`[${name}] today's report already ran on ${draft.dailyReport.node}: skipping`);
      return;
    }
    console.log(`[${name}] running the daily report for ${today} ...`);
    // The side effect (build and mail the report). A real one passes lock.token to the mail or
    // storage service so it can refuse a holder that lost the lock, and stops on lock.signal.
    await new Promise((r) => setTimeout(r, 300));
    draft.dailyReport = { day: today, node: name, token: lock.token };
  }, { lockTimeoutMs: 10_000 });
  console.log(`[${name}] done; the record says ${JSON.stringify(value.dailyReport)}`);
}

async function main(): Promise<void> {
  console.log(`store: ${url}  namespace: ${namespace}`);
  await using admin = await connect(url, { namespace });
  const jobs = await admin.open<Jobs>('jobs', { initial: { dailyReport: null } });
  try {
    const nodes = await Promise.allSettled(['node-a', 'node-b', 'node-c'].map((n) => node(n)));
    for (const n of nodes) if (n.status === 'rejected') throw n.reason;
    await jobs.readConsistent();
    console.log(`the report ran once, on ${jobs.read().dailyReport?.node}`);
  } finally {
    await jobs.delete(); // leave the store as we found it
  }
}

main().catch((err: unknown) => {
  // One readable line for what a user can act on; the whole stack for anything else (a bug).
  console.error(isSharedStructError(err) ? `example 03: ${err.code}: ${err.message}` : err);
  process.exitCode = 1;
});
