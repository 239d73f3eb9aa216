/**
 * Sessions under real faults: expiry by a second client holding the session's credentials, a
 * frozen server (SIGSTOP) shorter and longer than the session timeout, a blackholed proxy, and
 * request deadlines while nobody answers.
 */
import assert from 'node:assert/strict';
import { isSharedStructError } from '../../lib/errors.js';
import type { ZkWatch } from '../../adapters/zookeeper/watch.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import {
  EventReader,
  bytes,
  closeAll,
  expireSession,
  openBackend,
  recordStates,
  text,
  uniquePrefix,
  waitForState,
  zk,
} from './helpers.js';

function armed(reader: EventReader): Promise<void> {
  return (reader.watch as ZkWatch).armed();
}

describe('zookeeper adapter: sessions', function () {
  this.timeout(60000);

  before(async function () {
    this.timeout(60000);
    await zk();
  });

  afterEach(closeAll);

  it('a session expired for real: lost, a new session (epoch + 1), ephemerals gone, watches reset', async () => {
    const server = await zk();
    const proxy = await startTcpProxy(server.nodes[0]!.port);
    try {
      await expiryScenario(server.connectString, proxy);
    } finally {
      await proxy.close();
    }
  });

  async function expiryScenario(connectString: string, proxy: TcpProxy): Promise<void> {
    const b = await openBackend({ hosts: [`127.0.0.1:${proxy.port}`] });
    const other = await openBackend();
    const prefix = uniquePrefix('expire');
    await b.create(`${prefix}/members/me`, bytes('me'), { ephemeral: true });
    await b.create(`${prefix}/payload`, bytes('1'));
    const keyEvents = new EventReader(b.watch({ key: `${prefix}/payload` }));
    const memberEvents = new EventReader(b.watch({ prefix: `${prefix}/members` }));
    await Promise.all([armed(keyEvents), armed(memberEvents)]);
    const { states } = recordStates(b);
    const oldId = b.session.id;
    const reconnected = waitForState(b, 'reconnected');
    const started = Date.now();
    await expireSession(b, connectString, proxy);
    const change = await reconnected;
    const recoveryMs = Date.now() - started;
    assert.deepEqual(
      states.map((s) => s.state),
      ['suspended', 'lost', 'reconnected'],
    );
    assert.equal(change.epoch, 2);
    assert.equal(b.session.epoch, 2);
    assert.notEqual(b.session.id, oldId);
    assert.ok(isSharedStructError(states[1]?.cause, 'SESSION_LOST'));
    // The old session's ephemeral went with it.
    assert.equal(await other.get(`${prefix}/members/me`), undefined);
    // Every watch says continuity was lost and gives the state now.
    await keyEvents.until('key reset', (events) => events.some((e) => e.type === 'reset'));
    await memberEvents.until('members reset', (events) => events.some((e) => e.type === 'reset'));
    const keyReset = keyEvents.events.find((e) => e.type === 'reset');
    assert.ok(keyReset?.type === 'reset' && keyReset.entries.length === 1 && text(keyReset.entries[0]!.value) === '1');
    const memberReset = memberEvents.events.find((e) => e.type === 'reset');
    assert.ok(memberReset?.type === 'reset');
    assert.deepEqual(memberReset.entries, []);
    // And they keep working on the new session.
    await other.put(`${prefix}/payload`, bytes('2'), { expectedVersion: 1 });
    await keyEvents.until('put v2', (events) => events.some((e) => e.type === 'put' && e.entry.version === 2));
    const again = await b.create(`${prefix}/members/me`, bytes('me'), { ephemeral: true });
    assert.ok(again.created);
    await memberEvents.until('member put', (events) => events.some((e) => e.type === 'put'));
    console.log(`      (recovery after a real expiry: ${recoveryMs} ms)`);
  }

  it('a server frozen for less than the session timeout: suspended, then reconnected in the same epoch; deadlines hold', async () => {
    const server = await zk();
    const node = server.nodes[0]!;
    // A 6 s session: suspended after 2 s of silence, lost only after 6 s.
    const b = await openBackend({ overrides: { sessionTtlMs: 6000, requestTimeoutMs: 800 } });
    const key = `${uniquePrefix('pause')}/payload`;
    await b.create(key, bytes('1'));
    const events = new EventReader(b.watch({ key }));
    await armed(events);
    const { states } = recordStates(b);
    const id = b.session.id;
    try {
      await node.pause();
      await waitForState(b, 'suspended', 5000);
      // The client library has no read timeout: the deadline is ours.
      const started = Date.now();
      await assert.rejects(b.get(key), (err: unknown) => isSharedStructError(err, 'TIMEOUT'));
      const took = Date.now() - started;
      assert.ok(took >= 700 && took < 3000, `deadline took ${took} ms`);
    } finally {
      node.resume();
    }
    await waitForState(b, 'reconnected', 10000);
    assert.deepEqual(
      states.map((s) => s.state),
      ['suspended', 'reconnected'],
    );
    assert.equal(b.session.epoch, 1);
    assert.equal(b.session.id, id);
    // Same session: the watch survived without a reset.
    const writer = await openBackend();
    await writer.put(key, bytes('2'), { expectedVersion: 1 });
    await events.until('put v2', (evs) => evs.some((e) => e.type === 'put' && e.entry.version === 2));
    assert.ok(events.events.every((e) => e.type !== 'reset'));
  });

  it('a server frozen past the session timeout: suspended, lost, and a new session after SIGCONT', async () => {
    const server = await zk();
    const node = server.nodes[0]!;
    const b = await openBackend({ overrides: { sessionTtlMs: 2000, requestTimeoutMs: 1000 } });
    const prefix = uniquePrefix('freeze');
    await b.create(`${prefix}/payload`, bytes('1'));
    const events = new EventReader(b.watch({ key: `${prefix}/payload` }));
    await armed(events);
    const { states } = recordStates(b);
    const frozenAt = Date.now();
    const timings = { suspendedAfterMs: -1, lostAfterMs: -1 };
    try {
      await node.pause();
      const suspended = waitForState(b, 'suspended', 10000).then(() => (timings.suspendedAfterMs = Date.now() - frozenAt));
      await waitForState(b, 'lost', 10000);
      await suspended;
      timings.lostAfterMs = Date.now() - frozenAt;
      // Silence for the whole negotiated timeout (2 s) means lost, not earlier.
      assert.ok(timings.lostAfterMs >= 1500, `lost after ${timings.lostAfterMs} ms`);
    } finally {
      node.resume();
    }
    const { suspendedAfterMs, lostAfterMs } = timings;
    const started = Date.now();
    await waitForState(b, 'reconnected', 20000);
    const recoveryMs = Date.now() - started;
    assert.deepEqual(
      states.map((s) => s.state),
      ['suspended', 'lost', 'reconnected'],
    );
    assert.equal(b.session.epoch, 2);
    await events.until('reset', (evs) => evs.some((e) => e.type === 'reset'));
    assert.equal(text((await b.get(`${prefix}/payload`))!.value), '1');
    console.log(`      (SIGSTOP: suspended after ${suspendedAfterMs} ms, lost after ${lostAfterMs} ms; new session ${recoveryMs} ms after SIGCONT)`);
  });

  it('a server killed (SIGKILL) and restarted: the client comes back; its ephemeral lives iff its session did', async () => {
    const server = await zk();
    const node = server.nodes[0]!;
    const b = await openBackend({ overrides: { sessionTtlMs: 10000, requestTimeoutMs: 2000 } });
    const prefix = uniquePrefix('restart');
    await b.create(`${prefix}/payload`, bytes('durable'));
    await b.create(`${prefix}/members/me`, bytes('me'), { ephemeral: true });
    const oldPid = node.pid;
    await node.kill();
    await waitForState(b, 'suspended', 5000);
    const started = Date.now();
    await node.restart();
    const upMs = Date.now() - started;
    assert.notEqual(node.pid, oldPid);
    await waitForState(b, 'reconnected', 30000);
    const backMs = Date.now() - started;
    // Standalone ZooKeeper restores sessions from its log: a restart within the timeout keeps
    // the session (epoch 1) and its ephemeral; otherwise both are gone (epoch 2).
    assert.equal(text((await b.get(`${prefix}/payload`))!.value), 'durable');
    const observer = await openBackend();
    const ephemeral = await observer.get(`${prefix}/members/me`, { consistent: true });
    if (b.session.epoch === 1) assert.ok(ephemeral, 'same session, so the ephemeral stays');
    else assert.equal(ephemeral, undefined, 'new session, so the old ephemeral is gone');
    console.log(`      (restart: server up after ${upMs} ms, client reconnected after ${backMs} ms, epoch ${b.session.epoch})`);
  });

  describe('through a TCP proxy', () => {
    let proxy: TcpProxy | undefined;

    afterEach(async () => {
      await proxy?.close();
      proxy = undefined;
    });

    it('a partition longer than the session timeout: lost; healed: a new session, the old ephemeral gone', async () => {
      const server = await zk();
      proxy = await startTcpProxy(server.nodes[0]!.port);
      const b = await openBackend({ hosts: [`127.0.0.1:${proxy.port}`], overrides: { sessionTtlMs: 2000, requestTimeoutMs: 1000 } });
      const observer = await openBackend();
      const prefix = uniquePrefix('partition');
      await b.create(`${prefix}/members/me`, bytes('me'), { ephemeral: true });
      const { states } = recordStates(b);
      proxy.setMode('blackhole');
      await waitForState(b, 'lost', 10000);
      // The server expires the silent session too: the ephemeral goes (within a tick or two).
      const deadline = Date.now() + 10000;
      while ((await observer.get(`${prefix}/members/me`)) !== undefined) {
        assert.ok(Date.now() < deadline, 'the partitioned session was never expired by the server');
        await new Promise((r) => setTimeout(r, 100));
      }
      proxy.setMode('pass');
      await waitForState(b, 'reconnected', 20000);
      assert.deepEqual(
        states.map((s) => s.state),
        ['suspended', 'lost', 'reconnected'],
      );
      assert.equal(b.session.epoch, 2);
      const back = await b.create(`${prefix}/members/me`, bytes('me'), { ephemeral: true });
      assert.ok(back.created);
    });

    it('a request that timed out before it was sent is withdrawn, never applied later', async () => {
      const server = await zk();
      proxy = await startTcpProxy(server.nodes[0]!.port);
      const b = await openBackend({ hosts: [`127.0.0.1:${proxy.port}`], overrides: { sessionTtlMs: 8000, requestTimeoutMs: 500 } });
      const key = `${uniquePrefix('withdraw')}/payload`;
      await b.create(key, bytes('kept'));
      const id = b.session.id;
      // Reset in blackhole mode: the library reconnects, TCP connects, the handshake goes
      // nowhere, so it sits in CONNECTING and queues requests without sending them.
      proxy.setMode('blackhole');
      proxy.resetAll();
      await waitForState(b, 'suspended', 5000);
      await assert.rejects(b.put(key, bytes('ghost'), { expectedVersion: 1 }), (err: unknown) => isSharedStructError(err, 'TIMEOUT'));
      proxy.setMode('pass');
      proxy.resetAll();
      await waitForState(b, 'reconnected', 10000);
      assert.equal(b.session.id, id, 'the same session (a same-session reconnect resends what is queued)');
      // Give a stale queued packet every chance to go out, then check it did not.
      await b.get(key, { consistent: true });
      const entry = await b.get(key, { consistent: true });
      assert.equal(text(entry!.value), 'kept');
      assert.equal(entry!.version, 1);
    });

    it('a request queued (unsent) when the session expires is sent on the new session; a sent one is not replayed', async () => {
      const server = await zk();
      proxy = await startTcpProxy(server.nodes[0]!.port);
      const b = await openBackend({ hosts: [`127.0.0.1:${proxy.port}`], overrides: { sessionTtlMs: 6000, requestTimeoutMs: 10000 } });
      const prefix = uniquePrefix('requeue');
      await b.create(`${prefix}/a`, bytes('a'));
      // Cut off: the library reconnects into the blackhole and queues what we send.
      proxy.setMode('blackhole');
      proxy.resetAll();
      await waitForState(b, 'suspended', 5000);
      const queued = b.delete(`${prefix}/a`);
      await expireSession(b, server.connectString, proxy, 'blackhole');
      proxy.setMode('pass');
      proxy.resetAll();
      assert.equal(await queued, true, 'the queued delete ran on the new session');
      assert.equal(b.session.epoch, 2);
      assert.equal(await b.get(`${prefix}/a`), undefined);
      // Now a request that left: blackholed on a live connection, it was written and got no
      // answer. Its outcome is unknown, so it fails and is not sent again.
      await b.create(`${prefix}/b`, bytes('b'));
      proxy.setMode('blackhole');
      const sent = b.delete(`${prefix}/b`);
      const failed = assert.rejects(sent, (err: unknown) => isSharedStructError(err, 'CONNECTION', 'SESSION_LOST'));
      await new Promise((r) => setTimeout(r, 100));
      await expireSession(b, server.connectString, proxy, 'blackhole');
      await failed;
      proxy.setMode('pass');
      proxy.resetAll();
      await waitForState(b, 'reconnected', 20000);
      assert.equal(b.session.epoch, 3);
      assert.equal(text((await b.get(`${prefix}/b`))!.value), 'b', 'the written delete was not replayed');
    });

    it('requests made while the session is lost wait for the new one (within their deadline)', async () => {
      const server = await zk();
      proxy = await startTcpProxy(server.nodes[0]!.port);
      const b = await openBackend({ hosts: [`127.0.0.1:${proxy.port}`], overrides: { sessionTtlMs: 2000, requestTimeoutMs: 8000 } });
      const key = `${uniquePrefix('waiting')}/payload`;
      await b.create(key, bytes('v'));
      proxy.setMode('blackhole');
      await waitForState(b, 'lost', 10000);
      const pending = b.get(key);
      await new Promise((r) => setTimeout(r, 300));
      proxy.setMode('pass');
      proxy.resetAll();
      const entry = await pending;
      assert.equal(text(entry!.value), 'v');
      assert.equal(b.session.epoch, 2);
    });

    it('close() while the server is unreachable is bounded and final', async () => {
      const server = await zk();
      proxy = await startTcpProxy(server.nodes[0]!.port);
      const b = await openBackend({ hosts: [`127.0.0.1:${proxy.port}`], overrides: { sessionTtlMs: 2000, requestTimeoutMs: 1000 } });
      const events = new EventReader(b.watch({ key: `${uniquePrefix('closing')}/payload` }));
      await armed(events);
      proxy.setMode('blackhole');
      await waitForState(b, 'lost', 10000);
      const started = Date.now();
      await b.close();
      assert.ok(Date.now() - started < 3000);
      assert.equal(b.session.state, 'closed');
      await events.until('end', () => events.done);
      proxy.setMode('pass');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(b.session.state, 'closed', 'no new session after close');
    });

    it('digest credentials are presented again on the new session', async () => {
      const server = await zk();
      proxy = await startTcpProxy(server.nodes[0]!.port);
      const b = await openBackend({
        hosts: [`127.0.0.1:${proxy.port}`],
        overrides: { auth: { username: 'alice', password: 'secret' } },
      });
      const key = `${uniquePrefix('auth')}/payload`;
      await b.create(key, bytes('private'));
      await expireSession(b, server.connectString, proxy);
      await waitForState(b, 'reconnected', 20000);
      assert.equal(b.session.epoch, 2);
      assert.equal(text((await b.get(key))!.value), 'private');
    });

    it('a short partition: suspended, then reconnected on the same session', async () => {
      const server = await zk();
      proxy = await startTcpProxy(server.nodes[0]!.port);
      const b = await openBackend({ hosts: [`127.0.0.1:${proxy.port}`], overrides: { sessionTtlMs: 6000, requestTimeoutMs: 1000 } });
      const key = `${uniquePrefix('blip')}/payload`;
      await b.create(key, bytes('1'));
      const { states } = recordStates(b);
      const id = b.session.id;
      proxy.setMode('blackhole');
      await waitForState(b, 'suspended', 5000);
      proxy.setMode('pass');
      await waitForState(b, 'reconnected', 10000);
      assert.equal(b.session.epoch, 1);
      assert.equal(b.session.id, id);
      assert.deepEqual(states.map((s) => s.state), ['suspended', 'reconnected']);
      const put = await b.put(key, bytes('2'), { expectedVersion: 1 });
      assert.ok(put.ok);
    });
  });
});
