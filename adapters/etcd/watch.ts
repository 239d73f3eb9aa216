/**
 * One etcd watch as a {@link Watch}: its own gRPC watch stream, driven here rather than by
 * etcd3's Watcher so that resumption is ours to prove. After any disconnect it re-creates the
 * watch at the last delivered revision + 1; when etcd has compacted that revision away it
 * relists the target and emits one `reset`. It never leaves a gap and never repeats a revision.
 */
import type { IDuplexStream, IEvent, IWatchRequest, IWatchResponse } from 'etcd3';
import type { Entry, Logger, Watch, WatchEvent, WatchOptions, WatchTarget } from '../../lib/backend.js';
import { SharedStructError, isSharedStructError } from '../../lib/errors.js';
import { exponentialBackoff, retry } from '../../lib/retry.js';
import { AsyncQueue } from '../../lib/util/async-queue.js';
import { matchesTarget, targetRange, toEntry } from './convert.js';
import type { EtcdRpc } from './rpc.js';

type WatchStream = IDuplexStream<IWatchRequest, IWatchResponse>;

/** Between re-creations of a broken watch. Capped at 1 s: after a server restart the watch is back within about a second. */
const RESUME_BACKOFF = exponentialBackoff({ initialMs: 50, maxMs: 1000 });

/** A stream that broke or stalled (retried from the last revision, counted in `resumes`). */
class Disconnected extends Error {
  override readonly name = 'Disconnected';
}

/** Why one stream ended. */
type StreamEnd =
  | { readonly kind: 'closed' }
  /** The stream broke or stalled: resume from the last revision. */
  | { readonly kind: 'disconnected'; readonly error?: unknown }
  /** The start revision was compacted: relist and reset. */
  | { readonly kind: 'compacted'; readonly compactRevision: bigint }
  /** The server refused the watch for good (permission, bad range). */
  | { readonly kind: 'failed'; readonly error: SharedStructError };

/** Relists the target: the current entries and the revision they are at. */
export type Relist = (target: WatchTarget, signal: AbortSignal) => Promise<{ entries: Entry[]; revision: bigint }>;

/** Internals a watch needs from its backend. */
export interface EtcdWatchContext {
  readonly rpc: EtcdRpc;
  readonly logger: Logger;
  readonly relist: Relist;
  /**
   * A cheap authorised read of the target. Run after a watch was refused for permissions: an
   * expired auth token is refused like a missing permission on streams, while a unary call makes
   * etcd3 fetch a new token. Rejects `UNAUTHORIZED` when the permission is really missing.
   */
  readonly probe: (target: WatchTarget, signal: AbortSignal) => Promise<void>;
  /** Called once when the watch ends, whatever the reason. */
  readonly onDone: (watch: EtcdWatch) => void;
}

/** A resumable etcd watch. */
export class EtcdWatch implements Watch {
  readonly target: WatchTarget;
  readonly #ctx: EtcdWatchContext;
  readonly #queue: AsyncQueue<WatchEvent>;
  readonly #stop = new AbortController();
  readonly #signal: AbortSignal | undefined;
  /** Every change up to this revision has been delivered (or was before the watch began). */
  #revision: bigint | undefined;
  #stream: WatchStream | undefined;
  #resumes = 0;
  #resets = 0;

  constructor(ctx: EtcdWatchContext, target: WatchTarget, options: WatchOptions) {
    this.#ctx = ctx;
    this.target = target;
    // Without `afterRevision`, "from now" is pinned at the call: after the last revision this
    // client has seen in any answer (a keepalive carries one every TTL/3). Waiting for the server
    // to confirm the watch would let changes made meanwhile slip through; this way a few changes
    // from just before the call may come, none after it is missed.
    this.#revision = options.afterRevision ?? (ctx.rpc.revision > 0n ? ctx.rpc.revision : undefined);
    this.#signal = options.signal;
    this.#queue = new AsyncQueue<WatchEvent>(() => this.#shutdown());
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
    if (this.#signal?.aborted) {
      this.#queue.end();
      return;
    }
    void this.#run();
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    return this.#queue[Symbol.asyncIterator]();
  }

