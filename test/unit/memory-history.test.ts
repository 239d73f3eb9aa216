/**
 * The memory store's automatic compaction keeps at least `historyLimit` records and drops older
 * ones in batches, not one per commit (an array shift of the whole history on every commit made
 * a small update on the in-memory default 2.5× slower; the rate is `npm run bench`'s, not this).
 */
import assert from 'node:assert/strict';
import { MemoryStore } from '../../adapters/memory/store.js';

describe('memory store history', () => {
  it('compacts in batches past historyLimit, keeping the newest historyLimit records replayable', () => {
    const store = new MemoryStore('history');
    const session = store.openSession();
    const value = new TextEncoder().encode('v');
    assert.ok(store.commit([], [{ op: 'create', key: '/k', value }], session));
    const put = (): void => assert.ok(store.commit([], [{ op: 'put', key: '/k', value }], session));
    const limit = store.historyLimit;
    for (let i = 0; i < limit; i++) put();
    assert.equal(store.compactedRevision, 0n, 'one record past the limit compacts nothing yet');
    for (let i = 0; i < limit; i++) put();
    assert.ok(store.compactedRevision > 0n, 'compacted once far enough past the limit');
    const replayable = store.historyAfter({ key: '/k' }, store.revision - BigInt(limit));
    assert.equal(replayable?.length, limit, 'the newest historyLimit records are kept');
    assert.equal(store.historyAfter({ key: '/k' }, 0n), undefined, 'older ones are gone');
  });
});
