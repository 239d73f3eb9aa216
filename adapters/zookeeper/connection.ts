/**
 * One ZooKeeper session on top of `node-zookeeper-client`, with what the library lacks:
 * requests it cannot send or parse (sync, create2, a multi with exact versions), a
 * deadline-friendly send (an unsent packet is withdrawn when its caller gives up), a liveness
 * monitor (the library never notices a server that stopped answering), a first connect that
 * tells a refused connection from a silent server (the library retries both silently), and
 * sockets and timers that never hold the event loop by themselves.
 *
 * How: every request is a jute record queued on the library's ConnectionManager, so ordering,
 * xids, auth and SetWatches stay the library's; the socket's data handler is wrapped so that
 * replies to our requests are parsed here, frame by frame, before the library sees the stream.
 */
import type { Logger } from '../../lib/backend.js';
import type { EventEmitter } from 'node:events';
import { SharedStructError, abortError } from '../../lib/errors.js';
import type { Counters } from '../../lib/util/counters.js';
import {
  CM_STATES,
  OP,
  ZkCodes,
  jute,
  zookeeper,
  type ConnectionManager,
  type JuteRecord,
  type JuteRequest,
  type Packet,
  type ZkClient,
  type ZkEvent,
  type ZkServer,
} from './zk-client.js';
import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { isTlsError, tlsHint, tlsReason, type TlsParams, type TlsServerTerms } from '../../lib/util/tls.js';
import { addWatchRequest, parseWatcherEvent, removeWatchesRequest } from './wire.js';
import { CODE_NOT_SENT, OUTCOME_CODES, convertCode, describeError, libraryError, notSentError } from './errors.js';

/** Offset of a reply's body in a frame: length(4) + xid(4) + zxid(8) + err(4). */
const BODY_OFFSET = 20;

/** A reply to one of our requests: the error code (0 = OK), the server's zxid, the parsed body. */
export interface Reply<T> {
  readonly err: number;
  /** The zxid the server had processed when it answered (-1 when there was no answer). */
  readonly zxid: bigint;
  /** The parsed body (undefined unless `err` is 0). */
  readonly body: T | undefined;
}

/**
 * How many times every server must refuse the connection before the first connect gives up
 * (well before its deadline): twice, so one refusal of a server that is just binding its port
 * is not the end, and about 0.1 s (one spin delay) at most between the two rounds.
 */
export const FAIL_FAST_ROUNDS = 2;

/**
 * Socket errors that mean "nothing listens there" (or the name does not exist): no amount of
 * waiting within one connect deadline helps. A server that accepts and then stays silent is
 * another matter (a hung or frozen server, a partition): that one is given the whole deadline.
 */
const REFUSALS: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

function isRefusal(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined && REFUSALS.has(code)) return true;
  // Node tries each address of a name in turn and reports them together.
  return err instanceof AggregateError && err.errors.length > 0 && err.errors.every((e) => e instanceof Error && isRefusal(e));
}

function errorCode(err: Error): string {
  return (err as NodeJS.ErrnoException).code ?? err.message;
}

/** What the sockets to one server did since the last session handshake. */
interface ServerAttempts {
  /** Sockets refused before TCP connected (see {@link REFUSALS}). */
  refused: number;
  /** A socket connected at the TCP level (the server accepted). */
  accepted: boolean;
  /** An accepted socket closed before a session was granted. */
  hungUp: boolean;
  /** The latest socket error. */
  error: Error | undefined;
  /** TLS handshakes that failed (a certificate refused on either side, or no TLS spoken there). */
  tlsFailed: number;
}

/** How ZooKeeper is set up for TLS, for the hints. */
const ZK_TLS: TlsServerTerms = {
  serving: "a ZooKeeper server's secureClientPort (3.5+, serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory)",
  trustedCa: "the server's ssl.trustStore",
};

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
   * Reject `CONNECTION` as soon as every server refused the connection {@link FAIL_FAST_ROUNDS}
   * times, instead of waiting out the deadline (a first connect: the URL is probably wrong).
   */
  readonly failFast?: boolean | undefined;
}

