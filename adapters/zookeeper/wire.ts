/**
 * Request records and reply parsers for the ZooKeeper operations the adapter sends, built on
 * the library's jute classes. Here, not in the library, because the library cannot send `sync`
 * or `create2`, and its multi builder turns version 0 into -1 (an unconditional op).
 */
import { OP, jute, makeRecord, type AclObject, type JuteRecord, type ZkStat } from './zk-client.js';

/** `GetData`, `Exists`, `GetChildren2` request: a path and whether to leave a watch. */
export function pathWatchRequest(kind: 'getData' | 'exists' | 'getChildren', path: string, watch: boolean): JuteRecord {
  const Ctor =
    kind === 'getData'
      ? jute.protocol.GetDataRequest
      : kind === 'exists'
        ? jute.protocol.ExistsRequest
        : jute.protocol.GetChildren2Request;
  const record = new Ctor();
  record.path = path;
  record.watch = watch;
  return record;
}

/** `SetDataRequest` with the exact version (-1 only when the caller means "any"). */
export function setDataRequest(path: string, data: Uint8Array, version: number): JuteRecord {
  const record = new jute.protocol.SetDataRequest();
  record.path = path;
  record.data = toBuffer(data);
  record.version = version;
  return record;
}

/** `DeleteRequest`. */
export function deleteRequest(path: string, version: number): JuteRecord {
  const record = new jute.protocol.DeleteRequest();
  record.path = path;
  record.version = version;
  return record;
}

/** `CreateRequest` (also the body of `create2`, which answers path and stat). */
export function createRequest(path: string, data: Uint8Array, acls: readonly AclObject[], mode: number): JuteRecord {
  const record = new jute.protocol.CreateRequest();
  record.path = path;
  record.data = toBuffer(data);
  record.acl = acls.map((a) => a.toRecord());
  record.flags = mode;
  return record;
}

/** `SyncRequest { ustring path }`: the library has no class for it. */
export function syncRequest(path: string): JuteRecord {
  return makeRecord([{ name: 'path', type: 'ustring' }], { path });
}

/** `AddWatchRequest { ustring path; int mode }` (ZooKeeper >= 3.6; mode 0: persistent). */
export function addWatchRequest(path: string, mode: number): JuteRecord {
  return makeRecord(
    [
      { name: 'path', type: 'ustring' },
      { name: 'mode', type: 'int' },
    ],
    { path, mode },
  );
}

/** `RemoveWatchesRequest { ustring path; int type }` (type 4: persistent). */
export function removeWatchesRequest(path: string, type: number): JuteRecord {
  return makeRecord(
    [
      { name: 'path', type: 'ustring' },
      { name: 'type', type: 'int' },
    ],
    { path, type },
  );
}

/** Parses a notification body `WatcherEvent { int type; int state; ustring path }`. */
export function parseWatcherEvent(frame: Buffer, offset: number): { type: number; path: string } {
  return { type: frame.readInt32BE(offset), path: readString(frame, offset + 8).value };
}

/** `CheckVersionRequest { ustring path; int version }`. */
function checkRequest(path: string, version: number): JuteRecord {
  return makeRecord(
    [
      { name: 'path', type: 'ustring' },
      { name: 'version', type: 'int' },
    ],
    { path, version },
  );
}

/** One op of a multi, with versions exactly as the server must see them. */
export type MultiOp =
  | { readonly type: 'check'; readonly path: string; readonly version: number }
  | { readonly type: 'setData'; readonly path: string; readonly data: Uint8Array; readonly version: number }
  | { readonly type: 'delete'; readonly path: string; readonly version: number }
  | {
      readonly type: 'create';
      readonly path: string;
      readonly data: Uint8Array;
      readonly acls: readonly AclObject[];
      readonly mode: number;
    };

/**
 * The multi request body: `(MultiHeader op)* MultiHeader(done)`. Creates go as `create2` so
 * the reply carries the created node's stat (the fencing token of a lock is its czxid).
 */
