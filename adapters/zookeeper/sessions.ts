/**
 * The backend's sessions over time: the current one, and when it is lost, new ones until one
 * connects (a new epoch), with the {@link SessionTracker} states the core sees. Requests wait
 * here for a session ({@link SessionKeeper.current}), watch workers for a live one
 * ({@link SessionKeeper.untilLive}). One session's own life (socket, liveness, requests) is
 * connection.ts's; this module only replaces sessions.
 */
import type { AdapterOptions } from '../../lib/backend.js';
import { SharedStructError, abortError } from '../../lib/errors.js';
import { exponentialBackoff, retry, type BackoffPolicy } from '../../lib/retry.js';
import type { Counters } from '../../lib/util/counters.js';
import { SessionTracker } from '../../lib/util/session.js';
import type { TlsParams } from '../../lib/util/tls.js';
import { ZkConnection, type ConnectionSignal } from './connection.js';
import { describeError } from './errors.js';

/** Between attempts at a new session after one was lost: 100 ms, doubling, at most 1 s. */
const NEW_SESSION_BACKOFF: BackoffPolicy = exponentialBackoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
/** Options of {@link SessionKeeper.open}. */
export interface KeeperOptions {
  /** `host:port,host:port`. */
  readonly connectString: string;
  readonly adapter: AdapterOptions;
  /** TLS material for every connection (undefined: plain TCP). */
  readonly tls: TlsParams | undefined;
  readonly counters: Counters;
  /** Fires when the backend closes: stops the reconnect loop and every wait. */
  readonly closed: AbortSignal;
}

/** Who is told when a session is lost and when a new one is up (the backend's watches). */
export interface SessionEvents {
  /** The session was lost (its server watches are gone). */
  lost(): void;
  /** A new session is up. */
  renewed(): void;
}

/** The callbacks a connection reports to. */
interface ConnectionHooks {
  readonly onContact: (sentAt: number) => void;
  readonly onSignal: (signal: ConnectionSignal) => void;
}

function newConnection(options: KeeperOptions, heartbeats: { count: number }, hooks: ConnectionHooks): ZkConnection {
  return new ZkConnection({
    connectString: options.connectString,
    sessionTimeoutMs: options.adapter.sessionTtlMs,
    auth: options.adapter.auth,
    tls: options.tls,
    logger: options.adapter.logger,
    counters: options.counters,
    onHeartbeat: () => (heartbeats.count += 1),
    ...hooks,
  });
}

/** Holds one session at a time and replaces a lost one. */
export class SessionKeeper {
  /** The session states the core sees (`connected`, `suspended`, `lost`, `reconnected`, `closed`). */
  readonly session: SessionTracker;
  readonly #options: KeeperOptions;
  readonly #closed: AbortSignal;
  readonly #events: SessionEvents;
  readonly #heartbeats: { count: number };
  #conn: ZkConnection;
  /** Resolves to the next session while the current one is lost. */
  #nextConn: Promise<ZkConnection> | undefined;
  /** Listeners of "a session is usable again" (watch workers waiting out a disconnect). */
  readonly #liveWaiters = new Set<() => void>();

  private constructor(conn: ZkConnection, heartbeats: { count: number }, options: KeeperOptions, events: SessionEvents) {
    this.#conn = conn;
    this.#heartbeats = heartbeats;
    this.#options = options;
    this.#closed = options.closed;
    this.#events = events;
    this.session = new SessionTracker(conn.sessionId, conn.sessionTimeoutMs);
  }

  /** Connects the first session (within `connectTimeoutMs`, failing fast when every server refuses). */
  static async open(options: KeeperOptions, events: SessionEvents): Promise<SessionKeeper> {
    // Signals of the first connection that arrive before the keeper exists are moot: the
    // keeper starts from the connection's state when it is built.
    const holder: { keeper?: SessionKeeper } = {};
    const heartbeats = { count: 0 };
    const conn = newConnection(options, heartbeats, {
      onContact: (sentAt) => {
        if (holder.keeper) holder.keeper.#touch(conn, sentAt);
      },
      onSignal: (signal) => {
        if (holder.keeper) holder.keeper.#onSignal(conn, signal);
      },
    });
    await conn.start(options.adapter.connectTimeoutMs, { failFast: true });
    holder.keeper = new SessionKeeper(conn, heartbeats, options, events);
    return holder.keeper;
  }

  /** The current session (possibly dead while its replacement connects). */
  get conn(): ZkConnection {
    return this.#conn;
  }

  /** Liveness pings sent so far, over all sessions. */
  get heartbeats(): number {
    return this.#heartbeats.count;
  }

  /** The session to send on when it is usable now (no wait): the fast path of a request. */
  get usable(): ZkConnection | undefined {
    return this.#closed.aborted || this.#conn.dead ? undefined : this.#conn;
  }

