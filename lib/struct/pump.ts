/**
 * What keeps a struct's cache current without anyone asking: the watch on its payload key
 * (resumed from the last revision seen, through the one retry loop) and the periodic
 * version-only check that confirms freshness. Both only feed the struct; neither touches the
 * cache itself.
 */
import type { Backend, Logger, WatchEvent } from '../backend.js';
import { SharedStructError, isSharedStructError } from '../errors.js';
import { exponentialBackoff, retry } from '../retry.js';

/** What the pump feeds. */
export interface PumpTarget {
  readonly name: string;
  /** The revision a (re)started watch resumes after. */
  afterRevision(): bigint;
  /** One watch event, in order. */
  onWatchEvent(event: WatchEvent): void;
  /** The periodic check (and, with `resync`, the re-read after a new session). */
  refresh(resync: boolean): Promise<void>;
  /** A problem no call can report (the watch gave up for good). */
  onError(err: SharedStructError): void;
}

/** The watch loop and refresh timer of one struct instance. */
export class StructPump {
  readonly #backend: Backend;
  readonly #key: string;
  readonly #logger: Logger;
  readonly #target: PumpTarget;
  readonly #intervalMs: number;
  readonly #stop = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #loop: Promise<void> | undefined;

  /**
   * `intervalMs` is how often an idle cache is confirmed: the struct passes
   * min(`refreshIntervalMs`, `maxStalenessMs` / 2), so a healthy idle struct never reads stale.
   */
  constructor(backend: Backend, key: string, logger: Logger, target: PumpTarget, intervalMs: number) {
    this.#backend = backend;
    this.#key = key;
    this.#logger = logger;
    this.#target = target;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.#loop = this.#watch();
    this.#timer = setInterval(() => void this.#target.refresh(false), this.#intervalMs);
    this.#timer.unref();
  }

  /** Stops the watch and the timer; resolves once the watch loop has ended. */
  async stop(reason: SharedStructError): Promise<void> {
    clearInterval(this.#timer);
    this.#stop.abort(reason);
    await this.#loop;
  }

  async #watch(): Promise<void> {
    const signal = this.#stop.signal;
    const { name } = this.#target;
    try {
      await retry(
        async (attempt) => {
          const watch = this.#backend.watch({ key: this.#key }, { afterRevision: this.#target.afterRevision(), signal });
          try {
            for await (const event of watch) {
              attempt.progress();
              this.#target.onWatchEvent(event);
            }
          } finally {
            watch.close();
          }
          if (signal.aborted) return;
          throw new SharedStructError('CONNECTION', 'the watch stream ended');
        },
        {
          what: `watch of '${name}'`,
          signal,
          policy: WATCH_BACKOFF,
          onRetry: (err, n, delayMs) =>
            this.#logger.warn(`watch of '${name}' broke; resuming after revision ${this.#target.afterRevision()} in ${Math.round(delayMs)} ms (attempt ${n})`, {
              err,
            }),
        },
      );
    } catch (err) {
      if (signal.aborted) return;
      const e = isSharedStructError(err) ? err : new SharedStructError('CONNECTION', 'the watch failed', { cause: err });
      this.#target.onError(
        new SharedStructError(e.code, `the watch of '${name}' stopped (${e.message}); only the periodic check keeps the cache fresh now: reopen the struct once the cause is fixed`, { cause: e }),
      );
    }
  }
}

const WATCH_BACKOFF = exponentialBackoff({ initialMs: 10, maxMs: 1000, jitter: 0.2 });
