/**
 * A {@link Txn} as one ZooKeeper multi: the ops built from the compares and the writes (exact
 * versions: the library's own multi cannot say "version 0", see docs/ZOOKEEPER.md), the entries
 * of a committed multi, and which op made a refused one fail. The sending (deadline, retry after
 * a missing parent, the key watches' own writes) stays the backend's (index.ts).
 */
import type { Entry, Txn } from '../../lib/backend.js';
import { SharedStructError } from '../../lib/errors.js';
import { validateKey } from './address.js';
import { toEntry, znodeVersion } from './entries.js';
import type { MultiOp, MultiResult } from './wire.js';
import { MODE, ZkCodes, type AclObject } from './zk-client.js';

/** What building a multi needs of the backend. */
export interface MultiContext {
  /** The znode path of a key. */
  pathOf(key: string): string;
  /** Refuses a value over the size limit. */
  checkSize(key: string, value: Uint8Array): void;
  /** The ACL of created nodes. */
  readonly acls: readonly AclObject[];
}

/** The ops of a multi (the compares first, `compares` of them). */
export interface Multi {
  readonly ops: MultiOp[];
  readonly compares: number;
}

/**
 * The multi of `txn`, or undefined when a compare or an expected version is below 1: it can
 * never match (and must never mean "any"), so the txn fails without asking. Invalid keys, values
 * too large and unknown ops throw.
 */
export function buildMulti(txn: Txn, ctx: MultiContext): Multi | undefined {
  const ops: MultiOp[] = [];
  for (const c of txn.compare) {
    validateKey(c.key);
    if ('exists' in c) {
      ops.push({ type: 'check', path: ctx.pathOf(c.key), version: -1 });
    } else {
      const version = znodeVersion(c.version, 'compare.version');
      // A version below 1 never exists: the compare fails without asking.
      if (version === undefined) return undefined;
      ops.push({ type: 'check', path: ctx.pathOf(c.key), version });
    }
  }
  const compares = ops.length;
  for (const op of txn.ops) {
    validateKey(op.key);
    if (op.op !== 'delete') ctx.checkSize(op.key, op.value);
    const path = ctx.pathOf(op.key);
    switch (op.op) {
      case 'put': {
        const version = op.expectedVersion === undefined ? -1 : znodeVersion(op.expectedVersion, 'expectedVersion');
        if (version === undefined) return undefined;
        ops.push({ type: 'setData', path, data: op.value, version });
        break;
      }
      case 'create': {
        const mode = op.sequential ? (op.ephemeral ? MODE.ephemeralSequential : MODE.persistentSequential) : op.ephemeral ? MODE.ephemeral : MODE.persistent;
        ops.push({ type: 'create', path, data: op.value, acls: ctx.acls, mode });
        break;
      }
      case 'delete': {
        const version = op.expectedVersion === undefined ? -1 : znodeVersion(op.expectedVersion, 'expectedVersion');
        if (version === undefined) return undefined;
        ops.push({ type: 'delete', path, version });
        break;
      }
      default:
        throw new SharedStructError('INVALID_ARGUMENT', `txn op ${JSON.stringify((op as { op: unknown }).op)} is unknown`);
    }
  }
  return { ops, compares };
}

/** The results of a multi that committed (every op ok), else undefined. */
export function committed(body: unknown): MultiResult[] | undefined {
  if (!Array.isArray(body)) return undefined;
  const results = body as MultiResult[];
  return results.every((r) => r.type === 'ok') ? results : undefined;
}

/** The entries a committed multi wrote with its puts (the key watches' own writes). */
export function putEntries(txn: Txn, multi: Multi, results: readonly MultiResult[]): Entry[] {
  const entries: Entry[] = [];
  txn.ops.forEach((op, i) => {
    const result = results[multi.compares + i];
    if (op.op === 'put' && result?.type === 'ok' && result.stat) entries.push(toEntry(op.key, op.value, result.stat));
  });
  return entries;
}

/**
 * Per op of `txn`, the entry a committed multi left (undefined for a delete). `zxid` is the
 * reply's; `keyOf` maps a created path back to its key.
 */
export function committedEntries(txn: Txn, multi: Multi, results: readonly MultiResult[], zxid: bigint, keyOf: (path: string) => string): (Entry | undefined)[] {
  return txn.ops.map((op, i): Entry | undefined => {
    const result = results[multi.compares + i];
    if (op.op === 'delete' || !result || result.type !== 'ok') return undefined;
    // A sequential create's key is the path the server made.
    const key = op.op === 'create' && op.sequential && result.path !== undefined ? keyOf(result.path) : op.key;
    if (result.stat) return toEntry(key, op.value, result.stat);
    if (op.op !== 'create') return undefined;
    // Inside a multi the server answers create2 like create (path only). A multi is one
    // transaction with one zxid, the one in the reply header: that is the new node's
    // czxid and mzxid, and a new node has zk version 0.
    return { key, value: op.value, version: 1, revision: zxid, createRevision: zxid, ephemeral: op.ephemeral === true };
  });
}

/** Why a multi failed: the failing op's code (the server marks the others RUNTIME_INCONSISTENCY or OK) and the op. */
export function failure(multi: Multi, replyErr: number, results: readonly MultiResult[] | undefined): { readonly err: number; readonly op: MultiOp | undefined } {
  const failed = results?.findIndex((r) => r.type === 'error' && r.err !== 0 && r.err !== ZkCodes.RUNTIME_INCONSISTENCY) ?? -1;
  const failedResult = failed >= 0 ? results![failed] : undefined;
  const err = failedResult?.type === 'error' ? failedResult.err : replyErr;
  return { err, op: failed >= 0 ? multi.ops[failed] : undefined };
}
