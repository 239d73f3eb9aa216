/**
 * The whole stack (`connect()` → SharedStruct → etcd adapter) under real etcd faults: a server
 * restart in the middle of a stream of updates, and compaction while a reader is cut off. The
 * change events must keep the spec's fold invariant through both.
 */
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { connect, type Client } from '../../lib/index.js';
import { eventually, Recorder } from '../contract/struct.suite.js';
import { privateEtcd, quietLogger, rawEtcd, type EtcdCluster } from '../support/etcd.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { sleep } from '../support/process.js';

type Counter = { n: number; tag?: string };

describe('etcd: structs through real server faults', function () {
  this.timeout(90000);
  let etcd: EtcdCluster;
  let raw: Etcd3;
  const clients: Client[] = [];
  const proxies: TcpProxy[] = [];

  const open = async (endpoint: string): Promise<Client> => {
    const c = await connect(`etcd://${endpoint}`, { namespace: '/sf', requestTimeoutMs: 2000, sessionTtlMs: 8000, logger: quietLogger });
    clients.push(c);
    return c;
  };

  before(async () => {
    etcd = await privateEtcd();
    raw = rawEtcd(etcd.endpoints);
  });
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
    await Promise.allSettled(proxies.splice(0).map((p) => p.close()));
  });
  after(async () => {
    raw?.close();
    await etcd?.stop();
  });

  it('a server restart during 60 updates: every version reaches the reader once, in order, none coalesced', async () => {
    const endpoint = etcd.endpoints[0]!;
    const writer = await open(endpoint);
    const reader = await open(endpoint);
    const sw = await writer.open<Counter>('restart', { initial: { n: 0 } });
    const sr = await reader.open<Counter>('restart');
    const rec = new Recorder(sr);
    let failures = 0;
    const writes = (async () => {
      for (let i = 0; i < 60; i++) {
        for (let attempt = 0; ; attempt++) {
          try {
            await sw.update((d) => void (d.n += 1), { maxRetries: 100 });
            break;
          } catch (err) {
            // A lost answer is reported, never hidden; the struct's CAS makes the retry safe.
            // (Duck-typed: `connect` loads the adapter by dynamic import, which tsx may
            // instantiate with its own copy of lib/errors.)
            if ((err as { retryable?: unknown }).retryable !== true || attempt > 100) throw err;
            failures += 1;
            await sleep(100);
          }
        }
      }
    })();
    await eventually('updates flowing', () => sr.readDirty().n >= 20, 20000);
    await etcd.members[0]!.kill();
    await sleep(300);
    await etcd.members[0]!.restart();
    await writes;
    const final = await sw.readConsistent();
    await eventually('the reader caught up', () => sr.stat().version === sw.stat().version, 20000);
    assert.deepEqual(rec.fold(), final);
    const versions = rec.versions();
    assert.deepEqual(versions, Array.from({ length: versions.length }, (_, i) => i + 2), 'every version, once, in order');
    assert.ok(rec.events.every((e) => !e.coalesced && e.origin === 'remote'));
    // A write whose answer was lost in the crash may have been applied and then retried: the
    // counter can exceed 60, but every applied increment is one version.
    assert.equal(final.n, sw.stat().version - 1);
    assert.ok(final.n >= 60);
    console.log(`      restart: ${final.n} increments for 60 calls, ${failures} retried calls`);
  });

  it('compaction while a reader is cut off: one coalesced resync event with the net change', async () => {
    const proxy = await startTcpProxy(etcd.members[0]!.clientPort);
    proxies.push(proxy);
    const writer = await open(etcd.endpoints[0]!);
    const reader = await open(`127.0.0.1:${proxy.port}`);
    const sw = await writer.open<Counter>('compact', { initial: { n: 0 } });
    const sr = await reader.open<Counter>('compact');
    const rec = new Recorder(sr);
    await sw.update((d) => void (d.n = 1));
    await eventually('reader at version 2', () => sr.stat().version === 2);
    proxy.setMode('blackhole');
    for (let i = 0; i < 4; i++) await sw.update((d) => void (d.n += 1));
    await sw.update((d) => void (d.tag = 'x'));
    const top = (await raw.get('/sf/compact/payload').exec()).header.revision;
    await raw.kv.compact({ revision: top, physical: true });
    proxy.setMode('pass');
    proxy.resetAll();
    await eventually('reader resynced', () => sr.readDirty().tag === 'x', 20000);
    const after = rec.events.slice(1);
    assert.equal(after.length, 1, JSON.stringify(rec.events.map((e) => [e.version, e.origin, e.coalesced])));
    assert.equal(after[0]!.origin, 'resync');
    assert.equal(after[0]!.coalesced, true);
    assert.equal(after[0]!.version, 7);
    assert.deepEqual(rec.fold(), { n: 5, tag: 'x' });
    await sw.update((d) => void (d.n += 1));
    await eventually('live again', () => sr.readDirty().n === 6);
  });
});
