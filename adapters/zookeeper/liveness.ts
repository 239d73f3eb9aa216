/**
 * The liveness monitor of one session. The library pings only after a third of the session
 * timeout of socket idleness and never gives up on a silent server, so: ping when nothing
 * arrived for a sixth of the timeout (or nothing of ours was answered); suspended after a third;
 * drop the socket (like the Java client's read timeout) after two thirds so the library tries
 * again; lost after the whole timeout, since by then the server has expired the session. It
 * also drops a socket whose session handshake never answers (the library's connect timer stops
 * at TCP connect). It decides; the session manager (connection.ts) acts, through
 * {@link LivenessHost}.
 */
import type { Logger } from '../../lib/backend.js';
import { SharedStructError } from '../../lib/errors.js';
import { CM_STATES, OP, jute, type LibraryConnection } from './zk-client.js';

/** What the monitor reads of its session and asks of it. */
export interface LivenessHost {
  /** The negotiated session timeout (the requested one until connected). */
  sessionTimeoutMs(): number;
  /** A session was granted once (before that, the start() deadline is in charge). */
  everConnected(): boolean;
  /** The session is lost or closed. */
  dead(): boolean;
  /** The deadline of the pending start(), if any. */
  startTimeoutMs(): number | undefined;
  readonly logger: Logger;
  /** The server went quiet: report `suspended` (once). */
  suspend(message: string): void;
  /** The session is gone. */
  expire(cause: SharedStructError): void;
  /** Drops the socket of a handshake that takes too long. */
  dropHandshake(): void;
  /** Called for every ping sent. */
  onHeartbeat?: (() => void) | undefined;
}

/** Watches one session's traffic on a timer and says when the server is silent. */
export class LivenessMonitor {
  readonly #lib: LibraryConnection;
  readonly #host: LivenessHost;
  #lastReceivedAt = Date.now();
  /** The send time of the latest request the server answered (or of the session's handshake). */
  #answeredAt = Date.now();
  #pingSentAt = 0;
  #connectingSince = Date.now();
  #ticker: NodeJS.Timeout | undefined;

  constructor(lib: LibraryConnection, host: LivenessHost) {
    this.#lib = lib;
    this.#host = host;
  }

  /** When the latest ping was sent (0: none yet). */
  get pingSentAt(): number {
    return this.#pingSentAt;
  }

  /** Starts the timer (unref'd: it never holds the event loop). */
  start(): void {
    const tickMs = Math.max(25, Math.min(500, Math.floor(this.#host.sessionTimeoutMs() / 12)));
    this.#ticker = setInterval(() => {
      // Run after pending I/O: after our own event loop stalled, replies may already sit in the
      // socket and must count before we judge the server silent.
      setImmediate(() => this.#check());
    }, tickMs);
    this.#ticker.unref();
  }

  /** Stops the timer (the session is dropped). */
  stop(): void {
    clearInterval(this.#ticker);
  }

  /** A session was granted (first or again): the server is heard now. */
  connected(): void {
    this.#lastReceivedAt = Date.now();
    this.#answeredAt = this.#lastReceivedAt;
  }

  /** A connect attempt starts (the handshake clock). */
  connecting(): void {
    this.#connectingSince = Date.now();
  }

  /** Bytes arrived on the socket. */
  received(): void {
    this.#lastReceivedAt = Date.now();
  }

  /** The server answered something sent at `sentAt`. */
  answered(sentAt: number): void {
    if (sentAt > this.#answeredAt) this.#answeredAt = sentAt;
  }

  #check(): void {
    const host = this.#host;
    const lib = this.#lib;
    if (host.dead() || !host.everConnected()) {
      // Before the first session the start() deadline is in charge.
      if (!host.dead() && lib.state === CM_STATES.CONNECTING) this.#unstickConnect();
      return;
    }
    const now = Date.now();
    const timeout = host.sessionTimeoutMs();
    const silentMs = now - this.#lastReceivedAt;
    if (silentMs >= timeout) {
      host.expire(new SharedStructError('SESSION_LOST', `ZooKeeper was silent for ${silentMs} ms (session timeout ${timeout} ms)`));
      return;
    }
    if (lib.state === CM_STATES.CONNECTED) {
      if (silentMs >= timeout / 3) host.suspend(`ZooKeeper did not answer for ${silentMs} ms`);
      if (silentMs >= (timeout * 2) / 3) {
        host.logger.debug('zookeeper: silent server, dropping the socket', { silentMs });
        lib.socket?.destroy();
        return;
      }
      // Also when notifications keep arriving but nothing of ours was answered: the server renews
      // the session only on what it hears from us.
      const unansweredMs = now - this.#answeredAt;
      if ((silentMs >= timeout / 6 || unansweredMs >= timeout / 6) && this.#pingSentAt <= this.#answeredAt) this.#ping();
    } else if (lib.state === CM_STATES.CONNECTING) {
      this.#unstickConnect();
    }
  }

  /**
   * The library clears its connect timer when TCP connects, not when the session handshake
   * answers: a hung server or a blackholed proxy would leave it waiting forever.
   */
  #unstickConnect(): void {
    const host = this.#host;
    let limit = Math.floor(host.sessionTimeoutMs() / 3);
    // Before the first session, every server gets its turn within start()'s deadline: a silent
    // one must not keep the rotation from reaching one that answers (or from learning that it
    // refuses, which the deadline's error then says).
    const startTimeoutMs = host.startTimeoutMs();
    if (!host.everConnected() && startTimeoutMs !== undefined) {
      limit = Math.min(limit, Math.floor(startTimeoutMs / Math.max(1, this.#lib.servers.length)));
    }
    limit = Math.max(250, limit);
    if (Date.now() - this.#connectingSince >= limit) {
      this.#connectingSince = Date.now();
      host.dropHandshake();
    }
  }

  #ping(): void {
    this.#pingSentAt = Date.now();
    this.#host.onHeartbeat?.();
    const header = new jute.protocol.RequestHeader();
    header.xid = jute.XID_PING;
    header.type = OP.ping;
    this.#lib.queue(new jute.Request(header, null));
  }
}
