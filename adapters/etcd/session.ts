/**
 * The session of an etcd backend: a lease kept alive over a gRPC stream. It drives the shared
 * {@link SessionTracker}: `suspended` when keepalives go unanswered, `lost` when the server says
 * the lease is gone or it went unrenewed for a whole TTL, then a new lease and `reconnected`
 * with the next epoch (the core re-creates its ephemerals on it).
 */
import type { IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';
import type { Logger } from '../../lib/backend.js';
import { SharedStructError } from '../../lib/errors.js';
import { exponentialBackoff, retry } from '../../lib/retry.js';
import { SessionTracker } from '../../lib/util/session.js';
import { leaseHex } from './convert.js';
import type { EtcdRpc } from './rpc.js';

/**
 * The TTL to ask for: `sessionTtlMs` rounded up to whole seconds (etcd's unit). etcd raises
 * anything below its minimum (1.5 × election timeout, 2 s with default flags) on its own;
 * the TTL it grants is the one the session reports.
 */
export function leaseTtlSeconds(sessionTtlMs: number): number {
  return Math.max(1, Math.ceil(sessionTtlMs / 1000));
}

type KeepAliveStream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;

/** Options of {@link LeaseSession.start}. */
export interface LeaseSessionOptions {
  readonly logger: Logger;
  readonly sessionTtlMs: number;
  /** Deadline of the first grant: it is what proves the cluster answers. */
  readonly connectTimeoutMs: number;
  /** Asked after each failed attempt of the first grant: true gives up before the deadline. */
  readonly giveUp?: () => boolean;
}

/** Between attempts to grant a new lease after the old one was lost. */
const REGRANT_BACKOFF = exponentialBackoff({ initialMs: 100, maxMs: 2000 });

/** A lease-backed session. Start it with {@link LeaseSession.start}. */
export class LeaseSession {
  readonly tracker: SessionTracker;
  readonly #rpc: EtcdRpc;
  readonly #logger: Logger;
  readonly #requestedTtl: number;
  #leaseId: string;
  #ttlMs: number;
  /**
   * When the keepalive the server last confirmed was sent (or the grant was asked for). The
   * server renewed the lease after that moment, so it cannot expire it before this + TTL.
   */
  #lastAck: number;
  /** Send times of the keepalives on the current stream not answered yet, oldest first. */
  #inflight: number[] = [];
  #stream: KeepAliveStream | undefined;
  #opening = false;
  #regranting = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #stop = new AbortController();

  private constructor(rpc: EtcdRpc, logger: Logger, requestedTtl: number, leaseId: string, ttlMs: number, grantedAfter: number) {
    this.#rpc = rpc;
    this.#logger = logger;
    this.#requestedTtl = requestedTtl;
    this.#leaseId = leaseId;
    this.#ttlMs = ttlMs;
    this.#lastAck = grantedAfter;
    this.tracker = new SessionTracker(leaseHex(leaseId), ttlMs);
  }

  /** Grants the first lease (within `connectTimeoutMs`) and starts the keepalive loop. */
  static async start(rpc: EtcdRpc, options: LeaseSessionOptions): Promise<LeaseSession> {
    const ttl = leaseTtlSeconds(options.sessionTtlMs);
    const askedAt = Date.now();
    const granted = await rpc.leaseGrant(ttl, { what: 'etcd leaseGrant', timeoutMs: options.connectTimeoutMs, giveUp: options.giveUp });
    const session = new LeaseSession(rpc, options.logger, ttl, granted.ID, Number(granted.TTL) * 1000, askedAt);
    session.#schedule();
    return session;
  }

  /** The current lease id, decimal as etcd3 writes it (for `lease` fields and raw clients). */
  get leaseId(): string {
    return this.#leaseId;
  }

  /** The TTL the server granted, in ms. */
  get ttlMs(): number {
    return this.#ttlMs;
  }

  /** Keepalives go at a third of the TTL, as etcd's own client does. */
  get #intervalMs(): number {
    return Math.max(200, Math.floor(this.#ttlMs / 3));
  }

  /** Stops keepalives and revokes the lease (its ephemeral keys go at once). Idempotent. */
  async close(): Promise<void> {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    clearTimeout(this.#timer);
    this.#stream?.cancel();
    this.#stream = undefined;
    try {
      await this.#rpc.leaseRevoke(this.#leaseId, { what: 'etcd leaseRevoke' });
    } catch (err) {
      // The server expires the lease after its TTL anyway; closing must not fail for it.
      this.#logger.debug('sharedstruct etcd: lease revoke on close failed', { lease: leaseHex(this.#leaseId), err });
    }
    this.tracker.transition('closed');
  }

  #schedule(): void {
    if (this.#stop.signal.aborted) return;
    this.#timer = setTimeout(() => this.#tick(), this.#intervalMs);
    this.#timer.unref();
  }

  #tick(): void {
    if (this.#stop.signal.aborted) return;
    const now = Date.now();
    if (!this.#regranting) {
      if (now - this.#lastAck >= this.#ttlMs) {
        // Say `suspended` first even when the ticks skipped it: listeners rely on the order.
        this.tracker.transition('suspended', {
          cause: new SharedStructError('TIMEOUT', `lease keepalive unanswered for ${now - this.#lastAck} ms`),
        });
        this.#lose(new SharedStructError('SESSION_LOST', `lease ${leaseHex(this.#leaseId)} went unrenewed for its whole TTL (${this.#ttlMs} ms)`));
      } else {
        // Overdue: unanswered for a request deadline, or for a whole interval when that is shorter
        // (so `suspended` comes well before the TTL runs out).
        const oldest = this.#inflight[0];
        const unanswered = oldest !== undefined && now - oldest > Math.min(this.#rpc.requestTimeoutMs, this.#intervalMs);
        if (unanswered && this.tracker.state !== 'suspended') {
          this.tracker.transition('suspended', {
            cause: new SharedStructError('TIMEOUT', `lease keepalive unanswered for ${now - oldest} ms`),
          });
        }
        if (unanswered) {
          // The stream may sit on a dead connection: start a new one.
          this.#dropStream();
        }
        this.#keepAlive();
      }
    }
    this.#schedule();
  }

  #keepAlive(): void {
    const stream = this.#stream;
    if (!stream) {
      void this.#openStream();
      return;
    }
    this.#inflight.push(Date.now());
    this.#rpc.countStreamRequest('leaseKeepAlive');
    stream.write({ ID: this.#leaseId });
  }

  async #openStream(): Promise<void> {
    if (this.#opening || this.#stop.signal.aborted) return;
    this.#opening = true;
    try {
      const stream = await this.#rpc.openKeepAliveStream(this.#stop.signal);
      if (this.#stop.signal.aborted) {
        stream.cancel();
        return;
      }
      this.#stream = stream;
      stream.on('data', (res) => this.#onAnswer(stream, res));
      const onBroken = (err?: Error): void => {
        if (this.#stream !== stream) return;
        this.#stream = undefined;
        this.#inflight = [];
        if (this.#stop.signal.aborted) return;
        this.tracker.transition('suspended', {
          cause: new SharedStructError('CONNECTION', 'lease keepalive stream broke', { cause: err }),
        });
      };
      stream.on('error', onBroken);
      stream.on('end', () => onBroken());
      this.#keepAlive();
    } catch (err) {
      if (!this.#stop.signal.aborted && this.tracker.state === 'connected') {
        this.tracker.transition('suspended', {
          cause: err instanceof SharedStructError ? err : new SharedStructError('CONNECTION', 'keepalive stream', { cause: err }),
        });
      }
    } finally {
      this.#opening = false;
    }
  }

  #dropStream(): void {
    const stream = this.#stream;
    this.#stream = undefined;
    this.#inflight = [];
    stream?.cancel();
  }

  #onAnswer(stream: KeepAliveStream, res: ILeaseKeepAliveResponse): void {
    if (stream !== this.#stream || this.#stop.signal.aborted || this.#regranting) return;
    if (res.ID !== this.#leaseId) return;
    this.#rpc.noteRevision(res.header);
    // Answers come in the order of the requests: this one answers the oldest in flight.
    const sentAt = this.#inflight.shift() ?? Date.now();
    if (Number(res.TTL) <= 0) {
      this.#lose(new SharedStructError('SESSION_LOST', `lease ${leaseHex(this.#leaseId)} expired or was revoked on the server`));
      return;
    }
    this.#lastAck = sentAt;
    // The server renewed the lease when this keepalive reached it: after it was sent, maybe long
    // before we read the answer (it may have waited in our socket while the process was frozen).
    this.tracker.touch(sentAt);
    const state = this.tracker.state;
    if (state === 'suspended') this.tracker.transition('reconnected');
  }

  /**
   * The lease is gone (or may be): say `lost`, revoke it in case the server still holds it (so
   * its ephemerals cannot outlive our belief that they are gone), grant a new one and say
   * `reconnected` with the next epoch. Retries with backoff until it works or the session closes.
   */
  #lose(cause: SharedStructError): void {
    if (this.#regranting) return;
    this.#regranting = true;
    this.#dropStream();
    const old = this.#leaseId;
    this.tracker.transition('lost', { cause });
    this.#rpc.leaseRevoke(old, { what: 'etcd leaseRevoke (lost lease)' }).catch(() => undefined);
    const signal = this.#stop.signal;
    retry(
      async () => {
        const askedAt = Date.now();
        const granted = await this.#rpc.leaseGrant(this.#requestedTtl, { what: 'etcd leaseGrant', signal });
        return { granted, askedAt };
      },
      {
        what: 'etcd leaseGrant (new session)',
        policy: REGRANT_BACKOFF,
        signal,
        // Until it works or the session closes, whatever the error: ephemerals stay gone until then.
        retryIf: () => true,
        onRetry: (err, attempt) => {
          // Past a few attempts this is worth a warning (one line with the default logger).
          this.#logger[attempt >= 5 ? 'warn' : 'debug']('sharedstruct etcd: granting a new lease failed, retrying', { attempt, err });
        },
      },
    ).then(
      ({ granted, askedAt }) => {
        if (signal.aborted) {
          this.#rpc.leaseRevoke(granted.ID, { what: 'etcd leaseRevoke' }).catch(() => undefined);
          return;
        }
        this.#leaseId = granted.ID;
        this.#ttlMs = Number(granted.TTL) * 1000;
        this.#lastAck = askedAt;
        this.#regranting = false;
        this.tracker.transition('reconnected', { newSessionId: leaseHex(granted.ID) });
        this.#keepAlive();
      },
      () => undefined, // closed meanwhile
    );
  }
}
