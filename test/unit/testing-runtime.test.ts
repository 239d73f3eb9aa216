/**
 * `sharedstruct/testing`'s runtime choice without a server: bad options, a binary that is not
 * there, and 'auto' with neither binary nor engine each fail at once with one line saying what to
 * do.
 */
import assert from 'node:assert/strict';
import { isSharedStructError } from '../../lib/index.js';
import { startEtcd, startZooKeeper } from '../../testing/index.js';

const fails = (code: string, pattern: RegExp) => (err: unknown): boolean => {
  assert.ok(isSharedStructError(err), String(err));
  assert.equal(err.code, code);
  assert.match(err.message, pattern);
  assert.equal(err.message.includes('\n'), false, 'one line');
  return true;
};

describe('sharedstruct/testing: runtimes and options', () => {
  it('refuses a cluster size other than 1, 3 or 5, and an unknown runtime', async () => {
    await assert.rejects(startEtcd({ members: 2 }), fails('INVALID_ARGUMENT', /members must be 1, 3 or 5, got 2/));
    await assert.rejects(startZooKeeper({ nodes: 4 }), fails('INVALID_ARGUMENT', /nodes must be 1, 3 or 5, got 4/));
    // @ts-expect-error a runtime the type does not allow
    await assert.rejects(startEtcd({ runtime: 'vm' }), fails('INVALID_ARGUMENT', /runtime must be 'binary', 'container' or 'auto'/));
  });

  it("runtime 'binary' with a binary that is not there says what to install", async () => {
    await assert.rejects(startEtcd({ runtime: 'binary', binary: '/nonexistent/etcd' }), fails('UNSUPPORTED', /etcd is not installed: apt-get install -y etcd-server/));
    await assert.rejects(startZooKeeper({ runtime: 'binary', java: '/nonexistent/java' }), fails('UNSUPPORTED', /ZooKeeper is not installed: apt-get install -y zookeeper/));
  });

  it("runtime 'auto' with no binary and no Docker engine fails with one line naming both ways out", async () => {
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = 'unix:///nonexistent/docker.sock';
    try {
      await assert.rejects(startEtcd({ runtime: 'auto', binary: '/nonexistent/etcd' }), fails('UNSUPPORTED', /no etcd to start: apt-get install -y etcd-server .*, or a Docker engine and the testcontainers package/));
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
  });
});
