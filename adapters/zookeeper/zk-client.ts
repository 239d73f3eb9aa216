/**
 * Typed access to the parts of `node-zookeeper-client` 1.1.3 this adapter uses (package.json
 * pins that exact version). The package ships no types and is CommonJS, so it is loaded with
 * `createRequire` and described here. Every touch of its internals goes through this file:
 * the ConnectionManager's only through {@link LibraryConnection}, the rest through the modules
 * and helpers exported below. What is touched, and by whom:
 *
 * ConnectionManager (`client.connectionManager`, via LibraryConnection):
 * - `state`, `setState`, `on/removeListener('state')`: connection.ts (start, live, close,
 *   abandon, state changes), liveness.ts and demux.ts (read `state`), dialer.ts (CONNECTING
 *   before a TLS connect).
 * - `socket`: dialer.ts (unref, watched for refusals, a stuck handshake destroyed),
 *   liveness.ts (destroyed on read timeout), demux.ts (destroyed on an unreadable stream),
 *   connection.ts (destroyed by abandon()).
 * - `onSocketData` (replaced, the original kept and called): demux.ts.
 * - `findNextServer` (replaced, and called by the TLS connect) with the rotation's state
 *   `servers`, `nextServerIndex`, `serverAttempts`, `spinDelay`, and `connectTimeoutHandler`
 *   (unref): dialer.ts; `servers` also liveness.ts (each server's share of the start deadline).
 * - `connect` (replaced under TLS) and the handlers its replacement binds to our TLS socket:
 *   `connectTimeout`, `connectTimeoutHandler`, `onSocketConnectTimeout`, `onSocketConnected`,
 *   `onSocketData`, `onSocketDrain`, `onSocketClosed`, `onSocketError`: dialer.ts.
 * - `queue()`: connection.ts (every request, closeSession), liveness.ts (pings).
 * - `packetQueue.queue` (unsent packets): connection.ts (an aborted request withdrawn; unsent
 *   packets failed NOT_SENT by abandon()).
 * - `pendingQueue` (sent, awaiting replies): demux.ts (the reply to our request at its head),
 *   connection.ts (failed by abandon()).
 * - `zxid` (the last zxid seen, sent on reconnect): demux.ts.
 * - `registerDataWatcher`, `registerChildWatcher`, `registerExistenceWatcher` and
 *   `watcherManager` (one-shot watchers: looked up, removed): watch-registry.ts.
 *
 * Other internals: `lib/jute/index.js` — its records (`protocol.*`, `data.Stat`) and the
 * generic Record constructor behind {@link makeRecord}: wire.ts; `protocol.RequestHeader`,
 * `Request`: connection.ts, liveness.ts; `XID_PING`, `XID_NOTIFICATION`: demux.ts, liveness.ts
 * (`TransactionRequest` is typed but unused: the adapter builds its own multi, wire.ts);
 * `lib/ConnectionManager.js` (`STATES`): most modules; `Exception.create` (library-shaped
 * errors for the packets abandon() fails): connection.ts.
 *
 * Public API (`createClient`, `Client.connect/close/getSessionId/getSessionPassword/
 * getSessionTimeout/addAuthInfo/on`, `ACL`, `Id`): connection.ts, entries.ts; tests, bench and
 * testing/ use `createClient` for raw clients.
 */
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

const require = createRequire(import.meta.url);

/** The 8-byte / 16-byte buffers and 64-bit longs the jute records carry. */
export interface ZkStat {
  czxid: Buffer;
  mzxid: Buffer;
  ctime: Buffer;
  mtime: Buffer;
  version: number;
  cversion: number;
  aversion: number;
  ephemeralOwner: Buffer;
  dataLength: number;
  numChildren: number;
  pzxid: Buffer;
  deserialize(buffer: Buffer, offset: number): number;
}

/** A jute record: serializable, chroot-aware. */
export interface JuteRecord {
  byteLength(): number;
  serialize(buffer: Buffer, offset: number): number;
  deserialize(buffer: Buffer, offset: number): number;
  setChrootPath(path: string | undefined): void;
}

/** `RequestHeader { int xid; int type }`. */
export interface RequestHeader extends JuteRecord {
  xid: number;
  type: number;
}

