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

/** One term of the election workload: a campaign that resolved, until its holder stopped acting as leader. */
export interface Term {
  readonly client: number;
  /** The leadership's token (the create revision of its key), decimal. */
  readonly token: string;
  /** When `campaign()` resolved. */
  readonly electedAt: number;
  /** The last guarded step: a `held` check that said yes, after which the leader acted. */
  readonly lastActAt: number;
  /** When it stopped believing it leads: it decided to resign, or learned it was deposed (undefined: it still led at the end). */
  readonly endedAt?: number | undefined;
}

/** Two leaders at once: a guarded step of an older term after a newer term was elected. */
export interface LeaderOverlap {
  readonly older: Term;
  readonly newer: Term;
  /** How long after the newer term's election the older one still acted. */
  readonly overlapMs: number;
}

/**
 * Leaders that overlapped. Terms are ordered by token, as the lock workload orders holders: a
 * term whose token is lower than another's was elected before it, so it must have stopped acting
 * before the newer one was elected — the old key goes only once its holder resigned, was deposed
 * locally (before its session can end) or lost its session. `exempt` terms (their session was
 * ended on the server by the test, with no warning a client could act on) are left out as the
 * older side: only a fence can protect what they do.
 */
export function leaderOverlaps(terms: readonly Term[], exempt: (t: Term) => boolean = () => false): LeaderOverlap[] {
  const byToken = [...terms].sort((a, b) => (BigInt(a.token) < BigInt(b.token) ? -1 : BigInt(a.token) > BigInt(b.token) ? 1 : 0));
  const out: LeaderOverlap[] = [];
  // The older term that acted last, over every token below the current one.
  let latest: Term | undefined;
  for (let i = 0; i < byToken.length; ) {
    // Terms with one token are one term (never two campaigns with one key).
    let j = i;
    while (j < byToken.length && byToken[j]!.token === byToken[i]!.token) j++;
    for (let k = i; k < j; k++) {
      const t = byToken[k]!;
      if (latest && latest.lastActAt > t.electedAt) out.push({ older: latest, newer: t, overlapMs: latest.lastActAt - t.electedAt });
    }
    for (let k = i; k < j; k++) {
      const t = byToken[k]!;
      if (!exempt(t) && (!latest || t.lastActAt > latest.lastActAt)) latest = t;
    }
    i = j;
  }
  return out;
}

/**
 * The longest stretch of `[from, to]` in which no term was believed held (a wedged election shows
 * as one stretch to the end of the run). A term still held at the end counts as held to `to`.
 */
export function longestLeaderless(terms: readonly Term[], from: number, to: number): number {
  const spans = terms.map((t) => [t.electedAt, t.endedAt ?? to] as const).sort((a, b) => a[0] - b[0]);
  let longest = 0;
  let covered = from;
  for (const [start, end] of spans) {
    if (start > covered) longest = Math.max(longest, Math.min(start, to) - covered);
    covered = Math.max(covered, end);
    if (covered >= to) break;
  }
  return Math.max(longest, to - covered);
}

/** `leader()` as an unfaulted client read it at `at` (the token it named, or null). */
export interface LeaderSample {
  readonly at: number;
  readonly token: string | null;
}

/** A stretch of samples naming one token where no holder believed it led within the bound. */
export interface LeaderDisagreement {
  readonly token: string;
  readonly from: number;
  readonly to: number;
  /** The holder of the term, if any term had that token. */
  readonly client: number | undefined;
}

/**
 * `leader()` must agree with the holder eventually: each stretch of consecutive samples naming
 * one token must lie within that term's belief, widened by `boundMs` on each side (the key heads
 * the queue a little before `campaign()` resolves; a deposed leader's key goes once it reaches the
 * store, or with its session). A token no term had may be named for at most `boundMs`. The old
 * bug — a deposed leader's key kept forever — shows as a stretch running far past the term's end.
 */
