/**
 * The fault matrix's checks that are not linearizability (see linearizability.ts): cached-read
 * staleness, stale-token writes on the fenced resource, lock-lost margins and recovery times.
 * Pure functions over recorded data, so each has self-tests (test/unit/fault-checks.test.ts).
 * Every time is in ms of {@link now}.
 */

/**
 * The clock of every process of a run: CLOCK_MONOTONIC (`process.hrtime`), in ms. One clock for
 * the whole machine, so times recorded by child processes compare with the parent's.
 */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** A write acknowledged to its writer: the version it created and when the writer heard so. */
export interface AckedWrite {
  readonly version: number;
  readonly at: number;
}

/** A cached `read()` that answered (did not throw `STALE_READ`): when, and the version it served. */
export interface CachedRead {
  readonly client: number;
  readonly at: number;
  readonly version: number;
}

/** A cached read older than the staleness bound allows. */
export interface StaleRead extends CachedRead {
  /** How long before `at - boundMs` the first version newer than the one served was acknowledged. */
  readonly excessMs: number;
}

/**
 * Cached reads that served a version older than one acknowledged more than `boundMs` before the
 * read. A write is committed before it is acknowledged, so "acknowledged at least `boundMs`
 * earlier" implies "committed at least `boundMs` earlier": the check never blames a read for a
 * write that may have committed within the bound. `read()` must either serve at least that
 * version or throw `STALE_READ`. `excessMs` says by how much a stale read missed the bound, so a
 * caller can allow for a known delivery delay (see docs/RELIABILITY.md).
 */
export function staleReads(writes: readonly AckedWrite[], reads: readonly CachedRead[], boundMs: number): StaleRead[] {
  const byVersion = [...writes].sort((a, b) => a.version - b.version);
  // earliest[i]: the first acknowledgement among versions byVersion[i..].
  const earliest = new Array<number>(byVersion.length);
  for (let i = byVersion.length - 1; i >= 0; i--) earliest[i] = Math.min(byVersion[i]!.at, earliest[i + 1] ?? Number.POSITIVE_INFINITY);
  const out: StaleRead[] = [];
  for (const r of reads) {
    // The first write newer than the version served.
    let lo = 0;
    let hi = byVersion.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (byVersion[mid]!.version > r.version) hi = mid;
      else lo = mid + 1;
    }
    const first = earliest[lo];
    if (first !== undefined && first <= r.at - boundMs) out.push({ ...r, excessMs: r.at - boundMs - first });
  }
  return out.sort((a, b) => a.at - b.at);
}

/** One committed write of the fenced resource: the lock token it was made under, and by whom. */
export interface FencedWrite {
  readonly t: string;
  readonly c: number;
}

/**
 * Stale-token writes accepted: committed writes (in commit order) whose token is lower than a
 * token committed before them. A holder whose lock passed on carries a lower token than every
 * later holder, so a fence that lets its late write through shows here.
 */
export function staleTokenWrites(log: readonly FencedWrite[]): FencedWrite[] {
  const out: FencedWrite[] = [];
  let highest = -1n;
  for (const w of log) {
    const t = BigInt(w.t);
    if (t < highest) out.push(w);
    else highest = t;
  }
  return out;
}

/** One time a client held the lock (one `updateLocked` call that got it). */
export interface Hold {
  readonly client: number;
  readonly token: string;
  readonly acquiredAt: number;
  /** The last guarded step: a `held` check that said yes, after which the holder acted. */
  readonly lastActAt: number;
  /** When the holder learned it lost the lock: `lock.signal` aborted or `held` said no. */
  readonly learnedAt?: number | undefined;
  /** When `updateLocked` settled (undefined: it had not when the run ended). */
  readonly settledAt?: number | undefined;
}

/** What the observer client saw: the end of a client's session, and lock keys deleted. */
export interface Observed {
  /** Each client's session ends: its session key was deleted (server-side expiry or close). */
  readonly sessionEnds: ReadonlyMap<number, readonly number[]>;
  /** Lock key deletions by token (released or expired). */
  readonly lockDeletes: ReadonlyMap<string, number>;
}

/** A client process frozen (SIGSTOP) from `from` to `to` (SIGCONT). */
export interface Freeze {
  readonly client: number;
  readonly from: number;
  readonly to: number;
}

