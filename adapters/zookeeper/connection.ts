/**
 * One ZooKeeper session on top of `node-zookeeper-client`: the session manager. It composes
 * what the library lacks, one module each — the server dialer (dialer.ts: TLS, refusals told from
 * silence, fail-fast first connects), the liveness monitor (liveness.ts: the library never
 * notices a server that stopped answering), the frame demultiplexer (demux.ts: replies to
 * requests the library cannot send or parse — sync, create2, a multi with exact versions — are
 * parsed before the library sees the stream) and the watch registry (watch-registry.ts:
 * persistent watches) — and owns what ties them together: the session's state and its signals,
 * a deadline-friendly send (an unsent packet is withdrawn when its caller gives up, and a
 * request's failure is counted once), close and abandon.
 *
 * Every request is a jute record queued on the library's ConnectionManager, so ordering, xids,
 * auth and SetWatches stay the library's; every touch of the library's internals goes through
 * zk-client.ts's {@link LibraryConnection}.
 */
import type { Logger } from '../../lib/backend.js';
import { SharedStructError, abortError } from '../../lib/errors.js';
import type { Counters } from '../../lib/util/counters.js';
import type { TlsParams } from '../../lib/util/tls.js';
import { Dialer } from './dialer.js';
import { FrameDemux, isOwn, type OwnRequest } from './demux.js';
import { CODE_NOT_SENT, OUTCOME_CODES, convertCode, libraryError, notSentError } from './errors.js';
import { LivenessMonitor } from './liveness.js';
import { WatchRegistry, type PersistentHandler, type PersistentMode, type WatchRegistration } from './watch-registry.js';
import { CM_STATES, LibraryConnection, OP, ZkCodes, jute, zookeeper, type JuteRecord, type Packet, type ZkClient, type ZkEvent } from './zk-client.js';

export type { PersistentHandler, PersistentMode, WatchRegistration } from './watch-registry.js';

/** A reply to one of our requests: the error code (0 = OK), the server's zxid, the parsed body. */
export interface Reply<T> {
  readonly err: number;
  /** The zxid the server had processed when it answered (-1 when there was no answer). */
  readonly zxid: bigint;
  /** The parsed body (undefined unless `err` is 0). */
  readonly body: T | undefined;
}

/** What a connection reports to its backend. */
export type ConnectionSignal =
  /** The session is (again) usable on a live socket (first connect and same-session reconnects). */
  | { readonly kind: 'connected' }
  /** The socket closed or the server went silent past a third of the session timeout. */
  | { readonly kind: 'suspended'; readonly cause: SharedStructError }
  /** The session is gone: the server said so, or it was silent for the whole session timeout. */
  | { readonly kind: 'expired'; readonly cause: SharedStructError }
  /** The server refused the credentials. */
  | { readonly kind: 'authFailed'; readonly cause: SharedStructError };

/** Options of {@link ZkConnection}. */
export interface ZkConnectionOptions {
  /** `host:port,host:port` (no chroot: the adapter prefixes paths itself). */
  readonly connectString: string;
  readonly sessionTimeoutMs: number;
  readonly auth?: { readonly username: string; readonly password: string } | undefined;
  /** TLS to the servers' `secureClientPort` (validated material); undefined: plain TCP. */
  readonly tls?: TlsParams | undefined;
  readonly logger: Logger;
  readonly counters: Counters;
  /** Re-attach to an existing session (tests use it to expire a session for real). */
  readonly sessionId?: Buffer;
  readonly sessionPassword?: Buffer;
  /** Called for every liveness ping this connection sends. */
  readonly onHeartbeat?: () => void;
  /**
   * The server answered a request (or ping) sent at `sentAt`: it heard from this session then or
   * later. Only answers count: a notification, or an answer that waited in the socket while the
   * process was frozen, says nothing about the server hearing from us since.
   */
  readonly onContact?: (sentAt: number) => void;
  readonly onSignal: (signal: ConnectionSignal) => void;
}

/** Options of {@link ZkConnection.start}. */
export interface StartOptions {
  readonly signal?: AbortSignal | undefined;
  /**
   * Reject `CONNECTION` as soon as every server refused the connection `FAIL_FAST_ROUNDS` (dialer.ts)
   * times, instead of waiting out the deadline (a first connect: the URL is probably wrong).
   */
  readonly failFast?: boolean | undefined;
}

/** Options of {@link ZkConnection.send}. */
export interface SendOptions {
  readonly signal?: AbortSignal | undefined;
  readonly watch?: WatchRegistration | undefined;
  /**
   * Called with the reply's error code synchronously when the reply frame is read, before any
   * later frame (a notification) is: persistent watches use it to order replies and
   * notifications exactly as the server sent them.
   */
  readonly onReply?: ((err: number, body: unknown) => void) | undefined;
}

