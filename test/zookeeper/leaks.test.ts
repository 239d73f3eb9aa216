/**
 * What the adapter must not leave behind (issue 13): abort listeners on signals that outlive one
 * wait (a watch's own signal across session replacements, a caller's signal across the watches
 * it was given), and watchers of reads nobody waits for any more, which the library would re-send
 * in every SetWatches after a reconnect.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import type { ZkWatch } from '../../adapters/zookeeper/watch.js';
import { startTcpProxy } from '../support/tcp-proxy.js';
import { sleep } from '../support/process.js';
import { OP_SET_WATCHES, startWireTap, type WireTap } from './wire-tap.js';
import { bytes, closeAll, expireSession, openBackend, uniquePrefix, waitForState, zk } from './helpers.js';

function abortListeners(signal: AbortSignal): number {
  return getEventListeners(signal, 'abort').length;
}

/** Waits (bounded) until `check` holds; returns whether it did. */
async function eventually(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

/** Every path the SetWatches of connections after the first re-armed. */
function reArmed(tap: WireTap): string[] {
  return tap.requests
    .filter((r) => r.type === OP_SET_WATCHES && r.connection > 1)
    .flatMap((r) => [...r.setWatches!.data, ...r.setWatches!.exist, ...r.setWatches!.child]);
}

describe('zookeeper adapter: nothing left behind', function () {
  this.timeout(60000);
  afterEach(() => closeAll());

  it("a watch that ends removes its listener from the caller's signal (one signal, many watches)", async () => {
    const b = await openBackend();
    const prefix = uniquePrefix('leak-caller');
    await b.create(`${prefix}/k`, bytes('1'));
    const caller = new AbortController();
    for (let i = 0; i < 20; i++) {
      const watch = b.watch(i % 2 === 0 ? { key: `${prefix}/k` } : { prefix }, { signal: caller.signal }) as ZkWatch;
      await watch.armed();
      watch.close();
    }
    assert.equal(abortListeners(caller.signal), 0, 'listeners left on the caller signal after 20 closed watches');
    // Still wired while a watch is open: the caller's abort closes it.
    const open = b.watch({ key: `${prefix}/k` }, { signal: caller.signal });
    assert.equal(abortListeners(caller.signal), 1);
    caller.abort();
    const ended = await (async () => {
      for await (const _ of open) {
        // drain
      }
      return true;
    })();
    assert.ok(ended);
    assert.equal(abortListeners(caller.signal), 0);
  });

  it("watches started while a lost session is being replaced leave no listener on their signal, over three expiries", async () => {
    const server = await zk();
    const proxy = await startTcpProxy(server.nodes[0]!.port);
    try {
      const b = await openBackend({ hosts: [`127.0.0.1:${proxy.port}`], overrides: { sessionTtlMs: 2000, connectTimeoutMs: 2000 } });
      const prefix = uniquePrefix('leak-renew');
      await b.create(`${prefix}/k`, bytes('1'));
      const watches: ZkWatch[] = [];
      for (let round = 1; round <= 3; round++) {
        const epoch = b.session.epoch;
        // Expired on the server, and the client kept away from it: it declares the session lost
        // and keeps trying new ones, which the proxy swallows.
        await expireSession(b, server.connectString, proxy, 'blackhole');
        await waitForState(b, 'lost', 10000);
        // Its worker waits for the next session.
        const during = [b.watch({ key: `${prefix}/k` }) as ZkWatch, b.watch({ prefix }) as ZkWatch];
        watches.push(...during);
        await sleep(100);
        proxy.setMode('pass');
        proxy.resetAll();
        await waitForState(b, 'reconnected', 10000);
        assert.equal(b.session.epoch, epoch + 1);
        await Promise.all(during.map((w) => w.armed()));
        // Every watch idles on the new session (earlier ones re-armed after the renewal).
        const idle = await eventually(() => watches.every((w) => abortListeners(w.signal) === 0), 3000);
        assert.ok(idle, `round ${round}: abort listeners on the watches' signals: ${watches.map((w) => abortListeners(w.signal)).join(',')}`);
      }
    } finally {
      await proxy.close();
    }
  });

  it('a read aborted before its reply (the watch closed) leaves no watcher for the SetWatches of a reconnect', async () => {
    const server = await zk();
    const tap = await startWireTap(server.nodes[0]!.port);
    try {
      const b = await openBackend({ hosts: [`127.0.0.1:${tap.port}`], overrides: { sessionTtlMs: 6000 } });
      const prefix = uniquePrefix('leak-setwatches');
      await b.create(`${prefix}/a`, bytes('1'));
      await b.create(`${prefix}/b`, bytes('2'));
      const path = b.pathOf(prefix);
      // The getChildren that arms the child watch reaches the server; its reply is held.
      tap.holdWhen((r) => r.type === 12 && r.path === path);
      const watch = b.watch({ prefix }) as ZkWatch;
      assert.ok(await eventually(() => tap.requests.some((r) => r.type === 12 && r.path === path), 5000), 'no getChildren sent');
      watch.close();
      tap.release();
      await sleep(200); // the late reply is read
      tap.resetAll();
      await waitForState(b, 'suspended', 5000);
      await waitForState(b, 'reconnected', 10000);
      // Sent after the reconnect's SetWatches (one session answers in order): it has been seen.
      await b.get(`${prefix}/a`);
      assert.equal(b.session.epoch, 1, 'the same session came back');
      assert.deepEqual(reArmed(tap).filter((p) => p.startsWith(path)), [], 'paths of the closed watch re-armed by SetWatches');
    } finally {
      await tap.close();
    }
  });

  it("a watch closed while its first child reads are in flight unregisters the child watch its list left", async () => {
    const server = await zk();
    const tap = await startWireTap(server.nodes[0]!.port);
    try {
      const b = await openBackend({ hosts: [`127.0.0.1:${tap.port}`], overrides: { sessionTtlMs: 6000 } });
      const prefix = uniquePrefix('leak-midway');
      await b.create(`${prefix}/a`, bytes('1'));
      const path = b.pathOf(prefix);
      // The list's reply arrives (and leaves a child watcher); the child reads' replies are held.
      tap.holdWhen((r) => r.type === 4 && r.path === `${path}/a`);
      const watch = b.watch({ prefix }) as ZkWatch;
      assert.ok(await eventually(() => tap.requests.some((r) => r.type === 4 && r.path === `${path}/a`), 5000), 'no getData sent');
      watch.close();
      tap.release();
      await sleep(200);
      tap.resetAll();
      await waitForState(b, 'suspended', 5000);
      await waitForState(b, 'reconnected', 10000);
      await b.get(`${prefix}/a`);
      assert.deepEqual(reArmed(tap).filter((p) => p.startsWith(path)), [], 'paths of the closed watch re-armed by SetWatches');
    } finally {
      await tap.close();
    }
  });

  it('an open prefix watch is still re-armed by SetWatches after a reconnect (the tap sees it)', async () => {
    const server = await zk();
    const tap = await startWireTap(server.nodes[0]!.port);
    try {
      const b = await openBackend({ hosts: [`127.0.0.1:${tap.port}`], overrides: { sessionTtlMs: 6000 } });
      const prefix = uniquePrefix('leak-control');
      await b.create(`${prefix}/a`, bytes('1'));
      const watch = b.watch({ prefix }) as ZkWatch;
      await watch.armed();
      tap.resetAll();
      await waitForState(b, 'suspended', 5000);
      await waitForState(b, 'reconnected', 10000);
      await b.get(`${prefix}/a`);
      const path = b.pathOf(prefix);
      assert.ok(reArmed(tap).includes(path), `SetWatches re-armed ${JSON.stringify(reArmed(tap))}`);
      assert.ok(reArmed(tap).includes(`${path}/a`));
      watch.close();
    } finally {
      await tap.close();
    }
  });
});
