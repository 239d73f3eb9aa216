/** An unbounded push/pull queue exposed as an async iterator: the body of every watch stream. */
import { SharedStructError } from '../errors.js';
import { hold } from './keepalive.js';

/**
 * Producers `push` items and `end()` or `fail(err)`; one consumer iterates. Bounding is the
 * producer's job (the core's fan-out turns overflow into a `resync`), so this stays simple.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined;
  #done = false;
  #error: unknown;
  #iterating = false;
  readonly #onReturn: (() => void) | undefined;
  readonly #holdsProcess: boolean;

  /**
   * `onReturn` runs once when the consumer stops early (break, return) or `end()` is called.
   * With `holdsProcess`, a consumer waiting in `next()` keeps the process alive (streams handed
   * to users: a `for await` must not end silently when nothing else is pending); internal
   * streams (the adapters' watches) never do.
   */
  constructor(onReturn?: () => void, options: { holdsProcess?: boolean } = {}) {
    this.#onReturn = onReturn;
    this.#holdsProcess = options.holdsProcess ?? false;
  }

  get length(): number {
    return this.#items.length;
  }

  get ended(): boolean {
    return this.#done;
  }

  push(item: T): void {
    if (this.#done) return;
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter.resolve({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
  }

  /** Drops every queued item (used when the producer replaces them with a summary). */
  clear(): void {
    this.#items.length = 0;
  }

  end(): void {
    if (this.#done) return;
    this.#done = true;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve({ value: undefined, done: true });
    this.#onReturn?.();
  }

  fail(error: unknown): void {
    if (this.#done) return;
    this.#error = error;
    this.#done = true;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(error);
    this.#onReturn?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.#iterating) {
      throw new SharedStructError('INVALID_ARGUMENT', 'this stream has one consumer and is already iterated');
    }
    this.#iterating = true;
    return {
      next: () => {
        if (this.#items.length > 0) return Promise.resolve({ value: this.#items.shift()!, done: false });
        if (this.#done) {
          if (this.#error !== undefined) {
            const e = this.#error;
            this.#error = undefined;
            return Promise.reject(e instanceof Error ? e : new Error('stream failed', { cause: e }));
          }
          return Promise.resolve({ value: undefined, done: true });
        }
        const waiting = new Promise<IteratorResult<T>>((resolve, reject) => {
          this.#waiter = { resolve, reject };
        });
        return this.#holdsProcess ? hold(waiting) : waiting;
      },
      return: () => {
        this.#items.length = 0;
        this.end();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
