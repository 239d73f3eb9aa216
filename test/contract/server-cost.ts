/**
 * A busy durable-server consumer, counted at the seam: a producer casts `n` messages, then a
 * consumer with `batch: 1` drains them; resolves the requests the consumer's client sent.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { backendOf } from '../../lib/client.js';
import { connect, type Logger } from '../../lib/index.js';
import { countsSince } from '../../lib/util/counters.js';

export async function drainCounted(url: string, logger: Logger, n: number): Promise<Record<string, number>> {
  const namespace = `/cost-${randomUUID().slice(0, 8)}`;
  await using consumerClient = await connect(url, { namespace, logger });
  await using producerClient = await connect(url, { namespace, logger });
  type State = { n: number };
  const consumer = await consumerClient.server<State, { i: number }>('counter', { initial: { n: 0 }, handle: (d) => void (d.n += 1) });
  const producer = await producerClient.server<State, { i: number }>('counter', { initial: { n: 0 } });
  for (let i = 0; i < n; i += 1) await producer.cast({ i });
  const drained = new Promise<void>((resolve) => consumer.state.on('change', (ev) => ev.value.n >= n && resolve()));
  const { counters } = backendOf(consumerClient);
  const before = counters.snapshot();
  const worker = await consumer.serve({ batch: 1 });
  await drained;
  const counts = countsSince(before, counters.snapshot());
  await worker.stop();
  assert.equal(consumer.state.read().n, n);
  return counts;
}
