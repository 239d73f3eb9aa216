/**
 * `sharedstruct/testing` itself, as a user sees it: a 3-member cluster started through the public
 * entry, a client that survives its leader's death, a follower frozen and thawed, a link that cuts
 * one client off, slows and resets it, a session expired on the server, and a `stop()` that leaves
 * nothing behind. Run on etcd and ZooKeeper, in the binary runtime and (test/containers/) in
 * containers.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { connect, isSharedStructError, type Client } from '../../lib/index.js';
import type { ClusterLink, EtcdCluster, ZooKeeperCluster } from '../../testing/index.js';
import { quietLogger } from '../support/etcd.js';
import { eventually } from './struct.suite.js';

/** How a harness suite starts its cluster. */
export interface HarnessTarget {
  /** `etcd` or `zookeeper` (in the suite's title, for the reporter's groups). */
  readonly name: 'etcd' | 'zookeeper';
  readonly runtime: 'binary' | 'container';
  start(size: 3): Promise<EtcdCluster | ZooKeeperCluster>;
}

/** Whether `pid` is a live process. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Updates `n` on `client` until one update lands (bounded): what a user's service does after a
 * failover. An update that timed out may have landed too, so callers expect growth, not a count.
 */
async function bump(client: Client, name: string, deadlineMs: number): Promise<number> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      const struct = await client.open<{ n: number }>(name, { initial: { n: 0 } });
      try {
        return (await struct.update((v) => ({ n: v.n + 1 }))).value.n;
      } finally {
        await struct.close();
      }
    } catch (err) {
      if (!isSharedStructError(err) || !err.retryable || Date.now() > until) throw err;
    }
  }
}

