/** The ZooKeeper adapter's requests against a real server: mapping, costs, multi, barrier, auth. */
import assert from 'node:assert/strict';
import { countsSince } from '../../lib/util/counters.js';
import { isSharedStructError } from '../../lib/errors.js';
import { DEFAULT_MAX_VALUE_BYTES } from '../../adapters/zookeeper/index.js';
import { RawClient, bytes, closeAll, openBackend, text, uniquePrefix, zk } from './helpers.js';

describe('zookeeper adapter: requests', function () {
  this.timeout(30000);

  before(async function () {
    this.timeout(60000);
    await zk();
  });

  afterEach(closeAll);

  it('creates with missing parents and maps stat to Entry (version = zk version + 1)', async () => {
    const b = await openBackend();
    const key = `${uniquePrefix()}/flags/payload`;
    const created = await b.create(key, bytes('{"a":1}'));
    assert.equal(created.created, true);
    assert.ok(created.created);
    assert.equal(created.entry.key, key);
    assert.equal(created.entry.version, 1);
    assert.equal(created.entry.ephemeral, false);
    assert.equal(typeof created.entry.revision, 'bigint');
    assert.equal(created.entry.revision, created.entry.createRevision);
    const got = await b.get(key);
    assert.ok(got);
    assert.equal(text(got.value), '{"a":1}');
    assert.equal(got.version, 1);
    assert.equal(got.createRevision, created.entry.createRevision);
    const again = await b.create(key, bytes('{"a":2}'));
    assert.equal(again.created, false);
    assert.ok(!again.created);
    assert.equal(text(again.current.value), '{"a":1}');
    const st = await b.stat(key);
    assert.deepEqual(st, { version: 1, revision: got.revision, createRevision: got.createRevision });
    assert.equal(await b.get(`${key}-missing`), undefined);
    assert.equal(await b.stat(`${key}-missing`), undefined);
  });

  it('an uncontended put costs exactly one setData and no read', async () => {
    const b = await openBackend();
    const key = `${uniquePrefix()}/payload`;
    await b.create(key, bytes('v1'));
    const before = b.counters.snapshot();
    const put = await b.put(key, bytes('v2'), { expectedVersion: 1 });
    assert.deepEqual(countsSince(before, b.counters.snapshot()), { setData: 1 });
    assert.ok(put.ok);
    assert.equal(put.entry.version, 2);
    assert.equal(text(put.entry.value), 'v2');
    assert.ok(put.entry.revision > put.entry.createRevision);
  });

  it('a stale put returns the current entry (one setData + one getData); a missing key returns undefined', async () => {
    const b = await openBackend();
    const key = `${uniquePrefix()}/payload`;
    await b.create(key, bytes('v1'));
    await b.put(key, bytes('v2'), { expectedVersion: 1 });
    const before = b.counters.snapshot();
    const stale = await b.put(key, bytes('v3'), { expectedVersion: 1 });
    assert.deepEqual(countsSince(before, b.counters.snapshot()), { setData: 1, getData: 1 });
    assert.equal(stale.ok, false);
    assert.ok(!stale.ok);
    assert.equal(stale.current?.version, 2);
    assert.equal(text(stale.current.value), 'v2');
    const missing = await b.put(`${key}-none`, bytes('x'), { expectedVersion: 1 });
    assert.deepEqual(missing, { ok: false, current: undefined });
    // Version 0 never exists: it must not turn into "any version".
    const zero = await b.put(key, bytes('v9'), { expectedVersion: 0 });
    assert.equal(zero.ok, false);
    assert.equal(text((await b.get(key))!.value), 'v2');
  });

  it('delete honours expectedVersion', async () => {
    const b = await openBackend();
    const key = `${uniquePrefix()}/payload`;
    await b.create(key, bytes('v1'));
    assert.equal(await b.delete(key, { expectedVersion: 2 }), false);
    assert.equal(await b.delete(key, { expectedVersion: 1 }), true);
    assert.equal(await b.delete(key), false);
    assert.equal(await b.get(key), undefined);
  });

  it('a stale version-0 check inside a txn is rejected (the library would send it as -1)', async () => {
    const b = await openBackend();
    const prefix = uniquePrefix();
    const a = `${prefix}/a`;
    const c = `${prefix}/c`;
    await b.create(a, bytes('a1'));
    await b.create(c, bytes('c1'));
    // zk version 1 now (dense 2): a compare on dense 1 (= zk version 0) is stale.
    await b.put(a, bytes('a2'), { expectedVersion: 1 });
    const stale = await b.txn({ compare: [{ key: a, version: 1 }], ops: [{ op: 'put', key: c, value: bytes('c2') }] });
    assert.deepEqual(stale, { ok: false });
    assert.equal(text((await b.get(c))!.value), 'c1');
    // And a conditional put at dense 1 (zk 0) on a key that moved on is rejected too.
    const stalePut = await b.txn({ compare: [], ops: [{ op: 'put', key: a, value: bytes('a3'), expectedVersion: 1 }] });
    assert.deepEqual(stalePut, { ok: false });
    const staleDelete = await b.txn({ compare: [], ops: [{ op: 'delete', key: a, expectedVersion: 1 }] });
    assert.deepEqual(staleDelete, { ok: false });
    assert.equal(text((await b.get(a))!.value), 'a2');
    // The same version-0 compare that is current passes.
    const fresh = await b.txn({ compare: [{ key: c, version: 1 }], ops: [{ op: 'put', key: c, value: bytes('c2'), expectedVersion: 1 }] });
    assert.ok(fresh.ok);
    assert.equal(fresh.entries[0]?.version, 2);
  });

  it('txn: compares, create (with parents and stats), put and delete in one multi', async () => {
    const b = await openBackend();
    const prefix = uniquePrefix();
    await b.create(`${prefix}/x`, bytes('x1'));
    await b.create(`${prefix}/gone`, bytes('g'));
    const before = b.counters.snapshot();
    const result = await b.txn({
      compare: [{ key: `${prefix}/x`, version: 1 }, { key: `${prefix}/gone`, exists: true }],
      ops: [
        { op: 'put', key: `${prefix}/x`, value: bytes('x2') },
        { op: 'create', key: `${prefix}/y`, value: bytes('y1') },
        { op: 'delete', key: `${prefix}/gone` },
      ],
    });
    assert.deepEqual(countsSince(before, b.counters.snapshot()), { multi: 1 });
    assert.ok(result.ok);
    assert.equal(result.entries[0]?.version, 2);
    assert.equal(result.entries[1]?.version, 1);
    assert.equal(result.entries[1]?.key, `${prefix}/y`);
    // One multi, one zxid: the created node's revisions are the put's revision.
    assert.equal(result.entries[1].createRevision, result.entries[0].revision);
    assert.equal(result.entries[1].revision, result.entries[0].revision);
    const y = await b.get(`${prefix}/y`);
    assert.equal(y!.createRevision, result.entries[1].createRevision);
    assert.equal(y!.revision, result.entries[1].revision);
    assert.equal(result.entries[2], undefined);
    assert.equal(await b.get(`${prefix}/gone`), undefined);
    // A create under a parent that does not exist yet: parents are made, then the multi again.
    const deep = await b.txn({ compare: [], ops: [{ op: 'create', key: `${prefix}/deep/er/z`, value: bytes('z') }] });
    assert.ok(deep.ok);
    // A create of an existing key fails the whole txn.
    const exists = await b.txn({
      compare: [],
      ops: [
        { op: 'put', key: `${prefix}/x`, value: bytes('x3') },
        { op: 'create', key: `${prefix}/y`, value: bytes('y2') },
      ],
    });
    assert.deepEqual(exists, { ok: false });
    assert.equal(text((await b.get(`${prefix}/x`))!.value), 'x2');
    // A compare on a missing key fails it too.
    assert.deepEqual(await b.txn({ compare: [{ key: `${prefix}/none`, exists: true }], ops: [] }), { ok: false });
  });

  it('list: children with values, ordered by create revision', async () => {
    const b = await openBackend();
    const prefix = uniquePrefix();
    for (const name of ['m3', 'm1', 'm2']) await b.create(`${prefix}/g/${name}`, bytes(name));
    const entries = await b.list(`${prefix}/g`);
    assert.deepEqual(
      entries.map((e) => e.key),
      ['m3', 'm1', 'm2'].map((n) => `${prefix}/g/${n}`),
    );
    assert.deepEqual(entries.map((e) => text(e.value)), ['m3', 'm1', 'm2']);
    assert.deepEqual(await b.list(`${prefix}/nothing`), []);
  });

  it('sequential and ephemeral creates; ephemerals go with the session on close', async () => {
    const b = await openBackend();
    const other = await openBackend();
    const prefix = uniquePrefix();
    const first = await b.create(`${prefix}/locks/lock-`, bytes(''), { sequential: true, ephemeral: true });
    const second = await b.create(`${prefix}/locks/lock-`, bytes(''), { sequential: true, ephemeral: true });
    assert.ok(first.created && second.created);
    assert.match(first.entry.key, /\/locks\/lock-\d{10}$/);
    assert.ok(second.entry.key > first.entry.key);
    assert.ok(second.entry.createRevision > first.entry.createRevision);
    assert.equal(first.entry.ephemeral, true);
    const seqSlash = await b.create(`${prefix}/q/`, bytes(''), { sequential: true });
    assert.ok(seqSlash.created);
    assert.match(seqSlash.entry.key, /\/q\/\d{10}$/);
    assert.equal((await other.list(`${prefix}/locks`)).length, 2);
    await b.close();
    await b.close(); // idempotent
    assert.equal(b.session.state, 'closed');
    // Closed session: its ephemerals are gone at once, not after the timeout.
    assert.deepEqual(await other.list(`${prefix}/locks`), []);
    await assert.rejects(b.get(`${prefix}/q`), (err: unknown) => isSharedStructError(err, 'CLOSED'));
  });

  it('consistent read: sync then getData, after another client wrote', async () => {
    const b = await openBackend();
    const server = await zk();
    const raw = await RawClient.connect(server.connectString);
    try {
      const key = `${uniquePrefix()}/payload`;
      await b.create(key, bytes('1'));
      await raw.setData(b.pathOf(key), Buffer.from('2'));
      const before = b.counters.snapshot();
      const entry = await b.get(key, { consistent: true });
      assert.deepEqual(countsSince(before, b.counters.snapshot()), { sync: 1, getData: 1 });
      assert.equal(text(entry!.value), '2');
      assert.equal(entry!.version, 2);
      assert.equal(await b.get(`${key}-none`, { consistent: true }), undefined);
    } finally {
      await raw.close();
    }
  });

  it('chroot from the URL path: keys are relative to it, the chroot is created on demand', async () => {
    const chroot = uniquePrefix('chroot');
    const b = await openBackend({ path: chroot });
    const server = await zk();
    const raw = await RawClient.connect(server.connectString);
    try {
      const created = await b.create('/app/payload', bytes('in-chroot'));
      assert.ok(created.created);
      assert.equal(created.entry.key, '/app/payload');
      assert.equal((await raw.getData(`${chroot}/app/payload`)).data.toString(), 'in-chroot');
      const seq = await b.create('/app/s-', bytes(''), { sequential: true });
      assert.ok(seq.created);
      assert.match(seq.entry.key, /^\/app\/s-\d{10}$/);
      assert.deepEqual((await b.list('/app')).map((e) => e.key), ['/app/payload', seq.entry.key]);
    } finally {
      await raw.close();
    }
  });

  it('digest auth: nodes are created with creator-only ACLs; other identities get UNAUTHORIZED', async () => {
    const prefix = uniquePrefix('auth');
    const alice = await openBackend({ overrides: { auth: { username: 'alice', password: 'secret' } } });
    const mallory = await openBackend({ overrides: { auth: { username: 'mallory', password: 'guess' } } });
    const key = `${prefix}/payload`;
    await alice.create(key, bytes('private'));
    assert.equal(text((await alice.get(key))!.value), 'private');
    await assert.rejects(mallory.get(key), (err: unknown) => isSharedStructError(err, 'UNAUTHORIZED'));
    await assert.rejects(mallory.put(key, bytes('x'), { expectedVersion: 1 }), (err: unknown) =>
      isSharedStructError(err, 'UNAUTHORIZED'),
    );
  });

  it('limits: the default fits jute.maxbuffer; a value of exactly maxValueBytes is stored', async () => {
    const b = await openBackend();
    assert.equal(b.limits.maxValueBytes, DEFAULT_MAX_VALUE_BYTES);
    assert.ok(b.limits.maxValueBytes < 1048575);
    const key = `${uniquePrefix()}/${'n'.repeat(200)}/payload`;
    const big = new Uint8Array(b.limits.maxValueBytes).fill(97);
    const created = await b.create(key, big);
    assert.ok(created.created);
    const put = await b.put(key, big, { expectedVersion: 1 });
    assert.ok(put.ok);
    assert.equal((await b.get(key))!.value.length, big.length);
    const small = await openBackend({ overrides: { maxValueBytes: 1000 } });
    assert.equal(small.limits.maxValueBytes, 1000);
    // Over the limit: refused before sending (the server would drop the whole connection).
    const before = b.counters.snapshot();
    const tooBig = new Uint8Array(b.limits.maxValueBytes + 1);
    await assert.rejects(b.put(key, tooBig, { expectedVersion: 2 }), (err: unknown) => isSharedStructError(err, 'VALUE_TOO_LARGE'));
    await assert.rejects(b.create(`${key}-2`, tooBig), (err: unknown) => isSharedStructError(err, 'VALUE_TOO_LARGE'));
    await assert.rejects(b.txn({ compare: [], ops: [{ op: 'create', key: `${key}-3`, value: tooBig }] }), (err: unknown) =>
      isSharedStructError(err, 'VALUE_TOO_LARGE'),
    );
    assert.deepEqual(countsSince(before, b.counters.snapshot()), {});
    assert.equal(b.session.state, 'connected');
  });

  it('liveness pings run while idle and are not counted as requests', async () => {
    const b = await openBackend();
    const before = b.counters.snapshot();
    const pings = b.heartbeats;
    // A sixth of the 3 s session: pings every ~0.5 s of silence.
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(b.heartbeats > pings, `heartbeats: ${b.heartbeats}`);
    assert.deepEqual(countsSince(before, b.counters.snapshot()), {});
    assert.equal(b.session.state, 'connected');
  });

  it('features and session basics', async () => {
    const b = await openBackend();
    assert.equal(b.kind, 'zookeeper');
    assert.deepEqual([...b.features].sort(), ['txn']);
    assert.match(b.session.id, /^[0-9a-f]{16}$/);
    assert.equal(b.session.state, 'connected');
    assert.equal(b.session.epoch, 1);
    // Negotiated into the server's [2, 20] ticks of 500 ms.
    assert.equal(b.session.ttlMs, 3000);
  });

  it('invalid keys reject INVALID_ARGUMENT (as a rejection, not a throw)', async () => {
    const b = await openBackend();
    for (const key of ['relative', '/trailing/', '/a//b', '/a/./b', '/a/../b']) {
      const p = b.get(key);
      await assert.rejects(p, (err: unknown) => isSharedStructError(err, 'INVALID_ARGUMENT'));
    }
  });

  it('asking for what the adapter cannot do fails at once: a digest user with ":"', async () => {
    await assert.rejects(openBackend({ overrides: { auth: { username: 'a:b', password: 'x' } } }), (err: unknown) =>
      isSharedStructError(err, 'INVALID_ARGUMENT'),
    );
  });

  it('an unreachable server fails the first connect with CONNECTION within connectTimeoutMs', async () => {
    const started = Date.now();
    await assert.rejects(
      openBackend({ hosts: ['127.0.0.1:1'], overrides: { connectTimeoutMs: 1500 } }),
      (err: unknown) => isSharedStructError(err, 'CONNECTION'),
    );
    assert.ok(Date.now() - started < 10000);
  });
});
