import assert from 'node:assert/strict';
import fc from 'fast-check';
import { assertPlainJson } from '../../lib/json.js';
import { validateName, validateNamespace } from '../../lib/names.js';
import { resolveConnectOptions, resolveOpenOptions } from '../../lib/options.js';
import { resolveUrl } from '../../lib/connect.js';
import { SharedStructError, connect, isSharedStructError, zooKeeperDigestId } from '../../lib/index.js';

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof SharedStructError, `a SharedStructError, got ${String(err)}`);
    return err.code;
  }
};

describe('validation', () => {
  describe('plain JSON', () => {
    class Point {
      x = 1;
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const bad: [string, unknown, string][] = [
      ['undefined', { a: undefined }, '.a'],
      ['a function', { f: () => 1 }, '.f'],
      ['a symbol', [Symbol('s')], '[0]'],
      ['a BigInt', { n: 1n }, '.n'],
      ['NaN', { n: Number.NaN }, '.n'],
      ['Infinity', { deep: { n: Infinity } }, '.deep.n'],
      ['-Infinity', [[-Infinity]], '[0][0]'],
      ['a cycle', cyclic, '.self'],
      ['a class instance', { p: new Point() }, '.p'],
      ['a Date', { when: new Date() }, '.when'],
      ['a Map', { m: new Map() }, '.m'],
      ['a Set', { s: new Set() }, '.s'],
      // eslint-disable-next-line no-sparse-arrays -- a hole is exactly what is under test
      ['a sparse array', [1, , 3], '[1]'],
      ['undefined at the root', undefined, '(root)'],
    ];
    for (const [what, value, path] of bad) {
      it(`rejects ${what} with INVALID_VALUE naming ${path}`, () => {
        try {
          assertPlainJson(value);
          assert.fail('accepted');
        } catch (err) {
          assert.ok(err instanceof SharedStructError);
          assert.equal(err.code, 'INVALID_VALUE');
          assert.ok(err.message.includes(path), err.message);
        }
      });
    }
    it('accepts every JSON value (property)', () => {
      fc.assert(fc.property(fc.jsonValue(), (v) => assertPlainJson(v)));
      assertPlainJson(Object.create(null));
    });
  });

  describe('names', () => {
    for (const ok of ['flags', 'team-a/flags', 'a.b_c-9', 'x'.repeat(200)]) {
      it(`accepts '${ok.slice(0, 20)}'`, () => assert.equal(validateName(ok), ok));
    }
    for (const bad of ['', '/lead', 'trail/', 'a//b', '.', 'a/..', 'sp ace', 'ü', 'x'.repeat(201), '_locks', 'a/payload', 'a/listeners']) {
      it(`rejects '${bad.slice(0, 20)}' with INVALID_NAME`, () => assert.equal(code(() => validateName(bad)), 'INVALID_NAME'));
    }
    it('namespaces: "" and /a/b, not relative or with bad segments', () => {
      assert.equal(validateNamespace(''), '');
      assert.equal(validateNamespace('/a/b/'), '/a/b');
      for (const bad of ['a', '/a//b', '/a/../b', '/sp ace']) assert.equal(code(() => validateNamespace(bad)), 'INVALID_ARGUMENT');
    });
  });

  describe('URLs and options', () => {
    it('parses memory, etcd and zk URLs', async () => {
      const address = async (url: string) => (await resolveUrl(url)).address;
      assert.deepEqual(await address('memory://'), { scheme: 'memory', hosts: [''], path: '', params: {} });
      assert.deepEqual(await address('memory://iso'), { scheme: 'memory', hosts: ['iso'], path: '', params: {} });
      assert.deepEqual(await address('etcd://h1:2379,h2'), { scheme: 'etcd', hosts: ['h1:2379', 'h2:2379'], path: '', params: {} });
      assert.deepEqual(await address('zk://h1:2181,h2:2182/app/x'), { scheme: 'zk', hosts: ['h1:2181', 'h2:2182'], path: '/app/x', params: {} });
      assert.deepEqual(await address('zookeeper://127.0.0.1'), { scheme: 'zk', hosts: ['127.0.0.1:2181'], path: '', params: {} });
    });
    for (const bad of ['', 'etcd', 'http://x', 'etcd://', 'etcd://h:99999', 'etcd://h:1/path', 'etcd://u:p@h', 'zk://h/bad path', 'memory://a/b', 'memory://s p', 42]) {
      it(`rejects url ${JSON.stringify(bad)} with INVALID_ARGUMENT`, async () => {
        await assert.rejects(resolveUrl(bad as string), (err: unknown) => isSharedStructError(err, 'INVALID_ARGUMENT'));
      });
    }
    const badOptions: [string, unknown][] = [
      ['sessionTtlMs', { sessionTtlMs: 10 }],
      ['sessionTtlMs', { sessionTtlMs: '10s' }],
      ['requestTimeoutMs', { requestTimeoutMs: 0 }],
      ['connectTimeoutMs', { connectTimeoutMs: 1.5 }],
      ['auth', { auth: { username: '' } }],
      ['logger', { logger: { info() {} } }],
      ['namespace', { namespace: 'rel' }],
      ['nope', { nope: 1 }],
      ['acl', { acl: 'creator' }],
      ['acl', { acl: [] }],
      ['acl', { acl: 'everyone' }],
      ['acl[0].scheme', { acl: [{ scheme: 'kerberos', id: 'x', perms: 'r' }] }],
      ['acl[0].perms', { acl: [{ scheme: 'world', id: 'anyone', perms: 'rx' }] }],
      ['acl[0].perms', { acl: [{ scheme: 'world', id: 'anyone', perms: 'rr' }] }],
      ['acl[0].id', { acl: [{ scheme: 'world', id: 'me', perms: 'r' }] }],
      ['acl[1].id', { auth: { username: 'a', password: 'b' }, acl: [{ scheme: 'auth', id: '', perms: 'rwcda' }, { scheme: 'digest', id: 'reader:its-password', perms: 'r' }] }],
      ['acl[0]', { acl: [{ scheme: 'auth', id: '', perms: 'rwcda' }] }],
      ['acl[0]', { acl: [{ scheme: 'world', id: 'anyone', perms: 'r', extra: 1 }] }],
    ];
    it('acl: creator with an identity, open, and entries with digest ids made by zooKeeperDigestId', () => {
      assert.equal(resolveConnectOptions({ auth: { username: 'a', password: 'b' }, acl: 'creator' }).acl, 'creator');
      assert.equal(resolveConnectOptions({ acl: 'open' }).acl, 'open');
      // The server's own digest of "super:secret" (java -cp zookeeper.jar org.apache.zookeeper.server.auth.DigestAuthenticationProvider super:secret).
      assert.equal(zooKeeperDigestId('super', 'secret'), 'super:lK75jTNcA+U9vtVEw5vB51mj/w4=');
      const acl = [{ scheme: 'world', id: 'anyone', perms: 'r' }, { scheme: 'digest', id: zooKeeperDigestId('w', 'x'), perms: 'rwcda' }] as const;
      assert.deepEqual(resolveConnectOptions({ acl }).acl, acl);
    });
    it('acl on etcd rejects UNSUPPORTED before connecting, naming the role to use instead', async () => {
      await assert.rejects(connect('etcd://127.0.0.1:1', { acl: 'open', connectTimeoutMs: 60000 }), (err: unknown) => {
        assert.ok(isSharedStructError(err, 'UNSUPPORTED'), String(err));
        assert.match(err.message, /role granted readwrite on the namespace's prefix/);
        return true;
      });
    });
    for (const [option, value] of badOptions) {
      it(`rejects connect option ${JSON.stringify(value)} naming '${option}'`, () => {
        try {
          resolveConnectOptions(value);
          assert.fail('accepted');
        } catch (err) {
          assert.ok(err instanceof SharedStructError && err.code === 'INVALID_ARGUMENT');
          assert.ok(err.message.includes(option), err.message);
        }
      });
    }
    it('defaults every option in one place', () => {
      const o = resolveConnectOptions(undefined);
      assert.equal(o.namespace, '/sharedstruct');
      assert.equal(o.sessionTtlMs, 10000);
      const open = resolveOpenOptions({});
      assert.equal(open.maxStalenessMs, 30000);
      assert.equal(open.refreshIntervalMs, 5000);
      assert.equal(open.codec.name, 'json');
      for (const bad of [{ maxStalenessMs: -1 }, { refreshIntervalMs: 0 }, { codec: {} }, { schema: 'x' }, { other: 1 }]) {
        assert.equal(code(() => resolveOpenOptions(bad)), 'INVALID_ARGUMENT', JSON.stringify(bad));
      }
    });
  });

  it('errors: one base class, stable code, retryable, cause kept', () => {
    const cause = new Error('low level');
    const e = new SharedStructError('CONNECTION', 'down', { cause });
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'SharedStructError');
    assert.equal(e.code, 'CONNECTION');
    assert.equal(e.retryable, true);
    assert.equal(e.cause, cause);
    assert.equal(new SharedStructError('INVALID_NAME', 'x').retryable, false);
  });
});
