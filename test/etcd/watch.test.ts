/**
 * Watch continuity against a real etcd under real faults: a server restart mid-stream (no
 * event missed, none repeated), compaction while the watcher is cut off (exactly one `reset`),
 * and progress notifications.
 */
import assert from 'node:assert/strict';
import type { Etcd3, IWatchResponse } from 'etcd3';
import type { EtcdBackend } from '../../adapters/etcd/index.js';
import type { Watch, WatchEvent } from '../../lib/backend.js';
import { etcdBackend, privateEtcd, rawEtcd, type EtcdCluster } from '../support/etcd.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { sleep } from '../support/process.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Drains a watch in the background so the test can wait for what it expects. */
class Collector {
  readonly events: WatchEvent[] = [];
  /** `Date.now()` when each event arrived. */
  readonly arrivals: number[] = [];
  error: Error | undefined;
  readonly done: Promise<void>;

  constructor(watch: Watch) {
    this.done = (async () => {
      try {
        for await (const ev of watch) {
          this.events.push(ev);
          this.arrivals.push(Date.now());
        }
      } catch (err) {
        this.error = err instanceof Error ? err : new Error(String(err));
      }
    })();
  }

  /** Changes only (no progress). */
  get changes(): WatchEvent[] {
    return this.events.filter((e) => e.type !== 'progress');
  }

  async until(what: string, check: (events: WatchEvent[]) => boolean, timeoutMs = 20000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check(this.events)) {
      if (this.error) throw this.error;
      if (Date.now() > deadline) throw new Error(`watch: ${what} not seen within ${timeoutMs} ms (${this.events.length} events)`);
      await sleep(20);
    }
  }
}

/** A change as a comparable line. */
function line(e: WatchEvent): string {
  if (e.type === 'put') return `${e.entry.revision} put ${e.entry.key} ${dec(e.entry.value)} v${e.entry.version}`;
  if (e.type === 'delete') return `${e.revision} delete ${e.key}`;
  return `${e.revision} ${e.type}`;
}

/** The server's own history of `prefix/` after `base`, up to `last`, via a raw etcd3 watcher. */
async function history(raw: Etcd3, prefix: string, base: bigint, last: bigint): Promise<string[]> {
  const watcher = await raw.watch().prefix(`${prefix}/`).startRevision(String(base + 1n)).create();
  const lines: string[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('history replay timed out')), 10000);
      watcher.on('data', (res: IWatchResponse) => {
        for (const ev of res.events) {
          const key = ev.kv.key.toString();
          if (key.slice(prefix.length + 1).includes('/')) continue;
          lines.push(
            ev.type === 'Delete'
              ? `${ev.kv.mod_revision} delete ${key}`
              : `${ev.kv.mod_revision} put ${key} ${ev.kv.value.toString()} v${ev.kv.version}`,
          );
          if (BigInt(ev.kv.mod_revision) >= last) {
            clearTimeout(timer);
            resolve();
          }
        }
      });
    });
  } finally {
    await watcher.cancel();
  }
  return lines;
}

