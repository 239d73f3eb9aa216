/**
 * The connections of one etcd backend: gRPC channel credentials that make every connection the
 * backend's own, TLS done here, and what each endpoint last did (refused, failed TLS, accepted,
 * answered) for the errors `connect()` reports.
 *
 * grpc-js holds the event loop on behalf of calls: it refs an HTTP/2 session's socket while any
 * call is active on it, refs a timer while calls wait for a connection, and gives each call with
 * a deadline a ref'd timer. This adapter always has calls active (the lease keepalive stream, the
 * watch streams) and sends background requests (relists, probes, lease grants), so an idle client
 * would keep its process alive forever. The library holds the process itself while one of its
 * calls is pending (lib/util/keepalive.ts); grpc-js must not, for our channels only:
 * - sockets: a channel's credentials turn each TCP connection grpc-js opens into the socket HTTP/2
 *   runs on (`_createSecureConnector(...).connect(socket)`), so credentials of our own see exactly
 *   the sockets of the channels built with them (no global hook, no guess). They are unref'd and
 *   their `ref()` made a no-op, so the HTTP/2 session on top cannot ref them again.
 * - deadlines: an interceptor takes a call's deadline and runs it on an unref'd timer of its own
 *   (sending the same `grpc-timeout`, so the server still gives up at the deadline).
 * - waiting for a connection: each channel we build has its "calls are queued" timer disabled.
 * See docs/ETCD.md ("Process lifetime") for the reasoning and the limits.
 */
import { createRequire } from 'node:module';
import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { isTlsError, tlsReason, type TlsParams } from '../../lib/util/tls.js';
import type * as GrpcModule from '@grpc/grpc-js';

/**
 * The grpc-js copy etcd3 loads (resolved from etcd3's own location): credentials must be
 * instances of that copy's `ChannelCredentials`, which grpc-js checks with `instanceof`.
 */
const grpc = createRequire(createRequire(import.meta.url).resolve('etcd3'))('@grpc/grpc-js') as typeof GrpcModule;

type GrpcUri = Parameters<GrpcModule.ChannelCredentials['_createSecureConnector']>[0];
type SecureConnector = ReturnType<GrpcModule.ChannelCredentials['_createSecureConnector']>;

/**
 * Makes `socket` unable to hold the event loop: unref it, and make later `ref()` calls on this
 * socket (HTTP/2 sessions make them when a stream opens) do nothing. Only ever applied to the
 * sockets grpc-js hands to our own credentials.
 */
function detach(socket: Socket): void {
  socket.unref();
  Object.defineProperty(socket, 'ref', { value: refNothing, configurable: true, writable: true });
}

function refNothing(this: Socket): Socket {
  return this;
}


/** What an endpoint last did, as this backend saw it. */
export type EndpointFailureKind = 'refused' | 'tls' | 'dns' | 'other';

/** The state of one endpoint (`host:port`). */
export interface EndpointState {
  readonly endpoint: string;
  /** When a call was last sent its way. */
  triedAt?: number;
  /** When a TCP connection to it was last established. */
  connectedAt?: number;
  /** When it last answered a call. */
  answeredAt?: number;
  /** The last failure of a call sent to it, cleared by an answer. */
  failure?: { readonly kind: EndpointFailureKind; readonly error: unknown; readonly at: number } | undefined;
  /** The last TLS-level error of a connection to it (the socket's own error object). */
  tlsError?: Error | undefined;
}

/**
 * Whether the endpoint refused our TLS certificate and never answered since: the alert of a
 * handshake that failed after it seemed to succeed (TLS 1.3), on any of our connections to it
 * (etcd3's token fetch with auth has its own), which no call of ours may have seen fail.
 */
export function refusedTls(s: EndpointState): boolean {
  return s.tlsError !== undefined && s.answeredAt === undefined;
}

/** The endpoints of one backend and what each last did. */
export class Endpoints {
  readonly #states = new Map<string, EndpointState>();

  constructor(endpoints: readonly string[]) {
    for (const endpoint of endpoints) this.#states.set(endpoint, { endpoint });
  }

