/**
 * A recording TCP proxy on 127.0.0.1 for ZooKeeper clients: it forwards both ways, parses the
 * client's requests (header and, for the ones tests look at, the body), can hold the server's
 * replies back and release them later (a slow server, exactly controlled), and can reset every
 * connection. Tests use it to see what the adapter really sends (SetWatches after a reconnect).
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** One request the client sent. */
export interface TappedRequest {
  /** Connection number (1 for the first connection through the tap). */
  readonly connection: number;
  readonly xid: number;
  readonly type: number;
  /** For SetWatches (type 101): the paths it re-arms. */
  readonly setWatches?: { readonly data: string[]; readonly exist: string[]; readonly child: string[] };
  /** For path requests (create, delete, exists, getData, setData, getChildren2, createContainer): the path. */
  readonly path?: string;
}

/** SetWatches' opcode. */
export const OP_SET_WATCHES = 101;
/** Request types whose body starts with a path. */
const PATH_OPS = new Set([1, 2, 3, 4, 5, 8, 12, 15, 19]);

/** A running tap. */
export interface WireTap {
  readonly port: number;
  /** Every request seen so far, in order. */
  readonly requests: readonly TappedRequest[];
  /** Holds every later server→client byte until {@link release}. */
  hold(): void;
  /**
   * Holds (as {@link hold}) from the first request that matches, decided as the request is read:
   * no reply to it can have reached the client yet.
   */
  holdWhen(predicate: (request: TappedRequest) => boolean): void;
  /**
   * Stops forwarding client→server at the first request that matches (that request included)
   * until {@link resume}: the server has not seen it when the predicate returns.
   */
  pauseWhen(predicate: (request: TappedRequest) => boolean): Promise<TappedRequest>;
  /** Forwards the requests that {@link pauseWhen} stopped, and forwards again. */
  resume(): void;
  /** Delivers what was held, in order, and forwards again. */
  release(): void;
  /** Destroys every open connection (the client sees a reset and reconnects). */
  resetAll(): void;
  /** Connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

function readUstring(buf: Buffer, offset: number): { value: string; next: number } {
  const len = buf.readInt32BE(offset);
  if (len < 0) return { value: '', next: offset + 4 };
  return { value: buf.toString('utf8', offset + 4, offset + 4 + len), next: offset + 4 + len };
}

function readVector(buf: Buffer, offset: number): { values: string[]; next: number } {
  const count = buf.readInt32BE(offset);
  let next = offset + 4;
  const values: string[] = [];
  for (let i = 0; i < count; i++) {
    const s = readUstring(buf, next);
    values.push(s.value);
    next = s.next;
  }
  return { values, next };
}

/** Parses one request frame (without its length prefix). */
function parseRequest(connection: number, frame: Buffer): TappedRequest {
  const xid = frame.readInt32BE(0);
  const type = frame.readInt32BE(4);
  if (type === OP_SET_WATCHES) {
    // SetWatches { long relativeZxid; vector<ustring> dataWatches, existWatches, childWatches }
    const data = readVector(frame, 16);
    const exist = readVector(frame, data.next);
    const child = readVector(frame, exist.next);
    return { connection, xid, type, setWatches: { data: data.values, exist: exist.values, child: child.values } };
  }
  if (PATH_OPS.has(type) && frame.length >= 12) return { connection, xid, type, path: readUstring(frame, 8).value };
  return { connection, xid, type };
}

/** Starts a tap in front of 127.0.0.1:`targetPort`. */
export async function startWireTap(targetPort: number): Promise<WireTap> {
  const requests: TappedRequest[] = [];
  const sockets = new Set<Socket>();
  const held: { to: Socket; chunk: Buffer }[] = [];
  let holding = false;
  let holdPredicate: ((request: TappedRequest) => boolean) | undefined;
  let pause: { predicate: (request: TappedRequest) => boolean; found: (request: TappedRequest) => void } | undefined;
  let pausing = false;
  const paused: { to: Socket; frame: Buffer }[] = [];
  let connections = 0;
  const server: Server = createServer((client) => {
    connections += 1;
    const connection = connections;
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    let inbound = Buffer.alloc(0);
    let first = true;
    // Whole frames are forwarded one by one, so one can be stopped before the server sees it.
    client.on('data', (chunk: Buffer) => {
      inbound = Buffer.concat([inbound, chunk]);
      while (inbound.length >= 4) {
        const size = inbound.readInt32BE(0);
        if (inbound.length < size + 4) break;
        const raw = Buffer.from(inbound.subarray(0, size + 4));
        inbound = inbound.subarray(size + 4);
        const frame = raw.subarray(4);
        // The first frame of a connection is the ConnectRequest, which has no request header.
        if (first) {
          first = false;
        } else if (frame.length >= 8) {
          const request = parseRequest(connection, frame);
          requests.push(request);
          if (holdPredicate?.(request)) {
            holdPredicate = undefined;
            holding = true;
          }
          if (pause?.predicate(request)) {
            const found = pause.found;
            pause = undefined;
            pausing = true;
            found(request);
          }
        }
        if (pausing) paused.push({ to: upstream, frame: raw });
        else upstream.write(raw);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (holding) held.push({ to: client, chunk });
      else client.write(chunk);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  const resetAll = (): void => {
    held.length = 0;
    paused.length = 0;
    pausing = false;
    for (const s of [...sockets]) s.destroy();
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('wire tap: no port');
  return {
    port: address.port,
    requests,
    get connections() {
      return connections;
    },
    hold() {
      holding = true;
    },
    holdWhen(predicate) {
      holdPredicate = predicate;
    },
    pauseWhen(predicate) {
      return new Promise<TappedRequest>((found) => (pause = { predicate, found }));
    },
    resume() {
      pausing = false;
      for (const { to, frame } of paused.splice(0)) if (!to.destroyed) to.write(frame);
    },
    release() {
      holding = false;
      for (const { to, chunk } of held.splice(0)) if (!to.destroyed) to.write(chunk);
    },
    resetAll,
    async close() {
      resetAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
