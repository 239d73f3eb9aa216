/**
 * A user's own tests with `sharedstruct/testing`, on Node's built-in runner (node:test): a small
 * service (a rate limiter whose limit lives in a shared struct) checked twice, without a server
 * (the memory store cut off: the service keeps its last limit, then catches up) and on a real
 * 3-member etcd whose leader is killed (the service carries on). In your project the imports are
 * `sharedstruct` and `sharedstruct/testing`.
 *
 *   node --import tsx --test examples/05-failover.test.ts
 *   SHAREDSTRUCT_RUNTIME=container node --import tsx --test examples/05-failover.test.ts
 *
 * The runtime is 'auto' unless SHAREDSTRUCT_RUNTIME says 'binary' or 'container' (installed
 * etcd, or Docker and the testcontainers package).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, isSharedStructError, type Client, type SharedStruct } from '../lib/index.js';
import { memoryStore, startEtcd, type EtcdCluster, type Runtime } from '../testing/index.js';

interface Limits {
  perMinute: number;
}

/** The service under test: allows `perMinute` calls, read from the shared struct on every call. */
class RateLimiter {
  #used = 0;
  constructor(private readonly limits: SharedStruct<Limits>) {}

  /** True when the call may go ahead; reads the cached limit (no round trip, works while cut off). */
  allow(): boolean {
    const { perMinute } = this.limits.readDirty();
    if (this.#used >= perMinute) return false;
    this.#used += 1;
    return true;
  }

  /**
   * Operators change the limit. A conflict is retried by update() itself; a write cut short by a
   * failover (TIMEOUT, CONNECTION: it may or may not have been applied) is retried here, which is
   * safe because setting a value twice is setting it once.
   */
  async setLimit(perMinute: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.limits.update((draft) => {
          draft.perMinute = perMinute;
        });
        return;
      } catch (err) {
        if (!isSharedStructError(err) || !err.retryable || attempt === 5) throw err;
      }
    }
  }
}

describe('rate limiter, no server (memory store)', () => {
  it('keeps its last limit while cut off, and learns the new one when healed', async () => {
    const store = memoryStore();
    await using operator = await connect(store.url);
    await using service = await connect(store.url, { sessionTtlMs: 2000 });
    const limiter = new RateLimiter(await service.open<Limits>('limits', { initial: { perMinute: 1 } }));
    const admin = new RateLimiter(await operator.open<Limits>('limits'));

    const heal = store.partition(service);
    await admin.setLimit(3);
    assert.equal(limiter.allow(), true);
    assert.equal(limiter.allow(), false, 'the old limit (1) holds while cut off');
    heal();
    for (let i = 0; i < 50 && !limiter.allow(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(limiter.allow(), true, 'the new limit (3) arrived after the heal');
  });
});

describe('rate limiter on a 3-member etcd', () => {
  let etcd: EtcdCluster;
  let service: Client;

  before(async () => {
    etcd = await startEtcd({ members: 3, runtime: (process.env.SHAREDSTRUCT_RUNTIME as Runtime | undefined) ?? 'auto' });
    service = await connect(etcd.url, { sessionTtlMs: 3000 });
  });

  after(async () => {
    await service?.close();
    await etcd?.stop();
  });

  it("survives the death of etcd's leader", async () => {
    const limiter = new RateLimiter(await service.open<Limits>('limits', { initial: { perMinute: 1 } }));
    await etcd.members[await etcd.leader()]!.kill();
    await limiter.setLimit(2);
    assert.equal(limiter.allow(), true);
    assert.equal(limiter.allow(), true);
    assert.equal(limiter.allow(), false);
  });
});