  close(): void {
    this.#queue.end();
  }

  /** How many times the watch was re-created after a disconnect. */
  get resumes(): number {
    return this.#resumes;
  }

  /** How many `reset` events it emitted (after compaction). */
  get resets(): number {
    return this.#resets;
  }

  /** True once the watch has ended (closed, aborted or failed). */
  get ended(): boolean {
    return this.#queue.ended;
  }

  /** Ends the watch with an error (the backend closing says `CLOSED`). */
  fail(error: SharedStructError): void {
    this.#queue.fail(error);
  }

  readonly #onAbort = (): void => this.#queue.end();

  #shutdown(): void {
    this.#stop.abort();
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#stream?.cancel();
    this.#stream = undefined;
    this.#ctx.onDone(this);
  }

  /**
   * Runs streams one after another until the watch ends. {@link retry} does the backing off: a
   * stream that breaks is one failed attempt, and the server confirming a create is progress
   * (the next break backs off from the start). Compaction relists and goes on at once; so does
   * a refusal that a probe read showed to be an expired token. Errors marked non-retryable end
   * the watch (`UNAUTHORIZED` after the probe); `CLOSED` ends it quietly.
   */
  async #run(): Promise<void> {
    // Set when a refusal was probed; cleared when a create is confirmed. A second refusal
    // before that is for real.
    let probed = false;
    try {
      await retry(
        async (attempt) => {
          for (;;) {
            const end = await this.#runStream(() => {
              attempt.progress();
              probed = false;
            }).catch((err: unknown): StreamEnd => ({ kind: 'disconnected', error: err }));
            switch (end.kind) {
              case 'closed':
                return;
              case 'compacted':
                await this.#reset(end.compactRevision);
                continue;
              case 'failed':
                if (end.error.code === 'UNAUTHORIZED' && !probed) {
                  // Once per refusal: maybe only the token expired (see `probe`). Unreachable
                  // now (not UNAUTHORIZED): retried later, and the watch will be refused or work.
                  probed = true;
                  await this.#ctx.probe(this.target, this.#stop.signal);
                  continue;
                }
                throw end.error;
              case 'disconnected':
                throw new Disconnected(end.error instanceof Error ? end.error.message : 'watch stream ended', { cause: end.error });
            }
          }
        },
        {
          what: 'etcd watch',
          policy: RESUME_BACKOFF,
          signal: this.#stop.signal,
          retryIf: (err) => err instanceof Disconnected || !isSharedStructError(err) || err.retryable,
          onRetry: (err) => {
            if (!(err instanceof Disconnected)) return;
            this.#resumes += 1;
            this.#ctx.logger.debug('sharedstruct etcd: watch stream ended, resuming', {
              target: this.target,
              afterRevision: String(this.#revision),
              err: err.cause ?? err,
            });
          },
        },
      );
    } catch (err) {
      if (this.#stop.signal.aborted || isSharedStructError(err, 'CLOSED')) return;
      this.#queue.fail(isSharedStructError(err) ? err : new SharedStructError('CONNECTION', 'etcd watch failed', { cause: err }));
    }
  }

  /** Relists and emits one `reset` carrying the whole target at one revision. */
  async #reset(compactRevision: bigint): Promise<void> {
    const { entries, revision } = await this.#ctx.relist(this.target, this.#stop.signal);
    if (this.#stop.signal.aborted) return;
    this.#ctx.logger.info('sharedstruct etcd: watch start revision was compacted; relisted', {
      target: this.target,
      afterRevision: String(this.#revision),
      compactRevision: String(compactRevision),
      revision: String(revision),
    });
    this.#revision = revision;
    this.#resets += 1;
    this.#queue.push({ type: 'reset', entries, revision });
  }

  /**
   * Runs one stream until it ends. `onCreated` fires when the server confirmed the watch (the
   * caller resets its backoff then). A stream that is not confirmed within the request deadline
   * is abandoned: it sits on a connection that does not answer.
   */
  async #runStream(onCreated: () => void): Promise<StreamEnd> {
    const stream = await this.#ctx.rpc.openWatchStream(this.#stop.signal);
    if (this.#stop.signal.aborted) {
      stream.cancel();
      return { kind: 'closed' };
    }
    this.#stream = stream;
    const fromNow = this.#revision === undefined;
    const start = fromNow ? 0n : this.#revision! + 1n;
    return new Promise<StreamEnd>((resolve) => {
      let settled = false;
      let created = false;
      const finish = (end: StreamEnd): void => {
        if (settled) return;
        settled = true;
        clearTimeout(createTimer);
        this.#stop.signal.removeEventListener('abort', onStop);
        if (this.#stream === stream) this.#stream = undefined;
        stream.cancel();
        resolve(end);
      };
      const onStop = (): void => finish({ kind: 'closed' });
      this.#stop.signal.addEventListener('abort', onStop, { once: true });
      const createTimer = setTimeout(() => {
        finish({ kind: 'disconnected', error: new SharedStructError('TIMEOUT', 'watch create was not confirmed in time') });
      }, this.#ctx.rpc.requestTimeoutMs);
      createTimer.unref();

      stream.on('data', (res: IWatchResponse) => {
        if (settled) return;
        this.#ctx.rpc.noteRevision(res.header);
        const compactRevision = BigInt(res.compact_revision || '0');
        if (compactRevision > 0n) {
          finish({ kind: 'compacted', compactRevision });
          return;
        }
        if (res.created && !created) {
          created = true;
          clearTimeout(createTimer);
          // A watch from "now" starts after the revision the server created it at: remember
          // that, so a resume replays from there instead of from a later "now".
          if (fromNow) this.#revision = BigInt(res.header.revision);
          onCreated();
        }
        if (res.canceled) {
          const reason = res.cancel_reason || 'watch canceled by the server';
          if (/permission denied|auth/i.test(reason)) {
            finish({ kind: 'failed', error: new SharedStructError('UNAUTHORIZED', `etcd watch: ${reason}`) });
          } else {
            finish({ kind: 'disconnected', error: new Error(reason) });
          }
          return;
        }
        if (res.events.length > 0) {
          this.#deliver(res.events);
        } else if (created && !res.created) {
          this.#progress(BigInt(res.header.revision));
        }
      });
      stream.on('error', (err: Error) => finish({ kind: 'disconnected', error: err }));
      stream.on('end', () => finish({ kind: 'disconnected', error: new Error('watch stream ended') }));

      this.#ctx.rpc.countStreamRequest('watchCreate');
      stream.write({
        create_request: {
          ...targetRange(this.target),
          start_revision: start.toString(),
          progress_notify: true,
        },
      });
    });
  }

  #deliver(events: readonly IEvent[]): void {
    let last = this.#revision ?? 0n;
    for (const ev of events) {
      const revision = BigInt(ev.kv.mod_revision);
      // A resumed watch starts at last + 1, so this only guards against a server replaying.
      if (this.#revision !== undefined && revision <= this.#revision) continue;
      if (revision > last) last = revision;
      const key = ev.kv.key.toString('utf8');
      if (!matchesTarget(this.target, key)) continue;
      this.#queue.push(
        ev.type === 'Delete' ? { type: 'delete', key, revision } : { type: 'put', entry: toEntry(ev.kv) },
      );
    }
    // etcd sends all events of a revision in one response, so everything up to `last` is in.
    this.#revision = last;
  }

  #progress(revision: bigint): void {
    // Progress is only sent to watchers that are in sync: nothing at or below it is pending.
    if (this.#revision !== undefined && revision < this.#revision) return;
    this.#revision = revision;
    this.#queue.push({ type: 'progress', revision });
  }
}