  get all(): readonly EndpointState[] {
    return [...this.#states.values()];
  }

  /** The state of `endpoint` (`host:port`, or a URL / gRPC target naming it). */
  of(endpoint: string): EndpointState | undefined {
    const key = endpoint.replace(/^[a-z]+:\/*/i, '');
    return this.#states.get(key);
  }

  /** Records a call sent to `endpoint`. */
  tried(endpoint: string): void {
    const s = this.of(endpoint);
    if (s) s.triedAt = Date.now();
  }

  /** Records an answered call. */
  answered(endpoint: string): void {
    const s = this.of(endpoint);
    if (!s) return;
    s.answeredAt = Date.now();
    s.failure = undefined;
  }

  /** Records a failed call, classified from the error gRPC reported. */
  failed(endpoint: string, error: unknown): void {
    const s = this.of(endpoint);
    if (!s) return;
    s.failure = { kind: classifyConnectFailure(error, s), error, at: Date.now() };
  }
}

/**
 * How a call's connection failed, from gRPC's text ("No connection established. Last error:
 * ..."): the connection was refused, TLS failed (our connector's own text, or the server's TLS
 * alert recorded on the socket), the name did not resolve, or anything else.
 */
function classifyConnectFailure(error: unknown, state: EndpointState): EndpointFailureKind {
  const message = error instanceof Error ? error.message : String(error);
  if (/ECONNREFUSED/.test(message)) return 'refused';
  if (/TLS handshake with \S+ failed|ERR_SSL_|alert|certificate|SSL routines/i.test(message)) return 'tls';
  if (/ENOTFOUND|EAI_AGAIN|Name resolution failed/.test(message)) return 'dns';
  // A server that refuses our client certificate under TLS 1.3 does so after the client's side of
  // the handshake finished: the alert arrives on the socket and gRPC only says the connection
  // closed. The connector recorded the socket's error.
  if (state.tlsError && /No connection established|Connection closed|ECONNRESET/i.test(message)) return 'tls';
  return 'other';
}


/** The `host:port` a gRPC target names (`dns:127.0.0.1:2379` → `127.0.0.1:2379`). */
function targetEndpoint(target: GrpcUri): string {
  return target.path.replace(/^\/+/, '');
}

/** The host part of `host:port` (IPv6 brackets removed). */
function hostOf(endpoint: string): string {
  const host = endpoint.replace(/:\d+$/, '');
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** What an {@link EtcdRpc} gives etcd3 so that every channel it builds owns its connections. */
export interface OwnedChannels {
  /** Our credentials (also given to etcd3's token exchange). */
  readonly credentials: GrpcModule.ChannelCredentials;
  /** gRPC's `channelFactoryOverride` client option: etcd3's channels, built with our credentials. */
  readonly channelFactoryOverride: (target: string, etcd3Credentials: unknown, options: GrpcModule.ChannelOptions) => GrpcModule.Channel;
  /** Client interceptors for unary calls (see {@link unrefDeadline}). */
  readonly interceptors: GrpcModule.Interceptor[];
  /** Closes every channel built so far (before etcd3's own close: see `EtcdRpc.close`). */
  closeAll(): void;
}

/** Channels for one backend's `endpoints`, with TLS when `tls` is given. */
export function ownedChannels(endpoints: Endpoints, tls: TlsParams | undefined): OwnedChannels {
  const credentials = ownedCredentials(endpoints, tls);
  const channels = new Set<GrpcModule.Channel>();
  return {
    credentials,
    channelFactoryOverride: (target, _etcd3Credentials, options) => {
      // etcd3 replaces a host's channels after a transport error: forget the closed ones.
      for (const c of channels) if (c.getConnectivityState(false) === grpc.connectivityState.SHUTDOWN) channels.delete(c);
      const channel = new grpc.Channel(target, credentials, options);
      neverRefWhileQueued(channel);
      channels.add(channel);
      return channel;
    },
    interceptors: [unrefDeadline],
    closeAll: () => {
      for (const c of channels) c.close();
      channels.clear();
    },
  };
}

/**
 * grpc-js refs a timer of the channel while calls wait for a connection (its "call ref timer"),
 * so that a queued call keeps the process alive. Ours must not: a watch re-opened into a
 * blackholed connection waits there for good. This reaches into grpc-js's channel (no public
 * option exists) and only when it has the expected shape; otherwise nothing changes, and
 * test/etcd/lifecycle.test.ts (an idle client behind a blackhole exits) says so.
 */
function neverRefWhileQueued(channel: GrpcModule.Channel): void {
  const internal = (channel as unknown as { internalChannel?: { callRefTimerRef?: unknown } }).internalChannel;
  if (internal && typeof internal.callRefTimerRef === 'function') internal.callRefTimerRef = () => undefined;
}

/**
 * Runs a unary call's deadline on an unref'd timer instead of gRPC's (which is ref'd: a call
 * with a deadline would hold the process until then, background calls included). The call goes
 * down without a deadline and is cancelled with `DEADLINE_EXCEEDED` when it passes; the
 * `grpc-timeout` header gRPC would have sent is sent, so the server gives up at the same time.
 */
const unrefDeadline: GrpcModule.Interceptor = (options, nextCall) => {
  const at = options.deadline instanceof Date ? options.deadline.getTime() : options.deadline;
  if (at === undefined || !Number.isFinite(at)) return new grpc.InterceptingCall(nextCall(options));
  let timer: NodeJS.Timeout | undefined;
  const call: GrpcModule.InterceptingCall = new grpc.InterceptingCall(nextCall({ ...options, deadline: Infinity }), {
    start(metadata, listener, next) {
      const remainingMs = Math.max(0, at - Date.now());
      // A copy: etcd3 passes the same metadata object (its auth token) to every call and stream.
      const withTimeout = metadata.clone();
      withTimeout.set('grpc-timeout', `${Math.max(1, Math.ceil(remainingMs))}m`);
      timer = setTimeout(() => call.cancelWithStatus(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded'), remainingMs);
      timer.unref();
      next(withTimeout, {
        onReceiveStatus(status, nextStatus) {
          clearTimeout(timer);
          nextStatus(status);
        },
      });
    },
    cancel(next) {
      clearTimeout(timer);
      next();
    },
  });
  return call;
};

/**
 * Channel credentials whose connections belong to one backend. Equal only to themselves, so
 * grpc-js's process-wide subchannel pool never shares one of our connections with a channel of
 * anyone else (the backend's own channels — KV, Watch, Lease — still share one per endpoint).
 */
function ownedCredentials(endpoints: Endpoints, tls: TlsParams | undefined): GrpcModule.ChannelCredentials {
  class OwnedCredentials extends grpc.ChannelCredentials {
    _isSecure(): boolean {
      return tls !== undefined;
    }

    _equals(other: GrpcModule.ChannelCredentials): boolean {
      return other === this;
    }

    _createSecureConnector(target: GrpcUri, _options: unknown, callCredentials?: GrpcModule.CallCredentials): SecureConnector {
      const endpoint = targetEndpoint(target);
      const call = callCredentials ?? grpc.CallCredentials.createEmpty();
      return {
        connect: (socket: Socket) => {
          detach(socket);
          const state = endpoints.of(endpoint);
          if (state) state.connectedAt = Date.now();
          if (!tls) return Promise.resolve({ socket, secure: false });
          return secureConnect(socket, endpoint, tls, state);
        },
        waitForReady: () => Promise.resolve(),
        getCallCredentials: () => call,
        destroy: () => undefined,
      };
    }
  }
  return new OwnedCredentials();
}

/**
 * TLS over a connected socket, as grpc-js's own connector does it, except the server name: SNI
 * is only sent for a host name (RFC 6066 forbids an IP address there, and Node warns DEP0123),
 * while the certificate is still checked against the host, IP or name, or `servername`.
 */
function secureConnect(socket: Socket, endpoint: string, tls: TlsParams, state: EndpointState | undefined): Promise<{ socket: Socket; secure: true }> {
  const host = hostOf(endpoint);
  const servername = tls.servername ?? (isIP(host) === 0 ? host : undefined);
  return new Promise((resolve, reject) => {
    const secure = tlsConnect({
      socket,
      secureContext: tls.secureContext,
      ALPNProtocols: ['h2'],
      host: tls.servername ?? host,
      ...(servername !== undefined && { servername }),
      rejectUnauthorized: tls.rejectUnauthorized,
    });
    detach(secure);
    let connected = false;
    secure.on('error', (err: Error) => {
      if (isTlsError(err) && state) state.tlsError = err;
      if (connected) return; // gRPC's session handles errors from here on
      secure.destroy();
      reject(new Error(`TLS handshake with ${endpoint} failed: ${tlsReason(err)}`));
    });
    secure.once('secureConnect', () => {
      connected = true;
      if (state) state.tlsError = undefined;
      resolve({ socket: secure, secure: true });
    });
  });
}

