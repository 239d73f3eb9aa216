/**
 * The CLI's contract that needs no server: help, version, usage errors (exit 2), failures
 * (exit 1 with the code and message, the stack only with --debug), run as the built binary on
 * `memory://` (a store of the CLI process's own).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { exited } from '../contract/cli.suite.js';
import { buildCli, runCli } from '../support/cli.js';
import { freePort } from '../support/process.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('cli: usage, help and exit status (memory://)', function () {
  this.timeout(60_000);
  before(async function () {
    this.timeout(180_000);
    await buildCli();
  });

  it('--help lists every command and the global options; COMMAND --help shows its own options (exit 0)', async () => {
    const help = exited(await runCli(['--help']), 0);
    for (const command of ['get', 'set', 'edit', 'watch', 'ls', 'listeners', 'members', 'locks', 'elections', 'history', 'queue', 'doctor']) assert.match(help.stdout, new RegExp(`^  ${command} `, 'm'));
    assert.match(help.stdout, /--url URL .*SHAREDSTRUCT_URL/);
    assert.match(help.stdout, /--namespace NS .*SHAREDSTRUCT_NAMESPACE/);
    const set = exited(await runCli(['set', '--help']), 0);
    assert.match(set.stdout, /^Usage: sharedstruct \[options\] set NAME \[JSON\|-\]$/m);
    assert.match(set.stdout, /--if-version N/);
    assert.match(set.stdout, /-f, --file FILE/);
    assert.equal(exited(await runCli(['--version']), 0).stdout, `${VERSION}\n`);
  });

  it('usage errors exit 2 with one line on stderr: unknown command, unknown option, missing or extra argument, no store, bad integer', async () => {
    const cases: [string[], RegExp][] = [
      [[], /missing COMMAND/],
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['get', 'x', '--nope', '--url', 'memory://'], /Unknown option '--nope'/],
      [['get', '--url', 'memory://'], /get: missing NAME/],
      [['get', 'a', 'b', '--url', 'memory://'], /get: unexpected argument 'b'/],
      [['get', 'x'], /no store given: pass --url URL or set SHAREDSTRUCT_URL/],
      [['get', 'x', '--url', 'memory://', '--user', 'ops'], /--user ops: no password: set SHAREDSTRUCT_PASSWORD or pass --password-file FILE/],
      [['get', 'x', '--url', 'memory://', '--password-file', '/dev/null'], /--password-file needs --user NAME/],
      [['get', 'x', '--url', 'memory://', '--cert', 'c.pem'], /--cert needs --key/],
      [['set', 'x', '{}', '--if-version', 'two', '--url', 'memory://'], /option '--if-version' must be an integer >= 0, got 'two'/],
      [['set', 'x', '{}', '--if-version=-1', '--url', 'memory://'], /option '--if-version' must be an integer >= 0, got '-1'/],
      [['get', 'x', '--codec', 'yaml', '--url', 'memory://'], /--codec yaml: no codec of that name \(known: json, msgpack\)/],
      [['set', 'x', '--url', 'memory://'], /set: missing the value/],
      [['get', 'x', '--url', 'memory://', '--timeout-ms', '0'], /'--timeout-ms' must be an integer >= 1/],
    ];
    for (const [args, message] of cases) {
      const r = exited(await runCli(args), 2);
      assert.match(r.stderr, /^sharedstruct: INVALID_ARGUMENT: /, args.join(' '));
      assert.match(r.stderr, message, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.equal(r.stdout, '');
    }
  });

  it('failures exit 1 with the code and message; the stack and causes only with --debug', async () => {
    const missing = exited(await runCli(['get', 'nothing', '--url', 'memory://']), 1);
    assert.equal(missing.stderr, "sharedstruct: NOT_FOUND: struct 'nothing' does not exist in namespace '/sharedstruct'; check the name and --namespace, or create it with 'sharedstruct set nothing JSON'\n");
    const debug = exited(await runCli(['get', 'nothing', '--url', 'memory://', '--debug']), 1);
    assert.match(debug.stderr, /^SharedStructError \[NOT_FOUND\]: struct 'nothing' does not exist/m);
    assert.match(debug.stderr, /\n\s+at .*dist\/cli\//);
    assert.match(debug.stderr, /^caused by:$/m);
    const badName = exited(await runCli(['get', '../etc', '--url', 'memory://']), 1);
    assert.match(badName.stderr, /^sharedstruct: INVALID_NAME: /);
    const badUrl = exited(await runCli(['get', 'x', '--url', 'nope://x']), 1);
    assert.match(badUrl.stderr, /^sharedstruct: INVALID_ARGUMENT: /);
    const port = await freePort();
    const refused = exited(await runCli(['get', 'x', '--url', `etcd://127.0.0.1:${port}`, '--timeout-ms', '2000']), 1);
    assert.match(refused.stderr, /^sharedstruct: CONNECTION: /);
    assert.doesNotMatch(refused.stderr, /\n\s+at /);
  });

  it('set and get within one memory:// process store: set creates, then an invalid JSON argument is INVALID_VALUE (exit 1)', async () => {
    const created = exited(await runCli(['set', 'x', '{"a":1}', '--url', 'memory://', '--json']), 0);
    assert.deepEqual(JSON.parse(created.stdout), { name: 'x', version: 1, previousVersion: 0, created: true, changes: [{ kind: 'Added', path: [], value: { a: 1 } }] });
    const bad = exited(await runCli(['set', 'x', '{"a":', '--url', 'memory://']), 1);
    assert.match(bad.stderr, /^sharedstruct: INVALID_VALUE: the value argument is not valid JSON/);
  });
});
