/**
 * A 3-node ZooKeeper ensemble on loopback (issue 8's harness): it forms with one leader; a struct
 * keeps working when the leader is killed; a consistent read through another server sees a write
 * made through the one that just answered, which is what `sync` is for.
 */
import assert from 'node:assert/strict';
import { connect, type Client } from '../../lib/index.js';
import { eventually } from '../contract/struct.suite.js';
import { onRunEnd } from '../support/cleanup.js';
import { startZooKeeper, zkLeader, type ZooKeeperCluster } from '../support/zookeeper.js';
import { quietLogger } from './helpers.js';

describe('zookeeper ensemble: 3 nodes on loopback', function () {
  this.timeout(120000);
  let zk: ZooKeeperCluster;
  const clients: Client[] = [];
  before(async function () {
    this.timeout(120000);
    zk = await startZooKeeper({ nodes: 3, startTimeoutMs: 60000 });
    onRunEnd(() => zk.stop());
  });
  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await zk?.stop();
  });
  const client = async (hosts: string): Promise<Client> => {
    const c = await connect(`zk://${hosts}`, { namespace: '/ensemble', sessionTtlMs: 6000, requestTimeoutMs: 3000, logger: quietLogger });
    clients.push(c);
    return c;
  };

  it('forms with exactly one leader', async () => {
    const modes = await Promise.all(zk.nodes.map(async (n) => /Mode: (\w+)/.exec(await n.fourLetter('srvr'))?.[1]));
    assert.deepEqual([...modes].sort(), ['follower', 'follower', 'leader']);
  });

  it('consistent reads through one server see writes made through another', async () => {
    const [a, b] = [zk.hosts[0]!, zk.hosts[1]!];
    const writer = await client(a);
    const reader = await client(b);
    const w = await writer.open<{ n: number }>('sync', { initial: { n: 0 } });
    const r = await reader.open<{ n: number }>('sync');
    for (let i = 1; i <= 20; i++) {
      await w.update((d) => void (d.n = i));
      assert.equal((await r.readConsistent()).n, i, `read ${i} through the other server`);
    }
  });

  it('killing the leader: the struct keeps working and the ensemble elects another', async () => {
    const c = await client(zk.connectString);
    const s = await c.open<{ n: number }>('failover', { initial: { n: 0 } });
    await s.update((d) => void (d.n += 1));
    const leader = await zkLeader(zk);
    assert.ok(leader, 'a leader');
    await leader.kill();
    await eventually('a new leader', async () => (await zkLeader(zk)) !== undefined, 30000);
    await eventually('writes go through again', async () => {
      await s.update((d) => void (d.n += 1));
      return true;
    }, 30000);
    assert.ok((await s.readConsistent()).n >= 2);
    await leader.restart();
    const modes = await Promise.all(zk.nodes.map(async (n) => /Mode: (\w+)/.exec(await n.fourLetter('srvr'))?.[1]));
    assert.deepEqual([...modes].sort(), ['follower', 'follower', 'leader']);
  });
});
