/**
 * What `maxStalenessMs` promises, on the memory backend where a reply or an event can be made to
 * arrive late on purpose: `read()` never serves a version older than the bound allows. A message
 * tells how the store was when it left, not when it arrived (a slow link, a process frozen with
 * messages waiting in its socket, a member replaying history after a restart), so a late one must
 * not make the cache look fresh. The fault matrix found both cases on real servers.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { SharedStructError, connect, isSharedStructError, type Client, type SharedStruct } from '../../lib/index.js';
import { backendOf } from '../../lib/client.js';
import { memoryBackendOf } from './target.js';
import { sleep } from '../support/process.js';

type Counter = { n: number };

describe('[memory] cached read staleness', function () {
  this.timeout(20000);
  let url: string;
  const clients: Client[] = [];
  const open = async (): Promise<Client> => {
    const c = await connect(url, { requestTimeoutMs: 5000 });
    clients.push(c);
    return c;
  };
  beforeEach(() => {
    url = `memory://stale-${randomUUID().slice(0, 8)}`;
  });
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  });

  /** read() answers only with a version no write acknowledged more than `bound` ms ago has passed. */
  const readWithin = (s: SharedStruct<Counter>, acks: readonly { version: number; at: number }[], bound: number): string => {
    try {
      s.read();
    } catch (err) {
      if (isSharedStructError(err, 'STALE_READ')) return 'STALE_READ';
      throw err;
    }
    const served = s.stat().version;
    const missed = acks.filter((a) => a.version > served && a.at <= Date.now() - bound);
    return missed.length === 0 ? 'fresh enough' : `version ${served}, though version ${missed.at(-1)!.version} was acknowledged ${Date.now() - missed.at(-1)!.at} ms ago`;
  };

  it('a periodic check answered late confirms the cache as of when it was sent, not when it arrived', async () => {
    const a = await open();
    const b = await open();
    const bound = 1000;
    const sa = await a.open<Counter>('c', { initial: { n: 0 }, maxStalenessMs: bound, refreshIntervalMs: 100 });
    const sb = await b.open<Counter>('c');
    // a's watch brings nothing in time, and its version checks answer 1.5 s late: the store's
    // version when asked, delivered long after.
    memoryBackendOf(a).delayDelivery(5000);
    const backend = backendOf(a);
    const stat = backend.stat.bind(backend);
    backend.stat = async (key, options) => {
      const answer = await stat(key, options);
      await sleep(1500);
      return answer;
    };
    await sleep(150); // the first late check is on its way, saying version 1
    const w = await sb.update((d) => void (d.n = 1));
    const acks = [{ version: w.version, at: Date.now() }];
    await sleep(1500); // the late answer arrives: "version 1", like the cache
    assert.equal(sa.stat().version, 1);
    assert.equal(readWithin(sa, acks, bound), 'STALE_READ');
  });

  /** Makes `client`'s periodic checks go unanswered (the check runs every maxStalenessMs / 2 at least); returns the undo. */
  const silenceChecks = (client: Client): (() => void) => {
    const backend = backendOf(client);
    const stat = backend.stat.bind(backend);
    backend.stat = () => Promise.reject(new SharedStructError('TIMEOUT', 'check silenced by the test'));
    return () => (backend.stat = stat);
  };

  it('a watch event delivered late does not make the cache look fresh', async () => {
    const a = await open();
    const b = await open();
    const bound = 1000;
    const sa = await a.open<Counter>('c', { initial: { n: 0 }, maxStalenessMs: bound, refreshIntervalMs: 60000 });
    sa.on('error', () => {});
    silenceChecks(a);
    const sb = await b.open<Counter>('c');
    memoryBackendOf(a).delayDelivery(1500);
    const acks: { version: number; at: number }[] = [];
    for (let i = 1; i <= 3; i++) {
      const w = await sb.update((d) => void (d.n = i));
      acks.push({ version: w.version, at: Date.now() });
      await sleep(100);
    }
    await sleep(1250); // the first event (version 2) has arrived, 1.5 s after it left
    assert.equal(sa.stat().version, 2);
    assert.equal(readWithin(sa, acks, bound), 'STALE_READ');
  });

  it('a write, a consistent read and a periodic check each confirm', async () => {
    const a = await open();
    const sa = await a.open<Counter>('c', { initial: { n: 0 }, maxStalenessMs: 300, refreshIntervalMs: 60000 });
    sa.on('error', () => {});
    const unsilence = silenceChecks(a);
    await sleep(400);
    assert.throws(() => sa.read(), { code: 'STALE_READ' });
    await sa.update((d) => void (d.n = 1));
    assert.deepEqual(sa.read(), { n: 1 });
    await sleep(400);
    await sa.readConsistent();
    assert.deepEqual(sa.read(), { n: 1 });
    unsilence();
    const checked = await a.open<Counter>('c', { maxStalenessMs: 300, refreshIntervalMs: 100 });
    await sleep(600);
    assert.deepEqual(checked.read(), { n: 1 }, 'kept fresh by the periodic check');
  });
});
