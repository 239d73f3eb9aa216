/**
 * A 3-member etcd cluster: the leader is killed and restarted while a writer and a watcher on
 * all three endpoints keep going. Writes retry only what the adapter marks retryable; the watch
 * must match the cluster's own history exactly.
 */
import assert from 'node:assert/strict';
import type { Etcd3, IWatchResponse } from 'etcd3';
import type { EtcdBackend } from '../../adapters/etcd/index.js';
import type { WatchEvent } from '../../lib/backend.js';
import { isSharedStructError } from '../../lib/errors.js';
import { etcdBackend, metricValue, privateEtcd, rawEtcd, type EtcdCluster, type EtcdMember } from '../support/etcd.js';
import { sleep } from '../support/process.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

async function leader(etcd: EtcdCluster): Promise<EtcdMember> {
  for (let i = 0; i < 100; i++) {
    for (const m of etcd.members) {
      if (!m.running) continue;
      const text = await m.metrics().catch(() => '');
      if (metricValue(text, 'etcd_server_is_leader') === 1) return m;
    }
    await sleep(100);
  }
  throw new Error('no leader');
}

function line(e: WatchEvent): string {
  if (e.type === 'put') return `${e.entry.revision} put ${e.entry.key} v${e.entry.version}`;
  if (e.type === 'delete') return `${e.revision} delete ${e.key}`;
  return `${e.revision} ${e.type}`;
}

describe('etcd adapter: 3-member cluster, leader killed and restarted', function () {
  this.timeout(120000);
  let etcd: EtcdCluster;
  let raw: Etcd3;
  const open: EtcdBackend[] = [];

  before(async () => {
    etcd = await privateEtcd({ members: 3 });
    raw = rawEtcd(etcd.endpoints);
  });
  after(async () => {
    await Promise.allSettled(open.map((b) => b.close()));
    raw?.close();
    await etcd?.stop();
  });

  it('writes continue, the watch misses and repeats nothing, the session survives', async () => {
    const options = { requestTimeoutMs: 3000, sessionTtlMs: 8000 };
    const watcher = await etcdBackend(etcd.endpoints, options);
    const writer = await etcdBackend(etcd.endpoints, options);
    open.push(watcher, writer);
    const prefix = '/cluster';
    const base = BigInt((await raw.put('/cluster-base').value('0').exec()).header.revision);
    const watch = watcher.watch({ prefix }, { afterRevision: base });
    const events: WatchEvent[] = [];
    const draining = (async () => {
      for await (const ev of watch) if (ev.type !== 'progress') events.push(ev);
    })();

    let retried = 0;
    const writeAll = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i++) {
        for (let attempt = 0; ; attempt++) {
          try {
            await writer.create(`${prefix}/k${String(i).padStart(3, '0')}`, enc(String(i)));
            break;
          } catch (err) {
            // Only what the adapter calls retryable (TIMEOUT / CONNECTION) is retried; a create
            // that lost its answer and is retried finds its own key: created: false.
            if (!isSharedStructError(err) || !err.retryable || attempt > 100) throw err;
            retried += 1;
            await sleep(100);
          }
        }
      }
    };

    await writeAll(0, 20);
    const first = await leader(etcd);
    await first.kill();
    await writeAll(20, 40);
    await first.restart();
    await writeAll(40, 60);
    const last = await writer.create(`${prefix}/zz`, enc('end'));
    assert.ok(last.created);
    const deadline = Date.now() + 20000;
    while (!events.some((e) => e.type === 'put' && e.entry.key === `${prefix}/zz`)) {
      assert.ok(Date.now() < deadline, `the watch did not see the last write (${events.length} events)`);
      await sleep(25);
    }
    watch.close();
    await draining;

    const truth: string[] = [];
    const replay = await raw.watch().prefix(`${prefix}/`).startRevision(String(base + 1n)).create();
    await new Promise<void>((resolve) => {
      replay.on('data', (res: IWatchResponse) => {
        for (const ev of res.events) {
          truth.push(`${ev.kv.mod_revision} ${ev.type === 'Delete' ? 'delete' : 'put'} ${ev.kv.key.toString()}${ev.type === 'Delete' ? '' : ` v${ev.kv.version}`}`);
          if (BigInt(ev.kv.mod_revision) >= last.entry.revision) resolve();
        }
      });
    });
    await replay.cancel();
    assert.deepEqual(events.map(line), truth);
    assert.equal(truth.filter((l) => l.includes(' put ')).length, 61, 'every key written once');
    assert.equal(watcher.session.epoch, 1, 'the lease survived the election');
    assert.equal(writer.session.epoch, 1);
    console.log(`      cluster: ${truth.length} events, ${retried} write retries across the leader change`);
  });

  it('a member that loses its leader ends our streams ("hasleader"), and the watch resumes without a gap', async () => {
    const [m0, m1, m2] = etcd.members as [EtcdMember, EtcdMember, EtcdMember];
    for (const m of etcd.members) if (!m.running) await m.restart();
    // One endpoint: the watch cannot move to another member, it must wait for the leader.
    const watcher = await etcdBackend([m0.endpoint], { requestTimeoutMs: 2000, sessionTtlMs: 20000 });
    open.push(watcher);
    const prefix = '/noleader';
    const base = BigInt((await raw.put(`${prefix}-base`).value('0').exec()).header.revision);
    const watch = watcher.watch({ prefix }, { afterRevision: base });
    const own = [...watcher.watches][0]!;
    const events: WatchEvent[] = [];
    const draining = (async () => {
      for await (const ev of watch) if (ev.type !== 'progress') events.push(ev);
    })();
    await raw.put(`${prefix}/a`).value('1').exec();
    const until = async (what: string, check: () => boolean, ms: number): Promise<void> => {
      const deadline = Date.now() + ms;
      while (!check()) {
        assert.ok(Date.now() < deadline, `${what} not within ${ms} ms`);
        await sleep(25);
      }
    };
    await until('the first event', () => events.length === 1, 10000);
    // Freeze the two others: m0 loses its leader (CheckQuorum), and etcd ends streams that
    // asked for a leader after a few election timeouts.
    await m1.pause();
    await m2.pause();
    try {
      await until('the watch stream ended by the member', () => own.resumes >= 1, 15000);
    } finally {
      m1.resume();
      m2.resume();
    }
    const rev = BigInt((await raw.put(`${prefix}/b`).value('2').exec()).header.revision);
    await until('the write after the outage', () => events.some((e) => e.type === 'put' && e.entry.revision === rev), 20000);
    watch.close();
    await draining;
    assert.deepEqual(events.map(line).map((l) => l.replace(/^\d+ /, '')), [`put ${prefix}/a v1`, `put ${prefix}/b v1`]);
    console.log(`      no leader: the watch stream was ended and re-created ${own.resumes} time(s)`);
  });
});
