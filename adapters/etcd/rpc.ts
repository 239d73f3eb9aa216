/**
 * The adapter's one seam to etcd: every request goes through here, so here it is counted,
 * given a deadline, retried when that is safe, and its error converted. etcd3's own retry and
 * circuit-breaker policies are switched off: they would re-send a Txn behind our back and
 * hide requests from the counters.
 */
import {
  Etcd3,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  type IDuplexStream,
  type IDeleteRangeRequest,
  type IDeleteRangeResponse,
  type ILeaseGrantResponse,
  type ILeaseKeepAliveRequest,
  type ILeaseKeepAliveResponse,
  type IOptions,
  type IRangeRequest,
  type IRangeResponse,
  type ITxnRequest,
  type ITxnResponse,
  type IWatchRequest,
  type IWatchResponse,
  type WatchClient,
} from 'etcd3';
import type { AdapterOptions, BackendAddress } from '../../lib/backend.js';
import { SharedStructError, isSharedStructError } from '../../lib/errors.js';
import { exponentialBackoff, retry, type BackoffPolicy } from '../../lib/retry.js';
import { withDeadline } from '../../lib/util/abort.js';
import { Counters } from '../../lib/util/counters.js';
import { Endpoints, ownedChannels, refusedTls, type EndpointFailureKind, type OwnedChannels } from './channel.js';
import { HostDownError, toSharedError, wasNotSent, type CallKind } from './errors.js';
import { tlsParams } from '../../lib/util/tls.js';

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
/** gRPC's per-call options and interceptors, as etcd3's stream methods take them. */
type StreamCallOptions = NonNullable<Parameters<WatchClient['watch']>[0]>;
type Interceptor = NonNullable<StreamCallOptions['interceptors']>[number];

/**
 * Adds etcd's `hasleader` metadata (clientv3's `WithRequireLeader`) to a stream: a member that
 * loses its leader (cut off from the quorum) then ends the stream with "no leader" instead of
 * keeping it open without events, and the adapter re-opens it, possibly on another member.
 * gRPC types the interceptor's result as its InterceptingCall class; the call returned by
 * `nextCall` has the same methods, patched in place.
 */
const requireLeader: Interceptor = (options, nextCall) => {
  const call = nextCall(options);
  const start = call.start.bind(call);
  call.start = (metadata, listener) => {
    metadata.set('hasleader', 'true');
    start(metadata, listener);
  };
  return call as unknown as ReturnType<Interceptor>;
};
const STREAM_OPTIONS: StreamCallOptions = { interceptors: [requireLeader] };

/**
 * The context our policies hand etcd3's calls: etcd3 never reads its signal (its deadlines are
 * gRPC's), so one that never fires serves every call instead of an AbortSignal made per call.
 */
const POLICY_CONTEXT: { readonly signal: AbortSignal } = Object.freeze({ signal: new AbortController().signal });

/**
 * A policy that runs the call once. etcd3 wants cockatiel policies; this is the shape of
 * cockatiel's `noop` without depending on cockatiel (etcd3 never subscribes to the events).
 */
const passThrough = {
  execute: (fn: (context: { signal: AbortSignal }) => unknown) => Promise.resolve().then(() => fn(POLICY_CONTEXT)),
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
} as unknown as Policy;

/** The HTTP/2 flow-control window of each connection and stream (grpc-js's default: 64 KiB). */
const FLOW_CONTROL_WINDOW = 8 * 1024 * 1024;

/** How long an endpoint that failed at the transport level is passed over, with others to try. */
const HOST_DOWN_MS = 2000;

/**
 * The fault policy etcd3 runs every call to `host` through. It records what the endpoint did
 * (answered, or how it failed: what `connect()` reports), and with several endpoints it passes
 * over the host for {@link HOST_DOWN_MS} after a transport failure (refused connection, deadline):
 * etcd3 picks one at random per call and moves to the next only when the host policy refuses
 * without calling, so calls stop landing on a dead or frozen member. With one endpoint there is
 * nowhere else to go, and it only records.
 */
