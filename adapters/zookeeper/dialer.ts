/**
 * Choosing and opening a session's sockets: the library's server rotation with what it lacks —
 * TLS sockets, sockets and timers that never hold the event loop, no sockets after the session
 * is dropped — and a record of what every socket did, so a first connect can tell a refused
 * connection (give up after {@link FAIL_FAST_ROUNDS}) from a silent server (wait out the
 * deadline), and its errors say which server did what. Apart from the session manager
 * (connection.ts) because none of this concerns a granted session: {@link Dialer.sessionGranted}
 * ends each record.
 */
import type { Socket } from 'node:net';
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { SharedStructError } from '../../lib/errors.js';
import { isTlsError, tlsHint, tlsReason, type TlsParams, type TlsServerTerms } from '../../lib/util/tls.js';
import { CM_STATES, type LibraryConnection, type ZkServer } from './zk-client.js';

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

function serverKey(server: ZkServer): string {
  return `${server.host}:${server.port}`;
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

/** Options of {@link Dialer}. */
export interface DialerOptions {
  /** `host:port,host:port`, for messages. */
  readonly connectString: string;
  /** TLS to the servers' `secureClientPort`; undefined: plain TCP. */
  readonly tls: TlsParams | undefined;
  /** True once the session was dropped: no more sockets. */
  readonly isDead: () => boolean;
}

/** Opens the sockets of one library client (hooked into its rotation and connect) and records their fate. */
export class Dialer {
  readonly #lib: LibraryConnection;
  readonly #options: DialerOptions;
  /** Per server (`host:port`), what its sockets did since the last session was granted. */
  readonly #attempts = new Map<string, ServerAttempts>();
  /** Bumped when a session is granted: sockets of earlier generations no longer report. */
  #generation = 0;
  /** The error the current socket failed with, if any (the cause of a `suspended`). */
  #socketError: Error | undefined;
  /** The socket the handshake timeout dropped (its close is ours, not the server's). */
  #dropped: Socket | undefined;
  /** Set while a fail-fast `start()` waits: told when every server has refused. */
  onAllRefused: ((cause: Error) => void) | undefined;

  constructor(lib: LibraryConnection, options: DialerOptions) {
    this.#lib = lib;
    this.#options = options;
    // Every connect and reconnect of the library picks its server here.
    lib.hookFindNextServer((callback) => this.#findNextServer(callback));
    // The library opens plain TCP sockets only: under TLS, ours opens a TLS socket instead, bound
    // to the library's own handlers as its connect() binds them, the session handshake starting
    // once TLS is up (1.1.3's ConnectionManager.connect, with tls.connect for net.connect).
    const tls = options.tls;
    if (tls) lib.hookConnect(() => this.#connectTls(tls));
  }

  /** The error the current socket failed with, if any. */
  get socketError(): Error | undefined {
    return this.#socketError;
  }

  /** A session was granted: the attempts so far are history. */
  sessionGranted(): void {
    this.#generation += 1;
    this.#attempts.clear();
  }

  /** Drops the socket of a handshake that takes too long; the library tries the next server. */
  dropHandshake(): void {
    this.#dropped = this.#lib.socket;
    this.#lib.socket?.destroy();
  }

  /** Every server refused the connection: most likely nothing listens there (a wrong URL, a server down). */
  refusedError(cause: Error): SharedStructError {
    if (this.#options.tls && (isTlsError(cause) || (cause as NodeJS.ErrnoException).code === 'ECONNRESET')) {
      const reason = tlsReason(cause);
      const servers = this.#lib.servers.map(serverKey).join(', ');
      return new SharedStructError('CONNECTION', `the TLS handshake with ZooKeeper at ${servers} failed (${reason}), ${FAIL_FAST_ROUNDS} attempts each. ${tlsHint(reason, ZK_TLS)}`, { cause });
    }
    const servers = this.#lib.servers.map((server) => `${serverKey(server)} (${this.#attemptsOf(server).error ? errorCode(this.#attemptsOf(server).error!) : 'refused'})`);
    const hosts = this.#options.connectString;
    const what =
      servers.length === 1
        ? `ZooKeeper refused the connection at ${servers[0]!}, ${FAIL_FAST_ROUNDS} attempts`
        : `every ZooKeeper server refused the connection: ${servers.join(', ')}, ${FAIL_FAST_ROUNDS} attempts each`;
    return new SharedStructError('CONNECTION', `${what}. Is ZooKeeper running at ${hosts}? Check the URL's hosts and ports.`, { cause });
  }

  /** No session within the deadline: says what each server did, so a hung server is told from a refusing one. */
  timeoutError(timeoutMs: number): SharedStructError {
    const parts = this.#lib.servers.map((server) => {
      const a = this.#attemptsOf(server);
      const key = serverKey(server);
      if (a.hungUp) return `${key} accepted the connection and closed it without a session (a member without quorum, or too many connections?)`;
      if (a.accepted) return `${key} accepted the connection but never answered the session handshake (a hung or frozen server, or a network that drops packets?)`;
      if (a.error) return `${key} failed: ${errorCode(a.error)}`;
      return `${key} was not reached`;
    });
    let cause: Error | undefined;
    for (const server of this.#lib.servers) cause = this.#attemptsOf(server).error ?? cause;
    return new SharedStructError(
      'CONNECTION',
      `no ZooKeeper session within ${timeoutMs} ms: ${parts.join('; ')}. Check that ZooKeeper at ${this.#options.connectString} is up and answers (\`echo srvr | nc HOST PORT\`), or raise connectTimeoutMs.`,
      cause === undefined ? {} : { cause },
    );
  }

  /**
   * The library's server rotation — each server once, in the shuffled order of the connect
   * string, then a random pause of up to `spinDelay` before the next round — with what it
   * lacks: an abandoned client opens no more sockets; neither the socket nor the library's TCP
   * connect timer holds the event loop (an idle client lets the process exit; a call that is
   * pending holds it, lib/util/keepalive.ts); and every socket is watched for the error that
   * tells a refused connection from a silent server.
   */
  #findNextServer(callback: (server: ZkServer) => void): void {
    const lib = this.#lib;
    const open = (): void => {
      if (this.#options.isDead()) return;
      const server = lib.nextServer();
      // The library's callback creates the socket and its connect timer, synchronously.
      callback(server);
      const socket = lib.socket;
      socket?.unref();
      lib.unrefConnectTimer();
      if (socket) this.#watchSocket(socket, server);
    };
    const pause = lib.countAttempt();
    if (pause !== undefined) setTimeout(open, pause).unref();
    else process.nextTick(open);
  }

  /** The library's connect(), over TLS. */
  #connectTls(tls: TlsParams): void {
    const lib = this.#lib;
    lib.setState(CM_STATES.CONNECTING);
    lib.findNextServer((server) => {
      const host = server.host;
      // SNI only for a host name (an IP there is against RFC 6066, and Node warns DEP0123); Node
      // checks the certificate against the SNI name when there is one, else the host's IP.
      const servername = tls.servername ?? (isIP(host) === 0 ? host : undefined);
      lib.adoptSocket(
        tlsConnect({
          host,
          port: Number(server.port),
          secureContext: tls.secureContext,
          rejectUnauthorized: tls.rejectUnauthorized,
          ...(servername !== undefined && { servername }),
        }),
      );
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
      if (socket === this.#lib.socket) this.#socketError = err;
      if (generation !== this.#generation) return;
      const a = this.#attemptsOf(server);
      a.error = err;
      if (!connected && isRefusal(err)) a.refused += 1;
      // A certificate refused on either side (under TLS 1.3 the server's refusal of ours comes
      // as an alert after our side finished), or a server that speaks no TLS and hangs up:
      // waiting out the deadline would not change it.
      else if (tls && (isTlsError(err) || (!secured && (err as NodeJS.ErrnoException).code === 'ECONNRESET'))) a.tlsFailed += 1;
      const allRefused = this.#lib.servers.every((s) => {
        const x = this.#attempts.get(serverKey(s));
        return x !== undefined && ((!x.accepted && x.refused >= FAIL_FAST_ROUNDS) || x.tlsFailed >= FAIL_FAST_ROUNDS);
      });
      if (allRefused) this.onAllRefused?.(err);
    });
    socket.once('close', () => {
      if (connected && generation === this.#generation && socket !== this.#dropped && !this.#options.isDead()) this.#attemptsOf(server).hungUp = true;
    });
  }
}