/** `ReplyHeader { int xid; long zxid; int err }`. */
export interface ReplyHeader extends JuteRecord {
  xid: number;
  zxid: Buffer;
  err: number;
}

/** A request as the ConnectionManager queues it. */
export interface JuteRequest {
  header: RequestHeader | null;
  payload: JuteRecord | null;
  toBuffer(): Buffer;
}

/** A response as the ConnectionManager hands it to a request's callback. */
export interface JuteResponse<P = unknown> {
  header: ReplyHeader;
  payload: P;
}

/** A queued packet. */
export interface Packet {
  request: JuteRequest;
  callback: (error: ZkException | null, response?: JuteResponse) => void;
}

/** The library's error: a numeric `code` from {@link ZkCodes}. */
export interface ZkException extends Error {
  code: number;
  getCode(): number;
  getName(): string;
}

/** One operation of a multi request, as `jute.TransactionRequest` takes it (raw versions). */
export type MultiOpSpec =
  | { type: number; path: string; data?: Buffer; acls: AclObject[]; mode: number }
  | { type: number; path: string; version: number; data?: Buffer };

/** An `ACL` object of the library (`toRecord()` gives the jute record). */
export interface AclObject {
  permission: number;
  toRecord(): JuteRecord;
}

/** A server of the connect string, as the library's ConnectionStringParser gives it. */
export interface ZkServer {
  host: string;
  port: string | number;
}

/** The library's per-client connection/session manager (internal API, pinned to 1.1.3). */
export interface ConnectionManager {
  state: number;
  socket: Socket | undefined;
  /** The servers of the connect string (shuffled), the next one to try, and attempts this round. */
  servers: ZkServer[];
  nextServerIndex: number;
  serverAttempts: number;
  spinDelay: number;
  /** The library's TCP connect timer of the current socket (cleared when TCP connects). */
  connectTimeoutHandler: NodeJS.Timeout | null;
  zxid: Buffer;
  sessionTimeout: number;
  chrootPath: string | undefined;
  packetQueue: { queue: Packet[] };
  pendingQueue: Packet[];
  /** The library's TCP connect deadline, in ms. */
  connectTimeout: number;
  connect(): void;
  queue(request: JuteRequest, callback?: Packet['callback']): void;
  /** The socket handlers the library's own connect() binds (1.1.3). */
  onSocketConnected(): void;
  onSocketConnectTimeout(): void;
  onSocketDrain(): void;
  onSocketClosed(hasError: boolean): void;
  onSocketError(err: Error): void;
  setState(state: number): void;
  onSocketData(buffer: Buffer): void;
  findNextServer(callback: (server: ZkServer) => void): void;
  registerDataWatcher(path: string, watcher: (event: ZkEvent) => void): void;
  registerChildWatcher(path: string, watcher: (event: ZkEvent) => void): void;
  registerExistenceWatcher(path: string, watcher: (event: ZkEvent) => void): void;
  /** The one-shot watchers by kind (`dataWatchers`, `childWatchers`, `existenceWatchers`) and path. */
  watcherManager: Record<string, Record<string, EventEmitter> | undefined>;
  on(event: 'state', listener: (state: number) => void): void;
  removeListener(event: 'state', listener: (state: number) => void): void;
}

/** A watcher notification. */
export interface ZkEvent {
  type: number;
  name: string;
  path: string;
}

/** The library's Client (only what the adapter uses). */
export interface ZkClient {
  connectionManager: ConnectionManager;
  connect(): void;
  close(): void;
  getSessionId(): Buffer;
  getSessionPassword(): Buffer;
  getSessionTimeout(): number;
  addAuthInfo(scheme: string, auth: Buffer): void;
  on(event: string, listener: (...args: unknown[]) => void): void;
  removeAllListeners(): void;
}

/** Options of `createClient`. */
export interface ZkClientOptions {
  sessionTimeout: number;
  spinDelay: number;
  retries: number;
  sessionId?: Buffer;
  sessionPassword?: Buffer;
}