function hostPolicy(host: string, endpoints: Endpoints, gate: boolean): Policy {
  let downUntil = 0;
  return {
    execute: async (fn: (context: { signal: AbortSignal }) => unknown) => {
      if (gate && Date.now() < downUntil) throw new HostDownError(host);
      endpoints.tried(host);
      try {
        const res = await fn(POLICY_CONTEXT);
        // Opening a stream returns it at once: that is no answer yet.
        if (typeof (res as { on?: unknown } | undefined)?.on !== 'function') endpoints.answered(host);
        return res;
      } catch (err) {
        if (err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError) {
          downUntil = Date.now() + HOST_DOWN_MS;
          endpoints.failed(host, err);
        } else {
          endpoints.answered(host); // the server answered, with an error
        }
        throw err;
      }
    },
    onSuccess: () => ({ dispose: () => undefined }),
    onFailure: () => ({ dispose: () => undefined }),
  } as unknown as Policy;
}

/**
 * Failures that retrying will not fix soon: every endpoint refusing the connection, failing the
 * TLS handshake or not resolving. `connect()` gives up on them after this long (it would
 * otherwise retry them until `connectTimeoutMs`); a server that is just starting gets that
 * much time to listen.
 */
export const UNREACHABLE_AFTER_MS = 250;
const DEFINITE_FAILURES: ReadonlySet<EndpointFailureKind> = new Set<EndpointFailureKind>(['refused', 'tls', 'dns']);

/**
 * etcd refuses gRPC keepalive pings closer than `--grpc-keepalive-min-time` (5 s by default)
 * with GOAWAY, so pings go every 6 s. They are what detects a dead connection under a silent
 * partition: without them a watch stream on a blackholed socket would wait forever.
 */
const GRPC_KEEPALIVE_TIME_MS = 6000;

/** Options of {@link EtcdRpc}. */
export interface EtcdRpcOptions {
  readonly requestTimeoutMs: number;
  /** Delay between attempts of a call that may be retried. */
  readonly backoff?: BackoffPolicy;
}

/** What a unary call needs to know. */
interface CallSpec {
  /** The etcd RPC name, counted once per attempt (`range`, `txn`, ...). */
  readonly op: string;
  /** Human name for errors (`etcd txn /a/b`). */
  readonly what: string;
  readonly kind: CallKind;
  /**
   * A write whose repetition changes nothing (deleting one key): retried on connection errors
   * like a read. Its result may then describe the retry, not the first attempt.
   */
  readonly idempotent?: boolean;
  readonly signal?: AbortSignal | undefined;
  /** Overrides `requestTimeoutMs` (the first lease grant uses `connectTimeoutMs`). */
  readonly timeoutMs?: number;
  /** Asked after each failed attempt: true stops retrying (the first lease grant gives up on unreachable endpoints). */
  readonly giveUp?: () => boolean;
}

/** The counted, deadline-bound, error-converting etcd client of one backend. */
export class EtcdRpc {
  readonly counters = new Counters();
  readonly client: Etcd3;
  /** What each endpoint last did (for `connect()`'s errors). */
  readonly endpoints: Endpoints;
  readonly requestTimeoutMs: number;
  readonly #backoff: BackoffPolicy;
  readonly #channels: OwnedChannels;
  #closed = false;
  #revision = 0n;

