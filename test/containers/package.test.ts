/**
 * `npm run test:containers`: the packed tarball installed into a fresh app with testcontainers
 * (the optional peer, 12.0.1, as a user adds it); the app's own strict TypeScript test starts a
 * 3-member etcd through `sharedstruct/testing` with runtime 'container', kills its leader and
 * carries on (test/package/testing-app.ts; the package suite runs it on binaries).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, describeResult, exec } from '../package/exec.js';
import { runTestingApp, testingAppExpected } from '../package/testing-app.js';

describe('package: the tarball with testcontainers in a fresh app', function () {
  this.timeout(300_000);
  let work: string | undefined;

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("a strict TypeScript app's own test starts 3 etcd members in containers, kills the leader, and its client survives", async function () {
    work = mkdtempSync(join(tmpdir(), 'sharedstruct-containers-package-'));
    const pack = await exec('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT });
    assert.equal(pack.code, 0, describeResult(pack));
    const tarball = (JSON.parse(pack.stdout) as { filename: string }[])[0]!.filename;
    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'first-contact-containers', private: true, type: 'module' }));
    const install = await exec('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(work, tarball), 'testcontainers@12.0.1'], { cwd: app });
    assert.equal(install.code, 0, describeResult(install));
    const r = await runTestingApp(app, 'container');
    assert.equal(r.code, 0, describeResult(r));
    assert.equal(r.stderr, '', describeResult(r));
    assert.deepEqual(r.stdout.trimEnd().split('\n'), testingAppExpected('container'), describeResult(r));
  });
});