interface ZkModule {
  createClient(connectionString: string, options: ZkClientOptions): ZkClient;
  ACL: { OPEN_ACL_UNSAFE: AclObject[]; CREATOR_ALL_ACL: AclObject[] } & (new (permission: number, id: unknown) => AclObject);
  Id: new (scheme: string, id: string) => unknown;
  Exception: { create(code: number): ZkException } & Record<string, unknown>;
}

type RecordCtor<T> = new (...args: unknown[]) => T;

interface JuteModule {
  OP_CODES: Record<string, number>;
  XID_PING: number;
  XID_NOTIFICATION: number;
  XID_AUTHENTICATION: number;
  Request: new (header: RequestHeader | null, payload: JuteRecord | null) => JuteRequest;
  TransactionRequest: new (ops: MultiOpSpec[]) => JuteRecord;
  protocol: {
    RequestHeader: RecordCtor<RequestHeader>;
    ReplyHeader: RecordCtor<ReplyHeader>;
    GetDataRequest: RecordCtor<JuteRecord & { path: string; watch: boolean }>;
    GetDataResponse: RecordCtor<JuteRecord & { data: Buffer | undefined; stat: ZkStat }>;
    SetDataRequest: RecordCtor<JuteRecord & { path: string; data: Buffer; version: number }>;
    SetDataResponse: RecordCtor<JuteRecord & { stat: ZkStat }>;
    ExistsRequest: RecordCtor<JuteRecord & { path: string; watch: boolean }>;
    ExistsResponse: RecordCtor<JuteRecord & { stat: ZkStat }>;
    DeleteRequest: RecordCtor<JuteRecord & { path: string; version: number }>;
    CreateRequest: RecordCtor<JuteRecord & { path: string; data: Buffer; acl: JuteRecord[]; flags: number }>;
    GetChildren2Request: RecordCtor<JuteRecord & { path: string; watch: boolean }>;
    GetChildren2Response: RecordCtor<JuteRecord & { children: string[]; stat: ZkStat }>;
    WatcherEvent: RecordCtor<JuteRecord & { type: number; state: number; path: string }>;
  };
  data: {
    Stat: RecordCtor<ZkStat>;
  };
}

/** The library module. */
export const zookeeper = require('node-zookeeper-client') as ZkModule;
/** The library's jute (wire format) module. */
export const jute = require('node-zookeeper-client/lib/jute/index.js') as JuteModule;

/** `ConnectionManager.STATES` of the library. */
export const CM_STATES = (require('node-zookeeper-client/lib/ConnectionManager.js') as { STATES: Record<string, number> })
  .STATES as {
  DISCONNECTED: number;
  CONNECTING: number;
  CONNECTED: number;
  CONNECTED_READ_ONLY: number;
  CLOSING: number;
  CLOSED: number;
  SESSION_EXPIRED: number;
  AUTHENTICATION_FAILED: number;
};

/** ZooKeeper op codes, including the ones the library cannot send by itself. */
export const OP = {
  create: 1,
  delete: 2,
  exists: 3,
  getData: 4,
  setData: 5,
  sync: 9,
  ping: 11,
  removeWatches: 18,
  createContainer: 19,
  addWatch: 106,
  getChildren2: 12,
  check: 13,
  multi: 14,
  create2: 15,
  error: -1,
  closeSession: -11,
} as const;

/** ZooKeeper error codes (the server's `KeeperException.Code`). */
export const ZkCodes = {
  OK: 0,
  SYSTEM_ERROR: -1,
  RUNTIME_INCONSISTENCY: -2,
  DATA_INCONSISTENCY: -3,
  CONNECTION_LOSS: -4,
  MARSHALLING_ERROR: -5,
  UNIMPLEMENTED: -6,
  OPERATION_TIMEOUT: -7,
  BAD_ARGUMENTS: -8,
  API_ERROR: -100,
  NO_NODE: -101,
  NO_AUTH: -102,
  BAD_VERSION: -103,
  NO_CHILDREN_FOR_EPHEMERALS: -108,
  NODE_EXISTS: -110,
  NOT_EMPTY: -111,
  SESSION_EXPIRED: -112,
  INVALID_CALLBACK: -113,
  INVALID_ACL: -114,
  AUTH_FAILED: -115,
  SESSION_MOVED: -118,
  NOT_READ_ONLY: -119,
  QUOTA_EXCEEDED: -125,
  THROTTLED: -127,
} as const;

