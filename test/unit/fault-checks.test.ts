/** Self-tests of the fault matrix's checks (test/faults/checks.ts) on known-good and known-bad records. */
import assert from 'node:assert/strict';
import {
  leaderDisagreements,
  leaderOverlaps,
  lifeAnomalies,
  lockLosses,
  longestLeaderless,
  percentile,
  queueAnomalies,
  recoveryTimes,
  staleReads,
  staleTokenWrites,
  type Hold,
  type Life,
  type LifeEvent,
  type Observed,
  type QueueOutcome,
  type QueueSend,
  type Term,
} from '../faults/checks.js';

const observed = (sessionEnds: Record<number, number[]>, lockDeletes: Record<string, number> = {}): Observed => ({
  sessionEnds: new Map(Object.entries(sessionEnds).map(([k, v]) => [Number(k), v])),
  lockDeletes: new Map(Object.entries(lockDeletes)),
});
const hold = (h: Partial<Hold> & { token: string; acquiredAt: number }): Hold => ({ client: 0, lastActAt: h.acquiredAt, ...h });

describe('fault checks', () => {
  describe('cached-read staleness', () => {
    const writes = [
      { version: 2, at: 100 },
      { version: 3, at: 200 },
      { version: 4, at: 1500 },
    ];
    it('a read within the bound of every write it missed passes', () => {
      // At 1150 only writes acknowledged by 150 must be visible: version 2.
      assert.deepEqual(staleReads(writes, [{ client: 0, at: 1150, version: 2 }], 1000), []);
      // Version 4 was acknowledged 400 ms before: not yet required.
      assert.deepEqual(staleReads(writes, [{ client: 0, at: 1900, version: 3 }], 1000), []);
    });
    it('a read that misses a write acknowledged longer ago than the bound is stale', () => {
      const stale = staleReads(writes, [{ client: 1, at: 1250, version: 2 }, { client: 1, at: 2600, version: 3 }], 1000);
      // Version 3 was acknowledged at 200, 50 ms before 1250 - 1000; version 4 at 1500, 100 ms before 2600 - 1000.
      assert.deepEqual(
        stale.map((s) => [s.at, s.version, s.excessMs]),
        [
          [1250, 2, 50],
          [2600, 3, 100],
        ],
      );
    });
    it('writes out of order in the input are sorted by acknowledgement', () => {
      assert.equal(staleReads([...writes].reverse(), [{ client: 0, at: 5000, version: 3 }], 1000).length, 1);
    });
    it('a newer version acknowledged before an older one counts from its own acknowledgement', () => {
      // Two writers: version 6 acknowledged at 100, version 5 only at 900.
      const stale = staleReads([{ version: 5, at: 900 }, { version: 6, at: 100 }], [{ client: 0, at: 1300, version: 4 }], 1000);
      assert.deepEqual(stale.map((s) => s.excessMs), [200]);
    });
  });

  describe('stale-token writes', () => {
    it('tokens that never go back pass (equal tokens: one holder writing twice)', () => {
      assert.deepEqual(staleTokenWrites([{ t: '5', c: 0 }, { t: '5', c: 0 }, { t: '9', c: 1 }, { t: '12', c: 2 }]), []);
    });
    it('a write with a lower token after a higher one is stale; tokens compare as integers, not strings', () => {
      assert.deepEqual(staleTokenWrites([{ t: '9', c: 0 }, { t: '10', c: 1 }, { t: '9', c: 0 }, { t: '11', c: 2 }]), [{ t: '9', c: 0 }]);
    });
  });

  describe('lock-lost margins', () => {
    const none = new Set<string>();
    it('a holder cut off that learns before the server expires it: positive margin', () => {
      const [loss] = lockLosses([hold({ token: '7', acquiredAt: 1000, lastActAt: 3990, learnedAt: 4000, settledAt: 5500 })], observed({ 0: [4900] }, { 7: 4902 }), none, [], []);
      assert.equal(loss?.cause, 'ttl');
      assert.equal(loss?.marginMs, 900);
    });
    it('a holder that learns after the server expired it: negative margin', () => {
      const [loss] = lockLosses([hold({ token: '7', acquiredAt: 1000, lastActAt: 7290, learnedAt: 7300, settledAt: 7400 })], observed({ 0: [4900] }, { 7: 4900 }), none, [], []);
      assert.ok(loss && loss.marginMs !== undefined && loss.marginMs < 0, JSON.stringify(loss));
    });
    it('a frozen holder: margin from its last step before the freeze; acting after waking makes it negative', () => {
      const freeze = { client: 0, from: 2000, to: 8000 };
      const good = lockLosses([hold({ token: '7', acquiredAt: 1000, lastActAt: 1990, learnedAt: 8001, settledAt: 8050 })], observed({ 0: [5000] }, { 7: 5000 }), none, [freeze], []);
      assert.deepEqual([good[0]?.frozen, good[0]?.marginMs, good[0]?.wakeToLearnMs], [true, 3010, 1]);
      const bad = lockLosses([hold({ token: '7', acquiredAt: 1000, lastActAt: 8001, learnedAt: 8030, settledAt: 8050 })], observed({ 0: [5000] }, { 7: 5000 }), none, [freeze], []);
      assert.ok(bad[0]?.marginMs !== undefined && bad[0].marginMs < 0);
    });
    it('a lock the holder released itself is no loss, however close its session ended', () => {
      const holds = [hold({ token: '9', acquiredAt: 4085, lastActAt: 4085, learnedAt: 4085, settledAt: 4145 })];
      assert.deepEqual(lockLosses(holds, observed({ 0: [4096] }, { 9: 4083 }), new Set(['9']), [], []), []);
    });
    it('a key deleted well before the session ended was released (answer lost), not expired', () => {
      const holds = [hold({ token: '7', acquiredAt: 1000, lastActAt: 1100, settledAt: 2600 })];
      assert.deepEqual(lockLosses(holds, observed({ 0: [4140] }, { 7: 1120 }), none, [], []), []);
    });
    it('a session end with the deletion unseen is a loss; the margin runs from the last step when the holder learned later', () => {
      const [loss] = lockLosses([hold({ token: '7', acquiredAt: 1000, lastActAt: 2990, learnedAt: 3000, settledAt: 3100 })], observed({ 0: [2500] }), none, [], []);
      assert.equal(loss?.marginMs, -490, 'from its last step, 2990');
    });
    it('a forced expiry has no margin, only how long the holder took to learn', () => {
      const [loss] = lockLosses([hold({ token: '7', acquiredAt: 1000, lastActAt: 2004, learnedAt: 2010, settledAt: 2100 })], observed({ 0: [2003] }, { 7: 2002 }), none, [], [{ client: 0, at: 2000 }]);
      assert.deepEqual([loss?.cause, loss?.marginMs, loss?.detectionMs], ['forced', undefined, 8]);
    });
  });

  describe('election', () => {
    const term = (client: number, token: string, electedAt: number, lastActAt: number, endedAt?: number): Term => ({ client, token, electedAt, lastActAt, endedAt });
    it('terms handed on in token order pass; an older term acting after a newer one was elected overlaps (tokens as integers)', () => {
      const ok = [term(0, '9', 0, 90, 95), term(1, '10', 100, 190, 195), term(2, '11', 200, 290)];
      assert.deepEqual(leaderOverlaps(ok), []);
      const bad = leaderOverlaps([term(0, '9', 0, 250, 255), term(1, '10', 100, 190, 195)]);
      assert.deepEqual(bad.map((o) => [o.older.token, o.newer.token, o.overlapMs]), [['9', '10', 150]]);
    });
    it('a term whose session the test ended on the server is exempt as the older side', () => {
      const terms = [term(0, '9', 0, 250), term(1, '10', 100, 190, 195)];
      assert.deepEqual(leaderOverlaps(terms, (t) => t.client === 0), []);
    });
    it('the longest leaderless stretch, a term still held at the end counting to the end', () => {
      const terms = [term(0, '1', 0, 90, 100), term(1, '2', 150, 190, 200), term(2, '3', 900, 900)];
      assert.equal(longestLeaderless(terms, 50, 1000), 700);
      assert.equal(longestLeaderless([term(0, '1', 0, 90, 100)], 50, 5000), 4900, 'a wedge: nobody after the first term');
    });
    it("leader() naming a term within its belief (widened by the bound) agrees; naming a deposed term for ever does not", () => {
      const terms = [term(0, '7', 1000, 4000, 4000), term(1, '8', 9000, 9500)];
      const samples = [
        { at: 900, token: null },
        { at: 1100, token: '7' },
        { at: 5000, token: '7' },
        { at: 9100, token: '8' },
      ];
      assert.deepEqual(leaderDisagreements(samples, terms, 4000), []);
      const wedged = [...samples.slice(0, 3), { at: 8500, token: '7' }];
      assert.deepEqual(leaderDisagreements(wedged, terms, 4000).map((d) => [d.token, d.client, d.from, d.to]), [['7', 0, 1100, 8500]]);
      assert.equal(leaderDisagreements([{ at: 0, token: '99' }, { at: 4500, token: '99' }], terms, 4000).length, 1, 'a token no term had, for longer than the bound');
    });
  });

  describe('lives', () => {
    const lives: Life[] = [
      { life: 1, createRevision: '10', deleteSentAt: 500 },
      { life: 2, createRevision: '20', deleteSentAt: 1500 },
      { life: 3, createRevision: '30' },
    ];
    const change = (life: number, version: number, previousVersion: number, at = 0): LifeEvent => ({ kind: 'change', at, life, version, previousVersion, n: version - 1 });
    const deleted = (at: number, revision: string): LifeEvent => ({ kind: 'deleted', at, revision });
    const good = [change(1, 2, 1), change(1, 3, 2), deleted(510, '15'), change(2, 1, 0), change(2, 4, 1), deleted(1600, '25'), change(3, 2, 0)];
    it('a history across lives that keeps the rules passes', () => {
      assert.deepEqual(lifeAnomalies(good, lives, [{ life: 1, at: 600 }]), []);
    });
    it('a version twice, a life going back, a second deleted, a stale delete, a value of another life, a NOT_FOUND on a live life', () => {
      const found = (events: LifeEvent[], nf: { life: number; at: number }[] = []): number => lifeAnomalies(events, lives, nf).length;
      assert.equal(found([change(1, 2, 1), change(1, 2, 1)]), 1, 'delivered twice');
      assert.equal(found([change(2, 1, 0), change(1, 3, 2)]), 1, 'a life went back');
      assert.equal(found([change(1, 2, 1), deleted(510, '15'), deleted(520, '16')]), 1, 'a second deleted');
      assert.equal(found([change(2, 1, 0), deleted(600, '15')]), 1, "life 1's delete (revision 15) applied to life 2: one anomaly per deleted");
      assert.equal(found([change(2, 1, 0), deleted(600, '25')]), 1, 'before its delete was sent');
      assert.equal(found([change(1, 2, 1), change(1, 3, 2), { kind: 'change', at: 0, life: 2, version: 1, previousVersion: 0, n: 3 }]), 1, 'n of another life');
      assert.equal(found([change(1, 2, 1), deleted(510, '15'), change(2, 1, 3)]), 1, 'a new life must start from previousVersion 0');
      assert.equal(found([], [{ life: 2, at: 1000 }]), 1, 'NOT_FOUND while life 2 was live');
    });
  });

  describe('queue', () => {
    const cast = (client: number, tag: string, outcome: QueueSend['outcome'] = 'ok'): QueueSend => ({ client, kind: 'cast', tag, outcome });
    const sends: QueueSend[] = [cast(2, 'p2-0'), cast(2, 'p2-1', 'unknown'), cast(2, 'p2-2'), cast(3, 'p3-0'), cast(3, 'p3-1', 'unknown'), { client: 4, kind: 'call', tag: 'p4-0', outcome: 'ok', reply: 3 }];
    // p2-1 (unknown) was applied, p3-1 (unknown) was not.
    const applied = ['p2-0', 'p3-0', 'p4-0', 'p2-1', 'p2-2'];
    const clean: QueueOutcome = { applied, n: 5, pending: 0, dead: 0, effects: [['p2-0', 'p4-0'], ['p3-0', 'p2-1', 'p2-2']] };
    const found = (o: Partial<QueueOutcome>, s: QueueSend[] = sends): string[] => queueAnomalies(s, { ...clean, ...o });
    it('a record where each message applied once, in order, with its reply and one effect, passes', () => {
      assert.deepEqual(found({}), []);
    });
    it('a duplicated apply is reported, an unknown cast applied twice too', () => {
      const dup = found({ applied: ['p2-0', 'p3-0', 'p4-0', 'p2-1', 'p2-2', 'p3-0'], n: 6 });
      assert.deepEqual(dup, ['p3-0 applied 2 times (at 1, 5)']);
      assert.deepEqual(found({ applied: ['p2-0', 'p3-0', 'p3-1', 'p3-1', 'p4-0'], n: 5, effects: [['p2-0', 'p4-0'], ['p3-0']] }), [
        'p3-1 applied 2 times (at 2, 3)',
        'acknowledged cast p2-2 never applied',
        'call p4-0 replied 3, but its commit left the counter at 5',
      ]);
    });
    it('a lost acknowledged cast is reported', () => {
      assert.deepEqual(found({ applied: ['p2-0', 'p3-0', 'p4-0', 'p2-1'], n: 4, effects: [['p2-0'], ['p3-0']] }), ['acknowledged cast p2-2 never applied']);
    });
    it('order, replies, a message never queued, the counter, leftovers and effects', () => {
      assert.deepEqual(found({ applied: ['p2-2', 'p3-0', 'p4-0', 'p2-1', 'p2-0'] }), ['p2: p2-2 applied before p2-0, sent earlier']);
      assert.deepEqual(found({}, [...sends.slice(0, 5), { client: 4, kind: 'call', tag: 'p4-0', outcome: 'ok', reply: 2 }]), ['call p4-0 replied 2, but its commit left the counter at 3']);
      assert.deepEqual(found({}, [...sends, { client: 4, kind: 'call', tag: 'p4-1', outcome: 'ok', reply: 3 }]), ['acknowledged call p4-1 never applied']);
      assert.deepEqual(found({}, [...sends.slice(0, 4), cast(3, 'p3-1', 'failed'), ...sends.slice(5)]), []);
      assert.deepEqual(found({ applied: [...applied, 'p3-1'], n: 6 }, [...sends.slice(0, 4), cast(3, 'p3-1', 'failed'), ...sends.slice(5)]), ['p3-1 applied though its cast queued nothing']);
      assert.deepEqual(found({ n: 4 }), ['counter 4 but 5 tags applied']);
      assert.deepEqual(found({ pending: 2, dead: 1 }), ['2 messages still queued after the drain', '1 dead letters']);
      assert.deepEqual(found({ effects: [['p2-0', 'p2-0'], ['p3-1']] }), ['consumer 1 ran ctx.after for p3-1, never applied', 'ctx.after ran 2 times for p2-0']);
      assert.deepEqual(found({ effects: [['p2-0'], ['p2-0']] }), ['ctx.after ran 2 times for p2-0']);
      assert.deepEqual(found({ applied: [...applied, 'x'], n: 6 }), ['x applied but never sent']);
    });
  });

  describe('recovery', () => {
    it('time to each client\'s first success at or after the fault ended', () => {
      assert.deepEqual(recoveryTimes(1000, [[500, 1200, 1300], [999, 1000], [400]]), { recovered: [200, 0], notRecovered: 1 });
    });
    it('percentiles by nearest rank', () => {
      const v = Array.from({ length: 100 }, (_, i) => i + 1);
      assert.deepEqual([percentile(v, 50), percentile(v, 99), percentile(v, 100), percentile([7], 99), percentile([], 50)], [50, 99, 100, 7, undefined]);
    });
  });
});
