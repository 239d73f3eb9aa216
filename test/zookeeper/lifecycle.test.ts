/**
 * The ZooKeeper adapter in a user's process, observed from outside (a child process per case):
 * an unreachable server fails `connect()` fast and readably, an idle client lets the process
 * exit (its sockets, including every reconnect's, and its timers hold nothing), and a call that
 * is pending across a frozen server keeps the process alive until it completes.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../lib/index.js';
import { runScript, type ScriptResult } from '../support/script.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { freePort, freeze, sleep } from '../support/process.js';
import { startZooKeeper, type ZooKeeperCluster } from '../support/zookeeper.js';
import { quietLogger, zk } from './helpers.js';

/** The last line a script printed, parsed as JSON. */
function lastJson(result: ScriptResult): Record<string, unknown> {
  const lines = result.stdout.trim().split('\n');
  try {
    return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
  } catch {
    throw new Error(`no JSON last line; code ${result.code}, stdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
}

/** Runs a script and also returns when (Date.now()) it had exited, to measure exit lag. */
async function run(source: string, timeoutMs: number, env: Record<string, string> = {}): Promise<ScriptResult & { exitedAt: number }> {
  const result = await runScript(source, { timeoutMs, env });
  return { ...result, exitedAt: Date.now() };
}

function describeRun(result: ScriptResult): string {
  return `code ${result.code} signal ${result.signal} timedOut ${result.timedOut} after ${result.ms} ms\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

/**
 * Prints `{ ms, code, message, causeCode, causeIsSelf }` for one `connect()` to `url`. The
 * adapter module is loaded first (a bad chroot fails after the import), so `ms` is the connect
 * alone, not the transpile of the adapter.
 */
function connectProbe(url: string, connectTimeoutMs: number): string {
  return `
import { connect } from 'sharedstruct';
await connect('zk://127.0.0.1:1/bad//chroot').catch(() => undefined);
const started = Date.now();
try {
  await connect(${JSON.stringify(url)}, { connectTimeoutMs: ${connectTimeoutMs} });
  console.log(JSON.stringify({ connected: true }));
} catch (err) {
  console.log(JSON.stringify({
    ms: Date.now() - started,
    code: err.code,
    message: err.message,
    causeCode: err.cause?.code,
    causeIsSelf: err.cause === err,
    at: Date.now(),
  }));
}
`;
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  return freePort();
}

describe('zookeeper adapter: lifecycle in a user process', function () {
  this.timeout(60000);

  describe('an unreachable server', () => {
    let proxy: TcpProxy | undefined;
    afterEach(async () => {
      await proxy?.close();
      proxy = undefined;
    });

    it('every server refusing: CONNECTION within a few hundred ms, ECONNREFUSED named, the socket error as cause', async () => {
      const port = await closedPort();
      const result = await run(connectProbe(`zk://127.0.0.1:${port}`, 10000), 30000);
      assert.equal(result.code, 0, describeRun(result));
      const out = lastJson(result);
      assert.equal(out.code, 'CONNECTION', describeRun(result));
      console.log(`      (refused: connect() rejected after ${String(out.ms)} ms; connectTimeoutMs 10000)`);
      assert.ok((out.ms as number) < 1500, `rejected after ${String(out.ms)} ms (connectTimeoutMs 10000)`);
      assert.equal(out.causeCode, 'ECONNREFUSED');
      assert.equal(out.causeIsSelf, false);
      const message = out.message as string;
      assert.match(message, /ECONNREFUSED/);
      assert.match(message, new RegExp(`Is ZooKeeper running at 127\\.0\\.0\\.1:${port}\\?`));
      assert.match(message, /Check the URL/);
      assert.doesNotMatch(message, /^CONNECTION/);
      // Nothing of the failed client keeps the process: it ends right after its last line.
      assert.ok(result.exitedAt - (out.at as number) < 3000, `exited ${result.exitedAt - (out.at as number)} ms after its last line`);
    });

    it('several servers, all refusing: every host is listed', async () => {
      const [a, b] = [await closedPort(), await closedPort()];
      const result = await run(connectProbe(`zk://127.0.0.1:${a},127.0.0.1:${b}`, 10000), 30000);
      const out = lastJson(result);
      assert.equal(out.code, 'CONNECTION', describeRun(result));
      assert.ok((out.ms as number) < 1500, `rejected after ${String(out.ms)} ms`);
      assert.match(out.message as string, new RegExp(`127\\.0\\.0\\.1:${a} \\(ECONNREFUSED\\)`));
      assert.match(out.message as string, new RegExp(`127\\.0\\.0\\.1:${b} \\(ECONNREFUSED\\)`));
    });

    it('a server that accepts TCP but never answers (blackholed): CONNECTION at connectTimeoutMs, not later', async () => {
      const server = await zk();
      proxy = await startTcpProxy(server.nodes[0]!.port);
      proxy.setMode('blackhole');
      const result = await run(connectProbe(`zk://127.0.0.1:${proxy.port}`, 2000), 30000);
      const out = lastJson(result);
      assert.equal(out.code, 'CONNECTION', describeRun(result));
      const ms = out.ms as number;
      console.log(`      (blackholed: connect() rejected after ${ms} ms; connectTimeoutMs 2000)`);
      assert.ok(ms >= 1900 && ms < 2600, `rejected after ${ms} ms (connectTimeoutMs 2000)`);
      assert.match(out.message as string, /accepted the connection but never answered the session handshake/);
      assert.match(out.message as string, /connectTimeoutMs/);
      assert.equal(out.causeIsSelf, false);
      assert.ok(result.exitedAt - (out.at as number) < 3000, `exited ${result.exitedAt - (out.at as number)} ms after its last line`);
    });

    it('one server refusing and one silent: CONNECTION at connectTimeoutMs, naming what each did', async () => {
      const server = await zk();
      proxy = await startTcpProxy(server.nodes[0]!.port);
      proxy.setMode('blackhole');
      const refused = await closedPort();
      const result = await run(connectProbe(`zk://127.0.0.1:${refused},127.0.0.1:${proxy.port}`, 2000), 30000);
      const out = lastJson(result);
      assert.equal(out.code, 'CONNECTION', describeRun(result));
      const ms = out.ms as number;
      console.log(`      (one refused, one blackholed: connect() rejected after ${ms} ms; connectTimeoutMs 2000)`);
      assert.ok(ms >= 1900 && ms < 2600, `rejected after ${ms} ms (connectTimeoutMs 2000)`);
      assert.match(out.message as string, new RegExp(`127\\.0\\.0\\.1:${refused} failed: ECONNREFUSED`));
      assert.match(out.message as string, new RegExp(`127\\.0\\.0\\.1:${proxy.port} accepted the connection but never answered`));
      assert.equal(out.causeCode, 'ECONNREFUSED');
    });

    it('an uncaught rejection ends the script with status 1 and the readable message', async () => {
      const port = await closedPort();
      const result = await run(
        `import { connect } from 'sharedstruct';\nconsole.log('before');\nawait connect('zk://127.0.0.1:${port}');\nconsole.log('after');\n`,
        30000,
      );
      assert.equal(result.code, 1, describeRun(result));
      assert.match(result.stdout, /before/);
      assert.doesNotMatch(result.stdout, /after/);
      assert.match(result.stderr, /SharedStructError \[CONNECTION\]: ZooKeeper refused the connection/);
      assert.ok(result.ms < 10000, `took ${result.ms} ms (connectTimeoutMs defaults to 10000)`);
    });
  });

  describe('what holds the process', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'sharedstruct-lifecycle-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    /** Waits (bounded) for a marker file the script writes; fails at once if the script ended first. */
    const marker = async (name: string, result: Promise<ScriptResult>): Promise<void> => {
      let ended: ScriptResult | undefined;
      void result.then((r) => (ended = r));
      const deadline = Date.now() + 20000;
      while (!existsSync(join(dir, name))) {
        if (ended) throw new Error(`the script ended before writing ${name}: ${describeRun(ended)}`);
        if (Date.now() > deadline) throw new Error(`the script wrote no ${name} within 20 s`);
        await sleep(20);
      }
    };

    it('an idle client (connected, a struct open, a group joined, never closed) lets the process exit', async () => {
      const server = await zk();
      const result = await run(
        `
import { connect } from 'sharedstruct';
const client = await connect('zk://${server.connectString}', { namespace: '/lifecycle-idle-${process.pid}' });
const flags = await client.open('flags', { initial: { n: 0 } });
await flags.update((d) => { d.n += 1; });
await client.join('workers', { id: 'w1' });
console.log(JSON.stringify({ n: flags.read().n, at: Date.now() }));
`,
        20000,
      );
      assert.equal(result.code, 0, describeRun(result));
      assert.equal(result.timedOut, false);
      const out = lastJson(result);
      assert.equal(out.n, 1);
      assert.ok(result.exitedAt - (out.at as number) < 3000, `exited ${result.exitedAt - (out.at as number)} ms after its last line`);
    });

    it("an idle client whose connection was reset (the library's reconnect opened a new socket) still lets the process exit", async () => {
      const server = await zk();
      const proxy = await startTcpProxy(server.nodes[0]!.port);
      try {
        const script = run(
          `
import { writeFileSync } from 'node:fs';
import { connect } from 'sharedstruct';
// Held only until the reconnect has happened; after that, nothing of ours may hold the process.
const keep = setInterval(() => {}, 1000);
const client = await connect('zk://127.0.0.1:${proxy.port}', { namespace: '/lifecycle-reset-${process.pid}', sessionTtlMs: 6000 });
const flags = await client.open('flags', { initial: { n: 0 } });
const reconnected = new Promise((resolve) => client.on('state', (s) => { if (s.state === 'reconnected') resolve(s); }));
writeFileSync(${JSON.stringify(join(dir, 'ready'))}, '');
const state = await reconnected;
clearInterval(keep);
await flags.update((d) => { d.n += 1; });
console.log(JSON.stringify({ epoch: state.epoch, n: flags.read().n, at: Date.now() }));
`,
          30000,
        );
        await marker('ready', script);
        proxy.resetAll();
        const result = await script;
        assert.equal(result.code, 0, describeRun(result));
        const out = lastJson(result);
        assert.equal(out.epoch, 1, 'the same session came back on a new socket');
        assert.ok(result.exitedAt - (out.at as number) < 3000, `exited ${result.exitedAt - (out.at as number)} ms after its last line`);
      } finally {
        await proxy.close();
      }
    });

    describe('a call pending across a frozen server', () => {
      let own: ZooKeeperCluster | undefined;
      before(async () => {
        // Its own server: freezing the shared one would stall every other suite's sessions.
        own = await startZooKeeper();
      });
      after(async () => {
        await own?.stop();
      });

      /** Freezes the server, runs `whileFrozen`, thaws it after `ms` (SIGCONT even when something failed). */
      const freezeFor = async (ms: number, whileFrozen: () => void = () => {}): Promise<void> => {
        const node = own!.nodes[0]!;
        await freeze(node.pid);
        try {
          whileFrozen();
          await sleep(ms);
        } finally {
          node.resume();
        }
      };

      it('an update() sent while the server is frozen completes after SIGCONT, and the script ends by itself', async () => {
        const go = join(dir, 'go');
        const script = run(
          `
import { existsSync, writeFileSync } from 'node:fs';
import { connect } from 'sharedstruct';
const client = await connect('zk://${own!.connectString}', { namespace: '/lifecycle-update', sessionTtlMs: 10000, requestTimeoutMs: 8000 });
const flags = await client.open('flags', { initial: { n: 0 } });
writeFileSync(${JSON.stringify(join(dir, 'ready'))}, '');
// Waits (holding the process with its own timer) until the test has frozen the server.
for (let i = 0; i < 400 && !existsSync(${JSON.stringify(go)}); i++) await new Promise((r) => setTimeout(r, 25));
console.log('before');
const sent = Date.now();
const result = await flags.update((d) => { d.n += 1; });
console.log(JSON.stringify({ version: result.version, waitedMs: Date.now() - sent, at: Date.now() }));
`,
          40000,
        );
        await marker('ready', script);
        await freezeFor(2000, () => writeFileSync(go, ''));
        const result = await script;
        assert.equal(result.code, 0, describeRun(result));
        assert.match(result.stdout, /before/);
        const out = lastJson(result);
        assert.equal(out.version, 2);
        assert.ok((out.waitedMs as number) >= 1500, `the update waited ${String(out.waitedMs)} ms: it was not pending across the freeze`);
        assert.ok(result.exitedAt - (out.at as number) < 3000, `exited ${result.exitedAt - (out.at as number)} ms after its last line`);
      });

      it('a lock wait pending across a frozen server acquires once the holder releases, and the script ends by itself', async () => {
        const namespace = '/lifecycle-lock';
        const holder = await connect(`zk://${own!.connectString}`, { namespace, sessionTtlMs: 10000, logger: quietLogger });
        try {
          const held = await holder.lock('job');
          const script = run(
            `
import { writeFileSync } from 'node:fs';
import { connect } from 'sharedstruct';
const client = await connect('zk://${own!.connectString}', { namespace: ${JSON.stringify(namespace)}, sessionTtlMs: 10000 });
// From here on nothing but the library holds the process: the lock wait must.
writeFileSync(${JSON.stringify(join(dir, 'ready'))}, '');
console.log('waiting');
const started = Date.now();
const lock = await client.lock('job', { waitMs: 30000 });
const waitedMs = Date.now() - started;
await lock.release();
console.log(JSON.stringify({ token: lock.token, waitedMs, at: Date.now() }));
`,
            60000,
          );
          await marker('ready', script);
          await sleep(500); // the waiter has queued behind the holder
          await freezeFor(2000);
          await sleep(300);
          await held.release();
          const result = await script;
          assert.equal(result.code, 0, describeRun(result));
          const out = lastJson(result);
          assert.ok(BigInt(out.token as string) > BigInt(held.token), 'the waiter got the lock after the holder');
          assert.ok((out.waitedMs as number) >= 2500, `waited only ${String(out.waitedMs)} ms`);
          assert.ok(result.exitedAt - (out.at as number) < 3000, `exited ${result.exitedAt - (out.at as number)} ms after its last line`);
        } finally {
          await holder.close();
        }
      });
    });
  });
});
