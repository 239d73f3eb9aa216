/**
 * Watches on ZooKeeper: what key watches (key-watch.ts) and prefix watches (prefix-watch.ts)
 * share — the worker loop, the event queue, the lifecycle, the comparison of reads — and the
 * interfaces between them and the backend. A key watch holds a persistent watch where the
 * server has one (>= 3.6) and reads only changes it cannot account for (see `KeyWatch`); a
 * prefix watch (and a key watch on an older server) uses one-shot watches: every notification
 * wakes one worker per watch that re-reads with a read that also re-arms (getData / getChildren
 * with watch=true: value, stat and the new watch in one round trip). Either way the worker
 * compares with what it last emitted and emits only what is new: a version is never emitted
 * twice, and a skipped one shows as a gap in `version` (the core turns it into a `coalesced`
 * event). A new session re-arms everything and emits `reset`.
 */
import type { Entry, Logger, Watch, WatchEvent } from '../../lib/backend.js';
import { SharedStructError, isSharedStructError } from '../../lib/errors.js';
import { withDeadline } from '../../lib/util/abort.js';
import { exponentialBackoff, retry, type BackoffPolicy } from '../../lib/retry.js';
import { AsyncQueue } from '../../lib/util/async-queue.js';
import type { ZkConnection } from './connection.js';
import { describeError } from './errors.js';
import type { Reads } from './reads.js';

/** Between attempts at a watch's re-read: 50 ms, doubling, at most 1 s. */
const REARM_BACKOFF: BackoffPolicy = exponentialBackoff({ initialMs: 50, maxMs: 1000, jitter: 0 });

/**
 * The reads a watch makes (reads.ts has them). The watches never import the backend (index.ts):
 * what they need of it is this and {@link WatchHost}, which the backend builds.
 */
export type WatchReads = Pick<Reads, 'pathOf' | 'readWatched' | 'readArmed' | 'readData' | 'readChildren'>;

/** What a watch needs from its backend. */
export interface WatchHost {
  readonly reads: WatchReads;
  /** Number of the backend's own writes of `key` in flight. */
  writesInFlight(key: string): number;
  /** The live session (waits while a lost one is replaced). */
  current(signal: AbortSignal): Promise<ZkConnection>;
  /** Resolves when a session is live again. */
  untilLive(signal: AbortSignal): Promise<void>;
  readonly closedSignal: AbortSignal;
  readonly requestTimeoutMs: number;
  readonly logger: Logger;
  remove(watch: ZkWatch): void;
}

/** A watch as the backend drives it. */
export interface ZkWatch extends Watch {
  /** Resolves once the first read armed the watch (tests use it to write only after). */
  armed(): Promise<void>;
  start(): void;
  /** The session was lost: the watches it held are gone. */
  sessionLost(): void;
  /** A new session is up: re-arm everything and emit `reset`. */
  sessionRenewed(): void;
  /** The backend closed: the stream ends with `CLOSED`. */
  backendClosed(): void;
  /** @internal The watch's own signal, aborted when it ends (tests count its listeners). */
  readonly signal: AbortSignal;
}

/** The value of a `keysOnly` entry (names only). */
export const NO_VALUE = new Uint8Array(0);

/** The identity of one life of a key: its create revision and the last version emitted. */
export interface Known {
  readonly createRevision: bigint;
  readonly version: number;
}

/** What a single-key comparison decides. */
export function diffEntry(
  key: string,
  known: Known | undefined,
  entry: Entry | undefined,
  deletedAt: bigint,
): { events: WatchEvent[]; known: Known | undefined } {
  const events: WatchEvent[] = [];
  if (!entry) {
    if (known) events.push({ type: 'delete', key, revision: deletedAt });
    return { events, known: undefined };
  }
  if (known && known.createRevision === entry.createRevision) {
    // Same life: only a higher version is news (a re-fired watch may read what we emitted).
    if (entry.version > known.version) events.push({ type: 'put', entry });
    return { events, known: entry.version > known.version ? toKnown(entry) : known };
  }
  if (known) {
    // The key was deleted and created again between two reads: end the old life first. The
    // delete's revision is not known; the new life's create revision is after it.
    events.push({ type: 'delete', key, revision: entry.createRevision });
  }
  events.push({ type: 'put', entry });
  return { events, known: toKnown(entry) };
}

/** The identity of the life an entry belongs to, at its version. */
export function toKnown(entry: Entry): Known {
  return { createRevision: entry.createRevision, version: entry.version };
}