/** Watcher event types. */
export const EVENT = { created: 1, deleted: 2, dataChanged: 3, childrenChanged: 4 } as const;

/**
 * Create modes. A container (ZooKeeper >= 3.5.1) is sent with opcode `createContainer`: the server
 * ignores mode 4 on a plain `create` and makes a persistent node (measured on 3.8.0).
 */
export const MODE = { persistent: 0, ephemeral: 1, persistentSequential: 2, ephemeralSequential: 3, container: 4 } as const;

/** The library's generic jute Record constructor, to build records it has no class for. */
const RecordBase = (Object.getPrototypeOf(jute.protocol.ExistsRequest.prototype as object) as { constructor: unknown }).constructor as (
  this: JuteRecord,
  spec: { name: string; type: string }[],
  args: unknown[],
) => void;

/** A jute record of the given attribute spec (e.g. `SyncRequest { ustring path }`). */
export function makeRecord<T extends object>(spec: { name: string; type: string }[], values: T): JuteRecord & T {
  const record = Object.create(RecordBase.prototype as object) as JuteRecord & T;
  RecordBase.call(record, spec, []);
  Object.assign(record, values);
  return record;
}

/** Reads a jute `long` (8-byte big-endian buffer) as a bigint. */
export function toBigInt(buffer: Buffer): bigint {
  return buffer.readBigInt64BE(0);
}

/** The kinds of the library's one-shot watchers. */
export type LibraryWatcherKind = 'data' | 'child' | 'existence';

const WATCHER_TABLES = ['dataWatchers', 'childWatchers', 'existenceWatchers'] as const;

/**
 * The one door to a client's ConnectionManager (internal API of 1.1.3): every member of it the
 * adapter reads, writes or replaces is reached through a method here (see this file's header
 * for which module uses which), so checking a library upgrade means checking this class.
 */
export class LibraryConnection {
  readonly #cm: ConnectionManager;

  constructor(client: ZkClient) {
    this.#cm = client.connectionManager;
  }

  // ---- state and socket ----

  /** The library's state, one of {@link CM_STATES}. */
  get state(): number {
    return this.#cm.state;
  }

  /** Moves the library to `state` (CLOSING: it sends nothing more and does not reconnect). */
  setState(state: number): void {
    this.#cm.setState(state);
  }

  /** Listens to the library's state changes. */
  onState(listener: (state: number) => void): void {
    this.#cm.on('state', listener);
  }

  /** Stops listening to the library's state changes. */
  offState(listener: (state: number) => void): void {
    this.#cm.removeListener('state', listener);
  }

  /** The socket of the current attempt or session, if any. */
  get socket(): Socket | undefined {
    return this.#cm.socket;
  }

  /** The servers of the connect string, in the library's (shuffled) order. */
  get servers(): readonly ZkServer[] {
    return this.#cm.servers;
  }

  // ---- hooks: methods of the library replaced by ours ----

  /**
   * Replaces the socket's data handler and returns the library's own. Its `data` listener is
   * bound at each connect() from the instance property, so this wraps every socket it opens.
   */
  hookSocketData(handler: (buffer: Buffer) => void): (buffer: Buffer) => void {
    const cm = this.#cm;
    const original = cm.onSocketData.bind(cm);
    cm.onSocketData = handler;
    return original;
  }

  /** Replaces the library's server rotation (every connect and reconnect picks its server there). */
  hookFindNextServer(find: (callback: (server: ZkServer) => void) => void): void {
    this.#cm.findNextServer = find;
  }

  /** Replaces the library's connect() (which opens plain TCP sockets only). */
  hookConnect(connect: () => void): void {
    this.#cm.connect = connect;
  }

  // ---- the rotation's state (what the library's findNextServer keeps) ----

  /** Calls the (hooked) rotation, as the library's connect() does. */
  findNextServer(callback: (server: ZkServer) => void): void {
    this.#cm.findNextServer(callback);
  }

