/**
 * zk:// URL rules (the adapter's `addressRules`): what connect() accepts and what it refuses at
 * once, naming the URL and what is wrong, before any connection is tried.
 */
import assert from 'node:assert/strict';
import { connect, SharedStructError } from '../../lib/index.js';
import { resolveUrl } from '../../lib/connect.js';

async function refused(url: string, pattern: RegExp): Promise<void> {
  const started = Date.now();
  await assert.rejects(connect(url), (err: unknown) => {
    assert.ok(err instanceof SharedStructError, String(err));
    assert.equal(err.code, 'INVALID_ARGUMENT', err.message);
    assert.match(err.message, pattern);
    assert.ok(err.message.includes(`url '${url}'`), `the message does not name the URL: ${err.message}`);
    return true;
  });
  assert.ok(Date.now() - started < 2000, 'not refused at once');
}

describe('zookeeper adapter: zk:// URLs', () => {
  it('hosts get the default port 2181; the path is the chroot, trailing slashes dropped', async () => {
    const { address } = await resolveUrl('zk://h1,h2:2182/app/');
    assert.deepEqual(address, { scheme: 'zk', hosts: ['h1:2181', 'h2:2182'], path: '/app', params: {} });
    assert.equal((await resolveUrl('zk://h/')).address.path, '');
    assert.equal((await resolveUrl('zk://h')).address.path, '');
    assert.equal((await resolveUrl('zk://h/a/b_c.d-e')).address.path, '/a/b_c.d-e');
  });

  it('a bad chroot is refused as the chroot of the URL (not as the namespace option)', async () => {
    await refused('zk://127.0.0.1:2181/a//b', /the chroot '\/a\/\/b' has an empty segment/);
    await refused('zk://127.0.0.1:2181/a/../b', /the chroot '\/a\/\.\.\/b' has the segment '\.\.'/);
    await refused('zk://127.0.0.1:2181/a b', /the chroot '\/a b' has the segment 'a b'/);
  });

  it('query parameters, IPv6 literals, credentials and bad ports are refused', async () => {
    await refused('zk://127.0.0.1:2181?timeout=5', /take no query parameters \(got 'timeout'\); pass options to connect\(\)/);
    await refused('zk://[::1]:2181', /IPv6 literal.*use a host name/);
    await refused('zk://user:pw@127.0.0.1:2181', /pass credentials with the 'auth' option/);
    await refused('zk://127.0.0.1:0', /is not host\[:port\]/);
    await refused('zk://', /names no host/);
  });
});
