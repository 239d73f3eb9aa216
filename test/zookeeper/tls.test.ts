/**
 * TLS to a real ZooKeeper's secureClientPort (the Netty connection factory, PEM key and trust
 * stores made by openssl for the run, client certificates required): mutual TLS works from a
 * fresh script, with digest auth on top, and emits no Node warning; a missing or foreign client
 * certificate, a foreign CA, a name the certificate does not carry and a plain port are refused
 * as CONNECTION saying why, in about a second; bad material is INVALID_ARGUMENT before anything
 * is sent.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../../lib/index.js';
import { isSharedStructError } from '../../lib/errors.js';
import type { TlsOptions } from '../../lib/options.js';
import { checkMutualTlsScript, makeCertificates, tlsAttempt } from '../support/certs.js';
import { onRunEnd } from '../support/cleanup.js';
import { freePort, removeDir, scratchDir, startProcess, waitUntil, type ServerProcess } from '../support/process.js';
import { startTcpProxy } from '../support/tcp-proxy.js';
import { fourLetterWord } from '../support/zookeeper.js';
import { zkBackendOf } from './target.js';
import { quietLogger, waitForState } from './helpers.js';

const ZK_JAR = '/usr/share/java/zookeeper.jar';
// The Netty connection factory (the only one that serves TLS) needs netty-codec and
// netty-resolver too, which the jar's manifest Class-Path leaves out (Debian's libnetty-java,
// a dependency of the zookeeper package, has them).
const CLASSPATH = ['/etc/zookeeper/conf', ZK_JAR, '/usr/share/java/slf4j-simple.jar', '/usr/share/java/netty-codec.jar', '/usr/share/java/netty-resolver.jar'].join(':');

/** A standalone ZooKeeper with a plain port (readiness only) and a TLS port requiring client certificates. */
interface TlsZooKeeper {
  readonly securePort: number;
  readonly plainPort: number;
  readonly dir: string;
  file(name: string): Buffer;
  stop(): Promise<void>;
}

async function startTlsZooKeeper(): Promise<TlsZooKeeper> {
  if (!existsSync(ZK_JAR)) throw new Error('ZooKeeper is not installed: apt-get install -y zookeeper');
  const dir = scratchDir('zk-tls');
  makeCertificates(dir);
  // ZooKeeper's PEM key store: the private key and the certificate in one file.
  writeFileSync(join(dir, 'server-keystore.pem'), Buffer.concat([readFileSync(join(dir, 'server.key')), readFileSync(join(dir, 'server.pem'))]));
  const [plainPort, securePort] = [await freePort(), await freePort()];
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const cfg = join(dir, 'zoo.cfg');
  writeFileSync(
    cfg,
    [
      'tickTime=500',
      `dataDir=${dataDir}`,
      `clientPort=${plainPort}`,
      'clientPortAddress=127.0.0.1',
      `secureClientPort=${securePort}`,
      'secureClientPortAddress=127.0.0.1',
      'serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory',
      `ssl.keyStore.location=${join(dir, 'server-keystore.pem')}`,
      'ssl.keyStore.type=PEM',
      `ssl.trustStore.location=${join(dir, 'ca.pem')}`,
      'ssl.trustStore.type=PEM',
      'ssl.clientAuth=need',
      'admin.enableServer=false',
      '4lw.commands.whitelist=srvr,ruok,mntr',
      '',
    ].join('\n'),
  );
  const logFile = join(dir, 'zookeeper.log');
  const proc: ServerProcess = startProcess('java', ['-Xmx256m', '-XX:+UseSerialGC', '-cp', CLASSPATH, 'org.apache.zookeeper.server.quorum.QuorumPeerMain', cfg], logFile, dir);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await proc.kill();
    removeDir(dir);
  };
  onRunEnd(stop);
  await waitUntil(
    'ZooKeeper (TLS)',
    async () => {
      if (proc.exited()) throw new Error(`ZooKeeper exited:\n${readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n')}`);
      return (await fourLetterWord(plainPort, 'srvr', 1000)).includes('Mode:');
    },
    { timeoutMs: 30000, intervalMs: 100 },
  ).catch((err: unknown) => {
    const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n') : '';
    throw new Error(`${(err as Error).message}\n--- ${logFile} ---\n${tail}`, { cause: err });
  });
  return { securePort, plainPort, dir, file: (name) => readFileSync(join(dir, name)), stop };
}