/**
 * One ZooKeeper session. Create, `start()`, send requests; `close()` ends the session on the
 * server, `abandon()` drops a session that is already lost without waiting for anything.
 */
export class ZkConnection {
  readonly #client: ZkClient;
  readonly #lib: LibraryConnection;
  readonly #options: ZkConnectionOptions;
  readonly #dialer: Dialer;
  readonly #liveness: LivenessMonitor;
  readonly #watches: WatchRegistry;
  #everConnected = false;
  #suspended = false;
  #dead = false;
  readonly #onCmState: (state: number) => void;
  /** The deadline of the pending start(), if any. */
  #startTimeoutMs: number | undefined;

  constructor(options: ZkConnectionOptions) {
    this.#options = options;
    this.#client = zookeeper.createClient(options.connectString, {
      sessionTimeout: options.sessionTimeoutMs,
      // The library waits up to this long (random) before another round over the servers.
      spinDelay: 100,
      retries: 0,
      ...(options.sessionId ? { sessionId: options.sessionId, sessionPassword: options.sessionPassword } : {}),
    });
    // The library emits 'error'-free state events only; it must not be able to crash us.
    this.#client.on('state', () => {});
    const lib = new LibraryConnection(this.#client);
    this.#lib = lib;
    if (options.auth) {
      this.#client.addAuthInfo('digest', Buffer.from(`${options.auth.username}:${options.auth.password}`));
    }
    this.#watches = new WatchRegistry(lib, this);
    // Closures, not `this`: what the parts may ask of the session stays private to it.
    this.#liveness = new LivenessMonitor(lib, {
      sessionTimeoutMs: () => this.sessionTimeoutMs,
      everConnected: () => this.#everConnected,
      dead: () => this.#dead,
      startTimeoutMs: () => this.#startTimeoutMs,
      logger: options.logger,
      suspend: (message) => this.#suspend(message),
      expire: (cause) => this.#expire(cause),
      dropHandshake: () => this.#dialer.dropHandshake(),
      onHeartbeat: options.onHeartbeat,
    });
    // The library's socket handler holds the demultiplexer (it replaces it).
    new FrameDemux(lib, {
      dead: () => this.#dead,
      logger: options.logger,
      received: () => this.#liveness.received(),
      answered: (sentAt) => this.#answered(sentAt === 'ping' ? this.#liveness.pingSentAt : sentAt),
      notified: (type, path) => this.#watches.dispatch(type, path),
      libraryWatches: (path) => this.#watches.holdsOneShot(path),
      afterData: () => {
        // A slow server that answers again on the same socket ends the suspension without a
        // reconnect (the library's state never left CONNECTED).
        if (this.#suspended && !this.#dead && lib.state === CM_STATES.CONNECTED) {
          this.#suspended = false;
          this.#options.onSignal({ kind: 'connected' });
        }
      },
    });
    this.#dialer = new Dialer(lib, { connectString: options.connectString, tls: options.tls, isDead: () => this.#dead });
    this.#onCmState = (state) => this.#onStateChange(state);
    lib.onState(this.#onCmState);
  }

  /** Session id as 16 hex digits (valid once connected). */
  get sessionId(): string {
    return this.#client.getSessionId().toString('hex');
  }

  /** The negotiated session timeout (the requested one until connected). */
  get sessionTimeoutMs(): number {
    return this.#client.getSessionTimeout();
  }

  /** Id and password of the session: whoever holds them can re-attach to (and close) it. */
  credentials(): { sessionId: Buffer; password: Buffer } {
    return { sessionId: this.#client.getSessionId(), password: this.#client.getSessionPassword() };
  }

  /** True once the session is lost or closed: no request will be sent on it any more. */
  get dead(): boolean {
    return this.#dead;
  }

  /** True while connected to a server that answers. */
  get live(): boolean {
    return !this.#dead && !this.#suspended && this.#lib.state === CM_STATES.CONNECTED;
  }

  /**
   * Connects and resolves once the server granted a session; rejects `CONNECTION` (or
   * `UNAUTHORIZED`) when that does not happen within `timeoutMs` — with `failFast`, as soon as
   * every server refused the connection — and then the connection is dead.
   */
  start(timeoutMs: number, options: StartOptions = {}): Promise<void> {
    const { signal, failFast = false } = options;
    this.#startTimeoutMs = timeoutMs;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: SharedStructError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#dialer.onAllRefused = undefined;
        this.#lib.offState(onState);
        signal?.removeEventListener('abort', onAbort);
        if (err) {
          this.abandon();
          reject(err);
        } else {
          resolve();
        }
      };
      const onState = (state: number): void => {
        if (state === CM_STATES.CONNECTED) finish();
        else if (state === CM_STATES.AUTHENTICATION_FAILED)
          finish(convertCode(ZkCodes.AUTH_FAILED, `connecting to ${this.#options.connectString}`));
        else if (state === CM_STATES.SESSION_EXPIRED)
          finish(convertCode(ZkCodes.SESSION_EXPIRED, `connecting to ${this.#options.connectString}`));
      };
      const onAbort = (): void => finish(new SharedStructError('ABORTED', 'connect was aborted', { cause: signal?.reason }));
      const timer = setTimeout(() => finish(this.#dialer.timeoutError(timeoutMs)), timeoutMs);
      timer.unref();
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      if (failFast) this.#dialer.onAllRefused = (cause) => finish(this.#dialer.refusedError(cause));
      this.#lib.onState(onState);
      this.#liveness.connecting();
      this.#client.connect();
      this.#liveness.start();
    });
  }

  /**
   * Queues one request and resolves its reply (errors included, as codes: the caller decides
   * which are outcomes). `op` is the name counted in the request counters. When `signal` fires
   * before the packet left, the packet is withdrawn, so a request that timed out unsent is
   * never applied later. Rejects `SESSION_LOST` when the session is gone.
   */
  send<T>(
    op: string,
    type: number,
    payload: JuteRecord | null,
    parse: ((frame: Buffer, offset: number) => T) | undefined,
    options: SendOptions = {},
  ): Promise<Reply<T>> {
    const { signal, watch, onReply } = options;
    return new Promise<Reply<T>>((resolve, reject) => {
      if (this.#dead) {
        reject(notSentError(op));
        return;
      }
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      const header = new jute.protocol.RequestHeader();
      header.type = type;
      const request: OwnRequest = Object.assign(new jute.Request(header, payload), { parse, queuedAt: Date.now() });
      const onAbort = (): void => {
        this.#lib.withdraw(request);
        const err = abortError(signal!);
        this.#options.counters.failed(op, err);
        reject(err);
      };
      const callback: Packet['callback'] = (error, response) => {
        signal?.removeEventListener('abort', onAbort);
        // Synchronously, before any other frame is read: the notification of the watch this
        // reply armed may be the very next frame, and it finds only watchers registered by then.
        // Not for a caller that gave up (an aborted read, a closed watch): the library would keep
        // the watcher and re-send it in every SetWatches; the server's watch fires once, unheard.
        if (watch && !signal?.aborted) this.#watches.registerOneShot(watch, error ? error.code : 0);
        if (onReply && error?.code !== CODE_NOT_SENT) onReply(error ? error.code : 0, error ? undefined : (response as unknown as { payload: unknown }).payload);
        if (error?.code === CODE_NOT_SENT) {
          const err = notSentError(op);
          this.#options.counters.failed(op, err);
          reject(err);
          return;
        }
        // A server error code that is an answer (no node, exists, bad version, ...) is the
        // caller's outcome; the rest are failures of the request. Once: not after an abort.
        if (error && !OUTCOME_CODES.has(error.code) && !signal?.aborted) this.#options.counters.failed(op, convertCode(error.code, op));
        if (error) {
          // Library-side failures (connection loss, expired, closing) and server error codes.
          resolve({ err: error.code, zxid: response ? zxidOf(response.header.zxid) : -1n, body: undefined });
          return;
        }
        const r = response as unknown as { header: { zxid: Buffer }; payload: T | undefined };
        resolve({ err: 0, zxid: zxidOf(r.header.zxid), body: r.payload });
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#options.counters.count(op);
      this.#lib.queue(request, callback);
    });
  }

  /**
   * Ends the session on the server (ephemerals vanish at once) and resolves once it answered or
   * `timeoutMs` passed; the socket is gone either way. Idempotent.
   */
  async close(timeoutMs: number): Promise<void> {
    if (this.#dead) return;
    const lib = this.#lib;
    const connected = lib.state === CM_STATES.CONNECTED && !this.#suspended;
    if (connected) {
      const header = new jute.protocol.RequestHeader();
      header.type = OP.closeSession;
      const request: OwnRequest = Object.assign(new jute.Request(header, null), { parse: undefined, queuedAt: Date.now() });
      this.#options.counters.count('closeSession');
      const answered = new Promise<void>((resolve) => {
        // CLOSING makes the library refuse other requests and not reconnect when the server
        // drops the socket after answering.
        lib.setState(CM_STATES.CLOSING);
        lib.queue(request, () => resolve());
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        answered,
        new Promise<void>((r) => {
          timer = setTimeout(r, timeoutMs);
          timer.unref();
        }),
      ]);
      clearTimeout(timer);
    }
    this.abandon();
  }

  /** Drops the session without a goodbye: the client stops, pending requests fail `SESSION_LOST`. */
  abandon(): void {
    if (this.#dead) return;
    this.#dead = true;
    this.#liveness.stop();
    const lib = this.#lib;
    lib.offState(this.#onCmState);
    // CLOSING (not CLOSED) is the state in which the library's socket-close handler does not
    // reconnect; then the socket goes.
    if (lib.state !== CM_STATES.CLOSED) lib.setState(CM_STATES.CLOSING);
    // Never written: the caller may send them again on the next session. Written: their
    // outcome is unknown, so they fail SESSION_LOST.
    const queued = lib.takeUnsent();
    for (const packet of queued) {
      if (isOwn(packet.request)) packet.callback(libraryError(CODE_NOT_SENT, 'NOT_SENT', 'not sent'));
      else packet.callback(zookeeper.Exception.create(ZkCodes.SESSION_EXPIRED));
    }
    const pending = lib.takeSent();
    for (const packet of pending) packet.callback(zookeeper.Exception.create(ZkCodes.SESSION_EXPIRED));
    lib.socket?.destroy();
  }

  /**
   * Leaves a persistent watch on `path` (every later change of the node notifies `handler`, with
   * no re-arming) and resolves true once the server set it; a request on this session sent
   * after it resolves sees every change after it. Resolves false when the server does not know
   * `addWatch` (ZooKeeper < 3.6), or when the path already holds a watch of the other mode (one
   * server watch per path and session: the caller falls back to one-shot watches). Handlers on
   * one path share one server watch.
   */
  addPersistentWatch(path: string, handler: PersistentHandler, signal?: AbortSignal, mode: PersistentMode = 'node'): Promise<boolean> {
    return this.#watches.add(path, handler, signal, mode);
  }

  /** Removes `handler`; the last one of a path removes the server's watch (best effort). */
  removePersistentWatch(path: string, handler: PersistentHandler): void {
    this.#watches.remove(path, handler);
  }

  /**
   * Forgets a watcher on our side, so the library stops re-sending it in SetWatches. The
   * server keeps its one-shot watch until it fires once; that notification finds nobody.
   */
  unregister(path: string, watcher: (event: ZkEvent) => void): void {
    this.#watches.unregisterOneShot(path, watcher);
  }

  // ---- internals ----

  #onStateChange(state: number): void {
    if (this.#dead) return;
    switch (state) {
      case CM_STATES.CONNECTED: {
        const reconnect = this.#everConnected;
        this.#everConnected = true;
        this.#dialer.sessionGranted();
        this.#liveness.connected();
        this.#suspended = false;
        if (reconnect) this.#watches.rearm();
        this.#options.onSignal({ kind: 'connected' });
        break;
      }
      case CM_STATES.DISCONNECTED:
        this.#liveness.connecting();
        if (this.#everConnected) this.#suspend(`the connection to ZooKeeper (${this.#options.connectString}) closed`, this.#dialer.socketError);
        break;
      case CM_STATES.CONNECTING:
        this.#liveness.connecting();
        break;
      case CM_STATES.SESSION_EXPIRED:
        this.#expire(convertCode(ZkCodes.SESSION_EXPIRED, 'reconnecting'));
        break;
      case CM_STATES.AUTHENTICATION_FAILED:
        this.#options.onSignal({ kind: 'authFailed', cause: convertCode(ZkCodes.AUTH_FAILED, 'authenticating') });
        break;
      default:
        break;
    }
  }

  #suspend(message: string, cause?: Error): void {
    if (this.#suspended || this.#dead) return;
    this.#suspended = true;
    this.#options.onSignal({ kind: 'suspended', cause: new SharedStructError('CONNECTION', message, cause ? { cause } : {}) });
  }

  #expire(cause: SharedStructError): void {
    if (this.#dead) return;
    this.abandon();
    this.#options.onSignal({ kind: 'expired', cause });
  }

  /** The server answered something we sent at `sentAt`. */
  #answered(sentAt: number): void {
    this.#liveness.answered(sentAt);
    if (!this.#dead && sentAt > 0) this.#options.onContact?.(sentAt);
  }
}

function zxidOf(buffer: Buffer | undefined): bigint {
  return buffer && buffer.length === 8 ? buffer.readBigInt64BE(0) : -1n;
}
