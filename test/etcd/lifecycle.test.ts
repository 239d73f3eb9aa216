/**
 * The process lifecycle on a real etcd, from outside the process (test/support/script.ts): an
 * idle client lets its script exit whatever its connection is doing (healthy, server gone,
 * blackholed), a pending call keeps it alive across a frozen server, and an unreachable etcd
 * ends a fresh script with one clear CONNECTION: at once when the port refuses, at
 * `connectTimeoutMs` when it is silent.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privateEtcd, type EtcdCluster } from '../support/etcd.js';
import { freePort, sleep } from '../support/process.js';
import { runScript, type ScriptResult } from '../support/script.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

/** Imported first by scripts that time `connect()`: loading etcd3 (and tsx compiling it) takes ~1 s on its own. */
const ADAPTER = JSON.stringify(new URL('../../adapters/etcd/index.ts', import.meta.url).pathname);

const explain = (r: ScriptResult): string =>
  `exit ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''} after ${r.ms} ms\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

/**
 * A rendezvous between the test and its script through two files: the script says `ready` and
 * waits (on a timer of its own, bounded) until the test, having injected its fault, says `go`.
 */
class Rendezvous {
  readonly dir = mkdtempSync(join(tmpdir(), 'sharedstruct-lifecycle-'));
  readonly ready = join(this.dir, 'ready');
  readonly go = join(this.dir, 'go');

  /** The script side, to paste into a script. */
  get script(): string {
    return `
      import { existsSync as __exists, writeFileSync as __write } from 'node:fs';
      async function rendezvous() {
        __write(${JSON.stringify(this.ready)}, '');
        for (let i = 0; i < 1500 && !__exists(${JSON.stringify(this.go)}); i++) await new Promise((r) => setTimeout(r, 20));
      }
    `;
  }

  /** Resolves once the script is ready; rejects if it ended first or took more than 30 s. */
  async whenReady(run: Promise<ScriptResult>): Promise<void> {
    let ended: ScriptResult | undefined;
    void run.then((r) => (ended = r), () => undefined);
    const deadline = Date.now() + 30000;
    while (!existsSync(this.ready)) {
      if (ended) throw new Error(`the script ended before it was ready: ${explain(ended)}`);
      if (Date.now() > deadline) throw new Error('the script was not ready within 30 s');
      await sleep(20);
    }
  }

  release(): void {
    writeFileSync(this.go, '');
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The `last <ms>` line a script printed, and how long after it the script exited. */
function exitDelay(r: ScriptResult, spawnedAt: number): number {
  const m = /^last (\d+)$/m.exec(r.stdout);
  assert.ok(m, explain(r));
  return spawnedAt + r.ms - Number(m[1]);
}

describe('etcd adapter: process lifecycle', function () {
  this.timeout(90000);
  let etcd: EtcdCluster;
  const rendezvous: Rendezvous[] = [];
  const proxies: TcpProxy[] = [];

  before(async () => {
    etcd = await privateEtcd();
  });
  afterEach(async () => {
    for (const r of rendezvous.splice(0)) r.remove();
    await Promise.all(proxies.splice(0).map((p) => p.close()));
    for (const m of etcd.members) {
      if (m.running) m.resume();
      else await m.restart();
    }
  });
  after(async () => {
    await etcd?.stop();
  });

  const url = (): string => `etcd://${etcd.endpoints[0]}`;

  it('an idle client (struct open, watch and lease streams live) lets its script exit by itself', async () => {
    const spawnedAt = Date.now();
    const r = await runScript(`
      import { connect } from 'sharedstruct';
      const client = await connect(${JSON.stringify(url())}, { namespace: '/lifecycle-idle-${process.pid}' });
      const s = await client.open('s', { initial: { n: 0 } });
      s.on('change', () => {});
      await s.update((d) => { d.n += 1; });
      await client.join('workers', { id: 'w1' });
      console.log('n', s.read().n);
      console.log('last', Date.now());
    `, { timeoutMs: 20000 });
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stdout, /^n 1\n/, explain(r));
    const delay = exitDelay(r, spawnedAt);
    assert.ok(delay < 3000, `exited ${delay} ms after its last line\n${explain(r)}`);
  });

  for (const fault of ['killed', 'blackholed'] as const) {
    it(`an idle client whose connection is ${fault === 'killed' ? 'refused (etcd killed)' : 'blackholed'} lets its script exit while it reconnects`, async () => {
      const meet = new Rendezvous();
      rendezvous.push(meet);
      const proxy = await startTcpProxy(etcd.members[0]!.clientPort);
      proxies.push(proxy);
      const spawnedAt = Date.now();
      const run = runScript(`
        import { connect } from 'sharedstruct';
        ${meet.script}
        const client = await connect('etcd://127.0.0.1:${proxy.port}', { namespace: '/lifecycle-${fault}-${process.pid}', sessionTtlMs: 3000 });
        const s = await client.open('s', { initial: { n: 0 } });
        s.on('change', () => {});
        await rendezvous();
        // Give gRPC time to notice and start reconnecting (the reconnect backoff is 100 ms to 1 s).
        await new Promise((r) => setTimeout(r, 1500));
        console.log('last', Date.now());
      `, { timeoutMs: 30000 });
      await meet.whenReady(run);
      if (fault === 'killed') {
        await etcd.members[0]!.kill();
      } else {
        proxy.setMode('blackhole');
      }
      // Every connection is cut: the client reconnects, into a refusal or into a blackhole
      // (TCP accepted, nothing answers).
      proxy.resetAll();
      meet.release();
      const r = await run;
      assert.equal(r.code, 0, explain(r));
      const delay = exitDelay(r, spawnedAt);
      assert.ok(delay < 3000, `exited ${delay} ms after its last line\n${explain(r)}`);
    });
  }

  it('an update() pending while the server is frozen keeps the script alive until it completes', async () => {
    const meet = new Rendezvous();
    rendezvous.push(meet);
    const run = runScript(`
      import { connect } from 'sharedstruct';
      ${meet.script}
      const client = await connect(${JSON.stringify(url())}, { namespace: '/lifecycle-frozen-${process.pid}', requestTimeoutMs: 10000 });
      const s = await client.open('s', { initial: { n: 0 } });
      await rendezvous();
      const started = Date.now();
      const { value } = await s.update((d) => { d.n = 42; });
      console.log('updated', value.n, 'after', Date.now() - started, 'ms');
    `, { timeoutMs: 30000 });
    await meet.whenReady(run);
    await etcd.members[0]!.pause();
    meet.release();
    // Nothing but the pending update can hold the script now: its sockets are ours, unref'd.
    await sleep(2000);
    etcd.members[0]!.resume();
    const r = await run;
    assert.equal(r.code, 0, explain(r));
    const m = /^updated 42 after (\d+) ms$/m.exec(r.stdout);
    assert.ok(m, explain(r));
    assert.ok(Number(m[1]) >= 1500, `the update waited for the server (${m[1]} ms)\n${explain(r)}`);
  });

  it('a connect() pending while the server is frozen keeps the script alive until it connects', async () => {
    await etcd.members[0]!.pause();
    const run = runScript(`
      import { connect } from 'sharedstruct';
      const started = Date.now();
      const client = await connect(${JSON.stringify(url())}, { connectTimeoutMs: 15000 });
      console.log('connected after', Date.now() - started, 'ms');
    `, { timeoutMs: 30000 });
    await sleep(3000);
    etcd.members[0]!.resume();
    const r = await run;
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stdout, /^connected after \d+ ms\n$/, explain(r));
  });

  it('a refused port ends a fresh script with one CONNECTION error naming ECONNREFUSED, well before connectTimeoutMs', async () => {
    const port = await freePort();
    const r = await runScript(`
      import { connect } from 'sharedstruct';
      await import(${ADAPTER});
      const started = Date.now();
      await connect('etcd://127.0.0.1:${port}', { connectTimeoutMs: 10000 }).then(
        () => console.log('connected?'),
        (err) => {
          console.log('rejected after', Date.now() - started, 'ms');
          console.log(err.code);
          console.log(err.message);
          console.log('cause', String(err.cause));
          process.exitCode = 2;
        },
      );
    `, { timeoutMs: 20000 });
    assert.equal(r.code, 2, explain(r));
    const [timing, code, message, cause] = r.stdout.split('\n');
    const ms = Number(/^rejected after (\d+) ms$/.exec(timing ?? '')?.[1]);
    assert.ok(ms < 1500, `rejected after ${ms} ms\n${explain(r)}`);
    assert.equal(code, 'CONNECTION', explain(r));
    assert.equal(
      message,
      `could not connect to etcd at 127.0.0.1:${port}: 127.0.0.1:${port} refused the connection (ECONNREFUSED). Is etcd running at 127.0.0.1:${port}? Check the URL.`,
    );
    assert.match(cause ?? '', /ECONNREFUSED 127\.0\.0\.1:\d+/, 'the cause is gRPC\'s own error');
    assert.equal(r.stderr, '', explain(r));
  });

  it('an unhandled refusal ends the script with status 1 and the error on stderr', async () => {
    const port = await freePort();
    const r = await runScript(`
      import { connect } from 'sharedstruct';
      await connect('etcd://127.0.0.1:${port}');
      console.log('connected?');
    `, { timeoutMs: 20000 });
    assert.equal(r.code, 1, explain(r));
    assert.equal(r.stdout, '', explain(r));
    assert.match(r.stderr, /SharedStructError \[CONNECTION\]: could not connect to etcd at 127\.0\.0\.1:\d+: .* refused the connection \(ECONNREFUSED\)/, explain(r));
  });

  it('a blackholed endpoint rejects CONNECTION at connectTimeoutMs, not later', async () => {
    const proxy = await startTcpProxy(etcd.members[0]!.clientPort);
    proxies.push(proxy);
    proxy.setMode('blackhole');
    const r = await runScript(`
      import { connect } from 'sharedstruct';
      await import(${ADAPTER});
      const started = Date.now();
      try {
        await connect('etcd://127.0.0.1:${proxy.port}', { connectTimeoutMs: 2000 });
      } catch (err) {
        console.log(Date.now() - started);
        console.log(err.code);
        console.log(err.message);
      }
    `, { timeoutMs: 20000 });
    assert.equal(r.code, 0, explain(r));
    const [ms, code, message] = r.stdout.split('\n');
    assert.equal(code, 'CONNECTION', explain(r));
    assert.ok(Number(ms) >= 2000 && Number(ms) < 2000 + 1500, `rejected after ${ms} ms\n${explain(r)}`);
    assert.match(message ?? '', new RegExp(`^could not connect to etcd at 127\\.0\\.0\\.1:${proxy.port} within 2000 ms: 127\\.0\\.0\\.1:${proxy.port} accepted the connection but did not answer`));
  });

  it('one endpoint refusing and one blackholed: CONNECTION at connectTimeoutMs, naming what each did', async () => {
    const proxy = await startTcpProxy(etcd.members[0]!.clientPort);
    proxies.push(proxy);
    proxy.setMode('blackhole');
    const refused = await freePort();
    const r = await runScript(`
      import { connect } from 'sharedstruct';
      await import(${ADAPTER});
      for (const hosts of ['127.0.0.1:${refused},127.0.0.1:${proxy.port}', '127.0.0.1:${proxy.port},127.0.0.1:${refused}']) {
        const started = Date.now();
        try {
          await connect('etcd://' + hosts, { connectTimeoutMs: 2000 });
        } catch (err) {
          console.log(JSON.stringify({ ms: Date.now() - started, code: err.code, message: err.message, endpoints: err.details.endpoints }));
        }
      }
    `, { timeoutMs: 30000 });
    assert.equal(r.code, 0, explain(r));
    const results = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ms: number; code: string; message: string; endpoints: { endpoint: string; status: string }[] });
    assert.equal(results.length, 2, explain(r));
    for (const res of results) {
      assert.equal(res.code, 'CONNECTION');
      assert.ok(res.ms >= 2000 - 50 && res.ms < 2000 + 1500, `rejected after ${res.ms} ms`);
      const status = Object.fromEntries(res.endpoints.map((e) => [e.endpoint, e.status]));
      assert.equal(status[`127.0.0.1:${proxy.port}`], 'silent', res.message);
      // etcd3 picks an endpoint at random per call: the refusing one was tried, or the call
      // waited on the silent one all along.
      assert.ok(['refused', 'untried'].includes(status[`127.0.0.1:${refused}`]!), res.message);
    }
  });
});