  constructor(address: BackendAddress, options: AdapterOptions, rpcOptions: EtcdRpcOptions) {
    this.requestTimeoutMs = rpcOptions.requestTimeoutMs;
    this.#backoff = rpcOptions.backoff ?? exponentialBackoff({ initialMs: 25, maxMs: 500 });
    this.endpoints = new Endpoints(address.hosts);
    // Bad TLS material throws INVALID_ARGUMENT here, before anything is sent.
    const tls = tlsParams(options.tls);
    const channels = ownedChannels(this.endpoints, tls);
    this.#channels = channels;
    const scheme = tls ? 'https' : 'http';
    const keepaliveTimeoutMs = Math.min(10_000, Math.max(1000, rpcOptions.requestTimeoutMs));
    const etcdOptions: IOptions = {
      hosts: address.hosts.map((h) => `${scheme}://${h}`),
      grpcOptions: {
        'grpc.keepalive_time_ms': GRPC_KEEPALIVE_TIME_MS,
        'grpc.keepalive_timeout_ms': keepaliveTimeoutMs,
        // Reconnect quickly after a server restart; gRPC's default starts at 1 s and grows to 120 s.
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
        // etcd sends whole revisions in one watch response and whole ranges in one answer; with
        // values up to 1.5 MiB, gRPC's 4 MiB default would fail a resuming watch forever. etcd's
        // own client allows 2 GiB too.
        'grpc.max_receive_message_length': 2_147_483_647,
        // HTTP/2's default window is 64 KiB per stream and per connection: a 100 KB value coming
        // back on the writer's own watch stalled every reply behind it on the same connection
        // for a window update (a 100 KB update at ~400/s however fast the server was).
        'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
        // Every channel etcd3 builds (one per service and endpoint) gets our credentials, which
        // own its connections (see channel.ts) and do TLS; etcd3's own are not used.
        channelFactoryOverride: channels.channelFactoryOverride,
        interceptors: channels.interceptors,
      },
      faultHandling: { global: passThrough, host: (h) => hostPolicy(h, this.endpoints, address.hosts.length > 1) },
      ...(options.auth && {
        auth: {
          username: options.auth.username,
          password: options.auth.password,
          callOptions: () => ({ deadline: Date.now() + rpcOptions.requestTimeoutMs }),
        },
      }),
    };
    this.client = new Etcd3(etcdOptions);
    // etcd3 fetches auth tokens on a channel of its own, built with etcd3's credentials (no
    // options): give it ours too, so that connection is ours and uses our TLS.
    const authenticator = (this.client as unknown as { pool?: { authenticator?: { credentials?: unknown } } }).pool?.authenticator;
    if (authenticator && 'credentials' in authenticator) authenticator.credentials = channels.credentials;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Throws `CLOSED` once {@link close} ran. */
  assertOpen(what: string): void {
    if (this.#closed) throw new SharedStructError('CLOSED', `${what}: the client is closed`);
  }

  range(req: IRangeRequest, spec: Omit<CallSpec, 'op' | 'kind'>): Promise<IRangeResponse> {
    return this.#call({ ...spec, op: 'range', kind: 'read' }, (o) => this.client.kv.range(req, o));
  }

  /** A count-only range (counted as `count`). */
  countRange(req: IRangeRequest, spec: Omit<CallSpec, 'op' | 'kind'>): Promise<IRangeResponse> {
    return this.#call({ ...spec, op: 'count', kind: 'read' }, (o) => this.client.kv.range({ ...req, count_only: true }, o));
  }

  txn(req: ITxnRequest, spec: Omit<CallSpec, 'op' | 'kind'>): Promise<ITxnResponse> {
    const write = (req.success ?? []).concat(req.failure ?? []).some((op) => op.request_put || op.request_delete_range);
    return this.#call({ ...spec, op: 'txn', kind: write ? 'write' : 'read' }, (o) => this.client.kv.txn(req, o));
  }

  /** Deletes a key (or range). Retried like a read: deleting twice leaves the same store. */
  deleteRange(req: IDeleteRangeRequest, spec: Omit<CallSpec, 'op' | 'kind' | 'idempotent'>): Promise<IDeleteRangeResponse> {
    return this.#call({ ...spec, op: 'deleteRange', kind: 'write', idempotent: true }, (o) => this.client.kv.deleteRange(req, o));
  }

  leaseGrant(ttlSeconds: number, spec: Omit<CallSpec, 'op' | 'kind'>): Promise<ILeaseGrantResponse> {
    // A grant whose answer is lost leaves an orphan lease that expires on its own: safe to retry.
    return this.#call({ ...spec, op: 'leaseGrant', kind: 'read' }, (o) => this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }, o));
  }

  leaseRevoke(id: string, spec: Omit<CallSpec, 'op' | 'kind'>): Promise<void> {
    return this.#call({ ...spec, op: 'leaseRevoke', kind: 'read' }, async (o) => {
      await this.client.leaseClient.leaseRevoke({ ID: id }, o);
    });
  }

  /** Opens a watch stream (bounded by the request deadline: opening may wait for a token). */
  openWatchStream(signal?: AbortSignal): Promise<IDuplexStream<IWatchRequest, IWatchResponse>> {
    return this.#open('watch', signal, () => this.client.watchClient.watch(STREAM_OPTIONS));
  }

