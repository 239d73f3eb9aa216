/**
 * `npm run bench -- --scale`: many clients on one server. For each backend, `--clients=N`
 * (default 1,000) clients, each its own session (etcd lease / ZooKeeper session) with the struct
 * open and one subscriber, spread over `--processes=P` (default 4) child processes
 * (bench/scale-agent.ts); one writer in this process changes the struct `--updates=U` times
 * (default 50), 100 ms apart. Reported: propagation from the write's start to each of the N
 * subscribers (p50 / p99 / max) and how many (client, version) pairs never arrived; client memory
 * per open struct; the server's CPU and resident memory while idle (keepalive / ping load) and
 * while the writes fan out; the keepalive / ping rate. Then 100 subscribers on one struct in one
 * process: propagation to all of them and whether they share one diff. Writes docs/SCALE.md.
 * Every loop is bounded in count and time.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../lib/index.js';
import { connect } from './product.js';
import { metricValue, startEtcd } from '../test/support/etcd.js';
import { startZooKeeper } from '../test/support/zookeeper.js';
import { pct } from './stats.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const arg = (name: string, fallback: number): number => {
  const v = process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  return v === undefined ? fallback : Number(v);
};
const CLIENTS = arg('clients', 1000);
const PROCESSES = arg('processes', 4);
const UPDATES = arg('updates', 50);
const IDLE_MS = 5000;
const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What the bench needs of a server it started. */
interface Server {
  readonly backend: string;
  readonly url: string;
  readonly pid: number;
  /** The keepalive (etcd) or packet (ZooKeeper) counter the server reports. */
  keepalives(): Promise<number>;
  stop(): Promise<void>;
}

/** CPU seconds (user + system) and resident bytes of a process, from /proc. */
function processStats(pid: number): { cpuS: number; rssBytes: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
  const cpuS = (Number(fields[11]) + Number(fields[12])) / 100;
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuS, rssBytes: Number(rss?.[1] ?? 0) * 1024 };
}

async function etcdServer(): Promise<Server> {
  const cluster = await startEtcd();
  const member = cluster.members[0]!;
  return {
    backend: 'etcd',
    url: `etcd://${cluster.endpoints.join(',')}`,
    pid: member.pid,
    keepalives: async () => metricValue(await member.metrics(), 'grpc_server_msg_received_total', { grpc_method: 'LeaseKeepAlive' }),
    stop: () => cluster.stop(),
  };
}

async function zooKeeperServer(): Promise<Server> {
  const zk = await startZooKeeper({ nodes: 1 });
  const node = zk.nodes[0]!;
  return {
    backend: 'zookeeper',
    url: `zk://${zk.connectString}`,
    pid: node.pid,
    keepalives: async () => Number(/zk_packets_received\s+(\d+)/.exec(await node.fourLetter('mntr'))?.[1] ?? Number.NaN),
    stop: () => zk.stop(),
  };
}

interface Agent {
  readonly child: ChildProcess;
  readonly ready: Promise<{ clients: number; bytesPerClient: number }>;
  next(kind: 'report'): Promise<{ receipts: [number, number[]][]; cpuUs: number; newest: number[] }>;
  next(kind: 'mark'): Promise<{ cpuUs: number }>;
  /** Asks it to close its clients and waits (bounded) for its exit; then SIGKILL. */
  stop(): Promise<void>;
}

