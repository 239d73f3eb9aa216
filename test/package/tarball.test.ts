/**
 * The package as a user gets it: `npm pack` (its prepack builds), the tarball installed into a
 * fresh app from the registry, and that app run in child processes: an ES module, a CommonJS
 * module (`require(esm)`, Node >= 20.19), a strict TypeScript consumer type-checked against
 * the installed `.d.ts`, and a strict TypeScript test of the user's own that starts a 3-member
 * etcd through `sharedstruct/testing` (binaries), kills its leader and carries on. Nothing here
 * imports the repository's sources. Packed once, installed once; the checks run side by side.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix, relative } from 'node:path';
import { ROOT, describeResult, exec, type ExecResult } from './exec.js';
import { runTestingApp, testingAppExpected } from './testing-app.js';

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

/** Every file below `dir`, as `/`-separated paths relative to it. */
function walk(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split('\\').join('/'))
    .sort();
}

/**
 * Why `path` may ship, or undefined when it may not. Built files must come from a source file of
 * the repository (no stale output of a removed module, no dev-only script); the rest is named.
 */
function allowed(path: string): string | undefined {
  if (['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md'].includes(path)) return 'package metadata';
  if (/^docs\/[A-Z]+\.md$/.test(path)) return 'a guide the README links';
  const built = /^dist\/((?:lib|adapters|testing|schemas|cli)\/[\w/-]+)\.(js|js\.map|d\.ts)$/.exec(path);
  if (built && built[1] !== 'schemas/generate' && existsSync(join(ROOT, `${built[1]}.ts`))) return `built from ${built[1]}.ts`;
  const schema = /^dist\/schemas\/([\w-]+\.schema\.json)$/.exec(path);
  if (schema && existsSync(join(ROOT, 'schemas', schema[1]!))) return 'a shipped schema';
  return undefined;
}

/** The files the tarball must hold: the built triple of every module, every schema, the metadata. */
function required(): string[] {
  const modules = [
    ...walk(join(ROOT, 'lib')).map((f) => `lib/${f}`),
    ...walk(join(ROOT, 'adapters')).map((f) => `adapters/${f}`),
    ...walk(join(ROOT, 'testing')).map((f) => `testing/${f}`),
    ...walk(join(ROOT, 'cli')).map((f) => `cli/${f}`),
    'schemas/index.ts',
    ...walk(join(ROOT, 'schemas', 'types')).map((f) => `schemas/types/${f}`),
  ].filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
  const schemas = readdirSync(join(ROOT, 'schemas')).filter((f) => f.endsWith('.schema.json'));
  return [
    'package.json',
    'README.md',
    'LICENSE',
    'CHANGELOG.md',
    ...modules.flatMap((m) => ['js', 'js.map', 'd.ts'].map((ext) => `dist/${m.slice(0, -'.ts'.length)}.${ext}`)),
    ...schemas.map((s) => `dist/schemas/${s}`),
  ];
}

const ESM_APP = `
import { connect, isSharedStructError } from 'sharedstruct';

const client = await connect('memory://');
const flags = await client.open('flags', { schema: 'flags', initial: { beta: false, rollout: 0, regions: [] } });
const events = flags.changes()[Symbol.asyncIterator]();
const next = events.next();
await flags.update((draft) => { draft.rollout = 50; });
const { value: event } = await next;
console.log('event', event.version, event.origin, JSON.stringify(event.changes));
console.log('read', JSON.stringify(flags.read()));
await flags.update((draft) => { draft.rollout = 'all'; }).catch((err) => console.log('schema', isSharedStructError(err) && err.code));
await events.return();
await flags.delete();
await client.close();

// The adapters of the real stores load from the tarball with their dependencies (etcd3,
// node-zookeeper-client): a closed port is the store's CONNECTION, not a missing module.
const stores = await Promise.all(['etcd://127.0.0.1:1', 'zk://127.0.0.1:1'].map((url) =>
  connect(url, { connectTimeoutMs: 1000 }).then(
    async (c) => { await c.close(); return \`\${url} connected?\`; },
    (err) => \`\${url.slice(0, url.indexOf(':'))} \${isSharedStructError(err) ? err.code : String(err)}\`,
  )));
for (const line of stores) console.log(line);

// Internals stay internal.
await import('sharedstruct/dist/lib/client.js').then(() => console.log('deep import allowed'), (err) => console.log('deep import', err.code));

// Source maps lead back to the TypeScript sources (run with --enable-source-maps).
await connect('nope://').catch((err) => {
  const frames = err.stack.split('\\n').filter((l) => l.includes('/node_modules/sharedstruct/'));
  console.log('stack frames', frames.length > 0 && frames.every((f) => /\\/node_modules\\/sharedstruct\\/(lib|adapters)\\/[\\w\\/-]+\\.ts:\\d+:\\d+\\)?$/.test(f)) ? 'map to .ts' : frames);
});
`;

