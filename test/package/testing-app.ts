/**
 * A user's own integration test in a fresh app that installed the packed tarball: shared by the
 * package suite (runtime 'binary') and the container suite (runtime 'container').
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, exec, type ExecResult } from './exec.js';

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

/**
 * A user's own integration test, in strict TypeScript: a 3-member etcd from `sharedstruct/testing`
 * (runtime given), its leader killed, the user's code retrying what the library marks
 * retryable, the cluster stopped. Compiled with the repository's `tsc`, then run.
 */
const source = (runtime: 'binary' | 'container'): string => `
import { connect, isSharedStructError, type SharedStruct } from 'sharedstruct';
import { startEtcd, type EtcdCluster, type ClusterLink } from 'sharedstruct/testing';

async function bump(counter: SharedStruct<{ n: number }>): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      return (await counter.update((draft) => { draft.n += 1; })).value.n;
    } catch (err) {
      if (!isSharedStructError(err) || !err.retryable || attempt >= 50) throw err;
    }
  }
}

const etcd: EtcdCluster = await startEtcd({ members: 3, runtime: '${runtime}' });
try {
  console.log('members', etcd.members.length, etcd.runtime, /^etcd:\\/\\/(127\\.0\\.0\\.1:\\d+,?){3}$/.test(etcd.url));
  await using client = await connect(etcd.url, { sessionTtlMs: 3000, requestTimeoutMs: 1500 });
  const counter = await client.open<{ n: number }>('counter', { initial: { n: 0 } });
  const before = await bump(counter);
  const leader: number = await etcd.leader();
  await etcd.members[leader]!.kill();
  const after = await bump(counter);
  const next = await etcd.leader();
  console.log('leader killed', etcd.members[leader]!.running, next !== leader);
  // A write that went through proves the client works; its session may still be catching up (a
  // keepalive that went to the dead leader leaves it 'suspended' until the next one answers).
  const usable = (state: string): boolean => state === 'connected' || state === 'reconnected';
  if (!usable(client.state)) {
    for await (const change of client.states({ signal: AbortSignal.timeout(15_000) })) if (usable(change.state)) break;
  }
  console.log('client survived', after > before, usable(client.state));
  const link: ClusterLink = await etcd.proxy();
  link.blackhole();
  link.heal();
  // @ts-expect-error runtimes are a closed set
  await startEtcd({ runtime: 'vm' }).catch((err: unknown) => console.log('bad runtime', isSharedStructError(err) && err.code));
} finally {
  await etcd.stop();
}
console.log('stopped', etcd.members.every((m) => !m.running));
`;

/** What the app prints on `runtime`. */
export function testingAppExpected(runtime: 'binary' | 'container'): string[] {
  return [`members 3 ${runtime} true`, 'leader killed false true', 'client survived true true', 'bad runtime INVALID_ARGUMENT', 'stopped true'];
}


/**
 * Writes the app's test into `app/testing-app-RUNTIME`, compiles it with the repository's `tsc`
 * (strict, NodeNext, our `.d.ts` checked with skipLibCheck off), and runs it.
 */
export async function runTestingApp(app: string, runtime: 'binary' | 'container'): Promise<ExecResult> {
  const dir = join(app, `testing-app-${runtime}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'cluster.test.ts'), source(runtime));
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2022', 'ESNext.Disposable'],
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        outDir: 'out',
        skipLibCheck: false,
        skipDefaultLibCheck: true,
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules', '@types')],
      },
      files: ['cluster.test.ts'],
    }),
  );
  const built = await exec(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: dir, timeoutMs: 120_000 });
  if (built.code !== 0) return built;
  return exec(process.execPath, [join('out', 'cluster.test.js')], { cwd: dir, env: { NODE_NO_WARNINGS: undefined, NODE_OPTIONS: undefined }, timeoutMs: 90_000 });
}
