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
import { exponentialBackoff, type BackoffPolicy } from '../../lib/retry.js';
import { sleep, withDeadline } from '../../lib/util/abort.js';
import { Counters } from '../../lib/util/counters.js';
import { HostDownError, toSharedError, wasNotSent, type CallKind } from './errors.js';

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
 * A policy that runs the call once. etcd3 wants cockatiel policies; this is the shape of
 * cockatiel's `noop` without depending on cockatiel (etcd3 never subscribes to the events).
 */
const passThrough = {
  execute: (fn: (context: { signal: AbortSignal }) => unknown) => Promise.resolve().then(() => fn({ signal: new AbortController().signal })),
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
} as unknown as Policy;

/** How long an endpoint that failed at the transport level is passed over, with others to try. */
const HOST_DOWN_MS = 2000;

/**
 * With several endpoints, etcd3 picks one at random per call and moves to the next only when
 * the host policy refuses without calling. This policy refuses for {@link HOST_DOWN_MS} after a
 * transport failure (refused connection, deadline), so calls stop landing on a dead or frozen
 * member. With one endpoint it is not installed: there is nowhere else to go.
 */
function hostGate(host: string): Policy {
  let downUntil = 0;
  return {
    execute: async (fn: (context: { signal: AbortSignal }) => unknown) => {
      if (Date.now() < downUntil) throw new HostDownError(host);
      try {
        return await fn({ signal: new AbortController().signal });
      } catch (err) {
        if (err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError) downUntil = Date.now() + HOST_DOWN_MS;
        throw err;
      }
    },
    onSuccess: () => ({ dispose: () => undefined }),
    onFailure: () => ({ dispose: () => undefined }),
  } as unknown as Policy;
}

/**
 * etcd refuses gRPC keepalive pings closer than `--grpc-keepalive-min-time` (5 s by default)
 * with GOAWAY, so pings go every 6 s. They are what detects a dead connection under a silent
 * partition: without them a watch stream on a blackholed socket would wait forever.
 */
const GRPC_KEEPALIVE_TIME_MS = 6000;

/** TLS material accepted in `AdapterOptions.tls` (PEM strings or buffers). */
export interface EtcdTlsOptions {
  readonly ca?: string | Buffer;
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
}

function toBuffer(v: string | Buffer | undefined): Buffer | undefined {
  return v === undefined ? undefined : Buffer.isBuffer(v) ? v : Buffer.from(v);
}

function tlsOptions(tls: unknown): EtcdTlsOptions | undefined {
  if (tls === undefined || tls === null || tls === false) return undefined;
  if (tls === true) return {};
  if (typeof tls !== 'object') throw new SharedStructError('INVALID_ARGUMENT', 'options.tls must be true or { ca?, cert?, key? }');
  const t = tls as EtcdTlsOptions;
  // etcd3 takes client certificates only together with a CA; without any, the system roots.
  if ((t.cert !== undefined || t.key !== undefined) && t.ca === undefined) {
    throw new SharedStructError('INVALID_ARGUMENT', 'options.tls.ca is required when options.tls.cert or options.tls.key is given');
  }
  return t;
}

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
}

/** The counted, deadline-bound, error-converting etcd client of one backend. */
export class EtcdRpc {
  readonly counters = new Counters();
  readonly client: Etcd3;
  readonly requestTimeoutMs: number;
  readonly #backoff: BackoffPolicy;
  #closed = false;
  #revision = 0n;

  constructor(address: BackendAddress, options: AdapterOptions, rpcOptions: EtcdRpcOptions) {
    this.requestTimeoutMs = rpcOptions.requestTimeoutMs;
    this.#backoff = rpcOptions.backoff ?? exponentialBackoff({ initialMs: 25, maxMs: 500 });
    const tls = tlsOptions(options.tls);
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
      },
      faultHandling: { global: passThrough, host: address.hosts.length > 1 ? hostGate : () => passThrough },
      ...(options.auth && {
        auth: {
          username: options.auth.username,
          password: options.auth.password,
          callOptions: () => ({ deadline: Date.now() + rpcOptions.requestTimeoutMs }),
        },
      }),
      ...(tls?.ca !== undefined && {
        credentials: {
          rootCertificate: toBuffer(tls.ca)!,
          ...(tls.key !== undefined && { privateKey: toBuffer(tls.key) }),
          ...(tls.cert !== undefined && { certChain: toBuffer(tls.cert) }),
        },
      }),
    };
    this.client = new Etcd3(etcdOptions);
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
   * One unary call under one deadline. Reads and idempotent writes are retried on connection
   * errors until the deadline; other writes only when gRPC proves the request never left (no
   * connection was up), because a write whose answer was lost may have been applied.
   */
  #call<T>(spec: CallSpec, send: (options: { deadline: number }) => Promise<T>): Promise<T> {
    const timeoutMs = spec.timeoutMs ?? this.requestTimeoutMs;
    return withDeadline(spec.what, timeoutMs, spec.signal, async (deadlineSignal) => {
      const deadline = Date.now() + timeoutMs;
      for (let attempt = 1; ; attempt++) {
        this.assertOpen(spec.what);
        this.counters.count(spec.op);
        try {
          const res = await send({ deadline });
          this.noteRevision((res as { header?: { revision?: string } } | undefined)?.header);
          return res;
        } catch (err) {
          const converted = toSharedError(err, spec.what, spec.kind);
          const retry =
            !this.#closed &&
            converted.code === 'CONNECTION' &&
            (spec.kind === 'read' || spec.idempotent === true || wasNotSent(err)) &&
            !deadlineSignal.aborted;
          if (!retry) throw converted;
          await sleep(this.#backoff.delayMs(attempt), deadlineSignal);
        }
      }
    }).catch((err: unknown) => {
      if (this.#closed && !isSharedStructError(err, 'ABORTED')) {
        throw new SharedStructError('CLOSED', `${spec.what}: the client is closed`, { cause: err });
      }
      throw toSharedError(err, spec.what, spec.kind);
    });
  }
}
