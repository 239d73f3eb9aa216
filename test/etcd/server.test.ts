import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect } from '../../lib/index.js';
import { drainCounted } from '../contract/server-cost.js';
import { serverContract } from '../contract/server.suite.js';
import { quietLogger, sharedEtcd } from '../support/etcd.js';
import { etcdTarget as target } from './target.js';

serverContract(target);

describe('etcd: durable server costs', function () {
  this.timeout(60000);

  it('a busy consumer with batch 1 sends one Txn per message: each commit lists the next head in the same Txn', async () => {
    const N = 40;
    const counts = await drainCounted(`etcd://${(await sharedEtcd()).endpoints.join(',')}`, quietLogger, N);
    assert.equal(counts.txn, N, JSON.stringify(counts));
    // The first round lists; a round after a queue change newer than the commit lists again.
    assert.ok((counts.range ?? 0) <= 3, `listings: ${JSON.stringify(counts)}`);
  });

  it('messages cast while a consumer drains are all applied', async () => {
    const url = `etcd://${(await sharedEtcd()).endpoints.join(',')}`;
    const namespace = `/cost-${randomUUID().slice(0, 8)}`;
    await using consumerClient = await connect(url, { namespace, logger: quietLogger });
    await using producerClient = await connect(url, { namespace, logger: quietLogger });
    type State = { n: number };
    const producer = await producerClient.server<State, { i: number }>('race', { initial: { n: 0 } });
    const consumer = await consumerClient.server<State, { i: number }>('race', { initial: { n: 0 }, handle: (d) => void (d.n += 1) });
    const worker = await consumer.serve({ batch: 1 });
    // Casts racing the consumer's commits: some land after a commit's listing and before its
    // reply, so the listing is already old when it arrives.
    const N = 150;
    for (let i = 0; i < N; i += 1) {
      await producer.cast({ i });
      if (i % 3 === 0) await new Promise((r) => setImmediate(r));
    }
    const deadline = Date.now() + 15000;
    while (consumer.state.read().n < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const n = consumer.state.read().n;
    const pending = (await producer.pending()).length;
    await worker.stop();
    assert.equal(n, N, `applied ${n} of ${N}; ${pending} still queued (a stale head left the consumer idle)`);
  });
});
