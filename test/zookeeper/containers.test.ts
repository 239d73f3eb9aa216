/**
 * Parents of keys that come and go (locks, elections, groups, listeners, write locks) are
 * container nodes: the real server deletes each one after its last child is gone (the harness
 * runs the server's container check every 100 ms), so nothing piles up in the store. What holds
 * a persistent child (a struct's own node, with `payload`) stays, and the adapter survives a
 * container deleted between its parent create and its child create.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Client } from '../../lib/index.js';
import { sleep } from '../support/process.js';
import { startWireTap } from './wire-tap.js';
import { RawClient, bytes, closeAll, openBackend, quietLogger, uniquePrefix, zk } from './helpers.js';

/** Waits (bounded) until `path` exists (or, with `gone`, does not). */
async function until(raw: RawClient, path: string, gone: boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while ((await raw.exists(path)) === gone) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

describe('zookeeper adapter: container parents', function () {
  this.timeout(60000);
  let raw: RawClient;
  const clients: Client[] = [];
  before(async () => {
    raw = await RawClient.connect((await zk()).connectString);
  });
  after(() => raw.close());
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await closeAll();
  });

  const client = async (namespace: string, url?: string): Promise<Client> => {
    const c = await connect(url ?? `zk://${(await zk()).connectString}`, { namespace, sessionTtlMs: 4000, logger: quietLogger });
    clients.push(c);
    return c;
  };

  it("a lock's parent vanishes after the last holder releases; _locks itself stays", async () => {
    const ns = uniquePrefix('containers-lock');
    const a = await client(ns);
    const b = await client(ns);
    const first = await a.lock('job');
    const second = b.lock('job', { waitMs: 10000 });
    const parent = `${ns}/_locks/job`;
    assert.equal(await raw.exists(parent), true);
    await first.release();
    const held = await second;
    // One holder left: the parent stays while it has a child.
    await sleep(300);
    assert.equal(await raw.exists(parent), true, 'deleted while a holder was in it');
    await held.release();
    assert.ok(await until(raw, parent, true), `${parent} still there after the last release`);
    assert.equal(await raw.exists(`${ns}/_locks`), true);
    // The next lock makes it again.
    const again = await a.lock('job');
    assert.ok(BigInt(again.token) > BigInt(held.token), 'fencing tokens keep growing across parent lives');
    await again.release();
  });

  it('election and group parents vanish after the last candidate resigns and the last member leaves', async () => {
    const ns = uniquePrefix('containers-elect');
    const c = await client(ns);
    const election = c.election('leader', { id: 'n1' });
    await election.campaign();
    const group = await c.join('workers', { id: 'w1' });
    assert.equal(await raw.exists(`${ns}/_elections/leader`), true);
    assert.equal(await raw.exists(`${ns}/_groups/workers`), true);
    await election.resign();
    await group.leave();
    assert.ok(await until(raw, `${ns}/_elections/leader`, true), 'the election parent stayed');
    assert.ok(await until(raw, `${ns}/_groups/workers`, true), 'the group parent stayed');
  });

  it("a struct's listeners and write_lock go with their last child; the struct's node and payload stay (zkstate layout, namespace '')", async () => {
    const server = await zk();
    // namespace '' under a chroot of its own: /<chroot>/<dir>/payload, zkstate's layout.
    const chroot = `/sharedstruct-test/containers-zkstate-${randomBytes(4).toString('hex')}`;
    const c = await client('', `zk://${server.connectString}${chroot}`);
    const flags = await c.open<{ n: number }>('flags', { initial: { n: 0 } });
    await flags.updateLocked((d) => {
      d.n += 1;
    });
    const dir = `${chroot}/flags`;
    assert.equal(await raw.exists(`${dir}/listeners`), true);
    assert.ok(await until(raw, `${dir}/write_lock`, true), 'write_lock stayed after the lock was released');
    await c.close();
    assert.ok(await until(raw, `${dir}/listeners`, true), 'listeners stayed after the last listener left');
    // What zkstate reads and creates is untouched.
    assert.equal(await raw.exists(dir), true);
    assert.deepEqual(JSON.parse((await raw.getData(`${dir}/payload`)).data.toString('utf8')), { n: 1 });
    assert.equal(await raw.exists(chroot), true);
  });

  it('persistent children keep persistent parents; a parent at the chroot is never a container', async () => {
    const server = await zk();
    const chroot = uniquePrefix('containers-chroot');
    const b = await openBackend({ hosts: server.hosts, path: chroot });
    const plain = await b.create('/dir/k', bytes('1'));
    assert.ok(plain.created);
    const seq = await b.create('/q-', bytes('1'), { ephemeral: true, sequential: true });
    assert.ok(seq.created);
    await b.delete(plain.entry.key);
    await b.delete(seq.entry.key);
    await sleep(500); // several container checks
    assert.equal(await raw.exists(`${chroot}/dir`), true, 'a parent of a persistent key was deleted');
    assert.equal(await raw.exists(chroot), true, 'the chroot was deleted');
  });

  it('a container deleted by the server between the parent create and the child create: the create makes it again and succeeds', async () => {
    const server = await zk();
    const tap = await startWireTap(server.nodes[0]!.port);
    try {
      const b = await openBackend({ hosts: [`127.0.0.1:${tap.port}`] });
      const parent = `${uniquePrefix('containers-race')}/_locks/job`;
      const childPrefix = `${parent}/q-`;
      let creates = 0;
      // The second create2 of the child is the one after the parents were made: stop it there.
      const stopped = tap.pauseWhen((r) => r.type === 15 && r.path === childPrefix && ++creates === 2);
      const before = b.counters.snapshot();
      const created = b.create(childPrefix, bytes('1'), { ephemeral: true, sequential: true });
      await stopped;
      assert.ok(await until(raw, parent, false), 'the parent was not created');
      // Used and emptied by someone else: the server's container check deletes it.
      const other = await raw.create(`${parent}/x`, Buffer.alloc(0), 1);
      await raw.remove(other);
      assert.ok(await until(raw, parent, true), 'the server did not delete the emptied container');
      tap.resume();
      const result = await created;
      assert.ok(result.created, 'the create failed');
      assert.ok(result.entry.key.startsWith(childPrefix));
      assert.equal(await raw.exists(b.pathOf(result.entry.key)), true);
      const after = b.counters.snapshot();
      assert.equal((after.createContainer ?? 0) - (before.createContainer ?? 0), 2, 'the container parent was created twice');
      assert.equal((after.create ?? 0) - (before.create ?? 0) >= 2, true);
    } finally {
      await tap.close();
    }
  });

  it('two clients taking one lock 40 times while the server deletes its emptied parent: every acquire succeeds, tokens grow', async () => {
    const ns = uniquePrefix('containers-churn');
    const a = await client(ns);
    const b = await client(ns);
    const tokens: bigint[] = [];
    const work = async (c: Client): Promise<void> => {
      for (let i = 0; i < 20; i++) {
        await c.withLock('hot', (lock) => {
          tokens.push(BigInt(lock.token));
          return Promise.resolve();
        }, { waitMs: 10000 });
        // Let the parent empty now and then, so the server's check can delete it mid-run.
        if (i % 3 === 0) await sleep(120);
      }
    };
    await Promise.all([work(a), work(b)]);
    assert.equal(tokens.length, 40);
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i]! > tokens[i - 1]!, `token ${i} did not grow`);
    assert.ok(await until(raw, `${ns}/_locks/hot`, true), 'the parent stayed after the run');
  });
});