/** A session ended by the test on the server (lease revoked, ZooKeeper session closed) at `at`. */
export interface ForcedExpiry {
  readonly client: number;
  readonly at: number;
}

/** A lock lost because the server ended the holder's session while it held the lock. */
export interface LockLoss {
  readonly client: number;
  readonly token: string;
  /** `ttl`: the server expired the session after its ttl (the holder cut off or frozen); `forced`: ended on the server by the test. */
  readonly cause: 'ttl' | 'forced';
  readonly frozen: boolean;
  /** Server-side end of the lock: the earlier of the observed key deletion and session end. */
  readonly expiryAt: number;
  /**
   * When the holder stopped acting as holder: the moment it learned, if it learned before the
   * expiry; otherwise (a frozen process cannot learn) its last guarded step — which is after
   * the expiry if it acted on the lost lock after waking.
   */
  readonly stoppedAt: number;
  /** `expiryAt - stoppedAt` for `ttl` losses (must be > 0); undefined for `forced` ones. */
  readonly marginMs: number | undefined;
  /** `learnedAt - expiryAt` for `forced` losses: how long the holder took to hear of it. */
  readonly detectionMs: number | undefined;
  /** Frozen holders: from SIGCONT to learning the loss. */
  readonly wakeToLearnMs: number | undefined;
}

/**
 * How far apart one server event (a session end deleting the session key and the lock key
 * together) may be seen by two watches of one observer.
 */
const SAME_EVENT_MS = 25;

/**
 * The holds that ended because the server ended the holder's session, not because the holder
 * let go. `released` holds the tokens whose key the holder deleted itself (its delete said the
 * key was there): those keys were gone before any session end could take them. Any other hold
 * whose client's session ended after it acquired the lock (`E`, the first such end) lost it at
 * `E` — unless the observer saw its key deleted well before `E` (a release whose answer the
 * holder never got).
 */
export function lockLosses(
  holds: readonly Hold[],
  observed: Observed,
  released: ReadonlySet<string>,
  freezes: readonly Freeze[],
  forced: readonly ForcedExpiry[],
): LockLoss[] {
  const out: LockLoss[] = [];
  for (const h of holds) {
    if (released.has(h.token)) continue;
    const ends = observed.sessionEnds.get(h.client) ?? [];
    const end = ends.find((e) => e > h.acquiredAt);
    if (end === undefined) continue;
    const deleted = observed.lockDeletes.get(h.token);
    if (deleted !== undefined && deleted < end - SAME_EVENT_MS) continue;
    const expiryAt = deleted === undefined ? end : Math.min(end, deleted);
    const isForced = forced.some((f) => f.client === h.client && f.at <= expiryAt && expiryAt <= f.at + 10000);
    const freeze = freezes.find((f) => f.client === h.client && f.from <= expiryAt && expiryAt <= f.to);
    const learnedBefore = h.learnedAt !== undefined && h.learnedAt <= expiryAt;
    const stoppedAt = learnedBefore && h.learnedAt !== undefined ? h.learnedAt : h.lastActAt;
    out.push({
      client: h.client,
      token: h.token,
      cause: isForced ? 'forced' : 'ttl',
      frozen: freeze !== undefined,
      expiryAt,
      stoppedAt,
      marginMs: isForced ? undefined : expiryAt - stoppedAt,
      detectionMs: isForced && h.learnedAt !== undefined ? h.learnedAt - expiryAt : undefined,
      wakeToLearnMs: freeze && h.learnedAt !== undefined && h.learnedAt >= freeze.to ? h.learnedAt - freeze.to : undefined,
    });
  }
  return out;
}

/** For each client, the time from `endAt` to its first successful operation completed at or after it. */
export function recoveryTimes(endAt: number, okTimes: readonly (readonly number[])[]): { recovered: number[]; notRecovered: number } {
  const recovered: number[] = [];
  let notRecovered = 0;
  for (const times of okTimes) {
    const next = times.find((t) => t >= endAt);
    if (next === undefined) notRecovered += 1;
    else recovered.push(next - endAt);
  }
  return { recovered, notRecovered };
}

/** The `p`-th percentile (0–100, nearest rank) of `values`; undefined when empty. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}