  /** The next server of the rotation (advancing it). */
  nextServer(): ZkServer {
    const cm = this.#cm;
    cm.nextServerIndex %= cm.servers.length;
    const server = cm.servers[cm.nextServerIndex]!;
    cm.nextServerIndex += 1;
    return server;
  }

  /**
   * Counts one more attempt of the round: after each server had its turn a new round starts,
   * and this returns the library's pause before it (random, up to `spinDelay` ms); else undefined.
   */
  countAttempt(): number | undefined {
    const cm = this.#cm;
    if (cm.serverAttempts >= cm.servers.length) {
      cm.serverAttempts = 1;
      return Math.random() * cm.spinDelay;
    }
    cm.serverAttempts += 1;
    return undefined;
  }

  /** Lets the library's TCP connect timer of the current socket not hold the event loop. */
  unrefConnectTimer(): void {
    this.#cm.connectTimeoutHandler?.unref();
  }

  /**
   * Makes a socket we opened (TLS) the library's, bound to its handlers as 1.1.3's connect()
   * binds its own, with `secureConnect` for `connect`: the session handshake starts once TLS is up.
   */
  adoptSocket(socket: TLSSocket): void {
    const cm = this.#cm;
    cm.socket = socket;
    cm.connectTimeoutHandler = setTimeout(() => cm.onSocketConnectTimeout(), cm.connectTimeout);
    socket.setNoDelay();
    socket.on('secureConnect', () => cm.onSocketConnected());
    socket.on('data', (buffer: Buffer) => cm.onSocketData(buffer));
    socket.on('drain', () => cm.onSocketDrain());
    socket.on('close', (hasError: boolean) => cm.onSocketClosed(hasError));
    socket.on('error', (err: Error) => cm.onSocketError(err));
  }

  // ---- the queues: unsent (packetQueue) and sent, awaiting a reply (pendingQueue) ----

  /** Queues a request behind the others (the library assigns its xid when it writes it). */
  queue(request: JuteRequest, callback?: Packet['callback']): void {
    this.#cm.queue(request, callback);
  }

  /** Takes `request` out of the unsent queue; false when it was not there (written already). */
  withdraw(request: JuteRequest): boolean {
    const queue = this.#cm.packetQueue.queue;
    const index = queue.findIndex((p) => p.request === request);
    if (index < 0) return false;
    queue.splice(index, 1);
    return true;
  }

  /** Empties the unsent queue, returning its packets. */
  takeUnsent(): Packet[] {
    return this.#cm.packetQueue.queue.splice(0);
  }

  /** Empties the queue of sent packets awaiting replies, returning them. */
  takeSent(): Packet[] {
    return this.#cm.pendingQueue.splice(0);
  }

  /** The oldest sent packet awaiting its reply (replies come in order). */
  oldestSent(): Packet | undefined {
    return this.#cm.pendingQueue[0];
  }

  /** Removes {@link oldestSent}: its reply was handled here, not by the library. */
  shiftSent(): void {
    this.#cm.pendingQueue.shift();
  }

  /** The latest zxid seen, which the library sends when it reconnects. */
  setZxid(zxid: Buffer): void {
    this.#cm.zxid = zxid;
  }

  // ---- one-shot watchers (the library's watcherManager) ----

  /** Registers a one-shot watcher as the library's own calls do (it then re-sends it in SetWatches). */
  registerWatcher(kind: LibraryWatcherKind, path: string, watcher: (event: ZkEvent) => void): void {
    if (kind === 'data') this.#cm.registerDataWatcher(path, watcher);
    else if (kind === 'child') this.#cm.registerChildWatcher(path, watcher);
    else this.#cm.registerExistenceWatcher(path, watcher);
  }

  /** Whether the library holds a one-shot watcher of `path` (its emit deletes them as they fire). */
  hasWatcher(path: string): boolean {
    const m = this.#cm.watcherManager;
    return WATCHER_TABLES.some((table) => m[table]?.[path] !== undefined);
  }

  /** Forgets `watcher` of `path`, of every kind, so the library stops re-sending it in SetWatches. */
  removeWatcher(path: string, watcher: (event: ZkEvent) => void): void {
    const m = this.#cm.watcherManager;
    for (const table of WATCHER_TABLES) m[table]?.[path]?.removeListener('notification', watcher);
  }
}
