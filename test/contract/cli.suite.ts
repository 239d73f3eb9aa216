/**
 * The `sharedstruct` CLI against a real store: the built binary as a child process, and the
 * library in this process on the same store and namespace, so what one writes the other reads.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, jsonCodec, msgpackCodec, type ChangeEvent, type Client } from '../../lib/index.js';
import { CLI_BIN, buildCli, runCli, startCli, startCliInPty, type CliOptions, type CliResult } from '../support/cli.js';
import { startTcpProxy } from '../support/tcp-proxy.js';
import { eventually } from './struct.suite.js';
import { quietLogger } from '../support/etcd.js';

/** A store the CLI can reach by URL. */
export interface CliTarget {
  readonly name: string;
  /** The loopback port of the store's (first) server, started on first use. */
  port(): Promise<number>;
  /** The URL of a server listening on `port` (the store's own, or a proxy's in front of it). */
  url(port: number): string;
  /** Whether the store keeps past versions (etcd) or not (ZooKeeper: `history` is UNSUPPORTED). */
  readonly history: boolean;
}

/** Asserts an exit status, showing the output when it differs. */
export function exited(result: CliResult, code: number): CliResult {
  assert.equal(result.code, code, `exit ${String(result.code)}, expected ${code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  return result;
}

export function cliContract(target: CliTarget): void {
  describe(`cli on ${target.name}: get and set`, function () {
    this.timeout(60_000);
    let url: string;
    let namespace: string;
    let client: Client;
    let scratch: string;
    const cli = (args: readonly string[], options: CliOptions = {}): Promise<CliResult> => runCli(['--url', url, '--namespace', namespace, ...args], options);

    before(async function () {
      this.timeout(180_000);
      const [port] = await Promise.all([target.port(), buildCli()]);
      url = target.url(port);
      scratch = mkdtempSync(join(tmpdir(), 'sharedstruct-cli-'));
    });
    beforeEach(async () => {
      namespace = `/cli-${randomUUID().slice(0, 8)}`;
      client = await connect(url, { namespace, logger: quietLogger });
    });
    afterEach(() => client.close());
    after(() => rmSync(scratch, { recursive: true, force: true }));

    it('get prints what the library wrote: the value on stdout, version and revision on stderr; --json for scripts', async () => {
      const flags = await client.open('flags', { initial: { beta: false, rollout: 0 } });
      await flags.update((d) => void (d.rollout = 25));
      const plain = exited(await cli(['get', 'flags']), 0);
      assert.deepEqual(JSON.parse(plain.stdout), { beta: false, rollout: 25 });
      assert.match(plain.stderr, new RegExp(`^flags: version 2, revision ${flags.stat().revision}, confirmed \\d+ ms ago`));
      const json = exited(await cli(['get', 'flags', '--json', '--consistent']), 0);
      const doc = JSON.parse(json.stdout) as Record<string, unknown>;
      assert.deepEqual(doc.value, { beta: false, rollout: 25 });
      assert.equal(doc.version, 2);
      assert.equal(doc.revision, flags.stat().revision);
      assert.equal(doc.consistent, true);
      assert.equal(typeof doc.stalenessMs, 'number');
      assert.equal(json.stderr, '');
    });

    it('set creates a struct the library opens, then updates it; the library subscriber sees the CLI as a remote writer with the diff', async () => {
      const created = exited(await cli(['set', 'config', '{"replicas":2,"mode":"a"}']), 0);
      assert.match(created.stderr, /^config: created$/m);
      const config = await client.open<{ replicas: number; mode?: string; zone?: string }>('config');
      assert.deepEqual(config.read(), { replicas: 2, mode: 'a' });
      const events = config.changes()[Symbol.asyncIterator]();
      const next = events.next();
      const updated = exited(await cli(['set', 'config', '{"replicas":3,"zone":"eu"}']), 0);
      assert.match(updated.stderr, /^config: version 1 → 2$/m);
      assert.match(updated.stderr, /^~ replicas: 2 → 3$/m);
      assert.match(updated.stderr, /^- mode: "a"$/m);
      assert.match(updated.stderr, /^\+ zone: "eu"$/m);
      const event = (await next).value as ChangeEvent<unknown>;
      assert.equal(event.version, 2);
      assert.equal(event.origin, 'remote');
      assert.deepEqual(
        [...event.changes].map((c) => `${c.kind} ${c.path.join('.')}`).sort(),
        ['Added zone', 'Modified replicas', 'Removed mode'],
      );
      await events.return?.();
      const same = exited(await cli(['set', 'config', '{"replicas":3,"zone":"eu"}', '--json']), 0);
      assert.deepEqual(JSON.parse(same.stdout), { name: 'config', version: 2, previousVersion: 2, created: false, changes: [] });
    });

    it('set --if-version N is one compare-and-set: it writes at N, and at a stale N fails CONFLICT (exit 1) writing nothing', async () => {
      const s = await client.open('counter', { initial: { n: 1 } });
      await s.update((d) => void (d.n = 2));
      const ok = exited(await cli(['set', 'counter', '{"n":10}', '--if-version', '2', '--json']), 0);
      assert.deepEqual(JSON.parse(ok.stdout), { name: 'counter', version: 3, previousVersion: 2, created: false, changes: [{ kind: 'Modified', path: ['n'], oldValue: 2, value: 10 }] });
      const stale = exited(await cli(['set', 'counter', '{"n":99}', '--if-version', '2']), 1);
      assert.match(stale.stderr, /^sharedstruct: CONFLICT: struct 'counter' is no longer at version 2 \(now 3\)/m);
      assert.doesNotMatch(stale.stderr, /\n\s+at /, 'no stack without --debug');
      assert.deepEqual(await s.readConsistent(), { n: 10 });
      const missing = exited(await cli(['set', 'nothing-here', '{}', '--if-version', '1']), 1);
      assert.match(missing.stderr, /^sharedstruct: NOT_FOUND: struct 'nothing-here' does not exist in namespace/m);
    });

    it('set --if-version 0 only creates: a missing struct is created at version 1; an existing one fails CONFLICT naming its version (exit 1), nothing written', async () => {
      const first = exited(await cli(['set', 'once', '{"owner":"cli"}', '--if-version', '0', '--json']), 0);
      assert.deepEqual(JSON.parse(first.stdout), { name: 'once', version: 1, previousVersion: 0, created: true, changes: [{ kind: 'Added', path: [], value: { owner: 'cli' } }] });
      const s = await client.open<{ owner: string }>('once');
      assert.deepEqual([s.read(), s.stat().version], [{ owner: 'cli' }, 1]);
      const again = exited(await cli(['set', 'once', '{"owner":"cli"}', '--if-version', '0']), 1);
      assert.match(again.stderr, /^sharedstruct: CONFLICT: struct 'once' already exists \(now at version 1\); nothing was written: pass --if-version 1 to replace that version/m);
      await s.update((d) => void (d.owner = 'app'));
      const later = exited(await cli(['set', 'once', '{"owner":"other"}', '--if-version', '0']), 1);
      assert.match(later.stderr, /^sharedstruct: CONFLICT: struct 'once' already exists \(now at version 2\)/m);
      assert.deepEqual(await s.readConsistent(), { owner: 'app' });
      assert.equal(s.stat().version, 2);
      const plain = exited(await cli(['set', 'twice', '{"n":1}', '--if-version', '0']), 0);
      assert.match(plain.stderr, /^twice: created$/m);
    });

    it('set --if-version 0 from racing processes with the very same value: exactly one creates (exit 0), every other fails CONFLICT (exit 1)', async () => {
      const results = await Promise.all([0, 1, 2, 3].map(() => cli(['set', 'raced', '{"same":true}', '--if-version', '0', '--json'])));
      const won = results.filter((r) => r.code === 0);
      assert.equal(won.length, 1, results.map((r) => `exit ${String(r.code)}: ${r.stdout}${r.stderr}`).join('\n'));
      assert.equal((JSON.parse(won[0]!.stdout) as { created: boolean }).created, true);
      for (const r of results.filter((r) => r.code !== 0)) assert.match(exited(r, 1).stderr, /^sharedstruct: CONFLICT: struct 'raced' already exists \(now at version 1\)/m);
      const s = await client.open<{ same: boolean }>('raced');
      assert.deepEqual([s.read(), s.stat().version], [{ same: true }, 1]);
    });

    it('--codec msgpack reads and writes a struct the library stores with msgpackCodec; without it the value is CORRUPT_REMOTE_VALUE pointing at --codec; an unknown codec is a usage error (exit 2)', async () => {
      const packed = await client.open<{ n: number; tags: string[] }>('packed', { initial: { n: 1, tags: ['a'] }, codec: msgpackCodec });
      const wrong = exited(await cli(['get', 'packed']), 1);
      assert.match(wrong.stderr, /^sharedstruct: CORRUPT_REMOTE_VALUE: .*written with codec 'msgpack'.*; if it was written with another codec, pass --codec NAME \(json, msgpack\)$/m);
      const got = JSON.parse(exited(await cli(['get', 'packed', '--codec', 'msgpack', '--json']), 0).stdout) as { value: unknown; version: number };
      assert.deepEqual([got.value, got.version], [{ n: 1, tags: ['a'] }, 1]);
      const written = exited(await cli(['set', 'packed', '{"n":2,"tags":["a","b"]}', '--codec', 'msgpack']), 0);
      assert.match(written.stderr, /^packed: version 1 → 2$/m);
      assert.deepEqual(await packed.readConsistent(), { n: 2, tags: ['a', 'b'] });
      exited(await cli(['set', 'packed', '{"n":3}', '--codec', 'msgpack', '--if-version', '2']), 0);
      assert.deepEqual(await packed.readConsistent(), { n: 3 });
      // A json write over it is refused before anything is sent: the CLI cannot read what is there.
      assert.match(exited(await cli(['set', 'packed', '{"n":4}']), 1).stderr, /^sharedstruct: CORRUPT_REMOTE_VALUE: /m);
      assert.equal(packed.stat().version, 3);

      exited(await cli(['set', 'fresh', '{"a":1}', '--codec', 'msgpack', '--if-version', '0']), 0);
      assert.deepEqual((await client.open('fresh', { codec: msgpackCodec })).read(), { a: 1 });
      await assert.rejects(client.open('fresh', { codec: jsonCodec }), { code: 'CORRUPT_REMOTE_VALUE' }, 'stored as msgpack, not JSON');
      exited(await cli(['set', 'plain', '{"a":1}', '--codec', 'json']), 0);
      assert.deepEqual((await client.open('plain')).read(), { a: 1 });

      for (const command of [['get', 'packed'], ['set', 'packed', '{}'], ['watch', 'packed'], ['edit', 'packed'], ['history', 'packed']]) {
        const bad = exited(await cli([...command, '--codec', 'cbor']), 2);
        assert.equal(bad.stderr, 'sharedstruct: INVALID_ARGUMENT: --codec cbor: no codec of that name (known: json, msgpack)\n', command.join(' '));
      }
      assert.equal(packed.stat().version, 3);
    });

    it("a struct stored with layout 'fields' is read and written in that layout: get, set (retrying and --if-version), the library sees each change", async () => {
      const wide = await client.open<Record<string, unknown>>('wide', { layout: 'fields', initial: { a: 1, b: { c: [1, 2] } } });
      const seen: ChangeEvent<Record<string, unknown>>[] = [];
      wide.on('change', (e) => void seen.push(e));
      const got = JSON.parse(exited(await cli(['get', 'wide', '--json']), 0).stdout) as { value: unknown; version: number };
      assert.deepEqual([got.value, got.version], [{ a: 1, b: { c: [1, 2] } }, 1]);
      assert.match(exited(await cli(['set', 'wide', '{"a":2,"b":{"c":[1,2]}}']), 0).stderr, /^wide: version 1 → 2\n~ a: 1 → 2$/m);
      exited(await cli(['set', 'wide', '{"a":2,"d":true}', '--if-version', '2']), 0);
      assert.deepEqual(await wide.readConsistent(), { a: 2, d: true });
      assert.equal(wide.stat().version, 3);
      await eventually('both CLI writes seen', () => seen.length === 2);
      assert.deepEqual(seen.map((e) => [e.version, e.origin]), [[2, 'remote'], [3, 'remote']]);
      assert.match(exited(await cli(['set', 'wide', '[1]']), 1).stderr, /^sharedstruct: INVALID_VALUE: /m);
      assert.equal((await wide.readConsistent(), wide.stat().version), 3);
    });

    it('set -f FILE and set - (stdin); invalid JSON writes nothing (INVALID_VALUE, exit 1)', async () => {
      const file = join(scratch, 'value.json');
      writeFileSync(file, '{"from":"file"}\n');
      exited(await cli(['set', 'doc', '-f', file]), 0);
      const s = await client.open('doc');
      assert.deepEqual(s.read(), { from: 'file' });
      exited(await cli(['set', 'doc', '-'], { stdin: '{"from":"stdin"}' }), 0);
      assert.deepEqual(await s.readConsistent(), { from: 'stdin' });
      const bad = exited(await cli(['set', 'doc', '-'], { stdin: '{"from":' }), 1);
      assert.match(bad.stderr, /^sharedstruct: INVALID_VALUE: stdin is not valid JSON: .*; nothing was written$/m);
      writeFileSync(file, 'not json');
      exited(await cli(['set', 'doc', '-f', file]), 1);
      assert.deepEqual(await s.readConsistent(), { from: 'stdin' });
      assert.equal(s.stat().version, 2);
    });

    it('set --schema NAME|FILE validates before writing: SCHEMA_VALIDATION (exit 1) leaves the struct as it was', async () => {
      const good = { beta: true, rollout: 10, regions: ['eu'] };
      exited(await cli(['set', 'flags', JSON.stringify(good), '--schema', 'flags']), 0);
      const bad = exited(await cli(['set', 'flags', '{"beta":"yes","rollout":10,"regions":[]}', '--schema', 'flags']), 1);
      assert.match(bad.stderr, /^sharedstruct: SCHEMA_VALIDATION: /m);
      const schemaFile = join(scratch, 'limits.schema.json');
      writeFileSync(schemaFile, JSON.stringify({ type: 'object', properties: { max: { type: 'integer', maximum: 10 } }, required: ['max'] }));
      exited(await cli(['set', 'limits', '{"max":5}', '--schema', schemaFile]), 0);
      const tooBig = exited(await cli(['set', 'limits', '{"max":50}', '--schema', schemaFile]), 1);
      assert.match(tooBig.stderr, /SCHEMA_VALIDATION/);
      assert.deepEqual((await client.open('flags')).read(), good);
      assert.deepEqual((await client.open('limits')).read(), { max: 5 });
      exited(await cli(['set', 'limits', '{"max":1}', '--schema', 'no-such-schema']), 2);
    });

    it('takes the store and namespace from SHAREDSTRUCT_URL / SHAREDSTRUCT_NAMESPACE; --namespace wins over the variable', async () => {
      await client.open('envs', { initial: { where: 'ns' } });
      const viaEnv = exited(await runCli(['get', 'envs'], { env: { SHAREDSTRUCT_URL: url, SHAREDSTRUCT_NAMESPACE: namespace } }), 0);
      assert.deepEqual(JSON.parse(viaEnv.stdout), { where: 'ns' });
      const other = exited(await runCli(['get', 'envs', '--namespace', `${namespace}-other`], { env: { SHAREDSTRUCT_URL: url, SHAREDSTRUCT_NAMESPACE: namespace } }), 1);
      assert.match(other.stderr, new RegExp(`NOT_FOUND: struct 'envs' does not exist in namespace '${namespace}-other'`));
    });
  });

  describe(`cli on ${target.name}: watch and edit`, function () {
    this.timeout(90_000);
    let port: number;
    let url: string;
    let namespace: string;
    let client: Client;
    let scratch: string;
    let editor: string;
    const args = (...rest: string[]): string[] => ['--url', url, '--namespace', namespace, ...rest];
    const cli = (rest: readonly string[], options: CliOptions = {}): Promise<CliResult> => runCli(args(...rest), options);

    before(async function () {
      this.timeout(180_000);
      [port] = await Promise.all([target.port(), buildCli()]);
      url = target.url(port);
      scratch = mkdtempSync(join(tmpdir(), 'sharedstruct-cli-'));
      // A scripted $EDITOR: EDIT_MODE says what it does to the file it is given.
      editor = join(scratch, 'editor.mjs');
      writeFileSync(
        editor,
        `import { readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
const file = process.argv[2];
const read = () => JSON.parse(readFileSync(file, 'utf8'));
let value;
switch (process.env.EDIT_MODE) {
  case 'bump': value = read(); value.n += 1; value.edited = true; writeFileSync(file, JSON.stringify(value, null, 2)); break;
  case 'invalid': writeFileSync(file, '{ "n": '); break;
  case 'same': break;
  case 'conflict-once': {
    // The first time another writer commits while the editor is open; the next, the replayed text is kept.
    const state = process.env.EDIT_STATE;
    let runs = 0;
    try { runs = Number(readFileSync(state, 'utf8')); } catch {}
    writeFileSync(state, String(runs + 1));
    if (runs > 0) break;
    value = read();
    execFileSync(process.execPath, [${JSON.stringify(CLI_BIN)}, '--url', process.env.EDIT_URL, '--namespace', process.env.EDIT_NS, 'set', process.env.EDIT_NAME, JSON.stringify({ ...value, other: 'writer' })]);
    value.n = 100; writeFileSync(file, JSON.stringify(value, null, 2)); break;
  }
  case 'invalid-once': {
    // Invalid the first time, a valid edit the next (the state file counts the runs).
    const state = process.env.EDIT_STATE;
    let runs = 0;
    try { runs = Number(readFileSync(state, 'utf8')); } catch {}
    writeFileSync(state, String(runs + 1));
    if (runs === 0) writeFileSync(file, '{ "n": ');
    else writeFileSync(file, JSON.stringify({ n: 42 }));
    break;
  }
  case 'fail': process.exit(3);
  case 'conflict':
    value = read();
    // Another writer commits while the editor is open.
    execFileSync(process.execPath, [${JSON.stringify(CLI_BIN)}, '--url', process.env.EDIT_URL, '--namespace', process.env.EDIT_NS, 'set', process.env.EDIT_NAME, JSON.stringify({ ...value, other: 'writer' })]);
    value.n = 100; writeFileSync(file, JSON.stringify(value, null, 2)); break;
}
`,
      );
    });
    beforeEach(async () => {
      namespace = `/cli-${randomUUID().slice(0, 8)}`;
      client = await connect(url, { namespace, logger: quietLogger });
    });
    afterEach(() => client.close());
    after(() => rmSync(scratch, { recursive: true, force: true }));

    const editorEnv = (mode: string, name: string): Record<string, string> => ({ EDITOR: `${process.execPath} ${editor}`, VISUAL: '', EDIT_MODE: mode, EDIT_URL: url, EDIT_NS: namespace, EDIT_NAME: name });

    it('watch --json: one line per event, the current value first, then writes of the library and of the CLI in order; SIGINT exits 0', async () => {
      const s = await client.open<{ n: number; by?: string }>('live', { initial: { n: 0 } });
      const watching = startCli(args('watch', 'live', '--json'));
      try {
        const first = JSON.parse(await watching.nextLine(20_000)) as Record<string, unknown>;
        assert.deepEqual([first.version, first.previousVersion, first.origin, first.value], [1, 0, 'resync', { n: 0 }]);
        await s.update((d) => void (d.n = 1));
        const second = JSON.parse(await watching.nextLine()) as Record<string, unknown>;
        assert.deepEqual([second.version, second.previousVersion, second.origin], [2, 1, 'remote']);
        assert.deepEqual(second.changes, [{ kind: 'Modified', path: ['n'], oldValue: 0, value: 1 }]);
        assert.deepEqual(second.value, { n: 1 });
        assert.equal(typeof second.revision, 'string');
        exited(await cli(['set', 'live', '{"n":1,"by":"cli"}']), 0);
        const third = JSON.parse(await watching.nextLine()) as Record<string, unknown>;
        assert.deepEqual([third.version, third.changes], [3, [{ kind: 'Added', path: ['by'], value: 'cli' }]]);
        const listeners = await client.inspect.listeners('live');
        assert.deepEqual(
          listeners.filter((l) => (l.data as { tool?: string }).tool === 'sharedstruct-cli').length,
          1,
          `the watching CLI is a listener, and says it is the CLI: ${JSON.stringify(listeners)}`,
        );
      } finally {
        const end = await watching.stop('SIGINT');
        assert.equal(end.code, 0, end.stderr);
        assert.equal(end.signal, null);
        assert.deepEqual(end.rest, [], 'no line after the last event');
        assert.equal(end.stderr, '');
      }
    });

    it('watch --json says when the struct is deleted: { name, deleted: true, revision }', async () => {
      const s = await client.open<{ n: number }>('gone', { initial: { n: 0 } });
      const watching = startCli(args('watch', 'gone', '--json'));
      try {
        await watching.nextLine(20_000);
        await s.delete();
        const line = JSON.parse(await watching.nextLine()) as Record<string, unknown>;
        assert.equal(line.deleted, true);
        assert.equal(line.name, 'gone');
        assert.match(String(line.revision), /^\d+$/);
      } finally {
        const end = await watching.stop('SIGINT');
        assert.equal(end.code, 0, end.stderr);
      }
    });

    it('watch for people: a header per version with origin and revision, the diff lines, and stderr saying when it started and stopped', async () => {
      const s = await client.open<{ mode: string; old?: boolean; added?: number }>('human', { initial: { mode: 'a', old: true } });
      const watching = startCli(args('watch', 'human'));
      assert.match(await watching.nextLine(20_000), new RegExp(`^human v1 revision ${s.stat().revision} \\d{4}-`), 'the header of the current value');
      assert.equal(await watching.nextLine(), '{');
      await s.update(() => ({ mode: 'b', added: 1 }));
      const lines: string[] = [];
      for (let i = 0; i < 30 && !lines.some((l) => l.includes('+ added')); i++) lines.push(await watching.nextLine());
      const end = await watching.stop('SIGINT');
      assert.equal(end.code, 0, end.stderr);
      const text = lines.join('\n');
      assert.match(text, /^human v1 → v2 remote revision \d+ \d{4}-\d\d-\d\dT/m);
      assert.match(text, /^ {2}~ mode: "a" → "b"$/m);
      assert.match(text, /^ {2}- old: true$/m);
      assert.match(text, /^ {2}\+ added: 1$/m);
      assert.ok(!text.includes('\x1b['), 'no colour into a pipe');
      assert.match(end.stderr, /^watching human in \/cli-\w+ \(\w+\); Ctrl-C to stop$/m);
      assert.match(end.stderr, /^stopped watching human$/m);
    });

    it('watch survives a dropped connection: says so on stderr, then shows the change committed meanwhile', async () => {
      const s = await client.open<{ n: number }>('flaky', { initial: { n: 0 } });
      const proxy = await startTcpProxy(port);
      const watching = startCli(['--url', target.url(proxy.port), '--namespace', namespace, 'watch', 'flaky', '--json', '--timeout-ms', '2000']);
      try {
        await watching.nextLine(20_000);
        proxy.setMode('blackhole');
        proxy.resetAll();
        await s.update((d) => void (d.n = 7));
        const deadline = Date.now() + 20_000;
        while (!/connection to the store lost/.test(watching.stderr()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        assert.match(watching.stderr(), /flaky: connection to the store lost/);
        proxy.setMode('pass');
        const event = JSON.parse(await watching.nextLine(30_000)) as Record<string, unknown>;
        assert.equal((event.value as { n: number }).n, 7);
        while (!/flaky: (reconnected|the session expired)/.test(watching.stderr()) && Date.now() < deadline + 10_000) await new Promise((r) => setTimeout(r, 100));
        assert.match(watching.stderr(), /flaky: (reconnected|the session expired)/);
      } finally {
        const end = await watching.stop('SIGINT');
        await proxy.close();
        assert.equal(end.code, 0, end.stderr);
      }
    });

    it('edit: the scripted $EDITOR changes the value; the diff is shown and the write is one CAS on the version opened', async () => {
      const s = await client.open<{ n: number; edited?: boolean }>('doc', { initial: { n: 1 } });
      const events = s.changes()[Symbol.asyncIterator]();
      const next = events.next();
      const r = exited(await cli(['edit', 'doc'], { env: editorEnv('bump', 'doc') }), 0);
      const event = (await next).value as ChangeEvent<unknown>;
      assert.deepEqual([event.version, event.origin, event.changes], [2, 'remote', [{ kind: 'Modified', path: ['n'], oldValue: 1, value: 2 }, { kind: 'Added', path: ['edited'], value: true }]]);
      await events.return?.();
      assert.match(r.stderr, /^~ n: 1 → 2$/m);
      assert.match(r.stderr, /^\+ edited: true$/m);
      assert.match(r.stderr, /^doc: version 1 → 2$/m);
      assert.deepEqual(await s.readConsistent(), { n: 2, edited: true });
      const json = exited(await cli(['edit', 'doc', '--json'], { env: editorEnv('same', 'doc') }), 0);
      assert.deepEqual(JSON.parse(json.stdout), { name: 'doc', version: 2, previousVersion: 2, changes: [] });
      assert.equal(s.stat().version, 2);
    });

    it('watch --codec msgpack and edit --codec msgpack: the live diffs and the edit of a struct stored with msgpackCodec', async () => {
      const s = await client.open<{ n: number; edited?: boolean }>('packed', { initial: { n: 1 }, codec: msgpackCodec });
      const watching = startCli(args('watch', 'packed', '--json', '--codec', 'msgpack'));
      try {
        const first = JSON.parse(await watching.nextLine(20_000)) as Record<string, unknown>;
        assert.deepEqual([first.version, first.value], [1, { n: 1 }]);
        const r = exited(await cli(['edit', 'packed', '--codec', 'msgpack'], { env: editorEnv('bump', 'packed') }), 0);
        assert.match(r.stderr, /^packed: version 1 → 2$/m);
        const second = JSON.parse(await watching.nextLine()) as Record<string, unknown>;
        assert.deepEqual([second.version, second.value], [2, { n: 2, edited: true }]);
        assert.deepEqual(await s.readConsistent(), { n: 2, edited: true });
      } finally {
        const end = await watching.stop('SIGINT');
        assert.equal(end.code, 0, end.stderr);
      }
      const wrongWatch = exited(await cli(['watch', 'packed']), 1);
      assert.match(wrongWatch.stderr, /^sharedstruct: CORRUPT_REMOTE_VALUE: .*pass --codec NAME/m);
      const wrongEdit = exited(await cli(['edit', 'packed'], { env: editorEnv('bump', 'packed') }), 1);
      assert.match(wrongEdit.stderr, /^sharedstruct: CORRUPT_REMOTE_VALUE: .*pass --codec NAME/m);
      assert.equal(s.stat().version, 2);
    });

    it('edit: invalid JSON from the editor is never written (INVALID_VALUE, exit 1); an editor that fails writes nothing (exit 1)', async () => {
      const s = await client.open<{ n: number }>('doc', { initial: { n: 1 } });
      const bad = exited(await cli(['edit', 'doc'], { env: editorEnv('invalid', 'doc') }), 1);
      assert.match(bad.stderr, /^sharedstruct: INVALID_VALUE: the edited file is not valid JSON: .*; nothing was written$/m);
      const failed = exited(await cli(['edit', 'doc'], { env: editorEnv('fail', 'doc') }), 1);
      assert.match(failed.stderr, /^sharedstruct: ABORTED: the editor \(.*editor\.mjs\) exited with status 3; nothing was written$/m);
      assert.deepEqual(await s.readConsistent(), { n: 1 });
      assert.equal(s.stat().version, 1);
    });

    it("edit: another writer commits while the editor is open: CONFLICT (exit 1), their change shown, theirs kept", async () => {
      const s = await client.open<{ n: number; other?: string }>('doc', { initial: { n: 1 } });
      const r = exited(await cli(['edit', 'doc'], { env: editorEnv('conflict', 'doc') }), 1);
      assert.match(r.stderr, /^doc was changed by another writer while you edited \(version 1 → 2\); their change:$/m);
      assert.match(r.stderr, /^ {2}\+ other: "writer"$/m);
      assert.match(r.stderr, /^sharedstruct: CONFLICT: struct 'doc' changed from version 1 to 2 while it was edited; nothing was written/m);
      assert.deepEqual(await s.readConsistent(), { n: 1, other: 'writer' });
    });

    it('in a terminal (a pty): watch colours its diffs, NO_COLOR turns that off, Ctrl-C ends it with status 0', async () => {
      const s = await client.open<{ mode: string; old?: boolean; added?: number }>('tty', { initial: { mode: 'a', old: true } });
      const coloured = startCliInPty(args('watch', 'tty'));
      await coloured.waitFor(/Ctrl-C to stop/, 20_000);
      await coloured.waitFor(/"mode": "a"/);
      await s.update(() => ({ mode: 'b', added: 1 }));
      // Each diff line whole, escape sequences included (the terminal may show a line in pieces).
      const shows = async (text: string, what: string): Promise<void> => {
        const deadline = Date.now() + 15_000;
        while (!coloured.output().includes(text)) {
          if (Date.now() > deadline) assert.fail(`${what}: ${coloured.output()}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      };
      await shows('\x1b[32m+ added: 1\x1b[39m', 'Added in green');
      await shows('\x1b[31m- old: true\x1b[39m', 'Removed in red');
      await shows('\x1b[33m~ mode: "a" → "b"\x1b[39m', 'Modified in yellow');
      coloured.type('\x03');
      assert.equal(await coloured.exit(), 0, coloured.output());
      assert.match(coloured.output(), /stopped watching tty/);

      const plain = startCliInPty(args('watch', 'tty'), { env: { NO_COLOR: '1' } });
      await plain.waitFor(/"mode": "b"/, 20_000);
      plain.type('\x03');
      assert.equal(await plain.exit(), 0, plain.output());
      const styled = plain.output().split('\x1b[').slice(1).filter((part) => /^\d+(;\d+)*m/.test(part));
      assert.deepEqual(styled, [], 'NO_COLOR: no colour on a terminal');
    });

    it('in a terminal (a pty): after a CONFLICT, edit replays your change on the other writer\'s version and writes both', async () => {
      const s = await client.open<{ n: number; other?: string }>('doc', { initial: { n: 1 } });
      const env = { ...editorEnv('conflict-once', 'doc'), EDIT_STATE: join(scratch, `state-${randomUUID()}`) };
      const editing = startCliInPty(args('edit', 'doc'), { env });
      await editing.waitFor(/re-edit with your change replayed on their version\? \[Y\/n\]/, 20_000);
      assert.match(editing.output(), /\+ other: "writer"/);
      editing.type('y\r');
      assert.equal(await editing.exit(), 0, editing.output());
      assert.match(editing.output(), /doc: version 2 → 3/);
      assert.deepEqual(await s.readConsistent(), { n: 100, other: 'writer' });
    });

    it('in a terminal (a pty): edit re-opens the editor on invalid JSON after asking, then writes the valid edit', async () => {
      const s = await client.open<{ n: number }>('doc', { initial: { n: 1 } });
      const env = { ...editorEnv('invalid-once', 'doc'), EDIT_STATE: join(scratch, `state-${randomUUID()}`) };
      const editing = startCliInPty(args('edit', 'doc'), { env });
      await editing.waitFor(/re-open the editor\? \[Y\/n\]/, 20_000);
      assert.match(editing.output(), /the edited file is not valid JSON/);
      editing.type('\r');
      assert.equal(await editing.exit(), 0, editing.output());
      assert.match(editing.output(), /doc: version 1 → 2/);
      assert.deepEqual(await s.readConsistent(), { n: 42 });
    });
  });

  describe(`cli on ${target.name}: ls, listeners, members, locks, elections, history, queue, doctor`, function () {
    this.timeout(90_000);
    let port: number;
    let url: string;
    let namespace: string;
    let client: Client;
    let other: Client;
    const cli = (rest: readonly string[], options: CliOptions = {}): Promise<CliResult> => runCli(['--url', url, '--namespace', namespace, ...rest], options);
    const json = async <T>(rest: readonly string[]): Promise<T> => JSON.parse(exited(await cli([...rest, '--json']), 0).stdout) as T;

    before(async function () {
      this.timeout(180_000);
      [port] = await Promise.all([target.port(), buildCli()]);
      url = target.url(port);
    });
    beforeEach(async () => {
      namespace = `/cli-${randomUUID().slice(0, 8)}`;
      [client, other] = await Promise.all([connect(url, { namespace, logger: quietLogger }), connect(url, { namespace, logger: quietLogger })]);
    });
    afterEach(() => Promise.all([client.close(), other.close()]));

    it('ls lists the structs the library made, with version, size, layout and listeners; a prefix narrows it; listeners shows who has one open', async () => {
      const flags = await client.open('flags', { initial: { beta: false }, label: 'app-1' });
      await other.open('flags', { label: 'app-2' });
      await flags.update((d) => void (d.beta = true));
      await client.open('team/config', { initial: { replicas: 3 } });
      const structs = await json<{ name: string; version: number; sizeBytes: number; layout: string; listeners: number }[]>(['ls']);
      assert.deepEqual(structs.map((s) => [s.name, s.version, s.sizeBytes, s.layout, s.listeners]), [
        ['flags', 2, 13, 'value', 2],
        ['team/config', 1, 14, 'value', 1],
      ]);
      const plain = exited(await cli(['ls']), 0);
      assert.match(plain.stdout, /^NAME +VERSION +SIZE +LAYOUT +LISTENERS +SERVER$/m);
      assert.match(plain.stdout, /^flags +2 +13 B +value +2$/m);
      assert.deepEqual((await json<{ name: string }[]>(['ls', 'team/'])).map((s) => s.name), ['team/config']);
      const none = exited(await cli(['ls', 'nothing/']), 0);
      assert.match(none.stderr, /no structs in \/cli-\w+ starting with 'nothing\/'/);
      const listeners = await json<{ id: string; data: { host: string; pid: number } }[]>(['listeners', 'flags']);
      assert.deepEqual(listeners.map((l) => l.id).sort(), ['app-1', 'app-2']);
      assert.equal(listeners[0]!.data.pid, process.pid);
      assert.match(exited(await cli(['listeners', 'flags']), 0).stdout, /^app-\d {2}\d+ ms|^app-\d {2}[\d.]+ s/m);
    });

    it('members lists a group without joining it; locks shows the holder, the queue and tokens; elections the leader', async () => {
      await client.join('workers', { id: 'w1', data: { zone: 'eu' } });
      await other.join('workers', { id: 'w2' });
      const members = await json<{ id: string; data: unknown }[]>(['members', 'workers']);
      assert.deepEqual(members.map((m) => [m.id, m.data]).sort(), [['w1', { zone: 'eu' }], ['w2', null]]);
      assert.match(exited(await cli(['members', 'workers']), 0).stdout, /^w1 +\S+ \S+ +\{"zone":"eu"\}$/m);

      const held = await client.lock('nightly');
      const waiting = other.lock('nightly', { waitMs: 30_000 });
      let locks: { name: string; kind: string; holder: { token: string; pid: number }; waiting: { token: string }[] }[] = [];
      for (let i = 0; i < 50 && locks[0]?.waiting.length !== 1; i++) locks = await json(['locks', 'nightly']);
      assert.equal(locks.length, 1);
      assert.equal(locks[0]!.holder.token, held.token);
      assert.equal(locks[0]!.holder.pid, process.pid);
      const text = exited(await cli(['locks']), 0).stdout;
      assert.match(text, /^nightly: 1 waiting$/m);
      assert.match(text, new RegExp(`^  held by \\S+ \\S+:${process.pid} token ${held.token}, queued \\S+ \\S+ ago, session ttl 10.0 s$`, 'm'));
      assert.match(text, new RegExp(`^  1\\. \\S+ \\S+:${process.pid} token ${locks[0]!.waiting[0]!.token},`, 'm'));
      await held.release();
      await (await waiting).release();
      assert.match(exited(await cli(['locks', 'nightly']), 0).stderr, /lock 'nightly' is free/);

      const leader = client.election('scheduler', { id: 'node-1', data: { addr: 'a:1' } });
      const term = await leader.campaign();
      const elections = await json<{ name: string; leader: { id: string; token: string; data: unknown } }[]>(['elections']);
      assert.deepEqual(elections.map((e) => [e.name, e.leader.id, e.leader.token, e.leader.data]), [['scheduler', 'node-1', term.token, { addr: 'a:1' }]]);
      assert.match(exited(await cli(['elections']), 0).stdout, new RegExp(`^  leader node-1 token ${term.token} \\{"addr":"a:1"\\}$`, 'm'));
      await leader.resign();
    });

    if (target.history) {
      it('history shows past versions newest first with their diffs; --limit bounds it', async () => {
        const s = await client.open<{ n: number; tag?: string }>('h', { initial: { n: 0 } });
        await s.update((d) => void (d.n = 1));
        await s.update((d) => void (d.tag = 'x'));
        const h = await json<{ versions: { version: number; changes: unknown[] }[] }>(['history', 'h']);
        assert.deepEqual(h.versions.map((v) => v.version), [3, 2, 1]);
        assert.deepEqual(h.versions[0]!.changes, [{ kind: 'Added', path: ['tag'], value: 'x' }]);
        const text = exited(await cli(['history', 'h', '--limit', '2']), 0);
        assert.match(text.stdout, /^h v3 revision \d+\n {2}\+ tag: "x"\nh v2 revision \d+\n {2}~ n: 0 → 1$/m);
        assert.match(text.stderr, /older versions: sharedstruct history h --limit 4/);
        assert.match(exited(await cli(['history', 'h', '--limit', '5']), 0).stdout, /^h v1 revision \d+\n {2}created: \{"n":0\}$/m);
      });

      it('history --codec msgpack decodes the versions of a struct stored with msgpackCodec; without it each version says it is not decodable', async () => {
        const s = await client.open<{ n: number }>('hp', { initial: { n: 0 }, codec: msgpackCodec });
        await s.update((d) => void (d.n = 1));
        const h = await json<{ versions: { version: number; value: unknown; changes: unknown[]; error?: string }[] }>(['history', 'hp', '--codec', 'msgpack']);
        assert.deepEqual(h.versions.map((v) => [v.version, v.value, v.changes, v.error]), [
          [2, { n: 1 }, [{ kind: 'Modified', path: ['n'], oldValue: 0, value: 1 }], undefined],
          [1, { n: 0 }, [], undefined],
        ]);
        const wrong = exited(await cli(['history', 'hp']), 0);
        assert.match(wrong.stdout, /^hp v2 revision \d+\n {2}not decodable with the json codec: the value was written with codec 'msgpack'/m);
      });
    } else {
      it('history is UNSUPPORTED (exit 1) and says why', async () => {
        await client.open('h', { initial: { n: 0 } });
        const r = exited(await cli(['history', 'h']), 1);
        assert.match(r.stderr, /^sharedstruct: UNSUPPORTED: history of \S+: ZooKeeper keeps only a znode's current data/m);
      });
    }

    it("queue shows a durable server's pending messages and dead letters; --retry requeues one, --drop deletes one", async () => {
      const server = await client.server<{ n: number }, { by?: number; bad?: boolean }>('jobs', {
        initial: { n: 0 },
        maxAttempts: 1,
        handle(draft, msg) {
          if (msg.bad) throw new Error('bad message');
          draft.n += msg.by ?? 0;
        },
      });
      await server.cast({ bad: true });
      await server.cast({ by: 2 });
      const waiting = await json<{ pending: number; claimed: number; head: { msg: unknown; attempts: number }; dead: unknown[] }>(['queue', 'jobs']);
      assert.deepEqual([waiting.pending, waiting.claimed, waiting.head.msg, waiting.head.attempts, waiting.dead], [2, 0, { bad: true }, 0, []]);
      assert.match(exited(await cli(['queue', 'jobs']), 0).stdout, /^jobs: 2 pending \(0 claimed\), 0 dead letter\(s\)\n {2}head \S+: queued .* ago, 0 failed attempt\(s\): \{"bad":true\}$/m);
      const consumer = await server.serve();
      let dead: { id: string; error: { message: string } }[] = [];
      for (let i = 0; i < 100 && dead.length === 0; i++) {
        dead = (await server.deadLetters()).map((d) => ({ id: d.id, error: d.error }));
        if (dead.length === 0) await new Promise((r) => setTimeout(r, 50));
      }
      await consumer.stop();
      const view = exited(await cli(['queue', 'jobs']), 0).stdout;
      assert.match(view, /^jobs: 0 pending \(0 claimed\), 1 dead letter\(s\)$/m);
      assert.match(view, new RegExp(`^${dead[0]!.id} +\\S+ \\S+ ago +1 +bad message +\\{"bad":true\\}$`, 'm'));
      const retried = await json<{ retried: string; id: string }>(['queue', 'jobs', '--retry', dead[0]!.id]);
      assert.equal(retried.retried, dead[0]!.id);
      assert.deepEqual((await server.pending()).map((m) => m.id), [retried.id]);
      assert.deepEqual(await server.deadLetters(), []);
      const again = exited(await cli(['queue', 'jobs', '--drop', dead[0]!.id]), 1);
      assert.match(again.stderr, /^sharedstruct: NOT_FOUND: server 'jobs' has no dead letter/m);
      const consumer2 = await server.serve();
      for (let i = 0; i < 100 && (await server.deadLetters()).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      await consumer2.stop();
      const [letter] = await server.deadLetters();
      exited(await cli(['queue', 'jobs', '--drop', letter!.id]), 0);
      assert.deepEqual(await server.deadLetters(), []);
      exited(await cli(['queue', 'jobs', '--drop', 'x', '--retry', 'y']), 2);
      assert.match(exited(await cli(['queue', 'no-server']), 1).stderr, /^sharedstruct: NOT_FOUND: struct 'no-server' does not exist in namespace/m);
    });

    it('queue --codec msgpack shows a server whose state is stored with msgpackCodec; without it the error points at --codec', async () => {
      const server = await client.server<{ n: number }, { by: number }>('packed-jobs', { initial: { n: 0 }, codec: msgpackCodec });
      await server.cast({ by: 3 });
      const shown = await json<{ pending: number; head: { msg: unknown } }>(['queue', 'packed-jobs', '--codec', 'msgpack']);
      assert.deepEqual([shown.pending, shown.head.msg], [1, { by: 3 }]);
      assert.match(exited(await cli(['queue', 'packed-jobs']), 1).stderr, /^sharedstruct: CORRUPT_REMOTE_VALUE: .*pass --codec NAME/m);
      assert.match(exited(await cli(['queue', 'packed-jobs', '--codec', 'yaml']), 2).stderr, /--codec yaml: no codec of that name/);
    });

    it('doctor: every endpoint reachable with its version and role, the round trip and session; an unreachable endpoint is a problem (exit 1)', async () => {
      const ok = exited(await cli(['doctor']), 0);
      assert.match(ok.stdout, /^(etcd|zookeeper): connected in \S+ \S+, round trip \S+ \S+ \(median of 3 reads\)$/m);
      assert.match(ok.stdout, new RegExp(`^127\\.0\\.0\\.1:${port} +ok +\\d+\\.\\d+\\.\\d+ +(leader|standalone|follower)`, 'm'));
      assert.match(ok.stdout, /^no problems found$/m);
      const report = await json<{ endpoints: { reachable: boolean; version: string; roundTripMs: number }[]; session: { ttlMs: number }; problems: string[] }>(['doctor']);
      assert.equal(report.endpoints.length, 1);
      assert.equal(report.endpoints[0]!.reachable, true);
      assert.match(report.endpoints[0]!.version, /^3\.\d+\.\d+$/);
      assert.ok(report.session.ttlMs > 0);
      assert.deepEqual(report.problems, []);
      const dead = await startTcpProxy(1);
      const deadPort = dead.port;
      await dead.close();
      const withDead = `${target.url(port)},127.0.0.1:${deadPort}`;
      const bad = exited(await runCli(['--url', withDead, '--namespace', namespace, 'doctor', '--timeout-ms', '3000']), 1);
      assert.match(bad.stdout, new RegExp(`^127\\.0\\.0\\.1:${deadPort} +unreachable`, 'm'), bad.stderr);
      assert.match(bad.stderr, new RegExp(`^sharedstruct: CONNECTION: 1 problem\\(s\\) found: 127\\.0\\.0\\.1:${deadPort} is unreachable`, 'm'));
    });
  });
}
