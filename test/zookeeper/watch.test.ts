/** Watches on ZooKeeper: persistent key watches, one-shot prefix watches; no duplicates, the last version always arrives. */
import assert from 'node:assert/strict';
import type { Entry, WatchEvent } from '../../lib/backend.js';
import { countsSince } from '../../lib/util/counters.js';
import { startTcpProxy } from '../support/tcp-proxy.js';
import type { ZkWatch } from '../../adapters/zookeeper/watch.js';
import { EventReader, RawClient, bytes, closeAll, describe as describeEvents, openBackend, text, uniquePrefix, zk } from './helpers.js';

function puts(events: readonly WatchEvent[]): Entry[] {
  return events.flatMap((e) => (e.type === 'put' ? [e.entry] : []));
}

describe('zookeeper adapter: watches', function () {
  this.timeout(40000);

  before(async function () {
    this.timeout(60000);
    await zk();
  });

  afterEach(closeAll);

  it('key watch: a burst of writes never repeats a version and always delivers the last one', async () => {
    const writer = await openBackend();
    const watcher = await openBackend();
    const key = `${uniquePrefix()}/payload`;
    const created = await writer.create(key, bytes('0'));
    assert.ok(created.created);
    const watch = watcher.watch({ key });
    const reader = new EventReader(watch);
    // Write only after the watch armed (its first read is the baseline).
    await armed(reader);
    const writes = 200;
    let version = 1;
    // Pipelined writes: many land between a notification and the re-arming read.
    for (let round = 0; round < writes / 20; round += 1) {
      const batch: Promise<unknown>[] = [];
      for (let i = 0; i < 20; i += 1) {
        batch.push(writer.put(key, bytes(String(version)), { expectedVersion: version }));
        version += 1;
      }
      const results = await Promise.all(batch);
      assert.ok(results.every((r) => (r as { ok: boolean }).ok));
    }
    const last = version;
    await reader.until(`put v${last}`, (events) => puts(events).some((e) => e.version === last));
    const versions = puts(reader.events).map((e) => e.version);
    assert.ok(reader.events.every((e) => e.type === 'put'), describeEvents(reader.events));
    for (let i = 1; i < versions.length; i += 1) {
      assert.ok(versions[i]! > versions[i - 1]!, `versions must strictly increase: ${versions.join(',')}`);
    }
    assert.equal(versions.at(-1), last);
    assert.equal(text(puts(reader.events).at(-1)!.value), String(last - 1));
    // Revisions increase with versions.
    const revisions = puts(reader.events).map((e) => e.revision);
    for (let i = 1; i < revisions.length; i += 1) assert.ok(revisions[i]! > revisions[i - 1]!);
    // A quiet period later, nothing more arrives (no duplicate of the last version).
    const count = reader.events.length;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(reader.events.length, count);
    watch.close();
    await reader.until('end', () => reader.done);
  });

  it('key watch: a change by another session costs one getData (counted as watchGetData)', async () => {
    const writer = await openBackend();
    const watcher = await openBackend();
    const key = `${uniquePrefix()}/payload`;
    await writer.create(key, bytes('0'));
    const reader = new EventReader(watcher.watch({ key }));
    await armed(reader);
    const before = watcher.counters.snapshot();
    await writer.put(key, bytes('1'), { expectedVersion: 1 });
    await reader.until('v2', (events) => puts(events).some((e) => e.version === 2));
    assert.deepEqual(countsSince(before, watcher.counters.snapshot()), { watchGetData: 1 });
  });

  // A setData's reply and a multi's tell the key's watches of the write as it is read, so the
  // echo of our own write costs nothing.
  const ownWrites: { what: string; op: string; write: (b: Awaited<ReturnType<typeof openBackend>>, key: string, version: number, value: string) => Promise<number> }[] = [
    {
      what: "this backend's own writes",
      op: 'setData',
      async write(b, key, version, value) {
        const r = await b.put(key, bytes(value), { expectedVersion: version });
        assert.ok(r.ok);
        return r.entry.version;
      },
    },
    {
      what: "the puts of this backend's own transactions",
      op: 'multi',
      async write(b, key, version, value) {
        const r = await b.txn({ compare: [{ key, version }], ops: [{ op: 'put', key, value: bytes(value) }] });
        assert.ok(r.ok);
        return r.entries[0]!.version;
      },
    },
  ];
  for (const { what, op, write } of ownWrites) {
    it(`key watch: ${what} are delivered one by one without any read`, async () => {
      const b = await openBackend();
      const key = `${uniquePrefix()}/payload`;
      await b.create(key, bytes('0'));
      const reader = new EventReader(b.watch({ key }));
      await armed(reader);
      const before = b.counters.snapshot();
      let version = 1;
      for (let i = 1; i <= 50; i += 1) version = await write(b, key, version, String(i));
      await reader.until('v51', (events) => puts(events).some((e) => e.version === 51));
      assert.deepEqual(puts(reader.events).map((e) => e.version), Array.from({ length: 50 }, (_, i) => i + 2));
      assert.deepEqual(puts(reader.events).map((e) => text(e.value)), Array.from({ length: 50 }, (_, i) => String(i + 1)));
      // One persistent watch and fifty writes: nothing else.
      assert.deepEqual(countsSince(before, b.counters.snapshot()), { [op]: 50 });
    });
  }

  it('key watch: own and foreign writes interleaved, pipelined: versions increase, the last value arrives, foreign ones are read', async () => {
    const mine = await openBackend();
    const other = await openBackend();
    const key = `${uniquePrefix()}/payload`;
    await mine.create(key, bytes('0'));
    const reader = new EventReader(mine.watch({ key }));
    await armed(reader);
    const before = mine.counters.snapshot();
    let foreign = 0;
    for (let i = 0; i < 60; i += 1) {
      const writer = i % 3 === 2 ? other : mine;
      // Blind CAS loops racing: a lost CAS reads and tries again.
      for (;;) {
        const current = (await writer.get(key))!;
        const r = await writer.put(key, bytes(`${i}`), { expectedVersion: current.version });
        if (r.ok) break;
      }
      if (writer === other) foreign += 1;
    }
    const last = (await mine.get(key))!;
    await reader.until('the last version', (events) => puts(events).some((e) => e.version === last.version));
    const versions = puts(reader.events).map((e) => e.version);
    for (let i = 1; i < versions.length; i += 1) assert.ok(versions[i]! > versions[i - 1]!, versions.join(','));
    assert.equal(text(puts(reader.events).at(-1)!.value), '59');
    // Every foreign write needs a read to learn its value; own writes may be coalesced into one.
    const reads = countsSince(before, mine.counters.snapshot()).watchGetData ?? 0;
    assert.ok(reads >= 1 && reads <= foreign * 2, `watch reads ${reads} for ${foreign} foreign writes`);
  });

  it('key watch: after a reconnect on the same session the persistent watch is added again', async () => {
    const server = await zk();
    const proxy = await startTcpProxy(server.nodes[0]!.port);
    try {
      const watcher = await openBackend({ hosts: [`127.0.0.1:${proxy.port}`], overrides: { sessionTtlMs: 6000 } });
      const writer = await openBackend();
      const key = `${uniquePrefix()}/payload`;
      await writer.create(key, bytes('0'));
      const reader = new EventReader(watcher.watch({ key }));
      await armed(reader);
      const session = watcher.session.id;
      const before = watcher.counters.snapshot();
      proxy.resetAll();
      // Written while the watcher is cut off: no notification can reach it.
      await writer.put(key, bytes('during'), { expectedVersion: 1 });
      await reader.until('the write made while cut off', (events) => puts(events).some((e) => e.version === 2), 10000);
      assert.equal(watcher.session.id, session, 'the same session');
      assert.ok((countsSince(before, watcher.counters.snapshot()).addWatch ?? 0) >= 1, 'addWatch sent again');
      // And the watch is live again: a later write is notified.
      await writer.put(key, bytes('after'), { expectedVersion: 2 });
      await reader.until('the write after', (events) => puts(events).some((e) => e.version === 3), 10000);
      assert.equal(text(puts(reader.events).at(-1)!.value), 'after');
    } finally {
      await proxy.close();
    }
  });

  it('key watch: delete and re-create are delivered, the new life starts at version 1', async () => {
    const b = await openBackend();
    const key = `${uniquePrefix()}/payload`;
    await b.create(key, bytes('a'));
    const reader = new EventReader(b.watch({ key }));
    await armed(reader);
    assert.equal(await b.delete(key), true);
    await reader.until('delete', (events) => events.some((e) => e.type === 'delete'));
    await b.create(key, bytes('b'));
    await reader.until('re-created put', (events) => puts(events).some((e) => text(e.value) === 'b'));
    const [del, put] = reader.events;
    assert.equal(del?.type, 'delete');
    assert.equal(put?.type, 'put');
    assert.ok(put?.type === 'put' && put.entry.version === 1);
    assert.ok(del?.type === 'delete' && put?.type === 'put' && del.revision < put.entry.revision);
  });

  it('key watch on a missing key fires on creation', async () => {
    const b = await openBackend();
    const key = `${uniquePrefix()}/later/payload`;
    const reader = new EventReader(b.watch({ key }));
    await armed(reader);
    await b.create(key, bytes('born'));
    await reader.until('put', (events) => puts(events).length === 1);
    assert.equal(text(puts(reader.events)[0]!.value), 'born');
  });

  it('afterRevision: the current entry when it is newer, nothing when it is not, a delete when gone', async () => {
    const b = await openBackend();
    const key = `${uniquePrefix()}/payload`;
    const created = await b.create(key, bytes('1'));
    assert.ok(created.created);
    const put = await b.put(key, bytes('2'), { expectedVersion: 1 });
    assert.ok(put.ok);
    const caughtUp = new EventReader(b.watch({ key }, { afterRevision: created.entry.revision }));
    await caughtUp.until('catch-up put', (events) => events.length === 1);
    assert.ok(caughtUp.events[0]?.type === 'put' && caughtUp.events[0].entry.version === 2);
    const current = new EventReader(b.watch({ key }, { afterRevision: put.entry.revision }));
    await armed(current);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(current.events, []);
    await b.delete(key);
    const gone = new EventReader(b.watch({ key }, { afterRevision: put.entry.revision }));
    await gone.until('delete', (events) => events.length === 1);
    assert.equal(gone.events[0]?.type, 'delete');
  });

  it('prefix watch: joins, changes and leaves of children', async () => {
    const b = await openBackend();
    const other = await openBackend();
    const prefix = `${uniquePrefix()}/_groups/g`;
    await b.create(`${prefix}/a`, bytes('a1'));
    const reader = new EventReader(b.watch({ prefix }));
    await armed(reader);
    const eph = await other.create(`${prefix}/b`, bytes('b1'), { ephemeral: true });
    assert.ok(eph.created);
    await reader.until('b joins', (events) => puts(events).some((e) => e.key === `${prefix}/b`));
    await b.put(`${prefix}/a`, bytes('a2'), { expectedVersion: 1 });
    await reader.until('a changes', (events) => puts(events).some((e) => e.key === `${prefix}/a` && e.version === 2));
    await other.close();
    await reader.until('b leaves', (events) => events.some((e) => e.type === 'delete' && e.key === `${prefix}/b`));
    await b.delete(`${prefix}/a`);
    await reader.until('a leaves', (events) => events.some((e) => e.type === 'delete' && e.key === `${prefix}/a`));
    const keys = reader.events.map((e) => (e.type === 'put' ? `put ${e.entry.key.slice(prefix.length)}@${e.entry.version}` : e.type === 'delete' ? `delete ${e.key.slice(prefix.length)}` : e.type));
    assert.deepEqual(keys, ['put /b@1', 'put /a@2', 'delete /b', 'delete /a']);
  });

  it('prefix watch with keysOnly: joins and leaves by name, without any request (a persistent children watch)', async () => {
    const b = await openBackend();
    const writer = await openBackend();
    const prefix = `${uniquePrefix()}/q`;
    await writer.create(`${prefix}/m-`, bytes('0'), { sequential: true });
    const reader = new EventReader(b.watch({ prefix }, { keysOnly: true }));
    await armed(reader);
    const before = b.counters.snapshot();
    const made = await writer.create(`${prefix}/m-`, bytes('1'), { sequential: true });
    assert.ok(made.created);
    await reader.until('the new child joins', (events) => puts(events).some((e) => e.key === made.entry.key));
    await writer.delete(made.entry.key);
    await reader.until('it leaves', (events) => events.some((e) => e.type === 'delete' && e.key === made.entry.key));
    const joined = puts(reader.events).find((e) => e.key === made.entry.key)!;
    assert.equal(joined.value.byteLength, 0, 'keys only: no value');
    // The notifications name the child: no list, no read, no re-arming.
    assert.deepEqual(countsSince(before, b.counters.snapshot()), {});
  });

  it('prefix watch with keysOnly: the folded names end at the store\'s, with children coming and going while it starts and across connection resets', async () => {
    const server = await zk();
    const proxy = await startTcpProxy(server.nodes[0]!.port);
    try {
      const watcher = await openBackend({ hosts: [`127.0.0.1:${proxy.port}`], overrides: { sessionTtlMs: 6000 } });
      const writer = await openBackend();
      const prefix = `${uniquePrefix()}/q`;
      const live = new Set<string>();
      const churn = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i += 1) {
          const made = await writer.create(`${prefix}/m-`, bytes('x'), { sequential: true });
          assert.ok(made.created);
          live.add(made.entry.key);
          // Every third one leaves again at once.
          if (i % 3 === 0) {
            await writer.delete(made.entry.key);
            live.delete(made.entry.key);
          }
        }
      };
      // From a revision before any child: the first listing says what is there (a reset).
      const start = await writer.create(`${prefix}-start`, bytes('0'));
      assert.ok(start.created);
      await churn(5);
      const reader = new EventReader(watcher.watch({ prefix }, { keysOnly: true, afterRevision: start.entry.revision }));
      const names = new Set<string>();
      const fold = (events: readonly WatchEvent[]): Set<string> => {
        names.clear();
        for (const e of events) {
          if (e.type === 'put') names.add(e.entry.key);
          else if (e.type === 'delete') names.delete(e.key);
          else if (e.type === 'reset') {
            names.clear();
            for (const entry of e.entries) names.add(entry.key);
          }
        }
        return names;
      };
      const same = (a: Set<string>, b: Set<string>): boolean => a.size === b.size && [...a].every((k) => b.has(k));
      // Writes race the watch's first listing, then two resets cut the watcher off mid-churn.
      const racing = churn(10);
      await armed(reader);
      await racing;
      for (let round = 0; round < 2; round += 1) {
        proxy.resetAll();
        await churn(6);
      }
      const settled = await reader.until('the folded names match the store', (events) => same(fold(events), live), 15000).then(
        () => true,
        () => false,
      );
      assert.ok(settled, `folded ${[...fold(reader.events)].sort().join(',')} vs store ${[...live].sort().join(',')}`);
      // Live again after the resets: one more join arrives.
      await churn(1);
      await reader.until('the last join', (events) => same(fold(events), live), 10000);
    } finally {
      await proxy.close();
    }
  });

  it('prefix watch: a burst of writes to children ends with every child at its last version, no repeats', async () => {
    const b = await openBackend();
    const writer = await openBackend();
    const prefix = `${uniquePrefix()}/kids`;
    const names = ['k0', 'k1', 'k2', 'k3'];
    for (const n of names) await writer.create(`${prefix}/${n}`, bytes('0'));
    const reader = new EventReader(b.watch({ prefix }));
    await armed(reader);
    const rounds = 25;
    for (let v = 1; v <= rounds; v += 1) {
      await Promise.all(names.map((n) => writer.put(`${prefix}/${n}`, bytes(String(v)), { expectedVersion: v })));
    }
    await reader.until('last versions', (events) =>
      names.every((n) => puts(events).some((e) => e.key === `${prefix}/${n}` && e.version === rounds + 1)),
    );
    for (const n of names) {
      const versions = puts(reader.events)
        .filter((e) => e.key === `${prefix}/${n}`)
        .map((e) => e.version);
      for (let i = 1; i < versions.length; i += 1) assert.ok(versions[i]! > versions[i - 1]!, `${n}: ${versions.join(',')}`);
    }
  });

  it('prefix watch on a prefix that does not exist yet, then is created, deleted and created again', async () => {
    const b = await openBackend();
    const prefix = `${uniquePrefix()}/later/group`;
    const reader = new EventReader(b.watch({ prefix }));
    await armed(reader);
    await b.create(`${prefix}/m1`, bytes('1'));
    await reader.until('m1', (events) => puts(events).some((e) => e.key === `${prefix}/m1`));
    await b.delete(`${prefix}/m1`);
    await b.delete(prefix);
    await reader.until('m1 gone', (events) => events.some((e) => e.type === 'delete' && e.key === `${prefix}/m1`));
    await b.create(`${prefix}/m2`, bytes('2'));
    await reader.until('m2', (events) => puts(events).some((e) => e.key === `${prefix}/m2`));
    assert.deepEqual(
      reader.events.map((e) => e.type),
      ['put', 'delete', 'put'],
    );
  });

  it('prefix watch with afterRevision: a reset when children came or went since then', async () => {
    const b = await openBackend();
    const prefix = `${uniquePrefix()}/members`;
    const first = await b.create(`${prefix}/m1`, bytes('1'));
    assert.ok(first.created);
    await b.create(`${prefix}/m2`, bytes('2'));
    await b.delete(`${prefix}/m1`);
    const reader = new EventReader(b.watch({ prefix }, { afterRevision: first.entry.revision }));
    await reader.until('reset', (events) => events.length === 1);
    const reset = reader.events[0];
    assert.ok(reset?.type === 'reset');
    assert.deepEqual(reset.entries.map((e) => e.key), [`${prefix}/m2`]);
    // Only data changed since: puts, no reset.
    const now = await b.put(`${prefix}/m2`, bytes('2b'), { expectedVersion: 1 });
    assert.ok(now.ok);
    const second = new EventReader(b.watch({ prefix }, { afterRevision: reset.revision }));
    await second.until('put', (events) => events.length === 1);
    assert.ok(second.events[0]?.type === 'put' && second.events[0].entry.version === 2);
  });

  it('under repeated connection resets: no repeated version, and the folded events end at the store state', async () => {
    const server = await zk();
    const proxy = await startTcpProxy(server.nodes[0]!.port);
    try {
      const watcher = await openBackend({ hosts: [`127.0.0.1:${proxy.port}`], overrides: { sessionTtlMs: 6000 } });
      const writer = await openBackend();
      const prefix = uniquePrefix('chaos');
      const key = `${prefix}/payload`;
      const group = `${prefix}/group`;
      await writer.create(key, bytes('0'));
      const keyEvents = new EventReader(watcher.watch({ key }));
      const groupEvents = new EventReader(watcher.watch({ prefix: group }));
      await Promise.all([armed(keyEvents), armed(groupEvents)]);
      let resets = 0;
      const chaos = setInterval(() => {
        resets += 1;
        proxy.resetAll();
      }, 120);
      let version = 1;
      try {
        // At least 150 writes, and on until the connection was reset a few times (a fast server
        // can take 150 writes between three resets); bounded in count.
        for (let i = 0; i < 150 || (resets <= 5 && i < 3000); i += 1) {
          const put = await writer.put(key, bytes(String(i)), { expectedVersion: version });
          assert.ok(put.ok);
          version += 1;
          const member = `${group}/m${i % 7}`;
          // Members come and go: create when absent, else update or delete.
          const current = await writer.get(member);
          if (!current) await writer.create(member, bytes(String(i)));
          else if (i % 3 === 0) await writer.delete(member);
          else await writer.put(member, bytes(String(i)), { expectedVersion: current.version });
        }
      } finally {
        clearInterval(chaos);
      }
      const finalMembers = new Map((await writer.list(group)).map((e) => [e.key, e.version] as const));
      await keyEvents.until('the last version', (events) => puts(events).some((e) => e.version === version), 20000);
      const fold = (events: readonly WatchEvent[]): Map<string, number> => {
        const state = new Map<string, number>();
        for (const e of events) {
          if (e.type === 'reset') {
            state.clear();
            for (const x of e.entries) state.set(x.key, x.version);
          } else if (e.type === 'put') state.set(e.entry.key, e.entry.version);
          else if (e.type === 'delete') state.delete(e.key);
        }
        return state;
      };
      await groupEvents.until('the final membership', (events) => {
        const state = fold(events);
        return state.size === finalMembers.size && [...finalMembers].every(([k, v]) => state.get(k) === v);
      }, 20000);
      const versions = puts(keyEvents.events).map((e) => e.version);
      for (let i = 1; i < versions.length; i += 1) assert.ok(versions[i]! > versions[i - 1]!, versions.join(','));
      // Same session throughout: resets of the TCP connection are not session losses.
      assert.equal(watcher.session.epoch, 1);
      assert.ok(resets > 3, `only ${resets} connection resets`);
      assert.ok(keyEvents.events.every((e) => e.type === 'put'), describeEvents(keyEvents.events));
    } finally {
      await proxy.close();
    }
  });

  it('zkstate interop: a raw client writes JSON to /<dir>/payload; get and watch see it', async () => {
    const server = await zk();
    const raw = await RawClient.connect(server.connectString);
    try {
      // With namespace '' the core's key for struct "dir" is /dir/payload: zkstate's layout.
      const dir = uniquePrefix('zkstate');
      await raw.mkdirp(`${dir}/listeners`);
      await raw.create(`${dir}/payload`, Buffer.from(JSON.stringify(['systemd*', 'rsync*'])));
      const b = await openBackend();
      const entry = await b.get(`${dir}/payload`);
      assert.deepEqual(JSON.parse(text(entry!.value)), ['systemd*', 'rsync*']);
      assert.equal(entry!.version, 1);
      const reader = new EventReader(b.watch({ key: `${dir}/payload` }));
      await armed(reader);
      await raw.setData(`${dir}/payload`, Buffer.from(JSON.stringify(['systemd*', 'rsync*', 'firefox*'])), 0);
      await reader.until('put', (events) => puts(events).length === 1);
      const seen = puts(reader.events)[0]!;
      assert.equal(seen.version, 2);
      assert.deepEqual(JSON.parse(text(seen.value)), ['systemd*', 'rsync*', 'firefox*']);
      // And our CAS write is what zkstate reads, at the znode version it expects.
      const put = await b.put(`${dir}/payload`, bytes('["x"]'), { expectedVersion: 2 });
      assert.ok(put.ok);
      const back = await raw.getData(`${dir}/payload`);
      assert.equal(back.data.toString(), '["x"]');
      assert.equal(back.version, 2);
    } finally {
      await raw.close();
    }
  });

  it('close ends the iteration; the backend closing ends it with CLOSED', async () => {
    const b = await openBackend();
    const key = `${uniquePrefix()}/payload`;
    const w1 = b.watch({ key });
    const r1 = new EventReader(w1);
    const controller = new AbortController();
    const r2 = new EventReader(b.watch({ key }, { signal: controller.signal }));
    const r3 = new EventReader(b.watch({ prefix: key }));
    w1.close();
    w1.close();
    controller.abort();
    await r1.until('end', () => r1.done);
    await r2.until('end', () => r2.done);
    assert.equal(r1.error, undefined);
    assert.equal(r2.error, undefined);
    await b.close();
    await r3.until('end', () => r3.done);
    assert.equal((r3.error as { code?: string } | undefined)?.code, 'CLOSED');
  });
});

/** Waits until the watch's first read armed it. */
function armed(reader: EventReader): Promise<void> {
  return (reader.watch as ZkWatch).armed();
}
