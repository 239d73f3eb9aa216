/**
 * Health probes of ZooKeeper servers with the `srvr` four-letter word (whitelisted by default
 * since 3.5): the server version, its mode (leader, follower, standalone, observer) and the
 * round trip. Over TLS on a secureClientPort when the client uses TLS.
 */
import { createConnection, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { EndpointStatus } from '../../lib/backend.js';
import type { TlsParams } from '../../lib/util/tls.js';

function fourLetterWord(host: string, word: string, tls: TlsParams | undefined, timeoutMs: number): Promise<{ text: string; roundTripMs: number }> {
  const [hostname = '127.0.0.1', port = '2181'] = host.split(/:(?=\d+$)/);
  const sentAt = Date.now();
  return new Promise((resolve, reject) => {
    const socket: Socket = tls
      ? tlsConnect({ host: hostname, port: Number(port), secureContext: tls.secureContext, rejectUnauthorized: tls.rejectUnauthorized, servername: tls.servername ?? hostname })
      : createConnection({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    let firstByteAt: number | undefined;
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer to '${word}' within ${timeoutMs} ms`)));
    // write, not end: a half-close may not pass a proxy; the server closes after its answer.
    socket.once(tls ? 'secureConnect' : 'connect', () => socket.write(word));
    socket.on('data', (chunk: Buffer) => {
      firstByteAt ??= Date.now();
      chunks.push(chunk);
    });
    socket.on('error', reject);
    socket.on('close', (hadError) => {
      if (!hadError) resolve({ text: Buffer.concat(chunks).toString('utf8'), roundTripMs: (firstByteAt ?? Date.now()) - sentAt });
    });
  });
}

/** Probes one server with `srvr`. */
export async function probeZooKeeper(host: string, tls: TlsParams | undefined, timeoutMs: number): Promise<EndpointStatus> {
  let answer: { text: string; roundTripMs: number };
  try {
    answer = await fourLetterWord(host, 'srvr', tls, timeoutMs);
  } catch (err) {
    return { endpoint: host, reachable: false, note: err instanceof Error ? err.message : String(err) };
  }
  const version = /^Zookeeper version: ([^\s,-]+)/m.exec(answer.text)?.[1];
  const role = /^Mode: (\S+)/m.exec(answer.text)?.[1];
  const note = version ? undefined : `'srvr' told nothing (${answer.text.trim().slice(0, 120) || 'empty answer'}): add it to 4lw.commands.whitelist`;
  return { endpoint: host, reachable: true, version, role, roundTripMs: answer.roundTripMs, note };
}