/**
 * The watch a request leaves on the server (getData: data; exists: data, or existence when the
 * node is missing; getChildren: child), registered with the library when the reply arrives.
 */
export interface WatchRegistration {
  readonly kind: 'data' | 'exists' | 'child';
  readonly path: string;
  readonly watcher: (event: ZkEvent) => void;
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
 * Called for each notification of a persistent watch with the event type (1 created, 2 deleted,
 * 3 data changed, 4 children changed) and the node's path, or with 0 after a reconnect re-added
 * the watch: changes while it was gone were not notified, so the owner must read again.
 */
export type PersistentHandler = (type: number, path: string) => void;

/**
 * What a persistent watch covers: `node` (`AddWatchMode.PERSISTENT`: the node's data and
 * existence, and "children changed" without names) or `children` (`PERSISTENT_RECURSIVE`: the
 * node and its direct children, each change with the child's path, so a folder's joins and
 * leaves cost no read; deeper descendants notify the server's watch too and are ignored here).
 */
export type PersistentMode = 'node' | 'children';

/** The server's `AddWatchMode` of each mode, and the `WatcherType` that removes it. */
const ADD_WATCH_MODE: Record<PersistentMode, number> = { node: 0, children: 1 };
const WATCHER_TYPE: Record<PersistentMode, number> = { node: 4, children: 5 };

/** A request we queue: marks the packet as ours and says how to parse its body. */
interface OwnRequest extends JuteRequest {
  readonly parse: ((frame: Buffer, offset: number) => unknown) | undefined;
  /** When it was handed to the library (it goes on the wire then, or later after a reconnect). */
  readonly queuedAt: number;
}

/**
 * One ZooKeeper session. Create, `start()`, send requests; `close()` ends the session on the
 * server, `abandon()` drops a session that is already lost without waiting for anything.
 */
export class ZkConnection {
  readonly #client: ZkClient;
  readonly #cm: ConnectionManager;
  readonly #options: ZkConnectionOptions;
  readonly #originalOnSocketData: (buffer: Buffer) => void;
  #inbound: Buffer = Buffer.alloc(0);
  #lastReceivedAt = Date.now();
  /** The send time of the latest request the server answered (or of the session's handshake). */
  #answeredAt = Date.now();
  #pingSentAt = 0;
  #connectingSince = Date.now();
  #everConnected = false;
  #suspended = false;
  #dead = false;
  #ticker: NodeJS.Timeout | undefined;
  readonly #onCmState: (state: number) => void;
  /**
   * Persistent watches (ZooKeeper >= 3.6 `addWatch`) on this session: path → handlers. The
   * library knows nothing of them: its SetWatches after a reconnect cannot carry them, so
   * {@link #rearmPersistent} adds them again.
   */
  readonly #persistent = new Map<string, { readonly mode: PersistentMode; readonly handlers: Set<PersistentHandler> }>();
  /** Per server (`host:port`), what its sockets did since the last session was granted. */
  readonly #attempts = new Map<string, ServerAttempts>();
  /** Bumped when a session is granted: sockets of earlier generations no longer report. */
  #generation = 0;
  /** The error the current socket failed with, if any (the cause of a `suspended`). */
  #socketError: Error | undefined;
  /** The deadline of the pending start(), if any. */
  #startTimeoutMs: number | undefined;
  /** The socket the handshake timeout dropped (its close is ours, not the server's). */
  #dropped: Socket | undefined;
  /** Set while a fail-fast `start()` waits: told when every server has refused. */
  #onAllRefused: ((cause: Error) => void) | undefined;

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
    const cm = this.#client.connectionManager;
    this.#cm = cm;
    if (options.auth) {
      this.#client.addAuthInfo('digest', Buffer.from(`${options.auth.username}:${options.auth.password}`));
    }
    // The socket's 'data' listener is bound at each connect() from the instance property, so
    // replacing it here wraps every connection this client makes.
    this.#originalOnSocketData = cm.onSocketData.bind(cm);
    cm.onSocketData = (buffer: Buffer) => this.#onSocketData(buffer);
    // Every connect and reconnect of the library picks its server here.
    cm.findNextServer = (callback) => this.#findNextServer(callback);
    // The library opens plain TCP sockets only: under TLS, ours opens a TLS socket instead, bound
    // to the library's own handlers as its connect() binds them, the session handshake starting
    // once TLS is up (1.1.3's ConnectionManager.connect, with tls.connect for net.connect).
    const tls = options.tls;
    if (tls) cm.connect = () => this.#connectTls(tls);
    this.#onCmState = (state) => this.#onStateChange(state);
    cm.on('state', this.#onCmState);
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
    return !this.#dead && !this.#suspended && this.#cm.state === CM_STATES.CONNECTED;
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
        this.#onAllRefused = undefined;
        this.#cm.removeListener('state', onState);
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
      const timer = setTimeout(() => finish(this.#timeoutError(timeoutMs)), timeoutMs);
      timer.unref();
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      if (failFast) this.#onAllRefused = (cause) => finish(this.#refusedError(cause));
      this.#cm.on('state', onState);
      this.#connectingSince = Date.now();
      this.#client.connect();
      this.#startTicker();
    });
  }

