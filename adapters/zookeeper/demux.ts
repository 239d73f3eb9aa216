/**
 * The frame demultiplexer: the socket's data handler of the library, wrapped. It splits the
 * stream into frames and routes each one: a reply to one of our requests (the head of the
 * library's sent queue, matched by xid) is parsed here and handed to its callback; a
 * notification goes to the persistent watches, and to the library only when it holds a one-shot
 * watcher of the path; the connect response, pings' replies, auth, SetWatches and anything out
 * of order stay the library's. So ordering, xids, auth and SetWatches remain the library's, and
 * the library never parses what it cannot (create2, multi with versions, codes it does not know).
 */
import type { Logger } from '../../lib/backend.js';
import { describeError, libraryError } from './errors.js';
import { parseWatcherEvent } from './wire.js';
import { CM_STATES, jute, type JuteRequest, type LibraryConnection } from './zk-client.js';

/** Offset of a reply's body in a frame: length(4) + xid(4) + zxid(8) + err(4). */
export const BODY_OFFSET = 20;

/** A request we queue: marks the packet as ours and says how to parse its body. */
export interface OwnRequest extends JuteRequest {
  readonly parse: ((frame: Buffer, offset: number) => unknown) | undefined;
  /** When it was handed to the library (it goes on the wire then, or later after a reconnect). */
  readonly queuedAt: number;
}

/** Whether a queued request is one of ours (its reply is parsed here). */
export function isOwn(request: JuteRequest): request is OwnRequest {
  return 'parse' in request;
}

/** Where the demultiplexer sends what it reads. */
export interface DemuxSink {
  /** The session is lost or closed: stop reading. */
  dead(): boolean;
  readonly logger: Logger;
  /** Bytes arrived (any: a notification too). */
  received(): void;
  /** The server answered a request of ours (or a ping: `'ping'`) queued at `sentAt`. */
  answered(sentAt: number | 'ping'): void;
  /** A notification of a watch (types 1 to 4). */
  notified(type: number, path: string): void;
  /** Whether the library holds a one-shot watcher of `path`. */
  libraryWatches(path: string): boolean;
  /** A chunk of data was read, every whole frame of it handled. */
  afterData(): void;
}

/** Splits one library client's socket stream into frames and routes them. */
export class FrameDemux {
  readonly #lib: LibraryConnection;
  readonly #sink: DemuxSink;
  readonly #original: (buffer: Buffer) => void;
  #inbound: Buffer = Buffer.alloc(0);

  constructor(lib: LibraryConnection, sink: DemuxSink) {
    this.#lib = lib;
    this.#sink = sink;
    this.#original = lib.hookSocketData((buffer) => this.#onSocketData(buffer));
  }

  #onSocketData(buffer: Buffer): void {
    const sink = this.#sink;
    sink.received();
    this.#inbound = this.#inbound.length === 0 ? buffer : Buffer.concat([this.#inbound, buffer]);
    while (this.#inbound.length >= 4 && !sink.dead()) {
      const size = this.#inbound.readInt32BE(0);
      if (this.#inbound.length < size + 4) break;
      const frame = this.#inbound.subarray(0, size + 4);
      this.#inbound = this.#inbound.subarray(size + 4);
      try {
        this.#onFrame(frame);
      } catch (err) {
        // The library throws from its socket handler on input it does not know; a throw there
        // would crash the process. A reconnect is the safe answer to a stream we cannot read.
        sink.logger.warn(`zookeeper: unreadable reply, reconnecting: ${describeError(err)}`);
        sink.logger.debug('zookeeper: unreadable reply', { err });
        this.#inbound = Buffer.alloc(0);
        this.#lib.socket?.destroy();
        return;
      }
    }
    sink.afterData();
  }

  #onFrame(frame: Buffer): void {
    const lib = this.#lib;
    if (lib.state === CM_STATES.CONNECTING || frame.length < BODY_OFFSET) {
      // The connect response: the library's.
      this.#original(frame);
      return;
    }
    const xid = frame.readInt32BE(4);
    const err = frame.readInt32BE(16);
    if (xid === jute.XID_PING) this.#sink.answered('ping');
    if (xid === jute.XID_NOTIFICATION) {
      const event = parseWatcherEvent(frame, BODY_OFFSET);
      if (event.type < 1 || event.type > 4) return; // watch-removed types (>= 3.6) the library would throw on
      this.#sink.notified(event.type, event.path);
      // The library parses the frame again and fires its one-shot watchers of the path; with
      // none registered it would do nothing (most notifications, under persistent watches).
      if (this.#sink.libraryWatches(event.path)) this.#original(frame);
      return;
    }
    const packet = lib.oldestSent();
    const own = packet?.request;
    if (xid < 0 || !packet || own?.header?.xid !== xid || !isOwn(own)) {
      // Pings, auth, SetWatches and anything out of order: the library's rules apply.
      this.#original(frame);
      return;
    }
    lib.shiftSent();
    this.#sink.answered(own.queuedAt);
    const zxidBytes = frame.subarray(8, 16);
    if (zxidBytes.readBigInt64BE(0) > 0n) lib.setZxid(Buffer.from(zxidBytes));
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
