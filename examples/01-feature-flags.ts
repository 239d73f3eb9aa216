/**
 * Three agents share a feature-flags struct. The "operator" flips flags; the two "workers" print
 * every change as Added / Modified / Removed diffs. Each agent is its own client (its own
 * session), in one process; the struct is deleted at the end:
 *
 *   npm run demo                                   # memory://
 *   npm run demo -- etcd://127.0.0.1:2379          # a real etcd
 *   npm run demo -- zk://127.0.0.1:2181            # a real ZooKeeper
 *
 * Exit status 0 on success; otherwise 1 and one line: `sharedstruct demo: CODE: message`.
 */
import { connect, isSharedStructError, type Change } from '../lib/index.js';

interface Flags {
  beta: boolean;
  rollout: number;
  banner?: string;
  regions: string[];
}

const url = process.argv[2] ?? 'memory://';
const namespace = `/sharedstruct-demo-${process.pid}`;

function describe(change: Change): string {
  const path = change.path.join('.') || '(root)';
  switch (change.kind) {
    case 'Added':
      return `+ ${path} = ${JSON.stringify(change.value)}`;
    case 'Removed':
      return `- ${path} (was ${JSON.stringify(change.oldValue)})`;
    case 'Modified':
      return `~ ${path}: ${JSON.stringify(change.oldValue)} -> ${JSON.stringify(change.value)}`;
  }
}

async function main(): Promise<void> {
  console.log(`store: ${url}  namespace: ${namespace}`);
  const initial: Flags = { beta: false, rollout: 0, regions: ['eu'] };

  // Each agent is its own client (its own session), as separate processes would be.
  await using operator = await connect(url, { namespace });
  await using worker1 = await connect(url, { namespace });
  await using worker2 = await connect(url, { namespace });

  // `label` names each instance among the struct's listeners (default: a random id).
  const flags = await operator.open<Flags>('flags', { initial, label: 'operator' });
  const watchers = await Promise.all([worker1, worker2].map((c, i) => c.open<Flags>('flags', { initial, label: `worker${i + 1}` })));

  // Subscribe with async iterators; each worker stops once it has seen the last version.
  const finalVersion = flags.stat().version + 4;
  const printed = watchers.map(async (struct, i) => {
    for await (const event of struct.changes()) {
      console.log(`worker${i + 1} v${event.version} (${event.origin}${event.coalesced ? ', coalesced' : ''}):`);
      for (const change of event.changes) console.log(`    ${describe(change)}`);
      if (event.version >= finalVersion) return;
    }
  });

  console.log(`listeners: ${(await flags.listeners()).map((m) => m.id).sort().join(', ')}`);
  await flags.update((d) => void (d.beta = true));
  await flags.update((d) => void (d.rollout = 25));
  await flags.update((d) => {
    d.regions.push('us');
    d.banner = 'Maintenance at 22:00 UTC';
  });
  const { version } = await flags.update((d) => {
    d.rollout = 100;
    delete d.banner;
  });
  await Promise.all(printed);
  console.log(`operator wrote v${version}; worker1 reads ${JSON.stringify(watchers[0]!.read())}`);
  await flags.delete();
}

main().catch((err: unknown) => {
  // One readable line for what a user can act on; the whole stack for anything else (a bug).
  console.error(isSharedStructError(err) ? `sharedstruct demo: ${err.code}: ${err.message}` : err);
  process.exitCode = 1;
});
