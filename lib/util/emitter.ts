/** A small typed event emitter whose `error` event never throws when nobody listens. */

/** Typed `on` / `off` / `once` over an event map. */
export class TypedEmitter<E extends object> {
  readonly #handlers = new Map<keyof E, Set<(arg: never) => void>>();
  /** Called with an error a handler threw, or an `error` event nobody listens to. */
  readonly #onUnhandled: (err: unknown) => void;

  constructor(onUnhandled: (err: unknown) => void) {
    this.#onUnhandled = onUnhandled;
  }

  /** Adds `handler` for `event`; returns `this`. */
  on<K extends keyof E>(event: K, handler: (arg: E[K]) => void): this {
    let set = this.#handlers.get(event);
    if (!set) this.#handlers.set(event, (set = new Set()));
    set.add(handler);
    return this;
  }

  /** Removes `handler` from `event`; returns `this`. */
  off<K extends keyof E>(event: K, handler: (arg: E[K]) => void): this {
    this.#handlers.get(event)?.delete(handler);
    return this;
  }

  /** Adds a handler that runs once. */
  once<K extends keyof E>(event: K, handler: (arg: E[K]) => void): this {
    const wrapped = (arg: E[K]): void => {
      this.off(event, wrapped);
      handler(arg);
    };
    return this.on(event, wrapped);
  }

  /** Number of handlers of `event`. */
  listenerCount(event: keyof E): number {
    return this.#handlers.get(event)?.size ?? 0;
  }

  /** Calls every handler of `event`; a throwing handler is reported, the others still run. */
  protected emit<K extends keyof E>(event: K, arg: E[K]): void {
    const set = this.#handlers.get(event);
    if (!set || set.size === 0) {
      if (event === 'error') this.#onUnhandled(arg);
      return;
    }
    for (const handler of [...set]) {
      try {
        (handler as (a: E[K]) => void)(arg);
      } catch (err) {
        this.#onUnhandled(err);
      }
    }
  }

  /** Drops every handler. */
  protected removeAllListeners(): void {
    this.#handlers.clear();
  }
}
