/**
 * TLS against a real etcd serving https with client-certificate authentication, certificates
 * made by openssl for the run: mutual TLS works (with auth too) and emits no Node warning; a
 * missing or foreign client certificate, a foreign CA and a name the certificate does not carry
 * are refused as CONNECTION saying why, within about a second; bad material is INVALID_ARGUMENT
 * before anything is sent.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../../lib/index.js';
import { isSharedStructError } from '../../lib/errors.js';
import type { TlsOptions } from '../../lib/options.js';
import { checkMutualTlsScript, makeCertificates, tlsAttempt } from '../support/certs.js';
import { buildCli, runCli } from '../support/cli.js';
import { onRunEnd } from '../support/cleanup.js';
import { ETCD_INSTALL_HINT, quietLogger } from '../support/etcd.js';
import { freePort, removeDir, scratchDir, startProcess, waitUntil, which, type ServerProcess } from '../support/process.js';

/** etcd serving its clients over TLS only, requiring a client certificate signed by `ca.pem`. */
interface TlsEtcd {
  readonly endpoint: string;
  readonly dir: string;
  file(name: string): Buffer;
  etcdctl(...args: string[]): string;
  stop(): Promise<void>;
}

async function startTlsEtcd(): Promise<TlsEtcd> {
  const binary = which(process.env.ETCD_BINARY ?? 'etcd');
  if (!binary) throw new Error(ETCD_INSTALL_HINT);
  const dir = scratchDir('etcd-tls');
  makeCertificates(dir);
  const [client, peer, metrics] = [await freePort(), await freePort(), await freePort()];
  const endpoint = `127.0.0.1:${client}`;
  const proc: ServerProcess = startProcess(binary, [
    '--name', 'tls',
    '--data-dir', join(dir, 'data'),
    '--listen-client-urls', `https://${endpoint}`,
    '--advertise-client-urls', `https://${endpoint}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `tls=http://127.0.0.1:${peer}`,
    // Plain http, without client certificates: only for the readiness check.
    '--listen-metrics-urls', `http://127.0.0.1:${metrics}`,
    '--cert-file', join(dir, 'server.pem'),
    '--key-file', join(dir, 'server.key'),
    '--trusted-ca-file', join(dir, 'ca.pem'),
    '--client-cert-auth',
    '--logger', 'zap',
    '--log-level', 'warn',
  ], join(dir, 'etcd.log'));
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await proc.kill();
    removeDir(dir);
  };
  onRunEnd(stop);
  await waitUntil('etcd (TLS)', async () => {
    if (proc.exited()) throw new Error(`etcd exited; see ${proc.logFile}`);
    const res = await fetch(`http://127.0.0.1:${metrics}/health`, { signal: AbortSignal.timeout(1000) });
    return res.ok && ((await res.json()) as { health?: string }).health === 'true';
  }, { timeoutMs: 20000 });
  return {
    endpoint,
    dir,
    file: (name) => readFileSync(join(dir, name)),
    etcdctl: (...args) =>
      execFileSync('etcdctl', [`--endpoints=https://${endpoint}`, `--cacert=${join(dir, 'ca.pem')}`, `--cert=${join(dir, 'client.pem')}`, `--key=${join(dir, 'client.key')}`, ...args], {
        encoding: 'utf8',
      }),
    stop,
  };
}

