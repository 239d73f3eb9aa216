/**
 * Health probes of etcd members over the HTTP endpoints every member serves on its client URL
 * (`/version`, `/metrics`): the server version, whether it leads, the round trip, and its clock
 * (the `Date` header). Read-only and unauthenticated, as etcd serves them.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { EndpointStatus } from '../../lib/backend.js';
import type { TlsOptions } from '../../lib/options.js';

interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly sentAt: number;
  readonly receivedAt: number;
}

function get(host: string, path: string, tls: TlsOptions | undefined, timeoutMs: number, signal: AbortSignal | undefined): Promise<HttpAnswer> {
  const [hostname = '127.0.0.1', port = '2379'] = host.split(/:(?=\d+$)/);
  const sentAt = Date.now();
  return new Promise((resolve, reject) => {
    const options = { hostname, port: Number(port), path, method: 'GET', timeout: timeoutMs, ...(signal && { signal }) };
    const req = tls
      ? httpsRequest({
          ...options,
          ...(tls.ca !== undefined && { ca: tls.ca }),
          ...(tls.cert !== undefined && { cert: tls.cert }),
          ...(tls.key !== undefined && { key: tls.key }),
          ...(tls.servername !== undefined && { servername: tls.servername }),
          ...(tls.rejectUnauthorized !== undefined && { rejectUnauthorized: tls.rejectUnauthorized }),
        })
      : httpRequest(options);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, sentAt, receivedAt: Date.now() }));
    });
    req.end();
  });
}

/** Probes one member: `/version` (version, round trip, clock), then `/metrics` (leader or follower). */
export async function probeEtcd(host: string, tls: TlsOptions | undefined, timeoutMs: number, signal?: AbortSignal): Promise<EndpointStatus> {
  let version: HttpAnswer;
  try {
    version = await get(host, '/version', tls, timeoutMs, signal);
  } catch (err) {
    return { endpoint: host, reachable: false, note: err instanceof Error ? err.message : String(err) };
  }
  const roundTripMs = version.receivedAt - version.sentAt;
  const date = version.headers.date ? Date.parse(version.headers.date) : NaN;
  // The header has whole seconds: compare with the middle of the round trip, rounded the same way.
  const clockOffsetMs = Number.isNaN(date) ? undefined : date - Math.floor((version.sentAt + version.receivedAt) / 2000) * 1000;
  let server: string | undefined;
  try {
    server = (JSON.parse(version.body) as { etcdserver?: string }).etcdserver;
  } catch {
    server = undefined;
  }
  let role: string | undefined;
  let note: string | undefined;
  try {
    const metrics = await get(host, '/metrics', tls, timeoutMs, signal);
    const leader = /^etcd_server_is_leader (\d)/m.exec(metrics.body)?.[1];
    const hasLeader = /^etcd_server_has_leader (\d)/m.exec(metrics.body)?.[1];
    role = leader === '1' ? 'leader' : hasLeader === '0' ? 'no leader' : leader === '0' ? 'follower' : undefined;
  } catch (err) {
    note = `no metrics: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (version.status !== 200) note = `/version answered HTTP ${version.status}`;
  return { endpoint: host, reachable: true, version: server, role, roundTripMs, clockOffsetMs, note };
}