export function multiRequest(ops: readonly MultiOp[]): JuteRecord {
  const records: JuteRecord[] = [];
  for (const op of ops) {
    let type: number;
    let record: JuteRecord;
    switch (op.type) {
      case 'check':
        type = OP.check;
        record = checkRequest(op.path, op.version);
        break;
      case 'setData':
        type = OP.setData;
        record = setDataRequest(op.path, op.data, op.version);
        break;
      case 'delete':
        type = OP.delete;
        record = deleteRequest(op.path, op.version);
        break;
      case 'create':
        type = OP.create2;
        record = createRequest(op.path, op.data, op.acls, op.mode);
        break;
    }
    records.push(multiHeader(type, false), record);
  }
  records.push(multiHeader(-1, true));
  return {
    byteLength: () => records.reduce((n, r) => n + r.byteLength(), 0),
    serialize(buffer, offset) {
      let at = offset;
      for (const r of records) at += r.serialize(buffer, at);
      return at - offset;
    },
    deserialize() {
      throw new Error('a multi request is never read');
    },
    setChrootPath() {
      // Paths already carry the adapter's chroot.
    },
  };
}

function multiHeader(type: number, done: boolean): JuteRecord {
  const header = new (jute.protocol as unknown as { MultiHeader: new () => JuteRecord & { type: number; done: boolean; err: number } }).MultiHeader();
  header.type = type;
  header.done = done;
  header.err = -1;
  return header;
}

/** One result of a multi. */
export type MultiResult =
  | { readonly type: 'ok'; readonly path?: string; readonly stat?: ZkStat }
  | { readonly type: 'error'; readonly err: number };

/** Parses a multi reply body. */
export function parseMulti(frame: Buffer, offset: number): MultiResult[] {
  const results: MultiResult[] = [];
  let at = offset;
  // Bounded by the frame: every header consumes 9 bytes.
  while (at + 9 <= frame.length) {
    const type = frame.readInt32BE(at);
    const done = frame.readUInt8(at + 4) !== 0;
    at += 9;
    if (done) break;
    switch (type) {
      case OP.create: {
        const { value, next } = readString(frame, at);
        at = next;
        results.push({ type: 'ok', path: value });
        break;
      }
      case OP.create2: {
        const { value, next } = readString(frame, at);
        const stat = new jute.data.Stat();
        at = next + stat.deserialize(frame, next);
        results.push({ type: 'ok', path: value, stat });
        break;
      }
      case OP.setData: {
        const stat = new jute.data.Stat();
        at += stat.deserialize(frame, at);
        results.push({ type: 'ok', stat });
        break;
      }
      case OP.delete:
      case OP.check:
        results.push({ type: 'ok' });
        break;
      case OP.error:
        results.push({ type: 'error', err: frame.readInt32BE(at) });
        at += 4;
        break;
      default:
        throw new Error(`unknown multi result type ${type}`);
    }
  }
  return results;
}

/** Parses `GetDataResponse { buffer data; Stat stat }`. */
export function parseGetData(frame: Buffer, offset: number): { data: Buffer; stat: ZkStat } {
  const length = frame.readInt32BE(offset);
  const start = offset + 4;
  const end = start + Math.max(0, length);
  // Copied: the frame is a view into the socket's buffer.
  const data = Buffer.from(frame.subarray(start, end));
  const stat = new jute.data.Stat();
  stat.deserialize(frame, end);
  return { data, stat };
}

/** Parses a body that is just a `Stat` (exists, setData). */
export function parseStat(frame: Buffer, offset: number): ZkStat {
  const stat = new jute.data.Stat();
  stat.deserialize(frame, offset);
  return stat;
}

/** Parses `Create2Response { ustring path; Stat stat }`. */
export function parseCreate2(frame: Buffer, offset: number): { path: string; stat: ZkStat } {
  const { value, next } = readString(frame, offset);
  const stat = new jute.data.Stat();
  stat.deserialize(frame, next);
  return { path: value, stat };
}

/** Parses `GetChildren2Response { vector<ustring> children; Stat stat }`. */
export function parseChildren(frame: Buffer, offset: number): { children: string[]; stat: ZkStat } {
  const count = frame.readInt32BE(offset);
  let at = offset + 4;
  const children: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const { value, next } = readString(frame, at);
    children.push(value);
    at = next;
  }
  const stat = new jute.data.Stat();
  stat.deserialize(frame, at);
  return { children, stat };
}

function readString(frame: Buffer, offset: number): { value: string; next: number } {
  const length = frame.readInt32BE(offset);
  const start = offset + 4;
  if (length < 0) return { value: '', next: start };
  return { value: frame.toString('utf8', start, start + length), next: start + length };
}

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