  /** Every server refused the connection: most likely nothing listens there (a wrong URL, a server down). */
  #refusedError(cause: Error): SharedStructError {
    if (this.#options.tls && (isTlsError(cause) || (cause as NodeJS.ErrnoException).code === 'ECONNRESET')) {
      const reason = tlsReason(cause);
      const servers = this.#cm.servers.map(serverKey).join(', ');
      return new SharedStructError('CONNECTION', `the TLS handshake with ZooKeeper at ${servers} failed (${reason}), ${FAIL_FAST_ROUNDS} attempts each. ${tlsHint(reason, ZK_TLS)}`, { cause });
    }
    const servers = this.#cm.servers.map((server) => `${serverKey(server)} (${this.#attemptsOf(server).error ? errorCode(this.#attemptsOf(server).error!) : 'refused'})`);
    const hosts = this.#options.connectString;
    const what =
      servers.length === 1
        ? `ZooKeeper refused the connection at ${servers[0]!}, ${FAIL_FAST_ROUNDS} attempts`
        : `every ZooKeeper server refused the connection: ${servers.join(', ')}, ${FAIL_FAST_ROUNDS} attempts each`;
    return new SharedStructError('CONNECTION', `${what}. Is ZooKeeper running at ${hosts}? Check the URL's hosts and ports.`, { cause });
  }