describe('zookeeper adapter: TLS', function () {
  this.timeout(90000);
  let zk: TlsZooKeeper;
  let mutual: TlsOptions;

  before(async () => {
    zk = await startTlsZooKeeper();
    mutual = { ca: zk.file('ca.pem'), cert: zk.file('client.pem'), key: zk.file('client.key') };
  });
  after(async () => {
    await zk?.stop();
  });

  it('mutual TLS: a fresh script connects, writes, watches, emits no warning (no DEP0123 for an IP host) and exits when idle', async () => {
    await checkMutualTlsScript(`zk://127.0.0.1:${zk.securePort}`, zk.dir);
  });

  it('mutual TLS with a servername the certificate names, with digest auth on top; the certificate is an identity of its own', async () => {
    const client = await connect(`zk://127.0.0.1:${zk.securePort}`, {
      tls: { ...mutual, servername: 'localhost' },
      auth: { username: 'alice', password: 'secret' },
      namespace: '/tls-auth',
      sessionTtlMs: 6000,
      logger: quietLogger,
    });
    try {
      const s = await client.open('s', { initial: { n: 1 } });
      assert.equal((await s.update((d) => void (d.n += 1))).value.n, 2);
      // Under mutual TLS the server also authenticates each session by its certificate (x509),
      // and CREATOR_ALL grants every identity of the creator: a client with alice's certificate
      // has her rights whatever its digest; another certificate and another digest have none.
      const open = async (cert: string, username: string): Promise<unknown> => {
        const other = await connect(`zk://127.0.0.1:${zk.securePort}`, {
          tls: { ca: mutual.ca!, cert: zk.file(`${cert}.pem`), key: zk.file(`${cert}.key`) },
          auth: { username, password: 'guess' },
          namespace: '/tls-auth',
          logger: quietLogger,
        });
        try {
          return (await other.open<{ n: number }>('s')).read();
        } finally {
          await other.close();
        }
      };
      assert.deepEqual(await open('client', 'mallory'), { n: 2 });
      await assert.rejects(open('client2', 'mallory'), (err: unknown) => isSharedStructError(err, 'UNAUTHORIZED'));
    } finally {
      await client.close();
    }
  });

  it('a connection dropped under TLS reconnects over TLS to the same session', async () => {
    const proxy = await startTcpProxy(zk.securePort);
    try {
      const client = await connect(`zk://127.0.0.1:${proxy.port}`, { tls: mutual, namespace: '/tls-reconnect', sessionTtlMs: 8000, logger: quietLogger });
      try {
        const s = await client.open('s', { initial: { n: 0 } });
        const session = zkBackendOf(client).session.id;
        await s.update((d) => void (d.n += 1));
        const reconnected = waitForState(zkBackendOf(client), 'reconnected', 10000);
        proxy.resetAll();
        await reconnected; // a new TLS socket, the same session
        assert.equal((await s.update((d) => void (d.n += 1))).value.n, 2);
        assert.equal(zkBackendOf(client).session.id, session, 'the same session');
        assert.equal((await s.readConsistent()).n, 2);
      } finally {
        await client.close();
      }
    } finally {
      await proxy.close();
    }
  });

  const refusals: [string, () => TlsOptions, RegExp, RegExp][] = [
    ['no client certificate', () => ({ ca: mutual.ca! }), /alert bad certificate|alert certificate required|alert handshake failure|ECONNRESET|socket disconnected/i, /refused our client certificate|Is this endpoint serving TLS/],
    ['a client certificate of a foreign CA', () => ({ ca: mutual.ca!, cert: zk.file('foreign-client.pem'), key: zk.file('foreign-client.key') }), /alert bad certificate|alert unknown ca|alert certificate unknown|ECONNRESET|socket disconnected/i, /refused our client certificate|Is this endpoint serving TLS/],
    ['a CA that did not sign the server certificate', () => ({ ...mutual, ca: zk.file('foreign-ca.pem') }), /unable to verify the first certificate/, /Option 'tls\.ca' must hold the CA/],
    ['a servername the certificate does not carry', () => ({ ...mutual, servername: 'zk.example.com' }), /does not match certificate's altnames/, /option 'tls\.servername'/],
  ];
  for (const [label, tls, reason, hint] of refusals) {
    it(`${label}: CONNECTION within ~1 s, saying why (connectTimeoutMs is 10 s)`, async () => {
      const { err, ms } = await tlsAttempt(`zk://127.0.0.1:${zk.securePort}`, tls(), { logger: quietLogger });
      assert.ok(err, 'connected?');
      assert.equal(err.code, 'CONNECTION', err.message);
      assert.ok(ms < 3000, `rejected after ${ms} ms: ${err.message}`);
      assert.match(err.message, new RegExp(`^the TLS handshake with ZooKeeper at 127\\.0\\.0\\.1:${zk.securePort} failed \\(`));
      assert.match(err.message, reason);
      assert.match(err.message, hint);
      assert.doesNotMatch(err.message, /\n|SSL routines|rec_layer/, 'one line, without OpenSSL\'s error queue');
      assert.ok(err.cause instanceof Error && !isSharedStructError(err.cause), 'the cause is the socket error itself');
    });
  }

  it('TLS to a plain-text port: CONNECTION within ~1 s, asking whether it serves TLS', async () => {
    const { err, ms } = await tlsAttempt(`zk://127.0.0.1:${zk.plainPort}`, mutual, { logger: quietLogger });
    assert.ok(err, 'connected?');
    assert.equal(err.code, 'CONNECTION', err.message);
    assert.ok(ms < 3000, `rejected after ${ms} ms: ${err.message}`);
    assert.match(err.message, /Is this endpoint serving TLS\?/);
  });

  it('bad TLS material rejects INVALID_ARGUMENT at once, before any connection', async () => {
    const url = `zk://127.0.0.1:${await freePort()}`;
    for (const [label, tls, message] of [
      ['garbage CA', { ca: 'garbage' }, /^option 'tls\.ca' holds no PEM certificate/],
      ['a key of another certificate', { ...mutual, key: zk.file('foreign-client.key') }, /^option 'tls\.key' does not belong to the first certificate of 'tls\.cert'/],
    ] as const) {
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
