/**
 * This instance's writes in flight, and the news from the store that must wait for them. Every
 * path into the cache (the watch, a consistent read, the periodic check, a lost compare's
 * answer) goes through {@link LocalWrites.submit}; that is what makes `origin` right everywhere.
 *
 * Why news waits: while a write that would create version v is in flight, an entry at v (or a
 * coalesced one past it) may be that write's own result, arriving by another path first (a
 * watch echo, a consistent read racing the write). It cannot be told apart from a competing
 * writer that committed the same bytes, so it is held until the write resolves: the write's own
 * result applies its version as `local`, and the held news then applies in arrival order (as
 * echoes, or as the other writers' versions).
 */

interface Held {
  /** The version the news carries; undefined for a delete or a reset, which wait for every write. */
  readonly version: number | undefined;
  run(): void;
}

/** The local-writes tracker of one struct instance. */
export class LocalWrites {
  /** Versions that local writes in flight would create (version → writes). */
  readonly #pending = new Map<number, number>();
  readonly #held: Held[] = [];

  /**
   * Applies news now, or once the local writes that may own it have resolved (in arrival order
   * after whatever is already waiting). Returns undefined when applied at once, else a promise
   * that resolves once applied (a consistent read resolves only then).
   */
  submit(version: number | undefined, apply: () => void): Promise<void> | undefined {
    if (this.#held.length === 0 && !this.#mustHold(version)) {
      apply();
      return undefined;
    }
    return new Promise((resolve) => {
      this.#held.push({
        version,
        run: () => {
          try {
            apply();
          } finally {
            resolve();
          }
        },
      });
    });
  }

  /**
   * Runs a write that would create `version`. News that could carry it waits until `write`
   * settles; `write` applies its own result (as `local`) before that.
   */
  async writing<R>(version: number, write: () => Promise<R>): Promise<R> {
    this.#pending.set(version, (this.#pending.get(version) ?? 0) + 1);
    try {
      return await write();
    } finally {
      const left = this.#pending.get(version)! - 1;
      if (left === 0) this.#pending.delete(version);
      else this.#pending.set(version, left);
      while (this.#held.length > 0 && !this.#mustHold(this.#held[0]!.version)) this.#held.shift()!.run();
    }
  }

  #mustHold(version: number | undefined): boolean {
    if (this.#pending.size === 0) return false;
    if (version === undefined) return true;
    for (const v of this.#pending.keys()) if (version >= v) return true;
    return false;
  }
}
