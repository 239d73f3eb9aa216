import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect, consoleLogger } from '../../lib/index.js';
import { drainCounted } from '../contract/server-cost.js';
import { backendOf } from '../../lib/client.js';
import { serverContract } from '../contract/server.suite.js';
import { memoryTarget as target } from './target.js';

serverContract(target);

describe('[memory] durable server: the head a commit lists', function () {
  this.timeout(30000);

  it('a busy consumer with batch 1 sends one txn per message and lists the queue once', async () => {
    const counts = await drainCounted(`memory://cost-${randomUUID().slice(0, 8)}`, consoleLogger, 40);
    assert.equal(counts.txn, 40, JSON.stringify(counts));
    // The claims once at start, the queue's head once at start: every later head came with a commit.
    assert.equal(counts.list, 2, JSON.stringify(counts));
  });

  it('is dropped when the queue moved past the commit before its reply arrived: a message cast then is applied, not left behind by an idle consumer', async () => {
    const store = `prefetch-${randomUUID().slice(0, 8)}`;
    await using consumerClient = await connect(`memory://${store}`);
    await using producerClient = await connect(`memory://${store}`);
    type State = { n: number };
    const producer = await producerClient.server<State, { i: number }>('s', { initial: { n: 0 } });
    const consumer = await consumerClient.server<State, { i: number }>('s', { initial: { n: 0 }, handle: (d) => void (d.n += 1) });
    // The consumer's first commit is answered only after another message was cast and its
    // watch event (and the commit's own) had arrived: its listing (an empty queue) is then old.
    const backend = backendOf(consumerClient);
    const txn = backend.txn.bind(backend);
    let raced = false;
    backend.txn = async (t, o) => {
      const r = await txn(t, o);
      if (!raced && t.list && r.ok) {
        raced = true;
        await producer.cast({ i: 1 });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return r;
    };
    await producer.cast({ i: 0 });
    const worker = await consumer.serve({ batch: 1 });
    const deadline = Date.now() + 5000;
    while (consumer.state.read().n < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await worker.stop();
    assert.ok(raced);
    assert.equal(consumer.state.read().n, 2, `${(await producer.pending()).length} message(s) left queued`);
  });
});
