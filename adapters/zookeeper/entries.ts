/**
 * Znodes as the library's values: a stat as an {@link Entry}, dense versions as znode versions,
 * the `acl` option as the library's ACLs, and the creation order of a folder's children.
 */
import type { Entry, EntryStat } from '../../lib/backend.js';
import type { AclEntry } from '../../lib/options.js';
import { SharedStructError } from '../../lib/errors.js';
import { toBigInt, zookeeper, type AclObject, type ZkStat } from './zk-client.js';

/** A znode's stat as an {@link Entry}. */
export function toEntry(key: string, value: Uint8Array, stat: ZkStat): Entry {
  return {
    key,
    value,
    version: stat.version + 1,
    revision: toBigInt(stat.mzxid),
    createRevision: toBigInt(stat.czxid),
    ephemeral: toBigInt(stat.ephemeralOwner) !== 0n,
  };
}

/** A znode's stat as an {@link EntryStat} (no value). */
export function toEntryStat(stat: ZkStat): EntryStat {
  return { version: stat.version + 1, revision: toBigInt(stat.mzxid), createRevision: toBigInt(stat.czxid) };
}

/** A dense version as a znode version; below 1 it can never match (and must never mean "any"). */
export function znodeVersion(version: number, what: string): number | undefined {
  if (!Number.isInteger(version)) throw new SharedStructError('INVALID_ARGUMENT', `${what} must be an integer, got ${version}`);
  return version >= 1 ? version - 1 : undefined;
}

/** The library's ACL objects of an `acl` option (checked by the core). */
export function aclOf(acl: 'creator' | 'open' | readonly AclEntry[]): readonly AclObject[] {
  if (acl === 'creator') return zookeeper.ACL.CREATOR_ALL_ACL;
  if (acl === 'open') return zookeeper.ACL.OPEN_ACL_UNSAFE;
  const bits: Record<string, number> = { r: 1, w: 2, c: 4, d: 8, a: 16 };
  return acl.map((e) => new zookeeper.ACL([...e.perms].reduce((sum, p) => sum + bits[p]!, 0), new zookeeper.Id(e.scheme, e.id)));
}

/** Entries in creation order. */
export function byCreation(entries: Entry[]): Entry[] {
  return entries.sort((a, b) => (a.createRevision < b.createRevision ? -1 : a.createRevision > b.createRevision ? 1 : 0));
}

/** The suffix ZooKeeper appends to a sequential znode's name: the parent's counter, 10 digits. */
const SEQUENTIAL_SUFFIX = /\d{10}$/;
/**
 * The `limit` oldest of `names` when every one ends in a sequential create's 10-digit counter
 * (in counter order), else undefined. One pass keeping the `limit` smallest: a consumer takes
 * the head of a long queue every round, and sorting the whole listing each time was the
 * largest CPU cost of a drain (measured with --cpu-prof).
 */
export function firstSequential(names: readonly string[], limit: number): string[] | undefined {
  const head: { name: string; seq: string }[] = [];
  for (const name of names) {
    if (!SEQUENTIAL_SUFFIX.test(name)) return undefined;
    const seq = name.slice(-10);
    if (head.length === limit && seq >= head[limit - 1]!.seq) continue;
    let at = head.length;
    while (at > 0 && head[at - 1]!.seq > seq) at -= 1;
    head.splice(at, 0, { name, seq });
    if (head.length > limit) head.pop();
  }
  return head.map((h) => h.name);
}

/** The value of an entry listed without reading it (`keysOnly`). */
export const EMPTY_VALUE = new Uint8Array(0);
