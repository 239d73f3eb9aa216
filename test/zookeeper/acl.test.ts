/**
 * The `acl` option against a real ZooKeeper: the ACL every created node gets, a read-only second
 * identity, 'open' with auth, and what a read-only identity can and cannot do with a struct.
 */
import assert from 'node:assert/strict';
import { connect, isSharedStructError, zooKeeperDigestId, type Client, type ConnectOptions } from '../../lib/index.js';
import { RawClient, quietLogger, uniquePrefix, zk } from './helpers.js';
import { buildCli, runCli } from '../support/cli.js';

describe('zookeeper: the acl option', function () {
  this.timeout(30000);
  const clients: Client[] = [];
  before(async () => {
    // The namespaces' common parent, made open now: the first client to create an ancestor gives
    // it its own ACL (docs/SECURITY.md), and these tests' restricted ACLs must not close it to
    // the other tests sharing the server.
    const raw = await RawClient.connect((await zk()).connectString);
    try {
      await raw.mkdirp('/sharedstruct-test');
    } finally {
      await raw.close();
    }
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  const client = async (namespace: string, options: Partial<ConnectOptions>): Promise<Client> => {
    const c = await connect(`zk://${(await zk()).connectString}`, { namespace, logger: quietLogger, ...options });
    clients.push(c);
    return c;
  };

  it('the creator plus a read-only identity: the reader reads and watches, cannot write; a stranger cannot read', async () => {
    const ns = uniquePrefix('acl');
    const acl = [
      { scheme: 'auth', id: '', perms: 'rwcda' },
      { scheme: 'digest', id: zooKeeperDigestId('dashboard', 'dash-secret'), perms: 'r' },
    ] as const;
    const writer = await client(ns, { auth: { username: 'writer', password: 'w-secret' }, acl });
    const flags = await writer.open('flags', { initial: { beta: false } });
    await flags.update((d) => void (d.beta = true));
    const raw = await RawClient.connect((await zk()).connectString);
    raw.addDigest('writer', 'w-secret');
    try {
      const acls = await raw.getACL(`${ns}/flags/payload`);
      assert.deepEqual(
        acls.map((a) => `${a.id.scheme}:${a.id.id}:${a.permission}`).sort(),
        [`digest:${zooKeeperDigestId('dashboard', 'dash-secret')}:1`, `digest:${zooKeeperDigestId('writer', 'w-secret')}:31`].sort(),
      );
    } finally {
      await raw.close();
    }
    const warnings: string[] = [];
    const dashboard = await client(ns, { auth: { username: 'dashboard', password: 'dash-secret' }, logger: { ...quietLogger, warn: (m: string) => void warnings.push(m) } });
    const seen = await dashboard.open<{ beta: boolean }>('flags');
    // Its listener registration was refused (no 'c'): said once, and the struct works.
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /^not registered as a listener at '.*\/flags\/listeners\/.*': this identity may not create it/);
    assert.equal((await flags.listeners()).length, 1, 'only the writer is listed');
    assert.deepEqual(seen.read(), { beta: true });
    await assert.rejects(seen.update((d) => void (d.beta = false)), (err: unknown) => isSharedStructError(err, 'UNAUTHORIZED'));
    // It still follows the writer's changes.
    const next = new Promise((resolve) => seen.on('change', (ev) => resolve(ev.value)));
    await flags.update((d) => void (d.beta = false));
    assert.deepEqual(await next, { beta: false });
    const stranger = await client(ns, { auth: { username: 'stranger', password: 'x' } });
    await assert.rejects(stranger.open('flags'), (err: unknown) => isSharedStructError(err, 'UNAUTHORIZED'));
  });

  it("'open' with auth: every identity may write (the default with auth is 'creator')", async () => {
    const ns = uniquePrefix('acl-open');
    const a = await client(ns, { auth: { username: 'a', password: 'a' }, acl: 'open' });
    await a.open('s', { initial: { n: 1 } });
    const b = await client(ns, { auth: { username: 'b', password: 'b' } });
    const s = await b.open<{ n: number }>('s');
    assert.equal((await s.update((d) => void (d.n += 1))).value.n, 2);
  });

  it('inspect and the CLI leave out (and name) what an ACL denies instead of failing the whole listing', async function () {
    this.timeout(180000);
    await buildCli();
    const { connectString } = await zk();
    const ns = uniquePrefix('acl-scan');
    const anyone = await client(ns, {});
    const owner = await client(ns, { auth: { username: 'owner', password: 'o-secret' } });
    await anyone.open('public', { initial: { n: 1 } });
    await owner.open('secret', { initial: { token: 'x' } });
    await owner.lock('deploy');
    assert.deepEqual((await owner.inspect.structs()).map((s) => s.name), ['public', 'secret']);
    await assert.rejects(anyone.inspect.structs(), (err: unknown) => isSharedStructError(err, 'UNAUTHORIZED'), 'strict without onUnreadable');
    const denied: string[] = [];
    const seen = await anyone.inspect.structs({ onUnreadable: (key) => void denied.push(key) });
    assert.deepEqual(seen.map((s) => [s.name, s.version]), [['public', 1]]);
    assert.deepEqual(denied.sort(), [`${ns}/_locks`, `${ns}/secret`]);
    const ls = await runCli(['ls', '--url', `zk://${connectString}`, '--namespace', ns]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^public +1 /m);
    assert.doesNotMatch(ls.stdout, /secret/);
    assert.match(ls.stderr, new RegExp(`^sharedstruct: left out 2 node\\(s\\) this identity may not read .*: (${ns}/secret, ${ns}/_locks|${ns}/_locks, ${ns}/secret)$`, 'm'));
    const locks = await runCli(['locks', '--url', `zk://${connectString}`, '--namespace', ns, '--json']);
    assert.equal(locks.code, 0, locks.stderr);
    assert.deepEqual(JSON.parse(locks.stdout), []);
    assert.match(locks.stderr, /left out 2 node\(s\)/);
    // As the owner (digest auth, the password from the environment) the CLI sees everything.
    const asOwner = await runCli(['ls', '--url', `zk://${connectString}`, '--namespace', ns, '--user', 'owner'], { env: { SHAREDSTRUCT_PASSWORD: 'o-secret' } });
    assert.equal(asOwner.code, 0, asOwner.stderr);
    assert.match(asOwner.stdout, /^public +1 [^\n]*\nsecret +1 /m);
    assert.equal(asOwner.stderr, '');
    const lockAsOwner = await runCli(['locks', '--url', `zk://${connectString}`, '--namespace', ns, '--user', 'owner', '--json'], { env: { SHAREDSTRUCT_PASSWORD: 'o-secret' } });
    assert.deepEqual((JSON.parse(lockAsOwner.stdout) as { name: string }[]).map((l) => l.name), ['deploy']);
  });
});
