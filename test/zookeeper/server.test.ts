import assert from 'node:assert/strict';
import { drainCounted } from '../contract/server-cost.js';
import { serverContract } from '../contract/server.suite.js';
import { zookeeperTarget as target } from './target.js';
import { quietLogger, zk } from './helpers.js';

serverContract(target);

describe('zookeeper: durable server costs', function () {
  this.timeout(60000);

  it('a busy consumer with batch 1 sends one getData and one multi per message: the queue\'s names come from its watch, the state\'s echo is not read', async () => {
    const N = 40;
    const counts = await drainCounted(`zk://${(await zk()).connectString}`, quietLogger, N);
    assert.equal(counts.multi, N, JSON.stringify(counts));
    // The first round lists (the watch is not live yet); a few more may, when a read races a leave.
    assert.ok((counts.getChildren ?? 0) <= 3, `listings: ${JSON.stringify(counts)}`);
    assert.ok((counts.getData ?? 0) <= N + 3, `reads: ${JSON.stringify(counts)}`);
    // Our own commits are not read back by the state's watch.
    assert.equal(counts.watchGetData ?? 0, 0, JSON.stringify(counts));
  });
});
