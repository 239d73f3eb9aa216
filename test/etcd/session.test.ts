/**
 * The etcd session (a lease) and deadlines against a real etcd under real faults: a lease
 * revoked on the server, a server frozen with SIGSTOP (shorter and longer than the TTL), close,
 * unreachable servers and authentication.
 */
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { createBackend, type EtcdBackend } from '../../adapters/etcd/index.js';
import type { SessionStateChange } from '../../lib/backend.js';
import { isSharedStructError } from '../../lib/errors.js';
import { connect } from '../../lib/index.js';
import { countsSince } from '../../lib/util/counters.js';
import { freePort, sleep } from '../support/process.js';
import { startTcpProxy } from '../support/tcp-proxy.js';
import { etcdAdapterOptions, etcdBackend, privateEtcd, quietLogger, rawEtcd, type EtcdCluster } from '../support/etcd.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await sleep(25);
  }
}

function record(backend: EtcdBackend): SessionStateChange[] {
  const changes: SessionStateChange[] = [];
  backend.session.onStateChange((c) => changes.push(c));
  return changes;
}

describe('etcd adapter: session and deadlines', function () {
  this.timeout(60000);
  let etcd: EtcdCluster;
  let raw: Etcd3;
  const open: EtcdBackend[] = [];

  before(async () => {
    etcd = await privateEtcd();
    raw = rawEtcd(etcd.endpoints);
  });
  afterEach(async () => {
    for (const m of etcd.members) m.resume();
    await Promise.allSettled(open.splice(0).map((b) => b.close()));
  });
  after(async () => {
    raw?.close();
    await etcd?.stop();
  });

  async function backend(overrides: Parameters<typeof etcdBackend>[1] = {}): Promise<EtcdBackend> {
    const b = await etcdBackend(etcd.endpoints, overrides);
    open.push(b);
    return b;
  }

  it('a lease revoked on the server: lost, then reconnected on a new lease in the next epoch', async () => {
    const b = await backend({ sessionTtlMs: 3000 });
    const changes = record(b);
    const oldId = b.session.id;
    const oldLease = b.leaseId;
    await b.create('/s-revoke/eph', enc('mine'), { ephemeral: true });
    await raw.leaseClient.leaseRevoke({ ID: oldLease });
    assert.equal((await raw.get('/s-revoke/eph').exec()).kvs.length, 0, 'the server dropped the ephemeral');
    await until('reconnected', () => b.session.state === 'reconnected');
    assert.deepEqual(changes.map((c) => `${c.state}@${c.epoch}`), ['lost@1', 'reconnected@2']);
    assert.equal(changes[0]!.cause?.code, 'SESSION_LOST');
    assert.notEqual(b.session.id, oldId);
    assert.notEqual(b.leaseId, oldLease);
    assert.equal(b.session.epoch, 2);
    // The new lease is live: a new ephemeral goes on it and survives a few keepalives.
    const again = await b.create('/s-revoke/eph', enc('again'), { ephemeral: true });
    assert.equal(again.created, true);
    assert.equal((await raw.get('/s-revoke/eph').exec()).kvs[0]?.lease, b.leaseId);
    await sleep(2500);
    assert.equal((await raw.get('/s-revoke/eph').exec()).kvs.length, 1);
    assert.equal(b.session.state, 'reconnected');
  });

  it('the TTL is sessionTtlMs rounded up to seconds, raised to etcd\'s minimum by the server', async () => {
    assert.equal((await backend({ sessionTtlMs: 4500 })).session.ttlMs, 5000);
    // etcd's minimum lease TTL is 1.5 election timeouts, rounded up: 2 s with default flags.
    assert.equal((await backend({ sessionTtlMs: 500 })).session.ttlMs, 2000);
  });

  it('an ephemeral create on a lease that is gone rejects SESSION_LOST', async () => {
    const b = await backend({ sessionTtlMs: 30000 });
    // Revoke between keepalives (every 10 s here): the adapter has not noticed yet.
    await raw.leaseClient.leaseRevoke({ ID: b.leaseId });
    await assert.rejects(b.create('/s-gone/eph', enc('x'), { ephemeral: true }), (err) => isSharedStructError(err, 'SESSION_LOST'));
  });

  it('a frozen server: reads and writes reject TIMEOUT within the deadline; all is well after SIGCONT', async () => {
    const b = await backend({ requestTimeoutMs: 1000, sessionTtlMs: 10000 });
    await b.create('/s-freeze/k', enc('v1'));
    const member = etcd.members[0]!;
    await member.pause();
    try {
      let t = Date.now();
      await assert.rejects(b.get('/s-freeze/k', { consistent: true }), (err) => isSharedStructError(err, 'TIMEOUT') && err.retryable);
      const readMs = Date.now() - t;
      assert.ok(readMs >= 900 && readMs < 2500, `read rejected after ${readMs} ms`);
      t = Date.now();
      await assert.rejects(b.put('/s-freeze/k', enc('v2'), { expectedVersion: 1 }), (err) => {
        assert.ok(isSharedStructError(err, 'TIMEOUT'));
        assert.deepEqual(err.details, { outcome: 'unknown' });
        assert.match(err.message, /may or may not have been applied/);
        return true;
      });
      const writeMs = Date.now() - t;
      assert.ok(writeMs < 2500, `write rejected after ${writeMs} ms`);
    } finally {
      member.resume();
    }
    // The frozen server still had the write in its socket buffer and applies it on SIGCONT:
    // that is why a lost answer is reported as an unknown outcome. The CAS makes the retry safe:
    // it either applies now or loses to the first attempt, whose value is then the current one.
    const retry = await b.put('/s-freeze/k', enc('v2'), { expectedVersion: 1 });
    const current = retry.ok ? retry.entry : retry.current;
    assert.equal(current?.version, 2);
    assert.equal(new TextDecoder().decode(current.value), 'v2');
  });

  it('frozen past the TTL: suspended, lost, then reconnected in epoch 2 and the old ephemerals are gone', async () => {
    const b = await backend({ requestTimeoutMs: 800, sessionTtlMs: 2000 });
    const changes = record(b);
    const ttlMs = b.session.ttlMs;
    await b.create('/s-long/eph', enc('old'), { ephemeral: true });
    const first = b.session.lastContactAt;
    await until('a keepalive answered', () => b.session.lastContactAt > first, ttlMs);
    const member = etcd.members[0]!;
    await member.pause();
    const pausedAt = Date.now();
    try {
      await until('lost', () => b.session.state === 'lost', ttlMs + 3000);
      // Nothing was heard while frozen, and the loss came no earlier than a TTL after that.
      assert.ok(b.session.lastContactAt <= pausedAt);
      assert.ok(Date.now() - b.session.lastContactAt >= ttlMs);
    } finally {
      member.resume();
    }
    await until('reconnected', () => b.session.state === 'reconnected', 15000);
    assert.deepEqual(changes.map((c) => `${c.state}@${c.epoch}`), ['suspended@1', 'lost@1', 'reconnected@2']);
    await until('the old ephemeral gone', async () => (await raw.get('/s-long/eph').exec()).kvs.length === 0, 10000);
  });

  it('close revokes the lease at once, is idempotent, and everything after it rejects CLOSED', async () => {
    const b = await backend({ sessionTtlMs: 30000 });
    const other = await backend();
    const watch = b.watch({ key: '/s-close/x' });
    const iterating = (async () => {
      const got: unknown[] = [];
      for await (const ev of watch) got.push(ev);
      return got;
    })();
    await b.create('/s-close/eph', enc('x'), { ephemeral: true });
    const closing = b.close();
    await Promise.all([closing, b.close(), b[Symbol.asyncDispose]()]);
    assert.equal(b.session.state, 'closed');
    assert.equal(await other.get('/s-close/eph', { consistent: true }), undefined, 'ephemeral gone with the revoked lease');
    assert.ok(Array.isArray(await iterating), 'open watches end');
    await assert.rejects(b.get('/s-close/eph'), (err) => isSharedStructError(err, 'CLOSED'));
    await assert.rejects(b.put('/s-close/eph', enc('y'), { expectedVersion: 1 }), (err) => isSharedStructError(err, 'CLOSED'));
    const late = b.watch({ key: '/s-close/x' });
    await assert.rejects(late[Symbol.asyncIterator]().next(), (err) => isSharedStructError(err, 'CLOSED'));
  });

  it('an etcd that refuses the connection rejects CONNECTION at once, not after connectTimeoutMs', async () => {
    const port = await freePort();
    const t = Date.now();
    await assert.rejects(
      createBackend({ scheme: 'etcd', hosts: [`127.0.0.1:${port}`], path: '', params: {} }, etcdAdapterOptions({ connectTimeoutMs: 5000 })),
      (err) => isSharedStructError(err, 'CONNECTION') && err.message.includes(`127.0.0.1:${port} refused the connection (ECONNREFUSED)`),
    );
    const ms = Date.now() - t;
    assert.ok(ms < 2000, `rejected after ${ms} ms`);
  });

  it('with several endpoints, one dead endpoint does not fail calls', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const b = await etcdBackend([dead, ...etcd.endpoints, dead], { requestTimeoutMs: 2000 });
    open.push(b);
    for (let i = 0; i < 10; i++) {
      await b.create(`/s-multi/k${i}`, enc(String(i)));
      assert.equal((await b.get(`/s-multi/k${i}`))?.version, 1);
    }
  });
});

