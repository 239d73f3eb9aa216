/**
 * The `sharedstruct` CLI against a real store: the built binary as a child process, and the
 * library in this process on the same store and namespace, so what one writes the other reads.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ChangeEvent, type Client } from '../../lib/index.js';
import { buildCli, runCli, type CliOptions, type CliResult } from '../support/cli.js';
import { quietLogger } from '../support/etcd.js';

/** A store the CLI can reach by URL. */
export interface CliTarget {
  readonly name: string;
  /** The store's URL (its server started on first use). */
  url(): Promise<string>;
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
      [url] = await Promise.all([target.url(), buildCli()]);
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
}
