import assert from 'node:assert/strict';
import { connect } from '../../lib/index.js';
import { countsSince } from '../../lib/util/counters.js';
import { serverContract } from '../contract/server.suite.js';
import { zookeeperTarget as target, zkBackendOf } from './target.js';
import { quietLogger, uniquePrefix, zk } from './helpers.js';

serverContract(target);

describe('zookeeper: durable server costs', function () {
  this.timeout(60000);

  it('a busy consumer with batch 1 sends one getData and one multi per message: the queue\'s names come from its watch, the state\'s echo is not read', async () => {
    const url = `zk://${(await zk()).connectString}`;
    const namespace = uniquePrefix('cost');
    await using consumerClient = await connect(url, { namespace, logger: quietLogger });
    await using producerClient = await connect(url, { namespace, logger: quietLogger });
    type State = { n: number };
    const consumer = await consumerClient.server<State, { i: number }>('counter', { initial: { n: 0 }, handle: (d) => void (d.n += 1) });
    const producer = await producerClient.server<State, { i: number }>('counter', { initial: { n: 0 } });
    const N = 40;
    for (let i = 0; i < N; i += 1) await producer.cast({ i });
    const drained = new Promise<void>((resolve) => consumer.state.on('change', (ev) => ev.value.n >= N && resolve()));
    const backend = zkBackendOf(consumerClient);
    const before = backend.counters.snapshot();
    const worker = await consumer.serve({ batch: 1 });
    await drained;
    const counts = countsSince(before, backend.counters.snapshot());
    await worker.stop();
    assert.equal(counts.multi, N, JSON.stringify(counts));
    // The first round lists (the watch is not live yet); a few more may, when a read races a leave.
    assert.ok((counts.getChildren ?? 0) <= 3, `listings: ${JSON.stringify(counts)}`);
    assert.ok((counts.getData ?? 0) <= N + 3, `reads: ${JSON.stringify(counts)}`);
    // Our own commits are not read back by the state's watch.
    assert.equal(counts.watchGetData ?? 0, 0, JSON.stringify(counts));
  });
});