describe('etcd adapter: watch continuity under faults', function () {
  this.timeout(90000);
  let etcd: EtcdCluster;
  let raw: Etcd3;
  const open: EtcdBackend[] = [];
  const proxies: TcpProxy[] = [];

  before(async () => {
    etcd = await privateEtcd();
    raw = rawEtcd(etcd.endpoints);
  });
  afterEach(async () => {
    await Promise.allSettled(open.splice(0).map((b) => b.close()));
    await Promise.allSettled(proxies.splice(0).map((p) => p.close()));
    for (const m of etcd.members) {
      if (m.running) m.resume();
      else await m.restart();
    }
  });
  after(async () => {
    raw?.close();
    await etcd?.stop();
  });

  async function backendAt(endpoints: readonly string[]): Promise<EtcdBackend> {
    const b = await etcdBackend(endpoints, { requestTimeoutMs: 2000, sessionTtlMs: 6000 });
    open.push(b);
    return b;
  }

  it('resumes after the server is killed and restarted mid-stream: nothing missed, nothing repeated', async () => {
    const prefix = '/w-restart';
    const watcher = await backendAt(etcd.endpoints);
    const writer = await backendAt(etcd.endpoints);
    const base = BigInt((await raw.put('/w-restart-base').value('0').exec()).header.revision);
    const watch = watcher.watch({ prefix }, { afterRevision: base });
    const seen = new Collector(watch);
    const own = [...watcher.watches][0]!;

    // A writer that keeps going through the outages; a write whose outcome was lost is retried
    // (a create of a key that turns out to exist was the lost write itself).
    let stop = false;
    let written = 0;
    const writes = (async () => {
      for (let i = 0; !stop && i < 400; i++) {
        for (let attempt = 0; ; attempt++) {
          try {
            await writer.create(`${prefix}/k${String(i).padStart(3, '0')}`, enc(String(i)));
            break;
          } catch (err) {
            if (attempt > 200) throw err;
            await sleep(50);
          }
        }
        written = i + 1;
        await sleep(10);
      }
    })();

    const member = etcd.members[0]!;
    const resumeMs: number[] = [];
    for (let round = 0; round < 2; round++) {
      await seen.until('writes flowing', (evs) => evs.filter((e) => e.type === 'put').length >= written - 1 && written > (round + 1) * 20);
      await member.kill();
      await sleep(300);
      await member.restart();
      const restartedAt = Date.now();
      const countAtRestart = seen.events.length;
      await seen.until('an event after the restart', (evs) => evs.length > countAtRestart);
      resumeMs.push(seen.arrivals[countAtRestart]! - restartedAt);
    }
    await seen.until('more writes after the last restart', () => written > 60);
    stop = true;
    await writes;
    const last = await writer.create(`${prefix}/zz-last`, enc('last'));
    assert.ok(last.created);
    await seen.until('the last write', (evs) => evs.some((e) => e.type === 'put' && e.entry.key === `${prefix}/zz-last`));
    watch.close();
    await seen.done;

    const got = seen.changes.map(line);
    const truth = await history(raw, prefix, base, last.entry.revision);
    assert.deepEqual(got, truth);
    const revisions = seen.changes.map((e) => (e.type === 'put' ? e.entry.revision : e.type === 'delete' ? e.revision : 0n));
    for (let i = 1; i < revisions.length; i++) assert.ok(revisions[i]! > revisions[i - 1]!, 'strictly increasing revisions');
    assert.equal(seen.events.filter((e) => e.type === 'reset').length, 0, 'history survived: no reset');
    assert.ok(own.resumes >= 2, `the watch resumed after each restart (${own.resumes})`);
    assert.equal(watcher.watches.size, 0, 'the closed watch left the backend');
    console.log(`      restart resume: first event ${resumeMs.join(' ms, ')} ms after the server was healthy; ${got.length} events`);
  });

  it('a server frozen past the gRPC keepalive timeout: the dead connection is dropped, the watch resumes after SIGCONT', async () => {
    const prefix = '/w-frozen';
    const watcher = await backendAt(etcd.endpoints);
    const base = BigInt((await raw.put('/w-frozen-base').value('0').exec()).header.revision);
    const watch = watcher.watch({ prefix }, { afterRevision: base });
    const seen = new Collector(watch);
    const own = [...watcher.watches][0]!;
    await raw.put(`${prefix}/a`).value('1').exec();
    await seen.until('the first put', (evs) => evs.some((e) => e.type === 'put'));
    const member = etcd.members[0]!;
    await member.pause();
    // gRPC pings every 6 s and gives up after requestTimeoutMs (2 s): by 10 s the connection
    // the stream sat on has been declared dead and the watch is trying to come back.
    await sleep(10000);
    member.resume();
    const resumedAt = Date.now();
    const rev = BigInt((await raw.put(`${prefix}/b`).value('2').exec()).header.revision);
    await seen.until('the put after SIGCONT', (evs) => evs.some((e) => e.type === 'put' && e.entry.revision === rev));
    const ms = Date.now() - resumedAt;
    watch.close();
    await seen.done;
    assert.deepEqual(seen.changes.map((e) => e.type === 'put' && dec(e.entry.value)), ['1', '2']);
    assert.ok(own.resumes >= 1, 'the stream was replaced');
    console.log(`      frozen 10 s: the write after SIGCONT arrived ${ms} ms later (${own.resumes} stream attempts)`);
  });

  it('compaction while the watcher is cut off: exactly one reset, then live events', async () => {
    const prefix = '/w-compact';
    const proxy = await startTcpProxy(etcd.members[0]!.clientPort);
    proxies.push(proxy);
    const watcher = await backendAt([`127.0.0.1:${proxy.port}`]);
    const base = BigInt((await raw.put('/w-compact-base').value('0').exec()).header.revision);
    const watch = watcher.watch({ prefix }, { afterRevision: base });
    const seen = new Collector(watch);
    for (const k of ['k1', 'k2', 'k3']) await raw.put(`${prefix}/${k}`).value(k).exec();
    await seen.until('the first three puts', (evs) => evs.filter((e) => e.type === 'put').length === 3);
    const ownWatch = [...watcher.watches][0]!;

    proxy.setMode('blackhole');
    await raw.put(`${prefix}/k4`).value('k4').exec();
    await raw.delete().key(`${prefix}/k1`).exec();
    await raw.put(`${prefix}/k2`).value('k2b').exec();
    await raw.put(`${prefix}/k5/deeper`).value('not a child').exec();
    const top = BigInt((await raw.put(`${prefix}/k5`).value('k5').exec()).header.revision);
    await raw.kv.compact({ revision: top.toString(), physical: true });
    await sleep(1000);
    assert.equal(seen.changes.length, 3, 'nothing reached the watcher through the partition');

    // A partition that heals: the proxy passes again and the connections it broke are reset
    // (bytes it dropped cannot be replayed on a real TCP stream either).
    proxy.setMode('pass');
    proxy.resetAll();
    await seen.until('a reset', (evs) => evs.some((e) => e.type === 'reset'));
    const after = BigInt((await raw.put(`${prefix}/k6`).value('k6').exec()).header.revision);
    await seen.until('the write after the reset', (evs) => evs.some((e) => e.type === 'put' && e.entry.key === `${prefix}/k6`));
    await sleep(300);
    watch.close();
    await seen.done;

    const changes = seen.changes;
    const resets = changes.filter((e): e is Extract<WatchEvent, { type: 'reset' }> => e.type === 'reset');
    assert.equal(resets.length, 1, changes.map(line).join('\n'));
    assert.equal(ownWatch.resets, 1);
    const reset = resets[0]!;
    assert.ok(reset.revision >= top, `reset at ${reset.revision}, compacted at ${top}`);
    assert.deepEqual(
      reset.entries.map((e) => `${e.key.slice(prefix.length)}=${dec(e.value)}`),
      ['/k2=k2b', '/k3=k3', '/k4=k4', '/k5=k5'],
    );
    const i = changes.indexOf(reset);
    assert.equal(i, 3, 'the reset follows the three events delivered before the cut');
    const rest = changes.slice(i + 1);
    assert.deepEqual(rest.map(line), [`${after} put ${prefix}/k6 k6 v1`]);
  });

  it('resumes into a response larger than gRPC\'s 4 MiB default (several big values at once)', async () => {
    const prefix = '/w-big';
    const proxy = await startTcpProxy(etcd.members[0]!.clientPort);
    proxies.push(proxy);
    const watcher = await backendAt([`127.0.0.1:${proxy.port}`]);
    const base = BigInt((await raw.put('/w-big-base').value('0').exec()).header.revision);
    const watch = watcher.watch({ prefix }, { afterRevision: base });
    const seen = new Collector(watch);
    proxy.setMode('blackhole');
    const big = Buffer.alloc(watcher.limits.maxValueBytes, 7);
    for (let i = 0; i < 4; i++) await raw.put(`${prefix}/k${i}`).value(big).exec();
    proxy.setMode('pass');
    proxy.resetAll();
    // The resumed watch catches up through ~6 MiB of events in one go.
    await seen.until('four big puts', (evs) => evs.filter((e) => e.type === 'put').length === 4, 20000);
    watch.close();
    await seen.done;
    assert.ok(seen.changes.every((e) => e.type === 'put' && e.entry.value.byteLength === big.byteLength));
  });

  it('emits progress events while idle (etcd progress_notify)', async () => {
    const watcher = await backendAt(etcd.endpoints);
    const rev = BigInt((await raw.put('/w-progress/other').value('x').exec()).header.revision);
    const watch = watcher.watch({ key: '/w-progress/idle' });
    const seen = new Collector(watch);
    // The harness runs etcd with a 2 s progress interval (etcd's default is 10 minutes).
    await seen.until('a progress event', (evs) => evs.some((e) => e.type === 'progress'), 10000);
    watch.close();
    await seen.done;
    const progress = seen.events.find((e) => e.type === 'progress');
    assert.ok(progress && progress.type === 'progress' && progress.revision >= rev);
  });

  it('a watch from an already compacted revision starts with one reset', async () => {
    const watcher = await backendAt(etcd.endpoints);
    await raw.put('/w-old/a').value('a').exec();
    const top = BigInt((await raw.put('/w-old/b').value('b').exec()).header.revision);
    await raw.kv.compact({ revision: top.toString() });
    const watch = watcher.watch({ key: '/w-old/a' }, { afterRevision: 1n });
    const seen = new Collector(watch);
    await seen.until('the reset', (evs) => evs.some((e) => e.type === 'reset'));
    await raw.put('/w-old/a').value('a2').exec();
    await seen.until('the next put', (evs) => evs.some((e) => e.type === 'put'));
    watch.close();
    await seen.done;
    const changes = seen.changes;
    assert.equal(changes[0]?.type, 'reset');
    if (changes[0]?.type === 'reset') assert.deepEqual(changes[0].entries.map((e) => dec(e.value)), ['a']);
    assert.deepEqual(changes.slice(1).map((e) => e.type === 'put' && dec(e.entry.value)), ['a2']);
  });
});