  /** No session within the deadline: says what each server did, so a hung server is told from a refusing one. */
  #timeoutError(timeoutMs: number): SharedStructError {
    const parts = this.#cm.servers.map((server) => {
      const a = this.#attemptsOf(server);
      const key = serverKey(server);
      if (a.hungUp) return `${key} accepted the connection and closed it without a session (a member without quorum, or too many connections?)`;
      if (a.accepted) return `${key} accepted the connection but never answered the session handshake (a hung or frozen server, or a network that drops packets?)`;
      if (a.error) return `${key} failed: ${errorCode(a.error)}`;
      return `${key} was not reached`;
    });
    let cause: Error | undefined;
    for (const server of this.#cm.servers) cause = this.#attemptsOf(server).error ?? cause;
    return new SharedStructError(
      'CONNECTION',
      `no ZooKeeper session within ${timeoutMs} ms: ${parts.join('; ')}. Check that ZooKeeper at ${this.#options.connectString} is up and answers (\`echo srvr | nc HOST PORT\`), or raise connectTimeoutMs.`,
      cause === undefined ? {} : { cause },
    );
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
        const queue = this.#cm.packetQueue.queue;
        const index = queue.findIndex((p) => p.request === request);
        if (index >= 0) queue.splice(index, 1);
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
        if (watch && !signal?.aborted) this.#registerWatch(watch, error ? error.code : 0);
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
      this.#cm.queue(request, callback);
    });
  }

  /**
   * Ends the session on the server (ephemerals vanish at once) and resolves once it answered or
   * `timeoutMs` passed; the socket is gone either way. Idempotent.
   */
  async close(timeoutMs: number): Promise<void> {
    if (this.#dead) return;
    const cm = this.#cm;
    const connected = cm.state === CM_STATES.CONNECTED && !this.#suspended;
    if (connected) {
      const header = new jute.protocol.RequestHeader();
      header.type = OP.closeSession;
      const request: OwnRequest = Object.assign(new jute.Request(header, null), { parse: undefined, queuedAt: Date.now() });
      this.#options.counters.count('closeSession');
      const answered = new Promise<void>((resolve) => {
        // CLOSING makes the library refuse other requests and not reconnect when the server
        // drops the socket after answering.
        cm.setState(CM_STATES.CLOSING);
        cm.queue(request, () => resolve());
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
    clearInterval(this.#ticker);
    this.#cm.removeListener('state', this.#onCmState);
    const cm = this.#cm;
    // CLOSING (not CLOSED) is the state in which the library's socket-close handler does not
    // reconnect; then the socket goes.
    if (cm.state !== CM_STATES.CLOSED) cm.setState(CM_STATES.CLOSING);
    // Never written: the caller may send them again on the next session. Written: their
    // outcome is unknown, so they fail SESSION_LOST.
    const queued = cm.packetQueue.queue.splice(0);
    for (const packet of queued) {
      if ('parse' in packet.request) packet.callback(libraryError(CODE_NOT_SENT, 'NOT_SENT', 'not sent'));
      else packet.callback(zookeeper.Exception.create(ZkCodes.SESSION_EXPIRED));
    }
    const pending = cm.pendingQueue.splice(0);
    for (const packet of pending) packet.callback(zookeeper.Exception.create(ZkCodes.SESSION_EXPIRED));
    cm.socket?.destroy();
  }

  /** Registers the watcher the server left for a reply, as the library's own calls would. */
  #registerWatch(watch: WatchRegistration, err: number): void {
    const cm = this.#cm;
    if (watch.kind === 'child') {
      if (err === 0) cm.registerChildWatcher(watch.path, watch.watcher);
    } else if (err === 0) {
      cm.registerDataWatcher(watch.path, watch.watcher);
    } else if (watch.kind === 'exists' && err === ZkCodes.NO_NODE) {
      cm.registerExistenceWatcher(watch.path, watch.watcher);
    }
  }

  /**
   * Leaves a persistent watch on `path` (every later change of the node notifies `handler`, with
   * no re-arming) and resolves true once the server set it; a request on this session sent
   * after it resolves sees every change after it. Resolves false when the server does not know
   * `addWatch` (ZooKeeper < 3.6), or when the path already holds a watch of the other mode (one
   * server watch per path and session: the caller falls back to one-shot watches). Handlers on
   * one path share one server watch.
   */
  async addPersistentWatch(path: string, handler: PersistentHandler, signal?: AbortSignal, mode: PersistentMode = 'node'): Promise<boolean> {
    const existing = this.#persistent.get(path);
    if (existing && existing.handlers.size > 0) {
      if (existing.mode !== mode) return false;
      // The server watch is set, or its addWatch is queued ahead of anything sent from now on.
      existing.handlers.add(handler);
      return true;
    }
    const entry = { mode, handlers: new Set([handler]) };
    this.#persistent.set(path, entry);
    const reply = await this.send('addWatch', OP.addWatch, addWatchRequest(path, ADD_WATCH_MODE[mode]), undefined, { signal });
    if (reply.err === 0) return true;
    entry.handlers.delete(handler);
    if (entry.handlers.size === 0 && this.#persistent.get(path) === entry) this.#persistent.delete(path);
    if (reply.err === ZkCodes.UNIMPLEMENTED) return false;
    throw convertCode(reply.err, `addWatch ${path}`);
  }

  /** Removes `handler`; the last one of a path removes the server's watch (best effort). */
  removePersistentWatch(path: string, handler: PersistentHandler): void {
    const entry = this.#persistent.get(path);
    if (!entry?.handlers.delete(handler) || entry.handlers.size > 0) return;
    this.#persistent.delete(path);
    if (this.live) {
      this.send('removeWatches', OP.removeWatches, removeWatchesRequest(path, WATCHER_TYPE[entry.mode]), undefined).catch(() => undefined);
    }
  }

  /** After a reconnect on the same session: the server forgot the persistent watches; add them again. */
  #rearmPersistent(): void {
    for (const [path, { mode, handlers }] of this.#persistent) {
      void this.send('addWatch', OP.addWatch, addWatchRequest(path, ADD_WATCH_MODE[mode]), undefined).then(
        (reply) => {
          // Ok: read again. Failed: the socket went again, and the next reconnect comes back here.
          if (reply.err === 0) for (const h of [...handlers]) h(0, path);
        },
        () => undefined,
      );
    }
  }

  /** The handlers a notification of `path` is for: its own watch, and its parent's `children` watch. */
  #persistentHandlers(path: string): PersistentHandler[] {
    const own = this.#persistent.get(path);
    const cut = path.lastIndexOf('/');
    const parent = cut > 0 ? this.#persistent.get(path.slice(0, cut)) : cut === 0 && path.length > 1 ? this.#persistent.get('/') : undefined;
    const handlers = own ? [...own.handlers] : [];
    if (parent?.mode === 'children') handlers.push(...parent.handlers);
    return handlers;
  }

  /**
   * Forgets a watcher on our side, so the library stops re-sending it in SetWatches. The
   * server keeps its one-shot watch until it fires once; that notification finds nobody.
   */
  unregister(path: string, watcher: (event: ZkEvent) => void): void {
    const manager = this.#watcherManager();
    for (const kind of ['dataWatchers', 'childWatchers', 'existenceWatchers']) {
      manager[kind]?.[path]?.removeListener('notification', watcher);
    }
  }

  #watcherManager(): Record<string, Record<string, EventEmitter>> {
    return (this.#cm as unknown as { watcherManager: Record<string, Record<string, EventEmitter>> }).watcherManager;
  }

  /** Whether the library holds a one-shot watcher of `path` (its emit deletes them as they fire). */
  #libraryWatches(path: string): boolean {
    const m = this.#watcherManager();
    return m.dataWatchers?.[path] !== undefined || m.existenceWatchers?.[path] !== undefined || m.childWatchers?.[path] !== undefined;
  }

  // ---- internals ----

  /**
   * The library's server rotation — each server once, in the shuffled order of the connect
   * string, then a random pause of up to `spinDelay` before the next round — with what it
   * lacks: an abandoned client opens no more sockets; neither the socket nor the library's TCP
   * connect timer holds the event loop (an idle client lets the process exit; a call that is
   * pending holds it, lib/util/keepalive.ts); and every socket is watched for the error that
   * tells a refused connection from a silent server.
   */
  #findNextServer(callback: (server: ZkServer) => void): void {
    const cm = this.#cm;
    const open = (): void => {
      if (this.#dead) return;
      cm.nextServerIndex %= cm.servers.length;
      const server = cm.servers[cm.nextServerIndex]!;
      cm.nextServerIndex += 1;
      // The library's callback creates the socket and its connect timer, synchronously.
      callback(server);
      const socket = cm.socket;
      socket?.unref();
      cm.connectTimeoutHandler?.unref();
      if (socket) this.#watchSocket(socket, server);
    };
    if (cm.serverAttempts >= cm.servers.length) {
      cm.serverAttempts = 1;
      setTimeout(open, Math.random() * cm.spinDelay).unref();
    } else {
      cm.serverAttempts += 1;
      process.nextTick(open);
    }
  }

  /** The library's connect(), over TLS. */
  #connectTls(tls: TlsParams): void {
    const cm = this.#cm;
    cm.setState(CM_STATES.CONNECTING);
    cm.findNextServer((server) => {
      const host = server.host;
      // SNI only for a host name (an IP there is against RFC 6066, and Node warns DEP0123); Node
      // checks the certificate against the SNI name when there is one, else the host's IP.
      const servername = tls.servername ?? (isIP(host) === 0 ? host : undefined);
      const socket = tlsConnect({
        host,
        port: Number(server.port),
        secureContext: tls.secureContext,
        rejectUnauthorized: tls.rejectUnauthorized,
        ...(servername !== undefined && { servername }),
      });
      cm.socket = socket;
      cm.connectTimeoutHandler = setTimeout(() => cm.onSocketConnectTimeout(), cm.connectTimeout);
      socket.setNoDelay();
      socket.on('secureConnect', () => cm.onSocketConnected());
      socket.on('data', (buffer: Buffer) => cm.onSocketData(buffer));
      socket.on('drain', () => cm.onSocketDrain());
      socket.on('close', (hasError: boolean) => cm.onSocketClosed(hasError));
      socket.on('error', (err: Error) => cm.onSocketError(err));
    });
  }

  #attemptsOf(server: ZkServer): ServerAttempts {
    const key = serverKey(server);
    let a = this.#attempts.get(key);
    if (!a) {
      a = { refused: 0, accepted: false, hungUp: false, error: undefined, tlsFailed: 0 };
      this.#attempts.set(key, a);
    }
    return a;
  }

  /** Records what one socket to `server` does until a session is granted. */
  #watchSocket(socket: Socket, server: ZkServer): void {
    const generation = this.#generation;
    const tls = this.#options.tls !== undefined;
    let connected = false;
    let secured = false;
    this.#socketError = undefined;
    socket.once('connect', () => {
      connected = true;
      if (generation === this.#generation) this.#attemptsOf(server).accepted = true;
    });
    socket.once('secureConnect', () => (secured = true));
    socket.on('error', (err: Error) => {
      if (socket === this.#cm.socket) this.#socketError = err;
      if (generation !== this.#generation) return;
      const a = this.#attemptsOf(server);
      a.error = err;
      if (!connected && isRefusal(err)) a.refused += 1;
      // A certificate refused on either side (under TLS 1.3 the server's refusal of ours comes
      // as an alert after our side finished), or a server that speaks no TLS and hangs up:
      // waiting out the deadline would not change it.
      else if (tls && (isTlsError(err) || (!secured && (err as NodeJS.ErrnoException).code === 'ECONNRESET'))) a.tlsFailed += 1;
      const allRefused = this.#cm.servers.every((s) => {
        const x = this.#attempts.get(serverKey(s));
        return x !== undefined && ((!x.accepted && x.refused >= FAIL_FAST_ROUNDS) || x.tlsFailed >= FAIL_FAST_ROUNDS);
      });
      if (allRefused) this.#onAllRefused?.(err);
    });
    socket.once('close', () => {
      if (connected && generation === this.#generation && socket !== this.#dropped && !this.#dead) this.#attemptsOf(server).hungUp = true;
    });
  }

  #onStateChange(state: number): void {
    if (this.#dead) return;
    switch (state) {
      case CM_STATES.CONNECTED: {
        const reconnect = this.#everConnected;
        this.#everConnected = true;
        this.#generation += 1;
        this.#attempts.clear();
        this.#lastReceivedAt = Date.now();
        this.#answeredAt = this.#lastReceivedAt;
        this.#suspended = false;
        if (reconnect) this.#rearmPersistent();
        this.#options.onSignal({ kind: 'connected' });
        break;
      }
      case CM_STATES.DISCONNECTED:
        this.#connectingSince = Date.now();
        if (this.#everConnected) this.#suspend(`the connection to ZooKeeper (${this.#options.connectString}) closed`, this.#socketError);
        break;
      case CM_STATES.CONNECTING:
        this.#connectingSince = Date.now();
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

  /**
   * The liveness monitor. The library pings only after a third of the session timeout of
   * socket idleness and never gives up on a silent server, so: ping when nothing arrived for a
   * sixth of the timeout; suspended after a third; drop the socket (like the Java client's read
   * timeout) after two thirds so the library tries again; lost after the whole timeout, since
   * by then the server has expired the session.
   */
  #startTicker(): void {
    const tickMs = Math.max(25, Math.min(500, Math.floor(this.sessionTimeoutMs / 12)));
    this.#ticker = setInterval(() => {
      // Run after pending I/O: after our own event loop stalled, replies may already sit in the
      // socket and must count before we judge the server silent.
      setImmediate(() => this.#check());
    }, tickMs);
    this.#ticker.unref();
  }

  #check(): void {
    if (this.#dead || !this.#everConnected) {
      // Before the first session the start() deadline is in charge.
      if (!this.#dead && this.#cm.state === CM_STATES.CONNECTING) this.#unstickConnect();
      return;
    }
    const now = Date.now();
    const timeout = this.sessionTimeoutMs;
    const silentMs = now - this.#lastReceivedAt;
    const cm = this.#cm;
    if (silentMs >= timeout) {
      this.#expire(
        new SharedStructError('SESSION_LOST', `ZooKeeper was silent for ${silentMs} ms (session timeout ${timeout} ms)`),
      );
      return;
    }
    if (cm.state === CM_STATES.CONNECTED) {
      if (silentMs >= timeout / 3) this.#suspend(`ZooKeeper did not answer for ${silentMs} ms`);
      if (silentMs >= (timeout * 2) / 3) {
        this.#options.logger.debug('zookeeper: silent server, dropping the socket', { silentMs });
        cm.socket?.destroy();
        return;
      }
      // Also when notifications keep arriving but nothing of ours was answered: the server renews
      // the session only on what it hears from us.
      const unansweredMs = now - this.#answeredAt;
      if ((silentMs >= timeout / 6 || unansweredMs >= timeout / 6) && this.#pingSentAt <= this.#answeredAt) this.#ping();
    } else if (cm.state === CM_STATES.CONNECTING) {
      this.#unstickConnect();
    }
  }

  /**
   * The library clears its connect timer when TCP connects, not when the session handshake
   * answers: a hung server or a blackholed proxy would leave it waiting forever.
   */
  #unstickConnect(): void {
    let limit = Math.floor(this.sessionTimeoutMs / 3);
    // Before the first session, every server gets its turn within start()'s deadline: a silent
    // one must not keep the rotation from reaching one that answers (or from learning that it
    // refuses, which the deadline's error then says).
    if (!this.#everConnected && this.#startTimeoutMs !== undefined) {
      limit = Math.min(limit, Math.floor(this.#startTimeoutMs / Math.max(1, this.#cm.servers.length)));
    }
    limit = Math.max(250, limit);
    if (Date.now() - this.#connectingSince >= limit) {
      this.#connectingSince = Date.now();
      this.#dropped = this.#cm.socket;
      this.#cm.socket?.destroy();
    }
  }

  #ping(): void {
    this.#pingSentAt = Date.now();
    this.#options.onHeartbeat?.();
    const header = new jute.protocol.RequestHeader();
    header.xid = jute.XID_PING;
    header.type = OP.ping;
    this.#cm.queue(new jute.Request(header, null));
  }

  /** The server answered something we sent at `sentAt`. */
  #answered(sentAt: number): void {
    if (sentAt > this.#answeredAt) this.#answeredAt = sentAt;
    if (!this.#dead && sentAt > 0) this.#options.onContact?.(sentAt);
  }

  /** Splits the stream into frames and parses replies to our own requests here. */
  #onSocketData(buffer: Buffer): void {
    this.#lastReceivedAt = Date.now();
    this.#inbound = this.#inbound.length === 0 ? buffer : Buffer.concat([this.#inbound, buffer]);
    while (this.#inbound.length >= 4 && !this.#dead) {
      const size = this.#inbound.readInt32BE(0);
      if (this.#inbound.length < size + 4) break;
      const frame = this.#inbound.subarray(0, size + 4);
      this.#inbound = this.#inbound.subarray(size + 4);
      try {
        this.#onFrame(frame);
      } catch (err) {
        // The library throws from its socket handler on input it does not know; a throw there
        // would crash the process. A reconnect is the safe answer to a stream we cannot read.
        this.#options.logger.warn(`zookeeper: unreadable reply, reconnecting: ${describeError(err)}`);
        this.#options.logger.debug('zookeeper: unreadable reply', { err });
        this.#inbound = Buffer.alloc(0);
        this.#cm.socket?.destroy();
        return;
      }
    }
    // A slow server that answers again on the same socket ends the suspension without a
    // reconnect (the library's state never left CONNECTED).
    if (this.#suspended && !this.#dead && this.#cm.state === CM_STATES.CONNECTED) {
      this.#suspended = false;
      this.#options.onSignal({ kind: 'connected' });
    }
  }

  #onFrame(frame: Buffer): void {
    const cm = this.#cm;
    if (cm.state === CM_STATES.CONNECTING || frame.length < BODY_OFFSET) {
      // The connect response: the library's.
      this.#originalOnSocketData(frame);
      return;
    }
    const xid = frame.readInt32BE(4);
    const err = frame.readInt32BE(16);
    if (xid === jute.XID_PING) this.#answered(this.#pingSentAt);
    if (xid === jute.XID_NOTIFICATION) {
      const event = parseWatcherEvent(frame, BODY_OFFSET);
      if (event.type < 1 || event.type > 4) return; // watch-removed types (>= 3.6) the library would throw on
      for (const h of this.#persistentHandlers(event.path)) h(event.type, event.path);
      // The library parses the frame again and fires its one-shot watchers of the path; with
      // none registered it would do nothing (most notifications, under persistent watches).
      if (this.#libraryWatches(event.path)) this.#originalOnSocketData(frame);
      return;
    }
    const packet = cm.pendingQueue[0];
    const own = packet?.request as OwnRequest | undefined;
    if (xid < 0 || !packet || own?.header?.xid !== xid || !('parse' in own)) {
      // Pings, auth, SetWatches and anything out of order: the library's rules apply.
      this.#originalOnSocketData(frame);
      return;
    }
    cm.pendingQueue.shift();
    this.#answered(own.queuedAt);
    const zxidBytes = frame.subarray(8, 16);
    if (zxidBytes.readBigInt64BE(0) > 0n) cm.zxid = Buffer.from(zxidBytes);
    const header = { xid, zxid: Buffer.from(zxidBytes), err };
    if (err !== 0) {
      // Our own error object: the library's Exception.create throws on codes it does not know.
      packet.callback(libraryError(err), { header, payload: undefined } as never);
      return;
    }
    const body = own.parse ? own.parse(frame, BODY_OFFSET) : undefined;
    packet.callback(null, { header, payload: body } as never);
  }
}

function serverKey(server: ZkServer): string {
  return `${server.host}:${server.port}`;
}

function zxidOf(buffer: Buffer | undefined): bigint {
  return buffer && buffer.length === 8 ? buffer.readBigInt64BE(0) : -1n;
}
