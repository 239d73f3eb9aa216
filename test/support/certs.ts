/** Certificates for TLS tests, made by the openssl CLI for the run, and the checks both stores' TLS tests share. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type ConnectOptions } from '../../lib/index.js';
import { isSharedStructError, type SharedStructError } from '../../lib/errors.js';
import type { TlsOptions } from '../../lib/options.js';
import { runScript } from './script.js';

/**
 * Makes into `dir` a CA (`ca.pem`/`ca.key`) and a foreign one (`foreign-ca.*`), all P-256 keys:
 * `server.pem`/`server.key` for 127.0.0.1 and localhost, `client.pem`/`client.key` and `client2.*`
 * (another identity) signed by the CA, `foreign-client.*` signed by the foreign CA. Keys are PKCS#8 PEM (OpenSSL 3's default).
 */
export function makeCertificates(dir: string): void {
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'foreign-ca']) openssl('req', '-x509', ...key, '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${ca}`);
  const leaf = (name: string, ca: string, ext: string): void => {
    openssl('req', ...key, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
  };
  leaf('server', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'ca', 'extendedKeyUsage=clientAuth\n');
  leaf('client2', 'ca', 'extendedKeyUsage=clientAuth\n');
  leaf('foreign-client', 'foreign-ca', 'extendedKeyUsage=clientAuth\n');
}

/** How a connect with some TLS material ended: its error (undefined when it connected) and how long it took. */
export async function tlsAttempt(url: string, tls: TlsOptions, options: Partial<ConnectOptions> = {}): Promise<{ err: SharedStructError | undefined; ms: number }> {
  const started = Date.now();
  try {
    const client = await connect(url, { tls, connectTimeoutMs: 10000, ...options });
    await client.close();
    return { err: undefined, ms: Date.now() - started };
  } catch (err) {
    assert.ok(isSharedStructError(err), String(err));
    return { err, ms: Date.now() - started };
  }
}

/**
 * Runs a fresh script that connects to `url` with the client certificate of `certDir`, writes,
 * sees its write's event, and ends: checks it printed no warning (`--throw-deprecation`: no
 * DEP0123 for an IP host) and exited soon after its last line (an idle TLS client must not keep
 * the process alive).
 */
export async function checkMutualTlsScript(url: string, certDir: string): Promise<void> {
  const spawnedAt = Date.now();
  const r = await runScript(`
    import { readFileSync } from 'node:fs';
    import { connect } from 'sharedstruct';
    const warnings = [];
    process.on('warning', (w) => warnings.push(w.name + ' ' + (w.code ?? '') + ' ' + w.message));
    const file = (n) => readFileSync(${JSON.stringify(certDir)} + '/' + n);
    const client = await connect(${JSON.stringify(url)}, { namespace: '/tls', tls: { ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key') } });
    const s = await client.open('tls', { initial: { n: 0 } });
    const seen = new Promise((resolve) => s.on('change', (ev) => resolve(ev.value.n)));
    await s.update((d) => { d.n += 1; });
    console.log('n', await seen);
    // Warnings are emitted on the next tick.
    await new Promise((r) => setImmediate(r));
    console.log('warnings', JSON.stringify(warnings));
    console.log('last', Date.now());
  `, { timeoutMs: 30000, env: { NODE_OPTIONS: '--throw-deprecation' } });
  const explain = `exit ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''} after ${r.ms} ms\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  assert.equal(r.code, 0, explain);
  assert.match(r.stdout, /^n 1\nwarnings \[\]\n/, explain);
  const last = Number(/^last (\d+)$/m.exec(r.stdout)?.[1]);
  const delay = spawnedAt + r.ms - last;
  assert.ok(delay < 3000, `exited ${delay} ms after its last line\n${explain}`);
}