const ESM_EXPECTED = [
  'event 2 local [{"kind":"Modified","path":["rollout"],"oldValue":0,"value":50}]',
  'read {"beta":false,"rollout":50,"regions":[]}',
  'schema SCHEMA_VALIDATION',
  'etcd CONNECTION',
  'zk CONNECTION',
  'deep import ERR_PACKAGE_PATH_NOT_EXPORTED',
  'stack frames map to .ts',
];

const CJS_APP = `
const { connect } = require('sharedstruct');

(async () => {
  const client = await connect('memory://');
  const counter = await client.open('counter', { initial: { n: 1 } });
  const { value, version } = await counter.update((draft) => { draft.n += 1; });
  console.log('cjs', value.n, version);
  await counter.delete();
  await client.close();
})().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
`;

/** What a strict user project writes. Unused '@ts-expect-error' lines are errors: types that went `any` fail. */
const TS_CONSUMER = `
import { connect, isSharedStructError, type Change, type ErrorCode, type LockInfo, type SharedStruct, type StructInfo } from 'sharedstruct';

interface Flags { beta: boolean; rollout: number; banner?: string }

await using client = await connect('memory://', { namespace: '/app', sessionTtlMs: 5000 });
const flags: SharedStruct<Flags> = await client.open<Flags>('flags', { initial: { beta: false, rollout: 0 } });
const rollout: number = flags.read().rollout;
const { version } = await flags.update((draft) => { draft.rollout = rollout + 1; delete draft.banner; });
const typed = await client.open('typed', { schema: 'flags', initial: { beta: true, rollout: 1, regions: [] } });
const regions: readonly string[] = typed.read().regions;
for await (const event of flags.changes({ signal: AbortSignal.timeout(10) })) {
  for (const change of event.changes) {
    const c: Change = change;
    if (c.kind === 'Modified') console.log(c.path.join('.'), c.oldValue, c.value);
  }
}
try {
  await flags.compareAndSet(version, { beta: true, rollout: 2 });
} catch (err) {
  if (!isSharedStructError(err)) throw err;
  const code: ErrorCode = err.code;
  console.log(code, err.retryable, err.cause);
}
const token: string = await client.withLock('job', async (lock) => {
  lock.signal.throwIfAborted();
  return lock.token;
});
// @ts-expect-error an option that does not exist
await connect('memory://', { sessionTtl: 1 });
// @ts-expect-error not an error code
const bad: ErrorCode = 'NOPE';
// @ts-expect-error the schema types the struct
typed.read().rollout satisfies string;
// @ts-expect-error reads are frozen and typed so (DeepReadonly)
flags.read().rollout = 1;
// @ts-expect-error deeply
typed.read().regions.push('us');
const structs: StructInfo[] = await client.inspect.structs({ prefix: 'fl' });
const locks: readonly LockInfo[] = await client.inspect.locks();
const holder: string | undefined = locks[0]?.holder?.token;
// @ts-expect-error client.inspect is a getter, not something to replace
client.inspect = client.inspect;
console.log(regions, token, bad, structs.length, holder);
`;

const TS_CONSUMER_CJS = `
import sharedstruct = require('sharedstruct');

void sharedstruct.connect('memory://').then((client) => client.close());
`;

