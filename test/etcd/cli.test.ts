/** The CLI against a real etcd, and `doctor` against a 3-member cluster. */
import assert from 'node:assert/strict';
import { cliContract, exited } from '../contract/cli.suite.js';
import { buildCli, runCli } from '../support/cli.js';
import { privateEtcd, sharedEtcd, type EtcdCluster } from '../support/etcd.js';

cliContract({
  name: 'etcd',
  port: async () => Number((await sharedEtcd()).endpoints[0]!.split(':')[1]),
  url: (port) => `etcd://127.0.0.1:${port}`,
  history: true,
});

describe('cli on a 3-member etcd cluster: doctor', function () {
  this.timeout(120_000);
  let cluster: EtcdCluster;
  before(async function () {
    this.timeout(180_000);
    [cluster] = await Promise.all([privateEtcd({ members: 3 }), buildCli()]);
  });
  after(() => cluster?.stop());

  it('lists every member with its version and role (one leader), then reports a killed member unreachable (exit 1) while the others answer', async () => {
    const url = `etcd://${cluster.endpoints.join(',')}`;
    const report = JSON.parse(exited(await runCli(['--url', url, 'doctor', '--json']), 0).stdout) as { endpoints: { endpoint: string; reachable: boolean; role: string; version: string }[] };
    assert.deepEqual(report.endpoints.map((e) => e.endpoint), [...cluster.endpoints]);
    assert.ok(report.endpoints.every((e) => e.reachable && /^3\.\d+\.\d+$/.test(e.version)), JSON.stringify(report));
    assert.deepEqual(report.endpoints.map((e) => e.role).sort(), ['follower', 'follower', 'leader']);
    const victim = cluster.members.find((m, i) => report.endpoints[i]!.role === 'follower')!;
    await victim.kill();
    const down = exited(await runCli(['--url', url, 'doctor', '--timeout-ms', '3000']), 1);
    assert.match(down.stdout, new RegExp(`^${victim.endpoint.replaceAll('.', '\\.')} +unreachable`, 'm'));
    assert.match(down.stdout, /^\S+ +ok +\S+ +leader/m);
    assert.match(down.stderr, new RegExp(`^sharedstruct: CONNECTION: 1 problem\\(s\\) found: ${victim.endpoint.replaceAll('.', '\\.')} is unreachable`, 'm'));
  });
});