  /** The session to send on; while a lost session is being replaced, waits for the new one. */
  async current(signal: AbortSignal): Promise<ZkConnection> {
    for (;;) {
      if (this.#closed.aborted) throw new SharedStructError('CLOSED', 'the ZooKeeper backend is closed');
      if (signal.aborted) throw abortError(signal);
      if (!this.#conn.dead) return this.#conn;
      const next = this.#nextConn;
      if (!next) throw new SharedStructError('SESSION_LOST', 'the ZooKeeper session is lost');
      // The listener goes when the wait ends: a watch passes its own signal, which lives as long
      // as the watch, and waits here once per session replacement.
      let onAbort: (() => void) | undefined;
      try {
        await Promise.race([
          next,
          new Promise<never>((_, reject) => {
            onAbort = () => reject(abortError(signal));
            signal.addEventListener('abort', onAbort, { once: true });
          }),
        ]);
      } finally {
        signal.removeEventListener('abort', onAbort!);
      }
    }
  }

  /** Resolves when a session is live again (or at once if it is). */
  untilLive(signal: AbortSignal): Promise<void> {
    if (this.#conn.live) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        this.#liveWaiters.delete(done);
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        this.#liveWaiters.delete(done);
        reject(abortError(signal));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.#liveWaiters.add(done);
    });
  }

  /** Wakes every {@link untilLive} waiter (a session is live, or the backend closed). */
  notifyLive(): void {
    for (const waiter of [...this.#liveWaiters]) waiter();
  }

  /**
   * The server of the current session answered a request sent at `sentAt`, so it heard from us
   * then or later: locks measure their safety from this.
   */
  #touch(conn: ZkConnection, sentAt: number): void {
    if (conn === this.#conn) this.session.touch(sentAt);
  }

  #onSignal(conn: ZkConnection, signal: ConnectionSignal): void {
    if (conn !== this.#conn || this.#closed.aborted) return;
    const state = this.session.state;
    switch (signal.kind) {
      case 'connected':
        if (state === 'suspended') this.session.transition('reconnected');
        this.notifyLive();
        break;
      case 'suspended':
        if (state === 'connected' || state === 'reconnected') this.session.transition('suspended', { cause: signal.cause });
        break;
      case 'authFailed':
        this.#options.adapter.logger.error(`zookeeper: the server refused the credentials of the new connection; check the auth option: ${describeError(signal.cause)}`);
        this.#loseSession(signal.cause);
        break;
      case 'expired':
        this.#loseSession(signal.cause);
        break;
    }
  }

  /** The session is gone: `lost`, then new sessions until one connects (`reconnected`, epoch + 1). */
  #loseSession(cause: SharedStructError): void {
    if (this.#nextConn) return;
    this.#conn.abandon();
    if (this.session.state === 'connected' || this.session.state === 'reconnected') {
      this.session.transition('suspended', { cause });
    }
    this.session.transition('lost', { cause });
    this.#events.lost();
    const next = this.#newSession();
    this.#nextConn = next;
    next.then(
      (conn) => {
        this.#conn = conn;
        this.#nextConn = undefined;
        this.session.transition('reconnected', { newSessionId: conn.sessionId });
        this.#options.adapter.logger.info('zookeeper: new session', { sessionId: conn.sessionId, epoch: this.session.epoch });
        this.#events.renewed();
        this.notifyLive();
      },
      () => {
        // Only a close ends the loop; close() has already taken care of everything.
        this.#nextConn = undefined;
      },
    );
  }

  /** Tries new sessions until one connects or the backend closes. Bounded per attempt. */
  #newSession(): Promise<ZkConnection> {
    const closed = this.#closed;
    return retry(
      async () => {
        const conn: ZkConnection = newConnection(this.#options, this.#heartbeats, {
          onContact: (sentAt) => this.#touch(conn, sentAt),
          onSignal: (signal) => this.#onSignal(conn, signal),
        });
        await conn.start(Math.max(1000, this.#options.adapter.connectTimeoutMs), { signal: closed });
        if (closed.aborted) {
          conn.abandon();
          throw abortError(closed);
        }
        return conn;
      },
      {
        what: 'a new ZooKeeper session',
        policy: NEW_SESSION_BACKOFF,
        // Every failure is worth another attempt: only close() ends the loop (the signal).
        signal: closed,
        retryIf: () => true,
        onRetry: (err, attempt, delayMs) => {
          this.#options.adapter.logger.warn(`zookeeper: no new session yet (attempt ${attempt}), retrying in ${delayMs} ms: ${describeError(err)}`);
          this.#options.adapter.logger.debug('zookeeper: new session failed', { err });
        },
      },
    );
  }

  /** Ends the current session (bounded by `timeoutMs`) after the backend closed: `closed`. */
  async close(timeoutMs: number): Promise<void> {
    this.notifyLive();
    await this.#conn.close(timeoutMs);
    this.session.transition('closed');
  }
}