describe('package: the packed tarball in a fresh app', function () {
  this.timeout(300_000);
  let work: string;
  let packed: { filename: string; files: { path: string }[] };
  let installed: string;
  let pack: ExecResult;
  let install: ExecResult;
  let esm: Promise<ExecResult>;
  let cjs: Promise<ExecResult>;
  let tsc: Promise<ExecResult>;
  let testingApp: Promise<ExecResult>;
  let bin: Promise<ExecResult[]>;

  before(async function () {
    work = mkdtempSync(join(tmpdir(), 'sharedstruct-package-'));
    pack = await exec('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT });
    assert.equal(pack.code, 0, describeResult(pack));
    packed = (JSON.parse(pack.stdout) as (typeof packed)[])[0]!;

    const app = join(work, 'app');
    mkdirSync(join(app, 'cjs'), { recursive: true });
    mkdirSync(join(app, 'ts'), { recursive: true });
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'first-contact', private: true, type: 'module' }));
    install = await exec('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(work, packed.filename)], { cwd: app });
    assert.equal(install.code, 0, describeResult(install));
    installed = join(app, 'node_modules', 'sharedstruct');

    writeFileSync(join(app, 'esm.js'), ESM_APP);
    writeFileSync(join(app, 'cjs', 'package.json'), JSON.stringify({ type: 'commonjs' }));
    writeFileSync(join(app, 'cjs', 'main.js'), CJS_APP);
    writeFileSync(join(app, 'ts', 'consumer.ts'), TS_CONSUMER);
    writeFileSync(join(app, 'ts', 'consumer-cjs.cts'), TS_CONSUMER_CJS);
    writeFileSync(
      join(app, 'ts', 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2022'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          exactOptionalPropertyTypes: true,
          noUncheckedIndexedAccess: true,
          noEmit: true,
          // Our .d.ts and what they import are checked (that is where a missing file shows,
          // TS2307); TypeScript's own lib files are not ours to check.
          skipLibCheck: false,
          skipDefaultLibCheck: true,
          // A user's project has @types/node; this one borrows the repository's.
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
        },
        files: ['consumer.ts', 'consumer-cjs.cts'],
      }),
    );
    // Warnings are part of what a user sees: none is expected (NODE_NO_WARNINGS unset).
    const env = { NODE_NO_WARNINGS: undefined, NODE_OPTIONS: undefined };
    esm = exec(process.execPath, ['--enable-source-maps', 'esm.js'], { cwd: app, env, timeoutMs: 30_000 });
    cjs = exec(process.execPath, ['main.js'], { cwd: join(app, 'cjs'), env, timeoutMs: 30_000 });
    tsc = exec(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: join(app, 'ts'), timeoutMs: 120_000 });
    // The user's own test: compiled (strict, NodeNext, our .d.ts checked), then run.
    testingApp = runTestingApp(app, 'binary');
    // The `bin`: what `npx sharedstruct` runs in the app, as a user types it.
    const npx = (args: string[]): Promise<ExecResult> => exec('npx', ['--no-install', 'sharedstruct', ...args], { cwd: app, env, timeoutMs: 60_000 });
    bin = Promise.all([npx(['--help']), npx(['--version']), npx(['--url', 'memory://', 'set', 'flags', '{"beta":true}', '--json']), npx(['--url', 'memory://', 'get', 'nothing']), npx(['frobnicate'])]);
  });

  after(async function () {
    await Promise.allSettled([esm, cjs, tsc, testingApp, bin]);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('builds on pack (prepack), ships what the package needs and nothing dev-only (npm pack file list against an allow-list)', function () {
    assert.match(pack.stderr, /^> sharedstruct@\S+ prepack\n> npm run build$/m, 'npm pack ran the build');
    const files = packed.files.map((f) => f.path).sort();
    const unexpected = files.filter((f) => allowed(f) === undefined);
    assert.deepEqual(unexpected, [], `files that must not ship (dev-only, stale or unknown): ${unexpected.join(', ')}`);
    const missing = required().filter((f) => !files.includes(f));
    assert.deepEqual(missing, [], `files the package needs but does not ship: ${missing.join(', ')}`);
    // What npm reported is what was installed.
    assert.deepEqual(walk(installed), files);
  });

  it('every source map resolves: its sources are embedded and are the repository files it names', function () {
    const scripts = walk(installed).filter((f) => f.endsWith('.js'));
    assert.ok(scripts.length > 20, `found ${scripts.length} scripts`);
    for (const script of scripts) {
      const code = readFileSync(join(installed, script), 'utf8');
      const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(code)?.[1];
      assert.ok(url, `${script} names its source map`);
      const mapPath = posix.join(posix.dirname(script), url);
      assert.ok(existsSync(join(installed, mapPath)), `${script}: ${mapPath} ships`);
      const map = JSON.parse(readFileSync(join(installed, mapPath), 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[]; sourceRoot?: string };
      assert.equal(map.sourcesContent?.length, map.sources.length, `${mapPath} embeds every source (sourcesContent)`);
      map.sources.forEach((source, i) => {
        const repoPath = posix.normalize(posix.join(posix.dirname(mapPath), map.sourceRoot ?? '', source));
        assert.match(repoPath, /^(lib|adapters|testing|schemas|cli)\//, `${mapPath}: ${source} points inside the package`);
        assert.equal(map.sourcesContent![i], readFileSync(join(ROOT, repoPath), 'utf8'), `${mapPath}: the embedded ${repoPath} is the repository's`);
      });
    }
  });

  it('installs with no warning but the documented ones (docs/OPERATIONS.md, "Installing")', function () {
    const ops = readFileSync(join(ROOT, 'docs', 'OPERATIONS.md'), 'utf8');
    const section = /^## Installing\n([\s\S]*?)(?=^## )/m.exec(ops)?.[1];
    assert.ok(section, 'docs/OPERATIONS.md has a section "## Installing"');
    const warnings = install.stderr.split('\n').filter((l) => l.startsWith('npm warn'));
    const scripts = warnings.flatMap((l) => /^npm warn install-scripts {3}(\S+?)@\S+ \(/.exec(l)?.[1] ?? []);
    const undocumented = scripts.filter((name) => !section.includes(`\`${name}\``));
    assert.deepEqual(undocumented, [], `install scripts a user is warned about and the section does not explain:\n${install.stderr}`);
    const other = warnings.filter((l) => !l.startsWith('npm warn install-scripts'));
    assert.deepEqual(other, [], 'npm warnings a user would see: fix them or document them');
  });

  it('runs as an ES module: open, update, changes, schemas, the etcd and ZooKeeper adapters, source-mapped stacks', async function () {
    const r = await esm;
    assert.equal(r.code, 0, describeResult(r));
    assert.equal(r.stderr, '', describeResult(r));
    assert.deepEqual(r.stdout.trimEnd().split('\n'), ESM_EXPECTED, describeResult(r));
  });

  it("runs as CommonJS through require('sharedstruct') (require(esm), Node >= 20.19)", async function () {
    const r = await cjs;
    assert.equal(r.code, 0, describeResult(r));
    assert.equal(r.stderr, '', describeResult(r));
    assert.equal(r.stdout, 'cjs 2 2\n', describeResult(r));
  });

  it('type-checks a strict TypeScript consumer (strict, NodeNext, exactOptionalPropertyTypes, noUncheckedIndexedAccess) against the installed .d.ts', async function () {
    const r = await tsc;
    assert.equal(r.code, 0, describeResult(r));
  });

  it("a strict TypeScript app's own test imports sharedstruct/testing, starts 3 etcd members (binaries), kills the leader, and its client survives", async function () {
    const r = await testingApp;
    assert.equal(r.code, 0, describeResult(r));
    assert.equal(r.stderr, '', describeResult(r));
    assert.deepEqual(r.stdout.trimEnd().split('\n'), testingAppExpected('binary'), describeResult(r));
  });

  it('ships the sharedstruct bin: npx sharedstruct --help, --version, a command on memory://, exit 1 and 2 with one line on stderr', async function () {
    const [help, version, set, missing, unknown] = await bin;
    assert.equal(help!.code, 0, describeResult(help!));
    assert.match(help!.stdout, /^Usage: sharedstruct \[options\] COMMAND \[arguments\]$/m);
    for (const command of ['get', 'set', 'edit', 'watch', 'ls', 'listeners', 'members', 'locks', 'elections', 'history', 'queue', 'doctor']) {
      assert.match(help!.stdout, new RegExp(`^  ${command} `, 'm'), command);
    }
    assert.equal(help!.stderr, '', describeResult(help!));
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(version!.stdout, `${pkg.version}\n`, describeResult(version!));
    assert.equal(set!.code, 0, describeResult(set!));
    assert.deepEqual(JSON.parse(set!.stdout), { name: 'flags', version: 1, previousVersion: 0, created: true, changes: [{ kind: 'Added', path: [], value: { beta: true } }] });
    assert.equal(missing!.code, 1, describeResult(missing!));
    assert.match(missing!.stderr, /^sharedstruct: NOT_FOUND: struct 'nothing' does not exist/);
    assert.equal(unknown!.code, 2, describeResult(unknown!));
    assert.equal(unknown!.stderr, "sharedstruct: INVALID_ARGUMENT: unknown command 'frobnicate' (commands: get, set, edit, watch, ls, listeners, members, locks, elections, history, queue, doctor)\n");
  });
});