function startAgent(url: string, namespace: string, name: string, count: number): Agent {
  const child = fork(fileURLToPath(new URL('./scale-agent.ts', import.meta.url)), [url, namespace, name, String(count)], {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiters = new Map<string, (msg: never) => void>();
  let failure: Error | undefined;
  child.on('error', (err) => (failure = err)); // a send to an agent that has exited
  child.on('message', (msg: { kind: string }) => waiters.get(msg.kind)?.(msg as never));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const once = <T>(kind: string, ms: number): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`scale agent ${child.pid}: no '${kind}' within ${ms} ms`)), ms);
      child.once('exit', (code) => reject(new Error(`scale agent ${child.pid} exited (${code}) before '${kind}'`)));
      waiters.set(kind, (msg: T) => {
        clearTimeout(timer);
        resolve(msg);
      });
    });
  return {
    child,
    ready: once('ready', 180_000),
    next: (kind: string): Promise<never> => {
      if (failure || child.exitCode !== null) return Promise.reject(failure ?? new Error(`scale agent ${child.pid} exited (${child.exitCode})`));
      const p = once<never>(kind, 30_000);
      child.send({ kind });
      return p;
    },
    stop: async () => {
      if (child.exitCode === null && child.connected) child.send({ kind: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

interface ScaleResult {
  backend: string;
  clients: number;
  connectS: number;
  bytesPerClient: number;
  /** `skipped`: (client, version) pairs not seen one by one (ZooKeeper coalesces under load); `behind`: clients not at the last version. */
  propagation: { p50: number; p99: number; max: number; skipped: number; expected: number; behind: number };
  idle: { cpuPct: number; rssMiB: number; keepalivesPerS: number; cpuUsPerKeepalive: number };
  busy: { cpuPct: number; rssMiB: number; cpuUsPerEvent: number; clientCpuUsPerEvent: number };
  shared: { subscribers: number; p50: number; p99: number; oneDiff: boolean; cpuMsPerUpdate: number };
}

async function scaleOn(server: Server): Promise<ScaleResult> {
  const namespace = `/bench-scale-${Date.now().toString(36)}`;
  const name = 'config';
  const writerClient = await connect(server.url, { namespace, logger: quiet });
  const writer = await writerClient.open<{ v: number }>(name, { initial: { v: 0 } });
  const started = performance.now();
  const per = Math.ceil(CLIENTS / PROCESSES);
  const agents = Array.from({ length: PROCESSES }, (_, i) => startAgent(server.url, namespace, name, Math.max(0, Math.min(per, CLIENTS - i * per)))).filter((_, i) => i * per < CLIENTS);
  try {
    const ready = await Promise.all(agents.map((a) => a.ready));
    const connectS = (performance.now() - started) / 1000;
    const clients = ready.reduce((n, r) => n + r.clients, 0);
    const bytesPerClient = ready.reduce((n, r) => n + r.bytesPerClient * r.clients, 0) / clients;
    // Idle: what N sessions cost the server with nothing changing.
    const k0 = await server.keepalives();
    const s0 = processStats(server.pid);
    const t0 = performance.now();
    await sleep(IDLE_MS);
    const s1 = processStats(server.pid);
    const k1 = await server.keepalives();
    const idleS = (performance.now() - t0) / 1000;
    // The clients' own CPU while idle (keepalives, pings), to take out of their busy figure.
    const idleClientCpuUs = (await Promise.all(agents.map((a) => a.next('mark')))).reduce((n, m) => n + m.cpuUs, 0);
    const idleClientS = (performance.now() - started) / 1000 - connectS;
    // Busy: one writer, every subscriber told of every version.
    const sentAt = new Map<number, number>();
    const t1 = performance.now();
    for (let i = 1; i <= UPDATES && performance.now() - t1 < 60_000; i += 1) {
      const at = now();
      const r = await writer.update((d) => void (d.v = i));
      sentAt.set(r.version, at);
      await sleep(100);
    }
    await sleep(1000);
    const s2 = processStats(server.pid);
    const busyS = (performance.now() - t1) / 1000;
    const latencies: number[] = [];
    let received = 0;
    let clientCpuUs = 0;
    const last = Math.max(...sentAt.keys());
    let behind = 0;
    for (const a of agents) {
      const { receipts, cpuUs, newest } = await a.next('report');
      clientCpuUs += cpuUs;
      behind += newest.filter((v) => v < last).length;
      for (const [version, times] of receipts) {
        const at = sentAt.get(version);
        if (at === undefined) continue;
        received += times.length;
        for (const t of times) latencies.push(t - at);
      }
    }
    const expected = clients * sentAt.size;
    // Busy client CPU minus what idling would have cost over the same time.
    const fanoutClientCpuUs = Math.max(0, clientCpuUs - idleClientCpuUs - (idleClientCpuUs / idleClientS) * busyS);
    const shared = await sharedSubscribers(server.url, namespace);
    return {
      backend: server.backend,
      clients,
      connectS,
      bytesPerClient,
      propagation: { p50: pct(latencies, 50), p99: pct(latencies, 99), max: Math.max(...latencies), skipped: expected - received, expected, behind },
      idle: { cpuPct: ((s1.cpuS - s0.cpuS) / idleS) * 100, rssMiB: s1.rssBytes / 2 ** 20, keepalivesPerS: (k1 - k0) / idleS, cpuUsPerKeepalive: ((s1.cpuS - s0.cpuS) * 1e6) / Math.max(1, k1 - k0) },
      // The fan-out's own share: busy CPU minus what the idle rate would have spent meanwhile.
      busy: { cpuPct: ((s2.cpuS - s1.cpuS) / busyS) * 100, rssMiB: s2.rssBytes / 2 ** 20, cpuUsPerEvent: (Math.max(0, s2.cpuS - s1.cpuS - ((s1.cpuS - s0.cpuS) / idleS) * busyS) * 1e6) / Math.max(1, received), clientCpuUsPerEvent: fanoutClientCpuUs / Math.max(1, received) },
      shared,
    };
  } finally {
    await Promise.allSettled(agents.map((a) => a.stop()));
    await writer.delete().catch(() => {});
    await writerClient.close();
  }
}

/** 100 subscribers of one struct in one process: latency to all, one diff for all, CPU per update. */
async function sharedSubscribers(url: string, namespace: string): Promise<ScaleResult['shared']> {
  const SUBSCRIBERS = 100;
  const N = Math.max(10, Math.round(UPDATES / 2));
  const writerClient = await connect(url, { namespace, logger: quiet });
  const readerClient = await connect(url, { namespace, logger: quiet });
  try {
    const writer = await writerClient.open<{ v: number; tags: string[] }>('shared', { initial: { v: 0, tags: [] } });
    const reader = await readerClient.open<{ v: number; tags: string[] }>('shared');
    const sentAt = new Map<number, number>();
    const latencies: number[] = [];
    const diffs = new Map<number, Set<unknown>>();
    const stop = new AbortController();
    setMaxListeners(SUBSCRIBERS + 10, stop.signal); // one abort listener per subscription
    const loops = Array.from({ length: SUBSCRIBERS }, async () => {
      try {
        for await (const ev of reader.changes({ signal: stop.signal })) {
          const t = now();
          let seen = diffs.get(ev.version);
          if (!seen) diffs.set(ev.version, (seen = new Set()));
          seen.add(ev.changes); // the same array for every subscriber when the diff is shared
          const at = sentAt.get(ev.version);
          if (at !== undefined) latencies.push(t - at);
        }
      } catch {
        // aborted at the end
      }
    });
    const cpu0 = process.cpuUsage();
    for (let i = 1; i <= N; i += 1) {
      const at = now();
      const r = await writer.update((d) => {
        d.v = i;
        d.tags.push(`t${i}`);
      });
      sentAt.set(r.version, at);
      await sleep(50);
    }
    await sleep(500);
    const cpu = process.cpuUsage(cpu0);
    stop.abort();
    await Promise.allSettled(loops);
    await writer.delete().catch(() => {});
    return {
      subscribers: SUBSCRIBERS,
      p50: pct(latencies, 50),
      p99: pct(latencies, 99),
      oneDiff: [...diffs.values()].every((s) => s.size === 1),
      cpuMsPerUpdate: (cpu.user + cpu.system) / 1000 / N,
    };
  } finally {
    await Promise.all([writerClient.close(), readerClient.close()]);
  }
}

const f1 = (n: number): string => n.toFixed(1);

function report(results: readonly ScaleResult[], totalS: number): string {
  const head = '| backend | clients (sessions) | connect all | memory per client (session, watch, one struct, one subscriber) | propagation p50 / p99 / max | versions not seen one by one (coalesced) | clients short of the last version | server CPU idle / busy | server RSS idle / busy | keepalives (etcd) or packets (ZooKeeper) per s, idle | server CPU per keepalive / per event delivered | client CPU per event received |\n| --- | ---: | ---: | ---: | --- | ---: | ---: | --- | --- | ---: | --- | ---: |';
  const lines = results.map(
    (r) =>
      `| ${r.backend} | ${r.clients} | ${f1(r.connectS)} s | ${f1(r.bytesPerClient / 1024)} KiB | ${f1(r.propagation.p50)} / ${f1(r.propagation.p99)} / ${f1(r.propagation.max)} ms | ${r.propagation.skipped} of ${r.propagation.expected} | ${r.propagation.behind} | ${f1(r.idle.cpuPct)} % / ${f1(r.busy.cpuPct)} % | ${f1(r.idle.rssMiB)} / ${f1(r.busy.rssMiB)} MiB | ${f1(r.idle.keepalivesPerS)} | ${f1(r.idle.cpuUsPerKeepalive)} / ${f1(r.busy.cpuUsPerEvent)} µs | ${f1(r.busy.clientCpuUsPerEvent)} µs |`,
  );
  const shared = '| backend | subscribers of one struct, one process | propagation p50 / p99 | one diff shared by all | process CPU per update |\n| --- | ---: | --- | --- | ---: |';
  const sharedLines = results.map((r) => `| ${r.backend} | ${r.shared.subscribers} | ${f1(r.shared.p50)} / ${f1(r.shared.p99)} ms | ${r.shared.oneDiff ? 'yes' : '**no**'} | ${r.shared.cpuMsPerUpdate.toFixed(2)} ms |`);
  return [head, ...lines, '', shared, ...sharedLines, '', `${CLIENTS} clients in ${PROCESSES} processes, ${UPDATES} updates 100 ms apart; ${totalS.toFixed(0)} s in all`].join('\n');
}

/** Runs the scale bench on both backends and writes docs/SCALE.md. */
export async function runScale(only: string | undefined): Promise<void> {
  const started = performance.now();
  const results: ScaleResult[] = [];
  for (const [backend, start] of [['etcd', etcdServer], ['zookeeper', zooKeeperServer]] as const) {
    if (only !== undefined && only !== backend) continue;
    console.error(`[bench --scale] ${backend}: ${CLIENTS} clients in ${PROCESSES} processes`);
    const server = await start();
    try {
      results.push(await scaleOn(server));
    } finally {
      await server.stop();
    }
  }
  const total = (performance.now() - started) / 1000;
  const out = report(results, total);
  console.log(out);
  if (only === undefined && CLIENTS === 1000) {
    writeFileSync(
      new URL('../docs/SCALE.md', import.meta.url),
      `# Scale

Measured by \`npm run bench -- --scale\` on ${new Date().toISOString().slice(0, 10)}: Node ${process.version}, etcd 3.4 and
ZooKeeper 3.8 from Debian's packages, one server each on 127.0.0.1, a 2-core machine that also runs
every client. Each client is its own session (an etcd lease with keepalives; a ZooKeeper session
with pings), with the struct open and one subscriber (\`changes()\`); one writer changes the struct.
Propagation runs from the start of the writer's \`update()\` to each subscriber's event, on one
clock. Client memory is heap + external + array buffers after a GC, divided by the clients of a
process (a client with its session, watch and one open struct). Server CPU is the process's
user + system time over the window (100 % = one core). etcd's watch delivers every version; a
ZooKeeper notification carries no data, so a subscriber whose read is still in flight when the
next change is notified reads only the newest one (its event says \`coalesced: true\`): such
versions are counted as not seen one by one, and what must hold is that no client is left short
of the last version.

${out}

What it says and what it does not: everything here shares two cores, so propagation at the tail
includes the four client processes competing with the server for CPU; on separate machines the
server's share is what the capacity model in docs/OPERATIONS.md ("Sizing") scales from. Reproduce:
\`npm run bench -- --scale\` (\`--clients=N --processes=P --updates=U\` for other sizes, which print
but do not rewrite this file).
`,
    );
    console.log('wrote docs/SCALE.md');
  }
}