/** The larger of two revisions. */
export function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** The worker loop, the queue and the lifecycle shared by key and prefix watches. */
export abstract class BaseWatch implements ZkWatch {
  protected readonly host: WatchHost;
  protected readonly afterRevision: bigint | undefined;
  readonly #queue: AsyncQueue<WatchEvent>;
  readonly #stop = new AbortController();
  #dirty = false;
  #running = false;
  #closed = false;
  /** Nothing emitted yet: the first read is the baseline (or the catch-up from afterRevision). */
  protected first = true;
  /** The next read follows a new session: emit `reset`. */
  protected needReset = false;
  /** The session the watches are armed on (watchers left on older ones are inert). */
  protected armedOn: ZkConnection | undefined;
  /** The session of the run in progress: its replies may have registered watchers already. */
  #syncingOn: ZkConnection | undefined;
  readonly #armed: Promise<void>;
  #resolveArmed!: () => void;

  constructor(host: WatchHost, afterRevision: bigint | undefined) {
    this.host = host;
    this.afterRevision = afterRevision;
    this.#queue = new AsyncQueue<WatchEvent>(() => this.close());
    this.#armed = new Promise<void>((resolve) => (this.#resolveArmed = resolve));
  }

  armed(): Promise<void> {
    return this.#armed;
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    return this.#queue[Symbol.asyncIterator]();
  }

  start(): void {
    this.wake();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort(new SharedStructError('CLOSED', 'the watch was closed'));
    if (this.armedOn) this.unregister(this.armedOn);
    if (this.#syncingOn && this.#syncingOn !== this.armedOn) this.unregister(this.#syncingOn);
    this.host.remove(this);
    this.#queue.end();
  }

  backendClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort(new SharedStructError('CLOSED', 'the ZooKeeper backend is closed'));
    this.#queue.fail(new SharedStructError('CLOSED', 'the ZooKeeper backend is closed'));
  }

  sessionLost(): void {
    // The worker notices on its next request (the old session refuses); nothing to do now.
  }

  sessionRenewed(): void {
    this.needReset = true;
    this.wake();
  }

  /** @internal The watch's own signal (aborted when it ends); tests count its listeners. */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  protected get closed(): boolean {
    return this.#closed;
  }

  /** Open, with no worker run going on or due: state may be decided synchronously. */
  protected get idle(): boolean {
    return !this.#closed && !this.#running && !this.#dirty;
  }

  protected emit(event: WatchEvent): void {
    if (!this.#closed) this.#queue.push(event);
  }

  /** A notification (or a new session) asks for a re-read. */
  protected wake(): void {
    if (this.#closed) return;
    this.#dirty = true;
    if (!this.#running) void this.#run();
  }

  /** Re-reads, re-arms and emits what changed. Runs one at a time. */
  protected abstract sync(conn: ZkConnection, signal: AbortSignal): Promise<void>;

  /** Runs the requests of one step under the request deadline (a step with no request needs none). */
  protected io<T>(signal: AbortSignal, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return withDeadline('zookeeper watch read', this.host.requestTimeoutMs, signal, fn);
  }
  /** Forgets this watch's watchers on `conn`. */
  protected abstract unregister(conn: ZkConnection): void;

  async #run(): Promise<void> {
    this.#running = true;
    const signal = this.#stop.signal;
    try {
      while (this.#dirty && !this.#closed) {
        try {
          await retry(
            async (attempt) => {
              // After a failure: once a session is live again (the backoff is the retry's).
              if (attempt.number > 1) await this.host.untilLive(signal);
              // This attempt reads everything notified so far.
              this.#dirty = false;
              const conn = await this.host.current(signal);
              if (this.armedOn && this.armedOn !== conn) {
                // A session we did not see end (renewal raced this loop): its watches are gone.
                this.needReset = true;
              }
              this.#syncingOn = conn;
              await this.sync(conn, signal);
              this.armedOn = conn;
              this.#resolveArmed();
            },
            {
              what: `zookeeper watch of ${this.describe()}`,
              policy: REARM_BACKOFF,
              signal,
              // Unauthorized, invalid, closed: it will not get better by retrying.
              retryIf: (err) => !this.#closed && !(isSharedStructError(err) && !err.retryable),
              onRetry: (err, attempt, delayMs) => {
                // A disconnect costs a retry or two; more than that is worth a warning.
                const line = `zookeeper: watch of ${this.describe()} failed (attempt ${attempt}), retrying in ${delayMs} ms: ${describeError(err)}`;
                if (attempt >= 5) this.host.logger.warn(line);
                else this.host.logger.debug(line, { err });
              },
            },
          );
        } catch (err) {
          if (this.#closed) return;
          if (isSharedStructError(err, 'CLOSED')) {
            this.backendClosed();
            return;
          }
          if (isSharedStructError(err) && !err.retryable) {
            this.#queue.fail(err);
            this.#closed = true;
            this.host.remove(this);
          }
          return;
        }
      }
    } finally {
      this.#running = false;
    }
  }

  /** What the watch covers, for logs. */
  protected abstract describe(): string;
}