describe('etcd adapter: authentication', function () {
  this.timeout(60000);
  let etcd: EtcdCluster;

  before(async () => {
    // Tokens expire after 1 s unused, so a test can see a watch resume with a stale token.
    etcd = await privateEtcd({ extraArgs: ['--auth-token-ttl', '1'] });
    const raw = rawEtcd(etcd.endpoints);
    try {
      await raw.user('root').create('root-secret');
      await raw.role('root').create();
      await raw.user('root').addRole('root');
      await raw.role('app').create();
      await raw.role('app').grant({ permission: 'Readwrite', range: raw.range({ prefix: '/app/' }) });
      await raw.user('app').create('app-secret');
      await raw.user('app').addRole('app');
      await raw.role('viewer').create();
      await raw.role('viewer').grant({ permission: 'Read', range: raw.range({ prefix: '/app/' }) });
      await raw.user('viewer').create('viewer-secret');
      await raw.user('viewer').addRole('viewer');
      await raw.auth.authEnable();
    } finally {
      raw.close();
    }
  });
  after(async () => {
    await etcd?.stop();
  });

  it('connects with the right password and works inside its permissions', async () => {
    const b = await etcdBackend(etcd.endpoints, { auth: { username: 'app', password: 'app-secret' } });
    try {
      const r = await b.create('/app/k', enc('v'), { ephemeral: true });
      assert.equal(r.created, true);
      assert.equal((await b.get('/app/k'))?.version, 1);
      await assert.rejects(b.create('/elsewhere/k', enc('v')), (err) => isSharedStructError(err, 'UNAUTHORIZED') && !err.retryable);
    } finally {
      await b.close();
    }
  });

  it('a watch resumed after its auth token expired fetches a new one and continues', async () => {
    const proxy = await startTcpProxy(etcd.members[0]!.clientPort);
    // A long TTL: keepalives (every 10 s) would renew the token too.
    const b = await etcdBackend([`127.0.0.1:${proxy.port}`], { auth: { username: 'app', password: 'app-secret' }, sessionTtlMs: 30000 });
    try {
      await b.create('/app/w', enc('1'));
      const watch = b.watch({ key: '/app/w' });
      const it = watch[Symbol.asyncIterator]();
      const next = async (): Promise<string> => {
        for (;;) {
          const r = await it.next();
          assert.equal(r.done, false);
          if (r.value.type === 'put') return new TextDecoder().decode(r.value.entry.value);
          assert.equal(r.value.type, 'progress');
        }
      };
      await sleep(300);
      await b.put('/app/w', enc('2'), { expectedVersion: 1 });
      assert.equal(await next(), '2');
      await sleep(2500); // the token expires unused (streams do not renew it)
      const before = b.counters.snapshot();
      proxy.resetAll(); // the watch must open a new stream, with the stale token
      await sleep(300);
      const writer = await etcdBackend(etcd.endpoints, { auth: { username: 'app', password: 'app-secret' } });
      try {
        await writer.put('/app/w', enc('3'), { expectedVersion: 2 });
      } finally {
        await writer.close();
      }
      assert.equal(await next(), '3');
      assert.ok([...b.watches][0]!.resumes >= 1);
      // The resumed create was refused for the stale token; one probe read renewed it.
      const d = countsSince(before, b.counters.snapshot());
      assert.ok((d.watchCreate ?? 0) >= 2 && (d.range ?? 0) >= 1, JSON.stringify(d));
      watch.close();
    } finally {
      await b.close();
      await proxy.close();
    }
  });

  it('a read-only role opens and follows a struct (without a listener registration, said once), and cannot write it', async () => {
    const url = `etcd://${etcd.endpoints.join(',')}`;
    const app = await connect(url, { auth: { username: 'app', password: 'app-secret' }, namespace: '/app/ro', logger: quietLogger });
    const warnings: string[] = [];
    const viewer = await connect(url, { auth: { username: 'viewer', password: 'viewer-secret' }, namespace: '/app/ro', logger: { ...quietLogger, warn: (m: string) => void warnings.push(m) } });
    try {
      const flags = await app.open('flags', { initial: { beta: false } });
      const seen = await viewer.open<{ beta: boolean }>('flags');
      assert.deepEqual(seen.read(), { beta: false });
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0]!, /^not registered as a listener at '\/app\/ro\/flags\/listeners\/.*': this identity may not create it/);
      const next = new Promise((resolve) => seen.on('change', (ev) => resolve(ev.value)));
      await flags.update((d) => void (d.beta = true));
      assert.deepEqual(await next, { beta: true });
      await assert.rejects(seen.update((d) => void (d.beta = false)), (err: unknown) => isSharedStructError(err, 'UNAUTHORIZED'));
      assert.equal((await flags.listeners()).length, 1);
      await flags.delete();
    } finally {
      await viewer.close();
      await app.close();
    }
  });

  it('a wrong password rejects UNAUTHORIZED', async () => {
    await assert.rejects(
      etcdBackend(etcd.endpoints, { auth: { username: 'app', password: 'wrong' } }),
      (err) => isSharedStructError(err, 'UNAUTHORIZED'),
    );
  });
});
