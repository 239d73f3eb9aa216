/** The head of a folder of ZooKeeper sequential znodes, picked without sorting the listing. */
import assert from 'node:assert/strict';
import { firstSequential } from '../../adapters/zookeeper/entries.js';

describe('zookeeper adapter: the oldest sequential children', () => {
  const seqName = (prefix: string, n: number): string => `${prefix}${String(n).padStart(10, '0')}`;

  it('picks the `limit` smallest counters in order, whatever the listing order and the name prefixes', () => {
    let seed = 7;
    const random = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let round = 0; round < 200; round += 1) {
      const count = 1 + Math.floor(random() * 60);
      const names = Array.from({ length: count }, (_, i) => seqName(random() < 0.5 ? 'm-' : 'lock-', i * 3 + Math.floor(random() * 3)));
      for (let i = names.length - 1; i > 0; i -= 1) {
        const j = Math.floor(random() * (i + 1));
        [names[i], names[j]] = [names[j]!, names[i]!];
      }
      const limit = 1 + Math.floor(random() * 20);
      const expected = [...names].sort((a, b) => (a.slice(-10) < b.slice(-10) ? -1 : 1)).slice(0, limit);
      assert.deepEqual(firstSequential(names, limit), expected, `names ${names.join(',')} limit ${limit}`);
    }
  });

  it('gives up (undefined) when a name is not a sequential create\'s', () => {
    assert.equal(firstSequential([seqName('m-', 2), 'config', seqName('m-', 1)], 1), undefined);
  });
});