export function leaderDisagreements(samples: readonly LeaderSample[], terms: readonly Term[], boundMs: number): LeaderDisagreement[] {
  const byToken = new Map(terms.map((t) => [t.token, t]));
  const out: LeaderDisagreement[] = [];
  const sorted = [...samples].sort((a, b) => a.at - b.at);
  for (let i = 0; i < sorted.length; ) {
    const token = sorted[i]!.token;
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1]!.token === token) j++;
    if (token !== null) {
      const from = sorted[i]!.at;
      const to = sorted[j]!.at;
      const t = byToken.get(token);
      const bad = t ? from < t.electedAt - boundMs || to > (t.endedAt ?? Number.POSITIVE_INFINITY) + boundMs : to - from > boundMs;
      if (bad) out.push({ token, from, to, client: t?.client });
    }
    i = j + 1;
  }
  return out;
}

/** One life of the recreate workload's struct, as its deleter made it. */
export interface Life {
  readonly life: number;
  /** The create revision of the life's key, decimal. */
  readonly createRevision: string;
  /** When the deleter sent its first delete of this life (undefined: never deleted). */
  readonly deleteSentAt?: number | undefined;
}

/** What one instance saw of the recreate struct, in the order it saw it. */
export type LifeEvent =
  | { readonly kind: 'change'; readonly at: number; readonly life: number; readonly version: number; readonly previousVersion: number; readonly n: number }
  | { readonly kind: 'deleted'; readonly at: number; readonly revision: string };

/** A `NOT_FOUND` from a write: the life the instance's cache held when the write was called, and when it rejected. */
export interface NotFound {
  readonly life: number;
  readonly at: number;
}

/**
 * Anomalies of one instance across deletes and re-creations (docs/SEMANTICS.md, "lives only move
 * forward"). Every value carries its life (`life`, set at creation) and `n` (0 at creation, +1 per
 * write), so `n = version − 1` within a life. Checked: lives never go back; within a life versions
 * strictly increase (none delivered twice) and values match their version; a new life starts with
 * `previousVersion` 0; a `deleted` ends the life the instance holds, only once, only after the
 * deleter sent that life's delete, and with a revision newer than that life's creation (a stale
 * delete is one of an older life applied to a newer one); a write rejects `NOT_FOUND` only if the
 * life its cache held was deleted by the time it rejected. Events of a `changes()` iterator carry
 * no deletes: only the change rules apply to them.
 */
export function lifeAnomalies(events: readonly LifeEvent[], lives: readonly Life[], notFounds: readonly NotFound[] = []): string[] {
  const byLife = new Map(lives.map((l) => [l.life, l]));
  const out: string[] = [];
  let cur: { life: number; version: number; deleted: boolean } | undefined;
  for (const e of events) {
    if (e.kind === 'change') {
      const where = `life ${e.life} version ${e.version}`;
      if (e.n !== e.version - 1) out.push(`${where}: value n=${e.n} does not belong to that version (a write on another life's value?)`);
      if (cur && e.life < cur.life) out.push(`${where} after life ${cur.life}: a life went back`);
      else if (cur && e.life === cur.life) {
        if (cur.deleted) out.push(`${where} after that life's deleted`);
        else if (e.version <= cur.version) out.push(`${where} after version ${cur.version}: ${e.version === cur.version ? 'delivered twice' : 'went back'}`);
      } else if (cur && e.previousVersion !== 0) out.push(`${where}: a new life with previousVersion ${e.previousVersion}, not 0`);
      cur = { life: e.life, version: e.version, deleted: false };
    } else {
      if (!cur) continue;
      if (cur.deleted) {
        out.push(`a second deleted (revision ${e.revision}) for life ${cur.life}`);
        continue;
      }
      const life = byLife.get(cur.life);
      if (life && BigInt(e.revision) <= BigInt(life.createRevision)) out.push(`deleted at revision ${e.revision} applied to life ${cur.life} created at ${life.createRevision} (a stale delete)`);
      else if (life && (life.deleteSentAt === undefined || e.at < life.deleteSentAt)) out.push(`deleted applied to life ${cur.life} before its delete was sent (a stale delete)`);
      cur = { ...cur, deleted: true };
    }
  }
  for (const nf of notFounds) {
    const sent = byLife.get(nf.life)?.deleteSentAt;
    if (sent === undefined || sent > nf.at) out.push(`NOT_FOUND from a write on life ${nf.life}, which was not deleted then`);
  }
  return out;
}

