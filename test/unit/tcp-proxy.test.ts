/** The fault-injection TCP proxy (test/support/tcp-proxy.ts): pass, delay (order kept), blackhole. */
import assert from 'node:assert/strict';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { sleep } from '../support/process.js';

describe('tcp proxy', () => {
  let server: Server;
  let proxy: TcpProxy;
  let client: Socket;
  let received: { at: number; text: string }[];

  beforeEach(async () => {
    // An echo server on loopback.
    server = createServer((s) => s.on('data', (d) => s.write(d)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    proxy = await startTcpProxy(port);
    client = createConnection({ host: '127.0.0.1', port: proxy.port });
    client.setNoDelay(true);
    received = [];
    client.on('data', (d: Buffer) => received.push({ at: Date.now(), text: d.toString() }));
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  });

  afterEach(async () => {
    client.destroy();
    await proxy.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const text = (): string => received.map((r) => r.text).join('');
  const until = async (what: string, ok: () => boolean, ms = 3000): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms (got '${text()}')`);
      await sleep(5);
    }
  };

  it('delay: each chunk arrives after the delay (both ways), in order', async () => {
    proxy.setMode('delay', { minMs: 60, maxMs: 120 });
    const sentAt = Date.now();
    for (const part of ['a', 'b', 'c', 'd', 'e']) {
      client.write(part);
      await sleep(2);
    }
    await until('all echoed', () => text() === 'abcde');
    // Two proxy hops (request and echo), each at least 60 ms.
    assert.ok(received[0]!.at - sentAt >= 115, `first echo after ${received[0]!.at - sentAt} ms`);
  });

  it('back to pass: queued chunks still go first', async () => {
    proxy.setMode('delay', { minMs: 100, maxMs: 100 });
    client.write('1');
    await sleep(10);
    proxy.setMode('pass');
    client.write('2');
    await until('both echoed', () => text() === '12');
  });

  it('blackhole drops bytes both ways; pass forwards again', async () => {
    proxy.setMode('blackhole');
    client.write('lost');
    await sleep(150);
    assert.equal(text(), '');
    proxy.setMode('pass');
    client.write('ok');
    await until('echoed', () => text() === 'ok');
  });
  it('counts the bytes of both directions', async () => {
    client.write('hello');
    await until('echo', () => text() === 'hello');
    assert.deepEqual(proxy.bytes(), { up: 5, down: 5 });
  });
});
