/**
 * The numbered examples run as a user runs them (`node --import tsx examples/NN-....ts [URL]`),
 * each in its own process: exit status, the lines that show they did what they say, one readable
 * line when they fail, and nothing left in the store afterwards. 01 and 03 run on memory://;
 * 02's workers are separate processes and its crash is a real SIGKILL, so it needs a store that
 * processes share: the run's etcd (test/support/etcd.ts). 05 is a user's node:test file: it
 * starts its own cluster through `sharedstruct/testing` (binaries here; in containers in
 * test/containers/).
 */
import assert from 'node:assert/strict';
import { rawEtcd, sharedEtcd } from '../support/etcd.js';
import { assertTestExamplePassed, runTestExample } from './example05.js';
import { ROOT, describeResult, exec, type ExecResult } from './exec.js';

function runExample(file: string, args: readonly string[] = [], timeoutMs = 60_000): Promise<ExecResult> {
  return exec(process.execPath, ['--import', 'tsx', `examples/${file}`, ...args], { cwd: ROOT, timeoutMs });
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');

/** The namespace an example prints on its first line (`store: URL  namespace: /...`). */
function namespaceOf(r: ExecResult): string {
  const ns = /namespace: (\S+)/.exec(r.stdout)?.[1];
  assert.ok(ns, `the example names its namespace\n${describeResult(r)}`);
  return ns;
}

/** Keys left under `namespace` in etcd. */
async function leftInEtcd(endpoints: readonly string[], namespace: string): Promise<string[]> {
  const etcd = rawEtcd(endpoints);
  try {
    return await etcd.getAll().prefix(`${namespace}/`).keys();
  } finally {
    etcd.close();
  }
}

function assertRunningOnce(r: ExecResult): void {
  assert.equal(r.code, 0, describeResult(r));
  assert.equal(r.stderr, '', describeResult(r));
  const ran = [...r.stdout.matchAll(/^\[(node-\w)\] running the daily report/gm)].map((m) => m[1]);
  const skipped = [...r.stdout.matchAll(/^\[node-\w\] today's report already ran on (node-\w): skipping$/gm)].map((m) => m[1]);
  assert.equal(ran.length, 1, `exactly one node runs the job\n${describeResult(r)}`);
  assert.deepEqual(skipped, [ran[0], ran[0]], describeResult(r));
  assert.match(r.stdout, new RegExp(`^the report ran once, on ${ran[0]}$`, 'm'));
}

describe('package: the examples', function () {
  this.timeout(120_000);
  let flags: Promise<ExecResult>;
  let refused: Promise<ExecResult>;
  let runOnce: Promise<ExecResult>;
  let leaderOnMemory: Promise<ExecResult>;
  let durableOnMemory: Promise<ExecResult>;
  let prometheus: Promise<ExecResult>;
  let userTests: Promise<ExecResult>;

  before(function () {
    // Side by side: each is a process of its own.
    flags = runExample('01-feature-flags.ts');
    refused = runExample('01-feature-flags.ts', ['etcd://127.0.0.1:1']);
    runOnce = runExample('03-run-once.ts');
    leaderOnMemory = runExample('02-leader-worker.ts');
    durableOnMemory = runExample('04-durable-counter.ts');
    prometheus = runExample('06-prometheus.ts');
    userTests = runTestExample('binary');
  });

  after(async function () {
    await Promise.allSettled([flags, refused, runOnce, leaderOnMemory, durableOnMemory, prometheus, userTests]);
  });

  it("05, a user's node:test file with sharedstruct/testing: passes on memory and on a 3-member etcd (binaries) whose leader it kills", async function () {
    assertTestExamplePassed(await userTests);
  });

  it('04 on memory: says in one line that its processes need etcd or ZooKeeper; exit 2', async function () {
    const r = await durableOnMemory;
    assert.equal(r.code, 2, describeResult(r));
    assert.equal(r.stdout, '', describeResult(r));
    assert.match(r.stderr, /^example 04: .*memory:\/\/ is one store per process.*etcd:\/\/.*zk:\/\/\S+\n$/, describeResult(r));
  });

  it('01 on memory: both workers print every version as diffs, the operator its last write; exit 0', async function () {
    const r = await flags;
    assert.equal(r.code, 0, describeResult(r));
    assert.equal(r.stderr, '', describeResult(r));
    const out = lines(r.stdout);
    assert.ok(out.includes('listeners: operator, worker1, worker2'), `the listeners are named by their labels\n${describeResult(r)}`);
    for (const worker of ['worker1', 'worker2']) {
      for (const version of [2, 3, 4, 5]) assert.ok(out.includes(`${worker} v${version} (remote):`), `${worker} saw v${version}\n${describeResult(r)}`);
    }
    assert.ok(out.includes('    - banner (was "Maintenance at 22:00 UTC")'), describeResult(r));
    assert.equal(out.at(-1), 'operator wrote v5; worker1 reads {"beta":true,"rollout":100,"regions":["eu","us"]}', describeResult(r));
  });

  it('01 against a closed port: exit 1 and one line, "sharedstruct demo: CONNECTION: <message>"', async function () {
    const r = await refused;
    assert.equal(r.code, 1, describeResult(r));
    const err = lines(r.stderr);
    assert.equal(err.length, 1, describeResult(r));
    assert.match(err[0]!, /^sharedstruct demo: CONNECTION: (?!CONNECTION)\S.*127\.0\.0\.1:1\b/, describeResult(r));
  });

  it('03 on memory: one node runs the daily job, the others find it done; exit 0', async function () {
    assertRunningOnce(await runOnce);
  });

  it('06 on memory: its own /metrics endpoint serves the sharedstruct series Prometheus scrapes; exit 0', async function () {
    const r = await prometheus;
    assert.equal(r.code, 0, describeResult(r));
    assert.equal(r.stderr, '', describeResult(r));
    const out = lines(r.stdout);
    const value = (metric: string, ...labels: string[]): number | undefined => {
      const line = out.find((l) => l.startsWith(`${metric}{`) && labels.every((x) => l.includes(x)));
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
    };
    assert.equal(value('sharedstruct_update_duration_count', 'sharedstruct_outcome="ok"', 'sharedstruct_struct="config"'), 5, describeResult(r));
    assert.equal(value('sharedstruct_update_noops_total', 'sharedstruct_struct="config"'), 1, describeResult(r));
    assert.equal(value('sharedstruct_events_total', 'sharedstruct_origin="local"'), 5, describeResult(r));
    assert.equal(value('sharedstruct_lock_hold_count', 'sharedstruct_lock="deploy"', 'sharedstruct_outcome="released"'), 1, describeResult(r));
    assert.equal(value('sharedstruct_requests_total', 'sharedstruct_operation="put"'), 5, describeResult(r));
    assert.match(out.at(-1)!, /^scraped \d+ sharedstruct series$/, describeResult(r));
  });

  it('02 on memory: says in one line that its processes need etcd or ZooKeeper; exit 2', async function () {
    const r = await leaderOnMemory;
    assert.equal(r.code, 2, describeResult(r));
    assert.equal(r.stdout, '', describeResult(r));
    assert.deepEqual(lines(r.stderr).length, 1, describeResult(r));
    assert.match(r.stderr, /^example 02: .*memory:\/\/ is one store per process.*etcd:\/\/.*zk:\/\//, describeResult(r));
  });

  describe('against a real etcd', function () {
    let endpoints: readonly string[];
    let leader: Promise<ExecResult>;
    let runOnceOnEtcd: Promise<ExecResult>;
    let durable: Promise<ExecResult>;

    before(async function () {
      ({ endpoints } = await sharedEtcd());
      const url = `etcd://${endpoints.join(',')}`;
      leader = runExample('02-leader-worker.ts', [url], 90_000);
      runOnceOnEtcd = runExample('03-run-once.ts', [url]);
      durable = runExample('04-durable-counter.ts', [url], 90_000);
    });

    after(async function () {
      await Promise.allSettled([leader, runOnceOnEtcd, durable]);
    });

    it('04: the consumer is SIGKILLed mid-queue; its commits stay, a new consumer applies the rest exactly once; nothing left', async function () {
      const r = await durable;
      assert.equal(r.code, 0, describeResult(r));
      assert.equal(r.stderr, '', describeResult(r));
      const crash = /^SIGKILLed the consumer: the state it committed is kept \(n = (\d+)\), (\d+) messages still queued$/m.exec(r.stdout);
      assert.ok(crash, describeResult(r));
      assert.equal(Number(crash[1]) + Number(crash[2]), 20, 'what was committed and what is queued add up: nothing lost, nothing twice');
      const pids = new Set([...r.stdout.matchAll(/^\[consumer (\d+)\] applied #\d+/gm)].map((m) => m[1]));
      assert.equal(pids.size, 2, `two consumer processes applied messages\n${describeResult(r)}`);
      assert.match(r.stdout, /^a new consumer finished the queue: call\(\) says n = 20; every increment applied exactly once$/m, describeResult(r));
      // The SIGKILLed consumer's own keys (its listener registration) live on its lease until that
      // expires (sessionTtlMs 2000): a quick run ends before it. Bounded: 2 × the ttl + 3 s.
      const deadline = Date.now() + 7000;
      let left = await leftInEtcd(endpoints, namespaceOf(r));
      while (left.length > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        left = await leftInEtcd(endpoints, namespaceOf(r));
      }
      assert.deepEqual(left, [], 'keys the example left behind');
    });

    it('02: the leader process is SIGKILLed and a standby takes over once its session expired (about sessionTtlMs); nothing left', async function () {
      const r = await leader;
      assert.equal(r.code, 0, describeResult(r));
      assert.equal(r.stderr, '', describeResult(r));
      const killed = /^\[supervisor\] SIGKILL (w\d) \(pid (\d+)\)/m.exec(r.stdout);
      assert.ok(killed, describeResult(r));
      const [, victim, pid] = killed;
      assert.match(r.stdout, new RegExp(`^\\[supervisor\\] ${victim} ended by SIGKILL;`, 'm'), describeResult(r));
      assert.throws(() => process.kill(Number(pid), 0), { code: 'ESRCH' }, `process ${pid} is gone`);
      const failover = /^\[supervisor\] failover to (w\d) after (\d+) ms \(sessionTtlMs (\d+)\)$/m.exec(r.stdout);
      assert.ok(failover, describeResult(r));
      const [, next, ms, ttl] = failover;
      assert.notEqual(next, victim);
      // A client that closed or resigned hands over within milliseconds; a dead one only when
      // the store expires its session.
      assert.ok(Number(ms) >= Number(ttl) / 2 && Number(ms) <= 3 * Number(ttl) + 5000, `failover after ${ms} ms with sessionTtlMs ${ttl}`);
      assert.match(r.stdout, new RegExp(`^\\[${next}\\] elected \\(term 2, token \\d+\\)$`, 'm'), describeResult(r));
      assert.match(r.stdout, /^processed \d+ jobs in terms 1\.\.2; workers: /m, describeResult(r));
      assert.deepEqual(await leftInEtcd(endpoints, namespaceOf(r)), [], 'keys the example left behind');
    });

    it('03: runs once and leaves nothing in the store', async function () {
      const r = await runOnceOnEtcd;
      assertRunningOnce(r);
      assert.deepEqual(await leftInEtcd(endpoints, namespaceOf(r)), [], 'keys the example left behind');
    });
  });
});
