/**
 * A consistent read that times out must reject once and leave nothing unhandled behind: its
 * sync and getData share one deadline, and an orphaned rejection would end the process
 * (found by the fault matrix with a ZooKeeper leader SIGSTOPped).
 */
import assert from 'node:assert/strict';
import { startTcpProxy } from '../support/tcp-proxy.js';
import { sleep } from '../support/process.js';
import { closeAll, openBackend, uniquePrefix, zk } from './helpers.js';

describe('zookeeper adapter: requests that time out', function () {
  this.timeout(30000);
  afterEach(() => closeAll());

  it('a consistent get cut off by its deadline rejects TIMEOUT and leaves no unhandled rejection', async () => {
    const server = await zk();
    const proxy = await startTcpProxy(server.nodes[0]!.port);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const b = await openBackend({ hosts: [`127.0.0.1:${proxy.port}`], overrides: { requestTimeoutMs: 500, sessionTtlMs: 10000 } });
      const key = `${uniquePrefix('timeout')}/k`;
      await b.create(key, new TextEncoder().encode('{}'));
      proxy.setMode('blackhole');
      for (let i = 0; i < 3; i++) {
        await assert.rejects(b.get(key, { consistent: true }), { code: 'TIMEOUT' });
      }
      await sleep(200); // let any orphaned rejection surface
      assert.deepEqual(unhandled, []);
      proxy.setMode('pass');
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await proxy.close();
    }
  });
});