/**
 * queue: one message a producer sent (`cast` or `call`), in its send order. `ok`: acknowledged
 * (`cast` resolved its id, `call` its reply); `unknown`: TIMEOUT, CONNECTION or SESSION_LOST (it
 * may be queued); `failed`: rejected with nothing queued (QUEUE_FULL).
 */
export interface QueueSend {
  readonly client: number;
  readonly kind: 'cast' | 'call';
  readonly tag: string;
  readonly outcome: 'ok' | 'unknown' | 'failed';
  /** call, acknowledged: the reply, the state's counter as the commit that applied it left it. */
  readonly reply?: number;
}

/** queue: what the run left, after the drain. */
export interface QueueOutcome {
  /** The tags the state's log holds, in apply order (each handled message appends its tag). */
  readonly applied: readonly string[];
  /** The state's counter (+1 per applied message). */
  readonly n: number;
  /** Messages still queued after the drain, and dead letters. */
  readonly pending: number;
  readonly dead: number;
  /** Each consumer's `ctx.after` effects: the tags they ran for, in order. */
  readonly effects: readonly (readonly string[])[];
}

/**
 * queue: exactly-once against what producers were told. Every acknowledged message applied once;
 * an unknown one at most once; one never queued never; no tag twice; each producer's acknowledged
 * messages in its send order; a call's reply the counter its own commit left (its tag is at that
 * place in the log), no two calls with the same reply; the counter equal to the log's length; the
 * queue empty; every `ctx.after` effect for an applied tag, at most once over all consumers.
 */
export function queueAnomalies(sends: readonly QueueSend[], out: QueueOutcome): string[] {
  const bad: string[] = [];
  const where = new Map<string, number[]>();
  for (const [i, tag] of out.applied.entries()) where.set(tag, [...(where.get(tag) ?? []), i]);
  for (const [tag, at] of where) if (at.length > 1) bad.push(`${tag} applied ${at.length} times (at ${at.join(', ')})`);
  const sent = new Set(sends.map((s) => s.tag));
  for (const tag of where.keys()) if (!sent.has(tag)) bad.push(`${tag} applied but never sent`);
  const replies = new Map<number, string>();
  const last = new Map<number, { tag: string; at: number }>();
  for (const s of sends) {
    const at = where.get(s.tag) ?? [];
    if (s.outcome === 'ok' && at.length === 0) bad.push(`acknowledged ${s.kind} ${s.tag} never applied`);
    if (s.outcome === 'failed' && at.length > 0) bad.push(`${s.tag} applied though its ${s.kind} queued nothing`);
    if (s.outcome !== 'ok' || at.length === 0) continue;
    const prev = last.get(s.client);
    if (prev && at[0]! < prev.at) bad.push(`p${s.client}: ${s.tag} applied before ${prev.tag}, sent earlier`);
    last.set(s.client, { tag: s.tag, at: at[0]! });
    if (s.kind === 'call') {
      if (s.reply === undefined || out.applied[s.reply - 1] !== s.tag) bad.push(`call ${s.tag} replied ${String(s.reply)}, but its commit left the counter at ${at[0]! + 1}`);
      const other = s.reply === undefined ? undefined : replies.get(s.reply);
      if (other !== undefined) bad.push(`calls ${other} and ${s.tag} got the same reply ${String(s.reply)}`);
      if (s.reply !== undefined) replies.set(s.reply, s.tag);
    }
  }
  if (out.n !== out.applied.length) bad.push(`counter ${out.n} but ${out.applied.length} tags applied`);
  if (out.pending > 0) bad.push(`${out.pending} messages still queued after the drain`);
  if (out.dead > 0) bad.push(`${out.dead} dead letters`);
  const ran = new Map<string, number>();
  for (const [c, effects] of out.effects.entries()) {
    for (const tag of effects) {
      ran.set(tag, (ran.get(tag) ?? 0) + 1);
      if (!where.has(tag)) bad.push(`consumer ${c} ran ctx.after for ${tag}, never applied`);
    }
  }
  for (const [tag, count] of ran) if (count > 1) bad.push(`ctx.after ran ${count} times for ${tag}`);
  return bad;
}