describe('etcd adapter: TLS', function () {
  this.timeout(90000);
  let etcd: TlsEtcd;
  let mutual: TlsOptions;

  before(async () => {
    etcd = await startTlsEtcd();
    mutual = { ca: etcd.file('ca.pem'), cert: etcd.file('client.pem'), key: etcd.file('client.key') };
  });
  after(async () => {
    await etcd?.stop();
  });

  it('mutual TLS: a fresh script connects, writes, watches, emits no warning (no DEP0123 for an IP host) and exits when idle', async () => {
    await checkMutualTlsScript(`etcd://${etcd.endpoint}`, etcd.dir);
  });

  it('mutual TLS with a servername the certificate names, and with auth on top', async () => {
    assert.equal((await tlsAttempt(`etcd://${etcd.endpoint}`, { ...mutual, servername: 'localhost' }, { logger: quietLogger })).err, undefined);
    etcd.etcdctl('user', 'add', 'root:root-secret');
    etcd.etcdctl('role', 'add', 'root');
    etcd.etcdctl('user', 'grant-role', 'root', 'root');
    etcd.etcdctl('user', 'add', 'app:app-secret');
    etcd.etcdctl('role', 'add', 'app');
    etcd.etcdctl('role', 'grant-permission', 'app', '--prefix=true', 'readwrite', '/tls-auth/');
    etcd.etcdctl('user', 'grant-role', 'app', 'app');
    etcd.etcdctl('auth', 'enable');
    try {
      // etcd3 fetches the token on a channel of its own: it must use our TLS too.
      const client = await connect(`etcd://${etcd.endpoint}`, { tls: mutual, auth: { username: 'app', password: 'app-secret' }, namespace: '/tls-auth', logger: quietLogger });
      try {
        const s = await client.open('s', { initial: { n: 1 } });
        assert.equal((await s.update((d) => { d.n += 1; })).value.n, 2);
        // The CLI, as an operator runs it: files for the TLS material, the password from the environment.
        await buildCli();
        const base = ['--url', `etcd://${etcd.endpoint}`, '--namespace', '/tls-auth', '--ca', join(etcd.dir, 'ca.pem')];
        const mtls = [...base, '--cert', join(etcd.dir, 'client.pem'), '--key', join(etcd.dir, 'client.key')];
        const got = await runCli(['get', 's', '--json', ...mtls, '--user', 'app'], { env: { SHAREDSTRUCT_PASSWORD: 'app-secret' } });
        assert.equal(got.code, 0, got.stderr);
        assert.deepEqual((JSON.parse(got.stdout) as { value: unknown }).value, { n: 2 });
        const set = await runCli(['set', 's', '{"n":3}', ...mtls], { env: { SHAREDSTRUCT_USER: 'app', SHAREDSTRUCT_PASSWORD: 'app-secret' } });
        assert.equal(set.code, 0, set.stderr);
        assert.deepEqual(await s.readConsistent(), { n: 3 });
        const wrong = await runCli(['get', 's', ...mtls, '--user', 'app'], { env: { SHAREDSTRUCT_PASSWORD: 'nope' } });
        assert.equal(wrong.code, 1, wrong.stderr);
        assert.match(wrong.stderr, /^sharedstruct: UNAUTHORIZED: /m);
        const noCert = await runCli(['get', 's', ...base, '--user', 'app', '--timeout-ms', '3000'], { env: { SHAREDSTRUCT_PASSWORD: 'app-secret' } });
        assert.equal(noCert.code, 1, noCert.stderr);
        assert.match(noCert.stderr, /^sharedstruct: CONNECTION: .*client certificate/m);
        assert.equal(s.stat().version, 3, 'nothing written by the refused ones');
        // With auth the token is fetched first, on a channel of its own: a refused certificate
        // must still end connect() early, saying why.
        const refused = await tlsAttempt(`etcd://${etcd.endpoint}`, { ca: mutual.ca! }, { logger: quietLogger, auth: { username: 'app', password: 'app-secret' } });
        assert.equal(refused.err?.code, 'CONNECTION', refused.err?.message);
        assert.match(refused.err.message, /the TLS handshake with \S+ failed .*The server refused our client certificate/);
        assert.ok(refused.ms < 3000, `rejected after ${refused.ms} ms (connectTimeoutMs 10 s): ${refused.err.message}`);
      } finally {
        await client.close();
      }
    } finally {
      etcd.etcdctl('--user=root:root-secret', 'auth', 'disable');
    }
  });

  const refusals: [string, () => TlsOptions, RegExp, RegExp][] = [
    ['no client certificate', () => ({ ca: mutual.ca! }), /alert bad certificate|alert certificate required/, /The server refused our client certificate/],
    ['a client certificate of a foreign CA', () => ({ ca: mutual.ca!, cert: etcd.file('foreign-client.pem'), key: etcd.file('foreign-client.key') }), /alert bad certificate|alert unknown ca/, /The server refused our client certificate/],
    ['a CA that did not sign the server certificate', () => ({ ...mutual, ca: etcd.file('foreign-ca.pem') }), /unable to verify the first certificate/, /Option 'tls\.ca' must hold the CA/],
    ['a servername the certificate does not carry', () => ({ ...mutual, servername: 'etcd.example.com' }), /does not match certificate's altnames/, /option 'tls\.servername'/],
  ];
  for (const [label, tls, reason, hint] of refusals) {
    it(`${label}: CONNECTION within ~1 s, saying why (connectTimeoutMs is 10 s)`, async () => {
      const { err, ms } = await tlsAttempt(`etcd://${etcd.endpoint}`, tls(), { logger: quietLogger });
      assert.ok(err, 'connected?');
      assert.equal(err.code, 'CONNECTION', err.message);
      assert.ok(ms < 3000, `rejected after ${ms} ms: ${err.message}`);
      assert.match(err.message, new RegExp(`^could not connect to etcd at ${etcd.endpoint}: the TLS handshake with ${etcd.endpoint} failed \\(`));
      assert.match(err.message, reason);
      assert.match(err.message, hint);
      assert.doesNotMatch(err.message, /\n|SSL routines|rec_layer/, 'one line, without OpenSSL\'s error queue');
      assert.ok(err.cause instanceof Error && !isSharedStructError(err.cause), 'the cause is the TLS error itself');
    });
  }

  it('a plain-text client at a TLS endpoint waits for an answer that never comes: CONNECTION at connectTimeoutMs, suggesting tls', async () => {
    const started = Date.now();
    await assert.rejects(connect(`etcd://${etcd.endpoint}`, { connectTimeoutMs: 1500, logger: quietLogger }), (err: unknown) => {
      assert.ok(isSharedStructError(err, 'CONNECTION'), String(err));
      assert.match(err.message, /accepted the connection but did not answer within 1500 ms/);
      assert.match(err.message, /If it serves TLS \(https:\/\/ client URLs\), pass option 'tls'/);
      return true;
    });
    assert.ok(Date.now() - started < 1500 + 1500);
  });

  it('bad TLS material rejects INVALID_ARGUMENT at once, naming the field, before any connection', async () => {
    // A port nobody listens on: a connection attempt would end as CONNECTION, not INVALID_ARGUMENT.
    const url = `etcd://127.0.0.1:${await freePort()}`;
    const cases: [string, unknown, RegExp][] = [
      ['garbage CA', { ca: 'garbage' }, /^option 'tls\.ca' holds no PEM certificate/],
      ['a path instead of the content', { ca: join(etcd.dir, 'ca.pem') }, /^option 'tls\.ca' holds no PEM certificate .*not its path/],
      ['a broken certificate', { ca: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }, /^option 'tls\.ca' certificate 1 of 1 is not a valid X\.509 certificate/],
      ['garbage client certificate', { ...mutual, cert: 'garbage' }, /^option 'tls\.cert' holds no PEM certificate/],
      ['garbage key', { ...mutual, key: Buffer.from('garbage') }, /^option 'tls\.key' holds no PEM private key/],
      ['a key of another certificate', { ...mutual, key: etcd.file('foreign-client.key') }, /^option 'tls\.key' does not belong to the first certificate of 'tls\.cert'/],
      ['a certificate without its key', { ca: mutual.ca, cert: mutual.cert }, /^option 'tls\.cert' needs 'tls\.key' too/],
      ['a number as CA', { ca: 42 }, /^option 'tls\.ca' must be PEM text \(a string or a Buffer\), got number/],
      ['an unknown field', { ca: mutual.ca, password: 'x' }, /^unknown option 'password' in option 'tls'/],
      ['a string instead of an object', 'yes', /^option 'tls' must be true, false or \{ ca\?, cert\?, key\?, servername\?, rejectUnauthorized\? \}, got string/],
    ];
    for (const [label, tls, message] of cases) {
      const started = Date.now();
      await assert.rejects(connect(url, { tls: tls as TlsOptions, logger: quietLogger }), (err: unknown) => {
        assert.ok(isSharedStructError(err, 'INVALID_ARGUMENT'), `${label}: ${String(err)}`);
        assert.match(err.message, message, label);
        return true;
      });
      assert.ok(Date.now() - started < 1500, `${label}: rejected after ${Date.now() - started} ms`);
    }
  });
});