/** Runs the harness suite on `target`. */
export function harnessSuite(target: HarnessTarget): void {
  describe(`${target.name}: sharedstruct/testing, 3 members, runtime ${target.runtime}`, function () {
    this.timeout(120000);
    let cluster: EtcdCluster | ZooKeeperCluster;
    let stopped = false;
    const clients: Client[] = [];
    const links: ClusterLink[] = [];
    const open = async (url: string): Promise<Client> => {
      const c = await connect(url, { namespace: `/harness-${target.runtime}`, sessionTtlMs: 3000, requestTimeoutMs: 1500, logger: quietLogger });
      clients.push(c);
      return c;
    };

    before(async function () {
      this.timeout(180000);
      const started = Date.now();
      cluster = await target.start(3);
      console.log(`      (${target.name} × 3, runtime ${target.runtime}: started in ${Date.now() - started} ms)`);
    });

    afterEach(async () => {
      await Promise.allSettled(clients.splice(0).map((c) => c.close()));
      await Promise.allSettled(links.splice(0).map((l) => l.close()));
      if (stopped) return;
      for (const m of cluster.members) {
        await m.resume();
        if (!m.running) await m.restart();
      }
    });

    after(async () => {
      await cluster?.stop();
    });

    it('url names every member; the leader is one of them; its death leaves the client working, and it rejoins', async () => {
      assert.equal(cluster.runtime, target.runtime);
      assert.equal(cluster.members.length, 3);
      const scheme = target.name === 'etcd' ? 'etcd' : 'zk';
      assert.match(cluster.url, new RegExp(`^${scheme}://127\\.0\\.0\\.1:\\d+,127\\.0\\.0\\.1:\\d+,127\\.0\\.0\\.1:\\d+$`));
      const client = await open(cluster.url);
      const first = await bump(client, 'failover', 5000);
      const leader = await cluster.leader();
      assert.ok(leader >= 0 && leader < 3);
      await cluster.members[leader]!.kill();
      assert.equal(cluster.members[leader]!.running, false);
      const second = await bump(client, 'failover', 20000);
      assert.ok(second > first, `${second} > ${first}`);
      const next = await cluster.leader();
      assert.notEqual(next, leader, 'another member leads');
      await cluster.members[leader]!.restart();
      assert.equal(cluster.members[leader]!.running, true);
      assert.ok((await bump(client, 'failover', 20000)) > second);
    });

    it('a frozen follower leaves the quorum serving; resumed, it serves again', async () => {
      const client = await open(cluster.url);
      const follower = ((await cluster.leader()) + 1) % 3;
      await cluster.members[follower]!.pause();
      await bump(client, 'frozen', 20000);
      await cluster.members[follower]!.resume();
      // The thawed member answers again: its own client port serves the struct.
      const direct = await open(`${target.name === 'etcd' ? 'etcd' : 'zk'}://${cluster.url.split('://')[1]!.split(',')[follower]!}`);
      await eventually('the thawed member serves', async () => (await bump(direct, 'frozen', 5000)) >= 2, 20000);
    });

    it("proxy(): one client's link blackholed (its update fails at its deadline, another client's works), healed, slowed, reset", async () => {
      const link = await cluster.proxy();
      links.push(link);
      assert.match(link.url, /:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+$/);
      const cut = await open(link.url);
      const other = await open(cluster.url);
      const struct = await cut.open<{ n: number }>('linked', { initial: { n: 0 } });
      link.blackhole();
      assert.equal(link.blackholed, true);
      await assert.rejects(struct.update((v) => ({ n: v.n + 1 })), (err: unknown) => isSharedStructError(err) && (err.code === 'TIMEOUT' || err.code === 'CONNECTION'));
      assert.ok((await bump(other, 'linked', 5000)) >= 1);
      link.heal();
      assert.equal(link.blackholed, false);
      await eventually('the healed client writes', async () => (await bump(cut, 'linked', 10000)) >= 2, 20000);
      link.delay({ minMs: 150, maxMs: 150 });
      const t0 = Date.now();
      await struct.readConsistent();
      assert.ok(Date.now() - t0 >= 290, `a consistent read over the slow link took ${Date.now() - t0} ms (a round trip is 2 × 150 ms)`);
      link.heal();
      link.reset();
      await eventually('the reset client writes', async () => (await bump(cut, 'linked', 10000)) >= 3, 20000);
    });

    it('expireSession(client): the server ends its session; the client learns it, opens a new one and joins its group again', async () => {
      const link = await cluster.proxy();
      links.push(link);
      const client = await open(link.url);
      const watcher = await open(cluster.url);
      const states: string[] = [];
      client.on('state', (s) => states.push(s.state));
      await client.join('workers', { id: 'w1' });
      const group = await watcher.join('workers', { id: 'observer' });
      await eventually('w1 joined', async () => (await group.members()).some((m) => m.id === 'w1'), 10000);
      await cluster.expireSession(client);
      await eventually('lost, then reconnected', () => states.includes('lost') && states.at(-1) === 'reconnected', 20000);
      // The library joins again on the new session.
      await eventually('w1 back', async () => (await group.members()).some((m) => m.id === 'w1'), 20000);
    });

    it('expireSession(client) of a client connected straight to the members (no link)', async () => {
      const client = await open(cluster.url);
      const states: string[] = [];
      client.on('state', (s) => states.push(s.state));
      const before = await bump(client, 'direct-expiry', 5000);
      await cluster.expireSession(client);
      await eventually('lost, then reconnected', () => states.includes('lost') && states.at(-1) === 'reconnected', 20000);
      assert.ok((await bump(client, 'direct-expiry', 10000)) > before, 'the client works on its new session');
    });

    it('stop() is idempotent and leaves no process, container or data behind', async () => {
      const pids = cluster.members.map((m) => m.pid);
      const dirs = cluster.members.map((m) => m.dataDir);
      const link = await cluster.proxy();
      stopped = true;
      await Promise.all([cluster.stop(), cluster.stop()]);
      await cluster.stop();
      for (const m of cluster.members) assert.equal(m.running, false);
      if (target.runtime === 'binary') for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} is gone`);
      for (const dir of dirs) assert.equal(existsSync(dir), false, `${dir} is removed`);
      await assert.rejects(connect(link.url, { connectTimeoutMs: 1000, logger: quietLogger }).then((c) => c.close()), (err: unknown) => isSharedStructError(err) && err.code === 'CONNECTION');
      await assert.rejects(cluster.proxy(), (err: unknown) => isSharedStructError(err) && err.code === 'CLOSED');
    });
  });
}