  /** Opens a lease keepalive stream. */
  openKeepAliveStream(signal?: AbortSignal): Promise<IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>> {
    return this.#open('leaseKeepAlive', signal, () => this.client.leaseClient.leaseKeepAlive(STREAM_OPTIONS));
  }

  /**
   * The highest store revision any answer has carried (unary responses, keepalives, watch
   * messages): the store was at least there before now. 0 before the first answer.
   */
  get revision(): bigint {
    return this.#revision;
  }

  /** Records the revision of an answer's header. */
  noteRevision(header: { revision?: string } | undefined): void {
    if (!header?.revision) return;
    const r = BigInt(header.revision);
    if (r > this.#revision) this.#revision = r;
  }

  /** Counts one request written on a stream. */
  countStreamRequest(op: string): void {
    this.counters.count(op);
  }

  /** Closes every gRPC channel; later calls reject `CLOSED`. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Our channels first: etcd3 would otherwise wait (a ref'd timer, up to 1 s) for a channel
    // that is still connecting before closing it, holding the process that long.
    this.#channels.closeAll();
    this.client.close();
  }

  async #open<S extends { cancel(): void }>(what: string, signal: AbortSignal | undefined, open: () => Promise<S>): Promise<S> {
    this.assertOpen(`etcd ${what}`);
    const pending = open().then((stream) => {
      // etcd3 listens for stream errors to reset every channel of the host, which also fails
      // calls queued on them; our own cancel() of a stream would trigger it. The owner of the
      // stream handles its errors, and gRPC channels reconnect by themselves.
      const emitter = stream as unknown as NodeJS.EventEmitter;
      emitter.removeAllListeners('error');
      emitter.on('error', () => undefined);
      return stream;
    });
    try {
      return await withDeadline(`etcd ${what} stream`, this.requestTimeoutMs, signal, () => pending);
    } catch (err) {
      // The stream may still open after we gave up on it: cancel it then, never leak it.
      pending.then((s) => s.cancel(), () => undefined);
      throw toSharedError(err, `etcd ${what} stream`);
    }
  }

  /**
   * True when every endpoint failed in a way retrying will not fix soon (refused, TLS, name), the
   * last time since `since`, and {@link UNREACHABLE_AFTER_MS} has passed since then.
   */
  unreachable(since: number): boolean {
    if (Date.now() - since < UNREACHABLE_AFTER_MS) return false;
    return this.endpoints.all.every(
      (s) =>
        (s.failure !== undefined && s.failure.at >= since && DEFINITE_FAILURES.has(s.failure.kind)) || refusedTls(s),
    );
  }

  /**
   * One unary call under one deadline. Reads and idempotent writes are retried on connection
   * errors until the deadline; other writes only when gRPC proves the request never left (no
   * connection was up), because a write whose answer was lost may have been applied.
   */
  #call<T>(spec: CallSpec, send: (options: { deadline: number }) => Promise<T>): Promise<T> {
    const timeoutMs = spec.timeoutMs ?? this.requestTimeoutMs;
    return withDeadline(spec.what, timeoutMs, spec.signal, (deadlineSignal) => {
      const deadline = Date.now() + timeoutMs;
      let notSent = false;
      return retry(
        async () => {
          this.assertOpen(spec.what);
          this.counters.count(spec.op);
          try {
            const res = await send({ deadline });
            this.noteRevision((res as { header?: { revision?: string } } | undefined)?.header);
            return res;
          } catch (err) {
            notSent = wasNotSent(err);
            throw toSharedError(err, spec.what, spec.kind);
          }
        },
        {
          what: spec.what,
          policy: this.#backoff,
          signal: deadlineSignal,
          retryIf: (err) =>
            !this.#closed &&
            isSharedStructError(err, 'CONNECTION') &&
            err.retryable &&
            (spec.kind === 'read' || spec.idempotent === true || notSent) &&
            !(spec.giveUp?.() ?? false),
        },
      );
    }).catch((err: unknown) => {
      if (this.#closed && !isSharedStructError(err, 'ABORTED')) {
        throw new SharedStructError('CLOSED', `${spec.what}: the client is closed`, { cause: err });
      }
      const shared = toSharedError(err, spec.what, spec.kind);
      this.counters.failed(spec.op, shared);
      throw shared;
    });
  }
}
